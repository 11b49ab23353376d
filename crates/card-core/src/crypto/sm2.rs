//! SM2 (GM/T 0003) on the recommended 256-bit curve: the public-key algorithm of PBOC 3.0 SM
//! cards (JR/T 0025.17 §8.2, §9.2) and of the social-security card's PKI application.
//!
//! - [`Sm2PublicKey`]: import and export as `04 ‖ X ‖ Y` (65 bytes), as the bare `X ‖ Y` (64
//!   bytes) that PBOC certificates carry, or as DER SubjectPublicKeyInfo (OpenSSL); `Z`
//!   (GM/T 0003.2) for a distinguishing identifier of any bytes; verification over a
//!   message or over a digest `e`; encryption to C1C3C2.
//! - [`Sm2PrivateKey`]: generation from a caller's RNG or the operating system's, import and
//!   export as 32 bytes or DER (PKCS#8 / SEC1); signing over a message or a digest `e`;
//!   decryption. Zeroized on drop, never shown by `Debug`.
//! - [`Sm2Signature`]: `r ‖ s` (64 bytes, as PBOC appends it to signed data, JR/T 0025.17
//!   §8.2.2 d)) or DER (OpenSSL, X.509).
//!
//! Signing and verifying compute `e = SM3(Z ‖ M)` here (JR/T 0025.17 §8.2.2 a)-b)) and hand
//! `e` to the `sm2` crate's prehash signer and verifier, so an identifier that is not UTF-8
//! works too. The crate signs deterministically (its nonce comes from RFC 6979's HMAC-DRBG
//! over SM3, optionally mixed with bytes from an RNG: [`Sm2PrivateKey::sign_with_rng`]).

use ::sm2::dsa::signature::hazmat::RandomizedPrehashSigner as _;
use ::sm2::dsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use ::sm2::elliptic_curve::Generate as _;
use ::sm2::elliptic_curve::sec1::ToSec1Point as _;
use ::sm2::pkcs8::der::{Decode as _, Encode as _};
use ::sm2::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
};
use rand_core::{TryCryptoRng, TryRng};
use zeroize::Zeroizing;

use super::sm3;

/// The distinguishing identifier PBOC uses (JR/T 0025.17 §8.2.2 a)): ASCII
/// `"1234567812345678"`, so `ENTL = 0080`. Also GM/T 0009's default.
pub const DEFAULT_ID: &[u8] = b"1234567812345678";
/// Length of `04 ‖ X ‖ Y`.
pub const UNCOMPRESSED_LEN: usize = 65;
/// Length of `X ‖ Y`.
pub const XY_LEN: usize = 64;
/// Length of a private key (the scalar `d`).
pub const PRIVATE_KEY_LEN: usize = 32;
/// Length of a raw signature `r ‖ s`.
pub const SIGNATURE_LEN: usize = 64;
/// Length of the SM3 digest `C3` in a ciphertext.
const C3_LEN: usize = 32;

/// `n - 1`, `n` the order of the base point: not a valid private key.
const ORDER_MINUS_ONE: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x72, 0x03, 0xDF, 0x6B, 0x21, 0xC6, 0x05, 0x2B, 0x53, 0xBB, 0xF4, 0x09, 0x39, 0xD5, 0x41, 0x22,
];

