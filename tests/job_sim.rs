//! The job layer against the ideal `sim` programmer on an emulated chip, for every part.

use isp_toolbox::Memory;
use isp_toolbox::emulate::socket::{Socket, lock};
use isp_toolbox::emulate::{ChipConfig, EmulatedChip, FuseValues as ChipFuses};
use isp_toolbox::error::Error;
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::job::backup::BackupOptions;
use isp_toolbox::job::bootloader::{BootloaderPlan, flash_bootloader, validate};
use isp_toolbox::job::safety::{Approval, FuseValues};
use isp_toolbox::job::{CancelToken, Ctx, JobEvent, Stage, detect, fuses, memory};
use isp_toolbox::part::{FuseKind, Part, PartDb};
use isp_toolbox::programmer::sim::SimProgrammer;

fn parts() -> &'static [Part] {
    PartDb::builtin().unwrap().all()
}

/// A chip as a keyboard maker finds it: running at the board's 16 MHz, not CKDIV8.
fn running_chip(part: &Part) -> EmulatedChip {
    let fuses = ChipFuses {
        lfuse: 0xFF,
        hfuse: part.fuse(FuseKind::High).unwrap().default,
        efuse: part.fuse(FuseKind::Extended).map(|e| e.default),
    };
    EmulatedChip::new(
        part,
        ChipConfig {
            fuses: Some(fuses),
            ..Default::default()
        },
    )
    .unwrap()
}

/// A synthetic bootloader filling the smallest boot section the preset gives, with a pattern.
fn synthetic_bootloader(part: &Part, hfuse: u8) -> MemoryImage {
    let section = part.boot_section_for_hfuse(hfuse).unwrap();
    let data: Vec<u8> = (0..section.bytes()).map(|i| (i * 7 + 3) as u8).collect();
    let mut image = MemoryImage::new();
    image.insert(section.start_byte(), &data).unwrap();
    image
}

