//! `sim`: an ideal programmer wired straight to an emulated target, with no protocol in between.
//!
//! It exists for fast tests of the job layer and as the reference the real drivers are compared
//! against: every ISP instruction goes to the [`Socket`](crate::emulate::socket::Socket) at a
//! fixed SCK, and nothing else costs time.

use super::{Capabilities, Programmer, ProgrammerInfo};
use crate::emulate::socket::{SharedSocket, lock};
use crate::error::{Error, Result};
use crate::isp::{self, Instruction};
use crate::part::Part;

/// The default ISP clock: safe for a factory-fresh chip at 1 MHz.
pub const DEFAULT_SCK_HZ: u32 = 125_000;

/// An ideal programmer on an emulated socket.
pub struct SimProgrammer {
    socket: SharedSocket,
    sck_hz: u32,
    hang_up_after: Option<u64>,
    commands: u64,
}

impl SimProgrammer {
    /// A programmer on `socket`.
    pub fn new(socket: SharedSocket) -> Self {
        SimProgrammer {
            socket,
            sck_hz: DEFAULT_SCK_HZ,
            hang_up_after: None,
            commands: 0,
        }
    }

    /// Makes the programmer "unplugged" after `n` ISP instructions (for tests of mid-job loss).
    pub fn hang_up_after(mut self, n: u64) -> Self {
        self.hang_up_after = Some(n);
        self
    }

    /// The socket.
    pub fn socket(&self) -> &SharedSocket {
        &self.socket
    }
}

impl Programmer for SimProgrammer {
    fn info(&self) -> ProgrammerInfo {
        ProgrammerInfo {
            driver: "sim",
            firmware: "ideal programmer (no protocol)".into(),
            port: "emulated".into(),
            capabilities: Capabilities {
                set_sck: true,
                sck_range_hz: Some((1_000, 8_000_000)),
                read_chunk: 0,
            },
        }
    }

    fn enter(&mut self, _part: &Part) -> Result<()> {
        let mut s = lock(&self.socket);
        s.set_reset(false);
        s.set_reset(true);
        s.advance(std::time::Duration::from_millis(20));
        let reply = s.transfer(isp::programming_enable(), self.sck_hz);
        if isp::in_sync(reply) {
            Ok(())
        } else {
            Err(Error::NoTarget {
                detail: "Programming Enable was not echoed".into(),
                causes: crate::job::detect::no_target_causes("sim", Some(self.sck_hz)),
            })
        }
    }

    fn leave(&mut self) -> Result<()> {
        lock(&self.socket).set_reset(false);
        Ok(())
    }

    fn command(&mut self, cmd: Instruction) -> Result<Instruction> {
        self.commands += 1;
        if self.hang_up_after.is_some_and(|n| self.commands > n) {
            return Err(Error::Link {
                port: "emulated".into(),
                reason: "the programmer was unplugged".into(),
            });
        }
        Ok(lock(&self.socket).transfer(cmd, self.sck_hz))
    }

    fn set_sck(&mut self, hz: u32) -> Result<u32> {
        self.sck_hz = hz.clamp(1_000, 8_000_000);
        Ok(self.sck_hz)
    }

    fn sck_hz(&self) -> Option<u32> {
        Some(self.sck_hz)
    }

    fn wait(&mut self, duration: std::time::Duration) {
        lock(&self.socket).advance(duration);
    }
}
