//! The counter API over HTTP (axum): loopback only, a bearer token, JSON in and out
//! (docs/counter-api.md, docs/counter-openapi.yaml).
//!
//! Every request passes the guard first: the peer must be a loopback address (403
//! `not_local`), the `Host` header a loopback name (403 `not_local`, against DNS rebinding), and
//! `Authorization: Bearer <token>` the token (401 `missing_token` / `invalid_token`, compared
//! in constant time). Bodies are limited to [`MAX_BODY`] bytes (413 `body_too_large`); a body
//! that is not JSON is 400 `malformed_json`, JSON that is not the request (wrong types,
//! missing or unknown fields) or out of range is 422 `invalid_request`. Every error body is
//! `{"error": {"code", "message"}}` with a stable code.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::model::{Debit, DebitRequest, ErrorBody, ErrorDetail};
use super::service::{CounterError, CounterService};
use super::token::ApiToken;

/// The largest request body, in bytes.
pub const MAX_BODY: usize = 4096;

/// Why the server cannot start or stopped.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is not a loopback address.
    #[error(
        "the counter API listens on a loopback address only (127.0.0.1 or ::1), not {0}: \
         point-of-sale software on this machine reaches it there, nothing else may"
    )]
    NotLoopback(String),
    /// The address cannot be parsed.
    #[error("listen address {0:?}: expected IP:PORT, e.g. 127.0.0.1:7311")]
    BadAddress(String),
    /// Binding or serving failed.
    #[error("counter API on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Parse a listen address (`IP:PORT`, or `localhost:PORT` for 127.0.0.1) and refuse any that is
/// not loopback.
pub fn parse_listen(text: &str) -> Result<SocketAddr, ServeError> {
    let addr = match text.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| ServeError::BadAddress(text.to_string()))?,
        None => text
            .parse::<SocketAddr>()
            .map_err(|_| ServeError::BadAddress(text.to_string()))?,
    };
    check_loopback(addr)
}

/// `addr` if it is a loopback address.
pub fn check_loopback(addr: SocketAddr) -> Result<SocketAddr, ServeError> {
    if is_loopback(addr.ip()) {
        Ok(addr)
    } else {
        Err(ServeError::NotLoopback(addr.to_string()))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Bind the API's socket; a non-loopback address is refused before anything is bound.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    let addr = check_loopback(addr)?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io {
            addr: addr.to_string(),
            source,
        })
}

#[derive(Clone)]
struct AppState {
    service: Arc<CounterService>,
    token: Arc<ApiToken>,
}

/// The API's routes, guarded (loopback peer and host, bearer token) and body-limited.
pub fn router(service: Arc<CounterService>, token: ApiToken) -> Router {
    let state = AppState {
        service,
        token: Arc::new(token),
    };
    Router::new()
        .route("/v1/card", get(card))
        .route("/v1/verify", axum::routing::post(verify))
        .route("/v1/debits", get(list).post(debit))
        .route("/v1/debits/{reference}", get(by_reference))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serve the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<CounterService>,
    token: ApiToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    let app = router(service, token).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Io { addr, source })
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json(
        status,
        &ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
            },
            debit: None,
        },
    )
}

/// An error answer before it is a response (small, for `Result`s).
struct Fail {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Fail {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn response(self) -> Response {
        error(self.status, self.code, self.message)
    }
}

fn counter_error(e: &CounterError) -> Response {
    let status = match e {
        CounterError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CounterError::NoCard
        | CounterError::CardRejected(_)
        | CounterError::CardChecking
        | CounterError::NotVerified
        | CounterError::PinEntryCancelled
        | CounterError::CardRemoved
        | CounterError::ReferenceConflict { .. }
        | CounterError::NoPaymentApplication => StatusCode::CONFLICT,
        CounterError::UnknownReference => StatusCode::NOT_FOUND,
        CounterError::InsufficientBalance
        | CounterError::OverLimit { .. }
        | CounterError::HotListed
        | CounterError::Declined
        | CounterError::PaymentPinNotVerified => StatusCode::PAYMENT_REQUIRED,
        CounterError::LedgerUnavailable(_) | CounterError::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CounterError::Card(_) => StatusCode::BAD_GATEWAY,
    };
    error(status, e.code(), e.to_string())
}

/// Loopback peer, loopback `Host`, bearer token; in that order.
async fn guard(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !is_loopback(peer.ip()) {
        return error(
            StatusCode::FORBIDDEN,
            "not_local",
            "the counter API answers this machine only",
        );
    }
    if !host_is_local(request.headers()) {
        return error(
            StatusCode::FORBIDDEN,
            "not_local",
            "the Host header must name this machine's loopback address",
        );
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let denied = |code: &str, message: &str| {
        let mut r = error(StatusCode::UNAUTHORIZED, code, message);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sscard-counter\""),
        );
        r
    };
    match given {
        None => denied(
            "missing_token",
            "send the token from the token file as Authorization: Bearer <token>",
        ),
        Some(t) if !state.token.matches(t) => {
            denied("invalid_token", "the token does not match the token file")
        }
        Some(_) => next.run(request).await,
    }
}

