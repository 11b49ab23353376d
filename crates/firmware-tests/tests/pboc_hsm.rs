//! The software card's cryptograms verify in hsm-sim, for SM4 (`zhangsan`, SM profile) and 3DES
//! (`wangwu-rsa`, international profile): card-core's kernel runs whole transactions against
//! the card in-process, the profile's issuer master key MK-AC is imported into an in-process
//! hsm-sim under a ZMK (`A6`), and the HSM checks the TC of an offline electronic cash
//! purchase and the ARQC of an online one (`KQ`) over `TransactionRecord::cryptogram_input` /
//! `OnlineRequest::cryptogram_input`, the 37 bytes of cryptogram version 01 (JR/T 0025.5
//! 附录 E 表E.1). Online, the HSM's ARPC is what the card accepts in EXTERNAL AUTHENTICATE
//! (JR/T 0025.5 §15.4.3); a changed amount, a wrong ATC and a wrong ARPC are refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use std::sync::Arc;

use card_core::CardSession;
use card_core::pboc::bits::{AcType, TtqBit};
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{
    Amount, CryptogramSource, Date, Hooks, Outcome, TerminalConfig, Time, TransactionParams,
    TransactionRecord, TsiBit, TvrBit, run_contact,
};
use card_core::secret::Pin;
use firmware_tests::SoftCard;
use firmware_tests::pboc::Algorithm;
use firmware_tests::pboc::profile::TerminalCaKey;
use hsm_sim::client::{ArqcRequest, HsmClient, InProcess};
use hsm_sim::keys::{BlockKey, Secret, check_value};
use hsm_sim::{ClientError, ErrorCode, Hsm, KeyType, Lmk, Scheme};
use pboc_support::*;

const LMK: &str = "F0E1D2C3B4A5968778695A4B3C2D1E0F";
/// The issuer's zone master key, shared with the HSM at its key ceremony.
const ZMK: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F0";
const ZMK_LABEL: &str = "ZMKISSUE";
const MK_AC_LABEL: &str = "MKAC0001";

/// An in-process hsm-sim holding the card's issuer master key MK-AC: the ZMK formed at the
/// key ceremony, the MK-AC of the profile (a test fixture in clear) imported under it with
/// `A6`, as an issuer moves a master key into its HSM.
fn hsm_for(card: &TestCard) -> HsmClient<InProcess> {
    let hsm = Arc::new(Hsm::in_memory(Lmk::from_hex(LMK).unwrap(), 4).unwrap());
    let zmk = hex(ZMK);
    hsm.form_key_from_components(ZMK_LABEL, KeyType::Zmk, Scheme::Sm4, &[&zmk])
        .unwrap();
    let mut client = HsmClient::new(InProcess::new(hsm));
    let scheme = match card.algorithm() {
        Algorithm::Sm => Scheme::Sm4,
        Algorithm::International => Scheme::Tdes,
    };
    let imk = Secret::new(hex(&card.section().imk_ac));
    let wrapped = BlockKey::new(Scheme::Sm4, &Secret::new(zmk))
        .unwrap()
        .encrypt_ecb(imk.expose())
        .unwrap();
    let kcv = check_value(scheme, &imk).unwrap();
    client
        .import_key(KeyType::MkAc, scheme, ZMK_LABEL, &wrapped, kcv, MK_AC_LABEL)
        .unwrap();
    client
}

/// The PAN and PSN (two digits) of a record, as `KQ` takes them.
fn pan_psn(pan: Option<&card_core::pboc::Pan>, psn: Option<u8>) -> (String, String) {
    (
        pan.expect("the PAN was read").reveal().to_string(),
        format!("{:02X}", psn.unwrap_or(0)),
    )
}

/// `KQ` mode 0 on the final cryptogram of `rec`, over `data` and with `atc`.
fn hsm_check(
    hsm: &mut HsmClient<InProcess>,
    rec: &TransactionRecord,
    data: &[u8],
    atc: u16,
) -> Result<(), ClientError> {
    let (pan, psn) = pan_psn(rec.pan.as_ref(), rec.psn);
    hsm.check_cryptogram(&ArqcRequest {
        mk_ac: MK_AC_LABEL,
        pan: &pan,
        psn: &psn,
        atc,
        data,
        arqc: rec.cryptogram.expect("a cryptogram"),
        arc: *b"00",
    })
}

