//! The STK500v1 wire format as ArduinoISP speaks it (facts sheet §2): command bytes, the frames
//! the driver sends, and the decoder for what comes back.
//!
//! It is kept apart from any I/O so that framing is unit-tested against byte vectors and the
//! reply decoder can be fuzzed (`fuzz/fuzz_targets/stk500_reply.rs`). The emulated ArduinoISP
//! uses the same constants, so both sides name every byte the same way.

use std::time::Duration;

use crate::error::Memory;
use crate::isp::Instruction;
use crate::part::Part;
use crate::util::hex_bytes;

/// Every frame ends with this byte (ASCII space, AVR061 `Sync_CRC_EOP`).
pub const EOP: u8 = 0x20;

/// Command bytes (AVR061 `Cmnd_STK_*`).
pub mod cmd {
    /// `0` GET_SYNC.
    pub const GET_SYNC: u8 = 0x30;
    /// `1` GET_SIGN_ON.
    pub const GET_SIGN_ON: u8 = 0x31;
    /// `@` SET_PARAMETER (ArduinoISP does not implement it: it desynchronises the stream).
    pub const SET_PARAMETER: u8 = 0x40;
    /// `A` GET_PARAMETER.
    pub const GET_PARAMETER: u8 = 0x41;
    /// `B` SET_DEVICE (20 parameter bytes).
    pub const SET_DEVICE: u8 = 0x42;
    /// `E` SET_DEVICE_EXT (ArduinoISP always reads 5 bytes).
    pub const SET_DEVICE_EXT: u8 = 0x45;
    /// `P` ENTER_PROGMODE.
    pub const ENTER_PROGMODE: u8 = 0x50;
    /// `Q` LEAVE_PROGMODE.
    pub const LEAVE_PROGMODE: u8 = 0x51;
    /// `R` CHIP_ERASE (not implemented by ArduinoISP; erase goes through UNIVERSAL).
    pub const CHIP_ERASE: u8 = 0x52;
    /// `U` LOAD_ADDRESS (16-bit word address, little-endian).
    pub const LOAD_ADDRESS: u8 = 0x55;
    /// `V` UNIVERSAL (one 4-byte ISP instruction; only the 4th response byte comes back).
    pub const UNIVERSAL: u8 = 0x56;
    /// `` ` `` PROG_FLASH (ArduinoISP swallows its arguments and does nothing).
    pub const PROG_FLASH: u8 = 0x60;
    /// `a` PROG_DATA (ArduinoISP swallows its argument and does nothing).
    pub const PROG_DATA: u8 = 0x61;
    /// `d` PROG_PAGE (big-endian length, memory type, data).
    pub const PROG_PAGE: u8 = 0x64;
    /// `t` READ_PAGE (big-endian length, memory type).
    pub const READ_PAGE: u8 = 0x74;
    /// `u` READ_SIGN (the three signature bytes in one reply).
    pub const READ_SIGN: u8 = 0x75;
}

/// Response bytes (AVR061 `Resp_STK_*`).
pub mod resp {
    /// The command ran.
    pub const OK: u8 = 0x10;
    /// The command failed.
    pub const FAILED: u8 = 0x11;
    /// The command is not known (ArduinoISP: sent alone, instead of INSYNC).
    pub const UNKNOWN: u8 = 0x12;
    /// No target device (a real STK500 after ENTER_PROGMODE; ArduinoISP never says it).
    pub const NODEVICE: u8 = 0x13;
    /// First byte of every good reply.
    pub const INSYNC: u8 = 0x14;
    /// The frame did not end in [`super::EOP`]: programmer and host are out of step.
    pub const NOSYNC: u8 = 0x15;
}

/// Parameter ids for GET_PARAMETER.
pub mod parm {
    /// Hardware version (ArduinoISP: 2).
    pub const HW_VER: u8 = 0x80;
    /// Software major version (ArduinoISP: 1).
    pub const SW_MAJOR: u8 = 0x81;
    /// Software minor version (ArduinoISP: 18).
    pub const SW_MINOR: u8 = 0x82;
    /// Programming mode, 'S' for serial (ArduinoISP answers it).
    pub const PROGMODE: u8 = 0x93;
}

