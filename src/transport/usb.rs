//! A USB programmer (USBasp, USBtiny, HalfKay) as a [`UsbLink`], over `rusb`.
//!
//! Always through an explicit [`rusb::Context`]: the global one panics where libusb cannot
//! start (no usbfs, as in many containers). Here that becomes an [`Error::Open`] saying that
//! no USB subsystem is accessible, and [`list_usb_devices`] returns an empty list with the
//! reason.

use std::time::Duration;

use rusb::{Context, Device, DeviceDescriptor, DeviceHandle, UsbContext};

use super::{MAX_WAIT, UsbLink, link_lost};
use crate::catalog::UsbId;
use crate::error::{Error, Result};

/// Where the Linux udev rules that grant access to programmers are shipped.
const UDEV_RULES: &str = "packaging/linux/60-isp-toolbox.rules";

/// Which device to open: any of several vendor:product pairs, optionally narrowed by the
/// manufacturer and product strings (the USBasp shares its id with other V-USB devices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsbFilter {
    /// Accepted vendor:product ids.
    pub ids: Vec<UsbId>,
    /// Required manufacturer string, compared exactly.
    pub manufacturer: Option<String>,
    /// Required product string, compared exactly.
    pub product: Option<String>,
}

impl UsbFilter {
    /// A filter for these ids and no strings.
    pub fn ids(ids: &[UsbId]) -> UsbFilter {
        UsbFilter {
            ids: ids.to_vec(),
            ..UsbFilter::default()
        }
    }

    /// `USB 16C0:05DC` or `USB 16C0:05DC/03EB:C7B4`, for messages.
    fn describe(&self) -> String {
        let ids: Vec<String> = self.ids.iter().map(UsbId::to_string).collect();
        format!("USB {}", ids.join("/"))
    }
}

/// A USB device seen on the bus.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsbDeviceInfo {
    /// Vendor and product id.
    pub id: UsbId,
    /// Bus number.
    pub bus: u8,
    /// Device address on the bus.
    pub address: u8,
    /// Manufacturer string, when readable (it needs access to the device).
    pub manufacturer: Option<String>,
    /// Product string, when readable.
    pub product: Option<String>,
    /// Serial number string, when readable.
    pub serial_number: Option<String>,
}

impl std::fmt::Display for UsbDeviceInfo {
    /// `16C0:05DC (bus 1 device 7) www.fischl.de USBasp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (bus {} device {})", self.id, self.bus, self.address)?;
        for text in [&self.manufacturer, &self.product].into_iter().flatten() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// The USB devices on this machine, or why there are none to see.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsbDeviceList {
    /// The devices, by bus and address.
    pub devices: Vec<UsbDeviceInfo>,
    /// Set when USB could not be looked at at all (no USB subsystem, no permission).
    pub unavailable: Option<String>,
}

/// The USB devices on this machine, for the port picker. Never fails: without a USB
/// subsystem the list is empty and `unavailable` says why.
pub fn list_usb_devices() -> UsbDeviceList {
    let context = match new_context() {
        Ok(context) => context,
        Err(reason) => {
            return UsbDeviceList {
                devices: Vec::new(),
                unavailable: Some(reason),
            };
        }
    };
    match context.devices() {
        Ok(list) => {
            let mut devices: Vec<UsbDeviceInfo> = list
                .iter()
                .filter_map(|device| {
                    let descriptor = device.device_descriptor().ok()?;
                    Some(describe(&device, &descriptor))
                })
                .collect();
            devices.sort_by_key(|d| (d.bus, d.address));
            UsbDeviceList {
                devices,
                unavailable: None,
            }
        }
        Err(e) => UsbDeviceList {
            devices: Vec::new(),
            unavailable: Some(format!("cannot list USB devices: {e}")),
        },
    }
}

/// A libusb context, or a sentence saying why there is none.
fn new_context() -> std::result::Result<Context, String> {
    Context::new().map_err(|e| {
        format!(
            "no USB subsystem is accessible (libusb could not start: {e}); on Linux it needs /dev/bus/usb, which containers and some sandboxes do not have"
        )
    })
}

/// Id, place and (if the device can be opened) strings of a device.
fn describe(device: &Device<Context>, descriptor: &DeviceDescriptor) -> UsbDeviceInfo {
    let strings = device
        .open()
        .ok()
        .map(|handle| read_strings(&handle, descriptor));
    let (manufacturer, product, serial_number) = strings.unwrap_or_default();
    UsbDeviceInfo {
        id: UsbId::new(descriptor.vendor_id(), descriptor.product_id()),
        bus: device.bus_number(),
        address: device.address(),
        manufacturer,
        product,
        serial_number,
    }
}

