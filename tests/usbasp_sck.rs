//! The USBasp clock: code selection, 3 MHz only where the firmware says so, the 2007 firmware
//! that cannot set it, a clock too fast for a slow chip (garbled reads, refused writes) and
//! recovery by slowing down inside the session, the ENABLEPROG resync, and the job layer's
//! clock negotiation through this driver.

mod usbasp_common;

use isp_toolbox::emulate::socket::{Socket, lock};
use isp_toolbox::emulate::{ChipConfig, EmulatedChip, FuseValues};
use isp_toolbox::part::FuseKind;
use std::time::Duration;

use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::emulate::usb::EmulatedUsbLink;
use isp_toolbox::emulate::usbasp::{UsbAspFirmware, UsbAspVariant, emulated_device};
use isp_toolbox::error::Error;
use isp_toolbox::isp;
use isp_toolbox::job::{CancelToken, Ctx, JobEvent, detect, sck};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::usbasp::EmulatedOptions;
use isp_toolbox::programmer::usbasp::protocol::{self, request};
use isp_toolbox::transport::UsbLink;
use usbasp_common::*;

fn variant(variant: UsbAspVariant) -> EmulatedOptions {
    EmulatedOptions {
        variant,
        ..Default::default()
    }
}

#[test]
fn set_sck_picks_the_fastest_code_not_above_the_request() {
    let part = part("m32u4");
    let socket = running_board(part);
    let (mut prog, _device) = driver(part, &socket);
    assert_eq!(
        prog.sck_hz(),
        Some(187_500),
        "the default suits a 1 MHz chip"
    );
    prog.enter(part).unwrap();
    assert_eq!(prog.capabilities(), Some(protocol::CAP_TPI));
    assert_eq!(prog.sck_settable(), Some(true));
    for (asked, code, real) in [
        (8_000_000, 12, 1_500_000),
        (1_000_000, 11, 750_000),
        (250_000, 9, 187_500),
        (100_000, 8, 93_750),
        (50_000, 7, protocol::SCK_OPTIONS[6].real_hz),
        (1_000, 2, protocol::SCK_OPTIONS[1].real_hz),
        (600, 1, protocol::SCK_OPTIONS[0].real_hz),
    ] {
        assert_eq!(prog.set_sck(asked).unwrap(), real, "{asked} Hz");
        assert_eq!(prog.sck_option().code, code, "{asked} Hz");
        assert!(real <= asked || code == 1, "{asked} Hz");
    }
    let caps = prog.info().capabilities;
    assert!(caps.set_sck);
    assert_eq!(
        caps.sck_range_hz,
        Some((protocol::SCK_OPTIONS[0].real_hz, 1_500_000))
    );
}

