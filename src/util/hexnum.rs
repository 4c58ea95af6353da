//! serde helpers for numbers written as hex strings in the JSON data (`"0x1E"`), which also
//! accept plain JSON numbers.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    Int(u64),
    Text(String),
}

fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Num::deserialize(d)? {
        Num::Int(n) => Ok(n),
        Num::Text(s) => super::parse_number(&s)
            .ok_or_else(|| D::Error::custom(format!("'{s}' is not a number"))),
    }
}

/// A `u8` as `"0xNN"`.
pub mod u8 {
    use super::*;
    /// Serialize as `0xNN`.
    pub fn serialize<S: Serializer>(v: &u8, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{v:02X}"))
    }
    /// Deserialize from a hex string or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        let n = parse(d)?;
        ::core::primitive::u8::try_from(n)
            .map_err(|_| D::Error::custom(format!("{n} does not fit a byte")))
    }
}

/// An optional `u8` as `"0xNN"`.
pub mod opt_u8 {
    use super::*;
    /// Serialize as `0xNN`.
    pub fn serialize<S: Serializer>(v: &Option<u8>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format!("0x{v:02X}")),
            None => s.serialize_none(),
        }
    }
    /// Deserialize from a hex string or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
        super::u8::deserialize(d).map(Some)
    }
}

/// A `u32` as `"0xNNNN"`.
pub mod u32 {
    use super::*;
    /// Serialize as `0xNNNN`.
    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{v:04X}"))
    }
    /// Deserialize from a hex string or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = parse(d)?;
        ::core::primitive::u32::try_from(n).map_err(|_| D::Error::custom(format!("{n} is too big")))
    }
}

/// Three bytes written as `"1E 95 87"`.
pub mod bytes3 {
    use super::*;
    /// Serialize as `1E 95 87`.
    pub fn serialize<S: Serializer>(v: &[u8; 3], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::util::hex_bytes(v))
    }
    /// Deserialize from `1E 95 87` or `0x1E9587`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 3], D::Error> {
        let text = String::deserialize(d)?;
        crate::util::parse_signature(&text)
            .ok_or_else(|| D::Error::custom(format!("'{text}' is not a 3-byte signature")))
    }
}
