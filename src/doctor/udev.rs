//! Our udev rules: the copy shipped in `packaging/linux/`, and whether an installed copy is
//! there, takes effect, and covers every USB id of the catalogs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Check, Finding, Status};
use crate::catalog::UsbId;

/// The file name of our rules, wherever they are installed.
pub const RULES_FILE_NAME: &str = "60-isp-toolbox.rules";

/// The rules as shipped (`packaging/linux/60-isp-toolbox.rules`), for `doctor --udev-rules`.
pub const SHIPPED_RULES: &str = include_str!("../../packaging/linux/60-isp-toolbox.rules");

/// What a rules file does, as far as the doctor cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesSummary {
    /// USB ids it matches (written in lowercase hex, as udev compares them with sysfs).
    pub ids: BTreeSet<UsbId>,
    /// It tags matches with `uaccess`.
    pub uaccess: bool,
    /// It sets `ID_MM_DEVICE_IGNORE` so ModemManager keeps away.
    pub ignored_by_modem_manager: bool,
}

impl RulesSummary {
    /// Reads the ids and actions out of a rules file's text. Ids written in uppercase are
    /// left out: udev compares attributes as text and sysfs writes them in lowercase, so such
    /// a rule never matches.
    pub fn of(text: &str) -> RulesSummary {
        let mut summary = RulesSummary::default();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            summary.uaccess |= line.contains("TAG+=\"uaccess\"");
            summary.ignored_by_modem_manager |= line.contains("ENV{ID_MM_DEVICE_IGNORE}=\"1\"");
            let vid = attr_value(line, "idVendor");
            let pid = attr_value(line, "idProduct");
            if let (Some(vid), Some(pid)) = (vid, pid)
                && let Some(id) = UsbId::parse(&format!("{vid}:{pid}"))
                && vid == vid.to_ascii_lowercase()
                && pid == pid.to_ascii_lowercase()
            {
                summary.ids.insert(id);
            }
        }
        summary
    }

    /// Whether the rules grant access and keep ModemManager away.
    fn does_both(&self) -> bool {
        self.uaccess && self.ignored_by_modem_manager
    }
}

/// The value in `ATTRS{name}=="value"` (or `ATTR{name}==`) on a rules line.
fn attr_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    ["ATTRS", "ATTR"].iter().find_map(|key| {
        let pattern = format!("{key}{{{name}}}==\"");
        let start = line.find(&pattern)? + pattern.len();
        let len = line[start..].find('"')?;
        Some(&line[start..start + len])
    })
}

/// Our rules file in one of udev's rule directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRules {
    /// Where it is.
    pub path: PathBuf,
    /// Its contents, or why they could not be read.
    pub summary: Result<RulesSummary, String>,
}

/// Every copy of our rules in `dirs`, in udev's priority order (the first one is the one udev
/// uses: a file in /etc/udev/rules.d replaces one of the same name in /usr/lib/udev/rules.d).
/// A directory that is a symlink to an earlier one (/lib on merged-/usr systems) is not
/// counted twice.
pub fn find_installed(dirs: &[PathBuf]) -> Vec<InstalledRules> {
    let mut seen = BTreeSet::new();
    dirs.iter()
        .map(|dir| dir.join(RULES_FILE_NAME))
        .filter(|path| path.exists())
        .filter(|path| seen.insert(path.canonicalize().unwrap_or_else(|_| path.clone())))
        .map(|path| {
            let summary = std::fs::read_to_string(&path)
                .map(|text| RulesSummary::of(&text))
                .map_err(|e| e.to_string());
            InstalledRules { path, summary }
        })
        .collect()
}

/// How to install the shipped rules, for advice.
pub fn install_advice() -> Vec<String> {
    vec![
        format!(
            "install the rules: `isp-toolbox-cli doctor --udev-rules | sudo tee /etc/udev/rules.d/{RULES_FILE_NAME}` (the .deb package installs them for you)"
        ),
        "reload them: `sudo udevadm control --reload && sudo udevadm trigger`".into(),
        "unplug the programmer and plug it back in".into(),
    ]
}

