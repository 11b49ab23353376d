//! The payment entry: what a terminal records about one card payment, from the intent written
//! before the card command that can debit to the final outcome the agent uploads.
//!
//! The PBOC terminal kernel fills these fields (JR/T 0025.5 and .7 for the data elements,
//! JR/T 0025.17 for the SM4 cryptograms): the PAN (5A) and its sequence number (5F34), the ATC
//! (9F36), the cryptogram information data (9F27) and the application cryptogram (9F26), the
//! algorithm from the issuer application data (9F10), and the exact data the card MACed (the
//! CDOL1 data and the card's own elements, [`crate::mac_data`]).
//!
//! The state machine (docs/sync-protocol.md):
//!
//! ```text
//! intent ──TC──> approved_offline        (final, uploaded, booked)
//!    │  ──AAC─> declined                 (final, uploaded, recorded, no money)
//!    │  ──────> voided                   (final: the debiting command never reached the card)
//!    │  ──card's log shows the debit───> recovered   (final, uploaded, booked unverified)
//!    └─ card pulled after the command ─> unknown ──recovered TC──> approved_offline
//!                                          │ ──recovered AAC──> declined
//!                                          │ ──card's log shows the debit──> recovered
//!                                          │ ──unclear: a note, still unknown──> unknown
//!                                          └─ no debit on the card ──> voided
//! ```
//!
//! `recovered` is a debit the card made whose cryptogram never reached the terminal, proven by
//! the card's own transaction log ([`crate::recovery`]).
//!
//! A medical-account debit ([`EntryKind::MedicalDebit`]) is written final at once, in state
//! `recorded`, with the card's signature over the entry as evidence ([`crate::medical`]); it
//! takes no part in the state machine above.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::clock;
use crate::medical::MedicalDebit;
use crate::recovery::Recovered;

/// Errors of a field value, one per cause. Messages never repeat the value (it may be a PAN).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A terminal id that is not 1-32 characters of `A-Z a-z 0-9 - _`.
    #[error("a terminal id is 1-32 characters of A-Z, a-z, 0-9, '-' and '_'")]
    TerminalId,
    /// An idempotency id that is not 32 hex digits.
    #[error("an idempotency id is 32 hex digits")]
    IdempotencyId,
    /// A PAN that is not 12-19 digits.
    #[error("a PAN is 12 to 19 digits")]
    Pan,
    /// A PAN sequence number that is not 2 digits.
    #[error("a PAN sequence number is 2 digits")]
    Psn,
    /// A transaction time that is not a valid `YYYYMMDDhhmmss`.
    #[error("a transaction time is a valid YYYYMMDDhhmmss")]
    TxnTime,
    /// A state name that is not one of the ledger's.
    #[error("unknown entry state")]
    State,
    /// A kind name that is not one of the ledger's.
    #[error("unknown entry kind")]
    Kind,
    /// A region code that is not 6 digits.
    #[error("a region code is 6 digits")]
    Region,
    /// Hex of the wrong length or with a non-hex character.
    #[error("{field}: expected {expected} hex digits")]
    Hex {
        /// Field name.
        field: &'static str,
        /// Hex digits required (a maximum for variable data).
        expected: usize,
    },
}

/// A terminal's identifier: 1-32 characters of `A-Z a-z 0-9 - _`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TerminalId(String);

impl TerminalId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TerminalId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s))
        } else {
            Err(FieldError::TerminalId)
        }
    }
}

impl FromStr for TerminalId {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::try_from(s.to_string())
    }
}

impl From<TerminalId> for String {
    fn from(t: TerminalId) -> Self {
        t.0
    }
}

impl fmt::Display for TerminalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TerminalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TerminalId({})", self.0)
    }
}

/// A 6-digit administrative region code (GB/T 2260), e.g. `110100`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Region {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s))
        } else {
            Err(FieldError::Region)
        }
    }
}

impl FromStr for Region {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::try_from(s.to_string())
    }
}

impl From<Region> for String {
    fn from(r: Region) -> Self {
        r.0
    }
}

/// The idempotency id of an entry: 16 random bytes, 32 lower-case hex digits on the wire. It
/// names the payment across retries, restarts and servers (draft-ietf-httpapi-idempotency-key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyId([u8; 16]);

impl IdempotencyId {
    /// A fresh id from the operating system's random number generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b)?;
        Ok(Self(b))
    }

    /// From its 16 bytes.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// Its 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl TryFrom<String> for IdempotencyId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        s.parse()
    }
}

