//! An emulated AVR target that answers the SPI serial programming instructions byte for byte like
//! the silicon (facts sheet §1, §7, §8), for every part in the part database, on a
//! [`VirtualClock`].
//!
//! # The model, and the choices made where the datasheets say little
//!
//! - **Full-duplex SPI.** While byte *k* is clocked in, the byte received before it is clocked
//!   out, so `response[1] = cmd[0]`, `response[2] = cmd[1]` and `response[3] = cmd[2]`, except
//!   that a read instruction replaces that last echo with its data (decided after byte 3, so
//!   the data is ready for byte 4). `response[0]` is the last byte of the previous instruction
//!   (0x00 after RESET).
//! - **RESET.** Serial programming works only while RESET is asserted (low). On the asserting
//!   edge the logic starts afresh: programming disabled, byte count zero, page buffers empty,
//!   fuses latched. Releasing RESET lets the application run: SPI is ignored and MISO reads 0xFF.
//!   Until Programming Enable (`AC 53 xx xx`) has executed, only the shift-register echo happens.
//! - **Synchronisation (§1.2).** The datasheet wants SCK low when RESET goes low (at power-up or
//!   on a RESET pulse). This model keeps one flag: asserting RESET (or powering up with RESET
//!   asserted) while SCK is high ([`EmulatedChip::set_sck_level`]) leaves the chip out of sync,
//!   as does [`EmulatedChip::inject_desync`]. An out-of-sync chip is one bit behind: it shifts its
//!   echo out one bit late (so 0x53 never comes back in `response[2]`) and executes nothing. The
//!   next RESET assertion with SCK low brings it back. SCK level changes while RESET is held are
//!   not counted as clock pulses; [`EmulatedChip::spi_byte`] leaves SCK low (SPI mode 0).
//! - **SCK limit.** The CPU clock comes from the latched low fuse ([`Part::target_clock`] with
//!   the board's crystal). Above [`Part::max_sck_hz`] every MISO byte is XORed with a seeded
//!   pseudo-random mask that always flips at least one bit, so the fault is always detectable.
//!   Inputs are still sampled correctly: real chips mis-sample too, but an emulator that wrote
//!   random fuses would only make tests flaky, and drivers only need to see the symptom. Each
//!   byte clocked too fast counts as one `sck_violation`. Without a clock (a crystal setting and
//!   no crystal, or a reserved CKSEL) the chip is deaf and MISO reads 0xFF.
//! - **Busy.** Writes and erases start a self-timed operation lasting [`BusyTimes`]. While it
//!   runs, only polling is legal: Poll RDY/BSY (where the part has it), and reads of the flash
//!   page / EEPROM bytes being programmed (everything, during Chip Erase), which return 0xFF.
//!   Any other instruction that would execute is ignored and counted as a `busy_violation`.
//!   Unknown instructions execute nothing, so they are never violations. Data is written to the
//!   array when the operation starts; the busy window only hides it, so a power cycle mid-write
//!   leaves the write complete.
//! - **Lock bits.** LB = 10 ignores flash, EEPROM and fuse writes (counted in
//!   `locked_writes_ignored`); LB = 00 also makes flash and EEPROM reads return a deterministic
//!   scramble of the address and the noise seed (never the contents). Lock writes only program
//!   bits, and only Chip Erase clears them. Boot lock bits (BLB0/BLB1) only restrict the
//!   application's SPM/LPM and do nothing over ISP.
//! - **Addresses** are masked to the memory's size, the page offsets to the page size.
//!   Load Extended Address is accepted on every part: all our parts' flash fits in 16 address
//!   bits, so the masking makes it harmless (and unobservable) where the datasheet omits it.

mod config;
mod fuses;
mod memory;
mod noise;
mod selfprog;
mod timing;

