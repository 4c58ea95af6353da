//! Production line mode against the emulators: scripted boards arriving and leaving the
//! emulated socket (good and factory-fresh chips, an empty fixture, a wrong MCU, a failing
//! chip, a chip pulled out mid-write), with the ArduinoISP emulator, a USB one and `sim`.
//! Every duration is virtual time; nothing here depends on how fast the machine is.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use isp_toolbox::Error;
use isp_toolbox::emulate::EmulatedChip;
use isp_toolbox::emulate::socket::{Socket, lock};
use isp_toolbox::hex::{MemoryImage, write_image_file};
use isp_toolbox::job::CancelToken;
use isp_toolbox::part::FuseKind;
use isp_toolbox::production::emulated::{AutoAcknowledge, ScriptedBench, parse_script};
use isp_toolbox::production::log::read_jsonl;
use isp_toolbox::production::{
    BoardResult, LineOptions, LogFormat, OperatorBench, OperatorCommand, PreparedLine,
    ProductionEvent, Profile, StopReason, Tally, run_profile,
};

const BOOT_START: u32 = 0x7000;

/// Firmware at 0 (3 pages and a bit) and a bootloader at the top of a 32U4's flash.
fn write_images(dir: &Path) {
    let mut firmware = MemoryImage::new();
    let fw: Vec<u8> = (0..400u32).map(|i| (i * 13 + 1) as u8 | 1).collect();
    firmware.insert(0, &fw).unwrap();
    write_image_file(dir.join("firmware.hex"), &firmware).unwrap();
    let mut bootloader = MemoryImage::new();
    let bl: Vec<u8> = (0..512u32).map(|i| (i * 7 + 3) as u8).collect();
    bootloader.insert(BOOT_START, &bl).unwrap();
    write_image_file(dir.join("bootloader.hex"), &bootloader).unwrap();
    let mut eeprom = MemoryImage::new();
    eeprom.insert(0, b"corne-v4").unwrap();
    write_image_file(dir.join("eeprom.hex"), &eeprom).unwrap();
}

fn profile_json(programmer: &str, extra: &str) -> String {
    format!(
        r#"{{
  "name": "test line",
  "programmer": "{programmer}",
  "port": "emulated",
  "mcu": "atmega32u4",
  "firmware": "firmware.hex",
  "bootloader": "bootloader.hex",
  "fuses": {{ "bootloader": "caterina-promicro-5v", "lock": "0x2F" }},
  "eeprom": "eeprom.hex",
  "log": "run.jsonl"{extra}
}}"#
    )
}

fn prepared(dir: &Path, programmer: &str, extra: &str) -> PreparedLine {
    write_images(dir);
    let path = dir.join("line.json");
    std::fs::write(&path, profile_json(programmer, extra)).unwrap();
    Profile::load(&path).unwrap().prepare().unwrap()
}

struct Run {
    summary: isp_toolbox::production::LineSummary,
    events: Vec<ProductionEvent>,
    pulled: Vec<EmulatedChip>,
    acknowledged: Vec<u64>,
    fault_addr: u32,
}

fn run_script(line: &PreparedLine, script: &str) -> Run {
    let socket = Socket::default().shared();
    let steps = parse_script(script).unwrap();
    let mut bench = ScriptedBench::new(socket.clone(), line, steps, AutoAcknowledge::default());
    let mut events = Vec::new();
    let mut reporter = |e: ProductionEvent| events.push(e);
    let summary = run_profile(
        line,
        &LineOptions::default(),
        &mut bench,
        &mut reporter,
        CancelToken::new(),
        Some(socket),
    )
    .unwrap();
    Run {
        summary,
        events,
        pulled: bench.pulled().to_vec(),
        acknowledged: bench.inner().acknowledged.clone(),
        fault_addr: bench.fault_addr(),
    }
}

