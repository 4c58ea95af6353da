//! `usbtiny`: the USBtinyISP (Adafruit), SparkFun PocketAVR and Arduino-branded USBtiny
//! programmers, over vendor control transfers (facts sheet §4).
//!
//! # How it uses the protocol
//!
//! - **Session**: POWERUP with RESET low and the SCK period, 20 ms (the datasheet's minimum;
//!   avrdude waits 50), then Programming Enable through the SPI request. Without the 0x53 echo
//!   RESET is pulsed (POWERUP high, POWERUP low) and it is tried again, 4 tries in all, as
//!   avrdude does. POWERDOWN releases the target.
//! - **Echo check**: the firmware returns all 4 bytes of every SPI instruction, so the target's
//!   echo of byte 2 is visible. Programming Enable is retried on it; any instruction that
//!   changes the target (loads, page writes, erase, fuse and lock writes) fails without it, so
//!   a mis-clocked write is never reported as done (avrdude HEAD fails every instruction
//!   without it; 7.1 effectively ignored it). Reads return what came back: the block reads
//!   have no echo to check at all, so reads are judged by their contents (the signature's
//!   plausibility, verify), which is how the job layer finds a too-fast clock and steps down.
//! - **Bit clock**: [`Programmer::set_sck`] picks the shortest period whose *real* SCK (the
//!   bit loop costs 23 cycles on top of the delay, see [`clock`]) does not exceed the request.
//!   Inside a session it resends POWERUP with RESET low, which changes nothing else.
//! - **Flash pages**: one FLASH_WRITE with the whole page (the firmware takes any OUT length;
//!   avrdude splits it into 128-byte chunks), no firmware polling (page-buffer loads cannot be
//!   polled), then Write Page through SPI with the full word address, then RDY/BSY: the first
//!   poll is timed to land when the datasheet time is up (one round trip early), then it polls
//!   until ready. Parts without RDY/BSY (ATmega32A) wait the datasheet time.
//! - **Reads**: FLASH_READ / EEPROM_READ in blocks of up to 255 bytes (the firmware's IN limit;
//!   avrdude reads 128), fewer at slow clocks so that one transfer stays under a second.
//! - **Above 64 KB** (AT90USB1286/1287 upper half): the firmware's address counter is 16 bits
//!   and its read instruction can only carry word addresses below 0x8000, so no bulk request
//!   reaches there, and Load Extended Address (word bits 23..16) cannot help. Reads use one
//!   SPI request per byte, like avrdude ≥ 7.0. Writes still go in bulk: the page-load
//!   instruction only uses the offset within the page, so FLASH_WRITE with the address's low
//!   16 bits fills the buffer correctly and Write Page carries the full address.
//! - **EEPROM**: parts with EEPROM page instructions get Load EEPROM Page per byte and one
//!   Write EEPROM Page (one write time per page instead of one per byte); the ATmega32A, which
//!   has none, gets one EEPROM_WRITE per page with the firmware polling each byte (poll bytes
//!   0xFF, the erased value, which cannot be polled, so the firmware waits the timeout).
//! - **Chip erase**: the erase instruction, then RDY/BSY as for pages; no re-entry (avrdude
//!   re-initializes, which these parts do not need).

pub mod clock;
mod memory;
pub mod protocol;

use std::time::{Duration, Instant};

use self::protocol::{RESET_HIGH, RESET_LOW, SpiReply, request};
use super::control::{Firmware, HostClock, Request, Transfers};
use super::{Capabilities, Programmer, ProgrammerInfo, check_page, check_range};
use crate::catalog::UsbId;
use crate::emulate::fault::Faults;
use crate::emulate::socket::SharedSocket;
use crate::emulate::usb::{EmulatedUsbLink, SharedUsbDevice, lock_device};
use crate::error::{Error, Memory, Result};
use crate::isp::{self, Instruction};
use crate::part::{FuseKind, Part};
use crate::transport::{UsbDeviceLink, UsbFilter, UsbLink, UsbOpenOptions};
use crate::util::hex_bytes;

/// The driver's name.
pub const DRIVER: &str = "usbtiny";

