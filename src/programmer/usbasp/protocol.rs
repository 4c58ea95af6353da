//! The USBasp vendor requests, the SCK option codes and how arguments are packed (facts sheet
//! §3; Thomas Fischl's firmware `main.c`/`isp.c`/`usbasp.h`, avrdude `usbasp.c`/`usbasp.h`).
//!
//! Every request is a vendor, device-recipient control transfer; all but the two block writes
//! go device-to-host (`0xC0`). The host packs a 4-byte argument `c[0..4]` into wValue =
//! `c[1] << 8 | c[0]` and wIndex = `c[3] << 8 | c[2]`, so the firmware finds `c` in setup bytes
//! 2..6. Nothing here does I/O, so the decoders can be fuzzed.

use crate::isp::Instruction;

/// Vendor request numbers (`usbasp.h`).
pub mod request {
    /// Applies the stored SCK option, drives RST and SCK low and pulses RST.
    pub const CONNECT: u8 = 1;
    /// Releases the ISP pins.
    pub const DISCONNECT: u8 = 2;
    /// One 4-byte ISP instruction; 4 bytes back.
    pub const TRANSMIT: u8 = 3;
    /// Flash bytes from the byte address in wValue (or the long address); wLength bytes.
    pub const READFLASH: u8 = 4;
    /// Programming Enable with up to 32 tries; 1 byte back, 0 = success.
    pub const ENABLEPROG: u8 = 5;
    /// Flash bytes to load (and pages to write) at the byte address in wValue.
    pub const WRITEFLASH: u8 = 6;
    /// EEPROM bytes from the byte address in wValue.
    pub const READEEPROM: u8 = 7;
    /// EEPROM bytes to write one by one (9.6 ms each) at the address in wValue.
    pub const WRITEEEPROM: u8 = 8;
    /// A 32-bit byte address in wValue:wIndex that later block requests use instead of wValue.
    pub const SETLONGADDRESS: u8 = 9;
    /// Stores the SCK option code (wValue low byte) for the next CONNECT; 1 byte back.
    pub const SETISPSCK: u8 = 10;
    /// TPI (ATtiny4/5/9/10): connect.
    pub const TPI_CONNECT: u8 = 11;
    /// TPI: disconnect.
    pub const TPI_DISCONNECT: u8 = 12;
    /// TPI: read one raw byte.
    pub const TPI_RAWREAD: u8 = 13;
    /// TPI: write one raw byte.
    pub const TPI_RAWWRITE: u8 = 14;
    /// TPI: read a block.
    pub const TPI_READBLOCK: u8 = 15;
    /// TPI: write a block.
    pub const TPI_WRITEBLOCK: u8 = 16;
    /// The firmware's capability word (4 bytes, little endian); firmware before 2011 sends none.
    pub const GETCAPABILITIES: u8 = 127;
}

/// WRITEFLASH block flags (the low nibble of wIndex's high byte).
pub mod block_flag {
    /// Restart the page counter: this block begins at a page boundary.
    pub const FIRST: u8 = 1;
    /// Write the pending partial page at the end of this block.
    pub const LAST: u8 = 2;
}

/// Capability bit: TPI programming (byte 0, bit 0).
pub const CAP_TPI: u32 = 0x0000_0001;
/// Capability bit: the 3 MHz SCK option (byte 3, bit 0; UsbAsp-flash firmware).
pub const CAP_3MHZ: u32 = 0x0100_0000;

/// The largest IN data stage the firmware can send from its read function: V-USB is built
/// without long transfers, so it takes only wLength's low byte (a wLength of 256 would send
/// nothing).
pub const MAX_IN_BYTES: usize = 255;

/// Byte addresses the 16-bit wValue can carry; above, a block needs SETLONGADDRESS.
pub const SHORT_ADDRESS_LIMIT: u32 = 0x1_0000;

/// A short name for messages.
pub fn request_name(request: u8) -> &'static str {
    match request {
        request::CONNECT => "CONNECT",
        request::DISCONNECT => "DISCONNECT",
        request::TRANSMIT => "TRANSMIT",
        request::READFLASH => "READFLASH",
        request::ENABLEPROG => "ENABLEPROG",
        request::WRITEFLASH => "WRITEFLASH",
        request::READEEPROM => "READEEPROM",
        request::WRITEEEPROM => "WRITEEEPROM",
        request::SETLONGADDRESS => "SETLONGADDRESS",
        request::SETISPSCK => "SETISPSCK",
        request::TPI_CONNECT => "TPI_CONNECT",
        request::TPI_DISCONNECT => "TPI_DISCONNECT",
        request::TPI_RAWREAD => "TPI_RAWREAD",
        request::TPI_RAWWRITE => "TPI_RAWWRITE",
        request::TPI_READBLOCK => "TPI_READBLOCK",
        request::TPI_WRITEBLOCK => "TPI_WRITEBLOCK",
        request::GETCAPABILITIES => "GETCAPABILITIES",
        _ => "unknown request",
    }
}

