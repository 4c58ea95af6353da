//! The USBtiny programmer firmware, emulated request by request: Dick Streefland's USBtiny
//! with the `main.c` of the Adafruit USBtinyISP v2 (12 MHz ATtiny2313; the SparkFun PocketAVR
//! runs the same firmware and shares VID:PID 1781:0C9F).
//!
//! # What it reproduces
//!
//! - **Every vendor request** (facts §4.2): ECHO returns the 8 setup bytes; READ/WRITE/CLR/SET
//!   and DDRWRITE act on port B (the ISP pins: WRITE can drive RESET); POWERUP takes the SCK
//!   period from wValue's low byte (0 means 256) and the RESET level from wIndex, enables the
//!   output buffer and drives RESET, SCK and MOSI; POWERDOWN releases everything. While port B
//!   reads 0 (before POWERUP, after POWERDOWN), SPI, SPI1, POLL_BYTES and the block requests
//!   are ignored: IN requests get no data.
//! - **The quirks of its request chain**: DDRWRITE falls through and also loads the address
//!   and timeout registers from wIndex/wValue; every request but the register ones sets the
//!   address from wIndex; the timeout is taken from wValue by all but the read requests.
//! - **Block transfers** on a 16-bit auto-incrementing byte address: FLASH_READ sends
//!   `20|H  a>>9  a>>1  c3` per byte (word bit 15 can never be set), EEPROM_READ `A0 a>>8 a c3`,
//!   where `c3` is whatever the last write left in the command buffer. FLASH_WRITE and
//!   EEPROM_WRITE send `40|H`/`C0` with the data byte, then, when the timeout is not 0, poll
//!   with the opcode flipped to its read form until the byte reads back as written and differs
//!   from both poll bytes, every `32 × period` "µs" of the firmware's own count (the loop
//!   really takes longer), for at most the timeout. The 16-bit counter wraps; a timeout within
//!   one step of 65535 (or period 0) makes a never-matching poll loop forever, and the device
//!   stops answering ([`UsbIo::hang`]).
//! - **The USB driver** (`usb.c`): an IN data stage is cut to wLength, and to 255 bytes (its
//!   transfer counter is one byte); data is produced 8 bytes per packet, the next packet as
//!   soon as the host has taken one, and the first right after SETUP whatever the direction
//!   (an OUT transfer to a read request therefore clocks 8 reads first). Standard requests
//!   are answered from its descriptors; nothing is ever stalled.
//!
//! # Timing
//!
//! Link time is [`vusb::low_speed_timing`]; the firmware's own time is its cycle counts
//! ([`cpu`], [`crate::programmer::usbtiny::clock`]) at 12 MHz, stretched by the interrupt
//! load of NAKed host tokens. `docs/timing/usbtiny.md` derives every constant and compares
//! the model with real avrdude runs.

mod cpu;
mod descriptors;
mod pins;

pub use descriptors::{BCD_DEVICE, PID, PRODUCT, VID};

use super::fault::Faults;
use super::socket::SharedSocket;
use super::usb::{
    EmulatedUsbDevice, Setup, SharedUsbDevice, UsbFirmware, UsbIdentity, UsbIo, UsbReply, UsbTiming,
};
use super::vusb;
use crate::programmer::usbtiny::protocol::{MAX_IN_BYTES, request};
use pins::Pins;

/// Poll rounds after which a poll loop that has not ended never will: its 16-bit counter
/// has gone through every value it can take.
const MAX_POLL_ROUNDS: u32 = 65_536;

/// Poll rounds after which a loop with a zero step (period 0) is taken as endless: by then
/// (about 10 s at that period) any write has long finished, so reads no longer change.
const MAX_POLL_ROUNDS_NO_STEP: u32 = 4_096;

/// The emulated firmware's state (its static variables and port B).
#[derive(Debug, Clone)]
pub struct UsbTinyFirmware {
    pins: Pins,
    sck_period: u8,
    poll: [u8; 2],
    address: u16,
    timeout: u16,
    cmd0: u8,
    cmd: [u8; 4],
    res: [u8; 4],
}

/// What `usb_setup()` returns to the USB driver.
enum SetupReply {
    /// This many bytes of the setup buffer (the SPI result, the echo...).
    Bytes(usize),
    /// 0xFF: the data comes from `usb_in()`, byte by byte.
    Callback,
}

/// Where the IN data stage comes from.
enum Source {
    Buffer(Vec<u8>),
    Callback,
}

/// The transmitter state of `usb.c`: the source, the bytes still to send, and whether the
/// last packet has gone.
struct Transmitter {
    source: Source,
    remaining: usize,
    sent: usize,
    active: bool,
}

impl Default for UsbTinyFirmware {
    fn default() -> Self {
        Self::new()
    }
}

