//! The terminal ledger on real SQLite files: write-ahead intents and outcomes, append-only
//! enforcement, the state machine, durability settings, migrations, encryption at rest, the
//! hot list, parameters, cardholder records, the upload checkpoint and batches; recovered
//! debits (the card's log proves a debit whose cryptogram never reached the terminal).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;

use backend_sync::entry::{CNY, EntryKind, EntryState, TerminalId, TxnTime};
use backend_sync::field_crypto::FieldKey;
use backend_sync::ledger::{
    Ledger, LedgerError, NewPayment, OperatorFinding, Outcome, UploadState, migrations,
};
use backend_sync::recovery::{EvidenceError, LogRecordData, RecoverySource};
use backend_sync::testkit::{self, TestCard};
use backend_sync::wire::{
    CardholderPage, CardholderRecord, EntryResult, EntryStatus, HotListAction, HotListChange,
    HotListDelta, ParameterSet, RejectReason,
};

const KEY: &str = "000102030405060708090A0B0C0D0E0F";

fn key() -> FieldKey {
    FieldKey::from_hex(KEY).unwrap()
}

fn tid() -> TerminalId {
    "KIOSK-1".parse().unwrap()
}

fn open(path: &Path) -> Ledger {
    Ledger::open(path, &tid(), key()).unwrap()
}

fn payment(card: &TestCard, amount: u64) -> NewPayment {
    NewPayment {
        kind: EntryKind::EcPurchase,
        amount_fen: amount,
        currency: CNY,
        pan: card.pan.clone(),
        psn: card.psn.clone(),
        txn_time: "20250301101500".parse().unwrap(),
    }
}

/// Intent, card command, outcome: what the kernel does.
fn pay(l: &mut Ledger, card: &mut TestCard, amount: u64) -> u64 {
    let p = payment(card, amount);
    let intent = l.begin_payment(&p).unwrap();
    let r = card.generate_ac(0x40, amount, CNY, &p.txn_time, p.kind);
    l.record_outcome(intent.seq, &Outcome::Approved(r)).unwrap();
    intent.seq
}

#[test]
fn intent_is_written_before_the_outcome_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut card = TestCard::demo_sm4(1).unwrap();
    let seq;
    {
        let mut l = open(&path);
        let intent = l.begin_payment(&payment(&card, 150)).unwrap();
        seq = intent.seq;
        assert_eq!(seq, 1);
        let e = l.entry(seq).unwrap().unwrap();
        assert_eq!(e.state, EntryState::Intent);
        assert_eq!(e.idempotency_id, intent.idempotency_id);
        assert_eq!(l.unresolved().unwrap(), vec![1]);
        // Intents are not uploaded.
        assert!(l.pending_upload(10).unwrap().is_empty());
        // The process dies here, between the intent and the card's answer.
    }
    let mut l = open(&path);
    assert_eq!(
        l.unresolved().unwrap(),
        vec![1],
        "the intent survived the restart"
    );
    assert_eq!(l.entry(seq).unwrap().unwrap().state, EntryState::Intent);
    let r = card.generate_ac(
        0x40,
        150,
        CNY,
        &"20250301101500".parse().unwrap(),
        EntryKind::EcPurchase,
    );
    l.record_outcome(seq, &Outcome::Approved(r.clone()))
        .unwrap();
    let e = l.entry(seq).unwrap().unwrap();
    assert_eq!(e.state, EntryState::ApprovedOffline);
    assert_eq!(e.card, Some(r));
    let up = l.pending_upload(10).unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].pan, card.pan, "the PAN is decrypted for upload");
    assert_eq!(up[0].pan_masked, card.pan.masked());
    assert_eq!(
        l.upload_state(seq).unwrap().unwrap().0,
        UploadState::Pending
    );
    assert!(l.unresolved().unwrap().is_empty());
}

#[test]
fn entries_and_outcomes_cannot_be_updated_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut l = open(&path);
    let mut card = TestCard::demo_sm4(2).unwrap();
    pay(&mut l, &mut card, 99);
    let raw = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE entries SET amount_fen = 1",
        "DELETE FROM entries",
        "UPDATE outcomes SET state = 'voided'",
        "DELETE FROM outcomes",
    ] {
        let err = raw.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(l.entry(1).unwrap().unwrap().amount_fen, 99);
}

