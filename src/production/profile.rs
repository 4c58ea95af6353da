//! The production profile: everything a line needs, saved as JSON the operator can share.
//!
//! Paths in a profile are relative to the profile file's folder, so a folder holding the
//! profile and its images can be zipped and sent to another bench. [`Profile::prepare`] checks
//! everything that can be checked without a programmer (the part, the images, the merge, the
//! fuse preset and its risk) before the line touches any board.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalog::{BootloaderCatalog, Driver};
use crate::error::{Error, Memory, Result};
use crate::hex::{MemoryImage, fits_boot_section, merge, read_image_file};
use crate::job::memory::check_fits;
use crate::job::safety::{Approval, FuseReview, FuseValues, fuse_list, normalize, review};
use crate::part::{FuseKind, Part, PartDb, Risk};
use crate::programmer::open::ProgrammerSpec;

/// The run log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
}

impl LogFormat {
    /// CSV for `.csv` files, JSON lines otherwise.
    pub fn from_path(path: &Path) -> LogFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => LogFormat::Csv,
            _ => LogFormat::Jsonl,
        }
    }
}

/// Which fuses to write on every board: a catalog preset, explicit bytes, or both (explicit
/// bytes override the preset's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuseSettings {
    /// Catalog id of a bootloader whose preset to use (see `list bootloaders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader: Option<String>,
    /// The preset id within that bootloader (default: its first preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Low fuse.
    #[serde(default, with = "byte_text", skip_serializing_if = "Option::is_none")]
    pub lfuse: Option<u8>,
    /// High fuse.
    #[serde(default, with = "byte_text", skip_serializing_if = "Option::is_none")]
    pub hfuse: Option<u8>,
    /// Extended fuse.
    #[serde(default, with = "byte_text", skip_serializing_if = "Option::is_none")]
    pub efuse: Option<u8>,
    /// Lock byte, written last (after the verify).
    #[serde(default, with = "byte_text", skip_serializing_if = "Option::is_none")]
    pub lock: Option<u8>,
}

/// A production profile as saved in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// A name for the screen and the log ("Corne v4, Pro Micro 5 V").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Programmer driver: avrisp, usbasp, usbtiny, buspirate (or sim, emulated only).
    pub programmer: String,
    /// Serial port, `usb`, or `emulated`.
    #[serde(default = "default_port")]
    pub port: String,
    /// Serial baud rate (default: the programmer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    /// A fixed ISP clock in Hz (default: managed, starting slow for factory-fresh chips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sck_hz: Option<u32>,
    /// The boards' crystal in Hz, for the fastest safe ISP clock after the fuses are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crystal_hz: Option<u32>,
    /// Target MCU (atmega32u4, m32u4, ...).
    pub mcu: String,
    /// The production image (firmware and bootloader already merged). Or give `firmware` and
    /// `bootloader` to merge them when the line starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
    /// Application firmware, merged with `bootloader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<PathBuf>,
    /// Bootloader, merged above `firmware`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader: Option<PathBuf>,
    /// Byte address of the boot section for the merge (default: from the high fuse, else the
    /// smallest boot section that holds the bootloader).
    #[serde(default, with = "number_text", skip_serializing_if = "Option::is_none")]
    pub boot_start: Option<u32>,
    /// Fuses and lock to write on every board (absent: fuses are left alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuses: Option<FuseSettings>,
    /// Read back and compare flash (and EEPROM) after writing.
    #[serde(default = "yes")]
    pub verify: bool,
    /// An EEPROM image to write on every board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eeprom: Option<PathBuf>,
    /// Allow fuse values that can lock ISP out for good (RSTDISBL, SPIEN off, ...). Without
    /// it such a profile is refused before any board is touched.
    #[serde(default)]
    pub allow_critical: bool,
    /// The run log (default: `<profile name>.log.jsonl` next to the profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// The run log's format (default: from the log's extension, `.csv` or JSON lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// The folder relative paths are resolved against (the profile file's folder).
    #[serde(skip, default = "here")]
    pub base_dir: PathBuf,
    /// The file the profile was loaded from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn default_port() -> String {
    "usb".into()
}

