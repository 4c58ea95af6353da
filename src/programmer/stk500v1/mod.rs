//! STK500v1 driver as ArduinoISP speaks it (`avrisp`, `arduino_as_isp`, `stk500v1`, `arduino`).
//!
//! ArduinoISP (facts sheet §2.8) is a sketch on a Pro Micro, a Teensy 2.0 or an Uno that
//! answers a subset of STK500v1 over a serial port (19200 baud by default) and drives the
//! target over SPI at a fixed ~125 kHz. Commands are small frames ending in `0x20`; every good
//! reply is `14 … 10`. There is no checksum, so the driver guards the stream instead: every
//! read has a deadline worked out from the bytes on the wire and the firmware's own delays, and
//! a NOSYNC, a garbled reply or silence leads to a resync (`30 20` until `14 10`) and a retry,
//! as avrdude does for NOSYNC.
//!
//! Where this driver does better than avrdude (fewer round trips, same bytes to the target):
//!
//! - **Pipelining**: frames whose replies are fixed-size go out together (LOAD_ADDRESS with its
//!   PROG_PAGE / READ_PAGE, SET_DEVICE + SET_DEVICE_EXT + ENTER_PROGMODE, an EEPROM page's
//!   UNIVERSALs), so each operation costs one round trip.
//! - **Tracked address**: ArduinoISP advances its word address `here` through each flash page
//!   it writes or reads, so consecutive pages need no LOAD_ADDRESS at all.
//! - **Big reads**: READ_PAGE streams its reply without buffering it, so reads come in
//!   [`READ_BLOCK`]-byte blocks instead of one page per round trip.
//! - **EEPROM**: by default pages are written with the part's own page-load/page-write ISP
//!   instructions through UNIVERSAL and polled, instead of ArduinoISP's PROG_PAGE 'E' which
//!   waits 45 ms per byte (and takes word addresses: the driver halves the byte address when
//!   that path is chosen, [`EepromWrites::ProgPage`]).
//! - **Signature**: READ_SIGN (`75`) reads all three bytes in one round trip.
//!
//! Limits of the firmware, reported clearly: the ISP clock cannot be changed (SET_PARAMETER
//! desynchronises ArduinoISP, so it is never sent), and ENTER_PROGMODE always succeeds because
//! the sketch never checks the Programming Enable echo: a missing target only shows in the
//! signature, which the job layer checks.

pub mod wire;

use std::time::{Duration, Instant};

use super::{Capabilities, Programmer, ProgrammerInfo, check_page, check_range, wait_ready};
use crate::emulate::arduinoisp::{ArduinoIsp, HostBoard};
use crate::emulate::serial::{EmulatorHandle, ServeOptions, spawn_in_process};
use crate::emulate::socket::SharedSocket;
use crate::error::{Error, Memory, Result};
use crate::isp::{self, Instruction};
use crate::part::{FuseKind, Part};
use crate::transport::{MemoryLink, SerialLink};
use crate::util::hex_bytes;
use wire::{Frame, Reply, Status, decode_reply, resp};

/// The driver id, as the catalog and avrdude's guide name it.
pub const DRIVER_ID: &str = "avrisp";

/// ArduinoISP's baud rate (`#define BAUDRATE 19200`); native-USB boards ignore it.
pub const DEFAULT_BAUD: u32 = 19_200;

/// ArduinoISP's SPI clock on an AVR host: it asks for 1 MHz / 6, and the SPI divider closest
/// below that is F_CPU/128 = 125 kHz on a 16 MHz board (F_CPU/64 on an 8 MHz one).
pub const ARDUINOISP_SCK_HZ: u32 = 125_000;

/// Bytes per READ_PAGE. The sketch streams reads, so the block is not bound by its 256-byte
/// buffer; 1 KB keeps one read under ~0.6 s even at 19200 baud (progress and cancel stay
/// responsive, deadlines short) while costing one round trip per 1 KB instead of per page.
pub const READ_BLOCK: u32 = 1024;

/// The filler sent to complete a half-received frame when resynchronising (see
/// [`Stk500v1::resync`]).
const FLUSH_BYTE: u8 = 0xFF;
/// Quiet time that ends a drain: stale bytes from a UART bridge arrive within a few ms.
const DRAIN_QUIET: Duration = Duration::from_millis(30);
/// How long one GET_SYNC may take to be answered.
const SYNC_REPLY_TIMEOUT: Duration = Duration::from_millis(250);
/// GET_SYNC attempts when connecting (avrdude tries 10 times with 5 s each; ours are short,
/// and a board still booting is covered by [`Stk500v1Options::reset_wait`]).
const CONNECT_SYNC_ATTEMPTS: u32 = 5;
/// GET_SYNC attempts when resynchronising after trouble.
const RESYNC_ATTEMPTS: u32 = 3;
/// How long DTR stays de-asserted before the reset edge.
const DTR_LOW_TIME: Duration = Duration::from_millis(100);

