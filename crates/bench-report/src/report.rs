//! The report's pure parts: reading the JSON lines, judging goals, rendering tables and bench
//! outputs, and replacing the generated sections of the document in place.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// One figure as a bench wrote it (see `emit.rs`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    /// The bench binary.
    pub bench: String,
    /// The row.
    pub case: String,
    /// Unit of `ours` and `peer`.
    pub unit: String,
    /// Our figure.
    pub ours: Option<f64>,
    /// The peer's figure, same run.
    pub peer: Option<f64>,
    /// What the peer is.
    #[serde(default)]
    pub peer_name: String,
    /// `higher` or `lower`.
    pub better: String,
    /// The goal, if the issue set one.
    pub goal: Option<f64>,
    /// What the goal bounds: `ratio` (ours / peer) or `ours`.
    pub goal_on: Option<String>,
    /// Plot this figure belongs to.
    pub plot: Option<String>,
    /// Curve within the plot.
    pub series: Option<String>,
    /// x of the point.
    pub x: Option<f64>,
}

impl Record {
    /// ours / peer.
    pub fn ratio(&self) -> Option<f64> {
        match (self.ours, self.peer) {
            (Some(o), Some(p)) if p != 0.0 => Some(o / p),
            _ => None,
        }
    }

    fn lower_is_better(&self) -> bool {
        self.better == "lower"
    }

    /// The goal as text, e.g. `ratio ≥ 0.80` or `≤ 2 ms`.
    pub fn goal_text(&self) -> String {
        let Some(g) = self.goal else {
            return "—".into();
        };
        let op = if self.lower_is_better() { "≤" } else { "≥" };
        match self.goal_on.as_deref() {
            Some("ratio") => format!("ratio {op} {}", fmt_num(g)),
            _ => format!("{op} {} {}", fmt_num(g), self.unit),
        }
    }

    /// `met`, `missed by N %` (how far the judged value is from the goal), or `—` without a
    /// goal or a figure to judge.
    pub fn verdict(&self) -> String {
        let Some(goal) = self.goal else {
            return "—".into();
        };
        let value = match self.goal_on.as_deref() {
            Some("ratio") => self.ratio(),
            _ => self.ours,
        };
        let Some(v) = value else {
            return "not measured".into();
        };
        let met = if self.lower_is_better() {
            v <= goal
        } else {
            v >= goal
        };
        if met {
            "met".into()
        } else if self.lower_is_better() {
            format!("**missed**: {} % over", pct((v / goal - 1.0) * 100.0))
        } else {
            format!("**missed**: {} % short", pct((1.0 - v / goal) * 100.0))
        }
    }
}

/// A percentage: one decimal under 1 % (a miss by 0.4 % is not "0 %"), none above.
fn pct(p: f64) -> String {
    if p < 1.0 {
        format!("{p:.1}")
    } else {
        format!("{p:.0}")
    }
}

/// Parse JSON lines (blank lines skipped); an error names the line.
pub fn parse_lines(text: &str) -> Result<Vec<Record>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<Record>(l).with_context(|| format!("BENCH_JSON line {}", i + 1))
        })
        .collect()
}

/// A figure for a table: three significant digits, no exponent.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{v:.0}");
        // Thin grouping for readability: 12 345.
        let (sign, digits) = s.split_at(usize::from(s.starts_with('-')));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The table of every figure against its peer: one row per record, benches in `order` first.
pub fn summary_table(records: &[Record], order: &[&str]) -> String {
    let mut out = String::from(
        "| bench | figure | ours | peer (same run) | peer's figure | ours / peer | goal | verdict |\n\
         |---|---|---:|---|---:|---:|---|---|\n",
    );
    let mut benches: Vec<&str> = order.to_vec();
    for r in records {
        if !benches.contains(&r.bench.as_str()) {
            benches.push(&r.bench);
        }
    }
    for b in benches {
        for r in records.iter().filter(|r| r.bench == b) {
            let num =
                |v: Option<f64>| v.map_or("—".into(), |v| format!("{} {}", fmt_num(v), r.unit));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&r.bench),
                cell(&r.case),
                num(r.ours),
                if r.peer_name.is_empty() {
                    "—".into()
                } else {
                    cell(&r.peer_name)
                },
                num(r.peer),
                r.ratio().map_or("—".into(), |v| format!("{v:.2}")),
                r.goal_text(),
                r.verdict(),
            );
        }
    }
    out
}

/// The figures that miss their goal, one line each, for the list under the summary.
pub fn misses(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.verdict().starts_with("**missed"))
        .map(|r| {
            format!(
                "{} — {}: {} (goal {})",
                r.bench,
                r.case,
                r.verdict(),
                r.goal_text()
            )
        })
        .collect()
}

