//! The `cardctl` subcommands, written against a `Write` so tests can read their output.
//!
//! Personal data is masked unless `--reveal` is given. PINs are read from the terminal without
//! echo, or from standard input with `--pin-stdin`; never from the command line, where other
//! users could see them in the process list.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use card_core::CardSession;
use card_core::apdu::HexFmt;
use card_core::atr::Atr;
use card_core::channel::SessionOptions;
use card_core::secret::Pin;
use card_core::ssse::{self, Date, ReadStrategy, SsseError};
use reader_driver::{
    EventWatcher, JsonLinesTrace, PcscCard, PcscContext, ProtocolChoice, ReaderEvent, TimedCard,
};
use zeroize::Zeroizing;

/// Exit code for a wrong PIN.
pub const EXIT_WRONG_PIN: i32 = 3;
/// Exit code for a blocked PIN.
pub const EXIT_PIN_BLOCKED: i32 = 4;
/// Exit code for a card that is not genuine.
pub const EXIT_NOT_GENUINE: i32 = 5;
/// Exit code of `check` when a check failed.
pub const EXIT_CHECK_FAILED: i32 = 1;

/// Options every subcommand shares.
#[derive(Debug, Clone, Default)]
pub struct Common {
    /// Reader to use (default: the first reader with a card).
    pub reader: Option<String>,
    /// Protocol.
    pub protocol: ProtocolChoice,
    /// Trace file (JSON lines).
    pub trace: Option<PathBuf>,
    /// How long one command may wait for the card's answer (`--command-timeout`).
    pub command_timeout: Duration,
}

/// An error with its own exit code (wrong PIN, blocked PIN).
#[derive(Debug)]
pub struct Exit {
    /// Process exit code.
    pub code: i32,
    /// Message.
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Open the reader of `common` (the first with a card if none is named), with its trace.
///
/// Each command waits at most `common.command_timeout` for its answer: some readers (vpcd,
/// a serial reader whose card keeps asking for time) would wait for a mute card until it is
/// pulled.
pub(crate) fn open(common: &Common) -> Result<CardSession<TimedCard<PcscCard>>> {
    let mut ctx = PcscContext::new()?;
    let card = match &common.reader {
        Some(r) => ctx.connect(r, common.protocol)?,
        None => ctx.connect_first(common.protocol)?,
    };
    let reader = card.reader().to_string();
    let card = TimedCard::new(card, common.command_timeout)?;
    let mut session = CardSession::new(card);
    if let Some(path) = &common.trace {
        if path.as_os_str() == "-" {
            // `--trace -`: standard output (`cardctl trace` without `--out`).
            session.set_trace(Some(Box::new(crate::techtools::StdoutTrace::new(&reader))));
        } else {
            let trace = JsonLinesTrace::open(path, &reader)
                .with_context(|| format!("opening trace file {}", path.display()))?;
            session.set_trace(Some(Box::new(trace)));
        }
    }
    Ok(session)
}

/// `cardctl readers`: every reader, with its card's ATR.
pub fn readers(out: &mut dyn Write) -> Result<()> {
    let mut ctx = PcscContext::new()?;
    let states = ctx.reader_states()?;
    if states.is_empty() {
        writeln!(out, "no readers")?;
        return Ok(());
    }
    for r in states {
        if r.present {
            writeln!(
                out,
                "{}\tcard present{}\tATR {}",
                r.name,
                if r.in_use { " (in use)" } else { "" },
                HexFmt(&r.atr)
            )?;
        } else if r.mute {
            writeln!(out, "{}\tcard mute", r.name)?;
        } else {
            writeln!(out, "{}\tempty", r.name)?;
        }
    }
    Ok(())
}

/// `cardctl watch`: print reader and card events until `count` events or `timeout`.
pub fn watch(out: &mut dyn Write, count: Option<usize>, timeout: Option<Duration>) -> Result<()> {
    let mut watcher = EventWatcher::new();
    let start = Instant::now();
    let mut seen = 0usize;
    loop {
        let left = match timeout {
            Some(t) => {
                let left = t.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Ok(());
                }
                left.min(Duration::from_secs(1))
            }
            None => Duration::from_secs(1),
        };
        for event in watcher.next_events(left) {
            let stamp = format!("{:>8.3}s", start.elapsed().as_secs_f64());
            let line = match &event {
                ReaderEvent::ReaderAdded { reader } => format!("reader added    {reader}"),
                ReaderEvent::ReaderRemoved { reader } => format!("reader removed  {reader}"),
                ReaderEvent::CardInserted { reader, atr } => {
                    format!("card inserted   {reader}  ATR {}", HexFmt(atr))
                }
                ReaderEvent::CardRemoved { reader } => format!("card removed    {reader}"),
                ReaderEvent::ServiceLost => {
                    format!("pcscd lost      {}", reader_driver::error::START_PCSCD_HINT)
                }
                ReaderEvent::ServiceRestored => "pcscd back".to_string(),
            };
            writeln!(out, "{stamp}  {line}")?;
            out.flush()?;
            seen += 1;
            if count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
        }
    }
}

