//! SM2 offline data authentication of PBOC 3.0 (JR/T 0025.17 §5): the issuer public-key
//! certificate (format `12`), the signed static application data (`13`), the ICC public-key
//! certificate (`14`) and the signed dynamic application data (`15`), for SDA, DDA, fDDA
//! (JR/T 0025.12 附录 B) and CDA.
//!
//! Unlike the RSA objects of [`super::rsa`], nothing is recovered from a signature: each object
//! is its plain data with the 64-byte SM2 signature `r ‖ s` appended (JR/T 0025.17 §8.2.2 d)),
//! made over `e = SM3(Z ‖ M)` with the fixed identifier `"1234567812345678"` (`ENTL = 0080`,
//! [`super::sm2::DEFAULT_ID`]). Public keys travel as the bare `X ‖ Y` (64 bytes).
//!
//! Each format has a struct with the fields of its table, `to_signed_data` (the bytes the
//! signature covers), `to_bytes` (the object as the card stores it, given a signature),
//! `issue` (both at once with a private key) and `parse` (the reverse of `to_bytes`; it
//! returns an error, never panics, on any input). The terminal side is one function per
//! verification clause, each failing step its own [`Sm2CertError`] variant, and
//! [`verify_chain`] for the whole CA → issuer → ICC path:
//!
//! - JR/T 0025.17 §5.1.2, the issuer certificate (also for DDA, §5.2.2):
//!   [`verify_issuer_certificate`].
//! - §5.1.3, the signed static application data of SDA: [`verify_signed_static_data`].
//! - §5.2.3, the ICC certificate: [`verify_icc_certificate`].
//! - §5.2.4.2, the DDA signature over the DDOL data: [`verify_dynamic_signature`].
//! - JR/T 0025.12 附录 B, qPBOC fast DDA (versions `00` and `01`): [`verify_fdda`].
//! - §5.2.5.2, the CDA signature over the GENERATE AC response: [`verify_cda`].
//!
//! Algorithm identifiers (JR/T 0025.17 附录 A): a certificate names the *signature algorithm*
//! of the certified key (`04` = SM2, whose hash is SM3, 表 A.1), its *encryption algorithm*
//! (`00` = none, 表 A.2) and its *curve* (`11` = SM2 curve, 64-byte keys, 表 A.5). The hash
//! identifier of 表 A.3 (`07` = SM3) does not appear in the SM2 formats.
//!
//! The terminal's clock is not read here: callers pass today's month ([`YearMonth`]).

use super::sm2::{DEFAULT_ID, SIGNATURE_LEN, Sm2Error, Sm2PrivateKey, Sm2PublicKey, Sm2Signature};
use super::sm3;
use crate::tlv::Tag;

pub use super::rsa::{ExpiryDate, RevokedCertificate, YearMonth};

/// Format of the issuer public-key certificate (JR/T 0025.17 §5.1.1 表1, 表4).
pub const FORMAT_ISSUER_CERTIFICATE: u8 = 0x12;
/// Format of the signed static application data (JR/T 0025.17 §5.1.1 表2, 表5).
pub const FORMAT_SIGNED_STATIC_DATA: u8 = 0x13;
/// Format of the ICC public-key certificate (JR/T 0025.17 §5.2.1 表6, 表8).
pub const FORMAT_ICC_CERTIFICATE: u8 = 0x14;
/// Format of the signed dynamic application data (JR/T 0025.17 §5.2.4 表9, 表11; §5.2.5 表12,
/// 表17).
pub const FORMAT_SIGNED_DYNAMIC_DATA: u8 = 0x15;
/// Public-key signature algorithm indicator of SM2 with SM3 (JR/T 0025.17 附录 A 表 A.1).
pub const SIGNATURE_ALGORITHM_SM2: u8 = 0x04;
/// Public-key encryption algorithm indicator "none", what the certificates carry today
/// (JR/T 0025.17 §5.1.1 表1, 附录 A 表 A.2).
pub const ENCRYPTION_ALGORITHM_NONE: u8 = 0x00;
/// Public-key encryption algorithm indicator of SM2 encryption (JR/T 0025.17 附录 A 表 A.2).
pub const ENCRYPTION_ALGORITHM_SM2: u8 = 0x04;
/// Curve (public-key parameter) indicator of the SM2 curve, 64-byte keys (JR/T 0025.17 附录 A
/// 表 A.5).
pub const CURVE_SM2: u8 = 0x11;
/// Hash algorithm indicator of SM3 (JR/T 0025.17 附录 A 表 A.3); not a field of the SM2 formats.
pub const HASH_SM3: u8 = 0x07;
/// Length of an SM2 public key `X ‖ Y` in a certificate (JR/T 0025.17 附录 A 表 A.5).
pub const PUBLIC_KEY_LEN: usize = super::sm2::XY_LEN;
/// Length of a signed static application data object: format, data authentication code,
/// signature (JR/T 0025.17 §5.1.1 表3, tag `93`: `NI + 3`).
pub const SIGNED_STATIC_DATA_LEN: usize = 3 + SIGNATURE_LEN;
/// Length of the SM3 transaction data hash in CDA (JR/T 0025.17 §5.2.5.1 表13).
pub const TRANSACTION_DATA_HASH_LEN: usize = 32;
/// The tag of the application interchange profile, the one tag an SDA tag list may name.
pub const AIP_TAG: u8 = 0x82;

/// Fields before the key in the issuer certificate (表4: 1 + 4 + 2 + 3 + 1 + 1 + 1 + 1).
const ISSUER_HEADER_LEN: usize = 14;
/// Fields before the key in the ICC certificate (表8: 1 + 10 + 2 + 3 + 1 + 1 + 1 + 1).
const ICC_HEADER_LEN: usize = 20;
/// Fixed fields of a certificate other than its identifier (format, expiry, serial, three
/// indicators, key length).
const CERT_FIXED_LEN: usize = 1 + 2 + 3 + 4;
/// Format and `LDD` of the signed dynamic data (表11).
const DYNAMIC_HEADER_LEN: usize = 2;
/// AIP byte 1 bit 6: DDA supported (JR/T 0025.5 表 A.1 `82`).
const AIP_DDA: u8 = 0x20;