type Strings = (Option<String>, Option<String>, Option<String>);

/// Manufacturer, product and serial strings; unreadable ones are `None`.
fn read_strings(handle: &DeviceHandle<Context>, descriptor: &DeviceDescriptor) -> Strings {
    let read = |index: Option<u8>| {
        index
            .and_then(|i| handle.read_string_descriptor_ascii(i).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    (
        read(descriptor.manufacturer_string_index()),
        read(descriptor.product_string_index()),
        read(descriptor.serial_number_string_index()),
    )
}

/// How to prepare a device after opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbOpenOptions {
    /// Interface to claim (USBasp and USBtiny: 0 on Windows/macOS; HalfKay: 0). `None` claims
    /// nothing, which is enough for control transfers on Linux.
    pub claim_interface: Option<u8>,
    /// Detach a kernel driver bound to that interface first (usbhid on HalfKay); it is
    /// reattached when the link is dropped.
    pub detach_kernel_driver: bool,
}

impl Default for UsbOpenOptions {
    /// Claim interface 0 and leave kernel drivers alone.
    fn default() -> Self {
        UsbOpenOptions {
            claim_interface: Some(0),
            detach_kernel_driver: false,
        }
    }
}

/// An open USB programmer.
pub struct UsbDeviceLink {
    handle: DeviceHandle<Context>,
    info: UsbDeviceInfo,
    name: String,
    claimed: Option<u8>,
}

impl std::fmt::Debug for UsbDeviceLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsbDeviceLink")
            .field("name", &self.name)
            .field("claimed", &self.claimed)
            .finish_non_exhaustive()
    }
}

impl UsbDeviceLink {
    /// Opens the first device (by bus and address) that matches `filter`, and prepares it as
    /// `options` say.
    ///
    /// Fails with [`Error::Open`]: no USB subsystem; no such device (the hint lists what is
    /// connected); a device with the id but other strings; permission denied (the hint names
    /// the udev rules, and on Windows the WinUSB driver); interface busy.
    pub fn open(filter: &UsbFilter, options: UsbOpenOptions) -> Result<UsbDeviceLink> {
        if filter.ids.is_empty() {
            return Err(Error::invalid(
                "no USB vendor:product id to look for (the filter is empty)",
            ));
        }
        let wanted = filter.describe();
        let open_error = |reason: String, hint: String| Error::Open {
            port: wanted.clone(),
            reason,
            hint,
        };
        let context = new_context().map_err(|reason| {
            open_error(
                reason,
                "plug the programmer into a machine (or VM) with USB access; serial programmers still work".into(),
            )
        })?;
        let list = context
            .devices()
            .map_err(|e| open_error(format!("cannot list USB devices: {e}"), String::new()))?;
        let mut candidates: Vec<(Device<Context>, DeviceDescriptor)> = list
            .iter()
            .filter_map(|device| {
                let descriptor = device.device_descriptor().ok()?;
                let id = UsbId::new(descriptor.vendor_id(), descriptor.product_id());
                filter.ids.contains(&id).then_some((device, descriptor))
            })
            .collect();
        candidates.sort_by_key(|(device, _)| (device.bus_number(), device.address()));
        if candidates.is_empty() {
            return Err(open_error(
                "no such device is connected".into(),
                connected_hint(&context),
            ));
        }

        let mut rejected = Vec::new();
        let mut denied = None;
        for (device, descriptor) in candidates {
            let handle = match device.open() {
                Ok(handle) => handle,
                Err(rusb::Error::Access) => {
                    denied.get_or_insert((device.bus_number(), device.address()));
                    continue;
                }
                Err(e) => {
                    rejected.push(format!(
                        "bus {} device {}: cannot open ({e})",
                        device.bus_number(),
                        device.address()
                    ));
                    continue;
                }
            };
            let (manufacturer, product, serial_number) = read_strings(&handle, &descriptor);
            let info = UsbDeviceInfo {
                id: UsbId::new(descriptor.vendor_id(), descriptor.product_id()),
                bus: device.bus_number(),
                address: device.address(),
                manufacturer,
                product,
                serial_number,
            };
            if let Some(mismatch) = string_mismatch(filter, &info) {
                rejected.push(mismatch);
                continue;
            }
            return Self::prepare(handle, info, options);
        }
        if let Some((bus, address)) = denied {
            return Err(open_error(
                format!("permission denied (bus {bus} device {address})"),
                usb_permission_hint(),
            ));
        }
        Err(open_error(
            format!("no matching device: {}", rejected.join("; ")),
            "check that the programmer runs the expected firmware".into(),
        ))
    }

