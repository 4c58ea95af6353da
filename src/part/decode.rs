//! Turning fuse bytes into named fields with meanings, and working out the target's clock.

use super::schema::{ClockSource, FuseKind, Part, Risk};

/// One bitfield of a fuse byte, decoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DecodedField {
    /// Which byte.
    pub fuse: FuseKind,
    /// Field name, e.g. `CKSEL`.
    pub name: String,
    /// What the field does.
    pub description: String,
    /// The field's value, shifted down.
    pub value: u8,
    /// Number of bits.
    pub bits: u32,
    /// What that value means.
    pub meaning: String,
    /// The field's risk class.
    pub risk: Risk,
}

/// Decodes every field of one fuse byte. Empty when the part lacks that byte.
pub fn decode_byte(part: &Part, kind: FuseKind, byte: u8) -> Vec<DecodedField> {
    let Some(def) = part.fuse(kind) else {
        return Vec::new();
    };
    def.fields
        .iter()
        .map(|f| {
            let value = f.get(byte);
            DecodedField {
                fuse: kind,
                name: f.name.clone(),
                description: f.description.clone(),
                value,
                bits: f.mask.count_ones(),
                meaning: f.meaning(value).to_string(),
                risk: f.risk,
            }
        })
        .collect()
}

/// What the fuses say about the target's CPU clock.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TargetClock {
    /// The clock source CKSEL selects, if the value is a known one.
    pub source: Option<ClockSource>,
    /// Whether CKDIV8 is programmed.
    pub divided_by_8: bool,
    /// The resulting CPU frequency, when it can be known: RC sources from the part data,
    /// crystal and external sources from `board_hz`.
    pub cpu_hz: Option<u32>,
}

impl Part {
    /// The target's CPU clock for a low fuse, given the board's crystal (or external clock).
    pub fn target_clock(&self, lfuse: u8, board_hz: Option<u32>) -> TargetClock {
        let source = self
            .field(FuseKind::Low, "CKSEL")
            .and_then(|f| f.value(f.get(lfuse)))
            .and_then(|v| v.clock);
        let divided_by_8 = self
            .field(FuseKind::Low, "CKDIV8")
            .is_some_and(|f| f.get(lfuse) == 0);
        let base = match source {
            Some(ClockSource::Rc { hz }) => Some(hz),
            Some(ClockSource::LowFrequencyCrystal) => Some(32_768),
            Some(ClockSource::Crystal { .. })
            | Some(ClockSource::External)
            | Some(ClockSource::ExternalRc { .. }) => board_hz,
            None => None,
        };
        TargetClock {
            source,
            divided_by_8,
            cpu_hz: base.map(|hz| if divided_by_8 { hz / 8 } else { hz }),
        }
    }

    /// The fastest ISP clock the datasheet allows for a CPU clock: below f/4, below f/6 from 12 MHz.
    pub fn max_sck_hz(cpu_hz: u32) -> u32 {
        if cpu_hz >= 12_000_000 {
            cpu_hz / 6
        } else {
            cpu_hz / 4
        }
    }
}
