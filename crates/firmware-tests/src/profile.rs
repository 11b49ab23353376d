//! Card profiles: the content of a card as a person would write it, in TOML.
//!
//! A profile names the card data (EF05), the cardholder (EF06), the PIN and the medical records
//! (DF04); [`Profile::build`] lays them out in the file tree of the social-security application
//! that docs/card-profile.md describes, checking that numbers carry valid check characters.
//! The optional `[pboc]` section adds the PBOC debit/credit application with electronic cash
//! ([`crate::pboc::profile::PbocSection`]). The fixture profiles in `profiles/` are fictional
//! people.

use std::path::Path;

use card_core::atr::{self, Convention, InterfaceGroup};
use card_core::secret::Pin;
use card_core::ssse::records as r;
use card_core::ssse::{self, CardNumber, Date, IdNumber, PersonName};
use card_core::tlv::{Tag, Tlv};
use serde::{Deserialize, Serialize};

use crate::fs::{Access, EfBody, EfSpec, FileSystem, MF};
use crate::image::{Behaviour, CardImage, PinState};

/// File identifier of the SSSE DDF.
pub const FID_SSSE: u16 = 0xddf1;
/// File identifier of DF04.
pub const FID_DF04: u16 = 0xdf04;
/// File identifier of the PKI directory (project profile).
pub const FID_PKI_DDF: u16 = 0xddf2;
/// File identifier of the certificate application SS.CERT.ADF1 (project profile).
pub const FID_PKI_ADF: u16 = 0xdf11;
/// File identifier of EF.GDO (ICC serial number), transparent, under the MF.
pub const FID_GDO: u16 = 0x2f02;

/// Errors loading or building a profile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read profile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is invalid.
    #[error("profile is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A field is invalid.
    #[error("profile field {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

fn field(field: &'static str) -> impl Fn(String) -> ProfileError {
    move |reason| ProfileError::Field { field, reason }
}

/// One record given in a profile: a tag and its value in one of several notations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// The tag (record identifier).
    pub tag: u8,
    /// ASCII text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Chinese text, stored in GBK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbk: Option<String>,
    /// Raw bytes in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

impl RecordSpec {
    fn value(&self) -> Result<Vec<u8>, ProfileError> {
        match (&self.text, &self.gbk, &self.hex) {
            (Some(t), None, None) => Ok(t.as_bytes().to_vec()),
            (None, Some(g), None) => Ok(PersonName::new(g).to_gbk()),
            (None, None, Some(h)) => {
                hex::decode(h.replace(' ', "")).map_err(|e| ProfileError::Field {
                    field: "record.hex",
                    reason: e.to_string(),
                })
            }
            _ => Err(ProfileError::Field {
                field: "record",
                reason: format!(
                    "record {:02X} needs exactly one of text, gbk, hex",
                    self.tag
                ),
            }),
        }
    }
}

/// EF05 content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSection {
    /// Card identifier, hex (16 bytes: region BCD, D156000005, serial).
    pub card_id: String,
    /// Card type.
    pub card_type: String,
    /// Specification version ("3.00").
    pub spec_version: String,
    /// Issuing organisation number (ASCII).
    pub issuing_org: String,
    /// Issue date YYYYMMDD.
    pub issue_date: String,
    /// Expiry date YYYYMMDD.
    pub expiry_date: String,
    /// Card number: 9 characters with a valid check character.
    pub card_number: String,
}

/// EF06 content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderSection {
    /// 18-character ID number with a valid check character.
    pub ssn: String,
    /// Name.
    pub name: String,
    /// Name extension (for long names), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_ext: Option<String>,
    /// Gender code: "1" male, "2" female, "0" unknown, "9" not stated.
    pub gender: String,
    /// Nation code (GB 3304), 1 = Han.
    pub nation: u8,
    /// Birthplace region code, 6 digits.
    pub birthplace: String,
    /// Birth date YYYYMMDD.
    pub birth_date: String,
}

/// PIN settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinSection {
    /// The PIN digits.
    pub value: String,
    /// Try limit.
    #[serde(default = "default_tries")]
    pub max_tries: u8,
    /// Tries left at issue (defaults to the limit; 0 makes a blocked card).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries_left: Option<u8>,
}

