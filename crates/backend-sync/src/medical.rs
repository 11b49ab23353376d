//! Offline medical-account debits (医保个人账户): a pharmacy counter debits the cardholder's
//! medical account, which lives at the backend, not on the card (docs/sync-protocol.md,
//! "Medical-account debits").
//!
//! There is no PBOC cryptogram. The card attests the debit itself: the terminal makes a
//! challenge bound to the entry ([`challenge`]: SM3 over the terminal, the idempotency id, the
//! amount, the currency, the time and the card number) and sends it as the terminal dynamic data
//! of INTERNAL AUTHENTICATE in the card's certificate application. The card signs
//! `15 ‖ LDD ‖ ICC dynamic data ‖ challenge` with its SM2 key (JR/T 0025.17 §5.2.4 表9, the
//! format `card_core::ssse::auth` verifies; the card takes 4 to 32 bytes, the digest is 32).
//! The entry carries that signature with the certificates that verify it: the issuer
//! certificate (format `12`) under a CA key of the SSSE trust store, and the ICC certificate
//! (format `14`) over the card's key, its PAN and, as the static data it authenticates, the card
//! number ‖ the social-security number ([`MedicalDebit`]). A signature is thus tied to one card,
//! one cardholder and one entry: moved to another amount, another terminal or another entry, the
//! challenge differs; with another card's certificate, the chain does not verify.
//!
//! Who checks what:
//!
//! - the terminal, while the card is in the reader: [`attest`] reads the certificates, has the
//!   card sign the challenge and verifies both the way the server will ([`MedicalDebit::verify_card`]);
//! - the ledger, when it records the debit: the binding ([`MedicalDebit::check_binding`]), the
//!   hot list, and the cardholder's medical balance (`Ledger::record_medical_debit`);
//! - the server, before it books: the binding, the chain to a CA key of its SSSE trust store, the
//!   signature, and its own medical balance of the cardholder.
//!
//! The sequence number is not bound: the ledger hands it out in the transaction that records the
//! debit, after the card has signed. The idempotency id names the entry instead (16 random bytes
//! the terminal makes before the card signs, unique on the server), and it also makes the
//! challenge fresh, as INTERNAL AUTHENTICATE needs.

use std::fmt;

use card_core::channel::{CardChannel, CardSession, SendError};
use card_core::crypto::sm2_cert::{self, Sm2CertError, StaticData, TrustStore, YearMonth};
use card_core::crypto::sm3;
use card_core::ssse::auth::{self, AuthError, SSSE_RID};
use card_core::ssse::fields::{CardNumber, IdNumber};
use card_core::ssse::records::Identity;
use card_core::status::StatusWord;
use serde::{Deserialize, Serialize};

use crate::entry::{HexArray, IdempotencyId, Pan, TerminalId, TxnTime};

/// The domain separator at the start of the challenge's input.
pub const CHALLENGE_DOMAIN: &[u8] = b"SSCARD-MEDICAL-DEBIT-V1";

/// Length of the challenge: an SM3 digest.
pub const CHALLENGE_LEN: usize = sm3::DIGEST_LEN;

/// Most bytes of each certificate or signature object in the evidence (a format `12` or `14`
/// certificate with an SM2 key is under 160 bytes; signed dynamic data under 330).
pub const MAX_EVIDENCE_BYTES: usize = 512;

