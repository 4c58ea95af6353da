//! The emulated Caterina byte by byte (its quirks, as Caterina.c has them) and the emulated
//! board's state machine: the 8 s timeout, `E`, the 1200-baud touch, SparkFun's double tap,
//! a board without a program.

mod prepare_common;

use std::time::Duration;

use isp_toolbox::Error;
use isp_toolbox::bootload::host::Host;
use isp_toolbox::emulate::caterina::CaterinaFirmware;
use isp_toolbox::emulate::programmer_board::{
    BoardConfig, BoardState, EMULATED_TTY, EmulatedHost, ProgrammerBoard,
};
use isp_toolbox::emulate::serial::{EmulatorHandle, ServeOptions, spawn_in_process};
use isp_toolbox::emulate::socket::lock;
use isp_toolbox::transport::{MemoryLink, SerialLink};
use prepare_common::*;

const REPLY: Duration = Duration::from_secs(2);

fn in_bootloader(program: bool) -> ProgrammerBoard {
    let app = program
        .then(|| isp_toolbox::emulate::programmer_board::synthetic_application(KEYBOARD, 0, 0x400));
    plugged(BoardConfig::pro_micro(app).in_state(BoardState::Bootloader))
}

fn serve(board: &ProgrammerBoard) -> (MemoryLink, EmulatorHandle) {
    let firmware = CaterinaFirmware::new(board.clone(), board.session());
    spawn_in_process(
        Box::new(firmware),
        board.socket(),
        57_600,
        ServeOptions::default(),
    )
}

/// Sends `bytes` and reads `len` bytes of answer.
fn ask(link: &mut MemoryLink, bytes: &[u8], len: usize) -> Vec<u8> {
    link.write_all(bytes).unwrap();
    let mut reply = vec![0u8; len];
    link.read_exact(&mut reply, REPLY, "test").unwrap();
    reply
}

#[test]
fn answers_like_caterina_c() {
    let board = in_bootloader(false);
    let (mut link, _emulator) = serve(&board);
    assert_eq!(ask(&mut link, b"S", 7), b"CATERIN");
    assert_eq!(ask(&mut link, b"V", 2), b"10");
    assert_eq!(ask(&mut link, b"v", 1), b"?", "no hardware version");
    assert_eq!(ask(&mut link, b"p", 1), b"S");
    assert_eq!(ask(&mut link, b"a", 1), b"Y");
    assert_eq!(ask(&mut link, b"b", 3), [b'Y', 0, 128]);
    assert_eq!(ask(&mut link, b"t", 2), [0x44, 0]);
    assert_eq!(ask(&mut link, &[b'T', 0x44], 1), b"\r");
    assert_eq!(ask(&mut link, b"s", 3), [0x87, 0x95, 0x1E], "reversed");
    assert_eq!(ask(&mut link, b"N", 1), [0xD8]);
    assert_eq!(ask(&mut link, &[b'l', 0x00], 1), b"?", "no lock writes");
    // ESC is ignored, so the '?' above belongs to 'l' and its data byte 0x00 is unknown too.
    assert_eq!(ask(&mut link, &[0x1B, b'L'], 2), b"?\r");
}

#[test]
fn addresses_are_words_for_flash_and_bytes_for_eeprom() {
    let board = in_bootloader(false);
    let (mut link, _emulator) = serve(&board);
    // Flash word 0x40 is byte 0x80.
    let mut frame = vec![b'A', 0x00, 0x40, b'B', 0x00, 0x80, b'F'];
    frame.extend((0..128).map(|i| i as u8));
    assert_eq!(ask(&mut link, &frame, 2), b"\r\r");
    assert_eq!(&board.flash()[0x80..0x84], &[0, 1, 2, 3]);
    assert_eq!(
        ask(&mut link, &[b'A', 0x00, 0x40, b'g', 0x00, 0x04, b'F'], 5),
        [b'\r', 0, 1, 2, 3]
    );
    // EEPROM byte 0x123, two bytes, auto-incremented.
    assert_eq!(
        ask(
            &mut link,
            &[b'A', 0x01, 0x23, b'B', 0x00, 0x02, b'E', 0xAB, 0xCD],
            2
        ),
        b"\r\r"
    );
    let socket = board.socket();
    assert_eq!(
        &lock(&socket).chip().unwrap().eeprom()[0x123..0x125],
        &[0xAB, 0xCD]
    );
    assert_eq!(
        ask(&mut link, &[b'A', 0x01, 0x24, b'g', 0x00, 0x01, b'E'], 2),
        [b'\r', 0xCD]
    );
    // An unknown memory type answers '?' without reading data.
    assert_eq!(ask(&mut link, &[b'g', 0x00, 0x01, b'X'], 1), b"?");
}

