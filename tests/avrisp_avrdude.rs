//! Debian's avrdude 7.1 against the emulated ArduinoISP on a PTY, as `-c avrisp -b 19200`,
//! `-c stk500v1` and `-c arduino`: signature, flash write + verify, read back identical, fuses,
//! erase, EEPROM (and its address quirk); and avrdude and our driver (over the real serial code
//! on the same PTY) each check what the other wrote. Fails where avrdude is missing: run
//! `.ci/run`.

mod avrisp_common;

use std::path::PathBuf;
use std::process::Command;

use avrisp_common::*;
use isp_toolbox::Memory;
use isp_toolbox::emulate::arduinoisp::{ArduinoIsp, HostBoard, SketchMonitor};
use isp_toolbox::emulate::chip::EmulatedChip;
use isp_toolbox::emulate::serial::{EmulatorHandle, ServeOptions, spawn_on_pty};
use isp_toolbox::emulate::socket::{SharedSocket, Socket};
use isp_toolbox::hex::{MemoryImage, read_hex_file, write_image_file};
use isp_toolbox::part::{FuseKind, Part};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::stk500v1::{Stk500v1, Stk500v1Options};
use isp_toolbox::transport::{Pty, SerialPortLink};

fn require_avrdude() {
    assert!(
        Command::new("avrdude").arg("-?").output().is_ok(),
        "avrdude is not installed: run .ci/run (it installs Debian's avrdude) before the tests"
    );
}

/// An emulated ArduinoISP on a PTY, reachable at `link`, with a chip behind it.
struct Bench {
    dir: tempfile::TempDir,
    link: PathBuf,
    socket: SharedSocket,
    monitor: SketchMonitor,
    _handle: EmulatorHandle,
    part: &'static Part,
}

/// What one avrdude run said.
struct Run {
    ok: bool,
    text: String,
    stdout: String,
}

impl Bench {
    fn new(board: HostBoard, part: &'static Part, chip: EmulatedChip) -> Bench {
        require_avrdude();
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyISP");
        let mut pty = Pty::open().unwrap();
        pty.symlink_at(&link).unwrap();
        let socket = Socket::with_chip(chip).shared();
        let firmware = ArduinoIsp::new(board);
        let monitor = firmware.monitor();
        let handle = spawn_on_pty(
            Box::new(firmware),
            pty,
            socket.clone(),
            ServeOptions::default(),
        );
        Bench {
            dir,
            link,
            socket,
            monitor,
            _handle: handle,
            part,
        }
    }

    fn pro_micro(name: &str) -> Bench {
        let p = part(name);
        Bench::new(HostBoard::ProMicro, p, crystal_chip(p))
    }

    /// `avrdude -c programmer -b 19200 -p part -P link args…`.
    fn avrdude(&self, programmer: &str, args: &[&str]) -> Run {
        let output = Command::new("avrdude")
            .args(["-c", programmer, "-b", "19200", "-p", &self.part.avrdude_id])
            .arg("-P")
            .arg(&self.link)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        Run {
            ok: output.status.success(),
            text: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
            stdout,
        }
    }

    fn avrdude_ok(&self, programmer: &str, args: &[&str]) -> Run {
        let run = self.avrdude(programmer, args);
        assert!(
            run.ok,
            "avrdude -c {programmer} {args:?} failed:\n{}",
            run.text
        );
        // avrdude always leaves programming mode.
        assert!(!self.monitor.status().pmode, "{}", run.text);
        run
    }

