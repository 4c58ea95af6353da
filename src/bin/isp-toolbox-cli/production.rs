//! `production PROFILE.json`: the production line on a headless bench. Loud PASS/FAIL lines
//! (with a bell), a running tally, Enter to acknowledge a failure, exit code 1 if any board
//! failed.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use isp_toolbox::emulate::socket::Socket;
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::job::{CancelToken, Reporter};
use isp_toolbox::production::emulated::{ScriptedBench, parse_script};
use isp_toolbox::production::{
    Bench, BoardRecord, FuseSettings, LineOptions, PreparedLine, ProductionEvent,
    ProductionReporter, Profile, Signal, Waiting, run_profile,
};
use isp_toolbox::{Error, Result};

use crate::progress::TerminalReporter;

/// Arguments of `production`.
#[derive(Debug, Args)]
pub struct ProductionArgs {
    /// The production profile (JSON; see docs/production.md).
    pub profile: PathBuf,
    /// Write a template profile to PROFILE (it must not exist yet) and exit.
    #[arg(long)]
    pub init: bool,
    /// Stop after this many boards.
    #[arg(long)]
    pub boards: Option<u64>,
    /// No bell on PASS and FAIL.
    #[arg(short, long)]
    pub quiet: bool,
    /// Override the profile's port (e.g. `emulated` to try a profile without hardware).
    #[arg(short = 'P', long = "port")]
    pub port: Option<String>,
    /// Override the profile's run log.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// On port `emulated`: the boards that arrive, in order, comma-separated: fresh, good,
    /// none (an empty fixture for a poll), fresh-<mcu> (a wrong MCU), fail (a chip failing
    /// verify), removed-mid-write. The line stops when the script is done.
    #[arg(long, default_value = "fresh")]
    pub emulated_script: String,
    /// Show the job's debug lines.
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn execute(args: &ProductionArgs) -> Result<()> {
    if args.init {
        return write_template(&args.profile);
    }
    let mut profile = Profile::load(&args.profile)?;
    if let Some(port) = &args.port {
        profile.port = port.clone();
    }
    if let Some(log) = &args.log {
        // A path typed on the command line is relative to where the command runs, not to the
        // profile's folder.
        let log = if log.is_relative() {
            std::env::current_dir()
                .map_err(|e| Error::file("cannot resolve", log, e))?
                .join(log)
        } else {
            log.clone()
        };
        profile.log = Some(log);
        profile.log_format = None;
    }
    let line = profile.prepare()?;
    print_header(&line);
    let options = LineOptions {
        max_boards: args.boards,
        ..Default::default()
    };
    let mut reporter = CliReporter {
        job: TerminalReporter::new(args.verbose),
        quiet: args.quiet,
        color: std::io::stdout().is_terminal(),
        failed: 0,
    };
    let summary = if line.programmer.is_emulated() {
        let socket = Socket::default().shared();
        let steps = parse_script(&args.emulated_script)?;
        let mut bench = ScriptedBench::new(socket.clone(), &line, steps, StdinBench);
        run_profile(
            &line,
            &options,
            &mut bench,
            &mut reporter,
            CancelToken::new(),
            Some(socket),
        )?
    } else {
        run_profile(
            &line,
            &options,
            &mut StdinBench,
            &mut reporter,
            CancelToken::new(),
            None,
        )?
    };
    let t = summary.tally;
    println!(
        "done: {} board(s), {} PASS, {} FAIL; log {}",
        t.count,
        t.pass,
        t.fail,
        line.log_path.display()
    );
    let _ = std::io::stdout().flush();
    if t.fail > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn print_header(line: &PreparedLine) {
    let spec = &line.programmer;
    println!(
        "Production line '{}': {} on {} ({})",
        line.name, line.part.name, spec.driver, spec.port
    );
    let segments: Vec<String> = line
        .image
        .segments()
        .iter()
        .map(|seg| seg.range_string())
        .collect();
    println!(
        "  image {} ({} bytes){}",
        segments.join(", "),
        line.image.data_len(),
        line.eeprom
            .as_ref()
            .map(|e: &MemoryImage| format!(", EEPROM {} bytes", e.data_len()))
            .unwrap_or_default()
    );
    println!(
        "  fuses {}; verify {}",
        line.fuse_text().unwrap_or_else(|| "left alone".into()),
        if line.verify { "on" } else { "off" }
    );
    println!("  log {}", line.log_path.display());
    let _ = std::io::stdout().flush();
}

/// The operator at a terminal: real pauses, Enter to acknowledge, `q` or end of input stops.
struct StdinBench;

impl Bench for StdinBench {
    fn pause(&mut self, duration: Duration, _waiting: Waiting) -> Signal {
        std::thread::sleep(duration);
        Signal::Continue
    }

    fn acknowledge(&mut self, record: &BoardRecord) -> Signal {
        println!(
            "board {} FAILED: take it out, then press Enter to acknowledge and go on (q + Enter stops)",
            record.board
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        match std::io::stdin().lock().read_line(&mut answer) {
            Ok(0) | Err(_) => {
                println!("no operator input (end of input): stopping the line");
                Signal::Stop
            }
            Ok(_) if answer.trim().eq_ignore_ascii_case("q") => Signal::Stop,
            Ok(_) => Signal::Continue,
        }
    }
}

struct CliReporter {
    job: TerminalReporter,
    quiet: bool,
    color: bool,
    failed: u64,
}

impl CliReporter {
    fn banner(&self, record: &BoardRecord, pass: bool) -> String {
        let text = format!(
            "==== {}  board {}  {}  cal {}  {:.2} s ====",
            record.result.label(),
            record.board,
            record.signature,
            record.calibration,
            record.duration_ms as f64 / 1000.0
        );
        let bell = if self.quiet { "" } else { "\x07" };
        if self.color {
            let code = if pass { "1;97;42" } else { "1;97;41" };
            format!("\x1b[{code}m{text}\x1b[0m{bell}")
        } else {
            format!("{text}{bell}")
        }
    }
}

impl ProductionReporter for CliReporter {
    fn event(&mut self, event: ProductionEvent) {
        match event {
            ProductionEvent::Job(e) => self.job.event(e),
            ProductionEvent::Waiting { board } => {
                println!("[board {board}] waiting for a board in the fixture...")
            }
            ProductionEvent::BoardFound {
                board,
                signature,
                calibration,
            } => println!(
                "[board {board}] found {} (calibration 0x{calibration:02X}); flashing",
                isp_toolbox::util::hex_bytes(&signature)
            ),
            ProductionEvent::Pass(r) => println!("{}", self.banner(&r, true)),
            ProductionEvent::Fail(r) => {
                self.failed += 1;
                println!("{}", self.banner(&r, false));
                if let Some(e) = &r.error {
                    println!("  error: {e}");
                }
                if let Some(a) = &r.failing_address {
                    println!("  first failing address: {a}");
                }
            }
            ProductionEvent::Tally(t) => println!(
                "tally: {} board(s), {} PASS, {} FAIL",
                t.count, t.pass, t.fail
            ),
            ProductionEvent::NeedsAcknowledge { .. } => {}
            ProductionEvent::Acknowledged { board } => {
                println!("[board {board}] failure acknowledged")
            }
            ProductionEvent::WaitingForRemoval { board } => {
                println!("[board {board}] take the board out of the fixture")
            }
            ProductionEvent::Removed { board } => println!("[board {board}] removed"),
        }
        let _ = std::io::stdout().flush();
    }
}

/// Writes a template profile to fill in.
fn write_template(path: &std::path::Path) -> Result<()> {
    if path.exists() {
        return Err(Error::invalid(format!(
            "{} already exists: --init only writes new profiles",
            path.display()
        )));
    }
    let mut profile = Profile::new("avrisp", "/dev/ttyACM0", "atmega32u4");
    profile.name = Some("My keyboard".into());
    profile.firmware = Some("firmware.hex".into());
    profile.bootloader = Some("Caterina-promicro16.hex".into());
    profile.fuses = Some(FuseSettings {
        bootloader: Some("caterina-promicro-5v".into()),
        preset: Some("default".into()),
        lock: Some(0x2F),
        ..Default::default()
    });
    profile.log = Some("production-log.csv".into());
    profile.save(path)?;
    println!(
        "wrote {}: set the programmer, port, images and fuses, then run `isp-toolbox-cli production {}`",
        path.display(),
        path.display()
    );
    Ok(())
}
