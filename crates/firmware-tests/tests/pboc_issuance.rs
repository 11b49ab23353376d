//! PBOC issuance with hsm-sim (`personalize::personalize_pboc`): the issuer master keys
//! generated in the HSM, the card keys derived there and received only under the ZMK, the
//! card's SM2 key generated there, the issuer and ICC certificates signed by keys that never
//! leave it. Then card-core's kernel buys on the card: offline data authentication verifies
//! against the CA public key exported from the HSM (`K7`), and the TCs, and an online ARQC,
//! verify in the same HSM (`KQ`) over the kernel's cryptogram input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use std::sync::Arc;

use card_core::CardSession;
use card_core::crypto::sm2::Sm2PublicKey;
use card_core::crypto::sm2_cert::{CaKey, ExpiryDate, YearMonth};
use card_core::pboc::bits::{AcType, TtqBit};
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{
    Offline, OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable,
};
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{
    Amount, Date, Hooks, OdaMethod, Outcome, TerminalConfig, Time, TransactionParams,
    TransactionRecord, TvrBit, run_contact,
};
use card_core::secret::Pin;
use firmware_tests::SoftCard;
use firmware_tests::image::CardImage;
use firmware_tests::pboc::{CA_INDEX_SM2, RID};
use firmware_tests::personalize::{
    self, Issuer, PbocCardInput, PbocIssued, PbocMasterKeys, PersoError,
};
use hsm_sim::client::{ArqcRequest, HsmClient, InProcess};
use hsm_sim::keys::{BlockKey, Secret};
use hsm_sim::{ClientError, ErrorCode, Hsm, KeyType, Lmk, Scheme};
use pboc_support::*;

const ZMK: &str = "00112233445566778899AABBCCDDEEFF";
const MASTER_LABELS: [&str; 3] = ["PBOCMKAC", "PBOCMKSI", "PBOCMKSC"];

struct World {
    hsm: HsmClient<InProcess>,
    zmk: BlockKey,
    issuer: Issuer,
    master: PbocMasterKeys,
}

fn world() -> World {
    let hsm = Arc::new(
        Hsm::in_memory(
            Lmk::from_hex("0F1E2D3C4B5A69788796A5B4C3D2E1F0").unwrap(),
            4,
        )
        .unwrap(),
    );
    hsm.form_key_from_components("ZMKPERSO", KeyType::Zmk, Scheme::Sm4, &[&hex(ZMK)])
        .unwrap();
    let mut client = HsmClient::new(InProcess::new(hsm));
    let issuer = personalize::setup_pboc_issuer(
        &mut client,
        "PBOCCA01",
        CA_INDEX_SM2,
        "PBOCIS01",
        "623058",
        YearMonth {
            year: 2040,
            month: 12,
        },
    )
    .unwrap();
    let master =
        personalize::setup_pboc_master_keys(&mut client, Scheme::Sm4, MASTER_LABELS).unwrap();
    World {
        hsm: client,
        zmk: BlockKey::new(Scheme::Sm4, &Secret::new(hex(ZMK))).unwrap(),
        issuer,
        master,
    }
}

/// The card of profile `name` with its payment application personalised through the HSM.
fn issue(w: &mut World, name: &str, icc_label: &str) -> (CardImage, PbocIssued) {
    let mut p = profile(name);
    let section = p.pboc.take().unwrap();
    let mut image = p.build().unwrap();
    let issued = personalize::personalize_pboc(
        &mut w.hsm,
        &mut image,
        &w.issuer,
        &w.master,
        "ZMKPERSO",
        &w.zmk,
        &PbocCardInput {
            section: &section,
            icc_label,
            card_pin: &p.pin.value,
            serial: [0x00, 0x00, 0x07],
        },
    )
    .unwrap();
    (image, issued)
}

/// The terminal's CA store with the CA public key as the HSM exports it (`K7`).
fn ca_from_hsm(w: &mut World) -> CaStore {
    let (key_type, xy) = w.hsm.public_key("PBOCCA01").unwrap();
    assert_eq!(key_type, KeyType::Sm2Ca);
    let mut ca = CaStore::new();
    ca.add_sm2(CaKey {
        rid: RID,
        index: CA_INDEX_SM2,
        public_key: Sm2PublicKey::from_xy(&xy).unwrap(),
        expiry: ExpiryDate::new(YearMonth {
            year: 2040,
            month: 12,
        })
        .unwrap(),
    });
    ca
}

