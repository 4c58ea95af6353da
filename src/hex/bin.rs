//! Raw binary images: the bytes of memory from a base address, nothing else.

use super::image::{ADDRESS_SPACE_END, MemoryImage};
use crate::error::{Error, Result};

/// The largest raw binary [`to_bin`] builds (AVR flash is at most 256 KiB; a bigger span means
/// an image that does not belong in a .bin).
pub const MAX_BIN_LEN: u64 = 16 * 1024 * 1024;

/// An image holding `bytes` from `base_addr` on. Every byte counts as data, 0xFF included.
pub fn read_bin(bytes: &[u8], base_addr: u32) -> Result<MemoryImage> {
    if u64::from(base_addr) + bytes.len() as u64 > ADDRESS_SPACE_END {
        return Err(Error::Image(format!(
            "{} bytes loaded at 0x{base_addr:08X} would run past the 4 GiB address space",
            bytes.len()
        )));
    }
    let mut image = MemoryImage::new();
    image.insert(base_addr, bytes)?;
    Ok(image)
}

/// The image as a flat binary from address 0 to its last byte, gaps as 0xFF (erased flash).
///
/// Refuses images ending past [`MAX_BIN_LEN`] instead of allocating gigabytes of padding.
pub fn to_bin(image: &MemoryImage) -> Result<Vec<u8>> {
    let len = image.end();
    if len > MAX_BIN_LEN {
        return Err(Error::Image(format!(
            "the image spans {}, so a raw binary from address 0 would be {len} bytes (more than \
             the {MAX_BIN_LEN}-byte limit); write it as .hex instead",
            image.range_string()
        )));
    }
    // Lossless: len <= MAX_BIN_LEN.
    Ok(image.page(0, len as u32, 0xFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_become_ff_from_address_zero() {
        let mut image = read_bin(&[1, 2], 2).unwrap();
        image.insert(5, &[3]).unwrap();
        assert_eq!(to_bin(&image).unwrap(), vec![0xFF, 0xFF, 1, 2, 0xFF, 3]);
        assert_eq!(to_bin(&MemoryImage::new()).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn limits() {
        assert!(read_bin(&[0; 2], 0xFFFF_FFFF).is_err());
        assert!(read_bin(&[0; 1], 0xFFFF_FFFF).is_ok());
        let far = read_bin(&[0], 0x0100_0000).unwrap();
        let err = to_bin(&far).unwrap_err().to_string();
        assert!(err.contains("0x1000000-0x1000000"), "{err}");
        assert!(read_bin(&[], 0).unwrap().is_empty());
    }
}