/// `cardctl atr`: the ATR of the card in the reader, decoded, and named from pcsc-tools'
/// `smartcard_list.txt` (`list`, or the installed one).
pub fn atr(out: &mut dyn Write, common: &Common, list: Option<&std::path::Path>) -> Result<()> {
    let mut ctx = PcscContext::new()?;
    let states = ctx.reader_states()?;
    let status = match &common.reader {
        Some(r) => states
            .into_iter()
            .find(|s| &s.name == r)
            .with_context(|| format!("no reader named {r:?}"))?,
        None => states
            .into_iter()
            .find(|s| s.present)
            .context("no card in any reader")?,
    };
    if !status.present {
        bail!("no card in reader {:?}", status.name);
    }
    writeln!(out, "reader: {}", status.name)?;
    writeln!(out, "ATR:    {}", HexFmt(&status.atr))?;
    match Atr::parse(&status.atr) {
        Ok(atr) => {
            for line in atr.describe() {
                writeln!(out, "  {line}")?;
            }
        }
        Err(e) => writeln!(out, "  not a valid ATR: {e}")?,
    }
    crate::techtools::cli::write_atr_names(out, &status.atr, list)?;
    Ok(())
}

/// Today's date in UTC (days since the epoch to the civil calendar).
pub fn today() -> Option<Date> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    civil_from_days(i64::try_from(secs / 86_400).ok()?)
}

/// The civil date of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> Option<Date> {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Date::new(
        u16::try_from(year).ok()?,
        u8::try_from(month).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()
}