/// Errors of the SM2 offline data authentication objects, one per failing step.
///
/// `format` in a variant is the format code (`12`, `13`, `14` or `15`) of the object that was
/// being read or checked.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Sm2CertError {
    /// The terminal has no CA public key for this RID and index (JR/T 0025.17 §5.1.1 表3;
    /// JR/T 0025.7 §5.2.2).
    #[error("no CA public key for RID {rid:02X?}, index {index:02X}")]
    UnknownCaKey {
        /// RID asked for.
        rid: [u8; 5],
        /// CA public key index asked for (tag 8F).
        index: u8,
    },
    /// The CA public key found has expired.
    #[error("CA public key {index:02X} of RID {rid:02X?} expired at the end of {month:02}/{year}")]
    CaKeyExpired {
        /// RID of the key.
        rid: [u8; 5],
        /// CA public key index.
        index: u8,
        /// Year of expiry.
        year: u16,
        /// Month of expiry.
        month: u8,
    },
    /// The object ends before its length field, so its length cannot even be worked out.
    #[error("format {format:02X} object of {found} bytes is too short to hold its header")]
    Truncated {
        /// Format expected.
        format: u8,
        /// Bytes given.
        found: usize,
    },
    /// The object is not as long as its length fields and the 64-byte signature imply (table
    /// 3, 7 and 10 lengths).
    #[error("format {format:02X} object has {found} bytes, its fields imply {expected}")]
    Length {
        /// Format expected.
        format: u8,
        /// Length implied by the length fields.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The format byte is not the one expected (§5.1.2 a), §5.1.3 b), §5.2.3 b), §5.2.4.2 b),
    /// §5.2.5.2 b)).
    #[error("format {found:02X} where {expected:02X} is expected")]
    Format {
        /// Format required.
        expected: u8,
        /// Format byte found.
        found: u8,
    },
    /// The expiry date is not a valid BCD `MMYY`.
    #[error("certificate expiry date {0:02X?} is not a valid MMYY")]
    ExpiryDate([u8; 2]),
    /// The issuer identifier is not the leftmost 3 to 8 PAN digits, `F`-padded (§5.1.2 b)).
    #[error("issuer identifier {issuer_id:02X?} does not match the PAN")]
    IssuerIdMismatch {
        /// Issuer identifier of the certificate.
        issuer_id: [u8; 4],
    },
    /// The PAN in the ICC certificate is not the application PAN (§5.2.3 c)). Neither PAN is
    /// carried: errors end up in logs.
    #[error("the PAN in the ICC certificate is not the application PAN")]
    PanMismatch,
    /// The certificate expired before the current month (§5.1.2 c), §5.2.3 d)).
    #[error("format {format:02X} certificate expired at the end of {month:02}/{year}")]
    Expired {
        /// Format of the certificate.
        format: u8,
        /// Year of expiry.
        year: u16,
        /// Month of expiry.
        month: u8,
    },
    /// RID, CA index and certificate serial number are on the revocation list (§5.1.2 d)).
    #[error(
        "issuer certificate {serial:02X?} under CA {ca_index:02X} of RID {rid:02X?} is revoked"
    )]
    Revoked {
        /// RID.
        rid: [u8; 5],
        /// CA public key index.
        ca_index: u8,
        /// Certificate serial number.
        serial: [u8; 3],
    },
    /// The signature algorithm indicator is not SM2 `04` (§5.1.2 e), §5.2.3 f)).
    #[error("format {format:02X}: signature algorithm indicator {found:02X}, not 04 (SM2)")]
    SignatureAlgorithm {
        /// Format of the certificate.
        format: u8,
        /// Indicator found.
        found: u8,
    },
    /// The signature's `r` or `s` is 0 or not below the curve order, so it cannot verify
    /// (§8.2.3).
    #[error("format {format:02X}: signature component r or s is out of range")]
    SignatureOutOfRange {
        /// Format of the signed object.
        format: u8,
    },
    /// The signature does not verify (§5.1.2 g), §5.1.3 d), §5.2.3 g), §5.2.4.2 d),
    /// §5.2.5.2 k)).
    #[error("format {format:02X}: the SM2 signature does not verify")]
    SignatureMismatch {
        /// Format of the signed object.
        format: u8,
    },
    /// The encryption algorithm indicator is neither `00` nor SM2 `04` (表1, 表 A.2).
    #[error("format {format:02X}: unknown encryption algorithm indicator {found:02X}")]
    EncryptionAlgorithm {
        /// Format of the certificate.
        format: u8,
        /// Indicator found.
        found: u8,
    },
    /// The curve indicator is not the SM2 curve `11` (表 A.5).
    #[error("format {format:02X}: curve indicator {found:02X}, not 11 (SM2)")]
    CurveParameter {
        /// Format of the certificate.
        format: u8,
        /// Indicator found.
        found: u8,
    },
    /// The certified key does not have the length its curve gives (表 A.5: 64 bytes for SM2).
    #[error("format {format:02X}: public key of {found} bytes, the SM2 curve has {expected}")]
    PublicKeyLength {
        /// Format of the certificate.
        format: u8,
        /// Length of the curve's keys.
        expected: usize,
        /// Length field of the certificate.
        found: usize,
    },
    /// The certified key is not a point of the SM2 curve.
    #[error("format {format:02X}: the certified public key is not a point of the SM2 curve")]
    PublicKeyNotOnCurve {
        /// Format of the certificate.
        format: u8,
    },
    /// The SDA tag list names a tag other than the AIP's `82` (§5.1.3 c), §5.2.3 e)).
    #[error("the SDA tag list names tag {found}, only 82 is allowed")]
    SdaTagList {
        /// The first tag that is not `82`.
        found: Tag,
    },
    /// The SDA tag list ends inside a tag or has a tag longer than three bytes.
    #[error("the SDA tag list is not a list of tags (at byte {offset})")]
    SdaTagListMalformed {
        /// Offset of the tag that could not be read.
        offset: usize,
    },
    /// The SDA tag list names the AIP but no AIP was given.
    #[error("the SDA tag list names the AIP (82) but no AIP was given")]
    AipMissing,
    /// A certified key too long for its one-byte length field (when building).
    #[error("a public key of {0} bytes does not fit a one-byte length field")]
    PublicKeyTooLong(usize),
    /// ICC dynamic data too long for its one-byte length field `LDD` (when building).
    #[error("ICC dynamic data of {0} bytes does not fit the one-byte LDD")]
    DynamicDataTooLong(usize),
    /// The ICC dynamic data does not start with a length byte of 2 to 8 and as many bytes of
    /// ICC dynamic number (JR/T 0025.7 §5.3.5.1).
    #[error("the ICC dynamic data does not start with an ICC dynamic number of 2-8 bytes")]
    DynamicNumber {
        /// The length byte found (0 if the data is empty).
        length: u8,
    },
    /// The CDA ICC dynamic data is shorter than the fields of 表13.
    #[error("CDA ICC dynamic data of {found} bytes, 表13 needs {expected}")]
    CdaDynamicDataLength {
        /// Bytes 表13 needs with this dynamic number length.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The cryptogram information data in the CDA signature differs from the GENERATE AC
    /// response's (§5.2.5.2 d)).
    #[error(
        "cryptogram information data {signed:02X} in the signature, {response:02X} in the response"
    )]
    CryptogramInformation {
        /// `9F27` of the GENERATE AC response.
        response: u8,
        /// The value inside the signed ICC dynamic data.
        signed: u8,
    },
    /// The transaction data hash in the CDA signature does not match the data (§5.2.5.2 j)).
    #[error("the CDA transaction data hash does not match")]
    TransactionDataHash,
    /// The AIP says the card does not support DDA (JR/T 0025.12 附录 B.2).
    #[error("AIP {aip:02X?} does not announce DDA")]
    AipNoDda {
        /// The AIP.
        aip: [u8; 2],
    },
    /// The card authentication related data (`9F69`) is present but empty, so it names no
    /// fDDA version (JR/T 0025.12 附录 C).
    #[error("card authentication related data 9F69 is empty")]
    CardAuthenticationDataEmpty,
    /// The fDDA version the card asks for is neither `00` nor `01` (JR/T 0025.12 附录 B.2).
    #[error("fDDA version {0:02X} is not supported")]
    FddaVersion(u8),
    /// The terminal asked for version `01` and the card conforms to it, but the card signed
    /// with version `00` (JR/T 0025.12 附录 B.2).
    #[error("the card answered with fDDA version 00 where version 01 is required")]
    FddaDowngrade,
    /// SM2 signing failed while issuing.
    #[error("SM2 signing failed")]
    Signing(#[source] Sm2Error),
}

/// An object as parsed: its fields and the 64-byte signature `r ‖ s` that followed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<T> {
    /// The fields of the object.
    pub content: T,
    /// The signature `r ‖ s` as the card sent it (not checked by `parse`).
    pub signature: [u8; SIGNATURE_LEN],
}

/// A certificate that passed verification, with the SM2 public key it certifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certified<T> {
    /// The certificate's fields.
    pub certificate: T,
    /// The certified key, checked to be a point of the SM2 curve.
    pub public_key: Sm2PublicKey,
}

// ---------------------------------------------------------------------------------------------
// Trust store
// ---------------------------------------------------------------------------------------------

/// A certification authority's SM2 public key as the terminal holds it (JR/T 0025.17 §5.1.1
/// 表3: located by RID and CA public key index `8F`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKey {
    /// Registered application provider identifier (the first 5 bytes of the AID).
    pub rid: [u8; 5],
    /// CA public key index (tag 8F).
    pub index: u8,
    /// The CA's SM2 public key.
    pub public_key: Sm2PublicKey,
    /// Last month in which the key may be used.
    pub expiry: ExpiryDate,
}

