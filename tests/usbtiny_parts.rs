//! The `usbtiny` driver against the emulated USBtiny firmware, for every part in the database:
//! signature, erase, flash and EEPROM pages, read-back, fuses and lock, checked on the emulated
//! chip itself afterwards.

mod usbtiny_common;

use isp_toolbox::Memory;
use isp_toolbox::emulate::socket::lock;
use isp_toolbox::part::{FuseKind, Part};
use isp_toolbox::programmer::Programmer;
use usbtiny_common::*;

/// The flash pages a test writes: the first, one in the middle, the last, and on parts above
/// 64 KB the first and last pages of the upper half (which bulk requests cannot read).
fn pages_to_write(part: &Part) -> Vec<u32> {
    let page = part.flash.page_size;
    let mut pages = vec![0, part.flash.size / 2 - 3 * page, part.flash.size - page];
    if part.flash.size > 0x1_0000 {
        pages.extend([0x1_0000, 0x1_0000 + page]);
    }
    pages.sort_unstable();
    pages.dedup();
    pages
}

#[test]
fn every_part_programs_and_reads_back_through_the_emulated_usbtiny() {
    for part in parts() {
        let socket = running_board(part);
        let (mut prog, device) = driver(part, &socket);
        let name = &part.name;

        prog.enter(part).unwrap();
        assert_eq!(prog.read_signature().unwrap(), part.signature, "{name}");
        // Fast clock: the chip runs at 16 MHz.
        let hz = prog.set_sck(2_000_000).unwrap();
        assert_eq!(hz, 342_857, "{name}");
        assert_eq!(
            prog.read_signature().unwrap(),
            part.signature,
            "{name} at {hz} Hz"
        );

        prog.chip_erase(part).unwrap();
        let flash_page = part.flash.page_size as usize;
        let pages = pages_to_write(part);
        for (i, &addr) in pages.iter().enumerate() {
            let data = pattern(flash_page, i as u32 + 1);
            prog.write_page(part, Memory::Flash, addr, &data).unwrap();
        }
        // Read back through the driver: bulk below 64 KB, byte by byte above.
        for (i, &addr) in pages.iter().enumerate() {
            let mut back = vec![0u8; flash_page];
            prog.read(part, Memory::Flash, addr, &mut back).unwrap();
            assert_eq!(
                back,
                pattern(flash_page, i as u32 + 1),
                "{name} page 0x{addr:05X}"
            );
        }
        // A read that spans pages and an odd length, then the chip's own view.
        let mut span = vec![0u8; flash_page + 37];
        prog.read(part, Memory::Flash, 11, &mut span).unwrap();
        {
            let s = lock(&socket);
            let chip = s.chip().unwrap();
            assert_eq!(span, chip.flash()[11..11 + span.len()], "{name}");
            for (i, &addr) in pages.iter().enumerate() {
                let at = addr as usize;
                assert_eq!(
                    chip.flash()[at..at + flash_page],
                    pattern(flash_page, i as u32 + 1)[..],
                    "{name} chip page 0x{addr:05X}"
                );
            }
            // Pages nobody wrote stay erased.
            let untouched = (part.flash.size / 4) as usize;
            assert!(
                chip.flash()[untouched..untouched + flash_page]
                    .iter()
                    .all(|&b| b == 0xFF)
            );
            assert_eq!(
                chip.stats().flash_pages_written,
                pages.len() as u64,
                "{name}"
            );
        }

        // EEPROM: first and last pages.
        let ee_page = part.eeprom.page_size as usize;
        let ee_pages = [0, part.eeprom.size - part.eeprom.page_size];
        for (i, &addr) in ee_pages.iter().enumerate() {
            prog.write_page(part, Memory::Eeprom, addr, &pattern(ee_page, 40 + i as u32))
                .unwrap();
        }
        let mut eeprom = vec![0u8; part.eeprom.size as usize];
        prog.read(part, Memory::Eeprom, 0, &mut eeprom).unwrap();
        assert_eq!(eeprom, lock(&socket).chip().unwrap().eeprom(), "{name}");
        for (i, &addr) in ee_pages.iter().enumerate() {
            let at = addr as usize;
            assert_eq!(
                eeprom[at..at + ee_page],
                pattern(ee_page, 40 + i as u32)[..]
            );
        }

        // Fuses: a harmless change to each, compared on the implemented bits.
        for kind in [FuseKind::Low, FuseKind::High, FuseKind::Extended] {
            let Some(byte) = part.fuse(kind) else {
                continue;
            };
            let before = prog.read_fuse(kind).unwrap();
            // Flip the most significant implemented, harmless bit: EESAVE on hfuse (keeps
            // SPIEN), CKOUT/BODEN-ish on lfuse does not matter to ISP at 16 MHz.
            let flip = match kind {
                FuseKind::High => part.field(kind, "EESAVE").unwrap().mask,
                FuseKind::Low => 0x40,
                _ => byte.mask & byte.mask.wrapping_neg(),
            };
            let wanted = before ^ flip;
            prog.write_fuse(part, kind, wanted).unwrap();
            let read = prog.read_fuse(kind).unwrap();
            assert_eq!(read & byte.mask, wanted & byte.mask, "{name} {kind}");
            assert_eq!(
                lock(&socket).chip().unwrap().fuse(kind),
                Some(read),
                "{name} {kind}"
            );
        }
        // Lock: LB = 10 (no more programming), then erase clears it.
        prog.write_fuse(part, FuseKind::Lock, 0xFE).unwrap();
        assert_eq!(
            prog.read_fuse(FuseKind::Lock).unwrap() & 0x3F,
            0x3E,
            "{name}"
        );
        prog.chip_erase(part).unwrap();
        assert_eq!(
            prog.read_fuse(FuseKind::Lock).unwrap() & 0x3F,
            0x3F,
            "{name}"
        );

        prog.leave().unwrap();
        assert!(!lock(&socket).reset_asserted(), "{name}: RESET released");
        assert_clean_timing(&socket, name);
        let stats = device_stats(&device);
        assert!(
            stats.modeled_seconds > 0.0 && stats.round_trips > 0,
            "{name}"
        );
    }
}

