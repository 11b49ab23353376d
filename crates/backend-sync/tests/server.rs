//! The central server as a real process on loopback with SQLite, driven by the real agent and
//! by hand-made requests: booking exactly once, duplicates, conflicts, cryptogram failures,
//! bad input, forged and replayed requests, clock skew, registration, downloads, lost cards,
//! batch reconciliation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use backend_sync::agent::client::SyncClient;
use backend_sync::entry::{CNY, EntryKind, TxnTime};
use backend_sync::ledger::{LedgerError, NewPayment, Outcome};
use backend_sync::testkit::TestCard;
use backend_sync::wire::{self, ErrorBody, ErrorCode, UploadRequest, UploadResponse};
use common::*;
use reqwest::Method;
use std::time::Duration;

fn client(term: &Term, url: &str) -> SyncClient {
    SyncClient::new(
        url,
        term.id.clone(),
        term.signing_key(),
        None,
        Duration::from_secs(5),
    )
    .unwrap()
}

fn error_code(bytes: &[u8]) -> ErrorCode {
    wire::parse::<ErrorBody>(bytes, usize::MAX).unwrap().error
}

#[test]
fn entries_are_booked_once_resends_are_duplicates_and_bad_cryptograms_rejected() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-1");
    term.register(&env, &server.url, "110100");
    let mut expected = term.pay(6, 1);
    // One approved entry whose cryptogram was made with another card key (forged), one
    // declined (AAC), one voided.
    let mut l = term.open_ledger();
    let t: TxnTime = "20250301101500".parse().unwrap();
    let mut card = TestCard::demo_sm4(99).unwrap();
    let mut other = TestCard::demo_sm4(98).unwrap();
    let p = NewPayment {
        kind: EntryKind::EcPurchase,
        amount_fen: 500,
        currency: CNY,
        pan: card.pan.clone(),
        psn: card.psn.clone(),
        txn_time: t.clone(),
    };
    let forged = l.begin_payment(&p).unwrap().seq;
    let r = other.generate_ac(0x40, 500, CNY, &t, EntryKind::EcPurchase);
    l.record_outcome(forged, &Outcome::Approved(r)).unwrap();
    let declined = l.begin_payment(&p).unwrap().seq;
    let r = card.generate_ac(0x00, 500, CNY, &t, EntryKind::EcPurchase);
    l.record_outcome(declined, &Outcome::Declined(r)).unwrap();
    let voided = l.begin_payment(&p).unwrap().seq;
    l.record_outcome(
        voided,
        &Outcome::Voided {
            note: "cancelled before GENERATE AC".into(),
        },
    )
    .unwrap();
    drop(l);

    let (code, out, err) = term.run_agent("once", &server.url, &["--batch-size", "4"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("uploaded 9 (booked 8, duplicate 0, rejected 1)"),
        "{out}"
    );
    let rows = env.query(
        "SELECT seq, status, reason, state FROM entries ORDER BY seq",
        vec![],
    );
    assert_eq!(rows.len(), 9);
    let row = |seq: u64| {
        rows.iter()
            .find(|r| r.int(0).unwrap() as u64 == seq)
            .unwrap()
    };
    assert_eq!(row(forged).text(1).unwrap(), "rejected");
    assert_eq!(
        row(forged).opt_text(2).unwrap().as_deref(),
        Some("cryptogram_invalid")
    );
    assert_eq!(row(declined).text(3).unwrap(), "declined");
    assert_eq!(row(declined).text(1).unwrap(), "booked");
    assert_eq!(row(voided).text(3).unwrap(), "voided");
    let l = term.open_ledger();
    let s = l.sync_summary().unwrap();
    assert_eq!((s.pending, s.booked, s.rejected), (0, 8, 1));
    drop(l);

    // Resending the same entries (as after a lost answer): duplicates and the same rejection.
    let l = term.open_ledger();
    let mut all = Vec::new();
    for e in l.entries().unwrap() {
        let _ = e;
    }
    drop(l);
    // Re-read the upload form by putting the rows back to pending in a copy of the ledger.
    let copy = term.dir.path().join("copy.db");
    std::fs::copy(&term.ledger, &copy).unwrap();
    let raw = rusqlite::Connection::open(&copy).unwrap();
    raw.execute("UPDATE uploads SET state = 'pending'", [])
        .unwrap();
    drop(raw);
    let lc = backend_sync::ledger::Ledger::open(
        &copy,
        &term.id,
        backend_sync::field_crypto::FieldKey::from_hex(TERMINAL_FIELD_KEY).unwrap(),
    )
    .unwrap();
    all.extend(lc.pending_upload(100).unwrap());
    let c = client(&term, &server.url);
    let rt = rt();
    let resp: UploadResponse = rt
        .block_on(c.call(
            Method::POST,
            "/v1/entries",
            wire::encode(&UploadRequest {
                entries: all.clone(),
            }),
        ))
        .unwrap();
    for r in &resp.results {
        if r.seq == forged {
            assert_eq!(r.status, wire::EntryStatus::Rejected);
            assert_eq!(r.reason, Some(wire::RejectReason::CryptogramInvalid));
        } else {
            assert_eq!(r.status, wire::EntryStatus::Duplicate, "seq {}", r.seq);
        }
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM entries"),
        9,
        "nothing booked twice"
    );

    // The same sequence number with other content is a conflict and changes nothing.
    let mut tampered = all[0].clone();
    tampered.amount_fen += 1;
    let resp: UploadResponse = rt
        .block_on(c.call(
            Method::POST,
            "/v1/entries",
            wire::encode(&UploadRequest {
                entries: vec![tampered],
            }),
        ))
        .unwrap();
    assert_eq!(resp.results[0].reason, Some(wire::RejectReason::Conflict));
    // The same entry twice in one batch: the second is a conflict.
    let mut fresh = term.pay(1, 7);
    expected.append(&mut fresh);
    let lf = term.open_ledger();
    let e = lf.pending_upload(1).unwrap().remove(0);
    let resp: UploadResponse = rt
        .block_on(c.call(
            Method::POST,
            "/v1/entries",
            wire::encode(&UploadRequest {
                entries: vec![e.clone(), e],
            }),
        ))
        .unwrap();
    assert_eq!(resp.results[0].status, wire::EntryStatus::Booked);
    assert_eq!(resp.results[1].reason, Some(wire::RejectReason::Conflict));
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 10);
    let amount: i64 = env.count("SELECT CAST(SUM(amount_fen) AS BIGINT) FROM entries WHERE status = 'booked' AND state = 'approved_offline'");
    assert_eq!(amount as u64, expected.iter().map(|(_, a)| a).sum::<u64>());
}

