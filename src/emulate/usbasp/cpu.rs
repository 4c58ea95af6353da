//! What the USBasp firmware's code costs on its 12 MHz ATmega8, charged to the virtual clock.
//!
//! Two kinds of time:
//! - **CPU work** (the V-USB driver, the request functions, the address arithmetic, polling
//!   the SPI flag) runs in the foreground and is stretched by the interrupt load of the host's
//!   NAKed tokens ([`crate::emulate::vusb::busy_stretch_ns`]).
//! - **Clocked time**: the hardware SPI shifts at its own rate, and the software SPI and every
//!   wait count timer-0 ticks (prescaler 64: 5.33 µs), so interrupts do not lengthen them.
//!
//! Cycle counts are estimates from the C source (avr-gcc -Os: an indirect call to
//! `ispTransmit` and its return ~10 cycles, 32-bit address shifts ~30); `docs/timing/usbasp.md`
//! compares the result with avrdude runs on real USBasps.

use crate::emulate::usb::UsbIo;
use crate::emulate::vusb::busy_stretch_ns;
use crate::programmer::usbasp::protocol::{CYCLES_PER_TICK, F_CPU};

/// A SETUP packet: `usbPoll()`, `usbProcessRx()`, the `usbFunctionSetup()` if-chain.
pub const SETUP_CYCLES: u64 = 150;
/// Each IN data packet: `usbBuildTxBlock()`, the read function's call, the packet's CRC16.
pub const IN_PACKET_CYCLES: u64 = 250;
/// Each OUT data packet: `usbProcessRx()` and the write function's call.
pub const OUT_PACKET_CYCLES: u64 = 80;
/// One `ispTransmit` call besides the bits: the indirect call, SPDR, the SPIF loop, return.
pub const TRANSMIT_CALL_CYCLES: u64 = 14;
/// A flash or EEPROM byte besides its four transmits: `ispUpdateExtended()`, the 32-bit
/// address shifts, the read/write function's loop and counters.
pub const BYTE_CYCLES: u64 = 80;
/// The interrupt handler for one token it answers with NAK (V-USB's `usbdrvasm12.inc`:
/// receiving SYNC, PID, address and CRC5 at 8 cycles a bit, sending the NAK handshake):
/// about 500 cycles, as for the USBtiny.
pub const ISR_CYCLES_PER_NAK: u64 = 500;

/// ns of `cycles` at 12 MHz.
pub fn cycles_ns(cycles: u64) -> u64 {
    cycles * 1_000_000_000 / u64::from(F_CPU)
}

/// ns of `ticks` timer-0 ticks.
pub fn ticks_ns(ticks: u64) -> u64 {
    cycles_ns(ticks * u64::from(CYCLES_PER_TICK))
}

/// Charges `cycles` of foreground work, stretched by the NAK interrupt load.
pub fn run(io: &mut UsbIo, cycles: u64) {
    let ns = cycles_ns(cycles);
    io.delay_ns(ns.saturating_add(busy_stretch_ns(ns, cycles_ns(ISR_CYCLES_PER_NAK))));
}

/// `ispDelay()`: waits until timer 0 has moved `ticks` on from where it was. The first tick
/// is partial: on average the wait is `ticks - 0.5` ticks.
pub fn isp_delay(io: &mut UsbIo, ticks: u8) {
    let half_ticks = (2 * u64::from(ticks)).saturating_sub(1);
    io.delay_ns(ticks_ns(half_ticks) / 2);
}

/// `clockWait(n)`: `n` × 60 ticks (320 µs).
pub fn clock_wait(io: &mut UsbIo, units: u8) {
    io.delay_ns(ticks_ns(60) * u64::from(units));
}
