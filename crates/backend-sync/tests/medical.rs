//! Offline medical-account debits: the card proves itself and signs a challenge bound to the
//! entry (the firmware-tests card OS, personalised through hsm-sim), the ledger records the
//! debit final at once within the cardholder's medical balance, the server verifies the card's
//! signature against its SSSE trust store and books it once against its own balance, and batch
//! closes count medical debits apart. Real SQLite files, HTTP on loopback, the binaries as
//! processes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use backend_sync::entry::{CNY, EntryKind, EntryState, IdempotencyId, TxnTime};
use backend_sync::ledger::{LedgerError, NewMedicalDebit, UploadState};
use backend_sync::medical::MedicalError;
use backend_sync::server::db::Val;
use backend_sync::wire::{
    CardholderPage, CardholderRecord, EntryResult, EntryStatus, HotListAction, HotListChange,
    HotListDelta,
};
use common::medical_card::*;
use common::*;

fn holder_record(card: &MedCard, balance: i64, as_of: &str, version: u64) -> CardholderRecord {
    CardholderRecord {
        ssn: card.ssn().into(),
        name: card.name().into(),
        card_no: card.card_no().into(),
        region: "110100".parse().unwrap(),
        insurance_status: "active".into(),
        contribution_months: 120,
        medical_balance_fen: balance,
        as_of: as_of.parse().unwrap(),
        version,
    }
}

fn give_record(term: &Term, card: &MedCard, balance: i64, as_of: &str) {
    let mut l = term.open_ledger();
    let v = l.meta_u64("cardholders_version").unwrap();
    assert!(
        l.apply_cardholders(&CardholderPage {
            from_version: v,
            to_version: v + 1,
            records: vec![holder_record(card, balance, as_of, v + 1)],
            more: false,
        })
        .unwrap()
    );
}

fn entry_counts(term: &Term) -> (i64, i64, i64, i64) {
    let c = rusqlite::Connection::open(&term.ledger).unwrap();
    let n = |t: &str| -> i64 {
        c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    (
        n("entries"),
        n("outcomes"),
        n("uploads"),
        n("medical_debits"),
    )
}

#[test]
fn a_medical_debit_is_recorded_final_and_booked_once_and_a_resend_is_a_duplicate() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let w = MedWorld::new(Backend::Sqlite, "COUNTER-1", &iss, &[(&zhang, 50_000)]);

    let rec = record(&w.term, &mut zhang, &iss.trust, 1_250).unwrap();
    assert_eq!(
        (rec.available_before_fen, rec.available_after_fen),
        (50_000, 48_750)
    );
    let l = w.term.open_ledger();
    let e = l.entry(rec.entry.seq).unwrap().unwrap();
    assert_eq!(e.kind, EntryKind::MedicalDebit);
    assert_eq!(e.state, EntryState::Recorded);
    assert_eq!(e.amount_fen, 1_250);
    assert!(e.card.is_none() && e.recovered.is_none());
    assert_eq!(e.pan_masked, "621700******0001");
    assert_eq!(
        l.upload_state(rec.entry.seq).unwrap().unwrap().0,
        UploadState::Pending
    );
    let evidence = l.medical_debit(rec.entry.seq).unwrap().unwrap();
    assert_eq!(evidence.ssn.reveal(), zhang.ssn());
    let form = l.pending_upload(10).unwrap();
    assert_eq!(form.len(), 1);
    assert_eq!(form[0].medical.as_ref(), Some(&evidence));
    assert_eq!(form[0].psn.as_str(), "00");
    let avail = l.medical_available(&zhang.identity.holder.ssn).unwrap();
    assert_eq!(
        (avail.outstanding_fen, avail.available_fen),
        (1_250, 48_750)
    );
    drop(l);

    let out = w.sync(&[]);
    assert!(
        out.contains("uploaded 1 (booked 1, duplicate 0, rejected 0)"),
        "{out}"
    );
    let rows = w.env.query(
        "SELECT status, state, kind, amount_fen, atc, cryptogram, holder_index, medical_enc
         FROM entries WHERE terminal_id = 'COUNTER-1'",
        vec![],
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text(0).unwrap(), "booked");
    assert_eq!(rows[0].text(1).unwrap(), "recorded");
    assert_eq!(rows[0].text(2).unwrap(), "medical_debit");
    assert_eq!(rows[0].int(3).unwrap(), 1_250);
    assert_eq!(rows[0].opt_int(4).unwrap(), None);
    assert_eq!(rows[0].opt_text(5).unwrap(), None);
    assert!(rows[0].opt_bytes(6).unwrap().is_some());
    let sealed = rows[0].opt_bytes(7).unwrap().unwrap();
    assert!(
        !sealed
            .windows(zhang.ssn().len())
            .any(|w| w == zhang.ssn().as_bytes()),
        "the server stores the identity sealed"
    );
    let l = w.term.open_ledger();
    assert_eq!(
        l.upload_state(rec.entry.seq).unwrap().unwrap().0,
        UploadState::Booked
    );
    drop(l);

    // A resend (the agent died before storing the answer; a duplicated delivery) books nothing.
    let again = w.term.upload(&w.server.url, form.clone());
    assert_eq!(
        again.results,
        vec![EntryResult {
            seq: rec.entry.seq,
            idempotency_id: rec.entry.idempotency_id,
            status: EntryStatus::Duplicate,
            reason: None
        }]
    );
    let out = w.sync(&[]);
    assert!(out.contains("uploaded 0"), "{out}");
    assert_eq!(w.env.count("SELECT COUNT(*) FROM entries"), 1);
    let report = w.env.admin(&["report"]);
    assert!(
        report.contains("medical\tmedical_fen")
            && report.contains("COUNTER-1\t1\t0\t0\t0\t1\t0\t0\t1\t1250"),
        "{report}"
    );
    let log = w.server.stderr();
    for secret in [zhang.ssn(), zhang.card_no(), zhang.pan.as_str()] {
        assert!(!log.contains(secret), "server log holds a personal value");
    }
}

