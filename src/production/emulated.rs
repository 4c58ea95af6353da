//! An emulated production line: a script of boards arriving at and leaving the emulated ISP
//! socket, played by a bench that stands in for the operator's hands. While the line waits for
//! a board, the next one in the script is put in; while it waits for removal, the board is
//! taken out. Pauses let the socket's virtual time pass instead of sleeping, so a script of
//! dozens of boards runs in moments and every duration is the emulator's modeled time.
//!
//! Script steps, comma-separated:
//!
//! | Step | Board |
//! |------|-------|
//! | `fresh` | a factory-fresh chip of the profile's MCU (1 MHz, CKDIV8) |
//! | `good` | a chip running from the board's 16 MHz crystal (flashed before) |
//! | `none` | nobody: the fixture stays empty for one poll |
//! | `fresh-<mcu>` | a factory-fresh chip of another MCU (`fresh-m16u4`): a wrong MCU |
//! | `fail` | a chip with a worn-out flash cell inside the image: its verify fails there |
//! | `removed-mid-write` | a fresh chip pulled out of the fixture after two flash pages |
//!
//! When the script is done and the fixture is empty, the bench stops the line.

use std::collections::VecDeque;
use std::time::Duration;

use super::bench::{Bench, Signal, Waiting};
use super::log::BoardRecord;
use super::profile::PreparedLine;
use crate::emulate::chip::{ChipConfig, EmulatedChip, FuseValues as ChipFuses};
use crate::emulate::socket::{SharedSocket, lock};
use crate::error::{Error, Result};
use crate::hex::MemoryImage;
use crate::part::{FuseKind, Part, PartDb};

/// One step of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptStep {
    /// A factory-fresh chip of the profile's MCU.
    Fresh,
    /// A chip already running from its crystal.
    Good,
    /// An empty fixture for one poll.
    Nothing,
    /// A factory-fresh chip of another MCU (its part id).
    Other(String),
    /// A chip whose flash fails verify inside the image.
    Failing,
    /// A chip pulled out after this many flash pages.
    RemovedMidWrite(u64),
}

impl ScriptStep {
    fn parse(text: &str) -> Result<ScriptStep> {
        let t = text.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "fresh" => ScriptStep::Fresh,
            "good" => ScriptStep::Good,
            "none" => ScriptStep::Nothing,
            "fail" => ScriptStep::Failing,
            "removed-mid-write" => ScriptStep::RemovedMidWrite(2),
            other => match other.strip_prefix("fresh-") {
                Some(mcu) => ScriptStep::Other(PartDb::builtin()?.find(mcu)?.id.clone()),
                None => {
                    return Err(Error::invalid(format!(
                        "unknown board '{text}' in the emulated script: use fresh, good, none, fresh-<mcu>, fail or removed-mid-write, separated by commas"
                    )));
                }
            },
        })
    }
}

/// Parses `fresh,none,fresh-m16u4,fail,removed-mid-write`.
pub fn parse_script(text: &str) -> Result<Vec<ScriptStep>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(ScriptStep::parse)
        .collect()
}

/// The operator's hands on an emulated socket, and `inner` for everything else
/// (acknowledgements, stop requests).
pub struct ScriptedBench<B: Bench> {
    socket: SharedSocket,
    part: Part,
    fault_addr: u32,
    steps: VecDeque<ScriptStep>,
    inner: B,
    boards_inserted: u64,
    insertions_ns: Vec<u64>,
    pulled: Vec<EmulatedChip>,
}

impl<B: Bench> ScriptedBench<B> {
    /// A bench playing `steps` into `socket` (empty it first) for `line`'s part and image.
    pub fn new(
        socket: SharedSocket,
        line: &PreparedLine,
        steps: Vec<ScriptStep>,
        inner: B,
    ) -> Self {
        ScriptedBench {
            socket,
            part: line.part.clone(),
            fault_addr: fault_address(&line.image),
            steps: steps.into(),
            inner,
            boards_inserted: 0,
            insertions_ns: Vec::new(),
            pulled: Vec::new(),
        }
    }

    /// Where a `fail` board's worn-out cell is: the first image byte that is not 0x00 (the
    /// cell reads 0x00).
    pub fn fault_addr(&self) -> u32 {
        self.fault_addr
    }

    /// The socket's virtual time at each board's insertion, in order.
    pub fn insertions_ns(&self) -> &[u64] {
        &self.insertions_ns
    }

    /// The boards taken out so far, in order (a board pulled out mid-write is not among them).
    pub fn pulled(&self) -> &[EmulatedChip] {
        &self.pulled
    }

    /// The operator behind the hands.
    pub fn inner(&mut self) -> &mut B {
        &mut self.inner
    }

