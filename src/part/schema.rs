//! The typed shape of `assets/parts.json`, with its consistency checks.

use serde::{Deserialize, Serialize};

use crate::util::hexnum;

/// One microcontroller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// Canonical lowercase id, e.g. `atmega32u4`.
    pub id: String,
    /// Display name, e.g. `ATmega32U4`.
    pub name: String,
    /// avrdude's `-p` id, e.g. `m32u4`.
    pub avrdude_id: String,
    /// Further accepted names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Signature bytes as read with `30 00 0i 00`.
    #[serde(with = "hexnum::bytes3")]
    pub signature: [u8; 3],
    /// Program memory.
    pub flash: MemoryLayout,
    /// Data EEPROM.
    pub eeprom: MemoryLayout,
    /// Whether EEPROM has the page-load/page-write ISP instructions (`C1`/`C2`).
    pub eeprom_page_ops: bool,
    /// Whether the part implements Poll RDY/BSY (`F0 00 00 00`).
    pub rdy_bsy_poll: bool,
    /// Number of calibration bytes (`38 00 i 00`).
    pub calibration_bytes: u8,
    /// Boot sections indexed by the BOOTSZ value (0..=3).
    pub boot_sections: Vec<BootSection>,
    /// Worst-case programming delays, for programmers that cannot poll.
    pub timing: Timing,
    /// What avrdude puts in STK500 SET_DEVICE / SET_DEVICE_EXT for this part.
    pub stk500: Stk500Params,
    /// Fuse bytes (low, high and, where present, extended).
    pub fuses: Vec<FuseByte>,
    /// The lock byte.
    pub lock: FuseByte,
    /// Packages, the most common one first, with their ISP pins.
    pub packages: Vec<Package>,
}

/// Size and page size of one memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryLayout {
    /// Size in bytes.
    pub size: u32,
    /// Page size in bytes.
    pub page_size: u32,
}

impl MemoryLayout {
    /// Number of pages.
    pub fn pages(&self) -> u32 {
        self.size / self.page_size
    }
}

/// One boot section size, selected by BOOTSZ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSection {
    /// The BOOTSZ field value (0..=3).
    pub bootsz: u8,
    /// Section size in words.
    pub words: u32,
    /// First word address of the section.
    #[serde(with = "hexnum::u32")]
    pub start_word: u32,
}

impl BootSection {
    /// First byte address of the section.
    pub fn start_byte(&self) -> u32 {
        self.start_word * 2
    }
    /// Size of the section in bytes.
    pub fn bytes(&self) -> u32 {
        self.words * 2
    }
}

/// Worst-case delays in microseconds (avrdude.conf values, rounded up where datasheets disagree).
/// One exception: fuse and lock writes on the 16U4/32U4 and AT90USB parts take the datasheet's
/// self-timed write maximum (7766J Table 28-13, tWLRH: 3.7 typ., 4.5 ms max, "valid for Write
/// Fuse bits and Write Lock bits"), not avrdude's 9 ms; the job reads each written byte back
/// and polls RDY/BSY before it calls a mismatch a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Flash page write.
    pub flash_page_us: u32,
    /// EEPROM byte or page write.
    pub eeprom_write_us: u32,
    /// Fuse or lock byte write.
    pub fuse_write_us: u32,
    /// Chip erase.
    pub chip_erase_us: u32,
}

/// STK500 device parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stk500Params {
    /// SET_DEVICE devicecode (0 where avrdude.conf has none).
    #[serde(with = "hexnum::u8")]
    pub devcode: u8,
    /// PAGEL pin code.
    #[serde(with = "hexnum::u8")]
    pub pagel: u8,
    /// BS2 pin code.
    #[serde(with = "hexnum::u8")]
    pub bs2: u8,
    /// 0 = dedicated RESET pin, 1 = RESET shared with I/O.
    pub reset_disposition: u8,
}

/// Which fuse byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FuseKind {
    /// Low fuse (`lfuse`).
    #[serde(rename = "lfuse")]
    Low,
    /// High fuse (`hfuse`).
    #[serde(rename = "hfuse")]
    High,
    /// Extended fuse (`efuse`).
    #[serde(rename = "efuse")]
    Extended,
    /// Lock byte (`lock`).
    #[serde(rename = "lock")]
    Lock,
}

