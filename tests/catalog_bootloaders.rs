//! The bootloader catalog: it loads, its lookups work, and validation catches each kind of
//! mistake an edit of `bootloaders/catalog.json` could make.

use isp_toolbox::Error;
use isp_toolbox::catalog::{
    BootloaderCatalog, Family, KnownBuild, ProgrammerCatalog, UsbId, parse_sha256,
};
use isp_toolbox::part::{FuseKind, PartDb};
use serde_json::{Value, json};

const CATALOG_JSON: &str = include_str!("../bootloaders/catalog.json");

fn catalog() -> &'static BootloaderCatalog {
    BootloaderCatalog::builtin().expect("the built-in bootloader catalog must be valid")
}

/// Loads the built-in JSON after `edit`, returning the validation message.
fn rejected(edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(CATALOG_JSON).unwrap();
    edit(&mut value);
    let parts = PartDb::builtin().unwrap();
    let programmers = ProgrammerCatalog::builtin().unwrap();
    match BootloaderCatalog::from_json(&value.to_string(), parts, programmers) {
        Ok(_) => panic!("the edited catalog was accepted"),
        Err(Error::Data { file, reason }) => {
            assert_eq!(file, "bootloaders/catalog.json");
            reason
        }
        Err(other) => panic!("expected a data error, got {other:?}"),
    }
}

/// The bootloader entry with this id in the raw JSON.
fn entry<'a>(value: &'a mut Value, id: &str) -> &'a mut Value {
    value["bootloaders"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|b| b["id"] == id)
        .unwrap()
}

#[test]
fn the_unedited_catalog_passes_the_same_validation() {
    let parts = PartDb::builtin().unwrap();
    let programmers = ProgrammerCatalog::builtin().unwrap();
    let parsed = BootloaderCatalog::from_json(CATALOG_JSON, parts, programmers).unwrap();
    assert_eq!(parsed.all().len(), catalog().all().len());
    assert_eq!(catalog().isp_firmware().len(), 3);
}

#[test]
fn lookups_by_id_part_and_usb() {
    let c = catalog();
    let promicro = c.get("Caterina-ProMicro-5V").unwrap();
    assert_eq!(promicro.family, Family::Caterina);
    assert_eq!(promicro.board_clock_hz, 16_000_000);
    assert_eq!(
        c.get("caterina-promicro-3v3").unwrap().board_clock_hz,
        8_000_000
    );
    assert_eq!(
        (promicro.boot_section_bytes, promicro.boot_section_words()),
        (4096, 2048)
    );

    let err = c.get("caterina-promicro").unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.hint().unwrap().contains("caterina-promicro-5v"),
        "{err}"
    );

    // One guide row covers both AT90USB64 parts.
    let for_647: Vec<&str> = c.for_part("at90usb647").map(|b| b.id.as_str()).collect();
    assert_eq!(for_647, ["atmel-dfu-at90usb64"]);
    let for_32a: Vec<&str> = c.for_part("atmega32a").map(|b| b.id.as_str()).collect();
    assert_eq!(for_32a, ["bootloadhid-atmega32a", "usbasploader-atmega32a"]);
    assert_eq!(c.for_part("atmega32u4").count(), 10);

    let leonardo: Vec<&str> = c
        .by_usb(UsbId::new(0x2341, 0x0036))
        .iter()
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(leonardo, ["caterina-leonardo"]);
    assert_eq!(
        c.by_usb(UsbId::new(0x16C0, 0x05DC)).len(),
        2,
        "both USBaspLoader builds"
    );
    assert!(c.by_usb(UsbId::new(0x1234, 0x5678)).is_empty());
}

#[test]
fn presets_expose_their_bytes_in_write_order() {
    let dfu = catalog().get("atmel-dfu-atmega32u4").unwrap();
    assert_eq!(dfu.default_preset().hfuse, 0x99);
    let jtag_off = dfu.preset("JTAG-disabled").unwrap();
    let bytes: Vec<(FuseKind, u8)> = jtag_off.values().collect();
    assert_eq!(
        bytes,
        [
            (FuseKind::Low, 0x5E),
            (FuseKind::High, 0xD9),
            (FuseKind::Extended, 0xF3)
        ]
    );
    assert!(dfu.preset("nope").is_none());

    let hid = catalog()
        .get("bootloadhid-atmega32a")
        .unwrap()
        .default_preset();
    assert_eq!(hid.value(FuseKind::Extended), None);
    assert_eq!(hid.value(FuseKind::Lock), Some(0x2F));
    assert_eq!(
        hid.values().last(),
        Some((FuseKind::Lock, 0x2F)),
        "lock is written last"
    );
}

#[test]
fn every_preset_leaves_room_for_its_bootloader() {
    let parts = PartDb::builtin().unwrap();
    for b in catalog().all() {
        for mcu in &b.mcus {
            let part = parts.find(mcu).unwrap();
            for preset in &b.presets {
                let section = part.boot_section_for_hfuse(preset.hfuse).unwrap();
                assert!(section.bytes() >= b.boot_section_bytes, "{} on {mcu}", b.id);
            }
        }
    }
    let usb128 = catalog().get("atmel-dfu-at90usb128").unwrap();
    assert_eq!(usb128.boot_section_bytes, 8192);
}

