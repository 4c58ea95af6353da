//! Feeds arbitrary bytes to the STK500v1 reply decoder, and to the whole avrisp driver as
//! ArduinoISP's answers: nothing may panic, and whatever the decoder accepts is well formed.
#![no_main]

use std::collections::VecDeque;
use std::time::Duration;

use isp_toolbox::error::{Error, Memory, Result};
use isp_toolbox::part::{FuseKind, PartDb};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::stk500v1::wire::{Reply, decode_reply};
use isp_toolbox::programmer::stk500v1::{Stk500v1, Stk500v1Options};
use isp_toolbox::transport::SerialLink;
use libfuzzer_sys::fuzz_target;

/// A link that answers each write with the next chunk of the fuzz input; a read that finds too
/// few bytes times out at once (no sleeping).
struct Scripted {
    chunks: VecDeque<Vec<u8>>,
    pending: VecDeque<u8>,
}

impl SerialLink for Scripted {
    fn name(&self) -> &str {
        "fuzz"
    }
    fn write_all(&mut self, _data: &[u8]) -> Result<()> {
        if let Some(chunk) = self.chunks.pop_front() {
            self.pending.extend(chunk);
        }
        Ok(())
    }
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()> {
        if self.pending.len() < buf.len() {
            self.pending.clear();
            return Err(Error::Timeout {
                port: "fuzz".into(),
                waited: timeout,
                during: during.into(),
            });
        }
        for slot in buf.iter_mut() {
            *slot = self.pending.pop_front().unwrap_or(0);
        }
        Ok(())
    }
    fn read_some(&mut self, buf: &mut [u8], _timeout: Duration) -> Result<usize> {
        let n = buf.len().min(self.pending.len()).min(7);
        for slot in buf[..n].iter_mut() {
            *slot = self.pending.pop_front().unwrap_or(0);
        }
        Ok(n)
    }
    fn set_dtr(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
    fn set_rts(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
    fn set_baud(&mut self, _baud: u32) -> Result<()> {
        Ok(())
    }
}

/// What ArduinoISP answers while the driver connects, so the fuzz input reaches the operations.
fn connect_answers() -> Vec<Vec<u8>> {
    vec![
        vec![0x14, 0x10],
        vec![0x14, 0x10],
        b"\x14AVR ISP\x10".to_vec(),
        vec![0x14, 2, 0x10],
        vec![0x14, 1, 0x10],
        vec![0x14, 18, 0x10],
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The decoder alone.
    let payload_len = usize::from(selector) * 3;
    match decode_reply(payload_len, rest) {
        Reply::Complete { payload, len, .. } => {
            assert!(len <= rest.len());
            assert_eq!(payload.len(), payload_len);
        }
        Reply::Incomplete { needed } => assert!(needed > 0),
        Reply::Garbage { at, .. } => assert!(at < rest.len()),
        Reply::NoSync | Reply::Unknown | Reply::LoneFailed => {}
    }

    // The driver: each chunk of the input (its first byte gives its length) answers one write.
    let mut chunks: VecDeque<Vec<u8>> = connect_answers().into();
    let mut input = rest;
    while let Some((&len, tail)) = input.split_first() {
        let take = usize::from(len % 64).min(tail.len());
        chunks.push_back(tail[..take].to_vec());
        input = &tail[take..];
    }
    let link = Scripted {
        chunks,
        pending: VecDeque::new(),
    };
    let options = Stk500v1Options {
        timeout: Duration::from_millis(1),
        ..Default::default()
    };
    let Ok(mut driver) = Stk500v1::new(link, options) else {
        return;
    };
    let Ok(db) = PartDb::builtin() else {
        return;
    };
    let Ok(part) = db.find("m32u4") else {
        return;
    };
    let _ = driver.enter(part);
    let _ = driver.read_signature();
    let mut buf = vec![0u8; usize::from(selector)];
    let addr = u32::from(selector) * 97;
    let _ = driver.read(part, Memory::Flash, addr, &mut buf);
    let _ = driver.read(part, Memory::Eeprom, addr % 512, &mut buf);
    let _ = driver.write_page(part, Memory::Flash, addr & !0x7F, &[0xA5; 128]);
    let _ = driver.write_page(part, Memory::Eeprom, addr & 0x1FC, &[1, 2, 3, 4]);
    let _ = driver.read_fuse(FuseKind::High);
    let _ = driver.leave();
});
