//! Recorded command/response transcripts of the PBOC flows (tests/transcripts/pboc_*.txt),
//! replayed against the kernel with `ReplayChannel`: contact EC purchase (SM2 DDA), contact
//! purchase with CDA, wrong PIN then right, qPBOC purchase with fDDA, balance inquiry,
//! transaction and load logs, and an electronic cash load with its issuer script.
//!
//! The transcripts were recorded from the reference card of `pboc_refcard` (SM profile: fixed
//! keys, deterministic SM2 signatures, fixed date, time and unpredictable number), so
//! `transcripts_are_current` can record them again and compare. To write them anew:
//! `cargo test -p card-core --test pboc_transcripts -- --ignored regenerate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_refcard;

use std::path::PathBuf;

use card_core::CardSession;
use card_core::channel::CardChannel;
use card_core::pboc::ec;
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{Amount, Hooks, OdaMethod, Outcome, PbocError, TvrBit, run_contact};
use card_core::transcript::{RecordingChannel, ReplayChannel};
use pboc_refcard::*;

const HEADER: &str = "# PBOC kernel transcript, recorded from the reference card of \
                      crates/card-core/tests/pboc_refcard (SM profile).\n\
                      # Regenerate: cargo test -p card-core --test pboc_transcripts -- \
                      --ignored regenerate\n";

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcripts")
        .join(format!("{name}.txt"))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap()
}

/// Run `flow` over a recording of `card` and return the transcript and the card.
fn record<T>(
    card: RefCard,
    what: &str,
    flow: impl FnOnce(&mut CardSession<RecordingChannel<RefCard>>) -> T,
) -> (String, RefCard) {
    let mut s = CardSession::new(RecordingChannel::new(card));
    flow(&mut s);
    let (card, text) = s.into_channel().into_parts();
    let ca = sm_ca();
    let header = format!(
        "{HEADER}# {what}\n# CA: RID A000000333, index 80, SM2 public key {}\n\
         # date 2026-11-28 12:00:00, unpredictable number 12345678\n",
        hex::encode_upper(ca.public_key().to_xy())
    );
    (format!("{header}{text}"), card)
}

fn contact_run<C: CardChannel>(
    s: &mut CardSession<C>,
    amount: u64,
    online: bool,
    pins: &[&'static str],
    issuer: &mut TestIssuer,
) -> card_core::pboc::TransactionRecord {
    let mut pins = ScriptedPinPad::new(pins);
    let mut journal = MemoryJournal::default();
    run_contact(
        s,
        &terminal(online),
        &ca_store(Algo::Sm),
        params(amount),
        &mut Hooks {
            pin_pad: &mut pins,
            hot_list: &NoHotList,
            online: issuer,
            journal: &mut journal,
        },
    )
}

fn qpboc_run<C: CardChannel>(
    s: &mut CardSession<C>,
    amount: u64,
) -> card_core::pboc::TransactionRecord {
    let mut issuer = TestIssuer::new(Algo::Sm);
    let mut journal = MemoryJournal::default();
    run_qpboc(
        s,
        &terminal(false),
        &ca_store(Algo::Sm),
        params(amount),
        &mut QpbocHooks {
            hot_list: &NoHotList,
            online: &mut issuer,
            journal: &mut journal,
        },
    )
}

fn load_run<C: CardChannel>(s: &mut CardSession<C>, to: u64) -> card_core::pboc::TransactionRecord {
    let mut issuer = TestIssuer::new(Algo::Sm);
    issuer.load_to = Some(to);
    let mut pins = ScriptedPinPad::new(&[]);
    let mut journal = MemoryJournal::default();
    ec::load(
        s,
        &terminal(true),
        &ca_store(Algo::Sm),
        params(30_000),
        &mut Hooks {
            pin_pad: &mut pins,
            hot_list: &NoHotList,
            online: &mut issuer,
            journal: &mut journal,
        },
    )
}

/// A card that has had a load and two purchases.
fn used_card() -> RefCard {
    let mut s = CardSession::new(RefCard::new(Profile::sm()));
    load_run(&mut s, 80_000);
    for amount in [1500, 2500] {
        contact_run(&mut s, amount, false, &[], &mut TestIssuer::new(Algo::Sm));
    }
    s.into_channel()
}

fn logs_run<C: CardChannel>(
    s: &mut CardSession<C>,
) -> (
    Vec<ec::LogRecord>,
    Vec<ec::LoadLogRecord>,
    ec::LoadLogBundle,
) {
    let app = ec::select_application(s, &terminal(false)).unwrap();
    let log = ec::read_transaction_log(s, app.fci.log_entry.unwrap()).unwrap();
    let entry = app.fci.load_log_entry.unwrap();
    let loads = ec::read_load_log(s, entry).unwrap();
    let verifier = TestMacVerifier(Algo::Sm, "6228480402564890018", 0x01);
    let bundle = ec::read_load_log_all(s, entry, Some(&verifier)).unwrap();
    (log, loads, bundle)
}

/// Every transcript, recorded now.
fn all() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let (t, _) = record(
        RefCard::new(Profile::sm()),
        "contact EC purchase of 15.00, SM2 DDA",
        |s| contact_run(s, 1500, false, &[], &mut TestIssuer::new(Algo::Sm)),
    );
    out.push(("pboc_contact_ec_purchase", t));
    let cda = Profile {
        aip: [0x7d, 0x00],
        ..Profile::sm()
    };
    let (t, _) = record(
        RefCard::new(cda),
        "contact EC purchase of 15.00, SM2 CDA",
        |s| contact_run(s, 1500, false, &[], &mut TestIssuer::new(Algo::Sm)),
    );
    out.push(("pboc_contact_cda", t));
    let pin = Profile {
        cvm_list: h("00000000 00000000 0103"),
        ..Profile::sm()
    };
    let (t, _) = record(
        RefCard::new(pin),
        "contact purchase with offline plaintext PIN: test PIN 111111 (wrong, 63C2), then 123456",
        |s| {
            contact_run(
                s,
                1500,
                false,
                &["111111", "123456"],
                &mut TestIssuer::new(Algo::Sm),
            )
        },
    );
    out.push(("pboc_contact_wrong_pin", t));
    let (t, _) = record(
        RefCard::new(Profile::sm()),
        "qPBOC purchase of 15.00, fDDA version 01",
        |s| qpboc_run(s, 1500),
    );
    out.push(("pboc_qpboc_purchase", t));
    let (t, _) = record(used_card(), "balance inquiry", |s| {
        ec::balance_inquiry(s, &terminal(false)).unwrap()
    });
    out.push(("pboc_balance_inquiry", t));
    let (t, _) = record(
        used_card(),
        "transaction log, load log, load log with MAC (P1=00)",
        logs_run,
    );
    out.push(("pboc_logs", t));
    let (t, _) = record(
        RefCard::new(Profile::sm()),
        "electronic cash load to 1,000.00: ARQC, online, script 04DA9F79, balance read back",
        |s| load_run(s, 100_000),
    );
    out.push(("pboc_ec_load", t));
    out
}

