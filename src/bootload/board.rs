//! The boards that can be turned into an ISP programmer, and what each one's bootloader needs.

use crate::catalog::{BootloaderCatalog, Family, ProgrammerCatalog, UsbId};
use crate::error::{Error, Result};
use crate::part::{Part, PartDb};

use super::halfkay::{HALFKAY_USB, TEENSY2};

/// How long the SparkFun Caterina waits for a second reset before it starts the application.
pub const DOUBLE_TAP_WINDOW_MS: u32 = 750;

/// How long Caterina stays in the bootloader (with an application present) without traffic.
pub const CATERINA_TIMEOUT_S: u32 = 8;

/// The bootloader a board ships with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootloaderKind {
    /// Caterina (AVR109 over USB CDC serial).
    Caterina,
    /// HalfKay (HID).
    HalfKay,
}

/// A programmer board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Board {
    /// SparkFun Pro Micro (or clone) with Caterina.
    ProMicro,
    /// PJRC Teensy 2.0 with HalfKay.
    Teensy2,
}

impl Board {
    /// Every board.
    pub const ALL: [Board; 2] = [Board::ProMicro, Board::Teensy2];

    /// The command-line id.
    pub fn id(self) -> &'static str {
        match self {
            Board::ProMicro => "promicro",
            Board::Teensy2 => "teensy2",
        }
    }

    /// The display name.
    pub fn name(self) -> &'static str {
        match self {
            Board::ProMicro => "Pro Micro",
            Board::Teensy2 => "Teensy 2.0",
        }
    }

    /// The board by its id (`promicro`, `pro-micro`, `teensy2`, `teensy`), ignoring case.
    pub fn from_id(text: &str) -> Result<Board> {
        let wanted = text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', ' '], "");
        match wanted.as_str() {
            "promicro" => Ok(Board::ProMicro),
            "teensy2" | "teensy20" | "teensy" => Ok(Board::Teensy2),
            _ => Err(Error::Unknown {
                what: "board",
                name: text.to_string(),
                known: Board::ALL.iter().map(|b| b.id().to_string()).collect(),
            }),
        }
    }

    /// The board's MCU.
    pub fn part(self) -> Result<&'static Part> {
        PartDb::builtin()?.find("atmega32u4")
    }

    /// Its bootloader.
    pub fn bootloader(self) -> BootloaderKind {
        match self {
            Board::ProMicro => BootloaderKind::Caterina,
            Board::Teensy2 => BootloaderKind::HalfKay,
        }
    }

    /// The programmer catalog entry the board becomes.
    pub fn programmer_id(self) -> &'static str {
        match self {
            Board::ProMicro => "promicro-isp",
            Board::Teensy2 => "teensy2-isp",
        }
    }

    /// The first byte the bootloader occupies: the application (the ISP firmware) must end
    /// below it. Caterina: the largest boot section any Caterina build in the catalog needs
    /// on this MCU (4 KB: 0x7000); HalfKay: teensy_loader_cli's code size (0x7E00).
    pub fn application_end(self) -> Result<u32> {
        let part = self.part()?;
        match self.bootloader() {
            BootloaderKind::HalfKay => Ok(TEENSY2.code_size),
            BootloaderKind::Caterina => {
                let boot = caterina_builds(part)?
                    .map(|b| b.boot_section_bytes)
                    .max()
                    .ok_or_else(|| Error::Data {
                        file: "bootloaders/catalog.json",
                        reason: format!("no Caterina build for the {}", part.name),
                    })?;
                Ok(part.flash.size.saturating_sub(boot))
            }
        }
    }

    /// The USB ids the board's bootloader enumerates as: every Caterina build for the MCU (a
    /// Pro Micro clone may carry any of them), or HalfKay's.
    pub fn bootloader_ids(self) -> Result<Vec<UsbId>> {
        match self.bootloader() {
            BootloaderKind::HalfKay => Ok(vec![HALFKAY_USB]),
            BootloaderKind::Caterina => {
                let mut ids: Vec<UsbId> = caterina_builds(self.part()?)?.map(|b| b.usb).collect();
                ids.sort();
                ids.dedup();
                Ok(ids)
            }
        }
    }

    /// The USB ids an ISP firmware for this board enumerates as: the programmer catalog's
    /// ids for its entry and the bootloader catalog's ISP firmware builds for it.
    pub fn isp_ids(self) -> Result<Vec<UsbId>> {
        let programmer = ProgrammerCatalog::builtin()?.get(self.programmer_id())?;
        let mut ids: Vec<UsbId> = programmer.usb.iter().map(|u| u.id).collect();
        ids.extend(
            BootloaderCatalog::builtin()?
                .isp_firmware()
                .iter()
                .filter(|f| f.programmer == self.programmer_id())
                .flat_map(|f| f.usb.iter().copied()),
        );
        let bootloader = self.bootloader_ids()?;
        ids.retain(|id| !bootloader.contains(id));
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// What the user does to start the bootloader by hand.
    pub fn reset_instruction(self) -> String {
        match self {
            Board::ProMicro => format!(
                "Press the Pro Micro's RESET twice quickly (no button: touch RST to GND twice). \
                 SparkFun's Caterina stays in the bootloader only {DOUBLE_TAP_WINDOW_MS} ms \
                 after a single reset and then starts the program; after two resets within \
                 {DOUBLE_TAP_WINDOW_MS} ms it waits {CATERINA_TIMEOUT_S} s for the upload."
            ),
            Board::Teensy2 => "Press the pushbutton on the Teensy 2.0 once: HalfKay starts and \
                 waits for the upload (the red LED stops blinking the old program)."
                .to_string(),
        }
    }
}

