//! The whole "prepare the programmer board" journey against the emulated boards: a Pro Micro
//! through Caterina (1200-baud touch, double-tapped RESET) and a Teensy 2.0 through HalfKay,
//! ending with the new ISP programmer's port; and what the board looks like afterwards (the
//! program in the application section, the bootloader untouched, the state changes).
//! All waits run on the board's virtual clock.

mod prepare_common;

use std::time::Duration;

use isp_toolbox::bootload::host::{Found, UserAction};
use isp_toolbox::bootload::{Board, PrepareEvent, PrepareRequest, PrepareStep};
use isp_toolbox::emulate::programmer_board::{
    BoardConfig, BoardModel, BoardState, CaterinaVariant, EMULATED_TTY, EmulatedHost,
    synthetic_bootloader,
};
use prepare_common::*;

const ALL_STEPS: [PrepareStep; 9] = [
    PrepareStep::Check,
    PrepareStep::EnterBootloader,
    PrepareStep::WaitBootloader,
    PrepareStep::Connect,
    PrepareStep::Erase,
    PrepareStep::Write,
    PrepareStep::Verify,
    PrepareStep::Start,
    PrepareStep::WaitProgrammer,
];

fn states(board: &isp_toolbox::emulate::programmer_board::ProgrammerBoard) -> Vec<BoardState> {
    board.history().iter().map(|t| t.state).collect()
}

#[test]
fn pro_micro_running_a_sketch_restarts_into_caterina_by_the_1200_baud_touch() {
    let board = pro_micro_running(PRO_MICRO_SKETCH, 0xEF);
    let mut host = EmulatedHost::new(board.clone());
    let image = isp_image(TEENSYDUINO_SERIAL, 0x1A40);
    let mut request = PrepareRequest::new(Board::ProMicro, image.clone());
    request.port = Some(EMULATED_TTY.to_string());
    let (result, events) = run(&mut host, &request);
    let report = result.unwrap_or_else(|e| panic!("{e}\n{}", log_text(&events)));

    assert_eq!(steps(&events), ALL_STEPS);
    assert!(instructions(&events).is_empty(), "the touch was enough");
    assert!(log_text(&events).contains("1200-baud touch"));
    assert_eq!(
        report.bootloader_port.id(),
        Some("1B4F:9205".parse().unwrap())
    );
    assert!(
        report.bootloader.contains("CATERIN 1.0"),
        "{}",
        report.bootloader
    );
    assert_eq!(report.blocks_written, 0x1A40 / 128 + 1);
    assert!(report.verified);
    assert_eq!(report.programmer, "promicro-isp");
    match &report.programmer_port {
        Found::Serial(port) => {
            assert_eq!(port.name, EMULATED_TTY);
            assert_eq!(port.usb_id(), Some(TEENSYDUINO_SERIAL));
        }
        other => panic!("expected a serial port, got {other}"),
    }

    // The program fills the application section's start, the rest of it is erased (the old
    // sketch is gone), and Caterina's own section is byte for byte what it was.
    let flash = board.flash();
    assert_eq!(&flash[..0x1A40], &image.page(0, 0x1A40, 0xFF)[..]);
    assert!(flash[0x1A40..0x7000].iter().all(|&b| b == 0xFF));
    assert_eq!(&flash[0x7000..], &synthetic_bootloader(0x1000)[..]);
    assert_eq!(
        states(&board),
        [
            BoardState::Application,
            BoardState::Bootloader,
            BoardState::Application
        ]
    );
    assert_eq!(board.application_id(), Some(TEENSYDUINO_SERIAL));
}

