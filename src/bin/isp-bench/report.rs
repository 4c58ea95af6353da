//! Rows, the markdown table, the JSON file, and the CLI start-up measurement.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use isp_toolbox::error::{Error, Result};
use isp_toolbox::hex::write_atomic;

use super::engine::Measurement;
use super::jobs::BenchJob;

/// Which tool a row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Tool {
    /// Our engine on the in-process emulator.
    #[serde(rename = "isp-toolbox")]
    IspToolbox,
    /// Our engine with the emulator waiting out the modeled time (`--realtime`).
    #[serde(rename = "isp-toolbox-realtime")]
    Realtime,
    /// avrdude on a PTY or through the libusb shim.
    #[serde(rename = "avrdude")]
    Avrdude,
    /// avrdude with the emulator waiting out the modeled time (`--realtime`).
    #[serde(rename = "avrdude-realtime")]
    AvrdudeRealtime,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::IspToolbox => "isp-toolbox",
            Tool::Realtime => "isp-toolbox (realtime)",
            Tool::Avrdude => "avrdude",
            Tool::AvrdudeRealtime => "avrdude (realtime)",
        }
    }
}

/// One line of results, as written to results.json.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// Job id.
    pub job: &'static str,
    /// Programmer id.
    pub programmer: &'static str,
    /// Tool.
    pub tool: Tool,
    /// Modeled seconds.
    pub modeled_s: Option<f64>,
    /// Wall seconds.
    pub wall_s: Option<f64>,
    /// Round trips.
    pub round_trips: Option<u64>,
    /// Bytes on the link, both ways.
    pub bytes: Option<u64>,
    /// The limit for this programmer and job.
    pub limit_s: Option<f64>,
    /// modeled_s / limit_s.
    pub ratio_to_limit: Option<f64>,
    /// avrdude's time / ours (our rows only; wall time for the realtime rows).
    pub speedup_vs_avrdude: Option<f64>,
    /// Why there is no measurement, if there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    /// A row from a measurement (or the reason there is none).
    pub fn new(
        job: BenchJob,
        programmer: &'static str,
        tool: Tool,
        measured: std::result::Result<Measurement, String>,
        limit_s: Option<f64>,
        avrdude_modeled_s: Option<f64>,
    ) -> Row {
        let (m, note) = match measured {
            Ok(m) => (Some(m), None),
            Err(note) => (None, Some(note)),
        };
        // Real time is judged on the wall clock, the others on modeled time.
        let time = m.map(|m| match tool {
            Tool::Realtime | Tool::AvrdudeRealtime => m.wall_s,
            _ => m.modeled_s,
        });
        Row {
            job: job.id(),
            programmer,
            tool,
            modeled_s: m.map(|m| m.modeled_s),
            wall_s: m.map(|m| m.wall_s),
            round_trips: m.map(|m| m.round_trips),
            bytes: m.map(|m| m.bytes),
            limit_s,
            ratio_to_limit: time.zip(limit_s).map(|(t, l)| t / l),
            speedup_vs_avrdude: time.zip(avrdude_modeled_s).map(|(t, a)| a / t),
            note,
        }
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.2}"))
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.2}×"))
}

fn count(value: Option<u64>) -> String {
    value.map_or("–".into(), |v| v.to_string())
}

/// The rows as a markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| job | programmer | tool | modeled s | wall s | round trips | bytes | limit s | ÷ limit | vs avrdude |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let cells = match &row.note {
            Some(note) => format!("{note} | | | | | | |"),
            None => format!(
                "{} | {} | {} | {} | {} | {} | {} |",
                seconds(row.modeled_s),
                seconds(row.wall_s),
                count(row.round_trips),
                count(row.bytes),
                seconds(row.limit_s),
                ratio(row.ratio_to_limit),
                ratio(row.speedup_vs_avrdude),
            ),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {cells}\n",
            row.job,
            row.programmer,
            row.tool.label()
        ));
    }
    out
}

/// Writes the rows as a JSON array (one object per row), creating the directory.
pub fn write_json(path: &Path, rows: &[Row]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::file("cannot create", dir, e))?;
    }
    let json = serde_json::to_string_pretty(rows)
        .map_err(|e| Error::invalid(format!("cannot encode the results: {e}")))?;
    write_atomic(path, json.as_bytes())
}

/// Starts the CLI (next to this binary) `runs` times with `--version` and reports the median
/// and the slowest start-up.
pub fn cli_startup(runs: u32) -> Result<String> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::invalid(format!("cannot find this binary: {e}")))?;
    let cli = exe.with_file_name("isp-toolbox-cli");
    if !cli.exists() {
        return Err(Error::invalid(format!(
            "{} is not built (cargo build --release --no-default-features --bin isp-toolbox-cli)",
            cli.display()
        )));
    }
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(&cli)
            .arg("--version")
            .output()
            .map_err(|e| Error::invalid(format!("cannot start {}: {e}", cli.display())))?
            .status;
        if !status.success() {
            return Err(Error::invalid(format!(
                "{} --version failed ({status})",
                cli.display()
            )));
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let slowest = times.last().copied().unwrap_or_default();
    Ok(format!(
        "CLI start-up (`isp-toolbox-cli --version`, {runs} runs): median {median:.1} ms, slowest {slowest:.1} ms"
    ))
}
