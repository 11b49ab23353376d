//! The SM2 certificates and signed data of JR/T 0025.17 §5 (`card_core::crypto::sm2_cert`):
//! a chain CA → issuer → ICC → dynamic signature made with fresh keys and verified here, each
//! failing step of §5.1.2, §5.1.3, §5.2.3, §5.2.4.2, §5.2.5.2 and JR/T 0025.12 附录 B as its own
//! error, OpenSSL as an independent verifier of the signatures, and property tests of the
//! parsers (no panics, exact round trips).
//!
//! The OpenSSL tests fail, not skip, when `openssl` is missing: `apt-get install openssl`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use card_core::crypto::sm2::{DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey, Sm2Signature};
use card_core::crypto::sm2_cert::{
    CURVE_SM2, CaKey, CdaDynamicData, ENCRYPTION_ALGORITHM_NONE, ExpiryDate,
    FORMAT_ICC_CERTIFICATE, FORMAT_ISSUER_CERTIFICATE, FORMAT_SIGNED_DYNAMIC_DATA,
    FORMAT_SIGNED_STATIC_DATA, FddaTerminalData, FddaVersion, IccCertificate, IssuerCertificate,
    RevokedCertificate, SIGNATURE_ALGORITHM_SM2, Signed, SignedDynamicData, SignedStaticData,
    Sm2CertError, StaticData, TrustStore, YearMonth, transaction_data_hash, verify_cda,
    verify_chain, verify_dynamic_signature, verify_fdda, verify_icc_certificate,
    verify_issuer_certificate, verify_sda, verify_signed_static_data,
};
use card_core::tlv::Tag;
use proptest::prelude::*;

const RID: [u8; 5] = [0xa0, 0x00, 0x00, 0x03, 0x33];
const CA_INDEX: u8 = 0x80;
const PAN: [u8; 8] = [0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x90];
const ISSUER_ID: [u8; 4] = [0x62, 0x28, 0x48, 0xff];
const TODAY: YearMonth = YearMonth {
    year: 2026,
    month: 11,
};
/// Two records of SFI 2 as the AFL marks them (the value of template 70).
const RECORDS: &[u8] =
    b"\x5a\x08\x62\x28\x48\x04\x02\x56\x48\x90\x5f\x24\x03\x30\x12\x31\x9f\x4a\x01\x82";
const TAG_LIST: &[u8] = &[0x82];
const AIP: [u8; 2] = [0x7c, 0x00];
const UN: [u8; 4] = [0x11, 0x22, 0x33, 0x44];
const ATC: [u8; 2] = [0x00, 0x2a];

fn static_data() -> StaticData<'static> {
    StaticData {
        records: RECORDS,
        sda_tag_list: Some(TAG_LIST),
        aip: Some(AIP),
    }
}

fn expiry(year: u16, month: u8) -> ExpiryDate {
    ExpiryDate::new(YearMonth { year, month }).unwrap()
}

fn key() -> Sm2PrivateKey {
    Sm2PrivateKey::generate_os().unwrap()
}

/// A complete card: keys, the terminal's trust store and the card's objects.
struct Card {
    ca: Sm2PrivateKey,
    issuer: Sm2PrivateKey,
    icc: Sm2PrivateKey,
    trust: TrustStore,
    issuer_cert: Vec<u8>,
    icc_cert: Vec<u8>,
    ssad: Vec<u8>,
}

fn trust_for(ca: &Sm2PublicKey) -> TrustStore {
    let mut trust = TrustStore::new();
    trust.insert(CaKey {
        rid: RID,
        index: CA_INDEX,
        public_key: *ca,
        expiry: expiry(2035, 12),
    });
    trust
}

fn issuer_template(key: &Sm2PublicKey) -> IssuerCertificate {
    IssuerCertificate::new(ISSUER_ID, expiry(2030, 12), [0x00, 0x01, 0x23], key)
}

fn icc_template(key: &Sm2PublicKey) -> IccCertificate {
    IccCertificate::new(&PAN, expiry(2029, 6), [0x00, 0x00, 0x07], key)
}

fn card() -> Card {
    let (ca, issuer, icc) = (key(), key(), key());
    let static_bytes = static_data().to_bytes().unwrap();
    Card {
        trust: trust_for(ca.public_key()),
        issuer_cert: issuer_template(issuer.public_key()).issue(&ca).unwrap(),
        icc_cert: icc_template(icc.public_key())
            .issue(&issuer, &static_bytes)
            .unwrap(),
        ssad: SignedStaticData {
            data_authentication_code: [0xda, 0xc1],
        }
        .issue(&issuer, &static_bytes)
        .unwrap(),
        ca,
        issuer,
        icc,
    }
}

impl Card {
    fn issuer_result(&self, cert: &[u8]) -> Result<Sm2PublicKey, Sm2CertError> {
        verify_issuer_certificate(&self.trust, RID, CA_INDEX, cert, &PAN, TODAY)
            .map(|c| c.public_key)
    }

    fn icc_result(&self, cert: &[u8]) -> Result<Sm2PublicKey, Sm2CertError> {
        verify_icc_certificate(self.issuer.public_key(), cert, &PAN, &static_data(), TODAY)
            .map(|c| c.public_key)
    }

    fn ssad_result(&self, ssad: &[u8]) -> Result<SignedStaticData, Sm2CertError> {
        verify_signed_static_data(self.issuer.public_key(), ssad, &static_data())
    }

    /// The card's answer to INTERNAL AUTHENTICATE with `UN` as the DDOL data.
    fn sdad(&self) -> Vec<u8> {
        SignedDynamicData::with_dynamic_number(&ATC)
            .unwrap()
            .issue(&self.icc, &UN)
            .unwrap()
    }
}

fn flip(bytes: &[u8], i: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[i] ^= 0x01;
    out
}

// --- The whole chain ---

