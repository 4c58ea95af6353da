//! How long the emulated chip stays busy after each kind of write.

use std::time::Duration;

use crate::part::Part;

/// Self-timed programming times of one chip.
///
/// [`BusyTimes::datasheet`] uses the part's own datasheet minimum-wait table (tWD_*) where the facts
/// sheet (§1.5) retrieved it, and the part database's [`crate::part::Timing`] (avrdude's
/// conservative delays) where it did not. The chip is busy for exactly this long, so a driver
/// that waits the datasheet delay (or polls) never violates timing, and one that waits less does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyTimes {
    /// Write Program Memory Page (tWD_FLASH).
    pub flash_page: Duration,
    /// EEPROM byte write or page write (tWD_EEPROM).
    pub eeprom: Duration,
    /// Chip Erase (tWD_ERASE).
    pub chip_erase: Duration,
    /// Fuse or lock byte write (tWD_FUSE).
    pub fuse: Duration,
}

/// One datasheet row, in microseconds: flash, EEPROM, erase, fuse.
struct DatasheetRow {
    avrdude_id: &'static str,
    us: [u64; 4],
}

/// tWD values from the parts' own datasheets (facts sheet §1.5). The ATmega328P erase time is
/// 9.0 ms in its datasheet (7810C/8271H); the 10.5 ms in the part database comes from the later
/// 48PA/88PA/168PA sheet and is kept there as the drivers' safety margin. The 16U4/32U4 and
/// AT90USB tables were not retrieved, so those parts use the part database's values (for fuse
/// writes, the datasheets' self-timed maximum tWLRH of 4.5 ms; see [`crate::part::Timing`]).
const DATASHEET: &[DatasheetRow] = &[
    DatasheetRow {
        avrdude_id: "m328p",
        us: [4_500, 3_600, 9_000, 4_500],
    },
    DatasheetRow {
        avrdude_id: "m32a",
        us: [4_500, 9_000, 9_000, 4_500],
    },
];

impl BusyTimes {
    /// The busy times of `part`: its datasheet's tWD values where known, else its database
    /// timing (see the type's documentation).
    pub fn datasheet(part: &Part) -> Self {
        let fallback = [
            part.timing.flash_page_us,
            part.timing.eeprom_write_us,
            part.timing.chip_erase_us,
            part.timing.fuse_write_us,
        ]
        .map(u64::from);
        let us = DATASHEET
            .iter()
            .find(|row| row.avrdude_id.eq_ignore_ascii_case(&part.avrdude_id))
            .map_or(fallback, |row| row.us);
        BusyTimes {
            flash_page: Duration::from_micros(us[0]),
            eeprom: Duration::from_micros(us[1]),
            chip_erase: Duration::from_micros(us[2]),
            fuse: Duration::from_micros(us[3]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::part::PartDb;

    #[test]
    fn busy_times_never_exceed_what_drivers_wait() {
        // Drivers wait Part::timing; the chip must be done by then, or avrdude-style fixed delays
        // would count as timing violations against a perfectly good driver.
        for part in PartDb::builtin().unwrap().all() {
            let times = BusyTimes::datasheet(part);
            let t = part.timing;
            assert!(times.flash_page <= Duration::from_micros(t.flash_page_us.into()));
            assert!(times.eeprom <= Duration::from_micros(t.eeprom_write_us.into()));
            assert!(times.chip_erase <= Duration::from_micros(t.chip_erase_us.into()));
            assert!(times.fuse <= Duration::from_micros(t.fuse_write_us.into()));
        }
        let m328p = PartDb::builtin().unwrap().find("m328p").unwrap();
        assert_eq!(
            BusyTimes::datasheet(m328p).chip_erase,
            Duration::from_millis(9)
        );
        assert_eq!(
            BusyTimes::datasheet(m328p).eeprom,
            Duration::from_micros(3_600)
        );
    }
}