#[test]
fn pro_micro_running_a_keyboard_needs_the_double_tap_and_the_instruction_says_so() {
    let board = pro_micro_running(KEYBOARD, 0x00);
    let mut host = EmulatedHost::new(board.clone()).playing_user();
    let request = PrepareRequest::new(Board::ProMicro, isp_image(TEENSYDUINO_SERIAL, 0x800));
    let (result, events) = run(&mut host, &request);
    let report = result.unwrap_or_else(|e| panic!("{e}\n{}", log_text(&events)));

    let shown = instructions(&events);
    assert_eq!(shown.len(), 1);
    assert!(
        shown[0].contains("twice") && shown[0].contains("750 ms"),
        "{}",
        shown[0]
    );
    assert!(events.iter().any(|e| matches!(
        e,
        PrepareEvent::Instruction {
            action: UserAction::DoubleTapReset,
            ..
        }
    )));
    // The countdown ran while the user reached for the board.
    let countdown: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            PrepareEvent::Countdown {
                step: PrepareStep::WaitBootloader,
                remaining,
                total,
            } => {
                assert_eq!(*total, Duration::from_secs(30));
                Some(remaining.as_secs_f64().ceil() as u64)
            }
            _ => None,
        })
        .collect();
    assert_eq!(countdown, [30, 29], "found 1.7 s after the instruction");
    assert_eq!(
        states(&board),
        [
            BoardState::Application,
            BoardState::AwaitingSecondReset,
            BoardState::Bootloader,
            BoardState::Application
        ]
    );
    assert_eq!(report.programmer_port.id(), Some(TEENSYDUINO_SERIAL));
}

#[test]
fn a_single_reset_on_a_sparkfun_board_goes_back_to_the_program_and_the_wait_ends_clearly() {
    let board = pro_micro_running(KEYBOARD, 0x00);
    let flash_before = board.flash();
    board.press_reset_at(board.now_ns() + 1_000_000_000);
    let mut host = EmulatedHost::new(board.clone());
    let mut request = PrepareRequest::new(Board::ProMicro, isp_image(TEENSYDUINO_SERIAL, 0x800));
    request.bootloader_timeout = Duration::from_secs(5);
    let (result, events) = run(&mut host, &request);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Caterina bootloader") && text.contains("1B4F:9205") && text.contains("5 s"),
        "{text}"
    );
    assert!(
        text.contains("FEED:6060"),
        "says what is there instead: {text}"
    );
    assert!(err.hint().unwrap().contains("twice"));
    assert_eq!(err.exit_code(), 1);
    assert!(!steps(&events).contains(&PrepareStep::Connect));
    assert_eq!(board.flash(), flash_before, "nothing was written");
    assert_eq!(
        states(&board),
        [
            BoardState::Application,
            BoardState::AwaitingSecondReset,
            BoardState::Application
        ]
    );
}

#[test]
fn an_arduino_caterina_enters_the_bootloader_on_a_single_reset() {
    let config = BoardConfig {
        model: BoardModel::Caterina {
            usb: "2341:0036".parse().unwrap(),
            variant: CaterinaVariant::Arduino,
        },
        ..BoardConfig::pro_micro(Some(
            isp_toolbox::emulate::programmer_board::synthetic_application(KEYBOARD, 0, 0x400),
        ))
    };
    let board = plugged(config);
    board.press_reset_at(board.now_ns() + 500_000_000);
    let mut host = EmulatedHost::new(board.clone());
    let request = PrepareRequest::new(Board::ProMicro, isp_image(TEENSYDUINO_SERIAL, 0x400));
    let (result, events) = run(&mut host, &request);
    let report = result.unwrap_or_else(|e| panic!("{e}\n{}", log_text(&events)));
    assert_eq!(
        report.bootloader_port.id(),
        Some("2341:0036".parse().unwrap())
    );
    assert_eq!(
        states(&board),
        [
            BoardState::Application,
            BoardState::Bootloader,
            BoardState::Application
        ]
    );
}

#[test]
fn a_board_already_in_its_bootloader_is_used_as_it_is() {
    let board = plugged(BoardConfig::pro_micro(None).in_state(BoardState::Bootloader));
    let mut host = EmulatedHost::new(board.clone());
    let request = PrepareRequest::new(Board::ProMicro, isp_image(TEENSYDUINO_SERIAL, 0x300));
    let (result, events) = run(&mut host, &request);
    result.unwrap_or_else(|e| panic!("{e}\n{}", log_text(&events)));
    assert!(!steps(&events).contains(&PrepareStep::WaitBootloader));
    assert!(log_text(&events).contains("already running"));
}

