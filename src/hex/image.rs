//! [`MemoryImage`]: a sparse byte image of a target memory.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One past the highest address an image can hold: Intel HEX addresses are 32 bits.
pub const ADDRESS_SPACE_END: u64 = 1 << 32;

/// A run of bytes at consecutive addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Address of the first byte.
    pub start: u32,
    /// The bytes; never empty inside a [`MemoryImage`].
    pub data: Vec<u8>,
}

impl Segment {
    /// One past the last byte's address (a `u64`, so a segment ending at 0xFFFF_FFFF fits).
    pub fn end(&self) -> u64 {
        u64::from(self.start) + self.data.len() as u64
    }

    /// The address of the last byte (the segment must not be empty).
    fn last(&self) -> u32 {
        // Lossless: an image never holds a byte past 0xFFFF_FFFF.
        (self.end() - 1) as u32
    }

    /// The range as `0x7000-0x7FFF` (inclusive).
    pub fn range_string(&self) -> String {
        range_string(self.start, self.end())
    }
}

/// Formats `start..end` as the inclusive range `0x7000-0x7FFF`.
pub(crate) fn range_string(start: u32, end: u64) -> String {
    format!("0x{start:04X}-0x{:04X}", end.saturating_sub(1))
}

/// A sparse byte image: which addresses hold data, and what.
///
/// Bytes live in [`Segment`]s kept sorted by address, never overlapping, and merged when they
/// touch, so two images with the same bytes at the same addresses compare equal however they
/// were built. Addresses without data are "gaps": on an erased AVR they read as 0xFF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryImage {
    segments: Vec<Segment>,
}

impl MemoryImage {
    /// An empty image.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `data` at `addr`.
    ///
    /// Refuses bytes that already hold data (naming both ranges) and bytes past 0xFFFF_FFFF.
    /// Inserting nothing is a no-op.
    pub fn insert(&mut self, addr: u32, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = u64::from(addr) + data.len() as u64;
        if end > ADDRESS_SPACE_END {
            return Err(Error::Image(format!(
                "{} bytes at 0x{addr:08X} would run past the 4 GiB address space",
                data.len()
            )));
        }
        if let Some(existing) = self.overlap(addr, end) {
            return Err(Error::Image(format!(
                "bytes {} overlap bytes {} already in the image",
                range_string(addr, end),
                existing.range_string()
            )));
        }
        // Fast path: files are usually written in address order.
        if let Some(last) = self.segments.last_mut()
            && last.end() == u64::from(addr)
        {
            last.data.extend_from_slice(data);
            return Ok(());
        }
        let index = self.segments.partition_point(|s| s.start < addr);
        let joins_previous = index > 0 && self.segments[index - 1].end() == u64::from(addr);
        let joins_next = self
            .segments
            .get(index)
            .is_some_and(|next| u64::from(next.start) == end);
        match (joins_previous, joins_next) {
            (true, true) => {
                let next = self.segments.remove(index);
                let previous = &mut self.segments[index - 1];
                previous.data.extend_from_slice(data);
                previous.data.extend_from_slice(&next.data);
            }
            (true, false) => self.segments[index - 1].data.extend_from_slice(data),
            (false, true) => {
                let next = &mut self.segments[index];
                let mut joined = Vec::with_capacity(data.len() + next.data.len());
                joined.extend_from_slice(data);
                joined.extend_from_slice(&next.data);
                next.start = addr;
                next.data = joined;
            }
            (false, false) => self.segments.insert(
                index,
                Segment {
                    start: addr,
                    data: data.to_vec(),
                },
            ),
        }
        Ok(())
    }

    /// Puts `data` at `addr`, replacing bytes already there (a later Intel HEX record winning
    /// over an earlier one, as in avrdude and avr-objcopy). Refuses only bytes past 0xFFFF_FFFF.
    pub fn overwrite(&mut self, addr: u32, data: &[u8]) -> Result<()> {
        let end = u64::from(addr) + data.len() as u64;
        // insert() handles (and refuses) anything past 4 GiB.
        if data.is_empty() || end > ADDRESS_SPACE_END || self.overlap(addr, end).is_none() {
            return self.insert(addr, data);
        }
        // The segments overlapping or touching addr..end, together with it, cover one
        // contiguous range: rebuild that range as one segment.
        let first = self.segments.partition_point(|s| s.end() < u64::from(addr));
        let after = self.segments.partition_point(|s| u64::from(s.start) <= end);
        let start = addr.min(self.segments[first].start);
        let merged_end = end.max(self.segments[after - 1].end());
        let mut merged = vec![0; (merged_end - u64::from(start)) as usize];
        for segment in &self.segments[first..after] {
            let at = (segment.start - start) as usize;
            merged[at..at + segment.data.len()].copy_from_slice(&segment.data);
        }
        let at = (addr - start) as usize;
        merged[at..at + data.len()].copy_from_slice(data);
        self.segments.splice(
            first..after,
            [Segment {
                start,
                data: merged,
            }],
        );
        Ok(())
    }

