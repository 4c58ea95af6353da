//! Bus Pirate binary-mode driver (`buspirate`).
