//! The bus and device list handed to the program: bus "001" holding, once found, device "001".
//!
//! The structures are leaked on purpose. A libusb-0.1 program keeps pointers into them (the
//! `struct usb_device *` it opened, `dev->filename`, `dev->config`) for as long as it runs,
//! so they must never move or be freed; the shim builds them once per process.

use std::ptr::{NonNull, null_mut};

use crate::abi::{
    UsbBus, UsbConfigDescriptor, UsbDevice, UsbInterface, UsbInterfaceDescriptor, c_path,
};
use crate::descriptors::{CONFIGURATION_VALUE, DT_CONFIG, DT_INTERFACE, Descriptors};

/// The bus directory name (`/dev/bus/usb/001`).
pub const BUS_DIRNAME: &str = "001";
/// The device's address on the bus, also its file name ("001").
pub const DEVICE_NUMBER: u8 = 1;

/// The leaked C structures.
#[derive(Debug)]
pub struct Topology {
    bus: NonNull<UsbBus>,
    device: Option<NonNull<UsbDevice>>,
    listed: bool,
}

// SAFETY: the structures are only written through `Topology`, which lives inside the shim's
// global mutex; the pointers themselves are plain addresses of leaked (never freed) memory.
unsafe impl Send for Topology {}

impl Topology {
    /// Builds bus 001 and, when there is an emulated device, its `struct usb_device` (not yet
    /// listed on the bus).
    pub fn new(descriptors: Option<&Descriptors>) -> Topology {
        let bus: &'static mut UsbBus = Box::leak(Box::new(UsbBus {
            next: null_mut(),
            prev: null_mut(),
            dirname: c_path(BUS_DIRNAME),
            devices: null_mut(),
            location: 1,
            root_dev: null_mut(),
        }));
        let bus = NonNull::from(bus);
        let device = descriptors.map(|d| NonNull::from(leak_device(d, bus.as_ptr())));
        Topology {
            bus,
            device,
            listed: false,
        }
    }

    /// The bus, as `usb_get_busses` returns it.
    pub fn bus(&self) -> *mut UsbBus {
        self.bus.as_ptr()
    }

    /// The device's structure, if there is an emulated device.
    pub fn device(&self) -> Option<*mut UsbDevice> {
        self.device.map(NonNull::as_ptr)
    }

    /// Whether the device is in the bus's device list.
    pub fn is_listed(&self) -> bool {
        self.listed
    }

    /// Puts the device into the bus's device list (plugged in) or takes it out (unplugged).
    /// Its structure stays valid either way: the program may still hold a pointer to it.
    pub fn set_listed(&mut self, listed: bool) {
        let Some(device) = self.device else {
            return;
        };
        let head = if listed { device.as_ptr() } else { null_mut() };
        // SAFETY: `bus` points at the leaked bus built in `new`, which is never freed; the
        // program only reads it, between our calls (libusb-0.1 is not thread-safe either).
        unsafe { (*self.bus.as_ptr()).devices = head };
        self.listed = listed;
    }
}

/// Builds the device with its configuration → interface → alternate setting chain.
fn leak_device(d: &Descriptors, bus: *mut UsbBus) -> &'static mut UsbDevice {
    let altsetting = Box::leak(Box::new(UsbInterfaceDescriptor {
        bLength: 9,
        bDescriptorType: DT_INTERFACE,
        bInterfaceNumber: 0,
        bAlternateSetting: 0,
        bNumEndpoints: 0,
        bInterfaceClass: d.interface_class(),
        bInterfaceSubClass: 0,
        bInterfaceProtocol: 0,
        iInterface: 0,
        endpoint: null_mut(),
        extra: null_mut(),
        extralen: 0,
    }));
    let interface = Box::leak(Box::new(UsbInterface {
        altsetting,
        num_altsetting: 1,
    }));
    let config = Box::leak(Box::new(UsbConfigDescriptor {
        bLength: 9,
        bDescriptorType: DT_CONFIG,
        wTotalLength: d.config_bytes().len() as u16,
        bNumInterfaces: 1,
        bConfigurationValue: CONFIGURATION_VALUE,
        iConfiguration: 0,
        bmAttributes: d.config_attributes(),
        MaxPower: d.max_power(),
        interface,
        extra: null_mut(),
        extralen: 0,
    }));
    Box::leak(Box::new(UsbDevice {
        next: null_mut(),
        prev: null_mut(),
        filename: c_path(&format!("{DEVICE_NUMBER:03}")),
        bus,
        descriptor: d.device(),
        config,
        dev: null_mut(),
        devnum: DEVICE_NUMBER,
        num_children: 0,
        children: null_mut(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use isp_toolbox::emulate::usb::UsbIdentity;
    use std::ffi::CStr;

    fn descriptors() -> Descriptors {
        Descriptors::new(
            UsbIdentity {
                vid: 0x16C0,
                pid: 0x05DC,
                bcd_device: 0x0102,
                manufacturer: Some("www.fischl.de".into()),
                product: Some("USBasp".into()),
                serial: None,
                interface_class: 0xFF,
            },
            8,
        )
    }

    #[test]
    fn device_appears_on_bus_001_when_listed() {
        let mut t = Topology::new(Some(&descriptors()));
        // SAFETY (test): reading the leaked structures the way a C program does.
        unsafe {
            let bus = &*t.bus();
            assert_eq!(CStr::from_ptr(bus.dirname.as_ptr()).to_str(), Ok("001"));
            assert!(bus.devices.is_null(), "not listed before usb_find_devices");
            t.set_listed(true);
            let dev = &*(*t.bus()).devices;
            assert_eq!(CStr::from_ptr(dev.filename.as_ptr()).to_str(), Ok("001"));
            assert_eq!(dev.bus, t.bus());
            assert_eq!({ dev.descriptor.idVendor }, 0x16C0);
            assert_eq!(dev.devnum, 1);
            let config = &*dev.config;
            assert_eq!(config.bConfigurationValue, 1);
            let alt = &*(*config.interface).altsetting;
            assert_eq!(alt.bInterfaceClass, 0xFF);
            assert!(alt.endpoint.is_null());
            t.set_listed(false);
            assert!((*t.bus()).devices.is_null());
        }
    }

    #[test]
    fn no_device_leaves_the_bus_empty() {
        let mut t = Topology::new(None);
        t.set_listed(true);
        assert!(t.device().is_none());
        assert!(!t.is_listed());
    }
}
