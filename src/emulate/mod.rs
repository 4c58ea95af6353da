//! Emulated targets and programmers for testing without hardware.
