//! The AVR serial programming (SPI ISP) instruction set, encoded once for every driver and decoded
//! by the emulated chip.
//!
//! Every instruction is four bytes, MSB first. Flash addresses are **word** addresses; EEPROM
//! addresses are byte addresses (datasheet tables: ATmega32U4 28-16, ATmega32A 29-16,
//! ATmega328P 27-17).

use crate::part::FuseKind;
use crate::util::hex_bytes;

/// A 4-byte ISP instruction.
pub type Instruction = [u8; 4];

/// Opcode bytes (first byte of the instruction, or the second where the first is 0xAC).
pub mod op {
    /// First byte of Programming Enable, Chip Erase and the fuse/lock writes.
    pub const PROG: u8 = 0xAC;
    /// Second byte of Programming Enable (echoed in response byte 2 when in sync).
    pub const PROG_ENABLE: u8 = 0x53;
    /// Second byte of Chip Erase.
    pub const CHIP_ERASE: u8 = 0x80;
    /// Second byte of Write Lock bits.
    pub const WRITE_LOCK: u8 = 0xE0;
    /// Second byte of Write Fuse low bits.
    pub const WRITE_LFUSE: u8 = 0xA0;
    /// Second byte of Write Fuse high bits.
    pub const WRITE_HFUSE: u8 = 0xA8;
    /// Second byte of Write Extended fuse bits.
    pub const WRITE_EFUSE: u8 = 0xA4;
    /// Poll RDY/BSY.
    pub const POLL_RDY: u8 = 0xF0;
    /// Load Extended Address byte.
    pub const LOAD_EXT_ADDR: u8 = 0x4D;
    /// Load Program Memory Page, low byte.
    pub const LOAD_PAGE_LO: u8 = 0x40;
    /// Load Program Memory Page, high byte.
    pub const LOAD_PAGE_HI: u8 = 0x48;
    /// Write Program Memory Page.
    pub const WRITE_PAGE: u8 = 0x4C;
    /// Read Program Memory, low byte.
    pub const READ_LO: u8 = 0x20;
    /// Read Program Memory, high byte.
    pub const READ_HI: u8 = 0x28;
    /// Load EEPROM Memory Page.
    pub const LOAD_EEPROM_PAGE: u8 = 0xC1;
    /// Write EEPROM Memory Page.
    pub const WRITE_EEPROM_PAGE: u8 = 0xC2;
    /// Read EEPROM.
    pub const READ_EEPROM: u8 = 0xA0;
    /// Write EEPROM byte.
    pub const WRITE_EEPROM: u8 = 0xC0;
    /// Read Fuse low bits / Read Extended fuse bits (second byte 0x08).
    pub const READ_LFUSE: u8 = 0x50;
    /// Read Lock bits / Read Fuse high bits (second byte 0x08).
    pub const READ_LOCK: u8 = 0x58;
    /// Read Signature byte.
    pub const READ_SIGNATURE: u8 = 0x30;
    /// Read Calibration byte.
    pub const READ_CALIBRATION: u8 = 0x38;
}

/// Programming Enable. Response byte 2 echoes 0x53 when the target is in sync.
pub const fn programming_enable() -> Instruction {
    [op::PROG, op::PROG_ENABLE, 0x00, 0x00]
}

/// Whether a Programming Enable response shows the target in sync.
pub fn in_sync(response: Instruction) -> bool {
    response[2] == op::PROG_ENABLE
}

/// Chip Erase: flash, EEPROM (unless EESAVE) and lock bits.
pub const fn chip_erase() -> Instruction {
    [op::PROG, op::CHIP_ERASE, 0x00, 0x00]
}

/// Poll RDY/BSY; bit 0 of response byte 3 is 1 while busy.
pub const fn poll_ready() -> Instruction {
    [op::POLL_RDY, 0x00, 0x00, 0x00]
}

/// Whether a Poll RDY/BSY response says the target is still busy.
pub fn is_busy(response: Instruction) -> bool {
    response[3] & 0x01 != 0
}

