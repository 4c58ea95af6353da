//! The `extern "C"` functions of libusb-0.1 that the shim replaces.
//!
//! Each one catches panics (none may unwind into C), checks its pointers, turns them into
//! slices of the length the caller gave, and calls [`Shim`]. A handle is only ever used as a
//! key: the shim never dereferences a pointer the program passes except to copy into the
//! caller's buffers.

use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use isp_toolbox::emulate::usb::Setup;

use crate::abi::{UsbBus, UsbDevice};
use crate::config::Config;
use crate::shim::{Shim, UsbError, warn};

/// `usb_dev_handle` is opaque to the program; ours is the address of an entry in the shim's
/// handle table.
pub type UsbDevHandle = c_void;

/// `extern struct usb_bus *usb_busses;`: the bus list as a variable. avrdude's USBtiny code
/// walks it instead of calling `usb_get_busses`, and, being an executable, holds its own copy
/// (a copy relocation), so the shim writes the list head wherever the dynamic linker resolved
/// the name: see [`publish_busses`].
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static mut usb_busses: *mut UsbBus = null_mut();

static SHIM: Mutex<Option<Shim>> = Mutex::new(None);
static EXIT_HANDLER: Once = Once::new();

fn global() -> MutexGuard<'static, Option<Shim>> {
    SHIM.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on the shim (built from the environment on first use); `fallback` if it panics.
fn with_shim<T: std::fmt::Debug>(call: &str, fallback: T, f: impl FnOnce(&mut Shim) -> T) -> T {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut guard = global();
        let shim = guard.get_or_insert_with(|| {
            EXIT_HANDLER.call_once(register_exit_handler);
            Shim::new(Config::from_env())
        });
        let value = f(shim);
        if shim.debug() > 1 {
            shim.trace(|| format!("{call} -> {value:?}"));
        }
        value
    }));
    result.unwrap_or_else(|_| {
        warn(&format!("internal error in {call}; returning an error"));
        fallback
    })
}

/// Runs a call that returns 0 or a negative errno.
fn status(call: &str, f: impl FnOnce(&mut Shim) -> Result<(), UsbError>) -> c_int {
    with_shim(call, -libc::EIO, |shim| match f(shim) {
        Ok(()) => 0,
        Err(e) => shim.fail(e),
    })
}

/// Runs a call that returns a count or a negative errno.
fn count(call: &str, f: impl FnOnce(&mut Shim) -> Result<usize, UsbError>) -> c_int {
    with_shim(call, -libc::EIO, |shim| match f(shim) {
        Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Err(e) => shim.fail(e),
    })
}

fn handle_key(handle: *mut UsbDevHandle) -> usize {
    handle as usize
}

fn null_buffer(call: &str) -> UsbError {
    UsbError {
        errno: libc::EINVAL,
        message: format!("{call}: the buffer is a null pointer"),
    }
}

/// Copies `bytes` into the caller's buffer of `capacity` bytes; returns how many fit.
fn copy_out(
    call: &str,
    dst: *mut c_void,
    capacity: usize,
    bytes: &[u8],
) -> Result<usize, UsbError> {
    let n = bytes.len().min(capacity);
    if n == 0 {
        return Ok(0);
    }
    if dst.is_null() {
        return Err(null_buffer(call));
    }
    // SAFETY: the caller promised `capacity` writable bytes at `dst` (libusb's contract), and
    // `n <= capacity`; `bytes` is our own memory, so the ranges cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), n) };
    Ok(n)
}

/// Writes `text` NUL-terminated into a buffer of `capacity` bytes, cut to fit; returns its
/// length without the NUL.
fn copy_c_string(
    call: &str,
    dst: *mut c_char,
    capacity: usize,
    text: &[u8],
) -> Result<usize, UsbError> {
    if capacity == 0 {
        return Err(UsbError {
            errno: libc::EINVAL,
            message: format!("{call}: the buffer has no room"),
        });
    }
    let n = text.len().min(capacity - 1);
    let mut terminated = text[..n].to_vec();
    terminated.push(0);
    copy_out(call, dst.cast(), capacity, &terminated)?;
    Ok(n)
}

/// `void usb_init(void)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_init() {
    with_shim("usb_init", (), |_| ());
}

/// `void usb_set_debug(int level)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_set_debug(level: c_int) {
    with_shim("usb_set_debug", (), |shim| shim.set_debug(level));
}

