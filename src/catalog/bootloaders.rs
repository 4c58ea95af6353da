//! The bootloader catalog (`bootloaders/catalog.json`): every bootloader of the guide's tables
//! with its fuse presets, USB id, boot section needs and where its official .hex comes from,
//! plus the known ISP programmer firmware builds.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::hash::{Sha256, opt_sha256};
use super::programmers::{ProgrammerCatalog, data_reason, is_slug};
use super::usb::UsbId;
use crate::error::{Error, Result};
use crate::part::{FuseKind, PartDb};
use crate::util::hexnum;

const CATALOG_JSON: &str = include_str!("../../bootloaders/catalog.json");
const FILE: &str = "bootloaders/catalog.json";

/// Which bootloader project an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Atmel's factory DFU bootloader.
    AtmelDfu,
    /// Arduino-style CDC bootloader derived from LUFA.
    Caterina,
    /// Objective Development's V-USB HID bootloader (PS2AVRGB boards).
    Bootloadhid,
    /// V-USB bootloader that emulates a USBasp.
    Usbasploader,
}

impl Family {
    /// The heading of the guide's table for this family.
    pub fn guide_heading(self) -> &'static str {
        match self {
            Family::AtmelDfu => "Atmel DFU",
            Family::Caterina => "Caterina",
            Family::Bootloadhid => "BootloadHID (PS2AVRGB)",
            Family::Usbasploader => "USBaspLoader",
        }
    }
}

/// One bootloader build for one board or MCU.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootloader {
    /// Stable id for the command line, e.g. `caterina-promicro-5v`.
    pub id: String,
    /// The bootloader project.
    pub family: Family,
    /// Display name.
    pub name: String,
    /// The first cell of this entry's row in the guide's table for its family.
    pub guide_row: String,
    /// Part ids it runs on. One guide row can cover two parts that share a signature and a
    /// memory layout (AT90USB646/647, AT90USB1286/1287): the same image serves both.
    pub mcus: Vec<String>,
    /// The USB id the bootloader enumerates as.
    pub usb: UsbId,
    /// The board's crystal in Hz (what the image was built for, or what typical boards fit).
    pub board_clock_hz: u32,
    /// Where the clock figure comes from.
    pub clock_note: String,
    /// Boot section size the bootloader needs, in bytes.
    pub boot_section_bytes: u32,
    /// Where that size comes from (makefile, build definitions).
    pub boot_section_source: String,
    /// The published file also holds an application sketch that runs by default.
    pub combined_sketch: bool,
    /// Fuse presets, the guide's default first.
    pub presets: Vec<FusePreset>,
    /// Where the presets' lock byte comes from; `None` when no preset sets one.
    pub lock_source: Option<String>,
    /// Things to tell the user.
    pub notes: Vec<String>,
    /// Where the official .hex is published and its hashes.
    pub hex: HexProvenance,
}

impl Bootloader {
    /// Boot section size the bootloader needs, in words.
    pub fn boot_section_words(&self) -> u32 {
        self.boot_section_bytes / 2
    }

    /// Whether it runs on a part (by part id, e.g. `at90usb647`).
    pub fn runs_on(&self, part_id: &str) -> bool {
        self.mcus.iter().any(|m| m.eq_ignore_ascii_case(part_id))
    }

    /// The guide's default preset (validation guarantees there is one).
    pub fn default_preset(&self) -> &FusePreset {
        &self.presets[0]
    }

