//! Jobs: everything a user can do with a programmer and a target, independent of the GUI and CLI.
//!
//! A job runs synchronously on the caller's thread against a [`Programmer`], reporting through a
//! [`Reporter`] and checking a [`CancelToken`] between pages. The worker runs jobs on a blocking
//! thread; the CLI runs them directly.
//!
//! Event order within one job: `Stage(s)` is sent before any `Progress` of stage `s`;
//! `Progress` counts rise monotonically within a stage and end at `done == total` when the stage
//! completes; `Log` lines may come at any time.

pub mod backup;
pub mod bootloader;
pub mod detect;
pub mod fuses;
pub mod inspect;
pub mod memory;
pub mod runner;
pub mod safety;
pub mod sck;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::part::Part;
use crate::programmer::Programmer;

/// The phases of a job, in the order a bootloader flash goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Opening the programmer and entering programming mode.
    Connect,
    /// Reading the signature, fuses and lock byte.
    Detect,
    /// Saving the current fuses (and optionally memories) to a backup file.
    Backup,
    /// Chip erase.
    Erase,
    /// Writing flash or EEPROM.
    Write,
    /// Reading back and comparing.
    Verify,
    /// Reading flash or EEPROM to a file.
    Read,
    /// Writing and verifying fuses.
    Fuses,
    /// Writing and verifying lock bits.
    Lock,
    /// Leaving programming mode.
    Finish,
}

impl Stage {
    /// Label for progress bars and logs.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Connect => "Connect",
            Stage::Detect => "Detect",
            Stage::Backup => "Backup",
            Stage::Erase => "Erase",
            Stage::Write => "Write",
            Stage::Verify => "Verify",
            Stage::Read => "Read",
            Stage::Fuses => "Fuses",
            Stage::Lock => "Lock",
            Stage::Finish => "Finish",
        }
    }
}

/// Severity of a log line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Details for the curious.
    Debug,
    /// Normal progress.
    Info,
    /// A successful milestone (verified, done).
    Success,
    /// Something the user should look at.
    Warn,
    /// A failure.
    Error,
}

/// Something a job reports while it runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum JobEvent {
    /// A new stage begins.
    Stage(Stage),
    /// Progress within the current stage, in bytes (or steps).
    Progress {
        /// The stage.
        stage: Stage,
        /// Done so far.
        done: u64,
        /// Total.
        total: u64,
    },
    /// A log line.
    Log(Level, String),
}

/// Where a job sends its events.
pub trait Reporter: Send {
    /// Receives one event.
    fn event(&mut self, event: JobEvent);
}

impl<F: FnMut(JobEvent) + Send> Reporter for F {
    fn event(&mut self, event: JobEvent) {
        self(event)
    }
}

/// A shared flag that asks a running job to stop at the next page boundary.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A new, un-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancel was asked.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// Clears the flag for the next job.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Everything a job step needs: the programmer, the target part, and the reporting channels.
pub struct Ctx<'a> {
    /// The programmer, already opened.
    pub prog: &'a mut dyn Programmer,
    /// The selected target part.
    pub part: &'a Part,
    reporter: &'a mut dyn Reporter,
    cancel: CancelToken,
    /// Whether the job may lower the ISP clock when the target does not answer.
    sck_managed: bool,
    /// The signature the clock negotiation read at the clock now in use, for the job's
    /// signature check to take instead of reading it again (used once).
    fresh_signature: Option<[u8; 3]>,
}

impl<'a> Ctx<'a> {
    /// Bundles a job's inputs.
    pub fn new(
        prog: &'a mut dyn Programmer,
        part: &'a Part,
        reporter: &'a mut dyn Reporter,
        cancel: CancelToken,
    ) -> Self {
        Ctx {
            prog,
            part,
            reporter,
            cancel,
            sck_managed: true,
            fresh_signature: None,
        }
    }

    /// Starts a stage.
    pub fn stage(&mut self, stage: Stage) {
        self.reporter.event(JobEvent::Stage(stage));
    }

    /// Reports progress.
    pub fn progress(&mut self, stage: Stage, done: u64, total: u64) {
        self.reporter
            .event(JobEvent::Progress { stage, done, total });
    }

    /// Logs a line.
    pub fn log(&mut self, level: Level, text: impl Into<String>) {
        self.reporter.event(JobEvent::Log(level, text.into()));
    }

    /// Logs at info level.
    pub fn info(&mut self, text: impl Into<String>) {
        self.log(Level::Info, text);
    }

    /// Fails with [`Error::Cancelled`] if cancel was asked.
    pub fn check_cancel(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Lets the job lower the ISP clock when the target does not answer (the default), or not
    /// (the user fixed the clock).
    pub fn set_sck_managed(&mut self, managed: bool) {
        self.sck_managed = managed;
    }

    /// Enters programming mode. When Programming Enable gets no answer and the programmer can
    /// slow its clock, slows it and tries again: a chip on a slow clock (CKDIV8, 128 kHz) only
    /// answers a slow ISP clock.
    fn enter(&mut self) -> Result<()> {
        loop {
            match self.prog.enter(self.part) {
                Err(Error::NoTarget { .. }) if self.sck_managed && sck::step_down(self)? => {}
                other => return other,
            }
        }
    }

    /// Enters programming mode, runs `body`, and always leaves programming mode afterwards
    /// (releasing RESET) — also when `body` fails or is cancelled — so the chip is never left
    /// held in reset halfway through a job.
    pub fn session<T>(&mut self, body: impl FnOnce(&mut Ctx<'_>) -> Result<T>) -> Result<T> {
        self.stage(Stage::Connect);
        let info = self.prog.info();
        self.info(format!(
            "Programmer: {} on {} ({})",
            info.driver, info.port, info.firmware
        ));
        self.enter()?;
        let result = body(self);
        self.stage(Stage::Finish);
        match self.prog.leave() {
            Ok(()) => self.log(Level::Debug, "Left programming mode; RESET released"),
            Err(e) => self.log(
                Level::Warn,
                format!("Could not leave programming mode cleanly: {e}"),
            ),
        }
        result
    }
}
