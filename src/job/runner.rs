//! One entry point for every job: open the programmer, manage the ISP clock, run the job inside
//! a programming session, and return a typed outcome. The worker and the CLI both call [`run`].

use std::path::PathBuf;

use super::bootloader::{BootloaderPlan, BootloaderReport, flash_bootloader};
use super::detect::{DetectReport, check_signature, detect};
use super::fuses::{FuseWriteReport, read_all, read_kinds, write_fuses};
use super::memory::{self, WriteReport};
use super::safety::{Approval, FuseValues};
use super::{CancelToken, Ctx, Level, Reporter, sck};
use crate::emulate::socket::SharedSocket;
use crate::error::{Error, Memory, Result};
use crate::hex::{MemoryImage, write_image_file};
use crate::part::{FuseKind, PartDb};
use crate::programmer::open::{ProgrammerSpec, open};

/// The crystal assumed when neither the user nor the catalog names the board's.
pub const DEFAULT_BOARD_CRYSTAL_HZ: u32 = 16_000_000;

/// What to do.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// Read signature, fuses and lock; identify the part.
    Detect,
    /// The main journey.
    FlashBootloader(BootloaderPlan),
    /// Write any image to flash (a merged production image, an application).
    FlashImage {
        /// The image.
        image: MemoryImage,
        /// Chip-erase first (otherwise pages are read and merged).
        erase: bool,
        /// The chip was erased by an earlier step (blank pages can be skipped).
        erased_before: bool,
        /// Read back and compare afterwards.
        verify: bool,
    },
    /// Compare a memory with an image.
    Verify {
        /// Which memory.
        memory: Memory,
        /// The expected contents.
        image: MemoryImage,
    },
    /// Read a whole memory to a file (.hex or .bin by extension).
    Read {
        /// Which memory.
        memory: Memory,
        /// Output file.
        path: PathBuf,
    },
    /// Chip erase.
    Erase,
    /// Read fuses and lock.
    ReadFuses,
    /// Write fuses and/or lock through the safety policy.
    WriteFuses {
        /// New values.
        values: FuseValues,
        /// The user's approval.
        approval: Approval,
    },
    /// Write an EEPROM image.
    WriteEeprom {
        /// The image.
        image: MemoryImage,
        /// Read back and compare afterwards.
        verify: bool,
    },
    /// Set every EEPROM byte to 0xFF.
    ClearEeprom,
}

impl JobKind {
    /// Whether the job reads or writes memory contents, where a faster ISP clock pays for
    /// the round trips it takes to raise it. Fuse, lock, detect and erase jobs are a few
    /// instructions each.
    pub fn moves_memory(&self) -> bool {
        !matches!(
            self,
            JobKind::Detect | JobKind::Erase | JobKind::ReadFuses | JobKind::WriteFuses { .. }
        )
    }

    /// A short name for logs and the busy message.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Detect => "detect",
            JobKind::FlashBootloader(_) => "flash bootloader",
            JobKind::FlashImage { .. } => "flash",
            JobKind::Verify { .. } => "verify",
            JobKind::Read { .. } => "read",
            JobKind::Erase => "erase",
            JobKind::ReadFuses => "read fuses",
            JobKind::WriteFuses { .. } => "write fuses",
            JobKind::WriteEeprom { .. } => "write EEPROM",
            JobKind::ClearEeprom => "clear EEPROM",
        }
    }
}

/// A complete job request.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// The programmer.
    pub programmer: ProgrammerSpec,
    /// The selected MCU (id, name or avrdude id).
    pub part: String,
    /// What to do.
    pub kind: JobKind,
}

/// What a job produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum JobOutcome {
    /// Detect's findings.
    Detected(DetectReport),
    /// The journey's report.
    Bootloader(BootloaderReport),
    /// An image was written (and verified if asked).
    Flashed {
        /// Pages written and skipped.
        write: WriteReport,
        /// Whether it was verified.
        verified: bool,
    },
    /// The memory matched.
    Verified {
        /// Bytes compared.
        bytes: u64,
    },
    /// A memory was saved.
    Read {
        /// The file.
        path: PathBuf,
        /// Bytes read.
        bytes: u64,
    },
    /// The chip was erased.
    Erased,
    /// Fuse and lock values.
    Fuses {
        /// As read.
        values: FuseValues,
    },
    /// Fuses were written.
    FusesWritten(FuseWriteReport),
}

