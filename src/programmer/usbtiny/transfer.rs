//! Control transfers to a USBtiny: a timeout on every one, retries where they are safe, and
//! errors that say which request failed and what it was doing.
//!
//! avrdude retries an IN request up to 10 times when it does not get the bytes it asked for,
//! whatever the cause, with 500 ms plus the expected firmware time as each timeout. Here an
//! IN or OUT request is tried [`super::Options::retries`] more times after a timeout or a
//! short reply (every USBtiny request is idempotent: block requests restart at the address
//! they carry), as long as all tries fit [`OPERATION_BUDGET`]; errors that cannot be cured by
//! trying again (the device is gone, it refused the request) end the operation at once.

use std::time::Duration;

use super::protocol::{self, request_name};
use crate::error::{Error, Result};
use crate::transport::{UsbLink, request_type};

/// Time allowed per data packet on top of the firmware's work (a slow host schedules one
/// low-speed transaction per 1 ms frame; ×5 for margin).
const PACKET_ALLOWANCE: Duration = Duration::from_millis(5);

/// The most a failing transfer may take over all its tries, so that a dead link fails an
/// operation within 3 s (unless a single try needs longer: a slow clock and a long block).
pub const OPERATION_BUDGET: Duration = Duration::from_secs(3);

/// The link to the programmer, with the timeout and retry policy.
pub(super) struct Transfers<L> {
    link: L,
    retries: u8,
    base_timeout: Duration,
}

/// One request, for messages.
#[derive(Clone, Copy)]
pub(super) struct Request {
    pub request: u8,
    pub value: u16,
    pub index: u16,
}

impl Request {
    /// `SPI (value 0x53AC, index 0x0000)`.
    fn describe(&self) -> String {
        format!(
            "{} (value 0x{:04X}, index 0x{:04X})",
            request_name(self.request),
            self.value,
            self.index
        )
    }
}

/// What the last failed attempt saw.
enum Failure {
    Timeout(Error),
    Short { got: usize },
}

impl<L: UsbLink> Transfers<L> {
    pub fn new(link: L, retries: u8, base_timeout: Duration) -> Self {
        Transfers {
            link,
            retries,
            base_timeout,
        }
    }

    pub fn name(&self) -> &str {
        self.link.name()
    }

    /// The timeout of a transfer of `bytes` data bytes during which the firmware works for
    /// about `work` (an estimate; doubled for hosts that load it with NAK interrupts harder).
    fn timeout(&self, bytes: usize, work: Duration) -> Duration {
        let packets = u32::try_from(bytes.div_ceil(8) + 2).unwrap_or(u32::MAX);
        self.base_timeout
            .saturating_add(work.saturating_mul(3))
            .saturating_add(PACKET_ALLOWANCE.saturating_mul(packets))
    }

    /// How many tries of a transfer with this timeout fit the budget (at least one).
    fn tries(&self, timeout: Duration) -> u32 {
        let fit = OPERATION_BUDGET.as_nanos() / timeout.as_nanos().max(1);
        u32::try_from(fit)
            .unwrap_or(u32::MAX)
            .clamp(1, u32::from(self.retries) + 1)
    }

    /// A request without data. avrdude sends these device-to-host with wLength 0, and so do
    /// we, so that the emulated firmware sees exactly what the real one sees from avrdude.
    pub fn control(&mut self, req: Request, what: &dyn Fn() -> String) -> Result<()> {
        self.read(req, &mut [], Duration::ZERO, what)
    }

    /// An IN request that must return exactly `buf.len()` bytes.
    pub fn read(
        &mut self,
        req: Request,
        buf: &mut [u8],
        work: Duration,
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let timeout = self.timeout(buf.len(), work);
        let tries = self.tries(timeout);
        let mut last = None;
        for _ in 0..tries {
            match self.link.control_in(
                request_type::VENDOR_IN,
                req.request,
                req.value,
                req.index,
                buf,
                timeout,
            ) {
                Ok(got) if got == buf.len() => return Ok(()),
                Ok(got) => last = Some(Failure::Short { got }),
                Err(e @ Error::Timeout { .. }) => last = Some(Failure::Timeout(e)),
                Err(e) => return Err(self.context(e, req, what)),
            }
        }
        Err(self.give_up(last, tries, req, buf.len(), what))
    }

    /// An OUT request carrying `data`.
    pub fn write(
        &mut self,
        req: Request,
        data: &[u8],
        work: Duration,
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let timeout = self.timeout(data.len(), work);
        let tries = self.tries(timeout);
        let mut last = None;
        for _ in 0..tries {
            match self.link.control_out(
                request_type::VENDOR_OUT,
                req.request,
                req.value,
                req.index,
                data,
                timeout,
            ) {
                Ok(sent) if sent == data.len() => return Ok(()),
                Ok(sent) => last = Some(Failure::Short { got: sent }),
                Err(e @ Error::Timeout { .. }) => last = Some(Failure::Timeout(e)),
                Err(e) => return Err(self.context(e, req, what)),
            }
        }
        Err(self.give_up(last, tries, req, data.len(), what))
    }

    /// The error after the last attempt.
    fn give_up(
        &self,
        last: Option<Failure>,
        tries: u32,
        req: Request,
        wanted: usize,
        what: &dyn Fn() -> String,
    ) -> Error {
        match last {
            Some(Failure::Timeout(e)) => {
                let e = self.context(e, req, what);
                match e {
                    Error::Timeout {
                        port,
                        waited,
                        during,
                    } => Error::Timeout {
                        port,
                        waited,
                        during: format!("{during}; {tries} tries"),
                    },
                    other => other,
                }
            }
            Some(Failure::Short { got }) => {
                let why = protocol::check_block(wanted, got).err().unwrap_or_default();
                let hint = if got == 0 {
                    " (the firmware ignores SPI and block requests until POWERUP: enter programming mode first)"
                } else {
                    ""
                };
                Error::protocol(
                    "usbtiny",
                    format!(
                        "{}: {} {why} in each of {tries} tries{hint}",
                        what(),
                        req.describe()
                    ),
                )
            }
            None => Error::protocol("usbtiny", format!("{}: no attempt was made", what())),
        }
    }

    /// Puts the operation and the request into an error from the link.
    fn context(&self, e: Error, req: Request, what: &dyn Fn() -> String) -> Error {
        let doing = format!("{}: {}", what(), req.describe());
        match e {
            Error::Timeout { port, waited, .. } => Error::Timeout {
                port,
                waited,
                during: doing,
            },
            Error::Link { port, reason } => Error::Link {
                port,
                reason: format!("{doing}: {reason}"),
            },
            Error::Protocol { reason, .. } => {
                Error::protocol("usbtiny", format!("{doing}: {reason}"))
            }
            other => other,
        }
    }
}
