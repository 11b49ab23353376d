//! Paying a fee from the card's electronic cash, and what the card says about its purse: the
//! kiosk's PBOC side, without any UI.
//!
//! [`pay`] runs a contact electronic-cash purchase with card-core's kernel
//! ([`card_core::pboc::run_contact`], terminal parameters [`TerminalConfig::kiosk`]) and books
//! it in the terminal's ledger write-ahead: the intent, with what recovery needs (the card's ATC
//! and EC balance before), is on disk before the GENERATE AC that can debit the card
//! (JR/T 0025.13 §7.4.5), and the outcome after. A card pulled after that command leaves the
//! entry `unknown`; [`recover`] settles it from the card's ATC, balance and transaction log at
//! its next insert (`card_core::pboc::recovery::check_debit`), so a debit is neither lost nor
//! booked twice. [`read_account`] reads the balance, the limits and the transaction log
//! (JR/T 0025.13 §10).
//!
//! The ledger is reached through [`PaymentBook`]; the kiosk's implementation is the
//! backend-sync ledger ([`LedgerBook`]).

use std::cell::RefCell;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use backend_sync::entry::{Algorithm, CardResult, EntryKind, HexArray, MacData};
use backend_sync::ledger::{
    Ledger, LedgerError, NewPayment, Outcome as LedgerOutcome, RecoveryFacts,
};
use backend_sync::recovery::{Recovered, RecoveryEvidence};
use card_core::pboc::bits::AcType;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::ec::{self, LogRecord};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::{DebitIntent, DebitJournal, JournalError, TransactionRecord};
use card_core::pboc::recovery::{self, Recovery};
use card_core::pboc::risk::HotList;
use card_core::pboc::{
    Amount, Hooks, Outcome, PbocError, TerminalConfig, TransactionParams, run_contact,
};
use card_core::secret::Pin;
use card_core::{CardChannel, CardSession};

use crate::clock::LocalTime;

/// A fee the kiosk collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeItem {
    /// Code on the receipt and in the ledger's note.
    pub code: &'static str,
    /// Name in Chinese.
    pub zh: &'static str,
    /// Name in English.
    pub en: &'static str,
    /// Fixed amount in fen, or `None` when the citizen enters it.
    pub amount_fen: Option<u64>,
    /// Offered on the kiosk's fee list (the counter's sale is not).
    pub at_kiosk: bool,
}

/// The index in [`FEE_ITEMS`] of a counter sale (pharmacy or clinic; the clerk enters the
/// amount).
pub const COUNTER_SALE: usize = 4;

/// The fees of the demo terminal (a real deployment loads its list from the parameters
/// download).
pub const FEE_ITEMS: [FeeItem; 5] = [
    FeeItem {
        code: "MED-RES-2027",
        zh: "城乡居民医疗保险 2027年度个人缴费",
        en: "Residents' medical insurance 2027",
        amount_fen: Some(38_000),
        at_kiosk: true,
    },
    FeeItem {
        code: "CARD-REPLACE",
        zh: "社会保障卡补换卡工本费",
        en: "Card replacement fee",
        amount_fen: Some(2_000),
        at_kiosk: true,
    },
    FeeItem {
        code: "OUTPATIENT-REG",
        zh: "门诊挂号费",
        en: "Outpatient registration",
        amount_fen: Some(1_000),
        at_kiosk: true,
    },
    FeeItem {
        code: "OTHER",
        zh: "其他缴费（自定金额）",
        en: "Other fee (enter the amount)",
        amount_fen: None,
        at_kiosk: true,
    },
    FeeItem {
        code: "COUNTER-SALE",
        zh: "药品及诊疗费",
        en: "Medicines and treatment",
        amount_fen: None,
        at_kiosk: false,
    },
];

/// The largest amount the kiosk accepts for one payment, in fen (the EC terminal limit `9F7B`
/// of [`TerminalConfig::kiosk`]).
pub const MAX_PAYMENT_FEN: u64 = 100_000;