/// USB ids of USBtiny-protocol programmers, in the order they are looked for: the USBtinyISP
/// / PocketAVR id, then Arduino's two (avrdude's `arduinoisp` and `arduinoisporg`). No strings
/// are checked, as in avrdude.
pub const USB_IDS: [UsbId; 3] = [
    UsbId::new(0x1781, 0x0C9F),
    UsbId::new(0x2341, 0x0049),
    UsbId::new(0x2A03, 0x0049),
];

/// The firmware, for transfer messages.
const FIRMWARE: Firmware = Firmware {
    driver: DRIVER,
    request_name: protocol::request_name,
    empty_reply_hint: "the firmware ignores SPI and block requests until POWERUP: enter programming mode first",
};

/// Programming Enable tries, with a RESET pulse between them (avrdude).
const ENABLE_TRIES: usize = 4;

/// Wait after RESET goes low before Programming Enable (datasheet: at least 20 ms).
const RESET_SETTLE: Duration = Duration::from_millis(20);

/// The firmware time one block transfer should stay under at slow clocks.
const MAX_TRANSFER_WORK: Duration = Duration::from_secs(1);

/// About how long one job-level read call should take, so that progress and cancel respond.
const READ_CALL_TARGET: Duration = Duration::from_millis(250);

/// What the interrupt load of a NAK-retrying host does to the firmware's speed, for
/// estimates (the emulator models it; see `docs/timing/usbtiny.md`).
const TYPICAL_STRETCH: u32 = 5; // in halves: 2.5×

/// Driver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The SCK period in µs to start with (1..=250); avrdude's default is 10 (84 kHz real).
    /// [`Programmer::set_sck`] changes it.
    pub sck_period_us: u8,
    /// Extra attempts of a transfer that timed out or came back short.
    pub retries: u8,
    /// Timeout of a transfer on top of the firmware's expected work (avrdude: 500 ms).
    pub base_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sck_period_us: clock::DEFAULT_PERIOD,
            retries: 2,
            base_timeout: Duration::from_millis(500),
        }
    }
}

/// Options for [`emulated`].
#[derive(Debug, Clone, Default)]
pub struct EmulatedOptions {
    /// The driver's options.
    pub driver: Options,
    /// Faults the emulated firmware commits.
    pub faults: Faults,
    /// Make transfers take the modeled time in wall time too.
    pub realtime: bool,
}

/// A USBtiny programmer on a USB link.
pub struct UsbTiny<L: UsbLink> {
    io: Transfers<L>,
    period: u8,
    in_session: bool,
    poll_bytes: Option<[u8; 2]>,
    clock: HostClock,
    /// The last SPI request's round trip, to time the first RDY/BSY poll.
    spi_round_trip: Duration,
}

impl<L: UsbLink> UsbTiny<L> {
    /// A driver on `link`. Nothing is sent until [`Programmer::enter`].
    pub fn new(link: L, options: Options) -> Self {
        UsbTiny {
            io: Transfers::new(link, FIRMWARE, options.retries, options.base_timeout),
            period: options
                .sck_period_us
                .clamp(clock::PERIOD_MIN, clock::PERIOD_MAX),
            in_session: false,
            poll_bytes: None,
            clock: HostClock::Real(Instant::now()),
            spi_round_trip: Duration::ZERO,
        }
    }

    /// Makes waits move this emulated board's clock instead of sleeping: for links to an
    /// emulated programmer (see [`emulated`]), whose time is virtual.
    pub fn on_virtual_clock(mut self, socket: SharedSocket) -> Self {
        self.clock = HostClock::Virtual(socket);
        self
    }

    /// The SCK period in µs currently selected.
    pub fn sck_period_us(&self) -> u8 {
        self.period
    }

    /// Bytes per block-read transfer at the current clock: the firmware's 255, fewer when
    /// one transfer would keep the firmware busy for more than a second.
    pub fn transfer_chunk(&self) -> usize {
        let per_byte = byte_work(self.period).as_nanos().max(1);
        let fit = MAX_TRANSFER_WORK.as_nanos() / per_byte;
        usize::try_from(fit)
            .unwrap_or(usize::MAX)
            .clamp(8, protocol::MAX_IN_BYTES)
    }

