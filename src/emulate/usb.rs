//! Running an emulated USB programmer firmware (USBasp, USBtiny, HalfKay) behind a
//! [`UsbLink`]: in-process for our drivers, and through the libusb shim for avrdude.
//!
//! A firmware answers control transfers ([`UsbFirmware::control`]); [`EmulatedUsbDevice`] does
//! the shared bookkeeping (link time per transfer, host pauses, faults, stats) so that every
//! client is charged the same for the same transfers.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::fault::{Faults, Inbound};
use super::serial::HOST_PAUSE_THRESHOLD;
use super::socket::{SharedSocket, lock};
use super::stats::EmulatorStats;
use crate::error::{Error, Result};
use crate::isp::{self, Decoded};
use crate::transport::UsbLink;

/// The setup packet of a control transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// bmRequestType.
    pub request_type: u8,
    /// bRequest.
    pub request: u8,
    /// wValue.
    pub value: u16,
    /// wIndex.
    pub index: u16,
    /// wLength.
    pub length: u16,
}

impl Setup {
    /// Whether the data stage goes device → host.
    pub fn is_in(&self) -> bool {
        self.request_type & 0x80 != 0
    }
}

/// A firmware's answer to a control transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsbReply {
    /// IN: these bytes (at most wLength are delivered). OUT: accepted.
    Data(Vec<u8>),
    /// The request is not supported: the endpoint stalls (the host sees a pipe error).
    Stall,
    /// The transfer never completes (the firmware crashed or restarted on it): the host
    /// times out.
    Lost,
}

/// How a device identifies itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbIdentity {
    /// Vendor id.
    pub vid: u16,
    /// Product id.
    pub pid: u16,
    /// bcdDevice.
    pub bcd_device: u16,
    /// Manufacturer string.
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
    /// Serial number string.
    pub serial: Option<String>,
    /// Device class (0xFF vendor, 0x03 HID...) of its one interface.
    pub interface_class: u8,
}

/// Link time of control transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbTiming {
    /// Fixed cost of one control transfer: setup and status stages and the host's scheduling,
    /// in ns.
    pub transfer_ns: u64,
    /// Cost of each data packet, in ns.
    pub packet_ns: u64,
    /// Data packet size (8 for low-speed devices, 64 for full speed).
    pub packet_size: u16,
}

/// A USB string descriptor (UTF-16LE) for `text`.
pub fn string_descriptor(text: &str) -> Vec<u8> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut out = vec![(2 + 2 * units.len()) as u8, 3];
    out.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    out
}

/// An emulated USB programmer firmware.
pub trait UsbFirmware: Send {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Descriptors.
    fn identity(&self) -> UsbIdentity;
    /// Link timing of this device.
    fn timing(&self) -> UsbTiming;
    /// Answers one control transfer. `data_out` holds the OUT data stage.
    fn control(&mut self, setup: &Setup, data_out: &[u8], io: &mut UsbIo) -> UsbReply;
}

/// What a USB firmware uses to reach the target and charge its time.
pub struct UsbIo {
    socket: SharedSocket,
    stats: EmulatorStats,
    instruction: [u8; 4],
    instruction_len: usize,
    hung: bool,
}

