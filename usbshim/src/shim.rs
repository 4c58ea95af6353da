//! libusb-0.1's behaviour over one emulated device, in safe Rust: the device list, handles,
//! control transfers into [`EmulatedUsbDevice::transfer`], strings and descriptors, interface
//! claims and the kernel driver, errors as negative errno values with a `usb_strerror` text,
//! and the dump and stats at exit. The `extern "C"` layer ([`crate::exports`]) only turns
//! pointers into slices and calls in here.

use std::collections::{BTreeSet, HashMap};
use std::ffi::c_char;
use std::io::Write;
use std::path::Path;

use isp_toolbox::Result;
use isp_toolbox::emulate::demo::{demo_chip, load_chip};
use isp_toolbox::emulate::socket::{SharedSocket, Socket, lock};
use isp_toolbox::emulate::usb::{
    EmulatedUsbDevice, Setup, SharedUsbDevice, TransferOutcome, UsbFirmware, lock_device,
};

use crate::abi::{UsbBus, UsbDevice};
use crate::config::Config;
use crate::descriptors::{CONFIGURATION_VALUE, Descriptors, simple_string};
use crate::topology::Topology;

/// Prefix of everything the shim prints.
pub const LOG_PREFIX: &str = "isp-toolbox-usbshim";

/// Size of the `usb_strerror` buffer (libusb-0.1's is 1024 bytes too).
const ERROR_TEXT_SIZE: usize = 1024;

/// The interface class the kernel binds `usbhid` to.
const CLASS_HID: u8 = 3;

/// A failed call: the errno it returns (negated) and the text `usb_strerror` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbError {
    /// A positive errno value (`libc::EPIPE`...); calls return its negation.
    pub errno: i32,
    /// What happened, with the device and request, for `usb_strerror`.
    pub message: String,
}

impl UsbError {
    fn new(errno: i32, message: impl Into<String>) -> Self {
        UsbError {
            errno,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(libc::EINVAL, message)
    }
}

/// Result of a libusb call.
pub type UsbResult<T> = std::result::Result<T, UsbError>;

/// An open `usb_dev_handle`. The program only ever sees its address.
#[derive(Debug, Default)]
struct OpenHandle {
    claimed: BTreeSet<i32>,
}

/// The emulated programmer with its target socket.
struct Board {
    config: Config,
    device: SharedUsbDevice,
    socket: SharedSocket,
    descriptors: Descriptors,
    name: String,
}

impl Board {
    fn new(config: Config) -> Result<Board> {
        let firmware = config.device.build();
        Self::with_firmware(config, firmware)
    }

    fn with_firmware(config: Config, firmware: Box<dyn UsbFirmware>) -> Result<Board> {
        let chip = match config.part {
            None => None,
            Some(part) => {
                let saved = match &config.state_dir {
                    Some(dir) => load_chip(dir, part)?,
                    None => None,
                };
                Some(saved.unwrap_or_else(|| demo_chip(part)))
            }
        };
        let socket = chip
            .map_or_else(Socket::default, Socket::with_chip)
            .shared();
        let identity = firmware.identity();
        let name = format!(
            "emulated {} ({:04X}:{:04X})",
            identity.product.as_deref().unwrap_or(firmware.name()),
            identity.vid,
            identity.pid
        );
        let descriptors = Descriptors::new(identity, firmware.timing().packet_size);
        let mut device = EmulatedUsbDevice::new(firmware, socket.clone(), config.faults.clone());
        device.set_realtime(config.realtime);
        Ok(Board {
            config,
            device: device.shared(),
            socket,
            descriptors,
            name,
        })
    }
}

/// The shim's whole state: one per process.
pub struct Shim {
    board: Option<Board>,
    topology: Topology,
    busses_found: bool,
    unplugged: bool,
    kernel_driver_bound: bool,
    handles: HashMap<usize, Box<OpenHandle>>,
    /// NUL-terminated; boxed so the address `usb_strerror` returns never changes.
    error_text: Box<[c_char; ERROR_TEXT_SIZE]>,
    debug: i32,
    finished: bool,
}

impl Shim {
    /// The shim for `config`, or, when the configuration or the saved chip is bad, a shim with
    /// an empty bus whose `usb_strerror` (and stderr) says why.
    pub fn new(config: Result<Config>) -> Shim {
        let debug = config.as_ref().map_or(0, |c| c.debug);
        Self::assemble(debug, config.and_then(Board::new))
    }

