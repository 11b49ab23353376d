//! Medical-account debits (医保个人账户) in the ledger: a pharmacy counter records an offline
//! debit of the cardholder's medical account after the card proved itself and signed a
//! challenge bound to the entry, and the PIN was verified (`crate::medical`, docs/sync-protocol.md
//! "Medical-account debits").
//!
//! [`Ledger::record_medical_debit`] writes the entry final at once, in state `recorded`, in one
//! transaction, and queues it for upload. It refuses, before anything is written: a challenge
//! that does not name the entry, a card on the hot list, a cardholder with no record in the
//! ledger, and an amount above what the account has left offline ([`MedicalAvailable`]).
//!
//! What is left offline: the record's balance as of its `as_of`, minus every medical debit of
//! this terminal from the same account that the record may not count yet. A debit counts until
//! the server acknowledged it as booked *before* `as_of` (then the backend's balance had it);
//! one the server rejected never counts (the backend never debits it). So a debit waiting for
//! upload counts whatever its time, and a newer record does not make the terminal forget it.

use rusqlite::{Connection, OptionalExtension, params};

use super::client_refs::ClientRef;
use super::payments::{Intent, pan_aad, psn_aad};
use super::{Ledger, LedgerError};
use crate::clock;
use crate::entry::{CNY, EntryKind, EntryState, IdempotencyId, MAX_AMOUNT_FEN, Pan, TxnTime};
use crate::field_crypto::FieldKey;
use crate::medical::MedicalDebit;
use crate::wire::{CardholderRecord, MedicalTotals};
use card_core::ssse::fields::IdNumber;

/// A medical debit as the counter knows it once the card has signed.
#[derive(Debug, Clone)]
pub struct NewMedicalDebit {
    /// The id the challenge binds; made with [`IdempotencyId::generate`] before the card signs.
    pub idempotency_id: IdempotencyId,
    /// Amount in fen, 1 to 999 999 999 999.
    pub amount_fen: u64,
    /// Currency (156).
    pub currency: u16,
    /// The terminal's local time of the debit, as bound in the challenge.
    pub txn_time: TxnTime,
    /// The PAN the card's certificates name (EF 0018 `5A`; checked against the hot list).
    pub pan: Pan,
    /// The cardholder's identity and the card's evidence (`crate::medical::attest`).
    pub medical: MedicalDebit,
}

/// What a cardholder's medical account has left offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalAvailable {
    /// The record's balance in fen.
    pub balance_fen: i64,
    /// When the record's balance was true.
    pub as_of: TxnTime,
    /// This terminal's debits of the account the record may not count yet, in fen.
    pub outstanding_fen: i64,
    /// `balance_fen - outstanding_fen`.
    pub available_fen: i64,
}

/// A medical debit as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalRecorded {
    /// Its sequence number, idempotency id and batch.
    pub entry: Intent,
    /// What the account had left offline before it.
    pub available_before_fen: i64,
    /// And after it.
    pub available_after_fen: i64,
}

fn medical_aad(seq: u64) -> Vec<u8> {
    format!("medical_debits.medical:{seq}").into_bytes()
}

pub(crate) fn open_medical(
    key: &FieldKey,
    seq: u64,
    sealed: &[u8],
) -> Result<MedicalDebit, LedgerError> {
    let json = key.open(&medical_aad(seq), sealed)?;
    serde_json::from_slice(&json).map_err(|_| LedgerError::Corrupt("medical_debits.medical_enc"))
}

fn holder_index(key: &FieldKey, ssn: &IdNumber) -> [u8; 32] {
    key.blind_index("ssn", ssn.reveal())
}

fn to_i64(v: u64) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::Amount)
}