    /// The first segment holding any byte of `start..end`, if there is one.
    pub fn overlap(&self, start: u32, end: u64) -> Option<&Segment> {
        let first = self
            .segments
            .partition_point(|s| s.end() <= u64::from(start));
        self.segments
            .get(first)
            .filter(|s| u64::from(s.start) < end)
    }

    /// The byte at `addr`, if the image holds one.
    pub fn get(&self, addr: u32) -> Option<u8> {
        let segment = self.overlap(addr, u64::from(addr) + 1)?;
        segment.data.get((addr - segment.start) as usize).copied()
    }

    /// The segments, sorted by address, non-overlapping, never touching, never empty.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// How many bytes the image holds (gaps not counted).
    pub fn data_len(&self) -> u64 {
        self.segments.iter().map(|s| s.data.len() as u64).sum()
    }

    /// Whether the image holds no byte at all.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The lowest address holding data (0 for an empty image).
    pub fn start(&self) -> u32 {
        self.segments.first().map_or(0, |s| s.start)
    }

    /// One past the highest address holding data (0 for an empty image). A `u64`, so an image
    /// holding a byte at 0xFFFF_FFFF has an end.
    pub fn end(&self) -> u64 {
        self.segments.last().map_or(0, Segment::end)
    }

    /// The address of the highest byte, if any.
    pub fn last(&self) -> Option<u32> {
        self.segments.last().map(Segment::last)
    }

    /// Start addresses of the pages of `page_size` bytes that hold at least one byte, ascending.
    /// Empty when `page_size` is 0.
    pub fn pages_touched(&self, page_size: u32) -> Vec<u32> {
        let mut pages: Vec<u32> = Vec::new();
        if page_size == 0 {
            return pages;
        }
        for segment in &self.segments {
            let first = segment.start / page_size * page_size;
            let last = segment.last() / page_size * page_size;
            let mut page = first;
            loop {
                if pages.last() != Some(&page) {
                    pages.push(page);
                }
                match page.checked_add(page_size) {
                    Some(next) if next <= last => page = next,
                    _ => break,
                }
            }
        }
        pages
    }

    /// The `page_size` bytes from `addr`, with gaps (and anything past 4 GiB) set to `fill`.
    pub fn page(&self, addr: u32, page_size: u32, fill: u8) -> Vec<u8> {
        let mut page = vec![fill; page_size as usize];
        let page_end = u64::from(addr) + u64::from(page_size);
        for segment in self.segments_in(addr, page_end) {
            let from = u64::from(addr).max(u64::from(segment.start));
            let to = page_end.min(segment.end());
            let source = (from - u64::from(segment.start)) as usize;
            let target = (from - u64::from(addr)) as usize;
            let len = (to - from) as usize;
            page[target..target + len].copy_from_slice(&segment.data[source..source + len]);
        }
        page
    }

    /// Whether `addr..addr + page_size` holds no byte other than 0xFF (gaps count as 0xFF, the
    /// erased state), so writing the page can be skipped after a chip erase.
    pub fn page_is_blank(&self, addr: u32, page_size: u32) -> bool {
        let page_end = u64::from(addr) + u64::from(page_size);
        self.segments_in(addr, page_end).all(|segment| {
            let from =
                (u64::from(addr).max(u64::from(segment.start)) - u64::from(segment.start)) as usize;
            let to = (page_end.min(segment.end()) - u64::from(segment.start)) as usize;
            segment.data[from..to].iter().all(|&b| b == 0xFF)
        })
    }

    /// Whether every byte the image holds is 0xFF (true for an empty image).
    pub fn is_all_ff(&self) -> bool {
        self.segments
            .iter()
            .all(|s| s.data.iter().all(|&b| b == 0xFF))
    }

