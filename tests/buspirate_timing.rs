//! The emulated Bus Pirate's modeled time against real avrdude runs on Bus Pirate v3 hardware
//! (/work/shared/reference/timing-datapoints.md, rows B2, B4, B5; docs/timing/buspirate.md):
//! avrdude 7.1 runs the same job on the emulator over a PTY, and the modeled rate must land
//! within ±25% of the real one. Also: our driver against avrdude on the same jobs.
//!
//! The ATmega1284P of B2/B4 is not in our part list; the AT90USB1286 has the same 256-byte
//! pages and 128 KiB (and the same 64 K-word bulk-read limit), so it stands in for it.

mod buspirate_common;

use std::path::PathBuf;
use std::process::Command;

use buspirate_common::*;
use isp_toolbox::Memory;
use isp_toolbox::emulate::buspirate::{
    BusPirate as EmulatedBusPirate, BusPirateConfig, FirmwareVersion,
};
use isp_toolbox::emulate::serial::{EmulatorHandle, ServeOptions, spawn_on_pty};
use isp_toolbox::emulate::socket::SharedSocket;
use isp_toolbox::hex::{MemoryImage, write_image_file};
use isp_toolbox::part::Part;
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::buspirate::{BusPirateOptions, emulated};

struct Bench {
    dir: tempfile::TempDir,
    link: PathBuf,
    socket: SharedSocket,
    _handle: EmulatorHandle,
    part: &'static Part,
}

impl Bench {
    fn new(part: &'static Part, firmware: FirmwareVersion) -> Bench {
        assert!(
            Command::new("avrdude").arg("-?").output().is_ok(),
            "avrdude is not installed: run .ci/run (it installs Debian's avrdude) before the tests"
        );
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyBP");
        let mut pty = isp_toolbox::transport::Pty::open().unwrap();
        pty.symlink_at(&link).unwrap();
        let socket = socket_with(part);
        let config = BusPirateConfig {
            firmware,
            ..Default::default()
        };
        let handle = spawn_on_pty(
            Box::new(EmulatedBusPirate::new(config)),
            pty,
            socket.clone(),
            ServeOptions::default(),
        );
        Bench {
            dir,
            link,
            socket,
            _handle: handle,
            part,
        }
    }

    /// Runs avrdude; returns the modeled seconds it took.
    fn avrdude(&self, args: &[&str]) -> f64 {
        let start = now_s(&self.socket);
        let out = Command::new("avrdude")
            .args(["-c", "buspirate", "-p", &self.part.avrdude_id, "-P"])
            .arg(&self.link)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "avrdude {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        now_s(&self.socket) - start
    }

    /// Modeled seconds of `args` beyond a bare connect, signature and exit.
    fn job_time(&self, args: &[&str]) -> f64 {
        let baseline = self.avrdude(&[]);
        self.avrdude(args) - baseline
    }

