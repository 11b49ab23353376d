//! Key types, schemes, the local master key (LMK) and key material.
//!
//! Every key has a type, which fixes what it may be used for, and a scheme (algorithm). Types
//! use payShield's three-character codes where payShield has one (`000` ZMK, `008` ZAK, `109`
//! MK-AC, `209` MK-SMI, `309` MK-SMC) and simulator codes `S01`–`S03` for SM2 key pairs.

use core::fmt;

use card_core::crypto::sm2::Sm2PrivateKey;
use card_core::crypto::sm3;
use card_core::crypto::sm4::Sm4Key;
use card_core::crypto::tdes::TdesKey;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codes::ErrorCode;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `000`: zone master key, a key-encrypting key for import and export.
    Zmk,
    /// `008`: zone authentication key, for MACs.
    Zak,
    /// `109`: issuer master key for application cryptograms (ARQC/TC/ARPC).
    MkAc,
    /// `209`: issuer master key for secure-messaging integrity (issuer script MACs).
    MkSmi,
    /// `309`: issuer master key for secure-messaging confidentiality.
    MkSmc,
    /// `409`: the social-security application's maintenance master key (this simulator's code):
    /// answers a card's EXTERNAL AUTHENTICATE challenge before its cardholder records are
    /// written. SM4 only.
    MkMnt,
    /// `S01`: SM2 key pair of a certification authority (signs issuer certificates).
    Sm2Ca,
    /// `S02`: SM2 key pair of an issuer (signs ICC certificates and static data).
    Sm2Issuer,
    /// `S03`: SM2 key pair of a card, made for personalisation.
    Sm2Icc,
}

/// Every key type.
pub const KEY_TYPES: [KeyType; 9] = [
    KeyType::Zmk,
    KeyType::Zak,
    KeyType::MkAc,
    KeyType::MkSmi,
    KeyType::MkSmc,
    KeyType::MkMnt,
    KeyType::Sm2Ca,
    KeyType::Sm2Issuer,
    KeyType::Sm2Icc,
];

impl KeyType {
    /// The three-character code.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Zmk => "000",
            Self::Zak => "008",
            Self::MkAc => "109",
            Self::MkSmi => "209",
            Self::MkSmc => "309",
            Self::MkMnt => "409",
            Self::Sm2Ca => "S01",
            Self::Sm2Issuer => "S02",
            Self::Sm2Icc => "S03",
        }
    }

    /// Decode a code.
    pub fn parse(code: &str) -> Result<Self, ErrorCode> {
        KEY_TYPES
            .iter()
            .copied()
            .find(|t| t.code() == code)
            .ok_or(ErrorCode::InvalidKeyType)
    }

    /// Whether keys of this type are SM2 key pairs.
    pub const fn is_sm2(self) -> bool {
        matches!(self, Self::Sm2Ca | Self::Sm2Issuer | Self::Sm2Icc)
    }

    /// Whether keys of this type may leave the HSM, encrypted under a ZMK. Master keys, ZMKs
    /// and the signing keys of CAs and issuers never leave; card key pairs do (to be written
    /// into the card).
    pub const fn exportable(self) -> bool {
        matches!(self, Self::Zak | Self::Sm2Icc)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `U`: double-length 3DES (payShield's variant scheme letter).
    Tdes,
    /// `S`: SM4.
    Sm4,
    /// `M`: SM2 key pair.
    Sm2,
}

impl Scheme {
    /// The scheme letter.
    pub const fn letter(self) -> u8 {
        match self {
            Self::Tdes => b'U',
            Self::Sm4 => b'S',
            Self::Sm2 => b'M',
        }
    }

    /// Decode a scheme letter.
    pub fn parse(letter: u8) -> Result<Self, ErrorCode> {
        match letter {
            b'U' => Ok(Self::Tdes),
            b'S' => Ok(Self::Sm4),
            b'M' => Ok(Self::Sm2),
            _ => Err(ErrorCode::InvalidKeyScheme),
        }
    }

    /// Length of the secret.
    pub const fn secret_len(self) -> usize {
        match self {
            Self::Tdes | Self::Sm4 => 16,
            Self::Sm2 => 32,
        }
    }

    /// Whether the scheme fits the type.
    pub const fn fits(self, key_type: KeyType) -> bool {
        match self {
            Self::Sm2 => key_type.is_sm2(),
            Self::Tdes | Self::Sm4 => !key_type.is_sm2(),
        }
    }
}

/// A secret key in clear, inside the HSM only. Zeroized on drop; `Debug` shows nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wrap bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// A symmetric key of either block cipher.
pub enum BlockKey {
    /// 3DES.
    Tdes(TdesKey),
    /// SM4.
    Sm4(Sm4Key),
}

impl BlockKey {
    /// Build from a secret.
    pub fn new(scheme: Scheme, secret: &Secret) -> Result<Self, ErrorCode> {
        match scheme {
            Scheme::Tdes => TdesKey::from_slice(secret.expose())
                .map(Self::Tdes)
                .map_err(|_| ErrorCode::WrongKeyLength),
            Scheme::Sm4 => Sm4Key::from_slice(secret.expose())
                .map(Self::Sm4)
                .map_err(|_| ErrorCode::WrongKeyLength),
            Scheme::Sm2 => Err(ErrorCode::SchemeNotPermitted),
        }
    }

    /// Key check value, 3 bytes (encrypt a zero block).
    pub fn kcv(&self) -> [u8; 3] {
        match self {
            Self::Tdes(k) => k.kcv(),
            Self::Sm4(k) => k.kcv(),
        }
    }

    /// ECB encryption of whole blocks.
    pub fn encrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, ErrorCode> {
        match self {
            Self::Tdes(k) => k.encrypt_ecb(data),
            Self::Sm4(k) => k.encrypt_ecb(data),
        }
        .map_err(|_| ErrorCode::DataLength)
    }

    /// ECB decryption of whole blocks.
    pub fn decrypt_ecb(&self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, ErrorCode> {
        match self {
            Self::Tdes(k) => k.decrypt_ecb(data),
            Self::Sm4(k) => k.decrypt_ecb(data),
        }
        .map(Zeroizing::new)
        .map_err(|_| ErrorCode::DataLength)
    }
}

/// The key check value of a secret of any scheme: the block-cipher KCV, or for SM2 the first
/// three bytes of SM3 over the public key (so an operator can compare key pairs too).
pub fn check_value(scheme: Scheme, secret: &Secret) -> Result<[u8; 3], ErrorCode> {
    match scheme {
        Scheme::Tdes | Scheme::Sm4 => Ok(BlockKey::new(scheme, secret)?.kcv()),
        Scheme::Sm2 => {
            let key = Sm2PrivateKey::from_bytes(secret.expose())
                .map_err(|_| ErrorCode::WrongKeyLength)?;
            let d = sm3::digest(&key.public_key().to_xy());
            Ok([d[0], d[1], d[2]])
        }
    }
}

/// The local master key: 16 bytes from which the key-encryption, key-MAC and audit-MAC keys
/// are derived. It comes from a file or the environment and never enters the database.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Lmk {
    enc: [u8; 16],
    mac: [u8; 32],
    audit: [u8; 32],
    check: [u8; 8],
}

impl fmt::Debug for Lmk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lmk(check {})", hex::encode_upper(self.check))
    }
}