// The recommended curve's parameters (GM/T 0003.5), hashed into `Z`.
const CURVE_A: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC,
];
const CURVE_B: [u8; 32] = [
    0x28, 0xE9, 0xFA, 0x9E, 0x9D, 0x9F, 0x5E, 0x34, 0x4D, 0x5A, 0x9E, 0x4B, 0xCF, 0x65, 0x09, 0xA7,
    0xF3, 0x97, 0x89, 0xF5, 0x15, 0xAB, 0x8F, 0x92, 0xDD, 0xBC, 0xBD, 0x41, 0x4D, 0x94, 0x0E, 0x93,
];
const GX: [u8; 32] = [
    0x32, 0xC4, 0xAE, 0x2C, 0x1F, 0x19, 0x81, 0x19, 0x5F, 0x99, 0x04, 0x46, 0x6A, 0x39, 0xC9, 0x94,
    0x8F, 0xE3, 0x0B, 0xBF, 0xF2, 0x66, 0x0B, 0xE1, 0x71, 0x5A, 0x45, 0x89, 0x33, 0x4C, 0x74, 0xC7,
];
const GY: [u8; 32] = [
    0xBC, 0x37, 0x36, 0xA2, 0xF4, 0xF6, 0x77, 0x9C, 0x59, 0xBD, 0xCE, 0xE3, 0x6B, 0x69, 0x21, 0x53,
    0xD0, 0xA9, 0x87, 0x7C, 0xC6, 0x2A, 0x47, 0x40, 0x02, 0xDF, 0x32, 0xE5, 0x21, 0x39, 0xF0, 0xA0,
];

/// Errors of SM2 operations, one per cause.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Sm2Error {
    /// A public key of the wrong length for its form.
    #[error("an SM2 public key in this form has {expected} bytes, not {actual}")]
    PublicKeyLength {
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// An uncompressed public key must start with `04`.
    #[error("an uncompressed SM2 public key starts with 04, not {0:02X}")]
    PublicKeyPrefix(u8),
    /// The coordinates are not a point of the curve (or are the point at infinity).
    #[error("the public key is not a point of the SM2 curve")]
    PointNotOnCurve,
    /// Not a DER SubjectPublicKeyInfo of an SM2 key.
    #[error("not a DER SubjectPublicKeyInfo holding an SM2 public key")]
    PublicKeyDer,
    /// A private key that is not 32 bytes.
    #[error("an SM2 private key has 32 bytes, not {0}")]
    PrivateKeyLength(usize),
    /// The private scalar is not in `[1, n-2]` (GM/T 0003.1).
    #[error("the private key is not in [1, n-2]")]
    PrivateKeyOutOfRange,
    /// Not a DER PKCS#8 or SEC1 private key on the SM2 curve.
    #[error("not a DER PKCS#8 or SEC1 SM2 private key")]
    PrivateKeyDer,
    /// Encoding a key as DER failed.
    #[error("DER encoding of the key failed")]
    KeyEncoding,
    /// The distinguishing identifier is longer than `ENTL` (16 bits of bit length) can say.
    #[error("a distinguishing identifier has at most 8191 bytes, this one has {0}")]
    IdTooLong(usize),
    /// A raw signature that is not 64 bytes.
    #[error("a raw SM2 signature r‖s has 64 bytes, not {0}")]
    SignatureLength(usize),
    /// Not a DER `SEQUENCE { r INTEGER, s INTEGER }`.
    #[error("not a DER SM2 signature")]
    SignatureDer,
    /// `r` or `s` is 0 or not below the curve order.
    #[error("signature component r or s is 0 or not below the curve order")]
    SignatureOutOfRange,
    /// The signature does not verify.
    #[error("the SM2 signature does not verify")]
    VerificationFailed,
    /// The signer produced no signature (a degenerate nonce; try again).
    #[error("SM2 signing produced no signature")]
    SigningFailed,
    /// The random number generator failed.
    #[error("the random number generator failed")]
    Rng,
    /// SM2 encryption needs at least one byte of plaintext.
    #[error("SM2 cannot encrypt an empty message")]
    EmptyPlaintext,
    /// Encryption failed inside the cipher.
    #[error("SM2 encryption failed")]
    EncryptionFailed,
    /// A raw ciphertext shorter than `C1 ‖ C3` plus one byte.
    #[error("an SM2 ciphertext has at least 98 bytes, this one has {0}")]
    CiphertextTooShort(usize),
    /// `C1` is not an uncompressed point of the curve.
    #[error("C1 of the ciphertext is not an uncompressed point of the SM2 curve")]
    CiphertextPoint,
    /// Not a DER `SM2Cipher` (GM/T 0009: x, y, C3, C2), or its point is not on the curve.
    #[error("not a DER SM2 ciphertext with a point of the curve")]
    CiphertextDer,
    /// `C3` does not match: wrong key or altered ciphertext.
    #[error("SM2 decryption failed: C3 does not match")]
    DecryptionFailed,
}

