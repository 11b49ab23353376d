//! Electronic cash outside a purchase (JR/T 0025.13 §10, 附录 C): the balance and limits by
//! GET DATA (§10.1 表5, 表6), the transaction log (§10.2-§10.3; JR/T 0025.6 附录 B: `9F4D`
//! entry, `9F4F` format by GET DATA, READ RECORD from 1 until `6A83`), the load log (`DF4D`,
//! `DF4F`; records of 表10, and the all-records answer to `READ RECORD P1=00` of 表12/表13,
//! whose MAC the caller's [`LoadLogMacVerifier`] checks), and the electronic cash load (圈存,
//! 附录 B.3.3): an online transaction whose issuer script is `04 DA 9F79 0A <balance> <MAC>`.

use crate::apdu::Command;
use crate::channel::{CardChannel, CardSession};
use crate::status::StatusWord;
use crate::tlv::Tag;

use super::PbocError;
use super::config::{TerminalConfig, TransactionParams, transaction_type};
use super::contact::{Hooks, run_contact};
use super::data::{Amount, Date, Time};
use super::dol::Dol;
use super::oda::CaStore;
use super::outcome::TransactionRecord;
use super::records::read_record_command;
use super::risk::{get_amount, get_data};
use super::select::{self, Interface, LogEntry, SelectedApplication};

/// The electronic cash amounts of a card (JR/T 0025.13 §10.1, 附录 C.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcBalances {
    /// Electronic cash balance `9F79`.
    pub balance: Amount,
    /// Balance limit `9F77`, if the card tells it.
    pub balance_limit: Option<Amount>,
    /// Single transaction limit `9F78`, if the card tells it.
    pub single_transaction_limit: Option<Amount>,
    /// Reset threshold `9F6D`, if the card tells it.
    pub reset_threshold: Option<Amount>,
}

/// GET DATA of the electronic cash amounts in the selected application: `9F79` is required,
/// the limits are read if the card gives them.
pub fn read_balances<C: CardChannel>(s: &mut CardSession<C>) -> Result<EcBalances, PbocError> {
    let r = s.send(&Command::new(0x80, 0xca, 0x9f, 0x79).expect_data())?;
    if !r.is_success() {
        return Err(PbocError::Status {
            command: "GET DATA 9F79",
            sw: r.sw(),
        });
    }
    let balance = crate::tlv::TlvIter::new(r.data())
        .find(Tag::new(0x9f79))
        .map_err(|source| PbocError::Tlv {
            what: "GET DATA 9F79 response",
            source,
        })?
        .and_then(|t| Amount::from_bcd(t.value))
        .ok_or(PbocError::BadData {
            tag: Tag::new(0x9f79),
        })?;
    Ok(EcBalances {
        balance,
        balance_limit: get_amount(s, 0x9f77)?,
        single_transaction_limit: get_amount(s, 0x9f78)?,
        reset_threshold: get_amount(s, 0x9f6d)?,
    })
}

/// Select the debit/credit application (PSE or AID list, JR/T 0025.6 §7.2) and read its
/// electronic cash amounts.
pub fn balance_inquiry<C: CardChannel>(
    s: &mut CardSession<C>,
    terminal: &TerminalConfig,
) -> Result<(SelectedApplication, EcBalances), PbocError> {
    let app = select_application(s, terminal)?;
    let balances = read_balances(s)?;
    Ok((app, balances))
}

/// Select the debit/credit application over the contact interface.
pub fn select_application<C: CardChannel>(
    s: &mut CardSession<C>,
    terminal: &TerminalConfig,
) -> Result<SelectedApplication, PbocError> {
    let mut list = select::build_candidate_list(s, &terminal.supported_aids, Interface::Contact)?;
    select::final_select(s, &mut list, terminal.confirmation_supported)
}

/// One record of the transaction log, split by the log format (JR/T 0025.13 表9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The data elements in the order of the format.
    pub fields: Vec<(Tag, Vec<u8>)>,
}

