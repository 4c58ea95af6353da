//! Vendor control transfers to a low-speed USB programmer (USBtiny, USBasp): a timeout on
//! every one, retries where they are safe, and errors that say which request failed and what
//! it was doing.
//!
//! avrdude retries a USBtiny IN request up to 10 times when it does not get the bytes it asked
//! for, whatever the cause, with 500 ms plus the expected firmware time as each timeout. Here
//! an IN or OUT request is tried `retries` more times after a timeout or a short reply, as long
//! as all tries fit [`OPERATION_BUDGET`]; errors that cannot be cured by trying again (the
//! device is gone, it refused the request) end the operation at once. Drivers only send
//! requests that are safe to repeat (block requests carry their address and start over).

use std::time::{Duration, Instant};

use crate::emulate::socket::{SharedSocket, lock};
use crate::error::{Error, Result};
use crate::isp;
use crate::part::Part;
use crate::transport::{UsbLink, request_type};

/// Time allowed per data packet on top of the firmware's work (a slow host schedules one
/// low-speed transaction per 1 ms frame; ×5 for margin).
const PACKET_ALLOWANCE: Duration = Duration::from_millis(5);

/// The most a failing transfer may take over all its tries, so that a dead link fails an
/// operation within 3 s (unless a single try needs longer: a slow clock and a long block).
pub const OPERATION_BUDGET: Duration = Duration::from_secs(3);

/// Who is on the other end: for messages.
#[derive(Clone, Copy)]
pub struct Firmware {
    /// Driver id (`usbtiny`).
    pub driver: &'static str,
    /// The name of a request number (`SPI`).
    pub request_name: fn(u8) -> &'static str,
    /// Said when a request keeps coming back empty (the usual cause on this firmware).
    pub empty_reply_hint: &'static str,
}

/// The link to the programmer, with the timeout and retry policy.
pub struct Transfers<L> {
    link: L,
    firmware: Firmware,
    retries: u8,
    base_timeout: Duration,
}

/// One request, for messages.
#[derive(Clone, Copy)]
pub struct Request {
    /// bRequest.
    pub request: u8,
    /// wValue.
    pub value: u16,
    /// wIndex.
    pub index: u16,
}

impl Request {
    /// `SPI (value 0x53AC, index 0x0000)`.
    fn describe(&self, firmware: &Firmware) -> String {
        format!(
            "{} (value 0x{:04X}, index 0x{:04X})",
            (firmware.request_name)(self.request),
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
    /// The policy around `link`: `retries` more tries after a timeout or a short reply,
    /// `base_timeout` on top of the firmware's expected work.
    pub fn new(link: L, firmware: Firmware, retries: u8, base_timeout: Duration) -> Self {
        Transfers {
            link,
            firmware,
            retries,
            base_timeout,
        }
    }

    /// The link's name (for [`super::ProgrammerInfo::port`]).
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
        self.read_after(None, req, buf, work, what)
    }

    /// An IN request that must return exactly `buf.len()` bytes, each try preceded by
    /// `preamble` (a request without data that sets up state the request consumes, such as
    /// an address counter a failed try has moved on).
    pub fn read_after(
        &mut self,
        preamble: Option<Request>,
        req: Request,
        buf: &mut [u8],
        work: Duration,
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let wanted = buf.len();
        self.attempts(preamble, req, wanted, work, what, &mut |link, timeout| {
            link.control_in(
                request_type::VENDOR_IN,
                req.request,
                req.value,
                req.index,
                buf,
                timeout,
            )
        })
    }

    /// An IN request whose reply may be shorter than `buf`: returns how many bytes came.
    /// Only timeouts are retried (an empty reply is how old firmware says it does not know a
    /// request).
    pub fn read_up_to(
        &mut self,
        req: Request,
        buf: &mut [u8],
        work: Duration,
        what: &dyn Fn() -> String,
    ) -> Result<usize> {
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
                Ok(got) => return Ok(got),
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
        self.write_after(None, req, data, work, what)
    }

    /// An OUT request carrying `data`, each try preceded by `preamble` (see
    /// [`Transfers::read_after`]).
    pub fn write_after(
        &mut self,
        preamble: Option<Request>,
        req: Request,
        data: &[u8],
        work: Duration,
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        self.attempts(
            preamble,
            req,
            data.len(),
            work,
            what,
            &mut |link, timeout| {
                link.control_out(
                    request_type::VENDOR_OUT,
                    req.request,
                    req.value,
                    req.index,
                    data,
                    timeout,
                )
            },
        )
    }

    /// Tries `transfer` (which must move `wanted` bytes) as the policy allows.
    fn attempts(
        &mut self,
        preamble: Option<Request>,
        req: Request,
        wanted: usize,
        work: Duration,
        what: &dyn Fn() -> String,
        transfer: &mut dyn FnMut(&mut L, Duration) -> Result<usize>,
    ) -> Result<()> {
        let timeout = self.timeout(wanted, work);
        let tries = self.tries(timeout);
        let mut last = None;
        for _ in 0..tries {
            if let Some(pre) = preamble {
                let pre_timeout = self.timeout(0, Duration::ZERO);
                match self.link.control_in(
                    request_type::VENDOR_IN,
                    pre.request,
                    pre.value,
                    pre.index,
                    &mut [],
                    pre_timeout,
                ) {
                    Ok(_) => {}
                    Err(e @ Error::Timeout { .. }) => {
                        last = Some(Failure::Timeout(e));
                        continue;
                    }
                    Err(e) => return Err(self.context(e, pre, what)),
                }
            }
            match transfer(&mut self.link, timeout) {
                Ok(got) if got == wanted => return Ok(()),
                Ok(got) => last = Some(Failure::Short { got }),
                Err(e @ Error::Timeout { .. }) => last = Some(Failure::Timeout(e)),
                Err(e) => return Err(self.context(e, req, what)),
            }
        }
        Err(self.give_up(last, tries, req, wanted, what))
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
                let hint = if got == 0 {
                    format!(" ({})", self.firmware.empty_reply_hint)
                } else {
                    String::new()
                };
                Error::protocol(
                    self.firmware.driver,
                    format!(
                        "{}: {} received {got} of {wanted} byte(s) in each of {tries} tries{hint}",
                        what(),
                        req.describe(&self.firmware)
                    ),
                )
            }
            None => Error::protocol(
                self.firmware.driver,
                format!("{}: no attempt was made", what()),
            ),
        }
    }

    /// Puts the operation and the request into an error from the link.
    fn context(&self, e: Error, req: Request, what: &dyn Fn() -> String) -> Error {
        let doing = format!("{}: {}", what(), req.describe(&self.firmware));
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
                Error::protocol(self.firmware.driver, format!("{doing}: {reason}"))
            }
            other => other,
        }
    }
}

