//! Moving bytes to and from the Bus Pirate: deadlines sized from what the bytes cost, the pacing
//! rules that keep its 4-byte receive FIFO from overflowing, and waits for the target.
//!
//! The Bus Pirate v3's firmware polls a 4-byte UART FIFO and never clears an overrun, so a host
//! that sends faster than the firmware takes bytes makes it deaf until it is power-cycled.
//! Two commands are safe to stream: write-then-read buffers its whole payload before it clocks
//! anything, and bulk transfers are safe back to back only while the firmware clocks a byte
//! faster than the UART delivers the next ([`BusPirate::firmware_keeps_up`]). Otherwise a burst
//! holds one 4-byte instruction (`13` + 4 bytes: the `13` is taken at once, the four data bytes
//! fit the FIFO).

use std::time::{Duration, Instant};

use super::BusPirate;
use super::protocol::{self, DRIVER};
use crate::emulate::clock::spi_byte_ns;
use crate::error::{Error, Result};
use crate::isp::Instruction;
use crate::transport::SerialLink;

/// Firmware time per SPI byte beyond its clock periods, assumed for pacing: four times the
/// emulator's estimate of `spiWriteByte()` plus the command loop, to leave margin for the real
/// PIC.
const ASSUMED_FIRMWARE_NS: u64 = 4_000;

/// Firmware time per SPI byte beyond its clock periods, assumed for deadlines.
const DEADLINE_FIRMWARE_NS: u64 = 3_000;

/// Most bytes sent in one go: one PTY or in-process chunk, and well under the firmware's
/// write-then-read buffer.
pub(super) const MAX_BURST: usize = 4_080;

/// What a deadline allows on top of the modeled transfer: the FTDI latency timer (16 ms), USB
/// scheduling and a loaded host.
const DEADLINE_SLACK: Duration = Duration::from_millis(250);

impl<L: SerialLink> BusPirate<L> {
    /// Time of one byte on the UART (8N1: 10 bits).
    pub(super) fn byte_time(&self) -> Duration {
        Duration::from_nanos(10_000_000_000 / u64::from(self.options.baud.max(1)))
    }

    /// A deadline for an exchange: twice the modeled time of `sent` and `received` bytes on the
    /// UART and `spi_bytes` clocked by the firmware, plus slack.
    pub(super) fn deadline(&self, sent: usize, received: usize, spi_bytes: usize) -> Duration {
        let uart = self.byte_time() * (sent + received) as u32;
        let per_spi = spi_byte_ns(self.speed.hz) + DEADLINE_FIRMWARE_NS;
        let spi = Duration::from_nanos(per_spi.saturating_mul(spi_bytes as u64));
        (uart + spi) * 2 + DEADLINE_SLACK
    }

    /// Whether the firmware clocks a bulk-transfer byte before the UART brings the next one, so
    /// that bulk transfers may be streamed without overrunning its receive FIFO.
    pub(super) fn firmware_keeps_up(&self) -> bool {
        spi_byte_ns(self.speed.hz) + ASSUMED_FIRMWARE_NS < self.byte_time().as_nanos() as u64
    }

    /// Sends bytes.
    pub(super) fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.io()?.write_all(bytes)
    }

    /// Reads exactly `n` bytes within `timeout`.
    pub(super) fn receive(&mut self, n: usize, timeout: Duration, during: &str) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.io()?.read_exact(&mut buf, timeout, during)?;
        Ok(buf)
    }

    /// Sends `out` and reads `reply_len` bytes, with a deadline that counts `spi_bytes` clocked.
    pub(super) fn exchange(
        &mut self,
        out: &[u8],
        reply_len: usize,
        spi_bytes: usize,
        during: &str,
    ) -> Result<Vec<u8>> {
        self.send(out)?;
        let timeout = self.deadline(out.len(), reply_len, spi_bytes);
        self.receive(reply_len, timeout, during)
    }

    /// Runs ISP instructions through bulk transfers: streamed in bursts where the firmware
    /// keeps up, one per round trip where it does not.
    pub(super) fn instructions(
        &mut self,
        cmds: &[Instruction],
        during: &str,
    ) -> Result<Vec<Instruction>> {
        let per_burst = if self.firmware_keeps_up() {
            // 17 bytes per four instructions.
            (MAX_BURST / 17) * 4
        } else {
            1
        };
        let mut responses = Vec::with_capacity(cmds.len());
        for burst in cmds.chunks(per_burst.max(1)) {
            let frames = protocol::bulk_frames(burst);
            let reply_len = protocol::bulk_reply_len(burst.len());
            self.settle(2);
            let reply = self.exchange(&frames, reply_len, burst.len() * 4, during)?;
            responses.extend(protocol::decode_bulk_reply(&reply, burst.len())?);
        }
        Ok(responses)
    }

    /// Clocks `payload` to the target in one write-then-read (no CS change, nothing read back).
    pub(super) fn write_then_read(&mut self, payload: &[u8], during: &str) -> Result<()> {
        if payload.len() > protocol::WRITE_THEN_READ_MAX {
            return Err(Error::invalid(format!(
                "internal: a {}-byte write-then-read exceeds the Bus Pirate's 4096-byte buffer",
                payload.len()
            )));
        }
        let mut out = protocol::write_then_read_header(payload.len()).to_vec();
        out.extend_from_slice(payload);
        self.settle(out.len());
        let reply = self.exchange(&out, 1, payload.len(), during)?;
        protocol::expect_ack(reply[0], during)
    }

    /// Notes that the target started a self-timed write that lasts at most `max_us`; the next
    /// instruction waits for it ([`BusPirate::settle`]). The write started before the Bus
    /// Pirate answered, so counting from now is safe.
    pub(super) fn target_busy_for(&mut self, max_us: u32) {
        let until = Instant::now() + Duration::from_micros(u64::from(max_us));
        self.busy_until = Some(self.busy_until.map_or(until, |t| t.max(until)));
    }

    /// Waits until the target has finished its last write, counting the `lead_bytes` the next
    /// command spends on the UART before its first SPI byte.
    pub(super) fn settle(&mut self, lead_bytes: usize) {
        if let Some(until) = self.busy_until.take() {
            let ready = Instant::now() + self.byte_time() * lead_bytes as u32;
            if until > ready {
                std::thread::sleep(until - ready);
            }
        }
    }

    /// The error for a reply that makes no sense here.
    pub(super) fn unexpected(&self, during: &str, got: &[u8]) -> Error {
        Error::protocol(
            DRIVER,
            format!(
                "{during}: unexpected answer {} on {}",
                crate::util::hex_bytes(got),
                self.port
            ),
        )
    }
}
