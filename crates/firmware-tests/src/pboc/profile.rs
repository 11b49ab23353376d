//! The `[pboc]` section of a card profile: the payment application as a person writes it,
//! with test-only clear key material so fixtures work without an HSM.
//!
//! ```toml
//! [pboc]
//! algorithm = "sm"                 # or "international" (3DES/RSA)
//! pan = "6230580000000000013"
//! psn = 1
//! effective_date = "20240115"
//! expiry_date = "20340114"
//! cardholder_name = "ZHANG/SAN"
//! imk_ac = "0123456789ABCDEFFEDCBA9876543210"   # issuer master keys, test only:
//! imk_smi = "..."                                # the card keys are derived from them
//! imk_smc = "..."                                # by PAN and PSN (card_core kdf)
//!
//! [pboc.ec]
//! balance_fen = 50000
//! balance_limit_fen = 100000
//! single_limit_fen = 20000
//! reset_threshold_fen = 1000
//!
//! [pboc.oda]
//! seed = "zhangsan-oda"            # SM2 CA, issuer and ICC keys from this seed
//! # international: [pboc.oda.ca_rsa] p = "..", q = "..", and issuer_rsa, icc_rsa
//! ```
//!
//! [`PbocSection::install`] derives the card keys, makes the certificates over the static
//! data, and lays the application out with [`super::files::install`].

use card_core::crypto::kdf::{self, CardAlgorithm, CardKey};
use card_core::crypto::rsa::CaPublicKey;
use card_core::crypto::sm2::Sm2PrivateKey;
use card_core::crypto::sm2_cert::{self, CaKey, ExpiryDate, YearMonth};
use card_core::ssse::Date;
use serde::{Deserialize, Serialize};

use super::files::{self, CardData, OdaRecords};
use super::oda::{self, RsaKey};
use super::state::{Algorithm, Ec, IccPrivateKey, OfflinePin, PbocKeys, PbocState};
use super::{CA_INDEX_RSA, CA_INDEX_SM2, RID};
use crate::image::CardImage;
use crate::profile::ProfileError;

fn err(field: &'static str) -> impl Fn(String) -> ProfileError {
    move |reason| ProfileError::Field { field, reason }
}

const fn default_156() -> u16 {
    156
}

const fn default_tries() -> u8 {
    3
}

fn default_iac_default() -> String {
    "DC4000A800".into()
}

fn default_iac_denial() -> String {
    "0010000000".into()
}

fn default_iac_online() -> String {
    "DC4004F800".into()
}

fn default_auth_code() -> String {
    "ECC001".into()
}

/// Electronic cash parameters, in fen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcSection {
    /// EC balance `9F79`.
    pub balance_fen: u64,
    /// EC balance limit `9F77`.
    pub balance_limit_fen: u64,
    /// EC single transaction limit `9F78`.
    pub single_limit_fen: u64,
    /// EC reset threshold `9F6D`.
    pub reset_threshold_fen: u64,
    /// EC issuer authorisation code `9F74` (6 characters).
    #[serde(default = "default_auth_code")]
    pub issuer_auth_code: String,
}

/// An RSA key given by its primes (hex), exponent 65537 unless given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsaPrimes {
    /// First prime.
    pub p: String,
    /// Second prime.
    pub q: String,
    /// Public exponent (hex, `03` or `010001`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

impl RsaPrimes {
    fn key(&self, field: &'static str) -> Result<RsaKey, ProfileError> {
        let h = |s: &str| hex::decode(s.replace(' ', "")).map_err(|e| err(field)(e.to_string()));
        let e = self.e.as_deref().map_or(Ok(vec![1, 0, 1]), h)?;
        RsaKey::from_primes(&h(&self.p)?, &h(&self.q)?, &e).map_err(|e| err(field)(e.to_string()))
    }

    fn icc(&self, field: &'static str) -> Result<IccPrivateKey, ProfileError> {
        let h = |s: &str| hex::decode(s.replace(' ', "")).map_err(|e| err(field)(e.to_string()));
        Ok(IccPrivateKey::Rsa {
            p: h(&self.p)?,
            q: h(&self.q)?,
            e: self.e.as_deref().map_or(Ok(vec![1, 0, 1]), h)?,
        })
    }
}

