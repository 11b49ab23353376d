//! The upload checkpoint: which final entries are still to send, which the server booked,
//! which it rejected, and which expired to the dead-letter state. The agent reads its next
//! batch here and stores the server's answers here in one transaction; after a crash it simply
//! resumes from what is still `pending` (a resend is answered `duplicate`, never booked twice).

use rusqlite::params;

use super::payments::{ENTRY_COLUMN_COUNT, ENTRY_COLUMNS, row_to_entry};
use super::{Ledger, LedgerError};
use crate::clock;
use crate::entry::UploadEntry;
use crate::wire::{EntryResult, EntryStatus};

/// Upload state of a final entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// Not yet acknowledged by the server.
    Pending,
    /// The server booked it (now or earlier).
    Booked,
    /// The server refused it for good.
    Rejected,
    /// Older than the configured age: not sent, kept for an operator (dead letter).
    Dead,
}

impl UploadState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Booked => "booked",
            Self::Rejected => "rejected",
            Self::Dead => "dead",
        }
    }
}

/// What `sync-agent status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncSummary {
    /// Final entries waiting for upload.
    pub pending: u64,
    /// Booked by the server.
    pub booked: u64,
    /// Rejected by the server.
    pub rejected: u64,
    /// Expired to the dead-letter state.
    pub dead: u64,
    /// Entries still `intent` or `unknown`.
    pub unresolved: u64,
    /// Unix seconds of the last successful sync run.
    pub last_success: Option<i64>,
    /// The last error the agent stopped on.
    pub last_error: Option<String>,
    /// Hot-list version.
    pub hotlist_version: u64,
    /// Parameters version.
    pub params_version: u64,
    /// Cardholder records version.
    pub cardholders_version: u64,
    /// The open batch.
    pub current_batch: u32,
}

impl Ledger {
    /// Up to `limit` pending entries in sequence order, ready to send.
    pub fn pending_upload(&self, limit: usize) -> Result<Vec<UploadEntry>, LedgerError> {
        // Driven by the `uploads_by_state` index in sequence order, so the next batch costs
        // the same with 10 or 100,000 entries pending (no sort of everything pending).
        let sql = format!(
            "SELECT {ENTRY_COLUMNS}, e.pan_enc, e.psn_enc,
                (SELECT m.medical_enc FROM medical_debits m WHERE m.seq = e.seq)
             FROM uploads u JOIN entries e ON e.seq = u.seq
             LEFT JOIN outcomes o ON o.id = (SELECT MAX(id) FROM outcomes WHERE seq = u.seq)
             WHERE u.state = 'pending' ORDER BY u.seq LIMIT ?1"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let e = row_to_entry(r)?;
            let pan_enc: Vec<u8> = r.get(ENTRY_COLUMN_COUNT)?;
            let psn_enc: Vec<u8> = r.get(ENTRY_COLUMN_COUNT + 1)?;
            let medical_enc: Option<Vec<u8>> = r.get(ENTRY_COLUMN_COUNT + 2)?;
            out.push(self.upload_form(e, &pan_enc, &psn_enc, medical_enc.as_deref())?);
        }
        Ok(out)
    }

