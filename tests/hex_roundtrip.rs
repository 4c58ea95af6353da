//! Property tests: HEX and binary round trips, the image against a byte-map model, and the reader
//! on random near-HEX text.

use std::collections::BTreeMap;

use isp_toolbox::hex::{
    HexOptions, MemoryImage, Overlaps, read_bin, read_hex, read_hex_bytes, read_hex_with, to_bin,
    write_hex, write_hex_with,
};
use proptest::prelude::*;

/// Addresses that exercise the interesting places: low flash, 64 KiB and 1 MiB boundaries, the
/// top of the address space, anywhere.
fn address() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..0x2_0000,
        (0u32..0x200).prop_map(|x| 0x1_0000 - 0x100 + x),
        (0u32..0x200).prop_map(|x| 0x10_0000 - 0x100 + x),
        (0u32..0x1_0000).prop_map(|x| 0xFFFF_0000 + x),
        any::<u32>(),
    ]
}

/// Random pieces; those that would overlap or overflow are skipped.
fn sparse_image(max_addr: impl Strategy<Value = u32>) -> impl Strategy<Value = MemoryImage> {
    prop::collection::vec((max_addr, prop::collection::vec(any::<u8>(), 1..80)), 0..12).prop_map(
        |pieces| {
            let mut image = MemoryImage::new();
            for (addr, data) in pieces {
                let _ = image.insert(addr, &data);
            }
            image
        },
    )
}

fn model_of(image: &MemoryImage) -> BTreeMap<u32, u8> {
    let mut model = BTreeMap::new();
    for segment in image.segments() {
        for (i, &b) in segment.data.iter().enumerate() {
            model.insert(segment.start + i as u32, b);
        }
    }
    model
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn hex_round_trip(image in sparse_image(address())) {
        let text = write_hex(&image);
        prop_assert_eq!(&read_hex(&text, "<roundtrip>").unwrap(), &image);
        // CRLF and objcopy-style records read back the same.
        prop_assert_eq!(&read_hex(&text.replace('\n', "\r\n"), "<crlf>").unwrap(), &image);
        let objcopy_style = write_hex_with(&image, HexOptions::objcopy());
        prop_assert_eq!(&read_hex(&objcopy_style, "<objcopy>").unwrap(), &image);
    }

    #[test]
    fn written_records_follow_the_rules(image in sparse_image(address())) {
        let text = write_hex(&image);
        prop_assert!(text.ends_with(":00000001FF\n"));
        let mut base = 0u32;
        for line in text.lines() {
            prop_assert_eq!(line, line.to_ascii_uppercase());
            match ihex::Record::from_record_string(line).unwrap() {
                ihex::Record::Data { offset, value } => {
                    prop_assert!(!value.is_empty() && value.len() <= 16);
                    prop_assert!(usize::from(offset) + value.len() <= 0x1_0000, "crosses 64 KiB");
                    prop_assert_eq!(image.get(base + u32::from(offset)), Some(value[0]));
                }
                ihex::Record::ExtendedLinearAddress(upper) => base = u32::from(upper) << 16,
                ihex::Record::EndOfFile => {}
                other => prop_assert!(false, "unexpected record {:?}", other),
            }
        }
    }

    #[test]
    fn bin_round_trip(image in sparse_image(0u32..0x1_0000)) {
        let bin = to_bin(&image).unwrap();
        prop_assert_eq!(bin.len() as u64, image.end());
        let model = model_of(&image);
        for (addr, byte) in bin.iter().enumerate() {
            prop_assert_eq!(*byte, model.get(&(addr as u32)).copied().unwrap_or(0xFF));
        }
        let flat = read_bin(&bin, 0).unwrap();
        prop_assert_eq!(&to_bin(&flat).unwrap(), &bin);
        // Filling gaps with the erased value does not change what the image programs.
        prop_assert_eq!(flat.content_sha256(), image.content_sha256());
    }

    #[test]
    fn image_matches_a_byte_map(
        writes in prop::collection::vec((0u32..600, prop::collection::vec(any::<u8>(), 0..40), any::<bool>()), 0..30),
        page_size in prop_oneof![Just(64u32), Just(128), Just(256), 1u32..50],
    ) {
        let mut image = MemoryImage::new();
        let mut model = BTreeMap::new();
        for (addr, data, overwrite) in writes {
            let range = addr..addr + data.len() as u32;
            let clash = model.range(range.clone()).next().is_some();
            let result = if overwrite { image.overwrite(addr, &data) } else { image.insert(addr, &data) };
            prop_assert_eq!(result.is_err(), clash && !overwrite);
            if result.is_ok() {
                for (i, b) in data.iter().enumerate() {
                    model.insert(addr + i as u32, *b);
                }
            }
        }
        prop_assert_eq!(&model_of(&image), &model);
        // Segments are sorted, non-empty and never touch.
        for pair in image.segments().windows(2) {
            prop_assert!(pair[0].end() < u64::from(pair[1].start));
        }
        prop_assert!(image.segments().iter().all(|s| !s.data.is_empty()));
        prop_assert_eq!(image.data_len(), model.len() as u64);
        for addr in 0..700u32 {
            prop_assert_eq!(image.get(addr), model.get(&addr).copied());
        }
        let touched: Vec<u32> = {
            let mut pages: Vec<u32> = model.keys().map(|a| a / page_size * page_size).collect();
            pages.dedup();
            pages
        };
        prop_assert_eq!(image.pages_touched(page_size), touched.clone());
        for page in touched {
            let bytes = image.page(page, page_size, 0xFF);
            for (i, b) in bytes.iter().enumerate() {
                prop_assert_eq!(*b, model.get(&(page + i as u32)).copied().unwrap_or(0xFF));
            }
            prop_assert_eq!(image.page_is_blank(page, page_size), bytes.iter().all(|&b| b == 0xFF));
        }
    }

    #[test]
    fn records_in_any_order_read_like_a_byte_map(
        records in prop::collection::vec((0u16..600, prop::collection::vec(any::<u8>(), 1..40)), 0..30),
    ) {
        let mut text = String::new();
        let mut model = BTreeMap::new();
        let mut overlapping = false;
        for (offset, data) in &records {
            let record = ihex::Record::Data { offset: *offset, value: data.clone() };
            text.push_str(&record.to_record_string().unwrap());
            text.push('\n');
            for (i, b) in data.iter().enumerate() {
                overlapping |= model.insert(u32::from(*offset) + i as u32, *b).is_some();
            }
        }
        text.push_str(":00000001FF\n");
        let later_wins = read_hex_with(&text, "<t>", Overlaps::LaterWins).unwrap();
        prop_assert_eq!(model_of(&later_wins), model);
        match read_hex(&text, "<t>") {
            Ok(strict) => {
                prop_assert!(!overlapping);
                prop_assert_eq!(strict, later_wins);
            }
            Err(e) => prop_assert!(overlapping && e.to_string().contains("overlap"), "{}", e),
        }
    }

    #[test]
    fn reader_never_panics_on_near_hex_text(text in "[:0-9A-Fa-f\r\n G]{0,300}") {
        if let Ok(image) = read_hex(&text, "<random>") {
            prop_assert_eq!(read_hex(&write_hex(&image), "<again>").unwrap(), image);
        }
    }

    #[test]
    fn reader_never_panics_on_mutated_files(
        image in sparse_image(address()),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = write_hex(&image).into_bytes();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(read) = read_hex_bytes(&bytes, "<mutated>") {
            prop_assert_eq!(read_hex(&write_hex(&read), "<again>").unwrap(), read);
        }
    }
}

