//! Intel HEX files and sparse memory images.
//!
//! - [`MemoryImage`]: bytes at addresses, with gaps; pages, blank checks, a content hash.
//! - [`read_hex`] / [`read_hex_file`]: Intel HEX in, with errors naming file, line and column.
//! - [`write_hex`]: Intel HEX out (16-byte records, type 04, `\n`); [`HexOptions::objcopy`] for
//!   avr-objcopy's exact output.
//! - [`read_bin`] / [`to_bin`]: raw binaries; [`read_image_file`] / [`write_image_file`] pick the
//!   format from the extension and write atomically.
//! - [`merge`]: the "production" image, firmware plus bootloader, with the overlap and boot
//!   section checks a text editor does not do.

mod bin;
mod file;
mod image;
mod merge;
mod read;
mod write;

pub use bin::{MAX_BIN_LEN, read_bin, to_bin};
pub use file::{
    ImageFormat, MAX_FILE_SIZE, read_hex_file, read_image_file, write_atomic, write_image_file,
};
pub use image::{ADDRESS_SPACE_END, MemoryImage, Segment};
pub use merge::{fits_boot_section, merge};
pub use read::{Overlaps, read_hex, read_hex_bytes, read_hex_with};
pub use write::{AddressRecords, HexOptions, LineEnding, write_hex, write_hex_with};
