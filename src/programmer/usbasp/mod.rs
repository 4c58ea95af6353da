//! `usbasp`: Thomas Fischl's USBasp and its many clones (ATmega8/88 at 12 MHz on V-USB), over
//! vendor control transfers (facts sheet §3).
//!
//! # How it uses the protocol
//!
//! - **Finding it**: 16C0:05DC with the strings "www.fischl.de" / "USBasp" (the id is shared by
//!   every V-USB device, so the strings matter); failing that, the pre-2006 id 03EB:C7B4 (with a
//!   note to update the firmware). `usbasp-clone` takes 16C0:05DC without checking strings, as
//!   avrdude's `-c usbasp-clone` does.
//! - **Session**: GETCAPABILITIES (once; firmware before 2011 answers nothing, which means none),
//!   SETISPSCK with the clock code (firmware before 2009 answers nothing: the clock cannot be
//!   set and stays at its fixed 375 kHz; that is noted, not fatal), CONNECT (which applies the
//!   stored code and pulses RST), 20 ms for the target to settle (the datasheet's minimum;
//!   avrdude waits 100), then ENABLEPROG, which makes up to 32 Programming Enable tries with RST
//!   pulses inside the firmware. DISCONNECT releases the target.
//! - **Clock**: [`Programmer::set_sck`] picks the fastest code whose real rate does not exceed
//!   the request (3 MHz only where GETCAPABILITIES says so). The firmware applies a code only at
//!   CONNECT, so inside a session it sends SETISPSCK, CONNECT and ENABLEPROG again: RST is pulsed
//!   low-high-low, which re-enters programming mode and changes nothing on the chip.
//! - **Instructions**: TRANSMIT returns all 4 bytes, so the target's echo of byte 2 is visible;
//!   instructions that change the target fail without it (as in the USBtiny driver).
//! - **Flash pages**: one WRITEFLASH per page with the FIRST flag and the page size: the firmware
//!   loads the page, writes it when its page counter runs out, and waits inside the transfer (4.8
//!   ms when the page's last byte is 0xFF, else it polls that byte until it reads back). No LAST
//!   flag: with 256-byte pages the firmware's 8-bit counter makes LAST write the page a second
//!   time (avrdude never sets it either). avrdude also sends SETLONGADDRESS before every block;
//!   below 64 KB the 16-bit wValue carries the address, which saves a transfer per page.
//! - **Reads**: READFLASH / READEEPROM in blocks of up to 255 bytes (V-USB's one-byte length;
//!   avrdude reads one page per request), fewer at slow clocks so one transfer stays under a
//!   second.
//! - **Above 64 KB** (AT90USB128x upper half): SETLONGADDRESS before each block. From then on
//!   the firmware ignores wValue until the next CONNECT, so every later block carries its long
//!   address too, and a retried block re-sends it (the firmware's counter moved on).
//! - **EEPROM**: parts with EEPROM page instructions get Load EEPROM Page per byte and one Write
//!   EEPROM Page through TRANSMIT (one write time per page); the ATmega32A, which has none, gets
//!   one WRITEEEPROM per page (the firmware waits 9.6 ms after each byte, longer than the part's
//!   9 ms).
//! - **Chip erase**: the erase instruction, then RDY/BSY (or the datasheet time). avrdude
//!   re-initializes afterwards; the parts here stay in programming mode, so that is not needed.
//! - **TPI** requests exist in the firmware for ATtiny4/5/9/10; none of our parts speaks TPI, so
//!   the driver never sends them.

mod memory;
pub mod protocol;

use std::time::Duration;

use self::protocol::{SckOption, request};
use super::control::{Firmware, HostClock, Request, Transfers, wait_until_ready};
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

pub use crate::emulate::usbasp::{UsbAspVariant, emulated_device};

/// The driver's name.
pub const DRIVER: &str = "usbasp";

