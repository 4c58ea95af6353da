//! The files the doctor and the packages depend on: the udev rules cover every USB id of the
//! catalogs in a form udev matches, the desktop entry and AppStream metadata agree on the app
//! id, and every file the .deb ships exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use isp_toolbox::catalog::{BootloaderCatalog, PortKind, ProgrammerCatalog, UsbId};
use isp_toolbox::doctor::udev::{RULES_FILE_NAME, RulesSummary, SHIPPED_RULES};

const APP_ID: &str = "io.github.isptoolbox.IspToolbox";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every USB id a programmer, ISP firmware or bootloader ISP Toolbox talks to enumerates as.
fn catalog_ids() -> BTreeSet<UsbId> {
    let programmers = ProgrammerCatalog::builtin().unwrap();
    let bootloaders = BootloaderCatalog::builtin().unwrap();
    let mut ids: BTreeSet<UsbId> = programmers
        .all()
        .iter()
        .flat_map(|p| p.usb.iter().map(|u| u.id))
        .collect();
    ids.extend(bootloaders.all().iter().map(|b| b.usb));
    ids.extend(
        bootloaders
            .isp_firmware()
            .iter()
            .flat_map(|f| f.usb.iter().copied()),
    );
    // `prepare` loads the ISP firmware onto a Teensy 2.0 through HalfKay, over libusb.
    ids.insert(isp_toolbox::bootload::halfkay::HALFKAY_USB);
    ids
}

#[test]
fn udev_rules_cover_exactly_the_known_ids() {
    let shipped = read(&format!("packaging/linux/{RULES_FILE_NAME}"));
    assert_eq!(shipped, SHIPPED_RULES, "the doctor embeds the shipped file");
    let summary = RulesSummary::of(&shipped);
    let wanted = catalog_ids();
    let missing: Vec<String> = wanted
        .difference(&summary.ids)
        .map(UsbId::to_string)
        .collect();
    let stale: Vec<String> = summary
        .ids
        .difference(&wanted)
        .map(UsbId::to_string)
        .collect();
    assert!(missing.is_empty(), "add to the rules: {missing:?}");
    assert!(stale.is_empty(), "no catalog entry has: {stale:?}");
    assert!(summary.uaccess && summary.ignored_by_modem_manager);
}

#[test]
fn udev_rules_are_well_formed() {
    let mut labels = BTreeSet::new();
    let mut gotos = BTreeSet::new();
    for (n, line) in SHIPPED_RULES.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for token in line.split(", ") {
            let (key, op, value) = split_rule_token(token)
                .unwrap_or_else(|| panic!("line {}: bad token {token:?}", n + 1));
            let key_name = key.split('{').next().unwrap();
            assert!(
                [
                    "ACTION",
                    "SUBSYSTEM",
                    "ATTRS",
                    "ENV",
                    "TAG",
                    "GOTO",
                    "LABEL"
                ]
                .contains(&key_name),
                "line {}: unexpected key {key}",
                n + 1
            );
            if key.starts_with("ATTRS{id") {
                assert_eq!(op, "==");
                assert_eq!(value.len(), 4, "line {}: {value}", n + 1);
                assert!(
                    value
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                    "line {}: udev compares {value} with sysfs's lowercase hex",
                    n + 1
                );
            }
            match key {
                "LABEL" => {
                    labels.insert(value.to_string());
                }
                "GOTO" => {
                    gotos.insert(value.to_string());
                }
                _ => {}
            }
        }
    }
    assert_eq!(gotos, labels, "every GOTO has its LABEL");
}

/// `KEY{attr}=="value"` → (`KEY{attr}`, `==`, `value`).
fn split_rule_token(token: &str) -> Option<(&str, &str, &str)> {
    let value_start = token.find('"')?;
    let value = token[value_start..].strip_prefix('"')?.strip_suffix('"')?;
    let head = &token[..value_start];
    for op in ["==", "!=", "+=", "="] {
        if let Some(key) = head.strip_suffix(op) {
            return Some((key, op, value));
        }
    }
    None
}

