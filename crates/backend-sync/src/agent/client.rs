//! The agent's HTTP client: every request signed ([`crate::signing`]) with a fresh nonce and
//! the terminal's clock corrected by the offset learnt from the server, and every failure
//! classified as transient (retry) or permanent (stop and report).
//!
//! Transient: no connection, a timeout, a response cut short or unreadable, 5xx, 408, 429,
//! `409 replayed_nonce` (our own nonce seen twice means the request was delivered twice, e.g.
//! by a proxy; a new nonce fixes it), and `401 stale_timestamp` (the clock offset is corrected
//! from the answer's `server_time` before the retry). Permanent: any other 4xx.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use card_core::crypto::sm2::{DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey, Sm2Signature};
use reqwest::Method;

use crate::clock;
use crate::entry::TerminalId;
use crate::signing::{self, sign_request};
use crate::wire::{self, ErrorBody, ErrorCode, Message, SignedEnvelope};

/// How a request failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Worth retrying.
    #[error("transient: {0}")]
    Transient(String),
    /// Not worth retrying: the server refused the request.
    #[error("refused by the server ({status} {code:?}): {message}")]
    Permanent {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: ErrorCode,
        /// Message.
        message: String,
    },
    /// A signed download whose signature does not verify, or of the wrong kind.
    #[error("download not signed by the server: {0}")]
    BadEnvelope(&'static str),
    /// The client could not be built (TLS roots) or the request signed.
    #[error("client set-up: {0}")]
    Setup(String),
}

/// A signing HTTP client for one terminal.
pub struct SyncClient {
    http: reqwest::Client,
    base: String,
    terminal: TerminalId,
    key: Sm2PrivateKey,
    clock_offset: AtomicI64,
}

impl std::fmt::Debug for SyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncClient")
            .field("base", &self.base)
            .field("terminal", &self.terminal)
            .finish_non_exhaustive()
    }
}

