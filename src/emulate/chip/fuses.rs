//! Fuse and lock bytes as the silicon stores them: unimplemented bits read as 1, SPIEN cannot be
//! changed over ISP, lock bits can only be programmed, and the clock runs on latched copies.

use crate::part::{FuseKind, Part};

/// What the LB bits of the lock byte allow over ISP (facts sheet §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// LB = 11: no lock.
    Open,
    /// LB = 10: further programming of flash, EEPROM and fuses is disabled. The undocumented
    /// LB = 01 is treated the same way (one LB bit programmed).
    ProgrammingDisabled,
    /// LB = 00: programming disabled and flash/EEPROM reads return garbage.
    VerificationDisabled,
}

impl LockMode {
    /// Whether flash, EEPROM and fuse writes are ignored.
    pub fn blocks_programming(self) -> bool {
        self != LockMode::Open
    }

    /// Whether flash and EEPROM reads return garbage.
    pub fn blocks_reading(self) -> bool {
        self == LockMode::VerificationDisabled
    }
}

/// The LB field's position on every AVR, used if the part data lacks the field.
const LB_MASK: u8 = 0x03;

/// The value a write of `value` leaves in the `kind` byte, or `None` if the part lacks it:
/// bits the silicon does not store read as 1 ([`crate::part::FuseByte::mask`], widened by
/// `stored_mask` where the silicon keeps more, as on the ATmega32U4's efuse), and SPIEN stays
/// programmed ("not accessible in serial programming mode").
pub fn stored_value(part: &Part, kind: FuseKind, value: u8) -> Option<u8> {
    let byte = part.fuse(kind)?;
    let stored_bits = byte.mask | byte.stored_mask.unwrap_or(0);
    let mut stored = value | !stored_bits;
    if kind == FuseKind::High
        && let Some(spien) = part.field(FuseKind::High, "SPIEN")
    {
        stored = spien.set(stored, 0);
    }
    Some(stored)
}

/// Index of each byte in the bank's arrays.
fn slot(kind: FuseKind) -> usize {
    match kind {
        FuseKind::Low => 0,
        FuseKind::High => 1,
        FuseKind::Extended => 2,
        FuseKind::Lock => 3,
    }
}

/// The fuse and lock bytes of one chip, plus the fuse values latched for the running logic.
#[derive(Debug, Clone)]
pub(super) struct FuseBank {
    stored: [u8; 4],
    latched: [u8; 4],
}

impl FuseBank {
    /// A bank holding `values` (lfuse, hfuse, efuse, lock), normalised as the silicon would
    /// store them, and latched.
    pub fn new(part: &Part, values: [u8; 4]) -> Self {
        let mut stored = [0xFF; 4];
        for kind in FuseKind::ALL {
            stored[slot(kind)] = stored_value(part, kind, values[slot(kind)]).unwrap_or(0xFF);
        }
        FuseBank {
            stored,
            latched: stored,
        }
    }

    /// What Read Fuse / Read Lock returns, or `None` if the part lacks this byte.
    pub fn read(&self, part: &Part, kind: FuseKind) -> Option<u8> {
        part.fuse(kind).map(|_| self.stored[slot(kind)])
    }

    /// Writes a fuse (replacing it) or the lock byte (programming bits only: AND).
    pub fn write(&mut self, part: &Part, kind: FuseKind, value: u8) {
        let Some(new) = stored_value(part, kind, value) else {
            return;
        };
        let current = &mut self.stored[slot(kind)];
        *current = if kind == FuseKind::Lock {
            *current & new
        } else {
            new
        };
    }

    /// Chip Erase: the lock byte goes back to unlocked; fuses are untouched.
    pub fn erase_lock(&mut self, part: &Part) {
        self.stored[slot(FuseKind::Lock)] =
            stored_value(part, FuseKind::Lock, 0xFF).unwrap_or(0xFF);
    }

    /// Copies the stored fuses into the latches (power-up, entering programming mode).
    pub fn latch(&mut self) {
        self.latched = self.stored;
    }

    /// The latched value of a byte (what the running clock logic uses).
    pub fn latched(&self, kind: FuseKind) -> u8 {
        self.latched[slot(kind)]
    }

    /// What the lock byte currently allows.
    pub fn lock_mode(&self, part: &Part) -> LockMode {
        let lock = self.stored[slot(FuseKind::Lock)];
        let lb = part
            .field(FuseKind::Lock, "LB")
            .map_or(lock & LB_MASK, |field| field.get(lock));
        match lb {
            0b11 => LockMode::Open,
            0b00 => LockMode::VerificationDisabled,
            _ => LockMode::ProgrammingDisabled,
        }
    }

    /// Whether EESAVE is programmed right now (it acts immediately, not at the next latch).
    pub fn eesave(&self, part: &Part) -> bool {
        part.field(FuseKind::High, "EESAVE")
            .is_some_and(|field| field.get(self.stored[slot(FuseKind::High)]) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::part::PartDb;

    fn part(name: &str) -> &'static Part {
        PartDb::builtin().unwrap().find(name).unwrap()
    }

    #[test]
    fn unstored_bits_read_as_one_and_spien_stays_programmed() {
        assert_eq!(
            stored_value(part("m328p"), FuseKind::Extended, 0x05),
            Some(0xFD)
        );
        assert_eq!(
            stored_value(part("m32u4"), FuseKind::Extended, 0x03),
            Some(0xC3)
        );
        assert_eq!(
            stored_value(part("m328p"), FuseKind::High, 0xFA),
            Some(0xDA)
        );
        assert_eq!(stored_value(part("m32a"), FuseKind::Extended, 0x00), None);
        assert_eq!(
            stored_value(part("m32u4"), FuseKind::Lock, 0x00),
            Some(0xC0)
        );
    }

    #[test]
    fn lock_bits_only_program_and_erase_clears_them() {
        let p = part("m32u4");
        let mut bank = FuseBank::new(p, [0xFF, 0xD8, 0xCB, 0xFF]);
        bank.write(p, FuseKind::Lock, 0xEF);
        bank.write(p, FuseKind::Lock, 0xFE);
        assert_eq!(bank.read(p, FuseKind::Lock), Some(0xEE));
        assert_eq!(bank.lock_mode(p), LockMode::ProgrammingDisabled);
        bank.write(p, FuseKind::Lock, 0xFF);
        assert_eq!(bank.read(p, FuseKind::Lock), Some(0xEE));
        bank.write(p, FuseKind::Lock, 0xFC);
        assert_eq!(bank.lock_mode(p), LockMode::VerificationDisabled);
        bank.erase_lock(p);
        assert_eq!(bank.read(p, FuseKind::Lock), Some(0xFF));
        assert_eq!(bank.lock_mode(p), LockMode::Open);
    }
}
