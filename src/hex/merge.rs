//! The "production" image: application firmware and bootloader in one file, flashed in one go
//! over ISP (the guide's last section, done safely instead of by pasting text files).

use super::image::{MemoryImage, range_string};
use crate::error::{Error, Result};
use crate::part::{BootSection, Part};

/// Joins `firmware` (the application, e.g. QMK) and `bootloader` into one image for `part`.
///
/// `boot_start` is the byte address where the boot section starts, e.g. from the bootloader's
/// catalog entry or from the high fuse (`part.boot_section_for_hfuse(hfuse)?.start_byte()`).
/// It must be the start of one of the part's boot sections; a word address (as datasheets and
/// BOOTSZ tables give them) is refused with the byte address it stands for.
///
/// Refuses, saying where: an empty image, an image past the end of flash, bytes present in both
/// images, firmware reaching into the boot section, and a bootloader outside the boot section
/// (see [`fits_boot_section`]).
pub fn merge(
    firmware: &MemoryImage,
    bootloader: &MemoryImage,
    part: &Part,
    boot_start: u32,
) -> Result<MemoryImage> {
    let section = boot_section_at(part, boot_start)?;
    for (image, what) in [(firmware, "firmware"), (bootloader, "bootloader")] {
        if image.is_empty() {
            return Err(Error::Image(format!(
                "the {what} image is empty: nothing to merge; check the file"
            )));
        }
        check_within_flash(image, part, what)?;
    }
    let too_big = firmware.end() > u64::from(boot_start);
    let too_big_by = || {
        format!(
            "the firmware is {} byte(s) too big for the {}-byte boot section (BOOTSZ={}) \
             starting at 0x{boot_start:04X}, or was built for a smaller bootloader",
            firmware.end() - u64::from(boot_start),
            section.bytes(),
            section.bootsz,
        )
    };
    if let Some((start, end)) = first_overlap(firmware, bootloader) {
        let why = if too_big {
            too_big_by()
        } else {
            "is the firmware already a combined firmware+bootloader build?".to_string()
        };
        return Err(Error::Image(format!(
            "the firmware and the bootloader both hold bytes {}; {why}",
            range_string(start, end)
        )));
    }
    if too_big {
        let intruding = firmware.start().max(boot_start);
        return Err(Error::Image(format!(
            "the firmware reaches into the boot section (bytes {}); {}",
            range_string(intruding, firmware.end()),
            too_big_by()
        )));
    }
    fits_boot_section(bootloader, part, section)?;

    let mut merged = firmware.clone();
    for segment in bootloader.segments() {
        merged.insert(segment.start, &segment.data)?;
    }
    Ok(merged)
}

/// Checks that `image` (a bootloader) lies entirely inside `boot_section` of `part`: not empty,
/// not below the section start, not past the end of flash. The error says which boot section
/// (BOOTSZ) the image would need, when one would do.
pub fn fits_boot_section(
    image: &MemoryImage,
    part: &Part,
    boot_section: &BootSection,
) -> Result<()> {
    if image.is_empty() {
        return Err(Error::Image(
            "the bootloader image is empty; check the file".to_string(),
        ));
    }
    check_within_flash(image, part, "bootloader")?;
    let section_start = boot_section.start_byte();
    if image.start() < section_start {
        let advice = part
            .boot_sections
            .iter()
            .filter(|s| s.start_byte() <= image.start())
            .max_by_key(|s| s.start_byte())
            .map_or_else(
                || {
                    "no boot section of this part is that big: is it a bootloader for this MCU, \
                     or a combined sketch + bootloader file?"
                        .to_string()
                },
                |s| {
                    format!(
                        "it needs BOOTSZ={} ({} words from 0x{:04X})",
                        s.bootsz,
                        s.words,
                        s.start_byte()
                    )
                },
            );
        return Err(Error::Image(format!(
            "the bootloader spans {}, starting below the boot section at 0x{section_start:04X} \
             (BOOTSZ={}, {} words); {advice}",
            image.range_string(),
            boot_section.bootsz,
            boot_section.words
        )));
    }
    Ok(())
}

/// The part's boot section starting at byte address `boot_start`.
fn boot_section_at(part: &Part, boot_start: u32) -> Result<&BootSection> {
    if let Some(section) = part
        .boot_sections
        .iter()
        .find(|s| s.start_byte() == boot_start)
    {
        return Ok(section);
    }
    let starts: Vec<String> = part
        .boot_sections
        .iter()
        .map(|s| format!("0x{:04X} (BOOTSZ={})", s.start_byte(), s.bootsz))
        .collect();
    let word_hint = part
        .boot_sections
        .iter()
        .find(|s| s.start_word == boot_start)
        .map(|s| {
            format!(
                "; 0x{boot_start:04X} is a word address, the byte address is 0x{:04X}",
                s.start_byte()
            )
        })
        .unwrap_or_default();
    Err(Error::invalid(format!(
        "0x{boot_start:04X} is not where a boot section of the {} starts; the starts are {}{word_hint}",
        part.name,
        starts.join(", ")
    )))
}

fn check_within_flash(image: &MemoryImage, part: &Part, what: &str) -> Result<()> {
    let flash_end = u64::from(part.flash.size);
    if image.end() > flash_end {
        return Err(Error::Image(format!(
            "the {what} spans {}, past the end of the {}'s {} KiB flash (last address \
             0x{:04X}); is it built for this MCU?",
            image.range_string(),
            part.name,
            part.flash.size / 1024,
            flash_end.saturating_sub(1)
        )));
    }
    Ok(())
}

/// The first address range holding data in both images.
fn first_overlap(a: &MemoryImage, b: &MemoryImage) -> Option<(u32, u64)> {
    a.segments().iter().find_map(|segment| {
        let other = b.overlap(segment.start, segment.end())?;
        let start = segment.start.max(other.start);
        Some((start, segment.end().min(other.end())))
    })
}
