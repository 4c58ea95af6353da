//! `isp-toolbox-cli avrdude ARGS...`: runs the avrdude command lines of the guide and the wider
//! QMK world on our engine, so a user can paste them. Options outside the supported set are
//! refused with a clear message; nothing is silently ignored.

use std::path::PathBuf;

use isp_toolbox::hex::{MemoryImage, read_hex_file, read_image_file, write_hex};
use isp_toolbox::job::runner::{JobKind, JobOutcome};
use isp_toolbox::job::safety::FuseValues;
use isp_toolbox::part::FuseKind;
use isp_toolbox::util::parse_byte;
use isp_toolbox::{Error, Memory, Result};

use crate::device::{Conn, approve, find_part, parse_bitclock, run_job_outcome};

/// One `-U memtype:op:filename[:format]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// What memory.
    pub target: Target,
    /// r, w or v.
    pub op: Op,
    /// File name, `-` for stdout/stdin, or the value for format m.
    pub file: String,
    /// i, r, m, h, a.
    pub format: Format,
}

/// A memory avrdude can address with `-U`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// flash or eeprom.
    Memory(Memory),
    /// lfuse, hfuse, efuse or lock.
    Fuse(FuseKind),
}

/// `-U` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read to a file.
    Read,
    /// Write from a file.
    Write,
    /// Verify against a file.
    Verify,
}

/// `-U` file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Intel HEX.
    Ihex,
    /// Raw binary.
    Raw,
    /// Immediate value on the command line.
    Immediate,
    /// Hexadecimal number text (for reading fuses).
    Hex,
    /// Auto-detect (Intel HEX or raw by content).
    Auto,
}

/// A parsed avrdude command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// -c
    pub programmer: Option<String>,
    /// -P
    pub port: Option<String>,
    /// -p
    pub part: Option<String>,
    /// -b
    pub baud: Option<u32>,
    /// -B
    pub bitclock: Option<u32>,
    /// -e
    pub erase: bool,
    /// -D
    pub no_auto_erase: bool,
    /// -V
    pub no_verify: bool,
    /// -F
    pub force: bool,
    /// -v (count)
    pub verbose: u32,
    /// -q (count)
    pub quiet: u32,
    /// -U, in order.
    pub operations: Vec<Operation>,
}

/// Parses avrdude's arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation> {
    let mut inv = Invocation::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "avrdude" && i == 0 {
            // Pasted with the program name.
            i += 1;
            continue;
        }
        let Some(flag) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(Error::invalid(format!(
                "unexpected argument '{arg}': avrdude takes options only (-c -P -p -b -B -e -D -V -F -U -v -q)"
            )));
        };
        let letter = &flag[..1];
        let attached = &flag[1..];
        let mut value = |name: &str| -> Result<String> {
            if !attached.is_empty() {
                Ok(attached.to_string())
            } else {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| Error::invalid(format!("option -{name} needs a value")))
            }
        };
        match letter {
            "c" => inv.programmer = Some(value("c")?),
            "P" => inv.port = Some(value("P")?),
            "p" => inv.part = Some(value("p")?),
            "b" => {
                let v = value("b")?;
                inv.baud = Some(
                    v.parse()
                        .map_err(|_| Error::invalid(format!("-b {v}: not a baud rate")))?,
                );
            }
            "B" => {
                let v = value("B")?;
                inv.bitclock = Some(parse_bitclock(&v).map_err(Error::invalid)?);
            }
            "U" => inv.operations.push(parse_operation(&value("U")?)?),
            "e" | "D" | "V" | "F" | "v" | "q" => {
                for c in flag.chars() {
                    match c {
                        'e' => inv.erase = true,
                        'D' => inv.no_auto_erase = true,
                        'V' => inv.no_verify = true,
                        'F' => inv.force = true,
                        'v' => inv.verbose += 1,
                        'q' => inv.quiet += 1,
                        other => {
                            return Err(Error::invalid(format!(
                                "option -{other} (in -{flag}) is not supported by ISP Toolbox's avrdude mode"
                            )));
                        }
                    }
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "avrdude option -{letter} is not supported here; supported: -c -P -p -b -B -e -D -V -F -U -v -q (run real avrdude for the rest)"
                )));
            }
        }
        i += 1;
    }
    Ok(inv)
}

