//! The avrisp driver against the emulated ArduinoISP, for every part in the database: identity,
//! programming mode, erase, flash and EEPROM writes and reads, fuses and lock, with the chip's
//! state checked directly and its timing rules respected.

mod avrisp_common;

use avrisp_common::*;
use isp_toolbox::emulate::arduinoisp::{ArduinoIsp, HostBoard};
use isp_toolbox::emulate::chip::EmulatedChip;
use isp_toolbox::emulate::serial::ServeOptions;
use isp_toolbox::job::{CancelToken, Ctx, JobEvent, detect};
use isp_toolbox::part::{FuseKind, Part};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::stk500v1::{EepromWrites, Stk500v1Options};
use isp_toolbox::{Error, Memory};

/// Pages of flash a part's test writes: the first, one in the middle, the last, and (on the
/// 128 KB parts) one just above 64 KB, where word addresses need all 16 bits.
fn sample_pages(part: &Part) -> Vec<u32> {
    let page = part.flash.page_size;
    let mut pages = vec![
        0,
        page,
        part.flash.size / 2 + page * 3,
        part.flash.size - page,
    ];
    if part.flash.size > 0x10000 {
        pages.push(0x10000);
        pages.push(0x10000 + page);
    }
    pages
}

/// Runs the whole programming cycle on one part.
fn full_cycle(part: &'static Part, board: HostBoard, chip: EmulatedChip) {
    let mut rig = Rig::new(board, Some(chip));
    let socket = rig.socket.clone();
    let d = &mut rig.driver;
    assert!(d.info().firmware.starts_with("ArduinoISP"), "{}", part.name);

    d.enter(part).unwrap();
    assert!(
        on_chip(&socket, |c| c.programming_enabled()),
        "{}",
        part.name
    );
    assert_eq!(d.read_signature().unwrap(), part.signature, "{}", part.name);
    for index in 0..part.calibration_bytes {
        let expected = on_chip(&socket, |c| c.calibration()[usize::from(index)]);
        assert_eq!(d.read_calibration(index).unwrap(), expected);
    }

    // Erase, then a partial image: only the sample pages.
    d.chip_erase(part).unwrap();
    on_chip(&socket, |c| {
        assert!(
            c.flash().iter().all(|&b| b == 0xFF),
            "{}: erased",
            part.name
        )
    });
    let page = part.flash.page_size as usize;
    let pages = sample_pages(part);
    for (i, &addr) in pages.iter().enumerate() {
        let data = test_bytes(addr + i as u32, page);
        d.write_page(part, Memory::Flash, addr, &data).unwrap();
    }
    let mut expected = vec![0xFF; part.flash.size as usize];
    for (i, &addr) in pages.iter().enumerate() {
        let a = addr as usize;
        expected[a..a + page].copy_from_slice(&test_bytes(addr + i as u32, page));
    }
    on_chip(&socket, |c| {
        assert!(
            c.flash() == &expected[..],
            "{}: flash on the chip",
            part.name
        )
    });

    // The whole flash reads back identical, in the job's chunks and at odd edges.
    let mut back = vec![0u8; expected.len()];
    d.read(part, Memory::Flash, 0, &mut back).unwrap();
    assert!(back == expected, "{}: flash read back", part.name);
    let top = part.flash.size - 5;
    let mut tail = [0u8; 5];
    d.read(part, Memory::Flash, top, &mut tail).unwrap();
    assert_eq!(&tail[..], &expected[top as usize..]);

    // EEPROM: the first page, one in the middle and the last one.
    let epage = part.eeprom.page_size;
    let eaddrs = [0, part.eeprom.size / 2 + epage, part.eeprom.size - epage];
    for &addr in &eaddrs {
        let data = test_bytes(0xEE00 + addr, epage as usize);
        d.write_page(part, Memory::Eeprom, addr, &data).unwrap();
    }
    let eeprom = on_chip(&socket, |c| c.eeprom().to_vec());
    for &addr in &eaddrs {
        let a = addr as usize;
        assert_eq!(
            &eeprom[a..a + epage as usize],
            &test_bytes(0xEE00 + addr, epage as usize)[..],
            "{}: EEPROM at 0x{addr:03X}",
            part.name
        );
    }
    let mut eback = vec![0u8; eeprom.len()];
    d.read(part, Memory::Eeprom, 0, &mut eback).unwrap();
    assert_eq!(eback, eeprom, "{}: EEPROM read back", part.name);
    let mut odd = [0u8; 3];
    d.read(part, Memory::Eeprom, eaddrs[1] + 1, &mut odd)
        .unwrap();
    let a = eaddrs[1] as usize + 1;
    assert_eq!(&odd[..], &eeprom[a..a + 3]);

    // Fuses: flip BOOTRST, change the brown-out level; compare on the implemented bits.
    let hfuse = part.fuse(FuseKind::High).unwrap();
    let new_h = (d.read_fuse(FuseKind::High).unwrap() ^ 0x01) | !hfuse.mask;
    d.write_fuse(part, FuseKind::High, new_h).unwrap();
    assert_eq!(
        d.read_fuse(FuseKind::High).unwrap() & hfuse.mask,
        new_h & hfuse.mask
    );
    assert_eq!(
        on_chip(&socket, |c| c.fuse(FuseKind::High)).unwrap() & hfuse.mask,
        new_h & hfuse.mask
    );
    if let Some(efuse) = part.fuse(FuseKind::Extended) {
        let new_e = (d.read_fuse(FuseKind::Extended).unwrap() & !0x03) | 0x02 | !efuse.mask;
        d.write_fuse(part, FuseKind::Extended, new_e).unwrap();
        assert_eq!(
            d.read_fuse(FuseKind::Extended).unwrap() & efuse.mask,
            new_e & efuse.mask
        );
    }
    d.write_fuse(part, FuseKind::Low, 0xFF).unwrap();
    assert_eq!(d.read_fuse(FuseKind::Low).unwrap(), 0xFF);

    // Lock: boot lock bits programmed (LB stays open), then erased again.
    d.write_fuse(part, FuseKind::Lock, 0xCC).unwrap();
    assert_eq!(
        on_chip(&socket, |c| c.fuse(FuseKind::Lock)).unwrap() & 0x3F,
        0x0C
    );
    assert_eq!(d.read_fuse(FuseKind::Lock).unwrap() & 0x3F, 0x0C);
    d.chip_erase(part).unwrap();
    assert_eq!(d.read_fuse(FuseKind::Lock).unwrap() & 0x3F, 0x3F);

    d.leave().unwrap();
    assert!(
        !on_chip(&socket, |c| c.reset_asserted()),
        "{}: RESET released",
        part.name
    );
    rig.assert_timing_respected();
}

