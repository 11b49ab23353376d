//! RSA with message recovery and the EMV-style public-key certificates of PBOC 3.0 cards that
//! authenticate offline with RSA (JR/T 0025.7 §5, §11.2, §12.2).
//!
//! - [`RsaPublicKey::recover`]: `X = S^e mod n` (JR/T 0025.7 §12.2.1.3);
//!   [`verify_with_recovery`] the whole check of §11.2.1.3 (header `6A`, trailer `BC`, SHA-1).
//! - [`recover_issuer_key`] (certificate format `02`, §5.3.3) and [`recover_icc_key`]
//!   (format `04`, §5.3.4): every step of the clause, each failure its own [`RsaError`].
//! - For tests and the issuer side: [`RsaPrivateKey`] (generation of 1024 to 1984-bit keys
//!   with exponent 3 or 65537, the raw private operation), [`sign_with_recovery`]
//!   (§11.2.1.2), and [`IssuerCertificate::issue`] / [`IccCertificate::issue`].
//!
//! The terminal's clock is not read here: the caller passes today's month.

use ::rsa::BoxedUint;
use ::rsa::traits::PublicKeyParts as _;
use rand_core::TryCryptoRng;
use sha1::Digest as _;

/// Hash algorithm indicator of SHA-1 (JR/T 0025.7 §12.3.1).
pub const HASH_SHA1: u8 = 0x01;
/// Public-key algorithm indicator of RSA (JR/T 0025.7 §12.2.1).
pub const ALGORITHM_RSA: u8 = 0x01;
/// Longest modulus of a CA, issuer or ICC key: 248 bytes (JR/T 0025.7 §12.2.1, Table 31).
pub const MAX_MODULUS_LEN: usize = 248;
/// Shortest modulus accepted for verification here (512 bits).
pub const MIN_MODULUS_LEN: usize = 64;
/// Shortest key [`RsaPrivateKey::generate`] makes, in bits.
pub const MIN_GENERATED_BITS: usize = 1024;
/// Longest key [`RsaPrivateKey::generate`] makes, in bits (248 bytes).
pub const MAX_GENERATED_BITS: usize = 1984;

const SHA1_LEN: usize = 20;
const HEADER: u8 = 0x6a;
const TRAILER: u8 = 0xbc;

