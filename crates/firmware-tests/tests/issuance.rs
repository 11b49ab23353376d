//! Issuance with hsm-sim and card authentication by card-core: a CA, an issuer and cards made
//! with keys that only the HSM holds (or, for the card's own key, only the card); then the
//! terminal verifies the chain and a fresh challenge. Forged certificates, wrong keys, replayed
//! answers, moved certificates and unknown CAs are rejected, each for its own reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use card_core::channel::CardChannel;
use card_core::crypto::rsa::YearMonth;
use card_core::crypto::sm2_cert::{Sm2CertError, TrustStore};
use card_core::ssse::auth::{self, AuthError};
use card_core::ssse::{self, ReadStrategy};
use card_core::{CardSession, TransportError};
use firmware_tests::image::CardImage;
use firmware_tests::personalize::{self, CardInput, Issuer};
use firmware_tests::{Profile, SoftCard};
use hsm_sim::client::{HsmClient, InProcess};
use hsm_sim::keys::{BlockKey, Secret};
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

const ZMK: &str = "00112233445566778899AABBCCDDEEFF";
const TODAY: YearMonth = YearMonth {
    year: 2026,
    month: 11,
};

struct World {
    hsm: HsmClient<InProcess>,
    issuer: Issuer,
    trust: TrustStore,
    zmk: BlockKey,
}

fn world() -> World {
    let hsm = Arc::new(
        Hsm::in_memory(
            Lmk::from_hex("0F1E2D3C4B5A69788796A5B4C3D2E1F0").unwrap(),
            4,
        )
        .unwrap(),
    );
    hsm.form_key_from_components(
        "ZMKPERSO",
        KeyType::Zmk,
        Scheme::Sm4,
        &[&hex::decode(ZMK).unwrap()],
    )
    .unwrap();
    let mut client = HsmClient::new(InProcess::new(hsm));
    let issuer = personalize::setup_issuer(
        &mut client,
        "CAROOT01",
        0x01,
        "ISSUER01",
        "62170000",
        YearMonth {
            year: 2035,
            month: 12,
        },
    )
    .unwrap();
    let mut trust = TrustStore::new();
    trust.insert(issuer.ca.clone());
    let zmk = BlockKey::new(Scheme::Sm4, &Secret::new(hex::decode(ZMK).unwrap())).unwrap();
    World {
        hsm: client,
        issuer,
        trust,
        zmk,
    }
}

fn identity_of(image: &CardImage) -> card_core::ssse::records::Identity {
    let mut s = CardSession::new(SoftCard::in_memory(image.clone()));
    ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap()
}

fn issue(w: &mut World, name: &str, label: &str, pan: &str) -> CardImage {
    let mut image = Profile::embedded(name).unwrap().build().unwrap();
    let statics = auth::static_data(&identity_of(&image));
    personalize::personalize_pki(
        &mut w.hsm,
        &mut image,
        &w.issuer,
        "ZMKPERSO",
        &w.zmk,
        &CardInput {
            label,
            pan,
            static_data: &statics,
            expiry: YearMonth {
                year: 2034,
                month: 1,
            },
            serial: [0, 0, 1],
        },
    )
    .unwrap();
    image
}

fn authenticate(
    image: CardImage,
    trust: &TrustStore,
    challenge: &[u8],
) -> Result<auth::Authenticated, AuthError> {
    let mut s = CardSession::new(SoftCard::in_memory(image));
    let id = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    auth::authenticate_card(&mut s, trust, &id, challenge, TODAY)
}

#[test]
fn issued_cards_authenticate() {
    let mut w = world();
    let a = issue(&mut w, "zhangsan", "ICC00001", "6217000010001234567");
    let b = issue(&mut w, "lisi", "ICC00002", "6217000010007654321");
    let ok = authenticate(a.clone(), &w.trust, &[7u8; 16]).unwrap();
    assert_eq!(ok.ca_index, 1);
    assert_eq!(ok.icc_dynamic_number.len(), 8);
    authenticate(b, &w.trust, &[9u8; 16]).unwrap();
    // The card's public key is readable in EF 0012 and is the certified one.
    let mut c = SoftCard::in_memory(a);
    c.transmit(&hex::decode("00A404000C53532E434552542E4144463100").unwrap())
        .unwrap();
    let r = c.transmit(&hex::decode("00B0920000").unwrap()).unwrap();
    assert_eq!(&r[..65], &ok.icc_key.to_uncompressed()[..]);
}