fn here() -> PathBuf {
    PathBuf::from(".")
}

fn yes() -> bool {
    true
}

/// A profile checked and loaded: what the line runs with.
#[derive(Debug, Clone)]
pub struct PreparedLine {
    /// The profile's name (or its file name).
    pub name: String,
    /// How to open the programmer.
    pub programmer: ProgrammerSpec,
    /// The target part.
    pub part: Part,
    /// The flash image (merged if the profile gave firmware and bootloader).
    pub image: MemoryImage,
    /// The EEPROM image, if any.
    pub eeprom: Option<MemoryImage>,
    /// Fuse bytes to write (normalized), without the lock byte.
    pub fuses: FuseValues,
    /// The lock byte to write last, normalized.
    pub lock: Option<u8>,
    /// Whether to verify.
    pub verify: bool,
    /// The approval the profile stands for: high-risk changes are accepted (the profile is
    /// the confirmation), critical ones only with `allow_critical`.
    pub approval: Approval,
    /// The fuse review against unknown current values (the worst case), for the screen.
    pub review: Option<FuseReview>,
    /// Where the run log goes.
    pub log_path: PathBuf,
    /// Its format.
    pub log_format: LogFormat,
}

impl PreparedLine {
    /// Every byte the line writes, the lock byte included, as avrdude names them
    /// (`lfuse=0xFF hfuse=0xD8 efuse=0xFB lock=0xEF`); `None` when fuses are left alone.
    pub fn fuse_text(&self) -> Option<String> {
        let mut all = self.fuses.clone();
        if let Some(lock) = self.lock {
            all.insert(FuseKind::Lock, lock);
        }
        (!all.is_empty()).then(|| fuse_list(&all))
    }
}

impl Profile {
    /// A profile with only the required fields; paths relative to `base_dir`.
    pub fn new(programmer: &str, port: &str, mcu: &str) -> Profile {
        Profile {
            name: None,
            programmer: programmer.into(),
            port: port.into(),
            baud: None,
            sck_hz: None,
            crystal_hz: None,
            mcu: mcu.into(),
            image: None,
            firmware: None,
            bootloader: None,
            boot_start: None,
            fuses: None,
            verify: true,
            eeprom: None,
            allow_critical: false,
            log: None,
            log_format: None,
            base_dir: PathBuf::from("."),
            source: None,
        }
    }

