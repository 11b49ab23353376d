//! Property tests of the PBOC kernel's parsers of card bytes: none panics on any input, each
//! error is typed, and the round trips hold (DOL coding and building, AFL, amounts, dates).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use card_core::CardSession;
use card_core::channel::{CardChannel, TransportError};
use card_core::pboc::action::parse_generate_ac_response;
use card_core::pboc::cvm::CvmList;
use card_core::pboc::data::{Amount, Date, Pan, Time};
use card_core::pboc::dol::{Dol, DolEntry, fit};
use card_core::pboc::ec::parse_load_log_bundle;
use card_core::pboc::gpo::{Afl, AflEntry, parse_gpo_response};
use card_core::pboc::online::parse_issuer_scripts;
use card_core::pboc::outcome::ec_balance_from_iad;
use card_core::pboc::records::{CardData, Mandatory, read_afl_records};
use card_core::pboc::select::parse_fci;
use card_core::pboc::store::DataStore;
use card_core::tlv::Tag;
use proptest::prelude::*;

/// A card that answers every command with the same bytes and `9000`.
struct Echo(Vec<u8>);

impl CardChannel for Echo {
    fn transmit(&mut self, _command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut v = self.0.clone();
        v.extend_from_slice(&[0x90, 0x00]);
        Ok(v)
    }
}

fn arb_tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        any::<u8>()
            .prop_filter("single-byte", |b| b & 0x1f != 0x1f && *b != 0)
            .prop_map(|b| Tag::new(u32::from(b))),
        (any::<u8>(), 0u8..0x80)
            .prop_map(|(a, b)| Tag::new((u32::from(a | 0x1f) << 8) | u32::from(b))),
    ]
}

fn arb_dol() -> impl Strategy<Value = Dol> {
    proptest::collection::vec((arb_tag(), 0usize..=255), 0..12).prop_map(|entries| {
        Dol::new(
            entries
                .into_iter()
                .map(|(tag, len)| DolEntry { tag, len })
                .collect(),
        )
    })
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Dol::parse(&bytes);
        let _ = Afl::parse(&bytes);
        let _ = parse_gpo_response(&bytes, true);
        let _ = parse_gpo_response(&bytes, false);
        let _ = parse_generate_ac_response(&bytes);
        let _ = parse_fci(&bytes);
        let _ = CvmList::parse(&bytes);
        let _ = parse_issuer_scripts(&bytes);
        let _ = parse_load_log_bundle(&bytes);
        let _ = ec_balance_from_iad(&bytes);
        let _ = Pan::from_bcd(&bytes);
        let _ = Pan::from_track2(&bytes);
        let _ = Amount::from_bcd(&bytes);
        let _ = Date::from_bcd(&bytes);
        let _ = Time::from_bcd(&bytes);
    }

    #[test]
    fn records_never_panic(record in proptest::collection::vec(any::<u8>(), 0..300), sfi in 1u8..=30) {
        // Whatever a record holds, reading it is a value or a typed error.
        let mut s = CardSession::new(Echo(record));
        let afl = Afl(vec![AflEntry { sfi, first: 1, last: 2, oda_records: 1 }]);
        let mut store = DataStore::new();
        if read_afl_records(&mut s, &afl, &mut store, &[Tag::new(0x82)]).is_ok() {
            let _ = CardData::from_store(&store, Mandatory::DebitCredit);
            let _ = CardData::from_store(&store, Mandatory::Qpboc);
        }
    }

    #[test]
    fn card_data_never_panics(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 14)) {
        let tags = [0x5a, 0x5f24, 0x5f25, 0x5f34, 0x8c, 0x8d, 0x8e, 0x9f07, 0x9f08, 0x9f0d, 0x57, 0x9f14, 0x9f49, 0x9f42];
        let mut store = DataStore::new();
        for (tag, v) in tags.iter().zip(values) {
            store.set(*tag, v);
        }
        let _ = CardData::from_store(&store, Mandatory::DebitCredit);
        let _ = CardData::from_store(&store, Mandatory::Qpboc);
    }

    #[test]
    fn dol_round_trips(dol in arb_dol()) {
        let bytes = dol.to_bytes();
        prop_assert_eq!(Dol::parse(&bytes).unwrap(), dol.clone());
        // Built data has the list's length and splits back into entries of their lengths.
        let built = dol.build(&DataStore::new());
        prop_assert_eq!(built.len(), dol.data_len());
        let parts = dol.split(&built).unwrap();
        prop_assert_eq!(parts.len(), dol.entries().len());
        for ((tag, value), e) in parts.iter().zip(dol.entries()) {
            prop_assert_eq!(*tag, e.tag);
            prop_assert_eq!(value.len(), e.len);
        }
    }

    #[test]
    fn dol_build_fits_every_value(dol in arb_dol(), values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 12)) {
        let mut store = DataStore::new();
        for (e, v) in dol.entries().iter().zip(values) {
            store.insert(e.tag, v);
        }
        let built = dol.build(&store);
        prop_assert_eq!(built.len(), dol.data_len());
    }

    #[test]
    fn numeric_fit_keeps_the_value(minor in 0u64..=999_999_999_999, len in 6usize..=12) {
        let amount = Amount::new(minor).unwrap();
        let fitted = fit(Tag::new(0x9f02), &amount.to_bcd(), len);
        prop_assert_eq!(fitted.len(), len);
        prop_assert_eq!(Amount::from_bcd(&fitted[len - 6..]), Some(amount));
        prop_assert!(fitted[..len - 6].iter().all(|b| *b == 0));
    }

    #[test]
    fn afl_round_trips(entries in proptest::collection::vec((1u8..=30, 1u8..=20, 0u8..=5, 0u8..=5), 0..8)) {
        let afl = Afl(entries
            .into_iter()
            .map(|(sfi, first, extra, oda)| AflEntry {
                sfi,
                first,
                last: first + extra,
                oda_records: oda.min(extra + 1),
            })
            .collect());
        prop_assert_eq!(Afl::parse(&afl.to_bytes()).unwrap(), afl);
    }

    #[test]
    fn dates_round_trip(y in 1950u16..=2049, m in 1u8..=12, d in 1u8..=28) {
        let date = Date::new(y, m, d).unwrap();
        prop_assert_eq!(Date::from_bcd(&date.to_bcd()), Some(date));
    }
}
