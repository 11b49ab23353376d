//! Who is asking: the signature headers are parsed, the timestamp must be within the window of
//! the server's clock, the terminal must be registered, and the SM2 signature must verify over
//! method, path, body digest, timestamp and nonce ([`crate::signing`]). The nonce is consumed
//! only after the body has parsed, so a malformed request changes nothing; a nonce seen before
//! is refused (`409 replayed_nonce`). Nonces are kept for twice the window and then pruned:
//! an older replay fails the timestamp check instead.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use card_core::crypto::sm2::Sm2PublicKey;

use super::db::Val;
use super::{ApiError, AppState, Request};
use crate::clock;
use crate::entry::{Region, TerminalId};
use crate::signing::{
    AuthError, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP, RequestAuth,
};
use crate::wire::ErrorCode;

/// A request whose signature verified.
#[derive(Debug, Clone)]
pub struct Authed {
    /// The terminal.
    pub terminal: TerminalId,
    /// Its region.
    pub region: Region,
    /// The request's nonce.
    pub nonce: String,
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parse and check the signature headers without looking up the terminal.
pub(crate) fn parse_auth(req: &Request, window: i64) -> Result<RequestAuth, ApiError> {
    let auth = RequestAuth::from_headers(
        header(req, HEADER_TERMINAL),
        header(req, HEADER_TIMESTAMP),
        header(req, HEADER_NONCE),
        header(req, HEADER_SIGNATURE),
    )
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::MissingAuth,
            e.to_string(),
        )
    })?;
    if let Err(e) = auth.check_fresh(clock::unix_now(), window) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::StaleTimestamp,
            e.to_string(),
        ));
    }
    Ok(auth)
}

/// Check the signature against a key.
pub(crate) fn check_signature(
    auth: &RequestAuth,
    key: &Sm2PublicKey,
    req: &Request,
) -> Result<(), ApiError> {
    auth.verify(key, req.method.as_str(), req.path_and_query(), &req.body)
        .map_err(|e| match e {
            AuthError::BadSignature => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::BadSignature,
                e.to_string(),
            ),
            other => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::MissingAuth,
                other.to_string(),
            ),
        })
}

/// Authenticate a request of a registered terminal.
pub(crate) async fn authenticate(state: &AppState, req: &Request) -> Result<Authed, ApiError> {
    let auth = parse_auth(req, state.window_secs)?;
    let rows = state
        .db
        .query(
            "SELECT region, public_key FROM terminals WHERE terminal_id = $1",
            vec![Val::Text(auth.terminal_id.to_string())],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    let unknown = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::UnknownTerminal,
            "unknown or unregistered terminal",
        )
    };
    let row = rows.first().ok_or_else(unknown)?;
    let key = row
        .opt_bytes(1)
        .map_err(|e| ApiError::db(&e))?
        .ok_or_else(unknown)?;
    let key = Sm2PublicKey::from_xy(&key).map_err(|_| unknown())?;
    let region: Region = row
        .text(0)
        .map_err(|e| ApiError::db(&e))?
        .parse()
        .map_err(|_| unknown())?;
    check_signature(&auth, &key, req)?;
    Ok(Authed {
        terminal: auth.terminal_id.clone(),
        region,
        nonce: auth.nonce_hex(),
    })
}

/// Record the nonce; refuse it if seen before. Prunes old nonces now and then.
pub(crate) async fn consume_nonce(
    state: &AppState,
    terminal: &TerminalId,
    nonce: &str,
) -> Result<(), ApiError> {
    let now = clock::unix_now();
    if state
        .requests
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(256)
    {
        let _ = state
            .db
            .execute(
                "DELETE FROM nonces WHERE seen_at < $1",
                vec![Val::Int(now - 2 * state.window_secs)],
            )
            .await;
    }
    let n = state
        .db
        .execute(
            "INSERT INTO nonces (terminal_id, nonce, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            vec![
                Val::Text(terminal.to_string()),
                Val::Text(nonce.to_string()),
                Val::Int(now),
            ],
        )
        .await
        .map_err(|e| ApiError::db(&e))?;
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ReplayedNonce,
            "this nonce was used before",
        ));
    }
    Ok(())
}
