//! Tools → Production line: flash board after board from one production profile with
//! [`crate::production::run_profile`] on its own thread.
//!
//! The window is built to be read from across the bench: one big coloured status (put a board
//! in, flashing, PASS, FAIL, take it out), the running tally, an Acknowledge button that the
//! line waits for after every FAIL, and the last boards. A profile on port `emulated` runs on
//! an emulated fixture whose buttons stand in for the operator's hands.

use std::path::{Path, PathBuf};

use eframe::egui::{self, Color32, RichText};

use crate::emulate::socket::{SharedSocket, Socket, lock};
use crate::error::Error;
use crate::job::{JobEvent, Stage};
use crate::production::emulated::{ScriptStep, board_chip, fault_address};
use crate::production::{
    BoardRecord, BoardResult, EmulatedBoards, LineHandle, LineOptions, PreparedLine,
    ProductionEvent, Profile, StopReason, Tally, spawn_line,
};
use crate::programmer::open::EMULATED_PORT;

/// How many finished boards the window lists.
const RECENT_BOARDS: usize = 12;

const GREEN: Color32 = Color32::from_rgb(0x2E, 0x9E, 0x44);
const RED: Color32 = Color32::from_rgb(0xD0, 0x30, 0x30);
const AMBER: Color32 = Color32::from_rgb(0xE0, 0x9A, 0x10);
const BLUE: Color32 = Color32::from_rgb(0x2F, 0x6F, 0xB8);

/// What the line is doing, as the big status shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum LineStatus {
    /// No line is running.
    Idle,
    /// Armed: waiting for board `board`.
    WaitingForBoard {
        /// The next board's number.
        board: u64,
    },
    /// Flashing a board.
    Flashing {
        /// Its number.
        board: u64,
        /// The job's stage.
        stage: Option<Stage>,
        /// Bytes done and total within the stage.
        progress: Option<(u64, u64)>,
    },
    /// The last board's result; `acknowledged` is false while a FAIL waits for the operator,
    /// `removing` once the line waits for the board to be taken out.
    Done {
        /// The board's record.
        record: BoardRecord,
        /// A FAIL the operator has seen (always true for a PASS).
        acknowledged: bool,
        /// The line waits for the board to be taken out.
        removing: bool,
    },
}

/// The profile the user opened, checked.
struct Loaded {
    path: PathBuf,
    profile: Option<Profile>,
    line: Result<PreparedLine, String>,
}

/// A line event worth a line in the main window's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LineNews {
    /// Whether it is bad news (a FAIL or the line stopping on an error).
    pub failed: bool,
    /// The text.
    pub text: String,
}

/// The window's state.
pub struct ProductionWindow {
    /// Whether the window is shown.
    pub open: bool,
    loaded: Option<Loaded>,
    run: Option<LineHandle>,
    status: LineStatus,
    tally: Tally,
    recent: Vec<BoardRecord>,
    /// The emulated fixture of a profile on port `emulated`.
    fixture: Option<SharedSocket>,
    boards_put_in: u64,
    stopped: Option<LineNews>,
    wants_profile_from_selection: bool,
}

impl Default for ProductionWindow {
    fn default() -> Self {
        ProductionWindow {
            open: false,
            loaded: None,
            run: None,
            status: LineStatus::Idle,
            tally: Tally::default(),
            recent: Vec::new(),
            fixture: None,
            boards_put_in: 0,
            stopped: None,
            wants_profile_from_selection: false,
        }
    }
}

impl ProductionWindow {
    /// Whether a line is running (the main window keeps its own jobs off the programmer).
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// The big status.
    pub fn status(&self) -> &LineStatus {
        &self.status
    }

    /// Boards so far in this run.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// The emulated fixture, for a profile on port `emulated`.
    pub fn fixture(&self) -> Option<&SharedSocket> {
        self.fixture.as_ref()
    }

    /// Whether the user asked to save the main window's selections as a new profile (the app
    /// answers: it owns the selections).
    pub fn take_profile_from_selection_request(&mut self) -> bool {
        std::mem::take(&mut self.wants_profile_from_selection)
    }