#[test]
fn a_full_flash_image_writes_and_reads_back_identically() {
    let part = part("atmega32u4");
    let socket = running_board(part);
    let (mut prog, device) = driver(part, &socket);
    prog.set_sck(2_000_000).unwrap();
    prog.enter(part).unwrap();
    prog.chip_erase(part).unwrap();
    let image = pattern(part.flash.size as usize, 9);
    for (i, page) in image.chunks(part.flash.page_size as usize).enumerate() {
        let addr = i as u32 * part.flash.page_size;
        prog.write_page(part, Memory::Flash, addr, page).unwrap();
    }
    let mut back = vec![0u8; image.len()];
    let chunk = prog.info().capabilities.read_chunk as usize;
    assert!(chunk >= 255, "reads {chunk} bytes per call");
    for (i, piece) in back.chunks_mut(chunk).enumerate() {
        prog.read(part, Memory::Flash, (i * chunk) as u32, piece)
            .unwrap();
    }
    prog.leave().unwrap();
    assert_eq!(back, image);
    assert_eq!(lock(&socket).chip().unwrap().flash(), &image[..]);
    assert_clean_timing(&socket, "full image");
    let stats = device_stats(&device);
    assert_eq!(stats.pages_written, 256);
    println!("32 KB write + read at 343 kHz: {stats:?}");
}

#[test]
fn the_upper_half_of_an_at90usb1286_is_written_in_bulk_and_read_byte_by_byte() {
    let part = part("at90usb1286");
    let socket = running_board(part);
    let (mut prog, device) = driver(part, &socket);
    prog.set_sck(2_000_000).unwrap();
    prog.enter(part).unwrap();
    prog.chip_erase(part).unwrap();
    // A boot section at the very top (the HalfKay / DFU place), across the 64 KB line too.
    let top = part.flash.size - 4 * part.flash.page_size;
    let cross = 0x1_0000 - part.flash.page_size;
    for (seed, addr) in [(1, cross), (2, 0x1_0000), (3, top)] {
        let data = pattern(part.flash.page_size as usize, seed);
        prog.write_page(part, Memory::Flash, addr, &data).unwrap();
    }
    let before = device_stats(&device).round_trips;
    let mut both = vec![0u8; 2 * part.flash.page_size as usize];
    prog.read(part, Memory::Flash, cross, &mut both).unwrap();
    let transfers = device_stats(&device).round_trips - before;
    let page = part.flash.page_size as usize;
    assert_eq!(both[..page], pattern(page, 1)[..]);
    assert_eq!(both[page..], pattern(page, 2)[..]);
    // One bulk transfer (2 at most) below the line, one SPI request per byte above.
    assert!(
        (page as u64 + 1..=page as u64 + 2).contains(&transfers),
        "{transfers} transfers"
    );
    let mut last = vec![0u8; page];
    prog.read(part, Memory::Flash, top, &mut last).unwrap();
    assert_eq!(last, pattern(page, 3));
    // The chip agrees, and the low-half aliases of those pages stayed erased.
    let s = lock(&socket);
    let flash = s.chip().unwrap().flash();
    assert_eq!(
        flash[top as usize..top as usize + page],
        pattern(page, 3)[..]
    );
    let alias = (top - 0x1_0000) as usize;
    assert!(flash[alias..alias + page].iter().all(|&b| b == 0xFF));
    drop(s);
    assert_clean_timing(&socket, "AT90USB1286");
}

#[test]
fn an_eeprom_without_page_instructions_is_written_with_firmware_polling() {
    // The ATmega32A has no EEPROM page instructions and no RDY/BSY: the firmware writes each
    // byte (C0) and polls it back (A0); 0xFF cannot be polled, so it waits the timeout.
    let part = part("atmega32a");
    assert!(!part.eeprom_page_ops && !part.rdy_bsy_poll);
    let socket = running_board(part);
    let (mut prog, _device) = driver(part, &socket);
    prog.enter(part).unwrap();
    let data = [0x12, 0xFF, 0x00, 0xA5];
    prog.write_page(part, Memory::Eeprom, 0x3FC, &data).unwrap();
    prog.write_page(part, Memory::Eeprom, 0x3F8, &[0xFF; 4])
        .unwrap();
    let mut back = [0u8; 8];
    prog.read(part, Memory::Eeprom, 0x3F8, &mut back).unwrap();
    assert_eq!(back, [0xFF, 0xFF, 0xFF, 0xFF, 0x12, 0xFF, 0x00, 0xA5]);
    assert_eq!(lock(&socket).chip().unwrap().stats().eeprom_writes, 8);
    assert_clean_timing(&socket, "ATmega32A EEPROM");
}

#[test]
fn a_fuse_the_part_does_not_have_is_refused_before_anything_is_sent() {
    let part = part("atmega32a");
    let socket = running_board(part);
    let (mut prog, device) = driver(part, &socket);
    prog.enter(part).unwrap();
    let before = device_stats(&device).round_trips;
    let err = prog.write_fuse(part, FuseKind::Extended, 0xFF).unwrap_err();
    assert!(err.to_string().contains("no efuse"), "{err}");
    assert_eq!(device_stats(&device).round_trips, before);
}
