//! The citizen's session, without any UI: what happens between "card in" and "card out".
//!
//! A [`Worker`] runs on its own thread. It watches the [`CardSource`], and when a card comes in
//! it checks it: reads the social-security identity, authenticates the card against the trust
//! store (certificate chain and a fresh challenge), checks expiry and the local hot list, settles
//! any payment a pulled card left in doubt ([`crate::payment::recover`]), asks the card how many
//! PIN tries are left. It then answers the UI's [`Request`]s (PIN, queries, electronic cash
//! account, payment, PIN change, end) and reports everything as [`Update`]s, calling the repaint
//! hook after each so the UI wakes up. The UI never touches the card, the ledger or the network itself; the tests drive
//! this module directly, the kiosk GUI and the counter API drive it too.
//!
//! Personal data leaves this module only inside [`Citizen`], whose fields mask themselves when
//! displayed; nothing personal is logged.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use card_core::pboc::TerminalConfig;
use card_core::pboc::oda::CaStore;

use backend_sync::entry::Pan;
use backend_sync::ledger::{Ledger, LedgerError};
use card_core::crypto::rsa::YearMonth;
use card_core::crypto::sm2_cert::TrustStore;
use card_core::secret::Pin;
use card_core::ssse::records::Identity;
use card_core::ssse::{self, Date, ReadStrategy, SsseError};
use card_core::{CardChannel, CardSession, SendError, TransportError};

use crate::card_source::{CardSource, SourceEvent};
use crate::clock::Clock;
use crate::payment::{
    self, CardAccount, LedgerBook, PayContext, PaymentFailure, PaymentOrder, PaymentReceipt,
    Settled, UiPinPad,
};

/// Why a card was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// Not a social-security card, or it cannot be read.
    Unreadable(String),
    /// Its certificates or its answer to the challenge are not valid.
    NotGenuine(String),
    /// Reported lost or stolen.
    HotListed,
    /// Past its expiry date.
    Expired(Date),
    /// The PIN is blocked.
    PinBlocked,
}

/// What the UI asks the session to do.
pub enum Request {
    /// Verify the PIN the citizen entered.
    VerifyPin(Pin),
    /// Change the PIN.
    ChangePin {
        /// Current PIN.
        old: Pin,
        /// New PIN.
        new: Pin,
    },
    /// Read the card's electronic cash balance, limits and transaction log.
    ShowAccount,
    /// Pay a fee from the card's electronic cash.
    Pay(PaymentOrder),
    /// The offline PIN the card asked for during a payment.
    PaymentPin(Pin),
    /// The citizen cancelled the payment's PIN prompt.
    CancelPayment,
    /// End the session (the citizen is done, or the idle timeout passed).
    End,
    /// Today's transactions and the shift's totals from the ledger (counter mode).
    DayBook,
    /// Close the shift: the ledger's open batch goes to reconciliation with the backend at the
    /// next sync, and a new one opens (counter mode).
    CloseShift,
    /// The technician's service view: readers and the last exchanges.
    Service,
    /// The service view with the conformance and health checks run on the card in the reader
    /// (read-only: no PIN verified, no transaction counted).
    ServiceChecks,
    /// What the signed-in cardholder's medical account has left offline (counter mode).
    MedicalBalance,
    /// Record an offline medical-account debit of the signed-in cardholder, attested by the
    /// card's signature (counter mode).
    MedicalDebit {
        /// Amount in fen.
        amount_fen: u64,
    },
    /// Stop the worker.
    Shutdown,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::VerifyPin(_) => "VerifyPin(<redacted>)",
            Self::ChangePin { .. } => "ChangePin(<redacted>)",
            Self::ShowAccount => "ShowAccount",
            Self::Pay(_) => "Pay",
            Self::PaymentPin(_) => "PaymentPin(<redacted>)",
            Self::CancelPayment => "CancelPayment",
            Self::End => "End",
            Self::DayBook => "DayBook",
            Self::CloseShift => "CloseShift",
            Self::Service => "Service",
            Self::ServiceChecks => "ServiceChecks",
            Self::MedicalBalance => "MedicalBalance",
            Self::MedicalDebit { .. } => "MedicalDebit",
            Self::Shutdown => "Shutdown",
        })
    }
}

/// Insurance and medical-account figures from the terminal's local copy of the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsuranceView {
    /// Status (`active`, `suspended`, ...).
    pub status: String,
    /// Months of contributions.
    pub contribution_months: u32,
    /// Medical-account balance in fen.
    pub medical_balance_fen: i64,
    /// When the figures were true, as `YYYY-MM-DD HH:MM`.
    pub as_of: String,
}

