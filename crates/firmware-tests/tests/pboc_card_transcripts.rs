//! Command/response transcripts recorded from the software card (tests/transcripts/*.txt, the
//! format of `card_core::transcript`), replayed both ways:
//!
//! - **against the card**: each recorded command goes to a fresh `SoftCard` built from the
//!   same profile, and its answer is compared with the recording;
//! - **against the kernel**: card-core's kernel runs the same flow over a `ReplayChannel` of
//!   the transcript, must send exactly the recorded commands, and reaches the same outcome.
//!
//! The flows are one card's day at the kiosk, in order, each a separate insertion (power
//! cycle between them): 张三's SM card (`zhangsan`): contact EC purchase of 15.00 with offline
//! PIN and CDA, qPBOC purchase of 20.00 with fDDA, electronic cash load of 135.00 (to 600.00,
//! online, issuer script `04DA9F79`), balance inquiry, transaction and load logs; 王五's
//! international card (`wangwu-rsa`): contact EC purchase of 25.00 with RSA CDA. Transcript
//! `n` was recorded on the card left by transcripts `1..n-1`, so it is replayed on a fresh
//! card after those.
//!
//! # Fresh values
//!
//! The card is deterministic for a given profile and state except for three numbers it draws
//! from its random source, as a card must: the ICC dynamic number inside a CDA signature
//! (GENERATE AC, JR/T 0025.17 §5.2.5.1 / JR/T 0025.7 §5.3.6.1), the ICC dynamic number of DDA
//! (INTERNAL AUTHENTICATE, §5.2.4.1), and the card unpredictable number of `9F69` that the
//! fDDA signature covers (qPBOC GPO and its last record, JR/T 0025.12 附录 B, 附录 C). The card
//! is not made deterministic there (that would take away the card's own contribution to the
//! freshness of its signatures); instead those fields are compared by verifying them:
//!
//! - every other byte of the answer, status word included, must equal the recording; the
//!   signature `9F4B` must have the recorded length, and `9F69` the recorded version, CTQ and
//!   trailing byte;
//! - the live signature must verify under the ICC public key recovered from the records the
//!   card returned (CA -> issuer -> ICC certificates), over the terminal data of the recorded
//!   command (and the live `9F69` for fDDA); the recorded signature must verify the same way;
//! - what the two signatures carry besides the random number must be equal: the cryptogram
//!   and CID inside a CDA signature, the ICC dynamic data (`02 ‖ ATC`) of fDDA.
//!
//! The transcripts contain the fictional test PINs of the demo profiles in clear (offline
//! plaintext PIN VERIFY), nothing else secret. To record them anew (after a change of the card
//! or of the kernel): `cargo test -p firmware-tests --test pboc_card_transcripts -- --ignored
//! regenerate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use std::collections::HashMap;
use std::path::PathBuf;

use card_core::crypto::kdf;
use card_core::crypto::sm4::Sm4MacRule;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::dol::Dol;
use card_core::pboc::ec::{self, EcBalances, LoadLogBundle, LoadLogRecord, LogRecord};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{
    Amount, Date, Hooks, OdaMethod, Outcome, TerminalConfig, Time, TransactionParams,
    TransactionRecord, run_contact,
};
use card_core::secret::Pin;
use card_core::tlv::{Tag, Tlv};
use card_core::transcript::{self, Answer, Pattern, RecordingChannel, ReplayChannel};
use card_core::{CardChannel, CardSession};
use firmware_tests::pboc::profile::TerminalCaKey;
use pboc_support::*;

/// One flow of a card's day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Contact EC purchase (offline PIN), amount in fen.
    Contact(u64),
    /// qPBOC purchase, amount in fen.
    Qpboc(u64),
    /// Electronic cash load of `amount` to the balance `to` (fen).
    Load { amount: u64, to: u64 },
    /// Balance inquiry.
    Balance,
    /// Transaction log, load log, load log with MAC.
    Logs,
}

/// A card's day: the profile and its transcripts in order.
struct Day {
    profile: &'static str,
    steps: &'static [(&'static str, &'static str, Step)],
}

