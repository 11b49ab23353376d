//! `hsm-sim` is the key custody and crypto service of the social-security stack, a simulator of
//! a payment HSM. Keys exist in clear only inside it: in its SQLite key store they are
//! cryptograms under the local master key (LMK), which comes from a file or the environment and
//! never enters the database; every key has a type that fixes what commands may do with it, and
//! no command exports a key in clear. It speaks payShield-style host commands over TCP
//! ([`frame`], [`codes`]; docs/hsm-protocol.md): key generation, import and export under a ZMK,
//! card-key derivation, ARQC verification and ARPC generation for 3DES and SM4 cards, MACs, SM2
//! key pairs and certificate signing, diagnostics. Key management is recorded in an append-only
//! audit log whose records are MACed in a chain, checked at start. The same command code serves
//! the TCP server ([`server`]) and the in-process client for tests ([`client`]).

pub mod client;
pub mod codes;
pub mod fields;
pub mod frame;
pub mod hsm;
pub mod keys;
pub mod server;
pub mod store;

pub use client::{
    ArqcRequest, AsyncClient, BlockingClient, ClientError, HsmClient, InProcess, KqMode,
};
pub use codes::ErrorCode;
pub use hsm::Hsm;
pub use keys::{KeyType, Lmk, Scheme};