impl FromStr for IdempotencyId {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b).map_err(|_| FieldError::IdempotencyId)?;
        Ok(Self(b))
    }
}

impl From<IdempotencyId> for String {
    fn from(i: IdempotencyId) -> Self {
        i.to_hex()
    }
}

impl fmt::Display for IdempotencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for IdempotencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyId({})", self.to_hex())
    }
}

/// A primary account number in clear (5A): 12-19 digits. Zeroized on drop; `Debug` and
/// [`Pan::masked`] show at most the first 6 and last 4 digits (PCI DSS 3.4.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pan(String);

impl Pan {
    /// The digits. Handle with care: never log them.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first 6 and last 4 digits with `*` between them.
    pub fn masked(&self) -> String {
        mask_pan(&self.0)
    }
}

/// The display form of a PAN: first 6 and last 4 digits, `*` for the rest.
pub fn mask_pan(pan: &str) -> String {
    let n = pan.chars().count();
    pan.chars()
        .enumerate()
        .map(|(i, c)| if i < 6 || i + 4 >= n { c } else { '*' })
        .collect()
}

impl TryFrom<String> for Pan {
    type Error = FieldError;
    fn try_from(mut s: String) -> Result<Self, FieldError> {
        if (12..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s))
        } else {
            s.zeroize();
            Err(FieldError::Pan)
        }
    }
}

impl FromStr for Pan {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::try_from(s.to_string())
    }
}

impl From<Pan> for String {
    fn from(p: Pan) -> Self {
        p.0.clone()
    }
}

impl Drop for Pan {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

/// The PAN sequence number (5F34), two digits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Psn(String);

impl Psn {
    /// The two digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Psn {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s))
        } else {
            Err(FieldError::Psn)
        }
    }
}

impl FromStr for Psn {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::try_from(s.to_string())
    }
}

impl From<Psn> for String {
    fn from(p: Psn) -> Self {
        p.0.clone()
    }
}

impl fmt::Debug for Psn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psn(**)")
    }
}

/// The terminal's local date and time of the transaction, `YYYYMMDDhhmmss` (9A and 9F21).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TxnTime(String);

impl TxnTime {
    /// The 14 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The transaction date as PBOC's `9A` (`YYMMDD`, BCD, 3 bytes).
    pub fn date_bcd(&self) -> [u8; 3] {
        let d = self.0.as_bytes();
        let digit = |i: usize| d.get(i).map_or(0, |c| c.wrapping_sub(b'0') & 0x0f);
        [
            (digit(2) << 4) | digit(3),
            (digit(4) << 4) | digit(5),
            (digit(6) << 4) | digit(7),
        ]
    }

    /// Unix seconds, reading the time as UTC.
    pub fn unix_seconds(&self) -> i64 {
        let n = |a: usize, b: usize| {
            self.0
                .get(a..b)
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let month = u32::try_from(n(4, 6)).unwrap_or(1);
        let day = u32::try_from(n(6, 8)).unwrap_or(1);
        clock::days_from_civil(n(0, 4), month, day) * 86_400
            + n(8, 10) * 3600
            + n(10, 12) * 60
            + n(12, 14)
    }

    /// From Unix seconds (UTC).
    pub fn from_unix(secs: i64) -> Self {
        Self(clock::compact_utc(secs))
    }
}

impl TryFrom<String> for TxnTime {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::TxnTime);
        }
        let n = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<u32>().ok());
        let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(se)) =
            (n(0, 4), n(4, 6), n(6, 8), n(8, 10), n(10, 12), n(12, 14))
        else {
            return Err(FieldError::TxnTime);
        };
        let ok = (2000..=2099).contains(&y)
            && (1..=12).contains(&mo)
            && d >= 1
            && d <= clock::days_in_month(i64::from(y), mo)
            && h < 24
            && mi < 60
            && se < 60;
        if ok {
            Ok(Self(s))
        } else {
            Err(FieldError::TxnTime)
        }
    }
}

impl FromStr for TxnTime {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::try_from(s.to_string())
    }
}

impl From<TxnTime> for String {
    fn from(t: TxnTime) -> Self {
        t.0
    }
}

/// What a payment does to the card's money.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Offline electronic-cash purchase (JR/T 0025.13): the card debits its EC balance (9F79)
    /// and answers with a TC. Transaction type `00`.
    EcPurchase,
    /// Debit/credit purchase approved offline by the card (TC). Transaction type `00`.
    Purchase,
    /// Refund of an earlier purchase (transaction type `20`): money goes back to the cardholder.
    Refund,
    /// Offline debit of the cardholder's medical account (医保个人账户), which lives at the
    /// backend, not on the card: no PBOC cryptogram; the card's SM2 signature over a challenge
    /// bound to the entry is the evidence ([`crate::medical`]). Always in state
    /// [`EntryState::Recorded`].
    MedicalDebit,
}

