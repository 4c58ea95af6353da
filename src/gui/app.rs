//! The app's state and what happens when a button is pressed: selections become job requests
//! for the background worker, and worker events become log lines, progress and verdicts.
//! Drawing lives in `view.rs`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use eframe::egui;

use super::diagnostics::DiagnosticsWindow;
use super::dialog::{DialogOutcome, FuseDialog};
use super::fuse_editor::FuseEditor;
use super::hexfile::HexSlot;
use super::log::Log;
use super::ports::{PortList, PortWatcher, scan};
use super::prepare::{PrepareWindow, Prepared};
use super::production::ProductionWindow;
use super::settings::Settings;
use crate::catalog::{
    Bootloader, BootloaderCatalog, FusePreset, Programmer, ProgrammerCatalog, UsbId,
};
use crate::emulate::demo::demo_chip;
use crate::emulate::socket::{SharedSocket, Socket};
use crate::hex::{MemoryImage, merge, read_image_file, write_image_file};
use crate::job::backup::BackupOptions;
use crate::job::bootloader::{BootloaderPlan, validate};
use crate::job::runner::{JobKind, JobOutcome, JobRequest};
use crate::job::safety::{Approval, FuseValues, fuse_list, normalize, review};
use crate::job::{Level, Stage};
use crate::part::{FuseKind, Part, PartDb, Risk};
use crate::production::{FuseSettings, Profile};
use crate::programmer::open::{EMULATED_PORT, ProgrammerSpec};
use crate::worker::{JobFailure, JobId, Worker, WorkerEvent};
use crate::{Error, Memory};

/// How the app is set up: the desktop uses the real settings file, dialogs and port watching;
/// tests turn those off and inject file paths instead.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Settings to start from.
    pub settings: Settings,
    /// Where to save settings (`None`: never save).
    pub settings_path: Option<PathBuf>,
    /// Watch for hot-plugged ports in a background thread.
    pub watch_ports: bool,
    /// Use native file dialogs (rfd).
    pub native_dialogs: bool,
    /// Where the bootloader job saves the fuse backup (`None`: no backup).
    pub backup_dir: Option<PathBuf>,
    /// A note from loading the settings, shown in the log.
    pub startup_note: Option<String>,
    /// Files named on the command line (or by the desktop's "Open with"): a .json is opened
    /// as a production profile, anything else as the bootloader file.
    pub open_files: Vec<PathBuf>,
}

impl AppOptions {
    /// The desktop app: settings from the config directory, dialogs, port watching, backups.
    pub fn for_desktop() -> AppOptions {
        let settings_path = Settings::default_path();
        let (settings, startup_note) = match &settings_path {
            Some(path) => Settings::load(path),
            None => (Settings::default(), None),
        };
        AppOptions {
            settings,
            settings_path,
            watch_ports: true,
            native_dialogs: true,
            backup_dir: BackupOptions::default_location().dir,
            startup_note,
            open_files: std::env::args_os().skip(1).map(PathBuf::from).collect(),
        }
    }

    /// For tests: nothing saved, no dialogs, no threads besides the worker.
    pub fn for_tests(settings: Settings) -> AppOptions {
        AppOptions {
            settings,
            settings_path: None,
            watch_ports: false,
            native_dialogs: false,
            backup_dir: None,
            startup_note: None,
            open_files: Vec::new(),
        }
    }
}

/// A write waiting for the chip's current fuses (read first, so the dialog can show the real
/// change), then for the user's confirmation if it is risky.
#[derive(Debug, Clone)]
pub enum PendingWrite {
    /// Flash the bootloader and write the preset.
    Bootloader {
        /// The image.
        image: MemoryImage,
        /// The fuses (and lock) to write.
        fuses: FuseValues,
    },
    /// Write fuses only.
    Fuses {
        /// The values.
        values: FuseValues,
    },
}

impl PendingWrite {
    fn fuses(&self) -> &FuseValues {
        match self {
            PendingWrite::Bootloader { fuses, .. } => fuses,
            PendingWrite::Fuses { values } => values,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            PendingWrite::Bootloader { .. } => "Flash the bootloader and write these fuses",
            PendingWrite::Fuses { .. } => "Write these fuses",
        }
    }
}

/// Why a running job was started: what to do with its outcome.
#[derive(Debug, Clone)]
enum Purpose {
    /// Show the outcome.
    Show,
    /// A fuse read that a write is waiting for.
    ReviewFor(PendingWrite),
}

/// The job in progress.
#[derive(Debug)]
pub struct Running {
    /// Worker job id.
    pub id: JobId,
    /// Job name.
    pub name: &'static str,
    purpose: Purpose,
    /// The current stage.
    pub stage: Option<Stage>,
    /// Bytes done / total in the current stage.
    pub progress: Option<(u64, u64)>,
    /// When the current stage began (for the rate).
    pub stage_started: Instant,
    /// A cancel was requested.
    pub cancelling: bool,
}

