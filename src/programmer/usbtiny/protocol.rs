//! The USBtiny vendor requests and how their replies are judged (facts sheet §4; firmware
//! `main.c` of Dick Streefland's USBtiny as shipped on the Adafruit USBtinyISP, avrdude
//! `usbtiny.c`).
//!
//! Every request is a vendor control transfer to the device. Requests without data and reads
//! go device-to-host (`0xC0`, as avrdude sends them: wLength 0 for the "control" ones); data
//! writes go host-to-device (`0x40`). Nothing here does I/O, so the decoders can be fuzzed.

use crate::isp::Instruction;

/// Vendor request numbers (the firmware's enum; avrdude's `usbtiny.h` has 0..=12).
pub mod request {
    /// Returns the 8 setup bytes (a link test).
    pub const ECHO: u8 = 0;
    /// Reads the programmer's port B input register (1 byte).
    pub const READ: u8 = 1;
    /// Writes the programmer's port B output register (wValue low byte).
    pub const WRITE: u8 = 2;
    /// Clears one port B bit (wValue low byte & 7).
    pub const CLR: u8 = 3;
    /// Sets one port B bit (wValue low byte & 7).
    pub const SET: u8 = 4;
    /// Drives the ISP pins: SCK period in µs in wValue's low byte, RESET level in wIndex.
    pub const POWERUP: u8 = 5;
    /// Releases the ISP pins.
    pub const POWERDOWN: u8 = 6;
    /// One 4-byte ISP instruction: wValue = c1 << 8 | c0, wIndex = c3 << 8 | c2; 4 bytes back.
    pub const SPI: u8 = 7;
    /// The two "still busy" read-back values for polled writes: wValue = p2 << 8 | p1.
    pub const POLL_BYTES: u8 = 8;
    /// Reads flash from the byte address in wIndex (16-bit, auto-incrementing).
    pub const FLASH_READ: u8 = 9;
    /// Loads flash page-buffer bytes from the byte address in wIndex; wValue = poll timeout.
    pub const FLASH_WRITE: u8 = 10;
    /// Reads EEPROM from the byte address in wIndex.
    pub const EEPROM_READ: u8 = 11;
    /// Writes EEPROM bytes (erase + write each) from wIndex; wValue = poll timeout in µs.
    pub const EEPROM_WRITE: u8 = 12;
    /// Writes the port B direction register (wValue low byte).
    pub const DDRWRITE: u8 = 13;
    /// One SPI byte (wValue low byte); 1 byte back.
    pub const SPI1: u8 = 14;
}

/// POWERUP wIndex: hold the target in RESET (programming).
pub const RESET_LOW: u16 = 0;
/// POWERUP wIndex: release RESET (the pulse between Programming Enable retries).
pub const RESET_HIGH: u16 = 1;

/// The largest IN data stage the firmware sends: its transfer counter is one byte
/// (`USBTINY_CALLBACK_IN` = 1), so a wLength above 255 is served as 255.
pub const MAX_IN_BYTES: usize = 255;

/// The firmware's read/write address counter is 16 bits wide: bulk flash requests reach byte
/// addresses below this, and only word addresses below 0x8000 (see the driver's docs).
pub const BULK_ADDRESS_LIMIT: u32 = 0x1_0000;

/// A short name for messages.
pub fn request_name(request: u8) -> &'static str {
    match request {
        request::ECHO => "ECHO",
        request::READ => "READ",
        request::WRITE => "WRITE",
        request::CLR => "CLR",
        request::SET => "SET",
        request::POWERUP => "POWERUP",
        request::POWERDOWN => "POWERDOWN",
        request::SPI => "SPI",
        request::POLL_BYTES => "POLL_BYTES",
        request::FLASH_READ => "FLASH_READ",
        request::FLASH_WRITE => "FLASH_WRITE",
        request::EEPROM_READ => "EEPROM_READ",
        request::EEPROM_WRITE => "EEPROM_WRITE",
        request::DDRWRITE => "DDRWRITE",
        request::SPI1 => "SPI1",
        _ => "unknown request",
    }
}

