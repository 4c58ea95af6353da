//! The chip's deterministic noise: corrupted MISO bits when SCK is too fast, and the garbage a
//! read-protected chip returns. Both come from a seed, so every run sees the same bytes.

/// SplitMix64's finaliser: a cheap, well-mixed hash of one 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Corrupts MISO bytes clocked out too fast.
///
/// A real AVR clocked beyond its SCK limit shifts its output out late, so the programmer samples
/// wrong bits. We model only the symptom: each byte is XORed with a pseudo-random mask that
/// always has at least one bit set, so the corruption is always detectable (a one-bit slip, the
/// physical effect, would leave 0x00 and 0xFF bytes intact and hide the fault).
#[derive(Debug, Clone)]
pub(super) struct MisoNoise {
    state: u64,
}

impl MisoNoise {
    /// Noise seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        MisoNoise { state: seed }
    }

    /// `byte` with one or more bits flipped.
    pub fn corrupt(&mut self, byte: u8) -> u8 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mask = (mix(self.state) as u8) | 0x01;
        byte ^ mask
    }
}

/// Which memory a read-protected read came from (so flash and EEPROM garbage differ).
#[derive(Debug, Clone, Copy)]
pub(super) enum ScrambledMemory {
    Flash,
    Eeprom,
}

/// The byte a chip with LB = 00 returns for a flash or EEPROM read: a hash of the seed, the
/// memory and the address. It never depends on the memory's contents, just as real silicon
/// leaks nothing of the protected data, yet stays the same on every read of that address.
pub(super) fn scrambled_read(seed: u64, memory: ScrambledMemory, addr: u32) -> u8 {
    let tag = match memory {
        ScrambledMemory::Flash => 0x464C_0000_0000_0000,
        ScrambledMemory::Eeprom => 0x4545_0000_0000_0000,
    };
    mix(seed ^ tag ^ u64::from(addr)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_always_changes_the_byte_and_is_repeatable() {
        let mut a = MisoNoise::new(7);
        let mut b = MisoNoise::new(7);
        for byte in 0..=255u8 {
            let corrupted = a.corrupt(byte);
            assert_ne!(corrupted, byte);
            assert_eq!(corrupted, b.corrupt(byte));
        }
    }

    #[test]
    fn scrambled_reads_are_stable_and_not_constant() {
        let first: Vec<u8> = (0..64)
            .map(|a| scrambled_read(1, ScrambledMemory::Flash, a))
            .collect();
        let again: Vec<u8> = (0..64)
            .map(|a| scrambled_read(1, ScrambledMemory::Flash, a))
            .collect();
        assert_eq!(first, again);
        assert!(first.iter().any(|&b| b != first[0]));
        assert_ne!(
            scrambled_read(1, ScrambledMemory::Flash, 5),
            scrambled_read(1, ScrambledMemory::Eeprom, 5)
        );
    }
}
