//! The "prepare the programmer board" job: load the user's ISP firmware onto a Pro Micro
//! (through Caterina) or a Teensy 2.0 (through HalfKay), start it, and find the port the new
//! ISP programmer appears on.
//!
//! Steps, each announced with [`PrepareEvent::Step`] in this order:
//!
//! 1. **Check** the file ([`check_isp_firmware`]); a file that cannot be ISP firmware for the
//!    board is refused here, before any device is touched.
//! 2. **EnterBootloader**: if the bootloader is already there, go on. Otherwise, on a Pro
//!    Micro with a port given, the 1200-baud touch (open at 1200 baud, drop DTR, close) asks
//!    an Arduino-core program to restart into Caterina; if the bootloader does not show up
//!    within [`TOUCH_WAIT`], or there was nothing to touch, a [`PrepareEvent::Instruction`]
//!    asks the user to double-tap RESET (Pro Micro) or press the button (Teensy).
//! 3. **WaitBootloader**: polls for the bootloader's USB id with a countdown
//!    ([`PrepareEvent::Countdown`]).
//! 4. **Connect**, 5. **Erase** (Caterina only: HalfKay erases with the first block),
//!    6. **Write**, 7. **Verify** (Caterina only: HalfKay cannot read back), with
//!    [`PrepareEvent::Progress`] in bytes.
//! 8. **Start** the firmware: AVR109 `L` and `E`, or HalfKay's reboot report.
//! 9. **WaitProgrammer**: polls for the new firmware's USB id (from the file's own USB
//!    descriptor) and reports its port as the one to select.
//!
//! Failures after the first write are [`Error::Interrupted`]: the message says how much was
//! written and that the bootloader itself was not touched, the hint how to recover. The job
//! checks the [`CancelToken`] between blocks and on every poll.

use std::time::Duration;

use super::avr109::Avr109;
use super::board::{Board, BootloaderKind};
use super::firmware::{FirmwareCheck, check_isp_firmware, is_serial_class};
use super::halfkay::{HALFKAY_USB, HalfKay, TEENSY2};
use super::host::{Found, Host, Look, UserAction, Watch, matching, wait_for};
use crate::catalog::BootloaderCatalog;
use crate::error::{Error, Memory, Result};
use crate::hex::MemoryImage;
use crate::job::{CancelToken, Level};
use crate::part::{FuseKind, Part};
use crate::util::hex_bytes;

/// Caterina ignores the baud rate; this is what the Arduino IDE opens it at.
pub const CATERINA_BAUD: u32 = 57_600;

/// The baud rate of the 1200-baud touch.
pub const TOUCH_BAUD: u32 = 1_200;

/// How long to give the 1200-baud touch before asking the user to reset the board.
pub const TOUCH_WAIT: Duration = Duration::from_millis(2_500);

/// Default wait for the bootloader (the user may have to find the RESET pins first).
pub const DEFAULT_BOOTLOADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Default wait for the new firmware's port (Caterina starts it ~0.5 s after `E`, then the
/// host enumerates it).
pub const DEFAULT_PROGRAMMER_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do.
#[derive(Debug, Clone)]
pub struct PrepareRequest {
    /// The board to prepare.
    pub board: Board,
    /// The ISP firmware.
    pub image: MemoryImage,
    /// The board's serial port as it runs now, for the 1200-baud touch (Pro Micro).
    pub port: Option<String>,
    /// How long to wait for the bootloader.
    pub bootloader_timeout: Duration,
    /// How long to wait for the new firmware's port.
    pub programmer_timeout: Duration,
}

impl PrepareRequest {
    /// A request with the default waits and no port.
    pub fn new(board: Board, image: MemoryImage) -> Self {
        PrepareRequest {
            board,
            image,
            port: None,
            bootloader_timeout: DEFAULT_BOOTLOADER_TIMEOUT,
            programmer_timeout: DEFAULT_PROGRAMMER_TIMEOUT,
        }
    }
}