/// A bench's printed output made fit for the document: tables as they are, headings demoted to
/// bold lines (the document owns the headings), every other line a paragraph of its own.
pub fn render_output(text: &str) -> String {
    let mut out = String::new();
    let mut in_table = false;
    for line in text.lines() {
        let t = line.trim_end();
        if t.starts_with('|') {
            if !in_table && !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            in_table = true;
            out.push_str(t);
            out.push('\n');
            continue;
        }
        if in_table {
            out.push('\n');
            in_table = false;
        }
        if t.trim().is_empty() {
            continue;
        }
        let t = t.trim_start_matches('#').trim();
        let t = if line.trim_start().starts_with('#') {
            format!("**{t}**")
        } else {
            t.to_string()
        };
        out.push_str(&t);
        out.push_str("\n\n");
    }
    out.trim_end().to_string() + "\n"
}

/// Byte offsets of the lines of `doc` that are exactly `marker` (markers quoted inside prose,
/// such as in backticks, are not lines of their own and do not count).
fn marker_lines(doc: &str, marker: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    for line in doc.split_inclusive('\n') {
        if line.trim_end() == marker {
            out.push(pos);
        }
        pos += line.len();
    }
    out
}

/// Replace the lines between the line `<!-- generated:NAME -->` and the line
/// `<!-- /generated:NAME -->` by `content`, keeping both markers. Fails if either is missing,
/// doubled or out of order.
pub fn replace_section(doc: &str, name: &str, content: &str) -> Result<String> {
    let open = format!("<!-- generated:{name} -->");
    let close = format!("<!-- /generated:{name} -->");
    let (opens, closes) = (marker_lines(doc, &open), marker_lines(doc, &close));
    let (&[a], &[b]) = (opens.as_slice(), closes.as_slice()) else {
        bail!("the document needs exactly one line {open} and one line {close}");
    };
    if b < a {
        bail!("section {name}: the closing marker comes first");
    }
    let start = a + open.len();
    let mut out = String::with_capacity(doc.len() + content.len());
    out.push_str(&doc[..start]);
    out.push('\n');
    out.push_str(content.trim_matches('\n'));
    out.push('\n');
    out.push_str(&doc[b..]);
    Ok(out)
}

/// The names of every generated section in the document, in order.
pub fn section_names(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|l| {
            l.trim_end()
                .strip_prefix("<!-- generated:")?
                .strip_suffix(" -->")
        })
        .map(str::to_string)
        .collect()
}