#[test]
fn overdraft_hot_card_missing_record_and_misbound_evidence_are_refused_before_anything_is_written()
{
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let mut li = iss.card("lisi", "6217000010000002");
    let term = Term::new("COUNTER-2");
    give_record(&term, &zhang, 10_000, AS_OF);

    // No record of Li: the balance is not known offline.
    assert!(matches!(
        record(&term, &mut li, &iss.trust, 100),
        Err(LedgerError::NoCardholderRecord)
    ));
    assert_eq!(entry_counts(&term), (0, 0, 0, 0));

    record(&term, &mut zhang, &iss.trust, 6_000).unwrap();
    let before = entry_counts(&term);
    assert_eq!(before, (1, 1, 1, 1));
    // 10 000 - 6 000 = 4 000 left: 4 001 is refused, nothing written; 4 000 goes.
    match record(&term, &mut zhang, &iss.trust, 4_001) {
        Err(LedgerError::MedicalOverdraft { available_fen }) => assert_eq!(available_fen, 4_000),
        other => panic!("{other:?}"),
    }
    assert_eq!(entry_counts(&term), before);
    let l = term.open_ledger();
    assert_eq!(l.entries().unwrap().len(), 1);
    assert_eq!(l.pending_upload(10).unwrap().len(), 1);
    drop(l);

    // Evidence signed for one amount, recorded for another: refused, nothing written.
    let id = IdempotencyId::generate().unwrap();
    let a = sign(&mut zhang, &iss.trust, &term.id, id, 300);
    let mut l = term.open_ledger();
    let d = NewMedicalDebit {
        idempotency_id: id,
        amount_fen: 200,
        currency: CNY,
        txn_time: MED_TIME.parse().unwrap(),
        pan: a.pan.clone(),
        medical: a.medical.clone(),
    };
    assert!(matches!(
        l.record_medical_debit(&d),
        Err(LedgerError::MedicalEvidence(MedicalError::Binding))
    ));
    // Another terminal's, another time's, another id's: likewise.
    let mut other_time = d.clone();
    other_time.amount_fen = 300;
    other_time.txn_time = "20250301101501".parse::<TxnTime>().unwrap();
    assert!(matches!(
        l.record_medical_debit(&other_time),
        Err(LedgerError::MedicalEvidence(MedicalError::Binding))
    ));
    let mut other_id = d.clone();
    other_id.amount_fen = 300;
    other_id.idempotency_id = IdempotencyId::generate().unwrap();
    assert!(matches!(
        l.record_medical_debit(&other_id),
        Err(LedgerError::MedicalEvidence(MedicalError::Binding))
    ));
    assert_eq!(entry_counts(&term), before);
    // The same evidence, for what it was signed: recorded once; again under its id: refused.
    let mut right = d.clone();
    right.amount_fen = 300;
    l.record_medical_debit(&right).unwrap();
    assert!(matches!(
        l.record_medical_debit(&right),
        Err(LedgerError::IdempotencyReused)
    ));
    assert_eq!(entry_counts(&term), (2, 2, 2, 2));

    // The card reported lost: refused before anything is written.
    l.apply_hotlist(&HotListDelta {
        from_version: 0,
        to_version: 1,
        changes: vec![HotListChange {
            version: 1,
            pan: zhang.pan.parse().unwrap(),
            action: HotListAction::Add,
            reason: "lost".into(),
        }],
    })
    .unwrap();
    drop(l);
    assert!(matches!(
        record(&term, &mut zhang, &iss.trust, 10),
        Err(LedgerError::CardHotListed { .. })
    ));
    assert_eq!(entry_counts(&term), (2, 2, 2, 2));

    // A card payment cannot pose as a medical debit.
    let mut l = term.open_ledger();
    let p = backend_sync::ledger::NewPayment {
        kind: EntryKind::MedicalDebit,
        amount_fen: 10,
        currency: CNY,
        pan: li.pan.parse().unwrap(),
        psn: "00".parse().unwrap(),
        txn_time: MED_TIME.parse().unwrap(),
    };
    assert!(matches!(
        l.begin_payment(&p),
        Err(LedgerError::KindNotAllowed)
    ));
    assert_eq!(entry_counts(&term), (2, 2, 2, 2));
}

