//! The production image: firmware + bootloader, and the mistakes merge must catch.

use isp_toolbox::Error;
use isp_toolbox::hex::{MemoryImage, fits_boot_section, merge, read_hex, write_hex};
use isp_toolbox::part::{Part, PartDb};

fn atmega32u4() -> &'static Part {
    PartDb::builtin().unwrap().find("atmega32u4").unwrap()
}

/// Caterina's fuses (hfuse 0xD8: BOOTSZ=0, a 4 KiB boot section from 0x7000).
fn caterina_boot_start() -> u32 {
    atmega32u4()
        .boot_section_for_hfuse(0xD8)
        .unwrap()
        .start_byte()
}

fn image(start: u32, len: usize, fill: u8) -> MemoryImage {
    let mut image = MemoryImage::new();
    image.insert(start, &vec![fill; len]).unwrap();
    image
}

fn image_error(result: Result<MemoryImage, Error>) -> String {
    match result {
        Err(Error::Image(reason)) => reason,
        other => panic!("expected an image error, got {other:?}"),
    }
}

#[test]
fn adjacent_images_merge_into_one_full_flash() {
    let boot = caterina_boot_start();
    assert_eq!(boot, 0x7000);
    let firmware = image(0, 0x7000, 0x11);
    let bootloader = image(0x7000, 0x1000, 0x22);
    let merged = merge(&firmware, &bootloader, atmega32u4(), boot).unwrap();
    assert_eq!(merged.data_len(), 0x8000);
    assert_eq!(merged.segments().len(), 1);
    assert_eq!(merged.get(0x6FFF), Some(0x11));
    assert_eq!(merged.get(0x7000), Some(0x22));
    assert_eq!(merged.range_string(), "0x0000-0x7FFF");
}

#[test]
fn merge_equals_the_guides_text_editor_method() {
    // The guide: drop the firmware's EOF line and paste the bootloader's file after it.
    let mut firmware = image(0, 0x123, 0x5A);
    firmware.insert(0x2000, &[1, 2, 3]).unwrap();
    let bootloader = image(0x7000, 0xFFA, 0xC3);
    let firmware_text = write_hex(&firmware);
    let pasted = format!(
        "{}{}",
        firmware_text.trim_end_matches(":00000001FF\n"),
        write_hex(&bootloader)
    );
    let merged = merge(&firmware, &bootloader, atmega32u4(), 0x7000).unwrap();
    assert_eq!(read_hex(&pasted, "production.hex").unwrap(), merged);
    // Forgetting to remove the EOF line is caught by the reader.
    let careless = format!("{firmware_text}{}", write_hex(&bootloader));
    assert!(read_hex(&careless, "production.hex").is_err());
}

#[test]
fn overlap_by_one_byte_is_refused_saying_where() {
    let firmware = image(0, 0x7001, 0x11);
    let bootloader = image(0x7000, 0x1000, 0x22);
    let reason = image_error(merge(&firmware, &bootloader, atmega32u4(), 0x7000));
    assert!(reason.contains("both hold bytes 0x7000-0x7000"), "{reason}");
    assert!(reason.contains("1 byte(s) too big"), "{reason}");
}

#[test]
fn firmware_one_byte_into_the_boot_section_is_refused() {
    // The bootloader only uses the top 2 KiB, but the fuses reserve 4 KiB from 0x7000.
    let firmware = image(0, 0x7001, 0x11);
    let bootloader = image(0x7800, 0x800, 0x22);
    let reason = image_error(merge(&firmware, &bootloader, atmega32u4(), 0x7000));
    assert!(
        reason.contains("reaches into the boot section (bytes 0x7000-0x7000)"),
        "{reason}"
    );
    assert!(reason.contains("1 byte(s) too big"), "{reason}");
    assert!(reason.contains("BOOTSZ=0"), "{reason}");
}

#[test]
fn bootloader_past_the_end_of_flash_is_refused() {
    let firmware = image(0, 0x100, 0x11);
    let bootloader = image(0x7001, 0x1000, 0x22);
    let reason = image_error(merge(&firmware, &bootloader, atmega32u4(), 0x7000));
    assert!(
        reason.contains("bootloader spans 0x7001-0x8000"),
        "{reason}"
    );
    assert!(
        reason.contains("past the end of the ATmega32U4's 32 KiB flash"),
        "{reason}"
    );
}

#[test]
fn empty_images_are_refused() {
    let some = image(0, 0x10, 0);
    let boot = image(0x7000, 0x10, 0);
    let empty = MemoryImage::new();
    let reason = image_error(merge(&empty, &boot, atmega32u4(), 0x7000));
    assert!(reason.contains("firmware image is empty"), "{reason}");
    let reason = image_error(merge(&some, &empty, atmega32u4(), 0x7000));
    assert!(reason.contains("bootloader image is empty"), "{reason}");
}

#[test]
fn boot_start_must_be_a_byte_address_of_a_boot_section() {
    let firmware = image(0, 0x10, 0);
    let bootloader = image(0x7000, 0x10, 0);
    let err = merge(&firmware, &bootloader, atmega32u4(), 0x3800).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    let text = err.to_string();
    assert!(
        text.contains("0x3800 is a word address, the byte address is 0x7000"),
        "{text}"
    );
    let text = merge(&firmware, &bootloader, atmega32u4(), 0x7100)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("0x7000 (BOOTSZ=0), 0x7800 (BOOTSZ=1)"),
        "{text}"
    );
}

#[test]
fn bootloader_below_its_boot_section_names_the_bootsz_it_needs() {
    let part = atmega32u4();
    let firmware = image(0, 0x10, 0);
    let bootloader = image(0x7000, 0x1000, 0x22);
    let reason = image_error(merge(&firmware, &bootloader, part, 0x7800));
    assert!(
        reason.contains("below the boot section at 0x7800"),
        "{reason}"
    );
    assert!(
        reason.contains("needs BOOTSZ=0 (2048 words from 0x7000)"),
        "{reason}"
    );
}

#[test]
fn fits_boot_section_checks() {
    let part = atmega32u4();
    let four_kib = part.boot_section(0).unwrap();
    let one_kib = part.boot_section(2).unwrap();
    assert!(fits_boot_section(&image(0x7000, 0x1000, 0), part, four_kib).is_ok());
    assert!(fits_boot_section(&image(0x7C00, 0x400, 0), part, one_kib).is_ok());
    let err = fits_boot_section(&image(0x7000, 0x1000, 0), part, one_kib)
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs BOOTSZ=0"), "{err}");
    // Starts below every boot section: not a bootloader for this part (or a combined file).
    let err = fits_boot_section(&image(0x100, 0x10, 0), part, four_kib)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no boot section of this part is that big"),
        "{err}"
    );
    assert!(fits_boot_section(&MemoryImage::new(), part, four_kib).is_err());
    assert!(fits_boot_section(&image(0x7FFF, 2, 0), part, four_kib).is_err());
}
