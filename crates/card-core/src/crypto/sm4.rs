//! SM4 (GM/T 0002), the block cipher of PBOC 3.0 SM cards (JR/T 0025.17 §9.1) and of the
//! third-generation social-security card.
//!
//! [`Sm4Key`] holds a 16-byte key (zeroized on drop, redacted in `Debug`) and offers ECB and
//! CBC over whole blocks (JR/T 0025.17 §8.1.1), the PBOC CBC-MAC of JR/T 0025.17 §8.1.2 with
//! both final steps the two texts give ([`Sm4MacRule`]), and key check values.

use cipher::array::Array;
use cipher::{BlockCipherDecrypt as _, BlockCipherEncrypt as _, KeyInit as _};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::block::{self, BlockError};

/// SM4 block length in bytes.
pub const BLOCK_LEN: usize = 16;
/// SM4 key length in bytes.
pub const KEY_LEN: usize = 16;
/// Length of a key check value unless asked otherwise.
pub const DEFAULT_KCV_LEN: usize = 3;

/// How the PBOC MAC over SM4 turns the last CBC block `HK` into the MAC.
///
/// JR/T 0025.7 §11.1.2.2 (MAC with any 128-bit block cipher) and JR/T 0025.17 §8.1.2 (the same
/// MAC with SM4) disagree on this last step; both are implemented and the caller names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sm4MacRule {
    /// JR/T 0025.17 §8.1.2: the leftmost bytes of `HK` (4 for secure messaging, 8 for an
    /// application cryptogram, §8.1.2 a) and b)). The SM-specific text, so the default.
    #[default]
    Part17LeftBytes,
    /// JR/T 0025.7 §11.1.2.2: `HK+1 := HKL ⊕ HKR` (the two 8-byte halves XORed), the MAC being
    /// the leftmost bytes of `HK+1`.
    Part7XorHalves,
}

/// A 16-byte SM4 key. Zeroized on drop (the key bytes and the cipher's round keys); `Debug`
/// shows only its key check value.
#[derive(Clone, ZeroizeOnDrop)]
pub struct Sm4Key {
    bytes: [u8; KEY_LEN],
    // The `sm4` crate zeroizes its round keys on drop (feature `zeroize`).
    #[zeroize(skip)]
    cipher: ::sm4::Sm4,
}

