use super::*;
use crate::firmware::DeviceKind;
use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::emulate::usb::{UsbIdentity, UsbIo, UsbReply, UsbTiming};
use isp_toolbox::part::PartDb;
use isp_toolbox::programmer::usbtiny::protocol::request;
use std::ffi::CStr;

fn config(faults: &str) -> Config {
    Config {
        device: DeviceKind::UsbTiny,
        part: Some(PartDb::builtin().unwrap().find("m32u4").unwrap()),
        state_dir: None,
        stats_file: None,
        faults: Faults::parse(faults).unwrap(),
        realtime: false,
        debug: 0,
    }
}

/// A shim with the device found and opened.
fn opened(config: Config) -> (Shim, usize) {
    let mut shim = Shim::new(Ok(config));
    shim.find_busses();
    shim.find_devices();
    let device = listed_device(&shim).expect("device listed");
    let handle = shim.open(device).unwrap();
    (shim, handle)
}

fn listed_device(shim: &Shim) -> Option<*const UsbDevice> {
    let bus = shim.busses();
    assert!(!bus.is_null());
    // SAFETY (test): the bus is the shim's leaked structure.
    let head = unsafe { (*bus).devices };
    (!head.is_null()).then_some(head.cast_const())
}

fn error_text(shim: &Shim) -> String {
    // SAFETY (test): the buffer is NUL-terminated by construction.
    unsafe { CStr::from_ptr(shim.error_text()) }
        .to_string_lossy()
        .into_owned()
}

fn setup_in(request: u8, value: u16, index: u16, length: u16) -> Setup {
    Setup {
        request_type: 0xC0,
        request,
        value,
        index,
        length,
    }
}

#[test]
fn lists_the_device_once_busses_are_found() {
    let mut shim = Shim::new(Ok(config("")));
    assert!(shim.busses().is_null(), "no busses before usb_find_busses");
    assert_eq!(shim.find_devices(), 0);
    assert_eq!(shim.find_busses(), 1);
    assert_eq!(shim.find_busses(), 0);
    assert!(listed_device(&shim).is_none());
    assert_eq!(shim.find_devices(), 1);
    assert_eq!(shim.find_devices(), 0);
    let device = listed_device(&shim).unwrap();
    // SAFETY (test): reading the leaked device as a C program does.
    let vid = unsafe { (*device).descriptor.idVendor };
    assert_eq!(vid, 0x1781);
}

#[test]
fn handles_open_close_and_name_their_device() {
    let (mut shim, handle) = opened(config(""));
    assert_eq!(
        shim.device_of(handle).map(|d| d.cast_const()),
        listed_device(&shim)
    );
    assert_eq!(shim.open(std::ptr::null()).unwrap_err().errno, libc::ENODEV);
    let second = shim.open(listed_device(&shim).unwrap()).unwrap();
    assert_ne!(handle, second, "each open gets its own handle");
    assert_eq!(shim.close(handle), Ok(()));
    assert_eq!(shim.close(handle).unwrap_err().errno, libc::EINVAL);
    assert!(shim.device_of(handle).is_none());
    let error = shim
        .control(handle, setup_in(request::ECHO, 0, 0, 8), &mut [0; 8], 500)
        .unwrap_err();
    assert_eq!(error.errno, libc::EINVAL);
    assert!(
        error.message.contains("usb_control_msg"),
        "{}",
        error.message
    );
}