fn assert_holds_image(chip: &EmulatedChip, line: &PreparedLine) {
    for seg in line.image.segments() {
        let start = seg.start as usize;
        assert_eq!(
            &chip.flash()[start..start + seg.data.len()],
            &seg.data[..],
            "flash at 0x{start:05X}"
        );
    }
    assert_eq!(&chip.eeprom()[..8], b"corne-v4");
    for (kind, want) in [
        (FuseKind::Low, 0xFF),
        (FuseKind::High, 0xD8),
        (FuseKind::Extended, 0xFB),
        (FuseKind::Lock, 0x2F),
    ] {
        let mask = line.part.fuse(kind).unwrap().mask;
        assert_eq!(
            chip.fuse(kind).unwrap() & mask,
            want & mask,
            "{kind} on the flashed chip"
        );
    }
    let stats = chip.stats();
    assert_eq!(stats.chip_erases, 1, "flashed exactly once");
}

fn assert_untouched(chip: &EmulatedChip) {
    let stats = chip.stats();
    assert_eq!(stats.chip_erases, 0);
    assert_eq!(stats.flash_pages_written, 0);
    assert_eq!(stats.eeprom_writes, 0);
    assert_eq!(stats.fuse_writes, 0);
}

/// The whole script, checked board by board, on one programmer.
fn full_script(programmer: &str) {
    let dir = tempfile::tempdir().unwrap();
    let line = prepared(dir.path(), programmer, "");
    let run = run_script(&line, "fresh,none,fresh-m16u4,fail,removed-mid-write,good");
    assert_eq!(
        run.summary.tally,
        Tally {
            count: 5,
            pass: 2,
            fail: 3
        },
        "{programmer}"
    );
    assert_eq!(run.summary.stopped, StopReason::Operator, "script done");
    assert_eq!(
        run.acknowledged,
        vec![2, 3, 4],
        "every failure acknowledged"
    );

    // The log: exactly one line per board, in order.
    let log = read_jsonl(dir.path().join("run.jsonl")).unwrap();
    assert_eq!(log.len(), 5, "{log:#?}");
    let results: Vec<_> = log.iter().map(|r| r.result).collect();
    use BoardResult::{Fail, Pass};
    assert_eq!(results, [Pass, Fail, Fail, Fail, Pass]);
    assert_eq!(
        log.iter().map(|r| r.board).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(log[0].signature, "1E 95 87");
    assert_eq!(log[1].signature, "1E 94 88", "the ATmega16U4");
    assert!(log[1].error.as_deref().unwrap().contains("ATmega16U4"));
    assert_eq!(log[1].failing_address, None);
    assert_eq!(
        log[2].failing_address.as_deref(),
        Some(format!("0x{:05X}", run.fault_addr).as_str()),
        "{:?}",
        log[2]
    );
    assert!(
        log[3].failing_address.is_some(),
        "pulled mid-write: {:?}",
        log[3]
    );
    assert!(
        log[3]
            .error
            .as_deref()
            .unwrap()
            .contains("stopped answering"),
        "{:?}",
        log[3]
    );
    assert!(
        !log[2]
            .error
            .as_deref()
            .unwrap()
            .contains("stopped answering"),
        "a bad chip is still there: {:?}",
        log[2]
    );
    let calibrations: std::collections::BTreeSet<_> =
        log.iter().map(|r| r.calibration.clone()).collect();
    assert_eq!(calibrations.len(), 5, "each board's own calibration byte");
    for r in &log {
        assert!(r.time.ends_with('Z') && r.time.len() == 20, "{}", r.time);
        assert!(r.duration_ms > 0 || r.result == Fail);
    }

    // The chips taken out of the fixture (the one pulled mid-write is gone with its hand).
    assert_eq!(run.pulled.len(), 4);
    assert_holds_image(&run.pulled[0], &line);
    assert_untouched(&run.pulled[1]);
    assert_eq!(run.pulled[1].part().id, "atmega16u4");
    assert_eq!(
        run.pulled[2].stats().chip_erases,
        1,
        "failing chip: one try"
    );
    assert_holds_image(&run.pulled[3], &line);

    // Event order: PASS/FAIL, tally; a FAIL is acknowledged before the removal wait; the
    // next board is only armed after the removal.
    let mut tallies = Vec::new();
    let mut expect_ack = false;
    let mut armed_after_removal = true;
    for e in &run.events {
        match e {
            ProductionEvent::Fail(_) => expect_ack = true,
            ProductionEvent::Tally(t) => tallies.push(*t),
            ProductionEvent::Acknowledged { .. } => expect_ack = false,
            ProductionEvent::WaitingForRemoval { .. } => {
                assert!(!expect_ack, "removal wait before the acknowledgement")
            }
            ProductionEvent::Removed { .. } => armed_after_removal = true,
            ProductionEvent::Waiting { board } => {
                assert!(armed_after_removal, "board {board} armed too early");
                armed_after_removal = false;
            }
            _ => {}
        }
    }
    assert_eq!(tallies.len(), 5);
    assert_eq!(
        tallies[2],
        Tally {
            count: 3,
            pass: 1,
            fail: 2
        }
    );
}

#[test]
fn arduinoisp_line_runs_the_whole_script() {
    full_script("avrisp");
}

#[test]
fn usbtiny_line_runs_the_whole_script() {
    full_script("usbtiny");
}

#[test]
fn usbasp_line_runs_the_whole_script() {
    full_script("usbasp");
}

#[test]
fn sim_line_runs_the_whole_script() {
    full_script("sim");
}

#[test]
fn a_board_left_in_the_fixture_is_not_flashed_again() {
    let dir = tempfile::tempdir().unwrap();
    let line = prepared(dir.path(), "sim", "");
    let socket = Socket::default().shared();
    // A bench that never takes the board out: the line must keep waiting, not re-flash.
    struct Lazy(ScriptedBench<AutoAcknowledge>, u32);
    impl isp_toolbox::production::Bench for Lazy {
        fn pause(
            &mut self,
            d: Duration,
            w: isp_toolbox::production::Waiting,
        ) -> isp_toolbox::production::Signal {
            use isp_toolbox::production::{Signal, Waiting};
            if w == Waiting::Removal {
                self.1 += 1;
                return if self.1 > 40 {
                    Signal::Stop
                } else {
                    Signal::Continue
                };
            }
            self.0.pause(d, w)
        }
        fn acknowledge(
            &mut self,
            r: &isp_toolbox::production::BoardRecord,
        ) -> isp_toolbox::production::Signal {
            self.0.acknowledge(r)
        }
    }
    let steps = parse_script("good").unwrap();
    let mut bench = Lazy(
        ScriptedBench::new(socket.clone(), &line, steps, AutoAcknowledge::default()),
        0,
    );
    let summary = run_profile(
        &line,
        &LineOptions::default(),
        &mut bench,
        &mut |_e: ProductionEvent| {},
        CancelToken::new(),
        Some(socket.clone()),
    )
    .unwrap();
    assert_eq!(summary.tally.count, 1);
    assert_eq!(bench.1, 41, "kept polling for the removal");
    let s = lock(&socket);
    assert_eq!(s.chip().unwrap().stats().chip_erases, 1, "flashed once");
    assert!(!s.reset_asserted(), "RESET released while waiting");
}

#[test]
fn the_line_blocks_after_a_failure_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let line = prepared(dir.path(), "avrisp", "");
    let socket = Socket::default().shared();
    let (commands, rx) = mpsc::channel();
    let (events_tx, events) = mpsc::channel();
    let steps = parse_script("fail,good").unwrap();
    let thread_line = line.clone();
    let thread_socket = socket.clone();
    let handle = std::thread::spawn(move || {
        let operator = OperatorBench::new(rx);
        let mut bench = ScriptedBench::new(thread_socket.clone(), &thread_line, steps, operator);
        let mut reporter = move |e: ProductionEvent| {
            let _ = events_tx.send(e);
        };
        run_profile(
            &thread_line,
            &LineOptions::default(),
            &mut bench,
            &mut reporter,
            CancelToken::new(),
            Some(thread_socket),
        )
    });
    let wait = Duration::from_secs(60);
    loop {
        match events.recv_timeout(wait).unwrap() {
            ProductionEvent::NeedsAcknowledge { board } => {
                assert_eq!(board, 1);
                break;
            }
            ProductionEvent::Pass(r) => panic!("board {} passed", r.board),
            _ => {}
        }
    }
    // Nothing happens until the operator acknowledges: no removal wait, no next board.
    assert!(
        events.recv_timeout(Duration::from_millis(400)).is_err(),
        "the line went on without an acknowledgement"
    );
    assert!(
        lock(&socket).chip().is_some(),
        "the failed board is still in"
    );
    commands.send(OperatorCommand::Acknowledge).unwrap();
    let mut passed = false;
    loop {
        match events.recv_timeout(wait).unwrap() {
            ProductionEvent::Acknowledged { board } => assert_eq!(board, 1),
            ProductionEvent::Pass(r) => {
                assert_eq!(r.board, 2);
                passed = true;
            }
            ProductionEvent::Waiting { board: 3 } => break,
            _ => {}
        }
    }
    assert!(passed);
    // The script may already be done and the line gone: a closed channel is fine.
    let _ = commands.send(OperatorCommand::Stop);
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(
        summary.tally,
        Tally {
            count: 2,
            pass: 1,
            fail: 1
        }
    );
}

