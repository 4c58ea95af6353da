//! Faults an emulated programmer can be told to commit, to test how drivers fail.
//!
//! Units are bytes on a serial link and control transfers on a USB link, counted from 1 since
//! the emulator started:
//!
//! | Spec         | Effect |
//! |--------------|--------|
//! | `drop=N`     | the Nth unit from the host is lost (serial: the byte vanishes; USB: the transfer times out) |
//! | `corrupt=N`  | the Nth unit to the host is corrupted (every bit of the byte, or of the reply's first byte, flipped) |
//! | `stall=N`    | after N units from the host the programmer stops answering but stays connected |
//! | `hangup=N`   | after N units from the host the programmer disappears (unplugged) |
//!
//! Several faults are separated by commas: `drop=100,hangup=5000`.

use crate::error::{Error, Result};

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Lose the Nth unit from the host.
    Drop(u64),
    /// Corrupt the Nth unit to the host.
    Corrupt(u64),
    /// Stop answering after N units from the host.
    Stall(u64),
    /// Disappear after N units from the host.
    Hangup(u64),
}

/// A set of faults, and the counters that trigger them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    faults: Vec<Fault>,
    units_in: u64,
    units_out: u64,
}

/// What to do with one unit from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Deliver it.
    Deliver,
    /// Lose it.
    Drop,
    /// Lose it and every later one; answer nothing more.
    Stall,
    /// Disappear now.
    Hangup,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses `drop=N,corrupt=N,stall=N,hangup=N` (any subset, any order).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut faults = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, n) = item.split_once('=').ok_or_else(|| bad_spec(item))?;
            let n: u64 = n.trim().parse().map_err(|_| bad_spec(item))?;
            if n == 0 {
                return Err(bad_spec(item));
            }
            faults.push(match kind.trim() {
                "drop" => Fault::Drop(n),
                "corrupt" => Fault::Corrupt(n),
                "stall" => Fault::Stall(n),
                "hangup" => Fault::Hangup(n),
                _ => return Err(bad_spec(item)),
            });
        }
        Ok(Faults {
            faults,
            ..Default::default()
        })
    }

    /// Whether any fault is set.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Counts one unit from the host and says what happens to it.
    pub fn inbound(&mut self) -> Inbound {
        self.units_in += 1;
        let n = self.units_in;
        for fault in &self.faults {
            match *fault {
                Fault::Hangup(after) if n > after => return Inbound::Hangup,
                Fault::Stall(after) if n > after => return Inbound::Stall,
                _ => {}
            }
        }
        if self.faults.contains(&Fault::Drop(n)) {
            Inbound::Drop
        } else {
            Inbound::Deliver
        }
    }

    /// Counts one unit to the host; true when it must be corrupted.
    pub fn corrupt_outbound(&mut self) -> bool {
        self.units_out += 1;
        self.faults.contains(&Fault::Corrupt(self.units_out))
    }
}

fn bad_spec(item: &str) -> Error {
    Error::invalid(format!(
        "bad fault '{item}': use drop=N, corrupt=N, stall=N or hangup=N with N >= 1, separated by commas"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_triggers_in_order() {
        let mut f = Faults::parse("drop=2, corrupt=1,hangup=4").unwrap();
        assert_eq!(f.inbound(), Inbound::Deliver);
        assert_eq!(f.inbound(), Inbound::Drop);
        assert_eq!(f.inbound(), Inbound::Deliver);
        assert_eq!(f.inbound(), Inbound::Deliver);
        assert_eq!(f.inbound(), Inbound::Hangup);
        assert!(f.corrupt_outbound());
        assert!(!f.corrupt_outbound());
        let mut s = Faults::parse("stall=1").unwrap();
        assert_eq!(s.inbound(), Inbound::Deliver);
        assert_eq!(s.inbound(), Inbound::Stall);
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["drop", "drop=x", "explode=3", "stall=0", "=4"] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
        assert!(Faults::parse("").unwrap().is_empty());
    }
}
