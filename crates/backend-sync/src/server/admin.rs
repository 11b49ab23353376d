//! Administration, run against the database directly (the `central-server` subcommands): add a
//! terminal and issue its one-time enrolment token, report a card lost (a hot-list entry) or
//! clear it, set a parameter, import cardholder records from CSV, and a booking report. Every
//! change that terminals download takes the next number of a counter row in the same
//! transaction, so versions are handed out in commit order even with several writers.

use card_core::crypto::sm3;

use super::db::{Db, DbError, Stmt, Val};
use crate::clock;
use crate::entry::{Pan, Region, TerminalId, TxnTime};
use crate::field_crypto::{FieldCryptoError, FieldKey};
use crate::pause::PauseHook;
use crate::wire::{CardholderRecord, HotListAction};

/// Errors of administration, one per cause.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// Sealing a personal field failed.
    #[error("field encryption: {0}")]
    Crypto(#[from] FieldCryptoError),
    /// The terminal exists already.
    #[error("terminal {0} exists already")]
    TerminalExists(String),
    /// A CSV row is wrong (line numbers count the header as line 1).
    #[error("CSV line {line}: {problem}")]
    Csv {
        /// Line.
        line: u64,
        /// What is wrong (never the value).
        problem: String,
    },
    /// The random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// A stored value cannot be read back.
    #[error("stored value unreadable: {0}")]
    Corrupt(&'static str),
    /// A parameter name or value out of bounds.
    #[error(
        "parameter names are 1-64 characters of a-z, 0-9 and '_'; values at most 256 characters"
    )]
    Parameter,
}

/// Associated data of a hot-list PAN.
pub fn hotlist_aad(pan_index: &[u8]) -> Vec<u8> {
    let mut a = b"hotlist.pan:".to_vec();
    a.extend_from_slice(hex::encode(pan_index).as_bytes());
    a
}

/// Associated data of a cardholder record.
pub fn cardholder_aad(ssn_index: &[u8]) -> Vec<u8> {
    let mut a = b"cardholders.record:".to_vec();
    a.extend_from_slice(hex::encode(ssn_index).as_bytes());
    a
}

async fn counter(db: &Db, name: &str) -> Result<u64, AdminError> {
    let rows = db
        .query(
            "SELECT value FROM counters WHERE name = $1",
            vec![Val::Text(name.into())],
        )
        .await?;
    let v = rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Add a terminal of a region; returns its one-time enrolment token (32 hex digits), of which
/// only the SM3 digest is stored.
pub async fn add_terminal(db: &Db, id: &TerminalId, region: &Region) -> Result<String, AdminError> {
    let mut t = [0u8; 16];
    getrandom::fill(&mut t).map_err(|_| AdminError::Rng)?;
    let token = hex::encode(t);
    let n = db
        .execute(
            "INSERT INTO terminals (terminal_id, region, token_hash, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            vec![
                Val::Text(id.to_string()),
                Val::Text(region.as_str().into()),
                Val::Bytes(sm3::digest(token.as_bytes()).to_vec()),
                Val::Int(clock::unix_now()),
            ],
        )
        .await?;
    if n == 0 {
        return Err(AdminError::TerminalExists(id.to_string()));
    }
    Ok(token)
}

/// Put a card on the hot list (`Add`, e.g. reported lost) or take it off (`Remove`); returns
/// the hot-list version after the change.
pub async fn report_card(
    db: &Db,
    key: &FieldKey,
    pan: &Pan,
    action: HotListAction,
    reason: &str,
) -> Result<u64, AdminError> {
    let index = key.blind_index("pan", pan.expose());
    let sealed = key.seal_str(&hotlist_aad(&index), pan.expose())?;
    let reason: String = reason.chars().take(64).collect();
    db.transaction(
        vec![
            Stmt::new(
                "UPDATE counters SET value = value + 1 WHERE name = 'hotlist'",
                vec![],
            ),
            Stmt::new(
                "INSERT INTO hotlist (version, pan_index, pan_enc, pan_masked, action, reason, at)
                 SELECT value, $1, $2, $3, $4, $5, $6 FROM counters WHERE name = 'hotlist'",
                vec![
                    Val::Bytes(index.to_vec()),
                    Val::Bytes(sealed),
                    Val::Text(pan.masked()),
                    Val::Text(match action {
                        HotListAction::Add => "add".into(),
                        HotListAction::Remove => "remove".into(),
                    }),
                    Val::Text(reason),
                    Val::Int(clock::unix_now()),
                ],
            ),
        ],
        &PauseHook::none(),
    )
    .await?;
    tracing::info!(card = %pan.masked(), ?action, "hot list changed");
    counter(db, "hotlist").await
}

