//! `cardctl dump`: the TLV tree of what the card gives, with the tag names of card-core's
//! dictionary ([`card_core::tags`]).
//!
//! Sections, in order: the SSSE application (FCI, EF05 and EF06 records, DF04), the PKI
//! directory and application (FCIs, EF0012 and EF0018), the PSE and its directory records, the
//! PPSE, and each payment application the directories or the known AID list name: FCI, GET
//! PROCESSING OPTIONS and the records its AFL names (JR/T 0025.6 §7.3-§7.4), and the GET DATA
//! objects of JR/T 0025.5 附录 B.7 and JR/T 0025.13 §10.1. GET PROCESSING OPTIONS starts a
//! transaction the dump never finishes: a real card counts it in its ATC (`9F36`) as a balance
//! inquiry would. With `no_gpo` the records are read without an AFL instead, SFI 1 to 10 from
//! record 1 until the card says there are no more.
//!
//! Personal data is masked unless `reveal`: the SSSE card number, social-security number,
//! name, birthplace and birth date; the PAN, the tracks, the cardholder name and ID number, the
//! ICC certificate (it carries the PAN), and the electronic cash balance. Data that is not TLV
//! is shown only with `reveal`.

use card_core::apdu::{Command, HexFmt};
use card_core::channel::{CardChannel, CardSession};
use card_core::pboc::config::{TerminalConfig, TransactionParams, transaction_type};
use card_core::pboc::data::{Amount, Date, Pan, Time};
use card_core::pboc::dol::Dol;
use card_core::pboc::gpo;
use card_core::pboc::select;
use card_core::ssse;
use card_core::status::StatusWord;
use card_core::tags::{self, Context, Format};
use card_core::tlv::{Tag, Tlv, Value};
use card_core::{Response, SendError};
use serde::Serialize;

use super::identify::{MaskKind, PBOC_AIDS, mask_text};

/// Most records read per file without an AFL, and from a PSE directory.
const MAX_RECORDS: u8 = 16;
/// Most records read by an AFL.
const MAX_AFL_RECORDS: usize = 64;

/// The GET DATA objects asked for in a payment application.
pub const GET_DATA_TAGS: [u16; 9] = [
    0x9f79, 0x9f77, 0x9f78, 0x9f6d, 0x9f36, 0x9f13, 0x9f17, 0x9f4f, 0xdf4f,
];

/// Errors of [`dump`]: only the transport.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// The exchange with the card failed.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Options.
#[derive(Debug, Clone, Copy, Default)]
pub struct DumpOptions {
    /// Show personal data in clear.
    pub reveal: bool,
    /// Read payment records without GET PROCESSING OPTIONS.
    pub no_gpo: bool,
    /// Date and time for the PDOL of GET PROCESSING OPTIONS (`9A`, `9F21`); without them the
    /// records are read without an AFL.
    pub clock: Option<(Date, Time)>,
}

/// One data object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Tag (hex).
    pub tag: String,
    /// English name from the dictionary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'static str>,
    /// Chinese name from the dictionary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_zh: Option<&'static str>,
    /// Length of the value.
    pub len: usize,
    /// The value for people (primitive objects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether `value` is masked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
    /// Children (constructed objects).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

/// One command's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Application and what was read.
    pub title: String,
    /// The command (hex).
    pub command: String,
    /// The status word with its meaning.
    pub sw: String,
    /// The objects of the answer.
    pub objects: Vec<Node>,
    /// Data that is not TLV: hex with `reveal`, else its length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// The whole dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dump {
    /// Sections in the order read.
    pub sections: Vec<Section>,
    /// Whether personal data is shown.
    pub revealed: bool,
}

