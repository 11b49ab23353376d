//! Recovered debits: a payment the card made without its cryptogram reaching the terminal, proven
//! by the card's own transaction log (docs/sync-protocol.md, "Recovered debits").
//!
//! Two ways lead here:
//!
//! - **torn debit**: the card was pulled after GENERATE AC (asking for a TC) reached it and
//!   before its answer reached the terminal. The card committed the debit, its ATC and its log
//!   record together, so at the card's next insertion the kernel's recovery
//!   (`card_core::pboc::recovery::check_debit`) finds a log record newer than the ATC recorded
//!   with the intent, with the intent's amount and date, and answers `Completed(record)`;
//! - **qPBOC declined by the terminal**: the card approved offline in its GET PROCESSING OPTIONS
//!   answer and debited its electronic-cash balance; the terminal then declined (hot list,
//!   expiry, fDDA failure). The card's money moved all the same. With the TC and its data at
//!   hand, that debit is booked `approved_offline` with the TC (docs/pboc-kernel.md, "What the
//!   ledger books"); this source is for when they are not usable.
//!
//! An operator may also settle an entry the card's state left unclear ([`RecoverySource::Operator`]).
//!
//! Nothing here is a cryptogram: a server cannot verify a recovered debit the way it verifies a
//! TC, only check that its pieces agree with each other and with the entry ([`Recovered::check`]).
//! The evidence never holds a PAN in clear: a log record with a personal element is refused,
//! and so is a note with a run of digits as long as a PAN.

use std::fmt;

use card_core::tlv::{Tag, TlvIter};
use serde::{Deserialize, Serialize};

use crate::entry::{EntryKind, TxnTime};

/// Most bytes of a log record (TLV-encoded). JR/T 0025.13 表9's recommended format comes to
/// 45 bytes of values, 64 with tags and lengths.
pub const MAX_LOG_RECORD: usize = 256;

/// Most characters of a note.
pub const MAX_NOTE_CHARS: usize = 200;

/// A run of this many digits in a note is taken for a card number and refused.
const PAN_LIKE_DIGITS: usize = 12;

/// Elements that name the cardholder or the card and never belong in evidence: track 1 (56),
/// track 2 (57), PAN (5A), cardholder name (5F20), extended name (9F0B), track 1 and 2
/// discretionary data (9F1F, 9F20), cardholder ID number and type (9F61, 9F62), qPBOC track 2
/// (9F6B).
const PERSONAL_TAGS: [u32; 10] = [
    0x56, 0x57, 0x5A, 0x5F20, 0x9F0B, 0x9F1F, 0x9F20, 0x9F61, 0x9F62, 0x9F6B,
];

/// Why evidence of a recovered debit does not hold, one variant per cause. Messages never
/// repeat a value.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// A refund (or another credit) cannot be a recovered debit.
    #[error("only a debit can be recovered")]
    NotADebit,
    /// A torn debit needs the card's log record.
    #[error("a torn debit needs the card's log record")]
    MissingLogRecord,
    /// A qPBOC debit without a log record needs the balance before and after.
    #[error("a qPBOC debit without a log record needs the balance before and after")]
    MissingBalances,
    /// An operator's resolution needs a note.
    #[error("an operator's resolution needs a note")]
    MissingNote,
    /// The note is too long, has control characters or a run of digits like a card number.
    #[error("a note is at most 200 characters, printable, without a card number")]
    Note,
    /// The log record is not a sequence of primitive TLV objects of at most 256 bytes.
    #[error("the log record is not well-formed TLV of at most 256 bytes")]
    LogRecordMalformed,
    /// The log record holds an element that names the cardholder or the card.
    #[error("the log record holds personal data (tag {0:X})")]
    PersonalData(u32),
    /// The log record lacks an element the check needs (9F02, 9A or 9F36).
    #[error("the log record lacks tag {0:X}")]
    MissingElement(u32),
    /// The logged amount differs from the entry's.
    #[error("the logged amount differs from the entry's")]
    Amount,
    /// The logged currency differs from the entry's.
    #[error("the logged currency differs from the entry's")]
    Currency,
    /// The logged date differs from the entry's.
    #[error("the logged date differs from the entry's")]
    Date,
    /// The logged transaction type does not fit the entry's kind.
    #[error("the logged transaction type does not fit the entry's kind")]
    TransactionType,
    /// The logged ATC differs from the recovered ATC.
    #[error("the logged ATC differs from the recovered one")]
    Atc,
    /// The ATCs are out of order: the recovered one must be above the ATC before and not above
    /// the ATC read afterwards.
    #[error("the ATC before, the recovered ATC and the ATC after are out of order")]
    AtcOrder,
    /// Nothing else ran on the card between before and after, yet the balance did not fall by
    /// the amount.
    #[error("the balance did not fall by the amount")]
    Balance,
}

