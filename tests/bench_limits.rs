//! The benchmark's limit formulas against hand-computed values, its job definitions, and the
//! jobs run by our engine on the in-process emulators (all modeled time: deterministic).

#[allow(dead_code)]
#[path = "../src/bin/isp-bench/engine.rs"]
mod engine;
#[allow(dead_code)]
#[path = "../src/bin/isp-bench/jobs.rs"]
mod jobs;
#[allow(dead_code)]
#[path = "../src/bin/isp-bench/limits.rs"]
mod limits;

use jobs::BenchJob;
use limits::{ARDUINOISP, BUSPIRATE, JobShape, MEGA_U4_TIMING, USBTINY, limit_seconds};

fn assert_close(what: &str, got: f64, expected: f64) {
    assert!(
        (got - expected).abs() < 1e-9 * expected.max(1.0),
        "{what}: got {got}, expected {expected}"
    );
}

/// 4 KB at the top of an ATmega32U4: 32 pages of 128 bytes, read back, erase, 4 setup
/// instructions.
fn boot4k_shape() -> JobShape {
    JobShape {
        pages_written: 32,
        page_size: 128,
        bytes_read: 4096,
        bytes_read_high: 0,
        single_instructions: 4,
        erases: 1,
        fuse_writes: 0,
        instruction_exchanges: 1,
    }
}

#[test]
fn arduinoisp_limit_adds_link_and_firmware() {
    // ISP bytes 4 × (4096 + 32 + 4096 + 4 + 1) at 125 kHz; 32 × 30 ms flicker + 9 ms erase;
    // link bytes 4096 + 32 × 6 + 4096 + 5 × 8 = 8424, 10.9 µs of firmware each (the USB CDC
    // transfer passes under the sketch's work);
    // turnarounds of 3 ms: 32 pages, 4 reads of 1 KB, one exchange for Programming Enable,
    // the signature and the erase (STK500v1 frames can go together), and 2 for the session
    // (GET_SYNC, LEAVE_PROGMODE); 70 ms start_pmode.
    let spi = 4.0 * 8229.0 * 8.0 / 125_000.0;
    let firmware = spi + 32.0 * 0.030 + 0.009 + 8424.0 * 10.9e-6;
    let expected = 0.070 + 39.0 * 0.003 + firmware;
    assert_close(
        "ArduinoISP, 4 KB",
        limit_seconds(&ARDUINOISP, &MEGA_U4_TIMING, &boot4k_shape()),
        expected,
    );
    assert_eq!(limits::min_round_trips(&ARDUINOISP, &boot4k_shape()), 39);
}

#[test]
fn usbtiny_limit_reads_above_64k_one_byte_per_transfer() {
    let shape = JobShape {
        pages_written: 512,
        page_size: 256,
        bytes_read: 131_072,
        bytes_read_high: 65_536,
        single_instructions: 4,
        erases: 1,
        fuse_writes: 0,
        instruction_exchanges: 1,
    };
    // Round trips: 2 per page, 65536 / 255 → 258 bulk reads, 65536 single reads, 5 others,
    // POWERUP and POWERDOWN.
    assert_eq!(
        limits::min_round_trips(&USBTINY, &shape),
        1024 + 258 + 65_536 + 5 + 2
    );
    // Link: 131072 written + 65536 bulk read + (5 + 65536) instructions × 8 bytes, 0.1 ms a
    // byte; SPI at 12 MHz / 35 stretched 2.52×; 512 × 4.5 ms + 9 ms; 20 ms start.
    let link_bytes = 131_072.0 + 65_536.0 + 65_541.0 * 8.0;
    let spi = 4.0 * 262_661.0 * 8.0 * 35.0 / 12e6 * 2.52;
    let expected = 0.020 + 66_825.0 * 0.002 + link_bytes * 0.1e-3 + spi + 512.0 * 0.0045 + 0.009;
    assert_close(
        "USBtiny, 128 KB",
        limit_seconds(&USBTINY, &MEGA_U4_TIMING, &shape),
        expected,
    );
    // The same job without the 64 KiB reach on a programmer that has none costs less.
    assert!(limit_seconds(&ARDUINOISP, &MEGA_U4_TIMING, &shape) < expected);
}