/// What the citizen asked to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOrder {
    /// Index into [`FEE_ITEMS`].
    pub item: usize,
    /// Amount in fen.
    pub amount_fen: u64,
    /// Print the receipt in English.
    pub english: bool,
}

impl PaymentOrder {
    /// The item paid for.
    pub fn fee(&self) -> Option<&'static FeeItem> {
        FEE_ITEMS.get(self.item)
    }
}

/// One line of the card's transaction log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardLogLine {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `HH:MM:SS`, when the log has the time.
    pub time: Option<String>,
    /// Amount in fen.
    pub amount_fen: u64,
    /// Transaction type `9C` (`00` purchase, `01` cash, `20` refund, `60`/`63` loads).
    pub transaction_type: Option<u8>,
    /// The card's ATC of the transaction.
    pub atc: Option<u16>,
    /// Merchant name, when the log has it and it is text.
    pub merchant: Option<String>,
}

/// What the card says about its electronic cash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardAccount {
    /// Balance `9F79` in fen.
    pub balance_fen: u64,
    /// Balance limit `9F77`.
    pub balance_limit_fen: Option<u64>,
    /// Single transaction limit `9F78`.
    pub single_limit_fen: Option<u64>,
    /// The transaction log, newest first.
    pub log: Vec<CardLogLine>,
}

/// A completed payment, for the receipt screen and file.
#[derive(Clone, PartialEq, Eq)]
pub struct PaymentReceipt {
    /// The ledger's sequence number: the receipt's transaction number.
    pub seq: u64,
    /// What was paid for.
    pub item: FeeItem,
    /// Amount in fen.
    pub amount_fen: u64,
    /// The payment card's PAN, masked (first 6, last 4).
    pub pan_masked: String,
    /// The card's ATC of the transaction.
    pub atc: u16,
    /// The transaction certificate, when the card's answer reached the terminal (a debit
    /// recovered from the card's log has none).
    pub tc: Option<[u8; 8]>,
    /// Electronic cash balance after, in fen, when known.
    pub balance_after_fen: Option<u64>,
    /// When.
    pub time: LocalTime,
}

impl std::fmt::Debug for PaymentReceipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentReceipt")
            .field("seq", &self.seq)
            .field("item", &self.item.code)
            .field("amount_fen", &self.amount_fen)
            .field("pan", &self.pan_masked)
            .field("atc", &self.atc)
            .finish_non_exhaustive()
    }
}

/// Why a payment did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentFailure {
    /// The card has no debit/credit application with electronic cash.
    NoPaymentApplication,
    /// The electronic cash balance is below the amount.
    InsufficientBalance {
        /// Balance in fen.
        balance_fen: u64,
    },
    /// Above what the kiosk or the card allows in one payment.
    OverLimit {
        /// The limit in fen.
        limit_fen: u64,
    },
    /// The payment card is on the hot list.
    HotListed,
    /// The card declined (AAC); nothing was debited.
    Declined,
    /// The PIN the card asked for was not given, or is blocked.
    PinNotVerified,
    /// The card was pulled after the command that can debit it: the outcome is settled at its
    /// next insert. The ledger entry's number.
    InDoubt {
        /// Ledger sequence number.
        seq: u64,
    },
    /// The card was pulled before anything was debited.
    CardRemoved,
    /// The ledger could not write the intent; nothing was sent to the card.
    LedgerUnavailable(String),
    /// Anything else, for the technician's log (no personal data).
    Error(String),
}

/// The facts recovery needs, written with the intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentFacts {
    /// The card's ATC before the transaction.
    pub atc_before: Option<u16>,
    /// The EC balance before, in fen.
    pub ec_balance_before: Option<u64>,
    /// PBOC transaction date and time as they went to the card.
    pub date: [u8; 3],
    /// `9F21`.
    pub time: [u8; 3],
}

