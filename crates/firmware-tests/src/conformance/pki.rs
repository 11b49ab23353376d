//! The PKI application of third-generation cards: the issuer and card certificates chain to a
//! trust anchor and are in date, and the card signs a fresh challenge with the certified key
//! (JR/T 0025.17 §5.1.2, §5.2.3, §5.2.4 as the project's profile uses them,
//! docs/card-profile.md).

use card_core::apdu::Command;
use card_core::channel::{CardChannel, CardSession, SendError};
use card_core::crypto::sm2_cert::{IccCertificate, IssuerCertificate, Sm2CertError};
use card_core::ssse::auth::{self, AuthError, SSSE_RID};
use card_core::ssse::records::Identity;
use card_core::ssse::{self as app, Date};
use card_core::status::StatusWord;
use card_core::tlv::{Tag, TlvIter};

use super::dates::{self, Validity};
use super::{Outcome, Runner, Verdict, fail, pass, skip, warn};

const CERTIFICATES: &str = "Issuer and card certificates chain to a trust anchor, in date";
const CHALLENGE: &str = "Card signs a fresh challenge with its certified key";

/// The format of the certificate an error is about: `12` issuer, `14` card.
fn format_of(e: &Sm2CertError) -> Option<u8> {
    match e {
        Sm2CertError::Truncated { format, .. }
        | Sm2CertError::Length { format, .. }
        | Sm2CertError::Expired { format, .. }
        | Sm2CertError::SignatureAlgorithm { format, .. }
        | Sm2CertError::SignatureOutOfRange { format }
        | Sm2CertError::SignatureMismatch { format }
        | Sm2CertError::EncryptionAlgorithm { format, .. }
        | Sm2CertError::CurveParameter { format, .. }
        | Sm2CertError::PublicKeyLength { format, .. }
        | Sm2CertError::PublicKeyNotOnCurve { format } => Some(*format),
        Sm2CertError::Format { expected, .. } => Some(*expected),
        Sm2CertError::IssuerIdMismatch { .. } | Sm2CertError::Revoked { .. } => Some(0x12),
        Sm2CertError::PanMismatch => Some(0x14),
        _ => None,
    }
}

/// Which certificate, in words.
pub(crate) fn certificate_name(e: &Sm2CertError) -> &'static str {
    match format_of(e) {
        Some(0x12) => "issuer certificate",
        Some(0x14) => "card certificate",
        _ => match e {
            Sm2CertError::UnknownCaKey { .. } | Sm2CertError::CaKeyExpired { .. } => "trust anchor",
            _ => "certificate",
        },
    }
}

