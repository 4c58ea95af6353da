//! AVR109 ("butterfly") as the Caterina bootloader speaks it over USB CDC serial.
//!
//! Facts from Caterina.c (Arduino's LUFA-based bootloader, the Debian arduino-core-avr copy; the
//! SparkFun and Adafruit variants share the command handler) and from avrdude 7.1's
//! `butterfly.c`, the client every Caterina board is used with:
//!
//! | Command | Caterina's answer |
//! |---|---|
//! | `ESC` (0x1B) | nothing (avrdude sends it to wake Butterfly boards) |
//! | `S` | 7 bytes: `CATERIN` (the first 7 of "CATERINA") |
//! | `V` | 2 ASCII digits: `10` (version 1.0) |
//! | `v` | `?`: hardware version not implemented |
//! | `p` | `S` (serial programmer) |
//! | `a` | `Y` (address auto-increment) |
//! | `b` | `Y`, then the block size big-endian: SPM_PAGESIZE, 128 on the ATmega32U4 |
//! | `t` | `0x44 0x00`: "ATmega128", listed only so AVRProg accepts it, then the 0 terminator |
//! | `T` dev | `\r` (ignored) |
//! | `P`, `L` | `\r` (no programming mode to enter or leave) |
//! | `A` hi lo | `\r`. Caterina keeps `CurrAddress = (hi << 9) \| (lo << 1)`: the host sends a **word** address for flash and the **byte** address for EEPROM (EEPROM is accessed at `CurrAddress >> 1`) |
//! | `B` len_hi len_lo `F` data | erases the page at CurrAddress, fills `len` bytes word by word, writes that one page, `\r`. So a flash block must be exactly one page starting at a page boundary |
//! | `B` len_hi len_lo `E` data | writes `len` EEPROM bytes one by one, `\r` |
//! | `g` len_hi len_lo `F`/`E` | `len` bytes of flash (low byte first) or EEPROM |
//! | `B`/`g` with another memory type | `?` |
//! | `e` | erases every application-section page (below the boot section), `\r` |
//! | `s` | the signature **reversed**: byte 2, byte 1, byte 0 (avrdude swaps them back) |
//! | `F`, `N`, `Q`, `r` | low, high, extended fuse, lock byte |
//! | `l` | `?` (Caterina is built with NO_LOCK_BYTE_WRITE_SUPPORT) |
//! | `E` | `\r`; the bootloader runs on ~500 ms more, then detaches and starts the application |
//! | anything else | `?` |
//!
//! [`wire`] holds the byte layouts, apart from I/O; [`Avr109`] is the client.

use std::time::Duration;

use crate::error::{Error, Memory, Result};
use crate::part::FuseKind;
use crate::transport::SerialLink;

/// The driver name in errors.
pub const DRIVER: &str = "avr109";

/// How long a plain command may take to answer (USB CDC turnarounds are milliseconds).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `e` may take: Caterina erases and rewrites each of the 224 application pages of an
/// ATmega32U4 (~9 ms each), about 2 s; avrdude's serial timeout is 5 s.
pub const ERASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Byte layouts of the commands, kept apart from I/O so they are tested against plain bytes.
pub mod wire {
    use crate::error::Memory;

    /// Sent first to wake a Butterfly; Caterina ignores it.
    pub const ESC: u8 = 0x1B;
    /// The acknowledgement of commands without data.
    pub const CR: u8 = b'\r';
    /// The answer to an unknown or unsupported command.
    pub const UNKNOWN: u8 = b'?';
    /// `Y`: yes, supported.
    pub const YES: u8 = b'Y';
    /// The software id a Caterina bootloader reports.
    pub const CATERINA_ID: &[u8; 7] = b"CATERIN";

    /// The memory type letter of a block command.
    pub fn memory_letter(memory: Memory) -> u8 {
        match memory {
            Memory::Flash => b'F',
            Memory::Eeprom => b'E',
        }
    }

    /// `A` with the address Caterina expects: the word address for flash, the byte address
    /// for EEPROM. `None` when it does not fit the command's 16 bits.
    pub fn set_address(memory: Memory, byte_addr: u32) -> Option<[u8; 3]> {
        let field = match memory {
            Memory::Flash => byte_addr / 2,
            Memory::Eeprom => byte_addr,
        };
        let field = u16::try_from(field).ok()?;
        let [hi, lo] = field.to_be_bytes();
        Some([b'A', hi, lo])
    }