impl UsbTinyFirmware {
    /// The firmware after power-up: ISP pins released, buffer off, all variables zero.
    pub fn new() -> Self {
        UsbTinyFirmware {
            pins: Pins::default(),
            sck_period: 0,
            poll: [0; 2],
            address: 0,
            timeout: 0,
            cmd0: 0,
            cmd: [0; 4],
            res: [0; 4],
        }
    }

    /// The SCK period byte from the last POWERUP.
    pub fn sck_period(&self) -> u8 {
        self.sck_period
    }

    /// `usb_setup()`: a class or vendor request. `data` is the setup packet, which replies
    /// overwrite, as in the firmware's receive buffer.
    fn usb_setup(&mut self, data: &mut [u8; 8], io: &mut UsbIo) -> SetupReply {
        let req = data[1];
        match req {
            request::ECHO => return SetupReply::Bytes(8),
            request::READ => {
                data[0] = self.pins.read();
                return SetupReply::Bytes(1);
            }
            request::WRITE => {
                self.pins.port = data[2];
                self.pins.apply(io);
                return SetupReply::Bytes(0);
            }
            request::CLR | request::SET => {
                let mask = 1u8 << (data[2] & 7);
                if req == request::CLR {
                    self.pins.port &= !mask;
                } else {
                    self.pins.port |= mask;
                }
                self.pins.apply(io);
                return SetupReply::Bytes(0);
            }
            // No return: it falls through to the address and timeout loads below.
            request::DDRWRITE => {
                self.pins.ddr = data[2];
                self.pins.apply(io);
            }
            request::POWERUP => {
                self.sck_period = data[2];
                let reset = if data[4] != 0 { pins::RESET } else { 0 };
                self.pins = Pins {
                    port: pins::LED | reset,
                    ddr: pins::LED | pins::RESET | pins::SCK | pins::MOSI,
                    buffer_on: true,
                };
                self.pins.apply(io);
                return SetupReply::Bytes(0);
            }
            request::POWERDOWN => {
                self.pins = Pins::default();
                self.pins.apply(io);
                return SetupReply::Bytes(0);
            }
            _ => {}
        }
        if self.pins.port == 0 {
            return SetupReply::Bytes(0);
        }
        match req {
            request::SPI => {
                let cmd = [data[2], data[3], data[4], data[5]];
                let res = cpu::spi(io, cmd, self.sck_period);
                data[..4].copy_from_slice(&res);
                return SetupReply::Bytes(4);
            }
            request::SPI1 => {
                data[0] = cpu::spi(io, [data[2]], self.sck_period)[0];
                return SetupReply::Bytes(1);
            }
            request::POLL_BYTES => {
                self.poll = [data[2], data[3]];
                return SetupReply::Bytes(0);
            }
            _ => {}
        }
        self.address = u16::from_le_bytes([data[4], data[5]]);
        match req {
            request::FLASH_READ => {
                self.cmd0 = 0x20;
                return SetupReply::Callback;
            }
            request::EEPROM_READ => {
                self.cmd0 = 0xA0;
                return SetupReply::Callback;
            }
            _ => {}
        }
        self.timeout = u16::from_le_bytes([data[2], data[3]]);
        match req {
            request::FLASH_WRITE => self.cmd0 = 0x40,
            request::EEPROM_WRITE => self.cmd0 = 0xC0,
            _ => {}
        }
        SetupReply::Bytes(0)
    }

    /// `spi_rw()`: the next read or write instruction at the address counter.
    fn spi_rw(&mut self, io: &mut UsbIo) {
        cpu::run(io, cpu::SPI_RW_CYCLES);
        let mut a = self.address;
        self.address = self.address.wrapping_add(1);
        if self.cmd0 & 0x80 != 0 {
            // EEPROM: shifted so that the flash formula below yields the byte address.
            a <<= 1;
        }
        self.cmd[0] = self.cmd0 | if a & 1 != 0 { 0x08 } else { 0 };
        self.cmd[1] = (a >> 9) as u8;
        self.cmd[2] = (a >> 1) as u8;
        self.res = cpu::spi(io, self.cmd, self.sck_period);
    }

    /// `usb_in()`: `len` bytes read at the address counter.
    fn usb_in(&mut self, len: usize, io: &mut UsbIo) -> Vec<u8> {
        (0..len)
            .map(|_| {
                cpu::run(io, cpu::IN_BYTE_CYCLES);
                self.spi_rw(io);
                self.res[3]
            })
            .collect()
    }

    /// `usb_out()`: one OUT packet of data bytes. False when the firmware got stuck in its
    /// poll loop.
    fn usb_out(&mut self, data: &[u8], io: &mut UsbIo) -> bool {
        for &byte in data {
            cpu::run(io, cpu::OUT_BYTE_CYCLES);
            self.cmd[3] = byte;
            self.spi_rw(io);
            // The write opcode's read form: 40/48 -> 20/28, C0 -> A0.
            self.cmd[0] ^= 0x60;
            if !self.poll_until_written(io) {
                return false;
            }
        }
        true
    }