/// Set a terminal parameter; returns the parameter-set version after the change.
pub async fn set_param(db: &Db, name: &str, value: &str) -> Result<u64, AdminError> {
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok || value.chars().count() > 256 {
        return Err(AdminError::Parameter);
    }
    db.transaction(
        vec![
            Stmt::new("UPDATE counters SET value = value + 1 WHERE name = 'params'", vec![]),
            Stmt::new(
                "INSERT INTO params (name, value, version)
                 SELECT $1, $2, value FROM counters WHERE name = 'params'
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, version = excluded.version",
                vec![Val::Text(name.into()), Val::Text(value.into())],
            ),
        ],
        &PauseHook::none(),
    )
    .await?;
    counter(db, "params").await
}

fn check_ssn(s: &str) -> bool {
    s.len() == 18
        && s.bytes().take(17).all(|b| b.is_ascii_digit())
        && s.bytes()
            .last()
            .is_some_and(|b| b.is_ascii_digit() || b == b'X')
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 8] = [
    "ssn",
    "name",
    "card_no",
    "region",
    "insurance_status",
    "contribution_months",
    "medical_balance_fen",
    "as_of",
];

/// Parse cardholder CSV (header row with [`CSV_COLUMNS`]); every row is checked before anything
/// is stored.
pub fn parse_cardholder_csv(data: &[u8]) -> Result<Vec<CardholderRecord>, AdminError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(data);
    let header = rdr
        .headers()
        .map_err(|_| AdminError::Csv {
            line: 1,
            problem: "unreadable header".into(),
        })?
        .clone();
    if header.iter().collect::<Vec<_>>() != CSV_COLUMNS {
        return Err(AdminError::Csv {
            line: 1,
            problem: format!("header must be {}", CSV_COLUMNS.join(",")),
        });
    }
    let mut out = Vec::new();
    for (i, row) in rdr.records().enumerate() {
        let line = u64::try_from(i).unwrap_or(0) + 2;
        let bad = |field: &str| AdminError::Csv {
            line,
            problem: format!("invalid {field}"),
        };
        let row = row.map_err(|_| AdminError::Csv {
            line,
            problem: "unreadable row".into(),
        })?;
        let f = |n: usize| row.get(n).unwrap_or("");
        if row.len() != CSV_COLUMNS.len() {
            return Err(AdminError::Csv {
                line,
                problem: "wrong number of fields".into(),
            });
        }
        let ssn = f(0);
        if !check_ssn(ssn) {
            return Err(bad("ssn"));
        }
        let name = f(1);
        if name.is_empty() || name.chars().count() > 64 {
            return Err(bad("name"));
        }
        let card_no = f(2);
        if card_no.is_empty()
            || card_no.len() > 20
            || !card_no.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(bad("card_no"));
        }
        let region: Region = f(3).parse().map_err(|_| bad("region"))?;
        let status = f(4);
        if status.is_empty() || status.len() > 32 {
            return Err(bad("insurance_status"));
        }
        out.push(CardholderRecord {
            ssn: ssn.into(),
            name: name.into(),
            card_no: card_no.into(),
            region,
            insurance_status: status.into(),
            contribution_months: f(5).parse().map_err(|_| bad("contribution_months"))?,
            medical_balance_fen: f(6).parse().map_err(|_| bad("medical_balance_fen"))?,
            as_of: f(7).parse::<TxnTime>().map_err(|_| bad("as_of"))?,
            version: 0,
        });
    }
    Ok(out)
}

/// Import cardholder records (insert or replace by social-security number) in one transaction;
/// returns how many.
pub async fn import_cardholders(
    db: &Db,
    key: &FieldKey,
    records: &[CardholderRecord],
) -> Result<usize, AdminError> {
    let mut stmts = Vec::with_capacity(records.len() * 2);
    for r in records {
        let index = key.blind_index("ssn", &r.ssn);
        let json = zeroize::Zeroizing::new(serde_json::to_vec(r).map_err(|_| AdminError::Csv {
            line: 0,
            problem: "encoding".into(),
        })?);
        let sealed = key.seal(&cardholder_aad(&index), &json)?;
        stmts.push(Stmt::new(
            "UPDATE counters SET value = value + 1 WHERE name = 'cardholders'",
            vec![],
        ));
        stmts.push(Stmt::new(
            "INSERT INTO cardholders (ssn_index, region, record_enc, version)
             SELECT $1, $2, $3, value FROM counters WHERE name = 'cardholders'
             ON CONFLICT (ssn_index) DO UPDATE SET region = excluded.region,
                record_enc = excluded.record_enc, version = excluded.version",
            vec![
                Val::Bytes(index.to_vec()),
                Val::Text(r.region.as_str().into()),
                Val::Bytes(sealed),
            ],
        ));
    }
    db.transaction(stmts, &PauseHook::none()).await?;
    Ok(records.len())
}

