//! The PBOC 3.0 (JR/T 0025-2013) terminal kernel: the debit/credit application with electronic
//! cash over the contact interface (JR/T 0025.6, JR/T 0025.13), qPBOC over the contactless one
//! (JR/T 0025.12), offline data authentication with SM2 (JR/T 0025.17) and RSA (JR/T 0025.7),
//! the electronic cash queries (balance, transaction log, load log), and the check that
//! resolves a debit torn by a pulled card. The card side it talks to is specified by
//! docs/pboc-profile.md; docs/pboc-kernel.md describes the kernel for its callers.
//!
//! # Design: plain data in, plain data out
//!
//! The kernel is pure. It reads no clock and no random source: the caller passes date, time,
//! the unpredictable number and the random number of random selection in
//! [`TransactionParams`]. It talks to the card only through
//! [`CardSession::send`](crate::channel::CardSession::send), and to the outside only through
//! hooks the caller implements:
//!
//! - [`PinPad`]: asks the cardholder for a PIN (the GUI's keypad); the PIN lives in a zeroizing
//!   [`Pin`](crate::secret::Pin) for one VERIFY, which is marked sensitive.
//! - [`HotList`]: the terminal exception file.
//! - [`OnlineAuthoriser`]: the issuer (hsm-sim and the backend in the stack).
//! - [`DebitJournal`]: the write-ahead ledger, called with a [`DebitIntent`] just before the
//!   command that can debit the card.
//!
//! A transaction is a state machine over plain data: [`ContactTransaction`] has one method per
//! step of JR/T 0025.6 图1, each taking `&mut CardSession` and advancing a [`Phase`]; the
//! qPBOC flow ([`qpboc`]) and the electronic cash queries ([`ec`]) are sequences of small
//! functions. Every step's inputs and outputs are values (the card's [`DataStore`], [`Tvr`],
//! [`Tsi`], the DOL data sent), so a recorded transcript replayed by
//! [`ReplayChannel`](crate::transcript::ReplayChannel) tests a step or a whole transaction,
//! and the same code runs against the software card through pcscd. [`run_contact`] and
//! [`qpboc::run_qpboc`] run a whole transaction and always return a [`TransactionRecord`] —
//! the typed error of a step that stopped it is its [`Outcome::Aborted`].
//!
//! Bad card answers are typed errors ([`PbocError`]) with the status word, tag or offset that
//! caused them; offline data authentication failures are TVR bits, never errors.
//!
//! # Modules
//!
//! - [`data`]: amounts, dates, times, the masked [`Pan`].
//! - [`bits`]: TVR, TSI, AIP, AUC, terminal capabilities, TTQ, CTQ, CID, CVM results.
//! - [`dol`] and [`store`]: data object lists and the data they are built from.
//! - [`select`]: PSE, PPSE, AID list, candidate list, final selection.
//! - [`gpo`]: GET PROCESSING OPTIONS and the AFL.
//! - [`records`]: reading the AFL's records, mandatory data, typed card data.
//! - [`oda`]: SDA, DDA, CDA, fDDA with SM2 and RSA; the CA store.
//! - [`cvm`]: CVM list processing, offline plaintext PIN, the [`PinPad`] trait.
//! - [`risk`]: processing restrictions, terminal risk management, the [`HotList`] trait.
//! - [`action`]: terminal action analysis and GENERATE AC.
//! - [`cryptogram`]: the bytes a card of cryptogram version 01 MACs ([`CryptogramInput`]), for
//!   the issuer's and the HSM's check.
//! - [`online`]: the [`OnlineAuthoriser`] trait, issuer authentication, issuer scripts.
//! - [`contact`]: the contact transaction.
//! - [`qpboc`]: the qPBOC transaction.
//! - [`ec`]: balance inquiry, transaction log, load log, electronic cash load.
//! - [`outcome`]: [`TransactionRecord`], [`DebitIntent`], [`DebitJournal`].
//! - [`recovery`]: did a torn debit happen?
//! - [`config`]: [`TerminalConfig`], [`TransactionParams`].

pub mod action;
pub mod bits;
pub mod config;
pub mod contact;
pub mod cryptogram;
pub mod cvm;
pub mod data;
pub mod dol;
pub mod ec;
pub mod gpo;
pub mod oda;
pub mod online;
pub mod outcome;
pub mod qpboc;
pub mod records;
pub mod recovery;
pub mod risk;
pub mod select;
pub mod store;

use crate::channel::{ResetAware, SendError};
use crate::status::StatusWord;
use crate::tlv::{Tag, TlvError};

pub use bits::{AcType, Aip, Cid, CvmResults, TerminalCapabilities, Tsi, TsiBit, Tvr, TvrBit};
pub use config::{ActionCodes, TerminalConfig, TransactionParams};
pub use contact::{ContactTransaction, Hooks, Phase, run_contact};
pub use cryptogram::{CryptogramInput, CryptogramSource};
pub use cvm::{PinEntry, PinPad, PinPrompt};
pub use data::{Amount, Date, Pan, Time};
pub use dol::{Dol, DolError};
pub use oda::{CaStore, OdaError, OdaMethod};
pub use online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
pub use outcome::{DebitIntent, DebitJournal, JournalError, Outcome, TransactionRecord};
pub use risk::HotList;
pub use select::{Interface, SupportedAid};
pub use store::DataStore;

