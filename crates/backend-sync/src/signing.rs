//! Request signing: every request carries the terminal id, a timestamp, a random nonce and the
//! terminal's SM2 signature (SM3, distinguishing id `1234567812345678`, JR/T 0025.17 §8.2) over
//!
//! ```text
//! SSCARD-SM2-SM3-V1\n
//! {METHOD}\n
//! {path and query}\n
//! {terminal id}\n
//! {timestamp, Unix seconds}\n
//! {nonce, 32 lower-case hex}\n
//! {SM3 of the body, 64 lower-case hex}
//! ```
//!
//! The server refuses a bad signature, an unknown terminal, a timestamp more than
//! [`DEFAULT_WINDOW_SECS`] from its clock, and a nonce it has seen within twice that window.
//! Downloads come back in a [`crate::wire::SignedEnvelope`] signed by the server the same way
//! ([`envelope_message`]).

use card_core::crypto::sm2::{DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey, Sm2Signature};
use card_core::crypto::sm3;

use crate::entry::TerminalId;

/// Header with the terminal id.
pub const HEADER_TERMINAL: &str = "x-sscard-terminal";
/// Header with the timestamp (Unix seconds).
pub const HEADER_TIMESTAMP: &str = "x-sscard-timestamp";
/// Header with the nonce (32 hex digits).
pub const HEADER_NONCE: &str = "x-sscard-nonce";
/// Header with the signature (128 hex digits, r‖s).
pub const HEADER_SIGNATURE: &str = "x-sscard-signature";
/// How far a timestamp may be from the server's clock (5 minutes, as Kerberos allows).
pub const DEFAULT_WINDOW_SECS: i64 = 300;

/// Why a request's signature headers are refused, one variant per cause.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A header is missing.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// The terminal header is not a terminal id.
    #[error("malformed terminal id header")]
    TerminalId,
    /// The timestamp is not a decimal integer.
    #[error("malformed timestamp header")]
    Timestamp,
    /// The nonce is not 32 hex digits.
    #[error("malformed nonce header")]
    Nonce,
    /// The signature is not 128 hex digits of a valid r‖s.
    #[error("malformed signature header")]
    SignatureFormat,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The timestamp is too far from the server's clock.
    #[error("timestamp {timestamp} is more than {window} s from server time {now}")]
    Stale {
        /// The request's timestamp.
        timestamp: i64,
        /// The server's time.
        now: i64,
        /// The window.
        window: i64,
    },
    /// Signing failed (the key or the random number generator).
    #[error("signing failed")]
    Signing,
}

/// The four signature headers of a request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuth {
    /// The signing terminal.
    pub terminal_id: TerminalId,
    /// Unix seconds, by the terminal's clock.
    pub timestamp: i64,
    /// 16 random bytes.
    pub nonce: [u8; 16],
    /// r‖s.
    pub signature: [u8; 64],
}

impl RequestAuth {
    /// Parse the header values (`None` for a missing header).
    pub fn from_headers(
        terminal: Option<&str>,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Self, AuthError> {
        let terminal = terminal.ok_or(AuthError::Missing(HEADER_TERMINAL))?;
        let timestamp = timestamp.ok_or(AuthError::Missing(HEADER_TIMESTAMP))?;
        let nonce = nonce.ok_or(AuthError::Missing(HEADER_NONCE))?;
        let signature = signature.ok_or(AuthError::Missing(HEADER_SIGNATURE))?;
        let terminal_id = terminal.parse().map_err(|_| AuthError::TerminalId)?;
        if timestamp.is_empty()
            || timestamp.len() > 19
            || !timestamp.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(AuthError::Timestamp);
        }
        let timestamp = timestamp.parse().map_err(|_| AuthError::Timestamp)?;
        let mut n = [0u8; 16];
        hex::decode_to_slice(nonce, &mut n).map_err(|_| AuthError::Nonce)?;
        let mut s = [0u8; 64];
        hex::decode_to_slice(signature, &mut s).map_err(|_| AuthError::SignatureFormat)?;
        Ok(Self {
            terminal_id,
            timestamp,
            nonce: n,
            signature: s,
        })
    }

    /// The nonce as 32 lower-case hex digits.
    pub fn nonce_hex(&self) -> String {
        hex::encode(self.nonce)
    }

    /// Check the signature over this request with the terminal's key.
    pub fn verify(
        &self,
        key: &Sm2PublicKey,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), AuthError> {
        let msg = string_to_sign(
            method,
            path_and_query,
            &self.terminal_id,
            self.timestamp,
            &self.nonce,
            body,
        );
        let sig =
            Sm2Signature::from_bytes(&self.signature).map_err(|_| AuthError::SignatureFormat)?;
        key.verify(DEFAULT_ID, &msg, &sig)
            .map_err(|_| AuthError::BadSignature)
    }

    /// Check the timestamp is within `window` seconds of `now`.
    pub fn check_fresh(&self, now: i64, window: i64) -> Result<(), AuthError> {
        if (self.timestamp.saturating_sub(now)).abs() > window {
            return Err(AuthError::Stale {
                timestamp: self.timestamp,
                now,
                window,
            });
        }
        Ok(())
    }
}

/// The exact bytes signed for a request.
pub fn string_to_sign(
    method: &str,
    path_and_query: &str,
    terminal: &TerminalId,
    timestamp: i64,
    nonce: &[u8; 16],
    body: &[u8],
) -> Vec<u8> {
    format!(
        "SSCARD-SM2-SM3-V1\n{}\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path_and_query,
        terminal,
        timestamp,
        hex::encode(nonce),
        hex::encode(sm3::digest(body)),
    )
    .into_bytes()
}

