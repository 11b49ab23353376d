//! The real stack: pcscd with the vpcd driver, the software card connected to it, and
//! reader-driver on the other side. Needs `scripts/pcsc-env.sh start` (the README's test
//! command runs it). Tests lease vpcd slots so they can run in parallel; the ones that stop or
//! restart pcscd take it exclusively.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use card_core::channel::rerun_after_reset;
use card_core::secret::Pin;
use card_core::ssse::{self, ReadStrategy, SsseError};
use card_core::{CardSession, SendError, TransportError};
use firmware_tests::testenv::{PcscEnv, SlotLease};
use firmware_tests::{VirtualSlot, shared_fixture};
use reader_driver::{
    ActiveProtocol, DriverError, EventWatcher, JsonLinesTrace, PcscCard, PcscContext,
    ProtocolChoice, ReaderEvent,
};

fn env() -> PcscEnv {
    PcscEnv::load().unwrap_or_else(|e| panic!("{e}"))
}

/// A leased slot with `card` inserted, and a context that sees it.
fn slot_with(card: &str) -> (SlotLease, VirtualSlot, PcscContext) {
    let lease = env().lease().unwrap();
    // pcscd notices a removal by the previous user of the slot at its next poll.
    wait_present(&lease.reader, false);
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(shared_fixture(card).unwrap()).unwrap();
    let ctx = PcscContext::new().unwrap();
    wait_present(&lease.reader, true);
    (lease, slot, ctx)
}

/// Wait until pcscd reports the card in `reader` as present (or absent).
fn wait_present(reader: &str, want: bool) {
    let mut w = EventWatcher::new();
    let deadline = Instant::now() + Duration::from_secs(5);
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

fn connect(ctx: &mut PcscContext, reader: &str, p: ProtocolChoice) -> PcscCard {
    ctx.connect(reader, p)
        .unwrap_or_else(|e| panic!("connect {reader}: {e}"))
}

#[test]
fn identity_read_through_pcscd() {
    let (lease, _slot, mut ctx) = slot_with("zhangsan");
    assert!(ctx.readers().unwrap().contains(&lease.reader));
    let card = connect(&mut ctx, &lease.reader, ProtocolChoice::Any);
    assert_eq!(card.atr(), firmware_tests::profile::default_atr());
    let mut s = CardSession::new(card);
    let id = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    assert_eq!(s.exchanges(), 3);
    assert_eq!(id.holder.name.reveal(), "张三");
    assert_eq!(id.holder.ssn.reveal(), "110105198703153011");
    assert_eq!(id.card.card_number.reveal(), "A00000011");
    assert_eq!(id.card.expiry_date.to_string(), "2034-01-14");
}

#[test]
fn insert_read_remove_reinsert_with_events() {
    let lease = env().lease().unwrap();
    wait_present(&lease.reader, false);
    let mut watcher = EventWatcher::new();
    // The first call reports what is there: the reader, without a card.
    let first = watcher.next_events(Duration::from_millis(100));
    assert!(
        first.contains(&ReaderEvent::ReaderAdded {
            reader: lease.reader.clone()
        }),
        "{first:?}"
    );
    assert!(!watcher.card_present(&lease.reader));

    let mut slot = VirtualSlot::new(lease.port);
    let card = shared_fixture("lisi").unwrap();
    slot.insert(card.clone()).unwrap();
    let inserted = wait_for(
        &mut watcher,
        |e| matches!(e, ReaderEvent::CardInserted { reader, .. } if *reader == lease.reader),
    );
    let ReaderEvent::CardInserted { atr, .. } = inserted else {
        unreachable!()
    };
    assert_eq!(atr, firmware_tests::profile::default_atr());

    let mut ctx = PcscContext::new().unwrap();
    let mut s = CardSession::new(connect(&mut ctx, &lease.reader, ProtocolChoice::Any));
    assert_eq!(
        ssse::read_identity(&mut s, ReadStrategy::AllRecords)
            .unwrap()
            .holder
            .name
            .reveal(),
        "李思"
    );
    drop(s);

    slot.remove();
    wait_for(&mut watcher, |e| {
        *e == ReaderEvent::CardRemoved {
            reader: lease.reader.clone(),
        }
    });
    assert!(matches!(
        ctx.connect(&lease.reader, ProtocolChoice::Any),
        Err(DriverError::NoCard(r)) if r == lease.reader
    ));

    slot.insert(card).unwrap();
    wait_for(
        &mut watcher,
        |e| matches!(e, ReaderEvent::CardInserted { reader, .. } if *reader == lease.reader),
    );
    let mut s = CardSession::new(connect(&mut ctx, &lease.reader, ProtocolChoice::Any));
    assert_eq!(
        ssse::read_identity(&mut s, ReadStrategy::ByTag)
            .unwrap()
            .holder
            .name
            .reveal(),
        "李思"
    );
}

fn wait_for(w: &mut EventWatcher, pred: impl Fn(&ReaderEvent) -> bool) -> ReaderEvent {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        for e in w.next_events(Duration::from_millis(500)) {
            if pred(&e) {
                return e;
            }
            seen.push(e);
        }
    }
    panic!("event not seen; saw {seen:?}");
}

