//! The real serial code path against a PTY: `SerialPortLink` opens the slave of a `Pty`
//! whose master plays the programmer.
#![cfg(unix)]

use std::time::{Duration, Instant};

use isp_toolbox::Error;
use isp_toolbox::transport::{Pty, PtyEvent, SerialLink, SerialPortLink};

const LONG: Duration = Duration::from_secs(10);

/// CPU time this thread has used: a busy loop shows here, a sleeping wait does not.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn open_pair() -> (Pty, SerialPortLink) {
    let mut pty = Pty::open().unwrap();
    let link = SerialPortLink::open(pty.slave_path().to_str().unwrap(), 19200).unwrap();
    let mut scratch = [0u8; 16];
    assert_eq!(pty.recv(&mut scratch, LONG).unwrap(), PtyEvent::HostOpened);
    (pty, link)
}

/// Reads from the master until `want` bytes came.
fn recv_exact(pty: &mut Pty, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < want {
        match pty.recv(&mut buf, LONG).unwrap() {
            PtyEvent::Data(n) => got.extend_from_slice(&buf[..n]),
            other => panic!("expected data, got {other:?}"),
        }
    }
    got
}

#[test]
fn bytes_round_trip_through_the_real_serial_code() {
    let (mut pty, mut link) = open_pair();
    assert_eq!(pty.host_baud(), Some(19200));

    // STK500v1 GET_SYNC and its answer, with every byte value on the way back.
    link.write_all(&[0x30, 0x20]).unwrap();
    assert_eq!(recv_exact(&mut pty, 2), [0x30, 0x20]);
    let all: Vec<u8> = (0..=255).collect();
    pty.write_all(&all, LONG).unwrap();
    let mut back = vec![0u8; 256];
    link.read_exact(&mut back, LONG, "reading all byte values")
        .unwrap();
    assert_eq!(back, all, "raw mode must pass every byte unchanged");

    // A page-sized write arrives whole and unchanged.
    let page: Vec<u8> = (0..128u32).map(|i| (i * 7 + 3) as u8).collect();
    link.write_all(&page).unwrap();
    assert_eq!(recv_exact(&mut pty, 128), page);
}

#[test]
fn baud_changes_reach_the_slave_termios() {
    let (pty, mut link) = open_pair();
    link.set_baud(115_200).unwrap();
    assert_eq!(link.baud(), 115_200);
    assert_eq!(pty.host_baud(), Some(115_200));
    assert!(matches!(link.set_baud(0), Err(Error::Invalid(_))));
}