#[test]
fn every_part_through_a_pro_micro() {
    for part in all_parts() {
        full_cycle(part, HostBoard::ProMicro, crystal_chip(part));
    }
}

#[test]
fn factory_fresh_chips_at_1_mhz_are_within_the_fixed_clock() {
    // A fresh chip runs at 1 MHz (limit 250 kHz): ArduinoISP's 125 kHz is always safe.
    for name in ["m32u4", "m328p", "m32a"] {
        let p = part(name);
        full_cycle(p, HostBoard::Teensy20, EmulatedChip::factory_fresh(p));
    }
}

#[test]
fn an_uno_host_at_19200_baud() {
    let p = part("m328p");
    full_cycle(p, HostBoard::Uno, crystal_chip(p));
}

#[test]
fn a_full_128k_image_on_the_at90usb1286_reads_back_identical() {
    let p = part("usb1286");
    let mut rig = Rig::new(HostBoard::ProMicro, Some(crystal_chip(p)));
    let socket = rig.socket.clone();
    let d = &mut rig.driver;
    d.enter(p).unwrap();
    d.chip_erase(p).unwrap();
    let image = test_bytes(1286, p.flash.size as usize);
    for (i, page) in image.chunks(p.flash.page_size as usize).enumerate() {
        d.write_page(p, Memory::Flash, i as u32 * p.flash.page_size, page)
            .unwrap();
    }
    on_chip(&socket, |c| {
        assert!(c.flash() == &image[..], "flash on the chip")
    });
    let mut back = vec![0u8; image.len()];
    d.read(p, Memory::Flash, 0, &mut back).unwrap();
    assert!(back == image, "read back");
    d.leave().unwrap();
    rig.assert_timing_respected();
    // Consecutive pages need no LOAD_ADDRESS, and the sketch's 16-bit word address wraps from
    // the top of the 64 K words back to 0, where the read starts: one LOAD_ADDRESS in all.
    let loads = rig
        .monitor
        .status()
        .log
        .iter()
        .filter(|r| r.command == 0x55)
        .count();
    assert_eq!(loads, 1, "LOAD_ADDRESS count");
}