pub use config::{
    ChipConfig, DEFAULT_CRYSTAL_HZ, DEFAULT_NOISE_SEED, FuseValues, default_calibration,
};
pub use fuses::LockMode;
pub use selfprog::Spm;
pub use timing::BusyTimes;

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use crate::emulate::clock::{VirtualClock, duration_ns, spi_byte_ns};
use crate::error::{Error, Result};
use crate::hex::write_atomic;
use crate::isp::{self, Decoded, Instruction};
use crate::part::{FuseKind, Part, TargetClock};

use fuses::FuseBank;
use memory::Memories;
use noise::{MisoNoise, ScrambledMemory, scrambled_read};

/// What MISO reads when the chip does not drive it (application running, no clock).
const MISO_UNDRIVEN: u8 = 0xFF;

/// What a polling read returns while the location is being programmed.
const POLL_BUSY_VALUE: u8 = 0xFF;

/// Counters that let tests prove what a driver did to the chip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChipStats {
    /// 4-byte frames completed while RESET was asserted (in sync or not).
    pub isp_instructions: u64,
    /// Every byte clocked, RESET asserted or not.
    pub bytes_clocked: u64,
    /// Write Program Memory Page instructions executed.
    pub flash_pages_written: u64,
    /// EEPROM byte writes plus EEPROM page writes executed.
    pub eeprom_writes: u64,
    /// Chip Erase instructions executed.
    pub chip_erases: u64,
    /// Fuse and lock byte writes executed.
    pub fuse_writes: u64,
    /// Instructions ignored because the chip was still busy.
    pub busy_violations: u64,
    /// Bytes clocked faster than the chip's current CPU clock allows.
    pub sck_violations: u64,
    /// The fastest SCK seen while RESET was asserted, in Hz.
    pub max_sck_hz_seen: u32,
    /// Writes ignored because of the lock bits.
    pub locked_writes_ignored: u64,
    /// In-sync frames the part does not implement (they only echo).
    pub unknown_instructions: u64,
}

/// What a self-timed operation is programming, which decides the legal polling reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operation {
    FlashPage(Range<u32>),
    Eeprom(Range<u32>),
    ChipErase,
    FuseWrite,
}

/// A self-timed operation in progress.
#[derive(Debug, Clone)]
struct Busy {
    operation: Operation,
    until_ns: u64,
}

impl Busy {
    /// Whether reading this flash byte is a data-polling read of the running operation.
    fn polls_flash(&self, addr: u32) -> bool {
        match &self.operation {
            Operation::FlashPage(page) => page.contains(&addr),
            Operation::ChipErase => true,
            Operation::Eeprom(_) | Operation::FuseWrite => false,
        }
    }

    /// Whether reading this EEPROM byte is a data-polling read of the running operation.
    fn polls_eeprom(&self, addr: u32) -> bool {
        match &self.operation {
            Operation::Eeprom(bytes) => bytes.contains(&addr),
            Operation::ChipErase => true,
            Operation::FlashPage(_) | Operation::FuseWrite => false,
        }
    }
}

/// The serial programming logic: framing, the shift register, sync and enable state.
#[derive(Debug, Clone)]
struct SerialLogic {
    in_sync: bool,
    enabled: bool,
    frame: Instruction,
    received: usize,
    /// The byte to shift out next.
    shift_register: u8,
    /// The byte before it (an out-of-sync chip leaks its last bit).
    previous_in: u8,
}

impl SerialLogic {
    fn new(in_sync: bool) -> Self {
        SerialLogic {
            in_sync,
            enabled: false,
            frame: [0; 4],
            received: 0,
            shift_register: 0x00,
            previous_in: 0x00,
        }
    }

    /// The byte MISO carries during the next byte.
    fn shift_out(&self) -> u8 {
        if self.in_sync {
            self.shift_register
        } else {
            // One bit late: the last bit of the byte before leads.
            (self.previous_in << 7) | (self.shift_register >> 1)
        }
    }
}

