//! How an emulated chip starts out: its board's clock, fuses, lock bits, calibration and memories.

use super::timing::BusyTimes;

/// The crystal (or external clock) most keyboard and Arduino boards carry.
pub const DEFAULT_CRYSTAL_HZ: u32 = 16_000_000;

/// The default seed of the chip's deterministic noise (SCK corruption, locked-read garbage).
pub const DEFAULT_NOISE_SEED: u64 = 0x15B0_A7C0_FFEE_0001;

/// The fuse bytes a chip starts with. Bits a part does not store read back as 1 regardless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuseValues {
    /// Low fuse.
    pub lfuse: u8,
    /// High fuse. SPIEN must be programmed (0): a chip without it never answers ISP.
    pub hfuse: u8,
    /// Extended fuse; `None` takes the part's default. Must be `None` on parts without one.
    pub efuse: Option<u8>,
}

/// Everything that makes one emulated board different from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipConfig {
    /// The board's crystal or external clock, used when CKSEL selects one. `None`: nothing is
    /// fitted, so a crystal or external clock setting leaves the chip without a clock (and deaf
    /// to ISP).
    pub crystal_hz: Option<u32>,
    /// Fuse bytes; `None` takes the part's datasheet defaults.
    pub fuses: Option<FuseValues>,
    /// The lock byte (0xFF: unlocked).
    pub lock: u8,
    /// Calibration bytes, exactly as many as the part has; `None` takes
    /// [`default_calibration`].
    pub calibration: Option<Vec<u8>>,
    /// Flash contents from address 0; shorter images are padded with 0xFF.
    pub flash: Option<Vec<u8>>,
    /// EEPROM contents from address 0; shorter images are padded with 0xFF.
    pub eeprom: Option<Vec<u8>>,
    /// Programming times; `None` takes [`BusyTimes::datasheet`].
    pub busy_times: Option<BusyTimes>,
    /// Seed of the deterministic noise, so two boards can scramble differently.
    pub noise_seed: u64,
}

impl Default for ChipConfig {
    fn default() -> Self {
        ChipConfig {
            crystal_hz: Some(DEFAULT_CRYSTAL_HZ),
            fuses: None,
            lock: 0xFF,
            calibration: None,
            flash: None,
            eeprom: None,
            busy_times: None,
            noise_seed: DEFAULT_NOISE_SEED,
        }
    }
}

impl ChipConfig {
    /// Places `bytes` at byte address `offset` of flash, padding everything before it with 0xFF
    /// (replaces any flash image already set).
    pub fn with_flash_at(mut self, offset: usize, bytes: &[u8]) -> Self {
        self.flash = Some(image_at(offset, bytes));
        self
    }

    /// Places `bytes` at byte address `offset` of EEPROM, padding before it with 0xFF.
    pub fn with_eeprom_at(mut self, offset: usize, bytes: &[u8]) -> Self {
        self.eeprom = Some(image_at(offset, bytes));
        self
    }
}

fn image_at(offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut image = vec![0xFF; offset];
    image.extend_from_slice(bytes);
    image
}

/// Factory-like calibration values: `count` bytes from 0xA5 up in steps of 3 (plausible OSCCAL
/// values; a test that needs to tell boards apart sets its own).
pub fn default_calibration(count: u8) -> Vec<u8> {
    (0..count)
        .map(|i| 0xA5u8.wrapping_add(i.wrapping_mul(3)))
        .collect()
}
