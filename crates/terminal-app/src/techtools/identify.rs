//! `cardctl identify`: which applications the card holds and their versions.
//!
//! Only commands that change nothing on the card are sent: SELECT, READ RECORD, READ BINARY,
//! GET DATA and VERIFY without data (the PIN tries left, ISO/IEC 7816-4 §7.5.6). No GET
//! PROCESSING OPTIONS is sent, so the payment application's transaction counter stays as it
//! was; its version (`9F08`, JR/T 0025.5 表A.1) is looked for in the FCI, then by GET DATA,
//! then in the records of SFI 1 to 10 read in order without an AFL (JR/T 0025.5 附录 B.12
//! allows READ RECORD outside a transaction).
//!
//! Applications looked for, in this order:
//! - the social-security application (SSSE, AID `sx1.sh.社会保障`): its specification version
//!   from EF05 tag `03`, card type, card number (masked), dates, PIN tries;
//! - the third-generation PKI directory (`PKI.社会保障`) and its certificate application
//!   `SS.CERT.ADF1`, and whether its card-authentication file EF0018 is personalised;
//! - the payment system environments PSE `1PAY.SYS.DDF01` and PPSE `2PAY.SYS.DDF01` and the
//!   applications their directories list (JR/T 0025.6 §7.2.4.1, JR/T 0025.12 §6.4);
//! - the UnionPay applications `A000000333010101` (debit), `…02` (credit), `…03`
//!   (quasi-credit), `…06` (electronic cash), and any other directory entry: label, version,
//!   PAN (masked), expiry, ATC, PIN try counter, and electronic cash (JR/T 0025.13 §10.1:
//!   `9F79` readable by GET DATA means the application has it).

use card_core::apdu::{Command, HexFmt};
use card_core::channel::{CardChannel, CardSession};
use card_core::pboc::data::{Amount, Pan};
use card_core::pboc::select::{self, Fci, SupportedAid};
use card_core::status::StatusWord;
use card_core::tlv::{Tag, TlvIter};
use card_core::{SendError, mask, ssse};
use serde::Serialize;

/// The UnionPay applications looked for by name, with their labels.
pub const PBOC_AIDS: [(&[u8], &str); 4] = [
    (
        &[0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01],
        "UnionPay debit",
    ),
    (
        &[0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x02],
        "UnionPay credit",
    ),
    (
        &[0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x03],
        "UnionPay quasi-credit",
    ),
    (
        &[0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x06],
        "UnionPay electronic cash",
    ),
];

/// Detail name: expiry date (`YYYY-MM-DD`).
pub const EXPIRY_DATE: &str = "expiry date";
/// Detail name: PIN tries left (a number).
pub const PIN_TRIES_LEFT: &str = "PIN tries left";
/// Detail name: PIN state when not counting (`blocked`, `verified in this session`).
pub const PIN_STATE: &str = "PIN";
/// Detail name: the PKI application's card-authentication file.
pub const PKI_CERTIFICATES: &str = "certificates (EF0018)";

/// Most records read per SFI while looking for `9F08` without an AFL.
const MAX_SCAN_RECORDS: u8 = 16;

/// Errors of [`identify`]: only the transport; what the card answers is reported, not failed on.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyError {
    /// The exchange with the card failed.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// What kind of application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The social-security application.
    Ssse,
    /// The third-generation PKI application.
    Pki,
    /// A PBOC 3.0 debit/credit (or electronic cash) application.
    Pboc,
}

impl Kind {
    /// Upper-case short name.
    pub const fn short(self) -> &'static str {
        match self {
            Self::Ssse => "SSSE",
            Self::Pki => "PKI",
            Self::Pboc => "PBOC",
        }
    }
}

/// One fact about an application, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    /// What.
    pub name: String,
    /// Its value, masked if personal and not revealed.
    pub value: String,
}

/// Electronic cash in a payment application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElectronicCash {
    /// Balance `9F79`, as yuan with two decimals, if revealed.
    pub balance: Option<String>,
    /// Balance limit `9F77`.
    pub balance_limit: Option<String>,
    /// Single transaction limit `9F78`.
    pub single_transaction_limit: Option<String>,
    /// Reset threshold `9F6D`.
    pub reset_threshold: Option<String>,
}