    /// Claims the interface (detaching a kernel driver if asked) on an opened device.
    fn prepare(
        handle: DeviceHandle<Context>,
        info: UsbDeviceInfo,
        options: UsbOpenOptions,
    ) -> Result<UsbDeviceLink> {
        let name = format!("USB {} (bus {} device {})", info.id, info.bus, info.address);
        let mut claimed = None;
        if let Some(interface) = options.claim_interface {
            if options.detach_kernel_driver {
                // Detaches on claim and reattaches on release; NotSupported off Linux, where
                // there is nothing to detach.
                match handle.set_auto_detach_kernel_driver(true) {
                    Ok(()) | Err(rusb::Error::NotSupported) => {}
                    Err(e) => {
                        return Err(Error::Open {
                            port: name,
                            reason: format!("cannot detach the kernel driver: {e}"),
                            hint: usb_permission_hint(),
                        });
                    }
                }
            }
            handle
                .claim_interface(interface)
                .map_err(|e| claim_error(&name, interface, e))?;
            claimed = Some(interface);
        }
        Ok(UsbDeviceLink {
            handle,
            info,
            name,
            claimed,
        })
    }

    /// What was opened: id, bus, address and strings.
    pub fn info(&self) -> &UsbDeviceInfo {
        &self.info
    }

    /// The error for a failed control transfer.
    fn transfer_error(&self, e: rusb::Error, what: String, timeout: Duration) -> Error {
        match e {
            rusb::Error::Timeout => Error::Timeout {
                port: self.name.clone(),
                waited: timeout,
                during: what,
            },
            rusb::Error::Pipe => Error::protocol(
                "USB device",
                format!("{what}: the device stalled the request (it does not support it)"),
            ),
            rusb::Error::Overflow => Error::protocol(
                "USB device",
                format!("{what}: the device sent more data than asked for"),
            ),
            rusb::Error::NoDevice => link_lost(
                &self.name,
                format!("{what}: the device is gone (unplugged?)"),
            ),
            other => link_lost(&self.name, format!("{what}: {other}")),
        }
    }
}

/// Checks the direction bit and the length of a control transfer before it goes out.
fn check_transfer(name: &str, request_type: u8, device_to_host: bool, len: usize) -> Result<()> {
    let is_in = request_type & 0x80 != 0;
    if is_in != device_to_host {
        let (call, want) = if device_to_host {
            ("control_in", "device-to-host")
        } else {
            ("control_out", "host-to-device")
        };
        return Err(Error::invalid(format!(
            "{call} on {name} needs a {want} request type, got 0x{request_type:02X}"
        )));
    }
    if len > usize::from(u16::MAX) {
        return Err(Error::invalid(format!(
            "a control transfer on {name} carries at most 65535 bytes, not {len}"
        )));
    }
    Ok(())
}

/// libusb waits forever on a 0 ms timeout and rusb truncates to whole milliseconds, so
/// clamp to at least 1 ms (and at most [`MAX_WAIT`]).
fn libusb_timeout(timeout: Duration) -> Duration {
    timeout.clamp(Duration::from_millis(1), MAX_WAIT)
}

impl UsbLink for UsbDeviceLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn control_in(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize> {
        check_transfer(&self.name, request_type, true, buf.len())?;
        let timeout = libusb_timeout(timeout);
        self.handle
            .read_control(request_type, request, value, index, buf, timeout)
            .map_err(|e| {
                let what = format!(
                    "control IN request {request} (value 0x{value:04X}, index 0x{index:04X}, {} byte(s))",
                    buf.len()
                );
                self.transfer_error(e, what, timeout)
            })
    }

    fn control_out(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        data: &[u8],
        timeout: Duration,
    ) -> Result<usize> {
        check_transfer(&self.name, request_type, false, data.len())?;
        let timeout = libusb_timeout(timeout);
        self.handle
            .write_control(request_type, request, value, index, data, timeout)
            .map_err(|e| {
                let what = format!(
                    "control OUT request {request} (value 0x{value:04X}, index 0x{index:04X}, {} byte(s))",
                    data.len()
                );
                self.transfer_error(e, what, timeout)
            })
    }
}

impl Drop for UsbDeviceLink {
    fn drop(&mut self) {
        if let Some(interface) = self.claimed {
            // Also reattaches a kernel driver detached on claim; nothing to do if it fails.
            let _ = self.handle.release_interface(interface);
        }
    }
}

