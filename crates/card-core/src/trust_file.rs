//! The trust-store file: the certification authorities' public keys a terminal checks cards
//! against, one per line, in hex (blank lines and lines starting with `#` are ignored):
//!
//! ```text
//! # SM2 (JR/T 0025.17 §5.1): RID INDEX MMYY X‖Y
//! D156000005 01 1235 3B7A…(128 hex digits)
//! # RSA (JR/T 0025.7 §5.2): RID INDEX RSA EXPONENT MODULUS
//! A000000333 03 RSA 03 C7A3…(the modulus)
//! ```
//!
//! The social-security CA (RID `D156000005`) and the PBOC CA (RID `A000000333`) share the
//! format, so one file serves `cardctl authenticate`, `cardctl check` and the central server.
//! An RSA key carries no expiry of its own here (the terminal's CA list has none for RSA in
//! [`crate::crypto::rsa::CaPublicKey`]).

use crate::apdu::HexFmt;
use crate::crypto::rsa::{CaPublicKey, ExpiryDate, RsaPublicKey};
use crate::crypto::sm2::Sm2PublicKey;
use crate::crypto::sm2_cert::CaKey;
use crate::pboc::CaStore;

/// A line that could not be read: its number (from 1) and why.
pub type LineError = (usize, &'static str);

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|p| {
            let s = core::str::from_utf8(p).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// Read a trust-store file into SM2 and RSA CA keys.
pub fn parse(text: &str) -> Result<CaStore, LineError> {
    let mut store = CaStore::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why| (i + 1, why);
        let words: Vec<&str> = line.split_whitespace().collect();
        let hex = |at: usize, why| words.get(at).and_then(|w| decode_hex(w)).ok_or(bad(why));
        let rid: [u8; 5] = hex(0, "RID is 5 bytes")?
            .try_into()
            .map_err(|_| bad("RID is 5 bytes"))?;
        let index = match hex(1, "index is 1 byte")?.as_slice() {
            [index] => *index,
            _ => return Err(bad("index is 1 byte")),
        };
        if words.get(2).is_some_and(|w| w.eq_ignore_ascii_case("RSA")) {
            if words.len() != 5 {
                return Err(bad("an RSA key is RID INDEX RSA EXPONENT MODULUS"));
            }
            let exponent = hex(3, "exponent is 03 or 010001")?;
            let modulus = hex(4, "modulus is hex")?;
            let key = RsaPublicKey::new(&modulus, &exponent).map_err(|_| {
                bad("not an RSA CA key (modulus 64-248 bytes, exponent 3 or 65537)")
            })?;
            store.add_rsa(CaPublicKey { rid, index, key });
            continue;
        }
        if words.len() != 4 {
            return Err(bad("an SM2 key is RID INDEX MMYY X‖Y"));
        }
        let mmyy: [u8; 2] = hex(2, "expiry is MMYY")?
            .try_into()
            .map_err(|_| bad("expiry is MMYY"))?;
        let xy = hex(3, "public key is X‖Y, 64 bytes")?;
        if xy.len() != 64 {
            return Err(bad("public key is X‖Y, 64 bytes"));
        }
        let expiry = ExpiryDate::from_bcd(mmyy).map_err(|_| bad("expiry is MMYY"))?;
        let public_key =
            Sm2PublicKey::from_xy(&xy).map_err(|_| bad("public key not on the SM2 curve"))?;
        store.add_sm2(CaKey {
            rid,
            index,
            public_key,
            expiry,
        });
    }
    Ok(store)
}

/// An SM2 CA key as a line: `RID INDEX MMYY X‖Y`.
pub fn sm2_line(ca: &CaKey) -> String {
    format!(
        "{} {:02X} {} {}",
        HexFmt(&ca.rid),
        ca.index,
        HexFmt(&ca.expiry.to_bcd()),
        HexFmt(&ca.public_key.to_xy())
    )
}

/// An RSA CA key as a line: `RID INDEX RSA EXPONENT MODULUS`.
pub fn rsa_line(ca: &CaPublicKey) -> String {
    format!(
        "{} {:02X} RSA {} {}",
        HexFmt(&ca.rid),
        ca.index,
        HexFmt(ca.key.exponent()),
        HexFmt(ca.key.modulus())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rsa::YearMonth;
    use crate::crypto::sm2::Sm2PrivateKey;

    fn sm2_ca() -> CaKey {
        CaKey {
            rid: [0xd1, 0x56, 0, 0, 5],
            index: 1,
            public_key: *Sm2PrivateKey::from_bytes(&[7; 32]).unwrap().public_key(),
            expiry: ExpiryDate::new(YearMonth {
                year: 2035,
                month: 12,
            })
            .unwrap(),
        }
    }

    fn rsa_ca() -> CaPublicKey {
        // 64-byte odd modulus with its top bit set: enough for the format.
        let mut modulus = vec![0xc3; 64];
        modulus[63] = 0x01;
        CaPublicKey {
            rid: [0xa0, 0, 0, 3, 0x33],
            index: 3,
            key: RsaPublicKey::new(&modulus, &[3]).unwrap(),
        }
    }

    #[test]
    fn both_kinds_of_line_read_back_what_was_written() {
        let text = format!(
            "# anchors\n\n{}\n{}\n",
            sm2_line(&sm2_ca()),
            rsa_line(&rsa_ca())
        );
        let store = parse(&text).unwrap();
        let sm2 = store.sm2().keys();
        assert_eq!(sm2.len(), 1);
        assert_eq!(sm2[0].public_key.to_xy(), sm2_ca().public_key.to_xy());
        assert_eq!(sm2[0].expiry, sm2_ca().expiry);
        let rsa = store.rsa([0xa0, 0, 0, 3, 0x33], 3).unwrap();
        assert_eq!(rsa.key.modulus(), rsa_ca().key.modulus());
        assert_eq!(rsa.key.exponent(), &[3]);
        assert!(store.rsa([0xa0, 0, 0, 3, 0x33], 4).is_none());
    }

    proptest::proptest! {
        /// Any text: a store or the number of a line that exists, never a panic; a good file
        /// with any line appended still reads its good keys or names the appended line.
        #[test]
        fn any_text_is_read_or_refused_by_line(text in "\\PC{0,300}", tail in "[0-9A-Fa-f RSA]{0,200}") {
            if let Err((line, _)) = parse(&text) {
                proptest::prop_assert!(line >= 1 && line <= text.lines().count());
            }
            let file = format!("{}\n{}\n{tail}", sm2_line(&sm2_ca()), rsa_line(&rsa_ca()));
            match parse(&file) {
                Ok(store) => {
                    proptest::prop_assert!(store.rsa([0xa0, 0, 0, 3, 0x33], 3).is_some());
                    proptest::prop_assert!(!store.sm2().keys().is_empty());
                }
                Err((line, _)) => proptest::prop_assert_eq!(line, 3),
            }
        }
    }

    #[test]
    fn bad_lines_are_named_by_number_and_reason() {
        let good = sm2_line(&sm2_ca());
        for (text, line, why) in [
            ("D156000005 01 1235 00", 1, "public key is X‖Y, 64 bytes"),
            ("\nD1560000 01", 2, "RID is 5 bytes"),
            ("A000000333 0301 RSA 03 00", 1, "index is 1 byte"),
            (
                "A000000333 03 RSA 03",
                1,
                "an RSA key is RID INDEX RSA EXPONENT MODULUS",
            ),
            (
                "A000000333 03 RSA 05 C301",
                1,
                "not an RSA CA key (modulus 64-248 bytes, exponent 3 or 65537)",
            ),
            ("D156000005 01 1335 00", 1, "public key is X‖Y, 64 bytes"),
            ("D156000005 01 zz", 1, "an SM2 key is RID INDEX MMYY X‖Y"),
        ] {
            assert_eq!(parse(text).unwrap_err(), (line, why), "{text}");
        }
        let trailing = format!("{good}\n{good} 00");
        assert_eq!(
            parse(&trailing).unwrap_err(),
            (2, "an SM2 key is RID INDEX MMYY X‖Y")
        );
        let month = good.replacen(" 1235 ", " 1335 ", 1);
        assert_eq!(parse(&month).unwrap_err(), (1, "expiry is MMYY"));
    }
}
