//! Tools → Production line, in the window, on an emulated fixture: boards go in and out with
//! the fixture's buttons, the big status follows, a FAIL waits for Acknowledge, and the run
//! log has one line per board.
#![cfg(feature = "gui")]

mod gui_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use gui_common::*;
use isp_toolbox::emulate::socket::lock;
use isp_toolbox::gui::App;
use isp_toolbox::gui::production::LineStatus;
use isp_toolbox::part::FuseKind;
use isp_toolbox::production::BoardResult;
use isp_toolbox::production::emulated::ScriptStep;
use isp_toolbox::production::log::read_jsonl;

/// A profile for the emulated ArduinoISP with the 4 KB image of `bootloader_file`, Caterina's
/// fuses and a lock byte, logging to `line.log.jsonl` in `dir`.
fn profile_file(dir: &Path) -> PathBuf {
    bootloader_file(dir);
    let path = dir.join("line.json");
    std::fs::write(
        &path,
        r#"{
  "name": "Test line",
  "programmer": "avrisp",
  "port": "emulated",
  "mcu": "atmega32u4",
  "image": "bootloader.hex",
  "fuses": { "bootloader": "caterina-promicro-5v", "preset": "default", "lock": "0x2F" },
  "log": "line.log.jsonl"
}"#,
    )
    .unwrap();
    path
}

fn app_with_profile(dir: &Path) -> Harness<'static, App> {
    let mut h = harness(promicro_settings());
    h.run_steps(2);
    h.state_mut().open_production();
    h.run_steps(2);
    h.get_by_label("Production line");
    assert!(is_disabled(&h, "Start line"));
    h.state_mut().production.load_profile(&profile_file(dir));
    h.run_steps(2);
    assert!(
        !is_disabled(&h, "Start line"),
        "{:?}",
        h.state().production.start_blocker()
    );
    h
}

/// Steps the UI until `done` holds for the app.
fn step_until(h: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(h.state()) {
        assert!(
            Instant::now() < deadline,
            "waited too long for {what}; status {:?}; log {}",
            h.state().production.status(),
            log_text(h)
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}

fn status(app: &App) -> LineStatus {
    app.production.status().clone()
}

fn result_of(app: &App, board: u64) -> Option<(BoardResult, bool, bool)> {
    match status(app) {
        LineStatus::Done {
            record,
            acknowledged,
            removing,
        } if record.board == board => Some((record.result, acknowledged, removing)),
        _ => None,
    }
}

#[test]
fn a_pass_a_fail_acknowledged_and_a_wrong_mcu_on_the_emulated_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app_with_profile(dir.path());
    h.get_by_label("Test line");

    click(&mut h, "Start line");
    assert!(h.state().production.is_running());
    // The main window keeps its jobs off the programmer meanwhile.
    assert!(is_disabled(&h, "Detect"));
    step_until(&mut h, "waiting for board 1", |a| {
        status(a) == LineStatus::WaitingForBoard { board: 1 }
    });
    h.get_by_label("Put board 1 in");

    // Board 1: a fresh chip passes and the line waits for it to come out.
    click(&mut h, "Put in a fresh chip");
    step_until(&mut h, "board 1 to pass", |a| {
        result_of(a, 1).is_some_and(|(_, _, removing)| removing)
    });
    assert_eq!(result_of(h.state(), 1).unwrap().0, BoardResult::Pass);
    h.get_by_label("Board 1: PASS");
    {
        let fixture = h.state().production.fixture().unwrap().clone();
        let socket = lock(&fixture);
        let chip = socket.chip().unwrap();
        assert!(chip.flash()[0x7000..0x7010].iter().any(|b| *b != 0xFF));
        // The lock byte's two unused bits read as 1.
        assert_eq!(chip.fuse(FuseKind::Lock).map(|l| l & 0x3F), Some(0x2F));
    }
    // Left in the fixture, it is not flashed again.
    h.run_steps(5);
    std::thread::sleep(Duration::from_millis(600));
    h.run_steps(2);
    assert_eq!(h.state().production.tally().count, 1);
    click(&mut h, "Take the board out");
    step_until(&mut h, "waiting for board 2", |a| {
        status(a) == LineStatus::WaitingForBoard { board: 2 }
    });

    // Board 2: a failing chip; the line waits for Acknowledge, and taking the board out does
    // not re-arm it.
    click(&mut h, "Put in a failing chip");
    step_until(&mut h, "board 2 to fail", |a| result_of(a, 2).is_some());
    let (result, acknowledged, _) = result_of(h.state(), 2).unwrap();
    assert_eq!(result, BoardResult::Fail);
    assert!(!acknowledged);
    h.get_by_label("Board 2: FAIL");
    click(&mut h, "Take the board out");
    std::thread::sleep(Duration::from_millis(700));
    h.run_steps(3);
    assert_eq!(
        result_of(h.state(), 2).map(|(_, ack, _)| ack),
        Some(false),
        "the line went on without the operator"
    );
    click(&mut h, "Acknowledge");
    step_until(&mut h, "waiting for board 3", |a| {
        status(a) == LineStatus::WaitingForBoard { board: 3 }
    });

    // Board 3: another MCU fails without anything written.
    click(&mut h, "Put in a wrong MCU");
    step_until(&mut h, "board 3 to fail", |a| result_of(a, 3).is_some());
    assert_eq!(result_of(h.state(), 3).unwrap().0, BoardResult::Fail);
    {
        let fixture = h.state().production.fixture().unwrap().clone();
        let socket = lock(&fixture);
        assert!(socket.chip().unwrap().flash().iter().all(|b| *b == 0xFF));
    }
    let tally = h.state().production.tally();
    assert_eq!((tally.count, tally.pass, tally.fail), (3, 1, 2));
    h.get_by_label("Boards 3   PASS 1   FAIL 2");

    click(&mut h, "Stop line");
    step_until(&mut h, "the line to stop", |a| !a.production.is_running());
    let log = log_text(&h);
    assert!(log.contains("Board 1: PASS"), "{log}");
    assert!(log.contains("Board 2: FAIL"), "{log}");
    assert!(log.contains("Production line stopped"), "{log}");

    // One line per board in the run log, next to the profile.
    let records = read_jsonl(dir.path().join("line.log.jsonl")).unwrap();
    let results: Vec<_> = records.iter().map(|r| (r.board, r.result)).collect();
    assert_eq!(
        results,
        [
            (1, BoardResult::Pass),
            (2, BoardResult::Fail),
            (3, BoardResult::Fail)
        ]
    );
    assert!(records[1].failing_address.is_some(), "{:?}", records[1]);
    // Durations are the emulator's modeled time (what the real programmer would take), not
    // the moment the in-process emulator needs.
    assert!(records[0].duration_ms >= 1000, "{:?}", records[0]);
}

#[test]
fn a_profile_that_cannot_be_used_keeps_start_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"{ "programmer": "avrisp", "port": "emulated", "mcu": "atmega32u4", "image": "missing.hex" }"#,
    )
    .unwrap();
    let mut h = harness(promicro_settings());
    h.state_mut().open_production();
    h.state_mut().production.load_profile(&path);
    h.run_steps(3);
    assert!(is_disabled(&h, "Start line"));
    let blocker = h.state().production.start_blocker().unwrap_or_default();
    assert!(blocker.contains("missing.hex"), "{blocker}");
    assert!(
        h.query_all_by_label_contains("missing.hex")
            .next()
            .is_some()
    );
    // Without a line, the fixture buttons are not there.
    assert!(h.query_by_label("Put in a fresh chip").is_none());
    assert!(h.state_mut().production.put_in(&ScriptStep::Fresh).is_err());
}

