//! Memory jobs: erase, write an image page by page, verify, and read back.

use super::{Ctx, Level, Stage};
use crate::error::{Error, Memory, Result};
use crate::hex::MemoryImage;
use crate::part::Part;

/// What a write did, also when it stopped early.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WriteReport {
    /// Pages written, by byte address.
    pub pages_written: Vec<u32>,
    /// Pages of the image skipped because they are blank (0xFF) on an erased chip.
    pub pages_skipped: usize,
    /// Bytes of image data.
    pub bytes: u64,
}

fn layout(part: &Part, memory: Memory) -> crate::part::MemoryLayout {
    match memory {
        Memory::Flash => part.flash,
        Memory::Eeprom => part.eeprom,
    }
}

/// Checks, before anything touches the chip, that the image fits the memory.
pub fn check_fits(part: &Part, memory: Memory, image: &MemoryImage) -> Result<()> {
    if image.is_empty() {
        return Err(Error::Image(format!(
            "the {memory} image is empty: nothing to write"
        )));
    }
    let size = layout(part, memory).size;
    if image.end() > u64::from(size) {
        return Err(Error::Image(format!(
            "the image reaches 0x{:05X}, past the end of the {}'s {} bytes of {memory} ({}); is it built for another MCU?",
            image.end() - 1,
            part.name,
            size,
            image.range_string()
        )));
    }
    Ok(())
}

/// Checks, before anything is erased, that a flash image lies where the programmer can write
/// (a bootloader cannot overwrite its own section; see
/// [`crate::programmer::Programmer::writable_flash`]).
pub fn check_writable(ctx: &Ctx<'_>, image: &MemoryImage) -> Result<()> {
    let Some(range) = ctx.prog.writable_flash() else {
        return Ok(());
    };
    if image.is_empty() || (image.start() >= range.start && image.end() <= u64::from(range.end)) {
        return Ok(());
    }
    Err(Error::Image(format!(
        "the image covers {}, but {} can only write flash 0x{:05X}-0x{:05X} (above is the bootloader's own section); nothing was written",
        image.range_string(),
        ctx.prog.info().driver,
        range.start,
        range.end.saturating_sub(1)
    )))
}

/// Chip erase: flash, EEPROM (unless EESAVE) and lock bits.
pub fn erase(ctx: &mut Ctx<'_>) -> Result<()> {
    ctx.stage(Stage::Erase);
    ctx.info("Erasing chip");
    ctx.prog.chip_erase(ctx.part)?;
    ctx.progress(Stage::Erase, 1, 1);
    Ok(())
}

/// Writes the pages `image` touches. After a chip erase (`erased`), pages that are blank in
/// the image are skipped and gaps are written as 0xFF; without an erase, gaps keep what the
/// chip holds (the page is read first, like avrdude's `-D`).
///
/// On failure or cancel the error says how many pages were written, so the user knows the
/// state of the chip.
pub fn write_image(
    ctx: &mut Ctx<'_>,
    memory: Memory,
    image: &MemoryImage,
    erased: bool,
) -> Result<WriteReport> {
    check_fits(ctx.part, memory, image)?;
    ctx.stage(Stage::Write);
    let page_size = layout(ctx.part, memory).page_size;
    let pages = image.pages_touched(page_size);
    let mut report = WriteReport {
        bytes: image.data_len(),
        ..Default::default()
    };
    let to_write: Vec<u32> = pages
        .into_iter()
        .filter(|&p| {
            let skip = erased && image.page_is_blank(p, page_size);
            report.pages_skipped += usize::from(skip);
            !skip
        })
        .collect();
    let total = to_write.len() as u64 * u64::from(page_size);
    ctx.info(format!(
        "Writing {} bytes of {memory} ({}): {} page(s){}",
        image.data_len(),
        image.range_string(),
        to_write.len(),
        if report.pages_skipped > 0 {
            format!(", {} blank page(s) skipped", report.pages_skipped)
        } else {
            String::new()
        }
    ));
    ctx.progress(Stage::Write, 0, total);
    for (i, &addr) in to_write.iter().enumerate() {
        let result = ctx.check_cancel().and_then(|()| {
            let data = if erased {
                image.page(addr, page_size, 0xFF)
            } else {
                fill_from_chip(ctx, memory, image, addr, page_size)?
            };
            ctx.prog.write_page(ctx.part, memory, addr, &data)
        });
        if let Err(e) = result {
            log_partial_write(ctx, memory, &report, to_write.len(), &e);
            return Err(match e {
                Error::Cancelled => e,
                other => Error::PageWrite {
                    memory,
                    page_addr: addr,
                    source: Box::new(other),
                },
            });
        }
        report.pages_written.push(addr);
        ctx.progress(Stage::Write, (i as u64 + 1) * u64::from(page_size), total);
    }
    Ok(report)
}

fn fill_from_chip(
    ctx: &mut Ctx<'_>,
    memory: Memory,
    image: &MemoryImage,
    addr: u32,
    page_size: u32,
) -> Result<Vec<u8>> {
    let mut page = vec![0u8; page_size as usize];
    ctx.prog.read(ctx.part, memory, addr, &mut page)?;
    for (i, slot) in page.iter_mut().enumerate() {
        if let Some(b) = image.get(addr + i as u32) {
            *slot = b;
        }
    }
    Ok(page)
}

