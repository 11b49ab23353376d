//! The PBOC terminal kernel (card-core) against the software card's debit/credit + electronic
//! cash application, through the real stack: reader-driver -> pcscd -> vpcd -> VirtualSlot ->
//! SoftCard. Each purchase is followed by a look at the card with the kernel's electronic
//! cash functions (balance by GET DATA `9F79`, ATC `9F36`, transaction log by its `9F4D` entry
//! and `9F4F` format), which must have moved exactly as the purchase says: balance down by the
//! amount, ATC up by one, a new newest log record with the amount, date, time and ATC
//! (JR/T 0025.13 §7.4.5, §10.2-§10.3).
//!
//! The pulled-card tests take the card out of the slot at the debit command: before the card
//! sees it (nothing happened) or after it processed and committed it but before the answer
//! left (the debit happened, the terminal never heard); after re-insertion the kernel's
//! `recovery::check_debit` must say which, and agree with the card's own log.
//!
//! Needs `scripts/pcsc-env.sh start` (the README's test command runs it); each test leases
//! its own vpcd slot.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use card_core::pboc::bits::AcType;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::ec::{self, LogRecord};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::recovery::{Recovery, check_debit};
use card_core::pboc::risk::{self, NoHotList};
use card_core::pboc::select::Interface;
use card_core::pboc::{
    Amount, Date, Hooks, OdaMethod, Outcome, PbocError, TerminalConfig, Time, TransactionParams,
    TransactionRecord, run_contact,
};
use card_core::secret::Pin;
use card_core::tlv::{Tag, Tlv};
use card_core::{CardChannel, CardSession, SendError, TransportError};
use firmware_tests::pboc::profile::TerminalCaKey;
use firmware_tests::testenv::{PcscEnv, SlotLease};
use firmware_tests::vpcd::lock;
use firmware_tests::{Profile, SharedCard, VirtualSlot, shared_fixture};
use reader_driver::{EventWatcher, PcscCard, PcscContext, ProtocolChoice};

/// The cardholder enters the card's PIN once (the profiles ask for offline plaintext PIN).
struct Pad(Option<String>);

impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        match self.0.take() {
            Some(p) => PinEntry::Pin(Pin::new(&p).unwrap()),
            None => PinEntry::Bypassed,
        }
    }
}

/// The kiosk is offline-only: no issuer to ask.
struct Offline;

impl OnlineAuthoriser for Offline {
    fn authorise(&mut self, _r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        Err(OnlineUnavailable("offline-only kiosk".into()))
    }
}

fn profile(name: &str) -> Profile {
    Profile::embedded(name).unwrap()
}