#[test]
fn full_chain_with_dynamic_signature_verifies() {
    let c = card();
    let icc_key = verify_chain(
        &c.trust,
        RID,
        CA_INDEX,
        &c.issuer_cert,
        &c.icc_cert,
        &PAN,
        &static_data(),
        TODAY,
    )
    .unwrap();
    assert_eq!(icc_key, *c.icc.public_key());

    // The certificates come back with the fields they were issued with.
    let issuer =
        verify_issuer_certificate(&c.trust, RID, CA_INDEX, &c.issuer_cert, &PAN, TODAY).unwrap();
    assert_eq!(issuer.certificate, issuer_template(c.issuer.public_key()));
    assert_eq!(issuer.public_key, *c.issuer.public_key());
    let icc = verify_icc_certificate(&issuer.public_key, &c.icc_cert, &PAN, &static_data(), TODAY)
        .unwrap();
    assert_eq!(icc.certificate, icc_template(c.icc.public_key()));

    // Table sizes: tag 90 is NCA + NI + 14, 9F46 NI + NIC + 20, 93 NI + 3, 9F4B NIC + LDD + 2.
    assert_eq!(c.issuer_cert.len(), 64 + 64 + 14);
    assert_eq!(c.icc_cert.len(), 64 + 64 + 20);
    assert_eq!(c.ssad.len(), 64 + 3);
    let sdad = c.sdad();
    assert_eq!(sdad.len(), 64 + 3 + 2);
    assert_eq!(&sdad[..5], &[0x15, 0x03, 0x02, 0x00, 0x2a]);

    // DDA over the DDOL data.
    let dynamic = verify_dynamic_signature(&icc_key, &sdad, &UN).unwrap();
    assert_eq!(dynamic.icc_dynamic_number().unwrap(), ATC);

    // SDA over the same card.
    let code = verify_sda(
        &c.trust,
        RID,
        CA_INDEX,
        &c.issuer_cert,
        &c.ssad,
        &PAN,
        &static_data(),
        TODAY,
    )
    .unwrap();
    assert_eq!(code.data_authentication_code, [0xda, 0xc1]);
}

#[test]
fn objects_are_laid_out_as_the_tables_say() {
    let c = card();
    let issuer = &c.issuer_cert;
    assert_eq!(issuer[0], 0x12);
    assert_eq!(&issuer[1..5], &ISSUER_ID);
    assert_eq!(&issuer[5..7], &[0x12, 0x30]); // MMYY
    assert_eq!(&issuer[7..10], &[0x00, 0x01, 0x23]);
    assert_eq!(&issuer[10..14], &[0x04, 0x00, 0x11, 0x40]);
    assert_eq!(&issuer[14..78], &c.issuer.public_key().to_xy());
    // The signature r‖s follows the 表1 data and covers exactly it.
    let sig = Sm2Signature::from_bytes(&issuer[78..]).unwrap();
    c.ca.public_key()
        .verify(DEFAULT_ID, &issuer[..78], &sig)
        .unwrap();

    let icc = &c.icc_cert;
    assert_eq!(icc[0], 0x14);
    assert_eq!(
        &icc[1..11],
        &[0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x90, 0xff, 0xff]
    );
    assert_eq!(&icc[16..20], &[0x04, 0x00, 0x11, 0x40]);
    // The ICC certificate's signature covers the 表6 data: its nine fields and the static data.
    let mut signed = icc[..84].to_vec();
    signed.extend_from_slice(RECORDS);
    signed.extend_from_slice(&AIP);
    let sig = Sm2Signature::from_bytes(&icc[84..]).unwrap();
    c.issuer
        .public_key()
        .verify(DEFAULT_ID, &signed, &sig)
        .unwrap();

    assert_eq!(&c.ssad[..3], &[0x13, 0xda, 0xc1]);

    let parsed = IssuerCertificate::parse(issuer).unwrap();
    assert_eq!(parsed.content.to_bytes(&parsed.signature).unwrap(), *issuer);
}

// --- §5.1.2: the issuer certificate ---

#[test]
fn unknown_or_expired_ca_key() {
    let c = card();
    assert_eq!(
        verify_issuer_certificate(&c.trust, RID, 0x81, &c.issuer_cert, &PAN, TODAY).err(),
        Some(Sm2CertError::UnknownCaKey {
            rid: RID,
            index: 0x81
        })
    );
    let other_rid = [0xa0, 0, 0, 0, 0x04];
    assert_eq!(
        verify_issuer_certificate(&c.trust, other_rid, CA_INDEX, &c.issuer_cert, &PAN, TODAY).err(),
        Some(Sm2CertError::UnknownCaKey {
            rid: other_rid,
            index: CA_INDEX
        })
    );
    let mut trust = TrustStore::new();
    trust.insert(CaKey {
        rid: RID,
        index: CA_INDEX,
        public_key: *c.ca.public_key(),
        expiry: expiry(2026, 10),
    });
    assert_eq!(
        verify_issuer_certificate(&trust, RID, CA_INDEX, &c.issuer_cert, &PAN, TODAY).err(),
        Some(Sm2CertError::CaKeyExpired {
            rid: RID,
            index: CA_INDEX,
            year: 2026,
            month: 10
        })
    );
}

#[test]
fn wrong_ca_index_selects_a_key_that_did_not_sign() {
    let c = card();
    let mut trust = trust_for(c.ca.public_key());
    let other = key();
    trust.insert(CaKey {
        rid: RID,
        index: 0x81,
        public_key: *other.public_key(),
        expiry: expiry(2035, 12),
    });
    assert_eq!(
        verify_issuer_certificate(&trust, RID, 0x81, &c.issuer_cert, &PAN, TODAY).err(),
        Some(Sm2CertError::SignatureMismatch {
            format: FORMAT_ISSUER_CERTIFICATE
        })
    );
    // Replacing the key of an index returns the old one.
    let old = trust.insert(CaKey {
        rid: RID,
        index: 0x81,
        public_key: *c.ca.public_key(),
        expiry: expiry(2035, 12),
    });
    assert_eq!(old.unwrap().public_key, *other.public_key());
    assert!(verify_issuer_certificate(&trust, RID, 0x81, &c.issuer_cert, &PAN, TODAY).is_ok());
    assert!(trust.remove(RID, 0x81).is_some());
    assert!(trust.get(RID, 0x81).is_none());
}

