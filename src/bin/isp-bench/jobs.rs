//! The four benchmark jobs: what each writes, how our engine is asked to do it, how avrdude is,
//! and its shape for the limit formula.

use isp_toolbox::emulate::demo::demo_chip;
use isp_toolbox::error::Result;
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::job::runner::JobKind;
use isp_toolbox::job::safety::{Approval, FuseValues, holds};
use isp_toolbox::part::{FuseKind, Part, PartDb};

use super::limits::JobShape;

/// One benchmark job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchJob {
    /// A 4 KB bootloader image at the top of a 32 KB ATmega32U4, flash + verify.
    Boot4k,
    /// A full 32 KB image on an ATmega32U4, flash + verify.
    Full32k,
    /// A full 128 KB image on an AT90USB1286, flash + verify.
    Full128k,
    /// Fuse read + write + verify on an ATmega32U4.
    Fuses,
}

/// The fuses the fuse job writes (a Pro Micro's: JTAG off, BOD 2.6 V, HWBE off). The efuse is
/// 0xFB, not the often-quoted 0xCB: the ATmega32U4 reads its unused bits back as 1, and
/// avrdude 7.1 then polls a "failed" write for seconds before it ignores the mismatch.
pub const FUSE_JOB_VALUES: [(FuseKind, u8); 3] = [
    (FuseKind::Low, 0xFF),
    (FuseKind::High, 0xD9),
    (FuseKind::Extended, 0xFB),
];

impl BenchJob {
    /// Every job, in table order.
    pub const ALL: [BenchJob; 4] = [
        BenchJob::Boot4k,
        BenchJob::Full32k,
        BenchJob::Full128k,
        BenchJob::Fuses,
    ];

    /// The id used on the command line and in the JSON.
    pub fn id(self) -> &'static str {
        match self {
            BenchJob::Boot4k => "boot4k",
            BenchJob::Full32k => "full32k",
            BenchJob::Full128k => "full128k",
            BenchJob::Fuses => "fuses",
        }
    }

    /// Finds a job by id.
    pub fn from_id(id: &str) -> Option<BenchJob> {
        BenchJob::ALL.into_iter().find(|j| j.id() == id)
    }

    /// The part the job runs on (our part database id).
    pub fn part_id(self) -> &'static str {
        match self {
            BenchJob::Full128k => "at90usb1286",
            _ => "atmega32u4",
        }
    }

    /// The part record.
    pub fn part(self) -> Result<&'static Part> {
        PartDb::builtin()?.find(self.part_id())
    }

    /// The flash image the job writes, `None` for the fuse job.
    pub fn image(self) -> Result<Option<MemoryImage>> {
        let part = self.part()?;
        let (start, len) = match self {
            BenchJob::Boot4k => (part.flash.size - 4096, 4096),
            BenchJob::Full32k | BenchJob::Full128k => (0, part.flash.size),
            BenchJob::Fuses => return Ok(None),
        };
        let mut image = MemoryImage::new();
        image.insert(start, &pattern(len as usize, start))?;
        Ok(Some(image))
    }

    /// The request our engine runs: chip erase, write, verify (as avrdude's default `-U
    /// flash:w` does), or the fuse write (which reads, writes and reads back).
    pub fn kind(self) -> Result<JobKind> {
        match self.image()? {
            Some(image) => Ok(JobKind::FlashImage {
                image,
                erase: true,
                erased_before: false,
                verify: true,
            }),
            None => Ok(JobKind::WriteFuses {
                values: fuse_values(),
                approval: Approval {
                    confirmed_token: None,
                    accept_high: true,
                    force_critical: false,
                },
            }),
        }
    }

    /// avrdude's `-U` arguments for the job (`hex` is the image file for flash jobs).
    pub fn avrdude_updates(self, hex: &str) -> Vec<String> {
        match self {
            BenchJob::Fuses => FUSE_JOB_VALUES
                .iter()
                .map(|(kind, value)| format!("{}:w:0x{value:02X}:m", avrdude_fuse(*kind)))
                .flat_map(|u| ["-U".to_string(), u])
                .collect(),
            _ => vec!["-U".into(), format!("flash:w:{hex}:i")],
        }
    }

    /// The job's shape for the limit: pages, bytes read back, instructions.
    pub fn shape(self) -> Result<JobShape> {
        let part = self.part()?;
        let page_size = u64::from(part.flash.page_size);
        // Programming enable and the three signature bytes.
        let setup = 4;
        let shape = match self.image()? {
            Some(image) => {
                let len = image.data_len();
                let high = image
                    .segments()
                    .iter()
                    .map(|s| s.end().saturating_sub(u64::from(s.start).max(0x1_0000)))
                    .sum();
                JobShape {
                    pages_written: len.div_ceil(page_size),
                    page_size,
                    bytes_read: len,
                    bytes_read_high: high,
                    single_instructions: setup,
                    erases: 1,
                    fuse_writes: 0,
                    // Programming Enable, the signature and the erase; the pages follow.
                    instruction_exchanges: 1,
                }
            }
            None => {
                // Read the three fuses, write those the board does not hold yet, read each
                // written one back.
                let changed = fuses_to_change(part);
                JobShape {
                    pages_written: 0,
                    page_size,
                    bytes_read: 0,
                    bytes_read_high: 0,
                    single_instructions: setup + FUSE_JOB_VALUES.len() as u64 + changed,
                    erases: 0,
                    fuse_writes: changed,
                    // Enable, signature, reads and the first write; each later write with the
                    // read-back of the one before; the last read-back.
                    instruction_exchanges: changed + 1,
                }
            }
        };
        Ok(shape)
    }
}

/// How many of the fuse job's bytes differ, on their implemented bits, from what the bench's
/// board holds (the demo chip: lfuse 0xFF and the part's defaults). A byte that already
/// matches needs no write: the least any tool must do is read it.
pub fn fuses_to_change(part: &Part) -> u64 {
    let board = demo_chip(part);
    FUSE_JOB_VALUES
        .iter()
        .filter(|(kind, value)| {
            board
                .fuse(*kind)
                .is_none_or(|held| !holds(part, *kind, held, *value))
        })
        .count() as u64
}

/// The fuse job's values as the engine takes them.
pub fn fuse_values() -> FuseValues {
    FUSE_JOB_VALUES.iter().copied().collect()
}

fn avrdude_fuse(kind: FuseKind) -> &'static str {
    match kind {
        FuseKind::Low => "lfuse",
        FuseKind::High => "hfuse",
        FuseKind::Extended => "efuse",
        _ => "lock",
    }
}

/// Deterministic, non-repeating data (no 0xFF runs an engine could skip as blank).
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match (x >> 8) as u8 {
                0xFF => 0x7F,
                b => b,
            }
        })
        .collect()
}