/// One terminal's line of the booking report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalReport {
    /// Terminal.
    pub terminal_id: String,
    /// Entries recorded (booked, any state).
    pub booked: u64,
    /// Entries rejected.
    pub rejected: u64,
    /// Approved entries.
    pub approved: u64,
    /// Their amount in fen (debits minus credits).
    pub approved_net_fen: i64,
    /// Highest sequence number seen.
    pub max_seq: u64,
    /// Recovered debits booked unverified (no cryptogram; outside `approved`).
    pub recovered: u64,
    /// Their amount in fen.
    pub recovered_fen: i64,
    /// Medical-account debits booked (the card's signature verified; outside `approved`).
    pub medical: u64,
    /// Their amount in fen.
    pub medical_fen: i64,
}

/// Per-terminal counts and amounts.
pub async fn report(db: &Db) -> Result<Vec<TerminalReport>, AdminError> {
    let rows = db
        .query(
            "SELECT terminal_id,
                CAST(SUM(CASE WHEN status = 'booked' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'booked' AND state = 'approved_offline' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'booked' AND state = 'approved_offline'
                    THEN (CASE WHEN kind = 'refund' THEN -amount_fen ELSE amount_fen END) ELSE 0 END) AS BIGINT),
                CAST(MAX(seq) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'booked_unverified' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'booked_unverified' THEN amount_fen ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'booked' AND kind = 'medical_debit' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'booked' AND kind = 'medical_debit' THEN amount_fen ELSE 0 END) AS BIGINT)
             FROM entries GROUP BY terminal_id ORDER BY terminal_id",
            vec![],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let u = |i: usize| -> Result<u64, AdminError> { Ok(u64::try_from(r.int(i)?).unwrap_or(0)) };
        out.push(TerminalReport {
            terminal_id: r.text(0)?,
            booked: u(1)?,
            rejected: u(2)?,
            approved: u(3)?,
            approved_net_fen: r.int(4)?,
            max_seq: u(5)?,
            recovered: u(6)?,
            recovered_fen: r.int(7)?,
            medical: u(8)?,
            medical_fen: r.int(9)?,
        });
    }
    Ok(out)
}

/// A recovered debit as `central-server recovered` lists it for an operator to settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredLine {
    /// Terminal.
    pub terminal_id: String,
    /// Its sequence number.
    pub seq: u64,
    /// Settlement batch.
    pub batch_no: u64,
    /// Masked PAN.
    pub pan_masked: String,
    /// Amount in fen.
    pub amount_fen: i64,
    /// Transaction time.
    pub txn_time: String,
    /// The recovered ATC and its evidence.
    pub recovered: crate::recovery::Recovered,
    /// A verified entry (TC or AAC) of the same card was booked with the same ATC (it arrived
    /// after the recovered debit): the two cannot both be right.
    pub clash: bool,
}

/// Every recovered debit booked unverified, oldest first.
pub async fn recovered_entries(db: &Db) -> Result<Vec<RecoveredLine>, AdminError> {
    let rows = db
        .query(
            "SELECT e.terminal_id, e.seq, e.batch_no, e.pan_masked, e.amount_fen, e.txn_time,
                e.recovery,
                (SELECT COUNT(*) FROM entries v WHERE v.card_index = e.card_index
                   AND v.atc = e.atc AND v.status = 'booked'
                   AND v.state IN ('approved_offline', 'declined'))
             FROM entries e WHERE e.status = 'booked_unverified'
             ORDER BY e.booked_at, e.terminal_id, e.seq",
            vec![],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let recovered = serde_json::from_str(&r.text(6)?)
            .map_err(|_| AdminError::Corrupt("entries.recovery"))?;
        out.push(RecoveredLine {
            terminal_id: r.text(0)?,
            seq: u64::try_from(r.int(1)?).unwrap_or(0),
            batch_no: u64::try_from(r.int(2)?).unwrap_or(0),
            pan_masked: r.text(3)?,
            amount_fen: r.int(4)?,
            txn_time: r.text(5)?,
            recovered,
            clash: r.int(7)? > 0,
        });
    }
    Ok(out)
}
