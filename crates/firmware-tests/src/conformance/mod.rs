//! The conformance and health suite: what a careful terminal expects of a social-security
//! card, checked on any card behind any [`CardChannel`] (the software card in-process, the
//! virtual card through pcscd, a real card in a PC/SC or serial reader).
//!
//! [`run`] sends only commands that leave the card as it was, with one documented exception:
//!
//! - ISO/IEC 7816-4 behaviour (`iso.*`): the status word of a wrong class, an unknown
//!   instruction, wrong P1-P2, a wrong Lc and a wrong Le, `6Cxx` and `61xx` through
//!   [`CardSession::send`], and the PIN try counter asked without a PIN (VERIFY with no data,
//!   `63Cx`). No PIN is ever sent, right or wrong;
//! - the social-security application (`ssse.*`): present, its files readable by tag, its dates,
//!   its PIN tries;
//! - the PKI application (`pki.*`): the certificate chain to a trust anchor of
//!   [`Options::trust`] and the card's signature over a fresh challenge;
//! - the PBOC debit/credit application (`pboc.*`): selection, PIN try counter, ATC, electronic
//!   cash balance against its limits, the transaction log against itself and the ATC, the
//!   application dates, and the issuer and ICC certificates. The ICC certificate signs the
//!   records the AFL names, so verifying it needs GET PROCESSING OPTIONS, which counts one
//!   transaction on the card (ATC + 1). [`Options::gpo`] (on by default, and only used when a
//!   trust anchor for the application is given) says whether to send it; without it the ICC
//!   certificate is reported [`Verdict::Skipped`] and the card is left untouched.
//!
//! Every check gets a stable id (`iso.wrong_cla`, `pboc.log`, ...) and a [`Verdict`] with a
//! reason that names what the card answered or holds, never personal data in clear.
//! docs/conformance.md lists the checks with their expected behaviour and source clauses.
//!
//! A transport failure (card pulled, reader gone) fails the check it happened in; the checks
//! after it are [`Verdict::Skipped`] with the cause, so a mute card does not cost one timeout
//! per check. An answer that breaks the transmission rules (no status word, `61xx` without end,
//! `6Cxx` again and again) fails its check; after [`MAX_BROKEN_EXCHANGES`] of them the rest is
//! skipped the same way.

mod dates;
mod iso;
mod pboc;
mod pki;
mod report;
mod ssse;

use card_core::channel::{CardChannel, CardSession, SendError};
use card_core::pboc::CaStore;
use card_core::ssse::Date;

pub use report::{CheckResult, Report, Summary, Verdict};

/// What the suite needs to know besides the card.
#[derive(Debug, Clone)]
pub struct Options {
    /// The date the card's and the certificates' validity is checked against (and the date a
    /// transaction log may not be later than).
    pub today: Date,
    /// Trust anchors: the certification authorities' public keys, SM2 (the social-security CA
    /// under RID `D156000005`, the PBOC CA under `A000000333`) and RSA. Certificate checks of
    /// an application whose RID has no key here are [`Verdict::Skipped`].
    pub trust: CaStore,
    /// PIN tries left at or below this give a warning (a blocked PIN always fails).
    pub pin_tries_low: u8,
    /// An expiry this many days ahead or closer gives a warning.
    pub expiry_warning_days: u32,
    /// Send GET PROCESSING OPTIONS to verify the PBOC ICC certificate (counts one transaction
    /// on the card). Only used when [`Options::trust`] holds the application's CA.
    pub gpo: bool,
    /// Show the electronic cash balance in reasons (it is masked by default, as personal data).
    pub reveal: bool,
}

impl Options {
    /// Defaults for `today`: no trust anchors, warn at 2 PIN tries left or fewer and 30 days
    /// before an expiry, GET PROCESSING OPTIONS allowed, the balance masked.
    pub fn new(today: Date) -> Self {
        Self {
            today,
            trust: CaStore::new(),
            pin_tries_low: 2,
            expiry_warning_days: 30,
            gpo: true,
            reveal: false,
        }
    }

