//! The scrolling, coloured progress log with copy and save.

use eframe::egui::{self, Color32, RichText};

use crate::job::Level;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Wall-clock time, `HH:MM:SS`.
    pub time: String,
    /// Severity, which sets the colour.
    pub level: Level,
    /// The text.
    pub text: String,
}

/// The log's lines.
#[derive(Debug, Default)]
pub struct Log {
    lines: Vec<LogLine>,
}

impl Log {
    /// Adds a line stamped with the current time.
    pub fn push(&mut self, level: Level, text: impl Into<String>) {
        let stamp = crate::util::timestamp::now_utc();
        // `2026-11-23T20:41:07Z` → `20:41:07` (UTC, like the backup file names)
        let time = stamp
            .split('T')
            .nth(1)
            .map(|t| t.chars().take(8).collect())
            .unwrap_or_default();
        self.lines.push(LogLine {
            time,
            level,
            text: text.into(),
        });
    }

    /// All lines.
    pub fn lines(&self) -> &[LogLine] {
        &self.lines
    }

    /// The log as plain text, one line each, for the clipboard and the save button.
    pub fn to_text(&self) -> String {
        self.lines.iter().fold(String::new(), |mut out, l| {
            out.push_str(&format!(
                "{} [{}] {}\n",
                l.time,
                level_name(l.level),
                l.text
            ));
            out
        })
    }

    /// Removes every line.
    pub fn clear(&mut self) {
        self.lines.clear();
    }

    /// Draws the lines, following the newest.
    pub fn show(&self, ui: &mut egui::Ui) {
        let dark = ui.visuals().dark_mode;
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show(ui, |ui| {
                for line in &self.lines {
                    if line.level == Level::Debug {
                        continue;
                    }
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new(&line.time).monospace().weak());
                        ui.label(
                            RichText::new(&line.text)
                                .monospace()
                                .color(level_colour(line.level, dark)),
                        );
                    });
                }
            });
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Success => "ok",
        Level::Warn => "warning",
        Level::Error => "error",
    }
}

/// Colours that keep their contrast on both themes.
pub fn level_colour(level: Level, dark: bool) -> Color32 {
    match (level, dark) {
        (Level::Success, true) => Color32::from_rgb(0x6C, 0xD4, 0x7E),
        (Level::Success, false) => Color32::from_rgb(0x1B, 0x7A, 0x2E),
        (Level::Warn, true) => Color32::from_rgb(0xF0, 0xB4, 0x3C),
        (Level::Warn, false) => Color32::from_rgb(0x9A, 0x5B, 0x00),
        (Level::Error, true) => Color32::from_rgb(0xFF, 0x7B, 0x72),
        (Level::Error, false) => Color32::from_rgb(0xB4, 0x23, 0x18),
        (Level::Info | Level::Debug, true) => Color32::from_gray(0xDD),
        (Level::Info | Level::Debug, false) => Color32::from_gray(0x22),
    }
}