const DAYS: &[Day] = &[
    Day {
        profile: "zhangsan",
        steps: &[
            (
                "zhangsan_1_contact_purchase",
                "contact EC purchase of 15.00, offline plaintext PIN (test PIN), SM2 CDA",
                Step::Contact(1_500),
            ),
            (
                "zhangsan_2_qpboc_purchase",
                "qPBOC purchase of 20.00, SM2 fDDA version 01",
                Step::Qpboc(2_000),
            ),
            (
                "zhangsan_3_ec_load",
                "electronic cash load of 135.00 to 600.00: ARQC with CDA, online (terminal \
                 type 25), ARPC, script 04DA9F79, TC",
                Step::Load {
                    amount: 13_500,
                    to: 60_000,
                },
            ),
            (
                "zhangsan_4_balance_inquiry",
                "balance inquiry",
                Step::Balance,
            ),
            (
                "zhangsan_5_logs",
                "transaction log, load log, load log with MAC (READ RECORD P1=00)",
                Step::Logs,
            ),
        ],
    },
    Day {
        profile: "wangwu-rsa",
        steps: &[(
            "wangwu-rsa_1_contact_purchase",
            "contact EC purchase of 25.00, offline plaintext PIN (test PIN), RSA CDA",
            Step::Contact(2_500),
        )],
    },
];

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcripts")
        .join(format!("{name}.txt"))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(path(name))
        .unwrap_or_else(|e| panic!("{}: {e}; run regenerate", path(name).display()))
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

/// The issuer of the demo cards (the profile's test master keys): ARPC with ARC `00` and, for
/// a load, the PUT DATA script to the new balance MACed as JR/T 0025.5 附录 C.2.4. It checks
/// the ARQC over the bytes the kernel says the card MACed.
struct Issuer {
    mk_ac: kdf::CardKey,
    mk_smi: kdf::CardKey,
    load_to: Option<u64>,
    arqc_ok: Vec<bool>,
}

impl Issuer {
    fn new(card: &TestCard, load_to: Option<u64>) -> Self {
        let (mk_ac, mk_smi) = card.issuer_keys();
        Self {
            mk_ac,
            mk_smi,
            load_to,
            arqc_ok: Vec::new(),
        }
    }
}

