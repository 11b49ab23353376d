//! Tearing with recovery, at every write point: card-core's kernel runs a contact EC purchase
//! (offline PIN, CDA) and a qPBOC purchase (fDDA) against the software card; the card loses
//! power at each commit the purchase makes, in two ways:
//!
//! - **torn**: power goes *during* commit k (`MemoryStorage::tear_at`): the commit does not
//!   happen;
//! - **answer lost**: power goes right *after* commit k, before the card's answer leaves.
//!
//! The card is power-cycled and the kiosk resolves the intent the kernel journaled before the
//! debit command (`DebitJournal`) with `recovery::check_debit` (docs/pboc-profile.md "Recovery
//! of a torn debit"). The answer must be `Completed` exactly when the card's balance moved and
//! its log holds the record, `NotDone` exactly when neither, and never `Unclear`; a cut before
//! the debit command leaves no intent and no debit. The card then takes a new purchase.
//!
//! The card's side of this (JR/T 0025.12 §7.4.1 防拔; JR/T 0025.5 §18.1: log and GENERATE AC
//! succeed or fail together) is tested on its own in `pboc_tearing.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::ec::{self, LogRecord};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::{DebitIntent, MemoryJournal};
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::recovery::{Recovery, check_debit};
use card_core::pboc::risk::{self, NoHotList};
use card_core::pboc::{
    Amount, Date, Hooks, OdaMethod, Outcome, TerminalConfig, Time, TransactionParams,
    TransactionRecord, run_contact,
};
use card_core::secret::Pin;
use card_core::{CardChannel, CardSession, TransportError};
use firmware_tests::pboc::profile::TerminalCaKey;
use pboc_support::*;

struct Pad(Option<String>);

impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        match self.0.take() {
            Some(p) => PinEntry::Pin(Pin::new(&p).unwrap()),
            None => PinEntry::Bypassed,
        }
    }
}

struct Offline;

impl OnlineAuthoriser for Offline {
    fn authorise(&mut self, _r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        Err(OnlineUnavailable("offline-only kiosk".into()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Contact EC purchase with the card's offline PIN.
    Contact,
    /// qPBOC purchase.
    Qpboc,
}

/// Where power goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// During commit k of the purchase (1-based): the commit is lost.
    Torn(u64),
    /// Right after commit k: the commit stands, the answer is lost.
    AnswerLost(u64),
}

/// The card seen by a terminal: power goes at the chosen commit, and the card answers
/// nothing more (the terminal sees it removed) until it is power-cycled.
struct Cutting<'a> {
    card: &'a mut TestCard,
    start: u64,
    at: Option<u64>,
    dead: bool,
}

impl CardChannel for Cutting<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.dead {
            return Err(TransportError::CardRemoved);
        }
        let answer = self.card.card.process(command);
        if self
            .at
            .is_some_and(|k| self.card.commits() - self.start >= k)
        {
            self.dead = true;
            self.card.card.power_off();
            return Err(TransportError::CardRemoved);
        }
        Ok(answer)
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

/// Run a purchase on `card`, cutting power as `cut` says. Returns the record, the intents
/// journaled and the number of commits the card made (or attempted).
fn purchase(
    card: &mut TestCard,
    flow: Flow,
    amount: u64,
    cut: Option<Cut>,
) -> (TransactionRecord, Vec<DebitIntent>, u64) {
    let ca = ca_store(card);
    let pin = card.profile.pin.value.clone();
    let at = match cut {
        Some(Cut::Torn(k)) => {
            card.tear_at(k);
            Some(k)
        }
        Some(Cut::AnswerLost(k)) => Some(k),
        None => None,
    };
    let start = card.commits();
    let mut journal = MemoryJournal::default();
    let mut s = CardSession::new(Cutting {
        card,
        start,
        at,
        dead: false,
    });
    let rec = match flow {
        Flow::Contact => run_contact(
            &mut s,
            &TerminalConfig::kiosk(),
            &ca,
            params(amount),
            &mut Hooks {
                pin_pad: &mut Pad(Some(pin)),
                hot_list: &NoHotList,
                online: &mut Offline,
                journal: &mut journal,
            },
        ),
        Flow::Qpboc => run_qpboc(
            &mut s,
            &TerminalConfig::kiosk(),
            &ca,
            params(amount),
            &mut QpbocHooks {
                hot_list: &NoHotList,
                online: &mut Offline,
                journal: &mut journal,
            },
        ),
    };
    let commits = s.channel().card.commits() - start;
    (rec, journal.0, commits)
}

/// What the kernel's electronic cash functions read.
#[derive(Debug, Clone, PartialEq)]
struct EcView {
    balance: Amount,
    atc: u16,
    log: Vec<LogRecord>,
}

fn ec_view(card: &mut TestCard) -> EcView {
    let mut s = CardSession::new(&mut card.card);
    let (app, b) = ec::balance_inquiry(&mut s, &TerminalConfig::kiosk()).unwrap();
    let atc = risk::get_counter(&mut s, 0x9f36).unwrap().unwrap();
    let log = ec::read_transaction_log(&mut s, app.fci.log_entry.unwrap()).unwrap();
    EcView {
        balance: b.balance,
        atc,
        log,
    }
}

/// What one cut led to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolved {
    /// Power went before the kernel journaled an intent: nothing to resolve.
    NoIntent,
    /// `check_debit` said the debit happened.
    Completed,
    /// `check_debit` said it did not.
    NotDone,
}

