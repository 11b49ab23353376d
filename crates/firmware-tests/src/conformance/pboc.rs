//! The PBOC 3.0 debit/credit application with electronic cash (JR/T 0025.5, .6, .13, .17;
//! docs/pboc-profile.md): selection, the PIN try counter, the ATC, the electronic cash balance
//! against its limits, the transaction log against itself and the ATC, the records and the
//! application dates, the issuer and ICC certificates, and dynamic data authentication (the card
//! signing a fresh challenge with the key the ICC certificate names). Everything goes through
//! the kernel's own functions in `card_core::pboc`.

use card_core::apdu::HexFmt;
use card_core::channel::{CardChannel, CardSession};
use card_core::crypto::rsa::{self, CertificateChecks, YearMonth};
use card_core::crypto::sm2_cert::{self, IccCertificate};
use card_core::pboc::bits::AipBit;
use card_core::pboc::data::{Amount, Date as PbocDate, Time};
use card_core::pboc::dol::Dol;
use card_core::pboc::ec::{self, EcBalances, LogRecord};
use card_core::pboc::gpo::{gpo_command, parse_gpo_response};
use card_core::pboc::oda::{self, OdaAlgorithm, OdaInputs};
use card_core::pboc::records::{self, CardData, Mandatory};
use card_core::pboc::risk::get_counter;
use card_core::pboc::select::SelectedApplication;
use card_core::pboc::{Aip, CaStore, DataStore, PbocError, TerminalConfig, TransactionParams, cvm};
use card_core::ssse::Date;
use card_core::status::StatusWord;
use card_core::tlv::{Tag, TlvIter};

use super::dates::{self, Validity};
use super::pki::certificate_name;
use super::{Finding, Outcome, Runner, Verdict, fail, pass, skip, warn};

const SELECT: &str = "Debit/credit application selectable (PSE or AID list)";
const PIN: &str = "Offline PIN try counter (9F17)";
const ATC: &str = "Application transaction counter readable, not exhausted";
const EC: &str = "Electronic cash balance within its limits";
const LOG: &str = "Transaction log consistent with itself and the ATC";
const RECORDS: &str = "Application records readable, mandatory data present";
const DATES: &str = "Application effective and not expired";
const ISSUER_CERT: &str = "Issuer certificate verifies with a trust anchor, in date";
const ICC_CERT: &str = "ICC certificate verifies over the static data, in date";
const DDA: &str = "The card signs a fresh challenge with its ICC key (DDA)";

/// ATC values this close to 65535 give a warning.
const ATC_WARNING: u16 = 1000;
/// Records read per SFI when reading without an AFL.
const MAX_SCAN_RECORDS: u8 = 16;

/// A kernel error as a finding; the transport's own failure goes up.
fn finding(what: &str, e: PbocError) -> Outcome {
    match e {
        PbocError::Send(e) => Err(e),
        e => fail(format!("{what}: {e}")),
    }
}

/// The records read, and how.
struct Records {
    store: DataStore,
    /// The static data to authenticate (after GPO only).
    static_data: Option<(Vec<u8>, Aip)>,
    card: Option<CardData>,
}

