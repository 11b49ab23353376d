//! Personalisation: giving a card its keys and certificates, with hsm-sim as the key custodian.
//!
//! [`setup_issuer`] makes (or finds) the CA and issuer SM2 key pairs in the HSM and has the CA
//! sign the issuer certificate (format `12`). [`personalize_pki`] makes a card's SM2 key pair in
//! the HSM, has the issuer sign the ICC certificate (format `14`) over the card's identity, takes
//! the card's private key out of the HSM encrypted under the personalisation device's transport
//! key (the ZMK), and writes it and the certificates into the card image. The CA's and the
//! issuer's private keys never leave the HSM; the card's leaves only under the ZMK, and is
//! decrypted here, in the personalisation device, only to be written into the card.
//!
//! The PBOC debit/credit application is personalised the same way. [`setup_pboc_issuer`] makes
//! the PBOC CA and issuer SM2 key pairs (RID `A000000333`) and the issuer certificate;
//! [`setup_pboc_master_keys`] generates the issuer master keys MK-AC, MK-SMI and MK-SMC inside
//! the HSM (`A0`, types `109`/`209`/`309`), which never leave it. [`personalize_pboc`] has the
//! HSM derive the card's three keys from them by PAN and PSN (`KD`, JR/T 0025.7 §11.1.4, JR/T
//! 0025.17 §8.1.4) and hand them out only under the ZMK, generate the card's SM2 key pair,
//! sign the ICC certificate (format `14`, JR/T 0025.17 §5.2.1 表6, §5.2.3 表8) over the
//! application's static data, and lays the application out with
//! [`crate::pboc::files::install`].

