//! Binary SPI mode, SPI1 (BP-FW `SPI.c` `binSPI`), byte for byte.
//!
//! | Command      | Reply                                                                 |
//! |--------------|-----------------------------------------------------------------------|
//! | `00`         | back to bit-bang mode (`BBIO1`, pins reset)                           |
//! | `01`         | `SPI1`                                                                |
//! | `02` / `03`  | CS low / high; `01`                                                   |
//! | `04` / `05`  | write-then-read, with / without CS: `wH wL rH rL`, then the write bytes; `00` at once if a count exceeds 4096, else after the transfer `01` and the read bytes |
//! | `06`         | AVR extended commands: `01`, then a sub-command: `00` → `01`; `01` → `01 00 01`; `02` + word address (4) + byte count (4) → `00` if address, count or their sum exceeds 0xFFFF, else `01` and the flash bytes; others → `00` |
//! | `0D` / `0E`  | sniffer: `01`; the next byte ends it (no traffic to sniff: the Bus Pirate is the only master) |
//! | `1x`         | bulk transfer of x+1 bytes: `01`, then one read byte per byte         |
//! | `4x`         | peripherals (power, pull-ups, AUX, CS); `01`                          |
//! | `6x`         | speed code x & 7; `01`                                                |
//! | `8x`         | output type, clock idle, edge, sample; `01`                           |
//! | others       | `00`                                                                  |
//!
//! Quirks kept on purpose: every speed (`6x`) and config (`8x`) command, and the end of the
//! sniffer, runs `spiSetup()`, which drives CS **high**: with RESET on CS the target leaves
//! programming mode. A write-then-read whose counts are too large answers `00` and then reads
//! its would-be data bytes as commands. `04` pulls CS low for the transfer and releases it
//! after. The bulk read checks a **word** address plus a **byte** count against 0xFFFF.
//!
//! Firmwares before 5.10 have no write-then-read, and builds without `AVR_EXTENDED_COMMANDS`
//! (the official 6.1, for example) no `06`; both answer those bytes as unknown commands (`00`).

use super::Features;
use super::pins::{CLK, CS, MISO, MOSI, Pins};
use super::timing::{COMMAND_NS, SPI_CALL_NS, WRITE_THEN_READ_GAP_NS, sck_hz};
use crate::emulate::clock::spi_byte_ns;
use crate::emulate::serial::FirmwareIo;
use crate::emulate::socket::MISO_FLOATING;

/// The mode's version string.
pub(super) const VERSION: &[u8] = b"SPI1";

/// `TERMINAL_BUFFER`: the largest write-then-read count.
pub(super) const WRITE_THEN_READ_MAX: usize = 4096;

/// What the mode loop does after a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SpiAction {
    /// Stay in SPI mode.
    Stay,
    /// `00`: back to bit-bang mode.
    Exit,
}

/// Bytes a command is still waiting for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Pending {
    #[default]
    Command,
    /// Bulk transfer: this many bytes still to clock.
    Bulk { left: u8 },
    /// Write-then-read header (`wH wL rH rL`).
    WriteThenReadCounts { with_cs: bool, counts: Vec<u8> },
    /// Write-then-read data.
    WriteThenReadData {
        with_cs: bool,
        write: usize,
        read: usize,
        data: Vec<u8>,
    },
    /// `06` accepted, waiting for the sub-command.
    AvrExtended,
    /// Bulk flash read: address and length bytes so far.
    BulkReadArgs { args: Vec<u8> },
    /// Sniffing until any byte arrives.
    Sniffer,
}

/// Binary SPI mode state (`spiSettings`, `modeConfig.speed`, `modeConfig.HiZ`).
#[derive(Debug, Clone)]
pub(super) struct Spi {
    speed: u8,
    clock_idle_high: bool,
    pending: Pending,
}

impl Spi {
    /// Enters the mode: speed code 1, CKP 0, CKE 1, SMP 0, HiZ (open-drain) outputs;
    /// `spiSetup()`; `SPI1`.
    pub fn enter(pins: &mut Pins, io: &mut FirmwareIo) -> Spi {
        pins.open_drain = true;
        let mut spi = Spi {
            speed: 1,
            clock_idle_high: false,
            pending: Pending::Command,
        };
        spi.setup(pins, io);
        io.write(VERSION);
        spi
    }