/// A signed-in citizen.
#[derive(Clone)]
pub struct Citizen {
    /// What the card says.
    pub identity: Identity,
    /// What the local records say, if the terminal has the citizen's record.
    pub insurance: Option<InsuranceView>,
}

impl std::fmt::Debug for Citizen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Citizen")
            .field("identity", &self.identity)
            .field("has_insurance_record", &self.insurance.is_some())
            .finish()
    }
}

/// What the identity check found about the card in the reader, for a clerk's verdict at a
/// glance. Personal fields are masked; a check that was not reached (an earlier one failed) is
/// `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardVerdict {
    /// Cardholder's name, masked.
    pub name: String,
    /// Social-security number, masked.
    pub ssn: String,
    /// Card number, masked.
    pub card_number: String,
    /// Expiry date `YYYY-MM-DD`.
    pub expiry: String,
    /// The certificate chain and the card's signature over a fresh challenge verified.
    pub genuine: Option<bool>,
    /// Not past its expiry date.
    pub in_date: Option<bool>,
    /// Not on the ledger's hot list.
    pub not_hot_listed: Option<bool>,
    /// PIN tries left.
    pub tries_left: Option<u8>,
}

impl CardVerdict {
    /// Every check passed.
    pub fn valid(&self) -> bool {
        self.genuine == Some(true)
            && self.in_date == Some(true)
            && self.not_hot_listed == Some(true)
            && self.tries_left.is_some_and(|n| n > 0)
    }
}

/// One line of today's transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayLine {
    /// The ledger's sequence number (the transaction number on the receipt).
    pub seq: u64,
    /// Local time `hh:mm:ss`.
    pub time: String,
    /// The ledger's state name (`approved_offline`, `declined`, `unknown`, ...).
    pub state: &'static str,
    /// Amount in fen.
    pub amount_fen: u64,
    /// Card number, masked.
    pub pan_masked: String,
}

/// Today's transactions and the open shift's totals, as the ledger has them; the same totals
/// the sync agent sends when the shift (the ledger's batch) is closed, which the backend
/// answers balanced or with the differences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayBook {
    /// Today's entries, oldest first.
    pub lines: Vec<DayLine>,
    /// The open shift's number (the ledger's batch number).
    pub shift: u32,
    /// Approved debits in the shift: count and fen.
    pub approved: (u64, u64),
    /// Debits proven by the card's log (no cryptogram reached the terminal): count and fen.
    pub recovered: (u64, u64),
    /// Entries still in doubt (card pulled; settled at the card's next insert).
    pub in_doubt: u64,
    /// Medical-account debits recorded in the shift: count and fen.
    pub medical: (u64, u64),
    /// The shift closed before this one, and what the server's reconciliation said of it.
    pub previous: Option<ClosedShift>,
}

/// A closed shift as the ledger has it, with the central server's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedShift {
    /// Its number (the ledger's batch number).
    pub shift: u32,
    /// Approved debits the terminal counted: count and fen.
    pub approved: (u64, u64),
    /// The server's answer to the batch close.
    pub reconciliation: Reconciliation,
}

/// What the server said of a closed shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciliation {
    /// Not answered yet: the sync agent has not uploaded or closed it.
    Waiting,
    /// The server booked the same count and amount.
    Balanced,
    /// The server booked something else: its count and fen.
    Unbalanced {
        /// What the server booked.
        server: (u64, u64),
    },
}

/// A recorded medical-account debit, for the receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalReceipt {
    /// The ledger's sequence number.
    pub seq: u64,
    /// Amount in fen.
    pub amount_fen: u64,
    /// What the account has left offline after it, in fen.
    pub available_after_fen: i64,
}

