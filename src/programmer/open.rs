//! Opening a programmer from what the user picked: driver, port, baud, clock.
//!
//! Port `emulated` runs the chosen programmer's emulated firmware in-process against an
//! emulated board, so every journey can be tried without hardware.

use std::any::Any;

use super::Programmer;
use crate::catalog::Driver;
use crate::emulate::demo::demo_chip;
use crate::emulate::socket::{SharedSocket, Socket};
use crate::error::{Error, Result};
use crate::part::Part;
use crate::transport::SerialPortLink;

/// The port name that selects the in-process emulator.
pub const EMULATED_PORT: &str = "emulated";

/// What the user chose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgrammerSpec {
    /// Driver id or alias (`avrisp`, `usbasp`, `usbtiny`, `buspirate`, `sim`...).
    pub driver: String,
    /// Serial port path, `usb`, or `emulated`.
    pub port: String,
    /// Baud rate for serial programmers (default: the driver's).
    pub baud: Option<u32>,
    /// A fixed ISP clock in Hz (default: managed automatically where the programmer can).
    pub sck_hz: Option<u32>,
    /// The target board's crystal, to work out the fastest safe ISP clock.
    pub crystal_hz: Option<u32>,
}

impl ProgrammerSpec {
    /// A spec with defaults for everything but driver and port.
    pub fn new(driver: impl Into<String>, port: impl Into<String>) -> Self {
        ProgrammerSpec {
            driver: driver.into(),
            port: port.into(),
            baud: None,
            sck_hz: None,
            crystal_hz: None,
        }
    }

    /// Whether this spec uses the in-process emulator.
    pub fn is_emulated(&self) -> bool {
        self.port.eq_ignore_ascii_case(EMULATED_PORT)
    }
}

/// An open programmer, and whatever must stay alive while it is used (an emulator thread).
pub struct Opened {
    /// The programmer.
    pub programmer: Box<dyn Programmer>,
    /// The emulated board, for port `emulated`.
    pub socket: Option<SharedSocket>,
    _keep_alive: Option<Box<dyn Any + Send>>,
}

impl Opened {
    fn new(programmer: Box<dyn Programmer>, socket: Option<SharedSocket>) -> Self {
        Opened {
            programmer,
            socket,
            _keep_alive: None,
        }
    }

    /// Keeps `guard` (an emulator handle) alive as long as the programmer.
    pub fn keeping(mut self, guard: impl Any + Send) -> Self {
        self._keep_alive = Some(Box::new(guard));
        self
    }
}

/// Known driver names, for messages.
pub fn driver_names() -> Vec<String> {
    let mut names: Vec<String> = [
        Driver::Avrisp,
        Driver::Usbasp,
        Driver::Usbtiny,
        Driver::Buspirate,
        Driver::Avr109,
    ]
    .iter()
    .flat_map(|d| d.aliases().iter().map(|a| a.to_string()))
    .collect();
    names.push("sim".into());
    names
}

/// Opens the programmer `spec` names. For port `emulated`, `board` is the emulated board to
/// use (the GUI keeps one across jobs); without one, a demo board of `part` is made.
pub fn open(spec: &ProgrammerSpec, part: &Part, board: Option<SharedSocket>) -> Result<Opened> {
    let emulated = spec.is_emulated();
    let board = || {
        board
            .clone()
            .unwrap_or_else(|| Socket::with_chip(demo_chip(part)).shared())
    };
    if spec.driver.eq_ignore_ascii_case("sim") {
        if !emulated {
            return Err(Error::invalid(
                "the 'sim' programmer only exists on port 'emulated'",
            ));
        }
        let socket = board();
        return Ok(Opened::new(
            Box::new(super::sim::SimProgrammer::new(socket.clone())),
            Some(socket),
        ));
    }
    let driver = Driver::from_alias(&spec.driver).ok_or_else(|| Error::Unknown {
        what: "programmer",
        name: spec.driver.clone(),
        known: driver_names(),
    })?;
    if emulated {
        // A board of another MCU in the emulated socket is caught by the job's signature
        // check, exactly as with real hardware.
        return open_emulated(driver, spec, part, board());
    }
    open_real(driver, spec)
}

