//! The JSON the counter API speaks (docs/counter-openapi.yaml has the same shapes). Personal
//! fields are masked before they get here; no PIN ever does.

use serde::{Deserialize, Serialize};

use crate::session::CardVerdict;

/// `GET /v1/card`: the card in the reader as the identity check found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardStatus {
    /// The reader: `ready`, or `missing` (no reader, or pcscd gone).
    pub reader: String,
    /// A card is in the reader.
    pub present: bool,
    /// Where the card stands: `no_card`, `checking`, `rejected` (see `verdict.status`),
    /// `ready` (valid, PIN not verified yet), `verified` (PIN verified on the terminal).
    pub state: String,
    /// What the terminal is doing with the card: `verifying` (waiting for the cardholder's
    /// PIN), `paying`, or none.
    pub busy: Option<String>,
    /// The cardholder and card, masked.
    pub holder: Option<MaskedHolder>,
    /// The checks.
    pub verdict: Option<Verdict>,
    /// PIN tries the card still allows (none once verified, or when not read).
    pub pin_tries_left: Option<u8>,
}

impl CardStatus {
    /// No card in a ready reader.
    pub fn no_card(reader: &str) -> Self {
        Self {
            reader: reader.to_string(),
            present: false,
            state: "no_card".into(),
            busy: None,
            holder: None,
            verdict: None,
            pin_tries_left: None,
        }
    }
}

/// The cardholder and card, masked as the kiosk masks them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedHolder {
    /// Name, masked (`张*`).
    pub name: String,
    /// Social-security number, masked (`110***********3011`).
    pub ssn: String,
    /// Card number, masked (`A*******1`).
    pub card_number: String,
    /// Expiry date `YYYY-MM-DD`.
    pub expiry: String,
}

/// The identity check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `valid`, `not_genuine`, `expired`, `hot_listed`, `pin_blocked`, `unreadable`.
    pub status: String,
    /// The certificate chain and the card's signature over a fresh challenge verified
    /// (`null`: not reached).
    pub genuine: Option<bool>,
    /// Not past its expiry date.
    pub in_date: Option<bool>,
    /// Not on the terminal's hot list.
    pub not_hot_listed: Option<bool>,
}

impl MaskedHolder {
    /// From the session's verdict (its fields are masked already); `None` when the card could
    /// not be read.
    pub fn of(v: &CardVerdict) -> Option<Self> {
        (!v.name.is_empty()).then(|| Self {
            name: v.name.clone(),
            ssn: v.ssn.clone(),
            card_number: v.card_number.clone(),
            expiry: v.expiry.clone(),
        })
    }
}

/// `POST /v1/verify`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// `verified`, `wrong_pin` or `blocked`.
    pub result: String,
    /// Tries left after a wrong PIN (`0` when blocked; none when verified: a verified card
    /// does not tell its counter, and a right PIN resets it).
    pub tries_left: Option<u8>,
}

/// `POST /v1/debits`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebitRequest {
    /// The point-of-sale system's reference: 1 to 64 characters of `A-Z a-z 0-9 - _ . : /`,
    /// unique per debit; the same reference never debits twice.
    pub reference: String,
    /// Amount in fen (0.01 CNY), 1 to 100000.
    pub amount_fen: u64,
    /// What is paid for, as the till names it (1 to 100 characters, no control characters).
    pub item: String,
}

impl DebitRequest {
    /// The request in the canonical form the ledger's reference check compares (amount and
    /// item; the reference is the key).
    pub fn canonical(&self) -> String {
        format!("v1\n{}\n{}", self.amount_fen, self.item)
    }
}

/// A debit as the ledger has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debit {
    /// The client's reference.
    pub reference: String,
    /// The ledger's sequence number (the transaction number).
    pub seq: u64,
    /// `approved` (money taken, with the card's TC), `recovered` (money taken, proven by the
    /// card's log after the card was pulled), `in_doubt` (the card was pulled after the debit
    /// command: settled when the card is next inserted), `declined` (the card refused),
    /// `voided` (nothing was taken).
    pub state: String,
    /// Amount in fen.
    pub amount_fen: u64,
    /// What was paid for, as the request named it (not kept in the ledger: absent when the
    /// debit is looked up by its reference alone).
    pub item: Option<String>,
    /// The payment card's number, masked (first 6, last 4).
    pub pan_masked: String,
    /// Local time of the transaction, `YYYY-MM-DD hh:mm:ss` (China Standard Time).
    pub time: String,
    /// The card's transaction counter, when the card answered.
    pub atc: Option<u16>,
    /// The transaction certificate (hex), when the card gave one.
    pub tc: Option<String>,
    /// The electronic-cash balance after, in fen: only in the answer that made the debit.
    pub balance_after_fen: Option<u64>,
    /// This answer repeats an earlier one for the same reference and request: nothing new was
    /// debited.
    pub replayed: bool,
}

/// One line of `GET /v1/debits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebitLine {
    /// The ledger's sequence number.
    pub seq: u64,
    /// The client's reference (none for the kiosk's own payments).
    pub reference: Option<String>,
    /// The ledger's entry kind: `ec_purchase` (electronic cash), `medical_debit`, ...
    pub kind: String,
    /// Local time `hh:mm:ss`.
    pub time: String,
    /// As in [`Debit::state`].
    pub state: String,
    /// Amount in fen.
    pub amount_fen: u64,
    /// The payment card's number, masked.
    pub pan_masked: String,
}

/// `GET /v1/debits`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebitList {
    /// The day listed, `YYYY-MM-DD`.
    pub date: String,
    /// The day's ledger entries, oldest first.
    pub debits: Vec<DebitLine>,
    /// Entries in which money was taken (`approved`, `recovered`).
    pub taken_count: u64,
    /// Their total in fen.
    pub taken_fen: u64,
}

/// Every error's body: `{"error": {"code": ..., "message": ...}}`, and the debit when the
/// error is about one the ledger holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// The debit a `declined` or `voided` answer is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debit: Option<Debit>,
}

/// An error's stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, `snake_case` (the table in docs/counter-api.md).
    pub code: String,
    /// For people; may change.
    pub message: String,
}

/// The state name the API uses for a ledger state.
pub fn state_name(ledger_state: &str) -> String {
    match ledger_state {
        "approved_offline" => "approved".into(),
        "intent" | "unknown" => "in_doubt".into(),
        other => other.into(),
    }
}

/// `YYYYMMDDhhmmss` as `YYYY-MM-DD hh:mm:ss`.
pub fn txn_time_text(t: &str) -> String {
    let part = |a: usize, b: usize| t.get(a..b).unwrap_or_default();
    format!(
        "{}-{}-{} {}:{}:{}",
        part(0, 4),
        part(4, 6),
        part(6, 8),
        part(8, 10),
        part(10, 12),
        part(12, 14)
    )
}
