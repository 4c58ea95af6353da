//! Low-speed USB control-transfer timing, shared by the emulated software-USB programmers
//! (USBasp on V-USB, USBtiny on Dick Streefland's USBtiny stack).
//!
//! Both firmwares bit-bang USB 1.1 low speed (1.5 Mbit/s, 8-byte packets on endpoint 0) and
//! speak only control transfers, so what the host costs them is the same:
//!
//! - every transfer pays a setup stage, a status stage and the host's per-transfer work
//!   ([`TRANSFER_NS`]);
//! - every 8-byte data packet pays one data transaction once the device has it ready
//!   ([`PACKET_NS`]);
//! - while the firmware is busy preparing a packet, the host keeps re-sending the token and the
//!   firmware's interrupt handler answers each one with NAK. That steals CPU time from the work
//!   in progress: see [`busy_stretch_ns`], with the retry interval [`NAK_RETRY_NS`].
//!
//! Sources: USB 1.1 low-speed signalling (1.5 Mbit/s, 8-byte control packets), and the
//! calibration datapoints in `shared/reference/timing-datapoints.md`: U1 (USBaspLoader, the same
//! transport with no ISP work: ~22.7 ms per 200-byte read transfer, ~0.85 ms per transaction)
//! fixes the transfer and packet costs; T2/T3/T4 (USBtiny, whose bit-banged SPI keeps the
//! firmware busy for most of each transfer) fix the NAK retry interval. The derivations are in
//! `docs/timing/usbtiny.md`.

use super::usb::UsbTiming;

/// One low-speed bit time: 1 / 1.5 MHz, in ns (rounded).
pub const LOW_SPEED_BIT_NS: u64 = 667;

/// Data packet size of a low-speed control endpoint.
pub const PACKET_SIZE: u16 = 8;

/// Setup and status stages of one control transfer plus the host's per-transfer scheduling:
/// two transactions at [`PACKET_NS`] each and ~0.4 ms of host stack work (U1: a 200-byte
/// transfer of 25 data packets takes ~22.5 ms = 2.0 ms + 25 × 0.82 ms).
pub const TRANSFER_NS: u64 = 2_000_000;

/// One 8-byte data transaction, once the device has the packet ready: the host controller
/// schedules low-speed control transactions at about one per 1 ms frame (U1).
pub const PACKET_NS: u64 = 800_000;

/// How soon the host re-sends a token the device answered with NAK: ~104 low-speed bit times
/// (the token + NAK exchange itself takes ~60). Calibrated on the USBtiny datapoints T2/T3/T4,
/// whose transfers are dominated by firmware work done under this NAK load.
pub const NAK_RETRY_NS: u64 = 69_000;

/// The link timing of a low-speed software-USB device.
pub const fn low_speed_timing() -> UsbTiming {
    UsbTiming {
        transfer_ns: TRANSFER_NS,
        packet_ns: PACKET_NS,
        packet_size: PACKET_SIZE,
    }
}

/// The extra time `work_ns` of foreground firmware work really takes while the host retries
/// NAKed tokens every [`NAK_RETRY_NS`] and the interrupt handler spends `isr_ns_per_nak` on each
/// (receiving the token, sending NAK). The foreground gets `1 - isr/retry` of the CPU, so the
/// work is stretched by `isr / (retry - isr)` of itself. An interrupt handler that would need
/// the whole retry interval leaves no CPU at all; that is clamped to a 100-fold stretch.
pub fn busy_stretch_ns(work_ns: u64, isr_ns_per_nak: u64) -> u64 {
    let isr = u128::from(isr_ns_per_nak.min(NAK_RETRY_NS * 100 / 101));
    let spare = u128::from(NAK_RETRY_NS) - isr;
    let extra = u128::from(work_ns) * isr / spare;
    u64::try_from(extra).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_of_25_packets_costs_what_u1_measured() {
        // U1: ~22.7 ms per 200-byte read transfer with no firmware work in between.
        let t = low_speed_timing();
        let ns = t.transfer_ns + 25 * t.packet_ns;
        assert!((21_000_000..=24_000_000).contains(&ns), "{ns}");
    }

    #[test]
    fn stretch_grows_with_the_interrupt_load() {
        assert_eq!(busy_stretch_ns(1_000, 0), 0);
        // Half the CPU to the ISR doubles the time: the extra equals the work.
        assert_eq!(busy_stretch_ns(1_000, NAK_RETRY_NS / 2), 1_000);
        // A handler longer than the interval is clamped, never divides by zero.
        assert!((99..=100).contains(&busy_stretch_ns(1, NAK_RETRY_NS * 2)));
        assert_eq!(busy_stretch_ns(u64::MAX, NAK_RETRY_NS), u64::MAX);
    }
}
