//! Tools → Prepare programmer board: loads the user's ISP firmware onto a Pro Micro (through
//! Caterina) or a Teensy 2.0 (through HalfKay) with [`crate::bootload::prepare`], on its own
//! thread, and hands the new programmer's port back to the main window.
//!
//! The window shows the steps, the instruction of the moment in large type (double-tap RESET,
//! press the button) with the countdown, a progress bar while writing, and the outcome.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use eframe::egui::{self, Color32, RichText};

use super::ports::PortList;
use crate::bootload::firmware::{FirmwareCheck, check_isp_firmware};
use crate::bootload::host::Host;
use crate::bootload::{
    Board, PrepareEvent, PrepareReport, PrepareRequest, PrepareStep, SystemHost, prepare,
};
use crate::catalog::BootloaderCatalog;
use crate::emulate::programmer_board::{EMULATED_TTY, stand_in_host};
use crate::hex::{MemoryImage, read_image_file};
use crate::job::{CancelToken, Level};
use crate::programmer::open::EMULATED_PORT;

/// The steps in the order the job announces them (HalfKay skips Erase and Verify).
const STEPS: [PrepareStep; 9] = [
    PrepareStep::Check,
    PrepareStep::EnterBootloader,
    PrepareStep::WaitBootloader,
    PrepareStep::Connect,
    PrepareStep::Erase,
    PrepareStep::Write,
    PrepareStep::Verify,
    PrepareStep::Start,
    PrepareStep::WaitProgrammer,
];

/// What the main window selects after a successful run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The port the new ISP programmer is on (`emulated` after a practice run).
    pub port: String,
    /// Its programmer catalog id.
    pub programmer_id: &'static str,
    /// A line for the main log.
    pub summary: String,
}

/// A message from the job's thread.
enum Message {
    Event(PrepareEvent),
    Done(Box<crate::Result<PrepareReport>>),
}

/// A run in progress.
struct Run {
    rx: Receiver<Message>,
    cancel: CancelToken,
    emulated: bool,
    board: Board,
    step: Option<PrepareStep>,
    done: Vec<PrepareStep>,
    instruction: Option<String>,
    countdown: Option<(Duration, Duration)>,
    progress: Option<(u64, u64)>,
}

/// The file the user picked, checked against the board.
struct Picked {
    path: PathBuf,
    checked: Result<(MemoryImage, FirmwareCheck), String>,
}

/// How the last run ended.
enum Outcome {
    Ok(String),
    Failed {
        message: String,
        hint: Option<String>,
    },
}

/// The window's state.
pub struct PrepareWindow {
    /// Whether the window is shown.
    pub open: bool,
    board: Board,
    file: Option<Picked>,
    /// Pro Micro: the port its program runs on now, for the 1200-baud touch.
    touch_port: Option<String>,
    /// Practise on an emulated board instead of real hardware.
    emulated: bool,
    run: Option<Run>,
    log: Vec<(Level, String)>,
    outcome: Option<Outcome>,
}

impl Default for PrepareWindow {
    fn default() -> Self {
        PrepareWindow {
            open: false,
            board: Board::ProMicro,
            file: None,
            touch_port: None,
            emulated: false,
            run: None,
            log: Vec::new(),
            outcome: None,
        }
    }
}

impl PrepareWindow {
    /// Opens the window, practising on an emulated board when the main window is in emulated
    /// mode.
    pub fn open(&mut self, emulated: bool) {
        self.open = true;
        if self.run.is_none() {
            self.emulated = emulated;
        }
    }

    /// Whether a run is in progress (the main window keeps its own jobs off the ports).
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// Picks the board (Pro Micro or Teensy 2.0); a chosen file is checked again for it.
    pub fn choose_board(&mut self, board: Board) {
        if self.run.is_some() || self.board == board {
            return;
        }
        self.board = board;
        if let Some(path) = self.file.as_ref().map(|f| f.path.clone()) {
            self.choose_file(&path);
        }
    }

