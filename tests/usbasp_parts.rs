//! The `usbasp` driver against the emulated USBasp firmware, for every part in the database:
//! signature, erase, flash and EEPROM pages, read-back, fuses and lock, checked on the emulated
//! chip itself afterwards.

mod usbasp_common;

use isp_toolbox::Memory;
use isp_toolbox::emulate::socket::lock;
use isp_toolbox::part::{FuseKind, Part};
use isp_toolbox::programmer::Programmer;
use usbasp_common::*;

/// The flash pages a test writes: the first, one in the middle, the last, and on parts above
/// 64 KB the first pages of the upper half (which need SETLONGADDRESS).
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
fn every_part_programs_and_reads_back_through_the_emulated_usbasp() {
    for part in parts() {
        let socket = running_board(part);
        let (mut prog, device) = driver(part, &socket);
        let name = &part.name;

        prog.enter(part).unwrap();
        assert_eq!(prog.read_signature().unwrap(), part.signature, "{name}");
        // Fast clock: the chip runs at 16 MHz.
        let hz = prog.set_sck(2_666_666).unwrap();
        assert_eq!(hz, 1_500_000, "{name}");
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
        // Read back through the driver (long addresses above 64 KB).
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
    prog.set_sck(2_666_666).unwrap();
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
    println!("32 KB write + read at 1.5 MHz: {stats:?}");
}