/// Parses `memtype:op:filename[:format]`, allowing a `C:\` drive letter in the file name.
pub fn parse_operation(spec: &str) -> Result<Operation> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "-U {spec}: {why} (expected memtype:op:filename[:format], e.g. flash:w:Caterina.hex:i or lfuse:w:0xFF:m)"
        ))
    };
    let (memtype, rest) = spec.split_once(':').ok_or_else(|| bad("missing ':'"))?;
    let (op, rest) = rest
        .split_once(':')
        .ok_or_else(|| bad("missing the operation"))?;
    // The format, if present, is a single letter after the last ':'.
    let (file, format) = match rest.rsplit_once(':') {
        Some((file, f)) if f.len() == 1 && !(file.len() == 1 && f.starts_with('\\')) => {
            (file, Some(f))
        }
        _ => (rest, None),
    };
    if file.is_empty() {
        return Err(bad("missing the file name"));
    }
    let target = match memtype.to_ascii_lowercase().as_str() {
        "flash" => Target::Memory(Memory::Flash),
        "eeprom" => Target::Memory(Memory::Eeprom),
        other => Target::Fuse(
            FuseKind::parse(other)
                .filter(|_| matches!(other, "lfuse" | "hfuse" | "efuse" | "lock"))
                .ok_or_else(|| bad(&format!("memory '{other}' is not supported (flash, eeprom, lfuse, hfuse, efuse, lock)")))?,
        ),
    };
    let op = match op {
        "r" => Op::Read,
        "w" => Op::Write,
        "v" => Op::Verify,
        other => return Err(bad(&format!("operation '{other}' is not r, w or v"))),
    };
    let format = match format {
        None | Some("a") => Format::Auto,
        Some("i") => Format::Ihex,
        Some("r") => Format::Raw,
        Some("m") => Format::Immediate,
        Some("h") => Format::Hex,
        Some(other) => {
            return Err(bad(&format!(
                "format '{other}' is not supported (i, r, m, h, a)"
            )));
        }
    };
    Ok(Operation {
        target,
        op,
        file: file.to_string(),
        format,
    })
}

fn load_image(op: &Operation) -> Result<MemoryImage> {
    let path = PathBuf::from(&op.file);
    match op.format {
        Format::Ihex => read_hex_file(&path),
        Format::Raw => {
            let bytes = std::fs::read(&path).map_err(|e| Error::file("cannot read", &path, e))?;
            isp_toolbox::hex::read_bin(&bytes, 0)
        }
        Format::Auto => {
            let bytes = std::fs::read(&path).map_err(|e| Error::file("cannot read", &path, e))?;
            if bytes.first() == Some(&b':') {
                isp_toolbox::hex::read_hex_bytes(&bytes, &op.file)
            } else {
                read_image_file(&path)
            }
        }
        Format::Immediate | Format::Hex => Err(Error::invalid(format!(
            "-U {}: format m/h is for fuses, not memories",
            op.file
        ))),
    }
}

fn fuse_value(op: &Operation) -> Result<u8> {
    match op.format {
        Format::Immediate => parse_byte(&op.file)
            .ok_or_else(|| Error::invalid(format!("'{}' is not a byte value", op.file))),
        _ => {
            let path = PathBuf::from(&op.file);
            let text =
                std::fs::read_to_string(&path).map_err(|e| Error::file("cannot read", &path, e))?;
            parse_byte(text.trim())
                .ok_or_else(|| Error::invalid(format!("{}: not a byte value", path.display())))
        }
    }
}

/// Runs a parsed invocation with our engine.
pub fn execute(args: &[String], yes: bool, force_critical: bool) -> Result<()> {
    let inv = parse(args)?;
    let conn = Conn {
        programmer: inv
            .programmer
            .clone()
            .ok_or_else(|| Error::invalid("no programmer given (-c)"))?,
        port: inv.port.clone().unwrap_or_else(|| "usb".into()),
        mcu: inv
            .part
            .clone()
            .ok_or_else(|| Error::invalid("no part given (-p)"))?,
        baud: inv.baud,
        bitclock: inv.bitclock,
        crystal_hz: None,
        json: false,
        yes,
        force_critical,
        verbose: inv.verbose > 0,
    };
    let part = find_part(&conn.mcu)?;
    if inv.force {
        eprintln!(
            "note: -F is accepted, but ISP Toolbox still refuses a target whose signature is another part"
        );
    }
    // Check every file and value before anything touches the chip.
    let mut steps: Vec<JobKind> = Vec::new();
    let writes_flash = inv
        .operations
        .iter()
        .any(|o| o.op == Op::Write && o.target == Target::Memory(Memory::Flash));
    let mut erased = false;
    if inv.erase || (writes_flash && !inv.no_auto_erase) {
        steps.push(JobKind::Erase);
        erased = true;
    }
    let mut pending_fuses = FuseValues::new();
    let mut outputs: Vec<(usize, Operation)> = Vec::new();
    for op in &inv.operations {
        if !matches!((op.target, op.op), (Target::Fuse(_), Op::Write)) && !pending_fuses.is_empty()
        {
            steps.push(fuse_step(&conn, part, std::mem::take(&mut pending_fuses))?);
        }
        match (op.target, op.op) {
            (Target::Memory(memory), Op::Write) => {
                let image = load_image(op)?;
                steps.push(match memory {
                    Memory::Flash => JobKind::FlashImage {
                        image,
                        erase: false,
                        erased_before: erased,
                        verify: !inv.no_verify,
                    },
                    Memory::Eeprom => JobKind::WriteEeprom {
                        image,
                        verify: !inv.no_verify,
                    },
                });
            }
            (Target::Memory(memory), Op::Verify) => steps.push(JobKind::Verify {
                memory,
                image: load_image(op)?,
            }),
            (Target::Memory(memory), Op::Read) => {
                if op.file == "-" {
                    outputs.push((steps.len(), op.clone()));
                    steps.push(JobKind::Read {
                        memory,
                        path: std::env::temp_dir()
                            .join(format!("isp-toolbox-{}.hex", std::process::id())),
                    });
                } else {
                    let path = PathBuf::from(&op.file);
                    if op.format == Format::Raw && !op.file.ends_with(".bin") {
                        return Err(Error::invalid(format!(
                            "-U {}: raw output needs a .bin file name here",
                            op.file
                        )));
                    }
                    steps.push(JobKind::Read { memory, path });
                }
            }
            (Target::Fuse(kind), Op::Write) => {
                pending_fuses.insert(kind, fuse_value(op)?);
            }
            (Target::Fuse(_), Op::Read | Op::Verify) => {
                outputs.push((steps.len(), op.clone()));
                steps.push(JobKind::ReadFuses);
            }
        }
    }
    if !pending_fuses.is_empty() {
        steps.push(fuse_step(&conn, part, pending_fuses)?);
    }
    if steps.is_empty() {
        steps.push(JobKind::Detect);
    }
    for (index, step) in steps.into_iter().enumerate() {
        let outcome = run_job_outcome(&conn, step)?;
        for (_, op) in outputs.iter().filter(|(i, _)| *i == index) {
            emit(op, &outcome)?;
        }
    }
    eprintln!("avrdude-compatible run done.  Thank you.");
    Ok(())
}

