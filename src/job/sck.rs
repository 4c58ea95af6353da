//! ISP clock management for programmers that can set it (USBasp, USBtiny, Bus Pirate).
//!
//! A factory-fresh AVR runs from its 8 MHz RC oscillator divided by 8 (1 MHz), so ISP must start
//! at 250 kHz or less. Once the fuses are read, the CPU clock is known (CKSEL, CKDIV8 and the
//! board's crystal) and the clock can go up to the datasheet limit (f/4, f/6 from 12 MHz), with
//! a margin. If a read then looks garbled, the clock steps down and the read is retried.

use super::{Ctx, Level};
use crate::error::{Error, Result};
use crate::part::{FuseKind, Part};
use crate::util::hex_bytes;

/// The starting clock: safe for a chip at 1 MHz (limit 250 kHz) with margin.
pub const START_SCK_HZ: u32 = 200_000;

/// The slowest clock worth trying (a chip on a 128 kHz or 32 kHz clock needs this).
pub const FLOOR_SCK_HZ: u32 = 4_000;

/// Fraction of the datasheet limit actually used, for marginal wiring.
const MARGIN_PERCENT: u32 = 80;

/// Whether the programmer can set its clock.
pub fn can_set(ctx: &Ctx<'_>) -> bool {
    ctx.prog.info().capabilities.set_sck
}

/// Sets the starting clock (before entering programming mode). `requested` overrides it.
pub fn start(ctx: &mut Ctx<'_>, requested: Option<u32>) -> Result<Option<u32>> {
    if !can_set(ctx) {
        return Ok(None);
    }
    let hz = ctx.prog.set_sck(requested.unwrap_or(START_SCK_HZ))?;
    ctx.log(
        Level::Debug,
        format!("ISP clock {} to start", format_hz(hz)),
    );
    Ok(Some(hz))
}

/// Inside a session, for a job that moves only a few bytes (fuses, detect, erase): finds a
/// clock at which the signature reads plausibly, stepping down from the starting one, and
/// stays there. Raising it would cost more than it saves: a reconnect on some programmers and
/// the signature read again, against a few dozen SPI bits per instruction.
pub fn settle(ctx: &mut Ctx<'_>) -> Result<()> {
    if !can_set(ctx) {
        return Ok(());
    }
    let (hz, sig) = plausible_clock(ctx)?;
    ctx.fresh_signature = Some(sig);
    ctx.info(format!(
        "ISP clock {} (a short job: no need to raise it)",
        format_hz(hz)
    ));
    Ok(())
}

/// Inside a session: finds a clock at which the signature reads as the part's, stepping down
/// from the current one; then, unless the user fixed the clock, raises it as far as the fuses
/// and the board's crystal allow and checks the signature again.
pub fn negotiate(ctx: &mut Ctx<'_>, crystal_hz: Option<u32>, fixed: bool) -> Result<()> {
    if !can_set(ctx) {
        return Ok(());
    }
    let (mut hz, sig) = plausible_clock(ctx)?;
    // Every way out below leaves the clock at which `sig` was read.
    ctx.fresh_signature = Some(sig);
    if fixed {
        ctx.info(format!("ISP clock {} (as requested)", format_hz(hz)));
        return Ok(());
    }
    let lfuse = ctx.prog.read_fuse(FuseKind::Low)?;
    let clock = ctx.part.target_clock(lfuse, crystal_hz);
    let Some(cpu_hz) = clock.cpu_hz else {
        ctx.info(format!(
            "ISP clock {}: the target's clock is unknown (lfuse 0x{lfuse:02X}); staying slow",
            format_hz(hz)
        ));
        return Ok(());
    };
    let target = Part::max_sck_hz(cpu_hz) / 100 * MARGIN_PERCENT;
    if target > hz {
        let raised = ctx.prog.set_sck(target)?;
        ctx.fresh_signature = None;
        let raised_sig = ctx.prog.read_signature()?;
        if raised_sig == ctx.part.signature {
            hz = raised;
            ctx.fresh_signature = Some(raised_sig);
        } else {
            ctx.log(
                Level::Warn,
                format!(
                    "Signature garbled at {}; keeping {}",
                    format_hz(raised),
                    format_hz(hz)
                ),
            );
            hz = ctx.prog.set_sck(hz)?;
            ctx.fresh_signature = Some(sig);
        }
    }
    ctx.info(format!(
        "ISP clock {} (target runs at {}{})",
        format_hz(hz),
        format_hz(cpu_hz),
        if clock.divided_by_8 { ", CKDIV8" } else { "" }
    ));
    Ok(())
}