    fn chip(&mut self, step: &ScriptStep) -> Result<EmulatedChip> {
        self.boards_inserted += 1;
        board_chip(step, &self.part, self.fault_addr, self.boards_inserted)
    }

    fn play(&mut self, waiting: Waiting) -> Signal {
        let mut socket = lock(&self.socket);
        match waiting {
            Waiting::Removal => {
                if let Some(chip) = socket.remove() {
                    self.pulled.push(chip);
                }
                Signal::Continue
            }
            Waiting::Board if socket.chip().is_some() => Signal::Continue,
            Waiting::Board => {
                drop(socket);
                let Some(step) = self.steps.pop_front() else {
                    return Signal::Stop;
                };
                if step == ScriptStep::Nothing {
                    return Signal::Continue;
                }
                let chip = match self.chip(&step) {
                    Ok(chip) => chip,
                    Err(_) => return Signal::Stop,
                };
                let mut socket = lock(&self.socket);
                socket.insert(chip);
                self.insertions_ns.push(socket.now_ns());
                if let ScriptStep::RemovedMidWrite(pages) = step {
                    socket.remove_after_flash_pages(pages);
                }
                Signal::Continue
            }
        }
    }
}

/// The chip a script step puts in the fixture (`none` and `removed-mid-write` give a fresh
/// chip; the socket does the removal): board number `n` of the run gets its own calibration
/// byte and noise, as real chips do. `fault_addr` is where a `fail` board's worn-out cell is
/// ([`fault_address`]). The GUI's emulated fixture uses this for its buttons.
pub fn board_chip(step: &ScriptStep, part: &Part, fault_addr: u32, n: u64) -> Result<EmulatedChip> {
    let part = match step {
        ScriptStep::Other(id) => PartDb::builtin()?.find(id)?.clone(),
        _ => part.clone(),
    };
    // Each board has its own calibration byte and noise, as real chips do.
    let calibration = (0..part.calibration_bytes)
        .map(|i| {
            0x80u8
                .wrapping_add((n as u8).wrapping_mul(7))
                .wrapping_add(i)
        })
        .collect();
    let running = ChipFuses {
        lfuse: 0xFF,
        hfuse: part.fuse(FuseKind::High).map_or(0xD9, |h| h.default),
        efuse: part.fuse(FuseKind::Extended).map(|e| e.default),
    };
    let config = ChipConfig {
        calibration: Some(calibration),
        noise_seed: crate::emulate::chip::DEFAULT_NOISE_SEED ^ n,
        fuses: matches!(step, ScriptStep::Good | ScriptStep::Failing).then_some(running),
        ..ChipConfig::default()
    };
    let mut chip = EmulatedChip::new(&part, config)?;
    if *step == ScriptStep::Failing {
        chip.stick_flash_bits_low(fault_addr, 0xFF);
    }
    Ok(chip)
}

/// Where a `fail` board's worn-out cell goes: the first image byte that is not 0x00 (the cell
/// reads 0x00, so the verify fails there).
pub fn fault_address(image: &MemoryImage) -> u32 {
    image
        .segments()
        .iter()
        .flat_map(|s| {
            s.data
                .iter()
                .enumerate()
                .map(move |(i, &b)| (s.start + i as u32, b))
        })
        .find(|&(_, b)| b != 0)
        .map_or(image.start(), |(a, _)| a)
}

impl<B: Bench> Bench for ScriptedBench<B> {
    fn pause(&mut self, duration: Duration, waiting: Waiting) -> Signal {
        if self.inner.stop_requested() {
            return Signal::Stop;
        }
        // The hands act at the start of the pause: a board put in just after a probe that
        // saw an empty fixture waits a whole poll interval (the worst case).
        let signal = self.play(waiting);
        lock(&self.socket).advance(duration);
        signal
    }

    fn acknowledge(&mut self, record: &BoardRecord) -> Signal {
        self.inner.acknowledge(record)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(lock(&self.socket).now_ns())
    }

    fn stop_requested(&mut self) -> bool {
        self.inner.stop_requested()
    }
}

/// A bench that acknowledges every failure at once and never stops by itself: for scripts
/// and benchmarks. It counts the acknowledgements.
#[derive(Debug, Default)]
pub struct AutoAcknowledge {
    /// Failed boards acknowledged, by number.
    pub acknowledged: Vec<u64>,
}

impl Bench for AutoAcknowledge {
    fn pause(&mut self, _duration: Duration, _waiting: Waiting) -> Signal {
        Signal::Continue
    }

    fn acknowledge(&mut self, record: &BoardRecord) -> Signal {
        self.acknowledged.push(record.board);
        Signal::Continue
    }
}
