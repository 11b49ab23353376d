//! Key derivation and cryptograms of the PBOC 3.0 debit/credit application, for 3DES cards
//! (JR/T 0025.7 §6, §7, §11) and SM4 cards (JR/T 0025.17 §6, §7, §8) alike.
//!
//! The chain an issuer host (or the card) runs:
//!
//! 1. [`derive_card_key`]: the card's own key `MK` (the UDK) from the issuer master key `IMK`,
//!    the PAN and the PAN sequence number (JR/T 0025.7 §11.1.4, JR/T 0025.17 §8.1.4).
//! 2. [`derive_session_key`]: the session key `SK` from `MK` and the ATC (JR/T 0025.7
//!    §11.1.3, JR/T 0025.17 §8.1.3).
//! 3. [`application_cryptogram`]: ARQC, TC or AAC over the transaction data (JR/T 0025.7
//!    §6.1.2, JR/T 0025.17 §6.1.2).
//! 4. [`arpc`]: the issuer's answer (JR/T 0025.7 §6.2, JR/T 0025.17 §6.2).
//!
//! [`CardAlgorithm`] names the cipher, as the card announces it in the algorithm byte of the
//! issuer application data (`01` 3DES, `04` SM4: JR/T 0025.17 Annex A.3). Where JR/T 0025.7
//! and JR/T 0025.17 disagree for 128-bit blocks, the caller names the text to follow:
//! [`Sm4MacRule`] for MACs and cryptograms, [`arpc_sm4_full_block`] for the 16-byte ARPC of
//! JR/T 0025.7 §6.2.

use zeroize::Zeroize;

use super::block::{self, BlockError};
use super::sm4::{Sm4Key, Sm4MacRule, split_halves};
use super::tdes::{TdesKey, set_odd_parity};

/// Errors of key derivation.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KdfError {
    /// The algorithm byte of the issuer application data is neither `01` (3DES) nor `04` (SM4).
    #[error("unknown cryptogram algorithm id {0:02X} (01 = 3DES, 04 = SM4)")]
    UnknownAlgorithmId(u8),
    /// The PAN holds something other than the digits 0-9.
    #[error("the PAN has a character other than 0-9")]
    PanNotDigits,
    /// The PAN is empty or longer than 19 digits.
    #[error("a PAN has 1 to 19 digits, this one has {len}")]
    PanLength {
        /// Digits given.
        len: usize,
    },
    /// The PAN sequence number is not two digits.
    #[error("the PAN sequence number is two digits 00-99")]
    PsnFormat,
    /// A BCD-coded PAN (tag 5A) has a nibble A-E, or digits after the `F` padding.
    #[error("the BCD PAN has a nibble other than 0-9 and trailing F")]
    BcdPan,
    /// A key or block error from the cipher.
    #[error(transparent)]
    Block(#[from] BlockError),
}

/// The symmetric algorithm of a card's cryptograms: the algorithm byte of the issuer
/// application data (JR/T 0025.17 Annex A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardAlgorithm {
    /// Double-length 3DES, JR/T 0025.7 (IAD algorithm id `01`).
    Tdes,
    /// SM4, JR/T 0025.17 (IAD algorithm id `04`).
    Sm4,
}

impl CardAlgorithm {
    /// The algorithm for an IAD algorithm id: `01` 3DES, `04` SM4.
    pub fn from_iad_id(id: u8) -> Result<Self, KdfError> {
        match id {
            0x01 => Ok(Self::Tdes),
            0x04 => Ok(Self::Sm4),
            other => Err(KdfError::UnknownAlgorithmId(other)),
        }
    }

    /// The IAD algorithm id of this algorithm.
    pub fn iad_id(self) -> u8 {
        match self {
            Self::Tdes => 0x01,
            Self::Sm4 => 0x04,
        }
    }
}

/// A 16-byte key of a PBOC card or issuer: an issuer master key, a card key (`MK`, UDK) or a
/// session key, in the card's algorithm. Zeroized on drop; `Debug` shows its check value only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardKey {
    /// A double-length 3DES key.
    Tdes(TdesKey),
    /// An SM4 key.
    Sm4(Sm4Key),
}

impl CardKey {
    /// A key of `algorithm` from its 16 bytes.
    pub fn new(algorithm: CardAlgorithm, bytes: [u8; 16]) -> Self {
        match algorithm {
            CardAlgorithm::Tdes => Self::Tdes(TdesKey::new(bytes)),
            CardAlgorithm::Sm4 => Self::Sm4(Sm4Key::new(bytes)),
        }
    }

