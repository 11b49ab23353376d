//! Application selection (JR/T 0025.6 §7.2, JR/T 0025.5 §6, JR/T 0025.3 §12): the candidate
//! list by the directory of the PSE `1PAY.SYS.DDF01` (contact) or the PPSE `2PAY.SYS.DDF01`
//! (contactless, JR/T 0025.12 §6.4), or by the terminal's AID list; the order by application
//! priority; the final SELECT.
//!
//! - [`candidates_from_pse`]: §7.2.4.1 steps 1-5 (`6A81` stops selection; `6A82`, `6283`, any
//!   other status or any error while reading the directory falls back to the AID list).
//! - [`candidates_from_aid_list`]: §7.2.4.2 steps 1-7, with partial name selection (`P2 = 02`,
//!   "select next") under the application selection indicator.
//! - [`candidates_from_ppse`]: JR/T 0025.12 §6.4.1, §6.4.3 表2.
//! - [`order_candidates`] and [`final_select`]: §7.2.5 (automatic selection of the highest
//!   priority, §7.2.5.1) and §7.2.5.3 (a failed final SELECT removes the candidate and the
//!   terminal tries again).
//!
//! Directory entries that name a DDF (`9D`) rather than an ADF are skipped; the profile
//! (docs/pboc-profile.md) has none.

use crate::apdu::Command;
use crate::channel::{CardChannel, CardSession};
use crate::status::StatusWord;
use crate::tlv::{Tag, TlvIter};

use super::PbocError;
use super::dol::Dol;

/// The name of the payment system environment (contact).
pub const PSE: &[u8] = b"1PAY.SYS.DDF01";
/// The name of the proximity payment system environment (contactless).
pub const PPSE: &[u8] = b"2PAY.SYS.DDF01";
/// Most records read from a PSE directory.
const MAX_DIRECTORY_RECORDS: u8 = 16;
/// Most "select next" rounds for one terminal AID.
const MAX_SELECT_NEXT: usize = 16;

/// An application the terminal supports, with its application selection indicator
/// (JR/T 0025.6 §7.2.2 表5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SupportedAid {
    /// The terminal's AID (tag `9F06`).
    pub aid: Vec<u8>,
    /// Whether a card AID that starts with this one and is longer matches (ASI `0`, partial
    /// name match) or only an identical one (ASI `1`).
    pub partial_match: bool,
}

impl SupportedAid {
    /// Partial name matching allowed.
    pub fn partial(aid: &[u8]) -> Self {
        Self {
            aid: aid.to_vec(),
            partial_match: true,
        }
    }

    /// Exact match only.
    pub fn exact(aid: &[u8]) -> Self {
        Self {
            aid: aid.to_vec(),
            partial_match: false,
        }
    }

    /// Whether the card's application name `card_aid` matches (§7.2.4).
    pub fn matches(&self, card_aid: &[u8]) -> bool {
        card_aid == self.aid.as_slice()
            || (self.partial_match
                && card_aid.len() > self.aid.len()
                && card_aid.starts_with(&self.aid))
    }
}

/// Which interface the transaction uses: contact (PSE, debit/credit) or contactless (PPSE,
/// qPBOC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    /// Contact: JR/T 0025.6.
    Contact,
    /// Contactless qPBOC: JR/T 0025.12.
    Contactless,
}

/// A log entry: the SFI and number of records of a cyclic log file (tags `9F4D` and `DF4D`,
/// JR/T 0025.13 §5.8, JR/T 0025.6 附录 B.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogEntry {
    /// Short file identifier of the log file.
    pub sfi: u8,
    /// Number of records the file holds.
    pub records: u8,
}

impl LogEntry {
    /// From the two bytes of `9F4D` / `DF4D`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes {
            &[sfi, records] if (1..=30).contains(&sfi) => Some(Self { sfi, records }),
            _ => None,
        }
    }
}

/// The file control information returned by SELECT (JR/T 0025.5 表B.26, 表B.27; JR/T
/// 0025.12 表2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fci {
    /// DF name (`84`).
    pub df_name: Vec<u8>,
    /// Application label (`50`).
    pub label: Option<String>,
    /// Application preferred name (`9F12`).
    pub preferred_name: Option<String>,
    /// Application priority indicator (`87`).
    pub priority: Option<u8>,
    /// Processing options data object list (`9F38`).
    pub pdol: Option<Dol>,
    /// Language preference (`5F2D`).
    pub language: Option<String>,
    /// SFI of the directory elementary file (`88`, PSE only).
    pub directory_sfi: Option<u8>,
    /// Transaction log entry (`9F4D` in `BF0C`).
    pub log_entry: Option<LogEntry>,
    /// Load log entry (`DF4D` in `BF0C`).
    pub load_log_entry: Option<LogEntry>,
    /// Directory entries of a PPSE (`61` in `BF0C`).
    pub entries: Vec<DirectoryEntry>,
}

