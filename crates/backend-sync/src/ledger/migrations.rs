//! Schema versions of the ledger, applied in order inside one transaction each and recorded
//! in `PRAGMA user_version`. A file with a newer version than this code knows is refused rather
//! than guessed at.
//!
//! Append-only is enforced by the schema itself: triggers abort any `UPDATE` or `DELETE` on
//! `entries` and `outcomes`. What changes (the upload checkpoint, batches, hot list, parameters,
//! cardholder records) lives in other tables.

use rusqlite::Connection;

use super::LedgerError;

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: payments, outcomes, the upload checkpoint, batches, hot list, parameters, cardholders.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE entries (
        seq INTEGER PRIMARY KEY,
        idempotency_id TEXT NOT NULL UNIQUE,
        batch_no INTEGER NOT NULL,
        kind TEXT NOT NULL,
        amount_fen INTEGER NOT NULL,
        currency INTEGER NOT NULL,
        pan_masked TEXT NOT NULL,
        pan_index BLOB NOT NULL,
        pan_enc BLOB NOT NULL,
        psn_enc BLOB NOT NULL,
        txn_time TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );
     CREATE TRIGGER entries_append_only_u BEFORE UPDATE ON entries
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
     CREATE TRIGGER entries_append_only_d BEFORE DELETE ON entries
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
     CREATE TABLE outcomes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        seq INTEGER NOT NULL REFERENCES entries(seq),
        state TEXT NOT NULL,
        atc INTEGER,
        cid INTEGER,
        cryptogram TEXT,
        algorithm TEXT,
        mac_data TEXT,
        note TEXT,
        recorded_at INTEGER NOT NULL
     );
     CREATE INDEX outcomes_by_seq ON outcomes(seq, id);
     CREATE TRIGGER outcomes_append_only_u BEFORE UPDATE ON outcomes
        BEGIN SELECT RAISE(ABORT, 'ledger outcomes are append-only'); END;
     CREATE TRIGGER outcomes_append_only_d BEFORE DELETE ON outcomes
        BEGIN SELECT RAISE(ABORT, 'ledger outcomes are append-only'); END;
     CREATE TABLE uploads (
        seq INTEGER PRIMARY KEY REFERENCES entries(seq),
        state TEXT NOT NULL,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
     );
     CREATE INDEX uploads_by_state ON uploads(state, seq);
     CREATE TABLE batches (
        batch_no INTEGER PRIMARY KEY,
        state TEXT NOT NULL,
        opened_at INTEGER NOT NULL,
        closing_at INTEGER,
        result TEXT
     );
     CREATE TABLE hotlist (
        pan_index BLOB PRIMARY KEY,
        pan_masked TEXT NOT NULL,
        reason TEXT NOT NULL,
        version INTEGER NOT NULL
     );
     CREATE TABLE params (name TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE cardholders (
        ssn_index BLOB PRIMARY KEY,
        card_index BLOB NOT NULL,
        record_enc BLOB NOT NULL,
        version INTEGER NOT NULL
     );
     CREATE INDEX cardholders_by_card ON cardholders(card_index);",
    // 2: entries by batch, for batch totals; a log of sync runs for `sync-agent status`.
    "CREATE INDEX entries_by_batch ON entries(batch_no, seq);
     CREATE TABLE sync_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        outcome TEXT NOT NULL,
        detail TEXT
     );",
    // 3: recovered debits (the card's log proves a debit whose cryptogram never reached the
    // terminal) and the state machine in the schema. `evidence` holds the JSON of
    // `recovery::RecoveryEvidence` (no PAN: the entry holds it sealed). The triggers refuse an
    // unknown state, an outcome the state machine does not allow after the entry's latest one
    // (`unknown` may follow `unknown` only with a note: an unclear recovery), and a `recovered`
    // outcome without its ATC and evidence, with a cryptogram, or evidence on any other state.
    "ALTER TABLE outcomes ADD COLUMN evidence TEXT;
     CREATE TRIGGER outcomes_state_known BEFORE INSERT ON outcomes
        WHEN NEW.state NOT IN ('approved_offline', 'declined', 'unknown', 'voided', 'recovered')
        BEGIN SELECT RAISE(ABORT, 'ledger outcome state unknown'); END;
     CREATE TRIGGER outcomes_transition BEFORE INSERT ON outcomes
        WHEN EXISTS (SELECT 1 FROM outcomes WHERE seq = NEW.seq)
         AND NOT ((SELECT state FROM outcomes WHERE seq = NEW.seq ORDER BY id DESC LIMIT 1)
                      = 'unknown'
                  AND (NEW.state <> 'unknown' OR NEW.note IS NOT NULL))
        BEGIN SELECT RAISE(ABORT, 'ledger outcome not allowed after the entry''s state'); END;
     CREATE TRIGGER outcomes_recovered_evidence BEFORE INSERT ON outcomes
        WHEN (NEW.state = 'recovered')
             <> (NEW.evidence IS NOT NULL AND NEW.atc IS NOT NULL AND NEW.cryptogram IS NULL)
          OR (NEW.state <> 'recovered' AND NEW.evidence IS NOT NULL)
        BEGIN SELECT RAISE(ABORT, 'a recovered outcome needs its ATC and evidence, and only it'); END;",
    // 4: what the recovery of a torn debit needs, written with the intent in one transaction
    // (`Ledger::begin_payment_with`): the card's ATC and EC balance before, the PBOC date and
    // time sent to the card, and a blind index of the card's identity so the entry is found
    // again at the card's next insert. Append-only like the entries.
    "CREATE TABLE intent_facts (
        seq INTEGER PRIMARY KEY REFERENCES entries(seq),
        card_index BLOB NOT NULL,
        atc_before INTEGER,
        balance_before_fen INTEGER,
        date_bcd TEXT NOT NULL,
        time_bcd TEXT NOT NULL
     );
     CREATE INDEX intent_facts_by_card ON intent_facts(card_index);
     CREATE TRIGGER intent_facts_no_update BEFORE UPDATE ON intent_facts
        BEGIN SELECT RAISE(ABORT, 'ledger intent facts are append-only'); END;
     CREATE TRIGGER intent_facts_no_delete BEFORE DELETE ON intent_facts
        BEGIN SELECT RAISE(ABORT, 'ledger intent facts are append-only'); END;",
    // 5: the references a point-of-sale system gives its debits through the counter API,
    // written with the intent in one transaction (`Ledger::begin_payment_referenced`), so that
    // a reference debits at most once. The request is kept only as a keyed blind index (an
    // item may name a medicine). Append-only like the entries.
    "CREATE TABLE client_refs (
        reference TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE REFERENCES entries(seq),
        request_index BLOB NOT NULL
     );
     CREATE TRIGGER client_refs_no_update BEFORE UPDATE ON client_refs
        BEGIN SELECT RAISE(ABORT, 'ledger client references are append-only'); END;
     CREATE TRIGGER client_refs_no_delete BEFORE DELETE ON client_refs
        BEGIN SELECT RAISE(ABORT, 'ledger client references are append-only'); END;",
    // 6: medical-account debits (`Ledger::record_medical_debit`), final at once in state
    // `recorded`. `medical_debits` (append-only) holds the blind index of the cardholder's
    // social-security number (the same as `cardholders.ssn_index`, to sum what this terminal
    // debited from an account) and, sealed, the card number, the social-security number and the
    // card's certificates and signature (the ICC certificate holds the PAN). The triggers admit
    // the state `recorded`, and only for an entry of kind `medical_debit` with its evidence row,
    // without a card result; a medical debit has no other state.
    "CREATE TABLE medical_debits (
        seq INTEGER PRIMARY KEY REFERENCES entries(seq),
        holder_index BLOB NOT NULL,
        medical_enc BLOB NOT NULL
     );
     CREATE INDEX medical_debits_by_holder ON medical_debits(holder_index);
     CREATE TRIGGER medical_debits_no_update BEFORE UPDATE ON medical_debits
        BEGIN SELECT RAISE(ABORT, 'ledger medical debits are append-only'); END;
     CREATE TRIGGER medical_debits_no_delete BEFORE DELETE ON medical_debits
        BEGIN SELECT RAISE(ABORT, 'ledger medical debits are append-only'); END;
     CREATE TRIGGER medical_debits_kind BEFORE INSERT ON medical_debits
        WHEN (SELECT kind FROM entries WHERE seq = NEW.seq) IS NOT 'medical_debit'
        BEGIN SELECT RAISE(ABORT, 'medical evidence belongs to a medical debit'); END;
     DROP TRIGGER outcomes_state_known;
     CREATE TRIGGER outcomes_state_known BEFORE INSERT ON outcomes
        WHEN NEW.state NOT IN ('approved_offline', 'declined', 'unknown', 'voided', 'recovered',
                               'recorded')
        BEGIN SELECT RAISE(ABORT, 'ledger outcome state unknown'); END;
     CREATE TRIGGER outcomes_recorded_medical BEFORE INSERT ON outcomes
        WHEN (NEW.state = 'recorded')
             <> EXISTS (SELECT 1 FROM medical_debits WHERE seq = NEW.seq)
          OR (NEW.state = 'recorded'
              AND (NEW.atc IS NOT NULL OR NEW.cryptogram IS NOT NULL OR NEW.evidence IS NOT NULL))
        BEGIN SELECT RAISE(ABORT, 'a medical debit is recorded, with its evidence, and only it'); END;",
];

/// The schema version this code writes.
pub fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The schema version of an open database.
pub fn version(conn: &Connection) -> Result<i64, LedgerError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Bring the schema to [`latest`].
pub fn migrate(conn: &mut Connection) -> Result<(), LedgerError> {
    migrate_to(conn, latest())
}

/// Bring the schema to `target` (tests use it to make old files).
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), LedgerError> {
    let found = version(conn)?;
    if found > latest() {
        return Err(LedgerError::SchemaTooNew {
            found,
            supported: latest(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let to = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if to <= found || to > target {
            continue;
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another connection may have migrated meanwhile.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now >= to {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
    }
    Ok(())
}
