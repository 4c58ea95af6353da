//! Whatever the link answers (any bytes, short or long replies, timeouts, stalls, a vanished
//! device, in any order), every driver operation returns, and never panics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use isp_toolbox::Memory;
use isp_toolbox::emulate::socket::Socket;
use isp_toolbox::error::{Error, Result};
use isp_toolbox::part::{FuseKind, PartDb};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::usbtiny::{Options, UsbTiny, protocol};
use isp_toolbox::transport::UsbLink;
use proptest::prelude::*;

/// One scripted answer.
#[derive(Debug, Clone)]
enum Step {
    Reply(Vec<u8>),
    Timeout,
    Stall,
    Gone,
}

/// A link that answers from a script, then reports the device gone.
struct ScriptedLink {
    script: Vec<Step>,
    at: usize,
}

impl ScriptedLink {
    fn next(&mut self) -> Step {
        let step = self.script.get(self.at).cloned().unwrap_or(Step::Gone);
        self.at += 1;
        step
    }

    fn fail(step: Step) -> Error {
        match step {
            Step::Timeout => Error::Timeout {
                port: "script".into(),
                waited: Duration::from_millis(500),
                during: "a scripted transfer".into(),
            },
            Step::Stall => Error::protocol("usb", "stalled"),
            _ => Error::Link {
                port: "script".into(),
                reason: "the script ended".into(),
            },
        }
    }
}

impl UsbLink for ScriptedLink {
    fn name(&self) -> &str {
        "script"
    }

    fn control_in(
        &mut self,
        _request_type: u8,
        _request: u8,
        _value: u16,
        _index: u16,
        buf: &mut [u8],
        _timeout: Duration,
    ) -> Result<usize> {
        match self.next() {
            Step::Reply(bytes) => {
                // A link never delivers more than the buffer holds.
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                Ok(n)
            }
            other => Err(Self::fail(other)),
        }
    }