/// Load Extended Address byte (word-address bits 23..16).
pub const fn load_extended_address(word_addr: u32) -> Instruction {
    [op::LOAD_EXT_ADDR, 0x00, (word_addr >> 16) as u8, 0x00]
}

/// Read one flash byte at a **byte** address (low or high byte of the word chosen by bit 0).
pub const fn read_flash_byte(byte_addr: u32) -> Instruction {
    let word = byte_addr >> 1;
    let opcode = if byte_addr & 1 == 0 {
        op::READ_LO
    } else {
        op::READ_HI
    };
    [opcode, (word >> 8) as u8, word as u8, 0x00]
}

/// Load one byte into the flash page buffer at a **byte** address (offset within the page).
pub const fn load_flash_page_byte(byte_addr: u32, value: u8) -> Instruction {
    let word = byte_addr >> 1;
    let opcode = if byte_addr & 1 == 0 {
        op::LOAD_PAGE_LO
    } else {
        op::LOAD_PAGE_HI
    };
    [opcode, 0x00, word as u8, value]
}

/// Write Program Memory Page at the page containing this **byte** address.
pub const fn write_flash_page(byte_addr: u32) -> Instruction {
    let word = byte_addr >> 1;
    [op::WRITE_PAGE, (word >> 8) as u8, word as u8, 0x00]
}

/// Read one EEPROM byte.
pub const fn read_eeprom(addr: u32) -> Instruction {
    [op::READ_EEPROM, (addr >> 8) as u8, addr as u8, 0x00]
}

/// Write one EEPROM byte (erase and write, tWD_EEPROM).
pub const fn write_eeprom(addr: u32, value: u8) -> Instruction {
    [op::WRITE_EEPROM, (addr >> 8) as u8, addr as u8, value]
}

/// Load one byte into the EEPROM page buffer.
pub const fn load_eeprom_page_byte(addr: u32, value: u8) -> Instruction {
    [op::LOAD_EEPROM_PAGE, 0x00, addr as u8, value]
}

/// Write EEPROM Memory Page at the page containing this address.
pub const fn write_eeprom_page(addr: u32) -> Instruction {
    [op::WRITE_EEPROM_PAGE, (addr >> 8) as u8, addr as u8, 0x00]
}

/// Read Signature byte `index` (0..=2).
pub const fn read_signature(index: u8) -> Instruction {
    [op::READ_SIGNATURE, 0x00, index, 0x00]
}

/// Read Calibration byte `index`.
pub const fn read_calibration(index: u8) -> Instruction {
    [op::READ_CALIBRATION, 0x00, index, 0x00]
}

/// Read a fuse or the lock byte; the value is response byte 3.
pub const fn read_fuse(kind: FuseKind) -> Instruction {
    match kind {
        FuseKind::Low => [op::READ_LFUSE, 0x00, 0x00, 0x00],
        FuseKind::High => [op::READ_LOCK, 0x08, 0x00, 0x00],
        FuseKind::Extended => [op::READ_LFUSE, 0x08, 0x00, 0x00],
        FuseKind::Lock => [op::READ_LOCK, 0x00, 0x00, 0x00],
    }
}

/// Write a fuse or the lock byte. Lock writes force bits 7..6 to 1 (datasheet form `11ii iiii`).
pub const fn write_fuse(kind: FuseKind, value: u8) -> Instruction {
    match kind {
        FuseKind::Low => [op::PROG, op::WRITE_LFUSE, 0x00, value],
        FuseKind::High => [op::PROG, op::WRITE_HFUSE, 0x00, value],
        FuseKind::Extended => [op::PROG, op::WRITE_EFUSE, 0x00, value],
        FuseKind::Lock => [op::PROG, op::WRITE_LOCK, 0x00, value | 0xC0],
    }
}

