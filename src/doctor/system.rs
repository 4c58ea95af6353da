//! The machine as a whole: the environment (host, WSL, container), the user, and
//! ModemManager.

use std::path::Path;

use serde::Serialize;

use super::{Check, Facts, Finding, Paths, Platform, Status, udev};

/// Where this program runs, as far as it changes what USB can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Environment {
    /// A normal machine (or nothing else could be told).
    Host,
    /// Windows Subsystem for Linux 1: no USB at all.
    Wsl1,
    /// Windows Subsystem for Linux 2: USB only for devices attached with usbipd-win.
    Wsl2,
    /// A container (Docker, Podman, LXC, systemd-nspawn, Kubernetes): only the devices
    /// passed in.
    Container(String),
}

impl Environment {
    /// Tells WSL by the kernel's release string and a container by its marker files.
    pub fn detect(paths: &Paths) -> Environment {
        let kernel = read(&paths.proc.join("sys/kernel/osrelease"))
            .or_else(|| read(&paths.proc.join("version")))
            .unwrap_or_default()
            .to_ascii_lowercase();
        if kernel.contains("microsoft") {
            // WSL 2 kernels are "...-microsoft-standard-WSL2"; WSL 1 reports "...-Microsoft".
            return if kernel.contains("wsl2") || kernel.contains("microsoft-standard") {
                Environment::Wsl2
            } else {
                Environment::Wsl1
            };
        }
        if paths.root.join(".dockerenv").exists() {
            return Environment::Container("Docker".into());
        }
        if paths.root.join("run/.containerenv").exists() {
            return Environment::Container("Podman".into());
        }
        let cgroup = read(&paths.proc.join("1/cgroup")).unwrap_or_default();
        for (marker, name) in [
            ("kubepods", "Kubernetes"),
            ("docker", "Docker"),
            ("lxc", "LXC"),
        ] {
            if cgroup.contains(marker) {
                return Environment::Container(name.into());
            }
        }
        // systemd-nspawn, LXC and others put `container=NAME` in PID 1's environment.
        let environ = read(&paths.proc.join("1/environ")).unwrap_or_default();
        if let Some(name) = environ
            .split('\0')
            .find_map(|var| var.strip_prefix("container="))
            .filter(|name| !name.is_empty())
        {
            return Environment::Container(name.to_string());
        }
        Environment::Host
    }

    /// `in WSL 2`, `in a Docker container`, or nothing.
    fn describe(&self) -> String {
        match self {
            Environment::Host => String::new(),
            Environment::Wsl1 => " in WSL 1".into(),
            Environment::Wsl2 => " in WSL 2".into(),
            Environment::Container(name) => format!(" in a container ({name})"),
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The first finding: platform, environment, user and groups, for anyone reading a pasted
/// report.
pub(super) fn summary(facts: &Facts<'_>) -> Finding {
    let platform = match facts.inputs.platform {
        Platform::Linux => "Linux",
        Platform::Windows => "Windows",
        Platform::Macos => "macOS",
        Platform::OtherUnix => "Unix",
    };
    let environment = if facts.inputs.platform == Platform::Linux {
        facts.environment.describe()
    } else {
        String::new()
    };
    let title = format!(
        "{platform}{environment}, ISP Toolbox {}",
        env!("CARGO_PKG_VERSION")
    );
    let Some(who) = &facts.inputs.identity else {
        return Finding::new(Check::System, Status::Ok, title, "");
    };
    let name = who.name.clone().unwrap_or_else(|| "?".into());
    let groups: Vec<String> = who
        .groups
        .iter()
        .map(|&g| facts.groups.name_of(g))
        .collect();
    let mut detail = format!(
        "user {name} (uid {}), groups: {}",
        who.uid,
        if groups.is_empty() {
            "none".to_string()
        } else {
            groups.join(", ")
        }
    );
    if who.is_root() {
        detail.push_str(
            "\nRunning as root: permissions do not stop this run, but they will stop your normal user. Run the doctor again as that user to check theirs.",
        );
    }
    Finding::new(Check::System, Status::Ok, title, detail)
}

/// ModemManager probes new serial ports with AT commands and can hold a Pro Micro's port for
/// several seconds after it appears; our udev rules tell it to keep away.
pub(super) fn modem_manager(facts: &Facts<'_>) -> Finding {
    let paths = &facts.inputs.paths;
    let unit = paths
        .systemd_unit_dirs
        .iter()
        .map(|dir| dir.join("ModemManager.service"))
        .find(|unit| unit.exists());
    let program = paths.modem_manager_bins.iter().find(|bin| bin.exists());
    let running = running_pid(&paths.proc, "ModemManager");
    let kept_away = udev::keeps_modem_manager_away(&facts.rules, &facts.known.ids());

    // A process of that name counts even when its unit or program lives somewhere else.
    let Some(seen_at) = unit
        .or_else(|| program.cloned())
        .map(|path| path.display().to_string())
        .or_else(|| running.map(|pid| format!("process {pid}")))
    else {
        return Finding::new(
            Check::ModemManager,
            Status::Ok,
            "ModemManager not installed",
            "Nothing will probe your serial programmer's port when it is plugged in.",
        );
    };
    let state = match running {
        Some(pid) => format!("running (pid {pid})"),
        None => "installed but not running".into(),
    };
    if kept_away {
        return Finding::new(
            Check::ModemManager,
            Status::Ok,
            format!("ModemManager {state}, kept away by the udev rules"),
            "Our rules set ID_MM_DEVICE_IGNORE on every programmer and bootloader, so ModemManager leaves their ports alone.",
        );
    }
    let detail = format!(
        "ModemManager ({seen_at}) probes every new /dev/ttyACM* port that looks like a modem, sending AT commands for several seconds after it appears. A Pro Micro running ArduinoISP and a Caterina bootloader look like one: the port is busy, or the programmer gets garbage, exactly when ISP Toolbox needs it. Our udev rules tell it to keep away (ID_MM_DEVICE_IGNORE), but they are not installed or not current."
    );
    let mut advice = udev::install_advice();
    advice.push(
        "or, if you use no mobile-broadband modem: `sudo systemctl disable --now ModemManager`"
            .into(),
    );
    let status = if running.is_some() {
        Status::Warn
    } else {
        Status::Ok
    };
    Finding::new(
        Check::ModemManager,
        status,
        format!("ModemManager {state}, may grab serial programmers"),
        detail,
    )
    .advise(advice)
}

/// The pid of a process whose `comm` is `name`, from a /proc tree.
fn running_pid(proc: &Path, name: &str) -> Option<u32> {
    std::fs::read_dir(proc).ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = read(&entry.path().join("comm"))?;
        (comm.trim() == name).then_some(pid)
    })
}
