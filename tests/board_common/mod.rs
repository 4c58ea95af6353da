//! Helpers shared by the tests that drive an emulated programmer against an emulated board:
//! parts, boards, counters, test data.
#![allow(dead_code)]

use isp_toolbox::emulate::socket::{SharedSocket, Socket, lock};
use isp_toolbox::emulate::stats::EmulatorStats;
use isp_toolbox::emulate::usb::{SharedUsbDevice, lock_device};
use isp_toolbox::emulate::{ChipConfig, ChipStats, EmulatedChip, FuseValues};
use isp_toolbox::part::{FuseKind, Part, PartDb};

/// Every part in the database.
pub fn parts() -> &'static [Part] {
    PartDb::builtin().unwrap().all()
}

/// A part by name.
pub fn part(name: &str) -> &'static Part {
    PartDb::builtin().unwrap().find(name).unwrap()
}

/// A board as keyboard makers find it: the chip runs from its 16 MHz crystal, no CKDIV8.
pub fn running_board(part: &Part) -> SharedSocket {
    board_with_lfuse(part, 0xFF)
}

/// A board whose chip has this low fuse (and default high/extended fuses), 16 MHz crystal.
pub fn board_with_lfuse(part: &Part, lfuse: u8) -> SharedSocket {
    let fuses = FuseValues {
        lfuse,
        hfuse: part.fuse(FuseKind::High).unwrap().default,
        efuse: part.fuse(FuseKind::Extended).map(|e| e.default),
    };
    let chip = EmulatedChip::new(
        part,
        ChipConfig {
            fuses: Some(fuses),
            ..Default::default()
        },
    )
    .unwrap();
    Socket::with_chip(chip).shared()
}

/// The chip's counters.
pub fn chip_stats(socket: &SharedSocket) -> ChipStats {
    lock(socket).chip().unwrap().stats()
}

/// The programmer's counters (modeled time, transfers).
pub fn device_stats(device: &SharedUsbDevice) -> EmulatorStats {
    lock_device(device).stats()
}

/// The virtual time now, in seconds.
pub fn now_s(socket: &SharedSocket) -> f64 {
    lock(socket).now_ns() as f64 / 1e9
}

/// Deterministic test data that is never all 0xFF.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed.wrapping_mul(7)) % 251) as u8)
        .collect()
}

/// Asserts that the driver respected the chip's timing.
pub fn assert_clean_timing(socket: &SharedSocket, what: &str) {
    let stats = chip_stats(socket);
    assert_eq!(
        stats.busy_violations, 0,
        "{what}: busy violations: {stats:?}"
    );
    assert_eq!(stats.sck_violations, 0, "{what}: SCK violations: {stats:?}");
}
