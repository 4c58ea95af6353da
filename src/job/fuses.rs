//! Fuse and lock jobs: read all, and write through the safety policy with a masked verify.

use super::safety::{Approval, FuseReview, FuseValues, holds, review};
use super::{Ctx, Level, Stage};
use crate::error::{Error, Result};
use crate::part::{FuseKind, Part};
use crate::programmer::{Programmer, wait_ready};

/// Reads every fuse byte the part has, and the lock byte.
pub fn read_all(prog: &mut dyn Programmer, part: &Part) -> Result<FuseValues> {
    let kinds: Vec<FuseKind> = part.fuse_bytes().map(|b| b.kind).collect();
    read_kinds(prog, &kinds)
}

/// Reads the given fuse bytes (in one round trip where the programmer can).
pub fn read_kinds(prog: &mut dyn Programmer, kinds: &[FuseKind]) -> Result<FuseValues> {
    let values = prog.read_fuses(kinds)?;
    Ok(kinds.iter().copied().zip(values).collect())
}

/// What a fuse write did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FuseWriteReport {
    /// The review the write was authorized against.
    pub review: FuseReview,
    /// Values before.
    pub before: FuseValues,
    /// Values read back after.
    pub after: FuseValues,
    /// Bytes actually written (unchanged bytes are skipped).
    pub written: Vec<FuseKind>,
}

/// Reads the current values of the proposed bytes (unless the caller read them in this
/// session with nothing in between that could change them: `current`), reviews the proposal,
/// checks the approval, writes what changed (lock byte last: LB1 locks the fuses), and reads
/// each written byte back to verify it on its implemented bits ([`verify_fuse`]). The values
/// after are those read-backs plus the bytes that were already right (no second pass over
/// the bytes).
///
/// Nothing is written if the policy refuses.
pub fn write_fuses(
    ctx: &mut Ctx<'_>,
    proposed: &FuseValues,
    approval: &Approval,
    current: Option<FuseValues>,
) -> Result<FuseWriteReport> {
    let stage = if proposed.keys().all(|k| *k == FuseKind::Lock) {
        Stage::Lock
    } else {
        Stage::Fuses
    };
    ctx.stage(stage);
    let before = match current {
        Some(values) => values,
        None => {
            let kinds: Vec<FuseKind> = proposed.keys().copied().collect();
            read_kinds(ctx.prog, &kinds)?
        }
    };
    let review = review(ctx.part, &before, proposed)?;
    for line in review.describe().lines() {
        ctx.log(Level::Info, line.to_string());
    }
    review.authorize(approval)?;
    let total = review.writes.len() as u64;
    let mut written = Vec::new();
    let mut after = before.clone();
    let mut done = 0;
    for kind in FuseKind::ALL.iter() {
        let Some(&value) = review.writes.get(kind) else {
            continue;
        };
        let current = before.get(kind).copied();
        if current.is_some_and(|c| holds(ctx.part, *kind, c, value)) {
            // Read a moment ago and matching: already verified.
            ctx.log(
                Level::Debug,
                format!("{kind} already 0x{value:02X}; not rewritten"),
            );
        } else {
            ctx.check_cancel()?;
            ctx.info(format!("Writing {kind} = 0x{value:02X}"));
            ctx.prog.write_fuse(ctx.part, *kind, value)?;
            written.push(*kind);
            let read = verify_fuse(ctx, *kind, value)?;
            after.insert(*kind, read);
        }
        done += 1;
        ctx.progress(stage, done, total);
    }
    ctx.log(
        Level::Success,
        format!(
            "Fuses verified: {}",
            after
                .iter()
                .map(|(k, v)| format!("{k} 0x{v:02X}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(FuseWriteReport {
        review,
        before,
        after,
        written,
    })
}

/// Reads one byte back and compares it on the bits that exist in silicon only, so the
/// "upper four bits of the extended fuse" never raise a false alarm. Returns what was read.
pub fn verify_fuse(ctx: &mut Ctx<'_>, kind: FuseKind, wrote: u8) -> Result<u8> {
    let mask = ctx
        .part
        .fuse(kind)
        .map(|b| b.mask)
        .ok_or_else(|| Error::invalid(format!("the {} has no {kind}", ctx.part.name)))?;
    let mut read = ctx.prog.read_fuse(kind)?;
    if read & mask != wrote & mask {
        // The write was given the datasheet's time; a chip that needs longer is still busy and
        // reads back something else. Wait for RDY/BSY and look again before calling it failed.
        ctx.log(
            Level::Debug,
            format!(
                "{kind} reads 0x{read:02X} for 0x{wrote:02X}; waiting for RDY/BSY and reading again"
            ),
        );
        wait_ready(ctx.prog, ctx.part, ctx.part.timing.fuse_write_us)?;
        read = ctx.prog.read_fuse(kind)?;
    }
    if read & mask != wrote & mask {
        return Err(Error::FuseVerify {
            fuse: kind.avrdude_name(),
            wrote,
            read,
            mask,
        });
    }
    if read != wrote {
        ctx.log(
            Level::Debug,
            format!(
                "{kind} reads 0x{read:02X} for 0x{wrote:02X}: only bits 0x{mask:02X} exist, so this matches"
            ),
        );
    }
    Ok(read)
}
