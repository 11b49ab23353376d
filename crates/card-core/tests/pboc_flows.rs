//! The PBOC kernel against the reference card, live: the flows of the issue with SM and RSA
//! cards, and each negative case on its own (tampered certificates and signatures, expired
//! card, wrong and blocked PIN, EC limit and balance, GPO `6985`, malformed records and missing
//! mandatory data, hot-listed card), plus online paths, scripts and torn-debit recovery.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_refcard;

use card_core::CardSession;
use card_core::pboc::bits::{AcType, TsiBit};
use card_core::pboc::ec::{self, LoadLogMacVerifier};
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::recovery::{Recovery, check_debit};
use card_core::pboc::risk::{HotListEntries, NoHotList};
use card_core::pboc::{
    Amount, Hooks, OdaMethod, Outcome, PbocError, TerminalConfig, TransactionParams,
    TransactionRecord, TvrBit, run_contact,
};
use card_core::tlv::Tag;
use pboc_refcard::*;

struct Run {
    rec: TransactionRecord,
    card: RefCard,
    journal: MemoryJournal,
    issuer: TestIssuer,
    pins: ScriptedPinPad,
}

fn contact_with(
    profile: Profile,
    terminal: &TerminalConfig,
    params: TransactionParams,
    pins: &[&'static str],
    mut issuer: TestIssuer,
    hot: &dyn card_core::pboc::HotList,
) -> Run {
    let algo = profile.algo;
    let mut s = CardSession::new(RefCard::new(profile));
    let mut pins = ScriptedPinPad::new(pins);
    let mut journal = MemoryJournal::default();
    let rec = {
        let mut hooks = Hooks {
            pin_pad: &mut pins,
            hot_list: hot,
            online: &mut issuer,
            journal: &mut journal,
        };
        run_contact(&mut s, terminal, &ca_store(algo), params, &mut hooks)
    };
    Run {
        rec,
        card: s.into_channel(),
        journal,
        issuer,
        pins,
    }
}

fn contact(profile: Profile, online: bool, amount: u64) -> Run {
    let algo = profile.algo;
    contact_with(
        profile,
        &terminal(online),
        params(amount),
        &[],
        TestIssuer::new(algo),
        &NoHotList,
    )
}

fn qpboc_with(
    profile: Profile,
    terminal: &TerminalConfig,
    amount: u64,
    hot: &dyn card_core::pboc::HotList,
) -> (TransactionRecord, RefCard, TestIssuer) {
    let algo = profile.algo;
    let mut s = CardSession::new(RefCard::new(profile));
    let mut issuer = TestIssuer::new(algo);
    let mut journal = MemoryJournal::default();
    let rec = run_qpboc(
        &mut s,
        terminal,
        &ca_store(algo),
        params(amount),
        &mut QpbocHooks {
            hot_list: hot,
            online: &mut issuer,
            journal: &mut journal,
        },
    );
    assert_eq!(journal.0.len(), 1, "qPBOC journals before the GPO");
    (rec, s.into_channel(), issuer)
}

fn qpboc(profile: Profile, amount: u64) -> (TransactionRecord, RefCard, TestIssuer) {
    qpboc_with(profile, &terminal(false), amount, &NoHotList)
}

/// Recompute the cryptogram as an issuer host would from the record's cryptogram input.
fn cryptogram_checks(rec: &TransactionRecord, algo: Algo) -> bool {
    use card_core::crypto::kdf;
    let (imk_ac, _) = imk(algo);
    let pan = rec.pan.as_ref().unwrap().reveal().to_string();
    let psn = rec.psn.map(|p| format!("{p:02X}"));
    let mk = kdf::derive_card_key(&imk_ac, &pan, psn.as_deref()).unwrap();
    let sk = kdf::derive_session_key(&mk, rec.atc.unwrap());
    let input = rec
        .cryptogram_input()
        .expect("a version 01 cryptogram input");
    assert_eq!(input.len(), 37, "表E.1: 29 + AIP + ATC + CVR");
    kdf::application_cryptogram(&sk, input.as_bytes(), Default::default())
        == rec.cryptogram.unwrap()
}

#[test]
fn contact_ec_purchase_sm_dda() {
    let r = contact(Profile::sm(), false, 1500);
    let rec = &r.rec;
    assert_eq!(rec.outcome, Outcome::ApprovedOffline);
    assert_eq!(rec.oda, Some(OdaMethod::Dda));
    assert!(rec.ec);
    assert_eq!(rec.ec_balance_before, Amount::new(50_000));
    assert_eq!(rec.ec_balance_after, Amount::new(48_500));
    assert_eq!(r.card.balance, 48_500);
    assert_eq!(rec.cid.unwrap().ac_type(), Some(AcType::Tc));
    assert_eq!(rec.atc, Some(0x11));
    assert_eq!(rec.arc, Some(*b"Y1"));
    assert_eq!(rec.tvr.to_bytes(), [0; 5]);
    for bit in [
        TsiBit::OdaPerformed,
        TsiBit::CardholderVerificationPerformed,
        TsiBit::CardRiskManagementPerformed,
        TsiBit::TerminalRiskManagementPerformed,
    ] {
        assert!(rec.tsi.contains(bit), "{bit:?}");
    }
    assert_eq!(rec.cvm_results.0, [0x1f, 0x00, 0x02]);
    assert_eq!(rec.cryptogram_data.len(), 52, "CDOL1 data");
    assert!(cryptogram_checks(rec, Algo::Sm));
    assert!(rec.card_debited_offline());
    // The input: the 表E.1 elements of CDOL1 (not time or merchant), AIP, ATC, CVR.
    let input = rec.cryptogram_input().unwrap();
    assert_eq!(input.as_bytes()[..29], rec.cryptogram_data[..29]);
    assert_eq!(input.as_bytes()[29..31], rec.aip.unwrap().to_bytes());
    assert_eq!(input.as_bytes()[31..33], 0x11u16.to_be_bytes());
    assert_eq!(input.as_bytes()[33..], rec.iad[3..7]);
    assert_eq!(
        rec.cryptogram_source,
        Some(card_core::pboc::CryptogramSource::FirstGenerateAc)
    );
    assert!(
        !format!("{input:?}").contains("1234"),
        "Debug shows no data"
    );
    assert!(rec.debit_attempted);
    // The write-ahead intent came before, with the ATC and balance of before.
    let intent = &r.journal.0[0];
    assert_eq!(intent.atc_before, Some(0x10));
    assert_eq!(intent.ec_balance_before, Amount::new(50_000));
    assert_eq!(intent.amount, Amount::new(1500).unwrap());
    // The PAN is masked when shown.
    assert_eq!(rec.pan.as_ref().unwrap().to_string(), "622848*********0018");
    assert!(!format!("{rec:?}").contains("6228480402564890018"));
}

#[test]
fn contact_ec_purchase_rsa_dda() {
    let r = contact(Profile::rsa(), false, 1500);
    assert_eq!(
        r.rec.outcome,
        Outcome::ApprovedOffline,
        "{:?}",
        r.rec.oda_failure
    );
    assert_eq!(r.rec.oda, Some(OdaMethod::Dda));
    assert_eq!(r.rec.tvr.to_bytes(), [0; 5]);
    assert_eq!(r.rec.ec_balance_after, Amount::new(48_500));
    assert!(cryptogram_checks(&r.rec, Algo::Rsa));
}

#[test]
fn contact_cda_sm_and_rsa() {
    for profile in [Profile::sm(), Profile::rsa()] {
        let algo = profile.algo;
        let r = contact(
            Profile {
                aip: [0x7d, 0x00],
                ..profile
            },
            false,
            1500,
        );
        assert_eq!(
            r.rec.outcome,
            Outcome::ApprovedOffline,
            "{algo:?}: {:?}",
            r.rec.oda_failure
        );
        assert_eq!(r.rec.oda, Some(OdaMethod::Cda));
        assert!(!r.rec.tvr.contains(TvrBit::CdaFailed));
        // The cryptogram came out of the signature and still checks.
        assert!(cryptogram_checks(&r.rec, algo));
        assert!(
            r.card.seen.iter().any(|c| c[..3] == [0x80, 0xae, 0x50]),
            "TC with CDA"
        );
    }
}

#[test]
fn contact_sda_sm_and_rsa() {
    for profile in [Profile::sm(), Profile::rsa()] {
        let r = contact(
            Profile {
                aip: [0x5c, 0x00],
                ..profile
            },
            false,
            1500,
        );
        assert_eq!(
            r.rec.outcome,
            Outcome::ApprovedOffline,
            "{:?}",
            r.rec.oda_failure
        );
        assert_eq!(r.rec.oda, Some(OdaMethod::Sda));
    }
}

#[test]
fn tampered_issuer_certificate_declines_offline_and_goes_online_when_possible() {
    for profile in [Profile::sm(), Profile::rsa()] {
        let tampered = Profile {
            tamper: Tamper::IssuerCertificate,
            ..profile.clone()
        };
        let r = contact(tampered.clone(), false, 1500);
        assert!(r.rec.tvr.contains(TvrBit::DdaFailed));
        assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
        assert_eq!(r.card.balance, 50_000, "nothing debited");
        // The same card at an online terminal: TAC-online has DDA failed, the issuer approves.
        let r = contact(tampered, true, 1500);
        assert!(r.rec.tvr.contains(TvrBit::DdaFailed));
        assert_eq!(r.rec.outcome, Outcome::ApprovedOnline);
        assert_eq!(r.issuer.arqc_valid, [true]);
    }
}

#[test]
fn tampered_icc_certificate_and_dynamic_signature() {
    for tamper in [Tamper::IccCertificate, Tamper::DynamicSignature] {
        let r = contact(
            Profile {
                tamper,
                ..Profile::sm()
            },
            false,
            1500,
        );
        assert!(r.rec.tvr.contains(TvrBit::DdaFailed), "{tamper:?}");
        assert!(r.rec.oda_failure.is_some());
        assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
    }
}

#[test]
fn tampered_cda_signature_declines_the_tc() {
    for profile in [Profile::sm(), Profile::rsa()] {
        let r = contact(
            Profile {
                aip: [0x7d, 0x00],
                tamper: Tamper::DynamicSignature,
                ..profile
            },
            false,
            1500,
        );
        assert!(r.rec.tvr.contains(TvrBit::CdaFailed));
        assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
        assert_eq!(r.rec.arc, Some(*b"Z1"));
        // The card returned a TC for electronic cash and debited: booked all the same.
        assert_eq!(r.card.balance, 48_500);
        assert!(r.rec.card_debited_offline());
    }
}

#[test]
fn expired_card() {
    let r = contact(
        Profile {
            expiry: [0x25, 0x12, 0x31],
            ..Profile::sm()
        },
        false,
        1500,
    );
    assert!(r.rec.tvr.contains(TvrBit::Expired));
    assert!(!r.rec.tvr.contains(TvrBit::DdaFailed));
    assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
    let (rec, _, _) = qpboc(
        Profile {
            expiry: [0x25, 0x12, 0x31],
            ..Profile::sm()
        },
        1500,
    );
    assert!(rec.tvr.contains(TvrBit::Expired));
    assert_eq!(rec.outcome, Outcome::DeclinedOffline);
}

#[test]
fn not_yet_effective_card() {
    let r = contact(
        Profile {
            effective: [0x27, 0x01, 0x01],
            ..Profile::sm()
        },
        false,
        1500,
    );
    assert!(r.rec.tvr.contains(TvrBit::NotYetEffective));
}

fn pin_profile() -> Profile {
    Profile {
        cvm_list: h("00000000 00000000 0103"),
        ..Profile::sm()
    }
}

#[test]
fn wrong_pin_then_right() {
    let r = contact_with(
        pin_profile(),
        &terminal(false),
        params(1500),
        &["111111", "123456"],
        TestIssuer::new(Algo::Sm),
        &NoHotList,
    );
    assert_eq!(r.rec.outcome, Outcome::ApprovedOffline);
    assert_eq!(r.rec.cvm_results.0, [0x01, 0x03, 0x02]);
    assert_eq!(r.pins.prompts.len(), 2);
    assert_eq!(r.pins.prompts[0].tries_left, Some(3));
    assert_eq!(r.pins.prompts[1].tries_left, Some(2));
    assert!(r.pins.prompts[1].previous_wrong);
    assert_eq!(r.card.pin_tries_left, 3, "reset by the right PIN");
    let verifies: Vec<_> = r.card.seen.iter().filter(|c| c[1] == 0x20).collect();
    assert_eq!(verifies.len(), 2);
    assert_eq!(verifies[0][3], 0x80, "plaintext PIN, P2 = 80");
}

#[test]
fn pin_blocked() {
    // The counter cannot be read; VERIFY answers 6983.
    let r = contact_with(
        Profile {
            pin_tries: 0,
            pin_counter_readable: false,
            ..pin_profile()
        },
        &terminal(false),
        params(1500),
        &["123456"],
        TestIssuer::new(Algo::Sm),
        &NoHotList,
    );
    assert!(r.rec.tvr.contains(TvrBit::PinTryLimitExceeded));
    assert!(r.rec.tvr.contains(TvrBit::CardholderVerificationFailed));
    assert_eq!(r.rec.cvm_results.0, [0x01, 0x03, 0x01]);
    assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
    // A readable counter of 0: no PIN prompt at all.
    let r = contact_with(
        Profile {
            pin_tries: 0,
            ..pin_profile()
        },
        &terminal(false),
        params(1500),
        &["123456"],
        TestIssuer::new(Algo::Sm),
        &NoHotList,
    );
    assert!(r.pins.prompts.is_empty());
    assert!(r.rec.tvr.contains(TvrBit::PinTryLimitExceeded));
    assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
}

#[test]
fn pin_bypassed() {
    let r = contact_with(
        pin_profile(),
        &terminal(false),
        params(1500),
        &[],
        TestIssuer::new(Algo::Sm),
        &NoHotList,
    );
    assert!(r.rec.tvr.contains(TvrBit::PinNotEntered));
    assert!(r.rec.tvr.contains(TvrBit::CardholderVerificationFailed));
}

#[test]
fn ec_terminal_limit_exceeded() {
    // 1,000.00 is not below 9F7B: 9F7A = 00, the card does a standard debit/credit
    // transaction, which the offline kiosk declines on the floor limit.
    let r = contact(Profile::sm(), false, 100_000);
    assert!(!r.rec.ec);
    let gpo = r.card.seen.iter().find(|c| c[1] == 0xa8).unwrap();
    assert_eq!(gpo[7 + 33], 0x00, "9F7A");
    assert!(r.rec.tvr.contains(TvrBit::FloorLimitExceeded));
    assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
    assert_eq!(r.card.balance, 50_000);
}

#[test]
fn insufficient_ec_balance() {
    let r = contact(Profile::sm(), false, 60_000);
    assert!(!r.rec.ec, "the card does not treat it as EC");
    assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
    assert_eq!(r.card.balance, 50_000);
    // Online terminal: goes online on the floor limit.
    let r = contact(Profile::sm(), true, 60_000);
    assert_eq!(r.rec.outcome, Outcome::ApprovedOnline);
    assert_eq!(r.issuer.arqc_valid, [true]);
    // qPBOC: the card asks for online; the offline kiosk declines.
    let (rec, card, _) = qpboc(Profile::sm(), 60_000);
    assert_eq!(rec.cid.unwrap().ac_type(), Some(AcType::Arqc));
    assert_eq!(rec.outcome, Outcome::DeclinedOffline);
    assert_eq!(card.balance, 50_000);
}

#[test]
fn ec_reset_threshold_sends_online() {
    // 500.00 - 495.00 = 5.00 < 10.00 threshold: online when the terminal can.
    let r = contact(Profile::sm(), true, 49_500);
    assert!(r.rec.ec);
    assert_eq!(r.issuer.requests, 1);
    assert_eq!(r.rec.outcome, Outcome::ApprovedOnline);
    // Offline terminal: approved offline anyway (JR/T 0025.13 §7.4.4).
    let r = contact(Profile::sm(), false, 49_500);
    assert_eq!(r.rec.outcome, Outcome::ApprovedOffline);
    assert_eq!(r.rec.ec_balance_after, Amount::new(500));
}

#[test]
fn gpo_6985_contact_tries_the_next_application() {
    let r = contact(
        Profile {
            gpo_refuses: true,
            ..Profile::sm()
        },
        false,
        1500,
    );
    // One application only: none left.
    assert_eq!(r.rec.outcome, Outcome::Aborted(PbocError::NoApplication));
    assert_eq!(r.card.seen.iter().filter(|c| c[1] == 0xa8).count(), 1);
}

#[test]
fn gpo_6985_qpboc_sm_only_card_and_non_sm_terminal() {
    let mut t = terminal(false);
    t.sm_supported = false;
    let (rec, _, _) = qpboc_with(Profile::sm(), &t, 1500, &NoHotList);
    assert_eq!(
        rec.outcome,
        Outcome::Aborted(PbocError::GpoConditionsNotSatisfied)
    );
    // The same terminal with a dual-algorithm card goes on.
    let (rec, _, _) = qpboc_with(
        Profile {
            sm_only: false,
            ..Profile::sm()
        },
        &t,
        1500,
        &NoHotList,
    );
    assert_eq!(rec.outcome, Outcome::ApprovedOffline);
}

#[test]
fn malformed_record() {
    let r = contact(
        Profile {
            garbage_record: true,
            ..Profile::sm()
        },
        false,
        1500,
    );
    assert!(matches!(
        r.rec.outcome,
        Outcome::Aborted(PbocError::Tlv { .. })
    ));
    assert!(!r.rec.debit_attempted);
}

#[test]
fn missing_mandatory_data() {
    for tag in [0x5a, 0x5f24, 0x8c] {
        let r = contact(
            Profile {
                omit: vec![tag],
                ..Profile::sm()
            },
            false,
            1500,
        );
        assert_eq!(
            r.rec.outcome,
            Outcome::Aborted(PbocError::MissingData { tag: Tag::new(tag) }),
            "{tag:X}"
        );
    }
}

#[test]
fn hot_listed_card() {
    let hot = HotListEntries(vec![("6228480402564890018".into(), Some(0x01))]);
    let r = contact_with(
        Profile::sm(),
        &terminal(false),
        params(1500),
        &[],
        TestIssuer::new(Algo::Sm),
        &hot,
    );
    assert!(r.rec.tvr.contains(TvrBit::CardOnExceptionFile));
    assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
    assert_eq!(r.card.balance, 50_000);
    assert!(!r.rec.card_debited_offline(), "declined before GENERATE AC");
    let (rec, card, _) = qpboc_with(Profile::sm(), &terminal(false), 1500, &hot);
    assert!(rec.tvr.contains(TvrBit::CardOnExceptionFile));
    assert_eq!(rec.outcome, Outcome::DeclinedOffline);
    // qPBOC debits in the GPO: the card's balance moved although the terminal declined, and
    // the record says the ledger must book it.
    assert_eq!(card.balance, 48_500);
    assert!(rec.card_debited_offline());
    assert!(cryptogram_checks(&rec, Algo::Sm), "a valid TC to book");
}

#[test]
fn qpboc_fdda_sm_and_rsa() {
    for profile in [Profile::sm(), Profile::rsa()] {
        let algo = profile.algo;
        let (rec, card, _) = qpboc(profile, 1500);
        assert_eq!(
            rec.outcome,
            Outcome::ApprovedOffline,
            "{algo:?}: {:?}",
            rec.oda_failure
        );
        assert_eq!(rec.oda, Some(OdaMethod::Fdda));
        assert_eq!(rec.ec_balance_after, Amount::new(48_500));
        assert_eq!(card.balance, 48_500);
        assert!(cryptogram_checks(&rec, algo));
        assert_eq!(
            rec.cryptogram_input().unwrap().as_bytes()[..29],
            rec.pdol_data[4..33],
            "JR/T 0025.12 表10: the PDOL data without the TTQ"
        );
        // fDDA version 01: the last record carries 9F69.
        assert!(card.seen.iter().any(|c| c[..4] == [0x00, 0xb2, 0x02, 0x1c]));
    }
}

#[test]
fn qpboc_tampered_signature_follows_the_ctq() {
    let tampered = Profile {
        tamper: Tamper::DynamicSignature,
        ..Profile::sm()
    };
    let (rec, _, _) = qpboc(tampered.clone(), 1500);
    assert!(rec.tvr.contains(TvrBit::DdaFailed));
    assert_eq!(rec.outcome, Outcome::DeclinedOffline);
    // CTQ "online if ODA fails" and an online reader: the TC goes online.
    let (rec, _, issuer) = qpboc_with(
        Profile {
            ctq: [0x20, 0x00],
            ..tampered.clone()
        },
        &terminal(true),
        1500,
        &NoHotList,
    );
    assert_eq!(rec.outcome, Outcome::ApprovedOnline);
    assert_eq!(issuer.requests, 1);
    // CTQ "terminate" and a reader that supports contact: use the contact interface.
    let mut t = terminal(false);
    t.ttq = card_core::pboc::bits::Ttq::from_bytes([0x36, 0x00, 0x00, 0x80]);
    let (rec, _, _) = qpboc_with(
        Profile {
            ctq: [0x10, 0x00],
            ..tampered
        },
        &t,
        1500,
        &NoHotList,
    );
    assert_eq!(
        rec.outcome,
        Outcome::Aborted(PbocError::UseContactInterface)
    );
}

#[test]
fn qpboc_online_arqc() {
    let (rec, _, issuer) = qpboc_with(Profile::sm(), &terminal(true), 60_000, &NoHotList);
    assert_eq!(rec.outcome, Outcome::ApprovedOnline);
    assert_eq!(issuer.arqc_valid, [true]);
    assert!(rec.arqc.is_some());
    assert!(
        cryptogram_checks(&rec, Algo::Sm),
        "the ARQC from the record"
    );
}

#[test]
fn online_paths() {
    // Issuer declines.
    let mut issuer = TestIssuer::new(Algo::Sm);
    issuer.arc = *b"05";
    let r = contact_with(
        Profile::sm(),
        &terminal(true),
        params(60_000),
        &[],
        issuer,
        &NoHotList,
    );
    assert_eq!(r.rec.outcome, Outcome::DeclinedOnline);
    assert_eq!(r.rec.cid.unwrap().ac_type(), Some(AcType::Aac));
    assert!(!r.rec.card_debited_offline());
    assert_eq!(r.issuer.arqc_valid, [true]);
    assert!(cryptogram_checks(&r.rec, Algo::Sm), "the second AAC");
    // Issuer unreachable: default action codes; the card's IAC-default has floor limit.
    let mut issuer = TestIssuer::new(Algo::Sm);
    issuer.unreachable = true;
    let r = contact_with(
        Profile::sm(),
        &terminal(true),
        params(60_000),
        &[],
        issuer,
        &NoHotList,
    );
    assert_eq!(r.rec.outcome, Outcome::DeclinedOffline);
    assert_eq!(r.rec.arc, Some(*b"Z3"));
    // Bad ARPC: issuer authentication fails, TVR says so.
    let mut issuer = TestIssuer::new(Algo::Sm);
    issuer.bad_arpc = true;
    let r = contact_with(
        Profile::sm(),
        &terminal(true),
        params(60_000),
        &[],
        issuer,
        &NoHotList,
    );
    assert!(r.rec.tvr.contains(TvrBit::IssuerAuthenticationFailed));
    assert!(r.rec.tsi.contains(TsiBit::IssuerAuthenticationPerformed));
}

fn load(mut issuer: TestIssuer) -> Run {
    let mut s = CardSession::new(RefCard::new(Profile::sm()));
    let mut pins = ScriptedPinPad::new(&[]);
    let mut journal = MemoryJournal::default();
    let rec = ec::load(
        &mut s,
        &terminal(true),
        &ca_store(Algo::Sm),
        params(30_000),
        &mut Hooks {
            pin_pad: &mut pins,
            hot_list: &NoHotList,
            online: &mut issuer,
            journal: &mut journal,
        },
    );
    Run {
        rec,
        card: s.into_channel(),
        journal,
        issuer,
        pins,
    }
}

#[test]
fn ec_load_with_issuer_script() {
    let mut issuer = TestIssuer::new(Algo::Sm);
    issuer.load_to = Some(100_000);
    let r = load(issuer);
    assert_eq!(r.rec.outcome, Outcome::ApprovedOnline);
    assert_eq!(r.rec.transaction_type, 0x60);
    assert!(r.rec.tvr.contains(TvrBit::MerchantForcedOnline));
    // The second GENERATE AC's TC: TVR and unpredictable number from CDOL2.
    assert_eq!(r.issuer.arqc_valid, [true]);
    assert_eq!(
        r.rec.cryptogram_source,
        Some(card_core::pboc::CryptogramSource::SecondGenerateAc)
    );
    assert!(cryptogram_checks(&r.rec, Algo::Sm), "the second TC");
    assert!(
        !r.rec.card_debited_offline(),
        "an online TC debits no EC balance"
    );
    assert_eq!(
        r.rec.cryptogram_input().unwrap().as_bytes()[14..19],
        r.rec.cdol2_data[12..17],
        "TVR of CDOL2"
    );
    assert_eq!(r.rec.script_results, [[0x20, 0, 0, 0, 1]]);
    assert!(r.rec.tsi.contains(TsiBit::ScriptProcessingPerformed));
    assert_eq!(r.rec.ec_balance_after, Amount::new(100_000));
    assert_eq!(r.card.balance, 100_000);
    assert_eq!(r.card.load_log.len(), 1);
    // Script with a bad MAC: the card refuses, the TVR says so.
    let mut issuer = TestIssuer::new(Algo::Sm);
    issuer.load_to = Some(100_000);
    issuer.bad_script_mac = true;
    let r = load(issuer);
    assert!(r.rec.tvr.contains(TvrBit::ScriptFailedAfterFinalAc));
    assert_eq!(r.rec.script_results, [[0x11, 0, 0, 0, 1]]);
    assert_eq!(r.card.balance, 50_000);
    assert_eq!(r.rec.ec_balance_after, Amount::new(50_000));
}

#[test]
fn balance_logs_and_load_log() {
    // Load once, buy twice, then read everything back.
    let mut issuer = TestIssuer::new(Algo::Sm);
    issuer.load_to = Some(80_000);
    let loaded = load(issuer);
    let mut card = loaded.card;
    card.pin_tries_left = 3;
    let mut s = CardSession::new(card);
    for amount in [1500, 2500] {
        let mut pins = ScriptedPinPad::new(&[]);
        let mut issuer = TestIssuer::new(Algo::Sm);
        let mut journal = MemoryJournal::default();
        let rec = run_contact(
            &mut s,
            &terminal(false),
            &ca_store(Algo::Sm),
            params(amount),
            &mut Hooks {
                pin_pad: &mut pins,
                hot_list: &NoHotList,
                online: &mut issuer,
                journal: &mut journal,
            },
        );
        assert_eq!(rec.outcome, Outcome::ApprovedOffline);
    }
    let (app, balances) = ec::balance_inquiry(&mut s, &terminal(false)).unwrap();
    assert_eq!(balances.balance, Amount::new(76_000).unwrap());
    assert_eq!(balances.balance_limit, Amount::new(100_000));
    assert_eq!(balances.reset_threshold, Amount::new(1_000));
    let log = ec::read_transaction_log(&mut s, app.fci.log_entry.unwrap()).unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].amount(), Amount::new(2500));
    assert_eq!(log[1].amount(), Amount::new(1500));
    assert_eq!(
        log[0].merchant_name(),
        Some(&b"SOCIAL SECURITY BUREAU"[..20])
    );
    let entry = app.fci.load_log_entry.unwrap();
    let loads = ec::read_load_log(&mut s, entry).unwrap();
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0].before, Amount::new(50_000).unwrap());
    assert_eq!(loads[0].after, Amount::new(80_000).unwrap());
    let verifier = TestMacVerifier(Algo::Sm, "6228480402564890018", 0x01);
    let bundle = ec::read_load_log_all(&mut s, entry, Some(&verifier)).unwrap();
    assert_eq!(bundle.mac_valid, Some(true));
    assert_eq!(bundle.entries.len(), 1);
    assert_eq!(bundle.entries[0].after, Amount::new(80_000).unwrap());
    let mut forged = bundle.clone();
    forged.mac[0] ^= 1;
    assert!(!verifier.verify(
        &[&bundle.atc.to_be_bytes()[..], &[1], &[0; 22]].concat(),
        &forged.mac
    ));
}

