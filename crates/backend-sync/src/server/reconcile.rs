//! Batch reconciliation (the settlement of UnionPay's 0500 with its 0320 follow-up): the
//! terminal sends the totals of a batch's approved entries and their sequence numbers; the
//! server compares them with what it booked as approved for that batch and answers balanced,
//! or the differences: both sides' totals, the numbers it lacks (the terminal uploads them
//! again) and the numbers the terminal did not list. The last answer per batch is stored.
//!
//! Recovered debits (booked unverified: the card's log proves them, no cryptogram does) stay out
//! of the verified totals. Both sides count them apart (count, amount, sequence numbers), so a
//! batch with recovered debits balances with that difference named in `recovered`.
//!
//! Medical-account debits (`recorded`, booked after the card's signature verified) move the
//! medical account's money, not the card's: both sides count them apart too, in `medical`.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::response::Response;

use super::auth;
use super::db::Val;
use super::{ApiError, AppState, Request, json_response};
use crate::clock;
use crate::entry::EntryKind;
use crate::wire::{
    self, BatchCloseRequest, BatchCloseResponse, MedicalSummary, MedicalTotals, RecoveredSummary,
    RecoveredTotals, Totals,
};

/// Most sequence numbers listed in each difference of an answer.
const MAX_LISTED: usize = 10_000;