pub(crate) fn run<C: CardChannel>(r: &mut Runner<'_, C>) {
    let terminal = TerminalConfig::kiosk();
    let mut selected: Option<SelectedApplication> = None;
    r.check("pboc.select", SELECT, |s, _| {
        match ec::select_application(s, &terminal) {
            Ok(app) => {
                let text = format!(
                    "{} selected{}",
                    HexFmt(&app.aid),
                    app.label().map(|l| format!(" ({l})")).unwrap_or_default()
                );
                selected = Some(app);
                pass(text)
            }
            Err(PbocError::NoApplication) => {
                skip("no debit/credit application: neither the PSE nor the AID list names one")
            }
            Err(PbocError::CardBlocked) => fail("the card is blocked: SELECT answered 6A81"),
            Err(e) => finding("application selection", e),
        }
    });
    let Some(app) = selected else {
        for (id, title) in [
            ("pboc.pin_tries", PIN),
            ("pboc.atc", ATC),
            ("pboc.ec", EC),
            ("pboc.log", LOG),
            ("pboc.records", RECORDS),
            ("pboc.dates", DATES),
            ("pboc.issuer_certificate", ISSUER_CERT),
            ("pboc.icc_certificate", ICC_CERT),
            ("pboc.dda", DDA),
        ] {
            r.skip(id, title, "no debit/credit application selected");
        }
        return;
    };

    r.check("pboc.pin_tries", PIN, |s, o| {
        match cvm::pin_try_counter(s) {
            Ok(Some(0)) => fail("the offline PIN is blocked: the try counter is 0"),
            Ok(Some(n)) if n <= o.pin_tries_low => warn(format!("only {n} offline PIN tries left")),
            Ok(Some(n)) => pass(format!("{n} offline PIN tries left")),
            Ok(None) => skip("the card does not give its PIN try counter (GET DATA 9F17)"),
            Err(e) => finding("GET DATA 9F17", e),
        }
    });

    let mut atc = None;
    r.check("pboc.atc", ATC, |s, _| {
        let now = match get_counter(s, 0x9f36) {
            Ok(Some(n)) => n,
            Ok(None) => return fail("GET DATA 9F36 gave no ATC"),
            Err(e) => return finding("GET DATA 9F36", e),
        };
        atc = Some(now);
        let online = match get_counter(s, 0x9f13) {
            Ok(n) => n,
            Err(e) => return finding("GET DATA 9F13", e),
        };
        let online_text = online.map_or(String::new(), |n| format!(", last online ATC {n:04X}"));
        if now == u16::MAX {
            return fail("ATC FFFF: the counter is exhausted and the application locked");
        }
        if let Some(n) = online.filter(|n| *n > now) {
            return fail(format!(
                "last online ATC {n:04X} is above the ATC {now:04X}"
            ));
        }
        if now >= u16::MAX - ATC_WARNING {
            return warn(format!(
                "ATC {now:04X}{online_text}: {} transactions left before the application locks",
                u16::MAX - now
            ));
        }
        pass(format!("ATC {now:04X}{online_text}"))
    });

    r.check("pboc.ec", EC, |s, o| match ec::read_balances(s) {
        Ok(b) => Ok(ec_finding(&b, o.reveal)),
        Err(PbocError::Status {
            sw: StatusWord::ReferencedDataNotFound,
            ..
        }) => skip("no electronic cash: GET DATA 9F79 answered 6A88"),
        Err(e) => finding("reading the electronic cash amounts", e),
    });

    match app.fci.log_entry {
        None => r.skip(
            "pboc.log",
            LOG,
            "no transaction log: the FCI has no log entry (9F4D)",
        ),
        Some(entry) => {
            r.check("pboc.log", LOG, |s, o| {
                match ec::read_transaction_log(s, entry) {
                    Ok(log) => Ok(log_finding(&log, atc, o.today)),
                    Err(e) => finding("reading the transaction log", e),
                }
            });
        }
    }

    let rid: [u8; 5] = app.rid().unwrap_or_default();
    let anchored = has_anchor(&r.opts.trust, rid);
    let use_gpo = r.opts.gpo && anchored;
    let mut records: Option<Records> = None;
    r.check("pboc.records", RECORDS, |s, o| {
        let read = if use_gpo {
            read_after_gpo(s, &app, &terminal, o.today)
        } else {
            scan_records(s)
        };
        let (read, how) = match read {
            Ok(x) => x,
            Err(e) => return finding("reading the records", e),
        };
        let card = CardData::from_store(&read.store, Mandatory::DebitCredit);
        let found = match &card {
            Ok(_) => pass(how),
            Err(e) => fail(format!("{how}, but {e}")),
        };
        records = Some(Records {
            card: card.ok(),
            ..read
        });
        found
    });
    let card = records.as_ref().and_then(|x| x.card.clone());
    match &card {
        None => r.skip(
            "pboc.dates",
            DATES,
            "the expiry date (5F24) could not be read",
        ),
        Some(card) => {
            r.check("pboc.dates", DATES, |_, o| Ok(dates_finding(card, o)));
        }
    }

    let no_anchor = format!("no trust anchor for RID {} was given", HexFmt(&rid));
    let Some(rec) = records.filter(|_| anchored) else {
        let why = if anchored {
            "the records could not be read".to_string()
        } else {
            no_anchor
        };
        r.skip("pboc.issuer_certificate", ISSUER_CERT, why.clone());
        r.skip("pboc.icc_certificate", ICC_CERT, why.clone());
        r.skip("pboc.dda", DDA, why);
        return;
    };
    let pan = rec
        .store
        .value(0x5a)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let issuer = r.check("pboc.issuer_certificate", ISSUER_CERT, |_, o| {
        Ok(issuer_finding(&o.trust, rid, &rec.store, &pan, o))
    });
    if issuer != Verdict::Pass && issuer != Verdict::Warn {
        r.skip(
            "pboc.icc_certificate",
            ICC_CERT,
            "needs the issuer key; the issuer certificate did not verify",
        );
        return;
    }
    let mut icc_key = None;
    let aip = match &rec.static_data {
        None => {
            let why = "not verified: the ICC certificate signs the records the AFL names, which \
                       needs GET PROCESSING OPTIONS (a transaction counted on the card); run \
                       with it allowed";
            r.skip("pboc.icc_certificate", ICC_CERT, why);
            r.skip(
                "pboc.dda",
                DDA,
                "needs the ICC key, from the ICC certificate",
            );
            return;
        }
        Some((static_data, aip)) => {
            r.check("pboc.icc_certificate", ICC_CERT, |_, o| {
                let input = OdaInputs {
                    card: &rec.store,
                    rid,
                    pan: &pan,
                    records: static_data,
                    aip: *aip,
                    today: dates::month(o.today),
                };
                match oda::recover_icc_key(&o.trust, &input) {
                    Ok(key) => {
                        icc_key = Some(key);
                        Ok(icc_validity(&rec.store, o))
                    }
                    Err(oda::OdaError::Sm2(e)) => {
                        fail(format!("{} rejected: {e}", certificate_name(&e)))
                    }
                    Err(e) => fail(format!("ICC certificate rejected: {e}")),
                }
            });
            *aip
        }
    };
    let Some(key) = icc_key else {
        r.skip(
            "pboc.dda",
            DDA,
            "needs the ICC key; the ICC certificate did not verify",
        );
        return;
    };
    if !aip.contains(AipBit::Dda) {
        r.skip(
            "pboc.dda",
            DDA,
            "the card does not offer DDA (application interchange profile 82)",
        );
        return;
    }
    r.check("pboc.dda", DDA, |s, _| dda_finding(s, &key, &rec.store));
}