/// The steps of the job, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrepareStep {
    /// Checking the file.
    Check,
    /// Getting the board into its bootloader.
    EnterBootloader,
    /// Waiting for the bootloader to appear.
    WaitBootloader,
    /// Talking to the bootloader.
    Connect,
    /// Erasing the old program.
    Erase,
    /// Writing the firmware.
    Write,
    /// Reading it back.
    Verify,
    /// Leaving the bootloader so the firmware runs.
    Start,
    /// Waiting for the new ISP programmer's port.
    WaitProgrammer,
}

impl PrepareStep {
    /// Label for progress bars and logs.
    pub fn label(self) -> &'static str {
        match self {
            PrepareStep::Check => "Check file",
            PrepareStep::EnterBootloader => "Enter bootloader",
            PrepareStep::WaitBootloader => "Wait for bootloader",
            PrepareStep::Connect => "Connect",
            PrepareStep::Erase => "Erase",
            PrepareStep::Write => "Write",
            PrepareStep::Verify => "Verify",
            PrepareStep::Start => "Start firmware",
            PrepareStep::WaitProgrammer => "Wait for programmer",
        }
    }
}

/// Something the job reports while it runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum PrepareEvent {
    /// A step begins.
    Step(PrepareStep),
    /// The user has to do something with the board; show it prominently until the next step.
    Instruction {
        /// What to do.
        action: UserAction,
        /// In words.
        text: String,
    },
    /// Time left while waiting for a device (at the start and each whole second).
    Countdown {
        /// The waiting step.
        step: PrepareStep,
        /// Time left.
        remaining: Duration,
        /// The whole wait.
        total: Duration,
    },
    /// Progress within a step, in bytes.
    Progress {
        /// The step.
        step: PrepareStep,
        /// Done so far.
        done: u64,
        /// Total.
        total: u64,
    },
    /// A log line.
    Log(Level, String),
}

/// What the job did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrepareReport {
    /// The board.
    pub board: Board,
    /// The file check.
    pub firmware: FirmwareCheck,
    /// Where the bootloader was found.
    pub bootloader_port: Found,
    /// What the bootloader said about itself.
    pub bootloader: String,
    /// Flash pages (Caterina) or blocks (HalfKay) written.
    pub blocks_written: u32,
    /// Bytes sent to flash.
    pub bytes_written: u64,
    /// Whether the flash was read back and compared (HalfKay cannot).
    pub verified: bool,
    /// The new ISP programmer's port: select it.
    pub programmer_port: Found,
    /// The programmer catalog entry the board now is.
    pub programmer: String,
}

/// Runs the job on `host`. `events` receives progress; `cancel` stops it between blocks.
pub fn prepare(
    host: &mut dyn Host,
    request: &PrepareRequest,
    events: &mut dyn FnMut(PrepareEvent),
    cancel: &CancelToken,
) -> Result<PrepareReport> {
    let mut job = Job {
        host,
        events,
        cancel,
    };
    job.step(PrepareStep::Check);
    let board = request.board;
    let check = check_isp_firmware(board, &request.image, BootloaderCatalog::builtin()?)?;
    job.info(format!(
        "{}: {} bytes at {}, {}",
        board.name(),
        check.bytes,
        check.range,
        check
            .known_build
            .as_deref()
            .map_or("unknown build".to_string(), |b| format!("known build {b}"))
    ));
    for warning in &check.warnings {
        job.log(Level::Warn, warning.clone());
    }
    let bootloader_port = job.enter_bootloader(request)?;
    let written = match board.bootloader() {
        BootloaderKind::Caterina => job.flash_caterina(&bootloader_port, request, &check)?,
        BootloaderKind::HalfKay => job.flash_halfkay(request)?,
    };
    let programmer_port = job.wait_programmer(request, &check)?;
    job.log(
        Level::Success,
        format!(
            "The {} is an ISP programmer now: select port {} (programmer {}, driver avrisp)",
            board.name(),
            programmer_port,
            board.programmer_id()
        ),
    );
    Ok(PrepareReport {
        board,
        firmware: check,
        bootloader_port,
        bootloader: written.bootloader,
        blocks_written: written.blocks,
        bytes_written: written.bytes,
        verified: written.verified,
        programmer_port,
        programmer: board.programmer_id().to_string(),
    })
}

