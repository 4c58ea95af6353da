//! The "limit" column: the least time a programmer's firmware and link can take for a job.
//!
//! A job is reduced to its [`JobShape`] (pages written, bytes read back, single instructions,
//! erases, fuse writes). Each programmer is described by a [`LinkModel`]: its fastest ISP clock
//! that is safe for a 16 MHz target, how much its firmware stretches SPI work, the fixed pauses
//! its firmware takes per page, the per-byte cost of its link, the per-transfer cost (USB
//! control transfer or host turnaround), and how many bytes one transfer can carry.
//!
//! limit = session start + round trips × turnaround + link time (+ or max) firmware time,
//! where
//! - session start = the wait after RESET before Programming Enable (20 ms, datasheet), or the
//!   firmware's own longer delays (ArduinoISP's `start_pmode`: 70 ms);
//! - round trips = the fewest the protocol allows: the requests that open and close a session
//!   (besides Programming Enable), one per page written (plus one more where the commit is a
//!   separate request), one per largest read block, one per single instruction (plus one per
//!   erase and fuse write, and one per byte a bulk read cannot reach) where each instruction
//!   is a request of its own (USB), or where several fit one exchange (STK500v1 frames, Bus
//!   Pirate bulk SPI) one per step that must wait for a self-timed write before the next;
//! - link time = bytes on the wire × byte time, or USB packets × packet time;
//! - firmware time = ISP bytes × 8 / SCK × stretch + page pauses (tWD_FLASH or the firmware's
//!   own, whichever is longer) + tWD_ERASE + tWD_FUSE per fuse;
//! - USB control transfers and the ArduinoISP's command loop do not overlap link and firmware
//!   (sum). The Bus Pirate's buffered UART does, in part: a page is clocked out only after all
//!   its bytes arrived (write-then-read), so the SPI of writes adds, while page programming
//!   and read clocking pass under the UART transfer (max).
//!
//! The constants and their sources are in docs/timing/*.md and docs/BENCHMARKS.md.

/// The work of one job, counted the way the limit needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobShape {
    /// Flash pages written.
    pub pages_written: u64,
    /// Flash page size in bytes.
    pub page_size: u64,
    /// Bytes read back (verify).
    pub bytes_read: u64,
    /// Of those, the bytes at flash addresses of 64 KiB and above.
    pub bytes_read_high: u64,
    /// Single ISP instructions (programming enable, signature, fuse reads...).
    pub single_instructions: u64,
    /// Chip erases.
    pub erases: u64,
    /// Fuse bytes written.
    pub fuse_writes: u64,
    /// The fewest exchanges the single instructions, erases and fuse writes need on a
    /// programmer that carries any number in one: each self-timed write ends an exchange (the
    /// next instruction waits for it), and a read after the last one needs one more.
    pub instruction_exchanges: u64,
}

/// What the target charges, from the part's datasheet timing (16 MHz m32u4/AT90USB1286).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetTiming {
    /// tWD_FLASH, seconds.
    pub flash_page_s: f64,
    /// tWD_ERASE, seconds.
    pub chip_erase_s: f64,
    /// tWD_FUSE, seconds.
    pub fuse_write_s: f64,
}

/// ATmega32U4 / AT90USB1286 datasheet values (tWD_FLASH 4.5 ms, tWD_ERASE 9 ms, tWD_FUSE 4.5 ms).
pub const MEGA_U4_TIMING: TargetTiming = TargetTiming {
    flash_page_s: 4.5e-3,
    chip_erase_s: 9.0e-3,
    fuse_write_s: 4.5e-3,
};

