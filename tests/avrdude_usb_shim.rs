//! Debian's avrdude 7.1 against the emulated USB programmers, through the libusb-0.1 shim
//! (`usbshim/`, loaded with LD_PRELOAD): it finds the device, reads the signature, writes,
//! verifies and reads back flash, EEPROM and fuses, and the emulated chip's dump holds what it
//! wrote. A real client accepting the emulators is how we know they act like the devices.
//!
//! The shim is built once per run (`cargo build -p isp-toolbox-usbshim`). Fails where avrdude
//! is missing: run `.ci/run`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use isp_toolbox::emulate::stats::EmulatorStats;
use isp_toolbox::hex::{MemoryImage, write_hex};

/// The programmers whose emulators the shim presents, as avrdude names them.
const USBTINY: &str = "usbtiny";
const USBASP: &str = "usbasp";

/// The part avrdude is told about and the shim emulates.
const PART: &str = "m32u4";
const FLASH_SIZE: usize = 32 * 1024;
const EEPROM_SIZE: usize = 1024;

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

fn require_avrdude() {
    assert!(
        Command::new("avrdude").arg("-?").output().is_ok(),
        "avrdude is not installed: run .ci/run (it installs Debian's avrdude) before the tests"
    );
}

/// What one avrdude run said.
struct Run {
    ok: bool,
    /// stdout and stderr together (avrdude reports on stderr).
    text: String,
}

/// An emulated programmer with its chip, kept in a state directory between avrdude runs.
struct Bench {
    programmer: &'static str,
    /// The shim's device (`usbasp:old`...); the programmer's name unless set.
    device: String,
    part: &'static str,
    dir: tempfile::TempDir,
    extra_env: Vec<(&'static str, String)>,
}

impl Bench {
    fn new(programmer: &'static str) -> Bench {
        require_avrdude();
        Bench {
            programmer,
            device: programmer.to_string(),
            part: PART,
            dir: tempfile::tempdir().unwrap(),
            extra_env: Vec::new(),
        }
    }

    fn with_device(mut self, device: &str) -> Bench {
        self.device = device.to_string();
        self
    }

    fn with_part(mut self, part: &'static str) -> Bench {
        self.part = part;
        self
    }

