//! Offline data authentication (JR/T 0025.6 §7.5): the choice of method (§7.5.3.3: CDA, then
//! DDA, then SDA), SDA (§7.5.4), DDA (§7.5.5), CDA (§7.5.6) and qPBOC's fDDA (JR/T 0025.12
//! 附录 B), each with SM2 (JR/T 0025.17 §5, through [`crate::crypto::sm2_cert`]) or RSA
//! (JR/T 0025.7 §5-§6, through [`crate::crypto::rsa`]).
//!
//! Which algorithm a card uses is decided by the CA public key its index `8F` names under the
//! AID's RID (JR/T 0025.17 §10.3.1 d): "终端根据公钥索引检查算法类型"): the [`CaStore`] holds SM2
//! keys (the [`sm2_cert::TrustStore`]) and RSA keys, keyed by RID and index, and one revocation
//! list for both.
//!
//! Every check returns an [`OdaError`]; the flow turns a failure into the TVR bit of the
//! method (and "ICC data missing" when data was missing) and carries on (§7.5.4.3 step 4,
//! §7.5.5.4 step 6): ODA failures never abort a transaction.

use sha1::Digest as _;

use crate::crypto::rsa::{
    self, CaPublicKey, CertificateChecks, RevokedCertificate, RsaError, RsaPublicKey,
    verify_with_recovery,
};
use crate::crypto::sm2::Sm2PublicKey;
use crate::crypto::sm2_cert::{
    self, CaKey, FddaTerminalData, Sm2CertError, StaticData, TrustStore, YearMonth,
};
use crate::tlv::Tag;

use super::bits::{Aip, AipBit, CapabilityBit, TerminalCapabilities};
use super::store::DataStore;

/// The offline data authentication methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OdaMethod {
    /// Static data authentication.
    Sda,
    /// Dynamic data authentication (INTERNAL AUTHENTICATE).
    Dda,
    /// Combined DDA / application cryptogram generation.
    Cda,
    /// qPBOC fast DDA (signature in the GPO answer).
    Fdda,
}

/// The public-key algorithm of a card's offline data authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OdaAlgorithm {
    /// SM2/SM3 (JR/T 0025.17 §5).
    Sm2,
    /// RSA/SHA-1 (JR/T 0025.7 §5).
    Rsa,
}

/// The terminal's certification authority public keys: SM2 keys in the
/// [`sm2_cert::TrustStore`] (which also holds the revocation list) and RSA keys, each located
/// by RID and CA public key index (JR/T 0025.6 §7.5.1.2; JR/T 0025.7 §5.2.2).
#[derive(Debug, Clone, Default)]
pub struct CaStore {
    sm2: TrustStore,
    rsa: Vec<CaPublicKey>,
}

impl CaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) an SM2 CA key.
    pub fn add_sm2(&mut self, key: CaKey) {
        self.sm2.insert(key);
    }

    /// Add (or replace) an RSA CA key.
    pub fn add_rsa(&mut self, key: CaPublicKey) {
        self.rsa
            .retain(|k| !(k.rid == key.rid && k.index == key.index));
        self.rsa.push(key);
    }

    /// Revoke an issuer certificate (both algorithms).
    pub fn revoke(&mut self, entry: RevokedCertificate) {
        self.sm2.revoke(entry);
    }

    /// The SM2 trust store.
    pub fn sm2(&self) -> &TrustStore {
        &self.sm2
    }

    /// The RSA CA key of this RID and index.
    pub fn rsa(&self, rid: [u8; 5], index: u8) -> Option<&CaPublicKey> {
        self.rsa.iter().find(|k| k.rid == rid && k.index == index)
    }

    /// The algorithm of the CA key of this RID and index, if the store has one.
    pub fn algorithm(&self, rid: [u8; 5], index: u8) -> Option<OdaAlgorithm> {
        if self.sm2.get(rid, index).is_some() {
            Some(OdaAlgorithm::Sm2)
        } else if self.rsa(rid, index).is_some() {
            Some(OdaAlgorithm::Rsa)
        } else {
            None
        }
    }
}

