//! Shared helpers for the avrisp tests: an emulated ArduinoISP with a chip in its socket, the
//! driver connected to it, and deterministic test data.
#![allow(dead_code)]

use std::time::Duration;

use isp_toolbox::emulate::arduinoisp::{ArduinoIsp, HostBoard, SketchMonitor};
use isp_toolbox::emulate::chip::{ChipConfig, EmulatedChip, FuseValues};
use isp_toolbox::emulate::serial::{EmulatorHandle, ServeOptions};
use isp_toolbox::emulate::socket::{SharedSocket, Socket, lock};
use isp_toolbox::part::{FuseKind, Part, PartDb};
use isp_toolbox::programmer::stk500v1::{Stk500v1, Stk500v1Options, emulated_with};
use isp_toolbox::transport::MemoryLink;

/// A part by any of its names.
pub fn part(name: &str) -> &'static Part {
    PartDb::builtin().unwrap().find(name).unwrap()
}

/// Every part in the database.
pub fn all_parts() -> &'static [Part] {
    PartDb::builtin().unwrap().all()
}

/// A chip as found on a keyboard: running from a 16 MHz crystal (no CKDIV8).
pub fn crystal_chip(part: &Part) -> EmulatedChip {
    let fuses = FuseValues {
        lfuse: 0xFF,
        hfuse: part.fuse(FuseKind::High).unwrap().default,
        efuse: part.fuse(FuseKind::Extended).map(|e| e.default),
    };
    EmulatedChip::new(
        part,
        ChipConfig {
            fuses: Some(fuses),
            ..Default::default()
        },
    )
    .unwrap()
}

/// An emulated ArduinoISP and the driver connected to it.
pub struct Rig {
    pub driver: Stk500v1<MemoryLink>,
    pub socket: SharedSocket,
    pub monitor: SketchMonitor,
    pub handle: EmulatorHandle,
}

impl Rig {
    /// `board` with `chip` in its socket (or an empty socket), default driver options.
    pub fn new(board: HostBoard, chip: Option<EmulatedChip>) -> Rig {
        Rig::with(
            ArduinoIsp::new(board),
            chip,
            ServeOptions::default(),
            Stk500v1Options::default(),
        )
    }

    /// Full control over firmware, emulator and driver options.
    pub fn with(
        firmware: ArduinoIsp,
        chip: Option<EmulatedChip>,
        serve: ServeOptions,
        options: Stk500v1Options,
    ) -> Rig {
        let socket = match chip {
            Some(chip) => Socket::with_chip(chip),
            None => Socket::default(),
        }
        .shared();
        let monitor = firmware.monitor();
        let (driver, handle) = emulated_with(firmware, socket.clone(), serve, options).unwrap();
        Rig {
            driver,
            socket,
            monitor,
            handle,
        }
    }

    /// Runs `f` on the chip in the socket.
    pub fn chip<T>(&self, f: impl FnOnce(&EmulatedChip) -> T) -> T {
        on_chip(&self.socket, f)
    }

    /// Asserts the driver never broke the chip's timing rules.
    pub fn assert_timing_respected(&self) {
        let stats = self.chip(|c| c.stats());
        assert_eq!(stats.busy_violations, 0, "busy violations: {stats:?}");
        assert_eq!(stats.sck_violations, 0, "SCK violations: {stats:?}");
    }
}

/// Runs `f` on the chip in `socket`.
pub fn on_chip<T>(socket: &SharedSocket, f: impl FnOnce(&EmulatedChip) -> T) -> T {
    f(lock(socket).chip().expect("a chip in the socket"))
}

/// `len` deterministic pseudo-random bytes (xorshift), never a whole page of 0xFF.
pub fn test_bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

/// Generous wall-clock bound for one driver operation under a fault.
pub const OPERATION_BOUND: Duration = Duration::from_secs(3);
