//! Running an emulated serial programmer firmware (ArduinoISP, Bus Pirate, Caterina) against a
//! host: over a PTY (so avrdude or our own serialport code talks to it) or an in-process
//! [`memory_link`].
//!
//! Firmwares are written like the real ones: a loop that blocks on the next byte
//! ([`FirmwareIo::getch`]) and writes replies ([`FirmwareIo::write`]). [`FirmwareIo`] does the
//! bookkeeping every firmware shares, so that avrdude and our engine are charged by the same code
//! for the same bytes:
//!
//! - **Link time** ([`SerialTiming`]): a UART spends 10 bit times per byte each way, and the
//!   firmware's 64-byte TX buffer lets it keep working while bytes drain; a native USB CDC device
//!   moves 64-byte packets almost for free but every host → device → host turnaround costs USB
//!   scheduling latency.
//! - **Host time**: a pause on the host side longer than [`HOST_PAUSE_THRESHOLD`] (avrdude's
//!   sleeps after a chip erase, our engine's waits) really happens on hardware too, so it is
//!   added to the virtual clock; shorter gaps are this machine's scheduling noise and are not,
//!   which keeps modeled times repeatable.
//! - **Faults** ([`Faults`]), **stats** ([`EmulatorStats`]), and **realtime** mode (replies
//!   are held back until the wall clock catches up with the virtual one).
//! - **UART buffers** (opt-in, [`SerialFirmware::uart_buffers`]): for a firmware that polls a
//!   small hardware FIFO (the Bus Pirate's PIC24), bytes from the host arrive at line rate
//!   whether or not the firmware reads them, one byte too many is an overrun that stops the
//!   receiver ([`FirmwareIo::rx_overrun`]), and writes block while the TX FIFO is full.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::fault::{Faults, Inbound};
use super::socket::{SharedSocket, lock};
use super::stats::EmulatorStats;
use crate::error::Result;
use crate::isp::{self, Decoded};
use crate::transport::{EmulatorEnd, FromHost, LineEvent, MemoryLink, memory_link};
#[cfg(unix)]
use crate::transport::{Pty, PtyEvent};

/// Host pauses shorter than this are scheduling noise on the emulating machine, not host time.
pub const HOST_PAUSE_THRESHOLD: Duration = Duration::from_millis(1);

/// How long [`FirmwareIo`] waits in one go before checking the stop flag.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// The physical link between the host PC and the programmer's firmware.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SerialTiming {
    /// A native USB CDC-ACM device (Pro Micro, Teensy 2.0): the baud rate is ignored.
    UsbCdc {
        /// Cost of one host → device → host turnaround (USB frame scheduling plus the host
        /// stack), in ns.
        turnaround_ns: u64,
        /// Cost of each 64-byte bulk packet, in ns.
        packet_ns: u64,
    },
    /// A hardware UART behind a USB-serial bridge (Arduino Uno's 16U2, an FTDI chip).
    Uart {
        /// Bits per second.
        baud: u32,
        /// Extra latency the bridge adds to each turnaround, in ns (an FTDI chip holds a short
        /// reply until its latency timer expires: 16 ms by default).
        turnaround_ns: u64,
    },
}

impl SerialTiming {
    /// Time for one byte on the wire, in ns.
    fn byte_ns(&self) -> u64 {
        match *self {
            SerialTiming::UsbCdc { packet_ns, .. } => packet_ns / 64,
            SerialTiming::Uart { baud, .. } => 10_000_000_000 / u64::from(baud.max(1)),
        }
    }

    fn turnaround_ns(&self) -> u64 {
        match *self {
            SerialTiming::UsbCdc { turnaround_ns, .. }
            | SerialTiming::Uart { turnaround_ns, .. } => turnaround_ns,
        }
    }
}

/// A firmware's UART hardware buffers, for firmwares whose behaviour depends on them (see
/// [`SerialFirmware::uart_buffers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UartBuffers {
    /// Received bytes the UART holds until the firmware reads them. A byte that completes while
    /// this many are unread is an overrun: it is lost and the receiver stops.
    pub rx_fifo: usize,
    /// Bytes the firmware can hand to the transmitter before it has to wait (the TX FIFO plus
    /// the shift register).
    pub tx_depth: usize,
}

