//! HalfKay, the Teensy 2.0's HID bootloader, behind [`UsbFirmware`]: in-process for our
//! client, and through the libusb shim for Debian's teensy_loader_cli.
//!
//! HalfKay's source is not public; its behaviour here is what teensy_loader_cli (2.2) relies
//! on, with the gaps filled by stated choices:
//!
//! - It is a HID device 16C0:0478 (interface class 3; the shim binds usbhid to it, so the
//!   loader has to detach it).
//! - A HID SET_REPORT (0x21, 9, wValue 0x0200, wIndex 0) of exactly header + block bytes
//!   writes one block ([`crate::bootload::halfkay::Layout`]): the block's page is erased and
//!   written by SPM. The first block since the bootloader started also erases every page
//!   below HalfKay first (teensy_loader_cli always sends the first block "to erase the chip"
//!   and gives it a 5 s budget); that erase takes the chip's page time per page.
//! - The report with address 0xFFFF reboots into the new program.
//! - Choices: a block at or above the code size (HalfKay's own 512 bytes), an unaligned one,
//!   a report of another length and any other request stall (a protocol error for the host);
//!   after the reboot nothing answers (the device is gone).

use std::time::Duration;

use super::chip::EmulatedChip;
use super::programmer_board::ProgrammerBoard;
use super::socket::lock;
use super::usb::{Setup, UsbFirmware, UsbIdentity, UsbIo, UsbReply, UsbTiming};
use crate::bootload::halfkay::{HALFKAY_USB, Layout, REPORT_VALUE, SET_REPORT, TEENSY2};
use crate::transport::request_type;

/// HalfKay's work per block besides SPM (USB buffer handling), ns.
const BLOCK_OVERHEAD_NS: u64 = 200_000;

/// The HalfKay bootloader.
pub struct HalfKayFirmware {
    /// The board and the bootloader session this firmware serves; `None` when it runs alone
    /// (in the shim), where only the reboot ends it.
    board: Option<(ProgrammerBoard, u64)>,
    erased: bool,
    rebooted: bool,
    blocks_written: u64,
}

impl HalfKayFirmware {
    /// HalfKay serving `board`'s bootloader session, or standing alone.
    pub fn new(board: Option<(ProgrammerBoard, u64)>) -> Self {
        HalfKayFirmware {
            board,
            erased: false,
            rebooted: false,
            blocks_written: 0,
        }
    }

    /// Blocks written so far.
    pub fn blocks_written(&self) -> u64 {
        self.blocks_written
    }

    fn running(&self) -> bool {
        !self.rebooted
            && self
                .board
                .as_ref()
                .is_none_or(|(board, session)| board.bootloader_running(*session))
    }

    fn write_block(&mut self, layout: Layout, report: &[u8], io: &mut UsbIo) -> UsbReply {
        let Some(addr) = layout.decode_header([report[0], report[1]]) else {
            self.rebooted = true;
            if let Some((board, _)) = &self.board {
                board.bootloader_rebooted();
            }
            return UsbReply::Data(Vec::new());
        };
        if addr >= layout.code_size || !addr.is_multiple_of(layout.block_size) {
            return UsbReply::Stall;
        }
        let first = !self.erased;
        self.erased = true;
        let page_time = {
            let mut socket = lock(io.socket());
            let Some(chip) = socket.chip_mut() else {
                return UsbReply::Stall;
            };
            let page = chip.part().flash.page_size;
            let mut pages = 0u32;
            if first {
                for page_addr in (0..layout.code_size).step_by(page as usize) {
                    chip.spm_erase_page(page_addr);
                    pages += 1;
                }
            }
            pages += program_block(chip, addr, &report[2..]);
            chip.busy_times().flash_page * pages
        };
        io.delay(page_time);
        io.delay_ns(BLOCK_OVERHEAD_NS);
        self.blocks_written += 1;
        UsbReply::Data(Vec::new())
    }
}

/// Erases and writes the pages of one block; returns how many SPM operations ran.
fn program_block(chip: &mut EmulatedChip, addr: u32, block: &[u8]) -> u32 {
    let page = chip.part().flash.page_size as usize;
    let mut operations = 0;
    for (i, chunk) in block.chunks(page).enumerate() {
        let page_addr = addr + (i * page) as u32;
        chip.spm_erase_page(page_addr);
        for (w, pair) in chunk.chunks(2).enumerate() {
            let word = u16::from_le_bytes([pair[0], pair.get(1).copied().unwrap_or(0xFF)]);
            chip.spm_fill(page_addr + 2 * w as u32, word);
        }
        chip.spm_write_page(page_addr);
        operations += 2;
    }
    operations
}

