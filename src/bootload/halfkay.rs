//! HalfKay, PJRC's HID bootloader on the Teensy 2.0 (and Teensy++ 2.0), as teensy_loader_cli
//! drives it (PaulStoffregen/teensy_loader_cli, tag 2.2 as Debian ships it):
//!
//! - The bootloader enumerates as `16C0:0478`, a HID device; the loader detaches the kernel's
//!   HID driver and claims interface 0.
//! - Each block is one HID SET_REPORT control transfer: bmRequestType 0x21, bRequest 9
//!   (SET_REPORT), wValue 0x0200 (output report 0), wIndex 0. Its data is a 2-byte address
//!   header and one block: on the ATmega32U4 the byte address little-endian and 128 bytes
//!   (130 in all); on the AT90USB1286 the address shifted right by 8 (bits 8..23) and 256
//!   bytes. Bytes the .hex file does not set are sent as 0xFF.
//! - Blocks go in ascending address order below the code size (32256 bytes on the 32U4: the
//!   top 512 bytes are HalfKay). Blocks with no data, or only 0xFF, are skipped, except the
//!   first block, which is always written: HalfKay erases the chip on it, so its transfer may
//!   take long (a 5 s budget instead of 0.5 s).
//! - A failed transfer is retried every 10 ms until the block's budget is spent.
//! - Finally a report with address 0xFFFF (bytes 0xFF 0xFF 0xFF, then zeros) makes HalfKay
//!   reboot into the new program. HalfKay cannot read flash back, so nothing is verified.

use std::time::Duration;

use super::host::Clock;
use crate::catalog::UsbId;
use crate::error::{Error, Result};
use crate::transport::{UsbLink, request_type};

/// The driver name in errors.
pub const DRIVER: &str = "halfkay";

/// The USB id HalfKay enumerates as.
pub const HALFKAY_USB: UsbId = UsbId::new(0x16C0, 0x0478);

/// HID SET_REPORT.
pub const SET_REPORT: u8 = 9;
/// wValue of the write: report type output (2), report id 0.
pub const REPORT_VALUE: u16 = 0x0200;

/// The transfer budget of the first block (it erases the chip).
pub const FIRST_BLOCK_BUDGET: Duration = Duration::from_secs(5);
/// The transfer budget of every other block, and of the reboot report.
pub const BLOCK_BUDGET: Duration = Duration::from_millis(500);
/// The pause between retries.
pub const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// How the report header carries the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressHeader {
    /// Bits 0..15, little-endian (code below 64 KB).
    LowBytes,
    /// Bits 8..23, little-endian (256-byte blocks above 64 KB).
    PageNumber,
}

/// HalfKay's block layout on one MCU (teensy_loader_cli's MCU table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Part id (`atmega32u4`).
    pub part: &'static str,
    /// The board, for messages.
    pub board: &'static str,
    /// Bytes of flash the loader may write (HalfKay sits above).
    pub code_size: u32,
    /// Bytes per block.
    pub block_size: u32,
    /// The address header.
    pub header: AddressHeader,
}

/// The Teensy 2.0.
pub const TEENSY2: Layout = Layout {
    part: "atmega32u4",
    board: "Teensy 2.0",
    code_size: 32_256,
    block_size: 128,
    header: AddressHeader::LowBytes,
};

/// The Teensy++ 2.0.
pub const TEENSY2PP: Layout = Layout {
    part: "at90usb1286",
    board: "Teensy++ 2.0",
    code_size: 130_048,
    block_size: 256,
    header: AddressHeader::PageNumber,
};

impl Layout {
    /// The layout for a part id, if a Teensy with HalfKay uses that MCU.
    pub fn for_part(part_id: &str) -> Option<Layout> {
        [TEENSY2, TEENSY2PP]
            .into_iter()
            .find(|l| l.part.eq_ignore_ascii_case(part_id))
    }

    /// Bytes in one report: header and block.
    pub fn report_len(&self) -> usize {
        self.block_size as usize + 2
    }

    /// The report that writes `block` (at most one block; missing bytes are 0xFF) at
    /// `addr`, which must be block-aligned and below the code size.
    pub fn block_report(&self, addr: u32, block: &[u8]) -> Result<Vec<u8>> {
        if !addr.is_multiple_of(self.block_size)
            || addr >= self.code_size
            || block.len() > self.block_size as usize
        {
            return Err(Error::invalid(format!(
                "internal: HalfKay block at 0x{addr:05X} of {} bytes is not one aligned {}-byte block below 0x{:05X}",
                block.len(),
                self.block_size,
                self.code_size
            )));
        }
        let mut report = vec![0xFF; self.report_len()];
        report[..2].copy_from_slice(&self.header_bytes(addr));
        report[2..2 + block.len()].copy_from_slice(block);
        Ok(report)
    }

    /// The reboot report: address 0xFFFF.
    pub fn boot_report(&self) -> Vec<u8> {
        let mut report = vec![0u8; self.report_len()];
        report[..3].fill(0xFF);
        report
    }