impl Sm4Key {
    /// A key from its 16 bytes.
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        let cipher = ::sm4::Sm4::new(&Array::from(bytes));
        Self { bytes, cipher }
    }

    /// A key from a slice that must hold exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, BlockError> {
        let mut array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| BlockError::KeyLength {
            expected: KEY_LEN,
            actual: bytes.len(),
        })?;
        let key = Self::new(array);
        array.zeroize();
        Ok(key)
    }

    /// The key bytes, for storing the key under another key. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Encrypt one block: `ALG(K)[X]`.
    pub fn encrypt_block(&self, block: &[u8; BLOCK_LEN]) -> [u8; BLOCK_LEN] {
        let mut b = Array::from(*block);
        self.cipher.encrypt_block(&mut b);
        b.into()
    }

    /// Decrypt one block: `ALG⁻¹(K)[Y]`.
    pub fn decrypt_block(&self, block: &[u8; BLOCK_LEN]) -> [u8; BLOCK_LEN] {
        let mut b = Array::from(*block);
        self.cipher.decrypt_block(&mut b);
        b.into()
    }

    /// ECB encryption of whole blocks (JR/T 0025.17 §8.1.1 b) 1)). Pad first if needed
    /// ([`block::pad_method2`]).
    pub fn encrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, BlockError> {
        block::ecb(data, |b| self.encrypt_block(b))
    }

    /// ECB decryption of whole blocks (JR/T 0025.17 §8.1.1, deciphering a)).
    pub fn decrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, BlockError> {
        block::ecb(data, |b| self.decrypt_block(b))
    }

    /// ECB encryption in place, for bulk data (whole blocks only).
    pub fn encrypt_ecb_in_place(&self, data: &mut [u8]) -> Result<(), BlockError> {
        let len = data.len();
        let (blocks, rest) = data.as_chunks_mut::<BLOCK_LEN>();
        if !rest.is_empty() {
            return Err(BlockError::NotWholeBlocks {
                len,
                block: BLOCK_LEN,
            });
        }
        self.cipher
            .encrypt_blocks(Array::cast_slice_from_core_mut(blocks));
        Ok(())
    }

    /// CBC encryption of whole blocks with the given IV (JR/T 0025.17 §8.1.1 b) 2) uses an
    /// all-zero `Y0`).
    pub fn encrypt_cbc(&self, iv: &[u8; BLOCK_LEN], data: &[u8]) -> Result<Vec<u8>, BlockError> {
        block::cbc_encrypt(iv, data, |b| self.encrypt_block(b))
    }

    /// CBC decryption of whole blocks with the given IV (JR/T 0025.17 §8.1.1, deciphering b)).
    pub fn decrypt_cbc(&self, iv: &[u8; BLOCK_LEN], data: &[u8]) -> Result<Vec<u8>, BlockError> {
        block::cbc_decrypt(iv, data, |b| self.decrypt_block(b))
    }

    /// `HK` of JR/T 0025.17 §8.1.2: `data` padded with `80 00..` (always), chained through
    /// SM4-CBC with a zero IV; the last block.
    pub fn cbc_mac_block(&self, data: &[u8]) -> [u8; BLOCK_LEN] {
        block::cbc_mac_chain(data, |b| self.encrypt_block(b))
    }

    /// The 8-byte PBOC MAC over SM4 with the final step `rule` names (JR/T 0025.17 §8.1.2 or
    /// JR/T 0025.7 §11.1.2.2). A secure-messaging MAC is its first 4 bytes, an application
    /// cryptogram all 8.
    pub fn pboc_mac(&self, data: &[u8], rule: Sm4MacRule) -> [u8; 8] {
        let hk = self.cbc_mac_block(data);
        let (left, right) = split_halves(&hk);
        match rule {
            Sm4MacRule::Part17LeftBytes => left,
            Sm4MacRule::Part7XorHalves => block::xor(&left, &right),
        }
    }

    /// The PBOC MAC cut to `len` bytes, 4 to 8 (JR/T 0025.17 §8.1.2: "S 字节的 MAC (4≤S≤8)").
    pub fn pboc_mac_len(
        &self,
        data: &[u8],
        rule: Sm4MacRule,
        len: usize,
    ) -> Result<Vec<u8>, BlockError> {
        if !(4..=8).contains(&len) {
            return Err(BlockError::MacLength { requested: len });
        }
        let mac = self.pboc_mac(data, rule);
        Ok(mac.iter().take(len).copied().collect())
    }

    /// Key check value: the first `len` bytes (1 to 16) of the key applied to a zero block.
    pub fn check_value(&self, len: usize) -> Result<Vec<u8>, BlockError> {
        block::check_value(&self.encrypt_block(&[0; BLOCK_LEN]), len)
    }

    /// The usual 3-byte key check value.
    pub fn kcv(&self) -> [u8; DEFAULT_KCV_LEN] {
        let zero = self.encrypt_block(&[0; BLOCK_LEN]);
        zero.first_chunk().copied().unwrap_or_default()
    }
}

impl core::fmt::Debug for Sm4Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c] = self.kcv();
        write!(f, "Sm4Key(kcv {a:02X}{b:02X}{c:02X})")
    }
}

impl PartialEq for Sm4Key {
    fn eq(&self, other: &Self) -> bool {
        super::ct_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for Sm4Key {}

/// The two 8-byte halves of a 16-byte block.
pub(crate) fn split_halves(block: &[u8; 16]) -> ([u8; 8], [u8; 8]) {
    let (left, right) = block.split_at(8);
    let mut l = [0u8; 8];
    let mut r = [0u8; 8];
    l.copy_from_slice(left);
    r.copy_from_slice(right);
    (l, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_key() {
        let key = Sm4Key::new([0x11; 16]);
        let text = format!("{key:?}");
        assert!(text.starts_with("Sm4Key(kcv "), "{text}");
        assert!(!text.contains("1111111111"), "{text}");
    }

    #[test]
    fn mac_rules_differ_only_in_the_last_step() {
        let key = Sm4Key::new([0x42; 16]);
        let hk = key.cbc_mac_block(b"data");
        let (l, r) = split_halves(&hk);
        assert_eq!(key.pboc_mac(b"data", Sm4MacRule::Part17LeftBytes), l);
        assert_eq!(
            key.pboc_mac(b"data", Sm4MacRule::Part7XorHalves),
            block::xor(&l, &r)
        );
        assert_eq!(
            key.pboc_mac_len(b"data", Sm4MacRule::Part17LeftBytes, 3),
            Err(BlockError::MacLength { requested: 3 })
        );
    }

    #[test]
    fn slice_length_is_checked() {
        assert_eq!(
            Sm4Key::from_slice(&[0; 15]).err(),
            Some(BlockError::KeyLength {
                expected: 16,
                actual: 15
            })
        );
    }
}