    /// The shim for `config` with a firmware the configuration cannot name (test doubles).
    #[cfg(test)]
    pub(crate) fn with_firmware(config: Config, firmware: Box<dyn UsbFirmware>) -> Shim {
        Self::assemble(config.debug, Board::with_firmware(config, firmware))
    }

    fn assemble(debug: i32, board: Result<Board>) -> Shim {
        let mut shim = Shim {
            topology: Topology::new(board.as_ref().ok().map(|b| &b.descriptors)),
            board: None,
            busses_found: false,
            unplugged: false,
            kernel_driver_bound: false,
            handles: HashMap::new(),
            error_text: Box::new([0; ERROR_TEXT_SIZE]),
            debug,
            finished: false,
        };
        shim.set_error_text("No error");
        match board {
            Ok(board) => {
                // A HID device has the kernel's usbhid driver bound until someone detaches it.
                shim.kernel_driver_bound = board.descriptors.interface_class() == CLASS_HID;
                shim.board = Some(board);
            }
            Err(e) => {
                let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
                let message = format!("{e}{hint}; no emulated device is plugged in");
                warn(&message);
                shim.set_error_text(&message);
            }
        }
        shim
    }

    /// The trace level (`usb_set_debug`).
    pub fn debug(&self) -> i32 {
        self.debug
    }

    /// Sets the trace level.
    pub fn set_debug(&mut self, level: i32) {
        self.debug = level;
    }

    /// Prints a trace line when tracing is on.
    pub fn trace(&self, line: impl FnOnce() -> String) {
        if self.debug > 0 {
            warn(&line());
        }
    }

    /// Records a failure for `usb_strerror` and returns its negative errno.
    pub fn fail(&mut self, error: UsbError) -> i32 {
        self.set_error_text(&error.message);
        self.trace(|| format!("error: {} (-{})", error.message, error.errno));
        -error.errno
    }

    /// The `usb_strerror` text: the last failure's message.
    pub fn error_text(&self) -> *const c_char {
        self.error_text.as_ptr()
    }

    fn set_error_text(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let n = bytes.len().min(ERROR_TEXT_SIZE - 1);
        for (slot, &byte) in self.error_text.iter_mut().zip(&bytes[..n]) {
            *slot = byte as c_char;
        }
        self.error_text[n] = 0;
    }

    /// `usb_find_busses`: the number of busses that appeared since the last call.
    pub fn find_busses(&mut self) -> i32 {
        let changes = i32::from(!self.busses_found);
        self.busses_found = true;
        changes
    }

    /// `usb_find_devices`: lists the device (or takes an unplugged one off the list); returns
    /// the number of changes since the last call.
    pub fn find_devices(&mut self) -> i32 {
        if !self.busses_found {
            return 0;
        }
        let present = self.board.is_some() && !self.unplugged;
        if present == self.topology.is_listed() {
            return 0;
        }
        self.topology.set_listed(present);
        1
    }

    /// `usb_get_busses`: the bus list, empty until `usb_find_busses` ran.
    pub fn busses(&self) -> *mut UsbBus {
        if self.busses_found {
            self.topology.bus()
        } else {
            std::ptr::null_mut()
        }
    }

    /// `usb_open`: a new handle (its address) to `device`.
    pub fn open(&mut self, device: *const UsbDevice) -> UsbResult<usize> {
        let ours = self.topology.device().map(|d| d.cast_const());
        if device.is_null() || ours != Some(device) {
            return Err(UsbError::new(
                libc::ENODEV,
                "usb_open: not a device from usb_find_devices",
            ));
        }
        if self.unplugged {
            return Err(UsbError::new(
                libc::ENODEV,
                format!("usb_open: {} was unplugged", self.board_name()),
            ));
        }
        let handle = Box::<OpenHandle>::default();
        let id = std::ptr::from_ref::<OpenHandle>(&handle) as usize;
        self.handles.insert(id, handle);
        Ok(id)
    }

