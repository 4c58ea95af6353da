//! The main journey: flash a bootloader and set its fuses.
//!
//! [`validate`] runs before anything touches the chip (it needs no programmer), and
//! [`flash_bootloader`] refuses to start unless the fuse change is already authorized, so a
//! refused fuse write never leaves a half-flashed chip behind.

use super::backup::{BackupOptions, save_backup};
use super::detect::check_signature;
use super::fuses::{read_all, write_fuses};
use super::memory::{erase, verify_image, write_image};
use super::safety::{Approval, FuseReview, FuseValues, review};
use super::{Ctx, Level};
use crate::catalog::{Bootloader, BootloaderCatalog, KnownBuild};
use crate::error::{Error, Memory, Result};
use crate::hex::{MemoryImage, fits_boot_section};
use crate::part::{BootSection, FuseKind, Part};
use crate::util::hex_bytes;

/// What the app knows about a bootloader image before flashing it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Validation {
    /// `0x7000-0x7FFF`.
    pub range: String,
    /// Bytes of data in the image.
    pub bytes: u64,
    /// The boot section the fuses select.
    pub boot_section_start: u32,
    /// Its size in bytes.
    pub boot_section_bytes: u32,
    /// Catalog id of the known build this image is, if any.
    pub known_build: Option<String>,
    /// Content SHA-256, hex.
    pub content_sha256: String,
    /// Things the user should read (unknown build, a different catalog entry than selected...).
    pub warnings: Vec<String>,
}

/// Checks a bootloader image against the part, the fuses that will be written and the selected
/// catalog entry. Nothing here touches a programmer.
pub fn validate(
    part: &Part,
    image: &MemoryImage,
    fuses: &FuseValues,
    selected: Option<&Bootloader>,
) -> Result<Validation> {
    super::memory::check_fits(part, Memory::Flash, image)?;
    let hfuse = fuses.get(&FuseKind::High).copied().ok_or_else(|| {
        Error::invalid(
            "a bootloader needs a high fuse value: its BOOTSZ sets the boot section size",
        )
    })?;
    let section: &BootSection = part.boot_section_for_hfuse(hfuse).ok_or_else(|| {
        Error::invalid(format!(
            "hfuse 0x{hfuse:02X} has no BOOTSZ field for the {}",
            part.name
        ))
    })?;
    fits_boot_section(image, part, section)?;
    if let Some(bl) = selected
        && !bl.runs_on(&part.id)
    {
        return Err(Error::invalid(format!(
            "the bootloader '{}' is for {}, not the {}",
            bl.name,
            bl.mcus.join(" / "),
            part.name
        )));
    }
    let hash = image.content_sha256();
    let mut warnings = Vec::new();
    let known = BootloaderCatalog::builtin()?.identify_content(&hash);
    let known_build = match known {
        Some(KnownBuild::Bootloader(b)) => {
            if !b.runs_on(&part.id) {
                return Err(Error::invalid(format!(
                    "this file is the known build '{}', which is for {}, not the {}",
                    b.name,
                    b.mcus.join(" / "),
                    part.name
                )));
            }
            if let Some(sel) = selected
                && sel.id != b.id
            {
                warnings.push(format!(
                    "the file is the known build '{}', but '{}' is selected: check the fuse preset",
                    b.name, sel.name
                ));
            }
            Some(b.id.clone())
        }
        Some(KnownBuild::IspFirmware(f)) => {
            return Err(Error::invalid(format!(
                "this file is '{}', programmer firmware for a {}, not a bootloader",
                f.name, f.board
            )));
        }
        None => {
            warnings.push(
                "unknown build: its content hash is not in the catalog (fine for your own builds; check it is for this board)"
                    .into(),
            );
            None
        }
    };
    Ok(Validation {
        range: image.range_string(),
        bytes: image.data_len(),
        boot_section_start: section.start_byte(),
        boot_section_bytes: section.bytes(),
        known_build,
        content_sha256: crate::catalog::sha256_hex(&hash),
        warnings,
    })
}

/// Everything the journey needs.
#[derive(Debug, Clone)]
pub struct BootloaderPlan {
    /// The bootloader image.
    pub image: MemoryImage,
    /// The fuse preset (lfuse/hfuse/efuse) and optionally the lock byte.
    pub fuses: FuseValues,
    /// The user's approval of the fuse change.
    pub approval: Approval,
    /// Where to save the backup, and what to include.
    pub backup: BackupOptions,
}

/// What the journey did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BootloaderReport {
    /// The signature read.
    pub signature: String,
    /// The backup file written.
    pub backup_file: Option<std::path::PathBuf>,
    /// Pages written.
    pub pages_written: usize,
    /// The fuse review that was applied.
    pub review: FuseReview,
    /// Fuses and lock read back at the end.
    pub fuses_after: FuseValues,
}

/// The fuse review for this plan against what the chip holds now (read inside a session).
pub fn review_plan(ctx: &mut Ctx<'_>, plan: &BootloaderPlan) -> Result<FuseReview> {
    let current = read_all(ctx.prog, ctx.part)?;
    review(ctx.part, &current, &plan.fuses)
}

/// Runs the journey inside an open programming session: signature check, backup, fuse
/// authorization (before anything is erased), erase, write, verify, fuses, lock.
pub fn flash_bootloader(ctx: &mut Ctx<'_>, plan: &BootloaderPlan) -> Result<BootloaderReport> {
    let signature = check_signature(ctx)?;
    let review = review_plan(ctx, plan)?;
    // Refuse now, while the chip is untouched.
    review.authorize(&plan.approval)?;
    let backup_file = save_backup(ctx, &plan.backup)?;
    erase(ctx)?;
    let written = write_image(ctx, Memory::Flash, &plan.image, true)?;
    verify_image(ctx, Memory::Flash, &plan.image)?;
    let (fuse_values, lock): (FuseValues, FuseValues) =
        plan.fuses.iter().partition(|(k, _)| **k != FuseKind::Lock);
    // The whole change was authorized above; the two writes below are parts of it.
    let authorized = Approval {
        accept_high: true,
        ..plan.approval.clone()
    };
    // Read the fuses again: the erase has cleared the lock bits since the review.
    let mut after = write_fuses(ctx, &fuse_values, &authorized, None)?.after;
    if !lock.is_empty() {
        after = write_fuses(ctx, &lock, &authorized, Some(after))?.after;
    }
    ctx.log(
        Level::Success,
        format!(
            "Bootloader flashed and verified; fuses {}",
            after
                .iter()
                .map(|(k, v)| format!("{k}=0x{v:02X}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    Ok(BootloaderReport {
        signature: hex_bytes(&signature),
        backup_file,
        pages_written: written.pages_written.len(),
        review,
        fuses_after: after,
    })
}
