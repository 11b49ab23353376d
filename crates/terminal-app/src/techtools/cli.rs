//! The `cardctl` subcommands built on the tools of this module: open the reader (with the
//! trace of `--trace`), run the tool, print. Errors go up as `anyhow` to the binary, like the
//! rest of [`crate::cardctl`].

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use card_core::apdu::HexFmt;
use card_core::atr::Atr;
use card_core::channel::SessionOptions;

use super::atr_names::{AtrList, atr_text};
use super::console::{self, ConsoleOptions};
use super::dump::{self, DumpOptions};
use super::identify;
use super::report::{self, AtrPart, CheckRow, Report};
use crate::cardctl::{Common, open};

/// The list of card names to use: `explicit` if given (it must exist), else the first that
/// exists where pcsc-tools looks. `Ok(None)` when there is none.
pub fn load_atr_list(explicit: Option<&Path>) -> Result<Option<(PathBuf, AtrList)>> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match AtrList::default_path() {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let list = AtrList::load(&path)?;
    Ok(Some((path, list)))
}

/// The names part of `cardctl atr`: every matching entry of the list, or why there is none.
pub fn write_atr_names(out: &mut dyn Write, atr: &[u8], list: Option<&Path>) -> Result<()> {
    match load_atr_list(list)? {
        Some((path, list)) => {
            let found = list.lookup(atr);
            if found.is_empty() {
                writeln!(
                    out,
                    "name:   not in smartcard_list.txt ({})",
                    path.display()
                )?;
            } else {
                writeln!(out, "name (from {}):", path.display())?;
                for e in found {
                    if e.pattern.to_ascii_uppercase() != atr_text(atr) {
                        writeln!(out, "  {}", e.pattern)?;
                    }
                    for d in &e.descriptions {
                        writeln!(out, "    {d}")?;
                    }
                }
            }
        }
        None => writeln!(
            out,
            "name:   not in smartcard_list.txt (no list installed: Debian package pcsc-tools)"
        )?,
    }
    Ok(())
}

/// The current time in UTC, `YYYY-MM-DD HH:MM:SS UTC`, and the date and time for a PDOL.
pub fn now_utc() -> Option<(String, card_core::pboc::Date, card_core::pboc::Time)> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let day = crate::cardctl::civil_from_days(i64::try_from(secs / 86_400).ok()?)?;
    let rest = secs % 86_400;
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let text = format!("{day} {h:02}:{m:02}:{s:02} UTC");
    let date = card_core::pboc::Date::new(day.year, day.month, day.day)?;
    let time = card_core::pboc::Time::new(
        u8::try_from(h).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(s).ok()?,
    )?;
    Some((text, date, time))
}