#[test]
fn pin_wrong_twice_then_right_then_blocked() {
    let (lease, slot, mut ctx) = slot_with("zhangsan");
    let mut s = CardSession::new(connect(&mut ctx, &lease.reader, ProtocolChoice::T1));
    ssse::select(&mut s).unwrap();
    let right = Pin::new("123456").unwrap();
    let wrong = Pin::new("999999").unwrap();
    assert_eq!(
        ssse::verify_pin(&mut s, &wrong),
        Err(SsseError::WrongPin { tries_left: 2 })
    );
    assert_eq!(
        ssse::verify_pin(&mut s, &wrong),
        Err(SsseError::WrongPin { tries_left: 1 })
    );
    assert_eq!(ssse::verify_pin(&mut s, &right), Ok(()));
    let medical = ssse::read_medical_basic(&mut s).unwrap();
    assert_eq!(medical.get(0x21), Some(&[0x11, 0x01, 0x05][..]));
    ssse::select(&mut s).unwrap();
    assert_eq!(
        ssse::verify_pin(&mut s, &wrong),
        Err(SsseError::WrongPin { tries_left: 2 })
    );
    assert_eq!(
        ssse::verify_pin(&mut s, &wrong),
        Err(SsseError::WrongPin { tries_left: 1 })
    );
    assert_eq!(ssse::verify_pin(&mut s, &wrong), Err(SsseError::PinBlocked));
    assert_eq!(ssse::verify_pin(&mut s, &right), Err(SsseError::PinBlocked));
    // The card itself agrees: its counter is 0.
    assert_eq!(
        firmware_tests::vpcd::lock(&slot.card().unwrap())
            .image()
            .pin
            .tries_left,
        0
    );
}

#[test]
fn blocked_card_reports_blocked() {
    let (lease, _slot, mut ctx) = slot_with("blocked");
    let mut s = CardSession::new(connect(&mut ctx, &lease.reader, ProtocolChoice::Any));
    ssse::select(&mut s).unwrap();
    assert_eq!(ssse::pin_tries_left(&mut s), Ok(Some(0)));
    assert_eq!(
        ssse::verify_pin(&mut s, &Pin::new("123456").unwrap()),
        Err(SsseError::PinBlocked)
    );
}

#[test]
fn t0_and_t1_are_both_offered_and_used() {
    let (lease, _slot, mut ctx) = slot_with("zhangsan");
    let mut t1 = connect(&mut ctx, &lease.reader, ProtocolChoice::T1);
    assert_eq!(t1.active_protocol(), ActiveProtocol::T1);
    let mut s = CardSession::new(&mut t1);
    ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    drop(s);
    // pcsc-lite keeps the negotiated protocol until the card is reset.
    assert!(matches!(
        ctx.connect(&lease.reader, ProtocolChoice::T0),
        Err(DriverError::ProtocolMismatch { .. })
    ));
    t1.reconnect_with(ProtocolChoice::T0, true).unwrap();
    assert_eq!(t1.active_protocol(), ActiveProtocol::T0);
    let mut s = CardSession::new(t1);
    ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
}

#[test]
fn t0_only_card_with_get_response_and_wrong_le() {
    let (lease, _slot, mut ctx) = slot_with("wangfang-t0");
    assert!(matches!(
        ctx.connect(&lease.reader, ProtocolChoice::T1),
        Err(DriverError::ProtocolMismatch { .. })
    ));
    let card = connect(&mut ctx, &lease.reader, ProtocolChoice::Any);
    assert_eq!(card.active_protocol(), ActiveProtocol::T0);
    let mut s = CardSession::new(card);
    let id = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    assert_eq!(id.holder.name.reveal(), "王芳");
    // 61xx and 6Cxx were handled on the way: many more exchanges than commands.
    assert!(s.exchanges() > 20, "{}", s.exchanges());
}

#[test]
fn card_pulled_mid_read_is_a_typed_error() {
    let (lease, slot, mut ctx) = slot_with("zhangsan");
    let mut s = CardSession::new(connect(&mut ctx, &lease.reader, ProtocolChoice::Any));
    // Pull the card while it processes the second command (the first READ RECORD).
    slot.pull_after(2);
    let err = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap_err();
    assert_eq!(
        err,
        SsseError::Send(SendError::Transport(TransportError::CardRemoved)),
        "{err}"
    );
    // And the next command says the same, without a panic or a hang.
    let again = ssse::select(&mut s).unwrap_err();
    assert!(
        matches!(
            again,
            SsseError::Send(SendError::Transport(
                TransportError::CardRemoved | TransportError::NoCard
            ))
        ),
        "{again}"
    );
}