#[test]
#[ignore = "writes tests/transcripts/pboc_*.txt"]
fn regenerate() {
    std::fs::create_dir_all(path("x").parent().unwrap()).unwrap();
    for (name, text) in all() {
        std::fs::write(path(name), text).unwrap();
    }
}

#[test]
fn transcripts_are_current() {
    for (name, text) in all() {
        assert_eq!(
            read(name),
            text,
            "{name} differs from a new recording; run regenerate"
        );
    }
}

fn replay(name: &str) -> CardSession<ReplayChannel> {
    CardSession::new(ReplayChannel::parse(&read(name)).unwrap())
}

#[test]
fn replay_contact_ec_purchase() {
    let mut s = replay("pboc_contact_ec_purchase");
    let rec = contact_run(&mut s, 1500, false, &[], &mut TestIssuer::new(Algo::Sm));
    s.channel().assert_finished().unwrap();
    assert_eq!(rec.outcome, Outcome::ApprovedOffline);
    assert_eq!(rec.oda, Some(OdaMethod::Dda));
    assert_eq!(rec.tvr.to_bytes(), [0; 5]);
    assert_eq!(rec.ec_balance_before, Amount::new(50_000));
    assert_eq!(rec.ec_balance_after, Amount::new(48_500));
    assert_eq!(rec.atc, Some(0x11));
}

#[test]
fn replay_contact_cda() {
    let mut s = replay("pboc_contact_cda");
    let rec = contact_run(&mut s, 1500, false, &[], &mut TestIssuer::new(Algo::Sm));
    s.channel().assert_finished().unwrap();
    assert_eq!(rec.outcome, Outcome::ApprovedOffline);
    assert_eq!(rec.oda, Some(OdaMethod::Cda));
    assert!(!rec.tvr.contains(TvrBit::CdaFailed));
}

#[test]
fn replay_wrong_pin_then_right() {
    let text = read("pboc_contact_wrong_pin");
    assert!(
        text.contains("< 63C2"),
        "the wrong PIN is in the transcript"
    );
    let mut s = CardSession::new(ReplayChannel::parse(&text).unwrap());
    let rec = contact_run(
        &mut s,
        1500,
        false,
        &["111111", "123456"],
        &mut TestIssuer::new(Algo::Sm),
    );
    s.channel().assert_finished().unwrap();
    assert_eq!(rec.outcome, Outcome::ApprovedOffline);
    assert_eq!(rec.cvm_results.0, [0x01, 0x03, 0x02]);
}

#[test]
fn replay_qpboc_purchase() {
    let mut s = replay("pboc_qpboc_purchase");
    let rec = qpboc_run(&mut s, 1500);
    s.channel().assert_finished().unwrap();
    assert_eq!(rec.outcome, Outcome::ApprovedOffline);
    assert_eq!(rec.oda, Some(OdaMethod::Fdda));
    assert_eq!(rec.ec_balance_after, Amount::new(48_500));
}

