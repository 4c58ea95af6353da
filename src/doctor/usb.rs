//! USB: can libusb run here, which known devices are connected, and may the user open them.

use super::{Check, Environment, Facts, Finding, NodeAccess, Platform, Status, udev};
use crate::transport::UsbDeviceInfo;

/// Serial programmers need no USB access of their own; said wherever USB is missing.
const SERIAL_STILL_WORKS: &str = "Serial programmers (ArduinoISP on a Pro Micro or Teensy, the Bus Pirate) need only their serial port, checked below.";

/// Whether USB can be used at all.
pub(super) fn subsystem(facts: &Facts<'_>) -> Finding {
    let inputs = facts.inputs;
    let Some(reason) = &inputs.usb.unavailable else {
        return Finding::new(
            Check::UsbSubsystem,
            Status::Ok,
            "USB works",
            format!(
                "libusb started and sees {} USB device(s).",
                inputs.usb.devices.len()
            ),
        );
    };
    if inputs.platform != Platform::Linux {
        return Finding::new(
            Check::UsbSubsystem,
            Status::Error,
            "USB unavailable",
            format!("{reason}\n{SERIAL_STILL_WORKS}"),
        )
        .advise(vec![
            "restart the computer; if it persists, report this message".into(),
        ]);
    }
    if inputs.paths.usbfs.exists() {
        return Finding::new(
            Check::UsbSubsystem,
            Status::Error,
            "USB unavailable: libusb could not start",
            format!(
                "{} exists, but {reason}\n{SERIAL_STILL_WORKS}",
                inputs.paths.usbfs.display()
            ),
        )
        .advise(vec![format!(
            "check that {} can be listed: `ls -lR {}`",
            inputs.paths.usbfs.display(),
            inputs.paths.usbfs.display()
        )]);
    }
    let (why, advice) = no_usbfs_explanation(&facts.environment);
    Finding::new(
        Check::UsbSubsystem,
        Status::Error,
        format!(
            "No USB subsystem: {} does not exist",
            inputs.paths.usbfs.display()
        ),
        format!("{why}\nlibusb: {reason}\n{SERIAL_STILL_WORKS}"),
    )
    .advise(advice)
}

/// Why there is no /dev/bus/usb here, and what to do about it.
fn no_usbfs_explanation(environment: &Environment) -> (String, Vec<String>) {
    match environment {
        Environment::Wsl2 => (
            "This is WSL 2: Windows keeps USB devices to itself until one is attached to WSL.".into(),
            vec![
                "simplest: run the Windows build of ISP Toolbox instead".into(),
                "or attach the programmer with usbipd-win: in an administrator PowerShell run `usbipd list`, then `usbipd bind --busid <BUSID>` and `usbipd attach --wsl --busid <BUSID>`; repeat the attach after every replug".into(),
            ],
        ),
        Environment::Wsl1 => (
            "This is WSL 1, which has no USB support at all.".into(),
            vec!["run the Windows build of ISP Toolbox instead (or move to WSL 2 and usbipd-win)".into()],
        ),
        Environment::Container(name) => (
            format!("This is a container ({name}): it sees only the devices passed into it."),
            vec![
                "run ISP Toolbox on the host instead, or".into(),
                "pass USB in: `docker run --device /dev/bus/usb ...` (devices plugged in later also need `-v /dev/bus/usb:/dev/bus/usb --device-cgroup-rule 'c 189:* rmw'`)".into(),
                "for a serial programmer pass its port: `--device /dev/ttyACM0`".into(),
            ],
        ),
        Environment::Host => (
            "The kernel exposes no USB device nodes: a kernel without USB support, a /dev without devtmpfs, or a sandbox (Flatpak, Snap) without USB permission.".into(),
            vec![
                "check `lsusb` and `ls /dev/bus/usb`; in a Flatpak or Snap, grant it USB/raw-usb access".into(),
            ],
        ),
    }
}

/// One line per known programmer or bootloader on USB or a serial port.
pub(super) fn connected(facts: &Facts<'_>) -> Finding {
    let inputs = facts.inputs;
    let mut lines = Vec::new();
    for device in &inputs.usb.devices {
        if let Some(what) = facts.known.describe(device.id, device.product.as_deref()) {
            lines.push(format!("USB {device}: {what}"));
        }
    }
    for port in &inputs.ports {
        if let Some(usb) = &port.usb
            && let Some(what) = facts.known.describe(usb.id, usb.product.as_deref())
        {
            lines.push(format!("serial port {}: {what}", port.name));
        }
    }
    if !lines.is_empty() {
        return Finding::new(
            Check::Programmers,
            Status::Ok,
            format!("{} known device(s) connected", lines.len()),
            lines.join("\n"),
        );
    }
    let seen = format!(
        "None of the {} USB device(s) and {} serial port(s) is a programmer or bootloader ISP Toolbox knows.",
        inputs.usb.devices.len(),
        inputs.ports.len()
    );
    Finding::new(Check::Programmers, Status::Warn, "No programmer connected", seen).advise(vec![
        "plug the programmer in and run the doctor again, so its permissions are checked too"
            .into(),
        "use a data cable: many USB cables only charge".into(),
        "`isp-toolbox-cli list programmers` shows the USB ids ISP Toolbox looks for; a clone with another id can still be picked by its port".into(),
    ])
}