/// One application found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Application {
    /// Kind.
    pub kind: Kind,
    /// What it is, for people.
    pub label: String,
    /// AID (hex).
    pub aid: String,
    /// Version: SSSE specification version, PBOC application version number `9F08`.
    pub version: Option<String>,
    /// Where the version came from.
    pub version_source: Option<String>,
    /// Electronic cash, for payment applications that have it.
    pub ec: Option<ElectronicCash>,
    /// Further facts.
    pub details: Vec<Detail>,
}

impl Application {
    fn detail(&mut self, name: &str, value: impl Into<String>) {
        self.details.push(Detail {
            name: name.to_string(),
            value: value.into(),
        });
    }
}

/// A payment system directory (PSE or PPSE) and the applications it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directory {
    /// `1PAY.SYS.DDF01` or `2PAY.SYS.DDF01`.
    pub name: String,
    /// Entries: AID (hex) and label.
    pub entries: Vec<Detail>,
}

/// What [`identify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identification {
    /// The applications, in the order looked for.
    pub applications: Vec<Application>,
    /// The payment system directories present.
    pub directories: Vec<Directory>,
    /// Things a technician should know (answers that were not understood).
    pub notes: Vec<String>,
}

impl Identification {
    /// The value of a detail of the first application of a kind.
    pub fn detail(&self, kind: Kind, name: &str) -> Option<&str> {
        self.of(kind)
            .next()?
            .details
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }

    /// The applications of a kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Application> {
        self.applications.iter().filter(move |a| a.kind == kind)
    }

    /// Lines for people, as `cardctl identify` prints them.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.applications.is_empty() {
            out.push("no known application found".to_string());
        }
        for app in &self.applications {
            let version = app
                .version
                .as_deref()
                .map(|v| format!("  version {v}"))
                .unwrap_or_default();
            out.push(format!(
                "{:<5} {}  AID {}{version}",
                app.kind.short(),
                app.label,
                app.aid
            ));
            if let Some(src) = &app.version_source {
                out.push(format!("      version from: {src}"));
            }
            for d in &app.details {
                out.push(format!("      {}: {}", d.name, d.value));
            }
            if let Some(ec) = &app.ec {
                out.push(format!(
                    "      electronic cash: yes, balance {}",
                    ec.balance
                        .as_deref()
                        .unwrap_or("hidden (--reveal shows it)")
                ));
                let limits = [
                    ("balance limit", &ec.balance_limit),
                    ("single transaction limit", &ec.single_transaction_limit),
                    ("reset threshold", &ec.reset_threshold),
                ];
                for (name, value) in limits {
                    if let Some(v) = value {
                        out.push(format!("        {name}: {v}"));
                    }
                }
            } else if app.kind == Kind::Pboc {
                out.push("      electronic cash: no (9F79 not readable)".to_string());
            }
        }
        for dir in &self.directories {
            out.push(format!("DIR   {}", dir.name));
            for e in &dir.entries {
                out.push(format!("      {}  {}", e.name, e.value));
            }
        }
        for n in &self.notes {
            out.push(format!("note: {n}"));
        }
        out
    }
}

fn select_name<C: CardChannel>(
    s: &mut CardSession<C>,
    name: &[u8],
) -> Result<(StatusWord, Vec<u8>), SendError> {
    let r = s.send(
        &Command::new(0x00, 0xa4, 0x04, 0x00)
            .with_data(name)
            .expect_data(),
    )?;
    Ok((r.sw(), r.into_data()))
}

