//! Checking the user's ISP firmware file before anything is written to the programmer board.
//!
//! The project ships no third-party binaries, so the file is the user's. It is refused when it
//! cannot be ISP firmware for the board: empty, reaching into the bootloader's section (a
//! bootloader image, or a build for a bigger MCU), or a build the catalog knows by its content
//! hash as something else (a bootloader, or the other board's ISP firmware).
//!
//! A firmware image carries its USB device descriptor in flash (it is sent from there at
//! enumeration), so [`usb_descriptors`] can tell which USB id the board will show once the
//! firmware runs: the prepare job waits for exactly that id, and warns when it is not one the
//! catalogs know as an ISP programmer.

use crate::catalog::{BootloaderCatalog, KnownBuild, UsbId, sha256_hex};
use crate::error::{Error, Result};
use crate::hex::MemoryImage;

use super::board::Board;

/// bLength and bDescriptorType of a USB device descriptor.
const DEVICE_DESCRIPTOR: [u8; 2] = [0x12, 0x01];

/// USB device class 0x02 (CDC) or 0xEF (miscellaneous, with an interface association): what
/// a USB serial device (Teensyduino's USB Serial, an Arduino sketch) reports.
pub fn is_serial_class(device_class: u8) -> bool {
    matches!(device_class, 0x02 | 0xEF)
}

/// A USB device descriptor found in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UsbDescriptor {
    /// Where it starts in flash.
    pub addr: u32,
    /// Vendor and product id.
    pub id: UsbId,
    /// bDeviceClass.
    pub device_class: u8,
}

/// The USB device descriptors in a flash image, lowest address first. A descriptor is 18 bytes
/// `12 01`, bcdUSB 1.0/1.1/2.0, a control packet size of 8/16/32/64, string indexes below 16,
/// one to four configurations and a vendor id other than 0: strict enough that program code
/// practically never matches.
pub fn usb_descriptors(flash: &[u8], base: u32) -> Vec<UsbDescriptor> {
    flash
        .windows(18)
        .enumerate()
        .filter_map(|(offset, d)| {
            let bcd_usb = u16::from_le_bytes([d[2], d[3]]);
            let vid = u16::from_le_bytes([d[8], d[9]]);
            let plausible = d[..2] == DEVICE_DESCRIPTOR
                && matches!(bcd_usb, 0x0100 | 0x0110 | 0x0200)
                && matches!(d[7], 8 | 16 | 32 | 64)
                && d[14..17].iter().all(|&index| index < 16)
                && (1..=4).contains(&d[17])
                && vid != 0;
            plausible.then(|| UsbDescriptor {
                addr: base + offset as u32,
                id: UsbId::new(vid, u16::from_le_bytes([d[10], d[11]])),
                device_class: d[4],
            })
        })
        .collect()
}

/// The descriptors in an image's data (gaps count as 0xFF, which never matches).
pub fn image_descriptors(image: &MemoryImage) -> Vec<UsbDescriptor> {
    image
        .segments()
        .iter()
        .flat_map(|segment| usb_descriptors(&segment.data, segment.start))
        .collect()
}

/// What the check found out about an ISP firmware file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FirmwareCheck {
    /// The board it goes onto.
    pub board: Board,
    /// Bytes of data.
    pub bytes: u64,
    /// `0x0000-0x1A3F`.
    pub range: String,
    /// The application section it must fit: one past its last byte.
    pub application_end: u32,
    /// SHA-256 of the programmed content, hex.
    pub content_sha256: String,
    /// Catalog id of the known build, if it is one.
    pub known_build: Option<String>,
    /// The USB device descriptors in the image.
    pub descriptors: Vec<UsbDescriptor>,
    /// The USB ids to wait for once it runs: its own descriptor's, else the catalogs' ISP
    /// firmware ids for the board.
    pub expected_ids: Vec<UsbId>,
    /// Things the user should read.
    pub warnings: Vec<String>,
}

/// Checks that `image` can be ISP firmware for `board`; nothing here touches a device.
pub fn check_isp_firmware(
    board: Board,
    image: &MemoryImage,
    catalog: &BootloaderCatalog,
) -> Result<FirmwareCheck> {
    let part = board.part()?;
    if image.is_empty() || image.is_all_ff() {
        return Err(Error::Image(
            "the ISP firmware file holds no program (it is empty or all 0xFF)".into(),
        ));
    }
    let application_end = board.application_end()?;
    if image.end() > u64::from(application_end) {
        return Err(Error::Image(format!(
            "the file covers {}, but on the {} the program must end below 0x{application_end:04X} \
             ({} occupies 0x{application_end:04X}-0x{:04X}): this is not ISP firmware for the \
             {}'s {} (a bootloader image, or a build for another MCU?); nothing was written",
            image.range_string(),
            board.name(),
            match board.bootloader() {
                super::board::BootloaderKind::Caterina => "Caterina",
                super::board::BootloaderKind::HalfKay => "HalfKay",
            },
            part.flash.size - 1,
            board.name(),
            part.name
        )));
    }
    let hash = image.content_sha256();
    let known_build = match catalog.identify_content(&hash) {
        None => None,
        Some(KnownBuild::Bootloader(b)) => {
            return Err(Error::Image(format!(
                "this file is the bootloader '{}': it goes onto the keyboard's MCU through an ISP \
                 programmer (isp-toolbox-cli bootloader), not onto the {} as ISP firmware",
                b.name,
                board.name()
            )));
        }
        Some(KnownBuild::IspFirmware(f)) => {
            let wrong_mcu = f.mcu.as_deref().is_some_and(|m| m != part.id);
            if f.programmer != board.programmer_id() || wrong_mcu {
                return Err(Error::Image(format!(
                    "this file is '{}', built for the {}, not for the {}; nothing was written",
                    f.name,
                    f.board,
                    board.name()
                )));
            }
            Some(f.id.clone())
        }
    };
    let descriptors = image_descriptors(image);
    let isp_ids = board.isp_ids()?;
    let bootloader_ids = board.bootloader_ids()?;
    let mut warnings = Vec::new();
    if known_build.is_none() {
        warnings.push(format!(
            "unknown build (content SHA-256 {}): ISP Toolbox cannot confirm it is ISP firmware",
            sha256_hex(&hash)
        ));
    }
    let own: Vec<UsbId> = descriptors
        .iter()
        .map(|d| d.id)
        .filter(|id| !bootloader_ids.contains(id))
        .collect();
    let expected_ids = if own.is_empty() {
        warnings.push(
            "no USB device descriptor found in the file; after flashing, ISP Toolbox waits for \
             the ids known ISP firmware uses"
                .into(),
        );
        isp_ids
    } else {
        if !own.iter().any(|id| isp_ids.contains(id)) {
            warnings.push(format!(
                "the file enumerates as {}, which is not an ISP programmer id ISP Toolbox knows \
                 (expected {}): is it ISP firmware?",
                ids_text(&own),
                ids_text(&isp_ids)
            ));
        }
        dedup(own)
    };
    Ok(FirmwareCheck {
        board,
        bytes: image.data_len(),
        range: image.range_string(),
        application_end,
        content_sha256: sha256_hex(&hash),
        known_build,
        descriptors,
        expected_ids,
        warnings,
    })
}