#[test]
fn the_private_keys_stay_where_they_belong() {
    let mut w = world();
    // The CA's and the issuer's keys may not leave the HSM, even under the ZMK.
    for (t, label) in [
        (KeyType::Sm2Ca, "CAROOT01"),
        (KeyType::Sm2Issuer, "ISSUER01"),
    ] {
        assert!(matches!(
            w.hsm.export_key(t, "ZMKPERSO", label),
            Err(hsm_sim::ClientError::Hsm(hsm_sim::ErrorCode::NotAuthorised))
        ));
    }
    // The card's key is on the card and nowhere readable through a command.
    let image = issue(&mut w, "zhangsan", "ICC00001", "6217000010001234567");
    let d = image.keys.clone();
    assert!(d.has_sm2());
    assert!(
        !format!("{image:?}").contains("sm2_private: Some(["),
        "Debug must not print the key"
    );
}

#[test]
fn a_forged_certificate_is_rejected() {
    let mut w = world();
    let mut image = issue(&mut w, "zhangsan", "ICC00001", "6217000010001234567");
    // Flip one bit inside the ICC certificate's public key in EF 0018.
    let adf = image.fs.dfs_by_name(&ssse::PKI_ADF_AID)[0];
    let ef = image.fs.child_by_sfi(adf, ssse::SFI_PKI_AUTH_DATA).unwrap();
    if let Some(firmware_tests::fs::NodeKind::Ef {
        body: firmware_tests::fs::EfBody::Transparent { data, .. },
        ..
    }) = image.fs.node_mut(ef).map(|n| &mut n.kind)
    {
        let at = data
            .windows(3)
            .position(|w| w == [0x9f, 0x46, 0x81])
            .unwrap()
            + 3
            + 30;
        data[at] ^= 0x01;
    }
    let err = authenticate(image, &w.trust, &[1u8; 16]).unwrap_err();
    assert!(matches!(err, AuthError::Certificate(_)), "{err:?}");
}

#[test]
fn a_card_with_the_wrong_key_is_rejected() {
    let mut w = world();
    let good = issue(&mut w, "zhangsan", "ICC00001", "6217000010001234567");
    let other = issue(&mut w, "zhangsan", "ICC00003", "6217000010001234567");
    // Genuine certificates, but the private key of another card.
    let mut image = good;
    image.keys = other.keys.clone();
    let err = authenticate(image, &w.trust, &[2u8; 16]).unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::BadSignature(Sm2CertError::SignatureMismatch { .. })
        ),
        "{err:?}"
    );
}

/// A clone that answers INTERNAL AUTHENTICATE with an answer recorded from the genuine card.
struct Replayer {
    card: SoftCard,
    recorded: Vec<u8>,
}

impl CardChannel for Replayer {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if command.get(..2) == Some(&[0x00, 0x88]) {
            return Ok(self.recorded.clone());
        }
        Ok(self.card.process(command))
    }
}

#[test]
fn a_replayed_answer_is_rejected() {
    let mut w = world();
    let image = issue(&mut w, "zhangsan", "ICC00001", "6217000010001234567");
    // Record the genuine card's answer to one challenge.
    let mut card = SoftCard::in_memory(image.clone());
    card.process(&hex::decode("00A404000C53532E434552542E4144463100").unwrap());
    let mut cmd = hex::decode("0088000010").unwrap();
    cmd.extend_from_slice(&[5u8; 16]);
    cmd.push(0);
    let recorded = card.process(&cmd);
    assert_eq!(&recorded[recorded.len() - 2..], &[0x90, 0x00]);
    // A clone plays it back to a terminal that asks a different challenge.
    let mut s = CardSession::new(Replayer {
        card: SoftCard::in_memory(image),
        recorded,
    });
    let id = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    let err = auth::authenticate_card(&mut s, &w.trust, &id, &[6u8; 16], TODAY).unwrap_err();
    assert!(matches!(err, AuthError::BadSignature(_)), "{err:?}");
}