/// Errors of RSA recovery and certificate checks, one per failing step.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RsaError {
    /// The modulus is shorter than 64 or longer than 248 bytes.
    #[error("an RSA modulus here has {min} to {max} bytes, this one has {actual}", min = MIN_MODULUS_LEN, max = MAX_MODULUS_LEN)]
    ModulusLength {
        /// Bytes given.
        actual: usize,
    },
    /// The leftmost bit of the modulus is not set (JR/T 0025.7 §5.1).
    #[error("the leftmost bit of the modulus is not 1")]
    ModulusTopBit,
    /// An even modulus cannot be an RSA modulus.
    #[error("the modulus is even")]
    ModulusEven,
    /// The exponent is neither 3 nor 2^16 + 1 (JR/T 0025.7 §12.2.1).
    #[error("the public exponent is neither 3 nor 65537")]
    ExponentNotAllowed,
    /// A key size that [`RsaPrivateKey::generate`] does not make.
    #[error("keys are generated with 1024 to 1984 bits in steps of 8, not {0}")]
    KeySize(usize),
    /// Key generation failed (including a failed RNG).
    #[error("RSA key generation failed")]
    KeyGeneration,
    /// The signature or certificate does not have the modulus length (§11.2.1.3 1), §5.3.3 1)).
    #[error("the signature has {actual} bytes, the key's modulus {expected}")]
    SignatureLength {
        /// Modulus length.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The signature, read as a number, is not below the modulus.
    #[error("the signature is not below the modulus")]
    SignatureOutOfRange,
    /// The recovered data does not end with `BC` (§11.2.1.3 5), §5.3.3 2)).
    #[error("recovered data ends with {0:02X}, not BC")]
    Trailer(u8),
    /// The recovered data does not start with `6A` (§11.2.1.3 4), §5.3.3 3)).
    #[error("recovered data starts with {0:02X}, not 6A")]
    Header(u8),
    /// The certificate or signed-data format byte is not the one expected (§5.3.3 4), §5.3.4 4)).
    #[error("format {actual:02X} where {expected:02X} is expected")]
    Format {
        /// Format required.
        expected: u8,
        /// Format found.
        actual: u8,
    },
    /// A hash algorithm indicator other than SHA-1 (`01`).
    #[error("unknown hash algorithm indicator {0:02X}")]
    HashAlgorithm(u8),
    /// The recovered hash does not match the data (§11.2.1.3 6), §5.3.3 7), §5.3.4 7)).
    #[error("the recovered hash does not match the data")]
    HashMismatch,
    /// The issuer identifier is not the leading digits of the PAN (§5.3.3 8)).
    #[error("the issuer identifier does not match the PAN")]
    IssuerIdMismatch,
    /// The PAN in the ICC certificate is not the card's PAN (§5.3.4 8)).
    #[error("the PAN in the ICC certificate is not the card's PAN")]
    PanMismatch,
    /// The expiry date is not a valid BCD `MMYY`.
    #[error("the certificate expiry date {0:02X?} is not a valid MMYY")]
    ExpiryDate([u8; 2]),
    /// The certificate expired before the current month (§5.3.3 9), §5.3.4 9)).
    #[error("the certificate expired at the end of {month:02}/{year}")]
    Expired {
        /// Year of expiry.
        year: u16,
        /// Month of expiry.
        month: u8,
    },
    /// RID, CA index and certificate serial number are on the revocation list (§5.3.3 10)).
    #[error("the issuer certificate is revoked")]
    Revoked,
    /// A public-key algorithm indicator other than RSA (`01`) (§5.3.3 11), §5.3.4 10)).
    #[error("unknown public-key algorithm indicator {0:02X}")]
    PublicKeyAlgorithm(u8),
    /// The certified key is longer than the key that signed it (JR/T 0025.7 §12.2.1).
    #[error("certified key of {certified} bytes is longer than the signing key of {signer}")]
    CertifiedKeyTooLong {
        /// Length field of the certificate.
        certified: usize,
        /// Modulus length of the signing key.
        signer: usize,
    },
    /// The remainder does not have the length the certificate implies.
    #[error("the public key remainder has {actual} bytes, {expected} expected")]
    RemainderLength {
        /// Bytes the certificate implies.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The exponent does not have the length the certificate states.
    #[error("the public exponent has {actual} bytes, the certificate says {expected}")]
    ExponentLength {
        /// Length field of the certificate.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The data to sign is too short for the key (§11.2.1.2: at least N − 22 bytes).
    #[error("a message signed with recovery needs at least {min} bytes, this one has {actual}")]
    MessageTooShort {
        /// Minimum length.
        min: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The block to sign is not the modulus length or not below the modulus.
    #[error("the block to sign must have the modulus length and be below the modulus")]
    SignInput,
    /// The private-key operation failed its consistency check.
    #[error("the RSA private-key operation failed")]
    PrivateOperation,
}

/// A public exponent JR/T 0025.7 §12.2.1 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaExponent {
    /// `3`.
    Three,
    /// `2^16 + 1 = 65537`.
    F4,
}

impl RsaExponent {
    /// The exponent as it appears in tags 9F32 and 9F47.
    pub fn to_bytes(self) -> &'static [u8] {
        match self {
            Self::Three => &[0x03],
            Self::F4 => &[0x01, 0x00, 0x01],
        }
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0x03] => Some(Self::Three),
            [0x01, 0x00, 0x01] => Some(Self::F4),
            _ => None,
        }
    }
}

/// An RSA public key: modulus of 64 to 248 bytes with its leftmost bit set, exponent 3 or
/// 65537.
#[derive(Clone)]
pub struct RsaPublicKey {
    modulus: Vec<u8>,
    exponent: RsaExponent,
    inner: ::rsa::PublicKey,
}

impl RsaPublicKey {
    /// From the modulus and exponent bytes (big-endian; the exponent `03` or `01 00 01`).
    pub fn new(modulus: &[u8], exponent: &[u8]) -> Result<Self, RsaError> {
        if !(MIN_MODULUS_LEN..=MAX_MODULUS_LEN).contains(&modulus.len()) {
            return Err(RsaError::ModulusLength {
                actual: modulus.len(),
            });
        }
        if modulus.first().is_none_or(|b| b & 0x80 == 0) {
            return Err(RsaError::ModulusTopBit);
        }
        if modulus.last().is_none_or(|b| b & 1 == 0) {
            return Err(RsaError::ModulusEven);
        }
        let exponent = RsaExponent::from_bytes(exponent).ok_or(RsaError::ExponentNotAllowed)?;
        let n = BoxedUint::from_be_slice_vartime(modulus);
        let e = BoxedUint::from_be_slice_vartime(exponent.to_bytes());
        let inner =
            ::rsa::PublicKey::new_with_size_limits(n, e, MIN_MODULUS_LEN * 8..=MAX_MODULUS_LEN * 8)
                .map_err(|_| RsaError::ModulusLength {
                    actual: modulus.len(),
                })?;
        Ok(Self {
            modulus: modulus.to_vec(),
            exponent,
            inner,
        })
    }

