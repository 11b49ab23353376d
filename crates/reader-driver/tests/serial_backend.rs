//! reader-driver's serial backend against the simulated GemPC Twin reader (the
//! `serial-reader` binary of firmware-tests, a real process on a socat pty pair). No pcscd is
//! involved: each test has its own line, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use card_core::CardSession;
use card_core::ssse::{self, ReadStrategy};
use card_core::{SendError, TransportError};
use firmware_tests::serial_reader::SerialLine;
use firmware_tests::serial_reader::checks::{self, Expected};
use firmware_tests::serial_reader::harness::reader_binary;
use reader_driver::serial::SerialError;
use reader_driver::serial::ccid::IccStatus;
use reader_driver::{
    ActiveProtocol, ProtocolChoice, ReaderEvent, SerialReader, SerialReaderConfig, SerialWatcher,
};

fn bin() -> &'static std::path::Path {
    static BIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    BIN.get_or_init(|| reader_binary().unwrap_or_else(|e| panic!("{e}")))
}

fn line(card: Option<&str>) -> SerialLine {
    SerialLine::start(bin(), 0, card).unwrap_or_else(|e| panic!("{e}"))
}

fn config(line: &SerialLine) -> SerialReaderConfig {
    SerialReaderConfig::new("Simulated GemPC Twin", line.host_path().to_string_lossy())
}

fn open(line: &SerialLine) -> SerialReader {
    SerialReader::open(config(line)).unwrap_or_else(|e| panic!("{e}"))
}

fn suite(card: &str, protocol: ProtocolChoice, want: ActiveProtocol) {
    let line = line(Some(card));
    let reader = open(&line);
    assert!(
        reader.firmware().starts_with("GemTwin"),
        "{}",
        reader.firmware()
    );
    let c = reader.connect(protocol).unwrap();
    assert_eq!(c.active_protocol(), want);
    let mut s = CardSession::new(c);
    let report = checks::run_all(&mut s, &Expected::fixture(card).unwrap())
        .unwrap_or_else(|e| panic!("{card} {protocol:?}: {e}"));
    assert_eq!(
        report.passed,
        ["status words", "conformance", "identity", "pin"]
    );
    let (stats, _) = reader.stats();
    assert_eq!(
        stats.retransmissions + stats.naks_sent + stats.garbled,
        0,
        "{stats:?}"
    );
}

#[test]
fn checks_pass_with_t0() {
    suite("zhangsan", ProtocolChoice::T0, ActiveProtocol::T0);
}

#[test]
fn checks_pass_with_t1() {
    suite("zhangsan", ProtocolChoice::T1, ActiveProtocol::T1);
}

#[test]
fn checks_pass_on_the_t0_only_card() {
    suite("wangfang-t0", ProtocolChoice::Any, ActiveProtocol::T0);
}

/// The line faults that must end in a retry that succeeds.
const RECOVERABLE: &[&str] = &[
    "drop-command 3",
    "flip-command 100",
    "drop-response 2",
    "flip-response 100",
    "flip-response 24",
    "flip-echo 20",
    "lose-response",
    "stale",
    "garbage",
    "delay 400",
    "time-extension 300",
];

fn fast_config(line: &SerialLine) -> SerialReaderConfig {
    let mut c = config(line);
    c.link.response_timeout = Duration::from_millis(800);
    c
}

fn tries(line: &mut SerialLine) -> u8 {
    line.cmd("tries").unwrap().parse().unwrap()
}

/// Each fault once on an identity read and once on a wrong VERIFY: the read gives the right
/// identity, the VERIFY counts exactly one wrong try (never two: a retransmitted command is
/// not run again), and the link shows it had to work for it.
fn faults_recovered(protocol: ProtocolChoice, extra: &[&str]) {
    let mut line = line(Some("zhangsan"));
    let reader = SerialReader::open(fast_config(&line)).unwrap();
    let mut s = CardSession::new(reader.connect(protocol).unwrap());
    let want = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    let right = card_core::secret::Pin::new("123456").unwrap();
    let wrong = card_core::secret::Pin::new("999999").unwrap();
    for fault in RECOVERABLE.iter().chain(extra) {
        let before = reader.stats().0;
        line.cmd(&format!("fault {fault}")).unwrap();
        let id = ssse::read_identity(&mut s, ReadStrategy::AllRecords)
            .unwrap_or_else(|e| panic!("{fault}: identity read failed: {e}"));
        assert_eq!(id, want, "{fault}");
        ssse::select(&mut s).unwrap();
        assert_eq!(tries(&mut line), 3);
        line.cmd(&format!("fault {fault}")).unwrap();
        assert_eq!(
            ssse::verify_pin(&mut s, &wrong),
            Err(ssse::SsseError::WrongPin { tries_left: 2 }),
            "{fault}"
        );
        assert_eq!(tries(&mut line), 2, "{fault}: the VERIFY ran once");
        ssse::verify_pin(&mut s, &right).unwrap();
        let after = reader.stats().0;
        let work = (after.retransmissions + after.naks_sent + after.stale + after.time_extensions)
            - (before.retransmissions + before.naks_sent + before.stale + before.time_extensions);
        assert!(
            work > 0 || *fault == "wtx 2",
            "{fault}: no retry seen: {after:?}"
        );
    }
    let stats = line.cmd("stats").unwrap();
    assert!(stats.contains("faults_pending=0"), "{stats}");
}

