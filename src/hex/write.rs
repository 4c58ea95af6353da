//! Writing a [`MemoryImage`] as Intel HEX text.
//!
//! Each segment is cut into 16-byte data records counted from the segment's start (not aligned
//! to 16), and no record crosses a 64 KiB boundary. For an image starting at 0 below 64 KiB,
//! [`write_hex`] matches `avr-objcopy -I binary -O ihex` except for line endings (objcopy writes
//! CRLF). Above 64 KiB objcopy uses type 02 segment records (type 04 past 1 MiB) where
//! [`write_hex`] uses type 04 like avrdude; [`HexOptions::objcopy`] reproduces objcopy's output
//! byte for byte. Start-address records (03/05) are never written: an image has no entry point.

use std::fmt::Write as _;

use super::image::MemoryImage;

/// Data bytes per record, as avr-objcopy writes them.
const RECORD_BYTES: usize = 16;

/// How lines end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n`.
    Lf,
    /// `\r\n`, as avr-objcopy writes.
    CrLf,
}

impl LineEnding {
    fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::CrLf => "\r\n",
        }
    }
}

/// Which records carry addresses above 64 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRecords {
    /// Type 04 (extended linear address) records, as avrdude writes.
    Linear,
    /// Type 02 (extended segment address) records below 1 MiB and type 04 above, as
    /// avr-objcopy (GNU BFD) writes.
    SegmentThenLinear,
}

/// Formatting choices for [`write_hex_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HexOptions {
    /// Line endings.
    pub line_ending: LineEnding,
    /// Extended address records.
    pub address_records: AddressRecords,
}

impl Default for HexOptions {
    /// LF line endings and type 04 records: what [`write_hex`] writes.
    fn default() -> Self {
        HexOptions {
            line_ending: LineEnding::Lf,
            address_records: AddressRecords::Linear,
        }
    }
}

impl HexOptions {
    /// Exactly what `avr-objcopy -O ihex` writes: CRLF, type 02 records up to 1 MiB.
    pub fn objcopy() -> Self {
        HexOptions {
            line_ending: LineEnding::CrLf,
            address_records: AddressRecords::SegmentThenLinear,
        }
    }
}

/// Writes `image` as Intel HEX: 16-byte records, uppercase, type 04 records where needed, `\n`
/// line endings, ending with `:00000001FF`.
pub fn write_hex(image: &MemoryImage) -> String {
    write_hex_with(image, HexOptions::default())
}

/// Writes `image` as Intel HEX with the given formatting.
pub fn write_hex_with(image: &MemoryImage, options: HexOptions) -> String {
    let mut out = HexWriter {
        text: String::with_capacity(image.data_len() as usize * 45 / 16 + 16),
        newline: options.line_ending.as_str(),
        mode: options.address_records,
        segment_base: 0,
        linear_base: 0,
    };
    for segment in image.segments() {
        let mut addr = segment.start;
        for chunk in chunks(segment.start, &segment.data) {
            out.data(addr, chunk);
            addr = addr.wrapping_add(chunk.len() as u32);
        }
    }
    out.record(0x01, 0, &[]);
    out.text
}

/// Cuts `data` at `start` into records of at most 16 bytes that never cross 64 KiB.
fn chunks(start: u32, data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    let mut addr = start;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let to_boundary = 0x1_0000 - (addr & 0xFFFF) as usize;
        let (chunk, tail) = rest.split_at(rest.len().min(RECORD_BYTES).min(to_boundary));
        rest = tail;
        addr = addr.wrapping_add(chunk.len() as u32);
        Some(chunk)
    })
}

struct HexWriter {
    text: String,
    newline: &'static str,
    mode: AddressRecords,
    /// Base set by the last type 02 record (segment × 16).
    segment_base: u32,
    /// Base set by the last type 04 record.
    linear_base: u32,
}

