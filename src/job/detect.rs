//! Detect: read the signature, identify the part, read and decode fuses and lock bits.

use std::time::Duration;

use super::fuses::read_all;
use super::safety::FuseValues;
use super::{Ctx, Level, Stage};
use crate::error::{Error, Result};
use crate::part::{DecodedField, FuseKind, PartDb, decode_byte};
use crate::util::hex_bytes;

/// What Detect found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DetectReport {
    /// The three signature bytes.
    pub signature: [u8; 3],
    /// Ids of the parts with this signature (AT90USB646 and 647 share one).
    pub parts: Vec<String>,
    /// Calibration byte(s).
    pub calibration: Vec<u8>,
    /// Fuse and lock bytes as read.
    pub fuses: FuseValues,
    /// Every field of every byte, decoded against the detected (or selected) part.
    pub decoded: Vec<DecodedField>,
    /// The CPU clock the fuses select, when it can be known.
    pub cpu_hz: Option<u32>,
}

/// Reads the signature the way avrdude does: when it reads all 0x00 or all 0xFF, retry after
/// 10, 50 and 250 ms (a target still starting up), then give up with the likely causes.
pub fn read_signature(ctx: &mut Ctx<'_>) -> Result<[u8; 3]> {
    let waits = [10u64, 50, 250];
    let mut attempt = 0;
    loop {
        let sig = ctx.prog.read_signature()?;
        let blank = sig == [0, 0, 0] || sig == [0xFF, 0xFF, 0xFF];
        if !blank {
            return Ok(sig);
        }
        if attempt == waits.len() {
            return Err(Error::NoTarget {
                detail: format!("signature reads {}", hex_bytes(&sig)),
                causes: no_target_causes(ctx.prog.info().driver, ctx.prog.sck_hz()),
            });
        }
        ctx.log(
            Level::Debug,
            format!(
                "Signature {} looks like no target; retrying in {} ms",
                hex_bytes(&sig),
                waits[attempt]
            ),
        );
        std::thread::sleep(Duration::from_millis(waits[attempt]));
        attempt += 1;
    }
}

/// Reads the signature (or takes the one the clock negotiation just read at this clock) and
/// checks it is the selected part.
pub fn check_signature(ctx: &mut Ctx<'_>) -> Result<[u8; 3]> {
    let sig = match ctx.fresh_signature.take() {
        Some(sig) => sig,
        None => read_signature(ctx)?,
    };
    if sig == ctx.part.signature {
        ctx.info(format!("Signature {} = {}", hex_bytes(&sig), ctx.part.name));
        return Ok(sig);
    }
    let found = PartDb::builtin()?
        .by_signature(sig)
        .iter()
        .map(|p| p.name.clone())
        .collect::<Vec<_>>();
    Err(Error::WrongTarget {
        expected: ctx.part.name.clone(),
        found: if found.is_empty() {
            "an unknown part (or garbled bits: try a slower ISP clock)".into()
        } else {
            found.join(" / ")
        },
        signature: hex_bytes(&sig),
    })
}

/// The Detect job. Runs inside a programming session.
pub fn detect(ctx: &mut Ctx<'_>) -> Result<DetectReport> {
    ctx.stage(Stage::Detect);
    let signature = read_signature(ctx)?;
    let db = PartDb::builtin()?;
    let candidates = db.by_signature(signature);
    let part = match candidates.first() {
        Some(p) => {
            ctx.log(
                Level::Success,
                format!(
                    "Signature {} = {}",
                    hex_bytes(&signature),
                    candidates
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
            );
            *p
        }
        None => {
            ctx.log(
                Level::Warn,
                format!(
                    "Signature {} is not a part ISP Toolbox knows; decoding fuses as {}",
                    hex_bytes(&signature),
                    ctx.part.name
                ),
            );
            ctx.part
        }
    };
    let calibration = (0..part.calibration_bytes)
        .map(|i| ctx.prog.read_calibration(i))
        .collect::<Result<Vec<_>>>()?;
    let fuses = read_all(ctx.prog, part)?;
    let mut decoded = Vec::new();
    for (&kind, &value) in &fuses {
        ctx.info(format!("{} = 0x{value:02X}", kind.avrdude_name()));
        decoded.extend(decode_byte(part, kind, value));
    }
    let cpu_hz = fuses
        .get(&FuseKind::Low)
        .and_then(|&l| part.target_clock(l, None).cpu_hz);
    Ok(DetectReport {
        signature,
        parts: candidates.iter().map(|p| p.id.clone()).collect(),
        calibration,
        fuses,
        decoded,
        cpu_hz,
    })
}

/// The likely reasons nothing answered, for this kind of programmer.
pub fn no_target_causes(driver: &str, sck_hz: Option<u32>) -> Vec<String> {
    let mut causes = vec![
        "the target board has no power: VCC and GND must be wired (or the board plugged into USB)"
            .to_string(),
    ];
    match driver {
        "avrisp" => causes.push(
            "the RESET wire goes to the wrong pin: the programmer's pin 10 (B6) on a Pro Micro, or B0 on a Teensy 2.0, must go to the target's RESET; never the programmer's own RST".into(),
        ),
        "buspirate" => causes.push(
            "the RESET wire goes to the wrong pin: the Bus Pirate drives the target's RESET from its CS pin".into(),
        ),
        _ => causes.push("the RESET wire is not connected to the target's RESET pin".into()),
    }
    causes.push("MISO and MOSI are swapped (MOSI goes to MOSI, MISO to MISO: like to like)".into());
    match sck_hz {
        Some(hz) => causes.push(format!(
            "the ISP clock ({} kHz) is too fast for the target's clock: a factory-fresh chip runs at 1 MHz and needs 250 kHz or less",
            hz / 1000
        )),
        None => causes.push(
            "the ISP clock is too fast for the target's clock (a chip with CKDIV8 or a slow clock source)".into(),
        ),
    }
    if driver == "avrisp" {
        causes.push("the programmer is not running the ArduinoISP firmware, or runs it at another baud rate".into());
    }
    causes
}
