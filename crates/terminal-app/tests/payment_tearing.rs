//! Tearing of the kiosk's electronic-cash payment, card + ledger + server (docs/reliability.md
//! "Tearing: payment, card + ledger + server").
//!
//! One real backend for the file: `hsm-sim`, `central-server` and a registered terminal, started
//! as child processes by the demo's own code ([`terminal_app::demo::backend::Backend`]), the
//! demo cards personalised through that hsm-sim so that the server verifies their TCs with the
//! issuer master key inside it. The backend's scheduled `sync-agent` child is stopped at once:
//! the test syncs in-process with the same agent library ([`Agent::sync_once`]) after each case,
//! over loopback HTTP, so that each case's upload is done when its assertions run.
//!
//! The card is the demo's `zhangsan`, moved onto tear-capable storage
//! ([`MemoryStorage::tear_at`]) and reached through a [`Reader`] the citizen can pull it from.
//! The payment is [`payment::pay`] with a real ledger file through [`LedgerBook`] and the
//! card's offline PIN, as the kiosk runs it. One clean payment counts the card's commits and
//! the APDUs; then, on the same card and ledger, one payment per point:
//!
//! - each commit inside the card torn (power lost before it reached memory);
//! - each APDU boundary: the card pulled after `k` complete exchanges (command `k + 1` fails as
//!   a removed card, `k = 0 ..= N`);
//! - each APDU's answer lost: command `k` reaches the card, the card is pulled before its
//!   answer (the terminal sees a removed card at `k`).
//!
//! After each: power-cycle (the next insert), [`payment::recover`] as the session does at an
//! insert, a sync to the server; then card, ledger and server must agree: the card's balance fell
//! by the amount of the ledger's done payment (0 or 1), which the server booked once, with the
//! same amount and ATC; nothing left pending; the ledger's `PRAGMA integrity_check` is ok. A
//! payment left in doubt is also pulled at every point of its recovery before one runs to its
//! end.
//!
//! The electronic-cash load is booked nowhere above the card; the second test tears and pulls
//! it at card + kernel level (the section before it says how).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::kiosk_bin::backend_bins;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_sync::agent::backoff::RetryPolicy;
use backend_sync::agent::{Agent, AgentConfig, read_key_file};
use backend_sync::entry::{EntryKind, EntryState};
use backend_sync::field_crypto::FieldKey;
use backend_sync::ledger::LedgerEntry;
use card_core::pboc::TerminalConfig;
use card_core::secret::Pin;
use card_core::ssse::{self, ReadStrategy};
use card_core::{CardChannel, CardSession, TransportError};
use firmware_tests::SoftCard;
use firmware_tests::image::CardImage;
use firmware_tests::storage::{MemoryStorage, Storage, StorageError};
use terminal_app::clock::{CST_OFFSET_SECS, LocalTime};
use terminal_app::demo::TERMINAL;
use terminal_app::demo::backend::{Backend, BackendConfig};
use terminal_app::payment::{
    self, FixedPinPad, LedgerBook, PayContext, PaymentFailure, PaymentOrder, Settled,
};

/// The fee paid: "other fee", an amount the citizen types.
const ITEM_OTHER: usize = 3;
const AMOUNT_FEN: u64 = 500;
const PIN: &str = "123456";

/// The card's non-volatile memory, kept by the test so that it can tear a commit.
#[derive(Clone, Default)]
struct Nvm(Arc<Mutex<MemoryStorage>>);

impl Storage for Nvm {
    fn load(&mut self) -> Result<Option<CardImage>, StorageError> {
        self.0.lock().unwrap().load()
    }
    fn commit(&mut self, image: &CardImage) -> Result<(), StorageError> {
        self.0.lock().unwrap().commit(image)
    }
}

/// Where the citizen pulls the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pull {
    /// After `n` complete exchanges: command `n + 1` never reaches the card.
    After(usize),
    /// Command `n` reaches the card; its answer does not reach the terminal.
    AnswerLost(usize),
}

/// One way of cutting a flow short: a commit of the card torn, or the card pulled.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Commit `k` (1-based) of the flow torn: the card loses power before it is written.
    Commit(u64),
    /// The card pulled.
    Pulled(Pull),
}

impl Cut {
    /// Every cut of a flow that makes `commits` commits and sends `apdus` APDUs: each commit
    /// torn, the card pulled after 0..=`apdus` exchanges, each APDU's answer lost.
    fn all(commits: u64, apdus: usize) -> Vec<Self> {
        (1..=commits)
            .map(Self::Commit)
            .chain((0..=apdus).map(|k| Self::Pulled(Pull::After(k))))
            .chain((1..=apdus).map(|k| Self::Pulled(Pull::AnswerLost(k))))
            .collect()
    }

    /// The family the outcome is counted under.
    fn family(self) -> &'static str {
        match self {
            Self::Commit(_) => "commit torn",
            Self::Pulled(Pull::After(_)) => "pulled after APDU k",
            Self::Pulled(Pull::AnswerLost(_)) => "answer of APDU k lost",
        }
    }

    /// This cut in words, prefixed with what was cut.
    fn describe(self, flow: &str) -> String {
        match self {
            Self::Commit(k) => format!("{flow}commit {k} torn"),
            Self::Pulled(Pull::After(k)) => format!("{flow}pulled after APDU {k}"),
            Self::Pulled(Pull::AnswerLost(k)) => format!("{flow}answer of APDU {k} lost"),
        }
    }

    fn tear(self) -> Option<u64> {
        match self {
            Self::Commit(k) => Some(k),
            Self::Pulled(_) => None,
        }
    }

    fn pull(self) -> Option<Pull> {
        match self {
            Self::Commit(_) => None,
            Self::Pulled(p) => Some(p),
        }
    }
}

