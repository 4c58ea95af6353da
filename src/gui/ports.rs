//! The port picker's list: serial ports with their USB ids, USB programmers, and the emulated
//! demo board, each matched against the programmer catalog; plus a background watcher that
//! notices hot-plugs without ever blocking the UI.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use crate::catalog::{MatchConfidence, ProgrammerCatalog, UsbId};
use crate::programmer::open::EMULATED_PORT;
use crate::transport::{list_ports, list_usb_devices};

/// How often the watcher looks for new devices. Scanning sysfs is cheap; once a second
/// feels instant when plugging a board in.
const POLL_INTERVAL: Duration = Duration::from_millis(1000);

/// One entry of the port picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    /// What the job opens: a serial device, `usb`, or `emulated`.
    pub port: String,
    /// What the picker shows.
    pub label: String,
    /// The USB id behind it, if any.
    pub usb: Option<UsbId>,
    /// The catalog programmer this device most likely is, and whether the match is exact.
    pub programmer: Option<(String, MatchConfidence)>,
}

impl PortEntry {
    /// The always-present demo board.
    pub fn emulated() -> PortEntry {
        PortEntry {
            port: EMULATED_PORT.to_string(),
            label: "Emulated (demo board, no hardware)".into(),
            usb: None,
            programmer: None,
        }
    }

    /// Whether this is the demo board.
    pub fn is_emulated(&self) -> bool {
        self.port == EMULATED_PORT
    }
}

/// The current list, and a note when USB cannot be looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortList {
    /// Entries, real devices first, the demo board last.
    pub entries: Vec<PortEntry>,
    /// Why USB devices are missing from the list, if they are.
    pub usb_note: Option<String>,
    /// Every USB id present (serial devices and raw USB devices), to notice a bootloader
    /// enumerating after a flash.
    pub seen_usb: Vec<UsbId>,
}

impl PortList {
    /// The entry for a port name.
    pub fn get(&self, port: &str) -> Option<&PortEntry> {
        self.entries.iter().find(|e| e.port == port)
    }

    /// The port that most likely is an ISP programmer (exact matches before likely ones).
    pub fn best_programmer_port(&self) -> Option<&PortEntry> {
        self.entries
            .iter()
            .filter(|e| {
                e.programmer
                    .as_ref()
                    .is_some_and(|(_, c)| *c >= MatchConfidence::Likely)
            })
            .max_by_key(|e| e.programmer.as_ref().map(|(_, c)| *c))
    }
}

/// Scans serial ports and USB devices once.
pub fn scan() -> PortList {
    let catalog = ProgrammerCatalog::builtin().ok();
    let best_match = |id: UsbId, product: Option<&str>| {
        catalog.and_then(|c| {
            c.identify_usb(id.vid, id.pid, product)
                .into_iter()
                .max_by_key(|m| m.confidence)
                .map(|m| (m.programmer.id.clone(), m.confidence))
        })
    };
    let mut entries = Vec::new();
    let mut seen_usb = Vec::new();
    for port in list_ports() {
        seen_usb.extend(port.usb_id());
        let (label, usb, programmer) = match &port.usb {
            Some(usb) => {
                let product = usb.product.as_deref();
                let label = format!(
                    "{} — {} {}",
                    port.name,
                    usb.id,
                    product.unwrap_or("(no product name)")
                );
                (label, Some(usb.id), best_match(usb.id, product))
            }
            None => (port.name.clone(), None, None),
        };
        entries.push(PortEntry {
            port: port.name.clone(),
            label,
            usb,
            programmer,
        });
    }
    let usb = list_usb_devices();
    for device in &usb.devices {
        seen_usb.push(device.id);
        let product = device.product.as_deref();
        // Only USB devices that are programmers get an entry: they are opened as `usb`.
        if let Some(found) = best_match(device.id, product)
            && catalog
                .and_then(|c| c.get(&found.0).ok())
                .is_some_and(|p| p.port == crate::catalog::PortKind::Usb)
        {
            entries.push(PortEntry {
                port: "usb".into(),
                label: format!(
                    "USB {} — {}",
                    device.id,
                    product.unwrap_or("(product name unreadable)")
                ),
                usb: Some(device.id),
                programmer: Some(found),
            });
        }
    }
    entries.push(PortEntry::emulated());
    seen_usb.sort_by_key(|id| (id.vid, id.pid));
    seen_usb.dedup();
    PortList {
        entries,
        usb_note: usb.unavailable,
        seen_usb,
    }
}

/// Rescans in a background thread and hands over the list whenever it changes.
pub struct PortWatcher {
    updates: Receiver<PortList>,
}

impl PortWatcher {
    /// Starts watching; `changed` is called (e.g. to request a repaint) after each new list.
    pub fn spawn(changed: impl Fn() + Send + 'static) -> std::io::Result<PortWatcher> {
        let (tx, updates) = channel();
        std::thread::Builder::new()
            .name("port-watcher".into())
            .spawn(move || watch(tx, changed))?;
        Ok(PortWatcher { updates })
    }

    /// The newest list since the last call, if the devices changed.
    pub fn poll(&self) -> Option<PortList> {
        self.updates.try_iter().last()
    }
}

fn watch(tx: Sender<PortList>, changed: impl Fn()) {
    let mut last = None;
    loop {
        let list = scan();
        if last.as_ref() != Some(&list) {
            if tx.send(list.clone()).is_err() {
                return; // the app is gone
            }
            changed();
            last = Some(list);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_board_is_always_listed_last() {
        let list = scan();
        assert!(list.entries.last().unwrap().is_emulated());
        assert!(list.get(EMULATED_PORT).is_some());
    }
}