#[test]
fn identifies_known_builds_by_hash() {
    let c = catalog();
    let content =
        parse_sha256("e6dcc331d9f9204c5ccffe288a25f6701aa9fbb2194707376c477a62438b4c5d").unwrap();
    let found = c.identify_content(&content).unwrap();
    assert!(matches!(found, KnownBuild::Bootloader(b) if b.id == "caterina-promicro-5v"));
    assert_eq!(found.hex().file_name, "Caterina-promicro16.hex");

    let file =
        parse_sha256("2127dde14f22f9871fefe3b55361458489c32f89feb2de21a2157b2459d5b86e").unwrap();
    assert_eq!(c.identify_file(&file).unwrap().id(), "caterina-leonardo");
    // A file hash is not a content hash.
    assert!(c.identify_content(&file).is_none());
    assert!(c.identify_content(&[0u8; 32]).is_none(), "unknown build");
    assert!(c.identify_file(&[0xAB; 32]).is_none());
}

#[test]
fn hashes_are_given_only_with_their_source() {
    for b in catalog().all() {
        let hex = &b.hex;
        let hashed = hex.file_sha256.is_some() || hex.content_sha256.is_some();
        assert_eq!(hashed, hex.hashed_from.is_some(), "{}", b.id);
        assert_eq!(!hashed, hex.hash_note.is_some(), "{}", b.id);
    }
    let verified = catalog()
        .all()
        .iter()
        .filter(|b| b.hex.content_sha256.is_some())
        .count();
    assert_eq!(
        verified, 9,
        "the nine Caterina builds were hashed from their repositories"
    );
}

#[test]
fn isp_firmware_builds_are_described() {
    let c = catalog();
    let promicro = c
        .isp_firmware()
        .iter()
        .find(|f| f.id == "qmk-promicro-isp")
        .unwrap();
    assert_eq!(promicro.programmer, "promicro-isp");
    assert!(promicro.reset_pin.contains("B6"));
    assert_eq!(promicro.usb, [UsbId::new(0x16C0, 0x0483)]);
    assert_eq!(promicro.hex.file_name, "pro_micro_ISP_B6_10.hex");

    let on_teensy_id: Vec<&str> = c
        .isp_firmware_by_usb(UsbId::new(0x16C0, 0x0483))
        .iter()
        .map(|f| f.id.as_str())
        .collect();
    assert_eq!(on_teensy_id, ["qmk-promicro-isp", "qmk-teensy2-isp"]);
    let sketch = c.isp_firmware_by_usb(UsbId::new(0x1B4F, 0x9206));
    assert_eq!(sketch.len(), 1);
    assert_eq!(sketch[0].id, "arduinoisp-sketch");
    assert_eq!(c.isp_firmware_by_usb(UsbId::new(0x2341, 0x8036)).len(), 1);
}

#[test]
fn rejects_an_unknown_mcu() {
    let reason = rejected(|v| entry(v, "caterina-micro")["mcus"] = json!(["atmega32u5"]));
    assert!(reason.contains("unknown MCU id 'atmega32u5'"), "{reason}");
    // Only canonical ids: an alias would make two spellings of one part.
    let reason = rejected(|v| entry(v, "caterina-micro")["mcus"] = json!(["m32u4"]));
    assert!(reason.contains("unknown MCU id 'm32u4'"), "{reason}");
}

#[test]
fn rejects_a_boot_section_too_small_for_the_bootloader() {
    // hfuse 0xDE: BOOTSZ = 11, a 512-byte boot section for a 4 KB bootloader.
    let reason = rejected(|v| entry(v, "caterina-leonardo")["presets"][0]["hfuse"] = json!("0xDE"));
    assert!(
        reason.contains("512-byte boot section") && reason.contains("needs 4096"),
        "{reason}"
    );
    // 0x9B is right for the AT90USB64 (4 KB) but too small for the AT90USB128 (8 KB).
    let reason =
        rejected(|v| entry(v, "atmel-dfu-at90usb128")["presets"][0]["hfuse"] = json!("0x9B"));
    assert!(reason.contains("needs 8192"), "{reason}");
}

#[test]
fn rejects_efuse_where_the_part_has_none_and_its_absence_where_it_has_one() {
    let reason = rejected(|v| {
        entry(v, "bootloadhid-atmega32a")["presets"][0]["efuse"] = json!("0xFF");
    });
    assert!(reason.contains("has no extended fuse"), "{reason}");
    let reason = rejected(|v| {
        let preset = entry(v, "caterina-micro")["presets"][0]
            .as_object_mut()
            .unwrap();
        preset.remove("efuse");
    });
    assert!(reason.contains("needs an efuse value"), "{reason}");
}

