//! A data store: primitive data objects by tag, as the terminal keeps what the card returned
//! (FCI, GET PROCESSING OPTIONS, records) and what it supplies itself (JR/T 0025.6 §8.2 表40).
//! DOLs are filled from stores ([`super::dol::Dol::build`]).
//!
//! `Debug` shows tags and lengths only: a store holds the PAN, track 2 and the cardholder name.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroize;

use crate::tlv::Tag;

/// Where a DOL's data comes from: anything that can look a tag up.
pub trait DataSource {
    /// The value of `tag`, if known.
    fn get(&self, tag: Tag) -> Option<&[u8]>;
}

impl<T: DataSource + ?Sized> DataSource for &T {
    fn get(&self, tag: Tag) -> Option<&[u8]> {
        (**self).get(tag)
    }
}

/// Two sources: the first one's value wins.
impl<A: DataSource, B: DataSource> DataSource for (A, B) {
    fn get(&self, tag: Tag) -> Option<&[u8]> {
        self.0.get(tag).or_else(|| self.1.get(tag))
    }
}

/// Values by tag. Values are zeroized when replaced, removed or dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DataStore {
    values: BTreeMap<Tag, Vec<u8>>,
}

impl DataStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `tag` to `value`, returning whether the tag was already present.
    pub fn insert(&mut self, tag: Tag, value: impl Into<Vec<u8>>) -> bool {
        match self.values.insert(tag, value.into()) {
            Some(mut old) => {
                old.zeroize();
                true
            }
            None => false,
        }
    }

    /// Set the tag given as a number (`0x9F02`).
    pub fn set(&mut self, tag: u32, value: impl Into<Vec<u8>>) {
        self.insert(Tag::new(tag), value);
    }

    /// The value of `tag`.
    pub fn value(&self, tag: u32) -> Option<&[u8]> {
        self.values.get(&Tag::new(tag)).map(Vec::as_slice)
    }

    /// Whether `tag` is present.
    pub fn contains(&self, tag: Tag) -> bool {
        self.values.contains_key(&tag)
    }

    /// Remove `tag`.
    pub fn remove(&mut self, tag: Tag) {
        if let Some(mut v) = self.values.remove(&tag) {
            v.zeroize();
        }
    }

    /// Tags and values, by tag.
    pub fn iter(&self) -> impl Iterator<Item = (Tag, &[u8])> {
        self.values.iter().map(|(t, v)| (*t, v.as_slice()))
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl DataSource for DataStore {
    fn get(&self, tag: Tag) -> Option<&[u8]> {
        self.values.get(&tag).map(Vec::as_slice)
    }
}

impl Drop for DataStore {
    fn drop(&mut self) {
        for v in self.values.values_mut() {
            v.zeroize();
        }
    }
}

impl fmt::Debug for DataStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (t, v) in &self.values {
            m.entry(&format_args!("{t}"), &format_args!("<{} bytes>", v.len()));
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_sources() {
        let mut a = DataStore::new();
        a.set(0x9f02, [0, 0, 0, 0, 1, 0]);
        assert!(!a.insert(Tag::new(0x5a), [0x62, 0x28]));
        assert!(a.insert(Tag::new(0x5a), [0x62, 0x29]));
        let mut b = DataStore::new();
        b.set(0x9f02, [9; 6]);
        b.set(0x9f37, [1, 2, 3, 4]);
        let both = (&a, &b);
        assert_eq!(both.get(Tag::new(0x9f02)), Some(&[0, 0, 0, 0, 1, 0][..]));
        assert_eq!(both.get(Tag::new(0x9f37)), Some(&[1, 2, 3, 4][..]));
        assert_eq!(both.get(Tag::new(0x95)), None);
        let shown = format!("{a:?}");
        assert!(shown.contains("5A: <2 bytes>"), "{shown}");
        assert!(!shown.contains("6229"));
        a.remove(Tag::new(0x5a));
        assert_eq!(a.len(), 1);
    }
}