impl IntentFacts {
    /// The facts as the ledger keeps them with the intent, for the card `card_ref`.
    pub fn for_ledger(&self, card_ref: &str) -> RecoveryFacts {
        RecoveryFacts {
            card: card_ref.to_string(),
            atc_before: self.atc_before,
            balance_before_fen: self.ec_balance_before,
            date_bcd: self.date,
            time_bcd: self.time,
        }
    }
}

/// An entry waiting for its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPayment {
    /// Ledger sequence number.
    pub seq: u64,
    /// Amount in fen.
    pub amount_fen: u64,
    /// Recovery facts.
    pub facts: IntentFacts,
}

/// How a pending payment was settled at the card's next insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The card's log shows the debit: booked as recovered.
    Completed {
        /// Ledger sequence number.
        seq: u64,
        /// Amount in fen.
        amount_fen: u64,
    },
    /// The card was not debited: voided.
    NotDone {
        /// Ledger sequence number.
        seq: u64,
        /// Amount in fen.
        amount_fen: u64,
    },
    /// The card's state does not settle it: left for an operator.
    Unclear {
        /// Ledger sequence number.
        seq: u64,
        /// Amount in fen.
        amount_fen: u64,
    },
}

/// What the payment flow needs from the ledger.
pub trait PaymentBook {
    /// Check that the book takes a durable write now, before any card command: a full disk or
    /// an I/O error refuses the payment before the card is touched. The default has nothing to
    /// check.
    fn ready(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Whether the payment card is on the hot list.
    fn is_hot_listed(&self, pan_digits: &str) -> bool;
    /// Write the intent and the recovery facts durably, in one transaction; the card reference
    /// (the social-security card identifier) finds the entry again at the next insert.
    fn begin(
        &mut self,
        payment: &NewPayment,
        card_ref: &str,
        facts: &IntentFacts,
    ) -> Result<u64, String>;
    /// Append an outcome.
    fn finish(&mut self, seq: u64, outcome: &LedgerOutcome) -> Result<(), String>;
    /// Record that the card's log proves the debit (no cryptogram reached the terminal).
    fn recovered(&mut self, seq: u64, log: &LogRecord, facts: &IntentFacts) -> Result<(), String>;
    /// Leave the entry unknown with a note for an operator.
    fn unclear(&mut self, seq: u64, note: &str) -> Result<(), String>;
    /// The unresolved entries of this card.
    fn pending_for(&mut self, card_ref: &str) -> Result<Vec<PendingPayment>, String>;
}

/// The kiosk's PIN pad during a payment: asks the UI through the session's channels.
pub struct UiPinPad<'a> {
    /// Where the UI's answers come from.
    pub requests: &'a Receiver<crate::session::Request>,
    /// Where the prompt goes.
    pub updates: &'a Sender<crate::session::Update>,
    /// Wakes the UI.
    pub repaint: &'a (dyn Fn() + Send),
    /// How long to wait for the citizen.
    pub timeout: Duration,
}

impl PinPad for UiPinPad<'_> {
    fn request_pin(&mut self, prompt: PinPrompt) -> PinEntry {
        let _ = self.updates.send(crate::session::Update::PaymentPinNeeded {
            tries_left: prompt.tries_left,
            previous_wrong: prompt.previous_wrong,
        });
        (self.repaint)();
        loop {
            match self.requests.recv_timeout(self.timeout) {
                Ok(crate::session::Request::PaymentPin(pin)) => {
                    crate::failpoint::step("pay.pin-entered");
                    return PinEntry::Pin(pin);
                }
                Ok(crate::session::Request::CancelPayment | crate::session::Request::End)
                | Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return PinEntry::Unavailable;
                }
                Ok(_) => {}
            }
        }
    }
}

/// A PIN pad for flows without a citizen (tests, the counter's queries).
#[derive(Debug, Default)]
pub struct NoPinPad;

impl PinPad for NoPinPad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        PinEntry::Unavailable
    }
}

/// A PIN pad with a PIN given in advance (tests).
pub struct FixedPinPad(pub Option<Pin>);

