//! Page writes and memory reads, with the fewest round trips the firmware allows.

use super::BusPirate;
use super::protocol;
use crate::error::{Memory, Result};
use crate::isp::{self, Instruction};
use crate::part::Part;
use crate::transport::SerialLink;

/// Below this many bytes a bulk read near the 0xFFFF limit is not worth its round trip; the
/// rest goes instruction by instruction.
const MIN_BULK_READ: u32 = 64;

impl<L: SerialLink> BusPirate<L> {
    /// Writes one page: its load instructions and the page write go to the target in one
    /// write-then-read where the firmware has it. The target's programming time then overlaps
    /// with whatever comes next ([`BusPirate::settle`]).
    pub(super) fn write_page_now(
        &mut self,
        part: &Part,
        mem: Memory,
        addr: u32,
        data: &[u8],
    ) -> Result<()> {
        let during = format!("writing the {mem} page at 0x{addr:05X}");
        let offsets = (addr..).zip(data.iter().copied());
        match mem {
            Memory::Flash => {
                let mut cmds: Vec<Instruction> = offsets
                    .map(|(a, b)| isp::load_flash_page_byte(a, b))
                    .collect();
                cmds.push(isp::write_flash_page(addr));
                self.clock_out(&cmds, &during)?;
                self.target_busy_for(part.timing.flash_page_us);
            }
            Memory::Eeprom if part.eeprom_page_ops => {
                let mut cmds: Vec<Instruction> = offsets
                    .map(|(a, b)| isp::load_eeprom_page_byte(a, b))
                    .collect();
                cmds.push(isp::write_eeprom_page(addr));
                self.clock_out(&cmds, &during)?;
                self.target_busy_for(part.timing.eeprom_write_us);
            }
            Memory::Eeprom => {
                // No page instructions (ATmega32A): byte writes, each waited for in full.
                for (a, b) in offsets {
                    let during = format!("writing EEPROM byte 0x{a:04X} = 0x{b:02X}");
                    self.clock_out(&[isp::write_eeprom(a, b)], &during)?;
                    self.target_busy_for(part.timing.eeprom_write_us);
                }
            }
        }
        Ok(())
    }

    /// Clocks instructions whose answers are not needed.
    fn clock_out(&mut self, cmds: &[Instruction], during: &str) -> Result<()> {
        if self.features.write_then_read {
            let payload: Vec<u8> = cmds.iter().flatten().copied().collect();
            for chunk in payload.chunks(protocol::WRITE_THEN_READ_MAX) {
                self.write_then_read(chunk, during)?;
            }
            Ok(())
        } else {
            self.instructions(cmds, during).map(|_| ())
        }
    }

    /// Reads memory: flash through the AVR extended bulk read where there is one, everything
    /// else instruction by instruction.
    pub(super) fn read_now(&mut self, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        match mem {
            Memory::Flash if self.features.avr_extended.is_some() => {
                self.read_flash_bulk(addr, buf)
            }
            _ => self.read_by_instructions(mem, addr, buf),
        }
    }

    /// Flash through bulk reads, each within the firmware's word + byte ≤ 0xFFFF check and the
    /// chunk size; what the check leaves at the very top goes instruction by instruction.
    fn read_flash_bulk(&mut self, addr: u32, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr + done as u32;
            let word = at / 2;
            // The firmware starts at a word's low byte; an odd start reads one byte more.
            let skip = at % 2;
            let wanted = (buf.len() - done) as u32 + skip;
            let allowed = protocol::BULK_READ_LIMIT.saturating_sub(word);
            let len = wanted.min(allowed).min(self.bulk_read_chunk());
            if len <= skip || (len < wanted && len < MIN_BULK_READ) {
                return self.read_by_instructions(Memory::Flash, at, &mut buf[done..]);
            }
            let request = protocol::bulk_read_request(word, len);
            let during = format!(
                "reading {len} flash bytes from 0x{:05X} (AVR extended bulk read)",
                word * 2
            );
            self.settle(request.len());
            let head = self.exchange(&request, 2, 0, &during)?;
            if head != [protocol::ACK, protocol::ACK] {
                return Err(self.unexpected(&during, &head));
            }
            let timeout = self.deadline(0, len as usize, 4 * len as usize);
            let data = self.receive(len as usize, timeout, &during)?;
            let useful = &data[skip as usize..];
            buf[done..done + useful.len()].copy_from_slice(useful);
            done += useful.len();
        }
        Ok(())
    }

    /// One read instruction per byte, streamed where the firmware keeps up.
    fn read_by_instructions(&mut self, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        let cmds: Vec<Instruction> = (addr..)
            .take(buf.len())
            .map(|a| match mem {
                Memory::Flash => isp::read_flash_byte(a),
                Memory::Eeprom => isp::read_eeprom(a),
            })
            .collect();
        let during = format!("reading {} {mem} bytes from 0x{addr:05X}", buf.len());
        let responses = self.instructions(&cmds, &during)?;
        for (slot, r) in buf.iter_mut().zip(responses) {
            *slot = r[3];
        }
        Ok(())
    }
}
