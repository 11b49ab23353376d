//! Answer To Reset (ISO/IEC 7816-3 §8.2, JR/T 0025.3 §8.3).
//!
//! [`Atr::parse`] decodes TS, T0, the chain of interface-byte groups (TAi, TBi, TCi, TDi), the
//! historical bytes and TCK, and checks TCK whenever a protocol other than T=0 is offered
//! (ISO/IEC 7816-3 §8.2.5). [`Atr::describe`] explains each byte for a technician.

use core::fmt;

use crate::apdu::HexFmt;

/// Longest ATR ISO/IEC 7816-3 allows (TS plus 32 bytes).
pub const MAX_ATR_LEN: usize = 33;

/// Errors decoding an ATR; each names the offending byte's offset.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtrError {
    /// No bytes at all.
    #[error("ATR is empty")]
    Empty,
    /// TS is neither `3B` (direct) nor `3F` (inverse convention).
    #[error("ATR initial character TS={ts:02X} is neither 3B nor 3F")]
    InvalidTs {
        /// The byte found.
        ts: u8,
    },
    /// The ATR ended before the bytes T0/TDi announced.
    #[error("ATR truncated at offset {offset}: {missing}")]
    Truncated {
        /// Offset where a byte was expected.
        offset: usize,
        /// What was expected there.
        missing: &'static str,
    },
    /// The TCK does not make the XOR of T0..TCK zero.
    #[error("ATR check byte TCK={actual:02X} is wrong (expected {expected:02X})")]
    TckMismatch {
        /// TCK the bytes require.
        expected: u8,
        /// TCK found.
        actual: u8,
    },
    /// Bytes after the last expected one.
    #[error("ATR has {count} unexpected bytes from offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// Number of extra bytes.
        count: usize,
    },
    /// Longer than [`MAX_ATR_LEN`].
    #[error("ATR of {len} bytes is longer than 33")]
    TooLong {
        /// Length found.
        len: usize,
    },
}

/// Bit convention announced by TS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// `3B`.
    Direct,
    /// `3F`.
    Inverse,
}

/// One group of interface bytes (TAi, TBi, TCi, TDi).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterfaceGroup {
    /// TAi.
    pub ta: Option<u8>,
    /// TBi.
    pub tb: Option<u8>,
    /// TCi.
    pub tc: Option<u8>,
    /// TDi.
    pub td: Option<u8>,
}

/// A decoded ATR.
#[derive(Clone, PartialEq, Eq)]
pub struct Atr {
    raw: Vec<u8>,
    convention: Convention,
    groups: Vec<InterfaceGroup>,
    historical: Vec<u8>,
    tck: Option<u8>,
}

