//! The emulated AVR target, instruction by instruction, for every part in the database.

use std::time::Duration;

use isp_toolbox::emulate::chip::{ChipConfig, EmulatedChip, FuseValues, LockMode};
use isp_toolbox::isp;
use isp_toolbox::part::{FuseKind, Part, PartDb};
use proptest::prelude::*;

/// Below the limit of every factory clock (1 MHz CPU → 250 kHz).
const SAFE_SCK: u32 = 100_000;

fn parts() -> &'static [Part] {
    PartDb::builtin().unwrap().all()
}

fn part(name: &str) -> &'static Part {
    PartDb::builtin().unwrap().find(name).unwrap()
}

/// RESET low, the datasheet's 20 ms, Programming Enable; returns the PE response.
fn enter(chip: &mut EmulatedChip) -> [u8; 4] {
    chip.set_reset(true);
    chip.advance(Duration::from_millis(20));
    chip.transfer(isp::programming_enable(), SAFE_SCK)
}

fn entered(chip: &mut EmulatedChip) {
    let response = enter(chip);
    assert!(
        isp::in_sync(response),
        "{}: no PE echo: {response:02X?}",
        chip.part().name
    );
}

fn send(chip: &mut EmulatedChip, cmd: [u8; 4]) -> [u8; 4] {
    chip.transfer(cmd, SAFE_SCK)
}

fn read(chip: &mut EmulatedChip, cmd: [u8; 4]) -> u8 {
    send(chip, cmd)[3]
}

/// Waits out the running operation, as a driver waiting the datasheet delay would.
fn wait_ready(chip: &mut EmulatedChip) {
    if let Some(until) = chip.busy_until() {
        chip.advance(until - chip.now());
    }
    assert!(!chip.is_busy());
}

fn fresh_in_mode(part: &Part) -> EmulatedChip {
    let mut chip = EmulatedChip::factory_fresh(part);
    entered(&mut chip);
    chip
}

fn write_flash_page(chip: &mut EmulatedChip, byte_addr: u32, data: &[u8]) {
    for (i, &b) in data.iter().enumerate() {
        send(chip, isp::load_flash_page_byte(byte_addr + i as u32, b));
    }
    send(chip, isp::write_flash_page(byte_addr));
}

fn read_flash(chip: &mut EmulatedChip, byte_addr: u32, len: u32) -> Vec<u8> {
    (byte_addr..byte_addr + len)
        .map(|a| read(chip, isp::read_flash_byte(a)))
        .collect()
}

