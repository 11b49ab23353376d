//! The independent check: pcscd with its own serial CCID driver (libccidtwin), configured
//! through its own reader.conf by `scripts/pcsc-env.sh start --serial 2`, drives the simulated
//! GemPC Twin reader; reader-driver's PC/SC backend talks to pcscd. The same checks as
//! `serial_backend.rs` run through this path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use card_core::CardSession;
use firmware_tests::serial_reader::checks::{self, Expected};
use firmware_tests::serial_reader::control::ControlClient;
use firmware_tests::serial_reader::pcscd::{self, SerialLease};
use reader_driver::{ActiveProtocol, EventWatcher, PcscContext, ProtocolChoice, ReaderEvent};

fn wait_present(reader: &str, want: bool) {
    let mut w = EventWatcher::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        w.next_events(Duration::from_millis(200));
        if w.card_present(reader) == want {
            return;
        }
    }
    panic!(
        "card in {reader} never became {}",
        if want { "present" } else { "absent" }
    );
}

/// A leased pcscd serial reader with a fresh `card` inserted and seen by pcscd.
fn with_card(card: &str) -> (SerialLease, ControlClient) {
    let lease = pcscd::lease().unwrap_or_else(|e| panic!("{e}"));
    let mut control = lease.control().unwrap();
    control.cmd("clear-faults").unwrap();
    control.cmd("baud 0").unwrap();
    control.cmd("remove").unwrap();
    wait_present(&lease.reader, false);
    control.cmd(&format!("insert {card}")).unwrap();
    wait_present(&lease.reader, true);
    (lease, control)
}

fn run(card: &str, protocol: ProtocolChoice, want: ActiveProtocol) {
    let (lease, mut control) = with_card(card);
    let mut ctx = PcscContext::new().unwrap();
    let c = ctx.connect(&lease.reader, protocol).unwrap();
    assert_eq!(c.active_protocol(), want);
    let mut s = CardSession::new(c);
    let report = checks::run_all(&mut s, &Expected::fixture(card).unwrap())
        .unwrap_or_else(|e| panic!("pcscd+libccidtwin {card} {protocol:?}: {e}"));
    assert_eq!(
        report.passed,
        ["status words", "conformance", "identity", "pin"]
    );
    drop(s);
    assert_eq!(control.cmd("tries").unwrap(), "0");
    control.cmd("remove").unwrap();
}

#[test]
fn libccidtwin_passes_the_checks_with_t0() {
    run("zhangsan", ProtocolChoice::T0, ActiveProtocol::T0);
}

#[test]
fn libccidtwin_passes_the_checks_with_t1() {
    run("zhangsan", ProtocolChoice::T1, ActiveProtocol::T1);
}

#[test]
fn libccidtwin_passes_the_checks_on_the_t0_only_card() {
    run("wangfang-t0", ProtocolChoice::Any, ActiveProtocol::T0);
}

#[test]
fn libccidtwin_reports_insert_and_remove() {
    let (lease, mut control) = with_card("lisi");
    let mut w = EventWatcher::new();
    let first = w.next_events(Duration::from_millis(200));
    assert!(
        first.contains(&ReaderEvent::ReaderAdded {
            reader: lease.reader.clone()
        }),
        "{first:?}"
    );
    assert!(w.card_present(&lease.reader));
    control.cmd("remove").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline && w.card_present(&lease.reader) {
        seen.extend(w.next_events(Duration::from_millis(300)));
    }
    assert!(
        seen.contains(&ReaderEvent::CardRemoved {
            reader: lease.reader.clone()
        }),
        "{seen:?}"
    );
}

/// What libccidtwin does with line faults, measured (docs/serial-readers.md). A slow card
/// announced with time requests is waited for; but libccidtwin only logs a checksum mismatch
/// ("Wrong LRC") and passes the frame on, so with T=0 a flipped data bit reaches the
/// application as a good answer, where reader-driver's serial backend sends NAK and gets the
/// frame again (`line_faults_are_retried_with_t0`). With T=1 the block's own checksum catches
/// it and libccid's T=1 layer asks for the block again.
#[test]
fn libccidtwin_under_line_faults() {
    use card_core::apdu::Command;
    let (lease, mut control) = with_card("zhangsan");
    let mut ctx = PcscContext::new().unwrap();
    let mut s = CardSession::new(ctx.connect(&lease.reader, ProtocolChoice::T0).unwrap());
    // EF.GDO (SFI 2): 5A 08 and the serial number; READ BINARY case 2, one exchange in T=0.
    let read = Command::new(0x00, 0xb0, 0x82, 0x00).with_ne(10);
    let good = s.send(&read).unwrap();
    assert_eq!(good.data().get(..2), Some(&[0x5a, 0x08][..]));
    // Time requests: waited for.
    control.cmd("fault delay 500").unwrap();
    assert_eq!(s.send(&read).unwrap(), good);
    // A flipped bit in the data of the response frame.
    control.cmd("fault flip-response 96").unwrap();
    let garbled = s.send(&read).unwrap();
    assert_ne!(
        garbled.data(),
        good.data(),
        "libccidtwin now rejects a bad LRC: update docs/serial-readers.md"
    );
    assert!(garbled.is_success());
    drop(s);
    // T=1: the T=1 block checksum saves it.
    let mut pc = ctx.connect(&lease.reader, ProtocolChoice::T0).unwrap();
    pc.reconnect_with(ProtocolChoice::T1, true).unwrap();
    let mut s = CardSession::new(pc);
    control.cmd("fault flip-response 120").unwrap();
    assert_eq!(s.send(&read).unwrap(), good);
    drop(s);
    control.cmd("remove").unwrap();
}

/// Ports from configuration: reader-driver reads the serial entries of the very reader.conf
/// pcscd runs with (the vpcd entries are skipped).
#[test]
fn serial_readers_from_pcscds_reader_conf() {
    let lease = pcscd::lease().unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::var_os("SSCARD_PCSC_DIR")
        .map_or_else(|| std::path::PathBuf::from("/tmp/sscard-pcsc"), Into::into);
    let text = std::fs::read_to_string(dir.join("reader.conf")).unwrap();
    let readers = reader_driver::serial::parse_reader_conf(&text).unwrap();
    assert!(readers.len() >= 2, "{readers:?}");
    for (r, letter) in readers.iter().zip(['A', 'B']) {
        assert_eq!(r.name, format!("SSCard Serial {letter}"));
        assert!(r.link.path.ends_with(&format!("host-{letter}")), "{r:?}");
    }
    assert!(readers.iter().any(|r| lease.reader.starts_with(&r.name)));
    assert!(
        readers
            .iter()
            .all(|r| r.link.baud == 115_200 && r.link.echo)
    );
}
