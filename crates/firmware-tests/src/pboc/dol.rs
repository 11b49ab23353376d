//! The data object lists of the application (docs/pboc-profile.md) and how the card reads the
//! data a terminal sends for them: the values concatenated in list order, no tags or lengths
//! (JR/T 0025.5 附录 B.8.3, B.6.3; JR/T 0025.4 §5.3 for the terminal's side).

use card_core::tlv::Tag;

/// One entry of a data object list: a tag and the length of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DolEntry {
    /// The tag.
    pub tag: u32,
    /// The value length the card asks for.
    pub len: usize,
}

const fn e(tag: u32, len: usize) -> DolEntry {
    DolEntry { tag, len }
}

/// Terminal transaction qualifiers (qPBOC).
pub const TAG_TTQ: u32 = 0x9f66;
/// Amount, authorised.
pub const TAG_AMOUNT: u32 = 0x9f02;
/// Amount, other.
pub const TAG_AMOUNT_OTHER: u32 = 0x9f03;
/// Terminal country code.
pub const TAG_COUNTRY: u32 = 0x9f1a;
/// Terminal verification results.
pub const TAG_TVR: u32 = 0x95;
/// Transaction currency code.
pub const TAG_CURRENCY: u32 = 0x5f2a;
/// Transaction date.
pub const TAG_DATE: u32 = 0x9a;
/// Transaction type.
pub const TAG_TYPE: u32 = 0x9c;
/// Unpredictable number.
pub const TAG_UN: u32 = 0x9f37;
/// EC terminal support indicator.
pub const TAG_EC_INDICATOR: u32 = 0x9f7a;
/// SM algorithm support indicator (JR/T 0025.17 §10.1 表18).
pub const TAG_SM_INDICATOR: u32 = 0xdf69;
/// Transaction time.
pub const TAG_TIME: u32 = 0x9f21;
/// Merchant name and location.
pub const TAG_MERCHANT: u32 = 0x9f4e;
/// Authorisation response code.
pub const TAG_ARC: u32 = 0x8a;
/// Issuer authentication data.
pub const TAG_ISSUER_AUTH: u32 = 0x91;
/// Application transaction counter.
pub const TAG_ATC: u32 = 0x9f36;

/// PDOL `9F38`.
pub const PDOL: &[DolEntry] = &[
    e(TAG_TTQ, 4),
    e(TAG_AMOUNT, 6),
    e(TAG_AMOUNT_OTHER, 6),
    e(TAG_COUNTRY, 2),
    e(TAG_TVR, 5),
    e(TAG_CURRENCY, 2),
    e(TAG_DATE, 3),
    e(TAG_TYPE, 1),
    e(TAG_UN, 4),
    e(TAG_EC_INDICATOR, 1),
    e(TAG_SM_INDICATOR, 1),
];

/// CDOL1 `8C`.
pub const CDOL1: &[DolEntry] = &[
    e(TAG_AMOUNT, 6),
    e(TAG_AMOUNT_OTHER, 6),
    e(TAG_COUNTRY, 2),
    e(TAG_TVR, 5),
    e(TAG_CURRENCY, 2),
    e(TAG_DATE, 3),
    e(TAG_TYPE, 1),
    e(TAG_UN, 4),
    e(TAG_TIME, 3),
    e(TAG_MERCHANT, 20),
];

/// CDOL2 `8D`.
pub const CDOL2: &[DolEntry] = &[
    e(TAG_ARC, 2),
    e(TAG_ISSUER_AUTH, 10),
    e(TAG_TVR, 5),
    e(TAG_UN, 4),
];

/// DDOL `9F49`.
pub const DDOL: &[DolEntry] = &[e(TAG_UN, 4)];

/// Transaction log format `9F4F` (JR/T 0025.13 表9).
pub const LOG_FORMAT: &[DolEntry] = &[
    e(TAG_DATE, 3),
    e(TAG_TIME, 3),
    e(TAG_AMOUNT, 6),
    e(TAG_AMOUNT_OTHER, 6),
    e(TAG_COUNTRY, 2),
    e(TAG_CURRENCY, 2),
    e(TAG_MERCHANT, 20),
    e(TAG_TYPE, 1),
    e(TAG_ATC, 2),
];

