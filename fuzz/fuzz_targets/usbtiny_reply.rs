//! Drives the `usbtiny` driver through a whole session against a link whose every answer
//! comes from the fuzz input: reply bytes, short or empty replies, timeouts, stalls and a
//! vanished device. Every operation must return (Ok or a described error), never panic.
#![no_main]

#[path = "../common/usb_input_link.rs"]
mod usb_input_link;
#[path = "../common/whole_session.rs"]
mod whole_session;

use isp_toolbox::emulate::socket::Socket;
use isp_toolbox::programmer::usbtiny::{Options, UsbTiny, protocol};
use libfuzzer_sys::fuzz_target;
use usb_input_link::InputLink;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    // The reply decoders on their own.
    let _ = protocol::decode_spi(input);
    let _ = protocol::check_block(input.len(), usize::from(selector));

    let clock = Socket::default().shared();
    let mut prog = UsbTiny::new(InputLink { input }, Options::default()).on_virtual_clock(clock);
    whole_session::drive(&mut prog, selector);
});