/// An emulated AVR target chip (see the module documentation for the model).
#[derive(Debug, Clone)]
pub struct EmulatedChip {
    part: Part,
    crystal_hz: Option<u32>,
    calibration: Vec<u8>,
    busy_times: BusyTimes,
    noise_seed: u64,
    memories: Memories,
    fuses: FuseBank,
    clock: VirtualClock,
    stats: ChipStats,
    reset_asserted: bool,
    sck_high: bool,
    logic: SerialLogic,
    busy: Option<Busy>,
    extended_address: u8,
    miso_noise: MisoNoise,
}

impl EmulatedChip {
    /// A chip of `part` set up as `config` says, powered up with RESET released and SCK low.
    pub fn new(part: &Part, config: ChipConfig) -> Result<Self> {
        if config.crystal_hz == Some(0) {
            return Err(Error::invalid(format!(
                "emulated {}: a 0 Hz crystal is not a clock; use no crystal (None) instead",
                part.name
            )));
        }
        let calibration = match config.calibration {
            Some(bytes) if bytes.len() != usize::from(part.calibration_bytes) => {
                return Err(Error::invalid(format!(
                    "emulated {}: it has {} calibration byte(s), but {} were given ({})",
                    part.name,
                    part.calibration_bytes,
                    bytes.len(),
                    crate::util::hex_bytes(&bytes)
                )));
            }
            Some(bytes) => bytes,
            None => default_calibration(part.calibration_bytes),
        };
        let fuse_values = initial_fuses(part, config.fuses, config.lock)?;
        let memories = Memories::new(part, config.flash.as_deref(), config.eeprom.as_deref())?;
        Ok(Self::assemble(
            part,
            config.crystal_hz,
            calibration,
            config
                .busy_times
                .unwrap_or_else(|| BusyTimes::datasheet(part)),
            config.noise_seed,
            memories,
            FuseBank::new(part, fuse_values),
        ))
    }

    /// A chip as it leaves the factory: datasheet default fuses, unlocked, blank memories, on a
    /// board with a [`DEFAULT_CRYSTAL_HZ`] crystal.
    pub fn factory_fresh(part: &Part) -> Self {
        let defaults = FuseKind::ALL.map(|kind| part.fuse(kind).map_or(0xFF, |byte| byte.default));
        let config = ChipConfig::default();
        Self::assemble(
            part,
            config.crystal_hz,
            default_calibration(part.calibration_bytes),
            BusyTimes::datasheet(part),
            config.noise_seed,
            Memories::blank(part),
            FuseBank::new(part, defaults),
        )
    }

    fn assemble(
        part: &Part,
        crystal_hz: Option<u32>,
        calibration: Vec<u8>,
        busy_times: BusyTimes,
        noise_seed: u64,
        memories: Memories,
        fuses: FuseBank,
    ) -> Self {
        EmulatedChip {
            part: part.clone(),
            crystal_hz,
            calibration,
            busy_times,
            noise_seed,
            memories,
            fuses,
            clock: VirtualClock::new(),
            stats: ChipStats::default(),
            reset_asserted: false,
            sck_high: false,
            logic: SerialLogic::new(true),
            busy: None,
            extended_address: 0,
            miso_noise: MisoNoise::new(noise_seed),
        }
    }

    // ----- pins -------------------------------------------------------------------------

    /// Fault injection: the bits of `mask` at flash byte `addr` read 0 whatever is erased or
    /// written (a worn-out cell), so a verify of an image with any of those bits set fails there.
    pub fn stick_flash_bits_low(&mut self, addr: u32, mask: u8) {
        self.memories.stick_flash_bits_low(addr, mask);
    }