/// The USBasp's id since 2006 (Objective Development's shared V-USB id).
pub const USB_ID: UsbId = UsbId::new(0x16C0, 0x05DC);
/// The id of firmware before 2006-09-16.
pub const OLD_USB_ID: UsbId = UsbId::new(0x03EB, 0xC7B4);
/// Manufacturer string of Fischl's firmware.
pub const MANUFACTURER: &str = "www.fischl.de";
/// Product string.
pub const PRODUCT: &str = "USBasp";

/// The firmware, for transfer messages.
const FIRMWARE: Firmware = Firmware {
    driver: DRIVER,
    request_name: protocol::request_name,
    empty_reply_hint: "the firmware answers nothing to requests it does not know: is this a USBasp?",
};

/// Wait after CONNECT before Programming Enable (datasheet: at least 20 ms after RESET).
const RESET_SETTLE: Duration = Duration::from_millis(20);

/// The firmware time one block transfer should stay under at slow clocks.
const MAX_TRANSFER_WORK: Duration = Duration::from_secs(1);

/// About how long one job-level read call should take, so that progress and cancel respond.
const READ_CALL_TARGET: Duration = Duration::from_millis(250);

/// Firmware cycles per byte of a block request besides its SPI bits (the read/write
/// function's loop, the address arithmetic, four indirect `ispTransmit` calls); see
/// `docs/timing/usbasp.md`.
pub const BYTE_OVERHEAD_CYCLES: u32 = 150;

/// Driver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The ISP clock to start with, in Hz (default 187.5 kHz: safe for a factory-fresh chip
    /// at 1 MHz, which needs SCK below 250 kHz). [`Programmer::set_sck`] changes it.
    pub sck_hz: u32,
    /// Extra attempts of a transfer that timed out or came back short.
    pub retries: u8,
    /// Timeout of a transfer on top of the firmware's expected work.
    pub base_timeout: Duration,
    /// Accept any 16C0:05DC device without checking its strings (`usbasp-clone`).
    pub any_strings: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sck_hz: 187_500,
            retries: 2,
            base_timeout: Duration::from_millis(500),
            any_strings: false,
        }
    }
}

/// Options for [`emulated`].
#[derive(Debug, Clone, Default)]
pub struct EmulatedOptions {
    /// The driver's options.
    pub driver: Options,
    /// Which firmware the emulated programmer runs.
    pub variant: UsbAspVariant,
    /// Faults the emulated firmware commits.
    pub faults: Faults,
    /// Make transfers take the modeled time in wall time too.
    pub realtime: bool,
}

/// What the driver learned about the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SckControl {
    /// Not asked yet.
    Unknown,
    /// SETISPSCK works.
    Settable,
    /// Firmware before 2009: a fixed clock.
    Fixed,
}

/// A USBasp on a USB link.
pub struct UsbAsp<L: UsbLink> {
    io: Transfers<L>,
    wanted_hz: u32,
    option: SckOption,
    capabilities: Option<u32>,
    sck_control: SckControl,
    in_session: bool,
    /// SETLONGADDRESS was sent since the last CONNECT: wValue addresses are ignored now.
    long_address_mode: bool,
    clock: HostClock,
    /// The last TRANSMIT's round trip, to time the first RDY/BSY poll.
    transmit_round_trip: Duration,
    notes: Vec<String>,
}

impl<L: UsbLink> UsbAsp<L> {
    /// A driver on `link`. Nothing is sent until [`Programmer::enter`].
    pub fn new(link: L, options: Options) -> Self {
        UsbAsp {
            io: Transfers::new(link, FIRMWARE, options.retries, options.base_timeout),
            wanted_hz: options.sck_hz,
            option: protocol::option_for_hz(options.sck_hz, 0),
            capabilities: None,
            sck_control: SckControl::Unknown,
            in_session: false,
            long_address_mode: false,
            clock: HostClock::Real(std::time::Instant::now()),
            transmit_round_trip: Duration::ZERO,
            notes: Vec::new(),
        }
    }

    /// Makes waits move this emulated board's clock instead of sleeping: for links to an
    /// emulated programmer (see [`emulated`]), whose time is virtual.
    pub fn on_virtual_clock(mut self, socket: SharedSocket) -> Self {
        self.clock = HostClock::Virtual(socket);
        self
    }

