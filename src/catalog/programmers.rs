//! The programmer catalog (`assets/programmers.json`): the ISP programmers the guide covers, how
//! to wire each one, the ISP headers they use and the USB ids that identify them.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::usb::UsbId;
use crate::error::{Error, Result};
use crate::part::{IspSignal, Part};

const PROGRAMMERS_JSON: &str = include_str!("../../assets/programmers.json");
const FILE: &str = "assets/programmers.json";

/// A programmer protocol the engine has a driver for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// STK500v1 as spoken by ArduinoISP (Pro Micro / Teensy 2.0 as ISP).
    Avrisp,
    /// USBtiny (SparkFun PocketAVR, Adafruit USBtinyISP).
    Usbtiny,
    /// USBasp.
    Usbasp,
    /// Bus Pirate binary SPI mode.
    Buspirate,
    /// AVR109 through a Caterina bootloader on the target itself (not an ISP programmer:
    /// writes the application section, reads fuses, writes none).
    Avr109,
}

impl Driver {
    /// Every driver.
    pub const ALL: [Driver; 5] = [
        Driver::Avrisp,
        Driver::Usbtiny,
        Driver::Usbasp,
        Driver::Buspirate,
        Driver::Avr109,
    ];

    /// The canonical id, as avrdude's guide names it (`avrisp`).
    pub fn id(self) -> &'static str {
        self.aliases()[0]
    }

    /// Every name accepted for this driver, the canonical id first. avrdude's `stk500v1`,
    /// `arduino_as_isp` and `arduino` ids all reach ArduinoISP, so they select `avrisp`.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Driver::Avrisp => &["avrisp", "arduino_as_isp", "stk500v1", "arduino"],
            Driver::Usbtiny => &["usbtiny"],
            Driver::Usbasp => &["usbasp", "usbasp-clone"],
            Driver::Buspirate => &["buspirate"],
            Driver::Avr109 => &["avr109", "butterfly", "avr911"],
        }
    }

    /// The driver a name selects (any alias, any case).
    pub fn from_alias(name: &str) -> Option<Driver> {
        let wanted = name.trim();
        Driver::ALL.into_iter().find(|d| {
            d.aliases()
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(wanted))
        })
    }

    /// How a programmer with this driver is reached.
    pub fn port(self) -> PortKind {
        match self {
            Driver::Avrisp | Driver::Buspirate | Driver::Avr109 => PortKind::Serial,
            Driver::Usbtiny | Driver::Usbasp => PortKind::Usb,
        }
    }
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// How the host reaches a programmer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// A serial port (`/dev/ttyACM0`, `COM3`).
    Serial,
    /// Raw USB (libusb), no port name.
    Usb,
}

/// One ISP programmer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Programmer {
    /// Stable id for the command line, e.g. `promicro-isp`.
    pub id: String,
    /// Display name, e.g. `Pro Micro as ISP`.
    pub name: String,
    /// The heading of the guide's Hardware section that covers it.
    pub guide_section: String,
    /// The protocol driver.
    pub driver: Driver,
    /// Serial port or raw USB.
    pub port: PortKind,
    /// Baud rate to open a serial port at (`None` for USB programmers).
    pub default_baud: Option<u32>,
    /// The product page the guide links to.
    pub url: String,
    /// Ids of the ISP headers (see [`Header`]) it can connect with; empty for boards wired
    /// pin by pin (Pro Micro, Teensy).
    pub headers: Vec<String>,
    /// The guide's wiring table: programmer pin to target signal.
    pub wiring: Vec<WiringRow>,
    /// USB ids under which it can appear.
    pub usb: Vec<ProgrammerUsb>,
    /// Largest flash it can program, where the protocol limits it.
    pub max_flash_bytes: Option<u32>,
    /// Warnings to show prominently next to the wiring.
    pub warnings: Vec<String>,
    /// Further hints.
    pub notes: Vec<String>,
}

impl Programmer {
    /// Whether the protocol can reach all of this part's flash.
    pub fn can_program(&self, part: &Part) -> bool {
        self.max_flash_bytes
            .is_none_or(|limit| part.flash.size <= limit)
    }

    /// The wiring row for a target signal.
    pub fn wire_for(&self, signal: IspSignal) -> Option<&WiringRow> {
        self.wiring.iter().find(|w| w.target == signal)
    }