/// The challenge the card signs for a medical debit: SM3 over
///
/// ```text
/// "SSCARD-MEDICAL-DEBIT-V1" ‖ 00
///   ‖ len(terminal id) (1 byte) ‖ terminal id (ASCII)
///   ‖ idempotency id (16 bytes)
///   ‖ amount in fen (8 bytes, big-endian)
///   ‖ currency (2 bytes, big-endian; 156 = 0x009C)
///   ‖ txn_time (14 ASCII digits, YYYYMMDDhhmmss)
///   ‖ len(card number) (1 byte) ‖ card number (EF05 tag 07, ASCII, 9 characters)
/// ```
///
/// The card number is the one the ICC certificate authenticates (with the social-security
/// number), not the card identifier of EF05 `01`, which no certificate covers. The terminal
/// computes it before INTERNAL AUTHENTICATE, the ledger and the server again from the entry.
pub fn challenge(
    terminal: &TerminalId,
    idempotency_id: &IdempotencyId,
    amount_fen: u64,
    currency: u16,
    txn_time: &TxnTime,
    card_no: &CardNumber,
) -> [u8; CHALLENGE_LEN] {
    let t = terminal.as_str().as_bytes();
    let c = card_no.reveal().as_bytes();
    // A terminal id has at most 32 characters and a card number 9: the lengths fit a byte.
    let t_len = [u8::try_from(t.len()).unwrap_or(u8::MAX)];
    let c_len = [u8::try_from(c.len()).unwrap_or(u8::MAX)];
    sm3::digest_parts(&[
        CHALLENGE_DOMAIN,
        &[0x00],
        &t_len,
        t,
        idempotency_id.as_bytes(),
        &amount_fen.to_be_bytes(),
        &currency.to_be_bytes(),
        txn_time.as_str().as_bytes(),
        &c_len,
        c,
    ])
}

/// Why a medical debit's evidence does not hold, one variant per cause. Messages never repeat
/// an identity.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MedicalError {
    /// The challenge the card signed is not the one the entry gives (another amount, terminal,
    /// time, idempotency id or card number).
    #[error("the challenge the card signed does not name this entry")]
    Binding,
    /// The trust store has no usable CA key (unknown, or expired) for the issuer certificate.
    #[error("no usable SSSE CA key with index {index:02X}")]
    UnknownCa {
        /// The CA key index of the evidence.
        index: u8,
    },
    /// The issuer or ICC certificate does not verify for this PAN, card number and
    /// social-security number (another card's certificate, an altered one, expired).
    #[error("certificate rejected: {0}")]
    Certificate(Sm2CertError),
    /// The card's signature over the challenge does not verify with the certified key.
    #[error("the card's signature over the challenge is not valid: {0}")]
    Signature(Sm2CertError),
}

/// Bytes of a certificate or signature object, upper-case hex on the wire, 1 to
/// [`MAX_EVIDENCE_BYTES`] bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EvidenceBytes(Vec<u8>);

impl EvidenceBytes {
    /// From bytes; `None` if empty or longer than [`MAX_EVIDENCE_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (!bytes.is_empty() && bytes.len() <= MAX_EVIDENCE_BYTES).then_some(Self(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<String> for EvidenceBytes {
    type Error = crate::entry::FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let err = crate::entry::FieldError::Hex {
            field: "evidence",
            expected: MAX_EVIDENCE_BYTES * 2,
        };
        if s.len() > MAX_EVIDENCE_BYTES * 2 {
            return Err(err);
        }
        hex::decode(&s).ok().and_then(Self::new).ok_or(err)
    }
}

impl From<EvidenceBytes> for String {
    fn from(b: EvidenceBytes) -> Self {
        hex::encode_upper(b.0)
    }
}

impl fmt::Debug for EvidenceBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvidenceBytes({} bytes)", self.0.len())
    }
}

/// What the card gave: the certificates of its certificate application (EF 0018) and its
/// answer to INTERNAL AUTHENTICATE over the challenge.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardAttestation {
    /// The CA public key index (`8F`) under the SSSE RID `D156000005`.
    pub ca_index: u8,
    /// The issuer public-key certificate (`90`, format `12`).
    pub issuer_certificate: EvidenceBytes,
    /// The ICC public-key certificate (`9F46`, format `14`); it holds the PAN, so it is sealed
    /// at rest like the PAN.
    pub icc_certificate: EvidenceBytes,
    /// The challenge sent, [`challenge`] of the entry.
    pub challenge: HexArray<CHALLENGE_LEN>,
    /// The signed dynamic application data the card answered (`9F4B`, format `15`).
    pub signed_dynamic_data: EvidenceBytes,
}

