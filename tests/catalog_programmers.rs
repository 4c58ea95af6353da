//! The programmer catalog: lookups by id and driver alias, USB identification, wiring and
//! headers, and validation of `assets/programmers.json`.

use isp_toolbox::Error;
use isp_toolbox::catalog::{Driver, MatchConfidence, PortKind, ProgrammerCatalog, UsbId};
use isp_toolbox::part::{IspSignal, PartDb};
use serde_json::{Value, json};

const PROGRAMMERS_JSON: &str = include_str!("../assets/programmers.json");

fn catalog() -> &'static ProgrammerCatalog {
    ProgrammerCatalog::builtin().expect("the built-in programmer catalog must be valid")
}

/// Loads the built-in JSON after `edit`, returning the validation message.
fn rejected(edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(PROGRAMMERS_JSON).unwrap();
    edit(&mut value);
    match ProgrammerCatalog::from_json(&value.to_string()) {
        Ok(_) => panic!("the edited catalog was accepted"),
        Err(Error::Data { file, reason }) => {
            assert_eq!(file, "assets/programmers.json");
            reason
        }
        Err(other) => panic!("expected a data error, got {other:?}"),
    }
}

/// The programmer entry with this id in the raw JSON.
fn entry<'a>(value: &'a mut Value, id: &str) -> &'a mut Value {
    value["programmers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["id"] == id)
        .unwrap()
}

fn ids<'a>(
    programmers: impl IntoIterator<Item = &'a isp_toolbox::catalog::Programmer>,
) -> Vec<&'a str> {
    programmers.into_iter().map(|p| p.id.as_str()).collect()
}

#[test]
fn the_guide_programmers_are_all_there() {
    assert_eq!(
        ids(catalog().all()),
        [
            "promicro-isp",
            "teensy2-isp",
            "pocketavr",
            "usbtinyisp",
            "usbasp",
            "buspirate"
        ]
    );
    let parsed = ProgrammerCatalog::from_json(PROGRAMMERS_JSON).unwrap();
    assert_eq!(parsed.all().len(), 6);
}

#[test]
fn drivers_bauds_and_ports() {
    let c = catalog();
    let promicro = c.get("promicro-isp").unwrap();
    assert_eq!(
        (promicro.driver, promicro.port),
        (Driver::Avrisp, PortKind::Serial)
    );
    assert_eq!(promicro.default_baud, Some(19200), "ArduinoISP's baud rate");
    let bus_pirate = c.get("BusPirate").unwrap();
    assert_eq!(bus_pirate.default_baud, Some(115200));
    let usbasp = c.get("usbasp").unwrap();
    assert_eq!((usbasp.port, usbasp.default_baud), (PortKind::Usb, None));
}

#[test]
fn lookup_by_driver_alias() {
    let c = catalog();
    for alias in [
        "avrisp",
        "arduino_as_isp",
        "stk500v1",
        "arduino",
        "STK500V1",
    ] {
        assert_eq!(Driver::from_alias(alias), Some(Driver::Avrisp), "{alias}");
        assert_eq!(c.find(alias).unwrap().id, "promicro-isp", "{alias}");
    }
    assert_eq!(c.find("usbtiny").unwrap().id, "pocketavr");
    assert_eq!(c.find("usbasp").unwrap().id, "usbasp");
    assert_eq!(c.find("buspirate").unwrap().driver, Driver::Buspirate);
    assert_eq!(
        c.find("teensy2-isp").unwrap().driver,
        Driver::Avrisp,
        "ids work too"
    );
    assert_eq!(
        ids(c.with_driver(Driver::Usbtiny)),
        ["pocketavr", "usbtinyisp"]
    );
    assert_eq!(
        ids(c.with_driver(Driver::Avrisp)),
        ["promicro-isp", "teensy2-isp"]
    );

    let err = c.find("jtag2").unwrap_err();
    let hint = err.hint().unwrap();
    assert!(
        hint.contains("promicro-isp") && hint.contains("stk500v1"),
        "{hint}"
    );
    assert!(c.get("stk500v1").is_err(), "get() takes ids only");
    for driver in Driver::ALL {
        assert_eq!(Driver::from_alias(driver.id()), Some(driver));
        assert_eq!(driver.to_string(), driver.id());
    }
}

