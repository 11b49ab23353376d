//! Faults between agent and server: a fault-injecting proxy (refused connections, timeouts,
//! 500s, cut responses, duplicated and late deliveries) and several terminals at once. The
//! invariant afterwards: every entry booked exactly once, the batch totals balanced.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use backend_sync::fault_proxy::{FaultConfig, FaultProxy};
use common::*;

/// Run `sync-agent once` until it succeeds (each run gives up after a few attempts, as a
/// terminal's scheduled runs would); returns the number of runs.
fn sync_until_done(term: &Term, url: &str, extra: &[&str], max_runs: usize) -> usize {
    let mut last = String::new();
    for run in 1..=max_runs {
        let (code, out, err) = term.run_agent("once", url, extra);
        if code == 0 {
            return run;
        }
        assert_eq!(code, 2, "only transient give-ups are expected: {out} {err}");
        last = err;
    }
    panic!("no successful run in {max_runs}; last: {last}");
}

#[test]
fn exactly_once_through_a_fault_injecting_proxy() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-F1");
    term.register(&env, &server.url, "110100");
    env.admin(&["report-lost", "--pan", "6217000000000000123"]);
    env.admin(&["set-param", "--name", "ec_floor_limit", "--value", "1000"]);
    let expected = term.pay(400, 11);
    let rt = rt();
    let upstream = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let proxy = rt
        .block_on(FaultProxy::start(
            &[upstream],
            FaultConfig {
                seed: 0x5eed,
                // Connections are kept alive, so there are far fewer connections than requests:
                // refuse often enough that it surely happens.
                refuse: 0.2,
                hold: Duration::from_millis(1500),
                ..FaultConfig::default()
            },
        ))
        .unwrap();
    let url = format!("http://{}", proxy.addr());
    let runs = sync_until_done(
        &term,
        &url,
        &[
            "--batch-size",
            "6",
            "--max-attempts",
            "4",
            "--timeout-ms",
            "1000",
            "--close-batch",
        ],
        60,
    );
    // Later runs close nothing new; make sure the batch was reconciled.
    let l = term.open_ledger();
    let b = l.batch(1).unwrap().unwrap();
    assert_eq!(b.state, "balanced", "after {runs} runs");
    assert_eq!(l.hotlist_version().unwrap(), 1);
    assert_eq!(
        l.parameter("ec_floor_limit").unwrap().as_deref(),
        Some("1000")
    );
    drop(l);
    // Let late deliveries land, then check nothing was booked twice.
    std::thread::sleep(Duration::from_millis(600));
    assert_exactly_once(&env, &term, &expected);
    let [refused, timeouts, e500, cut, dup, late, passed] = proxy.stats().snapshot();
    eprintln!(
        "faults over {runs} runs: refused {refused}, timeouts {timeouts}, 500 {e500}, cut {cut}, \
         duplicated {dup}, late {late}, passed {passed}"
    );
    for (name, n) in [
        ("refused", refused),
        ("timeouts", timeouts),
        ("500", e500),
        ("cut", cut),
        ("duplicated", dup),
        ("late", late),
    ] {
        assert!(n > 0, "fault {name} never injected");
    }
}

#[test]
fn three_terminals_syncing_at_once_each_book_exactly_once() {
    let env = Env::new(Backend::Sqlite);
    let server = env.start_server(0, &[]);
    let terms: Vec<Term> = (0..3).map(|i| Term::new(&format!("KIOSK-C{i}"))).collect();
    let mut expected = Vec::new();
    for (i, t) in terms.iter().enumerate() {
        t.register(&env, &server.url, "110100");
        expected.push(t.pay(150, 20 + i as u64));
    }
    std::thread::scope(|s| {
        for t in &terms {
            let url = server.url.clone();
            s.spawn(move || {
                let (code, out, err) =
                    t.run_agent("once", &url, &["--batch-size", "10", "--close-batch"]);
                assert_eq!(code, 0, "{out} {err}");
                assert!(out.contains("batch 1: balanced"), "{out}");
            });
        }
    });
    for (t, e) in terms.iter().zip(&expected) {
        assert_exactly_once(&env, t, e);
    }
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 450);
}
