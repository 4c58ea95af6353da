//! The avrisp driver when the link misbehaves: a byte lost on the way to ArduinoISP, a byte
//! corrupted on the way back, a programmer that stops answering, and one that is unplugged
//! mid-page. Every operation either recovers or ends with an error that says what it was doing,
//! within its timeout (3 s of wall time here), and never hangs or panics.
//!
//! Fault positions count bytes from the emulator's start: connecting sends 13 bytes and gets
//! 20 back; entering programming mode (with the signature) sends 49 and gets 15 back.

mod avrisp_common;

use std::time::Instant;

use avrisp_common::*;
use isp_toolbox::emulate::arduinoisp::{ArduinoIsp, HostBoard};
use isp_toolbox::emulate::chip::{ChipConfig, EmulatedChip};
use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::emulate::serial::ServeOptions;
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::job::{CancelToken, Ctx, JobEvent, memory};
use isp_toolbox::part::FuseKind;
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::stk500v1::{Stk500v1Options, emulated_with};
use isp_toolbox::{Error, Memory};

/// Bytes the host sends while connecting, and then while entering programming mode.
const CONNECT_OUT: u64 = 13;
const ENTER_OUT: u64 = 49;
/// Bytes the programmer sends back for the same.
const CONNECT_IN: u64 = 20;
const ENTER_IN: u64 = 15;

/// A connected rig, in programming mode, with `faults` armed.
fn faulty(faults: &str, chip: EmulatedChip) -> Rig {
    let serve = ServeOptions {
        faults: Faults::parse(faults).unwrap(),
        ..Default::default()
    };
    let mut rig = Rig::with(
        ArduinoIsp::new(HostBoard::ProMicro),
        Some(chip),
        serve,
        Stk500v1Options::default(),
    );
    rig.driver.enter(part("m32u4")).unwrap();
    rig
}

/// Runs `op`, checks it finished within [`OPERATION_BOUND`], and returns its result.
fn timed<T>(what: &str, op: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let result = op();
    let took = start.elapsed();
    assert!(took < OPERATION_BOUND, "{what} took {took:?}");
    result
}

#[test]
fn a_byte_lost_inside_a_page_is_flushed_not_committed_and_the_page_retried() {
    let p = part("m32u4");
    // LOAD_ADDRESS (4 bytes), PROG_PAGE header (4), then data byte 50 is lost.
    let lost = CONNECT_OUT + ENTER_OUT + 4 + 4 + 51;
    let mut rig = faulty(&format!("drop={lost}"), crystal_chip(p));
    let data = test_bytes(5, 128);
    timed("write_page", || {
        rig.driver.write_page(p, Memory::Flash, 0x80, &data)
    })
    .unwrap();
    rig.chip(|c| {
        assert_eq!(&c.flash()[0x80..0x100], &data[..]);
        // The half-received page was answered NOSYNC, not written with shifted bytes.
        assert_eq!(c.stats().flash_pages_written, 1);
    });
    rig.assert_timing_respected();
}

#[test]
fn a_byte_lost_from_a_fuse_write_runs_a_damaged_write_that_the_retry_overwrites() {
    let p = part("m32u4");
    let wanted = p.fuse(FuseKind::High).unwrap().default ^ 0x01;
    // UNIVERSAL AC A8 00 vv: the data byte is the 5th of the frame. The sketch fills its 4
    // bytes with the frame's own EOP (0x20) and runs the write before it checks the frame's
    // end; no host can prevent that (avrdude neither). The retry writes the real value over it
    // before the fuses are latched again.
    let lost = CONNECT_OUT + ENTER_OUT + 5;
    let mut rig = faulty(&format!("drop={lost}"), crystal_chip(p));
    timed("write_fuse", || {
        rig.driver.write_fuse(p, FuseKind::High, wanted)
    })
    .unwrap();
    assert_eq!(rig.chip(|c| c.fuse(FuseKind::High)).unwrap(), wanted);
    assert_eq!(rig.chip(|c| c.stats().fuse_writes), 2);
    rig.assert_timing_respected();
}

#[test]
fn a_byte_lost_from_a_lock_write_can_lock_the_chip_which_verify_reports() {
    let p = part("m32u4");
    // The same damage to a lock write programs the lock byte with 0x20 (LB = 00). Lock bits
    // can only be programmed, so the retry cannot undo it: reading the lock byte back shows it,
    // and only a chip erase clears it.
    let lost = CONNECT_OUT + ENTER_OUT + 5;
    let mut rig = faulty(&format!("drop={lost}"), crystal_chip(p));
    timed("write_fuse", || {
        rig.driver.write_fuse(p, FuseKind::Lock, 0xCC)
    })
    .unwrap();
    assert_eq!(rig.driver.read_fuse(FuseKind::Lock).unwrap() & 0x3F, 0x00);
    rig.driver.chip_erase(p).unwrap();
    assert_eq!(rig.driver.read_fuse(FuseKind::Lock).unwrap() & 0x3F, 0x3F);
    rig.assert_timing_respected();
}