/// `int usb_find_busses(void)`: also sets `usb_busses`.
#[unsafe(no_mangle)]
pub extern "C" fn usb_find_busses() -> c_int {
    with_shim("usb_find_busses", 0, |shim| {
        let changes = shim.find_busses();
        publish_busses(shim.busses());
        changes
    })
}

/// Stores the bus list head into `usb_busses` as the program sees it: the executable's copy
/// when it has one (found first by `dlsym(RTLD_DEFAULT)`), else ours.
fn publish_busses(head: *mut UsbBus) {
    // SAFETY: dlsym only reads the NUL-terminated name.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"usb_busses".as_ptr()) };
    let slot = if found.is_null() {
        &raw mut usb_busses
    } else {
        found.cast::<*mut UsbBus>()
    };
    // SAFETY: `slot` is the `struct usb_bus *` variable named usb_busses (the program's or
    // ours), aligned and writable; libusb-0.1 programs are single-threaded around it.
    unsafe { slot.write(head) };
}

/// `int usb_find_devices(void)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_find_devices() -> c_int {
    with_shim("usb_find_devices", 0, Shim::find_devices)
}

/// `struct usb_bus *usb_get_busses(void)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_get_busses() -> *mut UsbBus {
    with_shim("usb_get_busses", null_mut(), |shim| shim.busses())
}

/// `struct usb_device *usb_device(usb_dev_handle *dev)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_device(handle: *mut UsbDevHandle) -> *mut UsbDevice {
    with_shim("usb_device", null_mut(), |shim| {
        shim.device_of(handle_key(handle)).unwrap_or(null_mut())
    })
}

/// `usb_dev_handle *usb_open(struct usb_device *dev)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_open(device: *mut UsbDevice) -> *mut UsbDevHandle {
    with_shim("usb_open", null_mut(), |shim| match shim.open(device) {
        Ok(key) => key as *mut UsbDevHandle,
        Err(e) => {
            shim.fail(e);
            null_mut()
        }
    })
}

/// `int usb_close(usb_dev_handle *dev)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_close(handle: *mut UsbDevHandle) -> c_int {
    status("usb_close", |shim| shim.close(handle_key(handle)))
}

/// `int usb_control_msg(usb_dev_handle *dev, int requesttype, int request, int value,
/// int index, char *bytes, int size, int timeout)`: IN or OUT by bit 7 of `requesttype`;
/// returns the bytes transferred or a negative errno.
#[unsafe(no_mangle)]
pub extern "C" fn usb_control_msg(
    handle: *mut UsbDevHandle,
    requesttype: c_int,
    request: c_int,
    value: c_int,
    index: c_int,
    bytes: *mut c_char,
    size: c_int,
    timeout: c_int,
) -> c_int {
    count("usb_control_msg", |shim| {
        let length = u16::try_from(size).map_err(|_| UsbError {
            errno: libc::EINVAL,
            message: format!("usb_control_msg: size {size} does not fit a control transfer"),
        })?;
        // libusb-0.1 stores the arguments into the 8-byte setup packet, truncating them.
        let setup = Setup {
            request_type: requesttype as u8,
            request: request as u8,
            value: value as u16,
            index: index as u16,
            length,
        };
        let mut empty = [0u8; 0];
        if length == 0 {
            return shim.control(handle_key(handle), setup, &mut empty, timeout);
        }
        if bytes.is_null() {
            return Err(null_buffer("usb_control_msg"));
        }
        if !setup.is_in() {
            // SAFETY: the caller passes `size` readable bytes at `bytes` (libusb's contract);
            // they are copied at once, since an OUT buffer may be read-only memory.
            let out =
                unsafe { std::slice::from_raw_parts(bytes.cast::<u8>(), usize::from(length)) };
            return shim.control(handle_key(handle), setup, &mut out.to_vec(), timeout);
        }
        // SAFETY: for IN the caller passes `size` writable bytes at `bytes` (libusb's
        // contract); the slice lives only for this call.
        let data =
            unsafe { std::slice::from_raw_parts_mut(bytes.cast::<u8>(), usize::from(length)) };
        shim.control(handle_key(handle), setup, data, timeout)
    })
}