/// The terminal's CA public keys (keyed by RID and index) and its list of revoked issuer
/// certificates (JR/T 0025.17 §5.1.2 d)).
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: Vec<CaKey>,
    revoked: Vec<RevokedCertificate>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a CA key, replacing (and returning) one with the same RID and index.
    pub fn insert(&mut self, key: CaKey) -> Option<CaKey> {
        match self
            .keys
            .iter_mut()
            .find(|k| k.rid == key.rid && k.index == key.index)
        {
            Some(slot) => Some(core::mem::replace(slot, key)),
            None => {
                self.keys.push(key);
                None
            }
        }
    }

    /// Remove the CA key of this RID and index.
    pub fn remove(&mut self, rid: [u8; 5], index: u8) -> Option<CaKey> {
        let pos = self
            .keys
            .iter()
            .position(|k| k.rid == rid && k.index == index)?;
        Some(self.keys.remove(pos))
    }

    /// The CA key of this RID and index, if the store has it (expired or not).
    pub fn get(&self, rid: [u8; 5], index: u8) -> Option<&CaKey> {
        self.keys.iter().find(|k| k.rid == rid && k.index == index)
    }

    /// All CA keys.
    pub fn keys(&self) -> &[CaKey] {
        &self.keys
    }

    /// Put an issuer certificate on the revocation list.
    pub fn revoke(&mut self, entry: RevokedCertificate) {
        if !self.revoked.contains(&entry) {
            self.revoked.push(entry);
        }
    }

    /// The revocation list.
    pub fn revoked(&self) -> &[RevokedCertificate] {
        &self.revoked
    }

    /// Whether the issuer certificate `serial` under CA `ca_index` of `rid` is revoked.
    pub fn is_revoked(&self, rid: [u8; 5], ca_index: u8, serial: [u8; 3]) -> bool {
        self.revoked.contains(&RevokedCertificate {
            rid,
            ca_index,
            serial,
        })
    }

    /// The CA key to verify an issuer certificate with: present and not expired in `today`.
    pub fn ca_key(
        &self,
        rid: [u8; 5],
        index: u8,
        today: YearMonth,
    ) -> Result<&CaKey, Sm2CertError> {
        let key = self
            .get(rid, index)
            .ok_or(Sm2CertError::UnknownCaKey { rid, index })?;
        if key.expiry.is_expired(today) {
            let YearMonth { year, month } = key.expiry.month();
            return Err(Sm2CertError::CaKeyExpired {
                rid,
                index,
                year,
                month,
            });
        }
        Ok(key)
    }
}

// ---------------------------------------------------------------------------------------------
// Format 12: issuer public-key certificate
// ---------------------------------------------------------------------------------------------

/// The issuer public-key certificate, format `12` (JR/T 0025.17 §5.1.1 表1, §5.1.2 表4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerCertificate {
    /// Issuer identifier: the leftmost 3 to 8 PAN digits, `F`-padded (cn 8).
    pub issuer_id: [u8; 4],
    /// Certificate expiry date `MMYY`.
    pub expiry: ExpiryDate,
    /// Certificate serial number, assigned by the CA.
    pub serial: [u8; 3],
    /// Signature algorithm of the issuer key ([`SIGNATURE_ALGORITHM_SM2`]).
    pub signature_algorithm: u8,
    /// Encryption algorithm of the issuer key ([`ENCRYPTION_ALGORITHM_NONE`]).
    pub encryption_algorithm: u8,
    /// Curve of the issuer key ([`CURVE_SM2`]).
    pub curve: u8,
    /// The issuer public key as the certificate carries it (`X ‖ Y` for SM2); its length is
    /// the certificate's key-length byte.
    pub public_key: Vec<u8>,
}

impl IssuerCertificate {
    /// A certificate for an SM2 issuer key with the indicators PBOC uses (`04`, `00`, `11`).
    pub fn new(
        issuer_id: [u8; 4],
        expiry: ExpiryDate,
        serial: [u8; 3],
        key: &Sm2PublicKey,
    ) -> Self {
        Self {
            issuer_id,
            expiry,
            serial,
            signature_algorithm: SIGNATURE_ALGORITHM_SM2,
            encryption_algorithm: ENCRYPTION_ALGORITHM_NONE,
            curve: CURVE_SM2,
            public_key: key.to_xy().to_vec(),
        }
    }

    /// The data the CA signs: the nine fields of JR/T 0025.17 §5.1.1 表1.
    pub fn to_signed_data(&self) -> Result<Vec<u8>, Sm2CertError> {
        encode_cert_fields(
            FORMAT_ISSUER_CERTIFICATE,
            &self.issuer_id,
            self.expiry,
            self.serial,
            [
                self.signature_algorithm,
                self.encryption_algorithm,
                self.curve,
            ],
            &self.public_key,
        )
    }

    /// The certificate (tag `90`) with the given signature: 表1 data ‖ `r ‖ s` (表4).
    pub fn to_bytes(&self, signature: &[u8; SIGNATURE_LEN]) -> Result<Vec<u8>, Sm2CertError> {
        let mut out = self.to_signed_data()?;
        out.extend_from_slice(signature);
        Ok(out)
    }

    /// Issue the certificate with the CA's private key (JR/T 0025.17 §5.1.1, §8.2.2).
    pub fn issue(&self, ca: &Sm2PrivateKey) -> Result<Vec<u8>, Sm2CertError> {
        let data = self.to_signed_data()?;
        let signature = sign(ca, &data)?;
        Ok([data.as_slice(), &signature].concat())
    }