impl UsbFirmware for HalfKayFirmware {
    fn name(&self) -> &'static str {
        "HalfKay"
    }

    fn identity(&self) -> UsbIdentity {
        UsbIdentity {
            vid: HALFKAY_USB.vid,
            pid: HALFKAY_USB.pid,
            bcd_device: 0x0100,
            manufacturer: None,
            product: None,
            serial: None,
            interface_class: 0x03,
        }
    }

    /// Full speed: one control transfer per 1 ms frame, 64-byte packets.
    fn timing(&self) -> UsbTiming {
        UsbTiming {
            transfer_ns: 1_000_000,
            packet_ns: 50_000,
            packet_size: 64,
        }
    }

    fn control(&mut self, setup: &Setup, data_out: &[u8], io: &mut UsbIo) -> UsbReply {
        if !self.running() {
            // Rebooted: the device has left the bus.
            io.hang();
            return UsbReply::Stall;
        }
        let layout = lock(io.socket())
            .chip()
            .and_then(|c| Layout::for_part(&c.part().id))
            .unwrap_or(TEENSY2);
        let is_write = setup.request_type == request_type::CLASS_INTERFACE_OUT
            && setup.request == SET_REPORT
            && setup.value == REPORT_VALUE
            && setup.index == 0;
        if !is_write || data_out.len() != layout.report_len() {
            return UsbReply::Stall;
        }
        io.delay(Duration::from_micros(50));
        self.write_block(layout, data_out, io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulate::fault::Faults;
    use crate::emulate::programmer_board::{BoardConfig, BoardState, synthetic_application};
    use crate::emulate::usb::{EmulatedUsbDevice, EmulatedUsbLink};
    use crate::transport::UsbLink;

    fn setup() -> (ProgrammerBoard, EmulatedUsbLink) {
        let app = synthetic_application(crate::catalog::UsbId::new(0xFEED, 0x6060), 0, 0x400);
        let board =
            ProgrammerBoard::new(BoardConfig::teensy2(Some(app)).in_state(BoardState::Bootloader))
                .unwrap();
        let firmware = HalfKayFirmware::new(Some((board.clone(), board.session())));
        let device = EmulatedUsbDevice::new(Box::new(firmware), board.socket(), Faults::none());
        (board, EmulatedUsbLink::new(device.shared()))
    }

    fn send(link: &mut EmulatedUsbLink, report: &[u8]) -> crate::Result<usize> {
        link.control_out(0x21, 9, 0x0200, 0, report, Duration::from_millis(500))
    }

    #[test]
    fn the_first_block_erases_the_old_program() {
        let (board, mut link) = setup();
        assert_ne!(board.flash()[0x300], 0xFF, "an old program is there");
        let report = TEENSY2.block_report(0x80, &[0x11; 128]).unwrap();
        send(&mut link, &report).unwrap();
        let flash = board.flash();
        assert!(flash[0x80..0x100].iter().all(|&b| b == 0x11));
        assert!(
            flash[..0x80]
                .iter()
                .chain(&flash[0x100..0x7E00])
                .all(|&b| b == 0xFF)
        );
        assert_ne!(flash[0x7E00], 0xFF, "HalfKay's own code stays");
        // A later block does not erase again.
        let report = TEENSY2.block_report(0x200, &[0x22; 128]).unwrap();
        send(&mut link, &report).unwrap();
        assert!(board.flash()[0x80..0x100].iter().all(|&b| b == 0x11));
    }

    #[test]
    fn refuses_its_own_section_and_odd_reports() {
        let (board, mut link) = setup();
        let mut own = TEENSY2.boot_report();
        own[..2].copy_from_slice(&TEENSY2.header_bytes(0x7E00));
        assert!(send(&mut link, &own).is_err());
        assert!(send(&mut link, &[0u8; 20]).is_err());
        assert!(
            link.control_out(0x21, 10, 0, 0, &[], Duration::from_millis(100))
                .is_err()
        );
        assert_ne!(board.flash()[0x7E00], 0xFF);
    }

    #[test]
    fn the_reboot_report_starts_the_program_and_the_device_is_gone() {
        let (board, mut link) = setup();
        send(&mut link, &TEENSY2.block_report(0, &[0x0C, 0x94]).unwrap()).unwrap();
        send(&mut link, &TEENSY2.boot_report()).unwrap();
        assert_eq!(board.state(), BoardState::Application);
        let err = send(&mut link, &TEENSY2.boot_report()).unwrap_err();
        assert!(matches!(err, crate::Error::Timeout { .. }), "{err}");
    }
}