fn pattern(len: u32, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

// ----- framing, echo, programming enable --------------------------------------------------

#[test]
fn the_shift_register_echoes_the_previous_byte() {
    for part in parts() {
        let mut chip = EmulatedChip::factory_fresh(part);
        chip.set_reset(true);
        assert_eq!(
            chip.transfer(isp::programming_enable(), SAFE_SCK),
            [0x00, 0xAC, 0x53, 0x00]
        );
        // A write-type instruction echoes cmd[2] last; byte 0 is the previous cmd[3].
        let response = send(&mut chip, [0xAC, 0xA0, 0x5A, 0xFF]);
        assert_eq!(response, [0x00, 0xAC, 0xA0, 0x5A], "{}", part.name);
        wait_ready(&mut chip);
        let response = send(&mut chip, isp::read_signature(1));
        assert_eq!(response[..3], [0xFF, 0x30, 0x00], "{}", part.name);
        assert_eq!(response[3], part.signature[1], "{}", part.name);
    }
}

#[test]
fn nothing_but_the_echo_before_programming_enable() {
    for part in parts() {
        let mut chip = EmulatedChip::factory_fresh(part);
        chip.set_reset(true);
        let lfuse = chip.fuse(FuseKind::Low);
        // Signature index 0 is 0x1E; without PE the echo of cmd[2] (0x00) comes back instead.
        assert_eq!(
            read(&mut chip, isp::read_signature(0)),
            0x00,
            "{}",
            part.name
        );
        send(&mut chip, isp::write_fuse(FuseKind::Low, 0x00));
        send(&mut chip, isp::chip_erase());
        assert_eq!(chip.fuse(FuseKind::Low), lfuse);
        assert!(!chip.is_busy());
        assert_eq!(chip.stats().fuse_writes, 0);
        assert_eq!(chip.stats().chip_erases, 0);
        assert!(!chip.programming_enabled());
    }
}

#[test]
fn signature_bytes_come_from_the_part_data() {
    for part in parts() {
        let mut chip = fresh_in_mode(part);
        let signature: Vec<u8> = (0..3)
            .map(|i| read(&mut chip, isp::read_signature(i)))
            .collect();
        assert_eq!(signature, part.signature, "{}", part.name);
    }
}

#[test]
fn calibration_bytes_are_per_board() {
    for part in parts() {
        let count = part.calibration_bytes;
        let board = |first: u8| {
            let config = ChipConfig {
                calibration: Some((0..count).map(|i| first + i).collect()),
                ..ChipConfig::default()
            };
            let mut chip = EmulatedChip::new(part, config).unwrap();
            entered(&mut chip);
            (0..count)
                .map(|i| read(&mut chip, isp::read_calibration(i)))
                .collect::<Vec<u8>>()
        };
        let a = board(0x40);
        let b = board(0x90);
        assert_eq!(a, (0..count).map(|i| 0x40 + i).collect::<Vec<_>>());
        assert_ne!(a, b, "{}: two boards must be told apart", part.name);
    }
    assert_eq!(part("m32a").calibration_bytes, 4);
}

#[test]
fn a_desynced_chip_answers_only_after_a_reset_pulse() {
    for part in parts() {
        let mut chip = fresh_in_mode(part);
        chip.inject_desync();
        let response = send(&mut chip, isp::programming_enable());
        assert_ne!(response[2], 0x53, "{}", part.name);
        // Nothing executes: the fuse write is lost.
        send(&mut chip, isp::write_fuse(FuseKind::Low, 0xFF));
        assert_eq!(chip.stats().fuse_writes, 0, "{}", part.name);
        // RESET held: still out of sync.
        assert_ne!(send(&mut chip, isp::programming_enable())[2], 0x53);
        chip.set_reset(false);
        chip.advance(Duration::from_micros(100));
        assert!(isp::in_sync(enter(&mut chip)), "{}", part.name);
    }
}

#[test]
fn reset_asserted_while_sck_is_high_starts_out_of_sync() {
    for part in parts() {
        let mut chip = EmulatedChip::factory_fresh(part);
        chip.set_sck_level(true);
        assert!(!isp::in_sync(enter(&mut chip)), "{}", part.name);
        // SCK is low again after the bytes; a positive RESET pulse resynchronises (§1.2).
        chip.set_reset(false);
        assert!(isp::in_sync(enter(&mut chip)), "{}", part.name);

        // Power-up with RESET asserted and SCK high: out of sync until the pulse.
        chip.set_sck_level(true);
        chip.power_cycle();
        chip.set_sck_level(false);
        assert!(!chip.in_sync());
        assert!(!isp::in_sync(send(&mut chip, isp::programming_enable())));
        chip.set_reset(false);
        assert!(isp::in_sync(enter(&mut chip)));
    }
}

#[test]
fn releasing_reset_leaves_programming_mode() {
    for part in parts() {
        let mut chip = fresh_in_mode(part);
        chip.set_reset(false);
        assert!(!chip.programming_enabled());
        assert_eq!(send(&mut chip, isp::read_signature(0)), [0xFF; 4]);
        assert_eq!(send(&mut chip, isp::programming_enable()), [0xFF; 4]);
        // Back in RESET the chip needs Programming Enable again.
        chip.set_reset(true);
        assert_eq!(
            read(&mut chip, isp::read_signature(0)),
            0x00,
            "{}",
            part.name
        );
        entered(&mut chip);
        assert_eq!(read(&mut chip, isp::read_signature(0)), 0x1E);
        assert_eq!(chip.stats().isp_instructions, 4);
    }
}

// ----- chip erase -------------------------------------------------------------------------

fn loaded(part: &Part, hfuse: u8, lock: u8) -> EmulatedChip {
    let config = ChipConfig {
        fuses: Some(FuseValues {
            lfuse: 0xFF,
            hfuse,
            efuse: None,
        }),
        lock,
        flash: Some(pattern(part.flash.size, 1)),
        eeprom: Some(pattern(part.eeprom.size, 2)),
        ..ChipConfig::default()
    };
    EmulatedChip::new(part, config).unwrap()
}

#[test]
fn chip_erase_clears_flash_eeprom_and_lock_but_not_fuses() {
    for part in parts() {
        // EESAVE unprogrammed (hfuse bit 3 = 1): EEPROM is erased too; locked, yet erasable.
        let mut chip = loaded(part, 0xD9, 0xEC);
        entered(&mut chip);
        let fuses_before = FuseKind::ALL.map(|k| chip.fuse(k));
        send(&mut chip, isp::chip_erase());
        // The erase starts when the instruction's last byte is in.
        let start = chip.now();
        assert!(chip.flash().iter().all(|&b| b == 0xFF), "{}", part.name);
        assert!(chip.eeprom().iter().all(|&b| b == 0xFF), "{}", part.name);
        assert_eq!(chip.fuse(FuseKind::Lock), Some(0xFF));
        assert_eq!(chip.fuse(FuseKind::Low), fuses_before[0]);
        assert_eq!(chip.fuse(FuseKind::High), fuses_before[1]);
        assert_eq!(chip.fuse(FuseKind::Extended), fuses_before[2]);
        assert_eq!(
            chip.busy_until(),
            Some(start + chip.busy_times().chip_erase),
            "{}",
            part.name
        );
        assert_eq!(chip.stats().chip_erases, 1);
    }
}

#[test]
fn eesave_keeps_eeprom_and_acts_immediately() {
    for part in parts() {
        // Programmed in the config.
        let mut chip = loaded(part, 0xD1, 0xFF);
        entered(&mut chip);
        send(&mut chip, isp::chip_erase());
        assert_eq!(chip.eeprom(), pattern(part.eeprom.size, 2), "{}", part.name);
        assert!(chip.flash().iter().all(|&b| b == 0xFF));

        // Programmed in this session, no re-latch: the erase right after already keeps EEPROM.
        let mut chip = loaded(part, 0xD9, 0xFF);
        entered(&mut chip);
        send(&mut chip, isp::write_fuse(FuseKind::High, 0xD1));
        wait_ready(&mut chip);
        send(&mut chip, isp::chip_erase());
        assert_eq!(chip.eeprom(), pattern(part.eeprom.size, 2), "{}", part.name);
    }
}

// ----- flash ------------------------------------------------------------------------------

#[test]
fn page_writes_only_clear_bits() {
    for part in parts() {
        let page = part.flash.page_size;
        let mut chip = fresh_in_mode(part);
        let addr = part.flash.size - 2 * page;
        write_flash_page(&mut chip, addr, &vec![0xF0; page as usize]);
        wait_ready(&mut chip);
        assert_eq!(read_flash(&mut chip, addr, page), vec![0xF0; page as usize]);
        write_flash_page(&mut chip, addr, &vec![0x3C; page as usize]);
        wait_ready(&mut chip);
        assert_eq!(
            read_flash(&mut chip, addr, page),
            vec![0x30; page as usize],
            "{}: an unerased page ANDs",
            part.name
        );
        assert_eq!(chip.stats().flash_pages_written, 2);
    }
}

#[test]
fn the_page_buffer_is_blank_after_a_write() {
    for part in parts() {
        let page = part.flash.page_size;
        let mut chip = fresh_in_mode(part);
        let data = pattern(page, 9);
        write_flash_page(&mut chip, 0, &data);
        wait_ready(&mut chip);
        // Writing the next page without loading anything programs 0xFF: nothing changes.
        send(&mut chip, isp::write_flash_page(page));
        wait_ready(&mut chip);
        assert_eq!(read_flash(&mut chip, 0, page), data, "{}", part.name);
        assert_eq!(
            read_flash(&mut chip, page, page),
            vec![0xFF; page as usize],
            "{}",
            part.name
        );
    }
}

#[test]
fn flash_addresses_are_masked() {
    for part in parts() {
        let page = part.flash.page_size;
        let page_words = page / 2;
        let flash_words = part.flash.size / 2;
        let mut chip = fresh_in_mode(part);
        // Word offsets beyond the page wrap into it: offset page_words + 1 is offset 1.
        let offset = (page_words + 1) as u8;
        send(&mut chip, [isp::op::LOAD_PAGE_LO, 0x00, offset, 0x12]);
        send(&mut chip, [isp::op::LOAD_PAGE_HI, 0x00, offset, 0x34]);
        // Write Page ignores the low bits: word base + 3 programs the page at base.
        let base = page_words * 5;
        let word = base + 3;
        send(
            &mut chip,
            [isp::op::WRITE_PAGE, (word >> 8) as u8, word as u8, 0x00],
        );
        wait_ready(&mut chip);
        let at = (base as usize + 1) * 2;
        assert_eq!(chip.flash()[at..at + 2], [0x12, 0x34], "{}", part.name);
        // Reads wrap at the flash size; on 64 K-word parts the extended byte is masked off.
        let wrapped = u64::from(flash_words) + u64::from(base) + 1;
        send(&mut chip, isp::load_extended_address(wrapped as u32));
        let low = read(
            &mut chip,
            [isp::op::READ_LO, (wrapped >> 8) as u8, wrapped as u8, 0x00],
        );
        let high = read(
            &mut chip,
            [isp::op::READ_HI, (wrapped >> 8) as u8, wrapped as u8, 0x00],
        );
        assert_eq!([low, high], [0x12, 0x34], "{}", part.name);
    }
}

// ----- EEPROM -----------------------------------------------------------------------------

#[test]
fn eeprom_byte_writes_replace_the_value() {
    for part in parts() {
        let config = ChipConfig {
            eeprom: Some(vec![0x0F; part.eeprom.size as usize]),
            ..ChipConfig::default()
        };
        let mut chip = EmulatedChip::new(part, config).unwrap();
        entered(&mut chip);
        let last = part.eeprom.size - 1;
        // Erase + write: 0x0F becomes 0xF0 (a flash-style AND would give 0x00).
        send(&mut chip, isp::write_eeprom(last, 0xF0));
        wait_ready(&mut chip);
        assert_eq!(
            read(&mut chip, isp::read_eeprom(last)),
            0xF0,
            "{}",
            part.name
        );
        // Addresses wrap at the EEPROM size.
        send(&mut chip, isp::write_eeprom(part.eeprom.size + 7, 0x77));
        wait_ready(&mut chip);
        assert_eq!(chip.eeprom()[7], 0x77, "{}", part.name);
        assert_eq!(
            read(&mut chip, isp::read_eeprom(part.eeprom.size + 7)),
            0x77
        );
        assert_eq!(chip.stats().eeprom_writes, 2);
    }
}

#[test]
fn eeprom_pages_where_the_part_has_them() {
    for part in parts() {
        let page = part.eeprom.page_size;
        let mut chip = fresh_in_mode(part);
        let addr = part.eeprom.size - page;
        let data = pattern(page, 0x40);
        for (i, &b) in data.iter().enumerate() {
            // The offset is masked to the page size: send it with page bits set.
            send(&mut chip, isp::load_eeprom_page_byte(addr + i as u32, b));
        }
        send(&mut chip, isp::write_eeprom_page(addr));
        wait_ready(&mut chip);
        let page_bytes = &chip.eeprom()[addr as usize..(addr + page) as usize];
        if part.eeprom_page_ops {
            assert_eq!(page_bytes, data, "{}", part.name);
            assert_eq!(chip.stats().eeprom_writes, 1);
            assert_eq!(chip.stats().unknown_instructions, 0);
        } else {
            // ATmega32A: C1/C2 are not in its instruction set.
            assert!(page_bytes.iter().all(|&b| b == 0xFF), "{}", part.name);
            assert_eq!(chip.stats().eeprom_writes, 0);
            assert_eq!(chip.stats().unknown_instructions, page as u64 + 1);
        }
    }
    assert!(!part("m32a").eeprom_page_ops);
}

// ----- fuses and lock bits ----------------------------------------------------------------

fn write_fuse(chip: &mut EmulatedChip, kind: FuseKind, value: u8) -> u8 {
    send(chip, isp::write_fuse(kind, value));
    wait_ready(chip);
    read(chip, isp::read_fuse(kind))
}

#[test]
fn unimplemented_fuse_bits_read_as_one() {
    let mut m328p = fresh_in_mode(part("m328p"));
    assert_eq!(write_fuse(&mut m328p, FuseKind::Extended, 0x05), 0xFD);
    // ATmega32U4: efuse bits 5..4 are stored (avrdude issue #446), 7..6 are not.
    let mut m32u4 = fresh_in_mode(part("m32u4"));
    assert_eq!(write_fuse(&mut m32u4, FuseKind::Extended, 0x03), 0xC3);
    assert_eq!(m32u4.fuse(FuseKind::Extended), Some(0xC3));

    for part in parts() {
        let mut chip = fresh_in_mode(part);
        for byte in part.fuse_bytes() {
            let stored = byte.mask | byte.stored_mask.unwrap_or(0);
            let spien = if byte.kind == FuseKind::High { 0x20 } else { 0 };
            let value = if byte.kind == FuseKind::Lock {
                0xC0
            } else {
                0x00
            };
            assert_eq!(
                write_fuse(&mut chip, byte.kind, value),
                (value | !stored) & !spien,
                "{} {}",
                part.name,
                byte.kind
            );
        }
        if !part.has_efuse() {
            // No efuse instructions: the read only echoes cmd[2].
            assert_eq!(read(&mut chip, isp::read_fuse(FuseKind::Extended)), 0x00);
            let before = chip.stats().fuse_writes;
            send(&mut chip, isp::write_fuse(FuseKind::Extended, 0x00));
            assert_eq!(chip.stats().fuse_writes, before);
            assert_eq!(chip.fuse(FuseKind::Extended), None);
        }
    }
}

#[test]
fn spien_cannot_be_unprogrammed_over_isp() {
    for part in parts() {
        let mut chip = fresh_in_mode(part);
        let spien = part.field(FuseKind::High, "SPIEN").unwrap();
        let read_back = write_fuse(&mut chip, FuseKind::High, 0xFF);
        assert_eq!(spien.get(read_back), 0, "{}", part.name);
        assert_eq!(read_back, !spien.mask);
    }
    // The datasheet's example: a 328P written with 0xFA reads back 0xDA.
    let mut chip = fresh_in_mode(part("m328p"));
    assert_eq!(write_fuse(&mut chip, FuseKind::High, 0xFA), 0xDA);
}

#[test]
fn lock_bits_program_block_and_scramble_until_erased() {
    for part in parts() {
        let flash = pattern(part.flash.size, 5);
        let eeprom = pattern(part.eeprom.size, 6);
        let config = ChipConfig {
            fuses: Some(FuseValues {
                lfuse: 0xFF,
                hfuse: 0xD9,
                efuse: None,
            }),
            flash: Some(flash.clone()),
            eeprom: Some(eeprom.clone()),
            ..ChipConfig::default()
        };
        let mut chip = EmulatedChip::new(part, config).unwrap();
        entered(&mut chip);

        // LB = 10: programming disabled, reads still fine.
        assert_eq!(write_fuse(&mut chip, FuseKind::Lock, 0xFE), 0xFE);
        assert_eq!(chip.lock_mode(), LockMode::ProgrammingDisabled);
        write_flash_page(&mut chip, 0, &vec![0x00; part.flash.page_size as usize]);
        send(&mut chip, isp::write_eeprom(0, 0x00));
        send(&mut chip, isp::write_fuse(FuseKind::Low, 0x00));
        assert!(!chip.is_busy());
        assert_eq!(chip.flash(), flash.as_slice(), "{}", part.name);
        assert_eq!(chip.eeprom(), eeprom.as_slice());
        assert_eq!(chip.fuse(FuseKind::Low), Some(0xFF));
        assert_eq!(chip.stats().locked_writes_ignored, 3);
        assert_eq!(read_flash(&mut chip, 0, 16), flash[..16]);

        // Lock bits only program: writing 0xEF ANDs to 0xEE, 0xFF changes nothing.
        assert_eq!(write_fuse(&mut chip, FuseKind::Lock, 0xEF), 0xEE);
        assert_eq!(write_fuse(&mut chip, FuseKind::Lock, 0xFF), 0xEE);

        // LB = 00: reads return garbage, deterministic and unrelated to the contents.
        assert_eq!(write_fuse(&mut chip, FuseKind::Lock, 0xFC), 0xEC);
        assert_eq!(chip.lock_mode(), LockMode::VerificationDisabled);
        let garbage = read_flash(&mut chip, 0, 64);
        assert_eq!(read_flash(&mut chip, 0, 64), garbage);
        let same = garbage.iter().zip(&flash).filter(|(a, b)| a == b).count();
        assert!(same < 8, "{}: locked reads leak the flash", part.name);
        let eeprom_read: Vec<u8> = (0..32)
            .map(|a| read(&mut chip, isp::read_eeprom(a)))
            .collect();
        let same = eeprom_read
            .iter()
            .zip(&eeprom)
            .filter(|(a, b)| a == b)
            .count();
        assert!(same < 8, "{}: locked reads leak the EEPROM", part.name);
        // Signature and fuses stay readable.
        assert_eq!(read(&mut chip, isp::read_signature(0)), 0x1E);
        assert_eq!(read(&mut chip, isp::read_fuse(FuseKind::Low)), 0xFF);

        // Only Chip Erase clears the lock.
        send(&mut chip, isp::chip_erase());
        wait_ready(&mut chip);
        assert_eq!(chip.fuse(FuseKind::Lock), Some(0xFF));
        assert_eq!(chip.lock_mode(), LockMode::Open);
        assert_eq!(read_flash(&mut chip, 0, 16), vec![0xFF; 16]);
    }
}

// ----- busy, polling, timing violations ---------------------------------------------------

#[test]
fn rdy_bsy_polling_tracks_the_programming_time() {
    for part in parts() {
        let mut chip = fresh_in_mode(part);
        write_flash_page(&mut chip, 0, &pattern(part.flash.page_size, 3));
        let done = chip.busy_until().unwrap();
        assert_eq!(done, chip.now() + chip.busy_times().flash_page);
        let poll = send(&mut chip, isp::poll_ready());
        if part.rdy_bsy_poll {
            assert!(isp::is_busy(poll), "{}", part.name);
            // The read happens after byte 3, 240 µs into the 320 µs instruction.
            chip.advance(done - chip.now() - Duration::from_millis(1));
            assert!(isp::is_busy(send(&mut chip, isp::poll_ready())));
            chip.advance(done.saturating_sub(chip.now()));
            assert!(!isp::is_busy(send(&mut chip, isp::poll_ready())));
            assert_eq!(chip.stats().unknown_instructions, 0);
        } else {
            // ATmega32A: F0 is unknown; the last byte is the echo of cmd[2].
            assert_eq!(poll, [0x00, 0xF0, 0x00, 0x00], "{}", part.name);
            assert_eq!(chip.stats().unknown_instructions, 1);
        }
        assert_eq!(chip.stats().busy_violations, 0, "{}", part.name);
    }
}

#[test]
fn instructions_while_busy_are_ignored_and_counted() {
    for part in parts() {
        let mut chip = fresh_in_mode(part);
        send(&mut chip, isp::write_eeprom(3, 0x42));
        assert!(chip.is_busy());
        // A second write, a page load, a fuse read and a signature read: all violations.
        send(&mut chip, isp::write_eeprom(4, 0x43));
        send(&mut chip, isp::load_flash_page_byte(0, 0x00));
        assert_eq!(read(&mut chip, isp::read_fuse(FuseKind::Low)), 0x00);
        assert_eq!(read(&mut chip, isp::read_signature(0)), 0x00);
        assert_eq!(chip.stats().busy_violations, 4, "{}", part.name);
        wait_ready(&mut chip);
        assert_eq!(chip.eeprom()[3..5], [0x42, 0xFF], "{}", part.name);
        // The lost page load left the buffer blank.
        send(&mut chip, isp::write_flash_page(0));
        wait_ready(&mut chip);
        assert_eq!(chip.flash()[0], 0xFF);
        assert_eq!(chip.stats().busy_violations, 4);
    }
}

#[test]
fn data_polling_returns_ff_inside_the_page_being_written() {
    for part in parts() {
        let page = part.flash.page_size;
        let mut chip = fresh_in_mode(part);
        let data = vec![0x55; page as usize];
        write_flash_page(&mut chip, page, &data);
        // Inside the page: polling reads, 0xFF, no violation.
        assert_eq!(read_flash(&mut chip, page, 4), [0xFF; 4]);
        assert_eq!(read_flash(&mut chip, 2 * page - 1, 1), [0xFF]);
        assert_eq!(chip.stats().busy_violations, 0, "{}", part.name);
        // Outside the page: a violation, and no data (the echo of the address byte).
        assert_eq!(read(&mut chip, isp::read_flash_byte(0)), 0x00);
        assert_eq!(chip.stats().busy_violations, 1);
        wait_ready(&mut chip);
        assert_eq!(read_flash(&mut chip, page, page), data, "{}", part.name);

        // EEPROM: the byte being written reads 0xFF until done.
        send(&mut chip, isp::write_eeprom(9, 0x21));
        assert_eq!(read(&mut chip, isp::read_eeprom(9)), 0xFF);
        wait_ready(&mut chip);
        assert_eq!(read(&mut chip, isp::read_eeprom(9)), 0x21);
        assert_eq!(chip.stats().busy_violations, 1);
    }
}

#[test]
fn waiting_the_datasheet_delay_is_exactly_enough() {
    for part in parts() {
        let mut chip = fresh_in_mode(part);
        let times = chip.busy_times();
        // Driver-side delays (the part database's) are never shorter than the chip's.
        assert!(times.fuse <= Duration::from_micros(part.timing.fuse_write_us.into()));
        // The next instruction executes after its 4 byte times (80 µs each at 100 kHz).
        let instruction_time = Duration::from_micros(4 * 80);
        send(&mut chip, isp::write_fuse(FuseKind::High, 0xD8));
        chip.advance(times.fuse - instruction_time - Duration::from_nanos(1));
        send(&mut chip, isp::write_fuse(FuseKind::High, 0xD9));
        assert_eq!(chip.stats().busy_violations, 1, "{}", part.name);
        let mut chip = fresh_in_mode(part);
        send(&mut chip, isp::write_fuse(FuseKind::High, 0xD8));
        chip.advance(times.fuse - instruction_time);
        send(&mut chip, isp::write_fuse(FuseKind::High, 0xD9));
        assert_eq!(chip.stats().busy_violations, 0, "{}", part.name);
        assert_eq!(chip.stats().fuse_writes, 2);
    }
}

// ----- SCK limit and fuse latching --------------------------------------------------------

#[test]
fn sck_limit_follows_ckdiv8_after_relatching() {
    // Factory-fresh ATmega32U4: internal RC 8 MHz / 8 = 1 MHz, so SCK up to 250 kHz.
    let mut chip = EmulatedChip::factory_fresh(part("m32u4"));
    assert_eq!(chip.cpu_hz(), Some(1_000_000));
    assert_eq!(chip.max_sck_hz(), Some(250_000));
    chip.set_reset(true);
    let too_fast = chip.transfer(isp::programming_enable(), 500_000);
    assert!(!isp::in_sync(too_fast));
    assert_eq!(chip.stats().sck_violations, 4);
    assert_eq!(chip.stats().max_sck_hz_seen, 500_000);
    // Inputs were sampled correctly: the chip did enable, only MISO was garbage.
    assert!(chip.programming_enabled());
    assert!(isp::in_sync(
        chip.transfer(isp::programming_enable(), 250_000)
    ));
    assert_eq!(chip.stats().sck_violations, 4);

    // lfuse 0xFF: crystal 8 MHz+, no CKDIV8. The change is latched only on re-entering.
    chip.transfer(isp::write_fuse(FuseKind::Low, 0xFF), 250_000);
    chip.advance(chip.busy_times().fuse);
    assert_eq!(chip.fuse(FuseKind::Low), Some(0xFF));
    assert_eq!(chip.max_sck_hz(), Some(250_000));
    let read_fast = chip.transfer(isp::read_signature(0), 2_000_000);
    assert_ne!(read_fast[3], 0x1E, "still 1 MHz: corrupted");
    assert_eq!(chip.stats().sck_violations, 8);

    chip.set_reset(false);
    chip.set_reset(true);
    assert_eq!(chip.cpu_hz(), Some(16_000_000));
    assert_eq!(chip.max_sck_hz(), Some(16_000_000 / 6));
    assert!(isp::in_sync(
        chip.transfer(isp::programming_enable(), 2_000_000)
    ));
    assert_eq!(chip.transfer(isp::read_signature(0), 2_000_000)[3], 0x1E);
    assert!(chip.transfer(isp::read_signature(0), 3_000_000)[3] != 0x1E);
    assert_eq!(chip.stats().sck_violations, 12);
}

#[test]
fn factory_clocks_allow_a_quarter_of_the_cpu_clock() {
    for part in parts() {
        let mut chip = EmulatedChip::factory_fresh(part);
        let max = chip
            .max_sck_hz()
            .expect("factory fuses select an internal RC");
        chip.set_reset(true);
        assert!(isp::in_sync(chip.transfer(isp::programming_enable(), max)));
        assert_eq!(chip.stats().sck_violations, 0, "{}", part.name);
        chip.set_reset(false);
        chip.set_reset(true);
        assert!(!isp::in_sync(
            chip.transfer(isp::programming_enable(), max + 1)
        ));
        assert_eq!(chip.stats().sck_violations, 4, "{}", part.name);
    }
}

#[test]
fn a_crystal_setting_without_a_crystal_leaves_the_chip_deaf() {
    let config = ChipConfig {
        crystal_hz: None,
        fuses: Some(FuseValues {
            lfuse: 0xFF,
            hfuse: 0xD9,
            efuse: None,
        }),
        ..ChipConfig::default()
    };
    let mut chip = EmulatedChip::new(part("m32u4"), config).unwrap();
    assert_eq!(chip.cpu_hz(), None);
    assert_eq!(enter(&mut chip), [0xFF; 4]);
    assert!(!chip.programming_enabled());
}

#[test]
fn power_cycle_keeps_memories_and_relatches_fuses() {
    let mut chip = fresh_in_mode(part("m328p"));
    write_flash_page(&mut chip, 0, &[0x11; 128]);
    wait_ready(&mut chip);
    send(&mut chip, isp::load_flash_page_byte(128, 0x22));
    send(&mut chip, isp::write_fuse(FuseKind::Low, 0xFF));
    wait_ready(&mut chip);
    assert_eq!(chip.cpu_hz(), Some(1_000_000));
    chip.power_cycle();
    assert!(!chip.programming_enabled());
    assert_eq!(chip.cpu_hz(), Some(16_000_000));
    entered(&mut chip);
    assert_eq!(chip.flash()[..128], [0x11; 128]);
    // The page buffer did not survive.
    send(&mut chip, isp::write_flash_page(128));
    wait_ready(&mut chip);
    assert_eq!(chip.flash()[128], 0xFF);
}

// ----- virtual time -----------------------------------------------------------------------

#[test]
fn every_byte_and_every_idle_moment_is_charged() {
    let mut chip = EmulatedChip::factory_fresh(part("m32u4"));
    assert_eq!(chip.now(), Duration::ZERO);
    chip.transfer(isp::programming_enable(), 125_000);
    // 4 bytes x 8 bits at 125 kHz = 256 µs, RESET asserted or not.
    assert_eq!(chip.now(), Duration::from_micros(256));
    chip.advance(Duration::from_millis(20));
    assert_eq!(chip.now_ns(), 20_256_000);
    chip.spi_byte(0x00, 3_000_000);
    assert_eq!(chip.now_ns(), 20_256_000 + 2_667);
    assert_eq!(chip.stats().bytes_clocked, 5);
    assert_eq!(chip.stats().isp_instructions, 0, "RESET was never asserted");
}

// ----- construction and dumps -------------------------------------------------------------

#[test]
fn bad_configs_are_refused_with_context() {
    let m32a = part("m32a");
    let cases = [
        (
            ChipConfig {
                calibration: Some(vec![0x80]),
                ..ChipConfig::default()
            },
            "4 calibration byte(s)",
        ),
        (
            ChipConfig {
                fuses: Some(FuseValues {
                    lfuse: 0xE1,
                    hfuse: 0x99,
                    efuse: Some(0xFF),
                }),
                ..ChipConfig::default()
            },
            "no extended fuse",
        ),
        (
            ChipConfig {
                fuses: Some(FuseValues {
                    lfuse: 0xE1,
                    hfuse: 0xB9,
                    efuse: None,
                }),
                ..ChipConfig::default()
            },
            "SPIEN",
        ),
        (
            ChipConfig::default().with_flash_at(0x7F00, &[0u8; 0x200]),
            "flash image is 33024 bytes",
        ),
        (
            ChipConfig {
                crystal_hz: Some(0),
                ..ChipConfig::default()
            },
            "0 Hz",
        ),
    ];
    for (config, expected) in cases {
        let error = EmulatedChip::new(m32a, config).unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
        assert!(error.contains("ATmega32A"), "{error}");
    }
}

#[test]
fn images_land_at_their_offsets() {
    let config = ChipConfig::default()
        .with_flash_at(0x7000, &[0x0C, 0x94])
        .with_eeprom_at(0x10, &[0xAB]);
    let mut chip = EmulatedChip::new(part("m32u4"), config).unwrap();
    entered(&mut chip);
    assert_eq!(read_flash(&mut chip, 0x6FFF, 3), [0xFF, 0x0C, 0x94]);
    assert_eq!(read(&mut chip, isp::read_eeprom(0x10)), 0xAB);
    assert_eq!(chip.flash().len(), 32 * 1024);
}

#[test]
fn dump_writes_memories_and_fuses() {
    let dir = tempfile::tempdir().unwrap();
    let config = ChipConfig {
        fuses: Some(FuseValues {
            lfuse: 0xFF,
            hfuse: 0xD8,
            efuse: Some(0xCB),
        }),
        ..ChipConfig::default()
    }
    .with_flash_at(1, &[0x12]);
    let chip = EmulatedChip::new(part("m32u4"), config).unwrap();
    let out = dir.path().join("m32u4");
    chip.dump(&out).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("fuses.json"))
            .unwrap()
            .trim(),
        r#"{"lfuse":"0xFF","hfuse":"0xD8","efuse":"0xCB","lock":"0xFF"}"#
    );
    let flash = std::fs::read(out.join("flash.bin")).unwrap();
    assert_eq!(flash.len(), 32 * 1024);
    assert_eq!(flash[..2], [0xFF, 0x12]);
    assert_eq!(
        std::fs::read(out.join("eeprom.bin")).unwrap(),
        vec![0xFF; 1024]
    );

    let m32a = EmulatedChip::factory_fresh(part("m32a"));
    m32a.dump(dir.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("fuses.json"))
            .unwrap()
            .trim(),
        r#"{"lfuse":"0xE1","hfuse":"0x99","lock":"0xFF"}"#
    );
    // Only the three files: no temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "m32u4")
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

