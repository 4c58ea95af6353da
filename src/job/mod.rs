//! Jobs: everything a user can do with a programmer and a target, independent of the GUI and CLI.

pub mod safety;