#[test]
fn identify_usb_finds_every_programmer_that_could_be_on_the_port() {
    let c = catalog();
    let found = |vid, pid, product| {
        c.identify_usb(vid, pid, product)
            .iter()
            .map(|m| (m.programmer.id.as_str(), m.confidence))
            .collect::<Vec<_>>()
    };
    // QMK's ISP firmware on a Pro Micro and on a Teensy both use PJRC's serial id.
    assert_eq!(
        found(0x16C0, 0x0483, None),
        [
            ("promicro-isp", MatchConfidence::Possible),
            ("teensy2-isp", MatchConfidence::Possible)
        ]
    );
    assert_eq!(
        found(0x16C0, 0x0483, Some("USB Serial")),
        [
            ("promicro-isp", MatchConfidence::Exact),
            ("teensy2-isp", MatchConfidence::Exact)
        ]
    );
    assert_eq!(
        found(0x1B4F, 0x9206, None),
        [("promicro-isp", MatchConfidence::Possible)]
    );
    assert_eq!(
        found(0x1B4F, 0x9204, None),
        [("promicro-isp", MatchConfidence::Possible)]
    );
    assert_eq!(
        found(0x1781, 0x0C9F, None),
        [
            ("pocketavr", MatchConfidence::Likely),
            ("usbtinyisp", MatchConfidence::Likely)
        ]
    );
    // USBasp: the shared V-USB id is only certain with its product string.
    assert_eq!(
        found(0x16C0, 0x05DC, Some(" usbasp ")),
        [("usbasp", MatchConfidence::Exact)]
    );
    assert_eq!(
        found(0x16C0, 0x05DC, None),
        [("usbasp", MatchConfidence::Possible)]
    );
    assert!(found(0x16C0, 0x05DC, Some("AVR USB GPIO")).is_empty());
    assert_eq!(
        found(0x0403, 0x6001, None),
        [("buspirate", MatchConfidence::Possible)]
    );
    assert_eq!(
        found(0x04D8, 0xFB00, Some("Bus Pirate V4 ")),
        [("buspirate", MatchConfidence::Exact)]
    );
    assert_eq!(
        found(0x04D8, 0xFB00, None),
        [("buspirate", MatchConfidence::Likely)]
    );
    // The Pro Micro's own bootloader is not a programmer.
    assert!(found(0x1B4F, 0x9205, None).is_empty());
    assert!(found(0x0000, 0x0000, None).is_empty());
}

#[test]
fn identify_usb_puts_the_surest_match_first() {
    let mut value: Value = serde_json::from_str(PROGRAMMERS_JSON).unwrap();
    // Give the Teensy a second, unshared id equal to the Pro Micro's shared one.
    entry(&mut value, "teensy2-isp")["usb"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "1B4F:9206", "product": null, "shared": false, "note": "test" }));
    let c = ProgrammerCatalog::from_json(&value.to_string()).unwrap();
    let order: Vec<&str> = c
        .identify_usb(0x1B4F, 0x9206, None)
        .iter()
        .map(|m| m.programmer.id.as_str())
        .collect();
    assert_eq!(order, ["teensy2-isp", "promicro-isp"]);
}