/// The final cryptogram verifies in the HSM over the record's cryptogram input; the same input
/// with another amount, or the cryptogram under another ATC, does not.
fn assert_verifies_only_as_sent(
    hsm: &mut HsmClient<InProcess>,
    rec: &TransactionRecord,
    what: &str,
) {
    let input = rec
        .cryptogram_input()
        .expect("a version 01 cryptogram input");
    assert_eq!(input.len(), 37, "{what}: 表E.1");
    let atc = rec.atc.unwrap();
    hsm_check(hsm, rec, input.as_bytes(), atc).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Amount, authorised: the first six bytes (n12); one fen more.
    let mut more = input.as_bytes().to_vec();
    let amount = Amount::from_bcd(&more[..6]).unwrap();
    more[..6].copy_from_slice(&Amount::new(amount.minor_units() + 1).unwrap().to_bcd());
    assert!(
        matches!(
            hsm_check(hsm, rec, &more, atc),
            Err(ClientError::Hsm(ErrorCode::VerificationFailure))
        ),
        "{what}: a changed amount must fail"
    );
    assert!(
        matches!(
            hsm_check(hsm, rec, input.as_bytes(), atc.wrapping_add(1)),
            Err(ClientError::Hsm(ErrorCode::VerificationFailure))
        ),
        "{what}: a wrong ATC must fail"
    );
}

/// The issuer host: checks the ARQC in the HSM over the request's cryptogram input and answers
/// with the HSM's ARPC (`KQ` mode 1), or with a wrong one when asked to.
struct HsmIssuer<'h> {
    hsm: &'h mut HsmClient<InProcess>,
    /// Whether each ARQC verified.
    verified: Vec<bool>,
    /// The ARQCs and ATCs seen.
    seen: Vec<([u8; 8], u16)>,
    /// Answer with the ARPC of another ARQC.
    wrong_arpc: bool,
}

impl<'h> HsmIssuer<'h> {
    fn new(hsm: &'h mut HsmClient<InProcess>) -> Self {
        Self {
            hsm,
            verified: Vec::new(),
            seen: Vec::new(),
            wrong_arpc: false,
        }
    }
}

impl OnlineAuthoriser for HsmIssuer<'_> {
    fn authorise(&mut self, r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        let input = r
            .cryptogram_input
            .ok_or_else(|| OnlineUnavailable("no version 01 cryptogram input".into()))?;
        let (pan, psn) = pan_psn(r.pan, r.psn);
        let arc = *b"00";
        let q = ArqcRequest {
            mk_ac: MK_AC_LABEL,
            pan: &pan,
            psn: &psn,
            atc: r.atc,
            data: input.as_bytes(),
            arqc: r.arqc,
            arc,
        };
        self.seen.push((r.arqc, r.atc));
        let arpc = match self.hsm.verify_arqc(&q) {
            Ok(arpc) => arpc,
            Err(ClientError::Hsm(ErrorCode::VerificationFailure)) => {
                self.verified.push(false);
                return Ok(OnlineResponse {
                    arc: *b"05",
                    issuer_authentication_data: None,
                    issuer_scripts: Vec::new(),
                });
            }
            Err(e) => return Err(OnlineUnavailable(e.to_string())),
        };
        self.verified.push(true);
        let arpc = if self.wrong_arpc {
            let mut other = q.clone();
            other.arqc[0] ^= 0x01;
            self.hsm.generate_arpc(&other).unwrap()
        } else {
            arpc
        };
        Ok(OnlineResponse {
            arc,
            issuer_authentication_data: Some([&arpc[..], &arc[..]].concat()),
            issuer_scripts: Vec::new(),
        })
    }
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

fn ca_store(card: &TestCard) -> CaStore {
    let mut ca = CaStore::new();
    match card.section().ca_key().unwrap() {
        TerminalCaKey::Sm2(k) => ca.add_sm2(k),
        TerminalCaKey::Rsa(k) => ca.add_rsa(k),
    }
    ca
}

