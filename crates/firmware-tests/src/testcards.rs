//! Issued test cards, good and deliberately broken, for the conformance suite
//! ([`crate::conformance`]) and the tools that run it.
//!
//! [`issue`] makes a card from an embedded fixture profile the way issuance does: the PKI
//! application personalised with keys and certificates from an in-memory hsm-sim
//! ([`crate::personalize`]), and a history of three electronic cash purchases in its
//! transaction log, written by the payment application's own log code with the ATC and the
//! balance moved as the purchases would move them. With it come the trust anchors a terminal
//! needs: the social-security CA from the HSM and the profile's PBOC CA.
//!
//! [`broken`] makes the same card with one [`Defect`]: a tampered certificate signature, a
//! blocked PIN, or a transaction log that contradicts itself and the ATC. Each defect is what
//! exactly one conformance check must catch.

use card_core::crypto::rsa::YearMonth;
use card_core::pboc::CaStore;
use card_core::ssse::{self, ReadStrategy};
use card_core::tlv::{Tag, TlvIter};
use hsm_sim::keys::{BlockKey, Secret};
use hsm_sim::{Hsm, HsmClient, InProcess, KeyType, Lmk, Scheme};

use crate::fs::{EfBody, NodeKind};
use crate::image::CardImage;
use crate::pboc::dol::{DolData, LOG_FORMAT};
use crate::pboc::profile::TerminalCaKey;
use crate::personalize::{self, CardInput};
use crate::{Profile, SoftCard};

/// A deliberate defect of a test card.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Defect {
    /// The card certificate (ICC certificate `9F46` in the PKI application's EF 0018) has one
    /// byte of its signature changed: the chain no longer verifies (`pki.certificates`).
    BadCertificate,
    /// The cardholder PIN has no tries left (`ssse.pin_tries`).
    PinBlocked,
    /// The transaction log contradicts itself and the card: two records share an ATC and the
    /// newest record's ATC is above the card's ATC (`pboc.log`).
    InconsistentLog,
    /// The payment application signs with another SM2 key than the one its ICC certificate
    /// carries, as a card with a copied certificate would: the certificate verifies, the
    /// signature over a fresh challenge does not (`pboc.dda`).
    WrongIccKey,
}

impl Defect {
    /// Every defect.
    pub const ALL: [Self; 4] = [
        Self::BadCertificate,
        Self::PinBlocked,
        Self::InconsistentLog,
        Self::WrongIccKey,
    ];

    /// Its name on command lines: `bad-cert`, `pin-blocked`, `bad-log`, `bad-icc-key`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadCertificate => "bad-cert",
            Self::PinBlocked => "pin-blocked",
            Self::InconsistentLog => "bad-log",
            Self::WrongIccKey => "bad-icc-key",
        }
    }

    /// The check of [`crate::conformance`] that must fail on a card with this defect.
    pub const fn failing_check(self) -> &'static str {
        match self {
            Self::BadCertificate => "pki.certificates",
            Self::PinBlocked => "ssse.pin_tries",
            Self::InconsistentLog => "pboc.log",
            Self::WrongIccKey => "pboc.dda",
        }
    }
}

impl std::str::FromStr for Defect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
                format!("{s:?} is not one of {}", names.join(", "))
            })
    }
}

