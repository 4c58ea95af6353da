//! Feeds arbitrary bytes to the Intel HEX reader: it must never panic, and whatever it accepts
//! must survive write → read unchanged (in both output styles).
#![no_main]

use isp_toolbox::hex::{
    HexOptions, MAX_BIN_LEN, MemoryImage, Overlaps, read_bin, read_hex, read_hex_bytes,
    read_hex_with, to_bin, write_hex, write_hex_with,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The byte API: binary input must be refused, not decoded.
    if let Ok(image) = read_hex_bytes(data, "<fuzz>") {
        check(&image);
    }
    // The text API on lossy UTF-8, with the avrdude-compatible overlap rule.
    let text = String::from_utf8_lossy(data);
    let strict = read_hex(&text, "<fuzz>");
    match read_hex_with(&text, "<fuzz>", Overlaps::LaterWins) {
        Ok(image) => {
            // A file the strict reader accepts means the same in both modes.
            if let Ok(strict) = strict {
                assert_eq!(strict, image);
            }
            check(&image);
        }
        // Letting later records win can only accept more files, never fewer.
        Err(_) => assert!(strict.is_err()),
    }
});

fn check(image: &MemoryImage) {
    let text = write_hex(image);
    assert_eq!(
        &read_hex(&text, "<again>").expect("own output reads"),
        image
    );
    let objcopy_style = write_hex_with(image, HexOptions::objcopy());
    assert_eq!(
        &read_hex(&objcopy_style, "<again>").expect("objcopy style reads"),
        image
    );

    for segment in image.segments() {
        assert!(!segment.data.is_empty());
        assert_eq!(image.get(segment.start), segment.data.first().copied());
    }
    let pages = image.pages_touched(128);
    assert!(pages.len() as u64 <= image.data_len());
    if let Some(&first) = pages.first() {
        let page = image.page(first, 128, 0xFF);
        assert_eq!(page.len(), 128);
    }
    if image.end() <= MAX_BIN_LEN {
        let bin = to_bin(image).expect("small image converts");
        assert_eq!(bin.len() as u64, image.end());
        let flat = read_bin(&bin, 0).expect("binary reads");
        // Hashing walks the span; bounded here so slow inputs do not hide real findings.
        assert_eq!(flat.content_sha256(), image.content_sha256());
    } else {
        assert!(to_bin(image).is_err());
    }
}