fn ca_store(name: &str) -> CaStore {
    let mut ca = CaStore::new();
    match profile(name).pboc.unwrap().ca_key().unwrap() {
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

/// Wait until pcscd reports the card in `reader` as present (or absent).
fn wait_present(reader: &str, want: bool) {
    let mut w = EventWatcher::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        w.next_events(Duration::from_millis(200));
        if w.card_present(reader) == want {
            return;
        }
    }
    panic!("card in {reader} never became present = {want}");
}

/// A leased vpcd slot with the software card of `name` in it.
struct Station {
    name: &'static str,
    lease: SlotLease,
    slot: VirtualSlot,
    card: SharedCard,
    ctx: PcscContext,
}

impl Station {
    fn new(name: &'static str) -> Self {
        let lease = PcscEnv::load()
            .unwrap_or_else(|e| panic!("{e}"))
            .lease()
            .unwrap();
        // pcscd notices a removal by the previous user of the slot at its next poll.
        wait_present(&lease.reader, false);
        let mut slot = VirtualSlot::new(lease.port);
        let card = shared_fixture(name).unwrap();
        slot.insert(card.clone()).unwrap();
        wait_present(&lease.reader, true);
        Self {
            name,
            lease,
            slot,
            card,
            ctx: PcscContext::new().unwrap(),
        }
    }

    fn connect(&mut self) -> PcscCard {
        self.ctx
            .connect(&self.lease.reader, ProtocolChoice::Any)
            .unwrap()
    }

    /// After a pull: pcscd sees the card gone, the same card goes back in, pcscd sees it.
    fn reinsert(&mut self) {
        wait_present(&self.lease.reader, false);
        self.slot.insert(self.card.clone()).unwrap();
        wait_present(&self.lease.reader, true);
    }

    fn pin(&self) -> Pad {
        Pad(Some(profile(self.name).pin.value))
    }
}

fn contact<C: CardChannel>(
    s: &mut CardSession<C>,
    name: &str,
    amount: u64,
    pad: &mut Pad,
    journal: &mut MemoryJournal,
) -> TransactionRecord {
    run_contact(
        s,
        &TerminalConfig::kiosk(),
        &ca_store(name),
        params(amount),
        &mut Hooks {
            pin_pad: pad,
            hot_list: &NoHotList,
            online: &mut Offline,
            journal,
        },
    )
}

fn qpboc<C: CardChannel>(
    s: &mut CardSession<C>,
    name: &str,
    amount: u64,
    journal: &mut MemoryJournal,
) -> TransactionRecord {
    run_qpboc(
        s,
        &TerminalConfig::kiosk(),
        &ca_store(name),
        params(amount),
        &mut QpbocHooks {
            hot_list: &NoHotList,
            online: &mut Offline,
            journal,
        },
    )
}

/// The card as the kiosk's electronic cash screens see it, through the kernel.
#[derive(Debug, Clone, PartialEq)]
struct EcView {
    balance: Amount,
    atc: u16,
    log: Vec<LogRecord>,
}

fn ec_view<C: CardChannel>(s: &mut CardSession<C>) -> EcView {
    let (app, balances) = ec::balance_inquiry(s, &TerminalConfig::kiosk()).unwrap();
    let atc = risk::get_counter(s, 0x9f36).unwrap().unwrap();
    let log = ec::read_transaction_log(s, app.fci.log_entry.unwrap()).unwrap();
    EcView {
        balance: balances.balance,
        atc,
        log,
    }
}

/// The purchase `rec` moved the card from `before` to `after` exactly: balance down by the
/// amount, ATC + 1, and a new newest log record with the purchase's amount, date, time, ATC.
fn assert_debited(before: &EcView, after: &EcView, rec: &TransactionRecord) {
    assert_eq!(
        after.balance,
        before.balance.checked_sub(rec.amount).unwrap(),
        "balance down by the amount"
    );
    assert_eq!(after.atc, before.atc + 1, "ATC + 1");
    assert_eq!(
        rec.atc,
        Some(after.atc),
        "the transaction's ATC is the card's"
    );
    assert_eq!(rec.ec_balance_after, Some(after.balance), "IDD balance");
    assert_eq!(
        after.log.len(),
        (before.log.len() + 1).min(10),
        "one new record"
    );
    let newest = &after.log[0];
    assert_eq!(newest.amount(), Some(rec.amount));
    assert_eq!(newest.date(), Some(rec.date));
    // Terminal data reach the log only through the PDOL or CDOL (JR/T 0025.5 §18.2). The
    // contact CDOL1 carries the time `9F21`; the PDOL, all a qPBOC card receives, does not
    // (docs/pboc-profile.md), so a qPBOC record has a zero time.
    let time = match rec.interface {
        Interface::Contact => rec.time,
        Interface::Contactless => Time::new(0, 0, 0).unwrap(),
    };
    assert_eq!(newest.time(), Some(time));
    assert_eq!(newest.atc(), Some(after.atc));
    assert_eq!(newest.currency(), Some([0x01, 0x56]));
    assert_eq!(newest.transaction_type(), Some(0x00));
    assert_eq!(
        &after.log[1..],
        &before.log[..after.log.len() - 1],
        "older ones kept"
    );
}

fn contact_purchase_through_pcscd(name: &'static str, amount: u64, algorithm_id: u8) {
    let mut st = Station::new(name);
    let mut s = CardSession::new(st.connect());
    let before = ec_view(&mut s);
    let mut journal = MemoryJournal::default();
    let rec = contact(&mut s, name, amount, &mut st.pin(), &mut journal);
    assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{name}: {rec:?}");
    assert!(rec.ec, "{name}: electronic cash");
    // The profiles' AIP 3D00 offers DDA and CDA; the kiosk supports CDA (9F33 byte 3 bit 4),
    // so CDA is chosen (JR/T 0025.6 §7.5).
    assert_eq!(rec.oda, Some(OdaMethod::Cda), "{name}");
    assert!(rec.oda_failure.is_none(), "{name}: {:?}", rec.oda_failure);
    assert_eq!(rec.cid.and_then(|c| c.ac_type()), Some(AcType::Tc));
    assert_eq!(
        rec.cvm_results.0,
        [0x01, 0x03, 0x02],
        "offline plaintext PIN, successful"
    );
    // IAD byte 8: the algorithm of the cryptogram (04 SM4, 01 3DES).
    assert_eq!(rec.iad[7], algorithm_id, "{name}: {:02X?}", rec.iad);
    assert_eq!(
        journal.0.len(),
        1,
        "intent journaled before the GENERATE AC"
    );
    assert_eq!(journal.0[0].atc_before, Some(before.atc));
    assert_eq!(journal.0[0].ec_balance_before, Some(before.balance));
    let after = ec_view(&mut s);
    assert_debited(&before, &after, &rec);
    // The card's own memory says the same.
    let card = lock(&st.card);
    let state = card.image().pboc.as_ref().unwrap();
    assert_eq!(
        Some(state.ec.as_ref().unwrap().balance),
        Some(after.balance.minor_units())
    );
    assert_eq!(state.atc, after.atc);
}

#[test]
fn contact_ec_purchase_sm_through_pcscd() {
    contact_purchase_through_pcscd("zhangsan", 1_234, 0x04);
}

#[test]
fn contact_ec_purchase_rsa_through_pcscd() {
    contact_purchase_through_pcscd("wangwu-rsa", 2_345, 0x01);
}

#[test]
fn qpboc_purchase_sm_fdda_through_pcscd() {
    let name = "zhangsan";
    let mut st = Station::new(name);
    let mut s = CardSession::new(st.connect());
    let before = ec_view(&mut s);
    let mut journal = MemoryJournal::default();
    let rec = qpboc(&mut s, name, 2_000, &mut journal);
    assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{rec:?}");
    assert_eq!(rec.oda, Some(OdaMethod::Fdda));
    assert!(rec.oda_failure.is_none(), "{:?}", rec.oda_failure);
    assert_eq!(rec.cid.and_then(|c| c.ac_type()), Some(AcType::Tc));
    assert_eq!(rec.iad[7], 0x04, "SM4 cryptogram");
    assert_eq!(journal.0.len(), 1, "intent journaled before the GPO");
    let after = ec_view(&mut s);
    assert_debited(&before, &after, &rec);
    // The last record was read: the card dropped its tear guard (JR/T 0025.12 §7.4.1).
    assert!(lock(&st.card).image().pboc.as_ref().unwrap().tear.is_none());
    // And a second one moves it again.
    let rec2 = qpboc(&mut s, name, 100, &mut journal);
    assert_eq!(rec2.outcome, Outcome::ApprovedOffline);
    let again = ec_view(&mut s);
    assert_debited(&after, &again, &rec2);
}

/// Which command the card is pulled at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The first command with this INS.
    Ins(u8),
    /// The READ RECORD of the last record the qPBOC AFL names.
    LastQpbocRecord,
}

