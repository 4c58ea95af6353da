//! The C structures of libusb-0.1's `<usb.h>` (libusb 0.1.12, as Debian ships it), field for
//! field: the program reads them directly (`bus->devices`, `dev->descriptor.idVendor`,
//! `dev->filename`), so their layout is the contract. The tests pin every offset a program
//! reads to what gcc computes from the header on x86-64 Linux.

use std::ffi::{c_char, c_int, c_uchar, c_void};

/// `LIBUSB_PATH_MAX`: `PATH_MAX` (4096 on Linux); `filename` and `dirname` hold one more byte.
pub const PATH_MAX: usize = 4096;

/// `struct usb_device_descriptor` (packed, 18 bytes).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_snake_case, missing_docs)]
pub struct UsbDeviceDescriptor {
    pub bLength: u8,
    pub bDescriptorType: u8,
    pub bcdUSB: u16,
    pub bDeviceClass: u8,
    pub bDeviceSubClass: u8,
    pub bDeviceProtocol: u8,
    pub bMaxPacketSize0: u8,
    pub idVendor: u16,
    pub idProduct: u16,
    pub bcdDevice: u16,
    pub iManufacturer: u8,
    pub iProduct: u8,
    pub iSerialNumber: u8,
    pub bNumConfigurations: u8,
}

/// `struct usb_endpoint_descriptor`.
#[repr(C)]
#[derive(Debug)]
#[allow(non_snake_case, missing_docs)]
pub struct UsbEndpointDescriptor {
    pub bLength: u8,
    pub bDescriptorType: u8,
    pub bEndpointAddress: u8,
    pub bmAttributes: u8,
    pub wMaxPacketSize: u16,
    pub bInterval: u8,
    pub bRefresh: u8,
    pub bSynchAddress: u8,
    pub extra: *mut c_uchar,
    pub extralen: c_int,
}

/// `struct usb_interface_descriptor` (one alternate setting).
#[repr(C)]
#[derive(Debug)]
#[allow(non_snake_case, missing_docs)]
pub struct UsbInterfaceDescriptor {
    pub bLength: u8,
    pub bDescriptorType: u8,
    pub bInterfaceNumber: u8,
    pub bAlternateSetting: u8,
    pub bNumEndpoints: u8,
    pub bInterfaceClass: u8,
    pub bInterfaceSubClass: u8,
    pub bInterfaceProtocol: u8,
    pub iInterface: u8,
    pub endpoint: *mut UsbEndpointDescriptor,
    pub extra: *mut c_uchar,
    pub extralen: c_int,
}

/// `struct usb_interface`: the alternate settings of one interface.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct UsbInterface {
    pub altsetting: *mut UsbInterfaceDescriptor,
    pub num_altsetting: c_int,
}

/// `struct usb_config_descriptor`.
#[repr(C)]
#[derive(Debug)]
#[allow(non_snake_case, missing_docs)]
pub struct UsbConfigDescriptor {
    pub bLength: u8,
    pub bDescriptorType: u8,
    pub wTotalLength: u16,
    pub bNumInterfaces: u8,
    pub bConfigurationValue: u8,
    pub iConfiguration: u8,
    pub bmAttributes: u8,
    pub MaxPower: u8,
    pub interface: *mut UsbInterface,
    pub extra: *mut c_uchar,
    pub extralen: c_int,
}

/// `struct usb_device`.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct UsbDevice {
    pub next: *mut UsbDevice,
    pub prev: *mut UsbDevice,
    pub filename: [c_char; PATH_MAX + 1],
    pub bus: *mut UsbBus,
    pub descriptor: UsbDeviceDescriptor,
    pub config: *mut UsbConfigDescriptor,
    /// Darwin only; always null.
    pub dev: *mut c_void,
    pub devnum: u8,
    pub num_children: c_uchar,
    pub children: *mut *mut UsbDevice,
}

/// `struct usb_bus`.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct UsbBus {
    pub next: *mut UsbBus,
    pub prev: *mut UsbBus,
    pub dirname: [c_char; PATH_MAX + 1],
    pub devices: *mut UsbDevice,
    pub location: u32,
    pub root_dev: *mut UsbDevice,
}