/// Memory type byte of PROG_PAGE / READ_PAGE for flash.
pub const MEMTYPE_FLASH: u8 = b'F';
/// Memory type byte of PROG_PAGE / READ_PAGE for EEPROM.
pub const MEMTYPE_EEPROM: u8 = b'E';

/// The sign-on string ArduinoISP answers GET_SIGN_ON with.
pub const ARDUINOISP_SIGN_ON: &[u8; 7] = b"AVR ISP";
/// The sign-on string of a genuine STK500 (v1 firmware).
pub const STK500_SIGN_ON: &[u8; 7] = b"AVR STK";

/// Firmware time per 4-byte ISP transaction, for reply deadlines: 32 bits at ArduinoISP's
/// 125 kHz SPI plus its software overhead, rounded up.
const WORK_PER_TRANSACTION: Duration = Duration::from_micros(300);
/// ArduinoISP's PROG_FLICKER pause after each flash page commit (30 ms), plus the commit.
const WORK_PER_FLASH_COMMIT: Duration = Duration::from_millis(31);
/// ArduinoISP's `delay(45)` after each EEPROM byte it writes, plus the transaction.
const WORK_PER_EEPROM_BYTE: Duration = Duration::from_micros(45_300);
/// ArduinoISP's `start_pmode`: 20 ms + 100 µs + 50 ms of RESET choreography.
const WORK_ENTER_PROGMODE: Duration = Duration::from_millis(71);

/// One command frame, the shape of the reply it expects, and what it costs the firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The bytes on the wire, ending with [`EOP`].
    pub bytes: Vec<u8>,
    /// Payload bytes between INSYNC and the status byte of a good reply.
    pub reply_payload: usize,
    /// Firmware time the command takes before the reply ends (for reply deadlines).
    pub work: Duration,
    /// What the frame does, for error messages (`LOAD_ADDRESS word 0x0040`).
    pub label: String,
}

impl Frame {
    fn new(bytes: Vec<u8>, reply_payload: usize, work: Duration, label: String) -> Self {
        Frame {
            bytes,
            reply_payload,
            work,
            label,
        }
    }

    /// Bytes of a good reply: INSYNC, payload, OK.
    pub fn reply_len(&self) -> usize {
        self.reply_payload + 2
    }
}

/// `30 20`: are we in step? Reply `14 10`.
pub fn get_sync() -> Frame {
    Frame::new(
        vec![cmd::GET_SYNC, EOP],
        0,
        Duration::ZERO,
        "GET_SYNC".into(),
    )
}

/// `31 20`: the 7-character sign-on ("AVR ISP" on ArduinoISP).
pub fn get_sign_on() -> Frame {
    Frame::new(
        vec![cmd::GET_SIGN_ON, EOP],
        ARDUINOISP_SIGN_ON.len(),
        Duration::ZERO,
        "GET_SIGN_ON".into(),
    )
}

/// `41 p 20`: one parameter byte.
pub fn get_parameter(parameter: u8) -> Frame {
    Frame::new(
        vec![cmd::GET_PARAMETER, parameter, EOP],
        1,
        Duration::ZERO,
        format!("GET_PARAMETER 0x{parameter:02X}"),
    )
}

/// `42` + 20 device parameters + `20`, filled the way avrdude fills them (facts §2.3).
/// ArduinoISP uses the flash page size (to find page boundaries), the EEPROM size (to refuse
/// oversized EEPROM writes) and the device code (≥ 0xE0 selects an active-high RESET).
pub fn set_device(part: &Part) -> Frame {
    let fuse_bytes = part.fuses.len() as u8;
    let page = (part.flash.page_size.min(0xFFFF) as u16).to_be_bytes();
    let eeprom = (part.eeprom.size.min(0xFFFF) as u16).to_be_bytes();
    let flash = part.flash.size.to_be_bytes();
    let mut bytes = vec![
        cmd::SET_DEVICE,
        part.stk500.devcode,
        0, // revision
        0, // progtype: serial and parallel
        1, // parmode: full parallel
        1, // polling supported
        1, // self-timed
        1, // lock bytes
        fuse_bytes,
        0xFF, // flash readback values
        0xFF,
        0xFF, // EEPROM readback values
        0xFF,
    ];
    bytes.extend_from_slice(&page);
    bytes.extend_from_slice(&eeprom);
    bytes.extend_from_slice(&flash);
    bytes.push(EOP);
    Frame::new(
        bytes,
        0,
        Duration::ZERO,
        format!("SET_DEVICE for the {}", part.name),
    )
}

