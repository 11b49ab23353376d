//! The `serial-reader` binary on a socat pty pair, spoken to byte by byte as a host would:
//! libccidtwin's greeting, echo, NAK on a bad checksum, the last answer again on NAK, a
//! retransmitted command not run twice, card movement notifications, the line delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use firmware_tests::serial_reader::SerialLine;

fn start(baud: u32, card: Option<&str>) -> SerialLine {
    SerialLine::start(Path::new(env!("CARGO_BIN_EXE_serial-reader")), baud, card).unwrap()
}

/// The host end: writes, and a thread that reads into a channel.
struct Host {
    out: File,
    rx: Receiver<u8>,
}

impl Host {
    fn open(line: &SerialLine) -> Self {
        let out = File::options()
            .read(true)
            .write(true)
            .open(line.host_path())
            .unwrap();
        let mut input = out.try_clone().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for b in &buf[..n] {
                    if tx.send(*b).is_err() {
                        return;
                    }
                }
            }
        });
        Self { out, rx }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.out.write_all(bytes).unwrap();
    }

    fn read(&self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| self.rx.recv_timeout(Duration::from_secs(3)).expect("byte"))
            .collect()
    }

    /// One frame: 03 06, header, data, LRC (checked).
    fn frame(&self) -> Vec<u8> {
        let mut f = self.read(12);
        assert_eq!(&f[..2], &[0x03, 0x06], "{f:02X?}");
        let len = u32::from_le_bytes([f[3], f[4], f[5], f[6]]) as usize;
        f.extend(self.read(len + 1));
        assert_eq!(f.iter().fold(0, |a, b| a ^ b), 0, "LRC of {f:02X?}");
        f
    }

    fn quiet(&self, wait: Duration) -> bool {
        self.rx.recv_timeout(wait).is_err()
    }
}

fn frame(kind: u8, seq: u8, params: [u8; 3], data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x03, 0x06, kind];
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(&[0, seq]);
    f.extend_from_slice(&params);
    f.extend_from_slice(data);
    let x = f.iter().fold(0, |a, b| a ^ b);
    f.push(x);
    f
}

/// The first frame libccidtwin sends (measured on the line, NOTES.md).
const GET_FIRMWARE: [u8; 14] = [
    0x03, 0x06, 0x6B, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x6D,
];

#[test]
fn answers_libccidtwins_greeting_with_echo() {
    let line = start(0, None);
    let mut h = Host::open(&line);
    h.send(&GET_FIRMWARE);
    assert_eq!(h.frame(), GET_FIRMWARE, "echo");
    let r = h.frame();
    assert_eq!(r[2], 0x83, "RDR_to_PC_Escape");
    assert_eq!(r[9], 0x02, "bStatus: no card");
    assert!(String::from_utf8_lossy(&r[12..r.len() - 1]).starts_with("GemTwin"));
    // Synchronous card movement notification: acknowledged.
    let cmd = frame(0x6b, 1, [0; 3], &[1, 1, 1]);
    h.send(&cmd);
    assert_eq!(h.frame(), cmd);
    assert_eq!(h.frame()[7..10], [0, 1, 0x02]);
}

#[test]
fn nak_for_a_bad_frame_and_the_last_answer_again_on_nak() {
    let line = start(0, None);
    let mut h = Host::open(&line);
    let mut bad = frame(0x65, 0, [0; 3], &[]);
    *bad.last_mut().unwrap() ^= 0x01;
    h.send(&bad);
    assert_eq!(h.read(3), [0x03, 0x15, 0x16]);
    assert!(h.quiet(Duration::from_millis(200)), "one NAK only");
    // A frame cut short: NAK after the inter-character timeout.
    h.send(&frame(0x65, 0, [0; 3], &[])[..7]);
    assert_eq!(h.read(3), [0x03, 0x15, 0x16]);
    let good = frame(0x65, 1, [0; 3], &[]);
    h.send(&good);
    assert_eq!(h.frame(), good);
    let answer = h.frame();
    assert_eq!(answer[2], 0x81);
    h.send(&[0x03, 0x15, 0x16]);
    assert_eq!(h.frame(), answer, "the same answer again, no echo");
}

#[test]
fn a_retransmitted_command_is_not_run_twice() {
    let mut line = start(0, Some("zhangsan"));
    let mut h = Host::open(&line);
    let on = frame(0x62, 0, [0; 3], &[]);
    h.send(&on);
    h.frame();
    let atr = h.frame();
    assert_eq!(
        &atr[12..atr.len() - 1],
        firmware_tests::profile::default_atr()
    );
    // T=0 TPDUs: SELECT SSSE as case 3, then VERIFY with a wrong PIN.
    let mut select = vec![0x00, 0xa4, 0x04, 0x00, 0x0f];
    select.extend_from_slice(&card_core::ssse::AID);
    let f = frame(0x6f, 1, [0; 3], &select);
    h.send(&f);
    h.frame();
    let r = h.frame();
    assert_eq!(r[r.len() - 3], 0x61, "T=0: 61xx for a case 4 command");
    let verify = frame(
        0x6f,
        2,
        [0; 3],
        &[0x00, 0x20, 0x00, 0x00, 0x03, 0x99, 0x99, 0x99],
    );
    h.send(&verify);
    h.frame();
    let first = h.frame();
    assert_eq!(&first[12..14], &[0x63, 0xc2]);
    // The same frame again (a host that did not get the answer): same answer, one try used.
    h.send(&verify);
    assert_eq!(h.frame(), verify);
    assert_eq!(h.frame(), first);
    assert_eq!(line.cmd("tries").unwrap(), "2");
    let stats = line.cmd("stats").unwrap();
    assert!(stats.contains("duplicates=1"), "{stats}");
}

#[test]
fn card_movements_are_notified_before_the_next_answer() {
    let mut line = start(0, None);
    let mut h = Host::open(&line);
    line.cmd("insert lisi").unwrap();
    let status = frame(0x65, 0, [0; 3], &[]);
    h.send(&status);
    assert_eq!(h.frame(), status);
    assert_eq!(h.read(2), [0x50, 0x03]);
    assert_eq!(h.frame()[9], 0x01, "present, not powered");
    line.cmd("remove").unwrap();
    let status = frame(0x65, 1, [0; 3], &[]);
    h.send(&status);
    h.frame();
    assert_eq!(h.read(2), [0x50, 0x02]);
    assert_eq!(h.frame()[9], 0x02, "absent");
    assert!(line.cmd("insert nobody").is_err());
    assert!(line.cmd("fault explode").is_err());
}

#[test]
fn the_line_takes_its_time_at_9600_baud() {
    let line = start(9600, None);
    let mut h = Host::open(&line);
    let status = frame(0x65, 0, [0; 3], &[]);
    let t = Instant::now();
    h.send(&status);
    h.frame();
    h.frame();
    let took = t.elapsed();
    // 13 bytes each way at 11 bits a byte: 29.8 ms (the echo costs nothing extra).
    assert!(took >= Duration::from_millis(28), "{took:?}");
    assert!(took < Duration::from_millis(300), "{took:?}");
}