/// A decoded ISP instruction, as the emulated chip (and protocol traces) see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// `AC 53 00 00`
    ProgrammingEnable,
    /// `AC 80 00 00`
    ChipErase,
    /// `F0 00 00 00`
    PollReady,
    /// `4D 00 ext 00`
    LoadExtendedAddress(u8),
    /// `40/48 00 word value`: byte offset within the page buffer (word * 2 + high).
    LoadFlashPage {
        /// Word offset as sent (already masked by the chip to the page size).
        word: u16,
        /// High byte of the word.
        high: bool,
        /// Data byte.
        value: u8,
    },
    /// `4C hi lo 00`
    WriteFlashPage {
        /// Word address.
        word: u16,
    },
    /// `20/28 hi lo 00`
    ReadFlash {
        /// Word address.
        word: u16,
        /// High byte of the word.
        high: bool,
    },
    /// `C1 00 lo value`
    LoadEepromPage {
        /// Offset as sent.
        offset: u8,
        /// Data byte.
        value: u8,
    },
    /// `C2 hi lo 00`
    WriteEepromPage {
        /// Byte address.
        addr: u16,
    },
    /// `A0 hi lo 00`
    ReadEeprom {
        /// Byte address.
        addr: u16,
    },
    /// `C0 hi lo value`
    WriteEeprom {
        /// Byte address.
        addr: u16,
        /// Data byte.
        value: u8,
    },
    /// Read a fuse or lock byte.
    ReadFuse(FuseKind),
    /// Write a fuse or lock byte.
    WriteFuse(FuseKind, u8),
    /// `30 00 i 00`
    ReadSignature(u8),
    /// `38 00 i 00`
    ReadCalibration(u8),
    /// Anything else.
    Unknown,
}

/// Decodes an instruction the way the AVR's serial programming logic does.
pub fn decode(cmd: Instruction) -> Decoded {
    let addr = u16::from_be_bytes([cmd[1], cmd[2]]);
    match cmd[0] {
        op::PROG => match cmd[1] {
            op::PROG_ENABLE => Decoded::ProgrammingEnable,
            op::CHIP_ERASE => Decoded::ChipErase,
            op::WRITE_LOCK => Decoded::WriteFuse(FuseKind::Lock, cmd[3]),
            op::WRITE_LFUSE => Decoded::WriteFuse(FuseKind::Low, cmd[3]),
            op::WRITE_HFUSE => Decoded::WriteFuse(FuseKind::High, cmd[3]),
            op::WRITE_EFUSE => Decoded::WriteFuse(FuseKind::Extended, cmd[3]),
            _ => Decoded::Unknown,
        },
        op::POLL_RDY => Decoded::PollReady,
        op::LOAD_EXT_ADDR => Decoded::LoadExtendedAddress(cmd[2]),
        op::LOAD_PAGE_LO | op::LOAD_PAGE_HI => Decoded::LoadFlashPage {
            word: addr,
            high: cmd[0] == op::LOAD_PAGE_HI,
            value: cmd[3],
        },
        op::WRITE_PAGE => Decoded::WriteFlashPage { word: addr },
        op::READ_LO | op::READ_HI => Decoded::ReadFlash {
            word: addr,
            high: cmd[0] == op::READ_HI,
        },
        op::LOAD_EEPROM_PAGE => Decoded::LoadEepromPage {
            offset: cmd[2],
            value: cmd[3],
        },
        op::WRITE_EEPROM_PAGE => Decoded::WriteEepromPage { addr },
        op::READ_EEPROM => Decoded::ReadEeprom { addr },
        op::WRITE_EEPROM => Decoded::WriteEeprom {
            addr,
            value: cmd[3],
        },
        op::READ_LFUSE if cmd[1] & 0x08 == 0 => Decoded::ReadFuse(FuseKind::Low),
        op::READ_LFUSE => Decoded::ReadFuse(FuseKind::Extended),
        op::READ_LOCK if cmd[1] & 0x08 == 0 => Decoded::ReadFuse(FuseKind::Lock),
        op::READ_LOCK => Decoded::ReadFuse(FuseKind::High),
        op::READ_SIGNATURE => Decoded::ReadSignature(cmd[2]),
        op::READ_CALIBRATION => Decoded::ReadCalibration(cmd[2]),
        _ => Decoded::Unknown,
    }
}