    /// Opens and checks a profile file (nothing is touched until Start).
    pub fn load_profile(&mut self, path: &Path) {
        if self.run.is_some() {
            return;
        }
        let profile = Profile::load(path);
        let line = profile
            .as_ref()
            .map_err(Error::with_hint)
            .and_then(|p| p.prepare().map_err(|e| e.with_hint()));
        self.loaded = Some(Loaded {
            path: path.to_path_buf(),
            profile: profile.ok(),
            line,
        });
        self.stopped = None;
    }

    /// The reason Start is disabled, if it is.
    pub fn start_blocker(&self) -> Option<String> {
        if self.run.is_some() {
            return Some("the line is running".into());
        }
        match &self.loaded {
            None => Some("open a production profile first".into()),
            Some(Loaded { line: Err(e), .. }) => Some(format!("the profile cannot be used: {e}")),
            Some(_) => None,
        }
    }

    /// Starts the line on its own thread.
    pub fn start(&mut self, ctx: &egui::Context) {
        if self.start_blocker().is_some() {
            return;
        }
        let Some(Loaded { line: Ok(line), .. }) = &self.loaded else {
            return;
        };
        let line = line.clone();
        let emulated = line.programmer.port == EMULATED_PORT;
        // A new run starts with an empty fixture: boards go in with the buttons.
        self.fixture = emulated.then(|| Socket::default().shared());
        self.boards_put_in = 0;
        let hands = self.fixture.clone().map(EmulatedBoards::Hands);
        let repaint = ctx.clone();
        match spawn_line(line, LineOptions::default(), hands, move || {
            repaint.request_repaint()
        }) {
            Ok(handle) => {
                self.run = Some(handle);
                self.tally = Tally::default();
                self.recent.clear();
                self.stopped = None;
                self.status = LineStatus::WaitingForBoard { board: 1 };
            }
            Err(e) => {
                self.stopped = Some(LineNews {
                    failed: true,
                    text: e.with_hint(),
                })
            }
        }
    }

    /// The operator has seen the FAIL: the line may wait for the board to come out.
    pub fn acknowledge(&mut self) {
        if let Some(run) = &self.run {
            run.acknowledge();
        }
    }

    /// Stops the line after the board in hand (a write in progress is cancelled at the next
    /// page).
    pub fn stop(&mut self) {
        if let Some(run) = &self.run {
            run.stop();
        }
    }

    /// Emulated fixture: puts a chip in (a fresh one of the profile's MCU, a failing one, or
    /// another MCU), as the operator's hands would.
    pub fn put_in(&mut self, step: &ScriptStep) -> crate::Result<()> {
        let (Some(fixture), Some(Loaded { line: Ok(line), .. })) = (&self.fixture, &self.loaded)
        else {
            return Err(Error::invalid(
                "no emulated fixture: start a profile on port emulated",
            ));
        };
        self.boards_put_in += 1;
        let chip = board_chip(
            step,
            &line.part,
            fault_address(&line.image),
            self.boards_put_in,
        )?;
        let mut socket = lock(fixture);
        socket.remove();
        socket.insert(chip);
        Ok(())
    }

    /// Emulated fixture: takes the board out.
    pub fn take_out(&mut self) {
        if let Some(fixture) = &self.fixture {
            lock(fixture).remove();
        }
    }

