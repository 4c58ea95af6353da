//! The doctor on this very machine, through the library and the CLI. Where the machine has no
//! USB subsystem (containers, CI) the report must say so, not panic.

use std::path::Path;
use std::process::Command;

use isp_toolbox::doctor::{self, Check, Platform, Status};

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isp-toolbox-cli"))
}

#[test]
fn the_live_report_covers_the_basics_and_explains_a_missing_usbfs() {
    let report = doctor::run();
    assert_eq!(report.platform, Platform::current());
    for check in [
        Check::System,
        Check::UsbSubsystem,
        Check::Programmers,
        Check::SerialPorts,
    ] {
        assert_eq!(report.of(check).count(), 1, "{check:?} in\n{report}");
    }
    let usb = report.of(Check::UsbSubsystem).next().unwrap();
    if cfg!(target_os = "linux") && !Path::new("/dev/bus/usb").exists() {
        assert_eq!(usb.status, Status::Error, "{report}");
        assert_eq!(usb.title, "No USB subsystem: /dev/bus/usb does not exist");
        assert!(usb.detail.contains("libusb"), "{}", usb.detail);
        assert!(!usb.advice.is_empty());
    }
    if cfg!(target_os = "linux") {
        for check in [Check::UdevRules, Check::ModemManager] {
            assert_eq!(report.of(check).count(), 1, "{check:?} in\n{report}");
        }
    }
    for finding in &report.findings {
        assert!(!finding.title.is_empty());
        assert!(
            finding.status == Status::Ok
                || !finding.advice.is_empty()
                || finding.check == Check::SerialPorts,
            "a problem without advice: {finding:?}"
        );
    }
}

#[test]
fn cli_json_matches_the_exit_code() {
    let out = cli().args(["doctor", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    assert!(findings.len() >= 4, "{json}");
    for finding in findings {
        for key in ["check", "status", "title", "detail", "advice"] {
            assert!(finding.get(key).is_some(), "{key} missing in {finding}");
        }
    }
    let has_error = findings.iter().any(|f| f["status"] == "error");
    assert_eq!(
        out.status.code(),
        Some(if has_error { 1 } else { 0 }),
        "{json}"
    );
    if cfg!(target_os = "linux") && !Path::new("/dev/bus/usb").exists() {
        assert!(has_error);
        assert!(
            findings
                .iter()
                .any(|f| f["check"] == "usb-subsystem" && f["status"] == "error")
        );
    }
}

#[test]
fn cli_text_report_ends_with_the_tally() {
    let out = cli().arg("doctor").env("NO_COLOR", "1").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("[  ok ] "), "{text}");
    assert!(!text.contains('\x1b'), "colour without a terminal: {text}");
    let last = text.lines().last().unwrap();
    assert!(last.ends_with("error(s)"), "{last}");
    assert!(last.contains(" ok, "), "{last}");
}

#[test]
fn cli_prints_the_shipped_udev_rules() {
    let out = cli().args(["doctor", "--udev-rules"]).output().unwrap();
    assert!(out.status.success());
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/linux/60-isp-toolbox.rules"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), shipped);
    let both = cli()
        .args(["doctor", "--udev-rules", "--json"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}
