//! The Bus Pirate's binary-mode wire format (facts sheet §5; BP-FW `binIO.c`, `SPI.c`): command
//! bytes, speed codes, and decoders for what comes back. The decoders take any bytes and never
//! panic (`fuzz/fuzz_targets/buspirate_reply.rs`).

use crate::error::{Error, Result};
use crate::isp::Instruction;
use crate::util::hex_bytes;

/// Driver name in messages.
pub const DRIVER: &str = "buspirate";

/// Bit-bang mode: enter (from the terminal, 20 of them) and "say your version" (`BBIO1`).
pub const BBIO_RESET: u8 = 0x00;
/// Bit-bang mode: enter binary SPI mode (`SPI1`).
pub const ENTER_SPI: u8 = 0x01;
/// Bit-bang mode: reset the Bus Pirate to its terminal (`01`, then the banner).
pub const RESET_TO_TERMINAL: u8 = 0x0F;
/// SPI mode: write-then-read without touching CS (firmware 5.10 and later).
pub const WRITE_THEN_READ_NO_CS: u8 = 0x05;
/// SPI mode: AVR extended commands.
pub const AVR_EXTENDED: u8 = 0x06;
/// AVR extended sub-command: version (`01 00 01`).
pub const AVR_EXTENDED_VERSION: u8 = 0x01;
/// AVR extended sub-command: bulk flash read.
pub const AVR_EXTENDED_BULK_READ: u8 = 0x02;
/// The "OK" byte of binary mode.
pub const ACK: u8 = 0x01;

/// Most bytes one bulk transfer (`0001xxxx`) carries.
pub const BULK_MAX: usize = 16;
/// Most bytes one write-then-read may write (`TERMINAL_BUFFER`).
pub const WRITE_THEN_READ_MAX: usize = 4096;
/// The firmware's bulk-read check: word address, byte count and their sum all ≤ this.
pub const BULK_READ_LIMIT: u32 = 0xFFFF;

/// How many 0x00 bytes take the terminal into binary mode.
pub const ZEROS_FOR_BINARY: usize = 20;

/// One SPI speed code and its clock (PIC24 at 16 MIPS: Fcy / prescalers; BP-DOC calls code 0
/// "30 kHz" and code 5 "2.6 MHz").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speed {
    /// The code in `01100xxx`.
    pub code: u8,
    /// SCK in Hz.
    pub hz: u32,
}

/// All eight speed codes, slowest first.
pub const SPEEDS: [Speed; 8] = [
    Speed {
        code: 0,
        hz: 31_250,
    },
    Speed {
        code: 1,
        hz: 125_000,
    },
    Speed {
        code: 2,
        hz: 250_000,
    },
    Speed {
        code: 3,
        hz: 1_000_000,
    },
    Speed {
        code: 4,
        hz: 2_000_000,
    },
    Speed {
        code: 5,
        hz: 2_666_666,
    },
    Speed {
        code: 6,
        hz: 4_000_000,
    },
    Speed {
        code: 7,
        hz: 8_000_000,
    },
];

impl Speed {
    /// The fastest code whose clock is at most `hz`; `None` below the slowest (31.25 kHz).
    pub fn at_most(hz: u32) -> Option<Speed> {
        SPEEDS.iter().rev().find(|s| s.hz <= hz).copied()
    }

    /// The `01100xxx` command.
    pub fn command(self) -> u8 {
        0x60 | (self.code & 0x07)
    }
}

/// `0100wxyz`: configure peripherals. w = power supplies, x = pull-ups (AUX2 on a v1a),
/// y = AUX level, z = CS level.
pub fn peripherals(power: bool, pin_bits: u8) -> u8 {
    0x40 | if power { 0x08 } else { 0 } | (pin_bits & 0x07)
}

/// `1000wxyz`: SPI mode 0 as the AVR wants it: clock idle low (x = 0), data changing on the
/// active-to-idle edge (y = 1), sampled in the middle (z = 0); w = 1 for 3.3 V push-pull
/// outputs, 0 for open drain (with external pull-ups).
pub fn spi_config(push_pull: bool) -> u8 {
    0x80 | if push_pull { 0x08 } else { 0 } | 0x02
}

