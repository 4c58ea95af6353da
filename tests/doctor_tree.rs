//! The doctor over fake system trees: every branch of every check, for users that are not the
//! owner of the fake nodes (whoever runs the tests).
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use isp_toolbox::catalog::UsbId;
use isp_toolbox::doctor::udev::SHIPPED_RULES;
use isp_toolbox::doctor::{Check, Finding, Identity, Inputs, Platform, Report, Status, diagnose};
use isp_toolbox::transport::{PortInfo, UsbDeviceInfo, UsbDeviceList, UsbPortInfo};

/// A fake root with the files the doctor reads.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let tree = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        tree.mkdir("sys/class/tty");
        tree.mkdir("proc");
        tree
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(&path).unwrap();
        path
    }

    fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// A stand-in device node (a plain file) with these permission bits.
    fn node(&self, rel: &str, mode: u32) -> PathBuf {
        let path = self.write(rel, "");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// The uid and gid the fake nodes get: those of whoever runs the tests.
    fn owner(&self) -> (u32, u32) {
        let meta = fs::metadata(self.root()).unwrap();
        (meta.uid(), meta.gid())
    }

    /// The group and passwd files: the nodes' group is `dialout`, with `members`.
    fn accounts(&self, user: &Identity, dialout_members: &str) {
        let (_, gid) = self.owner();
        self.write(
            "etc/group",
            format!("root:x:0:\ndialout:x:{gid}:{dialout_members}\nalice:x:4000:\n"),
        );
        self.write(
            "etc/passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\nalice:x:{}:4000::/home/alice:/bin/sh\n",
                user.uid
            ),
        );
    }

    /// A USB CDC serial port with this id (lowercase hex, as sysfs writes it), as
    /// /sys/class/tty/NAME and a /dev/NAME node with these permission bits.
    fn usb_serial_port(&self, name: &str, vid: &str, pid: &str, mode: u32) {
        let usb = self.mkdir(&format!("sys/devices/usb1/1-{name}"));
        fs::write(usb.join("idVendor"), format!("{vid}\n")).unwrap();
        fs::write(usb.join("idProduct"), format!("{pid}\n")).unwrap();
        let interface = self.mkdir(&format!("sys/devices/usb1/1-{name}/1-{name}:1.0"));
        let class = self.mkdir(&format!("sys/class/tty/{name}"));
        std::os::unix::fs::symlink(&interface, class.join("device")).unwrap();
        self.node(&format!("dev/{name}"), mode);
    }

    fn rules(&self, dir: &str, text: &str) {
        self.write(&format!("{dir}/60-isp-toolbox.rules"), text);
    }

    fn inputs(&self, identity: &Identity, usb: UsbDeviceList) -> Inputs {
        Inputs::from_tree(Platform::Linux, self.root(), Some(identity.clone()), usb)
    }
}

/// A user who owns none of the fake nodes and is in none of their groups.
fn stranger(tree: &Tree) -> Identity {
    let (owner, _) = tree.owner();
    Identity {
        uid: if owner == 4242 { 4243 } else { 4242 },
        name: Some("alice".into()),
        groups: vec![4000],
    }
}

fn usb_list(devices: &[(&str, u8, u8, Option<&str>)]) -> UsbDeviceList {
    UsbDeviceList {
        devices: devices
            .iter()
            .map(|&(id, bus, address, product)| UsbDeviceInfo {
                id: UsbId::parse(id).unwrap(),
                bus,
                address,
                manufacturer: product.map(|_| "maker".to_string()),
                product: product.map(str::to_string),
                serial_number: None,
            })
            .collect(),
        unavailable: None,
    }
}

fn no_usb(reason: &str) -> UsbDeviceList {
    UsbDeviceList {
        devices: Vec::new(),
        unavailable: Some(reason.into()),
    }
}

fn only(report: &Report, check: Check) -> &Finding {
    let found: Vec<&Finding> = report.of(check).collect();
    assert_eq!(found.len(), 1, "{check:?} in\n{report}");
    found[0]
}

fn advice(finding: &Finding) -> String {
    finding.advice.join("\n")
}

