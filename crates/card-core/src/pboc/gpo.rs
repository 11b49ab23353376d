//! Initiate application processing: GET PROCESSING OPTIONS and its answer (JR/T 0025.6 §7.3,
//! JR/T 0025.5 附录 B.8), and the application file locator it carries (JR/T 0025.5 表A.1 `94`).

use crate::apdu::Command;
use crate::tlv::{Tag, TlvIter};

use super::PbocError;
use super::bits::Aip;

/// One AFL entry: records `first..=last` of file `sfi`, the first `oda_records` of which take
/// part in offline data authentication (JR/T 0025.6 §7.3.1 表6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AflEntry {
    /// Short file identifier, 1 to 30.
    pub sfi: u8,
    /// First record to read (not 0).
    pub first: u8,
    /// Last record to read (not below `first`).
    pub last: u8,
    /// How many records from `first` on take part in offline data authentication.
    pub oda_records: u8,
}

/// The application file locator (tag `94`): four bytes per file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Afl(pub Vec<AflEntry>);

impl Afl {
    /// Read and check an AFL (JR/T 0025.5 表A.1 `94`): a multiple of four bytes, each entry with
    /// SFI 1-30 in bits 8-4 and bits 3-1 zero, a first record above 0, a last record not below
    /// it, and no more ODA records than records.
    pub fn parse(bytes: &[u8]) -> Result<Self, PbocError> {
        let (chunks, rest) = bytes.as_chunks::<4>();
        if !rest.is_empty() {
            return Err(PbocError::Afl {
                offset: bytes.len() - rest.len(),
            });
        }
        let mut out = Vec::with_capacity(chunks.len());
        for (i, &[b1, first, last, oda]) in chunks.iter().enumerate() {
            let sfi = b1 >> 3;
            let ok = b1 & 0x07 == 0
                && (1..=30).contains(&sfi)
                && first != 0
                && last >= first
                && u16::from(oda) <= u16::from(last - first) + 1;
            if !ok {
                return Err(PbocError::Afl { offset: i * 4 });
            }
            out.push(AflEntry {
                sfi,
                first,
                last,
                oda_records: oda,
            });
        }
        Ok(Self(out))
    }

    /// The AFL bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0
            .iter()
            .flat_map(|e| [e.sfi << 3, e.first, e.last, e.oda_records])
            .collect()
    }
}

/// What GET PROCESSING OPTIONS answered (JR/T 0025.5 附录 B.8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessingOptions {
    /// The application interchange profile.
    pub aip: Aip,
    /// The application file locator (empty when the card returned none, as a qPBOC card does
    /// for online and declined transactions, JR/T 0025.12 §7.4.3).
    pub afl: Afl,
    /// Format 2 (`77`): every data object in the order returned, `82` and `94` included.
    /// Format 1 (`80`): empty.
    pub objects: Vec<(Tag, Vec<u8>)>,
}

impl ProcessingOptions {
    /// The value of `tag` in a format 2 answer.
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        self.objects
            .iter()
            .find(|(t, _)| t.value() == tag)
            .map(|(_, v)| v.as_slice())
    }
}

/// The GET PROCESSING OPTIONS command `80 A8 00 00 Lc 83 L <PDOL data> 00` (JR/T 0025.5 表B.12;
/// JR/T 0025.6 §7.3.4: `83 00` without a PDOL).
pub fn gpo_command(pdol_data: &[u8]) -> Result<Command, PbocError> {
    let mut data = vec![0x83];
    crate::tlv::write_length(&mut data, pdol_data.len()).map_err(|source| PbocError::Tlv {
        what: "PDOL data",
        source,
    })?;
    data.extend_from_slice(pdol_data);
    // A qPBOC answer carries the PAN and track 2 equivalent data: traces get its length only.
    Ok(Command::new(0x80, 0xa8, 0x00, 0x00)
        .with_data(data)
        .expect_data()
        .sensitive_response())
}

