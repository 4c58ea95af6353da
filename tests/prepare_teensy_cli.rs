//! Debian's teensy_loader_cli 2.2 against the emulated HalfKay, through the libusb-0.1 shim
//! (`usbshim/`, LD_PRELOAD, `ISP_TOOLBOX_SHIM_DEVICE=halfkay`): it finds the Teensy, detaches
//! usbhid, writes the blocks (the first one erasing the old program), reboots it, and the
//! Teensy's flash holds the file below HalfKay. Our HalfKay client must send exactly the
//! reports teensy_loader_cli sends for the same file.
//! Fails where teensy_loader_cli is missing: run `.ci/run`.

mod prepare_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use isp_toolbox::Result;
use isp_toolbox::bootload::halfkay::{HalfKay, TEENSY2};
use isp_toolbox::bootload::host::Clock;
use isp_toolbox::emulate::chip::{ChipConfig, EmulatedChip};
use isp_toolbox::emulate::programmer_board::{synthetic_application, synthetic_bootloader};
use isp_toolbox::hex::{MemoryImage, write_hex};
use isp_toolbox::part::PartDb;
use isp_toolbox::transport::UsbLink;
use prepare_common::*;

/// Every variable the shim reads, cleared so the caller's environment cannot leak in.
const SHIM_VARIABLES: [&str; 7] = [
    "ISP_TOOLBOX_SHIM_DEVICE",
    "ISP_TOOLBOX_SHIM_PART",
    "ISP_TOOLBOX_SHIM_STATE",
    "ISP_TOOLBOX_SHIM_STATS",
    "ISP_TOOLBOX_SHIM_FAULT",
    "ISP_TOOLBOX_SHIM_REALTIME",
    "ISP_TOOLBOX_SHIM_DEBUG",
];

/// Builds the shim once and returns the path of the shared library.
fn shim_library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "-p",
                "isp-toolbox-usbshim",
                "--message-format=json-render-diagnostics",
            ])
            .output()
            .expect("cannot run cargo to build the shim");
        assert!(
            output.status.success(),
            "building the shim failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter(|m| m["target"]["name"] == "isp_toolbox_usbshim")
            .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(PathBuf::from))
            .find(|f| f.extension().is_some_and(|e| e == "so"))
            .expect("cargo built no libisp_toolbox_usbshim.so")
    })
}

fn require_teensy_loader_cli() {
    assert!(
        Command::new("teensy_loader_cli")
            .arg("--list-mcus")
            .output()
            .is_ok(),
        "teensy_loader_cli is not installed: run .ci/run (it installs Debian's teensy-loader-cli)"
    );
}

/// A Teensy 2.0 (its chip dumped in a state directory) running an old program.
struct Teensy {
    dir: tempfile::TempDir,
}

impl Teensy {
    fn new() -> Teensy {
        require_teensy_loader_cli();
        let dir = tempfile::tempdir().unwrap();
        let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
        let config =
            ChipConfig::default().with_flash_at(0, &synthetic_application(KEYBOARD, 0, 0x3000));
        let mut flash = config.flash.clone().unwrap();
        flash.resize(0x7E00, 0xFF);
        flash.extend(synthetic_bootloader(0x200));
        let chip = EmulatedChip::new(
            part,
            ChipConfig {
                flash: Some(flash),
                ..Default::default()
            },
        )
        .unwrap();
        chip.dump(dir.path().join("chip")).unwrap();
        Teensy { dir }
    }

    fn flash(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("chip/flash.bin")).unwrap()
    }

    /// `teensy_loader_cli --mcu=atmega32u4 -w -v file.hex` with the shim.
    fn load(&self, image: &MemoryImage, fault: Option<&str>) -> Output {
        let file = self.dir.path().join("isp.hex");
        std::fs::write(&file, write_hex(image)).unwrap();
        let mut command = Command::new("teensy_loader_cli");
        for name in SHIM_VARIABLES {
            command.env_remove(name);
        }
        command
            .env("LD_PRELOAD", shim_library())
            .env("ISP_TOOLBOX_SHIM_DEVICE", "halfkay")
            .env("ISP_TOOLBOX_SHIM_STATE", self.dir.path().join("chip"))
            .env("ISP_TOOLBOX_SHIM_DEBUG", "1")
            .args(["--mcu=atmega32u4", "-w", "-v"])
            .arg(&file);
        if let Some(fault) = fault {
            command.env("ISP_TOOLBOX_SHIM_FAULT", fault);
        }
        command.output().unwrap()
    }
}