    /// A hash of what the image programs into erased flash, independent of how the file was
    /// formatted (record size and order, line endings, explicit 0xFF padding).
    ///
    /// Definition: let `lo` be the address of the lowest byte that is not 0xFF and `hi` that of
    /// the highest. The hash is SHA-256 over the 4-byte big-endian `lo` followed by every byte
    /// from `lo` through `hi`, gaps as 0xFF. An image with no byte other than 0xFF hashes as
    /// SHA-256 of no input at all. Equivalently: trim 0xFF from both ends of the flat binary and
    /// prefix its address, so `avr-objcopy -O binary` plus a few lines of script reproduces it.
    ///
    /// The cost grows with `hi - lo`, gaps included (a few seconds for a pathological image
    /// spanning gigabytes).
    pub fn content_sha256(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        if let Some((lo, hi)) = self.non_ff_bounds() {
            hasher.update(lo.to_be_bytes());
            let mut cursor = u64::from(lo);
            let end = u64::from(hi) + 1;
            for segment in self.segments_in(lo, end) {
                let from = cursor.max(u64::from(segment.start));
                hash_gap(&mut hasher, from - cursor);
                let to = end.min(segment.end());
                let offset = (from - u64::from(segment.start)) as usize;
                hasher.update(&segment.data[offset..offset + (to - from) as usize]);
                cursor = to;
            }
        }
        hasher.finalize().into()
    }

    /// The span as `0x7000-0x7FFF` (lowest to highest address, inclusive), or `empty`.
    pub fn range_string(&self) -> String {
        if self.is_empty() {
            "empty".to_string()
        } else {
            range_string(self.start(), self.end())
        }
    }

    /// Segments that hold any byte of `start..end`.
    fn segments_in(&self, start: u32, end: u64) -> impl Iterator<Item = &Segment> {
        let first = self
            .segments
            .partition_point(|s| s.end() <= u64::from(start));
        self.segments[first..]
            .iter()
            .take_while(move |s| u64::from(s.start) < end)
    }

    /// Addresses of the lowest and the highest byte that is not 0xFF.
    fn non_ff_bounds(&self) -> Option<(u32, u32)> {
        let lo = self.segments.iter().find_map(|s| {
            let i = s.data.iter().position(|&b| b != 0xFF)?;
            Some(s.start + i as u32)
        })?;
        let hi = self.segments.iter().rev().find_map(|s| {
            let i = s.data.iter().rposition(|&b| b != 0xFF)?;
            Some(s.start + i as u32)
        })?;
        Some((lo, hi))
    }
}