impl EntryKind {
    /// The name stored and sent.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EcPurchase => "ec_purchase",
            Self::Purchase => "purchase",
            Self::Refund => "refund",
            Self::MedicalDebit => "medical_debit",
        }
    }

    /// Money to the cardholder (a credit), rather than from them (a debit).
    pub const fn is_credit(self) -> bool {
        matches!(self, Self::Refund)
    }

    /// The PBOC transaction type (9C) the card MACs for this kind. A medical debit is no PBOC
    /// transaction; it is a debit, so `00`.
    pub const fn transaction_type(self) -> u8 {
        match self {
            Self::EcPurchase | Self::Purchase | Self::MedicalDebit => 0x00,
            Self::Refund => 0x20,
        }
    }
}

impl FromStr for EntryKind {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        match s {
            "ec_purchase" => Ok(Self::EcPurchase),
            "purchase" => Ok(Self::Purchase),
            "refund" => Ok(Self::Refund),
            "medical_debit" => Ok(Self::MedicalDebit),
            _ => Err(FieldError::Kind),
        }
    }
}

/// Where a payment stands. See the module documentation for the transitions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Written before the card command that can debit; not yet known how it ended.
    Intent,
    /// The card approved offline with a TC: money moved.
    ApprovedOffline,
    /// The card declined with an AAC: no money moved.
    Declined,
    /// The card was pulled after the command went out: the card may or may not have debited.
    /// The kernel recovers it from the card's log and ATC at the next insertion.
    Unknown,
    /// Reversed/voided: the debiting command never took effect on the card (never sent, or
    /// recovery found no debit).
    Voided,
    /// The card debited, but its cryptogram never reached the terminal: the card's transaction
    /// log proves the debit ([`crate::recovery::Recovered`]). Money moved; no cryptogram can
    /// be verified.
    Recovered,
    /// A medical-account debit ([`EntryKind::MedicalDebit`]), final when written: the card
    /// proved itself and signed a challenge bound to the entry, the PIN was verified, and the
    /// ledger found the amount within the cardholder's medical balance. Nothing on the card can
    /// be torn (the account is at the backend), so there is no intent before it. Money moved;
    /// booked once the server has verified the card's signature.
    Recorded,
}

impl EntryState {
    /// The name stored and sent.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::ApprovedOffline => "approved_offline",
            Self::Declined => "declined",
            Self::Unknown => "unknown",
            Self::Voided => "voided",
            Self::Recovered => "recovered",
            Self::Recorded => "recorded",
        }
    }

    /// Final states are uploaded; `intent` and `unknown` stay local until resolved.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::ApprovedOffline
                | Self::Declined
                | Self::Voided
                | Self::Recovered
                | Self::Recorded
        )
    }

    /// Money moved from the cardholder's side: approved with a TC, recovered from the card's
    /// log, or a medical-account debit recorded.
    pub const fn moved_money(self) -> bool {
        matches!(
            self,
            Self::ApprovedOffline | Self::Recovered | Self::Recorded
        )
    }

    /// Whether the state machine allows `self -> next`.
    pub const fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (
                Self::Intent,
                Self::ApprovedOffline
                    | Self::Declined
                    | Self::Unknown
                    | Self::Voided
                    | Self::Recovered
            ) | (
                Self::Unknown,
                Self::ApprovedOffline | Self::Declined | Self::Voided | Self::Recovered
            )
        )
    }
}

impl FromStr for EntryState {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        match s {
            "intent" => Ok(Self::Intent),
            "approved_offline" => Ok(Self::ApprovedOffline),
            "declined" => Ok(Self::Declined),
            "unknown" => Ok(Self::Unknown),
            "voided" => Ok(Self::Voided),
            "recovered" => Ok(Self::Recovered),
            "recorded" => Ok(Self::Recorded),
            _ => Err(FieldError::State),
        }
    }
}

/// The algorithm of the card's cryptograms (the IAD algorithm id: `01` 3DES, `04` SM4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Algorithm {
    /// Double-length 3DES (JR/T 0025.7).
    #[serde(rename = "3des")]
    Tdes,
    /// SM4 (JR/T 0025.17).
    #[serde(rename = "sm4")]
    Sm4,
}

