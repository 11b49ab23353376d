//! Registration and exactly-once booking.
//!
//! An uploaded entry is answered from what the database already holds when its sequence number
//! or idempotency id is known: the same content again is `duplicate` (or the same rejection),
//! other content under a known number or id is `rejected: conflict`. A new entry is checked
//! (final state, currency, amount, masked PAN, cryptogram type, the MACed data against the
//! entry) and its cryptogram verified by the HSM; then every new decision of the batch is
//! inserted in one transaction with `ON CONFLICT DO NOTHING`. The primary key (terminal,
//! sequence number) and the unique idempotency id make a second insert of the same entry a
//! no-op even from another server instance at the same moment; an insert that did nothing is
//! answered from the row that won.
//!
//! A `recovered` entry (a debit proven by the card's log, no cryptogram) has nothing for the HSM
//! to verify. Its evidence is checked against the entry ([`Recovered::check`]) and its ATC
//! against the card's other bookings (none may have used it), and it is stored as
//! `booked_unverified`: outside the verified totals, reported apart at reconciliation.
//!
//! A medical-account debit (`medical_debit`, `recorded`) has no cryptogram either: the card's
//! SM2 signature over a challenge bound to the entry is checked instead (the binding, the
//! certificate chain to a CA key of the server's SSSE trust store, the signature:
//! [`MedicalDebit::verify_card`]), then the server's own medical balance of the cardholder
//! (`import-cardholders`): booked only if the account covers it, inside the booking
//! transaction, else `rejected: medical_overdraft`. What the counter checked offline against
//! its own copies is checked again against the server's: a card on the hot list at the
//! transaction's time is `rejected: card_hot_listed`, a cardholder whose insurance is not
//! `active` `rejected: insurance_inactive` (a counter with a stale hot list or record cannot
//! make the fund pay).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use card_core::crypto::sm3;

use super::auth::{self, Authed};
use super::db::{Row, Stmt, Val};
use super::hsm::HsmError;
use super::{ApiError, AppState, Request, json_response};
use crate::clock;
use crate::entry::{
    CNY, CryptogramType, EntryKind, EntryState, MAX_AMOUNT_FEN, Pan, Psn, TxnTime, UploadEntry,
};
use crate::field_crypto::{FieldKey, ct_eq};
use crate::mac_data;
use crate::medical::{self, MedicalDebit, MedicalError};
use crate::recovery::Recovered;
use crate::signing;
use crate::wire::{
    self, CardholderRecord, EntryResult, EntryStatus, ErrorCode, RegisterRequest, RegisterResponse,
    RejectReason, UploadRequest, UploadResponse,
};
use card_core::crypto::sm2_cert::YearMonth;
use card_core::ssse::fields::IdNumber;

/// `POST /v1/register`.
pub(crate) async fn register(state: &AppState, req: &Request) -> Result<Response, ApiError> {
    let auth = auth::parse_auth(req, state.window_secs)?;
    let body: RegisterRequest =
        wire::parse(&req.body, wire::MAX_BODY_BYTES).map_err(|e| ApiError::wire(&e))?;
    if body.terminal_id != auth.terminal_id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidField,
            "terminal_id differs from the signing terminal",
        ));
    }
    let key = signing::public_key_from_hex(&body.public_key).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidField,
            "public_key is not an SM2 point",
        )
    })?;
    // Proof of possession: the request is signed with the key being registered.
    auth::check_signature(&auth, &key, req)?;
    let rows = state
        .db
        .query(
            "SELECT region, token_hash, public_key FROM terminals WHERE terminal_id = $1",
            vec![Val::Text(body.terminal_id.to_string())],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    let bad = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::BadEnrollment,
            "wrong terminal or enrolment token",
        )
    };
    let row = rows.first().ok_or_else(bad)?;
    let token_hash = row.bytes(1).map_err(|e| ApiError::db(&e))?;
    if !ct_eq(&sm3::digest(body.enrollment_token.as_bytes()), &token_hash) {
        return Err(bad());
    }
    let xy = key.to_xy();
    match row.opt_bytes(2).map_err(|e| ApiError::db(&e))? {
        Some(existing) if existing != xy => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::AlreadyRegistered,
                "the terminal is registered with another key",
            ));
        }
        Some(_) => {}
        None => {
            let n = state
                .db
                .execute(
                    "UPDATE terminals SET public_key = $1, registered_at = $2
                     WHERE terminal_id = $3 AND public_key IS NULL",
                    vec![
                        Val::Bytes(xy.to_vec()),
                        Val::Int(clock::unix_now()),
                        Val::Text(body.terminal_id.to_string()),
                    ],
                )
                .await
                .map_err(|e| ApiError::db(&e))?;
            if n == 0 {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::AlreadyRegistered,
                    "the terminal was registered meanwhile",
                ));
            }
        }
    }
    auth::consume_nonce(state, &auth.terminal_id, &auth.nonce_hex()).await?;
    let region = row
        .text(0)
        .map_err(|e| ApiError::db(&e))?
        .parse()
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "stored region",
            )
        })?;
    tracing::info!(terminal = %body.terminal_id, "terminal registered");
    Ok(json_response(
        StatusCode::OK,
        &RegisterResponse {
            terminal_id: body.terminal_id,
            region,
            server_public_key: hex::encode_upper(state.server_key.public_key().to_xy()),
            server_time: clock::unix_now(),
        },
    ))
}

