//! Tools → Prepare programmer board, in the window: choose the ISP firmware, practise on the
//! emulated Pro Micro or Teensy, and find the new programmer selected in the main window.
#![cfg(feature = "gui")]

mod gui_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use gui_common::*;
use isp_toolbox::catalog::UsbId;
use isp_toolbox::emulate::programmer_board::synthetic_application;
use isp_toolbox::gui::App;
use isp_toolbox::gui::settings::Settings;
use isp_toolbox::hex::{MemoryImage, write_hex};

/// The id QMK's ISP firmware enumerates as (Teensyduino USB Serial).
const TEENSYDUINO_SERIAL: UsbId = UsbId::new(0x16C0, 0x0483);

/// A stand-in ISP firmware of `len` bytes, written as a .hex file in `dir`.
fn isp_firmware_file(dir: &Path, len: usize) -> PathBuf {
    let mut image = MemoryImage::new();
    image
        .insert(0, &synthetic_application(TEENSYDUINO_SERIAL, 0x02, len))
        .unwrap();
    let path = dir.join("pro_micro_ISP_B6_10.hex");
    std::fs::write(&path, write_hex(&image)).unwrap();
    path
}

/// The main window in emulated mode with a USBtiny (PocketAVR) picked (the prepare run must replace it).
fn emulated_app() -> Harness<'static, App> {
    let mut h = harness(Settings {
        programmer: Some("pocketavr".into()),
        port: Some("emulated".into()),
        mcu: Some("atmega32u4".into()),
        ..Settings::default()
    });
    h.run_steps(2);
    assert_eq!(
        h.state().programmer().map(|p| p.id.as_str()),
        Some("pocketavr")
    );
    h
}

/// The same, with Tools → Prepare programmer board open.
fn with_prepare_open() -> Harness<'static, App> {
    let mut h = emulated_app();
    h.state_mut().open_prepare();
    h.run_steps(2);
    h
}

/// Steps the UI until the prepare run ends.
fn run_prepare_to_the_end(h: &mut Harness<'static, App>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while h.state().prepare.is_running() {
        assert!(Instant::now() < deadline, "the prepare run did not finish");
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_steps(3);
}

#[test]
fn prepare_a_pro_micro_and_find_it_selected() {
    let dir = tempfile::tempdir().unwrap();
    let file = isp_firmware_file(dir.path(), 0x2400);
    let mut h = emulated_app();

    click(&mut h, "Prepare board…");
    h.get_by_label("Prepare programmer board");
    assert!(h.state().prepare.open);
    // Without a file, Start is disabled and says why.
    assert!(is_disabled(&h, "Start"));
    assert!(h.state().prepare.start_blocker().is_some());

    h.state_mut().prepare.choose_file(&file);
    h.run_steps(2);
    assert!(
        !is_disabled(&h, "Start"),
        "{:?}",
        h.state().prepare.start_blocker()
    );
    assert!(
        h.query_all_by_label_contains("9216 bytes at")
            .next()
            .is_some(),
        "the window says what the file holds"
    );

    click(&mut h, "Start");
    assert!(h.state().prepare.is_running());
    // While the board is being prepared, the main window keeps its jobs off the ports.
    assert!(is_disabled(&h, "Detect"));
    run_prepare_to_the_end(&mut h);

    assert!(
        h.query_all_by_label_contains("Done.").next().is_some(),
        "log: {}",
        log_text(&h)
    );
    assert_eq!(
        h.state().programmer().map(|p| p.id.as_str()),
        Some("promicro-isp")
    );
    assert_eq!(h.state().port(), "emulated");
    let log = log_text(&h);
    assert!(log.contains("Selected promicro-isp on emulated"), "{log}");
    assert!(log.contains("9216 bytes written and verified"), "{log}");
}

#[test]
fn prepare_a_teensy_through_halfkay() {
    let dir = tempfile::tempdir().unwrap();
    let file = isp_firmware_file(dir.path(), 0x1800);
    let mut h = with_prepare_open();
    h.state_mut()
        .prepare
        .choose_board(isp_toolbox::bootload::Board::Teensy2);
    h.state_mut().prepare.choose_file(&file);
    h.run_steps(2);
    click(&mut h, "Start");
    run_prepare_to_the_end(&mut h);
    assert_eq!(
        h.state().programmer().map(|p| p.id.as_str()),
        Some("teensy2-isp")
    );
    assert!(
        log_text(&h).contains("6144 bytes written"),
        "{}",
        log_text(&h)
    );
}

#[test]
fn a_file_too_big_for_the_board_keeps_start_disabled() {
    let dir = tempfile::tempdir().unwrap();
    // 30 KB runs into Caterina's boot section at 0x7000.
    let file = isp_firmware_file(dir.path(), 30 * 1024);
    let mut h = with_prepare_open();
    h.state_mut().prepare.choose_file(&file);
    h.run_steps(2);
    assert!(is_disabled(&h, "Start"));
    let blocker = h.state().prepare.start_blocker().unwrap_or_default();
    assert!(blocker.contains("cannot be used"), "{blocker}");
    // Nothing changed in the main window.
    assert_eq!(
        h.state().programmer().map(|p| p.id.as_str()),
        Some("pocketavr")
    );
}

#[test]
fn a_missing_file_is_reported_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = with_prepare_open();
    h.state_mut()
        .prepare
        .choose_file(&dir.path().join("not-there.hex"));
    h.run_steps(2);
    assert!(is_disabled(&h, "Start"));
    assert!(
        h.query_all_by_label_contains("not-there.hex")
            .next()
            .is_some()
    );
}

#[test]
fn a_file_dropped_on_the_open_window_is_its_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let file = isp_firmware_file(dir.path(), 0x2400);
    let mut h = with_prepare_open();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(DroppedPath(file.clone())));
    h.run_steps(2);
    assert!(
        !is_disabled(&h, "Start"),
        "{:?}",
        h.state().prepare.start_blocker()
    );
    // The main window's bootloader slot did not take it.
    assert!(
        !log_text(&h).contains("pro_micro_ISP_B6_10.hex"),
        "{}",
        log_text(&h)
    );
}

/// A file dropped from the desktop, as the windowing integration hands it over.
#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}