/// Why a firmware loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The host closed the port; the firmware may run again when a host opens it.
    HostClosed,
    /// The host reset the board (DTR on an Uno-style host); the firmware restarts.
    BoardReset,
    /// A `hangup` fault: the programmer is gone for good.
    HungUp,
    /// The emulator is shutting down.
    Shutdown,
}

/// A programmer firmware that speaks over a serial link.
pub trait SerialFirmware: Send {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// The link this firmware's board uses.
    fn timing(&self) -> SerialTiming;
    /// Whether asserting DTR resets the board (Uno-style auto-reset).
    fn dtr_resets(&self) -> bool {
        false
    }
    /// The firmware's main loop; returns when the host goes away or the board resets.
    fn run(&mut self, io: &mut FirmwareIo) -> std::result::Result<(), Stop>;
    /// The board was reset (power-up or DTR): the firmware starts from scratch.
    fn reset(&mut self, io: &mut FirmwareIo) {
        let _ = io;
    }
    /// The UART's hardware buffers, when the firmware polls a small FIFO and overruns matter.
    /// Then each byte from the host arrives at line rate after the one before it (whether or
    /// not the firmware is reading), an overrun is modeled, and [`FirmwareIo::write`] blocks
    /// once `tx_depth` bytes are in flight. `None` (the default) keeps the simpler model: a
    /// byte is ready one byte time after the firmware took the previous one, and a 64-byte
    /// TX buffer.
    fn uart_buffers(&self) -> Option<UartBuffers> {
        None
    }
}

/// The host end as an emulator serves it.
trait Endpoint: Send {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Incoming>;
    fn send(&mut self, data: &[u8]) -> Result<()>;
    fn host_connected(&self) -> bool;
}

enum Incoming {
    Data(usize),
    HostOpened,
    HostClosed,
    Dtr(bool),
    Idle,
}

impl Endpoint for EmulatorEnd {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Incoming> {
        match EmulatorEnd::recv(self, buf, timeout) {
            Ok(FromHost::Data(n)) => Ok(Incoming::Data(n)),
            Ok(FromHost::Line(LineEvent::Dtr(on))) => Ok(Incoming::Dtr(on)),
            Ok(FromHost::Line(_)) | Ok(FromHost::Idle) => Ok(Incoming::Idle),
            Err(_) => Ok(Incoming::HostClosed),
        }
    }
    fn send(&mut self, data: &[u8]) -> Result<()> {
        self.write_all(data)
    }
    fn host_connected(&self) -> bool {
        EmulatorEnd::host_connected(self)
    }
}

#[cfg(unix)]
impl Endpoint for Pty {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Incoming> {
        Ok(match Pty::recv(self, buf, timeout)? {
            PtyEvent::Data(n) => Incoming::Data(n),
            // Opening a tty asserts DTR; that is all a PTY can tell us about the lines.
            PtyEvent::HostOpened => Incoming::HostOpened,
            PtyEvent::HostClosed => Incoming::HostClosed,
            PtyEvent::Idle => Incoming::Idle,
        })
    }
    fn send(&mut self, data: &[u8]) -> Result<()> {
        self.write_all(data, Duration::from_secs(5))
    }
    fn host_connected(&self) -> bool {
        Pty::host_connected(self)
    }
}

/// Options for serving a firmware.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Faults to commit.
    pub faults: Faults,
    /// Hold replies until the wall clock reaches the virtual time they would arrive at.
    pub realtime: bool,
}

