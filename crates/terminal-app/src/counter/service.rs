//! The counter's card and ledger work, without HTTP: one dedicated thread owns the reader, the
//! card session, the PIN pad and the ledger, and does one card operation at a time; the API's
//! handlers hand it jobs and await the answers ([`CounterService`]).
//!
//! When a card comes in the thread runs the identity check the kiosk runs (the same card-core
//! and ledger calls as `session::Worker`): read the SSSE identity, authenticate the card (SM2
//! certificate chain to the trust store, then INTERNAL AUTHENTICATE over a fresh challenge),
//! expiry, the ledger's hot list, PIN tries; then it settles any payment this card left in
//! doubt ([`payment::recover`]). Verifying asks the cardholder for the PIN on the terminal's
//! own PIN pad ([`PinPad`]): the PIN goes from the pad to the card and nowhere else. A debit is
//! [`payment::pay`], the kiosk's electronic-cash purchase with its write-ahead intent, with the
//! client's reference written in the same ledger transaction as the intent
//! ([`Ledger::begin_payment_referenced`]): a reference debits at most once, whatever happens
//! after.
//!
//! The card's status is published to a snapshot the API reads without waiting for the thread;
//! the day's list and look-ups by reference read the ledger on a connection of their own.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use backend_sync::entry::Pan as LedgerPan;
use backend_sync::ledger::{
    ClientRef, Ledger, LedgerEntry, LedgerError, NewPayment, Outcome as LedgerOutcome, RefLookup,
    client_refs,
};
use card_core::crypto::sm2_cert::TrustStore;
use card_core::pboc::TerminalConfig;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::ec::LogRecord;
use card_core::pboc::oda::CaStore;
use card_core::ssse::records::Identity;
use card_core::ssse::{self, SsseError};
use card_core::{CardChannel, CardSession, SendError, TransportError};
use tokio::sync::oneshot;

use super::model::{
    CardStatus, Debit, DebitLine, DebitList, DebitRequest, MaskedHolder, Verdict, VerifyResult,
    state_name, txn_time_text,
};
use crate::card_source::{CardSource, SourceEvent};
use crate::clock::{Clock, LocalTime};
use crate::payment::{
    self, COUNTER_SALE, IntentFacts, LedgerBook, MAX_PAYMENT_FEN, PayContext, PaymentBook,
    PaymentFailure, PaymentOrder, PendingPayment,
};
use crate::session::{CardVerdict, RejectReason, WorkerConfig};

/// Opens the terminal's ledger (the field key lives outside the database).
pub type OpenLedger = Box<dyn Fn() -> Result<Ledger, LedgerError> + Send>;

/// The longest item text, in characters.
pub const MAX_ITEM_CHARS: usize = 100;

/// What the counter needs besides the reader and the PIN pad.
pub struct CounterConfig {
    /// CA keys for card authentication.
    pub trust: TrustStore,
    /// PBOC terminal parameters.
    pub terminal: TerminalConfig,
    /// CA keys for the payment application's offline data authentication.
    pub pboc_ca: CaStore,
    /// The clock (China Standard Time; fixed in tests).
    pub clock: Clock,
    /// The terminal's ledger.
    pub open_ledger: OpenLedger,
}

impl std::fmt::Debug for CounterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterConfig").finish_non_exhaustive()
    }
}

impl CounterConfig {
    /// The counter's settings from the kiosk session's (the demo's `worker_config`); `None`
    /// when it has no ledger, which the counter cannot work without.
    pub fn from_worker(c: WorkerConfig) -> Option<Self> {
        Some(Self {
            trust: c.trust,
            terminal: c.terminal,
            pboc_ca: c.pboc_ca,
            clock: c.clock,
            open_ledger: c.open_ledger?,
        })
    }
}