/// How EEPROM pages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EepromWrites {
    /// The part's own EEPROM instructions (page load + page write, or byte writes on parts
    /// without page ops) through UNIVERSAL, polled or timed like any ISP programmer. Fast: one
    /// round trip plus the chip's write time per page, and immune to the address quirk.
    #[default]
    Universal,
    /// ArduinoISP's PROG_PAGE 'E': the sketch writes byte by byte with a fixed 45 ms pause
    /// each, and takes the address as a word address (it writes at `here × 2`), so the driver
    /// sends byte address ÷ 2.
    ProgPage,
}

/// Driver settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Stk500v1Options {
    /// Serial baud rate. ArduinoISP uses 19200; a native-USB board (Pro Micro, Teensy) ignores
    /// it.
    pub baud: u32,
    /// Pulse DTR when connecting, to reset an Uno-style board (its USB-serial bridge resets the
    /// sketch's MCU), then wait [`Stk500v1Options::reset_wait`]. avrdude's `-c arduino` does
    /// this; ArduinoISP users usually prevent it with a capacitor.
    pub dtr_reset: bool,
    /// After a DTR reset: the bootloader's timeout (Optiboot waits 1 s) before the sketch
    /// starts and takes serial bytes.
    pub reset_wait: Duration,
    /// Slack on top of each reply's expected time (wire time plus the firmware's delays), for
    /// USB and bridge latency. With the resync attempts that follow a silence, the longest
    /// operation (a 1 KB read at 19200 baud) gives up within about 2.5 s by default.
    pub timeout: Duration,
    /// Resync-and-retry rounds after a NOSYNC, a garbled reply or silence.
    pub retries: u32,
    /// How EEPROM is written.
    pub eeprom_writes: EepromWrites,
}

impl Default for Stk500v1Options {
    fn default() -> Self {
        Stk500v1Options {
            baud: DEFAULT_BAUD,
            dtr_reset: false,
            reset_wait: Duration::from_millis(1_100),
            timeout: Duration::from_millis(750),
            retries: 3,
            eeprom_writes: EepromWrites::default(),
        }
    }
}

impl Stk500v1Options {
    /// The options an avrdude programmer id implies: `arduino` resets the board with DTR, the
    /// others (`avrisp`, `stk500v1`, `arduino_as_isp`) do not. `None` for other ids.
    pub fn for_alias(alias: &str) -> Option<Self> {
        let alias = alias.to_ascii_lowercase();
        match alias.as_str() {
            "avrisp" | "stk500v1" | "arduino_as_isp" => Some(Self::default()),
            "arduino" => Some(Stk500v1Options {
                dtr_reset: true,
                ..Self::default()
            }),
            _ => None,
        }
    }
}

/// What the programmer said about itself when connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareId {
    /// The GET_SIGN_ON answer ("AVR ISP" on ArduinoISP, "AVR STK" on an STK500).
    pub sign_on: String,
    /// Hardware version.
    pub hw: u8,
    /// Software major version.
    pub sw_major: u8,
    /// Software minor version.
    pub sw_minor: u8,
}

impl FirmwareId {
    /// Whether this is ArduinoISP (its sign-on).
    pub fn is_arduinoisp(&self) -> bool {
        self.sign_on.as_bytes() == wire::ARDUINOISP_SIGN_ON
    }

    /// Whether SET_DEVICE_EXT carries the reset disposition (firmware newer than 1.10, as
    /// avrdude decides; ArduinoISP 1.18 reads exactly those 5 bytes).
    pub fn takes_reset_disposition(&self) -> bool {
        (self.sw_major, self.sw_minor) > (1, 10)
    }

    /// "ArduinoISP (AVR ISP), HW 2, SW 1.18".
    pub fn describe(&self) -> String {
        let kind = if self.is_arduinoisp() {
            "ArduinoISP"
        } else if self.sign_on.as_bytes() == wire::STK500_SIGN_ON {
            "STK500"
        } else {
            "STK500v1 programmer"
        };
        format!(
            "{kind} ({}), HW {}, SW {}.{:02}",
            self.sign_on, self.hw, self.sw_major, self.sw_minor
        )
    }
}

