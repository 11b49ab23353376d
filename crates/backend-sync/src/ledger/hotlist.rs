//! The hot list of lost and blocked cards, checked before every payment (the exception-file
//! check of terminal risk management, EMV Book 3 §10.6; the social-security blacklist check).
//! It is versioned and changes only by whole deltas from the server, each applied in one
//! transaction: a terminal sees the list before or after a delta, never half of one. Cards are
//! found by a keyed blind index of the PAN; the PAN itself is not stored.

use rusqlite::{OptionalExtension, params};

use super::{Ledger, LedgerError};
use crate::entry::Pan;
use crate::wire::{HotListAction, HotListDelta};

impl Ledger {
    /// The hot-list version the terminal has (0: none yet).
    pub fn hotlist_version(&self) -> Result<u64, LedgerError> {
        self.meta_u64("hotlist_version")
    }

    /// Cards on the hot list.
    pub fn hotlist_len(&self) -> Result<u64, LedgerError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM hotlist", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `Err(CardHotListed)` if the card is on the hot list.
    pub fn hotlist_check(&self, pan: &Pan) -> Result<(), LedgerError> {
        let index = self.key().blind_index("pan", pan.expose());
        let reason: Option<String> = self
            .conn()
            .prepare_cached("SELECT reason FROM hotlist WHERE pan_index = ?1")?
            .query_row(params![index.as_slice()], |r| r.get(0))
            .optional()?;
        match reason {
            Some(reason) => Err(LedgerError::CardHotListed { reason }),
            None => Ok(()),
        }
    }

    /// Apply a delta (already verified as signed by the server) atomically. It must start at
    /// the ledger's version; its changes must be in ascending version order within
    /// `(from_version, to_version]`. An empty delta to the same version changes nothing.
    pub fn apply_hotlist(&mut self, delta: &HotListDelta) -> Result<(), LedgerError> {
        let mut last = delta.from_version;
        for c in &delta.changes {
            if c.version <= last || c.version > delta.to_version {
                return Err(LedgerError::HotListOrder);
            }
            last = c.version;
        }
        if delta.to_version < delta.from_version {
            return Err(LedgerError::HotListOrder);
        }
        let rows: Vec<([u8; 32], String, HotListAction, String, u64)> = delta
            .changes
            .iter()
            .map(|c| {
                (
                    self.key().blind_index("pan", c.pan.expose()),
                    c.pan.masked(),
                    c.action,
                    c.reason.chars().take(64).collect(),
                    c.version,
                )
            })
            .collect();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let have: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'hotlist_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let have: u64 = match have {
            Some(v) => v.parse().map_err(|_| LedgerError::Corrupt("meta"))?,
            None => 0,
        };
        if have != delta.from_version {
            return Err(LedgerError::HotListVersion {
                have,
                delta_from: delta.from_version,
            });
        }
        {
            let mut add = tx.prepare_cached(
                "INSERT INTO hotlist (pan_index, pan_masked, reason, version) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(pan_index) DO UPDATE SET reason = excluded.reason,
                    version = excluded.version",
            )?;
            let mut remove = tx.prepare_cached("DELETE FROM hotlist WHERE pan_index = ?1")?;
            for (index, masked, action, reason, version) in &rows {
                match action {
                    HotListAction::Add => {
                        add.execute(params![
                            index.as_slice(),
                            masked,
                            reason,
                            i64::try_from(*version).unwrap_or(i64::MAX)
                        ])?;
                    }
                    HotListAction::Remove => {
                        remove.execute(params![index.as_slice()])?;
                    }
                }
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('hotlist_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![delta.to_version.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }
}