impl Algorithm {
    /// The name stored and sent.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tdes => "3des",
            Self::Sm4 => "sm4",
        }
    }
}

impl FromStr for Algorithm {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        match s {
            "3des" => Ok(Self::Tdes),
            "sm4" => Ok(Self::Sm4),
            _ => Err(FieldError::Kind),
        }
    }
}

impl From<card_core::crypto::kdf::CardAlgorithm> for Algorithm {
    fn from(a: card_core::crypto::kdf::CardAlgorithm) -> Self {
        match a {
            card_core::crypto::kdf::CardAlgorithm::Tdes => Self::Tdes,
            card_core::crypto::kdf::CardAlgorithm::Sm4 => Self::Sm4,
        }
    }
}

/// The type of a cryptogram, bits 8-7 of the cryptogram information data (9F27; EMV Book 3
/// Table 14, JR/T 0025.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CryptogramType {
    /// `00`: application authentication cryptogram (declined).
    Aac,
    /// `01`: transaction certificate (approved).
    Tc,
    /// `10`: authorisation request cryptogram (go online).
    Arqc,
    /// `11`: reserved for future use.
    Reserved,
}

impl CryptogramType {
    /// The type named by a CID byte.
    pub const fn from_cid(cid: u8) -> Self {
        match cid >> 6 {
            0 => Self::Aac,
            1 => Self::Tc,
            2 => Self::Arqc,
            _ => Self::Reserved,
        }
    }
}

/// Hex bytes of a fixed length, serialized as upper-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexArray<const N: usize>(pub [u8; N]);

impl<const N: usize> TryFrom<String> for HexArray<N> {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        let mut b = [0u8; N];
        hex::decode_to_slice(&s, &mut b).map_err(|_| FieldError::Hex {
            field: "hex",
            expected: N * 2,
        })?;
        Ok(Self(b))
    }
}

impl<const N: usize> From<HexArray<N>> for String {
    fn from(h: HexArray<N>) -> Self {
        hex::encode_upper(h.0)
    }
}

/// Most bytes a card's MACed data may have on the wire (the CDOL1 data plus the card's own
/// elements come to well under 128 bytes on PBOC cards).
pub const MAX_MAC_DATA: usize = 256;

/// Variable hex bytes (at most [`MAX_MAC_DATA`]), serialized as upper-case hex.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacData(pub Vec<u8>);

impl TryFrom<String> for MacData {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        let err = FieldError::Hex {
            field: "mac_data",
            expected: MAX_MAC_DATA * 2,
        };
        if s.len() > MAX_MAC_DATA * 2 || s.is_empty() {
            return Err(err);
        }
        hex::decode(&s).map(Self).map_err(|_| err)
    }
}

impl From<MacData> for String {
    fn from(h: MacData) -> Self {
        hex::encode_upper(h.0)
    }
}

/// What the card answered to GENERATE AC: the data the server needs to recompute the
/// cryptogram through the HSM.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardResult {
    /// Application transaction counter (9F36).
    pub atc: u16,
    /// Cryptogram information data (9F27), one byte.
    pub cid: HexArray<1>,
    /// The application cryptogram (9F26).
    pub cryptogram: HexArray<8>,
    /// The algorithm, from the IAD algorithm id.
    pub algorithm: Algorithm,
    /// The exact bytes the card MACed ([`crate::mac_data`] for the layout).
    pub mac_data: MacData,
}

impl CardResult {
    /// The cryptogram type the CID names.
    pub const fn cryptogram_type(&self) -> CryptogramType {
        let [cid] = self.cid.0;
        CryptogramType::from_cid(cid)
    }
}

/// A final entry as the agent uploads it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadEntry {
    /// The terminal that recorded it (must be the signer of the request).
    pub terminal_id: TerminalId,
    /// The terminal's sequence number, from 1, with no reuse.
    pub seq: u64,
    /// The idempotency id.
    pub idempotency_id: IdempotencyId,
    /// The settlement batch the entry belongs to.
    pub batch_no: u32,
    /// Debit or credit, and which kind.
    pub kind: EntryKind,
    /// A final state: `approved_offline`, `declined`, `voided`, `recovered`, or `recorded` (a
    /// medical debit).
    pub state: EntryState,
    /// Amount in fen (0.01 CNY), at most 999 999 999 999 (PBOC n12).
    pub amount_fen: u64,
    /// ISO 4217 numeric currency (156 for CNY).
    pub currency: u16,
    /// The PAN masked for display (first 6, last 4).
    pub pan_masked: String,
    /// The PAN (needed by the HSM to derive the card key; protected by TLS on the wire). For a
    /// medical debit, the PAN the card's certificates name (EF 0018 `5A`).
    pub pan: Pan,
    /// The PAN sequence number (`00` for a medical debit: the certificate application has none,
    /// and `00` is what EMV takes when 5F34 is absent).
    pub psn: Psn,
    /// The terminal's local date and time of the transaction.
    pub txn_time: TxnTime,
    /// The card's answer; absent for `voided` and `recovered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardResult>,
    /// For `recovered` only: the debit's ATC and the card's log record that proves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<Recovered>,
    /// For a medical debit (`medical_debit`, `recorded`) only: the cardholder's identity as the
    /// card's certificate names it and the card's signature over the entry
    /// ([`crate::medical`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medical: Option<MedicalDebit>,
}