#[test]
fn the_terminal_counts_its_debits_until_the_server_acknowledged_them_before_the_record() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let term = Term::new("COUNTER-3");
    give_record(&term, &zhang, 10_000, AS_OF);
    let first = record(&term, &mut zhang, &iss.trust, 6_000).unwrap();
    let ssn = zhang.identity.holder.ssn.clone();

    // A newer record arrives before the debit was uploaded: the backend cannot count it yet, so
    // the terminal still does (4 000 - 6 000).
    give_record(&term, &zhang, 4_000, "20250601000000");
    let a = term.open_ledger().medical_available(&ssn).unwrap();
    assert_eq!((a.outstanding_fen, a.available_fen), (6_000, -2_000));
    assert!(matches!(
        record(&term, &mut zhang, &iss.trust, 1),
        Err(LedgerError::MedicalOverdraft {
            available_fen: -2_000
        })
    ));

    // The server acknowledges it now, after that record's time: still counted.
    let mut l = term.open_ledger();
    l.store_results(&[EntryResult {
        seq: first.entry.seq,
        idempotency_id: first.entry.idempotency_id,
        status: EntryStatus::Booked,
        reason: None,
    }])
    .unwrap();
    assert_eq!(l.medical_available(&ssn).unwrap().available_fen, -2_000);
    drop(l);
    // A record made after the acknowledgement counts it itself: the terminal stops counting it.
    give_record(&term, &zhang, 4_000, "20990101000000");
    let a = term.open_ledger().medical_available(&ssn).unwrap();
    assert_eq!((a.outstanding_fen, a.available_fen), (0, 4_000));
    record(&term, &mut zhang, &iss.trust, 4_000).unwrap();

    // A debit the server rejected is never debited by the backend: it stops counting too.
    let mut l = term.open_ledger();
    let second = l.entries().unwrap().last().unwrap().clone();
    assert_eq!(l.medical_available(&ssn).unwrap().available_fen, 0);
    l.store_results(&[EntryResult {
        seq: second.seq,
        idempotency_id: second.idempotency_id,
        status: EntryStatus::Rejected,
        reason: Some(backend_sync::wire::RejectReason::MedicalOverdraft),
    }])
    .unwrap();
    assert_eq!(l.medical_available(&ssn).unwrap().available_fen, 4_000);
}