impl PinPad for FixedPinPad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        self.0.take().map_or(PinEntry::Unavailable, PinEntry::Pin)
    }
}

/// The kiosk works offline: no online authorisation (JR/T 0025.6 §7.11: "unable to go online").
struct Offline;

impl OnlineAuthoriser for Offline {
    fn authorise(
        &mut self,
        _request: &OnlineRequest<'_>,
    ) -> Result<OnlineResponse, OnlineUnavailable> {
        Err(OnlineUnavailable("the kiosk works offline".into()))
    }
}

struct BookHotList<'c, 'b, B: PaymentBook> {
    book: &'c RefCell<&'b mut B>,
}

impl<B: PaymentBook> HotList for BookHotList<'_, '_, B> {
    fn is_listed(&self, pan: &card_core::pboc::Pan, _psn: Option<u8>) -> bool {
        self.book.borrow().is_hot_listed(pan.reveal())
    }
}

struct BookJournal<'c, 'b, B: PaymentBook> {
    book: &'c RefCell<&'b mut B>,
    card_ref: &'c str,
    seq: Option<u64>,
    error: Option<String>,
}

impl<B: PaymentBook> DebitJournal for BookJournal<'_, '_, B> {
    fn record_intent(&mut self, intent: &DebitIntent) -> Result<(), JournalError> {
        let fail = |this: &mut Self, why: String| {
            this.error = Some(why.clone());
            Err(JournalError(why))
        };
        let Some(pan) = intent.pan.as_ref() else {
            return fail(self, "no PAN before the debit".into());
        };
        let pan = match pan.reveal().parse() {
            Ok(p) => p,
            Err(e) => return fail(self, format!("PAN: {e}")),
        };
        let psn = match format!("{:02}", intent.psn.unwrap_or(0)).parse() {
            Ok(p) => p,
            Err(e) => return fail(self, format!("PSN: {e}")),
        };
        let (d, t) = (intent.date, intent.time);
        let txn_time = format!(
            "{:04}{:02}{:02}{}",
            d.year(),
            d.month(),
            d.day(),
            hex::encode(t.to_bcd())
        );
        let txn_time = match txn_time.parse() {
            Ok(t) => t,
            Err(e) => return fail(self, format!("time: {e}")),
        };
        let payment = NewPayment {
            kind: EntryKind::EcPurchase,
            amount_fen: intent.amount.minor_units(),
            currency: 156,
            pan,
            psn,
            txn_time,
        };
        let facts = IntentFacts {
            atc_before: intent.atc_before,
            ec_balance_before: intent.ec_balance_before.map(Amount::minor_units),
            date: intent.date.to_bcd(),
            time: intent.time.to_bcd(),
        };
        let result = self
            .book
            .borrow_mut()
            .begin(&payment, self.card_ref, &facts);
        match result {
            Ok(seq) => {
                self.seq = Some(seq);
                crate::failpoint::step("pay.intent-written");
                Ok(())
            }
            Err(e) => fail(self, e),
        }
    }
}

/// What the ledger keeps of the card's answer: ATC, CID, cryptogram, algorithm, and the exact
/// data the card MACed (cryptogram version 01, JR/T 0025.5 附录 E).
pub fn card_result(record: &TransactionRecord) -> Option<CardResult> {
    let atc = record.atc?;
    let cid = record.cid?;
    let cryptogram = record.cryptogram?;
    let algorithm = match record.iad.get(7) {
        Some(0x04) => Algorithm::Sm4,
        Some(0x01) => Algorithm::Tdes,
        _ => return None,
    };
    let mac_data = record.cryptogram_input()?;
    Some(CardResult {
        atc,
        cid: HexArray([cid.0]),
        cryptogram: HexArray(cryptogram),
        algorithm,
        mac_data: MacData(mac_data.as_bytes().to_vec()),
    })
}

fn sent_debit(record: &TransactionRecord) -> bool {
    record.debit_attempted
}

