//! Flash and EEPROM through the block requests, and waiting for the target's writes.

use std::time::Duration;

use super::protocol::{self, request};
use super::{DRIVER, UsbTiny, byte_work};
use crate::error::{Memory, Result};
use crate::isp;
use crate::part::Part;
use crate::programmer::control::Request;
use crate::programmer::control::wait_until_ready;
use crate::transport::UsbLink;

impl<L: UsbLink> UsbTiny<L> {
    /// Waits until a write or erase that takes at most `max_us` has finished (RDY/BSY,
    /// through the SPI request).
    pub(super) fn wait_done(&mut self, part: &Part, max_us: u32, what: &str) -> Result<()> {
        let clock = self.clock.clone();
        let round_trip = self.spi_round_trip;
        wait_until_ready(&clock, part, max_us, round_trip, what, DRIVER, &mut || {
            self.spi(isp::poll_ready())
        })
    }

    /// Reads `buf.len()` bytes from `addr` with block requests (`addr + len` ≤ 64 KB).
    pub(super) fn read_blocks(&mut self, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        let req_no = match mem {
            Memory::Flash => request::FLASH_READ,
            Memory::Eeprom => request::EEPROM_READ,
        };
        let chunk = self.transfer_chunk();
        let mut at = addr;
        for block in buf.chunks_mut(chunk) {
            let req = Request {
                request: req_no,
                value: 0,
                index: at as u16,
            };
            let work = byte_work(self.period) * block.len() as u32;
            let len = block.len();
            self.io.read(req, block, work, &|| {
                format!("reading {len} byte(s) of {mem} at 0x{at:05X}")
            })?;
            at += len as u32;
        }
        Ok(())
    }

    /// Reads flash above 64 KB one SPI request per byte (no block request reaches there).
    pub(super) fn read_high_flash(&mut self, addr: u32, buf: &mut [u8]) -> Result<()> {
        for (i, slot) in buf.iter_mut().enumerate() {
            *slot = self.spi(isp::read_flash_byte(addr + i as u32))?[3];
        }
        Ok(())
    }

    pub(super) fn write_flash_page(&mut self, part: &Part, addr: u32, data: &[u8]) -> Result<()> {
        let req = Request {
            request: request::FLASH_WRITE,
            // No firmware polling: page-buffer loads do not change flash.
            value: 0,
            // Only the offset within the page matters to the load instruction.
            index: addr as u16,
        };
        let work = byte_work(self.period) * data.len() as u32;
        self.io.write(req, data, work, &|| {
            format!("loading the page buffer for 0x{addr:05X}")
        })?;
        self.spi_checked(isp::write_flash_page(addr))?;
        self.wait_done(part, part.timing.flash_page_us, "flash page write")
    }

    pub(super) fn write_eeprom_page(&mut self, part: &Part, addr: u32, data: &[u8]) -> Result<()> {
        if part.eeprom_page_ops {
            for (i, &byte) in data.iter().enumerate() {
                self.spi_checked(isp::load_eeprom_page_byte(addr + i as u32, byte))?;
            }
            self.spi_checked(isp::write_eeprom_page(addr))?;
            return self.wait_done(part, part.timing.eeprom_write_us, "EEPROM page write");
        }
        self.set_poll_bytes([0xFF, 0xFF])?;
        let req = Request {
            request: request::EEPROM_WRITE,
            value: self.poll_timeout(part.timing.eeprom_write_us),
            index: addr as u16,
        };
        let write = Duration::from_micros(u64::from(part.timing.eeprom_write_us));
        let work = (byte_work(self.period) + write) * data.len() as u32;
        self.io.write(req, data, work, &|| {
            format!("writing {} EEPROM byte(s) at 0x{addr:04X}", data.len())
        })
    }

    /// The firmware's poll timeout for a write taking `us`: its loop counts `32 × period` per
    /// round, so the real wait is never shorter than this. Kept a step below 65536: the
    /// firmware's 16-bit counter would wrap and poll forever.
    fn poll_timeout(&self, us: u32) -> u16 {
        let step = 32 * u32::from(self.period);
        us.min(u32::from(u16::MAX) - step) as u16
    }

    fn set_poll_bytes(&mut self, bytes: [u8; 2]) -> Result<()> {
        if self.poll_bytes == Some(bytes) {
            return Ok(());
        }
        let req = Request {
            request: request::POLL_BYTES,
            value: protocol::poll_bytes_value(bytes[0], bytes[1]),
            index: 0,
        };
        self.io
            .control(req, &|| "setting the EEPROM poll bytes".to_string())?;
        self.poll_bytes = Some(bytes);
        Ok(())
    }
}
