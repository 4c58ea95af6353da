//! Getting into binary SPI mode from whatever state the Bus Pirate is in, and back to its
//! terminal at the end.
//!
//! avrdude sends `\n\n` and then twenty 0x00 at once. From the terminal that is right, but a
//! Bus Pirate still in binary mode (a run that crashed) answers every 0x00 with five bytes, its
//! 4-byte UART FIFO overflows after about six of them, and it goes deaf until power-cycled.
//! So this driver first asks with a single `\n`: binary modes answer `00` (an unknown command)
//! and need one 0x00 to be back in bit-bang mode; the terminal answers with a prompt and gets
//! the twenty 0x00 (which it does not echo). Anything else (a menu question, the tail of a
//! half-sent command) gets another `\n`, a few times.

use std::time::{Duration, Instant};

use super::BusPirate;
use super::protocol::{self, DRIVER, ExtendedProbe, ModeProbe};
use crate::error::{Error, Result};
use crate::transport::SerialLink;

/// Silence that ends a drain: longer than the FTDI latency timer (16 ms) plus USB jitter.
const QUIET: Duration = Duration::from_millis(30);

/// How long old output may keep coming before we give up on it (a bulk read of ours is at
/// most about a second).
const OLD_OUTPUT_LIMIT: Duration = Duration::from_millis(2_500);

/// How long to wait for the first byte of the answer to a probe.
const PROBE_WAIT: Duration = Duration::from_millis(100);

/// Unanswered probes before giving up.
const SILENT_PROBES: usize = 6;

/// Probes in all: each `\n` also feeds one byte to a half-finished command, which answers
/// it with a byte that is no mode's answer (a bulk transfer has up to 16 data bytes).
const PROBES: usize = 24;

/// Most bytes kept while looking for a version string or a prompt.
const TEXT_LIMIT: usize = 64 * 1024;

/// How long the Bus Pirate takes to reset and print its banner (25 ms boot, ~200 bytes).
const RESET_WAIT: Duration = Duration::from_millis(1_000);

impl<L: SerialLink> BusPirate<L> {
    /// Takes the Bus Pirate from any state to configured binary SPI mode.
    pub(super) fn connect(&mut self) -> Result<()> {
        self.drain_old_output()?;
        self.reach_bitbang_mode()?;
        self.enter_spi_mode_and_probe()?;
        self.configure()
    }