#[test]
fn a_silent_port_times_out_with_what_we_waited_for() {
    let (_pty, mut link) = open_pair();
    let timeout = Duration::from_millis(150);
    let started = Instant::now();
    let error = link
        .read_exact(&mut [0u8; 2], timeout, "waiting for STK_INSYNC")
        .unwrap_err();
    assert!(started.elapsed() >= timeout);
    match &error {
        Error::Timeout {
            port,
            waited,
            during,
        } => {
            assert_eq!(port, link.name());
            assert_eq!(*waited, timeout);
            assert!(during.contains("waiting for STK_INSYNC"), "{during}");
            assert!(during.contains("nothing received"), "{during}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(error.hint().is_some());
}

#[test]
fn a_partial_answer_says_how_much_came() {
    let (mut pty, mut link) = open_pair();
    pty.write_all(&[0x14, 0x1E], LONG).unwrap();
    let error = link
        .read_exact(
            &mut [0u8; 4],
            Duration::from_millis(100),
            "reading the signature",
        )
        .unwrap_err();
    match error {
        Error::Timeout { during, .. } => {
            assert!(during.contains("received 2 of 4"), "{during}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn read_some_returns_zero_on_timeout_and_drain_discards_input() {
    let (mut pty, mut link) = open_pair();
    let mut buf = [0u8; 8];
    assert_eq!(
        link.read_some(&mut buf, Duration::from_millis(50)).unwrap(),
        0
    );
    // A zero timeout still takes what is already there.
    pty.write_all(b"xyz", LONG).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let n = link.read_some(&mut buf, LONG).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"xyz");
    pty.write_all(b"stale bytes", LONG).unwrap();
    link.drain(Duration::from_millis(50)).unwrap();
    assert_eq!(link.read_some(&mut buf, Duration::ZERO).unwrap(), 0);
}

#[test]
fn waiting_for_a_timeout_sleeps_instead_of_spinning() {
    let (_pty, mut link) = open_pair();
    let wait = Duration::from_millis(600);
    let cpu_before = thread_cpu_time();
    assert!(link.read_exact(&mut [0u8; 1], wait, "idle").is_err());
    let cpu = thread_cpu_time() - cpu_before;
    // A busy loop would burn most of the 600 ms; sleeping in poll burns next to nothing.
    assert!(
        cpu < wait / 3,
        "read used {cpu:?} of CPU while waiting {wait:?}"
    );
}

#[test]
fn a_port_that_vanishes_mid_page_is_a_link_error_not_a_hang() {
    let (mut pty, mut link) = open_pair();
    // Half of an answer, then the "programmer" is unplugged.
    pty.write_all(&[0x14, 0x10], LONG).unwrap();
    drop(pty);

    let started = Instant::now();
    let cpu_before = thread_cpu_time();
    let error = link
        .read_exact(&mut [0u8; 130], LONG, "reading a flash page")
        .unwrap_err();
    eprintln!("{error}");
    assert!(
        matches!(error, Error::Link { .. }),
        "expected a link error, got {error:?}"
    );
    assert!(
        started.elapsed() < LONG,
        "the link error must come before the timeout"
    );
    assert!(error.to_string().contains(link.name()), "{error}");
    // Every later call fails the same way, at once, without spinning.
    for _ in 0..3 {
        assert!(matches!(
            link.read_some(&mut [0u8; 4], LONG),
            Err(Error::Link { .. })
        ));
    }
    assert!(matches!(link.write_all(b"x"), Err(Error::Link { .. })));
    assert!(thread_cpu_time() - cpu_before < Duration::from_secs(1));
}

#[test]
fn a_second_open_of_the_same_port_fails_clearly() {
    let (pty, _link) = open_pair();
    let path = pty.slave_path().to_str().unwrap();
    let error = SerialPortLink::open(path, 19200).unwrap_err();
    eprintln!("{error}\nhint: {}", error.hint().unwrap_or_default());
    match &error {
        Error::Open { port, reason, hint } => {
            assert_eq!(port, path);
            assert!(reason.contains("in use"), "{reason}");
            assert!(hint.contains("another program"), "{hint}");
            assert!(hint.contains("ModemManager"), "{hint}");
            if cfg!(target_os = "linux") {
                assert!(hint.contains("(this program)"), "{hint}");
            }
        }
        other => panic!("expected an open error, got {other:?}"),
    }
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn a_missing_port_lists_the_ports_that_exist() {
    let error = SerialPortLink::open("/dev/ttyISP-TOOLBOX-NO-SUCH-PORT", 19200).unwrap_err();
    eprintln!("{error}\nhint: {}", error.hint().unwrap_or_default());
    match &error {
        Error::Open { reason, hint, .. } => {
            assert_eq!(reason, "no such port");
            let ports = isp_toolbox::transport::list_ports();
            if ports.is_empty() {
                assert!(hint.contains("no serial ports found"), "{hint}");
            } else {
                assert!(hint.starts_with("ports found: "), "{hint}");
                for port in ports {
                    assert!(hint.contains(&port.name), "{hint} lacks {}", port.name);
                }
            }
        }
        other => panic!("expected an open error, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_tty_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let error = SerialPortLink::open(file.path().to_str().unwrap(), 19200).unwrap_err();
    assert!(matches!(error, Error::Open { .. }), "{error:?}");
}

#[test]
fn dtr_and_rts_on_a_pty_are_accepted_and_reported_as_absent() {
    let (_pty, mut link) = open_pair();
    assert!(link.has_modem_lines());
    link.set_dtr(false).unwrap();
    link.set_rts(true).unwrap();
    assert!(
        !link.has_modem_lines(),
        "a PTY has no modem lines, and the link should know it"
    );
}

#[test]
fn the_master_sees_the_host_open_and_close_the_port() {
    let mut pty = Pty::open().unwrap();
    let mut buf = [0u8; 16];
    assert!(!pty.host_connected());
    assert_eq!(
        pty.recv(&mut buf, Duration::from_millis(60)).unwrap(),
        PtyEvent::Idle
    );
    // No host: replies have nowhere to go.
    assert!(matches!(pty.write_all(b"x", LONG), Err(Error::Link { .. })));

    let path = pty.slave_path().to_str().unwrap().to_string();
    let mut link = SerialPortLink::open(&path, 19200).unwrap();
    assert_eq!(pty.recv(&mut buf, LONG).unwrap(), PtyEvent::HostOpened);
    assert!(pty.host_connected());
    link.write_all(b"hi").unwrap();
    drop(link);
    // Bytes sent before the close still arrive, then the close.
    assert_eq!(recv_exact(&mut pty, 2), b"hi");
    assert_eq!(pty.recv(&mut buf, LONG).unwrap(), PtyEvent::HostClosed);
    assert!(!pty.host_connected());

    // A second host is seen again.
    let _again = SerialPortLink::open(&path, 19200).unwrap();
    assert_eq!(pty.recv(&mut buf, LONG).unwrap(), PtyEvent::HostOpened);
}

#[test]
fn an_idle_master_without_a_host_does_not_spin() {
    let mut pty = Pty::open().unwrap();
    let wait = Duration::from_millis(600);
    let cpu_before = thread_cpu_time();
    assert_eq!(pty.recv(&mut [0u8; 8], wait).unwrap(), PtyEvent::Idle);
    let cpu = thread_cpu_time() - cpu_before;
    assert!(
        cpu < wait / 3,
        "recv used {cpu:?} of CPU while waiting {wait:?}"
    );
}

#[test]
fn symlinks_replace_stale_links_but_never_files() {
    let dir = tempfile::tempdir().unwrap();
    let link_path = dir.path().join("ttyEMU");

    // A stale link from an earlier run is replaced.
    std::os::unix::fs::symlink("/dev/pts/does-not-exist", &link_path).unwrap();
    let mut pty = Pty::open().unwrap();
    pty.symlink_at(&link_path).unwrap();
    assert_eq!(std::fs::read_link(&link_path).unwrap(), pty.slave_path());
    assert_eq!(pty.link_path(), Some(link_path.as_path()));

    // The real serial code opens the port through the link.
    let mut link = SerialPortLink::open(link_path.to_str().unwrap(), 19200).unwrap();
    assert_eq!(pty.recv(&mut [0u8; 4], LONG).unwrap(), PtyEvent::HostOpened);
    link.write_all(b"ok").unwrap();
    assert_eq!(recv_exact(&mut pty, 2), b"ok");
    drop(link);

    // A regular file is never replaced.
    let file_path = dir.path().join("notes.txt");
    std::fs::write(&file_path, "keep me").unwrap();
    let error = pty.symlink_at(&file_path).unwrap_err();
    assert!(error.to_string().contains("not a symlink"), "{error}");
    assert_eq!(std::fs::read_to_string(&file_path).unwrap(), "keep me");

    // The link goes away with the PTY; nothing else is left behind.
    drop(pty);
    assert!(std::fs::symlink_metadata(&link_path).is_err());
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["notes.txt"]);
}

#[test]
fn a_vanished_link_target_is_noticed_while_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let link_path = dir.path().join("ttyEMU");
    let mut pty = Pty::open().unwrap();
    pty.symlink_at(&link_path).unwrap();
    let mut link = SerialPortLink::open(link_path.to_str().unwrap(), 19200).unwrap();
    assert_eq!(pty.recv(&mut [0u8; 4], LONG).unwrap(), PtyEvent::HostOpened);
    // The emulator goes away while the host waits in another thread.
    let reader = std::thread::spawn(move || link.read_exact(&mut [0u8; 1], LONG, "waiting"));
    drop(pty);
    let result = reader.join().unwrap();
    assert!(matches!(result, Err(Error::Link { .. })), "{result:?}");
}

/// avrdude (Debian's 7.1 in CI) opens our PTY through a symlink like a real port: it sets the
/// baud rate, survives the PTY's missing modem lines (it logs the failed TIOCMGET and goes
/// on), sends STK500 GET_SYNC, and gives up cleanly with "not in sync" when the answer is
/// wrong. Fails where avrdude is not installed: CI must install it.
#[test]
fn avrdude_opens_the_pty_and_gives_up_cleanly_when_nothing_syncs() {
    use std::process::{Command, Stdio};

    assert!(
        Command::new("avrdude").arg("-?").output().is_ok(),
        "avrdude is not installed: run .ci/run (it installs Debian's avrdude) before the tests"
    );
    let dir = tempfile::tempdir().unwrap();
    let link_path = dir.path().join("ttyEMU");
    let mut pty = Pty::open().unwrap();
    pty.symlink_at(&link_path).unwrap();

    let avrdude = Command::new("avrdude")
        .args(["-c", "avrisp", "-p", "m32u4", "-b", "19200", "-P"])
        .arg(&link_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Play a programmer that answers every command with a wrong byte until avrdude closes.
    let mut received = Vec::new();
    let mut baud_seen = None;
    let mut buf = [0u8; 64];
    let mut closed = false;
    for _ in 0..200 {
        match pty.recv(&mut buf, Duration::from_secs(30)).unwrap() {
            PtyEvent::HostOpened => {}
            PtyEvent::Data(n) => {
                baud_seen = baud_seen.or(pty.host_baud());
                received.extend_from_slice(&buf[..n]);
                let commands = buf[..n].iter().filter(|&&b| b == 0x20).count();
                // avrdude may close between our reads; a failed reply is fine then.
                let _ = pty.write_all(&vec![0x00; commands], LONG);
            }
            PtyEvent::HostClosed => {
                closed = true;
                break;
            }
            PtyEvent::Idle => break,
        }
    }
    let output = avrdude.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(closed, "avrdude never closed the port; it said:\n{stderr}");
    assert_eq!(&received[..2], [0x30, 0x20], "GET_SYNC, CRC_EOP");
    assert_eq!(baud_seen, Some(19200));
    assert!(!output.status.success());
    assert!(stderr.contains("not in sync"), "{stderr}");
    assert!(!stderr.contains("can't open device"), "{stderr}");
}
