//! USB vendor:product ids as written in the catalogs (`1B4F:9205`).

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// A USB vendor id and product id, written `VVVV:PPPP` in hex (`1B4F:9205`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsbId {
    /// Vendor id.
    pub vid: u16,
    /// Product id.
    pub pid: u16,
}

impl UsbId {
    /// A pair from its two numbers.
    pub const fn new(vid: u16, pid: u16) -> Self {
        UsbId { vid, pid }
    }

    /// Parses `VVVV:PPPP`: exactly four hex digits on each side of the colon, any case.
    pub fn parse(text: &str) -> Option<UsbId> {
        let (vid, pid) = text.trim().split_once(':')?;
        Some(UsbId::new(hex4(vid)?, hex4(pid)?))
    }
}

/// Four hex digits, no prefix, no sign.
fn hex4(text: &str) -> Option<u16> {
    if text.len() != 4 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

impl std::fmt::Display for UsbId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X}:{:04X}", self.vid, self.pid)
    }
}

impl std::str::FromStr for UsbId {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<UsbId> {
        UsbId::parse(text).ok_or_else(|| {
            crate::Error::invalid(format!(
                "'{text}' is not a USB id: write it as VVVV:PPPP in hex, e.g. 1B4F:9205"
            ))
        })
    }
}

impl Serialize for UsbId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for UsbId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UsbId, D::Error> {
        let text = String::deserialize(d)?;
        UsbId::parse(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "'{text}' is not a USB id (want VVVV:PPPP in hex, e.g. 1B4F:9205)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_strict_form() {
        assert_eq!(UsbId::parse("1B4F:9205"), Some(UsbId::new(0x1B4F, 0x9205)));
        assert_eq!(
            UsbId::parse(" 16c0:05dc "),
            Some(UsbId::new(0x16C0, 0x05DC))
        );
        for bad in [
            "1B4F-9205",
            "1B4F:92055",
            "1B4:9205",
            "0x1B4F:9205",
            "G000:0001",
            "",
            ":",
        ] {
            assert_eq!(UsbId::parse(bad), None, "{bad}");
        }
        assert_eq!(UsbId::new(0x03EB, 0x2FF4).to_string(), "03EB:2FF4");
        assert!("nope".parse::<UsbId>().is_err());
    }
}
