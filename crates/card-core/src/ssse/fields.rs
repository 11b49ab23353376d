//! Typed fields of the social-security application, with their validation rules.
//!
//! - [`IdNumber`]: the social-security number is the 18-character citizen ID number of
//!   GB 11643, whose last character is the ISO 7064 MOD 11-2 check character.
//! - [`CardNumber`]: 8 characters and a check character computed with the weights
//!   3, 7, 9, 10, 5, 8, 4, 2 modulo 11 (the scheme of GB 11714 organisation codes; see
//!   docs/card-profile.md for the sources).
//! - [`Date`]: `YYYYMMDD` in BCD (compressed numeric), checked to be a real calendar date.
//!
//! Personal values (`IdNumber`, `CardNumber`, `PersonName`) mask themselves in `Display` and
//! `Debug`; the clear value is only available through `reveal()`, and their memory is
//! zeroized on drop.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::mask;

/// Why a field is not valid.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Wrong number of characters or bytes.
    #[error("expected {expected} characters, found {found}")]
    Length {
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// A character that the format does not allow, at a 0-based position.
    #[error("character {position} is not allowed here")]
    BadCharacter {
        /// Position of the character.
        position: usize,
    },
    /// The check character does not match.
    #[error("check character is {found:?}, the number requires {expected:?}")]
    CheckCharacter {
        /// What the number requires.
        expected: char,
        /// What it has.
        found: char,
    },
    /// Not a calendar date.
    #[error("{0} is not a valid date")]
    BadDate(String),
    /// Not valid BCD.
    #[error("byte {position} is not BCD")]
    NotBcd {
        /// Offset of the offending byte.
        position: usize,
    },
    /// Text not decodable as GBK / GB 18030.
    #[error("text is not valid GBK")]
    NotGbk,
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year, e.g. 2026.
    pub year: u16,
    /// Month 1-12.
    pub month: u8,
    /// Day 1-31.
    pub day: u8,
}

impl Date {
    /// A checked date.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, FieldError> {
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => 0,
        };
        if year == 0 || day == 0 || day > days {
            return Err(FieldError::BadDate(format!(
                "{year:04}-{month:02}-{day:02}"
            )));
        }
        Ok(Self { year, month, day })
    }

    /// From 4 BCD bytes `YYYYMMDD`.
    pub fn from_bcd(bytes: &[u8]) -> Result<Self, FieldError> {
        let digits = bcd_digits(bytes)?;
        if digits.len() != 8 {
            return Err(FieldError::Length {
                expected: 8,
                found: digits.len(),
            });
        }
        Self::from_digits(&digits)
    }

    /// From the text `YYYYMMDD`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if text.len() != 8 {
            return Err(FieldError::Length {
                expected: 8,
                found: text.chars().count(),
            });
        }
        let digits: Vec<u8> = text
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                if b.is_ascii_digit() {
                    Ok(b - b'0')
                } else {
                    Err(FieldError::BadCharacter { position: i })
                }
            })
            .collect::<Result<_, _>>()?;
        Self::from_digits(&digits)
    }

    fn from_digits(d: &[u8]) -> Result<Self, FieldError> {
        let num = |r: core::ops::Range<usize>| {
            d.get(r)
                .unwrap_or_default()
                .iter()
                .fold(0u16, |a, x| a * 10 + u16::from(*x))
        };
        Self::new(num(0..4), num(4..6) as u8, num(6..8) as u8)
    }

    /// As 4 BCD bytes `YYYYMMDD`.
    pub fn to_bcd(self) -> [u8; 4] {
        let bcd = |v: u16| (((v / 10) % 10) << 4 | (v % 10)) as u8;
        [
            bcd(self.year / 100),
            bcd(self.year % 100),
            bcd(u16::from(self.month)),
            bcd(u16::from(self.day)),
        ]
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Digits of packed BCD; `F` nibbles end the value (compressed numeric padding).
pub fn bcd_digits(bytes: &[u8]) -> Result<Vec<u8>, FieldError> {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for (i, b) in bytes.iter().enumerate() {
        for nibble in [b >> 4, b & 0x0f] {
            match nibble {
                0..=9 => out.push(nibble),
                0x0f => return Ok(out),
                _ => return Err(FieldError::NotBcd { position: i }),
            }
        }
    }
    Ok(out)
}

/// The value of a character in check computations: 0-9, then A=10 .. Z=35.
fn char_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        _ => None,
    }
}

