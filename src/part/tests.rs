use super::*;

fn db() -> &'static PartDb {
    PartDb::builtin().expect("built-in parts.json must be valid")
}

#[test]
fn every_part_of_the_guide_is_known() {
    for name in [
        "atmega16u4",
        "atmega32u4",
        "at90usb646",
        "at90usb647",
        "at90usb1286",
        "at90usb1287",
        "atmega32a",
        "atmega328p",
    ] {
        assert_eq!(db().find(name).unwrap().id, name);
    }
}

#[test]
fn names_are_found_in_any_case_and_by_avrdude_id() {
    assert_eq!(db().find("m32u4").unwrap().name, "ATmega32U4");
    assert_eq!(db().find("ATMEGA32U4").unwrap().name, "ATmega32U4");
    assert_eq!(db().find(" usb1286 ").unwrap().name, "AT90USB1286");
    let err = db().find("atmega2560").unwrap_err();
    assert!(err.hint().unwrap().contains("atmega32u4"), "{err:?}");
}

#[test]
fn shared_signatures_return_every_part() {
    let names: Vec<_> = db()
        .by_signature([0x1E, 0x96, 0x82])
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(names, ["at90usb646", "at90usb647"]);
}

#[test]
fn boot_section_follows_bootsz_in_hfuse() {
    let p = db().find("atmega32u4").unwrap();
    // 0xD8: BOOTSZ = 00 → 2048 words at word 0x3800 (byte 0x7000), the Caterina layout.
    let b = p.boot_section_for_hfuse(0xD8).unwrap();
    assert_eq!((b.words, b.start_byte()), (2048, 0x7000));
    // 0xD9 (Atmel DFU, JTAG off): BOOTSZ 00 too, BOOTRST unprogrammed.
    assert_eq!(p.boot_section_for_hfuse(0xD9).unwrap().start_byte(), 0x7000);
    let usb646 = db().find("at90usb646").unwrap();
    assert_eq!(usb646.boot_section_for_hfuse(0x9B).unwrap().words, 2048);
}

#[test]
fn target_clock_from_fuses() {
    let p = db().find("atmega32u4").unwrap();
    // 0x5E: external crystal 8 MHz+, CKDIV8 programmed (the Atmel DFU factory setting).
    let c = p.target_clock(0x5E, Some(16_000_000));
    assert!(c.divided_by_8);
    assert_eq!(c.cpu_hz, Some(2_000_000));
    assert_eq!(
        p.target_clock(0xFF, Some(16_000_000)).cpu_hz,
        Some(16_000_000)
    );
    assert_eq!(p.target_clock(0xFF, None).cpu_hz, None);
    // Factory default 0x52: internal RC 8 MHz / 8.
    assert_eq!(p.target_clock(0x52, None).cpu_hz, Some(1_000_000));
    let m32a = db().find("atmega32a").unwrap();
    assert_eq!(m32a.target_clock(0xE1, None).cpu_hz, Some(1_000_000));
    assert_eq!(Part::max_sck_hz(16_000_000), 2_666_666);
    assert_eq!(Part::max_sck_hz(1_000_000), 250_000);
}

#[test]
fn critical_fields_name_their_lockout_values() {
    let p = db().find("atmega328p").unwrap();
    for name in ["SPIEN", "RSTDISBL", "DWEN"] {
        let (_, f) = p.find_field(name).unwrap();
        assert_eq!(f.risk, Risk::Critical, "{name}");
        assert!(f.lockout_value.is_some());
    }
}

#[test]
fn decoding_names_every_field() {
    let p = db().find("atmega32u4").unwrap();
    let fields = decode_byte(p, FuseKind::High, 0xD8);
    let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "OCDEN", "JTAGEN", "SPIEN", "WDTON", "EESAVE", "BOOTSZ", "BOOTRST"
        ]
    );
    let bootrst = fields.iter().find(|f| f.name == "BOOTRST").unwrap();
    assert_eq!(bootrst.value, 0);
    assert!(bootrst.meaning.contains("bootloader"));
}

#[test]
fn invalid_data_is_rejected_with_a_reason() {
    let err = PartDb::from_json(r#"{"parts": []}"#).unwrap_err();
    assert!(err.to_string().contains("no parts"));
    let err = PartDb::from_json("{").unwrap_err();
    assert!(err.to_string().contains("parts.json"));
}