impl UsbIo {
    /// The firmware is stuck in an endless loop: this transfer and every later one go
    /// unanswered (the host times out), as with a real device until it is unplugged.
    pub fn hang(&mut self) {
        self.hung = true;
    }
    /// Charges firmware time.
    pub fn delay(&mut self, duration: Duration) {
        lock(&self.socket).advance(duration);
    }
    /// Charges firmware time in nanoseconds.
    pub fn delay_ns(&mut self, ns: u64) {
        lock(&self.socket).advance_ns(ns);
    }
    /// Drives the target's RESET line.
    pub fn set_reset(&mut self, asserted: bool) {
        lock(&self.socket).set_reset(asserted);
        self.instruction_len = 0;
    }
    /// Sets SCK's idle level.
    pub fn set_sck_level(&mut self, high: bool) {
        lock(&self.socket).set_sck_level(high);
    }
    /// Clocks one SPI byte.
    pub fn spi_byte(&mut self, mosi: u8, sck_hz: u32) -> u8 {
        let miso = lock(&self.socket).spi_byte(mosi, sck_hz);
        self.instruction[self.instruction_len] = mosi;
        self.instruction_len += 1;
        if self.instruction_len == 4 {
            self.instruction_len = 0;
            self.stats.isp_instructions += 1;
            if matches!(
                isp::decode(self.instruction),
                Decoded::WriteFlashPage { .. }
                    | Decoded::WriteEepromPage { .. }
                    | Decoded::WriteEeprom { .. }
            ) {
                self.stats.pages_written += 1;
            }
        }
        miso
    }
    /// Clocks a 4-byte instruction.
    pub fn isp(&mut self, cmd: [u8; 4], sck_hz: u32) -> [u8; 4] {
        cmd.map(|b| self.spi_byte(b, sck_hz))
    }
    /// Counts a block read for the stats.
    pub fn count_page_read(&mut self) {
        self.stats.pages_read += 1;
    }
    /// The virtual time now.
    pub fn now_ns(&self) -> u64 {
        lock(&self.socket).now_ns()
    }
    /// The shared socket.
    pub fn socket(&self) -> &SharedSocket {
        &self.socket
    }
}

/// An emulated device: a firmware plus the bookkeeping every client goes through.
pub struct EmulatedUsbDevice {
    firmware: Box<dyn UsbFirmware>,
    io: UsbIo,
    faults: Faults,
    realtime: bool,
    stalled: bool,
    gone: bool,
    last_return: Option<Instant>,
    first_ns: Option<u64>,
    wall_start: Instant,
    virtual_start_ns: u64,
}

/// What happened to a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Completed with these IN bytes (empty for OUT).
    Done(Vec<u8>),
    /// The device stalled the request.
    Stall,
    /// Nothing came back (a dropped or stalled transfer): the host times out.
    Timeout,
    /// The device is gone.
    Gone,
}

/// A device shared between in-process links and the libusb shim.
pub type SharedUsbDevice = Arc<Mutex<EmulatedUsbDevice>>;

impl EmulatedUsbDevice {
    /// Wraps a firmware with its target socket.
    pub fn new(firmware: Box<dyn UsbFirmware>, socket: SharedSocket, faults: Faults) -> Self {
        let now = lock(&socket).now_ns();
        EmulatedUsbDevice {
            firmware,
            io: UsbIo {
                socket,
                stats: EmulatorStats::default(),
                instruction: [0; 4],
                instruction_len: 0,
                hung: false,
            },
            faults,
            realtime: false,
            stalled: false,
            gone: false,
            last_return: None,
            first_ns: None,
            wall_start: Instant::now(),
            virtual_start_ns: now,
        }
    }

    /// Sleeps so that each transfer returns when the virtual clock says (wall-clock runs).
    pub fn set_realtime(&mut self, on: bool) {
        self.realtime = on;
    }

    /// Wraps the device for sharing.
    pub fn shared(self) -> SharedUsbDevice {
        Arc::new(Mutex::new(self))
    }

    /// The firmware's descriptors.
    pub fn identity(&self) -> UsbIdentity {
        self.firmware.identity()
    }

    /// The socket with the target.
    pub fn socket(&self) -> &SharedSocket {
        &self.io.socket
    }

    /// Stats so far.
    pub fn stats(&self) -> EmulatorStats {
        let mut stats = self.io.stats;
        let end = lock(&self.io.socket).now_ns();
        stats.modeled_seconds = end.saturating_sub(self.first_ns.unwrap_or(end)) as f64 / 1e9;
        stats
    }