#[test]
fn forged_misbound_and_foreign_card_signatures_are_rejected_and_nothing_is_booked() {
    bad_medical_debits_are_rejected_and_nothing_booked(Backend::Sqlite);
}

#[test]
fn the_server_refuses_an_overdraft_of_its_own_medical_balance() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let w = MedWorld::new(Backend::Sqlite, "COUNTER-4", &iss, &[(&zhang, 50_000)]);
    // Recorded offline against the terminal's 50 000; meanwhile the backend's balance fell.
    let rec = record(&w.term, &mut zhang, &iss.trust, 2_000).unwrap();
    w.import(&[(&zhang, 1_999)]);
    let out = w.sync(&[]);
    assert!(out.contains("rejected 1"), "{out}");
    assert_eq!(
        w.term
            .open_ledger()
            .upload_state(rec.entry.seq)
            .unwrap()
            .unwrap(),
        (UploadState::Rejected, Some("medical_overdraft".into()))
    );
    assert_eq!(
        w.medical_rows(),
        vec![(
            rec.entry.seq as i64,
            "rejected".into(),
            Some("medical_overdraft".into())
        )]
    );
}

#[test]
fn stale_counter_copies_are_checked_again_by_the_server() {
    common::medical_card::stale_counter_copies_are_checked_again_by_the_server(Backend::Sqlite);
}

#[test]
fn two_counters_racing_for_the_last_of_a_medical_balance_book_one() {
    two_counters_racing_for_one_balance_book_one(Backend::Sqlite);
}

#[test]
fn batch_totals_balance_with_medical_debits_counted_apart() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let mut li = iss.card("lisi", "6217000010000002");
    let w = MedWorld::new(
        Backend::Sqlite,
        "COUNTER-5",
        &iss,
        &[(&zhang, 50_000), (&li, 8_000)],
    );
    let ec = w.term.pay(3, 77);
    let ec_sum: u64 = ec.iter().map(|(_, a)| a).sum();
    let m1 = record(&w.term, &mut zhang, &iss.trust, 1_200).unwrap();
    let m2 = record(&w.term, &mut li, &iss.trust, 800).unwrap();
    let out = w.sync(&["--close-batch"]);
    assert!(
        out.contains("uploaded 5 (booked 5, duplicate 0, rejected 0)"),
        "{out}"
    );
    assert!(
        out.contains(
            "batch 1: balanced (medical debits apart: terminal 2 / 2000 fen, server 2 / 2000 fen)"
        ),
        "{out}"
    );
    let l = w.term.open_ledger();
    let b = l.batch(1).unwrap().unwrap().result.unwrap();
    assert!(b.balanced);
    assert_eq!((b.server.debit_count, b.server.debit_amount), (3, ec_sum));
    assert_eq!(
        (b.terminal.debit_count, b.terminal.debit_amount),
        (3, ec_sum)
    );
    assert_eq!(
        (b.medical.server.count, b.medical.server.amount),
        (2, 2_000)
    );
    assert_eq!(b.medical.terminal, b.medical.server);
    assert_eq!(b.medical.seqs, vec![m1.entry.seq, m2.entry.seq]);
    assert_eq!(l.batch_totals(1).unwrap().0.debit_amount, ec_sum);
    drop(l);
    let report = w.env.admin(&["report"]);
    assert!(
        report.contains(&format!("COUNTER-5\t5\t0\t3\t{ec_sum}\t5\t0\t0\t2\t2000")),
        "{report}"
    );

    // The server lacking a medical debit the terminal lists: not balanced, named.
    let m3 = record(&w.term, &mut zhang, &iss.trust, 100).unwrap();
    assert_eq!(m3.entry.batch_no, 2);
    let out = w.sync(&[]);
    assert!(out.contains("booked 1"), "{out}");
    w.env.execute(
        "DELETE FROM entries WHERE terminal_id = 'COUNTER-5' AND seq = $1",
        vec![Val::Int(m3.entry.seq as i64)],
    );
    let mut l = w.term.open_ledger();
    l.close_batch().unwrap();
    drop(l);
    // The agent sends it again on `missing_on_server`, and the batch balances.
    let out = w.sync(&[]);
    assert!(
        out.contains(
            "batch 2: balanced (medical debits apart: terminal 1 / 100 fen, server 1 / 100 fen)"
        ),
        "{out}"
    );
}

