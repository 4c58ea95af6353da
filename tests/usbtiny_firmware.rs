//! The emulated USBtiny firmware request by request, as avrdude (and anything else) sees it
//! through raw control transfers: identity, every vendor request, the pin gating, the
//! address counter, the IN limit, the poll loop and its endless case, and the USB driver's
//! quirks.

mod usbtiny_common;

use std::time::Duration;

use isp_toolbox::emulate::fault::Faults;
use isp_toolbox::emulate::socket::{SharedSocket, lock};
use isp_toolbox::emulate::usb::{EmulatedUsbLink, lock_device};
use isp_toolbox::emulate::usbtiny;
use isp_toolbox::error::Error;
use isp_toolbox::isp;
use isp_toolbox::programmer::usbtiny::protocol::{request, spi_setup};
use isp_toolbox::transport::{UsbLink, request_type};
use usbtiny_common::*;

const T: Duration = Duration::from_millis(500);

struct Bench {
    socket: SharedSocket,
    link: EmulatedUsbLink,
}

impl Bench {
    fn new(part: &str) -> Bench {
        let socket = running_board(usbtiny_common::part(part));
        let device = usbtiny::device(socket.clone(), Faults::none());
        Bench {
            socket,
            link: EmulatedUsbLink::new(device),
        }
    }

    /// A vendor IN request with wLength `len`; the bytes that came back.
    fn vin(&mut self, req: u8, value: u16, index: u16, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let n = self
            .link
            .control_in(request_type::VENDOR_IN, req, value, index, &mut buf, T)
            .unwrap();
        buf.truncate(n);
        buf
    }

    fn vout(&mut self, req: u8, value: u16, index: u16, data: &[u8]) {
        let n = self
            .link
            .control_out(request_type::VENDOR_OUT, req, value, index, data, T)
            .unwrap();
        assert_eq!(n, data.len());
    }

    /// avrdude's control request: IN, wLength 0.
    fn control(&mut self, req: u8, value: u16, index: u16) {
        assert!(self.vin(req, value, index, 0).is_empty());
    }

    fn spi(&mut self, cmd: [u8; 4]) -> Vec<u8> {
        let (value, index) = spi_setup(cmd);
        self.vin(request::SPI, value, index, 4)
    }

    /// POWERUP at `period` with RESET low, 20 ms, Programming Enable.
    fn enter(&mut self, period: u16) {
        self.control(request::POWERUP, period, 0);
        lock(&self.socket).advance(Duration::from_millis(20));
        let reply = self.spi(isp::programming_enable());
        assert_eq!(reply[2], 0x53, "in sync: {reply:02X?}");
    }

    fn chip_flash(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        lock(&self.socket).chip().unwrap().flash()[range].to_vec()
    }
}

#[test]
fn identifies_as_a_usbtinyisp() {
    let device = usbtiny::device(running_board(part("m328p")), Faults::none());
    let id = lock_device(&device).identity();
    assert_eq!((id.vid, id.pid, id.bcd_device), (0x1781, 0x0C9F, 0x0107));
    assert_eq!(id.product.as_deref(), Some("USBtinyISP"));
    assert_eq!(id.manufacturer, None);
    assert_eq!(id.interface_class, 0xFF);
    // The standard request path answers from the same descriptors, and never stalls.
    let mut link = EmulatedUsbLink::new(device);
    let mut buf = [0u8; 64];
    let n = link.control_in(0x80, 6, 0x0100, 0, &mut buf, T).unwrap();
    assert_eq!(n, 18);
    assert_eq!(&buf[8..12], &[0x81, 0x17, 0x9F, 0x0C]);
    let n = link
        .control_in(0x80, 6, 0x0302, 0x0409, &mut buf, T)
        .unwrap();
    let text: String = buf[2..n].chunks(2).map(|c| char::from(c[0])).collect();
    assert_eq!(text, "USBtinyISP");
    assert_eq!(
        link.control_in(0x80, 6, 0x0301, 0x0409, &mut buf, T)
            .unwrap(),
        0
    );
    assert_eq!(link.control_in(0xC0, 99, 0, 0, &mut buf, T).unwrap(), 0);
}

#[test]
fn echo_returns_the_setup_packet() {
    let mut b = Bench::new("m32u4");
    assert_eq!(
        b.vin(request::ECHO, 0x1234, 0xABCD, 8),
        [0xC0, 0x00, 0x34, 0x12, 0xCD, 0xAB, 0x08, 0x00]
    );
    // wLength cuts it.
    assert_eq!(b.vin(request::ECHO, 0x1234, 0xABCD, 3), [0xC0, 0x00, 0x34]);
}