const fn default_tries() -> u8 {
    3
}

/// A whole card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// A label for people.
    pub label: String,
    /// ATR in hex; default: one offering T=0 and T=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atr: Option<String>,
    /// Transport behaviour.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// ICC serial number (hex, 8 bytes) for EF.GDO.
    pub serial: String,
    /// PIN.
    pub pin: PinSection,
    /// EF05.
    pub card: CardSection,
    /// EF06.
    pub holder: HolderSection,
    /// DF04/EF05 medical basic information records.
    #[serde(default)]
    pub medical: Vec<RecordSpec>,
    /// The PBOC debit/credit application with electronic cash, if the card has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pboc: Option<crate::pboc::profile::PbocSection>,
    /// The issuer's SSSE maintenance master key (SM4, hex; test material). The card gets the
    /// key diversified by its serial (card_core `ssse::update::derive_maintenance_key`), and
    /// EF06 can then be written after EXTERNAL AUTHENTICATE. Without it, EF06 cannot be
    /// written at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_master: Option<String>,
}

/// The default ATR: direct convention, TD1 offers T=0, TD2 offers T=1 with IFSC 254, and the
/// historical bytes "SSCARD".
pub fn default_atr() -> Vec<u8> {
    let groups = [
        InterfaceGroup {
            td: Some(0x00),
            ..Default::default()
        },
        InterfaceGroup {
            td: Some(0x01),
            ..Default::default()
        },
        InterfaceGroup {
            ta: Some(0xfe),
            tb: Some(0x45),
            ..Default::default()
        },
    ];
    atr::build(Convention::Direct, &groups, b"SSCARD")
        .unwrap_or_else(|_| vec![0x3b, 0x02, 0x14, 0x50])
}

fn record(tag: u8, value: Vec<u8>) -> Vec<u8> {
    Tlv::primitive(Tag::new(u32::from(tag)), value)
        .to_bytes()
        .unwrap_or_default()
}

fn bcd_text(digits: &str, f: &'static str) -> Result<Vec<u8>, ProfileError> {
    if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProfileError::Field {
            field: f,
            reason: format!("{digits:?} is not an even number of digits"),
        });
    }
    hex::decode(digits).map_err(|e| field(f)(e.to_string()))
}

fn date(text: &str, f: &'static str) -> Result<[u8; 4], ProfileError> {
    Date::parse(text)
        .map(Date::to_bcd)
        .map_err(|e| field(f)(e.to_string()))
}