/// Reads the signature, halving the clock until it reads as a known part's. Returns the clock
/// and the signature read at it.
fn plausible_clock(ctx: &mut Ctx<'_>) -> Result<(u32, [u8; 3])> {
    let mut hz = ctx.prog.sck_hz().unwrap_or(START_SCK_HZ);
    // Step down until the signature is plausible.
    let mut sig;
    loop {
        sig = ctx.prog.read_signature()?;
        if signature_plausible(ctx.part, sig) {
            break;
        }
        let next = hz / 2;
        let slower = if next < FLOOR_SCK_HZ {
            None
        } else {
            // A programmer whose slowest clock is above `next` refuses it: that is the floor.
            ctx.prog.set_sck(next).ok().filter(|&h| h < hz)
        };
        let Some(slower) = slower else {
            return Err(Error::NoTarget {
                detail: format!(
                    "signature reads {} even at {}",
                    hex_bytes(&sig),
                    format_hz(hz)
                ),
                causes: super::detect::no_target_causes(ctx.prog.info().driver, Some(hz)),
            });
        };
        ctx.log(
            Level::Warn,
            format!(
                "Signature {} looks garbled at {}; slowing the ISP clock to {}",
                hex_bytes(&sig),
                format_hz(hz),
                format_hz(slower)
            ),
        );
        hz = slower;
    }
    Ok((hz, sig))
}

/// Halves the clock after a corrupted read; false when already at the floor or not settable.
pub fn step_down(ctx: &mut Ctx<'_>) -> Result<bool> {
    if !can_set(ctx) {
        return Ok(false);
    }
    let Some(hz) = ctx.prog.sck_hz() else {
        return Ok(false);
    };
    if hz / 2 < FLOOR_SCK_HZ {
        return Ok(false);
    }
    ctx.fresh_signature = None;
    // A refusal means the programmer is already at its slowest clock.
    let Ok(new) = ctx.prog.set_sck(hz / 2) else {
        return Ok(false);
    };
    ctx.log(
        Level::Warn,
        format!(
            "Read looked corrupted; ISP clock lowered to {}",
            format_hz(new)
        ),
    );
    Ok(new < hz)
}

fn signature_plausible(part: &Part, sig: [u8; 3]) -> bool {
    sig == part.signature
        || crate::part::PartDb::builtin().is_ok_and(|db| !db.by_signature(sig).is_empty())
}

/// `125 kHz`, `1.5 MHz`, `93.75 kHz`.
pub fn format_hz(hz: u32) -> String {
    let short = |x: f64| {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if hz >= 1_000_000 {
        format!("{} MHz", short(f64::from(hz) / 1e6))
    } else if hz >= 1_000 {
        format!("{} kHz", short(f64::from(hz) / 1e3))
    } else {
        format!("{hz} Hz")
    }
}

#[cfg(test)]
mod tests {
    use super::format_hz;

    #[test]
    fn readable_frequencies() {
        assert_eq!(format_hz(125_000), "125 kHz");
        assert_eq!(format_hz(93_750), "93.75 kHz");
        assert_eq!(format_hz(1_500_000), "1.5 MHz");
        assert_eq!(format_hz(2_000_000), "2 MHz");
        assert_eq!(format_hz(500), "500 Hz");
    }
}