/// Yuan with two decimals.
pub fn yuan(amount: Amount) -> String {
    let fen = amount.minor_units();
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// Identify the applications of the card. `reveal` shows personal data (card number, PAN,
/// electronic cash balance) in clear.
pub fn identify<C: CardChannel>(
    s: &mut CardSession<C>,
    reveal: bool,
) -> Result<Identification, IdentifyError> {
    let mut found = Identification {
        applications: Vec::new(),
        directories: Vec::new(),
        notes: Vec::new(),
    };
    identify_ssse(s, reveal, &mut found)?;
    identify_pki(s, &mut found)?;
    // The directories, then every payment application they or the known list name.
    let everything = [SupportedAid::partial(&[])];
    let mut aids: Vec<(Vec<u8>, String)> = PBOC_AIDS
        .iter()
        .map(|(aid, label)| (aid.to_vec(), (*label).to_string()))
        .collect();
    for (name, ppse) in [(select::PSE, false), (select::PPSE, true)] {
        let (sw, data) = select_name(s, name)?;
        if !sw.is_success() {
            continue;
        }
        let entries = if ppse {
            select::parse_fci(&data)
                .map(|f| f.entries)
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.aid, e.preferred_name.or(e.label)))
                .collect::<Vec<_>>()
        } else {
            // candidates_from_pse SELECTs the PSE again and reads its directory records.
            match select::candidates_from_pse(s, &everything) {
                Ok(list) => list
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| (c.aid, c.label))
                    .collect(),
                Err(e) => {
                    found.notes.push(format!("PSE directory: {e}"));
                    Vec::new()
                }
            }
        };
        for (aid, label) in &entries {
            if !aids.iter().any(|(a, _)| a == aid) {
                aids.push((
                    aid.clone(),
                    label
                        .clone()
                        .unwrap_or_else(|| "payment application".into()),
                ));
            }
        }
        found.directories.push(Directory {
            name: String::from_utf8_lossy(name).into_owned(),
            entries: entries
                .into_iter()
                .map(|(aid, label)| Detail {
                    name: HexFmt(&aid).to_string(),
                    value: label.unwrap_or_default(),
                })
                .collect(),
        });
    }
    for (aid, label) in aids {
        identify_pboc(s, &aid, &label, reveal, &mut found)?;
    }
    Ok(found)
}

fn identify_ssse<C: CardChannel>(
    s: &mut CardSession<C>,
    reveal: bool,
    found: &mut Identification,
) -> Result<(), IdentifyError> {
    let (sw, _fci) = select_name(s, &ssse::AID)?;
    if !(sw.is_success() || sw == StatusWord::SelectedFileInvalidated) {
        return Ok(());
    }
    let mut app = Application {
        kind: Kind::Ssse,
        label: "social-security application (社会保障应用)".into(),
        aid: HexFmt(&ssse::AID).to_string(),
        version: None,
        version_source: None,
        ec: None,
        details: Vec::new(),
    };
    if !sw.is_success() {
        app.detail("state", format!("blocked ({sw})"));
        found.applications.push(app);
        return Ok(());
    }
    let ef05 = ssse::read_records(
        s,
        "EF05",
        ssse::SFI_EF05,
        &ssse::records::EF05_TAGS,
        &[],
        ssse::ReadStrategy::AllRecords,
    );
    match ef05 {
        Ok(set) => match ssse::records::CardIdentification::from_records(&set) {
            Ok(card) => {
                app.version = Some(card.spec_version.clone());
                app.version_source = Some("EF05 tag 03 (规范版本)".into());
                app.detail("card type", card.card_type.clone());
                app.detail(
                    "card number",
                    if reveal {
                        card.card_number.reveal().to_string()
                    } else {
                        card.card_number.to_string()
                    },
                );
                app.detail("issue date", card.issue_date.to_string());
                app.detail(EXPIRY_DATE, card.expiry_date.to_string());
                if let Some(region) = card.region_code() {
                    app.detail("region", region);
                }
            }
            Err(e) => found.notes.push(format!("SSSE EF05: {e}")),
        },
        Err(ssse::SsseError::Send(e)) => return Err(e.into()),
        Err(e) => found.notes.push(format!("SSSE EF05: {e}")),
    }
    match ssse::pin_tries_left(s) {
        Ok(Some(0)) => app.detail(PIN_STATE, "blocked"),
        Ok(Some(n)) => app.detail(PIN_TRIES_LEFT, n.to_string()),
        Ok(None) => app.detail(PIN_STATE, "verified in this session"),
        Err(ssse::SsseError::Send(e)) => return Err(e.into()),
        Err(e) => found.notes.push(format!("SSSE PIN status: {e}")),
    }
    let (sw, _) = select_name(s, &ssse::DF04_AID)?;
    app.detail(
        "DF04 (medical)",
        if sw.is_success() {
            "present".to_string()
        } else {
            format!("not selectable ({sw})")
        },
    );
    found.applications.push(app);
    Ok(())
}

