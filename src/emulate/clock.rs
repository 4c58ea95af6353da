//! The virtual clock every emulation runs on: nanoseconds as a `u64`, moved forward only by what
//! the emulation charges (SPI bytes, a firmware's own delays, USB turnaround), never by the wall
//! clock. Tests on a noisy machine therefore see exactly the same times on every run.

use std::time::Duration;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Emulated time since the emulation started. It never goes backwards and saturates at
/// `u64::MAX` nanoseconds (about 584 years) instead of overflowing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtualClock {
    now_ns: u64,
}

impl VirtualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current time in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The current time as a [`Duration`] since the start.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now_ns)
    }

    /// Moves time forward by `duration` (idle time: a firmware delay, a USB round trip).
    pub fn advance(&mut self, duration: Duration) {
        self.advance_ns(duration_ns(duration));
    }

    /// Moves time forward by `ns` nanoseconds.
    pub fn advance_ns(&mut self, ns: u64) {
        self.now_ns = self.now_ns.saturating_add(ns);
    }

    /// Moves time forward to `deadline_ns`; does nothing if that moment has already passed.
    pub fn advance_to(&mut self, deadline_ns: u64) {
        self.now_ns = self.now_ns.max(deadline_ns);
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX`.
pub fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// How long clocking one byte (8 SCK periods) takes at `sck_hz`, rounded up to whole
/// nanoseconds. A clock of 0 Hz is treated as 1 Hz so that a bad setting costs a lot of time
/// instead of dividing by zero.
pub fn spi_byte_ns(sck_hz: u32) -> u64 {
    let hz = u64::from(sck_hz.max(1));
    (8 * NANOS_PER_SECOND).div_ceil(hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_times_follow_the_sck_frequency() {
        // 8 bits at 1 MHz = 8 µs; at 125 kHz = 64 µs.
        assert_eq!(spi_byte_ns(1_000_000), 8_000);
        assert_eq!(spi_byte_ns(125_000), 64_000);
        // 3 MHz does not divide evenly: 2666.67 ns rounds up.
        assert_eq!(spi_byte_ns(3_000_000), 2_667);
        assert_eq!(spi_byte_ns(0), 8 * NANOS_PER_SECOND);
    }

    #[test]
    fn time_only_moves_forward_and_saturates() {
        let mut clock = VirtualClock::new();
        clock.advance(Duration::from_micros(20));
        assert_eq!(clock.now_ns(), 20_000);
        clock.advance_to(5_000);
        assert_eq!(clock.now(), Duration::from_micros(20));
        clock.advance_to(30_000);
        assert_eq!(clock.now_ns(), 30_000);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now_ns(), u64::MAX);
        clock.advance_ns(1);
        assert_eq!(clock.now_ns(), u64::MAX);
    }
}
