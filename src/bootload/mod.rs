//! Programming a board through its own bootloader instead of over ISP.
//!
//! The guide's first step turns a Pro Micro or a Teensy 2.0 into an ISP programmer by loading
//! an ISP firmware onto it through the bootloader it ships with. This module does that:
//!
//! - [`avr109`]: the AVR109 protocol as the Caterina bootloader (Pro Micro, Leonardo, Micro)
//!   speaks it over USB CDC serial; [`avr109_programmer`] makes it a
//!   [`crate::programmer::Programmer`] (`-c avr109`), to write keyboard firmware through an
//!   installed Caterina with the ordinary jobs.
//! - [`halfkay`]: the Teensy's HID bootloader, over [`crate::transport::UsbLink`].
//! - [`firmware`]: checks the user's ISP firmware file before anything is written.
//! - [`host`]: the machine's ports and clock behind a trait, and waiting for a port with a
//!   countdown; the emulated board in [`crate::emulate::programmer_board`] implements it too.
//! - [`prepare`]: the whole "prepare the programmer board" job, with events a GUI can show.

pub mod avr109;
pub mod avr109_programmer;
pub mod board;
pub mod firmware;
pub mod halfkay;
pub mod host;
pub mod prepare;

pub use board::{Board, BootloaderKind};
pub use host::{Clock, Found, Host, SystemHost, UserAction};
pub use prepare::{PrepareEvent, PrepareReport, PrepareRequest, PrepareStep, prepare};