/// Offline data authentication material for fixtures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdaSection {
    /// SM profile: the CA and issuer SM2 keys are made from this seed, and the ICC key from it
    /// and the PAN ([`oda::sm2_key_from_seed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// International profile: the CA key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_rsa: Option<RsaPrimes>,
    /// International profile: the issuer key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_rsa: Option<RsaPrimes>,
    /// International profile: the ICC key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icc_rsa: Option<RsaPrimes>,
}

/// The `[pboc]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbocSection {
    /// `sm` or `international`.
    pub algorithm: Algorithm,
    /// Application PAN (digits, with a valid Luhn check digit).
    pub pan: String,
    /// PAN sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psn: Option<u8>,
    /// Application effective date YYYYMMDD.
    pub effective_date: String,
    /// Application expiration date YYYYMMDD.
    pub expiry_date: String,
    /// Cardholder name `5F20` ("SURNAME/GIVEN", 2-26 ASCII characters).
    pub cardholder_name: String,
    /// Application currency (numeric, 156 = CNY).
    #[serde(default = "default_156")]
    pub currency: u16,
    /// Issuer country (numeric, 156 = China).
    #[serde(default = "default_156")]
    pub country: u16,
    /// The offline PIN; the card's PIN if not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// PIN try limit.
    #[serde(default = "default_tries")]
    pub pin_max_tries: u8,
    /// PIN try counter at issue (defaults to the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_tries_left: Option<u8>,
    /// ATC at issue (fixtures near 65535).
    #[serde(default)]
    pub atc: u16,
    /// Last online ATC register at issue.
    #[serde(default)]
    pub last_online_atc: u16,
    /// Issuer action code - default, hex.
    #[serde(default = "default_iac_default")]
    pub iac_default: String,
    /// Issuer action code - denial, hex.
    #[serde(default = "default_iac_denial")]
    pub iac_denial: String,
    /// Issuer action code - online, hex.
    #[serde(default = "default_iac_online")]
    pub iac_online: String,
    /// Application default action `9F52`, hex (2 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ada: Option<String>,
    /// Issuer authentication mandatory (`9F56` bit 8).
    #[serde(default)]
    pub issuer_auth_mandatory: bool,
    /// Lower consecutive offline limit `9F58`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_consecutive_offline_limit: Option<u8>,
    /// Upper consecutive offline limit `9F59`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_consecutive_offline_limit: Option<u8>,
    /// Card additional processes `9F68`, hex (4 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_additional_processes: Option<String>,
    /// Card transaction qualifiers `9F6C`, hex (2 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctq: Option<String>,
    /// Card CVM limit `9F6B` in fen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvm_limit_fen: Option<u64>,
    /// Return the available offline spending amount `9F5D`.
    #[serde(default)]
    pub available_offline_amount: bool,
    /// Issuer master key for application cryptograms (hex, 16 bytes). Test only.
    pub imk_ac: String,
    /// Issuer master key for secure-messaging integrity (hex, 16 bytes). Test only.
    pub imk_smi: String,
    /// Issuer master key for secure-messaging confidentiality (hex, 16 bytes). Test only.
    pub imk_smc: String,
    /// Electronic cash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec: Option<EcSection>,
    /// Offline data authentication keys.
    #[serde(default)]
    pub oda: OdaSection,
}

/// The CA public key a terminal holds for a card of this profile.
#[derive(Debug, Clone)]
pub enum TerminalCaKey {
    /// SM2 (index `80`).
    Sm2(CaKey),
    /// RSA (index `08`).
    Rsa(CaPublicKey),
}