    /// Picks the ISP firmware file and checks it for the board at once.
    pub fn choose_file(&mut self, path: &Path) {
        let checked = read_image_file(path)
            .map_err(|e| e.to_string())
            .and_then(|image| {
                let catalog = BootloaderCatalog::builtin().map_err(|e| e.to_string())?;
                check_isp_firmware(self.board, &image, catalog)
                    .map(|check| (image, check))
                    .map_err(|e| e.with_hint())
            });
        self.file = Some(Picked {
            path: path.to_path_buf(),
            checked,
        });
        self.outcome = None;
    }

    /// The reason Start is disabled, if it is.
    pub fn start_blocker(&self) -> Option<String> {
        if self.run.is_some() {
            return Some("a run is in progress".into());
        }
        match &self.file {
            None => Some("choose the ISP firmware file first".into()),
            Some(Picked {
                checked: Err(e), ..
            }) => Some(format!("this file cannot be used: {e}")),
            Some(_) => None,
        }
    }

    /// Starts the job on its own thread.
    pub fn start(&mut self, ctx: &egui::Context) {
        let Some(Picked {
            checked: Ok((image, _)),
            ..
        }) = &self.file
        else {
            return;
        };
        let board = self.board;
        let emulated = self.emulated;
        let mut request = PrepareRequest::new(board, image.clone());
        let host: Box<dyn Host + Send> = if emulated {
            match stand_in_host(board) {
                Ok(host) => Box::new(host),
                Err(e) => {
                    self.fail(&e);
                    return;
                }
            }
        } else {
            Box::new(SystemHost::new())
        };
        request.port = match (board, emulated) {
            (Board::ProMicro, true) => Some(EMULATED_TTY.to_string()),
            (Board::ProMicro, false) => self.touch_port.clone(),
            (Board::Teensy2, _) => None,
        };
        let (tx, rx) = channel();
        let cancel = CancelToken::new();
        let job_cancel = cancel.clone();
        let repaint = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("prepare".into())
            .spawn(move || {
                let mut host = host;
                let events = tx.clone();
                let wake = repaint.clone();
                let result = prepare(
                    host.as_mut(),
                    &request,
                    &mut |event| {
                        let _ = events.send(Message::Event(event));
                        wake.request_repaint();
                    },
                    &job_cancel,
                );
                let _ = tx.send(Message::Done(Box::new(result)));
                repaint.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.log.clear();
                self.outcome = None;
                self.run = Some(Run {
                    rx,
                    cancel,
                    emulated,
                    board,
                    step: None,
                    done: Vec::new(),
                    instruction: None,
                    countdown: None,
                    progress: None,
                });
            }
            Err(e) => self.fail(&crate::Error::invalid(format!(
                "cannot start the prepare thread: {e}"
            ))),
        }
    }

    fn fail(&mut self, e: &crate::Error) {
        self.outcome = Some(Outcome::Failed {
            message: e.to_string(),
            hint: e.hint(),
        });
    }

    /// Takes the job's messages; returns the new programmer when the run has just succeeded.
    pub fn poll(&mut self) -> Option<Prepared> {
        let run = self.run.as_mut()?;
        let mut finished = None;
        while let Ok(message) = run.rx.try_recv() {
            match message {
                Message::Event(event) => apply(run, &mut self.log, event),
                Message::Done(result) => finished = Some(*result),
            }
        }
        let result = finished?;
        let run = self.run.take()?;
        match result {
            Ok(report) => {
                let port = if run.emulated {
                    EMULATED_PORT.to_string()
                } else {
                    report.programmer_port.name()
                };
                let summary = format!(
                    "{} prepared: {} bytes written{}; ISP programmer on {}",
                    report.board,
                    report.bytes_written,
                    if report.verified { " and verified" } else { "" },
                    report.programmer_port
                );
                self.outcome = Some(Outcome::Ok(summary.clone()));
                Some(Prepared {
                    port,
                    programmer_id: run.board.programmer_id(),
                    summary,
                })
            }
            Err(e) => {
                self.fail(&e);
                None
            }
        }
    }

