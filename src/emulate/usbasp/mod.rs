//! The USBasp programmer firmware, emulated request by request: Thomas Fischl's USBasp
//! (ATmega8 at 12 MHz, V-USB), release 2011-05-28 (`main.c` 2009-02-28, `isp.c` 2010-01-19),
//! and as variants the 2007 releases (no SETISPSCK, no GETCAPABILITIES) and UsbAsp-flash's
//! 3 MHz option (facts sheet §3).
//!
//! # What it reproduces
//!
//! - **V-USB's control handling**: `usbFunctionSetup()` answers from an 8-byte reply buffer
//!   (cut to wLength when wLength < 256), or hands the data stage to `usbFunctionRead()` /
//!   `usbFunctionWrite()` in 8-byte packets. Without long transfers an IN data stage from the
//!   read function is wLength's **low byte** long (a wLength of 256 sends nothing). A read or
//!   write function called in the wrong state stalls the transfer. Requests the firmware does
//!   not know get no data (never a stall).
//! - **Every ISP request**: CONNECT applies the stored SCK code (the J3 "slow SCK" jumper forces
//!   8 kHz), clears the long-address mode, drives RST and SCK low and pulses RST for one
//!   `ispDelay()`; DISCONNECT releases the pins; TRANSMIT clocks 4 bytes; ENABLEPROG makes up
//!   to 32 Programming Enable tries, pulsing RST between them (the 2007 firmware pulsed SCK,
//!   which does not resynchronise a target held in reset); SETISPSCK stores the code for the
//!   next CONNECT; SETLONGADDRESS switches to the 32-bit address until the next CONNECT;
//!   GETCAPABILITIES answers TPI (and 3 MHz with the UsbAsp-flash variant).
//! - **Blocks**: READFLASH sends `20|(a&1)<<3, a>>9, a>>1, 0` per byte after a Load Extended
//!   Address whenever `a >> 17` changes; READEEPROM `A0 a>>8 a 0`. WRITEFLASH loads bytes,
//!   counts the page down in an 8-bit counter (FIRST restarts it), writes the page when it
//!   reaches 0, and waits 4.8 ms when the page's last byte is 0xFF, else polls that byte until
//!   it is not 0xFF, for up to 30 × 320 µs. With the LAST flag a pending partial page is written
//!   at the end; with 256-byte pages the 8-bit counter never equals the page size, so LAST
//!   writes the final page a second time. Page size 0 writes byte by byte with polling (for
//!   AT90S parts). WRITEEEPROM writes each byte and waits a fixed 9.6 ms.
//! - **Crashes**: before the first CONNECT the `ispTransmit` function pointer is null and any
//!   request that clocks SPI jumps to address 0: the firmware restarts (the host sees the
//!   transfer fail, the firmware comes back in its power-up state). After DISCONNECT in a
//!   hardware-SPI mode the SPI is off and the wait for its flag never ends: the device stops
//!   answering until it is unplugged.
//! - **TPI** requests (ATtiny4/5/9/10) are not emulated: no part in the database speaks TPI.
//!   They are stalled, so a client that sends them sees a clear failure instead of made-up
//!   data.
//!
//! # Timing
//!
//! Link time is [`vusb::low_speed_timing`]; the firmware's own time is in [`cpu`]: CPU work
//! stretched by the NAK interrupt load, hardware SPI and timer waits not stretched.
//! `docs/timing/usbasp.md` derives the constants and compares with avrdude runs.

mod cpu;
mod descriptors;

pub use descriptors::{BCD_DEVICE, MANUFACTURER, PID, PRODUCT, VID};

use super::fault::Faults;
use super::socket::SharedSocket;
use super::usb::{
    EmulatedUsbDevice, Setup, SharedUsbDevice, UsbFirmware, UsbIdentity, UsbIo, UsbReply, UsbTiming,
};
use super::vusb;
use crate::programmer::usbasp::protocol::{
    self, CAP_3MHZ, CAP_TPI, MAX_IN_BYTES, block_flag, request,
};

/// Which firmware release the emulated USBasp runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Release {
    /// usbasp.2011-05-28: SCK codes, capabilities, RST-pulse resync.
    #[default]
    Y2011,
    /// usbasp.2007-10-23: fixed 375 kHz (8 kHz with the jumper), no SETISPSCK, no
    /// GETCAPABILITIES, SCK-pulse resync.
    Y2007,
}

