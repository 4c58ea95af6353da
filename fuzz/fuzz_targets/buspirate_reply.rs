//! Feeds arbitrary bytes to the Bus Pirate reply decoders, and to the whole driver as the Bus
//! Pirate's answers: nothing may panic, and whatever the driver accepts must be well formed.
#![no_main]

use std::time::Duration;

use isp_toolbox::error::{Error, Memory, Result};
use isp_toolbox::part::PartDb;
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::buspirate::protocol::{
    classify_probe, decode_bulk_reply, decode_extended_probe, find_version, is_prompt,
};
use isp_toolbox::programmer::buspirate::{BusPirate, BusPirateOptions};
use isp_toolbox::transport::SerialLink;
use libfuzzer_sys::fuzz_target;

/// A link whose every read comes from the fuzz input; writes vanish; running out of input is a
/// timeout at once (no sleeping).
struct Scripted<'a> {
    replies: &'a [u8],
}

impl SerialLink for Scripted<'_> {
    fn name(&self) -> &str {
        "fuzz"
    }
    fn write_all(&mut self, _data: &[u8]) -> Result<()> {
        Ok(())
    }
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()> {
        if self.replies.len() < buf.len() {
            self.replies = &[];
            return Err(Error::Timeout {
                port: "fuzz".into(),
                waited: timeout,
                during: during.into(),
            });
        }
        let (head, tail) = self.replies.split_at(buf.len());
        buf.copy_from_slice(head);
        self.replies = tail;
        Ok(())
    }
    fn read_some(&mut self, buf: &mut [u8], _timeout: Duration) -> Result<usize> {
        // Hand out at most a few bytes at a time, as a serial port does.
        let n = buf.len().min(self.replies.len()).min(7);
        buf[..n].copy_from_slice(&self.replies[..n]);
        self.replies = &self.replies[n..];
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

fuzz_target!(|data: &[u8]| {
    let count = usize::from(data.first().copied().unwrap_or(0) % 9);
    if let Ok(responses) = decode_bulk_reply(data, count) {
        assert_eq!(responses.len(), count);
    }
    if let Some((end, _)) = find_version(data, b"BBIO") {
        assert!(end <= data.len());
    }
    let _ = classify_probe(data);
    let _ = decode_extended_probe(data);
    let _ = is_prompt(data);

    // The driver, answered by the fuzz input. No `enter`: it sleeps for RESET on purpose.
    let Ok(db) = PartDb::builtin() else { return };
    let Ok(part) = db.find("at90usb1286") else {
        return;
    };
    let Ok(mut bp) = BusPirate::new(Scripted { replies: data }, BusPirateOptions::default()) else {
        return;
    };
    let _ = bp.info();
    let mut buf = [0u8; 300];
    let _ = bp.read(part, Memory::Flash, 0x1FED3, &mut buf[..301 - 256]);
    let _ = bp.read(part, Memory::Flash, 0, &mut buf);
    let _ = bp.read(part, Memory::Eeprom, 7, &mut buf[..9]);
    let _ = bp.read_signature();
    let _ = bp.command([0x30, 0, 0, 0]);
    let _ = bp.set_sck(8_000_000);
    let _ = bp.abandon();
});
