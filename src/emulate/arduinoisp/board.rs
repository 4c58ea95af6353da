//! The boards ArduinoISP runs on, and what each one costs in time.
//!
//! Every constant here is the firmware's own mechanics (cycle counts read off the QMK build's
//! disassembly, the Arduino cores' serial code) or a link property; `docs/timing/arduinoisp.md`
//! lists them with their sources and compares the model with real avrdude runs.

use std::time::Duration;

use crate::emulate::serial::SerialTiming;

/// ArduinoISP's SPI clock. The sketch asks for `SPI_CLOCK = 1000000/6` (166.7 kHz); on an AVR
/// host that is above F_CPU/128, so hardware SPI is used, and the SPI library picks the fastest
/// divider not above the request: F_CPU/128 = 125 kHz on a 16 MHz board. The QMK build's
/// `start_pmode` writes SPCR = 0x53 (SPR1:SPR0 = 11) and SPSR = 0, the same /128 divider.
pub const SPI_HZ: u32 = 125_000;

/// One CPU cycle of a 16 MHz host, in ns.
const CYCLE_NS: u64 = 62; // 62.5 ns, rounded down; the counts below are estimates anyway

/// setup()'s greeting: `pulse(LED, 2)` blinks each of the three LEDs 3 times, 30 ms on and
/// 30 ms off (`PTIME`), before the sketch reads its first byte.
pub const GREETING: Duration = Duration::from_millis(3 * 3 * 60);

/// The Uno's Optiboot waits this long for a bootloader command after an external (DTR) reset
/// before starting the sketch (`WATCHDOG_1S`). ArduinoISP's 19200-baud bytes are garbage to
/// Optiboot's 115200 baud, so none of them is answered.
pub const OPTIBOOT_TIMEOUT: Duration = Duration::from_secs(1);

/// Software costs of one ArduinoISP build, in ns of host CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareCosts {
    /// Software time around each of the 4 SPI bytes of a transaction: `SPI.transfer`'s
    /// `out SPDR`, `nop`, the SPIF poll's exit, `in`, `ret`, and the caller's next `rcall`
    /// (about 14 cycles; the 8 SCK periods themselves are charged by the target).
    pub spi_byte_gap_ns: u64,
    /// `spi_transaction()` itself: prologue, argument spills and reloads, epilogue (about 44
    /// cycles in the QMK build at 0x310).
    pub transaction_ns: u64,
    /// Taking one byte from the host: `getch()` = `available()` + `read()` (and, on a UART
    /// host, the RX interrupt that stored it).
    pub getch_ns: u64,
    /// Handing one byte to the host: `SERIAL.print((char)c)`.
    pub putch_ns: u64,
    /// One pass of `loop()` before a command is dispatched: the two LED writes, `heartbeat()`
    /// and `available()`.
    pub loop_ns: u64,
}

/// The board ArduinoISP runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostBoard {
    /// A 5 V / 16 MHz Pro Micro running QMK's `util/pro_micro_ISP_B6_10.hex`: the stock
    /// sketch built with Teensyduino's USB serial (VID:PID 16C0:0483), target RESET on pin 10
    /// (B6). Native USB CDC: the baud rate is ignored and opening the port resets nothing.
    ProMicro,
    /// A Teensy 2.0 running QMK's `util/teensy_2.0_ISP_B0.hex`: the same build with RESET on
    /// B0, so the same timing.
    Teensy20,
    /// An Uno-style board: the stock sketch on an ATmega328P (Arduino AVR core), 19200 baud on
    /// its UART behind the 16U2 USB-serial bridge, which resets the board when the host
    /// asserts DTR (opening the port does).
    Uno,
}

