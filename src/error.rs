//! The engine's error type.
//!
//! Every variant says what happened, where (file and line, address, page, byte) and, through
//! [`Error::hint`], what the user can try. Binaries print `{error}` followed by the hint.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which memory of the target an operation touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Memory {
    /// Program memory.
    Flash,
    /// Data EEPROM.
    Eeprom,
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Memory::Flash => "flash",
            Memory::Eeprom => "EEPROM",
        })
    }
}

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A data file shipped with the program (parts, catalogs) is inconsistent.
    #[error("built-in data {file} is invalid: {reason}")]
    Data {
        /// Which asset.
        file: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A name the user gave (MCU, programmer, bootloader) is not known.
    #[error("unknown {what} '{name}'")]
    Unknown {
        /// "MCU", "programmer", "bootloader" ...
        what: &'static str,
        /// What the user typed.
        name: String,
        /// The accepted names, for the hint.
        known: Vec<String>,
    },

    /// Any other invalid input (arguments, fuse values, settings).
    #[error("{0}")]
    Invalid(String),

    /// An Intel HEX file could not be parsed.
    #[error("{file}:{line}: {reason}")]
    Hex {
        /// File name as given by the user (or "<input>").
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong on that line.
        reason: String,
    },

    /// An image does not fit where it has to go.
    #[error("{0}")]
    Image(String),

    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    File {
        /// "cannot read", "cannot write" ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A serial port or USB device could not be opened.
    #[error("cannot open {port}: {reason}")]
    Open {
        /// Port path or USB id.
        port: String,
        /// Why.
        reason: String,
        /// What to try.
        hint: String,
    },

    /// The link to the programmer failed (I/O error, device gone).
    #[error("lost the programmer on {port}: {reason}")]
    Link {
        /// Port path or USB id.
        port: String,
        /// Why.
        reason: String,
    },

    /// The programmer did not answer in time.
    #[error("no answer from the programmer on {port} after {waited:?} ({during})")]
    Timeout {
        /// Port path or USB id.
        port: String,
        /// How long we waited.
        waited: Duration,
        /// What we were doing.
        during: String,
    },

    /// The programmer answered something its protocol does not allow.
    #[error("protocol error from {programmer}: {reason}")]
    Protocol {
        /// Driver name.
        programmer: &'static str,
        /// What was expected and what came.
        reason: String,
    },

    /// The programmer does not support this operation.
    #[error("{programmer} cannot {operation}")]
    Unsupported {
        /// Driver name.
        programmer: &'static str,
        /// The operation.
        operation: &'static str,
    },

    /// The target did not answer Programming Enable or its signature.
    #[error("no target answered ({detail})")]
    NoTarget {
        /// What was seen, e.g. "signature 00 00 00".
        detail: String,
        /// Likely causes for this programmer's wiring.
        causes: Vec<String>,
    },

    /// The target's signature is not the selected MCU.
    #[error("the target is {found}, not the selected {expected} (signature {signature})")]
    WrongTarget {
        /// Selected part name.
        expected: String,
        /// Name of the part that answered, or "an unknown part".
        found: String,
        /// The signature read, as "1E 95 87".
        signature: String,
    },

    /// A read-back did not match what was written.
    #[error(
        "{memory} verify failed at 0x{addr:05X}: expected 0x{expected:02X}, read 0x{read:02X} ({mismatches} byte(s) differ)"
    )]
    Verify {
        /// Which memory.
        memory: Memory,
        /// First differing byte address.
        addr: u32,
        /// Expected value there.
        expected: u8,
        /// Value read there.
        read: u8,
        /// How many bytes differ in total.
        mismatches: usize,
    },

    /// A fuse or lock byte read back different from what was written.
    #[error(
        "{fuse} verify failed: wrote 0x{wrote:02X}, read 0x{read:02X} (compared bits 0x{mask:02X})"
    )]
    FuseVerify {
        /// "lfuse", "hfuse", "efuse", "lock".
        fuse: &'static str,
        /// Value written.
        wrote: u8,
        /// Value read.
        read: u8,
        /// Implemented-bit mask used for the comparison.
        mask: u8,
    },

    /// Writing a page failed.
    #[error("writing {memory} page at 0x{page_addr:05X} failed: {source}")]
    PageWrite {
        /// Which memory.
        memory: Memory,
        /// Byte address of the page.
        page_addr: u32,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },

    /// The safety policy refused a fuse or lock change.
    #[error("refused by the fuse safety policy: {0}")]
    Refused(String),

    /// The user cancelled the job.
    #[error("cancelled")]
    Cancelled,

    /// Another job is already using this programmer.
    #[error("busy: a job is already running on {0}")]
    Busy(String),

    /// A device a job waits for (a bootloader's port, a programmer's port) did not show up.
    #[error("{what} did not appear within {} s ({seen})", waited.as_secs())]
    NotFound {
        /// What was waited for, with its USB ids.
        what: String,
        /// How long.
        waited: Duration,
        /// What is connected instead.
        seen: String,
        /// What the user can do.
        hint: String,
    },

    /// A multi-step job stopped part-way; the message says what state it left the board in.
    #[error("{during} stopped: {source}; {state}")]
    Interrupted {
        /// The step that failed ("writing the ISP firmware").
        during: String,
        /// What was done before it failed and what that means for the board.
        state: String,
        /// The underlying error.
        source: Box<Error>,
        /// How to recover.
        hint: String,
    },
}

