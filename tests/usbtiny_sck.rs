//! The USBtiny bit clock: period selection, a clock too fast for a slow chip (garbled reads,
//! refused writes, no Programming Enable) and recovery by slowing down, and the job layer's
//! clock negotiation through this driver.

mod usbtiny_common;

use isp_toolbox::emulate::socket::lock;
use isp_toolbox::error::Error;
use isp_toolbox::isp;
use isp_toolbox::job::{CancelToken, Ctx, JobEvent, detect, sck};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::usbtiny::clock;
use usbtiny_common::*;

#[test]
fn set_sck_picks_the_fastest_period_not_above_the_request() {
    let part = part("m32u4");
    let socket = running_board(part);
    let (mut prog, _device) = driver(part, &socket);
    assert_eq!(prog.sck_period_us(), clock::DEFAULT_PERIOD);
    assert_eq!(prog.sck_hz(), Some(83_916));
    for (asked, period, real) in [
        (8_000_000, 1, 342_857),
        (250_000, 3, 203_389),
        (200_000, 4, 169_014),
        (100_000, 9, 91_603),
        (1_000, 250, 3_969),
    ] {
        assert_eq!(prog.set_sck(asked).unwrap(), real, "{asked} Hz");
        assert_eq!(prog.sck_period_us(), period, "{asked} Hz");
    }
    let caps = prog.info().capabilities;
    assert!(caps.set_sck);
    assert_eq!(caps.sck_range_hz, Some((3_969, 342_857)));
}

#[test]
fn the_clock_changes_inside_a_session_without_leaving_programming_mode() {
    let part = part("m328p");
    let socket = running_board(part);
    let (mut prog, _device) = driver(part, &socket);
    prog.set_sck(50_000).unwrap();
    prog.enter(part).unwrap();
    let slow = chip_stats(&socket).max_sck_hz_seen;
    assert_eq!(slow, clock::sck_hz(clock::period_for_hz(50_000)));
    prog.set_sck(1_000_000).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    assert_eq!(chip_stats(&socket).max_sck_hz_seen, 342_857);
    assert!(lock(&socket).chip().unwrap().programming_enabled());
}

#[test]
fn too_fast_for_a_ckdiv8_chip_garbles_reads_refuses_writes_and_slower_works() {
    // Factory-fresh ATmega32U4: 8 MHz RC divided by 8 = 1 MHz, so SCK must stay below 250 kHz.
    let part = part("m32u4");
    let socket = board_with_lfuse(part, 0x52);
    let (mut prog, _device) = driver(part, &socket);
    prog.enter(part).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);

    assert_eq!(prog.set_sck(1_000_000).unwrap(), 342_857);
    let garbled = prog.read_signature().unwrap();
    assert_ne!(
        garbled, part.signature,
        "reads come back garbled, not as errors"
    );
    assert!(chip_stats(&socket).sck_violations > 0);
    // A write is refused on the missing echo instead of being reported as done.
    let err = prog
        .command(isp::load_flash_page_byte(0, 0x12))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { reason, .. } if reason.contains("did not echo")),
        "{err}"
    );

    // The job layer steps down; so does this test.
    assert_eq!(prog.set_sck(200_000).unwrap(), 169_014);
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    prog.leave().unwrap();

    // Entering at the fast clock fails with the clock among the likely causes.
    let (mut fresh, _device) = driver(part, &socket);
    fresh.set_sck(1_000_000).unwrap();
    let err = fresh.enter(part).unwrap_err();
    match &err {
        Error::NoTarget { detail, causes } => {
            assert!(detail.contains("4 tries"), "{detail}");
            assert!(causes.iter().any(|c| c.contains("342 kHz")), "{causes:?}");
        }
        other => panic!("expected NoTarget, got {other}"),
    }
    fresh.set_sck(100_000).unwrap();
    fresh.enter(part).unwrap();
    assert_eq!(fresh.read_signature().unwrap(), part.signature);
    fresh.leave().unwrap();
}

#[test]
fn a_target_out_of_step_is_brought_back_by_the_reset_pulse_retry() {
    let part = part("m32u4");
    let socket = running_board(part);
    let (mut prog, device) = driver(part, &socket);
    prog.enter(part).unwrap();
    // A glitch on SCK knocks the serial logic out of step while RESET stays low.
    lock(&socket).chip_mut().unwrap().inject_desync();
    let before = device_stats(&device).round_trips;
    // POWERUP with RESET already low makes no RESET edge: the first Programming Enable is not
    // echoed, then RESET is pulsed (POWERUP high, POWERUP low) and the second try works.
    prog.enter(part).unwrap();
    assert_eq!(device_stats(&device).round_trips - before, 5);
    assert!(lock(&socket).chip().unwrap().in_sync());
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    prog.leave().unwrap();
}

#[test]
fn the_job_layer_negotiates_the_clock_through_this_driver() {
    for (lfuse, expected_hz) in [(0xFF, 342_857), (0x52, 169_014)] {
        let part = part("m32u4");
        let socket = board_with_lfuse(part, lfuse);
        let (mut prog, _device) = driver(part, &socket);
        let mut events = Vec::new();
        let mut reporter = |e: JobEvent| events.push(e);
        let mut ctx = Ctx::new(&mut prog, part, &mut reporter, CancelToken::new());
        sck::start(&mut ctx, None).unwrap();
        let report = ctx
            .session(|ctx| {
                sck::negotiate(ctx, Some(16_000_000), false)?;
                detect::detect(ctx)
            })
            .unwrap();
        assert_eq!(report.signature, part.signature);
        assert_eq!(prog.sck_hz(), Some(expected_hz), "lfuse 0x{lfuse:02X}");
        assert_clean_timing(&socket, "negotiated");
    }
}
