//! Settlement batches, as a POS keeps them (UnionPay's settlement: trickle-feed every offline
//! entry first, then send the batch totals; if the host disagrees, find and re-send the
//! differences). New entries go into the open batch; [`Ledger::close_batch`] starts a new one
//! and marks the old one `closing`; the agent sends its totals once every entry of it is final
//! and uploaded, and records the answer.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Ledger, LedgerError};
use crate::clock;
use crate::wire::{BatchCloseResponse, RecoveredTotals, Totals};

/// The open batch, creating batch 1 if there is none.
pub(crate) fn current_batch_in(tx: &Transaction<'_>, now: i64) -> Result<u32, LedgerError> {
    let open: Option<i64> = tx
        .prepare_cached("SELECT MAX(batch_no) FROM batches WHERE state = 'open'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .flatten();
    match open {
        Some(b) => u32::try_from(b).map_err(|_| LedgerError::Corrupt("batch_no")),
        None => {
            let last: Option<i64> =
                tx.query_row("SELECT MAX(batch_no) FROM batches", [], |r| r.get(0))?;
            let next = last.unwrap_or(0) + 1;
            tx.execute(
                "INSERT INTO batches (batch_no, state, opened_at) VALUES (?1, 'open', ?2)",
                params![next, now],
            )?;
            u32::try_from(next).map_err(|_| LedgerError::Corrupt("batch_no"))
        }
    }
}

/// A batch's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// Number.
    pub batch_no: u32,
    /// `open`, `closing`, `balanced` or `unbalanced`.
    pub state: String,
    /// The server's answer, once closed.
    pub result: Option<BatchCloseResponse>,
}

impl Ledger {
    /// The open batch's number.
    pub fn current_batch(&self) -> Result<u32, LedgerError> {
        let open: Option<i64> = self.conn().query_row(
            "SELECT MAX(batch_no) FROM batches WHERE state = 'open'",
            [],
            |r| r.get(0),
        )?;
        match open {
            Some(b) => u32::try_from(b).map_err(|_| LedgerError::Corrupt("batch_no")),
            None => {
                let last: Option<i64> =
                    self.conn()
                        .query_row("SELECT MAX(batch_no) FROM batches", [], |r| r.get(0))?;
                u32::try_from(last.unwrap_or(0) + 1).map_err(|_| LedgerError::Corrupt("batch_no"))
            }
        }
    }

    /// Close the open batch (it becomes `closing`) and open the next. Returns the closed one.
    pub fn close_batch(&mut self) -> Result<u32, LedgerError> {
        let now = clock::unix_now();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let b = current_batch_in(&tx, now)?;
        tx.execute(
            "UPDATE batches SET state = 'closing', closing_at = ?2 WHERE batch_no = ?1",
            params![b, now],
        )?;
        tx.execute(
            "INSERT INTO batches (batch_no, state, opened_at) VALUES (?1, 'open', ?2)",
            params![b + 1, now],
        )?;
        tx.commit()?;
        Ok(b)
    }

    /// Closing batches whose entries are all final and none still pending upload.
    pub fn batches_ready_to_close(&self) -> Result<Vec<u32>, LedgerError> {
        let mut stmt = self.conn().prepare(
            "SELECT b.batch_no FROM batches b WHERE b.state = 'closing'
               AND NOT EXISTS (SELECT 1 FROM entries e LEFT JOIN uploads u ON u.seq = e.seq
                               WHERE e.batch_no = b.batch_no
                                 AND (u.seq IS NULL OR u.state = 'pending'))
             ORDER BY b.batch_no",
        )?;
        let v = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        v.into_iter()
            .map(|b| u32::try_from(b).map_err(|_| LedgerError::Corrupt("batch_no")))
            .collect()
    }

    /// The terminal's totals of approved entries in a batch, and their sequence numbers.
    pub fn batch_totals(&self, batch_no: u32) -> Result<(Totals, Vec<u64>), LedgerError> {
        let sql = format!(
            "SELECT e.seq, e.kind, e.amount_fen {} WHERE e.batch_no = ?1
               AND o.state = 'approved_offline' ORDER BY e.seq",
            super::payments::ENTRY_FROM
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt.query(params![batch_no])?;
        let mut t = Totals::default();
        let mut seqs = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let kind: String = r.get(1)?;
            let amount =
                u64::try_from(r.get::<_, i64>(2)?).map_err(|_| LedgerError::Corrupt("amount"))?;
            if kind.parse::<crate::entry::EntryKind>()?.is_credit() {
                t.credit_count += 1;
                t.credit_amount += amount;
            } else {
                t.debit_count += 1;
                t.debit_amount += amount;
            }
            seqs.push(u64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?);
        }
        Ok((t, seqs))
    }

    /// The terminal's recovered debits in a batch (proven by the card's log, no cryptogram;
    /// outside [`Ledger::batch_totals`]), and their sequence numbers.
    pub fn batch_recovered(
        &self,
        batch_no: u32,
    ) -> Result<(RecoveredTotals, Vec<u64>), LedgerError> {
        let sql = format!(
            "SELECT e.seq, e.amount_fen {} WHERE e.batch_no = ?1
               AND o.state = 'recovered' ORDER BY e.seq",
            super::payments::ENTRY_FROM
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt.query(params![batch_no])?;
        let mut t = RecoveredTotals::default();
        let mut seqs = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let amount =
                u64::try_from(r.get::<_, i64>(1)?).map_err(|_| LedgerError::Corrupt("amount"))?;
            t.count += 1;
            t.amount += amount;
            seqs.push(u64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?);
        }
        Ok((t, seqs))
    }

    /// Record the server's answer to a batch close.
    pub fn record_batch_result(&self, r: &BatchCloseResponse) -> Result<(), LedgerError> {
        let text = serde_json::to_string(r).map_err(|_| LedgerError::Encoding)?;
        let n = self.conn().execute(
            "UPDATE batches SET state = ?2, result = ?3 WHERE batch_no = ?1 AND state = 'closing'",
            params![
                r.batch_no,
                if r.balanced { "balanced" } else { "unbalanced" },
                text
            ],
        )?;
        if n == 0 {
            return Err(LedgerError::NoSuchBatch(r.batch_no));
        }
        Ok(())
    }

    /// A batch's state and answer.
    pub fn batch(&self, batch_no: u32) -> Result<Option<BatchInfo>, LedgerError> {
        let row: Option<(String, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT state, result FROM batches WHERE batch_no = ?1",
                params![batch_no],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((state, result)) = row else {
            return Ok(None);
        };
        let result = match result {
            Some(t) => {
                Some(serde_json::from_str(&t).map_err(|_| LedgerError::Corrupt("batches.result"))?)
            }
            None => None,
        };
        Ok(Some(BatchInfo {
            batch_no,
            state,
            result,
        }))
    }
}