/// An SM2 public key (a point of the recommended curve, never the point at infinity).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sm2PublicKey {
    point: ::sm2::PublicKey,
}

impl Sm2PublicKey {
    /// From `04 ‖ X ‖ Y` (65 bytes), checking that the point is on the curve.
    pub fn from_uncompressed(bytes: &[u8]) -> Result<Self, Sm2Error> {
        if bytes.len() != UNCOMPRESSED_LEN {
            return Err(Sm2Error::PublicKeyLength {
                expected: UNCOMPRESSED_LEN,
                actual: bytes.len(),
            });
        }
        match bytes.first() {
            Some(0x04) => {}
            Some(other) => return Err(Sm2Error::PublicKeyPrefix(*other)),
            None => return Err(Sm2Error::PublicKeyPrefix(0)),
        }
        let point =
            ::sm2::PublicKey::from_sec1_bytes(bytes).map_err(|_| Sm2Error::PointNotOnCurve)?;
        Ok(Self { point })
    }

    /// From the 64-byte `X ‖ Y` of a PBOC certificate (JR/T 0025.17 §5), checking the point.
    pub fn from_xy(bytes: &[u8]) -> Result<Self, Sm2Error> {
        if bytes.len() != XY_LEN {
            return Err(Sm2Error::PublicKeyLength {
                expected: XY_LEN,
                actual: bytes.len(),
            });
        }
        let mut full = [0x04u8; UNCOMPRESSED_LEN];
        for (o, b) in full.iter_mut().skip(1).zip(bytes) {
            *o = *b;
        }
        Self::from_uncompressed(&full)
    }