impl EvidenceError {
    /// The evidence is complete but says something else than the entry (a server answers
    /// `data_mismatch`), rather than incomplete or unusable (`evidence_invalid`).
    pub const fn is_mismatch(self) -> bool {
        matches!(
            self,
            Self::Amount
                | Self::Currency
                | Self::Date
                | Self::TransactionType
                | Self::Atc
                | Self::AtcOrder
                | Self::Balance
        )
    }
}

/// How a debit came to be recorded without its cryptogram.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoverySource {
    /// The card was pulled after the debiting GENERATE AC; its log, read at its next insertion,
    /// shows the debit.
    TornDebit,
    /// qPBOC: the card approved in its GPO answer and debited; the terminal declined after, and
    /// the TC is not usable (with a usable TC the debit is booked `approved_offline`).
    QpbocTerminalDeclined,
    /// An operator settled an entry the card's state left unclear (the note says on what).
    Operator,
}

impl RecoverySource {
    /// The name stored and sent.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TornDebit => "torn_debit",
            Self::QpbocTerminalDeclined => "qpboc_terminal_declined",
            Self::Operator => "operator",
        }
    }
}

impl std::str::FromStr for RecoverySource {
    type Err = crate::entry::FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "torn_debit" => Ok(Self::TornDebit),
            "qpboc_terminal_declined" => Ok(Self::QpbocTerminalDeclined),
            "operator" => Ok(Self::Operator),
            _ => Err(crate::entry::FieldError::Kind),
        }
    }
}

/// One record of the card's transaction log, as the elements of its log format (9F4F) with
/// their values. On the wire: upper-case hex of the elements as BER-TLV, in the card's order.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LogRecordData {
    fields: Vec<(u32, Vec<u8>)>,
}

impl LogRecordData {
    /// From (tag, value) pairs in the card's order. Checked when the evidence is checked.
    pub fn from_fields(fields: impl IntoIterator<Item = (u32, Vec<u8>)>) -> Self {
        Self {
            fields: fields.into_iter().collect(),
        }
    }

    /// The (tag, value) pairs.
    pub fn fields(&self) -> &[(u32, Vec<u8>)] {
        &self.fields
    }

    /// The value of `tag`.
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_slice())
    }

    /// The BER-TLV bytes (what goes on the wire, in hex).
    pub fn to_tlv(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, value) in &self.fields {
            out.extend_from_slice(Tag::new(*tag).bytes().as_slice());
            // Lengths above 0xFFFF cannot occur within MAX_LOG_RECORD; a longer value would
            // fail the check anyway.
            let _ = card_core::tlv::write_length(&mut out, value.len());
            out.extend_from_slice(value);
        }
        out
    }

    /// Parse BER-TLV bytes: primitive objects only, at most [`MAX_LOG_RECORD`] bytes, and
    /// encoded the one way [`Self::to_tlv`] encodes them.
    pub fn from_tlv(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.is_empty() || bytes.len() > MAX_LOG_RECORD {
            return Err(EvidenceError::LogRecordMalformed);
        }
        let mut fields = Vec::new();
        for item in TlvIter::new(bytes) {
            let item = item.map_err(|_| EvidenceError::LogRecordMalformed)?;
            if item.tag.is_constructed() {
                return Err(EvidenceError::LogRecordMalformed);
            }
            fields.push((item.tag.value(), item.value.to_vec()));
        }
        let r = Self { fields };
        if r.to_tlv() != bytes {
            return Err(EvidenceError::LogRecordMalformed);
        }
        Ok(r)
    }

    /// Amount, authorised (9F02), in fen.
    pub fn amount_fen(&self) -> Option<u64> {
        bcd_number(self.get(0x9F02)?)
    }

    /// Application transaction counter (9F36).
    pub fn atc(&self) -> Option<u16> {
        self.get(0x9F36)
            .and_then(|v| <[u8; 2]>::try_from(v).ok())
            .map(u16::from_be_bytes)
    }

    /// The shape checks: size, primitive tags, no personal element.
    fn check_shape(&self) -> Result<(), EvidenceError> {
        if self.fields.is_empty() || self.to_tlv().len() > MAX_LOG_RECORD {
            return Err(EvidenceError::LogRecordMalformed);
        }
        for (tag, _) in &self.fields {
            let t = Tag::try_from_u32(*tag).ok_or(EvidenceError::LogRecordMalformed)?;
            if t.is_constructed() {
                return Err(EvidenceError::LogRecordMalformed);
            }
            if PERSONAL_TAGS.contains(tag) {
                return Err(EvidenceError::PersonalData(*tag));
            }
        }
        Ok(())
    }
}

