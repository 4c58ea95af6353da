//! Faults on the link to the emulated Bus Pirate (a lost byte, a corrupted answer, a
//! programmer that stops answering, one that is unplugged, also in the middle of a page): every
//! driver operation ends with an error that says what it was doing, within 3 s, never a hang
//! or a panic; and after a lost byte the driver finds its way back.

mod buspirate_common;

use std::time::Duration;

use buspirate_common::*;
use isp_toolbox::Memory;
use isp_toolbox::emulate::buspirate::{BusPirateConfig, StatusHandle};
use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::emulate::serial::{EmulatorHandle, ServeOptions};
use isp_toolbox::emulate::socket::SharedSocket;
use isp_toolbox::error::{Error, Result};
use isp_toolbox::part::{FuseKind, Part};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::buspirate::{BusPirate, BusPirateOptions, emulated_with};
use isp_toolbox::transport::MemoryLink;

/// The longest any failing operation may take.
const LIMIT: Duration = Duration::from_secs(3);

type Driver = BusPirate<MemoryLink>;

fn with_faults(socket: &SharedSocket, spec: &str) -> (Driver, EmulatorHandle, StatusHandle) {
    let serve = ServeOptions {
        faults: Faults::parse(spec).unwrap(),
        realtime: false,
    };
    emulated_with(
        socket.clone(),
        BusPirateConfig::default(),
        serve,
        BusPirateOptions::default(),
    )
    .unwrap()
}

/// Bytes the host sends and receives for connect + enter + 2 MHz, measured on a clean run
/// (the fault counters count from the emulator's start).
fn bytes_before_work(part: &Part) -> (u64, u64) {
    let socket = socket_with(part);
    let (mut bp, handle, _s) = with_faults(&socket, "");
    bp.enter(part).unwrap();
    bp.set_sck(2_000_000).unwrap();
    let link = bp.abandon().unwrap();
    let stats = handle.stop();
    drop(link);
    (stats.bytes_to_programmer, stats.bytes_from_programmer)
}

/// Runs `op`, checks it failed within [`LIMIT`], and returns the error.
fn fails_in_time<T: std::fmt::Debug>(what: &str, op: impl FnOnce() -> Result<T>) -> Error {
    let (result, took) = timed(op);
    assert!(took < LIMIT, "{what} took {took:?}");
    match result {
        Ok(v) => panic!("{what} succeeded: {v:?}"),
        Err(e) => {
            println!("{what}: {e}");
            e
        }
    }
}

#[test]
fn a_lost_byte_mid_page_times_out_naming_the_page_then_the_driver_recovers() {
    let part = part("m32u4");
    let (sent, _) = bytes_before_work(part);
    let socket = socket_with(part);
    // A byte in the middle of the first page's write-then-read payload.
    let (mut bp, _h, status) = with_faults(&socket, &format!("drop={}", sent + 200));
    bp.enter(part).unwrap();
    bp.set_sck(2_000_000).unwrap();
    let page = pattern(128, 1);
    let err = fails_in_time("page write with a lost byte", || {
        bp.write_page(part, Memory::Flash, 0x0000, &page)
    });
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("flash page at 0x00000"), "{err}");
    // The next operation resynchronises (the firmware got its missing byte from a probe),
    // re-enters programming mode, and the page goes through.
    bp.write_page(part, Memory::Flash, 0x0000, &page).unwrap();
    let mut back = vec![0u8; 128];
    bp.read(part, Memory::Flash, 0, &mut back).unwrap();
    assert_eq!(back, page);
    bp.close().unwrap();
    assert!(!status.get().rx_overrun);
    assert_timing_respected(&socket, "after recovery");
}

#[test]
fn a_corrupted_answer_is_a_protocol_error_with_what_was_expected() {
    let part = part("m32u4");
    let (_, received) = bytes_before_work(part);
    let socket = socket_with(part);
    // The page write's one-byte OK.
    let (mut bp, _h, _s) = with_faults(&socket, &format!("corrupt={}", received + 1));
    bp.enter(part).unwrap();
    bp.set_sck(2_000_000).unwrap();
    let err = fails_in_time("page write with a corrupted OK", || {
        bp.write_page(part, Memory::Flash, 0x0080, &pattern(128, 2))
    });
    let text = err.to_string();
    assert!(matches!(err, Error::Protocol { .. }), "{text}");
    assert!(text.contains("flash page at 0x00080"), "{text}");
    assert!(text.contains("expected 0x01 (OK), got 0xFE"), "{text}");
    // Still usable afterwards.
    assert_eq!(bp.read_signature().unwrap(), part.signature);
}