/// How a programmer's firmware and link spend time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// Programmer id as avrdude and our CLI name it.
    pub programmer: &'static str,
    /// Least time from opening to Programming Enable: the datasheet's 20 ms after RESET, or
    /// the firmware's own delays where longer, seconds.
    pub session_start_s: f64,
    /// Requests every session needs besides Programming Enable, each answered before the next
    /// step: opening the programmer's session and releasing the target at the end.
    pub session_round_trips: u64,
    /// Fastest ISP clock the firmware offers that is safe for a 16 MHz target (≤ 16 MHz / 6).
    pub sck_hz: f64,
    /// Factor by which firmware work takes longer than the bare SPI bits (USBtiny: the
    /// interrupt handler NAKing the host's polls).
    pub stretch: f64,
    /// Firmware cost per byte moved through it (receive + send handling), seconds.
    pub firmware_byte_s: f64,
    /// A pause the firmware takes per page on its own (ArduinoISP's PROG_FLICKER), seconds.
    pub firmware_page_pause_s: f64,
    /// Link time per byte (serial) or per 8-byte packet / 8 (low-speed USB), seconds.
    pub link_byte_s: f64,
    /// Cost of one round trip: host turnaround or control transfer overhead, seconds.
    pub round_trip_s: f64,
    /// Largest read block one round trip can bring back, bytes.
    pub read_block: u64,
    /// Flash addresses a bulk read can reach (USBtiny: its 16-bit byte counter, 64 KiB); bytes
    /// above are read one ISP instruction per round trip.
    pub bulk_read_reach: Option<u64>,
    /// Protocol bytes around each page written (command, address, length...).
    pub page_overhead_bytes: u64,
    /// Whether the page commit is a round trip of its own.
    pub commit_is_separate: bool,
    /// Whether one exchange can carry several ISP instructions (STK500v1 frames sent
    /// together, Bus Pirate bulk transfers in one burst) rather than one request each.
    pub batches_instructions: bool,
    /// Whether link time and firmware time overlap (a buffered UART) or add up.
    pub link_overlaps_firmware: bool,
}

/// ArduinoISP on a Pro Micro (QMK build): `start_pmode` waits 20 + 50 ms, SPI fixed at
/// F_CPU/128 = 125 kHz, 3 ms turnaround, 30 ms PROG_FLICKER per page, ~11 µs of firmware per
/// byte. The USB CDC link itself (~1 µs a byte) costs nothing on top: a host that sends its
/// frames together has the next ones on their way while the sketch is still busy.
pub const ARDUINOISP: LinkModel = LinkModel {
    programmer: "avrisp",
    bulk_read_reach: None,
    session_start_s: 70e-3,
    // GET_SYNC (the host cannot know the sketch is in step without it), LEAVE_PROGMODE.
    session_round_trips: 2,
    sck_hz: 125_000.0,
    stretch: 1.0,
    firmware_byte_s: 4.7e-6 + 6.2e-6,
    firmware_page_pause_s: 30e-3,
    link_byte_s: 0.0,
    round_trip_s: 3e-3,
    read_block: 1024,
    page_overhead_bytes: 6,
    commit_is_separate: false,
    batches_instructions: true,
    link_overlaps_firmware: false,
};

/// USBtiny (12 MHz, low-speed USB): period 1 = 35 cycles a bit (342.9 kHz), work stretched
/// 2.52× by the NAK interrupt, 2 ms per control transfer and 0.8 ms per 8-byte packet,
/// reads of up to 255 bytes a transfer, page commit as its own transfer.
pub const USBTINY: LinkModel = LinkModel {
    programmer: "usbtiny",
    bulk_read_reach: Some(0x1_0000),
    session_start_s: 20e-3,
    // POWERUP (clock and RESET), POWERDOWN.
    session_round_trips: 2,
    sck_hz: 12_000_000.0 / 35.0,
    stretch: 2.52,
    firmware_byte_s: 0.0,
    firmware_page_pause_s: 0.0,
    link_byte_s: 0.8e-3 / 8.0,
    round_trip_s: 2e-3,
    read_block: 255,
    page_overhead_bytes: 0,
    commit_is_separate: true,
    batches_instructions: false,
    link_overlaps_firmware: false,
};

/// Bus Pirate v3: 115200 baud (86.8 µs a byte), 16 ms FTDI latency per turnaround, fastest
/// safe SCK 2.667 MHz (code 5), one write-then-read per page (4 bytes per flash byte), reads
/// with the AVR extended command in 4 KiB blocks (one byte back per flash byte).
pub const BUSPIRATE: LinkModel = LinkModel {
    programmer: "buspirate",
    bulk_read_reach: None,
    session_start_s: 20e-3,
    // Binary mode (0x00 → BBIO1), SPI mode (0x01 → SPI1), pins/speed/mode (answered 0x01
    // each), RESET released at the end.
    session_round_trips: 4,
    sck_hz: 16_000_000.0 / 6.0,
    stretch: 1.0,
    firmware_byte_s: 0.0,
    firmware_page_pause_s: 0.0,
    link_byte_s: 10.0 / 115_200.0,
    round_trip_s: 16e-3,
    read_block: 4096,
    page_overhead_bytes: 9,
    commit_is_separate: false,
    batches_instructions: true,
    link_overlaps_firmware: true,
};