    fn validate(&self, headers: &[Header]) -> std::result::Result<(), String> {
        if !is_slug(&self.id) {
            return Err("id must be lowercase letters, digits and '-'".into());
        }
        if self.port != self.driver.port() {
            return Err(format!(
                "port '{:?}' does not match driver {} (which uses {:?})",
                self.port,
                self.driver,
                self.driver.port()
            ));
        }
        match (self.port, self.default_baud) {
            (PortKind::Serial, None) => return Err("a serial programmer needs default_baud".into()),
            (PortKind::Usb, Some(_)) => return Err("a USB programmer has no default_baud".into()),
            _ => {}
        }
        for signal in IspSignal::ALL {
            let rows = self.wiring.iter().filter(|w| w.target == signal).count();
            if rows != 1 {
                return Err(format!(
                    "wiring must connect {} exactly once, found {rows} row(s)",
                    signal.label()
                ));
            }
        }
        for id in &self.headers {
            if !headers.iter().any(|h| &h.id == id) {
                return Err(format!("unknown header '{id}'"));
            }
        }
        let mut seen = HashSet::new();
        for usb in &self.usb {
            if usb.id.vid == 0 {
                return Err(format!("USB id {} has vendor id 0", usb.id));
            }
            if !seen.insert(usb.id) {
                return Err(format!("USB id {} listed twice", usb.id));
            }
        }
        Ok(())
    }
}

/// One row of a wiring table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiringRow {
    /// The programmer pin as the guide labels it, e.g. `10 (B6)`, `RST`.
    pub programmer_pin: String,
    /// The pin's name on the device itself where the guide's label differs (the Bus Pirate's
    /// `RST` is its `CS` pin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_pin: Option<String>,
    /// The target signal it connects to.
    pub target: IspSignal,
    /// Why the row is as it is, if that is not obvious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A USB id under which a programmer can appear.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammerUsb {
    /// Vendor and product id.
    pub id: UsbId,
    /// The product string the firmware reports, where it tells the programmer apart.
    pub product: Option<String>,
    /// Whether other devices use this id too (a shared V-USB id, a generic USB-serial chip, a
    /// board's sketch id), so the id alone proves little.
    pub shared: bool,
    /// What runs under this id.
    pub note: String,
}

/// A connector layout: pin number (where the header has standard numbering) and label to the
/// ISP signal it carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Id, e.g. `avr-isp-6`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The pins, in the order to draw them.
    pub pins: Vec<HeaderPin>,
}

impl Header {
    /// The pins carrying a signal (the 10-pin header has several GND pins).
    pub fn pins_for(&self, signal: IspSignal) -> impl Iterator<Item = &HeaderPin> {
        self.pins.iter().filter(move |p| p.signal == Some(signal))
    }

    fn validate(&self) -> std::result::Result<(), String> {
        for signal in IspSignal::ALL {
            if self.pins_for(signal).next().is_none() {
                return Err(format!("no pin carries {}", signal.label()));
            }
        }
        let mut numbers = HashSet::new();
        for pin in self.pins.iter().filter_map(|p| p.pin) {
            if !numbers.insert(pin) {
                return Err(format!("pin {pin} listed twice"));
            }
        }
        Ok(())
    }
}

/// One pin of a header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderPin {
    /// Standard pin number, where the header has one.
    pub pin: Option<u8>,
    /// The label printed on the board or in the pinout.
    pub label: String,
    /// The ISP signal on this pin, if any.
    pub signal: Option<IspSignal>,
}

/// How well a USB device matches a programmer's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchConfidence {
    /// The id is shared with other devices and nothing else confirmed it.
    Possible,
    /// The id is the programmer's own (product string not checked).
    Likely,
    /// The id and the product string both match.
    Exact,
}

/// A programmer that could be behind a USB device.
#[derive(Debug, Clone, Copy)]
pub struct UsbMatch<'a> {
    /// The programmer.
    pub programmer: &'a Programmer,
    /// The id entry that matched.
    pub usb: &'a ProgrammerUsb,
    /// How sure the match is.
    pub confidence: MatchConfidence,
}

/// All known programmers and ISP headers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammerCatalog {
    headers: Vec<Header>,
    programmers: Vec<Programmer>,
}