#[test]
fn line_faults_are_retried_with_t0() {
    faults_recovered(ProtocolChoice::T0, &[]);
}

#[test]
fn line_faults_are_retried_with_t1() {
    faults_recovered(ProtocolChoice::T1, &["wtx 2"]);
}

/// Faults that do not go away end in a clear error, and the command was not run.
#[test]
fn persistent_faults_are_clear_errors() {
    let mut line = line(Some("zhangsan"));
    let reader = SerialReader::open(fast_config(&line)).unwrap();
    let mut s = CardSession::new(reader.connect(ProtocolChoice::T0).unwrap());
    ssse::select(&mut s).unwrap();
    // Every copy of the command garbled on the way in: the reader NAKs each one.
    line.cmd("fault flip-command 100 x10").unwrap();
    let wrong = card_core::secret::Pin::new("999999").unwrap();
    let err = ssse::verify_pin(&mut s, &wrong).unwrap_err();
    assert!(
        matches!(
            &err,
            ssse::SsseError::Send(SendError::Transport(TransportError::Other(m))) if m.contains("refused")
        ),
        "{err}"
    );
    assert_eq!(tries(&mut line), 3, "the garbled VERIFY never ran");
    line.cmd("clear-faults").unwrap();
    // The next command works again.
    ssse::select(&mut s).unwrap();
    // Every copy of the answer garbled on the way back (the reader ran the command once and
    // repeats its answer at each NAK): after the allowed NAKs, a clear "garbled" error, never
    // the garbled answer passed up.
    line.cmd("fault noisy-return 24").unwrap();
    let err = ssse::select(&mut s).unwrap_err();
    assert!(
        matches!(
            &err,
            ssse::SsseError::Send(SendError::Transport(TransportError::Other(m)))
                if m.contains("stays garbled")
        ),
        "{err}"
    );
    line.cmd("clear-faults").unwrap();
    ssse::select(&mut s).unwrap();
    // A reader that stops answering: the reader is reported unavailable.
    line.cmd("mute 6000").unwrap();
    let t = Instant::now();
    let err = ssse::select(&mut s).unwrap_err();
    assert!(
        matches!(
            err,
            ssse::SsseError::Send(SendError::Transport(
                TransportError::ReaderUnavailable { .. }
            ))
        ),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // Still muted: opening fails with a clear error, then it answers again.
    let e = reader.connect(ProtocolChoice::T0).unwrap_err();
    assert!(matches!(e, SerialError::NoReader { .. }), "{e}");
    std::thread::sleep(Duration::from_millis(6500).saturating_sub(t.elapsed()));
    let mut s = CardSession::new(reader.connect(ProtocolChoice::T0).unwrap());
    ssse::read_identity(&mut s, ReadStrategy::ByTag).unwrap();
}

#[test]
fn power_off_ends_the_session_and_the_next_connect_powers_up_again() {
    let line = line(Some("zhangsan"));
    let reader = SerialReader::open(fast_config(&line)).unwrap();
    let mut s = CardSession::new(reader.connect(ProtocolChoice::T1).unwrap());
    ssse::select(&mut s).unwrap();
    assert_eq!(reader.slot_status().unwrap(), IccStatus::PresentActive);
    reader.power_off().unwrap();
    assert_eq!(reader.slot_status().unwrap(), IccStatus::PresentInactive);
    let err = ssse::select(&mut s).unwrap_err();
    assert!(
        matches!(
            err,
            ssse::SsseError::Send(SendError::Transport(TransportError::CardRemoved))
        ),
        "{err}"
    );
    // A new connection powers the card up again; its volatile state went with the power.
    let mut s = CardSession::new(reader.connect(ProtocolChoice::T1).unwrap());
    assert_eq!(reader.slot_status().unwrap(), IccStatus::PresentActive);
    ssse::read_identity(&mut s, ReadStrategy::ByTag).unwrap();
}

fn wait_event(w: &mut SerialWatcher, pred: impl Fn(&ReaderEvent) -> bool) -> Vec<ReaderEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let events = w.next_events(Duration::from_millis(300));
        let hit = events.iter().any(&pred);
        seen.extend(events);
        if hit {
            return seen;
        }
    }
    panic!("event not seen; saw {seen:?}");
}