/// Cut a purchase on a fresh card, power-cycle, resolve, check the answer against the card's
/// state, then buy again.
fn cut_and_recover(name: &str, flow: Flow, cut: Cut) -> Resolved {
    let amount = 1_500;
    let what = format!("{name} {flow:?} {cut:?}");
    let mut card = TestCard::new(name);
    let before = ec_view(&mut card);
    let (rec, intents, _) = purchase(&mut card, flow, amount, Some(cut));
    assert!(!rec.outcome.is_approved(), "{what}: {:?}", rec.outcome);
    card.power_cycle();

    let resolved = match intents.as_slice() {
        [] => {
            assert!(!rec.debit_attempted, "{what}");
            let now = ec_view(&mut card);
            assert_eq!(now.balance, before.balance, "{what}: debit without intent");
            assert_eq!(now.log, before.log, "{what}: log record without intent");
            Resolved::NoIntent
        }
        [intent] => {
            assert_eq!(intent.atc_before, Some(before.atc), "{what}");
            assert_eq!(intent.ec_balance_before, Some(before.balance), "{what}");
            let mut s = CardSession::new(&mut card.card);
            let app = ec::select_application(&mut s, &TerminalConfig::kiosk()).unwrap();
            let recovery = check_debit(&mut s, &app, intent).unwrap();
            drop(s);
            let now = ec_view(&mut card);
            let moved = now.balance == before.balance.checked_sub(intent.amount).unwrap();
            let logged: Vec<&LogRecord> = now
                .log
                .iter()
                .filter(|r| r.atc().is_some_and(|a| a > before.atc))
                .collect();
            if moved {
                assert_eq!(logged.len(), 1, "{what}: debit without its log record");
                assert_eq!(logged[0].amount(), Some(intent.amount), "{what}");
                assert_eq!(logged[0].date(), Some(intent.date), "{what}");
                assert_eq!(logged[0].atc(), Some(now.atc), "{what}");
                assert_eq!(
                    recovery,
                    Recovery::Completed(logged[0].clone()),
                    "{what}: the balance moved"
                );
                Resolved::Completed
            } else {
                assert_eq!(
                    now.balance, before.balance,
                    "{what}: balance neither old nor new"
                );
                assert!(logged.is_empty(), "{what}: log record without the debit");
                assert_eq!(
                    recovery,
                    Recovery::NotDone,
                    "{what}: the balance did not move"
                );
                Resolved::NotDone
            }
        }
        more => panic!("{what}: {} intents for one purchase", more.len()),
    };

    // The card takes a new purchase, which moves it exactly once and resolves as Completed.
    let now = ec_view(&mut card);
    let (rec, intents, _) = purchase(&mut card, flow, 100, None);
    assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{what}: {rec:?}");
    let after = ec_view(&mut card);
    assert_eq!(
        after.balance,
        now.balance.checked_sub(Amount::new(100).unwrap()).unwrap(),
        "{what}"
    );
    assert_eq!(after.atc, now.atc + 1, "{what}");
    assert_eq!(after.log[0].atc(), Some(after.atc), "{what}");
    assert_eq!(after.log[0].amount(), Amount::new(100), "{what}");
    let mut s = CardSession::new(&mut card.card);
    let app = ec::select_application(&mut s, &TerminalConfig::kiosk()).unwrap();
    assert!(matches!(
        check_debit(&mut s, &app, &intents[0]).unwrap(),
        Recovery::Completed(_)
    ));
    resolved
}

