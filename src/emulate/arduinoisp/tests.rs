//! The sketch byte for byte: raw frames in, exact replies out, the target's state checked.

use std::time::Duration;

use super::*;
use crate::emulate::serial::{EmulatorHandle, ServeOptions, spawn_in_process};
use crate::emulate::socket::{SharedSocket, Socket, lock};
use crate::error::Memory;
use crate::part::{Part, PartDb};
use crate::programmer::stk500v1::wire;
use crate::transport::{MemoryLink, SerialLink};

struct Bench {
    link: MemoryLink,
    socket: SharedSocket,
    monitor: SketchMonitor,
    _handle: EmulatorHandle,
}

fn part(name: &str) -> &'static Part {
    PartDb::builtin().unwrap().find(name).unwrap()
}

fn bench_with(firmware: ArduinoIsp, socket: Socket) -> Bench {
    let socket = socket.shared();
    let monitor = firmware.monitor();
    let (link, handle) = spawn_in_process(
        Box::new(firmware),
        socket.clone(),
        19_200,
        ServeOptions::default(),
    );
    Bench {
        link,
        socket,
        monitor,
        _handle: handle,
    }
}

fn bench(name: &str) -> Bench {
    bench_with(
        ArduinoIsp::new(HostBoard::ProMicro),
        Socket::factory_fresh(part(name)),
    )
}

impl Bench {
    /// Sends `frame` and expects exactly `reply` (and nothing more right after it).
    fn expect(&mut self, frame: &[u8], reply: &[u8]) {
        self.link.write_all(frame).unwrap();
        let mut got = vec![0u8; reply.len()];
        self.link
            .read_exact(&mut got, Duration::from_secs(5), "test reply")
            .unwrap();
        assert_eq!(got, reply, "reply to {frame:02X?}");
        let mut extra = [0u8; 16];
        let n = self
            .link
            .read_some(&mut extra, Duration::from_millis(20))
            .unwrap();
        assert_eq!(
            n,
            0,
            "unexpected bytes after the reply: {:02X?}",
            &extra[..n]
        );
    }

    fn set_device(&mut self, part: &Part) {
        self.expect(&wire::set_device(part).bytes, &[0x14, 0x10]);
        self.expect(&wire::set_device_ext(part, true).bytes, &[0x14, 0x10]);
    }

    fn now_ns(&self) -> u64 {
        lock(&self.socket).now_ns()
    }

    /// Modeled ns the firmware spent on the last command it handled (link time excluded).
    fn last_command_ns(&self) -> u64 {
        let log = self.monitor.status().log;
        let last = log.last().expect("a command was handled");
        ((last.finished_s - last.started_s) * 1e9).round() as u64
    }
}

#[test]
fn identifies_itself_like_the_sketch() {
    let mut b = bench("m32u4");
    b.expect(&[0x30, 0x20], &[0x14, 0x10]);
    b.expect(&[0x31, 0x20], b"\x14AVR ISP\x10");
    b.expect(&[0x41, 0x80, 0x20], &[0x14, 2, 0x10]);
    b.expect(&[0x41, 0x81, 0x20], &[0x14, 1, 0x10]);
    b.expect(&[0x41, 0x82, 0x20], &[0x14, 18, 0x10]);
    b.expect(&[0x41, 0x93, 0x20], &[0x14, b'S', 0x10]);
    // Any other parameter (the topcard avrdude asks for with -v) reads 0.
    b.expect(&[0x41, 0x98, 0x20], &[0x14, 0, 0x10]);
    // The no-op commands swallow their arguments.
    b.expect(&[0x60, 0x12, 0x34, 0x20], &[0x14, 0x10]);
    b.expect(&[0x61, 0x56, 0x20], &[0x14, 0x10]);
    assert_eq!(b.monitor.status().error, 0);
}