/// Everything [`pay`] needs besides the card and the ledger.
pub struct PayContext<'a> {
    /// Terminal parameters.
    pub terminal: &'a TerminalConfig,
    /// CA keys for offline data authentication.
    pub ca: &'a CaStore,
    /// Now.
    pub now: LocalTime,
    /// A fresh unpredictable number.
    pub unpredictable_number: [u8; 4],
    /// The social-security card identifier of the card in the reader.
    pub card_ref: &'a str,
    /// The PIN pad, should the card ask for its offline PIN.
    pub pin_pad: &'a mut dyn PinPad,
}

/// Pay `order` from the card's electronic cash (module documentation).
pub fn pay<C: CardChannel, B: PaymentBook>(
    s: &mut CardSession<C>,
    book: &mut B,
    ctx: PayContext<'_>,
    order: &PaymentOrder,
) -> Result<PaymentReceipt, PaymentFailure> {
    let item = *order
        .fee()
        .ok_or_else(|| PaymentFailure::Error("no such fee".into()))?;
    if order.amount_fen == 0 {
        return Err(PaymentFailure::Error("amount is zero".into()));
    }
    if order.amount_fen > MAX_PAYMENT_FEN {
        return Err(PaymentFailure::OverLimit {
            limit_fen: MAX_PAYMENT_FEN,
        });
    }
    let amount = Amount::new(order.amount_fen)
        .ok_or_else(|| PaymentFailure::Error("amount out of range".into()))?;
    let (Some(date), Some(time)) = (ctx.now.pboc_date(), ctx.now.pboc_time()) else {
        return Err(PaymentFailure::Error("clock".into()));
    };

    // A ledger that cannot take a write (disk full, I/O error, read-only) refuses the payment
    // here, before the first card command: nothing counted or debited on the card, nothing
    // half-written in the ledger.
    book.ready().map_err(PaymentFailure::LedgerUnavailable)?;
    crate::failpoint::step("pay.ledger-checked");
    // The balance first: a citizen short of money hears so before anything else happens.
    let (_, balances) = ec::balance_inquiry(s, ctx.terminal).map_err(|e| match e {
        PbocError::NoApplication | PbocError::Status { .. } => PaymentFailure::NoPaymentApplication,
        e => failure_of(&e),
    })?;
    crate::failpoint::step("pay.balance-read");
    if balances.balance < amount {
        return Err(PaymentFailure::InsufficientBalance {
            balance_fen: balances.balance.minor_units(),
        });
    }
    if let Some(limit) = balances.single_transaction_limit
        && amount > limit
    {
        return Err(PaymentFailure::OverLimit {
            limit_fen: limit.minor_units(),
        });
    }

    let params = TransactionParams::purchase(amount, date, time, ctx.unpredictable_number);
    let cell = RefCell::new(book);
    let (record, seq, journal_error) = {
        let hot = BookHotList { book: &cell };
        let mut journal = BookJournal {
            book: &cell,
            card_ref: ctx.card_ref,
            seq: None,
            error: None,
        };
        let mut online = Offline;
        let record = run_contact(
            s,
            ctx.terminal,
            ctx.ca,
            params,
            &mut Hooks {
                pin_pad: ctx.pin_pad,
                hot_list: &hot,
                online: &mut online,
                journal: &mut journal,
            },
        );
        (record, journal.seq, journal.error.take())
    };
    crate::failpoint::step("pay.card-done");
    let book = cell.into_inner();
    let pan_masked = record
        .pan
        .as_ref()
        .map(card_core::pboc::Pan::masked)
        .unwrap_or_default();

    match (&record.outcome, seq) {
        (Outcome::ApprovedOffline, Some(seq))
            if record.cid.and_then(|c| c.ac_type()) == Some(AcType::Tc) =>
        {
            let result = card_result(&record).ok_or_else(|| {
                PaymentFailure::Error("the card's answer lacks cryptogram data".into())
            });
            match result {
                Ok(result) => {
                    let atc = result.atc;
                    book.finish(seq, &LedgerOutcome::Approved(result))
                        .map_err(PaymentFailure::LedgerUnavailable)?;
                    crate::failpoint::step("pay.outcome-written");
                    Ok(PaymentReceipt {
                        seq,
                        item,
                        amount_fen: order.amount_fen,
                        pan_masked,
                        atc,
                        tc: record.cryptogram,
                        balance_after_fen: record
                            .ec_balance_after
                            .map(Amount::minor_units)
                            .or_else(|| {
                                balances
                                    .balance
                                    .checked_sub(amount)
                                    .map(Amount::minor_units)
                            }),
                        time: ctx.now,
                    })
                }
                Err(e) => {
                    // Approved by the card but unusable: keep it for the operator.
                    let _ = book.unclear(seq, "TC without the data it covers");
                    Err(e)
                }
            }
        }
        (Outcome::DeclinedOffline | Outcome::DeclinedOnline, Some(seq)) => {
            match card_result(&record) {
                Some(r) if r.cryptogram_type() == backend_sync::entry::CryptogramType::Aac => {
                    book.finish(seq, &LedgerOutcome::Declined(r))
                        .map_err(PaymentFailure::LedgerUnavailable)?;
                }
                _ => {
                    book.finish(
                        seq,
                        &LedgerOutcome::Voided {
                            note: "declined without an AAC".into(),
                        },
                    )
                    .map_err(PaymentFailure::LedgerUnavailable)?;
                }
            }
            Err(PaymentFailure::Declined)
        }
        (Outcome::Aborted(e), Some(seq)) if sent_debit(&record) => {
            // The card may or may not have debited: settle at the next insert.
            let _ = book.finish(seq, &LedgerOutcome::Unknown);
            let _ = e;
            Err(PaymentFailure::InDoubt { seq })
        }
        (Outcome::Aborted(e), _) => Err(match journal_error {
            Some(why) => PaymentFailure::LedgerUnavailable(why),
            None => failure_of(e),
        }),
        (Outcome::DeclinedOffline | Outcome::DeclinedOnline, None) => {
            if record
                .tvr
                .contains(card_core::pboc::TvrBit::CardOnExceptionFile)
            {
                Err(PaymentFailure::HotListed)
            } else {
                Err(PaymentFailure::Declined)
            }
        }
        (Outcome::ApprovedOffline | Outcome::ApprovedOnline, _) => Err(PaymentFailure::Error(
            "approved without a journaled intent".into(),
        )),
    }
}