    /// Read a certificate laid out as JR/T 0025.17 §5.1.2 表4: the length must be the 14 bytes
    /// of fixed fields, the key its length byte announces and a 64-byte signature; the format
    /// byte must be `12`; the expiry a BCD `MMYY`. Nothing else is checked.
    pub fn parse(bytes: &[u8]) -> Result<Signed<Self>, Sm2CertError> {
        let f = CertFields::parse(bytes, FORMAT_ISSUER_CERTIFICATE, ISSUER_HEADER_LEN)?;
        let issuer_id: [u8; 4] = f.id.try_into().map_err(|_| Sm2CertError::Truncated {
            format: FORMAT_ISSUER_CERTIFICATE,
            found: bytes.len(),
        })?;
        Ok(Signed {
            content: Self {
                issuer_id,
                expiry: f.expiry,
                serial: f.serial,
                signature_algorithm: f.signature_algorithm,
                encryption_algorithm: f.encryption_algorithm,
                curve: f.curve,
                public_key: f.key.to_vec(),
            },
            signature: f.signature,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Format 13: signed static application data
// ---------------------------------------------------------------------------------------------

/// The signed static application data, format `13` (JR/T 0025.17 §5.1.1 表2, §5.1.3 表5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedStaticData {
    /// Data authentication code, assigned by the issuer; the terminal keeps it in `9F45`.
    pub data_authentication_code: [u8; 2],
}

impl SignedStaticData {
    /// The data the issuer signs: format, data authentication code and the static data to
    /// authenticate (JR/T 0025.17 §5.1.1 表2).
    pub fn to_signed_data(&self, static_data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + static_data.len());
        out.push(FORMAT_SIGNED_STATIC_DATA);
        out.extend_from_slice(&self.data_authentication_code);
        out.extend_from_slice(static_data);
        out
    }

    /// The object the card stores (tag `93`): format, code and signature (表5), 67 bytes.
    pub fn to_bytes(&self, signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
        let mut out = self.to_signed_data(&[]);
        out.extend_from_slice(signature);
        out
    }

    /// Sign with the issuer's private key over the static data to authenticate (already
    /// assembled, see [`StaticData::to_bytes`]), giving the tag `93` value.
    pub fn issue(
        &self,
        issuer: &Sm2PrivateKey,
        static_data: &[u8],
    ) -> Result<Vec<u8>, Sm2CertError> {
        let signature = sign(issuer, &self.to_signed_data(static_data))?;
        Ok(self.to_bytes(&signature))
    }

    /// Read a tag `93` value laid out as JR/T 0025.17 §5.1.3 表5: 67 bytes, format `13`.
    pub fn parse(bytes: &[u8]) -> Result<Signed<Self>, Sm2CertError> {
        let format = FORMAT_SIGNED_STATIC_DATA;
        if bytes.len() != SIGNED_STATIC_DATA_LEN {
            return Err(Sm2CertError::Length {
                format,
                expected: SIGNED_STATIC_DATA_LEN,
                found: bytes.len(),
            });
        }
        let (header, signature) =
            bytes
                .split_first_chunk::<3>()
                .ok_or(Sm2CertError::Truncated {
                    format,
                    found: bytes.len(),
                })?;
        let [found, c0, c1] = *header;
        check_format(format, found)?;
        Ok(Signed {
            content: Self {
                data_authentication_code: [c0, c1],
            },
            signature: signature_array(signature, format)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Format 14: ICC public-key certificate
// ---------------------------------------------------------------------------------------------

/// The ICC public-key certificate, format `14` (JR/T 0025.17 §5.2.1 表6, §5.2.3 表8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IccCertificate {
    /// Application PAN, `F`-padded to 10 bytes (cn 20).
    pub pan: [u8; 10],
    /// Certificate expiry date `MMYY`.
    pub expiry: ExpiryDate,
    /// Certificate serial number, assigned by the issuer.
    pub serial: [u8; 3],
    /// Signature algorithm of the ICC key ([`SIGNATURE_ALGORITHM_SM2`]).
    pub signature_algorithm: u8,
    /// Encryption algorithm of the ICC key ([`ENCRYPTION_ALGORITHM_NONE`]).
    pub encryption_algorithm: u8,
    /// Curve of the ICC key ([`CURVE_SM2`]).
    pub curve: u8,
    /// The ICC public key as the certificate carries it (`X ‖ Y` for SM2); its length is the
    /// certificate's key-length byte.
    pub public_key: Vec<u8>,
}

impl IccCertificate {
    /// A certificate for an SM2 ICC key with the indicators PBOC uses (`04`, `00`, `11`);
    /// `pan` is the application PAN (tag `5A`), `F`-padded here.
    pub fn new(pan: &[u8], expiry: ExpiryDate, serial: [u8; 3], key: &Sm2PublicKey) -> Self {
        Self {
            pan: Self::pan_field(pan),
            expiry,
            serial,
            signature_algorithm: SIGNATURE_ALGORITHM_SM2,
            encryption_algorithm: ENCRYPTION_ALGORITHM_NONE,
            curve: CURVE_SM2,
            public_key: key.to_xy().to_vec(),
        }
    }

    /// The PAN field from the application PAN (tag `5A`): its first 10 bytes, `F`-padded.
    pub fn pan_field(pan: &[u8]) -> [u8; 10] {
        let mut out = [0xffu8; 10];
        for (o, b) in out.iter_mut().zip(pan) {
            *o = *b;
        }
        out
    }

    /// The data the issuer signs: the nine fields of JR/T 0025.17 §5.2.1 表6 followed by the
    /// static data to authenticate (表6's last row).
    pub fn to_signed_data(&self, static_data: &[u8]) -> Result<Vec<u8>, Sm2CertError> {
        let mut out = self.fields()?;
        out.extend_from_slice(static_data);
        Ok(out)
    }

    /// The certificate (tag `9F46`): the nine fields and the signature, without the static
    /// data (表8).
    pub fn to_bytes(&self, signature: &[u8; SIGNATURE_LEN]) -> Result<Vec<u8>, Sm2CertError> {
        let mut out = self.fields()?;
        out.extend_from_slice(signature);
        Ok(out)
    }

    /// Issue the certificate with the issuer's private key over the fields and the static
    /// data to authenticate (already assembled, see [`StaticData::to_bytes`]).
    pub fn issue(
        &self,
        issuer: &Sm2PrivateKey,
        static_data: &[u8],
    ) -> Result<Vec<u8>, Sm2CertError> {
        let signature = sign(issuer, &self.to_signed_data(static_data)?)?;
        self.to_bytes(&signature)
    }

    /// Read a certificate laid out as JR/T 0025.17 §5.2.3 表8: the length must be the 20 bytes
    /// of fixed fields, the key its length byte announces and a 64-byte signature; the format
    /// byte must be `14`; the expiry a BCD `MMYY`. Nothing else is checked.
    pub fn parse(bytes: &[u8]) -> Result<Signed<Self>, Sm2CertError> {
        let f = CertFields::parse(bytes, FORMAT_ICC_CERTIFICATE, ICC_HEADER_LEN)?;
        let pan: [u8; 10] = f.id.try_into().map_err(|_| Sm2CertError::Truncated {
            format: FORMAT_ICC_CERTIFICATE,
            found: bytes.len(),
        })?;
        Ok(Signed {
            content: Self {
                pan,
                expiry: f.expiry,
                serial: f.serial,
                signature_algorithm: f.signature_algorithm,
                encryption_algorithm: f.encryption_algorithm,
                curve: f.curve,
                public_key: f.key.to_vec(),
            },
            signature: f.signature,
        })
    }

    fn fields(&self) -> Result<Vec<u8>, Sm2CertError> {
        encode_cert_fields(
            FORMAT_ICC_CERTIFICATE,
            &self.pan,
            self.expiry,
            self.serial,
            [
                self.signature_algorithm,
                self.encryption_algorithm,
                self.curve,
            ],
            &self.public_key,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Format 15: signed dynamic application data
// ---------------------------------------------------------------------------------------------

/// The signed dynamic application data, format `15` (JR/T 0025.17 §5.2.4 表9/表11 for DDA
/// and fDDA, §5.2.5 表12/表17 for CDA).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignedDynamicData {
    /// ICC dynamic data (`LDD` bytes): for DDA it starts with the ICC dynamic number and its
    /// length (JR/T 0025.7 §5.3.5.1), for CDA it is laid out as [`CdaDynamicData`].
    pub icc_dynamic_data: Vec<u8>,
}

impl SignedDynamicData {
    /// ICC dynamic data made of just an ICC dynamic number of 2 to 8 bytes and its length
    /// byte (JR/T 0025.7 §5.3.5.1; the ATC is the recommended number).
    pub fn with_dynamic_number(number: &[u8]) -> Result<Self, Sm2CertError> {
        let length = u8::try_from(number.len())
            .ok()
            .filter(|n| (2..=8).contains(n))
            .ok_or(Sm2CertError::DynamicNumber {
                length: u8::try_from(number.len()).unwrap_or(u8::MAX),
            })?;
        let mut data = Vec::with_capacity(number.len() + 1);
        data.push(length);
        data.extend_from_slice(number);
        Ok(Self {
            icc_dynamic_data: data,
        })
    }

    /// The ICC dynamic number at the start of the ICC dynamic data, which the terminal keeps
    /// in `9F4C` (JR/T 0025.17 §5.2.4.2; layout in JR/T 0025.7 §5.3.5.1).
    pub fn icc_dynamic_number(&self) -> Result<&[u8], Sm2CertError> {
        dynamic_number(&self.icc_dynamic_data).map(|(number, _)| number)
    }

    /// The data the card signs: format, `LDD`, ICC dynamic data and the terminal dynamic data
    /// (JR/T 0025.17 §5.2.4.1 表9: the DDOL data; for fDDA the data of JR/T 0025.12 表 B.1;
    /// for CDA the unpredictable number, §5.2.5.1 表12).
    pub fn to_signed_data(&self, terminal_dynamic_data: &[u8]) -> Result<Vec<u8>, Sm2CertError> {
        let mut out = self.header()?;
        out.extend_from_slice(terminal_dynamic_data);
        Ok(out)
    }

    /// The object the card returns (tag `9F4B`): format, `LDD`, ICC dynamic data and the
    /// signature (表11, 表17).
    pub fn to_bytes(&self, signature: &[u8; SIGNATURE_LEN]) -> Result<Vec<u8>, Sm2CertError> {
        let mut out = self.header()?;
        out.extend_from_slice(signature);
        Ok(out)
    }

    /// Sign as the card does, with the ICC private key, over the ICC dynamic data and the
    /// terminal dynamic data; returns the tag `9F4B` value.
    pub fn issue(
        &self,
        icc: &Sm2PrivateKey,
        terminal_dynamic_data: &[u8],
    ) -> Result<Vec<u8>, Sm2CertError> {
        let signature = sign(icc, &self.to_signed_data(terminal_dynamic_data)?)?;
        self.to_bytes(&signature)
    }

    /// Read a tag `9F4B` value laid out as JR/T 0025.17 §5.2.4.2 表11 (and §5.2.5.2 表17):
    /// length `LDD + 66` (表10), format `15`.
    pub fn parse(bytes: &[u8]) -> Result<Signed<Self>, Sm2CertError> {
        let format = FORMAT_SIGNED_DYNAMIC_DATA;
        let (&[found, ldd], rest) =
            bytes
                .split_first_chunk::<DYNAMIC_HEADER_LEN>()
                .ok_or(Sm2CertError::Truncated {
                    format,
                    found: bytes.len(),
                })?;
        let ldd = usize::from(ldd);
        let expected = DYNAMIC_HEADER_LEN + ldd + SIGNATURE_LEN;
        if bytes.len() != expected {
            return Err(Sm2CertError::Length {
                format,
                expected,
                found: bytes.len(),
            });
        }
        check_format(format, found)?;
        let (data, signature) = rest.split_at_checked(ldd).ok_or(Sm2CertError::Length {
            format,
            expected,
            found: bytes.len(),
        })?;
        Ok(Signed {
            content: Self {
                icc_dynamic_data: data.to_vec(),
            },
            signature: signature_array(signature, format)?,
        })
    }

    fn header(&self) -> Result<Vec<u8>, Sm2CertError> {
        let ldd = u8::try_from(self.icc_dynamic_data.len())
            .map_err(|_| Sm2CertError::DynamicDataTooLong(self.icc_dynamic_data.len()))?;
        let mut out = Vec::with_capacity(DYNAMIC_HEADER_LEN + self.icc_dynamic_data.len());
        out.extend_from_slice(&[FORMAT_SIGNED_DYNAMIC_DATA, ldd]);
        out.extend_from_slice(&self.icc_dynamic_data);
        Ok(out)
    }
}

/// The leftmost fields of the ICC dynamic data in CDA (JR/T 0025.17 §5.2.5.1 表13).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CdaDynamicData {
    /// ICC dynamic number, 2 to 8 bytes (kept in `9F4C`).
    pub dynamic_number: Vec<u8>,
    /// Cryptogram information data (`9F27`).
    pub cryptogram_information: u8,
    /// The TC or ARQC (kept in `9F26`).
    pub cryptogram: [u8; 8],
    /// SM3 over the transaction data ([`transaction_data_hash`]).
    pub transaction_data_hash: [u8; TRANSACTION_DATA_HASH_LEN],
}

impl CdaDynamicData {
    /// Read the 表13 fields from the start of the ICC dynamic data; bytes after them are
    /// allowed and ignored.
    pub fn parse(icc_dynamic_data: &[u8]) -> Result<Self, Sm2CertError> {
        let (number, rest) = dynamic_number(icc_dynamic_data)?;
        let expected = 1 + number.len() + 1 + 8 + TRANSACTION_DATA_HASH_LEN;
        let too_short = Sm2CertError::CdaDynamicDataLength {
            expected,
            found: icc_dynamic_data.len(),
        };
        let (&cid, rest) = rest.split_first().ok_or(too_short.clone())?;
        let (cryptogram, rest) = rest.split_first_chunk::<8>().ok_or(too_short.clone())?;
        let (hash, _) = rest
            .split_first_chunk::<TRANSACTION_DATA_HASH_LEN>()
            .ok_or(too_short)?;
        Ok(Self {
            dynamic_number: number.to_vec(),
            cryptogram_information: cid,
            cryptogram: *cryptogram,
            transaction_data_hash: *hash,
        })
    }

    /// The 表13 bytes: dynamic number length and value, CID, cryptogram, hash.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Sm2CertError> {
        let mut out =
            SignedDynamicData::with_dynamic_number(&self.dynamic_number)?.icc_dynamic_data;
        out.push(self.cryptogram_information);
        out.extend_from_slice(&self.cryptogram);
        out.extend_from_slice(&self.transaction_data_hash);
        Ok(out)
    }
}

/// The CDA transaction data hash: SM3 over the parts joined left to right (JR/T 0025.17
/// §5.2.5.1 b), §5.2.5.2 f)-i)): the PDOL data of GET PROCESSING OPTIONS, the CDOL1 data of the
/// first GENERATE AC, for the second GENERATE AC also its CDOL2 data, then the TLV objects of
/// the GENERATE AC response in the order returned, without the signed dynamic data `9F4B`.
pub fn transaction_data_hash(parts: &[&[u8]]) -> [u8; TRANSACTION_DATA_HASH_LEN] {
    sm3::digest_parts(parts)
}

// ---------------------------------------------------------------------------------------------
// Static data to authenticate
// ---------------------------------------------------------------------------------------------

/// The static data to authenticate as the terminal collects it (JR/T 0025.5 §9.3.1; JR/T
/// 0025.7 §5.2.1 under 表4): the records the AFL marks for offline data authentication, then
/// the value of each tag the SDA tag list (`9F4A`) names, which can only be the AIP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaticData<'a> {
    /// The records the AFL marks, already reduced as JR/T 0025.5 says (the value of template
    /// `70` for SFI 1 to 10, the whole record for SFI 11 to 30).
    pub records: &'a [u8],
    /// The value of the SDA tag list `9F4A`, if the card has one.
    pub sda_tag_list: Option<&'a [u8]>,
    /// The AIP (tag `82`), needed when the tag list names it.
    pub aip: Option<[u8; 2]>,
}

impl<'a> StaticData<'a> {
    /// Records only, no SDA tag list.
    pub fn records(records: &'a [u8]) -> Self {
        Self {
            records,
            sda_tag_list: None,
            aip: None,
        }
    }

    /// The bytes that are signed: the records, then the AIP once per `82` in the tag list.
    /// Fails if the tag list names any other tag (JR/T 0025.17 §5.1.3 c), §5.2.3 e)) or is not
    /// a list of tags, or names the AIP when none was given.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Sm2CertError> {
        let mut out = self.records.to_vec();
        let Some(list) = self.sda_tag_list else {
            return Ok(out);
        };
        let mut offset = 0;
        while let Some(rest) = list.get(offset..).filter(|r| !r.is_empty()) {
            let (tag, len) = read_tag(rest).ok_or(Sm2CertError::SdaTagListMalformed { offset })?;
            if tag != Tag::new(u32::from(AIP_TAG)) {
                return Err(Sm2CertError::SdaTagList { found: tag });
            }
            let aip = self.aip.ok_or(Sm2CertError::AipMissing)?;
            out.extend_from_slice(&aip);
            offset += len;
        }
        Ok(out)
    }
}

/// One BER tag of one to three bytes at the start of `bytes`, with its length.
fn read_tag(bytes: &[u8]) -> Option<(Tag, usize)> {
    let (&first, _) = bytes.split_first()?;
    let mut value = u32::from(first);
    if first & 0x1f != 0x1f {
        return Some((Tag::new(value), 1));
    }
    for (i, &b) in bytes.iter().enumerate().skip(1).take(2) {
        value = (value << 8) | u32::from(b);
        if b & 0x80 == 0 {
            return Some((Tag::new(value), i + 1));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// Verify an issuer certificate (tag `90`) and take out the issuer public key, JR/T 0025.17
/// §5.1.2 (SDA) and §5.2.2 (DDA, the same clause), in the clause's order:
///
/// 0. the CA key of `rid` and `ca_index` (tag `8F`) is in `trust` and not expired
///    ([`Sm2CertError::UnknownCaKey`], [`Sm2CertError::CaKeyExpired`]);
/// 1. the certificate parses as 表4 ([`Sm2CertError::Truncated`], [`Sm2CertError::Length`],
///    [`Sm2CertError::ExpiryDate`]) with format `12` (step a), [`Sm2CertError::Format`]);
/// 2. b) the issuer identifier is the leftmost 3-8 PAN digits ([`Sm2CertError::IssuerIdMismatch`]);
/// 3. c) the certificate has not expired before `today` ([`Sm2CertError::Expired`]);
/// 4. d) RID, CA index and serial number are not revoked ([`Sm2CertError::Revoked`]);
/// 5. e) the signature algorithm indicator is `04` ([`Sm2CertError::SignatureAlgorithm`]);
/// 6. f)-g) the signature over the 表1 data verifies with the CA key (§8.2.3;
///    [`Sm2CertError::SignatureOutOfRange`], [`Sm2CertError::SignatureMismatch`]);
/// 7. the key is taken out (§5.1.2, first paragraph): encryption indicator `00` or `04`, curve
///    `11`, 64 bytes, a point of the curve ([`Sm2CertError::EncryptionAlgorithm`],
///    [`Sm2CertError::CurveParameter`], [`Sm2CertError::PublicKeyLength`],
///    [`Sm2CertError::PublicKeyNotOnCurve`]).
///
/// `pan` is the application PAN (tag `5A`).
pub fn verify_issuer_certificate(
    trust: &TrustStore,
    rid: [u8; 5],
    ca_index: u8,
    certificate: &[u8],
    pan: &[u8],
    today: YearMonth,
) -> Result<Certified<IssuerCertificate>, Sm2CertError> {
    let format = FORMAT_ISSUER_CERTIFICATE;
    let ca = trust.ca_key(rid, ca_index, today)?;
    let Signed {
        content: cert,
        signature,
    } = IssuerCertificate::parse(certificate)?;
    if !issuer_id_matches(&cert.issuer_id, pan) {
        return Err(Sm2CertError::IssuerIdMismatch {
            issuer_id: cert.issuer_id,
        });
    }
    check_expiry(format, cert.expiry, today)?;
    if trust.is_revoked(rid, ca_index, cert.serial) {
        return Err(Sm2CertError::Revoked {
            rid,
            ca_index,
            serial: cert.serial,
        });
    }
    check_signature_algorithm(format, cert.signature_algorithm)?;
    verify_signature(&ca.public_key, format, &cert.to_signed_data()?, &signature)?;
    let public_key = certified_key(
        format,
        cert.encryption_algorithm,
        cert.curve,
        &cert.public_key,
    )?;
    Ok(Certified {
        certificate: cert,
        public_key,
    })
}

/// Verify the signed static application data (tag `93`), JR/T 0025.17 §5.1.3:
///
/// 1. a) it parses as 表5 ([`Sm2CertError::Length`]);
/// 2. b) its format is `13` ([`Sm2CertError::Format`]);
/// 3. c) the static data to authenticate is assembled, the SDA tag list naming only `82`
///    ([`Sm2CertError::SdaTagList`], [`Sm2CertError::SdaTagListMalformed`],
///    [`Sm2CertError::AipMissing`]);
/// 4. d) the signature over the 表2 data verifies with the issuer key
///    ([`Sm2CertError::SignatureOutOfRange`], [`Sm2CertError::SignatureMismatch`]).
///
/// On success the terminal keeps the data authentication code in `9F45`.
pub fn verify_signed_static_data(
    issuer_key: &Sm2PublicKey,
    signed_static_data: &[u8],
    static_data: &StaticData<'_>,
) -> Result<SignedStaticData, Sm2CertError> {
    let format = FORMAT_SIGNED_STATIC_DATA;
    let Signed { content, signature } = SignedStaticData::parse(signed_static_data)?;
    let data = content.to_signed_data(&static_data.to_bytes()?);
    verify_signature(issuer_key, format, &data, &signature)?;
    Ok(content)
}

/// Verify an ICC certificate (tag `9F46`) and take out the ICC public key, JR/T 0025.17
/// §5.2.3, in the clause's order:
///
/// 1. a)-b) it parses as 表8 ([`Sm2CertError::Truncated`], [`Sm2CertError::Length`],
///    [`Sm2CertError::ExpiryDate`]) with format `14` ([`Sm2CertError::Format`]);
/// 2. c) its PAN is the application PAN `F`-padded ([`Sm2CertError::PanMismatch`]);
/// 3. d) it has not expired before `today` ([`Sm2CertError::Expired`]);
/// 4. e) the static data to authenticate is assembled, the SDA tag list naming only `82`
///    ([`Sm2CertError::SdaTagList`], [`Sm2CertError::SdaTagListMalformed`],
///    [`Sm2CertError::AipMissing`]);
/// 5. f) the signature algorithm indicator is `04` ([`Sm2CertError::SignatureAlgorithm`]);
/// 6. g) the signature over the 表6 data verifies with the issuer key
///    ([`Sm2CertError::SignatureOutOfRange`], [`Sm2CertError::SignatureMismatch`]);
/// 7. the key is taken out as for the issuer certificate.
pub fn verify_icc_certificate(
    issuer_key: &Sm2PublicKey,
    certificate: &[u8],
    pan: &[u8],
    static_data: &StaticData<'_>,
    today: YearMonth,
) -> Result<Certified<IccCertificate>, Sm2CertError> {
    let format = FORMAT_ICC_CERTIFICATE;
    let Signed {
        content: cert,
        signature,
    } = IccCertificate::parse(certificate)?;
    if pan.len() > cert.pan.len() || cert.pan != IccCertificate::pan_field(pan) {
        return Err(Sm2CertError::PanMismatch);
    }
    check_expiry(format, cert.expiry, today)?;
    let static_bytes = static_data.to_bytes()?;
    check_signature_algorithm(format, cert.signature_algorithm)?;
    verify_signature(
        issuer_key,
        format,
        &cert.to_signed_data(&static_bytes)?,
        &signature,
    )?;
    let public_key = certified_key(
        format,
        cert.encryption_algorithm,
        cert.curve,
        &cert.public_key,
    )?;
    Ok(Certified {
        certificate: cert,
        public_key,
    })
}

/// Verify the signed dynamic application data of standard DDA (tag `9F4B` from INTERNAL
/// AUTHENTICATE), JR/T 0025.17 §5.2.4.2:
///
/// 1. a) it parses as 表11 ([`Sm2CertError::Truncated`], [`Sm2CertError::Length`]);
/// 2. b) its format is `15` ([`Sm2CertError::Format`]);
/// 3. c)-d) the signature over the 表9 data — the object's first three fields and
///    `terminal_dynamic_data`, the data the DDOL named as sent in the command — verifies with
///    the ICC key ([`Sm2CertError::SignatureOutOfRange`], [`Sm2CertError::SignatureMismatch`]).
///
/// The terminal then keeps [`SignedDynamicData::icc_dynamic_number`] in `9F4C`.
pub fn verify_dynamic_signature(
    icc_key: &Sm2PublicKey,
    signed_dynamic_data: &[u8],
    terminal_dynamic_data: &[u8],
) -> Result<SignedDynamicData, Sm2CertError> {
    let Signed { content, signature } = SignedDynamicData::parse(signed_dynamic_data)?;
    verify_signature(
        icc_key,
        FORMAT_SIGNED_DYNAMIC_DATA,
        &content.to_signed_data(terminal_dynamic_data)?,
        &signature,
    )?;
    Ok(content)
}

/// The fDDA version (JR/T 0025.12 附录 B; the first byte of `9F69`, 附录 C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FddaVersion {
    /// Version `00`: the card signs the terminal's unpredictable number only (the card returns
    /// no `9F69`).
    V00,
    /// Version `01`: the card also signs amount, currency and its card authentication related
    /// data `9F69`.
    V01,
}

impl FddaVersion {
    /// The version the card used, from its card authentication related data (`9F69`, absent
    /// for version `00`) (JR/T 0025.12 附录 B.2).
    pub fn from_card_data(
        card_authentication_related_data: Option<&[u8]>,
    ) -> Result<Self, Sm2CertError> {
        match card_authentication_related_data {
            None => Ok(Self::V00),
            Some(data) => match data.first() {
                None => Err(Sm2CertError::CardAuthenticationDataEmpty),
                Some(0x00) => Ok(Self::V00),
                Some(0x01) => Ok(Self::V01),
                Some(&other) => Err(Sm2CertError::FddaVersion(other)),
            },
        }
    }

    /// The version byte.
    pub fn code(self) -> u8 {
        match self {
            Self::V00 => 0x00,
            Self::V01 => 0x01,
        }
    }
}

/// The terminal dynamic data of fDDA: instead of a DDOL, the elements of JR/T 0025.12 表 B.1,
/// as the terminal sent them in GET PROCESSING OPTIONS, and the card's `9F69`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FddaTerminalData<'a> {
    /// Unpredictable number `9F37`.
    pub unpredictable_number: [u8; 4],
    /// Amount, authorised `9F02` (n12).
    pub amount_authorised: [u8; 6],
    /// Transaction currency code `5F2A` (n3, two bytes).
    pub transaction_currency_code: [u8; 2],
    /// Card authentication related data `9F69`, all of it as the card returned it, or `None`
    /// when the card returned none.
    pub card_authentication_related_data: Option<&'a [u8]>,
}

impl FddaTerminalData<'_> {
    /// The fDDA version the card used ([`FddaVersion::from_card_data`]).
    pub fn version(&self) -> Result<FddaVersion, Sm2CertError> {
        FddaVersion::from_card_data(self.card_authentication_related_data)
    }

    /// The terminal dynamic data of 表 B.1: `9F37` for version `00`;
    /// `9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69` for version `01`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Sm2CertError> {
        let mut out = self.unpredictable_number.to_vec();
        if self.version()? == FddaVersion::V01 {
            out.extend_from_slice(&self.amount_authorised);
            out.extend_from_slice(&self.transaction_currency_code);
            out.extend_from_slice(self.card_authentication_related_data.unwrap_or_default());
        }
        Ok(out)
    }
}

/// Verify the signed dynamic application data of qPBOC fast DDA (tag `9F4B` from GET
/// PROCESSING OPTIONS or a record), JR/T 0025.12 附录 B.2 on top of JR/T 0025.17 §5.2.4.2:
///
/// 1. the AIP announces DDA (byte 1 bit 6; [`Sm2CertError::AipNoDda`]);
/// 2. the card's fDDA version is `00` or `01` ([`Sm2CertError::FddaVersion`],
///    [`Sm2CertError::CardAuthenticationDataEmpty`]), and not `00` when `require_v01` is set
///    ([`Sm2CertError::FddaDowngrade`]);
/// 3. the signature verifies as in [`verify_dynamic_signature`], the terminal dynamic data
///    being that of 表 B.1 for the version ([`FddaTerminalData::to_bytes`]).
///
/// Set `require_v01` when the terminal announced version `01` (TTQ byte 4 bit 8) and the
/// card's application version `9F08` says it follows the 2013 edition of JR/T 0025.12. The
/// ICC dynamic data carries the ATC (表 B.2).
pub fn verify_fdda(
    icc_key: &Sm2PublicKey,
    signed_dynamic_data: &[u8],
    aip: [u8; 2],
    terminal: &FddaTerminalData<'_>,
    require_v01: bool,
) -> Result<SignedDynamicData, Sm2CertError> {
    let [aip1, _] = aip;
    if aip1 & AIP_DDA == 0 {
        return Err(Sm2CertError::AipNoDda { aip });
    }
    if terminal.version()? == FddaVersion::V00 && require_v01 {
        return Err(Sm2CertError::FddaDowngrade);
    }
    verify_dynamic_signature(icc_key, signed_dynamic_data, &terminal.to_bytes()?)
}

/// Verify the signed dynamic application data of CDA (tag `9F4B` in the GENERATE AC response),
/// JR/T 0025.17 §5.2.5.2:
///
/// 1. a) it parses as 表17 ([`Sm2CertError::Truncated`], [`Sm2CertError::Length`]);
/// 2. b) its format is `15` ([`Sm2CertError::Format`]);
/// 3. c) the ICC dynamic data holds the fields of 表13 ([`Sm2CertError::DynamicNumber`],
///    [`Sm2CertError::CdaDynamicDataLength`]);
/// 4. d) its cryptogram information data is `cryptogram_information`, the `9F27` of the
///    response ([`Sm2CertError::CryptogramInformation`]);
/// 5. f)-j) SM3 over `transaction_data` (see [`transaction_data_hash`]) is the hash in the
///    ICC dynamic data ([`Sm2CertError::TransactionDataHash`]);
/// 6. e), k) the signature over the 表12 data (the first three fields and the terminal's
///    `unpredictable_number`) verifies with the ICC key
///    ([`Sm2CertError::SignatureOutOfRange`], [`Sm2CertError::SignatureMismatch`]).
///
/// On success the terminal keeps the dynamic number in `9F4C` and the cryptogram in `9F26`.
pub fn verify_cda(
    icc_key: &Sm2PublicKey,
    signed_dynamic_data: &[u8],
    unpredictable_number: [u8; 4],
    cryptogram_information: u8,
    transaction_data: &[&[u8]],
) -> Result<CdaDynamicData, Sm2CertError> {
    let Signed { content, signature } = SignedDynamicData::parse(signed_dynamic_data)?;
    let fields = CdaDynamicData::parse(&content.icc_dynamic_data)?;
    if fields.cryptogram_information != cryptogram_information {
        return Err(Sm2CertError::CryptogramInformation {
            response: cryptogram_information,
            signed: fields.cryptogram_information,
        });
    }
    let hash = transaction_data_hash(transaction_data);
    if !super::ct_eq(&hash, &fields.transaction_data_hash) {
        return Err(Sm2CertError::TransactionDataHash);
    }
    verify_signature(
        icc_key,
        FORMAT_SIGNED_DYNAMIC_DATA,
        &content.to_signed_data(&unpredictable_number)?,
        &signature,
    )?;
    Ok(fields)
}

/// The whole certificate path of DDA: the CA key from `trust` by `rid` and `ca_index`, the
/// issuer certificate (tag `90`, [`verify_issuer_certificate`]), then the ICC certificate (tag
/// `9F46`, [`verify_icc_certificate`]) over `static_data`. Returns the verified ICC public key,
/// ready for [`verify_dynamic_signature`], [`verify_fdda`] or [`verify_cda`].
#[expect(
    clippy::too_many_arguments,
    reason = "each argument is one data element the clause names; a struct would only rename them"
)]
pub fn verify_chain(
    trust: &TrustStore,
    rid: [u8; 5],
    ca_index: u8,
    issuer_certificate: &[u8],
    icc_certificate: &[u8],
    pan: &[u8],
    static_data: &StaticData<'_>,
    today: YearMonth,
) -> Result<Sm2PublicKey, Sm2CertError> {
    let issuer = verify_issuer_certificate(trust, rid, ca_index, issuer_certificate, pan, today)?;
    let icc = verify_icc_certificate(&issuer.public_key, icc_certificate, pan, static_data, today)?;
    Ok(icc.public_key)
}