#[test]
fn wsl2_without_usbfs_points_to_usbipd_or_the_windows_build() {
    let tree = Tree::new();
    tree.write(
        "proc/sys/kernel/osrelease",
        "5.15.153.1-microsoft-standard-WSL2\n",
    );
    let who = stranger(&tree);
    let report = diagnose(&tree.inputs(&who, no_usb("libusb could not start")));
    let usb = only(&report, Check::UsbSubsystem);
    assert_eq!(usb.status, Status::Error);
    assert!(
        usb.title.contains("/dev/bus/usb does not exist"),
        "{}",
        usb.title
    );
    assert!(usb.detail.contains("WSL 2"), "{}", usb.detail);
    assert!(usb.detail.contains("libusb could not start"));
    assert!(advice(usb).contains("usbipd attach --wsl"));
    assert!(advice(usb).contains("Windows build"));
    assert!(only(&report, Check::System).title.contains("in WSL 2"));
}

#[test]
fn wsl1_has_no_usb_at_all() {
    let tree = Tree::new();
    tree.write(
        "proc/version",
        "Linux version 4.4.0-19041-Microsoft (gcc version 5.4.0)\n",
    );
    let who = stranger(&tree);
    let report = diagnose(&tree.inputs(&who, no_usb("no usbfs")));
    let usb = only(&report, Check::UsbSubsystem);
    assert!(
        usb.detail.contains("WSL 1, which has no USB"),
        "{}",
        usb.detail
    );
}

#[test]
fn a_container_is_told_how_to_pass_devices_in() {
    for (marker, name) in [(".dockerenv", "Docker"), ("run/.containerenv", "Podman")] {
        let tree = Tree::new();
        tree.write(marker, "");
        let who = stranger(&tree);
        let report = diagnose(&tree.inputs(&who, no_usb("no usbfs")));
        let usb = only(&report, Check::UsbSubsystem);
        assert!(
            usb.detail.contains(&format!("container ({name})")),
            "{}",
            usb.detail
        );
        assert!(advice(usb).contains("--device /dev/bus/usb"));
        assert!(advice(usb).contains("--device /dev/ttyACM0"));
    }
    let tree = Tree::new();
    tree.write("proc/1/environ", b"PATH=/bin\0container=systemd-nspawn\0");
    let report = diagnose(&tree.inputs(&stranger(&tree), no_usb("no usbfs")));
    assert!(
        only(&report, Check::UsbSubsystem)
            .detail
            .contains("container (systemd-nspawn)")
    );
}

#[test]
fn a_host_without_usbfs_and_one_where_libusb_fails_anyway() {
    let tree = Tree::new();
    let who = stranger(&tree);
    let report = diagnose(&tree.inputs(&who, no_usb("no usbfs")));
    let usb = only(&report, Check::UsbSubsystem);
    assert!(
        usb.detail.contains("kernel exposes no USB device nodes"),
        "{}",
        usb.detail
    );

    tree.mkdir("dev/bus/usb");
    let report = diagnose(&tree.inputs(&who, no_usb("LIBUSB_ERROR_ACCESS")));
    let usb = only(&report, Check::UsbSubsystem);
    assert_eq!(usb.status, Status::Error);
    assert_eq!(usb.title, "USB unavailable: libusb could not start");
    assert!(usb.detail.contains("LIBUSB_ERROR_ACCESS"));
}

