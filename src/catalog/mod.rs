//! The bootloader catalog and the programmer catalog.
//!
//! Both are JSON files embedded in the binary and checked once, the first time they are asked
//! for, so a bad edit fails at start-up and in `cargo test`, never in the middle of a job:
//!
//! - [`BootloaderCatalog`] (`bootloaders/catalog.json`): every bootloader of the guide's
//!   tables with its fuse presets, USB id, clock, boot section size and the provenance of its
//!   official .hex, plus the firmware builds that turn a Pro Micro or Teensy 2.0 into an ISP
//!   programmer. It is cross-checked against the part database (every MCU exists, every
//!   preset's BOOTSZ leaves room for the bootloader, efuse given exactly where the part has
//!   one) and against the programmer catalog.
//! - [`ProgrammerCatalog`] (`assets/programmers.json`): the programmers, their drivers, wiring
//!   tables, warnings, ISP header pinouts and identifying USB ids.
//!
//! The project ships no third-party binaries: users supply the .hex themselves, and
//! [`BootloaderCatalog::identify_content`] / [`BootloaderCatalog::identify_file`] recognise the
//! official builds by their SHA-256.

mod bootloaders;
mod hash;
mod programmers;
mod usb;

pub use bootloaders::{
    Bootloader, BootloaderCatalog, Family, FusePreset, HexProvenance, IspFirmware, KnownBuild,
};
pub use hash::{Sha256, parse_sha256, sha256_hex};
pub use programmers::{
    Driver, Header, HeaderPin, MatchConfidence, PortKind, Programmer, ProgrammerCatalog,
    ProgrammerUsb, UsbMatch, WiringRow,
};
pub use usb::UsbId;
