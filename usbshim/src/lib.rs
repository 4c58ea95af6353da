//! A libusb-0.1 shim, loaded with `LD_PRELOAD`, that presents one of ISP Toolbox's emulated
//! USB programmers, with its emulated target chip, to programs we did not write: Debian's
//! avrdude (`-c usbasp`, `-c usbtiny`) and teensy_loader_cli. A real client accepting the
//! emulators is how we know they behave like the real devices.
//!
//! ```text
//! cargo build -p isp-toolbox-usbshim
//! ISP_TOOLBOX_SHIM_DEVICE=usbtiny ISP_TOOLBOX_SHIM_STATE=/tmp/board \
//!   LD_PRELOAD=target/debug/libisp_toolbox_usbshim.so avrdude -c usbtiny -p m32u4
//! ```
//!
//! # Environment
//!
//! | Variable | Meaning |
//! |----------|---------|
//! | `ISP_TOOLBOX_SHIM_DEVICE` | the programmer: `usbtiny` (required) |
//! | `ISP_TOOLBOX_SHIM_PART` | the chip in its socket, any name the part database knows (default `m32u4`); `none` for an empty socket |
//! | `ISP_TOOLBOX_SHIM_STATE` | a directory: the chip is loaded from it when it holds a dump (`flash.bin`, `eeprom.bin`, `fuses.json`) and dumped back at exit; without it the chip starts as the CLI's demo chip |
//! | `ISP_TOOLBOX_SHIM_STATS` | a file the emulator's stats (`EmulatorStats`) are written to at exit, as JSON |
//! | `ISP_TOOLBOX_SHIM_FAULT` | faults, counted in control transfers: `drop=N,corrupt=N,stall=N,hangup=N` |
//! | `ISP_TOOLBOX_SHIM_REALTIME` | `1`: each transfer returns when the virtual clock says |
//! | `ISP_TOOLBOX_SHIM_DEBUG` | `1` traces every control transfer on stderr, `2` every call |
//!
//! A bad setting is reported on stderr and by `usb_strerror`, and the bus is then empty (the
//! program says it found no device). The dump and the stats are written by an `atexit`
//! handler, since avrdude and teensy_loader_cli end with `exit()`.
//!
//! # What the program sees
//!
//! One bus, `001`, with one device, `001`, once `usb_find_busses` and `usb_find_devices` ran.
//! Its descriptors come from the firmware's [`UsbIdentity`](isp_toolbox::emulate::usb::UsbIdentity)
//! (see [`descriptors`]). `usb_control_msg` goes through
//! [`EmulatedUsbDevice::transfer`](isp_toolbox::emulate::usb::EmulatedUsbDevice::transfer), the
//! same code our own drivers' emulated link uses, so both are charged alike; it returns the
//! bytes transferred, or as libusb-0.1 does a negative errno (`-ETIMEDOUT` when nothing
//! answers, `-EPIPE` for a stall, `-ENODEV` once the device is gone) with a `usb_strerror`
//! text naming the device and request. Strings and descriptors are answered from the identity
//! without a transfer (our own emulated link does not read them either). A HID interface has
//! the kernel's `usbhid` driver bound until `usb_detach_kernel_driver_np`. Bulk and interrupt
//! transfers fail with `-ENOENT`: the emulated programmers only use endpoint 0.
//!
//! Every libusb-0.1 function of `<usb.h>` is replaced, so the real library never sees one of
//! our handles, and so is the `usb_busses` variable (avrdude's USBtiny code walks it).

#![warn(missing_docs)]

pub mod abi;
pub mod config;
pub mod descriptors;
pub mod exports;
pub mod firmware;
pub mod shim;
pub mod topology;