/// Why offline data authentication failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OdaError {
    /// A data object the method needs is missing (TVR "ICC data missing").
    #[error("data object {tag} needed for offline data authentication is missing")]
    MissingData {
        /// The tag.
        tag: Tag,
    },
    /// The terminal has no CA key for the card's RID and index (JR/T 0025.7 §5.2.2).
    #[error("no CA public key for RID {rid:02X?} index {index:02X}")]
    UnknownCaKey {
        /// The RID.
        rid: [u8; 5],
        /// The CA public key index.
        index: u8,
    },
    /// An SM2 check failed.
    #[error(transparent)]
    Sm2(#[from] Sm2CertError),
    /// An RSA recovery or certificate check failed.
    #[error(transparent)]
    Rsa(#[from] RsaError),
    /// The recovered signed data has another format (JR/T 0025.7 §5.2.4 4), §5.3.5.2 4)).
    #[error("signed data format {found:02X} where {expected:02X} is expected")]
    SignedDataFormat {
        /// Format required.
        expected: u8,
        /// Format found.
        found: u8,
    },
    /// A hash algorithm indicator other than SHA-1.
    #[error("unknown hash algorithm indicator {0:02X}")]
    HashAlgorithm(u8),
    /// The DDOL does not ask for the unpredictable number (JR/T 0025.7 §5.3.5.1 1)).
    #[error("the DDOL does not contain the unpredictable number 9F37")]
    DdolWithoutUnpredictableNumber,
    /// The recovered ICC dynamic data is shorter than its length byte or its fields.
    #[error("the ICC dynamic data is malformed")]
    DynamicData,
    /// The CID signed in CDA differs from the GENERATE AC response (JR/T 0025.7 §5.3.6.2 6)).
    #[error("CID {signed:02X} in the signature, {response:02X} in the response")]
    CryptogramInformation {
        /// `9F27` of the response.
        response: u8,
        /// CID in the signed data.
        signed: u8,
    },
    /// The CDA transaction data hash does not match (JR/T 0025.7 §5.3.6.2 12)).
    #[error("the CDA transaction data hash does not match")]
    TransactionDataHash,
    /// The AIP does not announce DDA, which fDDA needs (JR/T 0025.12 附录 B.2).
    #[error("the AIP does not announce DDA")]
    AipNoDda,
    /// The card's fDDA version is not `00` or `01`.
    #[error("fDDA version {0:02X} is not supported")]
    FddaVersion(u8),
    /// The card signed version `00` where `01` is required (JR/T 0025.12 附录 B.2).
    #[error("the card answered with fDDA version 00 where version 01 is required")]
    FddaDowngrade,
}

impl OdaError {
    /// Whether the failure is missing data (TVR "ICC data missing", JR/T 0025.6 图8, 图9).
    pub fn is_missing_data(&self) -> bool {
        matches!(self, Self::MissingData { .. })
    }
}

/// The method to use (JR/T 0025.6 §7.5.3.3): CDA if card and terminal support it, else DDA,
/// else SDA; `None` when there is none in common (TVR "ODA not performed").
pub fn choose_method(aip: Aip, caps: TerminalCapabilities) -> Option<OdaMethod> {
    if aip.contains(AipBit::Cda) && caps.contains(CapabilityBit::Cda) {
        Some(OdaMethod::Cda)
    } else if aip.contains(AipBit::Dda) && caps.contains(CapabilityBit::Dda) {
        Some(OdaMethod::Dda)
    } else if aip.contains(AipBit::Sda) && caps.contains(CapabilityBit::Sda) {
        Some(OdaMethod::Sda)
    } else {
        None
    }
}

/// The card data offline data authentication reads.
#[derive(Debug, Clone, Copy)]
pub struct OdaInputs<'a> {
    /// The card's data store (records, GPO answer).
    pub card: &'a DataStore,
    /// The RID (first five bytes of the AID).
    pub rid: [u8; 5],
    /// The PAN as tag `5A` holds it.
    pub pan: &'a [u8],
    /// The records marked for ODA ([`super::records::RecordsRead::static_data`]).
    pub records: &'a [u8],
    /// The AIP.
    pub aip: Aip,
    /// The month of the transaction date.
    pub today: YearMonth,
}