/// A medical debit's identity and evidence: the card number and social-security number the ICC
/// certificate authenticates (they name the medical account), and the card's attestation.
/// Personal: sealed at rest on both sides, sent only inside the signed, TLS-protected upload.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicalDebit {
    /// The social-security card number (EF05 `07`).
    #[serde(with = "card_no_serde")]
    pub card_no: CardNumber,
    /// The social-security number (EF06 `08`), which names the medical account.
    #[serde(with = "ssn_serde")]
    pub ssn: IdNumber,
    /// The card's certificates and its signature over the challenge.
    pub attestation: CardAttestation,
}

impl fmt::Debug for MedicalDebit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MedicalDebit")
            .field("card_no", &self.card_no)
            .field("ssn", &self.ssn)
            .field("ca_index", &self.attestation.ca_index)
            .finish_non_exhaustive()
    }
}

/// The PAN as tag `5A` holds it: BCD, `F`-padded to whole bytes.
pub fn pan_bcd(pan: &Pan) -> Vec<u8> {
    let digits: Vec<u8> = pan
        .expose()
        .bytes()
        .map(|b| b.wrapping_sub(b'0') & 0x0f)
        .collect();
    digits
        .chunks(2)
        .map(|p| match p {
            [a, b] => (a << 4) | b,
            [a] => (a << 4) | 0x0f,
            _ => 0xff,
        })
        .collect()
}

impl MedicalDebit {
    /// The static data the ICC certificate authenticates: card number ‖ social-security number
    /// (as `card_core::ssse::auth::static_data`).
    pub fn static_data(&self) -> Vec<u8> {
        let mut out = self.card_no.reveal().as_bytes().to_vec();
        out.extend_from_slice(self.ssn.reveal().as_bytes());
        out
    }

    /// The challenge the card signed is [`challenge`] of these entry fields and this card
    /// number.
    pub fn check_binding(
        &self,
        terminal: &TerminalId,
        idempotency_id: &IdempotencyId,
        amount_fen: u64,
        currency: u16,
        txn_time: &TxnTime,
    ) -> Result<(), MedicalError> {
        let want = challenge(
            terminal,
            idempotency_id,
            amount_fen,
            currency,
            txn_time,
            &self.card_no,
        );
        if want == self.attestation.challenge.0 {
            Ok(())
        } else {
            Err(MedicalError::Binding)
        }
    }

    /// The card is genuine and signed the challenge: the issuer certificate verifies with the CA
    /// key of `trust` (RID `D156000005`, the evidence's index), the ICC certificate with the
    /// issuer key for `pan` and the static data card number ‖ social-security number, and the
    /// signed dynamic data over the challenge with the certified key (JR/T 0025.17 §5.1.2,
    /// §5.2.3, §5.2.4.2; `card_core::ssse::auth::authenticate_card` makes the same checks with
    /// the card in the reader). `month` is the month of the transaction: the certificates had
    /// to be valid when the card signed, not when the entry arrives.
    pub fn verify_card(
        &self,
        trust: &TrustStore,
        pan: &Pan,
        month: YearMonth,
    ) -> Result<(), MedicalError> {
        let a = &self.attestation;
        let statics = self.static_data();
        let icc_key = sm2_cert::verify_chain(
            trust,
            SSSE_RID,
            a.ca_index,
            a.issuer_certificate.as_bytes(),
            a.icc_certificate.as_bytes(),
            &pan_bcd(pan),
            &StaticData::records(&statics),
            month,
        )
        .map_err(|e| match e {
            Sm2CertError::UnknownCaKey { index, .. } | Sm2CertError::CaKeyExpired { index, .. } => {
                MedicalError::UnknownCa { index }
            }
            other => MedicalError::Certificate(other),
        })?;
        sm2_cert::verify_dynamic_signature(
            &icc_key,
            a.signed_dynamic_data.as_bytes(),
            &a.challenge.0,
        )
        .map_err(MedicalError::Signature)?;
        Ok(())
    }
}