/// wValue and wIndex carrying the 4-byte argument `c` (avrdude `usbasp_transmit`).
pub fn pack_args(c: [u8; 4]) -> (u16, u16) {
    (
        u16::from_le_bytes([c[0], c[1]]),
        u16::from_le_bytes([c[2], c[3]]),
    )
}

/// wValue and wIndex of a TRANSMIT carrying `cmd`.
pub fn transmit_setup(cmd: Instruction) -> (u16, u16) {
    pack_args(cmd)
}

/// wValue and wIndex of SETLONGADDRESS: the 32-bit byte address, little endian.
pub fn long_address_setup(addr: u32) -> (u16, u16) {
    pack_args(addr.to_le_bytes())
}

/// wIndex of WRITEFLASH: page size bits 7..0 in the low byte; the flags in the high byte's low
/// nibble and page size bits 11..8 in its high nibble (128-byte page, FIRST: 0x0180; 256-byte
/// page, FIRST: 0x1100).
pub fn write_flash_index(page_size: u16, flags: u8) -> u16 {
    let low = (page_size & 0xFF) as u8;
    let high = ((page_size >> 4) & 0xF0) as u8 | (flags & 0x0F);
    u16::from_le_bytes([low, high])
}

/// The page size and flags the firmware decodes from a WRITEFLASH wIndex.
pub fn decode_write_flash_index(index: u16) -> (u16, u8) {
    let [low, high] = index.to_le_bytes();
    let page_size = u16::from(low) | (u16::from(high & 0xF0) << 4);
    (page_size, high & 0x0F)
}

/// The capability word from GETCAPABILITIES' reply: 4 bytes little endian, and none at all
/// (firmware before 2011) means no capabilities, as avrdude takes it.
pub fn decode_capabilities(reply: &[u8]) -> Result<u32, String> {
    match reply.len() {
        0 => Ok(0),
        4 => Ok(u32::from_le_bytes([reply[0], reply[1], reply[2], reply[3]])),
        n => Err(format!(
            "GETCAPABILITIES returned {n} byte(s), expected 4 or none"
        )),
    }
}

/// An SCK option of the firmware (`usbasp.h`; rates of Fischl's `isp.c` with its 12 MHz
/// crystal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SckOption {
    /// The code SETISPSCK takes.
    pub code: u8,
    /// The frequency avrdude's table gives it, in Hz.
    pub nominal_hz: u32,
    /// The frequency the firmware really clocks, in Hz: exact for the hardware SPI divisors;
    /// for the software codes, two timer waits of `delay` ticks (5.33 µs each, the first tick
    /// partial: on average `delay - 0.5`) plus ~20 cycles of bit loop.
    pub real_hz: u32,
}

/// The AUTO code (0): Fischl's firmware takes it as 375 kHz.
pub const SCK_AUTO: u8 = 0;
/// The 3 MHz code, only with [`CAP_3MHZ`].
pub const SCK_3MHZ: u8 = 13;

/// Every explicit option, slowest first.
pub const SCK_OPTIONS: [SckOption; 13] = [
    sw(1, 500, 192),
    sw(2, 1_000, 96),
    sw(3, 2_000, 48),
    sw(4, 4_000, 24),
    sw(5, 8_000, 12),
    sw(6, 16_000, 6),
    sw(7, 32_000, 3),
    hw(8, 93_750),
    hw(9, 187_500),
    hw(10, 375_000),
    hw(11, 750_000),
    hw(12, 1_500_000),
    hw(SCK_3MHZ, 3_000_000),
];

/// Timer ticks of the firmware's `ispDelay()` per software code (`sck_sw_delay`), or `None`
/// for the hardware SPI codes.
pub fn software_delay_ticks(code: u8) -> Option<u8> {
    match code {
        1 => Some(192),
        2 => Some(96),
        3 => Some(48),
        4 => Some(24),
        5 => Some(12),
        6 => Some(6),
        7 => Some(3),
        _ => None,
    }
}

