//! Offline data authentication, card side: the signed dynamic application data of DDA
//! (INTERNAL AUTHENTICATE), fDDA (qPBOC GPO) and CDA (GENERATE AC) with the ICC private key,
//! SM2 (JR/T 0025.17 §5.2) or RSA with message recovery and SHA-1 (JR/T 0025.7 §5.3, §11.2).
//!
//! For test issuance without an HSM it also makes the certificates: issuer and ICC public-key
//! certificates in the SM2 formats `12`/`14` (through `card_core::crypto::sm2_cert`) and the
//! RSA formats `02`/`04` (JR/T 0025.7 §5.3.1 表8/表9, signed here with keys given as primes),
//! and SM2 key pairs from a seed.

use card_core::crypto::sm2::{Sm2Error, Sm2PrivateKey};
use card_core::crypto::sm2_cert::{self, CdaDynamicData, SignedDynamicData, Sm2CertError};
use card_core::crypto::sm3;
use rsa::BoxedUint;
use rsa::traits::PublicKeyParts as _;
use sha1::Digest as _;

use super::state::IccPrivateKey;

/// Format of RSA signed dynamic application data (JR/T 0025.7 §5.3.5.1 表13).
pub const RSA_DYNAMIC_FORMAT: u8 = 0x05;
/// Hash algorithm indicator of SHA-1 (JR/T 0025.7 附录 表A).
pub const HASH_SHA1: u8 = 0x01;
/// RSA public-key algorithm indicator.
pub const ALGORITHM_RSA: u8 = 0x01;

/// Errors of the card's signatures and of test issuance.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OdaError {
    /// The card has no ICC private key.
    #[error("the card has no ICC private key")]
    NoKey,
    /// An SM2 key or signature failed.
    #[error("SM2: {0}")]
    Sm2(#[from] Sm2Error),
    /// An SM2 object could not be built.
    #[error("SM2 certificate data: {0}")]
    Sm2Cert(#[from] Sm2CertError),
    /// The RSA key is not valid (primes, exponent).
    #[error("RSA key: {0}")]
    RsaKey(String),
    /// The data does not fit the RSA modulus.
    #[error("{0} bytes of data do not fit a {1}-byte RSA signature")]
    TooLong(usize, usize),
    /// The RSA private operation failed.
    #[error("the RSA private operation failed")]
    RsaOperation,
}

/// An RSA private key built from its primes, for signing with message recovery.
pub struct RsaKey {
    inner: rsa::PrivateKey,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl core::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RsaKey({} bits, <redacted>)", self.modulus.len() * 8)
    }
}

impl RsaKey {
    /// The key with primes `p`, `q` and public exponent `e` (big-endian bytes).
    pub fn from_primes(p: &[u8], q: &[u8], e: &[u8]) -> Result<Self, OdaError> {
        let inner = rsa::PrivateKey::from_p_q(
            BoxedUint::from_be_slice_vartime(p),
            BoxedUint::from_be_slice_vartime(q),
            BoxedUint::from_be_slice_vartime(e),
        )
        .map_err(|err| OdaError::RsaKey(err.to_string()))?;
        let bytes = inner.n().as_ref().to_be_bytes();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let modulus = bytes.get(first..).unwrap_or_default().to_vec();
        let first = e.iter().position(|b| *b != 0).unwrap_or(e.len());
        Ok(Self {
            inner,
            modulus,
            exponent: e.get(first..).unwrap_or_default().to_vec(),
        })
    }

    /// The key of an [`IccPrivateKey::Rsa`].
    pub fn from_icc(key: &IccPrivateKey) -> Result<Self, OdaError> {
        match key {
            IccPrivateKey::Rsa { p, q, e } => Self::from_primes(p, q, e),
            IccPrivateKey::Sm2 { .. } => Err(OdaError::NoKey),
        }
    }

    /// The modulus, `N` bytes.
    pub fn modulus(&self) -> &[u8] {
        &self.modulus
    }

    /// The public exponent bytes (`03` or `01 00 01`).
    pub fn exponent(&self) -> &[u8] {
        &self.exponent
    }

    /// `N`.
    pub fn len(&self) -> usize {
        self.modulus.len()
    }

    /// Never true: a key has a modulus.
    pub fn is_empty(&self) -> bool {
        self.modulus.is_empty()
    }

