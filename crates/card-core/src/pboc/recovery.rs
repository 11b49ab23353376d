//! Did a torn debit happen? (docs/pboc-profile.md "Recovery of a torn debit"; the card commits
//! balance, ATC and log together, JR/T 0025.12 §7.4.1.)
//!
//! The kiosk persists a [`DebitIntent`] before the command that can debit the card. When a card
//! comes back with an intent pending, [`check_debit`] reads, from the freshly selected
//! application, the ATC (GET DATA `9F36`), the electronic cash balance (`9F79`) and the
//! transaction log from the newest record down to the first one older than the intent, and
//! answers:
//!
//! - [`Recovery::Completed`]: a log record newer than the intent's ATC has its amount and date
//!   (the card's ATC moved past the one recorded and the log shows the debit);
//! - [`Recovery::NotDone`]: no such record, and nothing contradicts it;
//! - [`Recovery::Unclear`]: the evidence disagrees or is missing, with the reason.

use crate::channel::{CardChannel, CardSession};

use super::PbocError;
use super::data::Amount;
use super::ec::{LogRecord, read_log_format};
use super::outcome::DebitIntent;
use super::records::read_record_command;
use super::risk::{get_amount, get_counter};
use super::select::SelectedApplication;
use crate::status::StatusWord;

/// Why the card's state does not settle the intent.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnclearReason {
    /// The intent has no ATC, so nothing can be compared.
    #[error("the intent recorded no ATC")]
    NoAtcRecorded,
    /// The card does not give its ATC.
    #[error("the card does not give its ATC")]
    AtcUnreadable,
    /// The card's ATC is below the recorded one: another card, or another application.
    #[error("the card's ATC {now} is below the recorded {recorded}")]
    AtcWentBack {
        /// ATC recorded in the intent.
        recorded: u16,
        /// ATC now.
        now: u16,
    },
    /// The application has no transaction log entry `9F4D`, or its log cannot be read.
    #[error("the transaction log cannot be read")]
    NoLog,
    /// More than one newer log record matches.
    #[error("{0} log records match the intent")]
    Ambiguous(usize),
    /// No matching record, yet the balance moved with nothing newer in the log.
    #[error("the balance changed from {before} to {now} with no newer log record")]
    BalanceMoved {
        /// Balance in the intent.
        before: Amount,
        /// Balance now.
        now: Amount,
    },
    /// A matching record, but the balance did not go down by the amount.
    #[error("the log shows the debit, but the balance is {now} where {expected} is expected")]
    BalanceMismatch {
        /// Balance expected after the debit.
        expected: Amount,
        /// Balance now.
        now: Amount,
    },
}

/// The answer about a pending intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The debit happened: the log record that shows it.
    Completed(LogRecord),
    /// The debit did not happen.
    NotDone,
    /// The card's state does not settle it.
    Unclear(UnclearReason),
}

/// Most log records read looking for the debit.
const MAX_RECORDS: u8 = 30;