/// Linux: whether the user may open the USB node of each connected USB programmer
/// (USBasp, USBtiny; serial programmers are checked through their port).
pub(super) fn access(facts: &Facts<'_>) -> Vec<Finding> {
    let inputs = facts.inputs;
    let Some(who) = &inputs.identity else {
        return Vec::new();
    };
    inputs
        .usb
        .devices
        .iter()
        .filter(|device| {
            facts
                .known
                .identify(device.id, device.product.as_deref())
                .iter()
                .any(|k| k.usb_driver)
        })
        .map(|device| {
            let node = inputs
                .paths
                .usbfs
                .join(format!("{:03}", device.bus))
                .join(format!("{:03}", device.address));
            let what = facts
                .known
                .describe(device.id, device.product.as_deref())
                .unwrap_or_default();
            let Some(access) = NodeAccess::of(&node) else {
                return Finding::new(
                    Check::UsbAccess,
                    Status::Warn,
                    format!("{what} ({}): no device node", device.id),
                    format!(
                        "libusb lists it at bus {} device {}, but {} cannot be examined; it may have just been unplugged.",
                        device.bus,
                        device.address,
                        node.display()
                    ),
                )
                .advise(vec!["replug it and run the doctor again".into()]);
            };
            let grant = access.read_write_for(who);
            let node_text = format!(
                "{}: {}",
                node.display(),
                access.describe(facts.users, facts.groups)
            );
            if grant.allowed() {
                return Finding::new(
                    Check::UsbAccess,
                    Status::Ok,
                    format!("{what} ({}) can be opened", device.id),
                    format!("{node_text}; you may open it {}.", grant.describe(facts.groups)),
                );
            }
            Finding::new(
                Check::UsbAccess,
                Status::Error,
                format!("{what} ({}): permission denied", device.id),
                format!(
                    "{node_text}; you may not open it for writing (decided {}).",
                    grant.describe(facts.groups)
                ),
            )
            .advise(denied_advice(facts, device))
        })
        .collect()
}

fn denied_advice(facts: &Facts<'_>, device: &UsbDeviceInfo) -> Vec<String> {
    if !udev::grants(&facts.rules, device.id) {
        return udev::install_advice();
    }
    vec![
        "the rules are installed but were not applied to this device yet: unplug it and plug it back in (or `sudo udevadm trigger`)".into(),
        "uaccess grants the user logged in at this computer's own screen; over SSH it does not apply: there, add a local rule such as `SUBSYSTEM==\"usb\", ATTRS{idVendor}==\"1781\", GROUP=\"plugdev\", MODE=\"0660\"` in /etc/udev/rules.d/61-isp-toolbox-local.rules and join that group".into(),
    ]
}

/// Windows: libusb opens USBasp and USBtiny only through the WinUSB (or libusbK) driver.
/// A device whose strings could not be read could not be opened: most likely no driver.
pub(super) fn windows_driver(facts: &Facts<'_>) -> Finding {
    let usb_programmers: Vec<&UsbDeviceInfo> = facts
        .inputs
        .usb
        .devices
        .iter()
        .filter(|d| {
            facts
                .known
                .identify(d.id, None)
                .iter()
                .any(|k| k.usb_driver)
        })
        .collect();
    let zadig = vec![
        "download Zadig (https://zadig.akeo.ie), pick the programmer (Options → List All Devices), choose WinUSB and click Install Driver".into(),
        "unplug the programmer and plug it back in".into(),
    ];
    if usb_programmers.is_empty() {
        return Finding::new(
            Check::UsbDriver,
            Status::Ok,
            "No USB programmer to check for a driver",
            "USBasp and USBtiny programmers need the WinUSB driver, installed once with Zadig. Serial programmers (Pro Micro, Bus Pirate) use Windows' own serial drivers.",
        );
    }
    let blocked: Vec<String> = usb_programmers
        .iter()
        .filter(|d| d.manufacturer.is_none() && d.product.is_none())
        .map(|d| d.to_string())
        .collect();
    if blocked.is_empty() {
        return Finding::new(
            Check::UsbDriver,
            Status::Ok,
            "USB programmers have a usable driver",
            format!(
                "libusb opened {} USB programmer(s) and read their names.",
                usb_programmers.len()
            ),
        );
    }
    Finding::new(
        Check::UsbDriver,
        Status::Error,
        "USB programmer without the WinUSB driver",
        format!(
            "libusb sees but cannot open: {}. On Windows a USBasp or USBtiny needs the WinUSB driver.",
            blocked.join(", ")
        ),
    )
    .advise(zadig)
}