    /// `S = X^d mod n` (JR/T 0025.7 §12.2.1.2) on an `N`-byte block.
    fn sign_raw(&self, x: &[u8]) -> Result<Vec<u8>, OdaError> {
        let n = self.inner.n().as_ref();
        let value = BoxedUint::from_be_slice(x, n.bits_precision())
            .map_err(|_| OdaError::TooLong(x.len(), self.len()))?;
        if value >= *n {
            return Err(OdaError::TooLong(x.len(), self.len()));
        }
        let s =
            rsa::hazmat::rsa_decrypt_and_check(&self.inner, None::<&mut getrandom::SysRng>, &value)
                .map_err(|_| OdaError::RsaOperation)?;
        let bytes = s.to_be_bytes();
        let skip = bytes.len().saturating_sub(self.len());
        let mut out = vec![0u8; self.len().saturating_sub(bytes.len())];
        out.extend(bytes.iter().skip(skip));
        Ok(out)
    }

    /// Sign with message recovery (JR/T 0025.7 §11.2.1.2): `MSG1` is the leftmost `N − 22`
    /// bytes of `message`, `S = Sign[6A ‖ MSG1 ‖ SHA-1(message) ‖ BC]`.
    pub fn sign_with_recovery(&self, message: &[u8]) -> Result<Vec<u8>, OdaError> {
        let msg1_len = self.len().saturating_sub(22);
        let msg1 = message
            .get(..msg1_len)
            .ok_or(OdaError::TooLong(message.len(), self.len()))?;
        let mut x = Vec::with_capacity(self.len());
        x.push(0x6a);
        x.extend_from_slice(msg1);
        x.extend_from_slice(&sha1(&[message]));
        x.push(0xbc);
        self.sign_raw(&x)
    }
}

/// SHA-1 over the parts joined.
pub fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = sha1::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn sm2_key(key: &IccPrivateKey) -> Result<Option<Sm2PrivateKey>, OdaError> {
    match key {
        IccPrivateKey::Sm2 { d } => Ok(Some(Sm2PrivateKey::from_bytes(d)?)),
        IccPrivateKey::Rsa { .. } => Ok(None),
    }
}

/// The RSA signed dynamic application data (JR/T 0025.7 §5.3.5.1 表13, §5.3.6.1 表16):
/// format `05`, SHA-1, `LDD`, the ICC dynamic data, `BB` padding to `N − 22` bytes, signed
/// with recovery over those and the terminal dynamic data.
fn rsa_dynamic(key: &RsaKey, icc_dynamic: &[u8], terminal: &[u8]) -> Result<Vec<u8>, OdaError> {
    let n = key.len();
    let ldd = icc_dynamic.len();
    if ldd + 25 > n {
        return Err(OdaError::TooLong(ldd, n));
    }
    let mut message = vec![
        RSA_DYNAMIC_FORMAT,
        HASH_SHA1,
        u8::try_from(ldd).map_err(|_| OdaError::TooLong(ldd, n))?,
    ];
    message.extend_from_slice(icc_dynamic);
    message.resize(n - 22, 0xbb);
    message.extend_from_slice(terminal);
    key.sign_with_recovery(&message)
}

/// The signed dynamic application data of DDA and fDDA (tag `9F4B`) over the ICC dynamic
/// data and the terminal dynamic data: SM2 format `15` (JR/T 0025.17 §5.2.4.1 表9/表11) or
/// RSA format `05` (JR/T 0025.7 §5.3.5.1).
pub(crate) fn sign_dynamic(
    key: &IccPrivateKey,
    icc_dynamic: &[u8],
    terminal: &[u8],
) -> Result<Vec<u8>, OdaError> {
    match sm2_key(key)? {
        Some(sm2) => Ok(SignedDynamicData {
            icc_dynamic_data: icc_dynamic.to_vec(),
        }
        .issue(&sm2, terminal)?),
        None => rsa_dynamic(&RsaKey::from_icc(key)?, icc_dynamic, terminal),
    }
}

