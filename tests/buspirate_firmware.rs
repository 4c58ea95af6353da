//! The emulated Bus Pirate v3 firmware byte for byte (BP-FW `binIO.c`, `SPI.c`, `procMenu.c`),
//! quirks included, and how our driver copes with the states a real one can be found in.

mod buspirate_common;

use std::time::Duration;

use buspirate_common::*;
use isp_toolbox::Memory;
use isp_toolbox::emulate::buspirate::{
    BusPirate as EmulatedBusPirate, BusPirateConfig, BusPirateMode, FirmwareVersion, ResetWiring,
    StatusHandle,
};
use isp_toolbox::emulate::serial::{EmulatorHandle, ServeOptions, spawn_in_process};
use isp_toolbox::emulate::socket::{SharedSocket, Socket, lock};
use isp_toolbox::error::Error;
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::buspirate::{
    BusPirate, BusPirateOptions, FirmwareFeatures, ResetPins, emulated_with,
};
use isp_toolbox::transport::{MemoryLink, SerialLink, memory_link};

const WAIT: Duration = Duration::from_secs(2);

/// An emulated Bus Pirate with a raw link to it.
fn raw(
    socket: &SharedSocket,
    config: BusPirateConfig,
) -> (MemoryLink, EmulatorHandle, StatusHandle) {
    let firmware = EmulatedBusPirate::new(config);
    let status = firmware.status_handle();
    let (link, handle) = spawn_in_process(
        Box::new(firmware),
        socket.clone(),
        115_200,
        ServeOptions::default(),
    );
    (link, handle, status)
}

/// Sends `bytes` and reads exactly `n` back.
fn ask(link: &mut MemoryLink, bytes: &[u8], n: usize) -> Vec<u8> {
    link.write_all(bytes).unwrap();
    let mut buf = vec![0u8; n];
    link.read_exact(&mut buf, WAIT, "test").unwrap();
    buf
}

/// Reads until 100 ms pass without a byte.
fn rest(link: &mut MemoryLink) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = link
            .read_some(&mut buf, Duration::from_millis(100))
            .unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Takes a fresh emulated Bus Pirate into binary SPI mode the way avrdude does.
fn into_spi(link: &mut MemoryLink) {
    assert_eq!(ask(link, &[0; 20], 5), b"BBIO1");
    assert_eq!(ask(link, &[0x01], 4), b"SPI1");
}

#[test]
fn avrdude_session_byte_for_byte() {
    let part = part("m32u4");
    let socket = socket_with(part);
    let (mut link, _h, status) = raw(&socket, BusPirateConfig::default());
    // Two CRs at the terminal, then 20 zeros (which the terminal does not echo).
    assert_eq!(ask(&mut link, b"\n\n", 12), b"\r\nHiZ>\r\nHiZ>");
    assert_eq!(ask(&mut link, &[0; 20], 5), b"BBIO1");
    assert_eq!(status.get().mode, BusPirateMode::BitBang);
    assert_eq!(ask(&mut link, &[0x01], 4), b"SPI1");
    assert_eq!(
        ask(&mut link, &[5, 0, 0, 0, 0], 1),
        [0x01],
        "write-then-read exists"
    );
    assert_eq!(ask(&mut link, &[0x49, 0x60, 0x8A], 3), [1, 1, 1]);
    assert_eq!(status.get().spi_speed_code, Some(0));
    assert_eq!(ask(&mut link, &[0x06], 1), [0x01]);
    assert_eq!(
        ask(&mut link, &[0x01], 3),
        [0x01, 0x00, 0x01],
        "AVR extended v1"
    );
    assert!(!lock(&socket).reset_asserted());
    assert_eq!(ask(&mut link, &[0x48], 1), [0x01]);
    assert!(lock(&socket).reset_asserted(), "CS low asserts RESET");
    let pe = ask(&mut link, &[0x13, 0xAC, 0x53, 0x00, 0x00], 5);
    assert_eq!(pe[0], 0x01);
    assert_eq!(pe[3], 0x53, "the target echoes 0x53: {pe:02X?}");
    let sig = ask(&mut link, &[0x13, 0x30, 0x00, 0x01, 0x00], 5);
    assert_eq!(sig[4], part.signature[1]);
    // avrdude's exit: 00 → BBIO1, 40 (pin directions in bit-bang mode), 0F → 01 + banner.
    assert_eq!(ask(&mut link, &[0x00], 5), b"BBIO1");
    assert!(
        !lock(&socket).reset_asserted(),
        "bit-bang mode leaves the pins inputs"
    );
    assert_eq!(ask(&mut link, &[0x40], 1), [0x40]);
    assert!(
        lock(&socket).reset_asserted(),
        "0x40 drives every pin low, CS too"
    );
    assert_eq!(ask(&mut link, &[0x0F], 1), [0x01]);
    let banner = rest(&mut link);
    let text = String::from_utf8_lossy(&banner);
    assert!(
        text.starts_with("\r\nBus Pirate v3.b\r\nFirmware v6.3-beta1"),
        "{text}"
    );
    assert!(
        text.ends_with("http://dangerousprototypes.com\r\nHiZ>"),
        "{text}"
    );
    assert_eq!(status.get().mode, BusPirateMode::Terminal);
    assert_eq!(status.get().resets, 1);
    assert!(
        !lock(&socket).reset_asserted(),
        "the PIC reset released every pin"
    );
}