    /// The address header for a block address.
    pub fn header_bytes(&self, addr: u32) -> [u8; 2] {
        let field = match self.header {
            AddressHeader::LowBytes => addr,
            AddressHeader::PageNumber => addr >> 8,
        };
        [field as u8, (field >> 8) as u8]
    }

    /// What a report asks for: `None` for the reboot report, else the block address.
    pub fn decode_header(&self, header: [u8; 2]) -> Option<u32> {
        if header == [0xFF, 0xFF] {
            return None;
        }
        let field = u32::from(u16::from_le_bytes(header));
        Some(match self.header {
            AddressHeader::LowBytes => field,
            AddressHeader::PageNumber => field << 8,
        })
    }
}

/// A HalfKay client on a USB link.
pub struct HalfKay<U: UsbLink> {
    link: U,
    layout: Layout,
    blocks_written: u32,
}

impl<U: UsbLink> HalfKay<U> {
    /// Wraps an open link to a HalfKay device.
    pub fn new(link: U, layout: Layout) -> Self {
        HalfKay {
            link,
            layout,
            blocks_written: 0,
        }
    }

    /// The layout in use.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The link's name.
    pub fn port(&self) -> &str {
        self.link.name()
    }

    /// Gives the link back.
    pub fn into_link(self) -> U {
        self.link
    }

    /// Writes one block, retrying as teensy_loader_cli does. The first block written
    /// gets the long budget (HalfKay erases the chip on it).
    pub fn write_block(&mut self, clock: &mut dyn Clock, addr: u32, block: &[u8]) -> Result<()> {
        let report = self.layout.block_report(addr, block)?;
        let budget = if self.blocks_written == 0 {
            FIRST_BLOCK_BUDGET
        } else {
            BLOCK_BUDGET
        };
        self.send(clock, &report, budget, &format!("block at 0x{addr:05X}"))?;
        self.blocks_written += 1;
        Ok(())
    }

    /// Sends the reboot report; HalfKay starts the new program.
    pub fn reboot(&mut self, clock: &mut dyn Clock) -> Result<()> {
        let report = self.layout.boot_report();
        self.send(clock, &report, BLOCK_BUDGET, "reboot report")
    }

    /// One SET_REPORT, retried every 10 ms until `budget` is spent. A device that is gone
    /// fails at once: it will not come back within the budget.
    fn send(
        &mut self,
        clock: &mut dyn Clock,
        report: &[u8],
        budget: Duration,
        what: &str,
    ) -> Result<()> {
        let deadline = clock.now() + budget;
        let mut attempts = 0u32;
        loop {
            let left = deadline.saturating_sub(clock.now());
            attempts += 1;
            let error = match self.link.control_out(
                request_type::CLASS_INTERFACE_OUT,
                SET_REPORT,
                REPORT_VALUE,
                0,
                report,
                left.max(Duration::from_millis(1)),
            ) {
                Ok(_) => return Ok(()),
                Err(e @ Error::Link { .. }) => return Err(e),
                Err(e) => e,
            };
            if clock.now() + RETRY_PAUSE >= deadline {
                return Err(Error::Timeout {
                    port: self.link.name().to_string(),
                    waited: budget,
                    during: format!(
                        "HalfKay did not accept the {what} ({attempts} attempt(s); last error: {error})"
                    ),
                });
            }
            clock.sleep(RETRY_PAUSE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teensy2_reports_carry_the_byte_address() {
        let report = TEENSY2.block_report(0x1280, &[1, 2, 3]).unwrap();
        assert_eq!(report.len(), 130);
        assert_eq!(&report[..5], &[0x80, 0x12, 1, 2, 3]);
        assert!(report[5..].iter().all(|&b| b == 0xFF));
        assert_eq!(TEENSY2.decode_header([0x80, 0x12]), Some(0x1280));
    }

    #[test]
    fn teensy2pp_reports_carry_the_page_number() {
        let report = TEENSY2PP.block_report(0x1_2300, &[0xAB; 256]).unwrap();
        assert_eq!(report.len(), 258);
        assert_eq!(&report[..3], &[0x23, 0x01, 0xAB]);
        assert_eq!(TEENSY2PP.decode_header([0x23, 0x01]), Some(0x1_2300));
    }

    #[test]
    fn the_reboot_report_is_address_ffff() {
        let report = TEENSY2.boot_report();
        assert_eq!(report.len(), 130);
        assert_eq!(&report[..4], &[0xFF, 0xFF, 0xFF, 0x00]);
        assert_eq!(TEENSY2.decode_header([0xFF, 0xFF]), None);
    }

    #[test]
    fn refuses_blocks_it_cannot_send() {
        assert!(TEENSY2.block_report(0x7E00, &[0]).is_err(), "HalfKay's own");
        assert!(TEENSY2.block_report(0x0040, &[0]).is_err(), "unaligned");
        assert!(TEENSY2.block_report(0, &[0; 129]).is_err(), "too long");
    }

    #[test]
    fn layouts_by_part() {
        assert_eq!(Layout::for_part("ATmega32U4"), Some(TEENSY2));
        assert_eq!(Layout::for_part("at90usb1286"), Some(TEENSY2PP));
        assert_eq!(Layout::for_part("atmega328p"), None);
    }
}
