//! The Caterina bootloader (Arduino's LUFA CDC bootloader, as on the Pro Micro and Leonardo),
//! command by command after Caterina.c (Debian arduino-core-avr; the SparkFun variant only
//! changes what happens at reset, which [`ProgrammerBoard`] models):
//!
//! - It answers AVR109 as listed in [`crate::bootload::avr109`], including its quirks: `S`
//!   sends 7 of "CATERINA"'s 8 letters, `v` and `l` are unknown (`?`), `t` lists 0x44, `s`
//!   sends the signature reversed, `A` stores `(hi << 9) | (lo << 1)`, EEPROM is accessed at
//!   half that address, and a `B`/`g` with a memory type other than `F`/`E` answers `?`
//!   without reading its data (which the loop then takes for commands).
//! - It writes its own chip's flash the way SPM does: a flash `B` erases the page at the
//!   current address, fills the words into the page buffer (offsets wrap inside the page) and
//!   writes that page; `e` erases and rewrites every page below its own section (0x7000 on the
//!   ATmega32U4, `BOOT_START_ADDR`); the boot lock bits can make SPM do nothing.
//! - Nothing stops a host from writing the bootloader's own section: with the section
//!   unprotected (lock 0xFF, as SparkFun ships it) Caterina overwrites its running code; the
//!   emulator then treats the board as crashed (no answer, USB gone).
//! - Timeouts: `B` and `g` restart the 8 s timer, `E` leaves 0.5 s; the board's state machine
//!   keeps the time, and once the bootloader has left, the next byte finds nobody: the
//!   session hangs up (the host's port disappears).
//!
//! Time charged: SPM erase and write take the chip's page time each (the CPU waits in
//! `boot_spm_busy_wait`), EEPROM bytes the chip's EEPROM time, the link is native USB CDC.

use std::time::Duration;

use super::chip::Spm;
use super::programmer_board::{
    BoardModel, BoardState, CATERINA_BOOT_BYTES, CaterinaVariant, ProgrammerBoard,
};
use super::serial::{
    EmulatorHandle, FirmwareIo, SerialFirmware, SerialTiming, ServeOptions, Stop, spawn_in_process,
};
use super::socket::{SharedSocket, lock};
use crate::catalog::UsbId;
use crate::part::FuseKind;
use crate::transport::MemoryLink;

/// `SOFTWARE_IDENTIFIER` as sent: its first 7 characters.
const SOFTWARE_ID: &[u8; 7] = b"CATERIN";
/// `BOOTLOADER_VERSION_MAJOR`, `_MINOR` as ASCII digits.
const VERSION: [u8; 2] = [b'1', b'0'];
/// What `t` lists: the ATmega128's AVR910 device code, for AVRProg's sake.
const DEVICE_CODE: u8 = 0x44;
/// Firmware time per byte moved through the CDC endpoint.
const BYTE_NS: u64 = 2_000;

type Step<T = ()> = Result<T, Stop>;

/// The Caterina bootloader serving one bootloader session of a board.
pub struct CaterinaFirmware {
    board: ProgrammerBoard,
    session: u64,
    /// `CurrAddress`: a byte address (the host's word address × 2).
    address: u32,
}

impl CaterinaFirmware {
    /// Caterina running session `session` of `board` (see [`ProgrammerBoard::session`]).
    /// Serve it with the board's socket.
    pub fn new(board: ProgrammerBoard, session: u64) -> Self {
        CaterinaFirmware {
            board,
            session,
            address: 0,
        }
    }

