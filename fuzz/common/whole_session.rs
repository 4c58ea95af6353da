//! One whole programming session on a driver whose link answers from fuzz input: every
//! operation must return (Ok or a described error), never panic. Shared by the USB driver
//! fuzz targets.

use isp_toolbox::Memory;
use isp_toolbox::part::{FuseKind, PartDb};
use isp_toolbox::programmer::Programmer;

/// Enter, signature, flash and EEPROM reads and page writes, erase, a fuse write, a clock
/// change and leave, on the part `selector` picks.
pub fn drive(prog: &mut dyn Programmer, selector: u8) {
    let Ok(db) = PartDb::builtin() else { return };
    let parts = db.all();
    let part = &parts[usize::from(selector) % parts.len()];
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
}