/// The checks that need no database and no HSM.
fn static_check(e: &UploadEntry) -> Result<(), RejectReason> {
    if !e.state.is_final() {
        return Err(RejectReason::NotFinal);
    }
    if e.currency != CNY {
        return Err(RejectReason::CurrencyUnsupported);
    }
    if e.amount_fen == 0 || e.amount_fen > MAX_AMOUNT_FEN {
        return Err(RejectReason::AmountInvalid);
    }
    if e.pan_masked != e.pan.masked() {
        return Err(RejectReason::MaskMismatch);
    }
    // A medical debit is `recorded` with its evidence and nothing else; nothing else is either.
    let medical_kind = e.kind == EntryKind::MedicalDebit;
    if medical_kind || e.state == EntryState::Recorded || e.medical.is_some() {
        let shape = medical_kind
            && e.state == EntryState::Recorded
            && e.card.is_none()
            && e.recovered.is_none();
        return match (&e.medical, shape) {
            (Some(m), true) => m
                .check_binding(
                    &e.terminal_id,
                    &e.idempotency_id,
                    e.amount_fen,
                    e.currency,
                    &e.txn_time,
                )
                .map_err(|_| RejectReason::DataMismatch),
            _ => Err(RejectReason::StateInconsistent),
        };
    }
    match (&e.recovered, e.state) {
        (Some(r), EntryState::Recovered) if e.card.is_none() => {
            return r
                .check(e.amount_fen, e.currency, &e.txn_time, e.kind)
                .map_err(|x| {
                    if x.is_mismatch() {
                        RejectReason::DataMismatch
                    } else {
                        RejectReason::EvidenceInvalid
                    }
                });
        }
        (None, EntryState::Recovered) | (Some(_), _) => {
            return Err(RejectReason::StateInconsistent);
        }
        (None, _) => {}
    }
    let want = match e.state {
        EntryState::ApprovedOffline => Some(CryptogramType::Tc),
        EntryState::Declined => Some(CryptogramType::Aac),
        _ => None,
    };
    match (&e.card, want) {
        (None, None) => Ok(()),
        (Some(c), Some(t)) if c.cryptogram_type() == t => mac_data::check(
            &c.mac_data.0,
            e.amount_fen,
            e.currency,
            &e.txn_time,
            e.kind,
            c.atc,
        )
        .map_err(|_| RejectReason::DataMismatch),
        _ => Err(RejectReason::StateInconsistent),
    }
}

/// What is already stored about an entry.
struct Existing {
    seq: u64,
    idempotency_id: String,
    digest: Vec<u8>,
    status: String,
    reason: Option<String>,
}

fn existing_from(r: &Row) -> Result<Existing, ApiError> {
    let e = |x: super::db::DbError| ApiError::db(&x);
    Ok(Existing {
        seq: u64::try_from(r.int(0).map_err(e)?).unwrap_or(0),
        idempotency_id: r.text(1).map_err(e)?,
        digest: r.bytes(2).map_err(e)?,
        status: r.text(3).map_err(e)?,
        reason: r.opt_text(4).map_err(e)?,
    })
}