fn failure_of(e: &PbocError) -> PaymentFailure {
    match e {
        PbocError::Send(card_core::SendError::Transport(
            card_core::TransportError::CardRemoved
            | card_core::TransportError::NoCard
            | card_core::TransportError::CardUnresponsive,
        )) => PaymentFailure::CardRemoved,
        PbocError::NoApplication => PaymentFailure::NoPaymentApplication,
        e => PaymentFailure::Error(e.to_string()),
    }
}

/// Settle this card's unresolved payments from its ATC, balance and log.
pub fn recover<C: CardChannel, B: PaymentBook>(
    s: &mut CardSession<C>,
    book: &mut B,
    terminal: &TerminalConfig,
    card_ref: &str,
) -> Result<Vec<Settled>, PaymentFailure> {
    let pending = book
        .pending_for(card_ref)
        .map_err(PaymentFailure::LedgerUnavailable)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    crate::failpoint::step("recover.pending-found");
    let app = ec::select_application(s, terminal).map_err(|e| failure_of(&e))?;
    let mut out = Vec::new();
    for p in pending {
        let (Some(date), Some(time), Some(amount)) = (
            card_core::pboc::Date::from_bcd(&p.facts.date),
            card_core::pboc::Time::from_bcd(&p.facts.time),
            Amount::new(p.amount_fen),
        ) else {
            book.unclear(p.seq, "recovery facts unreadable")
                .map_err(PaymentFailure::LedgerUnavailable)?;
            out.push(Settled::Unclear {
                seq: p.seq,
                amount_fen: p.amount_fen,
            });
            continue;
        };
        let intent = DebitIntent {
            aid: app.aid.clone(),
            pan: None,
            psn: None,
            atc_before: p.facts.atc_before,
            amount,
            currency: [0x01, 0x56],
            date,
            time,
            ec_balance_before: p.facts.ec_balance_before.and_then(Amount::new),
        };
        let answer = recovery::check_debit(s, &app, &intent).map_err(|e| failure_of(&e))?;
        crate::failpoint::step("recover.card-checked");
        let settled = match answer {
            Recovery::Completed(log) => {
                book.recovered(p.seq, &log, &p.facts)
                    .map_err(PaymentFailure::LedgerUnavailable)?;
                Settled::Completed {
                    seq: p.seq,
                    amount_fen: p.amount_fen,
                }
            }
            Recovery::NotDone => {
                book.finish(
                    p.seq,
                    &LedgerOutcome::Voided {
                        note: "card not debited (checked at the next insert)".into(),
                    },
                )
                .map_err(PaymentFailure::LedgerUnavailable)?;
                Settled::NotDone {
                    seq: p.seq,
                    amount_fen: p.amount_fen,
                }
            }
            Recovery::Unclear(why) => {
                book.unclear(p.seq, &format!("{why:?}"))
                    .map_err(PaymentFailure::LedgerUnavailable)?;
                Settled::Unclear {
                    seq: p.seq,
                    amount_fen: p.amount_fen,
                }
            }
        };
        crate::failpoint::step("recover.settled");
        out.push(settled);
    }
    Ok(out)
}