    /// Discards what an earlier session left (a banner, the tail of a read); fails if the Bus
    /// Pirate keeps streaming, because sending then would overrun it.
    fn drain_old_output(&mut self) -> Result<()> {
        let start = Instant::now();
        let mut scratch = [0u8; 512];
        while self.io()?.read_some(&mut scratch, QUIET)? > 0 {
            if start.elapsed() > OLD_OUTPUT_LIMIT {
                return Err(Error::protocol(
                    DRIVER,
                    format!(
                        "the Bus Pirate on {} keeps sending (an interrupted read?); wait until it stops or unplug it and plug it back in",
                        self.port
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads what arrives until it has been quiet for [`QUIET`] or `complete` holds for the
    /// bytes so far, waiting at most `first` for the first byte.
    fn collect(&mut self, first: Duration, complete: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>> {
        let mut text = Vec::new();
        let mut buf = [0u8; 256];
        let mut wait = first;
        loop {
            let n = self.io()?.read_some(&mut buf, wait)?;
            if n == 0 || text.len() > TEXT_LIMIT {
                return Ok(text);
            }
            text.extend_from_slice(&buf[..n]);
            if complete(&text) {
                return Ok(text);
            }
            wait = QUIET;
        }
    }

    /// Reads until `done` holds for the bytes so far.
    fn read_until(
        &mut self,
        timeout: Duration,
        during: &str,
        done: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut text = Vec::new();
        let mut buf = [0u8; 256];
        while !done(&text) {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = if left.is_zero() {
                0
            } else {
                self.io()?.read_some(&mut buf, left)?
            };
            if n == 0 || text.len() > TEXT_LIMIT {
                return Err(if text.is_empty() {
                    Error::Timeout {
                        port: self.port.clone(),
                        waited: timeout,
                        during: during.to_string(),
                    }
                } else {
                    self.unexpected(during, &text[text.len().saturating_sub(32)..])
                });
            }
            text.extend_from_slice(&buf[..n]);
        }
        Ok(text)
    }

    /// Sends `out` and waits for `prefix` plus a version digit (`BBIO1`, `SPI1`); returns the
    /// version.
    fn expect_version(&mut self, out: &[u8], prefix: &[u8], during: &str) -> Result<u8> {
        self.send(out)?;
        let timeout = self.deadline(out.len(), 64, 0);
        let text = self.read_until(timeout, during, |t| {
            protocol::find_version(t, prefix).is_some()
        })?;
        Ok(protocol::find_version(&text, prefix).map_or(0, |(_, v)| v))
    }

    /// Finds out where the Bus Pirate is and takes it to bit-bang mode.
    fn reach_bitbang_mode(&mut self) -> Result<()> {
        let mut last_answer = Vec::new();
        let mut last_error = None;
        let mut silent = 0;
        for _ in 0..PROBES {
            if silent == SILENT_PROBES {
                break;
            }
            self.send(b"\n")?;
            // A prompt is the terminal's last word (old output was drained first); anything
            // else is read until it stops.
            let reply = self.collect(PROBE_WAIT, protocol::is_prompt)?;
            let attempt = match protocol::classify_probe(&reply) {
                ModeProbe::Binary => self.expect_version(
                    &[protocol::BBIO_RESET],
                    b"BBIO",
                    "returning from a binary mode to bit-bang mode (0x00 -> BBIO1)",
                ),
                ModeProbe::TerminalPrompt => self.binary_from_terminal(),
                ModeProbe::Silent => {
                    silent += 1;
                    continue;
                }
                ModeProbe::Unclear => {
                    last_answer = reply;
                    continue;
                }
            };
            match attempt {
                Ok(version) => {
                    self.versions.bitbang = version;
                    return Ok(());
                }
                // A data byte of a half-done command can look like a binary-mode answer:
                // keep probing.
                Err(e @ (Error::Timeout { .. } | Error::Protocol { .. })) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }
        if last_answer.is_empty() {
            Err(Error::Timeout {
                port: self.port.clone(),
                waited: PROBE_WAIT * SILENT_PROBES as u32,
                during: format!(
                    "looking for a Bus Pirate: {SILENT_PROBES} probes (\\n) got no answer; if one is connected at {} baud, it may be stuck in a command an interrupted run left half-sent: unplug it and plug it back in",
                    self.options.baud
                ),
            })
        } else {
            Err(self.unexpected(
                "looking for a Bus Pirate (no prompt, no binary-mode answer)",
                &last_answer[last_answer.len().saturating_sub(32)..],
            ))
        }
    }

    /// Terminal → bit-bang mode with twenty 0x00. The terminal counts 0x00 bytes until a
    /// reset, so if some went missing (or an earlier run sent some) the count is off: then
    /// the Bus Pirate is reset (`#`) to start the count afresh, and the zeros sent again.
    fn binary_from_terminal(&mut self) -> Result<u8> {
        let zeros = [0u8; protocol::ZEROS_FOR_BINARY];
        let during = "entering binary mode from the terminal (20 x 0x00 -> BBIO1)";
        match self.expect_version(&zeros, b"BBIO", during) {
            Err(Error::Timeout { .. }) => {
                self.send(b"#\n")?;
                let resetting =
                    "resetting the Bus Pirate from its terminal (# -> RESET, banner, HiZ>)";
                self.read_until(RESET_WAIT, resetting, protocol::is_prompt)?;
                self.expect_version(&zeros, b"BBIO", during)
            }
            other => other,
        }
    }

    /// Bit-bang mode → binary SPI mode (`01` → `SPI1`).
    fn enter_spi_mode(&mut self) -> Result<()> {
        self.versions.spi = self.expect_version(
            &[protocol::ENTER_SPI],
            b"SPI",
            "entering binary SPI mode (0x01 -> SPI1)",
        )?;
        Ok(())
    }

    /// Bit-bang mode → binary SPI mode (`01` → `SPI1`) with the write-then-read probe
    /// (`05 00 00 00 00`, answered `01` from firmware 5.10 on) in the same burst.
    fn enter_spi_mode_and_probe(&mut self) -> Result<()> {
        self.features.write_then_read = false;
        if !self.options.write_then_read {
            return self.enter_spi_mode();
        }
        let mut out = vec![protocol::ENTER_SPI];
        out.extend(protocol::write_then_read_header(0));
        self.send(&out)?;
        let during = "entering binary SPI mode and probing write-then-read (01 05 00 00 00 00)";
        let timeout = self.deadline(out.len(), 64, 0);
        // Up to the byte after `SPI1`: the probe's answer.
        let text = self.read_until(timeout, during, |t| {
            protocol::find_version(t, b"SPI").is_some_and(|(end, _)| t.len() > end)
        })?;
        let Some((end, version)) = protocol::find_version(&text, b"SPI") else {
            return Err(self.unexpected(during, &text));
        };
        self.versions.spi = version;
        if text[end] == protocol::ACK {
            self.features.write_then_read = true;
            Ok(())
        } else {
            // Before 5.10: `05` is unknown, and its four 0x00 took the firmware back to
            // bit-bang mode (four BBIO1).
            self.enter_spi_mode()
        }
    }

    /// Sets pins, speed and SPI mode 0, and probes the AVR extended commands (one round
    /// trip).
    fn configure(&mut self) -> Result<()> {
        let mut out = vec![
            self.peripherals(false),
            self.speed.command(),
            protocol::spi_config(!self.options.pullups),
        ];
        if self.options.avr_extended {
            out.extend([protocol::AVR_EXTENDED, protocol::AVR_EXTENDED_VERSION]);
        }
        let during = "configuring power, pins, SPI speed and mode";
        let acks = self.exchange(&out, 3, 0, during)?;
        protocol::expect_acks(&acks, during)?;
        if self.options.power && self.powered_at.is_none() {
            self.powered_at = Some(Instant::now());
        }
        self.features.avr_extended = None;
        if self.options.avr_extended {
            let during = "probing the AVR extended commands (06 01)";
            let timeout = self.deadline(2, 5, 0);
            let first = self.receive(1, timeout, during)?;
            let rest = self.receive(protocol::extended_probe_rest(first[0]), timeout, during)?;
            let reply = [first, rest].concat();
            if let ExtendedProbe::Present(version) = protocol::decode_extended_probe(&reply)? {
                self.features.avr_extended = Some(version);
            }
        }
        self.desynced = false;
        Ok(())
    }

    /// Leaves binary mode for the terminal: `00` → `BBIO1` (pins to inputs, supplies off, the
    /// target runs), then `0F` → `01` and the reset banner up to the `HiZ>` prompt.
    /// Both commands go in one burst: the firmware takes them in order.
    pub(super) fn exit_to_terminal(&mut self) -> Result<()> {
        self.send(&[protocol::BBIO_RESET, protocol::RESET_TO_TERMINAL])?;
        let during =
            "leaving binary mode for the terminal (0x00 -> BBIO1, 0x0F -> 01, banner, HiZ>)";
        let text = self.read_until(RESET_WAIT, during, protocol::is_prompt)?;
        match protocol::find_version(&text, b"BBIO") {
            Some((after, _)) if after < text.len() => protocol::expect_ack(text[after], during),
            _ => Err(self.unexpected(during, &text[..text.len().min(32)])),
        }
    }
}