/// INTERNAL AUTHENTICATE over the card's DDOL (`9F49`, or the default `9F37 04`) with a fresh
/// unpredictable number, the signature verified with the ICC key (JR/T 0025.6 §7.5.5.4).
fn dda_finding<C: CardChannel>(
    s: &mut CardSession<C>,
    key: &oda::IccPublicKey,
    card: &DataStore,
) -> Outcome {
    let ddol = match card.value(0x9f49).map(Dol::parse) {
        None => Dol::from_pairs(&[(0x9f37, 4)]),
        Some(Ok(d)) => d,
        Some(Err(e)) => return fail(format!("the card's DDOL (9F49) does not parse: {e}")),
    };
    if !ddol.contains(Tag::new(0x9f37)) {
        return fail("the card's DDOL (9F49) does not ask for the unpredictable number (9F37)");
    }
    let mut number = [0u8; 4];
    if getrandom::fill(&mut number).is_err() {
        return skip("no random numbers on this machine for the challenge");
    }
    let mut terminal = DataStore::new();
    terminal.set(0x9f37, number.to_vec());
    let data = ddol.build(&(&terminal, card));
    let algorithm = match key {
        oda::IccPublicKey::Sm2(_) => "SM2",
        oda::IccPublicKey::Rsa(_) => "RSA",
    };
    match oda::internal_authenticate(s, key, &data) {
        Ok(Ok(_)) => pass(format!(
            "INTERNAL AUTHENTICATE over a fresh unpredictable number verifies with the ICC \
             key ({algorithm})"
        )),
        Ok(Err(oda::OdaError::MissingData { .. })) => {
            fail("INTERNAL AUTHENTICATE gave no signed dynamic data (9F4B)")
        }
        Ok(Err(e)) => fail(format!(
            "the signature over the challenge does not verify with the ICC key ({algorithm}): {e}"
        )),
        Err(PbocError::Send(e)) => Err(e),
        Err(e) => fail(format!("INTERNAL AUTHENTICATE: {e}")),
    }
}