/// Why a test card could not be made.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TestCardError {
    /// No embedded fixture of that name.
    #[error("no embedded profile named {0:?}")]
    NoProfile(String),
    /// The profile does not build.
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    /// The in-memory HSM failed.
    #[error("in-memory HSM: {0}")]
    Hsm(String),
    /// Personalisation failed.
    #[error(transparent)]
    Perso(#[from] personalize::PersoError),
    /// The card's identity could not be read back for the certificate's static data.
    #[error("reading the identity back: {0}")]
    Identity(#[from] ssse::SsseError),
    /// The image lacks what the defect changes.
    #[error("the card has no {0}")]
    Missing(&'static str),
}

/// A card image and the trust anchors that verify it.
#[derive(Debug, Clone)]
pub struct IssuedCard {
    /// The card.
    pub image: CardImage,
    /// The CAs: the social-security SM2 CA (RID `D156000005`) and the profile's PBOC CA
    /// (RID `A000000333`, SM2 or RSA).
    pub trust: CaStore,
    /// The anchors as a trust-store file (`card_core::trust_file`: SM2 and RSA lines, what
    /// `cardctl --trust` reads).
    pub trust_text: String,
}

impl IssuedCard {
    /// The card in memory, ready for a [`crate::VirtualSlot`].
    pub fn shared(&self) -> crate::SharedCard {
        std::sync::Arc::new(std::sync::Mutex::new(SoftCard::in_memory(
            self.image.clone(),
        )))
    }
}

/// The purchases of the history [`issue`] writes: amount in fen, date `YYMMDD`, time.
const HISTORY: [(u64, [u8; 3], [u8; 3]); 3] = [
    (1_250, [0x25, 0x03, 0x02], [0x09, 0x15, 0x00]),
    (800, [0x25, 0x06, 0x18], [0x14, 0x02, 0x30]),
    (2_000, [0x26, 0x01, 0x07], [0x11, 0x45, 0x10]),
];

/// Card `name` (an embedded fixture) issued with certificates from an in-memory HSM and three
/// purchases in its log (ATC 1 to 3).
pub fn issue(name: &str) -> Result<IssuedCard, TestCardError> {
    let profile =
        Profile::embedded(name).ok_or_else(|| TestCardError::NoProfile(name.to_string()))?;
    let mut image = profile.build()?;
    let mut trust = CaStore::new();
    let mut trust_text = String::new();

    let hsm_err = |e: &dyn std::fmt::Display| TestCardError::Hsm(e.to_string());
    let zmk_bytes = [0x5au8; 16];
    let hsm =
        std::sync::Arc::new(Hsm::in_memory(Lmk::new(&[1u8; 16]), 4).map_err(|e| hsm_err(&e))?);
    hsm.form_key_from_components("ZMKPERSO", KeyType::Zmk, Scheme::Sm4, &[&zmk_bytes])
        .map_err(|e| hsm_err(&e))?;
    let mut client = HsmClient::new(InProcess::new(hsm));
    let until = YearMonth {
        year: 2035,
        month: 12,
    };
    let issuer =
        personalize::setup_issuer(&mut client, "CAROOT01", 1, "ISSUER01", "62170000", until)?;
    let identity = ssse::read_identity(
        &mut card_core::CardSession::new(SoftCard::in_memory(image.clone())),
        ReadStrategy::AllRecords,
    )?;
    let statics = ssse::auth::static_data(&identity);
    let zmk =
        BlockKey::new(Scheme::Sm4, &Secret::new(zmk_bytes.to_vec())).map_err(|e| hsm_err(&e))?;
    personalize::personalize_pki(
        &mut client,
        &mut image,
        &issuer,
        "ZMKPERSO",
        &zmk,
        &CardInput {
            label: "ICC00001",
            pan: "6217000010001234567",
            static_data: &statics,
            expiry: YearMonth {
                year: 2034,
                month: 12,
            },
            serial: [0, 0, 1],
        },
    )?;
    trust_text.push_str(&personalize::trust_line(&issuer.ca));
    trust_text.push('\n');
    trust.add_sm2(issuer.ca);

    if let Some(section) = &profile.pboc {
        match section.ca_key()? {
            TerminalCaKey::Sm2(ca) => {
                trust_text.push_str(&personalize::trust_line(&ca));
                trust_text.push('\n');
                trust.add_sm2(ca);
            }
            TerminalCaKey::Rsa(ca) => {
                trust_text.push_str(&card_core::trust_file::rsa_line(&ca));
                trust_text.push('\n');
                trust.add_rsa(ca);
            }
        }
        if image.pboc.as_ref().is_some_and(|p| p.ec.is_some()) {
            let atcs = [1, 2, 3];
            write_history(&mut image, &atcs, 3)?;
        }
    }
    Ok(IssuedCard {
        image,
        trust,
        trust_text,
    })
}

/// Card `name` issued as [`issue`] does, then given `defect`.
pub fn broken(name: &str, defect: Defect) -> Result<IssuedCard, TestCardError> {
    let mut card = issue(name)?;
    match defect {
        Defect::BadCertificate => tamper_card_certificate(&mut card.image)?,
        Defect::PinBlocked => card.image.pin.tries_left = 0,
        Defect::InconsistentLog => {
            // Newest first: 0004 (above the card's 0003), then 0002 twice.
            write_history(&mut card.image, &[2, 2, 4], 3)?;
        }
        Defect::WrongIccKey => {
            let state = card
                .image
                .pboc
                .as_mut()
                .ok_or(TestCardError::Missing("payment application"))?;
            let other = card_core::crypto::sm2::Sm2PrivateKey::generate_os()
                .map_err(|_| TestCardError::Missing("random numbers for a key"))?;
            state.keys.icc = Some(crate::pboc::state::IccPrivateKey::Sm2 {
                d: other.expose_bytes().to_vec(),
            });
        }
    }
    Ok(card)
}

/// Replace the transaction log with the purchases of [`HISTORY`], oldest first, carrying
/// `atcs`, and set the card's ATC to `atc` and its balance to what the purchases left.
fn write_history(image: &mut CardImage, atcs: &[u16; 3], atc: u16) -> Result<(), TestCardError> {
    let adf = crate::pboc::applet::adf_node(image)
        .ok_or(TestCardError::Missing("payment application"))?;
    crate::pboc::log::set_records(image, adf, crate::pboc::SFI_LOG, Vec::new())
        .map_err(|_| TestCardError::Missing("transaction log"))?;
    let mut spent = 0;
    for ((fen, date, time), atc) in HISTORY.iter().zip(atcs) {
        let mut data = Vec::with_capacity(45);
        data.extend_from_slice(date);
        data.extend_from_slice(time);
        data.extend_from_slice(&card_core::pboc::data::u64_to_bcd::<6>(*fen));
        data.extend_from_slice(&[0; 6]);
        data.extend_from_slice(&[0x01, 0x56, 0x01, 0x56]);
        let mut merchant = b"SSCARD TEST KIOSK".to_vec();
        merchant.resize(20, 0);
        data.extend_from_slice(&merchant);
        data.push(0x00);
        data.extend_from_slice(&atc.to_be_bytes());
        let values =
            DolData::split(LOG_FORMAT, &data).ok_or(TestCardError::Missing("log format"))?;
        let record = crate::pboc::log::transaction_record(&[&values], *atc);
        crate::pboc::log::log_transaction(image, adf, &record)
            .map_err(|_| TestCardError::Missing("transaction log"))?;
        spent += fen;
    }
    let state = image
        .pboc
        .as_mut()
        .ok_or(TestCardError::Missing("payment application"))?;
    state.atc = atc;
    if let Some(ec) = state.ec.as_mut() {
        ec.balance = ec.balance.saturating_sub(spent);
    }
    Ok(())
}

/// Change the last byte of the ICC certificate's signature in EF 0018.
fn tamper_card_certificate(image: &mut CardImage) -> Result<(), TestCardError> {
    let adf = image
        .fs
        .dfs_by_name(&ssse::PKI_ADF_AID)
        .first()
        .copied()
        .ok_or(TestCardError::Missing("PKI application"))?;
    let ef = image
        .fs
        .child_by_sfi(adf, ssse::SFI_PKI_AUTH_DATA)
        .ok_or(TestCardError::Missing("EF 0018"))?;
    let Some(NodeKind::Ef {
        body: EfBody::Transparent { data, .. },
        ..
    }) = image.fs.node_mut(ef).map(|n| &mut n.kind)
    else {
        return Err(TestCardError::Missing("EF 0018"));
    };
    let cert = TlvIter::new(data)
        .find(Tag::new(0x9f46))
        .ok()
        .flatten()
        .ok_or(TestCardError::Missing("ICC certificate 9F46"))?;
    let last = (cert.value_offset + cert.value.len())
        .checked_sub(1)
        .ok_or(TestCardError::Missing("ICC certificate 9F46"))?;
    let byte = data
        .get_mut(last)
        .ok_or(TestCardError::Missing("ICC certificate 9F46"))?;
    *byte ^= 0x5a;
    Ok(())
}