impl ProgrammerCatalog {
    /// The built-in catalog, parsed and validated once.
    pub fn builtin() -> Result<&'static ProgrammerCatalog> {
        static CATALOG: OnceLock<std::result::Result<ProgrammerCatalog, String>> = OnceLock::new();
        CATALOG
            .get_or_init(|| ProgrammerCatalog::from_json(PROGRAMMERS_JSON).map_err(data_reason))
            .as_ref()
            .map_err(|reason| Error::Data {
                file: FILE,
                reason: reason.clone(),
            })
    }

    /// Parses and validates a programmer catalog (the built-in one, or a test's variant).
    pub fn from_json(json: &str) -> Result<ProgrammerCatalog> {
        let catalog: ProgrammerCatalog = serde_json::from_str(json).map_err(|e| Error::Data {
            file: FILE,
            reason: e.to_string(),
        })?;
        catalog
            .validate()
            .map_err(|reason| Error::Data { file: FILE, reason })?;
        Ok(catalog)
    }

    /// Every programmer, in file order.
    pub fn all(&self) -> &[Programmer] {
        &self.programmers
    }

    /// Every header layout.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// A header layout by id.
    pub fn header(&self, id: &str) -> Option<&Header> {
        self.headers.iter().find(|h| h.id == id)
    }

    /// A programmer by its id, ignoring case.
    pub fn get(&self, id: &str) -> Result<&Programmer> {
        let wanted = id.trim();
        self.programmers
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| self.unknown(id))
    }

    /// A programmer by id or by driver alias (`avrisp`, `stk500v1`, `usbtiny` ...). An alias
    /// selects the first programmer of that driver in the catalog: every programmer of one
    /// driver is driven the same way, they differ only in wiring.
    pub fn find(&self, name: &str) -> Result<&Programmer> {
        if let Ok(programmer) = self.get(name) {
            return Ok(programmer);
        }
        Driver::from_alias(name)
            .and_then(|driver| self.with_driver(driver).next())
            .ok_or_else(|| self.unknown(name))
    }

    /// Every programmer that uses a driver.
    pub fn with_driver(&self, driver: Driver) -> impl Iterator<Item = &Programmer> {
        self.programmers.iter().filter(move |p| p.driver == driver)
    }

    /// The programmers that could be behind a USB device, most certain first.
    ///
    /// `product` is the device's product string if the caller could read it. An id entry that
    /// names a product matches only a device reporting that product (ignoring case and outer
    /// spaces); without a product string the match is [`MatchConfidence::Possible`] for shared
    /// ids and [`MatchConfidence::Likely`] otherwise.
    pub fn identify_usb(&self, vid: u16, pid: u16, product: Option<&str>) -> Vec<UsbMatch<'_>> {
        let wanted = UsbId::new(vid, pid);
        let mut matches: Vec<UsbMatch<'_>> = self
            .programmers
            .iter()
            .flat_map(|programmer| {
                programmer
                    .usb
                    .iter()
                    .filter(move |usb| usb.id == wanted)
                    .filter_map(move |usb| {
                        confidence(usb, product).map(|confidence| UsbMatch {
                            programmer,
                            usb,
                            confidence,
                        })
                    })
            })
            .collect();
        // Stable: equally certain matches keep catalog order.
        matches.sort_by_key(|m| std::cmp::Reverse(m.confidence));
        matches
    }

    fn unknown(&self, name: &str) -> Error {
        let mut known: Vec<String> = self.programmers.iter().map(|p| p.id.clone()).collect();
        known.extend(
            Driver::ALL
                .iter()
                .flat_map(|d| d.aliases().iter().map(|a| a.to_string())),
        );
        Error::Unknown {
            what: "programmer",
            name: name.to_string(),
            known,
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.programmers.is_empty() {
            return Err("no programmers".into());
        }
        let mut header_ids = HashSet::new();
        for header in &self.headers {
            if !header_ids.insert(header.id.as_str()) {
                return Err(format!("header id '{}' is used twice", header.id));
            }
            header
                .validate()
                .map_err(|e| format!("header {}: {e}", header.id))?;
        }
        let mut ids = HashSet::new();
        for programmer in &self.programmers {
            if !ids.insert(programmer.id.to_ascii_lowercase()) {
                return Err(format!("programmer id '{}' is used twice", programmer.id));
            }
            // `find` tries ids before aliases, so an id that is also an alias must mean the
            // same driver, or `-c usbasp` could pick a programmer of another protocol.
            if let Some(driver) = Driver::from_alias(&programmer.id)
                && driver != programmer.driver
            {
                return Err(format!(
                    "programmer id '{}' is the alias of driver {driver} but uses {}",
                    programmer.id, programmer.driver
                ));
            }
            programmer
                .validate(&self.headers)
                .map_err(|e| format!("programmer {}: {e}", programmer.id))?;
        }
        Ok(())
    }
}

/// How well `usb` matches a device reporting `product` (`None`: no match at all).
fn confidence(usb: &ProgrammerUsb, product: Option<&str>) -> Option<MatchConfidence> {
    match (&usb.product, product) {
        (Some(expected), Some(seen)) => expected
            .trim()
            .eq_ignore_ascii_case(seen.trim())
            .then_some(MatchConfidence::Exact),
        _ if usb.shared => Some(MatchConfidence::Possible),
        _ => Some(MatchConfidence::Likely),
    }
}

/// Lowercase letters, digits and '-', not empty: safe to type on a command line.
pub(crate) fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Keeps only the reason of a data error, for caching the builtin result.
pub(crate) fn data_reason(error: Error) -> String {
    match error {
        Error::Data { reason, .. } => reason,
        other => other.to_string(),
    }
}