impl SyncClient {
    /// A client of the server at `base` (`http://host:port` or `https://...`); with `ca_pem`,
    /// only that CA is trusted for TLS.
    pub fn new(
        base: &str,
        terminal: TerminalId,
        key: Sm2PrivateKey,
        ca_pem: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true);
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| CallError::Setup(format!("CA certificate: {e}")))?;
            b = b.add_root_certificate(cert).tls_built_in_root_certs(false);
        }
        Ok(Self {
            http: b.build().map_err(|e| CallError::Setup(e.to_string()))?,
            base: base.trim_end_matches('/').to_string(),
            terminal,
            key,
            clock_offset: AtomicI64::new(0),
        })
    }

    /// The terminal.
    pub fn terminal(&self) -> &TerminalId {
        &self.terminal
    }

    /// The terminal's public key.
    pub fn public_key(&self) -> &Sm2PublicKey {
        self.key.public_key()
    }

    /// Seconds added to the local clock for timestamps.
    pub fn clock_offset(&self) -> i64 {
        self.clock_offset.load(Ordering::Relaxed)
    }

    /// Set the clock offset (e.g. from the ledger after a restart).
    pub fn set_clock_offset(&self, offset: i64) {
        self.clock_offset.store(offset, Ordering::Relaxed);
    }

    /// Send one signed request and read the whole answer.
    pub async fn send_raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
        local_now: i64,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let ts = local_now + self.clock_offset();
        let h = sign_request(
            &self.key,
            &self.terminal,
            method.as_str(),
            path_and_query,
            ts,
            &body,
        )
        .map_err(|e| CallError::Setup(e.to_string()))?;
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path_and_query))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Transient(describe(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CallError::Transient(format!("response cut: {}", describe(&e))))?;
        Ok((status, bytes.to_vec()))
    }

    /// Send a signed request and parse a `T` from a 200 answer, classifying failures.
    pub async fn call<T: Message>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<T, CallError> {
        let (status, bytes) = self
            .send_raw(method, path_and_query, body, clock::unix_now())
            .await?;
        if status == 200 {
            return wire::parse::<T>(&bytes, usize::MAX)
                .map_err(|e| CallError::Transient(format!("unreadable answer: {e}")));
        }
        let err: Option<ErrorBody> = wire::parse(&bytes, usize::MAX).ok();
        let (code, message, server_time) = match err {
            Some(e) => (e.error, e.message, Some(e.server_time)),
            None => (
                ErrorCode::Other,
                format!("HTTP {status} without an error body"),
                None,
            ),
        };
        if code == ErrorCode::StaleTimestamp
            && let Some(t) = server_time
        {
            // Learn the offset; the retry carries a corrected timestamp.
            self.clock_offset
                .store(t - clock::unix_now(), Ordering::Relaxed);
            return Err(CallError::Transient(format!("clock corrected: {message}")));
        }
        if status >= 500 || status == 408 || status == 429 || code == ErrorCode::ReplayedNonce {
            return Err(CallError::Transient(format!("HTTP {status}: {message}")));
        }
        Err(CallError::Permanent {
            status,
            code,
            message,
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        // reqwest's messages carry the URL, never the body.
        e.to_string()
    }
}

/// Verify a download envelope signed by the server and parse its payload.
pub fn open_envelope<T: Message>(
    env: &SignedEnvelope,
    kind: &str,
    terminal: &TerminalId,
    server_key: &Sm2PublicKey,
) -> Result<T, CallError> {
    if env.kind != kind {
        return Err(CallError::BadEnvelope("wrong kind"));
    }
    let mut sig = [0u8; 64];
    hex::decode_to_slice(&env.signature, &mut sig)
        .map_err(|_| CallError::BadEnvelope("signature format"))?;
    let sig =
        Sm2Signature::from_bytes(&sig).map_err(|_| CallError::BadEnvelope("signature format"))?;
    server_key
        .verify(
            DEFAULT_ID,
            &signing::envelope_message(kind, terminal, &env.payload),
            &sig,
        )
        .map_err(|_| CallError::BadEnvelope("signature does not verify"))?;
    wire::parse::<T>(env.payload.as_bytes(), usize::MAX)
        .map_err(|_| CallError::BadEnvelope("payload"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{HotListAction, HotListChange, HotListDelta};

    fn delta(pan: &str) -> HotListDelta {
        HotListDelta {
            from_version: 3,
            to_version: 4,
            changes: vec![HotListChange {
                version: 4,
                pan: pan.to_string().try_into().unwrap(),
                action: HotListAction::Add,
                reason: "lost".into(),
            }],
        }
    }

    /// An envelope as the server makes it (`server::downloads::envelope`).
    fn seal(
        key: &Sm2PrivateKey,
        kind: &str,
        terminal: &TerminalId,
        d: &HotListDelta,
    ) -> SignedEnvelope {
        let payload = String::from_utf8(wire::encode(d)).unwrap();
        let sig = key
            .sign(
                DEFAULT_ID,
                &signing::envelope_message(kind, terminal, &payload),
            )
            .unwrap();
        SignedEnvelope {
            kind: kind.into(),
            payload,
            signature: hex::encode_upper(sig.to_bytes()),
        }
    }

    #[test]
    fn a_signed_hot_list_opens_and_any_tampering_is_refused() {
        let server = Sm2PrivateKey::generate_os().unwrap();
        let key = server.public_key();
        let t1: TerminalId = "KIOSK-01".parse().unwrap();
        let t2: TerminalId = "KIOSK-02".parse().unwrap();
        let good = seal(&server, "hotlist", &t1, &delta("6217000010000001"));
        let opened: HotListDelta = open_envelope(&good, "hotlist", &t1, key).unwrap();
        assert_eq!(opened, delta("6217000010000001"));

        let refused =
            |env: &SignedEnvelope, kind: &str, t: &TerminalId| match open_envelope::<HotListDelta>(
                env, kind, t, key,
            ) {
                Err(CallError::BadEnvelope(why)) => why,
                other => panic!("opened: {other:?}"),
            };
        // Another card put on (or taken off) the list on the way: the signature fails.
        let mut swapped = good.clone();
        swapped.payload = swapped
            .payload
            .replace("6217000010000001", "6217000010000002");
        assert_ne!(swapped.payload, good.payload);
        assert_eq!(
            refused(&swapped, "hotlist", &t1),
            "signature does not verify"
        );
        let mut removed = good.clone();
        removed.payload = removed.payload.replace("\"add\"", "\"remove\"");
        assert_ne!(removed.payload, good.payload);
        assert_eq!(
            refused(&removed, "hotlist", &t1),
            "signature does not verify"
        );
        // Another terminal's envelope, replayed here.
        assert_eq!(refused(&good, "hotlist", &t2), "signature does not verify");
        // Parameters presented as a hot list, and a hot list signed as parameters.
        assert_eq!(refused(&good, "parameters", &t1), "wrong kind");
        let mut relabelled = seal(&server, "parameters", &t1, &delta("6217000010000001"));
        relabelled.kind = "hotlist".into();
        assert_eq!(
            refused(&relabelled, "hotlist", &t1),
            "signature does not verify"
        );
        // Signed by another key, or with a broken signature.
        let other = Sm2PrivateKey::generate_os().unwrap();
        let forged = seal(&other, "hotlist", &t1, &delta("6217000010000001"));
        assert_eq!(
            refused(&forged, "hotlist", &t1),
            "signature does not verify"
        );
        let mut short = good.clone();
        short.signature.truncate(100);
        assert_eq!(refused(&short, "hotlist", &t1), "signature format");
    }
}