fn available_in(
    conn: &Connection,
    key: &FieldKey,
    ssn: &IdNumber,
) -> Result<MedicalAvailable, LedgerError> {
    let index = holder_index(key, ssn);
    let sealed: Option<Vec<u8>> = conn
        .prepare_cached("SELECT record_enc FROM cardholders WHERE ssn_index = ?1")?
        .query_row(params![index.as_slice()], |r| r.get(0))
        .optional()?;
    let Some(sealed) = sealed else {
        return Err(LedgerError::NoCardholderRecord);
    };
    let json = key.open(&super::cardholders::aad(&index), &sealed)?;
    let record: CardholderRecord =
        serde_json::from_slice(&json).map_err(|_| LedgerError::Corrupt("cardholders"))?;
    let outstanding: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(e.amount_fen), 0)
             FROM medical_debits m JOIN entries e ON e.seq = m.seq
             LEFT JOIN uploads u ON u.seq = m.seq
             WHERE m.holder_index = ?1
               AND COALESCE(u.state, 'pending') <> 'rejected'
               AND NOT (COALESCE(u.state, 'pending') = 'booked'
                        AND COALESCE(u.updated_at, 0) < ?2)",
        )?
        .query_row(
            params![index.as_slice(), record.as_of.unix_seconds()],
            |r| r.get(0),
        )?;
    Ok(MedicalAvailable {
        balance_fen: record.medical_balance_fen,
        available_fen: record.medical_balance_fen.saturating_sub(outstanding),
        as_of: record.as_of,
        outstanding_fen: outstanding,
    })
}

impl Ledger {
    /// What the medical account of `ssn` has left offline (to tell the clerk before the card is
    /// asked to sign). [`LedgerError::NoCardholderRecord`] if the ledger has no record of it.
    pub fn medical_available(&self, ssn: &IdNumber) -> Result<MedicalAvailable, LedgerError> {
        available_in(self.conn(), self.key(), ssn)
    }

    /// Record a medical debit, final at once (state `recorded`), queued for upload, in one
    /// transaction. Refused before anything is written: an amount of 0 or above n12, a currency
    /// other than CNY, a challenge that does not name this entry
    /// ([`crate::medical::MedicalDebit::check_binding`]), a used idempotency id, a card on the
    /// hot list, no cardholder record, and an amount above what is left offline
    /// ([`Ledger::medical_available`]). The card's signature itself is verified by
    /// `crate::medical::attest` while the card is in the reader, and again by the server.
    pub fn record_medical_debit(
        &mut self,
        d: &NewMedicalDebit,
    ) -> Result<MedicalRecorded, LedgerError> {
        self.record_medical_inner(d, None)
    }

    /// [`Self::record_medical_debit`] with the point-of-sale system's reference written in the
    /// same transaction (a used reference is refused, [`LedgerError::ReferenceUsed`]).
    pub fn record_medical_debit_referenced(
        &mut self,
        d: &NewMedicalDebit,
        client: &ClientRef<'_>,
    ) -> Result<MedicalRecorded, LedgerError> {
        self.record_medical_inner(d, Some(client))
    }