impl FuseKind {
    /// avrdude's memory name.
    pub fn avrdude_name(self) -> &'static str {
        match self {
            FuseKind::Low => "lfuse",
            FuseKind::High => "hfuse",
            FuseKind::Extended => "efuse",
            FuseKind::Lock => "lock",
        }
    }
    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            FuseKind::Low => "Low fuse",
            FuseKind::High => "High fuse",
            FuseKind::Extended => "Extended fuse",
            FuseKind::Lock => "Lock bits",
        }
    }
    /// Parses `lfuse`, `hfuse`, `efuse`, `lock` (and `low`, `high`, `ext`).
    pub fn parse(name: &str) -> Option<FuseKind> {
        match name.to_ascii_lowercase().as_str() {
            "lfuse" | "low" | "l" => Some(FuseKind::Low),
            "hfuse" | "high" | "h" => Some(FuseKind::High),
            "efuse" | "ext" | "extended" | "e" => Some(FuseKind::Extended),
            "lock" | "lockbits" => Some(FuseKind::Lock),
            _ => None,
        }
    }
    /// All four, in the order they should be written (lock last: LB1 locks the fuses).
    pub const ALL: [FuseKind; 4] = [
        FuseKind::Low,
        FuseKind::High,
        FuseKind::Extended,
        FuseKind::Lock,
    ];
}

impl std::fmt::Display for FuseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.avrdude_name())
    }
}

/// One fuse or lock byte and its bitfields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FuseByte {
    /// Which byte.
    pub kind: FuseKind,
    /// Bits that exist in silicon and are compared on verify.
    #[serde(with = "hexnum::u8")]
    pub mask: u8,
    /// Factory default.
    #[serde(with = "hexnum::u8")]
    pub default: u8,
    /// Bits the silicon actually stores, where that is more than `mask` (the ATmega32U4 keeps
    /// efuse bits 5..4 although the datasheet calls them unused; avrdude issue #446).
    #[serde(
        default,
        with = "hexnum::opt_u8",
        skip_serializing_if = "Option::is_none"
    )]
    pub stored_mask: Option<u8>,
    /// Named fields, most significant first.
    pub fields: Vec<FuseBitfield>,
}

/// How dangerous changing a bitfield is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Harmless to change.
    Normal,
    /// Can make the board stop working until re-flashed with the right values (clock, boot, lock).
    High,
    /// Can lock out ISP for good (SPIEN, RSTDISBL, DWEN): needs a high-voltage programmer to undo.
    Critical,
}

/// One named field inside a fuse byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FuseBitfield {
    /// Datasheet name, e.g. `CKSEL`, `BOOTSZ`, `SPIEN`.
    pub name: String,
    /// Bits of the byte this field occupies (contiguous).
    #[serde(with = "hexnum::u8")]
    pub mask: u8,
    /// One line saying what the field does.
    pub description: String,
    /// Risk class.
    pub risk: Risk,
    /// For `critical` fields, the value (shifted down) that locks out ISP.
    #[serde(default)]
    pub lockout_value: Option<u8>,
    /// Meaning of each value (shifted down to bit 0). Values not listed are "reserved".
    pub values: Vec<FieldValue>,
}

impl FuseBitfield {
    /// Position of the lowest bit.
    pub fn shift(&self) -> u32 {
        self.mask.trailing_zeros()
    }
    /// Extracts this field's value from a fuse byte.
    pub fn get(&self, byte: u8) -> u8 {
        (byte & self.mask) >> self.shift()
    }
    /// Returns `byte` with this field set to `value`.
    pub fn set(&self, byte: u8, value: u8) -> u8 {
        (byte & !self.mask) | ((value << self.shift()) & self.mask)
    }
    /// The meaning of a value, or "reserved".
    pub fn meaning(&self, value: u8) -> &str {
        self.values
            .iter()
            .find(|v| v.value == value)
            .map(|v| v.meaning.as_str())
            .unwrap_or("reserved value")
    }
    /// The listed value, if any.
    pub fn value(&self, value: u8) -> Option<&FieldValue> {
        self.values.iter().find(|v| v.value == value)
    }
    /// Whether this is a single-bit field.
    pub fn is_flag(&self) -> bool {
        self.mask.count_ones() == 1
    }
}