/// What the session tells the UI.
#[derive(Debug, Clone)]
pub enum Update {
    /// The reader's state.
    Reader(ReaderStatus),
    /// The ledger's sync state, for the status bar.
    Sync {
        /// The sync agent reached the backend in the last ten minutes.
        online: bool,
        /// Entries waiting to be uploaded (final ones, and ones still in doubt).
        pending: u64,
    },
    /// A card is being read and checked.
    Reading,
    /// What the identity check found, masked, before `PinNeeded` or `Rejected` (a clerk's
    /// verdict at a glance).
    Verdict(Box<CardVerdict>),
    /// Today's transactions and the shift's totals.
    DayBook(Box<DayBook>),
    /// The technician's service view.
    Service(Box<crate::service_view::ServiceView>),
    /// What the medical account has left offline, in fen (`None`: no local record of the
    /// cardholder), and as of when (`YYYY-MM-DD hh:mm`).
    MedicalBalance {
        /// Fen left offline.
        available_fen: Option<i64>,
        /// The record's time.
        as_of: String,
    },
    /// A medical-account debit was recorded.
    MedicalRecorded(Box<MedicalReceipt>),
    /// A medical-account debit was refused; nothing was recorded.
    MedicalFailed(String),
    /// The card was turned away.
    Rejected(RejectReason),
    /// The card is genuine and valid; the PIN is needed.
    PinNeeded {
        /// Tries the card allows.
        tries_left: u8,
    },
    /// The PIN was wrong.
    PinWrong {
        /// Tries left.
        tries_left: u8,
    },
    /// The PIN is blocked now.
    PinBlocked,
    /// Signed in.
    SignedIn(Box<Citizen>),
    /// The PIN was changed.
    PinChanged,
    /// Changing the PIN failed (wrong old PIN is reported as `PinWrong`).
    PinChangeFailed(String),
    /// CHANGE PIN may or may not have run on the card (the card was pulled as it went out, or
    /// answered "memory changed"): the card holds the old or the new PIN, and no command can
    /// tell which without spending a try. Followed by `CardRemoved` if the card is gone.
    PinChangeInDoubt,
    /// Payments a pulled card had left in doubt, settled at this insert.
    Settled(Vec<Settled>),
    /// The card's electronic cash.
    Account(CardAccount),
    /// The electronic cash could not be read.
    AccountFailed(PaymentFailure),
    /// A payment is under way: the card must stay in.
    Paying,
    /// The card asks for its PIN to pay.
    PaymentPinNeeded {
        /// Tries left, when known.
        tries_left: Option<u8>,
        /// The previous PIN was wrong.
        previous_wrong: bool,
    },
    /// Paid.
    Paid {
        /// What the receipt shows.
        receipt: Box<PaymentReceipt>,
        /// The receipt file written for the printer, if any.
        file: Option<PathBuf>,
    },
    /// The payment did not go through.
    PaymentFailed(PaymentFailure),
    /// The card was taken out.
    CardRemoved,
    /// The session ended (card still in: "please take your card").
    Ended,
    /// Something failed that the citizen should be told about.
    Error(String),
}

/// The reader as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderStatus {
    /// No reader (or pcscd down).
    Missing,
    /// Ready, no card.
    Ready(String),
    /// A card is in.
    CardIn,
}

/// Settings of a worker.
pub struct WorkerConfig {
    /// CA keys for card authentication.
    pub trust: TrustStore,
    /// The terminal ledger (hot list, cardholder records).
    pub ledger: Option<PathBuf>,
    /// Opens the ledger (the field key lives outside the database).
    pub open_ledger: Option<Box<dyn Fn() -> Result<Ledger, LedgerError> + Send>>,
    /// The clock (China Standard Time in the kiosk; fixed in tests).
    pub clock: Clock,
    /// PBOC terminal parameters.
    pub terminal: TerminalConfig,
    /// CA keys for the payment application's offline data authentication.
    pub pboc_ca: CaStore,
    /// Where receipt files go (the kiosk printer's spool); none: no files.
    pub receipts: Option<PathBuf>,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("ledger", &self.ledger)
            .field("receipts", &self.receipts)
            .finish_non_exhaustive()
    }
}

struct Active {
    session: CardSession<Box<dyn CardChannel + Send>>,
    identity: Identity,
    pan: Option<String>,
    signed_in: bool,
}

/// The session worker.
pub struct Worker {
    source: Box<dyn CardSource>,
    requests: Receiver<Request>,
    updates: Sender<Update>,
    repaint: Box<dyn Fn() + Send>,
    config: WorkerConfig,
    active: Option<Active>,
    ledger: Option<Ledger>,
    trace: crate::service_view::TraceRing,
}

fn transport_gone(e: &SsseError) -> bool {
    matches!(
        e,
        SsseError::Send(SendError::Transport(
            TransportError::CardRemoved | TransportError::NoCard | TransportError::CardUnresponsive
        ))
    )
}

/// A card that passed the identity check, with its open session.
pub struct CheckedCard<C: CardChannel> {
    /// The session, the SSSE application selected.
    pub session: CardSession<C>,
    /// What the card says.
    pub identity: Identity,
    /// The PAN the card's certificates name (for the hot list and the payment book).
    pub pan: String,
    /// PIN tries left.
    pub tries_left: u8,
}

