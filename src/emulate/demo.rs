//! The emulated board behind port `emulated`: what the app and the CLI talk to when there is no
//! hardware, and how its state can outlive one CLI run.

use std::path::Path;

use super::chip::{ChipConfig, EmulatedChip, FuseValues};
use crate::error::{Error, Result};
use crate::part::{FuseKind, Part};
use crate::util::parse_byte;

/// A chip as a keyboard maker typically finds it: flashed before, running from the board's
/// 16 MHz crystal (no CKDIV8), other fuses at their defaults.
pub fn demo_chip(part: &Part) -> EmulatedChip {
    let fuses = FuseValues {
        lfuse: 0xFF,
        hfuse: part.fuse(FuseKind::High).map_or(0xD9, |h| h.default),
        efuse: part.fuse(FuseKind::Extended).map(|e| e.default),
    };
    let config = ChipConfig {
        fuses: Some(fuses),
        ..Default::default()
    };
    EmulatedChip::new(part, config).unwrap_or_else(|_| EmulatedChip::factory_fresh(part))
}

/// Loads a chip saved by [`EmulatedChip::dump`] from `dir` (flash.bin, eeprom.bin, fuses.json);
/// `None` when the directory holds no saved chip yet.
pub fn load_chip(dir: &Path, part: &Part) -> Result<Option<EmulatedChip>> {
    let fuses_path = dir.join("fuses.json");
    if !fuses_path.exists() {
        return Ok(None);
    }
    let read = |name: &str| -> Result<Vec<u8>> {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| Error::file("cannot read", path, e))
    };
    let fuses_text = String::from_utf8_lossy(&read("fuses.json")?).to_string();
    let json: serde_json::Value = serde_json::from_str(&fuses_text)
        .map_err(|e| Error::invalid(format!("{}: {e}", fuses_path.display())))?;
    let byte = |key: &str| -> Result<Option<u8>> {
        match json.get(key).and_then(|v| v.as_str()) {
            None => Ok(None),
            Some(text) => parse_byte(text).map(Some).ok_or_else(|| {
                Error::invalid(format!(
                    "{}: {key} = '{text}' is not a byte",
                    fuses_path.display()
                ))
            }),
        }
    };
    let flash = read("flash.bin")?;
    let eeprom = read("eeprom.bin")?;
    if flash.len() != part.flash.size as usize || eeprom.len() != part.eeprom.size as usize {
        // A saved chip of another part: start afresh rather than mix memories.
        return Ok(None);
    }
    let config = ChipConfig {
        fuses: Some(FuseValues {
            lfuse: byte("lfuse")?.unwrap_or(0xFF),
            hfuse: byte("hfuse")?.unwrap_or(0xD9),
            efuse: if part.has_efuse() {
                byte("efuse")?
            } else {
                None
            },
        }),
        lock: byte("lock")?.unwrap_or(0xFF),
        flash: Some(flash),
        eeprom: Some(eeprom),
        ..Default::default()
    };
    EmulatedChip::new(part, config).map(Some)
}
