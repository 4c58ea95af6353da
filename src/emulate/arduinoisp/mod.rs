//! Emulated ArduinoISP firmware (STK500v1) on a Pro Micro, Teensy 2.0 or Uno-style host.
//!
//! The sketch (module `sketch`) follows arduino/arduino-examples `ArduinoISP.ino` (commit
//! 4c5fa7a6, facts sheet §2.8) command by command, quirks included:
//!
//! - replies: `14 … 10`; a lone `12` for an unknown command followed by `20`, else `15`
//!   (both count in the error LED's counter, which GET_SYNC and LEAVE_PROGMODE clear);
//!   a stray `20` gets `15`; SET_PARAMETER is unknown, so its extra bytes desynchronise;
//! - HW 2, SW 1.18, sign-on "AVR ISP"; SET_DEVICE_EXT reads exactly 5 bytes;
//! - ENTER_PROGMODE resets the target (20 ms, a 100 µs RESET pulse, 50 ms) and sends
//!   Programming Enable without checking the echo, only when not already in programming mode;
//! - PROG_PAGE goes through a 256-byte buffer; flash pages are committed when `here` crosses
//!   a page boundary and at the end, each followed by the 30 ms PROG_FLICKER pause;
//! - EEPROM is addressed as `here × 2` (a word address), written byte by byte with 45 ms each,
//!   and a write longer than the EEPROM answers FAILED without reading its data;
//! - READ_PAGE streams its data (no buffer limit), reading flash in whole words; UNIVERSAL
//!   runs its instruction before checking the frame's end.
//!
//! Time is charged to the socket's virtual clock: SPI bytes at [`SPI_HZ`] by the target, the
//! sketch's own delays, its software overhead per byte and per transaction ([`FirmwareCosts`]),
//! and the host link ([`HostBoard::timing`]). `docs/timing/arduinoisp.md` documents every
//! constant and compares the model with real avrdude runs.
//!
//! The host boards: [`HostBoard::ProMicro`] and [`HostBoard::Teensy20`] run QMK's prebuilt
//! hex files (native USB CDC: baud ignored, no reset on open); [`HostBoard::Uno`] runs the
//! stock sketch at 19200 baud behind a USB-serial bridge, and asserting DTR (opening the port)
//! resets it: the sketch restarts after Optiboot's timeout and setup()'s LED greeting.

mod board;
mod sketch;

pub use board::{FirmwareCosts, GREETING, HostBoard, OPTIBOOT_TIMEOUT, SPI_HZ};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::serial::{FirmwareIo, SerialFirmware, SerialTiming, Stop};
use sketch::Sketch;

/// Compile-time options of the sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SketchBuild {
    /// `#define PROG_FLICKER true`: blink the programming LED off for 30 ms after each flash
    /// page commit (the stock sketch and both QMK builds have it on). Off, page writes are
    /// 30 ms faster each.
    pub prog_flicker: bool,
}

impl Default for SketchBuild {
    fn default() -> Self {
        SketchBuild { prog_flicker: true }
    }
}

/// One command the sketch handled, with the modeled times it started and ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandRecord {
    /// The command byte.
    pub command: u8,
    /// Modeled seconds (as in [`super::stats::EmulatorStats::modeled_seconds`]) when its first
    /// byte had arrived.
    pub started_s: f64,
    /// Modeled seconds when its reply had left the programmer.
    pub finished_s: f64,
}

/// The most commands [`SketchStatus::log`] keeps (a full 128 KB write and read is ~2000).
pub const COMMAND_LOG_LIMIT: usize = 1 << 16;

/// What a test can observe of the running sketch: its LEDs, registers and counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SketchStatus {
    /// The programming LED: programming mode is on.
    pub pmode: bool,
    /// The error counter (the error LED is lit while it is not 0).
    pub error: i16,
    /// The word address register.
    pub here: u16,
    /// Flash page size from SET_DEVICE.
    pub pagesize: u16,
    /// EEPROM size from SET_DEVICE.
    pub eepromsize: u16,
    /// Device code from SET_DEVICE.
    pub devicecode: u8,
    /// RESET is active-high (device code ≥ 0xE0).
    pub rst_active_high: bool,
    /// PROG_PAGE frames longer than the 256-byte buffer.
    pub buffer_overruns: u64,
    /// Board resets (power-up included).
    pub resets: u64,
    /// The commands handled, oldest first (up to [`COMMAND_LOG_LIMIT`]).
    pub log: Vec<CommandRecord>,
}

/// A handle on a running sketch's [`SketchStatus`], kept by the test or app that started it.
#[derive(Debug, Clone, Default)]
pub struct SketchMonitor(Arc<Mutex<SketchStatus>>);

impl SketchMonitor {
    /// A copy of the status now.
    pub fn status(&self) -> SketchStatus {
        self.lock().clone()
    }

    /// Forgets the command log (to measure the next phase on its own).
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    fn lock(&self) -> MutexGuard<'_, SketchStatus> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The ArduinoISP firmware on a host board.
pub struct ArduinoIsp {
    board: HostBoard,
    build: SketchBuild,
    sketch: Sketch,
    monitor: SketchMonitor,
}

impl ArduinoIsp {
    /// The stock build on `board`.
    pub fn new(board: HostBoard) -> Self {
        let build = SketchBuild::default();
        ArduinoIsp {
            board,
            build,
            sketch: Sketch::power_on(board.costs(), build),
            monitor: SketchMonitor::default(),
        }
    }

    /// The same board with other compile-time options.
    pub fn with_build(mut self, build: SketchBuild) -> Self {
        self.build = build;
        self.sketch = Sketch::power_on(self.board.costs(), build);
        self
    }

    /// The board.
    pub fn board(&self) -> HostBoard {
        self.board
    }

    /// A handle to watch the sketch once it runs on the emulator's thread.
    pub fn monitor(&self) -> SketchMonitor {
        self.monitor.clone()
    }

    fn publish(&self) {
        self.sketch.report(&mut self.monitor.lock());
    }
}

impl SerialFirmware for ArduinoIsp {
    fn name(&self) -> &'static str {
        self.board.name()
    }

    fn timing(&self) -> SerialTiming {
        self.board.timing()
    }

    fn dtr_resets(&self) -> bool {
        self.board.dtr_resets()
    }

    /// `loop()`: wait for a byte, run the command, forever.
    fn run(&mut self, io: &mut FirmwareIo) -> Result<(), Stop> {
        loop {
            let ch = io.getch()?;
            let started_s = io.stats().modeled_seconds;
            let costs = self.board.costs();
            io.delay_ns(costs.loop_ns + costs.getch_ns);
            let result = self.sketch.command(io, ch);
            let finished_s = io.stats().modeled_seconds;
            self.publish();
            let mut status = self.monitor.lock();
            if status.log.len() < COMMAND_LOG_LIMIT {
                status.log.push(CommandRecord {
                    command: ch,
                    started_s,
                    finished_s,
                });
            }
            drop(status);
            result?;
        }
    }

    /// Power-up or a DTR reset: the sketch's globals start from zero, its pins are inputs (the
    /// target's pull-up releases RESET), and it takes bytes once the bootloader has handed
    /// over and setup()'s LED greeting is done.
    fn reset(&mut self, io: &mut FirmwareIo) {
        self.sketch = Sketch::power_on(self.board.costs(), self.build);
        io.set_reset(false);
        io.delay(self.board.boot_delay() + GREETING);
        self.publish();
        self.monitor.lock().resets += 1;
    }
}

#[cfg(test)]
mod tests;