impl OdaInputs<'_> {
    fn need(&self, tag: u32) -> Result<&[u8], OdaError> {
        self.card
            .value(tag)
            .ok_or(OdaError::MissingData { tag: Tag::new(tag) })
    }

    fn ca_index(&self) -> Result<u8, OdaError> {
        match self.need(0x8f)? {
            &[index] => Ok(index),
            _ => Err(OdaError::MissingData {
                tag: Tag::new(0x8f),
            }),
        }
    }

    fn static_data(&self) -> StaticData<'_> {
        StaticData {
            records: self.records,
            sda_tag_list: self.card.value(0x9f4a),
            aip: Some(self.aip.to_bytes()),
        }
    }
}

/// An ICC public key recovered and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IccPublicKey {
    /// An SM2 key.
    Sm2(Sm2PublicKey),
    /// An RSA key.
    Rsa(RsaPublicKey),
}

fn revoked(ca: &CaStore) -> &[RevokedCertificate] {
    ca.sm2.revoked()
}

fn rsa_issuer_key(ca: &CaStore, input: &OdaInputs<'_>) -> Result<RsaPublicKey, OdaError> {
    let index = input.ca_index()?;
    let cert = input.need(0x90)?;
    let exponent = input.need(0x9f32)?;
    let key = ca.rsa(input.rid, index).ok_or(OdaError::UnknownCaKey {
        rid: input.rid,
        index,
    })?;
    let checks = CertificateChecks {
        pan: input.pan,
        today: input.today,
        revoked: revoked(ca),
    };
    let remainder = input.card.value(0x92).unwrap_or_default();
    Ok(rsa::recover_issuer_key(key, cert, remainder, exponent, &checks)?.public_key)
}

fn sm2_issuer_key(ca: &CaStore, input: &OdaInputs<'_>) -> Result<Sm2PublicKey, OdaError> {
    let index = input.ca_index()?;
    let cert = input.need(0x90)?;
    Ok(sm2_cert::verify_issuer_certificate(
        &ca.sm2,
        input.rid,
        index,
        cert,
        input.pan,
        input.today,
    )?
    .public_key)
}

fn algorithm(ca: &CaStore, input: &OdaInputs<'_>) -> Result<OdaAlgorithm, OdaError> {
    let index = input.ca_index()?;
    ca.algorithm(input.rid, index)
        .ok_or(OdaError::UnknownCaKey {
            rid: input.rid,
            index,
        })
}

/// SDA (JR/T 0025.6 §7.5.4.3; JR/T 0025.7 §5.2, JR/T 0025.17 §5.1): the issuer key from its
/// certificate, then the signed static application data `93` over the static data. Returns
/// the data authentication code (kept in `9F45`).
pub fn perform_sda(ca: &CaStore, input: &OdaInputs<'_>) -> Result<[u8; 2], OdaError> {
    match algorithm(ca, input)? {
        OdaAlgorithm::Sm2 => {
            let issuer = sm2_issuer_key(ca, input)?;
            let signed = input.need(0x93)?;
            Ok(
                sm2_cert::verify_signed_static_data(&issuer, signed, &input.static_data())?
                    .data_authentication_code,
            )
        }
        OdaAlgorithm::Rsa => {
            let issuer = rsa_issuer_key(ca, input)?;
            let signed = input.need(0x93)?;
            let static_data = input.static_data().to_bytes()?;
            let recovered = verify_with_recovery(&issuer, signed, &static_data)?;
            match recovered.msg1.as_slice() {
                [0x03, 0x01, c0, c1, ..] => Ok([*c0, *c1]),
                [0x03, alg, ..] => Err(OdaError::HashAlgorithm(*alg)),
                [found, ..] => Err(OdaError::SignedDataFormat {
                    expected: 0x03,
                    found: *found,
                }),
                [] => Err(OdaError::DynamicData),
            }
        }
    }
}