fn run<T>(
    socket: &isp_toolbox::emulate::socket::SharedSocket,
    part: &Part,
    events: &mut Vec<JobEvent>,
    cancel: CancelToken,
    body: impl FnOnce(&mut Ctx<'_>) -> isp_toolbox::Result<T>,
) -> isp_toolbox::Result<T> {
    let mut prog = SimProgrammer::new(socket.clone());
    let mut reporter = |e: JobEvent| events.push(e);
    let mut ctx = Ctx::new(&mut prog, part, &mut reporter, cancel);
    ctx.session(body)
}

#[test]
fn detect_identifies_every_part_and_decodes_fuses() {
    for part in parts() {
        let socket = Socket::with_chip(running_chip(part)).shared();
        let mut events = Vec::new();
        let report = run(
            &socket,
            part,
            &mut events,
            CancelToken::new(),
            detect::detect,
        )
        .unwrap();
        assert_eq!(report.signature, part.signature, "{}", part.name);
        assert!(report.parts.contains(&part.id));
        assert_eq!(
            report.calibration.len(),
            usize::from(part.calibration_bytes)
        );
        assert_eq!(report.fuses[&FuseKind::Low], 0xFF);
        assert!(report.decoded.iter().any(|f| f.name == "BOOTSZ"));
        assert!(
            !lock(&socket).reset_asserted(),
            "RESET released after the job"
        );
    }
}

#[test]
fn no_target_lists_the_likely_causes() {
    let part = &parts()[1];
    let socket = Socket::default().shared();
    let err = run(
        &socket,
        part,
        &mut Vec::new(),
        CancelToken::new(),
        detect::detect,
    )
    .unwrap_err();
    let Error::NoTarget { causes, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(causes.iter().any(|c| c.contains("MISO")), "{causes:?}");
    assert!(causes.iter().any(|c| c.contains("power")));
}

#[test]
fn the_bootloader_journey_works_for_every_catalog_entry() {
    let catalog = isp_toolbox::catalog::BootloaderCatalog::builtin().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for bl in catalog.all() {
        for mcu in &bl.mcus {
            let part = PartDb::builtin().unwrap().find(mcu).unwrap();
            for preset in &bl.presets {
                let fuses: FuseValues = preset.values().collect();
                let image = synthetic_bootloader(part, preset.hfuse);
                let v = validate(part, &image, &fuses, Some(bl)).unwrap();
                assert!(v.known_build.is_none());
                let socket = Socket::with_chip(running_chip(part)).shared();
                let plan = BootloaderPlan {
                    image: image.clone(),
                    fuses: fuses.clone(),
                    approval: Approval {
                        accept_high: true,
                        ..Default::default()
                    },
                    backup: BackupOptions {
                        dir: Some(dir.path().to_path_buf()),
                        memories: false,
                    },
                };
                let mut events = Vec::new();
                let report = run(&socket, part, &mut events, CancelToken::new(), |ctx| {
                    flash_bootloader(ctx, &plan)
                })
                .unwrap_or_else(|e| panic!("{} {} {}: {e}", bl.id, part.name, preset.id));
                assert!(report.backup_file.as_ref().unwrap().exists());
                let s = lock(&socket);
                let chip = s.chip().unwrap();
                for seg in image.segments() {
                    let start = seg.start as usize;
                    assert_eq!(&chip.flash()[start..start + seg.data.len()], &seg.data[..]);
                }
                for (kind, value) in preset.values() {
                    let mask = part.fuse(kind).unwrap().mask;
                    assert_eq!(
                        chip.fuse(kind).unwrap() & mask,
                        value & mask,
                        "{} {kind}",
                        bl.id
                    );
                }
                assert_eq!(chip.stats().busy_violations, 0);
                assert!(
                    events
                        .iter()
                        .any(|e| matches!(e, JobEvent::Stage(Stage::Verify)))
                );
            }
        }
    }
}

#[test]
fn a_refused_fuse_change_leaves_the_chip_untouched() {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let mut chip_config = ChipConfig::default().with_flash_at(0, &[0x12; 256]);
    chip_config.fuses = Some(ChipFuses {
        lfuse: 0xFF,
        hfuse: 0xD8,
        efuse: Some(0xCB),
    });
    let socket = Socket::with_chip(EmulatedChip::new(part, chip_config).unwrap()).shared();
    let before = lock(&socket).chip().unwrap().flash().to_vec();
    let fuses: FuseValues = [
        (FuseKind::Low, 0x5E),
        (FuseKind::High, 0xD9),
        (FuseKind::Extended, 0xF3),
    ]
    .into();
    let plan = BootloaderPlan {
        image: synthetic_bootloader(part, 0xD9),
        fuses,
        approval: Approval::default(),
        backup: BackupOptions {
            dir: None,
            memories: false,
        },
    };
    let err = run(&socket, part, &mut Vec::new(), CancelToken::new(), |ctx| {
        flash_bootloader(ctx, &plan)
    })
    .unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
    let s = lock(&socket);
    assert_eq!(
        s.chip().unwrap().flash(),
        &before[..],
        "nothing erased or written"
    );
    assert_eq!(s.chip().unwrap().fuse(FuseKind::High), Some(0xD8));
}

#[test]
fn critical_changes_need_the_override() {
    let part = PartDb::builtin().unwrap().find("m328p").unwrap();
    let socket = Socket::with_chip(running_chip(part)).shared();
    let proposal: FuseValues = [(FuseKind::High, 0x59)].into(); // RSTDISBL programmed
    let yes = Approval {
        accept_high: true,
        ..Default::default()
    };
    let err = run(&socket, part, &mut Vec::new(), CancelToken::new(), |ctx| {
        fuses::write_fuses(ctx, &proposal, &yes, None)
    })
    .unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert_eq!(
        lock(&socket).chip().unwrap().fuse(FuseKind::High),
        Some(0xD9)
    );
}

#[test]
fn efuse_upper_bits_never_cause_a_false_alarm() {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let socket = Socket::with_chip(running_chip(part)).shared();
    // The guide's Pro Micro 5V preset writes 0xFB; the silicon stores bits 5..4, so 0xCB reads
    // back 0xCB and 0xFB reads back 0xFB: both verify on bits 3..0.
    for value in [0xCBu8, 0xFB, 0x03] {
        let proposal: FuseValues = [(FuseKind::Extended, value)].into();
        run(&socket, part, &mut Vec::new(), CancelToken::new(), |ctx| {
            fuses::write_fuses(ctx, &proposal, &Approval::default(), None)
        })
        .unwrap_or_else(|e| panic!("efuse 0x{value:02X}: {e}"));
    }
}

#[test]
fn cancel_between_pages_reports_what_was_written() {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let socket = Socket::with_chip(running_chip(part)).shared();
    let mut image = MemoryImage::new();
    image.insert(0, &vec![0x42; 8192]).unwrap();
    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let mut events = Vec::new();
    let mut prog = SimProgrammer::new(socket.clone());
    let mut reporter = |e: JobEvent| {
        if let JobEvent::Progress {
            stage: Stage::Write,
            done,
            ..
        } = e
            && done >= 1024
        {
            trigger.cancel();
        }
        events.push(e);
    };
    let mut ctx = Ctx::new(&mut prog, part, &mut reporter, cancel.clone());
    let err = ctx
        .session(|ctx| {
            memory::erase(ctx)?;
            memory::write_image(ctx, Memory::Flash, &image, true)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, JobEvent::Log(_, t) if t.contains("8 of 64"))),
        "{events:?}"
    );
    assert!(
        !lock(&socket).reset_asserted(),
        "programming mode left after cancel"
    );
}

#[test]
fn a_programmer_lost_mid_write_names_the_page() {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let socket = Socket::with_chip(running_chip(part)).shared();
    let mut image = MemoryImage::new();
    image.insert(0, &vec![0x42; 4096]).unwrap();
    let mut prog = SimProgrammer::new(socket.clone()).hang_up_after(1000);
    let mut events = Vec::new();
    let mut reporter = |e: JobEvent| events.push(e);
    let mut ctx = Ctx::new(&mut prog, part, &mut reporter, CancelToken::new());
    let err = ctx
        .session(|ctx| memory::write_image(ctx, Memory::Flash, &image, true))
        .unwrap_err();
    let Error::PageWrite { page_addr, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(*page_addr > 0);
    assert!(err.to_string().contains("unplugged"), "{err}");
}

#[test]
fn verify_reports_the_first_difference() {
    let part = PartDb::builtin().unwrap().find("m32u4").unwrap();
    let socket = Socket::with_chip(running_chip(part)).shared();
    let mut image = MemoryImage::new();
    image.insert(0x100, &[1, 2, 3, 4]).unwrap();
    let err = run(&socket, part, &mut Vec::new(), CancelToken::new(), |ctx| {
        memory::verify_image(ctx, Memory::Flash, &image)
    })
    .unwrap_err();
    match err {
        Error::Verify {
            addr,
            expected,
            read,
            mismatches,
            ..
        } => {
            assert_eq!((addr, expected, read, mismatches), (0x100, 1, 0xFF, 4));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_isp_clock_follows_the_target_clock() {
    use isp_toolbox::job::sck;
    let db = PartDb::builtin().unwrap();
    // (part, lfuse, expected clock range after negotiation)
    let cases: [(&str, u8, u32, u32); 3] = [
        // Factory-fresh 32U4: 8 MHz RC / 8 = 1 MHz → at most 250 kHz.
        ("m32u4", 0x52, 100_000, 250_000),
        // A running keyboard: 16 MHz crystal → well above 1 MHz, below 16/6 MHz.
        ("m32u4", 0xFF, 1_000_000, 2_666_666),
        // A 328P on its 128 kHz oscillator: 32 kHz limit; the start clock is too fast.
        ("m328p", 0xE3, 4_000, 32_000),
    ];
    for (name, lfuse, low, high) in cases {
        let part = db.find(name).unwrap();
        let config = ChipConfig {
            fuses: Some(ChipFuses {
                lfuse,
                hfuse: part.fuse(FuseKind::High).unwrap().default,
                efuse: part.fuse(FuseKind::Extended).map(|e| e.default),
            }),
            ..ChipConfig::default()
        };
        let socket = Socket::with_chip(EmulatedChip::new(part, config).unwrap()).shared();
        let mut prog = SimProgrammer::new(socket.clone());
        let mut events = Vec::new();
        let mut reporter = |e: JobEvent| events.push(e);
        let mut ctx = Ctx::new(&mut prog, part, &mut reporter, CancelToken::new());
        sck::start(&mut ctx, None).unwrap();
        let hz = ctx
            .session(|ctx| {
                sck::negotiate(ctx, Some(16_000_000), false)?;
                detect::check_signature(ctx)?;
                Ok(ctx.prog.sck_hz().unwrap())
            })
            .unwrap_or_else(|e| panic!("{name} lfuse 0x{lfuse:02X}: {e}"));
        assert!((low..=high).contains(&hz), "{name} 0x{lfuse:02X}: {hz} Hz");
    }
}