    /// Clocks one byte in on MOSI at `sck_hz` and returns the byte shifted out on MISO.
    /// Charges the virtual clock 8 SCK periods.
    pub fn spi_byte(&mut self, mosi: u8, sck_hz: u32) -> u8 {
        self.clock.advance_ns(spi_byte_ns(sck_hz));
        self.stats.bytes_clocked += 1;
        self.sck_high = false;
        if !self.reset_asserted {
            return MISO_UNDRIVEN;
        }
        self.stats.max_sck_hz_seen = self.stats.max_sck_hz_seen.max(sck_hz);
        let Some(max_sck_hz) = self.max_sck_hz() else {
            return MISO_UNDRIVEN;
        };
        let mut miso = self.logic.shift_out();
        if sck_hz > max_sck_hz {
            self.stats.sck_violations += 1;
            miso = self.miso_noise.corrupt(miso);
        }
        self.shift_in(mosi);
        miso
    }

    /// Clocks a whole 4-byte instruction and returns the 4 bytes shifted out.
    pub fn transfer(&mut self, cmd: Instruction, sck_hz: u32) -> Instruction {
        cmd.map(|byte| self.spi_byte(byte, sck_hz))
    }

    /// Drives the RESET line: `true` asserts it (low; programming mode possible), `false`
    /// releases it (the application runs).
    pub fn set_reset(&mut self, asserted: bool) {
        if asserted == self.reset_asserted {
            return;
        }
        self.reset_asserted = asserted;
        // Only a RESET edge with SCK low starts the serial logic in step with the programmer.
        let in_sync = if asserted {
            !self.sck_high
        } else {
            self.logic.in_sync
        };
        self.logic = SerialLogic::new(in_sync);
        if asserted {
            self.fuses.latch();
            self.memories.clear_buffers();
            self.extended_address = 0;
        }
    }

    /// Sets the idle level of SCK; it matters at RESET edges and power-up (§1.2).
    pub fn set_sck_level(&mut self, high: bool) {
        self.sck_high = high;
    }

    /// Knocks the serial logic out of step (a glitch on SCK): no Programming Enable echo and no
    /// execution until RESET is pulsed with SCK low.
    pub fn inject_desync(&mut self) {
        self.logic.in_sync = false;
    }

    /// Removes and restores power: memories, fuses and lock bits are kept; page buffers,
    /// programming mode and any running operation are gone; fuses are latched again. The RESET
    /// and SCK levels stay as the programmer drives them; powering up with RESET asserted and
    /// SCK high leaves the chip out of sync.
    pub fn power_cycle(&mut self) {
        self.busy = None;
        self.memories.clear_buffers();
        self.fuses.latch();
        self.extended_address = 0;
        self.logic = SerialLogic::new(!(self.reset_asserted && self.sck_high));
    }

    // ----- time -------------------------------------------------------------------------

    /// Virtual time since the chip was created.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Virtual time since the chip was created, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Lets `duration` of idle time pass (a firmware's delays, USB turnaround).
    pub fn advance(&mut self, duration: Duration) {
        self.clock.advance(duration);
    }

    /// Whether a self-timed operation is still running.
    pub fn is_busy(&self) -> bool {
        self.busy_until().is_some()
    }

    /// When the running operation ends, if one is running.
    pub fn busy_until(&self) -> Option<Duration> {
        self.busy
            .as_ref()
            .filter(|busy| self.clock.now_ns() < busy.until_ns)
            .map(|busy| Duration::from_nanos(busy.until_ns))
    }

    /// The chip's programming times.
    pub fn busy_times(&self) -> BusyTimes {
        self.busy_times
    }

    // ----- state for tests and dumps ---------------------------------------------------------

    /// The part this chip is.
    pub fn part(&self) -> &Part {
        &self.part
    }