#[test]
fn cancel_stops_a_waiting_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = prepared(dir.path(), "sim", "");
    let (_commands, rx) = mpsc::channel();
    let cancel = CancelToken::new();
    let thread_cancel = cancel.clone();
    let handle = std::thread::spawn(move || {
        let mut bench = OperatorBench::new(rx).with_cancel(thread_cancel.clone());
        // No board ever comes: an empty emulated socket.
        run_profile(
            &line,
            &LineOptions::default(),
            &mut bench,
            &mut |_e: ProductionEvent| {},
            thread_cancel,
            Some(Socket::default().shared()),
        )
    });
    cancel.cancel();
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(summary.stopped, StopReason::Cancelled);
    assert_eq!(summary.tally.count, 0);
}

#[test]
fn max_boards_stops_the_line_and_csv_logs_have_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut line = prepared(dir.path(), "sim", "");
    line.log_path = dir.path().join("run.csv");
    line.log_format = LogFormat::Csv;
    for _ in 0..2 {
        let socket = Socket::default().shared();
        let steps = parse_script("good,good,good").unwrap();
        let mut bench =
            ScriptedBench::new(socket.clone(), &line, steps, AutoAcknowledge::default());
        let options = LineOptions {
            max_boards: Some(2),
            ..Default::default()
        };
        let summary = run_profile(
            &line,
            &options,
            &mut bench,
            &mut |_e: ProductionEvent| {},
            CancelToken::new(),
            Some(socket),
        )
        .unwrap();
        assert_eq!(summary.stopped, StopReason::BoardLimit);
        assert_eq!(summary.tally.pass, 2);
    }
    let text = std::fs::read_to_string(dir.path().join("run.csv")).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 5, "one header, then appended: {text}");
    assert!(lines[0].starts_with("time,board,signature"));
    assert!(lines[1..].iter().all(|l| l.contains(",PASS,")));
}