impl LogRecord {
    /// The value of `tag`.
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(t, _)| t.value() == tag)
            .map(|(_, v)| v.as_slice())
    }

    /// Amount, authorised `9F02`.
    pub fn amount(&self) -> Option<Amount> {
        self.get(0x9f02).and_then(Amount::from_bcd)
    }

    /// Transaction date `9A`.
    pub fn date(&self) -> Option<Date> {
        self.get(0x9a).and_then(Date::from_bcd)
    }

    /// Transaction time `9F21`.
    pub fn time(&self) -> Option<Time> {
        self.get(0x9f21).and_then(Time::from_bcd)
    }

    /// Application transaction counter `9F36`.
    pub fn atc(&self) -> Option<u16> {
        self.get(0x9f36)
            .and_then(|v| <[u8; 2]>::try_from(v).ok())
            .map(u16::from_be_bytes)
    }

    /// Transaction type `9C`.
    pub fn transaction_type(&self) -> Option<u8> {
        self.get(0x9c).and_then(|v| v.first().copied())
    }

    /// Transaction currency code `5F2A`.
    pub fn currency(&self) -> Option<[u8; 2]> {
        self.get(0x5f2a).and_then(|v| v.try_into().ok())
    }

    /// Merchant name `9F4E`, without the zero padding (GBK or ASCII as the terminal wrote it).
    pub fn merchant_name(&self) -> Option<&[u8]> {
        self.get(0x9f4e).map(|v| {
            let end = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            v.get(..end).unwrap_or_default()
        })
    }
}

/// GET DATA of a log format (`9F4F` or `DF4F`, JR/T 0025.13 §10.3 表14).
pub fn read_log_format<C: CardChannel>(s: &mut CardSession<C>, tag: u16) -> Result<Dol, PbocError> {
    let value = get_data(s, tag)?.ok_or(PbocError::MissingData {
        tag: Tag::new(u32::from(tag)),
    })?;
    Dol::parse(&value).map_err(|source| PbocError::Dol {
        tag: Tag::new(u32::from(tag)),
        source,
    })
}

/// Read log records 1, 2, ... of `entry` until `6A83` (or the number of records the entry
/// gives), newest first (JR/T 0025.13 §10.2; JR/T 0025.6 附录 B.2). Each record must have the
/// format's length.
fn read_log_records<C: CardChannel>(
    s: &mut CardSession<C>,
    entry: LogEntry,
    record_len: usize,
) -> Result<Vec<Vec<u8>>, PbocError> {
    let mut out = Vec::new();
    for record in 1..=entry.records {
        let r = s.send(&read_record_command(entry.sfi, record))?;
        match r.sw() {
            StatusWord::Success => {}
            StatusWord::RecordNotFound => break,
            sw => {
                return Err(PbocError::ReadRecord {
                    sfi: entry.sfi,
                    record,
                    sw,
                });
            }
        }
        if r.data().len() != record_len {
            return Err(PbocError::Malformed {
                what: "log record",
                reason: "length differs from the log format",
            });
        }
        out.push(r.into_data());
    }
    Ok(out)
}

/// The transaction log: the format by GET DATA `9F4F`, then the records (JR/T 0025.13 §10.2).
pub fn read_transaction_log<C: CardChannel>(
    s: &mut CardSession<C>,
    entry: LogEntry,
) -> Result<Vec<LogRecord>, PbocError> {
    let format = read_log_format(s, 0x9f4f)?;
    read_log_records(s, entry, format.data_len())?
        .iter()
        .map(|raw| split(&format, raw, 0x9f4f))
        .collect()
}

fn split(format: &Dol, raw: &[u8], tag: u32) -> Result<LogRecord, PbocError> {
    Ok(LogRecord {
        fields: format
            .split(raw)
            .map_err(|source| PbocError::Dol {
                tag: Tag::new(tag),
                source,
            })?
            .into_iter()
            .map(|(t, v)| (t, v.to_vec()))
            .collect(),
    })
}

/// One record of the load log (JR/T 0025.13 表10): the PUT DATA's P1 P2, the balance before and
/// after, and the elements of the load log format `DF4F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadLogRecord {
    /// P1 P2 of the PUT DATA (`9F 79` for the balance; `DF 79` for the second currency).
    pub parameter: [u8; 2],
    /// The balance before.
    pub before: Amount,
    /// The balance after.
    pub after: Amount,
    /// The elements of `DF4F`, in order.
    pub data: LogRecord,
}

/// The load log: the format by GET DATA `DF4F`, then the records (JR/T 0025.13 表10, 表11).
pub fn read_load_log<C: CardChannel>(
    s: &mut CardSession<C>,
    entry: LogEntry,
) -> Result<Vec<LoadLogRecord>, PbocError> {
    let format = read_log_format(s, 0xdf4f)?;
    read_log_records(s, entry, 14 + format.data_len())?
        .iter()
        .map(|raw| {
            let (head, rest) = raw.split_first_chunk::<14>().ok_or(PbocError::Malformed {
                what: "load log record",
                reason: "shorter than 14 bytes",
            })?;
            let (parameter, amounts) =
                head.split_first_chunk::<2>().ok_or(PbocError::Malformed {
                    what: "load log record",
                    reason: "shorter than 14 bytes",
                })?;
            let (before, after) = amounts.split_at(6);
            let bad = PbocError::BadData {
                tag: Tag::new(0x9f79),
            };
            Ok(LoadLogRecord {
                parameter: *parameter,
                before: Amount::from_bcd(before).ok_or(bad.clone())?,
                after: Amount::from_bcd(after).ok_or(bad)?,
                data: split(&format, rest, 0xdf4f)?,
            })
        })
        .collect()
}