    /// The counters so far.
    pub fn stats(&self) -> ChipStats {
        self.stats
    }

    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.stats = ChipStats::default();
    }

    /// All of flash.
    pub fn flash(&self) -> &[u8] {
        self.memories.flash()
    }

    /// All of EEPROM.
    pub fn eeprom(&self) -> &[u8] {
        self.memories.eeprom()
    }

    /// What reading this fuse (or the lock byte) returns; `None` if the part lacks it.
    pub fn fuse(&self, kind: FuseKind) -> Option<u8> {
        self.fuses.read(&self.part, kind)
    }

    /// The calibration bytes.
    pub fn calibration(&self) -> &[u8] {
        &self.calibration
    }

    /// What the lock bits currently allow.
    pub fn lock_mode(&self) -> LockMode {
        self.fuses.lock_mode(&self.part)
    }

    /// The clock the latched low fuse selects on this board.
    pub fn target_clock(&self) -> TargetClock {
        self.part
            .target_clock(self.fuses.latched(FuseKind::Low), self.crystal_hz)
    }

    /// The CPU clock in Hz, or `None` if the chip has no clock.
    pub fn cpu_hz(&self) -> Option<u32> {
        self.target_clock().cpu_hz.filter(|&hz| hz > 0)
    }

    /// The fastest SCK the chip follows right now, or `None` if it has no clock.
    pub fn max_sck_hz(&self) -> Option<u32> {
        self.cpu_hz().map(Part::max_sck_hz)
    }

    /// Whether RESET is asserted.
    pub fn reset_asserted(&self) -> bool {
        self.reset_asserted
    }

    /// Whether the serial logic is in step with the programmer.
    pub fn in_sync(&self) -> bool {
        self.logic.in_sync
    }

    /// Whether Programming Enable has executed since RESET was asserted.
    pub fn programming_enabled(&self) -> bool {
        self.reset_asserted && self.logic.enabled
    }

    /// Writes `flash.bin`, `eeprom.bin` and `fuses.json` (`{"lfuse":"0xFF",...,"lock":"0xFF"}`,
    /// efuse only where the part has one) into `dir`, creating it; each file is replaced
    /// atomically.
    pub fn dump(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::file("cannot create", dir, e))?;
        write_atomic(dir.join("flash.bin"), self.flash())?;
        write_atomic(dir.join("eeprom.bin"), self.eeprom())?;
        write_atomic(dir.join("fuses.json"), self.fuses_json().as_bytes())
    }

    /// The fuses as `{"lfuse":"0xFF","hfuse":"0xD8","efuse":"0xCB","lock":"0xFF"}`.
    pub fn fuses_json(&self) -> String {
        let fields: Vec<String> = FuseKind::ALL
            .iter()
            .filter_map(|&kind| {
                let value = self.fuse(kind)?;
                Some(format!("\"{}\":\"0x{value:02X}\"", kind.avrdude_name()))
            })
            .collect();
        format!("{{{}}}\n", fields.join(","))
    }

    // ----- the serial programming logic ------------------------------------------------------

    fn shift_in(&mut self, mosi: u8) {
        let logic = &mut self.logic;
        if let Some(slot) = logic.frame.get_mut(logic.received) {
            *slot = mosi;
        }
        logic.received += 1;
        logic.previous_in = logic.shift_register;
        logic.shift_register = mosi;
        match logic.received {
            3 => {
                if let Some(data) = self.read_for_output() {
                    self.logic.shift_register = data;
                }
            }
            4.. => {
                let frame = logic.frame;
                logic.received = 0;
                self.stats.isp_instructions += 1;
                self.execute(frame);
            }
            _ => {}
        }
    }

    /// Whether the part implements this instruction at all.
    fn supports(&self, instruction: &Decoded) -> bool {
        match instruction {
            Decoded::Unknown => false,
            Decoded::PollReady => self.part.rdy_bsy_poll,
            Decoded::LoadEepromPage { .. } | Decoded::WriteEepromPage { .. } => {
                self.part.eeprom_page_ops
            }
            Decoded::ReadFuse(kind) | Decoded::WriteFuse(kind, _) => {
                self.part.fuse(*kind).is_some()
            }
            _ => true,
        }
    }

    /// Whether this instruction runs in the current state (busy aside).
    fn executes(&self, instruction: &Decoded) -> bool {
        self.logic.in_sync
            && self.supports(instruction)
            && (self.logic.enabled || *instruction == Decoded::ProgrammingEnable)
    }

    /// The running operation, if it has not finished by now.
    fn running_operation(&mut self) -> Option<Busy> {
        let now = self.clock.now_ns();
        if self.busy.as_ref().is_some_and(|busy| now >= busy.until_ns) {
            self.busy = None;
        }
        self.busy.clone()
    }

    fn start_operation(&mut self, operation: Operation, duration: Duration) {
        let until_ns = self.clock.now_ns().saturating_add(duration_ns(duration));
        self.busy = Some(Busy {
            operation,
            until_ns,
        });
    }

    /// After byte 3: the data a read instruction shifts out in byte 4, if it executes.
    fn read_for_output(&mut self) -> Option<u8> {
        let [b0, b1, b2, _] = self.logic.frame;
        let instruction = isp::decode([b0, b1, b2, 0x00]);
        if !is_read(&instruction) || !self.executes(&instruction) {
            return None;
        }
        let busy = self.running_operation();
        let blocks_reading = self.lock_mode().blocks_reading();
        match instruction {
            Decoded::PollReady => Some(u8::from(busy.is_some())),
            Decoded::ReadFlash { word, high } => {
                let addr = self
                    .memories
                    .flash_byte_addr(self.extended_address, word, high);
                match busy {
                    Some(busy) if busy.polls_flash(addr) => Some(POLL_BUSY_VALUE),
                    Some(_) => self.busy_violation(),
                    None if blocks_reading => Some(scrambled_read(
                        self.noise_seed,
                        ScrambledMemory::Flash,
                        addr,
                    )),
                    None => Some(self.memories.flash_byte(addr)),
                }
            }
            Decoded::ReadEeprom { addr } => {
                let addr = self.memories.eeprom_addr(addr);
                match busy {
                    Some(busy) if busy.polls_eeprom(addr) => Some(POLL_BUSY_VALUE),
                    Some(_) => self.busy_violation(),
                    None if blocks_reading => Some(scrambled_read(
                        self.noise_seed,
                        ScrambledMemory::Eeprom,
                        addr,
                    )),
                    None => Some(self.memories.eeprom_byte(addr)),
                }
            }
            _ if busy.is_some() => self.busy_violation(),
            Decoded::ReadFuse(kind) => self.fuse(kind),
            Decoded::ReadSignature(index) => Some(
                self.part
                    .signature
                    .get(usize::from(index & 0x03))
                    .copied()
                    .unwrap_or(0xFF),
            ),
            // The index field is as wide as the part needs (2 bits on the ATmega32A).
            Decoded::ReadCalibration(index) => Some(
                self.calibration
                    .get(usize::from(index) % self.calibration.len().max(1))
                    .copied()
                    .unwrap_or(0xFF),
            ),
            _ => None,
        }
    }

    /// Counts an instruction ignored while busy; as a read, it leaves the plain echo.
    fn busy_violation(&mut self) -> Option<u8> {
        self.stats.busy_violations += 1;
        None
    }

    /// After byte 4: runs a write or control instruction.
    fn execute(&mut self, frame: Instruction) {
        let instruction = isp::decode(frame);
        if !self.logic.in_sync {
            return;
        }
        if !self.supports(&instruction) {
            self.stats.unknown_instructions += 1;
            return;
        }
        if is_read(&instruction) || !self.executes(&instruction) {
            return;
        }
        if self.running_operation().is_some() {
            self.busy_violation();
            return;
        }
        let locked = self.lock_mode().blocks_programming();
        match instruction {
            Decoded::ProgrammingEnable => self.logic.enabled = true,
            Decoded::ChipErase => {
                let keep_eeprom = self.fuses.eesave(&self.part);
                self.memories.erase(keep_eeprom);
                self.fuses.erase_lock(&self.part);
                self.stats.chip_erases += 1;
                self.start_operation(Operation::ChipErase, self.busy_times.chip_erase);
            }
            Decoded::LoadExtendedAddress(extended) => self.extended_address = extended,
            Decoded::LoadFlashPage { word, high, value } => {
                self.memories.load_flash_buffer(word, high, value);
            }
            Decoded::LoadEepromPage { offset, value } => {
                self.memories.load_eeprom_buffer(offset, value);
            }
            Decoded::WriteFlashPage { .. }
            | Decoded::WriteEepromPage { .. }
            | Decoded::WriteEeprom { .. }
                if locked =>
            {
                self.stats.locked_writes_ignored += 1;
            }
            Decoded::WriteFuse(kind, _) if locked && kind != FuseKind::Lock => {
                self.stats.locked_writes_ignored += 1;
            }
            Decoded::WriteFlashPage { word } => {
                let page = self
                    .memories
                    .program_flash_page(self.extended_address, word);
                self.stats.flash_pages_written += 1;
                self.start_operation(Operation::FlashPage(page), self.busy_times.flash_page);
            }
            Decoded::WriteEepromPage { addr } => {
                let page = self.memories.program_eeprom_page(addr);
                self.stats.eeprom_writes += 1;
                self.start_operation(Operation::Eeprom(page), self.busy_times.eeprom);
            }
            Decoded::WriteEeprom { addr, value } => {
                let byte = self.memories.write_eeprom_byte(addr, value);
                self.stats.eeprom_writes += 1;
                self.start_operation(Operation::Eeprom(byte), self.busy_times.eeprom);
            }
            Decoded::WriteFuse(kind, value) => {
                self.fuses.write(&self.part, kind, value);
                self.stats.fuse_writes += 1;
                self.start_operation(Operation::FuseWrite, self.busy_times.fuse);
            }
            // Reads ran after byte 3; unknown instructions were filtered out above.
            Decoded::PollReady
            | Decoded::ReadFlash { .. }
            | Decoded::ReadEeprom { .. }
            | Decoded::ReadFuse(_)
            | Decoded::ReadSignature(_)
            | Decoded::ReadCalibration(_)
            | Decoded::Unknown => {}
        }
    }
}

