#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Crashes: the real kiosk binary (`kiosk --headless`) killed with SIGKILL at every step of a
//! payment and of its recovery, then started again on the same state directory with the same
//! card (issue 9, item 2; docs/reliability.md "Crashes: kill -9 of the kiosk").
//!
//! The card outlives the kiosk: `--demo-cards DIR` keeps the demo cards' memory in files,
//! written atomically at each of the card's commits, so a debit the card made before the kill
//! is still on it at the restart (a kiosk losing power with the card in it). The kiosk stops at
//! a step with `SSCARD_HALT_AT=<step>` (terminal_app::failpoint: it prints `halted at <step>`
//! and waits) and the test kills it with SIGKILL there. The restart's journey inserts the same
//! card, which settles any payment left in doubt, and pays once more.
//!
//! After each scenario: the card's electronic cash decreased by exactly the payments the
//! ledger holds as done (approved or recovered), each of the card's debits (its log, by ATC)
//! is booked exactly once, no entry is left as intent or unknown, and `PRAGMA integrity_check`
//! is `ok` on the ledger file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backend_sync::entry::EntryState;
use common::kiosk_bin::{KIOSK, card_account, card_in_file, headless};
use firmware_tests::{Profile, SoftCard};
use terminal_app::demo::DemoWorld;
use terminal_app::failpoint::{PAYMENT_STEPS, RECOVERY_STEPS};
use terminal_app::payment::CardAccount;

const LIMIT: Duration = Duration::from_secs(180);

struct Dirs {
    _tmp: tempfile::TempDir,
    state: PathBuf,
    cards: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cards = tmp.path().join("cards");
    Dirs {
        state,
        cards,
        _tmp: tmp,
    }
}

/// The journey to its end; its output.
fn run_to_end(d: &Dirs) -> String {
    let out = headless(&d.state, &d.cards, KIOSK, &[])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kiosk failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("journey complete"), "{stdout}");
    stdout
}

/// Start the journey halting at `step`, SIGKILL it there; its output.
fn kill_at(d: &Dirs, step: &str) -> String {
    let mut child = headless(&d.state, &d.cards, KIOSK, &[])
        .stdin(Stdio::null())
        .env("SSCARD_HALT_AT", step)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wanted = format!("  .. halted at {step}");
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line == wanted;
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(
                    started.elapsed() < LIMIT,
                    "no halt at {step} within {LIMIT:?}:\n{}",
                    seen.join("\n")
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
                panic!(
                    "the kiosk ended before halting at {step}:\n{}\nstderr:\n{err}",
                    seen.join("\n")
                );
            }
        }
    }
    // SIGKILL (std's Child::kill), at the step.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );
    let _ = reader.join();
    seen.join("\n")
}

/// A new 张三 card's electronic cash.
fn fresh_account() -> CardAccount {
    let image = Profile::embedded("zhangsan").unwrap().build().unwrap();
    card_account(SoftCard::in_memory(image)).0
}

/// What the scenario left: entries by state, the card's decrease; asserting the invariants.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    approved: usize,
    recovered: usize,
    voided: usize,
    decrease_fen: u64,
}

fn check(d: &Dirs) -> Outcome {
    let ledger_path = d.state.join("kiosk-ledger.db");
    let db = rusqlite::Connection::open(&ledger_path).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "integrity_check");
    drop(db);

    let key = hex::encode_upper(b"sscard-demo-key!");
    let ledger = DemoWorld::open_ledger(&ledger_path, &key).unwrap();
    let entries = ledger.entries().unwrap();
    let mut out = Outcome {
        approved: 0,
        recovered: 0,
        voided: 0,
        decrease_fen: 0,
    };
    let mut done_atcs = Vec::new();
    let mut done_fen = 0;
    for e in &entries {
        match e.state {
            EntryState::ApprovedOffline => {
                out.approved += 1;
                done_atcs.push(e.card.as_ref().expect("the TC's data").atc);
                done_fen += e.amount_fen;
            }
            EntryState::Recovered => {
                out.recovered += 1;
                done_atcs.push(e.recovered.as_ref().expect("evidence").atc);
                done_fen += e.amount_fen;
            }
            EntryState::Voided => out.voided += 1,
            s => panic!("entry {} left {s:?}: {entries:?}", e.seq),
        }
    }
    let before = fresh_account();
    let now = card_in_file(&d.cards.join("zhangsan.json")).0;
    out.decrease_fen = before.balance_fen - now.balance_fen;
    assert_eq!(
        out.decrease_fen, done_fen,
        "the card's decrease is what the ledger holds as done"
    );
    // Each debit on the card (its log, by ATC) is booked once, and nothing else is.
    let mut card_atcs: Vec<u16> = now
        .log
        .iter()
        .skip(before.log.len())
        .map(|l| l.atc.expect("the log's ATC"))
        .collect();
    card_atcs.sort_unstable();
    done_atcs.sort_unstable();
    assert_eq!(card_atcs, done_atcs, "each card debit booked exactly once");
    out
}

