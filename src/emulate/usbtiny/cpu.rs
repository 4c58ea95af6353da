//! What the USBtiny firmware's code costs on its 12 MHz ATtiny2313, charged to the virtual
//! clock.
//!
//! The bit loop is in [`crate::programmer::usbtiny::clock`]. The other cycle counts come from
//! avr-gcc 5.4 `-Os` listings of the firmware's `spi()`, `spi_rw()`, `usb_in()` and
//! `usb_out()` (the USB driver's parts are estimated from `usb.c` and `crc.S`; they are a
//! fraction of a percent of any transfer). All foreground work is stretched by the interrupt
//! load of the host's NAK retries ([`crate::emulate::vusb::busy_stretch_ns`]).

use crate::emulate::usb::UsbIo;
use crate::emulate::vusb::busy_stretch_ns;
use crate::programmer::usbtiny::clock::{bit_cycles, cycles_ns, sck_hz};

/// `spi()` per call: `rcall`, pointer set-up, `ret`.
pub const SPI_CALL_CYCLES: u64 = 12;
/// `spi()` per byte besides its 8 bits: load, counters, store, loop test.
pub const SPI_BYTE_CYCLES: u64 = 11;
/// `spi_rw()`: call, post-increment the 16-bit address, build opcode and address bytes.
pub const SPI_RW_CYCLES: u64 = 37;
/// `usb_in()` per byte besides `spi_rw()`: store `res[3]`, loop.
pub const IN_BYTE_CYCLES: u64 = 9;
/// `usb_out()` per byte besides `spi_rw()`: load, store `cmd[3]`, flip the opcode, loop and
/// the first timeout test.
pub const OUT_BYTE_CYCLES: u64 = 24;
/// One poll iteration besides its `spi()`: compare with the data and both poll bytes,
/// `usec += 32 * sck_period` (a 5-step shift), the timeout test.
pub const POLL_CYCLES: u64 = 53;
/// A SETUP packet: `usb_poll()`, `usb_receive()`, the `usb_setup()` dispatch chain.
pub const SETUP_CYCLES: u64 = 120;
/// Each IN data packet: `usb_transmit()`, the `usb_in()` call, the packet's CRC16 (fast CRC),
/// the bus-reset check in `usb_poll()`.
pub const IN_PACKET_CYCLES: u64 = 220;
/// Each OUT data packet: `usb_poll()`, `usb_receive()`, the `usb_out()` call.
pub const OUT_PACKET_CYCLES: u64 = 100;
/// The interrupt handler (`int.S`) for one token it answers with NAK: entry and register
/// saves, waiting out the SYNC byte, receiving PID, address and CRC5 at 8 cycles per bit, the
/// dispatch, sending SYNC + NAK and the EOP, restoring: ~500 cycles (41.7 µs).
pub const ISR_CYCLES_PER_NAK: u64 = 500;

/// Charges `cycles` of foreground work, stretched by the NAK interrupt load.
pub fn run(io: &mut UsbIo, cycles: u64) {
    let ns = cycles_ns(cycles);
    io.delay_ns(ns.saturating_add(interrupt_ns(ns)));
}

/// Clocks one byte through the bit-banged SPI at `period`; returns MISO.
pub fn spi_byte(io: &mut UsbIo, mosi: u8, period: u8) -> u8 {
    // The target charges the 8 bits at the real SCK; the interrupts stretch them too.
    let miso = io.spi_byte(mosi, sck_hz(period));
    let bits_ns = cycles_ns(8 * u64::from(bit_cycles(period)));
    io.delay_ns(interrupt_ns(bits_ns));
    run(io, SPI_BYTE_CYCLES);
    miso
}

/// `spi(cmd, res, n)`: clocks `cmd` out and returns what came in.
pub fn spi<const N: usize>(io: &mut UsbIo, cmd: [u8; N], period: u8) -> [u8; N] {
    run(io, SPI_CALL_CYCLES);
    cmd.map(|b| spi_byte(io, b, period))
}

/// Time the interrupt handler takes from `work_ns` of foreground work.
fn interrupt_ns(work_ns: u64) -> u64 {
    busy_stretch_ns(work_ns, cycles_ns(ISR_CYCLES_PER_NAK))
}
