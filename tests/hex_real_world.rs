//! Real-world Intel HEX files (Arduino's bootloaders, Debian package arduino-core-avr) checked
//! byte for byte against avr-objcopy (package binutils-avr). Both are installed by `.ci/run`;
//! without them these tests fail rather than pass silently.

use std::path::{Path, PathBuf};
use std::process::Command;

use isp_toolbox::Error;
use isp_toolbox::hex::{
    HexOptions, MemoryImage, Overlaps, read_bin, read_hex, read_hex_file, read_hex_with, to_bin,
    write_hex, write_hex_with,
};

const BOOTLOADERS: &str = "/usr/share/arduino/hardware/arduino/avr/bootloaders";
const SETUP: &str = "run .ci/run (it installs binutils-avr and arduino-core-avr), or install \
                     them with apt-get";

fn hex_files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}; {SETUP}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hex_files_under(&path, found);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("hex"))
        {
            found.push(path);
        }
    }
}

fn real_world_hex_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    hex_files_under(Path::new(BOOTLOADERS), &mut found);
    found.sort();
    assert!(
        found.len() >= 10,
        "expected Arduino's bootloader .hex files under {BOOTLOADERS}, found {}; {SETUP}",
        found.len()
    );
    found
}

/// Reads a real-world file. A few (Debian's oversized optiboot builds) have overlapping
/// records: the strict reader must refuse exactly those, for overlap and nothing else, and the
/// avrdude-compatible mode must read them as objcopy does.
fn read_real_world(path: &Path) -> MemoryImage {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.display().to_string();
    match read_hex_file(path) {
        Ok(image) => {
            assert_eq!(
                read_hex_with(&text, &name, Overlaps::LaterWins).unwrap(),
                image
            );
            image
        }
        Err(Error::Hex { reason, .. }) if reason.contains("overlap") => {
            read_hex_with(&text, &name, Overlaps::LaterWins).unwrap()
        }
        Err(other) => panic!("{name}: {other}"),
    }
}

