//! Commands that need no programmer: `list`, `hex info`, `hex convert`, `merge`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use isp_toolbox::catalog::{BootloaderCatalog, ProgrammerCatalog};
use isp_toolbox::hex::{ImageFormat, read_hex_bytes, read_image_file, write_image_file};
use isp_toolbox::job::inspect::{ImageInfo, inspect};
use isp_toolbox::part::{Part, PartDb};
use isp_toolbox::{Error, Result};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListWhat {
    /// Target microcontrollers.
    Mcus,
    /// Bootloaders in the catalog.
    Bootloaders,
    /// Supported ISP programmers.
    Programmers,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    what: ListWhat,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum HexCommand {
    /// Show a file's segments, size, pages, SHA-256, and which known build it is.
    Info {
        /// An Intel HEX (.hex) or binary (.bin) file.
        file: PathBuf,
        /// Check pages and the boot section against this MCU (e.g. atmega32u4, m32u4).
        #[arg(long, short = 'p', visible_alias = "mcu")]
        part: Option<String>,
        /// Machine-readable JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Convert between Intel HEX and raw binary (by extension; a .bin starts at address 0).
    Convert {
        /// Input file (.hex or .bin).
        input: PathBuf,
        /// Output file (.hex or .bin).
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Application firmware (e.g. QMK's .hex).
    #[arg(long)]
    firmware: PathBuf,
    /// Bootloader .hex.
    #[arg(long)]
    bootloader: PathBuf,
    /// Target MCU.
    #[arg(long, short = 'p', visible_alias = "mcu")]
    part: String,
    /// Where the boot section starts, as a byte address (default: from the bootloader image).
    #[arg(long, value_parser = parse_u32)]
    boot_start: Option<u32>,
    /// Output file (.hex or .bin).
    #[arg(short, long)]
    output: PathBuf,
}

fn parse_u32(s: &str) -> std::result::Result<u32, String> {
    isp_toolbox::util::parse_number(s)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("'{s}' is not a number (use 0x7000 or 28672)"))
}

fn find_part(name: &str) -> Result<&'static Part> {
    PartDb::builtin()?.find(name)
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

pub fn list(args: &ListArgs) -> Result<()> {
    match args.what {
        ListWhat::Mcus => {
            let parts = PartDb::builtin()?.all();
            if args.json {
                return print_json(&parts);
            }
            println!(
                "{:<12} {:<8} {:<9} {:>7} {:>5} {:>7}  package",
                "MCU", "avrdude", "signature", "flash", "page", "EEPROM"
            );
            for p in parts {
                println!(
                    "{:<12} {:<8} {:<9} {:>6}K {:>5} {:>7}  {}",
                    p.name,
                    p.avrdude_id,
                    p.signature_string().replace(' ', ""),
                    p.flash.size / 1024,
                    p.flash.page_size,
                    p.eeprom.size,
                    p.main_package().name
                );
            }
        }
        ListWhat::Bootloaders => {
            let catalog = BootloaderCatalog::builtin()?;
            if args.json {
                return print_json(&catalog.all());
            }
            for b in catalog.all() {
                let preset = b.default_preset();
                let efuse = preset
                    .efuse
                    .map_or("--".to_string(), |e| format!("{e:02X}"));
                println!(
                    "{:<30} {:<22} L {:02X} H {:02X} E {}  USB {}  {}",
                    b.id,
                    b.mcus.join(","),
                    preset.lfuse,
                    preset.hfuse,
                    efuse,
                    b.usb,
                    b.name
                );
            }
        }
        ListWhat::Programmers => {
            let catalog = ProgrammerCatalog::builtin()?;
            if args.json {
                return print_json(&catalog.all());
            }
            for p in catalog.all() {
                let ids = p
                    .usb
                    .iter()
                    .map(|u| u.id.to_string())
                    .collect::<Vec<_>>()
                    .join(" ");
                println!(
                    "{:<14} -c {:<10} {:<7} {:<30} {}",
                    p.id,
                    p.driver.id(),
                    format!("{:?}", p.port).to_lowercase(),
                    p.name,
                    ids
                );
            }
        }
    }
    Ok(())
}

fn read_with_bytes(path: &Path) -> Result<(isp_toolbox::hex::MemoryImage, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::file("cannot read", path, e))?;
    if bytes.len() as u64 > isp_toolbox::hex::MAX_FILE_SIZE {
        return Err(Error::Image(format!(
            "{} is {} bytes: far too big for AVR firmware; is it the right file?",
            path.display(),
            bytes.len()
        )));
    }
    let image = match ImageFormat::from_path(path) {
        Ok(ImageFormat::Binary) => isp_toolbox::hex::read_bin(&bytes, 0)?,
        _ => read_hex_bytes(&bytes, &path.display().to_string())?,
    };
    Ok((image, bytes))
}

pub fn hex(cmd: &HexCommand) -> Result<()> {
    match cmd {
        HexCommand::Info { file, part, json } => {
            let part = part.as_deref().map(find_part).transpose()?;
            let (image, bytes) = read_with_bytes(file)?;
            let info = inspect(&image, Some(&bytes), part);
            if *json {
                print_json(&info)
            } else {
                print_info(file, &info);
                Ok(())
            }
        }
        HexCommand::Convert { input, output } => {
            // Check the output name before reading anything, so a typo costs nothing.
            ImageFormat::from_path(output)?;
            let image = read_image_file(input)?;
            write_image_file(output, &image)?;
            println!(
                "{} → {}: {} bytes ({})",
                input.display(),
                output.display(),
                image.data_len(),
                image.range_string()
            );
            Ok(())
        }
    }
}

fn print_info(file: &Path, info: &ImageInfo) {
    println!("file:     {}", file.display());
    println!(
        "range:    {} ({} bytes of data)",
        info.range, info.data_bytes
    );
    for s in &info.segments {
        println!("  segment {} ({} bytes)", s.range, s.len);
    }
    println!(
        "pages:    {} of {} bytes",
        info.pages_touched, info.page_size
    );
    println!("sha256:   {} (content)", info.content_sha256);
    if let Some(f) = &info.file_sha256 {
        println!("          {f} (file)");
    }
    match &info.known_build {
        Some(k) => println!(
            "build:    known {}: {} ({}) for {}",
            k.kind,
            k.name,
            k.id,
            k.mcus.join(", ")
        ),
        None => println!("build:    unknown build (not in the catalog)"),
    }
    if let Some(fit) = &info.boot_fit {
        println!("boot:     {}", fit.message);
    }
}

pub fn merge(args: &MergeArgs) -> Result<()> {
    let part = find_part(&args.part)?;
    ImageFormat::from_path(&args.output)?;
    let firmware = read_image_file(&args.firmware)?;
    let bootloader = read_image_file(&args.bootloader)?;
    let boot_start = match args.boot_start {
        Some(start) => start,
        None => {
            // The smallest boot section that holds the whole bootloader.
            let mut sections: Vec<_> = part.boot_sections.iter().collect();
            sections.sort_by_key(|s| s.words);
            sections
                .iter()
                .find(|s| isp_toolbox::hex::fits_boot_section(&bootloader, part, s).is_ok())
                .map(|s| s.start_byte())
                .ok_or_else(|| {
                    Error::Image(format!(
                        "{} does not lie in any boot section of the {} ({}); is it a bootloader for this MCU?",
                        args.bootloader.display(),
                        part.name,
                        bootloader.range_string()
                    ))
                })?
        }
    };
    let merged = isp_toolbox::hex::merge(&firmware, &bootloader, part, boot_start)?;
    write_image_file(&args.output, &merged)?;
    println!(
        "wrote {}: firmware {} + bootloader {} = {} bytes",
        args.output.display(),
        firmware.range_string(),
        bootloader.range_string(),
        merged.data_len()
    );
    Ok(())
}