struct Pad(Option<String>);

impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        match self.0.take() {
            Some(p) => PinEntry::Pin(Pin::new(&p).unwrap()),
            None => PinEntry::Bypassed,
        }
    }
}

fn params(amount: u64) -> TransactionParams {
    TransactionParams::purchase(
        Amount::new(amount).unwrap(),
        Date::new(2026, 3, 15).unwrap(),
        Time::new(9, 0, 0).unwrap(),
        [0x31, 0x41, 0x59, 0x26],
    )
}

fn contact(
    card: SoftCard,
    terminal: &TerminalConfig,
    ca: &CaStore,
    amount: u64,
    online: &mut dyn OnlineAuthoriser,
) -> (TransactionRecord, SoftCard) {
    let mut s = CardSession::new(card);
    let mut pad = Pad(Some(profile("zhangsan").pin.value));
    let mut journal = MemoryJournal::default();
    let rec = run_contact(
        &mut s,
        terminal,
        ca,
        params(amount),
        &mut Hooks {
            pin_pad: &mut pad,
            hot_list: &NoHotList,
            online,
            journal: &mut journal,
        },
    );
    (rec, s.into_channel())
}

/// `KQ` mode 0 with the HSM's MK-AC on the record's final cryptogram.
fn verify_in_hsm(w: &mut World, rec: &TransactionRecord) -> Result<(), ClientError> {
    let input = rec
        .cryptogram_input()
        .expect("a version 01 cryptogram input");
    let pan = rec.pan.as_ref().unwrap().reveal().to_string();
    let psn = format!("{:02X}", rec.psn.unwrap_or(0));
    w.hsm.check_cryptogram(&ArqcRequest {
        mk_ac: &w.master.mk_ac,
        pan: &pan,
        psn: &psn,
        atc: rec.atc.unwrap(),
        data: input.as_bytes(),
        arqc: rec.cryptogram.unwrap(),
        arc: *b"00",
    })
}

/// The issuer: ARQC checked and ARPC made by the HSM (`KQ` mode 1).
struct HsmIssuer<'w> {
    w: &'w mut World,
    verified: usize,
}

impl OnlineAuthoriser for HsmIssuer<'_> {
    fn authorise(&mut self, r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        let input = r.cryptogram_input.unwrap();
        let pan = r.pan.unwrap().reveal().to_string();
        let psn = format!("{:02X}", r.psn.unwrap_or(0));
        let arpc = self
            .w
            .hsm
            .verify_arqc(&ArqcRequest {
                mk_ac: &self.w.master.mk_ac,
                pan: &pan,
                psn: &psn,
                atc: r.atc,
                data: input.as_bytes(),
                arqc: r.arqc,
                arc: *b"00",
            })
            .map_err(|e| OnlineUnavailable(e.to_string()))?;
        self.verified += 1;
        Ok(OnlineResponse {
            arc: *b"00",
            issuer_authentication_data: Some([&arpc[..], b"00"].concat()),
            issuer_scripts: Vec::new(),
        })
    }
}

