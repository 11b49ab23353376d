//! SM3 (GM/T 0004), the hash of the SM suite: JR/T 0025.17 §9.3.
//!
//! [`digest`] hashes in one call, [`Sm3`] incrementally, [`hmac_sm3`] keys it (RFC 2104
//! construction over SM3, as OpenSSL's `dgst -sm3 -hmac` computes it).

use ::sm3::Digest as _;
use hmac::{KeyInit as _, Mac as _};
use zeroize::Zeroize as _;

/// Length of an SM3 digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// SM3 digest of `data`: GM/T 0004, JR/T 0025.17 §9.3.
pub fn digest(data: &[u8]) -> [u8; DIGEST_LEN] {
    ::sm3::Sm3::digest(data).into()
}

/// SM3 over several pieces, as if they were concatenated.
pub fn digest_parts(parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut hasher = Sm3::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

/// Incremental SM3: feed data with [`Sm3::update`], read the digest with [`Sm3::finalize`].
#[derive(Clone, Default)]
pub struct Sm3 {
    inner: ::sm3::Sm3,
}

impl Sm3 {
    /// A hasher that has seen no data yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed more data.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The digest of everything fed so far.
    pub fn finalize(self) -> [u8; DIGEST_LEN] {
        self.inner.finalize().into()
    }
}

impl core::fmt::Debug for Sm3 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Sm3 { .. }")
    }
}

/// HMAC-SM3 (RFC 2104 with SM3, block size 64): the keyed hash OpenSSL computes with
/// `openssl dgst -sm3 -hmac`. Any key length is accepted.
pub fn hmac_sm3(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
    // `new_from_slice` accepts every key length for HMAC; a longer key is hashed first.
    match hmac::Hmac::<::sm3::Sm3>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        // The `hmac` crate accepts every key length; this arm only keeps the function free of
        // a panic path.
        Err(_) => hmac_rfc2104(key, data),
    }
}

/// RFC 2104 spelled out: a key longer than the 64-byte block is hashed first, then zero-padded.
fn hmac_rfc2104(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
    let hashed: zeroize::Zeroizing<[u8; DIGEST_LEN]>;
    let key = if key.len() > 64 {
        hashed = zeroize::Zeroizing::new(digest(key));
        hashed.as_slice()
    } else {
        key
    };
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key) {
        *i ^= k;
        *o ^= k;
    }
    let inner = digest_parts(&[&ipad, data]);
    let mac = digest_parts(&[&opad, &inner]);
    ipad.zeroize();
    opad.zeroize();
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_equals_one_shot() {
        let mut h = Sm3::new();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finalize(), digest(b"abc"));
        assert_eq!(digest_parts(&[b"a", b"", b"bc"]), digest(b"abc"));
    }

    #[test]
    fn hmac_crate_matches_rfc2104() {
        for len in [0usize, 1, 20, 64, 65, 131] {
            let key = vec![0xa5u8; len];
            assert_eq!(
                hmac_sm3(&key, b"data"),
                hmac_rfc2104(&key, b"data"),
                "key length {len}"
            );
        }
    }
}