/// The emulated USBasp's build and board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsbAspVariant {
    /// Firmware release.
    pub release: Release,
    /// UsbAsp-flash's 3 MHz code (capability bit 24); only with [`Release::Y2011`].
    pub three_mhz: bool,
    /// The J3 "slow SCK" jumper is set: CONNECT forces 8 kHz.
    pub slow_jumper: bool,
}

impl UsbAspVariant {
    /// The 2007 firmware, which avrdude greets with "cannot set sck period".
    pub fn old_firmware() -> Self {
        UsbAspVariant {
            release: Release::Y2007,
            ..Self::default()
        }
    }
}

/// `prog_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProgState {
    Idle,
    WriteFlash,
    ReadFlash,
    ReadEeprom,
    WriteEeprom,
}

/// Which `ispTransmit` the function pointer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transmit {
    /// Null: no SCK option applied since power-up.
    Unset,
    /// Hardware SPI at this rate.
    Hardware { hz: u32 },
    /// Software SPI: `ispDelay` of this many ticks per half bit, at this real rate.
    Software { ticks: u8, hz: u32 },
}

/// How a request that clocks SPI can go wrong on the real firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// Jumped through the null function pointer: the firmware restarts.
    Restart,
    /// Waits forever for the SPI flag with the SPI off.
    Hang,
}

type Spi<T> = Result<T, Crash>;

/// The emulated firmware's state (its static variables and the SPI setup).
#[derive(Debug, Clone)]
pub struct UsbAspFirmware {
    variant: UsbAspVariant,
    configuration: u8,
    reply: [u8; 8],
    prog_state: ProgState,
    prog_sck: u8,
    prog_address_newmode: bool,
    prog_address: u32,
    prog_nbytes: u16,
    prog_pagesize: u16,
    prog_blockflags: u8,
    prog_pagecounter: u8,
    transmit: Transmit,
    spi_enabled: bool,
    sck_sw_delay: u8,
    isp_hiaddr: u8,
}

/// What `usbFunctionSetup()` returned.
enum SetupReply {
    /// This many bytes of the reply buffer.
    Bytes(usize),
    /// `USB_NO_MSG`: the read or write function serves the data stage.
    Function,
    /// Stalled (the TPI requests, see the module docs).
    Stall,
}

impl UsbAspFirmware {
    /// The firmware after power-up.
    pub fn new(variant: UsbAspVariant) -> Self {
        UsbAspFirmware {
            variant,
            configuration: 0,
            reply: [0; 8],
            prog_state: ProgState::Idle,
            prog_sck: protocol::SCK_AUTO,
            prog_address_newmode: false,
            prog_address: 0,
            prog_nbytes: 0,
            prog_pagesize: 0,
            prog_blockflags: 0,
            prog_pagecounter: 0,
            transmit: Transmit::Unset,
            spi_enabled: false,
            sck_sw_delay: 0,
            isp_hiaddr: 0,
        }
    }

    /// The SCK code stored by SETISPSCK.
    pub fn stored_sck_code(&self) -> u8 {
        self.prog_sck
    }

    /// The ISP clock in use, in Hz (`None` before the first CONNECT).
    pub fn sck_hz(&self) -> Option<u32> {
        match self.transmit {
            Transmit::Unset => None,
            Transmit::Hardware { hz } | Transmit::Software { hz, .. } => Some(hz),
        }
    }

    fn is_2011(&self) -> bool {
        self.variant.release == Release::Y2011
    }

    // ----- isp.c -------------------------------------------------------------------------

    /// `ispSetSCKOption()`.
    fn set_sck_option(&mut self, code: u8) {
        let has_3mhz = self.variant.three_mhz && self.is_2011();
        let option = protocol::applied_option(code, has_3mhz);
        match protocol::software_delay_ticks(option.code) {
            Some(ticks) => {
                self.transmit = Transmit::Software {
                    ticks,
                    hz: option.real_hz,
                };
                self.sck_sw_delay = ticks;
            }
            None => {
                self.transmit = Transmit::Hardware { hz: option.real_hz };
                // Forces a short RST pulse at CONNECT (one timer tick).
                self.sck_sw_delay = 1;
            }
        }
    }