    /// Adds a note about the firmware (shown in [`Programmer::info`]).
    fn note(&mut self, text: &str) {
        if !self.notes.iter().any(|n| n == text) {
            self.notes.push(text.to_string());
        }
    }

    /// What the firmware told us, for messages and tests: the capability word (once asked).
    pub fn capabilities(&self) -> Option<u32> {
        self.capabilities
    }

    /// Whether the firmware takes SETISPSCK (`None` before the first session).
    pub fn sck_settable(&self) -> Option<bool> {
        match self.sck_control {
            SckControl::Unknown => None,
            SckControl::Settable => Some(true),
            SckControl::Fixed => Some(false),
        }
    }

    /// The option in use.
    pub fn sck_option(&self) -> SckOption {
        self.option
    }

    /// A request without data, sent device-to-host with wLength 0 as avrdude sends them.
    fn control(&mut self, request: u8, value: u16, index: u16, what: &str) -> Result<()> {
        let req = Request {
            request,
            value,
            index,
        };
        self.io.control(req, &|| what.to_string())
    }

    /// A request that answers one status byte (ENABLEPROG, SETISPSCK): the byte, or `None`
    /// when the firmware answered nothing (a request it does not know).
    fn status(&mut self, request: u8, value: u16, what: &str) -> Result<Option<u8>> {
        let req = Request {
            request,
            value,
            index: 0,
        };
        let mut reply = [0u8; 1];
        match self
            .io
            .read_up_to(req, &mut reply, Duration::ZERO, &|| what.to_string())?
        {
            0 => Ok(None),
            _ => Ok(Some(reply[0])),
        }
    }

    /// GETCAPABILITIES, once per driver.
    fn ask_capabilities(&mut self) -> Result<u32> {
        if let Some(caps) = self.capabilities {
            return Ok(caps);
        }
        let req = Request {
            request: request::GETCAPABILITIES,
            value: 0,
            index: 0,
        };
        let mut reply = [0u8; 4];
        let got = self.io.read_up_to(req, &mut reply, Duration::ZERO, &|| {
            "asking the firmware's capabilities".to_string()
        })?;
        let caps = protocol::decode_capabilities(&reply[..got])
            .map_err(|reason| Error::protocol(DRIVER, reason))?;
        self.capabilities = Some(caps);
        self.option = protocol::option_for_hz(self.wanted_hz, caps);
        Ok(caps)
    }

    /// SETISPSCK with the current option; remembers a firmware that cannot.
    fn send_sck_option(&mut self) -> Result<()> {
        if self.sck_control == SckControl::Fixed {
            return Ok(());
        }
        let code = self.option.code;
        let what = format!("setting the ISP clock (code {code})");
        match self.status(request::SETISPSCK, u16::from(code), &what)? {
            Some(0) => self.sck_control = SckControl::Settable,
            Some(other) => {
                return Err(Error::protocol(
                    DRIVER,
                    format!("{what}: the firmware answered 0x{other:02X} instead of 0x00"),
                ));
            }
            None => {
                self.sck_control = SckControl::Fixed;
                self.option = protocol::applied_option(protocol::SCK_AUTO, false);
                self.note("cannot set SCK, firmware too old (fixed 375 kHz; update the USBasp firmware for slower and faster clocks)");
            }
        }
        Ok(())
    }

    /// CONNECT, the settle time, ENABLEPROG.
    fn connect_and_enable(&mut self) -> Result<()> {
        self.control(request::CONNECT, 0, 0, "connecting to the target (CONNECT)")?;
        self.in_session = true;
        self.long_address_mode = false;
        self.clock.sleep(RESET_SETTLE);
        match self.status(
            request::ENABLEPROG,
            0,
            "entering programming mode (ENABLEPROG)",
        )? {
            Some(0) => Ok(()),
            reply => Err(Error::NoTarget {
                detail: format!(
                    "the USBasp's 32 Programming Enable tries with RST pulses got no echo (ENABLEPROG answered {})",
                    reply.map_or("nothing".to_string(), |b| format!("0x{b:02X}"))
                ),
                causes: crate::job::detect::no_target_causes(DRIVER, self.sck_hz()),
            }),
        }
    }