impl Atr {
    /// Decode and check an ATR.
    pub fn parse(bytes: &[u8]) -> Result<Self, AtrError> {
        if bytes.len() > MAX_ATR_LEN {
            return Err(AtrError::TooLong { len: bytes.len() });
        }
        let convention = match bytes.first() {
            None => return Err(AtrError::Empty),
            Some(0x3b) => Convention::Direct,
            Some(0x3f) => Convention::Inverse,
            Some(&ts) => return Err(AtrError::InvalidTs { ts }),
        };
        let mut pos = 1;
        let take = |pos: &mut usize, missing: &'static str| -> Result<u8, AtrError> {
            let b = bytes.get(*pos).copied().ok_or(AtrError::Truncated {
                offset: *pos,
                missing,
            })?;
            *pos += 1;
            Ok(b)
        };
        let t0 = take(&mut pos, "T0")?;
        let k = usize::from(t0 & 0x0f);
        let mut groups = Vec::new();
        let mut indicator = t0 >> 4;
        let mut needs_tck = false;
        loop {
            let mut g = InterfaceGroup::default();
            if indicator & 0x1 != 0 {
                g.ta = Some(take(&mut pos, "TAi")?);
            }
            if indicator & 0x2 != 0 {
                g.tb = Some(take(&mut pos, "TBi")?);
            }
            if indicator & 0x4 != 0 {
                g.tc = Some(take(&mut pos, "TCi")?);
            }
            if indicator & 0x8 != 0 {
                let td = take(&mut pos, "TDi")?;
                g.td = Some(td);
                // Any protocol other than T=0 announced makes TCK mandatory (§8.2.5); T=15
                // counts too, as it only appears alongside another protocol.
                if td & 0x0f != 0 {
                    needs_tck = true;
                }
                indicator = td >> 4;
                groups.push(g);
            } else {
                groups.push(g);
                break;
            }
        }
        let historical = match bytes.get(pos..pos + k) {
            Some(h) => h.to_vec(),
            None => {
                return Err(AtrError::Truncated {
                    offset: bytes.len(),
                    missing: "historical bytes",
                });
            }
        };
        pos += k;
        let tck = if needs_tck {
            let tck = take(&mut pos, "TCK")?;
            let xor = bytes
                .get(1..pos)
                .unwrap_or_default()
                .iter()
                .fold(0u8, |acc, b| acc ^ b);
            if xor != 0 {
                return Err(AtrError::TckMismatch {
                    expected: tck ^ xor,
                    actual: tck,
                });
            }
            Some(tck)
        } else {
            None
        };
        if pos < bytes.len() {
            return Err(AtrError::TrailingBytes {
                offset: pos,
                count: bytes.len() - pos,
            });
        }
        Ok(Self {
            raw: bytes.to_vec(),
            convention,
            groups,
            historical,
            tck,
        })
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// TS convention.
    pub const fn convention(&self) -> Convention {
        self.convention
    }

    /// Interface byte groups; group `i` (0-based) holds TA(i+1)..TD(i+1).
    pub fn groups(&self) -> &[InterfaceGroup] {
        &self.groups
    }

    /// Historical bytes.
    pub fn historical_bytes(&self) -> &[u8] {
        &self.historical
    }

    /// TCK, if present.
    pub const fn tck(&self) -> Option<u8> {
        self.tck
    }