/// Points per plot: plot id → curve name → (x, y) sorted by x. Each record gives a point of its
/// own curve (ours) and, with a peer, one of the peer's curve.
pub fn plot_series(records: &[Record]) -> BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>> {
    let mut plots: BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>> = BTreeMap::new();
    for r in records {
        let (Some(plot), Some(x), Some(y)) = (&r.plot, r.x, r.ours) else {
            continue;
        };
        let series = r.series.clone().unwrap_or_else(|| "ours".into());
        let curves = plots.entry(plot.clone()).or_default();
        curves.entry(series).or_default().push((x, y));
        if let Some(p) = r.peer {
            let name = format!("peer: {}", r.peer_name);
            let pts = curves.entry(name).or_default();
            if !pts.iter().any(|&(px, _)| px == x) {
                pts.push((x, p));
            }
        }
        if let (Some(g), Some("ours")) = (r.goal, r.goal_on.as_deref()) {
            let name = format!("goal: {} {}", fmt_num(g), r.unit);
            let pts = curves.entry(name).or_default();
            if !pts.iter().any(|&(px, _)| px == x) {
                pts.push((x, g));
            }
        }
    }
    for curves in plots.values_mut() {
        for pts in curves.values_mut() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    plots
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;

    #[test]
    fn emitted_lines_parse_back_with_every_field() {
        let line = crate::emit::record("crypto", "SM2 \"sign\" | fast", "/s", 5241.5)
            .peer("OpenSSL 3.0", Some(2720.0))
            .goal_ratio(1.0)
            .plot("p", "s", 4.0)
            .to_json();
        let recs = parse_lines(&format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(recs.len(), 2);
        let r = &recs[0];
        assert_eq!(r.bench, "crypto");
        assert_eq!(r.case, "SM2 \"sign\" | fast");
        assert_eq!(r.ours, Some(5241.5));
        assert_eq!(r.peer, Some(2720.0));
        assert_eq!(r.peer_name, "OpenSSL 3.0");
        assert_eq!(r.better, "higher");
        assert_eq!((r.goal, r.goal_on.as_deref()), (Some(1.0), Some("ratio")));
        assert_eq!(
            (r.plot.as_deref(), r.series.as_deref(), r.x),
            (Some("p"), Some("s"), Some(4.0))
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let good = crate::emit::record("a", "b", "ms", 1.0).to_json();
        let err = parse_lines(&format!("{good}\n{{not json\n")).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn non_finite_figures_are_null() {
        let line = crate::emit::record("a", "b", "ms", f64::NAN)
            .peer("p", Some(f64::INFINITY))
            .to_json();
        let r = &parse_lines(&line).unwrap()[0];
        assert_eq!((r.ours, r.peer, r.ratio()), (None, None, None));
        assert_eq!(r.verdict(), "—");
    }

    #[test]
    fn goals_are_judged_in_the_right_direction() {
        let rec =
            |ours: f64, peer: f64| crate::emit::record("b", "c", "ms", ours).peer("p", Some(peer));
        let parse = |r: crate::emit::Record| parse_lines(&r.to_json()).unwrap().remove(0);
        // Higher is better, goal on the ratio.
        assert_eq!(parse(rec(90.0, 100.0).goal_ratio(0.8)).verdict(), "met");
        assert_eq!(
            parse(rec(60.0, 100.0).goal_ratio(0.8)).verdict(),
            "**missed**: 25 % short"
        );
        assert_eq!(
            parse(rec(4978.0, 1.0).goal_ours(5000.0)).verdict(),
            "**missed**: 0.4 % short"
        );
        // Lower is better, goal on the figure.
        assert_eq!(
            parse(rec(1.5, 1.0).lower_is_better().goal_ours(2.0)).verdict(),
            "met"
        );
        assert_eq!(
            parse(rec(3.0, 1.0).lower_is_better().goal_ours(2.0)).verdict(),
            "**missed**: 50 % over"
        );
        assert_eq!(
            parse(rec(3.0, 1.0).lower_is_better().goal_ours(2.0)).goal_text(),
            "≤ 2.00 ms"
        );
        let m = misses(&[
            parse(rec(3.0, 1.0).lower_is_better().goal_ratio(1.05)),
            parse(rec(1.0, 1.0)),
        ]);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("186 % over"), "{m:?}");
    }

    #[test]
    fn a_section_is_replaced_in_place_and_the_prose_kept() {
        let doc = "# T\n\nprose before\n\n<!-- generated:a -->\nold table\n<!-- /generated:a -->\n\nprose after\n<!-- generated:b -->\n<!-- /generated:b -->\n";
        let out = replace_section(doc, "a", "| new |\n").unwrap();
        assert_eq!(
            out,
            "# T\n\nprose before\n\n<!-- generated:a -->\n| new |\n<!-- /generated:a -->\n\nprose after\n<!-- generated:b -->\n<!-- /generated:b -->\n"
        );
        // Idempotent, and the other section untouched.
        assert_eq!(replace_section(&out, "a", "| new |").unwrap(), out);
        let out = replace_section(&out, "b", "x").unwrap();
        assert!(
            out.ends_with("<!-- generated:b -->\nx\n<!-- /generated:b -->\n"),
            "{out}"
        );
        assert_eq!(section_names(&out), ["a", "b"]);
    }

    #[test]
    fn broken_markers_are_refused() {
        assert!(replace_section("no markers", "a", "x").is_err());
        assert!(
            replace_section("<!-- /generated:a -->\n<!-- generated:a -->\n", "a", "x").is_err()
        );
        assert!(
            replace_section(
                "<!-- generated:a -->\n<!-- generated:a -->\n<!-- /generated:a -->\n",
                "a",
                "x"
            )
            .is_err()
        );
    }

    #[test]
    fn markers_quoted_in_prose_are_not_sections() {
        let doc = "Between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers.\n\
                   <!-- generated:a -->\nold\n<!-- /generated:a -->\n";
        assert_eq!(section_names(doc), ["a"]);
        assert!(replace_section(doc, "NAME", "x").is_err());
        let out = replace_section(doc, "a", "new").unwrap();
        assert!(
            out.starts_with("Between `<!-- generated:NAME -->`"),
            "{out}"
        );
        assert!(
            out.ends_with("<!-- generated:a -->\nnew\n<!-- /generated:a -->\n"),
            "{out}"
        );
    }

    #[test]
    fn bench_output_keeps_tables_and_demotes_headings() {
        let text = "## Part one\n\ncaption line\n| a | b |\n|---|---|\n| 1 | 2 |\nafter\n";
        assert_eq!(
            render_output(text),
            "**Part one**\n\ncaption line\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nafter\n"
        );
    }

    #[test]
    fn plots_gather_ours_peer_and_goal_curves() {
        let lines: Vec<String> = [(64.0, 90.0), (1.0, 7.0), (4.0, 80.0)]
            .iter()
            .map(|&(x, y)| {
                crate::emit::record("h", "c", "/s", y)
                    .peer("HSM", Some(10.0))
                    .plot("clients", "SM4", x)
                    .to_json()
            })
            .chain([crate::emit::record("s", "c", "/s", 3.0)
                .goal_ours(5.0)
                .plot("batch", "one", 10.0)
                .to_json()])
            .collect();
        let plots = plot_series(&parse_lines(&lines.join("\n")).unwrap());
        assert_eq!(
            plots["clients"]["SM4"],
            vec![(1.0, 7.0), (4.0, 80.0), (64.0, 90.0)]
        );
        assert_eq!(plots["clients"]["peer: HSM"].len(), 3);
        assert_eq!(plots["batch"]["goal: 5.00 /s"], vec![(10.0, 5.0)]);
    }

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(fmt_num(12345.6), "12 346");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(0.1234), "0.123");
    }
}