impl From<&card_core::pboc::ec::LogRecord> for LogRecordData {
    fn from(r: &card_core::pboc::ec::LogRecord) -> Self {
        Self::from_fields(r.fields.iter().map(|(t, v)| (t.value(), v.clone())))
    }
}

impl fmt::Debug for LogRecordData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogRecordData({})", hex::encode_upper(self.to_tlv()))
    }
}

impl Serialize for LogRecordData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(self.to_tlv()))
    }
}

impl<'de> Deserialize<'de> for LogRecordData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > MAX_LOG_RECORD * 2 {
            return Err(serde::de::Error::custom("log record too long"));
        }
        let bytes = hex::decode(&s).map_err(|_| serde::de::Error::custom("log record hex"))?;
        Self::from_tlv(&bytes).map_err(|_| serde::de::Error::custom("log record TLV"))
    }
}

/// What proves a recovered debit: the card's log record and what the check saw.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryEvidence {
    /// How the debit came to lack its cryptogram.
    pub source: RecoverySource,
    /// The card's log record of the debit (required for a torn debit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_record: Option<LogRecordData>,
    /// The card's ATC before the transaction, as recorded with the intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atc_before: Option<u16>,
    /// The card's ATC when the evidence was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atc_after: Option<u16>,
    /// The electronic-cash balance (9F79) before, in fen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_before_fen: Option<u64>,
    /// The electronic-cash balance when the evidence was taken, in fen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_after_fen: Option<u64>,
    /// Why the terminal declined (qPBOC), or what an operator based the resolution on: at most
    /// 200 characters, never a card number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RecoveryEvidence {
    /// Evidence of a torn debit from the log record the kernel's recovery answered with
    /// (`Recovery::Completed`), with no further facts; set them on the result.
    pub fn torn_debit(log: &card_core::pboc::ec::LogRecord) -> Self {
        Self {
            source: RecoverySource::TornDebit,
            log_record: Some(log.into()),
            atc_before: None,
            atc_after: None,
            balance_before_fen: None,
            balance_after_fen: None,
            note: None,
        }
    }
}

/// A debit proven by the card's own log, without a cryptogram: the ledger's `recovered` outcome
/// and the `recovered` field of an uploaded entry.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovered {
    /// The ATC of the debit (the log record's 9F36).
    pub atc: u16,
    /// What proves it.
    pub evidence: RecoveryEvidence,
}

impl Recovered {
    /// From evidence whose log record gives the ATC; `None` if it has no log record or the
    /// record no ATC.
    pub fn from_evidence(evidence: RecoveryEvidence) -> Option<Self> {
        let atc = evidence.log_record.as_ref()?.atc()?;
        Some(Self { atc, evidence })
    }