    /// POWERUP with the current period and this RESET level.
    fn powerup(&mut self, reset: u16) -> Result<()> {
        let req = Request {
            request: request::POWERUP,
            value: u16::from(self.period),
            index: reset,
        };
        let level = if reset == RESET_LOW { "low" } else { "high" };
        self.io
            .control(req, &|| format!("driving RESET {level} (POWERUP)"))
    }

    /// One ISP instruction through the SPI request; the raw 4 bytes back.
    fn spi(&mut self, cmd: Instruction) -> Result<Instruction> {
        let (value, index) = protocol::spi_setup(cmd);
        let req = Request {
            request: request::SPI,
            value,
            index,
        };
        let mut reply = [0u8; 4];
        let start = self.clock.now();
        // One instruction is as much SPI work as one byte of a block read.
        self.io.read(req, &mut reply, byte_work(self.period), &|| {
            format!("ISP instruction {}", hex_bytes(&cmd))
        })?;
        self.spi_round_trip = self.clock.now().saturating_sub(start);
        match protocol::decode_spi(&reply) {
            SpiReply::Complete(response) => Ok(response),
            SpiReply::Short { got } => Err(Error::protocol(
                DRIVER,
                format!("ISP instruction {}: {got} of 4 bytes", hex_bytes(&cmd)),
            )),
        }
    }

    /// An instruction that changes the target: it must be echoed.
    fn spi_checked(&mut self, cmd: Instruction) -> Result<Instruction> {
        let response = self.spi(cmd)?;
        if protocol::echoed(cmd, response) {
            Ok(response)
        } else {
            Err(Error::protocol(
                DRIVER,
                format!(
                    "{}; lower the ISP clock or check the wiring",
                    protocol::missing_echo(cmd, response)
                ),
            ))
        }
    }
}

/// Estimated firmware time per byte of a block request at `period` (4 SPI bytes plus the
/// code around them, stretched by a typical interrupt load).
fn byte_work(period: u8) -> Duration {
    let cycles = 32 * u64::from(clock::bit_cycles(period)) + 120;
    let ns = clock::cycles_ns(cycles) * u64::from(TYPICAL_STRETCH) / 2;
    Duration::from_nanos(ns)
}

impl UsbTiny<UsbDeviceLink> {
    /// Opens the first connected USBtiny programmer (by VID:PID, see [`USB_IDS`]).
    pub fn open(options: Options) -> Result<Self> {
        let link = UsbDeviceLink::open(&UsbFilter::ids(&USB_IDS), UsbOpenOptions::default())?;
        Ok(Self::new(link, options))
    }
}

/// The driver wired to an emulated USBtiny on `socket`, in-process (port `emulated`); also
/// returns the emulated device, for its stats. Waits move the board's virtual clock instead
/// of sleeping, unless `realtime` is set. `part` is not needed: the protocol carries no part
/// parameters (it is taken for the same signature as the other drivers).
pub fn emulated(
    part: &Part,
    socket: SharedSocket,
    options: EmulatedOptions,
) -> Result<(UsbTiny<EmulatedUsbLink>, SharedUsbDevice)> {
    let _ = part;
    let device = crate::emulate::usbtiny::device(socket.clone(), options.faults);
    lock_device(&device).set_realtime(options.realtime);
    let mut driver = UsbTiny::new(EmulatedUsbLink::new(device.clone()), options.driver);
    if !options.realtime {
        driver = driver.on_virtual_clock(socket);
    }
    Ok((driver, device))
}

impl<L: UsbLink> Programmer for UsbTiny<L> {
    fn info(&self) -> ProgrammerInfo {
        let call = byte_work(self.period) * self.transfer_chunk() as u32;
        let transfers = (READ_CALL_TARGET.as_nanos() / call.as_nanos().max(1)).clamp(1, 16);
        ProgrammerInfo {
            driver: DRIVER,
            firmware: "USBtiny (USBtinyISP / PocketAVR)".into(),
            port: self.io.name().to_string(),
            capabilities: Capabilities {
                set_sck: true,
                sck_range_hz: Some((
                    clock::sck_hz(clock::PERIOD_MAX),
                    clock::sck_hz(clock::PERIOD_MIN),
                )),
                read_chunk: (self.transfer_chunk() as u128 * transfers) as u32,
            },
        }
    }