fn hex_array<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], ProfileError> {
    let bytes = hex::decode(text.replace(' ', "")).map_err(|e| err(field)(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| err(field)(format!("{} bytes, {N} expected", b.len())))
}

fn yymmdd(text: &str, field: &'static str) -> Result<([u8; 3], YearMonth), ProfileError> {
    let date = Date::parse(text).map_err(|e| err(field)(e.to_string()))?;
    let [_, yy, mm, dd] = date.to_bcd();
    let digits = |b: u8| (b >> 4) * 10 + (b & 0x0f);
    let year = text
        .get(..4)
        .and_then(|y| y.parse::<u16>().ok())
        .ok_or_else(|| err(field)("no year".into()))?;
    Ok((
        [yy, mm, dd],
        YearMonth {
            year,
            month: digits(mm),
        },
    ))
}

/// Whether a PAN's last digit is its Luhn check digit.
fn luhn_ok(pan: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in pan.bytes().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0'));
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

impl PbocSection {
    fn algorithm(&self) -> CardAlgorithm {
        self.algorithm.card_algorithm()
    }

    fn psn_text(&self) -> Option<String> {
        self.psn.map(|p| format!("{p:02}"))
    }

    /// The issuer master key `name` (`imk_ac`, `imk_smi`, `imk_smc`).
    fn imk(&self, text: &str, field: &'static str) -> Result<CardKey, ProfileError> {
        Ok(CardKey::new(
            self.algorithm(),
            hex_array::<16>(text, field)?,
        ))
    }

    /// The card keys MK-AC, MK-SMI, MK-SMC derived from the issuer master keys by PAN and PSN
    /// (JR/T 0025.7 §11.1.4, JR/T 0025.17 §8.1.4), as an issuer host derives them.
    pub fn card_keys(&self) -> Result<[CardKey; 3], ProfileError> {
        let psn = self.psn_text();
        let derive = |text: &str, field| -> Result<CardKey, ProfileError> {
            kdf::derive_card_key(&self.imk(text, field)?, &self.pan, psn.as_deref())
                .map_err(|e| err(field)(e.to_string()))
        };
        Ok([
            derive(&self.imk_ac, "pboc.imk_ac")?,
            derive(&self.imk_smi, "pboc.imk_smi")?,
            derive(&self.imk_smc, "pboc.imk_smc")?,
        ])
    }

    /// The card data elements.
    pub fn card_data(&self) -> Result<CardData, ProfileError> {
        if !(12..=19).contains(&self.pan.len())
            || !self.pan.bytes().all(|b| b.is_ascii_digit())
            || !luhn_ok(&self.pan)
        {
            return Err(err("pboc.pan")(
                "12 to 19 digits with a valid Luhn check digit".into(),
            ));
        }
        if self.psn.is_some_and(|p| p > 99) {
            return Err(err("pboc.psn")("0 to 99".into()));
        }
        let name = &self.cardholder_name;
        if !(2..=26).contains(&name.len()) || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(err("pboc.cardholder_name")(
                "2 to 26 ASCII characters".into(),
            ));
        }
        Ok(CardData {
            pan: self.pan.clone(),
            psn: self.psn,
            effective: yymmdd(&self.effective_date, "pboc.effective_date")?.0,
            expiry: yymmdd(&self.expiry_date, "pboc.expiry_date")?.0,
            cardholder_name: name.clone(),
            iac_default: hex_array(&self.iac_default, "pboc.iac_default")?,
            iac_denial: hex_array(&self.iac_denial, "pboc.iac_denial")?,
            iac_online: hex_array(&self.iac_online, "pboc.iac_online")?,
            // Valid for domestic and international goods and services, ATMs and other
            // terminals; cashback allowed domestically.
            auc: [0xff, 0x80],
            app_version: [0x00, 0x30],
            issuer_country: self.country,
            // Offline plaintext PIN if the terminal supports it (fail CVM if it fails), else
            // no CVM required (JR/T 0025.5 附录 A `8E`).
            cvm_list: vec![0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x03, 0x1f, 0x00],
        })
    }

    fn expiry(&self) -> Result<ExpiryDate, ProfileError> {
        let (_, month) = yymmdd(&self.expiry_date, "pboc.expiry_date")?;
        ExpiryDate::new(month).map_err(|e| err("pboc.expiry_date")(e.to_string()))
    }

    fn seed(&self) -> Result<&[u8], ProfileError> {
        self.oda
            .seed
            .as_deref()
            .map(str::as_bytes)
            .ok_or_else(|| err("pboc.oda.seed")("the SM profile needs an ODA seed".into()))
    }

    fn sm2_keys(&self) -> Result<[Sm2PrivateKey; 3], ProfileError> {
        let seed = self.seed()?;
        let key = |label: &str| {
            oda::sm2_key_from_seed(seed, label).map_err(|e| err("pboc.oda.seed")(e.to_string()))
        };
        // One CA and one issuer per seed; the ICC key is the card's own.
        Ok([
            key("ca")?,
            key("issuer")?,
            key(&format!("icc:{}", self.pan))?,
        ])
    }

    fn rsa(&self, which: Option<&RsaPrimes>, field: &'static str) -> Result<RsaKey, ProfileError> {
        which
            .ok_or_else(|| err(field)("the international profile needs RSA keys".into()))?
            .key(field)
    }

    /// The CA key a terminal needs in its trust store for this card.
    pub fn ca_key(&self) -> Result<TerminalCaKey, ProfileError> {
        match self.algorithm {
            Algorithm::Sm => {
                let [ca, _, _] = self.sm2_keys()?;
                Ok(TerminalCaKey::Sm2(CaKey {
                    rid: RID,
                    index: CA_INDEX_SM2,
                    public_key: *ca.public_key(),
                    expiry: ExpiryDate::new(YearMonth {
                        year: 2049,
                        month: 12,
                    })
                    .map_err(|e| err("pboc.oda")(e.to_string()))?,
                }))
            }
            Algorithm::International => {
                let ca = self.rsa(self.oda.ca_rsa.as_ref(), "pboc.oda.ca_rsa")?;
                let key = card_core::crypto::rsa::RsaPublicKey::new(ca.modulus(), ca.exponent())
                    .map_err(|e| err("pboc.oda.ca_rsa")(e.to_string()))?;
                Ok(TerminalCaKey::Rsa(CaPublicKey {
                    rid: RID,
                    index: CA_INDEX_RSA,
                    key,
                }))
            }
        }
    }

    /// The issuer identifier of the certificates: the first six PAN digits, `F`-padded.
    fn issuer_id(&self) -> Result<[u8; 4], ProfileError> {
        let prefix = self.pan.get(..6).unwrap_or_default();
        let mut id = files::cn(prefix).map_err(|e| err("pboc.pan")(e.to_string()))?;
        id.resize(4, 0xff);
        hex_array(&hex::encode(id), "pboc.pan")
    }

    /// The certificates and the ICC private key.
    fn oda_material(
        &self,
        data: &CardData,
        aip: [u8; 2],
    ) -> Result<(OdaRecords, IccPrivateKey), ProfileError> {
        let static_data = files::static_data(data, aip).map_err(|e| err("pboc")(e.to_string()))?;
        let pan = files::cn(&self.pan).map_err(|e| err("pboc.pan")(e.to_string()))?;
        let expiry = self.expiry()?;
        let issuer_id = self.issuer_id()?;
        let serial = [0x00, 0x00, 0x01];
        let cert_err = |e: sm2_cert::Sm2CertError| err("pboc.oda")(e.to_string());
        let oda_err = |e: oda::OdaError| err("pboc.oda")(e.to_string());
        match self.algorithm {
            Algorithm::Sm => {
                let [ca, issuer, icc] = self.sm2_keys()?;
                let issuer_certificate = sm2_cert::IssuerCertificate::new(
                    issuer_id,
                    expiry,
                    serial,
                    issuer.public_key(),
                )
                .issue(&ca)
                .map_err(cert_err)?;
                let icc_certificate =
                    sm2_cert::IccCertificate::new(&pan, expiry, serial, icc.public_key())
                        .issue(&issuer, &static_data)
                        .map_err(cert_err)?;
                Ok((
                    OdaRecords {
                        ca_index: CA_INDEX_SM2,
                        issuer_certificate,
                        icc_certificate,
                        ..OdaRecords::default()
                    },
                    IccPrivateKey::Sm2 {
                        d: icc.expose_bytes().to_vec(),
                    },
                ))
            }
            Algorithm::International => {
                let ca = self.rsa(self.oda.ca_rsa.as_ref(), "pboc.oda.ca_rsa")?;
                let issuer = self.rsa(self.oda.issuer_rsa.as_ref(), "pboc.oda.issuer_rsa")?;
                let icc_primes = self
                    .oda
                    .icc_rsa
                    .as_ref()
                    .ok_or_else(|| err("pboc.oda.icc_rsa")("missing".into()))?;
                let icc = icc_primes.key("pboc.oda.icc_rsa")?;
                let mmyy = expiry.to_bcd();
                let (issuer_certificate, issuer_remainder) =
                    oda::rsa_issuer_certificate(&ca, issuer_id, mmyy, serial, &issuer)
                        .map_err(oda_err)?;
                let (icc_certificate, icc_remainder) =
                    oda::rsa_icc_certificate(&issuer, &pan, mmyy, serial, &icc, &static_data)
                        .map_err(oda_err)?;
                Ok((
                    OdaRecords {
                        ca_index: CA_INDEX_RSA,
                        issuer_certificate,
                        issuer_remainder,
                        issuer_exponent: issuer.exponent().to_vec(),
                        icc_certificate,
                        icc_remainder,
                        icc_exponent: icc.exponent().to_vec(),
                    },
                    icc_primes.icc("pboc.oda.icc_rsa")?,
                ))
            }
        }
    }

    /// Personalise the payment application into `image`; `card_pin` is the offline PIN unless
    /// the section names its own.
    pub fn install(&self, image: &mut CardImage, card_pin: &str) -> Result<(), ProfileError> {
        let (data, mut state) = self.application(card_pin)?;
        let [mk_ac, mk_smi, mk_smc] = self.card_keys()?;
        state.keys.set_card_keys(&mk_ac, &mk_smi, &mk_smc);
        let (oda_records, icc) = self.oda_material(&data, state.aip)?;
        state.keys.icc = Some(icc);
        files::install(image, state, &data, &oda_records).map_err(|e| err("pboc")(e.to_string()))
    }

    /// The card data and the application state of this section without any key (card keys
    /// zero, no ICC key): what a personaliser that gets the keys elsewhere (an HSM,
    /// `crate::personalize::personalize_pboc`) starts from.
    pub fn application(&self, card_pin: &str) -> Result<(CardData, PbocState), ProfileError> {
        let data = self.card_data()?;
        let pin_text = self.pin.as_deref().unwrap_or(card_pin);
        let mut pin = OfflinePin::new(pin_text, self.pin_max_tries)
            .ok_or_else(|| err("pboc.pin")("4 to 12 digits".into()))?;
        if let Some(left) = self.pin_tries_left {
            pin.tries_left = left.min(self.pin_max_tries);
        }
        let mut state = PbocState::new(self.algorithm, pin, PbocKeys::default());
        state.currency = self.currency;
        state.country = self.country;
        state.atc = self.atc;
        state.last_online_atc = self.last_online_atc;
        state.locked = self.atc == u16::MAX;
        if let Some(ada) = &self.ada {
            state.risk.ada = hex_array(ada, "pboc.ada")?;
        }
        state.risk.issuer_auth_mandatory = self.issuer_auth_mandatory;
        state.risk.lower_consecutive_offline_limit = self.lower_consecutive_offline_limit;
        state.risk.upper_consecutive_offline_limit = self.upper_consecutive_offline_limit;
        if let Some(cap) = &self.card_additional_processes {
            state.risk.card_additional_processes =
                hex_array(cap, "pboc.card_additional_processes")?;
        }
        if let Some(ctq) = &self.ctq {
            state.risk.ctq = hex_array(ctq, "pboc.ctq")?;
        }
        state.risk.cvm_limit = self.cvm_limit_fen;
        state.risk.available_offline_amount = self.available_offline_amount;
        if let Some(ec) = &self.ec {
            if ec.balance_fen > ec.balance_limit_fen {
                return Err(err("pboc.ec.balance_fen")("above the balance limit".into()));
            }
            let code: [u8; 6] = ec
                .issuer_auth_code
                .as_bytes()
                .try_into()
                .map_err(|_| err("pboc.ec.issuer_auth_code")("6 characters".into()))?;
            state.ec = Some(Ec {
                balance: ec.balance_fen,
                balance_limit: ec.balance_limit_fen,
                single_limit: ec.single_limit_fen,
                reset_threshold: ec.reset_threshold_fen,
                issuer_auth_code: code,
            });
        }
        Ok((data, state))
    }
}