/// An ADF entry of a directory (`61` template: `4F`, `50`, `9F12`, `87`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// ADF name (`4F`).
    pub aid: Vec<u8>,
    /// Application label (`50`).
    pub label: Option<String>,
    /// Application preferred name (`9F12`).
    pub preferred_name: Option<String>,
    /// Application priority indicator (`87`).
    pub priority: Option<u8>,
}

/// A candidate application (JR/T 0025.6 §7.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The card's AID (ADF name).
    pub aid: Vec<u8>,
    /// Application label.
    pub label: Option<String>,
    /// Application priority indicator: bit 8 asks for cardholder confirmation, bits 4-1 the
    /// priority (1 highest, 0 none).
    pub priority: Option<u8>,
}

impl Candidate {
    fn rank(&self) -> u8 {
        self.priority
            .map(|p| p & 0x0f)
            .filter(|p| *p != 0)
            .unwrap_or(16)
    }

    /// Whether the application may only be selected with the cardholder's confirmation.
    pub fn needs_confirmation(&self) -> bool {
        self.priority.is_some_and(|p| p & 0x80 != 0)
    }
}

/// The application chosen by [`final_select`]: its FCI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedApplication {
    /// The AID (the FCI's DF name).
    pub aid: Vec<u8>,
    /// The FCI.
    pub fci: Fci,
    /// The raw FCI bytes.
    pub raw_fci: Vec<u8>,
}

impl SelectedApplication {
    /// The registered application provider identifier: the AID's first five bytes.
    pub fn rid(&self) -> Option<[u8; 5]> {
        self.aid.first_chunk::<5>().copied()
    }

    /// The name to show: the preferred name, else the label.
    pub fn label(&self) -> Option<String> {
        self.fci
            .preferred_name
            .clone()
            .or_else(|| self.fci.label.clone())
    }
}

fn text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect()
}

fn directory_entry(
    template: &[u8],
    what: &'static str,
) -> Result<Option<DirectoryEntry>, PbocError> {
    let mut entry = DirectoryEntry {
        aid: Vec::new(),
        label: None,
        preferred_name: None,
        priority: None,
    };
    let mut has_aid = false;
    for item in TlvIter::new(template) {
        let item = item.map_err(|source| PbocError::Tlv { what, source })?;
        match item.tag.value() {
            0x4f => {
                entry.aid = item.value.to_vec();
                has_aid = true;
            }
            0x50 => entry.label = Some(text(item.value)),
            0x9f12 => entry.preferred_name = Some(text(item.value)),
            0x87 => entry.priority = item.value.first().copied(),
            _ => {}
        }
    }
    Ok(has_aid.then_some(entry))
}

/// Read an FCI: template `6F` with `84` and `A5` (JR/T 0025.5 表B.26, 表B.27).
pub fn parse_fci(bytes: &[u8]) -> Result<Fci, PbocError> {
    const WHAT: &str = "FCI";
    let fci = TlvIter::new(bytes)
        .find(Tag::new(0x6f))
        .map_err(|source| PbocError::Tlv { what: WHAT, source })?
        .ok_or(PbocError::MissingData {
            tag: Tag::new(0x6f),
        })?;
    let mut out = Fci::default();
    let mut seen_name = false;
    for item in fci.children() {
        let item = item.map_err(|source| PbocError::Tlv { what: WHAT, source })?;
        match item.tag.value() {
            0x84 => {
                out.df_name = item.value.to_vec();
                seen_name = true;
            }
            0xa5 => parse_proprietary(item.value, &mut out)?,
            _ => {}
        }
    }
    if !seen_name {
        return Err(PbocError::MissingData {
            tag: Tag::new(0x84),
        });
    }
    Ok(out)
}