impl Error {
    /// The message with its hint in brackets, for one line of a window or a CLI argument
    /// error: `unknown board 'x' (known names: promicro, teensy2)`.
    pub fn with_hint(&self) -> String {
        match self.hint() {
            Some(hint) => format!("{self} ({hint})"),
            None => self.to_string(),
        }
    }

    /// A short suggestion of what to do about this error, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Unknown { known, .. } if !known.is_empty() => {
                Some(format!("known names: {}", known.join(", ")))
            }
            Error::Hex { .. } => Some(
                "the file is damaged or not Intel HEX: download or build it again (a .hex saved from a browser's page view is HTML, not the file)".into(),
            ),
            Error::Open { hint, .. } => Some(hint.clone()),
            Error::NotFound { hint, .. } | Error::Interrupted { hint, .. } => Some(hint.clone()),
            Error::Link { .. } => Some(
                "check the USB cable; if the programmer was unplugged, plug it back in and run the job again".into(),
            ),
            Error::Timeout { .. } => Some(
                "is the right port selected, and does the programmer run the ISP firmware at this baud rate?".into(),
            ),
            Error::NoTarget { causes, .. } if !causes.is_empty() => {
                Some(format!("likely causes: {}", causes.join("; ")))
            }
            Error::WrongTarget { .. } => Some(
                "select the MCU that is actually on the board, or check the wiring if this looks wrong".into(),
            ),
            Error::Verify { .. } => Some(
                "lower the ISP clock (-B), shorten the wires, check the target's power, then flash again".into(),
            ),
            Error::FuseVerify { .. } => {
                Some("read the fuses again; if they keep differing, the target may be locked".into())
            }
            Error::Refused(_) => Some(
                "review the change; use --yes to accept high-risk changes, --force-critical only if you can recover with a high-voltage programmer".into(),
            ),
            _ => None,
        }
    }

    /// The process exit code for this error: 1 operation failed, 2 bad input, 3 refused.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Unknown { .. }
            | Error::Invalid(_)
            | Error::Hex { .. }
            | Error::Image(_)
            | Error::File { .. }
            | Error::Open { .. }
            | Error::WrongTarget { .. } => 2,
            Error::Refused(_) => 3,
            _ => 1,
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// Shorthand for [`Error::Protocol`].
    pub fn protocol(programmer: &'static str, reason: impl Into<String>) -> Self {
        Error::Protocol {
            programmer,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(programmer: &'static str, operation: &'static str) -> Self {
        Error::Unsupported {
            programmer,
            operation,
        }
    }

    /// Wraps an I/O error on a file.
    pub fn file(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File {
            action,
            path: path.into(),
            source,
        }
    }
}
