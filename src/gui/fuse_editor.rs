//! The fuse editor: each fuse byte (and the lock byte) as an editable hex value and as its
//! named bitfields — a drop-down for multi-bit fields, a checkbox for single bits — kept in
//! sync both ways, with each field's meaning and the risk of changing it.

use std::collections::BTreeMap;

use eframe::egui::{self, Color32, RichText};

use crate::job::safety::FuseValues;
use crate::part::{FuseBitfield, FuseByte, FuseKind, Part, Risk};
use crate::util::parse_byte;

/// Editor state that is not the values themselves: the text being typed in each hex field.
#[derive(Debug, Default)]
pub struct FuseEditor {
    text: BTreeMap<FuseKind, String>,
    /// The values the texts were made from; when the values change elsewhere (a preset, a
    /// read), the texts follow.
    shown: FuseValues,
}

impl FuseEditor {
    /// Draws the editor for `part`. `values` are the bytes to write (a byte that is absent is
    /// left alone and shown as "not set"); `baseline` is what the chip holds, if known: fields
    /// that differ from it are marked with their risk. Returns true when the user changed
    /// something.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        part: &Part,
        values: &mut FuseValues,
        baseline: Option<&FuseValues>,
    ) -> bool {
        if self.shown != *values {
            self.text = values
                .iter()
                .map(|(k, v)| (*k, format!("0x{v:02X}")))
                .collect();
            self.shown = values.clone();
        }
        let mut changed = false;
        for byte in part.fuse_bytes() {
            ui.push_id(byte.kind, |ui| {
                changed |= self.byte_row(ui, byte, values, baseline);
            });
            ui.add_space(4.0);
        }
        if changed {
            self.shown = values.clone();
        }
        changed
    }

    fn byte_row(
        &mut self,
        ui: &mut egui::Ui,
        byte: &FuseByte,
        values: &mut FuseValues,
        baseline: Option<&FuseValues>,
    ) -> bool {
        let kind = byte.kind;
        let mut changed = false;
        let mut enabled = values.contains_key(&kind);
        let was = baseline.and_then(|b| b.get(&kind).copied());
        ui.horizontal(|ui| {
            let title = format!("{} ({})", kind.label(), kind.avrdude_name());
            if ui
                .checkbox(&mut enabled, RichText::new(title).strong())
                .on_hover_text("Unticked: this byte is not written")
                .changed()
            {
                if enabled {
                    values.insert(kind, was.unwrap_or(byte.default));
                } else {
                    values.remove(&kind);
                }
                changed = true;
            }
            if !enabled {
                ui.weak("not written");
                return;
            }
            let text = self.text.entry(kind).or_insert_with(|| {
                format!(
                    "0x{:02X}",
                    values.get(&kind).copied().unwrap_or(byte.default)
                )
            });
            let edit = ui.add(
                egui::TextEdit::singleline(text)
                    .desired_width(52.0)
                    .font(egui::TextStyle::Monospace),
            );
            let edit = edit.on_hover_text(format!(
                "{} value in hex, e.g. 0x{:02X}",
                kind.label(),
                byte.default
            ));
            match parse_byte(text) {
                Some(v) => {
                    if edit.changed() && values.get(&kind) != Some(&v) {
                        values.insert(kind, v);
                        changed = true;
                    }
                }
                None => {
                    ui.colored_label(ui.visuals().error_fg_color, "not a byte: type 0x00..0xFF");
                }
            }
            if let Some(w) = was {
                ui.weak(format!("chip: 0x{w:02X}"));
            }
            ui.weak(format!("default 0x{:02X}", byte.default));
        });
        if !enabled {
            return changed;
        }
        let value = values.get(&kind).copied().unwrap_or(byte.default);
        let mut new_value = value;
        egui::Grid::new(("fields", kind))
            .num_columns(3)
            .spacing([12.0, 2.0])
            .show(ui, |ui| {
                for field in &byte.fields {
                    field_row(ui, field, &mut new_value, was);
                    ui.end_row();
                }
            });
        if new_value != value {
            values.insert(kind, new_value);
            self.text.insert(kind, format!("0x{new_value:02X}"));
            changed = true;
        }
        let unimplemented = !byte.mask & !value;
        if unimplemented != 0 {
            ui.weak(format!(
                "bits 0x{unimplemented:02X} do not exist on this chip; they are written as 1"
            ));
        }
        changed
    }
}

/// One bitfield: name, control, meaning (and the risk badge when it differs from the chip).
fn field_row(ui: &mut egui::Ui, field: &FuseBitfield, byte: &mut u8, baseline: Option<u8>) {
    let current = field.get(*byte);
    let differs = baseline.is_some_and(|b| field.get(b) != current);
    let name = RichText::new(&field.name).monospace();
    let name_label = ui.label(name).on_hover_text(&field.description);
    if field.is_flag() {
        // Fuse bits are active low: 0 = programmed.
        let mut programmed = current == 0;
        if ui
            .checkbox(&mut programmed, "programmed")
            .on_hover_text(&field.description)
            .changed()
        {
            *byte = field.set(*byte, u8::from(!programmed));
        }
    } else {
        let mut selected = current;
        egui::ComboBox::from_id_salt(("field", &field.name, field.mask))
            .width(220.0)
            .selected_text(short(field.meaning(current)))
            .show_ui(ui, |ui| {
                for v in &field.values {
                    ui.selectable_value(
                        &mut selected,
                        v.value,
                        format!(
                            "{:0w$b} — {}",
                            v.value,
                            v.meaning,
                            w = field.mask.count_ones() as usize
                        ),
                    );
                }
            })
            .response
            .labelled_by(name_label.id)
            .on_hover_text(&field.description);
        if selected != current {
            *byte = field.set(*byte, selected);
        }
    }
    ui.horizontal(|ui| {
        // Long meanings are cut to keep the column narrow; the whole text is on hover.
        let meaning = field.meaning(field.get(*byte));
        ui.label(short(meaning)).on_hover_text(meaning);
        if differs {
            risk_badge(ui, field.risk);
        }
    });
}

/// A short form of a long meaning for the closed combo box.
fn short(meaning: &str) -> String {
    const MAX: usize = 34;
    if meaning.chars().count() <= MAX {
        meaning.to_string()
    } else {
        let cut: String = meaning.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

/// The colour of a risk class, readable on both themes.
pub fn risk_colour(risk: Risk, dark: bool) -> Color32 {
    match (risk, dark) {
        (Risk::Critical, true) => Color32::from_rgb(0xFF, 0x6B, 0x6B),
        (Risk::Critical, false) => Color32::from_rgb(0xB0, 0x10, 0x10),
        (Risk::High, true) => Color32::from_rgb(0xFF, 0xA9, 0x4D),
        (Risk::High, false) => Color32::from_rgb(0xA8, 0x4E, 0x00),
        (Risk::Normal, true) => Color32::from_rgb(0x8F, 0xC9, 0xFF),
        (Risk::Normal, false) => Color32::from_rgb(0x1F, 0x5F, 0xA8),
    }
}

/// "changed", coloured and labelled by risk.
pub fn risk_badge(ui: &mut egui::Ui, risk: Risk) {
    let text = match risk {
        Risk::Critical => "CHANGED — CRITICAL: can lock out ISP",
        Risk::High => "CHANGED — high risk",
        Risk::Normal => "changed",
    };
    let colour = risk_colour(risk, ui.visuals().dark_mode);
    ui.label(RichText::new(text).strong().color(colour));
}