    /// `usb_close`.
    pub fn close(&mut self, handle: usize) -> UsbResult<()> {
        self.handles
            .remove(&handle)
            .map(drop)
            .ok_or_else(|| bad_handle("usb_close"))
    }

    /// `usb_device`: the device a handle is open on.
    pub fn device_of(&self, handle: usize) -> Option<*mut UsbDevice> {
        self.handles.contains_key(&handle).then_some(())?;
        self.topology.device()
    }

    /// `usb_control_msg`: one control transfer through the emulated device. `data` is the
    /// OUT data stage, or the buffer the IN data stage is copied into. Returns the bytes
    /// transferred.
    pub fn control(
        &mut self,
        handle: usize,
        setup: Setup,
        data: &mut [u8],
        timeout_ms: i32,
    ) -> UsbResult<usize> {
        self.usable(handle, "usb_control_msg")?;
        let board = self.board.as_ref().ok_or_else(no_device)?;
        let outcome = {
            let data_out: &[u8] = if setup.is_in() { &[] } else { data };
            lock_device(&board.device).transfer(setup, data_out)
        };
        let describe = || {
            format!(
                "{}, request type 0x{:02X}, request {}, value 0x{:04X}, index 0x{:04X}, {} byte(s)",
                board.name,
                setup.request_type,
                setup.request,
                setup.value,
                setup.index,
                data.len()
            )
        };
        let result = match outcome {
            TransferOutcome::Done(reply) if setup.is_in() => {
                let n = reply.len().min(data.len());
                data[..n].copy_from_slice(&reply[..n]);
                Ok(n)
            }
            TransferOutcome::Done(_) => Ok(data.len()),
            TransferOutcome::Stall => Err(UsbError::new(
                libc::EPIPE,
                format!(
                    "error sending control message: Broken pipe ({}: the device stalled the request)",
                    describe()
                ),
            )),
            TransferOutcome::Timeout => Err(UsbError::new(
                libc::ETIMEDOUT,
                format!(
                    "error sending control message: Connection timed out ({}: no answer within {timeout_ms} ms)",
                    describe()
                ),
            )),
            TransferOutcome::Gone => Err(UsbError::new(
                libc::ENODEV,
                format!(
                    "error sending control message: No such device ({}: the device was unplugged)",
                    describe()
                ),
            )),
        };
        if result.as_ref().is_err_and(|e| e.errno == libc::ENODEV) {
            self.unplugged = true;
        }
        self.trace(|| {
            let shown = match &result {
                Ok(n) if setup.is_in() => format!("{n} byte(s): {}", hex(&data[..*n])),
                Ok(n) => format!("{n} byte(s) sent: {}", hex(&data[..*n])),
                Err(e) => format!("-{}", e.errno),
            };
            format!(
                "control {:02X} {:02X} {:04X} {:04X} len {} -> {shown}",
                setup.request_type, setup.request, setup.value, setup.index, setup.length
            )
        });
        result
    }

    /// `usb_get_descriptor`: a standard descriptor (device, configuration, string).
    pub fn descriptor(&mut self, handle: usize, kind: u8, index: u8) -> UsbResult<Vec<u8>> {
        self.usable(handle, "usb_get_descriptor")?;
        let board = self.board.as_ref().ok_or_else(no_device)?;
        board.descriptors.get(kind, index).ok_or_else(|| {
            UsbError::new(
                libc::EPIPE,
                format!(
                    "error sending control message: Broken pipe ({} has no descriptor of type {kind} index {index})",
                    board.name
                ),
            )
        })
    }

    /// `usb_get_string`: string descriptor `index` as the device sends it (the device has
    /// one language, so the requested one does not matter).
    pub fn string(&mut self, handle: usize, index: i32) -> UsbResult<Vec<u8>> {
        let index = u8::try_from(index)
            .map_err(|_| UsbError::invalid(format!("usb_get_string: bad string index {index}")))?;
        self.usable(handle, "usb_get_string")?;
        let board = self.board.as_ref().ok_or_else(no_device)?;
        board.descriptors.string_bytes(index).ok_or_else(|| {
            UsbError::new(
                libc::EPIPE,
                format!(
                    "error sending control message: Broken pipe ({} has no string {index})",
                    board.name
                ),
            )
        })
    }