    /// Takes the line's messages; returns what the main log should show.
    pub fn poll(&mut self) -> Vec<LineNews> {
        let Some(run) = &self.run else {
            return Vec::new();
        };
        // Whether the thread had ended before the drain: then every event is in it.
        let ended = run.is_finished();
        let mut news = Vec::new();
        for event in run.drain() {
            if let Some(item) = self.apply(event) {
                news.push(item);
            }
        }
        let finished = if ended {
            self.run.take().map(LineHandle::join)
        } else {
            None
        };
        if let Some(result) = finished {
            let t = self.tally;
            let item = match result {
                Ok(summary) => LineNews {
                    failed: false,
                    text: format!(
                        "Production line stopped ({}): {} boards, {} PASS, {} FAIL",
                        match summary.stopped {
                            StopReason::Operator | StopReason::Cancelled => "by the operator",
                            StopReason::BoardLimit => "board limit reached",
                        },
                        t.count,
                        t.pass,
                        t.fail
                    ),
                },
                Err(e) => LineNews {
                    failed: true,
                    text: format!(
                        "Production line stopped on an error after {} boards: {}",
                        t.count,
                        e.with_hint()
                    ),
                },
            };
            if !matches!(self.status, LineStatus::Done { .. }) {
                self.status = LineStatus::Idle;
            }
            self.stopped = Some(item.clone());
            news.push(item);
        }
        news
    }

    /// Applies one event to the status; returns a line for the main log for results.
    fn apply(&mut self, event: ProductionEvent) -> Option<LineNews> {
        match event {
            ProductionEvent::Waiting { board } => {
                self.status = LineStatus::WaitingForBoard { board };
            }
            ProductionEvent::BoardFound { board, .. } => {
                self.status = LineStatus::Flashing {
                    board,
                    stage: None,
                    progress: None,
                };
            }
            ProductionEvent::Job(job) => {
                if let LineStatus::Flashing {
                    stage, progress, ..
                } = &mut self.status
                {
                    match job {
                        JobEvent::Stage(s) => {
                            *stage = Some(s);
                            *progress = None;
                        }
                        JobEvent::Progress { done, total, .. } => *progress = Some((done, total)),
                        JobEvent::Log(..) => {}
                    }
                }
            }
            ProductionEvent::Pass(record) | ProductionEvent::Fail(record) => {
                let news = LineNews {
                    failed: record.result == BoardResult::Fail,
                    text: record_line(&record),
                };
                self.status = LineStatus::Done {
                    acknowledged: record.result == BoardResult::Pass,
                    removing: false,
                    record: record.clone(),
                };
                self.recent.insert(0, record);
                self.recent.truncate(RECENT_BOARDS);
                return Some(news);
            }
            ProductionEvent::Tally(tally) => self.tally = tally,
            ProductionEvent::NeedsAcknowledge { .. } => {}
            ProductionEvent::Acknowledged { .. } => {
                if let LineStatus::Done { acknowledged, .. } = &mut self.status {
                    *acknowledged = true;
                }
            }
            ProductionEvent::WaitingForRemoval { .. } => {
                if let LineStatus::Done { removing, .. } = &mut self.status {
                    *removing = true;
                }
            }
            ProductionEvent::Removed { .. } => {}
        }
        None
    }

    /// Draws the window.
    pub fn show(&mut self, ctx: &egui::Context, pick_file: &mut dyn FnMut() -> Option<PathBuf>) {
        if !self.open {
            return;
        }
        let mut open = self.open;
        egui::Window::new("Production line")
            .open(&mut open)
            .default_width(640.0)
            .show(ctx, |ui| self.contents(ui, pick_file));
        // Closing the window does not stop the line; Stop does.
        self.open = open || self.run.is_some();
    }

