//! `card-core` is the pure protocol layer of the social-security card stack: everything a
//! terminal needs to talk to a Chinese social-security card (社保卡) except the I/O itself.
//! It knows command and response APDUs and their status words, BER-TLV and the tag dictionary
//! of the EMV/PBOC and SSSE applications, the Answer To Reset, and the SSSE application's
//! flows (select, identity read by tag, PIN verification and change), all written against the
//! [`channel::CardChannel`] trait so that a PC/SC reader, a serial reader, the in-process
//! software card or a recorded transcript can stand behind it. It does no I/O, starts no
//! threads and depends on no other crate of the workspace; readers live in `reader-driver`,
//! the card side in `firmware-tests`.
//!
//! The one place that sends APDUs is [`channel::CardSession::send`]: it handles `61xx`,
//! `6Cxx`, chaining and the redacted trace.

#![deny(clippy::indexing_slicing)]

pub mod apdu;
pub mod atr;
pub mod channel;
pub mod crypto;
pub mod mask;
pub mod pboc;
pub mod secret;
pub mod ssse;
pub mod status;
pub mod tags;
pub mod tlv;
pub mod trace;
pub mod transcript;
pub mod trust_file;

pub use apdu::{Command, Response};
pub use channel::{CardChannel, CardSession, SendError, TransportError};
pub use status::StatusWord;