#[test]
fn terminal_reset_and_syntax_errors() {
    let socket = Socket::default().shared();
    let (mut link, _h, status) = raw(&socket, BusPirateConfig::default());
    assert_eq!(
        ask(&mut link, b"x\n", 31),
        b"x\r\nSyntax error at char 1\r\nHiZ>"
    );
    link.write_all(b"#\n").unwrap();
    let text = String::from_utf8_lossy(&rest(&mut link)).into_owned();
    assert!(
        text.starts_with("#\r\nRESET\r\n\r\nBus Pirate v3.b"),
        "{text}"
    );
    assert!(text.ends_with("HiZ>"), "{text}");
    assert_eq!(status.get().resets, 1);
}

#[test]
fn speed_and_config_commands_raise_cs_and_release_reset() {
    let socket = socket_with(part("m328p"));
    let (mut link, _h, status) = raw(&socket, BusPirateConfig::default());
    into_spi(&mut link);
    assert_eq!(ask(&mut link, &[0x8A, 0x48], 2), [1, 1]);
    assert!(lock(&socket).reset_asserted());
    assert_eq!(ask(&mut link, &[0x63], 1), [1]);
    assert!(!lock(&socket).reset_asserted(), "spiSetup() drives CS high");
    assert_eq!(status.get().spi_speed_code, Some(3));
    assert_eq!(ask(&mut link, &[0x48, 0x8A], 2), [1, 1]);
    assert!(
        !lock(&socket).reset_asserted(),
        "so does the SPI config command"
    );
    // 02/03 only set CS's latch.
    assert_eq!(ask(&mut link, &[0x02], 1), [1]);
    assert!(lock(&socket).reset_asserted());
    assert_eq!(ask(&mut link, &[0x03], 1), [1]);
    assert!(!lock(&socket).reset_asserted());
}

#[test]
fn write_then_read_limits_and_reads() {
    let part = part("m32u4");
    let socket = socket_with(part);
    let (mut link, _h, _s) = raw(&socket, BusPirateConfig::default());
    into_spi(&mut link);
    assert_eq!(ask(&mut link, &[0x8A, 0x48], 2), [1, 1]);
    // PE, then a signature read whose last byte is clocked in the read phase (0xFF).
    let mut cmd = vec![0x05, 0x00, 0x07, 0x00, 0x01];
    cmd.extend_from_slice(&[0xAC, 0x53, 0x00, 0x00, 0x30, 0x00, 0x02]);
    assert_eq!(ask(&mut link, &cmd, 2), [0x01, part.signature[2]]);
    // Over 4096: refused at once, and the "data" is then taken as commands.
    assert_eq!(ask(&mut link, &[0x05, 0x10, 0x01, 0x00, 0x00], 1), [0x00]);
    assert_eq!(ask(&mut link, &[0x01], 4), b"SPI1");
    assert_eq!(ask(&mut link, &[0x05, 0x00, 0x00, 0x10, 0x01], 1), [0x00]);
    // 04 pulls CS low for the transfer and lets it go after.
    assert_eq!(ask(&mut link, &[0x49], 1), [1]);
    assert_eq!(ask(&mut link, &[0x04, 0x00, 0x00, 0x00, 0x00], 1), [1]);
    assert!(!lock(&socket).reset_asserted());
}