/// `45 n eeprom_page pagel bs2 [reset_disposition] 20`. Firmware newer than 1.10 (ArduinoISP is
/// 1.18, and reads exactly 5 bytes) gets the reset disposition too; older firmware gets 4 bytes,
/// as avrdude does.
pub fn set_device_ext(part: &Part, with_reset_disposition: bool) -> Frame {
    let mut params = vec![
        part.eeprom.page_size.min(0xFF) as u8,
        part.stk500.pagel,
        part.stk500.bs2,
    ];
    if with_reset_disposition {
        params.push(part.stk500.reset_disposition);
    }
    let mut bytes = vec![cmd::SET_DEVICE_EXT, params.len() as u8 + 1];
    bytes.extend_from_slice(&params);
    bytes.push(EOP);
    Frame::new(bytes, 0, Duration::ZERO, "SET_DEVICE_EXT".into())
}

/// `50 20`: reset the target and send Programming Enable (ArduinoISP never checks the echo).
pub fn enter_progmode() -> Frame {
    Frame::new(
        vec![cmd::ENTER_PROGMODE, EOP],
        0,
        WORK_ENTER_PROGMODE,
        "ENTER_PROGMODE".into(),
    )
}

/// `51 20`: release the target.
pub fn leave_progmode() -> Frame {
    Frame::new(
        vec![cmd::LEAVE_PROGMODE, EOP],
        0,
        Duration::ZERO,
        "LEAVE_PROGMODE".into(),
    )
}

/// `55 lo hi 20`: the 16-bit **word** address for the next PROG_PAGE / READ_PAGE.
pub fn load_address(word: u16) -> Frame {
    let [lo, hi] = word.to_le_bytes();
    Frame::new(
        vec![cmd::LOAD_ADDRESS, lo, hi, EOP],
        0,
        Duration::ZERO,
        format!("LOAD_ADDRESS word 0x{word:04X}"),
    )
}

fn memtype(memory: Memory) -> u8 {
    match memory {
        Memory::Flash => MEMTYPE_FLASH,
        Memory::Eeprom => MEMTYPE_EEPROM,
    }
}

/// `64 lenH lenL F|E data 20`. `data` must hold at most 65535 bytes (callers send one page);
/// ArduinoISP buffers it in 256 bytes. `byte_addr` only labels the frame.
pub fn prog_page(memory: Memory, byte_addr: u32, data: &[u8]) -> Frame {
    let len = data.len().min(usize::from(u16::MAX));
    let data = &data[..len];
    let [hi, lo] = (len as u16).to_be_bytes();
    let mut bytes = Vec::with_capacity(len + 5);
    bytes.extend_from_slice(&[cmd::PROG_PAGE, hi, lo, memtype(memory)]);
    bytes.extend_from_slice(data);
    bytes.push(EOP);
    let work = match memory {
        // One transaction per byte, and a commit (with its PROG_FLICKER pause) per page; the
        // smallest page ArduinoISP knows is 64 bytes, so this never underestimates.
        Memory::Flash => {
            WORK_PER_TRANSACTION * len as u32 + WORK_PER_FLASH_COMMIT * (len.div_ceil(64) as u32)
        }
        Memory::Eeprom => WORK_PER_EEPROM_BYTE * len as u32,
    };
    Frame::new(
        bytes,
        0,
        work,
        format!("PROG_PAGE {memory} {len} bytes at 0x{byte_addr:05X}"),
    )
}

