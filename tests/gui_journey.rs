//! The whole journey in the window, on the emulated ArduinoISP programmer and demo board:
//! pick, load, Flash bootloader, confirm the high-risk dialog, watch it verify.
#![cfg(feature = "gui")]

mod gui_common;

use eframe::egui;
use egui_kittest::kittest::Queryable;
use gui_common::*;
use isp_toolbox::emulate::socket::lock;
use isp_toolbox::job::safety::FuseValues;
use isp_toolbox::part::FuseKind;

const FLASH_BUTTON: &str = "Flash bootloader";

#[test]
fn flash_bootloader_confirm_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (path, image) = bootloader_file(dir.path());
    let mut h = harness(promicro_settings());
    h.run_steps(2);
    // Without a file the big button is disabled and says why.
    assert!(is_disabled(&h, FLASH_BUTTON));
    h.state_mut().load_hex(&path);
    h.run_steps(2);
    assert!(!is_disabled(&h, FLASH_BUTTON));
    // The file panel says what the file is.
    assert!(
        h.query_all_by_label_contains("4096 bytes at 0x7000")
            .next()
            .is_some()
    );
    h.get_by_label("unknown build");

    click(&mut h, FLASH_BUTTON);
    run_until_idle(&mut h);
    // Caterina's preset moves the reset vector to the boot section: high risk, so the dialog
    // is up, and nothing has been written yet.
    assert!(h.state().dialog_open(), "log: {}", log_text(&h));
    h.get_by_label("High-risk fuse change");
    assert!(h.query_all_by_label_contains("BOOTRST").next().is_some());
    assert!(chip_flash(&h)[0x7000..].iter().all(|b| *b == 0xFF));
    assert_eq!(chip_fuse(&h, FuseKind::High), Some(0x99));

    click(&mut h, "Confirm and write");
    run_until_idle(&mut h);
    let verdict = h.state().verdict().cloned().expect("a verdict");
    assert!(verdict.ok, "{verdict:?}\n{}", log_text(&h));
    assert!(
        verdict.text.contains("Bootloader flashed and verified"),
        "{}",
        verdict.text
    );
    assert!(
        h.query_all_by_label_contains("Bootloader flashed and verified")
            .next()
            .is_some()
    );
    let flash = chip_flash(&h);
    for seg in image.segments() {
        let start = seg.start as usize;
        assert_eq!(&flash[start..start + seg.data.len()], &seg.data[..]);
    }
    assert_eq!(chip_fuse(&h, FuseKind::Low), Some(0xFF));
    assert_eq!(chip_fuse(&h, FuseKind::High), Some(0xD8));
    assert_eq!(chip_fuse(&h, FuseKind::Extended), Some(0xFB));
    let board = h.state().board().unwrap().clone();
    let stats = lock(&board).chip().unwrap().stats();
    assert_eq!(stats.busy_violations, 0);

    // Verify against the same file passes on the same board.
    click(&mut h, "Verify");
    run_until_idle(&mut h);
    assert!(h.state().verdict().unwrap().ok, "{}", log_text(&h));
    assert!(h.state().verdict().unwrap().text.contains("Verified"));
}

/// Loads the synthetic bootloader, clicks Flash bootloader and waits for the high-risk dialog
/// (the preset moves the reset vector), with nothing written yet.
fn at_the_fuse_dialog(
    dir: &std::path::Path,
) -> egui_kittest::Harness<'static, isp_toolbox::gui::App> {
    let (path, _) = bootloader_file(dir);
    let mut h = harness(promicro_settings());
    h.state_mut().load_hex(&path);
    h.run_steps(2);
    click(&mut h, FLASH_BUTTON);
    run_until_idle(&mut h);
    assert!(h.state().dialog_open(), "{}", log_text(&h));
    h
}

#[test]
fn cancelling_the_dialog_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = at_the_fuse_dialog(dir.path());
    let before = lock(h.state().board().unwrap()).chip().unwrap().stats();
    click(&mut h, "Cancel — write nothing");
    h.run_steps(3);
    assert!(!h.state().dialog_open());
    assert!(!h.state().is_busy());
    let after = lock(h.state().board().unwrap()).chip().unwrap().stats();
    assert_eq!(before, after, "no programming instruction reached the chip");
    assert!(chip_flash(&h).iter().all(|b| *b == 0xFF));
    assert_eq!(chip_fuse(&h, FuseKind::High), Some(0x99));
    assert!(!h.state().verdict().unwrap().ok);
    assert!(log_text(&h).contains("nothing was written"));
}

