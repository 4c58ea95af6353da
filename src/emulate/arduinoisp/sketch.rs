//! The ArduinoISP sketch (arduino/arduino-examples 4c5fa7a6, facts sheet §2.8), command by
//! command: the same reads from the host, the same SPI transactions in the same order, the
//! same replies, delays and quirks. Each handler names the sketch function it follows.

use std::time::Duration;

use super::board::{FirmwareCosts, SPI_HZ};
use super::{SketchBuild, SketchStatus};
use crate::emulate::serial::{FirmwareIo, Stop};
use crate::programmer::stk500v1::wire::{
    ARDUINOISP_SIGN_ON, EOP, MEMTYPE_EEPROM, MEMTYPE_FLASH, cmd, parm, resp,
};

/// `HWVER`, `SWMAJ`, `SWMIN`.
const HW_VERSION: u8 = 2;
const SW_MAJOR: u8 = 1;
const SW_MINOR: u8 = 18;

/// `uint8_t buff[256]`.
const BUFFER_SIZE: usize = 256;
/// `EECHUNK`: EEPROM data is read from the host in pieces of this size.
const EEPROM_CHUNK: u16 = 32;
/// `PTIME`: the PROG_FLICKER pause after each flash page commit.
const PTIME: Duration = Duration::from_millis(30);
/// `delay(45)` after each EEPROM byte.
const EEPROM_BYTE_DELAY: Duration = Duration::from_millis(45);

type Step<T = ()> = Result<T, Stop>;

/// The `parameter` struct filled by SET_DEVICE (only the fields the sketch uses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Params {
    pub devicecode: u8,
    pub pagesize: u16,
    pub eepromsize: u16,
}

/// The sketch's globals.
pub(super) struct Sketch {
    costs: FirmwareCosts,
    build: SketchBuild,
    /// `int error`: an AVR `int`, 16 bits.
    error: i16,
    pmode: bool,
    /// `unsigned int here`: the word address set by LOAD_ADDRESS.
    here: u16,
    /// `buff[]`. The real buffer is 256 bytes and a longer PROG_PAGE overruns it (undefined
    /// behaviour: it tramples the globals after it). The emulator grows the buffer instead,
    /// as if nothing else were hit, and counts the overrun.
    buff: Vec<u8>,
    params: Params,
    rst_active_high: bool,
    buffer_overruns: u64,
}

impl Sketch {
    /// The globals at power-up (zeroed `.bss`).
    pub fn power_on(costs: FirmwareCosts, build: SketchBuild) -> Self {
        Sketch {
            costs,
            build,
            error: 0,
            pmode: false,
            here: 0,
            buff: vec![0; BUFFER_SIZE],
            params: Params::default(),
            rst_active_high: false,
            buffer_overruns: 0,
        }
    }

    /// Copies what a test can observe (LEDs, registers) into `status`.
    pub fn report(&self, status: &mut SketchStatus) {
        status.pmode = self.pmode;
        status.error = self.error;
        status.here = self.here;
        status.pagesize = self.params.pagesize;
        status.eepromsize = self.params.eepromsize;
        status.devicecode = self.params.devicecode;
        status.rst_active_high = self.rst_active_high;
        status.buffer_overruns = self.buffer_overruns;
    }

    // ----- serial helpers --------------------------------------------------------------

    /// `getch()`.
    fn getch(&mut self, io: &mut FirmwareIo) -> Step<u8> {
        let b = io.getch()?;
        io.delay_ns(self.costs.getch_ns);
        Ok(b)
    }

    /// `SERIAL.print((char) b)` for each byte.
    fn put(&mut self, io: &mut FirmwareIo, bytes: &[u8]) {
        io.write(bytes);
        io.delay_ns(self.costs.putch_ns * bytes.len() as u64);
    }

    /// `fill(n)`: `n` is an `int`, so a length with bit 15 set reads nothing.
    fn fill(&mut self, io: &mut FirmwareIo, n: i16) -> Step {
        let n = usize::try_from(n).unwrap_or(0);
        if n > BUFFER_SIZE {
            self.buffer_overruns += 1;
        }
        for x in 0..n {
            let b = self.getch(io)?;
            match self.buff.get_mut(x) {
                Some(slot) => *slot = b,
                None => self.buff.push(b),
            }
        }
        Ok(())
    }

    /// `buff[x]`, whatever it holds (stale bytes included).
    fn buff_at(&self, x: usize) -> u8 {
        self.buff.get(x).copied().unwrap_or(0)
    }