/// `0001xxxx`: bulk transfer of `n` (1..=16) bytes.
pub fn bulk(n: usize) -> u8 {
    0x10 | ((n.clamp(1, BULK_MAX) - 1) as u8)
}

/// Bulk transfers carrying `instructions`, four per command.
pub fn bulk_frames(instructions: &[Instruction]) -> Vec<u8> {
    let mut out = Vec::with_capacity(instructions.len() * 4 + instructions.len().div_ceil(4));
    for group in instructions.chunks(BULK_MAX / 4) {
        out.push(bulk(group.len() * 4));
        for cmd in group {
            out.extend_from_slice(cmd);
        }
    }
    out
}

/// Bytes the Bus Pirate answers to [`bulk_frames`] of `count` instructions.
pub fn bulk_reply_len(count: usize) -> usize {
    count * 4 + count.div_ceil(4)
}

/// Takes the 4-byte responses out of the reply to [`bulk_frames`]: each command answers `01`
/// and then one byte per byte sent.
pub fn decode_bulk_reply(reply: &[u8], count: usize) -> Result<Vec<Instruction>> {
    if reply.len() != bulk_reply_len(count) {
        return Err(Error::protocol(
            DRIVER,
            format!(
                "bulk SPI reply has {} bytes, expected {}",
                reply.len(),
                bulk_reply_len(count)
            ),
        ));
    }
    let mut responses = Vec::with_capacity(count);
    let mut rest = reply;
    let mut left = count;
    while left > 0 {
        let n = left.min(BULK_MAX / 4);
        let (frame, tail) = rest.split_at(1 + n * 4);
        expect_ack(frame[0], "a bulk SPI transfer")?;
        for r in frame[1..].chunks_exact(4) {
            responses.push([r[0], r[1], r[2], r[3]]);
        }
        rest = tail;
        left -= n;
    }
    Ok(responses)
}

/// The write-then-read command without CS (`05`) for `write` bytes, reading none.
pub fn write_then_read_header(write: usize) -> [u8; 5] {
    let [hi, lo] = (write.min(WRITE_THEN_READ_MAX) as u16).to_be_bytes();
    [WRITE_THEN_READ_NO_CS, hi, lo, 0, 0]
}

/// The AVR extended bulk flash read: start **word** address, length in **bytes**.
pub fn bulk_read_request(word: u32, len: u32) -> [u8; 10] {
    let w = word.to_be_bytes();
    let l = len.to_be_bytes();
    [
        AVR_EXTENDED,
        AVR_EXTENDED_BULK_READ,
        w[0],
        w[1],
        w[2],
        w[3],
        l[0],
        l[1],
        l[2],
        l[3],
    ]
}

/// Whether the firmware accepts a bulk read of `len` bytes from word `word` (its check mixes
/// the units: word + byte count ≤ 0xFFFF).
pub fn bulk_read_allowed(word: u32, len: u32) -> bool {
    word <= BULK_READ_LIMIT && len <= BULK_READ_LIMIT && word + len <= BULK_READ_LIMIT
}

/// Checks one "OK" byte.
pub fn expect_ack(byte: u8, during: &str) -> Result<()> {
    if byte == ACK {
        Ok(())
    } else {
        Err(Error::protocol(
            DRIVER,
            format!("{during}: expected 0x01 (OK), got 0x{byte:02X}"),
        ))
    }
}

/// Checks a run of "OK" bytes.
pub fn expect_acks(bytes: &[u8], during: &str) -> Result<()> {
    bytes.iter().try_for_each(|&b| expect_ack(b, during))
}

