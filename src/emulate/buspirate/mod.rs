//! Emulated Bus Pirate v3 firmware (BP-FW commit `2188001d`, "Firmware v6.3-beta1 r2151",
//! built with the AVR extended commands): the text terminal's entry and exit, binary bit-bang
//! mode (BBIO1) and binary SPI mode (SPI1), byte for byte, on the emulated target socket.
//!
//! The firmware is a byte-driven state machine whose state outlives the host: closing the port
//! does not reset a real Bus Pirate (its FTDI bridge keeps it powered), so a host that opens
//! the port again finds it in whatever mode, and in the middle of whatever command, the last
//! one left it. Only [`BusPirate::new`] (plugging it in) starts from the terminal.
//!
//! The link is an FTDI FT232R at 115200 baud with its 16 ms latency timer, and the PIC24's
//! 4-byte UART FIFOs are modeled ([`crate::emulate::serial::UartBuffers`]): a host that sends
//! more bytes than the firmware can take while it is busy overruns the receiver, and the real
//! firmware (which never clears OERR) goes deaf until it is power-cycled. The emulator does the
//! same, and says so in [`BusPirateStatus::rx_overrun`]. See [`timing`] for every constant.
//!
//! The target's RESET is wired to CS ([`ResetWiring::Cs`], the default and avrdude's) or to
//! AUX. The on-board supplies are modeled as a flag only: the emulated target is self-powered,
//! as a keyboard on USB is.

mod bitbang;
mod pins;
mod spi;
mod terminal;
pub mod timing;

use std::sync::{Arc, Mutex, PoisonError};

use bitbang::{BitBang, BitBangAction};
use pins::Pins;
use spi::{Spi, SpiAction};
use terminal::{Terminal, TerminalAction};

use super::serial::{FirmwareIo, SerialFirmware, SerialTiming, Stop, UartBuffers};

/// Which firmware the emulated Bus Pirate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirmwareVersion {
    /// BP-FW `2188001d` (v6.3-beta1 r2151) with the AVR extended commands: write-then-read
    /// and bulk flash read. The default.
    #[default]
    V6_3,
    /// The official v6.1: write-then-read, no AVR extended commands (datapoint B2's "AVR
    /// Extended Commands not found").
    V6_1,
    /// A firmware before 5.10: neither write-then-read nor AVR extended commands.
    V5_9,
}

impl FirmwareVersion {
    /// The binary-mode commands this firmware has.
    pub fn features(self) -> Features {
        match self {
            FirmwareVersion::V6_3 => Features {
                write_then_read: true,
                avr_extended: true,
            },
            FirmwareVersion::V6_1 => Features {
                write_then_read: true,
                avr_extended: false,
            },
            FirmwareVersion::V5_9 => Features {
                write_then_read: false,
                avr_extended: false,
            },
        }
    }

    /// The firmware line of the version banner.
    fn banner_name(self) -> &'static str {
        match self {
            FirmwareVersion::V6_3 => "Firmware v6.3-beta1 r2151 ",
            FirmwareVersion::V6_1 => "Firmware v6.1 r1676 ",
            FirmwareVersion::V5_9 => "Firmware v5.9 r1539 ",
        }
    }
}

/// Optional binary SPI commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `04`/`05` write-then-read (firmware 5.10 and later).
    pub write_then_read: bool,
    /// `06` AVR extended commands (bulk flash read).
    pub avr_extended: bool,
}

/// Which Bus Pirate pin drives the target's RESET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResetWiring {
    /// CS (avrdude's default).
    #[default]
    Cs,
    /// AUX (avrdude's `-x reset=aux`).
    Aux,
}

/// How the emulated Bus Pirate is built and wired.
#[derive(Debug, Clone, PartialEq)]
pub struct BusPirateConfig {
    /// The firmware.
    pub firmware: FirmwareVersion,
    /// The pin wired to the target's RESET.
    pub reset_wiring: ResetWiring,
    /// The link: an FTDI bridge at [`timing::BAUD`] with its [`timing::FTDI_LATENCY`].
    pub link: SerialTiming,
}

impl Default for BusPirateConfig {
    fn default() -> Self {
        BusPirateConfig {
            firmware: FirmwareVersion::default(),
            reset_wiring: ResetWiring::default(),
            link: SerialTiming::Uart {
                baud: timing::BAUD,
                turnaround_ns: super::clock::duration_ns(timing::FTDI_LATENCY),
            },
        }
    }
}

/// The firmware's current mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum BusPirateMode {
    /// The text terminal (HiZ>).
    #[default]
    Terminal,
    /// Binary bit-bang mode (BBIO1).
    BitBang,
    /// Binary SPI mode (SPI1).
    Spi,
}

/// What tests and tools can see of the emulated Bus Pirate while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct BusPirateStatus {
    /// The current mode.
    pub mode: BusPirateMode,
    /// The SPI speed code, in SPI mode.
    pub spi_speed_code: Option<u8>,
    /// A UART overrun made the firmware deaf; only a power cycle (a new emulator) helps.
    pub rx_overrun: bool,
    /// PIC resets (`#` in the terminal, `0F` in binary mode).
    pub resets: u32,
}