/// Read the answer to GET PROCESSING OPTIONS: format 1 `80 { AIP ‖ AFL }` or format 2
/// `77 { 82, 94, ... }` (JR/T 0025.5 表B.13). `require_afl` asks for an AFL in format 2
/// (contact debit/credit always; qPBOC only for offline approvals).
pub fn parse_gpo_response(data: &[u8], require_afl: bool) -> Result<ProcessingOptions, PbocError> {
    const WHAT: &str = "GET PROCESSING OPTIONS response";
    let mut iter = TlvIter::new(data);
    let first = iter
        .next()
        .ok_or(PbocError::Malformed {
            what: WHAT,
            reason: "empty",
        })?
        .map_err(|source| PbocError::Tlv { what: WHAT, source })?;
    if iter.next().is_some() {
        return Err(PbocError::Malformed {
            what: WHAT,
            reason: "bytes after the template",
        });
    }
    match first.tag.value() {
        0x80 => {
            let (aip, afl) = first
                .value
                .split_first_chunk::<2>()
                .ok_or(PbocError::Malformed {
                    what: WHAT,
                    reason: "format 1 shorter than the AIP",
                })?;
            Ok(ProcessingOptions {
                aip: Aip::from_bytes(*aip),
                afl: Afl::parse(afl)?,
                objects: Vec::new(),
            })
        }
        0x77 => {
            let mut objects: Vec<(Tag, Vec<u8>)> = Vec::new();
            for item in first.children() {
                let item = item.map_err(|source| PbocError::Tlv { what: WHAT, source })?;
                if objects.iter().any(|(t, _)| *t == item.tag) {
                    return Err(PbocError::DuplicateTag {
                        tag: item.tag,
                        sfi: 0,
                        record: 0,
                    });
                }
                objects.push((item.tag, item.value.to_vec()));
            }
            let get = |tag: u32| {
                objects
                    .iter()
                    .find(|(t, _)| t.value() == tag)
                    .map(|(_, v)| v.as_slice())
            };
            let aip = get(0x82)
                .and_then(Aip::from_slice)
                .ok_or(PbocError::MissingData {
                    tag: Tag::new(0x82),
                })?;
            let afl = match get(0x94) {
                Some(afl) => Afl::parse(afl)?,
                None if require_afl => {
                    return Err(PbocError::MissingData {
                        tag: Tag::new(0x94),
                    });
                }
                None => Afl::default(),
            };
            Ok(ProcessingOptions { aip, afl, objects })
        }
        _ => Err(PbocError::Malformed {
            what: WHAT,
            reason: "neither format 1 (80) nor format 2 (77)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn afl_rules() {
        let afl = Afl::parse(&h("080101001001020218010200")).unwrap();
        assert_eq!(afl.0.len(), 3);
        assert_eq!(
            afl.0[1],
            AflEntry {
                sfi: 2,
                first: 1,
                last: 2,
                oda_records: 2
            }
        );
        assert_eq!(afl.to_bytes(), h("080101001001020218010200"));
        assert_eq!(Afl::parse(&[8, 1, 1]), Err(PbocError::Afl { offset: 0 }));
        assert_eq!(Afl::parse(&[8, 0, 1, 0]), Err(PbocError::Afl { offset: 0 }));
        assert_eq!(
            Afl::parse(&[8, 1, 1, 0, 0x10, 2, 1, 0]),
            Err(PbocError::Afl { offset: 4 })
        );
        assert_eq!(Afl::parse(&[9, 1, 1, 0]), Err(PbocError::Afl { offset: 0 }));
        assert_eq!(Afl::parse(&[8, 1, 2, 3]), Err(PbocError::Afl { offset: 0 }));
        assert_eq!(
            Afl::parse(&[0xf8, 1, 2, 0]),
            Err(PbocError::Afl { offset: 0 })
        );
    }

    #[test]
    fn both_formats() {
        let f1 = parse_gpo_response(&h("80067C0008010100"), true).unwrap();
        assert_eq!(f1.aip.to_bytes(), [0x7c, 0x00]);
        assert_eq!(f1.afl.0.len(), 1);
        let f2 = parse_gpo_response(&h("770F82027C009404080101009F36020001"), true).unwrap();
        assert_eq!(f2.get(0x9f36), Some(&[0, 1][..]));
        assert!(matches!(
            parse_gpo_response(&h("770482027C00"), true),
            Err(PbocError::MissingData { .. })
        ));
        assert!(
            parse_gpo_response(&h("770482027C00"), false)
                .unwrap()
                .afl
                .0
                .is_empty()
        );
        assert!(matches!(
            parse_gpo_response(&h("8001 7C"), true),
            Err(PbocError::Malformed { .. })
        ));
        assert!(matches!(
            parse_gpo_response(&h("7008 82027C00 82027C00"), true),
            Err(PbocError::Malformed { .. })
        ));
        assert!(matches!(
            parse_gpo_response(&h("7708 82027C00 82027C00"), true),
            Err(PbocError::DuplicateTag { .. })
        ));
        assert!(matches!(
            parse_gpo_response(&h("800A7C00"), true),
            Err(PbocError::Tlv { .. })
        ));
    }

    #[test]
    fn command_layout() {
        let cmd = gpo_command(&[1, 2]).unwrap();
        assert_eq!(
            cmd.to_bytes().unwrap(),
            [0x80, 0xa8, 0, 0, 4, 0x83, 2, 1, 2, 0]
        );
        assert_eq!(
            gpo_command(&[]).unwrap().to_bytes().unwrap(),
            [0x80, 0xa8, 0, 0, 2, 0x83, 0, 0]
        );
    }
}
