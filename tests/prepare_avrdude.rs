//! Debian's avrdude 7.1 (`-c avr109`) against the emulated Caterina on a PTY: it must accept
//! the emulator as it accepts a real Pro Micro (sign-on, reversed signature, erase, block
//! writes and reads, EEPROM addressing, fuse reads, exit), and what it writes must land in the
//! board's flash below the bootloader. Our own AVR109 client then talks to the same emulator
//! through the real serial-port code, and each side checks what the other wrote.
//! Fails where avrdude is missing: run `.ci/run`.

mod prepare_common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isp_toolbox::Memory;
use isp_toolbox::bootload::avr109::Avr109;
use isp_toolbox::emulate::caterina::CaterinaFirmware;
use isp_toolbox::emulate::programmer_board::{
    BoardConfig, BoardState, ProgrammerBoard, synthetic_application, synthetic_bootloader,
};
use isp_toolbox::emulate::serial::{EmulatorHandle, ServeOptions, spawn_on_pty};
use isp_toolbox::hex::{MemoryImage, read_hex_file, write_image_file};
use isp_toolbox::part::FuseKind;
use isp_toolbox::transport::{Pty, SerialPortLink};
use prepare_common::*;

/// The longest an avrdude run may take before the test gives up on it.
const AVRDUDE_LIMIT: Duration = Duration::from_secs(120);

fn require_avrdude() {
    assert!(
        Command::new("avrdude").arg("-?").output().is_ok(),
        "avrdude is not installed: run .ci/run (it installs Debian's avrdude) before the tests"
    );
}

/// A Pro Micro whose Caterina is served on a PTY, one bootloader session at a time.
struct Bench {
    dir: tempfile::TempDir,
    board: ProgrammerBoard,
    link: PathBuf,
    emulator: Option<EmulatorHandle>,
}

