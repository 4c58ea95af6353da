//! `isp-toolbox-cli`: the command-line face of ISP Toolbox.
//!
//! Exit codes: 0 ok, 1 operation failed (verify mismatch, no target), 2 bad input or usage,
//! 3 refused by the fuse safety policy.

mod device;
mod offline;
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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(args) => offline::list(&args),
        Command::Hex(cmd) => offline::hex(&cmd),
        Command::Merge(args) => offline::merge(&args),
        Command::Device(cmd) => device::execute(cmd),
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
