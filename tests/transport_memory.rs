//! The in-process link between a driver and an emulator thread.

use std::time::{Duration, Instant};

use isp_toolbox::Error;
use isp_toolbox::transport::{FromHost, LineState, SerialLink, memory_link};

const LONG: Duration = Duration::from_secs(10);

/// CPU time this thread has used: a busy loop shows here, a sleeping wait does not.
#[cfg(target_os = "linux")]
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

#[test]
fn an_emulator_thread_answers_the_host() {
    let (mut host, mut emulator) = memory_link("emulated", 19200);
    assert_eq!(host.name(), "emulated");
    assert_eq!(emulator.name(), "emulated");

    // A toy programmer: answers each "0 " (GET_SYNC) with INSYNC OK until the host leaves.
    let firmware = std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        let mut seen = Vec::new();
        loop {
            match emulator.recv(&mut buf, LONG) {
                Ok(FromHost::Data(n)) => {
                    seen.extend_from_slice(&buf[..n]);
                    while seen.len() >= 2 {
                        let command: Vec<u8> = seen.drain(..2).collect();
                        assert_eq!(command, [0x30, 0x20]);
                        emulator.write_all(&[0x14, 0x10]).unwrap();
                    }
                }
                Ok(FromHost::Line(_) | FromHost::Idle) => {}
                Err(Error::Link { .. }) => return seen.len(),
                Err(other) => panic!("{other}"),
            }
        }
    });

    for _ in 0..100 {
        host.write_all(&[0x30, 0x20]).unwrap();
        let mut answer = [0u8; 2];
        host.read_exact(&mut answer, LONG, "GET_SYNC").unwrap();
        assert_eq!(answer, [0x14, 0x10]);
    }
    drop(host);
    assert_eq!(firmware.join().unwrap(), 0, "no stray bytes were left");
}

