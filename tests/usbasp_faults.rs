//! Faults on the USB link to the emulated USBasp: a dropped transfer is retried, a stalled or
//! unplugged programmer ends every operation quickly with an error that says what was being
//! done, a page cut off mid-transfer is reported with its address, and a retried block above
//! 64 KB re-sends its long address.

mod usbasp_common;

use std::time::{Duration, Instant};

use isp_toolbox::Memory;
use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::emulate::socket::lock;
use isp_toolbox::error::Error;
use isp_toolbox::part::FuseKind;
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::usbasp::EmulatedOptions;
use usbasp_common::*;

/// The wall-time budget of any failing operation.
const BUDGET: Duration = Duration::from_secs(3);

fn with_faults(spec: &str) -> EmulatedOptions {
    EmulatedOptions {
        faults: Faults::parse(spec).unwrap(),
        ..Default::default()
    }
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
fn a_dropped_transfer_is_retried_and_the_operation_completes() {
    let part = part("m32u4");
    let socket = running_board(part);
    // 1 GETCAPABILITIES, 2 SETISPSCK, 3 CONNECT, 4 ENABLEPROG: drop ENABLEPROG and a page.
    let (mut prog, _device) = driver_with(part, &socket, with_faults("drop=4,drop=9"));
    prog.enter(part).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    prog.chip_erase(part).unwrap();
    let data = pattern(128, 3);
    prog.write_page(part, Memory::Flash, 0x80, &data).unwrap();
    let mut back = vec![0u8; 128];
    prog.read(part, Memory::Flash, 0x80, &mut back).unwrap();
    assert_eq!(back, data);
    assert_clean_timing(&socket, "drops");
}

#[test]
fn a_stalled_programmer_times_out_every_operation() {
    let part = part("m32u4");
    let socket = running_board(part);
    // The four enter transfers and one signature byte get through.
    let (mut prog, _device) = driver_with(part, &socket, with_faults("stall=5"));
    prog.enter(part).unwrap();
    assert_eq!(
        prog.command(isp_toolbox::isp::read_signature(0)).unwrap()[3],
        part.signature[0]
    );
    let err = fails_quickly(|| prog.read_signature(), "ISP instruction 30 00 00 00");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("3 tries"), "{err}");
    let err = fails_quickly(
        || prog.write_page(part, Memory::Flash, 0x100, &[0u8; 128]),
        "writing the flash page at 0x00100",
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
    fails_quickly(|| prog.leave(), "DISCONNECT");
}

#[test]
fn an_unplugged_programmer_fails_every_operation_as_a_lost_link() {
    let part = part("m328p");
    let socket = running_board(part);
    let (mut prog, _device) = driver_with(part, &socket, with_faults("hangup=1"));
    let err = fails_quickly(|| prog.enter(part), "SETISPSCK");
    assert!(matches!(err, Error::Link { .. }), "{err}");
    assert!(err.hint().is_some());
    fails_quickly(|| prog.read_signature(), "unplugged");
    fails_quickly(|| prog.leave(), "DISCONNECT");
}

#[test]
fn the_link_vanishing_mid_page_reports_the_page_and_leaves_the_rest_untouched() {
    let part = part("m32u4");
    // Count the transfers up to page 1 on a healthy programmer...
    let socket = running_board(part);
    let (mut prog, device) = driver(part, &socket);
    prog.enter(part).unwrap();
    prog.chip_erase(part).unwrap();
    prog.write_page(part, Memory::Flash, 0, &pattern(128, 1))
        .unwrap();
    let before_page_1 = device_stats(&device).round_trips;
    // ...then unplug it at page 1's WRITEFLASH.
    let socket = running_board(part);
    let spec = format!("hangup={before_page_1}");
    let (mut prog, _device) = driver_with(part, &socket, with_faults(&spec));
    prog.enter(part).unwrap();
    prog.chip_erase(part).unwrap();
    prog.write_page(part, Memory::Flash, 0, &pattern(128, 1))
        .unwrap();
    let err = fails_quickly(
        || prog.write_page(part, Memory::Flash, 0x80, &pattern(128, 2)),
        "0x00080",
    );
    match &err {
        Error::PageWrite {
            memory: Memory::Flash,
            page_addr: 0x80,
            source,
        } => {
            assert!(matches!(**source, Error::Link { .. }), "{source}")
        }
        other => panic!("expected a page write error, got {other}"),
    }
    let s = lock(&socket);
    let flash = s.chip().unwrap().flash();
    assert_eq!(flash[..128], pattern(128, 1)[..]);
    assert!(flash[0x80..0x100].iter().all(|&b| b == 0xFF));
    assert_eq!(s.chip().unwrap().stats().flash_pages_written, 1);
}

#[test]
fn a_retried_block_above_64_kb_still_reads_the_right_bytes() {
    let part = part("at90usb1286");
    let socket = running_board(part);
    let high = 0x1_0000 + 2 * part.flash.page_size;
    let data = pattern(part.flash.page_size as usize, 5);
    {
        let (mut prog, _device) = driver(part, &socket);
        prog.set_sck(2_000_000).unwrap();
        prog.enter(part).unwrap();
        prog.chip_erase(part).unwrap();
        prog.write_page(part, Memory::Flash, high, &data).unwrap();
        prog.leave().unwrap();
    }
    // Transfers 1-4 enter; 5 is the block's SETLONGADDRESS, 6 its READFLASH: lose that one.
    let (mut prog, _device) = driver_with(part, &socket, with_faults("drop=6"));
    prog.set_sck(2_000_000).unwrap();
    prog.enter(part).unwrap();
    let mut back = vec![0u8; data.len()];
    prog.read(part, Memory::Flash, high, &mut back).unwrap();
    assert_eq!(back, data);
    // Low addresses after the long mode still read right (the firmware ignores wValue now).
    let mut low = vec![0u8; 16];
    prog.read(part, Memory::Flash, 0, &mut low).unwrap();
    assert!(low.iter().all(|&b| b == 0xFF));
    let mut again = vec![0u8; 8];
    prog.read(part, Memory::Flash, high, &mut again).unwrap();
    assert_eq!(again, data[..8]);
}
