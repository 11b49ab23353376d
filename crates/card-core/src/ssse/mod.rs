//! The social-security application (SSSE, 社会保障应用).
//!
//! The application is selected by its AID, `sx1.sh.社会保障` in GBK. Its files EF05 (card
//! identification) and EF06 (cardholder) hold TLV records that are read by tag with
//! `READ RECORD P1=tag P2=(SFI<<3)|000` (first record with that identifier), or all at once with
//! `P2=(SFI<<3)|101` (records from P1 to the last) where the card allows it, which takes one
//! command per file instead of one per field. The PIN is verified with `VERIFY 00 20 00 00`
//! (PIN in packed BCD) and changed with `CHANGE PIN 80 5E 01 00` (old PIN ‖ `FF` ‖ new PIN).
//! docs/card-profile.md gives the sources for every choice.

pub mod auth;
pub mod fields;
pub mod records;
pub mod update;

use crate::apdu::{Command, Response};
use crate::channel::{CardChannel, CardSession, ResetAware, SendError};
use crate::secret::Pin;
use crate::status::StatusWord;
use records::{CardIdentification, Cardholder, Identity, RecordError, RecordSet};

pub use fields::{CardNumber, Date, FieldError, Gender, IdNumber, PersonName};

/// AID of the SSSE application: "sx1.sh." followed by 社会保障 in GBK.
pub const AID: [u8; 15] = [
    0x73, 0x78, 0x31, 0x2e, 0x73, 0x68, 0x2e, 0xc9, 0xe7, 0xbb, 0xe1, 0xb1, 0xa3, 0xd5, 0xcf,
];
/// AID of DF04 (social insurance 2, medical).
pub const DF04_AID: [u8; 6] = [0xd1, 0x56, 0x00, 0x00, 0x05, 0x03];
/// AID of the third-generation PKI directory: "PKI." followed by 社会保障 in GBK.
pub const PKI_DDF_AID: [u8; 12] = [
    0x50, 0x4b, 0x49, 0x2e, 0xc9, 0xe7, 0xbb, 0xe1, 0xb1, 0xa3, 0xd5, 0xcf,
];
/// AID of the certificate application in the PKI directory: "SS.CERT.ADF1".
pub const PKI_ADF_AID: [u8; 12] = *b"SS.CERT.ADF1";
/// SFI of the PKI application's signing public key (EF 0012).
pub const SFI_PKI_PUBLIC_KEY: u8 = 0x12;
/// SFI of the PKI application's card-authentication data (EF 0018): CA index, issuer and ICC
/// certificates, PAN (project profile; docs/card-profile.md).
pub const SFI_PKI_AUTH_DATA: u8 = 0x18;
/// SFI of EF05 (card identification).
pub const SFI_EF05: u8 = 5;
/// SFI of EF06 (cardholder).
pub const SFI_EF06: u8 = 6;

/// How records are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadStrategy {
    /// One READ RECORD per tag (works on every card generation).
    ByTag,
    /// One READ RECORD for all records of the file, then by tag for anything required that
    /// did not come back. Falls back to [`ReadStrategy::ByTag`] if the card refuses the mode.
    #[default]
    AllRecords,
}

/// Errors of the SSSE flows.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsseError {
    /// The exchange with the card failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The card has no SSSE application.
    #[error("this card has no social-security application")]
    NotSsseCard,
    /// The application or card is blocked.
    #[error("the social-security application is blocked ({0})")]
    ApplicationBlocked(StatusWord),
    /// Reading needs a verified PIN first.
    #[error("reading {file} needs the PIN to be verified first")]
    PinRequired {
        /// The file.
        file: &'static str,
    },
    /// The PIN was wrong.
    #[error("wrong PIN, {tries_left} tries left")]
    WrongPin {
        /// Tries the card still allows.
        tries_left: u8,
    },
    /// The PIN is blocked.
    #[error("the PIN is blocked")]
    PinBlocked,
    /// The card answered a status word the flow does not expect.
    #[error("{command} failed: {sw}")]
    Status {
        /// Which command.
        command: &'static str,
        /// The answer.
        sw: StatusWord,
    },
    /// The records could not be understood.
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl ResetAware for SsseError {
    fn is_card_reset(&self) -> bool {
        matches!(self, Self::Send(e) if e.is_card_reset())
    }
}

fn expect_ok(command: &'static str, r: &Response) -> Result<(), SsseError> {
    if r.is_success() {
        Ok(())
    } else {
        Err(SsseError::Status {
            command,
            sw: r.sw(),
        })
    }
}