/// An 18-character citizen ID number (GB 11643) used as the social-security number.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct IdNumber(String);

impl IdNumber {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

    /// The ISO 7064 MOD 11-2 check character for the first 17 digits.
    pub fn check_char(first17: &str) -> Result<char, FieldError> {
        if first17.len() != 17 {
            return Err(FieldError::Length {
                expected: 17,
                found: first17.chars().count(),
            });
        }
        let mut sum = 0u32;
        for (i, (b, w)) in first17.bytes().zip(Self::WEIGHTS).enumerate() {
            if !b.is_ascii_digit() {
                return Err(FieldError::BadCharacter { position: i });
            }
            sum += u32::from(b - b'0') * w;
        }
        let check = (12 - sum % 11) % 11;
        Ok(if check == 10 {
            'X'
        } else {
            char::from_digit(check, 10).unwrap_or('0')
        })
    }

    /// Parse and validate: 17 digits, a valid birth date in positions 7-14, the check character.
    /// A lowercase `x` is accepted and stored as `X`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let text = text.trim_end_matches(['\0', ' ']);
        if text.len() != 18 || !text.is_ascii() {
            return Err(FieldError::Length {
                expected: 18,
                found: text.chars().count(),
            });
        }
        let (body, check) = text.split_at(17);
        let expected = Self::check_char(body)?;
        let found = check.chars().next().unwrap_or(' ').to_ascii_uppercase();
        if found != expected {
            return Err(FieldError::CheckCharacter { expected, found });
        }
        Date::parse(body.get(6..14).unwrap_or_default())?;
        Ok(Self(format!("{body}{found}")))
    }

    /// Append the check character to 17 digits (for issuing cards and fixtures).
    pub fn complete(first17: &str) -> Result<Self, FieldError> {
        let c = Self::check_char(first17)?;
        Self::parse(&format!("{first17}{c}"))
    }

    /// The birth date encoded in the number.
    pub fn birth_date(&self) -> Option<Date> {
        Date::parse(self.0.get(6..14)?).ok()
    }

    /// The 6-digit administrative region code.
    pub fn region(&self) -> &str {
        self.0.get(..6).unwrap_or_default()
    }

    /// The clear value. Only for where it is needed: never for logs.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask::mask_id_number(&self.0))
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({self})")
    }
}

/// A 9-character social-security card number: 8 characters and a check character.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct CardNumber(String);

impl CardNumber {
    const WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

    /// The check character for the first 8 characters (digits or capital letters).
    pub fn check_char(first8: &str) -> Result<char, FieldError> {
        if first8.len() != 8 {
            return Err(FieldError::Length {
                expected: 8,
                found: first8.chars().count(),
            });
        }
        let mut sum = 0u32;
        for (i, (b, w)) in first8.bytes().zip(Self::WEIGHTS).enumerate() {
            sum += char_value(b).ok_or(FieldError::BadCharacter { position: i })? * w;
        }
        Ok(match 11 - sum % 11 {
            10 => 'X',
            11 => '0',
            n => char::from_digit(n, 10).unwrap_or('0'),
        })
    }

    /// Parse and validate.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let text = text.trim_end_matches(['\0', ' ']);
        if text.len() != 9 || !text.is_ascii() {
            return Err(FieldError::Length {
                expected: 9,
                found: text.chars().count(),
            });
        }
        let (body, check) = text.split_at(8);
        let expected = Self::check_char(body)?;
        let found = check.chars().next().unwrap_or(' ');
        if found != expected {
            return Err(FieldError::CheckCharacter { expected, found });
        }
        Ok(Self(text.to_string()))
    }

    /// Append the check character (for issuing cards and fixtures).
    pub fn complete(first8: &str) -> Result<Self, FieldError> {
        let c = Self::check_char(first8)?;
        Self::parse(&format!("{first8}{c}"))
    }

    /// The clear value. Only for where it is needed: never for logs.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask::mask_card_number(&self.0))
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({self})")
    }
}