#[test]
fn issuer_certificate_tampered_byte() {
    let c = card();
    let sig_mismatch = Err(Sm2CertError::SignatureMismatch {
        format: FORMAT_ISSUER_CERTIFICATE,
    });
    // Serial number, key, signature: caught by the signature.
    for i in [8, 20, 77, 80, 141] {
        assert_eq!(
            c.issuer_result(&flip(&c.issuer_cert, i)),
            sig_mismatch,
            "byte {i}"
        );
    }
    // Every byte matters.
    for i in 0..c.issuer_cert.len() {
        assert!(
            c.issuer_result(&flip(&c.issuer_cert, i)).is_err(),
            "byte {i}"
        );
    }
}

#[test]
fn issuer_certificate_wrong_signer() {
    let c = card();
    let forged = issuer_template(c.issuer.public_key())
        .issue(&c.issuer)
        .unwrap();
    assert_eq!(
        c.issuer_result(&forged),
        Err(Sm2CertError::SignatureMismatch {
            format: FORMAT_ISSUER_CERTIFICATE
        })
    );
}

#[test]
fn issuer_certificate_signature_out_of_range() {
    let c = card();
    let mut cert = c.issuer_cert.clone();
    cert[78..110].fill(0); // r = 0
    assert_eq!(
        c.issuer_result(&cert),
        Err(Sm2CertError::SignatureOutOfRange {
            format: FORMAT_ISSUER_CERTIFICATE
        })
    );
}

#[test]
fn issuer_certificate_wrong_format_byte() {
    let c = card();
    let mut cert = c.issuer_cert.clone();
    cert[0] = 0x02;
    assert_eq!(
        c.issuer_result(&cert),
        Err(Sm2CertError::Format {
            expected: 0x12,
            found: 0x02
        })
    );
}

#[test]
fn issuer_certificate_truncated() {
    let c = card();
    let n = c.issuer_cert.len();
    assert_eq!(
        c.issuer_result(&c.issuer_cert[..n - 1]),
        Err(Sm2CertError::Length {
            format: FORMAT_ISSUER_CERTIFICATE,
            expected: n,
            found: n - 1
        })
    );
    let mut longer = c.issuer_cert.clone();
    longer.push(0);
    assert_eq!(
        c.issuer_result(&longer),
        Err(Sm2CertError::Length {
            format: FORMAT_ISSUER_CERTIFICATE,
            expected: n,
            found: n + 1
        })
    );
    for len in [0, 1, 13] {
        assert_eq!(
            c.issuer_result(&c.issuer_cert[..len]),
            Err(Sm2CertError::Truncated {
                format: FORMAT_ISSUER_CERTIFICATE,
                found: len
            })
        );
    }
    // A key-length byte that disagrees with the bytes present.
    assert_eq!(
        c.issuer_result(&flip(&c.issuer_cert, 13)),
        Err(Sm2CertError::Length {
            format: FORMAT_ISSUER_CERTIFICATE,
            expected: n + 1,
            found: n
        })
    );
}

#[test]
fn issuer_id_not_matching_the_pan() {
    let c = card();
    let mut cert = issuer_template(c.issuer.public_key());
    cert.issuer_id = [0x62, 0x28, 0x49, 0xff];
    let issued = cert.issue(&c.ca).unwrap();
    assert_eq!(
        c.issuer_result(&issued),
        Err(Sm2CertError::IssuerIdMismatch {
            issuer_id: [0x62, 0x28, 0x49, 0xff]
        })
    );
    // Eight digits, or three, both match; two do not.
    for (id, ok) in [
        ([0x62, 0x28, 0x48, 0x04], true),
        ([0x62, 0x2f, 0xff, 0xff], true),
        ([0x62, 0xff, 0xff, 0xff], false),
    ] {
        cert.issuer_id = id;
        let issued = cert.issue(&c.ca).unwrap();
        assert_eq!(c.issuer_result(&issued).is_ok(), ok, "{id:02X?}");
    }
}

#[test]
fn issuer_certificate_expired() {
    let c = card();
    let mut cert = issuer_template(c.issuer.public_key());
    cert.expiry = expiry(2026, 10);
    assert_eq!(
        c.issuer_result(&cert.issue(&c.ca).unwrap()),
        Err(Sm2CertError::Expired {
            format: FORMAT_ISSUER_CERTIFICATE,
            year: 2026,
            month: 10
        })
    );
    // Valid to the end of its month.
    cert.expiry = expiry(2026, 11);
    assert!(c.issuer_result(&cert.issue(&c.ca).unwrap()).is_ok());
    // An expiry that is not BCD MMYY cannot be read.
    let mut bad = c.issuer_cert.clone();
    bad[5] = 0x13;
    assert_eq!(
        c.issuer_result(&bad),
        Err(Sm2CertError::ExpiryDate([0x13, 0x30]))
    );
}

#[test]
fn issuer_certificate_revoked() {
    let mut c = card();
    c.trust.revoke(RevokedCertificate {
        rid: RID,
        ca_index: CA_INDEX,
        serial: [0x00, 0x01, 0x24],
    });
    assert!(c.issuer_result(&c.issuer_cert.clone()).is_ok());
    c.trust.revoke(RevokedCertificate {
        rid: RID,
        ca_index: CA_INDEX,
        serial: [0x00, 0x01, 0x23],
    });
    assert_eq!(
        c.issuer_result(&c.issuer_cert.clone()),
        Err(Sm2CertError::Revoked {
            rid: RID,
            ca_index: CA_INDEX,
            serial: [0x00, 0x01, 0x23]
        })
    );
}

/// An edit of a certificate's fields.
type Change = fn(&mut IssuerCertificate);

#[test]
fn issuer_certificate_algorithm_indicators() {
    let c = card();
    let template = issuer_template(c.issuer.public_key());
    let f = FORMAT_ISSUER_CERTIFICATE;
    let cases: [(Change, Sm2CertError); 4] = [
        (
            |x| x.signature_algorithm = 0x01,
            Sm2CertError::SignatureAlgorithm {
                format: f,
                found: 0x01,
            },
        ),
        (
            |x| x.encryption_algorithm = 0x01,
            Sm2CertError::EncryptionAlgorithm {
                format: f,
                found: 0x01,
            },
        ),
        (
            |x| x.curve = 0x01,
            Sm2CertError::CurveParameter {
                format: f,
                found: 0x01,
            },
        ),
        (
            |x| x.public_key = vec![0; 64],
            Sm2CertError::PublicKeyNotOnCurve { format: f },
        ),
    ];
    for (change, error) in cases {
        let mut cert = template.clone();
        change(&mut cert);
        assert_eq!(c.issuer_result(&cert.issue(&c.ca).unwrap()), Err(error));
    }
    // SM2 encryption (04) is a known encryption indicator too.
    let mut cert = template.clone();
    cert.encryption_algorithm = 0x04;
    assert!(c.issuer_result(&cert.issue(&c.ca).unwrap()).is_ok());
}

