//! BER-TLV as used on smart cards (ISO/IEC 7816-4 §5.2, EMV Book 3 Annex B, JR/T 0025.5
//! Annex B).
//!
//! Two layers:
//! - [`TlvIter`] walks a buffer without copying, yielding [`TlvRef`]s that borrow the value.
//!   This is the fast path for looking up a tag in a card response.
//! - [`Tlv`] is an owned tree for building responses and for code that keeps the data.
//!
//! Tags of one to three bytes are accepted (the longest EMV and PBOC use), lengths in the
//! short form and in the long form with one to three length bytes (`81`, `82`, `83`).
//! Indefinite lengths (`80`) are refused. Every error carries the byte offset at which the
//! input went wrong. `00` bytes between objects are skipped, as EMV Book 3 Annex B allows for
//! padding; nesting deeper than [`MAX_DEPTH`] is refused, so hostile input cannot exhaust the
//! stack.

use core::fmt;

/// Deepest nesting of constructed objects accepted by [`Tlv::parse_all`].
pub const MAX_DEPTH: usize = 32;

/// Errors from TLV decoding; each names the offset of the offending byte.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    /// The input ended inside a tag, length or value.
    #[error("TLV truncated at offset {offset}: {needed} more bytes needed")]
    Truncated {
        /// Offset where more bytes were expected.
        offset: usize,
        /// How many more bytes were needed (at least).
        needed: usize,
    },
    /// A tag longer than three bytes.
    #[error("TLV tag at offset {offset} is longer than 3 bytes")]
    TagTooLong {
        /// Offset of the tag's first byte.
        offset: usize,
    },
    /// The indefinite length form `80`.
    #[error("TLV indefinite length at offset {offset} is not allowed")]
    IndefiniteLength {
        /// Offset of the length byte.
        offset: usize,
    },
    /// A long-form length with more than three length bytes.
    #[error("TLV length at offset {offset} uses {bytes} length bytes (at most 3)")]
    LengthTooLong {
        /// Offset of the first length byte.
        offset: usize,
        /// Number of subsequent length bytes announced.
        bytes: usize,
    },
    /// Constructed objects nested deeper than [`MAX_DEPTH`].
    #[error("TLV nested deeper than {MAX_DEPTH} at offset {offset}")]
    TooDeep {
        /// Offset of the object that went too deep.
        offset: usize,
    },
    /// Bytes after a single object where none were expected.
    #[error("{count} unexpected bytes after the TLV object at offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// Number of extra bytes.
        count: usize,
    },
    /// A value too long to encode (more than 3 length bytes).
    #[error("TLV value of {len} bytes is too long to encode")]
    ValueTooLong {
        /// The value's length.
        len: usize,
    },
}

/// A BER tag of one to three bytes, stored right-aligned (`0x9F36`, `0x5F2A`, `0x6F`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(u32);

/// Tag class (the two high bits of the first tag byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagClass {
    /// `00xxxxxx`.
    Universal,
    /// `01xxxxxx`.
    Application,
    /// `10xxxxxx`.
    ContextSpecific,
    /// `11xxxxxx`.
    Private,
}

impl Tag {
    /// Build a tag from its numeric value (`0x9F36`). The value must be a well-formed BER
    /// tag: see [`Tag::try_from_u32`] for a checked constructor.
    pub const fn new(value: u32) -> Self {
        Self(value)
    }

    /// Build a tag from its numeric value, checking that its bytes form exactly one BER tag.
    pub fn try_from_u32(value: u32) -> Option<Self> {
        let tag = Self(value);
        let bytes = tag.bytes();
        match Self::read(bytes.as_slice(), 0) {
            Ok((t, n)) if n == bytes.as_slice().len() && t == tag => Some(tag),
            _ => None,
        }
    }

    /// The numeric value.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Encoded length in bytes.
    pub const fn len(self) -> usize {
        if self.0 > 0xffff {
            3
        } else if self.0 > 0xff {
            2
        } else {
            1
        }
    }

    /// Always false: a tag has at least one byte. Present for API symmetry with `len`.
    pub const fn is_empty(self) -> bool {
        false
    }

    const fn first_byte(self) -> u8 {
        (self.0 >> ((self.len() - 1) * 8)) as u8
    }

    /// The tag's class.
    pub const fn class(self) -> TagClass {
        match self.first_byte() >> 6 {
            0 => TagClass::Universal,
            1 => TagClass::Application,
            2 => TagClass::ContextSpecific,
            _ => TagClass::Private,
        }
    }