    /// Count attempts for entries about to be sent (one transaction).
    pub fn note_attempt(&mut self, seqs: &[u64]) -> Result<(), LedgerError> {
        let now = clock::unix_now();
        let tx = self.conn_mut().transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE uploads SET attempts = attempts + 1, updated_at = ?2 WHERE seq = ?1",
            )?;
            for s in seqs {
                stmt.execute(params![i64::try_from(*s).unwrap_or(i64::MAX), now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Store the server's answers, all in one transaction. Only `pending` rows change, so an
    /// answer arriving twice changes nothing the second time.
    pub fn store_results(&mut self, results: &[EntryResult]) -> Result<(), LedgerError> {
        let now = clock::unix_now();
        let tx = self.conn_mut().transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE uploads SET state = ?2, reason = ?3, updated_at = ?4,
                    attempts = attempts + 1
                 WHERE seq = ?1 AND state = 'pending'",
            )?;
            for r in results {
                let (state, reason) = match r.status {
                    EntryStatus::Booked | EntryStatus::Duplicate => ("booked", None),
                    // A recovered debit: booked, with no cryptogram the server could verify.
                    EntryStatus::BookedUnverified => ("booked", Some("unverified")),
                    EntryStatus::Rejected => {
                        ("rejected", Some(r.reason.map_or("other", |x| x.as_str())))
                    }
                };
                stmt.execute(params![
                    i64::try_from(r.seq).unwrap_or(i64::MAX),
                    state,
                    reason,
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Put booked entries back to `pending` (the server's batch close says it lacks them).
    pub fn requeue(&mut self, seqs: &[u64]) -> Result<usize, LedgerError> {
        let now = clock::unix_now();
        let tx = self.conn_mut().transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE uploads SET state = 'pending', updated_at = ?2
                 WHERE seq = ?1 AND state = 'booked'",
            )?;
            for s in seqs {
                n += stmt.execute(params![i64::try_from(*s).unwrap_or(i64::MAX), now])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Move pending entries whose intent is older than `max_age_secs` to the dead-letter state
    /// instead of sending them. Returns how many moved.
    pub fn expire_stale(&mut self, max_age_secs: i64, now: i64) -> Result<usize, LedgerError> {
        let cutoff = now.saturating_sub(max_age_secs);
        Ok(self.conn().execute(
            "UPDATE uploads SET state = 'dead', reason = 'expired', updated_at = ?2
             WHERE state = 'pending'
               AND seq IN (SELECT seq FROM entries WHERE created_at < ?1)",
            params![cutoff, now],
        )?)
    }

    /// The upload state of an entry, if it is final.
    pub fn upload_state(
        &self,
        seq: u64,
    ) -> Result<Option<(UploadState, Option<String>)>, LedgerError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT state, reason FROM uploads WHERE seq = ?1")?;
        let mut rows = stmt.query(params![i64::try_from(seq).unwrap_or(i64::MAX)])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let s: String = r.get(0)?;
        let state = match s.as_str() {
            "pending" => UploadState::Pending,
            "booked" => UploadState::Booked,
            "rejected" => UploadState::Rejected,
            "dead" => UploadState::Dead,
            _ => return Err(LedgerError::Corrupt("uploads.state")),
        };
        Ok(Some((state, r.get(1)?)))
    }

    /// Sequence numbers in an upload state.
    pub fn seqs_in(&self, state: UploadState) -> Result<Vec<u64>, LedgerError> {
        let mut stmt = self
            .conn()
            .prepare("SELECT seq FROM uploads WHERE state = ?1 ORDER BY seq")?;
        let v = stmt
            .query_map(params![state.as_str()], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        v.into_iter()
            .map(|s| u64::try_from(s).map_err(|_| LedgerError::Corrupt("seq")))
            .collect()
    }

    /// Record the end of a sync run: success sets `last_success`, failure `last_error`.
    pub fn record_run(&self, started_at: i64, error: Option<&str>) -> Result<(), LedgerError> {
        let now = clock::unix_now();
        self.conn().execute(
            "INSERT INTO sync_runs (started_at, finished_at, outcome, detail) VALUES (?1, ?2, ?3, ?4)",
            params![started_at, now, if error.is_some() { "failed" } else { "ok" }, error],
        )?;
        match error {
            None => {
                self.set_meta("last_success", &now.to_string())?;
                self.conn()
                    .execute("DELETE FROM meta WHERE key = 'last_error'", [])?;
            }
            Some(e) => self.set_meta("last_error", e)?,
        }
        Ok(())
    }

    /// Counts and versions for `sync-agent status`.
    pub fn sync_summary(&self) -> Result<SyncSummary, LedgerError> {
        let count = |state: &str| -> Result<u64, LedgerError> {
            let n: i64 = self.conn().query_row(
                "SELECT COUNT(*) FROM uploads WHERE state = ?1",
                params![state],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(SyncSummary {
            pending: count("pending")?,
            booked: count("booked")?,
            rejected: count("rejected")?,
            dead: count("dead")?,
            unresolved: u64::try_from(self.unresolved()?.len()).unwrap_or(u64::MAX),
            last_success: self.meta_i64("last_success")?,
            last_error: self.meta("last_error")?,
            hotlist_version: self.meta_u64("hotlist_version")?,
            params_version: self.meta_u64("params_version")?,
            cardholders_version: self.meta_u64("cardholders_version")?,
            current_batch: self.current_batch()?,
        })
    }
}