#[test]
fn issued_card_pays_and_its_cryptograms_verify_in_the_same_hsm() {
    let mut w = world();
    let (image, issued) = issue(&mut w, "zhangsan", "PBOCIC01");
    let ca = ca_from_hsm(&mut w);
    let state = image.pboc.as_ref().unwrap();
    assert_eq!(
        state.ec.as_ref().unwrap().balance,
        50_000,
        "from the section"
    );

    // The card keys are the HSM's, not the ones the fixture's clear test keys give.
    let section = profile("zhangsan").pboc.unwrap();
    let fixture = section.card_keys().unwrap();
    for (mine, theirs) in issued.card_key_kcvs.iter().zip(&fixture) {
        assert_ne!(mine, &theirs.kcv());
    }
    assert_eq!(
        state.keys.ac_key(state.algorithm).kcv(),
        issued.card_key_kcvs[0],
        "MK-AC on the card is the one KD reported"
    );

    // Contact electronic cash purchase: CDA (AIP 3D00) with the HSM's CA, the TC verifies in
    // the HSM.
    let card = SoftCard::in_memory(image);
    let (rec, card) = contact(card, &TerminalConfig::kiosk(), &ca, 1_500, &mut Offline);
    assert_eq!(
        rec.outcome,
        Outcome::ApprovedOffline,
        "{:?}",
        rec.oda_failure
    );
    assert_eq!(rec.oda, Some(OdaMethod::Cda));
    assert!(rec.oda_failure.is_none(), "{:?}", rec.oda_failure);
    assert_eq!(rec.cid.unwrap().ac_type(), Some(AcType::Tc));
    verify_in_hsm(&mut w, &rec).unwrap();
    let mut changed = rec.clone();
    changed.atc = changed.atc.map(|a| a + 1);
    assert!(matches!(
        verify_in_hsm(&mut w, &changed),
        Err(ClientError::Hsm(ErrorCode::VerificationFailure))
    ));

    // qPBOC on the same card: fDDA with the HSM's CA, the TC verifies in the HSM.
    let mut s = CardSession::new(card);
    let mut journal = MemoryJournal::default();
    let rec = run_qpboc(
        &mut s,
        &TerminalConfig::kiosk(),
        &ca,
        params(2_000),
        &mut QpbocHooks {
            hot_list: &NoHotList,
            online: &mut Offline,
            journal: &mut journal,
        },
    );
    assert_eq!(
        rec.outcome,
        Outcome::ApprovedOffline,
        "{:?}",
        rec.oda_failure
    );
    assert_eq!(rec.oda, Some(OdaMethod::Fdda));
    assert!(rec.oda_failure.is_none(), "{:?}", rec.oda_failure);
    assert_eq!(rec.ec_balance_after, Amount::new(50_000 - 1_500 - 2_000));
    verify_in_hsm(&mut w, &rec).unwrap();

    // Online: the HSM checks the ARQC and makes the ARPC the card accepts; the TC verifies.
    let mut online = TerminalConfig::kiosk();
    online.terminal_type = 0x25;
    online.ttq.clear(TtqBit::OfflineOnly);
    let mut issuer = HsmIssuer {
        w: &mut w,
        verified: 0,
    };
    let (rec, _) = contact(s.into_channel(), &online, &ca, 60_000, &mut issuer);
    assert_eq!(issuer.verified, 1);
    assert_eq!(rec.outcome, Outcome::ApprovedOnline);
    assert!(!rec.tvr.contains(TvrBit::IssuerAuthenticationFailed));
    verify_in_hsm(&mut w, &rec).unwrap();
}

#[test]
fn oda_fails_against_another_ca() {
    let mut w = world();
    let (image, _) = issue(&mut w, "zhangsan", "PBOCIC01");
    // The CA of the fixture's seed, not the HSM's.
    let mut other = CaStore::new();
    match profile("zhangsan").pboc.unwrap().ca_key().unwrap() {
        firmware_tests::pboc::profile::TerminalCaKey::Sm2(k) => other.add_sm2(k),
        firmware_tests::pboc::profile::TerminalCaKey::Rsa(_) => unreachable!(),
    }
    let (rec, _) = contact(
        SoftCard::in_memory(image),
        &TerminalConfig::kiosk(),
        &other,
        1_500,
        &mut Offline,
    );
    assert!(rec.oda_failure.is_some());
    assert!(rec.tvr.contains(TvrBit::CdaFailed));
    assert_ne!(rec.outcome, Outcome::ApprovedOffline);
}