/// The identity check every terminal mode runs when a card comes in (the kiosk's session, the
/// counter API): read the SSSE identity, authenticate the card (its certificate chain up to
/// `trust` and its signature over a fresh random challenge), check expiry against `today`, the
/// hot list of `ledger`, and ask for the PIN tries. `verdict` says how far it got, masked.
pub fn check_identity<C: CardChannel>(
    mut session: CardSession<C>,
    trust: &TrustStore,
    ledger: Option<&Ledger>,
    today: Date,
    verdict: &mut CardVerdict,
) -> Result<CheckedCard<C>, RejectReason> {
    let identity = card_core::channel::rerun_after_reset(&mut session, |s| {
        ssse::read_identity(s, ReadStrategy::AllRecords)
    })
    .map_err(|e| match e {
        SsseError::NotSsseCard => RejectReason::Unreadable("not a social-security card".into()),
        e => RejectReason::Unreadable(e.to_string()),
    })?;
    verdict.name = identity.holder.name.to_string();
    verdict.ssn = identity.holder.ssn.to_string();
    verdict.card_number = identity.card.card_number.to_string();
    verdict.expiry = identity.card.expiry_date.to_string();
    let mut challenge = [0u8; ssse::auth::CHALLENGE_LEN];
    getrandom::fill(&mut challenge).map_err(|e| RejectReason::Unreadable(e.to_string()))?;
    let month = YearMonth {
        year: today.year,
        month: today.month,
    };
    let authenticated =
        ssse::auth::authenticate_card(&mut session, trust, &identity, &challenge, month).map_err(
            |e| {
                verdict.genuine = Some(false);
                RejectReason::NotGenuine(e.to_string())
            },
        )?;
    verdict.genuine = Some(true);
    verdict.in_date = Some(!identity.card.is_expired(today));
    if identity.card.is_expired(today) {
        return Err(RejectReason::Expired(identity.card.expiry_date));
    }
    let pan = authenticated.pan_digits();
    if let Some(ledger) = ledger
        && let Ok(p) = pan.parse::<Pan>()
        && matches!(
            ledger.hotlist_check(&p),
            Err(LedgerError::CardHotListed { .. })
        )
    {
        verdict.not_hot_listed = Some(false);
        return Err(RejectReason::HotListed);
    }
    verdict.not_hot_listed = Some(true);
    ssse::select(&mut session).map_err(|e| RejectReason::Unreadable(e.to_string()))?;
    let tries = match ssse::pin_tries_left(&mut session) {
        Ok(Some(0)) => {
            verdict.tries_left = Some(0);
            return Err(RejectReason::PinBlocked);
        }
        Ok(Some(n)) => n,
        Ok(None) => 3,
        Err(e) => return Err(RejectReason::Unreadable(e.to_string())),
    };
    verdict.tries_left = Some(tries);
    Ok(CheckedCard {
        session,
        identity,
        pan,
        tries_left: tries,
    })
}