#[test]
fn eeprom_through_the_sketchs_own_prog_page_lands_at_the_right_bytes() {
    for name in ["m32u4", "usb646", "m32a"] {
        let p = part(name);
        let options = Stk500v1Options {
            eeprom_writes: EepromWrites::ProgPage,
            ..Default::default()
        };
        let mut rig = Rig::with(
            ArduinoIsp::new(HostBoard::ProMicro),
            Some(crystal_chip(p)),
            ServeOptions::default(),
            options,
        );
        let d = &mut rig.driver;
        d.enter(p).unwrap();
        let epage = p.eeprom.page_size;
        let addr = 5 * epage;
        let data = test_bytes(77, epage as usize);
        d.write_page(p, Memory::Eeprom, addr, &data).unwrap();
        let eeprom = rig.chip(|c| c.eeprom().to_vec());
        let a = addr as usize;
        assert_eq!(&eeprom[a..a + data.len()], &data[..], "{name}");
        assert!(
            eeprom[..a].iter().all(|&b| b == 0xFF),
            "{name}: nothing below"
        );
        let mut back = vec![0u8; data.len()];
        rig.driver.read(p, Memory::Eeprom, addr, &mut back).unwrap();
        assert_eq!(back, data);
        // The sketch's own pace: 45 ms per byte, in one PROG_PAGE.
        let log = rig.monitor.status().log;
        let prog = log.iter().rfind(|r| r.command == 0x64).unwrap();
        assert!(prog.finished_s - prog.started_s >= 0.045 * f64::from(epage));
        rig.assert_timing_respected();
    }
}

#[test]
fn with_no_target_enter_succeeds_and_the_signature_says_why() {
    let p = part("m32u4");
    let mut rig = Rig::new(HostBoard::ProMicro, None);
    let mut events = Vec::new();
    let mut reporter = |e: JobEvent| events.push(e);
    let mut ctx = Ctx::new(&mut rig.driver, p, &mut reporter, CancelToken::new());
    let err = ctx.session(detect::check_signature).unwrap_err();
    let hint = err.hint().unwrap_or_default();
    assert!(matches!(err, Error::NoTarget { .. }), "{err}");
    assert!(err.to_string().contains("FF FF FF"), "{err}");
    assert!(hint.contains("pin 10 (B6)"), "{hint}");
    assert!(hint.contains("125 kHz"), "{hint}");
}

#[test]
fn the_wrong_chip_is_named_by_its_signature() {
    let mut rig = Rig::new(HostBoard::ProMicro, Some(crystal_chip(part("m328p"))));
    let mut reporter = |_e: JobEvent| {};
    let p = part("m32u4");
    let mut ctx = Ctx::new(&mut rig.driver, p, &mut reporter, CancelToken::new());
    let err = ctx.session(detect::check_signature).unwrap_err();
    assert!(err.to_string().contains("ATmega328P"), "{err}");
}

#[test]
fn the_convenience_constructor_wires_a_pro_micro() {
    let p = part("m32u4");
    let socket = isp_toolbox::emulate::socket::Socket::with_chip(crystal_chip(p)).shared();
    let (mut driver, _handle) =
        isp_toolbox::programmer::stk500v1::emulated(p, socket, Stk500v1Options::default()).unwrap();
    let info = driver.info();
    assert_eq!(info.driver, "avrisp");
    assert_eq!(info.port, "emulated");
    assert_eq!(info.firmware, "ArduinoISP (AVR ISP), HW 2, SW 1.18");
    driver.enter(p).unwrap();
    assert_eq!(driver.read_signature().unwrap(), p.signature);
    driver.leave().unwrap();
}

#[test]
fn the_job_layer_writes_verifies_and_reads_through_the_driver() {
    use isp_toolbox::hex::MemoryImage;
    use isp_toolbox::job::memory;
    let p = part("m32u4");
    let mut rig = Rig::new(HostBoard::ProMicro, Some(crystal_chip(p)));
    let mut image = MemoryImage::new();
    image.insert(0x7000, &test_bytes(7, 4096)).unwrap();
    let mut reporter = |_e: JobEvent| {};
    let mut ctx = Ctx::new(&mut rig.driver, p, &mut reporter, CancelToken::new());
    let read = ctx
        .session(|ctx| {
            detect::check_signature(ctx)?;
            memory::erase(ctx)?;
            let report = memory::write_image(ctx, Memory::Flash, &image, true)?;
            assert_eq!(report.pages_written.len(), 32);
            memory::verify_image(ctx, Memory::Flash, &image)?;
            memory::read_all(ctx, Memory::Flash)
        })
        .unwrap();
    assert_eq!(read.data_len(), 32768);
    for (i, &b) in test_bytes(7, 4096).iter().enumerate() {
        assert_eq!(read.get(0x7000 + i as u32), Some(b));
    }
    assert!(
        !rig.chip(|c| c.reset_asserted()),
        "the session left programming mode"
    );
    rig.assert_timing_respected();
}