/// Whether the target echoed `cmd`'s second byte while the third was clocked: true for every
/// instruction on a target that is in step with the programmer (facts §1.1).
pub fn echoed(cmd: Instruction, response: Instruction) -> bool {
    response[2] == cmd[1]
}

/// Whether `cmd` changes the target (loads, writes, erase), so that a missing echo must fail
/// the operation instead of returning suspect data. Programming Enable is judged by the
/// enter sequence, reads by their contents, and unknown instructions by whoever sent them.
pub fn changes_target(cmd: Instruction) -> bool {
    matches!(
        decode(cmd),
        Decoded::ChipErase
            | Decoded::LoadExtendedAddress(_)
            | Decoded::LoadFlashPage { .. }
            | Decoded::WriteFlashPage { .. }
            | Decoded::LoadEepromPage { .. }
            | Decoded::WriteEepromPage { .. }
            | Decoded::WriteEeprom { .. }
            | Decoded::WriteFuse(..)
    )
}

/// Why a reply to a write instruction is refused, for the error message.
pub fn missing_echo(cmd: Instruction, response: Instruction) -> String {
    format!(
        "the target did not echo instruction {} (sent 0x{:02X} as byte 2, read 0x{:02X} back in byte 3; \
         reply {}): the instruction may have been mis-clocked",
        hex_bytes(&cmd),
        cmd[1],
        response[2],
        hex_bytes(&response)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_datasheet_tables() {
        assert_eq!(programming_enable(), [0xAC, 0x53, 0x00, 0x00]);
        assert_eq!(chip_erase(), [0xAC, 0x80, 0x00, 0x00]);
        assert_eq!(read_signature(2), [0x30, 0x00, 0x02, 0x00]);
        assert_eq!(read_fuse(FuseKind::Low), [0x50, 0x00, 0x00, 0x00]);
        assert_eq!(read_fuse(FuseKind::High), [0x58, 0x08, 0x00, 0x00]);
        assert_eq!(read_fuse(FuseKind::Extended), [0x50, 0x08, 0x00, 0x00]);
        assert_eq!(read_fuse(FuseKind::Lock), [0x58, 0x00, 0x00, 0x00]);
        assert_eq!(write_fuse(FuseKind::High, 0xD8), [0xAC, 0xA8, 0x00, 0xD8]);
        assert_eq!(write_fuse(FuseKind::Lock, 0x2F), [0xAC, 0xE0, 0x00, 0xEF]);
        // Byte address 0x7001 is the high byte of word 0x3800.
        assert_eq!(read_flash_byte(0x7001), [0x28, 0x38, 0x00, 0x00]);
        assert_eq!(load_flash_page_byte(0x7002, 0x12), [0x40, 0x00, 0x01, 0x12]);
        assert_eq!(write_flash_page(0x7000), [0x4C, 0x38, 0x00, 0x00]);
        assert_eq!(read_eeprom(0x3FF), [0xA0, 0x03, 0xFF, 0x00]);
        assert_eq!(write_eeprom(0x10, 0xAA), [0xC0, 0x00, 0x10, 0xAA]);
    }

    #[test]
    fn decode_inverts_encode() {
        for kind in FuseKind::ALL {
            assert_eq!(decode(read_fuse(kind)), Decoded::ReadFuse(kind));
            assert_eq!(
                decode(write_fuse(kind, 0x3F)).clone(),
                match kind {
                    FuseKind::Lock => Decoded::WriteFuse(kind, 0xFF),
                    _ => Decoded::WriteFuse(kind, 0x3F),
                }
            );
        }
        assert_eq!(
            decode(read_flash_byte(0x1FFFF)),
            Decoded::ReadFlash {
                word: 0xFFFF,
                high: true
            }
        );
        assert_eq!(decode(programming_enable()), Decoded::ProgrammingEnable);
        assert_eq!(decode([0x12, 0, 0, 0]), Decoded::Unknown);
    }
}
