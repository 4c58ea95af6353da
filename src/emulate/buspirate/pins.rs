//! The Bus Pirate's five I/O pins, its power supplies and pull-ups, and how they reach the
//! target's RESET and SCK.
//!
//! Bit order is the firmware's pin byte (BP-FW `binIO.c`): AUX = bit 4, MOSI = 3, CLK = 2,
//! MISO = 1, CS = 0. Direction bits are 1 for input. The target's RESET is wired to CS (or AUX,
//! avrdude's `-x reset=aux`) and is asserted only while that pin is **driven low**: an input,
//! or an open-drain output that is "high", leaves RESET to the target's own pull-up.

use super::ResetWiring;
use crate::emulate::serial::FirmwareIo;

/// CS pin bit.
pub(super) const CS: u8 = 0x01;
/// MISO pin bit.
pub(super) const MISO: u8 = 0x02;
/// CLK pin bit.
pub(super) const CLK: u8 = 0x04;
/// MOSI pin bit.
pub(super) const MOSI: u8 = 0x08;
/// AUX pin bit.
pub(super) const AUX: u8 = 0x10;
/// All five pins.
const ALL: u8 = CS | MISO | CLK | MOSI | AUX;

/// Pin state, as the firmware's registers hold it.
#[derive(Debug, Clone)]
pub(super) struct Pins {
    /// TRIS bits: 1 = input.
    dir: u8,
    /// LAT bits (output levels).
    lat: u8,
    /// The on-board 3.3 V / 5 V supplies.
    pub power: bool,
    /// Pull-up resistors to Vpu on MOSI, CLK, MISO, CS.
    pub pullups: bool,
    /// Outputs are open drain (the SPI mode's "HiZ" setting).
    pub open_drain: bool,
    wiring: ResetWiring,
    /// What the socket was last told, so that only edges are passed on.
    reset_asserted: bool,
    sck_high: bool,
}

impl Pins {
    /// After power-up: every pin an input, supplies and pull-ups off.
    pub fn new(wiring: ResetWiring) -> Self {
        Pins {
            dir: ALL,
            lat: 0,
            power: false,
            pullups: false,
            open_drain: false,
            wiring,
            reset_asserted: false,
            sck_high: false,
        }
    }

    /// `binReset()`: all pins inputs, all latches low, supplies and pull-ups off.
    pub fn bitbang_reset(&mut self, io: &mut FirmwareIo) {
        self.dir = ALL;
        self.lat = 0;
        self.power = false;
        self.pullups = false;
        self.open_drain = false;
        self.apply(io);
    }

    /// `binBBpindirectionset`: sets the directions, returns the command byte with the pins read.
    pub fn set_directions(&mut self, command: u8, io: &mut FirmwareIo) -> u8 {
        self.dir = command & ALL;
        self.apply(io);
        (command & !ALL) | self.read()
    }

    /// `binBBpinset`: power, pull-ups and latches from a `1wxyzabc` byte; returns the command
    /// byte with the pins read.
    pub fn set_levels(&mut self, command: u8, io: &mut FirmwareIo) -> u8 {
        self.power = command & 0x40 != 0;
        self.pullups = command & 0x20 != 0;
        self.lat = command & ALL;
        self.apply(io);
        (command & !ALL) | self.read()
    }

    /// Drives `pin` as a push-pull (or open-drain) output at `high`.
    pub fn drive(&mut self, pin: u8, high: bool, io: &mut FirmwareIo) {
        self.dir &= !pin;
        if high {
            self.lat |= pin;
        } else {
            self.lat &= !pin;
        }
        self.apply(io);
    }

    /// Sets `pin`'s output latch without changing its direction (an input stays an input).
    pub fn set_latch(&mut self, pin: u8, high: bool, io: &mut FirmwareIo) {
        if high {
            self.lat |= pin;
        } else {
            self.lat &= !pin;
        }
        self.apply(io);
    }

    /// Makes `pin` an input.
    pub fn release(&mut self, pin: u8, io: &mut FirmwareIo) {
        self.dir |= pin;
        self.apply(io);
    }

    /// Whether MOSI and CLK can actually go high: push-pull outputs, or open drain with the
    /// pull-ups on. Without that the target sees no clock edges at all.
    pub fn spi_lines_work(&self) -> bool {
        !self.open_drain || self.pullups
    }

    /// The pin byte as the firmware reads it back: outputs read their latch, inputs read high
    /// only through the pull-ups (an unconnected input is taken as low).
    fn read(&self) -> u8 {
        let outputs = self.lat & !self.dir;
        let inputs = if self.pullups { self.dir } else { 0 };
        (outputs | inputs) & ALL
    }

    fn driven_low(&self, pin: u8) -> bool {
        self.dir & pin == 0 && self.lat & pin == 0
    }

    fn is_high(&self, pin: u8) -> bool {
        !self.driven_low(pin) && (self.pullups || (self.dir & pin == 0 && !self.open_drain))
    }

    /// Passes level changes of SCK and RESET to the target (SCK first: the firmware writes the
    /// latches in the order AUX, MOSI, CLK, MISO, CS).
    fn apply(&mut self, io: &mut FirmwareIo) {
        let sck_high = self.is_high(CLK);
        if sck_high != self.sck_high {
            self.sck_high = sck_high;
            io.set_sck_level(sck_high);
        }
        let reset_pin = match self.wiring {
            ResetWiring::Cs => CS,
            ResetWiring::Aux => AUX,
        };
        let asserted = self.driven_low(reset_pin);
        if asserted != self.reset_asserted {
            self.reset_asserted = asserted;
            io.set_reset(asserted);
        }
    }
}