    /// A key of `algorithm` from a slice of exactly 16 bytes.
    pub fn from_slice(algorithm: CardAlgorithm, bytes: &[u8]) -> Result<Self, KdfError> {
        Ok(match algorithm {
            CardAlgorithm::Tdes => Self::Tdes(TdesKey::from_slice(bytes)?),
            CardAlgorithm::Sm4 => Self::Sm4(Sm4Key::from_slice(bytes)?),
        })
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> CardAlgorithm {
        match self {
            Self::Tdes(_) => CardAlgorithm::Tdes,
            Self::Sm4(_) => CardAlgorithm::Sm4,
        }
    }

    /// The key bytes, for storing the key under another key. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; 16] {
        match self {
            Self::Tdes(k) => k.expose_bytes(),
            Self::Sm4(k) => k.expose_bytes(),
        }
    }

    /// Key check value: the first `len` bytes of the key applied to a zero block (8 bytes for
    /// 3DES, 16 for SM4).
    pub fn check_value(&self, len: usize) -> Result<Vec<u8>, BlockError> {
        match self {
            Self::Tdes(k) => k.check_value(len),
            Self::Sm4(k) => k.check_value(len),
        }
    }

    /// The usual 3-byte key check value.
    pub fn kcv(&self) -> [u8; 3] {
        match self {
            Self::Tdes(k) => k.kcv(),
            Self::Sm4(k) => k.kcv(),
        }
    }
}

/// The digits of a BCD PAN as read from tag 5A (`cn`: digits, then `F` padding).
pub fn pan_from_bcd(bcd: &[u8]) -> Result<String, KdfError> {
    let mut digits = String::with_capacity(bcd.len() * 2);
    let mut padding = false;
    for nibble in bcd.iter().flat_map(|b| [b >> 4, b & 0x0f]) {
        match nibble {
            0..=9 if !padding => digits.push(char::from(b'0' + nibble)),
            0x0f => padding = true,
            _ => return Err(KdfError::BcdPan),
        }
    }
    Ok(digits)
}

/// The diversification input `Y` of JR/T 0025.7 §11.1.4 1) and JR/T 0025.17 §8.1.4 a)
/// (EMV option A): `X = PAN ‖ PSN` (PSN `00` when the card has none); fewer than 16 digits are
/// right-aligned and padded on the left with `0`, otherwise the rightmost 16 digits; packed
/// two digits a byte.
pub fn diversification_input(pan: &str, psn: Option<&str>) -> Result<[u8; 8], KdfError> {
    if !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KdfError::PanNotDigits);
    }
    if !(1..=19).contains(&pan.len()) {
        return Err(KdfError::PanLength { len: pan.len() });
    }
    let psn = psn.unwrap_or("00");
    if psn.len() != 2 || !psn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KdfError::PsnFormat);
    }
    let x: Vec<u8> = pan.bytes().chain(psn.bytes()).map(|b| b - b'0').collect();
    let mut digits = [0u8; 16];
    for (slot, digit) in digits.iter_mut().rev().zip(x.iter().rev()) {
        *slot = *digit;
    }
    let mut y = [0u8; 8];
    for (byte, pair) in y.iter_mut().zip(digits.as_chunks::<2>().0) {
        let [hi, lo] = *pair;
        *byte = (hi << 4) | lo;
    }
    Ok(y)
}

/// The card key `MK` (UDK) from the issuer master key (JR/T 0025.7 §11.1.4, JR/T 0025.17
/// §8.1.4), with `Y` from [`diversification_input`]:
///
/// - 3DES (§11.1.4 2) a)): `ZL := 3DES(IMK)[Y]`, `ZR := 3DES(IMK)[Y ⊕ FF..FF]`,
///   `MK := ZL ‖ ZR` with every byte set to odd DES parity;
/// - SM4 (JR/T 0025.17 §8.1.4 b), JR/T 0025.7 §11.1.4 2) b)): `MK := SM4(IMK)[Y ‖ (Y ⊕ FF..FF)]`,
///   one block.
pub fn derive_card_key(imk: &CardKey, pan: &str, psn: Option<&str>) -> Result<CardKey, KdfError> {
    let y = diversification_input(pan, psn)?;
    let not_y = y.map(|b| !b);
    Ok(match imk {
        CardKey::Tdes(k) => CardKey::Tdes(tdes_two_halves(k, &y, &not_y)),
        CardKey::Sm4(k) => CardKey::Sm4(sm4_one_block(k, &y, &not_y)),
    })
}

