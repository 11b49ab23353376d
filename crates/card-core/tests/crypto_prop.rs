//! Property tests of `card_core::crypto`: round trips (sign/verify, encrypt/decrypt, cipher
//! modes, padding) and parsers that must return an error, never panic, on any bytes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use card_core::crypto::block::{pad_method2, unpad_method2};
use card_core::crypto::kdf::{self, CardAlgorithm, CardKey};
use card_core::crypto::os_rng;
use card_core::crypto::rsa::{
    CaPublicKey, CertificateChecks, ExpiryDate, RsaExponent, RsaPrivateKey, RsaPublicKey,
    YearMonth, recover_icc_key, recover_issuer_key, verify_with_recovery,
};
use card_core::crypto::sm2::{
    DEFAULT_ID, Sm2Error, Sm2PrivateKey, Sm2PublicKey, Sm2Signature, ciphertext_der_to_raw,
    ciphertext_raw_to_der,
};
use card_core::crypto::sm4::Sm4Key;
use card_core::crypto::tdes::TdesKey;
use proptest::prelude::*;

/// A valid SM2 private key from 32 arbitrary bytes (almost every 32-byte string is one).
fn sm2_key(seed: &[u8; 32]) -> Sm2PrivateKey {
    Sm2PrivateKey::from_bytes(seed).unwrap_or_else(|_| Sm2PrivateKey::from_bytes(&[7; 32]).unwrap())
}

fn fixed_sm2() -> &'static Sm2PrivateKey {
    static KEY: OnceLock<Sm2PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| Sm2PrivateKey::generate_os().unwrap())
}

fn fixed_rsa() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::generate_os(1024, RsaExponent::Three).unwrap())
}

// Each case signs, verifies or encrypts with SM2 a few times: fewer cases in a debug build.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sm2_sign_verify_round_trip(
        seed in any::<[u8; 32]>(),
        id in proptest::collection::vec(any::<u8>(), 0..40),
        message in proptest::collection::vec(any::<u8>(), 0..200),
        flip in any::<usize>(),
    ) {
        let key = sm2_key(&seed);
        let public = *key.public_key();
        let sig = key.sign(&id, &message).unwrap();
        public.verify(&id, &message, &sig).unwrap();
        let randomized = key.sign_with_rng(&mut os_rng(), &id, &message).unwrap();
        public.verify(&id, &message, &randomized).unwrap();
        // Encodings round-trip.
        prop_assert_eq!(Sm2Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
        prop_assert_eq!(Sm2Signature::from_der(&sig.to_der()).unwrap(), sig);
        prop_assert_eq!(Sm2PublicKey::from_xy(&public.to_xy()).unwrap(), public);
        // Another message fails.
        let mut other = message.clone();
        if other.is_empty() {
            other.push(0);
        } else {
            let i = flip % other.len();
            other[i] ^= 0x01;
        }
        prop_assert_eq!(public.verify(&id, &other, &sig), Err(Sm2Error::VerificationFailed));
    }

    #[test]
    fn sm2_encrypt_decrypt_round_trip(
        message in proptest::collection::vec(any::<u8>(), 1..300),
        flip in any::<usize>(),
    ) {
        let key = fixed_sm2();
        let public = key.public_key();
        let raw = public.encrypt(&mut os_rng(), &message).unwrap();
        prop_assert_eq!(raw.len(), 65 + 32 + message.len());
        prop_assert_eq!(&*key.decrypt(&raw).unwrap(), &message);
        let der = public.encrypt_der(&mut os_rng(), &message).unwrap();
        prop_assert_eq!(&*key.decrypt_der(&der).unwrap(), &message);
        prop_assert_eq!(ciphertext_der_to_raw(&ciphertext_raw_to_der(&raw).unwrap()).unwrap(), raw.clone());
        // Any change after C1 is caught by C3.
        let mut altered = raw.clone();
        let i = 65 + flip % (raw.len() - 65);
        altered[i] ^= 0x80;
        prop_assert_eq!(key.decrypt(&altered).map(|_| ()), Err(Sm2Error::DecryptionFailed));
    }

    #[test]
    fn sm4_and_tdes_modes_round_trip(
        key in any::<[u8; 16]>(),
        iv in any::<[u8; 16]>(),
        data in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let sm4 = Sm4Key::new(key);
        let padded = pad_method2(&data, 16);
        let ct = sm4.encrypt_cbc(&iv, &padded).unwrap();
        let pt = sm4.decrypt_cbc(&iv, &ct).unwrap();
        prop_assert_eq!(unpad_method2(&pt, 16).unwrap(), &data[..]);
        let ct = sm4.encrypt_ecb(&padded).unwrap();
        prop_assert_eq!(sm4.decrypt_ecb(&ct).unwrap(), padded.clone());
        let mut in_place = padded.clone();
        sm4.encrypt_ecb_in_place(&mut in_place).unwrap();
        prop_assert_eq!(in_place, ct);

        let tdes = TdesKey::new(key);
        let padded = pad_method2(&data, 8);
        let iv8: [u8; 8] = iv[..8].try_into().unwrap();
        let ct = tdes.encrypt_cbc(&iv8, &padded).unwrap();
        let pt = tdes.decrypt_cbc(&iv8, &ct).unwrap();
        prop_assert_eq!(unpad_method2(&pt, 8).unwrap(), &data[..]);
    }

}