#[test]
fn three_mhz_only_with_the_capability_bit() {
    let part = part("m328p");
    // 16 MHz allows SCK up to 2.67 MHz; a 20 MHz crystal allows 3.3 MHz.
    let chip = EmulatedChip::new(
        part,
        ChipConfig {
            crystal_hz: Some(20_000_000),
            fuses: Some(FuseValues {
                lfuse: 0xFF,
                hfuse: part.fuse(FuseKind::High).unwrap().default,
                efuse: part.fuse(FuseKind::Extended).map(|e| e.default),
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let socket = Socket::with_chip(chip).shared();
    let (mut prog, device) = driver_with(
        part,
        &socket,
        variant(UsbAspVariant {
            three_mhz: true,
            ..Default::default()
        }),
    );
    prog.enter(part).unwrap();
    assert_eq!(
        prog.capabilities(),
        Some(protocol::CAP_TPI | protocol::CAP_3MHZ)
    );
    assert_eq!(prog.set_sck(3_000_000).unwrap(), 3_000_000);
    assert_eq!(prog.info().capabilities.sck_range_hz.unwrap().1, 3_000_000);
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    assert_eq!(chip_stats(&socket).max_sck_hz_seen, 3_000_000);
    assert_clean_timing(&socket, "3 MHz on a 20 MHz chip");
    drop(device);
    // Without the bit the same request gets 1.5 MHz.
    let (mut plain, _device) = driver(part, &socket);
    plain.enter(part).unwrap();
    assert_eq!(plain.set_sck(3_000_000).unwrap(), 1_500_000);
}

#[test]
fn the_clock_changes_inside_a_session_and_stays_in_programming_mode() {
    let part = part("m328p");
    let socket = running_board(part);
    let (mut prog, _device) = driver(part, &socket);
    prog.set_sck(50_000).unwrap();
    prog.enter(part).unwrap();
    assert_eq!(
        chip_stats(&socket).max_sck_hz_seen,
        protocol::SCK_OPTIONS[6].real_hz
    );
    prog.set_sck(2_000_000).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    assert_eq!(chip_stats(&socket).max_sck_hz_seen, 1_500_000);
    assert!(lock(&socket).chip().unwrap().programming_enabled());
}

#[test]
fn too_fast_for_a_ckdiv8_chip_garbles_reads_refuses_writes_and_slower_works() {
    // Factory-fresh ATmega32U4: 1 MHz, so SCK must stay below 250 kHz.
    let part = part("m32u4");
    let socket = board_with_lfuse(part, 0x52);
    let (mut prog, _device) = driver(part, &socket);
    prog.enter(part).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);

    // The clock changes at CONNECT, where Programming Enable's echo already fails: the
    // firmware's 32 tries are not enough.
    let err = prog.set_sck(1_500_000).unwrap_err();
    assert!(matches!(&err, Error::NoTarget { .. }), "{err}");
    assert!(chip_stats(&socket).sck_violations > 0);

    // Stepping down works in the same driver.
    assert_eq!(prog.set_sck(200_000).unwrap(), 187_500);
    assert_eq!(prog.read_signature().unwrap(), part.signature);

    // An instruction mis-clocked by a marginal clock is refused on the missing echo (forced
    // here by knocking the chip out of step).
    lock(&socket).chip_mut().unwrap().inject_desync();
    let err = prog.command(isp::chip_erase()).unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { reason, .. } if reason.contains("did not echo")),
        "{err}"
    );
    prog.leave().unwrap();
}

#[test]
fn a_target_out_of_step_is_brought_back_by_enableprog_s_reset_pulses() {
    let part = part("m32u4");
    let socket = running_board(part);
    let (mut prog, device) = driver(part, &socket);
    prog.enter(part).unwrap();
    lock(&socket).chip_mut().unwrap().inject_desync();
    let before = device_stats(&device).round_trips;
    // CONNECT pulses RST, which already resynchronises.
    prog.enter(part).unwrap();
    assert_eq!(device_stats(&device).round_trips - before, 3);
    assert!(lock(&socket).chip().unwrap().in_sync());
    assert_eq!(prog.read_signature().unwrap(), part.signature);
}

#[test]
fn the_2007_firmware_keeps_its_fixed_clock_and_says_so() {
    let part = part("m32u4");
    let socket = running_board(part);
    let (mut prog, device) = driver_with(part, &socket, variant(UsbAspVariant::old_firmware()));
    prog.set_sck(1_500_000).unwrap();
    prog.enter(part).unwrap();
    assert_eq!(prog.sck_settable(), Some(false));
    assert_eq!(prog.capabilities(), Some(0));
    assert_eq!(prog.sck_hz(), Some(375_000));
    assert_eq!(prog.set_sck(100_000).unwrap(), 375_000, "cannot go slower");
    let info = prog.info();
    assert!(!info.capabilities.set_sck);
    assert!(
        info.firmware.contains("cannot set SCK, firmware too old"),
        "{}",
        info.firmware
    );
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    assert_eq!(chip_stats(&socket).max_sck_hz_seen, 375_000);
    drop(device);
}

#[test]
fn the_slow_jumper_forces_8_khz_whatever_is_asked() {
    let part = part("m32u4");
    let socket = running_board(part);
    let (mut prog, device) = driver_with(
        part,
        &socket,
        variant(UsbAspVariant {
            slow_jumper: true,
            ..Default::default()
        }),
    );
    prog.set_sck(1_500_000).unwrap();
    prog.enter(part).unwrap();
    assert_eq!(prog.read_signature().unwrap(), part.signature);
    assert_eq!(
        chip_stats(&socket).max_sck_hz_seen,
        protocol::SCK_OPTIONS[4].real_hz
    );
    drop(device);
}

#[test]
fn the_job_layer_negotiates_the_clock_through_this_driver() {
    for (lfuse, expected_hz) in [(0xFF, 1_500_000), (0x52, 187_500)] {
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

/// One raw vendor IN request; the reply or the error.
fn raw_in(
    link: &mut EmulatedUsbLink,
    request: u8,
    args: [u8; 4],
    len: usize,
) -> isp_toolbox::Result<Vec<u8>> {
    let (value, index) = protocol::pack_args(args);
    let mut buf = vec![0u8; len];
    let got = link.control_in(
        0xC0,
        request,
        value,
        index,
        &mut buf,
        Duration::from_secs(1),
    )?;
    buf.truncate(got);
    Ok(buf)
}

#[test]
fn the_firmware_stores_the_code_and_applies_it_only_at_connect() {
    let firmware = UsbAspFirmware::new(UsbAspVariant::default());
    assert_eq!(firmware.stored_sck_code(), protocol::SCK_AUTO);
    assert_eq!(firmware.sck_hz(), None, "nothing applied before CONNECT");

    let part = part("m32u4");
    let socket = running_board(part);
    let device = emulated_device(socket.clone(), UsbAspVariant::default(), Faults::default());
    let mut link = EmulatedUsbLink::new(device);
    // Before any CONNECT the transmit function pointer is null: the firmware restarts and
    // the transfer never completes; afterwards it answers again.
    let err = raw_in(&mut link, request::TRANSMIT, [0x30, 0, 0, 0], 4).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(
        raw_in(&mut link, request::SETISPSCK, [8, 0, 0, 0], 1).unwrap(),
        vec![0]
    );
    raw_in(&mut link, request::CONNECT, [0; 4], 0).unwrap();
    assert_eq!(
        raw_in(&mut link, request::ENABLEPROG, [0; 4], 1).unwrap(),
        vec![0]
    );
    // A new code changes nothing until the next CONNECT.
    raw_in(&mut link, request::SETISPSCK, [12, 0, 0, 0], 1).unwrap();
    let sig = raw_in(&mut link, request::TRANSMIT, [0x30, 0, 0, 0], 4).unwrap();
    assert_eq!(sig[3], part.signature[0]);
    assert_eq!(chip_stats(&socket).max_sck_hz_seen, 93_750);
    raw_in(&mut link, request::CONNECT, [0; 4], 0).unwrap();
    raw_in(&mut link, request::ENABLEPROG, [0; 4], 1).unwrap();
    raw_in(&mut link, request::TRANSMIT, [0x30, 0, 1, 0], 4).unwrap();
    assert_eq!(chip_stats(&socket).max_sck_hz_seen, 1_500_000);
    // A read block of wLength 256 sends nothing: V-USB takes the low byte only.
    assert!(
        raw_in(&mut link, request::READFLASH, [0; 4], 256)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        raw_in(&mut link, request::READFLASH, [0; 4], 255)
            .unwrap()
            .len(),
        255
    );
    // After DISCONNECT the hardware SPI is off: a TRANSMIT waits forever for its flag and
    // the device answers nothing more.
    raw_in(&mut link, request::DISCONNECT, [0; 4], 0).unwrap();
    assert!(!lock(&socket).reset_asserted());
    assert!(raw_in(&mut link, request::TRANSMIT, [0x30, 0, 0, 0], 4).is_err());
    assert!(raw_in(&mut link, request::CONNECT, [0; 4], 0).is_err());
}