/// The whole path of SDA: the issuer certificate as in [`verify_issuer_certificate`], then
/// the signed static application data (tag `93`) with [`verify_signed_static_data`].
#[expect(
    clippy::too_many_arguments,
    reason = "each argument is one data element the clause names; a struct would only rename them"
)]
pub fn verify_sda(
    trust: &TrustStore,
    rid: [u8; 5],
    ca_index: u8,
    issuer_certificate: &[u8],
    signed_static_data: &[u8],
    pan: &[u8],
    static_data: &StaticData<'_>,
    today: YearMonth,
) -> Result<SignedStaticData, Sm2CertError> {
    let issuer = verify_issuer_certificate(trust, rid, ca_index, issuer_certificate, pan, today)?;
    verify_signed_static_data(&issuer.public_key, signed_static_data, static_data)
}

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// The fields of 表4 / 表8 as read from the bytes.
struct CertFields<'a> {
    id: &'a [u8],
    expiry: ExpiryDate,
    serial: [u8; 3],
    signature_algorithm: u8,
    encryption_algorithm: u8,
    curve: u8,
    key: &'a [u8],
    signature: [u8; SIGNATURE_LEN],
}

impl<'a> CertFields<'a> {
    /// Length first (the key-length byte is the last fixed field), then the format byte, then
    /// the fields.
    fn parse(bytes: &'a [u8], format: u8, header_len: usize) -> Result<Self, Sm2CertError> {
        let id_len = header_len.saturating_sub(CERT_FIXED_LEN);
        let truncated = Sm2CertError::Truncated {
            format,
            found: bytes.len(),
        };
        let (header, rest) = bytes
            .split_at_checked(header_len)
            .ok_or(truncated.clone())?;
        let key_len = usize::from(*header.last().ok_or(truncated.clone())?);
        let expected = header_len + key_len + SIGNATURE_LEN;
        if bytes.len() != expected {
            return Err(Sm2CertError::Length {
                format,
                expected,
                found: bytes.len(),
            });
        }
        let (&found, fields) = header.split_first().ok_or(truncated.clone())?;
        check_format(format, found)?;
        let (id, fields) = fields.split_at_checked(id_len).ok_or(truncated.clone())?;
        let (&expiry, fields) = fields.split_first_chunk::<2>().ok_or(truncated.clone())?;
        let (&serial, fields) = fields.split_first_chunk::<3>().ok_or(truncated.clone())?;
        let &[signature_algorithm, encryption_algorithm, curve, _] =
            fields.first_chunk::<4>().ok_or(truncated)?;
        let expiry = ExpiryDate::from_bcd(expiry).map_err(|_| Sm2CertError::ExpiryDate(expiry))?;
        let (key, signature) = rest.split_at_checked(key_len).ok_or(Sm2CertError::Length {
            format,
            expected,
            found: bytes.len(),
        })?;
        Ok(Self {
            id,
            expiry,
            serial,
            signature_algorithm,
            encryption_algorithm,
            curve,
            key,
            signature: signature_array(signature, format)?,
        })
    }
}

