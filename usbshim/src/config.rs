//! What the shim emulates, from the environment (see the crate documentation for the table).

use std::ffi::OsString;
use std::path::PathBuf;

use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::part::{Part, PartDb};
use isp_toolbox::{Error, Result};

use crate::firmware::DeviceKind;

/// Which emulated programmer to present: `usbtiny`, `usbasp[:VARIANT]`, `halfkay` ...
pub const ENV_DEVICE: &str = "ISP_TOOLBOX_SHIM_DEVICE";
/// The target MCU in the programmer's socket (default `m32u4`; `none` for an empty socket).
pub const ENV_PART: &str = "ISP_TOOLBOX_SHIM_PART";
/// A directory the chip is loaded from (when it holds a dump) and dumped back to at exit.
pub const ENV_STATE: &str = "ISP_TOOLBOX_SHIM_STATE";
/// A file the emulator's stats are written to at exit, as JSON.
pub const ENV_STATS: &str = "ISP_TOOLBOX_SHIM_STATS";
/// Faults to commit (`drop=N,corrupt=N,stall=N,hangup=N`, counted in control transfers).
pub const ENV_FAULT: &str = "ISP_TOOLBOX_SHIM_FAULT";
/// `1`: each transfer returns when the virtual clock says (wall-clock runs).
pub const ENV_REALTIME: &str = "ISP_TOOLBOX_SHIM_REALTIME";
/// A trace level: 1 prints every call and transfer on stderr (as `usb_set_debug` does).
pub const ENV_DEBUG: &str = "ISP_TOOLBOX_SHIM_DEBUG";

/// The part emulated when [`ENV_PART`] is not set: the keyboard builder's usual MCU.
pub const DEFAULT_PART: &str = "m32u4";

/// The shim's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The emulated programmer.
    pub device: DeviceKind,
    /// The chip in its socket; `None` for an empty socket.
    pub part: Option<&'static Part>,
    /// Where the chip is loaded from and saved to.
    pub state_dir: Option<PathBuf>,
    /// Where the stats go at exit.
    pub stats_file: Option<PathBuf>,
    /// Faults to commit.
    pub faults: Faults,
    /// Wall-clock pacing.
    pub realtime: bool,
    /// Trace level (0 = quiet).
    pub debug: i32,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Config> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the settings through `lookup` (the environment, or a table in tests). Empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Config> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let text = |name: &str| -> Result<Option<String>> {
            get(name)
                .map(|v| {
                    v.into_string().map_err(|v| {
                        Error::invalid(format!("{name}={} is not valid UTF-8", v.display()))
                    })
                })
                .transpose()
        };
        let device = text(ENV_DEVICE)?.ok_or_else(|| {
            Error::invalid(format!(
                "{ENV_DEVICE} is not set: say which programmer to emulate ({})",
                DeviceKind::NAMES.join(", ")
            ))
        })?;
        let device = DeviceKind::parse(&device).map_err(|e| in_variable(ENV_DEVICE, e))?;
        let part_name = text(ENV_PART)?.unwrap_or_else(|| DEFAULT_PART.to_string());
        let part = if part_name.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(
                PartDb::builtin()
                    .and_then(|db| db.find(&part_name))
                    .map_err(|e| in_variable(ENV_PART, e))?,
            )
        };
        let faults = match text(ENV_FAULT)? {
            Some(spec) => Faults::parse(&spec).map_err(|e| in_variable(ENV_FAULT, e))?,
            None => Faults::none(),
        };
        let realtime = match text(ENV_REALTIME)?.as_deref() {
            None | Some("0" | "no" | "false" | "off") => false,
            Some("1" | "yes" | "true" | "on") => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "{ENV_REALTIME}={other}: use 1 or 0"
                )));
            }
        };
        let debug = match text(ENV_DEBUG)? {
            None => 0,
            Some(level) => level.trim().parse().map_err(|_| {
                Error::invalid(format!("{ENV_DEBUG}={level}: use a number (0 = quiet)"))
            })?,
        };
        Ok(Config {
            device,
            part,
            state_dir: get(ENV_STATE).map(PathBuf::from),
            stats_file: get(ENV_STATS).map(PathBuf::from),
            faults,
            realtime,
            debug,
        })
    }
}

/// Says which variable held the bad value, keeping the engine's hint.
fn in_variable(name: &str, error: Error) -> Error {
    let hint = error.hint().map(|h| format!(" ({h})")).unwrap_or_default();
    Error::invalid(format!("{name}: {error}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config> {
        let table: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_lookup(|name| table.get(name).cloned())
    }

    #[test]
    fn defaults_to_an_atmega32u4_without_state() {
        let c = config(&[(ENV_DEVICE, "usbtiny")]).unwrap();
        assert_eq!(c.device, DeviceKind::UsbTiny);
        assert_eq!(c.part.map(|p| p.id.as_str()), Some("atmega32u4"));
        assert!(c.state_dir.is_none() && c.stats_file.is_none());
        assert!(c.faults.is_empty());
        assert!(!c.realtime);
        assert_eq!(c.debug, 0);
    }

    #[test]
    fn reads_every_setting() {
        let c = config(&[
            (ENV_DEVICE, "USBtiny"),
            (ENV_PART, "m328p"),
            (ENV_STATE, "/tmp/board"),
            (ENV_STATS, "/tmp/stats.json"),
            (ENV_FAULT, "drop=3"),
            (ENV_REALTIME, "1"),
            (ENV_DEBUG, "2"),
        ])
        .unwrap();
        assert_eq!(c.part.map(|p| p.id.as_str()), Some("atmega328p"));
        assert_eq!(c.state_dir, Some(PathBuf::from("/tmp/board")));
        assert_eq!(c.stats_file, Some(PathBuf::from("/tmp/stats.json")));
        assert_eq!(c.faults, Faults::parse("drop=3").unwrap());
        assert!(c.realtime);
        assert_eq!(c.debug, 2);
    }

    #[test]
    fn empty_socket_and_empty_values() {
        let c = config(&[(ENV_DEVICE, "usbtiny"), (ENV_PART, "none"), (ENV_STATE, "")]).unwrap();
        assert!(c.part.is_none());
        assert!(c.state_dir.is_none());
    }

    #[test]
    fn errors_name_the_variable() {
        let missing = config(&[]).unwrap_err().to_string();
        assert!(
            missing.contains(ENV_DEVICE) && missing.contains("usbtiny"),
            "{missing}"
        );
        let cases = [
            (vec![(ENV_DEVICE, "stk500")], ENV_DEVICE),
            (vec![(ENV_DEVICE, "usbtiny"), (ENV_PART, "m9999")], ENV_PART),
            (
                vec![(ENV_DEVICE, "usbtiny"), (ENV_FAULT, "boom=1")],
                ENV_FAULT,
            ),
            (
                vec![(ENV_DEVICE, "usbtiny"), (ENV_REALTIME, "maybe")],
                ENV_REALTIME,
            ),
            (
                vec![(ENV_DEVICE, "usbtiny"), (ENV_DEBUG, "loud")],
                ENV_DEBUG,
            ),
        ];
        for (vars, name) in cases {
            let message = config(&vars).unwrap_err().to_string();
            assert!(message.contains(name), "{message}");
        }
        let unknown_part = config(&[(ENV_DEVICE, "usbtiny"), (ENV_PART, "m9999")])
            .unwrap_err()
            .to_string();
        assert!(
            unknown_part.contains("atmega32u4"),
            "lists known parts: {unknown_part}"
        );
    }
}