#[test]
fn control_transfers_reach_the_firmware_and_the_chip() {
    let (mut shim, h) = opened(config(""));
    // USBtiny's ECHO returns the setup packet.
    let mut echo = [0u8; 8];
    let n = shim
        .control(
            h,
            setup_in(request::ECHO, 0x1234, 0x5678, 8),
            &mut echo,
            500,
        )
        .unwrap();
    assert_eq!(n, 8);
    assert_eq!(echo, [0xC0, 0, 0x34, 0x12, 0x78, 0x56, 8, 0]);
    // POWERUP (RESET low, SCK period 10), then Programming Enable: the chip echoes 0x53.
    let mut none = [0u8; 0];
    shim.control(h, setup_in(request::POWERUP, 10, 0, 0), &mut none, 500)
        .unwrap();
    let mut reply = [0u8; 4];
    shim.control(
        h,
        setup_in(request::SPI, 0x53AC, 0x0000, 4),
        &mut reply,
        500,
    )
    .unwrap();
    assert_eq!(reply[2], 0x53, "programming enable echo: {reply:02X?}");
    // Signature byte 0 of the ATmega32U4.
    shim.control(
        h,
        setup_in(request::SPI, 0x0030, 0x0000, 4),
        &mut reply,
        500,
    )
    .unwrap();
    assert_eq!(reply[3], 0x1E);
    let stats = lock_device(shim.device().unwrap()).stats();
    assert_eq!(stats.round_trips, 4);
    assert_eq!(stats.isp_instructions, 2);
}

#[test]
fn in_data_is_cut_to_the_callers_buffer() {
    let (mut shim, h) = opened(config(""));
    let mut short = [0u8; 3];
    let n = shim
        .control(h, setup_in(request::ECHO, 0xAAAA, 0, 3), &mut short, 500)
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(short, [0xC0, 0, 0xAA]);
}

#[test]
fn faults_map_to_libusb_errno_values() {
    let (mut shim, h) = opened(config("drop=1,hangup=2"));
    let mut buf = [0u8; 8];
    let timeout = shim
        .control(h, setup_in(request::ECHO, 0, 0, 8), &mut buf, 250)
        .unwrap_err();
    assert_eq!(timeout.errno, libc::ETIMEDOUT);
    assert!(timeout.message.contains("250 ms"), "{}", timeout.message);
    assert_eq!(shim.fail(timeout), -libc::ETIMEDOUT);
    assert!(error_text(&shim).contains("Connection timed out"));

    assert!(
        shim.control(h, setup_in(request::ECHO, 0, 0, 8), &mut buf, 250)
            .is_ok()
    );
    let gone = shim
        .control(h, setup_in(request::ECHO, 0, 0, 8), &mut buf, 250)
        .unwrap_err();
    assert_eq!(gone.errno, libc::ENODEV);
    assert!(gone.message.contains("USBtinyISP"), "{}", gone.message);
    // Unplugged: every call fails, and the next scan takes the device off the bus.
    assert_eq!(shim.claim(h, 0).unwrap_err().errno, libc::ENODEV);
    assert_eq!(shim.find_devices(), 1);
    assert!(listed_device(&shim).is_none());
    let device = shim.device_of(h).unwrap();
    assert_eq!(shim.open(device).unwrap_err().errno, libc::ENODEV);
    assert_eq!(shim.close(h), Ok(()));
}

#[test]
fn stalls_are_broken_pipes() {
    let mut shim = Shim::with_firmware(config(""), Box::new(HidStub));
    shim.find_busses();
    shim.find_devices();
    let h = shim.open(listed_device(&shim).unwrap()).unwrap();
    let stall = shim
        .control(h, setup_in(1, 0, 0, 4), &mut [0; 4], 500)
        .unwrap_err();
    assert_eq!(stall.errno, libc::EPIPE);
    let mut report = [1u8, 2, 3];
    let out = Setup {
        request_type: 0x21,
        request: 9,
        value: 0x0200,
        index: 0,
        length: 3,
    };
    assert_eq!(shim.control(h, out, &mut report, 500), Ok(3));
}