/// Whether an instruction's effect is the byte it shifts out (so it runs after byte 3).
fn is_read(instruction: &Decoded) -> bool {
    matches!(
        instruction,
        Decoded::PollReady
            | Decoded::ReadFlash { .. }
            | Decoded::ReadEeprom { .. }
            | Decoded::ReadFuse(_)
            | Decoded::ReadSignature(_)
            | Decoded::ReadCalibration(_)
    )
}

/// The starting lfuse, hfuse, efuse and lock values, checked against the part.
fn initial_fuses(part: &Part, fuses: Option<FuseValues>, lock: u8) -> Result<[u8; 4]> {
    let default = |kind| part.fuse(kind).map_or(0xFF, |byte| byte.default);
    let Some(values) = fuses else {
        return Ok([
            default(FuseKind::Low),
            default(FuseKind::High),
            default(FuseKind::Extended),
            lock,
        ]);
    };
    if let Some(efuse) = values.efuse
        && !part.has_efuse()
    {
        return Err(Error::invalid(format!(
            "emulated {}: it has no extended fuse, but efuse 0x{efuse:02X} was given",
            part.name
        )));
    }
    if let Some(spien) = part.field(FuseKind::High, "SPIEN")
        && spien.get(values.hfuse) != 0
    {
        return Err(Error::invalid(format!(
            "emulated {}: hfuse 0x{:02X} has SPIEN unprogrammed; such a chip never answers ISP \
             (program bit 0x{:02X})",
            part.name, values.hfuse, spien.mask
        )));
    }
    Ok([
        values.lfuse,
        values.hfuse,
        values.efuse.unwrap_or_else(|| default(FuseKind::Extended)),
        lock,
    ])
}
