//! The references a point-of-sale system gives its debits through the terminal's counter API.
//!
//! A pharmacy's or hospital's till retries a request whose answer it did not get; the same
//! reference must then not debit the card again. The reference is written with the payment's
//! intent in one transaction ([`Ledger::begin_payment_referenced`]), before the card command
//! that can debit, so whatever happens afterwards (the answer lost, the card pulled, the
//! terminal restarted) the reference already names its entry, and a second intent with it is
//! refused ([`LedgerError::ReferenceUsed`]). A request that never reached the intent (short of
//! money, PIN not given) leaves no reference behind and may be tried again.
//!
//! The request itself (amount and item) is kept only as a keyed blind index, enough to tell a
//! retry of the same request from a different request under a used reference
//! ([`Ledger::lookup_reference`]); an item may name a medicine, which is nobody's business in
//! the file.

use std::collections::BTreeMap;

use rusqlite::{Transaction, params};

use super::payments::{ENTRY_COLUMNS, ENTRY_FROM, LedgerEntry, row_to_entry};
use super::{Ledger, LedgerError};
use crate::field_crypto::{FieldKey, ct_eq};

/// The longest reference, in characters.
pub const MAX_REFERENCE_LEN: usize = 64;

/// A point-of-sale system's reference for one debit and the request it came with.
#[derive(Clone, Copy)]
pub struct ClientRef<'a> {
    /// The reference: 1 to [`MAX_REFERENCE_LEN`] characters of `A-Z a-z 0-9 - _ . : /`.
    pub reference: &'a str,
    /// The request in a canonical text form (the caller's choice, the same for the same
    /// request); stored only as a keyed blind index.
    pub request: &'a str,
}

impl std::fmt::Debug for ClientRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRef")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

/// What the ledger knows of a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefLookup {
    /// No entry has it.
    Unused,
    /// An entry has it, from the same request: its current state answers a retry.
    Same(Box<LedgerEntry>),
    /// An entry has it, from a different request.
    Different {
        /// The entry that has it.
        seq: u64,
    },
}

/// Whether `reference` is a usable client reference.
pub fn valid_reference(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= MAX_REFERENCE_LEN
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

fn request_index(key: &FieldKey, request: &str) -> [u8; 32] {
    key.blind_index("client_request", request)
}

pub(crate) fn insert(
    tx: &Transaction<'_>,
    key: &FieldKey,
    seq: u64,
    c: &ClientRef<'_>,
) -> Result<(), LedgerError> {
    let used: Option<i64> = tx
        .prepare_cached("SELECT seq FROM client_refs WHERE reference = ?1")?
        .query_row(params![c.reference], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if let Some(seq) = used {
        return Err(LedgerError::ReferenceUsed {
            seq: u64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?,
        });
    }
    let seq = i64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?;
    tx.prepare_cached(
        "INSERT INTO client_refs (reference, seq, request_index) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        c.reference,
        seq,
        request_index(key, c.request).as_slice()
    ])?;
    Ok(())
}

impl Ledger {
    /// Whether an entry has `client`'s reference, and if so whether from the same request.
    pub fn lookup_reference(&self, client: &ClientRef<'_>) -> Result<RefLookup, LedgerError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS}, c.request_index {ENTRY_FROM} \
             JOIN client_refs c ON c.seq = e.seq WHERE c.reference = ?1"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![client.reference])?;
        let Some(r) = rows.next()? else {
            return Ok(RefLookup::Unused);
        };
        let entry = row_to_entry(r)?;
        let stored: Vec<u8> = r.get(super::payments::ENTRY_COLUMN_COUNT)?;
        if ct_eq(&stored, &request_index(self.key(), client.request)) {
            Ok(RefLookup::Same(Box::new(entry)))
        } else {
            Ok(RefLookup::Different { seq: entry.seq })
        }
    }

    /// The entry with this reference, if any.
    pub fn entry_by_reference(&self, reference: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} {ENTRY_FROM} \
             JOIN client_refs c ON c.seq = e.seq WHERE c.reference = ?1"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![reference])?;
        match rows.next()? {
            Some(r) => Ok(Some(row_to_entry(r)?)),
            None => Ok(None),
        }
    }

    /// Every entry's reference, by sequence number (entries without one are absent).
    pub fn client_references(&self) -> Result<BTreeMap<u64, String>, LedgerError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT seq, reference FROM client_refs ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut out = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            out.insert(
                u64::try_from(seq).map_err(|_| LedgerError::Corrupt("seq"))?,
                r.get(1)?,
            );
        }
        Ok(out)
    }
}