/// Feeds `len` bytes of 0xFF to the hasher without allocating them.
fn hash_gap(hasher: &mut Sha256, mut len: u64) {
    const ERASED: [u8; 4096] = [0xFF; 4096];
    while len > 0 {
        let chunk = len.min(ERASED.len() as u64) as usize;
        hasher.update(&ERASED[..chunk]);
        len -= chunk as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(parts: &[(u32, &[u8])]) -> MemoryImage {
        let mut image = MemoryImage::new();
        for (addr, data) in parts {
            image.insert(*addr, data).unwrap();
        }
        image
    }

    #[test]
    fn touching_inserts_merge_in_any_order() {
        let a = image(&[(0x10, &[1, 2]), (0x14, &[5]), (0x12, &[3, 4])]);
        assert_eq!(a.segments().len(), 1);
        assert_eq!(a.segments()[0].data, vec![1, 2, 3, 4, 5]);
        let b = image(&[(0x12, &[3, 4]), (0x10, &[1, 2]), (0x14, &[5])]);
        assert_eq!(a, b);
        let c = image(&[(0x20, &[9]), (0x10, &[1])]);
        assert_eq!(c.segments().len(), 2);
        assert_eq!(c.segments()[0].start, 0x10);
    }

    #[test]
    fn overlap_is_refused_naming_both_ranges() {
        let mut a = image(&[(0x7000, &[0; 0x100])]);
        let err = a.insert(0x70FF, &[1, 2]).unwrap_err().to_string();
        assert!(err.contains("0x70FF-0x7100"), "{err}");
        assert!(err.contains("0x7000-0x70FF"), "{err}");
        assert!(a.insert(0x6FFF, &[1, 2]).is_err());
        assert!(a.insert(0x6FFF, &[1]).is_ok());
        assert_eq!(a.range_string(), "0x6FFF-0x70FF");
    }

    #[test]
    fn top_of_address_space() {
        let mut a = image(&[(0xFFFF_FFFF, &[7])]);
        assert_eq!(a.end(), ADDRESS_SPACE_END);
        assert_eq!(a.last(), Some(0xFFFF_FFFF));
        assert_eq!(a.get(0xFFFF_FFFF), Some(7));
        assert!(a.insert(0xFFFF_FFFE, &[1, 2]).is_err());
        assert!(a.insert(0xFFFF_FFF0, &[0; 17]).is_err());
        assert_eq!(a.pages_touched(128), vec![0xFFFF_FF80]);
        let page = a.page(0xFFFF_FFFE, 4, 0xAA);
        assert_eq!(page, vec![0xAA, 7, 0xAA, 0xAA]);
    }

    #[test]
    fn overwrite_lets_the_later_bytes_win_and_joins_neighbours() {
        let mut a = image(&[(0, &[1, 1, 1]), (5, &[2, 2]), (10, &[3])]);
        a.overwrite(2, &[9, 9, 9, 9]).unwrap();
        assert_eq!(a.segments().len(), 2);
        assert_eq!(a.segments()[0].data, vec![1, 1, 9, 9, 9, 9, 2]);
        a.overwrite(8, &[7, 7]).unwrap();
        assert_eq!(a.segments()[1].start, 8);
        assert_eq!(a.segments()[1].data, vec![7, 7, 3]);
        a.overwrite(20, &[4]).unwrap();
        assert_eq!(a.get(20), Some(4));
        assert!(a.overwrite(0xFFFF_FFFF, &[1, 2]).is_err());
        let mut b = image(&[(4, &[1, 2, 3, 4])]);
        b.overwrite(0, &[8; 12]).unwrap();
        assert_eq!(b.segments(), image(&[(0, &[8; 12])]).segments());
    }

    #[test]
    fn get_and_lengths() {
        let a = image(&[(4, &[1, 2]), (10, &[3])]);
        assert_eq!(a.get(3), None);
        assert_eq!(a.get(5), Some(2));
        assert_eq!(a.get(6), None);
        assert_eq!(a.get(10), Some(3));
        assert_eq!(a.data_len(), 3);
        assert_eq!((a.start(), a.end()), (4, 11));
        let empty = MemoryImage::new();
        assert!(empty.is_empty());
        assert_eq!((empty.start(), empty.end(), empty.last()), (0, 0, None));
        assert_eq!(empty.range_string(), "empty");
    }

    #[test]
    fn pages_and_blanks() {
        let a = image(&[(0x7E, &[1, 2, 3]), (0x100, &[0xFF]), (0x1FF, &[0xFF, 0])]);
        assert_eq!(a.pages_touched(128), vec![0x00, 0x80, 0x100, 0x180, 0x200]);
        assert_eq!(a.pages_touched(0), Vec::<u32>::new());
        assert_eq!(a.page(0x7C, 4, 0xFF), vec![0xFF, 0xFF, 1, 2]);
        assert_eq!(a.page(0x80, 4, 0x00), vec![3, 0, 0, 0]);
        assert!(a.page_is_blank(0x100, 128));
        assert!(a.page_is_blank(0x180, 128));
        assert!(!a.page_is_blank(0x200, 128));
        assert!(!a.page_is_blank(0x00, 128));
        assert!(a.page_is_blank(0x1000, 128));
        assert!(!a.is_all_ff());
        assert!(image(&[(0, &[0xFF; 3])]).is_all_ff());
    }

    #[test]
    fn content_hash_ignores_formatting_and_erased_padding() {
        let plain = image(&[(0x7000, &[1, 2]), (0x7004, &[3])]);
        let padded = image(&[
            (0x6FF0, &[0xFF; 16]),
            (0x7000, &[1, 2, 0xFF, 0xFF, 3, 0xFF]),
        ]);
        assert_eq!(plain.content_sha256(), padded.content_sha256());
        let moved = image(&[(0x7001, &[1, 2]), (0x7005, &[3])]);
        assert_ne!(plain.content_sha256(), moved.content_sha256());

        let mut expected = Sha256::new();
        expected.update(0x7000u32.to_be_bytes());
        expected.update([1, 2, 0xFF, 0xFF, 3]);
        assert_eq!(
            plain.content_sha256(),
            <[u8; 32]>::from(expected.finalize())
        );

        let blank: [u8; 32] = Sha256::digest([]).into();
        assert_eq!(MemoryImage::new().content_sha256(), blank);
        assert_eq!(image(&[(5, &[0xFF])]).content_sha256(), blank);
    }
}