/// The signed dynamic application data of CDA (JR/T 0025.17 §5.2.5.1 表12/表13, JR/T 0025.7
/// §5.3.6.1 表16/表17): ICC dynamic data `len ‖ dynamic number ‖ CID ‖ cryptogram ‖
/// transaction data hash` (SM3, 32 bytes; SHA-1, 20 bytes) over `transaction_data`, signed
/// with the terminal's unpredictable number.
pub(crate) fn sign_cda(
    key: &IccPrivateKey,
    dynamic_number: &[u8],
    cid: u8,
    cryptogram: [u8; 8],
    transaction_data: &[&[u8]],
    unpredictable_number: &[u8],
) -> Result<Vec<u8>, OdaError> {
    match sm2_key(key)? {
        Some(sm2) => {
            let icc_dynamic = CdaDynamicData {
                dynamic_number: dynamic_number.to_vec(),
                cryptogram_information: cid,
                cryptogram,
                transaction_data_hash: sm2_cert::transaction_data_hash(transaction_data),
            }
            .to_bytes()?;
            Ok(SignedDynamicData {
                icc_dynamic_data: icc_dynamic,
            }
            .issue(&sm2, unpredictable_number)?)
        }
        None => {
            let mut icc_dynamic = vec![u8::try_from(dynamic_number.len()).unwrap_or(8)];
            icc_dynamic.extend_from_slice(dynamic_number);
            icc_dynamic.push(cid);
            icc_dynamic.extend_from_slice(&cryptogram);
            icc_dynamic.extend_from_slice(&sha1(transaction_data));
            rsa_dynamic(&RsaKey::from_icc(key)?, &icc_dynamic, unpredictable_number)
        }
    }
}

/// An SM2 private key made from a seed and a label, for fixtures: the first valid
/// `SM3(seed ‖ label ‖ counter)`. Never use for real cards.
pub fn sm2_key_from_seed(seed: &[u8], label: &str) -> Result<Sm2PrivateKey, OdaError> {
    let mut last = Sm2Error::PrivateKeyOutOfRange;
    for counter in 0u32..16 {
        let d = sm3::digest_parts(&[seed, label.as_bytes(), &counter.to_be_bytes()]);
        match Sm2PrivateKey::from_bytes(&d) {
            Ok(k) => return Ok(k),
            Err(e) => last = e,
        }
    }
    Err(OdaError::Sm2(last))
}

/// An RSA issuer public-key certificate, format `02` (JR/T 0025.7 §5.3.1 表8, §11.2.1.2),
/// signed by the CA key: the certificate (tag `90`) and the remainder (tag `92`, possibly
/// empty). The issuer exponent goes in tag `9F32`.
pub fn rsa_issuer_certificate(
    ca: &RsaKey,
    issuer_id: [u8; 4],
    expiry_mmyy: [u8; 2],
    serial: [u8; 3],
    issuer: &RsaKey,
) -> Result<(Vec<u8>, Vec<u8>), OdaError> {
    let fixed = [
        &[0x02][..],
        &issuer_id,
        &expiry_mmyy,
        &serial,
        &[HASH_SHA1, ALGORITHM_RSA],
    ]
    .concat();
    rsa_certificate(ca, &fixed, issuer, 36, &[])
}

/// An RSA ICC public-key certificate, format `04` (JR/T 0025.7 §5.3.1 表9), signed by the
/// issuer key over the certificate data and `static_data`: the certificate (tag `9F46`) and
/// the remainder (tag `9F48`). The ICC exponent goes in tag `9F47`.
pub fn rsa_icc_certificate(
    issuer: &RsaKey,
    pan: &[u8],
    expiry_mmyy: [u8; 2],
    serial: [u8; 3],
    icc: &RsaKey,
    static_data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), OdaError> {
    let mut pan_field = [0xffu8; 10];
    for (o, b) in pan_field.iter_mut().zip(pan) {
        *o = *b;
    }
    let fixed = [
        &[0x04][..],
        &pan_field,
        &expiry_mmyy,
        &serial,
        &[HASH_SHA1, ALGORITHM_RSA],
    ]
    .concat();
    rsa_certificate(issuer, &fixed, icc, 42, static_data)
}

/// The fixed fields, the key and exponent lengths, the leftmost `N − overhead` key bytes
/// (`BB`-padded), then remainder, exponent and `extra` outside `MSG1`.
fn rsa_certificate(
    signer: &RsaKey,
    fixed: &[u8],
    key: &RsaKey,
    overhead: usize,
    extra: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), OdaError> {
    let room = signer.len().saturating_sub(overhead);
    let modulus = key.modulus();
    let (left, remainder) = modulus.split_at(room.min(modulus.len()));
    let mut message = fixed.to_vec();
    message.push(u8::try_from(key.len()).map_err(|_| OdaError::TooLong(key.len(), 248))?);
    message.push(u8::try_from(key.exponent().len()).unwrap_or(3));
    message.extend_from_slice(left);
    message.resize(message.len() + room - left.len(), 0xbb);
    message.extend_from_slice(remainder);
    message.extend_from_slice(key.exponent());
    message.extend_from_slice(extra);
    Ok((signer.sign_with_recovery(&message)?, remainder.to_vec()))
}