impl Dump {
    /// The dump as indented text.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.sections {
            out.push(format!("== {}", s.title));
            out.push(format!("   > {}  < {}", s.command, s.sw));
            for n in &s.objects {
                node_lines(n, 1, &mut out);
            }
            if let Some(raw) = &s.raw {
                out.push(format!("   {raw}"));
            }
        }
        if !self.revealed {
            out.push("(personal data masked; --reveal shows it)".to_string());
        }
        out
    }

    /// Every node, depth first.
    pub fn nodes(&self) -> Vec<&Node> {
        fn walk<'a>(n: &'a Node, out: &mut Vec<&'a Node>) {
            out.push(n);
            for c in &n.children {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        for s in &self.sections {
            for n in &s.objects {
                walk(n, &mut out);
            }
        }
        out
    }
}

fn node_lines(n: &Node, depth: usize, out: &mut Vec<String>) {
    let indent = "   ".repeat(depth);
    let name = match (n.name, n.name_zh) {
        (Some(en), Some(zh)) => format!(" {en} ({zh})"),
        (Some(en), None) => format!(" {en}"),
        _ => String::new(),
    };
    match &n.value {
        Some(v) => out.push(format!(
            "{indent}{}{name} [{}]: {v}{}",
            n.tag,
            n.len,
            if n.masked { "  (masked)" } else { "" }
        )),
        None => out.push(format!("{indent}{}{name} [{}]", n.tag, n.len)),
    }
    for c in &n.children {
        node_lines(c, depth + 1, out);
    }
}

/// How a personal tag is masked, by context.
fn personal(context: Context, tag: u32) -> Option<MaskKind> {
    match (context, tag) {
        (Context::Ssse, 0x07) => Some(MaskKind::CardNumber),
        (Context::Ssse, 0x08) => Some(MaskKind::IdNumber),
        (Context::Ssse, 0x09 | 0x4e) => Some(MaskKind::Name),
        (Context::Ssse, 0x0c) => Some(MaskKind::Place),
        (Context::Ssse, 0x0d) => Some(MaskKind::Date),
        (Context::Emv, 0x5a) => Some(MaskKind::Pan),
        (Context::Emv, 0x5f20 | 0x9f0b) => Some(MaskKind::Name),
        // Cardholder ID number and its type's companion (JR/T 0025.5 表A.1 9F61).
        (Context::Emv, 0x9f61) => Some(MaskKind::IdNumber),
        // Tracks, their discretionary data, the ICC certificate (carries the PAN), the EC
        // balance.
        (Context::Emv, 0x56 | 0x57 | 0x9f6b | 0x9f1f | 0x9f20 | 0x9f46 | 0x9f79 | 0x9f5d) => {
            Some(MaskKind::Whole)
        }
        _ => None,
    }
}

fn text_of(bytes: &[u8]) -> Option<String> {
    let trimmed: &[u8] = {
        let end = bytes
            .iter()
            .rposition(|&b| b != 0x00 && b != 0x20 && b != 0xff)
            .map_or(0, |i| i + 1);
        bytes.get(..end).unwrap_or_default()
    };
    trimmed
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b))
        .then(|| trimmed.iter().map(|&b| char::from(b)).collect())
}

fn gbk_of(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0x00 && b != 0x20 && b != 0xff)
        .map_or(0, |i| i + 1);
    let (text, _, bad) = encoding_rs::GBK.decode(bytes.get(..end).unwrap_or_default());
    (!bad).then(|| text.into_owned())
}

