//! The run log: one line per board, appended, flushed and synced to disk before the line arms
//! for the next board, so a crash or a power cut loses at most the board in the fixture.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::profile::LogFormat;
use crate::error::{Error, Result};

/// How a board ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BoardResult {
    /// Flashed, verified, fuses and lock set.
    Pass,
    /// Something failed; see the error.
    Fail,
}

impl BoardResult {
    /// `PASS` or `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            BoardResult::Pass => "PASS",
            BoardResult::Fail => "FAIL",
        }
    }
}

/// One board, as logged and as shown.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoardRecord {
    /// When the result was known, ISO 8601 UTC.
    pub time: String,
    /// Board number in this run, from 1.
    pub board: u64,
    /// Signature read, `1E 95 87`.
    pub signature: String,
    /// First calibration byte, `0xA5`.
    pub calibration: String,
    /// PASS or FAIL.
    pub result: BoardResult,
    /// From the board being confirmed in the fixture to its result, in milliseconds.
    pub duration_ms: u64,
    /// First failing address (verify mismatch or failed page), `0x01234`.
    #[serde(default)]
    pub failing_address: Option<String>,
    /// The error, for a FAIL.
    #[serde(default)]
    pub error: Option<String>,
}

/// The CSV header line.
pub const CSV_HEADER: &str =
    "time,board,signature,calibration,result,duration_ms,failing_address,error";

impl BoardRecord {
    /// The record as one CSV line (no newline).
    pub fn to_csv(&self) -> String {
        [
            csv_field(&self.time),
            self.board.to_string(),
            csv_field(&self.signature),
            csv_field(&self.calibration),
            self.result.label().to_string(),
            self.duration_ms.to_string(),
            csv_field(self.failing_address.as_deref().unwrap_or("")),
            csv_field(self.error.as_deref().unwrap_or("")),
        ]
        .join(",")
    }

    /// The record as one JSON line (no newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"board\":{},\"log_error\":\"{e}\"}}", self.board))
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!(
            "\"{}\"",
            text.replace('"', "\"\"").replace(['\n', '\r'], " ")
        )
    } else {
        text.to_string()
    }
}

/// An open run log.
#[derive(Debug)]
pub struct RunLog {
    file: File,
    path: PathBuf,
    format: LogFormat,
}

impl RunLog {
    /// Opens `path` for appending (creating it, with a header for CSV).
    pub fn open(path: impl AsRef<Path>, format: LogFormat) -> Result<RunLog> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::file("cannot open the run log", &path, e))?;
        let empty = file
            .metadata()
            .map_err(|e| Error::file("cannot read the run log", &path, e))?
            .len()
            == 0;
        if empty && format == LogFormat::Csv {
            writeln!(file, "{CSV_HEADER}")
                .and_then(|()| file.sync_data())
                .map_err(|e| Error::file("cannot write the run log", &path, e))?;
        }
        Ok(RunLog { file, path, format })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one board and syncs it to disk.
    pub fn append(&mut self, record: &BoardRecord) -> Result<()> {
        let line = match self.format {
            LogFormat::Jsonl => record.to_json_line(),
            LogFormat::Csv => record.to_csv(),
        };
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::file("cannot write the run log", &self.path, e))
    }
}

/// Reads the records of a JSON-lines run log (for tests and summaries).
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<BoardRecord>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file("cannot read the run log", path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::invalid(format!(
                    "{}:{}: not a run log line: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let r = BoardRecord {
            time: "2026-11-24T10:00:00Z".into(),
            board: 3,
            signature: "1E 95 87".into(),
            calibration: "0xA5".into(),
            result: BoardResult::Fail,
            duration_ms: 1234,
            failing_address: Some("0x00100".into()),
            error: Some("flash verify failed at 0x00100: expected \"x\", read y".into()),
        };
        assert_eq!(
            r.to_csv(),
            "2026-11-24T10:00:00Z,3,1E 95 87,0xA5,FAIL,1234,0x00100,\"flash verify failed at 0x00100: expected \"\"x\"\", read y\""
        );
        let back: BoardRecord = serde_json::from_str(&r.to_json_line()).unwrap();
        assert_eq!(back, r);
    }
}
