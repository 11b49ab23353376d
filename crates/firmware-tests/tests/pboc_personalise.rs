//! The personalisation API, used the way a personaliser with an HSM would: card keys derived
//! from issuer master keys, fresh SM2 CA/issuer/ICC keys, certificates over the static data,
//! then `files::install`; the card then does a qPBOC purchase that an independent terminal
//! verifies with that CA.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use card_core::crypto::kdf::{self, CardAlgorithm, CardKey};
use card_core::crypto::sm2::Sm2PrivateKey;
use card_core::crypto::sm2_cert::{
    self, CaKey, ExpiryDate, FddaTerminalData, IccCertificate, IssuerCertificate, StaticData,
    TrustStore, YearMonth,
};
use card_core::tlv::{Tag, Tlv};
use firmware_tests::SoftCard;
use firmware_tests::pboc::files::{self, CardData, OdaRecords};
use firmware_tests::pboc::state::{Ec, IccPrivateKey, OfflinePin, PbocKeys};
use firmware_tests::pboc::{Algorithm, CA_INDEX_SM2, PbocState, RID};
use pboc_support::*;

#[test]
fn personalise_with_the_public_api_and_pay() {
    // The card image without a payment application.
    let mut p = pboc_support::profile("zhangsan");
    p.pboc = None;
    let mut image = p.build().unwrap();
    assert!(image.pboc.is_none());

    // Issuer side.
    let pan = "6230580000000000013";
    let imk_ac = CardKey::new(CardAlgorithm::Sm4, [0x5a; 16]);
    let imk_smi = CardKey::new(CardAlgorithm::Sm4, [0xa5; 16]);
    let imk_smc = CardKey::new(CardAlgorithm::Sm4, [0x3c; 16]);
    let derive = |imk: &CardKey| kdf::derive_card_key(imk, pan, Some("01")).unwrap();
    let mut keys = PbocKeys::default();
    keys.set_card_keys(&derive(&imk_ac), &derive(&imk_smi), &derive(&imk_smc));
    let ca = Sm2PrivateKey::generate_os().unwrap();
    let issuer = Sm2PrivateKey::generate_os().unwrap();
    let icc = Sm2PrivateKey::generate_os().unwrap();
    keys.icc = Some(IccPrivateKey::Sm2 {
        d: icc.expose_bytes().to_vec(),
    });
    let mut state = PbocState::new(Algorithm::Sm, OfflinePin::new("8888", 3).unwrap(), keys);
    state.ec = Some(Ec {
        balance: 10_000,
        balance_limit: 50_000,
        single_limit: 10_000,
        reset_threshold: 0,
        issuer_auth_code: *b"ECC777",
    });
    let data = CardData {
        pan: pan.into(),
        psn: Some(1),
        effective: [0x26, 0x01, 0x01],
        expiry: [0x31, 0x12, 0x31],
        cardholder_name: "ZHANG/SAN".into(),
        iac_default: [0; 5],
        iac_denial: [0; 5],
        iac_online: [0; 5],
        auc: [0xff, 0x00],
        app_version: [0x00, 0x30],
        issuer_country: 156,
        cvm_list: hex("00000000 00000000 1F00"),
    };
    let expiry = ExpiryDate::new(YearMonth {
        year: 2031,
        month: 12,
    })
    .unwrap();
    let statics = files::static_data(&data, state.aip).unwrap();
    let issuer_id = [0x62, 0x30, 0x58, 0xff];
    let oda = OdaRecords {
        ca_index: CA_INDEX_SM2,
        issuer_certificate: IssuerCertificate::new(
            issuer_id,
            expiry,
            [0, 0, 9],
            issuer.public_key(),
        )
        .issue(&ca)
        .unwrap(),
        icc_certificate: IccCertificate::new(
            &files::cn(pan).unwrap(),
            expiry,
            [0, 0, 9],
            icc.public_key(),
        )
        .issue(&issuer, &statics)
        .unwrap(),
        ..OdaRecords::default()
    };
    files::install(&mut image, state, &data, &oda).unwrap();

    // Terminal side: a qPBOC purchase, fDDA checked against the new CA.
    let mut card = SoftCard::in_memory(image);
    let mut send = |apdu: &[u8]| {
        let mut r = card.process(apdu);
        let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
        r.truncate(r.len() - 2);
        assert_eq!(sw, 0x9000, "{}", hex::encode_upper(apdu));
        r
    };
    send(&hex("00A4040008A000000333010101 00"));
    let terms = Terms::qpboc(1_000);
    let answer = Tlv::parse(&send(&terms.gpo_apdu())).unwrap();
    let get = |tag| {
        answer
            .child(Tag::new(tag))
            .unwrap()
            .bytes()
            .unwrap()
            .to_vec()
    };
    let aip: [u8; 2] = get(0x82).try_into().unwrap();
    let afl = get(0x94);
    let mut oda_records = Vec::new();
    let mut all = Vec::new();
    for e in afl.chunks(4) {
        for n in e[1]..=e[2] {
            let rec = Tlv::parse(&send(&[0, 0xb2, n, e[0] | 4, 0])).unwrap();
            if n - e[1] < e[3] {
                for c in rec.children() {
                    oda_records.extend(c.to_bytes().unwrap());
                }
            }
            all.push(rec);
        }
    }
    let find = |tag| {
        all.iter()
            .find_map(|r| r.find(Tag::new(tag)))
            .map(|t| t.bytes().unwrap().to_vec())
            .unwrap()
    };
    assert_eq!(find(0x9f74), b"ECC777");
    let mut trust = TrustStore::new();
    trust.insert(CaKey {
        rid: RID,
        index: CA_INDEX_SM2,
        public_key: *ca.public_key(),
        expiry,
    });
    let key = sm2_cert::verify_chain(
        &trust,
        RID,
        find(0x8f)[0],
        &find(0x90),
        &find(0x9f46),
        &find(0x5a),
        &StaticData {
            records: &oda_records,
            sda_tag_list: Some(&[0x82]),
            aip: Some(aip),
        },
        TODAY,
    )
    .unwrap();
    let card_auth = find(0x9f69);
    sm2_cert::verify_fdda(
        &key,
        &get(0x9f4b),
        aip,
        &FddaTerminalData {
            unpredictable_number: terms.un,
            amount_authorised: n12(1_000).try_into().unwrap(),
            transaction_currency_code: terms.currency,
            card_authentication_related_data: Some(&card_auth),
        },
        true,
    )
    .unwrap();
    let balance = send(&hex("80CA9F7900"));
    assert_eq!(balance, [&[0x9f, 0x79, 0x06][..], &n12(9_000)].concat());
}