/// What a firmware uses to talk to the host and the target.
pub struct FirmwareIo {
    endpoint: Option<Box<dyn Endpoint>>,
    socket: SharedSocket,
    timing: SerialTiming,
    dtr_resets: bool,
    options: ServeOptions,
    stop: Arc<AtomicBool>,
    stats: EmulatorStats,
    rx: std::collections::VecDeque<u8>,
    tx: Vec<u8>,
    /// Virtual time at which the next received byte is available.
    rx_ready_ns: u64,
    /// Virtual time at which the last byte sent has left the programmer.
    tx_done_ns: u64,
    /// Output was produced since the last input: the next input is a new round trip.
    replied: bool,
    /// Real time of the last flush to the host, for host-pause accounting.
    last_flush: Option<Instant>,
    /// Virtual time of the first byte from the host (start of the modeled span).
    first_rx_ns: Option<u64>,
    stalled: bool,
    wall_start: Instant,
    virtual_start_ns: u64,
    instruction: [u8; 4],
    instruction_len: usize,
    /// The modeled UART buffers, if the firmware asked for them.
    uart: Option<UartBuffers>,
    /// With `uart`: the virtual time at which each byte in `rx` finished arriving.
    rx_arrivals: std::collections::VecDeque<u64>,
    /// With `uart`: when the last byte from the host finished arriving.
    last_arrival_ns: u64,
    /// With `uart`: an overrun stopped the receiver; later bytes from the host are lost.
    rx_overrun: bool,
    /// Realtime: the virtual time the oldest unsent output byte was produced.
    tx_oldest_ns: Option<u64>,
    /// Realtime: a flush from `write` failed; the next wait for input reports it.
    pending_stop: Option<Stop>,
}

/// In realtime mode, output older than this (virtual time) is sent even while the firmware is
/// still busy: a USB-serial bridge does not hold bytes longer than its latency timer (FTDI:
/// 16 ms), so a host waiting for an early reply (an ACK before a long bulk read) gets it.
const REALTIME_FLUSH_NS: u64 = 16_000_000;

impl FirmwareIo {
    fn new(
        endpoint: Box<dyn Endpoint>,
        socket: SharedSocket,
        timing: SerialTiming,
        dtr_resets: bool,
        uart: Option<UartBuffers>,
        options: ServeOptions,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let now = lock(&socket).now_ns();
        FirmwareIo {
            endpoint: Some(endpoint),
            socket,
            timing,
            dtr_resets,
            options,
            stop,
            stats: EmulatorStats::default(),
            rx: Default::default(),
            tx: Vec::new(),
            rx_ready_ns: now,
            tx_done_ns: now,
            replied: true,
            last_flush: None,
            tx_oldest_ns: None,
            pending_stop: None,
            first_rx_ns: None,
            stalled: false,
            wall_start: Instant::now(),
            virtual_start_ns: now,
            instruction: [0; 4],
            instruction_len: 0,
            uart,
            rx_arrivals: Default::default(),
            last_arrival_ns: now,
            rx_overrun: false,
        }
    }

    /// The next byte from the host, waiting as long as it takes.
    pub fn getch(&mut self) -> std::result::Result<u8, Stop> {
        loop {
            if let Some(uart) = self.uart
                && !self.rx.is_empty()
            {
                return Ok(self.take_from_fifo(uart));
            }
            if let Some(b) = self.rx.pop_front() {
                let mut s = lock(&self.socket);
                s.advance_to(self.rx_ready_ns);
                self.rx_ready_ns = s.now_ns() + self.timing.byte_ns();
                return Ok(b);
            }
            self.fill()?;
        }
    }

    /// The next byte if the host has already sent one, without waiting (the Bus Pirate checks
    /// for more input between commands this way).
    pub fn try_getch(&mut self) -> std::result::Result<Option<u8>, Stop> {
        if self.rx.is_empty() {
            self.flush()?;
            self.receive(Duration::ZERO)?;
        }
        if self.rx.is_empty() {
            Ok(None)
        } else {
            self.getch().map(Some)
        }
    }

    /// Whether a UART overrun has stopped the receiver (only with
    /// [`SerialFirmware::uart_buffers`]): the bytes that were in the FIFO are still read, every
    /// later byte from the host is lost.
    pub fn rx_overrun(&self) -> bool {
        self.rx_overrun
    }

    /// Takes the next byte out of the modeled RX FIFO, first checking whether bytes arrived
    /// faster than the firmware read them.
    fn take_from_fifo(&mut self, uart: UartBuffers) -> u8 {
        let mut s = lock(&self.socket);
        let now = s.now_ns();
        // The byte `rx_fifo` places behind this one completed while the FIFO was full.
        if self
            .rx_arrivals
            .get(uart.rx_fifo)
            .is_some_and(|&arrived| arrived < now)
        {
            self.rx.truncate(uart.rx_fifo);
            self.rx_arrivals.truncate(uart.rx_fifo);
            self.rx_overrun = true;
        }
        let arrived = self.rx_arrivals.pop_front().unwrap_or(now);
        s.advance_to(arrived);
        self.rx_ready_ns = s.now_ns() + self.timing.byte_ns();
        self.rx.pop_front().unwrap_or_default()
    }