/// How many commits an uncut purchase makes, and that it works.
fn commits_of(name: &str, flow: Flow) -> u64 {
    let mut card = TestCard::new(name);
    let before = ec_view(&mut card);
    let (rec, intents, commits) = purchase(&mut card, flow, 1_500, None);
    assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{name} {flow:?}");
    assert_eq!(
        rec.oda,
        Some(match flow {
            Flow::Contact => OdaMethod::Cda,
            Flow::Qpboc => OdaMethod::Fdda,
        })
    );
    assert_eq!(intents.len(), 1);
    let after = ec_view(&mut card);
    assert_eq!(after.atc, before.atc + 1);
    commits
}

fn every_write_point(name: &str, flow: Flow) -> Vec<(Cut, Resolved)> {
    let n = commits_of(name, flow);
    assert!(n >= 1, "{name} {flow:?}: no commit");
    (1..=n)
        .flat_map(|k| [Cut::Torn(k), Cut::AnswerLost(k)])
        .map(|cut| (cut, cut_and_recover(name, flow, cut)))
        .collect()
}

#[test]
fn contact_purchase_cut_at_every_commit_is_resolved() {
    use Cut::*;
    use Resolved::*;
    for name in ["zhangsan", "wangwu-rsa"] {
        let got = every_write_point(name, Flow::Contact);
        // GPO (ATC), VERIFY (try counter down, then reset), GENERATE AC (balance, log, in one
        // commit). The intent is journaled just before the GENERATE AC; the debit is its
        // commit, the last.
        assert_eq!(
            got,
            [
                (Torn(1), NoIntent),
                (AnswerLost(1), NoIntent),
                (Torn(2), NoIntent),
                (AnswerLost(2), NoIntent),
                (Torn(3), NoIntent),
                (AnswerLost(3), NoIntent),
                (Torn(4), NotDone),
                (AnswerLost(4), Completed),
            ],
            "{name}"
        );
    }
}

#[test]
fn qpboc_purchase_cut_at_every_commit_is_resolved() {
    use Cut::*;
    use Resolved::*;
    for name in ["zhangsan", "lisi"] {
        let got = every_write_point(name, Flow::Qpboc);
        // GPO (ATC, balance, log and tear guard in one commit), the last READ RECORD (guard
        // off). The intent is journaled before the GPO. A debit whose last record was never
        // delivered is undone by the card at the next selection (JR/T 0025.12 §7.4.1), so
        // only a lost answer after the guard came off leaves the debit.
        assert_eq!(
            got,
            [
                (Torn(1), NotDone),
                (AnswerLost(1), NotDone),
                (Torn(2), NotDone),
                (AnswerLost(2), Completed),
            ],
            "{name}"
        );
    }
}

/// What `check_debit` answered, without the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Completed,
    NotDone,
    Wrapped,
}