fn identify_pki<C: CardChannel>(
    s: &mut CardSession<C>,
    found: &mut Identification,
) -> Result<(), IdentifyError> {
    let (ddf_sw, _) = select_name(s, &ssse::PKI_DDF_AID)?;
    if !ddf_sw.is_success() {
        return Ok(());
    }
    let mut app = Application {
        kind: Kind::Pki,
        label: "PKI application (PKI.社会保障 / SS.CERT.ADF1)".into(),
        aid: HexFmt(&ssse::PKI_ADF_AID).to_string(),
        version: None,
        version_source: None,
        ec: None,
        details: Vec::new(),
    };
    app.detail("DDF", HexFmt(&ssse::PKI_DDF_AID).to_string());
    let (adf_sw, _) = select_name(s, &ssse::PKI_ADF_AID)?;
    if adf_sw.is_success() {
        // READ BINARY of EF0018 by SFI: the CA index and the certificates once personalised.
        let r =
            s.send(&Command::new(0x00, 0xb0, 0x80 | ssse::SFI_PKI_AUTH_DATA, 0x00).expect_data())?;
        let personalised = r.is_success() && r.data().iter().any(|&b| b != 0 && b != 0xff);
        app.detail(
            PKI_CERTIFICATES,
            if personalised {
                format!("present ({} bytes read)", r.data().len())
            } else if r.is_success() || r.sw() == StatusWord::WrongP1P2 {
                // 6B00 at offset 0: the file is empty (ISO/IEC 7816-4 §7.2.3).
                "not personalised".to_string()
            } else {
                format!("not readable ({})", r.sw())
            },
        );
    } else {
        app.detail("certificate application", format!("missing ({adf_sw})"));
    }
    found.applications.push(app);
    Ok(())
}

/// What a records scan without an AFL found.
#[derive(Default)]
struct Scan {
    version: Option<(Vec<u8>, String)>,
    pan: Option<Pan>,
    expiry: Option<Vec<u8>>,
}

fn scan_records<C: CardChannel>(s: &mut CardSession<C>) -> Result<Scan, SendError> {
    let mut scan = Scan::default();
    'files: for sfi in 1..=10u8 {
        for record in 1..=MAX_SCAN_RECORDS {
            let r = s.send(&card_core::pboc::records::read_record_command(sfi, record))?;
            if !r.is_success() {
                continue 'files;
            }
            let Ok(Some(t)) = TlvIter::new(r.data()).find(Tag::new(0x70)) else {
                continue;
            };
            for item in t.children().flatten() {
                match item.tag.value() {
                    0x9f08 if scan.version.is_none() => {
                        scan.version =
                            Some((item.value.to_vec(), format!("record {record} of SFI {sfi}")));
                    }
                    0x5a if scan.pan.is_none() => scan.pan = Pan::from_bcd(item.value),
                    0x5f24 if scan.expiry.is_none() => scan.expiry = Some(item.value.to_vec()),
                    _ => {}
                }
            }
            if scan.version.is_some() && scan.pan.is_some() {
                break 'files;
            }
        }
    }
    Ok(scan)
}

/// The application version number `9F08` for people: `0030 (PBOC 3.0)`.
pub fn pboc_version_text(v: &[u8]) -> String {
    let known = match v {
        [0x00, 0x30] => " (PBOC 3.0)",
        [0x00, 0x20] => " (PBOC 2.0)",
        _ => "",
    };
    format!("{}{known}", HexFmt(v))
}

