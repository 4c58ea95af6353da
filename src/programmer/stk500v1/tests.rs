//! The driver against a scripted link: the exact frames it sends, how it pipelines and elides
//! LOAD_ADDRESS, how it recovers, and that no reply whatsoever makes it panic or hang.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::part::PartDb;

/// A link that answers each write with the next scripted chunk. Reads that find too few bytes
/// time out at once (no real waiting), so recovery paths run fast.
struct ScriptedLink {
    script: VecDeque<Vec<u8>>,
    pending: VecDeque<u8>,
    writes: Vec<Vec<u8>>,
    dtr: Vec<bool>,
}

impl ScriptedLink {
    fn new(script: impl IntoIterator<Item = Vec<u8>>) -> Self {
        ScriptedLink {
            script: script.into_iter().collect(),
            pending: VecDeque::new(),
            writes: Vec::new(),
            dtr: Vec::new(),
        }
    }
}

impl SerialLink for ScriptedLink {
    fn name(&self) -> &str {
        "scripted"
    }
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.writes.push(data.to_vec());
        if let Some(chunk) = self.script.pop_front() {
            self.pending.extend(chunk);
        }
        Ok(())
    }
    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration, during: &str) -> Result<()> {
        if self.pending.len() < buf.len() {
            let got = self.pending.len();
            self.pending.clear();
            return Err(crate::transport::read_timeout(
                "scripted",
                timeout,
                during,
                got,
                buf.len(),
            ));
        }
        for slot in buf.iter_mut() {
            *slot = self.pending.pop_front().unwrap_or(0);
        }
        Ok(())
    }
    fn read_some(&mut self, buf: &mut [u8], _timeout: Duration) -> Result<usize> {
        let n = buf.len().min(self.pending.len());
        for slot in buf[..n].iter_mut() {
            *slot = self.pending.pop_front().unwrap_or(0);
        }
        Ok(n)
    }
    fn set_dtr(&mut self, on: bool) -> Result<()> {
        self.dtr.push(on);
        Ok(())
    }
    fn set_rts(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
    fn set_baud(&mut self, _baud: u32) -> Result<()> {
        Ok(())
    }
}

const OK: [u8; 2] = [0x14, 0x10];

/// What ArduinoISP answers to the identify batch: sign-on, HW, SW major, SW minor.
fn identify_reply() -> Vec<u8> {
    [
        &b"\x14AVR ISP\x10"[..],
        &[0x14, 2, 0x10],
        &[0x14, 1, 0x10],
        &[0x14, 18, 0x10],
    ]
    .concat()
}

/// The writes connecting takes: GET_SYNC with the identify requests behind it.
const CONNECT_WRITES: usize = 1;

/// What ArduinoISP answers while the driver connects: the sync (in step), then the identify
/// replies.
fn connect_script() -> Vec<Vec<u8>> {
    vec![[OK.to_vec(), identify_reply()].concat()]
}

fn driver(then: Vec<Vec<u8>>) -> Stk500v1<ScriptedLink> {
    let mut script = connect_script();
    script.extend(then);
    let options = Stk500v1Options {
        timeout: Duration::from_millis(1),
        ..Default::default()
    };
    Stk500v1::new(ScriptedLink::new(script), options).unwrap()
}

fn part(name: &str) -> &'static Part {
    PartDb::builtin().unwrap().find(name).unwrap()
}

#[test]
fn connects_and_identifies_arduinoisp() {
    let d = driver(vec![]);
    let info = d.info();
    assert_eq!(info.driver, "avrisp");
    assert_eq!(info.firmware, "ArduinoISP (AVR ISP), HW 2, SW 1.18");
    assert_eq!(info.capabilities.read_chunk, READ_BLOCK);
    assert!(!info.capabilities.set_sck);
    assert_eq!(d.sck_hz(), Some(125_000));
    let writes = &d.link().writes;
    // GET_SYNC, sign-on and the three versions in one write.
    assert_eq!(writes.len(), 1);
    assert_eq!(
        writes[0],
        [
            0x30, 0x20, 0x31, 0x20, 0x41, 0x80, 0x20, 0x41, 0x81, 0x20, 0x41, 0x82, 0x20
        ]
    );
}

#[test]
fn syncs_again_when_the_flushing_sync_is_answered_out_of_step() {
    // A sketch left inside a frame takes the first GET_SYNC as data and answers NOSYNC.
    let script = vec![vec![0x15], OK.to_vec(), identify_reply()];
    let options = Stk500v1Options {
        timeout: Duration::from_millis(1),
        ..Default::default()
    };
    let d = Stk500v1::new(ScriptedLink::new(script), options).unwrap();
    let writes = &d.link().writes;
    assert_eq!(writes[0][..4], [0x30, 0x20, 0x31, 0x20]);
    // Out of step: GET_SYNC alone until it is answered, then identify again.
    assert_eq!(writes[1], [0x30, 0x20]);
    assert_eq!(writes[2][..2], [0x31, 0x20]);
    assert_eq!(d.info().firmware, "ArduinoISP (AVR ISP), HW 2, SW 1.18");
}

