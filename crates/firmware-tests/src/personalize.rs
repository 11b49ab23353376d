//! Personalisation: giving a card its keys and certificates, with hsm-sim as the key custodian.
//!
//! [`setup_issuer`] makes (or finds) the CA and issuer SM2 key pairs in the HSM and has the CA
//! sign the issuer certificate (format `12`). [`personalize_pki`] makes a card's SM2 key pair in
//! the HSM, has the issuer sign the ICC certificate (format `14`) over the card's identity, takes
//! the card's private key out of the HSM encrypted under the personalisation device's transport
//! key (the ZMK), and writes it and the certificates into the card image. The CA's and the
//! issuer's private keys never leave the HSM; the card's leaves only under the ZMK, and is
//! decrypted here, in the personalisation device, only to be written into the card.

use card_core::crypto::rsa::{ExpiryDate, YearMonth};
use card_core::crypto::sm2::{Sm2PrivateKey, Sm2PublicKey};
use card_core::crypto::sm2_cert::{CaKey, IccCertificate, IssuerCertificate, Sm2CertError};
use card_core::ssse::auth::SSSE_RID;
use card_core::tlv::{Tag, Tlv};
use hsm_sim::client::{Call, ClientError, HsmClient};
use hsm_sim::keys::BlockKey;
use hsm_sim::{ErrorCode, KeyType, Scheme};
use zeroize::Zeroizing;

use crate::fs::{EfBody, NodeKind};
use crate::image::CardImage;

/// Errors of personalisation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersoError {
    /// The HSM refused or failed.
    #[error("HSM: {0}")]
    Hsm(#[from] ClientError),
    /// A certificate could not be built.
    #[error("certificate: {0}")]
    Certificate(#[from] Sm2CertError),
    /// A key or value from the HSM is malformed.
    #[error("{0}")]
    Invalid(&'static str),
    /// The card image has no PKI application.
    #[error("the card image has no PKI application (EF0012/EF0018)")]
    NoPkiApplication,
}

/// What the terminals need from an issuer set-up: the CA key for their trust store, and what
/// personalisation needs: the issuer certificate and key label.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The CA key as terminals hold it.
    pub ca: CaKey,
    /// The issuer certificate, format `12`.
    pub issuer_certificate: Vec<u8>,
    /// The issuer key's label in the HSM.
    pub issuer_label: String,
    /// Issuer identifier (leftmost PAN digits, BCD, F-padded).
    pub issuer_id: [u8; 4],
}

/// Generate a key pair, or take the public key of the one already under `label`.
fn key_pair<C: Call>(
    hsm: &mut HsmClient<C>,
    key_type: KeyType,
    label: &str,
) -> Result<Sm2PublicKey, PersoError> {
    let xy = match hsm.generate_key(key_type, Scheme::Sm2, label) {
        Ok(g) => g
            .public
            .ok_or(PersoError::Invalid("the HSM returned no public key"))?,
        Err(ClientError::Hsm(ErrorCode::KeyExists)) => {
            let (t, xy) = hsm.public_key(label)?;
            if t != key_type {
                return Err(PersoError::Invalid("existing key has another type"));
            }
            xy
        }
        Err(e) => return Err(e.into()),
    };
    Sm2PublicKey::from_xy(&xy).map_err(|_| PersoError::Invalid("public key not on the curve"))
}

/// PAN digits as BCD, padded with `F` (cn).
pub fn pan_bcd(pan: &str) -> Result<Vec<u8>, PersoError> {
    if !(12..=19).contains(&pan.len()) || !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PersoError::Invalid("a PAN has 12 to 19 digits"));
    }
    let mut digits: Vec<u8> = pan.bytes().map(|b| b - b'0').collect();
    if digits.len() % 2 == 1 {
        digits.push(0x0f);
    }
    Ok(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Make the CA and issuer key pairs (labels `ca_label`, `issuer_label`) and the issuer
/// certificate. `issuer_bin` is the leftmost PAN digits that identify the issuer (3 to 8).
pub fn setup_issuer<C: Call>(
    hsm: &mut HsmClient<C>,
    ca_label: &str,
    ca_index: u8,
    issuer_label: &str,
    issuer_bin: &str,
    expiry: YearMonth,
) -> Result<Issuer, PersoError> {
    if !(3..=8).contains(&issuer_bin.len()) || !issuer_bin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PersoError::Invalid(
            "the issuer identifier has 3 to 8 digits",
        ));
    }
    let mut id_digits: Vec<u8> = issuer_bin.bytes().map(|b| b - b'0').collect();
    id_digits.resize(8, 0x0f);
    let issuer_id = [
        (id_digits[0] << 4) | id_digits[1],
        (id_digits[2] << 4) | id_digits[3],
        (id_digits[4] << 4) | id_digits[5],
        (id_digits[6] << 4) | id_digits[7],
    ];
    let ca_key = key_pair(hsm, KeyType::Sm2Ca, ca_label)?;
    let issuer_key = key_pair(hsm, KeyType::Sm2Issuer, issuer_label)?;
    let expiry = ExpiryDate::new(expiry).map_err(|_| PersoError::Invalid("bad expiry"))?;
    let cert = IssuerCertificate::new(issuer_id, expiry, [0x00, 0x00, 0x01], &issuer_key);
    let signature = hsm.sign_certificate(ca_label, &cert.to_signed_data()?)?;
    Ok(Issuer {
        ca: CaKey {
            rid: SSSE_RID,
            index: ca_index,
            public_key: ca_key,
            expiry,
        },
        issuer_certificate: cert.to_bytes(&signature)?,
        issuer_label: issuer_label.to_string(),
        issuer_id,
    })
}