#[test]
fn bad_input_gets_4xx_and_changes_nothing() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-2");
    term.register(&env, &server.url, "110100");
    term.pay(2, 3);
    let c = client(&term, &server.url);
    let rt = rt();
    let snapshot = || {
        (
            env.count("SELECT COUNT(*) FROM entries"),
            env.count("SELECT COUNT(*) FROM nonces"),
            env.count("SELECT COUNT(*) FROM batch_closes"),
        )
    };
    let before = snapshot();
    let l = term.open_ledger();
    let good = String::from_utf8(wire::encode(&UploadRequest {
        entries: l.pending_upload(10).unwrap(),
    }))
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, ErrorCode)> = vec![
        (
            "truncated JSON",
            good.as_bytes()[..good.len() / 2].to_vec(),
            400,
            ErrorCode::MalformedJson,
        ),
        (
            "not JSON",
            b"\x00\xffgarbage".to_vec(),
            400,
            ErrorCode::MalformedJson,
        ),
        ("empty body", Vec::new(), 400, ErrorCode::MalformedJson),
        (
            "wrong type",
            good.replacen("\"seq\":1", "\"seq\":\"1\"", 1).into_bytes(),
            400,
            ErrorCode::InvalidField,
        ),
        (
            "negative amount",
            good.replacen("\"amount_fen\":", "\"amount_fen\":-", 1)
                .into_bytes(),
            400,
            ErrorCode::InvalidField,
        ),
        (
            "bad PAN",
            good.replacen("\"pan\":\"6", "\"pan\":\"X", 1).into_bytes(),
            400,
            ErrorCode::InvalidField,
        ),
        (
            "unknown field",
            good.replacen("{\"entries\"", "{\"x\":1,\"entries\"", 1)
                .into_bytes(),
            400,
            ErrorCode::InvalidField,
        ),
        (
            "unknown state",
            good.replacen("approved_offline", "approved_twice", 1)
                .into_bytes(),
            400,
            ErrorCode::InvalidField,
        ),
        (
            "array not object",
            b"[1,2,3]".to_vec(),
            400,
            ErrorCode::InvalidField,
        ),
        (
            "oversized",
            {
                let mut v = b"{\"entries\":[".to_vec();
                v.resize(wire::MAX_BODY_BYTES + 10, b' ');
                v
            },
            413,
            ErrorCode::TooLarge,
        ),
    ];
    for (what, body, status, code) in cases {
        let (s, bytes) = rt
            .block_on(c.send_raw(
                Method::POST,
                "/v1/entries",
                body,
                backend_sync::clock::unix_now(),
            ))
            .unwrap();
        assert_eq!(s, status, "{what}");
        assert_eq!(error_code(&bytes), code, "{what}");
        assert_eq!(snapshot(), before, "{what} changed the database");
    }
    // Close with a wrong type; a query parameter that is not a number.
    let (s, bytes) = rt
        .block_on(c.send_raw(
            Method::POST,
            "/v1/batches/close",
            b"{\"batch_no\":\"one\"}".to_vec(),
            backend_sync::clock::unix_now(),
        ))
        .unwrap();
    assert_eq!((s, error_code(&bytes)), (400, ErrorCode::InvalidField));
    let (s, _) = rt
        .block_on(c.send_raw(
            Method::GET,
            "/v1/hotlist?since=abc",
            Vec::new(),
            backend_sync::clock::unix_now(),
        ))
        .unwrap();
    assert_eq!(s, 400);
    // No signature headers at all; an unknown path.
    let http = reqwest::Client::new();
    let r = rt
        .block_on(
            http.post(format!("{}/v1/entries", server.url))
                .body(good.clone())
                .send(),
        )
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        error_code(&rt.block_on(r.bytes()).unwrap()),
        ErrorCode::MissingAuth
    );
    let r = rt
        .block_on(http.get(format!("{}/v1/nothing", server.url)).send())
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(snapshot().0, before.0);
    // And the good body still books.
    let (s, _) = rt
        .block_on(c.send_raw(
            Method::POST,
            "/v1/entries",
            good.into_bytes(),
            backend_sync::clock::unix_now(),
        ))
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 2);
}