#[test]
fn state_machine_and_cryptogram_types_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("l.db"));
    let mut card = TestCard::demo_tdes(3).unwrap();
    let t: TxnTime = "20250301101500".parse().unwrap();
    let seq = l.begin_payment(&payment(&card, 10)).unwrap().seq;
    let aac = card.generate_ac(0x00, 10, CNY, &t, EntryKind::EcPurchase);
    let tc = card.generate_ac(0x40, 10, CNY, &t, EntryKind::EcPurchase);
    // An AAC cannot approve, a TC cannot decline.
    assert!(matches!(
        l.record_outcome(seq, &Outcome::Approved(aac.clone())),
        Err(LedgerError::CryptogramType { .. })
    ));
    assert!(matches!(
        l.record_outcome(seq, &Outcome::Declined(tc.clone())),
        Err(LedgerError::CryptogramType { .. })
    ));
    // Card pulled: unknown; then recovered as approved.
    l.record_outcome(seq, &Outcome::Unknown).unwrap();
    assert_eq!(l.unresolved().unwrap(), vec![seq]);
    l.record_outcome(seq, &Outcome::Approved(tc)).unwrap();
    // Final is final.
    assert!(matches!(
        l.record_outcome(seq, &Outcome::Voided { note: "x".into() }),
        Err(LedgerError::Transition {
            from: "approved_offline",
            to: "voided",
            ..
        })
    ));
    assert!(matches!(
        l.record_outcome(99, &Outcome::Unknown),
        Err(LedgerError::NoSuchEntry(99))
    ));
    // Declined and voided are final and queued; voided carries no card result.
    let s2 = l.begin_payment(&payment(&card, 11)).unwrap().seq;
    l.record_outcome(s2, &Outcome::Declined(aac)).unwrap();
    let s3 = l.begin_payment(&payment(&card, 12)).unwrap().seq;
    l.record_outcome(
        s3,
        &Outcome::Voided {
            note: "reader error before GENERATE AC".into(),
        },
    )
    .unwrap();
    let up = l.pending_upload(10).unwrap();
    assert_eq!(
        up.iter().map(|e| (e.seq, e.state)).collect::<Vec<_>>(),
        vec![
            (seq, EntryState::ApprovedOffline),
            (s2, EntryState::Declined),
            (s3, EntryState::Voided)
        ]
    );
    assert!(up[2].card.is_none());
    // Amount out of range is refused before anything is written.
    assert!(matches!(
        l.begin_payment(&payment(&card, 0)),
        Err(LedgerError::Amount)
    ));
    assert!(matches!(
        l.begin_payment(&payment(&card, 1_000_000_000_000)),
        Err(LedgerError::Amount)
    ));
    assert_eq!(l.entries().unwrap().len(), 3);
}

#[test]
fn durability_pragmas_are_wal_and_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let l = open(&path);
    assert_eq!(l.pragma_text("journal_mode").unwrap(), "wal");
    assert_eq!(l.pragma_text("synchronous").unwrap(), "2", "2 = FULL");
    assert!(l.integrity_ok().unwrap());
}

#[test]
fn sequence_numbers_are_unique_and_gapless_across_two_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    drop(open(&path));
    let handles: Vec<_> = (0..2)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut l = open(&path);
                let card = TestCard::demo_sm4(10 + w).unwrap();
                (0..25)
                    .map(|_| l.begin_payment(&payment(&card, 5)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_by_key(|i| i.seq);
    assert_eq!(
        all.iter().map(|i| i.seq).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>()
    );
    let mut ids: Vec<_> = all.iter().map(|i| i.idempotency_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
}

#[test]
fn personal_fields_are_not_in_the_file_in_clear_and_need_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let mut card = TestCard::demo_sm4(4242).unwrap();
    {
        let mut l = open(&path);
        pay(&mut l, &mut card, 500);
        l.apply_cardholders(&page(0, vec![record("110105198703073011", "张三", 1)]))
            .unwrap();
        l.apply_hotlist(&delta(
            0,
            vec![(1, "6217000000000009999", HotListAction::Add)],
        ))
        .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(w) = std::fs::read(dir.path().join("l.db-wal")) {
        bytes.extend(w);
    }
    let hay = String::from_utf8_lossy(&bytes);
    assert!(!hay.contains(card.pan.expose()), "PAN in clear");
    assert!(!hay.contains("110105198703073011"), "SSN in clear");
    assert!(!hay.contains("张三"), "name in clear");
    assert!(
        !hay.contains("6217000000000009999"),
        "hot-listed PAN in clear"
    );
    // Another key opens the file but cannot read the personal fields.
    let other = Ledger::open(
        &path,
        &tid(),
        FieldKey::from_hex("FF0102030405060708090A0B0C0D0E0F").unwrap(),
    )
    .unwrap();
    assert!(matches!(
        other.pending_upload(10),
        Err(LedgerError::FieldCrypto(_))
    ));
    assert!(matches!(
        other.cardholder_by_ssn("110105198703073011"),
        Ok(None)
    ));
}

#[test]
fn another_terminals_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    drop(open(&path));
    let err = Ledger::open(&path, &"OTHER".parse().unwrap(), key()).unwrap_err();
    assert!(matches!(err, LedgerError::WrongTerminal { .. }), "{err}");
}

#[test]
fn migrations_upgrade_an_old_file_and_refuse_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let mut c = rusqlite::Connection::open(&path).unwrap();
        migrations::migrate_to(&mut c, 1).unwrap();
        assert_eq!(migrations::version(&c).unwrap(), 1);
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('hotlist_version', '7')",
            [],
        )
        .unwrap();
    }
    let l = open(&path);
    assert_eq!(l.schema_version().unwrap(), migrations::latest());
    assert_eq!(
        l.hotlist_version().unwrap(),
        7,
        "data kept across the migration"
    );
    drop(l);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", migrations::latest() + 1)
            .unwrap();
    }
    let err = Ledger::open(&path, &tid(), key()).unwrap_err();
    assert!(matches!(err, LedgerError::SchemaTooNew { .. }), "{err}");
}