use card_core::crypto::kdf::CardKey;
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
use crate::pboc::Algorithm;
use crate::pboc::files::{self, OdaRecords};
use crate::pboc::profile::PbocSection;
use crate::pboc::state::IccPrivateKey;
use crate::profile::ProfileError;

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
    /// The `[pboc]` section does not make an application.
    #[error("PBOC section: {0}")]
    Profile(#[from] ProfileError),
    /// The PBOC application could not be laid out.
    #[error("PBOC application: {0}")]
    Pboc(#[from] crate::pboc::PbocError),
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
    setup_issuer_for(
        hsm,
        SSSE_RID,
        ca_label,
        ca_index,
        issuer_label,
        issuer_bin,
        expiry,
    )
}

/// [`setup_issuer`] for the PBOC application: the CA key is registered under UnionPay's RID
/// `A000000333` (where the kernel's `CaStore` looks for it by the card's AID) with index
/// `ca_index` (the profile's is [`crate::pboc::CA_INDEX_SM2`], `80`); the issuer certificate
/// is format `12` of JR/T 0025.17 §5.1.1 表1, §5.1.2 表4.
pub fn setup_pboc_issuer<C: Call>(
    hsm: &mut HsmClient<C>,
    ca_label: &str,
    ca_index: u8,
    issuer_label: &str,
    issuer_bin: &str,
    expiry: YearMonth,
) -> Result<Issuer, PersoError> {
    setup_issuer_for(
        hsm,
        crate::pboc::RID,
        ca_label,
        ca_index,
        issuer_label,
        issuer_bin,
        expiry,
    )
}

fn setup_issuer_for<C: Call>(
    hsm: &mut HsmClient<C>,
    rid: [u8; 5],
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
            rid,
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

/// A CA key as one line of a trust-store file: `RID INDEX MMYY X‖Y` in hex
/// (`card_core::trust_file`).
pub fn trust_line(ca: &CaKey) -> String {
    card_core::trust_file::sm2_line(ca)
}

/// The HSM label of the maintenance master key the project's tools use.
pub const MAINTENANCE_LABEL: &str = "MNTMK001";

/// Generate the social-security maintenance master key (SM4, type `409`) inside the HSM under
/// `label` (`A0`), or take the one already there. It never leaves the HSM: cards get their own
/// key derived from it ([`personalize_maintenance`]), and the issuer's counter asks the HSM to
/// answer a card's challenge (`KE`, hsm-sim `HsmAuthority`).
pub fn setup_maintenance_master<C: Call>(
    hsm: &mut HsmClient<C>,
    label: &str,
) -> Result<(), PersoError> {
    match hsm.generate_key(KeyType::MkMnt, Scheme::Sm4, label) {
        Ok(_) | Err(ClientError::Hsm(ErrorCode::KeyExists)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Give the card in `image` its maintenance key: derived in the HSM from the master `master`
/// by the card identifier in EF05 (`KF`), received under the ZMK `zmk_label` whose clear twin
/// `zmk` the personalisation device holds, checked against the HSM's check value, and written
/// into the card. Replaces any key the image had. Returns the key's check value.
pub fn personalize_maintenance<C: Call>(
    hsm: &mut HsmClient<C>,
    image: &mut CardImage,
    master: &str,
    zmk_label: &str,
    zmk: &BlockKey,
) -> Result<[u8; 3], PersoError> {
    let card_id: [u8; 16] = {
        let mut s = card_core::CardSession::new(crate::SoftCard::in_memory(image.clone()));
        card_core::ssse::read_identity(&mut s, card_core::ssse::ReadStrategy::AllRecords)
            .map_err(|_| PersoError::Invalid("the card's identity does not read"))?
            .card
            .card_id
            .as_slice()
            .try_into()
            .map_err(|_| PersoError::Invalid("the card identifier is not 16 bytes"))?
    };
    let (wrapped, kcv) = hsm.derive_maintenance_key(master, zmk_label, &card_id)?;
    let clear = Zeroizing::new(
        zmk.decrypt_ecb(&wrapped)
            .map_err(|_| PersoError::Invalid("the maintenance key does not decrypt"))?,
    );
    let key = card_core::crypto::sm4::Sm4Key::from_slice(&clear)
        .map_err(|_| PersoError::Invalid("the maintenance key has the wrong length"))?;
    if key.kcv() != kcv {
        return Err(PersoError::Invalid(
            "the maintenance key does not match its check value: wrong ZMK?",
        ));
    }
    image.keys.set_maintenance(key.expose_bytes());
    Ok(kcv)
}

/// The HSM labels of an issuer's PBOC master keys (types `109`, `209`, `309`) and their
/// scheme: SM4 for the SM profile, double-length 3DES for the international one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbocMasterKeys {
    /// MK-AC, for application cryptograms and the ARPC (hsm-sim `KQ`).
    pub mk_ac: String,
    /// MK-SMI, for secure-messaging MACs (scripts, the EC balance in the IDD, the load log).
    pub mk_smi: String,
    /// MK-SMC, for enciphered script data.
    pub mk_smc: String,
    /// `Scheme::Sm4` or `Scheme::Tdes`.
    pub scheme: Scheme,
}

/// Generate the issuer master keys MK-AC, MK-SMI and MK-SMC of `scheme` inside the HSM under
/// `labels` (`A0`), or take the keys already there under those labels. They never leave the
/// HSM (their types may not be exported); cards get keys derived from them ([`personalize_pboc`]).
pub fn setup_pboc_master_keys<C: Call>(
    hsm: &mut HsmClient<C>,
    scheme: Scheme,
    labels: [&str; 3],
) -> Result<PbocMasterKeys, PersoError> {
    if !matches!(scheme, Scheme::Sm4 | Scheme::Tdes) {
        return Err(PersoError::Invalid(
            "PBOC master keys are SM4 or double-length 3DES keys",
        ));
    }
    let [ac, smi, smc] = labels;
    for (key_type, label) in [
        (KeyType::MkAc, ac),
        (KeyType::MkSmi, smi),
        (KeyType::MkSmc, smc),
    ] {
        match hsm.generate_key(key_type, scheme, label) {
            Ok(_) | Err(ClientError::Hsm(ErrorCode::KeyExists)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(PbocMasterKeys {
        mk_ac: ac.to_string(),
        mk_smi: smi.to_string(),
        mk_smc: smc.to_string(),
        scheme,
    })
}

/// What a PBOC card is made from.
#[derive(Debug, Clone)]
pub struct PbocCardInput<'a> {
    /// The application as the card's profile describes it (PAN, PSN, dates, name, EC and risk
    /// parameters); its clear test keys are not used.
    pub section: &'a PbocSection,
    /// The HSM label for the card's SM2 key pair (8 characters).
    pub icc_label: &'a str,
    /// The offline PIN if the section names none (the card's PIN).
    pub card_pin: &'a str,
    /// Serial number of the ICC certificate.
    pub serial: [u8; 3],
}

/// What [`personalize_pboc`] made, for the issuer's records: nothing secret.
#[derive(Debug, Clone)]
pub struct PbocIssued {
    /// The ICC public key the certificate carries.
    pub icc_public_key: Sm2PublicKey,
    /// Check values of the card keys MK-AC, MK-SMI, MK-SMC as the HSM reported them.
    pub card_key_kcvs: [[u8; 3]; 3],
}

/// A card key the HSM derived with `KD` and wrapped under the ZMK, unwrapped here and checked
/// against the HSM's check value.
fn derived_card_key<C: Call>(
    hsm: &mut HsmClient<C>,
    master: &str,
    zmk_label: &str,
    zmk: &BlockKey,
    algorithm: Algorithm,
    pan: &str,
    psn: &str,
) -> Result<(CardKey, [u8; 3]), PersoError> {
    let (wrapped, kcv) = hsm.derive_card_key(master, zmk_label, pan, psn)?;
    let clear = zmk
        .decrypt_ecb(&wrapped)
        .map_err(|_| PersoError::Invalid("the card key does not decrypt"))?;
    let key = CardKey::from_slice(algorithm.card_algorithm(), &clear)
        .map_err(|_| PersoError::Invalid("the card key has the wrong length"))?;
    if key.kcv() != kcv {
        return Err(PersoError::Invalid(
            "the card key does not match its check value: wrong ZMK?",
        ));
    }
    Ok((key, kcv))
}

/// The expiry `YYMMDD` (BCD) of the application as the certificates' month.
fn expiry_month(yymmdd: [u8; 3]) -> Result<ExpiryDate, PersoError> {
    let [yy, mm, _] = yymmdd;
    let digits = |b: u8| u16::from(b >> 4) * 10 + u16::from(b & 0x0f);
    ExpiryDate::new(YearMonth {
        year: 2000 + digits(yy),
        month: u8::try_from(digits(mm)).unwrap_or(0),
    })
    .map_err(|_| PersoError::Invalid("bad application expiry date"))
}

/// Personalise the PBOC debit/credit application of `card.section` into `image` with keys and
/// certificates from the HSM, none of the section's clear test keys (`imk_*`, the ODA seed):
///
/// 1. the card keys MK-AC, MK-SMI, MK-SMC, derived by the HSM from `master` for the section's
///    PAN and PSN (`KD`) and received under the ZMK `zmk_label`, whose clear twin `zmk` the
///    personalisation device holds;
/// 2. the card's SM2 key pair, generated in the HSM (`A0` type `S03`) and exported under the
///    ZMK (`A8`);
/// 3. the ICC certificate (format `14`, JR/T 0025.17 §5.2.1 表6, §5.2.3 表8) over the PAN, the
///    application expiry, `card.serial`, the ICC public key and the static data of the signed
///    records (`files::static_data`, JR/T 0025.17 §5.2.1), signed by the issuer key inside the
///    HSM (`K3`); the issuer certificate of `issuer` ([`setup_pboc_issuer`]);
/// 4. [`crate::pboc::files::install`].
///
/// Only the SM profile: hsm-sim signs SM2 certificates, not RSA ones. The master keys must be
/// SM4 ([`setup_pboc_master_keys`]). The image must not have a payment application yet.
pub fn personalize_pboc<C: Call>(
    hsm: &mut HsmClient<C>,
    image: &mut CardImage,
    issuer: &Issuer,
    master: &PbocMasterKeys,
    zmk_label: &str,
    zmk: &BlockKey,
    card: &PbocCardInput<'_>,
) -> Result<PbocIssued, PersoError> {
    let section = card.section;
    if section.algorithm != Algorithm::Sm {
        return Err(PersoError::Invalid(
            "hsm-sim signs SM2 certificates only: personalise the SM profile",
        ));
    }
    if master.scheme != Scheme::Sm4 {
        return Err(PersoError::Invalid(
            "an SM card needs SM4 issuer master keys",
        ));
    }
    if image.pboc.is_some() {
        return Err(PersoError::Invalid(
            "the card image has a payment application already",
        ));
    }
    let (data, mut state) = section.application(card.card_pin)?;
    let psn = format!("{:02}", data.psn.unwrap_or(0));
    let mut kcvs = [[0u8; 3]; 3];
    let mut keys = Vec::with_capacity(3);
    for (i, label) in [&master.mk_ac, &master.mk_smi, &master.mk_smc]
        .into_iter()
        .enumerate()
    {
        let (key, kcv) =
            derived_card_key(hsm, label, zmk_label, zmk, state.algorithm, &data.pan, &psn)?;
        if let Some(slot) = kcvs.get_mut(i) {
            *slot = kcv;
        }
        keys.push(key);
    }
    let [mk_ac, mk_smi, mk_smc] =
        <[CardKey; 3]>::try_from(keys).map_err(|_| PersoError::Invalid("three card keys"))?;
    state.keys.set_card_keys(&mk_ac, &mk_smi, &mk_smc);
    drop((mk_ac, mk_smi, mk_smc));

    let public = key_pair(hsm, KeyType::Sm2Icc, card.icc_label)?;
    let (wrapped, _) = hsm.export_key(KeyType::Sm2Icc, zmk_label, card.icc_label)?;
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
    drop(private);
    state.keys.icc = Some(IccPrivateKey::Sm2 { d: d.to_vec() });

    let static_data = files::static_data(&data, state.aip)?;
    let cert = IccCertificate::new(
        &files::cn(&data.pan)?,
        expiry_month(data.expiry)?,
        card.serial,
        &public,
    );
    let signature =
        hsm.sign_certificate(&issuer.issuer_label, &cert.to_signed_data(&static_data)?)?;
    let oda = OdaRecords {
        ca_index: issuer.ca.index,
        issuer_certificate: issuer.issuer_certificate.clone(),
        icc_certificate: cert.to_bytes(&signature)?,
        ..OdaRecords::default()
    };
    files::install(image, state, &data, &oda)?;
    Ok(PbocIssued {
        icc_public_key: public,
        card_key_kcvs: kcvs,
    })
}
