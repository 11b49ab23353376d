//! Signed downloads: the hot list as a delta since the terminal's version, the parameter set,
//! and the cardholder records of the terminal's region changed since its version, each in a
//! [`SignedEnvelope`] signed with the server's SM2 key over kind, terminal and payload.

use axum::http::StatusCode;
use axum::response::Response;
use card_core::crypto::sm2::DEFAULT_ID;

use super::auth;
use super::db::Val;
use super::{ApiError, AppState, Request, json_response};
use crate::entry::TerminalId;
use crate::signing;
use crate::wire::{
    self, CardholderPage, CardholderRecord, ErrorCode, HotListAction, HotListChange, HotListDelta,
    ParameterSet, SignedEnvelope,
};

/// Most hot-list changes in one delta (the terminal asks again from where it got to).
const HOTLIST_PAGE: i64 = 10_000;

fn internal(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        what.to_string(),
    )
}

/// Sign a payload for a terminal.
pub fn envelope<T: serde::Serialize>(
    state: &AppState,
    kind: &str,
    terminal: &TerminalId,
    payload: &T,
) -> Result<SignedEnvelope, ApiError> {
    let payload = String::from_utf8(wire::encode(payload)).map_err(|_| internal("encoding"))?;
    let sig = state
        .server_key
        .sign(
            DEFAULT_ID,
            &signing::envelope_message(kind, terminal, &payload),
        )
        .map_err(|_| internal("signing"))?;
    Ok(SignedEnvelope {
        kind: kind.into(),
        payload,
        signature: hex::encode_upper(sig.to_bytes()),
    })
}

/// The hot-list changes after `since`, up to a page.
pub async fn hotlist_delta(state: &AppState, since: u64) -> Result<HotListDelta, ApiError> {
    let rows = state
        .db
        .query(
            "SELECT version, pan_index, pan_enc, action, reason FROM hotlist
             WHERE version > $1 ORDER BY version LIMIT $2",
            vec![
                Val::Int(i64::try_from(since).unwrap_or(i64::MAX)),
                Val::Int(HOTLIST_PAGE),
            ],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    let mut changes = Vec::with_capacity(rows.len());
    for r in rows {
        let e = |x: super::db::DbError| ApiError::db(&x);
        let version = u64::try_from(r.int(0).map_err(e)?).unwrap_or(0);
        let index = r.bytes(1).map_err(e)?;
        let pan = state
            .field_key
            .open_str(&super::admin::hotlist_aad(&index), &r.bytes(2).map_err(e)?)
            .map_err(|_| internal("hot-list record does not open"))?;
        changes.push(HotListChange {
            version,
            pan: pan.parse().map_err(|_| internal("stored PAN"))?,
            action: if r.text(3).map_err(e)? == "remove" {
                HotListAction::Remove
            } else {
                HotListAction::Add
            },
            reason: r.text(4).map_err(e)?,
        });
    }
    let to_version = changes.last().map_or(since, |c| c.version);
    Ok(HotListDelta {
        from_version: since,
        to_version,
        changes,
    })
}

/// `GET /v1/hotlist?since=N`.
pub(crate) async fn hotlist(state: &AppState, req: &Request) -> Result<Response, ApiError> {
    let authed = auth::authenticate(state, req).await?;
    let since = req.query_u64("since")?.unwrap_or(0);
    auth::consume_nonce(state, &authed.terminal, &authed.nonce).await?;
    let delta = hotlist_delta(state, since).await?;
    Ok(json_response(
        StatusCode::OK,
        &envelope(state, "hotlist", &authed.terminal, &delta)?,
    ))
}

/// The current parameter set.
pub async fn parameter_set(state: &AppState) -> Result<ParameterSet, ApiError> {
    let e = |x: super::db::DbError| ApiError::db(&x);
    let version = state
        .db
        .query("SELECT value FROM counters WHERE name = 'params'", vec![])
        .await
        .map_err(e)?
        .first()
        .map(|r| r.int(0))
        .transpose()
        .map_err(e)?
        .unwrap_or(0);
    let rows = state
        .db
        .query("SELECT name, value FROM params ORDER BY name", vec![])
        .await
        .map_err(e)?;
    let mut set = ParameterSet {
        version: u64::try_from(version).unwrap_or(0),
        ..ParameterSet::default()
    };
    for r in rows {
        set.params
            .insert(r.text(0).map_err(e)?, r.text(1).map_err(e)?);
    }
    Ok(set)
}

/// `GET /v1/parameters`.
pub(crate) async fn parameters(state: &AppState, req: &Request) -> Result<Response, ApiError> {
    let authed = auth::authenticate(state, req).await?;
    auth::consume_nonce(state, &authed.terminal, &authed.nonce).await?;
    let set = parameter_set(state).await?;
    Ok(json_response(
        StatusCode::OK,
        &envelope(state, "parameters", &authed.terminal, &set)?,
    ))
}

/// `GET /v1/cardholders?since=N&limit=M`.
pub(crate) async fn cardholders(state: &AppState, req: &Request) -> Result<Response, ApiError> {
    let authed = auth::authenticate(state, req).await?;
    let since = req.query_u64("since")?.unwrap_or(0);
    let limit = req
        .query_u64("limit")?
        .unwrap_or(wire::MAX_CARDHOLDER_PAGE as u64)
        .clamp(1, wire::MAX_CARDHOLDER_PAGE as u64);
    auth::consume_nonce(state, &authed.terminal, &authed.nonce).await?;
    let e = |x: super::db::DbError| ApiError::db(&x);
    let rows = state
        .db
        .query(
            "SELECT ssn_index, record_enc, version FROM cardholders
             WHERE region = $1 AND version > $2 ORDER BY version LIMIT $3",
            vec![
                Val::Text(authed.region.as_str().into()),
                Val::Int(i64::try_from(since).unwrap_or(i64::MAX)),
                Val::Int(i64::try_from(limit).unwrap_or(1)),
            ],
        )
        .await
        .map_err(e)?;
    let more = u64::try_from(rows.len()).unwrap_or(0) == limit;
    let mut records = Vec::with_capacity(rows.len());
    for r in rows {
        let index = r.bytes(0).map_err(e)?;
        let json = state
            .field_key
            .open(
                &super::admin::cardholder_aad(&index),
                &r.bytes(1).map_err(e)?,
            )
            .map_err(|_| internal("cardholder record does not open"))?;
        let mut rec: CardholderRecord =
            serde_json::from_slice(&json).map_err(|_| internal("cardholder record"))?;
        rec.version = u64::try_from(r.int(2).map_err(e)?).unwrap_or(0);
        records.push(rec);
    }
    let to_version = records.last().map_or(since, |r| r.version);
    let page = CardholderPage {
        from_version: since,
        to_version,
        records,
        more,
    };
    Ok(json_response(
        StatusCode::OK,
        &envelope(state, "cardholders", &authed.terminal, &page)?,
    ))
}