impl std::fmt::Display for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The Caterina builds in the catalog that run on `part`.
fn caterina_builds(
    part: &Part,
) -> Result<impl Iterator<Item = &'static crate::catalog::Bootloader>> {
    let id = part.id.clone();
    Ok(BootloaderCatalog::builtin()?
        .all()
        .iter()
        .filter(move |b| b.family == Family::Caterina && b.runs_on(&id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        for board in Board::ALL {
            assert_eq!(Board::from_id(board.id()).unwrap(), board);
        }
        assert_eq!(Board::from_id("Pro-Micro").unwrap(), Board::ProMicro);
        assert_eq!(Board::from_id("teensy").unwrap(), Board::Teensy2);
        let err = Board::from_id("uno").unwrap_err();
        assert!(err.hint().unwrap().contains("promicro"));
    }

    #[test]
    fn application_sections() {
        assert_eq!(Board::ProMicro.application_end().unwrap(), 0x7000);
        assert_eq!(Board::Teensy2.application_end().unwrap(), 0x7E00);
    }

    #[test]
    fn bootloader_and_isp_ids_come_from_the_catalogs() {
        let caterina = Board::ProMicro.bootloader_ids().unwrap();
        for id in ["1B4F:9205", "1B4F:9203", "2341:0036", "2341:0037"] {
            assert!(caterina.contains(&id.parse().unwrap()), "{id}");
        }
        assert_eq!(Board::Teensy2.bootloader_ids().unwrap(), [HALFKAY_USB]);
        let promicro = Board::ProMicro.isp_ids().unwrap();
        for id in ["16C0:0483", "1B4F:9206", "1B4F:9204"] {
            assert!(promicro.contains(&id.parse().unwrap()), "{id}");
        }
        assert_eq!(
            Board::Teensy2.isp_ids().unwrap(),
            [UsbId::new(0x16C0, 0x0483)]
        );
    }

    #[test]
    fn the_pro_micro_instruction_explains_the_double_tap() {
        let text = Board::ProMicro.reset_instruction();
        assert!(text.contains("twice") && text.contains("750 ms"), "{text}");
        assert!(Board::Teensy2.reset_instruction().contains("pushbutton"));
    }
}