#[test]
fn issuer_certificate_wrong_public_key_length() {
    let c = card();
    let mut cert = issuer_template(c.issuer.public_key());
    // 04 ‖ X ‖ Y: a well-formed certificate with a 65-byte key, properly signed.
    cert.public_key = c.issuer.public_key().to_uncompressed().to_vec();
    let issued = cert.issue(&c.ca).unwrap();
    assert_eq!(issued[13], 65);
    assert_eq!(
        c.issuer_result(&issued),
        Err(Sm2CertError::PublicKeyLength {
            format: FORMAT_ISSUER_CERTIFICATE,
            expected: 64,
            found: 65
        })
    );
    cert.public_key = vec![0x11; 256];
    assert_eq!(cert.issue(&c.ca), Err(Sm2CertError::PublicKeyTooLong(256)));
}

#[test]
fn issuer_checks_come_in_the_order_of_the_clause() {
    // §5.1.2 checks the identifier, the date and the revocation list before the signature:
    // an expired certificate signed by a stranger is reported as expired.
    let c = card();
    let mut cert = issuer_template(c.issuer.public_key());
    cert.expiry = expiry(2020, 1);
    cert.signature_algorithm = 0x01;
    let issued = cert.issue(&key()).unwrap();
    assert!(matches!(
        c.issuer_result(&issued),
        Err(Sm2CertError::Expired { .. })
    ));
    cert.expiry = expiry(2030, 1);
    assert!(matches!(
        c.issuer_result(&cert.issue(&key()).unwrap()),
        Err(Sm2CertError::SignatureAlgorithm { .. })
    ));
}

// --- §5.1.3: signed static application data ---

#[test]
fn signed_static_data_failures() {
    let c = card();
    assert_eq!(
        c.ssad_result(&c.ssad).unwrap().data_authentication_code,
        [0xda, 0xc1]
    );
    let f = FORMAT_SIGNED_STATIC_DATA;
    // Tampered byte (the code, the signature).
    for i in [1, 2, 3, 66] {
        assert_eq!(
            c.ssad_result(&flip(&c.ssad, i)),
            Err(Sm2CertError::SignatureMismatch { format: f }),
            "byte {i}"
        );
    }
    // Wrong format byte.
    assert_eq!(
        c.ssad_result(&flip(&c.ssad, 0)),
        Err(Sm2CertError::Format {
            expected: 0x13,
            found: 0x12
        })
    );
    // Truncated.
    assert_eq!(
        c.ssad_result(&c.ssad[..66]),
        Err(Sm2CertError::Length {
            format: f,
            expected: 67,
            found: 66
        })
    );
    // Wrong signer.
    let forged = SignedStaticData {
        data_authentication_code: [0xda, 0xc1],
    }
    .issue(&c.ca, &static_data().to_bytes().unwrap())
    .unwrap();
    assert_eq!(
        c.ssad_result(&forged),
        Err(Sm2CertError::SignatureMismatch { format: f })
    );
    // Static data changed: a record byte, or the AIP.
    let mut records = RECORDS.to_vec();
    records[3] ^= 0x01;
    let changed = StaticData {
        records: &records,
        ..static_data()
    };
    assert_eq!(
        verify_signed_static_data(c.issuer.public_key(), &c.ssad, &changed),
        Err(Sm2CertError::SignatureMismatch { format: f })
    );
    let other_aip = StaticData {
        aip: Some([0x7c, 0x01]),
        ..static_data()
    };
    assert_eq!(
        verify_signed_static_data(c.issuer.public_key(), &c.ssad, &other_aip),
        Err(Sm2CertError::SignatureMismatch { format: f })
    );
}

#[test]
fn sda_tag_list_with_a_tag_other_than_82() {
    let c = card();
    let list = StaticData {
        sda_tag_list: Some(&[0x82, 0x9f, 0x36]),
        ..static_data()
    };
    let expected = Sm2CertError::SdaTagList {
        found: Tag::new(0x9f36),
    };
    assert_eq!(
        verify_signed_static_data(c.issuer.public_key(), &c.ssad, &list).err(),
        Some(expected.clone())
    );
    assert_eq!(
        verify_icc_certificate(c.issuer.public_key(), &c.icc_cert, &PAN, &list, TODAY).err(),
        Some(expected)
    );
    let five_a = StaticData {
        sda_tag_list: Some(&[0x5a]),
        ..static_data()
    };
    assert_eq!(
        verify_signed_static_data(c.issuer.public_key(), &c.ssad, &five_a),
        Err(Sm2CertError::SdaTagList {
            found: Tag::new(0x5a)
        })
    );
    let broken = StaticData {
        sda_tag_list: Some(&[0x82, 0x9f]),
        ..static_data()
    };
    assert_eq!(
        verify_signed_static_data(c.issuer.public_key(), &c.ssad, &broken),
        Err(Sm2CertError::SdaTagListMalformed { offset: 1 })
    );
    let no_aip = StaticData {
        aip: None,
        ..static_data()
    };
    assert_eq!(
        verify_signed_static_data(c.issuer.public_key(), &c.ssad, &no_aip),
        Err(Sm2CertError::AipMissing)
    );
}

// --- §5.2.3: the ICC certificate ---