#[test]
fn spi_is_ignored_until_powerup_and_after_powerdown() {
    let mut b = Bench::new("m32u4");
    assert!(b.spi(isp::programming_enable()).is_empty());
    assert!(b.vin(request::FLASH_READ, 0, 0, 8).is_empty());
    assert!(b.vin(request::SPI1, 0xAC, 0, 1).is_empty());
    assert!(
        !lock(&b.socket).reset_asserted(),
        "RESET released at power-up"
    );
    b.enter(10);
    assert!(lock(&b.socket).reset_asserted());
    // The chip echoes every instruction; a read returns its data in byte 3.
    let sig = b.spi(isp::read_signature(0));
    assert_eq!(sig, [0x00, 0x30, 0x00, 0x1E]);
    // SPI1: one byte; the chip shifts out the last byte it received.
    assert_eq!(b.vin(request::SPI1, 0x30, 0, 1), [0x00]);
    b.control(request::POWERDOWN, 0, 0);
    assert!(!lock(&b.socket).reset_asserted());
    assert!(b.spi(isp::read_signature(0)).is_empty());
}

#[test]
fn port_b_requests_act_on_the_isp_pins() {
    let mut b = Bench::new("m328p");
    // Released pins: inputs, no pull-ups; MISO idles high.
    assert_eq!(b.vin(request::READ, 0, 0, 1), [0x40]);
    b.control(request::POWERUP, 10, 1);
    // LED | RESET high | MISO.
    assert_eq!(b.vin(request::READ, 0, 0, 1), [0x51]);
    assert!(!lock(&b.socket).reset_asserted());
    // CLR bit 4 pulls RESET low: the target is in reset.
    b.control(request::CLR, 4, 0);
    assert!(lock(&b.socket).reset_asserted());
    b.control(request::SET, 4, 0);
    assert!(!lock(&b.socket).reset_asserted());
    // WRITE 0: RESET low, and port B reads 0, so SPI is ignored again.
    b.control(request::WRITE, 0, 0);
    assert!(lock(&b.socket).reset_asserted());
    assert!(b.spi(isp::programming_enable()).is_empty());
    // DDRWRITE 0 makes every pin an input: the target's pull-up releases RESET.
    b.control(request::WRITE, 0x01, 0);
    b.control(request::DDRWRITE, 0, 0);
    assert!(!lock(&b.socket).reset_asserted());
}

