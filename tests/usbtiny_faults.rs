//! Faults on the USB link to the emulated USBtiny: a dropped transfer is retried, a corrupted
//! reply shows in the data, a stalled or unplugged programmer ends every operation with an
//! error that says what was being done, quickly and without a panic.

mod usbtiny_common;

use std::time::{Duration, Instant};

use isp_toolbox::Memory;
use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::emulate::socket::lock;
use isp_toolbox::error::Error;
use isp_toolbox::part::FuseKind;
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::usbtiny::{EmulatedOptions, Options};
use usbtiny_common::*;

/// The wall-time budget of any failing operation.
const BUDGET: Duration = Duration::from_secs(3);

fn with_faults(spec: &str) -> EmulatedOptions {
    EmulatedOptions {
        driver: Options::default(),
        faults: Faults::parse(spec).unwrap(),
        realtime: false,
    }
}

#[test]
fn a_dropped_transfer_is_retried_and_the_operation_completes() {
    let part = part("m32u4");
    let socket = running_board(part);
    // Transfer 1 is POWERUP; drop the second (the first Programming Enable) and a page write.
    let (mut prog, _device) = driver_with(part, &socket, with_faults("drop=2,drop=9"));
    prog.enter(part).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    let data = pattern(128, 3);
    prog.write_page(part, Memory::Flash, 0x80, &data).unwrap();
    let mut back = vec![0u8; 128];
    prog.read(part, Memory::Flash, 0x80, &mut back).unwrap();
    assert_eq!(back, data);
    assert_clean_timing(&socket, "drops");
}

#[test]
fn a_corrupted_reply_shows_in_the_data_read() {
    let part = part("m32u4");
    let socket = running_board(part);
    // Replies with data are counted from 1: Programming Enable, then the FLASH_READ.
    let (mut prog, _device) = driver_with(part, &socket, with_faults("corrupt=2"));
    prog.enter(part).unwrap();
    let mut back = vec![0u8; 16];
    prog.read(part, Memory::Flash, 0, &mut back).unwrap();
    assert_eq!(
        back[0], 0x00,
        "the first byte of the erased flash arrived flipped"
    );
    assert!(back[1..].iter().all(|&b| b == 0xFF));
    // A corrupted SPI reply flips response byte 0, which nothing depends on; the echo and
    // the data bytes are intact, so instructions still work.
    let (mut prog, _device) = driver_with(part, &socket, with_faults("corrupt=2"));
    prog.enter(part).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);
}

/// Runs `op` and checks it failed quickly with an error naming `what`.
fn fails_quickly<T: std::fmt::Debug>(
    op: impl FnOnce() -> isp_toolbox::Result<T>,
    what: &str,
) -> Error {
    let start = Instant::now();
    let err = op().unwrap_err();
    assert!(
        start.elapsed() < BUDGET,
        "{what}: took {:?}",
        start.elapsed()
    );
    let text = err.to_string();
    assert!(text.contains(what), "expected '{what}' in: {text}");
    err
}

#[test]
fn a_stalled_programmer_times_out_every_operation() {
    let part = part("m32u4");
    let socket = running_board(part);
    // POWERUP, Programming Enable and one signature (3 transfers) get through.
    let (mut prog, _device) = driver_with(part, &socket, with_faults("stall=5"));
    prog.enter(part).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    let err = fails_quickly(|| prog.read_signature(), "ISP instruction 30 00 00 00");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("3 tries"), "{err}");
    let err = fails_quickly(
        || prog.write_page(part, Memory::Flash, 0x100, &[0u8; 128]),
        "loading the page buffer for 0x00100",
    );
    assert!(
        matches!(
            &err,
            Error::PageWrite {
                page_addr: 0x100,
                memory: Memory::Flash,
                ..
            }
        ),
        "{err}"
    );
    let mut buf = [0u8; 64];
    fails_quickly(
        || prog.read(part, Memory::Eeprom, 0x40, &mut buf),
        "reading 64 byte(s) of EEPROM at 0x00040",
    );
    fails_quickly(|| prog.chip_erase(part), "AC 80 00 00");
    fails_quickly(|| prog.write_fuse(part, FuseKind::Low, 0xFF), "AC A0 00 FF");
    fails_quickly(|| prog.leave(), "POWERDOWN");
}

#[test]
fn an_unplugged_programmer_fails_every_operation_as_a_lost_link() {
    let part = part("m328p");
    let socket = running_board(part);
    // Only POWERUP gets through.
    let (mut prog, _device) = driver_with(part, &socket, with_faults("hangup=1"));
    let err = fails_quickly(|| prog.enter(part), "ISP instruction AC 53 00 00");
    assert!(matches!(err, Error::Link { .. }), "{err}");
    assert!(err.hint().is_some());
    fails_quickly(|| prog.read_signature(), "unplugged");
    fails_quickly(|| prog.leave(), "POWERDOWN");
}

/// Enters, erases and writes page 0.
fn first_page(
    prog: &mut impl Programmer,
    part: &isp_toolbox::part::Part,
) -> isp_toolbox::Result<()> {
    prog.enter(part)?;
    prog.chip_erase(part)?;
    prog.write_page(part, Memory::Flash, 0, &pattern(128, 1))
}

#[test]
fn the_link_vanishing_mid_page_reports_the_page_and_leaves_the_rest_untouched() {
    let part = part("m32u4");
    // Count the transfers up to page 1 on a healthy programmer...
    let socket = running_board(part);
    let (mut prog, device) = driver(part, &socket);
    first_page(&mut prog, part).unwrap();
    let before_page_1 = device_stats(&device).round_trips;
    // ...then unplug it right after page 1's FLASH_WRITE: the Write Page is lost.
    let socket = running_board(part);
    let spec = format!("hangup={}", before_page_1 + 1);
    let (mut prog, _device) = driver_with(part, &socket, with_faults(&spec));
    first_page(&mut prog, part).unwrap();
    let start = Instant::now();
    let err = prog
        .write_page(part, Memory::Flash, 0x80, &pattern(128, 2))
        .unwrap_err();
    assert!(start.elapsed() < BUDGET);
    match &err {
        Error::PageWrite {
            memory: Memory::Flash,
            page_addr: 0x80,
            source,
        } => assert!(matches!(**source, Error::Link { .. }), "{source}"),
        other => panic!("expected a page write error, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("0x00080") && text.contains("4C 00 40 00"),
        "{text}"
    );
    // Page 0 is written; page 1 got its buffer loaded but was never committed.
    let s = lock(&socket);
    let flash = s.chip().unwrap().flash();
    assert_eq!(flash[..128], pattern(128, 1)[..]);
    assert!(flash[0x80..0x100].iter().all(|&b| b == 0xFF));
    assert_eq!(s.chip().unwrap().stats().flash_pages_written, 1);
}

#[test]
fn requests_before_powerup_fail_with_a_hint_instead_of_hanging() {
    let part = part("m32u4");
    let socket = running_board(part);
    let (mut prog, _device) = driver(part, &socket);
    let err = fails_quickly(|| prog.read_signature(), "received 0 of 4 byte(s)");
    assert!(err.to_string().contains("POWERUP"), "{err}");
    let mut buf = [0u8; 8];
    fails_quickly(
        || prog.read(part, Memory::Flash, 0, &mut buf),
        "received 0 of 8 byte(s)",
    );
}
