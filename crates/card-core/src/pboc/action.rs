//! Terminal action analysis (JR/T 0025.6 §7.9.3), the GENERATE AC command and its answer
//! (JR/T 0025.5 附录 B.6), and the authorisation response codes of JR/T 0025.6 附录 A.6 表A.4.

use crate::apdu::Command;
use crate::tlv::{Tag, TlvIter};

use super::PbocError;
use super::bits::{AcType, Cid, Tvr};
use super::config::ActionCodes;
use super::records::IssuerActionCodes;

/// Authorisation response code `Y1`: offline approved.
pub const ARC_Y1: [u8; 2] = *b"Y1";
/// `Z1`: offline declined.
pub const ARC_Z1: [u8; 2] = *b"Z1";
/// `Y3`: unable to go online, offline approved.
pub const ARC_Y3: [u8; 2] = *b"Y3";
/// `Z3`: unable to go online, offline declined.
pub const ARC_Z3: [u8; 2] = *b"Z3";

/// Whether an issuer's authorisation response code approves (`00`, `10`, `11`, JR/T 0025.6
/// §7.13.5.1). Referrals (`01`, `02`) are not supported by the kiosk and decline.
pub fn arc_approves(arc: [u8; 2]) -> bool {
    matches!(&arc, b"00" | b"10" | b"11")
}

/// The result of terminal action analysis: the cryptogram to ask for, and the authorisation
/// response code the terminal sets when it decides offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionDecision {
    /// The cryptogram for the first GENERATE AC.
    pub ac: AcType,
    /// `Y1`, `Z1` or `Z3` when the terminal decided offline; `None` when it asks for online.
    pub arc: Option<[u8; 2]>,
}

/// Terminal action analysis, JR/T 0025.6 §7.9.3 steps 1-5. Absent IACs take the defaults the
/// clause gives (denial all zeros, online and default all ones).
pub fn analyse(
    tvr: Tvr,
    iac: &IssuerActionCodes,
    tac: &ActionCodes,
    online_capable: bool,
    online_only: bool,
) -> ActionDecision {
    // Steps 1-2.
    if tvr.intersects(iac.denial.unwrap_or([0; 5])) || tvr.intersects(tac.denial) {
        return ActionDecision {
            ac: AcType::Aac,
            arc: Some(ARC_Z1),
        };
    }
    // Step 3.
    if online_capable {
        if online_only
            || tvr.intersects(iac.online.unwrap_or([0xff; 5]))
            || tvr.intersects(tac.online)
        {
            return ActionDecision {
                ac: AcType::Arqc,
                arc: None,
            };
        }
    } else if default_declines(tvr, iac, tac) {
        // Step 4 for an offline-only terminal.
        return ActionDecision {
            ac: AcType::Aac,
            arc: Some(ARC_Z1),
        };
    }
    // Step 5.
    ActionDecision {
        ac: AcType::Tc,
        arc: Some(ARC_Y1),
    }
}

/// Whether the default codes decline (§7.9.3 step 4; §7.13.6.1 when online was not possible).
pub fn default_declines(tvr: Tvr, iac: &IssuerActionCodes, tac: &ActionCodes) -> bool {
    tvr.intersects(iac.default.unwrap_or([0xff; 5])) || tvr.intersects(tac.default)
}

/// The cryptogram for the second GENERATE AC when online processing was asked for but could not
/// be done (JR/T 0025.6 §7.13.6.1-§7.13.6.2, 表39): TC with `Y3` or AAC with `Z3`.
pub fn unable_to_go_online(tvr: Tvr, iac: &IssuerActionCodes, tac: &ActionCodes) -> ActionDecision {
    if default_declines(tvr, iac, tac) {
        ActionDecision {
            ac: AcType::Aac,
            arc: Some(ARC_Z3),
        }
    } else {
        ActionDecision {
            ac: AcType::Tc,
            arc: Some(ARC_Y3),
        }
    }
}

