//! `-c avr109`: the ordinary jobs through a keyboard's own Caterina bootloader (port
//! `emulated`), what a bootloader cannot do, and the `prepare` and `flash -c avr109` commands
//! of the CLI end to end.

mod prepare_common;

use std::process::Command;

use isp_toolbox::Error;
use isp_toolbox::emulate::chip::{ChipConfig, EmulatedChip};
use isp_toolbox::emulate::socket::{SharedSocket, Socket, lock};
use isp_toolbox::hex::{MemoryImage, write_hex};
use isp_toolbox::job::CancelToken;
use isp_toolbox::job::runner::{JobKind, JobOutcome, JobRequest, run};
use isp_toolbox::job::safety::Approval;
use isp_toolbox::part::{FuseKind, PartDb};
use isp_toolbox::programmer::open::ProgrammerSpec;
use prepare_common::*;

/// A keyboard's ATmega32U4 holding an old program and (in its boot section) Caterina.
fn keyboard() -> SharedSocket {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let mut flash = vec![0x5A; 0x2000];
    flash.resize(0x7000, 0xFF);
    flash.extend(isp_toolbox::emulate::programmer_board::synthetic_bootloader(0x1000));
    let config = ChipConfig {
        flash: Some(flash),
        ..Default::default()
    };
    Socket::with_chip(EmulatedChip::new(part, config).unwrap()).shared()
}

fn job(socket: &SharedSocket, kind: JobKind) -> isp_toolbox::Result<JobOutcome> {
    let request = JobRequest {
        programmer: ProgrammerSpec::new("avr109", "emulated"),
        part: "m32u4".into(),
        kind,
    };
    run(
        &request,
        &mut |_| {},
        CancelToken::new(),
        Some(socket.clone()),
    )
}

fn flash_of(socket: &SharedSocket) -> Vec<u8> {
    lock(socket).chip().unwrap().flash().to_vec()
}

#[test]
fn flash_through_caterina_writes_and_verifies_below_the_bootloader() {
    let socket = keyboard();
    let image = isp_image(KEYBOARD, 0x1500);
    let outcome = job(
        &socket,
        JobKind::FlashImage {
            image: image.clone(),
            erase: true,
            erased_before: false,
            verify: true,
        },
    )
    .unwrap();
    assert!(matches!(
        outcome,
        JobOutcome::Flashed { verified: true, .. }
    ));
    let flash = flash_of(&socket);
    assert_eq!(&flash[..0x1500], &image.page(0, 0x1500, 0xFF)[..]);
    assert!(
        flash[0x1500..0x7000].iter().all(|&b| b == 0xFF),
        "old program erased"
    );
    assert_eq!(
        &flash[0x7000..],
        &isp_toolbox::emulate::programmer_board::synthetic_bootloader(0x1000)[..]
    );
}

#[test]
fn an_image_reaching_the_bootloader_is_refused_before_anything_is_erased() {
    let socket = keyboard();
    let before = flash_of(&socket);
    let mut image = MemoryImage::new();
    image.insert(0x6F00, &[0u8; 0x200]).unwrap();
    let err = job(
        &socket,
        JobKind::FlashImage {
            image,
            erase: true,
            erased_before: false,
            verify: true,
        },
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("0x00000-0x06FFF") && text.contains("nothing was written"),
        "{text}"
    );
    assert_eq!(flash_of(&socket), before);
}

#[test]
fn a_bootloader_reads_fuses_but_cannot_write_them_and_keeps_eeprom_on_erase() {
    let socket = keyboard();
    match job(&socket, JobKind::ReadFuses).unwrap() {
        JobOutcome::Fuses { values } => {
            assert_eq!(values.get(&FuseKind::High), Some(&0x99));
        }
        other => panic!("{other:?}"),
    }
    let err = job(
        &socket,
        JobKind::WriteFuses {
            values: [(FuseKind::Low, 0xFE)].into(),
            approval: Approval {
                confirmed_token: None,
                accept_high: true,
                force_critical: true,
            },
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");

    let mut eeprom = MemoryImage::new();
    eeprom.insert(0x40, b"keymap").unwrap();
    job(
        &socket,
        JobKind::WriteEeprom {
            image: eeprom,
            verify: true,
        },
    )
    .unwrap();
    job(&socket, JobKind::Erase).unwrap();
    let chip_eeprom = lock(&socket).chip().unwrap().eeprom()[0x40..0x46].to_vec();
    assert_eq!(
        chip_eeprom, b"keymap",
        "Caterina's erase is the application only"
    );
    assert!(flash_of(&socket)[..0x7000].iter().all(|&b| b == 0xFF));
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_isp-toolbox-cli"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn cli_prepare_and_flash_avr109_on_emulated_boards() {
    let dir = tempfile::tempdir().unwrap();
    let isp = dir.path().join("isp.hex");
    std::fs::write(&isp, write_hex(&isp_image(TEENSYDUINO_SERIAL, 0x1800))).unwrap();
    let isp = isp.to_string_lossy().into_owned();

    for (board, programmer) in [("promicro", "promicro-isp"), ("teensy2", "teensy2-isp")] {
        let (code, stdout, stderr) = cli(&[
            "prepare", "--board", board, "-P", "emulated", "--json", &isp,
        ]);
        assert_eq!(code, 0, "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["programmer"], programmer);
        assert_eq!(report["programmer_port"]["usb"]["id"], "16C0:0483");
        assert_eq!(report["bytes_written"], 0x1800);
        assert!(stderr.contains(">>> ") || board == "promicro", "{stderr}");
    }

    let too_big = dir.path().join("big.hex");
    std::fs::write(&too_big, write_hex(&isp_image(TEENSYDUINO_SERIAL, 0x7400))).unwrap();
    let (code, _, stderr) = cli(&[
        "prepare",
        "--board",
        "promicro",
        "-P",
        "emulated",
        &too_big.to_string_lossy(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");

    let (code, stdout, stderr) = cli(&[
        "flash", "-c", "avr109", "-P", "emulated", "-p", "m32u4", &isp,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("48 page(s) written, verified"), "{stdout}");
}