    /// The same with these trust anchors.
    pub fn with_trust(mut self, trust: CaStore) -> Self {
        self.trust = trust;
        self
    }
}

/// Run every check on the card behind `session` and report each one.
///
/// The session should be fresh from the reader (no PIN verified); the suite selects what it
/// needs. Nothing here panics or returns early on a card's answer: whatever the card does is a
/// verdict.
pub fn run<C: CardChannel>(session: &mut CardSession<C>, opts: &Options) -> Report {
    let before = session.exchanges();
    let mut r = Runner::new(session, opts);
    let ssse = ssse::select(&mut r);
    iso::run(&mut r, ssse);
    let identity = ssse::run(&mut r, ssse);
    pki::run(&mut r, identity.as_ref());
    pboc::run(&mut r);
    let mut report = r.report;
    report.apdus = session.exchanges().saturating_sub(before);
    report
}

/// Checks failed by answers that break the transmission rules before the suite stops sending.
pub const MAX_BROKEN_EXCHANGES: usize = 3;

/// What a check found: the verdict and its reason.
pub(crate) type Finding = (Verdict, String);

/// The result of a check's body: what it found, or an exchange that failed.
pub(crate) type Outcome = Result<Finding, SendError>;

pub(crate) fn pass(reason: impl Into<String>) -> Outcome {
    Ok((Verdict::Pass, reason.into()))
}

pub(crate) fn warn(reason: impl Into<String>) -> Outcome {
    Ok((Verdict::Warn, reason.into()))
}

pub(crate) fn fail(reason: impl Into<String>) -> Outcome {
    Ok((Verdict::Fail, reason.into()))
}

pub(crate) fn skip(reason: impl Into<String>) -> Outcome {
    Ok((Verdict::Skipped, reason.into()))
}

/// Runs checks one after the other and collects their results.
pub(crate) struct Runner<'a, C> {
    pub(crate) s: &'a mut CardSession<C>,
    pub(crate) opts: &'a Options,
    pub(crate) report: Report,
    /// Set when an exchange failed in the transport, or too many broke the transmission rules:
    /// the checks after it are skipped.
    stopped: Option<String>,
    /// Checks failed by answers that broke the transmission rules.
    broken: usize,
}

impl<'a, C: CardChannel> Runner<'a, C> {
    fn new(s: &'a mut CardSession<C>, opts: &'a Options) -> Self {
        Self {
            s,
            opts,
            report: Report::default(),
            stopped: None,
            broken: 0,
        }
    }

    /// Run one check and record it; returns its verdict (`Skipped` if an earlier exchange
    /// failed).
    pub(crate) fn check(
        &mut self,
        id: &'static str,
        title: &'static str,
        body: impl FnOnce(&mut CardSession<C>, &Options) -> Outcome,
    ) -> Verdict {
        let (verdict, reason) = match &self.stopped {
            Some(cause) => (Verdict::Skipped, format!("not run: {cause}")),
            None => match body(self.s, self.opts) {
                Ok(found) => found,
                Err(SendError::Transport(e)) => {
                    self.stopped = Some(format!("an earlier exchange failed ({e})"));
                    (Verdict::Fail, format!("the exchange failed: {e}"))
                }
                Err(e) => {
                    self.broken += 1;
                    if self.broken >= MAX_BROKEN_EXCHANGES {
                        self.stopped = Some(format!(
                            "{} exchanges broke the transmission rules (the last: {e})",
                            self.broken
                        ));
                    }
                    (
                        Verdict::Fail,
                        format!("the card's answer broke the exchange: {e}"),
                    )
                }
            },
        };
        self.report.push(CheckResult {
            id,
            title,
            verdict,
            reason,
        });
        verdict
    }

    /// Record a check that does not apply.
    pub(crate) fn skip(
        &mut self,
        id: &'static str,
        title: &'static str,
        reason: impl Into<String>,
    ) {
        let reason = reason.into();
        self.check(id, title, |_, _| skip(reason));
    }
}