/// Why a counter request was not done. Each maps to one stable API error code
/// ([`CounterError::code`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    /// A request field is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
    /// No card in the reader.
    #[error("no card in the reader")]
    NoCard,
    /// The card in the reader was turned away by the identity check.
    #[error("the card was turned away: {0}")]
    CardRejected(String),
    /// The identity check is still running.
    #[error("the card is still being checked")]
    CardChecking,
    /// The cardholder's PIN has not been verified for this card.
    #[error("the cardholder's PIN has not been verified (POST /v1/verify first)")]
    NotVerified,
    /// The PIN pad returned no PIN (cancelled, timed out, or no PIN pad).
    #[error("no PIN was entered on the terminal's PIN pad")]
    PinEntryCancelled,
    /// The card was taken out during the operation.
    #[error("the card was removed")]
    CardRemoved,
    /// The reference belongs to an earlier debit with a different request.
    #[error("reference already used by transaction {seq} with a different amount or item")]
    ReferenceConflict {
        /// The earlier debit's sequence number.
        seq: u64,
    },
    /// No debit has this reference.
    #[error("no debit has this reference")]
    UnknownReference,
    /// The card has no electronic cash.
    #[error("the card has no debit/credit application with electronic cash")]
    NoPaymentApplication,
    /// The electronic-cash balance is below the amount.
    #[error("the card's electronic-cash balance is below the amount")]
    InsufficientBalance,
    /// The amount is above what the terminal or the card allows in one payment.
    #[error("the amount is above the limit of {limit_fen} fen for one payment")]
    OverLimit {
        /// The limit in fen.
        limit_fen: u64,
    },
    /// The card's payment application is on the hot list.
    #[error("the payment card is on the hot list")]
    HotListed,
    /// The card declined before anything was debited.
    #[error("the card declined the payment; nothing was debited")]
    Declined,
    /// The card's own PIN check for the payment was not passed.
    #[error("the card asked for its PIN to pay and it was not given or is blocked")]
    PaymentPinNotVerified,
    /// The ledger cannot be opened or written.
    #[error("the terminal's ledger is unavailable: {0}")]
    LedgerUnavailable(String),
    /// The card answered something the terminal cannot use.
    #[error("card error: {0}")]
    Card(String),
    /// The card thread is gone.
    #[error("the counter's card service has stopped")]
    Unavailable,
}

impl CounterError {
    /// The stable API error code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::NoCard => "no_card",
            Self::CardRejected(_) => "card_rejected",
            Self::CardChecking => "card_checking",
            Self::NotVerified => "not_verified",
            Self::PinEntryCancelled => "pin_entry_cancelled",
            Self::CardRemoved => "card_removed",
            Self::ReferenceConflict { .. } => "reference_conflict",
            Self::UnknownReference => "unknown_reference",
            Self::NoPaymentApplication => "no_payment_application",
            Self::InsufficientBalance => "insufficient_balance",
            Self::OverLimit { .. } => "over_limit",
            Self::HotListed => "hot_listed",
            Self::Declined => "declined",
            Self::PaymentPinNotVerified => "payment_pin_not_verified",
            Self::LedgerUnavailable(_) => "ledger_unavailable",
            Self::Card(_) => "card_error",
            Self::Unavailable => "service_unavailable",
        }
    }
}

/// A debit's answer: the debit, and whether this request made it (else it repeats an
/// earlier answer for the same reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitAnswer {
    /// The debit as the ledger has it.
    pub debit: Debit,
    /// This request wrote the ledger entry.
    pub created: bool,
}

