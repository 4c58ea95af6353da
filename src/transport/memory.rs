//! An in-process serial link: the host end is a [`SerialLink`], the other end drives an
//! emulator thread (the port `emulated`).
//!
//! Both ends share one byte queue per direction behind a mutex and a condition variable, so
//! waits sleep instead of spinning. Control lines travel in order with the data: an emulator
//! that models the DTR auto-reset sees the DTR edge before the bytes written after it, as the
//! real board would.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{SerialLink, deadline_after, link_lost, read_exact_by};
use crate::error::{Error, Result};

/// The host-controlled lines of a serial port, as the emulator sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineState {
    /// Data Terminal Ready is asserted.
    pub dtr: bool,
    /// Request To Send is asserted.
    pub rts: bool,
    /// The baud rate the host set.
    pub baud: u32,
}

/// A change the host made to a control line or the baud rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEvent {
    /// DTR was asserted (`true`) or de-asserted.
    Dtr(bool),
    /// RTS was asserted (`true`) or de-asserted.
    Rts(bool),
    /// The baud rate changed.
    Baud(u32),
}

/// What [`EmulatorEnd::recv`] got from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromHost {
    /// This many bytes were copied into the buffer.
    Data(usize),
    /// The host changed a line; bytes written after the change follow in later calls.
    Line(LineEvent),
    /// Nothing arrived within the timeout.
    Idle,
}

/// Creates a connected pair: the host end for a driver, the other end for an emulator.
///
/// `name` is what error messages call the port (`emulated`); `baud` is the initial rate.
/// As on a real port just opened, DTR and RTS start asserted.
pub fn memory_link(name: &str, baud: u32) -> (MemoryLink, EmulatorEnd) {
    let pipe = Arc::new(Pipe {
        state: Mutex::new(PipeState {
            to_emulator: VecDeque::new(),
            to_host: VecDeque::new(),
            delivered_to_emulator: 0,
            enqueued_to_emulator: 0,
            line_events: VecDeque::new(),
            lines: LineState {
                dtr: true,
                rts: true,
                baud,
            },
            host_open: true,
            emulator_open: true,
        }),
        changed: Condvar::new(),
    });
    let host = MemoryLink {
        name: name.to_string(),
        pipe: Arc::clone(&pipe),
    };
    let emulator = EmulatorEnd {
        name: name.to_string(),
        pipe,
    };
    (host, emulator)
}

struct Pipe {
    state: Mutex<PipeState>,
    /// Signalled on every change to the state, in either direction.
    changed: Condvar,
}

struct PipeState {
    to_emulator: VecDeque<u8>,
    to_host: VecDeque<u8>,
    /// Bytes taken by the emulator so far; with `enqueued_to_emulator` it places line events
    /// in the byte stream.
    delivered_to_emulator: u64,
    enqueued_to_emulator: u64,
    /// Line changes, each tagged with the stream position it happened at.
    line_events: VecDeque<(u64, LineEvent)>,
    lines: LineState,
    host_open: bool,
    emulator_open: bool,
}

impl Pipe {
    /// The state; a panic on the other thread cannot leave it inconsistent (every update is a
    /// single push or pop), so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a change until `deadline`; returns `None` once the deadline has passed.
    fn wait_until<'a>(
        &self,
        guard: MutexGuard<'a, PipeState>,
        deadline: Instant,
    ) -> Option<MutexGuard<'a, PipeState>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let (guard, _) = self
            .changed
            .wait_timeout(guard, left)
            .unwrap_or_else(PoisonError::into_inner);
        Some(guard)
    }
}

/// Moves up to `buf.len()` bytes from the front of `queue` into `buf`.
fn take_bytes(queue: &mut VecDeque<u8>, buf: &mut [u8]) -> usize {
    let n = buf.len().min(queue.len());
    for (slot, byte) in buf.iter_mut().zip(queue.drain(..n)) {
        *slot = byte;
    }
    n
}

/// The host end of an in-process link: what a driver talks to.
///
/// Dropping it hangs up: the emulator's next read fails with [`Error::Link`].
pub struct MemoryLink {
    name: String,
    pipe: Arc<Pipe>,
}

/// Reads what reached the host until `deadline`: at least one byte, or 0 when the time ran
/// out.
fn read_until(pipe: &Pipe, name: &str, buf: &mut [u8], deadline: Instant) -> Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let mut state = pipe.lock();
    loop {
        if !state.to_host.is_empty() {
            return Ok(take_bytes(&mut state.to_host, buf));
        }
        // Bytes sent before the hang-up are still delivered, then the link is dead.
        if !state.emulator_open {
            return Err(link_lost(name, "the emulator hung up"));
        }
        match pipe.wait_until(state, deadline) {
            Some(next) => state = next,
            None => return Ok(0),
        }
    }
}