    /// Runs one control transfer through timing, faults and the firmware.
    pub fn transfer(&mut self, setup: Setup, data_out: &[u8]) -> TransferOutcome {
        if self.gone {
            return TransferOutcome::Gone;
        }
        match self.faults.inbound() {
            Inbound::Hangup => {
                self.gone = true;
                return TransferOutcome::Gone;
            }
            Inbound::Stall => self.stalled = true,
            Inbound::Drop => return TransferOutcome::Timeout,
            Inbound::Deliver => {}
        }
        if self.stalled {
            return TransferOutcome::Timeout;
        }
        self.charge_link(&setup);
        let reply = self.firmware.control(&setup, data_out, &mut self.io);
        self.io.stats.round_trips += 1;
        self.io.stats.bytes_to_programmer += 8 + data_out.len() as u64;
        if self.io.hung {
            self.stalled = true;
            return TransferOutcome::Timeout;
        }
        let outcome = match reply {
            UsbReply::Stall => TransferOutcome::Stall,
            UsbReply::Lost => TransferOutcome::Timeout,
            UsbReply::Data(mut data) => {
                if setup.is_in() {
                    data.truncate(usize::from(setup.length));
                    self.io.stats.bytes_from_programmer += data.len() as u64;
                    if let Some(first) = data.first_mut()
                        && self.faults.corrupt_outbound()
                    {
                        *first ^= 0xFF;
                    }
                    TransferOutcome::Done(data)
                } else {
                    TransferOutcome::Done(Vec::new())
                }
            }
        };
        if self.realtime {
            let due = Duration::from_nanos(self.io.now_ns().saturating_sub(self.virtual_start_ns));
            let elapsed = self.wall_start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        self.last_return = Some(Instant::now());
        outcome
    }

    fn charge_link(&mut self, setup: &Setup) {
        let timing = self.firmware.timing();
        let host_pause = self
            .last_return
            .map(|t| t.elapsed())
            .filter(|gap| *gap >= HOST_PAUSE_THRESHOLD)
            .map_or(0, super::clock::duration_ns);
        let packets = u64::from(setup.length.div_ceil(timing.packet_size.max(1)));
        let mut s = lock(&self.io.socket);
        s.advance_ns(host_pause);
        self.first_ns.get_or_insert(s.now_ns());
        s.advance_ns(timing.transfer_ns + packets * timing.packet_ns);
    }
}

/// A [`UsbLink`] to an emulated device, for our drivers (port `emulated`).
pub struct EmulatedUsbLink {
    device: SharedUsbDevice,
    name: String,
}

impl EmulatedUsbLink {
    /// A link to `device`.
    pub fn new(device: SharedUsbDevice) -> Self {
        let id = lock_device(&device).identity();
        EmulatedUsbLink {
            name: format!("emulated USB {:04X}:{:04X}", id.vid, id.pid),
            device,
        }
    }

    /// The device behind the link.
    pub fn device(&self) -> &SharedUsbDevice {
        &self.device
    }

    fn run(&mut self, setup: Setup, data_out: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let outcome = lock_device(&self.device).transfer(setup, data_out);
        match outcome {
            TransferOutcome::Done(data) => Ok(data),
            TransferOutcome::Stall => Err(Error::Protocol {
                programmer: "usb",
                reason: format!(
                    "{} stalled request {} (the firmware does not support it)",
                    self.name, setup.request
                ),
            }),
            TransferOutcome::Timeout => Err(Error::Timeout {
                port: self.name.clone(),
                waited: timeout,
                during: format!("control request {}", setup.request),
            }),
            TransferOutcome::Gone => Err(Error::Link {
                port: self.name.clone(),
                reason: "the device was unplugged".into(),
            }),
        }
    }
}

/// Locks a shared device, recovering from a poisoned lock.
pub fn lock_device(device: &SharedUsbDevice) -> MutexGuard<'_, EmulatedUsbDevice> {
    device.lock().unwrap_or_else(|p| p.into_inner())
}

impl UsbLink for EmulatedUsbLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn control_in(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize> {
        let setup = Setup {
            request_type: request_type | 0x80,
            request,
            value,
            index,
            length: u16::try_from(buf.len()).unwrap_or(u16::MAX),
        };
        let data = self.run(setup, &[], timeout)?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }

    fn control_out(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        data: &[u8],
        timeout: Duration,
    ) -> Result<usize> {
        let setup = Setup {
            request_type: request_type & 0x7F,
            request,
            value,
            index,
            length: u16::try_from(data.len()).unwrap_or(u16::MAX),
        };
        self.run(setup, data, timeout)?;
        Ok(data.len())
    }
}
