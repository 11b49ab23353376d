//! What the recovery of a torn debit needs, kept with the intent: the card's ATC and
//! electronic-cash balance read before the debit, the PBOC date and time sent to the card, and
//! a blind index of the card's identity (never the identity itself) so that the entry is found
//! again when the same card comes back ([`Ledger::pending_recovery`]). The kernel's
//! `card_core::pboc::recovery::check_debit` then compares them with the card's ATC, balance
//! and transaction log (JR/T 0025.13 §10.2).

use rusqlite::{Transaction, params};

use super::{Ledger, LedgerError};
use crate::field_crypto::FieldKey;

/// Facts written with an intent.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryFacts {
    /// The card's identity as the terminal knows it (e.g. the social-security card identifier
    /// in hex); stored only as a keyed blind index.
    pub card: String,
    /// The card's ATC before the transaction (GET DATA `9F36`).
    pub atc_before: Option<u16>,
    /// The electronic-cash balance before, in fen (GET DATA `9F79`).
    pub balance_before_fen: Option<u64>,
    /// Transaction date `9A` as sent to the card (`YYMMDD`, BCD).
    pub date_bcd: [u8; 3],
    /// Transaction time `9F21` as sent to the card (`hhmmss`, BCD).
    pub time_bcd: [u8; 3],
}

impl std::fmt::Debug for RecoveryFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryFacts")
            .field("atc_before", &self.atc_before)
            .field("balance_before_fen", &self.balance_before_fen)
            .finish_non_exhaustive()
    }
}

/// An unresolved entry of a card, with its facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecovery {
    /// Sequence number.
    pub seq: u64,
    /// Amount in fen.
    pub amount_fen: u64,
    /// The card's ATC before.
    pub atc_before: Option<u16>,
    /// The balance before, in fen.
    pub balance_before_fen: Option<u64>,
    /// `9A` as sent.
    pub date_bcd: [u8; 3],
    /// `9F21` as sent.
    pub time_bcd: [u8; 3],
}

fn card_index(key: &FieldKey, card: &str) -> [u8; 32] {
    key.blind_index("card", card)
}

pub(crate) fn insert(
    tx: &Transaction<'_>,
    key: &FieldKey,
    seq: u64,
    f: &RecoveryFacts,
) -> Result<(), LedgerError> {
    let seq = i64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?;
    let balance = f
        .balance_before_fen
        .map(i64::try_from)
        .transpose()
        .map_err(|_| LedgerError::Amount)?;
    tx.prepare_cached(
        "INSERT INTO intent_facts (seq, card_index, atc_before, balance_before_fen, date_bcd,
            time_bcd) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        seq,
        card_index(key, &f.card).as_slice(),
        f.atc_before,
        balance,
        hex::encode(f.date_bcd),
        hex::encode(f.time_bcd),
    ])?;
    Ok(())
}

fn bcd3(text: &str) -> Result<[u8; 3], LedgerError> {
    let mut out = [0u8; 3];
    hex::decode_to_slice(text, &mut out).map_err(|_| LedgerError::Corrupt("intent_facts"))?;
    Ok(out)
}

impl Ledger {
    /// The entries of `card` still `intent` or `unknown`, oldest first, with their facts.
    pub fn pending_recovery(&self, card: &str) -> Result<Vec<PendingRecovery>, LedgerError> {
        let index = card_index(self.key(), card);
        let mut stmt = self.conn().prepare_cached(
            "SELECT e.seq, e.amount_fen, f.atc_before, f.balance_before_fen, f.date_bcd,
                    f.time_bcd
             FROM intent_facts f JOIN entries e ON e.seq = f.seq
             LEFT JOIN outcomes o ON o.id = (SELECT MAX(id) FROM outcomes WHERE seq = e.seq)
             WHERE f.card_index = ?1 AND (o.state IS NULL OR o.state = 'unknown')
             ORDER BY e.seq",
        )?;
        let mut rows = stmt.query(params![index.as_slice()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let amount: i64 = r.get(1)?;
            let atc: Option<i64> = r.get(2)?;
            let balance: Option<i64> = r.get(3)?;
            out.push(PendingRecovery {
                seq: u64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?,
                amount_fen: u64::try_from(amount).map_err(|_| LedgerError::Corrupt("amount"))?,
                atc_before: atc
                    .map(u16::try_from)
                    .transpose()
                    .map_err(|_| LedgerError::Corrupt("atc_before"))?,
                balance_before_fen: balance
                    .map(u64::try_from)
                    .transpose()
                    .map_err(|_| LedgerError::Corrupt("balance_before_fen"))?,
                date_bcd: bcd3(&r.get::<_, String>(4)?)?,
                time_bcd: bcd3(&r.get::<_, String>(5)?)?,
            });
        }
        Ok(out)
    }
}