    /// The modulus, big-endian, `N` bytes.
    pub fn modulus(&self) -> &[u8] {
        &self.modulus
    }

    /// The exponent bytes (`03` or `01 00 01`).
    pub fn exponent(&self) -> &'static [u8] {
        self.exponent.to_bytes()
    }

    /// The exponent.
    pub fn exponent_kind(&self) -> RsaExponent {
        self.exponent
    }

    /// `N`, the modulus length in bytes.
    pub fn len(&self) -> usize {
        self.modulus.len()
    }

    /// Always false: a modulus has at least 64 bytes.
    pub fn is_empty(&self) -> bool {
        self.modulus.is_empty()
    }

    /// The recovery function `X = S^e mod n` (JR/T 0025.7 §12.2.1.3), after checking that `S`
    /// has `N` bytes (§11.2.1.3 1)) and is below `n`. `X` has `N` bytes.
    pub fn recover(&self, signature: &[u8]) -> Result<Vec<u8>, RsaError> {
        if signature.len() != self.len() {
            return Err(RsaError::SignatureLength {
                expected: self.len(),
                actual: signature.len(),
            });
        }
        let n = self.inner.n().as_ref();
        let s = BoxedUint::from_be_slice(signature, n.bits_precision())
            .map_err(|_| RsaError::SignatureOutOfRange)?;
        if s >= *n {
            return Err(RsaError::SignatureOutOfRange);
        }
        let x = ::rsa::hazmat::rsa_encrypt(&self.inner, &s)
            .map_err(|_| RsaError::SignatureOutOfRange)?;
        Ok(to_fixed_be(&x, self.len()))
    }
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.modulus == other.modulus && self.exponent == other.exponent
    }
}

impl Eq for RsaPublicKey {}

impl core::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "RsaPublicKey({} bits, e = {:?}, n = ",
            self.len() * 8,
            self.exponent
        )?;
        for b in self.modulus.iter().take(8) {
            write!(f, "{b:02X}")?;
        }
        f.write_str("..)")
    }
}

/// An RSA private key, for issuing test certificates and signing as a test card. Zeroized on
/// drop (by the `rsa` crate); `Debug` shows only the public key.
#[derive(Clone)]
pub struct RsaPrivateKey {
    inner: ::rsa::PrivateKey,
    public: RsaPublicKey,
}

impl RsaPrivateKey {
    /// A new key of `bits` bits (1024 to 1984, a multiple of 8) with the given exponent.
    pub fn generate<R: TryCryptoRng + ?Sized>(
        rng: &mut R,
        bits: usize,
        exponent: RsaExponent,
    ) -> Result<Self, RsaError> {
        if !(MIN_GENERATED_BITS..=MAX_GENERATED_BITS).contains(&bits) || !bits.is_multiple_of(8) {
            return Err(RsaError::KeySize(bits));
        }
        let e = BoxedUint::from_be_slice_vartime(exponent.to_bytes());
        let inner =
            ::rsa::PrivateKey::new_with_exp(rng, bits, e).map_err(|_| RsaError::KeyGeneration)?;
        let modulus = to_fixed_be(inner.n().as_ref(), bits / 8);
        let public = RsaPublicKey::new(&modulus, exponent.to_bytes())?;
        Ok(Self { inner, public })
    }

    /// A new key from the operating system's random number generator.
    pub fn generate_os(bits: usize, exponent: RsaExponent) -> Result<Self, RsaError> {
        Self::generate(&mut getrandom::SysRng, bits, exponent)
    }

    /// The public key.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// The signature function `S = X^d mod n` (JR/T 0025.7 §12.2.1.2) on an `N`-byte block
    /// below `n`, checked by re-applying the public key.
    pub fn sign_raw(&self, x: &[u8]) -> Result<Vec<u8>, RsaError> {
        let len = self.public.len();
        if x.len() != len {
            return Err(RsaError::SignInput);
        }
        let n = self.inner.n().as_ref();
        let value =
            BoxedUint::from_be_slice(x, n.bits_precision()).map_err(|_| RsaError::SignInput)?;
        if value >= *n {
            return Err(RsaError::SignInput);
        }
        let s = ::rsa::hazmat::rsa_decrypt_and_check(
            &self.inner,
            None::<&mut getrandom::SysRng>,
            &value,
        )
        .map_err(|_| RsaError::PrivateOperation)?;
        Ok(to_fixed_be(&s, len))
    }
}