    /// `B` len `F`/`E` followed by the data.
    pub fn block_write(memory: Memory, data: &[u8]) -> Option<Vec<u8>> {
        let [hi, lo] = u16::try_from(data.len()).ok()?.to_be_bytes();
        let mut frame = Vec::with_capacity(4 + data.len());
        frame.extend_from_slice(&[b'B', hi, lo, memory_letter(memory)]);
        frame.extend_from_slice(data);
        Some(frame)
    }

    /// `g` len `F`/`E`.
    pub fn block_read(memory: Memory, len: u16) -> [u8; 4] {
        let [hi, lo] = len.to_be_bytes();
        [b'g', hi, lo, memory_letter(memory)]
    }

    /// The signature as the part database writes it, from `s`'s reversed answer.
    pub fn signature_from_reply(reply: [u8; 3]) -> [u8; 3] {
        [reply[2], reply[1], reply[0]]
    }

    /// The command that reads a fuse or the lock byte.
    pub fn fuse_command(kind: crate::part::FuseKind) -> u8 {
        use crate::part::FuseKind;
        match kind {
            FuseKind::Low => b'F',
            FuseKind::High => b'N',
            FuseKind::Extended => b'Q',
            FuseKind::Lock => b'r',
        }
    }
}

/// What the bootloader said about itself while connecting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootloaderInfo {
    /// The 7-character software id (`CATERIN`).
    pub software_id: String,
    /// Software version, e.g. `1.0`.
    pub version: String,
    /// Hardware version, when the bootloader reports one (Caterina does not).
    pub hardware_version: Option<String>,
    /// Programmer type letter (`S` for serial).
    pub programmer_type: char,
    /// Whether addresses auto-increment.
    pub auto_increment: bool,
    /// The block size for `B` and `g`, in bytes.
    pub block_size: u16,
    /// The device codes `t` listed.
    pub device_codes: Vec<u8>,
}

impl BootloaderInfo {
    /// Whether this is Caterina (or a derivative keeping its id).
    pub fn is_caterina(&self) -> bool {
        self.software_id.as_bytes() == wire::CATERINA_ID
    }

    /// `CATERIN 1.0, 128-byte blocks`.
    pub fn describe(&self) -> String {
        format!(
            "{} {}, {}-byte blocks",
            self.software_id, self.version, self.block_size
        )
    }
}

/// An AVR109 client on a serial link.
pub struct Avr109<L: SerialLink> {
    link: L,
    info: Option<BootloaderInfo>,
}

impl<L: SerialLink> Avr109<L> {
    /// Wraps an open link; nothing is sent until [`Avr109::connect`].
    pub fn new(link: L) -> Self {
        Avr109 { link, info: None }
    }

    /// The link's name (the port).
    pub fn port(&self) -> &str {
        self.link.name()
    }

    /// What the bootloader reported, once connected.
    pub fn info(&self) -> Option<&BootloaderInfo> {
        self.info.as_ref()
    }

    /// Gives the link back.
    pub fn into_link(self) -> L {
        self.link
    }

    /// The sign-on avrdude 7.1 performs: ESC, `S`, `V`, `v`, `p`, `a`, `b`, `t`, `T`, `P`.
    /// Fails unless the bootloader supports block transfers.
    pub fn connect(&mut self) -> Result<&BootloaderInfo> {
        self.link.write_all(&[wire::ESC])?;
        self.link.drain(Duration::from_millis(50))?;
        let software_id = self.ask(b'S', 7, "software id (S)")?;
        if software_id[0] == wire::UNKNOWN {
            return Err(Error::protocol(
                DRIVER,
                format!(
                    "{} answered '?' to the software id request: it is not an AVR109 bootloader",
                    self.port()
                ),
            ));
        }
        let version = self.ask(b'V', 2, "software version (V)")?;
        let hardware_version = self.hardware_version()?;
        let programmer_type = self.ask(b'p', 1, "programmer type (p)")?[0];
        let auto_increment = self.ask(b'a', 1, "auto-increment (a)")?[0] == wire::YES;
        let block_size = self.block_size()?;
        let device_codes = self.device_codes()?;
        let device = device_codes.first().copied().unwrap_or(0);
        self.command_ack(&[b'T', device], "select device (T)")?;
        self.command_ack(b"P", "enter programming mode (P)")?;
        let info = BootloaderInfo {
            software_id: printable(&software_id),
            version: format!(
                "{}.{}",
                char::from(version[0]).escape_default(),
                char::from(version[1]).escape_default()
            ),
            hardware_version,
            programmer_type: char::from(programmer_type),
            auto_increment,
            block_size,
            device_codes,
        };
        Ok(self.info.insert(info))
    }

