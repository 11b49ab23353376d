//! The contract both ways: card-core's PBOC terminal kernel (written from docs/pboc-profile.md
//! on its own) runs whole transactions against this card: contact EC purchase with offline
//! PIN and CDA/DDA, qPBOC with fDDA, balance and logs, an electronic cash load through the
//! issuer, and the recovery check after a torn debit; SM and international profiles.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use card_core::CardSession;
use card_core::crypto::kdf;
use card_core::crypto::sm4::Sm4MacRule;
use card_core::pboc::bits::AcType;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::ec;
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::recovery::{Recovery, check_debit};
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{
    Amount, Date, Hooks, Outcome, TerminalConfig, Time, TransactionParams, run_contact,
};
use card_core::secret::Pin;
use firmware_tests::SoftCard;
use firmware_tests::pboc::profile::TerminalCaKey;
use pboc_support::*;

struct Pad(Vec<String>);

impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        if self.0.is_empty() {
            PinEntry::Bypassed
        } else {
            PinEntry::Pin(Pin::new(&self.0.remove(0)).unwrap())
        }
    }
}

/// The issuer: checks the ARQC over the cryptogram version 01 data the kernel hands over
/// (JR/T 0025.5 附录 E 表E.1: amounts, country, TVR, currency, date, type, unpredictable
/// number, AIP, ATC, CVR), answers with the ARPC and, for a load, the PUT DATA script MACed as
/// JR/T 0025.5 附录 C.2.4.
struct Issuer {
    card: TestCard,
    load_to: Option<u64>,
    arqc_ok: Vec<bool>,
}

impl OnlineAuthoriser for Issuer {
    fn authorise(&mut self, r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        let (mk_ac, mk_smi) = self.card.issuer_keys();
        let input = r.cryptogram_input.expect("a version 01 cryptogram input");
        self.arqc_ok
            .push(expected_ac(&mk_ac, r.atc, input.as_bytes()) == r.arqc);
        let arc = *b"00";
        let arpc = arpc(&mk_ac, r.atc, &r.arqc, &arc);
        let mut scripts = Vec::new();
        if let Some(to) = self.load_to {
            let cmd = script(&mk_smi, r.atc, &r.arqc, [0x04, 0xda, 0x9f, 0x79], &n12(to));
            // 72 { 9F18 script id, 86 command }.
            let mut inner = hex("9F1804 00000001");
            inner.push(0x86);
            inner.push(cmd.len() as u8);
            inner.extend(&cmd);
            scripts.push(0x72);
            scripts.push(inner.len() as u8);
            scripts.extend(inner);
        }
        Ok(OnlineResponse {
            arc,
            issuer_authentication_data: Some([&arpc[..], &arc[..]].concat()),
            issuer_scripts: scripts,
        })
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
        [0x0a, 0x0b, 0x0c, 0x0d],
    )
}

fn contact(
    name: &str,
    amount: u64,
    pins: &[&str],
) -> (card_core::pboc::TransactionRecord, SoftCard) {
    let card = TestCard::new(name);
    let ca = ca_store(&card);
    let mut issuer = Issuer {
        card: TestCard::new(name),
        load_to: None,
        arqc_ok: Vec::new(),
    };
    let mut s = CardSession::new(card.card);
    let mut pad = Pad(pins.iter().map(|p| (*p).to_string()).collect());
    let mut journal = MemoryJournal::default();
    let rec = run_contact(
        &mut s,
        &TerminalConfig::kiosk(),
        &ca,
        params(amount),
        &mut Hooks {
            pin_pad: &mut pad,
            hot_list: &NoHotList,
            online: &mut issuer,
            journal: &mut journal,
        },
    );
    assert_eq!(
        journal.0.len(),
        1,
        "the intent was journalled before the debit"
    );
    (rec, s.into_channel())
}