/// `cardctl read`: the SSSE identity, masked unless `reveal`.
pub fn read(
    out: &mut dyn Write,
    common: &Common,
    reveal: bool,
    by_tag: bool,
    json: bool,
) -> Result<()> {
    let mut s = open(common)?;
    let strategy = if by_tag {
        ReadStrategy::ByTag
    } else {
        ReadStrategy::AllRecords
    };
    let id = card_core::channel::rerun_after_reset(&mut s, |s| ssse::read_identity(s, strategy))?;
    let today = today();
    let expired = today.is_some_and(|t| id.card.is_expired(t));
    let show = |clear: &str, masked: String| if reveal { clear.to_string() } else { masked };
    if json {
        let value = serde_json::json!({
            "reader": s.channel().reader(),
            "card": {
                "card_number": show(id.card.card_number.reveal(), id.card.card_number.to_string()),
                "card_id": HexFmt(&id.card.card_id).to_string(),
                "region": id.card.region_code(),
                "card_type": id.card.card_type,
                "spec_version": id.card.spec_version,
                "issuing_org": id.card.issuing_org_text(),
                "issue_date": id.card.issue_date.to_string(),
                "expiry_date": id.card.expiry_date.to_string(),
                "expired": expired,
            },
            "holder": {
                "name": show(id.holder.name.reveal(), id.holder.name.to_string()),
                "ssn": show(id.holder.ssn.reveal(), id.holder.ssn.to_string()),
                "gender": id.holder.gender.to_string(),
                "nation": id.holder.nation,
                "birthplace": show(&id.holder.birthplace, format!("{}***", id.holder.birthplace.get(..3).unwrap_or_default())),
                "birth_date": show(&id.holder.birth_date.to_string(), format!("{}-**-**", id.holder.birth_date.year)),
            },
            "warnings": id.holder.inconsistencies(),
            "apdus": s.exchanges(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    writeln!(out, "reader:          {}", s.channel().reader())?;
    writeln!(
        out,
        "card number:     {}",
        show(
            id.card.card_number.reveal(),
            id.card.card_number.to_string()
        )
    )?;
    writeln!(out, "card identifier: {}", HexFmt(&id.card.card_id))?;
    writeln!(out, "card type:       {}", id.card.card_type)?;
    writeln!(out, "spec version:    {}", id.card.spec_version)?;
    writeln!(out, "issuing org:     {}", id.card.issuing_org_text())?;
    writeln!(out, "issue date:      {}", id.card.issue_date)?;
    writeln!(
        out,
        "expiry date:     {}{}",
        id.card.expiry_date,
        if expired { "  EXPIRED" } else { "" }
    )?;
    writeln!(
        out,
        "name:            {}",
        show(id.holder.name.reveal(), id.holder.name.to_string())
    )?;
    writeln!(
        out,
        "social sec. no.: {}",
        show(id.holder.ssn.reveal(), id.holder.ssn.to_string())
    )?;
    writeln!(out, "gender:          {}", id.holder.gender)?;
    writeln!(out, "nation:          {:02}", id.holder.nation)?;
    if reveal {
        writeln!(out, "birthplace:      {}", id.holder.birthplace)?;
        writeln!(out, "birth date:      {}", id.holder.birth_date)?;
    } else {
        writeln!(
            out,
            "birthplace:      {}***",
            id.holder.birthplace.get(..3).unwrap_or_default()
        )?;
        writeln!(out, "birth date:      {}-**-**", id.holder.birth_date.year)?;
    }
    for w in id.holder.inconsistencies() {
        writeln!(out, "warning:         {w}")?;
    }
    if !reveal {
        writeln!(out, "(personal data masked; --reveal shows it)")?;
    }
    Ok(())
}

/// Read a PIN: from standard input (one line) or from the terminal without echo.
pub fn read_pin(from_stdin: bool, prompt: &str) -> Result<Pin> {
    let text = if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the PIN from standard input")?;
        line
    } else {
        Zeroizing::new(
            rpassword::prompt_password(prompt).context("reading the PIN from the terminal")?,
        )
    };
    Ok(Pin::new(text.trim())?)
}

fn pin_error(e: SsseError) -> anyhow::Error {
    match e {
        SsseError::WrongPin { tries_left } => Exit {
            code: EXIT_WRONG_PIN,
            message: format!("wrong PIN, {tries_left} tries left"),
        }
        .into(),
        SsseError::PinBlocked => Exit {
            code: EXIT_PIN_BLOCKED,
            message: "the PIN is blocked".into(),
        }
        .into(),
        e => e.into(),
    }
}

/// `cardctl verify-pin`.
pub fn verify_pin(out: &mut dyn Write, common: &Common, pin: &Pin) -> Result<()> {
    let mut s = open(common)?;
    ssse::select(&mut s)?;
    ssse::verify_pin(&mut s, pin).map_err(pin_error)?;
    writeln!(out, "PIN verified")?;
    Ok(())
}

/// `cardctl pin-status`: tries left without using one.
pub fn pin_status(out: &mut dyn Write, common: &Common) -> Result<()> {
    let mut s = open(common)?;
    ssse::select(&mut s)?;
    match ssse::pin_tries_left(&mut s)? {
        Some(0) => writeln!(out, "PIN blocked")?,
        Some(n) => writeln!(out, "PIN tries left: {n}")?,
        None => writeln!(out, "PIN already verified")?,
    }
    Ok(())
}

/// `cardctl authenticate`: is the card genuine? Verifies the certificate chain against the
/// trust store in `trust` and the card's signature over a fresh random challenge.
pub fn authenticate(out: &mut dyn Write, common: &Common, trust: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(trust)
        .with_context(|| format!("reading trust store {}", trust.display()))?;
    let store = ssse::auth::parse_trust_store(&text)
        .map_err(|(line, why)| anyhow::anyhow!("{}: line {line}: {why}", trust.display()))?;
    let mut s = open(common)?;
    let id = card_core::channel::rerun_after_reset(&mut s, |s| {
        ssse::read_identity(s, ReadStrategy::AllRecords)
    })?;
    let mut challenge = [0u8; ssse::auth::CHALLENGE_LEN];
    getrandom::fill(&mut challenge).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    let today = today().context("no clock")?;
    let month = card_core::crypto::rsa::YearMonth {
        year: today.year,
        month: today.month,
    };
    match ssse::auth::authenticate_card(&mut s, &store, &id, &challenge, month) {
        Ok(a) => {
            let fingerprint = card_core::crypto::sm3::digest(&a.icc_key.to_xy());
            writeln!(out, "card genuine")?;
            writeln!(
                out,
                "holder:       {} ({})",
                id.holder.name, id.card.card_number
            )?;
            writeln!(
                out,
                "CA key:       {}/{:02X}",
                HexFmt(&ssse::auth::SSSE_RID),
                a.ca_index
            )?;
            writeln!(
                out,
                "card key:     SM3 {}",
                HexFmt(fingerprint.get(..8).unwrap_or_default())
            )?;
            Ok(())
        }
        Err(e) => Err(Exit {
            code: EXIT_NOT_GENUINE,
            message: format!("card NOT genuine: {e}"),
        }
        .into()),
    }
}

/// `cardctl apdu`: send raw APDUs, print the answers.
pub fn apdu(out: &mut dyn Write, common: &Common, apdus: &[String], raw: bool) -> Result<()> {
    let mut s = open(common)?.with_options(SessionOptions {
        auto_get_response: !raw,
        ..SessionOptions::default()
    });
    for text in apdus {
        let bytes = hex::decode(text.replace([' ', ':'], ""))
            .with_context(|| format!("{text:?} is not hex"))?;
        // PIN commands go out marked sensitive: echoed and traced without their data.
        let cmd = crate::techtools::user_command(&bytes)
            .with_context(|| format!("{text:?} is not a command APDU"))?;
        writeln!(out, "> {}", crate::techtools::shown(&bytes, &cmd))?;
        let r = s.send(&cmd)?;
        if r.data().is_empty() {
            writeln!(out, "< {}", r.sw())?;
        } else {
            writeln!(out, "< {} {}", HexFmt(r.data()), r.sw())?;
        }
    }
    Ok(())
}

/// Options of `cardctl check`.
#[derive(Debug, Clone, Default)]
pub struct CheckArgs {
    /// Trust store (the format of `authenticate --trust`): the CA keys certificates are
    /// verified against. Without it the certificate checks are skipped.
    pub trust: Option<PathBuf>,
    /// The date validity is checked against (default: today, UTC).
    pub date: Option<Date>,
    /// Print the report as JSON.
    pub json: bool,
    /// Do not send GET PROCESSING OPTIONS: the card is left exactly as it was, and the PBOC
    /// ICC certificate is not verified.
    pub no_gpo: bool,
    /// Show the electronic cash balance in the reasons.
    pub reveal: bool,
}

/// A date on the command line: `YYYY-MM-DD` (or `YYYYMMDD`).
pub fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(&text.replace('-', ""))
        .map_err(|e| format!("{text:?} is not a date YYYY-MM-DD: {e}"))
}

/// `cardctl check`: the conformance and health suite of firmware-tests
/// ([`firmware_tests::conformance`]) on the card in the reader: one line per check
/// (`PASS|WARN|FAIL|SKIP  id  reason`) and the counts, or the report as JSON. Fails (exit 1)
/// when any check fails. Never sends a PIN; sends GET PROCESSING OPTIONS (one transaction on
/// the card) only when the trust store holds the payment application's CA and `no_gpo` is
/// not set.
pub fn check(out: &mut dyn Write, common: &Common, args: &CheckArgs) -> Result<()> {
    use firmware_tests::conformance::{self, Options};
    let trust = match &args.trust {
        Some(path) => crate::techtools::cli::load_trust(path)?,
        None => card_core::pboc::CaStore::new(),
    };
    let date = match args.date {
        Some(d) => d,
        None => today().context("no clock: give the date with --date")?,
    };
    let opts = Options {
        gpo: !args.no_gpo,
        reveal: args.reveal,
        ..Options::new(date).with_trust(trust)
    };
    let mut s = open(common)?;
    let reader = s.channel().reader().to_string();
    let report = conformance::run(&mut s, &opts);
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("reader".into(), reader.into());
            map.insert("date".into(), date.to_string().into());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(out, "reader: {reader}")?;
        writeln!(out, "date:   {date}")?;
        writeln!(out, "{report}")?;
    }
    out.flush()?;
    let failed: Vec<&str> = report.failures().map(|c| c.id).collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Exit {
        code: EXIT_CHECK_FAILED,
        message: format!(
            "{} of {} checks failed: {}",
            failed.len(),
            report.checks.len(),
            failed.join(", ")
        ),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), Some(Date::new(1970, 1, 1).unwrap()));
        assert_eq!(
            civil_from_days(11_016),
            Some(Date::new(2000, 2, 29).unwrap())
        );
        assert_eq!(
            civil_from_days(20_785),
            Some(Date::new(2026, 11, 28).unwrap())
        );
    }
}

