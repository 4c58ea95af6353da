//! What an emulated programmer counted, written as `--stats FILE` by `emulate`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::hex::write_atomic;

/// Counters of one emulation run. `modeled_seconds` is virtual time: what the real firmware and
/// link would have taken for the same bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmulatorStats {
    /// Virtual time from the first byte to the last answer.
    pub modeled_seconds: f64,
    /// Bytes (serial) or data-stage bytes plus 8-byte setup packets (USB) from the host.
    pub bytes_to_programmer: u64,
    /// Bytes the programmer sent back.
    pub bytes_from_programmer: u64,
    /// Host → programmer → host turnarounds (serial) or control transfers (USB).
    pub round_trips: u64,
    /// 4-byte ISP instructions clocked to the target.
    pub isp_instructions: u64,
    /// Flash and EEPROM page commits (and EEPROM byte writes).
    pub pages_written: u64,
    /// Page-sized (or block) reads the firmware served.
    pub pages_read: u64,
}

impl EmulatorStats {
    /// Writes the stats as JSON, atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(format!("cannot encode stats: {e}")))?;
        write_atomic(path, json.as_bytes())
    }
}