/// The four header values for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Terminal id.
    pub terminal: String,
    /// Timestamp.
    pub timestamp: String,
    /// Nonce.
    pub nonce: String,
    /// Signature.
    pub signature: String,
}

impl SignedHeaders {
    /// As (name, value) pairs.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (HEADER_TERMINAL, &self.terminal),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_NONCE, &self.nonce),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }
}

/// Sign a request with a fresh random nonce.
pub fn sign_request(
    key: &Sm2PrivateKey,
    terminal: &TerminalId,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<SignedHeaders, AuthError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|_| AuthError::Signing)?;
    sign_request_with_nonce(
        key,
        terminal,
        method,
        path_and_query,
        timestamp,
        &nonce,
        body,
    )
}

/// Sign a request with a given nonce (tests use it to replay).
pub fn sign_request_with_nonce(
    key: &Sm2PrivateKey,
    terminal: &TerminalId,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &[u8; 16],
    body: &[u8],
) -> Result<SignedHeaders, AuthError> {
    let msg = string_to_sign(method, path_and_query, terminal, timestamp, nonce, body);
    let sig = key
        .sign_with_rng(&mut getrandom::SysRng, DEFAULT_ID, &msg)
        .map_err(|_| AuthError::Signing)?;
    Ok(SignedHeaders {
        terminal: terminal.to_string(),
        timestamp: timestamp.to_string(),
        nonce: hex::encode(nonce),
        signature: hex::encode(sig.to_bytes()),
    })
}

/// The bytes the server signs for a download envelope.
pub fn envelope_message(kind: &str, terminal: &TerminalId, payload: &str) -> Vec<u8> {
    format!("SSCARD-ENVELOPE-V1\n{kind}\n{terminal}\n{payload}").into_bytes()
}

/// Parse an SM2 public key given as 128 hex digits (X‖Y).
pub fn public_key_from_hex(hex_xy: &str) -> Result<Sm2PublicKey, AuthError> {
    let mut xy = [0u8; 64];
    hex::decode_to_slice(hex_xy, &mut xy).map_err(|_| AuthError::SignatureFormat)?;
    Sm2PublicKey::from_xy(&xy).map_err(|_| AuthError::SignatureFormat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_every_signed_part_matters() {
        let key = Sm2PrivateKey::generate_os().unwrap();
        let t: TerminalId = "T1".parse().unwrap();
        let h = sign_request(&key, &t, "POST", "/v1/entries", 1000, b"{}").unwrap();
        let auth = RequestAuth::from_headers(
            Some(&h.terminal),
            Some(&h.timestamp),
            Some(&h.nonce),
            Some(&h.signature),
        )
        .unwrap();
        let pk = key.public_key();
        assert_eq!(auth.verify(pk, "POST", "/v1/entries", b"{}"), Ok(()));
        assert_eq!(
            auth.verify(pk, "GET", "/v1/entries", b"{}"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth.verify(pk, "POST", "/v1/entriez", b"{}"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth.verify(pk, "POST", "/v1/entries", b"{ }"),
            Err(AuthError::BadSignature)
        );
        let mut later = auth.clone();
        later.timestamp += 1;
        assert_eq!(
            later.verify(pk, "POST", "/v1/entries", b"{}"),
            Err(AuthError::BadSignature)
        );
        let mut other_nonce = auth.clone();
        other_nonce.nonce[0] ^= 1;
        assert_eq!(
            other_nonce.verify(pk, "POST", "/v1/entries", b"{}"),
            Err(AuthError::BadSignature)
        );
        let other = Sm2PrivateKey::generate_os().unwrap();
        assert_eq!(
            auth.verify(other.public_key(), "POST", "/v1/entries", b"{}"),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn freshness_window() {
        let a = RequestAuth {
            terminal_id: "T1".parse().unwrap(),
            timestamp: 1000,
            nonce: [0; 16],
            signature: [0; 64],
        };
        assert_eq!(a.check_fresh(1300, 300), Ok(()));
        assert_eq!(a.check_fresh(700, 300), Ok(()));
        assert!(matches!(
            a.check_fresh(1301, 300),
            Err(AuthError::Stale { .. })
        ));
        assert!(matches!(
            a.check_fresh(699, 300),
            Err(AuthError::Stale { .. })
        ));
    }

    #[test]
    fn malformed_headers_are_named() {
        let ok_sig = "00".repeat(64);
        let ok_nonce = "00".repeat(16);
        let f = |t, ts, n, s| RequestAuth::from_headers(t, ts, n, s).unwrap_err();
        assert_eq!(
            f(None, Some("1"), Some(&ok_nonce), Some(&ok_sig)),
            AuthError::Missing(HEADER_TERMINAL)
        );
        assert_eq!(
            f(Some("T 1"), Some("1"), Some(&ok_nonce), Some(&ok_sig)),
            AuthError::TerminalId
        );
        assert_eq!(
            f(Some("T1"), Some("-1"), Some(&ok_nonce), Some(&ok_sig)),
            AuthError::Timestamp
        );
        assert_eq!(
            f(Some("T1"), Some("1"), Some("abc"), Some(&ok_sig)),
            AuthError::Nonce
        );
        assert_eq!(
            f(Some("T1"), Some("1"), Some(&ok_nonce), Some("00")),
            AuthError::SignatureFormat
        );
    }
}