/// `int usb_get_string(usb_dev_handle *dev, int index, int langid, char *buf, size_t buflen)`:
/// the raw string descriptor.
#[unsafe(no_mangle)]
pub extern "C" fn usb_get_string(
    handle: *mut UsbDevHandle,
    index: c_int,
    _langid: c_int,
    buf: *mut c_char,
    buflen: libc::size_t,
) -> c_int {
    count("usb_get_string", |shim| {
        let descriptor = shim.string(handle_key(handle), index)?;
        copy_out("usb_get_string", buf.cast(), buflen, &descriptor)
    })
}

/// `int usb_get_string_simple(usb_dev_handle *dev, int index, char *buf, size_t buflen)`:
/// the string as NUL-terminated bytes; returns its length.
#[unsafe(no_mangle)]
pub extern "C" fn usb_get_string_simple(
    handle: *mut UsbDevHandle,
    index: c_int,
    buf: *mut c_char,
    buflen: libc::size_t,
) -> c_int {
    count("usb_get_string_simple", |shim| {
        let text = shim.string_simple(handle_key(handle), index)?;
        copy_c_string("usb_get_string_simple", buf, buflen, &text)
    })
}

/// `int usb_get_descriptor(usb_dev_handle *udev, unsigned char type, unsigned char index,
/// void *buf, int size)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_get_descriptor(
    handle: *mut UsbDevHandle,
    kind: c_uchar,
    index: c_uchar,
    buf: *mut c_void,
    size: c_int,
) -> c_int {
    count("usb_get_descriptor", |shim| {
        let descriptor = shim.descriptor(handle_key(handle), kind, index)?;
        copy_out(
            "usb_get_descriptor",
            buf,
            usize::try_from(size).unwrap_or(0),
            &descriptor,
        )
    })
}

/// `int usb_get_descriptor_by_endpoint(usb_dev_handle *udev, int ep, unsigned char type,
/// unsigned char index, void *buf, int size)`: only endpoint 0 exists.
#[unsafe(no_mangle)]
pub extern "C" fn usb_get_descriptor_by_endpoint(
    handle: *mut UsbDevHandle,
    endpoint: c_int,
    kind: c_uchar,
    index: c_uchar,
    buf: *mut c_void,
    size: c_int,
) -> c_int {
    count("usb_get_descriptor_by_endpoint", |shim| {
        if endpoint & 0x7F != 0 {
            return Err(shim.endpoint_transfer(
                handle_key(handle),
                "usb_get_descriptor_by_endpoint",
                endpoint,
            ));
        }
        let descriptor = shim.descriptor(handle_key(handle), kind, index)?;
        copy_out(
            "usb_get_descriptor_by_endpoint",
            buf,
            usize::try_from(size).unwrap_or(0),
            &descriptor,
        )
    })
}

/// `int usb_bulk_write(usb_dev_handle *dev, int ep, const char *bytes, int size, int timeout)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_bulk_write(
    handle: *mut UsbDevHandle,
    endpoint: c_int,
    _bytes: *const c_char,
    _size: c_int,
    _timeout: c_int,
) -> c_int {
    no_endpoint("usb_bulk_write", handle, endpoint)
}

/// `int usb_bulk_read(usb_dev_handle *dev, int ep, char *bytes, int size, int timeout)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_bulk_read(
    handle: *mut UsbDevHandle,
    endpoint: c_int,
    _bytes: *mut c_char,
    _size: c_int,
    _timeout: c_int,
) -> c_int {
    no_endpoint("usb_bulk_read", handle, endpoint)
}

/// `int usb_interrupt_write(usb_dev_handle *dev, int ep, const char *bytes, int size,
/// int timeout)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_interrupt_write(
    handle: *mut UsbDevHandle,
    endpoint: c_int,
    _bytes: *const c_char,
    _size: c_int,
    _timeout: c_int,
) -> c_int {
    no_endpoint("usb_interrupt_write", handle, endpoint)
}

/// `int usb_interrupt_read(usb_dev_handle *dev, int ep, char *bytes, int size, int timeout)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_interrupt_read(
    handle: *mut UsbDevHandle,
    endpoint: c_int,
    _bytes: *mut c_char,
    _size: c_int,
    _timeout: c_int,
) -> c_int {
    no_endpoint("usb_interrupt_read", handle, endpoint)
}