#[test]
fn usb_programmer_access_by_mode_group_and_rules() {
    let tree = Tree::new();
    let mut who = stranger(&tree);
    tree.accounts(&who, "");
    let usbtiny = usb_list(&[("1781:0C9F", 1, 7, None), ("1D6B:0002", 1, 1, None)]);

    // Debian's default for USB nodes: rw-rw-r-- root:root.
    tree.node("dev/bus/usb/001/007", 0o664);
    let report = diagnose(&tree.inputs(&who, usbtiny.clone()));
    assert_eq!(only(&report, Check::UsbSubsystem).status, Status::Ok);
    let connected = only(&report, Check::Programmers);
    assert_eq!(connected.status, Status::Ok);
    assert!(
        connected.detail.contains("1781:0C9F (bus 1 device 7)"),
        "{}",
        connected.detail
    );
    assert!(connected.detail.contains("USBtiny"), "{}", connected.detail);
    // The root hub (1D6B:0002) is no programmer: one access finding only.
    let access = only(&report, Check::UsbAccess);
    assert_eq!(access.status, Status::Error, "{report}");
    assert!(access.title.contains("permission denied"));
    assert!(access.detail.contains("rw-rw-r--"), "{}", access.detail);
    assert!(advice(access).contains("doctor --udev-rules | sudo tee"));
    assert_eq!(report.worst(), Status::Error);

    // With the rules installed but the device plugged in before: replug.
    tree.rules("usr/lib/udev/rules.d", SHIPPED_RULES);
    let report = diagnose(&tree.inputs(&who, usbtiny.clone()));
    let access = only(&report, Check::UsbAccess);
    assert_eq!(access.status, Status::Error);
    assert!(
        advice(access).contains("plug it back in"),
        "{}",
        advice(access)
    );
    assert!(advice(access).contains("over SSH"));

    // A group with rw: allowed through it.
    fs::set_permissions(
        tree.path("dev/bus/usb/001/007"),
        fs::Permissions::from_mode(0o660),
    )
    .unwrap();
    who.groups.push(tree.owner().1);
    let report = diagnose(&tree.inputs(&who, usbtiny));
    let access = only(&report, Check::UsbAccess);
    assert_eq!(access.status, Status::Ok, "{report}");
    assert!(
        access.detail.contains("through group dialout"),
        "{}",
        access.detail
    );
}

#[test]
fn a_usb_programmer_whose_node_is_missing() {
    let tree = Tree::new();
    tree.mkdir("dev/bus/usb/001");
    let who = stranger(&tree);
    let report = diagnose(&tree.inputs(&who, usb_list(&[("16C0:05DC", 1, 9, Some("USBasp"))])));
    let access = only(&report, Check::UsbAccess);
    assert_eq!(access.status, Status::Warn);
    assert!(access.detail.contains("001/009"), "{}", access.detail);
}

#[test]
fn serial_programmer_denied_then_added_to_dialout_but_not_relogged() {
    let tree = Tree::new();
    let who = stranger(&tree);
    tree.accounts(&who, "");
    tree.usb_serial_port("ttyACM0", "1b4f", "9206", 0o660);
    let report = diagnose(&tree.inputs(&who, usb_list(&[])));
    let ports = only(&report, Check::SerialPorts);
    assert_eq!(ports.status, Status::Error, "{report}");
    assert!(ports.title.contains("ttyACM0"), "{}", ports.title);
    assert!(ports.detail.contains("Pro Micro"), "{}", ports.detail);
    assert!(ports.detail.contains("rw-rw---- "), "{}", ports.detail);
    assert!(ports.detail.contains(":dialout"), "{}", ports.detail);
    assert!(
        advice(ports).contains("sudo usermod -aG dialout"),
        "{}",
        advice(ports)
    );
    let group = only(&report, Check::SerialGroup);
    assert_eq!(group.status, Status::Warn);
    assert_eq!(group.title, "You are not in group dialout");
    assert!(advice(group).contains("sudo usermod -aG dialout alice"));

    // The group file lists alice now, but her groups are those of the old login.
    tree.accounts(&who, "bob,alice");
    let report = diagnose(&tree.inputs(&who, usb_list(&[])));
    let group = only(&report, Check::SerialGroup);
    assert_eq!(group.status, Status::Warn);
    assert!(
        group.title.contains("not in this session yet"),
        "{}",
        group.title
    );
    assert!(advice(group).contains("newgrp dialout"));

    // After logging in again.
    let mut relogged = who.clone();
    relogged.groups.push(tree.owner().1);
    let report = diagnose(&tree.inputs(&relogged, usb_list(&[])));
    assert_eq!(only(&report, Check::SerialGroup).status, Status::Ok);
    let ports = only(&report, Check::SerialPorts);
    assert_eq!(ports.status, Status::Ok, "{report}");
    assert!(
        ports.detail.contains("through group dialout"),
        "{}",
        ports.detail
    );
}