fn parse_proprietary(a5: &[u8], out: &mut Fci) -> Result<(), PbocError> {
    const WHAT: &str = "FCI proprietary template";
    for item in TlvIter::new(a5) {
        let item = item.map_err(|source| PbocError::Tlv { what: WHAT, source })?;
        match item.tag.value() {
            0x50 => out.label = Some(text(item.value)),
            0x9f12 => out.preferred_name = Some(text(item.value)),
            0x87 => out.priority = item.value.first().copied(),
            0x5f2d => out.language = Some(text(item.value)),
            0x88 => out.directory_sfi = item.value.first().copied(),
            0x9f38 => {
                out.pdol = Some(Dol::parse(item.value).map_err(|source| PbocError::Dol {
                    tag: Tag::new(0x9f38),
                    source,
                })?);
            }
            0xbf0c => {
                for sub in TlvIter::new(item.value) {
                    let sub = sub.map_err(|source| PbocError::Tlv {
                        what: "FCI issuer discretionary data",
                        source,
                    })?;
                    match sub.tag.value() {
                        0x9f4d => out.log_entry = LogEntry::from_bytes(sub.value),
                        0xdf4d => out.load_log_entry = LogEntry::from_bytes(sub.value),
                        0x61 => {
                            if let Some(e) = directory_entry(sub.value, "PPSE directory entry")? {
                                out.entries.push(e);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// SELECT by name, first or next occurrence (JR/T 0025.5 表B.23-B.25): the status word and the
/// data.
pub fn select_by_name<C: CardChannel>(
    s: &mut CardSession<C>,
    name: &[u8],
    next: bool,
) -> Result<(StatusWord, Vec<u8>), PbocError> {
    let cmd = Command::new(0x00, 0xa4, 0x04, if next { 0x02 } else { 0x00 })
        .with_data(name)
        .expect_data();
    let r = s.send(&cmd)?;
    let sw = r.sw();
    Ok((sw, r.into_data()))
}

/// The directory method (JR/T 0025.6 §7.2.4.1): `Ok(None)` means "use the AID list", `Ok(Some)`
/// the candidates found (never empty), `Err(CardBlocked)` the card answered `6A81`.
pub fn candidates_from_pse<C: CardChannel>(
    s: &mut CardSession<C>,
    supported: &[SupportedAid],
) -> Result<Option<Vec<Candidate>>, PbocError> {
    // Step 1.
    let (sw, data) = select_by_name(s, PSE, false)?;
    match sw {
        StatusWord::Success => {}
        StatusWord::FunctionNotSupported => return Err(PbocError::CardBlocked),
        _ => return Ok(None),
    }
    let Some(sfi) = parse_fci(&data)
        .ok()
        .and_then(|f| f.directory_sfi)
        .filter(|s| (1..=30).contains(s))
    else {
        return Ok(None);
    };
    // Steps 2-4: records from 1 until 6A83; any other error clears the list.
    let mut out = Vec::new();
    for record in 1..=MAX_DIRECTORY_RECORDS {
        let r = s.send(&Command::new(0x00, 0xb2, record, (sfi << 3) | 0x04).expect_data())?;
        match r.sw() {
            StatusWord::Success => {}
            StatusWord::RecordNotFound => break,
            _ => return Ok(None),
        }
        let Ok(entries) = directory_record(r.data()) else {
            return Ok(None);
        };
        for e in entries {
            if supported.iter().any(|a| a.matches(&e.aid)) {
                out.push(Candidate {
                    aid: e.aid,
                    label: e.preferred_name.or(e.label),
                    priority: e.priority,
                });
            }
        }
    }
    // Step 5.
    Ok((!out.is_empty()).then_some(out))
}

/// The ADF entries of one directory record `70 { 61 {...} ... }`.
fn directory_record(record: &[u8]) -> Result<Vec<DirectoryEntry>, PbocError> {
    const WHAT: &str = "directory record";
    let template = TlvIter::new(record)
        .find(Tag::new(0x70))
        .map_err(|source| PbocError::Tlv { what: WHAT, source })?
        .ok_or(PbocError::MissingData {
            tag: Tag::new(0x70),
        })?;
    let mut out = Vec::new();
    for item in template.children() {
        let item = item.map_err(|source| PbocError::Tlv { what: WHAT, source })?;
        if item.tag.value() == 0x61
            && let Some(e) = directory_entry(item.value, WHAT)?
        {
            out.push(e);
        }
    }
    Ok(out)
}

/// The AID list method (JR/T 0025.6 §7.2.4.2 steps 1-7).
pub fn candidates_from_aid_list<C: CardChannel>(
    s: &mut CardSession<C>,
    supported: &[SupportedAid],
) -> Result<Vec<Candidate>, PbocError> {
    let mut out: Vec<Candidate> = Vec::new();
    for terminal in supported {
        let (mut sw, mut data) = select_by_name(s, &terminal.aid, false)?;
        for _ in 0..MAX_SELECT_NEXT {
            // Step 2.
            if sw == StatusWord::FunctionNotSupported {
                return Err(PbocError::CardBlocked);
            }
            // Step 3.
            if !matches!(
                sw,
                StatusWord::Success | StatusWord::SelectedFileInvalidated
            ) {
                break;
            }
            let Ok(fci) = parse_fci(&data) else {
                break;
            };
            let name = fci.df_name.as_slice();
            if name == terminal.aid.as_slice() {
                // Step 4.
                if sw.is_success() && !out.iter().any(|c| c.aid == name) {
                    out.push(candidate_from_fci(fci));
                }
                break;
            }
            if !(name.len() > terminal.aid.len() && name.starts_with(&terminal.aid)) {
                break;
            }
            // Step 6.
            if terminal.partial_match && sw.is_success() && !out.iter().any(|c| c.aid == name) {
                out.push(candidate_from_fci(fci));
            }
            // Step 7.
            let (next_sw, next_data) = select_by_name(s, &terminal.aid, true)?;
            if !(next_sw.is_success() || next_sw.is_warning()) {
                break;
            }
            (sw, data) = (next_sw, next_data);
        }
    }
    Ok(out)
}

fn candidate_from_fci(fci: Fci) -> Candidate {
    Candidate {
        aid: fci.df_name,
        label: fci.preferred_name.or(fci.label),
        priority: fci.priority,
    }
}

/// The contactless candidates from the PPSE (JR/T 0025.12 §6.4.1, 表2). A status other than
/// `9000` or an FCI without usable entries is an error: the terminal tries another interface.
pub fn candidates_from_ppse<C: CardChannel>(
    s: &mut CardSession<C>,
    supported: &[SupportedAid],
) -> Result<Vec<Candidate>, PbocError> {
    let (sw, data) = select_by_name(s, PPSE, false)?;
    if !sw.is_success() {
        return Err(PbocError::Status {
            command: "SELECT PPSE",
            sw,
        });
    }
    let fci = parse_fci(&data)?;
    let out: Vec<Candidate> = fci
        .entries
        .into_iter()
        .filter(|e| supported.iter().any(|a| a.matches(&e.aid)))
        .map(|e| Candidate {
            aid: e.aid,
            label: e.preferred_name.or(e.label),
            priority: e.priority,
        })
        .collect();
    if out.is_empty() {
        return Err(PbocError::NoApplication);
    }
    Ok(out)
}

/// The candidate list for an interface: contact tries the PSE, then the AID list
/// (§7.2.4); contactless uses the PPSE.
pub fn build_candidate_list<C: CardChannel>(
    s: &mut CardSession<C>,
    supported: &[SupportedAid],
    interface: Interface,
) -> Result<Vec<Candidate>, PbocError> {
    let mut list = match interface {
        Interface::Contact => match candidates_from_pse(s, supported)? {
            Some(list) => list,
            None => candidates_from_aid_list(s, supported)?,
        },
        Interface::Contactless => candidates_from_ppse(s, supported)?,
    };
    order_candidates(&mut list);
    if list.is_empty() {
        return Err(PbocError::NoApplication);
    }
    Ok(list)
}

/// Sort by priority (1 first, no priority last), keeping the card's order among equals
/// (JR/T 0025.6 §7.2.5.3).
pub fn order_candidates(list: &mut [Candidate]) {
    list.sort_by_key(Candidate::rank);
}

/// Choose and SELECT the application (JR/T 0025.6 §7.2.5.1, §7.2.5.3): the first candidate
/// that needs no confirmation (any candidate if `confirmation_supported`); if the card does not
/// answer `9000` with an FCI naming it, the candidate is removed and the next one tried.
pub fn final_select<C: CardChannel>(
    s: &mut CardSession<C>,
    candidates: &mut Vec<Candidate>,
    confirmation_supported: bool,
) -> Result<SelectedApplication, PbocError> {
    loop {
        let pos = candidates
            .iter()
            .position(|c| confirmation_supported || !c.needs_confirmation())
            .ok_or(PbocError::NoApplication)?;
        let candidate = candidates.remove(pos);
        let (sw, data) = select_by_name(s, &candidate.aid, false)?;
        if !sw.is_success() {
            continue;
        }
        let Ok(fci) = parse_fci(&data) else {
            continue;
        };
        if !fci.df_name.starts_with(&candidate.aid) {
            continue;
        }
        return Ok(SelectedApplication {
            aid: fci.df_name.clone(),
            fci,
            raw_fci: data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::ReplayChannel;

    const AID: &str = "A000000333010101";

    fn session(script: &str) -> CardSession<ReplayChannel> {
        CardSession::new(ReplayChannel::parse(script).unwrap())
    }

    #[test]
    fn matching_rules() {
        let partial = SupportedAid::partial(&hex::decode("A0000003330101").unwrap());
        let exact = SupportedAid::exact(&hex::decode("A0000003330101").unwrap());
        let card = hex::decode(AID).unwrap();
        assert!(partial.matches(&card));
        assert!(!exact.matches(&card));
        assert!(exact.matches(&hex::decode("A0000003330101").unwrap()));
        assert!(!partial.matches(&hex::decode("A00000033301").unwrap()));
    }

    #[test]
    fn priorities_order_the_list() {
        let c = |p: Option<u8>, n: u8| Candidate {
            aid: vec![n],
            label: None,
            priority: p,
        };
        let mut list = vec![
            c(None, 1),
            c(Some(0x82), 2),
            c(Some(0x01), 3),
            c(Some(2), 4),
        ];
        order_candidates(&mut list);
        assert_eq!(
            list.iter().map(|c| c.aid[0]).collect::<Vec<_>>(),
            [3, 2, 4, 1]
        );
        assert!(list[1].needs_confirmation());
    }

    #[test]
    fn pse_with_one_record() {
        let script = format!(
            "> 00A404000E315041592E5359532E444446303100\n\
             < 6F15840E315041592E5359532E4444463031A503880101 9000\n\
             > 00B2010C00\n< 7016 6114 4F08{AID} 500850424F4320444542 870101 9000\n\
             > 00B2020C00\n< 6A83\n"
        );
        let mut s = session(&script);
        let list = candidates_from_pse(
            &mut s,
            &[SupportedAid::partial(
                &hex::decode("A0000003330101").unwrap(),
            )],
        )
        .unwrap()
        .unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].label.as_deref(), Some("PBOC DEB"));
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn pse_missing_blocked_or_broken() {
        let supported = [SupportedAid::partial(
            &hex::decode("A0000003330101").unwrap(),
        )];
        let mut s = session("> 00A404000E315041592E5359532E444446303100\n< 6A82\n");
        assert_eq!(candidates_from_pse(&mut s, &supported), Ok(None));
        let mut s = session("> 00A404000E315041592E5359532E444446303100\n< 6A81\n");
        assert_eq!(
            candidates_from_pse(&mut s, &supported),
            Err(PbocError::CardBlocked)
        );
        // A directory record that is not TLV: back to the AID list.
        let mut s = session(
            "> 00A404000E315041592E5359532E444446303100\n\
             < 6F15840E315041592E5359532E4444463031A503880101 9000\n\
             > 00B2010C00\n< 70FF00 9000\n",
        );
        assert_eq!(candidates_from_pse(&mut s, &supported), Ok(None));
    }

    #[test]
    fn aid_list_with_partial_selection() {
        // Terminal AID A0000003330101, card has ...0101 (blocked) and ...0102.
        let script = "> 00A4040007A000000333010100\n< 6F0A8408A000000333010101 6283\n\
                      > 00A4040207A000000333010100\n< 6F0A8408A000000333010102 9000\n\
                      > 00A4040207A000000333010100\n< 6A82\n";
        let mut s = session(script);
        let list = candidates_from_aid_list(
            &mut s,
            &[SupportedAid::partial(
                &hex::decode("A0000003330101").unwrap(),
            )],
        )
        .unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(hex::encode_upper(&list[0].aid), "A000000333010102");
        s.channel().assert_finished().unwrap();
        // 6A81 stops everything.
        let mut s = session("> 00A4040007A000000333010100\n< 6A81\n");
        assert_eq!(
            candidates_from_aid_list(
                &mut s,
                &[SupportedAid::partial(
                    &hex::decode("A0000003330101").unwrap()
                )]
            ),
            Err(PbocError::CardBlocked)
        );
    }

    #[test]
    fn final_select_drops_failing_candidates() {
        let script = format!(
            "> 00A4040008A00000033301010200\n< 6A82\n\
             > 00A4040008{AID}00\n< 6F0A8408{AID} 9000\n"
        );
        let mut s = session(&script);
        let mut list = vec![
            Candidate {
                aid: hex::decode("A000000333010102").unwrap(),
                label: None,
                priority: Some(1),
            },
            Candidate {
                aid: hex::decode(AID).unwrap(),
                label: None,
                priority: Some(2),
            },
        ];
        let app = final_select(&mut s, &mut list, false).unwrap();
        assert_eq!(hex::encode_upper(&app.aid), AID);
        assert!(list.is_empty());
        assert_eq!(
            final_select(&mut s, &mut list, false),
            Err(PbocError::NoApplication)
        );
    }
}