#[test]
fn enter_sends_set_device_ext_progmode_and_the_signature_in_one_write() {
    let sig = [0x1E, 0x95, 0x0F];
    let mut reply = [OK, OK, OK].concat();
    for b in sig {
        reply.extend([0x14, b, 0x10]);
    }
    let mut d = driver(vec![reply]);
    d.enter(part("m328p")).unwrap();
    let last = d.link().writes.last().unwrap().clone();
    assert_eq!(last.len(), 22 + 7 + 2 + 3 * 6);
    assert_eq!(&last[22..29], &[0x45, 0x05, 0x04, 0xD7, 0xC2, 0x01, 0x20]);
    assert_eq!(&last[29..31], &[0x50, 0x20]);
    assert_eq!(&last[31..37], &[0x56, 0x30, 0x00, 0x00, 0x00, 0x20]);
    let writes = d.link().writes.len();
    // The signature read in that batch answers the next read without a round trip; a
    // second read asks the programmer.
    assert_eq!(d.read_signature().unwrap(), sig);
    assert_eq!(d.link().writes.len(), writes);
}

#[test]
fn consecutive_flash_pages_need_no_load_address() {
    let p = part("m32u4");
    let page = vec![0xA5; 128];
    let mut d = driver(vec![[OK, OK].concat(), OK.to_vec(), [OK, OK].concat()]);
    d.write_page(p, Memory::Flash, 0x100, &page).unwrap();
    d.write_page(p, Memory::Flash, 0x180, &page).unwrap();
    d.write_page(p, Memory::Flash, 0x400, &page).unwrap();
    let writes = &d.link().writes[CONNECT_WRITES..];
    // Word 0x80, then PROG_PAGE; the next page follows on; a jump needs an address again.
    assert_eq!(&writes[0][..4], &[0x55, 0x80, 0x00, 0x20]);
    assert_eq!(&writes[0][4..8], &[0x64, 0x00, 0x80, b'F']);
    assert_eq!(&writes[1][..4], &[0x64, 0x00, 0x80, b'F']);
    assert_eq!(&writes[2][..4], &[0x55, 0x00, 0x02, 0x20]);
}

#[test]
fn reads_come_in_big_blocks_and_odd_edges_are_trimmed() {
    let p = part("m32u4");
    let mut reply = vec![0x14];
    reply.extend((0..6).map(|i| 0x10 + i as u8));
    reply.push(0x10);
    let mut d = driver(vec![[OK.to_vec(), reply].concat()]);
    let mut buf = [0u8; 4];
    // Bytes 0x101..0x105: words 0x80..0x83, six bytes from 0x100.
    d.read(p, Memory::Flash, 0x101, &mut buf).unwrap();
    assert_eq!(buf, [0x11, 0x12, 0x13, 0x14]);
    let last = d.link().writes.last().unwrap();
    assert_eq!(
        last,
        &[0x55, 0x80, 0x00, 0x20, 0x74, 0x00, 0x06, b'F', 0x20]
    );

    // 3000 bytes of flash: three READ_PAGEs, the address loaded once.
    let block = |n: usize| [vec![0x14], vec![0xEE; n], vec![0x10]].concat();
    let mut d = driver(vec![
        [OK.to_vec(), block(1024)].concat(),
        block(1024),
        block(952),
    ]);
    let mut buf = vec![0u8; 3000];
    d.read(p, Memory::Flash, 0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0xEE));
    let writes = &d.link().writes[CONNECT_WRITES..];
    assert_eq!(writes.len(), 3);
    assert_eq!(&writes[1][..], &[0x74, 0x04, 0x00, b'F', 0x20]);
}

#[test]
fn eeprom_addresses_are_halved_for_the_sketch() {
    let p = part("m32u4");
    // Reading EEPROM bytes 9..12 starts at the word address of byte 8.
    let mut d = driver(vec![[OK.to_vec(), vec![0x14, 0, 1, 2, 3, 0x10]].concat()]);
    let mut buf = [0u8; 3];
    d.read(p, Memory::Eeprom, 9, &mut buf).unwrap();
    assert_eq!(buf, [1, 2, 3]);
    assert_eq!(
        d.link().writes.last().unwrap(),
        &[0x55, 0x04, 0x00, 0x20, 0x74, 0x00, 0x04, b'E', 0x20]
    );
    // PROG_PAGE 'E' at byte 8 loads word 4.
    let options = Stk500v1Options {
        eeprom_writes: EepromWrites::ProgPage,
        timeout: Duration::from_millis(1),
        ..Default::default()
    };
    let mut script = connect_script();
    script.push([OK, OK].concat());
    let mut d = Stk500v1::new(ScriptedLink::new(script), options).unwrap();
    d.write_page(p, Memory::Eeprom, 8, &[9, 8, 7, 6]).unwrap();
    assert_eq!(
        d.link().writes.last().unwrap(),
        &[
            0x55, 0x04, 0x00, 0x20, 0x64, 0x00, 0x04, b'E', 9, 8, 7, 6, 0x20
        ]
    );
}

