//! The catalogs against the guide itself: the guide's markdown tables are parsed here and
//! compared with the data, so the two cannot drift apart.

use std::collections::HashSet;
use std::path::PathBuf;

use isp_toolbox::catalog::{Bootloader, BootloaderCatalog, PortKind, ProgrammerCatalog, UsbId};

/// Section headings of the guide that own a table.
const HEADINGS: [&str; 8] = [
    "Pro Micro as ISP",
    "Teensy 2.0 as ISP",
    "SparkFun PocketAVR / USBtinyISP / USBasp",
    "Bus Pirate",
    "Atmel DFU",
    "Caterina",
    "BootloadHID (PS2AVRGB)",
    "USBaspLoader",
];

/// One section of the guide: its heading, its text lines and its table.
struct Section {
    heading: String,
    lines: Vec<String>,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Section {
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The value after `key:` on a line of this section (`AVRDUDE Port: Serial`).
    fn field(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
    }
}

fn guide_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/reference/isp-flashing-guide.txt")
}

/// Splits the guide into the sections listed in [`HEADINGS`], each with its markdown table.
fn guide_sections() -> Vec<Section> {
    let path = guide_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the guide must be at {} (shared/ beside the repository, as CI checks it out): {e}",
            path.display()
        )
    });
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines().map(str::trim) {
        if HEADINGS.contains(&line) {
            sections.push(Section {
                heading: line.to_string(),
                lines: Vec::new(),
                header: Vec::new(),
                rows: Vec::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            continue;
        };
        section.lines.push(line.to_string());
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
            continue; // the |---|---| separator
        }
        if section.header.is_empty() {
            section.header = cells;
        } else {
            section.rows.push(cells);
        }
    }
    let found: Vec<&str> = sections.iter().map(|s| s.heading.as_str()).collect();
    assert_eq!(found, HEADINGS, "the guide's sections changed");
    for s in &sections {
        assert!(!s.rows.is_empty(), "no table rows under '{}'", s.heading);
    }
    sections
}

fn byte(cell: &str) -> u8 {
    let hex = cell
        .trim()
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("not a byte: {cell}"));
    u8::from_str_radix(&hex[..2], 16).unwrap_or_else(|_| panic!("not a byte: {cell}"))
}

/// `0x99/0xD9(JTAG disabled)` → [(0x99, None), (0xD9, Some("JTAG disabled"))].
fn variants(cell: &str) -> Vec<(u8, Option<String>)> {
    cell.split('/')
        .map(|part| {
            let label = part
                .split_once('(')
                .map(|(_, rest)| rest.trim_end_matches(')').trim().to_string());
            (byte(part), label)
        })
        .collect()
}

