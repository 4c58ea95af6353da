//! The programmer's port B and the 74AHC125 buffer between it and the ISP header (Adafruit
//! USBtinyISP v2: LED PB0, RESET PB4, MOSI PB5, MISO PB6, SCK PB7; the buffer is enabled by
//! PD4, low = on).

use crate::emulate::usb::UsbIo;

/// Port B bit of the LED.
pub const LED: u8 = 1 << 0;
/// Port B bit driving the target's RESET (1 = high = released).
pub const RESET: u8 = 1 << 4;
/// Port B bit driving MOSI.
pub const MOSI: u8 = 1 << 5;
/// Port B bit reading MISO.
pub const MISO: u8 = 1 << 6;
/// Port B bit driving SCK.
pub const SCK: u8 = 1 << 7;

/// PORTB, DDRB and the buffer enable, as the firmware leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pins {
    /// PORTB (output levels; pull-ups on inputs).
    pub port: u8,
    /// DDRB (1 = output).
    pub ddr: u8,
    /// The buffer passes RESET, SCK and MOSI to the header (PD4 low).
    pub buffer_on: bool,
}

impl Pins {
    /// What PINB reads. Outputs read back their level and inputs with a pull-up read 1; MISO
    /// is modelled as idling high (the chip model exposes no MISO level between bytes), and
    /// the unconnected inputs PB1..PB3 without a pull-up as 0.
    pub fn read(&self) -> u8 {
        let miso = if self.ddr & MISO == 0 { MISO } else { 0 };
        self.port | miso
    }

    /// Whether the target's RESET is driven low. With the buffer off or the pin an input, the
    /// target's own pull-up releases it.
    pub fn reset_asserted(&self) -> bool {
        self.drives(RESET) && self.port & RESET == 0
    }

    /// Whether SCK is driven high.
    pub fn sck_high(&self) -> bool {
        self.drives(SCK) && self.port & SCK != 0
    }

    fn drives(&self, bit: u8) -> bool {
        self.buffer_on && self.ddr & bit != 0
    }

    /// Passes the header's levels to the target: SCK first, so that a RESET edge in the
    /// same register write sees SCK's new level (POWERUP lowers both at once).
    pub fn apply(&self, io: &mut UsbIo) {
        io.set_sck_level(self.sck_high());
        io.set_reset(self.reset_asserted());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_needs_the_buffer_and_an_output() {
        let mut pins = Pins {
            port: LED,
            ddr: LED | RESET | SCK | MOSI,
            buffer_on: true,
        };
        assert!(pins.reset_asserted());
        assert!(!pins.sck_high());
        pins.buffer_on = false;
        assert!(!pins.reset_asserted());
        pins = Pins::default();
        assert!(!pins.reset_asserted());
        assert_eq!(pins.read(), MISO);
        pins.port = SCK | RESET;
        pins.ddr = SCK | RESET;
        pins.buffer_on = true;
        assert!(pins.sck_high());
        assert!(!pins.reset_asserted());
        assert_eq!(pins.read(), SCK | RESET | MISO);
    }
}