#[test]
fn equal_content_hash_for_differently_formatted_files() {
    // The same bytes as one 32-byte record run, as 16-byte records in reverse order with CRLF,
    // and with explicit 0xFF padding around them.
    let forward = ":10700000000102030405060708090A0B0C0D0E0F08\n\
                   :10701000101112131415161718191A1B1C1D1E1FF8\n:00000001FF\n";
    let backward = ":10701000101112131415161718191A1B1C1D1E1FF8\r\n\
                    :10700000000102030405060708090A0B0C0D0E0F08\r\n:00000001FF\r\n";
    let padded = ":106FF000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA1\n\
                  :10700000000102030405060708090A0B0C0D0E0F08\n\
                  :10701000101112131415161718191A1B1C1D1E1FF8\n:00000001FF\n";
    let hashes: Vec<[u8; 32]> = [forward, backward, padded]
        .iter()
        .map(|text| read_hex(text, "<t>").unwrap().content_sha256())
        .collect();
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(hashes[0], hashes[2]);
}

#[test]
fn descending_records_read_the_same_as_ascending() {
    // 256 KiB written back to front: 16384 records, each one below the previous.
    let bin: Vec<u8> = (0..0x4_0000u32).map(|i| (i * 7 % 251) as u8).collect();
    let image = read_bin(&bin, 0).unwrap();
    let text = write_hex(&image);
    let mut lines: Vec<&str> = text.lines().collect();
    let eof = lines.pop().unwrap();
    // Keep each 64 KiB block behind its type 04 record, but reverse the blocks and the records.
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in lines {
        if line.starts_with(":02000004") || blocks.is_empty() {
            blocks.push(vec![line]);
        } else {
            blocks.last_mut().unwrap().push(line);
        }
    }
    let mut reversed = String::new();
    for block in blocks.iter().rev() {
        let (head, records) = if block[0].starts_with(":02000004") {
            (Some(block[0]), &block[1..])
        } else {
            (None, &block[..])
        };
        reversed.push_str(head.unwrap_or(":020000040000FA"));
        reversed.push('\n');
        for record in records.iter().rev() {
            reversed.push_str(record);
            reversed.push('\n');
        }
    }
    reversed.push_str(eof);
    assert_eq!(read_hex(&reversed, "<reversed>").unwrap(), image);
    assert_eq!(
        read_hex_with(&reversed, "<r>", Overlaps::LaterWins).unwrap(),
        image
    );
}