#[test]
fn wiring_and_headers() {
    let c = catalog();
    let promicro = c.get("promicro-isp").unwrap();
    assert_eq!(
        promicro.wire_for(IspSignal::Reset).unwrap().programmer_pin,
        "10 (B6)"
    );
    assert!(promicro.headers.is_empty(), "wired pin by pin");

    let reset = c
        .get("buspirate")
        .unwrap()
        .wire_for(IspSignal::Reset)
        .unwrap();
    assert_eq!(
        (reset.programmer_pin.as_str(), reset.device_pin.as_deref()),
        ("RST", Some("CS"))
    );
    assert!(reset.note.as_deref().unwrap().contains("CS"));

    let six = c.header("avr-isp-6").unwrap();
    let pin = |signal| {
        six.pins_for(signal)
            .map(|p| p.pin.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        [
            pin(IspSignal::Miso),
            pin(IspSignal::Vcc),
            pin(IspSignal::Sck)
        ],
        [[1], [2], [3]]
    );
    assert_eq!(
        [
            pin(IspSignal::Mosi),
            pin(IspSignal::Reset),
            pin(IspSignal::Gnd)
        ],
        [[4], [5], [6]]
    );
    let ten = c.header("avr-isp-10").unwrap();
    let grounds: Vec<u8> = ten
        .pins_for(IspSignal::Gnd)
        .map(|p| p.pin.unwrap())
        .collect();
    assert_eq!(grounds, [4, 6, 8, 10]);
    assert_eq!(ten.pins_for(IspSignal::Reset).next().unwrap().pin, Some(5));
    let bus_pirate = c.header("buspirate-io").unwrap();
    assert_eq!(
        bus_pirate.pins_for(IspSignal::Reset).next().unwrap().label,
        "CS"
    );
    for programmer in c.all() {
        for header in &programmer.headers {
            assert!(c.header(header).is_some(), "{}: {header}", programmer.id);
        }
    }
}

#[test]
fn usbtiny_programmers_cannot_reach_past_64_kib() {
    let parts = PartDb::builtin().unwrap();
    let usb1286 = parts.find("at90usb1286").unwrap();
    let m32u4 = parts.find("atmega32u4").unwrap();
    let usb646 = parts.find("at90usb646").unwrap();
    for programmer in catalog().all() {
        let tiny = programmer.driver == Driver::Usbtiny;
        assert_eq!(programmer.can_program(usb1286), !tiny, "{}", programmer.id);
        assert!(programmer.can_program(m32u4) && programmer.can_program(usb646));
        if tiny {
            assert!(programmer.warnings.iter().any(|w| w.contains("64 KiB")));
        }
    }
}

#[test]
fn rejects_wiring_that_misses_or_doubles_a_signal() {
    let reason = rejected(|v| {
        entry(v, "promicro-isp")["wiring"]
            .as_array_mut()
            .unwrap()
            .remove(2);
    });
    assert!(reason.contains("RESET exactly once, found 0"), "{reason}");
    let reason = rejected(|v| {
        let extra = json!({ "programmer_pin": "B4", "target": "MOSI" });
        entry(v, "teensy2-isp")["wiring"]
            .as_array_mut()
            .unwrap()
            .push(extra);
    });
    assert!(reason.contains("MOSI exactly once, found 2"), "{reason}");
    let reason = rejected(|v| entry(v, "teensy2-isp")["wiring"][3]["target"] = json!("SCLK"));
    assert!(reason.contains("unknown variant `SCLK`"), "{reason}");
}

#[test]
fn rejects_driver_port_and_baud_mistakes() {
    let reason = rejected(|v| entry(v, "usbasp")["driver"] = json!("stk500v2"));
    assert!(reason.contains("unknown variant `stk500v2`"), "{reason}");
    let reason = rejected(|v| entry(v, "usbasp")["port"] = json!("serial"));
    assert!(reason.contains("does not match driver usbasp"), "{reason}");
    let reason = rejected(|v| entry(v, "buspirate")["default_baud"] = Value::Null);
    assert!(reason.contains("needs default_baud"), "{reason}");
    let reason = rejected(|v| entry(v, "usbasp")["default_baud"] = json!(19200));
    assert!(reason.contains("has no default_baud"), "{reason}");
    // An id that is also a driver alias must use that driver.
    let reason = rejected(|v| entry(v, "pocketavr")["id"] = json!("usbasp"));
    assert!(reason.contains("alias of driver usbasp"), "{reason}");
}

#[test]
fn rejects_bad_usb_ids_headers_and_duplicates() {
    let reason = rejected(|v| entry(v, "usbasp")["usb"][0]["id"] = json!("16C0-05DC"));
    assert!(reason.contains("is not a USB id"), "{reason}");
    let reason = rejected(|v| entry(v, "usbasp")["usb"][1]["id"] = json!("16C0:05DC"));
    assert!(reason.contains("listed twice"), "{reason}");
    let reason = rejected(|v| entry(v, "usbasp")["usb"][0]["id"] = json!("0000:05DC"));
    assert!(reason.contains("vendor id 0"), "{reason}");
    let reason = rejected(|v| entry(v, "usbasp")["headers"] = json!(["avr-isp-8"]));
    assert!(reason.contains("unknown header 'avr-isp-8'"), "{reason}");
    let reason = rejected(|v| entry(v, "usbasp")["id"] = json!("buspirate"));
    assert!(
        reason.contains("'buspirate' is used twice") || reason.contains("alias"),
        "{reason}"
    );
    let reason = rejected(|v| entry(v, "pocketavr")["id"] = json!("usbtinyisp"));
    assert!(reason.contains("'usbtinyisp' is used twice"), "{reason}");
    let reason = rejected(|v| v["headers"][1]["pins"][4]["signal"] = Value::Null);
    assert!(
        reason.contains("header avr-isp-10: no pin carries RESET"),
        "{reason}"
    );
    let reason = rejected(|v| v["headers"][0]["pins"][1]["pin"] = json!(1));
    assert!(reason.contains("pin 1 listed twice"), "{reason}");
    let reason = rejected(|v| entry(v, "usbasp")["max_flash"] = json!(1));
    assert!(reason.contains("unknown field `max_flash`"), "{reason}");
}

#[test]
fn usb_ids_print_in_the_catalog_form() {
    let id: UsbId = "16c0:05dc".parse().unwrap();
    assert_eq!(id.to_string(), "16C0:05DC");
    assert_eq!(catalog().get("usbasp").unwrap().usb[0].id, id);
}