    /// Sends bytes to the host. A UART drains them in the background (a 64-byte buffer, or the
    /// modeled TX FIFO); the firmware only waits when that buffer is full.
    pub fn write(&mut self, data: &[u8]) {
        let byte_ns = self.timing.byte_ns();
        let depth = self.uart.map_or(64, |uart| uart.tx_depth.max(1)) as u64;
        let mut s = lock(&self.socket);
        if !data.is_empty() && self.tx_oldest_ns.is_none() {
            self.tx_oldest_ns = Some(s.now_ns());
        }
        for &b in data {
            let now = s.now_ns();
            let start = self.tx_done_ns.max(now);
            self.tx_done_ns = start + byte_ns;
            // A full TX buffer blocks the firmware until there is room for this byte.
            let backlog_limit = depth * byte_ns;
            if self.tx_done_ns > now + backlog_limit {
                s.advance_to(self.tx_done_ns - backlog_limit);
            }
            self.tx.push(b);
        }
        let now = s.now_ns();
        drop(s);
        if !data.is_empty() {
            self.replied = true;
            self.stats.bytes_from_programmer += data.len() as u64;
        }
        let overdue = self
            .tx_oldest_ns
            .is_some_and(|oldest| now.saturating_sub(oldest) >= REALTIME_FLUSH_NS);
        if self.options.realtime
            && overdue
            && self.pending_stop.is_none()
            && let Err(stop) = self.flush()
        {
            self.pending_stop = Some(stop);
        }
    }

    /// Charges firmware time (its own delays and software overhead).
    pub fn delay(&mut self, duration: Duration) {
        lock(&self.socket).advance(duration);
    }

    /// Charges firmware time in nanoseconds.
    pub fn delay_ns(&mut self, ns: u64) {
        lock(&self.socket).advance_ns(ns);
    }

    /// Drives the target's RESET line.
    pub fn set_reset(&mut self, asserted: bool) {
        lock(&self.socket).set_reset(asserted);
        self.instruction_len = 0;
    }

    /// Sets SCK's idle level.
    pub fn set_sck_level(&mut self, high: bool) {
        lock(&self.socket).set_sck_level(high);
    }

    /// Clocks one SPI byte to the target.
    pub fn spi_byte(&mut self, mosi: u8, sck_hz: u32) -> u8 {
        let miso = lock(&self.socket).spi_byte(mosi, sck_hz);
        self.count_instruction_byte(mosi);
        miso
    }

    /// Clocks a 4-byte ISP instruction.
    pub fn isp(&mut self, cmd: [u8; 4], sck_hz: u32) -> [u8; 4] {
        cmd.map(|b| self.spi_byte(b, sck_hz))
    }

    /// Counts one page (or block) read served, for the stats.
    pub fn count_page_read(&mut self) {
        self.stats.pages_read += 1;
    }

    /// The shared socket (for firmwares that need more than the helpers above).
    pub fn socket(&self) -> &SharedSocket {
        &self.socket
    }

    /// The stats so far.
    pub fn stats(&self) -> EmulatorStats {
        let mut stats = self.stats;
        let end = self.tx_done_ns.max(lock(&self.socket).now_ns());
        let start = self.first_rx_ns.unwrap_or(end);
        stats.modeled_seconds = end.saturating_sub(start) as f64 / 1e9;
        stats
    }

    fn count_instruction_byte(&mut self, mosi: u8) {
        self.instruction[self.instruction_len] = mosi;
        self.instruction_len += 1;
        if self.instruction_len == 4 {
            self.instruction_len = 0;
            self.stats.isp_instructions += 1;
            if matches!(
                isp::decode(self.instruction),
                Decoded::WriteFlashPage { .. }
                    | Decoded::WriteEepromPage { .. }
                    | Decoded::WriteEeprom { .. }
            ) {
                self.stats.pages_written += 1;
            }
        }
    }

