//! The social-security application's records (EF05 card identification, EF06 cardholder, GBK
//! names, ID and card numbers with their check characters, BCD dates): the record set, the
//! typed records and the field parsers never panic on any bytes; what parses is masked in
//! `Display` and `Debug` (no full ID number, card number or name); the whole identity read runs
//! over a card that answers the input, both ways of reading (all records, by tag).
//!
//! Input: first byte = where EF05's bytes end and EF06's begin; the rest is the two files.

#![no_main]

use card_core::CardSession;
use card_core::channel::{CardChannel, TransportError};
use card_core::ssse::fields::{self, CardNumber, Date, Gender, IdNumber, PersonName};
use card_core::ssse::records::{CardIdentification, Cardholder, RecordSet};
use card_core::ssse::{self, ReadStrategy};
use libfuzzer_sys::fuzz_target;

/// A card that answers SELECT with `9000` and READ RECORD of EF05 and EF06 with the input.
struct Files<'a> {
    ef05: &'a [u8],
    ef06: &'a [u8],
}

impl CardChannel for Files<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut out = match command {
            [_, 0xa4, ..] => Vec::new(),
            [_, 0xb2, _, p2, ..] if p2 >> 3 == ssse::SFI_EF05 => self.ef05.to_vec(),
            [_, 0xb2, _, p2, ..] if p2 >> 3 == ssse::SFI_EF06 => self.ef06.to_vec(),
            _ => return Ok(vec![0x6a, 0x83]),
        };
        out.extend_from_slice(&[0x90, 0x00]);
        Ok(out)
    }
}

fn masked(shown: &str, secret: &str) {
    masked_beside(shown, secret, &[]);
}

/// As [`masked`], where `public` are fields shown in full by design (the issuing organisation,
/// the card identifier): a secret that happens to be part of one of them is not a leak.
fn masked_beside(shown: &str, secret: &str, public: &[String]) {
    // Masking keeps the first (and for card numbers the last) character and stars the rest:
    // a short secret, or one made of stars, may look like its own mask.
    if secret.chars().count() > 3
        && !secret.contains('*')
        && !public.iter().any(|p| p.contains(secret))
    {
        assert!(!shown.contains(secret), "{secret:?} in clear in {shown:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let (ef05, ef06) = rest.split_at(usize::from(cut).min(rest.len()));

    let mut card = RecordSet::new();
    if card.add_records("EF05", ef05).is_ok() {
        for tag in card.tags().collect::<Vec<_>>() {
            assert!(card.get(tag).is_some());
        }
        if let Ok(c) = CardIdentification::from_records(&card) {
            let shown = format!("{c} {c:?}");
            let public = [
                c.issuing_org_text(),
                card_core::apdu::HexFmt(&c.card_id).to_string(),
            ];
            masked_beside(&shown, c.card_number.reveal(), &public);
            let _ = (c.region_code(), c.issuing_org_text());
            if let Ok(today) = Date::new(2026, 3, 15) {
                let _ = c.is_expired(today);
            }
            assert!(CardNumber::parse(c.card_number.reveal()).is_ok());
        }
    }
    let mut holder = RecordSet::new();
    if holder.add_records("EF06", ef06).is_ok()
        && let Ok(h) = Cardholder::from_records(&holder)
    {
        let shown = format!("{h} {h:?}");
        masked(&shown, h.ssn.reveal());
        masked(&shown, h.name.reveal());
        let _ = h.inconsistencies();
        assert_eq!(
            IdNumber::parse(h.ssn.reveal())
                .map(|n| n.reveal().to_string())
                .ok()
                .as_deref(),
            Some(h.ssn.reveal())
        );
    }

    // The field parsers on their own.
    if let Ok(text) = std::str::from_utf8(rest) {
        if let Ok(id) = IdNumber::parse(text) {
            assert_eq!(id.reveal().len(), 18);
            let _ = (id.birth_date(), id.region(), id.to_string());
        }
        if let Ok(n) = CardNumber::parse(text) {
            assert_eq!(n.reveal().len(), 9);
        }
        if let Ok(d) = Date::parse(text) {
            assert_eq!(Date::from_bcd(&d.to_bcd()).ok(), Some(d));
        }
        let _ = IdNumber::check_char(text);
        let _ = CardNumber::check_char(text);
    }
    if let Ok(name) = PersonName::from_gbk(rest) {
        // What decodes encodes back, and decodes to the same name.
        let gbk = name.to_gbk();
        assert_eq!(
            PersonName::from_gbk(&gbk)
                .ok()
                .as_ref()
                .map(PersonName::reveal),
            Some(name.reveal())
        );
    }
    if let Ok(d) = Date::from_bcd(rest) {
        let _ = d.to_string();
    }
    let _ = fields::bcd_digits(rest);
    let _ = rest.first().map(|&b| Gender::from_byte(b));

    // The flow over a card answering the input.
    for strategy in [ReadStrategy::AllRecords, ReadStrategy::ByTag] {
        let mut s = CardSession::new(Files { ef05, ef06 });
        if let Ok(id) = ssse::read_identity(&mut s, strategy) {
            masked(&id.holder.to_string(), id.holder.ssn.reveal());
        }
        // One SELECT, and per file a bulk read and at most one READ RECORD per tag (EF05 has
        // seven, EF06 six and an optional one).
        assert!(s.exchanges() <= 1 + (1 + 7) + (1 + 7));
    }
});
