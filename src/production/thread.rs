//! A line on its own thread, for the app: events come back on a channel (with a callback to
//! wake the UI), acknowledgements and stop go in through the handle.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

use std::time::Duration;

use super::bench::{Bench, OperatorBench, OperatorCommand, Signal, Waiting};
use super::emulated::{ScriptStep, ScriptedBench};
use super::log::BoardRecord;
use super::profile::PreparedLine;
use super::run::{LineOptions, LineSummary, ProductionEvent, run_profile};
use crate::emulate::socket::{SharedSocket, Socket, lock};
use crate::error::{Error, Result};
use crate::job::CancelToken;

/// A running line.
pub struct LineHandle {
    commands: Sender<OperatorCommand>,
    events: Receiver<ProductionEvent>,
    cancel: CancelToken,
    thread: Option<JoinHandle<Result<LineSummary>>>,
}

/// Who puts boards in the emulated fixture of a line on port `emulated`.
#[derive(Debug, Clone)]
pub enum EmulatedBoards {
    /// A script plays the operator's hands (see [`super::emulated`]).
    Script(Vec<ScriptStep>),
    /// The caller does, through this socket (the app's fixture buttons); pauses between
    /// probes are real time.
    Hands(SharedSocket),
}

/// Starts `line` on a new thread. `notify` is called after every event is queued (the app
/// passes `ctx.request_repaint`). On port `emulated`, `emulated` says who puts boards in (a
/// single fresh board when `None`); elsewhere it is ignored.
pub fn spawn_line(
    line: PreparedLine,
    options: LineOptions,
    emulated: Option<EmulatedBoards>,
    notify: impl Fn() + Send + 'static,
) -> Result<LineHandle> {
    let (commands, command_rx) = mpsc::channel();
    let (event_tx, events) = mpsc::channel();
    let cancel = CancelToken::new();
    let thread_cancel = cancel.clone();
    let thread = std::thread::Builder::new()
        .name("production-line".into())
        .spawn(move || {
            let mut reporter = move |e: ProductionEvent| {
                let _ = event_tx.send(e);
                notify();
            };
            let operator = OperatorBench::new(command_rx).with_cancel(thread_cancel.clone());
            let emulated = line.programmer.is_emulated().then(|| {
                emulated.unwrap_or_else(|| EmulatedBoards::Script(vec![ScriptStep::Fresh]))
            });
            let mut bench = operator;
            match emulated {
                Some(EmulatedBoards::Script(steps)) => {
                    let socket = Socket::default().shared();
                    let mut scripted = ScriptedBench::new(socket.clone(), &line, steps, bench);
                    run_profile(
                        &line,
                        &options,
                        &mut scripted,
                        &mut reporter,
                        thread_cancel,
                        Some(socket),
                    )
                }
                Some(EmulatedBoards::Hands(socket)) => {
                    let mut hands = VirtualClockBench {
                        socket: socket.clone(),
                        inner: bench,
                    };
                    run_profile(
                        &line,
                        &options,
                        &mut hands,
                        &mut reporter,
                        thread_cancel,
                        Some(socket),
                    )
                }
                None => run_profile(
                    &line,
                    &options,
                    &mut bench,
                    &mut reporter,
                    thread_cancel,
                    None,
                ),
            }
        })
        .map_err(|e| Error::invalid(format!("cannot start the production line thread: {e}")))?;
    Ok(LineHandle {
        commands,
        events,
        cancel,
        thread: Some(thread),
    })
}

/// The operator at an emulated fixture they fill by hand (the app's buttons): pauses are real
/// time and also pass on the socket, and durations are the socket's virtual time, what the
/// real programmer and chip would take (the emulator itself runs much faster).
struct VirtualClockBench {
    socket: SharedSocket,
    inner: OperatorBench,
}

impl Bench for VirtualClockBench {
    fn pause(&mut self, duration: Duration, waiting: Waiting) -> Signal {
        let signal = self.inner.pause(duration, waiting);
        lock(&self.socket).advance(duration);
        signal
    }

    fn acknowledge(&mut self, record: &BoardRecord) -> Signal {
        self.inner.acknowledge(record)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(lock(&self.socket).now_ns())
    }

    fn stop_requested(&mut self) -> bool {
        self.inner.stop_requested()
    }
}

impl LineHandle {
    /// The operator acknowledges the failure on screen.
    pub fn acknowledge(&self) {
        let _ = self.commands.send(OperatorCommand::Acknowledge);
    }

    /// Stops the line at the next probe or page boundary (a board being flashed fails as
    /// cancelled and is logged).
    pub fn stop(&self) {
        let _ = self.commands.send(OperatorCommand::Stop);
        self.cancel.cancel();
    }

    /// Events queued so far, without waiting.
    pub fn drain(&self) -> Vec<ProductionEvent> {
        let mut out = Vec::new();
        loop {
            match self.events.try_recv() {
                Ok(e) => out.push(e),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
            }
        }
    }

    /// The event channel, for callers that want to block on it.
    pub fn events(&self) -> &Receiver<ProductionEvent> {
        &self.events
    }

    /// Whether the line's thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the line to end and returns how it ended.
    pub fn join(mut self) -> Result<LineSummary> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::invalid("the production line thread panicked"))),
            None => Err(Error::invalid("the production line was already joined")),
        }
    }
}

impl Drop for LineHandle {
    /// Dropping the handle stops the line (the thread ends on its own).
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}
