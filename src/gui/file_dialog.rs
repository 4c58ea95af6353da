//! Native file dialogs (rfd) that tell "cancelled" from "no dialog could open".
//!
//! On Linux rfd asks the desktop portal (xdg-desktop-portal) for the dialog; where none runs
//! (a bare window manager, a container) the call returns at once with nothing, exactly like a
//! cancel. A person cannot cancel a dialog within a fraction of a second, so an empty answer
//! that fast means the dialog never opened, and the app says what to do instead.

use std::time::{Duration, Instant};

/// Faster than any person can close a dialog.
const TOO_FAST_FOR_A_PERSON: Duration = Duration::from_millis(150);

/// What to tell the user when no dialog opened.
pub const UNAVAILABLE: &str = "No file dialog opened (on Linux it needs xdg-desktop-portal and a \
     portal backend such as xdg-desktop-portal-gtk): drop the file onto the window instead, or \
     pass it on the command line (isp-toolbox FILE)";

/// How a dialog ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The user chose this.
    Chosen(T),
    /// The user closed the dialog.
    Cancelled,
    /// No dialog could open.
    Unavailable,
}

/// Shows a dialog (`show` calls rfd) and says how it ended.
pub fn run<T>(show: impl FnOnce() -> Option<T>) -> Outcome<T> {
    let started = Instant::now();
    let answer = show();
    classify(answer, started.elapsed())
}

/// An answer after `elapsed`: empty and faster than a person means no dialog opened.
pub fn classify<T>(answer: Option<T>, elapsed: Duration) -> Outcome<T> {
    match answer {
        Some(value) => Outcome::Chosen(value),
        None if elapsed < TOO_FAST_FOR_A_PERSON => Outcome::Unavailable,
        None => Outcome::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_empty_answer_means_no_dialog_opened() {
        assert_eq!(
            classify::<u8>(None, Duration::from_millis(3)),
            Outcome::Unavailable
        );
        assert_eq!(
            classify::<u8>(None, Duration::from_secs(2)),
            Outcome::Cancelled
        );
        assert_eq!(
            classify(Some(7), Duration::from_millis(1)),
            Outcome::Chosen(7)
        );
    }
}