/// The meaning of one field value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldValue {
    /// The value, shifted down to bit 0.
    #[serde(with = "hexnum::u8")]
    pub value: u8,
    /// Plain-language meaning.
    pub meaning: String,
    /// For clock-select fields: the clock this value selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockSource>,
}

/// A clock source selected by CKSEL.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClockSource {
    /// Internal RC oscillator of a fixed frequency.
    Rc {
        /// Nominal frequency.
        hz: u32,
    },
    /// External crystal or resonator; the frequency is the board's.
    Crystal {
        /// Lowest frequency of this range.
        min_hz: u32,
        /// Highest frequency of this range.
        max_hz: u32,
    },
    /// 32.768 kHz watch crystal.
    LowFrequencyCrystal,
    /// External clock signal on XTAL1; the frequency is the board's.
    External,
    /// External RC network.
    ExternalRc {
        /// Lowest frequency of this range.
        min_hz: u32,
        /// Highest frequency of this range.
        max_hz: u32,
    },
}

/// The six ISP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum IspSignal {
    /// Target reset (active low).
    Reset,
    /// SPI clock.
    Sck,
    /// Data into the target.
    Mosi,
    /// Data out of the target.
    Miso,
    /// Supply.
    Vcc,
    /// Ground.
    Gnd,
}

impl IspSignal {
    /// The label used in the guide's wiring tables.
    pub fn label(self) -> &'static str {
        match self {
            IspSignal::Reset => "RESET",
            IspSignal::Sck => "SCLK",
            IspSignal::Mosi => "MOSI",
            IspSignal::Miso => "MISO",
            IspSignal::Vcc => "VCC",
            IspSignal::Gnd => "GND",
        }
    }
    /// All six, in wiring-table order.
    pub const ALL: [IspSignal; 6] = [
        IspSignal::Vcc,
        IspSignal::Gnd,
        IspSignal::Reset,
        IspSignal::Sck,
        IspSignal::Mosi,
        IspSignal::Miso,
    ];
}

/// One package of a part and where the ISP signals are on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package {
    /// e.g. `TQFP-44`.
    pub name: String,
    /// The pins carrying each ISP signal.
    pub isp_pins: Vec<IspPin>,
}

/// Where one ISP signal is on a package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IspPin {
    /// The signal.
    pub signal: IspSignal,
    /// Port name, e.g. `PB1`, or `RESET`, `VCC`.
    pub port: String,
    /// Pin numbers on the package (VCC and GND have several).
    pub pins: Vec<u16>,
}