    /// From a DER SubjectPublicKeyInfo (`openssl pkey -pubout -outform DER`).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, Sm2Error> {
        let point =
            ::sm2::PublicKey::from_public_key_der(der).map_err(|_| Sm2Error::PublicKeyDer)?;
        Ok(Self { point })
    }

    /// `04 ‖ X ‖ Y`.
    pub fn to_uncompressed(&self) -> [u8; UNCOMPRESSED_LEN] {
        let encoded = self.point.to_sec1_point(false);
        let mut out = [0u8; UNCOMPRESSED_LEN];
        for (o, b) in out.iter_mut().zip(encoded.as_bytes()) {
            *o = *b;
        }
        out
    }

    /// `X ‖ Y`, as PBOC certificates carry the key.
    pub fn to_xy(&self) -> [u8; XY_LEN] {
        let full = self.to_uncompressed();
        let mut out = [0u8; XY_LEN];
        for (o, b) in out.iter_mut().zip(full.iter().skip(1)) {
            *o = *b;
        }
        out
    }

    /// DER SubjectPublicKeyInfo (id-ecPublicKey with the SM2 curve OID), as OpenSSL reads it.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, Sm2Error> {
        self.point
            .to_public_key_der()
            .map(|doc| doc.as_bytes().to_vec())
            .map_err(|_| Sm2Error::KeyEncoding)
    }

    /// `Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)` (GM/T 0003.2, JR/T 0025.17
    /// §8.2.2 a)), `ENTL` being the bit length of `id` in two bytes. Any bytes are allowed as
    /// `id`, up to 8191 bytes.
    pub fn z(&self, id: &[u8]) -> Result<[u8; 32], Sm2Error> {
        let entl = id
            .len()
            .checked_mul(8)
            .and_then(|bits| u16::try_from(bits).ok())
            .ok_or(Sm2Error::IdTooLong(id.len()))?;
        let xy = self.to_xy();
        Ok(sm3::digest_parts(&[
            &entl.to_be_bytes(),
            id,
            &CURVE_A,
            &CURVE_B,
            &GX,
            &GY,
            &xy,
        ]))
    }

    /// The digest that is signed: `e = SM3(Z ‖ M)` (JR/T 0025.17 §8.2.2 b)).
    pub fn message_digest(&self, id: &[u8], message: &[u8]) -> Result<[u8; 32], Sm2Error> {
        let z = self.z(id)?;
        Ok(sm3::digest_parts(&[&z, message]))
    }

    /// Verify a signature over `message` with the signer's identifier `id` (JR/T 0025.17
    /// §8.2.3; PBOC uses [`DEFAULT_ID`]).
    pub fn verify(
        &self,
        id: &[u8],
        message: &[u8],
        signature: &Sm2Signature,
    ) -> Result<(), Sm2Error> {
        let e = self.message_digest(id, message)?;
        self.verify_prehash(&e, signature)
    }

    /// Verify a signature over a digest `e` already computed (JR/T 0025.17 §8.2.3 c)).
    pub fn verify_prehash(&self, e: &[u8; 32], signature: &Sm2Signature) -> Result<(), Sm2Error> {
        // The identifier given to the crate only feeds its own `Z`, which is not used here.
        let verifier =
            ::sm2::dsa::VerifyingKey::new("", self.point).map_err(|_| Sm2Error::PointNotOnCurve)?;
        verifier
            .verify_prehash(e, &signature.inner)
            .map_err(|_| Sm2Error::VerificationFailed)
    }

    /// Encrypt to the raw form `C1 ‖ C3 ‖ C2` (GM/T 0003.4 with the C1C3C2 order of
    /// GM/T 0009): `C1 = 04 ‖ x1 ‖ y1` (65 bytes), `C3` the 32-byte SM3 check, `C2` as long as
    /// the message.
    pub fn encrypt<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        message: &[u8],
    ) -> Result<Vec<u8>, Sm2Error> {
        self.encrypt_with(rng, message, |key, rng, msg| key.encrypt(rng, msg))
    }

    /// Encrypt to DER `SM2Cipher ::= SEQUENCE { x INTEGER, y INTEGER, C3 OCTET STRING,
    /// C2 OCTET STRING }` (GM/T 0009), the form `openssl pkeyutl -encrypt` writes.
    pub fn encrypt_der<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        message: &[u8],
    ) -> Result<Vec<u8>, Sm2Error> {
        self.encrypt_with(rng, message, |key, rng, msg| key.encrypt_der(rng, msg))
    }

    fn encrypt_with<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        message: &[u8],
        f: impl FnOnce(
            &::sm2::pke::EncryptingKey,
            &mut WatchedRng<'_, R>,
            &[u8],
        ) -> Result<Vec<u8>, ::sm2::elliptic_curve::Error>,
    ) -> Result<Vec<u8>, Sm2Error> {
        if message.is_empty() {
            return Err(Sm2Error::EmptyPlaintext);
        }
        let key = ::sm2::pke::EncryptingKey::new_with_mode(self.point, ::sm2::pke::Mode::C1C3C2);
        let mut watched = WatchedRng::new(rng);
        let result = f(&key, &mut watched, message);
        result.map_err(|_| {
            if watched.failed {
                Sm2Error::Rng
            } else {
                Sm2Error::EncryptionFailed
            }
        })
    }
}

impl core::fmt::Debug for Sm2PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Sm2PublicKey(04")?;
        for b in self.to_xy() {
            write!(f, "{b:02X}")?;
        }
        f.write_str(")")
    }
}

/// An SM2 private key with its public key. The scalar is zeroized on drop and `Debug` shows
/// only the public key.
#[derive(Clone)]
pub struct Sm2PrivateKey {
    // `elliptic_curve::SecretKey` zeroizes its scalar on drop.
    secret: ::sm2::SecretKey,
    public: Sm2PublicKey,
}

impl Sm2PrivateKey {
    /// A new key pair from `rng` (GM/T 0003.1: `d` uniform in `[1, n-2]`; the crate draws
    /// from `[1, n-1]` and the one value `n-1` is drawn again).
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Sm2Error> {
        // n-1 comes with probability 2^-256; a generator that keeps giving it is broken.
        for _ in 0..8 {
            let secret = ::sm2::SecretKey::try_generate_from_rng(rng).map_err(|_| Sm2Error::Rng)?;
            if let Ok(key) = Self::from_secret(secret) {
                return Ok(key);
            }
        }
        Err(Sm2Error::Rng)
    }

