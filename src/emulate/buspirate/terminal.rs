//! The text user interface in HiZ mode, as far as avrdude and our driver use it (BP-FW
//! `procMenu.c` `serviceuser`): line editing with echo, `#` (reset), `i` (version info),
//! syntax errors for everything else, and the count of 0x00 bytes that enters binary mode.
//!
//! Not emulated: the other bus modes and their menus (`m`), power (`W`), macros, history,
//! arrow keys and the BASIC interpreter. avrdude only needs them when binary mode fails.

/// What the terminal wants done after a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TerminalAction {
    /// Nothing beyond the output already produced.
    None,
    /// The 20th 0x00: enter binary bit-bang mode (`binBB`).
    EnterBinary,
    /// `#`: the PIC resets (`asm("RESET")`) after printing "RESET".
    Reset,
}

/// Bytes a command line can hold before further keys only beep.
const LINE_CAPACITY: usize = 255;

/// 0x00 bytes that switch to binary mode (`binmodecnt == 20`).
const ZEROS_FOR_BINARY: u8 = 20;

/// The terminal's state: the line being typed and the 0x00 count, which only a reset clears.
#[derive(Debug, Clone, Default)]
pub(super) struct Terminal {
    line: Vec<u8>,
    zeros: u8,
}

impl Terminal {
    /// Handles one byte from the host; `out` collects what the firmware prints.
    pub fn key(&mut self, byte: u8, version_info: &str, out: &mut Vec<u8>) -> TerminalAction {
        match byte {
            0x00 => {
                self.zeros = self.zeros.saturating_add(1);
                if self.zeros == ZEROS_FOR_BINARY {
                    return TerminalAction::EnterBinary;
                }
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                let line = std::mem::take(&mut self.line);
                let action = run_line(&line, version_info, out);
                if action == TerminalAction::None {
                    out.extend_from_slice(PROMPT);
                }
                return action;
            }
            0x08 | 0x7F => {
                if self.line.pop().is_some() {
                    out.extend_from_slice(b"\x08 \x08");
                } else {
                    out.push(BELL);
                }
            }
            0x20..=0x7E if self.line.len() < LINE_CAPACITY => {
                out.push(byte);
                self.line.push(byte);
            }
            _ => out.push(BELL),
        }
        TerminalAction::None
    }
}

/// The HiZ mode prompt.
pub(super) const PROMPT: &[u8] = b"HiZ>";

/// What the terminal beeps with.
const BELL: u8 = 0x07;

/// Runs one command line; stops at the first error, as the firmware does.
fn run_line(line: &[u8], version_info: &str, out: &mut Vec<u8>) -> TerminalAction {
    for (i, &c) in line.iter().enumerate() {
        match c {
            b'#' => {
                out.extend_from_slice(b"RESET\r\n");
                return TerminalAction::Reset;
            }
            b'i' => out.extend_from_slice(version_info.as_bytes()),
            b' ' | b',' => {}
            _ => {
                out.extend_from_slice(format!("Syntax error at char {}\r\n", i + 1).as_bytes());
                break;
            }
        }
    }
    TerminalAction::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_all(t: &mut Terminal, keys: &[u8]) -> (Vec<u8>, Vec<TerminalAction>) {
        let mut out = Vec::new();
        let actions = keys
            .iter()
            .map(|&k| t.key(k, "INFO\r\n", &mut out))
            .collect();
        (out, actions)
    }

    #[test]
    fn enter_prints_a_prompt_and_commands_echo() {
        let mut t = Terminal::default();
        let (out, _) = type_all(&mut t, b"\n\ni\n");
        assert_eq!(out, b"\r\nHiZ>\r\nHiZ>i\r\nINFO\r\nHiZ>");
    }

    #[test]
    fn unknown_commands_are_syntax_errors_at_their_position() {
        let mut t = Terminal::default();
        let (out, _) = type_all(&mut t, b" m\n");
        assert_eq!(out, b" m\r\nSyntax error at char 2\r\nHiZ>");
    }

    #[test]
    fn the_twentieth_zero_enters_binary_mode_whatever_came_between() {
        let mut t = Terminal::default();
        let mut keys = vec![0u8; 10];
        keys.extend_from_slice(b"\n");
        keys.extend(std::iter::repeat_n(0u8, 10));
        let (out, actions) = type_all(&mut t, &keys);
        assert_eq!(out, b"\r\nHiZ>", "zeros print nothing");
        assert_eq!(actions.last(), Some(&TerminalAction::EnterBinary));
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a != TerminalAction::None)
                .count(),
            1
        );
    }

    #[test]
    fn hash_resets_and_control_keys_beep() {
        let mut t = Terminal::default();
        let (out, actions) = type_all(&mut t, b"\x01#\r");
        assert_eq!(out, b"\x07#\r\nRESET\r\n");
        assert_eq!(actions.last(), Some(&TerminalAction::Reset));
    }
}
