//! `cardctl report`: the diagnostics report a technician hands over, as JSON and as one
//! self-contained HTML page (inline CSS, no script, no external resource; every card-derived
//! text escaped; personal data always masked).

use serde::Serialize;

use super::atr_names::AtrEntry;
use super::identify::Identification;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Passed with a remark.
    Warn,
    /// Failed.
    Fail,
    /// Not run (does not apply to this card).
    Skip,
}

impl Outcome {
    /// Upper-case word.
    pub const fn word(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        }
    }
}

/// One check's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    /// Identifier of the check.
    pub id: String,
    /// What it checks.
    pub name: String,
    /// Result.
    pub outcome: Outcome,
    /// Why, or what was seen.
    pub detail: String,
}

/// The ATR part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AtrPart {
    /// The ATR (hex, spaced).
    pub hex: String,
    /// Decoded, one line per interface byte.
    pub decoded: Vec<String>,
    /// Matching entries of `smartcard_list.txt`.
    pub names: Vec<AtrEntry>,
    /// The list used, or why none.
    pub list: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The tool.
    pub tool: String,
    /// Its version.
    pub version: String,
    /// When, UTC (`2026-03-01 10:00:00 UTC`).
    pub generated: String,
    /// The reader.
    pub reader: String,
    /// The protocol in use.
    pub protocol: String,
    /// The ATR.
    pub atr: AtrPart,
    /// Applications and directories.
    pub identification: Identification,
    /// The health checks, when they were run.
    pub checks: Option<Vec<CheckRow>>,
    /// Why there are no checks, or a remark about them.
    pub checks_note: Option<String>,
}

impl Report {
    /// Counts of pass, warn, fail, skip.
    pub fn tally(&self) -> [usize; 4] {
        let mut t = [0usize; 4];
        for c in self.checks.iter().flatten() {
            let i = match c.outcome {
                Outcome::Pass => 0,
                Outcome::Warn => 1,
                Outcome::Fail => 2,
                Outcome::Skip => 3,
            };
            if let Some(n) = t.get_mut(i) {
                *n += 1;
            }
        }
        t
    }
}