#[test]
fn avr_extended_commands_and_the_bulk_read_limit() {
    let part = part("at90usb1286");
    let socket = socket_with(part);
    let flash = pattern(part.flash.size as usize, 1);
    lock(&socket).remove();
    lock(&socket).insert(
        isp_toolbox::emulate::EmulatedChip::new(
            part,
            isp_toolbox::emulate::ChipConfig {
                fuses: Some(isp_toolbox::emulate::FuseValues {
                    lfuse: 0xFF,
                    hfuse: 0x99,
                    efuse: Some(0xF3),
                }),
                ..Default::default()
            }
            .with_flash_at(0, &flash),
        )
        .unwrap(),
    );
    let (mut link, _h, _s) = raw(&socket, BusPirateConfig::default());
    into_spi(&mut link);
    assert_eq!(ask(&mut link, &[0x8A, 0x48, 0x63], 3), [1, 1, 1]);
    assert_eq!(ask(&mut link, &[0x48, 0x13, 0xAC, 0x53, 0, 0], 6)[4], 0x53);
    assert_eq!(ask(&mut link, &[0x06, 0x00], 2), [1, 1], "null operation");
    assert_eq!(
        ask(&mut link, &[0x06, 0x07], 2),
        [1, 0],
        "unknown sub-command"
    );
    // Word 0xFF80 + 256 bytes: avrdude's last page of this part, refused.
    let refused = [6, 2, 0, 0, 0xFF, 0x80, 0, 0, 1, 0];
    assert_eq!(ask(&mut link, &refused, 2), [1, 0]);
    // Word 0xFF00 + 255 bytes fits (0xFFFF), low byte first, odd length ends on a low byte.
    let ok = [6, 2, 0, 0, 0xFF, 0x00, 0, 0, 0, 0xFF];
    let reply = ask(&mut link, &ok, 2 + 255);
    assert_eq!(&reply[..2], [1, 1]);
    assert_eq!(&reply[2..], &flash[0x1FE00..0x1FE00 + 255]);
}

#[test]
fn older_firmwares_answer_the_missing_commands_as_unknown() {
    let socket = socket_with(part("m32u4"));
    let config = BusPirateConfig {
        firmware: FirmwareVersion::V6_1,
        ..Default::default()
    };
    let (mut link, _h, _s) = raw(&socket, config);
    into_spi(&mut link);
    assert_eq!(
        ask(&mut link, &[0x06], 1),
        [0x00],
        "no AVR extended commands"
    );
    assert_eq!(ask(&mut link, &[5, 0, 0, 0, 0], 1), [0x01]);

    let config = BusPirateConfig {
        firmware: FirmwareVersion::V5_9,
        ..Default::default()
    };
    let (mut link, _h, status) = raw(&socket, config);
    into_spi(&mut link);
    // avrdude's probe: `05` is unknown, and its four 0x00 leave SPI mode (four BBIO1).
    assert_eq!(
        ask(&mut link, &[5, 0, 0, 0, 0], 21),
        b"\0BBIO1BBIO1BBIO1BBIO1"
    );
    assert_eq!(status.get().mode, BusPirateMode::BitBang);
}