    fn isp_delay(&self, io: &mut UsbIo) {
        cpu::isp_delay(io, self.sck_sw_delay);
    }

    /// `ispConnect()`.
    fn connect(&mut self, io: &mut UsbIo) {
        io.set_sck_level(false);
        io.set_reset(true);
        self.isp_delay(io);
        io.set_reset(false);
        self.isp_delay(io);
        io.set_reset(true);
        if matches!(self.transmit, Transmit::Hardware { .. }) {
            self.spi_enabled = true;
        }
        self.isp_hiaddr = 0;
    }

    /// `ispDisconnect()`: pins to inputs, pull-ups off (the target's own pull-up releases
    /// RESET), SPI off.
    fn disconnect(&mut self, io: &mut UsbIo) {
        io.set_sck_level(false);
        io.set_reset(false);
        self.spi_enabled = false;
    }

    /// `ispTransmit()` through whatever the function pointer holds.
    fn spi(&mut self, io: &mut UsbIo, byte: u8) -> Spi<u8> {
        match self.transmit {
            Transmit::Unset => Err(Crash::Restart),
            Transmit::Hardware { .. } if !self.spi_enabled => Err(Crash::Hang),
            Transmit::Hardware { hz } | Transmit::Software { hz, .. } => {
                cpu::run(io, cpu::TRANSMIT_CALL_CYCLES);
                Ok(io.spi_byte(byte, hz))
            }
        }
    }

    fn spi4(&mut self, io: &mut UsbIo, cmd: [u8; 4]) -> Spi<[u8; 4]> {
        let mut out = [0u8; 4];
        for (slot, byte) in out.iter_mut().zip(cmd) {
            *slot = self.spi(io, byte)?;
        }
        Ok(out)
    }

    /// `ispEnterProgrammingMode()`: 0 on success, 1 when the target never echoed.
    fn enter_programming_mode(&mut self, io: &mut UsbIo) -> Spi<u8> {
        for _ in 0..32 {
            let reply = self.spi4(io, [0xAC, 0x53, 0x00, 0x00])?;
            if reply[2] == 0x53 {
                return Ok(0);
            }
            self.spi_enabled = false;
            match self.variant.release {
                Release::Y2011 => {
                    self.isp_delay(io);
                    io.set_reset(false);
                    self.isp_delay(io);
                    io.set_reset(true);
                    self.isp_delay(io);
                }
                Release::Y2007 => {
                    io.set_sck_level(true);
                    self.isp_delay(io);
                    io.set_sck_level(false);
                    self.isp_delay(io);
                }
            }
            if matches!(self.transmit, Transmit::Hardware { .. }) {
                self.spi_enabled = true;
            }
        }
        Ok(1)
    }

    /// `ispUpdateExtended()`: Load Extended Address when `address >> 17` changes.
    fn update_extended(&mut self, io: &mut UsbIo, address: u32) -> Spi<()> {
        let hi = (address >> 17) as u8;
        if hi != self.isp_hiaddr {
            self.isp_hiaddr = hi;
            self.spi4(io, [0x4D, 0x00, hi, 0x00])?;
        }
        Ok(())
    }

    /// `ispReadFlash()`.
    fn read_flash(&mut self, io: &mut UsbIo, address: u32) -> Spi<u8> {
        self.update_extended(io, address)?;
        let cmd = [
            0x20 | (((address & 1) as u8) << 3),
            (address >> 9) as u8,
            (address >> 1) as u8,
            0,
        ];
        Ok(self.spi4(io, cmd)?[3])
    }

    /// Polls flash at `address` until it differs from `busy_value`, for up to 30 rounds of
    /// just over 60 timer ticks (the firmware's loop; the outcome is not reported).
    fn poll_flash(&mut self, io: &mut UsbIo, address: u32, busy_value: u8) -> Spi<()> {
        let round_ns = cpu::ticks_ns(61);
        let mut retries = 30u8;
        let mut start = io.now_ns();
        while retries != 0 {
            if self.read_flash(io, address)? != busy_value {
                return Ok(());
            }
            if io.now_ns().saturating_sub(start) >= round_ns {
                start = io.now_ns();
                retries -= 1;
            }
        }
        Ok(())
    }