/// 表1 / 表6 without the static data: format, identifier, expiry, serial, the three
/// indicators, key length and key.
fn encode_cert_fields(
    format: u8,
    id: &[u8],
    expiry: ExpiryDate,
    serial: [u8; 3],
    indicators: [u8; 3],
    key: &[u8],
) -> Result<Vec<u8>, Sm2CertError> {
    let key_len = u8::try_from(key.len()).map_err(|_| Sm2CertError::PublicKeyTooLong(key.len()))?;
    let mut out = Vec::with_capacity(1 + id.len() + 9 + key.len() + SIGNATURE_LEN);
    out.push(format);
    out.extend_from_slice(id);
    out.extend_from_slice(&expiry.to_bcd());
    out.extend_from_slice(&serial);
    out.extend_from_slice(&indicators);
    out.push(key_len);
    out.extend_from_slice(key);
    Ok(out)
}

fn signature_array(bytes: &[u8], format: u8) -> Result<[u8; SIGNATURE_LEN], Sm2CertError> {
    bytes.try_into().map_err(|_| Sm2CertError::Length {
        format,
        expected: SIGNATURE_LEN,
        found: bytes.len(),
    })
}

fn check_format(expected: u8, found: u8) -> Result<(), Sm2CertError> {
    if found == expected {
        Ok(())
    } else {
        Err(Sm2CertError::Format { expected, found })
    }
}