impl Profile {
    /// Read a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parse profile text.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        Ok(toml::from_str(text)?)
    }

    /// The fixture "张三" (valid, PIN 123456).
    #[allow(clippy::expect_used)] // Compiled-in text, checked by `every_embedded_profile_builds`.
    pub fn demo_zhangsan() -> Self {
        Self::embedded("zhangsan").expect("embedded profile zhangsan parses")
    }

    /// A fixture profile compiled into the binary, by name.
    pub fn embedded(name: &str) -> Option<Self> {
        let text = EMBEDDED.iter().find(|(n, _)| *n == name)?.1;
        Self::parse(text).ok()
    }

    /// Names of the embedded fixtures.
    pub fn embedded_names() -> impl Iterator<Item = &'static str> {
        EMBEDDED.iter().map(|(n, _)| *n)
    }

    /// Lay the profile out as a card image.
    pub fn build(&self) -> Result<CardImage, ProfileError> {
        let c = &self.card;
        let h = &self.holder;
        let card_number = CardNumber::parse(&c.card_number)
            .map_err(|e| field("card.card_number")(e.to_string()))?;
        let ssn = IdNumber::parse(&h.ssn).map_err(|e| field("holder.ssn")(e.to_string()))?;
        let pin = Pin::new(&self.pin.value).map_err(|e| field("pin.value")(e.to_string()))?;
        let card_id = hex::decode(c.card_id.replace(' ', ""))
            .map_err(|e| field("card.card_id")(e.to_string()))?;
        let gender = match h.gender.as_str() {
            "0" | "1" | "2" | "9" => h.gender.as_bytes().to_vec(),
            other => {
                return Err(field("holder.gender")(format!(
                    "{other:?} is not 0, 1, 2 or 9"
                )));
            }
        };

        let ef05 = vec![
            record(r::TAG_CARD_ID, card_id.clone()),
            record(r::TAG_CARD_TYPE, c.card_type.as_bytes().to_vec()),
            record(r::TAG_SPEC_VERSION, c.spec_version.as_bytes().to_vec()),
            record(r::TAG_ISSUING_ORG, c.issuing_org.as_bytes().to_vec()),
            record(
                r::TAG_ISSUE_DATE,
                date(&c.issue_date, "card.issue_date")?.to_vec(),
            ),
            record(
                r::TAG_EXPIRY_DATE,
                date(&c.expiry_date, "card.expiry_date")?.to_vec(),
            ),
            record(r::TAG_CARD_NUMBER, card_number.reveal().as_bytes().to_vec()),
        ];
        // The name field is fixed at 30 bytes, padded with 00 (an format).
        let mut name = PersonName::new(&h.name).to_gbk();
        if name.len() > 30 {
            return Err(field("holder.name")(
                "longer than 30 bytes in GBK: use name_ext".into(),
            ));
        }
        name.resize(30, 0);
        let mut ef06 = vec![
            record(r::TAG_SSN, ssn.reveal().as_bytes().to_vec()),
            record(r::TAG_NAME, name),
            record(r::TAG_GENDER, gender),
            record(
                r::TAG_NATION,
                bcd_text(&format!("{:02}", h.nation), "holder.nation")?,
            ),
            record(
                r::TAG_BIRTHPLACE,
                bcd_text(&h.birthplace, "holder.birthplace")?,
            ),
            record(
                r::TAG_BIRTH_DATE,
                date(&h.birth_date, "holder.birth_date")?.to_vec(),
            ),
        ];
        if let Some(ext) = &h.name_ext {
            ef06.push(record(r::TAG_NAME_EXT, PersonName::new(ext).to_gbk()));
        }
        let medical = self
            .medical
            .iter()
            .map(|m| Ok(record(m.tag, m.value()?)))
            .collect::<Result<Vec<_>, ProfileError>>()?;
        let serial = hex::decode(&self.serial).map_err(|e| field("serial")(e.to_string()))?;

        let mut fs = FileSystem::new();
        let build = |e: crate::fs::FsError| field("files")(format!("{e:?}"));
        let ef = |fid, name, sfi, body, read, update| EfSpec {
            fid,
            name,
            sfi: Some(sfi),
            body,
            read,
            update,
        };
        let linear = |records: Vec<Vec<u8>>| EfBody::Linear {
            max_records: records.len().max(16),
            max_record_len: 64,
            records,
        };
        let gdo = EfBody::Transparent {
            size: serial.len() + 2,
            data: record(0x5a, serial),
        };
        fs.add_ef(
            MF,
            ef(FID_GDO, "EF.GDO", 2, gdo, Access::Always, Access::Never),
        )
        .map_err(build)?;
        let ddf = fs
            .add_df(MF, FID_SSSE, "SSSE", Some(ssse::AID.to_vec()))
            .map_err(build)?;
        fs.add_ef(
            ddf,
            ef(
                0xef05,
                "EF05",
                ssse::SFI_EF05,
                linear(ef05),
                Access::Always,
                Access::Never,
            ),
        )
        .map_err(build)?;
        fs.add_ef(
            ddf,
            ef(
                0xef06,
                "EF06",
                ssse::SFI_EF06,
                linear(ef06),
                Access::Always,
                Access::Maintenance,
            ),
        )
        .map_err(build)?;
        let df04 = fs
            .add_df(ddf, FID_DF04, "DF04", Some(ssse::DF04_AID.to_vec()))
            .map_err(build)?;
        fs.add_ef(
            df04,
            ef(
                0xef05,
                "DF04/EF05",
                5,
                linear(medical),
                Access::Pin,
                Access::Never,
            ),
        )
        .map_err(build)?;
        let log = EfBody::Cyclic {
            records: Vec::new(),
            max_records: 10,
            max_record_len: 64,
        };
        fs.add_ef(
            df04,
            ef(0xef08, "DF04/EF08", 8, log, Access::Pin, Access::Pin),
        )
        .map_err(build)?;
        // The PKI application: empty until personalised (crate::personalize).
        let pki = fs
            .add_df(MF, FID_PKI_DDF, "PKI", Some(ssse::PKI_DDF_AID.to_vec()))
            .map_err(build)?;
        let adf = fs
            .add_df(
                pki,
                FID_PKI_ADF,
                "SS.CERT.ADF1",
                Some(ssse::PKI_ADF_AID.to_vec()),
            )
            .map_err(build)?;
        let empty = |size| EfBody::Transparent {
            data: Vec::new(),
            size,
        };
        let public = ef(
            0x0012,
            "EF0012",
            ssse::SFI_PKI_PUBLIC_KEY,
            empty(65),
            Access::Always,
            Access::Never,
        );
        fs.add_ef(adf, public).map_err(build)?;
        let auth = ef(
            0x0018,
            "EF0018",
            ssse::SFI_PKI_AUTH_DATA,
            empty(1024),
            Access::Always,
            Access::Never,
        );
        fs.add_ef(adf, auth).map_err(build)?;

        let atr = match &self.atr {
            Some(h) => hex::decode(h.replace(' ', "")).map_err(|e| field("atr")(e.to_string()))?,
            None => default_atr(),
        };
        card_core::atr::Atr::parse(&atr).map_err(|e| field("atr")(e.to_string()))?;
        let mut pin_state = PinState::new(&pin, self.pin.max_tries);
        if let Some(left) = self.pin.tries_left {
            pin_state.tries_left = left.min(self.pin.max_tries);
        }
        let mut image = CardImage {
            label: self.label.clone(),
            atr,
            behaviour: self.behaviour,
            pin: pin_state,
            fs,
            keys: crate::image::CardKeys::default(),
            pboc: None,
        };
        if let Some(master) = &self.maintenance_master {
            let bytes = hex::decode(master.replace(' ', ""))
                .map_err(|e| field("maintenance_master")(e.to_string()))?;
            let master = card_core::crypto::sm4::Sm4Key::from_slice(&bytes)
                .map_err(|e| field("maintenance_master")(e.to_string()))?;
            let key = ssse::update::derive_maintenance_key(&master, &card_id)
                .map_err(|e| field("card.card_id")(e.to_string()))?;
            image.keys.set_maintenance(key.expose_bytes());
        }
        if let Some(pboc) = &self.pboc {
            pboc.install(&mut image, &self.pin.value)?;
        }
        Ok(image)
    }
}

