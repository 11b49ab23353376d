//! The agent binary's own duties: dead-lettering stale entries instead of sending them,
//! progress on long uploads, `status`, stopping on a permanent refusal, and the scheduled loop
//! (`run`) that brings a new hot-list entry to the terminal without being asked; an operator's
//! `unresolved` and `resolve` for what recovery left unclear.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn stale_entries_go_to_dead_letter_and_are_never_sent() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-A1");
    term.register(&env, &server.url, "110100");
    term.pay(4, 400);
    std::thread::sleep(Duration::from_millis(3100));
    let fresh = term.pay(3, 401);
    let (code, out, err) = term.run_agent("once", &server.url, &["--max-age", "2"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("dead-lettered 4"), "{out}");
    assert!(out.contains("uploaded 3 (booked 3"), "{out}");
    assert_exactly_once(&env, &term, &fresh);
    let o = term.agent(&["status"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("dead letter:         4"), "{s}");
    assert!(s.contains("pending:             0"), "{s}");
    // A later run with a generous age does not resurrect them.
    let (code, out, _) = term.run_agent("once", &server.url, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("uploaded 0"), "{out}");
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 3);
}

#[test]
fn long_uploads_show_progress_and_status_tells_the_story() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-A2");
    term.register(&env, &server.url, "110100");
    term.pay(50, 402);
    let (code, out, err) = term.run_agent("once", &server.url, &["--batch-size", "10"]);
    assert_eq!(code, 0, "{out} {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("upload: ")).collect();
    assert_eq!(lines.len(), 5, "{err}");
    assert_eq!(
        lines[0],
        "upload: 10/50 entries (booked 10, duplicate 0, rejected 0)"
    );
    assert_eq!(
        lines[4],
        "upload: 50/50 entries (booked 50, duplicate 0, rejected 0)"
    );
    let o = term.agent(&["status"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "terminal:            KIOSK-A2",
        "pending:             0",
        "booked:              50",
        "failed (rejected):   0",
        "hot-list version:    0",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    assert!(!s.contains("never"), "a last success is shown: {s}");
}

#[test]
fn a_permanent_refusal_stops_the_run_and_is_reported() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-A3");
    term.register(&env, &server.url, "110100");
    term.pay(3, 403);
    // The terminal's key is replaced on the terminal: the server refuses every request (401),
    // which retrying cannot fix.
    let k = card_core::crypto::sm2::Sm2PrivateKey::generate_os().unwrap();
    std::fs::write(&term.key, hex::encode_upper(k.expose_bytes().as_ref())).unwrap();
    let start = Instant::now();
    let (code, _, err) = term.run_agent("once", &server.url, &["--max-attempts", "8"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("BadSignature"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no retries for a permanent error"
    );
    let o = term.agent(&["status"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("pending:             3"), "{s}");
    assert!(
        s.contains("last error:") && s.contains("BadSignature"),
        "{s}"
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 0);
}

#[test]
fn the_scheduled_loop_brings_a_new_lost_card_without_being_asked() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-A4");
    term.register(&env, &server.url, "110100");
    let mut args = vec!["run".to_string()];
    args.extend(term.conn_args(&server.url));
    args.extend(["--interval".to_string(), "1".to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = term
        .agent(&refs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    env.admin(&["report-lost", "--pan", "6217000000000004444"]);
    let expected = term.pay(5, 404);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while Instant::now() < deadline {
        let l = term.open_ledger();
        if l.hotlist_version().unwrap() == 1 && l.sync_summary().unwrap().booked == 5 {
            seen = true;
            break;
        }
        drop(l);
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "the loop did not sync within 20 s");
    assert_exactly_once(&env, &term, &expected);
}

#[test]
fn an_operator_lists_unclear_entries_and_resolves_them_from_the_command_line() {
    use backend_sync::entry::{CNY, EntryKind, EntryState};
    use backend_sync::ledger::{NewPayment, Outcome};
    use backend_sync::testkit::{self, TestCard};

    let term = Term::new("KIOSK-A9");
    let card = TestCard::demo_sm4(9400).unwrap();
    let t: backend_sync::entry::TxnTime = "20250301101500".parse().unwrap();
    let mut l = term.open_ledger();
    let p = NewPayment {
        kind: EntryKind::EcPurchase,
        amount_fen: 720,
        currency: CNY,
        pan: card.pan.clone(),
        psn: card.psn.clone(),
        txn_time: t.clone(),
    };
    let a = l.begin_payment(&p).unwrap().seq;
    let b = l.begin_payment(&p).unwrap().seq;
    for s in [a, b] {
        l.record_outcome(
            s,
            &Outcome::Unclear {
                note: "the transaction log cannot be read".into(),
            },
        )
        .unwrap();
    }
    drop(l);
    let run = |args: &[&str]| {
        let o = term.agent(args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["unresolved"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains(&format!("seq {a}\tunknown\t720 fen\t{}", card.pan.masked())),
        "{out}"
    );
    assert!(out.contains("the transaction log cannot be read"), "{out}");
    assert!(!out.contains(card.pan.expose()), "PAN in clear");
    // Neither or both findings: refused.
    let (code, _, _) = run(&["resolve", "--seq", &a.to_string(), "--note", "x"]);
    assert_ne!(code, 0);
    let log =
        hex::encode_upper(testkit::log_record(720, CNY, &t, EntryKind::EcPurchase, 5).to_tlv());
    let (code, out, err) = run(&[
        "resolve",
        "--seq",
        &a.to_string(),
        "--debited-atc",
        "5",
        "--log-record",
        &log,
        "--note",
        "card log printed at counter 3",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out.trim(), format!("seq {a}: recovered"));
    let (code, out, err) = run(&[
        "resolve",
        "--seq",
        &b.to_string(),
        "--not-debited",
        "--note",
        "no debit in the card log",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out.trim(), format!("seq {b}: voided"));
    // Settled entries cannot be settled again.
    let (code, _, err) = run(&[
        "resolve",
        "--seq",
        &b.to_string(),
        "--not-debited",
        "--note",
        "again",
    ]);
    assert_eq!(code, 1, "{err}");
    let (_, out, _) = run(&["unresolved"]);
    assert!(out.trim().is_empty(), "{out}");
    let l = term.open_ledger();
    assert_eq!(l.entry(a).unwrap().unwrap().state, EntryState::Recovered);
    assert_eq!(l.pending_upload(10).unwrap().len(), 2);
}