    fn error_inc(&mut self) {
        self.error = self.error.wrapping_add(1);
    }

    /// `empty_reply()`.
    fn empty_reply(&mut self, io: &mut FirmwareIo) -> Step {
        if self.getch(io)? == EOP {
            self.put(io, &[resp::INSYNC, resp::OK]);
        } else {
            self.error_inc();
            self.put(io, &[resp::NOSYNC]);
        }
        Ok(())
    }

    /// `breply(b)`.
    fn breply(&mut self, io: &mut FirmwareIo, b: u8) -> Step {
        if self.getch(io)? == EOP {
            self.put(io, &[resp::INSYNC, b, resp::OK]);
        } else {
            self.error_inc();
            self.put(io, &[resp::NOSYNC]);
        }
        Ok(())
    }

    // ----- target helpers --------------------------------------------------------------

    /// `spi_transaction(a, b, c, d)`: returns the 4th byte shifted in.
    fn spi_transaction(&mut self, io: &mut FirmwareIo, bytes: [u8; 4]) -> u8 {
        let miso = bytes.map(|b| io.spi_byte(b, SPI_HZ));
        io.delay_ns(self.costs.transaction_ns + 4 * self.costs.spi_byte_gap_ns);
        miso[3]
    }

    /// `reset_target(reset)`: drives the RESET pin; an AVR is in reset while it is low.
    fn reset_target(&self, io: &mut FirmwareIo, reset: bool) {
        let pin_high = (reset && self.rst_active_high) || (!reset && !self.rst_active_high);
        io.set_reset(!pin_high);
    }

    /// `start_pmode()`: RESET active, SCK low, 20 ms, a 100 µs positive pulse on RESET, 50 ms,
    /// Programming Enable. The echo is never looked at.
    fn start_pmode(&mut self, io: &mut FirmwareIo) {
        self.reset_target(io, true);
        io.set_sck_level(false);
        io.delay(Duration::from_millis(20));
        self.reset_target(io, false);
        io.delay(Duration::from_micros(100));
        self.reset_target(io, true);
        io.delay(Duration::from_millis(50));
        self.spi_transaction(io, [0xAC, 0x53, 0x00, 0x00]);
        self.pmode = true;
    }

    /// `end_pmode()`: SPI off, MOSI and SCK inputs, RESET inactive and then an input (the
    /// target's pull-up keeps it released).
    fn end_pmode(&mut self, io: &mut FirmwareIo) {
        self.reset_target(io, false);
        io.set_reset(false);
        self.pmode = false;
    }

    // ----- commands ---------------------------------------------------------------------

    /// `avrisp()`: one command from the host. `ch` is its first byte.
    pub fn command(&mut self, io: &mut FirmwareIo, ch: u8) -> Step {
        match ch {
            cmd::GET_SYNC => {
                self.error = 0;
                self.empty_reply(io)
            }
            cmd::GET_SIGN_ON => {
                if self.getch(io)? == EOP {
                    self.put(io, &[resp::INSYNC]);
                    self.put(io, ARDUINOISP_SIGN_ON);
                    self.put(io, &[resp::OK]);
                } else {
                    self.error_inc();
                    self.put(io, &[resp::NOSYNC]);
                }
                Ok(())
            }
            cmd::GET_PARAMETER => {
                let value = match self.getch(io)? {
                    parm::HW_VER => HW_VERSION,
                    parm::SW_MAJOR => SW_MAJOR,
                    parm::SW_MINOR => SW_MINOR,
                    parm::PROGMODE => b'S',
                    _ => 0,
                };
                self.breply(io, value)
            }
            cmd::SET_DEVICE => {
                self.fill(io, 20)?;
                self.set_parameters();
                self.empty_reply(io)
            }
            // Extended parameters: read and ignored.
            cmd::SET_DEVICE_EXT => {
                self.fill(io, 5)?;
                self.empty_reply(io)
            }
            cmd::ENTER_PROGMODE => {
                if !self.pmode {
                    self.start_pmode(io);
                }
                self.empty_reply(io)
            }
            cmd::LOAD_ADDRESS => {
                let lo = self.getch(io)?;
                let hi = self.getch(io)?;
                self.here = u16::from_le_bytes([lo, hi]);
                self.empty_reply(io)
            }
            cmd::PROG_FLASH => {
                self.getch(io)?;
                self.getch(io)?;
                self.empty_reply(io)
            }
            cmd::PROG_DATA => {
                self.getch(io)?;
                self.empty_reply(io)
            }
            cmd::PROG_PAGE => self.program_page(io),
            cmd::READ_PAGE => self.read_page(io),
            cmd::UNIVERSAL => self.universal(io),
            cmd::LEAVE_PROGMODE => {
                self.error = 0;
                self.end_pmode(io);
                self.empty_reply(io)
            }
            cmd::READ_SIGN => self.read_signature(io),
            // Expecting a command, not CRC_EOP: this is how the host gets back in step.
            EOP => {
                self.error_inc();
                self.put(io, &[resp::NOSYNC]);
                Ok(())
            }
            _ => {
                self.error_inc();
                let reply = if self.getch(io)? == EOP {
                    resp::UNKNOWN
                } else {
                    resp::NOSYNC
                };
                self.put(io, &[reply]);
                Ok(())
            }
        }
    }