impl core::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RsaPrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Sign with message recovery, JR/T 0025.7 §11.2.1.2, with SHA-1: `MSG1` is the leftmost
/// `N − 22` bytes of `message`, `MSG2` the rest; `S = Sign(SK)[6A ‖ MSG1 ‖ SHA-1(MSG) ‖ BC]`.
/// Returns `S` (`N` bytes). `message` needs at least `N − 22` bytes.
pub fn sign_with_recovery(key: &RsaPrivateKey, message: &[u8]) -> Result<Vec<u8>, RsaError> {
    let n = key.public_key().len();
    let msg1_len = n.saturating_sub(22);
    let (msg1, _) = message
        .split_at_checked(msg1_len)
        .ok_or(RsaError::MessageTooShort {
            min: msg1_len,
            actual: message.len(),
        })?;
    let mut x = Vec::with_capacity(n);
    x.push(HEADER);
    x.extend_from_slice(msg1);
    x.extend_from_slice(&sha1_digest(&[message]));
    x.push(TRAILER);
    key.sign_raw(&x)
}

/// What [`verify_with_recovery`] recovered: `MSG1` and the hash it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// `MSG1`: the `N − 22` bytes between header and hash.
    pub msg1: Vec<u8>,
    /// The 20-byte hash from the signature.
    pub hash: [u8; SHA1_LEN],
}

/// Recover and check a signature with message recovery, JR/T 0025.7 §11.2.1.3: length `N`,
/// `X = Recover(PK)[S]`, trailer `BC`, header `6A`, and `H = SHA-1(MSG1 ‖ msg2)`.
pub fn verify_with_recovery(
    key: &RsaPublicKey,
    signature: &[u8],
    msg2: &[u8],
) -> Result<Recovered, RsaError> {
    let recovered = recover_framed(key, signature)?;
    if !super::ct_eq(&sha1_digest(&[&recovered.msg1, msg2]), &recovered.hash) {
        return Err(RsaError::HashMismatch);
    }
    Ok(recovered)
}

/// Steps 1)-5) of §11.2.1.3: recover, check the trailer and the header, split.
fn recover_framed(key: &RsaPublicKey, signature: &[u8]) -> Result<Recovered, RsaError> {
    let x = key.recover(signature)?;
    let (&header, rest) = x.split_first().ok_or(RsaError::Header(0))?;
    let (&trailer, body) = rest.split_last().ok_or(RsaError::Trailer(0))?;
    if trailer != TRAILER {
        return Err(RsaError::Trailer(trailer));
    }
    if header != HEADER {
        return Err(RsaError::Header(header));
    }
    let (msg1, hash) = body
        .split_last_chunk::<SHA1_LEN>()
        .ok_or(RsaError::SignatureLength {
            expected: key.len(),
            actual: signature.len(),
        })?;
    Ok(Recovered {
        msg1: msg1.to_vec(),
        hash: *hash,
    })
}

/// A month, for certificate expiry checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    /// Year, e.g. 2026.
    pub year: u16,
    /// Month, 1 to 12.
    pub month: u8,
}

/// A certificate expiry date `MMYY` (n4): the certificate is valid to the last day of that
/// month. `YY` 00-49 is 20YY, 50-99 is 19YY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExpiryDate {
    bcd: [u8; 2],
}

impl ExpiryDate {
    /// From the two BCD bytes `MM YY` of a certificate.
    pub fn from_bcd(bcd: [u8; 2]) -> Result<Self, RsaError> {
        let [mm, yy] = bcd;
        let month = bcd_byte(mm).ok_or(RsaError::ExpiryDate(bcd))?;
        bcd_byte(yy).ok_or(RsaError::ExpiryDate(bcd))?;
        if !(1..=12).contains(&month) {
            return Err(RsaError::ExpiryDate(bcd));
        }
        Ok(Self { bcd })
    }

    /// The last month of validity; `year` must be 1950 to 2049.
    pub fn new(when: YearMonth) -> Result<Self, RsaError> {
        let yy = when.year % 100;
        let bcd = [
            to_bcd(when.month % 100),
            to_bcd(u8::try_from(yy).unwrap_or(0)),
        ];
        if !(1950..=2049).contains(&when.year) {
            return Err(RsaError::ExpiryDate(bcd));
        }
        Self::from_bcd(bcd)
    }