/// After a cut debit the card goes on to other purchases before it comes back with the intent
/// pending. While its cyclic log of ten records (JR/T 0025.5 §18.1), full from earlier
/// purchases, still reaches back to the debit's ATC (`atc_before + 1`), `check_debit` settles
/// the intent as before; once later purchases have overwritten that slot it cannot know, and
/// says so (`LogWrapped`) instead of `NotDone`, whether the debit happened (answer lost) or
/// not (torn).
#[test]
fn a_log_wrapped_past_the_debit_is_unclear() {
    use Answer::*;
    use card_core::pboc::recovery::UnclearReason;
    // (flow, cut, whether the card debited, [(purchases after, answer)]).
    let cases = [
        // The debit's record, ATC n+1, survives nine more purchases, not ten.
        (
            Flow::Contact,
            Cut::AnswerLost(4),
            true,
            [(9, Completed), (10, Wrapped), (12, Wrapped)],
        ),
        // The GPO counted n+1 without a record: nine more leave the log reaching the
        // purchase before the intent (ATC n), ten do not.
        (
            Flow::Contact,
            Cut::Torn(4),
            false,
            [(9, NotDone), (10, Wrapped), (12, Wrapped)],
        ),
        (
            Flow::Qpboc,
            Cut::AnswerLost(2),
            true,
            [(9, Completed), (10, Wrapped), (12, Wrapped)],
        ),
        // The torn GPO did not count: the next purchase has ATC n+1, and the log proves the
        // debit absent as long as it keeps that record (ten more), not after twelve.
        (
            Flow::Qpboc,
            Cut::Torn(1),
            false,
            [(9, NotDone), (10, NotDone), (12, Wrapped)],
        ),
    ];
    for (flow, cut, happened, runs) in cases {
        for (more, expected) in runs {
            let what = format!("{flow:?} {cut:?} then {more} purchases");
            let mut card = TestCard::new("zhangsan");
            // Ten purchases first: the log is full from the start.
            for _ in 0..10 {
                let (rec, _, _) = purchase(&mut card, flow, 100, None);
                assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{what}");
            }
            let before = ec_view(&mut card);
            assert_eq!(before.log.len(), 10, "{what}");
            let (_, intents, _) = purchase(&mut card, flow, 1_500, Some(cut));
            card.power_cycle();
            let intent = intents.first().expect("an intent").clone();
            assert_eq!(intent.atc_before, Some(before.atc), "{what}");
            let debited = before.balance.checked_sub(intent.amount).unwrap();
            let after_cut = ec_view(&mut card);
            assert_eq!(
                after_cut.balance,
                if happened { debited } else { before.balance },
                "{what}"
            );
            for _ in 0..more {
                let (rec, _, _) = purchase(&mut card, flow, 100, None);
                assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{what}");
            }
            let now = ec_view(&mut card);
            assert_eq!(now.log.len(), 10, "{what}");
            let oldest = now.log.last().and_then(LogRecord::atc).unwrap();
            let debit_atc = before.atc + 1;

            let mut s = CardSession::new(&mut card.card);
            let app = ec::select_application(&mut s, &TerminalConfig::kiosk()).unwrap();
            let got = match check_debit(&mut s, &app, &intent).unwrap() {
                Recovery::Completed(r) => {
                    assert!(happened, "{what}: completed, yet the card did not debit");
                    assert_eq!(r.atc(), Some(debit_atc), "{what}");
                    assert_eq!(r.amount(), Some(intent.amount), "{what}");
                    Completed
                }
                Recovery::NotDone => {
                    assert!(!happened, "{what}: not done, yet the card debited");
                    // Proven only while the log reaches the debit's ATC or older.
                    assert!(oldest <= debit_atc, "{what}: oldest {oldest}");
                    NotDone
                }
                Recovery::Unclear(UnclearReason::LogWrapped {
                    records,
                    oldest_atc,
                }) => {
                    assert_eq!(records, 10, "{what}");
                    assert_eq!(oldest_atc, Some(oldest), "{what}");
                    assert!(oldest > debit_atc, "{what}: oldest {oldest}");
                    Wrapped
                }
                other => panic!("{what}: {other:?}"),
            };
            assert_eq!(got, expected, "{what}");
        }
    }
}