/// Whether the trust anchors hold any key (SM2 or RSA) of `rid`.
fn has_anchor(trust: &CaStore, rid: [u8; 5]) -> bool {
    trust.sm2().keys().iter().any(|k| k.rid == rid)
        || (0..=u8::MAX).any(|i| trust.rsa(rid, i).is_some())
}

/// Balance `9F79` against the balance limit `9F77`, the single transaction limit `9F78` and
/// the reset threshold `9F6D` (JR/T 0025.13 §10.1, 附录 C). The balance is shown only with
/// `reveal`; the limits are the issuer's parameters.
fn ec_finding(b: &EcBalances, reveal: bool) -> Finding {
    let money = |a: Amount| {
        let fen = a.minor_units();
        format!("{}.{:02}", fen / 100, fen % 100)
    };
    let balance = if reveal {
        format!("the balance {}", money(b.balance))
    } else {
        "the balance".to_string()
    };
    let Some(limit) = b.balance_limit else {
        return (
            Verdict::Warn,
            "the card does not give its balance limit (9F77)".into(),
        );
    };
    let mut problems = Vec::new();
    let mut remarks = Vec::new();
    if b.balance > limit {
        problems.push(format!(
            "{balance} is above the balance limit {}",
            money(limit)
        ));
    }
    if let Some(t) = b.reset_threshold {
        if t > limit {
            problems.push(format!(
                "the reset threshold {} is above the balance limit {}",
                money(t),
                money(limit)
            ));
        } else if b.balance < t {
            remarks.push(format!(
                "{balance} is below the reset threshold {}",
                money(t)
            ));
        }
    } else {
        remarks.push("the card does not give its reset threshold (9F6D)".to_string());
    }
    match b.single_transaction_limit {
        Some(single) if single > limit => remarks.push(format!(
            "the single transaction limit {} is above the balance limit {}",
            money(single),
            money(limit)
        )),
        Some(_) => {}
        None => remarks.push("the card does not give its single transaction limit (9F78)".into()),
    }
    let summary = format!(
        "{balance} is within the balance limit {}{}{}",
        money(limit),
        b.single_transaction_limit
            .map(|a| format!(", single transaction limit {}", money(a)))
            .unwrap_or_default(),
        b.reset_threshold
            .map(|a| format!(", reset threshold {}", money(a)))
            .unwrap_or_default()
    );
    if !problems.is_empty() {
        return (Verdict::Fail, problems.join("; "));
    }
    if !remarks.is_empty() {
        return (Verdict::Warn, format!("{summary}: {}", remarks.join("; ")));
    }
    (Verdict::Pass, summary)
}