/// The answer for an entry the database already knows.
fn answer_known(
    entry: &UploadEntry,
    digest: &[u8],
    known: &Existing,
) -> (EntryStatus, Option<RejectReason>) {
    let same = known.seq == entry.seq
        && known.idempotency_id == entry.idempotency_id.to_hex()
        && ct_eq(&known.digest, digest);
    if !same {
        return (EntryStatus::Rejected, Some(RejectReason::Conflict));
    }
    if known.status == "booked" || known.status == "booked_unverified" {
        (EntryStatus::Duplicate, None)
    } else {
        (
            EntryStatus::Rejected,
            Some(RejectReason::parse(
                known.reason.as_deref().unwrap_or("other"),
            )),
        )
    }
}

async fn lookup(
    state: &AppState,
    terminal: &str,
    entries: &[&UploadEntry],
) -> Result<(HashMap<u64, Existing>, HashMap<String, Existing>), ApiError> {
    let mut by_seq = HashMap::new();
    let mut by_id = HashMap::new();
    if entries.is_empty() {
        return Ok((by_seq, by_id));
    }
    // Two queries with IN lists; a batch holds at most MAX_BATCH_ENTRIES entries.
    let mut params = vec![Val::Text(terminal.to_string())];
    let seq_marks: Vec<String> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            params.push(Val::Int(i64::try_from(e.seq).unwrap_or(i64::MAX)));
            format!("${}", i + 2)
        })
        .collect();
    let sql = format!(
        "SELECT seq, idempotency_id, digest, status, reason FROM entries
         WHERE terminal_id = $1 AND seq IN ({})",
        seq_marks.join(", ")
    );
    for r in state
        .db
        .query(&sql, params)
        .await
        .map_err(|e| ApiError::db(&e))?
    {
        let x = existing_from(&r)?;
        by_seq.insert(x.seq, x);
    }
    let mut params = Vec::new();
    let id_marks: Vec<String> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            params.push(Val::Text(e.idempotency_id.to_hex()));
            format!("${}", i + 1)
        })
        .collect();
    let sql = format!(
        "SELECT seq, idempotency_id, digest, status, reason, terminal_id FROM entries
         WHERE idempotency_id IN ({})",
        id_marks.join(", ")
    );
    for r in state
        .db
        .query(&sql, params)
        .await
        .map_err(|e| ApiError::db(&e))?
    {
        let x = existing_from(&r)?;
        let owner = r.text(5).map_err(|e| ApiError::db(&e))?;
        if owner != terminal {
            // Another terminal's entry: any reuse of its id is a conflict.
            let conflict = Existing {
                seq: u64::MAX,
                idempotency_id: x.idempotency_id.clone(),
                digest: Vec::new(),
                status: "conflict".into(),
                reason: None,
            };
            by_id.insert(conflict.idempotency_id.clone(), conflict);
        } else {
            by_id.insert(x.idempotency_id.clone(), x);
        }
    }
    Ok((by_seq, by_id))
}

/// The keyed blind index of a card (PAN and PSN): finds a card's bookings without its PAN.
pub fn card_index(key: &FieldKey, pan: &Pan, psn: &Psn) -> [u8; 32] {
    key.blind_index("card", &format!("{}/{}", pan.expose(), psn.as_str()))
}

/// Give every entry booked before schema version 2 its card index (run at start-up; idempotent,
/// so several instances may run it at once). Returns how many rows it filled.
pub async fn backfill_card_index(db: &super::db::Db, key: &FieldKey) -> Result<u64, ApiError> {
    let rows = db
        .query(
            "SELECT terminal_id, seq, pan_enc, psn_enc FROM entries WHERE card_index IS NULL",
            vec![],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    let mut n = 0;
    for r in rows {
        let e = |x: super::db::DbError| ApiError::db(&x);
        let terminal = r.text(0).map_err(e)?;
        let seq = r.int(1).map_err(e)?;
        let open = |what: &str, sealed: &[u8]| {
            key.open_str(
                format!("entries.{what}:{terminal}:{seq}").as_bytes(),
                sealed,
            )
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "a stored PAN does not open with the field key",
                )
            })
        };
        let pan = open("pan", &r.bytes(2).map_err(e)?)?;
        let psn = open("psn", &r.bytes(3).map_err(e)?)?;
        let (Ok(pan), Ok(psn)) = (pan.parse::<Pan>(), psn.parse::<Psn>()) else {
            continue;
        };
        n += db
            .execute(
                "UPDATE entries SET card_index = $1
                 WHERE terminal_id = $2 AND seq = $3 AND card_index IS NULL",
                vec![
                    Val::Bytes(card_index(key, &pan, &psn).to_vec()),
                    Val::Text(terminal.clone()),
                    Val::Int(seq),
                ],
            )
            .await
            .map_err(|e| ApiError::db(&e))?;
    }
    Ok(n)
}

