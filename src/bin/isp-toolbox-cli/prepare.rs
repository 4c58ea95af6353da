//! `prepare`: load the ISP firmware onto a Pro Micro (Caterina) or Teensy 2.0 (HalfKay) so it
//! becomes the ISP programmer, and say which port to use it on.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use isp_toolbox::bootload::host::Host;
use isp_toolbox::bootload::{
    Board, PrepareEvent, PrepareRequest, PrepareStep, SystemHost, prepare,
};
use isp_toolbox::emulate::programmer_board::{EMULATED_TTY, stand_in_host};
use isp_toolbox::hex::read_image_file;
use isp_toolbox::job::{CancelToken, Level};
use isp_toolbox::programmer::open::EMULATED_PORT;
use isp_toolbox::{Error, Result};

/// Options of `prepare`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The board to turn into an ISP programmer: promicro (Caterina) or teensy2 (HalfKay).
    #[arg(long, value_parser = parse_board)]
    board: Board,
    /// The Pro Micro's serial port as it runs now, for the 1200-baud touch that restarts an
    /// Arduino sketch into the bootloader; `emulated` runs against an emulated board.
    #[arg(short = 'P', long = "port")]
    port: Option<String>,
    /// Seconds to wait for the bootloader (time to double-tap RESET).
    #[arg(long, default_value_t = 30)]
    bootloader_timeout: u64,
    /// Seconds to wait for the new programmer's port.
    #[arg(long, default_value_t = 10)]
    programmer_timeout: u64,
    /// Machine-readable result on stdout.
    #[arg(long)]
    json: bool,
    /// Show debug details.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// The ISP firmware (.hex or .bin), e.g. QMK's pro_micro_ISP_B6_10.hex.
    file: PathBuf,
}

fn parse_board(text: &str) -> std::result::Result<Board, String> {
    Board::from_id(text).map_err(|e| e.with_hint())
}

/// Runs `prepare`.
pub fn execute(args: &PrepareArgs) -> Result<()> {
    let image = read_image_file(&args.file)?;
    let emulated = args
        .port
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case(EMULATED_PORT));
    let mut request = PrepareRequest::new(args.board, image);
    request.bootloader_timeout = Duration::from_secs(args.bootloader_timeout);
    request.programmer_timeout = Duration::from_secs(args.programmer_timeout);
    let mut host: Box<dyn Host> = if emulated {
        eprintln!(
            "emulated {}: it runs a stand-in program, and the emulator plays your part at the board",
            args.board.name()
        );
        request.port = (args.board == Board::ProMicro).then(|| EMULATED_TTY.to_string());
        Box::new(stand_in_host(args.board)?)
    } else {
        request.port = args.port.clone();
        Box::new(SystemHost::new())
    };
    let cancel = CancelToken::new();
    crate::device::install_ctrl_c(&cancel);
    let report = {
        let mut screen = Screen::new(args.verbose);
        prepare(host.as_mut(), &request, &mut |e| screen.show(e), &cancel)?
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::invalid(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
    } else {
        println!(
            "{} prepared: {} bytes written{}",
            report.board,
            report.bytes_written,
            if report.verified {
                " and verified"
            } else {
                " (HalfKay cannot verify)"
            }
        );
        println!("ISP programmer port: {}", report.programmer_port);
        println!(
            "use it with: isp-toolbox-cli bootloader -c avrisp -P {} -p <target MCU> ...",
            report.programmer_port.name()
        );
    }
    Ok(())
}

/// Shows the job's events on stderr: instructions in a box, a countdown and progress bars on
/// a terminal, plain lines otherwise.
struct Screen {
    interactive: bool,
    verbose: bool,
    bar: Option<(PrepareStep, ProgressBar)>,
}

impl Screen {
    fn new(verbose: bool) -> Self {
        Screen {
            interactive: std::io::stderr().is_terminal(),
            verbose,
            bar: None,
        }
    }

    fn finish_bar(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some((_, bar)) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn show(&mut self, event: PrepareEvent) {
        match event {
            PrepareEvent::Step(step) => {
                self.finish_bar();
                if self.verbose {
                    eprintln!("== {}", step.label());
                }
            }
            PrepareEvent::Instruction { text, .. } => {
                self.finish_bar();
                eprintln!();
                eprintln!(">>> {text}");
                eprintln!();
            }
            PrepareEvent::Countdown {
                step, remaining, ..
            } => {
                let seconds = remaining.as_secs_f64().ceil() as u64;
                if self.interactive {
                    let bar = self.bar_for(step, None);
                    bar.set_message(format!("{}: {seconds} s left", step.label()));
                } else if seconds.is_multiple_of(5) || seconds <= 3 {
                    eprintln!("{}: {seconds} s left", step.label());
                }
            }
            PrepareEvent::Progress { step, done, total } if total > 0 => {
                if self.interactive {
                    let bar = self.bar_for(step, Some(total));
                    bar.set_position(done);
                } else if done == total && step != PrepareStep::Erase {
                    eprintln!("{}: {done} bytes", step.label());
                }
            }
            PrepareEvent::Progress { .. } => {}
            PrepareEvent::Log(level, text) => match level {
                Level::Debug if !self.verbose => {}
                Level::Warn => self.line(format!("warning: {text}")),
                Level::Error => self.line(format!("error: {text}")),
                _ => self.line(text),
            },
        }
    }

    /// The bar of `step`: a spinner for a countdown, a byte bar for progress.
    fn bar_for(&mut self, step: PrepareStep, total: Option<u64>) -> &ProgressBar {
        let fits = self
            .bar
            .as_ref()
            .is_some_and(|(s, b)| *s == step && b.length().is_some() == total.is_some());
        if !fits {
            self.finish_bar();
        }
        let (_, bar) = self.bar.get_or_insert_with(|| (step, new_bar(step, total)));
        bar
    }
}

/// A byte bar for progress, or a spinner for a countdown.
fn new_bar(step: PrepareStep, total: Option<u64>) -> ProgressBar {
    let Some(total) = total else {
        return ProgressBar::new_spinner();
    };
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>7} [{bar:40}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-"),
    );
    bar.set_prefix(step.label());
    bar
}