fn identify_pboc<C: CardChannel>(
    s: &mut CardSession<C>,
    aid: &[u8],
    label: &str,
    reveal: bool,
    found: &mut Identification,
) -> Result<(), IdentifyError> {
    let (sw, data) = select_name(s, aid)?;
    if !(sw.is_success() || sw == StatusWord::SelectedFileInvalidated) {
        return Ok(());
    }
    let fci: Option<Fci> = match select::parse_fci(&data) {
        Ok(f) if f.df_name.starts_with(aid) => Some(f),
        Ok(_) => return Ok(()),
        Err(e) => {
            found
                .notes
                .push(format!("FCI of {} not understood: {e}", HexFmt(aid)));
            None
        }
    };
    let mut app = Application {
        kind: Kind::Pboc,
        label: label.to_string(),
        aid: HexFmt(aid).to_string(),
        version: None,
        version_source: None,
        ec: None,
        details: Vec::new(),
    };
    if sw != StatusWord::Success {
        app.detail("state", format!("blocked ({sw})"));
    }
    if let Some(f) = &fci {
        if let Some(l) = &f.label {
            app.detail("application label", l.clone());
        }
        if let Some(p) = &f.preferred_name {
            app.detail("preferred name", p.clone());
        }
        if let Some(p) = f.priority {
            app.detail("priority", format!("{p:02X}"));
        }
        if let Some(pdol) = &f.pdol {
            let sm = pdol.contains(Tag::new(0xdf69));
            app.detail(
                "PDOL",
                format!(
                    "{} entries{}",
                    pdol.entries().len(),
                    if sm {
                        ", asks for DF69 (SM algorithms supported)"
                    } else {
                        ""
                    }
                ),
            );
        }
        if let Some(l) = f.log_entry {
            app.detail(
                "transaction log",
                format!("SFI {}, {} records", l.sfi, l.records),
            );
        }
        if let Some(l) = f.load_log_entry {
            app.detail("load log", format!("SFI {}, {} records", l.sfi, l.records));
        }
    }
    // 9F08: FCI, GET DATA, records.
    let in_fci = TlvIter::new(&data)
        .find_deep(Tag::new(0x9f08))
        .ok()
        .flatten()
        .map(|t| t.value.to_vec());
    let scan = scan_records(s)?;
    let version = match in_fci {
        Some(v) => Some((v, "FCI".to_string())),
        None => match card_core::pboc::risk::get_data(s, 0x9f08) {
            Ok(Some(v)) => Some((v, "GET DATA 9F08".to_string())),
            Ok(None) => scan.version.clone(),
            Err(card_core::pboc::PbocError::Send(e)) => return Err(e.into()),
            Err(_) => scan.version.clone(),
        },
    };
    if let Some((v, src)) = version {
        app.version = Some(pboc_version_text(&v));
        app.version_source = Some(src);
    }
    if let Some(pan) = &scan.pan {
        app.detail(
            "PAN",
            if reveal {
                pan.reveal().to_string()
            } else {
                pan.masked()
            },
        );
    }
    if let Some([y, m, d]) = scan.expiry.as_deref() {
        app.detail(EXPIRY_DATE, format!("20{y:02X}-{m:02X}-{d:02X}"));
    }
    match card_core::pboc::risk::get_data(s, 0x9f36) {
        Ok(Some(v)) => app.detail("ATC", HexFmt(&v).to_string()),
        Err(card_core::pboc::PbocError::Send(e)) => return Err(e.into()),
        _ => {}
    }
    match card_core::pboc::risk::get_data(s, 0x9f17) {
        Ok(Some(v)) => app.detail(
            "PIN try counter",
            v.first().map_or_else(String::new, |n| n.to_string()),
        ),
        Err(card_core::pboc::PbocError::Send(e)) => return Err(e.into()),
        _ => {}
    }
    let amount = |s: &mut CardSession<C>, tag: u16| -> Result<Option<String>, IdentifyError> {
        match card_core::pboc::risk::get_amount(s, tag) {
            Ok(a) => Ok(a.map(yuan)),
            Err(card_core::pboc::PbocError::Send(e)) => Err(e.into()),
            Err(_) => Ok(None),
        }
    };
    if let Some(balance) = amount(s, 0x9f79)? {
        app.ec = Some(ElectronicCash {
            balance: reveal.then_some(balance),
            balance_limit: amount(s, 0x9f77)?,
            single_transaction_limit: amount(s, 0x9f78)?,
            reset_threshold: amount(s, 0x9f6d)?,
        });
    }
    found.applications.push(app);
    Ok(())
}

