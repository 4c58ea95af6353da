//! Image files: the format from the extension, reads with a size limit, atomic writes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::bin::{read_bin, to_bin};
use super::image::MemoryImage;
use super::read::read_hex_bytes;
use super::write::write_hex;
use crate::error::{Error, Result};

/// The largest file read as an image. Firmware for an AVR is at most a few hundred KiB of HEX,
/// so anything bigger is the wrong file and must not be loaded into memory whole.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// A file format for memory images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// Intel HEX text (`.hex`, `.ihx`, `.ihex`, and avr-gcc's EEPROM `.eep`).
    IntelHex,
    /// Raw binary from address 0 (`.bin`).
    Binary,
}

impl ImageFormat {
    /// The format a file name's extension stands for (case does not matter).
    pub fn from_path(path: &Path) -> Result<ImageFormat> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("hex" | "ihx" | "ihex" | "eep") => Ok(ImageFormat::IntelHex),
            Some("bin") => Ok(ImageFormat::Binary),
            _ => Err(Error::invalid(format!(
                "cannot tell the format of {} from its name: use .hex, .ihx or .ihex for Intel \
                 HEX, .bin for a raw binary",
                path.display()
            ))),
        }
    }
}

/// Reads an Intel HEX file (whatever its extension), refusing files over [`MAX_FILE_SIZE`].
pub fn read_hex_file(path: impl AsRef<Path>) -> Result<MemoryImage> {
    let path = path.as_ref();
    let bytes = read_limited(path)?;
    read_hex_bytes(&bytes, &path.display().to_string())
}

/// Reads an image file in the format its extension names; a `.bin` is loaded at address 0.
pub fn read_image_file(path: impl AsRef<Path>) -> Result<MemoryImage> {
    let path = path.as_ref();
    match ImageFormat::from_path(path)? {
        ImageFormat::IntelHex => read_hex_file(path),
        ImageFormat::Binary => read_bin(&read_limited(path)?, 0),
    }
}

/// Writes an image file in the format its extension names (a `.bin` starts at address 0,
/// gaps 0xFF). The file is replaced atomically: see [`write_atomic`].
pub fn write_image_file(path: impl AsRef<Path>, image: &MemoryImage) -> Result<()> {
    let path = path.as_ref();
    let bytes = match ImageFormat::from_path(path)? {
        ImageFormat::IntelHex => write_hex(image).into_bytes(),
        ImageFormat::Binary => to_bin(image)?,
    };
    write_atomic(path, &bytes)
}

/// Writes `bytes` to a temporary file next to `path`, flushes it to disk, then renames it over
/// `path`, so a failure (disk full, crash) never leaves a half-written file behind.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let (temp, mut file) = create_temp_beside(path)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&temp, path)
        });
    written.map_err(|e| {
        // Best effort: the temp file is ours and useless now.
        let _ = std::fs::remove_file(&temp);
        Error::file("cannot write", path, e)
    })
}

/// Creates a new, uniquely named temporary file in `path`'s directory.
fn create_temp_beside(path: &Path) -> Result<(PathBuf, std::fs::File)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::invalid(format!("{} is not a file name", path.display())))?;
    // A leftover from a crashed run with the same pid takes a name: try the next number.
    let mut last_error = None;
    for _ in 0..100 {
        let temp = directory.join(format!(
            ".{name}.{}-{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(Error::file("cannot write", path, e)),
        }
    }
    let error = last_error.unwrap_or_else(|| std::io::Error::other("no free temporary name"));
    Err(Error::file("cannot write", path, error))
}

/// Reads a whole file, refusing one larger than [`MAX_FILE_SIZE`] without reading it all.
fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::file("cannot read", path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::file("cannot read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(Error::invalid(format!(
            "{} is larger than {} MiB, far too big for AVR firmware: is it the right file?",
            path.display(),
            MAX_FILE_SIZE / (1024 * 1024)
        )));
    }
    Ok(bytes)
}
