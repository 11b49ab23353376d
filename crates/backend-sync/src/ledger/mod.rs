//! The terminal's ledger: one SQLite file in WAL mode, opened by the payment kernel and by the
//! sync agent alike (each with its own connection; SQLite serialises the writers).
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL` (the default [`Durability::Full`]):
//! every commit fsyncs the WAL before it returns, so a payment recorded is on disk even if the
//! power goes right after. `NORMAL` would be faster but, in WAL mode, may lose the last
//! commits on power loss (sqlite.org/pragma.html#pragma_synchronous), which is not acceptable
//! for money. [`Durability::Relaxed`] exists only for filling benchmark ledgers.
//!
//! Parts, one file each: [`migrations`] (schema versions), [`payments`] (append-only entries and
//! outcomes, write-ahead), [`upload_queue`] (the sync checkpoint), [`batches`] (settlement
//! batches and their totals), [`hotlist`], [`params`](mod@params), [`cardholders`],
//! [`client_refs`] (the counter API's references, each debiting at most once), [`medical`]
//! (medical-account debits).

pub mod batches;
pub mod cardholders;
pub mod client_refs;
pub mod hotlist;
pub mod medical;
pub mod migrations;
pub mod params;
pub mod payments;
pub mod recovery_facts;
pub mod upload_queue;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::entry::{EntryState, FieldError, TerminalId};
use crate::field_crypto::{FieldCryptoError, FieldKey};

pub use client_refs::{ClientRef, RefLookup};
pub use medical::{MedicalAvailable, MedicalRecorded, NewMedicalDebit};
pub use payments::{Intent, LedgerEntry, NewPayment, OperatorFinding, Outcome};
pub use recovery_facts::{PendingRecovery, RecoveryFacts};
pub use upload_queue::{SyncSummary, UploadState};

/// Errors of the ledger, one variant per cause. None carries a PAN or a key.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite failed.
    #[error("ledger database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Encrypting or decrypting a personal field failed (wrong key or altered data).
    #[error("personal field: {0}")]
    FieldCrypto(#[from] FieldCryptoError),
    /// The file's schema is newer than this code.
    #[error("ledger schema version {found} is newer than the {supported} this code knows")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Newest version known.
        supported: i64,
    },
    /// The file belongs to another terminal.
    #[error("the ledger belongs to terminal {ledger}, not {given}")]
    WrongTerminal {
        /// Terminal in the file.
        ledger: String,
        /// Terminal asked for.
        given: String,
    },
    /// No entry with this sequence number.
    #[error("no ledger entry with sequence number {0}")]
    NoSuchEntry(u64),
    /// The state machine does not allow this outcome now.
    #[error("entry {seq}: {from} cannot become {to}")]
    Transition {
        /// Entry.
        seq: u64,
        /// Current state.
        from: &'static str,
        /// Requested state.
        to: &'static str,
    },
    /// The cryptogram type does not fit the outcome (TC for approved, AAC for declined).
    #[error("entry {seq}: the cryptogram type does not fit the outcome {to}")]
    CryptogramType {
        /// Entry.
        seq: u64,
        /// Requested state.
        to: &'static str,
    },
    /// The card is on the hot list: the payment is refused before any card command.
    #[error("the card is on the hot list ({reason})")]
    CardHotListed {
        /// Why it was listed.
        reason: String,
    },
    /// Amount zero or above n12.
    #[error("amount must be 1 to 999999999999 fen")]
    Amount,
    /// A recovered debit's evidence does not hold, or a note is unusable.
    #[error("entry {seq}: {source}")]
    Evidence {
        /// Entry.
        seq: u64,
        /// Why.
        source: crate::recovery::EvidenceError,
    },
    /// A stored value cannot be read back.
    #[error("corrupt ledger value in {0}")]
    Corrupt(&'static str),
    /// A stored field fails validation.
    #[error("stored field invalid: {0}")]
    Field(#[from] FieldError),
    /// A hot-list delta does not start at the version the ledger has.
    #[error("hot-list delta starts at version {delta_from}, the ledger has {have}")]
    HotListVersion {
        /// The ledger's version.
        have: u64,
        /// The delta's start.
        delta_from: u64,
    },
    /// A hot-list delta's changes are not in ascending version order within its range.
    #[error("hot-list delta changes are not in order within their range")]
    HotListOrder,
    /// A batch that is not open or closing.
    #[error("no such batch {0}")]
    NoSuchBatch(u32),
    /// Serializing a stored record failed.
    #[error("record encoding")]
    Encoding,
    /// A client reference that is empty, too long, or has characters outside
    /// `A-Z a-z 0-9 - _ . : /`.
    #[error("client reference must be 1 to 64 characters of A-Z a-z 0-9 - _ . : /")]
    Reference,
    /// The client reference already belongs to an entry: the payment is refused before any
    /// card command.
    #[error("client reference already used by entry {seq}")]
    ReferenceUsed {
        /// The entry that has it.
        seq: u64,
    },
    /// This kind is not recorded this way (a medical debit goes through
    /// `Ledger::record_medical_debit`, nothing else does).
    #[error("this kind of entry is not recorded this way")]
    KindNotAllowed,
    /// A currency other than CNY (156).
    #[error("only CNY (156) is supported")]
    Currency,
    /// The idempotency id is already used by another entry.
    #[error("the idempotency id is already used")]
    IdempotencyReused,
    /// No cardholder record for this social-security number in the ledger: the medical balance
    /// is not known offline.
    #[error("no cardholder record for this card in the ledger")]
    NoCardholderRecord,
    /// The amount exceeds what the cardholder's medical account has left offline: the record's
    /// balance minus what this terminal debited that the record does not yet count.
    #[error("medical account overdraft: {available_fen} fen available")]
    MedicalOverdraft {
        /// What is left, in fen (negative if the record was already overdrawn).
        available_fen: i64,
    },
    /// A medical debit's evidence does not name the entry.
    #[error("medical debit evidence: {0}")]
    MedicalEvidence(#[from] crate::medical::MedicalError),
}

/// A fault of the ledger's storage: what the kernel answered a write or a read with, as SQLite
/// reports it (`ENOSPC` is [`StorageFault::Full`]; `EIO`, `EFBIG`, `EROFS` on an open file and
/// the like are [`StorageFault::Io`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StorageFault {
    /// The disk (or the file system) is full.
    #[error("the ledger's disk is full")]
    Full,
    /// A read or write failed.
    #[error("the ledger's disk failed a read or write")]
    Io,
    /// The file or its file system is read-only.
    #[error("the ledger's file is read-only")]
    ReadOnly,
    /// The file is not a sound database.
    #[error("the ledger's file is damaged")]
    Corrupt,
}

impl LedgerError {
    /// The storage fault behind this error, if it is one (as opposed to a refusal by the
    /// ledger's rules).
    pub fn storage_fault(&self) -> Option<StorageFault> {
        use rusqlite::ErrorCode;
        let Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) = self else {
            return None;
        };
        match e.code {
            ErrorCode::DiskFull => Some(StorageFault::Full),
            ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => Some(StorageFault::Io),
            ErrorCode::ReadOnly => Some(StorageFault::ReadOnly),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Some(StorageFault::Corrupt),
            _ => None,
        }
    }
}

/// How hard commits hold on to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: each commit is on disk when it returns. For money; the default.
    #[default]
    Full,
    /// `synchronous=OFF`: for filling benchmark ledgers only.
    Relaxed,
}

/// The ledger of one terminal.
pub struct Ledger {
    conn: Connection,
    key: FieldKey,
    terminal: TerminalId,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("terminal", &self.terminal)
            .finish_non_exhaustive()
    }
}

/// The SQLite settings of the ledger, also used by the benchmark's raw-insert peer.
pub fn pragmas(durability: Durability) -> &'static str {
    match durability {
        Durability::Full => {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
        }
        Durability::Relaxed => {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON;"
        }
    }
}

impl Ledger {
    /// Open (creating and migrating as needed) the ledger of `terminal` at `path`, with the
    /// field key kept outside the file.
    pub fn open(path: &Path, terminal: &TerminalId, key: FieldKey) -> Result<Self, LedgerError> {
        Self::open_with(path, terminal, key, Durability::Full)
    }

    /// [`Ledger::open`] with a chosen durability.
    pub fn open_with(
        path: &Path,
        terminal: &TerminalId,
        key: FieldKey,
        durability: Durability,
    ) -> Result<Self, LedgerError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(pragmas(durability))?;
        migrations::migrate(&mut conn)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stored: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'terminal_id'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            Some(t) if t != terminal.as_str() => {
                return Err(LedgerError::WrongTerminal {
                    ledger: t,
                    given: terminal.to_string(),
                });
            }
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('terminal_id', ?1)",
                    params![terminal.as_str()],
                )?;
            }
        }
        tx.commit()?;
        Ok(Self {
            conn,
            key,
            terminal: terminal.clone(),
        })
    }

    /// The terminal this ledger belongs to.
    pub fn terminal(&self) -> &TerminalId {
        &self.terminal
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Set a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// A metadata value read as an integer (0 if absent).
    pub fn meta_u64(&self, key: &str) -> Result<u64, LedgerError> {
        match self.meta(key)? {
            Some(v) => v.parse().map_err(|_| LedgerError::Corrupt("meta")),
            None => Ok(0),
        }
    }

    /// A metadata value read as a signed integer, if set.
    pub fn meta_i64(&self, key: &str) -> Result<Option<i64>, LedgerError> {
        match self.meta(key)? {
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| LedgerError::Corrupt("meta")),
            None => Ok(None),
        }
    }

    /// `PRAGMA integrity_check` is `ok`.
    pub fn integrity_ok(&self) -> Result<bool, LedgerError> {
        let s: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn key(&self) -> &FieldKey {
        &self.key
    }
}

pub(crate) fn state_from_db(s: &str) -> Result<EntryState, LedgerError> {
    s.parse().map_err(|_| LedgerError::Corrupt("state"))
}

impl Ledger {
    /// A pragma's value as text (`journal_mode`, `synchronous`), for checks and status.
    pub fn pragma_text(&self, name: &str) -> Result<String, LedgerError> {
        let v: rusqlite::types::Value =
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
        Ok(match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            _ => String::new(),
        })
    }

    /// The schema version of the file.
    pub fn schema_version(&self) -> Result<i64, LedgerError> {
        migrations::version(&self.conn)
    }
}