/// SELECT the SSSE application by AID; returns the FCI bytes.
pub fn select<C: CardChannel>(s: &mut CardSession<C>) -> Result<Vec<u8>, SsseError> {
    select_aid(s, &AID)
}

fn select_aid<C: CardChannel>(s: &mut CardSession<C>, aid: &[u8]) -> Result<Vec<u8>, SsseError> {
    let r = s.send(
        &Command::new(0x00, 0xa4, 0x04, 0x00)
            .with_data(aid)
            .expect_data(),
    )?;
    match r.sw() {
        StatusWord::Success => Ok(r.into_data()),
        StatusWord::FileNotFound => Err(SsseError::NotSsseCard),
        sw @ (StatusWord::SelectedFileInvalidated
        | StatusWord::FunctionNotSupported
        | StatusWord::ApplicationBlocked) => Err(SsseError::ApplicationBlocked(sw)),
        sw => Err(SsseError::Status {
            command: "SELECT",
            sw,
        }),
    }
}

/// Read the records `required` (and, if present, `optional`) of the file with `sfi`, in the
/// current application.
pub fn read_records<C: CardChannel>(
    s: &mut CardSession<C>,
    file: &'static str,
    sfi: u8,
    required: &[u8],
    optional: &[u8],
    strategy: ReadStrategy,
) -> Result<RecordSet, SsseError> {
    let mut set = RecordSet::new();
    let mut bulk_ok = false;
    if strategy == ReadStrategy::AllRecords {
        // P2 = SFI, b3-b1 = 101: all records from P1 to the last (ISO/IEC 7816-4 §7.3.3).
        // The answers are personal data: traces get their length only.
        let r = s.send(
            &Command::new(0x00, 0xb2, 0x01, (sfi << 3) | 0b101)
                .expect_data()
                .sensitive_response(),
        )?;
        match r.sw() {
            StatusWord::Success => {
                // A response that is not clean TLV is not trusted: read by tag instead.
                let mut parsed = RecordSet::new();
                if parsed.add_records(file, r.data()).is_ok() {
                    set = parsed;
                    bulk_ok = true;
                }
            }
            StatusWord::SecurityStatusNotSatisfied => return Err(SsseError::PinRequired { file }),
            // Mode not supported, or anything else: fall back to reading by tag.
            _ => {}
        }
    }
    let optional_to_read: &[u8] = if bulk_ok { &[] } else { optional };
    for (&tag, is_required) in required
        .iter()
        .map(|t| (t, true))
        .chain(optional_to_read.iter().map(|t| (t, false)))
    {
        if set.contains(tag) {
            continue;
        }
        let r = s.send(
            &Command::new(0x00, 0xb2, tag, sfi << 3)
                .expect_data()
                .sensitive_response(),
        )?;
        match r.sw() {
            StatusWord::Success => {
                // The response is the record itself: tag, length, value.
                let mut one = RecordSet::new();
                one.add_records(file, r.data())?;
                if let Some(v) = one.get(tag) {
                    let mut rec = vec![tag];
                    crate::tlv::write_length(&mut rec, v.len()).ok();
                    rec.extend_from_slice(v);
                    set.add_records(file, &rec)?;
                } else if is_required {
                    return Err(RecordError::Missing {
                        file,
                        tag,
                        name: "record with another tag returned",
                    }
                    .into());
                }
            }
            StatusWord::RecordNotFound if !is_required => {}
            StatusWord::RecordNotFound => {
                return Err(RecordError::Missing {
                    file,
                    tag,
                    name: crate::tags::lookup(
                        crate::tags::Context::Ssse,
                        crate::tlv::Tag::new(u32::from(tag)),
                    )
                    .map_or("unknown", |i| i.name),
                }
                .into());
            }
            StatusWord::SecurityStatusNotSatisfied => return Err(SsseError::PinRequired { file }),
            sw => {
                return Err(SsseError::Status {
                    command: "READ RECORD",
                    sw,
                });
            }
        }
    }
    Ok(set)
}

/// Select the application and read EF05 and EF06 into typed values.
pub fn read_identity<C: CardChannel>(
    s: &mut CardSession<C>,
    strategy: ReadStrategy,
) -> Result<Identity, SsseError> {
    select(s)?;
    let ef05 = read_records(s, "EF05", SFI_EF05, &records::EF05_TAGS, &[], strategy)?;
    let ef06 = read_records(
        s,
        "EF06",
        SFI_EF06,
        &records::EF06_TAGS,
        &records::EF06_OPTIONAL_TAGS,
        strategy,
    )?;
    Ok(Identity {
        card: CardIdentification::from_records(&ef05)?,
        holder: Cardholder::from_records(&ef06)?,
    })
}