    /// Forgets bytes in flight both ways (the host went away or the board reset).
    fn clear_buffers(&mut self) {
        self.rx.clear();
        self.rx_arrivals.clear();
        self.tx.clear();
        self.tx_oldest_ns = None;
    }

    /// Sends buffered output, first sleeping in realtime mode until the wall clock reaches it.
    fn flush(&mut self) -> std::result::Result<(), Stop> {
        if self.tx.is_empty() {
            return Ok(());
        }
        if self.options.realtime {
            let due = Duration::from_nanos(self.tx_done_ns.saturating_sub(self.virtual_start_ns));
            let elapsed = self.wall_start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        self.tx_oldest_ns = None;
        let mut out = std::mem::take(&mut self.tx);
        for b in &mut out {
            if self.options.faults.corrupt_outbound() {
                *b ^= 0xFF;
            }
        }
        if self.stalled {
            return Ok(());
        }
        if let Some(endpoint) = &mut self.endpoint
            && endpoint.send(&out).is_err()
        {
            return Err(Stop::HostClosed);
        }
        self.last_flush = Some(Instant::now());
        Ok(())
    }

    /// Waits for host input, handling line events, faults and the stop flag.
    fn fill(&mut self) -> std::result::Result<(), Stop> {
        if let Some(stop) = self.pending_stop.take() {
            return Err(stop);
        }
        self.flush()?;
        while self.rx.is_empty() {
            if self.stop.load(Ordering::SeqCst) {
                return Err(Stop::Shutdown);
            }
            self.receive(POLL_SLICE)?;
        }
        Ok(())
    }

    fn receive(&mut self, timeout: Duration) -> std::result::Result<(), Stop> {
        let Some(endpoint) = &mut self.endpoint else {
            return Err(Stop::HungUp);
        };
        let mut buf = [0u8; 4096];
        let incoming = endpoint
            .recv(&mut buf, timeout)
            .map_err(|_| Stop::HostClosed)?;
        match incoming {
            Incoming::Data(n) => self.accept(&buf[..n]),
            Incoming::HostClosed => Err(Stop::HostClosed),
            Incoming::HostOpened | Incoming::Dtr(true) if self.dtr_resets => Err(Stop::BoardReset),
            Incoming::HostOpened | Incoming::Dtr(_) | Incoming::Idle => Ok(()),
        }
    }

    fn accept(&mut self, data: &[u8]) -> std::result::Result<(), Stop> {
        let arrived = Instant::now();
        let start_of_burst = self.rx.is_empty();
        let held_before = self.rx.len();
        for &b in data {
            match self.options.faults.inbound() {
                // A stopped receiver loses everything (the UART is still counted).
                Inbound::Deliver if self.rx_overrun => {}
                Inbound::Deliver => self.rx.push_back(b),
                Inbound::Drop => {}
                Inbound::Stall => self.stalled = true,
                Inbound::Hangup => {
                    // Unplugged: the host's port goes away (PTY master closed).
                    self.endpoint = None;
                    return Err(Stop::HungUp);
                }
            }
        }
        self.stats.bytes_to_programmer += data.len() as u64;
        if self.stalled {
            self.rx.clear();
            self.rx_arrivals.clear();
            return Ok(());
        }
        if start_of_burst && !self.rx.is_empty() {
            self.schedule_burst(arrived);
        }
        if self.uart.is_some() {
            self.stamp_arrivals(start_of_burst, held_before);
        }
        Ok(())
    }

    /// With modeled UART buffers: gives each new byte its arrival time, back to back at line
    /// rate after the burst starts (or after the bytes still waiting, for a continuation).
    fn stamp_arrivals(&mut self, start_of_burst: bool, held_before: usize) {
        let byte_ns = self.timing.byte_ns();
        let mut next = if start_of_burst {
            self.rx_ready_ns
        } else {
            self.last_arrival_ns + byte_ns
        };
        for _ in held_before..self.rx.len() {
            self.rx_arrivals.push_back(next);
            self.last_arrival_ns = next;
            next += byte_ns;
        }
    }

    /// Works out the virtual time at which a new burst of host bytes arrives.
    fn schedule_burst(&mut self, arrived: Instant) {
        let s = lock(&self.socket);
        let now = s.now_ns();
        let host_pause = self
            .last_flush
            .map(|t| arrived.saturating_duration_since(t))
            .filter(|gap| *gap >= HOST_PAUSE_THRESHOLD)
            .map_or(0, super::clock::duration_ns);
        let ready = if self.replied {
            self.stats.round_trips += 1;
            self.tx_done_ns.max(now) + self.timing.turnaround_ns() + host_pause
        } else if self.uart.is_some() {
            // More of the host's stream: it follows the last byte on the wire, not the
            // firmware's reading.
            self.last_arrival_ns + host_pause
        } else {
            now.max(self.rx_ready_ns) + host_pause
        };
        // The first byte of a burst is available one byte time after the burst starts.
        self.rx_ready_ns = ready + self.timing.byte_ns();
        self.first_rx_ns.get_or_insert(ready);
        self.replied = false;
    }
}

/// A running emulator serving one firmware; stop it with [`EmulatorHandle::stop`].
pub struct EmulatorHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<EmulatorStats>>,
}