fn delta(from: u64, changes: Vec<(u64, &str, HotListAction)>) -> HotListDelta {
    let to = changes.iter().map(|c| c.0).max().unwrap_or(from);
    HotListDelta {
        from_version: from,
        to_version: to,
        changes: changes
            .into_iter()
            .map(|(version, pan, action)| HotListChange {
                version,
                pan: pan.parse().unwrap(),
                action,
                reason: "lost".into(),
            })
            .collect(),
    }
}

#[test]
fn hot_list_deltas_apply_atomically_in_order_and_block_payments() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("l.db"));
    let card = TestCard::demo_sm4(77).unwrap();
    let pan = card.pan.expose().to_string();
    l.apply_hotlist(&delta(
        0,
        vec![
            (1, &pan, HotListAction::Add),
            (2, "6217000000000000002", HotListAction::Add),
        ],
    ))
    .unwrap();
    assert_eq!(l.hotlist_version().unwrap(), 2);
    assert_eq!(l.hotlist_len().unwrap(), 2);
    let err = l.begin_payment(&payment(&card, 100)).unwrap_err();
    assert!(
        matches!(err, LedgerError::CardHotListed { ref reason } if reason == "lost"),
        "{err}"
    );
    assert!(
        l.entries().unwrap().is_empty(),
        "nothing written for a hot card"
    );
    // A delta from the wrong version changes nothing.
    let err = l
        .apply_hotlist(&delta(5, vec![(6, &pan, HotListAction::Remove)]))
        .unwrap_err();
    assert!(matches!(
        err,
        LedgerError::HotListVersion {
            have: 2,
            delta_from: 5
        }
    ));
    // Out-of-order changes are refused whole.
    let mut bad = delta(
        2,
        vec![
            (4, &pan, HotListAction::Remove),
            (3, "6217000000000000003", HotListAction::Add),
        ],
    );
    bad.to_version = 4;
    assert!(matches!(
        l.apply_hotlist(&bad),
        Err(LedgerError::HotListOrder)
    ));
    assert_eq!(l.hotlist_len().unwrap(), 2);
    assert_eq!(l.hotlist_version().unwrap(), 2);
    // Removal lets the card pay again.
    l.apply_hotlist(&delta(2, vec![(3, &pan, HotListAction::Remove)]))
        .unwrap();
    assert_eq!(l.hotlist_version().unwrap(), 3);
    assert!(l.begin_payment(&payment(&card, 100)).is_ok());
}

#[test]
fn parameters_are_replaced_only_by_a_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("l.db"));
    let set = |v: u64, pairs: &[(&str, &str)]| ParameterSet {
        version: v,
        params: pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    assert!(
        l.apply_parameters(&set(2, &[("ec_floor_limit", "100000"), ("x", "1")]))
            .unwrap()
    );
    assert!(
        !l.apply_parameters(&set(1, &[("ec_floor_limit", "5")]))
            .unwrap()
    );
    assert_eq!(
        l.parameter("ec_floor_limit").unwrap().as_deref(),
        Some("100000")
    );
    assert!(
        l.apply_parameters(&set(3, &[("ec_floor_limit", "200000")]))
            .unwrap()
    );
    assert_eq!(l.parameter("x").unwrap(), None, "replaced whole");
    assert_eq!(l.sync_summary().unwrap().params_version, 3);
}

fn record(ssn: &str, name: &str, version: u64) -> CardholderRecord {
    CardholderRecord {
        ssn: ssn.into(),
        name: name.into(),
        card_no: format!("A{}", &ssn[10..]),
        region: "110100".parse().unwrap(),
        insurance_status: "active".into(),
        contribution_months: 120,
        medical_balance_fen: 123_456,
        as_of: "20250301000000".parse().unwrap(),
        version,
    }
}

fn page(from: u64, records: Vec<CardholderRecord>) -> CardholderPage {
    let to = records.iter().map(|r| r.version).max().unwrap_or(from);
    CardholderPage {
        from_version: from,
        to_version: to,
        records,
        more: false,
    }
}

#[test]
fn cardholder_records_answer_offline_queries() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("l.db"));
    assert!(
        l.apply_cardholders(&page(
            0,
            vec![
                record("110105198703073011", "张三", 1),
                record("110105199001011234", "李四", 2)
            ]
        ))
        .unwrap()
    );
    let r = l.cardholder_by_ssn("110105198703073011").unwrap().unwrap();
    assert_eq!(r.name, "张三");
    assert_eq!(r.medical_balance_fen, 123_456);
    assert_eq!(
        l.cardholder_by_card("A03073011").unwrap().unwrap().name,
        "张三"
    );
    assert!(l.cardholder_by_ssn("000000000000000000").unwrap().is_none());
    // A newer version of a record replaces it; a page from the wrong version is ignored.
    let mut newer = record("110105198703073011", "张三", 3);
    newer.medical_balance_fen = 1;
    assert!(!l.apply_cardholders(&page(1, vec![newer.clone()])).unwrap());
    assert!(l.apply_cardholders(&page(2, vec![newer])).unwrap());
    assert_eq!(
        l.cardholder_by_ssn("110105198703073011")
            .unwrap()
            .unwrap()
            .medical_balance_fen,
        1
    );
    assert_eq!(l.cardholder_count().unwrap(), 2);
}

