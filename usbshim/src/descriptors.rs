//! The standard descriptors of the emulated device, built from its firmware's [`UsbIdentity`]:
//! the bytes `usb_get_descriptor`/`usb_get_string` return, and the parsed copy libusb keeps in
//! `struct usb_device`.
//!
//! The layout is what V-USB and USBtiny devices report: one configuration (value 1, bus
//! powered, 100 mA) with one interface (number 0, no endpoints) of the firmware's class;
//! strings numbered manufacturer 1, product 2, serial 3 (0 where the firmware has none);
//! US English only.

use isp_toolbox::emulate::usb::UsbIdentity;

use crate::abi::UsbDeviceDescriptor;

/// Descriptor types (USB 2.0 table 9-5).
pub const DT_DEVICE: u8 = 1;
/// Configuration descriptor type.
pub const DT_CONFIG: u8 = 2;
/// String descriptor type.
pub const DT_STRING: u8 = 3;
/// Interface descriptor type.
pub const DT_INTERFACE: u8 = 4;

/// The one language the strings are in (US English).
pub const LANG_EN_US: u16 = 0x0409;

const MANUFACTURER_INDEX: u8 = 1;
const PRODUCT_INDEX: u8 = 2;
const SERIAL_INDEX: u8 = 3;

/// The value of the one configuration.
pub const CONFIGURATION_VALUE: u8 = 1;
/// Configuration attributes: bus powered (bit 7 is reserved and always set).
const CONFIG_ATTRIBUTES: u8 = 0x80;
/// MaxPower in 2 mA units: 100 mA.
const MAX_POWER: u8 = 50;
/// Interface class "vendor specific": devices of this class report it on the device too.
const CLASS_VENDOR: u8 = 0xFF;

/// The descriptors of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptors {
    identity: UsbIdentity,
    packet_size: u8,
}

impl Descriptors {
    /// Descriptors for a device that identifies as `identity` and uses `packet_size`-byte
    /// packets on endpoint 0 (8 at low speed, 64 at full speed).
    pub fn new(identity: UsbIdentity, packet_size: u16) -> Self {
        // bMaxPacketSize0 may only be 8, 16, 32 or 64.
        let packet_size = match packet_size {
            0..=8 => 8,
            9..=16 => 16,
            17..=32 => 32,
            _ => 64,
        };
        Descriptors {
            identity,
            packet_size,
        }
    }

    /// The identity the descriptors come from.
    pub fn identity(&self) -> &UsbIdentity {
        &self.identity
    }

    /// The device descriptor as libusb keeps it in `struct usb_device`.
    pub fn device(&self) -> UsbDeviceDescriptor {
        let id = &self.identity;
        let index_if = |text: &Option<String>, index: u8| if text.is_some() { index } else { 0 };
        UsbDeviceDescriptor {
            bLength: 18,
            bDescriptorType: DT_DEVICE,
            // Low-speed devices (V-USB, USBtiny) say USB 1.1; full-speed ones (HalfKay) 2.0.
            bcdUSB: if self.packet_size == 8 {
                0x0110
            } else {
                0x0200
            },
            bDeviceClass: if id.interface_class == CLASS_VENDOR {
                CLASS_VENDOR
            } else {
                0
            },
            bDeviceSubClass: 0,
            bDeviceProtocol: 0,
            bMaxPacketSize0: self.packet_size,
            idVendor: id.vid,
            idProduct: id.pid,
            bcdDevice: id.bcd_device,
            iManufacturer: index_if(&id.manufacturer, MANUFACTURER_INDEX),
            iProduct: index_if(&id.product, PRODUCT_INDEX),
            iSerialNumber: index_if(&id.serial, SERIAL_INDEX),
            bNumConfigurations: 1,
        }
    }

    /// The device descriptor's 18 bytes, as the device sends them.
    pub fn device_bytes(&self) -> Vec<u8> {
        let d = self.device();
        let mut out = vec![
            d.bLength,
            d.bDescriptorType,
            0,
            0,
            d.bDeviceClass,
            d.bDeviceSubClass,
            d.bDeviceProtocol,
            d.bMaxPacketSize0,
        ];
        out[2..4].copy_from_slice(&{ d.bcdUSB }.to_le_bytes());
        for word in [d.idVendor, d.idProduct, d.bcdDevice] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&[
            d.iManufacturer,
            d.iProduct,
            d.iSerialNumber,
            d.bNumConfigurations,
        ]);
        out
    }

    /// The interface class of interface 0.
    pub fn interface_class(&self) -> u8 {
        self.identity.interface_class
    }

    /// MaxPower of the configuration, in 2 mA units.
    pub fn max_power(&self) -> u8 {
        MAX_POWER
    }

    /// Configuration attributes.
    pub fn config_attributes(&self) -> u8 {
        CONFIG_ATTRIBUTES
    }

    /// The configuration descriptor with its interface descriptor (18 bytes).
    pub fn config_bytes(&self) -> Vec<u8> {
        let total: u16 = 9 + 9;
        let [total_lo, total_hi] = total.to_le_bytes();
        vec![
            9,
            DT_CONFIG,
            total_lo,
            total_hi,
            1, // one interface
            CONFIGURATION_VALUE,
            0, // no configuration string
            CONFIG_ATTRIBUTES,
            MAX_POWER,
            9,
            DT_INTERFACE,
            0, // interface 0
            0, // alternate setting 0
            0, // no endpoints besides endpoint 0
            self.identity.interface_class,
            0,
            0,
            0, // no interface string
        ]
    }

    /// The text of string `index`, if the device has it (index 0 is the language list).
    pub fn string_text(&self, index: u8) -> Option<&str> {
        let id = &self.identity;
        match index {
            MANUFACTURER_INDEX => id.manufacturer.as_deref(),
            PRODUCT_INDEX => id.product.as_deref(),
            SERIAL_INDEX => id.serial.as_deref(),
            _ => None,
        }
    }

    /// String descriptor `index` as the device sends it: the language list for 0, UTF-16LE
    /// text (cut to the 255-byte descriptor limit) otherwise.
    pub fn string_bytes(&self, index: u8) -> Option<Vec<u8>> {
        if index == 0 {
            let [lo, hi] = LANG_EN_US.to_le_bytes();
            return Some(vec![4, DT_STRING, lo, hi]);
        }
        let units: Vec<u16> = self.string_text(index)?.encode_utf16().take(126).collect();
        let mut out = vec![(2 + 2 * units.len()) as u8, DT_STRING];
        out.extend(units.iter().flat_map(|u| u.to_le_bytes()));
        Some(out)
    }

    /// Any descriptor by type and index, as GET_DESCRIPTOR returns it.
    pub fn get(&self, kind: u8, index: u8) -> Option<Vec<u8>> {
        match (kind, index) {
            (DT_DEVICE, 0) => Some(self.device_bytes()),
            (DT_CONFIG, 0) => Some(self.config_bytes()),
            (DT_STRING, _) => self.string_bytes(index),
            _ => None,
        }
    }
}