/// wValue and wIndex of an SPI request carrying `cmd`.
pub fn spi_setup(cmd: Instruction) -> (u16, u16) {
    (
        u16::from_le_bytes([cmd[0], cmd[1]]),
        u16::from_le_bytes([cmd[2], cmd[3]]),
    )
}

/// wValue of POLL_BYTES: the firmware keeps the low byte as `poll1`, the high one as `poll2`.
pub fn poll_bytes_value(poll1: u8, poll2: u8) -> u16 {
    u16::from_le_bytes([poll1, poll2])
}

/// What came back for an SPI request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpiReply {
    /// The four bytes shifted in from the target.
    Complete(Instruction),
    /// Fewer than four bytes: the firmware ignores SPI requests until POWERUP, and a noisy
    /// link can cut a reply short. avrdude retries such reads.
    Short {
        /// Bytes received.
        got: usize,
    },
}

/// Judges the reply to an SPI request (exactly 4 bytes are asked for, so at most 4 come).
pub fn decode_spi(reply: &[u8]) -> SpiReply {
    match <[u8; 4]>::try_from(reply) {
        Ok(bytes) => SpiReply::Complete(bytes),
        Err(_) => SpiReply::Short { got: reply.len() },
    }
}

pub use crate::isp::{changes_target, echoed, missing_echo};

/// Checks the length of a block read's reply: the firmware sends exactly what was asked for
/// (up to [`MAX_IN_BYTES`]), or nothing before POWERUP.
pub fn check_block(requested: usize, got: usize) -> Result<(), String> {
    if got == requested {
        Ok(())
    } else {
        Err(format!("received {got} of {requested} byte(s)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isp;

    #[test]
    fn spi_setup_packs_like_avrdude() {
        // avrdude: wValue = cmd[1] << 8 | cmd[0], wIndex = cmd[3] << 8 | cmd[2].
        assert_eq!(spi_setup([0xAC, 0x53, 0x00, 0x00]), (0x53AC, 0x0000));
        assert_eq!(spi_setup([0x30, 0x00, 0x02, 0x00]), (0x0030, 0x0002));
        assert_eq!(poll_bytes_value(0xFF, 0x7F), 0x7FFF);
    }

    #[test]
    fn replies_and_echoes() {
        assert_eq!(decode_spi(&[1, 2, 3, 4]), SpiReply::Complete([1, 2, 3, 4]));
        assert_eq!(decode_spi(&[]), SpiReply::Short { got: 0 });
        assert_eq!(decode_spi(&[1, 2, 3, 4, 5]), SpiReply::Short { got: 5 });
        assert!(echoed([0xAC, 0x53, 0, 0], [0x00, 0xAC, 0x53, 0x00]));
        assert!(!echoed([0xAC, 0x53, 0, 0], [0xFF, 0xFF, 0xFF, 0xFF]));
        assert!(check_block(8, 8).is_ok());
        assert_eq!(check_block(8, 0).unwrap_err(), "received 0 of 8 byte(s)");
    }

    #[test]
    fn only_instructions_that_change_the_target_need_their_echo() {
        assert!(changes_target(isp::chip_erase()));
        assert!(changes_target(isp::write_flash_page(0x100)));
        assert!(changes_target(isp::write_fuse(
            crate::part::FuseKind::High,
            0xD8
        )));
        assert!(!changes_target(isp::programming_enable()));
        assert!(!changes_target(isp::read_signature(0)));
        assert!(!changes_target(isp::poll_ready()));
        assert!(!changes_target([0x12, 0x34, 0x56, 0x78]));
        assert!(missing_echo(isp::chip_erase(), [0xFF; 4]).contains("AC 80 00 00"));
    }
}