#[test]
fn strings_come_from_the_identity() {
    let (mut shim, h) = opened(config(""));
    assert_eq!(shim.string_simple(h, 2).unwrap(), b"USBtinyISP");
    assert_eq!(shim.string(h, 0).unwrap(), vec![4, 3, 0x09, 0x04]);
    let raw = shim.string(h, 2).unwrap();
    assert_eq!(raw[1], 3);
    assert_eq!(usize::from(raw[0]), raw.len());
    // USBtiny has no manufacturer string: the device stalls that request.
    assert_eq!(shim.string_simple(h, 1).unwrap_err().errno, libc::EPIPE);
    assert_eq!(shim.string_simple(h, 0).unwrap_err().errno, libc::EIO);
    assert_eq!(shim.string(h, 300).unwrap_err().errno, libc::EINVAL);
    assert_eq!(shim.descriptor(h, 1, 0).unwrap().len(), 18);
    assert_eq!(shim.descriptor(h, 0x22, 0).unwrap_err().errno, libc::EPIPE);
}

#[test]
fn configuration_and_interface_claims() {
    let (mut shim, h) = opened(config(""));
    assert_eq!(shim.set_configuration(h, 1), Ok(()));
    assert_eq!(
        shim.set_configuration(h, 2).unwrap_err().errno,
        libc::EINVAL
    );
    assert_eq!(shim.set_altinterface(h, 0).unwrap_err().errno, libc::EINVAL);
    assert_eq!(shim.claim(h, 1).unwrap_err().errno, libc::ENOENT);
    assert_eq!(shim.claim(h, 0), Ok(()));
    assert_eq!(shim.set_altinterface(h, 0), Ok(()));
    assert_eq!(shim.set_altinterface(h, 1).unwrap_err().errno, libc::EINVAL);
    assert_eq!(shim.release(h, 0), Ok(()));
    assert_eq!(shim.release(h, 0).unwrap_err().errno, libc::EINVAL);
    // A vendor-class device has no kernel driver.
    assert_eq!(shim.driver(h, 0).unwrap_err().errno, libc::ENODATA);
    assert_eq!(
        shim.detach_kernel_driver(h, 0).unwrap_err().errno,
        libc::ENODATA
    );
    assert_eq!(shim.clear_halt(h, 0x80), Ok(()));
    assert_eq!(shim.clear_halt(h, 0x81).unwrap_err().errno, libc::ENOENT);
    let bulk = shim.endpoint_transfer(h, "usb_bulk_read", 0x82);
    assert_eq!(bulk.errno, libc::ENOENT);
    assert!(bulk.message.contains("0x82"), "{}", bulk.message);
    assert_eq!(shim.reset(h), Ok(()));
}

/// A HID device that accepts SET_REPORT and stalls everything else, to check the kernel
/// driver rules teensy_loader_cli relies on.
struct HidStub;

impl UsbFirmware for HidStub {
    fn name(&self) -> &'static str {
        "hid-stub"
    }
    fn identity(&self) -> UsbIdentity {
        UsbIdentity {
            vid: 0x16C0,
            pid: 0x0478,
            bcd_device: 0x0100,
            manufacturer: None,
            product: None,
            serial: None,
            interface_class: 3,
        }
    }
    fn timing(&self) -> UsbTiming {
        UsbTiming {
            transfer_ns: 1_000_000,
            packet_ns: 50_000,
            packet_size: 64,
        }
    }
    fn control(&mut self, setup: &Setup, _data_out: &[u8], _io: &mut UsbIo) -> UsbReply {
        if setup.request_type == 0x21 && setup.request == 9 {
            UsbReply::Data(Vec::new())
        } else {
            UsbReply::Stall
        }
    }
}

