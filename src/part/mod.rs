//! The part database: every MCU ISP Toolbox can program, loaded from `assets/parts.json`.
//!
//! The JSON is embedded in the binary and validated the first time [`PartDb::builtin`] is called,
//! so a bad edit to the data fails at start-up (and in `cargo test`), never halfway through a job.

mod decode;
mod schema;

pub use decode::{DecodedField, TargetClock, decode_byte};
pub use schema::{
    BootSection, ClockSource, FieldValue, FuseBitfield, FuseByte, FuseKind, IspPin, IspSignal,
    MemoryLayout, Package, Part, Risk, Stk500Params, Timing,
};

use crate::error::{Error, Result};
use std::sync::OnceLock;

const PARTS_JSON: &str = include_str!("../../assets/parts.json");

/// All known parts.
#[derive(Debug)]
pub struct PartDb {
    parts: Vec<Part>,
}

#[derive(serde::Deserialize)]
struct PartsFile {
    parts: Vec<Part>,
}

impl PartDb {
    /// The built-in database, parsed and validated once.
    pub fn builtin() -> Result<&'static PartDb> {
        static DB: OnceLock<std::result::Result<PartDb, String>> = OnceLock::new();
        DB.get_or_init(|| {
            PartDb::from_json(PARTS_JSON).map_err(|e| match e {
                Error::Data { reason, .. } => reason,
                other => other.to_string(),
            })
        })
        .as_ref()
        .map_err(|reason| Error::Data {
            file: "assets/parts.json",
            reason: reason.clone(),
        })
    }

    /// Parses and validates a parts file (used for the built-in data and by tests).
    pub fn from_json(json: &str) -> Result<PartDb> {
        let file: PartsFile = serde_json::from_str(json).map_err(|e| Error::Data {
            file: "assets/parts.json",
            reason: e.to_string(),
        })?;
        let db = PartDb { parts: file.parts };
        db.validate().map_err(|reason| Error::Data {
            file: "assets/parts.json",
            reason,
        })?;
        Ok(db)
    }

    /// Every part, in file order.
    pub fn all(&self) -> &[Part] {
        &self.parts
    }

    /// Finds a part by its id, name, avrdude id or alias, ignoring case (`m32u4`, `ATmega32U4`).
    pub fn find(&self, name: &str) -> Result<&Part> {
        let wanted = name.trim().to_ascii_lowercase();
        self.parts
            .iter()
            .find(|p| p.names().any(|n| n.to_ascii_lowercase() == wanted))
            .ok_or_else(|| Error::Unknown {
                what: "MCU",
                name: name.to_string(),
                known: self.parts.iter().map(|p| p.id.clone()).collect(),
            })
    }

    /// Every part with this signature (AT90USB646 and AT90USB647 share one, for example).
    pub fn by_signature(&self, signature: [u8; 3]) -> Vec<&Part> {
        self.parts
            .iter()
            .filter(|p| p.signature == signature)
            .collect()
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.parts.is_empty() {
            return Err("no parts".into());
        }
        let mut seen = std::collections::HashSet::new();
        for part in &self.parts {
            let own: std::collections::BTreeSet<String> =
                part.names().map(str::to_ascii_lowercase).collect();
            for name in own {
                if !seen.insert(name.clone()) {
                    return Err(format!("name '{name}' is used by two parts"));
                }
            }
            part.validate().map_err(|e| format!("{}: {e}", part.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