impl HostBoard {
    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            HostBoard::ProMicro => "ArduinoISP on a Pro Micro (QMK build)",
            HostBoard::Teensy20 => "ArduinoISP on a Teensy 2.0 (QMK build)",
            HostBoard::Uno => "ArduinoISP on an Uno",
        }
    }

    /// The board pin that drives the target's RESET.
    pub fn reset_pin(self) -> &'static str {
        match self {
            HostBoard::ProMicro => "pin 10 (B6)",
            HostBoard::Teensy20 => "B0",
            HostBoard::Uno => "pin 10 (B2)",
        }
    }

    /// The host link.
    ///
    /// - Native USB (Teensyduino's `usb_serial`): a reply that does not fill a 64-byte packet
    ///   waits for the transmit flush timer, which `write()` sets to 3 and the start-of-frame
    ///   interrupt counts down once per 1 ms frame (QMK build: `sts 0x024E, r13` with
    ///   r13 = 3; the SOF handler flushes endpoint 4 when it reaches 0): 2–3 ms, 2.5 ms on
    ///   average. The host's next OUT transfer is scheduled within about 0.5 ms. Turnaround
    ///   3 ms. Full-speed bulk moves about 1 MB/s: 64 µs per 64-byte packet.
    /// - Uno: 19200 baud, 10 bits per byte. The 16U2's USB-serial firmware forwards UART bytes
    ///   to USB when its Timer0 overflows (every 4.096 ms: prescaler 256 at 16 MHz), so 2 ms
    ///   on average, plus about 1 ms of USB scheduling: turnaround 3 ms.
    pub fn timing(self) -> SerialTiming {
        match self {
            HostBoard::ProMicro | HostBoard::Teensy20 => SerialTiming::UsbCdc {
                turnaround_ns: 3_000_000,
                packet_ns: 64_000,
            },
            HostBoard::Uno => SerialTiming::Uart {
                baud: 19_200,
                turnaround_ns: 3_000_000,
            },
        }
    }

    /// Whether asserting DTR resets the board (the Uno's auto-reset).
    pub fn dtr_resets(self) -> bool {
        self == HostBoard::Uno
    }

    /// Time from a reset until `setup()` starts: Optiboot's timeout on the Uno. The native-USB
    /// boards only appear as a serial port once the sketch runs, so their bootloader time is
    /// never seen by a host.
    pub fn boot_delay(self) -> Duration {
        match self {
            HostBoard::Uno => OPTIBOOT_TIMEOUT,
            HostBoard::ProMicro | HostBoard::Teensy20 => Duration::ZERO,
        }
    }

    /// The firmware's software costs on this board.
    ///
    /// - QMK build (Teensyduino core): `getch()` is `usb_serial` `available()` + `read()`,
    ///   each a few dozen cycles with interrupts off and the endpoint selected (about 75
    ///   cycles); `print((char)c)` is a virtual call into `usb_serial_class::write`, which
    ///   selects the endpoint, writes UEDATX, checks for a full bank and arms the flush timer
    ///   (about 100 cycles); `loop()` writes the LEDs with single `sbi`/`cbi` instructions
    ///   (Teensyduino inlines constant-pin `digitalWrite`) and reads `millis()` (about 100
    ///   cycles).
    /// - Uno (Arduino AVR core): the RX interrupt (about 60 cycles) plus `available()` and
    ///   `read()` (about 50) per byte received; `HardwareSerial::write` plus its TX interrupt
    ///   (about 110 cycles) per byte sent; `loop()` pays two table-driven `digitalWrite`s
    ///   (about 70 cycles each) and `heartbeat()` (about 60).
    pub fn costs(self) -> FirmwareCosts {
        let spi_byte_gap_ns = 14 * CYCLE_NS;
        let transaction_ns = 44 * CYCLE_NS;
        match self {
            HostBoard::ProMicro | HostBoard::Teensy20 => FirmwareCosts {
                spi_byte_gap_ns,
                transaction_ns,
                getch_ns: 75 * CYCLE_NS,
                putch_ns: 100 * CYCLE_NS,
                loop_ns: 100 * CYCLE_NS,
            },
            HostBoard::Uno => FirmwareCosts {
                spi_byte_gap_ns,
                transaction_ns,
                getch_ns: 110 * CYCLE_NS,
                putch_ns: 110 * CYCLE_NS,
                loop_ns: 200 * CYCLE_NS,
            },
        }
    }
}