#[test]
fn hid_interfaces_belong_to_usbhid_until_detached() {
    let mut shim = Shim::with_firmware(config(""), Box::new(HidStub));
    shim.find_busses();
    shim.find_devices();
    let device = listed_device(&shim).unwrap();
    // SAFETY (test): reading the leaked device.
    let (class, packet) = unsafe {
        (
            (*device).descriptor.bDeviceClass,
            (*device).descriptor.bMaxPacketSize0,
        )
    };
    assert_eq!((class, packet), (0, 64));
    let h = shim.open(device).unwrap();
    assert_eq!(shim.driver(h, 0), Ok("usbhid"));
    assert_eq!(shim.claim(h, 0).unwrap_err().errno, libc::EBUSY);
    assert_eq!(shim.detach_kernel_driver(h, 0), Ok(()));
    assert_eq!(shim.driver(h, 0).unwrap_err().errno, libc::ENODATA);
    assert_eq!(shim.claim(h, 0), Ok(()));
    // A bus reset makes the kernel bind its driver again.
    assert_eq!(shim.reset(h), Ok(()));
    assert_eq!(shim.driver(h, 0), Ok("usbhid"));
}

#[test]
fn a_bad_configuration_leaves_an_empty_bus_that_says_why() {
    let mut shim = Shim::new(Err(isp_toolbox::Error::invalid(
        "ISP_TOOLBOX_SHIM_DEVICE is not set",
    )));
    assert_eq!(shim.find_busses(), 1);
    assert_eq!(shim.find_devices(), 0);
    assert!(listed_device(&shim).is_none());
    assert!(error_text(&shim).contains("ISP_TOOLBOX_SHIM_DEVICE is not set"));
    assert!(shim.finish().is_empty());
}

#[test]
fn error_text_is_cut_to_its_buffer() {
    let mut shim = Shim::new(Ok(config("")));
    assert_eq!(error_text(&shim), "No error");
    let long = "x".repeat(5000);
    shim.fail(UsbError::invalid(long));
    assert_eq!(error_text(&shim).len(), ERROR_TEXT_SIZE - 1);
}

#[test]
fn the_chip_is_loaded_from_the_state_dir_and_saved_back_at_finish() {
    use isp_toolbox::emulate::{ChipConfig, EmulatedChip, FuseValues};
    use isp_toolbox::part::FuseKind;
    let dir = std::env::temp_dir().join(format!("usbshim-finish-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("board");
    let stats = dir.join("stats.json");
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let fuses = FuseValues {
        lfuse: 0x5E,
        hfuse: 0xD8,
        efuse: Some(0xCB),
    };
    let saved = ChipConfig {
        fuses: Some(fuses),
        ..Default::default()
    };
    EmulatedChip::new(part, saved)
        .unwrap()
        .dump(&state)
        .unwrap();

    let mut c = config("");
    c.state_dir = Some(state.clone());
    c.stats_file = Some(stats.clone());
    let (mut shim, h) = opened(c);
    let loaded = lock(shim.socket().unwrap())
        .chip()
        .unwrap()
        .fuse(FuseKind::Low);
    assert_eq!(loaded, Some(0x5E));
    shim.control(h, setup_in(request::ECHO, 0, 0, 8), &mut [0; 8], 500)
        .unwrap();
    std::fs::remove_dir_all(&state).unwrap();

    assert!(shim.finish().is_empty());
    let text = std::fs::read_to_string(state.join("fuses.json")).unwrap();
    assert!(text.contains("0x5E"), "{text}");
    assert_eq!(
        std::fs::read(state.join("flash.bin")).unwrap().len(),
        32 * 1024
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["round_trips"], 1);
    std::fs::remove_file(&stats).unwrap();
    assert!(shim.finish().is_empty());
    assert!(!stats.exists(), "finish runs once");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn finish_reports_what_it_could_not_write() {
    let dir = std::env::temp_dir().join(format!("usbshim-unwritable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let mut c = config("");
    c.state_dir = Some(blocker.join("board"));
    c.stats_file = Some(blocker.join("stats.json"));
    let mut shim = Shim::new(Ok(c));
    let failures = shim.finish();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("cannot save the emulated chip"));
    assert!(failures[1].contains("cannot write the stats"));
    let _ = std::fs::remove_dir_all(&dir);
}
