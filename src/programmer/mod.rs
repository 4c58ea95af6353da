//! The `Programmer` trait: one implementation per ISP programmer protocol.
//!
//! Drivers are small: the only required operations are entering/leaving programming mode and
//! passing one raw 4-byte ISP instruction. Everything else has a default built on
//! [`Programmer::command`] and [`crate::isp`], which drivers override where their protocol has a
//! faster bulk path (paged writes, block reads).
//!
//! Addresses are **byte** addresses everywhere in this trait; drivers convert to word addresses
//! where their protocol wants them.

use std::time::{Duration, Instant};

use crate::error::{Error, Memory, Result};
use crate::isp;
use crate::part::{FuseKind, Part};

/// What a programmer can do beyond the basics.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Capabilities {
    /// The ISP clock can be changed from the host.
    pub set_sck: bool,
    /// Slowest and fastest ISP clock the firmware offers, in Hz.
    pub sck_range_hz: Option<(u32, u32)>,
    /// Preferred number of bytes per read call (the job reads in chunks of this size so that
    /// progress and cancel stay responsive without wasting round trips).
    pub read_chunk: u32,
}

/// A description of a connected programmer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProgrammerInfo {
    /// Driver id, e.g. `avrisp`.
    pub driver: &'static str,
    /// What the firmware says about itself ("ArduinoISP, HW 2, SW 1.18").
    pub firmware: String,
    /// Port or USB id.
    pub port: String,
    /// Capabilities.
    pub capabilities: Capabilities,
}

/// One ISP programmer protocol.
///
/// Methods take the target [`Part`] where the protocol or the timing depends on it.
pub trait Programmer: Send {
    /// Describes the programmer.
    fn info(&self) -> ProgrammerInfo;

    /// Resets the target and enters programming mode (with the protocol's retries).
    fn enter(&mut self, part: &Part) -> Result<()>;

    /// Leaves programming mode and releases RESET so the target runs.
    fn leave(&mut self) -> Result<()>;

    /// Sends one raw 4-byte ISP instruction and returns the 4 bytes shifted back.
    ///
    /// Protocols that only return the last byte (STK500 UNIVERSAL) fill bytes 0..2 with
    /// command bytes 1..3, the way avrdude does, so that echo checks stay meaningful.
    fn command(&mut self, cmd: isp::Instruction) -> Result<isp::Instruction>;

    /// Erases flash, EEPROM (unless EESAVE) and lock bits, waits until done, and re-enters
    /// programming mode if the protocol needs it.
    fn chip_erase(&mut self, part: &Part) -> Result<()> {
        self.command(isp::chip_erase())?;
        wait_ready(self, part, part.timing.chip_erase_us)
    }

    /// Writes one page at `addr` (page-aligned). `data` is exactly one page of `mem`.
    fn write_page(&mut self, part: &Part, mem: Memory, addr: u32, data: &[u8]) -> Result<()> {
        check_page(part, mem, addr, data)?;
        match mem {
            Memory::Flash => {
                for (i, &b) in data.iter().enumerate() {
                    self.command(isp::load_flash_page_byte(addr + i as u32, b))?;
                }
                self.command(isp::write_flash_page(addr))?;
                wait_ready(self, part, part.timing.flash_page_us)
            }
            Memory::Eeprom if part.eeprom_page_ops => {
                for (i, &b) in data.iter().enumerate() {
                    self.command(isp::load_eeprom_page_byte(addr + i as u32, b))?;
                }
                self.command(isp::write_eeprom_page(addr))?;
                wait_ready(self, part, part.timing.eeprom_write_us)
            }
            Memory::Eeprom => {
                for (i, &b) in data.iter().enumerate() {
                    self.command(isp::write_eeprom(addr + i as u32, b))?;
                    wait_ready(self, part, part.timing.eeprom_write_us)?;
                }
                Ok(())
            }
        }
    }

    /// Reads `buf.len()` bytes of `mem` starting at `addr`.
    fn read(&mut self, part: &Part, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        check_range(part, mem, addr, buf.len())?;
        for (i, slot) in buf.iter_mut().enumerate() {
            let a = addr + i as u32;
            let cmd = match mem {
                Memory::Flash => isp::read_flash_byte(a),
                Memory::Eeprom => isp::read_eeprom(a),
            };
            *slot = self.command(cmd)?[3];
        }
        Ok(())
    }

    /// Reads the three signature bytes.
    fn read_signature(&mut self) -> Result<[u8; 3]> {
        let mut sig = [0u8; 3];
        for (i, s) in sig.iter_mut().enumerate() {
            *s = self.command(isp::read_signature(i as u8))?[3];
        }
        Ok(sig)
    }

    /// Reads calibration byte `index`.
    fn read_calibration(&mut self, index: u8) -> Result<u8> {
        Ok(self.command(isp::read_calibration(index))?[3])
    }