/// The server's totals and approved sequence numbers of a terminal's batch.
pub async fn server_totals(
    state: &AppState,
    terminal: &str,
    batch_no: u32,
) -> Result<(Totals, BTreeSet<u64>), ApiError> {
    let rows = state
        .db
        .query(
            "SELECT seq, kind, amount_fen FROM entries
             WHERE terminal_id = $1 AND batch_no = $2 AND status = 'booked'
               AND state = 'approved_offline'",
            vec![Val::Text(terminal.into()), Val::Int(i64::from(batch_no))],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    let mut t = Totals::default();
    let mut seqs = BTreeSet::new();
    for r in rows {
        let seq = u64::try_from(r.int(0).map_err(|e| ApiError::db(&e))?).unwrap_or(0);
        let kind: EntryKind = r
            .text(1)
            .map_err(|e| ApiError::db(&e))?
            .parse()
            .unwrap_or(EntryKind::Purchase);
        let amount = u64::try_from(r.int(2).map_err(|e| ApiError::db(&e))?).unwrap_or(0);
        if kind.is_credit() {
            t.credit_count += 1;
            t.credit_amount = t.credit_amount.saturating_add(amount);
        } else {
            t.debit_count += 1;
            t.debit_amount = t.debit_amount.saturating_add(amount);
        }
        seqs.insert(seq);
    }
    Ok((t, seqs))
}

/// The server's recovered debits (booked unverified) of a terminal's batch and their sequence
/// numbers.
pub async fn server_recovered(
    state: &AppState,
    terminal: &str,
    batch_no: u32,
) -> Result<(RecoveredTotals, BTreeSet<u64>), ApiError> {
    let rows = state
        .db
        .query(
            "SELECT seq, amount_fen FROM entries
             WHERE terminal_id = $1 AND batch_no = $2 AND status = 'booked_unverified'
               AND state = 'recovered'",
            vec![Val::Text(terminal.into()), Val::Int(i64::from(batch_no))],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    let mut t = RecoveredTotals::default();
    let mut seqs = BTreeSet::new();
    for r in rows {
        let seq = u64::try_from(r.int(0).map_err(|e| ApiError::db(&e))?).unwrap_or(0);
        let amount = u64::try_from(r.int(1).map_err(|e| ApiError::db(&e))?).unwrap_or(0);
        t.count += 1;
        t.amount = t.amount.saturating_add(amount);
        seqs.insert(seq);
    }
    Ok((t, seqs))
}

/// The server's medical-account debits of a terminal's batch and their sequence numbers.
pub async fn server_medical(
    state: &AppState,
    terminal: &str,
    batch_no: u32,
) -> Result<(MedicalTotals, BTreeSet<u64>), ApiError> {
    let rows = state
        .db
        .query(
            "SELECT seq, amount_fen FROM entries
             WHERE terminal_id = $1 AND batch_no = $2 AND status = 'booked'
               AND kind = 'medical_debit' AND state = 'recorded'",
            vec![Val::Text(terminal.into()), Val::Int(i64::from(batch_no))],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    let mut t = MedicalTotals::default();
    let mut seqs = BTreeSet::new();
    for r in rows {
        let seq = u64::try_from(r.int(0).map_err(|e| ApiError::db(&e))?).unwrap_or(0);
        let amount = u64::try_from(r.int(1).map_err(|e| ApiError::db(&e))?).unwrap_or(0);
        t.count += 1;
        t.amount = t.amount.saturating_add(amount);
        seqs.insert(seq);
    }
    Ok((t, seqs))
}

/// `POST /v1/batches/close`.
pub(crate) async fn close(state: &AppState, req: &Request) -> Result<Response, ApiError> {
    let authed = auth::authenticate(state, req).await?;
    let body: BatchCloseRequest =
        wire::parse(&req.body, wire::MAX_BODY_BYTES).map_err(|e| ApiError::wire(&e))?;
    auth::consume_nonce(state, &authed.terminal, &authed.nonce).await?;
    let terminal = authed.terminal.to_string();
    let (server, mut server_seqs) = server_totals(state, &terminal, body.batch_no).await?;
    let (server_recovered, recovered_seqs) =
        server_recovered(state, &terminal, body.batch_no).await?;
    server_seqs.extend(recovered_seqs.iter().copied());
    let (server_medical, medical_seqs) = server_medical(state, &terminal, body.batch_no).await?;
    server_seqs.extend(medical_seqs.iter().copied());
    let terminal_seqs: BTreeSet<u64> = body
        .seqs
        .iter()
        .chain(&body.recovered_seqs)
        .chain(&body.medical_seqs)
        .copied()
        .collect();
    let missing_on_server: Vec<u64> = terminal_seqs
        .difference(&server_seqs)
        .take(MAX_LISTED)
        .copied()
        .collect();
    let unknown_to_terminal: Vec<u64> = server_seqs
        .difference(&terminal_seqs)
        .take(MAX_LISTED)
        .copied()
        .collect();
    // A sequence number both sides know, but one as approved and the other as recovered, shows
    // in neither list; the totals then differ.
    let balanced = server == body.totals
        && server_recovered == body.recovered
        && server_medical == body.medical
        && missing_on_server.is_empty()
        && unknown_to_terminal.is_empty();
    let answer = BatchCloseResponse {
        batch_no: body.batch_no,
        balanced,
        terminal: body.totals,
        server,
        missing_on_server,
        unknown_to_terminal,
        recovered: RecoveredSummary {
            terminal: body.recovered,
            server: server_recovered,
            seqs: recovered_seqs.into_iter().take(MAX_LISTED).collect(),
        },
        medical: MedicalSummary {
            terminal: body.medical,
            server: server_medical,
            seqs: medical_seqs.into_iter().take(MAX_LISTED).collect(),
        },
    };
    let detail = String::from_utf8(wire::encode(&answer)).unwrap_or_default();
    state
        .db
        .execute(
            "INSERT INTO batch_closes (terminal_id, batch_no, closed_at, balanced, detail)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (terminal_id, batch_no) DO UPDATE SET closed_at = excluded.closed_at,
                balanced = excluded.balanced, detail = excluded.detail",
            vec![
                Val::Text(terminal.clone()),
                Val::Int(i64::from(body.batch_no)),
                Val::Int(clock::unix_now()),
                Val::Int(i64::from(balanced)),
                Val::Text(detail),
            ],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    tracing::info!(
        terminal = %terminal,
        batch = body.batch_no,
        balanced,
        recovered = answer.recovered.server.count,
        medical = answer.medical.server.count,
        "batch close"
    );
    Ok(json_response(StatusCode::OK, &answer))
}