    /// `usb_get_string_simple`: string `index` as bytes, one per character (`?` beyond
    /// Latin-1), without the terminating NUL.
    pub fn string_simple(&mut self, handle: usize, index: i32) -> UsbResult<Vec<u8>> {
        if index == 0 {
            // libusb asks for the language list first; index 0 *is* that list, not text.
            return Err(UsbError::new(
                libc::EIO,
                "usb_get_string_simple: string index 0 is the language list, not a string",
            ));
        }
        Ok(simple_string(&self.string(handle, index)?))
    }

    /// `usb_set_configuration`: the device has configuration 1 (0 unconfigures it).
    pub fn set_configuration(&mut self, handle: usize, value: i32) -> UsbResult<()> {
        self.usable(handle, "usb_set_configuration")?;
        if value == 0 || value == i32::from(CONFIGURATION_VALUE) {
            Ok(())
        } else {
            Err(UsbError::invalid(format!(
                "could not set config {value}: Invalid argument (the device has configuration {CONFIGURATION_VALUE} only)"
            )))
        }
    }

    /// `usb_claim_interface`: only interface 0 exists, and not while a kernel driver has it.
    pub fn claim(&mut self, handle: usize, interface: i32) -> UsbResult<()> {
        self.usable(handle, "usb_claim_interface")?;
        if interface != 0 {
            return Err(UsbError::new(
                libc::ENOENT,
                format!(
                    "could not claim interface {interface}: No such file or directory (the device has interface 0 only)"
                ),
            ));
        }
        if self.kernel_driver_bound {
            return Err(UsbError::new(
                libc::EBUSY,
                "could not claim interface 0: Device or resource busy (the kernel's usbhid driver has it; detach it first)",
            ));
        }
        self.open_handle(handle, "usb_claim_interface")?
            .claimed
            .insert(interface);
        Ok(())
    }

    /// `usb_release_interface`.
    pub fn release(&mut self, handle: usize, interface: i32) -> UsbResult<()> {
        let released = self
            .open_handle(handle, "usb_release_interface")?
            .claimed
            .remove(&interface);
        if released {
            Ok(())
        } else {
            Err(UsbError::invalid(format!(
                "could not release interface {interface}: Invalid argument (it is not claimed)"
            )))
        }
    }

    /// `usb_set_altinterface`: interface 0 has alternate setting 0 only.
    pub fn set_altinterface(&mut self, handle: usize, alternate: i32) -> UsbResult<()> {
        self.usable(handle, "usb_set_altinterface")?;
        if self
            .open_handle(handle, "usb_set_altinterface")?
            .claimed
            .is_empty()
        {
            return Err(UsbError::invalid(
                "usb_set_altinterface: no interface claimed",
            ));
        }
        if alternate == 0 {
            Ok(())
        } else {
            Err(UsbError::invalid(format!(
                "could not set alt intf 0/{alternate}: Invalid argument (only alternate setting 0 exists)"
            )))
        }
    }

    /// `usb_clear_halt`/`usb_resetep`: only endpoint 0 exists.
    pub fn clear_halt(&mut self, handle: usize, endpoint: u32) -> UsbResult<()> {
        self.usable(handle, "usb_clear_halt")?;
        if endpoint & 0x7F == 0 {
            Ok(())
        } else {
            Err(self.no_endpoint(endpoint))
        }
    }

    /// `usb_bulk_*`/`usb_interrupt_*`: the emulated devices talk through endpoint 0 only.
    pub fn endpoint_transfer(&mut self, handle: usize, call: &str, endpoint: i32) -> UsbError {
        if let Err(e) = self.usable(handle, call) {
            return e;
        }
        let mut error = self.no_endpoint(endpoint as u32);
        error.message = format!("{call}: {}", error.message);
        error
    }

    /// `usb_reset`: a bus reset; the firmware keeps its state (V-USB and USBtiny do not reset
    /// the microcontroller), the kernel rebinds its driver to a HID interface.
    pub fn reset(&mut self, handle: usize) -> UsbResult<()> {
        self.usable(handle, "usb_reset")?;
        if let Some(board) = &self.board {
            self.kernel_driver_bound = board.descriptors.interface_class() == CLASS_HID;
        }
        Ok(())
    }