/// One entry of the all-records answer (JR/T 0025.13 表13, 22 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLogEntry {
    /// P1 P2 of the PUT DATA.
    pub parameter: [u8; 2],
    /// Balance before.
    pub before: Amount,
    /// Balance after.
    pub after: Amount,
    /// Transaction date.
    pub date: Date,
    /// Transaction time.
    pub time: Time,
    /// ATC of the load.
    pub atc: u16,
}

/// The answer to `READ RECORD P1=00` on the load log (JR/T 0025.13 表12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadLogBundle {
    /// The card's ATC now.
    pub atc: u16,
    /// The entries, newest first.
    pub entries: Vec<LoadLogEntry>,
    /// The integrity code.
    pub mac: [u8; 4],
    /// What the verifier said: `Some(true)` verified, `Some(false)` wrong, `None` not checked.
    pub mac_valid: Option<bool>,
}

/// Checks the integrity code of the load log bundle (JR/T 0025.13 表12: the MAC of JR/T
/// 0025.5 附录 C.2 over ATC ‖ count ‖ entries with the card's MAC session key, which only the
/// issuer side — hsm-sim — holds).
pub trait LoadLogMacVerifier {
    /// Whether `mac` is the integrity code of `data` (everything before the MAC).
    fn verify(&self, data: &[u8], mac: &[u8; 4]) -> bool;
}

/// Read the whole load log in one `READ RECORD P1=00` (JR/T 0025.13 表8, 表12, 表13) and,
/// with a verifier, check its integrity code.
pub fn read_load_log_all<C: CardChannel>(
    s: &mut CardSession<C>,
    entry: LogEntry,
    verifier: Option<&dyn LoadLogMacVerifier>,
) -> Result<LoadLogBundle, PbocError> {
    let r = s.send(&Command::new(0x00, 0xb2, 0x00, (entry.sfi << 3) | 0x04).expect_data())?;
    if !r.is_success() {
        return Err(PbocError::ReadRecord {
            sfi: entry.sfi,
            record: 0,
            sw: r.sw(),
        });
    }
    let mut bundle = parse_load_log_bundle(r.data())?;
    if let Some(v) = verifier {
        let data = r
            .data()
            .get(..r.data().len().saturating_sub(4))
            .unwrap_or_default();
        bundle.mac_valid = Some(v.verify(data, &bundle.mac));
    }
    Ok(bundle)
}

/// Read the all-records answer of 表12: ATC (2), count (1), count × 22 bytes (表13), MAC (4).
pub fn parse_load_log_bundle(data: &[u8]) -> Result<LoadLogBundle, PbocError> {
    const WHAT: &str = "load log (READ RECORD P1=00)";
    let malformed = |reason| PbocError::Malformed { what: WHAT, reason };
    let (&[a0, a1, count], rest) = data
        .split_first_chunk::<3>()
        .ok_or(malformed("shorter than 7 bytes"))?;
    let (entries, mac) = rest
        .split_last_chunk::<4>()
        .ok_or(malformed("shorter than 7 bytes"))?;
    let (chunks, extra) = entries.as_chunks::<22>();
    if !extra.is_empty() || chunks.len() != usize::from(count) {
        return Err(malformed("entry count and length disagree"));
    }
    let entries = chunks
        .iter()
        .map(|e| {
            let (parameter, rest) = e.split_first_chunk::<2>().ok_or(malformed("short entry"))?;
            let (before, rest) = rest
                .split_first_chunk::<6>()
                .ok_or(malformed("short entry"))?;
            let (after, rest) = rest
                .split_first_chunk::<6>()
                .ok_or(malformed("short entry"))?;
            let (date, rest) = rest
                .split_first_chunk::<3>()
                .ok_or(malformed("short entry"))?;
            let (time, atc) = rest
                .split_first_chunk::<3>()
                .ok_or(malformed("short entry"))?;
            let atc: [u8; 2] = atc.try_into().map_err(|_| malformed("short entry"))?;
            let bad = |tag: u32| PbocError::BadData { tag: Tag::new(tag) };
            Ok(LoadLogEntry {
                parameter: *parameter,
                before: Amount::from_bcd(before).ok_or(bad(0x9f79))?,
                after: Amount::from_bcd(after).ok_or(bad(0x9f79))?,
                date: Date::from_bcd(date).ok_or(bad(0x9a))?,
                time: Time::from_bcd(time).ok_or(bad(0x9f21))?,
                atc: u16::from_be_bytes(atc),
            })
        })
        .collect::<Result<Vec<_>, PbocError>>()?;
    Ok(LoadLogBundle {
        atc: u16::from_be_bytes([a0, a1]),
        entries,
        mac: *mac,
        mac_valid: None,
    })
}

