//! An emulated programmer board (a Pro Micro with Caterina, a Teensy 2.0 with HalfKay) as a
//! small state machine tests can observe, and an [`EmulatedHost`] that lists its ports and
//! opens them the way a PC would.
//!
//! The board runs either its application or its bootloader:
//!
//! ```text
//!              RESET (Arduino Caterina, HalfKay button)            E + 0.5 s, 8 s idle
//!   Application ─────────────────────────────────────▶ Bootloader ─────────────────▶ Application
//!        │  ▲        1200-baud touch (Arduino-core app)    ▲    HalfKay reboot report
//!        │  │                                              │
//!        │  └── 750 ms, program present ── AwaitingSecondReset ── second RESET ──┘
//!        └──────────── RESET (SparkFun Caterina) ──────────┘
//! ```
//!
//! - **Caterina** follows Caterina.c: an external reset enters the bootloader, which starts
//!   the program after 8 s without `B`/`g` traffic (only when a program is present: flash word
//!   0 is not 0xFFFF), and 0.5 s after `E`. SparkFun's variant (Pro Micro, LilyPadUSB) waits
//!   750 ms after a first reset without enumerating and starts the program unless a second
//!   reset comes (then the bootloader runs as above). A watchdog reset with Caterina's boot
//!   key, which an Arduino-core program sets on a 1200-baud touch, enters the bootloader on
//!   both variants.
//! - **HalfKay** starts on the button and stays until its reboot report.
//! - **The application** is whatever flash holds. It enumerates with the first USB device
//!   descriptor found in the application section (see [`crate::bootload::firmware`]), as a
//!   serial port when that descriptor's class is CDC or IAD. It honours the 1200-baud touch
//!   when its vendor is one of the Arduino-core board makers (an emulation choice: the touch
//!   is implemented by the Arduino core, not by QMK's or Teensyduino's firmware).
//! - A device shows up on the bus [`ENUMERATION_DELAY`] after its state begins.
//!
//! Time is the board's socket's virtual clock: the state is worked out lazily whenever it is
//! asked, so a test advances time (or lets the [`EmulatedHost`] sleep) instead of waiting.
//! A scripted user presses RESET at given virtual times ([`ProgrammerBoard::press_reset_at`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::caterina::CaterinaFirmware;
use super::chip::{ChipConfig, EmulatedChip, FuseValues};
use super::clock::duration_ns;
use super::fault::Faults;
use super::halfkay::HalfKayFirmware;
use super::serial::{EmulatorHandle, ServeOptions, spawn_in_process};
use super::socket::{SharedSocket, Socket, lock};
use super::usb::{EmulatedUsbDevice, EmulatedUsbLink};
use crate::bootload::firmware::{
    UsbDescriptor, device_descriptor, is_serial_class, usb_descriptors,
};
use crate::bootload::halfkay::HALFKAY_USB;
use crate::bootload::host::{Clock, Host, UserAction};
use crate::catalog::UsbId;
use crate::error::{Error, Result};
use crate::part::PartDb;
use crate::transport::{PortInfo, SerialLink, UsbDeviceInfo, UsbLink, UsbPortInfo, read_timeout};

