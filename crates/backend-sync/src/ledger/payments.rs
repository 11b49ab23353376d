//! Payments, write-ahead: [`Ledger::begin_payment`] appends the intent (and commits it to
//! disk) before the kernel sends the card command that can debit; [`Ledger::record_outcome`]
//! appends what happened after. Neither ever updates or deletes a row (the schema's triggers
//! refuse it); an entry's state is its latest outcome, or `intent` if it has none.
//!
//! A debit whose cryptogram never reached the terminal is recorded as [`Outcome::Recovered`],
//! with the card's log record as evidence; a recovery the card's state does not settle leaves
//! the entry `unknown` with a note ([`Outcome::Unclear`]) for an operator
//! (`sync-agent unresolved`, `sync-agent resolve`).

use rusqlite::{OptionalExtension, params};

use super::recovery_facts::RecoveryFacts;
use super::{Ledger, LedgerError, state_from_db};
use crate::clock;
use crate::entry::{
    CardResult, CryptogramType, EntryKind, EntryState, HexArray, IdempotencyId, MAX_AMOUNT_FEN,
    MacData, Pan, Psn, TxnTime, UploadEntry,
};
use crate::recovery::{self, LogRecordData, Recovered, RecoveryEvidence, RecoverySource};

/// What the kernel knows before the card command.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// Kind.
    pub kind: EntryKind,
    /// Amount in fen, 1 to 999 999 999 999.
    pub amount_fen: u64,
    /// Currency (156).
    pub currency: u16,
    /// The card's PAN.
    pub pan: Pan,
    /// The card's PAN sequence number.
    pub psn: Psn,
    /// The terminal's local transaction time.
    pub txn_time: TxnTime,
}

/// The intent as written: its sequence number and idempotency id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    /// Sequence number.
    pub seq: u64,
    /// Idempotency id.
    pub idempotency_id: IdempotencyId,
    /// Batch it belongs to.
    pub batch_no: u32,
}

/// How a payment ended (or that it is in doubt).
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The card answered with a TC.
    Approved(CardResult),
    /// The card answered with an AAC.
    Declined(CardResult),
    /// The card was pulled after the command: recover later.
    Unknown,
    /// The debiting command never took effect; `note` says why.
    Voided {
        /// Why.
        note: String,
    },
    /// The card debited but its cryptogram never reached the terminal; the card's log proves
    /// the debit (a torn GENERATE AC found at the next insert, a qPBOC debit the terminal
    /// declined after, or an operator's resolution). Final, uploaded, booked unverified.
    Recovered(Recovered),
    /// Recovery looked at the card and could not settle the entry (the card's ATC, balance and
    /// log disagree or are missing): the entry becomes or stays `unknown`, with `note` for an
    /// operator. Allowed from `intent` and `unknown`.
    Unclear {
        /// What recovery found (at most 200 characters, never a card number).
        note: String,
    },
}

impl Outcome {
    /// The state the entry has after this outcome.
    pub fn state(&self) -> EntryState {
        match self {
            Self::Approved(_) => EntryState::ApprovedOffline,
            Self::Declined(_) => EntryState::Declined,
            Self::Unknown | Self::Unclear { .. } => EntryState::Unknown,
            Self::Voided { .. } => EntryState::Voided,
            Self::Recovered(_) => EntryState::Recovered,
        }
    }
}

/// What an operator found about an entry recovery could not settle (the card's log printed at a
/// counter reader, the issuer's records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorFinding {
    /// The card was not debited: the entry becomes `voided`.
    NotDebited,
    /// The card was debited with this ATC: the entry becomes `recovered` (booked unverified).
    Debited {
        /// The debit's ATC.
        atc: u16,
        /// The card's log record of the debit, if the operator read it.
        log_record: Option<LogRecordData>,
    },
}