/// Check a debit request's fields.
pub fn validate(req: &DebitRequest) -> Result<(), CounterError> {
    if !client_refs::valid_reference(&req.reference) {
        return Err(CounterError::Invalid(format!(
            "reference must be 1 to {} characters of A-Z a-z 0-9 - _ . : /",
            client_refs::MAX_REFERENCE_LEN
        )));
    }
    if req.amount_fen == 0 || req.amount_fen > MAX_PAYMENT_FEN {
        return Err(CounterError::Invalid(format!(
            "amount_fen must be 1 to {MAX_PAYMENT_FEN}"
        )));
    }
    let chars = req.item.chars().count();
    if chars == 0 || chars > MAX_ITEM_CHARS || req.item.chars().any(char::is_control) {
        return Err(CounterError::Invalid(format!(
            "item must be 1 to {MAX_ITEM_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

enum Job {
    Verify(oneshot::Sender<Result<VerifyResult, CounterError>>),
    Debit(
        Box<DebitRequest>,
        oneshot::Sender<Result<DebitAnswer, CounterError>>,
    ),
    Shutdown,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The counter's card service: a thread doing the card and ledger work, and the handle the API
/// uses. Dropping it stops the thread.
pub struct CounterService {
    jobs: Sender<Job>,
    status: Arc<Mutex<CardStatus>>,
    open_ledger: Arc<Mutex<OpenLedger>>,
    clock: Arc<Mutex<Clock>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for CounterService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterService").finish_non_exhaustive()
    }
}

impl CounterService {
    /// Start the card thread on `source`, asking the cardholder through `pin_pad`.
    pub fn start(
        source: Box<dyn CardSource>,
        pin_pad: Box<dyn PinPad + Send>,
        config: CounterConfig,
    ) -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel();
        let status = Arc::new(Mutex::new(CardStatus::no_card("missing")));
        let open_ledger = Arc::new(Mutex::new(config.open_ledger));
        let clock = Arc::new(Mutex::new(config.clock));
        let worker = CardWorker {
            source,
            pin_pad,
            trust: config.trust,
            terminal: config.terminal,
            pboc_ca: config.pboc_ca,
            clock: clock.clone(),
            open_ledger: open_ledger.clone(),
            ledger: None,
            card: None,
            view: CardStatus::no_card("missing"),
            status: status.clone(),
            jobs: job_rx,
        };
        let thread = std::thread::Builder::new()
            .name("counter-card".into())
            .spawn(move || worker.run())?;
        Ok(Self {
            jobs,
            status,
            open_ledger,
            clock,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The card in the reader, as last checked.
    pub fn status(&self) -> CardStatus {
        lock(&self.status).clone()
    }

    /// Ask the cardholder for the PIN on the terminal's PIN pad and verify it with the card.
    pub async fn verify(&self) -> Result<VerifyResult, CounterError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Verify(tx))
            .map_err(|_| CounterError::Unavailable)?;
        rx.await.map_err(|_| CounterError::Unavailable)?
    }

    /// Debit the verified card's electronic cash, once per reference.
    pub async fn debit(&self, req: DebitRequest) -> Result<DebitAnswer, CounterError> {
        validate(&req)?;
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Debit(Box::new(req), tx))
            .map_err(|_| CounterError::Unavailable)?;
        rx.await.map_err(|_| CounterError::Unavailable)?
    }

    /// The ledger's entries of `date` (`None`: today), read on a connection of their own.
    pub async fn debits(&self, date: Option<(u16, u8, u8)>) -> Result<DebitList, CounterError> {
        let open = self.open_ledger.clone();
        let clock = self.clock.clone();
        tokio::task::spawn_blocking(move || {
            let date = date.unwrap_or_else(|| {
                let now = (lock(&clock))();
                (now.year, now.month, now.day)
            });
            let ledger = (lock(&open))().map_err(|e| ledger_down(&e))?;
            list_debits(&ledger, date).map_err(|e| ledger_down(&e))
        })
        .await
        .map_err(|_| CounterError::Unavailable)?
    }

    /// The debit with this reference, as the ledger has it now.
    pub async fn debit_by_reference(&self, reference: String) -> Result<Debit, CounterError> {
        if !client_refs::valid_reference(&reference) {
            return Err(CounterError::UnknownReference);
        }
        let open = self.open_ledger.clone();
        tokio::task::spawn_blocking(move || {
            let ledger = (lock(&open))().map_err(|e| ledger_down(&e))?;
            let entry = ledger
                .entry_by_reference(&reference)
                .map_err(|e| ledger_down(&e))?
                .ok_or(CounterError::UnknownReference)?;
            Ok(debit_of(&entry, &reference, None, None, true))
        })
        .await
        .map_err(|_| CounterError::Unavailable)?
    }

    /// Stop the card thread (after the operation under way) and wait for it.
    pub fn stop(&self) {
        let _ = self.jobs.send(Job::Shutdown);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for CounterService {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ledger_down(e: &LedgerError) -> CounterError {
    CounterError::LedgerUnavailable(e.to_string())
}

/// The debit an entry records.
fn debit_of(
    e: &LedgerEntry,
    reference: &str,
    item: Option<&str>,
    balance_after_fen: Option<u64>,
    replayed: bool,
) -> Debit {
    let (atc, tc) = match (&e.card, &e.recovered) {
        (Some(c), _) => (Some(c.atc), Some(hex::encode_upper(c.cryptogram.0))),
        (None, Some(r)) => (Some(r.atc), None),
        (None, None) => (None, None),
    };
    // A declined card answer carries an AAC, not a TC.
    let approved = e.state.moved_money();
    Debit {
        reference: reference.to_string(),
        seq: e.seq,
        state: state_name(e.state.as_str()),
        amount_fen: e.amount_fen,
        item: item.map(str::to_string),
        pan_masked: e.pan_masked.clone(),
        time: txn_time_text(e.txn_time.as_str()),
        atc,
        tc: tc.filter(|_| approved),
        balance_after_fen,
        replayed,
    }
}

/// The ledger's entries of one day (by transaction time), with the client references.
pub fn list_debits(ledger: &Ledger, (y, m, d): (u16, u8, u8)) -> Result<DebitList, LedgerError> {
    let day = format!("{y:04}{m:02}{d:02}");
    let refs = ledger.client_references()?;
    let mut list = DebitList {
        date: format!("{y:04}-{m:02}-{d:02}"),
        debits: Vec::new(),
        taken_count: 0,
        taken_fen: 0,
    };
    for e in ledger.entries()? {
        let t = e.txn_time.as_str();
        if !t.starts_with(&day) {
            continue;
        }
        if e.state.moved_money() {
            list.taken_count += 1;
            list.taken_fen = list.taken_fen.saturating_add(e.amount_fen);
        }
        list.debits.push(DebitLine {
            seq: e.seq,
            reference: refs.get(&e.seq).cloned(),
            kind: e.kind.as_str().to_string(),
            time: txn_time_text(t).get(11..).unwrap_or_default().to_string(),
            state: state_name(e.state.as_str()),
            amount_fen: e.amount_fen,
            pan_masked: e.pan_masked.clone(),
        });
    }
    Ok(list)
}

/// The ledger as the payment flow's book, with the client's reference written with the intent.
struct ReferencedBook<'l, 'r> {
    ledger: &'l mut Ledger,
    client: ClientRef<'r>,
}

impl PaymentBook for ReferencedBook<'_, '_> {
    fn is_hot_listed(&self, pan_digits: &str) -> bool {
        pan_digits.parse::<LedgerPan>().is_ok_and(|pan| {
            matches!(
                self.ledger.hotlist_check(&pan),
                Err(LedgerError::CardHotListed { .. })
            )
        })
    }

    fn begin(
        &mut self,
        payment: &NewPayment,
        card_ref: &str,
        facts: &IntentFacts,
    ) -> Result<u64, String> {
        self.ledger
            .begin_payment_referenced(payment, Some(&facts.for_ledger(card_ref)), &self.client)
            .map(|i| i.seq)
            .map_err(|e| e.to_string())
    }

    fn finish(&mut self, seq: u64, outcome: &LedgerOutcome) -> Result<(), String> {
        LedgerBook(self.ledger).finish(seq, outcome)
    }

    fn recovered(&mut self, seq: u64, log: &LogRecord, facts: &IntentFacts) -> Result<(), String> {
        LedgerBook(self.ledger).recovered(seq, log, facts)
    }

    fn unclear(&mut self, seq: u64, note: &str) -> Result<(), String> {
        LedgerBook(self.ledger).unclear(seq, note)
    }

    fn pending_for(&mut self, card_ref: &str) -> Result<Vec<PendingPayment>, String> {
        LedgerBook(self.ledger).pending_for(card_ref)
    }
}

/// A card that passed the identity check.
struct Checked {
    session: CardSession<Box<dyn CardChannel + Send>>,
    identity: Identity,
    verified: bool,
}

struct CardWorker {
    source: Box<dyn CardSource>,
    pin_pad: Box<dyn PinPad + Send>,
    trust: TrustStore,
    terminal: TerminalConfig,
    pboc_ca: CaStore,
    clock: Arc<Mutex<Clock>>,
    open_ledger: Arc<Mutex<OpenLedger>>,
    ledger: Option<Ledger>,
    card: Option<Checked>,
    view: CardStatus,
    status: Arc<Mutex<CardStatus>>,
    jobs: Receiver<Job>,
}

fn transport_gone(e: &SsseError) -> bool {
    matches!(
        e,
        SsseError::Send(SendError::Transport(
            TransportError::CardRemoved | TransportError::NoCard | TransportError::CardUnresponsive
        ))
    )
}

fn verdict_status(r: &RejectReason) -> &'static str {
    match r {
        RejectReason::Unreadable(_) => "unreadable",
        RejectReason::NotGenuine(_) => "not_genuine",
        RejectReason::HotListed => "hot_listed",
        RejectReason::Expired(_) => "expired",
        RejectReason::PinBlocked => "pin_blocked",
    }
}

fn verdict_of(v: &CardVerdict, status: &str) -> Verdict {
    Verdict {
        status: status.to_string(),
        genuine: v.genuine,
        in_date: v.in_date,
        not_hot_listed: v.not_hot_listed,
    }
}

impl CardWorker {
    fn run(mut self) {
        loop {
            for e in self.source.poll(Duration::from_millis(20)) {
                self.on_source(e);
            }
            match self.jobs.recv_timeout(Duration::from_millis(10)) {
                Ok(Job::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Job::Verify(reply)) => {
                    let answer = self.verify();
                    let _ = reply.send(answer);
                }
                Ok(Job::Debit(req, reply)) => {
                    let answer = self.debit(&req);
                    let _ = reply.send(answer);
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn publish(&self) {
        *lock(&self.status) = self.view.clone();
    }

    fn now(&self) -> LocalTime {
        (lock(&self.clock))()
    }

    fn ledger(&mut self) -> Result<&mut Ledger, CounterError> {
        if self.ledger.is_none() {
            let opened = (lock(&self.open_ledger))().map_err(|e| ledger_down(&e))?;
            self.ledger = Some(opened);
        }
        self.ledger
            .as_mut()
            .ok_or_else(|| CounterError::LedgerUnavailable("not open".into()))
    }

    fn card_gone(&mut self) {
        // Dropping the session forgets every personal field read from the card.
        self.card = None;
        let reader = self.view.reader.clone();
        self.view = CardStatus::no_card(&reader);
        self.publish();
    }

    fn on_source(&mut self, e: SourceEvent) {
        match e {
            SourceEvent::ReaderReady(_) => {
                self.view.reader = "ready".into();
                self.publish();
            }
            SourceEvent::ReaderGone => {
                self.view.reader = "missing".into();
                self.card_gone();
            }
            SourceEvent::CardRemoved => self.card_gone(),
            SourceEvent::CardInserted => {
                self.card = None;
                self.view = CardStatus {
                    present: true,
                    state: "checking".into(),
                    ..CardStatus::no_card("ready")
                };
                self.publish();
                let mut verdict = CardVerdict::default();
                let result = self.check_card(&mut verdict);
                match result {
                    Ok(card) => {
                        self.card = Some(card);
                        self.settle_pending();
                        self.view.state = "ready".into();
                        self.view.verdict = Some(verdict_of(&verdict, "valid"));
                        self.view.pin_tries_left = verdict.tries_left;
                    }
                    Err(reason) => {
                        if reason == RejectReason::PinBlocked {
                            verdict.tries_left = Some(0);
                        }
                        self.view.state = "rejected".into();
                        self.view.verdict = Some(verdict_of(&verdict, verdict_status(&reason)));
                        self.view.pin_tries_left = verdict.tries_left;
                    }
                }
                self.view.holder = MaskedHolder::of(&verdict);
                self.publish();
            }
        }
    }

    /// The identity check of every terminal mode ([`crate::session::check_identity`]): read,
    /// authenticate (certificate chain and a fresh challenge), expiry, hot list, PIN tries.
    /// `verdict` says how far it got.
    fn check_card(&mut self, verdict: &mut CardVerdict) -> Result<Checked, RejectReason> {
        let channel = self.source.open().map_err(RejectReason::Unreadable)?;
        let session = CardSession::new(channel);
        let today = self.now().ssse_date();
        let trust = self.trust.clone();
        let ledger = self.ledger().ok().map(|l| &*l);
        let checked = crate::session::check_identity(session, &trust, ledger, today, verdict)?;
        Ok(Checked {
            session: checked.session,
            identity: checked.identity,
            verified: false,
        })
    }

    /// Settle the payments this card left in doubt, as the kiosk does at an insert.
    fn settle_pending(&mut self) {
        if self.ledger().is_err() {
            return;
        }
        let (Some(card), Some(ledger)) = (self.card.as_mut(), self.ledger.as_mut()) else {
            return;
        };
        let card_ref = hex::encode(&card.identity.card.card_id);
        // The entry stays unknown on failure; the next insert tries again.
        let _ = payment::recover(
            &mut card.session,
            &mut LedgerBook(ledger),
            &self.terminal,
            &card_ref,
        );
        // Back to the social-security application for the PIN.
        let _ = ssse::select(&mut card.session);
    }

    /// Why there is no checked card to work with.
    fn no_checked_card(&self) -> CounterError {
        match self.view.state.as_str() {
            "checking" => CounterError::CardChecking,
            "rejected" => CounterError::CardRejected(
                self.view
                    .verdict
                    .as_ref()
                    .map_or_else(|| "rejected".into(), |v| v.status.clone()),
            ),
            _ => CounterError::NoCard,
        }
    }

    fn verify(&mut self) -> Result<VerifyResult, CounterError> {
        let no_card = self.no_checked_card();
        let card = self.card.as_mut().ok_or(no_card)?;
        if card.verified {
            return Ok(VerifyResult {
                result: "verified".into(),
                tries_left: None,
            });
        }
        let tries =
            ssse::select(&mut card.session).and_then(|_| ssse::pin_tries_left(&mut card.session));
        let tries = match tries {
            Ok(t) => t,
            Err(e) if transport_gone(&e) => {
                self.card_gone();
                return Err(CounterError::CardRemoved);
            }
            Err(e) => return Err(CounterError::Card(e.to_string())),
        };
        if tries == Some(0) {
            return Ok(self.blocked());
        }
        self.view.busy = Some("verifying".into());
        self.publish();
        let entry = self.pin_pad.request_pin(PinPrompt {
            tries_left: tries,
            previous_wrong: false,
            last_try: tries == Some(1),
            online: false,
        });
        self.view.busy = None;
        self.publish();
        let PinEntry::Pin(pin) = entry else {
            return Err(CounterError::PinEntryCancelled);
        };
        let Some(card) = self.card.as_mut() else {
            return Err(CounterError::CardRemoved);
        };
        let result = ssse::select(&mut card.session)
            .map(|_| ())
            .and_then(|()| ssse::verify_pin(&mut card.session, &pin));
        drop(pin);
        match result {
            Ok(()) => {
                card.verified = true;
                self.view.state = "verified".into();
                // A verified card does not tell its counter (a right PIN resets it).
                self.view.pin_tries_left = None;
                self.publish();
                Ok(VerifyResult {
                    result: "verified".into(),
                    tries_left: None,
                })
            }
            Err(SsseError::WrongPin { tries_left: 0 } | SsseError::PinBlocked) => {
                Ok(self.blocked())
            }
            Err(SsseError::WrongPin { tries_left }) => {
                self.view.pin_tries_left = Some(tries_left);
                self.publish();
                Ok(VerifyResult {
                    result: "wrong_pin".into(),
                    tries_left: Some(tries_left),
                })
            }
            Err(e) if transport_gone(&e) => {
                self.card_gone();
                Err(CounterError::CardRemoved)
            }
            Err(e) => Err(CounterError::Card(e.to_string())),
        }
    }

    /// The PIN is blocked: the card is turned away as at an insert.
    fn blocked(&mut self) -> VerifyResult {
        self.card = None;
        self.view.state = "rejected".into();
        self.view.pin_tries_left = Some(0);
        if let Some(v) = self.view.verdict.as_mut() {
            v.status = "pin_blocked".into();
        }
        self.publish();
        VerifyResult {
            result: "blocked".into(),
            tries_left: Some(0),
        }
    }

    fn debit(&mut self, req: &DebitRequest) -> Result<DebitAnswer, CounterError> {
        let canonical = req.canonical();
        let client = ClientRef {
            reference: &req.reference,
            request: &canonical,
        };
        // A reference already in the ledger answers from there, card or no card.
        match self
            .ledger()?
            .lookup_reference(&client)
            .map_err(|e| ledger_down(&e))?
        {
            RefLookup::Same(entry) => {
                return Ok(DebitAnswer {
                    debit: debit_of(&entry, &req.reference, Some(&req.item), None, true),
                    created: false,
                });
            }
            RefLookup::Different { seq } => return Err(CounterError::ReferenceConflict { seq }),
            RefLookup::Unused => {}
        }
        let no_card = self.no_checked_card();
        if !self.card.as_ref().ok_or(no_card)?.verified {
            return Err(CounterError::NotVerified);
        }
        let mut un = [0u8; 4];
        getrandom::fill(&mut un).map_err(|_| CounterError::Card("no random source".into()))?;
        let now = self.now();
        self.view.busy = Some("paying".into());
        self.publish();
        let (Some(card), Some(ledger)) = (self.card.as_mut(), self.ledger.as_mut()) else {
            return Err(CounterError::NoCard);
        };
        let card_ref = hex::encode(&card.identity.card.card_id);
        let result = payment::pay(
            &mut card.session,
            &mut ReferencedBook { ledger, client },
            PayContext {
                terminal: &self.terminal,
                ca: &self.pboc_ca,
                now,
                unpredictable_number: un,
                card_ref: &card_ref,
                pin_pad: self.pin_pad.as_mut(),
            },
            &PaymentOrder {
                item: COUNTER_SALE,
                amount_fen: req.amount_fen,
                english: false,
            },
        );
        // Back to the social-security application, as after the kiosk's payments.
        let _ = ssse::select(&mut card.session);
        let entry = ledger
            .entry_by_reference(&req.reference)
            .map_err(|e| ledger_down(&e));
        self.view.busy = None;
        self.publish();
        let entry = entry?;
        if matches!(
            result,
            Err(PaymentFailure::CardRemoved | PaymentFailure::InDoubt { .. })
        ) {
            self.card_gone();
        }
        match (result, entry) {
            (Ok(receipt), Some(e)) => Ok(DebitAnswer {
                debit: debit_of(
                    &e,
                    &req.reference,
                    Some(&req.item),
                    receipt.balance_after_fen,
                    false,
                ),
                created: true,
            }),
            (Err(_), Some(e)) => Ok(DebitAnswer {
                debit: debit_of(&e, &req.reference, Some(&req.item), None, false),
                created: true,
            }),
            (Ok(_), None) => Err(CounterError::LedgerUnavailable(
                "the payment's entry has no reference".into(),
            )),
            (Err(f), None) => Err(match f {
                PaymentFailure::NoPaymentApplication => CounterError::NoPaymentApplication,
                PaymentFailure::InsufficientBalance { .. } => CounterError::InsufficientBalance,
                PaymentFailure::OverLimit { limit_fen } => CounterError::OverLimit { limit_fen },
                PaymentFailure::HotListed => CounterError::HotListed,
                PaymentFailure::Declined => CounterError::Declined,
                PaymentFailure::PinNotVerified => CounterError::PaymentPinNotVerified,
                PaymentFailure::CardRemoved | PaymentFailure::InDoubt { .. } => {
                    CounterError::CardRemoved
                }
                PaymentFailure::LedgerUnavailable(why) => CounterError::LedgerUnavailable(why),
                PaymentFailure::Error(why) => CounterError::Card(why),
            }),
        }
    }
}