/// The card's electronic cash: balance, limits and transaction log.
pub fn read_account<C: CardChannel>(
    s: &mut CardSession<C>,
    terminal: &TerminalConfig,
) -> Result<CardAccount, PaymentFailure> {
    let (app, balances) = ec::balance_inquiry(s, terminal).map_err(|e| match e {
        PbocError::NoApplication | PbocError::Status { .. } => PaymentFailure::NoPaymentApplication,
        e => failure_of(&e),
    })?;
    let log = match app.fci.log_entry {
        Some(entry) => ec::read_transaction_log(s, entry).map_err(|e| failure_of(&e))?,
        None => Vec::new(),
    };
    Ok(CardAccount {
        balance_fen: balances.balance.minor_units(),
        balance_limit_fen: balances.balance_limit.map(Amount::minor_units),
        single_limit_fen: balances.single_transaction_limit.map(Amount::minor_units),
        log: log.iter().map(log_line).collect(),
    })
}

fn log_line(r: &LogRecord) -> CardLogLine {
    let date = r
        .date()
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()))
        .unwrap_or_default();
    let time = r.time().map(|t| {
        let b = t.to_bcd();
        format!("{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
    });
    let merchant = r.merchant_name().and_then(|m| {
        let trimmed: Vec<u8> = m
            .iter()
            .copied()
            .take_while(|b| *b != 0)
            .collect::<Vec<_>>();
        let (text, _, bad) = encoding_rs::GBK.decode(&trimmed);
        let text = text.trim().to_string();
        (!bad && !text.is_empty()).then_some(text)
    });
    CardLogLine {
        date,
        time,
        amount_fen: r.amount().map_or(0, Amount::minor_units),
        transaction_type: r.transaction_type(),
        atc: r.atc(),
        merchant,
    }
}

/// The backend-sync ledger as the kiosk's payment book.
pub struct LedgerBook<'l>(pub &'l mut Ledger);

/// A ledger error as the payment reports it: a storage fault (disk full, I/O error, read-only)
/// named first.
fn ledger_err(e: LedgerError) -> String {
    match e.storage_fault() {
        Some(fault) => format!("{fault} ({e})"),
        None => e.to_string(),
    }
}

impl std::fmt::Debug for LedgerBook<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerBook")
    }
}