/// The HID reports in the shim's trace, in order.
fn reports_in_trace(stderr: &str) -> Vec<Vec<u8>> {
    stderr
        .lines()
        .filter(|l| l.contains("control 21 09 0200 0000"))
        .filter_map(|l| l.split_once("sent: "))
        .map(|(_, hex)| {
            hex.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn teensy_loader_cli_loads_a_file_through_the_emulated_halfkay() {
    let teensy = Teensy::new();
    let image = isp_image(TEENSYDUINO_SERIAL, 0x1234);
    let output = teensy.load(&image, None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Found HalfKay Bootloader"), "{stdout}");
    assert!(stdout.contains("Booting"), "{stdout}");

    let flash = teensy.flash();
    assert_eq!(&flash[..0x1234], &image.page(0, 0x1234, 0xFF)[..]);
    assert!(
        flash[0x1234..0x7E00].iter().all(|&b| b == 0xFF),
        "the first block erased the old program"
    );
    assert_eq!(&flash[0x7E00..], &synthetic_bootloader(0x200)[..]);

    let reports = reports_in_trace(&stderr);
    assert_eq!(
        reports.len(),
        0x1234_usize.div_ceil(128) + 1,
        "blocks and the reboot"
    );
    assert_eq!(reports.last().unwrap()[..3], [0xFF, 0xFF, 0xFF]);
}

/// Records what our client sends, accepting everything.
struct Recorder {
    reports: Vec<Vec<u8>>,
}

impl UsbLink for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn control_in(
        &mut self,
        _: u8,
        _: u8,
        _: u16,
        _: u16,
        _: &mut [u8],
        _: Duration,
    ) -> Result<usize> {
        Ok(0)
    }
    fn control_out(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        data: &[u8],
        _: Duration,
    ) -> Result<usize> {
        assert_eq!((request_type, request, value, index), (0x21, 9, 0x0200, 0));
        self.reports.push(data.to_vec());
        Ok(data.len())
    }
}

struct NoTime;

impl Clock for NoTime {
    fn now(&self) -> Duration {
        Duration::ZERO
    }
    fn sleep(&mut self, _: Duration) {}
}

#[test]
fn our_client_sends_the_reports_teensy_loader_cli_sends() {
    let teensy = Teensy::new();
    // Gaps and a blank block in the middle: both skip them, both always send block 0.
    let mut image = MemoryImage::new();
    image.insert(0x100, &[0x12; 0x80]).unwrap();
    image.insert(0x400, &[0xFF; 0x80]).unwrap();
    image.insert(0x1000, &[0x34; 0x90]).unwrap();
    let output = teensy.load(&image, None);
    assert!(output.status.success());
    let theirs = reports_in_trace(&String::from_utf8_lossy(&output.stderr));

    let mut client = HalfKay::new(
        Recorder {
            reports: Vec::new(),
        },
        TEENSY2,
    );
    let mut clock = NoTime;
    for addr in (0..TEENSY2.code_size).step_by(128) {
        if addr == 0 || !image.page_is_blank(addr, 128) {
            client
                .write_block(&mut clock, addr, &image.page(addr, 128, 0xFF))
                .unwrap();
        }
    }
    client.reboot(&mut clock).unwrap();
    let ours = &client_reports(client);
    assert_eq!(ours, &theirs);
    assert_eq!(
        ours.iter().map(|r| [r[0], r[1]]).collect::<Vec<_>>(),
        [
            [0x00, 0x00],
            [0x00, 0x01],
            [0x00, 0x10],
            [0x80, 0x10],
            [0xFF, 0xFF]
        ]
    );
}

fn client_reports(client: HalfKay<Recorder>) -> Vec<Vec<u8>> {
    client.into_link().reports
}

#[test]
fn teensy_loader_cli_reports_an_unplugged_teensy() {
    let teensy = Teensy::new();
    let output = teensy.load(&isp_image(TEENSYDUINO_SERIAL, 0x1000), Some("hangup=4"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("error writing to Teensy"), "{stderr}");
    // Four blocks made it; HalfKay itself is untouched.
    let flash = teensy.flash();
    assert_eq!(&flash[0x7E00..], &synthetic_bootloader(0x200)[..]);
    assert!(flash[0x200..0x7E00].iter().all(|&b| b == 0xFF));
}