/// Where `update-record` finds the maintenance master key.
#[derive(Debug, Clone)]
pub struct HsmAddress {
    /// hsm-sim's address, HOST:PORT.
    pub addr: String,
    /// Its message header length.
    pub header_len: usize,
    /// The label of the maintenance master key.
    pub key: String,
}

/// The new value of a record, as the technician typed it.
#[derive(Debug, Clone)]
pub enum NewValue {
    /// Chinese text, stored in GBK and padded with `00` to the record's length.
    Gbk(String),
    /// ASCII text, padded with `00` to the record's length.
    Text(String),
    /// Hex, exactly.
    Hex(String),
}

/// A record tag in hex (`09`, `4E`).
pub fn parse_tag(text: &str) -> Result<u8, String> {
    u8::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|_| format!("{text:?} is not a tag in hex (09, 4E, ...)"))
}

/// The value's bytes, padded to `len` for text.
fn value_bytes(value: &NewValue, len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let (mut bytes, pad) = match value {
        NewValue::Gbk(t) => (ssse::PersonName::new(t).to_gbk(), true),
        NewValue::Text(t) if t.is_ascii() => (t.as_bytes().to_vec(), true),
        NewValue::Text(_) => bail!("--text takes ASCII only; use --gbk for Chinese"),
        NewValue::Hex(h) => (
            hex::decode(h.replace(' ', "")).context("--hex is not hex")?,
            false,
        ),
    };
    if pad && bytes.len() < len {
        bytes.resize(len, 0);
    }
    Ok(Zeroizing::new(bytes))
}

