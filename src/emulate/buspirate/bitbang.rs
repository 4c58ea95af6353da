//! Binary bit-bang mode, BBIO1 (BP-FW `binIO.c` `binBB`).
//!
//! | Byte        | Firmware reply                                                        |
//! |-------------|-----------------------------------------------------------------------|
//! | `00`        | `BBIO1`                                                               |
//! | `01`        | enter binary SPI: `SPI1` (pins reset first)                           |
//! | `02`..`07`  | I2C, UART, 1-Wire, raw-wire, OpenOCD, PIC: not emulated, answered as a build without that mode answers: pins reset, `BBIO1` |
//! | `0F`        | `01`, then the PIC resets to the terminal                             |
//! | `10`/`11`   | self-test: `00` (no errors), then echo byte + errors until `FF` → `01` |
//! | `12`        | PWM setup: 5 more bytes, `01`                                         |
//! | `13`        | PWM off: `01`                                                         |
//! | `14`        | ADC: two bytes (0 V on the probe)                                     |
//! | `16`        | frequency count: four bytes (no signal on AUX)                        |
//! | `40`..`7F`  | pin directions (`010xxxxx`, the `0x20` bit is ignored); pins read     |
//! | `80`..`FF`  | power, pull-ups, pin levels; pins read                                |
//! | others      | `00` (unknown; `15`, continuous ADC, is not emulated and lands here)  |

use super::pins::Pins;
use super::timing::{COMMAND_NS, PIN_SETTLE_NS};
use crate::emulate::serial::FirmwareIo;

/// What the mode loop does after a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BitBangAction {
    /// Stay in bit-bang mode.
    Stay,
    /// Enter binary SPI mode (`01`).
    EnterSpi,
    /// `0F`: the PIC resets into the terminal.
    ResetPic,
}

/// The mode's version string.
pub(super) const VERSION: &[u8] = b"BBIO1";

/// Bytes a command is still waiting for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Pending {
    #[default]
    Command,
    /// PWM setup: prescaler, duty (2 bytes), period (2 bytes).
    PwmSetup { left: u8 },
    /// The self-test echo loop, until `FF`.
    SelfTestEcho,
}

/// Binary bit-bang mode.
#[derive(Debug, Clone, Default)]
pub(super) struct BitBang {
    pending: Pending,
}

impl BitBang {
    /// Handles one byte from the host.
    pub fn byte(&mut self, b: u8, pins: &mut Pins, io: &mut FirmwareIo) -> BitBangAction {
        io.delay_ns(COMMAND_NS);
        match std::mem::take(&mut self.pending) {
            Pending::PwmSetup { left } => {
                if left > 1 {
                    self.pending = Pending::PwmSetup { left: left - 1 };
                } else {
                    io.write(&[0x01]);
                }
                BitBangAction::Stay
            }
            Pending::SelfTestEcho => {
                if b == 0xFF {
                    io.write(&[0x01]);
                } else {
                    // Echo plus the error count (zero).
                    io.write(&[b]);
                    self.pending = Pending::SelfTestEcho;
                }
                BitBangAction::Stay
            }
            Pending::Command => self.command(b, pins, io),
        }
    }

    fn command(&mut self, b: u8, pins: &mut Pins, io: &mut FirmwareIo) -> BitBangAction {
        match b {
            0x00 => io.write(VERSION),
            0x01 => {
                pins.bitbang_reset(io);
                return BitBangAction::EnterSpi;
            }
            0x02..=0x07 => {
                pins.bitbang_reset(io);
                pins.bitbang_reset(io);
                io.write(VERSION);
            }
            0x0F => {
                io.write(&[0x01]);
                return BitBangAction::ResetPic;
            }
            0x10 | 0x11 => {
                io.write(&[0x00]);
                self.pending = Pending::SelfTestEcho;
            }
            0x12 => self.pending = Pending::PwmSetup { left: 5 },
            0x13 => io.write(&[0x01]),
            0x14 => io.write(&[0x00, 0x00]),
            0x16 => io.write(&[0x00; 4]),
            0x40..=0x7F => {
                let read = pins.set_directions(b, io);
                io.delay_ns(PIN_SETTLE_NS);
                io.write(&[read]);
            }
            0x80..=0xFF => {
                let read = pins.set_levels(b, io);
                io.delay_ns(PIN_SETTLE_NS);
                io.write(&[read]);
            }
            _ => io.write(&[0x00]),
        }
        BitBangAction::Stay
    }
}
