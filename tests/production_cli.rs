//! `isp-toolbox-cli production`: the headless line on the emulated ArduinoISP, its output,
//! acknowledgements from stdin, exit codes, and clear errors for bad profiles and ports.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use isp_toolbox::hex::{MemoryImage, write_image_file};
use isp_toolbox::production::BoardResult;
use isp_toolbox::production::log::read_jsonl;

fn write_line(dir: &Path, port: &str) -> std::path::PathBuf {
    let mut firmware = MemoryImage::new();
    let fw: Vec<u8> = (0..300u32).map(|i| (i * 5 + 1) as u8 | 1).collect();
    firmware.insert(0, &fw).unwrap();
    write_image_file(dir.join("fw.hex"), &firmware).unwrap();
    let mut bootloader = MemoryImage::new();
    bootloader
        .insert(0x7000, &[0x0C, 0x94, 0x34, 0x12])
        .unwrap();
    write_image_file(dir.join("bl.hex"), &bootloader).unwrap();
    let profile = format!(
        r#"{{"name":"cli line","programmer":"avrisp","port":"{port}","mcu":"atmega32u4",
            "firmware":"fw.hex","bootloader":"bl.hex",
            "fuses":{{"bootloader":"caterina-promicro-5v"}},"log":"log.jsonl"}}"#
    );
    let path = dir.join("line.json");
    std::fs::write(&path, profile).unwrap();
    path
}

fn cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_isp-toolbox-cli"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The line may stop before reading everything; a closed pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_scripted_run_reports_each_board_and_fails_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_line(dir.path(), "emulated");
    let p = profile.to_str().unwrap();
    let (code, out, err) = cli(
        &[
            "production",
            p,
            "--emulated-script",
            "fresh,none,fresh-m16u4,fail,removed-mid-write,good",
        ],
        "\n\n\n",
    );
    assert_eq!(code, 1, "a board failed\n{out}\n{err}");
    assert_eq!(out.matches("==== PASS").count(), 2, "{out}");
    assert_eq!(out.matches("==== FAIL").count(), 3, "{out}");
    assert_eq!(out.matches('\x07').count(), 5, "a bell per board");
    assert_eq!(out.matches("press Enter to acknowledge").count(), 3);
    assert!(out.contains("first failing address: 0x"), "{out}");
    assert!(out.contains("tally: 5 board(s), 2 PASS, 3 FAIL"), "{out}");
    assert!(out.contains("done: 5 board(s), 2 PASS, 3 FAIL"), "{out}");
    let log = read_jsonl(dir.path().join("log.jsonl")).unwrap();
    assert_eq!(log.len(), 5);
    assert_eq!(log[4].result, BoardResult::Pass);
}

#[test]
fn no_acknowledgement_stops_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_line(dir.path(), "emulated");
    let (code, out, _) = cli(
        &[
            "production",
            profile.to_str().unwrap(),
            "--quiet",
            "--emulated-script",
            "fail,good,good",
        ],
        "",
    );
    assert_eq!(code, 1);
    assert!(!out.contains('\x07'), "--quiet: no bell");
    assert!(out.contains("stopping the line"), "{out}");
    assert!(
        !out.contains("==== PASS"),
        "went on without an acknowledgement: {out}"
    );
    assert_eq!(read_jsonl(dir.path().join("log.jsonl")).unwrap().len(), 1);
}

#[test]
fn all_good_boards_exit_zero_and_boards_limits_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_line(dir.path(), "/dev/ttyACM0");
    let (code, out, err) = cli(
        &[
            "production",
            profile.to_str().unwrap(),
            "-P",
            "emulated",
            "--boards",
            "2",
            "--emulated-script",
            "good,fresh,good",
        ],
        "",
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("done: 2 board(s), 2 PASS, 0 FAIL"), "{out}");
}

#[test]
fn bad_profiles_and_ports_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let (code, _, err) = cli(&["production", missing.to_str().unwrap()], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read the production profile"), "{err}");

    let garbled = dir.path().join("garbled.json");
    std::fs::write(&garbled, "{ not json").unwrap();
    let (code, _, err) = cli(&["production", garbled.to_str().unwrap()], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a valid production profile"), "{err}");

    let profile = write_line(dir.path(), "/dev/isp-toolbox-no-such-port");
    let (code, out, err) = cli(&["production", profile.to_str().unwrap()], "");
    assert_ne!(code, 0);
    assert!(err.contains("isp-toolbox-no-such-port"), "{out}\n{err}");

    std::fs::remove_file(dir.path().join("fw.hex")).unwrap();
    let (code, _, err) = cli(&["production", profile.to_str().unwrap()], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fw.hex"), "{err}");
}

#[test]
fn init_writes_a_template_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.json");
    let (code, out, err) = cli(&["production", path.to_str().unwrap(), "--init"], "");
    assert_eq!(code, 0, "{out}{err}");
    let profile = isp_toolbox::production::Profile::load(&path).unwrap();
    assert_eq!(profile.mcu, "atmega32u4");
    let (code, _, err) = cli(&["production", path.to_str().unwrap(), "--init"], "");
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
}
