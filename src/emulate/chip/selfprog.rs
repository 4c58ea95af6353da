//! Self-programming: what a bootloader running on the chip (Caterina, HalfKay) does to its own
//! flash and EEPROM with SPM, LPM and the EEPROM registers, as opposed to the ISP instructions
//! a programmer sends from outside.
//!
//! The model (ATmega16U4/32U4 datasheet, "Memory Programming", boot loader support):
//!
//! - SPM page erase sets one page to 0xFF; page fill loads one word into the temporary page
//!   buffer (the same buffer ISP loads, addressed by the word's offset in the page); page write
//!   programs the buffer into the page (programming only clears bits) and empties the buffer.
//! - The boot lock bits restrict SPM: BLB11 (lock bit 4) programmed forbids writing the boot
//!   section, BLB01 (lock bit 2) programmed forbids writing the application section. A
//!   forbidden erase or write does nothing, silently: the bootloader cannot tell.
//! - The boot section is the one BOOTSZ selects in the high fuse latched at reset.
//! - Time is not charged here: the bootloader's emulator charges what SPM takes.

use super::EmulatedChip;
use crate::part::FuseKind;

/// Lock bit BLB01: programmed (0), SPM may not write the application section.
const BLB01: u8 = 1 << 2;
/// Lock bit BLB11: programmed (0), SPM may not write the boot section.
const BLB11: u8 = 1 << 4;

/// What an SPM erase or write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spm {
    /// The page was erased or written.
    Done,
    /// The boot lock bits forbid SPM in that section (or there is no chip): nothing changed.
    #[default]
    Blocked,
}

impl EmulatedChip {
    /// The first byte of the boot section the latched high fuse selects (the application
    /// section ends there); the end of flash when the part has no boot section setting.
    pub fn boot_section_start(&self) -> u32 {
        self.part
            .boot_section_for_hfuse(self.fuses.latched(FuseKind::High))
            .map_or(self.part.flash.size, |section| section.start_byte())
    }

    /// Whether a flash byte address lies in the boot section.
    pub fn in_boot_section(&self, addr: u32) -> bool {
        (addr & (self.part.flash.size - 1)) >= self.boot_section_start()
    }

    /// Whether the boot lock bits let SPM change the page holding `addr`.
    pub fn spm_allowed(&self, addr: u32) -> bool {
        let lock = self.fuse(FuseKind::Lock).unwrap_or(0xFF);
        let forbidding_bit = if self.in_boot_section(addr) {
            BLB11
        } else {
            BLB01
        };
        lock & forbidding_bit != 0
    }

    /// SPM page erase of the page holding byte address `addr`.
    pub fn spm_erase_page(&mut self, addr: u32) -> Spm {
        if !self.spm_allowed(addr) {
            return Spm::Blocked;
        }
        self.memories.erase_flash_page(addr);
        Spm::Done
    }

    /// SPM page fill: loads `word` (low byte at the even address) into the temporary page
    /// buffer at the offset of byte address `addr` within its page.
    pub fn spm_fill(&mut self, addr: u32, word: u16) {
        let [low, high] = word.to_le_bytes();
        let word_addr = (addr / 2) as u16;
        self.memories.load_flash_buffer(word_addr, false, low);
        self.memories.load_flash_buffer(word_addr, true, high);
    }

    /// SPM page write of the page holding byte address `addr` from the temporary buffer,
    /// which is empty (0xFF) afterwards either way.
    pub fn spm_write_page(&mut self, addr: u32) -> Spm {
        if !self.spm_allowed(addr) {
            self.memories.clear_buffers();
            return Spm::Blocked;
        }
        let word = addr / 2;
        self.memories
            .program_flash_page((word >> 16) as u8, word as u16);
        self.stats.flash_pages_written += 1;
        Spm::Done
    }

    /// Writes one EEPROM byte through the EEPROM registers (erase and write in one). The
    /// address wraps at the EEPROM size, as the EEAR register does.
    pub fn self_write_eeprom(&mut self, addr: u32, value: u8) {
        self.memories.write_eeprom_byte(addr as u16, value);
        self.stats.eeprom_writes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulate::chip::{ChipConfig, FuseValues};
    use crate::part::PartDb;

    fn pro_micro(lock: u8) -> EmulatedChip {
        let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
        let config = ChipConfig {
            // BOOTSZ = 00: a 4 KB boot section from 0x7000, as Caterina needs.
            fuses: Some(FuseValues {
                lfuse: 0xFF,
                hfuse: 0xD8,
                efuse: Some(0xCB),
            }),
            lock,
            ..Default::default()
        }
        .with_flash_at(0x7000, &[0x11; 0x1000]);
        EmulatedChip::new(part, config).unwrap()
    }

    fn page_of(chip: &EmulatedChip, addr: usize) -> &[u8] {
        &chip.flash()[addr..addr + 128]
    }

    #[test]
    fn erase_fill_write_replaces_a_page() {
        let mut chip = pro_micro(0xFF);
        assert_eq!(chip.boot_section_start(), 0x7000);
        for (i, addr) in (0x100u32..0x180).step_by(2).enumerate() {
            chip.spm_fill(addr, 0x0100 * i as u16 + 0x20);
        }
        assert_eq!(chip.spm_erase_page(0x100), Spm::Done);
        assert_eq!(chip.spm_write_page(0x100), Spm::Done);
        assert_eq!(&page_of(&chip, 0x100)[..4], &[0x20, 0x00, 0x20, 0x01]);
        assert_eq!(chip.stats().flash_pages_written, 1);
        // The buffer is empty again: a write without fill after an erase leaves 0xFF.
        chip.spm_erase_page(0x100);
        chip.spm_write_page(0x100);
        assert!(page_of(&chip, 0x100).iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn writing_without_erase_only_clears_bits() {
        let mut chip = pro_micro(0xFF);
        chip.spm_fill(0x7000, 0xF0F0);
        assert_eq!(chip.spm_write_page(0x7000), Spm::Done);
        assert_eq!(&page_of(&chip, 0x7000)[..2], &[0x10, 0x10]);
    }

    #[test]
    fn boot_lock_bits_guard_each_section() {
        // 0x2F (as the Arduino IDE burns it): BLB11 programmed, the boot section is safe.
        let mut chip = pro_micro(0x2F);
        assert!(!chip.spm_allowed(0x7000) && chip.spm_allowed(0x6F80));
        assert_eq!(chip.spm_erase_page(0x7F80), Spm::Blocked);
        chip.spm_fill(0x7F80, 0x0000);
        assert_eq!(chip.spm_write_page(0x7F80), Spm::Blocked);
        assert!(page_of(&chip, 0x7F80).iter().all(|&b| b == 0x11));
        assert_eq!(chip.spm_erase_page(0x0000), Spm::Done);
        // BLB01 programmed: the application section is guarded instead.
        let mut chip = pro_micro(0xFB);
        assert_eq!(chip.spm_erase_page(0x0000), Spm::Blocked);
        assert_eq!(chip.spm_erase_page(0x7000), Spm::Done);
    }

    #[test]
    fn eeprom_bytes_are_replaced() {
        let mut chip = pro_micro(0xFF);
        chip.self_write_eeprom(5, 0x42);
        chip.self_write_eeprom(0x405, 0x43);
        assert_eq!(chip.eeprom()[5], 0x43, "the address wraps at 1 KB");
    }
}
