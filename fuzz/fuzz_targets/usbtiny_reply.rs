//! Drives the `usbtiny` driver through a whole session against a link whose every answer
//! comes from the fuzz input: reply bytes, short or empty replies, timeouts, stalls and a
//! vanished device. Every operation must return (Ok or a described error), never panic.
#![no_main]

use std::time::Duration;

use isp_toolbox::Memory;
use isp_toolbox::emulate::socket::Socket;
use isp_toolbox::error::{Error, Result};
use isp_toolbox::part::{FuseKind, PartDb};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::usbtiny::{Options, UsbTiny, protocol};
use isp_toolbox::transport::UsbLink;
use libfuzzer_sys::fuzz_target;

/// Answers transfers from the input: a control byte picks the outcome, then its bytes.
struct InputLink<'a> {
    input: &'a [u8],
}

impl InputLink<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.input.len());
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        head
    }

    /// `Ok(bytes)` to deliver, or the failure.
    fn next(&mut self) -> std::result::Result<Vec<u8>, Error> {
        let Some(&control) = self.take(1).first() else {
            return Err(Error::Link {
                port: "fuzz".into(),
                reason: "input ended".into(),
            });
        };
        match control % 8 {
            0 => Err(Error::Timeout {
                port: "fuzz".into(),
                waited: Duration::from_millis(500),
                during: "a fuzzed transfer".into(),
            }),
            1 => Err(Error::protocol("usb", "stalled")),
            2 => Err(Error::Link {
                port: "fuzz".into(),
                reason: "unplugged".into(),
            }),
            _ => {
                let len = usize::from(control >> 3) * 9;
                Ok(self.take(len).to_vec())
            }
        }
    }
}

impl UsbLink for InputLink<'_> {
    fn name(&self) -> &str {
        "fuzz"
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
        let bytes = self.next()?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
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
        let bytes = self.next()?;
        Ok(bytes.len().min(data.len()))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    // The reply decoders on their own.
    let _ = protocol::decode_spi(input);
    let _ = protocol::check_block(input.len(), usize::from(selector));

    let Ok(db) = PartDb::builtin() else { return };
    let parts = db.all();
    let part = &parts[usize::from(selector) % parts.len()];
    let clock = Socket::default().shared();
    let mut prog = UsbTiny::new(InputLink { input }, Options::default()).on_virtual_clock(clock);
    let mut buf = vec![0u8; 64];
    let flash_page = vec![0u8; part.flash.page_size as usize];
    let eeprom_page = vec![0u8; part.eeprom.page_size as usize];
    let results = [
        prog.enter(part),
        prog.read_signature().map(drop),
        prog.read(part, Memory::Flash, part.flash.size - 64, &mut buf),
        prog.read(part, Memory::Eeprom, 0, &mut buf),
        prog.write_page(part, Memory::Flash, 0, &flash_page),
        prog.write_page(part, Memory::Eeprom, 0, &eeprom_page),
        prog.chip_erase(part),
        prog.write_fuse(part, FuseKind::High, 0xD9),
        prog.set_sck(u32::from(selector) * 4_000).map(drop),
        prog.leave(),
    ];
    for result in results {
        if let Err(e) = result {
            assert!(!e.to_string().is_empty());
        }
    }
});