/// The largest amount PBOC's n12 amount field can carry.
pub const MAX_AMOUNT_FEN: u64 = 999_999_999_999;

/// CNY, ISO 4217 numeric.
pub const CNY: u16 = 156;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_is_masked_in_debug_and_rejected_when_malformed() {
        let pan: Pan = "6217000010001234567".parse().unwrap();
        assert_eq!(pan.masked(), "621700*********4567");
        assert_eq!(format!("{pan:?}"), "Pan(621700*********4567)");
        assert_eq!("12345".parse::<Pan>(), Err(FieldError::Pan));
        assert_eq!("62170000100012345a7".parse::<Pan>(), Err(FieldError::Pan));
    }

    #[test]
    fn txn_time_validates_calendar() {
        assert!("20240229235959".parse::<TxnTime>().is_ok());
        assert_eq!(
            "20230229000000".parse::<TxnTime>(),
            Err(FieldError::TxnTime)
        );
        assert_eq!(
            "20241301000000".parse::<TxnTime>(),
            Err(FieldError::TxnTime)
        );
        assert_eq!("2024010100000".parse::<TxnTime>(), Err(FieldError::TxnTime));
        let t: TxnTime = "20241231120000".parse().unwrap();
        assert_eq!(t.date_bcd(), [0x24, 0x12, 0x31]);
        assert_eq!(TxnTime::from_unix(t.unix_seconds()), t);
    }

    #[test]
    fn state_machine_allows_only_documented_transitions() {
        use EntryState::*;
        let all = [
            Intent,
            ApprovedOffline,
            Declined,
            Unknown,
            Voided,
            Recovered,
            Recorded,
        ];
        let allowed = [
            (Intent, ApprovedOffline),
            (Intent, Declined),
            (Intent, Unknown),
            (Intent, Voided),
            (Intent, Recovered),
            (Unknown, ApprovedOffline),
            (Unknown, Declined),
            (Unknown, Voided),
            (Unknown, Recovered),
        ];
        for a in all {
            for b in all {
                assert_eq!(a.can_become(b), allowed.contains(&(a, b)), "{a:?} -> {b:?}");
            }
        }
        assert!(!Intent.is_final() && !Unknown.is_final());
        assert!(ApprovedOffline.is_final() && Declined.is_final() && Voided.is_final());
        assert!(Recovered.is_final() && Recovered.moved_money() && !Voided.moved_money());
        assert!(Recorded.is_final() && Recorded.moved_money());
        for k in [
            EntryKind::EcPurchase,
            EntryKind::Purchase,
            EntryKind::Refund,
            EntryKind::MedicalDebit,
        ] {
            assert_eq!(k.as_str().parse::<EntryKind>(), Ok(k));
        }
        for s in all {
            assert_eq!(s.as_str().parse::<EntryState>(), Ok(s));
        }
    }

    #[test]
    fn cid_types() {
        assert_eq!(CryptogramType::from_cid(0x40), CryptogramType::Tc);
        assert_eq!(CryptogramType::from_cid(0x00), CryptogramType::Aac);
        assert_eq!(CryptogramType::from_cid(0x80), CryptogramType::Arqc);
        assert_eq!(CryptogramType::from_cid(0xC0), CryptogramType::Reserved);
    }

    #[test]
    fn terminal_id_rules() {
        assert!("KIOSK-0001".parse::<TerminalId>().is_ok());
        assert_eq!("".parse::<TerminalId>(), Err(FieldError::TerminalId));
        assert_eq!("a b".parse::<TerminalId>(), Err(FieldError::TerminalId));
        assert_eq!(
            "x".repeat(33).parse::<TerminalId>(),
            Err(FieldError::TerminalId)
        );
    }
}
