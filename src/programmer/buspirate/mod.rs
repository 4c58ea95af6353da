//! Bus Pirate driver (`buspirate`): the Bus Pirate's binary SPI mode, as avrdude's `-c
//! buspirate` uses it (facts sheet §5), but faster and more careful.
//!
//! - **Entry** from any state (terminal, a binary mode left by a crashed run, garbage in the
//!   buffer) without the 20-byte burst that overruns a Bus Pirate still in binary mode
//!   (module `connect`); a clear error naming the port when nothing answers.
//! - **RESET** on CS (or AUX, AUX2), asserted with a 20 ms wait before Programming Enable and
//!   retried with a RESET pulse when the 0x53 echo is missing (avrdude does neither).
//! - **Flash pages** in one write-then-read each (loads and Write Page together, one round
//!   trip), where the firmware has it (5.10+); otherwise streamed bulk transfers.
//! - **Flash reads** with the AVR extended bulk read where the firmware has it, in chunks that
//!   respect its word + byte ≤ 0xFFFF check (so the AT90USB1286's upper half reads fine, and
//!   its last bytes go instruction by instruction); EEPROM and the fallback stream bulk
//!   transfers.
//! - **Waits** for the target's self-timed writes are counted from the Bus Pirate's answer and
//!   overlap with the next command's time on the UART (module `wire`).
//! - **SCK** from 31.25 kHz to 8 MHz ([`protocol::SPEEDS`]); the firmware raises CS on every
//!   speed change, so inside a session the driver re-enters programming mode itself.
//! - **Exit**: back to the terminal (`00`, `0F`, up to the prompt) on [`BusPirate::close`] or
//!   drop.

mod connect;
mod memory;
pub mod protocol;
mod wire;

use std::time::{Duration, Instant};

use protocol::{DRIVER, Speed};

use super::{Capabilities, Programmer, ProgrammerInfo};
use crate::emulate::buspirate::{BusPirateConfig, StatusHandle};
use crate::emulate::serial::{EmulatorHandle, SerialTiming, ServeOptions, spawn_in_process};
use crate::emulate::socket::SharedSocket;
use crate::error::{Error, Memory, Result};
use crate::isp::{self, Instruction};
use crate::part::{FuseKind, Part};
use crate::transport::{MemoryLink, SerialLink};

/// The Bus Pirate's default baud rate.
pub const DEFAULT_BAUD: u32 = 115_200;

/// The starting ISP clock: speed code 1 (the firmware's own default), safe for a chip at 1 MHz.
pub const DEFAULT_SCK_HZ: u32 = 125_000;

/// The wait between asserting RESET and Programming Enable (datasheet: at least 20 ms).
const RESET_SETTLE: Duration = Duration::from_millis(20);

/// The wait after switching the Bus Pirate's supplies on before the first RESET (avrdude's 50
/// ms): a target powered from it needs to come up.
const POWER_UP_SETTLE: Duration = Duration::from_millis(50);

/// Which Bus Pirate pins drive the target's RESET (avrdude's `-x reset=cs,aux,aux2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetPins {
    /// CS (the usual wiring).
    pub cs: bool,
    /// AUX.
    pub aux: bool,
    /// AUX2 (Bus Pirate v1a only; on a v3 this bit switches the pull-ups).
    pub aux2: bool,
}

impl Default for ResetPins {
    fn default() -> Self {
        ResetPins {
            cs: true,
            aux: false,
            aux2: false,
        }
    }
}

impl ResetPins {
    /// The bits in `0100wxyz` for these pins.
    fn mask(self) -> u8 {
        u8::from(self.cs) | (u8::from(self.aux) << 1) | (u8::from(self.aux2) << 2)
    }
}

/// How to drive the Bus Pirate.
#[derive(Debug, Clone, PartialEq)]
pub struct BusPirateOptions {
    /// Serial speed (the Bus Pirate's default is 115200).
    pub baud: u32,
    /// The pins wired to the target's RESET.
    pub reset: ResetPins,
    /// The ISP clock to start with; [`Programmer::set_sck`] changes it later.
    pub sck_hz: u32,
    /// Open-drain outputs with the Bus Pirate's pull-ups (to the voltage on its Vpu pin)
    /// instead of 3.3 V push-pull: for targets that need 5 V logic levels.
    pub pullups: bool,
    /// Switch the Bus Pirate's 3.3 V / 5 V supplies on (for a target powered from them).
    pub power: bool,
    /// Use write-then-read for page writes where the firmware has it (avrdude's
    /// `nopagedwrite` turns it off).
    pub write_then_read: bool,
    /// Use the AVR extended bulk flash read where the firmware has it (`nopagedread`).
    pub avr_extended: bool,
    /// Programming Enable attempts, with a RESET pulse between them.
    pub enter_tries: u32,
}

