//! A real serial port (USB CDC, FTDI, CH340, or a PTY slave) as a [`SerialLink`].
//!
//! Opening, line settings and exclusivity come from the `serialport` crate. Reads wait in
//! short slices up to one total deadline, so a port whose device node disappears is noticed
//! even when the driver does not hang up. On Unix the descriptor is non-blocking and modem
//! lines are set with our own ioctl, so a PTY (which has no DTR/RTS) is told apart from an
//! unplugged device by its errno rather than by an error string.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serialport::{DataBits, ErrorKind, FlowControl, Parity, SerialPort, StopBits};

use super::{SerialLink, deadline_after, link_lost, read_exact_by};
use crate::catalog::UsbId;
use crate::error::{Error, Result};

#[cfg(unix)]
type NativePort = serialport::TTYPort;
#[cfg(windows)]
type NativePort = serialport::COMPort;

/// The longest single wait inside a read; between slices we check that the device still
/// exists, so an unplugged port is noticed within this time even if the driver stays silent.
const SLICE: Duration = Duration::from_millis(200);

/// Time a write may take on top of the bytes' own transmission time.
const WRITE_MARGIN: Duration = Duration::from_secs(2);

/// USB details of a serial port, as far as the OS tells.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsbPortInfo {
    /// Vendor and product id.
    pub id: UsbId,
    /// The device's serial number string.
    pub serial_number: Option<String>,
    /// The device's manufacturer string.
    pub manufacturer: Option<String>,
    /// The device's product string.
    pub product: Option<String>,
}

/// A serial port found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortInfo {
    /// What to open: `/dev/ttyACM0`, `COM3`.
    pub name: String,
    /// USB details when the port is a USB device.
    pub usb: Option<UsbPortInfo>,
}

impl PortInfo {
    /// The USB vendor:product id, if the port is a USB device.
    pub fn usb_id(&self) -> Option<UsbId> {
        self.usb.as_ref().map(|usb| usb.id)
    }
}

