//! Shared helpers for the Bus Pirate tests: parts, chips as keyboards carry them, an emulated
//! Bus Pirate with our driver on it, and checks on the chip's own state.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use isp_toolbox::emulate::buspirate::{BusPirateConfig, StatusHandle};
use isp_toolbox::emulate::serial::{EmulatorHandle, ServeOptions};
use isp_toolbox::emulate::socket::{SharedSocket, Socket, lock};
use isp_toolbox::emulate::{ChipConfig, ChipStats, EmulatedChip, FuseValues};
use isp_toolbox::part::{FuseKind, Part, PartDb};
use isp_toolbox::programmer::buspirate::{BusPirate, BusPirateOptions, emulated_with};
use isp_toolbox::transport::MemoryLink;

/// Every part in the database.
pub fn parts() -> &'static [Part] {
    PartDb::builtin().unwrap().all()
}

/// A part by name.
pub fn part(name: &str) -> &'static Part {
    PartDb::builtin().unwrap().find(name).unwrap()
}

/// A chip as a keyboard maker finds it: running from the board's 16 MHz crystal (lfuse 0xFF),
/// default high and extended fuses, blank memories.
pub fn running_chip(part: &Part) -> EmulatedChip {
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

/// A socket holding a running chip of `part`.
pub fn socket_with(part: &Part) -> SharedSocket {
    Socket::with_chip(running_chip(part)).shared()
}

/// An emulated Bus Pirate (default firmware, RESET on CS) with our driver connected.
pub fn connect(
    socket: &SharedSocket,
    options: BusPirateOptions,
) -> (BusPirate<MemoryLink>, EmulatorHandle, StatusHandle) {
    emulated_with(
        socket.clone(),
        BusPirateConfig::default(),
        ServeOptions::default(),
        options,
    )
    .unwrap()
}

/// The chip's counters.
pub fn chip_stats(socket: &SharedSocket) -> ChipStats {
    lock(socket).chip().unwrap().stats()
}

/// The driver respected the chip's timing: no instruction while it was busy, no SCK above
/// what its clock allows.
pub fn assert_timing_respected(socket: &SharedSocket, context: &str) {
    let stats = chip_stats(socket);
    assert_eq!(stats.busy_violations, 0, "{context}: {stats:?}");
    assert_eq!(stats.sck_violations, 0, "{context}: {stats:?}");
}

/// A repeatable, position-dependent pattern with no long 0xFF runs.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed).wrapping_add(i >> 8) % 251) as u8)
        .collect()
}

/// The chip's flash.
pub fn chip_flash(socket: &SharedSocket) -> Vec<u8> {
    lock(socket).chip().unwrap().flash().to_vec()
}

/// The chip's EEPROM.
pub fn chip_eeprom(socket: &SharedSocket) -> Vec<u8> {
    lock(socket).chip().unwrap().eeprom().to_vec()
}

/// Virtual time now, in seconds.
pub fn now_s(socket: &SharedSocket) -> f64 {
    lock(socket).now_ns() as f64 / 1e9
}

/// Runs `f` and returns its result with the wall time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}