impl Default for BusPirateOptions {
    fn default() -> Self {
        BusPirateOptions {
            baud: DEFAULT_BAUD,
            reset: ResetPins::default(),
            sck_hz: DEFAULT_SCK_HZ,
            pullups: false,
            power: true,
            write_then_read: true,
            avr_extended: true,
            enter_tries: 4,
        }
    }
}

/// What the connected firmware offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FirmwareFeatures {
    /// Write-then-read (`05`, firmware 5.10 and later), and this driver uses it.
    pub write_then_read: bool,
    /// The AVR extended commands' version, when present and used.
    pub avr_extended: Option<u16>,
}

/// Binary mode versions the Bus Pirate reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Versions {
    bitbang: u8,
    spi: u8,
}

/// A Bus Pirate in binary SPI mode, over any serial link.
pub struct BusPirate<L: SerialLink> {
    /// `None` once handed back by [`BusPirate::close`] or [`BusPirate::abandon`].
    link: Option<L>,
    /// The link's name, for messages.
    port: String,
    options: BusPirateOptions,
    speed: Speed,
    features: FirmwareFeatures,
    versions: Versions,
    /// Programming mode was entered and not left.
    in_session: bool,
    /// When the supplies were switched on (for [`POWER_UP_SETTLE`]).
    powered_at: Option<Instant>,
    /// The target is programming until then.
    busy_until: Option<Instant>,
    /// The signature read in Programming Enable's bulk transfer, until anything else is sent.
    signature_at_enable: Option<[u8; 3]>,
    /// An exchange failed halfway: resynchronise before the next operation.
    desynced: bool,
    /// Back at the terminal.
    closed: bool,
}

impl<L: SerialLink> BusPirate<L> {
    /// Opens the Bus Pirate on `link`: finds it in whatever state it is, enters binary SPI mode,
    /// switches its supplies on (if asked) with RESET released, sets the clock and SPI mode 0,
    /// and probes write-then-read and the AVR extended commands.
    pub fn new(mut link: L, options: BusPirateOptions) -> Result<Self> {
        if options.reset.mask() == 0 {
            return Err(Error::invalid(
                "buspirate: choose at least one RESET pin (cs, aux or aux2)",
            ));
        }
        if options.reset.aux2 && options.pullups {
            return Err(Error::invalid(
                "buspirate: AUX2 as RESET and the pull-ups share one bit of the pin configuration; use one of them",
            ));
        }
        let speed = Speed::at_most(options.sck_hz).ok_or_else(|| too_slow(options.sck_hz))?;
        link.set_baud(options.baud)?;
        let mut bp = BusPirate {
            port: link.name().to_string(),
            link: Some(link),
            options,
            speed,
            features: FirmwareFeatures::default(),
            versions: Versions::default(),
            in_session: false,
            powered_at: None,
            busy_until: None,
            signature_at_enable: None,
            desynced: false,
            closed: false,
        };
        bp.connect()?;
        Ok(bp)
    }

    /// What the firmware offers (as used by this driver).
    pub fn features(&self) -> FirmwareFeatures {
        self.features
    }

    /// Leaves programming mode and returns the Bus Pirate to its terminal (`HiZ>`), as
    /// avrdude leaves it; then gives the link back.
    pub fn close(mut self) -> Result<L> {
        self.shut_down()?;
        self.take_link()
    }

    /// Gives the link back and leaves the Bus Pirate exactly as it is (in binary mode, the
    /// target maybe in reset), as a crashed run would.
    pub fn abandon(mut self) -> Result<L> {
        self.closed = true;
        self.take_link()
    }

    fn take_link(&mut self) -> Result<L> {
        self.link.take().ok_or_else(|| handed_back(&self.port))
    }

