//! The reference central server (axum): it registers terminals, checks every request's SM2
//! signature, timestamp and nonce ([`auth`]), verifies every cryptogram through hsm-sim
//! ([`hsm`]) and every medical debit's card signature against its SSSE trust store, books each entry exactly once ([`booking`]), reconciles batch totals
//! ([`reconcile`]), and serves the hot list, parameters and cardholder records as signed
//! downloads ([`downloads`]). Administrators use [`admin`] (the `central-server` binary's
//! subcommands). It keeps no state but its database ([`db`]: SQLite by default, PostgreSQL by
//! URL), so several instances can serve behind a load balancer on one PostgreSQL.

pub mod admin;
pub mod auth;
pub mod booking;
pub mod db;
pub mod downloads;
pub mod hsm;
pub mod reconcile;
pub mod schema;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use card_core::crypto::sm2::Sm2PrivateKey;
use card_core::crypto::sm2_cert::TrustStore;

use crate::clock;
use crate::field_crypto::FieldKey;
use crate::pause::PauseHook;
use crate::wire::{self, ErrorBody, ErrorCode, WireError};
use db::{Db, DbError, DbUrl};
use hsm::{HsmConfig, HsmVerifier};

/// Errors starting the server, one per cause.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// What the server needs to run.
pub struct ServerConfig {
    /// Database.
    pub db: DbUrl,
    /// PostgreSQL connections per instance.
    pub db_pool: usize,
    /// HSM.
    pub hsm: HsmConfig,
    /// The server's SM2 key (signs downloads).
    pub server_key: Sm2PrivateKey,
    /// The key for personal fields at rest.
    pub field_key: FieldKey,
    /// Allowed clock difference, seconds.
    pub window_secs: i64,
    /// The SSSE CA keys medical debits' card certificates must chain to (the format of
    /// `card_core::ssse::auth::parse_trust_store`). Without it, an upload holding a medical
    /// debit gets 503 (nothing is refused for good).
    pub ssse_trust: Option<TrustStore>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("db", &self.db)
            .field("hsm", &self.hsm)
            .field("window_secs", &self.window_secs)
            .field(
                "ssse_ca_keys",
                &self.ssse_trust.as_ref().map(|t| t.keys().len()),
            )
            .finish_non_exhaustive()
    }
}

/// Shared state of the handlers.
pub struct AppState {
    /// Database.
    pub db: Db,
    /// HSM pool.
    pub hsm: HsmVerifier,
    /// Server signing key.
    pub server_key: Sm2PrivateKey,
    /// Field key.
    pub field_key: FieldKey,
    /// Clock window.
    pub window_secs: i64,
    /// SSSE CA keys for medical debits.
    pub ssse_trust: Option<Arc<TrustStore>>,
    /// Test hook inside the booking transaction.
    pub pause_in_txn: PauseHook,
    requests: AtomicU64,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Open the database, migrate it, and set up the HSM pool.
    pub async fn new(config: ServerConfig) -> Result<Arc<Self>, ServerError> {
        let db = Db::open(&config.db, config.db_pool).await?;
        schema::migrate(&db).await?;
        match booking::backfill_card_index(&db, &config.field_key).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "card index filled for entries booked earlier"),
            Err(e) => tracing::warn!(error = %e.message, "card index backfill"),
        }
        Ok(Arc::new(Self {
            db,
            hsm: HsmVerifier::new(config.hsm),
            server_key: config.server_key,
            field_key: config.field_key,
            window_secs: config.window_secs,
            ssse_trust: config.ssse_trust.map(Arc::new),
            pause_in_txn: PauseHook::from_env("in_txn"),
            requests: AtomicU64::new(0),
        }))
    }
}

/// An error answer: status, code and message, as JSON ([`ErrorBody`]).
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Code.
    pub code: ErrorCode,
    /// Message (never personal data).
    pub message: String,
}

impl ApiError {
    /// An error answer.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 503 for a database failure (logged; the client retries).
    pub fn db(e: &DbError) -> Self {
        tracing::warn!(error = %e, "database error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "database unavailable",
        )
    }

    /// The answer to a body that does not parse.
    pub fn wire(e: &WireError) -> Self {
        let (status, code) = match e {
            WireError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
            WireError::MalformedJson { .. } => (StatusCode::BAD_REQUEST, ErrorCode::MalformedJson),
            WireError::InvalidField { .. } => (StatusCode::BAD_REQUEST, ErrorCode::InvalidField),
            _ => (StatusCode::BAD_REQUEST, ErrorCode::TooMany),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: self.message,
            server_time: clock::unix_now(),
        };
        json_response(self.status, &body)
    }
}

/// A JSON answer.
pub fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        wire::encode(body),
    )
        .into_response()
}

/// Read a body up to the protocol's limit; a longer one is 413.
async fn read_body(body: Body) -> Result<Vec<u8>, ApiError> {
    // One byte more than allowed tells "too large" from "exactly the limit".
    match axum::body::to_bytes(body, wire::MAX_BODY_BYTES + 1).await {
        Ok(b) if b.len() > wire::MAX_BODY_BYTES => Err(ApiError::wire(&WireError::TooLarge {
            len: b.len(),
            max: wire::MAX_BODY_BYTES,
        })),
        Ok(b) => Ok(b.to_vec()),
        Err(_) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("body larger than {} bytes, or cut", wire::MAX_BODY_BYTES),
        )),
    }
}

/// The request as the handlers see it.
pub(crate) struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    pub(crate) fn query_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(q) = self.uri.query() else {
            return Ok(None);
        };
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == name {
                return v.parse().map(Some).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidField,
                        format!("query parameter {name} must be a non-negative integer"),
                    )
                });
            }
        }
        Ok(None)
    }
}

async fn handle(
    state: Arc<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    route: Route,
) -> Response {
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req = Request {
        method,
        uri,
        headers,
        body,
    };
    let result = match route {
        Route::Register => booking::register(&state, &req).await,
        Route::Entries => booking::upload(&state, &req).await,
        Route::Close => reconcile::close(&state, &req).await,
        Route::HotList => downloads::hotlist(&state, &req).await,
        Route::Parameters => downloads::parameters(&state, &req).await,
        Route::Cardholders => downloads::cardholders(&state, &req).await,
    };
    match result {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(path = %req.uri.path(), code = ?e.code, status = %e.status, "refused");
            e.into_response()
        }
    }
}

#[derive(Clone, Copy)]
enum Route {
    Register,
    Entries,
    Close,
    HotList,
    Parameters,
    Cardholders,
}

macro_rules! route {
    ($r:expr) => {
        |State(s): State<Arc<AppState>>, m: Method, u: Uri, h: HeaderMap, b: Body| {
            handle(s, m, u, h, b, $r)
        }
    };
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({"status": "ok", "server_time": clock::unix_now()}),
    )
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such resource",
    )
    .into_response()
}

/// The HTTP routes (docs/sync-openapi.yaml).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/register", post(route!(Route::Register)))
        .route("/v1/entries", post(route!(Route::Entries)))
        .route("/v1/batches/close", post(route!(Route::Close)))
        .route("/v1/hotlist", get(route!(Route::HotList)))
        .route("/v1/parameters", get(route!(Route::Parameters)))
        .route("/v1/cardholders", get(route!(Route::Cardholders)))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serve plain HTTP on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