fn no_spaces(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn every_bootloader_row_of_the_guide_is_in_the_catalog_with_its_exact_values() {
    let catalog = BootloaderCatalog::builtin().unwrap();
    let mut matched: HashSet<&str> = HashSet::new();
    for section in guide_sections().iter().skip(4) {
        let (mcu, low, high, usb) = (
            section.column("MCU").unwrap(),
            section.column("Low").unwrap(),
            section.column("High").unwrap(),
            section.column("USB ID").unwrap(),
        );
        let extended = section.column("Extended");
        for row in &section.rows {
            let name = row[mcu].trim_end_matches('*').trim();
            let entry: &Bootloader = catalog
                .all()
                .iter()
                .find(|b| b.family.guide_heading() == section.heading && b.guide_row == name)
                .unwrap_or_else(|| {
                    panic!(
                        "guide row '{}' / '{name}' not in the catalog",
                        section.heading
                    )
                });
            matched.insert(&entry.id);
            let what = format!("{} ({})", entry.id, name);

            assert_eq!(
                entry.usb,
                UsbId::parse(&row[usb]).unwrap(),
                "{what}: USB id"
            );
            assert_eq!(
                entry.combined_sketch,
                row[mcu].ends_with('*'),
                "{what}: '*' marker"
            );
            let efuse = extended
                .map(|c| row[c].as_str())
                .filter(|c| *c != "n/a")
                .map(byte);

            let highs = variants(&row[high]);
            assert_eq!(
                entry.presets.len(),
                highs.len(),
                "{what}: one preset per high fuse"
            );
            for (preset, (hfuse, label)) in entry.presets.iter().zip(&highs) {
                assert_eq!(preset.lfuse, byte(&row[low]), "{what}: lfuse");
                assert_eq!(preset.hfuse, *hfuse, "{what}: hfuse of {}", preset.id);
                assert_eq!(preset.efuse, efuse, "{what}: efuse of {}", preset.id);
                match label {
                    None => assert_eq!(preset.id, "default", "{what}"),
                    Some(label) => {
                        assert_eq!(label, "JTAG disabled", "{what}");
                        assert_eq!(preset.id, "jtag-disabled", "{what}");
                    }
                }
            }
        }
    }
    let all: HashSet<&str> = catalog.all().iter().map(|b| b.id.as_str()).collect();
    assert_eq!(matched, all, "catalog entries without a guide row");
    assert_eq!(
        all.len(),
        16,
        "4 Atmel DFU + 9 Caterina + 1 BootloadHID + 2 USBaspLoader"
    );
}

#[test]
fn guide_notes_are_carried_into_the_entries() {
    let catalog = BootloaderCatalog::builtin().unwrap();
    for id in [
        "caterina-promicro-3v3",
        "caterina-promicro-5v",
        "caterina-lilypadusb",
    ] {
        let notes = catalog.get(id).unwrap().notes.join(" ");
        assert!(
            notes.contains("750 ms") && notes.contains("twice"),
            "{id}: {notes}"
        );
    }
    for b in catalog.all().iter().filter(|b| b.combined_sketch) {
        assert!(
            b.notes.iter().any(|n| n.contains("NOT the bootloader")),
            "{}",
            b.id
        );
    }
    for id in ["atmel-dfu-at90usb64", "atmel-dfu-at90usb128"] {
        let notes = catalog.get(id).unwrap().notes.join(" ");
        assert!(notes.contains("Windows 8"), "{id}: {notes}");
    }
}

#[test]
fn every_programmer_matches_its_guide_section() {
    let sections = guide_sections();
    let catalog = ProgrammerCatalog::builtin().unwrap();
    let mut covered = HashSet::new();
    for programmer in catalog.all() {
        let section = sections
            .iter()
            .find(|s| s.heading == programmer.guide_section)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no guide section '{}'",
                    programmer.id, programmer.guide_section
                )
            });
        covered.insert(section.heading.as_str());

        let drivers: Vec<&str> = section
            .field("AVRDUDE Programmer")
            .unwrap()
            .split('/')
            .map(str::trim)
            .collect();
        assert!(
            drivers.contains(&programmer.driver.id()),
            "{}: driver",
            programmer.id
        );
        let port = match section.field("AVRDUDE Port").unwrap() {
            "Serial" => PortKind::Serial,
            "usb" => PortKind::Usb,
            other => panic!("unexpected port '{other}'"),
        };
        assert_eq!(programmer.port, port, "{}: port", programmer.id);

        assert_eq!(
            programmer.wiring.len(),
            section.rows.len(),
            "{}: wiring rows",
            programmer.id
        );
        for (wire, row) in programmer.wiring.iter().zip(&section.rows) {
            assert_eq!(
                no_spaces(&wire.programmer_pin),
                no_spaces(&row[0]),
                "{}",
                programmer.id
            );
            assert_eq!(wire.target.label(), row[1], "{}", programmer.id);
        }
    }
    assert_eq!(covered.len(), 4, "every hardware section has a programmer");
}

#[test]
fn the_guide_warnings_are_shown() {
    let catalog = ProgrammerCatalog::builtin().unwrap();
    for id in ["promicro-isp", "teensy2-isp"] {
        let warnings = catalog.get(id).unwrap().warnings.join(" ");
        assert!(
            warnings.contains("DO NOT connect the RESET pin"),
            "{id}: {warnings}"
        );
    }
    let bus_pirate = catalog.get("buspirate").unwrap().warnings.join(" ");
    assert!(bus_pirate.contains("5-pin \"ICSP\" header"), "{bus_pirate}");
    assert!(
        bus_pirate.contains("10-pin header opposite the USB connector"),
        "{bus_pirate}"
    );
}
