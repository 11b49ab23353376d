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
//! - [`Recovery::NotDone`]: no such record, the log reaches back far enough to prove it (below),
//!   and nothing contradicts it;
//! - [`Recovery::Unclear`]: the evidence disagrees or is missing, with the reason.
//!
//! The transaction log is a cyclic file of a fixed number of records, the number `9F4D` gives
//! (JR/T 0025.5 §18.1; ten in the recommendation of §18.2), newest first, `6A83` past the last
//! one written (JR/T 0025.13 §10.2). The ATC was read before GET PROCESSING OPTIONS, which counts
//! the transaction, so the debit under recovery carries the ATC `atc_before + 1`. Absence of its
//! record is proven only when the records read reach that far back: a record with an ATC not
//! above the intent's, the end of the log, or a full log whose oldest record has exactly
//! `atc_before + 1`. A log whose format has no ATC (the recommended one of §18.2 表45 has it)
//! cannot be placed against the intent by record; as each logged transaction has its own ATC,
//! at most `now - atc_before` records are newer than the intent, and those newest records are
//! the ones examined. When the log holds fewer than that because it wrapped (more transactions
//! since the intent than it keeps), or a full log's oldest record is newer than
//! `atc_before + 1`, the debit's record may have been overwritten: the answer is
//! [`UnclearReason::LogWrapped`], never [`Recovery::NotDone`].

use crate::channel::{CardChannel, CardSession};