/// `74 lenH lenL F|E 20`: `len` bytes from the loaded address. ArduinoISP streams the reply
/// without buffering it, so `len` is not limited by its 256-byte buffer; it reads flash in
/// words, so an odd flash length comes back rounded up to even.
pub fn read_page(memory: Memory, byte_addr: u32, len: u16) -> Frame {
    let [hi, lo] = len.to_be_bytes();
    let payload = match memory {
        Memory::Flash => usize::from(len) + usize::from(len) % 2,
        Memory::Eeprom => usize::from(len),
    };
    Frame::new(
        vec![cmd::READ_PAGE, hi, lo, memtype(memory), EOP],
        payload,
        WORK_PER_TRANSACTION * payload as u32,
        format!("READ_PAGE {memory} {len} bytes at 0x{byte_addr:05X}"),
    )
}

/// `75 20`: the three signature bytes.
pub fn read_sign() -> Frame {
    Frame::new(
        vec![cmd::READ_SIGN, EOP],
        3,
        WORK_PER_TRANSACTION * 3,
        "READ_SIGN".into(),
    )
}

/// `56 b1 b2 b3 b4 20`: one ISP instruction; the reply carries its 4th response byte.
pub fn universal(instruction: Instruction) -> Frame {
    let mut bytes = vec![cmd::UNIVERSAL];
    bytes.extend_from_slice(&instruction);
    bytes.push(EOP);
    Frame::new(
        bytes,
        1,
        WORK_PER_TRANSACTION,
        format!("UNIVERSAL {}", hex_bytes(&instruction)),
    )
}

/// How a complete reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `10`: done.
    Ok,
    /// `11`: the programmer says the command failed.
    Failed,
    /// `13`: no target device answered.
    NoDevice,
}

/// What the bytes at the start of a reply buffer say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The reply is not complete: at least `needed` more bytes must be read.
    Incomplete {
        /// Bytes still missing.
        needed: usize,
    },
    /// `14 payload status`: a framed reply of `len` bytes.
    Complete {
        /// The payload between INSYNC and the status byte.
        payload: &'a [u8],
        /// The status byte.
        status: Status,
        /// Bytes the reply took (the next reply starts after them).
        len: usize,
    },
    /// A lone `15`: the programmer lost step with us.
    NoSync,
    /// A lone `12`: the programmer does not know the command.
    Unknown,
    /// A lone `11`: ArduinoISP's answer to PROG_PAGE with an unknown memory type, after which
    /// it reads the rest of the frame as commands.
    LoneFailed,
    /// A byte no reply can have at this position.
    Garbage {
        /// Its offset in the buffer.
        at: usize,
        /// The byte.
        byte: u8,
    },
}