#[test]
fn block_reads_walk_a_16_bit_counter_and_stop_at_255_bytes() {
    let part = part("at90usb1286");
    let mut image = vec![0xFFu8; part.flash.size as usize];
    for (i, b) in image.iter_mut().enumerate() {
        *b = (i % 253) as u8 ^ (i >> 16) as u8;
    }
    let socket = {
        let chip = isp_toolbox::emulate::EmulatedChip::new(
            part,
            isp_toolbox::emulate::ChipConfig {
                fuses: Some(isp_toolbox::emulate::FuseValues {
                    lfuse: 0xFF,
                    hfuse: 0x99,
                    efuse: None,
                }),
                flash: Some(image.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        isp_toolbox::emulate::socket::Socket::with_chip(chip).shared()
    };
    let device = usbtiny::device(socket.clone(), Faults::none());
    let mut b = Bench {
        socket,
        link: EmulatedUsbLink::new(device),
    };
    b.enter(1);
    assert_eq!(
        b.vin(request::FLASH_READ, 0, 0x1000, 40),
        image[0x1000..0x1028]
    );
    // The counter wraps at 64 KB: the upper half cannot be reached.
    let wrapped = b.vin(request::FLASH_READ, 0, 0xFFF8, 16);
    assert_eq!(wrapped[..8], image[0xFFF8..0x10000]);
    assert_eq!(wrapped[8..], image[..8]);
    // A wLength above 255 gets 255 bytes.
    assert_eq!(
        b.vin(request::FLASH_READ, 0, 0x2000, 300),
        image[0x2000..0x20FF]
    );
    // EEPROM reads walk the EEPROM.
    let eeprom = lock(&b.socket).chip().unwrap().eeprom().to_vec();
    assert_eq!(
        b.vin(request::EEPROM_READ, 0, 0xFF0, 16),
        eeprom[0xFF0..0x1000]
    );
}

#[test]
fn flash_write_loads_the_page_buffer_and_spi_commits_it() {
    let mut b = Bench::new("m32u4");
    b.enter(1);
    b.spi(isp::chip_erase());
    lock(&b.socket).advance(Duration::from_millis(10));
    // avrdude: FLASH_WRITE with timeout 0, then Write Page through SPI, then its delay.
    let data = pattern(128, 5);
    b.vout(request::FLASH_WRITE, 0, 0x0100, &data);
    assert_eq!(
        b.chip_flash(0x100..0x180),
        vec![0xFF; 128],
        "only the buffer is loaded"
    );
    let commit = isp::write_flash_page(0x100);
    let reply = b.spi(commit);
    assert_eq!(reply[1..3], commit[..2], "echoed: {reply:02X?}");
    lock(&b.socket).advance(Duration::from_micros(4_500));
    assert_eq!(b.chip_flash(0x100..0x180), data);
    assert_eq!(b.vin(request::FLASH_READ, 0, 0x100, 128), data);
    assert_clean_timing(&b.socket, "avrdude-style page write");
}

#[test]
fn eeprom_write_polls_each_byte_until_it_reads_back() {
    let mut b = Bench::new("m328p");
    b.enter(10);
    // avrdude: POLL_BYTES with the readback pair, then EEPROM_WRITE with max_write_delay.
    b.control(request::POLL_BYTES, 0xFFFF, 0);
    let start = now_s(&b.socket);
    b.vout(
        request::EEPROM_WRITE,
        3_600,
        0x10,
        &[0x01, 0x02, 0x03, 0x04],
    );
    let polled = now_s(&b.socket) - start;
    // Four 3.6 ms writes, each polled until done: a little more than 14.4 ms.
    assert!((0.0144..0.030).contains(&polled), "{polled} s");
    // 0xFF equals the poll bytes: no way to see it done, so the firmware waits the timeout,
    // counting 32 × period per round while each round really takes longer.
    let start = now_s(&b.socket);
    b.vout(request::EEPROM_WRITE, 3_600, 0x14, &[0xFF]);
    let waited = now_s(&b.socket) - start;
    assert!(waited > 0.0036 * 1.5, "{waited} s");
    let eeprom = lock(&b.socket).chip().unwrap().eeprom()[0x10..0x15].to_vec();
    assert_eq!(eeprom, [1, 2, 3, 4, 0xFF]);
    assert_clean_timing(&b.socket, "firmware-polled EEPROM");
}

#[test]
fn an_out_transfer_to_a_read_request_first_clocks_a_packet_of_reads() {
    // usb_poll() fills the transmit buffer right after SETUP, whatever the direction.
    let mut b = Bench::new("m32u4");
    b.enter(1);
    let before = chip_stats(&b.socket).isp_instructions;
    b.vout(request::FLASH_READ, 0, 0, &[]);
    assert_eq!(
        chip_stats(&b.socket).isp_instructions - before,
        0,
        "wLength 0: nothing"
    );
    b.vout(request::FLASH_READ, 0, 0, &[0xAA; 3]);
    // 3 prefetched reads (wLength 3), then usb_out() on 3 bytes (timeout 0: no polls).
    assert_eq!(chip_stats(&b.socket).isp_instructions - before, 6);
}

#[test]
fn a_poll_that_can_never_end_hangs_the_firmware() {
    let mut b = Bench::new("m32u4");
    // Period 0: the delay loop runs 256 times and the poll step is 0.
    b.control(request::POWERUP, 0, 0);
    lock(&b.socket).advance(Duration::from_millis(20));
    assert_eq!(b.spi(isp::programming_enable())[2], 0x53);
    // A page-buffer load polled against erased flash never reads back 0x00.
    let mut buf = [0u8; 0];
    let out = b.link.control_out(
        request_type::VENDOR_OUT,
        request::FLASH_WRITE,
        1,
        0,
        &[0x00],
        T,
    );
    assert!(matches!(out, Err(Error::Timeout { .. })), "{out:?}");
    // Stuck for good: nothing answers any more.
    let next = b
        .link
        .control_in(request_type::VENDOR_IN, request::ECHO, 0, 0, &mut buf, T);
    assert!(matches!(next, Err(Error::Timeout { .. })), "{next:?}");
}

#[test]
fn zero_poll_bytes_let_an_ff_write_end_early_and_lose_the_next_byte() {
    // Debian's avrdude 7.1 has no EEPROM readback values for the ATmega32U4, so it sends
    // POLL_BYTES 0x0000. A byte written as 0xFF then "reads back" at once (a busy EEPROM reads
    // 0xFF), the firmware moves on, and the next write reaches a busy chip and is lost: the
    // failure of avrdude issue #1508 (fixed by sending 0xFFFF, PR #1511).
    let mut b = Bench::new("m32u4");
    b.enter(10);
    b.control(request::POLL_BYTES, 0x0000, 0);
    b.vout(request::EEPROM_WRITE, 9_000, 0x98, &[0xFF, 0x40]);
    lock(&b.socket).advance(Duration::from_millis(20));
    let eeprom = lock(&b.socket).chip().unwrap().eeprom()[0x98..0x9A].to_vec();
    assert_eq!(
        eeprom,
        [0xFF, 0xFF],
        "0x40 was sent while the chip was busy"
    );
    // The lost write, and the poll reads of another byte while the 0xFF was being written.
    let violations = chip_stats(&b.socket).busy_violations;
    assert!(violations >= 1);
    // With the erased value as poll byte the firmware waits out the 0xFF write.
    b.control(request::POLL_BYTES, 0xFFFF, 0);
    b.vout(request::EEPROM_WRITE, 9_000, 0x98, &[0xFF, 0x40]);
    let eeprom = lock(&b.socket).chip().unwrap().eeprom()[0x98..0x9A].to_vec();
    assert_eq!(eeprom, [0xFF, 0x40]);
    assert_eq!(chip_stats(&b.socket).busy_violations, violations);
}