/// Select DF04 (medical) and read all records of its EF05 (medical basic information). Needs
/// the PIN on cards personalised as the fixtures are.
pub fn read_medical_basic<C: CardChannel>(s: &mut CardSession<C>) -> Result<RecordSet, SsseError> {
    select_aid(s, &DF04_AID)?;
    read_records(s, "DF04/EF05", SFI_EF05, &[], &[], ReadStrategy::AllRecords)
}

fn pin_result(sw: StatusWord, command: &'static str) -> Result<(), SsseError> {
    match sw {
        StatusWord::Success => Ok(()),
        StatusWord::WrongPin { tries_left: 0 } => Err(SsseError::PinBlocked),
        StatusWord::WrongPin { tries_left } => Err(SsseError::WrongPin { tries_left }),
        // 6983 blocked now, 6984 blocked in an earlier session (JR/T 0025.5 §11.3).
        StatusWord::AuthenticationBlocked | StatusWord::ReferenceDataInvalidated => {
            Err(SsseError::PinBlocked)
        }
        sw => Err(SsseError::Status { command, sw }),
    }
}

impl SsseError {
    /// Whether the command that failed may still have changed the card: it may have reached
    /// the card and no answer came back, or the card answered `65xx` (memory changed). Meant
    /// for errors of single-command writes such as [`change_pin`].
    pub fn card_may_have_changed(&self) -> bool {
        match self {
            Self::Send(e) => e.may_have_reached_card(),
            Self::Status { sw, .. } => sw.memory_may_have_changed(),
            _ => false,
        }
    }
}

/// VERIFY the PIN in the current application.
pub fn verify_pin<C: CardChannel>(s: &mut CardSession<C>, pin: &Pin) -> Result<(), SsseError> {
    let bcd = pin.to_bcd();
    let cmd = Command::new(0x00, 0x20, 0x00, 0x00)
        .with_data(bcd.as_slice())
        .sensitive();
    let r = s.send(&cmd)?;
    pin_result(r.sw(), "VERIFY")
}

/// Ask the card how many PIN tries are left (VERIFY without data, ISO/IEC 7816-4 §7.5.6).
/// Returns `None` if the PIN is already verified in this session.
pub fn pin_tries_left<C: CardChannel>(s: &mut CardSession<C>) -> Result<Option<u8>, SsseError> {
    let r = s.send(&Command::new(0x00, 0x20, 0x00, 0x00))?;
    match r.sw() {
        StatusWord::Success => Ok(None),
        StatusWord::WrongPin { tries_left } => Ok(Some(tries_left)),
        StatusWord::AuthenticationBlocked | StatusWord::ReferenceDataInvalidated => Ok(Some(0)),
        sw => Err(SsseError::Status {
            command: "VERIFY",
            sw,
        }),
    }
}

/// CHANGE PIN: `80 5E 01 00`, data old PIN ‖ `FF` ‖ new PIN, both packed BCD.
pub fn change_pin<C: CardChannel>(
    s: &mut CardSession<C>,
    old: &Pin,
    new: &Pin,
) -> Result<(), SsseError> {
    let mut data = zeroize::Zeroizing::new(Vec::with_capacity(16));
    data.extend_from_slice(&old.to_bcd());
    data.push(0xff);
    data.extend_from_slice(&new.to_bcd());
    let r = s.send(
        &Command::new(0x80, 0x5e, 0x01, 0x00)
            .with_data(data.as_slice())
            .sensitive(),
    )?;
    pin_result(r.sw(), "CHANGE PIN")
}