/// The report's own checks of the ATR: well-formed (it parsed, TCK right), and named in
/// `smartcard_list.txt`. `atr_valid` says whether the ATR parsed.
pub fn atr_checks(atr: &AtrPart, atr_valid: bool) -> Vec<CheckRow> {
    let row = |id: &str, name: &str, outcome: Outcome, detail: String| CheckRow {
        id: id.into(),
        name: name.into(),
        outcome,
        detail,
    };
    let known = "Card named in smartcard_list.txt";
    vec![
        row(
            "atr.valid",
            "ATR well-formed (ISO/IEC 7816-3 §8.2, TCK)",
            if atr_valid {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            atr.hex.clone(),
        ),
        if atr.names.is_empty() {
            row(
                "atr.known",
                known,
                Outcome::Warn,
                format!("not in the list ({})", atr.list),
            )
        } else {
            row(
                "atr.known",
                known,
                Outcome::Pass,
                atr.names
                    .iter()
                    .flat_map(|n| n.descriptions.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        },
    ]
}

/// The rows of the conformance suite's report (`firmware_tests::conformance`, the checks of
/// `cardctl check`), in the order they ran.
pub fn conformance_rows(report: &firmware_tests::conformance::Report) -> Vec<CheckRow> {
    use firmware_tests::conformance::Verdict;
    report
        .checks
        .iter()
        .map(|c| CheckRow {
            id: c.id.to_string(),
            name: c.title.to_string(),
            outcome: match c.verdict {
                Verdict::Pass => Outcome::Pass,
                Verdict::Warn => Outcome::Warn,
                Verdict::Fail => Outcome::Fail,
                Verdict::Skipped => Outcome::Skip,
            },
            detail: c.reason.clone(),
        })
        .collect()
}

/// Escape text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
body{font-family:'Noto Sans CJK SC','Noto Sans',sans-serif;margin:2em auto;max-width:1100px;\
color:#1d2330;background:#fff;padding:0 1.5em}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;\
border-bottom:2px solid #d5dae3;padding-bottom:.2em}\
.meta{color:#5a6474}table{border-collapse:collapse;width:100%;margin:.6em 0}\
th,td{border:1px solid #d5dae3;padding:.35em .6em;text-align:left;vertical-align:top}\
th{background:#eef1f6}code,pre{font-family:'Noto Mono','DejaVu Sans Mono',monospace}\
pre{background:#f6f8fb;border:1px solid #d5dae3;padding:.6em;white-space:pre-wrap}\
.pass{background:#dff3e4;color:#14532d}.warn{background:#fff4d6;color:#7a4b00}\
.fail{background:#fde2e1;color:#8a1c14}.skip{background:#eceff3;color:#4b5563}\
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;font-weight:bold}\
.summary span{margin-right:1em}ul{margin:.2em 0;padding-left:1.2em}\
footer{margin-top:2em;color:#5a6474;font-size:.9em}";

/// The report as one HTML page.
pub fn html(r: &Report) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let e = escape;
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    h.push_str(&format!(
        "<title>Card diagnostics report — {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        e(&r.generated)
    ));
    h.push_str("<h1>Card diagnostics report</h1>\n");
    h.push_str(&format!(
        "<p class=\"meta\">Generated {} by {} {}. Personal data is masked.</p>\n",
        e(&r.generated),
        e(&r.tool),
        e(&r.version)
    ));

    if r.checks.is_some() || !r.identification.applications.is_empty() {
        let apps: Vec<String> = r
            .identification
            .applications
            .iter()
            .map(|a| match &a.version {
                Some(v) => format!("{} {v}", a.kind.short()),
                None => a.kind.short().to_string(),
            })
            .collect();
        let [pass, warn, fail, _] = r.tally();
        h.push_str(&format!(
            "<p class=\"summary\">Applications: <b>{}</b> &nbsp; Checks: \
             <span class=\"badge pass\">{pass} pass</span>\
             <span class=\"badge warn\">{warn} warn</span>\
             <span class=\"badge fail\">{fail} fail</span></p>\n",
            e(&apps.join(", "))
        ));
    }

    // Reader and ATR.
    h.push_str("<h2>Reader and ATR</h2>\n<table>\n");
    for (k, v) in [
        ("Reader", r.reader.as_str()),
        ("Protocol", r.protocol.as_str()),
        ("ATR", r.atr.hex.as_str()),
    ] {
        h.push_str(&format!(
            "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
            e(k),
            e(v)
        ));
    }
    h.push_str("<tr><th>Card name</th><td>");
    if r.atr.names.is_empty() {
        h.push_str(&format!("not in smartcard_list.txt ({})", e(&r.atr.list)));
    } else {
        h.push_str("<ul>");
        for n in &r.atr.names {
            for d in &n.descriptions {
                h.push_str(&format!("<li>{}</li>", e(d)));
            }
        }
        h.push_str(&format!(
            "</ul><span class=\"meta\">from {}</span>",
            e(&r.atr.list)
        ));
    }
    h.push_str("</td></tr>\n</table>\n");
    h.push_str(&format!("<pre>{}</pre>\n", e(&r.atr.decoded.join("\n"))));

    // Applications.
    h.push_str("<h2>Applications</h2>\n");
    if r.identification.applications.is_empty() {
        h.push_str("<p>No known application found.</p>\n");
    } else {
        h.push_str("<table>\n<tr><th>Kind</th><th>Application</th><th>AID</th><th>Version</th><th>Details</th></tr>\n");
        for a in &r.identification.applications {
            let mut details: Vec<String> = a
                .details
                .iter()
                .map(|d| format!("<li>{}: {}</li>", e(&d.name), e(&d.value)))
                .collect();
            if let Some(ec) = &a.ec {
                let limit = ec.balance_limit.as_deref().unwrap_or("?");
                details.push(format!(
                    "<li>electronic cash: yes (balance limit {})</li>",
                    e(limit)
                ));
            } else if a.kind == super::identify::Kind::Pboc {
                details.push("<li>electronic cash: no</li>".to_string());
            }
            let version = match (&a.version, &a.version_source) {
                (Some(v), Some(src)) => {
                    format!("{}<br><span class=\"meta\">{}</span>", e(v), e(src))
                }
                (Some(v), None) => e(v),
                _ => "—".to_string(),
            };
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{version}</td><td><ul>{}</ul></td></tr>\n",
                e(a.kind.short()),
                e(&a.label),
                e(&a.aid),
                details.join("")
            ));
        }
        h.push_str("</table>\n");
    }
    for d in &r.identification.directories {
        h.push_str(&format!(
            "<p>Directory <code>{}</code>: {}</p>\n",
            e(&d.name),
            d.entries
                .iter()
                .map(|x| format!("<code>{}</code> {}", e(&x.name), e(&x.value)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Checks.
    h.push_str("<h2>Checks</h2>\n");
    match &r.checks {
        Some(rows) => {
            let [pass, warn, fail, skip] = r.tally();
            h.push_str(&format!(
                "<p class=\"summary\"><span class=\"badge pass\">{pass} pass</span>\
                 <span class=\"badge warn\">{warn} warn</span>\
                 <span class=\"badge fail\">{fail} fail</span>\
                 <span class=\"badge skip\">{skip} skipped</span></p>\n"
            ));
            h.push_str(
                "<table>\n<tr><th>Check</th><th>What</th><th>Result</th><th>Detail</th></tr>\n",
            );
            for c in rows {
                let class = c.outcome.word().to_ascii_lowercase();
                h.push_str(&format!(
                    "<tr class=\"{class}\"><td><code>{}</code></td><td>{}</td><td><span class=\"badge {class}\">{}</span></td><td>{}</td></tr>\n",
                    e(&c.id),
                    e(&c.name),
                    c.outcome.word(),
                    e(&c.detail)
                ));
            }
            h.push_str("</table>\n");
        }
        None => h.push_str("<p>Not run.</p>\n"),
    }
    if let Some(note) = &r.checks_note {
        h.push_str(&format!("<p class=\"meta\">{}</p>\n", e(note)));
    }
    if !r.identification.notes.is_empty() {
        h.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in &r.identification.notes {
            h.push_str(&format!("<li>{}</li>\n", e(n)));
        }
        h.push_str("</ul>\n");
    }
    h.push_str(&format!(
        "<footer>{} {} — card numbers, PANs and names are masked; no PIN or key was read or \
         recorded.</footer>\n</body>\n</html>\n",
        e(&r.tool),
        e(&r.version)
    ));
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::techtools::identify::{Application, Detail, Kind};

    fn sample() -> Report {
        Report {
            tool: "cardctl".into(),
            version: "0.1.0".into(),
            generated: "2026-03-01 10:00:00 UTC".into(),
            reader: "Reader <&> \"one\"".into(),
            protocol: "T=1".into(),
            atr: AtrPart {
                hex: "3B 02 14 50".into(),
                decoded: vec!["TS = 3B  direct convention".into()],
                names: Vec::new(),
                list: "/nowhere".into(),
            },
            identification: Identification {
                applications: vec![Application {
                    kind: Kind::Ssse,
                    label: "<script>alert(1)</script>".into(),
                    aid: "73".into(),
                    version: Some("3.00".into()),
                    version_source: None,
                    ec: None,
                    details: vec![Detail {
                        name: "card number".into(),
                        value: "A*******1".into(),
                    }],
                }],
                directories: Vec::new(),
                notes: Vec::new(),
            },
            checks: Some(vec![
                CheckRow {
                    id: "a".into(),
                    name: "one".into(),
                    outcome: Outcome::Pass,
                    detail: String::new(),
                },
                CheckRow {
                    id: "b".into(),
                    name: "two".into(),
                    outcome: Outcome::Fail,
                    detail: "x < y".into(),
                },
            ]),
            checks_note: None,
        }
    }

    fn conformance_of(card: &str, today: &str) -> Vec<CheckRow> {
        let image = firmware_tests::Profile::embedded(card)
            .unwrap()
            .build()
            .unwrap();
        let mut s = card_core::CardSession::new(firmware_tests::SoftCard::in_memory(image));
        let today = card_core::ssse::Date::parse(&today.replace('-', "")).unwrap();
        let r = firmware_tests::conformance::run(
            &mut s,
            &firmware_tests::conformance::Options::new(today),
        );
        conformance_rows(&r)
    }

    fn outcome(rows: &[CheckRow], id: &str) -> Outcome {
        rows.iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no {id} in {rows:?}"))
            .outcome
    }

    #[test]
    fn conformance_verdicts_become_rows() {
        let rows = conformance_of("blocked", "2026-03-01");
        assert_eq!(outcome(&rows, "ssse.pin_tries"), Outcome::Fail);
        assert_eq!(outcome(&rows, "ssse.select"), Outcome::Pass);
        // No trust anchors: the certificate checks are skipped.
        assert_eq!(outcome(&rows, "pki.certificates"), Outcome::Skip);
        let rows = conformance_of("zhangsan", "2034-01-15");
        assert_eq!(outcome(&rows, "ssse.card_dates"), Outcome::Fail);
        let rows = conformance_of("zhangsan", "2026-03-01");
        assert_eq!(outcome(&rows, "ssse.card_dates"), Outcome::Pass);
        assert!(rows.iter().all(|r| !r.name.is_empty()));
    }

    #[test]
    fn atr_rows() {
        let mut atr = AtrPart {
            hex: "3B 02 14 50".into(),
            decoded: Vec::new(),
            names: Vec::new(),
            list: "/x".into(),
        };
        let rows = atr_checks(&atr, true);
        assert_eq!(outcome(&rows, "atr.valid"), Outcome::Pass);
        assert_eq!(outcome(&rows, "atr.known"), Outcome::Warn);
        assert_eq!(rows[1].detail, "not in the list (/x)");
        atr.names = crate::techtools::atr_names::AtrList::parse("3B 02 14 50\n\tMultiflex\n")
            .lookup(&[0x3b, 0x02, 0x14, 0x50])
            .into_iter()
            .cloned()
            .collect();
        let rows = atr_checks(&atr, false);
        assert_eq!(outcome(&rows, "atr.valid"), Outcome::Fail);
        assert_eq!(outcome(&rows, "atr.known"), Outcome::Pass);
        assert_eq!(rows[1].detail, "Multiflex");
    }

    #[test]
    fn html_escapes_and_colours() {
        let page = html(&sample());
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("Reader &lt;&amp;&gt; &quot;one&quot;"));
        assert!(page.contains("<tr class=\"fail\">") && page.contains("<tr class=\"pass\">"));
        assert!(page.contains("1 pass") && page.contains("1 fail"));
        assert!(page.contains("x &lt; y"));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
        assert_eq!(sample().tally(), [1, 0, 1, 0]);
    }
}