/// The finding about our rules; `wanted` is every USB id of the catalogs.
pub fn check(installed: &[InstalledRules], wanted: &BTreeSet<UsbId>) -> Finding {
    let Some(effective) = installed.first() else {
        return Finding::new(
            Check::UdevRules,
            Status::Warn,
            "udev rules not installed",
            format!(
                "No {RULES_FILE_NAME} in udev's rule directories. Without it only root (and, for serial ports, members of the dialout/uucp group) may open the programmers, and ModemManager may probe a Pro Micro's port while ISP Toolbox needs it."
            ),
        )
        .advise(install_advice());
    };
    let path = effective.path.display();
    let summary = match &effective.summary {
        Ok(summary) => summary,
        Err(e) => {
            return Finding::new(
                Check::UdevRules,
                Status::Warn,
                "udev rules unreadable",
                format!("{path} exists but cannot be read: {e}"),
            )
            .advise(vec![format!("check the file: `ls -l {path}`")]);
        }
    };
    let missing: Vec<String> = wanted
        .difference(&summary.ids)
        .map(UsbId::to_string)
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "it does not cover {} USB id(s) ISP Toolbox knows: {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    if !summary.uaccess {
        problems.push("it does not tag devices with uaccess".into());
    }
    if !summary.ignored_by_modem_manager {
        problems.push("it does not set ID_MM_DEVICE_IGNORE for ModemManager".into());
    }
    if problems.is_empty() {
        return Finding::new(
            Check::UdevRules,
            Status::Ok,
            "udev rules installed",
            format!(
                "{path} covers all {} programmer and bootloader USB ids, grants access to the logged-in user (uaccess) and tells ModemManager to keep away.",
                wanted.len()
            ),
        );
    }
    let mut detail = format!("{path} is outdated: {}.", problems.join("; "));
    let mut advice = Vec::new();
    // A current copy further down (the package's) hidden by an old one in /etc.
    if let Some(hidden) = installed[1..].iter().find(|rules| {
        rules
            .summary
            .as_ref()
            .is_ok_and(|s| s.does_both() && wanted.is_subset(&s.ids))
    }) {
        detail.push_str(&format!(
            " A current copy at {} is ignored because udev uses the one above instead.",
            hidden.path.display()
        ));
        advice.push(format!("remove the old copy: `sudo rm {path}`"));
        advice.push("reload: `sudo udevadm control --reload && sudo udevadm trigger`, then replug the programmer".into());
    } else {
        advice.push(format!(
            "replace it with the current rules: `isp-toolbox-cli doctor --udev-rules | sudo tee {path}`"
        ));
        advice.extend(install_advice().into_iter().skip(1));
    }
    Finding::new(
        Check::UdevRules,
        Status::Warn,
        "udev rules outdated",
        detail,
    )
    .advise(advice)
}

/// The rules udev uses, if they are current: every id in `wanted`, uaccess and the
/// ModemManager flag.
pub fn find_first_current<'a>(
    installed: &'a [InstalledRules],
    wanted: &BTreeSet<UsbId>,
) -> Option<&'a InstalledRules> {
    installed.first().filter(|rules| {
        rules
            .summary
            .as_ref()
            .is_ok_and(|s| s.does_both() && wanted.is_subset(&s.ids))
    })
}

/// Whether the rules udev uses keep ModemManager away from every catalog id.
pub fn keeps_modem_manager_away(installed: &[InstalledRules], wanted: &BTreeSet<UsbId>) -> bool {
    installed.first().is_some_and(|rules| {
        rules
            .summary
            .as_ref()
            .is_ok_and(|s| s.ignored_by_modem_manager && wanted.is_subset(&s.ids))
    })
}

/// Whether the rules udev uses give the seat's user access to `id`.
pub fn grants(installed: &[InstalledRules], id: UsbId) -> bool {
    installed.first().is_some_and(|rules| {
        rules
            .summary
            .as_ref()
            .is_ok_and(|s| s.uaccess && s.ids.contains(&id))
    })
}

/// The rule directories under `root`, in udev's priority order.
pub fn rule_dirs(root: &Path) -> Vec<PathBuf> {
    [
        "etc/udev/rules.d",
        "run/udev/rules.d",
        "usr/local/lib/udev/rules.d",
        "usr/lib/udev/rules.d",
        "lib/udev/rules.d",
    ]
    .iter()
    .map(|dir| root.join(dir))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_ids_and_actions() {
        let text = "# ATTRS{idVendor}==\"dead\", ATTRS{idProduct}==\"beef\"\n\
            ATTRS{idVendor}==\"1781\", ATTRS{idProduct}==\"0c9f\", ENV{X}=\"1\"\n\
            SUBSYSTEM==\"usb\", ATTR{idVendor}==\"16c0\", ATTR{idProduct}==\"05dc\", TAG+=\"uaccess\"\n\
            ATTRS{idVendor}==\"03EB\", ATTRS{idProduct}==\"2FF4\", MODE=\"0666\"\n\
            ATTRS{idVendor}==\"1b4f\"\n";
        let summary = RulesSummary::of(text);
        let ids: Vec<String> = summary.ids.iter().map(UsbId::to_string).collect();
        assert_eq!(ids, ["16C0:05DC", "1781:0C9F"]);
        assert!(summary.uaccess);
        assert!(!summary.ignored_by_modem_manager);
    }

    #[test]
    fn shipped_rules_do_both() {
        let summary = RulesSummary::of(SHIPPED_RULES);
        assert!(summary.does_both());
        assert!(summary.ids.contains(&UsbId::new(0x1781, 0x0C9F)));
    }
}