fn log_partial_write(
    ctx: &mut Ctx<'_>,
    memory: Memory,
    report: &WriteReport,
    planned: usize,
    error: &Error,
) {
    let done = &report.pages_written;
    let what = match (done.first(), done.last()) {
        (Some(first), Some(last)) => format!(
            "{} of {planned} {memory} page(s) were written (0x{first:05X}-0x{:05X}) before {}",
            done.len(),
            last + layout(ctx.part, memory).page_size - 1,
            if matches!(error, Error::Cancelled) {
                "the cancel"
            } else {
                "the failure"
            }
        ),
        _ => format!("no {memory} page was written"),
    };
    ctx.log(Level::Warn, what);
}

/// Reads back every byte the image holds and compares. The error names the first differing
/// address (expected vs read) and how many bytes differ.
pub fn verify_image(ctx: &mut Ctx<'_>, memory: Memory, image: &MemoryImage) -> Result<()> {
    check_fits(ctx.part, memory, image)?;
    ctx.stage(Stage::Verify);
    let chunk = read_chunk(ctx, memory);
    let total = image.data_len();
    let mut done = 0u64;
    let mut first: Option<(u32, u8, u8)> = None;
    let mut mismatches = 0usize;
    ctx.progress(Stage::Verify, 0, total);
    for segment in image.segments() {
        for (offset, expected) in chunk_ranges(segment.start, segment.data.len(), chunk) {
            ctx.check_cancel()?;
            let mut buf = vec![0u8; expected];
            ctx.prog.read(ctx.part, memory, offset, &mut buf)?;
            let base = (offset - segment.start) as usize;
            for (i, (&want, &got)) in segment.data[base..base + expected]
                .iter()
                .zip(&buf)
                .enumerate()
            {
                if want != got {
                    mismatches += 1;
                    first.get_or_insert((offset + i as u32, want, got));
                }
            }
            done += expected as u64;
            ctx.progress(Stage::Verify, done, total);
        }
    }
    match first {
        None => {
            ctx.log(
                Level::Success,
                format!("{total} bytes of {memory} verified"),
            );
            Ok(())
        }
        Some((addr, expected, read)) => Err(Error::Verify {
            memory,
            addr,
            expected,
            read,
            mismatches,
        }),
    }
}

/// Reads `len` bytes of `memory` from `start` into an image.
pub fn read_memory(ctx: &mut Ctx<'_>, memory: Memory, start: u32, len: u32) -> Result<MemoryImage> {
    crate::programmer::check_range(ctx.part, memory, start, len as usize)?;
    ctx.stage(Stage::Read);
    let chunk = read_chunk(ctx, memory);
    let mut data = Vec::with_capacity(len as usize);
    ctx.progress(Stage::Read, 0, u64::from(len));
    for (offset, n) in chunk_ranges(start, len as usize, chunk) {
        ctx.check_cancel()?;
        let mut buf = vec![0u8; n];
        ctx.prog.read(ctx.part, memory, offset, &mut buf)?;
        data.extend_from_slice(&buf);
        ctx.progress(Stage::Read, data.len() as u64, u64::from(len));
    }
    let mut image = MemoryImage::new();
    if !data.is_empty() {
        image.insert(start, &data)?;
    }
    ctx.info(format!("Read {len} bytes of {memory}"));
    Ok(image)
}

/// Reads a whole memory.
pub fn read_all(ctx: &mut Ctx<'_>, memory: Memory) -> Result<MemoryImage> {
    let size = layout(ctx.part, memory).size;
    read_memory(ctx, memory, 0, size)
}

fn read_chunk(ctx: &Ctx<'_>, memory: Memory) -> u32 {
    let page = layout(ctx.part, memory).page_size;
    let preferred = ctx.prog.info().capabilities.read_chunk;
    if preferred == 0 { page } else { preferred }
}

/// Splits `start..start+len` into reads of at most `chunk` bytes that do not cross a multiple
/// of `chunk` (so they stay page-aligned when `chunk` is a page multiple).
fn chunk_ranges(start: u32, len: usize, chunk: u32) -> Vec<(u32, usize)> {
    let chunk = chunk.max(1);
    let end = u64::from(start) + len as u64;
    let mut out = Vec::new();
    let mut at = u64::from(start);
    while at < end {
        let boundary = (at / u64::from(chunk) + 1) * u64::from(chunk);
        let next = boundary.min(end);
        out.push((at as u32, (next - at) as usize));
        at = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::chunk_ranges;

    #[test]
    fn chunks_stay_aligned() {
        assert_eq!(
            chunk_ranges(0x10, 0x100, 0x80),
            vec![(0x10, 0x70), (0x80, 0x80), (0x100, 0x10)]
        );
        assert_eq!(chunk_ranges(0, 0, 128), vec![]);
        assert_eq!(
            chunk_ranges(0x7000, 256, 128),
            vec![(0x7000, 128), (0x7080, 128)]
        );
    }
}