#[test]
fn erase_keeps_the_bootloader_and_a_block_writes_exactly_one_page() {
    let board = in_bootloader(true);
    let (mut link, _emulator) = serve(&board);
    assert_eq!(ask(&mut link, b"e", 1), b"\r");
    let flash = board.flash();
    assert!(flash[..0x7000].iter().all(|&b| b == 0xFF));
    assert!(flash[0x7000..].iter().any(|&b| b != 0xFF));
    // A block longer than a page wraps inside the page buffer: the page holds the last
    // 128 bytes sent, the next page is untouched.
    let mut frame = vec![b'A', 0x00, 0x00, b'B', 0x01, 0x00, b'F'];
    frame.extend(std::iter::repeat_n(0x11, 128).chain(std::iter::repeat_n(0x22, 128)));
    assert_eq!(ask(&mut link, &frame, 2), b"\r\r");
    let flash = board.flash();
    assert!(flash[..0x80].iter().all(|&b| b == 0x22));
    assert!(flash[0x80..0x100].iter().all(|&b| b == 0xFF));
}

#[test]
fn idle_for_8_seconds_with_a_program_the_bootloader_leaves_and_the_port_goes() {
    let board = in_bootloader(true);
    let (mut link, _emulator) = serve(&board);
    // 'g' (and 'B') restart the timer; other commands do not.
    assert_eq!(ask(&mut link, &[b'g', 0x00, 0x01, b'F'], 1).len(), 1);
    board.advance(Duration::from_millis(7_900));
    assert_eq!(board.state(), BoardState::Bootloader);
    assert_eq!(ask(&mut link, b"S", 7), b"CATERIN");
    assert_eq!(ask(&mut link, &[b'g', 0x00, 0x01, b'F'], 1).len(), 1);
    board.advance(Duration::from_millis(7_900));
    assert_eq!(board.state(), BoardState::Bootloader);
    board.advance(Duration::from_millis(200));
    assert_eq!(board.state(), BoardState::Application);
    link.write_all(b"S").unwrap();
    let mut reply = [0u8; 1];
    let err = link
        .read_exact(&mut reply, REPLY, "after the timeout")
        .unwrap_err();
    assert!(matches!(err, Error::Link { .. }), "{err}");
}

#[test]
fn without_a_program_caterina_waits_forever_even_after_e() {
    let board = in_bootloader(false);
    let (mut link, _emulator) = serve(&board);
    assert_eq!(ask(&mut link, b"E", 1), b"\r");
    board.advance(Duration::from_secs(60));
    assert_eq!(board.state(), BoardState::Bootloader);
    assert_eq!(ask(&mut link, b"p", 1), b"S");
}

#[test]
fn e_starts_the_program_half_a_second_later() {
    let board = in_bootloader(true);
    let (mut link, _emulator) = serve(&board);
    assert_eq!(ask(&mut link, b"E", 1), b"\r");
    board.advance(Duration::from_millis(450));
    assert_eq!(board.state(), BoardState::Bootloader);
    board.advance(Duration::from_millis(100));
    assert_eq!(board.state(), BoardState::Application);
    assert!(board.serial_ports().is_empty(), "still enumerating");
    board.advance(Duration::from_millis(400));
    assert!(
        board.serial_ports().is_empty(),
        "a keyboard program has no serial port"
    );
    assert_eq!(board.usb_devices()[0].id, KEYBOARD);
}

#[test]
fn the_1200_baud_touch_only_restarts_arduino_core_programs() {
    for (id, restarts) in [(PRO_MICRO_SKETCH, true), (TEENSYDUINO_SERIAL, false)] {
        let board = pro_micro_running(id, 0x02);
        let mut host = EmulatedHost::new(board.clone());
        let mut port = host.open_serial(EMULATED_TTY, 1200).unwrap();
        port.set_dtr(false).unwrap();
        drop(port);
        board.advance(Duration::from_millis(119));
        assert_eq!(board.state(), BoardState::Application, "{id}");
        board.advance(Duration::from_millis(2));
        let expected = if restarts {
            BoardState::Bootloader
        } else {
            BoardState::Application
        };
        assert_eq!(board.state(), expected, "{id}");
    }
    // Opening at another baud rate and closing does nothing.
    let board = pro_micro_running(PRO_MICRO_SKETCH, 0xEF);
    let mut host = EmulatedHost::new(board.clone());
    drop(host.open_serial(EMULATED_TTY, 9600).unwrap());
    board.advance(Duration::from_secs(1));
    assert_eq!(board.state(), BoardState::Application);
}

#[test]
fn sparkfun_double_tap_window_is_750_ms() {
    let board = pro_micro_running(KEYBOARD, 0);
    board.press_reset();
    board.advance(Duration::from_millis(740));
    assert_eq!(board.state(), BoardState::AwaitingSecondReset);
    assert!(board.usb_devices().is_empty(), "not on USB while it waits");
    board.press_reset();
    assert_eq!(board.state(), BoardState::Bootloader);
    board.advance(Duration::from_millis(400));
    assert_eq!(
        board.serial_ports()[0].usb_id(),
        Some("1B4F:9205".parse().unwrap())
    );

    // Too slow: the program runs again in between.
    let board = pro_micro_running(KEYBOARD, 0);
    board.press_reset();
    board.advance(Duration::from_millis(760));
    assert_eq!(board.state(), BoardState::Application);
    board.press_reset();
    assert_eq!(board.state(), BoardState::AwaitingSecondReset);

    // No program: one reset is enough, the bootloader stays after the window.
    let board = plugged(BoardConfig::pro_micro(None));
    board.press_reset();
    board.advance(Duration::from_millis(800));
    assert_eq!(board.state(), BoardState::Bootloader);
}