/// The emulated programmers talk through endpoint 0 only: bulk and interrupt transfers fail
/// as they would on a device without those endpoints.
fn no_endpoint(call: &str, handle: *mut UsbDevHandle, endpoint: c_int) -> c_int {
    with_shim(call, -libc::EIO, |shim| {
        let error = shim.endpoint_transfer(handle_key(handle), call, endpoint);
        shim.fail(error)
    })
}

/// `int usb_set_configuration(usb_dev_handle *dev, int configuration)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_set_configuration(handle: *mut UsbDevHandle, configuration: c_int) -> c_int {
    status("usb_set_configuration", |shim| {
        shim.set_configuration(handle_key(handle), configuration)
    })
}

/// `int usb_claim_interface(usb_dev_handle *dev, int interface)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_claim_interface(handle: *mut UsbDevHandle, interface: c_int) -> c_int {
    status("usb_claim_interface", |shim| {
        shim.claim(handle_key(handle), interface)
    })
}

/// `int usb_release_interface(usb_dev_handle *dev, int interface)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_release_interface(handle: *mut UsbDevHandle, interface: c_int) -> c_int {
    status("usb_release_interface", |shim| {
        shim.release(handle_key(handle), interface)
    })
}

/// `int usb_set_altinterface(usb_dev_handle *dev, int alternate)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_set_altinterface(handle: *mut UsbDevHandle, alternate: c_int) -> c_int {
    status("usb_set_altinterface", |shim| {
        shim.set_altinterface(handle_key(handle), alternate)
    })
}

/// `int usb_resetep(usb_dev_handle *dev, unsigned int ep)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_resetep(handle: *mut UsbDevHandle, endpoint: c_uint) -> c_int {
    status("usb_resetep", |shim| {
        shim.clear_halt(handle_key(handle), endpoint)
    })
}

/// `int usb_clear_halt(usb_dev_handle *dev, unsigned int ep)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_clear_halt(handle: *mut UsbDevHandle, endpoint: c_uint) -> c_int {
    status("usb_clear_halt", |shim| {
        shim.clear_halt(handle_key(handle), endpoint)
    })
}

/// `int usb_reset(usb_dev_handle *dev)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_reset(handle: *mut UsbDevHandle) -> c_int {
    status("usb_reset", |shim| shim.reset(handle_key(handle)))
}

/// `int usb_get_driver_np(usb_dev_handle *dev, int interface, char *name,
/// unsigned int namelen)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_get_driver_np(
    handle: *mut UsbDevHandle,
    interface: c_int,
    name: *mut c_char,
    namelen: c_uint,
) -> c_int {
    status("usb_get_driver_np", |shim| {
        let driver = shim.driver(handle_key(handle), interface)?;
        let capacity = usize::try_from(namelen).unwrap_or(0);
        copy_c_string("usb_get_driver_np", name, capacity, driver.as_bytes()).map(drop)
    })
}

/// `int usb_detach_kernel_driver_np(usb_dev_handle *dev, int interface)`
#[unsafe(no_mangle)]
pub extern "C" fn usb_detach_kernel_driver_np(
    handle: *mut UsbDevHandle,
    interface: c_int,
) -> c_int {
    status("usb_detach_kernel_driver_np", |shim| {
        shim.detach_kernel_driver(handle_key(handle), interface)
    })
}

/// `char *usb_strerror(void)`: the last failure's text (valid until the next failure).
#[unsafe(no_mangle)]
pub extern "C" fn usb_strerror() -> *mut c_char {
    static INTERNAL: &std::ffi::CStr = c"internal error in the ISP Toolbox libusb shim";
    with_shim("usb_strerror", INTERNAL.as_ptr().cast_mut(), |shim| {
        shim.error_text().cast_mut()
    })
}

fn register_exit_handler() {
    // SAFETY: `at_exit` is an `extern "C" fn()` that never unwinds; atexit only stores it.
    let registered = unsafe { libc::atexit(at_exit) };
    if registered != 0 {
        warn("cannot register the exit handler: the chip and stats will not be saved");
    }
}

/// Runs at `exit()`: saves the chip and the stats (avrdude and teensy_loader_cli end with
/// `exit`, never returning through us).
extern "C" fn at_exit() {
    let _ = catch_unwind(|| {
        if let Some(shim) = global().as_mut() {
            shim.finish();
        }
    });
}

#[cfg(test)]
mod tests;