#[test]
fn keys_stay_in_the_hsm_and_cards_differ() {
    let mut w = world();
    // Master keys, CA and issuer keys may not leave, even under the ZMK.
    for (t, label) in [
        (KeyType::MkAc, "PBOCMKAC"),
        (KeyType::MkSmi, "PBOCMKSI"),
        (KeyType::MkSmc, "PBOCMKSC"),
        (KeyType::Sm2Ca, "PBOCCA01"),
        (KeyType::Sm2Issuer, "PBOCIS01"),
    ] {
        assert!(
            matches!(
                w.hsm.export_key(t, "ZMKPERSO", label),
                Err(ClientError::Hsm(ErrorCode::NotAuthorised))
            ),
            "{label}"
        );
    }
    // Setting up again finds the same keys.
    let again =
        personalize::setup_pboc_master_keys(&mut w.hsm, Scheme::Sm4, MASTER_LABELS).unwrap();
    assert_eq!(again, w.master);
    // Two cards: their own PANs, so their own card keys and ICC keys.
    let (_, a) = issue(&mut w, "zhangsan", "PBOCIC01");
    let (_, b) = issue(&mut w, "lisi", "PBOCIC02");
    assert_ne!(a.card_key_kcvs, b.card_key_kcvs);
    assert_ne!(a.icc_public_key.to_xy(), b.icc_public_key.to_xy());
    // Debug of the card's keys shows none of them.
    let (image, _) = issue(&mut w, "zhangsan", "PBOCIC03");
    let shown = format!("{:?}", image.pboc.as_ref().unwrap().keys);
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn refused_inputs() {
    let mut w = world();
    // The international profile needs RSA certificates, which hsm-sim does not sign.
    let mut p = profile("wangwu-rsa");
    let section = p.pboc.take().unwrap();
    let mut image = p.build().unwrap();
    let err = personalize::personalize_pboc(
        &mut w.hsm,
        &mut image,
        &w.issuer,
        &w.master,
        "ZMKPERSO",
        &w.zmk,
        &PbocCardInput {
            section: &section,
            icc_label: "PBOCIC09",
            card_pin: &p.pin.value,
            serial: [0, 0, 9],
        },
    )
    .unwrap_err();
    assert!(matches!(err, PersoError::Invalid(_)), "{err}");
    // A card that has a payment application already.
    let p = profile("zhangsan");
    let section = p.pboc.clone().unwrap();
    let mut image = p.build().unwrap();
    let err = personalize::personalize_pboc(
        &mut w.hsm,
        &mut image,
        &w.issuer,
        &w.master,
        "ZMKPERSO",
        &w.zmk,
        &PbocCardInput {
            section: &section,
            icc_label: "PBOCIC09",
            card_pin: &p.pin.value,
            serial: [0, 0, 9],
        },
    )
    .unwrap_err();
    assert!(matches!(err, PersoError::Invalid(_)), "{err}");
    // A transport key that is not the HSM's ZMK: the card keys do not check.
    let mut p = profile("zhangsan");
    let section = p.pboc.take().unwrap();
    let mut image = p.build().unwrap();
    let wrong = BlockKey::new(Scheme::Sm4, &Secret::new(vec![0x42; 16])).unwrap();
    let err = personalize::personalize_pboc(
        &mut w.hsm,
        &mut image,
        &w.issuer,
        &w.master,
        "ZMKPERSO",
        &wrong,
        &PbocCardInput {
            section: &section,
            icc_label: "PBOCIC09",
            card_pin: &p.pin.value,
            serial: [0, 0, 9],
        },
    )
    .unwrap_err();
    assert!(matches!(err, PersoError::Invalid(_)), "{err}");
    assert!(image.pboc.is_none(), "nothing installed");
}

#[test]
fn the_personalize_binary_issues_payment_applications_through_the_hsm() {
    use firmware_tests::storage::{FileStorage, Storage};
    let dir = tempfile::tempdir().unwrap();
    let zmk = dir.path().join("zmk.hex");
    std::fs::write(&zmk, format!("{ZMK}\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_personalize"))
        .args([
            "--card",
            "zhangsan",
            "--card",
            "wangwu-rsa",
            "--in-memory-hsm",
            "--pboc",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("cards"))
        .arg("--trust-out")
        .arg(dir.path().join("trust.txt"))
        .arg("--pboc-trust-out")
        .arg(dir.path().join("pboc-trust.txt"))
        .arg("--zmk-file")
        .arg(&zmk)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("zhangsan: payment application personalised through the HSM"));
    assert!(stdout.contains("wangwu-rsa: international payment application"));
    // The terminal trusts the PBOC CA line and the issued card pays with offline data
    // authentication against it.
    let text = std::fs::read_to_string(dir.path().join("pboc-trust.txt")).unwrap();
    assert!(text.starts_with("A000000333 80 "), "{text}");
    let trust = card_core::ssse::auth::parse_trust_store(&text).unwrap();
    let mut ca = CaStore::new();
    ca.add_sm2(trust.get(RID, CA_INDEX_SM2).unwrap().clone());
    let image = FileStorage::new(dir.path().join("cards/zhangsan.json"))
        .load()
        .unwrap()
        .unwrap();
    let (rec, _) = contact(
        SoftCard::in_memory(image),
        &TerminalConfig::kiosk(),
        &ca,
        1_500,
        &mut Offline,
    );
    assert_eq!(
        rec.outcome,
        Outcome::ApprovedOffline,
        "{:?}",
        rec.oda_failure
    );
    assert_eq!(rec.oda, Some(OdaMethod::Cda));
}