/// Why one exchange failed.
#[derive(Debug)]
enum Trouble {
    /// Out of step (NOSYNC, a garbled reply, silence): resync, then try again.
    Resync(Error),
    /// The programmer does not know the command (a lone `12`).
    Unknown(Error),
    /// Nothing a retry fixes (the link is gone, the programmer reports failure).
    Fatal(Error),
}

impl Trouble {
    fn into_error(self) -> Error {
        match self {
            Trouble::Resync(e) | Trouble::Unknown(e) | Trouble::Fatal(e) => e,
        }
    }

    /// Sorts an error from the link: a dead link is fatal, a timeout means resync.
    fn from_link(error: Error) -> Self {
        match error {
            Error::Timeout { .. } => Trouble::Resync(error),
            other => Trouble::Fatal(other),
        }
    }
}

/// An STK500v1 programmer (ArduinoISP) on a serial link.
pub struct Stk500v1<L: SerialLink> {
    link: L,
    options: Stk500v1Options,
    firmware: FirmwareId,
    /// ArduinoISP's word address register (`here`), when we know what it holds.
    here: Option<u16>,
    /// The stream may be out of step (an error left bytes in flight): resync before the next
    /// command.
    suspect: bool,
    /// Programming mode was entered and not left.
    in_progmode: bool,
    /// The signature read in ENTER_PROGMODE's batch, until anything else is sent.
    signature_at_enter: Option<[u8; 3]>,
    /// Bytes in the last batch sent: what a resync may have to flush.
    last_batch_len: usize,
}

impl<L: SerialLink> Stk500v1<L> {
    /// Connects: optionally resets the board with DTR, drains stale input, synchronises
    /// (`30 20` → `14 10`) and reads the sign-on and versions. Fails with [`Error::Timeout`]
    /// when nothing answers and [`Error::Protocol`] when something else does.
    pub fn new(link: L, options: Stk500v1Options) -> Result<Self> {
        let mut driver = Stk500v1 {
            link,
            options,
            firmware: FirmwareId {
                sign_on: String::new(),
                hw: 0,
                sw_major: 0,
                sw_minor: 0,
            },
            here: None,
            suspect: false,
            in_progmode: false,
            signature_at_enter: None,
            last_batch_len: 0,
        };
        driver.link.set_baud(driver.options.baud)?;
        if driver.options.dtr_reset {
            driver.reset_board()?;
        }
        driver.connect()?;
        Ok(driver)
    }

    /// What the programmer said about itself.
    pub fn firmware(&self) -> &FirmwareId {
        &self.firmware
    }

    /// The options in use.
    pub fn options(&self) -> &Stk500v1Options {
        &self.options
    }

    /// The link (for tests).
    pub fn link(&self) -> &L {
        &self.link
    }

    /// Resets an Uno-style board: DTR (and RTS) de-asserted, then asserted (the falling edge
    /// on the bridge's DTR pin resets the MCU through a capacitor), then waits for the
    /// bootloader to hand over to the sketch.
    fn reset_board(&mut self) -> Result<()> {
        self.link.set_dtr(false)?;
        self.link.set_rts(false)?;
        std::thread::sleep(DTR_LOW_TIME);
        self.link.set_dtr(true)?;
        self.link.set_rts(true)?;
        std::thread::sleep(self.options.reset_wait);
        Ok(())
    }

    /// Connects in one round trip where the sketch is in step: stale bytes drained, then
    /// GET_SYNC with the identify requests right behind it (as avrdude, the first GET_SYNC
    /// also flushes). When its answer ends in `14 10`, the sketch took both bytes as GET_SYNC
    /// and was idle (stale output was drained before), and the identify replies follow;
    /// otherwise (a sketch left inside a frame takes the bytes as data) the rest is drained,
    /// GET_SYNC repeated until it answers `14 10`, and the identify requests sent again.
    fn connect(&mut self) -> Result<()> {
        self.link.drain(DRAIN_QUIET)?;
        let frames = identify_frames();
        let mut bytes = wire::get_sync().bytes;
        bytes.extend(frames.iter().flat_map(|f| f.bytes.iter().copied()));
        self.link.write_all(&bytes)?;
        if self.drain_until_in_sync(DRAIN_QUIET)? {
            let deadline = Instant::now() + self.reply_budget(&frames);
            let replies: std::result::Result<Vec<Vec<u8>>, Trouble> = frames
                .iter()
                .map(|f| self.read_reply(f, deadline, "connecting: identifying the programmer"))
                .collect();
            if let Ok(replies) = replies {
                self.take_identity(&replies);
                return Ok(());
            }
        }
        self.link.drain(DRAIN_QUIET)?;
        self.sync_attempts(CONNECT_SYNC_ATTEMPTS, "connecting")?;
        self.identify()
    }