/// Time from a state's start until the host sees its USB device (reset, USB attach,
/// enumeration, the OS creating the port).
pub const ENUMERATION_DELAY: Duration = Duration::from_millis(400);
/// SparkFun Caterina's wait for a second reset (`EXT_RESET_TIMEOUT_PERIOD`).
pub const DOUBLE_TAP_WINDOW: Duration = Duration::from_millis(750);
/// Caterina's `TIMEOUT_PERIOD`: 8000 ticks of 1 ms.
pub const CATERINA_TIMEOUT: Duration = Duration::from_secs(8);
/// What `E` leaves of it (`Timeout = TIMEOUT_PERIOD - 500`).
pub const CATERINA_EXIT_DELAY: Duration = Duration::from_millis(500);
/// The Arduino core's watchdog delay after a 1200-baud touch (`wdt_enable(WDTO_120MS)`).
pub const TOUCH_RESET_DELAY: Duration = Duration::from_millis(120);
/// Caterina's boot section on the ATmega32U4 (`BOOT_SECTION_SIZE_KB = 4`).
pub const CATERINA_BOOT_BYTES: u32 = 4096;
/// HalfKay's size on the ATmega32U4 (the top 512 bytes).
pub const HALFKAY_BOOT_BYTES: u32 = 512;
/// USB vendors whose boards run the Arduino core, whose programs reset into the bootloader
/// on a 1200-baud touch: Arduino (2341, 2A03), SparkFun, Adafruit, Pololu.
pub const ARDUINO_CORE_VENDORS: [u16; 5] = [0x2341, 0x2A03, 0x1B4F, 0x239A, 0x1FFB];
/// The serial port name the emulated board's CDC device gets.
pub const EMULATED_TTY: &str = "emulated/ttyACM0";

/// Which Caterina build runs on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaterinaVariant {
    /// Arduino's (Leonardo, Micro): every external reset enters the bootloader.
    Arduino,
    /// SparkFun's (Pro Micro, LilyPadUSB): a reset needs a second one within 750 ms.
    SparkFun,
}

/// The bootloader on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardModel {
    /// Caterina, enumerating with `usb`.
    Caterina {
        /// The bootloader's USB id.
        usb: UsbId,
        /// Which build.
        variant: CaterinaVariant,
    },
    /// HalfKay (Teensy 2.0).
    HalfKay,
}

/// What the board is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardState {
    /// Running the program in flash (or nothing, if there is none).
    Application,
    /// SparkFun Caterina after one reset, waiting for a second; not on USB.
    AwaitingSecondReset,
    /// The bootloader runs.
    Bootloader,
    /// The bootloader overwrote its own code and stopped answering (a board that needs an
    /// ISP programmer now).
    Crashed,
}

/// One state change, for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Virtual time, ns.
    pub at_ns: u64,
    /// The new state.
    pub state: BoardState,
}

/// How a board starts.
#[derive(Debug, Clone)]
pub struct BoardConfig {
    /// The bootloader.
    pub model: BoardModel,
    /// The lock byte (0x2F protects Caterina's section from SPM; 0xFF does not).
    pub lock: u8,
    /// The program in flash from address 0, if any.
    pub application: Option<Vec<u8>>,
    /// The state at power-up.
    pub state: BoardState,
}

impl BoardConfig {
    /// A SparkFun Pro Micro 5V (Caterina 1B4F:9205, no lock byte, as SparkFun ships it)
    /// running `application`.
    pub fn pro_micro(application: Option<Vec<u8>>) -> Self {
        BoardConfig {
            model: BoardModel::Caterina {
                usb: UsbId::new(0x1B4F, 0x9205),
                variant: CaterinaVariant::SparkFun,
            },
            lock: 0xFF,
            application,
            state: BoardState::Application,
        }
    }

    /// A Teensy 2.0 running `application`.
    pub fn teensy2(application: Option<Vec<u8>>) -> Self {
        BoardConfig {
            model: BoardModel::HalfKay,
            lock: 0xFF,
            application,
            state: BoardState::Application,
        }
    }

    /// The same board, powered up in `state`.
    pub fn in_state(mut self, state: BoardState) -> Self {
        self.state = state;
        self
    }
}

/// A program image that enumerates as `id` (a USB device descriptor of `device_class` at
/// 0x100) with `len` bytes of filler code around it: a stand-in for real firmware, which the
/// project does not ship.
pub fn synthetic_application(id: UsbId, device_class: u8, len: usize) -> Vec<u8> {
    let len = len.max(0x200);
    // A jmp at the reset vector, then a deterministic pattern that never forms a descriptor.
    let mut image: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    image[..4].copy_from_slice(&[0x0C, 0x94, 0x56, 0x00]);
    image[0x100..0x112].copy_from_slice(&device_descriptor(id, device_class));
    image
}

