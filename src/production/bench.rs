//! The operator at the bench, as the line sees them: the line pauses between probes through
//! the bench (so an emulated bench can let virtual time pass), asks it for an acknowledgement
//! after a failure, and stops when it says so.

use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use super::log::BoardRecord;
use crate::job::CancelToken;

/// What the line is waiting for while it pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// A board to be put in the fixture.
    Board,
    /// The board in the fixture to be taken out.
    Removal,
}

/// The operator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Go on.
    Continue,
    /// Stop the line.
    Stop,
}

/// The operator side of a production line.
pub trait Bench: Send {
    /// Waits `duration` between probes. Returns [`Signal::Stop`] when the operator asked to
    /// stop.
    fn pause(&mut self, duration: Duration, waiting: Waiting) -> Signal;

    /// Blocks until the operator has acknowledged the failed board `record` (or asked to
    /// stop). The line never arms for the next board before this returns `Continue`.
    fn acknowledge(&mut self, record: &BoardRecord) -> Signal;

    /// The time durations are measured with (monotonic; an emulated bench returns its
    /// virtual time).
    fn now(&self) -> Duration {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }

    /// Whether the operator asked to stop (checked between steps without waiting). The line
    /// also calls it just before it shows a failure: a bench may drop acknowledgements that
    /// came before, so only one given after the failure was shown counts.
    fn stop_requested(&mut self) -> bool {
        false
    }
}

/// What an operator sends from the GUI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorCommand {
    /// "I have seen the failure" (the board may be taken out and the line re-armed).
    Acknowledge,
    /// Stop the line.
    Stop,
}

/// A bench fed by a channel: the GUI keeps the sender, the line's thread owns this. Closing
/// the channel (dropping the sender) stops the line, as does the cancel token.
#[derive(Debug)]
pub struct OperatorBench {
    commands: Receiver<OperatorCommand>,
    cancel: Option<CancelToken>,
    stopped: bool,
}

/// How often blocking waits look at the cancel token.
const SLICE: Duration = Duration::from_millis(50);

impl OperatorBench {
    /// A bench reading `commands`.
    pub fn new(commands: Receiver<OperatorCommand>) -> Self {
        OperatorBench {
            commands,
            cancel: None,
            stopped: false,
        }
    }

    /// Also stops when `cancel` is cancelled (the job's cancel button).
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    fn cancelled(&self) -> bool {
        self.stopped || self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }

    /// Waits up to `timeout` for a command; `None` on timeout.
    fn next(&mut self, timeout: Duration) -> Option<OperatorCommand> {
        match self.commands.recv_timeout(timeout) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.stopped = true;
                // Do not spin on a closed channel.
                std::thread::sleep(timeout.min(SLICE));
                None
            }
        }
    }
}

impl Bench for OperatorBench {
    fn pause(&mut self, duration: Duration, _waiting: Waiting) -> Signal {
        let deadline = Instant::now() + duration;
        loop {
            if self.cancelled() {
                return Signal::Stop;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Signal::Continue;
            }
            // An acknowledgement nobody asked for is ignored.
            if let Some(OperatorCommand::Stop) = self.next(left.min(SLICE)) {
                self.stopped = true;
            }
        }
    }

    fn acknowledge(&mut self, _record: &BoardRecord) -> Signal {
        // The line called `stop_requested` just before showing the failure, which dropped
        // acknowledgements sent earlier (a double click on the last one).
        loop {
            if self.cancelled() {
                return Signal::Stop;
            }
            match self.next(SLICE) {
                Some(OperatorCommand::Acknowledge) => return Signal::Continue,
                Some(OperatorCommand::Stop) => self.stopped = true,
                None => {}
            }
        }
    }

    fn stop_requested(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(OperatorCommand::Stop) | Err(TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
                Ok(OperatorCommand::Acknowledge) => {}
                Err(TryRecvError::Empty) => break,
            }
        }
        self.cancelled()
    }
}