    /// Reads a fuse or the lock byte (raw, unmasked).
    fn read_fuse(&mut self, kind: FuseKind) -> Result<u8> {
        Ok(self.command(isp::read_fuse(kind))?[3])
    }

    /// Reads several fuse bytes, in order. Programmers that can carry several instructions in
    /// one exchange (STK500v1 frames, the Bus Pirate's bulk SPI) do it in one round trip.
    fn read_fuses(&mut self, kinds: &[FuseKind]) -> Result<Vec<u8>> {
        kinds.iter().map(|&kind| self.read_fuse(kind)).collect()
    }

    /// Writes a fuse or the lock byte and waits the datasheet's write time
    /// ([`fuse_write_time`]) without polling RDY/BSY: the caller reads the byte back to verify
    /// it, and that read is the completion check (as avrdude's read-back polling); only a
    /// mismatch is worth a poll ([`wait_ready`]) and a second read. The caller has already
    /// passed the value through the safety policy and set unimplemented bits to 1.
    fn write_fuse(&mut self, part: &Part, kind: FuseKind, value: u8) -> Result<()> {
        self.command(isp::write_fuse(kind, value))?;
        self.wait(fuse_write_time(part));
        Ok(())
    }

    /// Sets the ISP clock to at most `hz`; returns the clock actually chosen. It may be called
    /// inside a programming session and takes effect for the next instruction: a driver whose
    /// firmware only applies the clock at connect time reconnects and re-enters programming
    /// mode itself. The job layer uses this to start slow (a factory-fresh chip runs at 1 MHz),
    /// read the fuses, then raise the clock, and to step down when reads look corrupted.
    fn set_sck(&mut self, hz: u32) -> Result<u32> {
        let _ = hz;
        Err(Error::unsupported(self.info().driver, "set the ISP clock"))
    }

    /// The ISP clock currently in use, when the driver knows it.
    fn sck_hz(&self) -> Option<u32> {
        None
    }

    /// The part of flash this programmer can write, when that is less than all of it: a
    /// bootloader (`avr109`) cannot overwrite its own section. Known after
    /// [`Programmer::enter`]; the job refuses an image outside it before erasing anything.
    fn writable_flash(&self) -> Option<std::ops::Range<u32>> {
        None
    }

    /// Waits while the target works (a write it cannot be polled for). Real links sleep;
    /// a programmer wired straight to an emulated target lets virtual time pass instead.
    fn wait(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// How long a fuse or lock write is given before the byte is read back: the datasheet's
/// tWD_FUSE and 1/32 more for a slow on-chip oscillator.
pub fn fuse_write_time(part: &Part) -> Duration {
    let max = Duration::from_micros(u64::from(part.timing.fuse_write_us));
    max + max / 32
}

/// Waits until the target has finished a write: polls RDY/BSY where the part has it (never
/// longer than twice the datasheet maximum), otherwise sleeps the maximum.
pub fn wait_ready<P: Programmer + ?Sized>(prog: &mut P, part: &Part, max_us: u32) -> Result<()> {
    let max = Duration::from_micros(u64::from(max_us));
    if !part.rdy_bsy_poll {
        prog.wait(max);
        return Ok(());
    }
    let deadline = Instant::now() + max * 2 + Duration::from_millis(50);
    loop {
        if !isp::is_busy(prog.command(isp::poll_ready())?) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Protocol {
                programmer: prog.info().driver,
                reason: format!(
                    "the target stayed busy (RDY/BSY) for more than {} ms",
                    (max * 2).as_millis()
                ),
            });
        }
    }
}

/// Checks that a page write is aligned, one page long and inside the memory.
pub fn check_page(part: &Part, mem: Memory, addr: u32, data: &[u8]) -> Result<()> {
    let layout = match mem {
        Memory::Flash => part.flash,
        Memory::Eeprom => part.eeprom,
    };
    if !addr.is_multiple_of(layout.page_size) || data.len() as u32 != layout.page_size {
        return Err(Error::invalid(format!(
            "internal: {mem} page write at 0x{addr:05X} of {} bytes is not one aligned {}-byte page",
            data.len(),
            layout.page_size
        )));
    }
    check_range(part, mem, addr, data.len())
}

/// Checks that `[addr, addr + len)` lies inside the memory.
pub fn check_range(part: &Part, mem: Memory, addr: u32, len: usize) -> Result<()> {
    let size = match mem {
        Memory::Flash => part.flash.size,
        Memory::Eeprom => part.eeprom.size,
    };
    if u64::from(addr) + len as u64 > u64::from(size) {
        return Err(Error::invalid(format!(
            "{mem} range 0x{addr:05X}+{len} is outside the {}'s {size} bytes",
            part.name
        )));
    }
    Ok(())
}

pub mod buspirate;
pub mod control;
pub mod open;
pub mod sim;
pub mod stk500v1;
pub mod usbasp;
pub mod usbtiny;