/// The final line of the last job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Success or failure.
    pub ok: bool,
    /// What to show.
    pub text: String,
}

/// The whole app.
pub struct App {
    pub(super) options: AppOptions,
    pub(super) settings: Settings,
    pub(super) parts: &'static PartDb,
    pub(super) programmers: &'static ProgrammerCatalog,
    pub(super) bootloaders: &'static BootloaderCatalog,
    pub(super) ports: PortList,
    watcher: Option<PortWatcher>,
    worker: Option<Worker>,
    pub(super) running: Option<Running>,
    pub(super) dialog: Option<(FuseDialog, PendingWrite)>,
    pub(super) confirm_erase: bool,
    pub(super) hex: HexSlot,
    /// The fuses to write (the editor edits these).
    pub(super) fuses: FuseValues,
    /// What the chip holds, once read.
    pub(super) chip_fuses: Option<FuseValues>,
    pub(super) fuse_editor: FuseEditor,
    pub(super) log: Log,
    pub(super) verdict: Option<Verdict>,
    board: Option<(String, SharedSocket)>,
    /// A bootloader's USB id to look for after flashing, with its name.
    pub(super) watch_for: Option<(UsbId, String)>,
    pub(super) diagnostics: DiagnosticsWindow,
    pub(super) show_diagnostics: bool,
    pub(super) show_about: bool,
    pub(super) error_popup: Option<String>,
    /// Tools → Prepare programmer board.
    pub prepare: PrepareWindow,
    /// Tools → Production line.
    pub production: ProductionWindow,
}

impl App {
    /// Builds the app. The built-in data is compiled in and checked by the catalog and part
    /// tests, so failing to load it means a broken build: that panics with the reason.
    pub fn new(options: AppOptions) -> App {
        let parts = PartDb::builtin();
        let programmers = ProgrammerCatalog::builtin();
        let bootloaders = BootloaderCatalog::builtin();
        let (parts, programmers, bootloaders) = match (parts, programmers, bootloaders) {
            (Ok(p), Ok(g), Ok(b)) => (p, g, b),
            (p, g, b) => {
                // The data is compiled in and checked by tests; this is a broken build.
                let why = [p.err(), g.err(), b.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                panic!("ISP Toolbox's built-in data is broken: {why}");
            }
        };
        let mut app = App {
            settings: options.settings.clone(),
            options,
            parts,
            programmers,
            bootloaders,
            ports: PortList::default(),
            watcher: None,
            worker: None,
            running: None,
            dialog: None,
            confirm_erase: false,
            hex: HexSlot::Empty,
            fuses: FuseValues::new(),
            chip_fuses: None,
            fuse_editor: FuseEditor::default(),
            log: Log::default(),
            verdict: None,
            board: None,
            watch_for: None,
            diagnostics: DiagnosticsWindow::default(),
            show_diagnostics: false,
            show_about: false,
            error_popup: None,
            prepare: PrepareWindow::default(),
            production: ProductionWindow::default(),
        };
        app.first_run_defaults();
        if let Some(note) = app.options.startup_note.take() {
            app.log.push(Level::Warn, note);
        }
        app.ports = scan();
        app.preselect_port();
        if let Some(path) = app.settings.recent_files.first().cloned()
            && path.exists()
        {
            app.load_hex(&path);
        }
        app.apply_preset();
        app.log.push(
            Level::Info,
            "Pick the programmer, its port, the target MCU and the bootloader; wire as shown; then Flash bootloader.",
        );
        for path in std::mem::take(&mut app.options.open_files) {
            app.open_file(&path);
        }
        app
    }

    /// Fills in a sensible first-run state and drops remembered ids that no longer exist.
    fn first_run_defaults(&mut self) {
        let s = &mut self.settings;
        if s.programmer
            .as_deref()
            .is_none_or(|id| self.programmers.get(id).is_err())
        {
            s.programmer = self.programmers.all().first().map(|p| p.id.clone());
        }
        if s.mcu
            .as_deref()
            .is_none_or(|id| self.parts.find(id).is_err())
        {
            s.mcu = Some("atmega32u4".into());
        }
        let mcu = s.mcu.clone().unwrap_or_default();
        let bootloader_ok = s
            .bootloader
            .as_deref()
            .and_then(|id| self.bootloaders.get(id).ok())
            .is_some_and(|b| b.runs_on(&mcu));
        if !bootloader_ok {
            s.bootloader = self.bootloaders.for_part(&mcu).next().map(|b| b.id.clone());
            s.preset = None;
        }
        if s.port.is_none() {
            s.port = Some(EMULATED_PORT.to_string());
        }
    }

    /// Selects the port that identifies as a known ISP programmer, if the remembered one is
    /// gone; also selects that programmer.
    fn preselect_port(&mut self) {
        let remembered = self
            .settings
            .port
            .as_deref()
            .and_then(|p| self.ports.get(p));
        if remembered.is_some_and(|e| !e.is_emulated()) {
            return;
        }
        if let Some(entry) = self.ports.best_programmer_port() {
            let port = entry.port.clone();
            let programmer = entry.programmer.as_ref().map(|(id, _)| id.clone());
            self.log.push(
                Level::Info,
                format!("Found a programmer at {}", entry.label),
            );
            self.settings.port = Some(port);
            if let Some(id) = programmer {
                self.settings.programmer = Some(id);
            }
        }
    }

    // ----- selections -----

    /// The selected programmer.
    pub fn programmer(&self) -> Option<&'static Programmer> {
        let id = self.settings.programmer.as_deref()?;
        self.programmers.get(id).ok()
    }