#[test]
fn reads_time_out_with_the_same_error_as_a_real_port() {
    let (mut host, mut emulator) = memory_link("emulated", 19200);
    let timeout = Duration::from_millis(80);
    let started = Instant::now();
    let error = host
        .read_exact(&mut [0u8; 3], timeout, "reading the signature")
        .unwrap_err();
    assert!(started.elapsed() >= timeout);
    match error {
        Error::Timeout {
            port,
            waited,
            during,
        } => {
            assert_eq!(port, "emulated");
            assert_eq!(waited, timeout);
            assert!(during.contains("reading the signature"), "{during}");
            assert!(during.contains("nothing received, expected 3"), "{during}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }

    emulator.write_all(&[0x1E]).unwrap();
    match host.read_exact(&mut [0u8; 3], timeout, "reading the signature") {
        Err(Error::Timeout { during, .. }) => {
            assert!(during.contains("received 1 of 3"), "{during}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }

    assert_eq!(host.read_some(&mut [0u8; 4], Duration::ZERO).unwrap(), 0);
    assert_eq!(
        emulator.recv(&mut [0u8; 4], Duration::ZERO).unwrap(),
        FromHost::Idle
    );
}

#[test]
fn read_some_takes_what_is_there_and_drain_empties_the_queue() {
    let (mut host, mut emulator) = memory_link("emulated", 19200);
    emulator.write_all(b"hello").unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(host.read_some(&mut buf, LONG).unwrap(), 3);
    assert_eq!(&buf, b"hel");
    emulator.write_all(b"world").unwrap();
    host.drain(Duration::from_millis(20)).unwrap();
    assert_eq!(host.read_some(&mut buf, Duration::ZERO).unwrap(), 0);
    assert_eq!(
        host.read_some(&mut [], LONG).unwrap(),
        0,
        "an empty buffer returns at once"
    );
}

#[test]
fn when_the_emulator_hangs_up_the_host_gets_what_was_sent_then_a_link_error() {
    let (mut host, mut emulator) = memory_link("emulated", 19200);
    // Half a page, then the "programmer" is unplugged.
    emulator.write_all(&[0x14, 0xAA]).unwrap();
    drop(emulator);

    let mut page = [0u8; 130];
    let error = host
        .read_exact(&mut page, LONG, "reading a flash page")
        .unwrap_err();
    match &error {
        Error::Link { port, reason } => {
            assert_eq!(port, "emulated");
            assert!(reason.contains("hung up"), "{reason}");
        }
        other => panic!("expected a link error, got {other:?}"),
    }
    assert_eq!(
        &page[..2],
        [0x14, 0xAA],
        "bytes sent before the hang-up arrive"
    );
    assert!(matches!(host.write_all(b"x"), Err(Error::Link { .. })));
    assert!(matches!(host.set_dtr(false), Err(Error::Link { .. })));
    assert!(error.hint().is_some());
}

#[test]
fn a_hang_up_wakes_a_waiting_reader_at_once() {
    let (mut host, emulator) = memory_link("emulated", 19200);
    let reader = std::thread::spawn(move || {
        let started = Instant::now();
        let result = host.read_exact(&mut [0u8; 1], Duration::from_secs(60), "waiting");
        (result, started.elapsed())
    });
    // Hang up only once the reader is waiting; the reader must not sit out its 60 s.
    std::thread::sleep(Duration::from_millis(50));
    drop(emulator);
    let (result, waited) = reader.join().unwrap();
    assert!(matches!(result, Err(Error::Link { .. })), "{result:?}");
    assert!(waited < Duration::from_secs(60));
}

#[test]
fn when_the_host_hangs_up_the_emulator_gets_its_bytes_then_a_link_error() {
    let (mut host, mut emulator) = memory_link("emulated", 19200);
    assert!(emulator.host_connected());
    host.write_all(b"bye").unwrap();
    drop(host);
    assert!(!emulator.host_connected());
    let mut buf = [0u8; 8];
    assert_eq!(emulator.recv(&mut buf, LONG).unwrap(), FromHost::Data(3));
    assert_eq!(&buf[..3], b"bye");
    assert!(matches!(
        emulator.recv(&mut buf, LONG),
        Err(Error::Link { .. })
    ));
    assert!(matches!(emulator.write_all(b"x"), Err(Error::Link { .. })));
}

#[test]
fn line_changes_arrive_in_order_with_the_data() {
    let (mut host, mut emulator) = memory_link("emulated", 19200);
    assert_eq!(
        emulator.lines(),
        LineState {
            dtr: true,
            rts: true,
            baud: 19200
        },
        "a freshly opened port has DTR and RTS asserted"
    );

    // The Arduino auto-reset dance, with bytes before and after it.
    host.write_all(b"ab").unwrap();
    host.set_dtr(false).unwrap();
    host.set_dtr(false).unwrap(); // no change, no event
    host.set_rts(false).unwrap();
    host.write_all(b"c").unwrap();
    host.set_dtr(true).unwrap();
    host.set_baud(115_200).unwrap();
    host.write_all(b"de").unwrap();

    assert_eq!(
        emulator.lines(),
        LineState {
            dtr: true,
            rts: false,
            baud: 115_200
        }
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        match emulator.recv(&mut buf, Duration::ZERO).unwrap() {
            FromHost::Data(n) => seen.push(format!("{:?}", String::from_utf8_lossy(&buf[..n]))),
            FromHost::Line(event) => seen.push(format!("{event:?}")),
            FromHost::Idle => break,
        }
    }
    assert_eq!(
        seen,
        [
            "\"ab\"",
            "Dtr(false)",
            "Rts(false)",
            "\"c\"",
            "Dtr(true)",
            "Baud(115200)",
            "\"de\""
        ]
    );
}

#[test]
fn a_zero_baud_rate_is_refused() {
    let (mut host, emulator) = memory_link("emulated", 19200);
    assert!(matches!(host.set_baud(0), Err(Error::Invalid(_))));
    assert_eq!(emulator.lines().baud, 19200);
}

#[cfg(target_os = "linux")]
#[test]
fn waiting_sleeps_instead_of_spinning() {
    let (mut host, _emulator) = memory_link("emulated", 19200);
    let wait = Duration::from_millis(500);
    let cpu_before = thread_cpu_time();
    assert!(host.read_exact(&mut [0u8; 1], wait, "idle").is_err());
    let cpu = thread_cpu_time() - cpu_before;
    assert!(
        cpu < wait / 3,
        "read used {cpu:?} of CPU while waiting {wait:?}"
    );
}
