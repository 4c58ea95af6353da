//! The emulated USB programmer firmwares the shim can present.

use isp_toolbox::emulate::halfkay::HalfKayFirmware;
use isp_toolbox::emulate::usb::UsbFirmware;
use isp_toolbox::emulate::usbasp::{UsbAspFirmware, UsbAspVariant};
use isp_toolbox::emulate::usbtiny::UsbTinyFirmware;
use isp_toolbox::{Error, Result};

/// One emulated firmware, chosen by `ISP_TOOLBOX_SHIM_DEVICE` (`NAME[:VARIANT]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// The Adafruit USBtinyISP (`usbtiny`).
    UsbTiny,
    /// The Teensy 2.0's HalfKay bootloader (`halfkay`); the socket's chip is the Teensy's own.
    HalfKay,
    /// Thomas Fischl's USBasp: `usbasp` (2011 firmware), `usbasp:old` (2007, no SCK setting),
    /// `usbasp:3mhz` (UsbAsp-flash's 3 MHz option), `usbasp:slow` (the slow-SCK jumper set).
    UsbAsp(UsbAspVariant),
}

impl DeviceKind {
    /// The names `ISP_TOOLBOX_SHIM_DEVICE` accepts.
    pub const NAMES: &'static [&'static str] = &[
        "usbtiny",
        "halfkay",
        "usbasp",
        "usbasp:old",
        "usbasp:3mhz",
        "usbasp:slow",
    ];

    /// Parses `NAME[:VARIANT]`, ignoring case.
    pub fn parse(spec: &str) -> Result<DeviceKind> {
        let spec = spec.trim().to_ascii_lowercase();
        let (name, variant) = match spec.split_once(':') {
            Some((name, variant)) => (name, Some(variant)),
            None => (spec.as_str(), None),
        };
        if name == "usbasp" {
            let variant = match variant {
                None => UsbAspVariant::default(),
                Some("old") => UsbAspVariant::old_firmware(),
                Some("3mhz") => UsbAspVariant {
                    three_mhz: true,
                    ..UsbAspVariant::default()
                },
                Some("slow") => UsbAspVariant {
                    slow_jumper: true,
                    ..UsbAspVariant::default()
                },
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "usbasp has the variants old, 3mhz and slow (got '{other}')"
                    )));
                }
            };
            return Ok(DeviceKind::UsbAsp(variant));
        }
        let kind = match name {
            "usbtiny" => DeviceKind::UsbTiny,
            "halfkay" => DeviceKind::HalfKay,
            _ => {
                return Err(Error::Unknown {
                    what: "emulated USB device",
                    name: name.to_string(),
                    known: Self::NAMES.iter().map(|n| n.to_string()).collect(),
                });
            }
        };
        match variant {
            None => Ok(kind),
            Some(variant) => Err(Error::invalid(format!(
                "{name} has no variants (got '{variant}')"
            ))),
        }
    }

    /// The firmware after power-up.
    pub fn build(self) -> Box<dyn UsbFirmware> {
        match self {
            DeviceKind::UsbTiny => Box::new(UsbTinyFirmware::new()),
            DeviceKind::HalfKay => Box::new(HalfKayFirmware::new(None)),
            DeviceKind::UsbAsp(variant) => Box::new(UsbAspFirmware::new(variant)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_refuses_unknown_ones() {
        assert_eq!(DeviceKind::parse(" USBtiny ").unwrap(), DeviceKind::UsbTiny);
        let unknown = DeviceKind::parse("stk500").unwrap_err();
        assert!(unknown.to_string().contains("stk500"));
        assert!(unknown.hint().unwrap_or_default().contains("usbtiny"));
        assert!(DeviceKind::parse("usbtiny:fast").is_err());
        assert_eq!(
            DeviceKind::parse("usbasp:old").unwrap(),
            DeviceKind::UsbAsp(UsbAspVariant::old_firmware())
        );
        assert!(DeviceKind::parse("usbasp:turbo").is_err());
    }

    #[test]
    fn builds_the_named_firmware() {
        let firmware = DeviceKind::UsbTiny.build();
        assert_eq!(firmware.identity().vid, 0x1781);
        assert_eq!(firmware.identity().pid, 0x0C9F);
        let halfkay = DeviceKind::parse("HalfKay").unwrap().build();
        assert_eq!(
            (halfkay.identity().vid, halfkay.identity().pid),
            (0x16C0, 0x0478)
        );
        assert_eq!(
            halfkay.identity().interface_class,
            0x03,
            "HID: usbhid binds to it"
        );
        let usbasp = DeviceKind::parse("usbasp").unwrap().build().identity();
        assert_eq!((usbasp.vid, usbasp.pid), (0x16C0, 0x05DC));
        assert_eq!(usbasp.manufacturer.as_deref(), Some("www.fischl.de"));
        assert_eq!(usbasp.product.as_deref(), Some("USBasp"));
    }
}