/// The stand-in for the bootloader's own code in its section (its bytes only matter in that
/// they must survive).
pub fn synthetic_bootloader(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 253) as u8 ^ 0x5A).collect()
}

/// Whether a program enumerating as `id` was built with the Arduino core.
pub fn arduino_core_program(id: UsbId) -> bool {
    ARDUINO_CORE_VENDORS.contains(&id.vid)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    ResetButton,
    WatchdogWithBootKey,
}

#[derive(Debug)]
struct Inner {
    model: BoardModel,
    socket: SharedSocket,
    state: BoardState,
    since_ns: u64,
    session: u64,
    /// When Caterina's `Timeout` counter runs out (pushed back by B/g, brought forward by E).
    timeout_at_ns: u64,
    pending: VecDeque<(u64, Event)>,
    history: Vec<Transition>,
}

/// A shared handle on an emulated programmer board.
#[derive(Debug, Clone)]
pub struct ProgrammerBoard(Arc<Mutex<Inner>>);

impl ProgrammerBoard {
    /// Builds the board: an ATmega32U4 with the bootloader's fuses, its (stand-in) code in its
    /// section and `config.application` from address 0.
    pub fn new(config: BoardConfig) -> Result<Self> {
        let part = PartDb::builtin()?.find("atmega32u4")?;
        let (hfuse, boot_bytes) = match config.model {
            // BOOTSZ = 00 (4 KB) and BOOTRST, as every Caterina preset in the catalog.
            BoardModel::Caterina { .. } => (0xD8, CATERINA_BOOT_BYTES),
            // BOOTSZ = 11 (512 bytes) and BOOTRST.
            BoardModel::HalfKay => (0xDE, HALFKAY_BOOT_BYTES),
        };
        let boot_start = (part.flash.size - boot_bytes) as usize;
        let mut flash = vec![0xFF; part.flash.size as usize];
        if let Some(app) = &config.application {
            let room = flash
                .get_mut(..app.len())
                .filter(|_| app.len() <= boot_start);
            let room = room.ok_or_else(|| {
                Error::invalid(format!(
                    "the emulated board's program ({} bytes) overlaps its bootloader at 0x{boot_start:04X}",
                    app.len()
                ))
            })?;
            room.copy_from_slice(app);
        }
        flash[boot_start..].copy_from_slice(&synthetic_bootloader(boot_bytes as usize));
        let chip = EmulatedChip::new(
            part,
            ChipConfig {
                fuses: Some(FuseValues {
                    lfuse: 0xFF,
                    hfuse,
                    efuse: Some(0xCB),
                }),
                lock: config.lock,
                flash: Some(flash),
                ..Default::default()
            },
        )?;
        let socket = Socket::with_chip(chip).shared();
        Ok(Self::with_socket(socket, config.model, config.state))
    }