    /// `set_parameters()` from the 20 bytes in `buff`.
    fn set_parameters(&mut self) {
        let be16 = |i: usize| u16::from_be_bytes([self.buff_at(i), self.buff_at(i + 1)]);
        self.params = Params {
            devicecode: self.buff_at(0),
            pagesize: be16(12),
            eepromsize: be16(14),
        };
        // AVR devices have an active-low reset, AT89Sx an active-high one.
        self.rst_active_high = self.params.devicecode >= 0xE0;
    }

    /// `universal()`: the transaction runs before the frame's end is checked.
    fn universal(&mut self, io: &mut FirmwareIo) -> Step {
        self.fill(io, 4)?;
        let bytes = [0, 1, 2, 3].map(|i| self.buff_at(i));
        let ch = self.spi_transaction(io, bytes);
        self.breply(io, ch)
    }

    /// `current_page()`: `here` rounded down to the page, for the page sizes the sketch knows.
    fn current_page(&self) -> u16 {
        match self.params.pagesize {
            32 => self.here & 0xFFF0,
            64 => self.here & 0xFFE0,
            128 => self.here & 0xFFC0,
            256 => self.here & 0xFF80,
            _ => self.here,
        }
    }

    /// `program_page()`.
    fn program_page(&mut self, io: &mut FirmwareIo) -> Step {
        let hi = self.getch(io)?;
        let lo = self.getch(io)?;
        let length = u16::from_be_bytes([hi, lo]);
        match self.getch(io)? {
            MEMTYPE_FLASH => self.write_flash(io, length as i16),
            MEMTYPE_EEPROM => {
                // The EEPROM is written before the frame's end is checked.
                let result = self.write_eeprom(io, length)?;
                if self.getch(io)? == EOP {
                    self.put(io, &[resp::INSYNC, result]);
                } else {
                    self.error_inc();
                    self.put(io, &[resp::NOSYNC]);
                }
                Ok(())
            }
            // A lone FAILED; the rest of the frame is then read as commands.
            _ => {
                self.put(io, &[resp::FAILED]);
                Ok(())
            }
        }
    }

    /// `write_flash(int length)`: INSYNC goes out before the page is written.
    fn write_flash(&mut self, io: &mut FirmwareIo, length: i16) -> Step {
        self.fill(io, length)?;
        if self.getch(io)? == EOP {
            self.put(io, &[resp::INSYNC]);
            let result = self.write_flash_pages(io, length);
            self.put(io, &[result]);
        } else {
            self.error_inc();
            self.put(io, &[resp::NOSYNC]);
        }
        Ok(())
    }

    /// `write_flash_pages(int length)`: two page-buffer loads per word (an odd length loads
    /// the stale byte after the data), a commit whenever `here` crosses a page, and one at the
    /// end.
    fn write_flash_pages(&mut self, io: &mut FirmwareIo, length: i16) -> u8 {
        let length = i32::from(length);
        let mut x = 0i32;
        let mut page = self.current_page();
        while x < length {
            if page != self.current_page() {
                self.commit(io, page);
                page = self.current_page();
            }
            let [addr_hi, addr_lo] = self.here.to_be_bytes();
            let low = self.buff_at(x as usize);
            self.spi_transaction(io, [0x40, addr_hi, addr_lo, low]);
            let high = self.buff_at(x as usize + 1);
            self.spi_transaction(io, [0x48, addr_hi, addr_lo, high]);
            x += 2;
            self.here = self.here.wrapping_add(1);
        }
        self.commit(io, page);
        resp::OK
    }

