//! A fuse write is given the datasheet's 4.5 ms and then read back; the read-back is the
//! completion check. A chip slower than the datasheet still ends written and verified (the
//! mismatching read is followed by RDY/BSY polls and a second read), and a locked chip that
//! ignores the write ends in a verify error naming the byte, with nothing after it written.

use std::time::Duration;

use isp_toolbox::emulate::chip::{BusyTimes, ChipConfig, EmulatedChip};
use isp_toolbox::emulate::socket::{SharedSocket, Socket, lock};
use isp_toolbox::job::runner::{JobKind, JobOutcome, JobRequest, run_on};
use isp_toolbox::job::safety::{Approval, FuseValues};
use isp_toolbox::job::{CancelToken, JobEvent};
use isp_toolbox::part::{FuseKind, Part, PartDb};
use isp_toolbox::programmer::open::{EMULATED_PORT, ProgrammerSpec};
use isp_toolbox::programmer::usbasp;
use isp_toolbox::{Error, Result};

fn m32u4() -> &'static Part {
    PartDb::builtin().unwrap().find("m32u4").unwrap()
}

/// Writes hfuse 0xD9 and efuse 0xFB (JTAG off, BOD 2.6 V) with the engine on an emulated
/// USBasp holding `chip`.
fn write_fuses(chip: EmulatedChip) -> (Result<JobOutcome>, SharedSocket) {
    let part = m32u4();
    let socket = Socket::with_chip(chip).shared();
    let (mut driver, _device) =
        usbasp::emulated(part, socket.clone(), usbasp::EmulatedOptions::default()).unwrap();
    let values: FuseValues = [(FuseKind::High, 0xD9), (FuseKind::Extended, 0xFB)]
        .into_iter()
        .collect();
    let request = JobRequest {
        programmer: ProgrammerSpec::new("usbasp", EMULATED_PORT),
        part: part.id.clone(),
        kind: JobKind::WriteFuses {
            values,
            approval: Approval {
                confirmed_token: None,
                accept_high: true,
                force_critical: false,
            },
        },
    };
    let mut quiet = |_event: JobEvent| {};
    let outcome = run_on(&request, &mut driver, &mut quiet, CancelToken::new());
    (outcome, socket)
}

/// An ATmega32U4 on the default board with `config`'s differences.
fn chip(config: ChipConfig) -> EmulatedChip {
    EmulatedChip::new(m32u4(), config).unwrap()
}

fn fuse(socket: &SharedSocket, kind: FuseKind) -> u8 {
    lock(socket).chip().unwrap().fuse(kind).unwrap()
}

#[test]
fn a_chip_on_datasheet_time_is_written_and_read_back_with_no_timing_violation() {
    let (outcome, socket) = write_fuses(chip(ChipConfig::default()));
    let Ok(JobOutcome::FusesWritten(report)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(report.written, [FuseKind::High, FuseKind::Extended]);
    assert_eq!(
        (
            fuse(&socket, FuseKind::High),
            fuse(&socket, FuseKind::Extended)
        ),
        (0xD9, 0xFB)
    );
    let s = lock(&socket);
    let stats = s.chip().unwrap().stats();
    assert_eq!(stats.busy_violations, 0);
    // Only the bytes written were read before: no lock or lfuse read.
    assert_eq!(
        report.before.keys().copied().collect::<Vec<_>>(),
        [FuseKind::High, FuseKind::Extended]
    );
}

#[test]
fn a_chip_slower_than_the_datasheet_is_polled_and_read_again() {
    let part = m32u4();
    let slow = BusyTimes {
        fuse: Duration::from_millis(8),
        ..BusyTimes::datasheet(part)
    };
    let (outcome, socket) = write_fuses(chip(ChipConfig {
        busy_times: Some(slow),
        ..ChipConfig::default()
    }));
    assert!(
        matches!(outcome, Ok(JobOutcome::FusesWritten(_))),
        "{outcome:?}"
    );
    assert_eq!(
        (
            fuse(&socket, FuseKind::High),
            fuse(&socket, FuseKind::Extended)
        ),
        (0xD9, 0xFB)
    );
    // Each early read-back was ignored by the busy chip (one per byte); nothing else was.
    let s = lock(&socket);
    assert_eq!(s.chip().unwrap().stats().busy_violations, 2);
    assert_eq!(s.chip().unwrap().stats().fuse_writes, 2);
}

#[test]
fn a_locked_chip_that_ignores_the_write_fails_verify_on_that_byte_and_stops() {
    // LB = 10: fuse writes are ignored.
    let locked = chip(ChipConfig {
        lock: 0xFE,
        ..ChipConfig::default()
    });
    let hfuse_before = locked.fuse(FuseKind::High).unwrap();
    let efuse_before = locked.fuse(FuseKind::Extended).unwrap();
    let (outcome, socket) = write_fuses(locked);
    let err = outcome.unwrap_err();
    match &err {
        Error::FuseVerify {
            fuse, wrote, read, ..
        } => {
            assert_eq!(*fuse, "hfuse");
            assert_eq!((*wrote, *read), (0xD9, hfuse_before));
        }
        other => panic!("expected a fuse verify error, got {other}"),
    }
    assert!(err.hint().is_some_and(|h| h.contains("locked")), "{err}");
    // The efuse write that would have followed was never sent.
    assert_eq!(fuse(&socket, FuseKind::Extended), efuse_before);
    assert_eq!(
        lock(&socket).chip().unwrap().stats().locked_writes_ignored,
        1
    );
}
