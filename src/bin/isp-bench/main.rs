//! isp-bench: our engine and avrdude on the same emulated programmers and 16 MHz targets.
//!
//! `cargo run --release --bin isp-bench` runs every job on every programmer with both tools,
//! prints a markdown table and writes `target/bench/results.json`. Times are the emulators'
//! modeled seconds (what the real programmer and link would take); wall seconds are what the
//! run took on this machine. See docs/BENCHMARKS.md.

mod avrdude;
mod engine;
mod jobs;
mod limits;
mod production;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use jobs::BenchJob;
use report::{Row, Tool};

/// Every programmer the bench knows, in table order.
const PROGRAMMERS: [&str; 4] = ["avrisp", "usbtiny", "buspirate", "usbasp"];

/// Benchmark ISP Toolbox against avrdude on the emulated programmers.
#[derive(Debug, Parser)]
#[command(name = "isp-bench", version)]
struct Args {
    /// Jobs to run (comma-separated): boot4k, full32k, full128k, fuses.
    #[arg(long, value_delimiter = ',')]
    jobs: Option<Vec<String>>,
    /// Programmers (comma-separated): avrisp, usbtiny, buspirate, usbasp.
    #[arg(long, value_delimiter = ',')]
    programmers: Option<Vec<String>>,
    /// Skip the avrdude rows.
    #[arg(long)]
    no_avrdude: bool,
    /// Also run the 4 KB job in real time (the emulator waits out the modeled time).
    #[arg(long)]
    realtime: bool,
    /// Where to write the JSON results (default: target/bench/results.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// How many times to start the CLI for the start-up time (0: skip).
    #[arg(long, default_value_t = 20)]
    startup_runs: u32,
    /// Boards per programmer for the production line table (0: skip it).
    #[arg(long, default_value_t = 5)]
    production_boards: usize,
    /// Only the production line table (skip the job tables and the start-up time).
    #[arg(long)]
    production_only: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isp-bench: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn run(args: &Args) -> isp_toolbox::error::Result<()> {
    let jobs = selected_jobs(args)?;
    let programmers = selected_programmers(args)?;
    let target_dir = target_dir();
    let work = target_dir.join("bench").join("work");
    if args.production_only {
        return run_production(args, &programmers, &work, &target_dir);
    }
    let with_avrdude = !args.no_avrdude && avrdude::available();
    let shim =
        if with_avrdude && (programmers.contains(&"usbtiny") || programmers.contains(&"usbasp")) {
            match avrdude::shim_library(&target_dir) {
                Ok(path) => Some(path),
                Err(e) => {
                    eprintln!("isp-bench: {e}");
                    None
                }
            }
        } else {
            None
        };

    let mut rows = Vec::new();
    for &job in &jobs {
        for &programmer in &programmers {
            let limit = limit_for(job, programmer)?;
            eprintln!("isp-bench: {} on {programmer} (isp-toolbox)", job.id());
            let ours = engine::run(job, programmer, false).map_err(|e| e.to_string());
            let theirs = if args.no_avrdude {
                None
            } else if !with_avrdude {
                Some(Err("not available (avrdude not installed)".to_string()))
            } else {
                eprintln!("isp-bench: {} on {programmer} (avrdude)", job.id());
                let run = avrdude::AvrdudeRun {
                    job,
                    programmer,
                    dir: work.join(format!("{}-{programmer}", job.id())),
                    shim: shim.as_deref(),
                    realtime: false,
                };
                Some(run.run().map_err(|e| e.to_string()))
            };
            let avrdude_modeled = theirs
                .as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|m| m.modeled_s);
            rows.push(Row::new(
                job,
                programmer,
                Tool::IspToolbox,
                ours,
                limit,
                avrdude_modeled,
            ));
            if let Some(theirs) = theirs {
                rows.push(Row::new(
                    job,
                    programmer,
                    Tool::Avrdude,
                    theirs,
                    limit,
                    None,
                ));
            }
        }
    }
    if args.realtime {
        for &programmer in &programmers {
            let limit = limit_for(BenchJob::Boot4k, programmer)?;
            eprintln!("isp-bench: boot4k on {programmer} in real time");
            let measured =
                engine::run(BenchJob::Boot4k, programmer, true).map_err(|e| e.to_string());
            let theirs = if !with_avrdude {
                None
            } else {
                eprintln!("isp-bench: boot4k on {programmer} in real time (avrdude)");
                let run = avrdude::AvrdudeRun {
                    job: BenchJob::Boot4k,
                    programmer,
                    dir: work.join(format!("realtime-{programmer}")),
                    shim: shim.as_deref(),
                    realtime: true,
                };
                Some(run.run().map_err(|e| e.to_string()))
            };
            let avrdude_wall = theirs
                .as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|m| m.wall_s);
            let row = Row::new(
                BenchJob::Boot4k,
                programmer,
                Tool::Realtime,
                measured,
                limit,
                avrdude_wall,
            );
            rows.push(row);
            if let Some(theirs) = theirs {
                let row = Row::new(
                    BenchJob::Boot4k,
                    programmer,
                    Tool::AvrdudeRealtime,
                    theirs,
                    limit,
                    None,
                );
                rows.push(row);
            }
        }
    }

    println!("{}", report::markdown(&rows));
    if args.production_boards > 0 {
        run_production(args, &programmers, &work, &target_dir)?;
    }
    if args.startup_runs > 0 {
        match report::cli_startup(args.startup_runs) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("CLI start-up: not measured ({e})"),
        }
    }
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| target_dir.join("bench").join("results.json"));
    report::write_json(&json_path, &rows)?;
    eprintln!("isp-bench: wrote {}", json_path.display());
    Ok(())
}

