//! Shared helpers of the prepare tests: stand-in firmware images, plugged-in emulated
//! boards, and running the job while recording its events.

#![allow(dead_code)]

use std::time::Duration;

use isp_toolbox::Result;
use isp_toolbox::bootload::host::Host;
use isp_toolbox::bootload::{PrepareEvent, PrepareReport, PrepareRequest, PrepareStep, prepare};
use isp_toolbox::catalog::UsbId;
use isp_toolbox::emulate::programmer_board::{BoardConfig, ProgrammerBoard, synthetic_application};
use isp_toolbox::hex::MemoryImage;
use isp_toolbox::job::CancelToken;

/// The id QMK's ISP firmware enumerates as (Teensyduino USB Serial).
pub const TEENSYDUINO_SERIAL: UsbId = UsbId::new(0x16C0, 0x0483);
/// An ArduinoISP sketch on a SparkFun Pro Micro 5V.
pub const PRO_MICRO_SKETCH: UsbId = UsbId::new(0x1B4F, 0x9206);
/// A QMK keyboard firmware.
pub const KEYBOARD: UsbId = UsbId::new(0xFEED, 0x6060);

/// A stand-in ISP firmware: `len` bytes from 0 with a CDC device descriptor for `id`.
pub fn isp_image(id: UsbId, len: usize) -> MemoryImage {
    image_of(&synthetic_application(id, 0x02, len))
}

/// An image holding `bytes` from address 0.
pub fn image_of(bytes: &[u8]) -> MemoryImage {
    let mut image = MemoryImage::new();
    image.insert(0, bytes).unwrap();
    image
}

/// A board plugged in a second ago (its program has enumerated).
pub fn plugged(config: BoardConfig) -> ProgrammerBoard {
    let board = ProgrammerBoard::new(config).unwrap();
    board.advance(Duration::from_secs(1));
    board
}

/// A Pro Micro running a program that enumerates as `id` with `class`.
pub fn pro_micro_running(id: UsbId, class: u8) -> ProgrammerBoard {
    plugged(BoardConfig::pro_micro(Some(synthetic_application(
        id, class, 0x1000,
    ))))
}

/// A Teensy 2.0 running a keyboard firmware.
pub fn teensy_running_keyboard() -> ProgrammerBoard {
    plugged(BoardConfig::teensy2(Some(synthetic_application(
        KEYBOARD, 0x00, 0x1000,
    ))))
}

/// Runs the job, returning its result and every event.
pub fn run(
    host: &mut dyn Host,
    request: &PrepareRequest,
) -> (Result<PrepareReport>, Vec<PrepareEvent>) {
    run_with(host, request, &CancelToken::new(), |_, _| {})
}

/// Runs the job, calling `each` with every event (and the cancel token) as it comes.
pub fn run_with(
    host: &mut dyn Host,
    request: &PrepareRequest,
    cancel: &CancelToken,
    mut each: impl FnMut(&PrepareEvent, &CancelToken),
) -> (Result<PrepareReport>, Vec<PrepareEvent>) {
    let mut events = Vec::new();
    let result = prepare(
        host,
        request,
        &mut |event| {
            each(&event, cancel);
            events.push(event);
        },
        cancel,
    );
    (result, events)
}

/// The steps announced, in order.
pub fn steps(events: &[PrepareEvent]) -> Vec<PrepareStep> {
    events
        .iter()
        .filter_map(|e| match e {
            PrepareEvent::Step(step) => Some(*step),
            _ => None,
        })
        .collect()
}

/// The instructions shown.
pub fn instructions(events: &[PrepareEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            PrepareEvent::Instruction { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// Every log line, for failure messages.
pub fn log_text(events: &[PrepareEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            PrepareEvent::Log(level, text) => Some(format!("{level:?}: {text}")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}