    fn with_env(mut self, name: &'static str, value: &str) -> Bench {
        self.extra_env.push((name, value.to_string()));
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn state_dir(&self) -> PathBuf {
        self.path("board")
    }

    fn stats_file(&self) -> PathBuf {
        self.path("stats.json")
    }

    fn avrdude(&self, args: &[&str]) -> Run {
        let mut command = Command::new("avrdude");
        command
            .args(["-c", self.programmer, "-p", self.part])
            .args(args);
        for name in SHIM_VARIABLES {
            command.env_remove(name);
        }
        command
            .env("LD_PRELOAD", shim_library())
            .env("ISP_TOOLBOX_SHIM_DEVICE", &self.device)
            .env("ISP_TOOLBOX_SHIM_PART", self.part)
            .env("ISP_TOOLBOX_SHIM_STATE", self.state_dir())
            .env("ISP_TOOLBOX_SHIM_STATS", self.stats_file());
        for (name, value) in &self.extra_env {
            command.env(name, value);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().expect("cannot run avrdude");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
        assert!(
            status.code().is_some(),
            "avrdude {args:?} was killed by a signal ({status}):\n{text}"
        );
        Run {
            ok: status.success(),
            text,
        }
    }

    fn avrdude_ok(&self, args: &[&str]) -> Run {
        let run = self.avrdude(args);
        assert!(run.ok, "avrdude {args:?} failed:\n{}", run.text);
        run
    }

    /// The stats of the last run.
    fn stats(&self) -> EmulatorStats {
        let path = self.stats_file();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the shim wrote no stats to {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// The chip as the shim dumped it at exit.
    fn dumped(&self, name: &str) -> Vec<u8> {
        let path = self.state_dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("no dump at {}: {e}", path.display()))
    }

    fn dumped_fuse(&self, name: &str) -> u8 {
        let text = String::from_utf8(self.dumped("fuses.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let value = json[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        u8::from_str_radix(value.trim_start_matches("0x"), 16).unwrap()
    }
}

/// Deterministic, non-repeating test data.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

fn signature_is_read(programmer: &'static str) {
    let bench = Bench::new(programmer);
    let run = bench.avrdude_ok(&[]);
    assert!(
        run.text.contains("device signature = 0x1e9587"),
        "{}",
        run.text
    );
    let stats = bench.stats();
    assert!(stats.round_trips >= 5, "{stats:?}");
    assert!(
        stats.isp_instructions >= 4,
        "programming enable and three signature bytes: {stats:?}"
    );
    assert!(stats.modeled_seconds > 0.0, "{stats:?}");
    assert_eq!(stats.pages_written, 0, "{stats:?}");
    assert_eq!(bench.dumped("flash.bin").len(), FLASH_SIZE);
}

fn flash_is_written_verified_and_read_back(programmer: &'static str) {
    let bench = Bench::new(programmer);
    // An application at 0 and a bootloader-sized block at the top, with a gap between.
    let application = pattern(3000, 1);
    let bootloader = pattern(4096, 2);
    let mut image = MemoryImage::new();
    image.insert(0, &application).unwrap();
    image.insert(0x7000, &bootloader).unwrap();
    let hex = bench.path("image.hex");
    std::fs::write(&hex, write_hex(&image)).unwrap();
    let readback = bench.path("readback.bin");

    let run = bench.avrdude_ok(&[
        "-U",
        &format!("flash:w:{}:i", hex.display()),
        "-U",
        &format!("flash:r:{}:r", readback.display()),
    ]);
    assert!(run.text.contains("verified"), "{}", run.text);

    let mut expected = vec![0xFF; FLASH_SIZE];
    expected[..application.len()].copy_from_slice(&application);
    expected[0x7000..0x8000].copy_from_slice(&bootloader);
    let mut read = std::fs::read(&readback).unwrap();
    // avrdude leaves trailing 0xFF bytes out of raw reads.
    read.resize(FLASH_SIZE, 0xFF);
    assert!(
        read == expected,
        "avrdude read back other flash than it wrote"
    );
    assert!(
        bench.dumped("flash.bin") == expected,
        "the emulated chip holds other flash than avrdude wrote"
    );
    let stats = bench.stats();
    // 24 application pages and 32 bootloader pages of 128 bytes.
    assert!(stats.pages_written >= 56, "{stats:?}");
    assert!(stats.pages_read > 0, "{stats:?}");

    // A second run sees the saved chip: verifying the same image passes without writing.
    let verify = bench.avrdude_ok(&["-U", &format!("flash:v:{}:i", hex.display())]);
    assert!(verify.text.contains("verified"), "{}", verify.text);
    assert_eq!(bench.stats().pages_written, 0);
}

fn eeprom_is_written_and_read_back(programmer: &'static str) {
    let bench = Bench::new(programmer);
    // No 0xFF bytes: a 0xFF write cannot be data-polled (the byte reads 0xFF while busy, facts
    // §1.6), so the USBtiny firmware moves on at once and the next byte meets a busy chip.
    // That is a firmware/chip-timing matter, not what this test is about.
    let data: Vec<u8> = pattern(200, 3).into_iter().map(|b| b.min(0xFE)).collect();
    let input = bench.path("eeprom.bin");
    std::fs::write(&input, &data).unwrap();
    let readback = bench.path("eeprom-read.bin");
    bench.avrdude_ok(&[
        "-U",
        &format!("eeprom:w:{}:r", input.display()),
        "-U",
        &format!("eeprom:r:{}:r", readback.display()),
    ]);
    let read = std::fs::read(&readback).unwrap();
    assert!(read.len() >= data.len(), "read {} bytes", read.len());
    assert_eq!(&read[..data.len()], &data[..]);
    let dumped = bench.dumped("eeprom.bin");
    assert_eq!(dumped.len(), EEPROM_SIZE);
    assert_eq!(&dumped[..data.len()], &data[..]);
    assert!(dumped[data.len()..].iter().all(|&b| b == 0xFF));
}

fn fuses_are_written_and_read_back(programmer: &'static str) {
    let bench = Bench::new(programmer);
    // Still an external crystal (low), 2 KB boot section with BOOTRST (high), BOD 2.6 V (ext).
    bench.avrdude_ok(&[
        "-U",
        "lfuse:w:0xde:m",
        "-U",
        "hfuse:w:0xd8:m",
        "-U",
        "efuse:w:0xcb:m",
    ]);
    assert_eq!(bench.dumped_fuse("lfuse"), 0xDE);
    assert_eq!(bench.dumped_fuse("hfuse"), 0xD8);
    // The ATmega32U4 implements the low four bits of the extended fuse.
    assert_eq!(bench.dumped_fuse("efuse") & 0x0F, 0x0B);

    let files = ["lfuse", "hfuse", "efuse"].map(|f| bench.path(&format!("{f}.txt")));
    let args: Vec<String> = ["lfuse", "hfuse", "efuse"]
        .iter()
        .zip(&files)
        .flat_map(|(fuse, file)| ["-U".to_string(), format!("{fuse}:r:{}:h", file.display())])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bench.avrdude_ok(&args);
    let read = files.map(|f| {
        std::fs::read_to_string(f)
            .unwrap()
            .trim()
            .to_ascii_lowercase()
    });
    assert_eq!(read[0], "0xde");
    assert_eq!(read[1], "0xd8");
    let efuse = u8::from_str_radix(read[2].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(efuse & 0x0F, 0x0B);
}

fn a_device_that_is_unplugged_fails_cleanly(programmer: &'static str) {
    let bench = Bench::new(programmer).with_env("ISP_TOOLBOX_SHIM_FAULT", "hangup=6");
    let image = bench.path("image.bin");
    std::fs::write(&image, pattern(1024, 4)).unwrap();
    let run = bench.avrdude(&["-U", &format!("flash:w:{}:r", image.display())]);
    assert!(
        !run.ok,
        "avrdude succeeded on an unplugged device:\n{}",
        run.text
    );
    // The stats still come out, counting what reached the firmware.
    assert_eq!(bench.stats().round_trips, 6);
}

fn a_lost_transfer_is_retried(programmer: &'static str, retried: &str) {
    // Transfer 3 is the first signature read: it times out and avrdude tries again.
    let bench = Bench::new(programmer).with_env("ISP_TOOLBOX_SHIM_FAULT", "drop=3");
    let run = bench.avrdude_ok(&[]);
    assert!(run.text.contains(retried), "{}", run.text);
    assert!(
        run.text.contains("device signature = 0x1e9587"),
        "{}",
        run.text
    );
}

fn an_empty_socket_is_reported_by_avrdude(programmer: &'static str) {
    let bench = Bench::new(programmer).with_env("ISP_TOOLBOX_SHIM_PART", "none");
    let run = bench.avrdude(&[]);
    assert!(
        !run.ok,
        "avrdude found a chip in an empty socket:\n{}",
        run.text
    );
    assert!(bench.stats().round_trips > 0);
    assert!(
        !bench.state_dir().join("flash.bin").exists(),
        "no chip, no dump"
    );
}

fn a_bad_setting_is_explained(programmer: &'static str) {
    let bench = Bench::new(programmer).with_env("ISP_TOOLBOX_SHIM_PART", "m9999");
    let run = bench.avrdude(&[]);
    assert!(!run.ok);
    assert!(
        run.text
            .contains("isp-toolbox-usbshim: ISP_TOOLBOX_SHIM_PART: unknown MCU 'm9999'"),
        "{}",
        run.text
    );
    assert!(!bench.stats_file().exists());
}

#[test]
fn usbtiny_signature() {
    signature_is_read(USBTINY);
}

#[test]
fn usbtiny_flash_write_verify_read() {
    flash_is_written_verified_and_read_back(USBTINY);
}

#[test]
fn usbtiny_eeprom_write_read() {
    eeprom_is_written_and_read_back(USBTINY);
}

#[test]
fn usbtiny_fuses_write_read() {
    fuses_are_written_and_read_back(USBTINY);
}

#[test]
fn usbtiny_unplugged_mid_write() {
    a_device_that_is_unplugged_fails_cleanly(USBTINY);
}

#[test]
fn usbtiny_lost_transfer_is_retried() {
    a_lost_transfer_is_retried(USBTINY, "1 retries during SPI command");
}

#[test]
fn usbtiny_empty_socket() {
    an_empty_socket_is_reported_by_avrdude(USBTINY);
}

#[test]
fn usbtiny_bad_setting() {
    a_bad_setting_is_explained(USBTINY);
}

/// avrdude's USBtiny code matches `-P usb:BUS:DEVICE` against `bus->dirname` and
/// `dev->filename`: the shim's bus 001 and device 001.
#[test]
fn usbtiny_port_names_bus_and_device() {
    let bench = Bench::new(USBTINY);
    let found = bench.avrdude_ok(&["-P", "usb:001:001", "-v"]);
    assert!(
        found.text.contains("found USBtinyISP, bus:device: 001:001"),
        "{}",
        found.text
    );
    assert!(found.text.contains("device signature = 0x1e9587"));
    let other = bench.avrdude(&["-P", "usb:001:002"]);
    assert!(!other.ok, "device 002 does not exist:\n{}", other.text);
    assert!(
        other.text.contains("cannot find USBtiny device"),
        "{}",
        other.text
    );
}

#[test]
fn usbasp_signature() {
    signature_is_read(USBASP);
}

#[test]
fn usbasp_flash_write_verify_read() {
    flash_is_written_verified_and_read_back(USBASP);
}

#[test]
fn usbasp_eeprom_write_read() {
    eeprom_is_written_and_read_back(USBASP);
}

#[test]
fn usbasp_fuses_write_read() {
    fuses_are_written_and_read_back(USBASP);
}

#[test]
fn usbasp_unplugged_mid_write() {
    a_device_that_is_unplugged_fails_cleanly(USBASP);
}

#[test]
fn usbasp_empty_socket() {
    an_empty_socket_is_reported_by_avrdude(USBASP);
}

/// `-B` picks an SCK code; avrdude reports the frequency it chose and the emulated chip saw
/// that clock (at most).
#[test]
fn usbasp_sck_is_set_with_dash_b() {
    let bench = Bench::new(USBASP);
    // 10 µs: 100 kHz, so the 93.75 kHz code.
    let run = bench.avrdude_ok(&["-B", "10", "-v"]);
    assert!(run.text.contains("93750 Hz"), "{}", run.text);
    assert!(
        run.text.contains("device signature = 0x1e9587"),
        "{}",
        run.text
    );
    // Too slow a clock for a whole image is not needed: a signature at 1 kHz proves the
    // software SPI codes work.
    let slow = bench.avrdude_ok(&["-B", "1000", "-v"]);
    assert!(slow.text.contains("1000 Hz"), "{}", slow.text);
    assert!(
        slow.text.contains("device signature = 0x1e9587"),
        "{}",
        slow.text
    );
}

/// The 2007 firmware has no SETISPSCK: avrdude warns and carries on at the fixed clock.
#[test]
fn usbasp_old_firmware_warns_but_works() {
    let bench = Bench::new(USBASP).with_device("usbasp:old");
    let run = bench.avrdude_ok(&["-B", "10"]);
    assert!(run.text.contains("cannot set sck period"), "{}", run.text);
    assert!(
        run.text.contains("device signature = 0x1e9587"),
        "{}",
        run.text
    );
    let image = bench.path("image.bin");
    let data = pattern(2048, 7);
    std::fs::write(&image, &data).unwrap();
    let write = bench.avrdude_ok(&["-U", &format!("flash:w:{}:r", image.display())]);
    assert!(write.text.contains("verified"), "{}", write.text);
    assert_eq!(&bench.dumped("flash.bin")[..data.len()], &data[..]);
}

/// Another part: an ATmega328P (Arduino Uno class), flash and fuses.
#[test]
fn usbasp_writes_an_atmega328p() {
    let bench = Bench::new(USBASP).with_part("m328p");
    let run = bench.avrdude_ok(&[]);
    assert!(
        run.text.contains("device signature = 0x1e950f"),
        "{}",
        run.text
    );
    let image = bench.path("image.bin");
    let data = pattern(5000, 8);
    std::fs::write(&image, &data).unwrap();
    let write = bench.avrdude_ok(&[
        "-U",
        &format!("flash:w:{}:r", image.display()),
        "-U",
        "hfuse:w:0xde:m",
    ]);
    assert!(write.text.contains("verified"), "{}", write.text);
    assert_eq!(&bench.dumped("flash.bin")[..data.len()], &data[..]);
    assert_eq!(bench.dumped_fuse("hfuse"), 0xDE);
}

/// The modeled seconds of one avrdude run on the emulated USBasp.
fn usbasp_seconds(device: &str, part: &'static str, args: &[&str]) -> f64 {
    let bench = Bench::new(USBASP).with_device(device).with_part(part);
    bench.avrdude_ok(args);
    bench.stats().modeled_seconds
}

/// Calibration against the USBasp datapoints (docs/timing/usbasp.md). U2 (avrdude 7.0, the
/// old firmware at 375 kHz, ATmega32U4, a sparse QMK production image: write 8.60 s, read
/// 7.41 s) gives no page count, but the model's cost per page written and per page read must
/// turn both times into the same number of pages, at most the 256 the chip has. U3 (avrdude
/// 6.x at 187.5 kHz, ATmega328P, sparse: 9.33 s / 4.72 s) is printed for the record.
#[test]
fn usbasp_model_against_the_datapoints() {
    let full = pattern(32 * 1024, 11);
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("full.bin");
    std::fs::write(&image, &full).unwrap();
    let write_arg = format!("flash:w:{}:r", image.display());
    let read_arg = format!("flash:r:{}:r", dir.path().join("back.bin").display());
    let pages = 256.0;
    let mut lines = Vec::new();
    let mut implied = Vec::new();
    for (name, device, part, bitclock, write_s, read_s) in [
        ("U2", "usbasp:old", "m32u4", None, 8.60, 7.41),
        ("U3", "usbasp", "m328p", Some("5.33"), 9.33, 4.72),
    ] {
        let mut write_args = vec!["-U", write_arg.as_str(), "-V"];
        let mut read_args = vec!["-U", read_arg.as_str()];
        if let Some(b) = bitclock {
            write_args.extend(["-B", b]);
            read_args.extend(["-B", b]);
        }
        let per_page_write = usbasp_seconds(device, part, &write_args) / pages;
        let per_page_read = usbasp_seconds(device, part, &read_args) / pages;
        let (n_write, n_read) = (write_s / per_page_write, read_s / per_page_read);
        lines.push(format!(
            "{name}: model {:.1} ms/page written, {:.1} ms/page read; measured times imply {n_write:.0} pages written, {n_read:.0} read",
            per_page_write * 1e3,
            per_page_read * 1e3
        ));
        implied.push((n_write, n_read));
    }
    println!("{}", lines.join("\n"));
    let (n_write, n_read) = implied[0];
    assert!(n_write <= pages && n_read <= pages, "{lines:?}");
    assert!(
        (n_write - n_read).abs() / n_write < 0.10,
        "U2's write and read imply different page counts: {lines:?}"
    );
}