#[test]
fn with_current_rules_the_group_is_optional() {
    let tree = Tree::new();
    let who = stranger(&tree);
    tree.accounts(&who, "");
    tree.rules("etc/udev/rules.d", SHIPPED_RULES);
    tree.usb_serial_port("ttyACM0", "1b4f", "9206", 0o666);
    let report = diagnose(&tree.inputs(&who, usb_list(&[])));
    let group = only(&report, Check::SerialGroup);
    assert_eq!(group.status, Status::Ok, "{report}");
    assert!(
        group.detail.contains("udev rules already give you"),
        "{}",
        group.detail
    );
    assert_eq!(only(&report, Check::SerialPorts).status, Status::Ok);
    assert_eq!(only(&report, Check::UdevRules).status, Status::Ok);
}

#[test]
fn an_unknown_port_without_access_is_no_error() {
    let tree = Tree::new();
    let who = stranger(&tree);
    tree.usb_serial_port("ttyUSB0", "1a86", "7523", 0o600);
    let report = diagnose(&tree.inputs(&who, usb_list(&[])));
    let ports = only(&report, Check::SerialPorts);
    assert_eq!(ports.status, Status::Ok, "{report}");
    assert!(
        ports.detail.contains("you may NOT open it"),
        "{}",
        ports.detail
    );
    assert_eq!(only(&report, Check::Programmers).status, Status::Warn);
}

#[test]
fn udev_rules_missing_current_outdated_and_hidden() {
    let tree = Tree::new();
    let who = stranger(&tree);
    let inputs = || tree.inputs(&who, usb_list(&[]));

    let rules = only(&diagnose(&inputs()), Check::UdevRules).clone();
    assert_eq!(rules.status, Status::Warn);
    assert_eq!(rules.title, "udev rules not installed");

    tree.rules("usr/lib/udev/rules.d", SHIPPED_RULES);
    let rules = only(&diagnose(&inputs()), Check::UdevRules).clone();
    assert_eq!(rules.status, Status::Ok, "{}", rules.detail);
    assert!(
        rules
            .detail
            .contains("usr/lib/udev/rules.d/60-isp-toolbox.rules")
    );

    // An old hand-made copy in /etc without the newer ids, with an uppercase id udev would
    // never match, and without the ModemManager flag: it hides the package's copy.
    let old: String = SHIPPED_RULES
        .lines()
        .filter(|line| !line.contains("\"239a\"") && !line.contains("ID_MM_DEVICE_IGNORE"))
        .map(|line| line.replace("\"2ff4\"", "\"2FF4\""))
        .collect::<Vec<_>>()
        .join("\n")
        + "\nTAG+=\"uaccess\"\n";
    tree.rules("etc/udev/rules.d", &old);
    let rules = only(&diagnose(&inputs()), Check::UdevRules).clone();
    assert_eq!(rules.status, Status::Warn);
    assert_eq!(rules.title, "udev rules outdated");
    for missing in ["239A:000C", "239A:000D", "239A:000E", "03EB:2FF4"] {
        assert!(
            rules.detail.contains(missing),
            "{missing}: {}",
            rules.detail
        );
    }
    assert!(rules.detail.contains("ID_MM_DEVICE_IGNORE"));
    assert!(
        rules
            .detail
            .contains("is ignored because udev uses the one above")
    );
    assert!(advice(&rules).contains("sudo rm"), "{}", advice(&rules));
    assert!(advice(&rules).contains("etc/udev/rules.d/60-isp-toolbox.rules"));

    // Without the good copy below it, the advice is to replace it.
    fs::remove_file(tree.path("usr/lib/udev/rules.d/60-isp-toolbox.rules")).unwrap();
    let rules = only(&diagnose(&inputs()), Check::UdevRules).clone();
    assert!(advice(&rules).contains("replace it"), "{}", advice(&rules));

    // Not text at all.
    tree.rules("etc/udev/rules.d", "");
    fs::write(
        tree.path("etc/udev/rules.d/60-isp-toolbox.rules"),
        [0xFF, 0xFE, 0x00],
    )
    .unwrap();
    let rules = only(&diagnose(&inputs()), Check::UdevRules).clone();
    assert_eq!(rules.status, Status::Warn);
    assert_eq!(rules.title, "udev rules unreadable");
}

