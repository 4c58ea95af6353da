//! The production loop: wait for a board, flash it, report PASS or FAIL, wait for the
//! operator's acknowledgement after a FAIL, wait for the board to be taken out, arm again.
//!
//! Event order for each board: `Waiting`, `BoardFound`, the flash job's `Job(..)` events (none
//! for a wrong MCU), `Pass` or `Fail`, `Tally`; after a FAIL `NeedsAcknowledge` then
//! `Acknowledged`; then `WaitingForRemoval` and `Removed`. The board's line is in the run log
//! before `Pass`/`Fail` is sent.

use std::time::Duration;

use super::bench::{Bench, Signal, Waiting};
use super::flash::{failing_address, flash_board};
use super::log::{BoardRecord, BoardResult, RunLog};
use super::presence::{Debounce, PresenceOptions, Probe, probe};
use super::profile::PreparedLine;
use crate::emulate::socket::SharedSocket;
use crate::error::{Error, Result};
use crate::job::{CancelToken, JobEvent, Level, Reporter, sck};
use crate::part::PartDb;
use crate::programmer::Programmer;
use crate::programmer::open::open;
use crate::util::hex_bytes;

/// How the line runs.
#[derive(Debug, Clone, Default)]
pub struct LineOptions {
    /// Probe timing and debouncing.
    pub presence: PresenceOptions,
    /// Stop after this many boards (PASS or FAIL).
    pub max_boards: Option<u64>,
}

/// Boards so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Boards flashed (or tried).
    pub count: u64,
    /// Passed.
    pub pass: u64,
    /// Failed.
    pub fail: u64,
}

/// Something the line reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum ProductionEvent {
    /// Armed: waiting for board number `board` to be put in the fixture.
    Waiting {
        /// The number the next board will get.
        board: u64,
    },
    /// A board answered (confirmed by two probes).
    BoardFound {
        /// Its number.
        board: u64,
        /// Its signature.
        signature: [u8; 3],
        /// Its first calibration byte.
        calibration: u8,
    },
    /// An event of the flash job (stage, progress, log line).
    Job(JobEvent),
    /// The board passed.
    Pass(BoardRecord),
    /// The board failed; the record has the error and the first failing address, if any.
    Fail(BoardRecord),
    /// The running count.
    Tally(Tally),
    /// The line waits for the operator to acknowledge the failure of `board`.
    NeedsAcknowledge {
        /// The failed board.
        board: u64,
    },
    /// The operator acknowledged it.
    Acknowledged {
        /// The failed board.
        board: u64,
    },
    /// The line waits for `board` to be taken out.
    WaitingForRemoval {
        /// The board in the fixture.
        board: u64,
    },
    /// It was taken out.
    Removed {
        /// The board.
        board: u64,
    },
}

/// Where the line sends its events.
pub trait ProductionReporter: Send {
    /// Receives one event.
    fn event(&mut self, event: ProductionEvent);
}

impl<F: FnMut(ProductionEvent) + Send> ProductionReporter for F {
    fn event(&mut self, event: ProductionEvent) {
        self(event)
    }
}

/// Why the line stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The operator (or the bench's script) asked to stop.
    Operator,
    /// The cancel token was cancelled.
    Cancelled,
    /// `max_boards` boards were done.
    BoardLimit,
}

/// How a line run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LineSummary {
    /// The boards.
    pub tally: Tally,
    /// Why it stopped.
    pub stopped: StopReason,
}

/// Forwards the flash job's events as [`ProductionEvent::Job`].
struct JobEvents<'a>(&'a mut dyn ProductionReporter);

impl Reporter for JobEvents<'_> {
    fn event(&mut self, event: JobEvent) {
        self.0.event(ProductionEvent::Job(event));
    }
}

/// Opens the profile's programmer and run log and runs the line until the operator stops it,
/// the cancel token is cancelled or `max_boards` boards are done. `board` is the emulated
/// socket for port `emulated` (see [`super::emulated::ScriptedBench`]).
pub fn run_profile(
    line: &PreparedLine,
    options: &LineOptions,
    bench: &mut dyn Bench,
    reporter: &mut dyn ProductionReporter,
    cancel: CancelToken,
    board: Option<SharedSocket>,
) -> Result<LineSummary> {
    let mut log = RunLog::open(&line.log_path, line.log_format)?;
    let mut opened = open(&line.programmer, &line.part, board)?;
    run_line(
        opened.programmer.as_mut(),
        line,
        options,
        bench,
        reporter,
        Some(&mut log),
        cancel,
    )
}

