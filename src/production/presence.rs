//! Is a board in the fixture? One probe enters programming mode, reads the signature and the
//! calibration byte, and leaves again (RESET released): it only reads, so polling at a gentle
//! rate for hours wears nothing out. [`Debounce`] turns probes into decisions: a board is
//! there when two probes in a row read the same valid signature, and gone when two probes in a
//! row find nothing.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::part::Part;
use crate::programmer::Programmer;

/// How often and how carefully to look for boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceOptions {
    /// Pause between probes while nothing changes.
    pub poll_interval: Duration,
    /// Pause before the confirming probe, once a probe saw a change (contacts settle).
    pub confirm_delay: Duration,
    /// Probes in a row that must agree (2: one look and one confirmation).
    pub confirmations: u32,
    /// Probe errors in a row (not "no target": the programmer itself failing) before the line
    /// stops with the error.
    pub max_probe_errors: u32,
}

impl Default for PresenceOptions {
    fn default() -> Self {
        PresenceOptions {
            poll_interval: Duration::from_millis(250),
            confirm_delay: Duration::from_millis(30),
            confirmations: 2,
            max_probe_errors: 3,
        }
    }
}

/// What one probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Nothing answered (signature 00 00 00 or FF FF FF, or Programming Enable not echoed).
    Absent,
    /// A chip answered.
    Present {
        /// Its signature.
        signature: [u8; 3],
        /// Its first calibration byte (tells boards of one part apart in the log).
        calibration: u8,
    },
}

/// Looks once: enter programming mode, read signature and calibration, leave. Reads only.
/// "No target" is [`Probe::Absent`]; other errors (the programmer gone) are returned.
pub fn probe(prog: &mut dyn Programmer, part: &Part) -> Result<Probe> {
    match prog.enter(part) {
        Ok(()) => {}
        Err(Error::NoTarget { .. }) => {
            let _ = prog.leave();
            return Ok(Probe::Absent);
        }
        Err(e) => {
            let _ = prog.leave();
            return Err(e);
        }
    }
    let seen = read_identity(prog);
    let left = prog.leave();
    let seen = seen?;
    left?;
    Ok(seen)
}

fn read_identity(prog: &mut dyn Programmer) -> Result<Probe> {
    let signature = prog.read_signature()?;
    if signature == [0, 0, 0] || signature == [0xFF; 3] {
        return Ok(Probe::Absent);
    }
    let calibration = prog.read_calibration(0)?;
    Ok(Probe::Present {
        signature,
        calibration,
    })
}

/// Turns single probes into a decision: `confirmations` agreeing probes in a row.
#[derive(Debug, Clone, Default)]
pub struct Debounce {
    last: Option<Probe>,
    streak: u32,
}

impl Debounce {
    /// A fresh debouncer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one probe; returns how many probes in a row have agreed with it. Two presents
    /// agree only with the same signature (a garbled read never confirms a board).
    pub fn feed(&mut self, probe: Probe) -> u32 {
        let same = match (self.last, probe) {
            (Some(Probe::Absent), Probe::Absent) => true,
            (Some(Probe::Present { signature: a, .. }), Probe::Present { signature: b, .. }) => {
                a == b
            }
            _ => false,
        };
        self.streak = if same { self.streak + 1 } else { 1 };
        self.last = Some(probe);
        self.streak
    }

    /// Forgets what was seen.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_needs_two_matching_reads() {
        let a = Probe::Present {
            signature: [0x1E, 0x95, 0x87],
            calibration: 0xA5,
        };
        let b = Probe::Present {
            signature: [0x1E, 0x94, 0x88],
            calibration: 0xA5,
        };
        let mut d = Debounce::new();
        assert_eq!(d.feed(a), 1);
        assert_eq!(d.feed(b), 1, "different signature restarts the count");
        assert_eq!(d.feed(b), 2);
        assert_eq!(d.feed(Probe::Absent), 1);
        assert_eq!(d.feed(Probe::Absent), 2);
        d.reset();
        assert_eq!(d.feed(Probe::Absent), 1);
    }
}
