//! What a hex file is, before anything is flashed: its ranges, size, pages, hashes, which
//! catalog build it is, and whether it fits a part's boot section. Shared by `hex info` and the
//! GUI's file panel.

use sha2::{Digest, Sha256};

use crate::catalog::{BootloaderCatalog, KnownBuild, sha256_hex};
use crate::hex::{MemoryImage, fits_boot_section};
use crate::part::Part;

/// One contiguous run of data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SegmentInfo {
    /// First byte address.
    pub start: u32,
    /// Number of bytes.
    pub len: u64,
    /// `0x7000-0x7FFF`.
    pub range: String,
}

/// A catalog build the file was identified as.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KnownBuildInfo {
    /// Catalog id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `bootloader` or `isp-firmware`.
    pub kind: &'static str,
    /// MCU ids it runs on.
    pub mcus: Vec<String>,
}

/// Whether the image fits the part's boot sections.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootFit {
    /// The part checked against.
    pub part: String,
    /// The smallest boot section (BOOTSZ value) that holds the image, if any.
    pub bootsz: Option<u8>,
    /// Its size in bytes.
    pub section_bytes: Option<u32>,
    /// Plain-language verdict.
    pub message: String,
}

/// Everything `hex info` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageInfo {
    /// Segments in address order.
    pub segments: Vec<SegmentInfo>,
    /// Bytes of data.
    pub data_bytes: u64,
    /// Lowest to highest address.
    pub range: String,
    /// Page size used for `pages_touched`.
    pub page_size: u32,
    /// Pages holding data.
    pub pages_touched: usize,
    /// Content SHA-256 (formatting-independent; see `MemoryImage::content_sha256`).
    pub content_sha256: String,
    /// SHA-256 of the file bytes, when a file was read.
    pub file_sha256: Option<String>,
    /// The known build, if the catalog has it.
    pub known_build: Option<KnownBuildInfo>,
    /// Boot section check, when a part was given.
    pub boot_fit: Option<BootFit>,
}

/// Inspects an image (and the raw file it came from, for the file hash).
pub fn inspect(image: &MemoryImage, file_bytes: Option<&[u8]>, part: Option<&Part>) -> ImageInfo {
    let page_size = part.map_or(128, |p| p.flash.page_size);
    let content = image.content_sha256();
    let file_hash: Option<[u8; 32]> = file_bytes.map(|b| Sha256::digest(b).into());
    let known = BootloaderCatalog::builtin().ok().and_then(|cat| {
        cat.identify_content(&content)
            .or_else(|| file_hash.and_then(|h| cat.identify_file(&h)))
    });
    ImageInfo {
        segments: image
            .segments()
            .iter()
            .map(|s| SegmentInfo {
                start: s.start,
                len: s.data.len() as u64,
                range: s.range_string(),
            })
            .collect(),
        data_bytes: image.data_len(),
        range: image.range_string(),
        page_size,
        pages_touched: image.pages_touched(page_size).len(),
        content_sha256: sha256_hex(&content),
        file_sha256: file_hash.as_ref().map(sha256_hex),
        known_build: known.map(|k| match k {
            KnownBuild::Bootloader(b) => KnownBuildInfo {
                id: b.id.clone(),
                name: b.name.clone(),
                kind: "bootloader",
                mcus: b.mcus.clone(),
            },
            KnownBuild::IspFirmware(f) => KnownBuildInfo {
                id: f.id.clone(),
                name: f.name.clone(),
                kind: "isp-firmware",
                mcus: f.mcu.iter().cloned().collect(),
            },
        }),
        boot_fit: part.map(|p| boot_fit(image, p)),
    }
}

fn boot_fit(image: &MemoryImage, part: &Part) -> BootFit {
    let mut sections: Vec<_> = part.boot_sections.iter().collect();
    sections.sort_by_key(|s| s.words);
    let fitting = sections
        .iter()
        .find(|s| fits_boot_section(image, part, s).is_ok());
    match fitting {
        Some(s) => BootFit {
            part: part.id.clone(),
            bootsz: Some(s.bootsz),
            section_bytes: Some(s.bytes()),
            message: format!(
                "fits the {}-byte boot section (BOOTSZ={:02b}, from 0x{:04X})",
                s.bytes(),
                s.bootsz,
                s.start_byte()
            ),
        },
        None => {
            let largest = sections.last().copied();
            let reason = largest
                .and_then(|s| fits_boot_section(image, part, s).err())
                .map(|e| e.to_string())
                .unwrap_or_else(|| "the part has no boot section".into());
            BootFit {
                part: part.id.clone(),
                bootsz: None,
                section_bytes: None,
                message: format!("not a bootloader for the {}: {reason}", part.name),
            }
        }
    }
}
