//! Property tests of every parser of outside bytes: the sync messages, the signature headers,
//! the MACed data. Arbitrary bytes are refused or parsed, never a panic; valid messages survive
//! a round trip; mutated valid messages are refused with a typed error or parse to something
//! that itself round-trips. Uploads include medical debits with their card evidence.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use backend_sync::entry::{
    CardResult, EntryKind, EntryState, HexArray, IdempotencyId, MacData, UploadEntry,
};
use backend_sync::medical;
use backend_sync::recovery::{Recovered, RecoveryEvidence, RecoverySource};
use backend_sync::signing::{RequestAuth, sign_request};
use backend_sync::testkit;
use backend_sync::wire::{
    self, BatchCloseRequest, CardholderPage, HotListDelta, Message, ParameterSet, RegisterRequest,
    SignedEnvelope, UploadRequest, UploadResponse, WireError,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn arb_entry() -> impl Strategy<Value = UploadEntry> {
    (
        1u64..1_000_000,
        any::<[u8; 16]>(),
        1u32..100,
        prop_oneof![
            Just(EntryKind::EcPurchase),
            Just(EntryKind::Purchase),
            Just(EntryKind::Refund)
        ],
        prop_oneof![
            Just(EntryState::ApprovedOffline),
            Just(EntryState::Declined),
            Just(EntryState::Voided)
        ],
        1u64..1_000_000_000,
        "[0-9]{12,19}",
        "[0-9]{2}",
        (
            2000u32..2099,
            1u32..=12,
            1u32..=28,
            0u32..24,
            0u32..60,
            0u32..60,
        ),
        proptest::option::of((
            any::<u16>(),
            any::<u8>(),
            any::<[u8; 8]>(),
            proptest::collection::vec(any::<u8>(), 1..64),
        )),
        proptest::option::of((any::<u16>(), proptest::option::of(any::<u16>()))),
    )
        .prop_map(
            |(seq, id, batch, kind, state, amount, pan, psn, (y, mo, d, h, mi, s), card, rec)| {
                let txn_time: backend_sync::entry::TxnTime =
                    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
                        .parse()
                        .unwrap();
                let pan: backend_sync::entry::Pan = pan.parse().unwrap();
                UploadEntry {
                    terminal_id: "T-1".parse().unwrap(),
                    seq,
                    idempotency_id: IdempotencyId::from_bytes(id),
                    batch_no: batch,
                    kind,
                    state,
                    amount_fen: amount,
                    currency: 156,
                    pan_masked: pan.masked(),
                    pan,
                    psn: psn.parse().unwrap(),
                    recovered: rec.map(|(atc, before)| Recovered {
                        atc,
                        evidence: RecoveryEvidence {
                            source: RecoverySource::TornDebit,
                            log_record: Some(testkit::log_record(
                                amount, 156, &txn_time, kind, atc,
                            )),
                            atc_before: before,
                            atc_after: Some(atc),
                            balance_before_fen: None,
                            balance_after_fen: None,
                            note: None,
                        },
                    }),
                    txn_time,
                    card: card.map(|(atc, cid, ac, data)| CardResult {
                        atc,
                        cid: HexArray([cid]),
                        cryptogram: HexArray(ac),
                        algorithm: backend_sync::entry::Algorithm::Sm4,
                        mac_data: MacData(data),
                    }),
                    medical: None,
                }
            },
        )
}

/// A medical debit: its identity and card evidence (arbitrary certificate and signature bytes:
/// the parser checks their form, the server their meaning).
fn arb_medical_entry() -> impl Strategy<Value = UploadEntry> {
    (
        arb_entry(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 1..200),
        proptest::collection::vec(any::<u8>(), 1..200),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 1..120),
        prop_oneof![
            Just(("110105198703153011", "A00000011")),
            Just(("33010619900101123X", "G30303033"))
        ],
    )
        .prop_map(
            |(mut e, ca_index, issuer, icc, challenge, sdad, (ssn, card_no))| {
                let bytes = |b: Vec<u8>| medical::EvidenceBytes::new(b).unwrap();
                e.kind = EntryKind::MedicalDebit;
                e.state = EntryState::Recorded;
                e.card = None;
                e.recovered = None;
                e.medical = Some(medical::MedicalDebit {
                    card_no: card_core::ssse::CardNumber::parse(card_no).unwrap(),
                    ssn: card_core::ssse::IdNumber::parse(ssn).unwrap(),
                    attestation: medical::CardAttestation {
                        ca_index,
                        issuer_certificate: bytes(issuer),
                        icc_certificate: bytes(icc),
                        challenge: HexArray(challenge),
                        signed_dynamic_data: bytes(sdad),
                    },
                });
                e
            },
        )
}

fn any_entry() -> impl Strategy<Value = UploadEntry> {
    prop_oneof![3 => arb_entry(), 1 => arb_medical_entry()]
}

