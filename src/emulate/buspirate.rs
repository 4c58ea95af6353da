//! Emulated Bus Pirate firmware (binary bit-bang and SPI modes, AVR extended commands).