    /// The link, while the driver still has it.
    fn io(&mut self) -> Result<&mut L> {
        self.link.as_mut().ok_or_else(|| handed_back(&self.port))
    }

    fn shut_down(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if self.desynced {
            // Back into binary SPI mode first; programming mode is not needed to leave.
            self.in_session = false;
            self.busy_until = None;
            self.connect()?;
        }
        if self.in_session {
            self.release_reset()?;
        }
        self.exit_to_terminal()
    }

    /// `0100wxyz` with RESET asserted or released on the configured pins.
    fn peripherals(&self, reset_asserted: bool) -> u8 {
        let reset = self.options.reset.mask();
        let mut pins = if reset_asserted { 0 } else { reset };
        if self.options.pullups {
            pins |= 0x04;
        }
        protocol::peripherals(self.options.power, pins)
    }

    /// Runs `op` after resynchronising if an earlier exchange broke off; an I/O or protocol
    /// failure inside `op` marks the link for resynchronisation.
    fn guarded<T>(&mut self, op: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.closed {
            return Err(Error::invalid(
                "buspirate: the Bus Pirate was already returned to its terminal",
            ));
        }
        self.signature_at_enable = None;
        if self.desynced {
            self.resynchronise()?;
        }
        let result = op(self);
        if let Err(e) = &result
            && matches!(
                e,
                Error::Timeout { .. } | Error::Protocol { .. } | Error::Link { .. }
            )
        {
            self.desynced = true;
        }
        result
    }

    /// Gets back into binary SPI mode after a broken exchange, and back into programming mode
    /// if a session was open.
    fn resynchronise(&mut self) -> Result<()> {
        self.busy_until = None;
        self.connect()?;
        if self.in_session {
            self.program_enable()?;
        }
        Ok(())
    }

    /// Asserts RESET, waits, and sends Programming Enable until the target echoes 0x53,
    /// pulsing RESET between tries. A target the Bus Pirate has just powered comes up with
    /// RESET already low (the datasheet's power-up sequence), so the two waits overlap.
    fn program_enable(&mut self) -> Result<()> {
        self.program_enable_after(&[])
    }

    /// [`BusPirate::program_enable`] with `lead` commands (each answered 0x01) sent in the
    /// same burst as the first RESET assertion, saving their round trip.
    fn program_enable_after(&mut self, lead: &[u8]) -> Result<()> {
        self.in_session = false;
        let tries = self.options.enter_tries.max(1);
        let mut last = [0u8; 4];
        for attempt in 0..tries {
            let mut reset = Vec::new();
            if attempt == 0 {
                reset.extend_from_slice(lead);
            } else {
                reset.push(self.peripherals(false));
            }
            reset.push(self.peripherals(true));
            self.send(&reset)?;
            let mut ready = Instant::now() + RESET_SETTLE;
            if let Some(on) = self.powered_at {
                ready = ready.max(on + POWER_UP_SETTLE);
            }
            std::thread::sleep(ready.saturating_duration_since(Instant::now()));
            // Where the firmware keeps up with a 16-byte bulk transfer, the signature rides in
            // it: the job reads it next, and after a failed enable its bytes are dropped.
            let mut cmds = vec![isp::programming_enable()];
            if self.firmware_keeps_up() {
                cmds.extend((0..3).map(isp::read_signature));
            }
            let frames = protocol::bulk_frames(&cmds);
            let during = "entering programming mode (RESET low, Programming Enable)";
            let reply_len = protocol::bulk_reply_len(cmds.len());
            let reply = self.exchange(&frames, reset.len() + reply_len, 4 * cmds.len(), during)?;
            protocol::expect_acks(&reply[..reset.len()], during)?;
            let responses = protocol::decode_bulk_reply(&reply[reset.len()..], cmds.len())?;
            if isp::in_sync(responses[0]) {
                self.in_session = true;
                if let [_, a, b, c] = responses[..] {
                    self.signature_at_enable = Some([a[3], b[3], c[3]]);
                }
                return Ok(());
            }
            last = responses[0];
        }
        // Leave the target running rather than held in reset.
        let release = [self.peripherals(false)];
        let ack = self.exchange(&release, 1, 0, "releasing RESET")?;
        protocol::expect_ack(ack[0], "releasing RESET")?;
        Err(Error::NoTarget {
            detail: format!(
                "Programming Enable was not echoed after {tries} tries at {} (last answer {})",
                crate::job::sck::format_hz(self.speed.hz),
                crate::util::hex_bytes(&last)
            ),
            causes: crate::job::detect::no_target_causes(DRIVER, Some(self.speed.hz)),
        })
    }