/// The transaction log, newest first (JR/T 0025.13 §10.2, 表9): every record with a valid date
/// and amount, ATCs strictly decreasing, the newest not above the card's ATC, no date after
/// today. Reasons name record numbers and ATCs, never amounts or merchants.
fn log_finding(log: &[LogRecord], card_atc: Option<u16>, today: Date) -> Finding {
    if log.is_empty() {
        return (Verdict::Pass, "the log is empty".into());
    }
    let mut problems: Vec<String> = Vec::new();
    let mut remarks: Vec<String> = Vec::new();
    let has = |tag| log.iter().all(|rec| rec.get(tag).is_some());
    for (i, rec) in log.iter().enumerate() {
        let n = i + 1;
        if rec.get(0x9f02).is_some() && rec.amount().is_none() {
            problems.push(format!("record {n}: the amount (9F02) is not a BCD amount"));
        }
        if rec
            .get(0x9f03)
            .is_some_and(|v| Amount::from_bcd(v).is_none())
        {
            problems.push(format!(
                "record {n}: the other amount (9F03) is not a BCD amount"
            ));
        }
        if rec.get(0x9a).is_some() {
            match rec.date().and_then(dates::from_pboc) {
                None => problems.push(format!("record {n}: the date (9A) is not a date")),
                Some(d) if d > today => {
                    remarks.push(format!("record {n} is dated {d}, after today ({today})"));
                }
                Some(_) => {}
            }
        }
    }
    let atcs: Vec<Option<u16>> = log.iter().map(LogRecord::atc).collect();
    if has(0x9f36) {
        for (i, pair) in atcs.windows(2).enumerate() {
            let (n, m) = (i + 1, i + 2);
            if let [Some(newer), Some(older)] = pair {
                if newer == older {
                    problems.push(format!("records {n} and {m} have the same ATC {newer:04X}"));
                } else if newer < older {
                    problems.push(format!(
                        "record {n} (ATC {newer:04X}) is older than record {m} (ATC {older:04X}): \
                         the log is not newest first"
                    ));
                }
            }
        }
        if let (Some(Some(newest)), Some(card)) = (atcs.first(), card_atc)
            && *newest > card
        {
            problems.push(format!(
                "the newest record's ATC {newest:04X} is above the card's ATC {card:04X}"
            ));
        }
    } else {
        remarks.push("the log format has no ATC (9F36): its order cannot be checked".into());
    }
    if has(0x9a) {
        let days: Vec<Option<Date>> = log
            .iter()
            .map(|r| r.date().and_then(dates::from_pboc))
            .collect();
        for (i, pair) in days.windows(2).enumerate() {
            if let [Some(newer), Some(older)] = pair
                && newer < older
            {
                remarks.push(format!(
                    "record {} is dated before record {} (a terminal clock was off?)",
                    i + 1,
                    i + 2
                ));
            }
        }
    }
    if !problems.is_empty() {
        return (Verdict::Fail, at_most(&problems, 3));
    }
    let range = match (atcs.first(), atcs.last()) {
        (Some(Some(a)), Some(Some(b))) => format!(", ATC {a:04X} down to {b:04X}"),
        _ => String::new(),
    };
    let text = format!(
        "{} records{range}, newest first{}; dates and amounts valid",
        log.len(),
        card_atc
            .map(|a| format!(", none above the card's ATC {a:04X}"))
            .unwrap_or_default()
    );
    if !remarks.is_empty() {
        return (
            Verdict::Warn,
            format!("{text}; but {}", at_most(&remarks, 3)),
        );
    }
    (Verdict::Pass, text)
}

/// The first `n` findings joined, and how many more there are.
fn at_most(findings: &[String], n: usize) -> String {
    let mut text = findings
        .iter()
        .take(n)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if findings.len() > n {
        text.push_str(&format!("; and {} more", findings.len() - n));
    }
    text
}