    fn command(&mut self, io: &mut FirmwareIo, command: u8) -> Step {
        match command {
            b'E' => {
                self.board.bootloader_exit_requested();
                io.write(b"\r");
            }
            b'T' => {
                io.getch()?;
                io.write(b"\r");
            }
            b'L' | b'P' => io.write(b"\r"),
            b't' => io.write(&[DEVICE_CODE, 0x00]),
            b'a' => io.write(b"Y"),
            b'A' => {
                let high = u32::from(io.getch()?);
                let low = u32::from(io.getch()?);
                self.address = (high << 9) | (low << 1);
                io.write(b"\r");
            }
            b'p' => io.write(b"S"),
            b'S' => io.write(SOFTWARE_ID),
            b'V' => io.write(&VERSION),
            b's' => {
                let signature = self.chip(io, |c| c.part().signature);
                io.write(&[signature[2], signature[1], signature[0]]);
            }
            b'e' => {
                self.erase_application(io);
                io.write(b"\r");
            }
            b'r' => self.fuse(io, FuseKind::Lock),
            b'F' => self.fuse(io, FuseKind::Low),
            b'N' => self.fuse(io, FuseKind::High),
            b'Q' => self.fuse(io, FuseKind::Extended),
            b'b' => {
                let [high, low] = (self.page_size(io) as u16).to_be_bytes();
                io.write(&[b'Y', high, low]);
            }
            b'B' | b'g' => {
                self.board.bootloader_activity();
                self.block(io, command)?;
            }
            b'C' => {
                // boot_page_fill(CurrAddress, byte): the whole word, high byte 0.
                let value = io.getch()?;
                let addr = self.address;
                self.chip(io, |c| c.spm_fill(addr, u16::from(value)));
                io.write(b"\r");
            }
            b'c' => {
                let value = io.getch()?;
                let addr = self.address | 1;
                self.chip(io, |c| c.spm_fill(addr, u16::from(value)));
                self.address += 2;
                io.write(b"\r");
            }
            b'm' => {
                self.write_page(io, self.address)?;
                io.write(b"\r");
            }
            b'R' => {
                let addr = self.address;
                let word = [self.flash_byte(io, addr + 1), self.flash_byte(io, addr)];
                io.write(&word);
            }
            b'D' => {
                let value = io.getch()?;
                self.eeprom_write(io, value);
                io.write(b"\r");
            }
            b'd' => {
                let value = self.eeprom_byte(io);
                io.write(&[value]);
            }
            // ESC: the sync character, silently ignored.
            27 => {}
            _ => io.write(b"?"),
        }
        Ok(())
    }

    /// `ReadWriteMemoryBlock`.
    fn block(&mut self, io: &mut FirmwareIo, command: u8) -> Step {
        let size = u16::from_be_bytes([io.getch()?, io.getch()?]);
        let memory = io.getch()?;
        if memory != b'E' && memory != b'F' {
            io.write(b"?");
            return Ok(());
        }
        if command == b'g' {
            let mut high = false;
            for _ in 0..size {
                let value = if memory == b'F' {
                    let value = self.flash_byte(io, self.address | u32::from(high));
                    if high {
                        self.address += 2;
                    }
                    high = !high;
                    value
                } else {
                    self.eeprom_byte(io)
                };
                io.write(&[value]);
            }
            io.count_page_read();
            return Ok(());
        }
        if memory == b'E' {
            for _ in 0..size {
                let value = io.getch()?;
                self.eeprom_write(io, value);
            }
            io.write(b"\r");
            return Ok(());
        }
        let page_start = self.address;
        self.chip(io, |c| c.spm_erase_page(page_start));
        self.charge_spm(io);
        let mut low = 0u8;
        let mut high = false;
        for _ in 0..size {
            let value = io.getch()?;
            io.delay_ns(BYTE_NS);
            if high {
                let addr = self.address;
                let word = u16::from_le_bytes([low, value]);
                self.chip(io, |c| c.spm_fill(addr, word));
                self.address += 2;
            } else {
                low = value;
            }
            high = !high;
        }
        self.write_page(io, page_start)?;
        io.write(b"\r");
        Ok(())
    }

    /// `boot_page_write` and the wait; a write that changed the bootloader's own code
    /// crashes it.
    fn write_page(&mut self, io: &mut FirmwareIo, addr: u32) -> Step {
        let own_code = |c: &mut super::chip::EmulatedChip| {
            let start = c.boot_section_start() as usize;
            c.flash()[start..].to_vec()
        };
        let before = self.chip(io, own_code);
        let outcome = self.chip(io, |c| c.spm_write_page(addr));
        self.charge_spm(io);
        if outcome == Spm::Done && self.chip(io, own_code) != before {
            self.board.bootloader_crashed();
            return Err(Stop::HungUp);
        }
        Ok(())
    }

