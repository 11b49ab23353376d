//! `firmware-tests` is the card side of the social-security stack: a software card operating
//! system with the social-security (SSSE) application, its file system persisted with atomic
//! writes so that a torn write leaves the card consistent, and the ways to reach it: in-process
//! as a [`card_core::CardChannel`] ([`os::SoftCard`]), and as a virtual card inside a real
//! pcscd through the vpcd driver ([`vpcd::VirtualSlot`], and the `virtual-card` binary that
//! holds several cards and inserts or removes them on command). Card contents come from TOML
//! profiles of fictional people ([`profile`]). [`testenv`] lets tests share the machine's one
//! pcscd safely. [`conformance`] is the conformance and health suite, run against this card or
//! any real one through any reader; [`testcards`] issues good and deliberately broken cards for
//! it.

pub mod conformance;
pub mod fs;
pub mod hostile;
pub mod image;
pub mod leaks;
pub mod os;
pub mod pboc;
pub mod personalize;
pub mod profile;
pub mod serial_reader;
pub mod storage;
pub mod testcards;
pub mod testenv;
pub mod vpcd;

pub use os::SoftCard;
pub use profile::Profile;
pub use vpcd::{SharedCard, VirtualSlot};

/// A fixture card kept in memory, shared for use in a [`VirtualSlot`].
pub fn shared_fixture(name: &str) -> Option<SharedCard> {
    let image = Profile::embedded(name)?.build().ok()?;
    Some(std::sync::Arc::new(std::sync::Mutex::new(
        SoftCard::in_memory(image),
    )))
}