/// Recovered debits of `decisions` whose card ATC a booked entry already used become
/// `rejected: atc_conflict`: an approved, declined or recovered entry of the same card with that
/// ATC in the database, any approved or declined entry of this batch, or a recovered one before
/// it in this batch.
async fn refuse_atc_conflicts(
    state: &AppState,
    entries: &[UploadEntry],
    decisions: &mut [(usize, &'static str, Option<RejectReason>)],
) -> Result<(), ApiError> {
    let claim = |e: &UploadEntry| {
        let atc = e
            .card
            .as_ref()
            .map(|c| c.atc)
            .or(e.recovered.as_ref().map(|r| r.atc))?;
        Some((card_index(&state.field_key, &e.pan, &e.psn), atc))
    };
    let mut claimed = std::collections::HashSet::new();
    for (i, status, _) in decisions.iter() {
        if let (&"booked", Some(e)) = (status, entries.get(*i))
            && let Some(c) = claim(e)
        {
            claimed.insert(c);
        }
    }
    for (i, status, reason) in decisions.iter_mut() {
        if *status != "booked_unverified" {
            continue;
        }
        let Some((index, atc)) = entries.get(*i).and_then(claim) else {
            continue;
        };
        let rows = state
            .db
            .query(
                "SELECT COUNT(*) FROM entries WHERE card_index = $1 AND atc = $2
                   AND status IN ('booked', 'booked_unverified')
                   AND state IN ('approved_offline', 'declined', 'recovered')",
                vec![Val::Bytes(index.to_vec()), Val::Int(i64::from(atc))],
            )
            .await
            .map_err(|e| ApiError::db(&e))?;
        let in_db = rows
            .first()
            .map(|r| r.int(0))
            .transpose()
            .map_err(|e| ApiError::db(&e))?
            .unwrap_or(0);
        if in_db > 0 || !claimed.insert((index, atc)) {
            *status = "rejected";
            *reason = Some(RejectReason::AtcConflict);
        }
    }
    Ok(())
}

/// The columns every entry insert fills, in the order of [`insert_values`] (`$1` to `$25`).
const INSERT_COLUMNS: &str = "terminal_id, seq, idempotency_id, batch_no, kind, state, amount_fen,
    currency, pan_masked, pan_enc, psn_enc, txn_time, atc, cid, cryptogram, algorithm, mac_data,
    digest, status, reason, booked_at, card_index, recovery, holder_index, medical_enc";

/// `$1, $2, … $25`.
fn insert_marks() -> String {
    (1..=25)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn internal(message: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        message,
    )
}

/// The keyed blind index of a social-security number: `cardholders.ssn_index` of its record,
/// and `entries.holder_index` of its medical debits.
pub fn holder_index(key: &FieldKey, ssn: &IdNumber) -> [u8; 32] {
    key.blind_index("ssn", ssn.reveal())
}

fn insert_values(
    state: &AppState,
    e: &UploadEntry,
    digest: &[u8],
    status: &str,
    reason: Option<RejectReason>,
) -> Result<Vec<Val>, ApiError> {
    let terminal = e.terminal_id.to_string();
    let seal = |what: &str, v: &[u8]| {
        state
            .field_key
            .seal(format!("entries.{what}:{terminal}:{}", e.seq).as_bytes(), v)
            .map_err(|_| internal("sealing failed"))
    };
    let card = e.card.as_ref();
    let recovered: Option<&Recovered> = e.recovered.as_ref();
    let int = |v: Option<i64>| v.map_or(Val::NullInt, Val::Int);
    let text = |v: Option<String>| v.map_or(Val::NullText, Val::Text);
    let atc = card.map(|c| c.atc).or(recovered.map(|r| r.atc));
    let (holder, medical) = match &e.medical {
        Some(m) => {
            // Sealed: the identity, and the ICC certificate holds the PAN.
            let json = zeroize::Zeroizing::new(wire::encode(m));
            (
                Val::Bytes(holder_index(&state.field_key, &m.ssn).to_vec()),
                Val::Bytes(seal("medical", &json)?),
            )
        }
        None => (Val::NullBytes, Val::NullBytes),
    };
    Ok(vec![
        Val::Text(terminal.clone()),
        Val::Int(i64::try_from(e.seq).unwrap_or(i64::MAX)),
        Val::Text(e.idempotency_id.to_hex()),
        Val::Int(i64::from(e.batch_no)),
        Val::Text(e.kind.as_str().into()),
        Val::Text(e.state.as_str().into()),
        Val::Int(i64::try_from(e.amount_fen).unwrap_or(i64::MAX)),
        Val::Int(i64::from(e.currency)),
        Val::Text(e.pan_masked.clone()),
        Val::Bytes(seal("pan", e.pan.expose().as_bytes())?),
        Val::Bytes(seal("psn", e.psn.as_str().as_bytes())?),
        Val::Text(e.txn_time.as_str().into()),
        int(atc.map(i64::from)),
        int(card.map(|c| i64::from(c.cid.0[0]))),
        text(card.map(|c| hex::encode_upper(c.cryptogram.0))),
        text(card.map(|c| c.algorithm.as_str().into())),
        text(card.map(|c| hex::encode_upper(&c.mac_data.0))),
        Val::Bytes(digest.to_vec()),
        Val::Text(status.into()),
        text(reason.map(|r| r.as_str().into())),
        Val::Int(clock::unix_now()),
        Val::Bytes(card_index(&state.field_key, &e.pan, &e.psn).to_vec()),
        // Evidence is kept for what was booked only: a refused one may hold what it must not
        // (a personal element in the log record).
        text(
            recovered
                .filter(|_| status == "booked_unverified")
                .map(|r| String::from_utf8(wire::encode(r)).unwrap_or_default()),
        ),
        holder,
        medical,
    ])
}

fn insert_stmt(values: Vec<Val>) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO entries ({INSERT_COLUMNS}) VALUES ({}) ON CONFLICT DO NOTHING",
            insert_marks()
        ),
        values,
    )
}

