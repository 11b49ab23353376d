//! The counter API: how a pharmacy's or hospital's own point-of-sale software uses the
//! terminal's card reader, PIN pad and ledger (docs/counter-api.md; the OpenAPI description is
//! docs/counter-openapi.yaml).
//!
//! - HTTP on a loopback address only: another address is refused at start, and each request's
//!   peer is checked again ([`api`]).
//! - A bearer token from a local file only the terminal's user can read, created with a random
//!   token if missing ([`token`]).
//! - JSON ([`model`]): the card's status (masked identity, the identity check's verdict, PIN
//!   tries), verify (the cardholder enters the PIN on the terminal's own PIN pad; no PIN ever
//!   travels over the API), debit with the client's reference (the same reference never debits
//!   twice: it is written in the ledger with the payment's intent), the day's transactions.
//! - The card and ledger work runs on one thread of its own, one card operation at a time, with
//!   the kiosk's library flows ([`service`]).

pub mod api;
pub mod model;
pub mod pinpad;
pub mod service;
pub mod token;

pub use api::{ServeError, bind, check_loopback, parse_listen, router, serve};
pub use service::{CounterConfig, CounterError, CounterService};
pub use token::{ApiToken, TokenError};