/// USBasp (12 MHz, V-USB, low-speed USB): 1.5 MHz hardware SPI (3 MHz would exceed a 16 MHz
/// target's f/6), ~136 cycles of firmware per flash byte stretched 2.5× by the NAK interrupt
/// (28 µs), 2 ms per control transfer and 0.8 ms per 8-byte packet, reads of up to 255 bytes
/// a transfer, one transfer per page written (the firmware commits and waits inside it).
pub const USBASP: LinkModel = LinkModel {
    programmer: "usbasp",
    bulk_read_reach: None,
    session_start_s: 20e-3,
    // CONNECT, DISCONNECT.
    session_round_trips: 2,
    sck_hz: 1_500_000.0,
    stretch: 1.0,
    firmware_byte_s: 28e-6,
    firmware_page_pause_s: 0.0,
    link_byte_s: 0.8e-3 / 8.0,
    round_trip_s: 2e-3,
    read_block: 255,
    page_overhead_bytes: 0,
    commit_is_separate: false,
    batches_instructions: false,
    link_overlaps_firmware: false,
};

/// The models the bench knows, by programmer id.
pub fn model(programmer: &str) -> Option<LinkModel> {
    [ARDUINOISP, USBTINY, BUSPIRATE, USBASP]
        .into_iter()
        .find(|m| m.programmer == programmer)
}

/// Bytes read one instruction at a time because bulk reads cannot reach them.
pub fn single_byte_reads(model: &LinkModel, job: &JobShape) -> u64 {
    if model.bulk_read_reach.is_some() {
        job.bytes_read_high
    } else {
        0
    }
}

/// Bytes on the link for a job: what the host sends and what comes back (a single
/// instruction is counted as 8 bytes: 4 out, 4 back).
pub fn link_bytes(model: &LinkModel, job: &JobShape) -> f64 {
    let written = job.pages_written * job.page_size;
    // A serial programmer that clocks whole ISP instructions from the host (Bus Pirate's
    // write-then-read) carries 4 bytes per flash byte; STK500 and USBtiny carry the data.
    let per_flash_byte = if model.link_overlaps_firmware { 4 } else { 1 };
    let out = written * per_flash_byte + job.pages_written * model.page_overhead_bytes;
    let singles = single_byte_reads(model, job);
    let back = job.bytes_read - singles;
    let instructions = job.single_instructions + job.fuse_writes + job.erases + singles;
    (out + back + instructions * 8) as f64
}

/// The fewest round trips the protocol allows for the job.
pub fn min_round_trips(model: &LinkModel, job: &JobShape) -> u64 {
    let per_page = if model.commit_is_separate { 2 } else { 1 };
    let singles = single_byte_reads(model, job);
    let read_blocks = (job.bytes_read - singles).div_ceil(model.read_block.max(1));
    let instructions = if model.batches_instructions {
        job.instruction_exchanges
    } else {
        job.single_instructions + job.erases + job.fuse_writes
    };
    model.session_round_trips + job.pages_written * per_page + read_blocks + singles + instructions
}

/// ISP bytes clocked to the target: 4 per flash byte written or read, 4 per instruction.
pub fn isp_bytes(job: &JobShape) -> u64 {
    4 * (job.pages_written * job.page_size
        + job.pages_written
        + job.bytes_read
        + job.single_instructions
        + job.erases
        + job.fuse_writes)
}

/// The limit in seconds (see the module docs for the formula).
pub fn limit_seconds(model: &LinkModel, target: &TargetTiming, job: &JobShape) -> f64 {
    let seconds_per_isp_byte = 8.0 / model.sck_hz * model.stretch;
    let spi = isp_bytes(job) as f64 * seconds_per_isp_byte;
    let page_wait = target.flash_page_s.max(model.firmware_page_pause_s);
    let page_waits = job.pages_written as f64 * page_wait;
    let other_waits =
        job.erases as f64 * target.chip_erase_s + job.fuse_writes as f64 * target.fuse_write_s;
    let bytes = link_bytes(model, job);
    let link = bytes * model.link_byte_s;
    let firmware_bytes = bytes * model.firmware_byte_s;
    let turnarounds = min_round_trips(model, job) as f64 * model.round_trip_s;
    let body = if model.link_overlaps_firmware {
        // A page is clocked out only once all its bytes have arrived (write-then-read), but
        // its programming time passes while the next page crosses the UART, and reads are
        // clocked while earlier bytes are still on their way.
        let write_spi = (4 * job.pages_written * (job.page_size + 1)) as f64 * seconds_per_isp_byte;
        write_spi + other_waits + firmware_bytes + link.max(page_waits + spi - write_spi)
    } else {
        link + spi + page_waits + other_waits + firmware_bytes
    };
    model.session_start_s + turnarounds + body
}
