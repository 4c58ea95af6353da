//! Emulated targets and programmers for testing without hardware.
//!
//! [`chip::EmulatedChip`] is an AVR target that answers the ISP instruction set byte for byte;
//! emulated programmer firmwares drive it and charge their own time to its [`clock`].

pub mod arduinoisp;
pub mod buspirate;
pub mod caterina;
pub mod chip;
pub mod clock;
pub mod demo;
pub mod fault;
pub mod halfkay;
pub mod programmer_board;
pub mod serial;
pub mod socket;
pub mod stats;
pub mod usb;
pub mod usbasp;
pub mod usbtiny;
pub mod vusb;

pub use chip::{BusyTimes, ChipConfig, ChipStats, EmulatedChip, FuseValues, LockMode};
pub use clock::VirtualClock;
