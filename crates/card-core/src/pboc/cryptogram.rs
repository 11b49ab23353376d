//! The cryptogram-input contract: the exact bytes a card of cryptogram version 01 MACs into an
//! application cryptogram (TC, ARQC or AAC), rebuilt on the terminal's side from the data
//! object lists the card gave and the data sent for them, so an issuer host or an HSM can
//! check the cryptogram (docs/pboc-kernel.md "The cryptogram input").
//!
//! # The data (cryptogram version 01)
//!
//! JR/T 0025.5 附录 E 表E.1 fixes the data elements and their order for version `01` (the
//! version the issuer application data names in its third byte, JR/T 0025.5 附录 A `9F10`);
//! 附录 D.1 表D.1 gives the same order, JR/T 0025.7 §6.1.1 表22 calls the first ten the
//! recommended minimum set and 表23 adds the CVR:
//!
//! | element | tag | bytes | from |
//! |---|---|---:|---|
//! | amount, authorised | `9F02` | 6 | terminal (a DOL) |
//! | amount, other | `9F03` | 6 | terminal |
//! | terminal country code | `9F1A` | 2 | terminal |
//! | terminal verification results | `95` | 5 | terminal |
//! | transaction currency code | `5F2A` | 2 | terminal |
//! | transaction date | `9A` | 3 | terminal |
//! | transaction type | `9C` | 1 | terminal |
//! | unpredictable number | `9F37` | 4 | terminal |
//! | application interchange profile | `82` | 2 | card |
//! | application transaction counter | `9F36` | 2 | card |
//! | card verification results | (in `9F10`) | 4 | card |
//!
//! 37 bytes in all. Nothing else is MACed: not the transaction time `9F21`, not the merchant
//! name `9F4E`, though CDOL1 asks for them.
//!
//! The terminal elements are whatever the card received for those tags in the data object
//! lists of this transaction (JR/T 0025.7 §6.1.1: data sent to the card through a DOL by
//! GENERATE AC or another command), looked up by tag, never by offset:
//!
//! - first GENERATE AC: CDOL1 data, then the PDOL data of GET PROCESSING OPTIONS;
//! - second GENERATE AC: CDOL2 data first (the terminal's newest TVR and unpredictable
//!   number, JR/T 0025.5 §16.2 表41), then CDOL1, then PDOL;
//! - qPBOC: the PDOL data of GET PROCESSING OPTIONS (JR/T 0025.12 §7.3.3 表10: every PDOL
//!   element but the TTQ `9F66` goes into the cryptogram).
//!
//! The card's elements are the AIP and ATC of the answer and the CVR, bytes 4-7 of the issuer
//! application data (`07 ‖ DKI ‖ CVN ‖ CVR(4) ‖ algorithm id`, JR/T 0025.5 附录 A `9F10`).

use core::fmt;

use zeroize::Zeroizing;

use super::bits::Aip;
use super::dol::Dol;
use crate::tlv::Tag;

/// The cryptogram version this module knows (JR/T 0025.5 附录 E).
pub const CRYPTOGRAM_VERSION_01: u8 = 0x01;

/// The terminal elements of 表E.1 in their order, with the length each has in the MACed
/// data.
pub const TERMINAL_ELEMENTS: [(u32, usize); 8] = [
    (0x9f02, 6),
    (0x9f03, 6),
    (0x9f1a, 2),
    (0x95, 5),
    (0x5f2a, 2),
    (0x9a, 3),
    (0x9c, 1),
    (0x9f37, 4),
];

/// The length of the version 01 input: 29 bytes of terminal data, AIP, ATC, CVR.
pub const INPUT_LEN: usize = 37;

/// Where the final cryptogram of a transaction came from, which decides the DOLs its input
/// is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptogramSource {
    /// The qPBOC GET PROCESSING OPTIONS answer (JR/T 0025.12 §7.3.3).
    GetProcessingOptions,
    /// The first GENERATE AC (JR/T 0025.5 §14).
    FirstGenerateAc,
    /// The second GENERATE AC (JR/T 0025.5 §16).
    SecondGenerateAc,
}

/// Data the terminal sent the card for one data object list: the list and the bytes.
#[derive(Debug, Clone, Copy)]
pub struct DolData<'a> {
    /// The list the card gave.
    pub dol: &'a Dol,
    /// The data sent for it, exactly [`Dol::data_len`] bytes.
    pub data: &'a [u8],
}

