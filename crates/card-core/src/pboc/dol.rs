//! Data object lists (PDOL `9F38`, CDOL1 `8C`, CDOL2 `8D`, DDOL `9F49`, and the log formats
//! `9F4F` and `DF4F`, which are coded the same way): a list of tags and lengths that asks for
//! data, answered by the values concatenated without tags or lengths (JR/T 0025.5 §7.1 表7,
//! 附录 B.8.3; JR/T 0025.6 §7.3.4).
//!
//! Building the data for a list follows JR/T 0025.5 附录 A.1 and JR/T 0025.6 §8.2 for data
//! shorter than the entry: format n is right-aligned and padded on the left with `00`, cn is
//! padded on the right with `F`, everything else (an, ans, b) on the right with `00`. Data
//! longer than the entry is cut: n keeps its rightmost bytes, every other format its leftmost.
//! A tag the terminal does not know, or a constructed tag, is filled with zeros. (The cutting
//! and the zero filling are the rules of EMV 4.3 Book 3 §5.4, which JR/T 0025 follows; the
//! project's profile, docs/pboc-profile.md, states them too.) The format of a tag comes from
//! the tag dictionary ([`crate::tags`]).

use crate::tags::{self, Context, Format};
use crate::tlv::Tag;

use super::store::DataSource;

/// Errors reading a DOL or splitting data by one.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DolError {
    /// The list ends inside a tag or before a length.
    #[error("DOL truncated at byte {offset}")]
    Truncated {
        /// Offset of the entry that is cut.
        offset: usize,
    },
    /// A tag longer than three bytes.
    #[error("DOL tag at byte {offset} is longer than 3 bytes")]
    TagTooLong {
        /// Offset of the tag.
        offset: usize,
    },
    /// A length that is not one byte or `81 xx`.
    #[error("DOL length at byte {offset} is not a one-byte length")]
    BadLength {
        /// Offset of the length.
        offset: usize,
    },
    /// Data to split is not as long as the list asks.
    #[error("data of {found} bytes for a DOL of {expected} bytes")]
    DataLength {
        /// The sum of the entries' lengths.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
}

/// One entry: a tag and the length of its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DolEntry {
    /// The tag asked for.
    pub tag: Tag,
    /// The number of bytes to put in its place.
    pub len: usize,
}

/// A data object list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Dol {
    entries: Vec<DolEntry>,
}

/// Read one BER tag (1 to 3 bytes) at the start of `bytes`: its value and length.
pub(crate) fn read_tag(bytes: &[u8], offset: usize) -> Result<(Tag, usize), DolError> {
    let (&first, _) = bytes.split_first().ok_or(DolError::Truncated { offset })?;
    let mut value = u32::from(first);
    if first & 0x1f != 0x1f {
        return Ok((Tag::new(value), 1));
    }
    for i in 1..=2 {
        let &b = bytes.get(i).ok_or(DolError::Truncated { offset })?;
        value = (value << 8) | u32::from(b);
        if b & 0x80 == 0 {
            return Ok((Tag::new(value), i + 1));
        }
    }
    Err(DolError::TagTooLong { offset })
}

impl Dol {
    /// A list from entries.
    pub fn new(entries: Vec<DolEntry>) -> Self {
        Self { entries }
    }

    /// A list from `(tag, length)` pairs, e.g. `&[(0x9F37, 4)]`.
    pub fn from_pairs(pairs: &[(u32, usize)]) -> Self {
        Self {
            entries: pairs
                .iter()
                .map(|&(tag, len)| DolEntry {
                    tag: Tag::new(tag),
                    len,
                })
                .collect(),
        }
    }

    /// Read a list: tags of one to three bytes, each followed by a one-byte length (or `81 xx`).
    pub fn parse(bytes: &[u8]) -> Result<Self, DolError> {
        let mut entries = Vec::new();
        let mut offset = 0;
        while let Some(rest) = bytes.get(offset..).filter(|r| !r.is_empty()) {
            let (tag, tag_len) = read_tag(rest, offset)?;
            let len_at = offset + tag_len;
            let (len, len_len) = match rest.get(tag_len..) {
                Some([0x81, n, ..]) => (usize::from(*n), 2),
                Some([n, ..]) if *n < 0x80 => (usize::from(*n), 1),
                Some([_, ..]) => return Err(DolError::BadLength { offset: len_at }),
                _ => return Err(DolError::Truncated { offset }),
            };
            entries.push(DolEntry { tag, len });
            offset = len_at + len_len;
        }
        Ok(Self { entries })
    }

    /// The list coded again (tags, one-byte lengths, `81 xx` beyond 127).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 3);
        for e in &self.entries {
            out.extend_from_slice(e.tag.bytes().as_slice());
            let n = u8::try_from(e.len).unwrap_or(u8::MAX);
            if n >= 0x80 {
                out.push(0x81);
            }
            out.push(n);
        }
        out
    }

    /// The entries.
    pub fn entries(&self) -> &[DolEntry] {
        &self.entries
    }

    /// Whether the list asks for `tag`.
    pub fn contains(&self, tag: Tag) -> bool {
        self.entries.iter().any(|e| e.tag == tag)
    }

    /// The length of the data the list asks for.
    pub fn data_len(&self) -> usize {
        self.entries.iter().map(|e| e.len).sum()
    }

    /// The data for this list from `source`, each value fitted to its entry ([`fit`]).
    pub fn build(&self, source: &impl DataSource) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data_len());
        for e in &self.entries {
            let value = if e.tag.is_constructed() {
                None
            } else {
                source.get(e.tag)
            };
            out.extend_from_slice(&fit(e.tag, value.unwrap_or_default(), e.len));
        }
        out
    }

    /// Split data built for this list back into its values, in order (a log record against its
    /// log format, JR/T 0025.13 §10.2). The data must be exactly [`Dol::data_len`] long.
    pub fn split<'a>(&self, data: &'a [u8]) -> Result<Vec<(Tag, &'a [u8])>, DolError> {
        if data.len() != self.data_len() {
            return Err(DolError::DataLength {
                expected: self.data_len(),
                found: data.len(),
            });
        }
        let mut rest = data;
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let (value, tail) = rest.split_at_checked(e.len).ok_or(DolError::DataLength {
                expected: self.data_len(),
                found: data.len(),
            })?;
            out.push((e.tag, value));
            rest = tail;
        }
        Ok(out)
    }
}