impl std::fmt::Display for PortInfo {
    /// `/dev/ttyACM0 (1B4F:9206 SparkFun Pro Micro)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(usb) = &self.usb {
            write!(f, " ({}", usb.id)?;
            let words: Vec<&str> = [usb.manufacturer.as_deref(), usb.product.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            if !words.is_empty() {
                write!(f, " {}", words.join(" "))?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The serial ports on this machine, sorted by name. Never fails: a machine without ports (or
/// without sysfs) gives an empty list.
pub fn list_ports() -> Vec<PortInfo> {
    #[cfg(target_os = "linux")]
    {
        // Our own sysfs scan: the crate's libudev-free scan panics when /sys/class/tty is
        // missing (containers), and ours also skips the placeholder ttyS* without a UART.
        ports_from_sysfs(Path::new("/sys/class/tty"), Path::new("/dev"))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut ports: Vec<PortInfo> = serialport::available_ports()
            .unwrap_or_default()
            .into_iter()
            .map(port_info_from_crate)
            .collect();
        ports.sort_by_key(|p| natural_key(&p.name));
        ports
    }
}

#[cfg(not(target_os = "linux"))]
fn port_info_from_crate(info: serialport::SerialPortInfo) -> PortInfo {
    let usb = match info.port_type {
        serialport::SerialPortType::UsbPort(usb) => Some(UsbPortInfo {
            id: UsbId::new(usb.vid, usb.pid),
            serial_number: usb.serial_number,
            manufacturer: usb.manufacturer,
            product: usb.product,
        }),
        _ => None,
    };
    PortInfo {
        name: info.port_name,
        usb,
    }
}

/// Scans a Linux sysfs `class/tty` directory for serial ports whose node exists in `dev`.
///
/// A tty counts as a serial port when it has a `device` link; USB details come from the
/// nearest ancestor of that device holding `idVendor`/`idProduct` (the interface's parent for
/// CDC ACM, one level further up for usb-serial adapters). 8250-style ports whose `type` is 0
/// (no UART behind the name) are left out. [`list_ports`] calls this with `/sys/class/tty`
/// and `/dev`; tests point it at a fake tree.
pub fn ports_from_sysfs(class_tty: &Path, dev: &Path) -> Vec<PortInfo> {
    let Ok(entries) = std::fs::read_dir(class_tty) else {
        return Vec::new();
    };
    let mut ports: Vec<PortInfo> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let tty_dir = entry.path();
            let device = tty_dir.join("device");
            if !device.exists() || !dev.join(&name).exists() {
                return None;
            }
            let usb = usb_info_above(&device);
            if usb.is_none() && read_attr(&tty_dir, "type").as_deref() == Some("0") {
                return None;
            }
            Some(PortInfo {
                name: dev.join(&name).to_string_lossy().into_owned(),
                usb,
            })
        })
        .collect();
    ports.sort_by_key(|p| natural_key(&p.name));
    ports
}

/// How far above a tty's device to look for the USB device: interface (ACM) or
/// interface/port (usb-serial), plus one level of slack.
const USB_SEARCH_DEPTH: usize = 4;

/// USB details from the first ancestor of `device` that has `idVendor` and `idProduct`.
fn usb_info_above(device: &Path) -> Option<UsbPortInfo> {
    let device = device.canonicalize().ok()?;
    device.ancestors().take(USB_SEARCH_DEPTH).find_map(|dir| {
        let vid = parse_hex_u16(&read_attr(dir, "idVendor")?)?;
        let pid = parse_hex_u16(&read_attr(dir, "idProduct")?)?;
        Some(UsbPortInfo {
            id: UsbId::new(vid, pid),
            serial_number: read_attr(dir, "serial"),
            manufacturer: read_attr(dir, "manufacturer"),
            product: read_attr(dir, "product"),
        })
    })
}

/// A sysfs attribute, trimmed; `None` when missing, unreadable or empty.
fn read_attr(dir: &Path, attr: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(attr)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// One to four hex digits, as sysfs writes `idVendor` (`1b4f`).
fn parse_hex_u16(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

/// Sort key that puts `ttyACM2` before `ttyACM10`.
fn natural_key(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    (stem.to_string(), number.parse().unwrap_or(0))
}

/// A serial port opened 8N1 without flow control, exclusively (on Unix: `TIOCEXCL` and an
/// exclusive `flock`, so a second open by us or by avrdude fails instead of stealing bytes).
pub struct SerialPortLink {
    port: NativePort,
    name: String,
    baud: u32,
    /// Cleared once the port answered that it has no modem lines (a PTY).
    modem_lines: bool,
}

impl std::fmt::Debug for SerialPortLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialPortLink")
            .field("name", &self.name)
            .field("baud", &self.baud)
            .finish_non_exhaustive()
    }
}

impl SerialPortLink {
    /// Opens `path` at `baud`, 8N1, no flow control.
    ///
    /// Fails with [`Error::Open`] whose hint says what to do: the ports that exist when the
    /// path does not, the dialout group or udev rules on permission denied, the programs that
    /// usually hold a busy port.
    pub fn open(path: &str, baud: u32) -> Result<SerialPortLink> {
        if baud == 0 {
            return Err(Error::invalid(format!(
                "baud rate 0 is not valid for {path}"
            )));
        }
        let builder = serialport::new(path, baud)
            .data_bits(DataBits::Eight)
            .parity(Parity::None)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(SLICE);
        #[cfg(unix)]
        let builder = builder.exclusive(true);
        let port = builder.open_native().map_err(|e| open_error(path, &e))?;
        #[cfg(unix)]
        unix::set_nonblocking(&port).map_err(|e| Error::Open {
            port: path.to_string(),
            reason: format!("cannot make the port non-blocking: {e}"),
            hint: "is this a serial port?".into(),
        })?;
        Ok(SerialPortLink {
            port,
            name: path.to_string(),
            baud,
            modem_lines: true,
        })
    }

    /// The baud rate currently set.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Whether DTR/RTS reach a device. `false` after the port said it has no modem lines, as
    /// a PTY does: then [`SerialLink::set_dtr`] and [`SerialLink::set_rts`] do nothing.
    pub fn has_modem_lines(&self) -> bool {
        self.modem_lines
    }

    /// The [`Error::Link`] for an I/O error while `doing` something.
    fn lost(&self, doing: &str, error: &dyn std::fmt::Display) -> Error {
        link_lost(&self.name, format!("{doing}: {error}"))
    }

    /// Whether the device node we opened has disappeared (the device was unplugged).
    fn node_gone(&self) -> bool {
        cfg!(unix)
            && matches!(std::fs::metadata(&self.name), Err(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// The [`Error::Link`] for a device node that is gone.
    fn vanished(&self) -> Error {
        link_lost(
            &self.name,
            "the device node disappeared (the programmer was unplugged or reset)",
        )
    }

    /// Reads what arrives until `deadline`: at least one byte, or 0 when the time ran out.
    fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.port
                .set_timeout(slice(left))
                .map_err(|e| self.lost("setting the read timeout", &e))?;
            match self.port.read(buf) {
                // poll said readable, read said end of file: the tty hung up.
                Ok(0) => return Err(link_lost(&self.name, "the port hung up (end of file)")),
                Ok(n) => return Ok(n),
                Err(e) if is_retry(&e) => {
                    if self.node_gone() {
                        return Err(self.vanished());
                    }
                    if left.is_zero() {
                        return Ok(0);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    return Err(link_lost(
                        &self.name,
                        "the port hung up while reading (unplugged or reset?)",
                    ));
                }
                Err(e) => return Err(self.lost("reading", &e)),
            }
        }
    }
}

/// How long writing `len` bytes at `baud` may take: their time on the wire at 10 bits a
/// byte, twice over, plus a margin for USB scheduling.
fn write_budget(baud: u32, len: usize) -> Duration {
    let bits = (len as u64).saturating_mul(10 * 2);
    WRITE_MARGIN + Duration::from_millis(bits.saturating_mul(1000) / u64::from(baud.max(1)))
}

/// One wait of a read or write loop: at most [`SLICE`], and at least 1 ms, because a zero
/// timeout means "wait forever" to Windows writes (the last, 1 ms slice still takes what is
/// already there).
fn slice(left: Duration) -> Duration {
    left.clamp(Duration::from_millis(1), SLICE)
}

/// Errors after which a read or write simply tries again until its deadline.
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl SerialLink for SerialPortLink {
    fn name(&self) -> &str {
        &self.name
    }

    /// Hands all bytes to the OS driver, which sends them. There is no `tcdrain`: it has no
    /// timeout, and a stalled device would hang it; the reply's timeout covers the wire time.
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let budget = write_budget(self.baud, data.len());
        let deadline = deadline_after(budget);
        let mut sent = 0;
        while sent < data.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            self.port
                .set_timeout(slice(left))
                .map_err(|e| self.lost("setting the write timeout", &e))?;
            match self.port.write(&data[sent..]) {
                Ok(0) => return Err(link_lost(&self.name, "the port accepts no more bytes")),
                Ok(n) => sent += n,
                Err(e) if is_retry(&e) => {
                    if self.node_gone() {
                        return Err(self.vanished());
                    }
                    if left.is_zero() {
                        return Err(Error::Timeout {
                            port: self.name.clone(),
                            waited: budget,
                            during: format!(
                                "sending {} byte(s), {sent} sent: the port does not take data",
                                data.len()
                            ),
                        });
                    }
                }
                Err(e) => return Err(self.lost("writing", &e)),
            }
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()> {
        let name = self.name.clone();
        read_exact_by(&name, buf, timeout, during, |chunk, deadline| {
            self.read_until(chunk, deadline)
        })
    }

    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.read_until(buf, deadline_after(timeout))
    }

    fn set_dtr(&mut self, on: bool) -> Result<()> {
        self.set_line(Line::Dtr, on)
    }

    fn set_rts(&mut self, on: bool) -> Result<()> {
        self.set_line(Line::Rts, on)
    }

    fn set_baud(&mut self, baud: u32) -> Result<()> {
        if baud == 0 {
            return Err(Error::invalid(format!(
                "baud rate 0 is not valid for {}",
                self.name
            )));
        }
        match self.port.set_baud_rate(baud) {
            Ok(()) => {
                self.baud = baud;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::InvalidInput => Err(Error::invalid(format!(
                "{} does not support {baud} baud: {e}",
                self.name
            ))),
            Err(e) => Err(self.lost(&format!("setting {baud} baud"), &e)),
        }
    }
}

/// A modem control line the host drives.
#[derive(Debug, Clone, Copy)]
enum Line {
    Dtr,
    Rts,
}

impl SerialPortLink {
    #[cfg(unix)]
    fn set_line(&mut self, line: Line, on: bool) -> Result<()> {
        if !self.modem_lines {
            return Ok(());
        }
        match unix::set_modem_line(&self.port, line, on) {
            Ok(()) => Ok(()),
            Err(e) if unix::means_no_modem_lines(&e) => {
                self.modem_lines = false;
                Ok(())
            }
            Err(e) => Err(self.lost(&format!("setting {line:?}"), &e)),
        }
    }

    #[cfg(windows)]
    fn set_line(&mut self, line: Line, on: bool) -> Result<()> {
        let result = match line {
            Line::Dtr => self.port.write_data_terminal_ready(on),
            Line::Rts => self.port.write_request_to_send(on),
        };
        result.map_err(|e| self.lost(&format!("setting {line:?}"), &e))
    }
}

/// Why an open failed, as far as the user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenFailure {
    Missing,
    PermissionDenied,
    Busy,
    Other,
}

fn classify_open_failure(kind: ErrorKind, path: &str) -> OpenFailure {
    match kind {
        ErrorKind::Io(io::ErrorKind::NotFound) => OpenFailure::Missing,
        ErrorKind::Io(io::ErrorKind::PermissionDenied) => OpenFailure::PermissionDenied,
        // Unix: EBUSY from TIOCEXCL or a held flock. Windows reports both a missing and a
        // busy port as NoDevice; the port list tells them apart.
        ErrorKind::NoDevice if cfg!(windows) => {
            if list_ports()
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(path))
            {
                OpenFailure::Busy
            } else {
                OpenFailure::Missing
            }
        }
        ErrorKind::NoDevice => OpenFailure::Busy,
        _ => OpenFailure::Other,
    }
}

/// The [`Error::Open`] for a failed open of `path`, with a hint fit for the cause.
fn open_error(path: &str, error: &serialport::Error) -> Error {
    let failure = classify_open_failure(error.kind(), path);
    let (reason, hint) = match failure {
        OpenFailure::Missing => ("no such port".to_string(), ports_hint()),
        OpenFailure::PermissionDenied => ("permission denied".to_string(), permission_hint()),
        OpenFailure::Busy => (format!("the port is in use ({error})"), busy_hint(path)),
        OpenFailure::Other => (
            error.to_string(),
            "check that this is a serial port and that the programmer is plugged in".to_string(),
        ),
    };
    Error::Open {
        port: path.to_string(),
        reason,
        hint,
    }
}

fn ports_hint() -> String {
    let ports = list_ports();
    if ports.is_empty() {
        return "no serial ports found: is the programmer plugged in, with a data (not charge-only) cable?".into();
    }
    let names: Vec<String> = ports.iter().map(PortInfo::to_string).collect();
    format!("ports found: {}", names.join(", "))
}

fn permission_hint() -> String {
    if cfg!(target_os = "linux") {
        "add your user to the group that owns serial ports (dialout on Debian, Ubuntu and Fedora; uucp on Arch): `sudo usermod -aG dialout $USER`, then log out and in; or install the udev rules from packaging/linux/60-isp-toolbox.rules".into()
    } else if cfg!(unix) {
        "add your user to the group that owns serial ports (dialout or uucp), then log out and in"
            .into()
    } else {
        "check that your user may open serial ports".into()
    }
}

fn busy_hint(path: &str) -> String {
    let general = "another program has it open: a serial monitor (Arduino IDE, screen, minicom, PuTTY), avrdude, or ModemManager, which probes new USB serial devices for a few seconds after they are plugged in; close it (or wait a moment) and try again";
    let holders = holders_of(path);
    if holders.is_empty() {
        general.to_string()
    } else {
        format!("{general} (open in: {})", holders.join(", "))
    }
}

/// The processes holding `path` open, as `avrdude (pid 1234)`; best effort, Linux only.
#[cfg(target_os = "linux")]
fn holders_of(path: &str) -> Vec<String> {
    let Ok(target) = Path::new(path).canonicalize() else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut holders = Vec::new();
    for proc_dir in procs.flatten() {
        let Some(pid) = proc_dir
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link == target));
        if holds {
            let command = read_attr(&proc_dir.path(), "comm").unwrap_or_else(|| "?".into());
            let whose = if pid == std::process::id() {
                " (this program)"
            } else {
                ""
            };
            holders.push(format!("{command} (pid {pid}){whose}"));
        }
    }
    holders
}