#[test]
fn every_operation_fails_in_time_when_the_bus_pirate_stops_answering() {
    let part = part("m32u4");
    let (sent, _) = bytes_before_work(part);
    type Op = fn(&mut Driver, &Part) -> Result<()>;
    let ops: [(&str, Op); 10] = [
        // The first read is answered from Programming Enable's exchange; the second asks.
        ("read signature", |bp, _| {
            bp.read_signature()?;
            bp.read_signature().map(drop)
        }),
        ("read flash", |bp, p| {
            bp.read(p, Memory::Flash, 0, &mut [0; 512])
        }),
        ("read EEPROM", |bp, p| {
            bp.read(p, Memory::Eeprom, 0, &mut [0; 64])
        }),
        ("write flash page", |bp, p| {
            bp.write_page(p, Memory::Flash, 0x100, &[0x5A; 128])
        }),
        ("write EEPROM page", |bp, p| {
            bp.write_page(p, Memory::Eeprom, 0x10, &[1, 2, 3, 4])
        }),
        ("chip erase", |bp, p| bp.chip_erase(p)),
        ("write fuse", |bp, p| bp.write_fuse(p, FuseKind::High, 0x98)),
        ("set SCK", |bp, _| bp.set_sck(1_000_000).map(drop)),
        ("leave", |bp, _| bp.leave()),
        ("enter again", |bp, p| bp.enter(p)),
    ];
    // Each on its own emulator, side by side: they spend their time waiting for answers.
    std::thread::scope(|scope| {
        for (what, op) in ops {
            scope.spawn(move || {
                let socket = socket_with(part);
                let (mut bp, _h, _s) = with_faults(&socket, &format!("stall={sent}"));
                bp.enter(part).unwrap();
                bp.set_sck(2_000_000).unwrap();
                let err = fails_in_time(what, || op(&mut bp, part));
                assert!(
                    matches!(err, Error::Timeout { .. } | Error::Protocol { .. }),
                    "{what}: {err}"
                );
                // A second try resynchronises first; it fails in time too.
                let again = fails_in_time(&format!("{what}, again"), || op(&mut bp, part));
                assert!(again.to_string().contains("emulated"), "{again}");
                // Dropping the driver does not hang either.
                let ((), took) = timed(|| drop(bp));
                assert!(took < LIMIT, "drop after {what} took {took:?}");
            });
        }
    });
}

#[test]
fn unplugged_mid_page_is_a_link_error_and_nothing_hangs() {
    let part = part("at90usb1286");
    let (sent, _) = bytes_before_work(part);
    let socket = socket_with(part);
    let (mut bp, mut handle, _s) = with_faults(&socket, &format!("hangup={}", sent + 700));
    bp.enter(part).unwrap();
    bp.set_sck(2_000_000).unwrap();
    let err = fails_in_time("page write while unplugged", || {
        bp.write_page(part, Memory::Flash, 0x1FF00, &pattern(256, 5))
    });
    assert!(matches!(err, Error::Link { .. }), "{err}");
    assert!(err.to_string().contains("emulated"), "{err}");
    handle.join();
    let err = fails_in_time("reading after the unplug", || {
        bp.read(part, Memory::Flash, 0, &mut [0u8; 16])
    });
    assert!(matches!(err, Error::Link { .. }), "{err}");
    let err = fails_in_time("closing after the unplug", || bp.close().map(drop));
    assert!(matches!(err, Error::Link { .. }), "{err}");
}

#[test]
fn each_fault_kind_during_connect_fails_in_time() {
    let part = part("m328p");
    for spec in ["drop=3", "corrupt=2", "stall=10", "hangup=22", "drop=21"] {
        let socket = socket_with(part);
        let serve = ServeOptions {
            faults: Faults::parse(spec).unwrap(),
            realtime: false,
        };
        let (result, took) = timed(|| {
            emulated_with(
                socket.clone(),
                BusPirateConfig::default(),
                serve,
                BusPirateOptions::default(),
            )
        });
        assert!(took < LIMIT, "{spec}: {took:?}");
        match result {
            // A lost or garbled byte during entry may be survived by the probing.
            Ok((mut bp, _h, _s)) => {
                bp.enter(part).unwrap();
                assert_eq!(bp.read_signature().unwrap(), part.signature, "{spec}");
            }
            Err(e) => {
                println!("{spec}: {e}");
                assert!(e.to_string().contains("emulated"), "{spec}: {e}");
            }
        }
    }
}

/// In realtime mode the emulated FTDI bridge sends output within its 16 ms latency even while
/// the firmware is still busy, so the ACK of a 4 KiB bulk read reaches the driver long before
/// the last data byte (a buffered emulator once held it until the end, past the driver's ACK
/// deadline).
#[test]
fn a_4_kib_bulk_read_in_real_time_gets_its_ack_in_time() {
    let part = part("m32u4");
    let socket = socket_with(part);
    let options = BusPirateOptions::default();
    let (mut prog, _handle, _status) = emulated_with(
        socket.clone(),
        isp_toolbox::emulate::buspirate::BusPirateConfig::default(),
        ServeOptions {
            realtime: true,
            ..ServeOptions::default()
        },
        options,
    )
    .unwrap();
    prog.enter(part).unwrap();
    prog.set_sck(2_000_000).unwrap();
    let mut buf = vec![0u8; 4096];
    prog.read(part, Memory::Flash, 0x7000, &mut buf).unwrap();
    assert_eq!(buf, chip_flash(&socket)[0x7000..0x8000]);
    prog.leave().unwrap();
}
