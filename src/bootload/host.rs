//! What the prepare job needs from the machine it runs on, behind one trait so tests and the
//! `emulated` port swap in an emulated board: listing serial ports and USB devices, opening
//! them, passing time, and asking the user to do something with the board.
//!
//! [`wait_for`] polls a [`Host`] until a device with one of a set of USB ids shows up, with a
//! countdown the GUI and CLI can show and a cancel check on every poll.

use std::time::Duration;

use crate::catalog::UsbId;
use crate::error::{Error, Result};
use crate::job::CancelToken;
use crate::transport::{
    PortInfo, SerialLink, SerialPortLink, UsbDeviceInfo, UsbDeviceLink, UsbFilter, UsbLink,
    UsbOpenOptions, list_ports, list_usb_devices,
};

/// Time as the job sees it: the wall clock on a real machine, the emulated board's virtual
/// clock in tests (so waits take no real time and never depend on the machine's speed).
pub trait Clock {
    /// Time since some fixed origin.
    fn now(&self) -> Duration;
    /// Lets `duration` pass.
    fn sleep(&mut self, duration: Duration);
}

/// Something the job asks the user to do with the programmer board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAction {
    /// Press RESET twice quickly (Caterina boards).
    DoubleTapReset,
    /// Press the Teensy's pushbutton once (HalfKay).
    PressTeensyButton,
}

/// The machine the job runs on.
pub trait Host: Clock {
    /// The serial ports present now.
    fn serial_ports(&mut self) -> Vec<PortInfo>;
    /// The USB devices present now.
    fn usb_devices(&mut self) -> Vec<UsbDeviceInfo>;
    /// Opens a serial port at `baud`, 8N1.
    fn open_serial(&mut self, port: &str, baud: u32) -> Result<Box<dyn SerialLink>>;
    /// Opens the first USB device with this id, claiming interface 0 and detaching a kernel
    /// driver bound to it (usbhid on HalfKay).
    fn open_usb(&mut self, id: UsbId) -> Result<Box<dyn UsbLink>>;
    /// The job has asked the user to do something (shown as an instruction). A real host
    /// does nothing; an emulated one may play the user's part.
    fn user_asked(&mut self, action: UserAction) {
        let _ = action;
    }
}

/// This machine: real ports, real USB, the wall clock.
#[derive(Debug)]
pub struct SystemHost {
    origin: std::time::Instant,
}

impl Default for SystemHost {
    fn default() -> Self {
        SystemHost {
            origin: std::time::Instant::now(),
        }
    }
}

impl SystemHost {
    /// The host with its clock starting now.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemHost {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

impl Host for SystemHost {
    fn serial_ports(&mut self) -> Vec<PortInfo> {
        list_ports()
    }

    fn usb_devices(&mut self) -> Vec<UsbDeviceInfo> {
        list_usb_devices().devices
    }

    fn open_serial(&mut self, port: &str, baud: u32) -> Result<Box<dyn SerialLink>> {
        Ok(Box::new(SerialPortLink::open(port, baud)?))
    }

    fn open_usb(&mut self, id: UsbId) -> Result<Box<dyn UsbLink>> {
        let options = UsbOpenOptions {
            claim_interface: Some(0),
            detach_kernel_driver: true,
        };
        Ok(Box::new(UsbDeviceLink::open(
            &UsbFilter::ids(&[id]),
            options,
        )?))
    }
}

/// A device found by [`wait_for`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Found {
    /// A serial port.
    Serial(PortInfo),
    /// A USB device without a serial port (HalfKay).
    Usb(UsbDeviceInfo),
}

impl Found {
    /// The device's USB id.
    pub fn id(&self) -> Option<UsbId> {
        match self {
            Found::Serial(port) => port.usb_id(),
            Found::Usb(device) => Some(device.id),
        }
    }

    /// The port name (serial), or the USB id and place.
    pub fn name(&self) -> String {
        match self {
            Found::Serial(port) => port.name.clone(),
            Found::Usb(device) => format!(
                "USB {} (bus {} device {})",
                device.id, device.bus, device.address
            ),
        }
    }
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Serial(port) => port.fmt(f),
            Found::Usb(device) => device.fmt(f),
        }
    }
}

/// Where to look for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Serial ports with one of the ids.
    Serial,
    /// USB devices with one of the ids.
    Usb,
}

/// What to wait for.
#[derive(Debug, Clone)]
pub struct Watch {
    /// A name for messages: "the Pro Micro's bootloader".
    pub what: String,
    /// The USB ids that count.
    pub ids: Vec<UsbId>,
    /// Serial ports or plain USB devices.
    pub look: Look,
    /// How long to wait in total.
    pub timeout: Duration,
    /// What to tell the user if it never comes.
    pub hint: String,
}

/// How often [`wait_for`] looks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The devices matching `watch` that are present now, serial ports by name.
pub fn matching(host: &mut dyn Host, watch: &Watch) -> Vec<Found> {
    match watch.look {
        Look::Serial => host
            .serial_ports()
            .into_iter()
            .filter(|p| p.usb_id().is_some_and(|id| watch.ids.contains(&id)))
            .map(Found::Serial)
            .collect(),
        Look::Usb => host
            .usb_devices()
            .into_iter()
            .filter(|d| watch.ids.contains(&d.id))
            .map(Found::Usb)
            .collect(),
    }
}

