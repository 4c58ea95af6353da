//! Malformed Intel HEX files: each one in tests/data/hex/bad/ is refused with the right line and
//! a reason that says what is wrong (fixtures made by tests/data/hex/make_fixtures.py).

use std::path::{Path, PathBuf};

use isp_toolbox::Error;
use isp_toolbox::hex::{read_hex_file, read_image_file};

fn fixture(folder: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hex")
        .join(folder)
        .join(name)
}

/// File, the line the error must name, and fragments its reason must contain.
const BAD_FILES: &[(&str, usize, &[&str])] = &[
    (
        "bad_checksum.hex",
        2,
        &["bad checksum", "expected 0x68", "found 0x69"],
    ),
    ("bad_length.hex", 2, &["length field says 16", "holds 15"]),
    ("unknown_type.hex", 3, &["unknown record type 0x06"]),
    (
        "wrong_length_for_type.hex",
        1,
        &["record type 04", "needs 2"],
    ),
    (
        "non_hex_char.hex",
        2,
        &["invalid character 'G' at column 12"],
    ),
    ("odd_digits.hex", 2, &["odd number of hex digits (41)"]),
    ("too_short.hex", 2, &["record too short (4 hex digits)"]),
    (
        "no_colon.hex",
        2,
        &["does not start with ':'", "\"This is the bootload\""],
    ),
    ("html_page.hex", 1, &["does not start with ':'", "HTML"]),
    (
        "missing_eof.hex",
        2,
        &["no end-of-file record", "truncated"],
    ),
    (
        "data_after_eof.hex",
        4,
        &["data after the end-of-file record on line 2", "merge"],
    ),
    (
        "overlap.hex",
        3,
        &["bytes 0x0018-0x001B overlap bytes 0x0010-0x001F from line 2"],
    ),
    (
        "crossing_64k.hex",
        2,
        &["cross the 64 KiB boundary of base 0x00010000", "type 04"],
    ),
    (
        "past_4gib.hex",
        2,
        &["16 bytes at 0xFFFFFFF8 run past the 4 GiB limit"],
    ),
    ("empty.hex", 1, &["the file is empty"]),
    ("blank_lines_only.hex", 1, &["the file is empty"]),
    ("binary.hex", 1, &["byte 0x94 at column 2", "binary file"]),
    ("latin1.hex", 2, &["byte 0xE9 at column 4", "binary file"]),
];

#[test]
fn every_bad_file_is_refused_with_line_and_reason() {
    let mut failures = Vec::new();
    for (name, want_line, fragments) in BAD_FILES {
        let path = fixture("bad", name);
        match read_hex_file(&path) {
            Ok(image) => failures.push(format!("{name}: accepted as {}", image.range_string())),
            Err(Error::Hex { file, line, reason }) => {
                if !file.ends_with(name) {
                    failures.push(format!("{name}: error names file {file}"));
                }
                if line != *want_line {
                    failures.push(format!("{name}: line {line}, want {want_line} ({reason})"));
                }
                for fragment in *fragments {
                    if !reason.contains(fragment) {
                        failures.push(format!("{name}: reason lacks {fragment:?}: {reason}"));
                    }
                }
            }
            Err(other) => failures.push(format!("{name}: not a Hex error: {other}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_corpus_and_the_table_list_the_same_files() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture("bad", ""))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = BAD_FILES.iter().map(|(n, _, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn hex_errors_print_file_line_and_a_hint() {
    let err = read_hex_file(fixture("bad", "html_page.hex")).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("html_page.hex:1: line does not start with ':'"),
        "{shown}"
    );
    assert!(err.hint().is_some_and(|h| h.contains("HTML")));
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn tolerated_formatting_reads_cleanly() {
    // BOM, CRLF, trailing whitespace, blank lines (also after EOF), 03 and 05 records.
    let image = read_hex_file(fixture("good", "tolerant.hex")).unwrap();
    assert_eq!(image.segments().len(), 1);
    assert_eq!(image.segments()[0].start, 0);
    assert_eq!(image.segments()[0].data, (0..16).collect::<Vec<u8>>());
}

#[test]
fn segment_records_do_not_wrap_and_linear_records_set_the_top() {
    let image = read_hex_file(fixture("good", "segments.hex")).unwrap();
    // 02 base 0x10000 + offset 0xFFF8: 16 bytes run on to 0x20007 (avrdude does not wrap).
    assert_eq!(image.get(0x1_FFF8), Some(0));
    assert_eq!(image.get(0x2_0007), Some(15));
    assert_eq!(image.get(0x0_0000), None);
    assert_eq!(image.get(0x3_0100), Some(0xAA));
    assert_eq!(image.get(0x3_0101), Some(0xBB));
    assert_eq!(image.data_len(), 18);
}

#[test]
fn missing_and_oversized_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.hex");
    let err = read_hex_file(&missing).unwrap_err();
    assert!(matches!(err, Error::File { .. }), "{err}");

    let huge = dir.path().join("huge.bin");
    let file = std::fs::File::create(&huge).unwrap();
    // Sparse on most file systems: no real 17 MiB written.
    file.set_len(isp_toolbox::hex::MAX_FILE_SIZE + 1).unwrap();
    let err = read_image_file(&huge).unwrap_err().to_string();
    assert!(err.contains("larger than 16 MiB"), "{err}");
}