/// What the server's medical account of a cardholder allows: the record's balance as of its
/// `as_of`, less the medical debits booked since.
#[derive(Clone, Copy)]
struct MedicalGuard {
    holder: [u8; 32],
    balance_fen: i64,
    as_of_unix: i64,
}

/// Insert a medical debit only if the cardholder's account still covers it: the record's
/// balance less every medical debit of the same account booked at or after the record's
/// `as_of` (this transaction's own inserts included) must be at least its amount. Run after a
/// lock on the cardholder row, so two instances cannot both spend the same balance.
fn guarded_insert_stmt(mut values: Vec<Val>, g: &MedicalGuard, amount_fen: u64) -> Stmt {
    values.extend([
        Val::Bytes(g.holder.to_vec()),
        Val::Int(g.as_of_unix),
        Val::Int(i64::try_from(amount_fen).unwrap_or(i64::MAX)),
        Val::Int(g.balance_fen),
    ]);
    Stmt::new(
        format!(
            "INSERT INTO entries ({INSERT_COLUMNS}) SELECT {}
             WHERE (SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM entries
                    WHERE holder_index = $26 AND kind = 'medical_debit' AND status = 'booked'
                      AND booked_at >= $27) + $28 <= $29
             ON CONFLICT DO NOTHING",
            insert_marks()
        ),
        values,
    )
}

/// The insurance status under which a medical account may be debited.
const INSURANCE_ACTIVE: &str = "active";

