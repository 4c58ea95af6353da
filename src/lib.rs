//! ISP Toolbox: flash AVR bootloaders and set fuses over ISP.
//!
//! The engine: part data ([`part`]), Intel HEX images ([`hex`]), the ISP instruction set
//! ([`isp`]), programmer drivers ([`programmer`]) over links ([`transport`]), and emulated
//! programmers and targets for testing without hardware ([`emulate`]). It knows nothing of the
//! GUI toolkit, the async runtime or the command line. [`production`] runs a production line:
//! many boards in a row with one profile.
#![warn(missing_docs)]

pub mod bootload;
pub mod catalog;
pub mod doctor;
pub mod emulate;
pub mod error;
#[cfg(feature = "gui")]
pub mod gui;
pub mod hex;
pub mod isp;
pub mod job;
pub mod part;
pub mod production;
pub mod programmer;
pub mod transport;
pub mod util;
pub mod worker;

pub use error::{Error, Memory, Result};
