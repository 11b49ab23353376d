//! The electronic cash logs and the data object lists they are read with: the log formats
//! (`9F4F`, `DF4F`, a DOL), the transaction and load log records split by them, the typed
//! fields of a record, the whole-log answer of the load log, and the recovery check of a torn
//! debit that reads them, over a card that answers the input. Nothing panics; a DOL re-encodes
//! to itself and splits the data it builds; the readers read no more records than the log entry
//! names (and the recovery check no more than 30).
//!
//! Input: byte 0 = length of the format DOL; byte 1 = records the log entry claims; bytes 2-3 =
//! the card's ATC; then the format, then the log records back to back (each as long as the
//! format says), the last one possibly short.

#![no_main]

use card_core::CardSession;
use card_core::channel::{CardChannel, TransportError};
use card_core::pboc::dol::Dol;
use card_core::pboc::ec::{self, LogRecord};
use card_core::pboc::outcome::DebitIntent;
use card_core::pboc::recovery::check_debit;
use card_core::pboc::select::{Fci, LogEntry, SelectedApplication};
use card_core::pboc::store::DataStore;
use card_core::pboc::{Amount, Date, Time};
use card_core::tlv::{Tag, Tlv};
use libfuzzer_sys::fuzz_target;

const LOG_SFI: u8 = 11;
const LOAD_LOG_SFI: u8 = 12;

/// A card whose log formats and records are the input.
struct Logs<'a> {
    format: &'a [u8],
    records: &'a [u8],
    atc: [u8; 2],
    record_len: usize,
}

impl Logs<'_> {
    fn data(tag: u32, value: &[u8]) -> Vec<u8> {
        let mut out = Tlv::primitive(Tag::new(tag), value.to_vec())
            .to_bytes()
            .unwrap_or_default();
        out.extend_from_slice(&[0x90, 0x00]);
        out
    }
}

impl CardChannel for Logs<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let answer = match command {
            [0x80, 0xca, 0x9f, 0x4f, ..] => Self::data(0x9f4f, self.format),
            [0x80, 0xca, 0xdf, 0x4f, ..] => Self::data(0xdf4f, self.format),
            [0x80, 0xca, 0x9f, 0x36, ..] => Self::data(0x9f36, &self.atc),
            [0x80, 0xca, 0x9f, 0x79, ..] => Self::data(0x9f79, &[0, 0, 0, 0, 0x50, 0]),
            // The load log's whole-log answer: all the records bytes.
            [0x00, 0xb2, 0x00, p2, ..] if p2 >> 3 == LOAD_LOG_SFI => {
                let mut v = self.records.to_vec();
                v.extend_from_slice(&[0x90, 0x00]);
                v
            }
            [0x00, 0xb2, n @ 1..=255, p2, ..] if matches!(p2 >> 3, LOG_SFI | LOAD_LOG_SFI) => {
                let len = if p2 >> 3 == LOAD_LOG_SFI {
                    self.record_len + 14
                } else {
                    self.record_len
                };
                let start = usize::from(*n - 1) * len.max(1);
                match self.records.get(start..) {
                    Some(r) if !r.is_empty() => {
                        let mut v = r.get(..len).unwrap_or(r).to_vec();
                        v.extend_from_slice(&[0x90, 0x00]);
                        v
                    }
                    _ => vec![0x6a, 0x83],
                }
            }
            _ => vec![0x6a, 0x88],
        };
        Ok(answer)
    }
}

fn fields(r: &LogRecord) {
    let _ = (
        r.amount(),
        r.date(),
        r.time(),
        r.atc(),
        r.transaction_type(),
        r.currency(),
        r.merchant_name(),
    );
}

fuzz_target!(|data: &[u8]| {
    let [format_len, claimed, a0, a1, rest @ ..] = data else {
        return;
    };
    let (format, records) = rest.split_at(usize::from(*format_len).min(rest.len()));

    // The DOL on its own.
    let Ok(dol) = Dol::parse(format) else {
        let _ = Dol::parse(records);
        return;
    };
    assert_eq!(Dol::parse(&dol.to_bytes()).as_ref(), Ok(&dol));
    if dol.data_len() < 4096 {
        let mut store = DataStore::new();
        for (i, e) in dol.entries().iter().enumerate() {
            if i % 2 == 0 {
                store.insert(
                    e.tag,
                    records.get(..e.len.min(records.len())).unwrap_or_default(),
                );
            }
        }
        let built = dol.build(&store);
        assert_eq!(built.len(), dol.data_len());
        assert_eq!(dol.split(&built).map(|p| p.len()), Ok(dol.entries().len()));
    }
    if let Ok(parts) = dol.split(records) {
        fields(&LogRecord {
            fields: parts.into_iter().map(|(t, v)| (t, v.to_vec())).collect(),
        });
    }
    if dol.data_len() > 1024 {
        return;
    }

    let card = || {
        CardSession::new(Logs {
            format,
            records,
            atc: [*a0, *a1],
            record_len: dol.data_len(),
        })
    };
    let entry = LogEntry {
        sfi: LOG_SFI,
        records: *claimed,
    };
    let load_entry = LogEntry {
        sfi: LOAD_LOG_SFI,
        records: *claimed,
    };

    // The transaction log.
    let mut s = card();
    if let Ok(log) = ec::read_transaction_log(&mut s, entry) {
        assert!(log.len() <= usize::from(*claimed));
        log.iter().for_each(fields);
    }
    assert!(s.exchanges() <= 1 + u64::from(*claimed));

    // The load log, record by record and whole.
    let mut s = card();
    if let Ok(log) = ec::read_load_log(&mut s, load_entry) {
        assert!(log.len() <= usize::from(*claimed));
        log.iter().for_each(|r| fields(&r.data));
    }
    let mut s = card();
    if let Ok(bundle) = ec::read_load_log_all(&mut s, load_entry, None) {
        assert!(bundle.mac_valid.is_none());
        assert_eq!(bundle.entries.len() * 22 + 7, records.len());
    }

    // The recovery check reads the same log.
    let (Some(amount), Some(date), Some(time)) = (
        Amount::new(100),
        Date::new(2026, 3, 15),
        Time::new(10, 20, 30),
    ) else {
        return;
    };
    let app = SelectedApplication {
        aid: vec![0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01],
        fci: Fci {
            log_entry: Some(entry),
            ..Fci::default()
        },
        raw_fci: Vec::new(),
    };
    let intent = DebitIntent {
        aid: app.aid.clone(),
        pan: None,
        psn: None,
        atc_before: Some(u16::from_be_bytes([*a0, *a1]).saturating_sub(1)),
        amount,
        currency: [0x01, 0x56],
        date,
        time,
        ec_balance_before: Amount::new(5100),
    };
    let mut s = card();
    let _ = check_debit(&mut s, &app, &intent);
    // ATC, balance, format and at most 30 records (recovery.rs reads no more), with room for
    // a GET DATA or two more.
    assert!(s.exchanges() <= 40, "{} exchanges", s.exchanges());
});