/// Load log format `DF4F` (JR/T 0025.13 表11).
pub const LOAD_LOG_FORMAT: &[DolEntry] = &[
    e(TAG_DATE, 3),
    e(TAG_TIME, 3),
    e(TAG_COUNTRY, 2),
    e(TAG_MERCHANT, 20),
    e(TAG_ATC, 2),
];

/// The elements the application cryptogram covers, in the order of JR/T 0025.5 附录 D.1
/// 表D.1 (and JR/T 0025.7 §6.1.1 表22), before the card's own AIP, ATC and CVR.
pub const CRYPTOGRAM_TERMINAL_DATA: &[DolEntry] = &[
    e(TAG_AMOUNT, 6),
    e(TAG_AMOUNT_OTHER, 6),
    e(TAG_COUNTRY, 2),
    e(TAG_TVR, 5),
    e(TAG_CURRENCY, 2),
    e(TAG_DATE, 3),
    e(TAG_TYPE, 1),
    e(TAG_UN, 4),
];

/// The list as the card stores it (`9F38`, `8C`, ...): each tag and its length.
pub fn encode(dol: &[DolEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in dol {
        out.extend_from_slice(Tag::new(entry.tag).bytes().as_slice());
        out.push(u8::try_from(entry.len).unwrap_or(u8::MAX));
    }
    out
}

/// Sum of the lengths: the length of the data the terminal sends.
pub fn data_len(dol: &[DolEntry]) -> usize {
    dol.iter().map(|e| e.len).sum()
}

/// Terminal data cut along a data object list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DolData {
    values: Vec<(u32, Vec<u8>)>,
    raw: Vec<u8>,
}

impl DolData {
    /// Cut `data` along `dol`; `None` unless `data` is exactly as long as the list asks.
    pub fn split(dol: &[DolEntry], data: &[u8]) -> Option<Self> {
        if data.len() != data_len(dol) {
            return None;
        }
        let mut values = Vec::with_capacity(dol.len());
        let mut rest = data;
        for entry in dol {
            let (value, tail) = rest.split_at_checked(entry.len)?;
            values.push((entry.tag, value.to_vec()));
            rest = tail;
        }
        Some(Self {
            values,
            raw: data.to_vec(),
        })
    }

    /// The value sent for `tag`.
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_slice())
    }

    /// The data as the terminal sent it.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// The values of `dol` taken from `sources` in order (the first source that has the tag wins),
/// zeros for a tag none has: how the card fills its log records and cryptogram input.
pub fn collect(dol: &[DolEntry], sources: &[&DolData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data_len(dol));
    for entry in dol {
        let value = sources.iter().find_map(|s| s.get(entry.tag));
        match value {
            Some(v) if v.len() == entry.len => out.extend_from_slice(v),
            _ => out.resize(out.len() + entry.len, 0),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_have_the_profile_lengths() {
        assert_eq!(data_len(PDOL), 35);
        assert_eq!(data_len(CDOL1), 52);
        assert_eq!(data_len(CDOL2), 21);
        assert_eq!(data_len(LOG_FORMAT), 45);
        assert_eq!(data_len(LOAD_LOG_FORMAT), 30);
        assert_eq!(
            hex::encode_upper(encode(CDOL2)),
            "8A02910A95059F3704",
            "tags and lengths"
        );
    }

    #[test]
    fn split_needs_the_exact_length() {
        assert!(DolData::split(DDOL, &[1, 2, 3]).is_none());
        let d = DolData::split(DDOL, &[1, 2, 3, 4]).unwrap();
        assert_eq!(d.get(TAG_UN), Some(&[1, 2, 3, 4][..]));
        assert_eq!(collect(CDOL2, &[&d]), {
            let mut v = vec![0u8; 17];
            v.extend([1, 2, 3, 4]);
            v
        });
    }
}
