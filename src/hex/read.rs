//! Reading Intel HEX text into a [`MemoryImage`].
//!
//! Lines are split here (so every error names its line and column); each record string is then
//! decoded by the `ihex` crate. Policy, and where it differs from avrdude:
//!
//! - Record types 00-05 are understood. 02 (extended segment address) sets the base to
//!   segment × 16 and, like avrdude, does not wrap offsets at 64 KiB. 04 (extended linear
//!   address) sets the upper 16 bits; a data record that would cross the 64 KiB boundary of its
//!   base is refused, since readers disagree on whether it wraps. Before any 02/04 record the
//!   base is 0, with the same no-crossing rule as 04. 03 and 05 (start addresses) are ignored.
//! - LF and CRLF endings, whitespace around a record, blank lines and a UTF-8 byte-order mark
//!   are tolerated.
//! - A non-blank line that does not start with ':' is an error. avrdude skips such lines, but
//!   the usual cause is a wrong file (an HTML page saved from a browser, a README), and
//!   flashing whatever records happen to be inside it is worse than stopping.
//! - The end-of-file record is required, and only blank lines may follow it: a missing one
//!   usually means a truncated download, data after it two files pasted together.
//! - Overlapping data records are refused, naming both lines: in a bootloader they mean a build
//!   gone wrong (Debian's optiboot builds for the ATmega168/328 outgrew 512 bytes, so their
//!   version word overwrites code). [`read_hex_with`] and [`Overlaps::LaterWins`] read such files
//!   the avrdude/avr-objcopy way, a later record replacing an earlier one.

use std::collections::BTreeMap;

use ihex::{ReaderError, Record};

use super::image::{ADDRESS_SPACE_END, MemoryImage, range_string};
use crate::error::{Error, Result};

/// What to do when a data record writes bytes an earlier record already wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlaps {
    /// Refuse the file, naming both lines (the default).
    Refuse,
    /// The later record replaces the earlier bytes, as avrdude and avr-objcopy do.
    LaterWins,
}

/// Reads Intel HEX `text`. `source_name` (a file name, or `<input>`) appears in errors.
pub fn read_hex(text: &str, source_name: &str) -> Result<MemoryImage> {
    read_hex_with(text, source_name, Overlaps::Refuse)
}

/// Reads Intel HEX `text`, choosing what overlapping records do.
pub fn read_hex_with(text: &str, source_name: &str, overlaps: Overlaps) -> Result<MemoryImage> {
    let mut reader = HexReader::new(source_name, overlaps);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    for (index, raw_line) in text.split('\n').enumerate() {
        reader.line(index + 1, raw_line)?;
    }
    reader.finish()
}

/// Reads Intel HEX from raw file bytes, refusing binary data with a clear error instead of
/// decoding garbage (a .bin renamed to .hex, a zip, an image).
pub fn read_hex_bytes(bytes: &[u8], source_name: &str) -> Result<MemoryImage> {
    // NUL is valid UTF-8 but never in a text file; report whichever bad byte comes first.
    let nul = bytes.iter().position(|&b| b == 0);
    match std::str::from_utf8(bytes) {
        Ok(text) if nul.is_none() => read_hex(text, source_name),
        Ok(_) => Err(binary_error(bytes, nul.unwrap_or(0), source_name)),
        Err(e) => {
            let at = nul.map_or(e.valid_up_to(), |nul| nul.min(e.valid_up_to()));
            Err(binary_error(bytes, at, source_name))
        }
    }
}

fn binary_error(bytes: &[u8], at: usize, source_name: &str) -> Error {
    let before = &bytes[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = at
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |nl| nl + 1)
        + 1;
    Error::Hex {
        file: source_name.to_string(),
        line,
        reason: format!(
            "byte 0x{:02X} at column {column} is not text: this is a binary file, not Intel HEX; \
             if it is a raw binary image, load it as .bin",
            bytes[at]
        ),
    }
}

/// A data record's bytes (or what a later record left of them), keyed by address in
/// [`HexReader::pieces`]. The line names the record when a later one overlaps it.
struct Piece {
    data: Vec<u8>,
    line: usize,
}

/// How the address base was set by the last 02/04 record.
#[derive(Clone, Copy)]
enum Base {
    /// Type 04 (or none yet): records must not cross the 64 KiB boundary.
    Linear(u32),
    /// Type 02: segment × 16, offsets do not wrap.
    Segment(u32),
}

struct HexReader<'a> {
    source: &'a str,
    overlaps: Overlaps,
    /// Disjoint pieces by start address. The image is built from them at the end, in address
    /// order, so files with records in any order read in O(n log n).
    pieces: BTreeMap<u32, Piece>,
    base: Base,
    last_record_line: Option<usize>,
    eof_line: Option<usize>,
}

