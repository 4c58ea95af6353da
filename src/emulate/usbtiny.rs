//! Emulated USBtinyISP firmware.
