//! `backend-sync` carries the money and the records of offline social-security card terminals
//! to the central backend exactly once, and brings the lost-card hot list, the parameters and
//! the cardholder records of the terminal's region back. It holds four parts:
//!
//! - the terminal **ledger** ([`ledger`], SQLite in WAL mode with `synchronous=FULL`): an
//!   append-only record of payments with a per-terminal sequence and an idempotency id, whose
//!   intent is written before the card command that can debit and whose outcome after it; the
//!   hot list (versioned, applied as signed deltas in one transaction), terminal parameters and
//!   cardholder records, personal fields encrypted at rest ([`field_crypto`]); a debit whose
//!   cryptogram never reached the terminal is recorded from the card's own log ([`recovery`]);
//!   an offline debit of the cardholder's medical account is recorded with the card's signature
//!   over the entry as evidence ([`medical`]);
//! - the **sync protocol** ([`wire`], [`signing`], docs/sync-protocol.md and
//!   docs/sync-openapi.yaml): HTTP + JSON, every request signed with the terminal's SM2 key;
//! - the **sync agent** ([`agent`]): uploads final entries in order and in batches, retries
//!   transient failures with backoff and jitter, stops on permanent ones, expires stale entries to
//!   a dead-letter state, downloads the hot list and parameters;
//! - the reference **central server** ([`server`], axum): SQLite or PostgreSQL, verifies every
//!   TC/AAC through hsm-sim and every medical debit's card signature against its SSSE trust
//!   store, books each entry once (a recovered debit as booked unverified), reconciles batch
//!   totals.
//!
//! Without the default `runtime` feature only the message types and request signing are built,
//! which is what the fuzz target links.

pub mod clock;
pub mod entry;
pub mod field_crypto;
pub mod mac_data;
pub mod medical;
pub mod recovery;
pub mod signing;
pub mod testkit;
pub mod wire;

#[cfg(feature = "runtime")]
pub mod agent;
#[cfg(feature = "runtime")]
pub mod fault_proxy;
#[cfg(feature = "runtime")]
pub mod ledger;
#[cfg(feature = "runtime")]
pub mod pause;
#[cfg(feature = "runtime")]
pub mod server;
#[cfg(feature = "runtime")]
pub mod tls;