impl<'a> HexReader<'a> {
    fn new(source: &'a str, overlaps: Overlaps) -> Self {
        HexReader {
            source,
            overlaps,
            pieces: BTreeMap::new(),
            base: Base::Linear(0),
            last_record_line: None,
            eof_line: None,
        }
    }

    fn error(&self, line: usize, reason: impl Into<String>) -> Error {
        Error::Hex {
            file: self.source.to_string(),
            line,
            reason: reason.into(),
        }
    }

    fn line(&mut self, number: usize, raw_line: &str) -> Result<()> {
        let record = raw_line.trim();
        if record.is_empty() {
            return Ok(());
        }
        if let Some(eof_line) = self.eof_line {
            return Err(self.error(
                number,
                format!(
                    "data after the end-of-file record on line {eof_line}; were two files pasted \
                     together? For a production image remove the first file's ':00000001FF' \
                     line, or use the merge command"
                ),
            ));
        }
        self.last_record_line = Some(number);
        let leading = raw_line.chars().take_while(|c| c.is_whitespace()).count();
        let record = self.check_syntax(number, record, leading)?;
        match record {
            Record::Data { offset, value } => self.data(number, offset, value),
            Record::EndOfFile => {
                self.eof_line = Some(number);
                Ok(())
            }
            Record::ExtendedSegmentAddress(segment) => {
                self.base = Base::Segment(u32::from(segment) << 4);
                Ok(())
            }
            Record::ExtendedLinearAddress(upper) => {
                self.base = Base::Linear(u32::from(upper) << 16);
                Ok(())
            }
            // Start addresses mean nothing to an AVR programmer.
            Record::StartSegmentAddress { .. } | Record::StartLinearAddress(_) => Ok(()),
        }
    }