#[test]
fn a_certificate_moved_to_another_identity_is_rejected() {
    let mut w = world();
    let zhangsan = issue(&mut w, "zhangsan", "ICC00001", "6217000010001234567");
    // Li Si's card with Zhang San's certificates and key.
    let mut lisi = Profile::embedded("lisi").unwrap().build().unwrap();
    lisi.fs = {
        let mut fs = lisi.fs.clone();
        let pki_src = zhangsan.fs.dfs_by_name(&ssse::PKI_ADF_AID)[0];
        let pki_dst = fs.dfs_by_name(&ssse::PKI_ADF_AID)[0];
        for sfi in [ssse::SFI_PKI_AUTH_DATA, ssse::SFI_PKI_PUBLIC_KEY] {
            let src = zhangsan.fs.child_by_sfi(pki_src, sfi).unwrap();
            let dst = fs.child_by_sfi(pki_dst, sfi).unwrap();
            let kind = zhangsan.fs.node(src).unwrap().kind.clone();
            fs.node_mut(dst).unwrap().kind = kind;
        }
        fs
    };
    lisi.keys = zhangsan.keys.clone();
    let err = authenticate(lisi, &w.trust, &[3u8; 16]).unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Certificate(Sm2CertError::SignatureMismatch { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_or_expired_ca_and_unpersonalised_cards() {
    let mut w = world();
    let image = issue(&mut w, "zhangsan", "ICC00001", "6217000010001234567");
    let err = authenticate(image.clone(), &TrustStore::new(), &[4u8; 16]).unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Certificate(Sm2CertError::UnknownCaKey { .. })
        ),
        "{err:?}"
    );
    let err = auth::authenticate_card(
        &mut CardSession::new(SoftCard::in_memory(image.clone())),
        &w.trust,
        &identity_of(&image),
        &[4u8; 16],
        YearMonth {
            year: 2036,
            month: 1,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Certificate(Sm2CertError::CaKeyExpired { .. })
        ),
        "{err:?}"
    );
    let blank = Profile::embedded("zhangsan").unwrap().build().unwrap();
    let err = authenticate(blank, &w.trust, &[4u8; 16]).unwrap_err();
    assert!(matches!(err, AuthError::NotPersonalised(_)), "{err:?}");
}

#[test]
fn trust_store_files_round_trip() {
    let w = world();
    let text = format!("# CA keys\n{}\n", personalize::trust_line(&w.issuer.ca));
    let store = auth::parse_trust_store(&text).unwrap();
    assert_eq!(store.get(auth::SSSE_RID, 1), Some(&w.issuer.ca));
    assert_eq!(
        auth::parse_trust_store("D156000005 01 1235 00").unwrap_err(),
        (1, "public key is X‖Y, 64 bytes")
    );
    assert_eq!(auth::parse_trust_store("\nD1560000 01").unwrap_err().0, 2);
}

#[test]
fn the_maintenance_key_comes_from_the_hsm_and_only_its_master_writes_the_record() {
    use card_core::ssse::update::{self, RecordState, SoftwareAuthority, UpdateError};
    use hsm_sim::client::HsmAuthority;
    let mut w = world();
    personalize::setup_maintenance_master(&mut w.hsm, personalize::MAINTENANCE_LABEL).unwrap();
    // Again: the key already there is taken.
    personalize::setup_maintenance_master(&mut w.hsm, personalize::MAINTENANCE_LABEL).unwrap();
    let mut image = issue(&mut w, "lisi", "ICC00001", "6217000010000001");
    let kcv = personalize::personalize_maintenance(
        &mut w.hsm,
        &mut image,
        personalize::MAINTENANCE_LABEL,
        "ZMKPERSO",
        &w.zmk,
    )
    .unwrap();
    assert_ne!(kcv, [0; 3]);
    // The name field as stored: GBK, padded with 00 to 30 bytes.
    let mut old = identity_of(&image).holder.name.to_gbk();
    old.resize(30, 0);
    let mut new = old.clone();
    new[1] ^= 1;
    let mut card = SoftCard::in_memory(image);
    // The profile's test master no longer opens the card: its key came from the HSM.
    let profile = Profile::embedded("lisi").unwrap();
    let test_master = card_core::crypto::sm4::Sm4Key::from_slice(
        &hex::decode(profile.maintenance_master.unwrap()).unwrap(),
    )
    .unwrap();
    let mut s = CardSession::new(&mut card);
    let e = update::update_record(
        &mut s,
        &mut SoftwareAuthority::new(test_master),
        ssse::SFI_EF06,
        0x09,
        &new,
    )
    .unwrap_err();
    assert!(matches!(e, UpdateError::NotDone(_)), "{e}");
    // The HSM's master does, through KE, and the record reads back new.
    let mut s = CardSession::new(&mut card);
    let mut authority = HsmAuthority::new(&mut w.hsm, personalize::MAINTENANCE_LABEL);
    let was = update::update_record(&mut s, &mut authority, ssse::SFI_EF06, 0x09, &new).unwrap();
    assert_eq!(was.as_slice(), old.as_slice());
    let mut s = CardSession::new(&mut card);
    assert_eq!(
        update::record_state(&mut s, ssse::SFI_EF06, 0x09, &old, &new).unwrap(),
        RecordState::New
    );
    // A wrong ZMK twin is caught by the check value.
    let wrong = BlockKey::new(Scheme::Sm4, &Secret::new(vec![0x42; 16])).unwrap();
    let mut other = Profile::embedded("zhangsan").unwrap().build().unwrap();
    assert!(
        personalize::personalize_maintenance(
            &mut w.hsm,
            &mut other,
            personalize::MAINTENANCE_LABEL,
            "ZMKPERSO",
            &wrong,
        )
        .is_err()
    );
}