    /// `MM YY` as in the certificate.
    pub fn to_bcd(self) -> [u8; 2] {
        self.bcd
    }

    /// The last month of validity.
    pub fn month(self) -> YearMonth {
        let [mm, yy] = self.bcd;
        let yy = u16::from(bcd_byte(yy).unwrap_or(0));
        YearMonth {
            year: if yy < 50 { 2000 + yy } else { 1900 + yy },
            month: bcd_byte(mm).unwrap_or(0),
        }
    }

    /// Whether the certificate has expired in month `today` (JR/T 0025.7 §5.3.3 9)).
    pub fn is_expired(self, today: YearMonth) -> bool {
        self.month() < today
    }
}

/// An issuer certificate the terminal does not accept any more: RID, CA public key index and
/// certificate serial number (JR/T 0025.7 §5.3.3 10)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RevokedCertificate {
    /// Registered application provider identifier.
    pub rid: [u8; 5],
    /// CA public key index (tag 8F).
    pub ca_index: u8,
    /// Certificate serial number.
    pub serial: [u8; 3],
}

/// A certification authority public key as the terminal stores it (JR/T 0025.7 §5.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPublicKey {
    /// Registered application provider identifier (first 5 bytes of the AID).
    pub rid: [u8; 5],
    /// CA public key index (tag 8F).
    pub index: u8,
    /// The key.
    pub key: RsaPublicKey,
}

/// What the terminal checks certificates against.
#[derive(Debug, Clone, Copy)]
pub struct CertificateChecks<'a> {
    /// The card's PAN as read from tag 5A (BCD, `F`-padded).
    pub pan: &'a [u8],
    /// The current month.
    pub today: YearMonth,
    /// Revoked issuer certificates.
    pub revoked: &'a [RevokedCertificate],
}

/// The contents of an issuer public key certificate (format `02`, JR/T 0025.7 §5.3.1 Table 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerCertificate {
    /// Issuer identifier: the leftmost 3-8 PAN digits, `F`-padded (cn8).
    pub issuer_id: [u8; 4],
    /// Certificate expiry date.
    pub expiry: ExpiryDate,
    /// Certificate serial number, assigned by the CA.
    pub serial: [u8; 3],
    /// Hash algorithm indicator ([`HASH_SHA1`]).
    pub hash_algorithm: u8,
    /// Issuer public-key algorithm indicator ([`ALGORITHM_RSA`]).
    pub key_algorithm: u8,
    /// The issuer public key.
    pub public_key: RsaPublicKey,
}

/// The contents of an ICC public key certificate (format `04`, JR/T 0025.7 §5.3.1 Table 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IccCertificate {
    /// Application PAN, `F`-padded to 10 bytes (cn20).
    pub pan: [u8; 10],
    /// Certificate expiry date.
    pub expiry: ExpiryDate,
    /// Certificate serial number, assigned by the issuer.
    pub serial: [u8; 3],
    /// Hash algorithm indicator ([`HASH_SHA1`]).
    pub hash_algorithm: u8,
    /// ICC public-key algorithm indicator ([`ALGORITHM_RSA`]).
    pub key_algorithm: u8,
    /// The ICC public key.
    pub public_key: RsaPublicKey,
}

/// A certificate as the card stores it: the certificate (tag 90 or 9F46) and the public key
/// remainder (tag 92 or 9F48, empty when the key fits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate, as long as the signing key's modulus.
    pub certificate: Vec<u8>,
    /// The public key remainder, possibly empty.
    pub remainder: Vec<u8>,
}

impl IssuerCertificate {
    /// Build the certificate with the CA's private key: the data of JR/T 0025.7 §5.3.1 Table 8
    /// signed as §11.2.1.2 says.
    pub fn issue(&self, ca: &RsaPrivateKey) -> Result<IssuedCertificate, RsaError> {
        let fixed = [
            &[0x02][..],
            &self.issuer_id,
            &self.expiry.to_bcd(),
            &self.serial,
            &[self.hash_algorithm, self.key_algorithm],
        ];
        issue(ca, &fixed, &self.public_key, 36, &[])
    }
}

