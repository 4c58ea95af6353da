//! A USB link whose every answer comes from fuzz input: reply bytes, short or empty replies,
//! timeouts, stalls and a vanished device. Shared by the USB driver fuzz targets.

use std::time::Duration;

use isp_toolbox::error::{Error, Result};
use isp_toolbox::transport::UsbLink;

/// Answers transfers from the input: a control byte picks the outcome, then its bytes.
pub struct InputLink<'a> {
    pub input: &'a [u8],
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