#[test]
fn kernel_contact_ec_purchase() {
    for name in ["zhangsan", "wangwu-rsa"] {
        let before = TestCard::new(name)
            .section()
            .ec
            .as_ref()
            .unwrap()
            .balance_fen;
        let pin = pboc_support::profile(name).pin.value;
        let (rec, card) = contact(name, 1_500, &[&pin]);
        assert_eq!(
            rec.outcome,
            Outcome::ApprovedOffline,
            "{name}: {:?}",
            rec.oda_failure
        );
        assert!(rec.ec, "{name}");
        assert!(rec.oda.is_some(), "{name}: offline data authentication");
        assert!(rec.oda_failure.is_none(), "{name}: {:?}", rec.oda_failure);
        assert_eq!(rec.cid.unwrap().ac_type(), Some(AcType::Tc));
        assert_eq!(rec.ec_balance_before, Amount::new(before));
        assert_eq!(rec.ec_balance_after, Amount::new(before - 1_500));
        assert_eq!(
            card.image()
                .pboc
                .as_ref()
                .unwrap()
                .ec
                .as_ref()
                .unwrap()
                .balance,
            before - 1_500
        );
        // The issuer's check of the TC, over the version 01 data.
        let t = TestCard::new(name);
        let (mk_ac, _) = t.issuer_keys();
        let input = rec.cryptogram_input().unwrap();
        assert_eq!(input.as_bytes()[..29], rec.cryptogram_data[..29]);
        assert_eq!(
            expected_ac(&mk_ac, rec.atc.unwrap(), input.as_bytes()),
            rec.cryptogram.unwrap(),
            "{name}: TC"
        );
    }
}

#[test]
fn kernel_contact_wrong_pin_then_right() {
    let (rec, card) = contact("lisi", 100, &["000000", "654321"]);
    assert!(rec.outcome.is_approved(), "{:?}", rec.outcome);
    assert_eq!(card.image().pboc.as_ref().unwrap().pin.tries_left, 3);
}

#[test]
fn kernel_qpboc_purchase() {
    for name in ["zhangsan", "wangwu-rsa", "lisi"] {
        let card = TestCard::new(name);
        let before = card.section().ec.as_ref().unwrap().balance_fen;
        let ca = ca_store(&card);
        let mut issuer = Issuer {
            card: TestCard::new(name),
            load_to: None,
            arqc_ok: Vec::new(),
        };
        let mut s = CardSession::new(card.card);
        let mut journal = MemoryJournal::default();
        let rec = run_qpboc(
            &mut s,
            &TerminalConfig::kiosk(),
            &ca,
            params(2_000),
            &mut QpbocHooks {
                hot_list: &NoHotList,
                online: &mut issuer,
                journal: &mut journal,
            },
        );
        assert_eq!(
            rec.outcome,
            Outcome::ApprovedOffline,
            "{name}: {:?}",
            rec.oda_failure
        );
        assert!(
            rec.oda_failure.is_none(),
            "{name}: fDDA {:?}",
            rec.oda_failure
        );
        let card = s.into_channel();
        let state = card.image().pboc.as_ref().unwrap();
        assert_eq!(state.ec.as_ref().unwrap().balance, before - 2_000, "{name}");
        assert!(state.tear.is_none(), "{name}: all records read");
    }
}