fn params(amount: u64) -> TransactionParams {
    TransactionParams::purchase(
        Amount::new(amount).unwrap(),
        Date::new(2026, 3, 15).unwrap(),
        Time::new(10, 20, 30).unwrap(),
        [0x5a, 0x17, 0xc3, 0x09],
    )
}

/// The kiosk as an online-capable terminal: type `25` and a TTQ without "offline only"
/// (JR/T 0025.6 附录 A.1, JR/T 0025.12 表3).
fn online_terminal() -> TerminalConfig {
    let mut t = TerminalConfig::kiosk();
    t.terminal_type = 0x25;
    t.ttq.clear(TtqBit::OfflineOnly);
    t
}

fn contact(
    name: &str,
    terminal: &TerminalConfig,
    amount: u64,
    issuer: &mut HsmIssuer<'_>,
) -> (TransactionRecord, SoftCard) {
    let card = TestCard::new(name);
    let ca = ca_store(&card);
    let mut pad = Pad(Some(profile(name).pin.value));
    let mut journal = MemoryJournal::default();
    let mut s = CardSession::new(card.card);
    let rec = run_contact(
        &mut s,
        terminal,
        &ca,
        params(amount),
        &mut Hooks {
            pin_pad: &mut pad,
            hot_list: &NoHotList,
            online: issuer,
            journal: &mut journal,
        },
    );
    (rec, s.into_channel())
}

fn qpboc(
    name: &str,
    terminal: &TerminalConfig,
    amount: u64,
    issuer: &mut HsmIssuer<'_>,
) -> (TransactionRecord, SoftCard) {
    let card = TestCard::new(name);
    let ca = ca_store(&card);
    let mut journal = MemoryJournal::default();
    let mut s = CardSession::new(card.card);
    let rec = run_qpboc(
        &mut s,
        terminal,
        &ca,
        params(amount),
        &mut QpbocHooks {
            hot_list: &NoHotList,
            online: issuer,
            journal: &mut journal,
        },
    );
    (rec, s.into_channel())
}

const CARDS: [(&str, Algorithm); 2] = [
    ("zhangsan", Algorithm::Sm),
    ("wangwu-rsa", Algorithm::International),
];

#[test]
fn contact_offline_tc_verifies_in_hsm_sm4_and_3des() {
    for (name, algorithm) in CARDS {
        let card = TestCard::new(name);
        assert_eq!(card.algorithm(), algorithm);
        let mut hsm = hsm_for(&card);
        let mut issuer = HsmIssuer::new(&mut hsm);
        let (rec, _) = contact(name, &TerminalConfig::kiosk(), 1_500, &mut issuer);
        assert!(issuer.seen.is_empty(), "{name}: offline, no issuer");
        assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{name}");
        assert!(rec.ec, "{name}: electronic cash");
        assert_eq!(rec.cid.unwrap().ac_type(), Some(AcType::Tc), "{name}");
        assert_eq!(
            rec.cryptogram_source,
            Some(CryptogramSource::FirstGenerateAc)
        );
        assert_eq!(
            rec.iad[7],
            match algorithm {
                Algorithm::Sm => 0x04,
                Algorithm::International => 0x01,
            },
            "{name}: algorithm id in the IAD (JR/T 0025.5 附录 F)"
        );
        assert_verifies_only_as_sent(&mut hsm, &rec, name);
    }
}

#[test]
fn qpboc_offline_tc_verifies_in_hsm_sm4_and_3des() {
    for (name, _) in CARDS {
        let card = TestCard::new(name);
        let mut hsm = hsm_for(&card);
        let mut issuer = HsmIssuer::new(&mut hsm);
        let (rec, _) = qpboc(name, &TerminalConfig::kiosk(), 2_000, &mut issuer);
        assert!(issuer.seen.is_empty(), "{name}: offline, no issuer");
        assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{name}");
        assert_eq!(
            rec.cryptogram_source,
            Some(CryptogramSource::GetProcessingOptions)
        );
        // JR/T 0025.12 表10: every PDOL element but the TTQ, in order.
        let input = rec.cryptogram_input().unwrap();
        assert_eq!(input.as_bytes()[..29], rec.pdol_data[4..33], "{name}");
        assert_verifies_only_as_sent(&mut hsm, &rec, name);
    }
}