impl EmulatorHandle {
    /// Asks the emulator to stop and returns its stats.
    pub fn stop(mut self) -> EmulatorStats {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    /// A flag that stops the emulator when set (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Waits for the emulator to end by itself (a hangup fault, the stop flag) and returns its
    /// stats.
    pub fn join(&mut self) -> EmulatorStats {
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `firmware` until the stop flag is set or a hangup fault fires. Host closes and board
/// resets restart the firmware loop, as on the real board.
fn serve_loop(
    mut firmware: Box<dyn SerialFirmware>,
    endpoint: Box<dyn Endpoint>,
    socket: SharedSocket,
    options: ServeOptions,
    stop: Arc<AtomicBool>,
) -> EmulatorStats {
    let timing = firmware.timing();
    let dtr_resets = firmware.dtr_resets();
    let uart = firmware.uart_buffers();
    let mut io = FirmwareIo::new(endpoint, socket, timing, dtr_resets, uart, options, stop);
    firmware.reset(&mut io);
    loop {
        match firmware.run(&mut io) {
            Ok(()) | Err(Stop::HostClosed) => io.clear_buffers(),
            Err(Stop::BoardReset) => {
                io.clear_buffers();
                firmware.reset(&mut io);
            }
            Err(Stop::HungUp) | Err(Stop::Shutdown) => break,
        }
        // Wait for a host (or a stop) before running the loop again.
        while io.endpoint.as_ref().is_some_and(|e| !e.host_connected()) {
            if io.stop.load(Ordering::SeqCst) {
                return io.stats();
            }
            match io.receive(POLL_SLICE) {
                Ok(()) if !io.rx.is_empty() => break,
                Ok(()) | Err(Stop::HostClosed) => {}
                Err(Stop::BoardReset) => {
                    firmware.reset(&mut io);
                    break;
                }
                Err(_) => return io.stats(),
            }
        }
        if io.stop.load(Ordering::SeqCst) || io.endpoint.is_none() {
            break;
        }
    }
    io.stats()
}

/// Starts `firmware` in-process and returns the host end of the link plus the handle.
pub fn spawn_in_process(
    firmware: Box<dyn SerialFirmware>,
    socket: SharedSocket,
    baud: u32,
    options: ServeOptions,
) -> (MemoryLink, EmulatorHandle) {
    let (host, emulator) = memory_link("emulated", baud);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread =
        std::thread::spawn(move || serve_loop(firmware, Box::new(emulator), socket, options, flag));
    (
        host,
        EmulatorHandle {
            stop,
            thread: Some(thread),
        },
    )
}

/// Serves `firmware` on a PTY (for avrdude, or our driver through the real serial code).
#[cfg(unix)]
pub fn spawn_on_pty(
    firmware: Box<dyn SerialFirmware>,
    pty: Pty,
    socket: SharedSocket,
    options: ServeOptions,
) -> EmulatorHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread =
        std::thread::spawn(move || serve_loop(firmware, Box::new(pty), socket, options, flag));
    EmulatorHandle {
        stop,
        thread: Some(thread),
    }
}