#[test]
fn rejects_malformed_usb_ids() {
    for bad in [
        "2341-0037",
        "2341:00370",
        "234:0037",
        "0x2341:0037",
        "ZZZZ:0037",
        "",
    ] {
        let reason = rejected(|v| entry(v, "caterina-micro")["usb"] = json!(bad));
        assert!(reason.contains("is not a USB id"), "{bad}: {reason}");
    }
    let reason = rejected(|v| entry(v, "caterina-micro")["usb"] = json!("0000:0037"));
    assert!(reason.contains("vendor id 0"), "{reason}");
    let reason = rejected(|v| v["isp_firmware"][0]["usb"] = json!(["16C0:0483", "16c0:0483"]));
    assert!(reason.contains("listed twice"), "{reason}");
}

#[test]
fn rejects_duplicate_ids() {
    let reason = rejected(|v| entry(v, "caterina-micro")["id"] = json!("caterina-leonardo"));
    assert!(
        reason.contains("'caterina-leonardo' is used twice"),
        "{reason}"
    );
    // Ids share one namespace across bootloaders and ISP firmware.
    let reason = rejected(|v| v["isp_firmware"][0]["id"] = json!("caterina-micro"));
    assert!(
        reason.contains("'caterina-micro' is used twice"),
        "{reason}"
    );
    let reason = rejected(|v| {
        let presets = entry(v, "atmel-dfu-atmega32u4")["presets"]
            .as_array_mut()
            .unwrap();
        presets[1]["id"] = json!("default");
    });
    assert!(
        reason.contains("preset id 'default' is used twice"),
        "{reason}"
    );
    let reason = rejected(|v| entry(v, "caterina-micro")["guide_row"] = json!("Arduino Leonardo"));
    assert!(
        reason.contains("guide row 'Arduino Leonardo' is used twice"),
        "{reason}"
    );
}

#[test]
fn rejects_ids_unfit_for_a_command_line() {
    let reason = rejected(|v| entry(v, "caterina-micro")["id"] = json!("Caterina Micro"));
    assert!(reason.contains("lowercase letters"), "{reason}");
}

#[test]
fn rejects_hash_mistakes() {
    let reason = rejected(|v| entry(v, "caterina-micro")["hex"]["content_sha256"] = json!("abc"));
    assert!(reason.contains("is not a SHA-256"), "{reason}");
    let leonardo = "9c6fd6288dae702fc6101fa68a0a2db485cd12f87eaede1d18598eb0f70042bb";
    let reason =
        rejected(|v| entry(v, "caterina-micro")["hex"]["content_sha256"] = json!(leonardo));
    assert!(reason.contains("the same content SHA-256"), "{reason}");
    // A hash must say which copy it was computed from.
    let reason = rejected(|v| entry(v, "caterina-micro")["hex"]["hashed_from"] = Value::Null);
    assert!(reason.contains("hashed_from"), "{reason}");
    // And a missing hash must say why.
    let reason =
        rejected(|v| entry(v, "usbasploader-atmega328p")["hex"]["hash_note"] = Value::Null);
    assert!(reason.contains("hash_note"), "{reason}");
}

#[test]
fn rejects_a_lock_byte_without_its_source() {
    let reason = rejected(|v| entry(v, "bootloadhid-atmega32a")["lock_source"] = Value::Null);
    assert!(reason.contains("lock_source"), "{reason}");
    let reason = rejected(|v| entry(v, "caterina-micro")["presets"][0]["lock"] = json!("0x2F"));
    assert!(reason.contains("lock_source"), "{reason}");
}

#[test]
fn rejects_a_firmware_for_an_unknown_programmer() {
    let reason = rejected(|v| v["isp_firmware"][1]["programmer"] = json!("teensy3-isp"));
    assert!(
        reason.contains("unknown programmer 'teensy3-isp'"),
        "{reason}"
    );
}

#[test]
fn rejects_misspelt_fields_and_bad_values() {
    let reason = rejected(|v| {
        let preset = entry(v, "caterina-micro")["presets"][0]
            .as_object_mut()
            .unwrap();
        let efuse = preset.remove("efuse").unwrap();
        preset.insert("efsue".into(), efuse);
    });
    assert!(reason.contains("unknown field `efsue`"), "{reason}");
    let reason = rejected(|v| entry(v, "caterina-micro")["presets"][0]["lfuse"] = json!("0x1FF"));
    assert!(reason.contains("does not fit a byte"), "{reason}");
    let reason = rejected(|v| entry(v, "caterina-micro")["family"] = json!("halfkay"));
    assert!(reason.contains("unknown variant `halfkay`"), "{reason}");
    let reason = rejected(|v| entry(v, "caterina-micro")["board_clock_hz"] = json!(0));
    assert!(reason.contains("board clock"), "{reason}");
    let reason = rejected(|v| entry(v, "caterina-micro")["hex"]["url"] = json!("http://x"));
    assert!(reason.contains("https://"), "{reason}");
    let reason = rejected(|v| entry(v, "caterina-micro")["presets"] = json!([]));
    assert!(reason.contains("no fuse preset"), "{reason}");
}