impl<'a> DolData<'a> {
    /// The list and its data.
    pub const fn new(dol: &'a Dol, data: &'a [u8]) -> Self {
        Self { dol, data }
    }

    /// The value sent for `tag`, if the list asks for it and the data fits the list.
    pub fn get(&self, tag: Tag) -> Option<&'a [u8]> {
        self.dol
            .split(self.data)
            .ok()?
            .into_iter()
            .find_map(|(t, v)| (t == tag).then_some(v))
    }
}

/// The bytes a card MACs into a cryptogram. Zeroized when dropped; `Debug` shows the length
/// only (it holds the unpredictable number and the amounts of a transaction).
#[derive(Clone, PartialEq, Eq)]
pub struct CryptogramInput(Zeroizing<Vec<u8>>);

impl CryptogramInput {
    /// Input from bytes already laid out (a host that received them).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The bytes, in MAC order.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The number of bytes (37 for version 01).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<[u8]> for CryptogramInput {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for CryptogramInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CryptogramInput(<{} bytes>)", self.0.len())
    }
}

/// The card verification results in issuer application data of cryptogram version 01: bytes
/// 4-7 after the length byte (at least `07`), the derivation key index and the cryptogram
/// version number, which must be `01` (JR/T 0025.5 附录 A `9F10`, 附录 E).
pub fn cvr_from_iad(iad: &[u8]) -> Option<[u8; 4]> {
    match iad {
        [len, _dki, CRYPTOGRAM_VERSION_01, a, b, c, d, ..] if *len >= 0x07 => {
            Some([*a, *b, *c, *d])
        }
        _ => None,
    }
}