    fn enter(&mut self, part: &Part) -> Result<()> {
        let _ = part;
        self.powerup(RESET_LOW)?;
        self.in_session = true;
        self.clock.sleep(RESET_SETTLE);
        let mut last = [0u8; 4];
        for attempt in 1..=ENABLE_TRIES {
            last = self.spi(isp::programming_enable())?;
            if isp::in_sync(last) {
                return Ok(());
            }
            if attempt < ENABLE_TRIES {
                self.powerup(RESET_HIGH)?;
                self.powerup(RESET_LOW)?;
                self.clock.sleep(RESET_SETTLE);
            }
        }
        Err(Error::NoTarget {
            detail: format!(
                "Programming Enable was not echoed in {ENABLE_TRIES} tries with RESET pulses (last reply {})",
                hex_bytes(&last)
            ),
            causes: crate::job::detect::no_target_causes(DRIVER, self.sck_hz()),
        })
    }

    fn leave(&mut self) -> Result<()> {
        self.in_session = false;
        self.poll_bytes = None;
        let req = Request {
            request: request::POWERDOWN,
            value: 0,
            index: 0,
        };
        self.io
            .control(req, &|| "releasing the target (POWERDOWN)".to_string())
    }

    fn command(&mut self, cmd: Instruction) -> Result<Instruction> {
        if protocol::changes_target(cmd) {
            self.spi_checked(cmd)
        } else {
            self.spi(cmd)
        }
    }

    fn chip_erase(&mut self, part: &Part) -> Result<()> {
        self.spi_checked(isp::chip_erase())?;
        self.wait_done(part, part.timing.chip_erase_us, "chip erase")
    }

    fn write_page(&mut self, part: &Part, mem: Memory, addr: u32, data: &[u8]) -> Result<()> {
        check_page(part, mem, addr, data)?;
        let result = match mem {
            Memory::Flash => self.write_flash_page(part, addr, data),
            Memory::Eeprom => self.write_eeprom_page(part, addr, data),
        };
        result.map_err(|source| Error::PageWrite {
            memory: mem,
            page_addr: addr,
            source: Box::new(source),
        })
    }

    fn read(&mut self, part: &Part, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        check_range(part, mem, addr, buf.len())?;
        if mem == Memory::Eeprom {
            // Every EEPROM fits the 16-bit counter.
            return self.read_blocks(mem, addr, buf);
        }
        let bulk_end = protocol::BULK_ADDRESS_LIMIT.saturating_sub(addr);
        let split = buf.len().min(bulk_end as usize);
        let (low, high) = buf.split_at_mut(split);
        if !low.is_empty() {
            self.read_blocks(mem, addr, low)?;
        }
        if !high.is_empty() {
            self.read_high_flash(addr + split as u32, high)?;
        }
        Ok(())
    }

    fn write_fuse(&mut self, part: &Part, kind: FuseKind, value: u8) -> Result<()> {
        if part.fuse(kind).is_none() {
            // The chip would ignore the instruction and the write would look done.
            return Err(Error::invalid(format!(
                "the {} has no {kind} to write",
                part.name
            )));
        }
        self.spi_checked(isp::write_fuse(kind, value))?;
        self.wait(super::fuse_write_time(part));
        Ok(())
    }

    fn set_sck(&mut self, hz: u32) -> Result<u32> {
        let period = clock::period_for_hz(hz);
        if period != self.period {
            self.period = period;
            if self.in_session {
                // RESET stays low: the target stays in programming mode.
                self.powerup(RESET_LOW)?;
            }
        }
        Ok(clock::sck_hz(period))
    }

    fn sck_hz(&self) -> Option<u32> {
        Some(clock::sck_hz(self.period))
    }

    fn wait(&mut self, duration: Duration) {
        self.clock.sleep(duration);
    }
}