#[test]
fn profiles_are_checked_before_any_board() {
    let dir = tempfile::tempdir().unwrap();
    write_images(dir.path());
    let check = |json: &str| -> Error {
        let path = dir.path().join("p.json");
        std::fs::write(&path, json).unwrap();
        Profile::load(&path).and_then(|p| p.prepare()).unwrap_err()
    };
    let base = profile_json("avrisp", "");
    // A missing image names the file.
    let e = check(&base.replace("firmware.hex", "nope.hex"));
    assert!(e.to_string().contains("nope.hex"), "{e}");
    // A critical fuse (SPIEN off) is refused without allow_critical.
    let critical = base.replace(r#""lock": "0x2F""#, r#""lock": "0x2F", "hfuse": "0xF8""#);
    let e = check(&critical);
    assert!(matches!(e, Error::Refused(_)), "{e}");
    assert!(e.to_string().contains("allow_critical"), "{e}");
    let allowed = critical.replace(
        r#""log": "run.jsonl""#,
        r#""log": "run.jsonl", "allow_critical": true"#,
    );
    let path = dir.path().join("ok.json");
    std::fs::write(&path, &allowed).unwrap();
    Profile::load(&path).unwrap().prepare().unwrap();
    // A preset for another MCU.
    let e = check(&base.replace("caterina-promicro-5v", "atmel-dfu-atmega16u4"));
    assert!(e.to_string().contains("not the ATmega32U4"), "{e}");
    // A bootloader that does not fit the boot section the high fuse selects (0xDE: 512 words).
    let e = check(&base.replace(r#""lock": "0x2F""#, r#""hfuse": "0xDE""#));
    assert!(matches!(e, Error::Image(_)), "{e}");
    // No image at all; unknown fields; an unknown programmer.
    let e = check(r#"{"programmer":"avrisp","port":"emulated","mcu":"atmega32u4"}"#);
    assert!(e.to_string().contains("no image"), "{e}");
    let e = check(&base.replace(r#""name""#, r#""nmae""#));
    assert!(e.to_string().contains("nmae"), "{e}");
    let e = check(&base.replace(r#""avrisp""#, r#""stk9000""#));
    assert!(matches!(e, Error::Unknown { .. }), "{e}");
    // Relative paths are resolved against the profile's folder, not the working directory.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let line = prepared(&sub, "avrisp", "");
    assert_eq!(line.log_path, sub.join("run.jsonl"));
    assert!(line.image.get(BOOT_START).is_some() && line.image.get(0).is_some());
}

#[test]
fn a_profile_round_trips_through_json() {
    let mut profile = Profile::new("usbasp", "usb", "atmega32u4");
    profile.image = Some("production.hex".into());
    profile.fuses = Some(isp_toolbox::production::FuseSettings {
        lfuse: Some(0xFF),
        hfuse: Some(0xD8),
        ..Default::default()
    });
    profile.sck_hz = Some(1_000_000);
    let json = profile.to_json();
    assert!(json.contains(r#""lfuse": "0xFF""#), "{json}");
    let back = Profile::from_json(&json, "test").unwrap();
    assert_eq!(back, profile);
    let numbers = Profile::from_json(
        r#"{"programmer":"usbasp","mcu":"m32u4","image":"x.hex","fuses":{"lfuse":255}}"#,
        "test",
    )
    .unwrap();
    assert_eq!(numbers.fuses.unwrap().lfuse, Some(0xFF));
    assert_eq!(numbers.port, "usb");
    assert!(numbers.verify);
}

/// The issue's budget, on virtual time (deterministic): a board's time on the line is the flash
/// job's plus at most 0.5 s of detection, with the board put in at the worst moment (just
/// after a probe found the fixture empty).
#[test]
fn detection_overhead_stays_within_half_a_second() {
    use isp_toolbox::emulate::socket::SharedSocket;
    use isp_toolbox::job::JobEvent;
    use isp_toolbox::production::{flash_board, run_line};
    use isp_toolbox::programmer::open::open;

    for programmer in ["avrisp", "usbasp"] {
        let dir = tempfile::tempdir().unwrap();
        let line = prepared(dir.path(), programmer, "");
        let socket: SharedSocket =
            Socket::with_chip(EmulatedChip::factory_fresh(&line.part)).shared();
        let mut opened = open(&line.programmer, &line.part, Some(socket.clone())).unwrap();
        let start = lock(&socket).now_ns();
        flash_board(
            opened.programmer.as_mut(),
            &line,
            &mut |_e: JobEvent| {},
            CancelToken::new(),
        )
        .unwrap();
        let job_ns = lock(&socket).now_ns() - start;
        drop(opened);

        let socket = Socket::default().shared();
        let steps = parse_script("fresh,fresh").unwrap();
        let mut bench =
            ScriptedBench::new(socket.clone(), &line, steps, AutoAcknowledge::default());
        let mut done = Vec::new();
        {
            let clock = socket.clone();
            let mut reporter = |e: ProductionEvent| {
                if let ProductionEvent::Pass(_) = e {
                    done.push(lock(&clock).now_ns());
                }
            };
            let mut opened = open(&line.programmer, &line.part, Some(socket.clone())).unwrap();
            run_line(
                opened.programmer.as_mut(),
                &line,
                &LineOptions::default(),
                &mut bench,
                &mut reporter,
                None,
                CancelToken::new(),
            )
            .unwrap();
        }
        assert_eq!(done.len(), 2, "{programmer}");
        for (finished, inserted) in done.iter().zip(bench.insertions_ns()) {
            let overhead_ns = (finished - inserted) as i64 - job_ns as i64;
            assert!(
                overhead_ns <= 500_000_000,
                "{programmer}: {overhead_ns} ns of detection overhead (job {job_ns} ns)"
            );
        }
    }
}

/// The two emulator faults the scripts use: a worn-out cell survives chip erase, and the
/// socket pulls its chip after a given number of flash pages.
#[test]
fn emulator_faults_for_the_line() {
    use isp_toolbox::part::PartDb;
    let part = PartDb::builtin().unwrap().find("atmega32u4").unwrap();
    let mut chip = EmulatedChip::factory_fresh(part);
    chip.stick_flash_bits_low(0x123, 0x81);
    assert_eq!(chip.flash()[0x123], 0x7E);
    let socket = Socket::with_chip(chip).shared();
    let line = {
        let dir = tempfile::tempdir().unwrap();
        prepared(dir.path(), "sim", "")
    };
    let mut prog = isp_toolbox::programmer::sim::SimProgrammer::new(socket.clone());
    lock(&socket).remove_after_flash_pages(1);
    let err = isp_toolbox::production::flash_board(
        &mut prog,
        &line,
        &mut |_e: isp_toolbox::job::JobEvent| {},
        CancelToken::new(),
    )
    .unwrap_err();
    assert!(lock(&socket).chip().is_none(), "pulled after one page");
    assert!(
        isp_toolbox::production::failing_address(&err).is_some(),
        "{err}"
    );
}

/// The app's way in: a line on its own thread, events on a channel, acknowledge and stop on
/// the handle.
#[test]
fn a_spawned_line_is_driven_through_its_handle() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let line = prepared(dir.path(), "sim", "");
    let wakeups = Arc::new(AtomicUsize::new(0));
    let counter = wakeups.clone();
    let handle = isp_toolbox::production::spawn_line(
        line,
        LineOptions::default(),
        Some(isp_toolbox::production::EmulatedBoards::Script(
            parse_script("fail,good").unwrap(),
        )),
        move || {
            counter.fetch_add(1, Ordering::SeqCst);
        },
    )
    .unwrap();
    let wait = Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let e = handle.events().recv_timeout(wait).unwrap();
        let needs_ack = matches!(e, ProductionEvent::NeedsAcknowledge { .. });
        seen.push(e);
        if needs_ack {
            handle.acknowledge();
        }
        if matches!(seen.last(), Some(ProductionEvent::Pass(_))) {
            break;
        }
    }
    handle.stop();
    let summary = handle.join().unwrap();
    assert_eq!(
        summary.tally,
        Tally {
            count: 2,
            pass: 1,
            fail: 1
        }
    );
    assert!(wakeups.load(Ordering::SeqCst) >= seen.len());
}