/// The registered application provider identifier of China UnionPay.
pub const RID_UNIONPAY: [u8; 5] = [0xa0, 0x00, 0x00, 0x03, 0x33];
/// The UnionPay debit AID of the profile.
pub const AID_DEBIT: [u8; 8] = [0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01];

/// Errors of the PBOC flows, one per cause.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PbocError {
    /// The exchange with the card failed (transport, or a malformed APDU exchange).
    #[error(transparent)]
    Send(#[from] SendError),
    /// A command answered a status word the flow cannot go on with.
    #[error("{command} answered {sw}")]
    Status {
        /// The command.
        command: &'static str,
        /// The answer.
        sw: StatusWord,
    },
    /// SELECT answered `6A81`: the card is blocked or does not support the command
    /// (JR/T 0025.6 §7.2.4.1 step 1, §7.2.4.2 step 2).
    #[error("the card is blocked (SELECT answered 6A81)")]
    CardBlocked,
    /// No application in common with the card, or none left (§7.2.5.3).
    #[error("no application in common with the card")]
    NoApplication,
    /// GET PROCESSING OPTIONS answered `6985` where no other application can be tried
    /// (qPBOC: JR/T 0025.12 §6.5.3, JR/T 0025.17 §10.5, e.g. an SM-only card and `DF69 = 00`).
    #[error("GET PROCESSING OPTIONS: conditions of use not satisfied (6985)")]
    GpoConditionsNotSatisfied,
    /// The PDOL of a contactless application does not ask for `9F66` (JR/T 0025.12 §6.5.1).
    #[error("the PDOL does not ask for the terminal transaction qualifiers 9F66")]
    NoTtqInPdol,
    /// qPBOC offline data authentication failed and the card's CTQ asks the terminal to end
    /// the contactless transaction and use the contact interface (JR/T 0025.12 §7.8.1,
    /// §7.8.5).
    #[error("offline data authentication failed; the card asks for the contact interface")]
    UseContactInterface,
    /// Malformed BER-TLV in a card answer.
    #[error("malformed {what}: {source}")]
    Tlv {
        /// What was being read.
        what: &'static str,
        /// Where and how.
        #[source]
        source: TlvError,
    },
    /// A card answer that is well-formed TLV but not what the command returns.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A malformed data object list.
    #[error("malformed DOL {tag}: {source}")]
    Dol {
        /// The tag of the list.
        tag: Tag,
        /// Where and how.
        #[source]
        source: DolError,
    },
    /// An AFL entry that breaks the rules of JR/T 0025.5 表A.1 `94`.
    #[error("AFL entry at byte {offset} is invalid")]
    Afl {
        /// Offset of the entry in the AFL.
        offset: usize,
    },
    /// The AFL names more records than a terminal reads
    /// ([`records::MAX_AFL_RECORDS`]): a card answering an AFL of 62 files of 255 records
    /// each would otherwise keep the terminal busy with some 15 800 READ RECORDs.
    #[error("the AFL names {records} records, more than the {limit} a terminal reads")]
    AflTooLong {
        /// Records the AFL names.
        records: usize,
        /// The limit.
        limit: usize,
    },
    /// READ RECORD of an AFL record did not answer `9000` (JR/T 0025.6 §7.4.4).
    #[error("READ RECORD {record} of SFI {sfi} answered {sw}")]
    ReadRecord {
        /// The file.
        sfi: u8,
        /// The record.
        record: u8,
        /// The answer.
        sw: StatusWord,
    },
    /// A record of SFI 1-10 that is not one record template `70` (JR/T 0025.5 表B.22).
    #[error("record {record} of SFI {sfi} is not a record template 70")]
    NotRecordTemplate {
        /// The file.
        sfi: u8,
        /// The record.
        record: u8,
    },
    /// A tag returned twice, in records or in a record after the GPO answer (JR/T 0025.6
    /// §7.4.4); SFI and record 0 for a repeat inside one template.
    #[error("tag {tag} returned twice (record {record} of SFI {sfi})")]
    DuplicateTag {
        /// The tag.
        tag: Tag,
        /// The file.
        sfi: u8,
        /// The record.
        record: u8,
    },
    /// Mandatory data is missing (JR/T 0025.5 表A.2, JR/T 0025.6 §7.4.4).
    #[error("mandatory data object {tag} is missing")]
    MissingData {
        /// The tag.
        tag: Tag,
    },
    /// A data object does not have its format (JR/T 0025.6 §7.4.4 "数据格式错").
    #[error("data object {tag} does not have its format")]
    BadData {
        /// The tag.
        tag: Tag,
    },
    /// The card answered a cryptogram the terminal did not allow (JR/T 0025.6 §7.11.4.1.2
    /// step 3).
    #[error("the card returned {returned:?} where the terminal asked for {requested:?}")]
    UnexpectedCryptogram {
        /// What the terminal asked for.
        requested: AcType,
        /// What the card returned (`None`: the reserved type).
        returned: Option<AcType>,
    },
    /// The write-ahead journal failed: the debit was not attempted.
    #[error("the journal could not record the intent: {0}")]
    Journal(String),
    /// A step was called out of order.
    #[error("step {step} called out of order")]
    OutOfOrder {
        /// The step.
        step: &'static str,
    },
}

impl ResetAware for PbocError {
    fn is_card_reset(&self) -> bool {
        matches!(self, Self::Send(e) if e.is_card_reset())
    }
}