    /// `e`: every page below `BOOT_START_ADDR`, erased and written back empty.
    fn erase_application(&mut self, io: &mut FirmwareIo) {
        let (flash_size, page) = self.chip(io, |c| (c.part().flash.size, c.part().flash.page_size));
        let boot_start = flash_size.saturating_sub(CATERINA_BOOT_BYTES);
        for addr in (0..boot_start).step_by(page as usize) {
            self.chip(io, |c| {
                c.spm_erase_page(addr);
                c.spm_write_page(addr);
            });
            self.charge_spm(io);
            self.charge_spm(io);
        }
    }

    fn fuse(&mut self, io: &mut FirmwareIo, kind: FuseKind) {
        let value = self.chip(io, |c| c.fuse(kind).unwrap_or(0xFF));
        io.write(&[value]);
    }

    fn flash_byte(&mut self, io: &mut FirmwareIo, addr: u32) -> u8 {
        io.delay_ns(BYTE_NS);
        self.chip(io, |c| {
            let flash = c.flash();
            flash[addr as usize % flash.len()]
        })
    }

    /// `eeprom_read_byte(CurrAddress >> 1)`, then the address moves on.
    fn eeprom_byte(&mut self, io: &mut FirmwareIo) -> u8 {
        let addr = (self.address >> 1) as usize;
        self.address += 2;
        io.delay_ns(BYTE_NS);
        self.chip(io, |c| {
            let eeprom = c.eeprom();
            eeprom[addr % eeprom.len()]
        })
    }

    /// `eeprom_write_byte(CurrAddress >> 1, value)`, then the address moves on.
    fn eeprom_write(&mut self, io: &mut FirmwareIo, value: u8) {
        let addr = self.address >> 1;
        self.address += 2;
        let time = self.chip(io, |c| {
            c.self_write_eeprom(addr, value);
            c.busy_times().eeprom
        });
        io.delay(time);
    }

    /// The CPU waits out one SPM erase or write.
    fn charge_spm(&mut self, io: &mut FirmwareIo) {
        let time = self.chip(io, |c| c.busy_times().flash_page);
        io.delay(time);
    }

    fn page_size(&mut self, io: &mut FirmwareIo) -> u32 {
        self.chip(io, |c| c.part().flash.page_size)
    }

    /// Runs `f` on the board's chip (the socket lock is released before returning, so the
    /// board's state machine can be asked afterwards).
    fn chip<T>(&self, io: &FirmwareIo, f: impl FnOnce(&mut super::chip::EmulatedChip) -> T) -> T
    where
        T: Default,
    {
        let mut socket = lock(io.socket());
        socket.chip_mut().map(f).unwrap_or_default()
    }
}

/// Serves an Arduino Caterina, already in its bootloader, on `socket`'s chip in-process (for
/// `-c avr109 -P emulated`: the keyboard's own MCU runs the bootloader). Returns the host's
/// end of the link and the emulator, which stops when dropped.
pub fn serve_on_socket(socket: SharedSocket) -> (MemoryLink, EmulatorHandle) {
    let board = ProgrammerBoard::with_socket(
        socket.clone(),
        BoardModel::Caterina {
            usb: UsbId::new(0x2341, 0x0036),
            variant: CaterinaVariant::Arduino,
        },
        BoardState::Bootloader,
    );
    let firmware = CaterinaFirmware::new(board.clone(), board.session());
    spawn_in_process(
        Box::new(firmware),
        socket,
        crate::bootload::avr109_programmer::DEFAULT_BAUD,
        ServeOptions::default(),
    )
}

impl SerialFirmware for CaterinaFirmware {
    fn name(&self) -> &'static str {
        "Caterina"
    }

    /// Native USB CDC, like every ATmega32U4 board: the baud rate is ignored.
    fn timing(&self) -> SerialTiming {
        SerialTiming::UsbCdc {
            turnaround_ns: 1_000_000,
            packet_ns: 64_000,
        }
    }

    /// `while (RunBootloader) CDC_Task()`: one command per loop, until the board has left
    /// this bootloader session.
    fn run(&mut self, io: &mut FirmwareIo) -> Result<(), Stop> {
        loop {
            let command = io.getch()?;
            if !self.board.bootloader_running(self.session) {
                // USB_Detach: whoever still has the port open finds it gone.
                return Err(Stop::HungUp);
            }
            io.delay(Duration::from_micros(20));
            self.command(io, command)?;
        }
    }
}
