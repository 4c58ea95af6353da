//! Helpers shared by the `usbtiny_*` integration tests.
#![allow(dead_code)]

#[path = "../board_common/mod.rs"]
mod board_common;
pub use board_common::*;

use isp_toolbox::emulate::socket::SharedSocket;
use isp_toolbox::emulate::usb::{EmulatedUsbLink, SharedUsbDevice};
use isp_toolbox::part::Part;
use isp_toolbox::programmer::usbtiny::{self, EmulatedOptions, UsbTiny};

/// The driver on an emulated USBtiny wired to `socket`.
pub fn driver(part: &Part, socket: &SharedSocket) -> (UsbTiny<EmulatedUsbLink>, SharedUsbDevice) {
    driver_with(part, socket, EmulatedOptions::default())
}

/// The driver with options.
pub fn driver_with(
    part: &Part,
    socket: &SharedSocket,
    options: EmulatedOptions,
) -> (UsbTiny<EmulatedUsbLink>, SharedUsbDevice) {
    usbtiny::emulated(part, socket.clone(), options).unwrap()
}
