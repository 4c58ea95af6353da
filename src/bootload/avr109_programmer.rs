//! `-c avr109`: writing a keyboard firmware through the keyboard's own Caterina bootloader,
//! with the same jobs (flash, verify, read, EEPROM) as an ISP programmer.
//!
//! It is a bootloader, not an ISP programmer, and the [`Programmer`] methods say so:
//!
//! - no raw ISP instructions, no calibration byte, no fuse or lock writes
//!   ([`Error::Unsupported`]); fuses and lock bits can be read;
//! - "chip erase" is Caterina's `e`: the application section only; EEPROM, fuses, lock bits
//!   and the bootloader stay;
//! - flash below the boot section (from the high fuse, read when connecting) is all it can
//!   write: [`Programmer::writable_flash`] tells the job, which refuses a larger image before
//!   anything is erased;
//! - leaving sends `L` and `E`, so the new program starts.

use std::ops::Range;

use super::avr109::{Avr109, BootloaderInfo, DRIVER};
use crate::error::{Error, Memory, Result};
use crate::isp;
use crate::part::{FuseKind, Part};
use crate::programmer::{Capabilities, Programmer, ProgrammerInfo, check_page, check_range};
use crate::transport::SerialLink;

/// The baud rate `-c avr109` opens a port at unless told otherwise (Caterina ignores it).
pub const DEFAULT_BAUD: u32 = 57_600;

/// A Caterina (AVR109) bootloader used as a programmer.
pub struct Avr109Programmer<L: SerialLink> {
    client: Avr109<L>,
    /// The first byte of the bootloader's section, once known.
    boot_start: Option<u32>,
    /// `E` was sent: the bootloader is gone.
    exited: bool,
}

impl<L: SerialLink> Avr109Programmer<L> {
    /// Wraps a link to the bootloader; nothing is sent until [`Programmer::enter`].
    pub fn new(link: L) -> Self {
        Avr109Programmer {
            client: Avr109::new(link),
            boot_start: None,
            exited: false,
        }
    }

    /// What the bootloader reported, once connected.
    pub fn bootloader(&self) -> Option<&BootloaderInfo> {
        self.client.info()
    }

    fn connected(&mut self) -> Result<()> {
        if self.exited {
            return Err(Error::Link {
                port: self.client.port().to_string(),
                reason: "the bootloader was told to exit and has started the application".into(),
            });
        }
        if self.client.info().is_none() {
            self.client.connect()?;
        }
        Ok(())
    }

    /// Refuses writes into the bootloader's own section.
    fn check_writable(&self, part: &Part, addr: u32, len: usize) -> Result<()> {
        let boot_start = self.boot_start.unwrap_or(part.flash.size);
        if u64::from(addr) + len as u64 > u64::from(boot_start) {
            return Err(Error::Image(format!(
                "flash 0x{addr:05X}+{len} lies in the bootloader's own section (0x{boot_start:05X} up), which {DRIVER} cannot write"
            )));
        }
        Ok(())
    }
}

impl<L: SerialLink> Programmer for Avr109Programmer<L> {
    fn info(&self) -> ProgrammerInfo {
        let info = self.client.info();
        ProgrammerInfo {
            driver: DRIVER,
            firmware: info
                .map_or_else(|| "AVR109 bootloader".to_string(), BootloaderInfo::describe),
            port: self.client.port().to_string(),
            capabilities: Capabilities {
                set_sck: false,
                sck_range_hz: None,
                read_chunk: info.map_or(128, |i| u32::from(i.block_size)),
            },
        }
    }

    /// Signs on (once) and reads the high fuse to learn where the bootloader starts.
    fn enter(&mut self, part: &Part) -> Result<()> {
        self.connected()?;
        let hfuse = self.client.read_fuse(FuseKind::High)?;
        self.boot_start = Some(
            part.boot_section_for_hfuse(hfuse)
                .map_or(part.flash.size, |s| s.start_byte()),
        );
        Ok(())
    }

    /// Leaves programming mode and exits the bootloader, so the new program runs.
    fn leave(&mut self) -> Result<()> {
        if self.exited || self.client.info().is_none() {
            return Ok(());
        }
        self.client.leave_programming()?;
        self.client.exit()?;
        self.exited = true;
        Ok(())
    }

    fn command(&mut self, _cmd: isp::Instruction) -> Result<isp::Instruction> {
        Err(Error::unsupported(
            DRIVER,
            "send raw ISP instructions (it is a bootloader, not an ISP programmer)",
        ))
    }

    /// Caterina's `e`: erases the application section only.
    fn chip_erase(&mut self, _part: &Part) -> Result<()> {
        self.connected()?;
        self.client.erase_application()
    }

    fn write_page(&mut self, part: &Part, mem: Memory, addr: u32, data: &[u8]) -> Result<()> {
        check_page(part, mem, addr, data)?;
        self.connected()?;
        if mem == Memory::Flash {
            self.check_writable(part, addr, data.len())?;
        }
        self.client.write_block(mem, addr, data)
    }

    fn read(&mut self, part: &Part, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        check_range(part, mem, addr, buf.len())?;
        self.connected()?;
        self.client.read_block(mem, addr, buf)
    }

    fn read_signature(&mut self) -> Result<[u8; 3]> {
        self.connected()?;
        self.client.signature()
    }

    fn read_calibration(&mut self, _index: u8) -> Result<u8> {
        Err(Error::unsupported(DRIVER, "read the calibration byte"))
    }

    fn read_fuse(&mut self, kind: FuseKind) -> Result<u8> {
        self.connected()?;
        self.client.read_fuse(kind)
    }

    fn write_fuse(&mut self, _part: &Part, _kind: FuseKind, _value: u8) -> Result<()> {
        Err(Error::unsupported(
            DRIVER,
            "write fuses or lock bits (a bootloader cannot; use an ISP programmer)",
        ))
    }

    fn writable_flash(&self) -> Option<Range<u32>> {
        self.boot_start.map(|end| 0..end)
    }
}
