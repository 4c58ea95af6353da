//! SHA-256 digests as written in the catalogs: 64 hex digits, or `null` when unknown.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// A SHA-256 digest.
pub type Sha256 = [u8; 32];

/// Parses 64 hex digits (any case) into a digest.
pub fn parse_sha256(text: &str) -> Option<Sha256> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Formats a digest as 64 lowercase hex digits (the form `sha256sum` prints).
pub fn sha256_hex(digest: &Sha256) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// serde helper for `Option<Sha256>` written as a hex string or `null`.
pub(crate) mod opt_sha256 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Sha256>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&sha256_hex(d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Sha256>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => parse_sha256(&text).map(Some).ok_or_else(|| {
                D::Error::custom(format!("'{text}' is not a SHA-256 (want 64 hex digits)"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_text() {
        let text = "4936aff3d5c2181bbe41b6231fcb6787c5d4a40221ea08563c152439db4bc8d9";
        let digest = parse_sha256(text).unwrap();
        assert_eq!(digest[0], 0x49);
        assert_eq!(sha256_hex(&digest), text);
        assert_eq!(parse_sha256(&text.to_uppercase()), Some(digest));
        assert_eq!(parse_sha256(&text[1..]), None);
        assert_eq!(parse_sha256(&format!("{}zz", &text[2..])), None);
        // Multi-byte characters must not panic on the byte slicing.
        assert_eq!(parse_sha256(&"é".repeat(32)), None);
    }
}