/// The month of a transaction time, for certificate expiry.
pub fn txn_month(t: &TxnTime) -> YearMonth {
    let s = t.as_str();
    let n = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<u16>().ok());
    YearMonth {
        year: n(0, 4).unwrap_or(2000),
        month: n(4, 6).and_then(|m| u8::try_from(m).ok()).unwrap_or(1),
    }
}

/// Why [`attest`] failed, one variant per cause.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The exchange failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The card has no certificate application, or it is not personalised.
    #[error("the card has no card-authentication data ({0})")]
    NotPersonalised(StatusWord),
    /// The authentication data is not well-formed, or an element is missing or too long.
    #[error("card-authentication data malformed: {0}")]
    Malformed(&'static str),
    /// The card refused to sign the challenge.
    #[error("the card refused to sign the challenge ({0})")]
    Refused(StatusWord),
    /// The card's certificates or signature do not verify.
    #[error(transparent)]
    Evidence(#[from] MedicalError),
}

/// What [`attest`] returns: the PAN the certificates name (the entry's PAN) and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The PAN of EF 0018 `5A`.
    pub pan: Pan,
    /// Identity and evidence for `NewMedicalDebit`.
    pub medical: MedicalDebit,
}

fn evidence(bytes: &[u8], what: &'static str) -> Result<EvidenceBytes, AttestError> {
    EvidenceBytes::new(bytes.to_vec()).ok_or(AttestError::Malformed(what))
}

impl From<AuthError> for AttestError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Send(e) => Self::Send(e),
            AuthError::NotPersonalised(sw) => Self::NotPersonalised(sw),
            AuthError::Refused(sw) => Self::Refused(sw),
            AuthError::Malformed(what) => Self::Malformed(what),
            // Reading and signing verify nothing; the evidence is verified below as the
            // server will.
            _ => Self::Malformed("card-authentication data"),
        }
    }
}

/// The terminal's side, with the card in the reader after it was authenticated and its PIN
/// verified: select the certificate application, read its authentication data (EF 0018: `8F`,
/// `90`, `9F46`, `5A`), send INTERNAL AUTHENTICATE with `challenge` (from [`challenge`]), and
/// verify the answer exactly as the server will ([`MedicalDebit::verify_card`]) with the
/// terminal's trust store. `identity` is what was read from EF05/EF06; `month` the month of the
/// transaction.
pub fn attest<C: CardChannel>(
    s: &mut CardSession<C>,
    trust: &TrustStore,
    identity: &Identity,
    challenge: &[u8; CHALLENGE_LEN],
    month: YearMonth,
) -> Result<Attested, AttestError> {
    let data = auth::read_auth_data(s)?;
    let issuer_certificate = evidence(&data.issuer_certificate, "issuer certificate size")?;
    let icc_certificate = evidence(&data.icc_certificate, "ICC certificate size")?;
    let pan: Pan = data
        .pan_digits()
        .parse()
        .map_err(|_| AttestError::Malformed("PAN (5A) is not 12-19 digits"))?;
    let sdad = auth::sign_challenge(s, challenge)?;
    let medical = MedicalDebit {
        card_no: identity.card.card_number.clone(),
        ssn: identity.holder.ssn.clone(),
        attestation: CardAttestation {
            ca_index: data.ca_index,
            issuer_certificate,
            icc_certificate,
            challenge: HexArray(*challenge),
            signed_dynamic_data: evidence(&sdad, "signed dynamic data size")?,
        },
    };
    medical.verify_card(trust, &pan, month)?;
    Ok(Attested { pan, medical })
}

mod card_no_serde {
    use card_core::ssse::fields::CardNumber;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &CardNumber, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.reveal())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CardNumber, D::Error> {
        let text = zeroize::Zeroizing::new(String::deserialize(d)?);
        CardNumber::parse(&text).map_err(|_| D::Error::custom("invalid card number"))
    }
}

