#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The counter API's request bodies and token under arbitrary input (issue 9, part 4: "counter
//! API bodies"). What the API does with a body is `serde_json::from_slice::<DebitRequest>` and
//! `service::validate`; the token is compared with `ApiToken::matches`. These are property
//! tests rather than a cargo-fuzz target: the model lives in terminal-app, whose egui and wgpu
//! would have to be built with the fuzzer's instrumentation (docs/reliability.md).
//!
//! - any bytes: parsing and validation never panic; what validates serializes and parses back
//!   to itself;
//! - any fields: validation accepts exactly the documented rules (reference 1 to 64 of
//!   `A-Z a-z 0-9 - _ . : /`, amount 1 to 100 000 fen, item 1 to 100 characters without control
//!   characters), checked against an independent statement of them;
//! - the token: only the very token matches, whatever the candidate.

use proptest::prelude::*;
use terminal_app::counter::model::DebitRequest;
use terminal_app::counter::service::{MAX_ITEM_CHARS, validate};
use terminal_app::counter::{ApiToken, CounterError};
use terminal_app::payment::MAX_PAYMENT_FEN;

/// The rules of docs/counter-api.md, stated again independently of the code.
fn allowed(r: &DebitRequest) -> bool {
    let reference = !r.reference.is_empty()
        && r.reference.len() <= 64
        && r.reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
    let items = r.item.chars().count();
    reference
        && (1..=100_000).contains(&r.amount_fen)
        && (1..=100).contains(&items)
        && !r.item.chars().any(char::is_control)
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._:/-]{0,70}",
        "\\PC{0,110}",
        any::<String>(),
        Just(String::new()),
        "[a-z]{60,70}",
    ]
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0..=MAX_PAYMENT_FEN + 2,
        Just(0),
        Just(MAX_PAYMENT_FEN)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_body_is_parsed_and_validated_without_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(req) = serde_json::from_slice::<DebitRequest>(&body)
            && validate(&req).is_ok()
        {
            let again: DebitRequest = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
            prop_assert_eq!(again, req);
        }
    }

    #[test]
    fn json_bodies_with_any_fields_validate_exactly_by_the_rules(
        reference in field(),
        amount_fen in amount(),
        item in field(),
        extra in proptest::option::of("[a-z]{1,8}"),
    ) {
        let mut body = serde_json::json!({
            "reference": reference,
            "amount_fen": amount_fen,
            "item": item,
        });
        if let Some(k) = &extra {
            body[k.as_str()] = serde_json::json!(1);
        }
        let parsed = serde_json::from_value::<DebitRequest>(body);
        match extra.as_deref() {
            // Unknown fields are refused (deny_unknown_fields).
            Some(k) if !["reference", "amount_fen", "item"].contains(&k) => {
                prop_assert!(parsed.is_err());
            }
            _ => {
                let req = parsed.unwrap();
                let verdict = validate(&req);
                prop_assert_eq!(verdict.is_ok(), allowed(&req), "{:?}: {:?}", req, verdict);
                if let Err(e) = verdict {
                    prop_assert!(matches!(e, CounterError::Invalid(_)), "{:?}", e);
                }
                prop_assert!(req.item.chars().count() <= MAX_ITEM_CHARS || validate(&req).is_err());
                prop_assert!(req.amount_fen <= MAX_PAYMENT_FEN || validate(&req).is_err());
            }
        }
    }

    #[test]
    fn only_the_token_itself_matches(token in "[A-Za-z0-9]{32,64}", other in any::<String>(), cut in 0usize..64) {
        let t = ApiToken::new(&token).unwrap();
        prop_assert!(t.matches(&token));
        prop_assert_eq!(t.matches(&other), other == token);
        let prefix: String = token.chars().take(cut.min(token.len() - 1)).collect();
        prop_assert!(!t.matches(&prefix));
        let longer = format!("{token}x");
        prop_assert!(!t.matches(&longer));
    }
}