/// A cardholder's name, decoded from GBK.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct PersonName(String);

impl PersonName {
    /// Decode a name field: GBK (decoded with the GB 18030 decoder, a superset, so rare
    /// characters outside GBK survive), with trailing `00`, `20` and `FF` padding removed.
    pub fn from_gbk(bytes: &[u8]) -> Result<Self, FieldError> {
        let end = bytes
            .iter()
            .rposition(|b| !matches!(b, 0x00 | 0x20 | 0xff))
            .map_or(0, |i| i + 1);
        let trimmed = bytes.get(..end).unwrap_or_default();
        let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(trimmed);
        if had_errors {
            return Err(FieldError::NotGbk);
        }
        Ok(Self(text.into_owned()))
    }

    /// A name from text.
    pub fn new(text: &str) -> Self {
        Self(text.to_string())
    }

    /// Encode as GB 18030 (identical to GBK for the characters GBK has).
    pub fn to_gbk(&self) -> Vec<u8> {
        let (bytes, _, _) = encoding_rs::GB18030.encode(&self.0);
        bytes.into_owned()
    }

    /// Append the name-extension field (tag 4E) for long names.
    pub fn extend(&mut self, more: &PersonName) {
        self.0.push_str(&more.0);
    }

    /// The clear value. Only for where it is needed: never for logs.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask::mask_name(&self.0))
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName({self})")
    }
}

/// Gender code of GB/T 2261.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// `0`: not known.
    Unknown,
    /// `1`.
    Male,
    /// `2`.
    Female,
    /// `9`: not stated.
    Unstated,
}

impl Gender {
    /// From the card byte: the ASCII digit, or the digit's value.
    pub fn from_byte(b: u8) -> Result<Self, FieldError> {
        match b {
            b'0' | 0 => Ok(Self::Unknown),
            b'1' | 1 => Ok(Self::Male),
            b'2' | 2 => Ok(Self::Female),
            b'9' | 9 => Ok(Self::Unstated),
            _ => Err(FieldError::BadCharacter { position: 0 }),
        }
    }

