//! The emulated Bus Pirate v3's time model. Every constant is explained here and in
//! `docs/timing/buspirate.md`, with the calibration against real avrdude runs.
//!
//! The hardware: a PIC24FJ64GA002 at 32 MHz (Fcy = 16 MIPS) talks to the host through an FTDI
//! FT232RL USB-UART bridge at 115200 baud, 8N1.

use std::time::Duration;

/// The PIC's instruction clock (32 MHz oscillator, two clocks per instruction).
pub const FCY_HZ: u32 = 16_000_000;

/// The FTDI latency timer: the FT232R holds bytes for the host until its 62-byte packet fills
/// or the timer runs out (16 ms by default on Linux, macOS and Windows). Replies to single
/// commands are a few bytes, so each host → Bus Pirate → host turnaround waits for the timer;
/// calibrated by datapoint B2's 31 B/s byte-at-a-time reads (two turnarounds per byte).
pub const FTDI_LATENCY: Duration = Duration::from_millis(16);

/// The firmware's default link speed (`bpConfig.termSpeed = 8`, U1BRG for 115200).
pub const BAUD: u32 = 115_200;

/// Receive FIFO of the PIC24 UART: a fifth byte completing while four are unread sets OERR,
/// and `UART1RX()` (which never clears OERR) then waits forever.
pub const RX_FIFO: usize = 4;

/// Transmit FIFO (4) plus the shift register: `UART1TX()` spins while `UTXBF` is set.
pub const TX_DEPTH: usize = 5;

/// Per command byte: the `UART1RX()` poll, the dispatch `switch` and the `UART1TX(1)` of the
/// reply, about 16 instruction cycles.
pub const COMMAND_NS: u64 = 1_000;

/// Per SPI byte beyond its 8 SCK periods: `spiWriteByte()` writes SPI1BUF, spins on SPI1IF,
/// reads SPI1BUF and clears the flag, plus call and return, about 16 instruction cycles.
pub const SPI_CALL_NS: u64 = 1_000;

/// `bpDelayUS(5)` after every bit-bang pin change.
pub const PIN_SETTLE_NS: u64 = 5_000;

/// `bpDelayUS(1)` between the write and read phases of write-then-read.
pub const WRITE_THEN_READ_GAP_NS: u64 = 1_000;

/// After a reset (`#`, or `0F` in binary mode): `Initialize()` counts a volatile 32-bit
/// `delay = 0xffff` down to zero (about 6 cycles per pass at 16 MIPS) before it prints the
/// version banner.
pub const BOOT_NS: u64 = 25_000_000;

/// `binSPIspeed[]`: the SPI1CON1 prescaler bits for speed codes 0..7 (BP-FW `SPI.c`).
const SPEED_REGISTER: [u8; 8] = [
    0b00000, 0b11000, 0b11100, 0b11101, 0b00011, 0b01011, 0b10011, 0b11011,
];

/// SCK for a speed code: Fcy divided by the primary (PPRE, bits 1..0: 64, 16, 4, 1) and
/// secondary (SPRE, bits 4..2: 8 - value) prescalers. Codes above 7 use their low three bits,
/// as the firmware's `inByte & 0b111` does.
pub fn sck_hz(code: u8) -> u32 {
    let bits = SPEED_REGISTER[usize::from(code & 0x07)];
    let primary = [64, 16, 4, 1][usize::from(bits & 0b11)];
    let secondary = 8 - u32::from(bits >> 2);
    FCY_HZ / (primary * secondary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_codes_match_the_documented_clocks() {
        // BP-DOC: 30 kHz, 125 kHz, 250 kHz, 1, 2, 2.6, 4, 8 MHz (30 kHz is really 31.25 kHz).
        let hz: Vec<u32> = (0..8).map(sck_hz).collect();
        assert_eq!(
            hz,
            [
                31_250, 125_000, 250_000, 1_000_000, 2_000_000, 2_666_666, 4_000_000, 8_000_000
            ]
        );
        assert_eq!(sck_hz(0x0B), sck_hz(3));
    }
}
