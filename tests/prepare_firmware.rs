//! The ISP firmware check against a catalog that knows builds by their content hash: the
//! other board's ISP firmware and a bootloader are refused, the board's own is named.

mod prepare_common;

use isp_toolbox::bootload::Board;
use isp_toolbox::bootload::firmware::check_isp_firmware;
use isp_toolbox::catalog::{BootloaderCatalog, ProgrammerCatalog, sha256_hex};
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::part::PartDb;
use prepare_common::*;

/// The built-in catalog with content hashes given to two entries, as a verified copy of the
/// published files would give them.
fn catalog_knowing(entries: &[(&str, &MemoryImage)]) -> BootloaderCatalog {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bootloaders/catalog.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (id, image) in entries {
        let (bootloaders, firmware) = match &mut json {
            serde_json::Value::Object(map) => {
                let mut lists = map
                    .iter_mut()
                    .filter(|(k, _)| *k == "bootloaders" || *k == "isp_firmware");
                let a = lists.next().unwrap().1;
                let b = lists.next().unwrap().1;
                (a.as_array_mut().unwrap(), b.as_array_mut().unwrap())
            }
            _ => panic!("the catalog is an object"),
        };
        let entry = bootloaders
            .iter_mut()
            .chain(firmware.iter_mut())
            .find(|e| e["id"] == *id)
            .unwrap();
        entry["hex"]["content_sha256"] = sha256_hex(&image.content_sha256()).into();
        entry["hex"]["hashed_from"] = "test/fixture@0000000:file.hex".into();
        entry["hex"]["hash_note"] = serde_json::Value::Null;
    }
    BootloaderCatalog::from_json(
        &json.to_string(),
        PartDb::builtin().unwrap(),
        ProgrammerCatalog::builtin().unwrap(),
    )
    .unwrap()
}

#[test]
fn known_builds_are_named_or_refused_by_board() {
    let teensy_isp = isp_image(TEENSYDUINO_SERIAL, 0x1A00);
    let not_isp = isp_image(KEYBOARD, 0x800);
    let catalog = catalog_knowing(&[
        ("qmk-teensy2-isp", &teensy_isp),
        ("caterina-promicro-5v", &not_isp),
    ]);

    let check = check_isp_firmware(Board::Teensy2, &teensy_isp, &catalog).unwrap();
    assert_eq!(check.known_build.as_deref(), Some("qmk-teensy2-isp"));
    assert!(check.warnings.is_empty(), "{:?}", check.warnings);

    let err = check_isp_firmware(Board::ProMicro, &teensy_isp, &catalog).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("built for the PJRC Teensy 2.0") && text.contains("not for the Pro Micro"),
        "{text}"
    );
    assert_eq!(err.exit_code(), 2);

    let err = check_isp_firmware(Board::Teensy2, &not_isp, &catalog).unwrap_err();
    assert!(
        err.to_string()
            .contains("is the bootloader 'Caterina (SparkFun Pro Micro 5V/16MHz)'"),
        "{err}"
    );
}