    fn file(&self, name: &str, image: &MemoryImage) -> String {
        let path = self.dir.path().join(name);
        write_image_file(&path, image).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// The command bytes the sketch handled since the log was last cleared.
    fn commands(&self) -> Vec<u8> {
        self.monitor
            .status()
            .log
            .iter()
            .map(|r| r.command)
            .collect()
    }

    /// Our driver over the real serial code, on the same PTY.
    fn our_driver(&self) -> Stk500v1<SerialPortLink> {
        let link = SerialPortLink::open(&self.link.to_string_lossy(), 19_200).unwrap();
        Stk500v1::new(link, Stk500v1Options::default()).unwrap()
    }

    fn flash(&self) -> Vec<u8> {
        on_chip(&self.socket, |c| c.flash().to_vec())
    }
}

/// Some code at the bottom of flash and a "bootloader" at the top.
fn app_and_boot(part: &Part) -> MemoryImage {
    let mut image = MemoryImage::new();
    image.insert(0, &test_bytes(1, 3000)).unwrap();
    let boot = part.flash.size - 512;
    image.insert(boot, &test_bytes(2, 500)).unwrap();
    image
}

/// Every byte of `expected` is in `got`, and whatever else `got` holds is erased flash.
fn assert_image_matches(got: &MemoryImage, expected: &MemoryImage) {
    for segment in expected.segments() {
        for (i, &b) in segment.data.iter().enumerate() {
            let addr = segment.start + i as u32;
            assert_eq!(got.get(addr), Some(b), "byte at 0x{addr:05X}");
        }
    }
    for segment in got.segments() {
        for (i, &b) in segment.data.iter().enumerate() {
            let addr = segment.start + i as u32;
            if expected.get(addr).is_none() {
                assert_eq!(b, 0xFF, "byte at 0x{addr:05X} outside the image");
            }
        }
    }
}

#[test]
fn avrdude_reads_the_signature_with_each_programmer_id() {
    let b = Bench::pro_micro("m32u4");
    for programmer in ["avrisp", "stk500v1", "arduino"] {
        b.monitor.clear_log();
        let run = b.avrdude_ok(programmer, &["-v"]);
        assert!(
            run.text.contains("device signature = 0x1e9587"),
            "{}",
            run.text
        );
        assert!(run.text.contains("Firmware Version: 1.18"), "{}", run.text);
        // `arduino` reads the signature with READ_SIGN (75); the others with UNIVERSAL.
        let read_sign = b.commands().contains(&0x75);
        assert_eq!(read_sign, programmer == "arduino", "{programmer}");
    }
}

#[test]
fn avrdude_writes_verifies_reads_back_and_erases_flash() {
    let b = Bench::pro_micro("m32u4");
    let image = app_and_boot(b.part);
    let input = b.file("in.hex", &image);
    let run = b.avrdude_ok("avrisp", &["-U", &format!("flash:w:{input}:i")]);
    assert!(run.text.contains("bytes of flash verified"), "{}", run.text);
    let flash = b.flash();
    for segment in image.segments() {
        let s = segment.start as usize;
        assert_eq!(&flash[s..s + segment.data.len()], &segment.data[..]);
    }

    let out = b.path("out.hex");
    b.avrdude_ok("avrisp", &["-U", &format!("flash:r:{out}:i")]);
    assert_image_matches(&read_hex_file(&out).unwrap(), &image);

    b.avrdude_ok("avrisp", &["-e"]);
    assert!(b.flash().iter().all(|&x| x == 0xFF));
    on_chip(&b.socket, |c| {
        assert_eq!(c.stats().busy_violations, 0);
        assert_eq!(c.stats().sck_violations, 0);
    });
}

#[test]
fn avrdude_stk500v1_on_an_at90usb1286_writes_above_64k() {
    let p = part("usb1286");
    let b = Bench::new(HostBoard::Teensy20, p, crystal_chip(p));
    let mut image = MemoryImage::new();
    image.insert(0x1F000, &test_bytes(3, 2048)).unwrap();
    let input = b.file("top.hex", &image);
    let run = b.avrdude_ok("stk500v1", &["-U", &format!("flash:w:{input}:i")]);
    assert!(run.text.contains("bytes of flash verified"), "{}", run.text);
    assert_eq!(&b.flash()[0x1F000..0x1F800], &test_bytes(3, 2048)[..]);
}

#[test]
fn avrdude_writes_and_reads_fuses() {
    let b = Bench::pro_micro("m32u4");
    b.avrdude_ok(
        "avrisp",
        &[
            "-U",
            "lfuse:w:0xFF:m",
            "-U",
            "hfuse:w:0xD8:m",
            "-U",
            "efuse:w:0xCB:m",
        ],
    );
    on_chip(&b.socket, |c| {
        assert_eq!(c.fuse(FuseKind::Low), Some(0xFF));
        assert_eq!(c.fuse(FuseKind::High), Some(0xD8));
        // avrdude's m32u4 efuse write op is `1111iiii`: it sends 0xFB for 0xCB and compares
        // only the low nibble.
        assert_eq!(c.fuse(FuseKind::Extended), Some(0xFB));
    });
    let run = b.avrdude_ok("avrisp", &["-U", "hfuse:r:-:h"]);
    assert!(run.stdout.contains("0xd8"), "{}", run.text);
    let run = b.avrdude_ok("arduino", &["-U", "efuse:r:-:h"]);
    assert!(run.stdout.contains("0xfb"), "{}", run.text);
}

/// avrdude 7.1 sends EEPROM LOAD_ADDRESS as a byte address for `avrisp`/`stk500v1` but as a word
/// address for `arduino` (a bootloader-type programmer). ArduinoISP takes it as a word address
/// (it writes at `here × 2`), so with `avrisp` every 4-byte page lands at twice its address,
/// leaving gaps, and avrdude's own verify passes anyway, because its reads are doubled the
/// same way. `arduino` (like our driver) lands where the file says.
#[test]
fn eeprom_with_avrisp_lands_at_doubled_addresses_and_with_arduino_where_it_belongs() {
    let b = Bench::pro_micro("m32u4");
    let mut image = MemoryImage::new();
    let data: Vec<u8> = (1..=16).collect();
    image.insert(0, &data).unwrap();
    let input = b.file("ee.hex", &image);
    let run = b.avrdude_ok("avrisp", &["-U", &format!("eeprom:w:{input}:i")]);
    assert!(
        run.text.contains("16 bytes of eeprom verified"),
        "{}",
        run.text
    );
    let eeprom = on_chip(&b.socket, |c| c.eeprom()[..32].to_vec());
    let ff = [0xFF; 4];
    let doubled: Vec<u8> = data
        .chunks(4)
        .flat_map(|page| [page, &ff[..]].concat())
        .collect();
    assert_eq!(eeprom, doubled, "avrisp writes page n at byte 8n");

    // Our driver reads the bytes where they really are.
    {
        let mut d = b.our_driver();
        d.enter(b.part).unwrap();
        let mut buf = [0u8; 32];
        d.read(b.part, Memory::Eeprom, 0, &mut buf).unwrap();
        assert_eq!(buf.to_vec(), doubled);
        // and writes them where they belong.
        for (i, page) in data.chunks(4).enumerate() {
            d.write_page(b.part, Memory::Eeprom, 4 * i as u32, page)
                .unwrap();
        }
        d.leave().unwrap();
    }
    assert_eq!(on_chip(&b.socket, |c| c.eeprom()[..16].to_vec()), data);

    // `arduino` writes at the right bytes: 32 bytes from 0x40 land at 0x40.
    let mut image = MemoryImage::new();
    image.insert(0x40, &test_bytes(4, 32)).unwrap();
    let input = b.file("ee2.hex", &image);
    b.avrdude_ok("arduino", &["-U", &format!("eeprom:w:{input}:i")]);
    let eeprom = on_chip(&b.socket, |c| c.eeprom().to_vec());
    assert_eq!(&eeprom[0x40..0x60], &test_bytes(4, 32)[..]);
    assert!(eeprom[0x60..].iter().all(|&x| x == 0xFF));
}

#[test]
fn avrdude_writes_and_our_driver_verifies_over_the_serial_port() {
    let b = Bench::pro_micro("m32u4");
    let image = app_and_boot(b.part);
    let input = b.file("in.hex", &image);
    b.avrdude_ok("avrisp", &["-U", &format!("flash:w:{input}:i")]);
    let mut d = b.our_driver();
    assert_eq!(d.info().firmware, "ArduinoISP (AVR ISP), HW 2, SW 1.18");
    d.enter(b.part).unwrap();
    assert_eq!(d.read_signature().unwrap(), b.part.signature);
    for segment in image.segments() {
        let mut buf = vec![0u8; segment.data.len()];
        d.read(b.part, Memory::Flash, segment.start, &mut buf)
            .unwrap();
        assert_eq!(buf, segment.data);
    }
    d.leave().unwrap();
}

#[test]
fn our_driver_writes_and_avrdude_verifies_and_reads_back() {
    let b = Bench::pro_micro("m32u4");
    let image = app_and_boot(b.part);
    {
        let mut d = b.our_driver();
        d.enter(b.part).unwrap();
        d.chip_erase(b.part).unwrap();
        let page = b.part.flash.page_size;
        for addr in image.pages_touched(page) {
            d.write_page(b.part, Memory::Flash, addr, &image.page(addr, page, 0xFF))
                .unwrap();
        }
        d.write_fuse(b.part, FuseKind::High, 0xD8).unwrap();
        d.leave().unwrap();
    }
    let input = b.file("in.hex", &image);
    let run = b.avrdude_ok("avrisp", &["-U", &format!("flash:v:{input}:i")]);
    assert!(run.text.contains("bytes of flash verified"), "{}", run.text);
    let out = b.path("out.hex");
    b.avrdude_ok("stk500v1", &["-U", &format!("flash:r:{out}:i")]);
    assert_image_matches(&read_hex_file(&out).unwrap(), &image);
    let run = b.avrdude_ok("avrisp", &["-U", "hfuse:r:-:h"]);
    assert!(run.stdout.contains("0xd8"), "{}", run.text);
}

#[test]
fn avrdude_arduino_resets_an_uno_when_it_opens_the_port() {
    let p = part("m328p");
    let b = Bench::new(HostBoard::Uno, p, crystal_chip(p));
    let mut image = MemoryImage::new();
    image.insert(0x100, &test_bytes(5, 700)).unwrap();
    let input = b.file("in.hex", &image);
    let run = b.avrdude_ok("arduino", &["-U", &format!("flash:w:{input}:i")]);
    assert!(run.text.contains("bytes of flash verified"), "{}", run.text);
    // Power-up, then avrdude opening the port.
    assert_eq!(b.monitor.status().resets, 2, "opening the port reset it");
    assert_eq!(&b.flash()[0x100..0x100 + 700], &test_bytes(5, 700)[..]);
    // `-c avrisp` on an Uno: the same reset on open (no capacitor on this board).
    b.avrdude_ok("avrisp", &[]);
    assert_eq!(b.monitor.status().resets, 3);
}

/// avrdude 7.1 ignores `-B` for these programmer types (it sends no SET_PARAMETER, which would
/// desynchronise ArduinoISP; later avrdude versions do send it): the session just works.
#[test]
fn avrdude_7_1_sends_no_set_parameter_for_bitclock() {
    let b = Bench::pro_micro("m32u4");
    b.monitor.clear_log();
    let run = b.avrdude_ok("stk500v1", &["-B", "32"]);
    assert!(run.text.contains("0x1e9587"), "{}", run.text);
    assert!(!b.commands().contains(&0x40), "{:02X?}", b.commands());
}