/// Mask helper shared with the dump: a card number, ID number or name by its kind.
pub fn mask_text(kind: MaskKind, text: &str) -> String {
    match kind {
        MaskKind::Name => mask::mask_name(text),
        MaskKind::IdNumber => mask::mask_id_number(text),
        MaskKind::CardNumber => mask::mask_card_number(text),
        MaskKind::Pan => mask::mask_middle(text, 6, 4),
        MaskKind::Date => text.get(..4).map_or_else(
            || "*".repeat(text.chars().count()),
            |y| format!("{y}-**-**"),
        ),
        MaskKind::Place => format!("{}***", text.get(..3).unwrap_or_default()),
        MaskKind::Whole => format!("[{} characters masked]", text.chars().count()),
    }
}

/// How a personal value is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// A person's name: first character (and last of three or more).
    Name,
    /// An 18-character ID number: first 3 and last 4.
    IdNumber,
    /// The 9-character social-security card number: first and last.
    CardNumber,
    /// A PAN: first 6 and last 4.
    Pan,
    /// A date: the year only.
    Date,
    /// A birthplace code: the province.
    Place,
    /// Nothing kept but the length.
    Whole,
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_tests::SoftCard;

    fn card(name: &str) -> CardSession<SoftCard> {
        let image = firmware_tests::Profile::embedded(name)
            .unwrap()
            .build()
            .unwrap();
        CardSession::new(SoftCard::in_memory(image))
    }

    #[test]
    fn zhangsan_has_ssse_pki_and_pboc_with_ec() {
        let mut s = card("zhangsan");
        let id = identify(&mut s, false).unwrap();
        let ssse: Vec<_> = id.of(Kind::Ssse).collect();
        assert_eq!(ssse.len(), 1);
        assert_eq!(ssse[0].version.as_deref(), Some("3.00"));
        assert!(
            ssse[0].details.contains(&Detail {
                name: "card number".into(),
                value: "A*******1".into()
            }),
            "{:?}",
            ssse[0].details
        );
        assert_eq!(id.of(Kind::Pki).count(), 1);
        let pboc: Vec<_> = id.of(Kind::Pboc).collect();
        assert_eq!(pboc.len(), 1, "{pboc:?}");
        assert_eq!(pboc[0].aid, "A000000333010101");
        assert_eq!(pboc[0].version.as_deref(), Some("0030 (PBOC 3.0)"));
        assert_eq!(pboc[0].version_source.as_deref(), Some("record 1 of SFI 2"));
        let ec = pboc[0].ec.as_ref().unwrap();
        assert_eq!(ec.balance, None);
        assert_eq!(ec.balance_limit.as_deref(), Some("1000.00"));
        let text = id.lines().join("\n");
        assert!(text.contains("PAN: 623058*********0013"), "{text}");
        assert!(!text.contains("6230580000000000013"), "{text}");
        assert!(text.contains("DIR   1PAY.SYS.DDF01"), "{text}");
        let id = identify(&mut s, true).unwrap();
        let text = id.lines().join("\n");
        assert!(
            text.contains("electronic cash: yes, balance 500.00"),
            "{text}"
        );
        assert!(text.contains("PAN: 6230580000000000013"), "{text}");
    }

    #[test]
    fn a_card_without_pboc_has_no_payment_application() {
        let mut s = card("expired");
        let id = identify(&mut s, false).unwrap();
        assert_eq!(id.of(Kind::Ssse).count(), 1);
        assert_eq!(id.of(Kind::Pboc).count(), 0, "{:?}", id.lines());
    }
}