/// Where to pull the card: at which command, and whether the card processed it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pull {
    at: At,
    processed: bool,
}

const fn before(at: At) -> Pull {
    Pull {
        at,
        processed: false,
    }
}

const fn after(at: At) -> Pull {
    Pull {
        at,
        processed: true,
    }
}

/// A PC/SC card that arms the slot's pull just before the chosen command goes out.
struct PullAt<'a> {
    inner: PcscCard,
    slot: &'a VirtualSlot,
    pull: Pull,
    last_record: Option<[u8; 2]>,
    armed: bool,
}

impl CardChannel for PullAt<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if !self.armed {
            let fire = match self.pull.at {
                At::Ins(i) => command[1] == i,
                At::LastQpbocRecord => {
                    command[1] == 0xb2 && self.last_record == Some([command[2], command[3]])
                }
            };
            if fire {
                self.armed = true;
                if self.pull.processed {
                    self.slot.pull_after_processing(1);
                } else {
                    self.slot.pull_after(1);
                }
            }
        }
        let r = self.inner.transmit(command)?;
        if command[1] == 0xa8 && r.ends_with(&[0x90, 0x00]) {
            // The AFL of a qPBOC answer (77 template): its last record is the one that ends
            // the transaction on the card.
            let afl = Tlv::parse(&r[..r.len() - 2]).ok().and_then(|t| {
                t.find(Tag::new(0x94))
                    .and_then(Tlv::bytes)
                    .map(<[u8]>::to_vec)
            });
            if let Some(afl) = afl
                && let Some(e) = afl.chunks(4).last()
            {
                self.last_record = Some([e[2], e[0] | 0x04]);
            }
        }
        Ok(r)
    }
}

fn assert_removed(rec: &TransactionRecord) {
    assert_eq!(
        rec.outcome,
        Outcome::Aborted(PbocError::Send(SendError::Transport(
            TransportError::CardRemoved
        ))),
        "{rec:?}"
    );
}