#[test]
fn results_are_stored_once_and_stale_entries_go_to_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("l.db"));
    let mut card = TestCard::demo_sm4(5).unwrap();
    let a = pay(&mut l, &mut card, 1);
    let b = pay(&mut l, &mut card, 2);
    let c = pay(&mut l, &mut card, 3);
    let up = l.pending_upload(10).unwrap();
    let res = vec![
        EntryResult {
            seq: a,
            idempotency_id: up[0].idempotency_id,
            status: EntryStatus::Booked,
            reason: None,
        },
        EntryResult {
            seq: b,
            idempotency_id: up[1].idempotency_id,
            status: EntryStatus::Rejected,
            reason: Some(RejectReason::CryptogramInvalid),
        },
    ];
    l.store_results(&res).unwrap();
    l.store_results(&res).unwrap();
    assert_eq!(l.upload_state(a).unwrap().unwrap().0, UploadState::Booked);
    assert_eq!(
        l.upload_state(b).unwrap().unwrap(),
        (UploadState::Rejected, Some("cryptogram_invalid".into()))
    );
    assert_eq!(l.pending_upload(10).unwrap().len(), 1);
    // Entry c is older than the allowed age by a clock one day ahead: dead letter, not sent.
    let moved = l
        .expire_stale(3600, backend_sync::clock::unix_now() + 86_400)
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(l.upload_state(c).unwrap().unwrap().0, UploadState::Dead);
    assert!(l.pending_upload(10).unwrap().is_empty());
    let s = l.sync_summary().unwrap();
    assert_eq!((s.pending, s.booked, s.rejected, s.dead), (0, 1, 1, 1));
}

#[test]
fn batches_close_with_totals_of_approved_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("l.db"));
    let mut card = TestCard::demo_sm4(6).unwrap();
    let a = pay(&mut l, &mut card, 100);
    let b = pay(&mut l, &mut card, 250);
    let p = NewPayment {
        kind: EntryKind::Refund,
        ..payment(&card, 30)
    };
    let i = l.begin_payment(&p).unwrap();
    let r = card.generate_ac(0x40, 30, CNY, &p.txn_time, EntryKind::Refund);
    l.record_outcome(i.seq, &Outcome::Approved(r)).unwrap();
    let open_intent = l.begin_payment(&payment(&card, 7)).unwrap();
    assert_eq!(l.current_batch().unwrap(), 1);
    assert_eq!(l.close_batch().unwrap(), 1);
    assert_eq!(l.current_batch().unwrap(), 2);
    let (t, seqs) = l.batch_totals(1).unwrap();
    assert_eq!(
        (
            t.debit_count,
            t.debit_amount,
            t.credit_count,
            t.credit_amount
        ),
        (2, 350, 1, 30)
    );
    assert_eq!(seqs, vec![a, b, i.seq]);
    // Not ready: entries pending upload and one unresolved intent.
    assert!(l.batches_ready_to_close().unwrap().is_empty());
    l.record_outcome(
        open_intent.seq,
        &Outcome::Voided {
            note: "cancelled".into(),
        },
    )
    .unwrap();
    let up = l.pending_upload(10).unwrap();
    let res: Vec<_> = up
        .iter()
        .map(|e| EntryResult {
            seq: e.seq,
            idempotency_id: e.idempotency_id,
            status: EntryStatus::Booked,
            reason: None,
        })
        .collect();
    l.store_results(&res).unwrap();
    assert_eq!(l.batches_ready_to_close().unwrap(), vec![1]);
    let next = l.begin_payment(&payment(&card, 1)).unwrap();
    assert_eq!(next.batch_no, 2);
}

/// What the kernel does when the card is pulled after GENERATE AC: the intent, then (at the
/// next insert) the card's log shows the debit. `via_unknown` first records the pull.
fn torn(l: &mut Ledger, card: &mut TestCard, amount: u64, via_unknown: bool) -> (u64, Outcome) {
    let p = payment(card, amount);
    let seq = l.begin_payment(&p).unwrap().seq;
    if via_unknown {
        l.record_outcome(seq, &Outcome::Unknown).unwrap();
    }
    let mut r = card.torn_debit(amount, CNY, &p.txn_time, p.kind);
    r.evidence.balance_before_fen = Some(10_000);
    r.evidence.balance_after_fen = Some(10_000 - amount);
    let o = Outcome::Recovered(r);
    l.record_outcome(seq, &o).unwrap();
    (seq, o)
}

