//! RSA recovery and the issuer/ICC public-key certificates of JR/T 0025.7 §5.3 and §11.2:
//! a certificate chain issued here and recovered here, each failing step of the clauses as its
//! own error, and OpenSSL as an independent implementation of the raw RSA operation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;
use std::sync::OnceLock;

use card_core::crypto::os_rng;
use card_core::crypto::rsa::{
    ALGORITHM_RSA, CaPublicKey, CertificateChecks, ExpiryDate, HASH_SHA1, IccCertificate,
    IssuedCertificate, IssuerCertificate, RevokedCertificate, RsaError, RsaExponent, RsaPrivateKey,
    RsaPublicKey, YearMonth, recover_icc_key, recover_issuer_key, sign_with_recovery,
    verify_with_recovery,
};

const RID: [u8; 5] = [0xa0, 0x00, 0x00, 0x03, 0x33];
const PAN: [u8; 8] = [0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x90];
const TODAY: YearMonth = YearMonth {
    year: 2026,
    month: 11,
};

struct Keys {
    ca: RsaPrivateKey,
    issuer: RsaPrivateKey,
    icc: RsaPrivateKey,
    ca_big: RsaPrivateKey,
}

/// Keys made once per test binary (key generation takes seconds in a debug build).
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        ca: RsaPrivateKey::generate(&mut os_rng(), 1152, RsaExponent::Three).unwrap(),
        issuer: RsaPrivateKey::generate(&mut os_rng(), 1152, RsaExponent::Three).unwrap(),
        icc: RsaPrivateKey::generate(&mut os_rng(), 1024, RsaExponent::F4).unwrap(),
        ca_big: RsaPrivateKey::generate(&mut os_rng(), 1984, RsaExponent::F4).unwrap(),
    })
}

fn ca_entry(key: &RsaPrivateKey) -> CaPublicKey {
    CaPublicKey {
        rid: RID,
        index: 0x80,
        key: key.public_key().clone(),
    }
}

fn checks() -> CertificateChecks<'static> {
    CertificateChecks {
        pan: &PAN,
        today: TODAY,
        revoked: &[],
    }
}

fn expiry(year: u16, month: u8) -> ExpiryDate {
    ExpiryDate::new(YearMonth { year, month }).unwrap()
}

fn issuer_cert(issuer_key: &RsaPublicKey) -> IssuerCertificate {
    IssuerCertificate {
        issuer_id: [0x62, 0x28, 0x48, 0xff],
        expiry: expiry(2030, 12),
        serial: [0x12, 0x34, 0x56],
        hash_algorithm: HASH_SHA1,
        key_algorithm: ALGORITHM_RSA,
        public_key: issuer_key.clone(),
    }
}

fn icc_cert(icc_key: &RsaPublicKey) -> IccCertificate {
    IccCertificate {
        pan: IccCertificate::pan_field(&PAN),
        expiry: expiry(2029, 6),
        serial: [0x00, 0x00, 0x01],
        hash_algorithm: HASH_SHA1,
        key_algorithm: ALGORITHM_RSA,
        public_key: icc_key.clone(),
    }
}

const STATIC_DATA: &[u8] = b"\x5a\x08\x62\x28\x48\x04\x02\x56\x48\x90\x5f\x24\x03\x30\x12\x31";

fn recover_issuer(
    ca: &RsaPrivateKey,
    issued: &IssuedCertificate,
    exponent: &[u8],
) -> Result<IssuerCertificate, RsaError> {
    recover_issuer_key(
        &ca_entry(ca),
        &issued.certificate,
        &issued.remainder,
        exponent,
        &checks(),
    )
}

#[test]
fn chain_with_remainders_recovers_both_keys() {
    let k = keys();
    let issuer = issuer_cert(k.issuer.public_key());
    let issued = issuer.issue(&k.ca).unwrap();
    assert_eq!(issued.certificate.len(), 144);
    // NI = 144 > NCA - 36 = 108: the last 36 bytes of the key go in the remainder (tag 92).
    assert_eq!(issued.remainder.len(), 36);
    let recovered = recover_issuer(&k.ca, &issued, &[0x03]).unwrap();
    assert_eq!(recovered, issuer);

    let icc = icc_cert(k.icc.public_key());
    let icc_issued = icc.issue(&k.issuer, STATIC_DATA).unwrap();
    // NIC = 128 > NI - 42 = 102: 26 bytes in the remainder (tag 9F48).
    assert_eq!(icc_issued.remainder.len(), 26);
    let recovered_icc = recover_icc_key(
        &recovered.public_key,
        &icc_issued.certificate,
        &icc_issued.remainder,
        &[0x01, 0x00, 0x01],
        STATIC_DATA,
        &checks(),
    )
    .unwrap();
    assert_eq!(recovered_icc, icc);
}