#[test]
fn bitbang_mode_commands() {
    let socket = socket_with(part("m32u4"));
    let (mut link, _h, _s) = raw(&socket, BusPirateConfig::default());
    assert_eq!(ask(&mut link, &[0; 20], 5), b"BBIO1");
    assert_eq!(ask(&mut link, &[0x10], 1), [0x00], "self-test: no errors");
    assert_eq!(ask(&mut link, &[0x05, 0x80, 0xFF], 3), [0x05, 0x80, 0x01]);
    assert_eq!(
        ask(&mut link, &[0x12, 0, 0, 0x3F, 0, 0x7F], 1),
        [0x01],
        "PWM on"
    );
    assert_eq!(ask(&mut link, &[0x13], 1), [0x01], "PWM off");
    assert_eq!(ask(&mut link, &[0x20], 1), [0x00], "unknown");
    // Directions: CS an output (0), the rest inputs; then CS high, power and pull-ups on.
    assert_eq!(ask(&mut link, &[0x5E], 1), [0x40]);
    assert!(lock(&socket).reset_asserted());
    assert_eq!(ask(&mut link, &[0xE1], 1), [0xFF]);
    assert!(!lock(&socket).reset_asserted());
    assert_eq!(
        ask(&mut link, &[0x02], 5),
        b"BBIO1",
        "I2C is not in this build"
    );
}

#[test]
fn open_drain_outputs_need_the_pull_ups() {
    let part = part("m32u4");
    let socket = socket_with(part);
    let (mut link, _h, _s) = raw(&socket, BusPirateConfig::default());
    into_spi(&mut link);
    // HiZ outputs, pull-ups off: the lines never go high, the target sees nothing.
    assert_eq!(ask(&mut link, &[0x82, 0x48], 2), [1, 1]);
    let before = chip_stats(&socket).isp_instructions;
    assert_eq!(
        ask(&mut link, &[0x13, 0xAC, 0x53, 0, 0], 5),
        [1, 0xFF, 0xFF, 0xFF, 0xFF]
    );
    assert_eq!(chip_stats(&socket).isp_instructions, before);
    // With the pull-ups on, open drain works.
    assert_eq!(ask(&mut link, &[0x4C], 1), [1]);
    assert_eq!(ask(&mut link, &[0x13, 0xAC, 0x53, 0, 0], 5)[3], 0x53);
}

