//! The doctor: checks that this machine lets ISP Toolbox reach a programmer, and says what to
//! do when it does not.
//!
//! [`run`] looks at the live system; [`diagnose`] does the same over [`Inputs`] that name every
//! path it reads (`/dev/bus/usb`, `/etc/udev/rules.d`, `/sys/class/tty`, `/proc` ...), the
//! user and the USB devices, so tests run it on fake trees. The result is a [`Report`]: a list
//! of [`Finding`]s, each with a [`Status`], a title, an explanation and steps to take, which
//! the CLI prints (`isp-toolbox-cli doctor`, also as JSON) and the GUI shows in
//! Help → Diagnostics.
//!
//! The checks, by platform:
//!
//! - all: the USB subsystem (libusb starts? on Linux: is there a usbfs, and if not, is this
//!   WSL or a container), which known programmers and bootloaders are connected, the serial
//!   ports.
//! - Linux: who may open each connected programmer's USB node and serial port (owner, group,
//!   mode and the ACL that udev's `uaccess` adds), our udev rules (installed, current, not
//!   hidden by an old copy), membership of the serial ports' group (dialout/uucp), and
//!   ModemManager (installed, running, kept away by the rules).
//! - Windows: the WinUSB driver that USBasp and USBtiny need (installed with Zadig).
//! - macOS: the `/dev/cu.*` port to pick instead of `/dev/tty.*`.
//!
//! Every platform's logic is plain code over the inputs, so all of it is tested on Linux;
//! only gathering the live inputs (the process's uid and groups) is `cfg`'d.

mod access;
mod serial;
mod system;
pub mod udev;
mod usb;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use access::{AclEntry, AclTag, Grant, GroupDb, Identity, NodeAccess, UserDb, parse_acl_xattr};
pub use system::Environment;

use crate::catalog::{BootloaderCatalog, PortKind, ProgrammerCatalog, UsbId};
use crate::transport::{PortInfo, UsbDeviceList, list_ports, list_usb_devices, ports_from_sysfs};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works now or may work, but something is likely to get in the way.
    Warn,
    /// ISP Toolbox cannot reach a programmer until this is fixed.
    Error,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Error => "error",
        })
    }
}

/// Which check a finding comes from (stable ids for the GUI and `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The operating system, the environment and the user.
    System,
    /// Whether USB can be used at all (libusb, usbfs).
    UsbSubsystem,
    /// Which known programmers and bootloaders are connected.
    Programmers,
    /// Whether one connected USB device can be opened.
    UsbAccess,
    /// Our udev rules.
    UdevRules,
    /// The serial ports and who may open them.
    SerialPorts,
    /// Membership of the group that owns serial ports.
    SerialGroup,
    /// ModemManager, which probes new serial ports.
    ModemManager,
    /// Windows: the driver libusb needs for USB programmers.
    UsbDriver,
}

/// One result of the doctor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check it comes from.
    pub check: Check,
    /// How it came out.
    pub status: Status,
    /// One line: what was checked and the gist of the answer.
    pub title: String,
    /// The explanation: what was seen, and why it matters.
    pub detail: String,
    /// What to do, step by step; empty when nothing is to be done.
    pub advice: Vec<String>,
}

impl Finding {
    /// A finding without advice.
    pub fn new(
        check: Check,
        status: Status,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            status,
            title: title.into(),
            detail: detail.into(),
            advice: Vec::new(),
        }
    }

    /// The same finding with these steps as advice.
    pub fn advise(mut self, steps: Vec<String>) -> Finding {
        self.advice = steps;
        self
    }
}

/// Everything the doctor found, in the order it checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The platform the checks ran for.
    pub platform: Platform,
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst status of any finding (`Ok` for an empty report).
    pub fn worst(&self) -> Status {
        self.findings
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// How many findings have this status.
    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    /// The findings of one check.
    pub fn of(&self, check: Check) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.check == check)
    }
}

impl std::fmt::Display for Report {
    /// Plain text: `[ok] title`, the detail indented, then numbered steps.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for finding in &self.findings {
            writeln!(f, "[{}] {}", finding.status, finding.title)?;
            for line in finding.detail.lines() {
                writeln!(f, "    {line}")?;
            }
            for (n, step) in finding.advice.iter().enumerate() {
                writeln!(f, "    {}. {step}", n + 1)?;
            }
        }
        write!(
            f,
            "{} ok, {} warning(s), {} error(s)",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Error)
        )
    }
}

/// The operating system family the checks are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Linux (udev, usbfs, dialout, ModemManager).
    Linux,
    /// Windows (WinUSB drivers, COM ports).
    Windows,
    /// macOS (no drivers needed; `/dev/cu.*` ports).
    Macos,
    /// Another Unix (BSD): only the generic checks.
    OtherUnix,
}