/// What a card needs from personalisation besides the image.
#[derive(Debug, Clone)]
pub struct CardInput<'a> {
    /// The HSM label for the card's key pair (8 characters).
    pub label: &'a str,
    /// The PAN the certificates name.
    pub pan: &'a str,
    /// The static data the ICC certificate authenticates (card number ‖ SSN, see
    /// card_core::ssse::auth::static_data).
    pub static_data: &'a [u8],
    /// Certificate expiry.
    pub expiry: YearMonth,
    /// Certificate serial number.
    pub serial: [u8; 3],
}

fn write_transparent(image: &mut CardImage, sfi: u8, bytes: Vec<u8>) -> Result<(), PersoError> {
    let adf = image
        .fs
        .dfs_by_name(&card_core::ssse::PKI_ADF_AID)
        .first()
        .copied()
        .ok_or(PersoError::NoPkiApplication)?;
    let ef = image
        .fs
        .child_by_sfi(adf, sfi)
        .ok_or(PersoError::NoPkiApplication)?;
    match image.fs.node_mut(ef).map(|n| &mut n.kind) {
        Some(NodeKind::Ef {
            body: EfBody::Transparent { data, size },
            ..
        }) => {
            if bytes.len() > *size {
                *size = bytes.len();
            }
            *data = bytes;
            Ok(())
        }
        _ => Err(PersoError::NoPkiApplication),
    }
}

/// Personalise the card's PKI application: key pair, ICC certificate, authentication data.
/// `zmk` is the personalisation device's transport key, the clear twin of the HSM's ZMK
/// `zmk_label`.
pub fn personalize_pki<C: Call>(
    hsm: &mut HsmClient<C>,
    image: &mut CardImage,
    issuer: &Issuer,
    zmk_label: &str,
    zmk: &BlockKey,
    card: &CardInput<'_>,
) -> Result<Sm2PublicKey, PersoError> {
    let public = key_pair(hsm, KeyType::Sm2Icc, card.label)?;
    let (wrapped, _) = hsm.export_key(KeyType::Sm2Icc, zmk_label, card.label)?;
    let d = zmk
        .decrypt_ecb(&wrapped)
        .map_err(|_| PersoError::Invalid("the exported key does not decrypt"))?;
    let private = Sm2PrivateKey::from_bytes(&d)
        .map_err(|_| PersoError::Invalid("the exported key is not an SM2 key"))?;
    if private.public_key().to_xy() != public.to_xy() {
        return Err(PersoError::Invalid(
            "the exported key does not match its public key: wrong ZMK?",
        ));
    }
    let pan = pan_bcd(card.pan)?;
    let expiry = ExpiryDate::new(card.expiry).map_err(|_| PersoError::Invalid("bad expiry"))?;
    let cert = IccCertificate::new(&pan, expiry, card.serial, &public);
    let signature = hsm.sign_certificate(
        &issuer.issuer_label,
        &cert.to_signed_data(card.static_data)?,
    )?;
    let icc_certificate = cert.to_bytes(&signature)?;

    let auth = [
        Tlv::primitive(Tag::new(0x8f), vec![issuer.ca.index]),
        Tlv::primitive(Tag::new(0x90), issuer.issuer_certificate.clone()),
        Tlv::primitive(Tag::new(0x9f46), icc_certificate),
        Tlv::primitive(Tag::new(0x5a), pan),
    ];
    let mut bytes = Vec::new();
    for t in &auth {
        t.encode_into(&mut bytes)
            .map_err(|_| PersoError::Invalid("authentication data too long"))?;
    }
    write_transparent(image, card_core::ssse::SFI_PKI_AUTH_DATA, bytes)?;
    write_transparent(
        image,
        card_core::ssse::SFI_PKI_PUBLIC_KEY,
        public.to_uncompressed().to_vec(),
    )?;
    let d = Zeroizing::new(d.to_vec());
    image.keys.set_sm2_private(&d);
    Ok(public)
}

/// A CA key as one line of a trust-store file: `RID INDEX MMYY X‖Y` in hex.
pub fn trust_line(ca: &CaKey) -> String {
    format!(
        "{} {:02X} {} {}",
        hex::encode_upper(ca.rid),
        ca.index,
        hex::encode_upper(ca.expiry.to_bcd()),
        hex::encode_upper(ca.public_key.to_xy())
    )
}