/// The ICC public key for DDA, CDA and fDDA (JR/T 0025.6 §7.5.5.4 steps 1-3; JR/T 0025.7
/// §5.3.2-§5.3.4, JR/T 0025.17 §5.2.2-§5.2.3): CA key, issuer certificate, ICC certificate
/// over the static data.
pub fn recover_icc_key(ca: &CaStore, input: &OdaInputs<'_>) -> Result<IccPublicKey, OdaError> {
    match algorithm(ca, input)? {
        OdaAlgorithm::Sm2 => {
            let issuer = sm2_issuer_key(ca, input)?;
            let cert = input.need(0x9f46)?;
            Ok(IccPublicKey::Sm2(
                sm2_cert::verify_icc_certificate(
                    &issuer,
                    cert,
                    input.pan,
                    &input.static_data(),
                    input.today,
                )?
                .public_key,
            ))
        }
        OdaAlgorithm::Rsa => {
            let issuer = rsa_issuer_key(ca, input)?;
            let cert = input.need(0x9f46)?;
            let exponent = input.need(0x9f47)?;
            let remainder = input.card.value(0x9f48).unwrap_or_default();
            let static_data = input.static_data().to_bytes()?;
            let checks = CertificateChecks {
                pan: input.pan,
                today: input.today,
                revoked: revoked(ca),
            };
            Ok(IccPublicKey::Rsa(
                rsa::recover_icc_key(&issuer, cert, remainder, exponent, &static_data, &checks)?
                    .public_key,
            ))
        }
    }
}

/// The ICC dynamic data inside recovered RSA signed dynamic data (JR/T 0025.7 表15):
/// format `05`, hash `01`, `LDD`, the data.
fn rsa_dynamic_data(msg1: &[u8]) -> Result<&[u8], OdaError> {
    match msg1 {
        [0x05, 0x01, ldd, rest @ ..] => rest.get(..usize::from(*ldd)).ok_or(OdaError::DynamicData),
        [0x05, alg, ..] => Err(OdaError::HashAlgorithm(*alg)),
        [found, ..] => Err(OdaError::SignedDataFormat {
            expected: 0x05,
            found: *found,
        }),
        [] => Err(OdaError::DynamicData),
    }
}

/// The ICC dynamic number at the start of ICC dynamic data (length byte 2-8, then the number).
fn dynamic_number(data: &[u8]) -> Result<(&[u8], &[u8]), OdaError> {
    let (&len, rest) = data.split_first().ok_or(OdaError::DynamicData)?;
    if !(2..=8).contains(&len) {
        return Err(OdaError::DynamicData);
    }
    rest.split_at_checked(usize::from(len))
        .ok_or(OdaError::DynamicData)
}

/// Verify the signed dynamic application data of standard DDA (JR/T 0025.6 §7.5.5.4 step 5;
/// JR/T 0025.7 §5.3.5.2, JR/T 0025.17 §5.2.4.2) over `ddol_data`, the data sent in INTERNAL
/// AUTHENTICATE. Returns the ICC dynamic number (kept in `9F4C`).
pub fn verify_dda(key: &IccPublicKey, sdad: &[u8], ddol_data: &[u8]) -> Result<Vec<u8>, OdaError> {
    match key {
        IccPublicKey::Sm2(k) => {
            let d = sm2_cert::verify_dynamic_signature(k, sdad, ddol_data)?;
            Ok(d.icc_dynamic_number()?.to_vec())
        }
        IccPublicKey::Rsa(k) => {
            let recovered = verify_with_recovery(k, sdad, ddol_data)?;
            let data = rsa_dynamic_data(&recovered.msg1)?;
            Ok(dynamic_number(data)?.0.to_vec())
        }
    }
}

/// What a successful DDA leaves: the signed dynamic application data (`9F4B`) and the ICC
/// dynamic number it carries (`9F4C`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdaProof {
    /// The signed dynamic application data.
    pub sdad: Vec<u8>,
    /// The ICC dynamic number.
    pub icc_dynamic_number: Vec<u8>,
}