/// `cardctl identify`.
pub fn identify(out: &mut dyn Write, common: &Common, reveal: bool, json: bool) -> Result<()> {
    let mut s = open(common)?;
    let id = identify::identify(&mut s, reveal)?;
    if json {
        let value = serde_json::json!({
            "reader": s.channel().reader(),
            "identification": id,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    writeln!(out, "reader: {}", s.channel().reader())?;
    for line in id.lines() {
        writeln!(out, "{line}")?;
    }
    if !reveal {
        writeln!(out, "(personal data masked; --reveal shows it)")?;
    }
    Ok(())
}

/// `cardctl dump`.
pub fn dump(
    out: &mut dyn Write,
    common: &Common,
    reveal: bool,
    json: bool,
    no_gpo: bool,
) -> Result<()> {
    let mut s = open(common)?;
    let clock = now_utc().map(|(_, d, t)| (d, t));
    let d = dump::dump(
        &mut s,
        DumpOptions {
            reveal,
            no_gpo,
            clock,
        },
    )?;
    if json {
        let value = serde_json::json!({
            "reader": s.channel().reader(),
            "dump": d,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    writeln!(out, "reader: {}", s.channel().reader())?;
    for line in d.lines() {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `cardctl apdu --console`: commands from standard input.
pub fn console(
    out: &mut dyn Write,
    common: &Common,
    raw: bool,
    history: Option<PathBuf>,
) -> Result<()> {
    let mut s = open(common)?.with_options(SessionOptions {
        auto_get_response: !raw,
        ..SessionOptions::default()
    });
    let stdin = std::io::stdin();
    let prompt = stdin.is_terminal();
    if prompt {
        writeln!(
            out,
            "cardctl APDU console on {}: type a hex APDU, help, or quit",
            s.channel().reader()
        )?;
    }
    let mut input = stdin.lock();
    let summary = console::run(
        &mut s,
        &mut input,
        out,
        &ConsoleOptions {
            prompt,
            history_file: history,
        },
    )?;
    if prompt {
        writeln!(out)?;
    }
    if summary.errors > 0 && !prompt {
        anyhow::bail!("{} console line(s) failed", summary.errors);
    }
    Ok(())
}

/// Trust anchors from a trust-store file (`card_core::trust_file`: SM2 `RID INDEX MMYY X||Y`
/// and RSA `RID INDEX RSA EXPONENT MODULUS` per line, the format of `cardctl authenticate
/// --trust`): the social-security CA and the PBOC CAs alike.
pub fn load_trust(path: &Path) -> Result<card_core::pboc::CaStore> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading trust store {}", path.display()))?;
    card_core::trust_file::parse(&text)
        .map_err(|(line, why)| anyhow::anyhow!("{}: line {line}: {why}", path.display()))
}

/// The conformance suite of `cardctl check` (`firmware_tests::conformance`) on the open
/// session. Without trust anchors it sends only commands that leave the card as it was and
/// reports the certificate checks skipped; with them it verifies the certificates, and the PBOC
/// ICC certificate needs GET PROCESSING OPTIONS (the card's ATC goes up by one).
fn conformance_checks<C: card_core::CardChannel>(
    s: &mut card_core::CardSession<C>,
    trust: Option<card_core::pboc::CaStore>,
) -> (Vec<CheckRow>, Option<String>) {
    match crate::cardctl::today() {
        Some(today) => {
            let with_trust = trust.is_some();
            let mut opts = firmware_tests::conformance::Options::new(today);
            if let Some(t) = trust {
                opts = opts.with_trust(t);
            }
            let r = firmware_tests::conformance::run(s, &opts);
            (
                report::conformance_rows(&r),
                Some(format!(
                    "atr.* are the report's own checks; the others are the conformance suite of \
                     cardctl check ({} APDUs){}.",
                    r.apdus,
                    if with_trust {
                        ", with the trust anchors given"
                    } else {
                        ", run without trust anchors, so the certificate checks are skipped"
                    }
                )),
            )
        }
        None => (
            Vec::new(),
            Some("the conformance suite was not run: no clock".into()),
        ),
    }
}

/// Build the report of the card in the reader.
pub fn build_report(common: &Common, list: Option<&Path>, trust: Option<&Path>) -> Result<Report> {
    let trust = trust.map(load_trust).transpose()?;
    let mut s = open(common)?;
    let atr_bytes = s.channel().atr().to_vec();
    let (decoded, atr_valid) = match Atr::parse(&atr_bytes) {
        Ok(a) => (a.describe(), true),
        Err(e) => (vec![format!("not a valid ATR: {e}")], false),
    };
    let (names, list_text) = match load_atr_list(list)? {
        Some((path, list)) => (
            list.lookup(&atr_bytes).into_iter().cloned().collect(),
            path.display().to_string(),
        ),
        None => (
            Vec::new(),
            "no smartcard_list.txt installed (Debian package pcsc-tools)".to_string(),
        ),
    };
    let id = identify::identify(&mut s, false)?;
    let now = now_utc();
    let atr = AtrPart {
        hex: atr_text(&atr_bytes),
        decoded,
        names,
        list: list_text,
    };
    let mut checks = report::atr_checks(&atr, atr_valid);
    let (more, checks_note) = conformance_checks(&mut s, trust);
    checks.extend(more);
    Ok(Report {
        tool: "cardctl".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        generated: now
            .as_ref()
            .map_or_else(|| "unknown".into(), |(t, _, _)| t.clone()),
        reader: s.channel().reader().to_string(),
        protocol: s.channel().active_protocol().to_string(),
        atr,
        identification: id,
        checks: Some(checks),
        checks_note,
    })
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader of the file never sees half a report.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `cardctl report`: JSON and/or HTML files; with neither, the JSON on standard output.
pub fn report(
    out: &mut dyn Write,
    common: &Common,
    json: Option<&Path>,
    html: Option<&Path>,
    list: Option<&Path>,
    trust: Option<&Path>,
) -> Result<()> {
    let r = build_report(common, list, trust)?;
    let text = serde_json::to_string_pretty(&r)?;
    if json.is_none() && html.is_none() {
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if let Some(p) = json {
        write_atomic(p, format!("{text}\n").as_bytes())?;
        writeln!(out, "JSON report: {}", p.display())?;
    }
    if let Some(p) = html {
        write_atomic(p, report::html(&r).as_bytes())?;
        writeln!(out, "HTML report: {}", p.display())?;
    }
    let [pass, warn, fail, skip] = r.tally();
    writeln!(
        out,
        "reader {}, ATR {}, {} application(s); checks: {}",
        r.reader,
        HexFmt(&hex::decode(r.atr.hex.replace(' ', "")).unwrap_or_default()),
        r.identification.applications.len(),
        if r.checks.is_some() {
            format!("{pass} pass, {warn} warn, {fail} fail, {skip} skipped")
        } else {
            "not run".to_string()
        }
    )?;
    Ok(())
}
