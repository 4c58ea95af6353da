//! Flash and EEPROM through the block requests, and the addressing they need.

use super::protocol::{self, block_flag, request};
use super::{DRIVER, UsbAsp};
use crate::error::{Error, Memory, Result};
use crate::isp;
use crate::part::Part;
use crate::programmer::control::Request;
use crate::transport::UsbLink;

impl<L: UsbLink> UsbAsp<L> {
    /// How a block at `addr` of `len` bytes is addressed: in wValue while the 16-bit field
    /// reaches and the firmware still reads it; otherwise a SETLONGADDRESS before each try.
    fn addressing(&mut self, addr: u32, len: usize) -> (u16, Option<Request>) {
        let end = u64::from(addr) + len as u64;
        if end > u64::from(protocol::SHORT_ADDRESS_LIMIT) {
            self.long_address_mode = true;
        }
        if !self.long_address_mode {
            return (addr as u16, None);
        }
        let (value, index) = protocol::long_address_setup(addr);
        let preamble = Request {
            request: request::SETLONGADDRESS,
            value,
            index,
        };
        // wValue as avrdude fills it (the firmware ignores it in this mode).
        (addr as u16, Some(preamble))
    }

    /// Reads `buf.len()` bytes from `addr` with READFLASH / READEEPROM blocks.
    pub(super) fn read_blocks(&mut self, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        let req_no = match mem {
            Memory::Flash => request::READFLASH,
            Memory::Eeprom => request::READEEPROM,
        };
        let chunk = self.transfer_chunk();
        let mut at = addr;
        for block in buf.chunks_mut(chunk) {
            let len = block.len();
            let (value, preamble) = self.addressing(at, len);
            let req = Request {
                request: req_no,
                value,
                index: 0,
            };
            let work = self.byte_work() * len as u32;
            self.io.read_after(preamble, req, block, work, &|| {
                format!("reading {len} byte(s) of {mem} at 0x{at:05X}")
            })?;
            at += len as u32;
        }
        Ok(())
    }

    /// One flash page: WRITEFLASH with the FIRST flag; the firmware writes the page and waits
    /// for it inside the transfer.
    pub(super) fn write_flash_page(&mut self, part: &Part, addr: u32, data: &[u8]) -> Result<()> {
        let page_size = u16::try_from(data.len()).map_err(|_| {
            Error::invalid(format!(
                "internal: a {}-byte flash page is too big for WRITEFLASH",
                data.len()
            ))
        })?;
        let (value, preamble) = self.addressing(addr, data.len());
        let req = Request {
            request: request::WRITEFLASH,
            value,
            index: protocol::write_flash_index(page_size, block_flag::FIRST),
        };
        // Loading, plus the firmware's own wait: 4.8 ms, or polls for up to 30 × 320 µs.
        let firmware_wait = std::time::Duration::from_micros(9_600);
        let work = self.byte_work() * data.len() as u32 + firmware_wait;
        self.io.write_after(preamble, req, data, work, &|| {
            format!("writing the flash page at 0x{addr:05X}")
        })?;
        // The firmware waited 4.8 ms or saw the page's last byte read back; a part that may
        // take longer gets the rest of its time through RDY/BSY.
        if part.timing.flash_page_us > 4_800 {
            let rest = part.timing.flash_page_us - 4_800;
            self.wait_done(part, rest, "flash page write")?;
        }
        Ok(())
    }

    /// One EEPROM page: page instructions through TRANSMIT where the part has them, else one
    /// WRITEEEPROM (byte writes with the firmware's fixed 9.6 ms each).
    pub(super) fn write_eeprom_page(&mut self, part: &Part, addr: u32, data: &[u8]) -> Result<()> {
        if part.eeprom_page_ops {
            for (i, &byte) in data.iter().enumerate() {
                self.transmit_checked(isp::load_eeprom_page_byte(addr + i as u32, byte))?;
            }
            self.transmit_checked(isp::write_eeprom_page(addr))?;
            return self.wait_done(part, part.timing.eeprom_write_us, "EEPROM page write");
        }
        const FIRMWARE_BYTE_WAIT_US: u32 = 9_600;
        if part.timing.eeprom_write_us > FIRMWARE_BYTE_WAIT_US {
            return Err(Error::protocol(
                DRIVER,
                format!(
                    "the {}'s EEPROM write time ({} µs) is longer than the USBasp firmware waits per byte ({FIRMWARE_BYTE_WAIT_US} µs)",
                    part.name, part.timing.eeprom_write_us
                ),
            ));
        }
        let (value, preamble) = self.addressing(addr, data.len());
        let req = Request {
            request: request::WRITEEEPROM,
            value,
            index: 0,
        };
        let per_byte = std::time::Duration::from_micros(u64::from(FIRMWARE_BYTE_WAIT_US));
        let work = (self.byte_work() + per_byte) * data.len() as u32;
        self.io.write_after(preamble, req, data, work, &|| {
            format!("writing {} EEPROM byte(s) at 0x{addr:05X}", data.len())
        })
    }
}