impl HexWriter {
    fn data(&mut self, addr: u32, bytes: &[u8]) {
        // Segments are written in ascending order, so a base only ever moves up.
        if u64::from(addr) > u64::from(self.segment_base) + u64::from(self.linear_base) + 0xFFFF {
            self.new_base(addr);
        }
        // `chunks` keeps every record inside the current 64 KiB window.
        let offset = (addr - self.segment_base - self.linear_base) as u16;
        self.record(0x00, offset, bytes);
    }

    fn new_base(&mut self, addr: u32) {
        match self.mode {
            AddressRecords::SegmentThenLinear if self.linear_base == 0 && addr <= 0xF_FFFF => {
                self.segment_base = addr & 0xF_0000;
                self.record(0x02, 0, &((self.segment_base >> 4) as u16).to_be_bytes());
            }
            _ => {
                if self.segment_base != 0 {
                    // Readers may add both bases; clear the segment one first, as objcopy does.
                    self.segment_base = 0;
                    self.record(0x02, 0, &[0, 0]);
                }
                self.linear_base = addr & 0xFFFF_0000;
                self.record(0x04, 0, &((self.linear_base >> 16) as u16).to_be_bytes());
            }
        }
    }

    fn record(&mut self, kind: u8, offset: u16, data: &[u8]) {
        let [hi, lo] = offset.to_be_bytes();
        // At most 16 data bytes, so the length fits the one-byte field.
        let header = [data.len() as u8, hi, lo, kind];
        // The two's complement of the byte sum, so that all bytes including it sum to 0.
        let sum = header
            .iter()
            .chain(data)
            .fold(0u8, |acc, b| acc.wrapping_add(*b))
            .wrapping_neg();
        self.text.push(':');
        for byte in header.iter().chain(data).chain(std::iter::once(&sum)) {
            // Writing to a String cannot fail.
            let _ = write!(self.text, "{byte:02X}");
        }
        self.text.push_str(self.newline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_image_at_zero() {
        let mut image = MemoryImage::new();
        image.insert(0, &[0x87, 0x87, 0x6A, 0xAC, 0xA6]).unwrap();
        assert_eq!(write_hex(&image), ":0500000087876AACA631\n:00000001FF\n");
        assert_eq!(
            write_hex_with(&image, HexOptions::objcopy()),
            ":0500000087876AACA631\r\n:00000001FF\r\n"
        );
    }

    #[test]
    fn empty_image_is_just_eof() {
        assert_eq!(write_hex(&MemoryImage::new()), ":00000001FF\n");
    }

    #[test]
    fn records_split_at_64k_with_the_chosen_base_record() {
        let mut image = MemoryImage::new();
        image.insert(0xFFF8, &[0; 40]).unwrap();
        // Same records avr-objcopy writes for this image (checked by hand against 2.26).
        assert_eq!(
            write_hex_with(&image, HexOptions::objcopy()),
            ":08FFF800000000000000000001\r\n\
             :020000021000EC\r\n\
             :1000000000000000000000000000000000000000F0\r\n\
             :1000100000000000000000000000000000000000E0\r\n\
             :00000001FF\r\n"
        );
        assert_eq!(
            write_hex(&image),
            ":08FFF800000000000000000001\n\
             :020000040001F9\n\
             :1000000000000000000000000000000000000000F0\n\
             :1000100000000000000000000000000000000000E0\n\
             :00000001FF\n"
        );
    }

    #[test]
    fn objcopy_style_switches_to_linear_past_1mib() {
        let mut image = MemoryImage::new();
        image.insert(0xF_FFFF, &[1, 2]).unwrap();
        assert_eq!(
            write_hex_with(&image, HexOptions::objcopy()),
            ":02000002F0000C\r\n\
             :01FFFF000100\r\n\
             :020000020000FC\r\n\
             :020000040010EA\r\n\
             :0100000002FD\r\n\
             :00000001FF\r\n"
        );
    }

    #[test]
    fn first_record_above_64k_gets_a_base_first() {
        let mut image = MemoryImage::new();
        image.insert(0x2_0010, &[0xAB]).unwrap();
        assert_eq!(
            write_hex(&image),
            ":020000040002F8\n:01001000AB44\n:00000001FF\n"
        );
    }
}