    /// A preset by id, ignoring case.
    pub fn preset(&self, id: &str) -> Option<&FusePreset> {
        self.presets
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(id.trim()))
    }

    fn validate(&self, parts: &PartDb) -> std::result::Result<(), String> {
        if !is_slug(&self.id) {
            return Err("id must be lowercase letters, digits and '-'".into());
        }
        if self.mcus.is_empty() {
            return Err("no MCU listed".into());
        }
        check_usb(self.usb)?;
        if !(1..=20_000_000).contains(&self.board_clock_hz) {
            return Err(format!(
                "board clock {} Hz is outside 1 Hz..20 MHz",
                self.board_clock_hz
            ));
        }
        if self.boot_section_bytes == 0 || !self.boot_section_bytes.is_multiple_of(2) {
            return Err("boot_section_bytes must be a positive, even byte count".into());
        }
        if self.presets.is_empty() {
            return Err("no fuse preset".into());
        }
        let mut preset_ids = HashSet::new();
        for preset in &self.presets {
            if !preset_ids.insert(preset.id.to_ascii_lowercase()) {
                return Err(format!("preset id '{}' is used twice", preset.id));
            }
        }
        let sets_lock = self.presets.iter().any(|p| p.lock.is_some());
        if sets_lock != self.lock_source.is_some() {
            return Err("lock_source must be given exactly when a preset sets a lock byte".into());
        }
        for mcu in &self.mcus {
            self.check_part(mcu, parts)?;
        }
        self.hex.validate()
    }

    /// Cross-checks the presets against one part's fuse layout and boot sections.
    fn check_part(&self, mcu: &str, parts: &PartDb) -> std::result::Result<(), String> {
        let part = parts
            .all()
            .iter()
            .find(|p| p.id == mcu)
            .ok_or_else(|| format!("unknown MCU id '{mcu}' (use the part database's id)"))?;
        for preset in &self.presets {
            let what = format!("preset {} on {}", preset.id, part.name);
            if preset.efuse.is_some() != part.has_efuse() {
                return Err(if part.has_efuse() {
                    format!("{what}: needs an efuse value")
                } else {
                    format!("{what}: the part has no extended fuse, drop efuse")
                });
            }
            let section = part.boot_section_for_hfuse(preset.hfuse).ok_or_else(|| {
                format!(
                    "{what}: hfuse 0x{:02X} selects no boot section",
                    preset.hfuse
                )
            })?;
            if section.bytes() < self.boot_section_bytes {
                return Err(format!(
                    "{what}: hfuse 0x{:02X} gives a {}-byte boot section (BOOTSZ={}), the bootloader needs {}",
                    preset.hfuse,
                    section.bytes(),
                    section.bootsz,
                    self.boot_section_bytes
                ));
            }
        }
        Ok(())
    }
}

/// One set of fuse values for a bootloader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusePreset {
    /// Id within the entry: `default`, `jtag-disabled`.
    pub id: String,
    /// Display label.
    pub label: String,
    /// Low fuse.
    #[serde(with = "hexnum::u8")]
    pub lfuse: u8,
    /// High fuse.
    #[serde(with = "hexnum::u8")]
    pub hfuse: u8,
    /// Extended fuse; absent exactly where the part has none (ATmega32A).
    #[serde(
        default,
        with = "hexnum::opt_u8",
        skip_serializing_if = "Option::is_none"
    )]
    pub efuse: Option<u8>,
    /// Lock byte, where the guide or the bootloader's makefile gives one.
    #[serde(
        default,
        with = "hexnum::opt_u8",
        skip_serializing_if = "Option::is_none"
    )]
    pub lock: Option<u8>,
}

impl FusePreset {
    /// The value for one byte, if the preset sets it.
    pub fn value(&self, kind: FuseKind) -> Option<u8> {
        match kind {
            FuseKind::Low => Some(self.lfuse),
            FuseKind::High => Some(self.hfuse),
            FuseKind::Extended => self.efuse,
            FuseKind::Lock => self.lock,
        }
    }

    /// Every byte the preset sets, in write order (lock last).
    pub fn values(&self) -> impl Iterator<Item = (FuseKind, u8)> + '_ {
        FuseKind::ALL
            .into_iter()
            .filter_map(|kind| self.value(kind).map(|v| (kind, v)))
    }
}

/// Where an official .hex is published, and its hashes where they could be verified.
///
/// `file_sha256` is SHA-256 of the file's bytes exactly as published (what `sha256sum` prints).
/// `content_sha256` is SHA-256 of what the file programs, independent of its formatting: the
/// 4-byte big-endian address of the lowest byte that is not 0xFF, then every byte from there
/// to the highest byte that is not 0xFF, gaps as 0xFF (the definition of
/// `hex::MemoryImage::content_sha256`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HexProvenance {
    /// Where the official file is published.
    pub url: String,
    /// Its file name.
    pub file_name: String,
    /// SHA-256 of the file's bytes; `None` when not verified.
    #[serde(with = "opt_sha256")]
    pub file_sha256: Option<Sha256>,
    /// SHA-256 of the programmed content; `None` when not verified.
    #[serde(with = "opt_sha256")]
    pub content_sha256: Option<Sha256>,
    /// The exact copy the hashes were computed from: `owner/repo@commit:path`.
    pub hashed_from: Option<String>,
    /// Why there is no hash, when there is none.
    pub hash_note: Option<String>,
}

