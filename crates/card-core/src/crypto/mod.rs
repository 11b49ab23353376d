//! National (SM2/SM3/SM4) and international (3DES, RSA/SHA-1) cryptography of PBOC 3.0 cards
//! and the social-security card, with the key derivation of the debit/credit application.
//!
//! The primitives come from the RustCrypto crates (`sm2`, `sm3`, `sm4`, `des`, `rsa`, `sha1`);
//! this module adds what the card specifications put around them: the padding, MACs and
//! session keys of JR/T 0025.7 §11 and JR/T 0025.17 §8, the SM2 signature of JR/T 0025.17
//! §8.2 with a distinguishing identifier of any bytes, and the RSA certificates with message
//! recovery of JR/T 0025.7 §5 and §11.2.
//!
//! - [`sm3`]: SM3 digest (one-shot and incremental) and HMAC-SM3.
//! - [`block`]: ISO/IEC 9797-1 padding method 2 and the errors of the block ciphers.
//! - [`sm4`]: SM4 keys, ECB/CBC, the PBOC CBC-MAC, key check values.
//! - [`tdes`]: double-length 3DES keys, ECB/CBC, the retail MAC, DES parity, key check values.
//! - [`sm2`]: SM2 key pairs, `Z`, signatures (raw `r‖s` and DER), C1C3C2 encryption.
//! - [`rsa`]: RSA recovery, issuer and ICC public-key certificates, test-key generation.
//! - [`sm2_cert`]: SM2 certificates and signed data (formats `12`-`15`), SDA/DDA/fDDA/CDA checks.
//! - [`kdf`]: card keys from the issuer master key, session keys from the ATC, ARQC/TC/AAC,
//!   ARPC and secure-messaging MACs, for 3DES and SM4 cards alike.
//!
//! Secret keys are zeroized when dropped and their `Debug` output never shows them. Nothing
//! here does I/O; randomness comes from a caller's RNG ([`rand_core::TryCryptoRng`]) or from
//! the operating system through `getrandom`.

pub mod block;
pub mod kdf;
pub mod rsa;
pub mod sm2;
pub mod sm2_cert;
pub mod sm3;
pub mod sm4;
pub mod tdes;

pub use rand_core;

/// Compare two byte strings in time that depends only on their lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the comparison from being turned into an early-exit loop.
    core::hint::black_box(diff) == 0
}

/// The operating system's random number generator, as a [`rand_core::TryCryptoRng`].
pub fn os_rng() -> getrandom::SysRng {
    getrandom::SysRng
}