#[test]
fn modem_manager_absent_running_and_kept_away() {
    let tree = Tree::new();
    let who = stranger(&tree);
    let inputs = || tree.inputs(&who, usb_list(&[]));
    let mm = only(&diagnose(&inputs()), Check::ModemManager).clone();
    assert_eq!(
        (mm.status, mm.title.as_str()),
        (Status::Ok, "ModemManager not installed")
    );

    tree.write("usr/lib/systemd/system/ModemManager.service", "[Unit]\n");
    let mm = only(&diagnose(&inputs()), Check::ModemManager).clone();
    assert_eq!(mm.status, Status::Ok);
    assert!(
        mm.title.contains("installed but not running"),
        "{}",
        mm.title
    );

    tree.write("proc/812/comm", "ModemManager\n");
    tree.write("proc/813/comm", "bash\n");
    tree.write("proc/self/comm", "isp-toolbox-cli\n");
    let mm = only(&diagnose(&inputs()), Check::ModemManager).clone();
    assert_eq!(mm.status, Status::Warn);
    assert!(mm.title.contains("running (pid 812)"), "{}", mm.title);
    assert!(mm.detail.contains("AT commands"));
    assert!(advice(&mm).contains("systemctl disable --now ModemManager"));
    assert!(advice(&mm).contains("--udev-rules"));

    tree.rules("usr/lib/udev/rules.d", SHIPPED_RULES);
    let mm = only(&diagnose(&inputs()), Check::ModemManager).clone();
    assert_eq!(mm.status, Status::Ok);
    assert!(
        mm.title.contains("kept away by the udev rules"),
        "{}",
        mm.title
    );

    // Running from an unknown prefix still counts.
    let other = Tree::new();
    other.write("proc/77/comm", "ModemManager\n");
    let mm = only(
        &diagnose(&other.inputs(&who, usb_list(&[]))),
        Check::ModemManager,
    )
    .clone();
    assert_eq!(mm.status, Status::Warn);
    assert!(mm.detail.contains("process 77"));
}

#[test]
fn no_sysfs_means_ports_cannot_be_listed() {
    let tree = Tree::new();
    fs::remove_dir_all(tree.path("sys")).unwrap();
    let report = diagnose(&tree.inputs(&stranger(&tree), no_usb("no usbfs")));
    let ports = only(&report, Check::SerialPorts);
    assert_eq!(ports.status, Status::Warn);
    assert!(ports.detail.contains("sys/class/tty does not exist"));
}

#[test]
fn root_is_told_to_rerun_as_the_normal_user() {
    let tree = Tree::new();
    tree.accounts(&stranger(&tree), "");
    let root = Identity {
        uid: 0,
        name: Some("root".into()),
        groups: vec![0],
    };
    tree.usb_serial_port("ttyACM0", "16c0", "0483", 0o600);
    tree.node("dev/bus/usb/002/003", 0o600);
    let report = diagnose(&tree.inputs(&root, usb_list(&[("1781:0C9F", 2, 3, None)])));
    assert!(
        only(&report, Check::System)
            .detail
            .contains("Run the doctor again as that user")
    );
    assert_eq!(only(&report, Check::UsbAccess).status, Status::Ok);
    assert!(only(&report, Check::UsbAccess).detail.contains("as root"));
    assert_eq!(only(&report, Check::SerialPorts).status, Status::Ok);
    assert!(
        only(&report, Check::SerialGroup)
            .title
            .contains("running as root")
    );
}