impl Worker {
    /// A worker reading `source`, answering `requests`, reporting on `updates`.
    pub fn new(
        source: Box<dyn CardSource>,
        requests: Receiver<Request>,
        updates: Sender<Update>,
        repaint: Box<dyn Fn() + Send>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            source,
            requests,
            updates,
            repaint,
            config,
            active: None,
            ledger: None,
            trace: crate::service_view::TraceRing::default(),
        }
    }

    /// Start on its own thread.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("kiosk-session".into())
            .spawn(move || self.run())
    }

    fn send(&self, u: Update) {
        let _ = self.updates.send(u);
        (self.repaint)();
    }

    fn ledger(&mut self) -> Option<&mut Ledger> {
        if self.ledger.is_none()
            && let Some(open) = &self.config.open_ledger
        {
            self.ledger = open().ok();
        }
        self.ledger.as_mut()
    }

    /// Tell the status bar how the ledger's sync stands.
    fn sync_status(&mut self) {
        let Some(summary) = self.ledger().and_then(|l| l.sync_summary().ok()) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let online = summary
            .last_success
            .is_some_and(|t| now.saturating_sub(t) < 600);
        self.send(Update::Sync {
            online,
            pending: summary.pending.saturating_add(summary.unresolved),
        });
    }

    /// Run until `Request::Shutdown` or the request channel closes.
    pub fn run(mut self) {
        let mut last_status: Option<std::time::Instant> = None;
        loop {
            if last_status.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                self.sync_status();
                last_status = Some(std::time::Instant::now());
            }
            for e in self.source.poll(Duration::from_millis(50)) {
                self.on_source(e);
            }
            match self.requests.recv_timeout(Duration::from_millis(10)) {
                Ok(Request::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(r) => self.on_request(r),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn on_source(&mut self, e: SourceEvent) {
        match e {
            SourceEvent::ReaderReady(name) => self.send(Update::Reader(ReaderStatus::Ready(name))),
            SourceEvent::ReaderGone => {
                self.active = None;
                self.send(Update::Reader(ReaderStatus::Missing));
            }
            SourceEvent::CardRemoved => {
                // Dropping the session forgets every personal field read from the card.
                self.active = None;
                self.send(Update::CardRemoved);
            }
            SourceEvent::CardInserted => {
                self.send(Update::Reader(ReaderStatus::CardIn));
                self.send(Update::Reading);
                let mut verdict = CardVerdict::default();
                let result = self.check_card(&mut verdict);
                if let Err(RejectReason::PinBlocked) = result {
                    verdict.tries_left = Some(0);
                }
                self.send(Update::Verdict(Box::new(verdict)));
                match result {
                    Ok(tries_left) => {
                        self.settle_pending();
                        self.send(Update::PinNeeded { tries_left });
                    }
                    Err(reason) => {
                        self.active = None;
                        self.send(Update::Rejected(reason));
                    }
                }
            }
        }
    }

    /// Read, authenticate, check expiry and hot list, ask for the PIN tries; `verdict` says
    /// how far it got.
    fn check_card(&mut self, verdict: &mut CardVerdict) -> Result<u8, RejectReason> {
        let channel = self.source.open().map_err(RejectReason::Unreadable)?;
        // The GENERATE AC steps of a payment (crate::failpoint).
        let channel: Box<dyn CardChannel + Send> =
            Box::new(crate::failpoint::StepChannel::new(channel));
        let session = CardSession::new(channel).with_trace(Box::new(self.trace.clone()));
        let today = (self.config.clock)().ssse_date();
        let trust = self.config.trust.clone();
        let checked = check_identity(session, &trust, self.ledger().map(|l| &*l), today, verdict)?;
        let tries = checked.tries_left;
        self.active = Some(Active {
            session: checked.session,
            identity: checked.identity,
            pan: Some(checked.pan),
            signed_in: false,
        });
        Ok(tries)
    }

    fn insurance(&mut self, identity: &Identity) -> Option<InsuranceView> {
        let ssn = identity.holder.ssn.reveal().to_string();
        let record = self.ledger()?.cardholder_by_ssn(&ssn).ok()??;
        Some(InsuranceView {
            status: record.insurance_status.clone(),
            contribution_months: record.contribution_months,
            medical_balance_fen: record.medical_balance_fen,
            as_of: {
                let t = record.as_of.as_str();
                format!(
                    "{}-{}-{} {}:{}",
                    t.get(0..4).unwrap_or_default(),
                    t.get(4..6).unwrap_or_default(),
                    t.get(6..8).unwrap_or_default(),
                    t.get(8..10).unwrap_or_default(),
                    t.get(10..12).unwrap_or_default()
                )
            },
        })
    }

    fn on_request(&mut self, r: Request) {
        match r {
            Request::VerifyPin(pin) => {
                let Some(active) = self.active.as_mut() else {
                    return self.send(Update::Error("no card".into()));
                };
                let result = ssse::select(&mut active.session)
                    .map(|_| ())
                    .and_then(|()| ssse::verify_pin(&mut active.session, &pin));
                match result {
                    Ok(()) => {
                        active.signed_in = true;
                        let identity = active.identity.clone();
                        let insurance = self.insurance(&identity);
                        self.send(Update::SignedIn(Box::new(Citizen {
                            identity,
                            insurance,
                        })));
                    }
                    Err(SsseError::WrongPin { tries_left }) => {
                        self.send(Update::PinWrong { tries_left })
                    }
                    Err(SsseError::PinBlocked) => {
                        self.active = None;
                        self.send(Update::PinBlocked);
                    }
                    Err(e) if transport_gone(&e) => {
                        self.active = None;
                        self.send(Update::CardRemoved);
                    }
                    Err(e) => self.send(Update::Error(e.to_string())),
                }
            }
            Request::ChangePin { old, new } => {
                let Some(active) = self.active.as_mut() else {
                    return self.send(Update::Error("no card".into()));
                };
                // A failed SELECT changed nothing. A failed CHANGE PIN may have run on the card
                // all the same (its answer lost, or 65xx "memory changed"): the citizen is then
                // told that the new PIN may hold (docs/reliability.md, PIN change tearing).
                let mut in_doubt = false;
                let result = ssse::select(&mut active.session).and_then(|_| {
                    ssse::change_pin(&mut active.session, &old, &new)
                        .inspect_err(|e| in_doubt = e.card_may_have_changed())
                });
                if in_doubt {
                    self.send(Update::PinChangeInDoubt);
                }
                match result {
                    Ok(()) => self.send(Update::PinChanged),
                    Err(SsseError::WrongPin { tries_left }) => {
                        self.send(Update::PinWrong { tries_left })
                    }
                    Err(SsseError::PinBlocked) => {
                        self.active = None;
                        self.send(Update::PinBlocked);
                    }
                    Err(e) if transport_gone(&e) => {
                        self.active = None;
                        self.send(Update::CardRemoved);
                    }
                    Err(_) if in_doubt => {}
                    Err(e) => self.send(Update::PinChangeFailed(e.to_string())),
                }
            }
            Request::ShowAccount => self.show_account(),
            Request::Pay(order) => self.pay(&order),
            // Only meaningful while a payment waits for them (see `UiPinPad`).
            Request::PaymentPin(_) | Request::CancelPayment => {}
            Request::End => {
                self.active = None;
                self.send(Update::Ended);
            }
            Request::DayBook => self.day_book(),
            Request::MedicalBalance => self.medical_balance(),
            Request::MedicalDebit { amount_fen } => self.medical_debit(amount_fen),
            Request::Service => {
                let view = crate::service_view::ServiceView {
                    readers: self.source.describe(),
                    trace: self.trace.lines(),
                    checks: None,
                };
                self.send(Update::Service(Box::new(view)));
            }
            Request::ServiceChecks => {
                let checks = self.service_checks();
                let view = crate::service_view::ServiceView {
                    readers: self.source.describe(),
                    trace: self.trace.lines(),
                    checks: Some(checks),
                };
                self.send(Update::Service(Box::new(view)));
            }
            Request::CloseShift => {
                let closed = self.ledger().map(Ledger::close_batch);
                match closed {
                    Some(Ok(_)) => {
                        self.sync_status();
                        self.day_book();
                    }
                    Some(Err(e)) => self.send(Update::Error(e.to_string())),
                    None => self.send(Update::Error("no ledger".into())),
                }
            }
            Request::Shutdown => {}
        }
    }

    fn medical_balance(&mut self) {
        if !self.signed_in() {
            return;
        }
        let ssn = self.active.as_ref().map(|a| a.identity.holder.ssn.clone());
        let (Some(ssn), Some(ledger)) = (ssn, self.ledger()) else {
            return self.send(Update::MedicalBalance {
                available_fen: None,
                as_of: String::new(),
            });
        };
        let update = match ledger.medical_available(&ssn) {
            Ok(a) => {
                let t = a.as_of.as_str();
                Update::MedicalBalance {
                    available_fen: Some(a.available_fen),
                    as_of: format!(
                        "{}-{}-{} {}:{}",
                        t.get(0..4).unwrap_or_default(),
                        t.get(4..6).unwrap_or_default(),
                        t.get(6..8).unwrap_or_default(),
                        t.get(8..10).unwrap_or_default(),
                        t.get(10..12).unwrap_or_default()
                    ),
                }
            }
            Err(_) => Update::MedicalBalance {
                available_fen: None,
                as_of: String::new(),
            },
        };
        self.send(update);
    }

    /// Record an offline medical-account debit: the card signs a challenge bound to the entry
    /// (`backend_sync::medical`), the ledger records it final at once, refusing an overdraft,
    /// a hot card or a cardholder without a record before anything is written.
    fn medical_debit(&mut self, amount_fen: u64) {
        use backend_sync::entry::IdempotencyId;
        use backend_sync::ledger::NewMedicalDebit;
        use backend_sync::medical;
        if !self.signed_in() {
            return;
        }
        let now = (self.config.clock)();
        let txn_time = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            now.year, now.month, now.day, now.hour, now.minute, now.second
        );
        let Ok(txn_time) = txn_time.parse() else {
            return self.send(Update::MedicalFailed("clock".into()));
        };
        let Ok(id) = IdempotencyId::generate() else {
            return self.send(Update::MedicalFailed("no random numbers".into()));
        };
        if self.ledger().is_none() {
            return self.send(Update::MedicalFailed("no ledger".into()));
        }
        let (Some(active), Some(ledger)) = (self.active.as_mut(), self.ledger.as_mut()) else {
            return;
        };
        let challenge = medical::challenge(
            ledger.terminal(),
            &id,
            amount_fen,
            156,
            &txn_time,
            &active.identity.card.card_number,
        );
        let attested = medical::attest(
            &mut active.session,
            &self.config.trust,
            &active.identity,
            &challenge,
            medical::txn_month(&txn_time),
        );
        let attested = match attested {
            Ok(a) => a,
            Err(medical::AttestError::Send(SendError::Transport(
                TransportError::CardRemoved
                | TransportError::NoCard
                | TransportError::CardUnresponsive,
            ))) => {
                self.active = None;
                return self.send(Update::CardRemoved);
            }
            Err(e) => return self.send(Update::MedicalFailed(e.to_string())),
        };
        let recorded = ledger.record_medical_debit(&NewMedicalDebit {
            idempotency_id: id,
            amount_fen,
            currency: 156,
            txn_time,
            pan: attested.pan,
            medical: attested.medical,
        });
        match recorded {
            Ok(r) => {
                self.sync_status();
                self.send(Update::MedicalRecorded(Box::new(MedicalReceipt {
                    seq: r.entry.seq,
                    amount_fen,
                    available_after_fen: r.available_after_fen,
                })));
            }
            Err(e) => self.send(Update::MedicalFailed(e.to_string())),
        }
    }

    /// firmware-tests' conformance suite on the card in the reader, through a fresh channel:
    /// no GET PROCESSING OPTIONS, so the card counts no transaction; the trust stores of the
    /// terminal are its anchors.
    fn service_checks(&mut self) -> Vec<crate::service_view::CheckLine> {
        use firmware_tests::conformance::{self, Options};
        let channel = match self.source.open() {
            Ok(c) => c,
            Err(e) => {
                return vec![crate::service_view::CheckLine {
                    id: "reader".into(),
                    verdict: "fail".into(),
                    reason: format!("no card: {e}"),
                }];
            }
        };
        let mut session = CardSession::new(channel).with_trace(Box::new(self.trace.clone()));
        let mut anchors = self.config.pboc_ca.clone();
        for key in self.config.trust.keys() {
            anchors.add_sm2(key.clone());
        }
        let opts = Options {
            gpo: false,
            ..Options::new((self.config.clock)().ssse_date()).with_trust(anchors)
        };
        conformance::run(&mut session, &opts)
            .checks
            .into_iter()
            .map(|c| crate::service_view::CheckLine {
                id: c.id.to_string(),
                verdict: match c.verdict {
                    conformance::Verdict::Pass => "pass",
                    conformance::Verdict::Warn => "warn",
                    conformance::Verdict::Fail => "fail",
                    conformance::Verdict::Skipped => "skip",
                }
                .to_string(),
                reason: c.reason,
            })
            .collect()
    }

    /// Today's entries and the open shift's totals from the ledger.
    fn day_book(&mut self) {
        let now = (self.config.clock)();
        let today = format!("{:04}{:02}{:02}", now.year, now.month, now.day);
        let Some(ledger) = self.ledger() else {
            return self.send(Update::Error("no ledger".into()));
        };
        let book = (|| -> Result<DayBook, LedgerError> {
            let shift = ledger.current_batch()?;
            let (approved, _) = ledger.batch_totals(shift)?;
            let (recovered, _) = ledger.batch_recovered(shift)?;
            let (medical, _) = ledger.batch_medical(shift)?;
            let mut book = DayBook {
                shift,
                approved: (approved.debit_count, approved.debit_amount),
                recovered: (recovered.count, recovered.amount),
                medical: (medical.count, medical.amount),
                previous: closed_shift(ledger, shift)?,
                ..DayBook::default()
            };
            for e in ledger.entries()? {
                if !e.state.is_final() {
                    book.in_doubt += 1;
                }
                let t = e.txn_time.as_str();
                if !t.starts_with(&today) {
                    continue;
                }
                book.lines.push(DayLine {
                    seq: e.seq,
                    time: format!(
                        "{}:{}:{}",
                        t.get(8..10).unwrap_or_default(),
                        t.get(10..12).unwrap_or_default(),
                        t.get(12..14).unwrap_or_default()
                    ),
                    state: e.state.as_str(),
                    amount_fen: e.amount_fen,
                    pan_masked: e.pan_masked,
                });
            }
            Ok(book)
        })();
        match book {
            Ok(b) => self.send(Update::DayBook(Box::new(b))),
            Err(e) => self.send(Update::Error(e.to_string())),
        }
    }

    /// The signed-in card, or tell the UI there is none.
    fn signed_in(&mut self) -> bool {
        if self.active.as_ref().is_some_and(|a| a.signed_in) {
            true
        } else {
            self.send(Update::Error("no card".into()));
            false
        }
    }

    fn card_removed(&mut self) {
        self.active = None;
        self.send(Update::CardRemoved);
    }

    fn show_account(&mut self) {
        if !self.signed_in() {
            return;
        }
        let Some(active) = self.active.as_mut() else {
            return;
        };
        match payment::read_account(&mut active.session, &self.config.terminal) {
            Ok(account) => self.send(Update::Account(account)),
            Err(PaymentFailure::CardRemoved) => self.card_removed(),
            Err(e) => self.send(Update::AccountFailed(e)),
        }
    }

    fn pay(&mut self, order: &PaymentOrder) {
        if !self.signed_in() {
            return;
        }
        crate::failpoint::step("pay.requested");
        self.send(Update::Paying);
        if self.ledger().is_none() {
            return self.send(Update::PaymentFailed(PaymentFailure::LedgerUnavailable(
                "the ledger cannot be opened".into(),
            )));
        }
        let mut un = [0u8; 4];
        if getrandom::fill(&mut un).is_err() {
            return self.send(Update::PaymentFailed(PaymentFailure::Error(
                "no random source".into(),
            )));
        }
        let now = (self.config.clock)();
        let (Some(active), Some(ledger)) = (self.active.as_mut(), self.ledger.as_mut()) else {
            return;
        };
        let card_ref = hex::encode(&active.identity.card.card_id);
        let mut pad = UiPinPad {
            requests: &self.requests,
            updates: &self.updates,
            repaint: self.repaint.as_ref(),
            timeout: Duration::from_secs(60),
        };
        let result = payment::pay(
            &mut active.session,
            &mut LedgerBook(ledger),
            PayContext {
                terminal: &self.config.terminal,
                ca: &self.config.pboc_ca,
                now,
                unpredictable_number: un,
                card_ref: &card_ref,
                pin_pad: &mut pad,
            },
            order,
        );
        match result {
            Ok(receipt) => {
                let file = self.write_receipt(&receipt, order.english);
                crate::failpoint::step("pay.receipt-written");
                self.sync_status();
                self.send(Update::Paid {
                    receipt: Box::new(receipt),
                    file,
                });
                crate::failpoint::step("pay.reported");
            }
            Err(PaymentFailure::CardRemoved) => self.card_removed(),
            Err(e @ PaymentFailure::InDoubt { .. }) => {
                self.active = None;
                self.send(Update::PaymentFailed(e));
                self.send(Update::CardRemoved);
            }
            Err(e) => self.send(Update::PaymentFailed(e)),
        }
    }

    /// Write the receipt for the printer; a failure is reported on the screen, the payment
    /// stands.
    fn write_receipt(&self, receipt: &PaymentReceipt, english: bool) -> Option<PathBuf> {
        let dir = self.config.receipts.as_ref()?;
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join(format!("receipt-{:08}.pdf", receipt.seq));
        let terminal_id = self
            .ledger
            .as_ref()
            .map(|l| l.terminal().to_string())
            .unwrap_or_default();
        let merchant = payment::merchant_text(&self.config.terminal);
        let printed = payment::receipt_of(receipt, english, &merchant, &terminal_id);
        if let Err(e) = crate::receipt::write_pdf(&printed, &path) {
            eprintln!("kiosk: receipt file not written: {e}");
            return None;
        }
        Some(path)
    }

    /// Settle the payments this card left in doubt (card pulled after the debit command).
    fn settle_pending(&mut self) {
        if self.ledger().is_none() {
            return;
        }
        let (Some(active), Some(ledger)) = (self.active.as_mut(), self.ledger.as_mut()) else {
            return;
        };
        let card_ref = hex::encode(&active.identity.card.card_id);
        let settled = payment::recover(
            &mut active.session,
            &mut LedgerBook(ledger),
            &self.config.terminal,
            &card_ref,
        );
        // Back to the social-security application for the PIN.
        let _ = ssse::select(&mut active.session);
        match settled {
            Ok(list) if !list.is_empty() => self.send(Update::Settled(list)),
            Ok(_) => {}
            // The entry stays unknown; the next insert tries again.
            Err(_) => {}
        }
    }

    /// The PAN the session's card carries (for the hot list), if the card has one.
    pub fn pan(&self) -> Option<&str> {
        self.active.as_ref().and_then(|a| a.pan.as_deref())
    }
}

/// The shift before `shift`, if one was closed, with the server's answer to it.
fn closed_shift(ledger: &Ledger, shift: u32) -> Result<Option<ClosedShift>, LedgerError> {
    let Some(previous) = shift.checked_sub(1).filter(|p| *p > 0) else {
        return Ok(None);
    };
    let Some(info) = ledger.batch(previous)? else {
        return Ok(None);
    };
    let (approved, _) = ledger.batch_totals(previous)?;
    let reconciliation = match &info.result {
        None => Reconciliation::Waiting,
        Some(r) if r.balanced => Reconciliation::Balanced,
        Some(r) => Reconciliation::Unbalanced {
            server: (r.server.debit_count, r.server.debit_amount),
        },
    };
    Ok(Some(ClosedShift {
        shift: previous,
        approved: (approved.debit_count, approved.debit_amount),
        reconciliation,
    }))
}
