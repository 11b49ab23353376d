//! The records of EF05 (card identification) and EF06 (cardholder), parsed by tag.
//!
//! Records are BER-TLV objects whose tag is the record identifier (ISO/IEC 7816-4 §7.3.1).
//! Lengths are taken from the TLV, never assumed: field sizes differ between card generations
//! and regions. docs/card-profile.md lists each tag with its source.

use core::fmt;

use zeroize::Zeroize;

use super::fields::{CardNumber, Date, FieldError, Gender, IdNumber, PersonName, bcd_digits};
use crate::apdu::HexFmt;
use crate::tags::{self, Context};
use crate::tlv::{Tag, TlvError, TlvIter};

/// Tag of the card identifier (EF05).
pub const TAG_CARD_ID: u8 = 0x01;
/// Tag of the card type (EF05).
pub const TAG_CARD_TYPE: u8 = 0x02;
/// Tag of the specification version (EF05).
pub const TAG_SPEC_VERSION: u8 = 0x03;
/// Tag of the issuing organisation number (EF05).
pub const TAG_ISSUING_ORG: u8 = 0x04;
/// Tag of the issue date (EF05).
pub const TAG_ISSUE_DATE: u8 = 0x05;
/// Tag of the expiry date (EF05).
pub const TAG_EXPIRY_DATE: u8 = 0x06;
/// Tag of the card number (EF05).
pub const TAG_CARD_NUMBER: u8 = 0x07;
/// Tag of the social-security number (EF06).
pub const TAG_SSN: u8 = 0x08;
/// Tag of the name (EF06).
pub const TAG_NAME: u8 = 0x09;
/// Tag of the gender (EF06).
pub const TAG_GENDER: u8 = 0x0a;
/// Tag of the nation (EF06).
pub const TAG_NATION: u8 = 0x0b;
/// Tag of the birthplace (EF06).
pub const TAG_BIRTHPLACE: u8 = 0x0c;
/// Tag of the birth date (EF06).
pub const TAG_BIRTH_DATE: u8 = 0x0d;
/// Tag of the name extension for long names (EF06, optional).
pub const TAG_NAME_EXT: u8 = 0x4e;

/// Required tags of EF05.
pub const EF05_TAGS: [u8; 7] = [
    TAG_CARD_ID,
    TAG_CARD_TYPE,
    TAG_SPEC_VERSION,
    TAG_ISSUING_ORG,
    TAG_ISSUE_DATE,
    TAG_EXPIRY_DATE,
    TAG_CARD_NUMBER,
];
/// Required tags of EF06.
pub const EF06_TAGS: [u8; 6] = [
    TAG_SSN,
    TAG_NAME,
    TAG_GENDER,
    TAG_NATION,
    TAG_BIRTHPLACE,
    TAG_BIRTH_DATE,
];
/// Optional tags of EF06.
pub const EF06_OPTIONAL_TAGS: [u8; 1] = [TAG_NAME_EXT];

/// Errors turning records into typed values.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The records are not well-formed TLV.
    #[error("records of {file} are not valid TLV: {error}")]
    Tlv {
        /// File name.
        file: &'static str,
        /// The TLV error with its offset.
        error: TlvError,
    },
    /// A required record is absent.
    #[error("{file} has no record {tag:02X} ({name})")]
    Missing {
        /// File name.
        file: &'static str,
        /// Record tag.
        tag: u8,
        /// Field name.
        name: &'static str,
    },
    /// A record's value is invalid.
    #[error("{file} record {tag:02X} ({name}) is invalid: {error}")]
    Invalid {
        /// File name.
        file: &'static str,
        /// Record tag.
        tag: u8,
        /// Field name.
        name: &'static str,
        /// Why.
        error: FieldError,
    },
}

/// The records of one file, by tag (first occurrence wins). Values are zeroized on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RecordSet {
    records: Vec<(u8, Vec<u8>)>,
}

impl Drop for RecordSet {
    fn drop(&mut self) {
        for (_, v) in &mut self.records {
            v.zeroize();
        }
    }
}

impl RecordSet {
    /// An empty set.
    pub const fn new() -> Self {
        Self {
            records: Vec::new(),
        }
    }

    /// Add the records in `bytes` (one or more concatenated TLV records).
    pub fn add_records(&mut self, file: &'static str, bytes: &[u8]) -> Result<(), RecordError> {
        for item in TlvIter::new(bytes) {
            let item = item.map_err(|error| RecordError::Tlv { file, error })?;
            // Record identifiers are one byte; longer tags cannot be record identifiers.
            let Ok(tag) = u8::try_from(item.tag.value()) else {
                continue;
            };
            if !self.contains(tag) {
                self.records.push((tag, item.value.to_vec()));
            }
        }
        Ok(())
    }

