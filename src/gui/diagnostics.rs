//! Help → Diagnostics: the `doctor` report (USB access, udev rules, serial port permissions,
//! ModemManager) in a window, run off the UI thread.

use std::sync::mpsc::{Receiver, channel};

use eframe::egui::{self, Color32, RichText};

use crate::doctor::{Report, Status};

/// The diagnostics window's state.
#[derive(Default)]
pub struct DiagnosticsWindow {
    report: Option<Report>,
    running: Option<Receiver<Report>>,
}

impl DiagnosticsWindow {
    /// Starts the checks in the background (they read sysfs and try USB: not for the UI thread).
    pub fn start(&mut self, ctx: &egui::Context) {
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("doctor".into())
            .spawn(move || {
                let _ = tx.send(crate::doctor::run());
                ctx.request_repaint();
            });
        if spawned.is_ok() {
            self.running = Some(rx);
        }
    }

    /// The last report, if the checks have run.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// Draws the window while `open`.
    pub fn show(&mut self, ctx: &egui::Context, open: &mut bool) {
        if !*open {
            return;
        }
        if self.report.is_none() && self.running.is_none() {
            self.start(ctx);
        }
        if let Some(rx) = &self.running
            && let Ok(report) = rx.try_recv()
        {
            self.report = Some(report);
            self.running = None;
        }
        egui::Window::new("Diagnostics")
            .open(open)
            .default_width(640.0)
            .default_height(520.0)
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    let rerun = ui.add_enabled(self.running.is_none(), egui::Button::new("Re-run"));
                    if rerun.clicked() {
                        self.start(ui.ctx());
                    }
                    if let Some(report) = &self.report
                        && ui.button("Copy report").clicked()
                    {
                        ui.ctx().copy_text(report.to_string());
                    }
                    if self.running.is_some() {
                        ui.spinner();
                        ui.label("checking…");
                    }
                });
                ui.separator();
                let Some(report) = &self.report else {
                    return;
                };
                egui::ScrollArea::vertical().show(ui, |ui| {
                    for finding in &report.findings {
                        let dark = ui.visuals().dark_mode;
                        ui.horizontal(|ui| {
                            ui.label(
                                RichText::new(format!("[{}]", finding.status))
                                    .monospace()
                                    .strong()
                                    .color(status_colour(finding.status, dark)),
                            );
                            ui.label(RichText::new(&finding.title).strong());
                        });
                        ui.indent(("finding", &finding.title), |ui| {
                            ui.label(&finding.detail);
                            for (i, step) in finding.advice.iter().enumerate() {
                                ui.label(format!("{}. {step}", i + 1));
                            }
                        });
                        ui.add_space(4.0);
                    }
                });
            });
    }
}

fn status_colour(status: Status, dark: bool) -> Color32 {
    match (status, dark) {
        (Status::Ok, true) => Color32::from_rgb(0x6C, 0xD4, 0x7E),
        (Status::Ok, false) => Color32::from_rgb(0x1B, 0x7A, 0x2E),
        (Status::Error, true) => Color32::from_rgb(0xFF, 0x7B, 0x72),
        (Status::Error, false) => Color32::from_rgb(0xB4, 0x23, 0x18),
        (_, true) => Color32::from_rgb(0xF0, 0xB4, 0x3C),
        (_, false) => Color32::from_rgb(0x9A, 0x5B, 0x00),
    }
}