#[test]
fn forged_replayed_stale_and_unknown_requests_are_refused() {
    common::auth_checks::forged_replayed_stale_and_unknown_requests_are_refused(Backend::Sqlite);
}
#[test]
fn a_terminal_clock_off_by_minutes_still_syncs_and_learns_the_offset() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-SKEW");
    term.register(&env, &server.url, "110100");
    let expected = term.pay(5, 5);
    // Three minutes off: inside the window, nothing to correct.
    let (code, out, err) = {
        let mut args = vec!["once".to_string()];
        args.extend(term.conn_args(&server.url));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = term
            .agent(&refs)
            .env(backend_sync::clock::SKEW_ENV, "-180")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(0), "{out} {err}");
    assert_eq!(
        term.open_ledger().meta_i64("clock_offset").unwrap(),
        None,
        "no correction needed"
    );
    // Eleven minutes behind: the first request is refused as stale, the agent learns the
    // offset from the server's answer and goes on.
    let more = term.pay(3, 6);
    let mut args = vec!["once".to_string()];
    args.extend(term.conn_args(&server.url));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = term
        .agent(&refs)
        .env(backend_sync::clock::SKEW_ENV, "-660")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let offset = term
        .open_ledger()
        .meta_i64("clock_offset")
        .unwrap()
        .unwrap();
    assert!((655..=665).contains(&offset), "offset {offset}");
    let mut all = expected;
    all.extend(more);
    assert_exactly_once(&env, &term, &all);
}

