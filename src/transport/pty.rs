//! Pseudo-terminals for serial emulators (Unix).
//!
//! An emulated programmer serves the master side of a PTY; the host (our own
//! [`super::SerialPortLink`], or avrdude) opens the slave path as if it were `/dev/ttyACM0`.
//! So the real serial code path runs in tests, byte for byte.
//!
//! What the master can and cannot see of the host:
//!
//! - **Open and close** (Linux): while no process has the slave open, polling the master
//!   reports a hang-up. [`Pty::recv`] turns the transitions into [`PtyEvent::HostOpened`] and
//!   [`PtyEvent::HostClosed`]. This is also the closest thing to DTR an emulator gets: opening
//!   a real port raises DTR and closing it (HUPCL) drops it.
//! - **DTR and RTS: not at all.** A PTY has no modem lines; the slave answers TIOCMBIS/TIOCMSET
//!   with ENOTTY, so nothing reaches the master. Packet mode (TIOCPKT) reports only flushes
//!   and flow-control changes, never modem lines. Emulators that model the DTR auto-reset
//!   must use [`super::MemoryLink`], where line changes arrive in order with the data.
//! - **Baud rate**: the slave's termios are readable from the master, see [`Pty::host_baud`].
//!
//! avrdude (7.1) opens a slave path or a symlink to it like a real port. `-c avrisp` never
//! touches the modem lines; `-c arduino` logs `ioctl("TIOCMGET"): Inappropriate ioctl for
//! device` at each reset attempt and carries on. Our own [`super::SerialPortLink`] takes the
//! same ENOTTY as "no modem lines" and stops trying.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{deadline_after, link_lost};
use crate::error::{Error, Result};

/// While no host has the slave open: the longest poll (to notice an open) and the nap
/// between polls (the master then reports a hang-up at once, so it must not be polled in a
/// tight loop).
const SLICE: Duration = Duration::from_millis(20);

/// What [`Pty::recv`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtyEvent {
    /// This many bytes from the host were copied into the buffer.
    Data(usize),
    /// A host opened the slave. Reported before any of its bytes.
    HostOpened,
    /// The last host closed the slave; bytes it sent before closing were all delivered.
    HostClosed,
    /// Nothing happened within the timeout.
    Idle,
}

/// A PTY pair whose master this process serves; the slave is for the host to open.
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
    slave_path: PathBuf,
    /// The symlink made by [`Pty::symlink_at`], removed again on drop.
    link: Option<PathBuf>,
    /// Whether a host has the slave open, as last reported by [`Pty::recv`].
    host_open: bool,
    /// Bytes read while reporting [`PtyEvent::HostOpened`], handed out next.
    pending: Vec<u8>,
}

