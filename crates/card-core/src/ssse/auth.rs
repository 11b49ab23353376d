//! Card authentication: is this a genuine card issued under a CA the terminal trusts?
//!
//! The card's PKI application (`PKI.社会保障` / `SS.CERT.ADF1`) holds, in EF 0018, the index of
//! the CA key (`8F`), the issuer certificate (`90`, format `12`), the ICC certificate (`9F46`,
//! format `14`) and the PAN (`5A`) the certificates name, and answers INTERNAL AUTHENTICATE with
//! signed dynamic data (format `15`) made with the card's SM2 key. The terminal:
//!
//! 1. verifies the issuer certificate with the CA key from its trust store, by RID and index
//!    (JR/T 0025.17 §5.1.2), and the ICC certificate with the issuer key (§5.2.3), the
//!    authenticated static data being the card number (EF05 `07`) and the social-security number
//!    (EF06 `08`) read before, so a genuine certificate cannot be moved to a card with another
//!    identity (project profile, docs/card-profile.md);
//! 2. sends a fresh challenge of its own and verifies the card's signature over it with the
//!    certified key (§5.2.4.2). An answer recorded from an earlier challenge does not verify.

use crate::apdu::Command;
use crate::channel::{CardChannel, CardSession, SendError};
use crate::crypto::rsa::YearMonth;
use crate::crypto::sm2::Sm2PublicKey;
use crate::crypto::sm2_cert::{self, Sm2CertError, StaticData, TrustStore};
use crate::status::StatusWord;
use crate::tlv::{Tag, TlvIter};

use super::records::Identity;
use super::{PKI_ADF_AID, SFI_PKI_AUTH_DATA};

/// The RID of the social-security card's certification authority (MOHRSS, the RID inside the
/// card identifier, docs/card-profile.md).
pub const SSSE_RID: [u8; 5] = [0xd1, 0x56, 0x00, 0x00, 0x05];

/// Length of the terminal's challenge.
pub const CHALLENGE_LEN: usize = 16;

/// Why a card is not accepted as genuine.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The exchange failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The card has no PKI application, or it is not personalised.
    #[error("the card has no card-authentication data ({0})")]
    NotPersonalised(StatusWord),
    /// The authentication data is not well-formed TLV, or an element is missing.
    #[error("card-authentication data malformed: {0}")]
    Malformed(&'static str),
    /// A certificate failed a verification step.
    #[error("certificate rejected: {0}")]
    Certificate(Sm2CertError),
    /// The card refused INTERNAL AUTHENTICATE.
    #[error("the card refused to sign the challenge ({0})")]
    Refused(StatusWord),
    /// The card's answer to the challenge does not verify with the certified key.
    #[error("the card's signature over the challenge is not valid: {0}")]
    BadSignature(Sm2CertError),
}

/// A card that proved it holds the key its certificates name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The certified ICC public key.
    pub icc_key: Sm2PublicKey,
    /// The CA key index used.
    pub ca_index: u8,
    /// The card's ICC dynamic number from its answer.
    pub icc_dynamic_number: Vec<u8>,
    /// The PAN the certificates name (BCD, `F`-padded, as tag `5A`).
    pub pan: Vec<u8>,
}

impl Authenticated {
    /// The PAN's digits.
    pub fn pan_digits(&self) -> String {
        bcd_digits(&self.pan)
    }
}

/// The static data the ICC certificate authenticates: card number ‖ social-security number,
/// as the card stores them (ASCII).
pub fn static_data(identity: &Identity) -> Vec<u8> {
    let mut out = identity.card.card_number.reveal().as_bytes().to_vec();
    out.extend_from_slice(identity.holder.ssn.reveal().as_bytes());
    out
}

fn value(data: &[u8], tag: u32) -> Result<&[u8], AuthError> {
    TlvIter::new(data)
        .find(Tag::new(tag))
        .map_err(|_| AuthError::Malformed("not BER-TLV"))?
        .map(|t| t.value)
        .ok_or(AuthError::Malformed(match tag {
            0x8f => "no CA key index (8F)",
            0x90 => "no issuer certificate (90)",
            0x9f46 => "no ICC certificate (9F46)",
            _ => "no PAN (5A)",
        }))
}

/// Largest authentication data accepted.
const MAX_AUTH_DATA: usize = 4096;

/// Read a whole transparent EF: the first part by SFI (P1 = `80 | SFI`), the rest from the
/// current EF by offset, until the card has no more (ISO/IEC 7816-4 §7.2.3).
fn read_binary<C: CardChannel>(
    s: &mut CardSession<C>,
    sfi: u8,
    limit: usize,
) -> Result<Vec<u8>, AuthError> {
    // The authentication data carries the PAN: traces get its length only.
    let r = s.send(
        &Command::new(0x00, 0xb0, 0x80 | sfi, 0x00)
            .expect_data()
            .sensitive_response(),
    )?;
    if !r.is_success() || r.data().is_empty() {
        return Err(AuthError::NotPersonalised(r.sw()));
    }
    let mut out = r.into_data();
    while out.len() % 256 == 0 && out.len() < limit {
        let offset = u16::try_from(out.len())
            .map_err(|_| AuthError::Malformed("authentication data too long"))?;
        let [p1, p2] = offset.to_be_bytes();
        let r = s.send(
            &Command::new(0x00, 0xb0, p1, p2)
                .expect_data()
                .sensitive_response(),
        )?;
        match r.sw() {
            StatusWord::Success if !r.data().is_empty() => out.extend_from_slice(r.data()),
            // Offset at the end of the file: nothing more.
            StatusWord::Success | StatusWord::WrongP1P2 | StatusWord::EndOfFile => break,
            sw => return Err(AuthError::NotPersonalised(sw)),
        }
    }
    if out.len() > limit {
        return Err(AuthError::Malformed("authentication data too long"));
    }
    Ok(out)
}