/// How the host waits: really, or by moving an emulated board's clock.
#[derive(Clone)]
pub enum HostClock {
    /// Wall time, from this instant.
    Real(Instant),
    /// The virtual clock of an emulated board.
    Virtual(SharedSocket),
}

impl HostClock {
    /// Time since the start (wall) or the board's virtual time.
    pub fn now(&self) -> Duration {
        match self {
            HostClock::Real(start) => start.elapsed(),
            HostClock::Virtual(socket) => Duration::from_nanos(lock(socket).now_ns()),
        }
    }

    /// Waits: sleeps, or moves the virtual clock.
    pub fn sleep(&self, duration: Duration) {
        match self {
            HostClock::Real(_) => std::thread::sleep(duration),
            HostClock::Virtual(socket) => lock(socket).advance(duration),
        }
    }
}

/// RDY/BSY polls after which a write counts as stuck even if the clock says otherwise (a
/// poll is a USB round trip of at least ~1 ms: this is far beyond any write time).
const MAX_POLLS: u32 = 10_000;

/// Waits until a write or erase that takes at most `max_us` has finished. `poll` sends Poll
/// RDY/BSY and returns the reply; `round_trip` is what the last instruction's transfer took.
/// The first poll is timed to sample just after the time is up (a round trip early, plus 1/32
/// of the time for the bytes clocked before the sample), then it polls until ready (no longer
/// than twice the time plus 50 ms). Parts without RDY/BSY wait the full time.
pub fn wait_until_ready(
    clock: &HostClock,
    part: &Part,
    max_us: u32,
    round_trip: Duration,
    what: &str,
    driver: &'static str,
    poll: &mut dyn FnMut() -> Result<isp::Instruction>,
) -> Result<()> {
    let max = Duration::from_micros(u64::from(max_us));
    if !part.rdy_bsy_poll {
        clock.sleep(max);
        return Ok(());
    }
    let start = clock.now();
    let first = (max + max / 32).saturating_sub(round_trip);
    if !first.is_zero() {
        clock.sleep(first);
    }
    let limit = max * 2 + Duration::from_millis(50);
    let mut polls = 0u32;
    loop {
        polls += 1;
        if !isp::is_busy(poll()?) {
            return Ok(());
        }
        let waited = clock.now().saturating_sub(start);
        // The count guards against a clock that does not move (a link that costs no time).
        if waited > limit || polls >= MAX_POLLS {
            return Err(Error::protocol(
                driver,
                format!(
                    "{what}: the target was still busy (RDY/BSY) after {polls} polls over {} ms; it may take {} ms",
                    waited.as_millis(),
                    max.as_millis()
                ),
            ));
        }
    }
}