    /// Draws the window. `ports` lists the serial ports for the 1200-baud touch; `pick_file`
    /// is called when the user asks for the file dialog.
    pub fn show(
        &mut self,
        ctx: &egui::Context,
        ports: &PortList,
        pick_file: &mut dyn FnMut() -> Option<PathBuf>,
    ) {
        if !self.open {
            return;
        }
        let mut open = self.open;
        egui::Window::new("Prepare programmer board")
            .open(&mut open)
            .default_width(560.0)
            .show(ctx, |ui| self.contents(ui, ports, pick_file));
        // Closing the window does not stop a run; Cancel does.
        self.open = open || self.run.is_some();
    }

    fn contents(
        &mut self,
        ui: &mut egui::Ui,
        ports: &PortList,
        pick_file: &mut dyn FnMut() -> Option<PathBuf>,
    ) {
        ui.label(
            "Turns a Pro Micro or a Teensy 2.0 into the ISP programmer: its own bootloader \
             loads your ISP firmware (for example QMK's util/pro_micro_ISP_B6_10.hex), then the \
             new programmer's port is selected in the main window.",
        );
        ui.add_space(6.0);
        let idle = self.run.is_none();
        ui.add_enabled_ui(idle, |ui| self.settings(ui, ports, pick_file));
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let blocker = self.start_blocker();
            let start = ui
                .add_enabled(
                    blocker.is_none(),
                    egui::Button::new(RichText::new("Start").strong()),
                )
                .on_disabled_hover_text(blocker.unwrap_or_default());
            if start.clicked() {
                self.start(ui.ctx());
            }
            if let Some(run) = &self.run
                && ui.button("Cancel").clicked()
            {
                run.cancel.cancel();
            }
        });
        ui.separator();
        self.progress(ui);
    }

    fn settings(
        &mut self,
        ui: &mut egui::Ui,
        ports: &PortList,
        pick_file: &mut dyn FnMut() -> Option<PathBuf>,
    ) {
        egui::Grid::new("prepare-settings")
            .num_columns(2)
            .spacing([10.0, 6.0])
            .show(ui, |ui| {
                let board_label = ui.label("Board");
                let mut board = self.board;
                egui::ComboBox::from_id_salt("prepare-board")
                    .selected_text(self.board.name())
                    .show_ui(ui, |ui| {
                        for choice in [Board::ProMicro, Board::Teensy2] {
                            ui.selectable_value(&mut board, choice, choice.name());
                        }
                    })
                    .response
                    .labelled_by(board_label.id);
                self.choose_board(board);
                ui.end_row();

                ui.label("ISP firmware");
                ui.horizontal(|ui| {
                    if ui.button("Choose .hex…").clicked()
                        && let Some(path) = pick_file()
                    {
                        self.choose_file(&path);
                    }
                    match &self.file {
                        None => {
                            ui.weak("no file chosen (or drop one on this window)");
                        }
                        Some(picked) => {
                            let name = picked
                                .path
                                .file_name()
                                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                            ui.label(RichText::new(name).strong());
                        }
                    }
                });
                ui.end_row();

                ui.label("");
                match self.file.as_ref().map(|f| &f.checked) {
                    Some(Ok((_, check))) => {
                        ui.vertical(|ui| {
                            let known = check
                                .known_build
                                .as_deref()
                                .map_or("not a build the catalog knows".to_string(), |id| {
                                    format!("known build {id}")
                                });
                            ui.label(format!("{} bytes at {}; {known}", check.bytes, check.range));
                            for warning in &check.warnings {
                                ui.colored_label(ui.visuals().warn_fg_color, warning);
                            }
                        });
                    }
                    Some(Err(e)) => {
                        ui.colored_label(ui.visuals().error_fg_color, e);
                    }
                    None => {
                        ui.weak("the file is checked for the board before anything is written");
                    }
                }
                ui.end_row();

                if self.board == Board::ProMicro {
                    let port_label = ui.label("Its port now");
                    let shown = self
                        .touch_port
                        .clone()
                        .unwrap_or_else(|| "(none: I will double-tap RESET)".into());
                    egui::ComboBox::from_id_salt("prepare-port")
                        .width(330.0)
                        .selected_text(shown)
                        .show_ui(ui, |ui| {
                            ui.selectable_value(
                                &mut self.touch_port,
                                None,
                                "(none: I will double-tap RESET)",
                            );
                            for entry in ports.entries.iter().filter(|e| !e.is_emulated()) {
                                ui.selectable_value(
                                    &mut self.touch_port,
                                    Some(entry.port.clone()),
                                    entry.label.clone(),
                                );
                            }
                        })
                        .response
                        .labelled_by(port_label.id)
                        .on_hover_text(
                            "If the Pro Micro runs an Arduino sketch, ISP Toolbox restarts it into \
                             the bootloader with the 1200-baud touch on this port",
                        );
                    ui.end_row();
                }

                ui.label("");
                ui.checkbox(
                    &mut self.emulated,
                    "Practise on an emulated board (no hardware touched)",
                );
                ui.end_row();
            });
    }

    fn progress(&mut self, ui: &mut egui::Ui) {
        if let Some(run) = &self.run {
            if let Some(text) = &run.instruction {
                egui::Frame::group(ui.style())
                    .fill(ui.visuals().faint_bg_color)
                    .show(ui, |ui| {
                        ui.label(RichText::new(text).size(18.0).strong());
                    });
            }
            if let Some((remaining, total)) = run.countdown {
                let fraction = remaining.as_secs_f32() / total.as_secs_f32().max(0.001);
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .text(format!("{} s left", remaining.as_secs_f64().ceil())),
                );
            }
            if let Some((done, total)) = run.progress {
                let fraction = done as f32 / total.max(1) as f32;
                ui.add(egui::ProgressBar::new(fraction).text(format!("{done} / {total} bytes")));
            }
            for step in STEPS {
                if run.board == Board::Teensy2
                    && matches!(step, PrepareStep::Erase | PrepareStep::Verify)
                {
                    continue;
                }
                let (mark, strong) = if run.done.contains(&step) {
                    ("done", false)
                } else if run.step == Some(step) {
                    ("now", true)
                } else {
                    ("", false)
                };
                ui.horizontal(|ui| {
                    ui.add_sized([40.0, 16.0], egui::Label::new(RichText::new(mark).weak()));
                    let text = RichText::new(step.label());
                    ui.label(if strong { text.strong() } else { text });
                });
            }
        }
        match &self.outcome {
            Some(Outcome::Ok(summary)) => {
                ui.label(
                    RichText::new(format!("Done. {summary}. Selected in the main window."))
                        .color(Color32::from_rgb(0x2E, 0x9E, 0x44))
                        .strong(),
                );
            }
            Some(Outcome::Failed { message, hint }) => {
                ui.colored_label(ui.visuals().error_fg_color, RichText::new(message).strong());
                if let Some(hint) = hint {
                    ui.label(hint);
                }
            }
            None => {}
        }
        if !self.log.is_empty() {
            egui::CollapsingHeader::new("Details")
                .default_open(false)
                .show(ui, |ui| {
                    for (level, text) in &self.log {
                        ui.label(format!("{level:?}: {text}"));
                    }
                });
        }
    }
}

/// Applies one event of the job to what the window shows.
fn apply(run: &mut Run, log: &mut Vec<(Level, String)>, event: PrepareEvent) {
    match event {
        PrepareEvent::Step(step) => {
            if let Some(previous) = run.step.replace(step) {
                run.done.push(previous);
            }
            run.instruction = None;
            run.countdown = None;
            run.progress = None;
        }
        PrepareEvent::Instruction { text, .. } => run.instruction = Some(text),
        PrepareEvent::Countdown {
            remaining, total, ..
        } => run.countdown = Some((remaining, total)),
        PrepareEvent::Progress { done, total, .. } => run.progress = Some((done, total)),
        PrepareEvent::Log(level, text) => log.push((level, text)),
    }
}