#[test]
fn icc_certificate_tampered_byte_and_wrong_signer() {
    let c = card();
    let f = FORMAT_ICC_CERTIFICATE;
    for i in [14, 30, 83, 84, 147] {
        assert_eq!(
            c.icc_result(&flip(&c.icc_cert, i)),
            Err(Sm2CertError::SignatureMismatch { format: f }),
            "byte {i}"
        );
    }
    for i in 0..c.icc_cert.len() {
        assert!(c.icc_result(&flip(&c.icc_cert, i)).is_err(), "byte {i}");
    }
    let by_ca = icc_template(c.icc.public_key())
        .issue(&c.ca, &static_data().to_bytes().unwrap())
        .unwrap();
    assert_eq!(
        c.icc_result(&by_ca),
        Err(Sm2CertError::SignatureMismatch { format: f })
    );
}

#[test]
fn icc_certificate_format_length_and_key() {
    let c = card();
    let f = FORMAT_ICC_CERTIFICATE;
    assert_eq!(
        c.icc_result(&flip(&c.icc_cert, 0)),
        Err(Sm2CertError::Format {
            expected: 0x14,
            found: 0x15
        })
    );
    assert_eq!(
        c.icc_result(&c.icc_cert[..147]),
        Err(Sm2CertError::Length {
            format: f,
            expected: 148,
            found: 147
        })
    );
    assert_eq!(
        c.icc_result(&c.icc_cert[..19]),
        Err(Sm2CertError::Truncated {
            format: f,
            found: 19
        })
    );
    let static_bytes = static_data().to_bytes().unwrap();
    let mut cert = icc_template(c.icc.public_key());
    cert.public_key.truncate(63);
    assert_eq!(
        c.icc_result(&cert.issue(&c.issuer, &static_bytes).unwrap()),
        Err(Sm2CertError::PublicKeyLength {
            format: f,
            expected: 64,
            found: 63
        })
    );
    let mut cert = icc_template(c.icc.public_key());
    cert.signature_algorithm = 0x00;
    assert_eq!(
        c.icc_result(&cert.issue(&c.issuer, &static_bytes).unwrap()),
        Err(Sm2CertError::SignatureAlgorithm {
            format: f,
            found: 0x00
        })
    );
}

#[test]
fn icc_pan_mismatch() {
    let c = card();
    let other_pan = [0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x91];
    assert_eq!(
        verify_icc_certificate(
            c.issuer.public_key(),
            &c.icc_cert,
            &other_pan,
            &static_data(),
            TODAY
        )
        .map(|x| x.public_key),
        Err(Sm2CertError::PanMismatch)
    );
    // The card's PAN with its own F padding, or padded to 10 bytes, is the same PAN.
    let mut padded = PAN.to_vec();
    padded.extend_from_slice(&[0xff, 0xff]);
    assert!(
        verify_icc_certificate(
            c.issuer.public_key(),
            &c.icc_cert,
            &padded,
            &static_data(),
            TODAY
        )
        .is_ok()
    );
    // One digit fewer is another PAN.
    let mut shorter = PAN.to_vec();
    shorter[7] = 0x9f;
    assert_eq!(
        verify_icc_certificate(
            c.issuer.public_key(),
            &c.icc_cert,
            &shorter,
            &static_data(),
            TODAY
        )
        .map(|x| x.public_key),
        Err(Sm2CertError::PanMismatch)
    );
    // A certificate issued for another PAN.
    let mut cert = icc_template(c.icc.public_key());
    cert.pan = IccCertificate::pan_field(&other_pan);
    let issued = cert
        .issue(&c.issuer, &static_data().to_bytes().unwrap())
        .unwrap();
    assert_eq!(c.icc_result(&issued), Err(Sm2CertError::PanMismatch));
    // verify_chain stops there too.
    assert_eq!(
        verify_chain(
            &c.trust,
            RID,
            CA_INDEX,
            &c.issuer_cert,
            &issued,
            &PAN,
            &static_data(),
            TODAY
        ),
        Err(Sm2CertError::PanMismatch)
    );
}

#[test]
fn icc_certificate_expired() {
    let c = card();
    let mut cert = icc_template(c.icc.public_key());
    cert.expiry = expiry(2025, 12);
    let issued = cert
        .issue(&c.issuer, &static_data().to_bytes().unwrap())
        .unwrap();
    assert_eq!(
        c.icc_result(&issued),
        Err(Sm2CertError::Expired {
            format: FORMAT_ICC_CERTIFICATE,
            year: 2025,
            month: 12
        })
    );
}

#[test]
fn icc_certificate_static_data_changed() {
    let c = card();
    let f = FORMAT_ICC_CERTIFICATE;
    let mut records = RECORDS.to_vec();
    records.push(0x00);
    for changed in [
        StaticData {
            records: &records,
            ..static_data()
        },
        StaticData {
            sda_tag_list: None,
            ..static_data()
        },
        StaticData::records(RECORDS),
    ] {
        assert_eq!(
            verify_icc_certificate(c.issuer.public_key(), &c.icc_cert, &PAN, &changed, TODAY)
                .map(|x| x.public_key),
            Err(Sm2CertError::SignatureMismatch { format: f })
        );
    }
    assert_eq!(
        verify_chain(
            &c.trust,
            RID,
            CA_INDEX,
            &c.issuer_cert,
            &c.icc_cert,
            &PAN,
            &StaticData::records(RECORDS),
            TODAY
        ),
        Err(Sm2CertError::SignatureMismatch { format: f })
    );
}

// --- §5.2.4.2: the dynamic signature ---

#[test]
fn dynamic_signature_over_a_different_unpredictable_number() {
    let c = card();
    let sdad = c.sdad();
    assert!(verify_dynamic_signature(c.icc.public_key(), &sdad, &UN).is_ok());
    assert_eq!(
        verify_dynamic_signature(c.icc.public_key(), &sdad, &[0x11, 0x22, 0x33, 0x45]),
        Err(Sm2CertError::SignatureMismatch {
            format: FORMAT_SIGNED_DYNAMIC_DATA
        })
    );
}

