//! Serial ports: who owns them, whether the user may open them, and the dialout/uucp group.

use std::path::Path;

use super::{Check, Facts, Finding, NodeAccess, Platform, Status, udev};

/// The groups distributions give serial ports: dialout (Debian, Ubuntu, Fedora), uucp (Arch,
/// openSUSE), dialer (FreeBSD).
const SERIAL_GROUPS: [&str; 3] = ["dialout", "uucp", "dialer"];

/// One line per serial port, with its owner and whether the user may open it.
pub(super) fn ports(facts: &Facts<'_>) -> Finding {
    let inputs = facts.inputs;
    if inputs.ports.is_empty() {
        if inputs.platform == Platform::Linux && !inputs.paths.sys_class_tty.exists() {
            return Finding::new(
                Check::SerialPorts,
                Status::Warn,
                "Serial ports cannot be listed",
                format!(
                    "{} does not exist (a container without /sys?), so serial ports cannot be found; you can still type a port's path by hand.",
                    inputs.paths.sys_class_tty.display()
                ),
            );
        }
        return Finding::new(
            Check::SerialPorts,
            Status::Ok,
            "No serial ports",
            "A serial programmer (ArduinoISP on a Pro Micro, a Bus Pirate) shows up here as /dev/ttyACM0, /dev/ttyUSB0 or COM3 when plugged in.",
        );
    }
    let mut lines = Vec::new();
    let mut blocked_programmers = Vec::new();
    for port in &inputs.ports {
        let what = port
            .usb
            .as_ref()
            .and_then(|usb| facts.known.describe(usb.id, usb.product.as_deref()));
        let mut line = port.to_string();
        if let Some(what) = &what {
            line.push_str(&format!(" = {what}"));
        }
        if let (Some(who), Some(access)) = (&inputs.identity, NodeAccess::of(Path::new(&port.name)))
        {
            let grant = access.read_write_for(who);
            let verdict = if grant.allowed() {
                format!("you may open it {}", grant.describe(facts.groups))
            } else {
                if what.is_some() {
                    blocked_programmers.push(port.name.clone());
                }
                "you may NOT open it".into()
            };
            line.push_str(&format!(
                ": {}; {verdict}",
                access.describe(facts.users, facts.groups)
            ));
        }
        lines.push(line);
    }
    if inputs.platform == Platform::Macos
        && inputs.ports.iter().any(|p| p.name.starts_with("/dev/tty."))
    {
        lines.push("On macOS pick the /dev/cu.* name of a port: opening /dev/tty.* waits for a carrier signal that programmers never raise.".into());
    }
    if blocked_programmers.is_empty() {
        return Finding::new(
            Check::SerialPorts,
            Status::Ok,
            format!("{} serial port(s)", inputs.ports.len()),
            lines.join("\n"),
        );
    }
    let mut advice = Vec::new();
    if let Some(group) = serial_group(facts) {
        advice.push(format!(
            "join the serial ports' group: `sudo usermod -aG {group} $USER`, then log out and back in"
        ));
    }
    if udev::find_first_current(&facts.rules, &facts.known.ids()).is_none() {
        advice.extend(udev::install_advice());
    } else {
        advice.push(
            "the udev rules are installed: unplug the programmer and plug it back in so they apply"
                .into(),
        );
    }
    Finding::new(
        Check::SerialPorts,
        Status::Error,
        format!("Permission denied on {}", blocked_programmers.join(", ")),
        lines.join("\n"),
    )
    .advise(advice)
}

/// The name of the group that owns serial ports here: the group of a USB serial port's node
/// if one is plugged in, else the first of the usual names the group file has.
fn serial_group(facts: &Facts<'_>) -> Option<String> {
    let from_nodes = facts
        .inputs
        .ports
        .iter()
        .filter(|p| p.usb.is_some())
        .filter_map(|p| NodeAccess::of(Path::new(&p.name)))
        .filter(|node| node.gid != 0)
        .map(|node| facts.groups.name_of(node.gid))
        .next();
    from_nodes.or_else(|| {
        SERIAL_GROUPS
            .iter()
            .find(|name| facts.groups.by_name(name).is_some())
            .map(|name| name.to_string())
    })
}

/// Whether the user is in the serial ports' group, and what to do if not. `None` when there
/// is no user to check or no such group.
pub(super) fn group(facts: &Facts<'_>) -> Option<Finding> {
    let who = facts.inputs.identity.as_ref()?;
    let name = serial_group(facts)?;
    let entry = facts.groups.by_name(&name);
    if who.is_root() {
        return Some(Finding::new(
            Check::SerialGroup,
            Status::Ok,
            format!("Serial ports belong to group {name}; running as root"),
            "Root opens any port; your normal user needs the group or the udev rules.",
        ));
    }
    if entry.is_some_and(|e| who.in_group(e.gid)) {
        return Some(Finding::new(
            Check::SerialGroup,
            Status::Ok,
            format!("You are in group {name}"),
            format!("Members of {name} may open serial ports."),
        ));
    }
    let user = who.name.clone().unwrap_or_else(|| "$USER".into());
    let listed = entry.is_some_and(|e| e.members.iter().any(|m| Some(m) == who.name.as_ref()));
    if listed {
        return Some(
            Finding::new(
                Check::SerialGroup,
                Status::Warn,
                format!("Added to group {name}, but not in this session yet"),
                format!(
                    "The group file lists {user} in {name}, but this login started before that: group changes apply to new logins."
                ),
            )
            .advise(vec![
                "log out and back in (or reboot)".into(),
                format!("or, for one terminal right now: `newgrp {name}`"),
            ]),
        );
    }
    let rules_current = udev::find_first_current(&facts.rules, &facts.known.ids()).is_some();
    let (status, why) = if rules_current {
        (
            Status::Ok,
            "The udev rules already give you the programmers ISP Toolbox knows while you are logged in at this computer; the group is still needed over SSH and for other serial adapters.",
        )
    } else {
        (
            Status::Warn,
            "Without it (or the udev rules) opening a serial programmer fails with \"permission denied\".",
        )
    };
    Some(
        Finding::new(
            Check::SerialGroup,
            status,
            format!("You are not in group {name}"),
            format!("Serial ports belong to group {name} and {user} is not a member. {why}"),
        )
        .advise(vec![format!(
            "`sudo usermod -aG {name} {user}`, then log out and back in"
        )]),
    )
}
