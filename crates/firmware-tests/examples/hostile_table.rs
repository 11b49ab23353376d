//! The table of docs/reliability.md "Hostile cards": every terminal flow of card-core against
//! 张三's software card behind each hostile mode, in-process: how it ended, the APDUs the card
//! received and the time taken. tests/hostile.rs asserts the same outcomes.
//!
//! ```sh
//! cargo run --release -p firmware-tests --example hostile_table
//! ```

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use std::time::Instant;

use anyhow::{Context, Result};
use card_core::CardSession;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::{DebitIntent, MemoryJournal};
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::recovery::check_debit;
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{
    Amount, Date, Hooks, TerminalConfig, Time, TransactionParams, ec, run_contact,
};
use card_core::secret::Pin;
use card_core::ssse::{self, ReadStrategy};
use firmware_tests::Profile;
use firmware_tests::hostile::{HostileCard, HostileMode};
use firmware_tests::pboc::profile::TerminalCaKey;

struct Pad;
impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        Pin::new("123456").map_or(PinEntry::Bypassed, PinEntry::Pin)
    }
}

struct Offline;
impl OnlineAuthoriser for Offline {
    fn authorise(&mut self, _r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        Err(OnlineUnavailable("offline kiosk".into()))
    }
}

type Flow = fn(&mut CardSession<HostileCard>, &CaStore) -> String;

/// A Debug string without the fields of braced variants: `Err(Record(Tlv { file: .. }))` is
/// `Err(Record(Tlv{..}))`.
fn short(debug: String) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in debug.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    while out.ends_with(' ') {
                        out.pop();
                    }
                    out.push_str("{..}");
                }
                depth += 1;
            }
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn main() -> Result<()> {
    let profile = Profile::embedded("zhangsan").context("fixture")?;
    let mut ca = CaStore::new();
    match profile.pboc.as_ref().context("pboc")?.ca_key()? {
        TerminalCaKey::Sm2(k) => ca.add_sm2(k),
        TerminalCaKey::Rsa(k) => ca.add_rsa(k),
    }
    let flows: [(&str, Flow); 7] = [
        ("identity", |s, _| {
            format!(
                "{:?}",
                ssse::read_identity(s, ReadStrategy::AllRecords).map(|_| ())
            )
        }),
        ("pin status", |s, _| {
            format!(
                "{:?}",
                ssse::select(s).and_then(|_| ssse::pin_tries_left(s))
            )
        }),
        ("contact", |s, ca| {
            let p = TransactionParams::purchase(
                Amount::new(100).unwrap(),
                Date::new(2026, 3, 15).unwrap(),
                Time::new(10, 20, 30).unwrap(),
                [1, 2, 3, 4],
            );
            let r = run_contact(
                s,
                &TerminalConfig::kiosk(),
                ca,
                p,
                &mut Hooks {
                    pin_pad: &mut Pad,
                    hot_list: &NoHotList,
                    online: &mut Offline,
                    journal: &mut MemoryJournal::default(),
                },
            );
            format!("{:?}", r.outcome)
        }),
        ("qPBOC", |s, ca| {
            let p = TransactionParams::purchase(
                Amount::new(100).unwrap(),
                Date::new(2026, 3, 15).unwrap(),
                Time::new(10, 20, 30).unwrap(),
                [1, 2, 3, 4],
            );
            let r = run_qpboc(
                s,
                &TerminalConfig::kiosk(),
                ca,
                p,
                &mut QpbocHooks {
                    hot_list: &NoHotList,
                    online: &mut Offline,
                    journal: &mut MemoryJournal::default(),
                },
            );
            format!("{:?}", r.outcome)
        }),
        ("balance", |s, _| {
            format!(
                "{:?}",
                ec::balance_inquiry(s, &TerminalConfig::kiosk()).map(|_| ())
            )
        }),
        ("log", |s, _| {
            let r = ec::select_application(s, &TerminalConfig::kiosk()).and_then(|app| {
                let entry = app
                    .fci
                    .log_entry
                    .ok_or(card_core::pboc::PbocError::NoApplication)?;
                ec::read_transaction_log(s, entry).map(|l| l.len())
            });
            format!("{r:?}")
        }),
        ("recovery", |s, _| {
            let r = ec::select_application(s, &TerminalConfig::kiosk()).and_then(|app| {
                let intent = DebitIntent {
                    aid: app.aid.clone(),
                    pan: None,
                    psn: None,
                    atc_before: Some(0),
                    amount: Amount::new(100).unwrap(),
                    currency: [0x01, 0x56],
                    date: Date::new(2026, 3, 15).unwrap(),
                    time: Time::new(10, 20, 30).unwrap(),
                    ec_balance_before: Amount::new(50_000),
                };
                check_debit(s, &app, &intent)
            });
            format!("{r:?}")
        }),
    ];
    println!(
        "| mode | {} |",
        flows
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(flows.len()));
    for mode in HostileMode::ALL {
        let mut cells = Vec::new();
        for (_, flow) in &flows {
            let card = HostileCard::fixture("zhangsan", mode).context("fixture")?;
            let mut s = CardSession::new(card);
            let start = Instant::now();
            let out = flow(&mut s, &ca);
            let took = start.elapsed();
            cells.push(format!(
                "{} ({} APDUs, {:.2} ms)",
                short(out),
                s.exchanges(),
                took.as_secs_f64() * 1e3
            ));
        }
        println!("| `{mode}` | {} |", cells.join(" | "));
    }
    Ok(())
}