    /// Reads a profile file; relative paths in it will be resolved against its folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file("cannot read the production profile", path, e))?;
        let mut profile = Profile::from_json(&text, &path.display().to_string())?;
        profile.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        profile.source = Some(path.to_path_buf());
        Ok(profile)
    }

    /// Parses a profile; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Profile> {
        serde_json::from_str(text).map_err(|e| {
            Error::invalid(format!(
                "{origin} is not a valid production profile: {e} (see docs/production.md for the format)"
            ))
        })
    }

    /// The profile as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// Writes the profile (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        crate::hex::write_atomic(path, text.as_bytes())
    }

    /// `path` resolved against the profile's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The programmer this profile names.
    pub fn programmer_spec(&self) -> ProgrammerSpec {
        ProgrammerSpec {
            driver: self.programmer.clone(),
            port: self.port.clone(),
            baud: self.baud,
            sck_hz: self.sck_hz,
            crystal_hz: self.crystal_hz,
        }
    }

    /// Checks everything that can be checked without a programmer and loads the images.
    /// Nothing destructive may happen before this has succeeded.
    pub fn prepare(&self) -> Result<PreparedLine> {
        let part = PartDb::builtin()?.find(&self.mcu)?.clone();
        let spec = self.programmer_spec();
        check_programmer(&spec)?;
        let (fuses, lock) = self.fuse_values(&part)?;
        let image = self.flash_image(&part, fuses.get(&FuseKind::High).copied())?;
        let eeprom = match &self.eeprom {
            Some(p) => {
                let path = self.resolve(p);
                let img = read_image_file(&path)?;
                check_fits(&part, Memory::Eeprom, &img).map_err(|e| in_file(&path, e))?;
                Some(img)
            }
            None => None,
        };
        let approval = Approval {
            confirmed_token: None,
            accept_high: true,
            force_critical: self.allow_critical,
        };
        let mut all = fuses.clone();
        if let Some(l) = lock {
            all.insert(FuseKind::Lock, l);
        }
        let review = if all.is_empty() {
            None
        } else {
            // Current values unknown: every field is reviewed as changing (the worst case).
            let r = review(&part, &FuseValues::new(), &all)?;
            if r.risk == Risk::Critical && !self.allow_critical {
                return Err(Error::Refused(format!(
                    "the profile's fuses could lock ISP out of every board for good: {}; set \"allow_critical\": true in the profile only if you can recover boards with a high-voltage programmer",
                    r.critical_changes()
                        .map(|c| c.summary())
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            Some(r)
        };
        let log_path = match &self.log {
            Some(p) => self.resolve(p),
            None => self
                .base_dir
                .join(format!("{}.log.jsonl", self.file_stem())),
        };
        let log_format = self
            .log_format
            .unwrap_or_else(|| LogFormat::from_path(&log_path));
        Ok(PreparedLine {
            name: self.name.clone().unwrap_or_else(|| self.file_stem()),
            programmer: spec,
            part,
            image,
            eeprom,
            fuses,
            lock,
            verify: self.verify,
            approval,
            review,
            log_path,
            log_format,
        })
    }

    fn file_stem(&self) -> String {
        self.source
            .as_ref()
            .and_then(|s| s.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "production".into())
    }

    /// Fuse bytes (normalized) and the lock byte, from the preset and the explicit values.
    fn fuse_values(&self, part: &Part) -> Result<(FuseValues, Option<u8>)> {
        let Some(settings) = &self.fuses else {
            return Ok((FuseValues::new(), None));
        };
        let mut values = FuseValues::new();
        if let Some(id) = &settings.bootloader {
            let bl = BootloaderCatalog::builtin()?.get(id)?;
            if !bl.runs_on(&part.id) {
                return Err(Error::invalid(format!(
                    "the profile's fuse preset '{}' is for {}, not the {}; pick a preset for this MCU or give lfuse/hfuse/efuse",
                    bl.id,
                    bl.mcus.join(" / "),
                    part.name
                )));
            }
            let preset = match &settings.preset {
                Some(p) => bl.preset(p).ok_or_else(|| Error::Unknown {
                    what: "fuse preset",
                    name: format!("{}/{p}", bl.id),
                    known: bl.presets.iter().map(|p| p.id.clone()).collect(),
                })?,
                None => bl.default_preset(),
            };
            values.extend(preset.values());
        } else if settings.preset.is_some() {
            return Err(Error::invalid(
                "the profile names a fuse \"preset\" but no \"bootloader\" to take it from",
            ));
        }
        for (kind, value) in [
            (FuseKind::Low, settings.lfuse),
            (FuseKind::High, settings.hfuse),
            (FuseKind::Extended, settings.efuse),
            (FuseKind::Lock, settings.lock),
        ] {
            if let Some(v) = value {
                values.insert(kind, v);
            }
        }
        let mut normalized = FuseValues::new();
        for (&kind, &value) in &values {
            normalized.insert(kind, normalize(part, kind, value)?);
        }
        let lock = normalized.remove(&FuseKind::Lock);
        if normalized.is_empty() && lock.is_none() {
            return Err(Error::invalid(
                "the profile's \"fuses\" section sets nothing: name a \"bootloader\" preset or give lfuse/hfuse/efuse/lock (or remove the section to leave fuses alone)",
            ));
        }
        Ok((normalized, lock))
    }

    /// The flash image: the production image, or firmware + bootloader merged.
    fn flash_image(&self, part: &Part, hfuse: Option<u8>) -> Result<MemoryImage> {
        let image = match (&self.image, &self.firmware, &self.bootloader) {
            (Some(p), None, None) => {
                let path = self.resolve(p);
                let img = read_image_file(&path)?;
                check_fits(part, Memory::Flash, &img).map_err(|e| in_file(&path, e))?;
                img
            }
            (None, Some(fw), Some(bl)) => {
                let (fw, bl) = (self.resolve(fw), self.resolve(bl));
                let firmware = read_image_file(&fw)?;
                let bootloader = read_image_file(&bl)?;
                let boot_start = self.boot_start_for(part, hfuse, &bootloader, &bl)?;
                merge(&firmware, &bootloader, part, boot_start).map_err(|e| {
                    Error::Image(format!(
                        "cannot merge {} and {}: {e}",
                        fw.display(),
                        bl.display()
                    ))
                })?
            }
            (None, None, None) => {
                return Err(Error::invalid(
                    "the profile has no image: give \"image\" (a production image) or \"firmware\" and \"bootloader\" to merge",
                ));
            }
            (Some(_), _, _) => {
                return Err(Error::invalid(
                    "the profile gives both \"image\" and \"firmware\"/\"bootloader\": keep one (the production image, or the two parts to merge)",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "merging needs both \"firmware\" and \"bootloader\" in the profile",
                ));
            }
        };
        Ok(image)
    }

    fn boot_start_for(
        &self,
        part: &Part,
        hfuse: Option<u8>,
        bootloader: &MemoryImage,
        path: &Path,
    ) -> Result<u32> {
        if let Some(start) = self.boot_start {
            return Ok(start);
        }
        if let Some(h) = hfuse
            && let Some(section) = part.boot_section_for_hfuse(h)
        {
            return Ok(section.start_byte());
        }
        let mut sections: Vec<_> = part.boot_sections.iter().collect();
        sections.sort_by_key(|s| s.words);
        sections
            .iter()
            .find(|s| fits_boot_section(bootloader, part, s).is_ok())
            .map(|s| s.start_byte())
            .ok_or_else(|| {
                Error::Image(format!(
                    "{} does not lie in any boot section of the {} ({}); is it a bootloader for this MCU?",
                    path.display(),
                    part.name,
                    bootloader.range_string()
                ))
            })
    }
}

fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Image(msg) => Error::Image(format!("{}: {msg}", path.display())),
        other => other,
    }
}

fn check_programmer(spec: &ProgrammerSpec) -> Result<()> {
    if spec.driver.eq_ignore_ascii_case("sim") {
        if !spec.is_emulated() {
            return Err(Error::invalid(
                "the 'sim' programmer only exists on port 'emulated'",
            ));
        }
        return Ok(());
    }
    if Driver::from_alias(&spec.driver).is_none() {
        return Err(Error::Unknown {
            what: "programmer",
            name: spec.driver.clone(),
            known: crate::programmer::open::driver_names(),
        });
    }
    if spec.port.trim().is_empty() {
        return Err(Error::invalid(
            "the profile's \"port\" is empty: give a serial port, \"usb\" or \"emulated\"",
        ));
    }
    Ok(())
}

/// Bytes in a profile: `"0xFF"` (as the tools write them) or a plain number.
mod byte_text {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(v: &Option<u8>, s: S) -> std::result::Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&format!("0x{b:02X}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<u8>, D::Error> {
        let raw = Option::<Raw>::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(Raw::Number(n)) => u8::try_from(n)
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{n} is not a byte (0..255)"))),
            Some(Raw::Text(t)) => crate::util::parse_byte(&t).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("'{t}' is not a byte (write it as 0xFF)"))
            }),
        }
    }
}

/// Addresses in a profile: `"0x7000"` or a plain number.
mod number_text {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> std::result::Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_str(&format!("0x{n:04X}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<u32>, D::Error> {
        let raw = Option::<Raw>::deserialize(d)?;
        let n = match raw {
            None => return Ok(None),
            Some(Raw::Number(n)) => Some(n),
            Some(Raw::Text(t)) => crate::util::parse_number(&t),
        };
        n.and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("not an address (write it as 0x7000)"))
    }
}
