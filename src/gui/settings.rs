//! What the app remembers between runs: the last selections, recent files and the window size.
//!
//! Stored as JSON in the platform's config directory. A missing or unreadable file gives the
//! first-run defaults (the app must always start); saving goes through a temporary file so a
//! crash never leaves half a settings file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How many recent files the file menu offers.
const RECENT_FILES: usize = 8;

/// The remembered state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Programmer id from the programmer catalog.
    pub programmer: Option<String>,
    /// Port name (`/dev/ttyACM0`, `usb`, `emulated`).
    pub port: Option<String>,
    /// MCU id from the part database.
    pub mcu: Option<String>,
    /// Bootloader id from the catalog.
    pub bootloader: Option<String>,
    /// Fuse preset id within the bootloader.
    pub preset: Option<String>,
    /// Recently used .hex files, newest first.
    pub recent_files: Vec<PathBuf>,
    /// The window's inner size in points.
    pub window_size: Option<[f32; 2]>,
    /// Dark theme (`None`: follow the system).
    pub dark_mode: Option<bool>,
}

impl Settings {
    /// Where the desktop app keeps its settings.
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("org", "ISP Toolbox", "isp-toolbox")
            .map(|d| d.config_dir().join("settings.json"))
    }

    /// Reads the settings; a missing or damaged file gives the defaults and a note saying why.
    pub fn load(path: &Path) -> (Settings, Option<String>) {
        match std::fs::read_to_string(path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(settings) => (settings, None),
                Err(e) => (
                    Settings::default(),
                    Some(format!(
                        "settings file {} is damaged ({e}); starting with defaults",
                        path.display()
                    )),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Settings::default(), None),
            Err(e) => (
                Settings::default(),
                Some(format!("cannot read settings {}: {e}", path.display())),
            ),
        }
    }

    /// Writes the settings atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    /// Puts a file at the top of the recent list.
    pub fn remember_file(&mut self, path: &Path) {
        self.recent_files.retain(|p| p != path);
        self.recent_files.insert(0, path.to_path_buf());
        self.recent_files.truncate(RECENT_FILES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/settings.json");
        let mut s = Settings {
            mcu: Some("atmega32u4".into()),
            ..Settings::default()
        };
        for i in 0..10 {
            s.remember_file(Path::new(&format!("/tmp/{i}.hex")));
        }
        s.remember_file(Path::new("/tmp/3.hex"));
        assert_eq!(s.recent_files.len(), RECENT_FILES);
        assert_eq!(s.recent_files[0], Path::new("/tmp/3.hex"));
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path), (s, None));

        std::fs::write(&path, "{ not json").unwrap();
        let (loaded, note) = Settings::load(&path);
        assert_eq!(loaded, Settings::default());
        assert!(note.unwrap().contains("damaged"));
        assert_eq!(
            Settings::load(&dir.path().join("none.json")),
            (Settings::default(), None)
        );
    }
}