    /// One ISP instruction through TRANSMIT; the raw 4 bytes back.
    fn transmit(&mut self, cmd: Instruction) -> Result<Instruction> {
        let (value, index) = protocol::transmit_setup(cmd);
        let req = Request {
            request: request::TRANSMIT,
            value,
            index,
        };
        let mut reply = [0u8; 4];
        let start = self.clock.now();
        self.io.read(req, &mut reply, self.byte_work(), &|| {
            format!("ISP instruction {}", hex_bytes(&cmd))
        })?;
        self.transmit_round_trip = self.clock.now().saturating_sub(start);
        Ok(reply)
    }

    /// An instruction that changes the target: it must be echoed.
    fn transmit_checked(&mut self, cmd: Instruction) -> Result<Instruction> {
        let response = self.transmit(cmd)?;
        if isp::echoed(cmd, response) {
            Ok(response)
        } else {
            Err(Error::protocol(
                DRIVER,
                format!(
                    "{}; lower the ISP clock or check the wiring",
                    isp::missing_echo(cmd, response)
                ),
            ))
        }
    }

    /// Waits for a write or erase through RDY/BSY polls (or the datasheet time).
    fn wait_done(&mut self, part: &Part, max_us: u32, what: &str) -> Result<()> {
        let clock = self.clock.clone();
        let round_trip = self.transmit_round_trip;
        wait_until_ready(&clock, part, max_us, round_trip, what, DRIVER, &mut || {
            self.transmit(isp::poll_ready())
        })
    }

    /// Estimated firmware time per byte of a block request: 4 SPI bytes plus the code around
    /// them.
    fn byte_work(&self) -> Duration {
        let spi_ns = 32 * 1_000_000_000 / u64::from(self.option.real_hz.max(1));
        let overhead_ns =
            u64::from(BYTE_OVERHEAD_CYCLES) * 1_000_000_000 / u64::from(protocol::F_CPU);
        Duration::from_nanos(spi_ns + overhead_ns)
    }

    /// Bytes per block transfer at the current clock: V-USB's 255, fewer when one transfer
    /// would keep the firmware busy for more than a second.
    pub fn transfer_chunk(&self) -> usize {
        let per_byte = self.byte_work().as_nanos().max(1);
        let fit = MAX_TRANSFER_WORK.as_nanos() / per_byte;
        usize::try_from(fit)
            .unwrap_or(usize::MAX)
            .clamp(8, protocol::MAX_IN_BYTES)
    }
}

impl UsbAsp<UsbDeviceLink> {
    /// Opens the first connected USBasp: 16C0:05DC with Fischl's strings (any strings with
    /// `any_strings`), else a device with the pre-2006 id.
    pub fn open(options: Options) -> Result<Self> {
        let filter = UsbFilter {
            ids: vec![USB_ID],
            manufacturer: (!options.any_strings).then(|| MANUFACTURER.to_string()),
            product: (!options.any_strings).then(|| PRODUCT.to_string()),
        };
        match UsbDeviceLink::open(&filter, UsbOpenOptions::default()) {
            Ok(link) => Ok(Self::new(link, options)),
            Err(first) => {
                match UsbDeviceLink::open(&UsbFilter::ids(&[OLD_USB_ID]), UsbOpenOptions::default())
                {
                    Ok(link) => {
                        let mut driver = Self::new(link, options);
                        driver.note("old USBasp id 03EB:C7B4: please update the firmware");
                        Ok(driver)
                    }
                    Err(_) => Err(first),
                }
            }
        }
    }
}