#[test]
fn windows_branch_checks_the_winusb_driver_only() {
    let tree = Tree::new();
    let mut inputs = Inputs::from_tree(
        Platform::Windows,
        tree.root(),
        None,
        usb_list(&[("16C0:05DC", 1, 4, None), ("1B4F:9206", 1, 5, None)]),
    );
    inputs.ports = vec![PortInfo {
        name: "COM3".into(),
        usb: Some(UsbPortInfo {
            id: UsbId::new(0x1B4F, 0x9206),
            serial_number: None,
            manufacturer: None,
            product: None,
        }),
    }];
    let report = diagnose(&inputs);
    let driver = only(&report, Check::UsbDriver);
    assert_eq!(driver.status, Status::Error, "{report}");
    assert!(driver.detail.contains("16C0:05DC"), "{}", driver.detail);
    // The Pro Micro is a serial programmer: Windows' own driver serves it.
    assert!(!driver.detail.contains("1B4F:9206"), "{}", driver.detail);
    assert!(advice(driver).contains("Zadig"));
    assert!(only(&report, Check::SerialPorts).detail.contains("COM3"));
    for linux_only in [
        Check::UdevRules,
        Check::ModemManager,
        Check::SerialGroup,
        Check::UsbAccess,
    ] {
        assert_eq!(report.of(linux_only).count(), 0, "{linux_only:?}");
    }
    assert_eq!(
        only(&report, Check::System).title,
        format!("Windows, ISP Toolbox {}", env!("CARGO_PKG_VERSION"))
    );

    // With the driver, libusb reads the strings.
    inputs.usb = usb_list(&[("16C0:05DC", 1, 4, Some("USBasp"))]);
    let report = diagnose(&inputs);
    assert_eq!(only(&report, Check::UsbDriver).status, Status::Ok);
}

#[test]
fn macos_branch_prefers_cu_ports() {
    let tree = Tree::new();
    let mut inputs = Inputs::from_tree(Platform::Macos, tree.root(), None, usb_list(&[]));
    inputs.ports = ["/dev/cu.usbmodem1101", "/dev/tty.usbmodem1101"]
        .iter()
        .map(|name| PortInfo {
            name: name.to_string(),
            usb: None,
        })
        .collect();
    let report = diagnose(&inputs);
    let ports = only(&report, Check::SerialPorts);
    assert!(
        ports.detail.contains("pick the /dev/cu.* name"),
        "{}",
        ports.detail
    );
    assert_eq!(report.of(Check::UdevRules).count(), 0);
    assert_eq!(report.of(Check::UsbAccess).count(), 0);
}

#[test]
fn garbage_in_the_tree_is_survived() {
    let tree = Tree::new();
    let junk: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    for rel in [
        "etc/group",
        "etc/passwd",
        "proc/version",
        "proc/sys/kernel/osrelease",
        "proc/1/cgroup",
        "proc/1/environ",
        "proc/5/comm",
        "usr/lib/udev/rules.d/60-isp-toolbox.rules",
    ] {
        tree.write(rel, &junk);
    }
    // A tty whose device link dangles and a USB device on bus 0, address 255.
    std::os::unix::fs::symlink(
        "/nonexistent",
        tree.mkdir("sys/class/tty/ttyACM3").join("device"),
    )
    .unwrap();
    let report = diagnose(&tree.inputs(&stranger(&tree), usb_list(&[("1781:0C9F", 0, 255, None)])));
    assert!(report.findings.len() >= 7, "{report}");
    assert_eq!(only(&report, Check::UsbAccess).status, Status::Warn);
}

#[test]
fn report_renders_as_text_and_json() {
    let tree = Tree::new();
    let report = diagnose(&tree.inputs(&stranger(&tree), no_usb("no usbfs")));
    let text = report.to_string();
    assert!(text.starts_with("[ok] Linux"), "{text}");
    assert!(text.contains("[error] No USB subsystem"));
    assert!(text.contains("    1. "));
    assert!(text.ends_with(&format!(
        "{} ok, {} warning(s), 1 error(s)",
        report.count(Status::Ok),
        report.count(Status::Warn)
    )));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["platform"], "linux");
    let first_error = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["status"] == "error")
        .unwrap();
    assert_eq!(first_error["check"], "usb-subsystem");
    assert!(first_error["advice"][0].as_str().unwrap().contains("lsusb"));
    assert!(first_error["detail"].as_str().unwrap().contains("libusb"));
}
