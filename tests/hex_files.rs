//! Image files: format from the extension, atomic writes, round trips through the disk.

use std::path::Path;

use isp_toolbox::Error;
use isp_toolbox::hex::{
    ImageFormat, MemoryImage, read_hex_file, read_image_file, write_atomic, write_image_file,
};

fn sample() -> MemoryImage {
    let mut image = MemoryImage::new();
    image.insert(0x10, &[1, 2, 3]).unwrap();
    image.insert(0x7000, &[0xAA; 20]).unwrap();
    image
}

#[test]
fn format_follows_the_extension() {
    for name in ["a.hex", "b.HEX", "c.ihx", "d.ihex", "e.eep"] {
        assert_eq!(
            ImageFormat::from_path(Path::new(name)).unwrap(),
            ImageFormat::IntelHex
        );
    }
    assert_eq!(
        ImageFormat::from_path(Path::new("f.bin")).unwrap(),
        ImageFormat::Binary
    );
    for name in ["g.elf", "noext", "h.hex.txt"] {
        let err = ImageFormat::from_path(Path::new(name))
            .unwrap_err()
            .to_string();
        assert!(err.contains("use .hex, .ihx or .ihex"), "{err}");
    }
}

#[test]
fn hex_and_bin_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let hex = dir.path().join("out.hex");
    write_image_file(&hex, &sample()).unwrap();
    assert_eq!(read_image_file(&hex).unwrap(), sample());
    assert!(
        std::fs::read_to_string(&hex)
            .unwrap()
            .starts_with(":03001000010203E7\n")
    );

    let bin = dir.path().join("out.bin");
    write_image_file(&bin, &sample()).unwrap();
    let bytes = std::fs::read(&bin).unwrap();
    assert_eq!(bytes.len(), 0x7014);
    assert_eq!(&bytes[0x0F..0x14], &[0xFF, 1, 2, 3, 0xFF]);
    let flat = read_image_file(&bin).unwrap();
    assert_eq!(flat.data_len(), 0x7014);
    assert_eq!(flat.content_sha256(), sample().content_sha256());
}

#[test]
fn atomic_write_replaces_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("firmware.hex");
    std::fs::write(&path, "old contents").unwrap();
    write_atomic(&path, b"new contents").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("firmware.hex")]);
}

#[test]
fn failed_write_keeps_the_old_file_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    // Renaming a file over a non-empty directory fails after the temp file was written.
    let target = dir.path().join("out.hex");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "x").unwrap();
    let err = write_image_file(&target, &sample()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::File {
                action: "cannot write",
                ..
            }
        ),
        "{err}"
    );
    assert!(target.join("keep").exists());
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "temporary file left behind");

    let missing_dir = dir.path().join("no/such/dir/out.hex");
    assert!(matches!(
        write_image_file(&missing_dir, &sample()),
        Err(Error::File { .. })
    ));
}

#[test]
fn oversized_bin_output_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut far = MemoryImage::new();
    far.insert(0x8000_0000, &[1]).unwrap();
    let path = dir.path().join("far.bin");
    let err = write_image_file(&path, &far).unwrap_err().to_string();
    assert!(err.contains("write it as .hex instead"), "{err}");
    assert!(!path.exists());
}

#[test]
fn hex_reader_names_the_file_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Caterina.hex");
    std::fs::write(&path, ":00000001FF\n:00000001FF\n").unwrap();
    match read_hex_file(&path) {
        Err(Error::Hex { file, line, .. }) => {
            assert_eq!(file, path.display().to_string());
            assert_eq!(line, 2);
        }
        other => panic!("{other:?}"),
    }
}