    /// Protocols offered, in the order announced (T=0 when no TD1 is present). T=15 (global
    /// parameters) is not a transmission protocol and is left out.
    pub fn protocols(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for g in &self.groups {
            if let Some(td) = g.td {
                let t = td & 0x0f;
                if t != 15 && !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        if out.is_empty() {
            out.push(0);
        }
        out
    }

    /// Whether T=`t` is offered.
    pub fn offers(&self, t: u8) -> bool {
        self.protocols().contains(&t)
    }

    /// TA1 split into (Fi, Di) indices; default (1, 1).
    pub fn fi_di(&self) -> (u8, u8) {
        match self.groups.first().and_then(|g| g.ta) {
            Some(ta1) => (ta1 >> 4, ta1 & 0x0f),
            None => (1, 1),
        }
    }

    /// Clock rate conversion factor F and maximum frequency in MHz for the Fi index
    /// (ISO/IEC 7816-3 Table 7); `None` for reserved values.
    pub const fn clock_rate(fi: u8) -> Option<(u16, f32)> {
        match fi {
            0 | 1 => Some((372, if fi == 0 { 4.0 } else { 5.0 })),
            2 => Some((558, 6.0)),
            3 => Some((744, 8.0)),
            4 => Some((1116, 12.0)),
            5 => Some((1488, 16.0)),
            6 => Some((1860, 20.0)),
            9 => Some((512, 5.0)),
            10 => Some((768, 7.5)),
            11 => Some((1024, 10.0)),
            12 => Some((1536, 15.0)),
            13 => Some((2048, 20.0)),
            _ => None,
        }
    }

    /// Baud rate adjustment factor D for the Di index (ISO/IEC 7816-3 Table 8).
    pub const fn baud_divisor(di: u8) -> Option<u8> {
        match di {
            1 => Some(1),
            2 => Some(2),
            3 => Some(4),
            4 => Some(8),
            5 => Some(16),
            6 => Some(32),
            7 => Some(64),
            8 => Some(12),
            9 => Some(20),
            _ => None,
        }
    }

    /// Extra guard time N from TC1 (default 0).
    pub fn extra_guard_time(&self) -> u8 {
        self.groups.first().and_then(|g| g.tc).unwrap_or(0)
    }

    /// Specific mode from TA2: `Some(protocol)` if the card is fixed to one protocol.
    pub fn specific_mode(&self) -> Option<u8> {
        self.groups.get(1).and_then(|g| g.ta).map(|ta2| ta2 & 0x0f)
    }

    /// T=1 information field size of the card (first TA after a TD announcing T=1; default 32).
    pub fn ifsc(&self) -> u8 {
        self.t1_group().and_then(|g| g.ta).unwrap_or(32)
    }

    /// T=1 block and character waiting time integers (BWI, CWI) from the first TB for T=1;
    /// defaults (4, 13).
    pub fn bwi_cwi(&self) -> (u8, u8) {
        match self.t1_group().and_then(|g| g.tb) {
            Some(tb) => (tb >> 4, tb & 0x0f),
            None => (4, 13),
        }
    }

    /// T=0 work waiting time integer WI from TC2 (default 10).
    pub fn wi(&self) -> u8 {
        self.groups.get(1).and_then(|g| g.tc).unwrap_or(10)
    }

    fn t1_group(&self) -> Option<&InterfaceGroup> {
        // The group after the first TDi that announces T=1, from group 3 on (i >= 3).
        self.groups
            .iter()
            .enumerate()
            .skip(1)
            .find(|(i, _)| {
                self.groups
                    .get(i - 1)
                    .and_then(|g| g.td)
                    .is_some_and(|td| td & 0x0f == 1)
                    && *i >= 2
            })
            .map(|(_, g)| g)
    }

    /// A line-by-line explanation of the ATR for people.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.push(format!(
            "TS = {:02X}  {} convention",
            self.raw.first().copied().unwrap_or_default(),
            match self.convention {
                Convention::Direct => "direct",
                Convention::Inverse => "inverse",
            }
        ));
        out.push(format!(
            "T0 = {:02X}  {} historical bytes",
            self.raw.get(1).copied().unwrap_or_default(),
            self.historical.len()
        ));
        for (i, g) in self.groups.iter().enumerate() {
            let n = i + 1;
            if let Some(ta) = g.ta {
                let text = if n == 1 {
                    let (fi, di) = (ta >> 4, ta & 0x0f);
                    match (Self::clock_rate(fi), Self::baud_divisor(di)) {
                        (Some((f, mhz)), Some(d)) => {
                            format!(
                                "Fi={f}, Di={d}, max {mhz} MHz, {} cycles/ETU",
                                f / u16::from(d)
                            )
                        }
                        _ => "reserved Fi/Di value".to_string(),
                    }
                } else if n == 2 {
                    format!(
                        "specific mode, T={}{}",
                        ta & 0x0f,
                        if ta & 0x10 != 0 {
                            ", implicit parameters"
                        } else {
                            ""
                        }
                    )
                } else {
                    format!("IFSC or protocol parameter {ta}")
                };
                out.push(format!("TA{n} = {ta:02X}  {text}"));
            }
            if let Some(tb) = g.tb {
                let text = if n == 1 {
                    "programming voltage (deprecated)".to_string()
                } else if n >= 3 {
                    format!("BWI={}, CWI={}", tb >> 4, tb & 0x0f)
                } else {
                    "programming voltage (deprecated)".to_string()
                };
                out.push(format!("TB{n} = {tb:02X}  {text}"));
            }
            if let Some(tc) = g.tc {
                let text = match n {
                    1 => format!("extra guard time N={tc}"),
                    2 => format!("work waiting time WI={tc}"),
                    _ => format!(
                        "error detection {}",
                        if tc & 1 == 0 { "LRC" } else { "CRC" }
                    ),
                };
                out.push(format!("TC{n} = {tc:02X}  {text}"));
            }
            if let Some(td) = g.td {
                out.push(format!(
                    "TD{n} = {td:02X}  protocol T={}{}",
                    td & 0x0f,
                    if td >> 4 != 0 {
                        ", more interface bytes follow"
                    } else {
                        ""
                    }
                ));
            }
        }
        let protocols: Vec<String> = self.protocols().iter().map(|t| format!("T={t}")).collect();
        out.push(format!("protocols offered: {}", protocols.join(", ")));
        if !self.historical.is_empty() {
            let printable: String = self
                .historical
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            out.push(format!(
                "historical bytes: {} \"{printable}\"",
                HexFmt(&self.historical)
            ));
        }
        if let Some(tck) = self.tck {
            out.push(format!("TCK = {tck:02X}  (correct)"));
        }
        out
    }
}