    /// A new key pair from the operating system's random number generator.
    pub fn generate_os() -> Result<Self, Sm2Error> {
        Self::generate(&mut getrandom::SysRng)
    }

    /// From the 32-byte big-endian scalar `d`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Sm2Error> {
        if bytes.len() != PRIVATE_KEY_LEN {
            return Err(Sm2Error::PrivateKeyLength(bytes.len()));
        }
        let secret =
            ::sm2::SecretKey::from_slice(bytes).map_err(|_| Sm2Error::PrivateKeyOutOfRange)?;
        Self::from_secret(secret)
    }

    /// From DER: PKCS#8 (`openssl genpkey -outform DER`) or SEC1 `ECPrivateKey`
    /// (`openssl pkey -outform DER`).
    pub fn from_der(der: &[u8]) -> Result<Self, Sm2Error> {
        let secret = ::sm2::SecretKey::from_pkcs8_der(der)
            .or_else(|_| ::sm2::SecretKey::from_sec1_der(der))
            .map_err(|_| Sm2Error::PrivateKeyDer)?;
        Self::from_secret(secret)
    }

    /// Keep `d` in `[1, n-2]` (GM/T 0003.1): with `d = n-1`, `1 + d` has no inverse and no
    /// signature can be made.
    fn from_secret(secret: ::sm2::SecretKey) -> Result<Self, Sm2Error> {
        if super::ct_eq(&secret.to_bytes(), &ORDER_MINUS_ONE) {
            return Err(Sm2Error::PrivateKeyOutOfRange);
        }
        let public = Sm2PublicKey {
            point: secret.public_key(),
        };
        Ok(Self { secret, public })
    }

    /// The public key.
    pub fn public_key(&self) -> &Sm2PublicKey {
        &self.public
    }

    /// The 32-byte scalar `d`, in a zeroizing buffer. Handle with care.
    pub fn expose_bytes(&self) -> Zeroizing<[u8; PRIVATE_KEY_LEN]> {
        Zeroizing::new(self.secret.to_bytes().into())
    }

    /// PKCS#8 DER, in a zeroizing buffer (OpenSSL reads it with `-keyform DER`).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Sm2Error> {
        let doc = self
            .secret
            .to_pkcs8_der()
            .map_err(|_| Sm2Error::KeyEncoding)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// Sign `message` for the signer identifier `id` (JR/T 0025.17 §8.2.2; PBOC uses
    /// [`DEFAULT_ID`]). Deterministic: the same key and message give the same signature.
    pub fn sign(&self, id: &[u8], message: &[u8]) -> Result<Sm2Signature, Sm2Error> {
        let e = self.public.message_digest(id, message)?;
        self.sign_prehash(&e)
    }

    /// Sign with fresh randomness from `rng` mixed into the nonce.
    pub fn sign_with_rng<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        id: &[u8],
        message: &[u8],
    ) -> Result<Sm2Signature, Sm2Error> {
        let e = self.public.message_digest(id, message)?;
        self.sign_prehash_with_rng(rng, &e)
    }

    /// Sign a digest `e` computed elsewhere (the card side of JR/T 0025.17 §8.2.2 c)).
    pub fn sign_prehash(&self, e: &[u8; 32]) -> Result<Sm2Signature, Sm2Error> {
        let signer = self.signer()?;
        signer
            .sign_prehash(e)
            .map(|inner| Sm2Signature { inner })
            .map_err(|_| Sm2Error::SigningFailed)
    }

    /// Sign a digest `e` with fresh randomness from `rng` mixed into the nonce.
    pub fn sign_prehash_with_rng<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        e: &[u8; 32],
    ) -> Result<Sm2Signature, Sm2Error> {
        let signer = self.signer()?;
        let mut watched = WatchedRng::new(rng);
        let result = signer.sign_prehash_with_rng(&mut watched, e);
        result.map(|inner| Sm2Signature { inner }).map_err(|_| {
            if watched.failed {
                Sm2Error::Rng
            } else {
                Sm2Error::SigningFailed
            }
        })
    }

    /// The crate's signer, built for one operation: `sm2::dsa::SigningKey` does not zeroize its
    /// scalar, so it is not kept beyond the call.
    fn signer(&self) -> Result<::sm2::dsa::SigningKey, Sm2Error> {
        ::sm2::dsa::SigningKey::from_nonzero_scalar("", self.secret.to_nonzero_scalar())
            .map_err(|_| Sm2Error::SigningFailed)
    }

    /// Decrypt the raw form `C1 ‖ C3 ‖ C2` (GM/T 0003.4). The plaintext comes back in a
    /// zeroizing buffer.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, Sm2Error> {
        check_raw_ciphertext(ciphertext)?;
        self.decrypter()
            .decrypt(ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| Sm2Error::DecryptionFailed)
    }

    /// Decrypt the DER form (GM/T 0009 `SM2Cipher`, as `openssl pkeyutl -encrypt` writes it).
    pub fn decrypt_der(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, Sm2Error> {
        let raw = ciphertext_der_to_raw(ciphertext)?;
        self.decrypt(&raw)
    }

    /// The crate's decrypter, built for one operation (it neither zeroizes nor redacts).
    fn decrypter(&self) -> ::sm2::pke::DecryptingKey {
        ::sm2::pke::DecryptingKey::new_with_mode(
            self.secret.to_nonzero_scalar(),
            ::sm2::pke::Mode::C1C3C2,
        )
    }
}