    /// Checks the characters and the length field ourselves (for precise messages), then lets
    /// `ihex` decode the record. `leading` is the whitespace trimmed before it, for columns.
    fn check_syntax(&self, number: usize, record: &str, leading: usize) -> Result<Record> {
        let Some(digits) = record.strip_prefix(':') else {
            return Err(self.error(number, not_a_record(record)));
        };
        if let Some((index, c)) = digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            // Columns count characters, 1-based, the ':' being column `leading + 1`.
            let column = leading + 2 + digits[..index].chars().count();
            return Err(self.error(
                number,
                format!(
                    "invalid character {c:?} at column {column}: after ':' a record holds only \
                     hex digits; the file was probably edited or damaged"
                ),
            ));
        }
        if !digits.len().is_multiple_of(2) {
            return Err(self.error(
                number,
                format!(
                    "odd number of hex digits ({}): a digit is missing or extra; the line was \
                     cut or edited",
                    digits.len()
                ),
            ));
        }
        if digits.len() < 10 {
            return Err(self.error(
                number,
                format!(
                    "record too short ({} hex digits): a record needs at least 10 \
                     (length, address, type, checksum); the line was cut",
                    digits.len()
                ),
            ));
        }
        // Hex digits are ASCII, so byte slicing is safe from here on.
        let declared = usize::from(u8::from_str_radix(&digits[..2], 16).unwrap_or(0));
        let actual = (digits.len() - 10) / 2;
        if declared != actual {
            return Err(self.error(
                number,
                format!(
                    "length field says {declared} data byte(s) but the record holds {actual}; \
                     the line was cut or edited"
                ),
            ));
        }
        Record::from_record_string(&format!(":{digits}"))
            .map_err(|e| self.error(number, decode_reason(e, &digits[6..8])))
    }

    fn data(&mut self, number: usize, offset: u16, value: Vec<u8>) -> Result<()> {
        if value.is_empty() {
            return Ok(());
        }
        let len = value.len() as u64;
        let start = match self.base {
            Base::Linear(base) => {
                // Checked first: past 4 GiB is also past the boundary, and the clearer message.
                if u64::from(base) + u64::from(offset) + len > ADDRESS_SPACE_END {
                    return Err(self.error(
                        number,
                        format!(
                            "{len} bytes at 0x{:08X} run past the 4 GiB limit of Intel HEX \
                             addresses; the file is damaged",
                            u64::from(base) + u64::from(offset)
                        ),
                    ));
                }
                if u64::from(offset) + len > 0x1_0000 {
                    return Err(self.error(
                        number,
                        format!(
                            "{len} bytes at offset 0x{offset:04X} cross the 64 KiB boundary of \
                             base 0x{base:08X}; split the record and add a type 04 record"
                        ),
                    ));
                }
                u64::from(base) + u64::from(offset)
            }
            Base::Segment(base) => u64::from(base) + u64::from(offset),
        };
        let end = start + len;
        // Lossless: a segment base reaches at most 0xFFFF0 + 0xFFFF + 255 bytes, far below
        // 4 GiB, and a linear one was checked above.
        let start = start as u32;
        if let Some((earlier_start, earlier)) = self.first_overlapping(start, end) {
            if self.overlaps == Overlaps::Refuse {
                let earlier_end = u64::from(earlier_start) + earlier.data.len() as u64;
                return Err(self.error(
                    number,
                    format!(
                        "bytes {} overlap bytes {} from line {}; the file holds two versions of \
                         the same memory (two files pasted together?)",
                        range_string(start, end),
                        range_string(earlier_start, earlier_end),
                        earlier.line
                    ),
                ));
            }
            self.cut_out(start, end);
        }
        self.pieces.insert(
            start,
            Piece {
                data: value,
                line: number,
            },
        );
        Ok(())
    }

    /// The lowest piece holding any byte of `start..end`.
    fn first_overlapping(&self, start: u32, end: u64) -> Option<(u32, &Piece)> {
        // The piece starting at or before `start` may reach into the range; else the next one.
        if let Some((&at, piece)) = self.pieces.range(..=start).next_back()
            && u64::from(at) + piece.data.len() as u64 > u64::from(start)
        {
            return Some((at, piece));
        }
        self.pieces
            .range(start..)
            .next()
            .filter(|(at, _)| u64::from(**at) < end)
            .map(|(at, piece)| (*at, piece))
    }

    /// Removes every byte of `start..end` from the pieces, keeping what lies outside it.
    fn cut_out(&mut self, start: u32, end: u64) {
        while let Some(at) = self.first_overlapping(start, end).map(|(at, _)| at) {
            let Some(mut piece) = self.pieces.remove(&at) else {
                break;
            };
            let piece_end = u64::from(at) + piece.data.len() as u64;
            if piece_end > end {
                // Lossless: end < piece_end <= 4 GiB.
                let tail = piece.data.split_off((end - u64::from(at)) as usize);
                self.pieces.insert(
                    end as u32,
                    Piece {
                        data: tail,
                        line: piece.line,
                    },
                );
            }
            if at < start {
                piece.data.truncate((start - at) as usize);
                self.pieces.insert(at, piece);
            }
        }
    }

    fn finish(self) -> Result<MemoryImage> {
        let Some(last_line) = self.last_record_line else {
            return Err(self.error(
                1,
                "the file is empty: no Intel HEX records; check that the right file was chosen \
                 and that the download finished",
            ));
        };
        if self.eof_line.is_none() {
            return Err(self.error(
                last_line,
                "no end-of-file record (':00000001FF') after the last record: the file is \
                 probably truncated; download or build it again",
            ));
        }
        let mut image = MemoryImage::new();
        for (start, piece) in self.pieces {
            // Disjoint and in address order: each insert appends or starts a segment.
            image.insert(start, &piece.data)?;
        }
        Ok(image)
    }
}

/// Why a non-blank line without ':' was refused, with a guess at what the file really is.
fn not_a_record(line: &str) -> String {
    let first: String = line.chars().take(20).collect();
    let looks_like = if line.starts_with('<') {
        "an HTML or XML page (saved from a browser instead of the raw file?)"
    } else {
        "text that is not Intel HEX"
    };
    format!(
        "line does not start with ':' (it starts {first:?}); this looks like {looks_like}. \
         Intel HEX lines all start with ':'"
    )
}

/// Explains an `ihex` decode error; our own checks have already caught the others.
fn decode_reason(error: ReaderError, type_digits: &str) -> String {
    match error {
        ReaderError::ChecksumMismatch(expected, found) => format!(
            "bad checksum: expected 0x{expected:02X}, found 0x{found:02X}; the line was damaged \
             or edited by hand; get a fresh copy of the file"
        ),
        ReaderError::UnsupportedRecordType(kind) => format!(
            "unknown record type 0x{kind:02X}: Intel HEX has types 00 to 05; the file may be \
             damaged or in another format"
        ),
        ReaderError::InvalidLengthForType => format!(
            "record type {type_digits} has the wrong number of data bytes ({}); the file is \
             damaged",
            match type_digits {
                "01" => "needs 0",
                "02" | "04" => "needs 2",
                _ => "needs 4",
            }
        ),
        other => format!("malformed record: {other}"),
    }
}