/// `cardctl update-record`: write a cardholder record of EF06 with the maintenance key in
/// hsm-sim. The old value's length comes from the card (text is padded to it); the flow is
/// card-core's `ssse::update::update_record`. Personal data is not printed.
pub fn update_record(
    out: &mut dyn Write,
    common: &Common,
    hsm: &HsmAddress,
    tag: u8,
    value: &NewValue,
) -> Result<()> {
    use card_core::ssse::update;
    let mut client = hsm_sim::client::HsmClient::new(
        hsm_sim::client::BlockingClient::connect(hsm.addr.as_str(), hsm.header_len)
            .with_context(|| format!("connecting to hsm-sim at {}", hsm.addr))?,
    );
    let mut s = open(common)?;
    ssse::select(&mut s)?;
    let current = ssse::read_records(
        &mut s,
        "EF06",
        ssse::SFI_EF06,
        &[tag],
        &[],
        ReadStrategy::ByTag,
    )?;
    let len = current.get(tag).map_or(0, <[u8]>::len);
    let new = value_bytes(value, len)?;
    let mut authority = hsm_sim::client::HsmAuthority::new(&mut client, &hsm.key);
    match update::update_record(&mut s, &mut authority, ssse::SFI_EF06, tag, &new) {
        Ok(_) => {
            writeln!(
                out,
                "EF06 record {tag:02X} written ({} bytes) and read back",
                new.len()
            )?;
            Ok(())
        }
        Err(e) if e.is_unsure() => Err(Exit {
            code: 3,
            message: format!(
                "{e}; run `cardctl read --reveal` to see which, or this command again to write it"
            ),
        }
        .into()),
        Err(e) => Err(anyhow::Error::new(e).context("the record was not changed")),
    }
}