fn reinsert_and_check(card: RefCard, intent: &card_core::pboc::DebitIntent) -> Recovery {
    let mut card = card;
    card.pull_before = None;
    card.pull_after = None;
    let mut s = CardSession::new(card);
    let app = ec::select_application(&mut s, &terminal(false)).unwrap();
    check_debit(&mut s, &app, intent).unwrap()
}

#[test]
fn torn_debit_is_recovered() {
    // Count the commands of a clean run to find the GENERATE AC.
    let clean = contact(Profile::sm(), false, 1500);
    let gac = clean.card.seen.iter().position(|c| c[1] == 0xae).unwrap() + 1;
    for (after, expected_done) in [(false, false), (true, true)] {
        let mut card = RefCard::new(Profile::sm());
        if after {
            card.pull_after = Some(gac);
        } else {
            card.pull_before = Some(gac);
        }
        let mut s = CardSession::new(card);
        let mut pins = ScriptedPinPad::new(&[]);
        let mut issuer = TestIssuer::new(Algo::Sm);
        let mut journal = MemoryJournal::default();
        let rec = run_contact(
            &mut s,
            &terminal(false),
            &ca_store(Algo::Sm),
            params(1500),
            &mut Hooks {
                pin_pad: &mut pins,
                hot_list: &NoHotList,
                online: &mut issuer,
                journal: &mut journal,
            },
        );
        assert!(matches!(rec.outcome, Outcome::Aborted(PbocError::Send(_))));
        assert!(rec.debit_attempted);
        let answer = reinsert_and_check(s.into_channel(), &journal.0[0]);
        if expected_done {
            assert!(
                matches!(&answer, Recovery::Completed(r) if r.amount() == Amount::new(1500)),
                "{answer:?}"
            );
        } else {
            assert_eq!(answer, Recovery::NotDone);
        }
    }
}