/// GENERATE AC `80 AE P1 00 Lc data 00` (JR/T 0025.5 表B.6, 表B.7): P1 is the cryptogram type,
/// with bit 5 when CDA is requested.
pub fn generate_ac_command(ac: AcType, cda: bool, data: &[u8]) -> Command {
    let p1 = ac.bits() | if cda { 0x10 } else { 0x00 };
    Command::new(0x80, 0xae, p1, 0x00)
        .with_data(data)
        .expect_data()
}

/// The answer to GENERATE AC (JR/T 0025.5 附录 B.6.4, formats 1 and 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateAcResponse {
    /// Cryptogram information data.
    pub cid: Cid,
    /// Application transaction counter.
    pub atc: u16,
    /// The cryptogram; in a CDA answer it is inside the signature instead.
    pub cryptogram: Option<[u8; 8]>,
    /// Issuer application data `9F10`.
    pub iad: Option<Vec<u8>>,
    /// Signed dynamic application data `9F4B` (CDA).
    pub sdad: Option<Vec<u8>>,
    /// For CDA: the answer's data objects (tag, length, value) in order, without `9F4B`
    /// (JR/T 0025.7 §5.3.6.1, JR/T 0025.17 §5.2.5.1).
    pub objects_without_sdad: Vec<u8>,
}

