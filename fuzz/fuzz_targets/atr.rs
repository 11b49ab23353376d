//! Answer To Reset: whatever parses is kept verbatim, is self-consistent and can be rebuilt
//! from its parts.

#![no_main]

use card_core::atr::{self, Atr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(atr) = Atr::parse(data) else {
        return;
    };
    assert_eq!(atr.as_bytes(), data);

    let protocols = atr.protocols();
    assert!(!protocols.is_empty(), "an ATR always offers a protocol");
    for (i, &t) in protocols.iter().enumerate() {
        assert!(t < 15, "T=15 is not a transmission protocol");
        assert!(!protocols[..i].contains(&t), "T={t} listed twice");
        assert!(atr.offers(t));
    }

    // Every byte is accounted for: TS, T0, interface bytes, historical bytes, TCK.
    let interface_bytes: usize = atr
        .groups()
        .iter()
        .map(|g| [g.ta, g.tb, g.tc, g.td].iter().flatten().count())
        .sum();
    let tck = usize::from(atr.tck().is_some());
    assert_eq!(
        2 + interface_bytes + atr.historical_bytes().len() + tck,
        data.len()
    );
    assert_eq!(usize::from(data[1] & 0x0f), atr.historical_bytes().len());
    assert_eq!(
        atr.tck().is_some(),
        atr.groups()
            .iter()
            .any(|g| g.td.is_some_and(|td| td & 0x0f != 0)),
        "TCK present exactly when a protocol other than T=0 is announced"
    );
    if atr.tck().is_some() {
        assert_eq!(data[1..].iter().fold(0u8, |a, b| a ^ b), 0, "TCK checks");
    }

    // Rebuilding from the parts gives the same bytes, which parse to the same ATR.
    let rebuilt = atr::build(atr.convention(), atr.groups(), atr.historical_bytes())
        .expect("a parsed ATR can be rebuilt");
    assert_eq!(rebuilt, data);
    assert_eq!(Atr::parse(&rebuilt).as_ref(), Ok(&atr));

    // The accessors and the human description never panic.
    let lines = atr.describe();
    assert!(
        lines.len() >= 3,
        "TS, T0 and the protocols are always described"
    );
    let _ = (
        atr.fi_di(),
        atr.extra_guard_time(),
        atr.specific_mode(),
        atr.ifsc(),
        atr.bwi_cwi(),
        atr.wi(),
    );
    assert_eq!(atr.to_string().len(), data.len() * 3 - 1);
    let _ = format!("{atr:?}");
});