    /// The current speed code.
    pub fn speed_code(&self) -> u8 {
        self.speed
    }

    /// Handles one byte from the host.
    pub fn byte(
        &mut self,
        b: u8,
        features: Features,
        pins: &mut Pins,
        io: &mut FirmwareIo,
    ) -> SpiAction {
        io.delay_ns(COMMAND_NS);
        match std::mem::take(&mut self.pending) {
            Pending::Command => return self.command(b, features, pins, io),
            Pending::Bulk { left } => {
                let miso = self.clock(b, pins, io);
                io.write(&[miso]);
                if left > 1 {
                    self.pending = Pending::Bulk { left: left - 1 };
                }
            }
            Pending::WriteThenReadCounts {
                with_cs,
                mut counts,
            } => {
                counts.push(b);
                if counts.len() < 4 {
                    self.pending = Pending::WriteThenReadCounts { with_cs, counts };
                } else {
                    self.start_write_then_read(with_cs, &counts, pins, io);
                }
            }
            Pending::WriteThenReadData {
                with_cs,
                write,
                read,
                mut data,
            } => {
                data.push(b);
                if data.len() < write {
                    self.pending = Pending::WriteThenReadData {
                        with_cs,
                        write,
                        read,
                        data,
                    };
                } else {
                    self.write_then_read(with_cs, &data, read, pins, io);
                }
            }
            Pending::AvrExtended => self.avr_extended(b, io),
            Pending::BulkReadArgs { mut args } => {
                args.push(b);
                if args.len() < 8 {
                    self.pending = Pending::BulkReadArgs { args };
                } else {
                    self.bulk_flash_read(&args, pins, io);
                }
            }
            Pending::Sniffer => self.setup(pins, io),
        }
        SpiAction::Stay
    }

    fn command(
        &mut self,
        b: u8,
        features: Features,
        pins: &mut Pins,
        io: &mut FirmwareIo,
    ) -> SpiAction {
        match b >> 4 {
            0x0 => match b {
                0x00 => return SpiAction::Exit,
                0x01 => io.write(VERSION),
                0x02 | 0x03 => {
                    pins.set_latch(CS, b == 0x03, io);
                    io.write(&[0x01]);
                }
                0x04 | 0x05 if features.write_then_read => {
                    self.pending = Pending::WriteThenReadCounts {
                        with_cs: b == 0x04,
                        counts: Vec::with_capacity(4),
                    };
                }
                0x06 if features.avr_extended => {
                    io.write(&[0x01]);
                    self.pending = Pending::AvrExtended;
                }
                0x0D | 0x0E => {
                    io.write(&[0x01]);
                    self.pending = Pending::Sniffer;
                }
                _ => io.write(&[0x00]),
            },
            0x1 => {
                io.write(&[0x01]);
                self.pending = Pending::Bulk {
                    left: (b & 0x0F) + 1,
                };
            }
            0x4 => {
                peripherals(b, pins, io);
                io.write(&[0x01]);
            }
            0x6 => {
                self.speed = b & 0x07;
                self.setup(pins, io);
                io.write(&[0x01]);
            }
            0x8 => {
                // w: 1 = 3.3 V push-pull, 0 = HiZ; x: CKP; y: CKE; z: SMP.
                pins.open_drain = b & 0x08 == 0;
                self.clock_idle_high = b & 0x04 != 0;
                self.setup(pins, io);
                io.write(&[0x01]);
            }
            _ => io.write(&[0x00]),
        }
        SpiAction::Stay
    }

    /// `spiSetup()`: MOSI and CLK outputs (SCK at its idle level), MISO input, and CS driven
    /// high.
    fn setup(&mut self, pins: &mut Pins, io: &mut FirmwareIo) {
        pins.drive(MOSI, false, io);
        pins.drive(CLK, self.clock_idle_high, io);
        pins.release(MISO, io);
        pins.drive(CS, true, io);
    }

