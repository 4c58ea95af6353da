//! Links between the host and a programmer: a serial port or a USB device.
//!
//! Drivers are generic over these traits, so the same driver code runs over a real port, a PTY
//! served by an emulator, or an in-process emulated link.

use std::time::Duration;

use crate::error::Result;

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