/// The receipt the kiosk printer prints, from a payment: labels in the citizen's language, the
/// merchant line from the terminal's merchant name (`9F4E`, GBK) and the ledger's terminal id.
pub fn receipt_of(
    receipt: &PaymentReceipt,
    english: bool,
    merchant: &str,
    terminal_id: &str,
) -> crate::receipt::Receipt {
    let lang = if english {
        crate::kiosk::Lang::En
    } else {
        crate::kiosk::Lang::Zh
    };
    let t = receipt.time;
    crate::receipt::Receipt {
        lang,
        merchant: merchant.to_string(),
        terminal_id: terminal_id.to_string(),
        year: t.year,
        month: t.month,
        day: t.day,
        hour: t.hour,
        minute: t.minute,
        second: t.second,
        item: lang.t(receipt.item.zh, receipt.item.en).to_string(),
        amount_fen: receipt.amount_fen,
        method: crate::receipt::PaymentMethod::ElectronicCash,
        masked_pan: receipt.pan_masked.clone(),
        transaction_no: receipt.seq,
        atc: receipt.atc,
        tc: receipt.tc,
        balance_after_fen: receipt.balance_after_fen,
    }
}

/// The merchant name of the terminal parameters (`9F4E`, GBK, zero-padded) as text.
pub fn merchant_text(terminal: &TerminalConfig) -> String {
    let bytes: Vec<u8> = terminal
        .merchant_name
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .collect();
    let (text, _, _) = encoding_rs::GBK.decode(&bytes);
    text.trim().to_string()
}

impl PaymentBook for LedgerBook<'_> {
    /// A real write: the time of this check in the ledger's metadata, committed (and synced)
    /// like any entry.
    fn ready(&mut self) -> Result<(), String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.0
            .set_meta("payment_write_check", &now.to_string())
            .map_err(ledger_err)
    }

    fn is_hot_listed(&self, pan_digits: &str) -> bool {
        match pan_digits.parse::<backend_sync::entry::Pan>() {
            Ok(pan) => matches!(
                self.0.hotlist_check(&pan),
                Err(LedgerError::CardHotListed { .. })
            ),
            Err(_) => false,
        }
    }

    fn begin(
        &mut self,
        payment: &NewPayment,
        card_ref: &str,
        facts: &IntentFacts,
    ) -> Result<u64, String> {
        let intent = self
            .0
            .begin_payment_with(payment, Some(&facts.for_ledger(card_ref)))
            .map_err(ledger_err)?;
        Ok(intent.seq)
    }

    fn finish(&mut self, seq: u64, outcome: &LedgerOutcome) -> Result<(), String> {
        self.0.record_outcome(seq, outcome).map_err(ledger_err)
    }

    fn recovered(&mut self, seq: u64, log: &LogRecord, facts: &IntentFacts) -> Result<(), String> {
        let mut evidence = RecoveryEvidence::torn_debit(log);
        evidence.atc_before = facts.atc_before;
        evidence.balance_before_fen = facts.ec_balance_before;
        let recovered = Recovered::from_evidence(evidence)
            .ok_or_else(|| "the card's log record has no ATC".to_string())?;
        self.0
            .record_outcome(seq, &LedgerOutcome::Recovered(recovered))
            .map_err(ledger_err)
    }

    fn unclear(&mut self, seq: u64, note: &str) -> Result<(), String> {
        self.0
            .record_outcome(
                seq,
                &LedgerOutcome::Unclear {
                    note: note.to_string(),
                },
            )
            .map_err(ledger_err)
    }

    fn pending_for(&mut self, card_ref: &str) -> Result<Vec<PendingPayment>, String> {
        Ok(self
            .0
            .pending_recovery(card_ref)
            .map_err(ledger_err)?
            .into_iter()
            .map(|p| PendingPayment {
                seq: p.seq,
                amount_fen: p.amount_fen,
                facts: IntentFacts {
                    atc_before: p.atc_before,
                    ec_balance_before: p.balance_before_fen,
                    date: p.date_bcd,
                    time: p.time_bcd,
                },
            })
            .collect())
    }
}
