//! Commands that talk to a programmer: detect, bootloader, flash, verify, read, erase, fuses,
//! lock, eeprom. Each builds a job, checks its inputs before connecting, and runs it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use isp_toolbox::catalog::{Bootloader, BootloaderCatalog, ProgrammerCatalog};
use isp_toolbox::emulate::demo::{demo_chip, load_chip};
use isp_toolbox::emulate::socket::{SharedSocket, Socket, lock};
use isp_toolbox::hex::read_image_file;
use isp_toolbox::job::backup::BackupOptions;
use isp_toolbox::job::bootloader::{BootloaderPlan, validate};
use isp_toolbox::job::runner::{JobKind, JobOutcome, JobRequest, run};
use isp_toolbox::job::safety::{Approval, FuseValues, fuse_list, review};
use isp_toolbox::job::{CancelToken, JobEvent};
use isp_toolbox::part::{FuseKind, Part, PartDb, Risk};
use isp_toolbox::programmer::open::ProgrammerSpec;
use isp_toolbox::util::parse_byte;
use isp_toolbox::{Error, Memory, Result};

use crate::progress::TerminalReporter;

/// Where the emulated board of port `emulated` is kept between CLI runs, if set.
pub const EMULATED_STATE_ENV: &str = "ISP_TOOLBOX_EMULATED_STATE";

/// Options every device command takes.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Programmer: avrisp (Pro Micro / Teensy / Arduino as ISP), usbasp, usbtiny, buspirate;
    /// avr109 writes through the target's own Caterina bootloader.
    #[arg(short = 'c', long = "programmer")]
    pub programmer: String,
    /// Port: a serial port (/dev/ttyACM0, COM3), `usb`, or `emulated` (no hardware needed).
    #[arg(short = 'P', long = "port", default_value = "usb")]
    pub port: String,
    /// Target MCU (atmega32u4, m32u4, ...).
    #[arg(short = 'p', long = "mcu")]
    pub mcu: String,
    /// Serial baud rate (default: the programmer's).
    #[arg(short = 'b', long = "baud")]
    pub baud: Option<u32>,
    /// ISP clock: a period in microseconds like avrdude's -B (e.g. 8), or a frequency (250kHz).
    #[arg(short = 'B', long = "bitclock", value_parser = parse_bitclock)]
    pub bitclock: Option<u32>,
    /// The target board's crystal in Hz (for the fastest safe ISP clock; default from the
    /// bootloader catalog, else 16 MHz).
    #[arg(long)]
    pub crystal_hz: Option<u32>,
    /// Machine-readable result on stdout.
    #[arg(long)]
    pub json: bool,
    /// Accept high-risk fuse changes without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Expert override: allow fuse changes that can lock out ISP for good.
    #[arg(long)]
    pub force_critical: bool,
    /// Show debug details.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// Parses `-B`: a bare number is a period in µs (avrdude), a suffix makes it a frequency.