#[test]
fn kernel_balance_logs_and_load() {
    let name = "qianqi-ec";
    let card = TestCard::new(name);
    let ca = ca_store(&card);
    let mut issuer = Issuer {
        card: TestCard::new(name),
        load_to: Some(99_500),
        arqc_ok: Vec::new(),
    };
    let mut s = CardSession::new(card.card);
    let mut pad = Pad(Vec::new());
    let mut journal = MemoryJournal::default();
    let mut load = params(500);
    load.amount = Amount::new(500).unwrap();
    // The kiosk is offline-only (terminal type 26); a load needs an online-capable one (25).
    let mut online_terminal = TerminalConfig::kiosk();
    online_terminal.terminal_type = 0x25;
    let rec = ec::load(
        &mut s,
        &online_terminal,
        &ca,
        load,
        &mut Hooks {
            pin_pad: &mut pad,
            hot_list: &NoHotList,
            online: &mut issuer,
            journal: &mut journal,
        },
    );
    assert_eq!(
        issuer.arqc_ok,
        [true],
        "the ARQC checks at the issuer: {:?}",
        rec.outcome
    );
    assert_eq!(rec.outcome, Outcome::ApprovedOnline, "{:?}", rec.outcome);
    assert_eq!(rec.script_results.len(), 1);
    assert_eq!(
        rec.script_results[0][0] >> 4,
        0x2,
        "script performed: {:02X?}",
        rec.script_results
    );
    assert_eq!(rec.ec_balance_after, Amount::new(99_500));
    // Balance inquiry and the logs, as the kiosk shows them.
    let (app, balances) = ec::balance_inquiry(&mut s, &TerminalConfig::kiosk()).unwrap();
    assert_eq!(balances.balance, Amount::new(99_500).unwrap());
    assert_eq!(balances.balance_limit, Amount::new(100_000));
    let entry = app.fci.log_entry.unwrap();
    let log = ec::read_transaction_log(&mut s, entry).unwrap();
    assert_eq!(log.len(), 1, "the online load transaction");
    let load_entry = app.fci.load_log_entry.unwrap();
    let loads = ec::read_load_log(&mut s, load_entry).unwrap();
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0].before, Amount::new(99_000).unwrap());
    assert_eq!(loads[0].after, Amount::new(99_500).unwrap());
    struct Verifier(kdf::CardKey);
    impl ec::LoadLogMacVerifier for Verifier {
        fn verify(&self, data: &[u8], mac: &[u8; 4]) -> bool {
            let atc = u16::from_be_bytes([data[0], data[1]]);
            let sk = kdf::derive_session_key(&self.0, atc);
            kdf::secure_messaging_mac(&sk, data, Sm4MacRule::Part17LeftBytes) == *mac
        }
    }
    let (_, mk_smi) = TestCard::new(name).issuer_keys();
    let bundle = ec::read_load_log_all(&mut s, load_entry, Some(&Verifier(mk_smi))).unwrap();
    assert_eq!(bundle.entries.len(), 1);
    assert_eq!(bundle.mac_valid, Some(true));
}

#[test]
fn kernel_recovers_a_torn_debit() {
    for tear_the_debit in [true, false] {
        let mut card = TestCard::new("zhangsan");
        let ca = ca_store(&card);
        // GPO is commit 1, GENERATE AC commit 2 (no PIN entered: bypassed).
        if tear_the_debit {
            card.tear_at(2);
        }
        let storage = card.storage.clone();
        let mut issuer = Issuer {
            card: TestCard::new("zhangsan"),
            load_to: None,
            arqc_ok: Vec::new(),
        };
        let mut s = CardSession::new(card.card);
        let mut pad = Pad(Vec::new());
        let mut journal = MemoryJournal::default();
        let rec = run_contact(
            &mut s,
            &TerminalConfig::kiosk(),
            &ca,
            params(700),
            &mut Hooks {
                pin_pad: &mut pad,
                hot_list: &NoHotList,
                online: &mut issuer,
                journal: &mut journal,
            },
        );
        assert_eq!(
            rec.outcome.is_approved(),
            !tear_the_debit,
            "{:?}",
            rec.outcome
        );
        let intent = journal.0.pop().unwrap();
        // The card comes back (power cycle) and the kiosk resolves the intent.
        let mut soft = s.into_channel();
        soft.power_off();
        soft.power_on();
        let _ = storage;
        let mut s = CardSession::new(soft);
        let app = ec::select_application(&mut s, &TerminalConfig::kiosk()).unwrap();
        let recovery = check_debit(&mut s, &app, &intent).unwrap();
        if tear_the_debit {
            assert!(matches!(recovery, Recovery::NotDone), "{recovery:?}");
        } else {
            assert!(matches!(recovery, Recovery::Completed(_)), "{recovery:?}");
        }
    }
}