#[test]
fn recovered_debits_from_intent_and_unknown_are_final_upload_with_evidence_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let mut card = TestCard::demo_sm4(7001).unwrap();
    let approved;
    let (from_intent, from_unknown, unclear);
    let (ev_intent, ev_unknown);
    {
        let mut l = open(&path);
        approved = pay(&mut l, &mut card, 40);
        (from_intent, ev_intent) = torn(&mut l, &mut card, 150, false);
        (from_unknown, ev_unknown) = torn(&mut l, &mut card, 275, true);
        // An unclear recovery: the entry stays unknown, with the note, twice over.
        let p = payment(&card, 99);
        unclear = l.begin_payment(&p).unwrap().seq;
        l.record_outcome(
            unclear,
            &Outcome::Unclear {
                note: "BalanceMoved: 10000 -> 9000".into(),
            },
        )
        .unwrap();
        l.record_outcome(
            unclear,
            &Outcome::Unclear {
                note: "still unclear at the second insert".into(),
            },
        )
        .unwrap();
        // Recovered is final: nothing follows it.
        for o in [
            Outcome::Voided { note: "x".into() },
            Outcome::Unknown,
            Outcome::Unclear { note: "x".into() },
            ev_intent.clone(),
        ] {
            assert!(
                matches!(
                    l.record_outcome(from_intent, &o),
                    Err(LedgerError::Transition {
                        from: "recovered",
                        ..
                    })
                ),
                "{o:?}"
            );
        }
        // A plain `unknown` does not follow `unknown`; an unclear note does.
        assert!(matches!(
            l.record_outcome(unclear, &Outcome::Unknown),
            Err(LedgerError::Transition { .. })
        ));
    }
    // Reopened: the evidence is as recorded, the unclear entry still waits with its last note.
    let l = open(&path);
    let e = l.entry(from_intent).unwrap().unwrap();
    assert_eq!(e.state, EntryState::Recovered);
    assert!(e.card.is_none());
    let Outcome::Recovered(want) = &ev_intent else {
        unreachable!()
    };
    assert_eq!(e.recovered.as_ref(), Some(want));
    assert_eq!(
        want.evidence.log_record.as_ref().unwrap().atc(),
        Some(want.atc)
    );
    let u = l.entry(unclear).unwrap().unwrap();
    assert_eq!(u.state, EntryState::Unknown);
    assert_eq!(
        u.note.as_deref(),
        Some("still unclear at the second insert")
    );
    assert_eq!(l.unresolved().unwrap(), vec![unclear]);
    // Both recovered entries are queued and upload with their evidence, no card result.
    let up = l.pending_upload(10).unwrap();
    assert_eq!(
        up.iter().map(|e| (e.seq, e.state)).collect::<Vec<_>>(),
        vec![
            (approved, EntryState::ApprovedOffline),
            (from_intent, EntryState::Recovered),
            (from_unknown, EntryState::Recovered)
        ]
    );
    let Outcome::Recovered(want_u) = &ev_unknown else {
        unreachable!()
    };
    assert_eq!(up[2].recovered.as_ref(), Some(want_u));
    assert!(up[1].card.is_none() && up[0].recovered.is_none());
    assert_eq!(up[1].pan, card.pan, "the PAN comes from the sealed column");
    // Batch figures: recovered debits apart from the approved totals.
    let (t, seqs) = l.batch_totals(1).unwrap();
    assert_eq!(
        (t.debit_count, t.debit_amount, seqs),
        (1, 40, vec![approved])
    );
    let (r, rseqs) = l.batch_recovered(1).unwrap();
    assert_eq!((r.count, r.amount), (2, 425));
    assert_eq!(rseqs, vec![from_intent, from_unknown]);
}

#[test]
fn recovered_evidence_must_agree_with_the_entry_or_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("l.db"));
    let mut card = TestCard::demo_tdes(7002).unwrap();
    let p = payment(&card, 500);
    let seq = l.begin_payment(&p).unwrap().seq;
    let good = card.torn_debit(500, CNY, &p.txn_time, p.kind);
    let refused = |l: &mut Ledger, o: Outcome| match l.record_outcome(seq, &o) {
        Err(LedgerError::Evidence { source, .. }) => source,
        other => panic!("{other:?}"),
    };
    let mut amount = good.clone();
    amount.evidence.log_record = Some(testkit::log_record(501, CNY, &p.txn_time, p.kind, good.atc));
    assert_eq!(
        refused(&mut l, Outcome::Recovered(amount)),
        EvidenceError::Amount
    );
    let mut atc = good.clone();
    atc.atc += 1;
    atc.evidence.atc_after = Some(atc.atc);
    assert_eq!(refused(&mut l, Outcome::Recovered(atc)), EvidenceError::Atc);
    let mut pan = good.clone();
    let mut fields = pan.evidence.log_record.unwrap().fields().to_vec();
    let mut bcd = card.pan.expose().to_string();
    if bcd.len() % 2 == 1 {
        bcd.push('F');
    }
    fields.push((0x5A, hex::decode(bcd).unwrap()));
    pan.evidence.log_record = Some(LogRecordData::from_fields(fields));
    assert_eq!(
        refused(&mut l, Outcome::Recovered(pan)),
        EvidenceError::PersonalData(0x5A)
    );
    let mut note = good.clone();
    note.evidence.note = Some(format!("card {}", card.pan.expose()));
    assert_eq!(
        refused(&mut l, Outcome::Recovered(note)),
        EvidenceError::Note
    );
    assert_eq!(
        refused(
            &mut l,
            Outcome::Unclear {
                note: format!("card {}", card.pan.expose())
            }
        ),
        EvidenceError::Note
    );
    // A refund is not a debit.
    let rp = NewPayment {
        kind: EntryKind::Refund,
        ..payment(&card, 20)
    };
    let refund = l.begin_payment(&rp).unwrap().seq;
    let r = card.torn_debit(20, CNY, &rp.txn_time, EntryKind::Refund);
    assert!(matches!(
        l.record_outcome(refund, &Outcome::Recovered(r)),
        Err(LedgerError::Evidence {
            source: EvidenceError::NotADebit,
            ..
        })
    ));
    // Nothing of that was written; the good evidence is.
    assert_eq!(l.entry(seq).unwrap().unwrap().state, EntryState::Intent);
    assert!(l.pending_upload(10).unwrap().is_empty());
    l.record_outcome(seq, &Outcome::Recovered(good)).unwrap();
    assert_eq!(l.entry(seq).unwrap().unwrap().state, EntryState::Recovered);
}