    /// `commit(addr)`: Write Program Memory Page, then (PROG_FLICKER) 30 ms with the
    /// programming LED off.
    fn commit(&mut self, io: &mut FirmwareIo, addr: u16) {
        let [hi, lo] = addr.to_be_bytes();
        self.spi_transaction(io, [0x4C, hi, lo, 0x00]);
        if self.build.prog_flicker {
            io.delay(PTIME);
        }
    }

    /// `write_eeprom(length)`: `here` is a word address, so the sketch writes at `here × 2`;
    /// longer than the EEPROM fails without reading the data (which desynchronises the host).
    fn write_eeprom(&mut self, io: &mut FirmwareIo, length: u16) -> Step<u8> {
        let mut start = self.here.wrapping_mul(2);
        if length > self.params.eepromsize {
            self.error_inc();
            return Ok(resp::FAILED);
        }
        let mut remaining = length;
        while remaining > EEPROM_CHUNK {
            self.write_eeprom_chunk(io, start, EEPROM_CHUNK)?;
            start = start.wrapping_add(EEPROM_CHUNK);
            remaining -= EEPROM_CHUNK;
        }
        self.write_eeprom_chunk(io, start, remaining)?;
        Ok(resp::OK)
    }

    /// `write_eeprom_chunk(start, length)`: byte writes (`C0`) with a fixed 45 ms each.
    fn write_eeprom_chunk(&mut self, io: &mut FirmwareIo, start: u16, length: u16) -> Step {
        self.fill(io, length as i16)?;
        for x in 0..length {
            let [hi, lo] = start.wrapping_add(x).to_be_bytes();
            let value = self.buff_at(usize::from(x));
            self.spi_transaction(io, [0xC0, hi, lo, value]);
            io.delay(EEPROM_BYTE_DELAY);
        }
        Ok(())
    }

    /// `read_page()`: the frame's end is checked first; then INSYNC, the data as it is read,
    /// and the result (FAILED for an unknown memory type).
    fn read_page(&mut self, io: &mut FirmwareIo) -> Step {
        let hi = self.getch(io)?;
        let lo = self.getch(io)?;
        let length = u16::from_be_bytes([hi, lo]) as i16;
        let memtype = self.getch(io)?;
        if self.getch(io)? != EOP {
            self.error_inc();
            self.put(io, &[resp::NOSYNC]);
            return Ok(());
        }
        self.put(io, &[resp::INSYNC]);
        let result = match memtype {
            MEMTYPE_FLASH => self.flash_read_page(io, length),
            MEMTYPE_EEPROM => self.eeprom_read_page(io, length),
            _ => resp::FAILED,
        };
        self.put(io, &[result]);
        io.count_page_read();
        Ok(())
    }

    /// `flash_read_page(int length)`: whole words, so an odd length reads one byte more.
    fn flash_read_page(&mut self, io: &mut FirmwareIo, length: i16) -> u8 {
        let mut x = 0i16;
        while x < length {
            let [hi, lo] = self.here.to_be_bytes();
            let low = self.spi_transaction(io, [0x20, hi, lo, 0x00]);
            self.put(io, &[low]);
            let high = self.spi_transaction(io, [0x28, hi, lo, 0x00]);
            self.put(io, &[high]);
            self.here = self.here.wrapping_add(1);
            x = x.saturating_add(2);
        }
        resp::OK
    }

    /// `eeprom_read_page(int length)`: bytes from `here × 2` (the 4th byte sent is 0xFF).
    fn eeprom_read_page(&mut self, io: &mut FirmwareIo, length: i16) -> u8 {
        let start = self.here.wrapping_mul(2);
        for x in 0..length.max(0) as u16 {
            let [hi, lo] = start.wrapping_add(x).to_be_bytes();
            let value = self.spi_transaction(io, [0xA0, hi, lo, 0xFF]);
            self.put(io, &[value]);
        }
        resp::OK
    }

    /// `read_signature()`.
    fn read_signature(&mut self, io: &mut FirmwareIo) -> Step {
        if self.getch(io)? != EOP {
            self.error_inc();
            self.put(io, &[resp::NOSYNC]);
            return Ok(());
        }
        self.put(io, &[resp::INSYNC]);
        for index in 0..3 {
            let value = self.spi_transaction(io, [0x30, 0x00, index, 0x00]);
            self.put(io, &[value]);
        }
        self.put(io, &[resp::OK]);
        Ok(())
    }
}