    /// Check the evidence against itself and against the entry it settles: a debit; what its
    /// source needs is there; the log record is well formed, holds no personal element, and
    /// its amount (9F02), date (9A) and ATC (9F36), and its currency (5F2A) and transaction
    /// type (9C) when logged, are the entry's; ATC before < ATC ≤ ATC after; and when nothing
    /// else ran on the card in between (ATC before + 1 = ATC = ATC after), the balance fell by
    /// exactly the amount.
    pub fn check(
        &self,
        amount_fen: u64,
        currency: u16,
        txn_time: &TxnTime,
        kind: EntryKind,
    ) -> Result<(), EvidenceError> {
        let e = &self.evidence;
        if kind.is_credit() {
            return Err(EvidenceError::NotADebit);
        }
        if let Some(n) = &e.note {
            check_note(n)?;
        }
        match e.source {
            RecoverySource::TornDebit if e.log_record.is_none() => {
                return Err(EvidenceError::MissingLogRecord);
            }
            RecoverySource::QpbocTerminalDeclined
                if e.log_record.is_none()
                    && (e.balance_before_fen.is_none() || e.balance_after_fen.is_none()) =>
            {
                return Err(EvidenceError::MissingBalances);
            }
            RecoverySource::Operator if e.note.as_deref().is_none_or(|n| n.trim().is_empty()) => {
                return Err(EvidenceError::MissingNote);
            }
            _ => {}
        }
        if let Some(log) = &e.log_record {
            log.check_shape()?;
            let amount = log
                .get(0x9F02)
                .ok_or(EvidenceError::MissingElement(0x9F02))?;
            if bcd_number(amount) != Some(amount_fen) {
                return Err(EvidenceError::Amount);
            }
            let date = log.get(0x9A).ok_or(EvidenceError::MissingElement(0x9A))?;
            if date != txn_time.date_bcd() {
                return Err(EvidenceError::Date);
            }
            let atc = log
                .get(0x9F36)
                .ok_or(EvidenceError::MissingElement(0x9F36))?;
            if atc != self.atc.to_be_bytes() {
                return Err(EvidenceError::Atc);
            }
            if let Some(c) = log.get(0x5F2A)
                && bcd_number(c) != Some(u64::from(currency))
            {
                return Err(EvidenceError::Currency);
            }
            if let Some(t) = log.get(0x9C)
                && t != [kind.transaction_type()]
            {
                return Err(EvidenceError::TransactionType);
            }
        }
        if e.atc_before.is_some_and(|b| b >= self.atc) || e.atc_after.is_some_and(|a| a < self.atc)
        {
            return Err(EvidenceError::AtcOrder);
        }
        let nothing_else_ran = e.atc_before.is_some()
            && e.atc_before == self.atc.checked_sub(1)
            && e.atc_after == Some(self.atc);
        let qpboc_without_log =
            e.source == RecoverySource::QpbocTerminalDeclined && e.log_record.is_none();
        if let (Some(before), Some(after)) = (e.balance_before_fen, e.balance_after_fen)
            && (nothing_else_ran || qpboc_without_log)
            && before.checked_sub(amount_fen) != Some(after)
        {
            return Err(EvidenceError::Balance);
        }
        Ok(())
    }
}

/// A BCD number (`None` if a nibble is not a digit).
fn bcd_number(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, b| {
        let (hi, lo) = (b >> 4, b & 0x0f);
        if hi > 9 || lo > 9 {
            return None;
        }
        acc.checked_mul(100)?
            .checked_add(u64::from(hi) * 10 + u64::from(lo))
    })
}