    /// Whether a record with `tag` is present.
    pub fn contains(&self, tag: u8) -> bool {
        self.records.iter().any(|(t, _)| *t == tag)
    }

    /// The value of the record `tag`.
    pub fn get(&self, tag: u8) -> Option<&[u8]> {
        self.records
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_slice())
    }

    /// Tags present, in the order read.
    pub fn tags(&self) -> impl Iterator<Item = u8> + '_ {
        self.records.iter().map(|(t, _)| *t)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn require(&self, file: &'static str, tag: u8) -> Result<&[u8], RecordError> {
        self.get(tag).ok_or(RecordError::Missing {
            file,
            tag,
            name: field_name(tag),
        })
    }
}

impl fmt::Debug for RecordSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be personal: show tags and lengths only.
        f.debug_list()
            .entries(
                self.records
                    .iter()
                    .map(|(t, v)| format!("{t:02X}: {} bytes", v.len())),
            )
            .finish()
    }
}

fn field_name(tag: u8) -> &'static str {
    tags::lookup(Context::Ssse, Tag::new(u32::from(tag))).map_or("unknown", |i| i.name)
}

fn invalid(file: &'static str, tag: u8) -> impl Fn(FieldError) -> RecordError {
    move |error| RecordError::Invalid {
        file,
        tag,
        name: field_name(tag),
        error,
    }
}

/// Text of an `an` field: ASCII, right-padded with `00`, `20` or `FF`.
fn text_field(bytes: &[u8]) -> Result<String, FieldError> {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, 0x00 | 0x20 | 0xff))
        .map_or(0, |i| i + 1);
    let trimmed = bytes.get(..end).unwrap_or_default();
    if let Some(position) = trimmed.iter().position(|b| !(0x20..0x7f).contains(b)) {
        return Err(FieldError::BadCharacter { position });
    }
    Ok(trimmed.iter().map(|&b| char::from(b)).collect())
}

/// Card identification data (EF05).
#[derive(Clone, PartialEq, Eq)]
pub struct CardIdentification {
    /// Card identifier (卡识别码): region code, RID `D156000005` and a serial.
    pub card_id: Vec<u8>,
    /// Card type (卡类别).
    pub card_type: String,
    /// Specification version (规范版本), e.g. "3.00".
    pub spec_version: String,
    /// Issuing organisation number (初始化机构编号).
    pub issuing_org: Vec<u8>,
    /// Issue date.
    pub issue_date: Date,
    /// Expiry date.
    pub expiry_date: Date,
    /// Card number (卡号), masked in `Display`.
    pub card_number: CardNumber,
}

impl CardIdentification {
    const FILE: &'static str = "EF05";

    /// Build from the records of EF05.
    pub fn from_records(r: &RecordSet) -> Result<Self, RecordError> {
        let f = Self::FILE;
        Ok(Self {
            card_id: r.require(f, TAG_CARD_ID)?.to_vec(),
            card_type: text_field(r.require(f, TAG_CARD_TYPE)?)
                .map_err(invalid(f, TAG_CARD_TYPE))?,
            spec_version: text_field(r.require(f, TAG_SPEC_VERSION)?)
                .map_err(invalid(f, TAG_SPEC_VERSION))?,
            issuing_org: r.require(f, TAG_ISSUING_ORG)?.to_vec(),
            issue_date: Date::from_bcd(r.require(f, TAG_ISSUE_DATE)?)
                .map_err(invalid(f, TAG_ISSUE_DATE))?,
            expiry_date: Date::from_bcd(r.require(f, TAG_EXPIRY_DATE)?)
                .map_err(invalid(f, TAG_EXPIRY_DATE))?,
            card_number: text_field(r.require(f, TAG_CARD_NUMBER)?)
                .and_then(|t| CardNumber::parse(&t))
                .map_err(invalid(f, TAG_CARD_NUMBER))?,
        })
    }

    /// The 6-digit region code at the start of the card identifier, if it is BCD.
    pub fn region_code(&self) -> Option<String> {
        let digits = bcd_digits(self.card_id.get(..3)?).ok()?;
        (digits.len() == 6).then(|| digits.iter().map(|d| char::from(b'0' + d)).collect())
    }

    /// Whether the card has expired on `today` (it is valid through its expiry date).
    pub fn is_expired(&self, today: Date) -> bool {
        today > self.expiry_date
    }

    /// The issuing organisation as text if printable, otherwise hex.
    pub fn issuing_org_text(&self) -> String {
        text_field(&self.issuing_org).unwrap_or_else(|_| HexFmt(&self.issuing_org).to_string())
    }
}

