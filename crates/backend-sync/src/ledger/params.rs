//! Terminal parameters (floor limits, EC limits, sync schedule, ...) as the server sets them:
//! a versioned name → value map, replaced whole in one transaction when a newer version comes.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Ledger, LedgerError};
use crate::wire::ParameterSet;

impl Ledger {
    /// Replace the parameters if `set` is newer than what the ledger has. Returns whether it
    /// applied.
    pub fn apply_parameters(&mut self, set: &ParameterSet) -> Result<bool, LedgerError> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let have: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'params_version'",
                [],
                |r| r.get(0),
            )
            .ok();
        let have: u64 = have.and_then(|v| v.parse().ok()).unwrap_or(0);
        if set.version <= have {
            return Ok(false);
        }
        tx.execute("DELETE FROM params", [])?;
        {
            let mut ins = tx.prepare_cached("INSERT INTO params (name, value) VALUES (?1, ?2)")?;
            for (k, v) in &set.params {
                ins.execute(params![k, v])?;
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('params_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![set.version.to_string()],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// One parameter.
    pub fn parameter(&self, name: &str) -> Result<Option<String>, LedgerError> {
        Ok(self.parameters()?.remove(name))
    }

    /// All parameters.
    pub fn parameters(&self) -> Result<BTreeMap<String, String>, LedgerError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT name, value FROM params")?;
        let v = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<BTreeMap<String, String>, _>>()?;
        Ok(v)
    }
}