/// The version 01 cryptogram input: each terminal element of 表E.1 from the first of
/// `sources` whose list asks for its tag (module documentation for the order per command),
/// then `aip`, `atc` and the CVR from `iad`.
///
/// `None` when the input cannot be known: an element no list asks for, an element a list
/// asks for with another length than 表E.1's, data that does not fit its list, or issuer
/// application data that is not of cryptogram version 01.
pub fn cryptogram_input(
    sources: &[DolData<'_>],
    aip: Aip,
    atc: u16,
    iad: &[u8],
) -> Option<CryptogramInput> {
    let cvr = cvr_from_iad(iad)?;
    let mut out = Zeroizing::new(Vec::with_capacity(INPUT_LEN));
    for (tag, len) in TERMINAL_ELEMENTS {
        let tag = Tag::new(tag);
        let value = sources
            .iter()
            .find(|s| s.dol.contains(tag))
            .and_then(|s| s.get(tag))?;
        if value.len() != len {
            return None;
        }
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&aip.to_bytes());
    out.extend_from_slice(&atc.to_be_bytes());
    out.extend_from_slice(&cvr);
    Some(CryptogramInput(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    const PDOL: &str = "9F66049F02069F03069F1A0295055F2A029A039C019F37049F7A01DF6901";
    const CDOL1: &str = "9F02069F03069F1A0295055F2A029A039C019F37049F21039F4E14";
    const CDOL2: &str = "8A0291 0A95059F3704";

    fn terminal_part(amount: &str, tvr: &str, un: &str) -> String {
        format!("{amount} 000000000000 0156 {tvr} 0156 261128 00 {un}")
    }

    #[test]
    fn first_generate_ac_takes_the_cdol1_elements_by_tag() {
        let cdol1 = Dol::parse(&h(CDOL1)).unwrap();
        let data = h(&format!(
            "{} 120000 {}",
            terminal_part("000000001500", "0000000000", "12345678"),
            "4B494F534B".to_string() + &"00".repeat(15)
        ));
        let iad = h("07 01 01 03901000 04");
        let input = cryptogram_input(
            &[DolData::new(&cdol1, &data)],
            Aip::from_bytes([0x7c, 0x00]),
            0x0011,
            &iad,
        )
        .unwrap();
        let expected = h(&format!(
            "{} 7C00 0011 03901000",
            terminal_part("000000001500", "0000000000", "12345678")
        ));
        assert_eq!(input.as_bytes(), expected.as_slice());
        assert_eq!(input.len(), INPUT_LEN);
        assert_eq!(format!("{input:?}"), "CryptogramInput(<37 bytes>)");
    }

    #[test]
    fn the_order_is_the_tables_not_the_lists() {
        // A CDOL1 in another order: the input is still in 表E.1 order.
        let dol = Dol::parse(&h("9F37049C019A035F2A0295059F1A029F03069F0206")).unwrap();
        let data = h("12345678 00 261128 0156 8000000000 0156 000000000000 000000001500");
        let input = cryptogram_input(
            &[DolData::new(&dol, &data)],
            Aip::default(),
            1,
            &h("07010100000000 01"),
        )
        .unwrap();
        assert_eq!(
            input.as_bytes()[..29],
            h(&terminal_part("000000001500", "8000000000", "12345678"))[..]
        );
    }

    #[test]
    fn second_generate_ac_takes_tvr_and_un_from_cdol2() {
        let cdol1 = Dol::parse(&h(CDOL1)).unwrap();
        let cdol2 = Dol::parse(&h(CDOL2)).unwrap();
        let pdol = Dol::parse(&h(PDOL)).unwrap();
        let d1 = h(&format!(
            "{} 120000 {}",
            terminal_part("000000001500", "0000000000", "12345678"),
            "00".repeat(20)
        ));
        let d2 = h("3030 11223344556677883030 0000008000 CAFEBABE");
        let dp = h(&format!(
            "26000080 {} 01 01",
            terminal_part("000000001500", "0000000000", "12345678")
        ));
        let input = cryptogram_input(
            &[
                DolData::new(&cdol2, &d2),
                DolData::new(&cdol1, &d1),
                DolData::new(&pdol, &dp),
            ],
            Aip::from_bytes([0x7c, 0x00]),
            0x0012,
            &h("07 01 01 03A02000 04"),
        )
        .unwrap();
        assert_eq!(
            input.as_bytes(),
            h(&format!(
                "{} 7C00 0012 03A02000",
                terminal_part("000000001500", "0000008000", "CAFEBABE")
            ))
            .as_slice()
        );
    }

    #[test]
    fn qpboc_takes_the_pdol_without_the_ttq() {
        let pdol = Dol::parse(&h(PDOL)).unwrap();
        let dp = h(&format!(
            "28000080 {} 01 01",
            terminal_part("000000002000", "0000000000", "0A0B0C0D")
        ));
        let input = cryptogram_input(
            &[DolData::new(&pdol, &dp)],
            Aip::from_bytes([0x7c, 0x00]),
            7,
            &h("07 01 01 03901000 04 0A01 0000004800 11223344"),
        )
        .unwrap();
        assert_eq!(&input.as_bytes()[..29], &dp[4..33]);
        assert_eq!(&input.as_bytes()[29..], &h("7C00 0007 03901000")[..]);
    }

    #[test]
    fn unknown_input_is_none() {
        let cdol1 = Dol::parse(&h(CDOL1)).unwrap();
        let d1 = vec![0u8; cdol1.data_len()];
        let good_iad = h("07010103000000 04");
        let aip = Aip::default();
        assert!(cryptogram_input(&[DolData::new(&cdol1, &d1)], aip, 1, &good_iad).is_some());
        // Another cryptogram version, or no IAD.
        assert!(
            cryptogram_input(
                &[DolData::new(&cdol1, &d1)],
                aip,
                1,
                &h("07010203000000 04")
            )
            .is_none()
        );
        assert!(cryptogram_input(&[DolData::new(&cdol1, &d1)], aip, 1, &[]).is_none());
        // Data that does not fit the list.
        assert!(cryptogram_input(&[DolData::new(&cdol1, &d1[1..])], aip, 1, &good_iad).is_none());
        // A list without the unpredictable number, or with a short amount.
        let short = Dol::parse(&h("9F02069F03069F1A0295055F2A029A039C01")).unwrap();
        let ds = vec![0u8; short.data_len()];
        assert!(cryptogram_input(&[DolData::new(&short, &ds)], aip, 1, &good_iad).is_none());
        let odd = Dol::parse(&h("9F02049F03069F1A0295055F2A029A039C019F3704")).unwrap();
        let dd = vec![0u8; odd.data_len()];
        assert!(cryptogram_input(&[DolData::new(&odd, &dd)], aip, 1, &good_iad).is_none());
        assert_eq!(cvr_from_iad(&good_iad), Some([3, 0, 0, 0]));
    }
}
