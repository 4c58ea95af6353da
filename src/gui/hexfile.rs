//! The bootloader .hex the user picked: read, inspected against the selected MCU, and checked
//! against the catalog, so the window can say what it is before anything touches a chip.

use std::path::{Path, PathBuf};

use crate::hex::{MemoryImage, read_hex_bytes};
use crate::job::inspect::{ImageInfo, inspect};
use crate::part::Part;

/// A file that was read successfully.
#[derive(Debug, Clone)]
pub struct LoadedHex {
    /// Where it came from.
    pub path: PathBuf,
    /// Its bytes, as raw file content (for the file hash).
    pub file_bytes: Vec<u8>,
    /// What it programs.
    pub image: MemoryImage,
    /// Range, size, known build, boot-section fit for the selected MCU.
    pub info: ImageInfo,
}

/// The file slot: nothing, a good file, or a file that could not be used.
#[derive(Debug, Clone, Default)]
pub enum HexSlot {
    /// No file chosen.
    #[default]
    Empty,
    /// A file that parsed.
    Loaded(Box<LoadedHex>),
    /// A file that did not: the path and the error (with line number).
    Failed(PathBuf, String),
}

impl HexSlot {
    /// Reads and inspects a file.
    pub fn load(path: &Path, part: Option<&Part>) -> HexSlot {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => return HexSlot::Failed(path.to_path_buf(), format!("cannot read: {e}")),
        };
        let name = path.display().to_string();
        match read_hex_bytes(&bytes, &name) {
            Ok(image) if image.is_empty() => {
                HexSlot::Failed(path.to_path_buf(), "the file holds no data".into())
            }
            Ok(image) => {
                let info = inspect(&image, Some(&bytes), part);
                HexSlot::Loaded(Box::new(LoadedHex {
                    path: path.to_path_buf(),
                    file_bytes: bytes,
                    image,
                    info,
                }))
            }
            Err(e) => HexSlot::Failed(path.to_path_buf(), e.with_hint()),
        }
    }

    /// Re-inspects against another MCU (the fit and the known-build check depend on it).
    pub fn reinspect(&mut self, part: Option<&Part>) {
        if let HexSlot::Loaded(hex) = self {
            hex.info = inspect(&hex.image, Some(&hex.file_bytes), part);
        }
    }

    /// The good file, if any.
    pub fn loaded(&self) -> Option<&LoadedHex> {
        match self {
            HexSlot::Loaded(hex) => Some(hex),
            _ => None,
        }
    }

    /// The path of whatever was chosen.
    pub fn path(&self) -> Option<&Path> {
        match self {
            HexSlot::Empty => None,
            HexSlot::Loaded(hex) => Some(&hex.path),
            HexSlot::Failed(path, _) => Some(path),
        }
    }
}
