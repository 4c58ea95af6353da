//! Our Bus Pirate driver against the emulated Bus Pirate v3, for every part in the database:
//! signature, programming mode, erase, page writes (partial images, the AT90USB1286's upper
//! half), reads, EEPROM, fuses and lock, each checked on the emulated chip itself, with the
//! chip's timing respected throughout.

mod buspirate_common;

use buspirate_common::*;
use isp_toolbox::Memory;
use isp_toolbox::emulate::EmulatedChip;
use isp_toolbox::emulate::buspirate::BusPirateMode;
use isp_toolbox::emulate::socket::{Socket, lock};
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::job::{CancelToken, Ctx, JobEvent, memory, sck};
use isp_toolbox::part::{FuseKind, Part};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::buspirate::BusPirateOptions;

/// The fastest clock a 16 MHz target allows (f/6): speed code 5, 2.667 MHz.
fn fastest_for_16mhz() -> u32 {
    Part::max_sck_hz(16_000_000)
}

/// New fuse values that keep the chip programmable at 16 MHz: another crystal start-up time,
/// BOOTRST flipped, BODLEVEL0 flipped, a boot lock bit.
fn new_fuse(part: &Part, kind: FuseKind) -> u8 {
    let default = part.fuse(kind).unwrap().default;
    match kind {
        FuseKind::Low => 0xEF,
        FuseKind::High => default ^ 0x01,
        FuseKind::Extended => default ^ 0x01,
        FuseKind::Lock => 0xEF,
    }
}

/// Flash pages a bootloader job touches: the first two, one in the middle and the last.
fn sample_pages(part: &Part) -> Vec<u32> {
    let pages = part.flash.pages();
    vec![0, 1, pages / 2, pages - 1]
}

#[test]
fn every_part_programs_reads_and_keeps_its_timing() {
    for part in parts() {
        let name = &part.name;
        let socket = socket_with(part);
        let (mut bp, handle, status) = connect(&socket, BusPirateOptions::default());
        assert_eq!(status.get().mode, BusPirateMode::Spi, "{name}");

        bp.enter(part).unwrap();
        assert!(
            lock(&socket).chip().unwrap().programming_enabled(),
            "{name}"
        );
        assert_eq!(bp.read_signature().unwrap(), part.signature, "{name}");
        let hz = bp.set_sck(fastest_for_16mhz()).unwrap();
        assert_eq!(hz, 2_666_666, "{name}");
        assert_eq!(status.get().spi_speed_code, Some(5));
        // The speed change raised CS (RESET); the driver is back in programming mode.
        assert_eq!(bp.read_signature().unwrap(), part.signature, "{name}");

        bp.chip_erase(part).unwrap();
        assert!(chip_flash(&socket).iter().all(|&b| b == 0xFF), "{name}");
        assert_eq!(chip_stats(&socket).chip_erases, 1);

        // A partial image: untouched pages stay erased.
        let page = part.flash.page_size;
        let mut expected = vec![0xFFu8; part.flash.size as usize];
        for p in sample_pages(part) {
            let addr = p * page;
            let data = pattern(page as usize, p);
            bp.write_page(part, Memory::Flash, addr, &data).unwrap();
            expected[addr as usize..(addr + page) as usize].copy_from_slice(&data);
        }
        assert!(chip_flash(&socket) == expected, "{name}: flash contents");
        let chunk = bp.info().capabilities.read_chunk as usize;
        let mut read_back = vec![0u8; expected.len()];
        for (i, slice) in read_back.chunks_mut(chunk).enumerate() {
            bp.read(part, Memory::Flash, (i * chunk) as u32, slice)
                .unwrap();
        }
        assert!(read_back == expected, "{name}: flash read back");

        // EEPROM: the first and the last page.
        let epage = part.eeprom.page_size;
        let last = part.eeprom.size - epage;
        for (addr, seed) in [(0, 7), (last, 9)] {
            let data = pattern(epage as usize, seed);
            bp.write_page(part, Memory::Eeprom, addr, &data).unwrap();
            let mut back = vec![0u8; epage as usize];
            bp.read(part, Memory::Eeprom, addr, &mut back).unwrap();
            assert_eq!(back, data, "{name}: EEPROM at 0x{addr:04X}");
            assert_eq!(
                &chip_eeprom(&socket)[addr as usize..(addr + epage) as usize],
                &data[..],
                "{name}"
            );
        }

        // Fuses, then the lock byte (lock last: LB1 would lock the fuses).
        let mut kinds: Vec<FuseKind> = part.fuses.iter().map(|f| f.kind).collect();
        kinds.push(FuseKind::Lock);
        for kind in kinds {
            let mask = part.fuse(kind).unwrap().mask;
            let value = new_fuse(part, kind);
            bp.write_fuse(part, kind, value).unwrap();
            let read = bp.read_fuse(kind).unwrap();
            assert_eq!(read & mask, value & mask, "{name} {kind}");
            let on_chip = lock(&socket).chip().unwrap().fuse(kind).unwrap();
            assert_eq!(on_chip & mask, value & mask, "{name} {kind} on the chip");
        }

        // Leave and come back.
        bp.leave().unwrap();
        assert!(!lock(&socket).reset_asserted(), "{name}: RESET released");
        bp.enter(part).unwrap();
        assert_eq!(bp.read_signature().unwrap(), part.signature, "{name}");
        bp.leave().unwrap();

        bp.close().unwrap();
        let after = status.get();
        assert_eq!(after.mode, BusPirateMode::Terminal, "{name}: back at HiZ>");
        assert!(!after.rx_overrun, "{name}");
        assert_timing_respected(&socket, name);
        let stats = handle.stop();
        assert_eq!(
            stats.pages_written as usize,
            sample_pages(part).len() + 2 * pages_per_eeprom_write(part)
        );
    }
}