/// How a tag's value is padded and cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Format n: right-aligned, `00` on the left, cut on the left.
    Numeric,
    /// Format cn: left-aligned, `F` on the right, cut on the right.
    CompressedNumeric,
    /// Everything else: left-aligned, `00` on the right, cut on the right.
    Other,
}

fn fill_of(tag: Tag) -> Fill {
    match tags::lookup(Context::Emv, tag).map(|i| i.format) {
        Some(Format::Numeric | Format::Date) => Fill::Numeric,
        Some(Format::CompressedNumeric) => Fill::CompressedNumeric,
        _ => Fill::Other,
    }
}

/// `value` fitted to `len` bytes by the rules of `tag`'s format (module documentation).
pub fn fit(tag: Tag, value: &[u8], len: usize) -> Vec<u8> {
    let fill = fill_of(tag);
    let mut out = Vec::with_capacity(len);
    if value.len() >= len {
        let kept = match fill {
            Fill::Numeric => value.get(value.len() - len..),
            _ => value.get(..len),
        };
        out.extend_from_slice(kept.unwrap_or_default());
        return out;
    }
    let pad = len - value.len();
    match fill {
        Fill::Numeric => {
            out.resize(pad, 0);
            out.extend_from_slice(value);
        }
        Fill::CompressedNumeric => {
            out.extend_from_slice(value);
            out.resize(len, 0xff);
        }
        Fill::Other => {
            out.extend_from_slice(value);
            out.resize(len, 0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pboc::store::DataStore;

    #[test]
    fn parses_the_profile_pdol() {
        let pdol =
            hex::decode("9F66049F02069F03069F1A0295055F2A029A039C019F37049F7A01DF6901").unwrap();
        let dol = Dol::parse(&pdol).unwrap();
        assert_eq!(dol.entries().len(), 11);
        assert_eq!(dol.data_len(), 4 + 6 + 6 + 2 + 5 + 2 + 3 + 1 + 4 + 1 + 1);
        assert_eq!(dol.to_bytes(), pdol);
        assert!(dol.contains(Tag::new(0xdf69)));
    }

    #[test]
    fn malformed_lists() {
        assert_eq!(Dol::parse(&[0x9f]), Err(DolError::Truncated { offset: 0 }));
        assert_eq!(
            Dol::parse(&[0x9f, 0x02]),
            Err(DolError::Truncated { offset: 0 })
        );
        assert_eq!(
            Dol::parse(&[0x9f, 0x81, 0x81, 0x01, 0x01]),
            Err(DolError::TagTooLong { offset: 0 })
        );
        assert_eq!(
            Dol::parse(&[0x95, 0x05, 0x9a, 0x83]),
            Err(DolError::BadLength { offset: 3 })
        );
        assert_eq!(Dol::parse(&[0x95, 0x81, 0x90]).unwrap().data_len(), 0x90);
    }

    #[test]
    fn padding_and_cutting() {
        // n: left zeros, cut on the left.
        assert_eq!(fit(Tag::new(0x9f02), &[0x12, 0x34], 4), [0, 0, 0x12, 0x34]);
        assert_eq!(fit(Tag::new(0x9f02), &[0, 0, 0x12, 0x34], 2), [0x12, 0x34]);
        // cn: right F.
        assert_eq!(
            fit(Tag::new(0x5a), &[0x62, 0x28], 4),
            [0x62, 0x28, 0xff, 0xff]
        );
        // ans: right zeros, cut on the right.
        assert_eq!(fit(Tag::new(0x9f4e), b"AB", 4), *b"AB\0\0");
        assert_eq!(fit(Tag::new(0x9f4e), b"ABCDEF", 4), *b"ABCD");
        // b: right zeros; unknown tags are binary.
        assert_eq!(fit(Tag::new(0x95), &[1], 2), [1, 0]);
        assert_eq!(fit(Tag::new(0xdf7f), &[1, 2, 3], 2), [1, 2]);
    }

    #[test]
    fn build_and_split() {
        let dol = Dol::from_pairs(&[(0x9f02, 6), (0x9f37, 4), (0xdf01, 2), (0x70, 2)]);
        let mut store = DataStore::new();
        store.set(0x9f02, [0x10, 0x00]);
        store.set(0x9f37, [1, 2, 3, 4]);
        store.set(0x70, [9, 9]);
        let data = dol.build(&store);
        assert_eq!(data, [0, 0, 0, 0, 0x10, 0, 1, 2, 3, 4, 0, 0, 0, 0]);
        let parts = dol.split(&data).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1], (Tag::new(0x9f37), &[1u8, 2, 3, 4][..]));
        assert_eq!(
            dol.split(&data[1..]),
            Err(DolError::DataLength {
                expected: 14,
                found: 13
            })
        );
    }
}
