//! The sync protocol's messages (HTTP + JSON; docs/sync-protocol.md, docs/sync-openapi.yaml)
//! and the one parser every body from outside goes through: [`parse`], with a size limit, and
//! errors that say where the JSON went wrong without repeating its content (it may hold a PAN).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::entry::{IdempotencyId, Pan, Region, TerminalId, TxnTime, UploadEntry};

/// Largest request body the server reads (4 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most entries in one upload.
pub const MAX_BATCH_ENTRIES: usize = 2000;
/// Most sequence numbers in one batch close.
pub const MAX_CLOSE_SEQS: usize = 200_000;
/// Most records in one cardholder page.
pub const MAX_CARDHOLDER_PAGE: usize = 1000;

/// Why a body was refused, one variant per cause. No variant carries the body's content.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body is larger than allowed.
    #[error("body of {len} bytes is larger than the {max} allowed")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// Not JSON (a syntax error or the body ends early).
    #[error("malformed JSON at line {line} column {column}")]
    MalformedJson {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// JSON, but a field has the wrong type or value, is missing, or is unknown.
    #[error("invalid field at line {line} column {column}")]
    InvalidField {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// Valid fields, but more items than allowed.
    #[error("{what}: {count} items, at most {max} allowed")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Items given.
        count: usize,
        /// Items allowed.
        max: usize,
    },
}

/// Limits a message checks after it has been read.
pub trait Limits {
    /// Check list lengths and the like.
    fn check_limits(&self) -> Result<(), WireError> {
        Ok(())
    }
}

/// Parse a body of at most `max` bytes as `T`, then check its limits.
pub fn parse<T: DeserializeOwned + Limits>(body: &[u8], max: usize) -> Result<T, WireError> {
    if body.len() > max {
        return Err(WireError::TooLarge {
            len: body.len(),
            max,
        });
    }
    let value: T = serde_json::from_slice(body).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        match e.classify() {
            serde_json::error::Category::Data => WireError::InvalidField { line, column },
            _ => WireError::MalformedJson { line, column },
        }
    })?;
    value.check_limits()?;
    Ok(value)
}

/// A message of the protocol: JSON both ways, with limits checked after reading.
pub trait Message: Serialize + DeserializeOwned + Limits {}

impl<T: Serialize + DeserializeOwned + Limits> Message for T {}

/// The JSON bytes of a message (serializing these types cannot fail: every map key is a
/// string; an empty body would be refused by [`parse`]).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_default()
}

/// `POST /v1/entries`: an ordered batch of final entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// Entries in ascending sequence order.
    pub entries: Vec<UploadEntry>,
}

impl Limits for UploadRequest {
    fn check_limits(&self) -> Result<(), WireError> {
        if self.entries.len() > MAX_BATCH_ENTRIES {
            return Err(WireError::TooMany {
                what: "entries",
                count: self.entries.len(),
                max: MAX_BATCH_ENTRIES,
            });
        }
        Ok(())
    }
}

/// The server's answer for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Booked now.
    Booked,
    /// Booked now without a cryptogram to verify: a `recovered` debit, proven by the card's
    /// log only. Counted apart from the verified totals.
    BookedUnverified,
    /// Booked earlier (this is a resend).
    Duplicate,
    /// Refused for good; `reason` says why. Resending gives the same answer.
    Rejected,
}

/// Why the server refuses an entry (permanently).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The HSM says the cryptogram does not verify.
    CryptogramInvalid,
    /// The MACed data's amount, currency, date, type or ATC differ from the entry's.
    DataMismatch,
    /// The cryptogram type does not fit the state (TC for approved, AAC for declined), or a
    /// voided entry carries a card result, or an approved one none.
    StateInconsistent,
    /// Not a final state.
    NotFinal,
    /// A currency other than CNY (156).
    CurrencyUnsupported,
    /// Amount zero for money that moved, or above n12.
    AmountInvalid,
    /// The masked PAN does not match the PAN.
    MaskMismatch,
    /// The entry names another terminal than the signer.
    TerminalMismatch,
    /// The sequence number or idempotency id was used before for different content.
    Conflict,
    /// A recovered debit whose evidence is incomplete or unusable (no log record where one is
    /// needed, a malformed record, a personal element in it, a note with a card number).
    EvidenceInvalid,
    /// A recovered debit claims an ATC of the card that a booked entry already used.
    AtcConflict,
    /// A medical debit's issuer certificate names a CA key the server's SSSE trust store does
    /// not have (or has expired).
    UnknownCa,
    /// A medical debit's issuer or ICC certificate does not verify for the entry's PAN, card
    /// number and social-security number (another card's certificate, an altered one, expired).
    CertificateInvalid,
    /// A medical debit's card signature over the challenge does not verify.
    CardSignatureInvalid,
    /// A medical debit for a social-security number the server has no cardholder record of.
    UnknownCardholder,
    /// A medical debit above what the cardholder's medical account has left on the server.
    MedicalOverdraft,
    /// A medical debit of a cardholder whose insurance is not `active` in the server's record
    /// (suspended, terminated): the terminal's copy of the record was stale.
    InsuranceInactive,
    /// A medical debit made with a card that was on the server's hot list at the transaction's
    /// time (China Standard Time): the terminal's hot list was stale.
    CardHotListed,
    /// A reason this client does not know (from a newer server).
    #[serde(other)]
    Other,
}