impl HexProvenance {
    fn validate(&self) -> std::result::Result<(), String> {
        if !self.url.starts_with("https://") {
            return Err(format!("hex url '{}' must be https://", self.url));
        }
        if self.file_name.trim().is_empty() {
            return Err("hex file_name is empty".into());
        }
        let hashed = self.file_sha256.is_some() || self.content_sha256.is_some();
        if hashed != self.hashed_from.is_some() {
            return Err(
                "hashed_from must name the hashed copy exactly when a hash is given".into(),
            );
        }
        if hashed == self.hash_note.is_some() {
            return Err("hash_note must say why exactly when no hash is given".into());
        }
        Ok(())
    }
}

/// A known firmware build that turns a board into an ISP programmer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IspFirmware {
    /// Stable id, e.g. `qmk-promicro-isp`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The programmer catalog entry it turns the board into.
    pub programmer: String,
    /// The programmer board's MCU, when the build is for one MCU.
    pub mcu: Option<String>,
    /// Which board it runs on.
    pub board: String,
    /// The programmer pin that drives the target's RESET.
    pub reset_pin: String,
    /// USB ids it enumerates as.
    pub usb: Vec<UsbId>,
    /// The product string it reports, where known.
    pub usb_product: Option<String>,
    /// Things to tell the user.
    pub notes: Vec<String>,
    /// Where it is published.
    pub hex: HexProvenance,
}

impl IspFirmware {
    fn validate(
        &self,
        parts: &PartDb,
        programmers: &ProgrammerCatalog,
    ) -> std::result::Result<(), String> {
        if !is_slug(&self.id) {
            return Err("id must be lowercase letters, digits and '-'".into());
        }
        programmers
            .get(&self.programmer)
            .map_err(|_| format!("unknown programmer '{}'", self.programmer))?;
        if let Some(mcu) = &self.mcu
            && !parts.all().iter().any(|p| &p.id == mcu)
        {
            return Err(format!("unknown MCU id '{mcu}'"));
        }
        if self.usb.is_empty() {
            return Err("no USB id".into());
        }
        let mut seen = HashSet::new();
        for &usb in &self.usb {
            check_usb(usb)?;
            if !seen.insert(usb) {
                return Err(format!("USB id {usb} listed twice"));
            }
        }
        self.hex.validate()
    }
}

/// A build the catalog knows, found by hash.
#[derive(Debug, Clone, Copy)]
pub enum KnownBuild<'a> {
    /// A bootloader.
    Bootloader(&'a Bootloader),
    /// ISP programmer firmware (flash it onto the programmer board, not the keyboard).
    IspFirmware(&'a IspFirmware),
}

impl<'a> KnownBuild<'a> {
    /// The entry's id.
    pub fn id(&self) -> &'a str {
        match self {
            KnownBuild::Bootloader(b) => &b.id,
            KnownBuild::IspFirmware(f) => &f.id,
        }
    }

    /// The entry's provenance.
    pub fn hex(&self) -> &'a HexProvenance {
        match self {
            KnownBuild::Bootloader(b) => &b.hex,
            KnownBuild::IspFirmware(f) => &f.hex,
        }
    }
}

/// Every known bootloader and ISP firmware build.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootloaderCatalog {
    bootloaders: Vec<Bootloader>,
    isp_firmware: Vec<IspFirmware>,
}

