//! Standard requests as V-USB (`usbdrv.c`) answers them with the USBasp's `usbconfig.h`:
//! VID:PID 16C0:05DC, bcdDevice 1.04, vendor-class device, manufacturer "www.fischl.de",
//! product "USBasp", no serial, bus powered at 50 mA, one interface (class 0) without
//! endpoints. Unknown descriptors and requests are answered with no data, never a stall.

use crate::emulate::usb::string_descriptor;

/// Vendor id (VOTI, shared through Objective Development).
pub const VID: u16 = 0x16C0;
/// Product id (Objective Development's free vendor-class PID).
pub const PID: u16 = 0x05DC;
/// bcdDevice (`USB_CFG_DEVICE_VERSION` 0x04, 0x01).
pub const BCD_DEVICE: u16 = 0x0104;
/// `USB_CFG_VENDOR_NAME`.
pub const MANUFACTURER: &str = "www.fischl.de";
/// `USB_CFG_DEVICE_NAME`.
pub const PRODUCT: &str = "USBasp";
/// `USB_CFG_MAX_BUS_POWER` in mA.
const MAX_POWER_MA: u8 = 50;

const GET_STATUS: u8 = 0;
const GET_DESCRIPTOR: u8 = 6;
const GET_CONFIGURATION: u8 = 8;
const GET_INTERFACE: u8 = 10;

/// The reply to a standard request, before the wLength limit.
pub fn answer(setup: &[u8; 8], configuration: u8) -> Vec<u8> {
    match setup[1] {
        GET_STATUS => vec![0, 0],
        GET_DESCRIPTOR => descriptor(setup[3], setup[2]),
        GET_CONFIGURATION => vec![configuration],
        GET_INTERFACE => vec![0],
        _ => Vec::new(),
    }
}

fn descriptor(kind: u8, index: u8) -> Vec<u8> {
    match (kind, index) {
        (1, _) => device_descriptor().to_vec(),
        (2, _) => config_descriptor().to_vec(),
        (3, 0) => vec![4, 3, 0x09, 0x04],
        (3, 1) => string_descriptor(MANUFACTURER),
        (3, 2) => string_descriptor(PRODUCT),
        _ => Vec::new(),
    }
}

#[rustfmt::skip]
fn device_descriptor() -> [u8; 18] {
    let [vid_lo, vid_hi] = VID.to_le_bytes();
    let [pid_lo, pid_hi] = PID.to_le_bytes();
    let [bcd_lo, bcd_hi] = BCD_DEVICE.to_le_bytes();
    [
        18, 1, 0x10, 0x01, // bLength, DEVICE, bcdUSB 1.10
        0xFF, 0, 0, 8, // vendor class, subclass, protocol, bMaxPacketSize0
        vid_lo, vid_hi, pid_lo, pid_hi, bcd_lo, bcd_hi, //
        1, 2, 0, 1, // iManufacturer, iProduct, no serial, one configuration
    ]
}

#[rustfmt::skip]
fn config_descriptor() -> [u8; 18] {
    [
        9, 2, 18, 0, // CONFIGURATION, wTotalLength 18
        1, 1, 0, 0x80, // one interface, value 1, no string, bus powered
        MAX_POWER_MA / 2, // MaxPower in 2 mA units
        9, 4, 0, 0, // INTERFACE 0, alternate setting 0
        0, 0, 0, 0, 0, // no endpoints, class 0, no string
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_descriptor(kind: u8, index: u8) -> Vec<u8> {
        answer(&[0x80, GET_DESCRIPTOR, index, kind, 0, 0, 0xFF, 0], 1)
    }

    #[test]
    fn descriptors_identify_a_usbasp() {
        let device = get_descriptor(1, 0);
        assert_eq!(&device[8..14], &[0xC0, 0x16, 0xDC, 0x05, 0x04, 0x01]);
        assert_eq!(device[4], 0xFF, "vendor-class device");
        let config = get_descriptor(2, 0);
        assert_eq!(config.len(), usize::from(config[2]));
        assert_eq!(config[8], 25);
        let vendor = get_descriptor(3, 1);
        assert_eq!(vendor.len(), 2 + 2 * MANUFACTURER.len());
        assert_eq!(get_descriptor(3, 2).len(), 2 + 2 * PRODUCT.len());
        assert!(get_descriptor(3, 3).is_empty(), "no serial number");
        assert_eq!(
            answer(&[0x80, GET_CONFIGURATION, 0, 0, 0, 0, 1, 0], 0),
            vec![0]
        );
    }
}