/// Whether the card `pan` was on the hot list at `txn_time` (the terminal's clock, China
/// Standard Time: UTC+8, no daylight saving): the last add or remove at or before that moment
/// decides.
async fn hot_listed_at(state: &AppState, pan: &Pan, txn_time: &TxnTime) -> Result<bool, ApiError> {
    const CST_OFFSET_SECS: i64 = 8 * 3600;
    let at = txn_time.unix_seconds() - CST_OFFSET_SECS;
    let index = state.field_key.blind_index("pan", pan.expose());
    let rows = state
        .db
        .query(
            "SELECT action FROM hotlist WHERE pan_index = $1 AND at <= $2 ORDER BY version DESC",
            vec![Val::Bytes(index.to_vec()), Val::Int(at)],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    match rows.first() {
        Some(row) => Ok(row.text(0).map_err(|e| ApiError::db(&e))? == "add"),
        None => Ok(false),
    }
}

/// Verify the card evidence of medical debits (CPU work, off the async threads) and find each
/// cardholder's record: a decision per entry, and the guard of those to book.
async fn check_medical(
    state: &AppState,
    entries: &[UploadEntry],
    pending: &[usize],
    decisions: &mut Vec<(usize, &'static str, Option<RejectReason>)>,
    guards: &mut HashMap<usize, MedicalGuard>,
) -> Result<(), ApiError> {
    if pending.is_empty() {
        return Ok(());
    }
    let Some(trust) = state.ssse_trust.clone() else {
        // Not the entries' fault: nothing is refused for good, the agent retries.
        tracing::warn!("medical debits uploaded, but the server has no SSSE trust store");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "medical debits cannot be verified: no SSSE trust store configured",
        ));
    };
    let work: Vec<(usize, MedicalDebit, Pan, YearMonth)> = pending
        .iter()
        .filter_map(|&i| {
            let e = entries.get(i)?;
            Some((
                i,
                e.medical.clone()?,
                e.pan.clone(),
                medical::txn_month(&e.txn_time),
            ))
        })
        .collect();
    let verdicts = tokio::task::spawn_blocking(move || {
        work.into_iter()
            .map(|(i, m, pan, month)| (i, m.verify_card(&trust, &pan, month).map(|()| m)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|_| internal("verification task failed"))?;
    for (i, v) in verdicts {
        let m = match v {
            Ok(m) => m,
            Err(e) => {
                let reason = match e {
                    MedicalError::UnknownCa { .. } => RejectReason::UnknownCa,
                    MedicalError::Certificate(_) => RejectReason::CertificateInvalid,
                    MedicalError::Signature(_) => RejectReason::CardSignatureInvalid,
                    _ => RejectReason::DataMismatch,
                };
                decisions.push((i, "rejected", Some(reason)));
                continue;
            }
        };
        let Some(e) = entries.get(i) else {
            continue;
        };
        if hot_listed_at(state, &e.pan, &e.txn_time).await? {
            decisions.push((i, "rejected", Some(RejectReason::CardHotListed)));
            continue;
        }
        let holder = holder_index(&state.field_key, &m.ssn);
        let rows = state
            .db
            .query(
                "SELECT record_enc FROM cardholders WHERE ssn_index = $1",
                vec![Val::Bytes(holder.to_vec())],
            )
            .await
            .map_err(|e| ApiError::db(&e))?;
        let Some(row) = rows.first() else {
            decisions.push((i, "rejected", Some(RejectReason::UnknownCardholder)));
            continue;
        };
        let sealed = row.bytes(0).map_err(|e| ApiError::db(&e))?;
        let json = state
            .field_key
            .open(&super::admin::cardholder_aad(&holder), &sealed)
            .map_err(|_| internal("a cardholder record does not open with the field key"))?;
        let record: CardholderRecord =
            serde_json::from_slice(&json).map_err(|_| internal("a stored cardholder record"))?;
        if record.insurance_status != INSURANCE_ACTIVE {
            decisions.push((i, "rejected", Some(RejectReason::InsuranceInactive)));
            continue;
        }
        guards.insert(
            i,
            MedicalGuard {
                holder,
                balance_fen: record.medical_balance_fen,
                as_of_unix: record.as_of.unix_seconds(),
            },
        );
        decisions.push((i, "booked", None));
    }
    Ok(())
}

/// `POST /v1/entries`.
pub(crate) async fn upload(state: &Arc<AppState>, req: &Request) -> Result<Response, ApiError> {
    let authed: Authed = auth::authenticate(state, req).await?;
    let body: UploadRequest =
        wire::parse(&req.body, wire::MAX_BODY_BYTES).map_err(|e| ApiError::wire(&e))?;
    auth::consume_nonce(state, &authed.terminal, &authed.nonce).await?;
    let terminal = authed.terminal.to_string();
    let n = body.entries.len();
    let digests: Vec<[u8; 32]> = body
        .entries
        .iter()
        .map(|e| sm3::digest(&wire::encode(e)))
        .collect();
    let mut answers: Vec<Option<(EntryStatus, Option<RejectReason>)>> = vec![None; n];

    // Entries of another terminal are refused and never stored.
    for (a, e) in answers.iter_mut().zip(&body.entries) {
        if e.terminal_id != authed.terminal {
            *a = Some((EntryStatus::Rejected, Some(RejectReason::TerminalMismatch)));
        }
    }
    let ours: Vec<&UploadEntry> = body
        .entries
        .iter()
        .filter(|e| e.terminal_id == authed.terminal)
        .collect();
    let (by_seq, by_id) = lookup(state, &terminal, &ours).await?;
    // Also within the batch itself, a sequence number or id may appear once only.
    let mut seen_seq = HashMap::new();
    let mut seen_id = HashMap::new();
    let mut decisions: Vec<(usize, &'static str, Option<RejectReason>)> = Vec::new();
    let mut to_verify = Vec::new();
    let mut medical_pending = Vec::new();
    for (i, e) in body.entries.iter().enumerate() {
        if answers.get(i).is_some_and(Option::is_some) {
            continue;
        }
        let digest = digests.get(i).copied().unwrap_or_default();
        let known = by_seq
            .get(&e.seq)
            .or_else(|| by_id.get(&e.idempotency_id.to_hex()));
        let answer = if let Some(k) = known {
            Some(answer_known(e, &digest, k))
        } else if seen_seq.insert(e.seq, i).is_some()
            || seen_id.insert(e.idempotency_id, i).is_some()
        {
            Some((EntryStatus::Rejected, Some(RejectReason::Conflict)))
        } else {
            None
        };
        if let Some(a) = answer {
            if let Some(slot) = answers.get_mut(i) {
                *slot = Some(a);
            }
            continue;
        }
        match static_check(e) {
            Err(reason) => decisions.push((i, "rejected", Some(reason))),
            Ok(()) => match &e.card {
                None if e.state == EntryState::Recovered => {
                    decisions.push((i, "booked_unverified", None));
                }
                None if e.state == EntryState::Recorded => medical_pending.push(i),
                None => decisions.push((i, "booked", None)),
                Some(_) => to_verify.push(i),
            },
        }
    }

    // Verify cryptograms through the HSM, several at a time.
    let mut set = tokio::task::JoinSet::new();
    for &i in &to_verify {
        let Some(e) = body.entries.get(i) else {
            continue;
        };
        let Some(card) = e.card.clone() else { continue };
        let (pan, psn) = (e.pan.clone(), e.psn.clone());
        let st = Arc::clone(state);
        set.spawn(async move { (i, st.hsm.verify(&pan, &psn, &card).await) });
    }
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "verification task failed",
            )
        })?;
        match r {
            Ok(true) => decisions.push((i, "booked", None)),
            Ok(false) => decisions.push((i, "rejected", Some(RejectReason::CryptogramInvalid))),
            Err(e) => {
                let e: HsmError = e;
                tracing::warn!(error = %e, "HSM");
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "HSM unavailable",
                ));
            }
        }
    }
    let mut guards = HashMap::new();
    check_medical(
        state,
        &body.entries,
        &medical_pending,
        &mut decisions,
        &mut guards,
    )
    .await?;
    decisions.sort_by_key(|d| d.0);
    refuse_atc_conflicts(state, &body.entries, &mut decisions).await?;

    // Book every new decision in one transaction. The cardholder rows of the medical debits to
    // book are locked first, in a fixed order (PostgreSQL row locks; SQLite has one writer
    // anyway); each such debit is inserted only if the account covers it, and otherwise the
    // next statement stores it as `rejected: medical_overdraft`.
    enum Role {
        Lock,
        Decision(usize),
        Overdraft(usize),
    }
    let mut stmts = Vec::with_capacity(decisions.len());
    let mut roles = Vec::with_capacity(decisions.len());
    let holders: std::collections::BTreeSet<[u8; 32]> = decisions
        .iter()
        .filter(|(_, status, _)| *status == "booked")
        .filter_map(|(i, _, _)| guards.get(i).map(|g| g.holder))
        .collect();
    for h in holders {
        stmts.push(Stmt::new(
            "UPDATE cardholders SET version = version WHERE ssn_index = $1",
            vec![Val::Bytes(h.to_vec())],
        ));
        roles.push(Role::Lock);
    }
    for (k, (i, status, reason)) in decisions.iter().enumerate() {
        let (Some(e), Some(d)) = (body.entries.get(*i), digests.get(*i)) else {
            continue;
        };
        let values = insert_values(state, e, d, status, *reason)?;
        match guards.get(i).filter(|_| *status == "booked") {
            Some(g) => {
                stmts.push(guarded_insert_stmt(values, g, e.amount_fen));
                roles.push(Role::Decision(k));
                let refused = insert_values(
                    state,
                    e,
                    d,
                    "rejected",
                    Some(RejectReason::MedicalOverdraft),
                )?;
                stmts.push(insert_stmt(refused));
                roles.push(Role::Overdraft(k));
            }
            None => {
                stmts.push(insert_stmt(values));
                roles.push(Role::Decision(k));
            }
        }
    }
    let affected = if stmts.is_empty() {
        Vec::new()
    } else {
        state
            .db
            .transaction(stmts, &state.pause_in_txn)
            .await
            .map_err(|e| ApiError::db(&e))?
    };
    let mut stored: Vec<Option<(&str, Option<RejectReason>)>> = vec![None; decisions.len()];
    for (role, n) in roles.iter().zip(&affected) {
        if *n != 1 {
            continue;
        }
        match role {
            Role::Lock => {}
            Role::Decision(k) => {
                if let (Some(slot), Some((_, status, reason))) =
                    (stored.get_mut(*k), decisions.get(*k))
                {
                    *slot = Some((*status, *reason));
                }
            }
            Role::Overdraft(k) => {
                if let Some(slot) = stored.get_mut(*k) {
                    *slot = Some(("rejected", Some(RejectReason::MedicalOverdraft)));
                }
            }
        }
    }
    let mut lost_race = Vec::new();
    for ((i, _, _), done) in decisions.iter().zip(&stored) {
        if let Some((status, reason)) = done {
            let s = match *status {
                "booked" => EntryStatus::Booked,
                "booked_unverified" => EntryStatus::BookedUnverified,
                _ => EntryStatus::Rejected,
            };
            if let Some(slot) = answers.get_mut(*i) {
                *slot = Some((s, *reason));
            }
        } else if let Some(e) = body.entries.get(*i) {
            lost_race.push(e);
        }
    }
    if !lost_race.is_empty() {
        // Another request (a duplicate delivery, another instance) stored these first.
        let (by_seq, by_id) = lookup(state, &terminal, &lost_race).await?;
        for (i, e) in body.entries.iter().enumerate() {
            if answers.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let digest = digests.get(i).copied().unwrap_or_default();
            let a = match by_seq
                .get(&e.seq)
                .or_else(|| by_id.get(&e.idempotency_id.to_hex()))
            {
                Some(k) => answer_known(e, &digest, k),
                // Not stored, yet not found: the partial unique index refused a recovered debit
                // whose card ATC another request booked meanwhile.
                None if e.state == EntryState::Recovered => {
                    (EntryStatus::Rejected, Some(RejectReason::AtcConflict))
                }
                None => (EntryStatus::Rejected, Some(RejectReason::Conflict)),
            };
            if let Some(slot) = answers.get_mut(i) {
                *slot = Some(a);
            }
        }
    }
    let results: Vec<EntryResult> = body
        .entries
        .iter()
        .zip(answers)
        .map(|(e, a)| {
            let (status, reason) = a.unwrap_or((EntryStatus::Rejected, Some(RejectReason::Other)));
            EntryResult {
                seq: e.seq,
                idempotency_id: e.idempotency_id,
                status,
                reason,
            }
        })
        .collect();
    let booked = results
        .iter()
        .filter(|r| r.status == EntryStatus::Booked)
        .count();
    let unverified = results
        .iter()
        .filter(|r| r.status == EntryStatus::BookedUnverified)
        .count();
    tracing::info!(terminal = %authed.terminal, entries = n, booked, unverified, "upload");
    Ok(json_response(
        StatusCode::OK,
        &UploadResponse {
            results,
            server_time: clock::unix_now(),
        },
    ))
}