/// Decodes the reply at the start of `bytes` to a frame whose good reply carries
/// `payload_len` bytes. Never panics, whatever the bytes.
pub fn decode_reply(payload_len: usize, bytes: &[u8]) -> Reply<'_> {
    let Some(&first) = bytes.first() else {
        return Reply::Incomplete { needed: 1 };
    };
    match first {
        resp::INSYNC => {
            let len = payload_len.saturating_add(2);
            if bytes.len() < len {
                return Reply::Incomplete {
                    needed: len - bytes.len(),
                };
            }
            let status = match bytes[len - 1] {
                resp::OK => Status::Ok,
                resp::FAILED => Status::Failed,
                resp::NODEVICE => Status::NoDevice,
                byte => return Reply::Garbage { at: len - 1, byte },
            };
            Reply::Complete {
                payload: &bytes[1..len - 1],
                status,
                len,
            }
        }
        resp::NOSYNC => Reply::NoSync,
        resp::UNKNOWN => Reply::Unknown,
        resp::FAILED => Reply::LoneFailed,
        byte => Reply::Garbage { at: 0, byte },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::part::PartDb;
    use proptest::prelude::*;

    fn part(name: &str) -> &'static Part {
        PartDb::builtin().unwrap().find(name).unwrap()
    }

    #[test]
    fn frames_match_the_facts_sheet() {
        assert_eq!(get_sync().bytes, [0x30, 0x20]);
        assert_eq!(get_parameter(parm::SW_MINOR).bytes, [0x41, 0x82, 0x20]);
        assert_eq!(load_address(0x1234).bytes, [0x55, 0x34, 0x12, 0x20]);
        assert_eq!(
            read_page(Memory::Flash, 0, 128).bytes,
            [0x74, 0x00, 0x80, 0x46, 0x20]
        );
        assert_eq!(read_page(Memory::Flash, 0, 3).reply_payload, 4);
        assert_eq!(read_page(Memory::Eeprom, 0, 3).reply_payload, 3);
        assert_eq!(
            universal([0x30, 0x00, 0x01, 0x00]).bytes,
            [0x56, 0x30, 0x00, 0x01, 0x00, 0x20]
        );
        let page = prog_page(Memory::Eeprom, 8, &[1, 2, 3, 4]);
        assert_eq!(page.bytes, [0x64, 0x00, 0x04, 0x45, 1, 2, 3, 4, 0x20]);
        // §2.4's example for the ATmega328P.
        assert_eq!(
            set_device_ext(part("m328p"), true).bytes,
            [0x45, 0x05, 0x04, 0xD7, 0xC2, 0x01, 0x20]
        );
        assert_eq!(
            set_device_ext(part("m328p"), false).bytes,
            [0x45, 0x04, 0x04, 0xD7, 0xC2, 0x20]
        );
    }

    #[test]
    fn set_device_carries_page_eeprom_and_flash_sizes() {
        let f = set_device(part("usb1286"));
        assert_eq!(f.bytes.len(), 22);
        assert_eq!(f.bytes[0], 0x42);
        assert_eq!(f.bytes[21], EOP);
        // index after the command byte: 12..13 page size, 14..15 EEPROM size, 16..19 flash size
        assert_eq!(&f.bytes[13..15], &[0x01, 0x00]);
        assert_eq!(&f.bytes[15..17], &[0x10, 0x00]);
        assert_eq!(&f.bytes[17..21], &[0x00, 0x02, 0x00, 0x00]);
        let m32a = set_device(part("m32a"));
        assert_eq!(m32a.bytes[1], 0x91);
        assert_eq!(m32a.bytes[8], 2, "the ATmega32A has two fuse bytes");
    }

    #[test]
    fn replies_decode() {
        assert_eq!(decode_reply(0, &[]), Reply::Incomplete { needed: 1 });
        assert_eq!(decode_reply(3, &[0x14, 1]), Reply::Incomplete { needed: 3 });
        assert_eq!(
            decode_reply(1, &[0x14, 0x02, 0x10, 0x14]),
            Reply::Complete {
                payload: &[0x02],
                status: Status::Ok,
                len: 3
            }
        );
        assert!(matches!(
            decode_reply(0, &[0x14, 0x13]),
            Reply::Complete {
                status: Status::NoDevice,
                ..
            }
        ));
        assert_eq!(decode_reply(0, &[0x15]), Reply::NoSync);
        assert_eq!(decode_reply(0, &[0x12]), Reply::Unknown);
        assert_eq!(decode_reply(0, &[0x11, 0x20]), Reply::LoneFailed);
        assert_eq!(
            decode_reply(0, &[0x14, 0x99]),
            Reply::Garbage { at: 1, byte: 0x99 }
        );
        assert_eq!(
            decode_reply(usize::MAX, &[0x14]),
            Reply::Incomplete {
                needed: usize::MAX - 1
            }
        );
    }

    proptest! {
        /// Whatever arrives, the decoder answers without panicking, and a complete reply never
        /// claims more bytes than it was given.
        #[test]
        fn decoder_never_panics(
            payload_len in 0usize..600,
            bytes in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            match decode_reply(payload_len, &bytes) {
                Reply::Complete { payload, len, .. } => {
                    prop_assert!(len <= bytes.len());
                    prop_assert_eq!(payload.len(), payload_len);
                }
                Reply::Incomplete { needed } => prop_assert!(needed > 0),
                Reply::Garbage { at, .. } => prop_assert!(at < bytes.len()),
                Reply::NoSync | Reply::Unknown | Reply::LoneFailed => {}
            }
        }
    }
}