use super::PbocError;
use super::data::Amount;
use super::ec::{LogRecord, read_log_format};
use super::outcome::DebitIntent;
use super::records::read_record_command;
use super::risk::{get_amount, get_counter};
use super::select::SelectedApplication;
use crate::status::StatusWord;
use crate::tlv::Tag;

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
    /// The application has no transaction log entry `9F4D` (or one of no records), or its log
    /// cannot be read.
    #[error("the transaction log cannot be read")]
    NoLog,
    /// No log record matches, but the log does not reach back to the debit's ATC
    /// (`atc_before + 1`): it is full, and its oldest record is newer than that, or, in a log
    /// without ATCs, the card counted more transactions since the intent than the log holds.
    /// The debit's record may have been overwritten (the cyclic file of JR/T 0025.5 §18.1).
    #[error("the transaction log's {records} records do not reach back to the intent")]
    LogWrapped {
        /// Log records read, all of them possibly newer than the intent.
        records: u8,
        /// ATC of the oldest record read, when the log format carries the ATC.
        oldest_atc: Option<u16>,
    },
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
    let Some(entry) = app.fci.log_entry.filter(|e| e.records > 0) else {
        return Ok(Recovery::Unclear(UnclearReason::NoLog));
    };
    let format = match read_log_format(s, 0x9f4f) {
        Ok(f) => f,
        // The card was pulled or went mute: nothing is known yet, the next insert asks again.
        Err(e @ PbocError::Send(_)) => return Err(e),
        // The card has no usable log format: its log cannot settle the debit.
        Err(_) => return Ok(Recovery::Unclear(UnclearReason::NoLog)),
    };
    let with_atc = format
        .entries()
        .iter()
        .any(|e| e.tag == Tag::new(0x9f36) && e.len == 2);
    // Without ATCs in the log: at most this many records can be newer than the intent.
    let since = usize::from(now.saturating_sub(before));
    let mut newer: Vec<LogRecord> = Vec::new();
    // Whether the records read reach back past the debit's slot, so that a missing record is
    // proven missing (module documentation).
    let mut covered = false;
    let mut read: u8 = 0;
    let mut oldest: Option<u16> = None;
    for record in 1..=entry.records.min(MAX_RECORDS) {
        if !with_atc && newer.len() >= since {
            covered = true;
            break;
        }
        let r = s.send(&read_record_command(entry.sfi, record))?;
        match r.sw() {
            StatusWord::Success => {}
            StatusWord::RecordNotFound => {
                covered = true;
                break;
            }
            _ => return Ok(Recovery::Unclear(UnclearReason::NoLog)),
        }
        let Ok(fields) = format.split(r.data()) else {
            return Ok(Recovery::Unclear(UnclearReason::NoLog));
        };
        read = record;
        let rec = LogRecord {
            fields: fields.into_iter().map(|(t, v)| (t, v.to_vec())).collect(),
        };
        if !with_atc {
            newer.push(rec);
            continue;
        }
        match rec.atc() {
            Some(atc) if atc > before => {
                oldest = Some(atc);
                newer.push(rec);
            }
            _ => {
                covered = true;
                break;
            }
        }
    }
    if with_atc {
        // A full log (or the most read) whose oldest record is the debit's own slot.
        covered |= oldest.is_some_and(|a| u32::from(a) <= u32::from(before) + 1);
    } else {
        covered |= newer.len() >= since;
    }
    // The debit's own record: its amount and date, the ATC the card gave the debit (GET
    // PROCESSING OPTIONS adds one to `atc_before`) when the log keeps ATCs, and its time when
    // the card had one to log (a card logs the elements the terminal sent it; a qPBOC PDOL
    // without `9F21` leaves 00:00:00, which is not compared). A later purchase of the same
    // amount on the same day therefore never passes for it, nor, with times, does the next
    // purchase after a torn qPBOC GET PROCESSING OPTIONS the card never processed, which takes
    // the same ATC. Without times that one case stays open on the card; the server refuses a
    // recovered debit whose ATC a TC of the card used (docs/sync-protocol.md).
    let debit_atc = u32::from(before) + 1;
    let mut matches: Vec<LogRecord> = newer
        .iter()
        .filter(|r| {
            r.amount() == Some(intent.amount)
                && r.date() == Some(intent.date)
                && r.time()
                    .is_none_or(|t| t.to_bcd() == [0; 3] || t == intent.time)
                && (!with_atc || r.atc().map(u32::from) == Some(debit_atc))
        })
        .cloned()
        .collect();
    match (matches.len(), intent.ec_balance_before, balance_now) {
        (0, _, _) if !covered => Ok(Recovery::Unclear(UnclearReason::LogWrapped {
            records: read,
            oldest_atc: oldest,
        })),
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
        app_with_log(10)
    }

    fn app_with_log(records: u8) -> SelectedApplication {
        SelectedApplication {
            aid: crate::pboc::AID_DEBIT.to_vec(),
            fci: Fci {
                log_entry: Some(LogEntry { sfi: 11, records }),
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

    /// Date, time, amount and type: no ATC.
    const FORMAT_NO_ATC: &str = "> 80CA9F4F00\n< 9F4F0A 9A039F21039F02069C01 9000\n";

    fn run(atc: &str, balance: &str, records: &[&str]) -> Recovery {
        run_with(FORMAT, &app(), atc, balance, records)
    }

    /// `check_debit` of [`intent`] (ATC 8, 1.50 on 2026-11-28, balance 500.00) against a card
    /// answering `atc`, `balance`, the log `format` and exactly `records` (each READ RECORD
    /// answer, newest first): the transcript must be used up.
    fn run_with(
        format: &str,
        app: &SelectedApplication,
        atc: &str,
        balance: &str,
        records: &[&str],
    ) -> Recovery {
        let mut script = format!(
            "> 80CA9F3600\n< 9F3602{atc} 9000\n> 80CA9F7900\n< 9F7906{balance} 9000\n{format}"
        );
        for (i, r) in records.iter().enumerate() {
            script += &format!("> 00B2{:02X}5C00\n< {r}\n", i + 1);
        }
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let out = check_debit(&mut s, app, &intent()).unwrap();
        s.channel().assert_finished().unwrap();
        out
    }

    /// Log records of 1.00 on 2026-11-27 (not the intent's), ATCs `newest` down to `oldest`.
    fn others(newest: u16, oldest: u16) -> Vec<String> {
        (oldest..=newest)
            .rev()
            .map(|atc| format!("261127 110000 000000000100 {atc:04X} 00 9000"))
            .collect()
    }

    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_full_log_newer_than_the_debit_is_unclear_not_not_done() {
        // Intent at ATC 8: the debit would be ATC 9. Twenty more transactions later the ten
        // records hold ATCs 29..20; the debit's could have been overwritten.
        let log = others(0x1d, 0x14);
        assert_eq!(
            run("001D", "000000048000", &refs(&log)),
            Recovery::Unclear(UnclearReason::LogWrapped {
                records: 10,
                oldest_atc: Some(0x14)
            })
        );
        // Also when the balance did not move (a load made up for the purchases).
        assert_eq!(
            run("001D", "000000050000", &refs(&log)),
            Recovery::Unclear(UnclearReason::LogWrapped {
                records: 10,
                oldest_atc: Some(0x14)
            })
        );
        // The oldest record one past the debit's ATC: still unclear.
        let log = others(0x13, 0x0a);
        assert_eq!(
            run("0013", "000000049000", &refs(&log)),
            Recovery::Unclear(UnclearReason::LogWrapped {
                records: 10,
                oldest_atc: Some(0x0a)
            })
        );
    }

    #[test]
    fn a_full_log_reaching_the_debits_atc_settles_it() {
        // The oldest of the ten records has ATC 9, the debit's own: it is another
        // transaction, so the debit did not happen.
        let log = others(0x12, 0x09);
        assert_eq!(run("0012", "000000049000", &refs(&log)), Recovery::NotDone);
        // It is the debit: completed (several newer records, so the balance is not compared).
        let mut log = others(0x12, 0x0a);
        log.push("261128 120000 000000000150 0009 00 9000".into());
        assert!(matches!(
            run("0012", "000000049000", &refs(&log)),
            Recovery::Completed(r) if r.atc() == Some(9)
        ));
        // Nine newer records and the end of the log: nothing was overwritten.
        let mut log = others(0x11, 0x09);
        log.push("6A83".into());
        assert_eq!(run("0011", "000000049100", &refs(&log)), Recovery::NotDone);
        // Nine newer records and then one older than the intent.
        let mut log = others(0x11, 0x0a);
        log.push("261127 110000 000000000200 0008 00 9000".into());
        assert_eq!(run("0011", "000000049100", &refs(&log)), Recovery::NotDone);
    }

    #[test]
    fn a_log_longer_than_what_is_read_is_unclear_past_the_limit() {
        // The card says 40 records; 30 are read, all newer than the intent, none matching.
        let log = others(0x30, 0x13);
        assert_eq!(log.len(), usize::from(MAX_RECORDS));
        assert_eq!(
            run_with(
                FORMAT,
                &app_with_log(40),
                "0030",
                "000000040000",
                &refs(&log)
            ),
            Recovery::Unclear(UnclearReason::LogWrapped {
                records: MAX_RECORDS,
                oldest_atc: Some(0x13)
            })
        );
    }

    #[test]
    fn a_card_pulled_at_the_log_format_is_an_error_not_no_log() {
        // The card answers the ATC and the balance, then is gone: the replay has nothing more.
        let script = "> 80CA9F3600\n< 9F36020009 9000\n> 80CA9F7900\n< 9F7906000000049850 9000\n";
        let mut s = CardSession::new(ReplayChannel::parse(script).unwrap());
        assert!(matches!(
            check_debit(&mut s, &app(), &intent()),
            Err(PbocError::Send(_))
        ));
        // A card that has no log format is another matter: its log cannot settle the debit.
        let no_format = "> 80CA9F4F00\n< 6A88\n";
        assert_eq!(
            run_with(no_format, &app(), "0009", "000000049850", &[]),
            Recovery::Unclear(UnclearReason::NoLog)
        );
    }

    #[test]
    fn a_log_entry_of_no_records_is_no_log() {
        assert_eq!(
            run_with("", &app_with_log(0), "0009", "000000049850", &[]),
            Recovery::Unclear(UnclearReason::NoLog)
        );
    }

    #[test]
    fn a_log_without_atcs_is_read_as_far_as_the_atc_moved() {
        let ours = "261128 120000 000000000150 00 9000";
        let other = "261127 110000 000000000100 00 9000";
        let f = FORMAT_NO_ATC;
        // One transaction since the intent: only the newest record can be the debit.
        assert!(matches!(
            run_with(f, &app(), "0009", "000000049850", &[ours]),
            Recovery::Completed(r) if r.amount() == Amount::new(150) && r.atc().is_none()
        ));
        assert_eq!(
            run_with(f, &app(), "0009", "000000050000", &[other]),
            Recovery::NotDone
        );
        // The ATC did not move: nothing can be newer, nothing is read.
        assert_eq!(
            run_with(f, &app(), "0008", "000000050000", &[]),
            Recovery::NotDone
        );
        // Three since, the log ends after two: all that is newer was read.
        assert_eq!(
            run_with(f, &app(), "000B", "000000049800", &[other, other, "6A83"]),
            Recovery::NotDone
        );
        // Twelve since, ten records kept: the debit's may be gone.
        let full = [other; 10];
        assert_eq!(
            run_with(f, &app(), "0014", "000000049000", &full),
            Recovery::Unclear(UnclearReason::LogWrapped {
                records: 10,
                oldest_atc: None
            })
        );
        // Ten since, ten kept: the log covers them all.
        assert_eq!(
            run_with(f, &app(), "0012", "000000049000", &full),
            Recovery::NotDone
        );
    }

    #[test]
    fn a_later_purchase_of_the_same_amount_is_not_taken_for_the_debit() {
        let older = "261127 110000 000000000200 0008 00 9000";
        // The debit's slot (ATC 9) has no record; a purchase of the same amount the same day
        // took ATC 10 (at another terminal, say).
        let later = "261128 130000 000000000150 000A 00 9000";
        assert_eq!(
            run("000A", "000000049850", &[later, older]),
            Recovery::NotDone
        );
        // A torn qPBOC GPO the card never processed: the next purchase takes ATC 9 itself,
        // with the same amount and date but another time.
        let next = "261128 120005 000000000150 0009 00 9000";
        assert_eq!(
            run("0009", "000000049850", &[next, older]),
            Recovery::NotDone
        );
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