fn check_expiry(format: u8, expiry: ExpiryDate, today: YearMonth) -> Result<(), Sm2CertError> {
    if expiry.is_expired(today) {
        let YearMonth { year, month } = expiry.month();
        return Err(Sm2CertError::Expired {
            format,
            year,
            month,
        });
    }
    Ok(())
}

fn check_signature_algorithm(format: u8, found: u8) -> Result<(), Sm2CertError> {
    if found == SIGNATURE_ALGORITHM_SM2 {
        Ok(())
    } else {
        Err(Sm2CertError::SignatureAlgorithm { format, found })
    }
}

/// JR/T 0025.17 §8.2.3 with the fixed identifier.
fn verify_signature(
    key: &Sm2PublicKey,
    format: u8,
    data: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), Sm2CertError> {
    let signature = Sm2Signature::from_bytes(signature)
        .map_err(|_| Sm2CertError::SignatureOutOfRange { format })?;
    key.verify(DEFAULT_ID, data, &signature)
        .map_err(|_| Sm2CertError::SignatureMismatch { format })
}

/// JR/T 0025.17 §8.2.2 with the fixed identifier; `r ‖ s`.
fn sign(key: &Sm2PrivateKey, data: &[u8]) -> Result<[u8; SIGNATURE_LEN], Sm2CertError> {
    key.sign(DEFAULT_ID, data)
        .map(|s| s.to_bytes())
        .map_err(Sm2CertError::Signing)
}