impl Platform {
    /// The platform this program was built for.
    pub fn current() -> Platform {
        if cfg!(target_os = "linux") {
            Platform::Linux
        } else if cfg!(windows) {
            Platform::Windows
        } else if cfg!(target_os = "macos") {
            Platform::Macos
        } else {
            Platform::OtherUnix
        }
    }
}

/// Every path the doctor reads, so tests can point it at a fake tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The root the others hang under (`/`), for container markers such as `/.dockerenv`.
    pub root: PathBuf,
    /// Device nodes (`/dev`).
    pub dev: PathBuf,
    /// USB device nodes (`/dev/bus/usb`), what libusb opens on Linux.
    pub usbfs: PathBuf,
    /// The kernel's tty list (`/sys/class/tty`).
    pub sys_class_tty: PathBuf,
    /// udev's rule directories, highest priority first.
    pub udev_rules_dirs: Vec<PathBuf>,
    /// systemd's unit directories, to see whether ModemManager is installed.
    pub systemd_unit_dirs: Vec<PathBuf>,
    /// Where ModemManager's program would be.
    pub modem_manager_bins: Vec<PathBuf>,
    /// The process table (`/proc`), to see what runs and which kernel this is.
    pub proc: PathBuf,
    /// The group file (`/etc/group`).
    pub group_file: PathBuf,
    /// The passwd file (`/etc/passwd`).
    pub passwd_file: PathBuf,
}

impl Paths {
    /// The real system's paths.
    pub fn system() -> Paths {
        Paths::under(Path::new("/"))
    }

    /// The same layout under another root (a fake tree in tests).
    pub fn under(root: &Path) -> Paths {
        let join_all = |dirs: &[&str]| dirs.iter().map(|d| root.join(d)).collect::<Vec<_>>();
        Paths {
            root: root.to_path_buf(),
            dev: root.join("dev"),
            usbfs: root.join("dev/bus/usb"),
            sys_class_tty: root.join("sys/class/tty"),
            udev_rules_dirs: udev::rule_dirs(root),
            systemd_unit_dirs: join_all(&[
                "etc/systemd/system",
                "run/systemd/system",
                "usr/lib/systemd/system",
                "lib/systemd/system",
            ]),
            modem_manager_bins: join_all(&["usr/sbin/ModemManager", "sbin/ModemManager"]),
            proc: root.join("proc"),
            group_file: root.join("etc/group"),
            passwd_file: root.join("etc/passwd"),
        }
    }
}

/// What the doctor looks at.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Which platform's checks to run.
    pub platform: Platform,
    /// Where to look.
    pub paths: Paths,
    /// The user the permission checks are for (`None` on Windows).
    pub identity: Option<Identity>,
    /// The USB devices, or why there are none to see.
    pub usb: UsbDeviceList,
    /// The serial ports.
    pub ports: Vec<PortInfo>,
}

impl Inputs {
    /// The live system: this process's user, the real USB bus and serial ports.
    pub fn live() -> Inputs {
        let paths = Paths::system();
        let identity = Identity::current(&UserDb::load(&paths.passwd_file));
        Inputs {
            platform: Platform::current(),
            identity,
            usb: list_usb_devices(),
            ports: list_ports(),
            paths,
        }
    }

    /// A Linux-style tree under `root` (ports read from its `sys/class/tty` and `dev`), with
    /// the user and USB devices given.
    pub fn from_tree(
        platform: Platform,
        root: &Path,
        identity: Option<Identity>,
        usb: UsbDeviceList,
    ) -> Inputs {
        let paths = Paths::under(root);
        Inputs {
            platform,
            identity,
            usb,
            ports: ports_from_sysfs(&paths.sys_class_tty, &paths.dev),
            paths,
        }
    }
}

/// Runs every check on the live system.
pub fn run() -> Report {
    diagnose(&Inputs::live())
}