    /// Reads until the bytes so far end with `14 10` (true) or the link has been quiet for
    /// `quiet` (false).
    fn drain_until_in_sync(&mut self, quiet: Duration) -> Result<bool> {
        let mut tail = [0u8; 2];
        let mut byte = [0u8; 1];
        while self.link.read_some(&mut byte, quiet)? > 0 {
            tail = [tail[1], byte[0]];
            if tail == [resp::INSYNC, resp::OK] {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Resynchronises after trouble. The firmware may still be inside a frame, waiting for at
    /// most as many bytes as the failed batch held (`flush_len`): a run of 0xFF completes
    /// whatever it is reading, and the 0xFF it then takes as the frame's end makes it answer
    /// NOSYNC instead of acting, so a PROG_PAGE that lost a data byte is never committed.
    /// (A frame that lost a byte also has its own EOP taken as data: a UNIVERSAL then runs
    /// with 0x20 as its last byte, because the sketch runs it before checking the frame's end.
    /// No host can prevent that; the retry rewrites the intended value, and the job verifies
    /// fuses and lock after writing them.) The leftover 0xFF pairs are unknown commands
    /// answered with NOSYNC and drained away; then GET_SYNC is repeated until it is answered
    /// with exactly `14 10`.
    fn resync(&mut self, flush_len: usize) -> Result<()> {
        self.here = None;
        self.link.drain(DRAIN_QUIET)?;
        self.link.write_all(&vec![FLUSH_BYTE; flush_len.max(2)])?;
        self.link.drain(DRAIN_QUIET)?;
        self.sync_attempts(RESYNC_ATTEMPTS, "resynchronising")?;
        self.suspect = false;
        Ok(())
    }

    fn sync_attempts(&mut self, attempts: u32, doing: &str) -> Result<()> {
        let mut last = None;
        for attempt in 1..=attempts {
            match self.sync_once(doing, attempt, attempts) {
                Ok(()) => return Ok(()),
                Err(e @ (Error::Timeout { .. } | Error::Protocol { .. })) => {
                    last = Some(e);
                    self.link.drain(DRAIN_QUIET)?;
                }
                Err(other) => return Err(other),
            }
        }
        Err(last.unwrap_or_else(|| Error::protocol(DRIVER_ID, "no GET_SYNC attempt was made")))
    }

    /// One GET_SYNC. After a good answer a short drain eats the answers to earlier syncs
    /// that a slow board may still be sending, so the next reply is ours.
    fn sync_once(&mut self, doing: &str, attempt: u32, attempts: u32) -> Result<()> {
        self.link.write_all(&wire::get_sync().bytes)?;
        let mut reply = [0u8; 2];
        let during = format!(
            "{doing}: GET_SYNC (30 20) attempt {attempt} of {attempts}; is it ArduinoISP at {} baud?",
            self.options.baud
        );
        self.link
            .read_exact(&mut reply, SYNC_REPLY_TIMEOUT, &during)?;
        if reply != [resp::INSYNC, resp::OK] {
            return Err(Error::protocol(
                DRIVER_ID,
                format!(
                    "{doing}: GET_SYNC (30 20) was answered {} instead of 14 10; is it ArduinoISP at {} baud?",
                    hex_bytes(&reply),
                    self.options.baud
                ),
            ));
        }
        self.link.drain(DRAIN_QUIET)
    }

    /// Reads the sign-on and the hardware and software versions, in one round trip.
    fn identify(&mut self) -> Result<()> {
        let replies = self.transact(&|_| identify_frames())?;
        self.take_identity(&replies);
        Ok(())
    }

    /// Keeps what the replies to [`identify_frames`] say.
    fn take_identity(&mut self, replies: &[Vec<u8>]) {
        let sign_on = replies.first().cloned().unwrap_or_default();
        self.firmware.sign_on = String::from_utf8_lossy(&sign_on).into_owned();
        self.firmware.hw = payload_byte(replies, 1);
        self.firmware.sw_major = payload_byte(replies, 2);
        self.firmware.sw_minor = payload_byte(replies, 3);
    }

    /// Sends the frames `build` makes (rebuilt for each attempt, so that an elided
    /// LOAD_ADDRESS comes back after a resync) and returns each reply's payload. Retries after
    /// a resync on NOSYNC, garbage or silence, up to [`Stk500v1Options::retries`] times.
    fn transact(&mut self, build: &dyn Fn(&Self) -> Vec<Frame>) -> Result<Vec<Vec<u8>>> {
        self.try_transact(build).map_err(Trouble::into_error)
    }

    fn try_transact(
        &mut self,
        build: &dyn Fn(&Self) -> Vec<Frame>,
    ) -> std::result::Result<Vec<Vec<u8>>, Trouble> {
        self.signature_at_enter = None;
        let attempts = self.options.retries.saturating_add(1);
        let mut attempt = 1;
        if self.suspect {
            let what = describe(&build(self));
            self.resync(self.last_batch_len).map_err(|e| {
                Trouble::Fatal(in_context(
                    e,
                    &format!("getting back in step before {what}"),
                ))
            })?;
        }
        loop {
            let frames = build(self);
            let batch_len = frames.iter().map(|f| f.bytes.len()).sum();
            self.last_batch_len = batch_len;
            match self.exchange(&frames, attempt, attempts) {
                Ok(payloads) => return Ok(payloads),
                Err(Trouble::Resync(error)) if attempt < attempts => {
                    if let Err(sync_error) = self.resync(batch_len) {
                        self.suspect = true;
                        return Err(Trouble::Fatal(after_failed_resync(error, sync_error)));
                    }
                    attempt += 1;
                }
                Err(trouble) => {
                    self.here = None;
                    self.suspect = true;
                    return Err(match trouble {
                        Trouble::Fatal(e @ Error::Link { .. }) => {
                            Trouble::Fatal(in_context(e, &format!("during {}", describe(&frames))))
                        }
                        other => other,
                    });
                }
            }
        }
    }

    /// Writes all frames at once, then reads one reply per frame.
    fn exchange(
        &mut self,
        frames: &[Frame],
        attempt: u32,
        attempts: u32,
    ) -> std::result::Result<Vec<Vec<u8>>, Trouble> {
        let bytes: Vec<u8> = frames
            .iter()
            .flat_map(|f| f.bytes.iter().copied())
            .collect();
        let deadline = Instant::now() + self.reply_budget(frames);
        self.link.write_all(&bytes).map_err(Trouble::from_link)?;
        let batch = (frames.len() > 1).then(|| describe(frames));
        frames
            .iter()
            .map(|frame| {
                let during = match &batch {
                    Some(batch) => format!(
                        "waiting for the reply to {} (sent as {batch}; attempt {attempt} of {attempts})",
                        frame.label
                    ),
                    None => format!(
                        "waiting for the reply to {} (attempt {attempt} of {attempts})",
                        frame.label
                    ),
                };
                self.read_reply(frame, deadline, &during)
            })
            .collect()
    }

    /// How long the replies to `frames` may take, with 50 % margin plus the configured slack:
    /// the frames' bytes on the wire, then for each frame the firmware's work or its reply's
    /// bytes, whichever is longer (the sketch streams READ_PAGE data while it reads the
    /// target, and receives a PROG_PAGE whole before it writes).
    fn reply_budget(&self, frames: &[Frame]) -> Duration {
        let wire = |bytes: usize| {
            let ns =
                (bytes as u64).saturating_mul(10_000_000_000) / u64::from(self.options.baud.max(1));
            Duration::from_nanos(ns)
        };
        let sent = wire(frames.iter().map(|f| f.bytes.len()).sum());
        let answered: Duration = frames.iter().map(|f| f.work.max(wire(f.reply_len()))).sum();
        let expected = sent + answered;
        expected + expected / 2 + self.options.timeout
    }

    /// Reads and checks the reply to one frame.
    fn read_reply(
        &mut self,
        frame: &Frame,
        deadline: Instant,
        during: &str,
    ) -> std::result::Result<Vec<u8>, Trouble> {
        let mut reply = vec![0u8; frame.reply_len()];
        let left = deadline.saturating_duration_since(Instant::now());
        self.link
            .read_exact(&mut reply[..1], left, during)
            .map_err(Trouble::from_link)?;
        if let Reply::Incomplete { .. } = decode_reply(frame.reply_payload, &reply[..1]) {
            let left = deadline.saturating_duration_since(Instant::now());
            self.link
                .read_exact(&mut reply[1..], left, during)
                .map_err(Trouble::from_link)?;
        }
        let label = &frame.label;
        match decode_reply(frame.reply_payload, &reply) {
            Reply::Complete {
                payload,
                status: Status::Ok,
                ..
            } => Ok(payload.to_vec()),
            Reply::Complete {
                status: Status::Failed,
                ..
            } => Err(Trouble::Fatal(Error::protocol(
                DRIVER_ID,
                format!("the programmer reports that {label} failed (reply ends in 11 FAILED)"),
            ))),
            Reply::Complete {
                status: Status::NoDevice,
                ..
            } => Err(Trouble::Fatal(Error::NoTarget {
                detail: format!("the programmer answered {label} with 13 NODEVICE"),
                causes: crate::job::detect::no_target_causes(DRIVER_ID, self.sck_hz()),
            })),
            Reply::NoSync => Err(Trouble::Resync(Error::protocol(
                DRIVER_ID,
                format!("the programmer answered {label} with 15 NOSYNC (out of step)"),
            ))),
            Reply::Unknown => Err(Trouble::Unknown(Error::protocol(
                DRIVER_ID,
                format!("the programmer does not know {label} (it answered 12 UNKNOWN)"),
            ))),
            Reply::LoneFailed => Err(Trouble::Resync(Error::protocol(
                DRIVER_ID,
                format!("the programmer answered {label} with a lone 11 FAILED (out of step)"),
            ))),
            Reply::Garbage { at, byte } => Err(Trouble::Resync(Error::protocol(
                DRIVER_ID,
                format!(
                    "garbled reply to {label}: byte {at} is 0x{byte:02X} (reply {})",
                    hex_bytes(&reply[..=at.min(reply.len().saturating_sub(1))])
                ),
            ))),
            Reply::Incomplete { needed } => Err(Trouble::Resync(Error::protocol(
                DRIVER_ID,
                format!("the reply to {label} was cut short ({needed} byte(s) missing)"),
            ))),
        }
    }

    /// A LOAD_ADDRESS for `word` unless ArduinoISP's `here` already holds it.
    fn address_frame(&self, word: u16) -> Option<Frame> {
        (self.here != Some(word)).then(|| wire::load_address(word))
    }

    /// LOAD_ADDRESS (if needed) + PROG_PAGE, pipelined. Flash takes the word address; EEPROM
    /// takes byte address ÷ 2 because ArduinoISP writes EEPROM at `here × 2`.
    fn prog_page(&mut self, memory: Memory, addr: u32, data: &[u8]) -> Result<()> {
        let word = word_address(addr)?;
        self.transact(&|driver: &Self| {
            let mut frames: Vec<Frame> = driver.address_frame(word).into_iter().collect();
            frames.push(wire::prog_page(memory, addr, data));
            frames
        })?;
        self.here = Some(match memory {
            // write_flash_pages advances `here` one word per two bytes.
            Memory::Flash => word.wrapping_add(data.len().div_ceil(2) as u16),
            Memory::Eeprom => word,
        });
        Ok(())
    }

    /// Writes one EEPROM page with the part's own instructions through UNIVERSAL.
    fn write_eeprom_universal(&mut self, part: &Part, addr: u32, data: &[u8]) -> Result<()> {
        if part.eeprom_page_ops {
            let mut frames: Vec<Frame> = data
                .iter()
                .enumerate()
                .map(|(i, &b)| wire::universal(isp::load_eeprom_page_byte(addr + i as u32, b)))
                .collect();
            frames.push(wire::universal(isp::write_eeprom_page(addr)));
            self.transact(&|_| frames.clone())?;
            return wait_ready(self, part, part.timing.eeprom_write_us);
        }
        // No page instructions (ATmega32A): byte writes, each waited for.
        for (i, &b) in data.iter().enumerate() {
            let cmd = isp::write_eeprom(addr + i as u32, b);
            self.transact(&|_| vec![wire::universal(cmd)])?;
            wait_ready(self, part, part.timing.eeprom_write_us)?;
        }
        Ok(())
    }

    /// One READ_PAGE block (at most [`READ_BLOCK`] bytes), with LOAD_ADDRESS if needed.
    fn read_block(&mut self, memory: Memory, addr: u32, out: &mut [u8]) -> Result<()> {
        // Both memories start at an even byte: flash is read in words, and ArduinoISP reads
        // EEPROM from `here × 2`.
        let start = addr & !1;
        let end = addr + out.len() as u32;
        let len = match memory {
            Memory::Flash => end.next_multiple_of(2) - start,
            Memory::Eeprom => end - start,
        };
        let len16 = u16::try_from(len)
            .map_err(|_| Error::invalid(format!("internal: a {len}-byte READ_PAGE is too long")))?;
        let word = word_address(start)?;
        let payloads = self.transact(&|driver: &Self| {
            let mut frames: Vec<Frame> = driver.address_frame(word).into_iter().collect();
            frames.push(wire::read_page(memory, start, len16));
            frames
        })?;
        let data = payloads.last().map(Vec::as_slice).unwrap_or_default();
        let skip = (addr - start) as usize;
        let got = data.get(skip..skip + out.len()).ok_or_else(|| {
            Error::protocol(
                DRIVER_ID,
                format!(
                    "READ_PAGE {memory} at 0x{start:05X} returned {} bytes, expected {len}",
                    data.len()
                ),
            )
        })?;
        out.copy_from_slice(got);
        self.here = Some(match memory {
            Memory::Flash => word.wrapping_add((len / 2) as u16),
            Memory::Eeprom => word,
        });
        Ok(())
    }

    /// The three signature bytes through UNIVERSAL, pipelined (for firmware without READ_SIGN).
    fn read_signature_universal(&mut self) -> Result<[u8; 3]> {
        let payloads = self.transact(&|_| signature_frames())?;
        Ok([0, 1, 2].map(|i| payload_byte(&payloads, i)))
    }
}

/// Sign-on, hardware version, software major and minor.
fn identify_frames() -> Vec<Frame> {
    vec![
        wire::get_sign_on(),
        wire::get_parameter(wire::parm::HW_VER),
        wire::get_parameter(wire::parm::SW_MAJOR),
        wire::get_parameter(wire::parm::SW_MINOR),
    ]
}

/// The word address of an even byte address, as ArduinoISP's 16-bit `here` holds it.
fn word_address(byte_addr: u32) -> Result<u16> {
    u16::try_from(byte_addr / 2).map_err(|_| {
        Error::invalid(format!(
            "address 0x{byte_addr:05X} is beyond ArduinoISP's 16-bit word address"
        ))
    })
}

/// The first byte of payload `i` (0 if there is none; replies are length-checked).
fn payload_byte(payloads: &[Vec<u8>], i: usize) -> u8 {
    payloads
        .get(i)
        .and_then(|p| p.first())
        .copied()
        .unwrap_or(0)
}

/// Three UNIVERSAL frames reading the signature bytes (every STK500v1 firmware knows them).
fn signature_frames() -> Vec<Frame> {
    (0..3u8)
        .map(|i| wire::universal(isp::read_signature(i)))
        .collect()
}

/// What a batch of frames does: their labels joined with `+`.
fn describe(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| f.label.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Adds what was being done to an error's message.
fn in_context(error: Error, context: &str) -> Error {
    match error {
        Error::Timeout {
            port,
            waited,
            during,
        } => Error::Timeout {
            port,
            waited,
            during: format!("{during}; {context}"),
        },
        Error::Protocol { programmer, reason } => Error::Protocol {
            programmer,
            reason: format!("{reason}; {context}"),
        },
        Error::Link { port, reason } => Error::Link {
            port,
            reason: format!("{reason} ({context})"),
        },
        other => other,
    }
}

/// The error of a command whose resync failed too: the command's error, saying so.
fn after_failed_resync(error: Error, sync_error: Error) -> Error {
    in_context(error, &format!("resynchronising failed too: {sync_error}"))
}

impl<L: SerialLink> Programmer for Stk500v1<L> {
    fn info(&self) -> ProgrammerInfo {
        ProgrammerInfo {
            driver: DRIVER_ID,
            firmware: self.firmware.describe(),
            port: self.link.name().to_string(),
            capabilities: Capabilities {
                set_sck: false,
                sck_range_hz: self
                    .firmware
                    .is_arduinoisp()
                    .then_some((ARDUINOISP_SCK_HZ, ARDUINOISP_SCK_HZ)),
                read_chunk: READ_BLOCK,
            },
        }
    }

    /// SET_DEVICE, SET_DEVICE_EXT, ENTER_PROGMODE and the signature (three UNIVERSAL reads,
    /// which every STK500v1 firmware knows) in one round trip; the job's signature check takes
    /// it from there. ArduinoISP resets the target and sends Programming Enable without
    /// checking the echo, so this succeeds with no target too; the signature tells.
    fn enter(&mut self, part: &Part) -> Result<()> {
        let with_reset_disposition = self.firmware.takes_reset_disposition();
        let replies = self.transact(&|_| {
            let mut frames = vec![
                wire::set_device(part),
                wire::set_device_ext(part, with_reset_disposition),
                wire::enter_progmode(),
            ];
            frames.extend(signature_frames());
            frames
        })?;
        self.in_progmode = true;
        self.signature_at_enter = Some([3, 4, 5].map(|i| payload_byte(&replies, i)));
        Ok(())
    }

    fn leave(&mut self) -> Result<()> {
        self.transact(&|_| vec![wire::leave_progmode()])?;
        self.in_progmode = false;
        Ok(())
    }

    /// UNIVERSAL returns only the 4th response byte; bytes 1 and 2 are filled with command
    /// bytes 0 and 1, where the silicon echoes them, so echo checks pass (ArduinoISP does not
    /// report the real echo) and byte 0 is 0.
    fn command(&mut self, cmd: Instruction) -> Result<Instruction> {
        let reply = self.transact(&|_| vec![wire::universal(cmd)])?;
        Ok([0, cmd[0], cmd[1], payload_byte(&reply, 0)])
    }

    /// One UNIVERSAL frame per byte, all in one round trip.
    fn read_fuses(&mut self, kinds: &[FuseKind]) -> Result<Vec<u8>> {
        let payloads = self.transact(&|_| {
            kinds
                .iter()
                .map(|&k| wire::universal(isp::read_fuse(k)))
                .collect()
        })?;
        Ok((0..kinds.len())
            .map(|i| payload_byte(&payloads, i))
            .collect())
    }

    fn write_page(&mut self, part: &Part, mem: Memory, addr: u32, data: &[u8]) -> Result<()> {
        check_page(part, mem, addr, data)?;
        match (mem, self.options.eeprom_writes) {
            (Memory::Flash, _) | (Memory::Eeprom, EepromWrites::ProgPage) => {
                self.prog_page(mem, addr, data)
            }
            (Memory::Eeprom, EepromWrites::Universal) => {
                self.write_eeprom_universal(part, addr, data)
            }
        }
    }

    fn read(&mut self, part: &Part, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        check_range(part, mem, addr, buf.len())?;
        for (i, chunk) in buf.chunks_mut(READ_BLOCK as usize).enumerate() {
            self.read_block(mem, addr + i as u32 * READ_BLOCK, chunk)?;
        }
        Ok(())
    }

    /// READ_SIGN (one round trip); UNIVERSAL reads if the firmware does not know it.
    fn read_signature(&mut self) -> Result<[u8; 3]> {
        if let Some(sig) = self.signature_at_enter.take() {
            return Ok(sig);
        }
        match self.try_transact(&|_| vec![wire::read_sign()]) {
            Ok(payloads) => {
                let sig = payloads.into_iter().next().unwrap_or_default();
                Ok([0, 1, 2].map(|i| sig.get(i).copied().unwrap_or(0)))
            }
            Err(Trouble::Unknown(_)) => self.read_signature_universal(),
            Err(trouble) => Err(trouble.into_error()),
        }
    }

    fn set_sck(&mut self, hz: u32) -> Result<u32> {
        let _ = hz;
        Err(Error::unsupported(
            DRIVER_ID,
            "set the ISP clock: ArduinoISP's SPI clock is fixed (about 125 kHz), and the \
             SET_PARAMETER that avrdude's -B sends desynchronises it",
        ))
    }

    fn sck_hz(&self) -> Option<u32> {
        self.firmware.is_arduinoisp().then_some(ARDUINOISP_SCK_HZ)
    }
}

impl<L: SerialLink> Drop for Stk500v1<L> {
    /// Leaves programming mode if a caller forgot to, so the target is not held in RESET.
    /// Best effort: the reply is not waited for.
    fn drop(&mut self) {
        if self.in_progmode {
            let _ = self.link.write_all(&wire::leave_progmode().bytes);
        }
    }
}

/// An emulated ArduinoISP on a Pro Micro (the QMK build), wired in-process to `socket`, and
/// the driver connected to it. `part` is the target the caller will select: ArduinoISP only
/// learns it from SET_DEVICE when programming mode is entered, so opening does not need it.
pub fn emulated(
    part: &Part,
    socket: SharedSocket,
    options: Stk500v1Options,
) -> Result<(Stk500v1<MemoryLink>, EmulatorHandle)> {
    let _ = part;
    emulated_with(
        ArduinoIsp::new(HostBoard::ProMicro),
        socket,
        ServeOptions::default(),
        options,
    )
}

/// Like [`emulated`], with a chosen firmware (board, build) and emulator options (faults,
/// realtime).
pub fn emulated_with(
    firmware: ArduinoIsp,
    socket: SharedSocket,
    serve: ServeOptions,
    options: Stk500v1Options,
) -> Result<(Stk500v1<MemoryLink>, EmulatorHandle)> {
    let (link, handle) = spawn_in_process(Box::new(firmware), socket, options.baud, serve);
    let driver = Stk500v1::new(link, options)?;
    Ok((driver, handle))
}

#[cfg(test)]
mod tests;
