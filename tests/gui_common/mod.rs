//! Shared set-up for the GUI tests: an app on the emulated programmer, a synthetic bootloader
//! image, and a way to run the background worker to completion.

#![allow(dead_code)] // each test binary uses a different part of this

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use isp_toolbox::emulate::socket::lock;
use isp_toolbox::gui::settings::Settings;
use isp_toolbox::gui::{App, AppOptions};
use isp_toolbox::hex::{MemoryImage, write_hex};
use isp_toolbox::part::FuseKind;

/// The Pro Micro journey's selections: ArduinoISP programmer on the demo board, ATmega32U4,
/// Caterina for the 5 V Pro Micro.
pub fn promicro_settings() -> Settings {
    Settings {
        programmer: Some("promicro-isp".into()),
        port: Some("emulated".into()),
        mcu: Some("atmega32u4".into()),
        bootloader: Some("caterina-promicro-5v".into()),
        ..Settings::default()
    }
}

/// A window-sized harness around an app built from `settings`.
pub fn harness(settings: Settings) -> Harness<'static, App> {
    let app = App::new(AppOptions::for_tests(settings));
    Harness::builder()
        .with_size([1280.0, 900.0])
        .with_max_steps(20)
        .build_ui_state(|ui, app: &mut App| app.ui(ui), app)
}

/// A 4 KB "bootloader" at the top of the ATmega32U4 (0x7000..0x8000), not all 0xFF, written
/// as a .hex file in `dir`.
pub fn bootloader_file(dir: &Path) -> (PathBuf, MemoryImage) {
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut image = MemoryImage::new();
    image.insert(0x7000, &data).unwrap();
    let path = dir.join("bootloader.hex");
    std::fs::write(&path, write_hex(&image)).unwrap();
    (path, image)
}

/// Steps the UI until no job runs (the worker finishes in well under a second on the
/// emulator; the bound is generous for a loaded machine).
pub fn run_until_idle(harness: &mut Harness<'static, App>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        if !harness.state().is_busy() {
            harness.run_steps(2);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish: {:?}",
            log_text(harness)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The log as text.
pub fn log_text(harness: &Harness<'static, App>) -> String {
    harness.state().log().to_text()
}

/// The emulated chip's flash, fuses.
pub fn chip_flash(harness: &Harness<'static, App>) -> Vec<u8> {
    let board = harness
        .state()
        .board()
        .expect("the emulated board exists after a job");
    lock(board)
        .chip()
        .expect("a chip is seated")
        .flash()
        .to_vec()
}

/// One fuse byte of the emulated chip.
pub fn chip_fuse(harness: &Harness<'static, App>, kind: FuseKind) -> Option<u8> {
    let board = harness.state().board()?;
    lock(board).chip()?.fuse(kind)
}

/// Clicks the button with this exact label.
pub fn click(harness: &mut Harness<'static, App>, label: &str) {
    harness.get_by_label(label).click();
    harness.run_steps(2);
}

/// Whether the widget with this label is disabled.
pub fn is_disabled(harness: &Harness<'static, App>, label: &str) -> bool {
    harness.get_by_label(label).accesskit_node().is_disabled()
}