impl IccCertificate {
    /// The PAN field of the certificate from the card's PAN (tag 5A), `F`-padded to 10 bytes.
    pub fn pan_field(pan: &[u8]) -> [u8; 10] {
        let mut out = [0xffu8; 10];
        for (o, b) in out.iter_mut().zip(pan) {
            *o = *b;
        }
        out
    }

    /// Build the certificate with the issuer's private key: the data of JR/T 0025.7 §5.3.1
    /// Table 9, the static data to be authenticated appended to the hashed data.
    pub fn issue(
        &self,
        issuer: &RsaPrivateKey,
        static_data: &[u8],
    ) -> Result<IssuedCertificate, RsaError> {
        let fixed = [
            &[0x04][..],
            &self.pan,
            &self.expiry.to_bcd(),
            &self.serial,
            &[self.hash_algorithm, self.key_algorithm],
        ];
        issue(issuer, &fixed, &self.public_key, 42, static_data)
    }
}

/// Shared by both certificate kinds: fixed fields, key length, exponent length, the leftmost
/// key bytes padded with `BB` to `N − overhead`, the remainder and exponent outside the
/// signature, then (ICC) the static data.
fn issue(
    signer: &RsaPrivateKey,
    fixed: &[&[u8]],
    key: &RsaPublicKey,
    overhead: usize,
    extra: &[u8],
) -> Result<IssuedCertificate, RsaError> {
    let n = signer.public_key().len();
    let room = n.saturating_sub(overhead);
    if key.len() > n {
        return Err(RsaError::CertifiedKeyTooLong {
            certified: key.len(),
            signer: n,
        });
    }
    let (left, remainder) = key
        .modulus()
        .split_at_checked(room.min(key.len()))
        .unwrap_or((key.modulus(), &[]));
    let mut message: Vec<u8> = fixed.concat();
    message
        .push(u8::try_from(key.len()).map_err(|_| RsaError::ModulusLength { actual: key.len() })?);
    message.push(u8::try_from(key.exponent().len()).unwrap_or(3));
    message.extend_from_slice(left);
    message.resize(message.len() + room - left.len(), 0xbb);
    message.extend_from_slice(remainder);
    message.extend_from_slice(key.exponent());
    message.extend_from_slice(extra);
    Ok(IssuedCertificate {
        certificate: sign_with_recovery(signer, &message)?,
        remainder: remainder.to_vec(),
    })
}

/// Recover the issuer public key, JR/T 0025.7 §5.3.3 (and §5.2.3 for SDA), steps 1) to 12):
/// certificate length = CA modulus length, trailer `BC`, header `6A`, format `02`, SHA-1 over
/// the certificate data with remainder and exponent, issuer identifier against the PAN,
/// expiry against `checks.today`, revocation, public-key algorithm, and the key itself.
///
/// `remainder` is tag 92 (empty if the card has none), `exponent` tag 9F32.
pub fn recover_issuer_key(
    ca: &CaPublicKey,
    certificate: &[u8],
    remainder: &[u8],
    exponent: &[u8],
    checks: &CertificateChecks<'_>,
) -> Result<IssuerCertificate, RsaError> {
    let n_ca = ca.key.len();
    let recovered = recover_framed(&ca.key, certificate)?;
    let fields = CertFields::parse(&recovered.msg1, 0x02, 4)?;
    check_hash(fields.hash_algorithm, &recovered, &[remainder, exponent])?;
    let issuer_id: [u8; 4] = fields
        .id
        .try_into()
        .map_err(|_| RsaError::IssuerIdMismatch)?;
    if !issuer_id_matches(&issuer_id, checks.pan) {
        return Err(RsaError::IssuerIdMismatch);
    }
    let expiry = check_expiry(fields.expiry, checks.today)?;
    if checks
        .revoked
        .iter()
        .any(|r| r.rid == ca.rid && r.ca_index == ca.index && r.serial == fields.serial)
    {
        return Err(RsaError::Revoked);
    }
    if fields.key_algorithm != ALGORITHM_RSA {
        return Err(RsaError::PublicKeyAlgorithm(fields.key_algorithm));
    }
    let public_key = assemble_key(&fields, n_ca, 36, remainder, exponent)?;
    Ok(IssuerCertificate {
        issuer_id,
        expiry,
        serial: fields.serial,
        hash_algorithm: fields.hash_algorithm,
        key_algorithm: fields.key_algorithm,
        public_key,
    })
}