#[test]
fn chain_without_remainder_under_a_1984_bit_ca() {
    let k = keys();
    let issuer = issuer_cert(k.issuer.public_key());
    let issued = issuer.issue(&k.ca_big).unwrap();
    assert_eq!(issued.certificate.len(), 248);
    assert!(issued.remainder.is_empty());
    let recovered = recover_issuer(&k.ca_big, &issued, &[0x03]).unwrap();
    assert_eq!(recovered.public_key, *k.issuer.public_key());
    // A remainder where none belongs changes the hashed data.
    let with_extra = recover_issuer_key(
        &ca_entry(&k.ca_big),
        &issued.certificate,
        &[0x00],
        &[0x03],
        &checks(),
    );
    assert_eq!(with_extra, Err(RsaError::HashMismatch));
}

#[test]
fn each_issuer_certificate_step_fails_on_its_own() {
    let k = keys();
    let good = issuer_cert(k.issuer.public_key());
    let issued = good.issue(&k.ca).unwrap();
    let ca = ca_entry(&k.ca);

    // 1) length of the certificate.
    let short = &issued.certificate[1..];
    assert_eq!(
        recover_issuer_key(&ca, short, &issued.remainder, &[3], &checks()),
        Err(RsaError::SignatureLength {
            expected: 144,
            actual: 143
        })
    );
    // A value not below the modulus.
    assert_eq!(
        recover_issuer_key(&ca, &[0xff; 144], &issued.remainder, &[3], &checks()),
        Err(RsaError::SignatureOutOfRange)
    );
    // 2) trailer and 3) header, with blocks signed raw (a block starting 6A or 4A is below a
    // modulus whose top bit is set).
    let mut block = vec![0x55; 144];
    block[0] = 0x6a;
    block[143] = 0xbd;
    let sig = k.ca.sign_raw(&block).unwrap();
    assert_eq!(
        recover_issuer_key(&ca, &sig, &[], &[3], &checks()),
        Err(RsaError::Trailer(0xbd))
    );
    block[0] = 0x4a;
    block[143] = 0xbc;
    let sig = k.ca.sign_raw(&block).unwrap();
    assert_eq!(
        recover_issuer_key(&ca, &sig, &[], &[3], &checks()),
        Err(RsaError::Header(0x4a))
    );
    // 4) format: an ICC-format block under the CA key.
    let icc_like = icc_cert(k.icc.public_key()).issue(&k.ca, b"").unwrap();
    assert_eq!(
        recover_issuer_key(
            &ca,
            &icc_like.certificate,
            &icc_like.remainder,
            &[1, 0, 1],
            &checks()
        ),
        Err(RsaError::Format {
            expected: 0x02,
            actual: 0x04
        })
    );
    // 5)-7) hash: wrong exponent or altered remainder.
    assert_eq!(
        recover_issuer(&k.ca, &issued, &[1, 0, 1]),
        Err(RsaError::HashMismatch)
    );
    let mut altered = issued.clone();
    altered.remainder[0] ^= 1;
    assert_eq!(
        recover_issuer(&k.ca, &altered, &[3]),
        Err(RsaError::HashMismatch)
    );
    // Unknown hash algorithm indicator.
    let bad_hash = IssuerCertificate {
        hash_algorithm: 0x02,
        ..good.clone()
    };
    assert_eq!(
        recover_issuer(&k.ca, &bad_hash.issue(&k.ca).unwrap(), &[3]),
        Err(RsaError::HashAlgorithm(0x02))
    );
    // 8) issuer identifier.
    let other_issuer = IssuerCertificate {
        issuer_id: [0x62, 0x28, 0x49, 0xff],
        ..good.clone()
    };
    assert_eq!(
        recover_issuer(&k.ca, &other_issuer.issue(&k.ca).unwrap(), &[3]),
        Err(RsaError::IssuerIdMismatch)
    );
    // 9) expiry: valid through its month, expired after.
    let this_month = IssuerCertificate {
        expiry: expiry(2026, 11),
        ..good.clone()
    };
    assert!(recover_issuer(&k.ca, &this_month.issue(&k.ca).unwrap(), &[3]).is_ok());
    let last_month = IssuerCertificate {
        expiry: expiry(2026, 10),
        ..good.clone()
    };
    assert_eq!(
        recover_issuer(&k.ca, &last_month.issue(&k.ca).unwrap(), &[3]),
        Err(RsaError::Expired {
            year: 2026,
            month: 10
        })
    );
    // 10) revocation of RID + CA index + serial.
    let revoked = [RevokedCertificate {
        rid: RID,
        ca_index: 0x80,
        serial: [0x12, 0x34, 0x56],
    }];
    let with_list = CertificateChecks {
        revoked: &revoked,
        ..checks()
    };
    assert_eq!(
        recover_issuer_key(
            &ca,
            &issued.certificate,
            &issued.remainder,
            &[3],
            &with_list
        ),
        Err(RsaError::Revoked)
    );
    let other_index = CaPublicKey {
        index: 0x81,
        ..ca.clone()
    };
    assert!(
        recover_issuer_key(
            &other_index,
            &issued.certificate,
            &issued.remainder,
            &[3],
            &with_list
        )
        .is_ok()
    );
    // 11) public-key algorithm.
    let not_rsa = IssuerCertificate {
        key_algorithm: 0x04,
        ..good.clone()
    };
    assert_eq!(
        recover_issuer(&k.ca, &not_rsa.issue(&k.ca).unwrap(), &[3]),
        Err(RsaError::PublicKeyAlgorithm(0x04))
    );
}