#[test]
fn agent_killed_after_sending_a_medical_debit_books_it_exactly_once() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let w = MedWorld::new(Backend::Sqlite, "COUNTER-6", &iss, &[(&zhang, 50_000)]);
    let ec = w.term.pay(1, 5);
    let rec = record(&w.term, &mut zhang, &iss.trust, 2_500).unwrap();
    // The server books both; the agent dies before it stores the answer.
    assert!(agent_until_pause(
        &w.term,
        &w.server.url,
        "after_send",
        1,
        &[]
    ));
    assert_eq!(
        w.term
            .open_ledger()
            .upload_state(rec.entry.seq)
            .unwrap()
            .unwrap()
            .0,
        UploadState::Pending
    );
    assert_eq!(
        w.medical_rows(),
        vec![(rec.entry.seq as i64, "booked".into(), None)]
    );
    let out = w.sync(&["--close-batch"]);
    assert!(
        out.contains("uploaded 2 (booked 0, duplicate 2, rejected 0)"),
        "{out}"
    );
    assert!(
        out.contains(
            "batch 1: balanced (medical debits apart: terminal 1 / 2500 fen, server 1 / 2500 fen)"
        ),
        "{out}"
    );
    assert_eq!(
        w.medical_rows(),
        vec![(rec.entry.seq as i64, "booked".into(), None)]
    );
    assert_eq!(w.env.count("SELECT COUNT(*) FROM entries"), 2);
    assert_eq!(
        w.term
            .open_ledger()
            .upload_state(rec.entry.seq)
            .unwrap()
            .unwrap()
            .0,
        UploadState::Booked
    );
    let _ = ec;
}

#[test]
fn no_id_number_name_card_number_or_pan_in_clear_in_the_ledger_file() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let term = Term::new("COUNTER-7");
    give_record(&term, &zhang, 10_000, AS_OF);
    for amount in [100, 200, 300] {
        record(&term, &mut zhang, &iss.trust, amount).unwrap();
    }
    let pan: backend_sync::entry::Pan = zhang.pan.parse().unwrap();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("ssn", zhang.ssn().as_bytes().to_vec()),
        ("card number", zhang.card_no().as_bytes().to_vec()),
        ("name (UTF-8)", zhang.name().as_bytes().to_vec()),
        ("name (GBK)", zhang.identity.holder.name.to_gbk()),
        ("PAN", zhang.pan.as_bytes().to_vec()),
        // The ICC certificate holds the PAN in BCD.
        ("PAN (BCD)", backend_sync::medical::pan_bcd(&pan)),
    ];
    let mut files = vec![term.ledger.clone()];
    let wal = term.ledger.with_extension("db-wal");
    if wal.exists() {
        files.push(wal);
    }
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for (what, n) in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_slice()),
                "{what} in clear in {}",
                f.display()
            );
        }
    }
    // With the key, the identity comes back.
    let l = term.open_ledger();
    assert_eq!(
        l.medical_debit(1).unwrap().unwrap().ssn.reveal(),
        zhang.ssn()
    );
}

