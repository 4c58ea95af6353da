//! The C functions as a libusb-0.1 program calls them. The only test in the crate that
//! touches the process-wide shim, so it runs alone on it.

use super::*;
use crate::firmware::DeviceKind;
use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::part::PartDb;
use std::ffi::CStr;

fn strerror() -> String {
    // SAFETY (test): usb_strerror returns a NUL-terminated buffer.
    unsafe { CStr::from_ptr(usb_strerror()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_libusb_session_through_the_c_functions() {
    let config = Config {
        device: DeviceKind::UsbTiny,
        part: Some(PartDb::builtin().unwrap().find("m32u4").unwrap()),
        state_dir: None,
        stats_file: None,
        faults: Faults::none(),
        realtime: false,
        debug: 0,
    };
    *global() = Some(Shim::new(Ok(config)));

    usb_init();
    usb_set_debug(0);
    assert!(usb_get_busses().is_null());
    assert_eq!(usb_find_busses(), 1);
    assert_eq!(usb_find_devices(), 1);
    let bus = usb_get_busses();
    assert!(!bus.is_null());
    // SAFETY (test): walking the device list as avrdude does.
    let device = unsafe { (*bus).devices };
    assert!(!device.is_null());
    // SAFETY (test): as above.
    let (vid, pid) = unsafe {
        (
            (*device).descriptor.idVendor,
            (*device).descriptor.idProduct,
        )
    };
    assert_eq!((vid, pid), (0x1781, 0x0C9F));

    let handle = usb_open(device);
    assert!(!handle.is_null());
    assert_eq!(usb_device(handle), device);

    let mut text = [0 as c_char; 64];
    assert_eq!(
        usb_get_string_simple(handle, 2, text.as_mut_ptr(), text.len()),
        10
    );
    // SAFETY (test): NUL-terminated by usb_get_string_simple.
    assert_eq!(
        unsafe { CStr::from_ptr(text.as_ptr()) }.to_str(),
        Ok("USBtinyISP")
    );
    let mut small = [0x55 as c_char; 4];
    assert_eq!(
        usb_get_string_simple(handle, 2, small.as_mut_ptr(), small.len()),
        3
    );
    assert_eq!(small[3], 0, "cut strings stay terminated");
    assert_eq!(
        usb_get_string_simple(handle, 2, null_mut(), 16),
        -libc::EINVAL
    );
    let mut raw = [0 as c_char; 2];
    assert_eq!(
        usb_get_string(handle, 2, 0x0409, raw.as_mut_ptr(), raw.len()),
        2
    );
    assert_eq!(
        raw[0] as u8, 22,
        "bLength of the 10-character product string"
    );

    let mut echo = [0 as c_char; 8];
    let n = usb_control_msg(handle, 0xC0, 0, 0x1234, 0x5678, echo.as_mut_ptr(), 8, 500);
    assert_eq!(n, 8);
    assert_eq!(
        echo.map(|b| b as u8),
        [0xC0, 0, 0x34, 0x12, 0x78, 0x56, 8, 0]
    );
    // OUT data may live in read-only memory.
    static OUT: [u8; 3] = [1, 2, 3];
    let sent = usb_control_msg(
        handle,
        0x40,
        0,
        0,
        0,
        OUT.as_ptr().cast_mut().cast(),
        3,
        500,
    );
    assert_eq!(sent, 3);
    assert_eq!(
        usb_control_msg(handle, 0x40, 6, 0, 0, null_mut(), 0, 500),
        0
    );
    assert_eq!(
        usb_control_msg(handle, 0xC0, 0, 0, 0, null_mut(), 8, 500),
        -libc::EINVAL
    );
    assert!(strerror().contains("null pointer"), "{}", strerror());
    assert_eq!(
        usb_control_msg(handle, 0xC0, 0, 0, 0, echo.as_mut_ptr(), -1, 500),
        -libc::EINVAL
    );

    let mut descriptor = [0u8; 64];
    let n = usb_get_descriptor(handle, 1, 0, descriptor.as_mut_ptr().cast(), 64);
    assert_eq!(n, 18);
    assert_eq!(&descriptor[8..12], &[0x81, 0x17, 0x9F, 0x0C]);
    let n = usb_get_descriptor_by_endpoint(handle, 0, 2, 0, descriptor.as_mut_ptr().cast(), 4);
    assert_eq!(n, 4, "cut to the caller's size");

    assert_eq!(usb_set_configuration(handle, 1), 0);
    assert_eq!(usb_claim_interface(handle, 0), 0);
    assert_eq!(usb_set_altinterface(handle, 0), 0);
    let mut driver = [0 as c_char; 32];
    assert_eq!(
        usb_get_driver_np(handle, 0, driver.as_mut_ptr(), 32),
        -libc::ENODATA
    );
    assert!(strerror().contains("could not get bound driver"));
    assert_eq!(usb_detach_kernel_driver_np(handle, 0), -libc::ENODATA);
    assert_eq!(
        usb_bulk_read(handle, 0x81, null_mut(), 0, 100),
        -libc::ENOENT
    );
    assert_eq!(
        usb_bulk_write(handle, 1, std::ptr::null(), 0, 100),
        -libc::ENOENT
    );
    assert_eq!(
        usb_interrupt_read(handle, 0x81, null_mut(), 0, 100),
        -libc::ENOENT
    );
    assert_eq!(
        usb_interrupt_write(handle, 1, std::ptr::null(), 0, 100),
        -libc::ENOENT
    );
    assert_eq!(usb_clear_halt(handle, 0), 0);
    assert_eq!(usb_resetep(handle, 0x81), -libc::ENOENT);
    assert_eq!(usb_reset(handle), 0);
    assert_eq!(usb_release_interface(handle, 0), 0);

    assert_eq!(usb_close(handle), 0);
    assert_eq!(usb_close(handle), -libc::EINVAL);
    assert!(usb_device(handle).is_null());
    let garbage = 0x1234usize as *mut UsbDevHandle;
    assert_eq!(usb_claim_interface(garbage, 0), -libc::EINVAL);
    assert!(strerror().contains("not a handle from usb_open"));
    assert!(usb_open(null_mut()).is_null());
    assert!(usb_open(0x10usize as *mut UsbDevice).is_null());
}