impl Pty {
    /// Creates a PTY pair with the slave in raw mode (no echo, no line editing, no CR/LF
    /// translation), ready for a host to open [`Pty::slave_path`].
    pub fn open() -> Result<Pty> {
        let failed = |what: &str, e: io::Error| Error::Open {
            port: "a new PTY".into(),
            reason: format!("{what}: {e}"),
            hint: "PTYs need /dev/ptmx and a mounted /dev/pts".into(),
        };
        let (mut master, mut slave): (RawFd, RawFd) = (-1, -1);
        // SAFETY: openpty writes two descriptors; name, termios and winsize may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc == -1 {
            return Err(failed("openpty", io::Error::last_os_error()));
        }
        // SAFETY: openpty succeeded, so both descriptors are open and now owned here only.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        set_cloexec(&master).map_err(|e| failed("FD_CLOEXEC", e))?;
        let slave_path = tty_name(&slave).map_err(|e| failed("ttyname", e))?;
        make_raw(&slave).map_err(|e| failed("raw mode", e))?;
        set_nonblocking(&master).map_err(|e| failed("O_NONBLOCK", e))?;
        // The slave is closed here on purpose: the master then reports a hang-up until a
        // host opens it, which is how host open/close is seen. Its termios stay set.
        drop(slave);
        Ok(Pty {
            master,
            slave_path,
            link: None,
            host_open: false,
            pending: Vec::new(),
        })
    }

    /// The slave device, e.g. `/dev/pts/3`: the path the host opens.
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// The symlink made by [`Pty::symlink_at`], if any.
    pub fn link_path(&self) -> Option<&Path> {
        self.link.as_deref()
    }

    /// A name for messages: the symlink if there is one, else the slave path.
    fn port_name(&self) -> String {
        self.link
            .as_deref()
            .unwrap_or(&self.slave_path)
            .display()
            .to_string()
    }

    /// Makes `path` a symlink to the slave (for `emulate --link PATH`), replacing a stale
    /// symlink but never a regular file or anything else. The link is removed when the `Pty`
    /// is dropped, if it still points at this PTY.
    pub fn symlink_at(&mut self, path: &Path) -> Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            Ok(_) => {
                return Err(Error::invalid(format!(
                    "{} exists and is not a symlink; refusing to replace it with a link to the emulator's PTY",
                    path.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::file("cannot inspect", path, e)),
        }
        let file_name = path
            .file_name()
            .ok_or_else(|| Error::invalid(format!("{} is not a file path", path.display())))?;
        // Made beside the target and renamed over it, so a host never sees the path missing.
        let temp = path.with_file_name(format!(
            ".{}.{}.tmp",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        if std::fs::symlink_metadata(&temp).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = std::fs::remove_file(&temp);
        }
        std::os::unix::fs::symlink(&self.slave_path, &temp)
            .map_err(|e| Error::file("cannot create a symlink at", &temp, e))?;
        if let Err(e) = std::fs::rename(&temp, path) {
            let _ = std::fs::remove_file(&temp);
            return Err(Error::file("cannot create a symlink at", path, e));
        }
        if let Some(old) = self.link.replace(path.to_path_buf())
            && old != path
        {
            self.remove_link_if_ours(&old);
        }
        Ok(())
    }

    /// Removes `link` if it is a symlink to this PTY's slave (someone may have replaced it).
    fn remove_link_if_ours(&self, link: &Path) {
        if std::fs::read_link(link).is_ok_and(|target| target == self.slave_path) {
            let _ = std::fs::remove_file(link);
        }
    }

    /// Whether a host had the slave open at the last [`Pty::recv`].
    pub fn host_connected(&self) -> bool {
        self.host_open
    }

    /// Waits up to `timeout` for the next thing from the host: its bytes, or it opening or
    /// closing the slave. Never spins: while no host is connected it checks every 20 ms.
    /// With an empty `buf` it returns [`PtyEvent::Idle`] at once.
    pub fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<PtyEvent> {
        if buf.is_empty() {
            return Ok(PtyEvent::Idle);
        }
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(PtyEvent::Data(n));
        }
        let deadline = deadline_after(timeout);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // With a host, a close wakes the poll by itself; without one, an open does not,
            // so look again every slice.
            let wait = if self.host_open {
                left
            } else {
                left.min(SLICE)
            };
            let ready = poll_one(&self.master, libc::POLLIN, wait).map_err(|e| {
                link_lost(&self.port_name(), format!("polling the PTY master: {e}"))
            })?;
            self.check_poll_error(ready)?;
            let hung_up = if ready & libc::POLLIN != 0 {
                match self.read_master(buf)? {
                    MasterRead::Event(event) => return Ok(event),
                    MasterRead::HungUp => true,
                    MasterRead::Retry => false,
                }
            } else {
                ready & libc::POLLHUP != 0
            };
            if hung_up {
                if self.host_open {
                    return Ok(self.host_closed());
                }
                // No host: the hang-up stays reported, so nap instead of polling again.
                std::thread::sleep(left.min(SLICE));
            } else if ready == 0 && !self.host_open {
                // A quiet master without a hang-up means someone has the slave open.
                self.host_open = true;
                return Ok(PtyEvent::HostOpened);
            }
            if left.is_zero() {
                return Ok(PtyEvent::Idle);
            }
        }
    }

    /// Fails on an error condition of the master, which poll would otherwise report again at
    /// once, forever.
    fn check_poll_error(&self, revents: libc::c_short) -> Result<()> {
        if revents & (libc::POLLERR | libc::POLLNVAL) != 0 && revents & libc::POLLHUP == 0 {
            return Err(link_lost(
                &self.port_name(),
                format!("the PTY master reports an error (poll revents 0x{revents:04X})"),
            ));
        }
        Ok(())
    }

    /// Reads the master after poll said readable.
    fn read_master(&mut self, buf: &mut [u8]) -> Result<MasterRead> {
        let mut scratch = [0u8; 512];
        let target: &mut [u8] = if self.host_open { buf } else { &mut scratch };
        match read_fd(&self.master, target) {
            Ok(0) => Ok(MasterRead::HungUp),
            Ok(n) if self.host_open => Ok(MasterRead::Event(PtyEvent::Data(n))),
            Ok(n) => {
                self.pending.extend_from_slice(&target[..n]);
                self.host_open = true;
                Ok(MasterRead::Event(PtyEvent::HostOpened))
            }
            // Linux: reading the master while no slave is open fails with EIO.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(MasterRead::HungUp),
            Err(e) if is_retry(&e) => Ok(MasterRead::Retry),
            Err(e) => Err(link_lost(
                &self.port_name(),
                format!("reading the PTY master: {e}"),
            )),
        }
    }

    fn host_closed(&mut self) -> PtyEvent {
        self.host_open = false;
        // Drop what the closed host left unread, so the next host starts clean.
        // SAFETY: tcflush on a descriptor we own.
        unsafe { libc::tcflush(self.master.as_raw_fd(), libc::TCIOFLUSH) };
        PtyEvent::HostClosed
    }

    /// Sends bytes to the host, waiting at most `timeout` for buffer space. Fails with
    /// [`Error::Link`] when no host has the slave open (the bytes would wait for the next
    /// host and confuse it), [`Error::Timeout`] when the host does not read.
    pub fn write_all(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        let deadline = deadline_after(timeout);
        let mut sent = 0;
        while sent < data.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let ready = poll_one(&self.master, libc::POLLOUT, left.min(SLICE)).map_err(|e| {
                link_lost(&self.port_name(), format!("polling the PTY master: {e}"))
            })?;
            self.check_poll_error(ready)?;
            if ready & libc::POLLHUP != 0 {
                return Err(link_lost(&self.port_name(), "the host closed the port"));
            }
            if ready & libc::POLLOUT != 0 {
                match write_fd(&self.master, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                        return Err(link_lost(&self.port_name(), "the host closed the port"));
                    }
                    Err(e) if is_retry(&e) => {}
                    Err(e) => {
                        return Err(link_lost(
                            &self.port_name(),
                            format!("writing the PTY master: {e}"),
                        ));
                    }
                }
            } else if left.is_zero() {
                return Err(Error::Timeout {
                    port: self.port_name(),
                    waited: timeout,
                    during: format!(
                        "the host did not read: {sent} of {} byte(s) sent",
                        data.len()
                    ),
                });
            }
        }
        Ok(())
    }

    /// The baud rate the host set on the slave, if it is a standard rate. A real programmer
    /// at another rate would see garbage; an emulator can use this to behave the same.
    pub fn host_baud(&self) -> Option<u32> {
        // serialport sets rates through termios2 (BOTHER), which the classic speed codes
        // cannot show; termios2 holds the number itself.
        #[cfg(all(
            target_os = "linux",
            not(any(target_arch = "powerpc", target_arch = "powerpc64"))
        ))]
        if let Some(baud) = termios2_speed(&self.master) {
            return Some(baud);
        }
        let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the termios on success; on a master it reads the slave's.
        if unsafe { libc::tcgetattr(self.master.as_raw_fd(), termios.as_mut_ptr()) } == -1 {
            return None;
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let termios = unsafe { termios.assume_init() };
        // SAFETY: reads a field of a valid termios.
        speed_to_baud(unsafe { libc::cfgetospeed(&termios) })
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            self.remove_link_if_ours(&link);
        }
    }
}