#[test]
fn a_profile_named_on_the_command_line_opens_the_production_window() {
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_file(dir.path());
    let mut options = isp_toolbox::gui::AppOptions::for_tests(promicro_settings());
    options.open_files = vec![profile];
    let mut h = Harness::builder()
        .with_size([1280.0, 900.0])
        .build_ui_state(|ui, app: &mut App| app.ui(ui), App::new(options));
    h.run_steps(3);
    assert!(h.state().production.open);
    assert!(!is_disabled(&h, "Start line"));
    h.get_by_label("Test line");
}

#[test]
fn the_main_windows_setup_saved_as_a_profile_runs_on_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (hex, _) = bootloader_file(dir.path());
    let mut h = harness(promicro_settings());
    h.run_steps(2);
    let path = dir.path().join("m32u4-production.json");
    // Without a .hex there is nothing to flash: the log says so and nothing is written.
    h.state_mut().save_profile_from_selection(&path);
    assert!(!path.exists());
    assert!(
        log_text(&h).contains("open the production .hex first"),
        "{}",
        log_text(&h)
    );

    h.state_mut().load_hex(&hex);
    h.run_steps(2);
    let fuses = h.state().fuse_values().clone();
    h.state_mut().save_profile_from_selection(&path);
    h.run_steps(3);
    assert!(h.state().production.open);
    assert!(
        !is_disabled(&h, "Start line"),
        "{:?}",
        h.state().production.start_blocker()
    );

    // The file names the image relative to itself, so the folder can be shared.
    let profile = isp_toolbox::production::Profile::load(&path).unwrap();
    assert_eq!(profile.programmer, "avrisp");
    assert_eq!(profile.port, "emulated");
    assert_eq!(profile.mcu, "atmega32u4");
    assert_eq!(profile.image.as_deref(), Some(Path::new("bootloader.hex")));
    let saved = profile.fuses.expect("the editor's fuses");
    assert_eq!(saved.lfuse, fuses.get(&FuseKind::Low).copied());
    assert_eq!(saved.hfuse, fuses.get(&FuseKind::High).copied());

    // And it flashes a board.
    click(&mut h, "Start line");
    step_until(&mut h, "waiting for board 1", |a| {
        status(a) == LineStatus::WaitingForBoard { board: 1 }
    });
    click(&mut h, "Put in a fresh chip");
    step_until(&mut h, "board 1 to pass", |a| result_of(a, 1).is_some());
    assert_eq!(result_of(h.state(), 1).unwrap().0, BoardResult::Pass);
    click(&mut h, "Stop line");
    step_until(&mut h, "the line to stop", |a| !a.production.is_running());
}