    /// `ispWriteFlash()`: loads a byte; with `poll`, writes it byte-wise and waits.
    fn write_flash(&mut self, io: &mut UsbIo, address: u32, data: u8, poll: bool) -> Spi<()> {
        self.update_extended(io, address)?;
        let cmd = [
            0x40 | (((address & 1) as u8) << 3),
            (address >> 9) as u8,
            (address >> 1) as u8,
            data,
        ];
        self.spi4(io, cmd)?;
        if !poll {
            return Ok(());
        }
        if data == 0x7F {
            cpu::clock_wait(io, 15);
            Ok(())
        } else {
            self.poll_flash(io, address, 0x7F)
        }
    }

    /// `ispFlushPage()`: Write Program Memory Page, then 4.8 ms or polling.
    fn flush_page(&mut self, io: &mut UsbIo, address: u32, poll_value: u8) -> Spi<()> {
        self.update_extended(io, address)?;
        self.spi4(io, [0x4C, (address >> 9) as u8, (address >> 1) as u8, 0])?;
        if poll_value == 0xFF {
            cpu::clock_wait(io, 15);
            Ok(())
        } else {
            self.poll_flash(io, address, 0xFF)
        }
    }

    /// `ispReadEEPROM()` (a 16-bit address).
    fn read_eeprom(&mut self, io: &mut UsbIo, address: u16) -> Spi<u8> {
        let [hi, lo] = address.to_be_bytes();
        Ok(self.spi4(io, [0xA0, hi, lo, 0])?[3])
    }

    /// `ispWriteEEPROM()`: the byte, then a fixed 9.6 ms.
    fn write_eeprom(&mut self, io: &mut UsbIo, address: u16, data: u8) -> Spi<()> {
        let [hi, lo] = address.to_be_bytes();
        self.spi4(io, [0xC0, hi, lo, data])?;
        cpu::clock_wait(io, 30);
        Ok(())
    }

    // ----- main.c ------------------------------------------------------------------------

    /// The address a block request starts at: wValue, unless SETLONGADDRESS came first.
    fn take_address(&mut self, data: &[u8; 8]) {
        if !self.prog_address_newmode {
            self.prog_address = u32::from(u16::from_le_bytes([data[2], data[3]]));
        }
    }

    /// `usbFunctionSetup()`.
    fn function_setup(&mut self, data: &[u8; 8], io: &mut UsbIo) -> Spi<SetupReply> {
        let length = u16::from_le_bytes([data[6], data[7]]);
        let known_2011 = self.is_2011();
        let reply = match data[1] {
            request::CONNECT => {
                let code = if self.variant.slow_jumper {
                    5
                } else {
                    self.prog_sck
                };
                self.set_sck_option(code);
                self.prog_address_newmode = false;
                self.connect(io);
                SetupReply::Bytes(0)
            }
            request::DISCONNECT => {
                self.disconnect(io);
                SetupReply::Bytes(0)
            }
            request::TRANSMIT => {
                let cmd = [data[2], data[3], data[4], data[5]];
                let out = self.spi4(io, cmd)?;
                self.reply[..4].copy_from_slice(&out);
                SetupReply::Bytes(4)
            }
            request::READFLASH | request::READEEPROM => {
                self.take_address(data);
                self.prog_nbytes = length;
                self.prog_state = if data[1] == request::READFLASH {
                    ProgState::ReadFlash
                } else {
                    ProgState::ReadEeprom
                };
                SetupReply::Function
            }
            request::ENABLEPROG => {
                self.reply[0] = self.enter_programming_mode(io)?;
                SetupReply::Bytes(1)
            }
            request::WRITEFLASH => {
                self.take_address(data);
                let index = u16::from_le_bytes([data[4], data[5]]);
                let (page_size, flags) = protocol::decode_write_flash_index(index);
                self.prog_pagesize = page_size;
                self.prog_blockflags = flags;
                if flags & block_flag::FIRST != 0 {
                    // An 8-bit counter: a 256-byte page starts it at 0.
                    self.prog_pagecounter = page_size as u8;
                }
                self.prog_nbytes = length;
                self.prog_state = ProgState::WriteFlash;
                SetupReply::Function
            }
            request::WRITEEEPROM => {
                self.take_address(data);
                self.prog_pagesize = 0;
                self.prog_blockflags = 0;
                self.prog_nbytes = length;
                self.prog_state = ProgState::WriteEeprom;
                SetupReply::Function
            }
            request::SETLONGADDRESS => {
                self.prog_address_newmode = true;
                self.prog_address = u32::from_le_bytes([data[2], data[3], data[4], data[5]]);
                SetupReply::Bytes(0)
            }
            request::SETISPSCK if known_2011 => {
                self.prog_sck = data[2];
                self.reply[0] = 0;
                SetupReply::Bytes(1)
            }
            request::GETCAPABILITIES if known_2011 => {
                let caps = CAP_TPI | if self.variant.three_mhz { CAP_3MHZ } else { 0 };
                self.reply[..4].copy_from_slice(&caps.to_le_bytes());
                SetupReply::Bytes(4)
            }
            request::TPI_CONNECT..=request::TPI_WRITEBLOCK if known_2011 => SetupReply::Stall,
            _ => SetupReply::Bytes(0),
        };
        Ok(reply)
    }