/// What `usb_get_string_simple` makes of a string descriptor, by libusb-0.1's rule: one byte
/// per UTF-16 unit, `?` for a unit whose high byte is not zero, the low byte otherwise.
pub fn simple_string(descriptor: &[u8]) -> Vec<u8> {
    let len = usize::from(descriptor.first().copied().unwrap_or(0)).min(descriptor.len());
    descriptor
        .get(2..len)
        .unwrap_or(&[])
        .chunks_exact(2)
        .map(|unit| if unit[1] != 0 { b'?' } else { unit[0] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usbtiny_like() -> UsbIdentity {
        UsbIdentity {
            vid: 0x1781,
            pid: 0x0C9F,
            bcd_device: 0x0107,
            manufacturer: None,
            product: Some("USBtinyISP".into()),
            serial: None,
            interface_class: 0xFF,
        }
    }

    #[test]
    fn device_descriptor_bytes_match_the_struct() {
        let d = Descriptors::new(usbtiny_like(), 8);
        assert_eq!(
            d.device_bytes(),
            vec![
                18, 1, 0x10, 0x01, 0xFF, 0, 0, 8, 0x81, 0x17, 0x9F, 0x0C, 0x07, 0x01, 0, 2, 0, 1
            ]
        );
        let parsed = d.device();
        assert_eq!({ parsed.idVendor }, 0x1781);
        assert_eq!({ parsed.idProduct }, 0x0C9F);
        assert_eq!(
            parsed.iManufacturer, 0,
            "USBtiny has no manufacturer string"
        );
    }

    #[test]
    fn hid_device_is_full_speed_with_a_per_interface_class() {
        let mut id = usbtiny_like();
        id.interface_class = 3;
        id.manufacturer = Some("PJRC".into());
        let d = Descriptors::new(id, 64);
        let parsed = d.device();
        assert_eq!(parsed.bDeviceClass, 0);
        assert_eq!(parsed.bMaxPacketSize0, 64);
        assert_eq!({ parsed.bcdUSB }, 0x0200);
        assert_eq!(parsed.iManufacturer, 1);
        assert_eq!(d.config_bytes()[14], 3, "interface class");
    }

    #[test]
    fn strings_are_utf16_and_simple_strings_follow_libusb() {
        let mut id = usbtiny_like();
        id.serial = Some("é✓1".into());
        let d = Descriptors::new(id, 8);
        assert_eq!(d.string_bytes(0), Some(vec![4, 3, 0x09, 0x04]));
        let product = d.string_bytes(2).unwrap();
        assert_eq!(product[0] as usize, product.len());
        assert_eq!(simple_string(&product), b"USBtinyISP");
        // é is U+00E9 (high byte 0, kept as its Latin-1 byte); ✓ is not.
        assert_eq!(
            simple_string(&d.string_bytes(3).unwrap()),
            vec![0xE9, b'?', b'1']
        );
        assert_eq!(d.string_bytes(1), None);
        assert_eq!(d.string_bytes(9), None);
    }

    #[test]
    fn long_strings_fit_one_descriptor() {
        let mut id = usbtiny_like();
        id.product = Some("x".repeat(400));
        let bytes = Descriptors::new(id, 8).string_bytes(2).unwrap();
        assert_eq!(bytes.len(), 254);
        assert_eq!(bytes[0], 254);
    }

    #[test]
    fn simple_string_survives_bad_descriptors() {
        assert!(simple_string(&[]).is_empty());
        assert!(simple_string(&[200, 3, b'a', 0]).len() == 1);
        assert!(simple_string(&[3, 3, b'a']).is_empty());
    }

    #[test]
    fn get_descriptor_by_type() {
        let d = Descriptors::new(usbtiny_like(), 8);
        assert_eq!(d.get(DT_DEVICE, 0).map(|b| b.len()), Some(18));
        assert_eq!(d.get(DT_CONFIG, 0).map(|b| b.len()), Some(18));
        assert_eq!(d.get(DT_CONFIG, 1), None);
        assert_eq!(d.get(0x22, 0), None);
    }
}