/// A handle to an emulated Bus Pirate's [`BusPirateStatus`].
#[derive(Debug, Clone, Default)]
pub struct StatusHandle(Arc<Mutex<BusPirateStatus>>);

impl StatusHandle {
    /// The status now.
    pub fn get(&self) -> BusPirateStatus {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, status: BusPirateStatus) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

enum Mode {
    Terminal(Terminal),
    BitBang(BitBang),
    Spi(Spi),
}

/// The emulated Bus Pirate v3 (a [`SerialFirmware`]).
pub struct BusPirate {
    config: BusPirateConfig,
    pins: Pins,
    mode: Mode,
    resets: u32,
    status: StatusHandle,
}

impl BusPirate {
    /// A Bus Pirate just plugged in: at the terminal, pins inputs, supplies off.
    pub fn new(config: BusPirateConfig) -> Self {
        BusPirate {
            pins: Pins::new(config.reset_wiring),
            config,
            mode: Mode::Terminal(Terminal::default()),
            resets: 0,
            status: StatusHandle::default(),
        }
    }

    /// A handle that follows the firmware's status while it runs on its own thread.
    pub fn status_handle(&self) -> StatusHandle {
        self.status.clone()
    }

    /// Handles one byte from the host in the current mode.
    fn byte(&mut self, b: u8, io: &mut FirmwareIo) {
        let firmware = self.config.firmware;
        match &mut self.mode {
            Mode::Terminal(terminal) => {
                io.delay_ns(timing::COMMAND_NS);
                let mut out = Vec::new();
                let action = terminal.key(b, &version_info(firmware), &mut out);
                io.write(&out);
                match action {
                    TerminalAction::None => {}
                    TerminalAction::EnterBinary => self.enter_bitbang(io),
                    TerminalAction::Reset => self.reset_pic(io),
                }
            }
            Mode::BitBang(bitbang) => match bitbang.byte(b, &mut self.pins, io) {
                BitBangAction::Stay => {}
                BitBangAction::EnterSpi => {
                    self.mode = Mode::Spi(Spi::enter(&mut self.pins, io));
                }
                BitBangAction::ResetPic => self.reset_pic(io),
            },
            Mode::Spi(spi) => {
                let features = self.config.firmware.features();
                if spi.byte(b, features, &mut self.pins, io) == SpiAction::Exit {
                    self.enter_bitbang(io);
                }
            }
        }
    }

    /// `binBB()`: pins reset, `BBIO1`.
    fn enter_bitbang(&mut self, io: &mut FirmwareIo) {
        self.pins.bitbang_reset(io);
        io.write(bitbang::VERSION);
        self.mode = Mode::BitBang(BitBang::default());
    }

    /// `asm("RESET")`: the PIC restarts, its pins go back to inputs, and after `Initialize()`
    /// it prints the banner and the prompt.
    fn reset_pic(&mut self, io: &mut FirmwareIo) {
        self.resets += 1;
        self.pins.bitbang_reset(io);
        io.delay_ns(timing::BOOT_NS);
        let mut banner = b"\r\n".to_vec();
        banner.extend_from_slice(version_info(self.config.firmware).as_bytes());
        banner.extend_from_slice(terminal::PROMPT);
        io.write(&banner);
        self.mode = Mode::Terminal(Terminal::default());
    }

    fn publish(&self, io: &FirmwareIo) {
        let (mode, spi_speed_code) = match &self.mode {
            Mode::Terminal(_) => (BusPirateMode::Terminal, None),
            Mode::BitBang(_) => (BusPirateMode::BitBang, None),
            Mode::Spi(spi) => (BusPirateMode::Spi, Some(spi.speed_code())),
        };
        self.status.set(BusPirateStatus {
            mode,
            spi_speed_code,
            rx_overrun: io.rx_overrun(),
            resets: self.resets,
        });
    }
}

/// `versionInfo()` for a v3.b board with a B8 PIC24FJ64GA002.
fn version_info(firmware: FirmwareVersion) -> String {
    format!(
        "Bus Pirate v3.b\r\n{}[HiZ 1-WIRE UART I2C SPI 2WIRE 3WIRE LCD DIO] Bootloader v4.4\r\n\
         DEVID:0x0447 REVID:0x3046 (24FJ64GA002 B8)\r\nhttp://dangerousprototypes.com\r\n",
        firmware.banner_name()
    )
}

impl SerialFirmware for BusPirate {
    fn name(&self) -> &'static str {
        "Bus Pirate v3"
    }

    fn timing(&self) -> SerialTiming {
        self.config.link
    }

    fn uart_buffers(&self) -> Option<UartBuffers> {
        Some(UartBuffers {
            rx_fifo: timing::RX_FIFO,
            tx_depth: timing::TX_DEPTH,
        })
    }

    fn run(&mut self, io: &mut FirmwareIo) -> std::result::Result<(), Stop> {
        self.publish(io);
        loop {
            let b = io.getch()?;
            self.byte(b, io);
            self.publish(io);
        }
    }
}