/// Outcomes counted by the family of the cut that led to them.
struct Tally<C> {
    classes: BTreeMap<(&'static str, C), u32>,
}

impl<C: Ord + Copy + std::fmt::Debug> Tally<C> {
    fn new() -> Self {
        Self {
            classes: BTreeMap::new(),
        }
    }

    fn note(&mut self, family: &'static str, c: C) -> C {
        *self.classes.entry((family, c)).or_default() += 1;
        c
    }

    /// Cases that ended as `c`, whatever the cut.
    fn count(&self, c: C) -> u32 {
        self.classes
            .iter()
            .filter(|((_, k), _)| *k == c)
            .map(|(_, n)| n)
            .sum()
    }

    /// All cases counted.
    fn points(&self) -> u32 {
        self.classes.values().sum()
    }

    fn print(&self) {
        for ((family, class), n) in &self.classes {
            eprintln!("  {family:<24} {class:?}: {n}");
        }
    }
}

/// A contact reader holding the card; pulled, it fails every later command as a removed card.
struct Reader<'c> {
    card: &'c mut SoftCard,
    /// Commands that reached the card.
    sent: usize,
    /// Their CLA and INS.
    trace: Vec<[u8; 2]>,
    pull: Option<Pull>,
    pulled: bool,
}

impl<'c> Reader<'c> {
    fn new(card: &'c mut SoftCard, pull: Option<Pull>) -> Self {
        Self {
            card,
            sent: 0,
            trace: Vec::new(),
            pull,
            pulled: false,
        }
    }
}

impl CardChannel for Reader<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.pulled || self.pull == Some(Pull::After(self.sent)) {
            self.pulled = true;
            return Err(TransportError::CardRemoved);
        }
        let answer = self.card.process(command);
        self.sent += 1;
        self.trace.push([
            command.first().copied().unwrap_or(0),
            command.get(1).copied().unwrap_or(0),
        ]);
        if self.pull == Some(Pull::AnswerLost(self.sent)) {
            self.pulled = true;
            return Err(TransportError::CardRemoved);
        }
        Ok(answer)
    }
}

/// What the card holds now (its committed state after a power cycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CardState {
    balance: u64,
    atc: u16,
}

fn card_state(card: &SoftCard) -> CardState {
    let p = card.image().pboc.as_ref().unwrap();
    CardState {
        balance: p.ec.as_ref().unwrap().balance,
        atc: p.atc,
    }
}

/// Power off and on: the next insert. RAM is reloaded from what was committed.
fn reinsert(card: &mut SoftCard) {
    card.power_off();
    card.power_on();
}

/// One row of the server's `entries` for this terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Booked {
    kind: String,
    state: String,
    amount_fen: u64,
    atc: Option<u16>,
    status: String,
}

impl Booked {
    /// Money moved from the card, and the server booked it.
    fn is_debit(&self) -> bool {
        matches!(self.state.as_str(), "approved_offline" | "recovered")
            && matches!(self.status.as_str(), "booked" | "booked_unverified")
    }
}