#[test]
fn the_schema_itself_refuses_outcomes_the_state_machine_does_not_allow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let mut l = open(&path);
    let mut card = TestCard::demo_sm4(7003).unwrap();
    let approved = pay(&mut l, &mut card, 10);
    let open_seq = l.begin_payment(&payment(&card, 11)).unwrap().seq;
    let raw = rusqlite::Connection::open(&path).unwrap();
    let insert = |seq: u64, state: &str, atc: Option<i64>, note: Option<&str>, ev: Option<&str>| {
        raw.execute(
            "INSERT INTO outcomes (seq, state, atc, note, evidence, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            rusqlite::params![seq as i64, state, atc, note, ev],
        )
        .map_err(|e| e.to_string())
    };
    let ev = r#"{"source":"operator","note":"by hand"}"#;
    for (seq, state, atc, note, evidence, why) in [
        (open_seq, "bogus", None, None, None, "state unknown"),
        (open_seq, "intent", None, None, None, "state unknown"),
        (
            approved,
            "voided",
            None,
            Some("x"),
            None,
            "not allowed after",
        ),
        (
            approved,
            "recovered",
            Some(5),
            None,
            Some(ev),
            "not allowed after",
        ),
        (
            open_seq,
            "recovered",
            Some(5),
            None,
            None,
            "needs its ATC and evidence",
        ),
        (
            open_seq,
            "recovered",
            None,
            None,
            Some(ev),
            "needs its ATC and evidence",
        ),
        (
            open_seq,
            "voided",
            None,
            None,
            Some(ev),
            "needs its ATC and evidence",
        ),
    ] {
        let err = insert(seq, state, atc, note, evidence).unwrap_err();
        assert!(err.contains(why), "{state} on {seq}: {err}");
    }
    insert(open_seq, "unknown", None, None, None).unwrap();
    let err = insert(open_seq, "unknown", None, None, None).unwrap_err();
    assert!(err.contains("not allowed after"), "{err}");
    insert(open_seq, "unknown", None, Some("unclear"), None).unwrap();
    insert(open_seq, "recovered", Some(5), None, Some(ev)).unwrap();
    let err = insert(open_seq, "unknown", None, Some("again"), None).unwrap_err();
    assert!(err.contains("not allowed after"), "{err}");
    assert_eq!(
        l.entry(open_seq).unwrap().unwrap().state,
        EntryState::Recovered
    );
}

#[test]
fn recovered_evidence_puts_no_pan_in_the_file_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let mut card = TestCard::demo_sm4(7004).unwrap();
    {
        let mut l = open(&path);
        torn(&mut l, &mut card, 321, true);
        let seq = l.begin_payment(&payment(&card, 5)).unwrap().seq;
        l.record_outcome(
            seq,
            &Outcome::Unclear {
                note: "log unreadable".into(),
            },
        )
        .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(w) = std::fs::read(dir.path().join("l.db-wal")) {
        bytes.extend(w);
    }
    let hay = String::from_utf8_lossy(&bytes);
    assert!(hay.contains("torn_debit"), "the evidence is in the file");
    let pan = card.pan.expose();
    assert!(!hay.contains(pan), "PAN in clear");
    // Nor as BCD in the log record's hex (5A would be refused anyway).
    assert!(
        !hay.to_uppercase().contains(&pan[..16]),
        "PAN digits in hex"
    );
}