#[test]
fn unknown_commands_and_bad_frames_answer_like_the_sketch() {
    let mut b = bench("m32u4");
    // CHIP_ERASE is not implemented: a lone UNKNOWN, and the error LED lights.
    b.expect(&[0x52, 0x20], &[0x12]);
    assert_eq!(b.monitor.status().error, 1);
    // A frame without its EOP: NOSYNC.
    b.expect(&[0x30, 0x21], &[0x15]);
    // A stray EOP where a command should be: NOSYNC.
    b.expect(&[0x20], &[0x15]);
    // GET_SYNC zeroes the counter before it finds the bad EOP: 1, then the stray EOP: 2.
    assert_eq!(b.monitor.status().error, 2);
    // GET_SYNC clears the counter.
    b.expect(&[0x30, 0x20], &[0x14, 0x10]);
    assert_eq!(b.monitor.status().error, 0);
    // SET_PARAMETER (what avrdude's -B sends) desynchronises: its parameter byte is taken as
    // the EOP check (NOSYNC), its value as a command whose "EOP" is the real one (UNKNOWN).
    b.expect(&[0x40, 0x89, 0x05, 0x20], &[0x15, 0x12]);
    assert_eq!(b.monitor.status().error, 2);
}

#[test]
fn enter_progmode_never_checks_the_echo_and_resets_the_target_once() {
    // No chip in the socket: the sketch still says OK.
    let mut b = bench_with(ArduinoIsp::new(HostBoard::ProMicro), Socket::default());
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    assert!(b.monitor.status().pmode);
    assert!(lock(&b.socket).reset_asserted());

    let mut b = bench("m32u4");
    b.set_device(part("m32u4"));
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    let spent = b.last_command_ns();
    // 20 ms + 100 µs + 50 ms of RESET choreography, then Programming Enable at 125 kHz.
    assert!(
        spent >= 70_100_000 + 4 * 64_000,
        "start_pmode took {spent} ns"
    );
    assert!(spent < 75_000_000, "start_pmode took {spent} ns");
    assert!(lock(&b.socket).chip().unwrap().programming_enabled());
    // Already in programming mode: no second reset, no delay.
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    assert!(b.last_command_ns() < 100_000);
    // LEAVE_PROGMODE releases RESET and clears the error counter.
    b.expect(&[0x52, 0x20], &[0x12]);
    b.expect(&[0x51, 0x20], &[0x14, 0x10]);
    let status = b.monitor.status();
    assert!(!status.pmode);
    assert_eq!(status.error, 0);
    assert!(!lock(&b.socket).reset_asserted());
}

#[test]
fn flash_pages_are_buffered_committed_per_page_and_read_in_words() {
    let p = part("m32u4");
    let mut b = bench("m32u4");
    b.set_device(p);
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    // Chip erase through UNIVERSAL, then wait it out.
    b.expect(&[0x56, 0xAC, 0x80, 0x00, 0x00, 0x20], &[0x14, 0x00, 0x10]);
    lock(&b.socket).advance(Duration::from_millis(10));
    // 256 bytes at word 0x40 (byte 0x80): two 128-byte pages in one PROG_PAGE.
    let data: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    b.expect(&wire::load_address(0x40).bytes, &[0x14, 0x10]);
    b.expect(
        &wire::prog_page(Memory::Flash, 0x80, &data).bytes,
        &[0x14, 0x10],
    );
    let spent = b.last_command_ns();
    assert_eq!(
        b.monitor.status().here,
        0xC0,
        "here advances one word per two bytes"
    );
    {
        let s = lock(&b.socket);
        let chip = s.chip().unwrap();
        assert_eq!(&chip.flash()[0x80..0x180], &data[..]);
        assert_eq!(chip.stats().flash_pages_written, 2);
        assert_eq!(chip.stats().busy_violations, 0);
    }
    // 256 load transactions and 2 commits at 125 kHz, and 2 × 30 ms of PROG_FLICKER.
    let floor = 258 * 4 * 64_000 + 60_000_000;
    assert!(
        spent >= floor && spent < floor + 5_000_000,
        "took {spent} ns"
    );

    // Reading an odd length returns whole words.
    b.expect(&wire::load_address(0x40).bytes, &[0x14, 0x10]);
    let mut reply = vec![0x14];
    reply.extend_from_slice(&data[..4]);
    reply.push(0x10);
    b.expect(&[0x74, 0x00, 0x03, b'F', 0x20], &reply);
    assert_eq!(b.monitor.status().here, 0x42);
}

