//! Double-length 3DES (two-key EDE), the symmetric cipher of PBOC 3.0 cards that do not use
//! SM4: JR/T 0025.7 §12.1.1 `Y = DES(KL)[DES⁻¹(KR)[DES(KL)[X]]]`.
//!
//! [`TdesKey`] holds the 16 key bytes (zeroized on drop, redacted in `Debug`) and offers ECB
//! and CBC over whole blocks (JR/T 0025.7 §11.1.1), the retail MAC (ISO/IEC 9797-1 MAC
//! algorithm 3 with padding method 2, JR/T 0025.7 §11.1.2.1), DES odd parity, and key check
//! values.

use cipher::array::Array;
use cipher::{BlockCipherDecrypt as _, BlockCipherEncrypt as _, KeyInit as _};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::block::{self, BlockError};

/// DES block length in bytes.
pub const BLOCK_LEN: usize = 8;
/// Double-length key: `KL ‖ KR`.
pub const KEY_LEN: usize = 16;
/// Length of a key check value unless asked otherwise.
pub const DEFAULT_KCV_LEN: usize = 3;

/// A double-length 3DES key `KL ‖ KR`. Zeroized on drop (key bytes and the ciphers' key
/// schedules); `Debug` shows only its key check value.
#[derive(Clone, ZeroizeOnDrop)]
pub struct TdesKey {
    bytes: [u8; KEY_LEN],
    // The `des` crate zeroizes its key schedules on drop (feature `zeroize`). Boxed: the three
    // schedules take about 500 bytes.
    #[zeroize(skip)]
    ciphers: Box<Schedules>,
}

#[derive(Clone)]
struct Schedules {
    ede: des::TdesEde2,
    left: des::Des,
    right: des::Des,
}

impl TdesKey {
    /// A key from its 16 bytes, taken as they are (parity bits are ignored by DES).
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        let mut kl = [0u8; 8];
        let mut kr = [0u8; 8];
        let (l, r) = bytes.split_at(8);
        kl.copy_from_slice(l);
        kr.copy_from_slice(r);
        let key = Self {
            bytes,
            ciphers: Box::new(Schedules {
                ede: des::TdesEde2::new(&Array::from(bytes)),
                left: des::Des::new(&Array::from(kl)),
                right: des::Des::new(&Array::from(kr)),
            }),
        };
        kl.zeroize();
        kr.zeroize();
        key
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

    /// The same key with every byte set to odd parity (JR/T 0025.7 §11.1.3.1 and §11.1.4: the
    /// lowest bit of each byte makes its count of 1 bits odd).
    pub fn with_odd_parity(&self) -> Self {
        let mut bytes = self.bytes;
        set_odd_parity(&mut bytes);
        let key = Self::new(bytes);
        bytes.zeroize();
        key
    }

    /// Whether every byte has odd parity.
    pub fn has_odd_parity(&self) -> bool {
        self.bytes.iter().all(|b| b.count_ones() % 2 == 1)
    }

    /// The key bytes, for storing the key under another key. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// 3DES encryption of one block (JR/T 0025.7 §12.1.1).
    pub fn encrypt_block(&self, block: &[u8; BLOCK_LEN]) -> [u8; BLOCK_LEN] {
        let mut b = Array::from(*block);
        self.ciphers.ede.encrypt_block(&mut b);
        b.into()
    }

    /// 3DES decryption of one block (JR/T 0025.7 §12.1.1).
    pub fn decrypt_block(&self, block: &[u8; BLOCK_LEN]) -> [u8; BLOCK_LEN] {
        let mut b = Array::from(*block);
        self.ciphers.ede.decrypt_block(&mut b);
        b.into()
    }

    /// ECB encryption of whole blocks (JR/T 0025.7 §11.1.1 2)).
    pub fn encrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, BlockError> {
        block::ecb(data, |b| self.encrypt_block(b))
    }

    /// ECB decryption of whole blocks.
    pub fn decrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, BlockError> {
        block::ecb(data, |b| self.decrypt_block(b))
    }

    /// CBC encryption of whole blocks with the given IV (JR/T 0025.7 §11.1.1 uses zeros).
    pub fn encrypt_cbc(&self, iv: &[u8; BLOCK_LEN], data: &[u8]) -> Result<Vec<u8>, BlockError> {
        block::cbc_encrypt(iv, data, |b| self.encrypt_block(b))
    }