/// Finds the last `prefix` followed by a version digit (`BBIO1`, `SPI1`) in `text`; returns
/// the index just past it and the version.
pub fn find_version(text: &[u8], prefix: &[u8]) -> Option<(usize, u8)> {
    let n = prefix.len();
    if text.len() <= n {
        return None;
    }
    (0..text.len() - n).rev().find_map(|i| {
        let digit = text[i + n];
        (text[i..i + n] == *prefix && digit.is_ascii_digit()).then(|| (i + n + 1, digit - b'0'))
    })
}

/// What the answer to a lone `\n` says about the mode the Bus Pirate is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeProbe {
    /// One or more `00` bytes: a binary mode answering an unknown command.
    Binary,
    /// Text ending in a prompt (`HiZ>`, `SPI>`...).
    TerminalPrompt,
    /// Something else (a menu question, the tail of an old reply, a half-done command).
    Unclear,
    /// Nothing at all.
    Silent,
}

/// Classifies the answer to a lone `\n`.
pub fn classify_probe(reply: &[u8]) -> ModeProbe {
    if reply.is_empty() {
        ModeProbe::Silent
    } else if reply.iter().all(|&b| b == 0x00) {
        ModeProbe::Binary
    } else if is_prompt(reply) {
        ModeProbe::TerminalPrompt
    } else {
        ModeProbe::Unclear
    }
}

/// Whether text ends in a terminal prompt (`>` or `> `), the test avrdude uses.
pub fn is_prompt(text: &[u8]) -> bool {
    matches!(text, [.., b'>'] | [.., b'>', b' '])
}

/// The answer to the AVR extended probe `06 01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendedProbe {
    /// `01 01 vH vL`: present, with this version.
    Present(u16),
    /// `00`: an unknown command; the `01` that followed then answered `SPI1`.
    Absent,
}

/// How many bytes to read after the first byte of the answer to `06 01`.
pub fn extended_probe_rest(first: u8) -> usize {
    if first == ACK { 3 } else { 4 }
}

