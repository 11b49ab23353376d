//! RSA certificate recovery of JR/T 0025.7 §5.3 (issuer and ICC public key certificates) and
//! signature recovery (§11.2.1.3): never a panic on any bytes; what is recovered is what was
//! signed.
//!
//! A fuzzer cannot forge RSA signatures, so the harness signs: it holds a key pair (the CA,
//! which also acts as issuer for ICC certificates), builds the message to sign from the input
//! (the certificate fields MSG1, remainder, exponent, static data) and signs it with message
//! recovery, so every check after the signature (format, identifiers, expiry, revocation,
//! algorithms, key lengths, the key itself) sees fuzzer-chosen fields. The same input also goes
//! unsigned to the public-key constructor and the recovery function.
//!
//! Input: byte 0 chooses the exponent and whether the hash is right; byte 1 the remainder's
//! length; then MSG1 (N − 22 bytes, N = 128), the remainder, and the rest as static data.

#![no_main]

use std::sync::OnceLock;

use card_core::crypto::rsa::{
    self, CaPublicKey, CertificateChecks, RevokedCertificate, RsaExponent, RsaPrivateKey,
    RsaPublicKey, YearMonth,
};
use libfuzzer_sys::fuzz_target;

const N: usize = 128;

fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::generate_os(N * 8, RsaExponent::Three).expect("a key"))
}

fuzz_target!(|data: &[u8]| {
    let [flags, rem_len, rest @ ..] = data else {
        return;
    };
    let exponent: &[u8] = if flags & 1 == 0 {
        &[0x03]
    } else {
        &[0x01, 0x00, 0x01]
    };
    let msg1_len = (N - 22).min(rest.len());
    let (msg1, rest) = rest.split_at(msg1_len);
    let (remainder, static_data) = rest.split_at(usize::from(*rem_len).min(rest.len()));

    // Unsigned: the key constructor and the recovery function on raw input.
    if let Ok(k) = RsaPublicKey::new(rest, exponent) {
        assert_eq!(k.len(), rest.len());
        if let Ok(x) = k.recover(msg1) {
            assert_eq!(x.len(), k.len());
        }
        let _ = rsa::verify_with_recovery(&k, msg1, remainder);
    }
    if msg1.len() < N - 22 {
        return;
    }

    let ca = CaPublicKey {
        rid: [0xa0, 0x00, 0x00, 0x03, 0x33],
        index: 0x01,
        key: key().public_key().clone(),
    };
    let pan = [0x62, 0x30, 0x58, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x3f];
    let revoked = [RevokedCertificate {
        rid: ca.rid,
        ca_index: ca.index,
        serial: [0x00, 0x00, 0x01],
    }];
    let checks = CertificateChecks {
        pan: &pan,
        today: YearMonth {
            year: 2026,
            month: 3,
        },
        revoked: &revoked,
    };

    // Issuer certificate: MSG1 ‖ remainder ‖ exponent, signed with recovery by the CA.
    let mut message = msg1.to_vec();
    message.extend_from_slice(remainder);
    message.extend_from_slice(exponent);
    let Ok(mut certificate) = rsa::sign_with_recovery(key(), &message) else {
        return;
    };
    if flags & 2 != 0 {
        // A signature over something else: the hash cannot match.
        message.push(0);
        certificate = rsa::sign_with_recovery(key(), &message).unwrap_or(certificate);
    }
    let issuer = rsa::recover_issuer_key(&ca, &certificate, remainder, exponent, &checks);
    if flags & 2 != 0 {
        assert!(issuer.is_err());
    }
    if let Ok(cert) = &issuer {
        assert_eq!(cert.public_key.exponent(), exponent);
        assert!(cert.expiry.month() >= checks.today);
        assert_eq!(cert.key_algorithm, 0x01);
    }

    // ICC certificate over the static data, the same key standing in for the issuer's.
    let mut message = msg1.to_vec();
    message.extend_from_slice(remainder);
    message.extend_from_slice(exponent);
    message.extend_from_slice(static_data);
    if let Ok(certificate) = rsa::sign_with_recovery(key(), &message) {
        let icc = rsa::recover_icc_key(
            key().public_key(),
            &certificate,
            remainder,
            exponent,
            static_data,
            &checks,
        );
        if let Ok(cert) = icc {
            assert_eq!(cert.pan, pan);
            assert_eq!(cert.public_key.exponent(), exponent);
        }
    }
});
