//! `doctor`: check that this machine lets ISP Toolbox reach a programmer.

use std::io::IsTerminal;

use clap::Args;
use isp_toolbox::doctor::{self, Finding, Report, Status};
use isp_toolbox::{Error, Result};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Machine-readable JSON on stdout (the same findings: check, status, title, detail,
    /// advice).
    #[arg(long, conflicts_with = "udev_rules")]
    json: bool,
    /// Print the Linux udev rules ISP Toolbox ships, to install them by hand:
    /// `isp-toolbox-cli doctor --udev-rules | sudo tee /etc/udev/rules.d/60-isp-toolbox.rules`
    #[arg(long)]
    udev_rules: bool,
}

/// Runs the checks and prints them; exits with status 1 when a check found an error.
pub fn execute(args: &DoctorArgs) -> Result<()> {
    if args.udev_rules {
        print!("{}", doctor::udev::SHIPPED_RULES);
        return Ok(());
    }
    let report = doctor::run();
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::invalid(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
    } else {
        print_report(&report, use_colour());
    }
    if report.worst() == Status::Error {
        std::process::exit(1);
    }
    Ok(())
}

fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn print_report(report: &Report, colour: bool) {
    for finding in &report.findings {
        print_finding(finding, colour);
    }
    println!(
        "\n{} ok, {} warning(s), {} error(s)",
        report.count(Status::Ok),
        report.count(Status::Warn),
        report.count(Status::Error)
    );
}

fn print_finding(finding: &Finding, colour: bool) {
    let (label, ansi) = match finding.status {
        Status::Ok => ("  ok ", "32"),
        Status::Warn => (" warn", "33"),
        Status::Error => ("error", "31"),
    };
    if colour {
        println!("\x1b[{ansi}m[{label}]\x1b[0m {}", finding.title);
    } else {
        println!("[{label}] {}", finding.title);
    }
    for line in finding.detail.lines() {
        println!("        {line}");
    }
    for (n, step) in finding.advice.iter().enumerate() {
        println!("        {}. {step}", n + 1);
    }
}