#[test]
fn another_application_resetting_the_card_is_survived() {
    let (lease, _slot, mut ctx) = slot_with("zhangsan");
    let mut s = CardSession::new(connect(&mut ctx, &lease.reader, ProtocolChoice::Any));
    ssse::select(&mut s).unwrap();
    ssse::verify_pin(&mut s, &Pin::new("123456").unwrap()).unwrap();
    // A second application resets the card.
    let mut other_ctx = PcscContext::new().unwrap();
    let mut other = connect(&mut other_ctx, &lease.reader, ProtocolChoice::Any);
    other.reconnect(true).unwrap();
    drop(other);
    // Our next command learns of the reset; the flow runs again from SELECT.
    let id =
        rerun_after_reset(&mut s, |s| ssse::read_identity(s, ReadStrategy::AllRecords)).unwrap();
    assert_eq!(id.holder.name.reveal(), "张三");
    assert_eq!(s.channel().resets(), 1);
    // The PIN is no longer verified: the card forgot it at the reset.
    ssse::select(&mut s).unwrap();
    assert_eq!(ssse::pin_tries_left(&mut s), Ok(Some(3)));
}

#[test]
fn transactions_group_commands() {
    let (lease, _slot, mut ctx) = slot_with("zhangsan");
    let mut card = connect(&mut ctx, &lease.reader, ProtocolChoice::Any);
    {
        let tx = card.transaction().unwrap();
        let mut s = CardSession::new(tx);
        ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    }
    // After the transaction the card is usable again, without a reset.
    let mut s = CardSession::new(card);
    ssse::select(&mut s).unwrap();
    assert_eq!(s.channel().resets(), 0);
}

#[test]
fn trace_is_json_lines_without_the_pin() {
    let (lease, _slot, mut ctx) = slot_with("zhangsan");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    let trace = JsonLinesTrace::open(&path, &lease.reader).unwrap();
    let mut s = CardSession::new(connect(&mut ctx, &lease.reader, ProtocolChoice::Any))
        .with_trace(Box::new(trace));
    ssse::select(&mut s).unwrap();
    let _ = ssse::verify_pin(&mut s, &Pin::new("987654").unwrap());
    ssse::verify_pin(&mut s, &Pin::new("123456").unwrap()).unwrap();
    drop(s);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("\"apdu\":\"00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"apdu\":\"0020000003\"") && lines[1].contains("\"redacted\":3"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("\"sw\":\"63C2\""), "{}", lines[1]);
    assert!(
        !text.contains("987654") && !text.contains("123456"),
        "{text}"
    );
    assert!(
        lines[2].contains(&format!("\"reader\":\"{}\"", lease.reader)),
        "{}",
        lines[2]
    );
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("{\"ts_ms\":") && l.ends_with('}'))
    );
}

#[test]
fn unknown_reader_is_a_clear_error() {
    let mut ctx = PcscContext::new().unwrap();
    let err = ctx
        .connect("No Such Reader 00 00", ProtocolChoice::Any)
        .unwrap_err();
    assert_eq!(
        err,
        DriverError::UnknownReader("No Such Reader 00 00".into())
    );
}

#[test]
fn pcscd_restart_and_absence() {
    let env = env();
    let lease = env.exclusive().unwrap();
    let (port, reader) = env.slots[0].clone();
    let mut slot = VirtualSlot::new(port);
    slot.insert(shared_fixture("zhangsan").unwrap()).unwrap();
    wait_present(&reader, true);
    let mut ctx = PcscContext::new().unwrap();
    let mut watcher = EventWatcher::new();
    watcher.next_events(Duration::from_millis(100));
    assert!(watcher.card_present(&reader));

    // Restart pcscd: the old context is dead, ours rebuilds itself.
    lease.restart().unwrap();
    let readers = ctx.readers().unwrap();
    assert!(readers.contains(&reader), "{readers:?}");
    wait_for(&mut watcher, |e| {
        *e == ReaderEvent::ServiceLost || *e == ReaderEvent::ServiceRestored
    });
    // The card reconnects to the new pcscd by itself and can be read.
    wait_present(&reader, true);
    let mut s = CardSession::new(connect(&mut ctx, &reader, ProtocolChoice::Any));
    assert_eq!(
        ssse::read_identity(&mut s, ReadStrategy::AllRecords)
            .unwrap()
            .holder
            .name
            .reveal(),
        "张三"
    );
    drop(s);

    // pcscd stopped: a clear error that says how to start it.
    lease.stop().unwrap();
    let err = PcscContext::new().unwrap_err();
    assert_eq!(err, DriverError::ServiceNotRunning);
    let msg = err.to_string();
    assert!(
        msg.contains("pcscd") && msg.contains("pcsc-env.sh start"),
        "{msg}"
    );
    let err = ctx.readers().unwrap_err();
    assert_eq!(err, DriverError::ServiceNotRunning);
    let mut w = EventWatcher::new();
    assert!(
        w.next_events(Duration::from_millis(50))
            .contains(&ReaderEvent::ServiceLost)
    );
    // The lease's drop starts pcscd again for the other tests.
}
