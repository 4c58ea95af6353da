//! Flash and EEPROM with their page buffers, addressed the way the ISP instructions address them:
//! every address is masked to the memory's size, as the silicon ignores the upper bits.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::part::{MemoryLayout, Part};

/// The chip's non-volatile memories and the volatile page buffers in front of them.
#[derive(Debug, Clone)]
pub(super) struct Memories {
    flash: Vec<u8>,
    eeprom: Vec<u8>,
    flash_layout: MemoryLayout,
    eeprom_layout: MemoryLayout,
    flash_buffer: Vec<u8>,
    /// EEPROM page buffer; `None` marks bytes not loaded since the last page write.
    eeprom_buffer: Vec<Option<u8>>,
    /// Worn-out flash cells (fault injection): byte address and the bits stuck at 0.
    stuck_low: Vec<(u32, u8)>,
}

impl Memories {
    /// Blank memories (0xFF) with the given images copied in from address 0.
    pub fn new(part: &Part, flash: Option<&[u8]>, eeprom: Option<&[u8]>) -> Result<Self> {
        Ok(Memories {
            flash: filled(part, "flash", part.flash, flash)?,
            eeprom: filled(part, "EEPROM", part.eeprom, eeprom)?,
            ..Memories::blank(part)
        })
    }

    /// Blank memories: every byte 0xFF.
    pub fn blank(part: &Part) -> Self {
        Memories {
            flash: vec![0xFF; to_usize(part.flash.size)],
            eeprom: vec![0xFF; to_usize(part.eeprom.size)],
            flash_layout: part.flash,
            eeprom_layout: part.eeprom,
            flash_buffer: vec![0xFF; to_usize(part.flash.page_size)],
            eeprom_buffer: vec![None; to_usize(part.eeprom.page_size)],
            stuck_low: Vec::new(),
        }
    }

    /// Makes the bits of `mask` at flash byte `addr` stuck at 0: no erase sets them again
    /// (programming only clears bits, so writes cannot either). Fault injection for a chip
    /// that fails verify.
    pub fn stick_flash_bits_low(&mut self, addr: u32, mask: u8) {
        let addr = addr & (self.flash_layout.size - 1);
        self.stuck_low.push((addr, mask));
        self.apply_stuck_bits();
    }

    fn apply_stuck_bits(&mut self) {
        for &(addr, mask) in &self.stuck_low {
            if let Some(cell) = self.flash.get_mut(to_usize(addr)) {
                *cell &= !mask;
            }
        }
    }

    /// All of flash.
    pub fn flash(&self) -> &[u8] {
        &self.flash
    }

    /// All of EEPROM.
    pub fn eeprom(&self) -> &[u8] {
        &self.eeprom
    }

    /// The byte address of a flash read: word address (with the extended byte as bits 23..16)
    /// masked to the flash size, low or high byte.
    pub fn flash_byte_addr(&self, extended: u8, word: u16, high: bool) -> u32 {
        let flash_words = self.flash_layout.size / 2;
        let word = ((u32::from(extended) << 16) | u32::from(word)) & (flash_words - 1);
        word * 2 + u32::from(high)
    }

    /// One flash byte.
    pub fn flash_byte(&self, addr: u32) -> u8 {
        self.flash.get(to_usize(addr)).copied().unwrap_or(0xFF)
    }

    /// Load Program Memory Page: the word offset is masked to the page size.
    pub fn load_flash_buffer(&mut self, word: u16, high: bool, value: u8) {
        let page_words = self.flash_layout.page_size / 2;
        let offset = (u32::from(word) & (page_words - 1)) * 2 + u32::from(high);
        if let Some(slot) = self.flash_buffer.get_mut(to_usize(offset)) {
            *slot = value;
        }
    }

    /// Write Program Memory Page at the page holding this word address (low bits ignored).
    /// Programming only clears bits, so an unerased page ends up as the AND of old and new; the
    /// buffer reads 0xFF afterwards. Returns the byte range programmed.
    pub fn program_flash_page(&mut self, extended: u8, word: u16) -> Range<u32> {
        let page = self.flash_layout.page_size;
        let start = self.flash_byte_addr(extended, word, false) & !(page - 1);
        let range = start..start + page;
        if let Some(target) = self.flash.get_mut(to_usize(start)..to_usize(range.end)) {
            for (cell, new) in target.iter_mut().zip(&self.flash_buffer) {
                *cell &= new;
            }
        }
        self.flash_buffer.fill(0xFF);
        range
    }