/// Copies `text` into a NUL-terminated `char` array (cut to fit).
pub fn c_path<const N: usize>(text: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (slot, byte) in out.iter_mut().zip(text.bytes().take(N.saturating_sub(1))) {
        *slot = byte as c_char;
    }
    out
}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    // Offsets and sizes printed by a C program built with gcc against Debian's
    // /usr/include/usb.h (libusb-dev 2:0.1.12-32) on x86-64.
    #[test]
    fn device_and_bus_match_usb_h() {
        assert_eq!(size_of::<UsbDevice>(), 4184);
        assert_eq!(offset_of!(UsbDevice, prev), 8);
        assert_eq!(offset_of!(UsbDevice, filename), 16);
        assert_eq!(offset_of!(UsbDevice, bus), 4120);
        assert_eq!(offset_of!(UsbDevice, descriptor), 4128);
        assert_eq!(offset_of!(UsbDevice, config), 4152);
        assert_eq!(offset_of!(UsbDevice, dev), 4160);
        assert_eq!(offset_of!(UsbDevice, devnum), 4168);
        assert_eq!(offset_of!(UsbDevice, num_children), 4169);
        assert_eq!(offset_of!(UsbDevice, children), 4176);

        assert_eq!(size_of::<UsbBus>(), 4144);
        assert_eq!(offset_of!(UsbBus, dirname), 16);
        assert_eq!(offset_of!(UsbBus, devices), 4120);
        assert_eq!(offset_of!(UsbBus, location), 4128);
        assert_eq!(offset_of!(UsbBus, root_dev), 4136);
    }

    #[test]
    fn descriptors_match_usb_h() {
        assert_eq!(size_of::<UsbDeviceDescriptor>(), 18);
        assert_eq!(offset_of!(UsbDeviceDescriptor, idVendor), 8);
        assert_eq!(offset_of!(UsbDeviceDescriptor, idProduct), 10);
        assert_eq!(offset_of!(UsbDeviceDescriptor, bNumConfigurations), 17);

        assert_eq!(size_of::<UsbConfigDescriptor>(), 40);
        assert_eq!(offset_of!(UsbConfigDescriptor, wTotalLength), 2);
        assert_eq!(offset_of!(UsbConfigDescriptor, MaxPower), 8);
        assert_eq!(offset_of!(UsbConfigDescriptor, interface), 16);
        assert_eq!(offset_of!(UsbConfigDescriptor, extra), 24);
        assert_eq!(offset_of!(UsbConfigDescriptor, extralen), 32);

        assert_eq!(size_of::<UsbInterface>(), 16);
        assert_eq!(offset_of!(UsbInterface, num_altsetting), 8);

        assert_eq!(size_of::<UsbInterfaceDescriptor>(), 40);
        assert_eq!(offset_of!(UsbInterfaceDescriptor, iInterface), 8);
        assert_eq!(offset_of!(UsbInterfaceDescriptor, endpoint), 16);
        assert_eq!(offset_of!(UsbInterfaceDescriptor, extra), 24);
        assert_eq!(offset_of!(UsbInterfaceDescriptor, extralen), 32);

        assert_eq!(size_of::<UsbEndpointDescriptor>(), 32);
        assert_eq!(offset_of!(UsbEndpointDescriptor, wMaxPacketSize), 4);
        assert_eq!(offset_of!(UsbEndpointDescriptor, bInterval), 6);
        assert_eq!(offset_of!(UsbEndpointDescriptor, extra), 16);
        assert_eq!(offset_of!(UsbEndpointDescriptor, extralen), 24);
    }

    #[test]
    fn paths_are_terminated_and_cut_to_fit() {
        let short: [c_char; 8] = c_path("001");
        assert_eq!(
            &short[..4],
            &[b'0' as c_char, b'0' as c_char, b'1' as c_char, 0]
        );
        let cut: [c_char; 4] = c_path("abcdef");
        assert_eq!(cut, [b'a' as c_char, b'b' as c_char, b'c' as c_char, 0]);
    }
}
