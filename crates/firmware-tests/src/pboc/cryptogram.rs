//! The card's symmetric cryptography, all through `card_core::crypto::kdf`: session keys from
//! the ATC, application cryptograms, the ARPC check of issuer authentication and the 4-byte
//! secure-messaging MACs.
//!
//! SM4 MACs and cryptograms take the leftmost bytes of the last block (JR/T 0025.17 §8.1.2,
//! docs/pboc-profile.md); 3DES ones are the retail MAC (JR/T 0025.7 §11.1.2.1).

use card_core::crypto::kdf::{self, CardKey};
use card_core::crypto::sm4::Sm4MacRule;

use super::state::PbocState;

/// The SM4 MAC rule of this card: JR/T 0025.17 §8.1.2, leftmost bytes.
const SM4_RULE: Sm4MacRule = Sm4MacRule::Part17LeftBytes;

/// The AC session key `SK_AC` for `atc` (JR/T 0025.7 §11.1.3, JR/T 0025.17 §8.1.3).
fn ac_session_key(state: &PbocState, atc: u16) -> CardKey {
    kdf::derive_session_key(&state.keys.ac_key(state.algorithm), atc)
}

/// The MAC session key for `atc` (JR/T 0025.5 附录 C.4: from the MAC UDK, MK-SMI).
fn mac_session_key(state: &PbocState, atc: u16) -> CardKey {
    kdf::derive_session_key(&state.keys.smi_key(state.algorithm), atc)
}

/// An application cryptogram (TC, ARQC or AAC) over `data` with the session key of `atc`
/// (JR/T 0025.5 附录 D.2, JR/T 0025.7 §6.1.2, JR/T 0025.17 §6.1.2).
pub(crate) fn application_cryptogram(state: &PbocState, atc: u16, data: &[u8]) -> [u8; 8] {
    kdf::application_cryptogram(&ac_session_key(state, atc), data, SM4_RULE)
}

/// Whether `arpc` is the issuer's answer to `arqc` with `arc` (JR/T 0025.5 §15.4.3 steps 3-4,
/// 附录 D.3; JR/T 0025.17 §6.2: the leftmost 8 bytes for SM4).
pub(crate) fn arpc_matches(
    state: &PbocState,
    atc: u16,
    arqc: &[u8; 8],
    arc: &[u8; 2],
    arpc: &[u8],
) -> bool {
    let expected = kdf::arpc(&ac_session_key(state, atc), arqc, arc);
    arpc.len() == expected.len()
        && arpc
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The 4-byte secure-messaging MAC over `data` with the MAC session key of `atc`
/// (JR/T 0025.5 附录 C.2.4, JR/T 0025.7 §7.2.3, JR/T 0025.17 §7.1.2). `data` is unpadded.
pub(crate) fn mac(state: &PbocState, atc: u16, data: &[u8]) -> [u8; 4] {
    kdf::secure_messaging_mac(&mac_session_key(state, atc), data, SM4_RULE)
}

/// Compare two MACs in time independent of where they differ.
pub(crate) fn mac_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