    /// The selected MCU.
    pub fn part(&self) -> Option<&'static Part> {
        self.parts.find(self.settings.mcu.as_deref()?).ok()
    }

    /// The selected bootloader.
    pub fn bootloader(&self) -> Option<&'static Bootloader> {
        self.bootloaders
            .get(self.settings.bootloader.as_deref()?)
            .ok()
    }

    /// The selected fuse preset.
    pub fn preset(&self) -> Option<&'static FusePreset> {
        let bl = self.bootloader()?;
        match self.settings.preset.as_deref() {
            Some(id) => bl.preset(id).or(Some(bl.default_preset())),
            None => Some(bl.default_preset()),
        }
    }

    /// The selected port.
    pub fn port(&self) -> &str {
        self.settings.port.as_deref().unwrap_or(EMULATED_PORT)
    }

    /// Selects a programmer by id.
    pub fn select_programmer(&mut self, id: &str) {
        if self.programmers.get(id).is_ok() {
            self.settings.programmer = Some(id.to_string());
            self.save_settings();
        }
    }

    /// Selects a port by name.
    pub fn select_port(&mut self, port: &str) {
        self.settings.port = Some(port.to_string());
        self.save_settings();
    }

    /// Selects the MCU; the bootloader list follows it.
    pub fn select_mcu(&mut self, id: &str) {
        let Ok(part) = self.parts.find(id) else {
            return;
        };
        if self.settings.mcu.as_deref() == Some(part.id.as_str()) {
            return;
        }
        self.settings.mcu = Some(part.id.clone());
        self.chip_fuses = None;
        if !self.bootloader().is_some_and(|b| b.runs_on(&part.id)) {
            self.settings.bootloader = self
                .bootloaders
                .for_part(&part.id)
                .next()
                .map(|b| b.id.clone());
            self.settings.preset = None;
        }
        self.hex.reinspect(Some(part));
        self.apply_preset();
        self.save_settings();
    }

    /// Selects a bootloader by id.
    pub fn select_bootloader(&mut self, id: &str) {
        if self.bootloaders.get(id).is_ok() {
            self.settings.bootloader = Some(id.to_string());
            self.settings.preset = None;
            self.apply_preset();
            self.save_settings();
        }
    }

    /// Selects a preset of the current bootloader.
    pub fn select_preset(&mut self, id: &str) {
        self.settings.preset = Some(id.to_string());
        self.apply_preset();
        self.save_settings();
    }

    /// Copies the preset into the fuse editor.
    fn apply_preset(&mut self) {
        if let Some(preset) = self.preset() {
            self.fuses = preset.values().collect();
            if let Some(part) = self.part() {
                // A preset never sets a byte the part lacks (checked by the catalog tests).
                self.fuses.retain(|k, _| part.fuse(*k).is_some());
            }
        }
    }

    /// Reads a .hex file (from the dialog, a drop, or a test).
    pub fn load_hex(&mut self, path: &Path) {
        self.hex = HexSlot::load(path, self.part());
        match &self.hex {
            HexSlot::Loaded(hex) => {
                let build = hex
                    .info
                    .known_build
                    .as_ref()
                    .map_or("unknown build".to_string(), |b| {
                        format!("known build: {}", b.name)
                    });
                self.log.push(
                    Level::Info,
                    format!(
                        "Loaded {}: {} bytes at {}, {build}",
                        path.display(),
                        hex.info.data_bytes,
                        hex.info.range
                    ),
                );
                self.settings.remember_file(path);
                self.save_settings();
            }
            HexSlot::Failed(_, why) => {
                self.log.push(
                    Level::Error,
                    format!("Cannot use {}: {why}", path.display()),
                );
            }
            HexSlot::Empty => {}
        }
    }

    /// The fuses the editor holds (what Write fuses and Flash bootloader would write).
    pub fn fuse_values(&self) -> &FuseValues {
        &self.fuses
    }

    /// Replaces the editor's fuse values (tests, and the editor itself).
    pub fn set_fuse_values(&mut self, values: FuseValues) {
        self.fuses = values;
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The last job's verdict.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// Whether a job is running (or a fuse read is waiting to be followed by a write).
    pub fn is_busy(&self) -> bool {
        self.running.is_some()
    }

    /// Whether the fuse dialog is open.
    pub fn dialog_open(&self) -> bool {
        self.dialog.is_some()
    }

    /// The emulated board (created on first use of the Emulated port).
    pub fn board(&self) -> Option<&SharedSocket> {
        self.board.as_ref().map(|(_, board)| board)
    }

    /// The current settings (what would be saved).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    // ----- why a button is disabled -----

    /// `Some(reason)` when Flash bootloader cannot run.
    pub fn flash_blocker(&self) -> Option<String> {
        self.common_blocker()
            .or_else(|| {
                self.bootloader()
                    .is_none()
                    .then(|| "pick a bootloader".into())
            })
            .or_else(|| match &self.hex {
                HexSlot::Empty => Some("choose the bootloader .hex file".into()),
                HexSlot::Failed(_, why) => Some(format!("the .hex file cannot be used: {why}")),
                HexSlot::Loaded(hex) => hex
                    .info
                    .boot_fit
                    .as_ref()
                    .filter(|f| f.section_bytes.is_none())
                    .map(|f| f.message.clone()),
            })
            .or_else(|| {
                (!self.fuses.contains_key(&FuseKind::High))
                    .then(|| "the high fuse must be set (BOOTSZ)".into())
            })
    }

    /// `Some(reason)` when a job that needs the file (Verify) cannot run.
    pub fn verify_blocker(&self) -> Option<String> {
        self.common_blocker().or_else(|| {
            self.hex
                .loaded()
                .is_none()
                .then(|| "choose a .hex file to compare with".into())
        })
    }

    /// `Some(reason)` when Write fuses cannot run.
    pub fn write_fuses_blocker(&self) -> Option<String> {
        self.common_blocker().or_else(|| {
            self.fuses
                .is_empty()
                .then(|| "tick at least one fuse byte".into())
        })
    }

    /// `Some(reason)` when no job can run at all.
    pub fn common_blocker(&self) -> Option<String> {
        if self.running.is_some() {
            return Some("a job is running".into());
        }
        if self.prepare.is_running() {
            return Some("the programmer board is being prepared".into());
        }
        if self.production.is_running() {
            return Some("the production line is running".into());
        }
        let Some(programmer) = self.programmer() else {
            return Some("pick a programmer".into());
        };
        let Some(part) = self.part() else {
            return Some("pick the target MCU".into());
        };
        if !programmer.can_program(part) {
            return Some(format!(
                "the {} cannot reach all of the {}'s flash",
                programmer.name, part.name
            ));
        }
        None
    }

    // ----- actions -----

    /// Reads the signature and fuses, and selects the MCU found.
    pub fn detect(&mut self, ctx: &egui::Context) {
        self.start(ctx, JobKind::Detect, Purpose::Show);
    }

    /// Reads fuses and lock into the editor.
    pub fn read_fuses(&mut self, ctx: &egui::Context) {
        self.start(ctx, JobKind::ReadFuses, Purpose::Show);
    }

    /// The main journey: validate everything, read the chip's fuses, confirm if risky, flash.
    pub fn flash_bootloader(&mut self, ctx: &egui::Context) {
        if let Some(why) = self.flash_blocker() {
            self.fail_now(format!("Cannot flash: {why}"));
            return;
        }
        let (Some(part), Some(hex)) = (self.part(), self.hex.loaded()) else {
            return;
        };
        match validate(part, &hex.image, &self.fuses, self.bootloader()) {
            Ok(v) => {
                self.log.push(
                    Level::Info,
                    format!(
                        "Image {} ({} bytes) fits the {}-byte boot section at 0x{:04X}",
                        v.range, v.bytes, v.boot_section_bytes, v.boot_section_start
                    ),
                );
                for w in v.warnings {
                    self.log.push(Level::Warn, w);
                }
            }
            Err(e) => {
                self.fail_now(error_text(&e));
                return;
            }
        }
        let pending = PendingWrite::Bootloader {
            image: hex.image.clone(),
            fuses: self.fuses.clone(),
        };
        self.start(ctx, JobKind::ReadFuses, Purpose::ReviewFor(pending));
    }

    /// Writes the editor's fuses (after reading the chip's and confirming if risky).
    pub fn write_fuses(&mut self, ctx: &egui::Context) {
        if let Some(why) = self.write_fuses_blocker() {
            self.fail_now(format!("Cannot write fuses: {why}"));
            return;
        }
        let Some(part) = self.part() else { return };
        for (kind, value) in &self.fuses {
            if let Err(e) = normalize(part, *kind, *value) {
                self.fail_now(error_text(&e));
                return;
            }
        }
        let pending = PendingWrite::Fuses {
            values: self.fuses.clone(),
        };
        self.start(ctx, JobKind::ReadFuses, Purpose::ReviewFor(pending));
    }

    /// Compares flash with the loaded file.
    pub fn verify(&mut self, ctx: &egui::Context) {
        if let Some(why) = self.verify_blocker() {
            self.fail_now(format!("Cannot verify: {why}"));
            return;
        }
        if let Some(hex) = self.hex.loaded() {
            let image = hex.image.clone();
            self.start(
                ctx,
                JobKind::Verify {
                    memory: Memory::Flash,
                    image,
                },
                Purpose::Show,
            );
        }
    }

    /// Saves the whole flash to a file.
    pub fn backup_flash_to(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.start(
            ctx,
            JobKind::Read {
                memory: Memory::Flash,
                path,
            },
            Purpose::Show,
        );
    }

    /// Chip erase (after the confirmation the view asks for).
    pub fn erase(&mut self, ctx: &egui::Context) {
        self.start(ctx, JobKind::Erase, Purpose::Show);
    }

    /// Asks the running job to stop at the next page boundary.
    pub fn cancel(&mut self) {
        if let (Some(worker), Some(running)) = (&self.worker, &mut self.running) {
            worker.cancel(Some(running.id));
            running.cancelling = true;
            self.log
                .push(Level::Warn, "Cancelling at the next page boundary…");
        }
    }

    /// Joins a firmware .hex with the loaded bootloader into one production image.
    pub fn build_production_hex(&mut self, firmware: &Path, out: &Path) {
        let result = (|| -> crate::Result<String> {
            let part = self
                .part()
                .ok_or_else(|| Error::invalid("pick the target MCU"))?;
            let bootloader = self
                .hex
                .loaded()
                .ok_or_else(|| Error::invalid("choose the bootloader .hex first"))?;
            let hfuse = self
                .fuses
                .get(&FuseKind::High)
                .copied()
                .ok_or_else(|| Error::invalid("set the high fuse (BOOTSZ) first"))?;
            let section = part.boot_section_for_hfuse(hfuse).ok_or_else(|| {
                Error::invalid(format!("hfuse 0x{hfuse:02X} has no boot section"))
            })?;
            let firmware_image = read_image_file(firmware)?;
            let merged = merge(
                &firmware_image,
                &bootloader.image,
                part,
                section.start_byte(),
            )?;
            write_image_file(out, &merged)?;
            Ok(format!(
                "Production image written to {}: {} bytes at {}",
                out.display(),
                merged.data_len(),
                merged.range_string()
            ))
        })();
        match result {
            Ok(text) => {
                self.log.push(Level::Success, text.clone());
                self.verdict = Some(Verdict { ok: true, text });
            }
            Err(e) => self.fail_now(error_text(&e)),
        }
    }

    fn fail_now(&mut self, text: String) {
        self.log.push(Level::Error, text.clone());
        self.verdict = Some(Verdict { ok: false, text });
    }

    fn spec(&self) -> Option<ProgrammerSpec> {
        let programmer = self.programmer()?;
        Some(ProgrammerSpec {
            driver: programmer.driver.id().to_string(),
            port: self.port().to_string(),
            baud: programmer.default_baud,
            sck_hz: None,
            crystal_hz: self.bootloader().map(|b| b.board_clock_hz),
        })
    }

    /// The demo board for the Emulated port: one per MCU, kept across jobs so Flash then
    /// Verify see the same chip.
    fn board_for(&mut self, part: &Part) -> SharedSocket {
        // The part id is kept beside the board so that picking it never waits on the
        // board's lock (a running job may hold it).
        if let Some((id, board)) = &self.board
            && *id == part.id
        {
            return board.clone();
        }
        if self.board.is_some() {
            self.log
                .push(Level::Info, format!("Emulated board: now an {}", part.name));
        }
        let board = Socket::with_chip(demo_chip(part)).shared();
        self.board = Some((part.id.clone(), board.clone()));
        board
    }

    fn start(&mut self, ctx: &egui::Context, kind: JobKind, purpose: Purpose) {
        if let Some(why) = self.common_blocker() {
            self.fail_now(format!("Cannot start: {why}"));
            return;
        }
        let (Some(spec), Some(part)) = (self.spec(), self.part()) else {
            return;
        };
        let board = spec.is_emulated().then(|| self.board_for(part));
        if self.worker.is_none() {
            let repaint = ctx.clone();
            match Worker::spawn(move || repaint.request_repaint()) {
                Ok(worker) => self.worker = Some(worker),
                Err(e) => {
                    self.fail_now(format!("cannot start the background worker: {e}"));
                    return;
                }
            }
        }
        let Some(worker) = &self.worker else { return };
        let name = kind.name();
        let request = JobRequest {
            programmer: spec,
            part: part.id.clone(),
            kind,
        };
        let id = worker.run(request, board);
        self.verdict = None;
        self.running = Some(Running {
            id,
            name,
            purpose,
            stage: None,
            progress: None,
            stage_started: Instant::now(),
            cancelling: false,
        });
    }

    /// Handles whatever the worker reported since the last frame.
    pub fn poll_worker(&mut self, ctx: &egui::Context) {
        let Some(worker) = &self.worker else { return };
        let events: Vec<WorkerEvent> = std::iter::from_fn(|| worker.try_recv()).collect();
        for event in events {
            let current = self.running.as_ref().map(|r| r.id);
            if current != Some(event.id()) {
                continue; // a finished job's late line
            }
            match event {
                WorkerEvent::Started { name, .. } => {
                    self.log.push(Level::Info, format!("Starting: {name}"))
                }
                WorkerEvent::Log { level, text, .. } => self.log.push(level, text),
                WorkerEvent::Stage { name, .. } => {
                    if let Some(r) = &mut self.running {
                        r.stage = Some(name);
                        r.progress = None;
                        r.stage_started = Instant::now();
                    }
                }
                WorkerEvent::Progress { done, total, .. } => {
                    if let Some(r) = &mut self.running {
                        r.progress = Some((done, total));
                    }
                }
                WorkerEvent::Finished { result, .. } => {
                    if let Some(running) = self.running.take() {
                        self.finished(ctx, running.purpose, result);
                    }
                }
            }
        }
    }

    fn finished(
        &mut self,
        ctx: &egui::Context,
        purpose: Purpose,
        result: Result<JobOutcome, JobFailure>,
    ) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(failure) => {
                let text = if failure.cancelled {
                    "Cancelled. The chip may be partly written: flash again before using it."
                        .to_string()
                } else {
                    match &failure.hint {
                        Some(hint) => format!("{} — {hint}", failure.message),
                        None => failure.message.clone(),
                    }
                };
                self.fail_now(text);
                return;
            }
        };
        match (purpose, outcome) {
            (Purpose::ReviewFor(pending), JobOutcome::Fuses { values }) => {
                self.chip_fuses = Some(values.clone());
                self.review_then_write(ctx, pending, &values);
            }
            (_, outcome) => self.show_outcome(outcome),
        }
    }

    /// With the chip's fuses known: write at once if harmless, otherwise open the dialog.
    fn review_then_write(
        &mut self,
        ctx: &egui::Context,
        pending: PendingWrite,
        current: &FuseValues,
    ) {
        let Some(part) = self.part() else { return };
        match review(part, current, pending.fuses()) {
            Ok(r) if r.risk == Risk::Normal => {
                self.write_confirmed(ctx, pending, Approval::default())
            }
            Ok(r) => {
                self.log.push(
                    Level::Warn,
                    format!(
                        "This fuse change is {} risk: confirm it in the dialog",
                        if r.risk == Risk::Critical {
                            "CRITICAL"
                        } else {
                            "high"
                        }
                    ),
                );
                let dialog = FuseDialog::new(r, &part.name, pending.describe());
                self.dialog = Some((dialog, pending));
            }
            Err(e) => self.fail_now(error_text(&e)),
        }
    }

    fn write_confirmed(&mut self, ctx: &egui::Context, pending: PendingWrite, approval: Approval) {
        let kind = match pending {
            PendingWrite::Bootloader { image, fuses } => JobKind::FlashBootloader(BootloaderPlan {
                image,
                fuses,
                approval,
                backup: BackupOptions {
                    dir: self.options.backup_dir.clone(),
                    memories: false,
                },
            }),
            PendingWrite::Fuses { values } => JobKind::WriteFuses { values, approval },
        };
        self.start(ctx, kind, Purpose::Show);
    }

    /// Draws the dialog if open and acts on the answer.
    pub(super) fn dialog_frame(&mut self, ctx: &egui::Context) {
        let Some((dialog, _)) = &mut self.dialog else {
            return;
        };
        match dialog.show(ctx) {
            DialogOutcome::Open => {}
            DialogOutcome::Cancelled => {
                self.dialog = None;
                self.log
                    .push(Level::Warn, "Fuse change cancelled: nothing was written.");
                self.verdict = Some(Verdict {
                    ok: false,
                    text: "Cancelled: the chip was not touched.".into(),
                });
            }
            DialogOutcome::Confirmed(approval) => {
                if let Some((_, pending)) = self.dialog.take() {
                    self.log.push(Level::Info, "Fuse change confirmed.");
                    self.write_confirmed(ctx, pending, approval);
                }
            }
        }
    }

    fn show_outcome(&mut self, outcome: JobOutcome) {
        let text = match outcome {
            JobOutcome::Detected(report) => {
                let sig = crate::util::hex_bytes(&report.signature);
                self.chip_fuses = Some(report.fuses.clone());
                if let Some(id) = report.parts.first()
                    && self.settings.mcu.as_deref() != Some(id.as_str())
                    && !report
                        .parts
                        .iter()
                        .any(|p| Some(p.as_str()) == self.settings.mcu.as_deref())
                {
                    self.select_mcu(id);
                    // select_mcu forgets the chip's fuses (another part); these are this one's.
                    self.chip_fuses = Some(report.fuses.clone());
                }
                for field in &report.decoded {
                    self.log.push(
                        Level::Info,
                        format!(
                            "  {} {} = {:b}: {}",
                            field.fuse.label(),
                            field.name,
                            field.value,
                            field.meaning
                        ),
                    );
                }
                let name = self.part().map_or(String::new(), |p| p.name.clone());
                let fuses = fuse_list(&report.fuses);
                format!("Detected {name} (signature {sig}); {fuses}")
            }
            JobOutcome::Fuses { values } => {
                self.chip_fuses = Some(values.clone());
                self.fuses = values.clone();
                format!("Fuses read: {}", fuse_list(&values))
            }
            JobOutcome::Bootloader(report) => {
                self.chip_fuses = Some(report.fuses_after.clone());
                if let Some(bl) = self.bootloader() {
                    self.watch_for = Some((bl.usb, bl.name.clone()));
                }
                let backup = report
                    .backup_file
                    .map(|p| format!("; old fuses saved to {}", p.display()))
                    .unwrap_or_default();
                format!(
                    "Bootloader flashed and verified ({} pages); fuses {}{backup}",
                    report.pages_written,
                    fuse_list(&report.fuses_after)
                )
            }
            JobOutcome::Flashed { write, verified } => format!(
                "Flashed {} pages{}",
                write.pages_written.len(),
                if verified { " and verified" } else { "" }
            ),
            JobOutcome::Verified { bytes } => {
                format!("Verified: flash matches the file ({bytes} bytes)")
            }
            JobOutcome::Read { path, bytes } => {
                format!("Saved {bytes} bytes to {}", path.display())
            }
            JobOutcome::Erased => "Chip erased".into(),
            JobOutcome::FusesWritten(report) => {
                // The job read only the bytes it wrote; the others are as last read.
                self.chip_fuses
                    .get_or_insert_with(FuseValues::new)
                    .extend(report.after.clone());
                format!("Fuses written and verified: {}", fuse_list(&report.after))
            }
        };
        self.log.push(Level::Success, text.clone());
        self.verdict = Some(Verdict { ok: true, text });
    }

    /// Notices new lists from the port watcher, and the bootloader appearing after a flash.
    pub(super) fn poll_ports(&mut self) {
        let Some(watcher) = &self.watcher else { return };
        if let Some(list) = watcher.poll() {
            self.set_ports(list);
        }
    }

    /// Opens Tools → Prepare programmer board (practising on an emulated board when the
    /// main window is in emulated mode).
    pub fn open_prepare(&mut self) {
        let emulated = self.port() == EMULATED_PORT;
        self.prepare.open(emulated);
    }

    /// Takes what the prepare window finished: selects the new programmer and its port.
    pub fn poll_prepare(&mut self) {
        if let Some(Prepared {
            port,
            programmer_id,
            summary,
        }) = self.prepare.poll()
        {
            self.log.push(Level::Success, summary);
            self.refresh_ports();
            self.select_programmer(programmer_id);
            self.select_port(&port);
            self.log.push(
                Level::Info,
                format!("Selected {programmer_id} on {port}: ready for Flash bootloader"),
            );
        }
    }

    /// Opens a file from the command line: a .json production profile in the production
    /// window, anything else as the bootloader file.
    pub fn open_file(&mut self, path: &Path) {
        let is_profile = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_profile {
            self.open_production();
            self.production.load_profile(path);
        } else {
            self.load_hex(path);
        }
    }

    /// The main window's selections as a production profile: programmer, port, MCU, the
    /// loaded .hex as the image, and the fuses the editor would write. `path` is where it will
    /// be saved: the image is named relative to it when it lives in the same folder.
    pub fn profile_from_selection(&self, path: &Path) -> Result<Profile, String> {
        let programmer = self.programmer().ok_or("pick a programmer first")?;
        let part = self.part().ok_or("pick the target MCU first")?;
        let image = self.hex.path().ok_or(
            "open the production .hex first (Build production hex joins firmware and bootloader)",
        )?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let mut profile = Profile::new(programmer.driver.id(), self.port(), &part.id);
        profile.name = Some(match self.bootloader() {
            Some(bl) => format!("{} with {}", part.name, bl.name),
            None => part.name.clone(),
        });
        profile.image = Some(
            image
                .strip_prefix(folder)
                .map_or_else(|_| image.to_path_buf(), Path::to_path_buf),
        );
        let fuses = self.fuse_values();
        if !fuses.is_empty() {
            profile.fuses = Some(FuseSettings {
                lfuse: fuses.get(&FuseKind::Low).copied(),
                hfuse: fuses.get(&FuseKind::High).copied(),
                efuse: fuses.get(&FuseKind::Extended).copied(),
                lock: fuses.get(&FuseKind::Lock).copied(),
                ..FuseSettings::default()
            });
        }
        profile.base_dir = folder.to_path_buf();
        Ok(profile)
    }

    /// Saves the main window's selections as a production profile at `path` and opens it in
    /// the production window; problems go to the log.
    pub fn save_profile_from_selection(&mut self, path: &Path) {
        let saved = self
            .profile_from_selection(path)
            .and_then(|profile| profile.save(path).map_err(|e| e.to_string()));
        match saved {
            Ok(()) => {
                self.log.push(
                    Level::Success,
                    format!("Production profile saved to {}", path.display()),
                );
                self.open_production();
                self.production.load_profile(path);
            }
            Err(e) => self.log.push(
                Level::Error,
                format!("Cannot save the production profile: {e}"),
            ),
        }
    }

    /// Opens Tools → Production line.
    pub fn open_production(&mut self) {
        self.production.open = true;
    }

    /// Puts the production line's results in the main log.
    pub fn poll_production(&mut self) {
        for news in self.production.poll() {
            let level = if news.failed {
                Level::Error
            } else {
                Level::Success
            };
            self.log.push(level, news.text);
        }
    }

    /// Rescans now (the refresh button).
    pub fn refresh_ports(&mut self) {
        self.set_ports(scan());
    }

    fn set_ports(&mut self, list: PortList) {
        if let Some((id, name)) = &self.watch_for
            && list.seen_usb.contains(id)
        {
            self.log
                .push(Level::Success, format!("{name} detected at {id}"));
            self.watch_for = None;
        }
        self.ports = list;
    }

    /// Starts the background port watcher (desktop only).
    pub(super) fn ensure_watcher(&mut self, ctx: &egui::Context) {
        if self.options.watch_ports && self.watcher.is_none() {
            let repaint = ctx.clone();
            match PortWatcher::spawn(move || repaint.request_repaint()) {
                Ok(w) => self.watcher = Some(w),
                Err(e) => {
                    self.options.watch_ports = false;
                    self.log
                        .push(Level::Warn, format!("cannot watch for new ports: {e}"));
                }
            }
        }
    }

    /// Saves the settings if the app has a settings file.
    pub fn save_settings(&mut self) {
        if let Some(path) = &self.options.settings_path
            && let Err(e) = self.settings.save(path)
        {
            self.log.push(
                Level::Warn,
                format!("cannot save settings to {}: {e}", path.display()),
            );
        }
    }

    /// Whether native file dialogs are used.
    pub(super) fn native_dialogs(&self) -> bool {
        self.options.native_dialogs
    }
}