    /// Polls the byte just written until it reads back, or the timeout runs out. False when
    /// the loop never ends.
    fn poll_until_written(&mut self, io: &mut UsbIo) -> bool {
        // `usec += 32 * sck_period` on a 16-bit counter.
        let step = (32 * u32::from(self.sck_period)) as u16;
        let max_rounds = if step == 0 {
            MAX_POLL_ROUNDS_NO_STEP
        } else {
            MAX_POLL_ROUNDS
        };
        let mut usec: u16 = 0;
        let mut rounds = 0;
        while usec < self.timeout {
            if rounds == max_rounds {
                return false;
            }
            self.res = cpu::spi(io, self.cmd, self.sck_period);
            cpu::run(io, cpu::POLL_CYCLES);
            let r = self.res[3];
            if r == self.cmd[3] && r != self.poll[0] && r != self.poll[1] {
                break;
            }
            usec = usec.wrapping_add(step);
            rounds += 1;
        }
        true
    }

    /// `usb_transmit()`: the next IN packet, or `None` once the last one has gone.
    fn transmit(&mut self, tx: &mut Transmitter, io: &mut UsbIo) -> Option<Vec<u8>> {
        if !tx.active {
            return None;
        }
        cpu::run(io, cpu::IN_PACKET_CYCLES);
        let len = tx.remaining.min(8);
        let packet = match &tx.source {
            Source::Callback => self.usb_in(len, io),
            Source::Buffer(bytes) => bytes[tx.sent..tx.sent + len].to_vec(),
        };
        tx.remaining -= len;
        tx.sent += len;
        tx.active = len == 8;
        Some(packet)
    }
}

impl UsbFirmware for UsbTinyFirmware {
    fn name(&self) -> &'static str {
        "usbtiny"
    }

    fn identity(&self) -> UsbIdentity {
        UsbIdentity {
            vid: VID,
            pid: PID,
            bcd_device: BCD_DEVICE,
            manufacturer: None,
            product: Some(PRODUCT.to_string()),
            serial: None,
            interface_class: 0xFF,
        }
    }

    fn timing(&self) -> UsbTiming {
        vusb::low_speed_timing()
    }

    fn control(&mut self, setup: &Setup, data_out: &[u8], io: &mut UsbIo) -> UsbReply {
        let [value_lo, value_hi] = setup.value.to_le_bytes();
        let [index_lo, index_hi] = setup.index.to_le_bytes();
        let [length_lo, length_hi] = setup.length.to_le_bytes();
        let mut data = [
            setup.request_type,
            setup.request,
            value_lo,
            value_hi,
            index_lo,
            index_hi,
            length_lo,
            length_hi,
        ];
        cpu::run(io, cpu::SETUP_CYCLES);
        // The transfer counter is one byte: any wLength above 255 is 255.
        let limit = if length_hi != 0 {
            MAX_IN_BYTES
        } else {
            usize::from(length_lo)
        };
        let (source, len) = if data[0] & 0x60 == 0 {
            let bytes = descriptors::answer(&data);
            let len = bytes.len();
            (Source::Buffer(bytes), len)
        } else {
            match self.usb_setup(&mut data, io) {
                SetupReply::Bytes(n) => (Source::Buffer(data[..n].to_vec()), n),
                SetupReply::Callback => (Source::Callback, MAX_IN_BYTES),
            }
        };
        let block_read = matches!(source, Source::Callback);
        let mut tx = Transmitter {
            source,
            remaining: len.min(limit),
            sent: 0,
            active: true,
        };
        // usb_poll() fills the transmit buffer right after SETUP, whatever the direction.
        let first = self.transmit(&mut tx, io);
        if !setup.is_in() {
            for packet in data_out.chunks(8) {
                cpu::run(io, cpu::OUT_PACKET_CYCLES);
                if !self.usb_out(packet, io) {
                    io.hang();
                    break;
                }
            }
            return UsbReply::Data(Vec::new());
        }
        let mut reply = Vec::new();
        let mut packet = first;
        while let Some(bytes) = packet {
            let short = bytes.len() < 8;
            reply.extend_from_slice(&bytes);
            if short || reply.len() >= usize::from(setup.length) {
                break;
            }
            packet = self.transmit(&mut tx, io);
        }
        if block_read && !reply.is_empty() {
            io.count_page_read();
        }
        UsbReply::Data(reply)
    }
}

/// An emulated USBtiny on `socket`, ready to be shared with an [`super::usb::EmulatedUsbLink`]
/// (or the libusb shim).
pub fn device(socket: SharedSocket, faults: Faults) -> SharedUsbDevice {
    EmulatedUsbDevice::new(Box::new(UsbTinyFirmware::new()), socket, faults).shared()
}
