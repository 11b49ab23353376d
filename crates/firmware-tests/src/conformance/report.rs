//! What the suite reports: one [`CheckResult`] per check, in the order they ran, and the counts.

use std::fmt;

use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Verdict {
    /// The card behaves as expected.
    #[serde(rename = "pass")]
    Pass,
    /// The card works, but something needs a look (few PIN tries left, an expiry close by, a
    /// behaviour the standard allows but does not recommend).
    #[serde(rename = "warn")]
    Warn,
    /// The card does not behave as expected, or its data is wrong.
    #[serde(rename = "fail")]
    Fail,
    /// Not run: it does not apply to this card, or what it needs is missing (no trust
    /// anchors, the application it checks is absent, an earlier exchange failed).
    #[serde(rename = "skip")]
    Skipped,
}

impl Verdict {
    /// The upper-case word of the text report: `PASS`, `WARN`, `FAIL`, `SKIP`.
    pub const fn word(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skipped => "SKIP",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Stable identifier, `group.name` (`iso.wrong_cla`, `pboc.log`): docs/conformance.md lists
    /// them all.
    pub id: &'static str,
    /// What the check checks, in a few words.
    pub title: &'static str,
    /// The outcome.
    pub verdict: Verdict,
    /// Why: what the card answered or holds. Never personal data in clear, never a PIN or key.
    pub reason: String,
}

/// How many checks ended with each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Passed with a warning.
    pub warn: usize,
    /// Failed.
    pub fail: usize,
    /// Not run.
    pub skipped: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} warnings, {} failed, {} skipped",
            self.pass, self.warn, self.fail, self.skipped
        )
    }
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every check, in the order it ran.
    pub checks: Vec<CheckResult>,
    /// The counts of [`Report::checks`].
    pub summary: Summary,
    /// APDUs exchanged on the wire (GET RESPONSE and re-sends included).
    pub apdus: u64,
}

impl Report {
    /// Add a result and count it.
    pub(crate) fn push(&mut self, result: CheckResult) {
        let s = &mut self.summary;
        match result.verdict {
            Verdict::Pass => s.pass += 1,
            Verdict::Warn => s.warn += 1,
            Verdict::Fail => s.fail += 1,
            Verdict::Skipped => s.skipped += 1,
        }
        self.checks.push(result);
    }

    /// The result of check `id`, if it ran.
    pub fn get(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.summary.fail == 0
    }
}

impl fmt::Display for Report {
    /// One line per check, `VERDICT  id  reason`, then the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for c in &self.checks {
            writeln!(f, "{}  {:width$}  {}", c.verdict, c.id, c.reason)?;
        }
        write!(f, "{}", self.summary)
    }
}
