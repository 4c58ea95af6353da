//! Small helpers shared across the engine.

pub mod hexnum;
pub mod timestamp;

/// Formats bytes as `1E 95 87`.
pub fn hex_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a number written as `0x1F`, `$1F`, `1Fh`, `0b0101` or decimal.
pub fn parse_number(text: &str) -> Option<u64> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("0x").or_else(|| lower.strip_prefix('$')) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(h) = lower.strip_suffix('h') {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else {
        lower.parse().ok()
    }
}

/// Parses a byte value (see [`parse_number`]).
pub fn parse_byte(text: &str) -> Option<u8> {
    parse_number(text).and_then(|n| u8::try_from(n).ok())
}

/// Parses a signature written as `1E 95 87`, `1e9587` or `0x1e9587`.
pub fn parse_signature(text: &str) -> Option<[u8; 3]> {
    let compact: String = text
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if compact.len() != 6 || !compact.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&compact[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_notation() {
        assert_eq!(parse_byte("0xFF"), Some(0xFF));
        assert_eq!(parse_byte("0Xd8"), Some(0xD8));
        assert_eq!(parse_byte("$5e"), Some(0x5E));
        assert_eq!(parse_byte("5Eh"), Some(0x5E));
        assert_eq!(parse_byte("0b1111"), Some(0x0F));
        assert_eq!(parse_byte("203"), Some(203));
        assert_eq!(parse_byte("256"), None);
        assert_eq!(parse_byte("0xZZ"), None);
        assert_eq!(parse_byte(""), None);
        assert_eq!(hex_bytes(&[0x1E, 0x95, 0x87]), "1E 95 87");
    }
}
