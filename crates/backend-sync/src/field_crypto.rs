//! Encryption of personal fields at rest: SM4-CBC with a random IV, then HMAC-SM3 over
//! everything (encrypt-then-MAC), bound to where the field lives by associated data, plus a
//! keyed blind index for look-ups by value.
//!
//! Why this scheme: card-core offers SM4 and HMAC-SM3 and no AEAD mode; encrypt-then-MAC with
//! independent keys is the generic composition that is secure (IND-CCA2 from IND-CPA CBC and a
//! strong MAC; Bellare-Namprempre 2000), and the tag is checked in constant time before any
//! decryption, so there is no padding oracle. The associated data (table, column, row key) keeps
//! a ciphertext from being moved to another row or column unnoticed.
//!
//! Keys: one 16-byte master key kept **outside** the database file (a key file of 32 hex digits
//! or an environment variable); three keys are derived from it with HMAC-SM3 and distinct
//! labels: the SM4 key, the MAC key, and the blind-index key. All are zeroized on drop.
//!
//! Sealed form: `01 ‖ IV (16) ‖ SM4-CBC(PKCS#7-padded plaintext) ‖ tag (32)`,
//! `tag = HMAC-SM3(mac key, 01 ‖ len(aad) as u32 BE ‖ aad ‖ IV ‖ ciphertext)`.

use card_core::crypto::sm3::hmac_sm3;
use card_core::crypto::sm4::{BLOCK_LEN, Sm4Key};
use zeroize::{Zeroize, Zeroizing};

/// Version byte of the sealed form.
const VERSION: u8 = 1;
/// Tag length (the whole HMAC-SM3).
const TAG_LEN: usize = 32;

/// Errors of sealing and opening, one per cause.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FieldCryptoError {
    /// A sealed value shorter than version, IV, one block and tag.
    #[error("a sealed field has at least 65 bytes, this one has {0}")]
    TooShort(usize),
    /// A sealed value of a version this code does not know.
    #[error("unknown sealed-field version {0}")]
    Version(u8),
    /// The tag does not verify: wrong key, altered data, or moved to another row.
    #[error("the sealed field does not authenticate (wrong key or altered)")]
    TagMismatch,
    /// The ciphertext is not whole blocks, or its padding is wrong after authentication.
    #[error("the sealed field's ciphertext is malformed")]
    Ciphertext,
    /// The random number generator failed.
    #[error("the random number generator failed")]
    Rng,
    /// A key that is not 32 hex digits.
    #[error("a field key is 32 hex digits")]
    KeyFormat,
    /// The key file could not be read.
    #[error("cannot read the field key file: {0}")]
    KeyFile(std::io::Error),
    /// Neither a key file nor the environment variable gives a key.
    #[error("no field key: give a key file or set {0}")]
    NoKey(&'static str),
}

/// The environment variable that may carry the field key (32 hex digits).
pub const KEY_ENV: &str = "SSCARD_FIELD_KEY";

/// The keys for personal fields at rest. `Debug` shows nothing of them.
pub struct FieldKey {
    enc: Sm4Key,
    mac: Zeroizing<[u8; 32]>,
    index: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldKey { .. }")
    }
}

impl FieldKey {
    /// Derive the three keys from a 16-byte master key.
    pub fn from_master(master: &[u8; 16]) -> Self {
        let mut enc = hmac_sm3(master, b"sscard backend-sync field encryption v1");
        let mut enc16 = [0u8; 16];
        for (o, b) in enc16.iter_mut().zip(enc.iter()) {
            *o = *b;
        }
        let key = Sm4Key::new(enc16);
        enc.zeroize();
        enc16.zeroize();
        Self {
            enc: key,
            mac: Zeroizing::new(hmac_sm3(master, b"sscard backend-sync field mac v1")),
            index: Zeroizing::new(hmac_sm3(master, b"sscard backend-sync blind index v1")),
        }
    }

