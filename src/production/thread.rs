//! A line on its own thread, for the app: events come back on a channel (with a callback to
//! wake the UI), acknowledgements and stop go in through the handle.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

use super::bench::{OperatorBench, OperatorCommand};
use super::emulated::{ScriptStep, ScriptedBench};
use super::profile::PreparedLine;
use super::run::{LineOptions, LineSummary, ProductionEvent, run_profile};
use crate::emulate::socket::Socket;
use crate::error::{Error, Result};
use crate::job::CancelToken;

/// A running line.
pub struct LineHandle {
    commands: Sender<OperatorCommand>,
    events: Receiver<ProductionEvent>,
    cancel: CancelToken,
    thread: Option<JoinHandle<Result<LineSummary>>>,
}

/// Starts `line` on a new thread. `notify` is called after every event is queued (the app
/// passes `ctx.request_repaint`). On port `emulated`, `script` says which boards arrive (see
/// [`super::emulated`]); elsewhere it is ignored.
pub fn spawn_line(
    line: PreparedLine,
    options: LineOptions,
    script: Option<Vec<ScriptStep>>,
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
            if line.programmer.is_emulated() {
                let socket = Socket::default().shared();
                let steps = script.unwrap_or_else(|| vec![ScriptStep::Fresh]);
                let mut bench = ScriptedBench::new(socket.clone(), &line, steps, operator);
                run_profile(
                    &line,
                    &options,
                    &mut bench,
                    &mut reporter,
                    thread_cancel,
                    Some(socket),
                )
            } else {
                let mut bench = operator;
                run_profile(
                    &line,
                    &options,
                    &mut bench,
                    &mut reporter,
                    thread_cancel,
                    None,
                )
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