/// A helper for flows: fail unless 9000.
pub fn require_success(command: &'static str, r: &Response) -> Result<(), SsseError> {
    expect_ok(command, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::ReplayChannel;

    const SELECT: &str = "> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n< 6F11840F7378312E73682EC9E7BBE1B1A3D5CF 9000\n";

    fn ef05() -> String {
        // 01 card id, 02 type, 03 version, 04 org, 05/06 dates, 07 card number.
        let mut s = String::new();
        s += "0110 110105D156000005 0000000000000001";
        s += "0201 33";
        s += "0304 332E3030";
        s += "040C 313130313030303030303030";
        s += "0504 20240115";
        s += "0604 20340115";
        s += "0709 413132333435363734";
        s
    }

    fn ef06() -> String {
        let mut s = String::new();
        s += "0812 3131303130353139343931323331303032 58";
        s += "0904 D5C5C8FD";
        s += "0A01 32 0B01 01 0C03 110105 0D04 19491231";
        s
    }

    #[test]
    fn identity_in_three_commands() {
        let script = format!(
            "{SELECT}> 00B2012D00\n< {} 9000\n> 00B2013500\n< {} 9000\n",
            ef05(),
            ef06()
        );
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let id = read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
        assert_eq!(s.exchanges(), 3);
        assert_eq!(id.card.card_number.reveal(), "A12345674");
        assert_eq!(id.card.region_code().as_deref(), Some("110105"));
        assert_eq!(id.card.expiry_date, Date::new(2034, 1, 15).unwrap());
        assert!(id.card.is_expired(Date::new(2034, 1, 16).unwrap()));
        assert!(!id.card.is_expired(Date::new(2034, 1, 15).unwrap()));
        assert_eq!(id.holder.name.reveal(), "张三");
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn falls_back_to_reading_by_tag() {
        // The card refuses the all-records mode: every field is read by its tag.
        let mut script = format!("{SELECT}> 00B2012D00\n< 6A86\n");
        let ef05 = ef05().replace(' ', "");
        let mut rest = ef05.as_str();
        for tag in records::EF05_TAGS {
            let len = usize::from_str_radix(&rest[2..4], 16).unwrap();
            let rec = &rest[..4 + 2 * len];
            script += &format!("> 00B2{tag:02X}2800\n< {rec} 9000\n");
            rest = &rest[4 + 2 * len..];
        }
        script += "> 00B2013500\n< 6A86\n";
        let ef06 = ef06().replace(' ', "");
        let mut rest = ef06.as_str();
        for tag in records::EF06_TAGS {
            let len = usize::from_str_radix(&rest[2..4], 16).unwrap();
            let rec = &rest[..4 + 2 * len];
            script += &format!("> 00B2{tag:02X}3000\n< {rec} 9000\n");
            rest = &rest[4 + 2 * len..];
        }
        script += "> 00B24E3000\n< 6A83\n";
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let id = read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
        assert_eq!(id.holder.ssn.reveal(), "11010519491231002X");
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn missing_application_and_pin_protected_files() {
        let mut s = CardSession::new(
            ReplayChannel::parse("> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n< 6A82\n").unwrap(),
        );
        assert_eq!(
            read_identity(&mut s, ReadStrategy::ByTag),
            Err(SsseError::NotSsseCard)
        );

        let script = format!("{SELECT}> 00B2012D00\n< 6982\n");
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        assert_eq!(
            read_identity(&mut s, ReadStrategy::AllRecords),
            Err(SsseError::PinRequired { file: "EF05" })
        );
    }

    #[test]
    fn garbage_records_are_not_trusted() {
        // The bulk answer is not TLV: the flow reads by tag, and a bad by-tag answer is an error.
        let script = format!("{SELECT}> 00B2012D00\n< 01FF 9000\n> 00B2012800\n< 0120AA 9000\n");
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        assert!(matches!(
            read_identity(&mut s, ReadStrategy::AllRecords),
            Err(SsseError::Record(RecordError::Tlv { file: "EF05", .. }))
        ));
    }

    #[test]
    fn pin_outcomes() {
        let script = "> 0020000003123456\n< 9000\n\
                      > 0020000003111111\n< 63C2\n\
                      > 0020000003111111\n< 63C0\n\
                      > 0020000003111111\n< 6983\n\
                      > 00200000\n< 63C1\n\
                      > 805E0100071234 56FF 654321\n< 9000\n\
                      > 0020000003123456\n< 6A88\n";
        let mut s = CardSession::new(ReplayChannel::parse(script).unwrap());
        let right = Pin::new("123456").unwrap();
        let wrong = Pin::new("111111").unwrap();
        assert_eq!(verify_pin(&mut s, &right), Ok(()));
        assert_eq!(
            verify_pin(&mut s, &wrong),
            Err(SsseError::WrongPin { tries_left: 2 })
        );
        assert_eq!(verify_pin(&mut s, &wrong), Err(SsseError::PinBlocked));
        assert_eq!(verify_pin(&mut s, &wrong), Err(SsseError::PinBlocked));
        assert_eq!(pin_tries_left(&mut s), Ok(Some(1)));
        assert_eq!(
            change_pin(&mut s, &right, &Pin::new("654321").unwrap()),
            Ok(())
        );
        assert_eq!(
            verify_pin(&mut s, &right),
            Err(SsseError::Status {
                command: "VERIFY",
                sw: StatusWord::ReferencedDataNotFound
            })
        );
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn transport_errors_surface() {
        let mut s = CardSession::new(
            ReplayChannel::parse("> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n! removed\n")
                .unwrap(),
        );
        assert_eq!(
            read_identity(&mut s, ReadStrategy::AllRecords),
            Err(SsseError::Send(SendError::Transport(
                crate::channel::TransportError::CardRemoved
            )))
        );
    }
}