/// An entry as the ledger holds it, without the PAN in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Sequence number.
    pub seq: u64,
    /// Idempotency id.
    pub idempotency_id: IdempotencyId,
    /// Batch.
    pub batch_no: u32,
    /// Kind.
    pub kind: EntryKind,
    /// Amount in fen.
    pub amount_fen: u64,
    /// Currency.
    pub currency: u16,
    /// Masked PAN.
    pub pan_masked: String,
    /// Transaction time.
    pub txn_time: TxnTime,
    /// Current state.
    pub state: EntryState,
    /// The card's answer, if any.
    pub card: Option<CardResult>,
    /// For `recovered`: the debit's ATC and its evidence.
    pub recovered: Option<Recovered>,
    /// The latest outcome's note (why voided, what an unclear recovery found).
    pub note: Option<String>,
    /// Unix seconds the intent was written.
    pub created_at: i64,
}

pub(crate) fn pan_aad(seq: u64) -> Vec<u8> {
    format!("entries.pan:{seq}").into_bytes()
}

pub(crate) fn psn_aad(seq: u64) -> Vec<u8> {
    format!("entries.psn:{seq}").into_bytes()
}

pub(crate) const ENTRY_COLUMNS: &str = "e.seq, e.idempotency_id, e.batch_no, e.kind, e.amount_fen, \
     e.currency, e.pan_masked, e.txn_time, e.created_at, \
     o.state, o.atc, o.cid, o.cryptogram, o.algorithm, o.mac_data, o.note, o.evidence";

/// Columns of [`ENTRY_COLUMNS`]; a query may select more after them.
pub(crate) const ENTRY_COLUMN_COUNT: usize = 17;

/// The latest outcome of each entry, joined (LEFT JOIN: none means `intent`).
pub(crate) const ENTRY_FROM: &str = "FROM entries e LEFT JOIN outcomes o ON o.id = \
     (SELECT MAX(id) FROM outcomes WHERE seq = e.seq)";

pub(crate) fn row_to_entry(r: &rusqlite::Row<'_>) -> Result<LedgerEntry, LedgerError> {
    let seq: i64 = r.get(0)?;
    let idem: String = r.get(1)?;
    let batch: i64 = r.get(2)?;
    let kind: String = r.get(3)?;
    let amount: i64 = r.get(4)?;
    let currency: i64 = r.get(5)?;
    let state: Option<String> = r.get(9)?;
    let state = match state {
        Some(s) => state_from_db(&s)?,
        None => EntryState::Intent,
    };
    let atc: Option<i64> = r.get(10)?;
    let cid: Option<i64> = r.get(11)?;
    let cryptogram: Option<String> = r.get(12)?;
    let algorithm: Option<String> = r.get(13)?;
    let mac_data: Option<String> = r.get(14)?;
    let card = match (atc, cid, cryptogram, algorithm, mac_data) {
        (Some(atc), Some(cid), Some(c), Some(a), Some(m)) => Some(CardResult {
            atc: u16::try_from(atc).map_err(|_| LedgerError::Corrupt("atc"))?,
            cid: HexArray([u8::try_from(cid).map_err(|_| LedgerError::Corrupt("cid"))?]),
            cryptogram: HexArray::try_from(c)?,
            algorithm: a.parse()?,
            mac_data: MacData::try_from(m)?,
        }),
        _ => None,
    };
    let evidence: Option<String> = r.get(16)?;
    let recovered = match (state, evidence, atc) {
        (EntryState::Recovered, Some(json), Some(atc)) => Some(Recovered {
            atc: u16::try_from(atc).map_err(|_| LedgerError::Corrupt("atc"))?,
            evidence: serde_json::from_str::<RecoveryEvidence>(&json)
                .map_err(|_| LedgerError::Corrupt("outcomes.evidence"))?,
        }),
        (EntryState::Recovered, _, _) => return Err(LedgerError::Corrupt("outcomes.evidence")),
        _ => None,
    };
    Ok(LedgerEntry {
        seq: u64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?,
        idempotency_id: idem.parse()?,
        batch_no: u32::try_from(batch).map_err(|_| LedgerError::Corrupt("batch_no"))?,
        kind: kind.parse()?,
        amount_fen: u64::try_from(amount).map_err(|_| LedgerError::Corrupt("amount"))?,
        currency: u16::try_from(currency).map_err(|_| LedgerError::Corrupt("currency"))?,
        pan_masked: r.get(6)?,
        txn_time: TxnTime::try_from(r.get::<_, String>(7)?)?,
        state,
        card,
        recovered,
        note: r.get(15)?,
        created_at: r.get(8)?,
    })
}

