//! Cardholder records of the terminal's region, for offline queries (insurance status,
//! contributions, medical-account balance as of a time). Each record is stored whole as one
//! sealed value ([`crate::field_crypto`]) and found by blind indexes of the social-security
//! number and the card number; nothing personal is in the file in clear.

use rusqlite::params;

use super::{Ledger, LedgerError};
use crate::wire::{CardholderPage, CardholderRecord};

pub(crate) fn aad(ssn_index: &[u8]) -> Vec<u8> {
    let mut a = b"cardholders.record:".to_vec();
    a.extend_from_slice(hex::encode(ssn_index).as_bytes());
    a
}

impl Ledger {
    /// Store a page of records (insert or replace by social-security number) and advance the
    /// cardholder version, in one transaction. A page not starting at the ledger's version is
    /// ignored (returns `false`).
    pub fn apply_cardholders(&mut self, page: &CardholderPage) -> Result<bool, LedgerError> {
        let mut rows = Vec::with_capacity(page.records.len());
        for r in &page.records {
            let ssn_index = self.key().blind_index("ssn", &r.ssn);
            let card_index = self.key().blind_index("card_no", &r.card_no);
            let json =
                zeroize::Zeroizing::new(serde_json::to_vec(r).map_err(|_| LedgerError::Encoding)?);
            let sealed = self.key().seal(&aad(&ssn_index), &json)?;
            rows.push((ssn_index, card_index, sealed, r.version));
        }
        let tx = self
            .conn_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let have: u64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'cardholders_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if have != page.from_version {
            return Ok(false);
        }
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO cardholders (ssn_index, card_index, record_enc, version)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(ssn_index) DO UPDATE SET card_index = excluded.card_index,
                    record_enc = excluded.record_enc, version = excluded.version",
            )?;
            for (s, c, e, v) in &rows {
                ins.execute(params![
                    s.as_slice(),
                    c.as_slice(),
                    e,
                    i64::try_from(*v).unwrap_or(i64::MAX)
                ])?;
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('cardholders_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![page.to_version.max(have).to_string()],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn cardholder_where(
        &self,
        column: &str,
        index: [u8; 32],
    ) -> Result<Option<CardholderRecord>, LedgerError> {
        let sql = format!("SELECT ssn_index, record_enc FROM cardholders WHERE {column} = ?1");
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![index.as_slice()])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let ssn_index: Vec<u8> = r.get(0)?;
        let sealed: Vec<u8> = r.get(1)?;
        let json = self.key().open(&aad(&ssn_index), &sealed)?;
        let rec = serde_json::from_slice(&json).map_err(|_| LedgerError::Corrupt("cardholders"))?;
        Ok(Some(rec))
    }

    /// The record of a social-security number.
    pub fn cardholder_by_ssn(&self, ssn: &str) -> Result<Option<CardholderRecord>, LedgerError> {
        self.cardholder_where("ssn_index", self.key().blind_index("ssn", ssn))
    }

    /// The record of a card number.
    pub fn cardholder_by_card(
        &self,
        card_no: &str,
    ) -> Result<Option<CardholderRecord>, LedgerError> {
        self.cardholder_where("card_index", self.key().blind_index("card_no", card_no))
    }

    /// Number of cardholder records held.
    pub fn cardholder_count(&self) -> Result<u64, LedgerError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM cardholders", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