    /// Whether the value is made of further TLV objects (bit 6 of the first byte).
    pub const fn is_constructed(self) -> bool {
        self.first_byte() & 0x20 != 0
    }

    /// The encoded bytes.
    pub fn bytes(self) -> TagBytes {
        let len = self.len();
        let all = self.0.to_be_bytes();
        let [_, b0, b1, b2] = all;
        TagBytes {
            b: [b0, b1, b2],
            len,
        }
    }

    /// Decode a tag at `offset` (used for error positions); returns the tag and its length.
    fn read(input: &[u8], offset: usize) -> Result<(Self, usize), TlvError> {
        let Some(&first) = input.first() else {
            return Err(TlvError::Truncated { offset, needed: 1 });
        };
        let mut value = u32::from(first);
        if first & 0x1f != 0x1f {
            return Ok((Self(value), 1));
        }
        let mut i = 1;
        loop {
            let Some(&b) = input.get(i) else {
                return Err(TlvError::Truncated {
                    offset: offset + i,
                    needed: 1,
                });
            };
            value = (value << 8) | u32::from(b);
            i += 1;
            if b & 0x80 == 0 {
                return Ok((Self(value), i));
            }
            if i >= 3 {
                return Err(TlvError::TagTooLong { offset });
            }
        }
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.len() {
            1 => write!(f, "{:02X}", self.0),
            2 => write!(f, "{:04X}", self.0),
            _ => write!(f, "{:06X}", self.0),
        }
    }
}

/// The encoded bytes of a [`Tag`] (one to three), without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagBytes {
    b: [u8; 3],
    len: usize,
}

impl TagBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.b.get(3 - self.len..).unwrap_or_default()
    }
}

fn read_length(input: &[u8], offset: usize) -> Result<(usize, usize), TlvError> {
    let Some(&first) = input.first() else {
        return Err(TlvError::Truncated { offset, needed: 1 });
    };
    match first {
        0..=0x7f => Ok((usize::from(first), 1)),
        0x80 => Err(TlvError::IndefiniteLength { offset }),
        0x81..=0x83 => {
            let n = usize::from(first & 0x7f);
            let Some(bytes) = input.get(1..=n) else {
                return Err(TlvError::Truncated {
                    offset: offset + 1,
                    needed: n + 1 - input.len(),
                });
            };
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            Ok((len, n + 1))
        }
        _ => Err(TlvError::LengthTooLong {
            offset,
            bytes: usize::from(first & 0x7f),
        }),
    }
}

/// Append the minimal BER encoding of `len`.
pub fn write_length(out: &mut Vec<u8>, len: usize) -> Result<(), TlvError> {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xffff => {
            out.push(0x82);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0x83);
            out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        }
        _ => return Err(TlvError::ValueTooLong { len }),
    }
    Ok(())
}

/// Number of bytes [`write_length`] uses for `len`.
pub const fn length_len(len: usize) -> usize {
    match len {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 4,
    }
}

/// One TLV object borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvRef<'a> {
    /// The tag.
    pub tag: Tag,
    /// The value bytes.
    pub value: &'a [u8],
    /// Offset of the tag's first byte in the buffer the iterator started on.
    pub offset: usize,
    /// Offset of the value's first byte.
    pub value_offset: usize,
}

impl<'a> TlvRef<'a> {
    /// Iterate over the children of a constructed object (the value parsed as TLVs).
    pub fn children(&self) -> TlvIter<'a> {
        TlvIter::with_base(self.value, self.value_offset)
    }
}

/// A zero-copy iterator over consecutive TLV objects; stops at the first error.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    input: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

impl<'a> TlvIter<'a> {
    /// Iterate over the objects in `input`.
    pub const fn new(input: &'a [u8]) -> Self {
        Self::with_base(input, 0)
    }

    /// As [`TlvIter::new`], reporting offsets relative to `base`.
    pub const fn with_base(input: &'a [u8], base: usize) -> Self {
        Self {
            input,
            pos: 0,
            base,
            failed: false,
        }
    }

    /// Find the first object with `tag` among the objects at this level.
    pub fn find(self, tag: Tag) -> Result<Option<TlvRef<'a>>, TlvError> {
        for item in self {
            let item = item?;
            if item.tag == tag {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }

    /// Depth-first search for `tag` through constructed objects.
    pub fn find_deep(self, tag: Tag) -> Result<Option<TlvRef<'a>>, TlvError> {
        find_deep(self, tag, 0)
    }
}

