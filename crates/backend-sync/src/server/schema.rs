//! The server's schema, the same text for SQLite and PostgreSQL (see [`super::db`]), with its
//! version in `schema_version`. Exactly-once booking rests on two constraints of `entries`: the
//! primary key (terminal, sequence number) and the unique idempotency id. Entry `status` is
//! `booked`, `booked_unverified` (a recovered debit: no cryptogram) or `rejected`; a medical
//! debit (`state = 'recorded'`) is `booked` once its card signature verified.

use super::db::{Db, DbError};

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE terminals (
        terminal_id TEXT PRIMARY KEY,
        region TEXT NOT NULL,
        token_hash BYTEA NOT NULL,
        public_key BYTEA,
        registered_at BIGINT,
        created_at BIGINT NOT NULL
     );
     CREATE TABLE nonces (
        terminal_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        seen_at BIGINT NOT NULL,
        PRIMARY KEY (terminal_id, nonce)
     );
     CREATE INDEX nonces_by_time ON nonces (seen_at);
     CREATE TABLE entries (
        terminal_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        idempotency_id TEXT NOT NULL UNIQUE,
        batch_no BIGINT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        amount_fen BIGINT NOT NULL,
        currency BIGINT NOT NULL,
        pan_masked TEXT NOT NULL,
        pan_enc BYTEA NOT NULL,
        psn_enc BYTEA NOT NULL,
        txn_time TEXT NOT NULL,
        atc BIGINT,
        cid BIGINT,
        cryptogram TEXT,
        algorithm TEXT,
        mac_data TEXT,
        digest BYTEA NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        booked_at BIGINT NOT NULL,
        PRIMARY KEY (terminal_id, seq)
     );
     CREATE INDEX entries_by_batch ON entries (terminal_id, batch_no);
     CREATE TABLE batch_closes (
        terminal_id TEXT NOT NULL,
        batch_no BIGINT NOT NULL,
        closed_at BIGINT NOT NULL,
        balanced BIGINT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (terminal_id, batch_no)
     );
     CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
     INSERT INTO counters (name, value) VALUES ('hotlist', 0), ('params', 0), ('cardholders', 0);
     CREATE TABLE hotlist (
        version BIGINT PRIMARY KEY,
        pan_index BYTEA NOT NULL,
        pan_enc BYTEA NOT NULL,
        pan_masked TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT NOT NULL,
        at BIGINT NOT NULL
     );
     CREATE TABLE params (name TEXT PRIMARY KEY, value TEXT NOT NULL, version BIGINT NOT NULL);
     CREATE TABLE cardholders (
        ssn_index BYTEA PRIMARY KEY,
        region TEXT NOT NULL,
        record_enc BYTEA NOT NULL,
        version BIGINT NOT NULL
     );
     CREATE INDEX cardholders_by_region ON cardholders (region, version);",
    // 2: recovered debits. `card_index` is a keyed blind index of the card (PAN and PSN) so a
    // recovered debit's ATC can be checked against the card's other bookings without a PAN in
    // clear (rows booked before this version get it at the next start, `booking::
    // backfill_card_index`); `recovery` holds the JSON of the recovered ATC and evidence. The
    // partial unique index lets one recovered debit only claim a card's ATC, even when two
    // instances book at once.
    "ALTER TABLE entries ADD COLUMN card_index BYTEA;
     ALTER TABLE entries ADD COLUMN recovery TEXT;
     CREATE INDEX entries_by_card_atc ON entries (card_index, atc);
     CREATE UNIQUE INDEX entries_recovered_card_atc ON entries (card_index, atc)
        WHERE state = 'recovered' AND status = 'booked_unverified';",
    // 3: medical-account debits. `holder_index` is the keyed blind index of the cardholder's
    // social-security number (the `ssn_index` of the cardholder record), to sum the medical
    // debits booked from an account; `medical_enc` holds, sealed, the identity and the card's
    // certificates and signature (the ICC certificate holds the PAN).
    "ALTER TABLE entries ADD COLUMN holder_index BYTEA;
     ALTER TABLE entries ADD COLUMN medical_enc BYTEA;
     CREATE INDEX entries_by_holder ON entries (holder_index, booked_at);",
];

/// Bring the schema up to date. Safe when several servers start at once: PostgreSQL takes an
/// advisory lock for the migration, SQLite an immediate transaction.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    db.script("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let to = i64::try_from(i + 1).unwrap_or(i64::MAX);
        let lock = if db.is_postgres() {
            "SELECT pg_advisory_xact_lock(515151);"
        } else {
            ""
        };
        let rows = db
            .query(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                vec![],
            )
            .await?;
        let have = rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
        if have >= to {
            continue;
        }
        let script = format!(
            "{lock}
             {sql};
             INSERT INTO schema_version (version) VALUES ({to});"
        );
        match db.script(&script).await {
            Ok(()) => {}
            Err(e) => {
                // Another server may have applied it between our check and our lock.
                let rows = db
                    .query(
                        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                        vec![],
                    )
                    .await?;
                let now = rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
                if now < to {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