    /// Waits for the target, then releases RESET.
    fn release_reset(&mut self) -> Result<()> {
        self.settle(1);
        let out = [self.peripherals(false)];
        let ack = self.exchange(&out, 1, 0, "releasing RESET (leaving programming mode)")?;
        protocol::expect_ack(ack[0], "releasing RESET")?;
        self.in_session = false;
        Ok(())
    }

    /// Sends one instruction and waits the target's full write time after it.
    fn write_and_wait(&mut self, cmd: Instruction, max_us: u32, during: &str) -> Result<()> {
        self.instructions(&[cmd], during)?;
        self.target_busy_for(max_us);
        self.settle(0);
        Ok(())
    }

    /// The largest flash read worth one bulk command: about a second of firmware time at the
    /// current clock (so an interrupted read ends soon), at most 4 KiB, whole 256-byte pages.
    fn bulk_read_chunk(&self) -> u32 {
        let per_byte = (self.byte_time().as_nanos() as u64)
            .max(4 * (crate::emulate::clock::spi_byte_ns(self.speed.hz) + 1_000));
        let per_second = (1_000_000_000 / per_byte.max(1)) as u32;
        (per_second / 256 * 256).clamp(256, 4096)
    }

    fn firmware_description(&self) -> String {
        let mut parts = vec![format!(
            "Bus Pirate binary mode BBIO{}, SPI{}",
            self.versions.bitbang, self.versions.spi
        )];
        parts.push(if self.features.write_then_read {
            "write-then-read".to_string()
        } else {
            "no write-then-read".to_string()
        });
        parts.push(match self.features.avr_extended {
            Some(v) => format!("AVR extended commands v{v}"),
            None => "no AVR extended commands".to_string(),
        });
        parts.join(", ")
    }
}

impl<L: SerialLink> Drop for BusPirate<L> {
    fn drop(&mut self) {
        // Best effort: a Bus Pirate left in binary mode still works for the next run.
        if self.link.is_some() {
            let _ = self.shut_down();
        }
    }
}

impl<L: SerialLink> Programmer for BusPirate<L> {
    fn info(&self) -> ProgrammerInfo {
        ProgrammerInfo {
            driver: DRIVER,
            firmware: self.firmware_description(),
            port: self.port.clone(),
            capabilities: Capabilities {
                set_sck: true,
                sck_range_hz: Some((protocol::SPEEDS[0].hz, protocol::SPEEDS[7].hz)),
                read_chunk: self.bulk_read_chunk(),
            },
        }
    }

    fn enter(&mut self, _part: &Part) -> Result<()> {
        self.guarded(|bp| {
            bp.settle(1);
            bp.program_enable()
        })
    }

    fn leave(&mut self) -> Result<()> {
        self.guarded(|bp| bp.release_reset())
    }

    fn command(&mut self, cmd: Instruction) -> Result<Instruction> {
        self.guarded(|bp| {
            let during = format!("ISP instruction {}", crate::util::hex_bytes(&cmd));
            Ok(bp.instructions(&[cmd], &during)?[0])
        })
    }

    fn chip_erase(&mut self, part: &Part) -> Result<()> {
        self.guarded(|bp| {
            bp.write_and_wait(isp::chip_erase(), part.timing.chip_erase_us, "chip erase")
        })
    }

    fn write_page(&mut self, part: &Part, mem: Memory, addr: u32, data: &[u8]) -> Result<()> {
        super::check_page(part, mem, addr, data)?;
        self.guarded(|bp| bp.write_page_now(part, mem, addr, data))
    }

    fn read(&mut self, part: &Part, mem: Memory, addr: u32, buf: &mut [u8]) -> Result<()> {
        super::check_range(part, mem, addr, buf.len())?;
        self.guarded(|bp| bp.read_now(mem, addr, buf))
    }

    fn read_signature(&mut self) -> Result<[u8; 3]> {
        if let Some(sig) = self.signature_at_enable.take() {
            return Ok(sig);
        }
        self.guarded(|bp| {
            let cmds = [0, 1, 2].map(isp::read_signature);
            let r = bp.instructions(&cmds, "reading the signature")?;
            Ok([r[0][3], r[1][3], r[2][3]])
        })
    }