impl Bench {
    fn new(lock: u8) -> Bench {
        require_avrdude();
        let config = BoardConfig {
            lock,
            ..BoardConfig::pro_micro(Some(synthetic_application(KEYBOARD, 0, 0x2000)))
        };
        let board = ProgrammerBoard::new(config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyCaterina");
        Bench {
            dir,
            board,
            link,
            emulator: None,
        }
    }

    /// Double-taps RESET and serves the new bootloader session on a fresh PTY, as each
    /// upload to a real Pro Micro starts.
    fn enter_bootloader(&mut self) {
        self.emulator = None;
        let _ = std::fs::remove_file(&self.link);
        self.board.press_reset();
        self.board.press_reset();
        assert_eq!(self.board.state(), BoardState::Bootloader);
        let mut pty = Pty::open().unwrap();
        pty.symlink_at(&self.link).unwrap();
        let firmware = CaterinaFirmware::new(self.board.clone(), self.board.session());
        self.emulator = Some(spawn_on_pty(
            Box::new(firmware),
            pty,
            self.board.socket(),
            ServeOptions::default(),
        ));
    }

    /// `avrdude -c avr109 -p m32u4 -P link args…` in a new bootloader session.
    fn avrdude(&mut self, args: &[&str]) -> (bool, String) {
        self.enter_bootloader();
        let mut child = Command::new("avrdude")
            .args(["-c", "avr109", "-p", "m32u4", "-P"])
            .arg(&self.link)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A run takes about a second; a stuck avrdude must not hang the test suite.
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > AVRDUDE_LIMIT {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                panic!(
                    "avrdude {args:?} still ran after {AVRDUDE_LIMIT:?}:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    fn avrdude_ok(&mut self, args: &[&str]) -> String {
        let (ok, text) = self.avrdude(args);
        assert!(ok, "avrdude {args:?} failed:\n{text}");
        text
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn file(&self, name: &str, image: &MemoryImage) -> String {
        let path = self.path(name);
        write_image_file(&path, image).unwrap();
        path
    }
}

#[test]
fn avrdude_writes_verifies_and_reads_flash_through_the_emulated_caterina() {
    let mut bench = Bench::new(0xFF);
    let image = isp_image(TEENSYDUINO_SERIAL, 0x1A40);
    let file = bench.file("isp.hex", &image);
    let text = bench.avrdude_ok(&["-U", &format!("flash:w:{file}:i")]);
    assert!(
        text.contains("0x1e9587"),
        "the reversed signature is put right:\n{text}"
    );
    assert!(text.contains("verified"), "{text}");

    let flash = bench.board.flash();
    assert_eq!(&flash[..0x1A40], &image.page(0, 0x1A40, 0xFF)[..]);
    assert!(
        flash[0x1A40..0x7000].iter().all(|&b| b == 0xFF),
        "e erased the old program"
    );
    assert_eq!(&flash[0x7000..], &synthetic_bootloader(0x1000)[..]);
    // avrdude's closing E: the program starts half a second later.
    bench.board.advance(Duration::from_secs(1));
    assert_eq!(bench.board.state(), BoardState::Application);
    assert_eq!(bench.board.application_id(), Some(TEENSYDUINO_SERIAL));

    // Read back in another session: the same bytes.
    let out = bench.path("read.hex");
    bench.avrdude_ok(&["-U", &format!("flash:r:{out}:i")]);
    let read = read_hex_file(&out).unwrap();
    assert_eq!(read.page(0, 0x1A40, 0xFF), image.page(0, 0x1A40, 0xFF));
}

#[test]
fn avrdude_eeprom_and_fuse_reads() {
    let mut bench = Bench::new(0x2F);
    let mut eeprom = MemoryImage::new();
    eeprom.insert(0x10, b"ISP Toolbox").unwrap();
    let file = bench.file("ee.hex", &eeprom);
    bench.avrdude_ok(&["-U", &format!("eeprom:w:{file}:i")]);
    let socket = bench.board.socket();
    let stored = isp_toolbox::emulate::socket::lock(&socket)
        .chip()
        .unwrap()
        .eeprom()[0x10..0x1B]
        .to_vec();
    assert_eq!(
        stored, b"ISP Toolbox",
        "EEPROM bytes at their byte addresses"
    );
    let out = bench.path("ee_read.hex");
    bench.avrdude_ok(&["-U", &format!("eeprom:r:{out}:i")]);
    let read = read_hex_file(&out).unwrap();
    assert_eq!(read.page(0x10, 11, 0xFF), b"ISP Toolbox");

    let text = bench.avrdude_ok(&[
        "-U",
        "lfuse:r:-:h",
        "-U",
        "hfuse:r:-:h",
        "-U",
        "efuse:r:-:h",
        "-U",
        "lock:r:-:h",
    ]);
    // Lock 0x2F reads back 0xEF: the unused bits 7..6 read as 1.
    for value in ["0xff", "0xd8", "0xcb", "0xef"] {
        assert!(text.contains(value), "{value} in:\n{text}");
    }
}

#[test]
fn our_client_and_avrdude_check_each_others_writes_over_the_real_serial_code() {
    let mut bench = Bench::new(0xFF);
    // Ours writes (the way the prepare job does), avrdude verifies.
    bench.enter_bootloader();
    let image = isp_image(TEENSYDUINO_SERIAL, 0x900);
    let link = SerialPortLink::open(&bench.link.to_string_lossy(), 57_600).unwrap();
    let mut client = Avr109::new(link);
    let info = client.connect().unwrap().clone();
    assert!(info.is_caterina());
    assert_eq!(info.block_size, 128);
    assert_eq!(info.hardware_version, None, "Caterina answers '?' to v");
    assert_eq!(info.device_codes, [0x44]);
    assert_eq!(client.signature().unwrap(), [0x1E, 0x95, 0x87]);
    assert_eq!(client.read_fuse(FuseKind::High).unwrap(), 0xD8);
    client.erase_application().unwrap();
    for page in (0..0x900).step_by(128) {
        client
            .write_block(Memory::Flash, page, &image.page(page, 128, 0xFF))
            .unwrap();
    }
    client.leave_programming().unwrap();
    client.exit().unwrap();
    drop(client);
    let file = bench.file("ours.hex", &image);
    bench.avrdude_ok(&["-U", &format!("flash:v:{file}:i")]);

    // avrdude writes, ours reads back.
    let theirs = isp_image(PRO_MICRO_SKETCH, 0x600);
    let file = bench.file("theirs.hex", &theirs);
    bench.avrdude_ok(&["-U", &format!("flash:w:{file}:i")]);
    bench.enter_bootloader();
    let link = SerialPortLink::open(&bench.link.to_string_lossy(), 57_600).unwrap();
    let mut client = Avr109::new(link);
    client.connect().unwrap();
    let mut read = vec![0u8; 0x600];
    client.read_block(Memory::Flash, 0, &mut read).unwrap();
    assert_eq!(read, theirs.page(0, 0x600, 0xFF));
}

#[test]
fn writes_into_the_bootloader_section_follow_the_lock_bits() {
    // Lock 0x2F (as the Arduino IDE burns Caterina): SPM cannot touch the boot section, so
    // avrdude's write "succeeds" but its verify finds the old bytes.
    let mut bench = Bench::new(0x2F);
    let mut image = MemoryImage::new();
    image.insert(0x7000, &[0x00; 128]).unwrap();
    let file = bench.file("boot.hex", &image);
    let (ok, text) = bench.avrdude(&["-U", &format!("flash:w:{file}:i")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("verification") || text.contains("mismatch"),
        "{text}"
    );
    assert_eq!(
        &bench.board.flash()[0x7000..],
        &synthetic_bootloader(0x1000)[..]
    );

    // Unprotected (lock 0xFF, as SparkFun ships it): Caterina overwrites its own code and
    // the board stops answering; the client sees the port go away, not a hang.
    let mut bench = Bench::new(0xFF);
    bench.enter_bootloader();
    let link = SerialPortLink::open(&bench.link.to_string_lossy(), 57_600).unwrap();
    let mut client = Avr109::new(link);
    client.connect().unwrap();
    let err = client
        .write_block(Memory::Flash, 0x7000, &[0x00; 128])
        .unwrap_err();
    assert!(
        matches!(
            err,
            isp_toolbox::Error::Link { .. } | isp_toolbox::Error::Timeout { .. }
        ),
        "{err}"
    );
    assert_eq!(bench.board.state(), BoardState::Crashed);
    bench.board.press_reset();
    bench.board.press_reset();
    assert_eq!(
        bench.board.state(),
        BoardState::Crashed,
        "a reset does not revive it"
    );
}