#[test]
fn desktop_entry_and_metainfo_agree() {
    let desktop = read(&format!("packaging/linux/{APP_ID}.desktop"));
    let entry: Vec<(&str, &str)> = desktop
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('='))
        .collect();
    assert_eq!(desktop.lines().next(), Some("[Desktop Entry]"));
    let get = |key: &str| entry.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    assert_eq!(get("Type"), Some("Application"));
    // %f: a file from "Open with" (a .hex, or a production profile) is opened at start.
    assert_eq!(get("Exec"), Some("isp-toolbox %f"));
    assert_eq!(get("Icon"), Some(APP_ID));
    assert_eq!(get("Terminal"), Some("false"));
    assert!(get("Categories").unwrap().ends_with(';'));

    let metainfo = read(&format!("packaging/linux/{APP_ID}.metainfo.xml"));
    assert!(metainfo.contains(&format!("<id>{APP_ID}</id>")));
    assert!(metainfo.contains(&format!(
        "<launchable type=\"desktop-id\">{APP_ID}.desktop</launchable>"
    )));
    assert!(metainfo.contains(&format!(
        "<release version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(metainfo.contains(&format!(
        "<project_license>{}</project_license>",
        env!("CARGO_PKG_LICENSE")
    )));
}

#[test]
fn metainfo_suggests_the_app_for_dedicated_usb_programmers_only() {
    let metainfo = read(&format!("packaging/linux/{APP_ID}.metainfo.xml"));
    let listed: BTreeSet<UsbId> = metainfo
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<modalias>usb:v"))
        .map(|rest| {
            let (vid, rest) = rest.split_at(4);
            let pid = &rest.strip_prefix('p').unwrap()[..4];
            UsbId::parse(&format!("{vid}:{pid}")).unwrap()
        })
        .collect();
    // Ids that are a programmer's own, plus a USB programmer's shared id that its product
    // string confirms (USBasp on V-USB's 16C0:05DC); not the PJRC, FTDI or Arduino ids.
    let dedicated: BTreeSet<UsbId> = ProgrammerCatalog::builtin()
        .unwrap()
        .all()
        .iter()
        .flat_map(|p| {
            p.usb
                .iter()
                .filter(move |u| !u.shared || (p.port == PortKind::Usb && u.product.is_some()))
                .map(|u| u.id)
        })
        .collect();
    assert_eq!(listed, dedicated);
}

#[test]
fn every_file_the_deb_ships_exists() {
    let manifest = read("Cargo.toml");
    let section = manifest
        .split("[package.metadata.deb]")
        .nth(1)
        .expect("Cargo.toml has [package.metadata.deb]");
    let section = section.split("\n[").next().unwrap();
    let sources: Vec<&str> = section
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(sources.len() >= 10, "{sources:?}");
    for source in &sources {
        if source.starts_with("target/") {
            continue;
        }
        assert!(repo(source).is_file(), "{source} is listed but missing");
    }
    for needed in [
        "packaging/linux/60-isp-toolbox.rules",
        &format!("packaging/linux/{APP_ID}.desktop"),
        &format!("packaging/linux/{APP_ID}.metainfo.xml"),
        "assets/icon.svg",
        "assets/icon-256.png",
    ] {
        assert!(sources.contains(&needed), "{needed} is not in the .deb");
    }
    let scripts = section
        .lines()
        .find_map(|l| l.trim().strip_prefix("maintainer-scripts = \""))
        .and_then(|l| l.split('"').next())
        .expect("maintainer-scripts");
    assert!(repo(scripts).join("postinst").is_file());
}

#[test]
fn icons_are_png_of_their_size() {
    for size in [16u32, 24, 32, 48, 64, 128, 256, 512, 1024] {
        let bytes = std::fs::read(repo(&format!("assets/icon-{size}.png"))).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "icon-{size}.png");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (size, size), "icon-{size}.png");
    }
    let svg = read("assets/icon.svg");
    assert!(svg.contains("viewBox=\"0 0 256 256\""));
}