#[test]
fn a_corrupted_reply_byte_is_caught_and_the_read_retried() {
    let p = part("m32u4");
    let image = test_bytes(9, p.flash.size as usize);
    let chip = EmulatedChip::new(
        p,
        ChipConfig {
            flash: Some(image.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    // LOAD_ADDRESS's 14 10, then READ_PAGE's INSYNC is flipped.
    let corrupt = CONNECT_IN + ENTER_IN + 2 + 1;
    let mut rig = faulty(&format!("corrupt={corrupt}"), chip);
    let mut buf = vec![0u8; 1024];
    timed("read", || rig.driver.read(p, Memory::Flash, 0, &mut buf)).unwrap();
    assert_eq!(buf, image[..1024]);
}

#[test]
fn a_corrupted_data_byte_has_no_checksum_to_catch_it_but_verify_names_it() {
    let p = part("m32u4");
    let image = test_bytes(10, p.flash.size as usize);
    let chip = EmulatedChip::new(
        p,
        ChipConfig {
            flash: Some(image.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    // Data byte 99 of the first READ_PAGE.
    let corrupt = CONNECT_IN + ENTER_IN + 2 + 1 + 100;
    let mut rig = faulty(&format!("corrupt={corrupt}"), chip);
    let mut expected = MemoryImage::new();
    expected.insert(0, &image[..2048]).unwrap();
    let mut reporter = |_e: JobEvent| {};
    let mut ctx = Ctx::new(&mut rig.driver, p, &mut reporter, CancelToken::new());
    let err = memory::verify_image(&mut ctx, Memory::Flash, &expected).unwrap_err();
    match err {
        Error::Verify {
            addr,
            expected,
            read,
            mismatches,
            ..
        } => {
            assert_eq!(addr, 99);
            assert_eq!(expected, image[99]);
            assert_eq!(read, image[99] ^ 0xFF);
            assert_eq!(mismatches, 1);
        }
        other => panic!("expected a verify error, got {other}"),
    }
}

#[test]
fn a_stalled_programmer_ends_each_operation_with_a_timeout() {
    let p = part("m32u4");
    let mut rig = faulty(
        &format!("stall={}", CONNECT_OUT + ENTER_OUT),
        crystal_chip(p),
    );
    let d = &mut rig.driver;
    let err = timed("write_page", || {
        d.write_page(p, Memory::Flash, 0, &[0u8; 128])
    })
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("PROG_PAGE flash 128 bytes at 0x00000"),
        "{err}"
    );
    assert!(
        err.to_string().contains("resynchronising failed too"),
        "{err}"
    );

    let mut buf = [0u8; 16];
    let err = timed("read", || d.read(p, Memory::Flash, 0x100, &mut buf)).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("READ_PAGE flash 16 bytes at 0x00100"),
        "{err}"
    );

    let err = timed("read_signature", || d.read_signature()).unwrap_err();
    assert!(err.to_string().contains("READ_SIGN"), "{err}");
    let err = timed("write_fuse", || d.write_fuse(p, FuseKind::Low, 0xFF)).unwrap_err();
    assert!(err.to_string().contains("UNIVERSAL AC A0 00 FF"), "{err}");
    let err = timed("leave", || d.leave()).unwrap_err();
    assert!(err.to_string().contains("LEAVE_PROGMODE"), "{err}");
    println!("stalled: {err}");
}

#[test]
fn a_stall_during_the_longest_read_still_ends_within_the_bound() {
    let p = part("m32u4");
    // The programmer stops answering in the middle of a whole read block's request; its
    // deadline allows for 1 KB at 19200 baud, and the resync attempts follow.
    let mut rig = faulty(
        &format!("stall={}", CONNECT_OUT + ENTER_OUT + 6),
        crystal_chip(p),
    );
    let mut buf = [0u8; 1024];
    let err = timed("read", || {
        rig.driver.read(p, Memory::Flash, 0x100, &mut buf)
    })
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("READ_PAGE flash 1024 bytes at 0x00100"),
        "{err}"
    );
}

#[test]
fn a_programmer_unplugged_mid_page_fails_at_once() {
    let p = part("m32u4");
    let after = CONNECT_OUT + ENTER_OUT + 4 + 4 + 60;
    let mut rig = faulty(&format!("hangup={after}"), crystal_chip(p));
    let d = &mut rig.driver;
    let start = Instant::now();
    let err = d
        .write_page(p, Memory::Flash, 0x200, &test_bytes(1, 128))
        .unwrap_err();
    assert!(start.elapsed().as_millis() < 500, "{:?}", start.elapsed());
    assert!(matches!(err, Error::Link { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("PROG_PAGE flash 128 bytes at 0x00200"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("USB cable"));
    // Later operations fail as fast.
    let start = Instant::now();
    let err = d.read_signature().unwrap_err();
    assert!(matches!(err, Error::Link { .. }), "{err}");
    assert!(start.elapsed().as_millis() < 500);
    println!("unplugged: {err}");
    // Nothing of the page reached the flash.
    rig.chip(|c| assert_eq!(c.stats().flash_pages_written, 0));
}

#[test]
fn a_byte_lost_while_connecting_is_recovered_by_the_sync_attempts() {
    let p = part("m32u4");
    // The EOP of the first counted GET_SYNC.
    let rig = faulty("drop=4", crystal_chip(p));
    assert!(rig.driver.info().firmware.contains("SW 1.18"));
}

#[test]
fn a_silent_port_fails_to_connect_within_the_bound() {
    let serve = ServeOptions {
        faults: Faults::parse("stall=1").unwrap(),
        ..Default::default()
    };
    let socket = isp_toolbox::emulate::socket::Socket::default().shared();
    let start = Instant::now();
    let result = emulated_with(
        ArduinoIsp::new(HostBoard::ProMicro),
        socket,
        serve,
        Stk500v1Options::default(),
    );
    let err = match result {
        Ok(_) => panic!("connected to a silent port"),
        Err(e) => e,
    };
    assert!(start.elapsed() < OPERATION_BOUND, "{:?}", start.elapsed());
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("GET_SYNC"), "{err}");
    assert!(err.hint().unwrap().contains("baud"), "{:?}", err.hint());
}