/// Certificates whose signed fields disagree with the remainder or exponent given: signed
/// consistently (the hash matches) but describing another key layout.
#[test]
fn inconsistent_length_fields() {
    let k = keys();
    let key = k.issuer.public_key();
    // Format 02 data claiming an exponent of 3 bytes while the card gives one byte.
    let mut msg = vec![
        0x02, 0x62, 0x28, 0x48, 0xff, 0x12, 0x30, 0, 0, 1, 0x01, 0x01,
    ];
    msg.push(144);
    msg.push(3);
    msg.extend_from_slice(&key.modulus()[..108]);
    let remainder = &key.modulus()[108..];
    msg.extend_from_slice(remainder);
    msg.push(0x03);
    let sig = sign_with_recovery(&k.ca, &msg).unwrap();
    assert_eq!(
        recover_issuer_key(&ca_entry(&k.ca), &sig, remainder, &[0x03], &checks()),
        Err(RsaError::ExponentLength {
            expected: 3,
            actual: 1
        })
    );
    // Length field 144, but only 20 remainder bytes given (and signed).
    let mut msg = vec![
        0x02, 0x62, 0x28, 0x48, 0xff, 0x12, 0x30, 0, 0, 1, 0x01, 0x01, 144, 1,
    ];
    msg.extend_from_slice(&key.modulus()[..108]);
    msg.extend_from_slice(&key.modulus()[108..128]);
    msg.push(0x03);
    let sig = sign_with_recovery(&k.ca, &msg).unwrap();
    assert_eq!(
        recover_issuer_key(
            &ca_entry(&k.ca),
            &sig,
            &key.modulus()[108..128],
            &[3],
            &checks()
        ),
        Err(RsaError::RemainderLength {
            expected: 36,
            actual: 20
        })
    );
    // A certified key longer than the CA key.
    let mut msg = vec![
        0x02, 0x62, 0x28, 0x48, 0xff, 0x12, 0x30, 0, 0, 1, 0x01, 0x01, 200, 1,
    ];
    msg.extend_from_slice(&[0xbb; 108]);
    msg.push(0x03);
    let sig = sign_with_recovery(&k.ca, &msg).unwrap();
    assert_eq!(
        recover_issuer_key(&ca_entry(&k.ca), &sig, &[], &[3], &checks()),
        Err(RsaError::CertifiedKeyTooLong {
            certified: 200,
            signer: 144
        })
    );
    // Issuing refuses the same.
    let too_long = issuer_cert(k.ca_big.public_key());
    assert_eq!(
        too_long.issue(&k.ca).err(),
        Some(RsaError::CertifiedKeyTooLong {
            certified: 248,
            signer: 144
        })
    );
}

#[test]
fn icc_certificate_checks() {
    let k = keys();
    let issuer_key = k.issuer.public_key();
    let icc = icc_cert(k.icc.public_key());
    let issued = icc.issue(&k.issuer, STATIC_DATA).unwrap();
    let recover = |static_data: &[u8], checks: &CertificateChecks<'_>| {
        recover_icc_key(
            issuer_key,
            &issued.certificate,
            &issued.remainder,
            &[1, 0, 1],
            static_data,
            checks,
        )
    };
    assert!(recover(STATIC_DATA, &checks()).is_ok());
    // Static data altered after personalisation.
    assert_eq!(
        recover(b"\x5a\x08\x62\x28", &checks()),
        Err(RsaError::HashMismatch)
    );
    // Another card's PAN.
    let other_pan = [0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x91];
    assert_eq!(
        recover(
            STATIC_DATA,
            &CertificateChecks {
                pan: &other_pan,
                ..checks()
            }
        ),
        Err(RsaError::PanMismatch)
    );
    // Expired.
    assert_eq!(
        recover(
            STATIC_DATA,
            &CertificateChecks {
                today: YearMonth {
                    year: 2029,
                    month: 7
                },
                ..checks()
            }
        ),
        Err(RsaError::Expired {
            year: 2029,
            month: 6
        })
    );
    // An issuer certificate where the ICC certificate belongs.
    let issuer_like = issuer_cert(k.icc.public_key()).issue(&k.issuer).unwrap();
    assert_eq!(
        recover_icc_key(
            issuer_key,
            &issuer_like.certificate,
            &issuer_like.remainder,
            &[1, 0, 1],
            b"",
            &checks()
        ),
        Err(RsaError::Format {
            expected: 0x04,
            actual: 0x02
        })
    );
}