/// GET PROCESSING OPTIONS with the kiosk's terminal data (an amount of zero), then the records
/// the AFL names (JR/T 0025.6 §7.3.4, §7.4), the way a transaction reads them.
fn read_after_gpo<C: CardChannel>(
    s: &mut CardSession<C>,
    app: &SelectedApplication,
    terminal: &TerminalConfig,
    today: Date,
) -> Result<(Records, String), PbocError> {
    let date = PbocDate::new(today.year, today.month, today.day).ok_or(PbocError::Malformed {
        what: "the date of the check",
        reason: "outside 1950-2049",
    })?;
    let mut un = [0u8; 4];
    getrandom::fill(&mut un).map_err(|_| PbocError::Malformed {
        what: "the unpredictable number",
        reason: "no random source",
    })?;
    let time = Time::new(12, 0, 0).ok_or(PbocError::Malformed {
        what: "the time of the check",
        reason: "invalid",
    })?;
    let params = TransactionParams::purchase(Amount::ZERO, date, time, un);
    let terminal_data = params.terminal_data(terminal);
    let pdol = app
        .fci
        .pdol
        .as_ref()
        .map(|d| d.build(&terminal_data))
        .unwrap_or_default();
    let r = s.send(&gpo_command(&pdol)?)?;
    if !r.is_success() {
        return Err(PbocError::Status {
            command: "GET PROCESSING OPTIONS",
            sw: r.sw(),
        });
    }
    let po = parse_gpo_response(r.data(), true)?;
    let mut store = DataStore::new();
    store.set(0x82, po.aip.to_bytes());
    store.set(0x94, po.afl.to_bytes());
    let mut gpo_tags: Vec<Tag> = po.objects.iter().map(|(t, _)| *t).collect();
    for (tag, value) in &po.objects {
        store.insert(*tag, value.clone());
    }
    if gpo_tags.is_empty() {
        gpo_tags = vec![Tag::new(0x82), Tag::new(0x94)];
    }
    let read = records::read_afl_records(s, &po.afl, &mut store, &gpo_tags)?;
    let how = format!(
        "GET PROCESSING OPTIONS (one transaction counted) and the {} records its AFL names",
        read.count
    );
    Ok((
        Records {
            store,
            static_data: Some((read.static_data, po.aip)),
            card: None,
        },
        how,
    ))
}

/// The records of SFI 1 to 10 read in order without an AFL, until `6A83` (JR/T 0025.5 附录
/// B.12 allows READ RECORD outside a transaction): the card is left as it was.
fn scan_records<C: CardChannel>(s: &mut CardSession<C>) -> Result<(Records, String), PbocError> {
    let mut store = DataStore::new();
    let mut count = 0usize;
    for sfi in 1..=10u8 {
        for record in 1..=MAX_SCAN_RECORDS {
            let r = s.send(&records::read_record_command(sfi, record))?;
            if !r.is_success() {
                break;
            }
            count += 1;
            let Some(Ok(template)) = TlvIter::new(r.data()).next() else {
                continue;
            };
            if template.tag != Tag::new(0x70) {
                continue;
            }
            for element in template.children().flatten() {
                store.insert(element.tag, element.value.to_vec());
            }
        }
    }
    let how = format!(
        "{count} records read from SFI 1-10 without GET PROCESSING OPTIONS (the card is left \
         as it was)"
    );
    Ok((
        Records {
            store,
            static_data: None,
            card: None,
        },
        how,
    ))
}

/// The application's effective date `5F25` and expiration date `5F24` against today.
fn dates_finding(card: &CardData, o: &super::Options) -> Finding {
    let Some(expiry) = dates::from_pboc(card.expiry) else {
        return (Verdict::Fail, "the expiry date (5F24) is not a date".into());
    };
    let effective = card.effective.and_then(dates::from_pboc);
    if let Some(e) = effective
        && e > o.today
    {
        return (
            Verdict::Fail,
            format!("not yet effective: effective from {e} (5F25)"),
        );
    }
    let from = effective
        .map(|e| format!("effective {e}, "))
        .unwrap_or_default();
    match dates::validity(expiry, o.today, o.expiry_warning_days) {
        Validity::Valid => (Verdict::Pass, format!("{from}valid through {expiry}")),
        Validity::EndsSoon(n) => (
            Verdict::Warn,
            format!("{from}expires {expiry}, in {n} days"),
        ),
        Validity::Ended(n) => (
            Verdict::Fail,
            format!("expired {expiry} (5F24), {n} days ago"),
        ),
    }
}