#[test]
fn torn_qpboc_debit_is_recovered() {
    for (after, done) in [(false, false), (true, true)] {
        let mut card = RefCard::new(Profile::sm());
        // SELECT PPSE, SELECT AID, GET DATA 9F36, GET DATA 9F79, GPO.
        if after {
            card.pull_after = Some(5);
        } else {
            card.pull_before = Some(5);
        }
        let mut s = CardSession::new(card);
        let mut issuer = TestIssuer::new(Algo::Sm);
        let mut journal = MemoryJournal::default();
        let rec = run_qpboc(
            &mut s,
            &terminal(false),
            &ca_store(Algo::Sm),
            params(1500),
            &mut QpbocHooks {
                hot_list: &NoHotList,
                online: &mut issuer,
                journal: &mut journal,
            },
        );
        assert!(matches!(rec.outcome, Outcome::Aborted(PbocError::Send(_))));
        let answer = reinsert_and_check(s.into_channel(), &journal.0[0]);
        assert_eq!(matches!(answer, Recovery::Completed(_)), done, "{answer:?}");
        if !done {
            assert_eq!(answer, Recovery::NotDone);
        }
    }
}

#[test]
fn steps_out_of_order_are_refused() {
    let terminal = terminal(false);
    let ca = ca_store(Algo::Sm);
    let mut t = card_core::pboc::ContactTransaction::new(&terminal, &ca, params(100));
    assert_eq!(
        t.restrictions(),
        Err(PbocError::OutOfOrder {
            step: "restrictions"
        })
    );
    let mut s = CardSession::new(RefCard::new(Profile::sm()));
    t.select(&mut s).unwrap();
    assert!(matches!(
        t.select(&mut s),
        Err(PbocError::OutOfOrder { .. })
    ));
    assert_eq!(t.phase(), card_core::pboc::Phase::Selected);
}