impl Part {
    /// All names this part answers to.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        [
            self.id.as_str(),
            self.name.as_str(),
            self.avrdude_id.as_str(),
        ]
        .into_iter()
        .chain(self.aliases.iter().map(String::as_str))
    }

    /// The fuse or lock byte of this kind, if the part has it.
    pub fn fuse(&self, kind: FuseKind) -> Option<&FuseByte> {
        if kind == FuseKind::Lock {
            return Some(&self.lock);
        }
        self.fuses.iter().find(|f| f.kind == kind)
    }

    /// The fuse bytes and the lock byte, in write order.
    pub fn fuse_bytes(&self) -> impl Iterator<Item = &FuseByte> {
        self.fuses.iter().chain(std::iter::once(&self.lock))
    }

    /// Whether the part has an extended fuse.
    pub fn has_efuse(&self) -> bool {
        self.fuse(FuseKind::Extended).is_some()
    }

    /// The boot section a BOOTSZ value selects.
    pub fn boot_section(&self, bootsz: u8) -> Option<&BootSection> {
        self.boot_sections.iter().find(|b| b.bootsz == bootsz)
    }

    /// The boot section the given high fuse selects (BOOTSZ field of `hfuse`).
    pub fn boot_section_for_hfuse(&self, hfuse: u8) -> Option<&BootSection> {
        let field = self.field(FuseKind::High, "BOOTSZ")?;
        self.boot_section(field.get(hfuse))
    }

    /// Looks up a bitfield by fuse byte and name.
    pub fn field(&self, kind: FuseKind, name: &str) -> Option<&FuseBitfield> {
        self.fuse(kind)?
            .fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Finds a bitfield by name in whichever byte holds it.
    pub fn find_field(&self, name: &str) -> Option<(FuseKind, &FuseBitfield)> {
        self.fuse_bytes().find_map(|b| {
            b.fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| (b.kind, f))
        })
    }

    /// The most common package.
    pub fn main_package(&self) -> &Package {
        // validate() guarantees at least one package.
        &self.packages[0]
    }

    /// The signature as `1E 95 87`.
    pub fn signature_string(&self) -> String {
        crate::util::hex_bytes(&self.signature)
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        let pow2 = |n: u32| n.is_power_of_two();
        if !pow2(self.flash.page_size) || !self.flash.size.is_multiple_of(self.flash.page_size) {
            return Err("flash size must be a whole number of power-of-two pages".into());
        }
        if !pow2(self.eeprom.page_size) || !self.eeprom.size.is_multiple_of(self.eeprom.page_size) {
            return Err("EEPROM size must be a whole number of power-of-two pages".into());
        }
        if self.signature[0] != 0x1E {
            return Err("signature must start with 0x1E (Atmel)".into());
        }
        if self.boot_sections.len() != 4 {
            return Err("needs 4 boot sections (BOOTSZ 0..3)".into());
        }
        for b in &self.boot_sections {
            if b.start_word + b.words != self.flash.size / 2 {
                return Err(format!(
                    "boot section BOOTSZ={} does not end at the end of flash",
                    b.bootsz
                ));
            }
        }
        if self.fuse(FuseKind::Low).is_none() || self.fuse(FuseKind::High).is_none() {
            return Err("needs lfuse and hfuse".into());
        }
        if self.field(FuseKind::High, "BOOTSZ").is_none() {
            return Err("hfuse needs a BOOTSZ field".into());
        }
        if self.packages.is_empty() {
            return Err("needs at least one package".into());
        }
        for pkg in &self.packages {
            for sig in IspSignal::ALL {
                if !pkg
                    .isp_pins
                    .iter()
                    .any(|p| p.signal == sig && !p.pins.is_empty())
                {
                    return Err(format!("package {} lacks pin(s) for {:?}", pkg.name, sig));
                }
            }
        }
        for byte in self.fuse_bytes() {
            let mut covered = 0u8;
            for field in &byte.fields {
                let m = field.mask;
                if m == 0 || (m >> m.trailing_zeros()).count_ones() != m.count_ones() {
                    return Err(format!(
                        "{} field {}: mask must be contiguous",
                        byte.kind, field.name
                    ));
                }
                if covered & m != 0 {
                    return Err(format!(
                        "{} field {} overlaps another field",
                        byte.kind, field.name
                    ));
                }
                if m & !byte.mask != 0 {
                    return Err(format!(
                        "{} field {} uses unimplemented bits",
                        byte.kind, field.name
                    ));
                }
                covered |= m;
                let max = m >> m.trailing_zeros();
                for v in &field.values {
                    if v.value > max {
                        return Err(format!(
                            "{} field {}: value {} too big",
                            byte.kind, field.name, v.value
                        ));
                    }
                }
                if field.risk == Risk::Critical && field.lockout_value.is_none() {
                    return Err(format!(
                        "{} field {}: critical needs lockout_value",
                        byte.kind, field.name
                    ));
                }
                if field.values.is_empty() {
                    return Err(format!(
                        "{} field {}: no values described",
                        byte.kind, field.name
                    ));
                }
            }
            if !byte.mask & !byte.default != 0 {
                // Unimplemented bits read as 1, so the default must have them set.
                return Err(format!(
                    "{} default has unimplemented bits cleared",
                    byte.kind
                ));
            }
        }
        Ok(())
    }
}
