//! Drives the `usbtiny` driver through a whole session against a link whose every answer
//! comes from the fuzz input: reply bytes, short or empty replies, timeouts, stalls and a
//! vanished device. Every operation must return (Ok or a described error), never panic.
#![no_main]

#[path = "../common/usb_input_link.rs"]
mod usb_input_link;

use isp_toolbox::Memory;
use isp_toolbox::emulate::socket::Socket;
use isp_toolbox::part::{FuseKind, PartDb};
use isp_toolbox::programmer::Programmer;
use isp_toolbox::programmer::usbtiny::{Options, UsbTiny, protocol};
use libfuzzer_sys::fuzz_target;
use usb_input_link::InputLink;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    // The reply decoders on their own.
    let _ = protocol::decode_spi(input);
    let _ = protocol::check_block(input.len(), usize::from(selector));

    let Ok(db) = PartDb::builtin() else { return };
    let parts = db.all();
    let part = &parts[usize::from(selector) % parts.len()];
    let clock = Socket::default().shared();
    let mut prog = UsbTiny::new(InputLink { input }, Options::default()).on_virtual_clock(clock);
    let mut buf = vec![0u8; 64];
    let flash_page = vec![0u8; part.flash.page_size as usize];
    let eeprom_page = vec![0u8; part.eeprom.page_size as usize];
    let results = [
        prog.enter(part),
        prog.read_signature().map(drop),
        prog.read(part, Memory::Flash, part.flash.size - 64, &mut buf),
        prog.read(part, Memory::Eeprom, 0, &mut buf),
        prog.write_page(part, Memory::Flash, 0, &flash_page),
        prog.write_page(part, Memory::Eeprom, 0, &eeprom_page),
        prog.chip_erase(part),
        prog.write_fuse(part, FuseKind::High, 0xD9),
        prog.set_sck(u32::from(selector) * 4_000).map(drop),
        prog.leave(),
    ];
    for result in results {
        if let Err(e) = result {
            assert!(!e.to_string().is_empty());
        }
    }
});
