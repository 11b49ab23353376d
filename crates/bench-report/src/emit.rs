//! Machine-readable bench results: one JSON object per line, appended to the file named by the
//! environment variable `BENCH_JSON` (nothing is written when it is unset).
//!
//! This file has no dependencies so that every bench binary can include it with
//! `#[path = "../../bench-report/src/emit.rs"] mod emit;`; `bench-report` reads the lines back
//! (`bench_report::Record`). A line:
//!
//! `{"bench":"crypto","case":"SM2 sign","unit":"/s","ours":5241,"peer":2720,
//!   "peer_name":"OpenSSL 3.0.19","better":"higher","goal":1,"goal_on":"ratio",
//!   "plot":null,"series":null,"x":null}`
//!
//! `goal_on` says what the goal bounds: `ratio` (ours / peer) or `ours` (the figure itself);
//! `better` says which way is good (`lower` for times).
#![allow(dead_code)]

use std::io::Write;

/// One figure, built with [`record`] and written with [`Record::emit`].
#[derive(Debug, Clone)]
pub struct Record {
    bench: String,
    case: String,
    unit: String,
    ours: f64,
    peer: Option<f64>,
    peer_name: String,
    lower_is_better: bool,
    goal: Option<(f64, &'static str)>,
    plot: Option<(String, String, f64)>,
}

/// A figure of bench `bench`, row `case`, in `unit` (higher is better unless said otherwise).
pub fn record(bench: &str, case: &str, unit: &str, ours: f64) -> Record {
    Record {
        bench: bench.into(),
        case: case.into(),
        unit: unit.into(),
        ours,
        peer: None,
        peer_name: String::new(),
        lower_is_better: false,
        goal: None,
        plot: None,
    }
}

impl Record {
    /// The peer's figure measured in the same run (`None`: not measured).
    pub fn peer(mut self, name: &str, value: Option<f64>) -> Self {
        self.peer_name = name.into();
        self.peer = value;
        self
    }

    /// Lower is better (times).
    pub fn lower_is_better(mut self) -> Self {
        self.lower_is_better = true;
        self
    }

    /// The goal bounds ours / peer.
    pub fn goal_ratio(mut self, goal: f64) -> Self {
        self.goal = Some((goal, "ratio"));
        self
    }

    /// The goal bounds our figure itself.
    pub fn goal_ours(mut self, goal: f64) -> Self {
        self.goal = Some((goal, "ours"));
        self
    }

    /// Also a point of plot `plot`, curve `series`, at `x`.
    pub fn plot(mut self, plot: &str, series: &str, x: f64) -> Self {
        self.plot = Some((plot.into(), series.into(), x));
        self
    }

    /// The JSON line (without the newline).
    pub fn to_json(&self) -> String {
        let (plot, series, x) = match &self.plot {
            Some((p, s, x)) => (string(p), string(s), number(Some(*x))),
            None => ("null".into(), "null".into(), "null".into()),
        };
        let (goal, goal_on) = match self.goal {
            Some((g, on)) => (number(Some(g)), string(on)),
            None => ("null".into(), "null".into()),
        };
        format!(
            "{{\"bench\":{},\"case\":{},\"unit\":{},\"ours\":{},\"peer\":{},\"peer_name\":{},\
             \"better\":{},\"goal\":{goal},\"goal_on\":{goal_on},\"plot\":{plot},\
             \"series\":{series},\"x\":{x}}}",
            string(&self.bench),
            string(&self.case),
            string(&self.unit),
            number(Some(self.ours)),
            number(self.peer),
            string(&self.peer_name),
            string(if self.lower_is_better {
                "lower"
            } else {
                "higher"
            }),
        )
    }

    /// Append the line to `$BENCH_JSON`, if set. A write error is reported on stderr and
    /// otherwise ignored: the printed tables stay the bench's main output.
    pub fn emit(&self) {
        let Some(path) = std::env::var_os("BENCH_JSON") else {
            return;
        };
        let line = self.to_json() + "\n";
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = res {
            eprintln!("BENCH_JSON {}: {e}", path.to_string_lossy());
        }
    }
}

fn number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".into(),
    }
}

fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