/// DDA steps 4-5 (JR/T 0025.6 §7.5.5.4): INTERNAL AUTHENTICATE with `ddol_data` (the DDOL
/// filled in, the unpredictable number among it), the answer in format 1 (`80`) or format 2
/// (`77` with `9F4B`), and its signature verified with the ICC key. The outer error is the
/// exchange's; the inner one says why the card did not authenticate (a refusal or a missing
/// `9F4B` counts as ICC data missing).
pub fn internal_authenticate<C: crate::channel::CardChannel>(
    s: &mut crate::channel::CardSession<C>,
    key: &IccPublicKey,
    ddol_data: &[u8],
) -> Result<Result<DdaProof, OdaError>, super::PbocError> {
    let cmd = crate::apdu::Command::new(0x00, 0x88, 0x00, 0x00)
        .with_data(ddol_data.to_vec())
        .expect_data();
    let r = s.send(&cmd)?;
    let missing = OdaError::MissingData {
        tag: Tag::new(0x9f4b),
    };
    if !r.is_success() {
        return Ok(Err(missing));
    }
    let sdad = match crate::tlv::TlvIter::new(r.data()).next() {
        Some(Ok(t)) if t.tag.value() == 0x80 => t.value.to_vec(),
        Some(Ok(t)) if t.tag.value() == 0x77 => match t.children().find(Tag::new(0x9f4b)) {
            Ok(Some(x)) => x.value.to_vec(),
            _ => return Ok(Err(missing)),
        },
        _ => return Ok(Err(missing)),
    };
    Ok(
        verify_dda(key, &sdad, ddol_data).map(|icc_dynamic_number| DdaProof {
            sdad,
            icc_dynamic_number,
        }),
    )
}

/// Verify qPBOC fDDA (JR/T 0025.12 附录 B.2): the AIP announces DDA, the card's version (from
/// `9F69`) is `00` or `01` and not `00` when `require_v01`, and the signature covers the
/// terminal dynamic data of 表 B.1. Returns the ICC dynamic number (the ATC, 表 B.2).
pub fn verify_fdda(
    key: &IccPublicKey,
    sdad: &[u8],
    aip: Aip,
    terminal: &FddaTerminalData<'_>,
    require_v01: bool,
) -> Result<Vec<u8>, OdaError> {
    match key {
        IccPublicKey::Sm2(k) => {
            let d = sm2_cert::verify_fdda(k, sdad, aip.to_bytes(), terminal, require_v01)?;
            Ok(d.icc_dynamic_number()?.to_vec())
        }
        IccPublicKey::Rsa(k) => {
            if !aip.contains(AipBit::Dda) {
                return Err(OdaError::AipNoDda);
            }
            let version = terminal.version().map_err(|e| match e {
                Sm2CertError::FddaVersion(v) => OdaError::FddaVersion(v),
                other => OdaError::Sm2(other),
            })?;
            if version == sm2_cert::FddaVersion::V00 && require_v01 {
                return Err(OdaError::FddaDowngrade);
            }
            let recovered = verify_with_recovery(k, sdad, &terminal.to_bytes()?)?;
            let data = rsa_dynamic_data(&recovered.msg1)?;
            Ok(dynamic_number(data)?.0.to_vec())
        }
    }
}

/// What a verified CDA signature carries (JR/T 0025.7 表17, JR/T 0025.17 表13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdaResult {
    /// The ICC dynamic number (kept in `9F4C`).
    pub dynamic_number: Vec<u8>,
    /// The TC or ARQC (kept in `9F26`).
    pub cryptogram: [u8; 8],
}