/// Runs the line on an open programmer. Returns when the operator stops it, `cancel` is
/// cancelled, `max_boards` boards are done, or the programmer itself fails while probing
/// (the error). A board's failure is reported, logged and acknowledged, never returned.
pub fn run_line(
    prog: &mut dyn Programmer,
    line: &PreparedLine,
    options: &LineOptions,
    bench: &mut dyn Bench,
    reporter: &mut dyn ProductionReporter,
    mut log: Option<&mut RunLog>,
    cancel: CancelToken,
) -> Result<LineSummary> {
    let mut tally = Tally::default();
    let stop = |tally: Tally, stopped| Ok(LineSummary { tally, stopped });
    loop {
        if options.max_boards.is_some_and(|max| tally.count >= max) {
            return stop(tally, StopReason::BoardLimit);
        }
        let board = tally.count + 1;
        reporter.event(ProductionEvent::Waiting { board });
        slow_clock_for_probing(prog, line)?;
        let (signature, calibration) = match wait_for(
            prog,
            line,
            options,
            bench,
            reporter,
            &cancel,
            Waiting::Board,
        )? {
            Some(Probe::Present {
                signature,
                calibration,
            }) => (signature, calibration),
            _ => return stop(tally, stopped_by(&cancel)),
        };
        reporter.event(ProductionEvent::BoardFound {
            board,
            signature,
            calibration,
        });
        let started = bench.now();
        let outcome = if signature == line.part.signature {
            flash_board(prog, line, &mut JobEvents(reporter), cancel.clone())
                .map(|_| ())
                .map_err(|e| explain_lost_board(prog, line, e))
        } else {
            Err(wrong_mcu(line, signature))
        };
        let duration = bench.now().saturating_sub(started);
        let record = record(board, signature, calibration, &outcome, duration);
        tally.count += 1;
        match record.result {
            BoardResult::Pass => tally.pass += 1,
            BoardResult::Fail => tally.fail += 1,
        }
        if let Some(log) = log.as_deref_mut() {
            log.append(&record)?;
        }
        let failed = record.result == BoardResult::Fail;
        // Before the failure is shown: drops stale acknowledgements, notes a stop request.
        let stop_asked = failed && bench.stop_requested();
        reporter.event(if failed {
            ProductionEvent::Fail(record.clone())
        } else {
            ProductionEvent::Pass(record.clone())
        });
        reporter.event(ProductionEvent::Tally(tally));
        if cancel.is_cancelled() || matches!(outcome, Err(Error::Cancelled)) {
            return stop(tally, StopReason::Cancelled);
        }
        if options.max_boards.is_some_and(|max| tally.count >= max) {
            return stop(tally, StopReason::BoardLimit);
        }
        if failed {
            if stop_asked {
                return stop(tally, stopped_by(&cancel));
            }
            reporter.event(ProductionEvent::NeedsAcknowledge { board });
            if bench.acknowledge(&record) == Signal::Stop {
                return stop(tally, stopped_by(&cancel));
            }
            reporter.event(ProductionEvent::Acknowledged { board });
        }
        reporter.event(ProductionEvent::WaitingForRemoval { board });
        match wait_for(
            prog,
            line,
            options,
            bench,
            reporter,
            &cancel,
            Waiting::Removal,
        )? {
            Some(Probe::Absent) => reporter.event(ProductionEvent::Removed { board }),
            _ => return stop(tally, stopped_by(&cancel)),
        }
    }
}

fn stopped_by(cancel: &CancelToken) -> StopReason {
    if cancel.is_cancelled() {
        StopReason::Cancelled
    } else {
        StopReason::Operator
    }
}

/// Unconfirmed sightings of a chip before the operator is told.
const UNSTABLE_WARNING_AFTER: u32 = 4;