/// Runs a job from start to end. `board` is the emulated board for port `emulated`.
pub fn run(
    request: &JobRequest,
    reporter: &mut dyn Reporter,
    cancel: CancelToken,
    board: Option<SharedSocket>,
) -> Result<JobOutcome> {
    let part = PartDb::builtin()?.find(&request.part)?;
    check_before_connecting(request, part)?;
    let mut opened = open(&request.programmer, part, board)?;
    run_on(request, opened.programmer.as_mut(), reporter, cancel)
}

/// Runs a job on a programmer the caller opened itself (the benchmark keeps the emulator's
/// handle to read its stats). The programmer spec's clock settings still apply.
pub fn run_on(
    request: &JobRequest,
    programmer: &mut dyn crate::programmer::Programmer,
    reporter: &mut dyn Reporter,
    cancel: CancelToken,
) -> Result<JobOutcome> {
    let part = PartDb::builtin()?.find(&request.part)?;
    check_before_connecting(request, part)?;
    let mut ctx = Ctx::new(programmer, part, reporter, cancel);
    let spec = &request.programmer;
    ctx.set_sck_managed(spec.sck_hz.is_none());
    sck::start(&mut ctx, spec.sck_hz)?;
    // Most keyboard and Arduino boards carry a 16 MHz crystal; if the board has a slower one,
    // the signature check after raising the clock catches it and the clock stays lower.
    let crystal_hz = spec.crystal_hz.unwrap_or(DEFAULT_BOARD_CRYSTAL_HZ);
    ctx.session(|ctx| {
        if request.kind.moves_memory() {
            sck::negotiate(ctx, Some(crystal_hz), spec.sck_hz.is_some())?;
        } else {
            sck::settle(ctx)?;
        }
        run_in_session(ctx, &request.kind)
    })
}

/// Validation that needs no programmer: bad input never reaches the chip.
fn check_before_connecting(request: &JobRequest, part: &crate::part::Part) -> Result<()> {
    match &request.kind {
        JobKind::FlashBootloader(plan) => {
            let v = super::bootloader::validate(part, &plan.image, &plan.fuses, None)?;
            let _ = v;
            Ok(())
        }
        JobKind::FlashImage { image, .. } => memory::check_fits(part, Memory::Flash, image),
        JobKind::Verify { memory, image } => memory::check_fits(part, *memory, image),
        JobKind::WriteEeprom { image, .. } => memory::check_fits(part, Memory::Eeprom, image),
        JobKind::WriteFuses { values, .. } => {
            for (&kind, &value) in values {
                super::safety::normalize(part, kind, value)?;
            }
            Ok(())
        }
        JobKind::Read { path, .. } => crate::hex::ImageFormat::from_path(path).map(|_| ()),
        JobKind::Detect | JobKind::Erase | JobKind::ReadFuses | JobKind::ClearEeprom => Ok(()),
    }
}