/// A note is at most [`MAX_NOTE_CHARS`] characters, without control characters, and without a
/// run of 12 or more digits, spaces and dashes aside (a card number typed into it).
pub fn check_note(note: &str) -> Result<(), EvidenceError> {
    if note.chars().count() > MAX_NOTE_CHARS || note.chars().any(char::is_control) {
        return Err(EvidenceError::Note);
    }
    let mut run = 0usize;
    for c in note.chars() {
        if c.is_ascii_digit() {
            run += 1;
            if run >= PAN_LIKE_DIGITS {
                return Err(EvidenceError::Note);
            }
        } else if c != ' ' && c != '-' {
            run = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac_data;

    fn log(amount: u64, date: [u8; 3], atc: u16) -> LogRecordData {
        LogRecordData::from_fields([
            (0x9A, date.to_vec()),
            (0x9F21, vec![0x10, 0x15, 0x00]),
            (0x9F02, mac_data::to_bcd(amount, 6)),
            (0x9F03, vec![0; 6]),
            (0x9F1A, vec![0x01, 0x56]),
            (0x5F2A, vec![0x01, 0x56]),
            (0x9F4E, vec![0; 20]),
            (0x9C, vec![0x00]),
            (0x9F36, atc.to_be_bytes().to_vec()),
        ])
    }

    fn torn(amount: u64, atc: u16) -> Recovered {
        Recovered {
            atc,
            evidence: RecoveryEvidence {
                source: RecoverySource::TornDebit,
                log_record: Some(log(amount, [0x25, 0x03, 0x01], atc)),
                atc_before: Some(atc - 1),
                atc_after: Some(atc),
                balance_before_fen: Some(50_000),
                balance_after_fen: Some(50_000 - amount),
                note: None,
            },
        }
    }

    #[test]
    fn a_consistent_torn_debit_checks_and_each_disagreement_is_named() {
        let t: TxnTime = "20250301101500".parse().unwrap();
        let k = EntryKind::EcPurchase;
        let r = torn(150, 9);
        assert_eq!(r.check(150, 156, &t, k), Ok(()));
        assert_eq!(r.check(151, 156, &t, k), Err(EvidenceError::Amount));
        assert_eq!(r.check(150, 840, &t, k), Err(EvidenceError::Currency));
        let other_day: TxnTime = "20250302101500".parse().unwrap();
        assert_eq!(r.check(150, 156, &other_day, k), Err(EvidenceError::Date));
        assert_eq!(
            r.check(150, 156, &t, EntryKind::Refund),
            Err(EvidenceError::NotADebit)
        );
        let mut wrong_atc = r.clone();
        wrong_atc.atc = 10;
        wrong_atc.evidence.atc_after = Some(10);
        assert_eq!(wrong_atc.check(150, 156, &t, k), Err(EvidenceError::Atc));
        let mut order = r.clone();
        order.evidence.atc_before = Some(9);
        assert_eq!(order.check(150, 156, &t, k), Err(EvidenceError::AtcOrder));
        let mut balance = r.clone();
        balance.evidence.balance_after_fen = Some(50_000);
        assert_eq!(balance.check(150, 156, &t, k), Err(EvidenceError::Balance));
        // Another transaction since: the balance is no longer comparable.
        balance.evidence.atc_after = Some(11);
        assert_eq!(balance.check(150, 156, &t, k), Ok(()));
        let mut no_log = r.clone();
        no_log.evidence.log_record = None;
        assert_eq!(
            no_log.check(150, 156, &t, k),
            Err(EvidenceError::MissingLogRecord)
        );
        let mut pan = r.clone();
        pan.evidence.log_record = Some(LogRecordData::from_fields(
            log(150, [0x25, 0x03, 0x01], 9)
                .fields()
                .iter()
                .cloned()
                .chain([(0x5A, vec![0x62, 0x17, 0x00, 0x00, 0x10, 0x00, 0x12, 0x34])]),
        ));
        assert_eq!(
            pan.check(150, 156, &t, k),
            Err(EvidenceError::PersonalData(0x5A))
        );
    }

    #[test]
    fn qpboc_and_operator_sources_need_their_own_facts() {
        let t: TxnTime = "20250301101500".parse().unwrap();
        let k = EntryKind::EcPurchase;
        let mut q = torn(200, 4);
        q.evidence.source = RecoverySource::QpbocTerminalDeclined;
        q.evidence.log_record = None;
        q.evidence.atc_before = None;
        q.evidence.note = Some("hot list".into());
        assert_eq!(q.check(200, 156, &t, k), Ok(()));
        q.evidence.balance_after_fen = Some(49_900);
        assert_eq!(q.check(200, 156, &t, k), Err(EvidenceError::Balance));
        q.evidence.balance_after_fen = None;
        assert_eq!(
            q.check(200, 156, &t, k),
            Err(EvidenceError::MissingBalances)
        );
        let op = Recovered {
            atc: 12,
            evidence: RecoveryEvidence {
                source: RecoverySource::Operator,
                log_record: None,
                atc_before: None,
                atc_after: None,
                balance_before_fen: None,
                balance_after_fen: None,
                note: None,
            },
        };
        assert_eq!(op.check(1, 156, &t, k), Err(EvidenceError::MissingNote));
        let mut op = op;
        op.evidence.note = Some("card log printed at counter 3, ticket 2025-118".into());
        assert_eq!(op.check(1, 156, &t, k), Ok(()));
        op.evidence.note = Some("card 6217 0000 1000 1234".into());
        assert_eq!(op.check(1, 156, &t, k), Err(EvidenceError::Note));
    }

    #[test]
    fn log_records_round_trip_as_canonical_tlv_hex() {
        let l = log(150, [0x25, 0x03, 0x01], 9);
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.starts_with("\"9A03250301"), "{json}");
        let back: LogRecordData = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.atc(), Some(9));
        assert_eq!(back.amount_fen(), Some(150));
        // Long-form length where the short one fits, a constructed object, trailing garbage.
        for bad in ["\"9A8103250301\"", "\"70039A0100\"", "\"9A032503\"", "\"\""] {
            assert!(serde_json::from_str::<LogRecordData>(bad).is_err(), "{bad}");
        }
    }
}