/// Polls until a device matching `watch` is present and returns it (the first by name).
/// `countdown` is called with the time left at the start and whenever the whole seconds left
/// change. Fails with [`Error::NotFound`] (listing what is there instead) when the time runs
/// out, and with [`Error::Cancelled`] when `cancel` is set.
pub fn wait_for(
    host: &mut dyn Host,
    watch: &Watch,
    cancel: &CancelToken,
    countdown: &mut dyn FnMut(Duration),
) -> Result<Found> {
    let start = host.now();
    let mut last_shown = None;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if let Some(found) = matching(host, watch).into_iter().next() {
            return Ok(found);
        }
        let waited = host.now().saturating_sub(start);
        let left = watch.timeout.saturating_sub(waited);
        if left.is_zero() {
            return Err(not_found(host, watch));
        }
        let whole_seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        if last_shown != Some(whole_seconds) {
            last_shown = Some(whole_seconds);
            countdown(left);
        }
        host.sleep(POLL_INTERVAL.min(left));
    }
}

/// The error for a device that did not come, naming what is connected instead.
fn not_found(host: &mut dyn Host, watch: &Watch) -> Error {
    let ports: Vec<String> = host
        .serial_ports()
        .iter()
        .map(ToString::to_string)
        .collect();
    let devices: Vec<String> = host.usb_devices().iter().map(ToString::to_string).collect();
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    let ids: Vec<String> = watch.ids.iter().map(ToString::to_string).collect();
    Error::NotFound {
        what: format!("{} ({})", watch.what, ids.join(", ")),
        waited: watch.timeout,
        seen: format!(
            "serial ports: {}; USB devices: {}",
            list(ports),
            list(devices)
        ),
        hint: watch.hint.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::UsbPortInfo;

    /// A host whose one port appears at a given time.
    struct Scripted {
        now: Duration,
        appears_at: Duration,
        sleeps: u32,
    }

    impl Clock for Scripted {
        fn now(&self) -> Duration {
            self.now
        }
        fn sleep(&mut self, duration: Duration) {
            self.sleeps += 1;
            self.now += duration;
        }
    }

    impl Host for Scripted {
        fn serial_ports(&mut self) -> Vec<PortInfo> {
            let other = PortInfo {
                name: "/dev/ttyS0".into(),
                usb: None,
            };
            if self.now < self.appears_at {
                return vec![other];
            }
            vec![
                other,
                PortInfo {
                    name: "/dev/ttyACM0".into(),
                    usb: Some(UsbPortInfo {
                        id: UsbId::new(0x1B4F, 0x9205),
                        serial_number: None,
                        manufacturer: None,
                        product: None,
                    }),
                },
            ]
        }
        fn usb_devices(&mut self) -> Vec<UsbDeviceInfo> {
            Vec::new()
        }
        fn open_serial(&mut self, port: &str, _: u32) -> Result<Box<dyn SerialLink>> {
            Err(Error::invalid(format!("no {port} here")))
        }
        fn open_usb(&mut self, id: UsbId) -> Result<Box<dyn UsbLink>> {
            Err(Error::invalid(format!("no {id} here")))
        }
    }

    fn watch(timeout: Duration) -> Watch {
        Watch {
            what: "the bootloader".into(),
            ids: vec![UsbId::new(0x1B4F, 0x9205)],
            look: Look::Serial,
            timeout,
            hint: "press RESET twice".into(),
        }
    }

    #[test]
    fn finds_the_port_when_it_appears_and_counts_down_by_seconds() {
        let mut host = Scripted {
            now: Duration::ZERO,
            appears_at: Duration::from_millis(2_350),
            sleeps: 0,
        };
        let mut shown = Vec::new();
        let found = wait_for(
            &mut host,
            &watch(Duration::from_secs(8)),
            &CancelToken::new(),
            &mut |left| shown.push(left.as_secs_f64().ceil() as u64),
        )
        .unwrap();
        assert_eq!(found.name(), "/dev/ttyACM0");
        assert_eq!(found.id(), Some(UsbId::new(0x1B4F, 0x9205)));
        assert_eq!(shown, [8, 7, 6]);
        assert_eq!(host.sleeps, 24, "polled every 100 ms until 2.4 s");
    }

    #[test]
    fn times_out_naming_what_is_there() {
        let mut host = Scripted {
            now: Duration::ZERO,
            appears_at: Duration::from_secs(60),
            sleeps: 0,
        };
        let err = wait_for(
            &mut host,
            &watch(Duration::from_secs(3)),
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("the bootloader (1B4F:9205)") && text.contains("3 s"),
            "{text}"
        );
        assert!(text.contains("/dev/ttyS0"), "{text}");
        assert_eq!(err.hint().as_deref(), Some("press RESET twice"));
        assert_eq!(host.now, Duration::from_secs(3));
    }

    #[test]
    fn stops_when_cancelled() {
        let mut host = Scripted {
            now: Duration::ZERO,
            appears_at: Duration::from_secs(60),
            sleeps: 0,
        };
        let cancel = CancelToken::new();
        cancel.cancel();
        let err = wait_for(
            &mut host,
            &watch(Duration::from_secs(3)),
            &cancel,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, Error::Cancelled));
        assert_eq!(host.sleeps, 0);
    }
}