#[test]
fn an_operator_settles_what_recovery_left_unclear() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("l.db"));
    let card = TestCard::demo_sm4(7005).unwrap();
    let p = payment(&card, 800);
    let a = l.begin_payment(&p).unwrap().seq;
    let b = l.begin_payment(&p).unwrap().seq;
    for s in [a, b] {
        l.record_outcome(
            s,
            &Outcome::Unclear {
                note: "Ambiguous(2)".into(),
            },
        )
        .unwrap();
    }
    assert!(matches!(
        l.resolve_by_operator(a, &OperatorFinding::NotDebited, " "),
        Err(LedgerError::Evidence {
            source: EvidenceError::MissingNote,
            ..
        })
    ));
    assert_eq!(
        l.resolve_by_operator(a, &OperatorFinding::NotDebited, "log printed at counter 2")
            .unwrap(),
        EntryState::Voided
    );
    let atc = card.atc;
    let log = testkit::log_record(800, CNY, &p.txn_time, p.kind, atc);
    // The log record must agree with the ATC given.
    assert!(matches!(
        l.resolve_by_operator(
            b,
            &OperatorFinding::Debited {
                atc: atc + 1,
                log_record: Some(log.clone())
            },
            "log printed at counter 2"
        ),
        Err(LedgerError::Evidence {
            source: EvidenceError::Atc,
            ..
        })
    ));
    assert_eq!(
        l.resolve_by_operator(
            b,
            &OperatorFinding::Debited {
                atc,
                log_record: Some(log)
            },
            "log printed at counter 2"
        )
        .unwrap(),
        EntryState::Recovered
    );
    let e = l.entry(b).unwrap().unwrap();
    let r = e.recovered.unwrap();
    assert_eq!(r.evidence.source, RecoverySource::Operator);
    assert_eq!(r.evidence.note.as_deref(), Some("log printed at counter 2"));
    assert!(l.unresolved().unwrap().is_empty());
    // Settled is settled.
    assert!(matches!(
        l.resolve_by_operator(a, &OperatorFinding::NotDebited, "again"),
        Err(LedgerError::Transition { .. })
    ));
}

#[test]
fn a_version_2_file_with_an_unknown_entry_upgrades_and_the_entry_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let mut card = TestCard::demo_sm4(7006).unwrap();
    let t: TxnTime = "20250301101500".parse().unwrap();
    {
        // A file as version 2 of the code left it: an intent whose card was pulled.
        let mut c = rusqlite::Connection::open(&path).unwrap();
        migrations::migrate_to(&mut c, 2).unwrap();
        assert_eq!(migrations::version(&c).unwrap(), 2);
        let k = key();
        let pan = card.pan.expose();
        c.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('terminal_id', 'KIOSK-1');
             INSERT INTO batches (batch_no, state, opened_at) VALUES (1, 'open', 0);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO entries (seq, idempotency_id, batch_no, kind, amount_fen, currency,
                pan_masked, pan_index, pan_enc, psn_enc, txn_time, created_at)
             VALUES (1, '000102030405060708090a0b0c0d0e0f', 1, 'ec_purchase', 640, 156, ?1, ?2,
                ?3, ?4, ?5, 0)",
            rusqlite::params![
                card.pan.masked(),
                k.blind_index("pan", pan).to_vec(),
                k.seal_str(b"entries.pan:1", pan).unwrap(),
                k.seal_str(b"entries.psn:1", card.psn.as_str()).unwrap(),
                t.as_str()
            ],
        )
        .unwrap();
        c.execute(
            "INSERT INTO outcomes (seq, state, recorded_at) VALUES (1, 'unknown', 0)",
            [],
        )
        .unwrap();
    }
    let mut l = open(&path);
    assert_eq!(l.schema_version().unwrap(), migrations::latest());
    assert_eq!(migrations::latest(), 6);
    assert_eq!(l.unresolved().unwrap(), vec![1]);
    let r = card.torn_debit(640, CNY, &t, EntryKind::EcPurchase);
    l.record_outcome(1, &Outcome::Recovered(r.clone())).unwrap();
    let up = l.pending_upload(10).unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].state, EntryState::Recovered);
    assert_eq!(up[0].recovered.as_ref(), Some(&r));
    assert_eq!(up[0].pan, card.pan);
    // The new triggers guard the upgraded file too.
    drop(l);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let err = raw
        .execute(
            "INSERT INTO outcomes (seq, state, recorded_at) VALUES (1, 'voided', 0)",
            [],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("not allowed after"), "{err}");
}

fn facts(card: &str, atc: u16) -> backend_sync::ledger::RecoveryFacts {
    backend_sync::ledger::RecoveryFacts {
        card: card.to_string(),
        atc_before: Some(atc),
        balance_before_fen: Some(50_000),
        date_bcd: [0x26, 0x11, 0x28],
        time_bcd: [0x15, 0x30, 0x00],
    }
}

