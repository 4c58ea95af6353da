//! Standard requests as the USBtiny USB driver (`usb.c`, 2006-2010) answers them, with the
//! Adafruit USBtinyISP configuration (`usbtiny.h`): VID:PID 1781:0C9F, bcdDevice 1.07, no
//! manufacturer or serial string, product "USBtinyISP", 100 mA bus powered, one vendor-class
//! interface without endpoints. The driver never stalls: anything it does not know is answered
//! with no data.

/// Vendor id (allocated to the USBtinyISP project; the PocketAVR uses it too).
pub const VID: u16 = 0x1781;
/// Product id.
pub const PID: u16 = 0x0C9F;
/// bcdDevice (`USBTINY_DEVICE_VERSION`).
pub const BCD_DEVICE: u16 = 0x0107;
/// The product string (`USBTINY_DEVICE_NAME`); the vendor name is commented out in the
/// configuration, so there is no manufacturer string.
pub const PRODUCT: &str = "USBtinyISP";
/// String index of the product (the driver numbers vendor 1, device 2, serial 3).
const PRODUCT_INDEX: u8 = 2;
/// `USBTINY_MAX_POWER` in mA.
const MAX_POWER_MA: u8 = 100;

use crate::emulate::usb::string_descriptor;

const GET_STATUS: u8 = 0;
const GET_DESCRIPTOR: u8 = 6;
const GET_CONFIGURATION: u8 = 8;
const GET_INTERFACE: u8 = 10;

/// The reply to a standard request, before the host's wLength limit.
pub fn answer(setup: &[u8; 8]) -> Vec<u8> {
    match setup[1] {
        // Bus powered (MAX_POWER != 0): never self-powered, no remote wakeup.
        GET_STATUS => vec![0, 0],
        GET_DESCRIPTOR => descriptor(setup[3], setup[2]),
        GET_CONFIGURATION => vec![1],
        GET_INTERFACE => vec![0],
        // SET_ADDRESS, SET_CONFIGURATION and everything else: accepted, no data.
        _ => Vec::new(),
    }
}

fn descriptor(kind: u8, index: u8) -> Vec<u8> {
    match (kind, index) {
        (1, _) => device_descriptor().to_vec(),
        (2, _) => config_descriptor().to_vec(),
        (3, 0) => vec![4, 3, 0x09, 0x04],
        (3, PRODUCT_INDEX) => string_descriptor(PRODUCT),
        _ => Vec::new(),
    }
}

#[rustfmt::skip]
fn device_descriptor() -> [u8; 18] {
    let [vid_lo, vid_hi] = VID.to_le_bytes();
    let [pid_lo, pid_hi] = PID.to_le_bytes();
    let [bcd_lo, bcd_hi] = BCD_DEVICE.to_le_bytes();
    [
        18, 1, 0x01, 0x01, // bLength, DEVICE, bcdUSB 1.01
        0xFF, 0, 0, 8, // vendor class, subclass, protocol, bMaxPacketSize0
        vid_lo, vid_hi, pid_lo, pid_hi, bcd_lo, bcd_hi, //
        0, PRODUCT_INDEX, 0, 1, // iManufacturer, iProduct, iSerialNumber, configurations
    ]
}

#[rustfmt::skip]
fn config_descriptor() -> [u8; 18] {
    [
        9, 2, 18, 0, // CONFIGURATION, wTotalLength 18
        1, 1, 0, 0x80, // one interface, value 1, no string, bus powered
        MAX_POWER_MA.div_ceil(2), // MaxPower in 2 mA units
        9, 4, 0, 0, // INTERFACE 0, alternate setting 0
        0, 0xFF, 0, 0, 0, // no endpoints, vendor class, no string
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_descriptor(kind: u8, index: u8) -> Vec<u8> {
        answer(&[0x80, GET_DESCRIPTOR, index, kind, 0, 0, 0xFF, 0])
    }

    #[test]
    fn descriptors_identify_a_usbtinyisp() {
        let device = get_descriptor(1, 0);
        assert_eq!(device.len(), 18);
        assert_eq!(&device[8..14], &[0x81, 0x17, 0x9F, 0x0C, 0x07, 0x01]);
        let config = get_descriptor(2, 0);
        assert_eq!(config.len(), usize::from(config[2]));
        assert_eq!(config[8], 50, "MaxPower in 2 mA units");
        let product = get_descriptor(3, 2);
        assert_eq!(product[0] as usize, product.len());
        assert_eq!(product.len(), 22);
        assert!(get_descriptor(3, 1).is_empty(), "no manufacturer string");
        assert_eq!(answer(&[0x80, GET_STATUS, 0, 0, 0, 0, 2, 0]), vec![0, 0]);
        assert!(answer(&[0x00, 9, 1, 0, 0, 0, 0, 0]).is_empty());
    }
}