impl fmt::Display for CardIdentification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "card number:     {}", self.card_number)?;
        writeln!(f, "card identifier: {}", HexFmt(&self.card_id))?;
        writeln!(f, "card type:       {}", self.card_type)?;
        writeln!(f, "spec version:    {}", self.spec_version)?;
        writeln!(f, "issuing org:     {}", self.issuing_org_text())?;
        writeln!(f, "issue date:      {}", self.issue_date)?;
        write!(f, "expiry date:     {}", self.expiry_date)
    }
}

impl fmt::Debug for CardIdentification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardIdentification")
            .field("card_number", &self.card_number)
            .field("card_id", &format_args!("{}", HexFmt(&self.card_id)))
            .field("spec_version", &self.spec_version)
            .field("expiry_date", &self.expiry_date)
            .finish_non_exhaustive()
    }
}

/// Cardholder data (EF06). `Display` and `Debug` mask the personal fields.
#[derive(Clone, PartialEq, Eq)]
pub struct Cardholder {
    /// Social-security number (the citizen ID number).
    pub ssn: IdNumber,
    /// Name, with the extension record appended when present.
    pub name: PersonName,
    /// Gender.
    pub gender: Gender,
    /// Nation code (GB 3304, 1 = Han).
    pub nation: u8,
    /// Birthplace region code (6 digits).
    pub birthplace: String,
    /// Birth date.
    pub birth_date: Date,
}

impl Cardholder {
    const FILE: &'static str = "EF06";

    /// Build from the records of EF06.
    pub fn from_records(r: &RecordSet) -> Result<Self, RecordError> {
        let f = Self::FILE;
        let ssn = text_field(r.require(f, TAG_SSN)?)
            .and_then(|t| IdNumber::parse(&t))
            .map_err(invalid(f, TAG_SSN))?;
        let mut name =
            PersonName::from_gbk(r.require(f, TAG_NAME)?).map_err(invalid(f, TAG_NAME))?;
        if let Some(ext) = r.get(TAG_NAME_EXT) {
            let ext = PersonName::from_gbk(ext).map_err(invalid(f, TAG_NAME_EXT))?;
            name.extend(&ext);
        }
        let gender = r
            .require(f, TAG_GENDER)?
            .first()
            .ok_or(FieldError::Length {
                expected: 1,
                found: 0,
            })
            .and_then(|b| Gender::from_byte(*b))
            .map_err(invalid(f, TAG_GENDER))?;
        let nation_digits =
            bcd_digits(r.require(f, TAG_NATION)?).map_err(invalid(f, TAG_NATION))?;
        // Any number of digits may come from the card: checked, not wrapped (a 20-digit
        // nation code overflowed here, found by the ssse_records fuzz target).
        let nation = nation_digits
            .iter()
            .try_fold(0u8, |a, d| a.checked_mul(10)?.checked_add(*d))
            .ok_or(FieldError::BadCharacter { position: 0 })
            .map_err(invalid(f, TAG_NATION))?;
        let birthplace =
            bcd_digits(r.require(f, TAG_BIRTHPLACE)?).map_err(invalid(f, TAG_BIRTHPLACE))?;
        if birthplace.len() != 6 {
            return Err(invalid(f, TAG_BIRTHPLACE)(FieldError::Length {
                expected: 6,
                found: birthplace.len(),
            }));
        }
        Ok(Self {
            ssn,
            name,
            gender,
            nation,
            birthplace: birthplace.iter().map(|d| char::from(b'0' + d)).collect(),
            birth_date: Date::from_bcd(r.require(f, TAG_BIRTH_DATE)?)
                .map_err(invalid(f, TAG_BIRTH_DATE))?,
        })
    }

    /// Disagreements between fields that a genuine card should not have (for warnings, not
    /// errors: the card is read as it is).
    pub fn inconsistencies(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.ssn.birth_date() != Some(self.birth_date) {
            out.push("birth date differs from the one in the ID number");
        }
        let gender_digit = self
            .ssn
            .reveal()
            .as_bytes()
            .get(16)
            .map(|b| b.wrapping_sub(b'0'));
        let expected = match gender_digit {
            Some(d) if d % 2 == 1 => Some(Gender::Male),
            Some(_) => Some(Gender::Female),
            None => None,
        };
        if matches!(self.gender, Gender::Male | Gender::Female) && expected != Some(self.gender) {
            out.push("gender differs from the one in the ID number");
        }
        out
    }
}