#[test]
fn dynamic_signature_failures() {
    let c = card();
    let sdad = c.sdad();
    let f = FORMAT_SIGNED_DYNAMIC_DATA;
    let verify = |bytes: &[u8]| verify_dynamic_signature(c.icc.public_key(), bytes, &UN);
    for i in 1..sdad.len() {
        let error = verify(&flip(&sdad, i)).unwrap_err();
        if i == 1 {
            // LDD no longer matches the length.
            assert!(matches!(error, Sm2CertError::Length { .. }), "{error:?}");
        } else {
            assert_eq!(
                error,
                Sm2CertError::SignatureMismatch { format: f },
                "byte {i}"
            );
        }
    }
    assert_eq!(
        verify(&flip(&sdad, 0)),
        Err(Sm2CertError::Format {
            expected: 0x15,
            found: 0x14
        })
    );
    assert_eq!(
        verify(&sdad[..1]),
        Err(Sm2CertError::Truncated {
            format: f,
            found: 1
        })
    );
    assert_eq!(
        verify(&sdad[..sdad.len() - 1]),
        Err(Sm2CertError::Length {
            format: f,
            expected: sdad.len(),
            found: sdad.len() - 1
        })
    );
    // Signed by another key (the issuer's instead of the card's).
    let forged = SignedDynamicData::with_dynamic_number(&ATC)
        .unwrap()
        .issue(&c.issuer, &UN)
        .unwrap();
    assert_eq!(
        verify(&forged),
        Err(Sm2CertError::SignatureMismatch { format: f })
    );
}

// --- JR/T 0025.12 附录 B: fDDA ---

const AMOUNT: [u8; 6] = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00];
const CURRENCY: [u8; 2] = [0x01, 0x56];
const CARD_AUTH_DATA: [u8; 8] = [0x01, 0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x80, 0x00];

fn fdda_terminal(card_data: Option<&[u8]>) -> FddaTerminalData<'_> {
    FddaTerminalData {
        unpredictable_number: UN,
        amount_authorised: AMOUNT,
        transaction_currency_code: CURRENCY,
        card_authentication_related_data: card_data,
    }
}

#[test]
fn fdda_versions_00_and_01() {
    let c = card();
    let aip = [0x7c, 0x00];
    let dynamic = SignedDynamicData::with_dynamic_number(&ATC).unwrap();

    // Version 01 signs 9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69.
    let v01 = fdda_terminal(Some(&CARD_AUTH_DATA));
    assert_eq!(v01.version(), Ok(FddaVersion::V01));
    let mut expected = UN.to_vec();
    expected.extend_from_slice(&AMOUNT);
    expected.extend_from_slice(&CURRENCY);
    expected.extend_from_slice(&CARD_AUTH_DATA);
    assert_eq!(v01.to_bytes().unwrap(), expected);
    let sdad = dynamic.issue(&c.icc, &expected).unwrap();
    let verified = verify_fdda(c.icc.public_key(), &sdad, aip, &v01, true).unwrap();
    assert_eq!(verified.icc_dynamic_number().unwrap(), ATC);
    // Another amount, or another 9F69, and the signature fails.
    let other_amount = FddaTerminalData {
        amount_authorised: [0, 0, 0, 0, 0x10, 0x01],
        ..v01
    };
    assert_eq!(
        verify_fdda(c.icc.public_key(), &sdad, aip, &other_amount, true),
        Err(Sm2CertError::SignatureMismatch {
            format: FORMAT_SIGNED_DYNAMIC_DATA
        })
    );
    let mut other_card_data = CARD_AUTH_DATA;
    other_card_data[7] = 0x01;
    assert_eq!(
        verify_fdda(
            c.icc.public_key(),
            &sdad,
            aip,
            &fdda_terminal(Some(&other_card_data)),
            true
        ),
        Err(Sm2CertError::SignatureMismatch {
            format: FORMAT_SIGNED_DYNAMIC_DATA
        })
    );

    // Version 00 (no 9F69) signs the unpredictable number only.
    let v00 = fdda_terminal(None);
    assert_eq!(v00.to_bytes().unwrap(), UN);
    let sdad00 = dynamic.issue(&c.icc, &UN).unwrap();
    assert!(verify_fdda(c.icc.public_key(), &sdad00, aip, &v00, false).is_ok());
    // ... which a terminal that requires 01 from a 2013 card refuses.
    assert_eq!(
        verify_fdda(c.icc.public_key(), &sdad00, aip, &v00, true),
        Err(Sm2CertError::FddaDowngrade)
    );
}

#[test]
fn fdda_failures() {
    let c = card();
    let sdad = c.sdad();
    assert_eq!(
        verify_fdda(
            c.icc.public_key(),
            &sdad,
            [0x5c, 0x00],
            &fdda_terminal(None),
            false
        ),
        Err(Sm2CertError::AipNoDda { aip: [0x5c, 0x00] })
    );
    let v02 = [0x02, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        verify_fdda(
            c.icc.public_key(),
            &sdad,
            AIP,
            &fdda_terminal(Some(&v02)),
            false
        ),
        Err(Sm2CertError::FddaVersion(0x02))
    );
    assert_eq!(
        verify_fdda(
            c.icc.public_key(),
            &sdad,
            AIP,
            &fdda_terminal(Some(&[])),
            false
        ),
        Err(Sm2CertError::CardAuthenticationDataEmpty)
    );
    // A card that signed version 00 data but sent a version 01 9F69.
    assert_eq!(
        verify_fdda(
            c.icc.public_key(),
            &sdad,
            AIP,
            &fdda_terminal(Some(&CARD_AUTH_DATA)),
            false
        ),
        Err(Sm2CertError::SignatureMismatch {
            format: FORMAT_SIGNED_DYNAMIC_DATA
        })
    );
}

// --- §5.2.5.2: CDA ---

fn cda_card(c: &Card, cid: u8, parts: &[&[u8]]) -> (CdaDynamicData, Vec<u8>) {
    let fields = CdaDynamicData {
        dynamic_number: ATC.to_vec(),
        cryptogram_information: cid,
        cryptogram: [0xac; 8],
        transaction_data_hash: transaction_data_hash(parts),
    };
    let sdad = SignedDynamicData {
        icc_dynamic_data: fields.to_bytes().unwrap(),
    }
    .issue(&c.icc, &UN)
    .unwrap();
    (fields, sdad)
}