#[test]
fn recovery_facts_are_written_with_the_intent_and_found_by_card_until_final() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut l = open(&path);
    let mut card = TestCard::demo_sm4(7).unwrap();
    let card_id = "D156000005A1B2C3D4E5F60718";

    // Two intents of one card, one of another; the first of ours is pulled (unknown).
    let a = l
        .begin_payment_with(&payment(&card, 2_000), Some(&facts(card_id, 5)))
        .unwrap()
        .seq;
    l.record_outcome(a, &Outcome::Unknown).unwrap();
    let other = l
        .begin_payment_with(&payment(&card, 700), Some(&facts("ANOTHER-CARD", 9)))
        .unwrap()
        .seq;
    let b = l
        .begin_payment_with(&payment(&card, 1_500), Some(&facts(card_id, 6)))
        .unwrap()
        .seq;
    // An intent without facts is not found by any card.
    let _plain = l.begin_payment(&payment(&card, 100)).unwrap().seq;

    let pending = l.pending_recovery(card_id).unwrap();
    assert_eq!(
        pending.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![a, b],
        "oldest first, only this card's"
    );
    assert_eq!(pending[0].amount_fen, 2_000);
    assert_eq!(pending[0].atc_before, Some(5));
    assert_eq!(pending[0].balance_before_fen, Some(50_000));
    assert_eq!(pending[0].date_bcd, [0x26, 0x11, 0x28]);
    assert_eq!(pending[0].time_bcd, [0x15, 0x30, 0x00]);
    assert_eq!(
        l.pending_recovery("ANOTHER-CARD")
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect::<Vec<_>>(),
        vec![other]
    );

    // Final outcomes take entries out; an unclear one stays for the next insert.
    let p = payment(&card, 1_500);
    let r = card.generate_ac(0x40, 1_500, CNY, &p.txn_time, p.kind);
    l.record_outcome(b, &Outcome::Approved(r)).unwrap();
    l.record_outcome(
        a,
        &Outcome::Unclear {
            note: "log unreadable".into(),
        },
    )
    .unwrap();
    drop(l);

    // The facts survive reopening; the card's identity is not in the file in clear.
    let l = open(&path);
    assert_eq!(
        l.pending_recovery(card_id)
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect::<Vec<_>>(),
        vec![a]
    );
    drop(l);
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
    for b in [&bytes, &wal] {
        assert!(
            !b.windows(card_id.len()).any(|w| w == card_id.as_bytes()),
            "card identity in clear"
        );
    }

    // Append-only.
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert!(
        conn.execute("UPDATE intent_facts SET atc_before = 1", [])
            .is_err()
    );
    assert!(conn.execute("DELETE FROM intent_facts", []).is_err());
}

#[test]
fn a_client_reference_is_written_with_the_intent_and_debits_at_most_once() {
    use backend_sync::ledger::{ClientRef, RefLookup};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut l = open(&path);
    let mut card = TestCard::demo_sm4(7).unwrap();
    let first = ClientRef {
        reference: "POS-0001/42",
        request: "2500\nAmoxicillin",
    };
    assert_eq!(l.lookup_reference(&first).unwrap(), RefLookup::Unused);
    let seq = l
        .begin_payment_referenced(&payment(&card, 2_500), Some(&facts("CARD-1", 3)), &first)
        .unwrap()
        .seq;
    // The reference names its entry from the intent on, before any outcome.
    match l.lookup_reference(&first).unwrap() {
        RefLookup::Same(e) => {
            assert_eq!(e.seq, seq);
            assert_eq!(e.state, EntryState::Intent);
        }
        other => panic!("expected the same request, got {other:?}"),
    }
    // A second intent with the reference is refused and writes nothing.
    let again = l.begin_payment_referenced(&payment(&card, 2_500), None, &first);
    assert!(
        matches!(again, Err(LedgerError::ReferenceUsed { seq: s }) if s == seq),
        "{again:?}"
    );
    assert_eq!(l.entries().unwrap().len(), 1);
    // The same reference with another request is told apart.
    let other = ClientRef {
        reference: "POS-0001/42",
        request: "9900\nAmoxicillin",
    };
    assert_eq!(
        l.lookup_reference(&other).unwrap(),
        RefLookup::Different { seq }
    );
    // The outcome shows through the reference, also after reopening.
    let p = payment(&card, 2_500);
    let r = card.generate_ac(0x40, 2_500, CNY, &p.txn_time, p.kind);
    l.record_outcome(seq, &Outcome::Approved(r)).unwrap();
    drop(l);
    let l = open(&path);
    let e = l.entry_by_reference("POS-0001/42").unwrap().unwrap();
    assert_eq!((e.seq, e.state), (seq, EntryState::ApprovedOffline));
    assert_eq!(l.entry_by_reference("POS-0001/43").unwrap(), None);
    assert_eq!(
        l.client_references().unwrap(),
        BTreeMap::from([(seq, "POS-0001/42".to_string())])
    );
    // The request is not in the file in clear; references cannot be changed or removed.
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(11).any(|w| w == b"Amoxicillin"));
    drop(l);
    let raw = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE client_refs SET reference = 'X'",
        "DELETE FROM client_refs",
    ] {
        let err = raw.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{err}");
    }
}

#[test]
fn a_malformed_client_reference_is_refused_before_the_intent() {
    use backend_sync::ledger::ClientRef;
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir.path().join("ledger.db"));
    let card = TestCard::demo_sm4(7).unwrap();
    let long = "R".repeat(65);
    for bad in ["", "has space", "名字", long.as_str(), "a\nb"] {
        let r = l.begin_payment_referenced(
            &payment(&card, 100),
            None,
            &ClientRef {
                reference: bad,
                request: "100",
            },
        );
        assert!(matches!(r, Err(LedgerError::Reference)), "{bad:?}: {r:?}");
    }
    assert!(l.entries().unwrap().is_empty());
    let ok = "R".repeat(64);
    l.begin_payment_referenced(
        &payment(&card, 100),
        None,
        &ClientRef {
            reference: &ok,
            request: "100",
        },
    )
    .unwrap();
}