/// Decodes the answer to `06 01` (the first byte plus [`extended_probe_rest`] more).
pub fn decode_extended_probe(reply: &[u8]) -> Result<ExtendedProbe> {
    match reply {
        [ACK, ACK, hi, lo] => Ok(ExtendedProbe::Present(u16::from_be_bytes([*hi, *lo]))),
        [0x00, rest @ ..] if find_version(rest, b"SPI").is_some() => Ok(ExtendedProbe::Absent),
        _ => Err(Error::protocol(
            DRIVER,
            format!(
                "unexpected answer to the AVR extended commands probe: {}",
                hex_bytes(reply)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_selection_picks_the_fastest_code_not_above_the_request() {
        assert_eq!(Speed::at_most(8_000_000).unwrap().code, 7);
        assert_eq!(Speed::at_most(2_000_000).unwrap().code, 4);
        assert_eq!(Speed::at_most(1_999_999).unwrap().code, 3);
        assert_eq!(Speed::at_most(200_000).unwrap().code, 1);
        assert_eq!(Speed::at_most(31_250).unwrap().code, 0);
        assert_eq!(Speed::at_most(30_000), None);
        assert_eq!(Speed::at_most(u32::MAX).unwrap().command(), 0x67);
    }

    #[test]
    fn speeds_are_what_the_emulated_pic_produces() {
        for s in SPEEDS {
            assert_eq!(s.hz, crate::emulate::buspirate::timing::sck_hz(s.code));
        }
    }

    #[test]
    fn command_bytes() {
        assert_eq!(peripherals(true, 0x01), 0x49);
        assert_eq!(peripherals(true, 0x00), 0x48);
        assert_eq!(spi_config(true), 0x8A);
        assert_eq!(spi_config(false), 0x82);
        assert_eq!(bulk(4), 0x13);
        assert_eq!(bulk(16), 0x1F);
        assert_eq!(write_then_read_header(1028), [0x05, 0x04, 0x04, 0, 0]);
        assert_eq!(
            bulk_read_request(0x8000, 0x100),
            [6, 2, 0, 0, 0x80, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn bulk_frames_pack_four_instructions_per_command() {
        let cmds: Vec<Instruction> = (0..6u8).map(|i| [0x30, 0, i, 0]).collect();
        let frames = bulk_frames(&cmds);
        assert_eq!(frames.len(), 2 + 24);
        assert_eq!(frames[0], 0x1F);
        assert_eq!(frames[17], 0x17);
        assert_eq!(bulk_reply_len(6), frames.len());
        let mut reply = vec![ACK];
        reply.extend((0..16).map(|i| i as u8));
        reply.push(ACK);
        reply.extend((16..24).map(|i| i as u8));
        let responses = decode_bulk_reply(&reply, 6).unwrap();
        assert_eq!(responses[5], [20, 21, 22, 23]);
        reply[17] = 0x00;
        assert!(decode_bulk_reply(&reply, 6).is_err());
        assert!(decode_bulk_reply(&reply[..3], 6).is_err());
    }

    #[test]
    fn the_bulk_read_limit_mixes_words_and_bytes() {
        assert!(bulk_read_allowed(0x8000, 0x1000));
        assert!(bulk_read_allowed(0xFF7F, 0x80));
        assert!(
            !bulk_read_allowed(0xFF80, 0x100),
            "avrdude's last usb1286 page"
        );
        assert!(!bulk_read_allowed(0x10000, 0));
        assert!(!bulk_read_allowed(0, 0x10000));
    }

    #[test]
    fn versions_and_prompts_are_found_after_junk() {
        assert_eq!(find_version(b"\0\0BBIO1", b"BBIO"), Some((7, 1)));
        assert_eq!(find_version(b"BBIO1BBIO1SPI1", b"SPI"), Some((14, 1)));
        assert_eq!(find_version(b"BBIO", b"BBIO"), None);
        assert_eq!(find_version(b"", b"SPI"), None);
        assert_eq!(classify_probe(b""), ModeProbe::Silent);
        assert_eq!(classify_probe(b"\0"), ModeProbe::Binary);
        assert_eq!(classify_probe(b"\r\nHiZ>"), ModeProbe::TerminalPrompt);
        assert_eq!(classify_probe(b"(1)>"), ModeProbe::TerminalPrompt);
        assert_eq!(classify_probe(b"\xFF"), ModeProbe::Unclear);
        assert!(is_prompt(b"SPI> "));
    }

    proptest::proptest! {
        /// Any bytes: the decoders answer or refuse, never panic.
        #[test]
        fn decoders_take_any_bytes(reply in proptest::collection::vec(proptest::num::u8::ANY, 0..80), count in 0usize..20) {
            if let Ok(responses) = decode_bulk_reply(&reply, count) {
                proptest::prop_assert_eq!(responses.len(), count);
            }
            let _ = decode_extended_probe(&reply);
            let _ = classify_probe(&reply);
            if let Some((end, _)) = find_version(&reply, b"SPI") {
                proptest::prop_assert!(end <= reply.len());
            }
        }

        /// What the Bus Pirate answers to our frames decodes back to the target's bytes.
        #[test]
        fn bulk_replies_round_trip(responses in proptest::collection::vec(proptest::array::uniform4(proptest::num::u8::ANY), 1..40)) {
            let mut reply = Vec::new();
            for group in responses.chunks(4) {
                reply.push(ACK);
                reply.extend(group.iter().flatten());
            }
            proptest::prop_assert_eq!(decode_bulk_reply(&reply, responses.len()).unwrap(), responses);
        }
    }

    #[test]
    fn extended_probe_answers() {
        assert_eq!(extended_probe_rest(ACK), 3);
        assert_eq!(
            decode_extended_probe(&[1, 1, 0, 1]).unwrap(),
            ExtendedProbe::Present(1)
        );
        assert_eq!(
            decode_extended_probe(b"\0SPI1").unwrap(),
            ExtendedProbe::Absent
        );
        assert!(decode_extended_probe(&[1, 0, 0, 1]).is_err());
        assert!(decode_extended_probe(&[]).is_err());
    }
}