#[test]
fn contact_online_arqc_and_arpc_from_hsm_then_tc() {
    for (name, _) in CARDS {
        let card = TestCard::new(name);
        let mut hsm = hsm_for(&card);
        let mut issuer = HsmIssuer::new(&mut hsm);
        // Above the EC single limit and the balance: a plain debit/credit purchase, over the
        // floor limit, so online.
        let (rec, card) = contact(name, &online_terminal(), 60_000, &mut issuer);
        assert_eq!(issuer.verified, [true], "{name}: the HSM verified the ARQC");
        let (arqc, atc) = issuer.seen[0];
        assert_eq!(rec.arqc, Some(arqc));
        assert_eq!(rec.atc, Some(atc));
        // The card accepted the HSM's ARPC in EXTERNAL AUTHENTICATE and approved.
        assert!(
            rec.tsi.contains(TsiBit::IssuerAuthenticationPerformed),
            "{name}"
        );
        assert!(
            !rec.tvr.contains(TvrBit::IssuerAuthenticationFailed),
            "{name}: the card accepted the ARPC"
        );
        assert_eq!(rec.outcome, Outcome::ApprovedOnline, "{name}");
        let state = card.image().pboc.as_ref().unwrap();
        assert!(!state.indicators.issuer_auth_failed, "{name}");
        assert_eq!(state.last_online_atc, atc, "{name}: online ATC register");
        // The second GENERATE AC's TC verifies too (TVR and unpredictable number of CDOL2).
        assert_eq!(
            rec.cryptogram_source,
            Some(CryptogramSource::SecondGenerateAc)
        );
        assert_eq!(rec.cid.unwrap().ac_type(), Some(AcType::Tc));
        assert_ne!(rec.cryptogram, rec.arqc);
        assert_verifies_only_as_sent(&mut hsm, &rec, name);
    }
}

#[test]
fn contact_online_wrong_arpc_is_refused_by_the_card() {
    let name = "zhangsan";
    let card = TestCard::new(name);
    let mut hsm = hsm_for(&card);
    let mut issuer = HsmIssuer::new(&mut hsm);
    issuer.wrong_arpc = true;
    let (rec, card) = contact(name, &online_terminal(), 60_000, &mut issuer);
    assert_eq!(issuer.verified, [true]);
    assert!(rec.tsi.contains(TsiBit::IssuerAuthenticationPerformed));
    assert!(
        rec.tvr.contains(TvrBit::IssuerAuthenticationFailed),
        "EXTERNAL AUTHENTICATE refused the ARPC"
    );
    assert!(
        card.image()
            .pboc
            .as_ref()
            .unwrap()
            .indicators
            .issuer_auth_failed,
        "the card remembers the failed issuer authentication"
    );
}

#[test]
fn qpboc_online_arqc_verifies_in_hsm_sm4_and_3des() {
    for (name, _) in CARDS {
        let card = TestCard::new(name);
        let mut hsm = hsm_for(&card);
        let mut issuer = HsmIssuer::new(&mut hsm);
        // Above the EC balance: the card asks to go online (JR/T 0025.12 §7.7.10).
        let (rec, _) = qpboc(name, &online_terminal(), 60_000, &mut issuer);
        assert_eq!(issuer.verified, [true], "{name}: the HSM verified the ARQC");
        assert_eq!(rec.outcome, Outcome::ApprovedOnline, "{name}");
        assert_eq!(rec.cid.unwrap().ac_type(), Some(AcType::Arqc));
        assert_eq!(rec.arqc, rec.cryptogram);
        // A qPBOC card gets no second command, so it never sees the ARPC; the record's
        // input is the one the issuer checked.
        assert_verifies_only_as_sent(&mut hsm, &rec, name);
    }
}