/// Recover the ICC public key, JR/T 0025.7 §5.3.4 steps 1) to 11): certificate length =
/// issuer modulus length, trailer `BC`, header `6A`, format `04`, SHA-1 over the certificate
/// data with remainder, exponent and the static data to be authenticated, PAN, expiry,
/// public-key algorithm, and the key itself.
///
/// `remainder` is tag 9F48 (empty if none), `exponent` tag 9F47, `static_data` the records the
/// AFL marks for offline data authentication (and the AIP if the tag list 9F4A asks for it).
pub fn recover_icc_key(
    issuer_key: &RsaPublicKey,
    certificate: &[u8],
    remainder: &[u8],
    exponent: &[u8],
    static_data: &[u8],
    checks: &CertificateChecks<'_>,
) -> Result<IccCertificate, RsaError> {
    let n_i = issuer_key.len();
    let recovered = recover_framed(issuer_key, certificate)?;
    let fields = CertFields::parse(&recovered.msg1, 0x04, 10)?;
    check_hash(
        fields.hash_algorithm,
        &recovered,
        &[remainder, exponent, static_data],
    )?;
    let pan: [u8; 10] = fields.id.try_into().map_err(|_| RsaError::PanMismatch)?;
    if pan != IccCertificate::pan_field(checks.pan) || checks.pan.len() > 10 {
        return Err(RsaError::PanMismatch);
    }
    let expiry = check_expiry(fields.expiry, checks.today)?;
    if fields.key_algorithm != ALGORITHM_RSA {
        return Err(RsaError::PublicKeyAlgorithm(fields.key_algorithm));
    }
    let public_key = assemble_key(&fields, n_i, 42, remainder, exponent)?;
    Ok(IccCertificate {
        pan,
        expiry,
        serial: fields.serial,
        hash_algorithm: fields.hash_algorithm,
        key_algorithm: fields.key_algorithm,
        public_key,
    })
}

/// The fields of `MSG1` of a certificate (Tables 11 and 12 without header, hash, trailer).
struct CertFields<'a> {
    id: &'a [u8],
    expiry: [u8; 2],
    serial: [u8; 3],
    hash_algorithm: u8,
    key_algorithm: u8,
    key_len: usize,
    exponent_len: usize,
    key_part: &'a [u8],
}

impl<'a> CertFields<'a> {
    fn parse(msg1: &'a [u8], format: u8, id_len: usize) -> Result<Self, RsaError> {
        let short = RsaError::Format {
            expected: format,
            actual: 0,
        };
        let (&actual, rest) = msg1.split_first().ok_or(short.clone())?;
        if actual != format {
            return Err(RsaError::Format {
                expected: format,
                actual,
            });
        }
        let (id, rest) = rest.split_at_checked(id_len).ok_or(short.clone())?;
        let (expiry, rest) = rest.split_first_chunk::<2>().ok_or(short.clone())?;
        let (serial, rest) = rest.split_first_chunk::<3>().ok_or(short.clone())?;
        let (&[hash_algorithm, key_algorithm, key_len, exponent_len], key_part) =
            rest.split_first_chunk::<4>().ok_or(short)?;
        Ok(Self {
            id,
            expiry: *expiry,
            serial: *serial,
            hash_algorithm,
            key_algorithm,
            key_len: usize::from(key_len),
            exponent_len: usize::from(exponent_len),
            key_part,
        })
    }
}

fn check_hash(algorithm: u8, recovered: &Recovered, msg2: &[&[u8]]) -> Result<(), RsaError> {
    if algorithm != HASH_SHA1 {
        return Err(RsaError::HashAlgorithm(algorithm));
    }
    let mut parts: Vec<&[u8]> = vec![&recovered.msg1];
    parts.extend_from_slice(msg2);
    if super::ct_eq(&sha1_digest(&parts), &recovered.hash) {
        Ok(())
    } else {
        Err(RsaError::HashMismatch)
    }
}

fn check_expiry(bcd: [u8; 2], today: YearMonth) -> Result<ExpiryDate, RsaError> {
    let expiry = ExpiryDate::from_bcd(bcd)?;
    if expiry.is_expired(today) {
        let YearMonth { year, month } = expiry.month();
        return Err(RsaError::Expired { year, month });
    }
    Ok(expiry)
}

