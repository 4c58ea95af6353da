//! Serial port enumeration from a fake Linux sysfs tree: USB ids for the port picker without
//! libudev.

use std::fs;
use std::path::{Path, PathBuf};

use isp_toolbox::catalog::UsbId;
use isp_toolbox::transport::{PortInfo, UsbPortInfo, ports_from_sysfs};

/// Writes `attrs` (name, content with a trailing newline as sysfs has it) into `dir`.
fn device_dir(dir: &Path, attrs: &[(&str, &str)]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    for (name, value) in attrs {
        fs::write(dir.join(name), format!("{value}\n")).unwrap();
    }
    dir.to_path_buf()
}

/// A tty class entry whose `device` link points at `device` (or none).
#[cfg(unix)]
fn tty(sys: &Path, name: &str, device: Option<&Path>, attrs: &[(&str, &str)]) {
    let dir = device_dir(&sys.join("class/tty").join(name), attrs);
    if let Some(device) = device {
        std::os::unix::fs::symlink(device, dir.join("device")).unwrap();
    }
}

#[cfg(unix)]
#[test]
fn usb_ids_and_strings_come_from_the_usb_device_above_the_tty() {
    let root = tempfile::tempdir().unwrap();
    let sys = root.path().join("sys");
    let dev = root.path().join("dev");
    fs::create_dir_all(&dev).unwrap();
    let usb_bus = sys.join("devices/pci0000:00/0000:00:14.0/usb1");

    // CDC ACM (a Pro Micro running ArduinoISP): the tty's device is the USB interface.
    let pro_micro = device_dir(
        &usb_bus.join("1-2"),
        &[
            ("idVendor", "1b4f"),
            ("idProduct", "9206"),
            ("manufacturer", "SparkFun"),
            ("product", "SparkFun Pro Micro"),
            ("busnum", "1"),
        ],
    );
    let acm_interface = device_dir(&pro_micro.join("1-2:1.0"), &[("bInterfaceNumber", "00")]);
    tty(&sys, "ttyACM0", Some(&acm_interface), &[]);

    // usb-serial (a CH340 adapter): one more level, the usb-serial port under the interface.
    let ch340 = device_dir(
        &usb_bus.join("1-3"),
        &[
            ("idVendor", "1a86"),
            ("idProduct", "7523"),
            ("product", "USB Serial"),
            ("serial", "  "),
        ],
    );
    let ch340_port = device_dir(&ch340.join("1-3:1.0/ttyUSB0"), &[]);
    tty(&sys, "ttyUSB0", Some(&ch340_port), &[]);

    // A motherboard UART that exists, and an 8250 placeholder without one.
    let uart = device_dir(&sys.join("devices/pnp0/00:00/00:00:0/00:00:0.0"), &[]);
    tty(&sys, "ttyS0", Some(&uart), &[("type", "4")]);
    let placeholder = device_dir(&sys.join("devices/platform/serial8250/ttyS1"), &[]);
    tty(&sys, "ttyS1", Some(&placeholder), &[("type", "0")]);

    // A virtual console (no device), a port without a /dev node, and one with a corrupt id.
    tty(&sys, "tty0", None, &[]);
    let gone = device_dir(&usb_bus.join("1-4/1-4:1.0"), &[]);
    tty(&sys, "ttyACM1", Some(&gone), &[]);
    let corrupt = device_dir(
        &usb_bus.join("1-5"),
        &[("idVendor", "zzzz"), ("idProduct", "0001")],
    );
    let corrupt_interface = device_dir(&corrupt.join("1-5:1.0"), &[]);
    tty(&sys, "ttyACM10", Some(&corrupt_interface), &[]);

    for node in ["ttyACM0", "ttyACM10", "ttyUSB0", "ttyS0", "ttyS1", "tty0"] {
        fs::write(dev.join(node), "").unwrap();
    }

    let ports = ports_from_sysfs(&sys.join("class/tty"), &dev);
    let name = |node: &str| dev.join(node).to_string_lossy().into_owned();
    assert_eq!(
        ports,
        [
            PortInfo {
                name: name("ttyACM0"),
                usb: Some(UsbPortInfo {
                    id: UsbId::new(0x1B4F, 0x9206),
                    serial_number: None,
                    manufacturer: Some("SparkFun".into()),
                    product: Some("SparkFun Pro Micro".into()),
                }),
            },
            // Listed (it is a port) but without USB details: its id does not parse.
            PortInfo {
                name: name("ttyACM10"),
                usb: None,
            },
            PortInfo {
                name: name("ttyS0"),
                usb: None,
            },
            PortInfo {
                name: name("ttyUSB0"),
                usb: Some(UsbPortInfo {
                    id: UsbId::new(0x1A86, 0x7523),
                    serial_number: None,
                    manufacturer: None,
                    product: Some("USB Serial".into()),
                }),
            },
        ]
    );
    assert_eq!(ports[0].usb_id(), Some(UsbId::new(0x1B4F, 0x9206)));
    assert_eq!(
        ports[0].to_string(),
        format!(
            "{} (1B4F:9206 SparkFun SparkFun Pro Micro)",
            name("ttyACM0")
        )
    );
    assert_eq!(ports[2].to_string(), name("ttyS0"));
}

#[test]
fn a_machine_without_sysfs_has_no_ports_rather_than_a_panic() {
    let root = tempfile::tempdir().unwrap();
    assert!(ports_from_sysfs(&root.path().join("no/class/tty"), root.path()).is_empty());
}

#[test]
fn listing_the_real_ports_never_fails() {
    // Whatever this machine has; every entry names a node that exists.
    for port in isp_toolbox::transport::list_ports() {
        assert!(!port.name.is_empty());
        if cfg!(target_os = "linux") {
            assert!(Path::new(&port.name).exists(), "{}", port.name);
        }
    }
}