/// The session key `SK` from the card key and the ATC (JR/T 0025.7 §11.1.3, JR/T 0025.17
/// §8.1.3):
///
/// - 3DES (JR/T 0025.7 §11.1.3.1 2), double-length session key):
///   `ZL := 3DES(MK)[00 00 00 00 00 00 ‖ ATC]`, `ZR := 3DES(MK)[00 00 00 00 00 00 ‖ (ATC ⊕ FFFF)]`,
///   `SK := ZL ‖ ZR` with odd DES parity. This is PBOC's own derivation, not EMV's common
///   session key;
/// - SM4 (JR/T 0025.17 §8.1.3, JR/T 0025.7 §11.1.3.2):
///   `SK := SM4(MK)[00 00 00 00 00 00 ‖ ATC ‖ 00 00 00 00 00 00 ‖ (ATC ⊕ FFFF)]`.
pub fn derive_session_key(card_key: &CardKey, atc: u16) -> CardKey {
    let [a0, a1] = atc.to_be_bytes();
    let [n0, n1] = (atc ^ 0xffff).to_be_bytes();
    let a = [0, 0, 0, 0, 0, 0, a0, a1];
    let b = [0, 0, 0, 0, 0, 0, n0, n1];
    match card_key {
        CardKey::Tdes(k) => CardKey::Tdes(tdes_two_halves(k, &a, &b)),
        CardKey::Sm4(k) => CardKey::Sm4(sm4_one_block(k, &a, &b)),
    }
}

/// An application cryptogram (ARQC, TC or AAC) over `data`, the concatenated data elements the
/// card's CDOL and internal data give (JR/T 0025.7 §6.1.1), with the session key:
///
/// - 3DES: the retail MAC, ISO/IEC 9797-1 MAC algorithm 3 with padding method 2
///   (JR/T 0025.7 §6.1.2, §11.1.2.1);
/// - SM4: the SM4 CBC-MAC with padding method 2 and the final step `sm4_rule` names:
///   [`Sm4MacRule::Part17LeftBytes`] (JR/T 0025.17 §6.1.2 step 5, §8.1.2 b)) or
///   [`Sm4MacRule::Part7XorHalves`] (JR/T 0025.7 §6.1.2, §11.1.2.2). Ignored for 3DES.
pub fn application_cryptogram(session_key: &CardKey, data: &[u8], sm4_rule: Sm4MacRule) -> [u8; 8] {
    match session_key {
        CardKey::Tdes(k) => k.retail_mac(data),
        CardKey::Sm4(k) => k.pboc_mac(data, sm4_rule),
    }
}

/// The 4-byte secure-messaging MAC over `data` (command header and data, padded here) with
/// the MAC session key (JR/T 0025.7 §7.2.3, JR/T 0025.17 §7.1.2): the leftmost 4 bytes of the
/// MAC of [`application_cryptogram`].
pub fn secure_messaging_mac(session_key: &CardKey, data: &[u8], sm4_rule: Sm4MacRule) -> [u8; 4] {
    application_cryptogram(session_key, data, sm4_rule)
        .first_chunk()
        .copied()
        .unwrap_or_default()
}

/// The 8-byte ARPC from the ARQC and the 2-byte authorisation response code:
/// `Y := ARQC ⊕ (ARC ‖ 00 00 00 00 00 00)`, then
///
/// - 3DES (JR/T 0025.7 §6.2, 64-bit block): `ARPC := 3DES(SK)[Y]`;
/// - SM4 (JR/T 0025.17 §6.2): the leftmost 8 bytes of `SM4(SK)[Y ‖ 00 .. 00]`.
///
/// JR/T 0025.7 §6.2 keeps all 16 bytes for a 128-bit cipher: [`arpc_sm4_full_block`].
pub fn arpc(session_key: &CardKey, arqc: &[u8; 8], arc: &[u8; 2]) -> [u8; 8] {
    let y = arpc_input(arqc, arc);
    match session_key {
        CardKey::Tdes(k) => k.encrypt_block(&y),
        CardKey::Sm4(k) => split_halves(&sm4_arpc_block(k, &y)).0,
    }
}