// ----- no panics, whatever the programmer does --------------------------------------------

#[derive(Debug, Clone)]
enum Action {
    Byte(u8, u32),
    Instruction([u8; 4]),
    Reset(bool),
    SckLevel(bool),
    Advance(u64),
    Desync,
    PowerCycle,
}

fn action() -> impl Strategy<Value = Action> {
    // Opcodes the chip knows, so streams reach deep states, plus anything at all.
    let opcode = prop_oneof![
        Just(0xACu8),
        Just(0x40),
        Just(0x48),
        Just(0x4C),
        Just(0x4D),
        Just(0x20),
        Just(0x28),
        Just(0xC0),
        Just(0xC1),
        Just(0xC2),
        Just(0xA0),
        Just(0xF0),
        Just(0x50),
        Just(0x58),
        Just(0x30),
        Just(0x38),
        any::<u8>(),
    ];
    let second = prop_oneof![
        Just(0x53u8),
        Just(0x80),
        Just(0xE0),
        Just(0xA0),
        Just(0xA8),
        Just(0xA4),
        Just(0x08),
        any::<u8>(),
    ];
    prop_oneof![
        8 => (opcode, second, any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| Action::Instruction([a, b, c, d])),
        3 => (any::<u8>(), prop_oneof![Just(0u32), Just(100_000), any::<u32>()])
            .prop_map(|(b, hz)| Action::Byte(b, hz)),
        1 => any::<bool>().prop_map(Action::Reset),
        1 => any::<bool>().prop_map(Action::SckLevel),
        2 => prop_oneof![Just(u64::MAX), 0u64..20_000_000].prop_map(Action::Advance),
        1 => Just(Action::Desync),
        1 => Just(Action::PowerCycle),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_streams_never_panic_or_break_invariants(
        part_index in 0..parts().len(),
        actions in proptest::collection::vec(action(), 0..400),
    ) {
        let part = &parts()[part_index];
        let mut chip = EmulatedChip::factory_fresh(part);
        chip.set_reset(true);
        chip.transfer(isp::programming_enable(), SAFE_SCK);
        let mut last_now = chip.now_ns();
        for action in actions {
            match action {
                Action::Byte(b, hz) => { chip.spi_byte(b, hz); }
                Action::Instruction(cmd) => { chip.transfer(cmd, SAFE_SCK); }
                Action::Reset(asserted) => chip.set_reset(asserted),
                Action::SckLevel(high) => chip.set_sck_level(high),
                Action::Advance(ns) => chip.advance(Duration::from_nanos(ns)),
                Action::Desync => chip.inject_desync(),
                Action::PowerCycle => chip.power_cycle(),
            }
            prop_assert!(chip.now_ns() >= last_now);
            last_now = chip.now_ns();
        }
        prop_assert_eq!(chip.flash().len(), part.flash.size as usize);
        prop_assert_eq!(chip.eeprom().len(), part.eeprom.size as usize);
        for byte in part.fuse_bytes() {
            let stored = byte.mask | byte.stored_mask.unwrap_or(0);
            let value = chip.fuse(byte.kind).unwrap();
            prop_assert_eq!(value & !stored, !stored, "{} unstored bits", byte.kind);
        }
        let spien = part.field(FuseKind::High, "SPIEN").unwrap();
        prop_assert_eq!(spien.get(chip.fuse(FuseKind::High).unwrap()), 0);
    }
}