/// EEPROM "pages" the emulator counts for one page write: one page command, or one byte write
/// per byte on parts without EEPROM page instructions.
fn pages_per_eeprom_write(part: &Part) -> usize {
    if part.eeprom_page_ops {
        1
    } else {
        part.eeprom.page_size as usize
    }
}

#[test]
fn the_at90usb1286_upper_half_writes_and_reads_back() {
    let part = part("at90usb1286");
    let socket = socket_with(part);
    let (mut bp, _handle, status) = connect(&socket, BusPirateOptions::default());
    bp.enter(part).unwrap();
    bp.set_sck(2_000_000).unwrap();
    bp.chip_erase(part).unwrap();

    let half = 0x10000usize;
    let image = pattern(half, 0x55);
    let page = part.flash.page_size as usize;
    for (i, data) in image.chunks(page).enumerate() {
        bp.write_page(part, Memory::Flash, (half + i * page) as u32, data)
            .unwrap();
    }
    let flash = chip_flash(&socket);
    assert!(flash[..half].iter().all(|&b| b == 0xFF));
    assert!(flash[half..] == image[..], "upper half on the chip");

    // In job-sized chunks, in one call, and odd tails right up to the last byte: the bulk
    // read's word + byte limit must not cost a byte.
    let chunk = bp.info().capabilities.read_chunk as usize;
    let mut back = vec![0u8; half];
    for (i, slice) in back.chunks_mut(chunk).enumerate() {
        bp.read(part, Memory::Flash, (half + i * chunk) as u32, slice)
            .unwrap();
    }
    assert!(back == image, "chunked read");
    let mut whole = vec![0u8; half];
    bp.read(part, Memory::Flash, half as u32, &mut whole)
        .unwrap();
    assert!(whole == image, "one read of 64 KiB");
    for (start, len) in [
        (0x1FF01u32, 255usize),
        (0x1FFFF, 1),
        (0x1FE7F, 0x181),
        (0xFFFF, 2),
    ] {
        let mut tail = vec![0u8; len];
        bp.read(part, Memory::Flash, start, &mut tail).unwrap();
        assert_eq!(
            tail,
            flash[start as usize..start as usize + len],
            "read at 0x{start:05X}"
        );
    }
    bp.close().unwrap();
    assert!(!status.get().rx_overrun);
    assert_timing_respected(&socket, "usb1286");
}

#[test]
fn a_full_dense_image_writes_and_verifies_in_modeled_time() {
    let part = part("m32u4");
    let socket = socket_with(part);
    let (mut bp, _handle, _status) = connect(&socket, BusPirateOptions::default());
    bp.enter(part).unwrap();
    bp.set_sck(2_000_000).unwrap();
    bp.chip_erase(part).unwrap();
    let image = pattern(part.flash.size as usize, 3);
    let start = now_s(&socket);
    for (i, data) in image.chunks(128).enumerate() {
        bp.write_page(part, Memory::Flash, (i * 128) as u32, data)
            .unwrap();
    }
    let written = now_s(&socket);
    let mut back = vec![0u8; image.len()];
    let chunk = bp.info().capabilities.read_chunk as usize;
    for (i, slice) in back.chunks_mut(chunk).enumerate() {
        bp.read(part, Memory::Flash, (i * chunk) as u32, slice)
            .unwrap();
    }
    let read = now_s(&socket);
    assert!(back == image);
    assert_timing_respected(&socket, "m32u4 dense");
    // Modeled time at 2 MHz: the UART carries four bytes per flash byte when writing (about
    // 45 ms of a page's 62 ms), one when reading. See docs/timing/buspirate.md.
    let (write_s, read_s) = (written - start, read - written);
    println!("32 KiB: write {write_s:.2} s, read {read_s:.2} s (modeled)");
    assert!((14.0..19.0).contains(&write_s), "write took {write_s:.2} s");
    assert!((2.8..3.6).contains(&read_s), "read took {read_s:.2} s");
}

#[test]
fn the_job_layer_drives_a_factory_fresh_chip_through_the_bus_pirate() {
    let part = part("m32u4");
    let socket = Socket::with_chip(EmulatedChip::factory_fresh(part)).shared();
    let (mut bp, _handle, _status) = connect(&socket, BusPirateOptions::default());
    let mut events = Vec::new();
    let mut reporter = |e: JobEvent| events.push(e);
    let mut image = MemoryImage::new();
    let boot = pattern(4096, 11);
    image.insert(0x7000, &boot).unwrap();
    {
        let mut ctx = Ctx::new(&mut bp, part, &mut reporter, CancelToken::new());
        ctx.session(|ctx| {
            sck::start(ctx, None)?;
            sck::negotiate(ctx, None, false)?;
            memory::erase(ctx)?;
            memory::write_image(ctx, Memory::Flash, &image, true)?;
            memory::verify_image(ctx, Memory::Flash, &image)
        })
        .unwrap();
    }
    // A factory-fresh 32U4 runs at 1 MHz: the clock may not exceed 250 kHz.
    assert!(bp.sck_hz().unwrap() <= 250_000);
    assert_eq!(&chip_flash(&socket)[0x7000..0x8000], &boot[..]);
    assert_timing_respected(&socket, "job on a factory-fresh chip");
    bp.close().unwrap();
}
