//! The prepare job when things go wrong part-way: the board unplugged mid-write (Caterina and
//! HalfKay), a corrupted read-back, the user cancelling. Each error says how much was written
//! and that the bootloader was not touched, and the board can be prepared again afterwards.

mod prepare_common;

use isp_toolbox::Error;
use isp_toolbox::bootload::{Board, PrepareEvent, PrepareRequest, PrepareStep};
use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::emulate::programmer_board::{
    BoardConfig, BoardState, EmulatedHost, synthetic_bootloader,
};
use isp_toolbox::job::CancelToken;
use prepare_common::*;

/// Bytes our client sends before the first page: the sign-on (ESC S V v p a b t T+code P),
/// `s`, `N` and `e`.
const BYTES_BEFORE_PAGES: u64 = 14;
/// One page: `A` hi lo, `B` len_hi len_lo `F`, 128 bytes.
const BYTES_PER_PAGE: u64 = 3 + 4 + 128;
/// Bytes Caterina sends before the first page's answer: S(7) V(2) v(1) p a b(3) t(2) T P,
/// s(3), N, e.
const REPLIES_BEFORE_PAGES: u64 = 24;

fn in_bootloader() -> isp_toolbox::emulate::programmer_board::ProgrammerBoard {
    plugged(BoardConfig::pro_micro(None).in_state(BoardState::Bootloader))
}

#[test]
fn caterina_unplugged_mid_write_says_what_was_written_and_a_second_try_succeeds() {
    let board = in_bootloader();
    let faults = Faults::parse(&format!(
        "hangup={}",
        BYTES_BEFORE_PAGES + 3 * BYTES_PER_PAGE + 60
    ))
    .unwrap();
    let mut host = EmulatedHost::new(board.clone()).with_faults(faults);
    let image = isp_image(TEENSYDUINO_SERIAL, 0x1000);
    let request = PrepareRequest::new(Board::ProMicro, image.clone());
    let (result, events) = run(&mut host, &request);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("writing the ISP firmware stopped: lost the programmer"),
        "{text}"
    );
    assert!(
        text.contains("3 block(s)") && text.contains("up to 0x017F"),
        "{text}"
    );
    assert!(
        text.contains("bootloader (0x7000 up) was not touched"),
        "{text}"
    );
    assert!(
        err.hint().unwrap().contains("not bricked"),
        "{:?}",
        err.hint()
    );
    assert!(
        matches!(&err, Error::Interrupted { source, .. } if matches!(**source, Error::Link { .. }))
    );
    assert!(!steps(&events).contains(&PrepareStep::Verify));
    let flash = board.flash();
    assert_eq!(&flash[..0x180], &image.page(0, 0x180, 0xFF)[..]);
    assert!(flash[0x180..0x7000].iter().all(|&b| b == 0xFF));
    assert_eq!(&flash[0x7000..], &synthetic_bootloader(0x1000)[..]);

    // Plugged back in and double-tapped: a new bootloader session, and prepare again.
    board.press_reset();
    board.press_reset();
    let mut host = EmulatedHost::new(board.clone());
    let (result, events) = run(&mut host, &request);
    let report = result.unwrap_or_else(|e| panic!("{e}\n{}", log_text(&events)));
    assert!(report.verified);
    assert_eq!(&board.flash()[..0x1000], &image.page(0, 0x1000, 0xFF)[..]);
}

#[test]
fn a_corrupted_read_back_fails_the_verify_and_says_the_program_may_be_wrong() {
    let board = in_bootloader();
    let pages = 8;
    let faults = Faults::parse(&format!(
        "corrupt={}",
        REPLIES_BEFORE_PAGES + 2 * pages + 1 + 10
    ))
    .unwrap();
    let mut host = EmulatedHost::new(board.clone()).with_faults(faults);
    let request = PrepareRequest::new(
        Board::ProMicro,
        isp_image(TEENSYDUINO_SERIAL, pages as usize * 128),
    );
    let (result, events) = run(&mut host, &request);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("verifying the ISP firmware stopped: flash verify failed at 0x00009"),
        "{text}"
    );
    assert!(text.contains("8 block(s)"), "{text}");
    assert_eq!(steps(&events).last(), Some(&PrepareStep::Verify));
    assert_eq!(board.state(), BoardState::Bootloader, "never told to exit");
}

#[test]
fn cancelling_between_pages_stops_and_reports_the_pages_written() {
    let board = in_bootloader();
    let mut host = EmulatedHost::new(board.clone());
    let request = PrepareRequest::new(Board::ProMicro, isp_image(TEENSYDUINO_SERIAL, 0x1000));
    let (result, _) = run_with(&mut host, &request, &CancelToken::new(), |event, cancel| {
        if matches!(
            event,
            PrepareEvent::Progress {
                step: PrepareStep::Write,
                done: 0x280,
                ..
            }
        ) {
            cancel.cancel();
        }
    });
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Interrupted { source, .. } if matches!(**source, Error::Cancelled))
    );
    assert!(err.to_string().contains("5 block(s)"), "{err}");
    assert!(board.flash()[0x280..0x1000].iter().all(|&b| b == 0xFF));
}

#[test]
fn halfkay_unplugged_mid_write_says_what_was_written() {
    let board = teensy_running_keyboard();
    let mut host = EmulatedHost::new(board.clone())
        .playing_user()
        .with_faults(Faults::parse("hangup=5").unwrap());
    let image = isp_image(TEENSYDUINO_SERIAL, 0x1000);
    let (result, _) = run(
        &mut host,
        &PrepareRequest::new(Board::Teensy2, image.clone()),
    );
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("5 block(s)") && text.contains("up to 0x027F"),
        "{text}"
    );
    assert!(
        text.contains("HalfKay itself (0x7E00 up) was not touched"),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("button"));
    let flash = board.flash();
    assert_eq!(&flash[..0x280], &image.page(0, 0x280, 0xFF)[..]);
    assert!(flash[0x280..0x7E00].iter().all(|&b| b == 0xFF));
    assert_eq!(&flash[0x7E00..], &synthetic_bootloader(0x200)[..]);
}

#[test]
fn halfkay_refusing_blocks_fails_after_teensy_loader_clis_retry_budget() {
    let board = teensy_running_keyboard();
    // From the third transfer on, nothing answers (a wedged bootloader).
    let mut host = EmulatedHost::new(board.clone())
        .playing_user()
        .with_faults(Faults::parse("stall=2").unwrap());
    let (result, _) = run(
        &mut host,
        &PrepareRequest::new(Board::Teensy2, isp_image(TEENSYDUINO_SERIAL, 0x400)),
    );
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("HalfKay did not accept the block at 0x00100"),
        "{text}"
    );
    assert!(text.contains("2 block(s)"), "{text}");
    // The 0.5 s budget, spent retrying every 10 ms (on the virtual clock).
    assert!(text.contains("50 attempt(s)"), "{text}");
}