fn find_deep<'a>(
    iter: TlvIter<'a>,
    tag: Tag,
    depth: usize,
) -> Result<Option<TlvRef<'a>>, TlvError> {
    for item in iter {
        let item = item?;
        if item.tag == tag {
            return Ok(Some(item));
        }
        if item.tag.is_constructed() {
            if depth + 1 >= MAX_DEPTH {
                return Err(TlvError::TooDeep {
                    offset: item.offset,
                });
            }
            if let Some(found) = find_deep(item.children(), tag, depth + 1)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<TlvRef<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // Skip 00 padding between objects (EMV Book 3 Annex B).
        while self.input.get(self.pos) == Some(&0) {
            self.pos += 1;
        }
        let rest = self.input.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let offset = self.base + self.pos;
        let result = (|| {
            let (tag, tag_len) = Tag::read(rest, offset)?;
            let after_tag = rest.get(tag_len..).unwrap_or_default();
            let (len, len_len) = read_length(after_tag, offset + tag_len)?;
            let start = tag_len + len_len;
            let value = rest
                .get(start..)
                .and_then(|v| v.get(..len))
                .ok_or_else(|| TlvError::Truncated {
                    offset: offset + start,
                    needed: len.saturating_sub(rest.len().saturating_sub(start)),
                })?;
            Ok((
                TlvRef {
                    tag,
                    value,
                    offset,
                    value_offset: offset + start,
                },
                start + len,
            ))
        })();
        match result {
            Ok((item, used)) => {
                self.pos += used;
                Some(Ok(item))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The value of an owned TLV object.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// Raw bytes.
    Primitive(Vec<u8>),
    /// Nested objects.
    Constructed(Vec<Tlv>),
}

/// An owned TLV object.
#[derive(Clone, PartialEq, Eq)]
pub struct Tlv {
    tag: Tag,
    value: Value,
}

impl Tlv {
    /// A primitive object. If `tag` is marked constructed, the value is still stored as given
    /// (raw bytes); use [`Tlv::constructed`] to build a tree.
    pub fn primitive(tag: Tag, value: impl Into<Vec<u8>>) -> Self {
        Self {
            tag,
            value: Value::Primitive(value.into()),
        }
    }

    /// A constructed object holding `children`.
    pub fn constructed(tag: Tag, children: Vec<Tlv>) -> Self {
        Self {
            tag,
            value: Value::Constructed(children),
        }
    }

    /// The tag.
    pub const fn tag(&self) -> Tag {
        self.tag
    }

    /// The value.
    pub const fn value(&self) -> &Value {
        &self.value
    }

    /// The bytes of a primitive value (`None` for a constructed one).
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Primitive(b) => Some(b),
            Value::Constructed(_) => None,
        }
    }

    /// The children of a constructed object (empty for a primitive one).
    pub fn children(&self) -> &[Tlv] {
        match &self.value {
            Value::Primitive(_) => &[],
            Value::Constructed(c) => c,
        }
    }

    /// The first direct child with `tag`.
    pub fn child(&self, tag: Tag) -> Option<&Tlv> {
        self.children().iter().find(|c| c.tag == tag)
    }

    /// Depth-first search for `tag` in this object and its descendants.
    pub fn find(&self, tag: Tag) -> Option<&Tlv> {
        if self.tag == tag {
            return Some(self);
        }
        self.children().iter().find_map(|c| c.find(tag))
    }

    /// Parse exactly one object; trailing bytes (other than `00` padding) are an error.
    pub fn parse(input: &[u8]) -> Result<Self, TlvError> {
        let mut all = Self::parse_all(input)?;
        match all.len() {
            0 => Err(TlvError::Truncated {
                offset: input.len(),
                needed: 1,
            }),
            1 => Ok(all.remove(0)),
            _ => {
                let offset = all.first().map_or(0, Tlv::encoded_len);
                Err(TlvError::TrailingBytes {
                    offset,
                    count: input.len().saturating_sub(offset),
                })
            }
        }
    }

    /// Parse consecutive objects, descending into constructed ones.
    pub fn parse_all(input: &[u8]) -> Result<Vec<Self>, TlvError> {
        parse_level(TlvIter::new(input), 0)
    }

    /// Length of the encoding.
    pub fn encoded_len(&self) -> usize {
        let v = self.value_len();
        self.tag.len() + length_len(v) + v
    }

    fn value_len(&self) -> usize {
        match &self.value {
            Value::Primitive(b) => b.len(),
            Value::Constructed(c) => c.iter().map(Tlv::encoded_len).sum(),
        }
    }

    /// Encode.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TlvError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Encode, appending to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), TlvError> {
        out.extend_from_slice(self.tag.bytes().as_slice());
        write_length(out, self.value_len())?;
        match &self.value {
            Value::Primitive(b) => out.extend_from_slice(b),
            Value::Constructed(c) => {
                for child in c {
                    child.encode_into(out)?;
                }
            }
        }
        Ok(())
    }
}

