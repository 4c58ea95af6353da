//! Production line mode: flash many boards in a row with one profile.
//!
//! A [`Profile`] (JSON, shareable) names the programmer, the MCU, the image (or firmware and
//! bootloader to merge), fuses, lock, verify, clock and an optional EEPROM image;
//! [`Profile::prepare`] checks it all before any board is touched. [`run_line`] (or
//! [`run_profile`], which also opens the programmer and the log) then loops: wait until a board
//! answers ([`presence`]), flash it ([`flash::flash_board`]), log one line ([`log::RunLog`]),
//! report PASS or FAIL, wait for the operator's acknowledgement after a FAIL ([`Bench`]), wait
//! until the board is taken out, arm for the next one.
//!
//! Nothing here knows the GUI or the CLI: the GUI drives a line on a thread with an
//! [`OperatorBench`] fed by a channel and a [`ProductionReporter`] that forwards events;
//! the CLI answers acknowledgements from stdin.

pub mod bench;
pub mod emulated;
pub mod flash;
pub mod log;
pub mod presence;
pub mod profile;
pub mod run;
pub mod thread;

pub use bench::{Bench, OperatorBench, OperatorCommand, Signal, Waiting};
pub use flash::{BoardJobReport, failing_address, flash_board};
pub use log::{BoardRecord, BoardResult, RunLog};
pub use presence::{PresenceOptions, Probe};
pub use profile::{FuseSettings, LogFormat, PreparedLine, Profile};
pub use run::{
    LineOptions, LineSummary, ProductionEvent, ProductionReporter, StopReason, Tally, run_line,
    run_profile,
};
pub use thread::{EmulatedBoards, LineHandle, spawn_line};