    /// `usb_get_driver_np`: the kernel driver bound to `interface`, if any.
    pub fn driver(&mut self, handle: usize, interface: i32) -> UsbResult<&'static str> {
        self.usable(handle, "usb_get_driver_np")?;
        if interface == 0 && self.kernel_driver_bound {
            Ok("usbhid")
        } else {
            Err(UsbError::new(
                libc::ENODATA,
                format!(
                    "could not get bound driver: No data available (no driver on interface {interface})"
                ),
            ))
        }
    }

    /// `usb_detach_kernel_driver_np`.
    pub fn detach_kernel_driver(&mut self, handle: usize, interface: i32) -> UsbResult<()> {
        self.driver(handle, interface).map_err(|_| {
            UsbError::new(
                libc::ENODATA,
                format!(
                    "could not detach kernel driver from interface {interface}: No data available"
                ),
            )
        })?;
        self.kernel_driver_bound = false;
        Ok(())
    }

    /// At exit: dumps the chip to the state directory and writes the stats, once. Returns
    /// what failed (also printed on stderr).
    pub fn finish(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.finished, true) {
            return Vec::new();
        }
        let Some(board) = &self.board else {
            return Vec::new();
        };
        let mut failures = Vec::new();
        if let Some(dir) = &board.config.state_dir
            && let Err(e) = save_chip(&board.socket, dir)
        {
            failures.push(format!("cannot save the emulated chip: {e}"));
        }
        if let Some(path) = &board.config.stats_file
            && let Err(e) = lock_device(&board.device).stats().write_json(path)
        {
            failures.push(format!("cannot write the stats: {e}"));
        }
        for failure in &failures {
            warn(failure);
        }
        failures
    }

    /// The emulated device, for tests and tools that inspect it.
    pub fn device(&self) -> Option<&SharedUsbDevice> {
        self.board.as_ref().map(|b| &b.device)
    }

    /// The target socket.
    pub fn socket(&self) -> Option<&SharedSocket> {
        self.board.as_ref().map(|b| &b.socket)
    }

    fn board_name(&self) -> &str {
        self.board
            .as_ref()
            .map_or("the emulated device", |b| &b.name)
    }

    fn open_handle(&mut self, handle: usize, call: &str) -> UsbResult<&mut OpenHandle> {
        self.handles
            .get_mut(&handle)
            .map(|h| &mut **h)
            .ok_or_else(|| bad_handle(call))
    }

    /// Checks that `handle` is open and its device still plugged in.
    fn usable(&mut self, handle: usize, call: &str) -> UsbResult<()> {
        self.open_handle(handle, call)?;
        if self.unplugged {
            return Err(UsbError::new(
                libc::ENODEV,
                format!(
                    "{call}: No such device ({} was unplugged)",
                    self.board_name()
                ),
            ));
        }
        Ok(())
    }

    fn no_endpoint(&self, endpoint: u32) -> UsbError {
        UsbError::new(
            libc::ENOENT,
            format!(
                "No such file or directory ({} has no endpoint 0x{:02X}: it talks through control transfers on endpoint 0)",
                self.board_name(),
                endpoint & 0xFF
            ),
        )
    }
}

fn save_chip(socket: &SharedSocket, dir: &Path) -> Result<()> {
    match lock(socket).chip() {
        Some(chip) => chip.dump(dir),
        None => Ok(()),
    }
}

fn bad_handle(call: &str) -> UsbError {
    UsbError::invalid(format!(
        "{call}: not a handle from usb_open (or it was closed)"
    ))
}

fn no_device() -> UsbError {
    UsbError::new(libc::ENODEV, "no emulated device is plugged in")
}

fn hex(bytes: &[u8]) -> String {
    isp_toolbox::util::hex_bytes(bytes)
}

/// Prints a line on stderr, ignoring failures (nothing may panic inside a libusb call).
pub fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "{LOG_PREFIX}: {message}");
}

#[cfg(test)]
mod tests;