/// The 16-byte ARPC JR/T 0025.7 §6.2 3) defines for a 128-bit block cipher:
/// `SM4(SK)[Y ‖ 00 .. 00]` whole, `Y := ARQC ⊕ (ARC ‖ 00 .. 00)`. Its first 8 bytes are the
/// ARPC of JR/T 0025.17 §6.2 ([`arpc`]).
pub fn arpc_sm4_full_block(session_key: &Sm4Key, arqc: &[u8; 8], arc: &[u8; 2]) -> [u8; 16] {
    sm4_arpc_block(session_key, &arpc_input(arqc, arc))
}

fn arpc_input(arqc: &[u8; 8], arc: &[u8; 2]) -> [u8; 8] {
    let [r0, r1] = *arc;
    block::xor(arqc, &[r0, r1, 0, 0, 0, 0, 0, 0])
}

fn sm4_arpc_block(key: &Sm4Key, y: &[u8; 8]) -> [u8; 16] {
    let mut d = [0u8; 16];
    for (o, b) in d.iter_mut().zip(y) {
        *o = *b;
    }
    key.encrypt_block(&d)
}

/// `3DES(K)[a] ‖ 3DES(K)[b]`, set to odd parity.
fn tdes_two_halves(key: &TdesKey, a: &[u8; 8], b: &[u8; 8]) -> TdesKey {
    let mut bytes = [0u8; 16];
    for (o, x) in bytes
        .iter_mut()
        .zip(key.encrypt_block(a).into_iter().chain(key.encrypt_block(b)))
    {
        *o = x;
    }
    set_odd_parity(&mut bytes);
    let derived = TdesKey::new(bytes);
    bytes.zeroize();
    derived
}

/// `SM4(K)[a ‖ b]`.
fn sm4_one_block(key: &Sm4Key, a: &[u8; 8], b: &[u8; 8]) -> Sm4Key {
    let mut input = [0u8; 16];
    for (o, x) in input.iter_mut().zip(a.iter().chain(b)) {
        *o = *x;
    }
    let mut bytes = key.encrypt_block(&input);
    let derived = Sm4Key::new(bytes);
    bytes.zeroize();
    derived
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diversification_input_option_a() {
        // 17-digit PAN + PSN = 19 digits: keep the rightmost 16.
        assert_eq!(
            diversification_input("12345678901234567", Some("45")).unwrap(),
            [0x45, 0x67, 0x89, 0x01, 0x23, 0x45, 0x67, 0x45]
        );
        // Short PAN: right-aligned, zeros on the left; missing PSN is 00.
        assert_eq!(
            diversification_input("123456789012", None).unwrap(),
            [0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x00]
        );
        assert_eq!(
            diversification_input("12a4", None),
            Err(KdfError::PanNotDigits)
        );
        assert_eq!(
            diversification_input("", None),
            Err(KdfError::PanLength { len: 0 })
        );
        assert_eq!(
            diversification_input("1234", Some("5")),
            Err(KdfError::PsnFormat)
        );
    }

    #[test]
    fn bcd_pan() {
        assert_eq!(pan_from_bcd(&[0x62, 0x25, 0x88, 0x1f]).unwrap(), "6225881");
        assert_eq!(pan_from_bcd(&[0x12, 0xff]).unwrap(), "12");
        assert_eq!(pan_from_bcd(&[0x1a]), Err(KdfError::BcdPan));
        assert_eq!(pan_from_bcd(&[0xf1]), Err(KdfError::BcdPan));
    }

    #[test]
    fn algorithm_ids() {
        assert_eq!(CardAlgorithm::from_iad_id(1), Ok(CardAlgorithm::Tdes));
        assert_eq!(CardAlgorithm::from_iad_id(4), Ok(CardAlgorithm::Sm4));
        assert_eq!(
            CardAlgorithm::from_iad_id(2),
            Err(KdfError::UnknownAlgorithmId(2))
        );
        assert_eq!(CardAlgorithm::Sm4.iad_id(), 4);
    }

    #[test]
    fn sm4_arpc_is_left_half_of_full_block() {
        let sk = Sm4Key::new([7; 16]);
        let full = arpc_sm4_full_block(&sk, &[1; 8], &[0x30, 0x30]);
        let short = arpc(&CardKey::Sm4(sk), &[1; 8], &[0x30, 0x30]);
        assert_eq!(&full[..8], &short);
    }
}