/// The production line table: per-board time on the line against the flash job alone.
fn run_production(
    args: &Args,
    programmers: &[&'static str],
    work: &std::path::Path,
    target_dir: &std::path::Path,
) -> isp_toolbox::error::Result<()> {
    let boards = args.production_boards.max(1);
    let mut rows = Vec::new();
    for &programmer in programmers {
        eprintln!("isp-bench: production line, {boards} boards on {programmer}");
        rows.push(
            production::measure(programmer, boards, &work.join("production"))
                .map_err(|e| (programmer.to_string(), e.to_string())),
        );
    }
    println!("{}", production::markdown(&rows));
    let measured: Vec<_> = rows.iter().filter_map(|r| r.as_ref().ok()).collect();
    let json = serde_json::to_string_pretty(&measured)
        .map_err(|e| isp_toolbox::error::Error::invalid(e.to_string()))?;
    let path = target_dir.join("bench").join("production.json");
    isp_toolbox::hex::write_atomic(&path, json.as_bytes())?;
    eprintln!("isp-bench: wrote {}", path.display());
    Ok(())
}

fn limit_for(job: BenchJob, programmer: &str) -> isp_toolbox::error::Result<Option<f64>> {
    let shape = job.shape()?;
    Ok(limits::model(programmer)
        .map(|model| limits::limit_seconds(&model, &limits::MEGA_U4_TIMING, &shape)))
}

fn selected_jobs(args: &Args) -> isp_toolbox::error::Result<Vec<BenchJob>> {
    let Some(ids) = &args.jobs else {
        return Ok(BenchJob::ALL.to_vec());
    };
    ids.iter()
        .map(|id| {
            BenchJob::from_id(id.trim()).ok_or_else(|| {
                isp_toolbox::error::Error::invalid(format!(
                    "unknown job '{id}' (known: boot4k, full32k, full128k, fuses)"
                ))
            })
        })
        .collect()
}

fn selected_programmers(args: &Args) -> isp_toolbox::error::Result<Vec<&'static str>> {
    let Some(names) = &args.programmers else {
        return Ok(PROGRAMMERS.to_vec());
    };
    names
        .iter()
        .map(|name| {
            PROGRAMMERS
                .iter()
                .copied()
                .find(|p| p.eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| {
                    isp_toolbox::error::Error::invalid(format!(
                        "unknown programmer '{name}' (known: {})",
                        PROGRAMMERS.join(", ")
                    ))
                })
        })
        .collect()
}

/// Cargo's target directory: the one this binary was built into (target/release/isp-bench),
/// or ./target.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(PathBuf::from))
        .filter(|dir| dir.join("release").exists() || dir.join("debug").exists())
        .unwrap_or_else(|| PathBuf::from("target"))
}
