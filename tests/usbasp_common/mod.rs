//! Helpers shared by the `usbasp_*` integration tests.
#![allow(dead_code)]

#[path = "../board_common/mod.rs"]
mod board_common;
pub use board_common::*;

use isp_toolbox::emulate::socket::SharedSocket;
use isp_toolbox::emulate::usb::{EmulatedUsbLink, SharedUsbDevice};
use isp_toolbox::part::Part;
use isp_toolbox::programmer::usbasp::{self, EmulatedOptions, UsbAsp};

/// The driver on an emulated USBasp (2011 firmware) wired to `socket`.
pub fn driver(part: &Part, socket: &SharedSocket) -> (UsbAsp<EmulatedUsbLink>, SharedUsbDevice) {
    driver_with(part, socket, EmulatedOptions::default())
}

/// The driver with options.
pub fn driver_with(
    part: &Part,
    socket: &SharedSocket,
    options: EmulatedOptions,
) -> (UsbAsp<EmulatedUsbLink>, SharedUsbDevice) {
    usbasp::emulated(part, socket.clone(), options).unwrap()
}
