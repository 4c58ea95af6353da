//! avrdude (Debian 7.1) on the same emulators: the serial programmers on a PTY, the USB ones
//! through the libusb-0.1 shim (`usbshim/`, LD_PRELOAD). The emulator charges the virtual clock
//! exactly as it does for our engine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use isp_toolbox::emulate::arduinoisp::{ArduinoIsp, HostBoard};
use isp_toolbox::emulate::buspirate::BusPirate as EmulatedBusPirate;
use isp_toolbox::emulate::demo::demo_chip;
use isp_toolbox::emulate::serial::{SerialFirmware, ServeOptions, spawn_on_pty};
use isp_toolbox::emulate::socket::Socket;
use isp_toolbox::emulate::stats::EmulatorStats;
use isp_toolbox::error::{Error, Result};
use isp_toolbox::hex::write_image_file;
use isp_toolbox::transport::Pty;

use super::engine::{Measurement, bus_pirate_config};
use super::jobs::BenchJob;

/// Every variable the shim reads, cleared so the caller's environment cannot leak in.
const SHIM_VARIABLES: [&str; 7] = [
    "ISP_TOOLBOX_SHIM_DEVICE",
    "ISP_TOOLBOX_SHIM_PART",
    "ISP_TOOLBOX_SHIM_STATE",
    "ISP_TOOLBOX_SHIM_STATS",
    "ISP_TOOLBOX_SHIM_FAULT",
    "ISP_TOOLBOX_SHIM_REALTIME",
    "ISP_TOOLBOX_SHIM_DEBUG",
];

/// Whether avrdude can be started.
pub fn available() -> bool {
    Command::new("avrdude").arg("-?").output().is_ok()
}

/// Where avrdude runs for one job: a scratch directory under `work`.
pub struct AvrdudeRun<'a> {
    /// The job.
    pub job: BenchJob,
    /// avrdude's programmer id.
    pub programmer: &'a str,
    /// A scratch directory (image file, PTY link, shim state).
    pub dir: PathBuf,
    /// The libusb shim, for the USB programmers.
    pub shim: Option<&'a Path>,
    /// Make the emulator take the modeled time in wall time too.
    pub realtime: bool,
}

impl AvrdudeRun<'_> {
    /// Runs avrdude with its default options for the job and returns the emulator's
    /// measurement.
    pub fn run(&self) -> Result<Measurement> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::file("cannot create", self.dir.clone(), e))?;
        let hex = self.dir.join("image.hex");
        if let Some(image) = self.job.image()? {
            write_image_file(&hex, &image)?;
        }
        let part = self.job.part()?;
        let mut command = Command::new("avrdude");
        command
            .args(["-c", self.programmer, "-p", &part.avrdude_id])
            .args(self.job.avrdude_updates(&hex.to_string_lossy()));
        match self.programmer {
            "avrisp" => {
                // The guide's command: the sketch's 19200 baud (a Pro Micro ignores it).
                command.args(["-b", "19200"]);
                let firmware = ArduinoIsp::new(HostBoard::ProMicro);
                self.on_pty(command, Box::new(firmware))
            }
            "buspirate" => {
                let firmware = EmulatedBusPirate::new(bus_pirate_config(115_200));
                self.on_pty(command, Box::new(firmware))
            }
            "usbtiny" | "usbasp" => self.on_shim(command),
            other => Err(Error::invalid(format!(
                "the bench cannot run avrdude -c {other}"
            ))),
        }
    }

    fn on_pty(
        &self,
        mut command: Command,
        firmware: Box<dyn SerialFirmware>,
    ) -> Result<Measurement> {
        let part = self.job.part()?;
        let link = self.dir.join("tty");
        let _ = std::fs::remove_file(&link);
        let mut pty = Pty::open()?;
        pty.symlink_at(&link)?;
        let socket = Socket::with_chip(demo_chip(part)).shared();
        let serve = ServeOptions {
            realtime: self.realtime,
            ..ServeOptions::default()
        };
        let handle = spawn_on_pty(firmware, pty, socket, serve);
        command.arg("-P").arg(&link);
        let wall_s = run_checked(command, self.programmer)?;
        let stats = handle.stop();
        Ok(Measurement::from_stats(&stats, wall_s))
    }

    fn on_shim(&self, mut command: Command) -> Result<Measurement> {
        let shim = self.shim.ok_or_else(|| {
            Error::invalid(
                "the libusb shim is not built: run `cargo build --release -p isp-toolbox-usbshim`",
            )
        })?;
        let state = self.dir.join("board");
        let _ = std::fs::remove_dir_all(&state);
        let stats_path = self.dir.join("stats.json");
        let _ = std::fs::remove_file(&stats_path);
        for name in SHIM_VARIABLES {
            command.env_remove(name);
        }
        command
            .env("LD_PRELOAD", shim)
            .env("ISP_TOOLBOX_SHIM_DEVICE", self.programmer)
            .env("ISP_TOOLBOX_SHIM_PART", &self.job.part()?.avrdude_id)
            .env("ISP_TOOLBOX_SHIM_STATE", &state)
            .env("ISP_TOOLBOX_SHIM_STATS", &stats_path);
        if self.realtime {
            command.env("ISP_TOOLBOX_SHIM_REALTIME", "1");
        }
        let wall_s = run_checked(command, self.programmer)?;
        let text = std::fs::read_to_string(&stats_path)
            .map_err(|e| Error::file("the shim wrote no stats to", stats_path.clone(), e))?;
        let stats: EmulatorStats = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {e}", stats_path.display())))?;
        Ok(Measurement::from_stats(&stats, wall_s))
    }
}

/// Runs avrdude, failing with its output when it fails; returns the wall seconds.
fn run_checked(mut command: Command, programmer: &str) -> Result<f64> {
    let started = Instant::now();
    let output = command
        .output()
        .map_err(|e| Error::invalid(format!("cannot run avrdude: {e}")))?;
    let wall_s = started.elapsed().as_secs_f64();
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().rev().take(6).collect();
        return Err(Error::invalid(format!(
            "avrdude -c {programmer} failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    Ok(wall_s)
}

/// Finds the libusb shim in the target directory, building it (release) if it is missing.
pub fn shim_library(target_dir: &Path) -> Result<PathBuf> {
    let candidates = ["release", "debug"].map(|p| target_dir.join(p).join(SHIM_FILE));
    if let Some(found) = candidates.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "isp-toolbox-usbshim"])
        .status()
        .map_err(|e| Error::invalid(format!("cannot run cargo to build the shim: {e}")))?;
    let built = target_dir.join("release").join(SHIM_FILE);
    if status.success() && built.exists() {
        Ok(built)
    } else {
        Err(Error::invalid(format!(
            "building the libusb shim failed: run `cargo build --release -p isp-toolbox-usbshim` \
             (expected {})",
            built.display()
        )))
    }
}

const SHIM_FILE: &str = "libisp_toolbox_usbshim.so";