#[test]
fn eeprom_is_addressed_in_words_and_written_at_45_ms_a_byte() {
    let p = part("m32u4");
    let mut b = bench("m32u4");
    b.set_device(p);
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    // LOAD_ADDRESS 4 means EEPROM byte 8 to ArduinoISP.
    b.expect(&wire::load_address(4).bytes, &[0x14, 0x10]);
    b.expect(
        &wire::prog_page(Memory::Eeprom, 8, &[1, 2, 3, 4]).bytes,
        &[0x14, 0x10],
    );
    let spent = b.last_command_ns();
    assert!(spent >= 4 * 45_000_000, "took {spent} ns");
    assert_eq!(
        &lock(&b.socket).chip().unwrap().eeprom()[..12],
        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]
    );
    b.expect(&[0x74, 0x00, 0x04, b'E', 0x20], &[0x14, 1, 2, 3, 4, 0x10]);
    // Longer than the EEPROM: FAILED without reading the data, whose first byte (a space
    // here) is then taken as the frame's end.
    b.expect(&[0x64, 0x08, 0x00, b'E', 0x20], &[0x14, 0x11]);
    // An unknown memory type: a lone FAILED (READ_PAGE: 14 11).
    b.expect(&[0x64, 0x00, 0x00, b'X'], &[0x11]);
    b.expect(&[0x74, 0x00, 0x00, b'X', 0x20], &[0x14, 0x11]);
}

#[test]
fn universal_runs_before_the_frame_end_is_checked() {
    let mut b = bench("m32u4");
    b.set_device(part("m32u4"));
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    b.expect(&[0x75, 0x20], &[0x14, 0x1E, 0x95, 0x87, 0x10]);
    let before = lock(&b.socket).chip().unwrap().stats().isp_instructions;
    b.expect(&[0x56, 0x30, 0x00, 0x01, 0x00, 0x21], &[0x15]);
    let after = lock(&b.socket).chip().unwrap().stats().isp_instructions;
    assert_eq!(after, before + 1);
    // A PROG_PAGE longer than the buffer is counted (the real sketch tramples its globals).
    let data = vec![0xFF; 300];
    b.expect(
        &wire::prog_page(Memory::Flash, 0, &data).bytes,
        &[0x14, 0x10],
    );
    assert_eq!(b.monitor.status().buffer_overruns, 1);
}

#[test]
fn an_active_high_device_code_inverts_reset() {
    let mut b = bench("m32u4");
    let mut frame = wire::set_device(part("m32u4")).bytes;
    frame[1] = 0xE1;
    b.expect(&frame, &[0x14, 0x10]);
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    // RESET is driven high: an AVR target runs instead of listening.
    assert!(b.monitor.status().rst_active_high);
    assert!(!lock(&b.socket).reset_asserted());
    b.expect(&[0x75, 0x20], &[0x14, 0xFF, 0xFF, 0xFF, 0x10]);
}

#[test]
fn an_uno_restarts_the_sketch_when_dtr_is_asserted() {
    let mut b = bench_with(
        ArduinoIsp::new(HostBoard::Uno),
        Socket::factory_fresh(part("m328p")),
    );
    b.set_device(part("m328p"));
    assert_eq!(b.monitor.status().resets, 1, "power-up");
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    assert!(b.monitor.status().pmode);
    // Sampled before the toggle: the emulator's thread may act on DTR (and let the virtual
    // clock run) before this thread reads the clock again.
    let before = b.now_ns();
    b.link.set_dtr(false).unwrap();
    b.link.set_dtr(true).unwrap();
    b.expect(&[0x30, 0x20], &[0x14, 0x10]);
    let status = b.monitor.status();
    assert_eq!(status.resets, 2);
    assert!(!status.pmode, "the sketch starts afresh");
    assert_eq!(status.pagesize, 0);
    assert!(!lock(&b.socket).reset_asserted(), "the target is released");
    // Optiboot's second and the LED greeting pass before the sketch answers.
    assert!(b.now_ns() - before >= (OPTIBOOT_TIMEOUT + GREETING).as_nanos() as u64);
}

#[test]
fn a_native_usb_board_ignores_dtr() {
    let mut b = bench("m32u4");
    b.expect(&[0x50, 0x20], &[0x14, 0x10]);
    b.link.set_dtr(false).unwrap();
    b.link.set_dtr(true).unwrap();
    b.expect(&[0x30, 0x20], &[0x14, 0x10]);
    assert!(b.monitor.status().pmode);
    assert_eq!(b.monitor.status().resets, 1);
}