fn no_panic_on<T: Message>(bytes: &[u8]) {
    let _ = wire::parse::<T>(bytes, wire::MAX_BODY_BYTES);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        no_panic_on::<UploadRequest>(&bytes);
        no_panic_on::<UploadResponse>(&bytes);
        no_panic_on::<SignedEnvelope>(&bytes);
        no_panic_on::<HotListDelta>(&bytes);
        no_panic_on::<ParameterSet>(&bytes);
        no_panic_on::<CardholderPage>(&bytes);
        no_panic_on::<BatchCloseRequest>(&bytes);
        no_panic_on::<RegisterRequest>(&bytes);
        let _ = backend_sync::mac_data::parse(&bytes);
    }

    #[test]
    fn valid_uploads_round_trip(entries in proptest::collection::vec(any_entry(), 0..8)) {
        let req = UploadRequest { entries };
        let bytes = wire::encode(&req);
        prop_assert_eq!(wire::parse::<UploadRequest>(&bytes, wire::MAX_BODY_BYTES).unwrap(), req);
    }

    #[test]
    fn mutated_uploads_are_refused_or_round_trip(
        entry in any_entry(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = wire::encode(&UploadRequest { entries: vec![entry] });
        for (i, b) in flips {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        match wire::parse::<UploadRequest>(&bytes, wire::MAX_BODY_BYTES) {
            Ok(v) => {
                let again = wire::encode(&v);
                prop_assert_eq!(wire::parse::<UploadRequest>(&again, wire::MAX_BODY_BYTES).unwrap(), v);
            }
            Err(e) => {
                let typed = matches!(e, WireError::MalformedJson { .. } | WireError::InvalidField { .. });
                prop_assert!(typed, "unexpected error {:?}", e);
            }
        }
    }

    #[test]
    fn truncated_uploads_are_malformed(entry in any_entry(), cut in any::<prop::sample::Index>()) {
        let bytes = wire::encode(&UploadRequest { entries: vec![entry] });
        let at = cut.index(bytes.len());
        let r = wire::parse::<UploadRequest>(&bytes[..at], wire::MAX_BODY_BYTES);
        prop_assert!(matches!(r, Err(WireError::MalformedJson { .. })), "{:?}", r);
    }

    #[test]
    fn cardholder_csv_never_panics_and_valid_rows_parse(
        junk in proptest::collection::vec(any::<u8>(), 0..300),
        months in any::<u32>(),
        balance in any::<i64>(),
    ) {
        let _ = backend_sync::server::admin::parse_cardholder_csv(&junk);
        let mut with_header = b"ssn,name,card_no,region,insurance_status,contribution_months,medical_balance_fen,as_of\n".to_vec();
        with_header.extend_from_slice(&junk);
        let _ = backend_sync::server::admin::parse_cardholder_csv(&with_header);
        let good = format!(
            "ssn,name,card_no,region,insurance_status,contribution_months,medical_balance_fen,as_of\n\
             110105198703073011,张三,A03073011,110100,active,{months},{balance},20250301000000\n"
        );
        let rows = backend_sync::server::admin::parse_cardholder_csv(good.as_bytes()).unwrap();
        prop_assert_eq!(rows.len(), 1);
        prop_assert_eq!(rows[0].contribution_months, months);
        prop_assert_eq!(rows[0].medical_balance_fen, balance);
    }

    #[test]
    fn signature_headers_never_panic(
        t in ".{0,40}", ts in ".{0,25}", n in ".{0,40}", s in ".{0,140}",
    ) {
        let _ = RequestAuth::from_headers(Some(&t), Some(&ts), Some(&n), Some(&s));
    }
}

#[test]
fn too_many_entries_is_refused_after_parsing() {
    let mut body = String::from("{\"entries\":[");
    // Structurally valid is not needed: the count is checked on valid entries only, so build
    // real ones.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let e = arb_entry().new_tree(&mut runner).unwrap().current();
    let one = String::from_utf8(wire::encode(&e)).unwrap();
    for i in 0..=wire::MAX_BATCH_ENTRIES {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&one);
    }
    body.push_str("]}");
    assert_eq!(
        wire::parse::<UploadRequest>(body.as_bytes(), usize::MAX),
        Err(WireError::TooMany {
            what: "entries",
            count: wire::MAX_BATCH_ENTRIES + 1,
            max: wire::MAX_BATCH_ENTRIES
        })
    );
}

#[test]
fn signed_headers_parse_back() {
    let key = card_core::crypto::sm2::Sm2PrivateKey::generate_os().unwrap();
    let h = sign_request(
        &key,
        &"T-1".parse().unwrap(),
        "GET",
        "/v1/hotlist?since=3",
        77,
        b"",
    )
    .unwrap();
    let a = RequestAuth::from_headers(
        Some(&h.terminal),
        Some(&h.timestamp),
        Some(&h.nonce),
        Some(&h.signature),
    )
    .unwrap();
    assert_eq!(a.timestamp, 77);
    assert_eq!(a.nonce_hex(), h.nonce);
    a.verify(key.public_key(), "GET", "/v1/hotlist?since=3", b"")
        .unwrap();
}
