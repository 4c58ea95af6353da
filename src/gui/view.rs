//! Drawing the window: menu, pickers and actions on top, the bootloader/fuse column and the
//! wiring diagram in the middle, progress and the log at the bottom.

use std::path::PathBuf;
use std::time::Duration;

use eframe::egui::{self, Color32, RichText};

use super::app::App;
use super::file_dialog;
use super::hexfile::HexSlot;
use super::wiring::wiring_panel;
use crate::job::Level;
use crate::programmer::open::EMULATED_PORT;

impl App {
    /// Draws one frame (also handles worker events, port changes and dropped files).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.ensure_watcher(&ctx);
        self.poll_ports();
        self.poll_worker(&ctx);
        self.poll_prepare();
        self.poll_production();
        self.take_dropped_files(&ctx);

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::top("pickers").show(ui, |ui| {
            ui.add_space(4.0);
            self.pickers(ui);
            ui.add_space(4.0);
            self.actions(ui);
            ui.add_space(4.0);
        });
        egui::Panel::bottom("log")
            .resizable(true)
            .default_size(250.0)
            .min_size(120.0)
            .show(ui, |ui| self.progress_and_log(ui));
        egui::CentralPanel::default().show(ui, |ui| self.central(ui));

        self.dialog_frame(&ctx);
        self.erase_dialog(&ctx);
        self.diagnostics.show(&ctx, &mut self.show_diagnostics);
        let native = self.native_dialogs();
        let mut no_dialog = false;
        self.prepare.show(&ctx, &self.ports, &mut || {
            if !native {
                return None;
            }
            let chosen = file_dialog::run(|| {
                rfd::FileDialog::new()
                    .set_title("Choose the ISP firmware for the programmer board")
                    .add_filter("Intel HEX or binary", &["hex", "ihx", "bin"])
                    .add_filter("All files", &["*"])
                    .pick_file()
            });
            chosen_or_note(chosen, &mut no_dialog)
        });
        self.production.show(&ctx, &mut || {
            if !native {
                return None;
            }
            let chosen = file_dialog::run(|| {
                rfd::FileDialog::new()
                    .set_title("Open a production profile")
                    .add_filter("Production profile", &["json"])
                    .add_filter("All files", &["*"])
                    .pick_file()
            });
            chosen_or_note(chosen, &mut no_dialog)
        });
        if no_dialog {
            self.note_no_dialog();
        }
        if self.production.take_profile_from_selection_request() {
            self.pick_profile_path();
        }
        self.about_window(&ctx);
        self.error_window(&ctx);
        if self.running.is_some() {
            // Keeps the rate and elapsed figures moving between progress events.
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open bootloader .hex…").clicked() {
                    self.pick_hex();
                    ui.close();
                }
                let recent = self.settings.recent_files.clone();
                ui.menu_button("Open recent", |ui| {
                    if recent.is_empty() {
                        ui.weak("(none yet)");
                    }
                    for path in recent {
                        if ui.button(path.display().to_string()).clicked() {
                            self.load_hex(&path);
                            ui.close();
                        }
                    }
                });
                ui.separator();
                if ui.button("Save log…").clicked() {
                    self.save_log();
                    ui.close();
                }
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                if ui.button("Light theme").clicked() {
                    ui.ctx().set_theme(egui::Theme::Light);
                    self.settings.dark_mode = Some(false);
                    self.save_settings();
                    ui.close();
                }
                if ui.button("Dark theme").clicked() {
                    ui.ctx().set_theme(egui::Theme::Dark);
                    self.settings.dark_mode = Some(true);
                    self.save_settings();
                    ui.close();
                }
            });
            ui.menu_button("Tools", |ui| {
                if ui.button("Prepare programmer board…").clicked() {
                    self.open_prepare();
                    ui.close();
                }
                if ui.button("Production line…").clicked() {
                    self.open_production();
                    ui.close();
                }
            });
            ui.menu_button("Help", |ui| {
                if ui.button("Diagnostics…").clicked() {
                    self.show_diagnostics = true;
                    ui.close();
                }
                if ui.button("About ISP Toolbox").clicked() {
                    self.show_about = true;
                    ui.close();
                }
            });
        });
    }

    fn pickers(&mut self, ui: &mut egui::Ui) {
        egui::Grid::new("pickers")
            .num_columns(4)
            .spacing([10.0, 6.0])
            .show(ui, |ui| {
                // Programmer and port.
                let programmer_label = ui.label("Programmer");
                let current = self
                    .programmer()
                    .map_or("(pick one)".to_string(), |p| p.name.clone());
                let mut chosen = None;
                egui::ComboBox::from_id_salt("programmer")
                    .width(240.0)
                    .selected_text(current)
                    .show_ui(ui, |ui| {
                        for p in self.programmers.all() {
                            let selected =
                                self.settings.programmer.as_deref() == Some(p.id.as_str());
                            if ui.selectable_label(selected, &p.name).clicked() {
                                chosen = Some(p.id.clone());
                            }
                        }
                    })
                    .response
                    .labelled_by(programmer_label.id);
                if let Some(id) = chosen {
                    self.select_programmer(&id);
                }
                let port_label = ui.label("Port");
                ui.horizontal(|ui| {
                    let port = self.port().to_string();
                    let shown = self
                        .ports
                        .get(&port)
                        .map_or(format!("{port} (not present)"), |e| e.label.clone());
                    let mut chosen = None;
                    egui::ComboBox::from_id_salt("port")
                        .width(330.0)
                        .selected_text(shown)
                        .show_ui(ui, |ui| {
                            for entry in &self.ports.entries {
                                let mut label = entry.label.clone();
                                if let Some((id, _)) = &entry.programmer
                                    && let Ok(p) = self.programmers.get(id)
                                {
                                    label = format!("{label}   [{}]", p.name);
                                }
                                if ui.selectable_label(entry.port == port, label).clicked() {
                                    chosen = Some((entry.port.clone(), entry.programmer.clone()));
                                }
                            }
                        })
                        .response
                        .labelled_by(port_label.id);
                    if let Some((port, programmer)) = chosen {
                        self.select_port(&port);
                        if let Some((id, _)) = programmer {
                            self.select_programmer(&id);
                        }
                    }
                    if ui
                        .button("Refresh")
                        .on_hover_text("Look for ports again")
                        .clicked()
                    {
                        self.refresh_ports();
                    }
                    if ui
                        .button("Prepare board…")
                        .on_hover_text(
                            "Turn a Pro Micro or Teensy 2.0 into the ISP programmer: load the ISP firmware through its own bootloader",
                        )
                        .clicked()
                    {
                        self.open_prepare();
                    }
                });
                ui.end_row();

                // MCU and bootloader.
                let mcu_label = ui.label("Target MCU");
                ui.horizontal(|ui| {
                    let current = self
                        .part()
                        .map_or("(pick one)".to_string(), |p| p.name.clone());
                    let mut chosen = None;
                    egui::ComboBox::from_id_salt("mcu")
                        .width(160.0)
                        .selected_text(current)
                        .show_ui(ui, |ui| {
                            for part in self.parts.all() {
                                let selected =
                                    self.settings.mcu.as_deref() == Some(part.id.as_str());
                                if ui.selectable_label(selected, &part.name).clicked() {
                                    chosen = Some(part.id.clone());
                                }
                            }
                        })
                        .response
                        .labelled_by(mcu_label.id);
                    if let Some(id) = chosen {
                        self.select_mcu(&id);
                    }
                    let blocker = self.common_blocker();
                    let detect = ui
                        .add_enabled(blocker.is_none(), egui::Button::new("Detect"))
                        .on_hover_text("Read the signature and fuses; selects the MCU found")
                        .on_disabled_hover_text(blocker.unwrap_or_default());
                    if detect.clicked() {
                        self.detect(ui.ctx());
                    }
                });
                let bootloader_label = ui.label("Bootloader");
                let mcu = self.settings.mcu.clone().unwrap_or_default();
                let current = self
                    .bootloader()
                    .map_or("(none for this MCU)".to_string(), |b| b.name.clone());
                let mut chosen = None;
                egui::ComboBox::from_id_salt("bootloader")
                    .width(330.0)
                    .selected_text(current)
                    .show_ui(ui, |ui| {
                        for bl in self.bootloaders.for_part(&mcu) {
                            let selected =
                                self.settings.bootloader.as_deref() == Some(bl.id.as_str());
                            if ui.selectable_label(selected, &bl.name).clicked() {
                                chosen = Some(bl.id.clone());
                            }
                        }
                    })
                    .response
                    .labelled_by(bootloader_label.id);
                if let Some(id) = chosen {
                    self.select_bootloader(&id);
                }
                ui.end_row();

                // The file.
                ui.label("Bootloader file");
                ui.horizontal(|ui| {
                    if ui
                        .button("Open .hex…")
                        .on_hover_text("Or drop a .hex file onto the window")
                        .clicked()
                    {
                        self.pick_hex();
                    }
                    match &self.hex {
                        HexSlot::Empty => {
                            ui.weak("no file chosen (drop one here)");
                        }
                        HexSlot::Loaded(hex) => {
                            let name = hex
                                .path
                                .file_name()
                                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                            ui.label(RichText::new(name).strong());
                        }
                        HexSlot::Failed(path, _) => {
                            ui.colored_label(
                                ui.visuals().error_fg_color,
                                path.display().to_string(),
                            );
                        }
                    }
                });
                ui.label("");
                self.file_summary(ui);
                ui.end_row();
            });
    }

    fn file_summary(&self, ui: &mut egui::Ui) {
        match &self.hex {
            HexSlot::Empty => {
                ui.label("");
            }
            HexSlot::Failed(_, why) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {why}"));
            }
            HexSlot::Loaded(hex) => {
                let info = &hex.info;
                ui.horizontal_wrapped(|ui| {
                    ui.label(format!("{} bytes at {}", info.data_bytes, info.range));
                    match &info.known_build {
                        Some(b) => ui.label(
                            RichText::new(format!("known build: {}", b.name)).color(ok_colour(ui)),
                        ),
                        None => ui.label(RichText::new("unknown build").color(warn_colour(ui))),
                    };
                    if let Some(fit) = &info.boot_fit {
                        let colour = if fit.section_bytes.is_some() {
                            ok_colour(ui)
                        } else {
                            ui.visuals().error_fg_color
                        };
                        ui.label(RichText::new(&fit.message).color(colour));
                    }
                });
            }
        }
    }

    fn actions(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        ui.horizontal_wrapped(|ui| {
            let blocker = self.flash_blocker();
            let flash = egui::Button::new(RichText::new("Flash bootloader").size(18.0).strong())
                .min_size(egui::vec2(200.0, 34.0));
            let flash = ui
                .add_enabled(blocker.is_none(), flash)
                .on_hover_text(
                    "Erase, write and verify the bootloader, then write and verify the fuses",
                )
                .on_disabled_hover_text(blocker.unwrap_or_default());
            if flash.clicked() {
                self.flash_bootloader(&ctx);
            }
            ui.separator();
            let common = self.common_blocker();
            let verify = self.verify_blocker();
            if button(
                ui,
                "Verify",
                verify,
                "Compare the chip's flash with the file",
            )
            .clicked()
            {
                self.verify(&ctx);
            }
            if button(
                ui,
                "Read fuses",
                common.clone(),
                "Read fuses and lock into the editor",
            )
            .clicked()
            {
                self.read_fuses(&ctx);
            }
            let write = self.write_fuses_blocker();
            if button(
                ui,
                "Write fuses",
                write,
                "Write the editor's fuses (asks first if risky)",
            )
            .clicked()
            {
                self.write_fuses(&ctx);
            }
            if button(
                ui,
                "Backup flash…",
                common.clone(),
                "Save the chip's whole flash to a .hex file",
            )
            .clicked()
            {
                self.pick_backup(&ctx);
            }
            if button(
                ui,
                "Erase…",
                common,
                "Chip erase: flash, EEPROM (unless EESAVE) and lock bits",
            )
            .clicked()
            {
                self.confirm_erase = true;
            }
            let production = self
                .hex
                .loaded()
                .is_none()
                .then(|| "choose the bootloader .hex first".to_string());
            if button(
                ui,
                "Build production hex…",
                production,
                "Join a keyboard firmware with this bootloader into one .hex",
            )
            .clicked()
            {
                self.pick_production();
            }
            if self.running.is_some() {
                ui.separator();
                let cancelling = self.running.as_ref().is_some_and(|r| r.cancelling);
                if ui
                    .add_enabled(!cancelling, egui::Button::new("Cancel"))
                    .clicked()
                {
                    self.cancel();
                }
            }
        });
    }

    fn central(&mut self, ui: &mut egui::Ui) {
        let wide = ui.available_width() > 900.0;
        if wide {
            ui.columns(2, |columns| {
                egui::ScrollArea::vertical()
                    .id_salt("left")
                    .show(&mut columns[0], |ui| self.bootloader_and_fuses(ui));
                egui::ScrollArea::vertical()
                    .id_salt("right")
                    .show(&mut columns[1], |ui| self.wiring(ui));
            });
        } else {
            egui::ScrollArea::vertical().show(ui, |ui| {
                self.bootloader_and_fuses(ui);
                ui.separator();
                self.wiring(ui);
            });
        }
    }

    fn bootloader_and_fuses(&mut self, ui: &mut egui::Ui) {
        if let Some(bl) = self.bootloader() {
            ui.heading(&bl.name);
            ui.label(format!(
                "Enumerates as {} · {} boot section · {} MHz board",
                bl.usb,
                bytes(bl.boot_section_bytes),
                bl.board_clock_hz / 1_000_000
            ));
            for note in &bl.notes {
                ui.label(RichText::new(format!("• {note}")).weak());
            }
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                let preset_label = ui.label(RichText::new("Fuse preset").strong());
                let current = self.preset().map_or(String::new(), |p| p.label.clone());
                let mut chosen = None;
                egui::ComboBox::from_id_salt("preset")
                    .width(320.0)
                    .selected_text(current)
                    .show_ui(ui, |ui| {
                        for p in &bl.presets {
                            let label = format!("{} — {}", p.label, preset_bytes(p));
                            let selected = self.preset().is_some_and(|c| c.id == p.id);
                            if ui.selectable_label(selected, label).clicked() {
                                chosen = Some(p.id.clone());
                            }
                        }
                    })
                    .response
                    .labelled_by(preset_label.id);
                if let Some(id) = chosen {
                    self.select_preset(&id);
                }
            });
        } else {
            ui.label("No bootloader in the catalog runs on this MCU; the fuse editor still works.");
        }
        ui.add_space(6.0);
        ui.separator();
        ui.label(RichText::new("Fuses to write").strong());
        if let Some(part) = self.part() {
            let baseline = self.chip_fuses.clone();
            let mut values = self.fuses.clone();
            if self
                .fuse_editor
                .show(ui, part, &mut values, baseline.as_ref())
            {
                self.fuses = values;
            }
            if baseline.is_none() {
                ui.weak("Read fuses (or Detect) to compare with what the chip holds.");
            }
        }
    }

    fn wiring(&mut self, ui: &mut egui::Ui) {
        ui.heading("Wiring");
        match (self.programmer(), self.part()) {
            (Some(programmer), Some(part)) => {
                wiring_panel(ui, programmer, part);
                for note in &programmer.notes {
                    ui.label(RichText::new(format!("• {note}")).weak());
                }
            }
            _ => {
                ui.label("Pick a programmer and an MCU to see how to wire them.");
            }
        }
    }

    fn progress_and_log(&mut self, ui: &mut egui::Ui) {
        ui.add_space(4.0);
        if let Some(running) = &self.running {
            let stage = running.stage.map_or("Starting", |s| s.label());
            let (fraction, detail) = match running.progress {
                Some((done, total)) if total > 0 => {
                    let secs = running.stage_started.elapsed().as_secs_f64().max(0.001);
                    let rate = done as f64 / secs;
                    (
                        done as f32 / total as f32,
                        format!(
                            "{stage}: {} / {} ({:.1} KB/s)",
                            bytes(done as u32),
                            bytes(total as u32),
                            rate / 1024.0
                        ),
                    )
                }
                _ => (0.0, format!("{stage}…")),
            };
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(RichText::new(running.name).strong());
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .text(detail)
                        .desired_width(ui.available_width() - 10.0),
                );
            });
        } else if let Some(verdict) = &self.verdict {
            let colour = if verdict.ok {
                ok_colour(ui)
            } else {
                ui.visuals().error_fg_color
            };
            let mark = if verdict.ok { "DONE:" } else { "FAILED:" };
            ui.label(
                RichText::new(format!("{mark} {}", verdict.text))
                    .size(16.0)
                    .strong()
                    .color(colour),
            );
        } else {
            ui.label(RichText::new("Ready.").size(16.0));
        }
        if let Some((id, name)) = &self.watch_for {
            if self.port() == EMULATED_PORT {
                ui.weak(format!(
                    "On a real board, replug it now: watching USB for {name} at {id}."
                ));
            } else {
                ui.label(format!(
                    "Replug the board: watching USB for {name} at {id}…"
                ));
            }
        }
        ui.horizontal(|ui| {
            ui.label(RichText::new("Log").strong());
            if ui.small_button("Copy").clicked() {
                ui.ctx().copy_text(self.log.to_text());
            }
            if ui.small_button("Save…").clicked() {
                self.save_log();
            }
            if ui.small_button("Clear").clicked() {
                self.log.clear();
            }
        });
        ui.separator();
        self.log.show(ui);
    }

    fn erase_dialog(&mut self, ctx: &egui::Context) {
        if !self.confirm_erase {
            return;
        }
        let part = self.part().map_or("chip".to_string(), |p| p.name.clone());
        let mut answer = None;
        let modal = egui::Modal::new(egui::Id::unique("erase-dialog")).show(ctx, |ui| {
            ui.heading("Erase the chip?");
            ui.label(format!(
                "This erases the {part}'s whole flash (the bootloader and the keyboard firmware), the EEPROM unless EESAVE is set, and the lock bits. Fuses are kept."
            ));
            ui.horizontal(|ui| {
                if ui.button("Cancel").clicked() {
                    answer = Some(false);
                }
                if ui.button(RichText::new("Erase").strong()).clicked() {
                    answer = Some(true);
                }
            });
        });
        if modal.should_close() && answer.is_none() {
            answer = Some(false);
        }
        match answer {
            Some(true) => {
                self.confirm_erase = false;
                self.erase(ctx);
            }
            Some(false) => self.confirm_erase = false,
            None => {}
        }
    }

    fn about_window(&mut self, ctx: &egui::Context) {
        egui::Window::new("About ISP Toolbox")
            .open(&mut self.show_about)
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                ui.heading(format!("ISP Toolbox {}", env!("CARGO_PKG_VERSION")));
                ui.label("Flash AVR bootloaders and set fuses over ISP, for keyboard builders.");
                ui.label("Programmers: ArduinoISP (Pro Micro, Teensy 2.0), USBtinyISP / PocketAVR, USBasp, Bus Pirate.");
                ui.label("The command line tool isp-toolbox-cli runs the same engine.");
            });
    }

    fn error_window(&mut self, ctx: &egui::Context) {
        let Some(text) = self.error_popup.clone() else {
            return;
        };
        let mut open = true;
        egui::Window::new("Problem")
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                ui.label(text);
            });
        if !open {
            self.error_popup = None;
        }
    }

    // ----- files -----

    fn take_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<_> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        let Some(path) = dropped.last() else {
            return;
        };
        // With the production or prepare window up and idle, a dropped file is its profile
        // or ISP firmware.
        if self.production.open && !self.production.is_running() {
            self.production.load_profile(path);
        } else if self.prepare.open && !self.prepare.is_running() {
            self.prepare.choose_file(path);
        } else {
            self.load_hex(path);
        }
    }

    fn pick_hex(&mut self) {
        if !self.native_dialogs() {
            return;
        }
        let chosen = file_dialog::run(|| {
            rfd::FileDialog::new()
                .set_title("Choose the bootloader .hex")
                .add_filter("Intel HEX", &["hex", "ihx"])
                .add_filter("All files", &["*"])
                .pick_file()
        });
        if let Some(path) = self.chosen(chosen) {
            self.load_hex(&path);
        }
    }

    fn pick_backup(&mut self, ctx: &egui::Context) {
        if !self.native_dialogs() {
            return;
        }
        let name = format!(
            "{}-flash-backup.hex",
            self.part().map_or("chip".to_string(), |p| p.id.clone())
        );
        let chosen = file_dialog::run(|| {
            rfd::FileDialog::new()
                .set_title("Save the flash backup")
                .set_file_name(name)
                .add_filter("Intel HEX", &["hex"])
                .add_filter("Raw binary", &["bin"])
                .save_file()
        });
        if let Some(path) = self.chosen(chosen) {
            self.backup_flash_to(ctx, path);
        }
    }

    fn pick_production(&mut self) {
        if !self.native_dialogs() {
            return;
        }
        let chosen = file_dialog::run(|| {
            rfd::FileDialog::new()
                .set_title("Choose the keyboard firmware .hex")
                .add_filter("Intel HEX", &["hex"])
                .pick_file()
        });
        let Some(firmware) = self.chosen(chosen) else {
            return;
        };
        let stem = firmware
            .file_stem()
            .map_or("firmware".into(), |s| s.to_string_lossy().into_owned());
        let chosen = file_dialog::run(|| {
            rfd::FileDialog::new()
                .set_title("Save the production .hex")
                .set_file_name(format!("{stem}_production.hex"))
                .save_file()
        });
        if let Some(out) = self.chosen(chosen) {
            self.build_production_hex(&firmware, &out);
        }
    }

    fn pick_profile_path(&mut self) {
        if !self.native_dialogs() {
            return;
        }
        let name = format!(
            "{}-production.json",
            self.part().map_or("board".to_string(), |p| p.id.clone())
        );
        let chosen = file_dialog::run(|| {
            rfd::FileDialog::new()
                .set_title("Save the production profile")
                .set_file_name(name)
                .add_filter("Production profile", &["json"])
                .save_file()
        });
        if let Some(path) = self.chosen(chosen) {
            self.save_profile_from_selection(&path);
        }
    }

    fn save_log(&mut self) {
        if !self.native_dialogs() {
            return;
        }
        let chosen = file_dialog::run(|| {
            rfd::FileDialog::new()
                .set_title("Save the log")
                .set_file_name("isp-toolbox-log.txt")
                .save_file()
        });
        if let Some(path) = self.chosen(chosen) {
            if let Err(e) = std::fs::write(&path, self.log.to_text()) {
                self.error_popup = Some(format!("Cannot save the log to {}: {e}", path.display()));
            } else {
                self.log
                    .push(Level::Info, format!("Log saved to {}", path.display()));
            }
        }
    }
}