    /// The code as ASCII digit.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unknown => b'0',
            Self::Male => b'1',
            Self::Female => b'2',
            Self::Unstated => b'9',
        }
    }

    /// Chinese label.
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Unknown => "未知",
            Self::Male => "男",
            Self::Female => "女",
            Self::Unstated => "未说明",
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::Male => "male",
            Self::Female => "female",
            Self::Unstated => "not stated",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn id_number_check_characters() {
        // The GB 11643 example number.
        assert_eq!(IdNumber::check_char("11010519491231002").unwrap(), 'X');
        let id = IdNumber::parse("11010519491231002x").unwrap();
        assert_eq!(id.reveal(), "11010519491231002X");
        assert_eq!(id.birth_date(), Some(Date::new(1949, 12, 31).unwrap()));
        assert_eq!(id.region(), "110105");
        assert_eq!(id.to_string(), "110***********002X");
        assert_eq!(
            IdNumber::parse("110105194912310021"),
            Err(FieldError::CheckCharacter {
                expected: 'X',
                found: '1'
            })
        );
        // Check is right but the birth date is not a date.
        let bad_date = IdNumber::complete("11010519491331002").unwrap_err();
        assert!(matches!(bad_date, FieldError::BadDate(_)), "{bad_date:?}");
        assert!(matches!(
            IdNumber::parse("1101"),
            Err(FieldError::Length { .. })
        ));
        assert!(matches!(
            IdNumber::parse("1101051949123100AX"),
            Err(FieldError::BadCharacter { position: 16 })
        ));
    }

    #[test]
    fn card_number_check_characters() {
        // Weights 3,7,9,10,5,8,4,2: "A1234567" -> 10*3+1*7+2*9+3*10+4*5+5*8+6*4+7*2 = 183,
        // 183 mod 11 = 7, 11-7 = 4.
        assert_eq!(CardNumber::check_char("A1234567").unwrap(), '4');
        let n = CardNumber::parse("A12345674").unwrap();
        assert_eq!(n.to_string(), "A*******4");
        assert_eq!(
            CardNumber::parse("A12345675"),
            Err(FieldError::CheckCharacter {
                expected: '4',
                found: '5'
            })
        );
        assert!(matches!(
            CardNumber::parse("a12345674"),
            Err(FieldError::BadCharacter { position: 0 })
        ));
        // A sum that is a multiple of 11 gives '0'; remainder 1 gives 'X'.
        assert_eq!(CardNumber::check_char("00000000").unwrap(), '0');
        assert_eq!(CardNumber::check_char("00000006").unwrap(), 'X'); // 6*2 = 12, 12 mod 11 = 1
        assert_eq!(CardNumber::check_char("00000003").unwrap(), '5'); // 3*2 = 6, 11-6 = 5
    }

    #[test]
    fn dates() {
        assert_eq!(
            Date::from_bcd(&[0x20, 0x24, 0x02, 0x29])
                .unwrap()
                .to_string(),
            "2024-02-29"
        );
        assert!(matches!(
            Date::from_bcd(&[0x20, 0x23, 0x02, 0x29]),
            Err(FieldError::BadDate(_))
        ));
        assert!(matches!(
            Date::from_bcd(&[0x20, 0x2a, 0x01, 0x01]),
            Err(FieldError::NotBcd { position: 1 })
        ));
        assert!(matches!(
            Date::from_bcd(&[0x20, 0x24, 0x01]),
            Err(FieldError::Length { .. })
        ));
        assert_eq!(
            Date::new(2031, 6, 30).unwrap().to_bcd(),
            [0x20, 0x31, 0x06, 0x30]
        );
        assert!(Date::new(2030, 1, 1).unwrap() > Date::new(2029, 12, 31).unwrap());
    }

    #[test]
    fn names_decode_from_gbk() {
        let gbk = [0xd5, 0xc5, 0xc8, 0xfd, 0x00, 0x00];
        let name = PersonName::from_gbk(&gbk).unwrap();
        assert_eq!(name.reveal(), "张三");
        assert_eq!(name.to_string(), "张*");
        assert_eq!(format!("{name:?}"), "PersonName(张*)");
        assert_eq!(name.to_gbk(), [0xd5, 0xc5, 0xc8, 0xfd]);
        assert_eq!(PersonName::from_gbk(&[0xd5]), Err(FieldError::NotGbk));
        // A character outside GBK (in GB 18030's four-byte range) survives a round trip.
        let rare = PersonName::new("䶮");
        assert_eq!(PersonName::from_gbk(&rare.to_gbk()).unwrap().reveal(), "䶮");
    }

    proptest! {
        #[test]
        fn completed_numbers_always_validate(body in "[0-9]{6}(19[5-9][0-9]|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}") {
            let id = IdNumber::complete(&body).unwrap();
            prop_assert_eq!(IdNumber::parse(id.reveal()).unwrap(), id);
        }

        #[test]
        fn card_numbers_complete(body in "[A-Z0-9]{8}") {
            let n = CardNumber::complete(&body).unwrap();
            prop_assert_eq!(CardNumber::parse(n.reveal()).unwrap(), n);
        }

        #[test]
        fn one_changed_digit_is_detected(body in "[0-9]{6}19[5-9][0-9]0[1-9]1[0-9][0-9]{3}", pos in 0usize..17, delta in 1u8..10) {
            let id = IdNumber::complete(&body).unwrap();
            let mut bytes = id.reveal().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(IdNumber::parse(&changed).is_err());
        }

        #[test]
        fn gbk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = PersonName::from_gbk(&bytes);
            let _ = Date::from_bcd(&bytes);
            let _ = bcd_digits(&bytes);
        }
    }
}
