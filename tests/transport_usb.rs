//! USB through an explicit libusb context. No programmer is plugged in here, and this machine
//! may have no USB subsystem at all: both must give clear answers, never a panic.

use isp_toolbox::Error;
use isp_toolbox::catalog::UsbId;
use isp_toolbox::transport::{UsbDeviceLink, UsbFilter, UsbOpenOptions, list_usb_devices};

/// USBasp's id; no such device is connected on a test machine.
const USBASP: UsbId = UsbId::new(0x16C0, 0x05DC);

#[test]
fn listing_devices_gives_a_list_or_a_reason() {
    let list = list_usb_devices();
    eprintln!("USB here: {list:?}");
    match &list.unavailable {
        Some(reason) => {
            assert!(list.devices.is_empty());
            assert!(
                reason.contains("no USB subsystem is accessible")
                    || reason.contains("cannot list USB devices"),
                "{reason}"
            );
        }
        None => {
            // Sorted by bus and address, each printable.
            let places: Vec<(u8, u8)> = list.devices.iter().map(|d| (d.bus, d.address)).collect();
            let mut sorted = places.clone();
            sorted.sort();
            assert_eq!(places, sorted);
            for device in &list.devices {
                assert!(device.to_string().starts_with(&device.id.to_string()));
            }
        }
    }
}

#[test]
fn opening_a_programmer_that_is_not_there_is_an_open_error() {
    let filter = UsbFilter {
        ids: vec![USBASP, UsbId::new(0x03EB, 0xC7B4)],
        manufacturer: Some("www.fischl.de".into()),
        product: Some("USBasp".into()),
    };
    let connected = list_usb_devices();
    if connected.devices.iter().any(|d| filter.ids.contains(&d.id)) {
        eprintln!("a USBasp is connected; skipping the absent-device check");
        return;
    }
    let error = UsbDeviceLink::open(&filter, UsbOpenOptions::default()).unwrap_err();
    eprintln!("{error}\nhint: {}", error.hint().unwrap_or_default());
    match &error {
        Error::Open { port, reason, hint } => {
            assert_eq!(port, "USB 16C0:05DC/03EB:C7B4");
            if connected.unavailable.is_some() {
                assert!(
                    reason.contains("no USB subsystem is accessible"),
                    "{reason}"
                );
            } else {
                assert_eq!(reason, "no such device is connected");
            }
            assert!(!hint.is_empty());
        }
        other => panic!("expected an open error, got {other:?}"),
    }
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn an_empty_filter_is_refused_before_touching_usb() {
    let error = UsbDeviceLink::open(&UsbFilter::default(), UsbOpenOptions::default()).unwrap_err();
    assert!(matches!(error, Error::Invalid(_)), "{error:?}");
}

#[test]
fn default_options_claim_interface_zero_without_detaching() {
    let options = UsbOpenOptions::default();
    assert_eq!(options.claim_interface, Some(0));
    assert!(!options.detach_kernel_driver);
    // Nothing here needs a device: the filter type is plain data.
    let filter = UsbFilter::ids(&[USBASP]);
    assert_eq!(filter.ids, [USBASP]);
    assert_eq!(filter.product, None);
}