fn run_in_session(ctx: &mut Ctx<'_>, kind: &JobKind) -> Result<JobOutcome> {
    // Detect identifies whatever answers; the journey checks the signature itself.
    if !matches!(kind, JobKind::Detect | JobKind::FlashBootloader(_)) {
        check_signature(ctx)?;
    }
    match kind {
        JobKind::FlashImage { image, .. } => memory::check_writable(ctx, image)?,
        JobKind::FlashBootloader(plan) => memory::check_writable(ctx, &plan.image)?,
        _ => {}
    }
    match kind {
        JobKind::Detect => detect(ctx).map(JobOutcome::Detected),
        JobKind::FlashBootloader(plan) => {
            with_verify_retry(ctx, |ctx| flash_bootloader(ctx, plan)).map(JobOutcome::Bootloader)
        }
        JobKind::FlashImage {
            image,
            erase,
            erased_before,
            verify,
        } => {
            if *erase {
                memory::erase(ctx)?;
            }
            let write = memory::write_image(ctx, Memory::Flash, image, *erase || *erased_before)?;
            if *verify {
                with_verify_retry(ctx, |ctx| memory::verify_image(ctx, Memory::Flash, image))?;
            }
            Ok(JobOutcome::Flashed {
                write,
                verified: *verify,
            })
        }
        JobKind::Verify { memory: mem, image } => {
            with_verify_retry(ctx, |ctx| memory::verify_image(ctx, *mem, image))?;
            Ok(JobOutcome::Verified {
                bytes: image.data_len(),
            })
        }
        JobKind::Read { memory: mem, path } => {
            let image = memory::read_all(ctx, *mem)?;
            write_image_file(path, &image)?;
            ctx.log(Level::Success, format!("Saved {mem} to {}", path.display()));
            Ok(JobOutcome::Read {
                path: path.clone(),
                bytes: image.data_len(),
            })
        }
        JobKind::Erase => {
            memory::erase(ctx)?;
            ctx.log(Level::Success, "Chip erased");
            Ok(JobOutcome::Erased)
        }
        JobKind::ReadFuses => {
            let values = read_all(ctx.prog, ctx.part)?;
            for (kind, value) in &values {
                ctx.info(format!("{kind} = 0x{value:02X}"));
            }
            Ok(JobOutcome::Fuses { values })
        }
        JobKind::WriteFuses { values, approval } => {
            let (fuses, lock): (FuseValues, FuseValues) =
                values.iter().partition(|(k, _)| **k != FuseKind::Lock);
            // Review everything together (one confirmation), write fuses first, lock last.
            // Only the bytes being written need reading: the review compares those.
            let kinds: Vec<FuseKind> = values.keys().copied().collect();
            let current = read_kinds(ctx.prog, &kinds)?;
            let review = super::safety::review(ctx.part, &current, values)?;
            review.authorize(approval)?;
            let authorized = Approval {
                accept_high: true,
                ..approval.clone()
            };
            // A lock byte that already holds the value needs no second pass (and no second
            // "verified" line in the log).
            let lock_changes = lock.iter().any(|(kind, value)| {
                current
                    .get(kind)
                    .is_none_or(|&held| !super::safety::holds(ctx.part, *kind, held, *value))
            });
            let mut report = if fuses.is_empty() {
                write_fuses(ctx, &lock, &authorized, Some(current))?
            } else {
                let mut report = write_fuses(ctx, &fuses, &authorized, Some(current))?;
                if lock_changes {
                    let now = report.after.clone();
                    let lock_report = write_fuses(ctx, &lock, &authorized, Some(now))?;
                    report.after = lock_report.after;
                    report.written.extend(lock_report.written);
                }
                report
            };
            report.review = review;
            Ok(JobOutcome::FusesWritten(report))
        }
        JobKind::WriteEeprom { image, verify } => {
            let write = memory::write_image(ctx, Memory::Eeprom, image, false)?;
            if *verify {
                memory::verify_image(ctx, Memory::Eeprom, image)?;
            }
            Ok(JobOutcome::Flashed {
                write,
                verified: *verify,
            })
        }
        JobKind::ClearEeprom => {
            let mut image = MemoryImage::new();
            image.insert(0, &vec![0xFF; ctx.part.eeprom.size as usize])?;
            let write = memory::write_image(ctx, Memory::Eeprom, &image, false)?;
            memory::verify_image(ctx, Memory::Eeprom, &image)?;
            Ok(JobOutcome::Flashed {
                write,
                verified: true,
            })
        }
    }
}

/// Runs a step that ends in a verify; when the verify fails on a programmer that can lower its
/// clock, lowers it and re-runs only the verify part by running the step again (writes are
/// idempotent after an erase, and the bootloader journey erases first).
fn with_verify_retry<T>(
    ctx: &mut Ctx<'_>,
    mut step: impl FnMut(&mut Ctx<'_>) -> Result<T>,
) -> Result<T> {
    match step(ctx) {
        Err(Error::Verify { .. }) if sck::step_down(ctx)? => {
            ctx.log(Level::Warn, "Retrying at the lower ISP clock");
            step(ctx)
        }
        other => other,
    }
}
