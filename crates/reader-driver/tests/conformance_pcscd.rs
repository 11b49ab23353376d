//! The conformance suite (`firmware_tests::conformance`) through the real stack: pcscd with the
//! vpcd driver, the software card in a leased slot, reader-driver's `PcscCard` as the
//! `CardChannel`. The suite lives in firmware-tests, which cannot depend on reader-driver (this
//! crate uses firmware-tests as its card), so its pcscd run is here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use card_core::CardSession;
use card_core::ssse::Date;
use firmware_tests::SharedCard;
use firmware_tests::conformance::{self, Options, Report, Verdict};
use firmware_tests::testcards::{self, Defect};
use firmware_tests::testenv::PcscEnv;
use firmware_tests::{VirtualSlot, shared_fixture};
use reader_driver::{ActiveProtocol, EventWatcher, PcscContext, ProtocolChoice};

fn wait_present(reader: &str, want: bool) {
    let mut w = EventWatcher::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        w.next_events(Duration::from_millis(200));
        if w.card_present(reader) == want {
            return;
        }
    }
    panic!("card in {reader} never became present={want}");
}

/// Insert `card` into a leased vpcd slot and run the suite through pcscd with `protocol`.
fn run(card: SharedCard, protocol: ProtocolChoice, opts: &Options) -> (Report, ActiveProtocol) {
    let lease = PcscEnv::load()
        .unwrap_or_else(|e| panic!("{e}"))
        .lease()
        .unwrap();
    wait_present(&lease.reader, false);
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(card).unwrap();
    wait_present(&lease.reader, true);
    let mut ctx = PcscContext::new().unwrap();
    let c = ctx.connect(&lease.reader, protocol).unwrap();
    let active = c.active_protocol();
    let mut s = CardSession::new(c);
    let report = conformance::run(&mut s, opts);
    drop(s);
    slot.remove();
    (report, active)
}

fn options(trust: card_core::pboc::CaStore) -> Options {
    Options::new(Date::new(2026, 3, 15).unwrap()).with_trust(trust)
}

#[test]
fn an_issued_card_passes_every_check_through_pcscd_with_t0_and_t1() {
    for (protocol, want) in [
        (ProtocolChoice::T0, ActiveProtocol::T0),
        (ProtocolChoice::T1, ActiveProtocol::T1),
    ] {
        let card = testcards::issue("zhangsan").unwrap();
        let (report, active) = run(card.shared(), protocol, &options(card.trust.clone()));
        assert_eq!(active, want);
        assert_eq!(
            (
                report.summary.pass,
                report.summary.fail,
                report.checks.len()
            ),
            (24, 0, 24),
            "{want:?}:\n{report}"
        );
        assert!(
            report
                .get("pki.challenge")
                .unwrap()
                .reason
                .contains("verifies"),
            "{report}"
        );
    }
}

#[test]
fn a_t0_card_answers_61xx_and_the_session_fetches_it_through_pcscd() {
    let (report, active) = run(
        shared_fixture("wangfang-t0").unwrap(),
        ProtocolChoice::Any,
        &options(card_core::pboc::CaStore::new()),
    );
    assert_eq!(active, ActiveProtocol::T0);
    let c = report.get("iso.get_response").unwrap();
    assert_eq!(
        (c.verdict, c.reason.as_str()),
        (
            Verdict::Pass,
            "SELECT (case 4) drew 61xx; GET RESPONSE fetched the 27-byte FCI"
        )
    );
    assert!(report.passed(), "{report}");
}

#[test]
fn a_card_with_an_inconsistent_log_fails_the_log_check_through_pcscd() {
    let card = testcards::broken("zhangsan", Defect::InconsistentLog).unwrap();
    let (report, _) = run(
        card.shared(),
        ProtocolChoice::Any,
        &options(card.trust.clone()),
    );
    let failed: Vec<&str> = report.failures().map(|c| c.id).collect();
    assert_eq!(failed, ["pboc.log"], "{report}");
    assert!(
        report
            .get("pboc.log")
            .unwrap()
            .reason
            .contains("records 2 and 3 have the same ATC 0002"),
        "{report}"
    );
}
