//! USBtinyISP / PocketAVR driver (`usbtiny`).