#[test]
fn twenty_zeros_to_a_bus_pirate_in_binary_mode_overrun_its_uart() {
    // Five bytes of BBIO1 per 0x00: the firmware falls behind, its 4-byte FIFO overflows, and
    // a PIC24 that never clears OERR stops receiving. avrdude does exactly this when a
    // crashed run left the Bus Pirate in binary mode.
    let socket = socket_with(part("m32u4"));
    let (mut link, _h, status) = raw(&socket, BusPirateConfig::default());
    assert_eq!(ask(&mut link, &[0; 20], 5), b"BBIO1");
    link.write_all(&[0; 20]).unwrap();
    let answered = rest(&mut link);
    assert!(status.get().rx_overrun);
    assert!(
        answered.len() < 20 * 5,
        "only the bytes in the FIFO are answered"
    );
    link.write_all(&[0x01]).unwrap();
    assert!(rest(&mut link).is_empty(), "deaf until power-cycled");

    // Our driver then says so instead of hanging.
    let (result, took) = timed(|| BusPirate::new(link, BusPirateOptions::default()));
    let err = result.err().expect("a deaf Bus Pirate must not connect");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("unplug it"), "{err}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn the_driver_finds_the_bus_pirate_in_any_state() {
    let part = part("m32u4");
    let socket = socket_with(part);
    let (link, _h, status) = raw(&socket, BusPirateConfig::default());
    let options = BusPirateOptions::default;

    // From the terminal.
    let bp = BusPirate::new(link, options()).unwrap();
    assert_eq!(status.get().mode, BusPirateMode::Spi);
    // Left in SPI mode by a "crashed" run, in programming mode.
    let mut bp = bp;
    bp.enter(part).unwrap();
    let link = bp.abandon().unwrap();
    let mut bp = BusPirate::new(link, options()).unwrap();
    bp.enter(part).unwrap();
    assert_eq!(bp.read_signature().unwrap(), part.signature);
    // Left in bit-bang mode.
    let mut link = bp.abandon().unwrap();
    assert_eq!(ask(&mut link, &[0x00], 5), b"BBIO1");
    let bp = BusPirate::new(link, options()).unwrap();
    // Left halfway through a bulk transfer.
    let mut link = bp.abandon().unwrap();
    link.write_all(&[0x13, 0xAC]).unwrap();
    let bp = BusPirate::new(link, options()).unwrap();
    // Left waiting for an AVR extended sub-command.
    let mut link = bp.abandon().unwrap();
    link.write_all(&[0x06]).unwrap();
    let bp = BusPirate::new(link, options()).unwrap();
    // Left at the terminal with its banner and more text still to be read.
    let mut link = bp.abandon().unwrap();
    link.write_all(&[0x00, 0x0F]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    link.write_all(b"i\n").unwrap();
    let mut bp = BusPirate::new(link, options()).unwrap();
    bp.enter(part).unwrap();
    assert_eq!(bp.read_signature().unwrap(), part.signature);
    bp.close().unwrap();
    assert_eq!(status.get().mode, BusPirateMode::Terminal);
    assert!(!status.get().rx_overrun);
}

#[test]
fn a_bus_pirate_stuck_in_a_half_sent_page_is_reported_not_waited_for() {
    let socket = socket_with(part("m32u4"));
    let (mut link, _h, status) = raw(&socket, BusPirateConfig::default());
    into_spi(&mut link);
    // A write-then-read of 512 bytes of which only 3 arrived.
    link.write_all(&[0x05, 0x02, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00])
        .unwrap();
    let (result, took) = timed(|| BusPirate::new(link, BusPirateOptions::default()));
    let err = result.err().expect("no answer expected");
    assert!(
        matches!(&err, Error::Timeout { port, .. } if port == "emulated"),
        "{err}"
    );
    assert!(
        err.to_string().contains("unplug it and plug it back in"),
        "{err}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        !status.get().rx_overrun,
        "probing one byte at a time never overruns it"
    );
}

#[test]
fn no_bus_pirate_at_all_is_a_timeout_naming_the_port() {
    let (host, _silent) = memory_link("/dev/ttyUSB7", 115_200);
    let (result, took) = timed(|| BusPirate::new(host, BusPirateOptions::default()));
    let err = result.err().expect("nothing to connect to");
    let text = err.to_string();
    assert!(matches!(err, Error::Timeout { .. }), "{text}");
    assert!(text.contains("/dev/ttyUSB7"), "{text}");
    assert!(text.contains("looking for a Bus Pirate"), "{text}");
    assert!(err.hint().is_some());
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn no_target_is_reported_with_causes_after_the_retries() {
    let socket = Socket::default().shared();
    let (mut bp, handle, _s) = connect(&socket, BusPirateOptions::default());
    let err = bp.enter(part("m32u4")).unwrap_err();
    let Error::NoTarget { detail, causes } = &err else {
        panic!("{err}")
    };
    assert!(detail.contains("after 4 tries at 125 kHz"), "{detail}");
    assert!(causes.iter().any(|c| c.contains("CS pin")), "{causes:?}");
    assert!(!lock(&socket).reset_asserted(), "RESET left released");
    drop(bp);
    // Tries pulse RESET: 4 Programming Enables went out, each with the three signature reads
    // in its bulk transfer.
    assert_eq!(handle.stop().isp_instructions, 4 * 4);
}

#[test]
fn reset_on_aux_and_open_drain_with_pull_ups() {
    let part = part("m328p");
    let socket = socket_with(part);
    let config = BusPirateConfig {
        reset_wiring: ResetWiring::Aux,
        ..Default::default()
    };
    let aux = BusPirateOptions {
        reset: ResetPins {
            cs: false,
            aux: true,
            aux2: false,
        },
        pullups: true,
        ..Default::default()
    };
    let (mut bp, _h, _s) =
        emulated_with(socket.clone(), config, ServeOptions::default(), aux).unwrap();
    bp.enter(part).unwrap();
    // With RESET on AUX a speed change does not drop programming mode.
    bp.set_sck(1_000_000).unwrap();
    assert_eq!(bp.read_signature().unwrap(), part.signature);
    bp.close().unwrap();
    assert_timing_respected(&socket, "RESET on AUX");
}

#[test]
fn older_firmwares_work_through_the_fallbacks_at_every_pace() {
    let part = part("m32u4");
    for firmware in [FirmwareVersion::V6_1, FirmwareVersion::V5_9] {
        for sck in [31_250, 2_000_000] {
            let socket = socket_with(part);
            let config = BusPirateConfig {
                firmware,
                ..Default::default()
            };
            let options = BusPirateOptions {
                sck_hz: sck,
                ..Default::default()
            };
            let (mut bp, _h, status) =
                emulated_with(socket.clone(), config, ServeOptions::default(), options).unwrap();
            let expected = FirmwareFeatures {
                write_then_read: firmware == FirmwareVersion::V6_1,
                avr_extended: None,
            };
            assert_eq!(bp.features(), expected);
            bp.enter(part).unwrap();
            bp.chip_erase(part).unwrap();
            let data = pattern(256, sck);
            bp.write_page(part, Memory::Flash, 0x3F00, &data[..128])
                .unwrap();
            bp.write_page(part, Memory::Flash, 0x3F80, &data[128..])
                .unwrap();
            bp.write_page(part, Memory::Eeprom, 8, &data[..4]).unwrap();
            let mut back = vec![0u8; 256];
            bp.read(part, Memory::Flash, 0x3F00, &mut back).unwrap();
            assert_eq!(back, data, "{firmware:?} at {sck} Hz");
            let mut e = [0u8; 4];
            bp.read(part, Memory::Eeprom, 8, &mut e).unwrap();
            assert_eq!(e, data[..4]);
            bp.close().unwrap();
            assert!(!status.get().rx_overrun, "{firmware:?} at {sck} Hz");
            assert_timing_respected(&socket, &format!("{firmware:?} at {sck} Hz"));
        }
    }
}

#[test]
fn streaming_never_overruns_the_firmware_at_any_speed_code() {
    // RESET on AUX, so that speed changes keep the target in programming mode even where the
    // 16 MHz chip cannot follow the clock (codes 6 and 7 read garbage, but the pacing is what
    // is tested here).
    let part = part("m32u4");
    let config = BusPirateConfig {
        reset_wiring: ResetWiring::Aux,
        ..Default::default()
    };
    let options = BusPirateOptions {
        reset: ResetPins {
            cs: false,
            aux: true,
            aux2: false,
        },
        ..Default::default()
    };
    for speed in isp_toolbox::programmer::buspirate::protocol::SPEEDS {
        let socket = socket_with(part);
        let (mut bp, _h, status) = emulated_with(
            socket.clone(),
            config.clone(),
            ServeOptions::default(),
            options.clone(),
        )
        .unwrap();
        bp.enter(part).unwrap();
        assert_eq!(bp.set_sck(speed.hz).unwrap(), speed.hz);
        assert_eq!(status.get().spi_speed_code, Some(speed.code));
        let mut e = vec![0u8; 256];
        bp.read(part, Memory::Eeprom, 0, &mut e).unwrap();
        bp.read_signature().unwrap();
        bp.close().unwrap();
        assert!(!status.get().rx_overrun, "speed code {}", speed.code);
        if speed.hz <= 2_666_666 {
            assert_timing_respected(&socket, &format!("speed code {}", speed.code));
        }
    }
}

#[test]
fn dropping_the_driver_returns_to_the_terminal_and_slow_clocks_are_refused() {
    let part = part("m32u4");
    let socket = socket_with(part);
    let (mut bp, _h, status) = connect(&socket, BusPirateOptions::default());
    bp.enter(part).unwrap();
    let err = bp.set_sck(20_000).unwrap_err();
    assert!(err.to_string().contains("31.25 kHz"), "{err}");
    assert_eq!(bp.sck_hz(), Some(125_000));
    let info = bp.info();
    assert_eq!(info.driver, "buspirate");
    assert_eq!(info.capabilities.sck_range_hz, Some((31_250, 8_000_000)));
    assert!(
        info.firmware.contains("AVR extended commands v1"),
        "{}",
        info.firmware
    );
    drop(bp);
    assert_eq!(status.get().mode, BusPirateMode::Terminal);
    assert!(!lock(&socket).reset_asserted());
}