/// An error with its hint, for the log.
fn error_text(e: &Error) -> String {
    match e.hint() {
        Some(hint) => format!("{e} — {hint}"),
        None => e.to_string(),
    }
}

/// The widest font atlas the app asks for, in pixels.
pub(super) const FONT_ATLAS_MAX_SIDE: usize = 2048;

/// egui makes its font atlas as wide as the renderer's largest texture (16384 pixels under
/// Mesa's software renderer), four bytes a pixel, kept in memory and again as the texture.
/// The app's few hundred glyphs fit a 2048-pixel-wide atlas, which grows in height as needed.
fn cap_font_atlas(raw_input: &mut egui::RawInput) {
    let side = raw_input.max_texture_side.unwrap_or(FONT_ATLAS_MAX_SIDE);
    raw_input.max_texture_side = Some(side.min(FONT_ATLAS_MAX_SIDE));
}

impl App {
    /// Applies the remembered light or dark theme to a new window's context.
    pub fn apply_saved_theme(&self, ctx: &egui::Context) {
        if let Some(dark) = self.settings.dark_mode {
            ctx.set_theme(if dark {
                egui::Theme::Dark
            } else {
                egui::Theme::Light
            });
        }
    }

    /// One frame of the window: remembers its size for the settings, then draws.
    pub fn window_ui(&mut self, ui: &mut egui::Ui) {
        let size = ui
            .ctx()
            .input(|i| i.viewport().inner_rect.map(|r| [r.width(), r.height()]));
        if size.is_some() {
            self.settings.window_size = size;
        }
        self.ui(ui);
    }
}

/// eframe's view of the app: forwards frames and saves settings on exit.
pub struct EframeApp {
    app: App,
}

impl EframeApp {
    /// Wraps the app and applies the remembered theme.
    pub fn new(app: App, cc: &eframe::CreationContext<'_>) -> EframeApp {
        app.apply_saved_theme(&cc.egui_ctx);
        EframeApp { app }
    }
}

impl eframe::App for EframeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.app.window_ui(ui);
    }

    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw_input: &mut egui::RawInput) {
        cap_font_atlas(raw_input);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.app.save_settings();
    }
}
