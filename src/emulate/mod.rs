//! Emulated targets and programmers for testing without hardware.
//!
//! [`chip::EmulatedChip`] is an AVR target that answers the ISP instruction set byte for byte;
//! emulated programmer firmwares drive it and charge their own time to its [`clock`].

pub mod chip;
pub mod clock;

pub use chip::{BusyTimes, ChipConfig, ChipStats, EmulatedChip, FuseValues, LockMode};
pub use clock::VirtualClock;
