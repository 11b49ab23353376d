//! Everything the card keeps in non-volatile memory: its files, its PIN and try counter, its
//! ATR and how it behaves on the transport, and the state of its payment application. This is
//! what [`crate::storage`] persists.

use core::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::fs::FileSystem;

/// The card's PIN and its try counter.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct PinState {
    /// The PIN in packed BCD as VERIFY carries it.
    pub(crate) bcd: Vec<u8>,
    /// The try limit.
    pub max_tries: u8,
    /// Tries left (0 = blocked).
    pub tries_left: u8,
}

impl PinState {
    /// A PIN from its digits.
    pub fn new(pin: &card_core::secret::Pin, max_tries: u8) -> Self {
        Self {
            bcd: pin.to_bcd().to_vec(),
            max_tries,
            tries_left: max_tries,
        }
    }

    /// Whether `candidate` (packed BCD) is the PIN, compared in constant time.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        if candidate.len() != self.bcd.len() {
            return false;
        }
        candidate
            .iter()
            .zip(&self.bcd)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for PinState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinState")
            .field("max_tries", &self.max_tries)
            .field("tries_left", &self.tries_left)
            .finish_non_exhaustive()
    }
}

/// How the card speaks on the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Answer like a T=0 card (JR/T 0025.3 §9.3.1.2): case 4 commands get `61xx` and their data
    /// through GET RESPONSE; case 2 commands with `Le=00` get `6C<length>` first.
    pub t0_get_response: bool,
    /// Support READ RECORD with P2 mode `101` (all records from P1 to the last).
    pub read_all_records: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            t0_get_response: false,
            read_all_records: true,
        }
    }
}

/// The card's non-volatile state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardImage {
    /// A label for people ("demo card Zhang San").
    pub label: String,
    /// The Answer To Reset.
    pub atr: Vec<u8>,
    /// Transport behaviour.
    pub behaviour: Behaviour,
    /// The PIN.
    pub pin: PinState,
    /// The files.
    pub fs: FileSystem,
    /// Private keys, never readable through any command.
    #[serde(default)]
    pub keys: CardKeys,
    /// The PBOC debit/credit application with electronic cash (counters, balance, limits,
    /// indicators, offline PIN, keys), if the card has one; its files are in `fs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pboc: Option<crate::pboc::PbocState>,
}

/// The card's private keys. Zeroized on drop; `Debug` shows only which keys exist.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct CardKeys {
    /// The SM2 private key of the PKI application (32 bytes), used by INTERNAL AUTHENTICATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sm2_private: Option<Vec<u8>>,
    /// The SSSE maintenance key (SM4, 16 bytes), diversified from the issuer's maintenance
    /// master key by the card serial; EXTERNAL AUTHENTICATE proves it before EF06 is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) maintenance: Option<Vec<u8>>,
}

impl CardKeys {
    /// Install the SM2 private key.
    pub fn set_sm2_private(&mut self, d: &[u8]) {
        self.sm2_private = Some(d.to_vec());
    }

    /// Install the maintenance key (the card's own, already diversified).
    pub fn set_maintenance(&mut self, key: &[u8; 16]) {
        self.maintenance = Some(key.to_vec());
    }

    /// Whether the card has an SM2 key pair.
    pub const fn has_sm2(&self) -> bool {
        self.sm2_private.is_some()
    }
}

impl fmt::Debug for CardKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardKeys")
            .field("sm2_private", &self.sm2_private.as_ref().map(|_| "<set>"))
            .field("maintenance", &self.maintenance.as_ref().map(|_| "<set>"))
            .finish()
    }
}
