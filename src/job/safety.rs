//! The fuse safety policy: what a proposed fuse/lock change does, how risky it is, and whether
//! the user's approval is enough to write it.
//!
//! The GUI's confirmation dialog and the CLI's prompt are both built from a [`FuseReview`], so they
//! can never disagree about what is dangerous.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::part::{FuseKind, Part, Risk};

/// Fuse and lock values by byte. A missing entry means "not read" or "leave alone".
pub type FuseValues = BTreeMap<FuseKind, u8>;

/// The values as avrdude names them, `lfuse=0x5E hfuse=0x99 efuse=0xF3 lock=0x3F` (empty when
/// there are none).
pub fn fuse_list(values: &FuseValues) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{}=0x{v:02X}", k.avrdude_name()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One bitfield that a proposal changes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldChange {
    /// Which byte.
    pub fuse: FuseKind,
    /// Field name, e.g. `CKSEL`.
    pub field: String,
    /// What the field does.
    pub description: String,
    /// Current value of the field (shifted down); `None` when the current byte is unknown.
    pub from: Option<u8>,
    /// Proposed value.
    pub to: u8,
    /// Meaning of the current value.
    pub from_meaning: Option<String>,
    /// Meaning of the proposed value.
    pub to_meaning: String,
    /// How risky this particular change is.
    pub risk: Risk,
    /// What the change does to the board, in plain language.
    pub consequence: String,
}

impl FieldChange {
    /// "Clock source: external crystal 8 MHz+ → internal 8 MHz RC oscillator".
    pub fn summary(&self) -> String {
        match &self.from_meaning {
            Some(from) => format!(
                "{}: {} → {}",
                self.description_label(),
                from,
                self.to_meaning
            ),
            None => format!(
                "{}: (unknown) → {}",
                self.description_label(),
                self.to_meaning
            ),
        }
    }

    fn description_label(&self) -> String {
        format!("{} ({})", self.field, self.fuse)
    }
}

/// The result of reviewing a proposed write.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FuseReview {
    /// Part id the review is for.
    pub part: String,
    /// The bytes that will be written, with unimplemented bits forced to 1 (lock: bits 7..6).
    pub writes: FuseValues,
    /// Every changed field.
    pub changes: Vec<FieldChange>,
    /// The highest risk among the changes (`Normal` when nothing risky changes).
    pub risk: Risk,
    /// Remarks that do not change the risk (e.g. lock bits that cannot be un-programmed).
    pub notes: Vec<String>,
}

/// What the user has agreed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// The [`FuseReview::confirmation_token`] the user saw and confirmed (or `--yes`).
    pub confirmed_token: Option<String>,
    /// Accept any `high` change without a token (CLI `-y/--yes`).
    pub accept_high: bool,
    /// Expert override for `critical` changes (CLI `--force-critical`, GUI: typing the MCU name).
    pub force_critical: bool,
}