#[test]
fn teensy_2_is_prepared_through_halfkay() {
    let board = teensy_running_keyboard();
    let mut host = EmulatedHost::new(board.clone()).playing_user();
    let image = isp_image(TEENSYDUINO_SERIAL, 0x2345);
    let request = PrepareRequest::new(Board::Teensy2, image.clone());
    let (result, events) = run(&mut host, &request);
    let report = result.unwrap_or_else(|e| panic!("{e}\n{}", log_text(&events)));

    assert_eq!(
        steps(&events),
        [
            PrepareStep::Check,
            PrepareStep::EnterBootloader,
            PrepareStep::WaitBootloader,
            PrepareStep::Connect,
            PrepareStep::Write,
            PrepareStep::Verify,
            PrepareStep::Start,
            PrepareStep::WaitProgrammer,
        ]
    );
    let shown = instructions(&events);
    assert_eq!(shown.len(), 1);
    assert!(shown[0].contains("pushbutton"), "{}", shown[0]);
    assert!(!report.verified, "HalfKay cannot read back");
    assert!(log_text(&events).contains("not verified"));
    assert_eq!(report.bootloader, "HalfKay");
    assert_eq!(
        report.bootloader_port.id(),
        Some("16C0:0478".parse().unwrap())
    );
    assert_eq!(report.blocks_written, 0x2345_u32.div_ceil(128));
    assert_eq!(report.programmer, "teensy2-isp");
    assert_eq!(report.programmer_port.id(), Some(TEENSYDUINO_SERIAL));

    let flash = board.flash();
    assert_eq!(&flash[..0x2345], &image.page(0, 0x2345, 0xFF)[..]);
    assert!(
        flash[0x2345..0x7E00].iter().all(|&b| b == 0xFF),
        "old program erased"
    );
    assert_eq!(&flash[0x7E00..], &synthetic_bootloader(0x200)[..]);
    assert_eq!(
        states(&board),
        [
            BoardState::Application,
            BoardState::Bootloader,
            BoardState::Application
        ]
    );
}

#[test]
fn teensy_without_a_button_press_times_out_naming_halfkay() {
    let board = teensy_running_keyboard();
    let mut host = EmulatedHost::new(board.clone());
    let mut request = PrepareRequest::new(Board::Teensy2, isp_image(TEENSYDUINO_SERIAL, 0x400));
    request.bootloader_timeout = Duration::from_secs(4);
    let (result, _) = run(&mut host, &request);
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains("HalfKay bootloader (16C0:0478)"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("pushbutton"));
}

#[test]
fn a_file_for_another_mcu_is_refused_before_the_board_is_touched() {
    for (board_kind, len) in [(Board::ProMicro, 0x7100), (Board::Teensy2, 0x7E80)] {
        let board = match board_kind {
            Board::ProMicro => pro_micro_running(KEYBOARD, 0),
            Board::Teensy2 => teensy_running_keyboard(),
        };
        let flash_before = board.flash();
        let mut host = EmulatedHost::new(board.clone()).playing_user();
        let request = PrepareRequest::new(board_kind, isp_image(TEENSYDUINO_SERIAL, len));
        let (result, events) = run(&mut host, &request);
        let err = result.unwrap_err();
        assert!(err.to_string().contains("nothing was written"), "{err}");
        assert_eq!(err.exit_code(), 2);
        assert_eq!(steps(&events), [PrepareStep::Check]);
        assert_eq!(board.flash(), flash_before);
        assert_eq!(states(&board), [BoardState::Application], "{board_kind}");
    }
}

#[test]
fn the_wait_for_the_new_programmer_fails_clearly_when_the_file_shows_no_port() {
    // A program without a USB descriptor: after the upload nothing enumerates.
    let board = plugged(BoardConfig::pro_micro(None).in_state(BoardState::Bootloader));
    let mut host = EmulatedHost::new(board.clone());
    let mut request = PrepareRequest::new(Board::ProMicro, image_of(&[0x0C, 0x94, 0x34, 0x12]));
    request.programmer_timeout = Duration::from_secs(3);
    let (result, events) = run(&mut host, &request);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("ISP programmer port") && text.contains("16C0:0483"),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("plug it back in"));
    assert!(log_text(&events).contains("no USB device descriptor"));
    assert_eq!(board.state(), BoardState::Application);
}
