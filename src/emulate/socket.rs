//! The emulated ISP header: the wires between a programmer and whatever target is plugged in.
//!
//! A [`Socket`] owns the virtual clock that every emulated programmer charges its time to, and an
//! optional [`EmulatedChip`]. Production-line tests swap chips in and out ("no target", "new
//! chip") while the programmer keeps running; the clock carries on across swaps.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::chip::EmulatedChip;
use super::clock::{VirtualClock, duration_ns, spi_byte_ns};
use crate::part::Part;

/// What MISO reads with no target connected (the programmers' inputs float high or are pulled up).
pub const MISO_FLOATING: u8 = 0xFF;

/// The target side of an emulated programmer.
#[derive(Debug, Default)]
pub struct Socket {
    clock: VirtualClock,
    chip: Option<EmulatedChip>,
    reset_asserted: bool,
    spi_bytes_without_target: u64,
    /// Pull the chip out once it has written this many flash pages in total (its own count).
    remove_at_flash_pages: Option<u64>,
}

/// A socket shared between an emulated programmer (on its own thread) and the test or app that
/// inspects the chip.
pub type SharedSocket = Arc<Mutex<Socket>>;

impl Socket {
    /// A socket with `chip` plugged in.
    pub fn with_chip(chip: EmulatedChip) -> Self {
        let mut socket = Socket::default();
        socket.insert(chip);
        socket
    }

    /// A socket holding a factory-fresh chip of `part`.
    pub fn factory_fresh(part: &Part) -> Self {
        Self::with_chip(EmulatedChip::factory_fresh(part))
    }

    /// Wraps the socket for sharing.
    pub fn shared(self) -> SharedSocket {
        Arc::new(Mutex::new(self))
    }

    /// Plugs a chip in (replacing any), bringing its clock up to the socket's time and applying
    /// the current RESET level.
    pub fn insert(&mut self, mut chip: EmulatedChip) {
        let lag = self.clock.now_ns().saturating_sub(chip.now_ns());
        chip.advance(Duration::from_nanos(lag));
        self.clock.advance_to(chip.now_ns());
        chip.set_reset(self.reset_asserted);
        self.remove_at_flash_pages = None;
        self.chip = Some(chip);
    }

    /// Unplugs the chip, if any.
    pub fn remove(&mut self) -> Option<EmulatedChip> {
        self.remove_at_flash_pages = None;
        self.chip.take()
    }

    /// Arms a mid-write removal: the chip now plugged in is pulled out as soon as it has
    /// written `pages` more flash pages (the next SPI byte then finds no target). A production
    /// line test of a board yanked out of the fixture halfway through.
    pub fn remove_after_flash_pages(&mut self, pages: u64) {
        if let Some(chip) = &self.chip {
            self.remove_at_flash_pages = Some(chip.stats().flash_pages_written + pages);
        }
    }

    fn removal_due(&self) -> bool {
        match (self.remove_at_flash_pages, &self.chip) {
            (Some(at), Some(chip)) => chip.stats().flash_pages_written >= at,
            _ => false,
        }
    }

    /// The chip, if one is plugged in.
    pub fn chip(&self) -> Option<&EmulatedChip> {
        self.chip.as_ref()
    }

    /// The chip, mutably.
    pub fn chip_mut(&mut self) -> Option<&mut EmulatedChip> {
        self.chip.as_mut()
    }

    /// The current virtual time.
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Idle time passes (a firmware delay, a USB round trip).
    pub fn advance(&mut self, duration: Duration) {
        self.advance_ns(duration_ns(duration));
    }

    /// Idle time passes, in nanoseconds.
    pub fn advance_ns(&mut self, ns: u64) {
        self.clock.advance_ns(ns);
        self.sync_chip();
    }

    /// Moves time forward to `deadline_ns` if it is later than now.
    pub fn advance_to(&mut self, deadline_ns: u64) {
        self.clock.advance_to(deadline_ns);
        self.sync_chip();
    }

    /// Drives the target's RESET line (true = asserted, low).
    pub fn set_reset(&mut self, asserted: bool) {
        self.reset_asserted = asserted;
        if let Some(chip) = &mut self.chip {
            chip.set_reset(asserted);
        }
    }

    /// Whether RESET is asserted.
    pub fn reset_asserted(&self) -> bool {
        self.reset_asserted
    }

    /// Sets the SCK line level while idle (programmers that leave SCK high before RESET).
    pub fn set_sck_level(&mut self, high: bool) {
        if let Some(chip) = &mut self.chip {
            chip.set_sck_level(high);
        }
    }

    /// Clocks one byte at `sck_hz`; returns what MISO shifted in.
    pub fn spi_byte(&mut self, mosi: u8, sck_hz: u32) -> u8 {
        let miso = match &mut self.chip {
            Some(chip) => chip.spi_byte(mosi, sck_hz),
            None => {
                self.spi_bytes_without_target += 1;
                self.clock.advance_ns(spi_byte_ns(sck_hz));
                MISO_FLOATING
            }
        };
        if let Some(chip) = &self.chip {
            self.clock.advance_to(chip.now_ns());
        }
        if self.removal_due() {
            self.remove();
        }
        miso
    }

    /// Clocks a 4-byte instruction.
    pub fn transfer(&mut self, cmd: [u8; 4], sck_hz: u32) -> [u8; 4] {
        cmd.map(|b| self.spi_byte(b, sck_hz))
    }

    fn sync_chip(&mut self) {
        if let Some(chip) = &mut self.chip {
            let lag = self.clock.now_ns().saturating_sub(chip.now_ns());
            if lag > 0 {
                chip.advance(Duration::from_nanos(lag));
            }
        }
    }
}

/// Locks a shared socket, recovering from a poisoned lock (a panicking test thread must not
/// take every later assertion down with it).
pub fn lock(socket: &SharedSocket) -> MutexGuard<'_, Socket> {
    socket
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
