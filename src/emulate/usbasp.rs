//! Emulated USBasp firmware (Thomas Fischl's, with the variants clones ship).
