//! Our engine on the in-process emulators: the job runner drives the real driver, the emulated
//! firmware charges the virtual clock, and its stats come back with the measurement.

use std::time::Instant;

use isp_toolbox::emulate::arduinoisp::{ArduinoIsp, HostBoard};
use isp_toolbox::emulate::buspirate::BusPirateConfig;
use isp_toolbox::emulate::clock::duration_ns;
use isp_toolbox::emulate::demo::demo_chip;
use isp_toolbox::emulate::serial::{SerialTiming, ServeOptions};
use isp_toolbox::emulate::socket::Socket;
use isp_toolbox::emulate::stats::EmulatorStats;
use isp_toolbox::emulate::usb::lock_device;
use isp_toolbox::error::{Error, Result};
use isp_toolbox::job::runner::{JobRequest, run_on};
use isp_toolbox::job::{CancelToken, JobEvent};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::open::{EMULATED_PORT, ProgrammerSpec};
use isp_toolbox::programmer::{buspirate, stk500v1, usbasp, usbtiny};

use super::jobs::BenchJob;

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// The emulator's modeled (virtual) seconds.
    pub modeled_s: f64,
    /// Wall-clock seconds of the whole run, process start included for avrdude.
    pub wall_s: f64,
    /// Round trips (serial turnarounds or USB control transfers).
    pub round_trips: u64,
    /// Bytes both ways on the link.
    pub bytes: u64,
}

impl Measurement {
    /// From an emulator's stats and the wall time measured around the run.
    pub fn from_stats(stats: &EmulatorStats, wall_s: f64) -> Measurement {
        Measurement {
            modeled_s: stats.modeled_seconds,
            wall_s,
            round_trips: stats.round_trips,
            bytes: stats.bytes_to_programmer + stats.bytes_from_programmer,
        }
    }
}

/// The programmers our engine can be benchmarked on in-process.
pub const ENGINE_PROGRAMMERS: [&str; 4] = ["avrisp", "usbtiny", "buspirate", "usbasp"];

/// Runs `job` with our engine on an emulated `programmer` and a fresh demo board (a 16 MHz
/// chip). `realtime` makes the emulator take the modeled time in wall time too.
pub fn run(job: BenchJob, programmer: &str, realtime: bool) -> Result<Measurement> {
    let part = job.part()?;
    let socket = Socket::with_chip(demo_chip(part)).shared();
    let request = JobRequest {
        programmer: ProgrammerSpec::new(programmer, EMULATED_PORT),
        part: job.part_id().to_string(),
        kind: job.kind()?,
    };
    let serve = ServeOptions {
        realtime,
        ..ServeOptions::default()
    };
    let started = Instant::now();
    let stats = match programmer {
        "avrisp" => {
            let options = stk500v1::Stk500v1Options::for_alias("avrisp").unwrap_or_default();
            let firmware = ArduinoIsp::new(HostBoard::ProMicro);
            let (mut driver, handle) = stk500v1::emulated_with(firmware, socket, serve, options)?;
            run_job(&request, &mut driver)?;
            drop(driver);
            handle.stop()
        }
        "buspirate" => {
            let options = buspirate::BusPirateOptions::default();
            let (mut driver, handle, _) =
                buspirate::emulated_with(socket, bus_pirate_config(options.baud), serve, options)?;
            run_job(&request, &mut driver)?;
            drop(driver);
            handle.stop()
        }
        "usbtiny" => {
            let options = usbtiny::EmulatedOptions {
                realtime,
                ..Default::default()
            };
            let (mut driver, device) = usbtiny::emulated(part, socket, options)?;
            run_job(&request, &mut driver)?;
            lock_device(&device).stats()
        }
        "usbasp" => {
            let options = usbasp::EmulatedOptions {
                realtime,
                ..Default::default()
            };
            let (mut driver, device) = usbasp::emulated(part, socket, options)?;
            run_job(&request, &mut driver)?;
            lock_device(&device).stats()
        }
        other => {
            return Err(Error::invalid(format!(
                "the bench has no in-process emulator for '{other}' (known: {})",
                ENGINE_PROGRAMMERS.join(", ")
            )));
        }
    };
    Ok(Measurement::from_stats(
        &stats,
        started.elapsed().as_secs_f64(),
    ))
}

/// The emulated Bus Pirate v3 as `buspirate::emulated` builds it: its UART at `baud` behind
/// an FTDI bridge with its latency timer.
pub fn bus_pirate_config(baud: u32) -> BusPirateConfig {
    BusPirateConfig {
        link: SerialTiming::Uart {
            baud,
            turnaround_ns: duration_ns(isp_toolbox::emulate::buspirate::timing::FTDI_LATENCY),
        },
        ..BusPirateConfig::default()
    }
}

fn run_job(request: &JobRequest, programmer: &mut dyn Programmer) -> Result<()> {
    let mut quiet = |_event: JobEvent| {};
    run_on(request, programmer, &mut quiet, CancelToken::new()).map(|_| ())
}