#[test]
fn card_and_reader_events() {
    let mut line = line(None);
    let reader = SerialReader::new(config(&line));
    let name = reader.name();
    let mut w = SerialWatcher::new(vec![reader.clone()]);
    let first = w.next_events(Duration::from_millis(500));
    assert_eq!(
        first,
        [ReaderEvent::ReaderAdded {
            reader: name.clone()
        }]
    );
    assert_eq!(w.readers(), std::slice::from_ref(&name));
    line.cmd("insert lisi").unwrap();
    let seen = wait_event(&mut w, |e| matches!(e, ReaderEvent::CardInserted { .. }));
    let Some(ReaderEvent::CardInserted { atr, .. }) = seen.last() else {
        panic!("{seen:?}")
    };
    assert_eq!(*atr, firmware_tests::profile::default_atr());
    assert!(w.card_present(&name));
    let card = reader.connect(ProtocolChoice::Any).unwrap();
    let mut s = CardSession::new(card);
    assert_eq!(
        ssse::read_identity(&mut s, ReadStrategy::AllRecords)
            .unwrap()
            .holder
            .name
            .reveal(),
        "李思"
    );
    line.cmd("remove").unwrap();
    wait_event(&mut w, |e| {
        *e == ReaderEvent::CardRemoved {
            reader: name.clone(),
        }
    });
    assert_eq!(
        ssse::select(&mut s).unwrap_err(),
        ssse::SsseError::Send(SendError::Transport(TransportError::CardRemoved))
    );
    // Swapped while nobody looked: removal and insertion are both reported.
    line.cmd("insert zhangsan").unwrap();
    wait_event(&mut w, |e| matches!(e, ReaderEvent::CardInserted { .. }));
    line.cmd("remove").unwrap();
    line.cmd("insert lisi").unwrap();
    let seen = wait_event(&mut w, |e| matches!(e, ReaderEvent::CardInserted { .. }));
    assert!(
        seen.contains(&ReaderEvent::CardRemoved {
            reader: name.clone()
        }),
        "{seen:?}"
    );
}

#[test]
fn unplugged_reader_is_reported_and_reopened() {
    let mut line = line(Some("zhangsan"));
    let reader = SerialReader::new(config(&line));
    let name = reader.name();
    let mut w = SerialWatcher::new(vec![reader.clone()]);
    wait_event(&mut w, |e| matches!(e, ReaderEvent::CardInserted { .. }));
    let mut s = CardSession::new(reader.connect(ProtocolChoice::T1).unwrap());
    ssse::select(&mut s).unwrap();
    // Pulled: the port reports end of file.
    line.unplug();
    let seen = wait_event(&mut w, |e| {
        *e == ReaderEvent::ReaderRemoved {
            reader: name.clone(),
        }
    });
    assert!(
        seen.contains(&ReaderEvent::CardRemoved {
            reader: name.clone()
        }),
        "{seen:?}"
    );
    assert!(w.readers().is_empty());
    assert!(matches!(
        ssse::select(&mut s).unwrap_err(),
        ssse::SsseError::Send(SendError::Transport(
            TransportError::ReaderUnavailable { .. }
        ))
    ));
    // Back on the same path: reopened, greeted, card found.
    line.replug().unwrap();
    let seen = wait_event(&mut w, |e| matches!(e, ReaderEvent::CardInserted { .. }));
    assert!(
        seen.contains(&ReaderEvent::ReaderAdded {
            reader: name.clone()
        }),
        "{seen:?}"
    );
    let mut s = CardSession::new(reader.connect(ProtocolChoice::T1).unwrap());
    ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    assert!(reader.stats().1 >= 2, "opened twice");
    // Silent instead of gone (timeouts): removed, then added again when it answers.
    line.cmd("mute 2500").unwrap();
    wait_event(&mut w, |e| {
        *e == ReaderEvent::ReaderRemoved {
            reader: name.clone(),
        }
    });
    wait_event(&mut w, |e| {
        *e == ReaderEvent::ReaderAdded {
            reader: name.clone(),
        }
    });
}

#[test]
fn processes_end_with_the_line() {
    let line = line(Some("zhangsan"));
    let pids = line.pids();
    assert_eq!(pids.len(), 2);
    drop(line);
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(
            status.is_empty() || status.contains("State:\tZ"),
            "process {pid} still runs"
        );
    }
}