fn open_emulated(
    driver: Driver,
    spec: &ProgrammerSpec,
    part: &Part,
    socket: SharedSocket,
) -> Result<Opened> {
    let board = Some(socket.clone());
    match driver {
        Driver::Usbtiny => {
            let (prog, device) =
                super::usbtiny::emulated(part, socket, super::usbtiny::EmulatedOptions::default())?;
            Ok(Opened::new(Box::new(prog), board).keeping(device))
        }
        Driver::Usbasp => {
            let options = super::usbasp::EmulatedOptions {
                driver: usbasp_options(spec),
                ..Default::default()
            };
            let (prog, device) = super::usbasp::emulated(part, socket, options)?;
            Ok(Opened::new(Box::new(prog), board).keeping(device))
        }
        Driver::Buspirate => {
            let options = super::buspirate::BusPirateOptions {
                baud: spec
                    .baud
                    .unwrap_or(super::buspirate::BusPirateOptions::default().baud),
                ..Default::default()
            };
            let (prog, handle) = super::buspirate::emulated(part, socket, options)?;
            Ok(Opened::new(Box::new(prog), board).keeping(handle))
        }
        Driver::Avrisp => {
            let (prog, handle) = super::stk500v1::emulated(part, socket, stk500_options(spec))?;
            Ok(Opened::new(Box::new(prog), board).keeping(handle))
        }
        Driver::Avr109 => {
            // The board's own chip runs Caterina, already in its bootloader.
            let (link, handle) = crate::emulate::caterina::serve_on_socket(socket);
            let prog = crate::bootload::avr109_programmer::Avr109Programmer::new(link);
            Ok(Opened::new(Box::new(prog), board).keeping(handle))
        }
    }
}

/// ArduinoISP settings: 19200 baud unless given; the `arduino` alias resets the host board
/// through DTR first, as avrdude's `-c arduino` does.
fn stk500_options(spec: &ProgrammerSpec) -> super::stk500v1::Stk500v1Options {
    let defaults = super::stk500v1::Stk500v1Options::for_alias(&spec.driver).unwrap_or_default();
    super::stk500v1::Stk500v1Options {
        baud: spec.baud.unwrap_or(defaults.baud),
        ..defaults
    }
}

/// USBasp settings: `usbasp-clone` accepts any strings on 16C0:05DC.
fn usbasp_options(spec: &ProgrammerSpec) -> super::usbasp::Options {
    super::usbasp::Options {
        any_strings: spec.driver.eq_ignore_ascii_case("usbasp-clone"),
        ..Default::default()
    }
}

/// USB programmers take `-P usb` (or nothing); a serial path there is a mistake worth naming.
fn check_usb_port(driver: Driver, port: &str) -> Result<()> {
    if port.eq_ignore_ascii_case("usb") || port.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{} is a USB programmer: use port 'usb' (or 'emulated'), not '{port}'",
            driver.id()
        )))
    }
}

fn serial_port(driver: Driver, port: &str) -> Result<&str> {
    if port.eq_ignore_ascii_case("usb") || port.is_empty() {
        return Err(Error::invalid(format!(
            "{} is a serial programmer: give its port with -P (e.g. /dev/ttyACM0, COM3)",
            driver.id()
        )));
    }
    Ok(port)
}

fn open_real(driver: Driver, spec: &ProgrammerSpec) -> Result<Opened> {
    match driver {
        Driver::Usbtiny => {
            check_usb_port(driver, &spec.port)?;
            let prog = super::usbtiny::UsbTiny::open(super::usbtiny::Options::default())?;
            Ok(Opened::new(Box::new(prog), None))
        }
        Driver::Usbasp => {
            check_usb_port(driver, &spec.port)?;
            let prog = super::usbasp::UsbAsp::open(usbasp_options(spec))?;
            Ok(Opened::new(Box::new(prog), None))
        }
        Driver::Buspirate => {
            let options = super::buspirate::BusPirateOptions {
                baud: spec
                    .baud
                    .unwrap_or(super::buspirate::BusPirateOptions::default().baud),
                ..Default::default()
            };
            let link = SerialPortLink::open(serial_port(driver, &spec.port)?, options.baud)?;
            let prog = super::buspirate::BusPirate::new(link, options)?;
            Ok(Opened::new(Box::new(prog), None))
        }
        Driver::Avrisp => {
            let options = stk500_options(spec);
            let link = SerialPortLink::open(serial_port(driver, &spec.port)?, options.baud)?;
            let prog = super::stk500v1::Stk500v1::new(link, options)?;
            Ok(Opened::new(Box::new(prog), None))
        }
        Driver::Avr109 => {
            let baud = spec
                .baud
                .unwrap_or(crate::bootload::avr109_programmer::DEFAULT_BAUD);
            let link = SerialPortLink::open(serial_port(driver, &spec.port)?, baud)?;
            let prog = crate::bootload::avr109_programmer::Avr109Programmer::new(link);
            Ok(Opened::new(Box::new(prog), None))
        }
    }
}