fn to_i64(v: u64) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::Amount)
}

impl Ledger {
    /// Write the intent of a payment, durably, before the card command that can debit. Refuses
    /// a card on the hot list and an amount out of range.
    pub fn begin_payment(&mut self, p: &NewPayment) -> Result<Intent, LedgerError> {
        self.begin_payment_with(p, None)
    }

    /// [`Self::begin_payment`], with the facts the recovery of a torn debit needs written in the
    /// same transaction ([`RecoveryFacts`]).
    pub fn begin_payment_with(
        &mut self,
        p: &NewPayment,
        facts: Option<&RecoveryFacts>,
    ) -> Result<Intent, LedgerError> {
        self.begin_payment_inner(p, facts, None)
    }

    /// [`Self::begin_payment_with`], with the point-of-sale system's reference written in the
    /// same transaction: a reference another entry already has is refused
    /// ([`LedgerError::ReferenceUsed`]) before anything is written, so one reference debits at
    /// most once ([`super::client_refs`]).
    pub fn begin_payment_referenced(
        &mut self,
        p: &NewPayment,
        facts: Option<&RecoveryFacts>,
        client: &super::client_refs::ClientRef<'_>,
    ) -> Result<Intent, LedgerError> {
        self.begin_payment_inner(p, facts, Some(client))
    }

