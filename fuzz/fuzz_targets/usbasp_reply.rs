//! Drives the `usbasp` driver through a whole session against a link whose every answer
//! comes from the fuzz input: reply bytes, short or empty replies, timeouts, stalls and a
//! vanished device. Every operation must return (Ok or a described error), never panic.
#![no_main]

#[path = "../common/usb_input_link.rs"]
mod usb_input_link;
#[path = "../common/whole_session.rs"]
mod whole_session;

use isp_toolbox::emulate::socket::Socket;
use isp_toolbox::programmer::usbasp::{Options, UsbAsp, protocol};
use libfuzzer_sys::fuzz_target;
use usb_input_link::InputLink;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    // The reply decoders on their own.
    let _ = protocol::decode_capabilities(input);
    if input.len() >= 2 {
        let index = u16::from_le_bytes([input[0], input[1]]);
        let (size, flags) = protocol::decode_write_flash_index(index);
        assert_eq!(protocol::write_flash_index(size, flags), index);
    }
    let option = protocol::option_for_hz(u32::from(selector) * 12_000, u32::from(selector));
    assert!(option.code >= 1 && option.code <= protocol::SCK_3MHZ);

    let clock = Socket::default().shared();
    let mut prog = UsbAsp::new(InputLink { input }, Options::default()).on_virtual_clock(clock);
    whole_session::drive(&mut prog, selector);
});