impl OnlineAuthoriser for Issuer {
    fn authorise(&mut self, r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        let input = r.cryptogram_input.map(|i| i.as_bytes().to_vec());
        self.arqc_ok
            .push(input.is_some_and(|i| expected_ac(&self.mk_ac, r.atc, &i) == r.arqc));
        let arc = *b"00";
        let arpc = arpc(&self.mk_ac, r.atc, &r.arqc, &arc);
        let mut scripts = Vec::new();
        if let Some(to) = self.load_to {
            let cmd = script(
                &self.mk_smi,
                r.atc,
                &r.arqc,
                [0x04, 0xda, 0x9f, 0x79],
                &n12(to),
            );
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

/// The load log's integrity code, checked with the issuer's MK-SMI (JR/T 0025.13 表12).
struct LoadLogMac(kdf::CardKey);

impl ec::LoadLogMacVerifier for LoadLogMac {
    fn verify(&self, data: &[u8], mac: &[u8; 4]) -> bool {
        let atc = u16::from_be_bytes([data[0], data[1]]);
        let sk = kdf::derive_session_key(&self.0, atc);
        kdf::secure_messaging_mac(&sk, data, Sm4MacRule::Part17LeftBytes) == *mac
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

const DATE: (u16, u8, u8) = (2026, 3, 15);
const TIME: (u8, u8, u8) = (10, 20, 30);
const UN: [u8; 4] = [0x0a, 0x0b, 0x0c, 0x0d];

fn params(amount: u64) -> TransactionParams {
    TransactionParams::purchase(
        Amount::new(amount).unwrap(),
        Date::new(DATE.0, DATE.1, DATE.2).unwrap(),
        Time::new(TIME.0, TIME.1, TIME.2).unwrap(),
        UN,
    )
}

/// The kiosk; online-capable (terminal type 25) for the load, which needs the issuer.
fn terminal(online: bool) -> TerminalConfig {
    let mut t = TerminalConfig::kiosk();
    if online {
        t.terminal_type = 0x25;
    }
    t
}

/// What a flow returned.
#[derive(Debug)]
enum Ran {
    Transaction(Box<TransactionRecord>, Vec<bool>),
    Balance(EcBalances),
    Logs(Vec<LogRecord>, Vec<LoadLogRecord>, LoadLogBundle),
}

/// Run `step` with the kernel over `s`. `card` is a card of the same profile (keys, CA, PIN).
fn run<C: CardChannel>(s: &mut CardSession<C>, card: &TestCard, step: Step) -> Ran {
    let ca = ca_store(card);
    let pin = || Pad(Some(card.profile.pin.value.clone()));
    let mut journal = MemoryJournal::default();
    match step {
        Step::Contact(amount) => {
            let mut issuer = Issuer::new(card, None);
            let rec = run_contact(
                s,
                &terminal(false),
                &ca,
                params(amount),
                &mut Hooks {
                    pin_pad: &mut pin(),
                    hot_list: &NoHotList,
                    online: &mut issuer,
                    journal: &mut journal,
                },
            );
            Ran::Transaction(Box::new(rec), issuer.arqc_ok)
        }
        Step::Qpboc(amount) => {
            let mut issuer = Issuer::new(card, None);
            let rec = run_qpboc(
                s,
                &terminal(false),
                &ca,
                params(amount),
                &mut QpbocHooks {
                    hot_list: &NoHotList,
                    online: &mut issuer,
                    journal: &mut journal,
                },
            );
            Ran::Transaction(Box::new(rec), issuer.arqc_ok)
        }
        Step::Load { amount, to } => {
            let mut issuer = Issuer::new(card, Some(to));
            let rec = ec::load(
                s,
                &terminal(true),
                &ca,
                params(amount),
                &mut Hooks {
                    pin_pad: &mut pin(),
                    hot_list: &NoHotList,
                    online: &mut issuer,
                    journal: &mut journal,
                },
            );
            Ran::Transaction(Box::new(rec), issuer.arqc_ok)
        }
        Step::Balance => Ran::Balance(ec::balance_inquiry(s, &terminal(false)).unwrap().1),
        Step::Logs => {
            let app = ec::select_application(s, &terminal(false)).unwrap();
            let log = ec::read_transaction_log(s, app.fci.log_entry.unwrap()).unwrap();
            let entry = app.fci.load_log_entry.unwrap();
            let loads = ec::read_load_log(s, entry).unwrap();
            let verifier = LoadLogMac(card.issuer_keys().1);
            let bundle = ec::read_load_log_all(s, entry, Some(&verifier)).unwrap();
            Ran::Logs(log, loads, bundle)
        }
    }
}

/// What the card should hold along the day: balance, ATC, and the log (amount, ATC), newest
/// first, from the profile and the steps so far.
#[derive(Debug, Clone)]
struct Expected {
    balance: u64,
    atc: u16,
    log: Vec<(u64, u16)>,
    loads: Vec<(u64, u64)>,
}

impl Expected {
    fn new(card: &TestCard) -> Self {
        let state = card.state();
        Self {
            balance: state.ec.as_ref().unwrap().balance,
            atc: state.atc,
            log: Vec::new(),
            loads: Vec::new(),
        }
    }

    /// Check the kernel's result of `step` and move on.
    fn check(&mut self, name: &str, step: Step, ran: &Ran, algorithm_id: u8) {
        let amount = |a: u64| Amount::new(a).unwrap();
        match (step, ran) {
            (Step::Contact(a) | Step::Qpboc(a), Ran::Transaction(rec, arqc_ok)) => {
                assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{name}: {rec:?}");
                let oda = if matches!(step, Step::Contact(_)) {
                    OdaMethod::Cda
                } else {
                    OdaMethod::Fdda
                };
                assert_eq!(rec.oda, Some(oda), "{name}");
                assert!(rec.oda_failure.is_none(), "{name}: {:?}", rec.oda_failure);
                assert!(arqc_ok.is_empty(), "{name}: offline");
                assert!(rec.ec, "{name}");
                assert_eq!(rec.iad[7], algorithm_id, "{name}");
                assert_eq!(rec.ec_balance_before, Some(amount(self.balance)), "{name}");
                self.balance -= a;
                self.atc += 1;
                self.log.insert(0, (a, self.atc));
                assert_eq!(rec.ec_balance_after, Some(amount(self.balance)), "{name}");
                assert_eq!(rec.atc, Some(self.atc), "{name}");
            }
            (Step::Load { amount: a, to }, Ran::Transaction(rec, arqc_ok)) => {
                assert_eq!(rec.outcome, Outcome::ApprovedOnline, "{name}: {rec:?}");
                assert_eq!(arqc_ok, &[true], "{name}: the ARQC checks at the issuer");
                assert_eq!(rec.oda, Some(OdaMethod::Cda), "{name}");
                assert_eq!(rec.script_results.len(), 1, "{name}");
                assert_eq!(
                    rec.script_results[0][0] >> 4,
                    0x2,
                    "{name}: script performed"
                );
                assert_eq!(to, self.balance + a, "{name}: the day's arithmetic");
                self.loads.insert(0, (self.balance, to));
                self.balance = to;
                self.atc += 1;
                self.log.insert(0, (a, self.atc));
                assert_eq!(rec.ec_balance_after, Some(amount(to)), "{name}");
                assert_eq!(rec.atc, Some(self.atc), "{name}");
            }
            (Step::Balance, Ran::Balance(b)) => {
                assert_eq!(b.balance, amount(self.balance), "{name}");
                assert_eq!(b.balance_limit, Some(amount(100_000)), "{name}");
            }
            (Step::Logs, Ran::Logs(log, loads, bundle)) => {
                let got: Vec<(u64, u16)> = log
                    .iter()
                    .map(|r| (r.amount().unwrap().minor_units(), r.atc().unwrap()))
                    .collect();
                assert_eq!(got, self.log, "{name}: transaction log");
                assert!(
                    log.iter()
                        .all(|r| r.date() == Date::new(DATE.0, DATE.1, DATE.2)),
                    "{name}"
                );
                let got: Vec<(u64, u64)> = loads
                    .iter()
                    .map(|l| (l.before.minor_units(), l.after.minor_units()))
                    .collect();
                assert_eq!(got, self.loads, "{name}: load log");
                assert_eq!(bundle.entries.len(), self.loads.len(), "{name}");
                assert_eq!(bundle.atc, self.atc, "{name}");
                assert_eq!(bundle.mac_valid, Some(true), "{name}: load log MAC");
            }
            _ => panic!("{name}: {step:?} returned {ran:?}"),
        }
    }
}

fn algorithm_id(card: &TestCard) -> u8 {
    match card.algorithm() {
        firmware_tests::pboc::Algorithm::Sm => 0x04,
        firmware_tests::pboc::Algorithm::International => 0x01,
    }
}

/// Every transcript, recorded now from fresh cards: (file name, text).
fn record_all() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for day in DAYS {
        let mut card = TestCard::new(day.profile);
        let keys = TestCard::new(day.profile);
        let ca = match keys.section().ca_key().unwrap() {
            TerminalCaKey::Sm2(k) => format!(
                "SM2 CA: RID A000000333, index 80, public key {}",
                ::hex::encode_upper(k.public_key.to_xy())
            ),
            TerminalCaKey::Rsa(_) => {
                "RSA CA: RID A000000333, index 08 (the profile's test key)".to_string()
            }
        };
        let mut expected = Expected::new(&keys);
        for (i, (name, what, step)) in day.steps.iter().enumerate() {
            card.power_cycle();
            let mut s = CardSession::new(RecordingChannel::new(&mut card.card));
            let ran = run(&mut s, &keys, *step);
            expected.check(name, *step, &ran, algorithm_id(&keys));
            let (_, text) = s.into_channel().into_parts();
            let before = if i == 0 {
                "a fresh card".to_string()
            } else {
                day.steps[..i]
                    .iter()
                    .map(|(n, _, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let header = format!(
                "# PBOC transcript recorded from the software card (firmware-tests), profile \
                 {profile}: {what}.\n\
                 # Card state: {before} (power cycle before each transcript).\n\
                 # Terminal: card-core's kernel, TerminalConfig::kiosk(); date {:04}-{:02}-{:02} \
                 {:02}:{:02}:{:02}, unpredictable number {}.\n\
                 # {ca}.\n\
                 # Fresh per run (compared by verifying them): the ICC dynamic number in CDA and \
                 DDA signatures, the card unpredictable number in 9F69 and the fDDA signature.\n\
                 # Regenerate: cargo test -p firmware-tests --test pboc_card_transcripts -- \
                 --ignored regenerate\n",
                DATE.0,
                DATE.1,
                DATE.2,
                TIME.0,
                TIME.1,
                TIME.2,
                ::hex::encode_upper(UN),
                profile = day.profile,
            );
            out.push((*name, format!("{header}{text}")));
        }
    }
    out
}

#[test]
#[ignore = "writes tests/transcripts/*.txt"]
fn regenerate() {
    std::fs::create_dir_all(path("x").parent().unwrap()).unwrap();
    for (name, text) in record_all() {
        std::fs::write(path(name), text).unwrap();
    }
}

/// One recorded exchange, as bytes.
struct Exchange {
    line: usize,
    command: Vec<u8>,
    answer: Vec<u8>,
}

fn exchanges(name: &str, text: &str) -> Vec<Exchange> {
    transcript::parse(text)
        .unwrap()
        .into_iter()
        .map(|e| Exchange {
            line: e.line,
            command: e
                .command
                .iter()
                .map(|p| match p {
                    Pattern::Byte(b) => *b,
                    Pattern::Any => panic!("{name} line {}: wildcard in a card transcript", e.line),
                })
                .collect(),
            answer: match e.answer {
                Answer::Bytes(b) => b,
                Answer::Error(err) => panic!("{name} line {}: {err}", e.line),
            },
        })
        .collect()
}

/// The fields of `expected` and `live` (two answers with their status words) that may differ:
/// everything else must be equal. `fresh` lists the tags whose values may differ (same length),
/// `partial` a tag whose bytes `from..to` may differ.
fn same_except(
    expected: &[u8],
    live: &[u8],
    fresh: &[u32],
    partial: Option<(u32, usize, usize)>,
) -> Result<(), String> {
    let (e, esw) = expected.split_at(expected.len() - 2);
    let (l, lsw) = live.split_at(live.len().saturating_sub(2));
    if esw != lsw {
        return Err("status word".into());
    }
    let e = Tlv::parse(e).map_err(|x| format!("recorded answer: {x}"))?;
    let l = Tlv::parse(l).map_err(|x| format!("card's answer: {x}"))?;
    if e.tag() != l.tag() || e.children().len() != l.children().len() {
        return Err("template".into());
    }
    for (ec, lc) in e.children().iter().zip(l.children()) {
        let tag = ec.tag();
        if tag != lc.tag() {
            return Err(format!("{tag} where {} was recorded", lc.tag()));
        }
        let (ev, lv) = (ec.to_bytes().unwrap(), lc.to_bytes().unwrap());
        if fresh.contains(&tag.value()) {
            if ev.len() != lv.len() {
                return Err(format!("{tag}: length"));
            }
        } else if let Some((_, from, to)) = partial.filter(|p| p.0 == tag.value()) {
            let (eb, lb) = (ec.bytes().unwrap(), lc.bytes().unwrap());
            if eb.len() != lb.len() || eb[..from] != lb[..from] || eb[to..] != lb[to..] {
                return Err(format!("{tag} outside bytes {from}..{to}"));
            }
        } else if ev != lv {
            return Err(format!("{tag} differs"));
        }
    }
    Ok(())
}

/// A signature to verify once the transcript's records are known.
#[derive(Debug, Clone, Copy)]
enum Check {
    Cda(usize),
    Fdda(usize),
    Dda(usize),
}

fn data_of(command: &[u8]) -> &[u8] {
    &command[5..5 + usize::from(command[4])]
}

fn tlv_value(answer: &[u8], tag: u32) -> Option<Vec<u8>> {
    let body = &answer[..answer.len().checked_sub(2)?];
    let t = Tlv::parse(body).ok()?;
    t.find(Tag::new(tag))
        .and_then(Tlv::bytes)
        .map(<[u8]>::to_vec)
}

fn dol_value(dol: &[u8], data: &[u8], tag: u32) -> Vec<u8> {
    Dol::parse(dol)
        .unwrap()
        .split(data)
        .unwrap()
        .into_iter()
        .find(|(t, _)| t.value() == tag)
        .map(|(_, v)| v.to_vec())
        .unwrap()
}

/// Replay transcript `name` (text `text`) against `card`: every answer equals the recording
/// but for the fresh fields, which are verified (module documentation). Returns how many
/// exchanges had fresh fields; panics at a difference.
fn replay_on_card(card: &mut TestCard, name: &str, text: &str) -> usize {
    let xs = exchanges(name, text);
    let mut live = Vec::with_capacity(xs.len());
    let mut checks = Vec::new();
    for (i, x) in xs.iter().enumerate() {
        let answer = card.card.process(&x.command);
        if answer != x.answer {
            let (ins, p1) = (x.command[1], x.command[2]);
            let result = match ins {
                // GENERATE AC with CDA (P1 bit 5).
                0xae if p1 & 0x10 != 0 => {
                    checks.push(Check::Cda(i));
                    same_except(&x.answer, &answer, &[0x9f4b], None)
                }
                // qPBOC GET PROCESSING OPTIONS with fDDA.
                0xa8 => {
                    checks.push(Check::Fdda(i));
                    same_except(&x.answer, &answer, &[0x9f4b], None)
                }
                // The qPBOC record with 9F69: the card unpredictable number, bytes 1..5.
                0xb2 => same_except(&x.answer, &answer, &[], Some((0x9f69, 1, 5))),
                // INTERNAL AUTHENTICATE: format 1, the whole value is the signature.
                0x88 => {
                    checks.push(Check::Dda(i));
                    (answer.len() == x.answer.len() && answer.ends_with(&[0x90, 0x00]))
                        .then_some(())
                        .ok_or_else(|| "length or status".to_string())
                }
                _ => Err("no fresh field in this command".into()),
            };
            if let Err(why) = result {
                panic!(
                    "{name} line {}: the card's answer differs from the recording ({why})\n\
                     > {}\nrecorded < {}\ncard     < {}",
                    x.line,
                    ::hex::encode_upper(&x.command),
                    ::hex::encode_upper(&x.answer),
                    ::hex::encode_upper(&answer)
                );
            }
        }
        live.push(answer);
    }
    if !checks.is_empty() {
        verify_signatures(card, name, &xs, &live, &checks);
    }
    checks.len()
}

/// Verify the fresh signatures of a replay, live and recorded, with the ICC key recovered
/// from the records the card returned.
fn verify_signatures(
    card: &TestCard,
    name: &str,
    xs: &[Exchange],
    live: &[Vec<u8>],
    checks: &[Check],
) {
    let body = |a: &[u8]| a[..a.len() - 2].to_vec();
    // The PDOL (from the ADF's FCI), the GPO answer (AIP, AFL), the records by (SFI, number).
    let mut pdol = None;
    let mut gpo = None;
    let mut records: HashMap<(u8, u8), Vec<u8>> = HashMap::new();
    for (x, a) in xs.iter().zip(live) {
        match x.command[1] {
            0xa4 => pdol = pdol.or_else(|| tlv_value(a, 0x9f38)),
            0xa8 => gpo = Some((data_of(&x.command)[2..].to_vec(), body(a))),
            0xb2 => {
                records.insert((x.command[3] >> 3, x.command[2]), body(a));
            }
            _ => {}
        }
    }
    let pdol = pdol.expect("the ADF's PDOL");
    let (pdol_data, gpo_answer) = gpo.expect("a GPO");
    let t = Tlv::parse(&gpo_answer).unwrap();
    let (aip, afl) = if t.tag() == Tag::new(0x80) {
        let v = t.bytes().unwrap();
        ([v[0], v[1]], v[2..].to_vec())
    } else {
        let aip = t.find(Tag::new(0x82)).and_then(Tlv::bytes).unwrap();
        (
            [aip[0], aip[1]],
            t.find(Tag::new(0x94))
                .and_then(Tlv::bytes)
                .unwrap()
                .to_vec(),
        )
    };
    let mut recs = Records::default();
    for entry in afl.chunks(4) {
        let (sfi, first, last, oda) = (entry[0] >> 3, entry[1], entry[2], entry[3]);
        for n in first..=last {
            let data = records
                .get(&(sfi, n))
                .unwrap_or_else(|| panic!("{name}: record {n} of SFI {sfi} not read"));
            let t = Tlv::parse(data).unwrap();
            if n - first < oda {
                for c in t.children() {
                    recs.oda.extend(c.to_bytes().unwrap());
                }
            }
            recs.tlvs.push(t);
            recs.read.push((sfi, n));
        }
    }
    let key = icc_key(card, &recs, aip);
    let cdol1 = recs.get(0x8c).unwrap_or_default();
    let cdol2 = recs.get(0x8d).unwrap_or_default();
    let mut first_gen_ac: Option<Vec<u8>> = None;
    for (i, x) in xs.iter().enumerate() {
        let check = checks
            .iter()
            .find(|c| matches!(c, Check::Cda(j) | Check::Fdda(j) | Check::Dda(j) if *j == i));
        if x.command[1] == 0xae && first_gen_ac.is_none() {
            first_gen_ac = Some(data_of(&x.command).to_vec());
            if check.is_none() {
                continue;
            }
        }
        let Some(check) = check else { continue };
        let at = format!("{name} line {}", x.line);
        match check {
            Check::Cda(_) => {
                let data = data_of(&x.command);
                let first = first_gen_ac.clone().unwrap();
                let second = first != data;
                let (dol, un_from) = if second {
                    (&cdol2, data)
                } else {
                    (&cdol1, data)
                };
                let un: [u8; 4] = dol_value(dol, un_from, 0x9f37).try_into().unwrap();
                let inside = |answer: &[u8]| {
                    let r = AcResponse::parse(&body(answer));
                    let mut parts: Vec<&[u8]> = vec![&pdol_data, &first];
                    if second {
                        parts.push(data);
                    }
                    parts.extend(r.hashed_tlvs.iter().map(Vec::as_slice));
                    (
                        r.cid,
                        check_cda(&key, r.sdad.as_ref().unwrap(), un, r.cid, &parts),
                    )
                };
                assert_eq!(
                    inside(&live[i]),
                    inside(&x.answer),
                    "{at}: CID and cryptogram inside the CDA signatures"
                );
            }
            Check::Fdda(_) => {
                let card_auth = |answers: &[&[u8]]| {
                    answers
                        .iter()
                        .find_map(|a| tlv_value(a, 0x9f69))
                        .expect("9F69 in a record")
                };
                let terminal = |card_auth: Vec<u8>| {
                    let mut t = dol_value(&pdol, &pdol_data, 0x9f37);
                    t.extend(dol_value(&pdol, &pdol_data, 0x9f02));
                    t.extend(dol_value(&pdol, &pdol_data, 0x5f2a));
                    t.extend(card_auth);
                    t
                };
                let live_records: Vec<&[u8]> = xs
                    .iter()
                    .zip(live)
                    .filter(|(x, _)| x.command[1] == 0xb2)
                    .map(|(_, a)| a.as_slice())
                    .collect();
                let recorded_records: Vec<&[u8]> = xs
                    .iter()
                    .filter(|x| x.command[1] == 0xb2)
                    .map(|x| x.answer.as_slice())
                    .collect();
                let sdad = |a: &[u8]| tlv_value(a, 0x9f4b).unwrap();
                let live_dynamic =
                    check_dynamic(&key, &sdad(&live[i]), &terminal(card_auth(&live_records)));
                let recorded_dynamic = check_dynamic(
                    &key,
                    &sdad(&x.answer),
                    &terminal(card_auth(&recorded_records)),
                );
                assert_eq!(live_dynamic, recorded_dynamic, "{at}: ICC dynamic data");
            }
            Check::Dda(_) => {
                let terminal = data_of(&x.command);
                let sdad = |a: &[u8]| tlv_value(a, 0x80).unwrap();
                let l = check_dynamic(&key, &sdad(&live[i]), terminal);
                let r = check_dynamic(&key, &sdad(&x.answer), terminal);
                assert_eq!(l.len(), r.len(), "{at}: ICC dynamic data");
            }
        }
    }
}

#[test]
fn transcripts_replayed_against_the_card() {
    for day in DAYS {
        let mut card = TestCard::new(day.profile);
        let mut fresh = Vec::new();
        for (name, _, _) in day.steps {
            card.power_cycle();
            fresh.push((*name, replay_on_card(&mut card, name, &read(name))));
        }
        // Which exchanges carried fresh values, so a change of that shows.
        let expected: Vec<(&str, usize)> = day
            .steps
            .iter()
            .map(|(name, _, step)| {
                let n = match step {
                    // CDA on the GENERATE AC.
                    Step::Contact(_) => 1,
                    // fDDA in the GPO (9F69 in the last record is checked with it).
                    Step::Qpboc(_) => 1,
                    // CDA on both GENERATE ACs.
                    Step::Load { .. } => 2,
                    Step::Balance | Step::Logs => 0,
                };
                (*name, n)
            })
            .collect();
        assert_eq!(fresh, expected, "{}", day.profile);
    }
}

#[test]
fn transcripts_replayed_against_the_kernel() {
    for day in DAYS {
        let keys = TestCard::new(day.profile);
        let mut expected = Expected::new(&keys);
        for (name, _, step) in day.steps {
            let mut s = CardSession::new(ReplayChannel::parse(&read(name)).unwrap());
            let ran = run(&mut s, &keys, *step);
            s.channel()
                .assert_finished()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            expected.check(name, *step, &ran, algorithm_id(&keys));
        }
    }
}

#[test]
fn the_card_live_reaches_the_recorded_outcomes() {
    // The same day, the kernel against fresh cards: the transcripts' expectations hold live,
    // and the commands are the recorded ones (the kernel replay above requires that).
    for day in DAYS {
        let keys = TestCard::new(day.profile);
        let mut card = TestCard::new(day.profile);
        let mut expected = Expected::new(&keys);
        for (name, _, step) in day.steps {
            card.power_cycle();
            let mut s = CardSession::new(RecordingChannel::new(&mut card.card));
            let ran = run(&mut s, &keys, *step);
            expected.check(name, *step, &ran, algorithm_id(&keys));
            let (_, text) = s.into_channel().into_parts();
            let commands = |t: &str| -> Vec<String> {
                t.lines()
                    .filter(|l| l.starts_with('>'))
                    .map(str::to_string)
                    .collect()
            };
            assert_eq!(
                commands(&text),
                commands(&read(name)),
                "{name}: the kernel's commands differ from the recording; run regenerate"
            );
        }
    }
}

/// `text` with the answer to the first command starting with `command` changed by `edit`.
fn tamper(text: &str, command: &str, edit: impl Fn(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    let mut next = false;
    for line in text.lines() {
        if next && let Some(answer) = line.strip_prefix("< ") {
            let mut bytes = ::hex::decode(answer.replace(' ', "")).unwrap();
            edit(&mut bytes);
            out.push(format!("< {}", ::hex::encode_upper(bytes)));
            next = false;
            continue;
        }
        next |= line.starts_with(&format!("> {command}"));
        out.push(line.to_string());
    }
    out.join("\n")
}

/// Position of `tag`'s value inside `answer`.
fn value_at(answer: &[u8], tag: &[u8]) -> usize {
    answer.windows(tag.len()).position(|w| w == tag).unwrap() + tag.len() + 1
}

/// An edit of a recorded answer.
type Edit = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn a_wrong_recording_is_caught() {
    // Each edit of a recorded answer must make the replay against the card fail: a
    // deterministic field (the IAD's CVR in the GENERATE AC answer), a recorded signature
    // that no longer verifies (a byte inside 9F4B), the fixed part of 9F69 (its CTQ).
    let cases: [(&str, &str, Edit); 4] = [
        (
            "zhangsan_1_contact_purchase",
            "80AE",
            Box::new(|a: &mut Vec<u8>| {
                let i = value_at(a, &[0x9f, 0x10]);
                a[i + 4] ^= 0x01;
            }),
        ),
        (
            "zhangsan_1_contact_purchase",
            "80AE",
            Box::new(|a: &mut Vec<u8>| {
                // The last byte of the signature proper.
                let i = value_at(a, &[0x9f, 0x4b]);
                let len = usize::from(a[i - 1]);
                a[i + len - 1] ^= 0x01;
            }),
        ),
        (
            "zhangsan_2_qpboc_purchase",
            "80A8",
            Box::new(|a: &mut Vec<u8>| {
                // The last byte of the signature proper.
                let i = value_at(a, &[0x9f, 0x4b]);
                let len = usize::from(a[i - 1]);
                a[i + len - 1] ^= 0x01;
            }),
        ),
        (
            "zhangsan_2_qpboc_purchase",
            "00B2012400",
            Box::new(|a: &mut Vec<u8>| {
                let i = value_at(a, &[0x9f, 0x69]);
                a[i + 5] ^= 0x01;
            }),
        ),
    ];
    for (i, (name, command, edit)) in cases.iter().enumerate() {
        let day = &DAYS[0];
        let text = tamper(&read(name), command, edit);
        assert_ne!(text.trim(), read(name).trim(), "case {i}: nothing edited");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut card = TestCard::new(day.profile);
            for (n, _, _) in day.steps {
                card.power_cycle();
                if n == name {
                    replay_on_card(&mut card, n, &text);
                    break;
                }
                replay_on_card(&mut card, n, &read(n));
            }
        }));
        assert!(
            caught.is_err(),
            "case {i}: {name} {command} edit not caught"
        );
    }
}