/// The card's authentication data (EF 0018 of the PKI application) as read, before anything
/// is verified: what a verifier elsewhere (the central server, for a medical debit) needs with
/// the card's signature to check the card again. `Debug` shows no PAN.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthData {
    /// The CA key index (`8F`).
    pub ca_index: u8,
    /// The issuer certificate (`90`).
    pub issuer_certificate: Vec<u8>,
    /// The ICC certificate (`9F46`).
    pub icc_certificate: Vec<u8>,
    /// The PAN the certificates name (`5A`, BCD, `F`-padded).
    pub pan: Vec<u8>,
}

impl core::fmt::Debug for AuthData {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuthData")
            .field("ca_index", &self.ca_index)
            .field("issuer_certificate_len", &self.issuer_certificate.len())
            .field("icc_certificate_len", &self.icc_certificate.len())
            .finish_non_exhaustive()
    }
}

impl AuthData {
    /// The PAN's digits.
    pub fn pan_digits(&self) -> String {
        bcd_digits(&self.pan)
    }
}

fn bcd_digits(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0f])
        .filter(|n| *n <= 9)
        .map(|n| char::from(b'0' + n))
        .collect()
}

/// Select the certificate application and read its authentication data (EF 0018), unverified.
pub fn read_auth_data<C: CardChannel>(s: &mut CardSession<C>) -> Result<AuthData, AuthError> {
    let r = s.send(
        &Command::new(0x00, 0xa4, 0x04, 0x00)
            .with_data(PKI_ADF_AID)
            .expect_data(),
    )?;
    if !r.is_success() {
        return Err(AuthError::NotPersonalised(r.sw()));
    }
    let data = read_binary(s, SFI_PKI_AUTH_DATA, MAX_AUTH_DATA)?;
    let data = data.as_slice();
    Ok(AuthData {
        ca_index: *value(data, 0x8f)?
            .first()
            .ok_or(AuthError::Malformed("empty CA key index"))?,
        issuer_certificate: value(data, 0x90)?.to_vec(),
        icc_certificate: value(data, 0x9f46)?.to_vec(),
        pan: value(data, 0x5a)?.to_vec(),
    })
}

/// Send INTERNAL AUTHENTICATE with `challenge` and return the card's signed dynamic data
/// (`9F4B`), unverified.
pub fn sign_challenge<C: CardChannel>(
    s: &mut CardSession<C>,
    challenge: &[u8],
) -> Result<Vec<u8>, AuthError> {
    let r = s.send(
        &Command::new(0x00, 0x88, 0x00, 0x00)
            .with_data(challenge)
            .expect_data(),
    )?;
    if !r.is_success() {
        return Err(AuthError::Refused(r.sw()));
    }
    let sdad = TlvIter::new(r.data())
        .find_deep(Tag::new(0x9f4b))
        .map_err(|_| AuthError::Malformed("INTERNAL AUTHENTICATE answer is not BER-TLV"))?
        .ok_or(AuthError::Malformed("no signed dynamic data (9F4B)"))?;
    Ok(sdad.value.to_vec())
}

/// Authenticate the card: certificates, then `challenge` (fresh random bytes from the caller;
/// [`CHALLENGE_LEN`] recommended). `identity` is what was read from EF05/EF06 before. A card
/// whose certificates fail is not asked to sign.
pub fn authenticate_card<C: CardChannel>(
    s: &mut CardSession<C>,
    trust: &TrustStore,
    identity: &Identity,
    challenge: &[u8],
    today: YearMonth,
) -> Result<Authenticated, AuthError> {
    let data = read_auth_data(s)?;
    let statics = static_data(identity);
    let icc_key = sm2_cert::verify_chain(
        trust,
        SSSE_RID,
        data.ca_index,
        &data.issuer_certificate,
        &data.icc_certificate,
        &data.pan,
        &StaticData::records(&statics),
        today,
    )
    .map_err(AuthError::Certificate)?;
    let sdad = sign_challenge(s, challenge)?;
    let signed = sm2_cert::verify_dynamic_signature(&icc_key, &sdad, challenge)
        .map_err(AuthError::BadSignature)?;
    let icc_dynamic_number = signed
        .icc_dynamic_number()
        .map_err(AuthError::BadSignature)?
        .to_vec();
    Ok(Authenticated {
        icc_key,
        ca_index: data.ca_index,
        icc_dynamic_number,
        pan: data.pan,
    })
}

/// Read a trust-store file ([`crate::trust_file`]) for its SM2 CA keys, the ones card
/// authentication uses; RSA lines (PBOC CAs of older cards) are read and left out. The line
/// number of the first bad line is in the error.
pub fn parse_trust_store(text: &str) -> Result<TrustStore, (usize, &'static str)> {
    crate::trust_file::parse(text).map(|store| store.sm2().clone())
}