#[test]
fn signed_static_data_with_recovery() {
    // Format 03 (JR/T 0025.7 §5.2.4): 6A 03 hash-id DAC(2) BB.. H BC over the static data.
    let k = keys();
    let n = k.issuer.public_key().len();
    let mut msg = vec![0x03, HASH_SHA1, 0xda, 0xc1];
    msg.resize(n - 22, 0xbb);
    msg.extend_from_slice(STATIC_DATA);
    let sig = sign_with_recovery(&k.issuer, &msg).unwrap();
    let recovered = verify_with_recovery(k.issuer.public_key(), &sig, STATIC_DATA).unwrap();
    assert_eq!(&recovered.msg1[..4], &[0x03, HASH_SHA1, 0xda, 0xc1]);
    assert_eq!(
        verify_with_recovery(k.issuer.public_key(), &sig, b"other data"),
        Err(RsaError::HashMismatch)
    );
    assert_eq!(
        sign_with_recovery(&k.issuer, &[0; 10]),
        Err(RsaError::MessageTooShort {
            min: n - 22,
            actual: 10
        })
    );
}

#[test]
fn key_generation_limits() {
    assert_eq!(
        RsaPrivateKey::generate(&mut os_rng(), 1016, RsaExponent::Three).err(),
        Some(RsaError::KeySize(1016))
    );
    assert_eq!(
        RsaPrivateKey::generate(&mut os_rng(), 1992, RsaExponent::Three).err(),
        Some(RsaError::KeySize(1992))
    );
    assert_eq!(
        RsaPrivateKey::generate(&mut os_rng(), 1025, RsaExponent::Three).err(),
        Some(RsaError::KeySize(1025))
    );
    let k = keys();
    assert_eq!(k.ca_big.public_key().len(), 248);
    assert_eq!(k.icc.public_key().exponent(), &[1, 0, 1]);
    let text = format!("{:?}", k.icc);
    assert!(
        text.starts_with("RsaPrivateKey { public: RsaPublicKey(1024 bits"),
        "{text}"
    );
}

/// OpenSSL makes an RSA key with exponent 3 and applies its private key to a framed block
/// without padding (`pkeyutl -decrypt` with padding `none` is the raw `X^d mod n`; `-sign`
/// refuses input longer than a hash); the recovery here gives the block back and
/// `verify_with_recovery` accepts it.
#[test]
fn recovery_agrees_with_openssl_raw_rsa() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("rsa.pem");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let key = key_path.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-pkeyopt",
        "rsa_keygen_pubexp:3",
        "-out",
        key,
    ]);
    let text = String::from_utf8(openssl(&["rsa", "-in", key, "-noout", "-modulus"])).unwrap();
    let modulus = hex::decode(text.trim().trim_start_matches("Modulus=")).unwrap();
    let public = RsaPublicKey::new(&modulus, &[3]).unwrap();

    let data = b"static data authenticated by the issuer".repeat(4);
    let n = public.len();
    let mut block = vec![0x6a];
    block.extend_from_slice(&data[..n - 22]);
    let hash = {
        use sha1::Digest as _;
        sha1::Sha1::digest(&data)
    };
    block.extend_from_slice(&hash);
    block.push(0xbc);
    let block_path = dir.path().join("block.bin");
    std::fs::write(&block_path, &block).unwrap();
    let sig_path = dir.path().join("sig.bin");
    openssl(&[
        "pkeyutl",
        "-decrypt",
        "-inkey",
        key,
        "-pkeyopt",
        "rsa_padding_mode:none",
        "-in",
        block_path.to_str().unwrap(),
        "-out",
        sig_path.to_str().unwrap(),
    ]);
    let sig = std::fs::read(&sig_path).unwrap();
    assert_eq!(public.recover(&sig).unwrap(), block);
    verify_with_recovery(&public, &sig, &data[n - 22..]).unwrap();
}
