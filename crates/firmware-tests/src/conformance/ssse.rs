//! The social-security application: present, its files readable by tag, its dates, its PIN
//! tries (docs/card-profile.md).

use card_core::channel::CardChannel;
use card_core::ssse::records::Identity;
use card_core::ssse::{self as app, ReadStrategy, SsseError};
use card_core::status::StatusWord;
use card_core::tlv::{Tag, TlvIter};

use super::dates::{self, Validity};
use super::{Outcome, Runner, Verdict, fail, pass, skip, warn};

/// A flow error as a finding; the transport's own failure goes up.
fn finding(what: &str, e: SsseError) -> Outcome {
    match e {
        SsseError::Send(e) => Err(e),
        e => fail(format!("{what}: {e}")),
    }
}

/// `ssse.select`: SELECT by AID answers `9000` with an FCI naming the application. Returns
/// whether the application is there.
pub(crate) fn select<C: CardChannel>(r: &mut Runner<'_, C>) -> bool {
    let verdict = r.check(
        "ssse.select",
        "Social-security application selectable by its AID",
        |s, _| match app::select(s) {
            Ok(fci) => {
                let name = TlvIter::new(&fci)
                    .find_deep(Tag::new(0x84))
                    .ok()
                    .flatten()
                    .map(|t| t.value);
                match name {
                    Some(n) if n == app::AID => pass("selected; the FCI names the AID (84)"),
                    Some(_) => warn("selected, but the FCI names another DF (84)"),
                    None => warn("selected, but the answer has no FCI naming the DF (84)"),
                }
            }
            Err(SsseError::NotSsseCard) => {
                fail("no social-security application: SELECT answered 6A82 (file not found)")
            }
            Err(SsseError::ApplicationBlocked(sw)) => {
                fail(format!("the application is blocked: SELECT answered {sw}"))
            }
            Err(e) => finding("SELECT", e),
        },
    );
    matches!(verdict, Verdict::Pass | Verdict::Warn)
}

/// `ssse.files`, `ssse.card_dates`, `ssse.pin_tries`. Returns the identity read, for the
/// certificate checks.
pub(crate) fn run<C: CardChannel>(r: &mut Runner<'_, C>, present: bool) -> Option<Identity> {
    const FILES: &str = "EF05 and EF06 readable by tag, fields valid";
    const DATES: &str = "Card issued and not expired";
    const PIN: &str = "Cardholder PIN tries left";
    if !present {
        for (id, title) in [
            ("ssse.files", FILES),
            ("ssse.card_dates", DATES),
            ("ssse.pin_tries", PIN),
        ] {
            r.skip(id, title, "no social-security application");
        }
        return None;
    }
    let mut identity = None;
    r.check("ssse.files", FILES, |s, _| {
        let by_tag = match app::read_identity(s, ReadStrategy::ByTag) {
            Ok(id) => id,
            Err(e) => return finding("reading field by field", e),
        };
        let whole = match app::read_identity(s, ReadStrategy::AllRecords) {
            Ok(id) => id,
            Err(e) => return finding("reading the files whole", e),
        };
        let same = by_tag == whole;
        let odd = by_tag.holder.inconsistencies();
        identity = Some(by_tag);
        if !same {
            return fail(
                "EF05/EF06 read by tag and read whole (READ RECORD P2 b3-b1 = 101) differ",
            );
        }
        if !odd.is_empty() {
            return warn(format!(
                "readable, but the cardholder fields disagree: {}",
                odd.join("; ")
            ));
        }
        pass(
            "EF05 and EF06 read by tag and whole alike; card number and social-security number \
             carry valid check characters",
        )
    });
    let Some(id) = identity else {
        r.skip("ssse.card_dates", DATES, "EF05 could not be read");
        pin_tries(r, PIN);
        return None;
    };
    let (issue, expiry) = (id.card.issue_date, id.card.expiry_date);
    r.check("ssse.card_dates", DATES, |_, o| {
        if issue > expiry {
            return fail(format!("issued {issue}, after its expiry date {expiry}"));
        }
        if issue > o.today {
            return fail(format!("issue date {issue} is after today ({})", o.today));
        }
        match dates::validity(expiry, o.today, o.expiry_warning_days) {
            Validity::Valid => pass(format!("issued {issue}, valid through {expiry}")),
            Validity::EndsSoon(n) => warn(format!("expires {expiry}, in {n} days")),
            Validity::Ended(n) => fail(format!("expired {expiry}, {n} days ago")),
        }
    });
    pin_tries(r, PIN);
    Some(id)
}

/// `ssse.pin_tries`: VERIFY without data in the application (never a PIN).
fn pin_tries<C: CardChannel>(r: &mut Runner<'_, C>, title: &'static str) {
    r.check("ssse.pin_tries", title, |s, o| {
        if let Err(e) = app::select(s) {
            return finding("SELECT", e);
        }
        let low = o.pin_tries_low;
        match app::pin_tries_left(s) {
            Ok(None) => pass("the PIN is verified in this session (the card gives no count)"),
            Ok(Some(0)) => fail("the PIN is blocked: no tries left"),
            Ok(Some(n)) if n <= low => warn(format!("only {n} PIN tries left")),
            Ok(Some(n)) => pass(format!("{n} PIN tries left")),
            Err(SsseError::Status {
                sw: StatusWord::ReferencedDataNotFound,
                ..
            }) => skip("the application has no PIN (VERIFY answered 6A88)"),
            Err(e) => finding("VERIFY without data", e),
        }
    });
}