/// The server's bookings of the terminal, by sequence number, read from its SQLite database.
fn server_entries(db: &Path) -> BTreeMap<u64, Booked> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT seq, kind, state, amount_fen, atc, status FROM entries
             WHERE terminal_id = ?1 ORDER BY seq",
        )
        .unwrap();
    stmt.query_map([TERMINAL], |r| {
        Ok((
            u64::try_from(r.get::<_, i64>(0)?).unwrap(),
            Booked {
                kind: r.get(1)?,
                state: r.get(2)?,
                amount_fen: u64::try_from(r.get::<_, i64>(3)?).unwrap(),
                atc: r
                    .get::<_, Option<i64>>(4)?
                    .map(|a| u16::try_from(a).unwrap()),
                status: r.get(5)?,
            },
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The ATC of a done payment as the ledger has it: the TC's, or the recovered log record's.
fn ledger_atc(e: &LedgerEntry) -> Option<u16> {
    match e.state {
        EntryState::ApprovedOffline => e.card.as_ref().map(|c| c.atc),
        EntryState::Recovered => e.recovered.as_ref().map(|r| r.atc),
        _ => None,
    }
}

/// How a case ended, once settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Debited once: approved with its TC at once.
    DoneApproved,
    /// Debited once: the answer was lost, recovered from the card's log at the next insert.
    DoneRecovered,
    /// Not debited; an intent was written and voided (at once or at the next insert).
    NotDoneVoided,
    /// Not debited; the card was gone (or failed) before the ledger's intent was written.
    NotDoneNoEntry,
    /// Recovery could not tell: the entry stays `unknown` for an operator.
    Unclear,
}

/// Everything a case needs.
struct World {
    card: SoftCard,
    nvm: Nvm,
    agent: Agent,
    rt: tokio::runtime::Runtime,
    terminal: TerminalConfig,
    ca: card_core::pboc::oda::CaStore,
    card_ref: String,
    server_db: PathBuf,
    /// The next case's clock.
    clock: i64,
    cases: u32,
}

/// What one case did.
#[derive(Debug)]
struct Case {
    class: Class,
    /// Commits the payment made on the card (torn one included).
    commits: u64,
    /// Commands that reached the card during the payment.
    apdus: usize,
    /// Their CLA and INS.
    trace: Vec<[u8; 2]>,
    /// Recoveries cut short by a pull before one ran to its end.
    recovery_pulls: u32,
    /// Of those, the ones that noted the entry unclear (still pending).
    unclear_by_pull: u32,
}

impl World {
    fn now(&mut self) -> LocalTime {
        self.clock += 30;
        LocalTime::from_unix(self.clock, CST_OFFSET_SECS).unwrap()
    }

    /// One payment with `tear` (commit number, 1-based) or `pull`, then the next insert, the
    /// recovery and a sync; checks that card, ledger and server agree.
    fn case(&mut self, what: &str, tear: Option<u64>, pull: Option<Pull>) -> Case {
        self.cases += 1;
        let before = card_state(&self.card);
        let last_seq = self
            .agent
            .ledger()
            .entries()
            .unwrap()
            .last()
            .map_or(0, |e| e.seq);
        if let Some(k) = tear {
            self.nvm.0.lock().unwrap().tear_at(k);
        }
        let commits_before = self.card.commits();
        let now = self.now();
        let un = self.cases.to_be_bytes();
        let order = PaymentOrder {
            item: ITEM_OTHER,
            amount_fen: AMOUNT_FEN,
            english: false,
        };
        let (result, apdus, trace) = {
            let mut s = CardSession::new(Reader::new(&mut self.card, pull));
            let mut pad = FixedPinPad(Some(Pin::new(PIN).unwrap()));
            let result = payment::pay(
                &mut s,
                &mut LedgerBook(self.agent.ledger()),
                PayContext {
                    terminal: &self.terminal,
                    ca: &self.ca,
                    now,
                    unpredictable_number: un,
                    card_ref: &self.card_ref,
                    pin_pad: &mut pad,
                },
                &order,
            );
            let reader = s.into_channel();
            (result, reader.sent, reader.trace)
        };
        let commits = self.card.commits() - commits_before;
        if let Some(k) = tear {
            assert!(commits >= k, "{what}: the torn commit was reached");
        }

        // The next insert: power, then what the session does first with a pending payment.
        // A payment left in doubt is also pulled during its recovery, at every APDU boundary
        // and with every answer lost, until a recovery runs to its end: each cut-short one
        // leaves the entry pending and the card as it was, and the next insert tries again.
        let pending: Vec<u64> = self
            .agent
            .ledger()
            .pending_recovery(&self.card_ref)
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect();
        assert!(pending.len() <= 1, "{what}: {pending:?}");
        reinsert(&mut self.card);
        let in_doubt = card_state(&self.card);
        let mut recovery_pulls = 0;
        let mut unclear_by_pull = 0;
        let mut next_pull = (!pending.is_empty()).then_some(Pull::After(0));
        let settled = loop {
            let (result, pulled) = {
                let mut s = CardSession::new(Reader::new(&mut self.card, next_pull));
                let result = payment::recover(
                    &mut s,
                    &mut LedgerBook(self.agent.ledger()),
                    &self.terminal,
                    &self.card_ref,
                );
                (result, s.into_channel().pulled)
            };
            let Some(pull) = next_pull.filter(|_| pulled) else {
                // The recovery ran to its end.
                break result.unwrap_or_else(|e| panic!("{what}: recovery failed: {e:?}"));
            };
            match result {
                Err(PaymentFailure::CardRemoved) => recovery_pulls += 1,
                // A pull is never taken for a card without a log (as it was at the GET DATA of
                // the log format, 9F4F, before card-core's `check_debit` let the transport
                // error through): counted to be asserted zero.
                Ok(list) if matches!(list.as_slice(), [Settled::Unclear { .. }]) => {
                    recovery_pulls += 1;
                    unclear_by_pull += 1;
                }
                other => panic!("{what}: recovery pulled {pull:?}: {other:?}"),
            }
            let still: Vec<u64> = self
                .agent
                .ledger()
                .pending_recovery(&self.card_ref)
                .unwrap()
                .iter()
                .map(|p| p.seq)
                .collect();
            assert_eq!(still, pending, "{what}: recovery {pull:?}: still pending");
            reinsert(&mut self.card);
            assert_eq!(
                card_state(&self.card),
                in_doubt,
                "{what}: recovery reads only"
            );
            next_pull = Some(match pull {
                Pull::After(j) => Pull::AnswerLost(j + 1),
                Pull::AnswerLost(j) => Pull::After(j),
            });
        };
        // And what the citizen sees of the purse, read from the card (balance and log).
        let account = {
            let mut s = CardSession::new(Reader::new(&mut self.card, None));
            payment::read_account(&mut s, &self.terminal).unwrap()
        };
        let after = card_state(&self.card);
        assert_eq!(account.balance_fen, after.balance, "{what}");

        // Sync to the central server.
        let report = self
            .rt
            .block_on(self.agent.sync_once(&mut |_| {}))
            .unwrap_or_else(|e| panic!("{what}: sync: {e}"));
        assert!(report.rejected.is_empty(), "{what}: {:?}", report.rejected);

        let ledger = self.agent.ledger();
        assert!(ledger.integrity_ok().unwrap(), "{what}: ledger integrity");
        let new: Vec<LedgerEntry> = ledger
            .entries()
            .unwrap()
            .into_iter()
            .filter(|e| e.seq > last_seq)
            .collect();
        assert!(new.len() <= 1, "{what}: one payment, one entry: {new:?}");
        assert!(
            new.iter().all(|e| e.kind == EntryKind::EcPurchase
                && e.amount_fen == AMOUNT_FEN
                && !e.pan_masked.contains("6230580000000000013")),
            "{what}: {new:?}"
        );
        let summary = ledger.sync_summary().unwrap();
        let server: Vec<(u64, Booked)> = server_entries(&self.server_db)
            .into_iter()
            .filter(|(seq, _)| *seq > last_seq)
            .collect();

        // Card: debited once or not at all, the ATC never back.
        let debited = before.balance - after.balance;
        assert!(
            debited == 0 || debited == AMOUNT_FEN,
            "{what}: the card's balance fell by {debited}"
        );
        assert!(after.atc >= before.atc, "{what}: ATC went back");
        // Ledger: the done payments.
        let done: Vec<&LedgerEntry> = new.iter().filter(|e| e.state.moved_money()).collect();
        let ledger_sum: u64 = done.iter().map(|e| e.amount_fen).sum();
        // Server: the debits booked.
        let booked: Vec<&(u64, Booked)> = server.iter().filter(|(_, b)| b.is_debit()).collect();
        let server_sum: u64 = booked.iter().map(|(_, b)| b.amount_fen).sum();
        let unclear = new
            .iter()
            .any(|e| e.state == EntryState::Unknown && e.note.is_some());
        if !unclear {
            assert_eq!(debited, ledger_sum, "{what}: card and ledger ({new:?})");
            assert_eq!(ledger_sum, server_sum, "{what}: ledger and server");
            assert_eq!(summary.pending, 0, "{what}: everything uploaded");
            // Nothing pending: every entry is final and on the server, once.
            for e in &new {
                assert!(e.state.is_final(), "{what}: {:?} left pending", e.state);
                let on_server: Vec<_> = server.iter().filter(|(s, _)| *s == e.seq).collect();
                assert_eq!(on_server.len(), 1, "{what}: uploaded once");
                let b = &on_server[0].1;
                assert_eq!(b.state, e.state.as_str(), "{what}");
                assert_eq!(b.kind, "ec_purchase", "{what}");
                assert_eq!(b.amount_fen, e.amount_fen, "{what}");
                assert!(
                    matches!(b.status.as_str(), "booked" | "booked_unverified"),
                    "{what}: server {b:?}"
                );
            }
        }
        if let (Some(e), Some((_, b))) = (done.first(), booked.first()) {
            let atc = ledger_atc(e).expect("a done payment has its ATC");
            assert_eq!(b.atc, Some(atc), "{what}: the server's ATC is the ledger's");
            assert_eq!(atc, after.atc, "{what}: the debit's ATC is the card's");
            let newest = account.log.first().expect("the debit's log record");
            assert_eq!(newest.atc, Some(atc), "{what}: card log ATC");
            assert_eq!(newest.amount_fen, AMOUNT_FEN, "{what}: card log amount");
            assert_eq!(b.amount_fen, AMOUNT_FEN, "{what}");
            // A TC reached the terminal only when approved; it was verified through the HSM.
            if e.state == EntryState::ApprovedOffline {
                assert_eq!(b.status, "booked", "{what}: TC verified by the server");
            } else {
                assert_eq!(b.status, "booked_unverified", "{what}: recovered, no TC");
            }
        }

        let settled_kinds: Vec<_> = settled
            .iter()
            .map(|s| match s {
                Settled::Completed { .. } => Class::DoneRecovered,
                Settled::NotDone { .. } => Class::NotDoneVoided,
                Settled::Unclear { .. } => Class::Unclear,
            })
            .collect();
        let class = match (new.first().map(|e| e.state), &result) {
            (None, r) => {
                assert!(r.is_err(), "{what}: paid without an entry");
                assert_eq!(debited, 0, "{what}");
                Class::NotDoneNoEntry
            }
            (Some(EntryState::ApprovedOffline), r) => {
                let receipt = r.as_ref().expect("approved: the receipt");
                assert_eq!(receipt.atc, after.atc, "{what}: receipt ATC");
                assert!(settled_kinds.is_empty(), "{what}: nothing to settle");
                Class::DoneApproved
            }
            (Some(EntryState::Recovered), r) => {
                assert!(
                    matches!(
                        r,
                        Err(PaymentFailure::InDoubt { .. } | PaymentFailure::CardRemoved)
                    ),
                    "{what}: {r:?}"
                );
                assert_eq!(settled_kinds, [Class::DoneRecovered], "{what}");
                Class::DoneRecovered
            }
            (Some(EntryState::Voided | EntryState::Declined), _) => {
                assert_eq!(debited, 0, "{what}");
                Class::NotDoneVoided
            }
            (Some(EntryState::Unknown), _) if unclear => {
                // Left for an operator: not uploaded, not booked, kept `unknown` with the
                // finding; the next insert looks again.
                assert_eq!(settled_kinds, [Class::Unclear], "{what}");
                assert!(server.is_empty(), "{what}: an unclear entry is not sent");
                Class::Unclear
            }
            (Some(s), r) => panic!("{what}: entry left {s:?} ({r:?}, settled {settled:?})"),
        };
        Case {
            class,
            commits,
            apdus,
            trace,
            recovery_pulls,
            unclear_by_pull,
        }
    }
}

/// A command's name, for the printed sequence.
fn name(cla_ins: [u8; 2]) -> &'static str {
    match cla_ins {
        [0x00, 0xa4] => "SELECT",
        [0x80, 0xa8] => "GPO",
        [0x00, 0xb2] => "READ RECORD",
        [0x80, 0xca] => "GET DATA",
        [0x00, 0x20] => "VERIFY",
        [0x00, 0x84] => "GET CHALLENGE",
        [0x80, 0xae] => "GENERATE AC",
        [0x00, 0x82] => "EXTERNAL AUTHENTICATE",
        [0x04, 0xda] => "PUT DATA",
        [0x00, 0xc0] => "GET RESPONSE",
        _ => "other",
    }
}

fn start_world(dir: &Path) -> (Backend, World) {
    let (mut backend, demo) = Backend::start(&BackendConfig {
        state_dir: dir.to_path_buf(),
        bin_dir: backend_bins(),
    })
    .unwrap();
    // Stop the scheduled agent (a child this test started): the test syncs by itself.
    stop_scheduled_agent(&mut backend);

    let zhangsan = demo.cards.iter().find(|c| c.name == "zhangsan").unwrap();
    let image = firmware_tests::vpcd::lock(&zhangsan.card).image().clone();
    let nvm = Nvm::default();
    let mut card = SoftCard::open(image, Box::new(nvm.clone())).unwrap();
    let card_ref = {
        let mut s = CardSession::new(Reader::new(&mut card, None));
        let identity = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
        hex::encode(&identity.card.card_id)
    };
    let agent = Agent::open(
        AgentConfig {
            server: backend.server_url().to_string(),
            ledger: demo.ledger_path.clone(),
            terminal: TERMINAL.parse().unwrap(),
            ca_pem: None,
            batch_size: 50,
            max_age: Duration::from_secs(30 * 86_400),
            retry: RetryPolicy {
                base: Duration::from_millis(100),
                max: Duration::from_secs(2),
                max_attempts: 10,
            },
            timeout: Duration::from_secs(60),
        },
        read_key_file(&backend.dir().join("terminal.key")).unwrap(),
        FieldKey::from_hex(demo.field_key_hex()).unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let unix = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let server_db = backend.dir().join("central.db");
    let world = World {
        card,
        nvm,
        agent,
        rt,
        terminal: TerminalConfig::kiosk(),
        ca: demo.pboc_ca.clone(),
        card_ref,
        server_db,
        // Two hours back, 30 s a case: every case has its own date and time.
        clock: unix - 7_200,
        cases: 0,
    };
    (backend, world)
}

fn stop_scheduled_agent(backend: &mut Backend) {
    let pid = backend
        .children()
        .into_iter()
        .find(|(name, _, _)| *name == "sync-agent")
        .map(|(_, pid, _)| pid)
        .expect("the backend's sync-agent");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Gone (or a zombie the backend reaps when dropped) before the test writes the ledger.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if matches!(state, None | Some('Z' | 'X')) {
            return;
        }
        assert!(Instant::now() < deadline, "sync-agent {pid} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn payment_torn_at_every_commit_and_pulled_at_every_apdu_card_ledger_and_server_agree() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (backend, mut w) = start_world(dir.path());
    let set_up = started.elapsed();
    let initial = card_state(&w.card);

    // The clean payment: counts.
    let clean = w.case("clean", None, None);
    assert_eq!(clean.class, Class::DoneApproved);
    let (commits, apdus) = (clean.commits, clean.apdus);
    assert!(commits >= 3, "GPO, VERIFY, GENERATE AC commit: {commits}");
    assert!(apdus >= 8, "{apdus} APDUs");

    let mut tally = Tally::new();
    // Payments left in doubt, and the recoveries of theirs cut short by a pull.
    let mut recovery = (0u32, 0u32, 0u32);
    let mut run = |w: &mut World, family: &'static str, what: String, tear, pull| {
        let c = w.case(&what, tear, pull);
        // The same card flow each time, whatever the balance and the log hold.
        if tear.is_none() && pull.is_none() {
            assert_eq!((c.commits, c.apdus), (commits, apdus), "{what}");
        }
        if c.recovery_pulls > 0 {
            recovery.0 += 1;
            recovery.1 += c.recovery_pulls;
            recovery.2 += c.unclear_by_pull;
        }
        tally.note(family, c.class)
    };
    // The debit is the GENERATE AC: before it reaches the card nothing is debited; once it
    // has, the debit happened, whatever the terminal saw of the answer.
    let gen_ac: Vec<usize> = clean
        .trace
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == &[0x80, 0xae])
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(gen_ac.len(), 1, "one GENERATE AC in an offline purchase");
    let g = gen_ac[0];
    let done = |c: Class| matches!(c, Class::DoneApproved | Class::DoneRecovered);
    for cut in Cut::all(commits, apdus) {
        let c = run(
            &mut w,
            cut.family(),
            cut.describe(""),
            cut.tear(),
            cut.pull(),
        );
        match cut {
            // The debit's own commit (balance, log): the card answers 6581, the terminal
            // holds the intent in doubt, the next insert voids it.
            Cut::Commit(k) if k == commits => assert_eq!(c, Class::NotDoneVoided, "commit {k}"),
            // GPO (ATC) and VERIFY (PIN counter down, back up): before the intent.
            Cut::Commit(k) => assert_eq!(c, Class::NotDoneNoEntry, "commit {k}"),
            Cut::Pulled(Pull::After(k)) => match k + 1 {
                // The intent is written just before the GENERATE AC; the card never got it.
                n if n == g => assert_eq!(c, Class::NotDoneVoided, "after {k}"),
                n if n < g => assert_eq!(c, Class::NotDoneNoEntry, "after {k}"),
                _ => assert!(done(c), "after {k}: {c:?}"),
            },
            Cut::Pulled(Pull::AnswerLost(k)) => match k {
                n if n == g => assert_eq!(c, Class::DoneRecovered, "answer {k} lost"),
                n if n < g => assert_eq!(c, Class::NotDoneNoEntry, "answer {k} lost"),
                _ => assert!(done(c), "answer {k} lost: {c:?}"),
            },
        }
    }
    // And a clean payment still goes through at the end.
    run(&mut w, "clean again", "clean again".into(), None, None);

    // The whole run: the card's fall is the ledger's done payments and the server's debits.
    let end = card_state(&w.card);
    let ledger = w.agent.ledger();
    let entries = ledger.entries().unwrap();
    let ledger_done: u64 = entries
        .iter()
        .filter(|e| e.state.moved_money())
        .map(|e| e.amount_fen)
        .sum();
    let server = server_entries(&w.server_db);
    let server_done: u64 = server
        .values()
        .filter(|b| b.is_debit())
        .map(|b| b.amount_fen)
        .sum();
    assert_eq!(
        initial.balance - end.balance,
        ledger_done,
        "whole run: card and ledger"
    );
    assert_eq!(ledger_done, server_done, "whole run: ledger and server");
    assert!(
        entries.iter().all(|e| e.state.is_final()),
        "nothing pending at the end"
    );
    // Each ATC booked once.
    let mut atcs: Vec<u16> = server
        .values()
        .filter(|b| b.is_debit())
        .filter_map(|b| b.atc)
        .collect();
    let n = atcs.len();
    atcs.sort_unstable();
    atcs.dedup();
    assert_eq!(atcs.len(), n, "an ATC booked twice");
    assert!(ledger.integrity_ok().unwrap());

    let total_points = tally.points();
    eprintln!(
        "payment APDUs: {} (GENERATE AC is APDU {g})",
        clean
            .trace
            .iter()
            .map(|c| name(*c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let count = |c: Class| tally.count(c);
    eprintln!(
        "payment tearing: {commits} commits and {apdus} APDUs in a payment; {total_points} \
         points ({} commits torn, {} boundaries, {} answers lost, 1 clean again), plus the \
         counting run",
        commits,
        apdus + 1,
        apdus
    );
    tally.print();
    eprintln!(
        "  {} payments left in doubt; their recoveries pulled at {} points (every APDU \
         boundary and lost answer of the recovery) before one ran to its end; {} of those \
         noted the entry unclear (left pending, settled at the next insert)",
        recovery.0, recovery.1, recovery.2
    );
    let done = count(Class::DoneApproved) + count(Class::DoneRecovered);
    let not_done = count(Class::NotDoneVoided) + count(Class::NotDoneNoEntry);
    eprintln!(
        "  outcomes: done {done} (approved {}, recovered {}), not done {not_done} (voided {}, \
         no entry {}), unclear {}; card debited {} fen in all = ledger {} = server {}; \
         {} entries, {} on the server",
        count(Class::DoneApproved),
        count(Class::DoneRecovered),
        count(Class::NotDoneVoided),
        count(Class::NotDoneNoEntry),
        count(Class::Unclear),
        initial.balance - end.balance,
        ledger_done,
        server_done,
        entries.len(),
        server.len()
    );
    eprintln!(
        "  set-up {:.1} s, cases {:.1} s",
        set_up.as_secs_f64(),
        (started.elapsed() - set_up).as_secs_f64()
    );
    assert_eq!(
        total_points,
        u32::try_from(commits).unwrap() + 2 * u32::try_from(apdus).unwrap() + 2
    );
    assert!(done > 0 && not_done > 0, "both outcomes occur");
    assert!(
        count(Class::DoneRecovered) > 0,
        "a lost answer is recovered"
    );
    assert_eq!(
        count(Class::Unclear),
        0,
        "a recovery that ran to its end always settled it"
    );
    assert!(
        recovery.0 >= 3 && recovery.1 > recovery.0 * 10,
        "recoveries pulled: {recovery:?}"
    );
    // No pull during a recovery is taken for an unclear card state.
    assert_eq!(recovery.2, 0, "{recovery:?}");
    drop(w);
    drop(backend);
}

// ---------------------------------------------------------------------------------------------
// The electronic-cash load (圈存). It is no kiosk or counter flow, and no ledger or server books
// it (the ledger's entry kinds are payments, refunds and medical debits): above the card there
// is only card-core's kernel (`ec::load`) and an issuer that answers online. So the load is
// covered card + kernel: the same points (each commit torn, each APDU boundary, each answer
// lost), the issuer's ARPC and PUT DATA script made from the card's keys, and after each the
// card must be consistent and must itself tell, at the next insert, whether the load happened.

/// The issuer of the load: ARPC and the script that sets the new balance, MACed with the
/// card's keys (the fixture's, test material).
struct LoadIssuer {
    ac: card_core::crypto::kdf::CardKey,
    smi: card_core::crypto::kdf::CardKey,
    load_to: u64,
    /// The ATCs it authorised.
    authorised: Vec<u16>,
}

impl card_core::pboc::online::OnlineAuthoriser for LoadIssuer {
    fn authorise(
        &mut self,
        r: &card_core::pboc::online::OnlineRequest<'_>,
    ) -> Result<card_core::pboc::online::OnlineResponse, card_core::pboc::online::OnlineUnavailable>
    {
        use card_core::crypto::kdf;
        let arc = *b"00";
        let arpc = kdf::arpc(&kdf::derive_session_key(&self.ac, r.atc), &r.arqc, &arc);
        // PUT DATA 9F79 with the new balance, MACed over header, Lc, ATC, ARQC and data.
        let data = card_core::pboc::Amount::new(self.load_to).unwrap().to_bcd();
        let header = [0x04, 0xda, 0x9f, 0x79];
        let lc = u8::try_from(data.len() + 4).unwrap();
        let mut macced = header.to_vec();
        macced.push(lc);
        macced.extend(r.atc.to_be_bytes());
        macced.extend(r.arqc);
        macced.extend(data);
        let mac = kdf::secure_messaging_mac(
            &kdf::derive_session_key(&self.smi, r.atc),
            &macced,
            card_core::crypto::sm4::Sm4MacRule::Part17LeftBytes,
        );
        let mut cmd = header.to_vec();
        cmd.push(lc);
        cmd.extend(data);
        cmd.extend(mac);
        // 72 { 9F18 script id, 86 command }.
        let mut inner = vec![0x9f, 0x18, 0x04, 0x00, 0x00, 0x00, 0x01, 0x86];
        inner.push(u8::try_from(cmd.len()).unwrap());
        inner.extend(&cmd);
        let mut scripts = vec![0x72, u8::try_from(inner.len()).unwrap()];
        scripts.extend(inner);
        self.authorised.push(r.atc);
        Ok(card_core::pboc::online::OnlineResponse {
            arc,
            issuer_authentication_data: Some([&arpc[..], &arc[..]].concat()),
            issuer_scripts: scripts,
        })
    }
}

/// How a torn or pulled load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LoadClass {
    /// Loaded, and the terminal read the new balance.
    LoadedSeen,
    /// Loaded; the terminal lost the card before it could tell: the card's load log says so at
    /// the next insert.
    LoadedProvenAtNextInsert,
    /// Not loaded, though the issuer had answered with the script (an issuer must not book a
    /// load before the script result: a reversal case; no backend books loads here).
    NotLoadedAfterIssuer,
    /// Not loaded; the card was gone or failed before the online request.
    NotLoadedBeforeIssuer,
}

const LOAD_FEN: u64 = 1_000;

struct LoadRun {
    class: LoadClass,
    commits: u64,
    apdus: usize,
    trace: Vec<[u8; 2]>,
}

/// One load on a fresh `zhangsan` fixture card with `tear` or `pull`; then the next insert, the
/// card's own account of it, and a clean load to show the card still works.
fn load_case(what: &str, tear: Option<u64>, pull: Option<Pull>) -> LoadRun {
    use card_core::pboc::{Amount, Date, Hooks, Time, TransactionParams, ec};
    use firmware_tests::pboc::profile::TerminalCaKey;

    let profile = firmware_tests::Profile::embedded("zhangsan").unwrap();
    let section = profile.pboc.clone().unwrap();
    let [ac, smi, _] = section.card_keys().unwrap();
    let mut ca = card_core::pboc::oda::CaStore::new();
    match section.ca_key().unwrap() {
        TerminalCaKey::Sm2(k) => ca.add_sm2(k),
        TerminalCaKey::Rsa(k) => ca.add_rsa(k),
    }
    let nvm = Nvm::default();
    let mut card = SoftCard::open(profile.build().unwrap(), Box::new(nvm.clone())).unwrap();
    let before = card_state(&card);
    // The load needs an online-capable terminal (type 25).
    let mut terminal = TerminalConfig::kiosk();
    terminal.terminal_type = 0x25;
    let mut issuer = LoadIssuer {
        ac,
        smi,
        load_to: before.balance + LOAD_FEN,
        authorised: Vec::new(),
    };
    let params = |n: u8| {
        TransactionParams::purchase(
            Amount::new(LOAD_FEN).unwrap(),
            Date::new(2026, 11, 28).unwrap(),
            Time::new(10, 30, n).unwrap(),
            [0x1a, 0x2b, 0x3c, n],
        )
    };
    if let Some(k) = tear {
        nvm.0.lock().unwrap().tear_at(k);
    }
    let commits_before = card.commits();
    let (record, apdus, trace) = {
        let mut s = CardSession::new(Reader::new(&mut card, pull));
        let mut pad = FixedPinPad(Some(Pin::new(PIN).unwrap()));
        let mut journal = card_core::pboc::outcome::MemoryJournal::default();
        let record = ec::load(
            &mut s,
            &terminal,
            &ca,
            params(1),
            &mut Hooks {
                pin_pad: &mut pad,
                hot_list: &card_core::pboc::risk::NoHotList,
                online: &mut issuer,
                journal: &mut journal,
            },
        );
        let reader = s.into_channel();
        (record, reader.sent, reader.trace)
    };
    let commits = card.commits() - commits_before;
    if let Some(k) = tear {
        assert!(commits >= k, "{what}: the torn commit was reached");
    }

    // The next insert: what the card says.
    reinsert(&mut card);
    let after = card_state(&card);
    let (balance, loads) = {
        let mut s = CardSession::new(Reader::new(&mut card, None));
        let (app, balances) = ec::balance_inquiry(&mut s, &TerminalConfig::kiosk()).unwrap();
        let entry = app.fci.load_log_entry.expect("a load log");
        let loads = match ec::read_load_log(&mut s, entry) {
            Ok(l) => l,
            Err(e) => panic!("{what}: load log: {e}"),
        };
        (balances.balance.minor_units(), loads)
    };
    assert_eq!(balance, after.balance, "{what}");
    assert!(after.atc >= before.atc, "{what}: ATC went back");
    let loaded = match after.balance - before.balance {
        0 => false,
        LOAD_FEN => true,
        d => panic!("{what}: balance moved by {d}"),
    };
    if loaded {
        assert_eq!(loads.len(), 1, "{what}: a load has its load-log record");
        assert_eq!(loads[0].before.minor_units(), before.balance, "{what}");
        assert_eq!(loads[0].after.minor_units(), after.balance, "{what}");
        assert_eq!(
            issuer.authorised,
            [after.atc],
            "{what}: loaded under the ATC the issuer authorised"
        );
    } else {
        assert!(loads.is_empty(), "{what}: load-log record without the load");
    }
    // The terminal never reports a balance the card does not hold.
    if let Some(seen) = record.ec_balance_after {
        assert_eq!(
            seen.minor_units(),
            after.balance,
            "{what}: terminal's balance"
        );
    }
    let class = match (loaded, record.ec_balance_after) {
        (true, Some(_)) => LoadClass::LoadedSeen,
        (true, None) => LoadClass::LoadedProvenAtNextInsert,
        (false, _) if !issuer.authorised.is_empty() => LoadClass::NotLoadedAfterIssuer,
        (false, _) => LoadClass::NotLoadedBeforeIssuer,
    };

    // The card still works: a clean load goes through.
    issuer.load_to = after.balance + LOAD_FEN;
    let again = {
        let mut s = CardSession::new(Reader::new(&mut card, None));
        let mut pad = FixedPinPad(Some(Pin::new(PIN).unwrap()));
        let mut journal = card_core::pboc::outcome::MemoryJournal::default();
        ec::load(
            &mut s,
            &terminal,
            &ca,
            params(2),
            &mut Hooks {
                pin_pad: &mut pad,
                hot_list: &card_core::pboc::risk::NoHotList,
                online: &mut issuer,
                journal: &mut journal,
            },
        )
    };
    assert_eq!(
        again.ec_balance_after.map(Amount::minor_units),
        Some(after.balance + LOAD_FEN),
        "{what}: a load after it ({:?})",
        again.outcome
    );
    LoadRun {
        class,
        commits,
        apdus,
        trace,
    }
}

#[test]
fn ec_load_torn_at_every_commit_and_pulled_at_every_apdu_the_card_stays_consistent_and_tells() {
    let clean = load_case("clean load", None, None);
    assert_eq!(clean.class, LoadClass::LoadedSeen);
    let (commits, apdus) = (clean.commits, clean.apdus);
    assert!(commits >= 4, "GPO, two GENERATE AC, PUT DATA: {commits}");
    let put_data: Vec<usize> = clean
        .trace
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == &[0x04, 0xda])
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(put_data.len(), 1, "one PUT DATA script");
    let p = put_data[0];
    let mut tally = Tally::new();
    let loaded = |c: LoadClass| {
        matches!(
            c,
            LoadClass::LoadedSeen | LoadClass::LoadedProvenAtNextInsert
        )
    };
    for cut in Cut::all(commits, apdus) {
        let run = load_case(&cut.describe("load "), cut.tear(), cut.pull());
        let c = tally.note(cut.family(), run.class);
        match cut {
            Cut::Commit(k) => assert!(
                matches!(
                    c,
                    LoadClass::NotLoadedAfterIssuer | LoadClass::NotLoadedBeforeIssuer
                ),
                "commit {k}: the load is the last commit: {c:?}"
            ),
            // Loaded exactly when the PUT DATA reached the card.
            Cut::Pulled(Pull::After(k)) => {
                assert_eq!(loaded(c), k >= p, "pulled after {k}: {c:?}");
            }
            Cut::Pulled(Pull::AnswerLost(k)) => {
                assert_eq!(loaded(c), k >= p, "answer {k} lost: {c:?}");
            }
        }
    }
    let points = tally.points();
    eprintln!(
        "load APDUs: {} (PUT DATA is APDU {p})",
        clean
            .trace
            .iter()
            .map(|c| if *c == [0x04, 0xda] {
                "PUT DATA"
            } else {
                name(*c)
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!(
        "load tearing: {commits} commits and {apdus} APDUs in a load; {points} points \
         ({commits} commits torn, {} boundaries, {apdus} answers lost)",
        apdus + 1
    );
    tally.print();
    let count = |c: LoadClass| tally.count(c);
    assert_eq!(
        points,
        u32::try_from(commits).unwrap() + 2 * u32::try_from(apdus).unwrap() + 1
    );
    assert!(count(LoadClass::LoadedSeen) + count(LoadClass::LoadedProvenAtNextInsert) > 0);
    assert!(count(LoadClass::NotLoadedAfterIssuer) + count(LoadClass::NotLoadedBeforeIssuer) > 0);
}