pub fn parse_bitclock(text: &str) -> std::result::Result<u32, String> {
    let t = text.trim().to_ascii_lowercase();
    let (number, scale) = if let Some(n) = t.strip_suffix("mhz") {
        (n, Some(1e6))
    } else if let Some(n) = t.strip_suffix("khz") {
        (n, Some(1e3))
    } else if let Some(n) = t.strip_suffix("hz") {
        (n, Some(1.0))
    } else {
        (t.strip_suffix("us").unwrap_or(&t), None)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a bit clock (use 8 for 8 µs, or 250kHz)"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("'{text}' must be positive"));
    }
    let hz = match scale {
        Some(s) => value * s,
        None => 1e6 / value,
    };
    if !(1.0..=50e6).contains(&hz) {
        return Err(format!("'{text}' is outside 1 Hz..50 MHz"));
    }
    Ok(hz as u32)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MemoryArg {
    /// Program memory.
    Flash,
    /// Data EEPROM.
    Eeprom,
}

impl From<MemoryArg> for Memory {
    fn from(m: MemoryArg) -> Memory {
        match m {
            MemoryArg::Flash => Memory::Flash,
            MemoryArg::Eeprom => Memory::Eeprom,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Read the signature, fuses and lock bits, and identify the chip.
    Detect(Conn),
    /// Flash a bootloader and its fuses (the main journey).
    Bootloader {
        #[command(flatten)]
        conn: Conn,
        /// Catalog id of the bootloader (see `list bootloaders`); sets the fuse preset.
        #[arg(long)]
        bootloader: Option<String>,
        /// Preset of that bootloader (default, jtag-disabled).
        #[arg(long)]
        preset: Option<String>,
        /// Override individual fuse bytes (0xFF).
        #[arg(long, value_parser = parse_byte_arg)]
        lfuse: Option<u8>,
        /// High fuse.
        #[arg(long, value_parser = parse_byte_arg)]
        hfuse: Option<u8>,
        /// Extended fuse.
        #[arg(long, value_parser = parse_byte_arg)]
        efuse: Option<u8>,
        /// Lock byte to write after the fuses.
        #[arg(long, value_parser = parse_byte_arg)]
        lock: Option<u8>,
        /// Also back up the whole flash and EEPROM before erasing.
        #[arg(long)]
        backup_memories: bool,
        /// Skip the fuse/lock backup.
        #[arg(long)]
        no_backup: bool,
        /// The bootloader .hex file.
        file: PathBuf,
    },
    /// Write an image to flash (erase, write, verify).
    Flash {
        #[command(flatten)]
        conn: Conn,
        /// Do not erase first: pages keep what they hold where the image has gaps.
        #[arg(short = 'D', long)]
        no_erase: bool,
        /// Skip the verify.
        #[arg(short = 'V', long)]
        no_verify: bool,
        /// The .hex or .bin file.
        file: PathBuf,
    },
    /// Compare flash (or EEPROM) with a file.
    Verify {
        #[command(flatten)]
        conn: Conn,
        /// Which memory.
        #[arg(long, value_enum, default_value = "flash")]
        memory: MemoryArg,
        /// The .hex or .bin file.
        file: PathBuf,
    },
    /// Read flash or EEPROM to a file (.hex or .bin).
    Read {
        #[command(flatten)]
        conn: Conn,
        /// Which memory.
        #[arg(long, value_enum, default_value = "flash")]
        memory: MemoryArg,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Chip erase (flash, EEPROM unless EESAVE, lock bits).
    Erase(Conn),
    /// Read or write fuses.
    Fuses {
        #[command(subcommand)]
        action: FusesAction,
    },
    /// Write the lock byte.
    Lock {
        #[command(flatten)]
        conn: Conn,
        /// Lock byte value (0x3C locks flash reads).
        #[arg(value_parser = parse_byte_arg)]
        value: u8,
    },
    /// Write, clear or read EEPROM.
    Eeprom {
        #[command(subcommand)]
        action: EepromAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum FusesAction {
    /// Read and decode the fuses and lock byte.
    Read(Conn),
    /// Write fuses through the safety policy.
    Write {
        #[command(flatten)]
        conn: Conn,
        /// Low fuse.
        #[arg(long, value_parser = parse_byte_arg)]
        lfuse: Option<u8>,
        /// High fuse.
        #[arg(long, value_parser = parse_byte_arg)]
        hfuse: Option<u8>,
        /// Extended fuse.
        #[arg(long, value_parser = parse_byte_arg)]
        efuse: Option<u8>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EepromAction {
    /// Write an image to EEPROM and verify it.
    Write {
        #[command(flatten)]
        conn: Conn,
        /// The .hex/.eep or .bin file.
        file: PathBuf,
    },
    /// Set every EEPROM byte to 0xFF.
    Clear(Conn),
    /// Read EEPROM to a file.
    Read {
        #[command(flatten)]
        conn: Conn,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn parse_byte_arg(s: &str) -> std::result::Result<u8, String> {
    parse_byte(s).ok_or_else(|| format!("'{s}' is not a byte (use 0xD8)"))
}

/// Runs a device command.
pub fn execute(command: DeviceCommand) -> Result<()> {
    match command {
        DeviceCommand::Detect(conn) => run_job(&conn, JobKind::Detect),
        DeviceCommand::Bootloader {
            conn,
            bootloader,
            preset,
            lfuse,
            hfuse,
            efuse,
            lock,
            backup_memories,
            no_backup,
            file,
        } => {
            let part = find_part(&conn.mcu)?;
            let entry = bootloader
                .as_deref()
                .map(|id| BootloaderCatalog::builtin().and_then(|c| c.get(id)))
                .transpose()?;
            let mut fuses = preset_values(part, entry, preset.as_deref())?;
            for (kind, value) in [
                (FuseKind::Low, lfuse),
                (FuseKind::High, hfuse),
                (FuseKind::Extended, efuse),
                (FuseKind::Lock, lock),
            ] {
                if let Some(v) = value {
                    fuses.insert(kind, v);
                }
            }
            let image = read_image_file(&file)?;
            let validation = validate(part, &image, &fuses, entry)?;
            eprintln!(
                "{}: {} bytes at {}, {}",
                file.display(),
                validation.bytes,
                validation.range,
                validation
                    .known_build
                    .as_deref()
                    .map_or("unknown build".to_string(), |b| format!("known build {b}"))
            );
            for w in &validation.warnings {
                eprintln!("warning: {w}");
            }
            let mut conn = conn;
            if conn.crystal_hz.is_none() {
                conn.crystal_hz = entry.map(|e| e.board_clock_hz);
            }
            let approval = approve(&conn, part, &fuses)?;
            let backup = if no_backup {
                BackupOptions {
                    dir: None,
                    memories: false,
                }
            } else {
                BackupOptions {
                    memories: backup_memories,
                    ..BackupOptions::default_location()
                }
            };
            run_job(
                &conn,
                JobKind::FlashBootloader(BootloaderPlan {
                    image,
                    fuses,
                    approval,
                    backup,
                }),
            )
        }
        DeviceCommand::Flash {
            conn,
            no_erase,
            no_verify,
            file,
        } => {
            let image = read_image_file(&file)?;
            run_job(
                &conn,
                JobKind::FlashImage {
                    image,
                    erase: !no_erase,
                    erased_before: false,
                    verify: !no_verify,
                },
            )
        }
        DeviceCommand::Verify { conn, memory, file } => {
            let image = read_image_file(&file)?;
            run_job(
                &conn,
                JobKind::Verify {
                    memory: memory.into(),
                    image,
                },
            )
        }
        DeviceCommand::Read {
            conn,
            memory,
            output,
        } => run_job(
            &conn,
            JobKind::Read {
                memory: memory.into(),
                path: output,
            },
        ),
        DeviceCommand::Erase(conn) => run_job(&conn, JobKind::Erase),
        DeviceCommand::Fuses { action } => match action {
            FusesAction::Read(conn) => run_job(&conn, JobKind::ReadFuses),
            FusesAction::Write {
                conn,
                lfuse,
                hfuse,
                efuse,
            } => {
                let values: FuseValues = [
                    (FuseKind::Low, lfuse),
                    (FuseKind::High, hfuse),
                    (FuseKind::Extended, efuse),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
                if values.is_empty() {
                    return Err(Error::invalid(
                        "give at least one of --lfuse, --hfuse, --efuse",
                    ));
                }
                write_fuses(&conn, values)
            }
        },
        DeviceCommand::Lock { conn, value } => write_fuses(&conn, [(FuseKind::Lock, value)].into()),
        DeviceCommand::Eeprom { action } => match action {
            EepromAction::Write { conn, file } => {
                let image = read_image_file(&file)?;
                run_job(
                    &conn,
                    JobKind::WriteEeprom {
                        image,
                        verify: true,
                    },
                )
            }
            EepromAction::Clear(conn) => run_job(&conn, JobKind::ClearEeprom),
            EepromAction::Read { conn, output } => run_job(
                &conn,
                JobKind::Read {
                    memory: Memory::Eeprom,
                    path: output,
                },
            ),
        },
    }
}

pub fn find_part(name: &str) -> Result<&'static Part> {
    PartDb::builtin()?.find(name)
}

/// The fuse values of a bootloader's preset (or the one catalog entry for this part, when
/// there is only one and none was named).
fn preset_values(
    part: &Part,
    entry: Option<&Bootloader>,
    preset: Option<&str>,
) -> Result<FuseValues> {
    let Some(entry) = entry else {
        if preset.is_some() {
            return Err(Error::invalid("--preset needs --bootloader"));
        }
        return Ok(FuseValues::new());
    };
    if !entry.runs_on(&part.id) {
        return Err(Error::invalid(format!(
            "the bootloader '{}' is for {}, not the {}",
            entry.id,
            entry.mcus.join(" / "),
            part.name
        )));
    }
    let chosen = match preset {
        None => entry.default_preset(),
        Some(id) => entry.preset(id).ok_or_else(|| Error::Unknown {
            what: "preset",
            name: id.to_string(),
            known: entry.presets.iter().map(|p| p.id.clone()).collect(),
        })?,
    };
    Ok(chosen.values().collect())
}

fn write_fuses(conn: &Conn, values: FuseValues) -> Result<()> {
    let part = find_part(&conn.mcu)?;
    for (&kind, &value) in &values {
        isp_toolbox::job::safety::normalize(part, kind, value)?;
    }
    let approval = approve(conn, part, &values)?;
    run_job(conn, JobKind::WriteFuses { values, approval })
}

/// Works out the approval for writing `proposed`: flags first; otherwise reads the current
/// fuses, shows the review and asks on a terminal. Refuses (exit 3) when it cannot ask.
pub fn approve(conn: &Conn, part: &Part, proposed: &FuseValues) -> Result<Approval> {
    let flags = Approval {
        confirmed_token: None,
        accept_high: conn.yes,
        force_critical: conn.force_critical,
    };
    if proposed.is_empty() || conn.force_critical {
        return Ok(flags);
    }
    // What does the chip hold now? One short session.
    let current = match run_quiet(conn, JobKind::ReadFuses)? {
        JobOutcome::Fuses { values } => values,
        _ => FuseValues::new(),
    };
    let review = review(part, &current, proposed)?;
    match review.risk {
        Risk::Normal => Ok(flags),
        Risk::Critical => {
            eprint!("{}", review.describe());
            Err(Error::Refused(format!(
                "{}; re-run with --force-critical only if you can recover with a high-voltage programmer",
                review
                    .critical_changes()
                    .map(|c| c.summary())
                    .collect::<Vec<_>>()
                    .join("; ")
            )))
        }
        Risk::High if conn.yes => Ok(flags),
        Risk::High => {
            eprintln!("This fuse change is HIGH RISK for the {}:", part.name);
            eprint!("{}", review.describe());
            if !std::io::stdin().is_terminal() {
                return Err(Error::Refused(
                    "high-risk fuse change and no terminal to confirm it on; re-run with --yes to accept it".into(),
                ));
            }
            eprint!("Type 'yes' to write these fuses: ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut answer)
                .map_err(|e| Error::invalid(format!("cannot read the answer: {e}")))?;
            if answer.trim().eq_ignore_ascii_case("yes") {
                Ok(Approval {
                    confirmed_token: Some(review.confirmation_token()),
                    ..flags
                })
            } else {
                Err(Error::Refused("not confirmed; nothing was written".into()))
            }
        }
    }
}

fn spec(conn: &Conn) -> ProgrammerSpec {
    ProgrammerSpec {
        driver: conn.programmer.clone(),
        port: conn.port.clone(),
        baud: conn.baud,
        sck_hz: conn.bitclock,
        crystal_hz: conn.crystal_hz,
    }
}

/// The emulated board for port `emulated`: one per process (so the steps of an `avrdude`
/// command line see each other's work), loaded from `$ISP_TOOLBOX_EMULATED_STATE` when set.
fn emulated_board(conn: &Conn, part: &Part) -> Result<Option<(SharedSocket, Option<PathBuf>)>> {
    static BOARD: std::sync::Mutex<Option<(String, SharedSocket)>> = std::sync::Mutex::new(None);
    if !spec(conn).is_emulated() {
        return Ok(None);
    }
    let dir = std::env::var_os(EMULATED_STATE_ENV).map(PathBuf::from);
    let mut board = BOARD.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((id, socket)) = board.as_ref()
        && *id == part.id
    {
        return Ok(Some((socket.clone(), dir)));
    }
    let chip = match &dir {
        Some(d) => load_chip(d, part)?.unwrap_or_else(|| demo_chip(part)),
        None => demo_chip(part),
    };
    let socket = Socket::with_chip(chip).shared();
    *board = Some((part.id.clone(), socket.clone()));
    Ok(Some((socket, dir)))
}

fn save_board(board: &Option<(SharedSocket, Option<PathBuf>)>) -> Result<()> {
    if let Some((socket, Some(dir))) = board
        && let Some(chip) = lock(socket).chip()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::file("cannot create", dir, e))?;
        chip.dump(dir)?;
    }
    Ok(())
}

fn run_quiet(conn: &Conn, kind: JobKind) -> Result<JobOutcome> {
    let part = find_part(&conn.mcu)?;
    let board = emulated_board(conn, part)?;
    let request = JobRequest {
        programmer: spec(conn),
        part: conn.mcu.clone(),
        kind,
    };
    let mut sink = |_: JobEvent| {};
    let result = run(
        &request,
        &mut sink,
        CancelToken::new(),
        board.as_ref().map(|b| b.0.clone()),
    );
    save_board(&board)?;
    result
}

fn run_job(conn: &Conn, kind: JobKind) -> Result<()> {
    let part = find_part(&conn.mcu)?;
    let outcome = run_job_outcome(conn, kind)?;
    if conn.json {
        let text = serde_json::to_string_pretty(&outcome)
            .map_err(|e| Error::invalid(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
    } else {
        print_outcome(part, &outcome);
    }
    Ok(())
}

/// Runs one job with progress on the terminal and returns its outcome.
pub fn run_job_outcome(conn: &Conn, kind: JobKind) -> Result<JobOutcome> {
    let part = find_part(&conn.mcu)?;
    check_programmer(conn, part)?;
    let board = emulated_board(conn, part)?;
    let request = JobRequest {
        programmer: spec(conn),
        part: conn.mcu.clone(),
        kind,
    };
    let cancel = CancelToken::new();
    install_ctrl_c(&cancel);
    let result = {
        let mut reporter = TerminalReporter::new(conn.verbose);
        run(
            &request,
            &mut reporter,
            cancel,
            board.as_ref().map(|b| b.0.clone()),
        )
    };
    save_board(&board)?;
    result
}

/// Unknown programmer names fail before any port is opened.
fn check_programmer(conn: &Conn, part: &Part) -> Result<()> {
    // `sim` and a bootloader (`avr109`) are not catalog programmers.
    if conn.programmer.eq_ignore_ascii_case("sim")
        || isp_toolbox::catalog::Driver::from_alias(&conn.programmer)
            == Some(isp_toolbox::catalog::Driver::Avr109)
    {
        return Ok(());
    }
    let catalog = ProgrammerCatalog::builtin()?;
    let programmer = catalog.find(&conn.programmer)?;
    if !programmer.can_program(part)
        && let Some(max) = programmer.max_flash_bytes
    {
        eprintln!(
            "warning: {} can only reach the first {} KB of flash; the {} has {} KB",
            programmer.name,
            max / 1024,
            part.name,
            part.flash.size / 1024
        );
    }
    Ok(())
}

pub(crate) fn install_ctrl_c(cancel: &CancelToken) {
    // SIGINT stops the job at the next page; a second Ctrl-C kills the process as usual.
    static TOKEN: std::sync::OnceLock<CancelToken> = std::sync::OnceLock::new();
    if TOKEN.set(cancel.clone()).is_ok() {
        #[cfg(unix)]
        unsafe {
            extern "C" fn on_sigint(_: libc::c_int) {
                if let Some(token) = TOKEN.get() {
                    if token.is_cancelled() {
                        unsafe { libc::_exit(130) };
                    }
                    token.cancel();
                }
            }
            libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        }
    }
}

fn print_outcome(part: &Part, outcome: &JobOutcome) {
    match outcome {
        JobOutcome::Detected(report) => {
            println!(
                "signature {} = {}",
                isp_toolbox::util::hex_bytes(&report.signature),
                if report.parts.is_empty() {
                    "unknown part".to_string()
                } else {
                    report
                        .parts
                        .iter()
                        .filter_map(|id| PartDb::builtin().ok()?.find(id).ok())
                        .map(|p| p.name.clone())
                        .collect::<Vec<_>>()
                        .join(" / ")
                }
            );
            if let Some(hz) = report.cpu_hz {
                println!("clock     {}", isp_toolbox::job::sck::format_hz(hz));
            }
            print_fuses(&report.fuses);
            let mut current = None;
            for f in &report.decoded {
                if current != Some(f.fuse) {
                    println!("{}:", f.fuse.label());
                    current = Some(f.fuse);
                }
                println!("  {:<9} {:>2} {}", f.name, f.value, f.meaning);
            }
        }
        JobOutcome::Bootloader(r) => {
            println!(
                "bootloader flashed and verified ({} pages); fuses:",
                r.pages_written
            );
            print_fuses(&r.fuses_after);
            if let Some(b) = &r.backup_file {
                println!("backup of the previous fuses: {}", b.display());
            }
        }
        JobOutcome::Flashed { write, verified } => println!(
            "{} page(s) written{}{}",
            write.pages_written.len(),
            if write.pages_skipped > 0 {
                format!(", {} blank skipped", write.pages_skipped)
            } else {
                String::new()
            },
            if *verified { ", verified" } else { "" }
        ),
        JobOutcome::Verified { bytes } => println!("{bytes} bytes verified"),
        JobOutcome::Read { path, bytes } => println!("{bytes} bytes saved to {}", path.display()),
        JobOutcome::Erased => println!("chip erased"),
        JobOutcome::Fuses { values } => {
            print_fuses(values);
            for (kind, value) in values {
                for f in isp_toolbox::part::decode_byte(part, *kind, *value) {
                    println!(
                        "  {:<6} {:<9} {:>2} {}",
                        kind.avrdude_name(),
                        f.name,
                        f.value,
                        f.meaning
                    );
                }
            }
        }
        JobOutcome::FusesWritten(r) => {
            println!(
                "written: {}",
                r.written
                    .iter()
                    .map(|k| k.avrdude_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            print_fuses(&r.after);
        }
    }
}

fn print_fuses(values: &FuseValues) {
    println!("{}", fuse_list(values));
}

#[cfg(test)]
mod tests {
    use super::parse_bitclock;

    #[test]
    fn bitclock_like_avrdude() {
        assert_eq!(parse_bitclock("8"), Ok(125_000));
        assert_eq!(parse_bitclock("1"), Ok(1_000_000));
        assert_eq!(parse_bitclock("250kHz"), Ok(250_000));
        assert_eq!(parse_bitclock("1.5MHz"), Ok(1_500_000));
        assert!(parse_bitclock("0").is_err());
        assert!(parse_bitclock("fast").is_err());
    }
}