#[test]
fn cda_verifies_and_each_step_fails_on_its_own() {
    let c = card();
    let pdol: &[u8] = b"\x26\x00\x00\x80\x00\x00\x00\x00\x10\x00";
    let cdol1: &[u8] = b"\x00\x00\x00\x00\x10\x00\x01\x56";
    let response: &[u8] = b"\x9f\x27\x01\x40\x9f\x36\x02\x00\x2a";
    let parts = [pdol, cdol1, response];
    let (fields, sdad) = cda_card(&c, 0x40, &parts);
    // LDD: 1 + 2 + 1 + 8 + 32 = 44 (表13 with the 32-byte SM3 hash).
    assert_eq!(sdad[1], 44);
    let verified = verify_cda(c.icc.public_key(), &sdad, UN, 0x40, &parts).unwrap();
    assert_eq!(verified, fields);

    assert_eq!(
        verify_cda(c.icc.public_key(), &sdad, UN, 0x80, &parts),
        Err(Sm2CertError::CryptogramInformation {
            response: 0x80,
            signed: 0x40
        })
    );
    assert_eq!(
        verify_cda(c.icc.public_key(), &sdad, UN, 0x40, &[pdol, cdol1]),
        Err(Sm2CertError::TransactionDataHash)
    );
    assert_eq!(
        verify_cda(c.icc.public_key(), &sdad, [0; 4], 0x40, &parts),
        Err(Sm2CertError::SignatureMismatch {
            format: FORMAT_SIGNED_DYNAMIC_DATA
        })
    );
    // ICC dynamic data too short for 表13.
    let short = SignedDynamicData::with_dynamic_number(&ATC)
        .unwrap()
        .issue(&c.icc, &UN)
        .unwrap();
    assert_eq!(
        verify_cda(c.icc.public_key(), &short, UN, 0x40, &parts),
        Err(Sm2CertError::CdaDynamicDataLength {
            expected: 44,
            found: 3
        })
    );
    let bad_number = SignedDynamicData {
        icc_dynamic_data: vec![0x09; 50],
    }
    .issue(&c.icc, &UN)
    .unwrap();
    assert_eq!(
        verify_cda(c.icc.public_key(), &bad_number, UN, 0x40, &parts),
        Err(Sm2CertError::DynamicNumber { length: 9 })
    );
}

// --- OpenSSL as an independent verifier ---

const DISTID: &str = "distid:1234567812345678";

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = run(args, b"");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The public key as a PEM file, converted by OpenSSL from our DER.
fn pub_pem(dir: &Path, name: &str, key: &Sm2PublicKey) -> PathBuf {
    let der = write(dir, &format!("{name}.der"), &key.to_spki_der().unwrap());
    let pem = dir.join(format!("{name}.pem"));
    openssl(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        s(&der),
        "-out",
        s(&pem),
    ]);
    pem
}

fn openssl_verifies(dir: &Path, pem: &Path, data: &[u8], signature: &[u8]) -> bool {
    let msg = write(dir, "data.bin", data);
    let der = Sm2Signature::from_bytes(signature).unwrap().to_der();
    let sig = write(dir, "sig.der", &der);
    run(
        &[
            "pkeyutl",
            "-verify",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            DISTID,
            "-pubin",
            "-inkey",
            s(pem),
            "-in",
            s(&msg),
            "-sigfile",
            s(&sig),
        ],
        b"",
    )
    .status
    .success()
}

#[test]
fn certificate_signatures_verify_in_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let c = card();
    let ca_pem = pub_pem(dir.path(), "ca", c.ca.public_key());
    let issuer_pem = pub_pem(dir.path(), "issuer", c.issuer.public_key());
    let icc_pem = pub_pem(dir.path(), "icc", c.icc.public_key());

    // Issuer certificate: 表1 data, signature r‖s.
    let Signed { content, signature } = IssuerCertificate::parse(&c.issuer_cert).unwrap();
    let data = content.to_signed_data().unwrap();
    assert_eq!(data, c.issuer_cert[..78]);
    assert!(openssl_verifies(dir.path(), &ca_pem, &data, &signature));
    assert!(!openssl_verifies(
        dir.path(),
        &ca_pem,
        &flip(&data, 9),
        &signature
    ));
    assert!(!openssl_verifies(
        dir.path(),
        &issuer_pem,
        &data,
        &signature
    ));

    // ICC certificate: 表6 data with the static data.
    let static_bytes = static_data().to_bytes().unwrap();
    let Signed { content, signature } = IccCertificate::parse(&c.icc_cert).unwrap();
    let data = content.to_signed_data(&static_bytes).unwrap();
    assert!(openssl_verifies(dir.path(), &issuer_pem, &data, &signature));

    // Signed static data: 表2.
    let Signed { content, signature } = SignedStaticData::parse(&c.ssad).unwrap();
    assert!(openssl_verifies(
        dir.path(),
        &issuer_pem,
        &content.to_signed_data(&static_bytes),
        &signature
    ));

    // Signed dynamic data: 表9 with the unpredictable number.
    let Signed { content, signature } = SignedDynamicData::parse(&c.sdad()).unwrap();
    let data = content.to_signed_data(&UN).unwrap();
    assert!(openssl_verifies(dir.path(), &icc_pem, &data, &signature));
}

#[test]
fn issuer_certificate_signed_by_openssl_verifies_here() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = dir.path().join("ca.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:SM2",
        "-out",
        s(&ca_key),
    ]);
    let spki = openssl(&["pkey", "-in", s(&ca_key), "-pubout", "-outform", "DER"]);
    let ca_public = Sm2PublicKey::from_spki_der(&spki).unwrap();

    let issuer = key();
    let cert = issuer_template(issuer.public_key());
    let data = cert.to_signed_data().unwrap();
    let msg = write(dir.path(), "tbs.bin", &data);
    let sig_file = dir.path().join("sig.der");
    openssl(&[
        "pkeyutl",
        "-sign",
        "-inkey",
        s(&ca_key),
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        DISTID,
        "-in",
        s(&msg),
        "-out",
        s(&sig_file),
    ]);
    let sig = Sm2Signature::from_der(&std::fs::read(&sig_file).unwrap()).unwrap();
    let bytes = cert.to_bytes(&sig.to_bytes()).unwrap();

    let trust = trust_for(&ca_public);
    let verified = verify_issuer_certificate(&trust, RID, CA_INDEX, &bytes, &PAN, TODAY).unwrap();
    assert_eq!(verified.public_key, *issuer.public_key());
    assert_eq!(verified.certificate, cert);
}