mod ssn_serde {
    use card_core::ssse::fields::IdNumber;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &IdNumber, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.reveal())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IdNumber, D::Error> {
        let text = zeroize::Zeroizing::new(String::deserialize(d)?);
        IdNumber::parse(&text).map_err(|_| D::Error::custom("invalid social-security number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_changes_with_every_bound_field() {
        let t: TerminalId = "COUNTER-1".parse().unwrap();
        let id = IdempotencyId::from_bytes([7; 16]);
        let time: TxnTime = "20250301101500".parse().unwrap();
        let card = CardNumber::parse("A00000011").unwrap();
        let base = challenge(&t, &id, 1234, 156, &time, &card);
        assert_eq!(base, challenge(&t, &id, 1234, 156, &time, &card));
        let others = [
            challenge(&"COUNTER-2".parse().unwrap(), &id, 1234, 156, &time, &card),
            challenge(
                &t,
                &IdempotencyId::from_bytes([8; 16]),
                1234,
                156,
                &time,
                &card,
            ),
            challenge(&t, &id, 1235, 156, &time, &card),
            challenge(&t, &id, 1234, 840, &time, &card),
            challenge(
                &t,
                &id,
                1234,
                156,
                &"20250301101501".parse().unwrap(),
                &card,
            ),
            challenge(
                &t,
                &id,
                1234,
                156,
                &time,
                &CardNumber::complete("A0000002").unwrap(),
            ),
        ];
        for o in others {
            assert_ne!(o, base);
        }
        // The layout, spelled out: a terminal or card implementing it elsewhere gets these bytes.
        let mut input = b"SSCARD-MEDICAL-DEBIT-V1\x00\x09COUNTER-1".to_vec();
        input.extend_from_slice(&[7; 16]);
        input.extend_from_slice(&1234u64.to_be_bytes());
        input.extend_from_slice(&[0x00, 0x9c]);
        input.extend_from_slice(b"20250301101500\x09A00000011");
        assert_eq!(base, sm3::digest(&input));
    }

    #[test]
    fn pan_bcd_pads_with_f() {
        let p: Pan = "6217000010000001".parse().unwrap();
        assert_eq!(
            pan_bcd(&p),
            vec![0x62, 0x17, 0x00, 0x00, 0x10, 0x00, 0x00, 0x01]
        );
        let p: Pan = "621700001000001".parse().unwrap();
        assert_eq!(pan_bcd(&p).last(), Some(&0x1f));
    }

    #[test]
    fn evidence_bytes_bounds_and_debug_hides_identity() {
        assert!(EvidenceBytes::try_from(String::new()).is_err());
        assert!(EvidenceBytes::try_from("0".repeat(MAX_EVIDENCE_BYTES * 2 + 2)).is_err());
        assert!(EvidenceBytes::try_from("zz".to_string()).is_err());
        let b = EvidenceBytes::try_from("0aFF".to_string()).unwrap();
        assert_eq!(String::from(b.clone()), "0AFF");
        let m = MedicalDebit {
            card_no: CardNumber::parse("A00000011").unwrap(),
            ssn: IdNumber::parse("110105198703153011").unwrap(),
            attestation: CardAttestation {
                ca_index: 1,
                issuer_certificate: b.clone(),
                icc_certificate: b.clone(),
                challenge: HexArray([0; 32]),
                signed_dynamic_data: b,
            },
        };
        let d = format!("{m:?}");
        assert!(
            !d.contains("110105198703153011") && !d.contains("A00000011"),
            "{d}"
        );
        let json = serde_json::to_string(&m).unwrap();
        let back: MedicalDebit = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let bad = json.replace("110105198703153011", "110105198703153012");
        let e = serde_json::from_str::<MedicalDebit>(&bad).unwrap_err();
        assert!(!e.to_string().contains("1101051987"), "{e}");
    }

    #[test]
    fn txn_month_reads_year_and_month() {
        let t: TxnTime = "20341231235959".parse().unwrap();
        assert_eq!(
            txn_month(&t),
            YearMonth {
                year: 2034,
                month: 12
            }
        );
    }
}