#[test]
fn eeprom_pages_go_through_universal_and_are_polled() {
    let p = part("m32u4");
    let ok_byte = vec![0x14, 0x00, 0x10];
    let pipelined: Vec<u8> = std::iter::repeat_n(ok_byte.clone(), 5).flatten().collect();
    let mut d = driver(vec![pipelined, ok_byte]);
    d.write_page(p, Memory::Eeprom, 4, &[1, 2, 3, 4]).unwrap();
    let writes = &d.link().writes[CONNECT_WRITES..];
    assert_eq!(&writes[0][..6], &[0x56, 0xC1, 0x00, 0x04, 0x01, 0x20]);
    assert_eq!(&writes[0][24..30], &[0x56, 0xC2, 0x00, 0x04, 0x00, 0x20]);
    assert_eq!(&writes[1][..], &[0x56, 0xF0, 0x00, 0x00, 0x00, 0x20]);
}

#[test]
fn nosync_resyncs_and_retries_without_an_elided_address() {
    let p = part("m32u4");
    let page = vec![0u8; 128];
    let mut d = driver(vec![
        [OK, OK].concat(),
        vec![0x15],
        vec![0x15], // the 0xFF flush: unknown commands, NOSYNC
        OK.to_vec(),
        [OK, OK].concat(),
    ]);
    d.write_page(p, Memory::Flash, 0, &page).unwrap();
    d.write_page(p, Memory::Flash, 0x80, &page).unwrap();
    let writes = &d.link().writes[CONNECT_WRITES..];
    assert_eq!(writes[1][0], 0x64, "the second page follows on");
    assert!(writes[2].iter().all(|&b| b == 0xFF), "NOSYNC: flush");
    assert_eq!(writes[2].len(), 133, "as long as the frame that failed");
    assert_eq!(writes[3], [0x30, 0x20], "then sync");
    assert_eq!(&writes[4][..4], &[0x55, 0x40, 0x00, 0x20], "address again");
}

#[test]
fn silence_ends_with_a_timeout_that_says_what_was_done() {
    let p = part("m32u4");
    let mut d = driver(vec![]);
    let err = d.write_page(p, Memory::Flash, 0x80, &[0; 128]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Timeout { .. }), "{text}");
    assert!(text.contains("LOAD_ADDRESS word 0x0040"), "{text}");
    assert!(
        text.contains("PROG_PAGE flash 128 bytes at 0x00080"),
        "{text}"
    );
    assert!(text.contains("resynchronising failed too"), "{text}");
}

#[test]
fn the_isp_clock_is_fixed() {
    let mut d = driver(vec![]);
    let err = d.set_sck(1_000_000).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }));
    assert!(err.to_string().contains("SET_PARAMETER"), "{err}");
    // Nothing was sent: SET_PARAMETER would desynchronise ArduinoISP.
    assert_eq!(d.link().writes.len(), CONNECT_WRITES);
}

#[test]
fn read_sign_falls_back_to_universal_on_unknown() {
    let ok_sig = |b: u8| vec![0x14, b, 0x10];
    let mut d = driver(vec![
        vec![0x12],
        vec![],
        OK.to_vec(),
        [ok_sig(0x1E), ok_sig(0x95), ok_sig(0x87)].concat(),
    ]);
    assert_eq!(d.read_signature().unwrap(), [0x1E, 0x95, 0x87]);
}

#[test]
fn dtr_reset_pulses_dtr_before_syncing() {
    let options = Stk500v1Options {
        dtr_reset: true,
        reset_wait: Duration::from_millis(1),
        ..Stk500v1Options::for_alias("arduino").unwrap()
    };
    assert!(Stk500v1Options::for_alias("ARDUINO").unwrap().dtr_reset);
    assert!(!Stk500v1Options::for_alias("stk500v1").unwrap().dtr_reset);
    assert!(Stk500v1Options::for_alias("usbasp").is_none());
    let d = Stk500v1::new(ScriptedLink::new(connect_script()), options).unwrap();
    assert_eq!(d.link().dtr, [false, true]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the programmer answers, every operation returns (Ok or a described error)
    /// without panicking.
    #[test]
    fn no_reply_makes_the_driver_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
        addr in 0u32..0x8000,
        len in 0usize..300,
    ) {
        let p = part("m32u4");
        let mut d = driver(chunks);
        let _ = d.enter(p);
        let _ = d.read_signature();
        let mut buf = vec![0u8; len];
        let _ = d.read(p, Memory::Flash, addr.min(0x8000 - len as u32), &mut buf);
        let _ = d.read(p, Memory::Eeprom, addr % 0x300, &mut buf[..len.min(0x100)]);
        let _ = d.write_page(p, Memory::Flash, addr & !0x7F, &[0x55; 128]);
        let _ = d.write_page(p, Memory::Eeprom, addr & 0x3FC, &[1, 2, 3, 4]);
        let _ = d.command(isp::read_fuse(crate::part::FuseKind::High));
        let _ = d.leave();
    }
}