    /// A board around an existing socket's chip (whatever it holds), powered up in `state`.
    pub fn with_socket(socket: SharedSocket, model: BoardModel, state: BoardState) -> Self {
        let now = lock(&socket).now_ns();
        ProgrammerBoard(Arc::new(Mutex::new(Inner {
            model,
            socket,
            state,
            since_ns: now,
            session: 1,
            timeout_at_ns: now + duration_ns(CATERINA_TIMEOUT),
            pending: VecDeque::new(),
            history: vec![Transition { at_ns: now, state }],
        })))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The board's MCU and virtual clock.
    pub fn socket(&self) -> SharedSocket {
        self.inner().socket.clone()
    }

    /// The bootloader.
    pub fn model(&self) -> BoardModel {
        self.inner().model
    }

    /// The virtual time now, ns.
    pub fn now_ns(&self) -> u64 {
        let socket = self.socket();
        lock(&socket).now_ns()
    }

    /// Lets virtual time pass.
    pub fn advance(&self, duration: Duration) {
        let socket = self.socket();
        lock(&socket).advance(duration);
    }

    /// The state now.
    pub fn state(&self) -> BoardState {
        let mut inner = self.inner();
        inner.settle();
        inner.state
    }

    /// Every state change so far, the power-up state first.
    pub fn history(&self) -> Vec<Transition> {
        let mut inner = self.inner();
        inner.settle();
        inner.history.clone()
    }

    /// The current bootloader session (a new one each time the bootloader starts).
    pub fn session(&self) -> u64 {
        let mut inner = self.inner();
        inner.settle();
        inner.session
    }

    /// A copy of the board's flash.
    pub fn flash(&self) -> Vec<u8> {
        let socket = self.socket();
        lock(&socket)
            .chip()
            .map(|c| c.flash().to_vec())
            .unwrap_or_default()
    }

    /// The user presses RESET (or the Teensy's button) now.
    pub fn press_reset(&self) {
        let mut inner = self.inner();
        let now = inner.now();
        inner.settle();
        inner.apply(now, Event::ResetButton);
    }

    /// The user will press RESET at virtual time `at_ns` (a scripted user).
    pub fn press_reset_at(&self, at_ns: u64) {
        self.inner().schedule(at_ns, Event::ResetButton);
    }

    /// The program's port was opened at 1200 baud and DTR dropped: an Arduino-core program
    /// resets into the bootloader 120 ms later; others ignore it.
    pub fn touch_1200(&self) {
        let mut inner = self.inner();
        inner.settle();
        let honours = inner.state == BoardState::Application
            && matches!(inner.model, BoardModel::Caterina { .. })
            && inner
                .application_descriptor()
                .is_some_and(|d| arduino_core_program(d.id));
        let already = inner
            .pending
            .iter()
            .any(|(_, e)| *e == Event::WatchdogWithBootKey);
        if honours && !already {
            let at = inner.now() + duration_ns(TOUCH_RESET_DELAY);
            inner.schedule(at, Event::WatchdogWithBootKey);
        }
    }

    /// Whether bootloader session `session` is still running (Caterina and HalfKay call this
    /// for every command).
    pub fn bootloader_running(&self, session: u64) -> bool {
        let mut inner = self.inner();
        inner.settle();
        inner.state == BoardState::Bootloader && inner.session == session
    }

    /// Caterina got `B` or `g`: its timeout counter starts again.
    pub fn bootloader_activity(&self) {
        let mut inner = self.inner();
        inner.settle();
        inner.timeout_at_ns = inner.now() + duration_ns(CATERINA_TIMEOUT);
    }

    /// Caterina got `E`: it leaves 500 ms from now (if a program is present).
    pub fn bootloader_exit_requested(&self) {
        let mut inner = self.inner();
        inner.settle();
        let now = inner.now();
        inner.timeout_at_ns = now + duration_ns(CATERINA_EXIT_DELAY);
    }

    /// HalfKay got its reboot report: the program starts now.
    pub fn bootloader_rebooted(&self) {
        let mut inner = self.inner();
        inner.settle();
        let now = inner.now();
        inner.enter(now, BoardState::Application);
    }

    /// The bootloader overwrote its own code: it stops answering for good.
    pub fn bootloader_crashed(&self) {
        let mut inner = self.inner();
        let now = inner.now();
        inner.enter(now, BoardState::Crashed);
    }

    /// The USB id of the program in flash, if it has a descriptor.
    pub fn application_id(&self) -> Option<UsbId> {
        self.inner().application_descriptor().map(|d| d.id)
    }

    /// The serial ports the host sees now.
    pub fn serial_ports(&self) -> Vec<PortInfo> {
        self.devices()
            .into_iter()
            .filter(|d| d.serial)
            .map(|d| PortInfo {
                name: EMULATED_TTY.to_string(),
                usb: Some(UsbPortInfo {
                    id: d.id,
                    serial_number: None,
                    manufacturer: None,
                    product: Some(d.product.to_string()),
                }),
            })
            .collect()
    }

    /// The USB devices the host sees now.
    pub fn usb_devices(&self) -> Vec<UsbDeviceInfo> {
        self.devices()
            .into_iter()
            .map(|d| UsbDeviceInfo {
                id: d.id,
                bus: 1,
                address: d.address,
                manufacturer: None,
                product: Some(d.product.to_string()),
                serial_number: None,
            })
            .collect()
    }

    /// What is on the bus now (at most one device: the board).
    fn devices(&self) -> Vec<Device> {
        let mut inner = self.inner();
        inner.settle();
        let now = inner.now();
        if now < inner.since_ns + duration_ns(ENUMERATION_DELAY) {
            return Vec::new();
        }
        // Each enumeration gets a new address, as on a real bus.
        let address = (inner.history.len() % 120) as u8 + 2;
        match (inner.state, inner.model) {
            (BoardState::Bootloader, BoardModel::Caterina { usb, .. }) => vec![Device {
                id: usb,
                serial: true,
                product: "Caterina bootloader",
                address,
            }],
            (BoardState::Bootloader, BoardModel::HalfKay) => vec![Device {
                id: HALFKAY_USB,
                serial: false,
                product: "HalfKay",
                address,
            }],
            (BoardState::Application, _) => inner
                .application_descriptor()
                .map(|d| Device {
                    id: d.id,
                    serial: is_serial_class(d.device_class),
                    product: "application",
                    address,
                })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }
}

struct Device {
    id: UsbId,
    serial: bool,
    product: &'static str,
    address: u8,
}

impl Inner {
    fn now(&self) -> u64 {
        lock(&self.socket).now_ns()
    }

    fn schedule(&mut self, at_ns: u64, event: Event) {
        let position = self.pending.partition_point(|(t, _)| *t <= at_ns);
        self.pending.insert(position, (at_ns, event));
    }

    /// Whether flash word 0 is programmed (Caterina's test for a program).
    fn program_present(&self) -> bool {
        lock(&self.socket)
            .chip()
            .is_some_and(|c| c.flash().get(..2) != Some(&[0xFF, 0xFF][..]))
    }

    fn application_descriptor(&self) -> Option<UsbDescriptor> {
        let socket = lock(&self.socket);
        let chip = socket.chip()?;
        let end = chip.boot_section_start() as usize;
        usb_descriptors(chip.flash().get(..end)?, 0)
            .into_iter()
            .next()
    }

    /// Applies every timer and scripted event due by now, in time order.
    fn settle(&mut self) {
        let now = self.now();
        loop {
            let timer = self.timer_due();
            let event = self.pending.front().map(|(t, _)| *t);
            match (timer, event) {
                (Some(t), e) if t <= now && e.is_none_or(|e| t <= e) => self.fire_timer(t),
                (_, Some(e)) if e <= now => {
                    if let Some((at, event)) = self.pending.pop_front() {
                        self.apply(at, event);
                    }
                }
                _ => return,
            }
        }
    }

    /// When the current state ends by itself, if it does.
    fn timer_due(&self) -> Option<u64> {
        match (self.state, self.model) {
            (BoardState::AwaitingSecondReset, _) => {
                Some(self.since_ns + duration_ns(DOUBLE_TAP_WINDOW))
            }
            (BoardState::Bootloader, BoardModel::Caterina { .. }) if self.program_present() => {
                Some(self.timeout_at_ns)
            }
            _ => None,
        }
    }

    fn fire_timer(&mut self, at: u64) {
        match self.state {
            BoardState::AwaitingSecondReset if self.program_present() => {
                self.enter(at, BoardState::Application)
            }
            // No program: SparkFun's Caterina stays in the bootloader.
            BoardState::AwaitingSecondReset => self.enter(at, BoardState::Bootloader),
            _ => self.enter(at, BoardState::Application),
        }
    }

    fn apply(&mut self, at: u64, event: Event) {
        if self.state == BoardState::Crashed {
            return;
        }
        let next = match (event, self.model) {
            (Event::WatchdogWithBootKey, _) | (Event::ResetButton, BoardModel::HalfKay) => {
                BoardState::Bootloader
            }
            (
                Event::ResetButton,
                BoardModel::Caterina {
                    variant: CaterinaVariant::Arduino,
                    ..
                },
            ) => BoardState::Bootloader,
            (Event::ResetButton, BoardModel::Caterina { .. }) => {
                if self.state == BoardState::AwaitingSecondReset {
                    BoardState::Bootloader
                } else {
                    BoardState::AwaitingSecondReset
                }
            }
        };
        self.enter(at, next);
    }

    fn enter(&mut self, at: u64, state: BoardState) {
        if state == BoardState::Bootloader {
            self.session += 1;
            self.timeout_at_ns = at + duration_ns(CATERINA_TIMEOUT);
        }
        self.state = state;
        self.since_ns = at;
        self.history.push(Transition { at_ns: at, state });
    }
}

/// A board to practise on (`prepare -P emulated`, the app's emulated mode): plugged in a
/// second ago and running a stand-in program (an Arduino sketch on the Pro Micro, so the
/// 1200-baud touch works; a keyboard firmware on the Teensy), with the emulator playing the
/// user's part at the board (pressing RESET when asked).
pub fn stand_in_host(board: crate::bootload::Board) -> Result<EmulatedHost> {
    let config =
        match board {
            crate::bootload::Board::ProMicro => BoardConfig::pro_micro(Some(
                synthetic_application(UsbId::new(0x1B4F, 0x9206), 0xEF, 0x1800),
            )),
            crate::bootload::Board::Teensy2 => BoardConfig::teensy2(Some(synthetic_application(
                UsbId::new(0xFEED, 0x6060),
                0x00,
                0x1800,
            ))),
        };
    let board = ProgrammerBoard::new(config)?;
    // Plugged in a while ago: the program has enumerated.
    board.advance(Duration::from_secs(1));
    Ok(EmulatedHost::new(board).playing_user())
}

/// The PC side for an emulated board: its ports, opened in-process, and its virtual clock.
pub struct EmulatedHost {
    board: ProgrammerBoard,
    faults: Faults,
    plays_user: bool,
}

impl EmulatedHost {
    /// A host with `board` plugged in.
    pub fn new(board: ProgrammerBoard) -> Self {
        EmulatedHost {
            board,
            faults: Faults::none(),
            plays_user: false,
        }
    }

    /// Commits `faults` on the bootloader sessions it opens (counted per session).
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Plays the user: when asked to reset the board, does so a second later (a double tap
    /// 300 ms apart on a Pro Micro).
    pub fn playing_user(mut self) -> Self {
        self.plays_user = true;
        self
    }

    /// The board.
    pub fn board(&self) -> &ProgrammerBoard {
        &self.board
    }
}

impl Clock for EmulatedHost {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.board.now_ns())
    }

    fn sleep(&mut self, duration: Duration) {
        self.board.advance(duration);
    }
}

impl Host for EmulatedHost {
    fn serial_ports(&mut self) -> Vec<PortInfo> {
        self.board.serial_ports()
    }