    /// `usbFunctionRead()` for one IN packet of `len` bytes.
    fn function_read(&mut self, len: usize, io: &mut UsbIo) -> Spi<Option<Vec<u8>>> {
        if !matches!(
            self.prog_state,
            ProgState::ReadFlash | ProgState::ReadEeprom
        ) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            cpu::run(io, cpu::BYTE_CYCLES);
            let byte = if self.prog_state == ProgState::ReadFlash {
                self.read_flash(io, self.prog_address)?
            } else {
                self.read_eeprom(io, self.prog_address as u16)?
            };
            out.push(byte);
            self.prog_address = self.prog_address.wrapping_add(1);
        }
        if len < 8 {
            self.prog_state = ProgState::Idle;
        }
        Ok(Some(out))
    }

    /// `usbFunctionWrite()` for one OUT packet: `None` when called in the wrong state (the
    /// driver stalls), else whether this was the last packet.
    fn function_write(&mut self, packet: &[u8], io: &mut UsbIo) -> Spi<Option<bool>> {
        if !matches!(
            self.prog_state,
            ProgState::WriteFlash | ProgState::WriteEeprom
        ) {
            return Ok(None);
        }
        let mut last = false;
        for &byte in packet {
            cpu::run(io, cpu::BYTE_CYCLES);
            let address = self.prog_address;
            if self.prog_state == ProgState::WriteFlash {
                if self.prog_pagesize == 0 {
                    self.write_flash(io, address, byte, true)?;
                } else {
                    self.write_flash(io, address, byte, false)?;
                    self.prog_pagecounter = self.prog_pagecounter.wrapping_sub(1);
                    if self.prog_pagecounter == 0 {
                        self.flush_page(io, address, byte)?;
                        self.prog_pagecounter = self.prog_pagesize as u8;
                    }
                }
            } else {
                self.write_eeprom(io, address as u16, byte)?;
            }
            self.prog_nbytes = self.prog_nbytes.wrapping_sub(1);
            if self.prog_nbytes == 0 {
                self.prog_state = ProgState::Idle;
                // Compares the 8-bit counter with the 16-bit page size, as the C does.
                if self.prog_blockflags & block_flag::LAST != 0
                    && u16::from(self.prog_pagecounter) != self.prog_pagesize
                {
                    self.flush_page(io, address, byte)?;
                }
                last = true;
            }
            self.prog_address = self.prog_address.wrapping_add(1);
        }
        Ok(Some(last))
    }

    /// One control transfer through V-USB; `Err` when the firmware crashed on the way.
    fn transfer(&mut self, setup: &Setup, data_out: &[u8], io: &mut UsbIo) -> Spi<UsbReply> {
        let data = setup_bytes(setup);
        cpu::run(io, cpu::SETUP_CYCLES);
        if data[0] & 0x60 == 0 {
            return Ok(self.standard_request(&data, setup));
        }
        match self.function_setup(&data, io)? {
            SetupReply::Stall => Ok(UsbReply::Stall),
            SetupReply::Bytes(len) => {
                if !setup.is_in() {
                    return Ok(UsbReply::Data(Vec::new()));
                }
                let limit = limit_to_length(len, setup.length);
                Ok(UsbReply::Data(self.reply[..limit].to_vec()))
            }
            SetupReply::Function if setup.is_in() => {
                // No long transfers: the read function's data stage is wLength's low byte.
                let total = usize::from(setup.length & 0xFF).min(MAX_IN_BYTES);
                let mut reply = Vec::with_capacity(total);
                while reply.len() < total {
                    cpu::run(io, cpu::IN_PACKET_CYCLES);
                    let want = (total - reply.len()).min(8);
                    match self.function_read(want, io)? {
                        Some(bytes) => reply.extend_from_slice(&bytes),
                        None => return Ok(UsbReply::Stall),
                    }
                }
                if total > 0 {
                    io.count_page_read();
                }
                Ok(UsbReply::Data(reply))
            }
            SetupReply::Function => {
                for packet in data_out.chunks(8) {
                    cpu::run(io, cpu::OUT_PACKET_CYCLES);
                    match self.function_write(packet, io)? {
                        None => return Ok(UsbReply::Stall),
                        Some(true) => break,
                        Some(false) => {}
                    }
                }
                Ok(UsbReply::Data(Vec::new()))
            }
        }
    }

    /// A standard request, answered by V-USB itself.
    fn standard_request(&mut self, data: &[u8; 8], setup: &Setup) -> UsbReply {
        const SET_CONFIGURATION: u8 = 9;
        if data[1] == SET_CONFIGURATION {
            self.configuration = data[2];
        }
        let bytes = descriptors::answer(data, self.configuration);
        let limit = limit_to_length(bytes.len(), setup.length);
        UsbReply::Data(bytes[..limit].to_vec())
    }
}