#[test]
fn the_schema_refuses_what_the_medical_debit_rules_refuse() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let term = Term::new("COUNTER-8");
    give_record(&term, &zhang, 10_000, AS_OF);
    record(&term, &mut zhang, &iss.trust, 100).unwrap();
    let mut card = backend_sync::testkit::TestCard::demo_sm4(3).unwrap();
    let ec = term.approved_payment(&mut card, 50);
    let c = rusqlite::Connection::open(&term.ledger).unwrap();
    let refused = |sql: &str| {
        let e = c.execute_batch(sql).unwrap_err().to_string();
        assert!(
            e.contains("medical") || e.contains("append-only") || e.contains("not allowed"),
            "{sql}: {e}"
        );
    };
    // Evidence rows are append-only and belong to medical debits only.
    refused("UPDATE medical_debits SET holder_index = x'00'");
    refused("DELETE FROM medical_debits");
    refused(&format!(
        "INSERT INTO medical_debits (seq, holder_index, medical_enc) VALUES ({ec}, x'00', x'00')"
    ));
    // `recorded` only for a medical debit with its evidence; nothing after it.
    refused("INSERT INTO outcomes (seq, state, recorded_at) VALUES (1, 'voided', 0)");
    refused(&format!(
        "INSERT INTO outcomes (seq, state, recorded_at) VALUES ({ec}, 'recorded', 0)"
    ));
    let e = c
        .execute_batch("INSERT INTO outcomes (seq, state, recorded_at) VALUES (1, 'recorded', 0)")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not allowed"), "{e}");
}

#[test]
fn a_server_without_an_ssse_trust_store_answers_503_and_refuses_nothing() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let env = Env::new(Backend::Sqlite);
    let csv = env.dir.path().join("holders.csv");
    std::fs::write(&csv, cardholder_csv(&[(&zhang, 10_000)])).unwrap();
    env.admin(&["import-cardholders", "--csv", csv.to_str().unwrap()]);
    let server = env.start_server(0, &[]);
    let term = Term::new("COUNTER-9");
    term.register(&env, &server.url, "110100");
    give_record(&term, &zhang, 10_000, AS_OF);
    let rec = record(&term, &mut zhang, &iss.trust, 100).unwrap();
    let (code, out, err) = term.run_agent("once", &server.url, &["--max-attempts", "2"]);
    assert_eq!(code, 2, "{out} {err}");
    assert!(err.contains("503") || err.contains("unavailable"), "{err}");
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 0);
    assert_eq!(
        term.open_ledger()
            .upload_state(rec.entry.seq)
            .unwrap()
            .unwrap()
            .0,
        UploadState::Pending
    );
    // With the trust store, the same entry is booked.
    drop(server);
    let trust = env.dir.path().join("trust.txt");
    std::fs::write(&trust, &iss.trust_text).unwrap();
    let server = Server::start_with(
        &env,
        0,
        &[],
        None,
        &["--ssse-trust", trust.to_str().unwrap()],
    );
    let (code, out, err) = term.run_agent("once", &server.url, &[]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("booked 1"), "{out}");
}

#[test]
fn a_version_5_ledger_upgrades_in_place_and_records_medical_debits_beside_payments() {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let term = Term::new("COUNTER-10");
    {
        let mut c = rusqlite::Connection::open(&term.ledger).unwrap();
        backend_sync::ledger::migrations::migrate_to(&mut c, 5).unwrap();
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('terminal_id', 'COUNTER-10')",
            [],
        )
        .unwrap();
    }
    {
        let c = rusqlite::Connection::open(&term.ledger).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 5);
        assert!(c.prepare("SELECT 1 FROM medical_debits").is_err());
    }
    // Opening it upgrades it in place; card payments and medical debits then sit side by side.
    let mut card = backend_sync::testkit::TestCard::demo_sm4(4).unwrap();
    let ec = term.approved_payment(&mut card, 700);
    let l = term.open_ledger();
    assert_eq!(l.schema_version().unwrap(), 6);
    drop(l);
    give_record(&term, &zhang, 1_000, AS_OF);
    let m = record(&term, &mut zhang, &iss.trust, 900).unwrap();
    let l = term.open_ledger();
    assert_eq!(
        l.entry(ec).unwrap().unwrap().state,
        EntryState::ApprovedOffline
    );
    assert_eq!(
        l.entry(m.entry.seq).unwrap().unwrap().state,
        EntryState::Recorded
    );
    assert_eq!(l.pending_upload(10).unwrap().len(), 2);
}