fn dol_text(bytes: &[u8]) -> Option<String> {
    let dol = Dol::parse(bytes).ok()?;
    Some(
        dol.entries()
            .iter()
            .map(|e| format!("{}:{}", e.tag, e.len))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The value of a primitive object for people, in its dictionary format.
fn render(context: Context, tag: Tag, value: &[u8]) -> String {
    let format = tags::lookup(context, tag).map(|i| i.format);
    let quoted = |t: String| format!("\"{t}\"");
    match format {
        Some(Format::Alphanumeric | Format::AlphanumericSpecial) => text_of(value)
            .map(quoted)
            .unwrap_or_else(|| HexFmt(value).to_string()),
        Some(Format::Gbk) => gbk_of(value)
            .map(quoted)
            .unwrap_or_else(|| HexFmt(value).to_string()),
        Some(Format::Dol) => dol_text(value).unwrap_or_else(|| HexFmt(value).to_string()),
        Some(Format::Date) => match value {
            [y, m, d] => format!("{} (20{y:02X}-{m:02X}-{d:02X})", HexFmt(value)),
            [c, y, m, d] => format!("{} ({c:02X}{y:02X}-{m:02X}-{d:02X})", HexFmt(value)),
            _ => HexFmt(value).to_string(),
        },
        _ => HexFmt(value).to_string(),
    }
}

/// The masked value: decoded the way the field is written, then masked.
fn render_masked(context: Context, tag: Tag, kind: MaskKind, value: &[u8]) -> String {
    let clear = match (context, tag.value()) {
        (Context::Emv, 0x5a) => Pan::from_bcd(value).map(|p| p.reveal().to_string()),
        (Context::Ssse, 0x0d) => Some(HexFmt(value).to_string()),
        (Context::Ssse, 0x0c) => Some(HexFmt(value).to_string()),
        (Context::Ssse, 0x09 | 0x4e) => gbk_of(value),
        _ if kind == MaskKind::Whole => None,
        _ => text_of(value),
    };
    match clear {
        Some(t) => mask_text(kind, &t),
        None => format!("[{} bytes masked]", value.len()),
    }
}

fn node(context: Context, t: &Tlv, reveal: bool) -> Node {
    let tag = t.tag();
    let info = tags::lookup(context, tag);
    let mut n = Node {
        tag: format!("{tag}"),
        name: info.map(|i| i.name),
        name_zh: info.map(|i| i.name_zh),
        len: 0,
        value: None,
        masked: false,
        children: Vec::new(),
    };
    match t.value() {
        Value::Constructed(children) => {
            n.len = value_len(t);
            n.children = children.iter().map(|c| node(context, c, reveal)).collect();
        }
        Value::Primitive(bytes) => {
            n.len = bytes.len();
            match personal(context, tag.value()) {
                Some(kind) if !reveal => {
                    n.value = Some(render_masked(context, tag, kind, bytes));
                    n.masked = true;
                }
                _ => n.value = Some(render(context, tag, bytes)),
            }
        }
    }
    n
}

/// Value length of a constructed object as encoded (for the header).
fn value_len(t: &Tlv) -> usize {
    match t.value() {
        Value::Primitive(b) => b.len(),
        Value::Constructed(c) => c.iter().map(Tlv::encoded_len).sum(),
    }
}

struct Dumper<'a, C> {
    s: &'a mut CardSession<C>,
    opts: DumpOptions,
    out: Vec<Section>,
}

impl<C: CardChannel> Dumper<'_, C> {
    /// Send a command and record its answer as a section; returns the response.
    fn read(
        &mut self,
        title: impl Into<String>,
        context: Context,
        cmd: &Command,
    ) -> Result<Response, SendError> {
        let r = self.s.send(cmd)?;
        self.record(title, context, cmd, &r);
        Ok(r)
    }

    /// Send a command and record its answer only if it is `9000` (or, for SELECT, `6283`).
    fn read_if_ok(
        &mut self,
        title: impl Into<String>,
        context: Context,
        cmd: &Command,
    ) -> Result<Response, SendError> {
        let r = self.s.send(cmd)?;
        if r.is_success() || (cmd.ins == 0xa4 && r.sw() == StatusWord::SelectedFileInvalidated) {
            self.record(title, context, cmd, &r);
        }
        Ok(r)
    }

    fn record(&mut self, title: impl Into<String>, context: Context, cmd: &Command, r: &Response) {
        let bytes = cmd.to_bytes().unwrap_or_default();
        let mut section = Section {
            title: title.into(),
            command: HexFmt(&bytes).to_string(),
            sw: r.sw().to_string(),
            objects: Vec::new(),
            raw: None,
        };
        if !r.data().is_empty() {
            match Tlv::parse_all(r.data()) {
                Ok(list) => {
                    section.objects = list
                        .iter()
                        .map(|t| node(context, t, self.opts.reveal))
                        .collect();
                }
                Err(_) if self.opts.reveal => {
                    section.raw = Some(format!("not TLV: {}", HexFmt(r.data())));
                }
                Err(_) => {
                    section.raw = Some(format!(
                        "not TLV: {} bytes (--reveal shows them)",
                        r.data().len()
                    ));
                }
            }
        }
        self.out.push(section);
    }

    fn select(&mut self, title: impl Into<String>, name: &[u8]) -> Result<Response, SendError> {
        self.read(
            title,
            Context::Emv,
            &Command::new(0x00, 0xa4, 0x04, 0x00)
                .with_data(name)
                .expect_data(),
        )
    }

    fn ssse(&mut self) -> Result<(), SendError> {
        let r = self.select("SSSE: SELECT 社会保障应用", &ssse::AID)?;
        if !r.is_success() {
            return Ok(());
        }
        for (sfi, file) in [
            (ssse::SFI_EF05, "EF05 card identification"),
            (ssse::SFI_EF06, "EF06 cardholder"),
        ] {
            let r = self.read(
                format!("SSSE: {file}, all records"),
                Context::Ssse,
                &Command::new(0x00, 0xb2, 0x01, (sfi << 3) | 0b101)
                    .expect_data()
                    .sensitive_response(),
            )?;
            if r.sw() == StatusWord::IncorrectP1P2 || r.sw() == StatusWord::FunctionNotSupported {
                // No "all records" mode: by tag.
                let tags: &[u8] = if sfi == ssse::SFI_EF05 {
                    &ssse::records::EF05_TAGS
                } else {
                    &ssse::records::EF06_TAGS
                };
                for &tag in tags {
                    self.read(
                        format!("SSSE: {file}, record {tag:02X}"),
                        Context::Ssse,
                        &Command::new(0x00, 0xb2, tag, sfi << 3)
                            .expect_data()
                            .sensitive_response(),
                    )?;
                }
            }
        }
        let r = self.select("SSSE: SELECT DF04 (medical)", &ssse::DF04_AID)?;
        if r.is_success() {
            self.read(
                "SSSE: DF04/EF05 medical basic information, all records",
                Context::Ssse,
                &Command::new(0x00, 0xb2, 0x01, (ssse::SFI_EF05 << 3) | 0b101)
                    .expect_data()
                    .sensitive_response(),
            )?;
        }
        Ok(())
    }

    fn pki(&mut self) -> Result<(), SendError> {
        let r = self.select("PKI: SELECT PKI.社会保障", &ssse::PKI_DDF_AID)?;
        if !r.is_success() {
            return Ok(());
        }
        let r = self.select("PKI: SELECT SS.CERT.ADF1", &ssse::PKI_ADF_AID)?;
        if !r.is_success() {
            return Ok(());
        }
        for (sfi, what) in [
            (ssse::SFI_PKI_PUBLIC_KEY, "EF0012 signing public key"),
            (ssse::SFI_PKI_AUTH_DATA, "EF0018 card authentication data"),
        ] {
            self.read(
                format!("PKI: {what}"),
                Context::Emv,
                &Command::new(0x00, 0xb0, 0x80 | sfi, 0x00)
                    .expect_data()
                    .sensitive_response(),
            )?;
        }
        Ok(())
    }

    /// The directories; returns the AIDs they list.
    fn directories(&mut self) -> Result<Vec<Vec<u8>>, SendError> {
        let mut aids = Vec::new();
        let r = self.select("PSE: SELECT 1PAY.SYS.DDF01", select::PSE)?;
        if r.is_success() {
            let sfi = select::parse_fci(r.data())
                .ok()
                .and_then(|f| f.directory_sfi)
                .filter(|s| (1..=30).contains(s));
            if let Some(sfi) = sfi {
                for record in 1..=MAX_RECORDS {
                    let r = self.read(
                        format!("PSE: directory record {record} (SFI {sfi})"),
                        Context::Emv,
                        &card_core::pboc::records::read_record_command(sfi, record),
                    )?;
                    if !r.is_success() {
                        break;
                    }
                    if let Ok(list) = Tlv::parse_all(r.data()) {
                        for t in &list {
                            collect_aids(t, &mut aids);
                        }
                    }
                }
            }
        }
        let r = self.select("PPSE: SELECT 2PAY.SYS.DDF01", select::PPSE)?;
        if r.is_success()
            && let Ok(f) = select::parse_fci(r.data())
        {
            aids.extend(f.entries.into_iter().map(|e| e.aid));
        }
        Ok(aids)
    }

    fn payment(&mut self, aid: &[u8], label: &str) -> Result<(), SendError> {
        let who = format!("{label} {}", HexFmt(aid));
        let cmd = Command::new(0x00, 0xa4, 0x04, 0x00)
            .with_data(aid)
            .expect_data();
        // Absent applications leave no section.
        let r = self.read_if_ok(format!("{who}: SELECT"), Context::Emv, &cmd)?;
        if !(r.is_success() || r.sw() == StatusWord::SelectedFileInvalidated) {
            return Ok(());
        }
        let fci = select::parse_fci(r.data()).ok();
        let mut read_by_afl = false;
        if let (false, Some((date, time))) = (self.opts.no_gpo, self.opts.clock) {
            let mut params = TransactionParams::purchase(Amount::ZERO, date, time, [0; 4]);
            params.transaction_type = transaction_type::INQUIRY;
            params.allow_ec = false;
            let mut data = params.terminal_data(&TerminalConfig::kiosk());
            // Contact interface: no TTQ (docs/pboc-profile.md), so the card does not take the
            // GPO for a contactless qPBOC transaction (which would end in a cryptogram).
            data.set(0x9f66, [0u8; 4]);
            let pdol = fci
                .as_ref()
                .and_then(|f| f.pdol.as_ref())
                .map(|d| d.build(&data))
                .unwrap_or_default();
            if let Ok(gpo_cmd) = gpo::gpo_command(&pdol) {
                let r = self.read(
                    format!("{who}: GET PROCESSING OPTIONS"),
                    Context::Emv,
                    &gpo_cmd,
                )?;
                if r.is_success()
                    && let Ok(po) = gpo::parse_gpo_response(r.data(), false)
                {
                    read_by_afl = true;
                    // A hostile AFL can name thousands of records: read at most MAX_AFL_RECORDS.
                    let records = po
                        .afl
                        .0
                        .iter()
                        .flat_map(|e| (e.first..=e.last).map(move |r| (e.sfi, r)))
                        .take(MAX_AFL_RECORDS);
                    for (sfi, record) in records {
                        self.read(
                            format!("{who}: record {record} of SFI {sfi} (AFL)"),
                            Context::Emv,
                            &card_core::pboc::records::read_record_command(sfi, record),
                        )?;
                    }
                }
            }
        }
        if !read_by_afl {
            for sfi in 1..=10u8 {
                for record in 1..=MAX_RECORDS {
                    let r = self.read_if_ok(
                        format!("{who}: record {record} of SFI {sfi}"),
                        Context::Emv,
                        &card_core::pboc::records::read_record_command(sfi, record),
                    )?;
                    if !r.is_success() {
                        break;
                    }
                }
            }
        }
        for tag in GET_DATA_TAGS {
            let [p1, p2] = tag.to_be_bytes();
            self.read_if_ok(
                format!("{who}: GET DATA {tag:04X}"),
                Context::Emv,
                &Command::new(0x80, 0xca, p1, p2).expect_data(),
            )?;
        }
        Ok(())
    }
}