/// The certified key from the last four fields of 表4 / 表8 (附录 A 表 A.2, 表 A.5).
fn certified_key(
    format: u8,
    encryption_algorithm: u8,
    curve: u8,
    key: &[u8],
) -> Result<Sm2PublicKey, Sm2CertError> {
    if !matches!(
        encryption_algorithm,
        ENCRYPTION_ALGORITHM_NONE | ENCRYPTION_ALGORITHM_SM2
    ) {
        return Err(Sm2CertError::EncryptionAlgorithm {
            format,
            found: encryption_algorithm,
        });
    }
    if curve != CURVE_SM2 {
        return Err(Sm2CertError::CurveParameter {
            format,
            found: curve,
        });
    }
    if key.len() != PUBLIC_KEY_LEN {
        return Err(Sm2CertError::PublicKeyLength {
            format,
            expected: PUBLIC_KEY_LEN,
            found: key.len(),
        });
    }
    Sm2PublicKey::from_xy(key).map_err(|_| Sm2CertError::PublicKeyNotOnCurve { format })
}

/// The ICC dynamic number (length byte 2 to 8, then the number) and what follows it.
fn dynamic_number(data: &[u8]) -> Result<(&[u8], &[u8]), Sm2CertError> {
    let (&length, rest) = data
        .split_first()
        .ok_or(Sm2CertError::DynamicNumber { length: 0 })?;
    if !(2..=8).contains(&length) {
        return Err(Sm2CertError::DynamicNumber { length });
    }
    rest.split_at_checked(usize::from(length))
        .ok_or(Sm2CertError::DynamicNumber { length })
}

/// Whether the `F`-padded issuer identifier (3 to 8 digits) is the start of the PAN.
fn issuer_id_matches(issuer_id: &[u8; 4], pan: &[u8]) -> bool {
    let id_digits: Vec<u8> = nibbles(issuer_id).take_while(|d| *d != 0x0f).collect();
    let pan_digits: Vec<u8> = nibbles(pan).take_while(|d| *d != 0x0f).collect();
    (3..=8).contains(&id_digits.len())
        && id_digits.iter().all(|d| *d <= 9)
        && nibbles(issuer_id).skip(id_digits.len()).all(|d| d == 0x0f)
        && pan_digits.starts_with(&id_digits)
}

fn nibbles(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes.iter().flat_map(|b| [b >> 4, b & 0x0f])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_identifier_rule() {
        let pan = [0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x90];
        assert!(issuer_id_matches(&[0x62, 0x28, 0x48, 0xff], &pan));
        assert!(issuer_id_matches(&[0x62, 0x2f, 0xff, 0xff], &pan));
        assert!(issuer_id_matches(&[0x62, 0x28, 0x48, 0x04], &pan));
        assert!(!issuer_id_matches(&[0x62, 0xff, 0xff, 0xff], &pan)); // 2 digits
        assert!(!issuer_id_matches(&[0x62, 0x29, 0xff, 0xff], &pan));
        assert!(!issuer_id_matches(&[0x62, 0x2f, 0x1f, 0xff], &pan)); // digit after F
        assert!(!issuer_id_matches(&[0x62, 0x2a, 0xff, 0xff], &pan)); // not a digit
    }

    #[test]
    fn tag_lists() {
        assert_eq!(read_tag(&[0x82]), Some((Tag::new(0x82), 1)));
        assert_eq!(read_tag(&[0x9f, 0x4a, 0x82]), Some((Tag::new(0x9f4a), 2)));
        assert_eq!(read_tag(&[0xdf, 0x81, 0x01]), Some((Tag::new(0xdf8101), 3)));
        assert_eq!(read_tag(&[0xdf, 0x81, 0x81, 0x01]), None);
        assert_eq!(read_tag(&[0x9f]), None);
        assert_eq!(read_tag(&[]), None);

        let aip = Some([0x7c, 0x00]);
        let data = |list: &'static [u8]| StaticData {
            records: b"R",
            sda_tag_list: Some(list),
            aip,
        };
        assert_eq!(data(&[]).to_bytes().unwrap(), b"R");
        assert_eq!(data(&[0x82]).to_bytes().unwrap(), b"R\x7c\x00");
        assert_eq!(
            data(&[0x82, 0x9f, 0x36]).to_bytes(),
            Err(Sm2CertError::SdaTagList {
                found: Tag::new(0x9f36)
            })
        );
        assert_eq!(
            data(&[0x82, 0x9f]).to_bytes(),
            Err(Sm2CertError::SdaTagListMalformed { offset: 1 })
        );
        let no_aip = StaticData {
            aip: None,
            ..data(&[0x82])
        };
        assert_eq!(no_aip.to_bytes(), Err(Sm2CertError::AipMissing));
    }

    #[test]
    fn dynamic_numbers() {
        let d = SignedDynamicData::with_dynamic_number(&[0x00, 0x2a]).unwrap();
        assert_eq!(d.icc_dynamic_data, [0x02, 0x00, 0x2a]);
        assert_eq!(d.icc_dynamic_number().unwrap(), [0x00, 0x2a]);
        assert_eq!(
            SignedDynamicData::with_dynamic_number(&[1]),
            Err(Sm2CertError::DynamicNumber { length: 1 })
        );
        assert_eq!(
            SignedDynamicData::with_dynamic_number(&[1; 9]),
            Err(Sm2CertError::DynamicNumber { length: 9 })
        );
        let short = SignedDynamicData {
            icc_dynamic_data: vec![0x04, 1, 2],
        };
        assert_eq!(
            short.icc_dynamic_number(),
            Err(Sm2CertError::DynamicNumber { length: 4 })
        );
    }
}