/// Join the leftmost key bytes and the remainder: `N − overhead` bytes of room in the
/// certificate; a longer key continues in the remainder.
fn assemble_key(
    fields: &CertFields<'_>,
    signer_len: usize,
    overhead: usize,
    remainder: &[u8],
    exponent: &[u8],
) -> Result<RsaPublicKey, RsaError> {
    if fields.key_len > signer_len {
        return Err(RsaError::CertifiedKeyTooLong {
            certified: fields.key_len,
            signer: signer_len,
        });
    }
    if fields.exponent_len != exponent.len() {
        return Err(RsaError::ExponentLength {
            expected: fields.exponent_len,
            actual: exponent.len(),
        });
    }
    let room = signer_len.saturating_sub(overhead);
    let in_cert = fields.key_len.min(room);
    let expected_remainder = fields.key_len - in_cert;
    if remainder.len() != expected_remainder {
        return Err(RsaError::RemainderLength {
            expected: expected_remainder,
            actual: remainder.len(),
        });
    }
    let left = fields
        .key_part
        .get(..in_cert)
        .ok_or(RsaError::RemainderLength {
            expected: expected_remainder,
            actual: remainder.len(),
        })?;
    let modulus = [left, remainder].concat();
    RsaPublicKey::new(&modulus, exponent)
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

fn sha1_digest(parts: &[&[u8]]) -> [u8; SHA1_LEN] {
    let mut h = sha1::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `x` as exactly `len` big-endian bytes (leading zeros dropped or added).
fn to_fixed_be(x: &BoxedUint, len: usize) -> Vec<u8> {
    let bytes = x.to_be_bytes();
    let skip = bytes.len().saturating_sub(len);
    let mut out = vec![0u8; len.saturating_sub(bytes.len())];
    out.extend(bytes.iter().skip(skip));
    out
}

fn bcd_byte(b: u8) -> Option<u8> {
    let (hi, lo) = (b >> 4, b & 0x0f);
    (hi <= 9 && lo <= 9).then_some(hi * 10 + lo)
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_dates() {
        let d = ExpiryDate::from_bcd([0x12, 0x30]).unwrap();
        assert_eq!(
            d.month(),
            YearMonth {
                year: 2030,
                month: 12
            }
        );
        assert!(!d.is_expired(YearMonth {
            year: 2030,
            month: 12
        }));
        assert!(d.is_expired(YearMonth {
            year: 2031,
            month: 1
        }));
        assert_eq!(
            ExpiryDate::from_bcd([0x13, 0x30]),
            Err(RsaError::ExpiryDate([0x13, 0x30]))
        );
        assert_eq!(
            ExpiryDate::from_bcd([0x1a, 0x30]),
            Err(RsaError::ExpiryDate([0x1a, 0x30]))
        );
        assert_eq!(
            ExpiryDate::new(YearMonth {
                year: 2029,
                month: 6
            })
            .unwrap()
            .to_bcd(),
            [0x06, 0x29]
        );
        assert_eq!(
            ExpiryDate::from_bcd([0x01, 0x99]).unwrap().month().year,
            1999
        );
    }

    #[test]
    fn issuer_identifier() {
        let pan = [0x62, 0x25, 0x88, 0x12, 0x34, 0x56, 0x78, 0x90];
        assert!(issuer_id_matches(&[0x62, 0x25, 0x88, 0xff], &pan));
        assert!(issuer_id_matches(&[0x62, 0x2f, 0xff, 0xff], &pan));
        assert!(!issuer_id_matches(&[0x62, 0xff, 0xff, 0xff], &pan)); // 2 digits
        assert!(!issuer_id_matches(&[0x62, 0x26, 0xff, 0xff], &pan));
        assert!(!issuer_id_matches(&[0x62, 0x2f, 0x1f, 0xff], &pan)); // digit after F
    }

    #[test]
    fn public_key_checks() {
        let mut modulus = vec![0xc5u8; 64];
        assert!(RsaPublicKey::new(&modulus, &[3]).is_ok());
        assert_eq!(
            RsaPublicKey::new(&modulus, &[5]).err(),
            Some(RsaError::ExponentNotAllowed)
        );
        modulus[63] = 0xc4;
        assert_eq!(
            RsaPublicKey::new(&modulus, &[3]).err(),
            Some(RsaError::ModulusEven)
        );
        modulus[0] = 0x45;
        modulus[63] = 0xc5;
        assert_eq!(
            RsaPublicKey::new(&modulus, &[3]).err(),
            Some(RsaError::ModulusTopBit)
        );
        assert_eq!(
            RsaPublicKey::new(&[0xc5; 63], &[3]).err(),
            Some(RsaError::ModulusLength { actual: 63 })
        );
        assert_eq!(
            RsaPublicKey::new(&[0xc5; 249], &[3]).err(),
            Some(RsaError::ModulusLength { actual: 249 })
        );
    }
}