fn collect_aids(t: &Tlv, out: &mut Vec<Vec<u8>>) {
    if t.tag().value() == 0x4f
        && let Some(b) = t.bytes()
    {
        out.push(b.to_vec());
    }
    for c in t.children() {
        collect_aids(c, out);
    }
}

/// Read everything the card gives without a PIN.
pub fn dump<C: CardChannel>(s: &mut CardSession<C>, opts: DumpOptions) -> Result<Dump, DumpError> {
    let mut d = Dumper {
        s,
        opts,
        out: Vec::new(),
    };
    d.ssse()?;
    d.pki()?;
    let listed = d.directories()?;
    let mut aids: Vec<(Vec<u8>, String)> = PBOC_AIDS
        .iter()
        .map(|(a, l)| (a.to_vec(), (*l).to_string()))
        .collect();
    for aid in listed {
        if !aids.iter().any(|(a, _)| *a == aid) {
            aids.push((aid, "payment application".to_string()));
        }
    }
    for (aid, label) in aids {
        d.payment(&aid, &label)?;
    }
    Ok(Dump {
        sections: d.out,
        revealed: opts.reveal,
    })
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

    fn clock() -> Option<(Date, Time)> {
        Some((Date::new(2026, 3, 1).unwrap(), Time::new(10, 0, 0).unwrap()))
    }

    #[test]
    fn tags_are_named_and_personal_data_masked() {
        let mut s = card("zhangsan");
        let d = dump(
            &mut s,
            DumpOptions {
                clock: clock(),
                ..DumpOptions::default()
            },
        )
        .unwrap();
        let text = d.lines().join("\n");
        assert!(
            text.contains("09 Name (姓名) [30]: 张*  (masked)"),
            "{text}"
        );
        assert!(
            text.contains(
                "08 Social Security Number (社会保障号码) [18]: 110***********3011  (masked)"
            ),
            "{text}"
        );
        assert!(
            text.contains("03 Specification Version (规范版本) [4]: \"3.00\""),
            "{text}"
        );
        assert!(text.contains("9F08 Application Version Number"), "{text}");
        assert!(
            text.contains("5A Application PAN (应用主账号) [10]: 623058*********0013  (masked)"),
            "{text}"
        );
        assert!(text.contains("GET PROCESSING OPTIONS"), "{text}");
        assert!(text.contains("record 1 of SFI 3 (AFL)"), "{text}");
        // A contact GPO: format 1 or 2 without a cryptogram, and the contact AFL.
        assert!(!text.contains("9F26"), "{text}");
        assert!(text.contains("record 1 of SFI 1 (AFL)"), "{text}");
        for secret in [
            "张三",
            "110105198703153011",
            "A00000011",
            "6230580000000000013",
            "ZHANG/SAN",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("6230580000000000013"));
    }

    #[test]
    fn hostile_cards_end_with_a_result_in_bounded_commands() {
        use firmware_tests::hostile::{HostileCard, HostileMode};
        for mode in HostileMode::ALL {
            for no_gpo in [false, true] {
                let mut s = CardSession::new(HostileCard::fixture("zhangsan", mode).unwrap());
                let d = dump(
                    &mut s,
                    DumpOptions {
                        reveal: false,
                        no_gpo,
                        clock: clock(),
                    },
                );
                let text = d.map(|d| d.lines().join("\n")).unwrap_or_default();
                assert!(!text.contains("张三"), "{mode}: {text}");
                assert!(s.exchanges() < 400, "{mode}: {} APDUs", s.exchanges());
            }
            let mut s = CardSession::new(HostileCard::fixture("zhangsan", mode).unwrap());
            let _ = crate::techtools::identify::identify(&mut s, false);
            assert!(s.exchanges() < 400, "{mode}: {} APDUs", s.exchanges());
        }
    }

    #[test]
    fn reveal_and_no_gpo() {
        let mut s = card("zhangsan");
        let d = dump(
            &mut s,
            DumpOptions {
                reveal: true,
                no_gpo: true,
                clock: clock(),
            },
        )
        .unwrap();
        let text = d.lines().join("\n");
        assert!(text.contains("09 Name (姓名) [30]: \"张三\""), "{text}");
        assert!(
            text.contains("5A Application PAN (应用主账号) [10]: 6230580000000000013F"),
            "{text}"
        );
        assert!(!text.contains("GET PROCESSING OPTIONS"), "{text}");
        assert!(text.contains(": record 1 of SFI 2\n"), "{text}");
    }
}