fn month_text(m: YearMonth) -> String {
    format!("{:02}/{}", m.month, m.year)
}

fn ends_soon(m: YearMonth, o: &super::Options) -> bool {
    dates::last_day(m).is_some_and(|end| {
        matches!(
            dates::validity(end, o.today, o.expiry_warning_days),
            Validity::EndsSoon(_)
        )
    })
}

/// The issuer certificate `90` with the CA key of the RID and index `8F`: SM2 (JR/T 0025.17
/// §5.1.2) or RSA (JR/T 0025.7 §5.2.2), checked for the PAN, expiry and revocation.
fn issuer_finding(
    trust: &CaStore,
    rid: [u8; 5],
    store: &DataStore,
    pan: &[u8],
    o: &super::Options,
) -> Finding {
    let (Some(&[index]), Some(cert)) = (store.value(0x8f), store.value(0x90)) else {
        return (
            Verdict::Fail,
            "the records lack the CA public key index (8F) or the issuer certificate (90)".into(),
        );
    };
    let today = dates::month(o.today);
    let expiry = match trust.algorithm(rid, index) {
        None => {
            return (
                Verdict::Fail,
                format!(
                    "no trust anchor for CA index {index:02X} of RID {}: the chain ends at an \
                     unknown CA",
                    HexFmt(&rid)
                ),
            );
        }
        Some(OdaAlgorithm::Sm2) => {
            match sm2_cert::verify_issuer_certificate(trust.sm2(), rid, index, cert, pan, today) {
                Ok(c) => c.certificate.expiry.month(),
                Err(e) => return (Verdict::Fail, format!("issuer certificate rejected: {e}")),
            }
        }
        Some(OdaAlgorithm::Rsa) => {
            let Some(ca) = trust.rsa(rid, index) else {
                return (Verdict::Fail, "the RSA CA key went missing".into());
            };
            let (Some(exponent), remainder) = (store.value(0x9f32), store.value(0x92)) else {
                return (
                    Verdict::Fail,
                    "the records lack the issuer public key exponent (9F32)".into(),
                );
            };
            let checks = CertificateChecks {
                pan,
                today,
                revoked: trust.sm2().revoked(),
            };
            match rsa::recover_issuer_key(
                ca,
                cert,
                remainder.unwrap_or_default(),
                exponent,
                &checks,
            ) {
                Ok(c) => c.expiry.month(),
                Err(e) => return (Verdict::Fail, format!("issuer certificate rejected: {e}")),
            }
        }
    };
    let text = format!(
        "verifies with CA {index:02X} of RID {}; valid through {}",
        HexFmt(&rid),
        month_text(expiry)
    );
    if ends_soon(expiry, o) {
        return (Verdict::Warn, format!("{text}, which is soon"));
    }
    (Verdict::Pass, text)
}

/// After the ICC key was recovered: its certificate's expiry month, when it can be read
/// without the issuer key (SM2).
fn icc_validity(store: &DataStore, o: &super::Options) -> Finding {
    let month = store
        .value(0x9f46)
        .and_then(|c| IccCertificate::parse(c).ok())
        .map(|c| c.content.expiry.month());
    match month {
        Some(m) if ends_soon(m, o) => (
            Verdict::Warn,
            format!(
                "verifies over the static data; valid through {}, which is soon",
                month_text(m)
            ),
        ),
        Some(m) => (
            Verdict::Pass,
            format!(
                "verifies over the static data; valid through {}",
                month_text(m)
            ),
        ),
        None => (Verdict::Pass, "verifies over the static data (RSA)".into()),
    }
}