    fn control_out(
        &mut self,
        _request_type: u8,
        _request: u8,
        _value: u16,
        _index: u16,
        data: &[u8],
        _timeout: Duration,
    ) -> Result<usize> {
        match self.next() {
            // Any count, also a wrong one.
            Step::Reply(bytes) => Ok(bytes.len().min(data.len() + 1)),
            other => Err(Self::fail(other)),
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 4..=4).prop_map(Step::Reply),
        2 => prop::collection::vec(any::<u8>(), 0..=8).prop_map(Step::Reply),
        1 => prop::collection::vec(any::<u8>(), 250..=256).prop_map(Step::Reply),
        1 => Just(Step::Timeout),
        1 => Just(Step::Stall),
        1 => Just(Step::Gone),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_replies_end_every_operation_without_a_panic(
        script in prop::collection::vec(step(), 0..120),
        part_index in 0usize..8,
        hz in any::<u32>(),
    ) {
        let parts = PartDb::builtin().unwrap().all();
        let part = &parts[part_index % parts.len()];
        // Waits move a dummy board's clock, so the test takes no wall time.
        let clock = Socket::default().shared();
        let link = ScriptedLink { script, at: 0 };
        let mut prog = UsbTiny::new(link, Options::default()).on_virtual_clock(clock);
        let flash_page = vec![0x5Au8; part.flash.page_size as usize];
        let eeprom_page = vec![0xA5u8; part.eeprom.page_size as usize];
        let mut buf = vec![0u8; 300];
        let results: Vec<Result<()>> = vec![
            prog.enter(part),
            prog.read_signature().map(drop),
            prog.read(part, Memory::Flash, 0, &mut buf),
            prog.read(part, Memory::Flash, part.flash.size - 300, &mut buf),
            prog.read(part, Memory::Eeprom, 0, &mut buf[..16]),
            prog.write_page(part, Memory::Flash, 0, &flash_page),
            prog.write_page(part, Memory::Eeprom, 0, &eeprom_page),
            prog.chip_erase(part),
            prog.write_fuse(part, FuseKind::Low, 0xFF),
            prog.read_fuse(FuseKind::High).map(drop),
            prog.set_sck(hz).map(drop),
            prog.command([0xAC, 0xA0, 0x00, 0xFF]).map(drop),
            prog.leave(),
        ];
        for result in results {
            if let Err(e) = result {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// A link that never answers, and records the timeout of every transfer it was given.
#[derive(Default)]
struct DeadLink {
    timeouts: Arc<Mutex<Vec<Duration>>>,
}

impl DeadLink {
    fn time_out(&mut self, timeout: Duration) -> Result<usize> {
        self.timeouts.lock().unwrap().push(timeout);
        Err(Error::Timeout {
            port: "dead".into(),
            waited: timeout,
            during: "a transfer".into(),
        })
    }
}

impl UsbLink for DeadLink {
    fn name(&self) -> &str {
        "dead"
    }

    fn control_in(
        &mut self,
        _: u8,
        _: u8,
        _: u16,
        _: u16,
        _: &mut [u8],
        timeout: Duration,
    ) -> Result<usize> {
        self.time_out(timeout)
    }

    fn control_out(
        &mut self,
        _: u8,
        _: u8,
        _: u16,
        _: u16,
        _: &[u8],
        timeout: Duration,
    ) -> Result<usize> {
        self.time_out(timeout)
    }
}

/// Runs `op` on a driver whose programmer never answers; returns the wall time the
/// operation would take on real hardware (the sum of the timeouts it waited out).
fn dead_time(period: u8, op: impl FnOnce(&mut UsbTiny<DeadLink>) -> Result<()>) -> Duration {
    let link = DeadLink::default();
    let timeouts = link.timeouts.clone();
    let options = Options {
        sck_period_us: period,
        ..Options::default()
    };
    let clock = Socket::default().shared();
    let mut prog = UsbTiny::new(link, options).on_virtual_clock(clock);
    assert!(op(&mut prog).is_err());
    timeouts.lock().unwrap().iter().sum()
}

#[test]
fn a_dead_programmer_fails_each_operation_within_3_seconds() {
    let budget = Duration::from_secs(3);
    for part in PartDb::builtin().unwrap().all() {
        // avrdude's default clock and the fastest.
        for period in [10, 1] {
            let flash_page = vec![0u8; part.flash.page_size as usize];
            let eeprom_page = vec![0u8; part.eeprom.page_size as usize];
            let chunk = {
                let clock = Socket::default().shared();
                let prog = UsbTiny::new(
                    DeadLink::default(),
                    Options {
                        sck_period_us: period,
                        ..Options::default()
                    },
                )
                .on_virtual_clock(clock);
                prog.info().capabilities.read_chunk as usize
            };
            let times = [
                dead_time(period, |p| p.enter(part)),
                dead_time(period, |p| p.read_signature().map(drop)),
                dead_time(period, |p| {
                    p.read(part, Memory::Flash, 0, &mut vec![0u8; chunk])
                }),
                dead_time(period, |p| {
                    p.write_page(part, Memory::Flash, 0, &flash_page)
                }),
                dead_time(period, |p| {
                    p.write_page(part, Memory::Eeprom, 0, &eeprom_page)
                }),
                dead_time(period, |p| p.chip_erase(part)),
                dead_time(period, |p| p.write_fuse(part, FuseKind::Lock, 0xFF)),
                dead_time(period, |p| p.leave()),
            ];
            for (i, t) in times.iter().enumerate() {
                assert!(
                    *t <= budget,
                    "{} period {period}: operation {i} takes {t:?}",
                    part.name
                );
                assert!(*t >= Duration::from_millis(500), "{t:?}");
            }
        }
    }
}

#[test]
fn reply_decoders_accept_any_length() {
    for len in 0..=300usize {
        let bytes = vec![0x53u8; len];
        match protocol::decode_spi(&bytes) {
            protocol::SpiReply::Complete(r) => assert_eq!((len, r), (4, [0x53; 4])),
            protocol::SpiReply::Short { got } => assert_eq!(got, len),
        }
        assert_eq!(protocol::check_block(len, len), Ok(()));
        assert!(protocol::check_block(len + 1, len).is_err());
    }
}