    /// Page erase by self-programming (SPM): the page holding this byte address reads 0xFF.
    /// Returns the page range.
    pub fn erase_flash_page(&mut self, addr: u32) -> Range<u32> {
        let page = self.flash_layout.page_size;
        let start = (addr & (self.flash_layout.size - 1)) & !(page - 1);
        if let Some(target) = self.flash.get_mut(to_usize(start)..to_usize(start + page)) {
            target.fill(0xFF);
        }
        self.apply_stuck_bits();
        start..start + page
    }

    /// The EEPROM byte address, masked to the EEPROM size.
    pub fn eeprom_addr(&self, addr: u16) -> u32 {
        u32::from(addr) & (self.eeprom_layout.size - 1)
    }

    /// One EEPROM byte.
    pub fn eeprom_byte(&self, addr: u32) -> u8 {
        self.eeprom.get(to_usize(addr)).copied().unwrap_or(0xFF)
    }

    /// Write EEPROM byte: erase and write in one (the new value replaces the old). Returns the
    /// byte range written.
    pub fn write_eeprom_byte(&mut self, addr: u16, value: u8) -> Range<u32> {
        let addr = self.eeprom_addr(addr);
        if let Some(cell) = self.eeprom.get_mut(to_usize(addr)) {
            *cell = value;
        }
        addr..addr + 1
    }

    /// Load EEPROM Memory Page: the offset is masked to the page size.
    pub fn load_eeprom_buffer(&mut self, offset: u8, value: u8) {
        let offset = u32::from(offset) & (self.eeprom_layout.page_size - 1);
        if let Some(slot) = self.eeprom_buffer.get_mut(to_usize(offset)) {
            *slot = Some(value);
        }
    }

    /// Write EEPROM Memory Page at the page holding this address. Each loaded byte is erased and
    /// written; bytes not loaded keep their value (a modelling choice: avrdude always loads whole
    /// pages, so no driver depends on it). The buffer is empty afterwards. Returns the page range.
    pub fn program_eeprom_page(&mut self, addr: u16) -> Range<u32> {
        let page = self.eeprom_layout.page_size;
        let start = self.eeprom_addr(addr) & !(page - 1);
        if let Some(target) = self.eeprom.get_mut(to_usize(start)..to_usize(start + page)) {
            for (cell, loaded) in target.iter_mut().zip(&self.eeprom_buffer) {
                if let Some(value) = loaded {
                    *cell = *value;
                }
            }
        }
        self.eeprom_buffer.fill(None);
        start..start + page
    }

    /// Chip Erase: flash to 0xFF, and EEPROM too unless it is to be kept (EESAVE).
    pub fn erase(&mut self, keep_eeprom: bool) {
        self.flash.fill(0xFF);
        if !keep_eeprom {
            self.eeprom.fill(0xFF);
        }
        self.apply_stuck_bits();
    }

    /// Empties both page buffers (reset, power-up).
    pub fn clear_buffers(&mut self) {
        self.flash_buffer.fill(0xFF);
        self.eeprom_buffer.fill(None);
    }
}

/// A memory of `layout.size` bytes: 0xFF with `image` copied in from address 0.
fn filled(part: &Part, name: &str, layout: MemoryLayout, image: Option<&[u8]>) -> Result<Vec<u8>> {
    let size = to_usize(layout.size);
    let mut memory = vec![0xFF; size];
    if let Some(image) = image {
        let target = memory.get_mut(..image.len()).ok_or_else(|| {
            Error::Image(format!(
                "the emulated {}'s {name} image is {} bytes, but its {name} holds {size} bytes",
                part.name,
                image.len()
            ))
        })?;
        target.copy_from_slice(image);
    }
    Ok(memory)
}

fn to_usize(n: u32) -> usize {
    // u32 always fits: the engine only targets 32- and 64-bit hosts.
    n as usize
}
