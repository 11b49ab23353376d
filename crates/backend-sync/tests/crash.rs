//! kill -9, for real: the agent killed before a send, after a send before the answer is
//! stored, and between batches, and at random moments; the server killed inside its booking
//! transaction. After each loop, every entry is booked exactly once and the totals balance. A
//! recovered debit (no cryptogram) whose answer was lost is booked once too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use backend_sync::ledger::UploadState;
use backend_sync::server::db::Val;
use backend_sync::testkit::TestCard;
use common::*;

const BATCH: &[&str] = &["--batch-size", "10"];

#[test]
fn agent_killed_at_each_step_then_resumed_books_everything_exactly_once() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-K1");
    term.register(&env, &server.url, "110100");
    let mut expected = term.pay(60, 31);
    for (kills, (point, nth)) in [
        ("before_send", 1),
        ("after_send", 1),
        ("mid_batch", 1),
        ("after_send", 2),
        ("before_send", 3),
        ("mid_batch", 2),
    ]
    .into_iter()
    .enumerate()
    {
        // New payments keep arriving between crashes.
        expected.extend(term.pay(5, 40 + kills as u64));
        assert!(
            agent_until_pause(&term, &server.url, point, nth, BATCH),
            "the agent never reached {point}#{nth}"
        );
        let l = term.open_ledger();
        assert!(l.integrity_ok().unwrap());
    }
    // Random moments too.
    for i in 0..5u64 {
        let mut args = vec!["once".to_string()];
        args.extend(term.conn_args(&server.url));
        args.extend(BATCH.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = term
            .agent(&refs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + 37 * i));
        let _ = child.kill();
        let _ = child.wait();
        expected.extend(term.pay(3, 60 + i));
    }
    let (code, out, err) = term.run_agent(
        "once",
        &server.url,
        &["--batch-size", "10", "--close-batch"],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("batch 1: balanced"), "{out}");
    assert_exactly_once(&env, &term, &expected);
}

#[test]
fn server_killed_mid_transaction_sqlite() {
    server_killed_mid_transaction(Backend::Sqlite);
}

#[test]
fn agent_killed_after_sending_a_recovered_debit_books_it_exactly_once() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-K3");
    term.register(&env, &server.url, "110100");
    let mut card = TestCard::demo_tdes(9300).unwrap();
    let tc = term.approved_payment(&mut card, 210);
    let (rec, _) = term.torn_payment(&mut card, 460);
    // The server books both; the agent dies before it stores the answer.
    assert!(agent_until_pause(&term, &server.url, "after_send", 1, &[]));
    let l = term.open_ledger();
    assert_eq!(
        l.upload_state(rec).unwrap().unwrap().0,
        UploadState::Pending
    );
    drop(l);
    let status = |seq: u64| {
        env.query(
            "SELECT status FROM entries WHERE terminal_id = 'KIOSK-K3' AND seq = $1",
            vec![Val::Int(seq as i64)],
        )
        .iter()
        .map(|r| r.text(0).unwrap())
        .collect::<Vec<_>>()
    };
    assert_eq!(status(rec), vec!["booked_unverified"]);
    // The resend is a duplicate; the batch balances with the recovered debit named.
    let (code, out, err) = term.run_agent("once", &server.url, &["--close-batch"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("uploaded 2 (booked 0, duplicate 2, rejected 0)"),
        "{out}"
    );
    assert!(
        out.contains(
            "batch 1: balanced (recovered debits apart: terminal 1 / 460 fen, server 1 / 460 fen)"
        ),
        "{out}"
    );
    assert_eq!(status(rec), vec!["booked_unverified"]);
    assert_eq!(status(tc), vec!["booked"]);
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 2);
    let l = term.open_ledger();
    assert_eq!(l.upload_state(rec).unwrap().unwrap().0, UploadState::Booked);
}