/// Why a device with the right id was not taken, if its strings do not match the filter.
fn string_mismatch(filter: &UsbFilter, info: &UsbDeviceInfo) -> Option<String> {
    let checks = [
        ("manufacturer", &filter.manufacturer, &info.manufacturer),
        ("product", &filter.product, &info.product),
    ];
    checks.into_iter().find_map(|(field, wanted, found)| {
        let wanted = wanted.as_deref()?;
        (found.as_deref() != Some(wanted)).then(|| {
            format!(
                "{} (bus {} device {}) has {field} {}, not '{wanted}'",
                info.id,
                info.bus,
                info.address,
                found
                    .as_deref()
                    .map_or_else(|| "no string".to_string(), |s| format!("'{s}'")),
            )
        })
    })
}

/// The devices that are connected, for the hint of a "no such device" error.
fn connected_hint(context: &Context) -> String {
    let ids: Vec<String> = context
        .devices()
        .map(|list| {
            list.iter()
                .filter_map(|d| d.device_descriptor().ok())
                .map(|d| UsbId::new(d.vendor_id(), d.product_id()).to_string())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        "no USB devices are visible: is the programmer plugged in?".into()
    } else {
        format!(
            "is the programmer plugged in? USB devices connected: {}",
            ids.join(", ")
        )
    }
}

fn usb_permission_hint() -> String {
    if cfg!(target_os = "linux") {
        format!(
            "install the udev rules from {UDEV_RULES} (copy to /etc/udev/rules.d/, then `sudo udevadm control --reload` and replug the programmer)"
        )
    } else if cfg!(windows) {
        "install the WinUSB driver for the programmer with Zadig (https://zadig.akeo.ie), then replug it".into()
    } else {
        "check that your user may access USB devices".into()
    }
}

fn claim_error(name: &str, interface: u8, e: rusb::Error) -> Error {
    let hint = match e {
        rusb::Error::Busy => {
            "another program (avrdude, another ISP Toolbox) or a kernel driver has the device; close it and try again".to_string()
        }
        rusb::Error::Access => usb_permission_hint(),
        rusb::Error::NotSupported if cfg!(windows) => {
            "on Windows the device needs the WinUSB driver: install it with Zadig (https://zadig.akeo.ie)".into()
        }
        _ => "replug the programmer and try again".into(),
    };
    Error::Open {
        port: name.to_string(),
        reason: format!("cannot claim interface {interface}: {e}"),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(product: Option<&str>) -> UsbDeviceInfo {
        UsbDeviceInfo {
            id: UsbId::new(0x16C0, 0x05DC),
            bus: 1,
            address: 7,
            manufacturer: Some("www.fischl.de".into()),
            product: product.map(str::to_string),
            serial_number: None,
        }
    }

    #[test]
    fn strings_must_match_exactly_when_asked_for() {
        let filter = UsbFilter {
            ids: vec![UsbId::new(0x16C0, 0x05DC)],
            manufacturer: Some("www.fischl.de".into()),
            product: Some("USBasp".into()),
        };
        assert_eq!(string_mismatch(&filter, &info(Some("USBasp"))), None);
        let why = string_mismatch(&filter, &info(Some("USBaspLoader"))).unwrap();
        assert!(
            why.contains("product 'USBaspLoader', not 'USBasp'"),
            "{why}"
        );
        let why = string_mismatch(&filter, &info(None)).unwrap();
        assert!(why.contains("product no string"), "{why}");
        assert_eq!(
            string_mismatch(&UsbFilter::ids(&[UsbId::new(0x16C0, 0x05DC)]), &info(None)),
            None
        );
    }

    #[test]
    fn transfers_are_checked_before_they_go_out() {
        assert!(check_transfer("usb", 0xC0, true, 4).is_ok());
        assert!(check_transfer("usb", 0x40, false, 4).is_ok());
        let wrong_direction = check_transfer("usb", 0x40, true, 4).unwrap_err();
        assert!(
            wrong_direction.to_string().contains("0x40"),
            "{wrong_direction}"
        );
        assert!(check_transfer("usb", 0xC0, true, 70_000).is_err());
    }

    #[test]
    fn timeouts_never_become_libusb_infinity() {
        assert_eq!(libusb_timeout(Duration::ZERO), Duration::from_millis(1));
        assert_eq!(
            libusb_timeout(Duration::from_micros(300)),
            Duration::from_millis(1)
        );
        assert_eq!(libusb_timeout(Duration::MAX), MAX_WAIT);
    }

    #[test]
    fn filter_names_every_id() {
        let filter = UsbFilter::ids(&[UsbId::new(0x16C0, 0x05DC), UsbId::new(0x03EB, 0xC7B4)]);
        assert_eq!(filter.describe(), "USB 16C0:05DC/03EB:C7B4");
    }
}