    fn usb_devices(&mut self) -> Vec<UsbDeviceInfo> {
        self.board.usb_devices()
    }

    fn open_serial(&mut self, port: &str, baud: u32) -> Result<Box<dyn SerialLink>> {
        let present = self
            .board
            .serial_ports()
            .into_iter()
            .find(|p| p.name == port);
        let Some(present) = present else {
            return Err(Error::Open {
                port: port.to_string(),
                reason: "no such port (the emulated board is not on USB as a serial device now)"
                    .into(),
                hint: "wait for the board to enumerate".into(),
            });
        };
        let state = self.board.state();
        if state == BoardState::Bootloader {
            let session = self.board.session();
            let firmware = CaterinaFirmware::new(self.board.clone(), session);
            let options = ServeOptions {
                faults: self.faults.clone(),
                realtime: false,
            };
            let (link, handle) =
                spawn_in_process(Box::new(firmware), self.board.socket(), baud, options);
            return Ok(Box::new(SessionLink {
                link,
                _emulator: handle,
            }));
        }
        Ok(Box::new(ApplicationPort {
            board: self.board.clone(),
            name: present.name,
            baud,
            dtr: true,
        }))
    }

    fn open_usb(&mut self, id: UsbId) -> Result<Box<dyn UsbLink>> {
        let present = self.board.usb_devices().iter().any(|d| d.id == id);
        if !present || id != HALFKAY_USB {
            return Err(Error::Open {
                port: format!("USB {id}"),
                reason: "no such device is connected (emulated)".into(),
                hint: "wait for the board to enumerate".into(),
            });
        }
        let firmware = HalfKayFirmware::new(Some((self.board.clone(), self.board.session())));
        let device =
            EmulatedUsbDevice::new(Box::new(firmware), self.board.socket(), self.faults.clone());
        Ok(Box::new(EmulatedUsbLink::new(device.shared())))
    }