/// CPU cycles per timer tick (timer 0, prescaler 64).
pub const CYCLES_PER_TICK: u32 = 64;
/// The firmware's clock.
pub const F_CPU: u32 = 12_000_000;
/// Cycles of the software bit loop besides its two waits (port writes, shift, MISO test).
pub const SOFTWARE_BIT_CYCLES: u32 = 20;

const fn sw(code: u8, nominal_hz: u32, delay: u32) -> SckOption {
    // Two waits of (delay - 0.5) ticks on average, in cycles: (2 * delay - 1) * 64.
    let cycles = (2 * delay - 1) * CYCLES_PER_TICK + SOFTWARE_BIT_CYCLES;
    SckOption {
        code,
        nominal_hz,
        real_hz: F_CPU / cycles,
    }
}

const fn hw(code: u8, hz: u32) -> SckOption {
    SckOption {
        code,
        nominal_hz: hz,
        real_hz: hz,
    }
}

/// The option for `code`, as the firmware applies it: AUTO and any code it does not know
/// are 375 kHz (the `default:` branch of `ispSetSCKOption`), and 3 MHz only where the
/// firmware has it.
pub fn applied_option(code: u8, has_3mhz: bool) -> SckOption {
    let fallback = SCK_OPTIONS[9];
    match code {
        SCK_3MHZ if has_3mhz => SCK_OPTIONS[12],
        1..=12 => SCK_OPTIONS[usize::from(code) - 1],
        _ => fallback,
    }
}

/// The fastest option whose real clock does not exceed `hz` (never 3 MHz without
/// [`CAP_3MHZ`]); the slowest (500 Hz) when even that is too fast.
pub fn option_for_hz(hz: u32, capabilities: u32) -> SckOption {
    let has_3mhz = capabilities & CAP_3MHZ != 0;
    SCK_OPTIONS
        .iter()
        .filter(|o| has_3mhz || o.code != SCK_3MHZ)
        .rfind(|o| o.real_hz <= hz)
        .copied()
        .unwrap_or(SCK_OPTIONS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_pack_like_avrdude() {
        assert_eq!(transmit_setup([0xAC, 0x53, 0x00, 0x00]), (0x53AC, 0x0000));
        assert_eq!(long_address_setup(0x0001_2345), (0x2345, 0x0001));
    }

    #[test]
    fn write_flash_index_matches_the_facts_sheet() {
        assert_eq!(write_flash_index(128, block_flag::FIRST), 0x0180);
        assert_eq!(write_flash_index(256, block_flag::FIRST), 0x1100);
        assert_eq!(decode_write_flash_index(0x1100), (256, 1));
        assert_eq!(decode_write_flash_index(0x0380), (128, 3));
        for size in [0u16, 4, 8, 64, 128, 256, 1024] {
            for flags in 0..4 {
                assert_eq!(
                    decode_write_flash_index(write_flash_index(size, flags)),
                    (size, flags)
                );
            }
        }
    }

    #[test]
    fn capabilities_accept_none_or_four_bytes() {
        assert_eq!(decode_capabilities(&[]), Ok(0));
        assert_eq!(decode_capabilities(&[1, 0, 0, 1]), Ok(CAP_TPI | CAP_3MHZ));
        assert!(decode_capabilities(&[1, 0]).is_err());
    }

    #[test]
    fn software_rates_are_near_their_names() {
        for option in &SCK_OPTIONS[..7] {
            let ratio = f64::from(option.real_hz) / f64::from(option.nominal_hz);
            assert!((0.95..1.15).contains(&ratio), "{option:?}");
        }
        assert_eq!(applied_option(SCK_AUTO, true).real_hz, 375_000);
        assert_eq!(applied_option(SCK_3MHZ, false).real_hz, 375_000);
        assert_eq!(applied_option(SCK_3MHZ, true).real_hz, 3_000_000);
        assert_eq!(applied_option(200, true).real_hz, 375_000);
    }

    #[test]
    fn option_for_hz_never_exceeds_the_request() {
        assert_eq!(option_for_hz(2_666_666, 0).code, 12);
        assert_eq!(option_for_hz(2_666_666, CAP_3MHZ).code, 12);
        assert_eq!(option_for_hz(3_000_000, CAP_3MHZ).code, 13);
        assert_eq!(option_for_hz(250_000, 0).code, 9);
        assert_eq!(option_for_hz(100, 0).code, 1);
        for hz in [600, 5_000, 40_000, 100_000, 400_000, 1_000_000] {
            assert!(option_for_hz(hz, 0).real_hz <= hz, "{hz}");
        }
    }
}