    fn read_fuses(&mut self, kinds: &[FuseKind]) -> Result<Vec<u8>> {
        self.guarded(|bp| {
            let cmds: Vec<Instruction> = kinds.iter().map(|&k| isp::read_fuse(k)).collect();
            let replies = bp.instructions(&cmds, "reading the fuses")?;
            Ok(replies.iter().map(|r| r[3]).collect())
        })
    }

    fn write_fuse(&mut self, part: &Part, kind: FuseKind, value: u8) -> Result<()> {
        self.guarded(|bp| {
            let during = format!("writing {kind} = 0x{value:02X}");
            bp.write_and_wait(
                isp::write_fuse(kind, value),
                part.timing.fuse_write_us,
                &during,
            )
        })
    }

    fn set_sck(&mut self, hz: u32) -> Result<u32> {
        let speed = Speed::at_most(hz).ok_or_else(|| too_slow(hz))?;
        if speed == self.speed {
            return Ok(speed.hz);
        }
        self.guarded(|bp| {
            bp.settle(1);
            // spiSetup() drives CS high: with RESET on CS the target leaves programming mode,
            // so the speed command leads the burst that enters it again.
            if bp.in_session && bp.options.reset.cs {
                let before = bp.speed;
                bp.speed = speed;
                if let Err(e) = bp.program_enable_after(&[speed.command()]) {
                    // Resynchronising configures the clock the driver still records.
                    bp.speed = before;
                    return Err(e);
                }
                return Ok(speed.hz);
            }
            let during = format!(
                "setting the SPI speed to {}",
                crate::job::sck::format_hz(speed.hz)
            );
            let ack = bp.exchange(&[speed.command()], 1, 0, &during)?;
            protocol::expect_ack(ack[0], &during)?;
            bp.speed = speed;
            Ok(speed.hz)
        })
    }

    fn sck_hz(&self) -> Option<u32> {
        Some(self.speed.hz)
    }
}

/// The error for using the port after [`BusPirate::close`] or [`BusPirate::abandon`].
fn handed_back(port: &str) -> Error {
    Error::Link {
        port: port.to_string(),
        reason: "the driver already handed the port back".into(),
    }
}

/// The error for a clock below the slowest speed code.
fn too_slow(hz: u32) -> Error {
    Error::invalid(format!(
        "buspirate: the slowest ISP clock of a Bus Pirate is 31.25 kHz (speed code 0); {} was asked for",
        crate::job::sck::format_hz(hz)
    ))
}

/// Runs our Bus Pirate driver against an emulated Bus Pirate v3 (default firmware and wiring,
/// RESET on CS) in-process, on `socket`. `_part` is not needed: a Bus Pirate knows nothing of
/// its target; it is taken for a signature shared with the other drivers. The emulator's UART
/// runs at `options.baud` (a Bus Pirate set to another speed in its terminal).
pub fn emulated(
    _part: &Part,
    socket: SharedSocket,
    options: BusPirateOptions,
) -> Result<(BusPirate<MemoryLink>, EmulatorHandle)> {
    let config = BusPirateConfig {
        link: SerialTiming::Uart {
            baud: options.baud,
            turnaround_ns: crate::emulate::clock::duration_ns(
                crate::emulate::buspirate::timing::FTDI_LATENCY,
            ),
        },
        ..BusPirateConfig::default()
    };
    let (driver, handle, _) = emulated_with(socket, config, ServeOptions::default(), options)?;
    Ok((driver, handle))
}

/// Like [`emulated`], with the emulator's firmware, wiring and faults chosen; also returns the
/// emulated Bus Pirate's status.
pub fn emulated_with(
    socket: SharedSocket,
    config: BusPirateConfig,
    serve: ServeOptions,
    options: BusPirateOptions,
) -> Result<(BusPirate<MemoryLink>, EmulatorHandle, StatusHandle)> {
    let firmware = crate::emulate::buspirate::BusPirate::new(config);
    let status = firmware.status_handle();
    let (link, handle) = spawn_in_process(Box::new(firmware), socket, options.baud, serve);
    let driver = BusPirate::new(link, options)?;
    Ok((driver, handle, status))
}