/// The fixture profiles, compiled in so the demo and tests need no files.
pub static EMBEDDED: &[(&str, &str)] = &[
    ("zhangsan", include_str!("../profiles/zhangsan.toml")),
    ("lisi", include_str!("../profiles/lisi.toml")),
    ("wangfang-t0", include_str!("../profiles/wangfang-t0.toml")),
    ("expired", include_str!("../profiles/expired.toml")),
    ("blocked", include_str!("../profiles/blocked.toml")),
    ("wangwu-rsa", include_str!("../profiles/wangwu-rsa.toml")),
    ("qianqi-ec", include_str!("../profiles/qianqi-ec.toml")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_profile_builds() {
        for (name, _) in EMBEDDED {
            let p = Profile::embedded(name).unwrap_or_else(|| panic!("{name} does not parse"));
            p.build().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn invalid_check_characters_are_refused() {
        let mut p = Profile::demo_zhangsan();
        p.holder.ssn.replace_range(17..18, "0");
        assert!(matches!(
            p.build(),
            Err(ProfileError::Field {
                field: "holder.ssn",
                ..
            })
        ));
        let mut p = Profile::demo_zhangsan();
        p.card.card_number.replace_range(8..9, "Y");
        assert!(matches!(
            p.build(),
            Err(ProfileError::Field {
                field: "card.card_number",
                ..
            })
        ));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = EMBEDDED[0].1.replace("[pin]", "[pin]\ncolour = \"red\"");
        assert!(matches!(Profile::parse(&text), Err(ProfileError::Toml(_))));
    }

    #[test]
    fn default_atr_offers_both_protocols() {
        let atr = card_core::atr::Atr::parse(&default_atr()).unwrap();
        assert_eq!(atr.protocols(), [0, 1]);
    }
}