    /// `v`: two digits, or a lone `?` when not implemented (Caterina).
    fn hardware_version(&mut self) -> Result<Option<String>> {
        let first = self.ask(b'v', 1, "hardware version (v)")?[0];
        if first == wire::UNKNOWN {
            return Ok(None);
        }
        let mut second = [0u8; 1];
        self.link.read_exact(
            &mut second,
            REPLY_TIMEOUT,
            "reading the hardware version (v)",
        )?;
        Ok(Some(format!(
            "{}.{}",
            char::from(first).escape_default(),
            char::from(second[0]).escape_default()
        )))
    }

    /// `b`: `Y` and the block size, which must be at least one byte.
    fn block_size(&mut self) -> Result<u16> {
        let reply = self.ask(b'b', 1, "block support (b)")?;
        if reply[0] != wire::YES {
            return Err(Error::protocol(
                DRIVER,
                format!(
                    "{} does not support block transfers (b answered 0x{:02X}): an AVR910 programmer, not an AVR109 bootloader",
                    self.port(),
                    reply[0]
                ),
            ));
        }
        let mut size = [0u8; 2];
        self.link
            .read_exact(&mut size, REPLY_TIMEOUT, "reading the block size (b)")?;
        match u16::from_be_bytes(size) {
            0 => Err(Error::protocol(
                DRIVER,
                "the bootloader reported a block size of 0",
            )),
            size => Ok(size),
        }
    }

    /// `t`: device codes up to a 0, at most 256 of them.
    fn device_codes(&mut self) -> Result<Vec<u8>> {
        self.link.write_all(b"t")?;
        let mut codes = Vec::new();
        loop {
            let mut code = [0u8; 1];
            self.link
                .read_exact(&mut code, REPLY_TIMEOUT, "reading the device list (t)")?;
            if code[0] == 0 {
                return Ok(codes);
            }
            if codes.len() == 256 {
                return Err(Error::protocol(
                    DRIVER,
                    "the device list (t) does not end with a 0 byte",
                ));
            }
            codes.push(code[0]);
        }
    }

    /// `s`: the signature, put back in the usual order.
    pub fn signature(&mut self) -> Result<[u8; 3]> {
        let reply = self.ask(b's', 3, "signature (s)")?;
        Ok(wire::signature_from_reply([reply[0], reply[1], reply[2]]))
    }

    /// `F`/`N`/`Q`/`r`: a fuse or the lock byte. A `?` means the bootloader cannot read it.
    pub fn read_fuse(&mut self, kind: FuseKind) -> Result<u8> {
        let command = wire::fuse_command(kind);
        let value = self.ask(
            command,
            1,
            &format!("{} ({})", kind.label(), command as char),
        )?[0];
        // '?' (0x3F) is also a possible fuse value; Caterina implements all four, so only a
        // bootloader that said it lacks the command is treated as not supporting it.
        if value == wire::UNKNOWN && !self.info.as_ref().is_some_and(BootloaderInfo::is_caterina) {
            return Err(Error::unsupported(DRIVER, "read this fuse"));
        }
        Ok(value)
    }

    /// `e`: Caterina erases the application section (its own section stays).
    pub fn erase_application(&mut self) -> Result<()> {
        self.link.write_all(b"e")?;
        self.expect_cr("chip erase (e)", ERASE_TIMEOUT)
    }

    /// `A`: sets the address of the next block (a byte address here; converted as Caterina
    /// wants it).
    pub fn set_address(&mut self, memory: Memory, byte_addr: u32) -> Result<()> {
        let frame = wire::set_address(memory, byte_addr).ok_or_else(|| {
            Error::unsupported(DRIVER, "address memory above 128 KB (no 'H' command)")
        })?;
        self.command_ack(&frame, &format!("set address 0x{byte_addr:05X} (A)"))
    }

    /// `A` + `B`: writes one block at `byte_addr`. A flash block must be one whole page at a
    /// page boundary: Caterina erases and writes exactly one page per block.
    pub fn write_block(&mut self, memory: Memory, byte_addr: u32, data: &[u8]) -> Result<()> {
        self.set_address(memory, byte_addr)?;
        let frame = wire::block_write(memory, data).ok_or_else(|| {
            Error::invalid(format!(
                "internal: a {}-byte block does not fit one AVR109 command",
                data.len()
            ))
        })?;
        self.link.write_all(&frame)?;
        // EEPROM bytes take ~3.4 ms each to write before the answer comes.
        let timeout = REPLY_TIMEOUT + Duration::from_millis(10) * data.len() as u32;
        self.expect_cr(
            &format!(
                "write {memory} block of {} bytes at 0x{byte_addr:05X} (B)",
                data.len()
            ),
            timeout,
        )
    }