    /// From 32 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self, FieldCryptoError> {
        let mut master = Zeroizing::new([0u8; 16]);
        hex::decode_to_slice(text.trim(), master.as_mut())
            .map_err(|_| FieldCryptoError::KeyFormat)?;
        Ok(Self::from_master(&master))
    }

    /// From a key file (32 hex digits), or if `path` is `None`, from [`KEY_ENV`].
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, FieldCryptoError> {
        match path {
            Some(p) => {
                let text =
                    Zeroizing::new(std::fs::read_to_string(p).map_err(FieldCryptoError::KeyFile)?);
                Self::from_hex(&text)
            }
            None => {
                let text = Zeroizing::new(
                    std::env::var(KEY_ENV).map_err(|_| FieldCryptoError::NoKey(KEY_ENV))?,
                );
                Self::from_hex(&text)
            }
        }
    }

    /// A fresh random master key as 32 hex digits (to write to a key file).
    pub fn generate_hex() -> Result<Zeroizing<String>, FieldCryptoError> {
        let mut master = Zeroizing::new([0u8; 16]);
        getrandom::fill(master.as_mut()).map_err(|_| FieldCryptoError::Rng)?;
        Ok(Zeroizing::new(hex::encode_upper(master.as_ref())))
    }

    fn tag(&self, aad: &[u8], iv: &[u8], ct: &[u8]) -> [u8; TAG_LEN] {
        let aad_len = u32::try_from(aad.len()).unwrap_or(u32::MAX).to_be_bytes();
        let mut msg = Vec::with_capacity(1 + 4 + aad.len() + iv.len() + ct.len());
        msg.push(VERSION);
        msg.extend_from_slice(&aad_len);
        msg.extend_from_slice(aad);
        msg.extend_from_slice(iv);
        msg.extend_from_slice(ct);
        hmac_sm3(self.mac.as_ref(), &msg)
    }

    /// Encrypt and authenticate `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, FieldCryptoError> {
        let mut iv = [0u8; BLOCK_LEN];
        getrandom::fill(&mut iv).map_err(|_| FieldCryptoError::Rng)?;
        let pad = BLOCK_LEN - plaintext.len() % BLOCK_LEN;
        let mut padded = Zeroizing::new(Vec::with_capacity(plaintext.len() + pad));
        padded.extend_from_slice(plaintext);
        padded.extend(std::iter::repeat_n(u8::try_from(pad).unwrap_or(16), pad));
        let ct = self
            .enc
            .encrypt_cbc(&iv, &padded)
            .map_err(|_| FieldCryptoError::Ciphertext)?;
        let tag = self.tag(aad, &iv, &ct);
        let mut out = Vec::with_capacity(1 + BLOCK_LEN + ct.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Check and decrypt a sealed value made for `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, FieldCryptoError> {
        let min = 1 + BLOCK_LEN + BLOCK_LEN + TAG_LEN;
        if sealed.len() < min {
            return Err(FieldCryptoError::TooShort(sealed.len()));
        }
        let (head, rest) = sealed.split_at(1);
        if head != [VERSION] {
            return Err(FieldCryptoError::Version(
                head.first().copied().unwrap_or(0),
            ));
        }
        let (iv, rest) = rest.split_at(BLOCK_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        if !ct_eq(&self.tag(aad, iv, ct), tag) {
            return Err(FieldCryptoError::TagMismatch);
        }
        let iv: &[u8; BLOCK_LEN] = iv.try_into().map_err(|_| FieldCryptoError::Ciphertext)?;
        let mut pt = Zeroizing::new(
            self.enc
                .decrypt_cbc(iv, ct)
                .map_err(|_| FieldCryptoError::Ciphertext)?,
        );
        let pad = usize::from(pt.last().copied().unwrap_or(0));
        if pad == 0 || pad > BLOCK_LEN || pad > pt.len() {
            return Err(FieldCryptoError::Ciphertext);
        }
        let keep = pt.len() - pad;
        if !pt
            .get(keep..)
            .unwrap_or_default()
            .iter()
            .all(|&b| usize::from(b) == pad)
        {
            return Err(FieldCryptoError::Ciphertext);
        }
        pt.truncate(keep);
        Ok(pt)
    }

    /// Seal a string.
    pub fn seal_str(&self, aad: &[u8], s: &str) -> Result<Vec<u8>, FieldCryptoError> {
        self.seal(aad, s.as_bytes())
    }

    /// Open a sealed string.
    pub fn open_str(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, FieldCryptoError> {
        let bytes = self.open(aad, sealed)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| FieldCryptoError::Ciphertext)
    }

    /// The blind index of `value` in `domain`: HMAC-SM3 under the index key, for equality
    /// look-ups without storing the value in clear.
    pub fn blind_index(&self, domain: &str, value: &str) -> [u8; 32] {
        let mut msg = Zeroizing::new(Vec::with_capacity(domain.len() + 1 + value.len()));
        msg.extend_from_slice(domain.as_bytes());
        msg.push(0);
        msg.extend_from_slice(value.as_bytes());
        hmac_sm3(self.index.as_ref(), &msg)
    }
}

/// Constant-time equality of two byte strings of public length.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FieldKey {
        FieldKey::from_hex("000102030405060708090A0B0C0D0E0F").unwrap()
    }

    #[test]
    fn round_trip_and_randomized() {
        let k = key();
        for len in [0usize, 1, 15, 16, 17, 100] {
            let pt = vec![0x5a; len];
            let s1 = k.seal(b"entries.pan:7", &pt).unwrap();
            let s2 = k.seal(b"entries.pan:7", &pt).unwrap();
            assert_ne!(s1, s2, "a fresh IV each time");
            assert_eq!(
                k.open(b"entries.pan:7", &s1).unwrap().as_slice(),
                pt.as_slice()
            );
        }
    }

    #[test]
    fn tampering_wrong_aad_and_wrong_key_are_refused() {
        let k = key();
        let s = k.seal(b"a", b"6217000010001234567").unwrap();
        assert!(matches!(
            k.open(b"b", &s),
            Err(FieldCryptoError::TagMismatch)
        ));
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x01;
            assert!(k.open(b"a", &t).is_err(), "flip at {i}");
        }
        let other = FieldKey::from_hex("FF0102030405060708090A0B0C0D0E0F").unwrap();
        assert!(matches!(
            other.open(b"a", &s),
            Err(FieldCryptoError::TagMismatch)
        ));
        assert!(matches!(
            k.open(b"a", &s[..10]),
            Err(FieldCryptoError::TooShort(10))
        ));
    }

    #[test]
    fn key_parsing_and_debug() {
        assert!(matches!(
            FieldKey::from_hex("zz"),
            Err(FieldCryptoError::KeyFormat)
        ));
        assert_eq!(format!("{:?}", key()), "FieldKey { .. }");
        let k = key();
        assert_eq!(k.blind_index("pan", "1"), k.blind_index("pan", "1"));
        assert_ne!(k.blind_index("pan", "1"), k.blind_index("ssn", "1"));
        assert_eq!(FieldKey::generate_hex().unwrap().len(), 32);
    }
}