    fn begin_payment_inner(
        &mut self,
        p: &NewPayment,
        facts: Option<&RecoveryFacts>,
        client: Option<&super::client_refs::ClientRef<'_>>,
    ) -> Result<Intent, LedgerError> {
        if let Some(c) = client
            && !super::client_refs::valid_reference(c.reference)
        {
            return Err(LedgerError::Reference);
        }
        if p.amount_fen == 0 || p.amount_fen > MAX_AMOUNT_FEN {
            return Err(LedgerError::Amount);
        }
        if p.kind == EntryKind::MedicalDebit {
            // No card command can tear a medical debit: it is recorded final at once, with its
            // evidence (`Ledger::record_medical_debit`).
            return Err(LedgerError::KindNotAllowed);
        }
        self.hotlist_check(&p.pan)?;
        let idempotency_id = IdempotencyId::generate().map_err(|_| LedgerError::Corrupt("rng"))?;
        let pan_index = self.key().blind_index("pan", p.pan.expose());
        let now = clock::unix_now();
        let key = &self.key;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<i64> = tx
            .prepare_cached("SELECT MAX(seq) FROM entries")?
            .query_row([], |r| r.get(0))?;
        let seq = u64::try_from(last.unwrap_or(0))
            .map_err(|_| LedgerError::Corrupt("seq"))?
            .saturating_add(1);
        let batch_no = super::batches::current_batch_in(&tx, now)?;
        let pan_enc = key.seal_str(&pan_aad(seq), p.pan.expose())?;
        let psn_enc = key.seal_str(&psn_aad(seq), p.psn.as_str())?;
        tx.prepare_cached(
            "INSERT INTO entries (seq, idempotency_id, batch_no, kind, amount_fen, currency,
                pan_masked, pan_index, pan_enc, psn_enc, txn_time, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            to_i64(seq)?,
            idempotency_id.to_hex(),
            batch_no,
            p.kind.as_str(),
            to_i64(p.amount_fen)?,
            p.currency,
            p.pan.masked(),
            pan_index.as_slice(),
            pan_enc,
            psn_enc,
            p.txn_time.as_str(),
            now
        ])?;
        if let Some(f) = facts {
            super::recovery_facts::insert(&tx, key, seq, f)?;
        }
        if let Some(c) = client {
            super::client_refs::insert(&tx, key, seq, c)?;
        }
        tx.commit()?;
        Ok(Intent {
            seq,
            idempotency_id,
            batch_no,
        })
    }

    /// Append the outcome of a payment. The state machine of [`EntryState::can_become`] is
    /// enforced (and [`Outcome::Unclear`] may also follow `unknown`), the cryptogram type must
    /// fit (TC for approved, AAC for declined), and a recovered debit's evidence must agree
    /// with the entry ([`Recovered::check`]). A final outcome queues the entry for upload in
    /// the same transaction.
    pub fn record_outcome(&mut self, seq: u64, outcome: &Outcome) -> Result<(), LedgerError> {
        let to = outcome.state();
        let note = match outcome {
            Outcome::Voided { note } | Outcome::Unclear { note } => Some(note.as_str()),
            Outcome::Recovered(r) => r.evidence.note.as_deref(),
            _ => None,
        };
        if let Some(n) = note {
            recovery::check_note(n).map_err(|source| LedgerError::Evidence { seq, source })?;
        }
        let card = match outcome {
            Outcome::Approved(c) => {
                if c.cryptogram_type() != CryptogramType::Tc {
                    return Err(LedgerError::CryptogramType {
                        seq,
                        to: to.as_str(),
                    });
                }
                Some(c)
            }
            Outcome::Declined(c) => {
                if c.cryptogram_type() != CryptogramType::Aac {
                    return Err(LedgerError::CryptogramType {
                        seq,
                        to: to.as_str(),
                    });
                }
                Some(c)
            }
            Outcome::Unknown
            | Outcome::Voided { .. }
            | Outcome::Recovered(_)
            | Outcome::Unclear { .. } => None,
        };
        let (note, recovered) = match outcome {
            Outcome::Voided { note } | Outcome::Unclear { note } => (Some(note.as_str()), None),
            Outcome::Recovered(r) => (None, Some(r)),
            _ => (None, None),
        };
        let evidence = recovered
            .map(|r| serde_json::to_string(&r.evidence).map_err(|_| LedgerError::Encoding))
            .transpose()?;
        let now = clock::unix_now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seq_i = to_i64(seq)?;
        let entry: Option<(String, i64, i64, String)> = tx
            .query_row(
                "SELECT kind, amount_fen, currency, txn_time FROM entries WHERE seq = ?1",
                params![seq_i],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((kind, amount, currency, txn_time)) = entry else {
            return Err(LedgerError::NoSuchEntry(seq));
        };
        if let Some(r) = recovered {
            let kind: EntryKind = kind.parse()?;
            let amount = u64::try_from(amount).map_err(|_| LedgerError::Corrupt("amount"))?;
            let currency = u16::try_from(currency).map_err(|_| LedgerError::Corrupt("currency"))?;
            r.check(amount, currency, &TxnTime::try_from(txn_time)?, kind)
                .map_err(|source| LedgerError::Evidence { seq, source })?;
        }
        let current: Option<String> = tx
            .query_row(
                "SELECT state FROM outcomes WHERE seq = ?1 ORDER BY id DESC LIMIT 1",
                params![seq_i],
                |r| r.get(0),
            )
            .optional()?;
        let from = match current {
            Some(s) => state_from_db(&s)?,
            None => EntryState::Intent,
        };
        let renote = from == EntryState::Unknown && matches!(outcome, Outcome::Unclear { .. });
        if !from.can_become(to) && !renote {
            return Err(LedgerError::Transition {
                seq,
                from: from.as_str(),
                to: to.as_str(),
            });
        }
        tx.execute(
            "INSERT INTO outcomes (seq, state, atc, cid, cryptogram, algorithm, mac_data, note,
                recorded_at, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                seq_i,
                to.as_str(),
                card.map(|c| c.atc).or(recovered.map(|r| r.atc)),
                card.map(|c| c.cid.0[0]),
                card.map(|c| String::from(c.cryptogram)),
                card.map(|c| c.algorithm.as_str()),
                card.map(|c| String::from(c.mac_data.clone())),
                note,
                now,
                evidence
            ],
        )?;
        if to.is_final() {
            tx.execute(
                "INSERT INTO uploads (seq, state, attempts, updated_at) VALUES (?1, 'pending', 0, ?2)",
                params![seq_i, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Settle an entry still `intent` or `unknown` by an operator's finding: `voided`, or
    /// `recovered` with [`RecoverySource::Operator`] evidence (checked like any other). `note`
    /// says what the finding rests on (required; never a card number). Returns the new state.
    pub fn resolve_by_operator(
        &mut self,
        seq: u64,
        finding: &OperatorFinding,
        note: &str,
    ) -> Result<EntryState, LedgerError> {
        let outcome = match finding {
            OperatorFinding::NotDebited => Outcome::Voided {
                note: format!("operator: {note}"),
            },
            OperatorFinding::Debited { atc, log_record } => Outcome::Recovered(Recovered {
                atc: *atc,
                evidence: RecoveryEvidence {
                    source: RecoverySource::Operator,
                    log_record: log_record.clone(),
                    atc_before: None,
                    atc_after: None,
                    balance_before_fen: None,
                    balance_after_fen: None,
                    note: Some(note.to_string()),
                },
            }),
        };
        if note.trim().is_empty() {
            return Err(LedgerError::Evidence {
                seq,
                source: recovery::EvidenceError::MissingNote,
            });
        }
        self.record_outcome(seq, &outcome)?;
        Ok(outcome.state())
    }

    /// One entry, or `None`.
    pub fn entry(&self, seq: u64) -> Result<Option<LedgerEntry>, LedgerError> {
        let sql = format!("SELECT {ENTRY_COLUMNS} {ENTRY_FROM} WHERE e.seq = ?1");
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![to_i64(seq)?])?;
        match rows.next()? {
            Some(r) => Ok(Some(row_to_entry(r)?)),
            None => Ok(None),
        }
    }

    /// All entries in sequence order (for reports and tests; a kiosk's ledger is small).
    pub fn entries(&self) -> Result<Vec<LedgerEntry>, LedgerError> {
        let sql = format!("SELECT {ENTRY_COLUMNS} {ENTRY_FROM} ORDER BY e.seq");
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(row_to_entry(r)?);
        }
        Ok(out)
    }

    /// Sequence numbers of entries still `intent` or `unknown` (to recover at the next insert of
    /// their card).
    pub fn unresolved(&self) -> Result<Vec<u64>, LedgerError> {
        let sql = format!(
            "SELECT e.seq {ENTRY_FROM} WHERE o.state IS NULL OR o.state = 'unknown' ORDER BY e.seq"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let seqs = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        seqs.into_iter()
            .map(|s| u64::try_from(s).map_err(|_| LedgerError::Corrupt("seq")))
            .collect()
    }

    /// The full upload form of an entry (PAN decrypted), if it is final.
    pub(crate) fn upload_form(
        &self,
        e: LedgerEntry,
        pan_enc: &[u8],
        psn_enc: &[u8],
        medical_enc: Option<&[u8]>,
    ) -> Result<UploadEntry, LedgerError> {
        let pan = self.key().open_str(&pan_aad(e.seq), pan_enc)?;
        let psn = self.key().open_str(&psn_aad(e.seq), psn_enc)?;
        let medical = medical_enc
            .map(|sealed| super::medical::open_medical(self.key(), e.seq, sealed))
            .transpose()?;
        Ok(UploadEntry {
            terminal_id: self.terminal().clone(),
            seq: e.seq,
            idempotency_id: e.idempotency_id,
            batch_no: e.batch_no,
            kind: e.kind,
            state: e.state,
            amount_fen: e.amount_fen,
            currency: e.currency,
            pan_masked: e.pan_masked,
            pan: pan.as_str().parse()?,
            psn: psn.as_str().parse()?,
            txn_time: e.txn_time,
            card: e.card,
            recovered: e.recovered,
            medical,
        })
    }
}