fn parse_level(iter: TlvIter<'_>, depth: usize) -> Result<Vec<Tlv>, TlvError> {
    let mut out = Vec::new();
    for item in iter {
        let item = item?;
        let value = if item.tag.is_constructed() {
            if depth + 1 >= MAX_DEPTH {
                return Err(TlvError::TooDeep {
                    offset: item.offset,
                });
            }
            Value::Constructed(parse_level(item.children(), depth + 1)?)
        } else {
            Value::Primitive(item.value.to_vec())
        };
        out.push(Tlv {
            tag: item.tag,
            value,
        });
    }
    Ok(out)
}

impl fmt::Debug for Tlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::Primitive(b) => write!(f, "{}: {}", self.tag, crate::apdu::HexFmt(b)),
            Value::Constructed(c) => f.debug_map().entry(&self.tag, c).finish(),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Primitive(b) => write!(f, "{}", crate::apdu::HexFmt(b)),
            Self::Constructed(c) => f.debug_list().entries(c).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn parses_an_fci() {
        // FCI of a PBOC application: 6F { 84 AID, A5 { 50 label, 9F38 PDOL } }.
        let fci =
            hex("6F 1E 84 08 A000000333010101 A5 12 50 04 50424F43 9F38 09 9F7A01 9F0206 5F2A02");
        let tlv = Tlv::parse(&fci).unwrap();
        assert_eq!(tlv.tag(), Tag::new(0x6f));
        assert!(tlv.tag().is_constructed());
        assert_eq!(
            tlv.find(Tag::new(0x84)).unwrap().bytes().unwrap(),
            hex("A000000333010101")
        );
        assert_eq!(
            tlv.find(Tag::new(0x9f38)).unwrap().bytes().unwrap().len(),
            9
        );
        assert_eq!(tlv.to_bytes().unwrap(), fci);

        let via_iter = TlvIter::new(&fci)
            .find_deep(Tag::new(0x50))
            .unwrap()
            .unwrap();
        assert_eq!(via_iter.value, b"PBOC");
        assert_eq!(via_iter.offset, 14);
    }

    #[test]
    fn long_lengths_and_tags() {
        let value = vec![0xabu8; 300];
        let t = Tlv::primitive(Tag::new(0xdf4d), value.clone());
        let enc = t.to_bytes().unwrap();
        assert_eq!(&enc[..5], &[0xdf, 0x4d, 0x82, 0x01, 0x2c]);
        assert_eq!(Tlv::parse(&enc).unwrap(), t);
        let three = Tlv::primitive(Tag::new(0x5f_8f_01), vec![1]);
        assert_eq!(three.to_bytes().unwrap(), [0x5f, 0x8f, 0x01, 0x01, 0x01]);
        assert_eq!(
            Tlv::parse(&[0x81, 0x83, 0, 0, 1, 7])
                .unwrap()
                .bytes()
                .unwrap(),
            [7]
        );
    }

    #[test]
    fn errors_carry_offsets() {
        assert_eq!(
            Tlv::parse_all(&hex("5A 08 1234")),
            Err(TlvError::Truncated {
                offset: 2,
                needed: 6
            })
        );
        assert_eq!(
            Tlv::parse_all(&hex("9F")),
            Err(TlvError::Truncated {
                offset: 1,
                needed: 1
            })
        );
        assert_eq!(
            Tlv::parse_all(&hex("50 01 41 9F 81 81 01 00")),
            Err(TlvError::TagTooLong { offset: 3 })
        );
        assert_eq!(
            Tlv::parse_all(&hex("50 80")),
            Err(TlvError::IndefiniteLength { offset: 1 })
        );
        assert_eq!(
            Tlv::parse_all(&hex("50 84 00 00 00 01 00")),
            Err(TlvError::LengthTooLong {
                offset: 1,
                bytes: 4
            })
        );
        assert_eq!(
            Tlv::parse_all(&hex("50 82 01")),
            Err(TlvError::Truncated {
                offset: 2,
                needed: 1
            })
        );
        // Constructed object whose child is truncated: the offset is absolute.
        assert_eq!(
            Tlv::parse_all(&hex("70 04 5A 05 12 34")),
            Err(TlvError::Truncated {
                offset: 4,
                needed: 3
            })
        );
        assert_eq!(
            Tlv::parse(&hex("50 01 41 50 01 42")),
            Err(TlvError::TrailingBytes {
                offset: 3,
                count: 3
            })
        );
    }

    #[test]
    fn padding_is_skipped() {
        let all = Tlv::parse_all(&hex("00 50 01 41 00 00 57 01 42 00")).unwrap();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = Vec::new();
        for _ in 0..40 {
            bytes.insert(0, 0x00);
            bytes.insert(0, 0x70);
        }
        // Fix up lengths from the inside out.
        let mut nested = Vec::new();
        for _ in 0..40 {
            let mut outer = vec![0x70];
            write_length(&mut outer, nested.len()).unwrap();
            outer.extend_from_slice(&nested);
            nested = outer;
        }
        assert!(matches!(
            Tlv::parse_all(&nested),
            Err(TlvError::TooDeep { .. })
        ));
        assert!(matches!(
            TlvIter::new(&nested).find_deep(Tag::new(0x5a)),
            Err(TlvError::TooDeep { .. })
        ));
    }

    #[test]
    fn tag_properties() {
        assert_eq!(Tag::new(0x9f36).len(), 2);
        assert_eq!(Tag::new(0x9f36).class(), TagClass::ContextSpecific);
        assert!(!Tag::new(0x9f36).is_constructed());
        assert!(Tag::new(0xbf0c).is_constructed());
        assert_eq!(Tag::new(0x5f2a).class(), TagClass::Application);
        assert_eq!(Tag::new(0x08).class(), TagClass::Universal);
        assert_eq!(Tag::new(0xdf69).to_string(), "DF69");
        assert!(Tag::try_from_u32(0x9f36).is_some());
        assert!(Tag::try_from_u32(0x9f).is_none());
        assert!(Tag::try_from_u32(0x5a36).is_none());
    }

    fn arb_tag() -> impl Strategy<Value = Tag> {
        prop_oneof![
            any::<u8>()
                .prop_filter("single-byte", |b| b & 0x1f != 0x1f && b & !0x20 != 0)
                .prop_map(|b| Tag::new(u32::from(b))),
            (any::<u8>(), 0u8..0x80)
                .prop_map(|(a, b)| Tag::new((u32::from(a | 0x1f) << 8) | u32::from(b))),
            (any::<u8>(), 0x80u8..=0xff, 0u8..0x80).prop_map(|(a, b, c)| {
                Tag::new((u32::from(a | 0x1f) << 16) | (u32::from(b) << 8) | u32::from(c))
            }),
        ]
    }

    fn arb_tlv() -> impl Strategy<Value = Tlv> {
        let leaf =
            (arb_tag(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(t, v)| {
                // Keep leaves primitive so the tree re-parses to the same shape.
                let t = Tag::new(clear_constructed(t));
                Tlv::primitive(t, v)
            });
        leaf.prop_recursive(4, 64, 6, |inner| {
            (arb_tag(), proptest::collection::vec(inner, 0..6)).prop_map(|(t, c)| {
                let t = Tag::new(set_constructed(t));
                Tlv::constructed(t, c)
            })
        })
    }

    fn clear_constructed(t: Tag) -> u32 {
        let shift = (t.len() - 1) * 8;
        t.value() & !(0x20 << shift)
    }

    fn set_constructed(t: Tag) -> u32 {
        let shift = (t.len() - 1) * 8;
        t.value() | (0x20 << shift)
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Tlv::parse_all(&bytes);
            let _ = Tlv::parse(&bytes);
            let _ = TlvIter::new(&bytes).find_deep(Tag::new(0x9f79));
            for item in TlvIter::new(&bytes).flatten() {
                prop_assert!(item.value_offset + item.value.len() <= bytes.len());
            }
        }

        #[test]
        fn build_then_parse_round_trips(tlv in arb_tlv()) {
            let bytes = tlv.to_bytes().unwrap();
            prop_assert_eq!(bytes.len(), tlv.encoded_len());
            prop_assert_eq!(Tlv::parse(&bytes).unwrap(), tlv);
        }

        #[test]
        fn parsed_input_re_encodes_to_the_same_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            // Anything that parses and uses minimal lengths and no padding must re-encode
            // exactly; otherwise the re-encoding must parse to the same tree.
            if let Ok(all) = Tlv::parse_all(&bytes) {
                let mut again = Vec::new();
                for t in &all {
                    t.encode_into(&mut again).unwrap();
                }
                prop_assert_eq!(Tlv::parse_all(&again).unwrap(), all);
            }
        }
    }
}
