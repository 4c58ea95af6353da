//! Backups taken before anything destructive: fuses and lock always, flash and EEPROM on request.

use std::path::{Path, PathBuf};

use super::fuses::read_all;
use super::memory::read_all as read_memory;
use super::{Ctx, Level, Stage};
use crate::error::{Error, Memory, Result};
use crate::hex::{write_atomic, write_hex};
use crate::util::{hex_bytes, timestamp};

/// What to back up, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOptions {
    /// Directory for backup files; `None` disables the backup.
    pub dir: Option<PathBuf>,
    /// Also save the whole flash and EEPROM (slow on slow programmers).
    pub memories: bool,
}

impl BackupOptions {
    /// Fuses and lock only, into the user's data directory.
    pub fn default_location() -> Self {
        BackupOptions {
            dir: default_backup_dir(),
            memories: false,
        }
    }
}

/// `<data dir>/isp-toolbox/backups`, e.g. `~/.local/share/isp-toolbox/backups` on Linux.
pub fn default_backup_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "ISP Toolbox", "isp-toolbox")
        .map(|d| d.data_dir().join("backups"))
}

#[derive(serde::Serialize)]
struct BackupFile<'a> {
    taken: &'a str,
    part: &'a str,
    signature: String,
    calibration: Vec<String>,
    fuses: std::collections::BTreeMap<&'static str, String>,
    flash_file: Option<String>,
    eeprom_file: Option<String>,
}

/// Saves a timestamped backup; returns the JSON file written. Inside a programming session.
pub fn save_backup(ctx: &mut Ctx<'_>, options: &BackupOptions) -> Result<Option<PathBuf>> {
    let Some(dir) = &options.dir else {
        return Ok(None);
    };
    ctx.stage(Stage::Backup);
    std::fs::create_dir_all(dir).map_err(|e| Error::file("cannot create backup folder", dir, e))?;
    let taken = timestamp::now_utc();
    let stem = format!("{}-{}", taken.replace(':', ""), ctx.part.id);
    let fuses = read_all(ctx.prog, ctx.part)?;
    let signature = ctx.prog.read_signature()?;
    let calibration = (0..ctx.part.calibration_bytes)
        .map(|i| ctx.prog.read_calibration(i).map(|c| format!("0x{c:02X}")))
        .collect::<Result<Vec<_>>>()?;
    let memory_file = |ctx: &mut Ctx<'_>, memory: Memory, suffix: &str| -> Result<String> {
        let image = read_memory(ctx, memory)?;
        let name = format!("{stem}-{suffix}.hex");
        write_atomic(dir.join(&name), write_hex(&image).as_bytes())?;
        Ok(name)
    };
    let (flash_file, eeprom_file) = if options.memories {
        (
            Some(memory_file(ctx, Memory::Flash, "flash")?),
            Some(memory_file(ctx, Memory::Eeprom, "eeprom")?),
        )
    } else {
        (None, None)
    };
    let file = BackupFile {
        taken: &taken,
        part: &ctx.part.id,
        signature: hex_bytes(&signature),
        calibration,
        fuses: fuses
            .iter()
            .map(|(k, v)| (k.avrdude_name(), format!("0x{v:02X}")))
            .collect(),
        flash_file,
        eeprom_file,
    };
    let path = dir.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(&file)
        .map_err(|e| Error::invalid(format!("cannot encode the backup: {e}")))?;
    write_atomic(&path, json.as_bytes())?;
    ctx.log(Level::Info, format!("Backup saved to {}", display(&path)));
    Ok(Some(path))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