fn expect(approved: usize, recovered: usize, voided: usize) -> Outcome {
    Outcome {
        approved,
        recovered,
        voided,
        decrease_fen: 2_000 * (approved + recovered) as u64,
    }
}

#[test]
fn kill_9_at_every_payment_step_then_restart_loses_and_duplicates_nothing() {
    assert_eq!(PAYMENT_STEPS.len(), 11, "the instrumented payment steps");
    let mut table = Vec::new();
    for step in PAYMENT_STEPS {
        let d = dirs();
        let halted = kill_at(&d, step);
        // The step lines are in order, up to the step.
        let passed: Vec<&str> = halted
            .lines()
            .filter_map(|l| l.strip_prefix("  .. step "))
            .collect();
        let i = PAYMENT_STEPS.iter().position(|s| *s == step).unwrap();
        assert_eq!(passed, PAYMENT_STEPS[..=i], "steps before the kill");
        let restarted = run_to_end(&d);
        let got = check(&d);
        let want = match step {
            // Killed before the intent: nothing of that payment anywhere.
            "pay.requested" | "pay.ledger-checked" | "pay.balance-read" | "pay.pin-entered" => {
                expect(1, 0, 0)
            }
            // The intent on disk, the card not debited: voided at the next insert.
            "pay.intent-written" | "card.generate-ac.sending" => expect(1, 0, 1),
            // The card debited, the ledger without its answer: recovered from the card's log.
            "card.generate-ac.answered" | "pay.card-done" => expect(1, 1, 0),
            // The outcome on disk: nothing to settle.
            _ => expect(2, 0, 0),
        };
        assert_eq!(got, want, "after a kill at {step}:\n{restarted}");
        let settled = restarted
            .lines()
            .find(|l| l.contains("earlier payments settled"))
            .unwrap_or("  <- nothing to settle")
            .trim()
            .to_string();
        table.push(format!(
            "{step:28} approved {} recovered {} voided {} card -{} fen; restart: {settled}",
            got.approved, got.recovered, got.voided, got.decrease_fen
        ));
    }
    println!("kill -9 at each payment step, then a restart with the same card:");
    for line in &table {
        println!("  {line}");
    }
    assert_eq!(table.len(), PAYMENT_STEPS.len());
}

#[test]
fn kill_9_during_the_recovery_then_restart_settles_once() {
    assert_eq!(RECOVERY_STEPS.len(), 3, "the instrumented recovery steps");
    let mut table = Vec::new();
    for step in RECOVERY_STEPS {
        let d = dirs();
        // A payment in doubt: the card debited, the kiosk killed before it had the answer.
        kill_at(&d, "card.generate-ac.answered");
        // Killed again while settling it at the next insert.
        kill_at(&d, step);
        let restarted = run_to_end(&d);
        let got = check(&d);
        assert_eq!(got, expect(1, 1, 0), "after a kill at {step}:\n{restarted}");
        // Settled by the second restart unless the first had written the settlement.
        assert_eq!(
            restarted.contains("earlier payments settled"),
            step != "recover.settled",
            "{restarted}"
        );
        table.push(format!(
            "{step:28} approved {} recovered {} voided {} card -{} fen",
            got.approved, got.recovered, got.voided, got.decrease_fen
        ));
    }
    println!("kill -9 at card.generate-ac.answered, then at each recovery step, then a restart:");
    for line in &table {
        println!("  {line}");
    }
}