fn dedup(mut ids: Vec<UsbId>) -> Vec<UsbId> {
    ids.sort();
    ids.dedup();
    ids
}

fn ids_text(ids: &[UsbId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A minimal USB device descriptor, for tests and emulated firmware images.
pub fn device_descriptor(id: UsbId, device_class: u8) -> [u8; 18] {
    let [vl, vh] = id.vid.to_le_bytes();
    let [pl, ph] = id.pid.to_le_bytes();
    [
        0x12,
        0x01,
        0x00,
        0x02,
        device_class,
        0x00,
        0x00,
        64,
        vl,
        vh,
        pl,
        ph,
        0x00,
        0x01,
        1,
        2,
        3,
        1,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with(descriptor_id: Option<UsbId>, len: usize) -> MemoryImage {
        let mut data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        if let Some(id) = descriptor_id {
            data[0x100..0x112].copy_from_slice(&device_descriptor(id, 0x02));
        }
        let mut image = MemoryImage::new();
        image.insert(0, &data).unwrap();
        image
    }

    fn catalog() -> &'static BootloaderCatalog {
        BootloaderCatalog::builtin().unwrap()
    }

    #[test]
    fn finds_descriptors_and_only_plausible_ones() {
        let teensyduino = UsbId::new(0x16C0, 0x0483);
        let image = image_with(Some(teensyduino), 0x1000);
        let found = image_descriptors(&image);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].addr, 0x100);
        assert_eq!(found[0].id, teensyduino);
        assert!(is_serial_class(found[0].device_class));
        let mut bad = device_descriptor(teensyduino, 2);
        bad[7] = 65;
        assert!(usb_descriptors(&bad, 0).is_empty());
    }

    #[test]
    fn accepts_an_isp_firmware_and_waits_for_its_own_id() {
        let image = image_with(Some(UsbId::new(0x16C0, 0x0483)), 0x2400);
        let check = check_isp_firmware(Board::ProMicro, &image, catalog()).unwrap();
        assert_eq!(check.expected_ids, [UsbId::new(0x16C0, 0x0483)]);
        assert_eq!(check.range, "0x0000-0x23FF");
        assert_eq!(check.warnings.len(), 1, "{:?}", check.warnings);
        assert!(check.warnings[0].contains("unknown build"));
    }

    #[test]
    fn refuses_a_file_reaching_into_the_bootloader() {
        let image = image_with(None, 0x7001);
        let err = check_isp_firmware(Board::ProMicro, &image, catalog()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("0x7000")
                && text.contains("Caterina")
                && text.contains("nothing was written"),
            "{text}"
        );
        assert_eq!(err.exit_code(), 2);
        // The same file fits the Teensy, whose HalfKay only takes the top 512 bytes.
        assert!(check_isp_firmware(Board::Teensy2, &image, catalog()).is_ok());
        let image = image_with(None, 0x7E01);
        assert!(check_isp_firmware(Board::Teensy2, &image, catalog()).is_err());
    }

    #[test]
    fn refuses_empty_files() {
        let mut image = MemoryImage::new();
        assert!(check_isp_firmware(Board::Teensy2, &image, catalog()).is_err());
        image.insert(0, &[0xFF; 64]).unwrap();
        assert!(check_isp_firmware(Board::Teensy2, &image, catalog()).is_err());
    }

    #[test]
    fn warns_about_a_file_that_enumerates_as_something_else() {
        let keyboard = UsbId::new(0xFEED, 0x6060);
        let image = image_with(Some(keyboard), 0x2000);
        let check = check_isp_firmware(Board::Teensy2, &image, catalog()).unwrap();
        assert_eq!(check.expected_ids, [keyboard]);
        assert!(
            check.warnings.iter().any(|w| w.contains("FEED:6060")),
            "{:?}",
            check.warnings
        );
    }

    #[test]
    fn without_a_descriptor_it_waits_for_the_catalog_ids() {
        let image = image_with(None, 0x800);
        let check = check_isp_firmware(Board::Teensy2, &image, catalog()).unwrap();
        assert_eq!(check.expected_ids, [UsbId::new(0x16C0, 0x0483)]);
    }
}