    fn user_asked(&mut self, action: UserAction) {
        if !self.plays_user {
            return;
        }
        let now = self.board.now_ns();
        let second = 1_000_000_000;
        self.board.press_reset_at(now + second);
        if action == UserAction::DoubleTapReset {
            self.board.press_reset_at(now + second + 300_000_000);
        }
    }
}

/// A link to one bootloader session, keeping its emulator thread alive.
struct SessionLink {
    link: crate::transport::MemoryLink,
    _emulator: EmulatorHandle,
}

impl SerialLink for SessionLink {
    fn name(&self) -> &str {
        EMULATED_TTY
    }
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.link.write_all(data)
    }
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()> {
        self.link.read_exact(buf, timeout, during)
    }
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.link.read_some(buf, timeout)
    }
    fn set_dtr(&mut self, on: bool) -> Result<()> {
        self.link.set_dtr(on)
    }
    fn set_rts(&mut self, on: bool) -> Result<()> {
        self.link.set_rts(on)
    }
    fn set_baud(&mut self, baud: u32) -> Result<()> {
        self.link.set_baud(baud)
    }
}

/// The running program's serial port: the emulation models only its line settings (the
/// 1200-baud touch); data goes nowhere and nothing comes back.
struct ApplicationPort {
    board: ProgrammerBoard,
    name: String,
    baud: u32,
    dtr: bool,
}

impl ApplicationPort {
    fn lines_changed(&mut self) {
        if self.baud == 1200 && !self.dtr {
            self.board.touch_1200();
        }
    }
}

impl SerialLink for ApplicationPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn write_all(&mut self, _data: &[u8]) -> Result<()> {
        Ok(())
    }
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()> {
        Err(read_timeout(&self.name, timeout, during, 0, buf.len()))
    }
    fn read_some(&mut self, _buf: &mut [u8], _timeout: Duration) -> Result<usize> {
        Ok(0)
    }
    fn set_dtr(&mut self, on: bool) -> Result<()> {
        self.dtr = on;
        self.lines_changed();
        Ok(())
    }
    fn set_rts(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
    fn set_baud(&mut self, baud: u32) -> Result<()> {
        self.baud = baud;
        self.lines_changed();
        Ok(())
    }
}

impl Drop for ApplicationPort {
    /// Closing a tty drops DTR (HUPCL), which completes a touch at 1200 baud.
    fn drop(&mut self) {
        if self.dtr {
            self.dtr = false;
            self.lines_changed();
        }
    }
}