#[test]
fn replay_balance_inquiry() {
    let mut s = replay("pboc_balance_inquiry");
    let (_, b) = ec::balance_inquiry(&mut s, &terminal(false)).unwrap();
    s.channel().assert_finished().unwrap();
    assert_eq!(b.balance, Amount::new(76_000).unwrap());
    assert_eq!(b.balance_limit, Amount::new(100_000));
    assert_eq!(b.single_transaction_limit, Amount::new(100_000));
    assert_eq!(b.reset_threshold, Amount::new(1_000));
}

#[test]
fn replay_logs() {
    let mut s = replay("pboc_logs");
    let (log, loads, bundle) = logs_run(&mut s);
    s.channel().assert_finished().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].amount(), Amount::new(2500));
    assert_eq!(log[2].amount(), Amount::new(200), "the personalised record");
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0].after, Amount::new(80_000).unwrap());
    assert_eq!(bundle.mac_valid, Some(true));
}

#[test]
fn replay_ec_load() {
    let mut s = replay("pboc_ec_load");
    let rec = load_run(&mut s, 100_000);
    s.channel().assert_finished().unwrap();
    assert_eq!(rec.outcome, Outcome::ApprovedOnline);
    assert_eq!(rec.script_results, [[0x20, 0, 0, 0, 1]]);
    assert_eq!(rec.ec_balance_after, Amount::new(100_000));
}

/// Replace the answer on the line after the first command starting with `command`.
fn with_answer(text: &str, command: &str, answer: &str) -> String {
    let mut out = Vec::new();
    let mut replace_next = false;
    for line in text.lines() {
        if replace_next && line.starts_with('<') {
            out.push(format!("< {answer}"));
            replace_next = false;
            continue;
        }
        if line.starts_with(&format!("> {command}")) {
            replace_next = true;
        }
        out.push(line.to_string());
    }
    out.join("\n")
}

#[test]
fn transcript_gpo_6985_ends_qpboc() {
    let text = with_answer(&read("pboc_qpboc_purchase"), "80A8", "6985");
    let mut s = CardSession::new(ReplayChannel::parse(&text).unwrap());
    let rec = qpboc_run(&mut s, 1500);
    assert_eq!(
        rec.outcome,
        Outcome::Aborted(PbocError::GpoConditionsNotSatisfied)
    );
}

#[test]
fn transcript_malformed_gpo_answer() {
    let text = with_answer(
        &read("pboc_contact_ec_purchase"),
        "80A8",
        "8012 7C00 0801 9000",
    );
    let mut s = CardSession::new(ReplayChannel::parse(&text).unwrap());
    let rec = contact_run(&mut s, 1500, false, &[], &mut TestIssuer::new(Algo::Sm));
    assert!(
        matches!(rec.outcome, Outcome::Aborted(PbocError::Tlv { .. })),
        "{:?}",
        rec.outcome
    );
}

#[test]
fn transcript_read_record_error() {
    let text = with_answer(&read("pboc_contact_ec_purchase"), "00B2011400", "6A83");
    let mut s = CardSession::new(ReplayChannel::parse(&text).unwrap());
    let rec = contact_run(&mut s, 1500, false, &[], &mut TestIssuer::new(Algo::Sm));
    assert!(matches!(
        rec.outcome,
        Outcome::Aborted(PbocError::ReadRecord {
            sfi: 2,
            record: 1,
            ..
        })
    ));
}

#[test]
fn transcript_card_answers_tc_to_an_aac_request_is_refused() {
    // Make the kernel ask for an AAC by hot-listing the card, then let the card answer TC.
    let text: String = read("pboc_contact_ec_purchase")
        .lines()
        .map(|line| match line.strip_prefix("> 80AE4000") {
            Some(rest) => {
                // P1 = AAC, and the TVR in the CDOL1 data (offset 14) says "exception file".
                let mut bytes = h(rest);
                bytes[1 + 14] |= 0x10;
                format!("> 80AE0000{}\n", hex::encode_upper(bytes))
            }
            None => format!("{line}\n"),
        })
        .collect();
    let mut s = CardSession::new(ReplayChannel::parse(&text).unwrap());
    let hot = card_core::pboc::risk::HotListEntries(vec![("6228480402564890018".into(), None)]);
    let mut pins = ScriptedPinPad::new(&[]);
    let mut issuer = TestIssuer::new(Algo::Sm);
    let mut journal = MemoryJournal::default();
    let rec = run_contact(
        &mut s,
        &terminal(false),
        &ca_store(Algo::Sm),
        params(1500),
        &mut Hooks {
            pin_pad: &mut pins,
            hot_list: &hot,
            online: &mut issuer,
            journal: &mut journal,
        },
    );
    assert!(rec.tvr.contains(TvrBit::CardOnExceptionFile));
    assert!(matches!(
        rec.outcome,
        Outcome::Aborted(PbocError::UnexpectedCryptogram { .. })
    ));
    assert!(journal.0.is_empty(), "no intent for an AAC request");
}
