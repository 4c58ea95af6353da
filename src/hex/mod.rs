//! Intel HEX files and sparse memory images.