// --- Property tests ---

fn fixed_key() -> &'static Sm2PrivateKey {
    static KEY: OnceLock<Sm2PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| Sm2PrivateKey::generate_os().unwrap())
}

/// Every parser on `bytes`: no panic, and what parses re-encodes to the same bytes.
fn parse_all_round_trip(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(p) = IssuerCertificate::parse(bytes) {
        prop_assert_eq!(p.content.to_bytes(&p.signature).unwrap(), bytes);
    }
    if let Ok(p) = SignedStaticData::parse(bytes) {
        prop_assert_eq!(p.content.to_bytes(&p.signature), bytes);
    }
    if let Ok(p) = IccCertificate::parse(bytes) {
        prop_assert_eq!(p.content.to_bytes(&p.signature).unwrap(), bytes);
    }
    if let Ok(p) = SignedDynamicData::parse(bytes) {
        prop_assert_eq!(p.content.to_bytes(&p.signature).unwrap(), bytes);
        let _ = p.content.icc_dynamic_number();
    }
    if let Ok(cda) = CdaDynamicData::parse(bytes) {
        let encoded = cda.to_bytes().unwrap();
        prop_assert_eq!(&bytes[..encoded.len()], &encoded[..]);
    }
    let _ = StaticData {
        records: bytes,
        sda_tag_list: Some(bytes),
        aip: Some(AIP),
    }
    .to_bytes();
    let _ = FddaVersion::from_card_data(Some(bytes));
    Ok(())
}

fn valid_objects() -> &'static Vec<Vec<u8>> {
    static OBJECTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        let k = fixed_key();
        let static_bytes = static_data().to_bytes().unwrap();
        vec![
            issuer_template(k.public_key()).issue(k).unwrap(),
            icc_template(k.public_key())
                .issue(k, &static_bytes)
                .unwrap(),
            SignedStaticData {
                data_authentication_code: [1, 2],
            }
            .issue(k, &static_bytes)
            .unwrap(),
            SignedDynamicData::with_dynamic_number(&ATC)
                .unwrap()
                .issue(k, &UN)
                .unwrap(),
        ]
    })
}

fn expiry_strategy() -> impl Strategy<Value = ExpiryDate> {
    (1950u16..=2049, 1u8..=12).prop_map(|(year, month)| expiry(year, month))
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        parse_all_round_trip(&bytes)?;
    }

    #[test]
    fn parsers_never_panic_on_mutated_objects(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let mut bytes = valid_objects()[which].clone();
        for (pos, value, kind) in edits {
            let i = pos % (bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = value,
                1 => bytes.insert(i, value),
                2 if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        parse_all_round_trip(&bytes)?;
        // The verifiers never panic either.
        let k = fixed_key();
        let trust = trust_for(k.public_key());
        let _ = verify_issuer_certificate(&trust, RID, CA_INDEX, &bytes, &PAN, TODAY);
        let _ = verify_icc_certificate(k.public_key(), &bytes, &PAN, &static_data(), TODAY);
        let _ = verify_signed_static_data(k.public_key(), &bytes, &static_data());
        let _ = verify_dynamic_signature(k.public_key(), &bytes, &UN);
        let _ = verify_cda(k.public_key(), &bytes, UN, 0x40, &[&bytes]);
        let _ = verify_fdda(k.public_key(), &bytes, AIP, &fdda_terminal(Some(&bytes)), true);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn issue_parse_round_trip(
        id in any::<[u8; 4]>(),
        pan in any::<[u8; 10]>(),
        expiry in expiry_strategy(),
        serial in any::<[u8; 3]>(),
        indicators in any::<[u8; 3]>(),
        key_bytes in proptest::collection::vec(any::<u8>(), 0..=255),
        code in any::<[u8; 2]>(),
        dynamic in proptest::collection::vec(any::<u8>(), 0..=255),
        extra in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let k = fixed_key();
        let [signature_algorithm, encryption_algorithm, curve] = indicators;

        let issuer = IssuerCertificate {
            issuer_id: id,
            expiry,
            serial,
            signature_algorithm,
            encryption_algorithm,
            curve,
            public_key: key_bytes.clone(),
        };
        let bytes = issuer.issue(k).unwrap();
        prop_assert_eq!(bytes.len(), 14 + key_bytes.len() + 64);
        let parsed = IssuerCertificate::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.content, &issuer);
        let sig = Sm2Signature::from_bytes(&parsed.signature).unwrap();
        k.public_key().verify(DEFAULT_ID, &issuer.to_signed_data().unwrap(), &sig).unwrap();

        let icc = IccCertificate {
            pan,
            expiry,
            serial,
            signature_algorithm,
            encryption_algorithm,
            curve,
            public_key: key_bytes.clone(),
        };
        let bytes = icc.issue(k, &extra).unwrap();
        let parsed = IccCertificate::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.content, &icc);
        let sig = Sm2Signature::from_bytes(&parsed.signature).unwrap();
        k.public_key().verify(DEFAULT_ID, &icc.to_signed_data(&extra).unwrap(), &sig).unwrap();

        let ssad = SignedStaticData { data_authentication_code: code };
        let parsed = SignedStaticData::parse(&ssad.issue(k, &extra).unwrap()).unwrap();
        prop_assert_eq!(parsed.content, ssad);

        let sdad = SignedDynamicData { icc_dynamic_data: dynamic };
        let bytes = sdad.issue(k, &extra).unwrap();
        let parsed = SignedDynamicData::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.content, &sdad);
        prop_assert!(verify_dynamic_signature(k.public_key(), &bytes, &extra).is_ok());
    }
}

#[test]
fn sm2_indicator_constants() {
    let k = key();
    let cert = IssuerCertificate::new(ISSUER_ID, expiry(2030, 1), [0; 3], k.public_key());
    assert_eq!(cert.signature_algorithm, SIGNATURE_ALGORITHM_SM2);
    assert_eq!(cert.encryption_algorithm, ENCRYPTION_ALGORITHM_NONE);
    assert_eq!(cert.curve, CURVE_SM2);
    assert_eq!(cert.public_key.len(), 64);
}