impl RejectReason {
    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CryptogramInvalid => "cryptogram_invalid",
            Self::DataMismatch => "data_mismatch",
            Self::StateInconsistent => "state_inconsistent",
            Self::NotFinal => "not_final",
            Self::CurrencyUnsupported => "currency_unsupported",
            Self::AmountInvalid => "amount_invalid",
            Self::MaskMismatch => "mask_mismatch",
            Self::TerminalMismatch => "terminal_mismatch",
            Self::Conflict => "conflict",
            Self::EvidenceInvalid => "evidence_invalid",
            Self::AtcConflict => "atc_conflict",
            Self::UnknownCa => "unknown_ca",
            Self::CertificateInvalid => "certificate_invalid",
            Self::CardSignatureInvalid => "card_signature_invalid",
            Self::UnknownCardholder => "unknown_cardholder",
            Self::MedicalOverdraft => "medical_overdraft",
            Self::InsuranceInactive => "insurance_inactive",
            Self::CardHotListed => "card_hot_listed",
            Self::Other => "other",
        }
    }

    /// From the name on the wire.
    pub fn parse(s: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(s.to_string())).unwrap_or(Self::Other)
    }
}

/// The answer for one uploaded entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryResult {
    /// Sequence number.
    pub seq: u64,
    /// Idempotency id.
    pub idempotency_id: IdempotencyId,
    /// Booked, duplicate or rejected.
    pub status: EntryStatus,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
}

/// `POST /v1/entries` answer: one result per entry, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    /// Results.
    pub results: Vec<EntryResult>,
    /// Server time (Unix seconds).
    pub server_time: i64,
}

impl Limits for UploadResponse {}

/// A signed download: `payload` is the JSON text of the content, `signature` the server's SM2
/// signature (r‖s, hex) over `SSCARD-ENVELOPE-V1\n{kind}\n{terminal}\n{payload}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEnvelope {
    /// `hotlist`, `parameters` or `cardholders`.
    pub kind: String,
    /// The JSON text signed.
    pub payload: String,
    /// SM2 signature, 128 hex digits.
    pub signature: String,
}

impl Limits for SignedEnvelope {}

/// Add or remove a card from the hot list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HotListAction {
    /// The card is lost, stolen or otherwise blocked.
    Add,
    /// The card is usable again.
    Remove,
}

/// One change of the hot list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotListChange {
    /// The version this change creates.
    pub version: u64,
    /// The card.
    pub pan: Pan,
    /// Add or remove.
    pub action: HotListAction,
    /// Why (`lost`, `stolen`, `damaged`, ...), at most 64 characters.
    pub reason: String,
}

/// The changes of the hot list from `from_version` (exclusive) to `to_version` (inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotListDelta {
    /// The version the terminal has.
    pub from_version: u64,
    /// The version after applying this delta.
    pub to_version: u64,
    /// Changes in version order.
    pub changes: Vec<HotListChange>,
}

impl Limits for HotListDelta {
    fn check_limits(&self) -> Result<(), WireError> {
        if self.changes.len() > 100_000 {
            return Err(WireError::TooMany {
                what: "hot-list changes",
                count: self.changes.len(),
                max: 100_000,
            });
        }
        Ok(())
    }
}

/// The terminal parameters: a version and name → value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ParameterSet {
    /// Version (0: none set yet).
    pub version: u64,
    /// Parameters.
    pub params: BTreeMap<String, String>,
}

impl Limits for ParameterSet {
    fn check_limits(&self) -> Result<(), WireError> {
        if self.params.len() > 1000 {
            return Err(WireError::TooMany {
                what: "parameters",
                count: self.params.len(),
                max: 1000,
            });
        }
        Ok(())
    }
}