fn objcopy(args: &[&str]) {
    let status = Command::new("avr-objcopy")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run avr-objcopy: {e}; {SETUP}"));
    assert!(status.success(), "avr-objcopy {args:?} failed");
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `avr-objcopy -I binary -O ihex` on `bin` and returns the text.
fn objcopy_bin_to_hex(dir: &Path, bin: &[u8]) -> String {
    let bin_path = dir.join("image.bin");
    let hex_path = dir.join("objcopy.hex");
    std::fs::write(&bin_path, bin).unwrap();
    objcopy(&[
        "-I",
        "binary",
        "-O",
        "ihex",
        path_str(&bin_path),
        path_str(&hex_path),
    ]);
    std::fs::read_to_string(hex_path).unwrap()
}

#[test]
fn hex_to_bin_matches_avr_objcopy() {
    let dir = tempfile::tempdir().unwrap();
    for file in real_world_hex_files() {
        let image = read_real_world(&file);
        assert!(!image.is_empty(), "{}", file.display());
        let ours = to_bin(&image).unwrap();

        let theirs_path = dir.path().join("objcopy.bin");
        // objcopy fills gaps between records with 0 unless told otherwise; erased flash is 0xFF.
        objcopy(&[
            "-I",
            "ihex",
            "-O",
            "binary",
            "--gap-fill",
            "0xFF",
            path_str(&file),
            path_str(&theirs_path),
        ]);
        let theirs = std::fs::read(&theirs_path).unwrap();
        // objcopy's binary starts at the lowest address, ours at 0.
        let start = image.start() as usize;
        assert!(
            ours[..start].iter().all(|&b| b == 0xFF),
            "{}: bytes below the image start",
            file.display()
        );
        assert_eq!(
            ours[start..],
            theirs[..],
            "{}: binary differs from avr-objcopy's",
            file.display()
        );
    }
}

#[test]
fn bin_to_hex_matches_avr_objcopy() {
    let dir = tempfile::tempdir().unwrap();
    for file in real_world_hex_files() {
        let bin = to_bin(&read_real_world(&file)).unwrap();
        let from_bin = read_bin(&bin, 0).unwrap();
        let theirs = objcopy_bin_to_hex(dir.path(), &bin);

        let name = file.display();
        assert_eq!(
            write_hex_with(&from_bin, HexOptions::objcopy()),
            theirs,
            "{name}: objcopy-style HEX differs"
        );
        let ours = write_hex(&from_bin);
        if from_bin.end() <= 0x1_0000 {
            // Below 64 KiB the only difference is the line ending.
            assert_eq!(ours, theirs.replace("\r\n", "\n"), "{name}: HEX differs");
        } else {
            // Above, objcopy uses type 02 records and we use 04: same bytes, other records.
            assert!(ours.contains(":02000004"), "{name}: no type 04 record");
        }
        // Either way objcopy's file reads back as the same image.
        assert_eq!(
            read_hex(&theirs, "objcopy.hex").unwrap(),
            from_bin,
            "{name}"
        );
        assert_eq!(read_hex(&ours, "ours.hex").unwrap(), from_bin, "{name}");
    }
}

#[test]
fn objcopy_style_matches_past_one_mebibyte() {
    // Past 1 MiB type 02 records cannot reach; objcopy switches to type 04 there.
    let mut state: u32 = 0x1234_5678;
    let bin: Vec<u8> = (0..0x11_0040)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let theirs = objcopy_bin_to_hex(dir.path(), &bin);
    let image = read_bin(&bin, 0).unwrap();
    assert_eq!(write_hex_with(&image, HexOptions::objcopy()), theirs);
    assert_eq!(read_hex(&theirs, "objcopy.hex").unwrap(), image);
}

#[test]
fn most_real_world_files_read_strictly() {
    let files = real_world_hex_files();
    let strict = files.iter().filter(|f| read_hex_file(f).is_ok()).count();
    // All but the oversized optiboot builds (two in Debian 12's arduino-core-avr).
    assert!(
        strict + 2 >= files.len(),
        "only {strict} of {} read",
        files.len()
    );
}

#[test]
fn known_bootloader_reads_as_expected() {
    // ATmegaBOOT for the ATmega328: a 2 KiB boot section from 0x7800, 02 never used.
    let path = Path::new(BOOTLOADERS).join("atmega/ATmegaBOOT_168_atmega328.hex");
    let image = read_hex_file(&path).unwrap_or_else(|e| panic!("{e}; {SETUP}"));
    assert_eq!(image.start(), 0x7800);
    assert_eq!(image.end(), 0x7DC8);
    assert_eq!(image.range_string(), "0x7800-0x7DC7");
    assert_eq!(image.pages_touched(128).len(), 12);
}

#[test]
fn production_image_with_a_real_bootloader() {
    use isp_toolbox::hex::merge;
    use isp_toolbox::part::PartDb;

    let part = PartDb::builtin().unwrap().find("atmega328p").unwrap();
    let path = Path::new(BOOTLOADERS).join("atmega/ATmegaBOOT_168_atmega328.hex");
    let bootloader = read_hex_file(&path).unwrap_or_else(|e| panic!("{e}; {SETUP}"));
    // Arduino's boards.txt sets hfuse 0xDA for it: BOOTSZ=1, 1024 words from byte 0x7800.
    let boot_start = part.boot_section_for_hfuse(0xDA).unwrap().start_byte();
    assert_eq!(boot_start, 0x7800);

    let mut firmware = MemoryImage::new();
    firmware.insert(0, &[0x0C, 0x94, 0x34, 0x00]).unwrap();
    let merged = merge(&firmware, &bootloader, part, boot_start).unwrap();
    assert_eq!(
        merged.data_len(),
        firmware.data_len() + bootloader.data_len()
    );
    assert_eq!(merged.segments().len(), 2);

    let too_big = read_bin(&vec![0; 0x7801], 0).unwrap();
    let err = merge(&too_big, &bootloader, part, boot_start)
        .unwrap_err()
        .to_string();
    assert!(err.contains("both hold bytes 0x7800-0x7800"), "{err}");
    assert!(err.contains("1 byte(s) too big"), "{err}");
}