impl core::fmt::Debug for Sm2PrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sm2PrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// An SM2 signature `(r, s)`, both in `[1, n-1]`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sm2Signature {
    inner: ::sm2::dsa::Signature,
}

impl Sm2Signature {
    /// From the raw `r ‖ s` (64 bytes) that PBOC appends to signed data (JR/T 0025.17 §8.2.2 d)).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Sm2Error> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(Sm2Error::SignatureLength(bytes.len()));
        }
        let inner =
            ::sm2::dsa::Signature::from_slice(bytes).map_err(|_| Sm2Error::SignatureOutOfRange)?;
        Ok(Self { inner })
    }

    /// From DER `SEQUENCE { r INTEGER, s INTEGER }` (OpenSSL, X.509).
    pub fn from_der(der: &[u8]) -> Result<Self, Sm2Error> {
        let parsed = ::sm2::dsa::DerSignature::try_from(der).map_err(|_| Sm2Error::SignatureDer)?;
        let inner =
            ::sm2::dsa::Signature::try_from(parsed).map_err(|_| Sm2Error::SignatureOutOfRange)?;
        Ok(Self { inner })
    }

    /// `r ‖ s`, 64 bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.inner.to_bytes().into()
    }

    /// DER `SEQUENCE { r INTEGER, s INTEGER }`.
    pub fn to_der(&self) -> Vec<u8> {
        self.inner.to_der().as_bytes().to_vec()
    }
}

impl core::fmt::Debug for Sm2Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Sm2Signature(")?;
        for b in self.to_bytes() {
            write!(f, "{b:02X}")?;
        }
        f.write_str(")")
    }
}

/// Convert a DER ciphertext (GM/T 0009 `SM2Cipher`) to the raw `C1 ‖ C3 ‖ C2`.
pub fn ciphertext_der_to_raw(der: &[u8]) -> Result<Vec<u8>, Sm2Error> {
    let cipher = ::sm2::pke::Cipher::<'_, ::sm2::Sm2, ::sm3::Sm3>::from_der(der)
        .map_err(|_| Sm2Error::CiphertextDer)?;
    let raw = cipher
        .to_vec(::sm2::pke::Mode::C1C3C2, false)
        .map_err(|_| Sm2Error::CiphertextDer)?;
    check_raw_ciphertext(&raw)?;
    Ok(raw)
}

