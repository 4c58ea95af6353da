//! The job the line runs on each board, in one programming session: clock negotiation,
//! signature check, erase, write, verify, EEPROM, fuses, lock. Run on its own it is "the plain
//! flash job" the benchmark compares a line's per-board time with.

use super::profile::PreparedLine;
use crate::error::{Error, Memory, Result};
use crate::job::detect::check_signature;
use crate::job::fuses::write_fuses;
use crate::job::memory::{check_writable, erase, verify_image, write_image};
use crate::job::runner::DEFAULT_BOARD_CRYSTAL_HZ;
use crate::job::safety::FuseValues;
use crate::job::{CancelToken, Ctx, Level, Reporter, sck};
use crate::part::FuseKind;
use crate::programmer::Programmer;

/// What the job did to one board.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BoardJobReport {
    /// The signature checked.
    pub signature: [u8; 3],
    /// Flash pages written.
    pub pages_written: usize,
    /// Fuses and lock as read back after writing (empty when the profile sets none).
    pub fuses_after: FuseValues,
}

/// Flashes one board as the line's profile says. The programmer must be open; the board must
/// be in the fixture.
pub fn flash_board(
    prog: &mut dyn Programmer,
    line: &PreparedLine,
    reporter: &mut dyn Reporter,
    cancel: CancelToken,
) -> Result<BoardJobReport> {
    let mut ctx = Ctx::new(prog, &line.part, reporter, cancel);
    let spec = &line.programmer;
    ctx.set_sck_managed(spec.sck_hz.is_none());
    sck::start(&mut ctx, spec.sck_hz)?;
    let crystal_hz = spec.crystal_hz.unwrap_or(DEFAULT_BOARD_CRYSTAL_HZ);
    ctx.session(|ctx| {
        sck::negotiate(ctx, Some(crystal_hz), spec.sck_hz.is_some())?;
        let signature = check_signature(ctx)?;
        check_writable(ctx, &line.image)?;
        erase(ctx)?;
        let written = write_image(ctx, Memory::Flash, &line.image, true)?;
        if line.verify {
            verify_with_retry(ctx, Memory::Flash, &line.image)?;
        }
        if let Some(eeprom) = &line.eeprom {
            write_image(ctx, Memory::Eeprom, eeprom, false)?;
            if line.verify {
                verify_with_retry(ctx, Memory::Eeprom, eeprom)?;
            }
        }
        let mut after = FuseValues::new();
        if !line.fuses.is_empty() {
            // The chip erase cleared the lock bits: read the fuses fresh.
            after = write_fuses(ctx, &line.fuses, &line.approval, None)?.after;
        }
        if let Some(lock) = line.lock {
            let lock_only: FuseValues = [(FuseKind::Lock, lock)].into_iter().collect();
            let current = (!after.is_empty()).then(|| after.clone());
            after = write_fuses(ctx, &lock_only, &line.approval, current)?.after;
        }
        ctx.log(Level::Success, "Board flashed");
        Ok(BoardJobReport {
            signature,
            pages_written: written.pages_written.len(),
            fuses_after: after,
        })
    })
}

/// A verify that failed on a programmer that can slow down is tried once more at half the
/// clock: a marginal wire is not a bad board.
fn verify_with_retry(
    ctx: &mut Ctx<'_>,
    memory: Memory,
    image: &crate::hex::MemoryImage,
) -> Result<()> {
    match verify_image(ctx, memory, image) {
        Err(Error::Verify { .. }) if sck::step_down(ctx)? => {
            ctx.log(Level::Warn, "Verifying again at the lower ISP clock");
            verify_image(ctx, memory, image)
        }
        other => other,
    }
}

/// The first address the error names: a verify mismatch, or the page a write failed on.
pub fn failing_address(error: &Error) -> Option<u32> {
    match error {
        Error::Verify { addr, .. } => Some(*addr),
        Error::PageWrite { page_addr, .. } => Some(*page_addr),
        Error::Interrupted { source, .. } => failing_address(source),
        _ => None,
    }
}