    fn record_medical_inner(
        &mut self,
        d: &NewMedicalDebit,
        client: Option<&ClientRef<'_>>,
    ) -> Result<MedicalRecorded, LedgerError> {
        if let Some(c) = client
            && !super::client_refs::valid_reference(c.reference)
        {
            return Err(LedgerError::Reference);
        }
        if d.amount_fen == 0 || d.amount_fen > MAX_AMOUNT_FEN {
            return Err(LedgerError::Amount);
        }
        if d.currency != CNY {
            return Err(LedgerError::Currency);
        }
        d.medical.check_binding(
            self.terminal(),
            &d.idempotency_id,
            d.amount_fen,
            d.currency,
            &d.txn_time,
        )?;
        let amount = to_i64(d.amount_fen)?;
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(&d.medical).map_err(|_| LedgerError::Encoding)?,
        );
        let now = clock::unix_now();
        let key = &self.key;
        let pan_index = key.blind_index("pan", d.pan.expose());
        let holder = holder_index(key, &d.medical.ssn);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let listed: Option<String> = tx
            .prepare_cached("SELECT reason FROM hotlist WHERE pan_index = ?1")?
            .query_row(params![pan_index.as_slice()], |r| r.get(0))
            .optional()?;
        if let Some(reason) = listed {
            return Err(LedgerError::CardHotListed { reason });
        }
        let used: Option<i64> = tx
            .prepare_cached("SELECT seq FROM entries WHERE idempotency_id = ?1")?
            .query_row(params![d.idempotency_id.to_hex()], |r| r.get(0))
            .optional()?;
        if used.is_some() {
            return Err(LedgerError::IdempotencyReused);
        }
        let before = available_in(&tx, key, &d.medical.ssn)?;
        if amount > before.available_fen {
            return Err(LedgerError::MedicalOverdraft {
                available_fen: before.available_fen,
            });
        }
        let last: Option<i64> = tx
            .prepare_cached("SELECT MAX(seq) FROM entries")?
            .query_row([], |r| r.get(0))?;
        let seq = u64::try_from(last.unwrap_or(0))
            .map_err(|_| LedgerError::Corrupt("seq"))?
            .saturating_add(1);
        let seq_i = to_i64(seq)?;
        let batch_no = super::batches::current_batch_in(&tx, now)?;
        tx.prepare_cached(
            "INSERT INTO entries (seq, idempotency_id, batch_no, kind, amount_fen, currency,
                pan_masked, pan_index, pan_enc, psn_enc, txn_time, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            seq_i,
            d.idempotency_id.to_hex(),
            batch_no,
            EntryKind::MedicalDebit.as_str(),
            amount,
            d.currency,
            d.pan.masked(),
            pan_index.as_slice(),
            key.seal_str(&pan_aad(seq), d.pan.expose())?,
            // The certificate application has no PAN sequence number; EMV takes 00 then.
            key.seal_str(&psn_aad(seq), "00")?,
            d.txn_time.as_str(),
            now
        ])?;
        tx.prepare_cached(
            "INSERT INTO medical_debits (seq, holder_index, medical_enc) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![
            seq_i,
            holder.as_slice(),
            key.seal(&medical_aad(seq), &json)?
        ])?;
        tx.prepare_cached("INSERT INTO outcomes (seq, state, recorded_at) VALUES (?1, ?2, ?3)")?
            .execute(params![seq_i, EntryState::Recorded.as_str(), now])?;
        tx.prepare_cached(
            "INSERT INTO uploads (seq, state, attempts, updated_at) VALUES (?1, 'pending', 0, ?2)",
        )?
        .execute(params![seq_i, now])?;
        if let Some(c) = client {
            super::client_refs::insert(&tx, key, seq, c)?;
        }
        tx.commit()?;
        Ok(MedicalRecorded {
            entry: Intent {
                seq,
                idempotency_id: d.idempotency_id,
                batch_no,
            },
            available_before_fen: before.available_fen,
            available_after_fen: before.available_fen.saturating_sub(amount),
        })
    }

    /// The identity and evidence of a medical debit, or `None` if `seq` is not one.
    pub fn medical_debit(&self, seq: u64) -> Result<Option<MedicalDebit>, LedgerError> {
        let sealed: Option<Vec<u8>> = self
            .conn()
            .prepare_cached("SELECT medical_enc FROM medical_debits WHERE seq = ?1")?
            .query_row(params![to_i64(seq)?], |r| r.get(0))
            .optional()?;
        sealed
            .map(|s| open_medical(self.key(), seq, &s))
            .transpose()
    }

    /// The terminal's medical debits in a batch (outside [`Ledger::batch_totals`]: the money is
    /// the medical account's, not the card's), and their sequence numbers.
    pub fn batch_medical(&self, batch_no: u32) -> Result<(MedicalTotals, Vec<u64>), LedgerError> {
        let sql = format!(
            "SELECT e.seq, e.amount_fen {} WHERE e.batch_no = ?1
               AND e.kind = 'medical_debit' AND o.state = 'recorded' ORDER BY e.seq",
            super::payments::ENTRY_FROM
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt.query(params![batch_no])?;
        let mut t = MedicalTotals::default();
        let mut seqs = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let amount =
                u64::try_from(r.get::<_, i64>(1)?).map_err(|_| LedgerError::Corrupt("amount"))?;
            t.count += 1;
            t.amount = t.amount.saturating_add(amount);
            seqs.push(u64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?);
        }
        Ok((t, seqs))
    }
}