/// What a flashing step did.
struct Written {
    bootloader: String,
    blocks: u32,
    bytes: u64,
    verified: bool,
}

struct Job<'a> {
    host: &'a mut dyn Host,
    events: &'a mut dyn FnMut(PrepareEvent),
    cancel: &'a CancelToken,
}

impl Job<'_> {
    fn step(&mut self, step: PrepareStep) {
        (self.events)(PrepareEvent::Step(step));
    }

    fn log(&mut self, level: Level, text: impl Into<String>) {
        (self.events)(PrepareEvent::Log(level, text.into()));
    }

    fn info(&mut self, text: impl Into<String>) {
        self.log(Level::Info, text);
    }

    fn progress(&mut self, step: PrepareStep, done: u64, total: u64) {
        (self.events)(PrepareEvent::Progress { step, done, total });
    }

    fn instruct(&mut self, action: UserAction, text: String) {
        (self.events)(PrepareEvent::Instruction { action, text });
        self.host.user_asked(action);
    }

    /// Waits for a device, reporting the countdown under `step`.
    fn wait(&mut self, step: PrepareStep, watch: &Watch) -> Result<Found> {
        let total = watch.timeout;
        let events = &mut *self.events;
        wait_for(self.host, watch, self.cancel, &mut |remaining| {
            events(PrepareEvent::Countdown {
                step,
                remaining,
                total,
            })
        })
    }

    // ----- entering the bootloader ----------------------------------------------------------

    fn enter_bootloader(&mut self, request: &PrepareRequest) -> Result<Found> {
        self.step(PrepareStep::EnterBootloader);
        let board = request.board;
        let watch = Watch {
            what: format!(
                "the {}'s {} bootloader",
                board.name(),
                match board.bootloader() {
                    BootloaderKind::Caterina => "Caterina",
                    BootloaderKind::HalfKay => "HalfKay",
                }
            ),
            ids: board.bootloader_ids()?,
            look: match board.bootloader() {
                BootloaderKind::Caterina => Look::Serial,
                BootloaderKind::HalfKay => Look::Usb,
            },
            timeout: request.bootloader_timeout,
            hint: format!(
                "{} Is it plugged in with a data cable (not a charge-only one)?",
                board.reset_instruction()
            ),
        };
        if let Some(found) = matching(self.host, &watch).into_iter().next() {
            self.info(format!("The bootloader is already running: {found}"));
            return Ok(found);
        }
        let action = match board.bootloader() {
            BootloaderKind::Caterina => UserAction::DoubleTapReset,
            BootloaderKind::HalfKay => UserAction::PressTeensyButton,
        };
        if let (BootloaderKind::Caterina, Some(port)) = (board.bootloader(), &request.port) {
            self.touch_1200(port);
            let short = Watch {
                timeout: TOUCH_WAIT.min(request.bootloader_timeout),
                ..watch.clone()
            };
            self.step(PrepareStep::WaitBootloader);
            match self.wait(PrepareStep::WaitBootloader, &short) {
                Ok(found) => {
                    self.info(format!("Bootloader found: {found}"));
                    return Ok(found);
                }
                Err(Error::NotFound { .. }) => self.log(
                    Level::Warn,
                    "The program did not restart into the bootloader (only Arduino-core \
                     programs answer the 1200-baud touch)",
                ),
                Err(e) => return Err(e),
            }
        }
        self.instruct(action, board.reset_instruction());
        self.step(PrepareStep::WaitBootloader);
        let found = self.wait(PrepareStep::WaitBootloader, &watch)?;
        self.info(format!("Bootloader found: {found}"));
        Ok(found)
    }

    /// Opens the program's port at 1200 baud and drops DTR: an Arduino-core program then
    /// sets Caterina's boot key and lets the watchdog reset the board into the bootloader.
    fn touch_1200(&mut self, port: &str) {
        let touched = self
            .host
            .open_serial(port, TOUCH_BAUD)
            .and_then(|mut link| {
                link.set_dtr(false)?;
                // Closing the port ends the touch (and drops DTR again where the OS does).
                drop(link);
                Ok(())
            });
        match touched {
            Ok(()) => self.info(format!(
                "Asked the program on {port} to restart into its bootloader (1200-baud touch)"
            )),
            Err(e) => self.log(
                Level::Warn,
                format!("Could not do the 1200-baud touch on {port}: {e}"),
            ),
        }
    }

    // ----- Caterina ---------------------------------------------------------------------------

    fn flash_caterina(
        &mut self,
        port: &Found,
        request: &PrepareRequest,
        check: &FirmwareCheck,
    ) -> Result<Written> {
        let part = request.board.part()?;
        self.step(PrepareStep::Connect);
        let link = self.host.open_serial(&port.name(), CATERINA_BAUD)?;
        let mut client = Avr109::new(link);
        let info = client.connect()?.clone();
        self.info(format!(
            "Bootloader on {}: {}",
            port.name(),
            info.describe()
        ));
        if !info.is_caterina() {
            self.log(
                Level::Warn,
                format!(
                    "The bootloader calls itself '{}', not Caterina; continuing as AVR109",
                    info.software_id
                ),
            );
        }
        let page_size = part.flash.page_size;
        if u32::from(info.block_size) < page_size {
            return Err(Error::protocol(
                super::avr109::DRIVER,
                format!(
                    "the bootloader's block size ({} bytes) is smaller than a flash page ({page_size} bytes); Caterina writes one page per block",
                    info.block_size
                ),
            ));
        }
        check_caterina_target(&mut client, part, request, check)?;
        let mut interrupted = Interruption::new(request.board, check.application_end);

        self.step(PrepareStep::Erase);
        self.info("Erasing the application section (the bootloader keeps its own)");
        client
            .erase_application()
            .map_err(|e| interrupted.error("erasing the old program", e))?;
        self.progress(PrepareStep::Erase, 1, 1);

        let pages: Vec<u32> = request
            .image
            .pages_touched(page_size)
            .into_iter()
            .filter(|&p| !request.image.page_is_blank(p, page_size))
            .collect();
        let total = pages.len() as u64 * u64::from(page_size);
        self.step(PrepareStep::Write);
        self.info(format!(
            "Writing {} page(s) of {page_size} bytes",
            pages.len()
        ));
        self.progress(PrepareStep::Write, 0, total);
        for (i, &addr) in pages.iter().enumerate() {
            let data = request.image.page(addr, page_size, 0xFF);
            let written = self
                .check_cancel()
                .and_then(|()| client.write_block(Memory::Flash, addr, &data));
            if let Err(e) = written {
                return Err(interrupted.error("writing the ISP firmware", e));
            }
            interrupted.wrote(addr, page_size);
            self.progress(
                PrepareStep::Write,
                (i as u64 + 1) * u64::from(page_size),
                total,
            );
        }

        self.step(PrepareStep::Verify);
        let mut read_back = vec![0u8; page_size as usize];
        for (i, &addr) in pages.iter().enumerate() {
            let expected = request.image.page(addr, page_size, 0xFF);
            self.check_cancel()
                .and_then(|()| client.read_block(Memory::Flash, addr, &mut read_back))
                .and_then(|()| compare(addr, &expected, &read_back))
                .map_err(|e| interrupted.error("verifying the ISP firmware", e))?;
            self.progress(
                PrepareStep::Verify,
                (i as u64 + 1) * u64::from(page_size),
                total,
            );
        }
        self.log(
            Level::Success,
            format!("{total} bytes written and verified"),
        );

        self.step(PrepareStep::Start);
        client
            .leave_programming()
            .and_then(|()| client.exit())
            .map_err(|e| Error::Interrupted {
                during: "starting the ISP firmware".into(),
                state: "the firmware is written and verified, but the bootloader did not confirm \
                        the exit"
                    .into(),
                source: Box::new(e),
                hint: "unplug the board and plug it back in: with a program present, Caterina \
                       starts it at power-up"
                    .into(),
            })?;
        self.info("Left the bootloader; Caterina starts the firmware in about half a second");
        Ok(Written {
            bootloader: format!("Caterina ({})", info.describe()),
            blocks: pages.len() as u32,
            bytes: total,
            verified: true,
        })
    }

    // ----- HalfKay ----------------------------------------------------------------------------

    fn flash_halfkay(&mut self, request: &PrepareRequest) -> Result<Written> {
        let layout = TEENSY2;
        self.step(PrepareStep::Connect);
        let link = self.host.open_usb(HALFKAY_USB)?;
        let mut client = HalfKay::new(link, layout);
        self.info(format!("HalfKay on {}", client.port()));
        let block = layout.block_size;
        // teensy_loader_cli's order: every block with data, and always the first (it erases).
        let blocks: Vec<u32> = (0..layout.code_size)
            .step_by(block as usize)
            .filter(|&addr| addr == 0 || !request.image.page_is_blank(addr, block))
            .collect();
        let total = blocks.len() as u64 * u64::from(block);
        let mut interrupted = Interruption::new(request.board, layout.code_size);
        self.step(PrepareStep::Write);
        self.info(format!(
            "Writing {} block(s) of {block} bytes (HalfKay erases the chip with the first)",
            blocks.len()
        ));
        self.progress(PrepareStep::Write, 0, total);
        for (i, &addr) in blocks.iter().enumerate() {
            let data = request.image.page(addr, block, 0xFF);
            let written = self
                .check_cancel()
                .and_then(|()| client.write_block(self.host, addr, &data));
            if let Err(e) = written {
                return Err(interrupted.error("writing the ISP firmware", e));
            }
            interrupted.wrote(addr, block);
            self.progress(PrepareStep::Write, (i as u64 + 1) * u64::from(block), total);
        }
        self.step(PrepareStep::Verify);
        self.log(
            Level::Warn,
            "HalfKay cannot read flash back, so the write is not verified (teensy_loader_cli \
             does not verify either)",
        );
        self.step(PrepareStep::Start);
        match client.reboot(self.host) {
            Ok(()) => self.info("Sent the reboot report; the Teensy starts the firmware"),
            Err(e) => self.log(
                Level::Warn,
                format!("The reboot report was not accepted ({e}); the firmware may not start until the Teensy is replugged"),
            ),
        }
        Ok(Written {
            bootloader: "HalfKay".into(),
            blocks: blocks.len() as u32,
            bytes: total,
            verified: false,
        })
    }

    // ----- the new programmer ----------------------------------------------------------------

    fn wait_programmer(
        &mut self,
        request: &PrepareRequest,
        check: &FirmwareCheck,
    ) -> Result<Found> {
        self.step(PrepareStep::WaitProgrammer);
        let serial = check.descriptors.is_empty()
            || check
                .descriptors
                .iter()
                .any(|d| is_serial_class(d.device_class));
        let watch = Watch {
            what: format!("the {}'s ISP programmer port", request.board.name()),
            ids: check.expected_ids.clone(),
            look: if serial { Look::Serial } else { Look::Usb },
            timeout: request.programmer_timeout,
            hint: "the firmware was written, but its port did not appear: unplug the board and \
                   plug it back in; if it still does not appear, the file may not be ISP \
                   firmware for this board"
                .into(),
        };
        let found = self.wait(PrepareStep::WaitProgrammer, &watch)?;
        Ok(found)
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Checks, before anything is erased, that the bootloader runs on the expected MCU and that
/// its boot section (from the high fuse) leaves room for the file.
fn check_caterina_target<L: crate::transport::SerialLink>(
    client: &mut Avr109<L>,
    part: &Part,
    request: &PrepareRequest,
    check: &FirmwareCheck,
) -> Result<()> {
    let signature = client.signature()?;
    if signature != part.signature {
        return Err(Error::WrongTarget {
            expected: format!("{} of a {}", part.name, request.board.name()),
            found: crate::part::PartDb::builtin()?
                .by_signature(signature)
                .first()
                .map_or("an unknown part".to_string(), |p| p.name.clone()),
            signature: hex_bytes(&signature),
        });
    }
    let hfuse = client.read_fuse(FuseKind::High)?;
    let boot_start = part
        .boot_section_for_hfuse(hfuse)
        .map_or(part.flash.size, |s| s.start_byte());
    if request.image.end() > u64::from(boot_start) {
        return Err(Error::Image(format!(
            "the file covers {}, but this board's fuses (hfuse 0x{hfuse:02X}) put the bootloader \
             at 0x{boot_start:04X}; nothing was written",
            check.range
        )));
    }
    Ok(())
}

/// Compares a page read back with what was written.
fn compare(addr: u32, expected: &[u8], read: &[u8]) -> Result<()> {
    let mut differing = expected
        .iter()
        .zip(read)
        .enumerate()
        .filter(|(_, (e, r))| e != r);
    let Some((offset, (&expected_byte, &read_byte))) = differing.next() else {
        return Ok(());
    };
    Err(Error::Verify {
        memory: Memory::Flash,
        addr: addr + offset as u32,
        expected: expected_byte,
        read: read_byte,
        mismatches: 1 + differing.count(),
    })
}

/// Keeps track of what was written, to say so when a step fails part-way.
struct Interruption {
    board: Board,
    application_end: u32,
    blocks: u32,
    last_end: u32,
}

impl Interruption {
    fn new(board: Board, application_end: u32) -> Self {
        Interruption {
            board,
            application_end,
            blocks: 0,
            last_end: 0,
        }
    }

    fn wrote(&mut self, addr: u32, len: u32) {
        self.blocks += 1;
        self.last_end = addr + len;
    }

    fn error(&self, during: &str, source: Error) -> Error {
        let board = self.board;
        let written = if self.blocks == 0 {
            "nothing of the new firmware was written".to_string()
        } else {
            format!(
                "{} block(s) of the new firmware were written (up to 0x{:04X})",
                self.blocks,
                self.last_end.saturating_sub(1)
            )
        };
        let (state, hint) = match board.bootloader() {
            BootloaderKind::Caterina => (
                format!(
                    "{written}; the old program was erased, so the application section holds \
                     a partial program; the bootloader (0x{:04X} up) was not touched",
                    self.application_end
                ),
                format!(
                    "the board is not bricked: {} Then run prepare again.",
                    board.reset_instruction()
                ),
            ),
            BootloaderKind::HalfKay => (
                format!(
                    "{written}; HalfKay erased the old program with the first block, so the \
                     Teensy holds a partial program; HalfKay itself (0x{:04X} up) was not touched",
                    self.application_end
                ),
                "the Teensy is not bricked: press its button to get back into HalfKay, then run \
                 prepare again"
                    .to_string(),
            ),
        };
        Error::Interrupted {
            during: during.to_string(),
            state,
            source: Box::new(source),
            hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_the_first_difference_and_counts_all() {
        assert!(compare(0x100, &[1, 2, 3], &[1, 2, 3]).is_ok());
        let err = compare(0x100, &[1, 2, 3, 4], &[1, 9, 3, 8]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("0x00101") && text.contains("2 byte(s) differ"),
            "{text}"
        );
    }

    #[test]
    fn interruptions_say_what_was_written_and_how_to_recover() {
        let mut note = Interruption::new(Board::ProMicro, 0x7000);
        note.wrote(0, 128);
        note.wrote(128, 128);
        let err = note.error(
            "writing the ISP firmware",
            Error::Link {
                port: "/dev/ttyACM0".into(),
                reason: "device unplugged".into(),
            },
        );
        let text = err.to_string();
        assert!(
            text.starts_with("writing the ISP firmware stopped"),
            "{text}"
        );
        assert!(
            text.contains("2 block(s)") && text.contains("0x00FF"),
            "{text}"
        );
        assert!(text.contains("not touched"), "{text}");
        assert!(err.hint().unwrap().contains("twice"));
        let teensy = Interruption::new(Board::Teensy2, 0x7E00).error("x", Error::Cancelled);
        assert!(teensy.to_string().contains("nothing of the new firmware"));
        assert!(teensy.hint().unwrap().contains("button"));
    }
}