#[test]
fn registration_needs_the_right_token_and_binds_one_key() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-4");
    let token = env.add_terminal("KIOSK-4", "110100");
    let (code, _, err) = term.run_agent(
        "register",
        &server.url,
        &["--token", "00000000000000000000000000000000"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad_enrollment") || err.contains("BadEnrollment"),
        "{err}"
    );
    let (code, out, err) = term.run_agent("register", &server.url, &["--token", &token]);
    assert_eq!(code, 0, "{out} {err}");
    // The same key again is fine; another key is refused.
    let (code, _, _) = term.run_agent("register", &server.url, &["--token", &token]);
    assert_eq!(code, 0);
    let thief = Term::new("KIOSK-4");
    let (code, _, err) = thief.run_agent("register", &server.url, &["--token", &token]);
    assert_eq!(code, 2);
    assert!(err.contains("AlreadyRegistered"), "{err}");
    // An unregistered terminal's uploads are refused.
    let (code, _, err) = thief.run_agent("once", &server.url, &[]);
    assert_eq!(code, 1, "not registered locally: {err}");
}

#[test]
fn a_card_reported_lost_is_refused_offline_after_the_next_sync() {
    let env = Env::new(Backend::Sqlite);
    let mut server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-5");
    term.register(&env, &server.url, "110100");
    let card = TestCard::demo_sm4(555).unwrap();
    let payment = |l: &mut backend_sync::ledger::Ledger| {
        l.begin_payment(&NewPayment {
            kind: EntryKind::EcPurchase,
            amount_fen: 100,
            currency: CNY,
            pan: card.pan.clone(),
            psn: card.psn.clone(),
            txn_time: "20250301101500".parse().unwrap(),
        })
    };
    {
        let mut l = term.open_ledger();
        let i = payment(&mut l).unwrap();
        l.record_outcome(
            i.seq,
            &Outcome::Voided {
                note: "test".into(),
            },
        )
        .unwrap();
    }
    let out = env.admin(&[
        "report-lost",
        "--pan",
        card.pan.expose(),
        "--reason",
        "lost",
    ]);
    assert!(out.contains("hot-list version 1"), "{out}");
    assert!(
        !out.contains(card.pan.expose()),
        "the PAN is masked in admin output"
    );
    env.admin(&[
        "report-lost",
        "--pan",
        "6217000000000000777",
        "--reason",
        "stolen",
    ]);
    let (code, out, err) = term.run_agent("once", &server.url, &[]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("hot list v2"), "{out}");
    // Offline now.
    server.kill9();
    let mut l = term.open_ledger();
    match payment(&mut l) {
        Err(LedgerError::CardHotListed { reason }) => assert_eq!(reason, "lost"),
        other => panic!("expected a hot-list refusal, got {other:?}"),
    }
    assert_eq!(l.hotlist_len().unwrap(), 2);
    // Unblocked at the server: usable again after the next sync.
    drop(l);
    env.admin(&["unblock", "--pan", card.pan.expose()]);
    let server = env.start_server(0, &[]);
    let (code, out, _) = term.run_agent("once", &server.url, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("hot list v3"), "{out}");
    let mut l = term.open_ledger();
    assert!(payment(&mut l).is_ok());
}