    /// `A` + `g`: reads `buf.len()` bytes from `byte_addr`, in blocks no larger than the
    /// bootloader's block size.
    pub fn read_block(&mut self, memory: Memory, byte_addr: u32, buf: &mut [u8]) -> Result<()> {
        let block = usize::from(self.info.as_ref().map_or(128, |i| i.block_size)).max(1);
        self.set_address(memory, byte_addr)?;
        for (i, chunk) in buf.chunks_mut(block).enumerate() {
            let len = chunk.len() as u16;
            self.link.write_all(&wire::block_read(memory, len))?;
            let at = byte_addr + (i * block) as u32;
            self.link.read_exact(
                chunk,
                REPLY_TIMEOUT,
                &format!("reading {memory} block of {len} bytes at 0x{at:05X} (g)"),
            )?;
        }
        Ok(())
    }

    /// `L`: leave programming mode.
    pub fn leave_programming(&mut self) -> Result<()> {
        self.command_ack(b"L", "leave programming mode (L)")
    }

    /// `E`: exit the bootloader; Caterina starts the application about 500 ms later.
    pub fn exit(&mut self) -> Result<()> {
        self.command_ack(b"E", "exit bootloader (E)")
    }

    /// Sends a one-byte command and reads `len` bytes of answer.
    fn ask(&mut self, command: u8, len: usize, what: &str) -> Result<Vec<u8>> {
        self.link.write_all(&[command])?;
        let mut reply = vec![0u8; len];
        // A '?' for an unknown command is one byte; read that first so it is not mistaken for
        // a timeout.
        self.link.read_exact(
            &mut reply[..1],
            REPLY_TIMEOUT,
            &format!("waiting for the {what}"),
        )?;
        if len > 1 && reply[0] != wire::UNKNOWN {
            self.link.read_exact(
                &mut reply[1..],
                REPLY_TIMEOUT,
                &format!("waiting for the {what}"),
            )?;
        }
        Ok(reply)
    }

    /// Sends a command that answers a lone `\r`.
    fn command_ack(&mut self, frame: &[u8], what: &str) -> Result<()> {
        self.link.write_all(frame)?;
        self.expect_cr(what, REPLY_TIMEOUT)
    }

    fn expect_cr(&mut self, what: &str, timeout: Duration) -> Result<()> {
        let mut reply = [0u8; 1];
        self.link.read_exact(
            &mut reply,
            timeout,
            &format!("waiting for the answer to {what}"),
        )?;
        match reply[0] {
            wire::CR => Ok(()),
            other => Err(Error::protocol(
                DRIVER,
                format!(
                    "{what}: expected a carriage return (0x0D), got 0x{other:02X}{}",
                    if other == wire::UNKNOWN {
                        " ('?': the bootloader does not support this command)"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }
}

/// Printable ASCII, anything else escaped.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| char::from(b).escape_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::wire::*;
    use crate::error::Memory;
    use crate::part::FuseKind;

    #[test]
    fn flash_addresses_are_words_and_eeprom_addresses_bytes() {
        assert_eq!(set_address(Memory::Flash, 0x6F80), Some([b'A', 0x37, 0xC0]));
        assert_eq!(
            set_address(Memory::Eeprom, 0x0123),
            Some([b'A', 0x01, 0x23])
        );
        assert_eq!(
            set_address(Memory::Flash, 0x1FFFE),
            Some([b'A', 0xFF, 0xFF])
        );
        assert_eq!(set_address(Memory::Flash, 0x20000), None);
        assert_eq!(set_address(Memory::Eeprom, 0x10000), None);
    }

    #[test]
    fn block_frames() {
        let frame = block_write(Memory::Flash, &[1, 2, 3, 4]).unwrap();
        assert_eq!(frame, [b'B', 0, 4, b'F', 1, 2, 3, 4]);
        let frame = block_write(Memory::Eeprom, &[0xAA; 300]).unwrap();
        assert_eq!(&frame[..4], &[b'B', 0x01, 0x2C, b'E']);
        assert_eq!(frame.len(), 304);
        assert!(block_write(Memory::Flash, &vec![0; 70_000]).is_none());
        assert_eq!(block_read(Memory::Flash, 128), [b'g', 0, 128, b'F']);
        assert_eq!(block_read(Memory::Eeprom, 1), [b'g', 0, 1, b'E']);
    }

    #[test]
    fn signature_comes_reversed() {
        assert_eq!(signature_from_reply([0x87, 0x95, 0x1E]), [0x1E, 0x95, 0x87]);
    }

    #[test]
    fn fuse_letters() {
        let letters: Vec<u8> = FuseKind::ALL.into_iter().map(fuse_command).collect();
        assert_eq!(letters, b"FNQr");
    }
}