#[cfg(not(target_os = "linux"))]
fn holders_of(_path: &str) -> Vec<String> {
    Vec::new()
}

/// Raw descriptor work the crate does not expose with errno intact.
#[cfg(unix)]
mod unix {
    use std::io;
    use std::os::fd::AsRawFd;

    use super::Line;

    /// Makes reads and writes return `WouldBlock` instead of blocking past the poll: a
    /// blocking tty write can otherwise wait forever for buffer space.
    pub(super) fn set_nonblocking(port: &impl AsRawFd) -> io::Result<()> {
        let fd = port.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own, with plain integer arguments.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Asserts or de-asserts one modem line with TIOCMBIS/TIOCMBIC.
    pub(super) fn set_modem_line(port: &impl AsRawFd, line: Line, on: bool) -> io::Result<()> {
        let bits: libc::c_int = match line {
            Line::Dtr => libc::TIOCM_DTR,
            Line::Rts => libc::TIOCM_RTS,
        };
        let request = if on { libc::TIOCMBIS } else { libc::TIOCMBIC };
        // SAFETY: the ioctl reads one c_int through the pointer, which outlives the call.
        let rc = unsafe { libc::ioctl(port.as_raw_fd(), request, &bits) };
        if rc == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The answers of a tty without modem lines (a PTY): "not a modem", not "device gone".
    pub(super) fn means_no_modem_lines(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::ENOTTY) | Some(libc::EINVAL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_small_numbers_first() {
        let mut names = vec!["ttyACM10", "ttyUSB0", "ttyACM2", "ttyACM"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["ttyACM", "ttyACM2", "ttyACM10", "ttyUSB0"]);
    }

    #[test]
    fn hex_ids_parse_like_sysfs_writes_them() {
        assert_eq!(parse_hex_u16("1b4f"), Some(0x1B4F));
        assert_eq!(parse_hex_u16("05DC"), Some(0x05DC));
        assert_eq!(parse_hex_u16("+1b4"), None);
        assert_eq!(parse_hex_u16("12345"), None);
        assert_eq!(parse_hex_u16(""), None);
    }

    #[test]
    fn open_failures_are_classified_by_kind() {
        use io::ErrorKind as Io;
        let path = "/dev/ttyISPTOOLBOX-none";
        assert_eq!(
            classify_open_failure(ErrorKind::Io(Io::NotFound), path),
            OpenFailure::Missing
        );
        assert_eq!(
            classify_open_failure(ErrorKind::Io(Io::PermissionDenied), path),
            OpenFailure::PermissionDenied
        );
        assert_eq!(
            classify_open_failure(ErrorKind::Unknown, path),
            OpenFailure::Other
        );
        #[cfg(unix)]
        assert_eq!(
            classify_open_failure(ErrorKind::NoDevice, path),
            OpenFailure::Busy
        );
    }

    #[test]
    fn permission_denied_points_at_the_group_and_udev_rules() {
        let error = open_error(
            "/dev/ttyACM0",
            &serialport::Error::new(ErrorKind::Io(io::ErrorKind::PermissionDenied), "EACCES"),
        );
        let hint = error.hint().unwrap_or_default();
        assert!(error.to_string().contains("permission denied"), "{error}");
        if cfg!(target_os = "linux") {
            assert!(hint.contains("dialout"), "{hint}");
            assert!(
                hint.contains("packaging/linux/60-isp-toolbox.rules"),
                "{hint}"
            );
        }
    }

    #[test]
    fn write_budget_is_twice_the_wire_time_plus_a_margin() {
        // 256 bytes at 19200 baud take 133 ms on the wire; the budget doubles that.
        assert_eq!(
            write_budget(19200, 256),
            WRITE_MARGIN + Duration::from_millis(266)
        );
        assert_eq!(write_budget(115_200, 0), WRITE_MARGIN);
        // Absurd inputs neither panic nor overflow.
        assert!(write_budget(0, usize::MAX) > WRITE_MARGIN);
    }
}