/// The flash job raises the ISP clock for the chip it just set up; the next board may be
/// factory-fresh (1 MHz), so probing starts slow again.
fn slow_clock_for_probing(prog: &mut dyn Programmer, line: &PreparedLine) -> Result<()> {
    if prog.info().capabilities.set_sck {
        let wanted = line.programmer.sck_hz.unwrap_or(sck::START_SCK_HZ);
        if prog.sck_hz() != Some(wanted) {
            prog.set_sck(wanted)?;
        }
    }
    Ok(())
}

/// Probes until `what` is confirmed. `None` when the operator stopped or cancel was asked.
/// A chip that answers but never reads the same signature twice, and programmer errors, are
/// reported as warnings so the operator is not left looking at a silent screen.
fn wait_for(
    prog: &mut dyn Programmer,
    line: &PreparedLine,
    options: &LineOptions,
    bench: &mut dyn Bench,
    reporter: &mut dyn ProductionReporter,
    cancel: &CancelToken,
    what: Waiting,
) -> Result<Option<Probe>> {
    let presence = &options.presence;
    let mut debounce = Debounce::new();
    let mut errors = 0u32;
    let mut unstable = 0u32;
    let mut warn = |text: String| {
        reporter.event(ProductionEvent::Job(JobEvent::Log(Level::Warn, text)));
    };
    loop {
        if cancel.is_cancelled() || bench.stop_requested() {
            return Ok(None);
        }
        let pause = match probe(prog, &line.part) {
            Ok(seen) => {
                errors = 0;
                let streak = debounce.feed(seen);
                if let Probe::Present { signature, .. } = seen
                    && streak == 1
                {
                    unstable += 1;
                    if unstable == UNSTABLE_WARNING_AFTER {
                        warn(format!(
                            "a chip answers but its signature does not read the same twice (last {}): check the fixture's contacts, or set a slower \"sck_hz\" in the profile",
                            hex_bytes(&signature)
                        ));
                    }
                }
                let wanted = matches!(
                    (what, seen),
                    (Waiting::Board, Probe::Present { .. }) | (Waiting::Removal, Probe::Absent)
                );
                if wanted && streak >= presence.confirmations.max(1) {
                    return Ok(Some(seen));
                }
                if wanted {
                    presence.confirm_delay
                } else {
                    presence.poll_interval
                }
            }
            Err(e) => {
                errors += 1;
                if errors >= presence.max_probe_errors.max(1) {
                    return Err(e);
                }
                warn(format!("probe failed ({e}); trying again"));
                debounce.reset();
                presence.poll_interval
            }
        };
        if bench.pause(pause, what) == Signal::Stop {
            return Ok(None);
        }
    }
}

/// After a failed job, one probe tells a bad board from a board that is no longer there
/// (pulled out mid-write, or lost contact): the error then says so.
fn explain_lost_board(prog: &mut dyn Programmer, line: &PreparedLine, error: Error) -> Error {
    if matches!(error, Error::Cancelled) {
        return error;
    }
    match probe(prog, &line.part) {
        Ok(Probe::Absent) => Error::Interrupted {
            during: "flashing the board".into(),
            state: "the board stopped answering (taken out of the fixture, or lost contact): its flash is incomplete".into(),
            source: Box::new(error),
            hint: "put the board back and run it again; if this repeats, check the fixture's contacts and power".into(),
        },
        _ => error,
    }
}

fn wrong_mcu(line: &PreparedLine, signature: [u8; 3]) -> Error {
    let found = PartDb::builtin()
        .map(|db| {
            db.by_signature(signature)
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Error::WrongTarget {
        expected: line.part.name.clone(),
        found: if found.is_empty() {
            "an unknown part".into()
        } else {
            found.join(" / ")
        },
        signature: hex_bytes(&signature),
    }
}

fn record(
    board: u64,
    signature: [u8; 3],
    calibration: u8,
    outcome: &Result<()>,
    duration: Duration,
) -> BoardRecord {
    let (result, failing, error) = match outcome {
        Ok(()) => (BoardResult::Pass, None, None),
        Err(e) => (
            BoardResult::Fail,
            failing_address(e).map(|a| format!("0x{a:05X}")),
            Some(e.to_string()),
        ),
    };
    BoardRecord {
        time: crate::util::timestamp::now_utc(),
        board,
        signature: hex_bytes(&signature),
        calibration: format!("0x{calibration:02X}"),
        result,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        failing_address: failing,
        error,
    }
}
