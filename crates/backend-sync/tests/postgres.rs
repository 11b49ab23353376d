//! The same server against a real PostgreSQL (scripts/postgres-env.sh): booking exactly once,
//! duplicates, bad input, forged, replayed, stale and unknown requests, the server killed mid-transaction, and two server instances on one
//! database behind a round-robin proxy with faults, with several terminals at once; medical
//! debits (card signatures, overdraft of the server's balance, two instances racing for one).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use backend_sync::agent::client::SyncClient;
use backend_sync::fault_proxy::{FaultConfig, FaultProxy};
use backend_sync::wire::{self, ErrorBody, ErrorCode, UploadRequest, UploadResponse};
use common::*;
use reqwest::Method;

#[test]
fn postgres_books_once_answers_duplicates_and_refuses_bad_input() {
    let env = Env::new(Backend::Postgres);
    assert!(env.db.starts_with("postgres://"));
    let server = env.start_server(0, &[]);
    let term = Term::new("PG-1");
    term.register(&env, &server.url, "110100");
    let expected = term.pay(25, 101);
    let (code, out, err) =
        term.run_agent("once", &server.url, &["--batch-size", "7", "--close-batch"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("booked 25"), "{out}");
    assert!(out.contains("batch 1: balanced"), "{out}");
    assert_exactly_once(&env, &term, &expected);

    // Resend everything: duplicates only.
    let raw = rusqlite::Connection::open(&term.ledger).unwrap();
    raw.execute("UPDATE uploads SET state = 'pending'", [])
        .unwrap();
    drop(raw);
    let entries = term.open_ledger().pending_upload(100).unwrap();
    let c = SyncClient::new(
        &server.url,
        term.id.clone(),
        term.signing_key(),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    let rt = rt();
    let resp: UploadResponse = rt
        .block_on(c.call(
            Method::POST,
            "/v1/entries",
            wire::encode(&UploadRequest {
                entries: entries.clone(),
            }),
        ))
        .unwrap();
    assert!(
        resp.results
            .iter()
            .all(|r| r.status == wire::EntryStatus::Duplicate)
    );
    // Bad input changes nothing.
    let before = env.count("SELECT COUNT(*) FROM nonces");
    let good = String::from_utf8(wire::encode(&UploadRequest { entries })).unwrap();
    for (body, status, code) in [
        (
            good.as_bytes()[..good.len() - 5].to_vec(),
            400,
            ErrorCode::MalformedJson,
        ),
        (
            good.replacen("\"batch_no\":1", "\"batch_no\":true", 1)
                .into_bytes(),
            400,
            ErrorCode::InvalidField,
        ),
        (
            vec![b'{'; wire::MAX_BODY_BYTES + 1],
            413,
            ErrorCode::TooLarge,
        ),
    ] {
        let (s, bytes) = rt
            .block_on(c.send_raw(
                Method::POST,
                "/v1/entries",
                body,
                backend_sync::clock::unix_now(),
            ))
            .unwrap();
        assert_eq!(s, status);
        assert_eq!(
            wire::parse::<ErrorBody>(&bytes, usize::MAX).unwrap().error,
            code
        );
    }
    assert_eq!(env.count("SELECT COUNT(*) FROM nonces"), before);
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 25);
}

#[test]
fn forged_replayed_stale_and_unknown_requests_are_refused_postgres() {
    common::auth_checks::forged_replayed_stale_and_unknown_requests_are_refused(Backend::Postgres);
}

#[test]
fn server_killed_mid_transaction_postgres() {
    server_killed_mid_transaction(Backend::Postgres);
}

#[test]
fn two_server_instances_on_one_postgres_behind_a_faulty_balancer() {
    let env = Env::new(Backend::Postgres);
    let a = env.start_server(0, &[]);
    let b = env.start_server(0, &[]);
    let terms: Vec<Term> = (0..3).map(|i| Term::new(&format!("PG-LB{i}"))).collect();
    let mut expected = Vec::new();
    for (i, t) in terms.iter().enumerate() {
        t.register(&env, if i % 2 == 0 { &a.url } else { &b.url }, "110100");
        expected.push(t.pay(120, 200 + i as u64));
    }
    env.admin(&["report-lost", "--pan", "6217000000000000999"]);
    let rt = rt();
    let upstreams = [a.port, b.port].map(|p| format!("127.0.0.1:{p}").parse().unwrap());
    let proxy = rt
        .block_on(FaultProxy::start(
            &upstreams,
            FaultConfig {
                seed: 0xbeef,
                hold: Duration::from_millis(1500),
                ..FaultConfig::default()
            },
        ))
        .unwrap();
    let url = format!("http://{}", proxy.addr());
    std::thread::scope(|s| {
        for t in &terms {
            let url = url.clone();
            s.spawn(move || {
                for _ in 0..30 {
                    let (code, out, err) = t.run_agent(
                        "once",
                        &url,
                        &[
                            "--batch-size",
                            "8",
                            "--max-attempts",
                            "5",
                            "--timeout-ms",
                            "1000",
                        ],
                    );
                    if code == 0 {
                        return;
                    }
                    assert_eq!(code, 2, "{out} {err}");
                }
                panic!("{} never finished", t.id);
            });
        }
    });
    std::thread::sleep(Duration::from_millis(600));
    for (t, e) in terms.iter().zip(&expected) {
        assert_exactly_once(&env, t, e);
        assert_eq!(t.open_ledger().hotlist_version().unwrap(), 1);
    }
    let [_, _, _, _, dup, late, passed] = proxy.stats().snapshot();
    assert!(dup > 0 && late > 0 && passed > 0);
}

#[test]
fn recovered_debits_are_booked_unverified_and_reconciled_apart_postgres() {
    recovered_debits_are_booked_unverified_and_reconciled_apart(Backend::Postgres);
}

#[test]
fn medical_debits_forged_misbound_foreign_or_overdrawn_are_rejected_postgres() {
    common::medical_card::bad_medical_debits_are_rejected_and_nothing_booked(Backend::Postgres);
}

#[test]
fn two_counters_racing_through_two_server_instances_for_one_medical_balance_book_one_postgres() {
    common::medical_card::two_counters_racing_for_one_balance_book_one(Backend::Postgres);
}

#[test]
fn stale_counter_copies_are_checked_again_by_the_server_on_postgres() {
    common::medical_card::stale_counter_copies_are_checked_again_by_the_server(Backend::Postgres);
}
