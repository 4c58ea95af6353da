//! USBasp driver (`usbasp`).