    fn hex(&self, name: &str, data: &[u8]) -> String {
        let mut image = MemoryImage::new();
        image.insert(0, data).unwrap();
        let path = self.dir.path().join(name);
        write_image_file(&path, &image).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn out(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// One datapoint: a real rate and the modeled one.
struct Row {
    id: &'static str,
    what: &'static str,
    real: f64,
    modeled: f64,
}

#[test]
fn avrdude_on_the_emulator_lands_within_25_percent_of_real_bus_pirate_runs() {
    let mut rows = Vec::new();

    // B2 write: paged write (write-then-read + Write Page + 4.5 ms), 256-byte pages.
    let usb1286 = part("at90usb1286");
    let bench = Bench::new(usb1286, FirmwareVersion::V6_3);
    let data = pattern(32 * 1024, 1);
    let hex = bench.hex("b2.hex", &data);
    let t = bench.job_time(&["-D", "-V", "-U", &format!("flash:w:{hex}:i")]);
    rows.push(Row {
        id: "B2",
        what: "paged write, 256-byte pages (usb1286 for m1284p)",
        real: 593.0,
        modeled: data.len() as f64 / t,
    });

    // B2 read: no AVR extended commands, one instruction (two turnarounds) per byte.
    let m32u4 = part("m32u4");
    let bench = Bench::new(m32u4, FirmwareVersion::V6_1);
    let t = bench.job_time(&["-U", &format!("eeprom:r:{}:i", bench.out("e.hex"))]);
    rows.push(Row {
        id: "B2",
        what: "byte-at-a-time read (firmware without AVR extended commands)",
        real: 31.0,
        modeled: 1024.0 / t,
    });

    // B4: AVR extended bulk read, page by page, at the default 31.25 kHz.
    let usb646 = part("usb646");
    let bench = Bench::new(usb646, FirmwareVersion::V6_3);
    let t = bench.job_time(&["-U", &format!("flash:r:{}:r", bench.out("b4.bin"))]);
    rows.push(Row {
        id: "B4",
        what: "bulk flash read, 256-byte pages (usb646 for m1284p)",
        real: 842.0,
        modeled: 65536.0 / t,
    });

    // B5: verify of 32 KiB with the AVR extended commands, 128-byte pages.
    let m328p = part("m328p");
    let bench = Bench::new(m328p, FirmwareVersion::V6_3);
    let data = pattern(32 * 1024, 5);
    let hex = bench.hex("b5.hex", &data);
    bench.avrdude(&["-V", "-U", &format!("flash:w:{hex}:i")]);
    let t = bench.job_time(&["-U", &format!("flash:v:{hex}:i")]);
    rows.push(Row {
        id: "B5",
        what: "verify with AVR extended commands (m328p)",
        real: 32768.0 / 30.0,
        modeled: data.len() as f64 / t,
    });

    // B5 without them: byte reads.
    let bench = Bench::new(m328p, FirmwareVersion::V6_1);
    let data = pattern(1024, 6);
    let hex = bench.hex("b5b.hex", &data);
    bench.avrdude(&["-V", "-U", &format!("flash:w:{hex}:i")]);
    let t = bench.job_time(&["-U", &format!("flash:v:{hex}:i")]);
    rows.push(Row {
        id: "B5",
        what: "verify without AVR extended commands (m328p)",
        real: 32768.0 / 900.0,
        modeled: data.len() as f64 / t,
    });

    println!("| # | job | real B/s | modeled B/s | modeled / real |");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} |",
            r.id,
            r.what,
            r.real,
            r.modeled,
            r.modeled / r.real
        );
    }
    for r in &rows {
        let ratio = r.modeled / r.real;
        assert!(
            (0.75..=1.25).contains(&ratio),
            "{} {}: modeled {:.0} B/s vs real {:.0} B/s",
            r.id,
            r.what,
            r.modeled,
            r.real
        );
    }
}

#[test]
fn our_driver_beats_avrdude_on_the_same_emulated_bus_pirate() {
    // Write and verify a dense 32 KiB image on an ATmega32U4 at 16 MHz, each tool at its
    // defaults: avrdude at 31.25 kHz, ours raising the clock the way the job layer does.
    let m32u4 = part("m32u4");
    let data = pattern(32 * 1024, 7);
    let bench = Bench::new(m32u4, FirmwareVersion::V6_3);
    let hex = bench.hex("img.hex", &data);
    let avrdude_s = bench.job_time(&["-U", &format!("flash:w:{hex}:i")]);

    let socket = socket_with(m32u4);
    let (mut bp, _handle) = emulated(m32u4, socket.clone(), BusPirateOptions::default()).unwrap();
    let start = now_s(&socket);
    bp.enter(m32u4).unwrap();
    let lfuse = bp.read_fuse(isp_toolbox::part::FuseKind::Low).unwrap();
    let cpu = m32u4
        .target_clock(lfuse, Some(isp_toolbox::emulate::chip::DEFAULT_CRYSTAL_HZ))
        .cpu_hz
        .unwrap();
    bp.set_sck(Part::max_sck_hz(cpu) / 100 * 80).unwrap();
    bp.chip_erase(m32u4).unwrap();
    for (i, page) in data.chunks(128).enumerate() {
        bp.write_page(m32u4, Memory::Flash, (i * 128) as u32, page)
            .unwrap();
    }
    let mut back = vec![0u8; data.len()];
    let chunk = bp.info().capabilities.read_chunk as usize;
    for (i, slice) in back.chunks_mut(chunk).enumerate() {
        bp.read(m32u4, Memory::Flash, (i * chunk) as u32, slice)
            .unwrap();
    }
    bp.leave().unwrap();
    let ours_s = now_s(&socket) - start;
    assert!(back == data);
    println!("32 KiB write + verify: avrdude {avrdude_s:.1} s, ours {ours_s:.1} s (modeled)");
    assert!(
        avrdude_s / ours_s >= 2.0,
        "avrdude {avrdude_s:.1} s, ours {ours_s:.1} s"
    );
}