/// The driver wired to an emulated USBasp on `socket`, in-process (port `emulated`); also
/// returns the emulated device, for its stats. Waits move the board's virtual clock instead
/// of sleeping, unless `realtime` is set. `part` is not needed: the protocol carries no part
/// parameters but the page size, which comes with each write.
pub fn emulated(
    part: &Part,
    socket: SharedSocket,
    options: EmulatedOptions,
) -> Result<(UsbAsp<EmulatedUsbLink>, SharedUsbDevice)> {
    let _ = part;
    let device = emulated_device(socket.clone(), options.variant, options.faults);
    lock_device(&device).set_realtime(options.realtime);
    let mut driver = UsbAsp::new(EmulatedUsbLink::new(device.clone()), options.driver);
    if !options.realtime {
        driver = driver.on_virtual_clock(socket);
    }
    Ok((driver, device))
}

impl<L: UsbLink> Programmer for UsbAsp<L> {
    fn info(&self) -> ProgrammerInfo {
        let call = self.byte_work() * self.transfer_chunk() as u32;
        let transfers = (READ_CALL_TARGET.as_nanos() / call.as_nanos().max(1)).clamp(1, 16);
        let mut firmware = "USBasp (Fischl firmware)".to_string();
        for note in &self.notes {
            firmware.push_str("; ");
            firmware.push_str(note);
        }
        let has_3mhz = self.capabilities.unwrap_or(0) & protocol::CAP_3MHZ != 0;
        let fastest = if has_3mhz { 3_000_000 } else { 1_500_000 };
        let fixed = self.sck_control == SckControl::Fixed;
        ProgrammerInfo {
            driver: DRIVER,
            firmware,
            port: self.io.name().to_string(),
            capabilities: Capabilities {
                set_sck: !fixed,
                sck_range_hz: Some(if fixed {
                    (self.option.real_hz, self.option.real_hz)
                } else {
                    (protocol::SCK_OPTIONS[0].real_hz, fastest)
                }),
                read_chunk: (self.transfer_chunk() as u128 * transfers) as u32,
            },
        }
    }

    fn enter(&mut self, part: &Part) -> Result<()> {
        let _ = part;
        self.ask_capabilities()?;
        self.send_sck_option()?;
        self.connect_and_enable()
    }

    fn leave(&mut self) -> Result<()> {
        self.in_session = false;
        self.long_address_mode = false;
        self.control(
            request::DISCONNECT,
            0,
            0,
            "releasing the target (DISCONNECT)",
        )
    }

    fn command(&mut self, cmd: Instruction) -> Result<Instruction> {
        if isp::changes_target(cmd) {
            self.transmit_checked(cmd)
        } else {
            self.transmit(cmd)
        }
    }

    fn chip_erase(&mut self, part: &Part) -> Result<()> {
        self.transmit_checked(isp::chip_erase())?;
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
        self.read_blocks(mem, addr, buf)
    }

    fn write_fuse(&mut self, part: &Part, kind: FuseKind, value: u8) -> Result<()> {
        if part.fuse(kind).is_none() {
            // The chip would ignore the instruction and the write would look done.
            return Err(Error::invalid(format!(
                "the {} has no {kind} to write",
                part.name
            )));
        }
        self.transmit_checked(isp::write_fuse(kind, value))?;
        self.wait(super::fuse_write_time(part));
        Ok(())
    }

    fn set_sck(&mut self, hz: u32) -> Result<u32> {
        self.wanted_hz = hz;
        if self.sck_control == SckControl::Fixed {
            return Ok(self.option.real_hz);
        }
        let caps = self.capabilities.unwrap_or(0);
        let option = protocol::option_for_hz(hz, caps);
        if option != self.option {
            self.option = option;
            if self.in_session {
                // The firmware applies the code at CONNECT, which pulses RST: enter again.
                self.send_sck_option()?;
                self.connect_and_enable()?;
            }
        }
        Ok(self.option.real_hz)
    }

    fn sck_hz(&self) -> Option<u32> {
        Some(self.option.real_hz)
    }

    fn wait(&mut self, duration: Duration) {
        self.clock.sleep(duration);
    }
}