fn fuse_step(conn: &Conn, part: &isp_toolbox::part::Part, values: FuseValues) -> Result<JobKind> {
    for (&kind, &value) in &values {
        isp_toolbox::job::safety::normalize(part, kind, value)?;
    }
    let approval = approve(conn, part, &values)?;
    Ok(JobKind::WriteFuses { values, approval })
}

/// Writes what a read or verify of a fuse (or a memory to stdout) produced.
fn emit(op: &Operation, outcome: &JobOutcome) -> Result<()> {
    match (op.target, outcome) {
        (Target::Fuse(kind), JobOutcome::Fuses { values }) => {
            let value = values
                .get(&kind)
                .copied()
                .ok_or_else(|| Error::invalid(format!("the part has no {kind}")))?;
            if op.op == Op::Verify {
                let expected = fuse_value(op)?;
                if expected != value {
                    return Err(Error::FuseVerify {
                        fuse: kind.avrdude_name(),
                        wrote: expected,
                        read: value,
                        mask: 0xFF,
                    });
                }
                eprintln!("{kind} verified: 0x{value:02X}");
                return Ok(());
            }
            let text = format!("0x{value:02x}\n");
            if op.file == "-" {
                print!("{text}");
                Ok(())
            } else {
                isp_toolbox::hex::write_atomic(&op.file, text.as_bytes())
            }
        }
        (Target::Memory(_), JobOutcome::Read { path, .. }) => {
            let image = read_hex_file(path)?;
            let _ = std::fs::remove_file(path);
            print!("{}", write_hex(&image));
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_guides_commands_parse() {
        let inv = parse(&args(
            "avrdude -c avrisp -P /dev/ttyACM0 -p atmega32u4 -U flash:w:Caterina-Micro.hex:i -U lfuse:w:0xFF:m -U hfuse:w:0xD8:m -U efuse:w:0xCB:m",
        ))
        .unwrap();
        assert_eq!(inv.programmer.as_deref(), Some("avrisp"));
        assert_eq!(inv.port.as_deref(), Some("/dev/ttyACM0"));
        assert_eq!(inv.operations.len(), 4);
        assert_eq!(inv.operations[1].target, Target::Fuse(FuseKind::Low));
        assert_eq!(inv.operations[1].format, Format::Immediate);
        let attached = parse(&args("-cusbasp -pm32u4 -B4 -eV -Uhfuse:r:-:h")).unwrap();
        assert!(attached.erase && attached.no_verify);
        assert_eq!(attached.bitclock, Some(250_000));
        assert_eq!(attached.operations[0].op, Op::Read);
    }

    #[test]
    fn windows_paths_and_missing_formats() {
        let op = parse_operation(r"flash:w:C:\qmk\promicro_production.hex:i").unwrap();
        assert_eq!(op.file, r"C:\qmk\promicro_production.hex");
        let op = parse_operation("flash:w:file.hex").unwrap();
        assert_eq!(op.format, Format::Auto);
    }

    #[test]
    fn unsupported_options_are_refused_clearly() {
        for bad in [
            "-c avrisp -x attempts=3",
            "-t",
            "-U calibration:r:-:h",
            "-U flash:x:f.hex:i",
            "-U flash:w:f.hex:s",
            "stray",
        ] {
            let err = parse(&args(bad)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}: {err}");
        }
    }
}
