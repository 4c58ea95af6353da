//! `isp-toolbox-cli`: the command-line face of ISP Toolbox.
//!
//! Exit codes: 0 ok, 1 operation failed (verify mismatch, no target), 2 bad input or usage,
//! 3 refused by the fuse safety policy.

mod avrdude;
mod device;
mod doctor;
mod offline;
mod prepare;
mod production;
mod progress;

use clap::{Parser, Subcommand};
use isp_toolbox::Error;

/// Flash AVR bootloaders and set fuses over ISP.
#[derive(Debug, Parser)]
#[command(name = "isp-toolbox-cli", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the MCUs, bootloaders or programmers ISP Toolbox knows.
    List(offline::ListArgs),
    /// Inspect or convert Intel HEX and binary files.
    #[command(subcommand)]
    Hex(offline::HexCommand),
    /// Join application firmware and a bootloader into one "production" image.
    Merge(offline::MergeArgs),
    #[command(flatten)]
    Device(device::DeviceCommand),
    /// Turn a Pro Micro or Teensy 2.0 into the ISP programmer: load the ISP firmware through
    /// its own bootloader (Caterina or HalfKay) and find the new programmer's port.
    Prepare(prepare::PrepareArgs),
    /// Production line: flash board after board with one profile (PASS/FAIL, run log).
    Production(production::ProductionArgs),
    /// Check USB access, permissions, udev rules, serial ports and ModemManager; say what to do.
    Doctor(doctor::DoctorArgs),
    /// Run an avrdude command line (as in the guide) on ISP Toolbox's engine.
    Avrdude {
        /// Accept high-risk fuse changes without asking.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Expert override: allow fuse changes that can lock out ISP for good.
        #[arg(long)]
        force_critical: bool,
        /// avrdude's arguments, e.g. -c avrisp -P /dev/ttyACM0 -p atmega32u4 -U flash:w:x.hex:i
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(args) => offline::list(&args),
        Command::Hex(cmd) => offline::hex(&cmd),
        Command::Merge(args) => offline::merge(&args),
        Command::Device(cmd) => device::execute(cmd),
        Command::Doctor(args) => doctor::execute(&args),
        Command::Prepare(args) => prepare::execute(&args),
        Command::Production(args) => production::execute(&args),
        Command::Avrdude {
            yes,
            force_critical,
            args,
        } => avrdude::execute(&args, yes, force_critical),
    };
    if let Err(e) = result {
        std::process::exit(report(&e));
    }
}

/// Prints an error and its hint to stderr; returns the exit code.
fn report(e: &Error) -> i32 {
    eprintln!("error: {e}");
    if let Some(hint) = e.hint() {
        eprintln!("hint: {hint}");
    }
    e.exit_code()
}