/// Convert a raw `C1 ‖ C3 ‖ C2` ciphertext to DER (GM/T 0009 `SM2Cipher`).
pub fn ciphertext_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, Sm2Error> {
    check_raw_ciphertext(raw)?;
    let cipher =
        ::sm2::pke::Cipher::<'_, ::sm2::Sm2, ::sm3::Sm3>::from_slice(raw, ::sm2::pke::Mode::C1C3C2)
            .map_err(|_| Sm2Error::CiphertextPoint)?;
    cipher.to_der().map_err(|_| Sm2Error::CiphertextDer)
}

/// Length and `C1` checks of a raw ciphertext, so that each failure has its own error.
fn check_raw_ciphertext(raw: &[u8]) -> Result<(), Sm2Error> {
    if raw.len() < UNCOMPRESSED_LEN + C3_LEN + 1 {
        return Err(Sm2Error::CiphertextTooShort(raw.len()));
    }
    let (c1, _) = raw.split_at(UNCOMPRESSED_LEN);
    if c1.first() != Some(&0x04) {
        return Err(Sm2Error::CiphertextPoint);
    }
    ::sm2::PublicKey::from_sec1_bytes(c1).map_err(|_| Sm2Error::CiphertextPoint)?;
    Ok(())
}

/// Passes a caller's RNG to the `sm2` crate and remembers whether it failed, so that an RNG
/// failure is reported as such and not as a failure of the algorithm.
struct WatchedRng<'a, R: ?Sized> {
    rng: &'a mut R,
    failed: bool,
}

impl<'a, R: TryRng + ?Sized> WatchedRng<'a, R> {
    fn new(rng: &'a mut R) -> Self {
        Self { rng, failed: false }
    }

    fn watch<T>(&mut self, result: Result<T, R::Error>) -> Result<T, R::Error> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl<R: TryRng + ?Sized> TryRng for WatchedRng<'_, R> {
    type Error = R::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let r = self.rng.try_next_u32();
        self.watch(r)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let r = self.rng.try_next_u64();
        self.watch(r)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let r = self.rng.try_fill_bytes(dst);
        self.watch(r)
    }
}

impl<R: TryCryptoRng + ?Sized> TryCryptoRng for WatchedRng<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;
    use ::sm2::elliptic_curve::point::AffineCoordinates as _;

    #[test]
    fn curve_constants_match_the_crate() {
        let g = ::sm2::ProjectivePoint::GENERATOR;
        let affine = g.to_affine();
        let x: [u8; 32] = affine.x().into();
        assert_eq!(x, GX);
        let encoded = affine.to_sec1_point(false);
        assert_eq!(&encoded.as_bytes()[33..], &GY);
    }

    #[test]
    fn private_key_range() {
        assert_eq!(
            Sm2PrivateKey::from_bytes(&ORDER_MINUS_ONE).err(),
            Some(Sm2Error::PrivateKeyOutOfRange)
        );
        let mut n = ORDER_MINUS_ONE;
        n[31] = 0x23;
        assert_eq!(
            Sm2PrivateKey::from_bytes(&n).err(),
            Some(Sm2Error::PrivateKeyOutOfRange)
        );
        assert_eq!(
            Sm2PrivateKey::from_bytes(&[0; 32]).err(),
            Some(Sm2Error::PrivateKeyOutOfRange)
        );
        let mut n_minus_2 = ORDER_MINUS_ONE;
        n_minus_2[31] = 0x21;
        let key = Sm2PrivateKey::from_bytes(&n_minus_2).unwrap();
        key.public_key()
            .verify(DEFAULT_ID, b"m", &key.sign(DEFAULT_ID, b"m").unwrap())
            .unwrap();
    }

    #[test]
    fn debug_hides_private_scalar() {
        let key = Sm2PrivateKey::from_bytes(&[0x11; 32]).unwrap();
        let text = format!("{key:?}");
        assert!(!text.contains("1111111111"), "{text}");
        assert!(text.contains("Sm2PublicKey(04"), "{text}");
    }
}