#[test]
fn buspirate_limit_overlaps_uart_with_page_programming() {
    // 4 bytes a flash byte to the Bus Pirate plus 9 per page, the data back, 5 instructions:
    // 4 × 4096 + 288 + 4096 + 40 = 20808 UART bytes at 86.8 µs.
    let uart = 20_808.0 * 10.0 / 115_200.0;
    let isp_byte = 8.0 / (16e6 / 6.0);
    // Pages are clocked after their bytes arrive: 32 × 129 × 4 ISP bytes add to the time;
    // the 32 page writes (4.5 ms) and the rest of the SPI pass under the UART transfer.
    let write_spi = 32.0 * 129.0 * 4.0 * isp_byte;
    let hidden = 32.0 * 0.0045 + (4.0 * 8229.0 - 32.0 * 129.0 * 4.0) * isp_byte;
    assert!(uart > hidden);
    // 32 pages + one 4 KiB read + one burst of instructions (Programming Enable, signature,
    // erase) + 4 to open and close the session: 38 turnarounds of 16 ms; 20 ms start; erase.
    let expected = 0.020 + 38.0 * 0.016 + write_spi + 0.009 + uart;
    assert_close(
        "Bus Pirate, 4 KB",
        limit_seconds(&BUSPIRATE, &MEGA_U4_TIMING, &boot4k_shape()),
        expected,
    );
}

#[test]
fn job_definitions_match_their_descriptions() {
    let boot = BenchJob::Boot4k.image().unwrap().unwrap();
    assert_eq!(boot.start(), 0x7000);
    assert_eq!(boot.data_len(), 4096);
    assert_eq!(BenchJob::Boot4k.shape().unwrap(), boot4k_shape());
    let full = BenchJob::Full128k.shape().unwrap();
    assert_eq!(
        (full.pages_written, full.page_size, full.bytes_read_high),
        (512, 256, 65_536)
    );
    assert_eq!(BenchJob::Full32k.shape().unwrap().pages_written, 256);
    assert!(BenchJob::Fuses.image().unwrap().is_none());
    // lfuse is 0xFF on the bench's board already: hfuse and efuse are written.
    assert_eq!(BenchJob::Fuses.shape().unwrap().fuse_writes, 2);
    assert_eq!(
        BenchJob::Fuses.avrdude_updates("unused"),
        [
            "-U",
            "lfuse:w:0xFF:m",
            "-U",
            "hfuse:w:0xD9:m",
            "-U",
            "efuse:w:0xFB:m"
        ]
    );
    assert_eq!(
        BenchJob::Full32k.avrdude_updates("a.hex"),
        ["-U", "flash:w:a.hex:i"]
    );
    for job in BenchJob::ALL {
        assert_eq!(BenchJob::from_id(job.id()), Some(job));
    }
}

/// The limit is a floor: no emulated run of our engine may beat it.
#[test]
fn engine_runs_the_small_jobs_on_every_emulator_above_the_limit() {
    for job in [BenchJob::Fuses, BenchJob::Boot4k] {
        let shape = job.shape().unwrap();
        for programmer in engine::ENGINE_PROGRAMMERS {
            let measured = engine::run(job, programmer, false).unwrap();
            let model = limits::model(programmer).unwrap();
            let limit = limit_seconds(&model, &MEGA_U4_TIMING, &shape);
            assert!(
                measured.modeled_s >= limit,
                "{} on {programmer}: {measured:?} beats the limit {limit}",
                job.id()
            );
            let fewest = limits::min_round_trips(&model, &shape);
            assert!(
                measured.round_trips >= fewest,
                "{} on {programmer}: {} round trips, fewer than the limit's {fewest}",
                job.id(),
                measured.round_trips
            );
        }
    }
}

#[test]
fn engine_refuses_a_programmer_without_emulator() {
    let err = engine::run(BenchJob::Fuses, "stk500v2", false).unwrap_err();
    assert!(err.to_string().contains("stk500v2"), "{err}");
}
