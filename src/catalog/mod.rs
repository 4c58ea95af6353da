//! The bootloader catalog and the programmer catalog.