/// A cardholder record for offline queries at the terminal.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardholderRecord {
    /// Social-security number (the 18-character citizen ID number).
    pub ssn: String,
    /// Name.
    pub name: String,
    /// Social-security card number.
    pub card_no: String,
    /// Region of the cardholder.
    pub region: Region,
    /// Insurance status (`active`, `suspended`, `terminated`, ...).
    pub insurance_status: String,
    /// Months of contributions paid.
    pub contribution_months: u32,
    /// Medical-account balance in fen.
    pub medical_balance_fen: i64,
    /// When these figures were true.
    pub as_of: TxnTime,
    /// Record version (server-assigned, increasing).
    pub version: u64,
}

impl std::fmt::Debug for CardholderRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardholderRecord")
            .field("region", &self.region)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A page of cardholder records of the terminal's region changed after `from_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardholderPage {
    /// The version the terminal has.
    pub from_version: u64,
    /// The highest version in this page (or `from_version` if empty).
    pub to_version: u64,
    /// Records in version order.
    pub records: Vec<CardholderRecord>,
    /// More pages follow.
    pub more: bool,
}

impl Limits for CardholderPage {
    fn check_limits(&self) -> Result<(), WireError> {
        if self.records.len() > MAX_CARDHOLDER_PAGE {
            return Err(WireError::TooMany {
                what: "cardholder records",
                count: self.records.len(),
                max: MAX_CARDHOLDER_PAGE,
            });
        }
        Ok(())
    }
}

/// Counts and amounts of approved money, debits and credits apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Approved debits (purchases).
    pub debit_count: u64,
    /// Their amount in fen.
    pub debit_amount: u64,
    /// Approved credits (refunds).
    pub credit_count: u64,
    /// Their amount in fen.
    pub credit_amount: u64,
}

/// Count and amount of recovered debits (proven by the card's log, no cryptogram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecoveredTotals {
    /// Recovered debits.
    pub count: u64,
    /// Their amount in fen.
    pub amount: u64,
}

/// Count and amount of medical-account debits (the money is the medical account's, not the
/// card's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MedicalTotals {
    /// Medical debits.
    pub count: u64,
    /// Their amount in fen.
    pub amount: u64,
}

/// `POST /v1/batches/close`: the terminal's totals of a settlement batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCloseRequest {
    /// The batch.
    pub batch_no: u32,
    /// The terminal's totals of its approved entries in the batch.
    pub totals: Totals,
    /// The sequence numbers of those entries.
    pub seqs: Vec<u64>,
    /// The terminal's recovered debits in the batch, outside `totals`.
    #[serde(default)]
    pub recovered: RecoveredTotals,
    /// Their sequence numbers.
    #[serde(default)]
    pub recovered_seqs: Vec<u64>,
    /// The terminal's medical-account debits in the batch, outside `totals`.
    #[serde(default)]
    pub medical: MedicalTotals,
    /// Their sequence numbers.
    #[serde(default)]
    pub medical_seqs: Vec<u64>,
}

impl Limits for BatchCloseRequest {
    fn check_limits(&self) -> Result<(), WireError> {
        for (what, list) in [
            ("seqs", &self.seqs),
            ("recovered_seqs", &self.recovered_seqs),
            ("medical_seqs", &self.medical_seqs),
        ] {
            if list.len() > MAX_CLOSE_SEQS {
                return Err(WireError::TooMany {
                    what,
                    count: list.len(),
                    max: MAX_CLOSE_SEQS,
                });
            }
        }
        Ok(())
    }
}

/// The recovered debits of a batch on both sides: the difference between the money the cards
/// moved and the verified totals, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RecoveredSummary {
    /// What the terminal said.
    pub terminal: RecoveredTotals,
    /// What the server booked unverified.
    pub server: RecoveredTotals,
    /// The sequence numbers the server booked unverified.
    pub seqs: Vec<u64>,
}

/// The medical-account debits of a batch on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MedicalSummary {
    /// What the terminal said.
    pub terminal: MedicalTotals,
    /// What the server booked.
    pub server: MedicalTotals,
    /// The sequence numbers the server booked as medical debits.
    pub seqs: Vec<u64>,
}