/// An electronic cash load (圈存, JR/T 0025.13 附录 B.3.3): a contact transaction of type
/// [`transaction_type::EC_LOAD`] for the load amount, forced online, not electronic cash itself;
/// the issuer's answer carries the script `04 DA 9F79 0A <new balance> <MAC>` (表15), which the
/// kernel sends after the second GENERATE AC; the new balance is then read by GET DATA into
/// [`TransactionRecord::ec_balance_after`].
pub fn load<C: CardChannel>(
    s: &mut CardSession<C>,
    terminal: &TerminalConfig,
    ca: &CaStore,
    mut params: TransactionParams,
    hooks: &mut Hooks<'_>,
) -> TransactionRecord {
    params.transaction_type = transaction_type::EC_LOAD;
    params.force_online = true;
    params.allow_ec = false;
    run_contact(s, terminal, ca, params, hooks)
}

/// The PUT DATA command that sets the electronic cash balance (JR/T 0025.13 §10.4 表15,
/// 表16): `04 DA 9F 79 0A <balance n12> <MAC 4>`, for an issuer building the script.
pub fn put_balance_command(balance: Amount, mac: [u8; 4]) -> Vec<u8> {
    let mut out = vec![0x04, 0xda, 0x9f, 0x79, 0x0a];
    out.extend_from_slice(&balance.to_bcd());
    out.extend_from_slice(&mac);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::ReplayChannel;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn bundle_parsing() {
        let entry = "9F79 000000000100 000000050100 261128 093000 0005";
        let data = h(&format!("0007 01 {entry} AABBCCDD"));
        let b = parse_load_log_bundle(&data).unwrap();
        assert_eq!(b.atc, 7);
        assert_eq!(b.entries.len(), 1);
        assert_eq!(b.entries[0].after, Amount::new(50100).unwrap());
        assert_eq!(b.entries[0].atc, 5);
        assert_eq!(b.mac, [0xaa, 0xbb, 0xcc, 0xdd]);
        assert!(
            parse_load_log_bundle(&h("000700AABBCCDD"))
                .unwrap()
                .entries
                .is_empty()
        );
        assert!(parse_load_log_bundle(&h("000702AABBCCDD")).is_err());
        assert!(parse_load_log_bundle(&h("0007")).is_err());
    }

    #[test]
    fn transaction_log_read_until_6a83() {
        let format = "9A039F21039F02069F36029C01";
        let rec1 = "261128 120000 000000000150 0009 00";
        let rec2 = "261127 110000 000000000200 0008 00";
        let script = format!(
            "> 80CA9F4F00\n< 9F4F0D{format} 9000\n\
             > 00B2015C00\n< {rec1} 9000\n> 00B2025C00\n< {rec2} 9000\n> 00B2035C00\n< 6A83\n"
        );
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let log = read_transaction_log(
            &mut s,
            LogEntry {
                sfi: 11,
                records: 10,
            },
        )
        .unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].amount(), Amount::new(150));
        assert_eq!(log[0].atc(), Some(9));
        assert_eq!(log[1].date(), Date::new(2026, 11, 27));
        s.channel().assert_finished().unwrap();
        // A record of the wrong length.
        let script = format!("> 80CA9F4F00\n< 9F4F0D{format} 9000\n> 00B2015C00\n< 2611 9000\n");
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        assert!(matches!(
            read_transaction_log(
                &mut s,
                LogEntry {
                    sfi: 11,
                    records: 10
                }
            ),
            Err(PbocError::Malformed { .. })
        ));
    }

    #[test]
    fn put_balance() {
        assert_eq!(
            put_balance_command(Amount::new(10000).unwrap(), [1, 2, 3, 4]),
            h("04DA9F790A 000000010000 01020304")
        );
    }
}