/// Pull the card at `pull` during a purchase, put it back, and resolve the journaled intent
/// with `check_debit`; the answer must match what the card's balance and log say.
/// Returns the recovery answer.
fn pulled_purchase(name: &'static str, qpboc_flow: bool, pull: Pull) -> Recovery {
    let amount = 1_500;
    let mut st = Station::new(name);
    let before = ec_view(&mut CardSession::new(st.connect()));
    let mut journal = MemoryJournal::default();
    let rec = {
        let mut s = CardSession::new(PullAt {
            inner: st.connect(),
            slot: &st.slot,
            pull,
            last_record: None,
            armed: false,
        });
        let rec = if qpboc_flow {
            qpboc(&mut s, name, amount, &mut journal)
        } else {
            contact(&mut s, name, amount, &mut st.pin(), &mut journal)
        };
        assert!(s.channel().armed, "{pull:?} never reached");
        rec
    };
    assert_removed(&rec);
    assert!(rec.debit_attempted);
    let intent = journal.0.pop().expect("the intent was journaled");
    assert_eq!(intent.atc_before, Some(before.atc));
    assert_eq!(intent.amount, Amount::new(amount).unwrap());

    st.reinsert();
    let mut s = CardSession::new(st.connect());
    let app = ec::select_application(&mut s, &TerminalConfig::kiosk()).unwrap();
    let recovery = check_debit(&mut s, &app, &intent).unwrap();
    let now = ec_view(&mut s);
    // The card's own evidence: a log record newer than the intent with its amount and date.
    let logged = now.log.iter().find(|r| {
        r.atc().is_some_and(|a| a > before.atc)
            && r.amount() == Some(intent.amount)
            && r.date() == Some(intent.date)
    });
    match &recovery {
        Recovery::Completed(r) => {
            assert_eq!(
                Some(r),
                logged,
                "{name} {pull:?}: the record check_debit found"
            );
            assert_eq!(
                now.balance,
                before.balance.checked_sub(intent.amount).unwrap()
            );
            assert_eq!(now.log.len(), before.log.len() + 1);
        }
        Recovery::NotDone => {
            assert_eq!(logged, None, "{name} {pull:?}: log shows a debit");
            assert_eq!(now.balance, before.balance, "{name} {pull:?}");
            assert_eq!(now.log, before.log, "{name} {pull:?}");
        }
        Recovery::Unclear(why) => panic!("{name} {pull:?}: unclear: {why}"),
    }
    // The debit command was counted (ATC + 1) either way: it reached the card's GPO.
    assert_eq!(now.atc, before.atc + 1, "{name} {pull:?}");

    // The card works on: a new purchase goes through and moves it once.
    let mut journal = MemoryJournal::default();
    let rec = if qpboc_flow {
        qpboc(&mut s, name, 100, &mut journal)
    } else {
        contact(&mut s, name, 100, &mut st.pin(), &mut journal)
    };
    assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{rec:?}");
    let after = ec_view(&mut s);
    assert_debited(&now, &after, &rec);
    recovery
}

#[test]
fn contact_card_pulled_at_generate_ac_before_the_card_sees_it() {
    let r = pulled_purchase("zhangsan", false, before(At::Ins(0xae)));
    assert_eq!(r, Recovery::NotDone);
}

#[test]
fn contact_card_pulled_at_generate_ac_after_the_debit() {
    let r = pulled_purchase("zhangsan", false, after(At::Ins(0xae)));
    assert!(matches!(r, Recovery::Completed(_)), "{r:?}");
}

#[test]
fn qpboc_card_pulled_after_the_gpo_debit_is_undone_by_the_card() {
    // The card debited in the GPO under its tear guard; the terminal never got the records,
    // so at the next selection the card undoes the debit (JR/T 0025.12 §7.4.1).
    let r = pulled_purchase("lisi", true, after(At::Ins(0xa8)));
    assert_eq!(r, Recovery::NotDone);
}

#[test]
fn qpboc_card_pulled_before_the_last_record_is_undone_by_the_card() {
    let r = pulled_purchase("zhangsan", true, before(At::LastQpbocRecord));
    assert_eq!(r, Recovery::NotDone);
}

#[test]
fn qpboc_card_pulled_after_the_last_record_keeps_the_debit() {
    // The card read out its last record and dropped the guard; only the answer was lost.
    let r = pulled_purchase("zhangsan", true, after(At::LastQpbocRecord));
    assert!(matches!(r, Recovery::Completed(_)), "{r:?}");
}