impl FuseReview {
    /// Whether nothing would change.
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }

    /// A short token naming exactly this change; a confirmation is only valid for the change that
    /// was shown (a different preset or different current fuses give a different token).
    pub fn confirmation_token(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.part.as_bytes());
        for (kind, value) in &self.writes {
            h.update([*kind as u8, *value]);
        }
        for c in &self.changes {
            h.update([c.fuse as u8, c.from.unwrap_or(0xFF), c.to]);
        }
        let digest = h.finalize();
        digest[..4].iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Checks the approval against the risk: `critical` needs the expert override, `high` needs
    /// the matching confirmation token (or `accept_high`).
    pub fn authorize(&self, approval: &Approval) -> Result<()> {
        match self.risk {
            Risk::Normal => Ok(()),
            Risk::Critical if !approval.force_critical => Err(Error::Refused(format!(
                "{} could lock ISP out of the {} for good: {}",
                plural(self.critical_changes().count(), "change"),
                self.part,
                self.critical_changes()
                    .map(FieldChange::summary)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
            Risk::High | Risk::Critical => {
                let token_ok =
                    approval.confirmed_token.as_deref() == Some(&self.confirmation_token());
                if token_ok || approval.accept_high || approval.force_critical {
                    Ok(())
                } else {
                    Err(Error::Refused(format!(
                        "high-risk fuse change needs confirmation: {}",
                        self.changes
                            .iter()
                            .filter(|c| c.risk >= Risk::High)
                            .map(FieldChange::summary)
                            .collect::<Vec<_>>()
                            .join("; ")
                    )))
                }
            }
        }
    }

    /// The changes that can lock out ISP.
    pub fn critical_changes(&self) -> impl Iterator<Item = &FieldChange> {
        self.changes.iter().filter(|c| c.risk == Risk::Critical)
    }

    /// A multi-line plain-text rendering for prompts and logs.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if self.changes.is_empty() {
            out.push_str("No fuse field changes.\n");
        }
        for c in &self.changes {
            let tag = match c.risk {
                Risk::Critical => "CRITICAL",
                Risk::High => "HIGH",
                Risk::Normal => "normal",
            };
            let _ = writeln!(out, "[{tag}] {}", c.summary());
            if c.risk >= Risk::High {
                let _ = writeln!(out, "         {}", c.consequence);
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Normalizes a value for writing: unimplemented bits set to 1, as the datasheets ask.
pub fn normalize(part: &Part, kind: FuseKind, value: u8) -> Result<u8> {
    let byte = part.fuse(kind).ok_or_else(|| {
        Error::invalid(format!(
            "the {} has no {} byte",
            part.name,
            kind.avrdude_name()
        ))
    })?;
    Ok(value | !byte.mask)
}

/// Whether a fuse byte that reads `held` already holds `wanted` on the bits that exist in
/// silicon (unimplemented bits read as 1 whatever was written).
pub fn holds(part: &Part, kind: FuseKind, held: u8, wanted: u8) -> bool {
    let mask = part.fuse(kind).map_or(0xFF, |b| b.mask);
    held & mask == wanted & mask
}

/// The meaning of `value` in a change between `value` and `other`. Where two codes read the
/// same (two CKSEL codes of one crystal range differ in start-up time, with SUT), the code is
/// added, so the change never shows as "X → X".
fn meaning_in_change(field: &crate::part::FuseBitfield, value: u8, other: u8) -> String {
    let meaning = field.meaning(value);
    if value != other && meaning == field.meaning(other) {
        let bits = field.mask.count_ones() as usize;
        format!("{meaning} ({}={value:0bits$b})", field.name)
    } else {
        meaning.to_string()
    }
}

/// Reviews writing `proposed` over `current` on `part`.
///
/// Bytes absent from `proposed` are left alone. Bytes absent from `current` (not read) are
/// reviewed against every field, with the worst-case assumption that each field changes.
pub fn review(part: &Part, current: &FuseValues, proposed: &FuseValues) -> Result<FuseReview> {
    let mut writes = FuseValues::new();
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    for (&kind, &value) in proposed {
        let value = normalize(part, kind, value)?;
        writes.insert(kind, value);
        let Some(def) = part.fuse(kind) else { continue };
        let old = current.get(&kind).copied();
        for field in &def.fields {
            let to = field.get(value);
            let from = old.map(|o| field.get(o));
            if from == Some(to) {
                continue;
            }
            let risk = match field.risk {
                Risk::Critical if field.lockout_value == Some(to) => Risk::Critical,
                Risk::Critical => Risk::High,
                other => other,
            };
            changes.push(FieldChange {
                fuse: kind,
                field: field.name.clone(),
                description: field.description.clone(),
                from,
                to,
                from_meaning: from.map(|f| meaning_in_change(field, f, to)),
                to_meaning: meaning_in_change(field, to, from.unwrap_or(to)),
                risk,
                consequence: consequence(part, &field.name, to, risk),
            });
        }
        if kind == FuseKind::Lock
            && let Some(old) = old
            && (value & !old) & def.mask != 0
        {
            notes.push(format!(
                "lock bits already programmed (0x{old:02X}) cannot be cleared by writing 0x{value:02X}: only a chip erase clears them"
            ));
        }
    }
    let risk = changes.iter().map(|c| c.risk).max().unwrap_or(Risk::Normal);
    Ok(FuseReview {
        part: part.id.clone(),
        writes,
        changes,
        risk,
        notes,
    })
}

/// What a change to a field means for the board, in plain language.
fn consequence(part: &Part, field: &str, to: u8, risk: Risk) -> String {
    let f = field.to_ascii_uppercase();
    match f.as_str() {
        "SPIEN" if risk == Risk::Critical => "ISP programming will be DISABLED. This tool (and any ISP programmer) can never talk to the chip again; only a high-voltage parallel programmer can undo it.".into(),
        "RSTDISBL" if risk == Risk::Critical => "The RESET pin becomes an I/O pin, so ISP can never enter programming mode again; only a high-voltage programmer can undo it.".into(),
        "DWEN" if risk == Risk::Critical => "debugWIRE takes over the RESET pin and ISP stops working; recovery needs a debugWIRE tool or a high-voltage programmer.".into(),
        "CKSEL" => {
            let source = part
                .field(FuseKind::Low, "CKSEL")
                .map(|c| c.meaning(to).to_string())
                .unwrap_or_default();
            format!("The chip will run from: {source}. If that clock is not present on the board, the chip stops and ISP cannot reach it until a clock is supplied.")
        }
        "CKDIV8" => "The CPU clock is divided by 8 at start-up: USB firmware stops working and ISP must run slower.".into(),
        "BOOTSZ" => "The boot section changes size: a bootloader built for another size will not start or will be overwritten.".into(),
        "BOOTRST" => "Changes whether the chip starts in the bootloader or the application after reset.".into(),
        "CKOPT" => "Changes the oscillator drive: a 16 MHz crystal may not start without full swing.".into(),
        "LB" => "Locks the memories: ISP reads return garbage and fuses cannot be changed until a chip erase.".into(),
        "BLB0" | "BLB1" => "Restricts what the bootloader and the application may read or write; a bootloader may stop being able to flash firmware.".into(),
        _ => match risk {
            Risk::Critical | Risk::High => "This setting can stop the board from working until the fuses are rewritten.".into(),
            Risk::Normal => "Harmless to ISP; changes how the chip behaves.".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::part::PartDb;

    fn part(name: &str) -> &'static Part {
        PartDb::builtin().unwrap().find(name).unwrap()
    }

    fn values(pairs: &[(FuseKind, u8)]) -> FuseValues {
        pairs.iter().copied().collect()
    }

    #[test]
    fn identical_values_need_nothing() {
        let p = part("m32u4");
        let cur = values(&[
            (FuseKind::Low, 0xFF),
            (FuseKind::High, 0xD8),
            (FuseKind::Extended, 0xFB),
        ]);
        let r = review(p, &cur, &cur).unwrap();
        assert!(r.is_noop());
        assert_eq!(r.risk, Risk::Normal);
        r.authorize(&Approval::default()).unwrap();
    }

    #[test]
    fn two_codes_with_one_meaning_show_their_codes() {
        // CKSEL 1111 and 1110 are both "8 MHz and above" (they differ in start-up time).
        let p = part("m32u4");
        let r = review(
            p,
            &values(&[(FuseKind::Low, 0xFF)]),
            &values(&[(FuseKind::Low, 0xFE)]),
        )
        .unwrap();
        let cksel = r.changes.iter().find(|c| c.field == "CKSEL").unwrap();
        assert_ne!(
            cksel.from_meaning.as_deref(),
            Some(cksel.to_meaning.as_str())
        );
        assert!(
            cksel.to_meaning.ends_with("(CKSEL=1110)"),
            "{}",
            cksel.to_meaning
        );
        assert!(
            cksel
                .from_meaning
                .as_deref()
                .unwrap()
                .ends_with("(CKSEL=1111)"),
            "{:?}",
            cksel.from_meaning
        );
        // Codes that read differently are left as they are.
        let ckdiv = review(
            p,
            &values(&[(FuseKind::Low, 0xFF)]),
            &values(&[(FuseKind::Low, 0x7F)]),
        )
        .unwrap();
        assert!(!ckdiv.changes[0].to_meaning.contains("CKDIV8="));
    }

    #[test]
    fn switching_caterina_to_dfu_is_high_and_names_the_clock() {
        let p = part("m32u4");
        let cur = values(&[
            (FuseKind::Low, 0xFF),
            (FuseKind::High, 0xD8),
            (FuseKind::Extended, 0xCB),
        ]);
        let new = values(&[
            (FuseKind::Low, 0x5E),
            (FuseKind::High, 0xD9),
            (FuseKind::Extended, 0xF3),
        ]);
        let r = review(p, &cur, &new).unwrap();
        assert_eq!(r.risk, Risk::High);
        let ckdiv = r.changes.iter().find(|c| c.field == "CKDIV8").unwrap();
        assert_eq!(ckdiv.risk, Risk::High);
        assert!(r.changes.iter().any(|c| c.field == "BOOTRST"));
        // Without approval: refused, exit code 3.
        let err = r.authorize(&Approval::default()).unwrap_err();
        assert_eq!(err.exit_code(), 3);
        // A token for a different review does not count.
        let other = review(p, &cur, &values(&[(FuseKind::Low, 0x5E)])).unwrap();
        let stale = Approval {
            confirmed_token: Some(other.confirmation_token()),
            ..Default::default()
        };
        assert!(r.authorize(&stale).is_err());
        let ok = Approval {
            confirmed_token: Some(r.confirmation_token()),
            ..Default::default()
        };
        r.authorize(&ok).unwrap();
    }

    #[test]
    fn disabling_spien_is_critical_and_needs_the_override() {
        let p = part("m32u4");
        let cur = values(&[(FuseKind::High, 0xD8)]);
        let new = values(&[(FuseKind::High, 0xF8)]);
        let r = review(p, &cur, &new).unwrap();
        assert_eq!(r.risk, Risk::Critical);
        let yes = Approval {
            accept_high: true,
            confirmed_token: Some(r.confirmation_token()),
            ..Default::default()
        };
        let err = r.authorize(&yes).unwrap_err();
        assert!(err.to_string().contains("SPIEN"), "{err}");
        r.authorize(&Approval {
            force_critical: true,
            ..Default::default()
        })
        .unwrap();
    }

    #[test]
    fn rstdisbl_and_dwen_are_critical_on_the_328p() {
        let p = part("m328p");
        let cur = values(&[(FuseKind::High, 0xD9)]);
        for bad in [0x59u8, 0x99] {
            let r = review(p, &cur, &values(&[(FuseKind::High, bad)])).unwrap();
            assert_eq!(r.risk, Risk::Critical, "hfuse 0x{bad:02X}");
        }
    }

    #[test]
    fn unimplemented_bits_are_written_as_one() {
        let p = part("m328p");
        // The guide's USBaspLoader preset writes efuse 0x04: bits 7..3 do not exist.
        let r = review(
            p,
            &FuseValues::new(),
            &values(&[(FuseKind::Extended, 0x04)]),
        )
        .unwrap();
        assert_eq!(r.writes[&FuseKind::Extended], 0xFC);
        let m32a = part("m32a");
        assert!(
            review(
                m32a,
                &FuseValues::new(),
                &values(&[(FuseKind::Extended, 0xFF)])
            )
            .is_err()
        );
        let r = review(m32a, &FuseValues::new(), &values(&[(FuseKind::Lock, 0x3C)])).unwrap();
        assert_eq!(r.writes[&FuseKind::Lock], 0xFC);
    }

    #[test]
    fn unknown_current_values_are_reviewed_as_changes() {
        let p = part("m32u4");
        let r = review(p, &FuseValues::new(), &values(&[(FuseKind::Low, 0xFF)])).unwrap();
        assert!(
            r.changes
                .iter()
                .any(|c| c.field == "CKSEL" && c.from.is_none())
        );
        assert_eq!(r.risk, Risk::High);
    }

    #[test]
    fn lock_bits_cannot_be_unprogrammed() {
        let p = part("m32u4");
        let r = review(
            p,
            &values(&[(FuseKind::Lock, 0xEF)]),
            &values(&[(FuseKind::Lock, 0xFF)]),
        )
        .unwrap();
        assert!(
            r.notes.iter().any(|n| n.contains("chip erase")),
            "{:?}",
            r.notes
        );
        assert!(r.describe().contains("note:"));
    }
}