    /// `spiWriteByte()`: one byte at the current speed. With open-drain outputs and no
    /// pull-ups the lines never go high, so the target sees no clock and MISO floats.
    fn clock(&mut self, mosi: u8, pins: &Pins, io: &mut FirmwareIo) -> u8 {
        io.delay_ns(SPI_CALL_NS);
        let hz = sck_hz(self.speed);
        if pins.spi_lines_work() {
            io.spi_byte(mosi, hz)
        } else {
            io.delay_ns(spi_byte_ns(hz));
            MISO_FLOATING
        }
    }

    fn start_write_then_read(
        &mut self,
        with_cs: bool,
        counts: &[u8],
        pins: &mut Pins,
        io: &mut FirmwareIo,
    ) {
        let write = usize::from(u16::from_be_bytes([counts[0], counts[1]]));
        let read = usize::from(u16::from_be_bytes([counts[2], counts[3]]));
        if write > WRITE_THEN_READ_MAX || read > WRITE_THEN_READ_MAX {
            // The data bytes that follow are taken as commands.
            io.write(&[0x00]);
        } else if write == 0 {
            self.write_then_read(with_cs, &[], read, pins, io);
        } else {
            self.pending = Pending::WriteThenReadData {
                with_cs,
                write,
                read,
                data: Vec::with_capacity(write),
            };
        }
    }

    fn write_then_read(
        &mut self,
        with_cs: bool,
        data: &[u8],
        read: usize,
        pins: &mut Pins,
        io: &mut FirmwareIo,
    ) {
        if with_cs {
            pins.set_latch(CS, false, io);
        }
        for &b in data {
            self.clock(b, pins, io);
        }
        io.delay_ns(WRITE_THEN_READ_GAP_NS);
        let read_back: Vec<u8> = (0..read).map(|_| self.clock(0xFF, pins, io)).collect();
        if with_cs {
            pins.set_latch(CS, true, io);
        }
        io.write(&[0x01]);
        io.write(&read_back);
    }

    fn avr_extended(&mut self, sub: u8, io: &mut FirmwareIo) {
        match sub {
            0x00 => io.write(&[0x01]),
            0x01 => io.write(&[0x01, 0x00, 0x01]),
            0x02 => {
                self.pending = Pending::BulkReadArgs {
                    args: Vec::with_capacity(8),
                }
            }
            _ => io.write(&[0x00]),
        }
    }

    /// AVR extended `02`: reads `length` flash bytes from a word address, low byte first.
    fn bulk_flash_read(&mut self, args: &[u8], pins: &Pins, io: &mut FirmwareIo) {
        let start = u32::from_be_bytes([args[0], args[1], args[2], args[3]]);
        let length = u32::from_be_bytes([args[4], args[5], args[6], args[7]]);
        // FIXME in the firmware: a word address and a byte count against one limit.
        if start > 0xFFFF || length > 0xFFFF || start + length > 0xFFFF {
            io.write(&[0x00]);
            return;
        }
        io.write(&[0x01]);
        io.count_page_read();
        let mut word = start as u16;
        let mut left = length;
        while left > 0 {
            for opcode in [0x20u8, 0x28] {
                let [hi, lo] = word.to_be_bytes();
                self.clock(opcode, pins, io);
                self.clock(hi, pins, io);
                self.clock(lo, pins, io);
                let data = self.clock(0x00, pins, io);
                io.write(&[data]);
                left -= 1;
                if left == 0 {
                    break;
                }
            }
            word = word.wrapping_add(1);
        }
    }
}

/// `binIOperipheralset()`: `0100wxyz`, w = power, x = pull-ups, y = AUX, z = CS. CS "follows
/// the HiZ setting": high means an input in open-drain mode, a driven high otherwise.
fn peripherals(b: u8, pins: &mut Pins, io: &mut FirmwareIo) {
    pins.power = b & 0x08 != 0;
    pins.pullups = b & 0x04 != 0;
    pins.drive(super::pins::AUX, b & 0x02 != 0, io);
    if b & 0x01 == 0 {
        pins.drive(CS, false, io);
    } else if pins.open_drain {
        pins.release(CS, io);
    } else {
        pins.drive(CS, true, io);
    }
}
