//! The worker: event order, busy, cancel mid-flash, and a failing job, on the emulated board.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use isp_toolbox::emulate::demo::demo_chip;
use isp_toolbox::emulate::socket::{Socket, lock};
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::job::Stage;
use isp_toolbox::job::runner::{JobKind, JobOutcome, JobRequest};
use isp_toolbox::part::PartDb;
use isp_toolbox::programmer::open::ProgrammerSpec;
use isp_toolbox::worker::{Worker, WorkerEvent};

const WAIT: Duration = Duration::from_secs(20);

fn request(kind: JobKind) -> JobRequest {
    JobRequest {
        programmer: ProgrammerSpec::new("sim", "emulated"),
        part: "atmega32u4".into(),
        kind,
    }
}

fn flash_32k() -> JobKind {
    let mut image = MemoryImage::new();
    image
        .insert(
            0,
            &(0..32768u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
    JobKind::FlashImage {
        image,
        erase: true,
        erased_before: false,
        verify: true,
    }
}

fn events_until_finished(worker: &Worker, id: u64) -> Vec<WorkerEvent> {
    let mut events = Vec::new();
    loop {
        let e = worker
            .recv_timeout(WAIT)
            .expect("the worker stopped sending events");
        if e.id() != id {
            continue;
        }
        let done = matches!(e, WorkerEvent::Finished { .. });
        events.push(e);
        if done {
            return events;
        }
    }
}

#[test]
fn events_come_in_the_documented_order() {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let board = Socket::with_chip(demo_chip(part)).shared();
    let repaints = Arc::new(AtomicUsize::new(0));
    let counter = repaints.clone();
    let worker = Worker::spawn(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let id = worker.run(request(flash_32k()), Some(board.clone()));
    let events = events_until_finished(&worker, id);
    assert!(
        matches!(events.first(), Some(WorkerEvent::Started { .. })),
        "{:?}",
        events.first()
    );
    assert!(
        matches!(
            events.last(),
            Some(WorkerEvent::Finished {
                result: Ok(JobOutcome::Flashed { verified: true, .. }),
                ..
            })
        ),
        "{:?}",
        events.last()
    );
    // Every Progress follows the Stage it belongs to, and counts never go down within a stage.
    let mut stage = None;
    let mut last_done = 0;
    for e in &events {
        match e {
            WorkerEvent::Stage { name, .. } => {
                stage = Some(*name);
                last_done = 0;
            }
            WorkerEvent::Progress {
                stage: s,
                done,
                total,
                ..
            } => {
                assert_eq!(
                    Some(*s),
                    stage,
                    "progress of a stage that was not announced"
                );
                assert!(*done >= last_done && done <= total);
                last_done = *done;
            }
            _ => {}
        }
    }
    let stages: Vec<Stage> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Stage { name, .. } => Some(*name),
            _ => None,
        })
        .collect();
    let pos = |s| stages.iter().position(|x| *x == s).unwrap();
    assert!(pos(Stage::Connect) < pos(Stage::Erase));
    assert!(pos(Stage::Erase) < pos(Stage::Write));
    assert!(pos(Stage::Write) < pos(Stage::Verify));
    assert_eq!(stages.last(), Some(&Stage::Finish));
    // The hook runs right after each event is queued, so the last call may still be under
    // way when the test has read the event: wait for it (bounded).
    let deadline = std::time::Instant::now() + WAIT;
    while repaints.load(Ordering::SeqCst) < events.len() && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(
        repaints.load(Ordering::SeqCst) >= events.len(),
        "notify after every event"
    );
    assert_eq!(
        lock(&board).chip().unwrap().flash()[1000],
        (1000 % 251) as u8
    );
}

/// A notify hook that blocks the job thread at its Nth call until the test releases it.
struct Gate {
    calls: AtomicUsize,
    at: usize,
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn new(at: usize) -> Arc<Gate> {
        Arc::new(Gate {
            calls: AtomicUsize::new(0),
            at,
            open: Mutex::new(false),
            cv: Condvar::new(),
        })
    }
    fn notify(&self) {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
        }
    }
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

#[test]
fn cancel_mid_flash_stops_between_pages_and_releases_the_chip() {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let board = Socket::with_chip(demo_chip(part)).shared();
    let gate = Gate::new(60);
    let hook = gate.clone();
    let worker = Worker::spawn(move || hook.notify()).unwrap();
    let id = worker.run(request(flash_32k()), Some(board.clone()));
    // Read events up to the gate: the job is now paused inside the write stage.
    let mut seen = Vec::new();
    while seen.len() < 60 {
        seen.push(worker.recv_timeout(WAIT).unwrap());
    }
    assert!(
        matches!(
            seen.last(),
            Some(WorkerEvent::Progress {
                stage: Stage::Write,
                ..
            })
        ),
        "{:?}",
        seen.last()
    );
    worker.cancel(Some(id));
    gate.release();
    let rest = events_until_finished(&worker, id);
    match rest.last() {
        Some(WorkerEvent::Finished { result: Err(f), .. }) => assert!(f.cancelled, "{f:?}"),
        other => panic!("expected a cancelled job, got {other:?}"),
    }
    assert!(rest.iter().any(
        |e| matches!(e, WorkerEvent::Log { text, .. } if text.contains("page(s) were written"))
    ));
    let s = lock(&board);
    assert!(!s.reset_asserted(), "RESET released after cancel");
    let flash = s.chip().unwrap().flash();
    assert_eq!(flash[0], 0, "the first pages were written");
    assert_eq!(flash[32767], 0xFF, "the last page was not");
}

#[test]
fn a_second_job_on_the_same_port_is_refused_as_busy() {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let board = Socket::with_chip(demo_chip(part)).shared();
    let gate = Gate::new(5);
    let hook = gate.clone();
    let worker = Worker::spawn(move || hook.notify()).unwrap();
    let first = worker.run(request(flash_32k()), Some(board.clone()));
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(worker.recv_timeout(WAIT).unwrap());
    }
    // The first job is paused mid-way; a second on the same port must be refused.
    let second = worker.run(request(JobKind::ReadFuses), Some(board.clone()));
    let refusal = events_until_finished(&worker, second);
    assert_eq!(refusal.len(), 1, "a refused job only gets Finished");
    match &refusal[0] {
        WorkerEvent::Finished { result: Err(f), .. } => {
            assert!(f.busy && f.message.contains("busy"), "{f:?}")
        }
        other => panic!("{other:?}"),
    }
    gate.release();
    let done = events_until_finished(&worker, first);
    assert!(matches!(
        done.last(),
        Some(WorkerEvent::Finished { result: Ok(_), .. })
    ));
}

#[test]
fn failures_carry_message_hint_and_exit_code() {
    let worker = Worker::spawn(|| {}).unwrap();
    let part = PartDb::builtin().unwrap().find("m328p").unwrap();
    // The selected MCU is an ATmega32U4 but the board holds an ATmega328P.
    let board = Socket::with_chip(demo_chip(part)).shared();
    let id = worker.run(request(JobKind::Erase), Some(board.clone()));
    let events = events_until_finished(&worker, id);
    match events.last() {
        Some(WorkerEvent::Finished { result: Err(f), .. }) => {
            assert!(f.message.contains("ATmega328P"), "{f:?}");
            assert_eq!(f.exit_code, 2);
            assert!(f.hint.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lock(&board).chip().unwrap().stats().chip_erases,
        0,
        "wrong MCU: nothing erased"
    );
}