    fn contents(&mut self, ui: &mut egui::Ui, pick_file: &mut dyn FnMut() -> Option<PathBuf>) {
        ui.add_enabled_ui(self.run.is_none(), |ui| self.profile_view(ui, pick_file));
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let blocker = self.start_blocker();
            let start = ui
                .add_enabled(
                    blocker.is_none(),
                    egui::Button::new(RichText::new("Start line").strong()),
                )
                .on_disabled_hover_text(blocker.unwrap_or_default());
            if start.clicked() {
                self.start(ui.ctx());
            }
            if self.run.is_some() && ui.button("Stop line").clicked() {
                self.stop();
            }
            let t = self.tally;
            ui.label(
                RichText::new(format!(
                    "Boards {}   PASS {}   FAIL {}",
                    t.count, t.pass, t.fail
                ))
                .size(18.0)
                .strong(),
            );
        });
        ui.separator();
        self.status_view(ui);
        if self.fixture.is_some() && self.run.is_some() {
            self.fixture_view(ui);
        }
        if let Some(news) = &self.stopped {
            let color = if news.failed {
                RED
            } else {
                ui.visuals().text_color()
            };
            ui.colored_label(color, &news.text);
        }
        self.recent_view(ui);
    }

    fn profile_view(&mut self, ui: &mut egui::Ui, pick_file: &mut dyn FnMut() -> Option<PathBuf>) {
        ui.horizontal(|ui| {
            if ui.button("Open profile…").clicked()
                && let Some(path) = pick_file()
            {
                self.load_profile(&path);
            }
            if ui
                .button("New from main window…")
                .on_hover_text(
                    "Save the main window's programmer, port, MCU, .hex and fuses as a profile",
                )
                .clicked()
            {
                self.wants_profile_from_selection = true;
            }
            match &self.loaded {
                None => {
                    ui.weak("no profile (a .json file; or drop one on this window)");
                }
                Some(loaded) => {
                    let name = loaded
                        .path
                        .file_name()
                        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                    ui.label(RichText::new(name).strong());
                }
            }
        });
        let Some(loaded) = &self.loaded else {
            ui.weak(
                "A profile names the programmer and port, the MCU, the production image, fuses, \
                 lock and verify; `isp-toolbox-cli production --init` writes one to edit.",
            );
            return;
        };
        match &loaded.line {
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Ok(line) => {
                egui::Grid::new("production-profile")
                    .num_columns(2)
                    .spacing([10.0, 2.0])
                    .show(ui, |ui| {
                        let row = |ui: &mut egui::Ui, key: &str, value: String| {
                            ui.weak(key);
                            ui.label(value);
                            ui.end_row();
                        };
                        row(ui, "Name", line.name.clone());
                        row(
                            ui,
                            "Programmer",
                            format!("{} on {}", line.programmer.driver, line.programmer.port),
                        );
                        row(ui, "MCU", line.part.name.clone());
                        row(
                            ui,
                            "Image",
                            format!(
                                "{} bytes at {}",
                                line.image.data_len(),
                                line.image.range_string()
                            ),
                        );
                        row(
                            ui,
                            "Fuses",
                            line.fuse_text()
                                .unwrap_or_else(|| "left as they are".into()),
                        );
                        row(ui, "Verify", if line.verify { "yes" } else { "no" }.into());
                        row(ui, "Run log", line.log_path.display().to_string());
                    });
                if let Some(profile) = &loaded.profile
                    && profile.allow_critical
                {
                    ui.colored_label(
                        RED,
                        "This profile allows fuse values that can lock ISP out (allow_critical).",
                    );
                }
            }
        }
    }

    fn status_view(&mut self, ui: &mut egui::Ui) {
        let (color, headline, detail) = match &self.status {
            LineStatus::Idle => (
                ui.visuals().weak_text_color(),
                "Not running".to_string(),
                match &self.loaded {
                    Some(Loaded { line: Ok(_), .. }) => {
                        "Start the line, then put the first board in".to_string()
                    }
                    _ => "Open a profile and start the line".to_string(),
                },
            ),
            LineStatus::WaitingForBoard { board } => (
                BLUE,
                format!("Put board {board} in"),
                "waiting until a target answers".to_string(),
            ),
            LineStatus::Flashing {
                board,
                stage,
                progress,
            } => (
                AMBER,
                format!("Board {board}: flashing…"),
                match (stage, progress) {
                    (Some(s), Some((done, total))) => format!("{}: {done} / {total}", s.label()),
                    (Some(s), None) => s.label().to_string(),
                    _ => String::new(),
                },
            ),
            LineStatus::Done {
                record,
                acknowledged,
                removing,
            } => {
                let pass = record.result == BoardResult::Pass;
                let n = record.board;
                let next = if !acknowledged {
                    format!("Acknowledge the failure, then take board {n} out")
                } else if *removing {
                    format!("Take board {n} out")
                } else {
                    String::new()
                };
                let why = record.error.clone().unwrap_or_default();
                (
                    if pass { GREEN } else { RED },
                    format!("Board {}: {}", record.board, record.result.label()),
                    if why.is_empty() {
                        next
                    } else {
                        format!("{why}\n{next}")
                    },
                )
            }
        };
        egui::Frame::new()
            .fill(color)
            .inner_margin(16.0)
            .corner_radius(6.0)
            .show(ui, |ui| {
                ui.set_min_width(ui.available_width());
                ui.label(
                    RichText::new(headline)
                        .size(40.0)
                        .strong()
                        .color(Color32::WHITE),
                );
                if !detail.is_empty() {
                    ui.label(RichText::new(detail).size(16.0).color(Color32::WHITE));
                }
            });
        if let LineStatus::Flashing {
            progress: Some((done, total)),
            ..
        } = self.status
        {
            ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32));
        }
        if let LineStatus::Done {
            acknowledged: false,
            ..
        } = self.status
        {
            let button = egui::Button::new(RichText::new("Acknowledge").size(20.0).strong())
                .min_size(egui::vec2(200.0, 40.0));
            if ui.add(button).clicked() {
                self.acknowledge();
            }
        }
    }

    fn fixture_view(&mut self, ui: &mut egui::Ui) {
        ui.add_space(4.0);
        ui.horizontal_wrapped(|ui| {
            ui.weak("Emulated fixture:");
            let mut put = None;
            if ui.button("Put in a fresh chip").clicked() {
                put = Some(ScriptStep::Fresh);
            }
            if ui.button("Put in a failing chip").clicked() {
                put = Some(ScriptStep::Failing);
            }
            if ui.button("Put in a wrong MCU").clicked() {
                put = Some(ScriptStep::Other(self.other_mcu()));
            }
            if ui.button("Take the board out").clicked() {
                self.take_out();
            }
            if let Some(step) = put
                && let Err(e) = self.put_in(&step)
            {
                self.stopped = Some(LineNews {
                    failed: true,
                    text: e.to_string(),
                });
            }
        });
    }

    /// A part other than the profile's, for the wrong-MCU button.
    fn other_mcu(&self) -> String {
        let ours = match &self.loaded {
            Some(Loaded { line: Ok(line), .. }) => line.part.id.as_str(),
            _ => "",
        };
        if ours == "atmega16u4" {
            "atmega32u4"
        } else {
            "atmega16u4"
        }
        .to_string()
    }

    fn recent_view(&mut self, ui: &mut egui::Ui) {
        if self.recent.is_empty() {
            return;
        }
        ui.add_space(6.0);
        ui.label(RichText::new("Last boards").strong());
        egui::Grid::new("production-recent")
            .num_columns(5)
            .striped(true)
            .spacing([12.0, 2.0])
            .show(ui, |ui| {
                for record in &self.recent {
                    let pass = record.result == BoardResult::Pass;
                    ui.label(format!("#{}", record.board));
                    ui.colored_label(
                        if pass { GREEN } else { RED },
                        RichText::new(record.result.label()).strong(),
                    );
                    ui.label(format!("{} cal {}", record.signature, record.calibration));
                    ui.label(format!("{:.1} s", record.duration_ms as f64 / 1000.0));
                    ui.label(
                        record
                            .failing_address
                            .as_deref()
                            .map(|a| format!("at {a}"))
                            .unwrap_or_default(),
                    );
                    ui.end_row();
                }
            });
    }
}

/// `Board 3: PASS (1E 95 87, 4.1 s)` for the main log.
fn record_line(record: &BoardRecord) -> String {
    let mut text = format!(
        "Board {}: {} (signature {}, {:.1} s)",
        record.board,
        record.result.label(),
        record.signature,
        record.duration_ms as f64 / 1000.0
    );
    if let Some(address) = &record.failing_address {
        text.push_str(&format!(", first failing address {address}"));
    }
    if let Some(error) = &record.error {
        text.push_str(&format!(": {error}"));
    }
    text
}