/// The answer to a batch close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCloseResponse {
    /// The batch.
    pub batch_no: u32,
    /// Both sides agree.
    pub balanced: bool,
    /// What the terminal said.
    pub terminal: Totals,
    /// What the server booked.
    pub server: Totals,
    /// Approved, recovered or medical on the terminal, not booked so on the server (upload them
    /// again).
    pub missing_on_server: Vec<u64>,
    /// Booked on the server as approved, recovered or medical, not listed so by the terminal.
    pub unknown_to_terminal: Vec<u64>,
    /// Recovered debits, outside `terminal` and `server`.
    #[serde(default)]
    pub recovered: RecoveredSummary,
    /// Medical-account debits, outside `terminal` and `server`.
    #[serde(default)]
    pub medical: MedicalSummary,
}

impl Limits for BatchCloseResponse {}

/// `POST /v1/register`: a terminal binds its SM2 public key with a one-time enrolment token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The terminal.
    pub terminal_id: TerminalId,
    /// Its SM2 public key X‖Y, 128 hex digits.
    pub public_key: String,
    /// The token the administrator issued for this terminal.
    pub enrollment_token: String,
}

impl Limits for RegisterRequest {}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The terminal.
    pub terminal_id: TerminalId,
    /// The terminal's region.
    pub region: Region,
    /// The server's SM2 public key X‖Y (verifies downloads), 128 hex digits.
    pub server_public_key: String,
    /// Server time.
    pub server_time: i64,
}

impl Limits for RegisterResponse {}

/// Error codes of whole requests.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: not JSON.
    MalformedJson,
    /// 400: a field of the wrong type or value.
    InvalidField,
    /// 400: too many items.
    TooMany,
    /// 413: body too large.
    TooLarge,
    /// 401: signature headers missing or malformed.
    MissingAuth,
    /// 401: the terminal is not registered.
    UnknownTerminal,
    /// 401: the signature does not verify.
    BadSignature,
    /// 401: the timestamp is outside the window (`server_time` tells the right time).
    StaleTimestamp,
    /// 409: this nonce was seen before (a replay or a duplicated delivery).
    ReplayedNonce,
    /// 403: wrong or used enrolment token.
    BadEnrollment,
    /// 409: the terminal is registered with another key.
    AlreadyRegistered,
    /// 404: no such resource.
    NotFound,
    /// 503: a dependency (database, HSM) is unavailable; retry.
    Unavailable,
    /// 500: a bug.
    Internal,
    /// A code this client does not know.
    #[serde(other)]
    Other,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The code.
    pub error: ErrorCode,
    /// A message for people.
    pub message: String,
    /// Server time, Unix seconds (lets a terminal correct its clock offset).
    pub server_time: i64,
}

impl Limits for ErrorBody {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_syntax_and_type_errors_are_told_apart() {
        assert_eq!(
            parse::<UploadRequest>(&[b' '; 11], 10),
            Err(WireError::TooLarge { len: 11, max: 10 })
        );
        assert!(matches!(
            parse::<UploadRequest>(b"{\"entries\": [", 100),
            Err(WireError::MalformedJson { .. })
        ));
        assert!(matches!(
            parse::<UploadRequest>(b"{\"entries\": 5}", 100),
            Err(WireError::InvalidField { .. })
        ));
        assert!(matches!(
            parse::<UploadRequest>(b"{\"entries\": [], \"x\": 1}", 100),
            Err(WireError::InvalidField { .. })
        ));
        assert_eq!(
            parse::<UploadRequest>(b"{\"entries\": []}", 100),
            Ok(UploadRequest { entries: vec![] })
        );
    }

    #[test]
    fn error_messages_do_not_echo_a_pan() {
        let body = br#"{"entries":[{"terminal_id":"T1","seq":1,"idempotency_id":"00000000000000000000000000000000","batch_no":1,"kind":"ec_purchase","state":"voided","amount_fen":1,"currency":156,"pan_masked":"x","pan":"62170000100012345X9","psn":"01","txn_time":"20250101000000"}]}"#;
        let e = parse::<UploadRequest>(body, 10_000).unwrap_err();
        assert!(matches!(e, WireError::InvalidField { .. }));
        assert!(!e.to_string().contains("6217"));
    }

    #[test]
    fn unknown_reason_from_newer_server_is_other() {
        let r: EntryResult = serde_json::from_str(
            r#"{"seq":1,"idempotency_id":"00000000000000000000000000000000","status":"rejected","reason":"brand_new"}"#,
        )
        .unwrap();
        assert_eq!(r.reason, Some(RejectReason::Other));
        assert_eq!(RejectReason::parse("conflict"), RejectReason::Conflict);
    }
}