impl BootloaderCatalog {
    /// The built-in catalog, parsed and cross-checked against the built-in part database and
    /// programmer catalog once.
    pub fn builtin() -> Result<&'static BootloaderCatalog> {
        static CATALOG: OnceLock<std::result::Result<BootloaderCatalog, String>> = OnceLock::new();
        CATALOG
            .get_or_init(|| {
                let parts = PartDb::builtin().map_err(|e| e.to_string())?;
                let programmers = ProgrammerCatalog::builtin().map_err(|e| e.to_string())?;
                BootloaderCatalog::from_json(CATALOG_JSON, parts, programmers).map_err(data_reason)
            })
            .as_ref()
            .map_err(|reason| Error::Data {
                file: FILE,
                reason: reason.clone(),
            })
    }

    /// Parses a catalog and validates it against a part database and a programmer catalog.
    pub fn from_json(
        json: &str,
        parts: &PartDb,
        programmers: &ProgrammerCatalog,
    ) -> Result<BootloaderCatalog> {
        let catalog: BootloaderCatalog = serde_json::from_str(json).map_err(|e| Error::Data {
            file: FILE,
            reason: e.to_string(),
        })?;
        catalog
            .validate(parts, programmers)
            .map_err(|reason| Error::Data { file: FILE, reason })?;
        Ok(catalog)
    }

    /// Every bootloader, in file order.
    pub fn all(&self) -> &[Bootloader] {
        &self.bootloaders
    }

    /// Every ISP programmer firmware build.
    pub fn isp_firmware(&self) -> &[IspFirmware] {
        &self.isp_firmware
    }

    /// A bootloader by id, ignoring case.
    pub fn get(&self, id: &str) -> Result<&Bootloader> {
        let wanted = id.trim();
        self.bootloaders
            .iter()
            .find(|b| b.id.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| Error::Unknown {
                what: "bootloader",
                name: id.to_string(),
                known: self.bootloaders.iter().map(|b| b.id.clone()).collect(),
            })
    }

    /// The bootloaders that run on a part (by part id).
    pub fn for_part<'a>(&'a self, part_id: &'a str) -> impl Iterator<Item = &'a Bootloader> {
        self.bootloaders.iter().filter(move |b| b.runs_on(part_id))
    }

    /// The bootloaders that enumerate as a USB id (a board sitting in its bootloader).
    pub fn by_usb(&self, id: UsbId) -> Vec<&Bootloader> {
        self.bootloaders.iter().filter(|b| b.usb == id).collect()
    }

    /// The ISP firmware builds that enumerate as a USB id.
    pub fn isp_firmware_by_usb(&self, id: UsbId) -> Vec<&IspFirmware> {
        self.isp_firmware
            .iter()
            .filter(|f| f.usb.contains(&id))
            .collect()
    }

    /// The build whose content hash (see [`HexProvenance`]) this is; `None` means an unknown
    /// build.
    pub fn identify_content(&self, content_sha256: &Sha256) -> Option<KnownBuild<'_>> {
        self.builds()
            .find(|b| b.hex().content_sha256.as_ref() == Some(content_sha256))
    }

    /// The build whose file hash (SHA-256 of the file's bytes) this is; `None` means an
    /// unknown file (which may still hold a known build: try [`Self::identify_content`]).
    pub fn identify_file(&self, file_sha256: &Sha256) -> Option<KnownBuild<'_>> {
        self.builds()
            .find(|b| b.hex().file_sha256.as_ref() == Some(file_sha256))
    }

    fn builds(&self) -> impl Iterator<Item = KnownBuild<'_>> {
        self.bootloaders
            .iter()
            .map(KnownBuild::Bootloader)
            .chain(self.isp_firmware.iter().map(KnownBuild::IspFirmware))
    }

    fn validate(
        &self,
        parts: &PartDb,
        programmers: &ProgrammerCatalog,
    ) -> std::result::Result<(), String> {
        if self.bootloaders.is_empty() {
            return Err("no bootloaders".into());
        }
        let mut guide_rows = HashSet::new();
        for bootloader in &self.bootloaders {
            bootloader
                .validate(parts)
                .map_err(|e| format!("bootloader {}: {e}", bootloader.id))?;
            if !guide_rows.insert((bootloader.family, bootloader.guide_row.as_str())) {
                return Err(format!(
                    "bootloader {}: guide row '{}' is used twice in {}",
                    bootloader.id,
                    bootloader.guide_row,
                    bootloader.family.guide_heading()
                ));
            }
        }
        for firmware in &self.isp_firmware {
            firmware
                .validate(parts, programmers)
                .map_err(|e| format!("ISP firmware {}: {e}", firmware.id))?;
        }
        self.check_unique()
    }

    /// Ids are unique across both lists, and no hash names two builds (so identification is
    /// never ambiguous).
    fn check_unique(&self) -> std::result::Result<(), String> {
        let mut ids = HashSet::new();
        let mut hashes: HashMap<(&str, Sha256), &str> = HashMap::new();
        for build in self.builds() {
            if !ids.insert(build.id().to_ascii_lowercase()) {
                return Err(format!("id '{}' is used twice", build.id()));
            }
            let hex = build.hex();
            let tagged = [("file", hex.file_sha256), ("content", hex.content_sha256)];
            for (kind, hash) in tagged {
                let Some(hash) = hash else { continue };
                if let Some(other) = hashes.insert((kind, hash), build.id()) {
                    return Err(format!(
                        "{} and {other} have the same {kind} SHA-256",
                        build.id()
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_usb(id: UsbId) -> std::result::Result<(), String> {
    if id.vid == 0 {
        return Err(format!("USB id {id} has vendor id 0"));
    }
    Ok(())
}