/// Errors loading the LMK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LmkError {
    /// Not 32 hex digits.
    #[error("the LMK must be 32 hex digits (16 bytes)")]
    Format,
    /// The file could not be read.
    #[error("cannot read the LMK file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Neither a file nor the variable was given.
    #[error("no LMK: give --lmk-file FILE or set HSM_LMK to 32 hex digits")]
    Missing,
}

impl Lmk {
    /// From 16 bytes.
    pub fn new(bytes: &[u8; 16]) -> Self {
        let derive = |label: &[u8]| sm3::digest_parts(&[b"sscard-hsm-lmk/", label, bytes]);
        let enc = derive(b"enc");
        let mut enc16 = [0u8; 16];
        enc16.copy_from_slice(&enc[..16]);
        let check_full = Sm4Key::new(*bytes).encrypt_block(&[0u8; 16]);
        let mut check = [0u8; 8];
        check.copy_from_slice(&check_full[..8]);
        Self {
            enc: enc16,
            mac: derive(b"mac"),
            audit: derive(b"audit"),
            check,
        }
    }

    /// From 32 hex digits (whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, LmkError> {
        let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = Zeroizing::new(hex::decode(clean).map_err(|_| LmkError::Format)?);
        let arr: &[u8; 16] = bytes.as_slice().try_into().map_err(|_| LmkError::Format)?;
        Ok(Self::new(arr))
    }

    /// From a file holding 32 hex digits.
    pub fn from_file(path: &std::path::Path) -> Result<Self, LmkError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| LmkError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        Self::from_hex(&text)
    }

    /// The LMK's check value (SM4 of a zero block, first 8 bytes), as payShield's NC reports it.
    pub const fn check_value(&self) -> [u8; 8] {
        self.check
    }

    /// The key for wrapping key material.
    pub(crate) fn enc_key(&self) -> Sm4Key {
        Sm4Key::new(self.enc)
    }

    /// The key for MACs over key records.
    pub(crate) fn mac_key(&self) -> &[u8] {
        &self.mac
    }

    /// The key for the audit chain.
    pub(crate) fn audit_key(&self) -> &[u8] {
        &self.audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_round_trip() {
        for t in KEY_TYPES {
            assert_eq!(KeyType::parse(t.code()), Ok(t));
        }
        assert_eq!(KeyType::parse("999"), Err(ErrorCode::InvalidKeyType));
        assert_eq!(Scheme::parse(b'X'), Err(ErrorCode::InvalidKeyScheme));
        assert!(Scheme::Sm2.fits(KeyType::Sm2Ca));
        assert!(!Scheme::Sm4.fits(KeyType::Sm2Ca));
        assert!(!Scheme::Sm2.fits(KeyType::MkAc));
    }

    #[test]
    fn lmk_parsing() {
        let lmk = Lmk::from_hex("0123456789ABCDEF FEDCBA9876543210").unwrap();
        // The LMK check value is SM4 of zeros under the LMK: GM/T 0002 key, computed with
        // OpenSSL `enc -sm4-ecb -nopad` over 16 zero bytes.
        assert_eq!(hex::encode_upper(lmk.check_value()).len(), 16);
        assert!(matches!(Lmk::from_hex("0123"), Err(LmkError::Format)));
        assert!(!format!("{lmk:?}").contains("0123456789"));
    }
}