#[test]
fn a_critical_change_needs_the_mcu_name() {
    // An ATmega328P with RSTDISBL programmed (hfuse bit 7 = 0): RESET becomes a GPIO and ISP
    // is locked out. (SPIEN itself cannot be changed over ISP: the silicon ignores it.)
    let mut h = harness(isp_toolbox::gui::settings::Settings {
        mcu: Some("atmega328p".into()),
        bootloader: Some("usbasploader-atmega328p".into()),
        ..promicro_settings()
    });
    h.run_steps(2);
    let values: FuseValues = [(FuseKind::High, 0x59)].into_iter().collect();
    h.state_mut().set_fuse_values(values);
    h.run_steps(2);
    click(&mut h, "Write fuses");
    run_until_idle(&mut h);
    assert!(h.state().dialog_open(), "{}", log_text(&h));
    h.get_by_label_contains("CRITICAL fuse change");
    let confirm = "I understand, write these fuses";
    assert!(is_disabled(&h, confirm));
    click(&mut h, confirm);
    assert!(h.state().dialog_open(), "a disabled button does nothing");

    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "MCU name:")
        .type_text("ATmega32U4");
    h.run_steps(2);
    assert!(
        is_disabled(&h, confirm),
        "the wrong MCU name does not unlock"
    );
    assert_eq!(chip_fuse(&h, FuseKind::High), Some(0xD9));

    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "MCU name:")
        .focus();
    h.run_steps(1);
    for _ in 0.."ATmega32U4".len() {
        h.key_press(egui::Key::Backspace);
    }
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "MCU name:")
        .type_text("atmega328p");
    h.run_steps(2);
    assert!(!is_disabled(&h, confirm));
    click(&mut h, confirm);
    run_until_idle(&mut h);
    assert!(h.state().verdict().unwrap().ok, "{}", log_text(&h));
    assert_eq!(chip_fuse(&h, FuseKind::High), Some(0x59));
}

#[test]
fn a_normal_change_is_written_without_a_dialog() {
    let mut h = harness(promicro_settings());
    h.run_steps(2);
    // EESAVE only (hfuse bit 3): harmless.
    let values: FuseValues = [(FuseKind::High, 0x91)].into_iter().collect();
    h.state_mut().set_fuse_values(values);
    click(&mut h, "Write fuses");
    run_until_idle(&mut h);
    assert!(!h.state().dialog_open());
    assert!(h.state().verdict().unwrap().ok, "{}", log_text(&h));
    assert_eq!(chip_fuse(&h, FuseKind::High), Some(0x91));
}

#[test]
fn cancel_mid_flash_stops_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = at_the_fuse_dialog(dir.path());
    // Hold the board so the job cannot get past its first touch of the chip, then cancel:
    // deterministic on any machine.
    let board = h.state().board().unwrap().clone();
    {
        let _held = lock(&board);
        click(&mut h, "Confirm and write");
        assert!(h.state().is_busy());
        h.get_by_label("Cancel").click();
        h.run_steps(2);
    }
    run_until_idle(&mut h);
    let verdict = h.state().verdict().cloned().unwrap();
    assert!(!verdict.ok, "{verdict:?}");
    assert!(verdict.text.contains("Cancelled"), "{}", verdict.text);
}

#[test]
fn a_corrupt_hex_is_reported_and_flash_stays_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.hex");
    std::fs::write(
        &path,
        ":10000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00\n:1000100012\n",
    )
    .unwrap();
    let mut h = harness(promicro_settings());
    h.state_mut().load_hex(&path);
    h.run_steps(2);
    assert!(is_disabled(&h, FLASH_BUTTON));
    let log = log_text(&h);
    assert!(log.contains("Cannot use") && log.contains("line"), "{log}");
    assert!(
        h.state().board().is_none(),
        "nothing touched the (emulated) chip"
    );
}

#[test]
fn detect_reads_the_signature_and_fuses() {
    let mut h = harness(promicro_settings());
    click(&mut h, "Detect");
    run_until_idle(&mut h);
    let verdict = h.state().verdict().cloned().unwrap();
    assert!(verdict.ok, "{}", log_text(&h));
    assert!(
        verdict.text.contains("ATmega32U4") && verdict.text.contains("1E 95 87"),
        "{}",
        verdict.text
    );
    assert!(log_text(&h).contains("CKSEL"), "decoded fields are listed");
}
