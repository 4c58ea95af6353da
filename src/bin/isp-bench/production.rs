//! Production line overhead: the time per board on the line (from the board going into the
//! fixture to its PASS) against the same flash job run alone, on each emulated programmer.
//! All times are the emulators' virtual time, so the numbers do not depend on this machine.
//!
//! The scripted operator puts each board in just after a probe found the fixture empty: the
//! line then waits a whole poll interval before it looks again, so the overhead measured is
//! the worst case of the arrival phase (mean and worst over the boards are both listed).

use std::path::Path;

use isp_toolbox::emulate::EmulatedChip;
use isp_toolbox::emulate::socket::{Socket, lock};
use isp_toolbox::error::{Error, Result};
use isp_toolbox::hex::{MemoryImage, write_image_file};
use isp_toolbox::job::{CancelToken, JobEvent};
use isp_toolbox::production::emulated::{AutoAcknowledge, ScriptStep, ScriptedBench};
use isp_toolbox::production::{
    BoardResult, FuseSettings, LineOptions, PreparedLine, ProductionEvent, Profile, flash_board,
    run_line,
};
use isp_toolbox::programmer::open::{EMULATED_PORT, open};

/// The budget the issue sets for detection overhead per board.
pub const OVERHEAD_BUDGET_S: f64 = 0.5;

/// One programmer's production measurement.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProductionRow {
    /// Programmer id.
    pub programmer: &'static str,
    /// Boards run on the line.
    pub boards: usize,
    /// Boards that passed.
    pub passed: usize,
    /// The flash job alone, seconds.
    pub job_s: f64,
    /// Per board on the line (insertion to PASS), mean.
    pub per_board_mean_s: f64,
    /// Per board, worst.
    pub per_board_max_s: f64,
    /// Per board minus the job alone, mean.
    pub overhead_mean_s: f64,
    /// Worst.
    pub overhead_max_s: f64,
    /// From the board's removal to the line re-armed, mean.
    pub removal_s: f64,
}

/// A keyboard's production image on an ATmega32U4: 24 KB of firmware and a 4 KB bootloader
/// at 0x7000, Caterina fuses and lock 0x2F, verify on; factory-fresh chips.
fn line_for(programmer: &str, work: &Path) -> Result<PreparedLine> {
    std::fs::create_dir_all(work).map_err(|e| Error::file("cannot create", work, e))?;
    let mut firmware = MemoryImage::new();
    let fw: Vec<u8> = (0..24 * 1024u32).map(|i| (i * 31 + 7) as u8).collect();
    firmware.insert(0, &fw)?;
    write_image_file(work.join("firmware.hex"), &firmware)?;
    let mut bootloader = MemoryImage::new();
    let bl: Vec<u8> = (0..4096u32).map(|i| (i * 17 + 5) as u8).collect();
    bootloader.insert(0x7000, &bl)?;
    write_image_file(work.join("bootloader.hex"), &bootloader)?;
    let mut profile = Profile::new(programmer, EMULATED_PORT, "atmega32u4");
    profile.firmware = Some("firmware.hex".into());
    profile.bootloader = Some("bootloader.hex".into());
    profile.fuses = Some(FuseSettings {
        bootloader: Some("caterina-promicro-5v".into()),
        lock: Some(0x2F),
        ..Default::default()
    });
    profile.base_dir = work.to_path_buf();
    profile.prepare()
}

/// Measures `programmer` over `boards` factory-fresh boards.
pub fn measure(programmer: &'static str, boards: usize, work: &Path) -> Result<ProductionRow> {
    let line = line_for(programmer, &work.join(programmer))?;

    // The plain flash job on one board already in the fixture.
    let socket = Socket::with_chip(EmulatedChip::factory_fresh(&line.part)).shared();
    let mut opened = open(&line.programmer, &line.part, Some(socket.clone()))?;
    let start = lock(&socket).now_ns();
    flash_board(
        opened.programmer.as_mut(),
        &line,
        &mut |_e: JobEvent| {},
        CancelToken::new(),
    )?;
    let job_s = secs(lock(&socket).now_ns() - start);
    drop(opened);

    // The line.
    let socket = Socket::default().shared();
    let steps = vec![ScriptStep::Fresh; boards];
    let mut bench = ScriptedBench::new(socket.clone(), &line, steps, AutoAcknowledge::default());
    let mut results = Vec::new();
    let mut removed = Vec::new();
    let mut removal_waits = Vec::new();
    {
        let clock = socket.clone();
        let mut reporter = |e: ProductionEvent| {
            let now = lock(&clock).now_ns();
            match e {
                ProductionEvent::Pass(r) | ProductionEvent::Fail(r) => {
                    results.push((now, r.result))
                }
                ProductionEvent::WaitingForRemoval { .. } => removal_waits.push(now),
                ProductionEvent::Removed { .. } => removed.push(now),
                _ => {}
            }
        };
        let mut opened = open(&line.programmer, &line.part, Some(socket.clone()))?;
        run_line(
            opened.programmer.as_mut(),
            &line,
            &LineOptions::default(),
            &mut bench,
            &mut reporter,
            None,
            CancelToken::new(),
        )?;
    }
    let inserted = bench.insertions_ns();
    if results.len() != boards || inserted.len() != boards {
        return Err(Error::invalid(format!(
            "{programmer}: the line saw {} of {boards} boards",
            results.len()
        )));
    }
    let per_board: Vec<f64> = results
        .iter()
        .zip(inserted)
        .map(|((done, _), ins)| secs(done.saturating_sub(*ins)))
        .collect();
    // The scripted hand takes the board out at the first pause after the removal wait began
    // (one probe later); the re-arm is the `Removed` event.
    let removal: Vec<f64> = removal_waits
        .iter()
        .zip(&removed)
        .map(|(w, r)| secs(r.saturating_sub(*w)))
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    Ok(ProductionRow {
        programmer,
        boards,
        passed: results
            .iter()
            .filter(|(_, r)| *r == BoardResult::Pass)
            .count(),
        job_s,
        per_board_mean_s: mean(&per_board),
        per_board_max_s: max(&per_board),
        overhead_mean_s: mean(&per_board) - job_s,
        overhead_max_s: max(&per_board) - job_s,
        removal_s: mean(&removal),
    })
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The markdown table.
pub fn markdown(rows: &[std::result::Result<ProductionRow, (String, String)>]) -> String {
    let mut out = String::from(
        "| Programmer | Boards (pass) | Flash job alone | Per board on the line (mean / worst) | Detection overhead (mean / worst) | Within 0.5 s | Removal to re-armed |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        match row {
            Ok(r) => out.push_str(&format!(
                "| {} | {} ({}) | {:.2} s | {:.2} / {:.2} s | {:.3} / {:.3} s | {} | {:.2} s |\n",
                r.programmer,
                r.boards,
                r.passed,
                r.job_s,
                r.per_board_mean_s,
                r.per_board_max_s,
                r.overhead_mean_s,
                r.overhead_max_s,
                if r.overhead_max_s <= OVERHEAD_BUDGET_S {
                    "yes"
                } else {
                    "NO"
                },
                r.removal_s
            )),
            Err((programmer, e)) => {
                out.push_str(&format!("| {programmer} | not measured: {e} | | | | | |\n"))
            }
        }
    }
    out
}
