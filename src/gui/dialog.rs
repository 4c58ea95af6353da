//! The high-risk fuse dialog: the change field by field in plain language, its consequences,
//! and an explicit confirmation. A `critical` change (one that can lock ISP out) additionally
//! needs the MCU's name typed in. Nothing is written unless the user confirms.

use eframe::egui::{self, RichText};

use super::fuse_editor::{risk_badge, risk_colour};
use crate::job::safety::{Approval, FuseReview};
use crate::part::Risk;

/// What the dialog ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogOutcome {
    /// Still open.
    Open,
    /// The user confirmed; go ahead with this approval.
    Confirmed(Approval),
    /// The user cancelled: write nothing.
    Cancelled,
}

/// A fuse change waiting for the user's word.
#[derive(Debug, Clone)]
pub struct FuseDialog {
    /// The change, reviewed against what the chip holds now.
    pub review: FuseReview,
    /// The MCU name the user must type for a critical change.
    pub part_name: String,
    /// What will happen on confirm ("Flash the bootloader and write these fuses").
    pub action: String,
    typed: String,
}

impl FuseDialog {
    /// A dialog for this review.
    pub fn new(review: FuseReview, part_name: &str, action: impl Into<String>) -> FuseDialog {
        FuseDialog {
            review,
            part_name: part_name.to_string(),
            action: action.into(),
            typed: String::new(),
        }
    }

    /// Whether the typed name unlocks a critical change.
    fn name_typed(&self) -> bool {
        self.typed.trim().eq_ignore_ascii_case(&self.part_name)
    }

    /// Draws the modal; returns what the user chose.
    pub fn show(&mut self, ctx: &egui::Context) -> DialogOutcome {
        let mut outcome = DialogOutcome::Open;
        let critical = self.review.risk == Risk::Critical;
        let modal = egui::Modal::new(egui::Id::unique("fuse-risk-dialog")).show(ctx, |ui| {
            ui.set_max_width(620.0);
            let dark = ui.visuals().dark_mode;
            let heading = if critical {
                "CRITICAL fuse change: this can lock ISP out for good"
            } else {
                "High-risk fuse change"
            };
            ui.heading(RichText::new(heading).color(risk_colour(self.review.risk, dark)));
            ui.label(format!("{} on the {}. Review each change:", self.action, self.part_name));
            ui.add_space(6.0);
            egui::ScrollArea::vertical().max_height(320.0).show(ui, |ui| {
                for change in &self.review.changes {
                    egui::Frame::group(ui.style()).show(ui, |ui| {
                        ui.set_width(ui.available_width());
                        ui.horizontal(|ui| {
                            ui.label(
                                RichText::new(format!("{} {}", change.fuse.label(), change.field))
                                    .strong()
                                    .monospace(),
                            );
                            risk_badge(ui, change.risk);
                        });
                        ui.label(format!(
                            "now: {}",
                            change.from_meaning.as_deref().unwrap_or("(not read)")
                        ));
                        ui.label(RichText::new(format!("after: {}", change.to_meaning)).strong());
                        if !change.consequence.is_empty() {
                            ui.label(RichText::new(&change.consequence).italics());
                        }
                    });
                }
                for note in &self.review.notes {
                    ui.label(RichText::new(note).weak());
                }
            });
            ui.add_space(8.0);
            if critical {
                ui.label(format!(
                    "Only continue if you can recover with a high-voltage programmer. Type the MCU name ({}) to unlock:",
                    self.part_name
                ));
                ui.horizontal(|ui| {
                    let prompt = ui.label("MCU name:");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.typed)
                            .hint_text(&self.part_name)
                            .desired_width(200.0),
                    )
                    .labelled_by(prompt.id);
                });
            }
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                if ui.button("Cancel — write nothing").clicked() {
                    outcome = DialogOutcome::Cancelled;
                }
                let can_confirm = !critical || self.name_typed();
                let label = if critical {
                    "I understand, write these fuses"
                } else {
                    "Confirm and write"
                };
                let confirm = ui
                    .add_enabled(can_confirm, egui::Button::new(RichText::new(label).strong()))
                    .on_disabled_hover_text("Type the MCU name first");
                if confirm.clicked() {
                    outcome = DialogOutcome::Confirmed(Approval {
                        confirmed_token: Some(self.review.confirmation_token()),
                        accept_high: false,
                        force_critical: critical,
                    });
                }
            });
        });
        if modal.should_close() && outcome == DialogOutcome::Open {
            outcome = DialogOutcome::Cancelled;
        }
        outcome
    }
}