/// The 8 setup bytes as the firmware receives them.
fn setup_bytes(setup: &Setup) -> [u8; 8] {
    let [value_lo, value_hi] = setup.value.to_le_bytes();
    let [index_lo, index_hi] = setup.index.to_le_bytes();
    let [length_lo, length_hi] = setup.length.to_le_bytes();
    [
        setup.request_type,
        setup.request,
        value_lo,
        value_hi,
        index_lo,
        index_hi,
        length_lo,
        length_hi,
    ]
}

/// V-USB cuts a reply to wLength only when wLength's high byte is 0.
fn limit_to_length(len: usize, length: u16) -> usize {
    if length >> 8 == 0 {
        len.min(usize::from(length))
    } else {
        len
    }
}

impl UsbFirmware for UsbAspFirmware {
    fn name(&self) -> &'static str {
        "usbasp"
    }

    fn identity(&self) -> UsbIdentity {
        UsbIdentity {
            vid: VID,
            pid: PID,
            bcd_device: match self.variant.release {
                Release::Y2011 => BCD_DEVICE,
                Release::Y2007 => 0x0102,
            },
            manufacturer: Some(MANUFACTURER.to_string()),
            product: Some(PRODUCT.to_string()),
            serial: None,
            interface_class: 0x00,
        }
    }

    fn timing(&self) -> UsbTiming {
        vusb::low_speed_timing()
    }

    fn control(&mut self, setup: &Setup, data_out: &[u8], io: &mut UsbIo) -> UsbReply {
        match self.transfer(setup, data_out, io) {
            Ok(reply) => reply,
            Err(Crash::Restart) => {
                // The jump to address 0 restarts the firmware; the transfer never completes.
                *self = UsbAspFirmware::new(self.variant);
                UsbReply::Lost
            }
            Err(Crash::Hang) => {
                io.hang();
                UsbReply::Lost
            }
        }
    }
}

/// An emulated USBasp on `socket`, ready to be shared with an
/// [`super::usb::EmulatedUsbLink`] (or the libusb shim).
pub fn emulated_device(
    socket: SharedSocket,
    variant: UsbAspVariant,
    faults: Faults,
) -> SharedUsbDevice {
    EmulatedUsbDevice::new(Box::new(UsbAspFirmware::new(variant)), socket, faults).shared()
}