// Parsers are cheap: the default number of cases.
proptest! {
    #[test]
    fn sm2_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Sm2PublicKey::from_uncompressed(&bytes);
        let _ = Sm2PublicKey::from_xy(&bytes);
        let _ = Sm2PublicKey::from_spki_der(&bytes);
        let _ = Sm2PrivateKey::from_bytes(&bytes);
        let _ = Sm2PrivateKey::from_der(&bytes);
        let _ = Sm2Signature::from_bytes(&bytes);
        let _ = Sm2Signature::from_der(&bytes);
        let _ = ciphertext_der_to_raw(&bytes);
        let _ = ciphertext_raw_to_der(&bytes);
        let key = fixed_sm2();
        let _ = key.decrypt(&bytes);
        let _ = key.decrypt_der(&bytes);
    }

    #[test]
    fn sm2_parsers_never_panic_near_valid_input(
        xy in any::<[u8; 64]>(),
        rs in any::<[u8; 64]>(),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // Right lengths and prefixes, arbitrary values: reaches the curve and range checks.
        let mut uncompressed = vec![0x04];
        uncompressed.extend_from_slice(&xy);
        let _ = Sm2PublicKey::from_uncompressed(&uncompressed);
        let _ = Sm2PublicKey::from_xy(&xy);
        let _ = Sm2Signature::from_bytes(&rs);
        let mut ct = uncompressed.clone();
        ct.extend_from_slice(&rs[..32]);
        ct.extend_from_slice(&tail);
        let _ = fixed_sm2().decrypt(&ct);
        let _ = ciphertext_raw_to_der(&ct);
        // A valid signature with bytes of its DER changed.
        let sig = fixed_sm2().sign(DEFAULT_ID, &tail).unwrap();
        let mut der = sig.to_der();
        for (i, b) in tail.iter().enumerate() {
            let at = (i * 7 + usize::from(*b)) % der.len();
            der[at] ^= b;
        }
        let _ = Sm2Signature::from_der(&der);
    }

    #[test]
    fn rsa_parsers_never_panic(
        modulus in proptest::collection::vec(any::<u8>(), 0..260),
        exponent in proptest::collection::vec(any::<u8>(), 0..4),
        sig in proptest::collection::vec(any::<u8>(), 0..200),
        remainder in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        if let Ok(key) = RsaPublicKey::new(&modulus, &exponent) {
            let _ = key.recover(&sig);
        }
        let key = fixed_rsa().public_key();
        let _ = key.recover(&sig);
        let _ = verify_with_recovery(key, &sig, &remainder);
        // Signatures of the right length reach the framing and field checks.
        let mut full = sig.clone();
        full.resize(key.len(), 0x11);
        full[0] &= 0x7f;
        let ca = CaPublicKey { rid: [0xa0, 0, 0, 3, 0x33], index: 1, key: key.clone() };
        let checks = CertificateChecks {
            pan: &remainder,
            today: YearMonth { year: 2026, month: 1 },
            revoked: &[],
        };
        let _ = recover_issuer_key(&ca, &full, &remainder, &exponent, &checks);
        let _ = recover_icc_key(key, &full, &remainder, &exponent, &sig, &checks);
        // Framed blocks with arbitrary contents, signed so that recovery gets past the frame.
        let mut block = vec![0x6a];
        block.extend(sig.iter().cycle().take(key.len() - 2));
        block.push(0xbc);
        if let Ok(signed) = fixed_rsa().sign_raw(&block) {
            let _ = recover_issuer_key(&ca, &signed, &remainder, &exponent, &checks);
            let _ = recover_icc_key(key, &signed, &remainder, &exponent, &sig, &checks);
        }
    }

    #[test]
    fn symmetric_parsers_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..40),
        text in ".{0,25}",
        psn in ".{0,3}",
        len in 0usize..40,
    ) {
        let _ = unpad_method2(&bytes, 16);
        let _ = unpad_method2(&bytes, 8);
        let _ = Sm4Key::from_slice(&bytes);
        let _ = TdesKey::from_slice(&bytes);
        let _ = CardKey::from_slice(CardAlgorithm::Sm4, &bytes);
        let _ = kdf::pan_from_bcd(&bytes);
        let _ = kdf::diversification_input(&text, Some(&psn));
        let _ = kdf::diversification_input(&text, None);
        let _ = Sm4Key::new([1; 16]).check_value(len);
        let _ = TdesKey::new([1; 16]).check_value(len);
        let _ = Sm4Key::new([1; 16]).encrypt_ecb(&bytes);
        let _ = TdesKey::new([1; 16]).decrypt_cbc(&[0; 8], &bytes);
        if let Some(pair) = bytes.first_chunk::<2>() {
            let _ = ExpiryDate::from_bcd(*pair);
        }
        let _ = CardAlgorithm::from_iad_id(bytes.first().copied().unwrap_or(0));
    }
}