#[test]
fn parameters_and_cardholder_records_reach_the_terminal_for_offline_queries() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-6");
    term.register(&env, &server.url, "110100");
    env.admin(&["set-param", "--name", "ec_floor_limit", "--value", "50000"]);
    env.admin(&["set-param", "--name", "sync_interval", "--value", "60"]);
    let csv = env.dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "ssn,name,card_no,region,insurance_status,contribution_months,medical_balance_fen,as_of\n\
         110105198703073011,张三,A03073011,110100,active,120,123456,20250301000000\n\
         11010519900101123X,李四,A01011234,110100,suspended,36,500,20250301000000\n\
         310105198001011234,王五,B01011234,310100,active,200,999,20250301000000\n",
    )
    .unwrap();
    let out = env.admin(&["import-cardholders", "--csv", csv.to_str().unwrap()]);
    assert!(out.contains("imported 3"), "{out}");
    // A bad CSV is refused whole, with its line.
    let bad = env.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "ssn,name,card_no,region,insurance_status,contribution_months,medical_balance_fen,as_of\n\
         110105198703073012,赵六,A1,110100,active,1,1,20250301000000\n\
         12345,钱七,A2,110100,active,1,1,20250301000000\n",
    )
    .unwrap();
    let o = std::process::Command::new(SERVER_BIN)
        .args([
            "--db",
            &env.db,
            "--field-key",
            env.field_key.to_str().unwrap(),
            "import-cardholders",
            "--csv",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("CSV line 3: invalid ssn"));
    assert_eq!(env.count("SELECT COUNT(*) FROM cardholders"), 3);
    // No personal data in clear in the server's database either.
    let bytes = std::fs::read(&env.db).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("张三"));

    let (code, out, err) = term.run_agent("once", &server.url, &[]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("parameters v2"), "{out}");
    assert!(
        out.contains("cardholders v2"),
        "only the region's records: {out}"
    );
    let l = term.open_ledger();
    assert_eq!(
        l.parameter("ec_floor_limit").unwrap().as_deref(),
        Some("50000")
    );
    let r = l.cardholder_by_ssn("110105198703073011").unwrap().unwrap();
    assert_eq!(
        (
            r.name.as_str(),
            r.medical_balance_fen,
            r.contribution_months
        ),
        ("张三", 123_456, 120)
    );
    assert_eq!(
        l.cardholder_by_card("A01011234")
            .unwrap()
            .unwrap()
            .insurance_status,
        "suspended"
    );
    assert!(
        l.cardholder_by_ssn("310105198001011234").unwrap().is_none(),
        "other region"
    );
    // status shows the versions.
    let o = term.agent(&["status"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("parameters version:  2"), "{s}");
    assert!(s.contains("last success:        20"), "{s}");
}

#[test]
fn batch_close_balances_or_names_the_differences() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-7");
    term.register(&env, &server.url, "110100");
    let expected = term.pay(12, 8);
    let (code, out, err) = term.run_agent("once", &server.url, &["--close-batch"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("batch 1: balanced"), "{out}");
    let l = term.open_ledger();
    let b = l.batch(1).unwrap().unwrap();
    assert_eq!(b.state, "balanced");
    let r = b.result.unwrap();
    assert_eq!(r.server.debit_count, 12);
    assert_eq!(
        r.server.debit_amount,
        expected.iter().map(|(_, a)| a).sum::<u64>()
    );
    drop(l);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM batch_closes WHERE balanced = 1"),
        1
    );

    // Batch 2 has an entry the server rejects: not balanced, and the difference is named.
    term.pay(2, 9);
    {
        let mut l = term.open_ledger();
        let t: TxnTime = "20250301101500".parse().unwrap();
        let card = TestCard::demo_sm4(1234).unwrap();
        let mut wrong = TestCard::demo_sm4(4321).unwrap();
        let i = l
            .begin_payment(&NewPayment {
                kind: EntryKind::EcPurchase,
                amount_fen: 77,
                currency: CNY,
                pan: card.pan.clone(),
                psn: card.psn.clone(),
                txn_time: t.clone(),
            })
            .unwrap();
        l.record_outcome(
            i.seq,
            &Outcome::Approved(wrong.generate_ac(0x40, 77, CNY, &t, EntryKind::EcPurchase)),
        )
        .unwrap();
    }
    let (code, out, _) = term.run_agent("once", &server.url, &["--close-batch"]);
    assert_eq!(code, 0);
    assert!(out.contains("batch 2: NOT balanced"), "{out}");
    let l = term.open_ledger();
    let r = l.batch(2).unwrap().unwrap().result.unwrap();
    assert_eq!(r.missing_on_server, vec![15]);
    assert_eq!((r.terminal.debit_count, r.server.debit_count), (3, 2));
    assert_eq!(r.terminal.debit_amount - r.server.debit_amount, 77);
}

#[test]
fn recovered_debits_are_booked_unverified_and_reconciled_apart_sqlite() {
    recovered_debits_are_booked_unverified_and_reconciled_apart(Backend::Sqlite);
}