impl fmt::Debug for Atr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Atr({})", HexFmt(&self.raw))
    }
}

impl fmt::Display for Atr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.raw.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// Build an ATR from its parts, computing TCK when one is required. Used by the software card
/// and by tests.
pub fn build(
    convention: Convention,
    groups: &[InterfaceGroup],
    historical: &[u8],
) -> Result<Vec<u8>, AtrError> {
    let k = historical.len();
    if k > 15 {
        return Err(AtrError::TooLong { len: k });
    }
    let presence = |g: &InterfaceGroup| -> u8 {
        u8::from(g.ta.is_some())
            | u8::from(g.tb.is_some()) << 1
            | u8::from(g.tc.is_some()) << 2
            | u8::from(g.td.is_some()) << 3
    };
    let mut out = vec![match convention {
        Convention::Direct => 0x3b,
        Convention::Inverse => 0x3f,
    }];
    let first = groups.first().map(presence).unwrap_or(0);
    out.push((first << 4) | k as u8);
    let mut needs_tck = false;
    for (i, g) in groups.iter().enumerate() {
        out.extend(g.ta);
        out.extend(g.tb);
        out.extend(g.tc);
        if let Some(td) = g.td {
            let next = groups.get(i + 1).map(presence).unwrap_or(0);
            if td & 0x0f != 0 {
                needs_tck = true;
            }
            out.push((next << 4) | (td & 0x0f));
        }
    }
    out.extend_from_slice(historical);
    if needs_tck {
        let tck = out
            .get(1..)
            .unwrap_or_default()
            .iter()
            .fold(0u8, |a, b| a ^ b);
        out.push(tck);
    }
    if out.len() > MAX_ATR_LEN {
        return Err(AtrError::TooLong { len: out.len() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn t0_only_atr() {
        // The short T=0 ATR many EMV tools accept.
        let atr = Atr::parse(&hex("3B 02 14 50")).unwrap();
        assert_eq!(atr.protocols(), [0]);
        assert_eq!(atr.historical_bytes(), [0x14, 0x50]);
        assert_eq!(atr.tck(), None);
        assert_eq!(atr.fi_di(), (1, 1));
    }

    #[test]
    fn t0_and_t1_with_tck() {
        // TA1=18, TC1=00, TD1 -> T=1, TD2 -> T=1 with TA3 (IFSC) and TB3, 15 historical bytes.
        let mut fixed = hex("3B DF 18 00 81 31 FE 45 80 31 80 66 40 90 A4 16 2A 00 83 0F 90 00 EF");
        let x = fixed[1..].iter().fold(0u8, |a, b| a ^ b);
        fixed.push(x);
        let atr = Atr::parse(&fixed).unwrap();
        assert_eq!(atr.protocols(), [1]);
        assert_eq!(atr.ifsc(), 0xfe);
        assert_eq!(atr.bwi_cwi(), (4, 5));
        assert_eq!(atr.historical_bytes().len(), 15);
    }

    #[test]
    fn offers_both_protocols() {
        let groups = [
            InterfaceGroup {
                ta: Some(0x11),
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
        let bytes = build(Convention::Direct, &groups, b"SSCARD").unwrap();
        let atr = Atr::parse(&bytes).unwrap();
        assert_eq!(atr.protocols(), [0, 1]);
        assert!(atr.offers(0) && atr.offers(1));
        assert_eq!(atr.ifsc(), 0xfe);
        let protocols: Vec<_> = atr
            .groups()
            .iter()
            .map(|g| g.td.map(|td| td & 0x0f))
            .collect();
        assert_eq!(protocols, [Some(0), Some(1), None]);
        assert_eq!(atr.groups()[2].ta, Some(0xfe));
        assert!(atr.tck().is_some());
        let text = atr.describe().join("\n");
        assert!(text.contains("protocols offered: T=0, T=1"), "{text}");
        assert!(text.contains("\"SSCARD\""), "{text}");
        assert!(text.contains("Fi=372, Di=1"), "{text}");
    }

    #[test]
    fn errors() {
        assert_eq!(Atr::parse(&[]), Err(AtrError::Empty));
        assert_eq!(
            Atr::parse(&[0x3c, 0]),
            Err(AtrError::InvalidTs { ts: 0x3c })
        );
        assert_eq!(
            Atr::parse(&hex("3B 12 14")),
            Err(AtrError::Truncated {
                offset: 3,
                missing: "historical bytes"
            })
        );
        assert_eq!(
            Atr::parse(&hex("3B 80")),
            Err(AtrError::Truncated {
                offset: 2,
                missing: "TDi"
            })
        );
        assert_eq!(
            Atr::parse(&hex("3B 80 01")),
            Err(AtrError::Truncated {
                offset: 3,
                missing: "TCK"
            })
        );
        assert_eq!(
            Atr::parse(&hex("3B 80 01 80")),
            Err(AtrError::TckMismatch {
                expected: 0x81,
                actual: 0x80
            })
        );
        assert_eq!(
            Atr::parse(&hex("3B 00 00")),
            Err(AtrError::TrailingBytes {
                offset: 2,
                count: 1
            })
        );
        assert_eq!(Atr::parse(&[0x3b; 34]), Err(AtrError::TooLong { len: 34 }));
    }

    fn arb_groups() -> impl Strategy<Value = Vec<InterfaceGroup>> {
        proptest::collection::vec(
            (
                any::<Option<u8>>(),
                any::<Option<u8>>(),
                any::<Option<u8>>(),
                0u8..16,
            ),
            1..4,
        )
        .prop_map(|v| {
            let n = v.len();
            v.into_iter()
                .enumerate()
                .map(|(i, (ta, tb, tc, t))| InterfaceGroup {
                    ta,
                    tb,
                    tc,
                    td: if i + 1 < n { Some(t) } else { None },
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(atr) = Atr::parse(&bytes) {
                let _ = atr.describe();
                prop_assert!(!atr.protocols().is_empty());
                prop_assert_eq!(atr.as_bytes(), &bytes[..]);
            }
        }

        #[test]
        fn build_then_parse_round_trips(
            groups in arb_groups(),
            hist in proptest::collection::vec(any::<u8>(), 0..=15),
            inverse in any::<bool>(),
        ) {
            let conv = if inverse { Convention::Inverse } else { Convention::Direct };
            if let Ok(bytes) = build(conv, &groups, &hist) {
                let atr = Atr::parse(&bytes).unwrap();
                // TDi carries the presence bits of the next group in its high nibble; compare
                // the protocol part and the interface bytes.
                let norm = |g: &[InterfaceGroup]| -> Vec<InterfaceGroup> {
                    g.iter().map(|g| InterfaceGroup { td: g.td.map(|t| t & 0x0f), ..*g }).collect()
                };
                prop_assert_eq!(norm(atr.groups()), norm(&groups));
                prop_assert_eq!(atr.historical_bytes(), &hist[..]);
                prop_assert_eq!(atr.convention(), conv);
            }
        }
    }
}
