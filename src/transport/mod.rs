//! Links between the host and a programmer: a serial port or a USB device.
//!
//! Drivers are generic over these traits, so the same driver code runs over a real port, a PTY
//! served by an emulator, or an in-process emulated link.
//!
//! The implementations:
//!
//! - [`SerialPortLink`]: a real serial port (USB CDC, FTDI, CH340) or a PTY slave, over the
//!   `serialport` crate; [`list_ports`] enumerates ports with their USB ids for the port picker.
//! - [`UsbDeviceLink`]: a USB device opened through an explicit `rusb` context;
//!   [`list_usb_devices`] enumerates devices.
//! - [`Pty`] (Unix): a pseudo-terminal pair, so serial emulators can sit behind a path that
//!   the real serial code (and avrdude) opens.
//! - [`MemoryLink`]: an in-process byte pipe to an emulator thread (the port `emulated`).
//!
//! Every read has a deadline, and a link whose device went away fails with
//! [`crate::Error::Link`] instead of hanging.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

mod memory;
#[cfg(unix)]
mod pty;
mod serial;
mod usb;

pub use memory::{EmulatorEnd, FromHost, LineEvent, LineState, MemoryLink, memory_link};
#[cfg(unix)]
pub use pty::{Pty, PtyEvent};
pub use serial::{PortInfo, SerialPortLink, UsbPortInfo, list_ports, ports_from_sysfs};
pub use usb::{
    UsbDeviceInfo, UsbDeviceLink, UsbDeviceList, UsbFilter, UsbOpenOptions, list_usb_devices,
};

/// A byte stream to a serial programmer (USB CDC, FTDI, PTY).
pub trait SerialLink: Send {
    /// A name for messages, e.g. `/dev/ttyACM0`.
    fn name(&self) -> &str;

    /// Writes all bytes (and flushes them to the device).
    fn write_all(&mut self, data: &[u8]) -> Result<()>;

    /// Reads exactly `buf.len()` bytes, waiting at most `timeout` in total.
    /// Fails with [`crate::Error::Timeout`] naming `during` when the bytes do not come.
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()>;

    /// Reads whatever arrives within `timeout` (at least one byte unless the time runs out);
    /// returns the number of bytes read, 0 on timeout.
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize>;

    /// Discards input until nothing has arrived for `quiet`.
    fn drain(&mut self, quiet: Duration) -> Result<()> {
        let mut scratch = [0u8; 256];
        while self.read_some(&mut scratch, quiet)? > 0 {}
        Ok(())
    }

    /// Asserts (`true`) or de-asserts DTR.
    fn set_dtr(&mut self, on: bool) -> Result<()>;

    /// Asserts (`true`) or de-asserts RTS.
    fn set_rts(&mut self, on: bool) -> Result<()>;

    /// Changes the baud rate.
    fn set_baud(&mut self, baud: u32) -> Result<()>;
}

/// Direction and type bits of a USB control transfer.
pub mod request_type {
    /// Vendor request, device recipient, device-to-host.
    pub const VENDOR_IN: u8 = 0xC0;
    /// Vendor request, device recipient, host-to-device.
    pub const VENDOR_OUT: u8 = 0x40;
    /// Class request, interface recipient, host-to-device (HID SET_REPORT).
    pub const CLASS_INTERFACE_OUT: u8 = 0x21;
    /// Class request, interface recipient, device-to-host (HID GET_REPORT).
    pub const CLASS_INTERFACE_IN: u8 = 0xA1;
}

/// Control transfers to a USB programmer (USBasp, USBtiny, HalfKay).
pub trait UsbLink: Send {
    /// A name for messages, e.g. `USB 16C0:05DC (bus 1 device 7)`.
    fn name(&self) -> &str;

    /// A device-to-host control transfer; returns the number of bytes received.
    fn control_in(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize>;

    /// A host-to-device control transfer; returns the number of bytes sent.
    fn control_out(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        data: &[u8],
        timeout: Duration,
    ) -> Result<usize>;
}

/// The longest wait a link honours; longer timeouts are cut to this (a day is "forever" for a
/// programmer, and it keeps deadline arithmetic far from overflow).
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// The instant `timeout` from now, with `timeout` capped at [`MAX_WAIT`].
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(MAX_WAIT)).unwrap_or(now)
}

/// The [`Error::Timeout`] of a read that got `got` of `wanted` bytes.
pub(crate) fn read_timeout(
    port: &str,
    waited: Duration,
    during: &str,
    got: usize,
    wanted: usize,
) -> Error {
    let during = if got == 0 {
        format!("{during}; nothing received, expected {wanted} byte(s)")
    } else {
        format!("{during}; received {got} of {wanted} byte(s)")
    };
    Error::Timeout {
        port: port.to_string(),
        waited: waited.min(MAX_WAIT),
        during,
    }
}

/// Shorthand for [`Error::Link`].
pub(crate) fn link_lost(port: &str, reason: impl Into<String>) -> Error {
    Error::Link {
        port: port.to_string(),
        reason: reason.into(),
    }
}

/// Reads exactly `buf.len()` bytes with one deadline for all of them.
///
/// `read_until(chunk, deadline)` reads at least one byte into `chunk`, or returns 0 once the
/// deadline has passed; it reports a dead link itself.
pub(crate) fn read_exact_by(
    port: &str,
    buf: &mut [u8],
    timeout: Duration,
    during: &str,
    mut read_until: impl FnMut(&mut [u8], Instant) -> Result<usize>,
) -> Result<()> {
    let deadline = deadline_after(timeout);
    let mut got = 0;
    while got < buf.len() {
        match read_until(&mut buf[got..], deadline)? {
            0 => return Err(read_timeout(port, timeout, during, got, buf.len())),
            n => got += n,
        }
    }
    Ok(())
}

/// A boxed link is a link (for callers that choose the link at run time).
impl<L: SerialLink + ?Sized> SerialLink for Box<L> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        (**self).write_all(data)
    }
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()> {
        (**self).read_exact(buf, timeout, during)
    }
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        (**self).read_some(buf, timeout)
    }
    fn drain(&mut self, quiet: Duration) -> Result<()> {
        (**self).drain(quiet)
    }
    fn set_dtr(&mut self, on: bool) -> Result<()> {
        (**self).set_dtr(on)
    }
    fn set_rts(&mut self, on: bool) -> Result<()> {
        (**self).set_rts(on)
    }
    fn set_baud(&mut self, baud: u32) -> Result<()> {
        (**self).set_baud(baud)
    }
}

/// A boxed USB link is a USB link.
impl<U: UsbLink + ?Sized> UsbLink for Box<U> {
    fn name(&self) -> &str {
        (**self).name()
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
        (**self).control_in(request_type, request, value, index, buf, timeout)
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
        (**self).control_out(request_type, request, value, index, data, timeout)
    }
}