/// Read the answer to GENERATE AC.
pub fn parse_generate_ac_response(data: &[u8]) -> Result<GenerateAcResponse, PbocError> {
    const WHAT: &str = "GENERATE AC response";
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
            let (&cid, rest) = first.value.split_first().ok_or(PbocError::Malformed {
                what: WHAT,
                reason: "format 1 too short",
            })?;
            let (atc, rest) = rest.split_first_chunk::<2>().ok_or(PbocError::Malformed {
                what: WHAT,
                reason: "format 1 too short",
            })?;
            let (ac, iad) = rest.split_first_chunk::<8>().ok_or(PbocError::Malformed {
                what: WHAT,
                reason: "format 1 too short",
            })?;
            Ok(GenerateAcResponse {
                cid: Cid(cid),
                atc: u16::from_be_bytes(*atc),
                cryptogram: Some(*ac),
                iad: (!iad.is_empty()).then(|| iad.to_vec()),
                sdad: None,
                objects_without_sdad: Vec::new(),
            })
        }
        0x77 => {
            let mut cid = None;
            let mut atc = None;
            let mut cryptogram = None;
            let mut iad = None;
            let mut sdad = None;
            let mut objects = Vec::new();
            let mut seen: Vec<Tag> = Vec::new();
            for item in first.children() {
                let item = item.map_err(|source| PbocError::Tlv { what: WHAT, source })?;
                if seen.contains(&item.tag) {
                    return Err(PbocError::DuplicateTag {
                        tag: item.tag,
                        sfi: 0,
                        record: 0,
                    });
                }
                seen.push(item.tag);
                let bad = || PbocError::BadData { tag: item.tag };
                match item.tag.value() {
                    0x9f27 => cid = Some(Cid(*item.value.first().ok_or_else(bad)?)),
                    0x9f36 => {
                        atc = Some(u16::from_be_bytes(
                            item.value.try_into().map_err(|_| bad())?,
                        ))
                    }
                    0x9f26 => cryptogram = Some(item.value.try_into().map_err(|_| bad())?),
                    0x9f10 => iad = Some(item.value.to_vec()),
                    0x9f4b => sdad = Some(item.value.to_vec()),
                    _ => {}
                }
                if item.tag.value() != 0x9f4b {
                    let start = item.offset - first.value_offset;
                    let end = item.value_offset - first.value_offset + item.value.len();
                    objects.extend_from_slice(first.value.get(start..end).unwrap_or_default());
                }
            }
            Ok(GenerateAcResponse {
                cid: cid.ok_or(PbocError::MissingData {
                    tag: Tag::new(0x9f27),
                })?,
                atc: atc.ok_or(PbocError::MissingData {
                    tag: Tag::new(0x9f36),
                })?,
                cryptogram,
                iad,
                sdad,
                objects_without_sdad: objects,
            })
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
    use crate::pboc::bits::TvrBit;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn kiosk_tac() -> ActionCodes {
        ActionCodes {
            default: [0xdc, 0x40, 0x00, 0xa8, 0x00],
            denial: [0x00, 0x10, 0x00, 0x00, 0x00],
            online: [0xdc, 0x40, 0x04, 0xf8, 0x00],
        }
    }

    #[test]
    fn iac_example_of_7_9_3() {
        // The example of JR/T 0025.6 §7.9.3: IAC-denial with DDA failed and PIN try limit.
        let iac = IssuerActionCodes {
            denial: Some([0x08, 0x00, 0x20, 0x00, 0x00]),
            online: Some([0; 5]),
            default: Some([0; 5]),
        };
        let tac = ActionCodes {
            denial: [0; 5],
            online: [0; 5],
            default: [0; 5],
        };
        let mut tvr = Tvr::default();
        tvr.set(TvrBit::Expired);
        assert_eq!(analyse(tvr, &iac, &tac, true, false).ac, AcType::Tc);
        tvr.set(TvrBit::DdaFailed);
        assert_eq!(
            analyse(tvr, &iac, &tac, true, false),
            ActionDecision {
                ac: AcType::Aac,
                arc: Some(ARC_Z1)
            }
        );
    }

    #[test]
    fn kiosk_decisions() {
        let iac = IssuerActionCodes::default();
        let tac = kiosk_tac();
        // Clean TVR, offline-only kiosk, absent IAC-default defaults to all ones but TVR zero.
        assert_eq!(
            analyse(Tvr::default(), &iac, &tac, false, false).ac,
            AcType::Tc
        );
        let mut tvr = Tvr::default();
        tvr.set(TvrBit::FloorLimitExceeded);
        assert_eq!(
            analyse(tvr, &iac, &tac, false, false),
            ActionDecision {
                ac: AcType::Aac,
                arc: Some(ARC_Z1)
            }
        );
        assert_eq!(analyse(tvr, &iac, &tac, true, false).ac, AcType::Arqc);
        assert_eq!(unable_to_go_online(tvr, &iac, &tac).arc, Some(ARC_Z3));
        assert_eq!(
            unable_to_go_online(
                Tvr::default(),
                &IssuerActionCodes {
                    default: Some([0; 5]),
                    ..iac
                },
                &tac
            )
            .arc,
            Some(ARC_Y3)
        );
        let mut tvr = Tvr::default();
        tvr.set(TvrBit::ServiceNotAllowed);
        assert_eq!(analyse(tvr, &iac, &tac, true, false).ac, AcType::Aac);
        assert_eq!(
            analyse(Tvr::default(), &iac, &tac, true, true).ac,
            AcType::Arqc
        );
        assert!(arc_approves(*b"00"));
        assert!(!arc_approves(*b"05"));
    }

    #[test]
    fn responses() {
        let f1 = parse_generate_ac_response(&h("8013 40 0007 1122334455667788 0701010300000004"))
            .unwrap();
        assert_eq!(f1.cid.ac_type(), Some(AcType::Tc));
        assert_eq!(f1.atc, 7);
        assert_eq!(f1.iad.unwrap().len(), 8);
        let f2 =
            parse_generate_ac_response(&h("7714 9F2701 80 9F3602 0008 9F4B03 010203 9F1002 0701"))
                .unwrap();
        assert_eq!(f2.cryptogram, None);
        assert_eq!(f2.sdad.unwrap(), [1, 2, 3]);
        assert_eq!(
            f2.objects_without_sdad,
            h("9F2701 80 9F3602 0008 9F1002 0701")
        );
        assert!(matches!(
            parse_generate_ac_response(&h("8005 4000071122")),
            Err(PbocError::Malformed { .. })
        ));
        assert!(matches!(
            parse_generate_ac_response(&h("7703 9F3600")),
            Err(PbocError::BadData { .. })
        ));
        assert!(matches!(
            parse_generate_ac_response(&h("7704 9F360100")),
            Err(PbocError::BadData { .. })
        ));
        assert!(matches!(
            parse_generate_ac_response(&h("7705 9F36020001")),
            Err(PbocError::MissingData { .. })
        ));
        assert_eq!(
            generate_ac_command(AcType::Tc, true, &[1])
                .to_bytes()
                .unwrap(),
            [0x80, 0xae, 0x50, 0, 1, 1, 0]
        );
    }
}