impl MemoryLink {
    /// Applies a line change and queues it for the emulator, if it is a change.
    fn change_lines(&mut self, event: LineEvent) -> Result<()> {
        let mut state = self.pipe.lock();
        if !state.emulator_open {
            return Err(link_lost(&self.name, "the emulator hung up"));
        }
        let lines = &mut state.lines;
        let changed = match event {
            LineEvent::Dtr(on) => std::mem::replace(&mut lines.dtr, on) != on,
            LineEvent::Rts(on) => std::mem::replace(&mut lines.rts, on) != on,
            LineEvent::Baud(baud) => std::mem::replace(&mut lines.baud, baud) != baud,
        };
        if changed {
            let at = state.enqueued_to_emulator;
            state.line_events.push_back((at, event));
            self.pipe.changed.notify_all();
        }
        Ok(())
    }
}

impl SerialLink for MemoryLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let mut state = self.pipe.lock();
        if !state.emulator_open {
            return Err(link_lost(&self.name, "the emulator hung up"));
        }
        state.to_emulator.extend(data);
        state.enqueued_to_emulator += data.len() as u64;
        self.pipe.changed.notify_all();
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()> {
        let (pipe, name) = (&self.pipe, self.name.as_str());
        read_exact_by(name, buf, timeout, during, |chunk, deadline| {
            read_until(pipe, name, chunk, deadline)
        })
    }

    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        read_until(&self.pipe, &self.name, buf, deadline_after(timeout))
    }

    fn set_dtr(&mut self, on: bool) -> Result<()> {
        self.change_lines(LineEvent::Dtr(on))
    }

    fn set_rts(&mut self, on: bool) -> Result<()> {
        self.change_lines(LineEvent::Rts(on))
    }

    fn set_baud(&mut self, baud: u32) -> Result<()> {
        if baud == 0 {
            return Err(Error::invalid(format!(
                "baud rate 0 is not valid for {}",
                self.name
            )));
        }
        self.change_lines(LineEvent::Baud(baud))
    }
}

impl Drop for MemoryLink {
    fn drop(&mut self) {
        self.pipe.lock().host_open = false;
        self.pipe.changed.notify_all();
    }
}

/// The emulator's end of an in-process link.
///
/// Dropping it hangs up: the host's reads fail with [`Error::Link`] once the bytes already
/// sent are read, as when a programmer is unplugged mid-transfer.
pub struct EmulatorEnd {
    name: String,
    pipe: Arc<Pipe>,
}

impl EmulatorEnd {
    /// The port name the host sees.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `timeout` for the next thing from the host: bytes or a line change, in the
    /// order the host made them. Fails with [`Error::Link`] once the host has hung up and
    /// everything it sent has been received.
    pub fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<FromHost> {
        let deadline = deadline_after(timeout);
        let mut state = self.pipe.lock();
        loop {
            if let Some(received) = Self::next_from_host(&mut state, buf) {
                return Ok(received);
            }
            if !state.host_open {
                return Err(link_lost(&self.name, "the host closed the port"));
            }
            match self.pipe.wait_until(state, deadline) {
                Some(next) => state = next,
                None => return Ok(FromHost::Idle),
            }
        }
    }

    /// The next line event due at the current stream position, else the bytes up to the
    /// next event; `None` when nothing is waiting (or `buf` is empty and no event is due).
    fn next_from_host(state: &mut PipeState, buf: &mut [u8]) -> Option<FromHost> {
        if let Some(&(at, event)) = state.line_events.front()
            && at <= state.delivered_to_emulator
        {
            state.line_events.pop_front();
            return Some(FromHost::Line(event));
        }
        let before_next_event = match state.line_events.front() {
            Some(&(at, _)) => {
                usize::try_from(at - state.delivered_to_emulator).unwrap_or(usize::MAX)
            }
            None => usize::MAX,
        };
        let limit = buf.len().min(before_next_event);
        let n = take_bytes(&mut state.to_emulator, &mut buf[..limit]);
        state.delivered_to_emulator += n as u64;
        (n > 0).then_some(FromHost::Data(n))
    }

    /// Sends bytes to the host. Fails with [`Error::Link`] when the host has hung up.
    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let mut state = self.pipe.lock();
        if !state.host_open {
            return Err(link_lost(&self.name, "the host closed the port"));
        }
        state.to_host.extend(data);
        self.pipe.changed.notify_all();
        Ok(())
    }

    /// The current state of DTR, RTS and the baud rate (changes not yet received included).
    pub fn lines(&self) -> LineState {
        self.pipe.lock().lines
    }

    /// Whether the host end still exists.
    pub fn host_connected(&self) -> bool {
        self.pipe.lock().host_open
    }
}

impl Drop for EmulatorEnd {
    fn drop(&mut self) {
        self.pipe.lock().emulator_open = false;
        self.pipe.changed.notify_all();
    }
}
