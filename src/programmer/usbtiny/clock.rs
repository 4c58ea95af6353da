//! The USBtiny's bit clock: what SCK a period setting really gives.
//!
//! The firmware bit-bangs SPI on a 12 MHz ATtiny2313. Per bit its loop (`spi()` in `main.c`,
//! compiled by avr-gcc -Os) runs two `delay()` calls of `6 × period + 2` cycles each (a
//! 6-cycle loop, the comment says "exactly 0.5 µs") plus 19 cycles of port and loop
//! instructions: `12 × period + 23` cycles per bit (22 when the MOSI bit is 0). The period
//! byte comes from POWERUP's wValue; 0 makes the delay loop run 256 times. So "-B 10" (avrdude's
//! default, "about 100 kHz") is really 12 MHz / 143 = 83.9 kHz, and the fastest setting,
//! 1 µs, is 342.9 kHz. SCK high lasts `6 × period + 10` cycles and low `6 × period + 13`.

/// The programmer's CPU clock (Adafruit USBtinyISP v2, SparkFun PocketAVR: a 12 MHz crystal;
/// the firmware's delay constant assumes it).
pub const FIRMWARE_CPU_HZ: u32 = 12_000_000;

/// Cycles per period unit in one bit: two `delay()` calls of 6 cycles per unit.
pub const CYCLES_PER_PERIOD_UNIT: u32 = 12;

/// Cycles of one bit besides the delays: the delay set-up (2 × 2), MOSI test and set (4-5),
/// SCK set (2), MISO sample (3), MOSI and SCK clear (4), loop (5).
pub const BIT_OVERHEAD_CYCLES: u32 = 23;

/// The fastest period avrdude and this driver use (µs).
pub const PERIOD_MIN: u8 = 1;

/// The slowest period (µs): the firmware keeps one byte.
pub const PERIOD_MAX: u8 = 250;

/// avrdude's default period (µs).
pub const DEFAULT_PERIOD: u8 = 10;

/// How many times the delay loop runs for a period byte (0 wraps to 256).
pub fn delay_units(period: u8) -> u32 {
    if period == 0 { 256 } else { u32::from(period) }
}

/// CPU cycles of one SPI bit at this period.
pub fn bit_cycles(period: u8) -> u32 {
    CYCLES_PER_PERIOD_UNIT * delay_units(period) + BIT_OVERHEAD_CYCLES
}

/// The SCK frequency the firmware really produces at this period, in Hz (rounded down).
pub fn sck_hz(period: u8) -> u32 {
    FIRMWARE_CPU_HZ / bit_cycles(period)
}

/// The shortest period (fastest clock) whose real SCK does not exceed `hz`; the slowest
/// period when even that is faster than `hz`.
pub fn period_for_hz(hz: u32) -> u8 {
    (PERIOD_MIN..=PERIOD_MAX)
        .find(|&p| sck_hz(p) <= hz)
        .unwrap_or(PERIOD_MAX)
}

/// Nanoseconds of `cycles` CPU cycles, rounded to the nearest ns.
pub fn cycles_ns(cycles: u64) -> u64 {
    cycles
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(FIRMWARE_CPU_HZ / 2))
        / u64::from(FIRMWARE_CPU_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_clock_per_period() {
        assert_eq!(bit_cycles(1), 35);
        assert_eq!(sck_hz(1), 342_857);
        assert_eq!(sck_hz(10), 83_916);
        assert_eq!(sck_hz(250), 3_969);
        // Period 0 is the slowest of all (256 loop runs).
        assert_eq!(bit_cycles(0), 12 * 256 + 23);
    }

    #[test]
    fn period_selection_never_exceeds_the_request() {
        assert_eq!(period_for_hz(10_000_000), 1);
        assert_eq!(period_for_hz(342_857), 1);
        assert_eq!(period_for_hz(342_856), 2);
        // The job layer's 200 kHz start: period 4 gives 169 kHz (period 3 would be 203 kHz).
        assert_eq!(period_for_hz(200_000), 4);
        assert_eq!(sck_hz(4), 169_014);
        assert_eq!(period_for_hz(1), PERIOD_MAX);
        for hz in [1_000, 50_000, 100_000, 250_000, 400_000] {
            let p = period_for_hz(hz);
            assert!(sck_hz(p) <= hz || p == PERIOD_MAX);
            assert!(p == PERIOD_MIN || sck_hz(p - 1) > hz);
        }
    }

    #[test]
    fn cycle_times() {
        assert_eq!(cycles_ns(12), 1_000);
        assert_eq!(cycles_ns(1), 83);
        assert_eq!(cycles_ns(u64::MAX), u64::MAX / 12_000_000);
    }
}
