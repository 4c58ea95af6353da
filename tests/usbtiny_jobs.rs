//! Whole jobs on port `emulated` with `-c usbtiny`: the runner opens this driver on its
//! emulated firmware, negotiates the clock, writes, verifies, reads EEPROM.

mod usbtiny_common;

use isp_toolbox::emulate::socket::lock;
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::job::runner::{JobKind, JobOutcome, JobRequest, run};
use isp_toolbox::job::{CancelToken, JobEvent};
use isp_toolbox::programmer::open::ProgrammerSpec;
use usbtiny_common::*;

fn request(part: &str, kind: JobKind) -> JobRequest {
    JobRequest {
        programmer: ProgrammerSpec::new("usbtiny", "emulated"),
        part: part.into(),
        kind,
    }
}

#[test]
fn a_flash_job_with_verify_runs_on_the_emulated_usbtiny() {
    for name in ["m32u4", "at90usb1286"] {
        let part = part(name);
        let board = running_board(part);
        // An application at the bottom and a boot section at the very top.
        let mut image = MemoryImage::new();
        image.insert(0, &pattern(3000, 1)).unwrap();
        let top = part.flash.size - 4096;
        image.insert(top, &pattern(4096, 2)).unwrap();
        let kind = JobKind::FlashImage {
            image: image.clone(),
            erase: true,
            erased_before: false,
            verify: true,
        };
        let mut events = Vec::new();
        let outcome = run(
            &request(name, kind),
            &mut |e: JobEvent| events.push(e),
            CancelToken::new(),
            Some(board.clone()),
        )
        .unwrap();
        assert!(
            matches!(outcome, JobOutcome::Flashed { verified: true, .. }),
            "{outcome:?}"
        );
        let s = lock(&board);
        let flash = s.chip().unwrap().flash();
        assert_eq!(flash[..3000], pattern(3000, 1)[..]);
        assert_eq!(flash[top as usize..], pattern(4096, 2)[..]);
        assert!(!s.reset_asserted(), "the session released RESET");
        drop(s);
        assert_clean_timing(&board, name);
    }
}

#[test]
fn an_eeprom_job_writes_and_verifies() {
    for name in ["m328p", "atmega32a"] {
        let part = part(name);
        let board = running_board(part);
        let mut image = MemoryImage::new();
        image.insert(8, &pattern(40, 5)).unwrap();
        let kind = JobKind::WriteEeprom {
            image,
            verify: true,
        };
        run(
            &request(name, kind),
            &mut |_e: JobEvent| {},
            CancelToken::new(),
            Some(board.clone()),
        )
        .unwrap();
        let eeprom = lock(&board).chip().unwrap().eeprom()[8..48].to_vec();
        assert_eq!(eeprom, pattern(40, 5), "{name}");
        assert_clean_timing(&board, name);
    }
}