/// The output rate from the termios2 of a terminal (on a PTY master: of its slave).
#[cfg(all(
    target_os = "linux",
    not(any(target_arch = "powerpc", target_arch = "powerpc64"))
))]
fn termios2_speed(fd: &OwnedFd) -> Option<u32> {
    let mut termios = std::mem::MaybeUninit::<libc::termios2>::uninit();
    // SAFETY: TCGETS2 fills one termios2 through the pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCGETS2, termios.as_mut_ptr()) } == -1 {
        return None;
    }
    // SAFETY: initialised by the successful ioctl above.
    let termios = unsafe { termios.assume_init() };
    Some(termios.c_ospeed).filter(|&baud| baud > 0)
}

/// Maps a termios speed to bits per second.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn speed_to_baud(speed: libc::speed_t) -> Option<u32> {
    const TABLE: &[(libc::speed_t, u32)] = &[
        (libc::B300, 300),
        (libc::B600, 600),
        (libc::B1200, 1200),
        (libc::B2400, 2400),
        (libc::B4800, 4800),
        (libc::B9600, 9600),
        (libc::B19200, 19200),
        (libc::B38400, 38400),
        (libc::B57600, 57600),
        (libc::B115200, 115_200),
        (libc::B230400, 230_400),
        (libc::B460800, 460_800),
        (libc::B500000, 500_000),
        (libc::B921600, 921_600),
        (libc::B1000000, 1_000_000),
        (libc::B2000000, 2_000_000),
    ];
    TABLE
        .iter()
        .find(|(code, _)| *code == speed)
        .map(|&(_, baud)| baud)
}

