//! Showing a job's progress: indicatif bars on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use isp_toolbox::job::{JobEvent, Level, Reporter, Stage};

/// A reporter for the terminal (stderr), so stdout stays clean for `--json`.
pub struct TerminalReporter {
    bar: Option<(Stage, ProgressBar)>,
    interactive: bool,
    verbose: bool,
    last_plain_percent: Option<(Stage, u64)>,
}

impl TerminalReporter {
    /// A reporter; bars only when stderr is a terminal.
    pub fn new(verbose: bool) -> Self {
        TerminalReporter {
            bar: None,
            interactive: std::io::stderr().is_terminal(),
            verbose,
            last_plain_percent: None,
        }
    }

    fn finish_bar(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish();
        }
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some((_, bar)) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for TerminalReporter {
    fn drop(&mut self) {
        self.finish_bar();
    }
}

impl Reporter for TerminalReporter {
    fn event(&mut self, event: JobEvent) {
        match event {
            JobEvent::Stage(stage) => {
                self.finish_bar();
                self.last_plain_percent = None;
                if self.verbose {
                    eprintln!("== {}", stage.label());
                }
            }
            JobEvent::Progress { stage, done, total } => {
                if total == 0 {
                    return;
                }
                if self.interactive {
                    if self.bar.as_ref().is_none_or(|(s, _)| *s != stage) {
                        self.finish_bar();
                        let bar = ProgressBar::new(total);
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{prefix:>7} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("#>-"),
                        );
                        bar.set_prefix(stage.label());
                        self.bar = Some((stage, bar));
                    }
                    if let Some((_, bar)) = &self.bar {
                        bar.set_length(total);
                        bar.set_position(done);
                    }
                } else {
                    // Plain output: a line per quarter, so logs stay short.
                    let percent = done * 100 / total;
                    let step = percent / 25 * 25;
                    if self.last_plain_percent != Some((stage, step)) {
                        self.last_plain_percent = Some((stage, step));
                        eprintln!("{:>7} {step:>3}% ({done}/{total})", stage.label());
                    }
                }
            }
            JobEvent::Log(level, text) => {
                let line = match level {
                    Level::Debug if !self.verbose => return,
                    Level::Debug => format!("  {text}"),
                    Level::Info => text,
                    Level::Success => format!("OK {text}"),
                    Level::Warn => format!("warning: {text}"),
                    Level::Error => format!("error: {text}"),
                };
                self.println(line);
            }
        }
    }
}