impl App {
    /// The path a dialog gave; notes in the log when no dialog could open.
    fn chosen(&mut self, outcome: file_dialog::Outcome<PathBuf>) -> Option<PathBuf> {
        let mut no_dialog = false;
        let path = chosen_or_note(outcome, &mut no_dialog);
        if no_dialog {
            self.note_no_dialog();
        }
        path
    }

    fn note_no_dialog(&mut self) {
        self.log.push(Level::Warn, file_dialog::UNAVAILABLE);
    }
}

/// The path a dialog gave; sets `no_dialog` when none could open.
fn chosen_or_note(outcome: file_dialog::Outcome<PathBuf>, no_dialog: &mut bool) -> Option<PathBuf> {
    match outcome {
        file_dialog::Outcome::Chosen(path) => Some(path),
        file_dialog::Outcome::Cancelled => None,
        file_dialog::Outcome::Unavailable => {
            *no_dialog = true;
            None
        }
    }
}

/// A secondary action button, disabled with its reason as the tooltip.
fn button(ui: &mut egui::Ui, label: &str, blocker: Option<String>, what: &str) -> egui::Response {
    ui.add_enabled(blocker.is_none(), egui::Button::new(label))
        .on_hover_text(what)
        .on_disabled_hover_text(blocker.unwrap_or_default())
}

fn preset_bytes(p: &crate::catalog::FusePreset) -> String {
    p.values()
        .map(|(k, v)| format!("{} {v:02X}", k.avrdude_name()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn bytes(n: u32) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KB", n / 1024)
    } else if n >= 10 * 1024 {
        format!("{:.1} KB", f64::from(n) / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn ok_colour(ui: &egui::Ui) -> Color32 {
    super::log::level_colour(Level::Success, ui.visuals().dark_mode)
}

fn warn_colour(ui: &egui::Ui) -> Color32 {
    super::log::level_colour(Level::Warn, ui.visuals().dark_mode)
}