/// Runs every check over `inputs`. Never fails and never panics: what cannot be looked at
/// becomes a finding.
pub fn diagnose(inputs: &Inputs) -> Report {
    let mut findings = Vec::new();
    let known = match KnownDevices::builtin() {
        Ok(known) => known,
        Err(e) => {
            findings.push(Finding::new(
                Check::System,
                Status::Error,
                "built-in catalogs are broken",
                e.to_string(),
            ));
            KnownDevices::default()
        }
    };
    let users = UserDb::load(&inputs.paths.passwd_file);
    let groups = GroupDb::load(&inputs.paths.group_file);
    let environment = Environment::detect(&inputs.paths);
    let facts = Facts {
        inputs,
        known: &known,
        users: &users,
        groups: &groups,
        environment,
        rules: if inputs.platform == Platform::Linux {
            udev::find_installed(&inputs.paths.udev_rules_dirs)
        } else {
            Vec::new()
        },
    };

    findings.push(system::summary(&facts));
    findings.push(usb::subsystem(&facts));
    findings.push(usb::connected(&facts));
    match inputs.platform {
        Platform::Linux => {
            findings.extend(usb::access(&facts));
            findings.push(udev::check(&facts.rules, &known.ids()));
            findings.push(serial::ports(&facts));
            findings.extend(serial::group(&facts));
            findings.push(system::modem_manager(&facts));
        }
        Platform::Windows => {
            findings.push(usb::windows_driver(&facts));
            findings.push(serial::ports(&facts));
        }
        // No device nodes to guard USB here, and macOS's /dev/cu.* are open to everyone.
        Platform::Macos => findings.push(serial::ports(&facts)),
        Platform::OtherUnix => {
            findings.push(serial::ports(&facts));
            findings.extend(serial::group(&facts));
        }
    }
    Report {
        platform: inputs.platform,
        findings,
    }
}

/// What the checks share: the inputs and what was read once from them.
struct Facts<'a> {
    inputs: &'a Inputs,
    known: &'a KnownDevices,
    users: &'a UserDb,
    groups: &'a GroupDb,
    environment: Environment,
    rules: Vec<udev::InstalledRules>,
}

/// The USB ids of every programmer, ISP firmware and bootloader in the catalogs (and the
/// Teensy's HalfKay bootloader), with what each one is.
#[derive(Debug, Clone, Default)]
struct KnownDevices {
    by_id: BTreeMap<UsbId, Vec<Known>>,
}

/// One catalog entry behind a USB id.
#[derive(Debug, Clone)]
struct Known {
    name: String,
    /// Its id is also used by unrelated devices (FTDI, V-USB, PJRC serial).
    shared: bool,
    /// Only this product string confirms it.
    product: Option<String>,
    /// Opened through libusb (USBasp, USBtiny) rather than as a serial port.
    usb_driver: bool,
}

impl KnownDevices {
    fn builtin() -> crate::Result<KnownDevices> {
        let programmers = ProgrammerCatalog::builtin()?;
        let bootloaders = BootloaderCatalog::builtin()?;
        let mut known = KnownDevices::default();
        for programmer in programmers.all() {
            for usb in &programmer.usb {
                known.add(
                    usb.id,
                    Known {
                        name: programmer.name.clone(),
                        shared: usb.shared,
                        product: usb.product.clone(),
                        usb_driver: programmer.port == PortKind::Usb,
                    },
                );
            }
        }
        for firmware in bootloaders.isp_firmware() {
            for &id in &firmware.usb {
                known.add(
                    id,
                    Known {
                        name: firmware.name.clone(),
                        shared: false,
                        product: firmware.usb_product.clone(),
                        usb_driver: false,
                    },
                );
            }
        }
        // The Teensy's own bootloader, which `prepare` talks to through libusb.
        known.add(
            crate::bootload::halfkay::HALFKAY_USB,
            Known {
                name: "Teensy 2.0 HalfKay bootloader".into(),
                shared: false,
                product: None,
                usb_driver: true,
            },
        );
        for bootloader in bootloaders.all() {
            known.add(
                bootloader.usb,
                Known {
                    name: format!("{} (bootloader)", bootloader.name),
                    shared: false,
                    product: None,
                    usb_driver: false,
                },
            );
        }
        Ok(known)
    }

    fn add(&mut self, id: UsbId, entry: Known) {
        let entries = self.by_id.entry(id).or_default();
        if !entries.iter().any(|e| e.name == entry.name) {
            entries.push(entry);
        }
    }

    fn ids(&self) -> std::collections::BTreeSet<UsbId> {
        self.by_id.keys().copied().collect()
    }

    /// What a device with this id (and product string, if read) may be; empty if unknown.
    /// Entries that name a product are left out when the device reports another one.
    fn identify(&self, id: UsbId, product: Option<&str>) -> Vec<&Known> {
        self.by_id
            .get(&id)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| match (&e.product, product) {
                        (Some(want), Some(seen)) => want.trim().eq_ignore_ascii_case(seen.trim()),
                        _ => true,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `USBtinyISP / PocketAVR` or `possibly a Bus Pirate v3`, for messages.
    fn describe(&self, id: UsbId, product: Option<&str>) -> Option<String> {
        let entries = self.identify(id, product);
        if entries.is_empty() {
            return None;
        }
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let confirmed = product.is_some() && entries.iter().any(|e| e.product.is_some());
        let text = names.join(" / ");
        Some(if entries.iter().all(|e| e.shared) && !confirmed {
            format!("possibly {text} (this id is shared with other devices)")
        } else {
            text
        })
    }
}