/// Verify a CDA signature (JR/T 0025.7 §5.3.6.2 steps 1-12, JR/T 0025.17 §5.2.5.2 a)-k)):
/// `cid` is the response's `9F27`, `transaction_data` the PDOL data, CDOL1 data, (CDOL2 data,)
/// and the response's data objects without `9F4B`, in order.
pub fn verify_cda(
    key: &IccPublicKey,
    sdad: &[u8],
    unpredictable_number: [u8; 4],
    cid: u8,
    transaction_data: &[&[u8]],
) -> Result<CdaResult, OdaError> {
    match key {
        IccPublicKey::Sm2(k) => {
            let d = sm2_cert::verify_cda(k, sdad, unpredictable_number, cid, transaction_data)?;
            Ok(CdaResult {
                dynamic_number: d.dynamic_number,
                cryptogram: d.cryptogram,
            })
        }
        IccPublicKey::Rsa(k) => {
            let recovered = verify_with_recovery(k, sdad, &unpredictable_number)?;
            let data = rsa_dynamic_data(&recovered.msg1)?;
            let (number, rest) = dynamic_number(data)?;
            let (&signed_cid, rest) = rest.split_first().ok_or(OdaError::DynamicData)?;
            let (cryptogram, rest) = rest.split_first_chunk::<8>().ok_or(OdaError::DynamicData)?;
            let (hash, _) = rest
                .split_first_chunk::<20>()
                .ok_or(OdaError::DynamicData)?;
            if signed_cid != cid {
                return Err(OdaError::CryptogramInformation {
                    response: cid,
                    signed: signed_cid,
                });
            }
            let mut h = sha1::Sha1::new();
            for part in transaction_data {
                h.update(part);
            }
            let computed: [u8; 20] = h.finalize().into();
            if computed != *hash {
                return Err(OdaError::TransactionDataHash);
            }
            Ok(CdaResult {
                dynamic_number: number.to_vec(),
                cryptogram: *cryptogram,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_priority() {
        let caps = TerminalCapabilities::from_bytes([0x20, 0x88, 0xc8]);
        assert_eq!(
            choose_method(Aip::from_bytes([0x7d, 0]), caps),
            Some(OdaMethod::Cda)
        );
        assert_eq!(
            choose_method(Aip::from_bytes([0x7c, 0]), caps),
            Some(OdaMethod::Dda)
        );
        assert_eq!(
            choose_method(Aip::from_bytes([0x5c, 0]), caps),
            Some(OdaMethod::Sda)
        );
        assert_eq!(choose_method(Aip::from_bytes([0x1c, 0]), caps), None);
        let sda_only = TerminalCapabilities::from_bytes([0x20, 0x88, 0x80]);
        assert_eq!(
            choose_method(Aip::from_bytes([0x7d, 0]), sda_only),
            Some(OdaMethod::Sda)
        );
    }

    #[test]
    fn missing_data_is_reported() {
        let store = DataStore::new();
        let input = OdaInputs {
            card: &store,
            rid: [0xa0, 0, 0, 3, 0x33],
            pan: &[0x62],
            records: &[],
            aip: Aip::from_bytes([0x7c, 0]),
            today: YearMonth {
                year: 2026,
                month: 11,
            },
        };
        let err = perform_sda(&CaStore::new(), &input).unwrap_err();
        assert!(err.is_missing_data());
        let mut store = DataStore::new();
        store.set(0x8f, [0x80]);
        let input = OdaInputs {
            card: &store,
            ..input
        };
        assert_eq!(
            recover_icc_key(&CaStore::new(), &input),
            Err(OdaError::UnknownCaKey {
                rid: [0xa0, 0, 0, 3, 0x33],
                index: 0x80
            })
        );
    }

    #[test]
    fn dynamic_data_layout() {
        assert_eq!(
            rsa_dynamic_data(&[0x05, 0x01, 0x03, 0x02, 0x00, 0x07, 0xbb]).unwrap(),
            [0x02, 0x00, 0x07]
        );
        assert_eq!(
            rsa_dynamic_data(&[0x05, 0x01, 0x09, 0x02]),
            Err(OdaError::DynamicData)
        );
        assert_eq!(
            rsa_dynamic_data(&[0x03, 0x01]),
            Err(OdaError::SignedDataFormat {
                expected: 5,
                found: 3
            })
        );
        assert_eq!(
            rsa_dynamic_data(&[0x05, 0x02]),
            Err(OdaError::HashAlgorithm(2))
        );
        assert_eq!(dynamic_number(&[1, 2]), Err(OdaError::DynamicData));
    }
}