impl fmt::Display for Cardholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "name:            {}", self.name)?;
        writeln!(f, "social sec. no.: {}", self.ssn)?;
        writeln!(f, "gender:          {}", self.gender)?;
        writeln!(f, "nation:          {:02}", self.nation)?;
        writeln!(
            f,
            "birthplace:      {}***",
            self.birthplace.get(..3).unwrap_or_default()
        )?;
        write!(f, "birth date:      {}-**-**", self.birth_date.year)
    }
}

impl fmt::Debug for Cardholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cardholder")
            .field("name", &self.name)
            .field("ssn", &self.ssn)
            .field("gender", &self.gender)
            .finish_non_exhaustive()
    }
}

/// What an identity read returns: both files.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// EF05.
    pub card: CardIdentification,
    /// EF06.
    pub holder: Cardholder,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.card)?;
        write!(f, "{}", self.holder)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("card", &self.card)
            .field("holder", &self.holder)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    pub(crate) fn ef06_bytes() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(hex("08 12"));
        v.extend(b"11010519491231002X");
        v.extend(hex("09 1E D5C5 C8FD"));
        v.extend([0u8; 26]);
        v.extend(hex("0A 01 32 0B 01 01 0C 03 110105 0D 04 19491231"));
        v
    }

    #[test]
    fn parses_cardholder() {
        let mut r = RecordSet::new();
        r.add_records("EF06", &ef06_bytes()).unwrap();
        let h = Cardholder::from_records(&r).unwrap();
        assert_eq!(h.name.reveal(), "张三");
        assert_eq!(h.gender, Gender::Female);
        assert_eq!(h.nation, 1);
        assert_eq!(h.birthplace, "110105");
        assert!(h.inconsistencies().is_empty(), "{:?}", h.inconsistencies());
        let shown = h.to_string();
        assert!(
            !shown.contains("张三") && !shown.contains("11010519491231002X"),
            "{shown}"
        );
        let dbg = format!("{h:?}");
        assert!(!dbg.contains("张三") && !dbg.contains("19491231"), "{dbg}");
    }

    #[test]
    fn a_nation_code_of_any_length_is_an_error_not_an_overflow() {
        // 0B (nation) with 20 BCD digits "99..." first: the first occurrence of a tag wins.
        for digits in ["999", "0256", "99999999999999999999"] {
            let mut bytes = vec![0x0b, (digits.len() / 2 + digits.len() % 2) as u8];
            let padded = if digits.len() % 2 == 1 {
                format!("0{digits}")
            } else {
                digits.to_string()
            };
            bytes.extend(hex(&padded));
            bytes.extend(ef06_bytes());
            let mut r = RecordSet::new();
            r.add_records("EF06", &bytes).unwrap();
            assert!(
                matches!(
                    Cardholder::from_records(&r),
                    Err(RecordError::Invalid { tag: 0x0b, .. })
                ),
                "{digits}"
            );
        }
        let mut bytes = hex("0B 02 0255");
        bytes.extend(ef06_bytes());
        let mut r = RecordSet::new();
        r.add_records("EF06", &bytes).unwrap();
        assert_eq!(Cardholder::from_records(&r).unwrap().nation, 255);
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let mut r = RecordSet::new();
        r.add_records("EF06", &hex("09 04 D5C5C8FD")).unwrap();
        assert_eq!(
            Cardholder::from_records(&r).unwrap_err(),
            RecordError::Missing {
                file: "EF06",
                tag: 0x08,
                name: "Social Security Number"
            }
        );
        let mut bad = ef06_bytes();
        // Corrupt the check character of the ID number.
        bad[2 + 17] = b'1';
        let mut r = RecordSet::new();
        r.add_records("EF06", &bad).unwrap();
        assert!(matches!(
            Cardholder::from_records(&r),
            Err(RecordError::Invalid {
                tag: 0x08,
                error: FieldError::CheckCharacter { .. },
                ..
            })
        ));
        let mut r = RecordSet::new();
        assert!(matches!(
            r.add_records("EF06", &hex("08 20 3131")),
            Err(RecordError::Tlv {
                file: "EF06",
                error: TlvError::Truncated { offset: 2, .. }
            })
        ));
    }

    #[test]
    fn name_extension_is_appended() {
        let mut v = ef06_bytes();
        v.extend(hex("4E 02 C3F7"));
        let mut r = RecordSet::new();
        r.add_records("EF06", &v).unwrap();
        assert_eq!(
            Cardholder::from_records(&r).unwrap().name.reveal(),
            "张三明"
        );
    }

    proptest! {
        #[test]
        fn record_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut r = RecordSet::new();
            if r.add_records("EF05", &bytes).is_ok() {
                let _ = CardIdentification::from_records(&r);
                let _ = Cardholder::from_records(&r);
            }
        }
    }
}