    /// CBC decryption of whole blocks with the given IV.
    pub fn decrypt_cbc(&self, iv: &[u8; BLOCK_LEN], data: &[u8]) -> Result<Vec<u8>, BlockError> {
        block::cbc_decrypt(iv, data, |b| self.decrypt_block(b))
    }

    /// Retail MAC, JR/T 0025.7 §11.1.2.1: `data` padded with `80 00..` (always), chained
    /// through single DES with `KL` (`Hi := DES(KL)[Xi ⊕ Hi-1]`, `H0 := 0`), then
    /// `HK+1 := DES(KL)[DES⁻¹(KR)[HK]]` (ISO/IEC 9797-1 MAC algorithm 3). All 8 bytes; a
    /// secure-messaging MAC keeps the first 4 (§7.2.3).
    pub fn retail_mac(&self, data: &[u8]) -> [u8; 8] {
        let hk = block::cbc_mac_chain(data, |b: &[u8; 8]| des_block(&self.ciphers.left, b, true));
        let step = des_block(&self.ciphers.right, &hk, false);
        des_block(&self.ciphers.left, &step, true)
    }

    /// The retail MAC cut to `len` bytes, 4 to 8 (JR/T 0025.7 §11.1.2.1).
    pub fn retail_mac_len(&self, data: &[u8], len: usize) -> Result<Vec<u8>, BlockError> {
        if !(4..=8).contains(&len) {
            return Err(BlockError::MacLength { requested: len });
        }
        Ok(self.retail_mac(data).iter().take(len).copied().collect())
    }

    /// Key check value: the first `len` bytes (1 to 8) of the key applied to a zero block.
    pub fn check_value(&self, len: usize) -> Result<Vec<u8>, BlockError> {
        block::check_value(&self.encrypt_block(&[0; BLOCK_LEN]), len)
    }

    /// The usual 3-byte key check value.
    pub fn kcv(&self) -> [u8; DEFAULT_KCV_LEN] {
        let zero = self.encrypt_block(&[0; BLOCK_LEN]);
        zero.first_chunk().copied().unwrap_or_default()
    }
}

impl core::fmt::Debug for TdesKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c] = self.kcv();
        write!(f, "TdesKey(kcv {a:02X}{b:02X}{c:02X})")
    }
}

impl PartialEq for TdesKey {
    fn eq(&self, other: &Self) -> bool {
        super::ct_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for TdesKey {}

/// Set the lowest bit of each byte so that it has an odd number of 1 bits (DES key parity,
/// JR/T 0025.7 §11.1.3.1 and §11.1.4).
pub fn set_odd_parity(bytes: &mut [u8]) {
    for b in bytes {
        let high = *b & 0xfe;
        *b = if high.count_ones() % 2 == 0 {
            high | 1
        } else {
            high
        };
    }
}

fn des_block(cipher: &des::Des, block: &[u8; 8], encrypt: bool) -> [u8; 8] {
    let mut b = Array::from(*block);
    if encrypt {
        cipher.encrypt_block(&mut b);
    } else {
        cipher.decrypt_block(&mut b);
    }
    b.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity() {
        let mut k = [0x00, 0x01, 0xfe, 0xff, 0x94, 0x6c];
        set_odd_parity(&mut k);
        assert_eq!(k, [0x01, 0x01, 0xfe, 0xfe, 0x94, 0x6d]);
        assert!(TdesKey::new([0; 16]).with_odd_parity().has_odd_parity());
        assert!(!TdesKey::new([0; 16]).has_odd_parity());
    }

    #[test]
    fn retail_mac_with_equal_halves_is_single_des_cbc_mac() {
        // With KL = KR the final DES⁻¹/DES pair cancels out.
        let key = TdesKey::new([0x23; 16]);
        let padded = block::pad_method2(b"abcdefghij", 8);
        let cbc = key.encrypt_cbc(&[0; 8], &padded).unwrap();
        assert_eq!(&key.retail_mac(b"abcdefghij")[..], &cbc[cbc.len() - 8..]);
    }

    #[test]
    fn debug_hides_key() {
        let text = format!("{:?}", TdesKey::new([0x5a; 16]));
        assert!(text.starts_with("TdesKey(kcv "), "{text}");
        assert!(!text.contains("5A5A5A"), "{text}");
    }
}