/// Check a pending intent against the card (module documentation). `app` is the application
/// as just selected (its FCI gives the log entry `9F4D`).
pub fn check_debit<C: CardChannel>(
    s: &mut CardSession<C>,
    app: &SelectedApplication,
    intent: &DebitIntent,
) -> Result<Recovery, PbocError> {
    let Some(before) = intent.atc_before else {
        return Ok(Recovery::Unclear(UnclearReason::NoAtcRecorded));
    };
    let Some(now) = get_counter(s, 0x9f36)? else {
        return Ok(Recovery::Unclear(UnclearReason::AtcUnreadable));
    };
    if now < before {
        return Ok(Recovery::Unclear(UnclearReason::AtcWentBack {
            recorded: before,
            now,
        }));
    }
    let balance_now = get_amount(s, 0x9f79)?;
    let Some(entry) = app.fci.log_entry else {
        return Ok(Recovery::Unclear(UnclearReason::NoLog));
    };
    let Ok(format) = read_log_format(s, 0x9f4f) else {
        return Ok(Recovery::Unclear(UnclearReason::NoLog));
    };
    let mut newer: Vec<LogRecord> = Vec::new();
    for record in 1..=entry.records.min(MAX_RECORDS) {
        let r = s.send(&read_record_command(entry.sfi, record))?;
        match r.sw() {
            StatusWord::Success => {}
            StatusWord::RecordNotFound => break,
            _ => return Ok(Recovery::Unclear(UnclearReason::NoLog)),
        }
        let Ok(fields) = format.split(r.data()) else {
            return Ok(Recovery::Unclear(UnclearReason::NoLog));
        };
        let rec = LogRecord {
            fields: fields.into_iter().map(|(t, v)| (t, v.to_vec())).collect(),
        };
        match rec.atc() {
            Some(atc) if atc > before => newer.push(rec),
            _ => break,
        }
    }
    let mut matches: Vec<LogRecord> = newer
        .iter()
        .filter(|r| r.amount() == Some(intent.amount) && r.date() == Some(intent.date))
        .cloned()
        .collect();
    match (matches.len(), intent.ec_balance_before, balance_now) {
        (0, Some(b), Some(n)) if newer.is_empty() && b != n => {
            Ok(Recovery::Unclear(UnclearReason::BalanceMoved {
                before: b,
                now: n,
            }))
        }
        (0, _, _) => Ok(Recovery::NotDone),
        (1, Some(b), Some(n)) if newer.len() == 1 => {
            let expected = b.checked_sub(intent.amount).unwrap_or(Amount::ZERO);
            if expected == n {
                Ok(Recovery::Completed(matches.remove(0)))
            } else {
                Ok(Recovery::Unclear(UnclearReason::BalanceMismatch {
                    expected,
                    now: n,
                }))
            }
        }
        (1, _, _) => Ok(Recovery::Completed(matches.remove(0))),
        (n, _, _) => Ok(Recovery::Unclear(UnclearReason::Ambiguous(n))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pboc::data::{Date, Time};
    use crate::pboc::select::{Fci, LogEntry};
    use crate::transcript::ReplayChannel;

    fn app() -> SelectedApplication {
        SelectedApplication {
            aid: crate::pboc::AID_DEBIT.to_vec(),
            fci: Fci {
                log_entry: Some(LogEntry {
                    sfi: 11,
                    records: 10,
                }),
                ..Fci::default()
            },
            raw_fci: Vec::new(),
        }
    }

    fn intent() -> DebitIntent {
        DebitIntent {
            aid: crate::pboc::AID_DEBIT.to_vec(),
            pan: None,
            psn: None,
            atc_before: Some(8),
            amount: Amount::new(150).unwrap(),
            currency: [0x01, 0x56],
            date: Date::new(2026, 11, 28).unwrap(),
            time: Time::new(12, 0, 0).unwrap(),
            ec_balance_before: Amount::new(50000),
        }
    }

    const FORMAT: &str = "> 80CA9F4F00\n< 9F4F0D 9A039F21039F02069F36029C01 9000\n";

    fn run(atc: &str, balance: &str, records: &[&str]) -> Recovery {
        let mut script = format!(
            "> 80CA9F3600\n< 9F3602{atc} 9000\n> 80CA9F7900\n< 9F7906{balance} 9000\n{FORMAT}"
        );
        for (i, r) in records.iter().enumerate() {
            script += &format!("> 00B2{:02X}5C00\n< {r}\n", i + 1);
        }
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let out = check_debit(&mut s, &app(), &intent()).unwrap();
        s.channel().assert_finished().unwrap();
        out
    }

    #[test]
    fn completed_not_done_unclear() {
        let ours = "261128 120000 000000000150 0009 00 9000";
        let older = "261127 110000 000000000200 0008 00 9000";
        assert!(matches!(
            run("0009", "000000049850", &[ours, older]),
            Recovery::Completed(r) if r.atc() == Some(9)
        ));
        assert_eq!(run("0009", "000000050000", &[older]), Recovery::NotDone);
        assert_eq!(run("0008", "000000050000", &["6A83"]), Recovery::NotDone);
        assert_eq!(
            run("0009", "000000049000", &[older]),
            Recovery::Unclear(UnclearReason::BalanceMoved {
                before: Amount::new(50000).unwrap(),
                now: Amount::new(49000).unwrap()
            })
        );
        assert_eq!(
            run("0009", "000000050000", &[ours, older]),
            Recovery::Unclear(UnclearReason::BalanceMismatch {
                expected: Amount::new(49850).unwrap(),
                now: Amount::new(50000).unwrap()
            })
        );
        let mut s =
            CardSession::new(ReplayChannel::parse("> 80CA9F3600\n< 9F36020007 9000\n").unwrap());
        assert_eq!(
            check_debit(&mut s, &app(), &intent()).unwrap(),
            Recovery::Unclear(UnclearReason::AtcWentBack {
                recorded: 8,
                now: 7
            })
        );
    }
}