/// BSD and macOS store the rate itself.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn speed_to_baud(speed: libc::speed_t) -> Option<u32> {
    u32::try_from(speed).ok().filter(|&baud| baud > 0)
}

/// The outcome of one read of the master.
enum MasterRead {
    Event(PtyEvent),
    /// No host has the slave open.
    HungUp,
    /// A spurious wake-up.
    Retry,
}

fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Polls one descriptor; returns its revents (0 on timeout, or when interrupted).
fn poll_one(fd: &OwnedFd, events: libc::c_short, timeout: Duration) -> io::Result<libc::c_short> {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // Round up, so a 0.5 ms remainder still waits instead of spinning on a 0 ms poll.
    let millis = timeout.as_micros().div_ceil(1000);
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut pollfd, 1, millis) };
    if rc == -1 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(pollfd.revents)
}

fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads at most buf.len() bytes into buf.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn write_fd(fd: &OwnedFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: writes at most data.len() bytes from data.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    // SAFETY: as above.
    if flags == -1
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC) } == -1
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags == -1
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } == -1
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raw mode: bytes pass unchanged in both directions, as on a USB CDC port.
fn make_raw(fd: &OwnedFd) -> io::Result<()> {
    let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: tcgetattr fills the termios on success.
    if unsafe { libc::tcgetattr(fd.as_raw_fd(), termios.as_mut_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful tcgetattr above.
    let mut termios = unsafe { termios.assume_init() };
    // SAFETY: cfmakeraw only edits the struct.
    unsafe { libc::cfmakeraw(&mut termios) };
    // SAFETY: a valid termios for a descriptor we own.
    if unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &termios) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The device path of a terminal descriptor.
fn tty_name(fd: &OwnedFd) -> io::Result<PathBuf> {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: ttyname_r writes a NUL-terminated name of at most buf.len() bytes.
    let rc = unsafe { libc::ttyname_r(fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: on success the buffer holds a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(PathBuf::from(name.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_speeds_map_to_their_rates() {
        #[cfg(target_os = "linux")]
        {
            assert_eq!(speed_to_baud(libc::B19200), Some(19200));
            assert_eq!(speed_to_baud(libc::B115200), Some(115_200));
            assert_eq!(speed_to_baud(libc::B0), None);
        }
    }
}