/// The `Host` header, when present, names a loopback address or `localhost`.
fn host_is_local(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    // Strip the port: `[::1]:7311`, `127.0.0.1:7311`, `localhost`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(is_loopback)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

async fn card(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, &state.service.status())
}

/// The body of a request that takes none (verify): empty, or a JSON object.
fn empty_or_object(body: Result<Bytes, BytesRejection>) -> Result<(), Fail> {
    let bytes = body.map_err(|r| body_rejection(&r))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
        Ok(_) => Ok(()),
        Err(e) => Err(json_error(&e)),
    }
}

fn body_rejection(r: &BytesRejection) -> Fail {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Fail::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is limited to {MAX_BODY} bytes"),
        )
    } else {
        Fail::new(r.status(), "bad_body", r.body_text())
    }
}

fn json_error(e: &serde_json::Error) -> Fail {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => Fail::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("the JSON is not a valid request: {e}"),
        ),
        Category::Syntax | Category::Eof | Category::Io => Fail::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not JSON: {e}"),
        ),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

async fn verify(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    if let Err(f) = empty_or_object(body) {
        return f.response();
    }
    match state.service.verify().await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => counter_error(&e),
    }
}

fn debit_response(debit: Debit, created: bool) -> Response {
    let status = match debit.state.as_str() {
        "approved" | "recovered" if created => StatusCode::CREATED,
        "approved" | "recovered" => StatusCode::OK,
        "in_doubt" => StatusCode::ACCEPTED,
        _ => {
            let code = if debit.state == "declined" {
                "declined"
            } else {
                "voided"
            };
            return json(
                StatusCode::PAYMENT_REQUIRED,
                &ErrorBody {
                    error: ErrorDetail {
                        code: code.into(),
                        message: format!(
                            "transaction {} was {}: nothing was debited",
                            debit.seq, debit.state
                        ),
                    },
                    debit: Some(debit),
                },
            );
        }
    };
    json(status, &debit)
}

async fn debit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let bytes = match body {
        Ok(b) => b,
        Err(r) => return body_rejection(&r).response(),
    };
    if !is_json(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        );
    }
    let req: DebitRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return json_error(&e).response(),
    };
    match state.service.debit(req).await {
        Ok(answer) => debit_response(answer.debit, answer.created),
        Err(e) => counter_error(&e),
    }
}

/// `date=YYYY-MM-DD` from the query, if given.
fn query_date(query: Option<&str>) -> Result<Option<(u16, u8, u8)>, Fail> {
    let bad =
        |message: &str| Fail::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message);
    let Some(query) = query else {
        return Ok(None);
    };
    let mut date = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("date", v)) => date = Some(v),
            _ => return Err(bad("the only query parameter is date=YYYY-MM-DD")),
        }
    }
    let Some(v) = date else { return Ok(None) };
    let mut parts = v.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("date must be YYYY-MM-DD"));
    };
    let ok = y.len() == 4 && m.len() == 2 && d.len() == 2;
    match (ok, y.parse::<u16>(), m.parse::<u8>(), d.parse::<u8>()) {
        (true, Ok(y), Ok(m @ 1..=12), Ok(d @ 1..=31)) => Ok(Some((y, m, d))),
        _ => Err(bad("date must be YYYY-MM-DD")),
    }
}

async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let date = match query_date(query.as_deref()) {
        Ok(d) => d,
        Err(f) => return f.response(),
    };
    match state.service.debits(date).await {
        Ok(l) => json(StatusCode::OK, &l),
        Err(e) => counter_error(&e),
    }
}

async fn by_reference(State(state): State<AppState>, Path(reference): Path<String>) -> Response {
    match state.service.debit_by_reference(reference).await {
        Ok(d) => json(StatusCode::OK, &d),
        Err(e) => counter_error(&e),
    }
}