pub(crate) fn run<C: CardChannel>(r: &mut Runner<'_, C>, identity: Option<&Identity>) {
    let Some(identity) = identity else {
        for (id, title) in [
            ("pki.certificates", CERTIFICATES),
            ("pki.challenge", CHALLENGE),
        ] {
            r.skip(
                id,
                title,
                "the identity the card certificate is bound to (EF05/EF06) could not be read",
            );
        }
        return;
    };
    if !r.opts.trust.sm2().keys().iter().any(|k| k.rid == SSSE_RID) {
        for (id, title) in [
            ("pki.certificates", CERTIFICATES),
            ("pki.challenge", CHALLENGE),
        ] {
            r.skip(
                id,
                title,
                "no trust anchor for the social-security CA (RID D156000005) was given",
            );
        }
        return;
    }
    let third_generation = identity.card.spec_version.starts_with('3');
    let mut outcome: Option<Result<(), AuthError>> = None;
    let verdict = r.check("pki.certificates", CERTIFICATES, |s, o| {
        let mut challenge = [0u8; auth::CHALLENGE_LEN];
        if getrandom::fill(&mut challenge).is_err() {
            return skip("no random source for the challenge");
        }
        let result = auth::authenticate_card(
            s,
            o.trust.sm2(),
            identity,
            &challenge,
            dates::month(o.today),
        )
        .map(|_| ());
        let found = match &result {
            Ok(()) | Err(AuthError::Refused(_) | AuthError::BadSignature(_)) => {
                validity(s, o.today, o.expiry_warning_days)
            }
            Err(AuthError::Send(e)) => return Err(e.clone()),
            Err(AuthError::NotPersonalised(sw)) if third_generation => fail(format!(
                "a third-generation card without card-authentication data (EF 0018: {sw})"
            )),
            Err(AuthError::NotPersonalised(sw)) => skip(format!(
                "no PKI application (a card of specification {}): {sw}",
                identity.card.spec_version
            )),
            Err(AuthError::Certificate(e)) => {
                fail(format!("{} rejected: {e}", certificate_name(e)))
            }
            Err(e) => fail(e.to_string()),
        };
        outcome = Some(result);
        found
    });
    r.check("pki.challenge", CHALLENGE, |_, _| match outcome {
        Some(Ok(())) => pass(
            "INTERNAL AUTHENTICATE over a fresh 16-byte challenge: the signature (format 15) \
             verifies with the certified key",
        ),
        Some(Err(AuthError::Refused(sw))) => {
            fail(format!("the card refused INTERNAL AUTHENTICATE: {sw}"))
        }
        Some(Err(AuthError::BadSignature(e))) => fail(format!(
            "the signature over the challenge does not verify with the certified key: {e}"
        )),
        _ if verdict == Verdict::Skipped => skip("the certificates were not checked"),
        _ => skip("needs a certified card key; the certificates did not verify"),
    });
}

/// After the chain verified: the expiry months of both certificates against today.
fn validity<C: CardChannel>(s: &mut CardSession<C>, today: Date, window: u32) -> Outcome {
    let data = read_auth_data(s)?;
    let value = |tag| {
        TlvIter::new(&data)
            .find(Tag::new(tag))
            .ok()
            .flatten()
            .map(|t| t.value)
    };
    let issuer = value(0x90)
        .and_then(|c| IssuerCertificate::parse(c).ok())
        .map(|c| c.content.expiry.month());
    let card = value(0x9f46)
        .and_then(|c| IccCertificate::parse(c).ok())
        .map(|c| c.content.expiry.month());
    let (Some(issuer), Some(card)) = (issuer, card) else {
        return pass("the chain verifies (the expiry months could not be read again)");
    };
    let text = format!(
        "issuer certificate valid through {:02}/{}, card certificate through {:02}/{}",
        issuer.month, issuer.year, card.month, card.year
    );
    let ends = [issuer, card]
        .into_iter()
        .filter_map(dates::last_day)
        .map(|end| dates::validity(end, today, window));
    if ends.clone().any(|v| matches!(v, Validity::EndsSoon(_))) {
        return warn(format!(
            "the chain verifies, but a certificate expires soon: {text}"
        ));
    }
    pass(format!("the chain verifies: {text}"))
}

/// EF 0018 of the PKI application (selected), whole: the first part by SFI, the rest by offset
/// (ISO/IEC 7816-4 §7.2.3), at most 4 KiB.
fn read_auth_data<C: CardChannel>(s: &mut CardSession<C>) -> Result<Vec<u8>, SendError> {
    let r = s.send(&Command::new(0x00, 0xb0, 0x80 | app::SFI_PKI_AUTH_DATA, 0x00).expect_data())?;
    if !r.is_success() {
        return Ok(Vec::new());
    }
    let mut out = r.into_data();
    while out.len() % 256 == 0 && !out.is_empty() && out.len() < 4096 {
        let Ok(offset) = u16::try_from(out.len()) else {
            break;
        };
        let [p1, p2] = offset.to_be_bytes();
        let r = s.send(&Command::new(0x00, 0xb0, p1, p2).expect_data())?;
        if r.sw() != StatusWord::Success || r.data().is_empty() {
            break;
        }
        out.extend_from_slice(r.data());
    }
    Ok(out)
}
