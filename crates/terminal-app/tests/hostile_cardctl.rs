#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `cardctl` against hostile cards through the real PC/SC stack (issue 9, part 6): 张三's
//! software card behind a `firmware_tests::hostile::HostileCard` in a vpcd slot of pcscd, and
//! the `cardctl` binary's `read`, `pin-status` and `atr`. Each run ends with exit code 1 and a
//! one-line message naming the cause (or succeeds where the mode leaves the command alone),
//! within seconds and a bounded number of APDUs at the card.
//!
//! A mute card needs more: vpcd has no receive timeout, so pcscd waits for the card's answer
//! for ever, and so would `cardctl` without its own limit per command (`reader_driver::
//! TimedCard`, `--command-timeout`, default 15 s): pulled before the limit, the card ends the
//! run at once (`a_mute_card_holds_cardctl_until_it_is_pulled`); left in, the limit does
//! (`cardctl_gives_up_on_a_mute_card_by_itself`).

mod common;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::wait_present;
use firmware_tests::VirtualSlot;
use firmware_tests::hostile::{HostileCard, HostileMode};
use firmware_tests::testenv::{PcscEnv, SlotLease};

/// Longest a cardctl run may take against a hostile card that answers (process start, pcscd
/// connection, and `PcscCard`'s one-second check whether a card that answered nothing is
/// still there).
const LIMIT: Duration = Duration::from_secs(10);

/// A leased slot with a hostile 张三 in it.
fn hostile_slot(mode: HostileMode) -> (SlotLease, VirtualSlot) {
    let lease = PcscEnv::load()
        .unwrap_or_else(|e| panic!("{e}"))
        .lease()
        .unwrap();
    wait_present(&lease.reader, false);
    let mut slot = VirtualSlot::new(lease.port);
    let card = HostileCard::fixture("zhangsan", mode).unwrap();
    slot.insert_any(Arc::new(Mutex::new(card))).unwrap();
    wait_present(&lease.reader, true);
    (lease, slot)
}

fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cardctl"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait up to `limit` for `child`; `None` if it is still running then.
fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Run cardctl to its end, failing the test if it takes longer than [`LIMIT`].
fn cardctl(args: &[&str]) -> Ran {
    let started = Instant::now();
    let mut child = start(args);
    let Some(status) = wait(&mut child, LIMIT) else {
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        panic!(
            "cardctl {args:?} still running after {LIMIT:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let took = started.elapsed();
    let out = child.wait_with_output().unwrap();
    Ran {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    }
}

/// What `read` and `pin-status` must say for each mode: `Err(fragment of the message)` for
/// exit code 1, `Ok(fragment of the output)` for success (the mode does not touch what the
/// command reads).
type Expect = Result<&'static str, &'static str>;

const CASES: [(HostileMode, Expect, Expect); 7] = [
    (
        HostileMode::NoStatus,
        Err("the card does not respond"),
        Err("the card does not respond"),
    ),
    (
        HostileMode::WrongLeLoop,
        Err("card kept answering 6Cxx (wrong Le) to the corrected command"),
        Err("card kept answering 6Cxx"),
    ),
    (
        HostileMode::Endless61,
        Err("card kept announcing more data after 64 GET RESPONSE commands"),
        Err("after 64 GET RESPONSE commands"),
    ),
    (
        HostileMode::JunkRecords,
        Err("records of EF05 are not valid TLV"),
        Ok("3"),
    ),
    (
        HostileMode::ExtendedJunk,
        Err("records of EF05 are not valid TLV"),
        Ok("3"),
    ),
    (
        HostileMode::Truncated,
        Err("records of EF05 are not valid TLV: TLV truncated"),
        Ok("3"),
    ),
    (
        HostileMode::WrongSuccessSw,
        Err("the social-security application is blocked (6283"),
        Err("SELECT failed: 6F00"),
    ),
];

fn check(mode: HostileMode, command: &str, ran: &Ran, expect: Expect) {
    let why = format!(
        "{mode} {command}: exit {:?} in {:?}\nstdout: {}\nstderr: {}",
        ran.code, ran.took, ran.stdout, ran.stderr
    );
    match expect {
        Err(message) => {
            assert_eq!(ran.code, Some(1), "{why}");
            let line = ran.stderr.trim();
            assert!(
                line.starts_with("cardctl: ") && line.contains(message),
                "{why}"
            );
            assert_eq!(line.lines().count(), 1, "one clear line: {why}");
            assert!(!line.contains("panicked"), "{why}");
        }
        Ok(output) => {
            assert_eq!(ran.code, Some(0), "{why}");
            assert!(ran.stdout.contains(output), "{why}");
        }
    }
}

#[test]
fn cardctl_ends_with_a_clear_error_against_each_hostile_card() {
    for (mode, read, pin_status) in CASES {
        let (lease, slot) = hostile_slot(mode);
        let ran = cardctl(&["read", "--reader", &lease.reader]);
        check(mode, "read", &ran, read);
        let after_read = slot.apdus();
        let ran = cardctl(&["pin-status", "--reader", &lease.reader]);
        check(mode, "pin-status", &ran, pin_status);
        // The longest: SELECT and 64 GET RESPONSEs, per command.
        assert!(after_read <= 65, "{mode}: read sent {after_read} APDUs");
        assert!(
            slot.apdus() - after_read <= 2 * 65,
            "{mode}: pin-status sent {} APDUs",
            slot.apdus() - after_read
        );
    }
}

#[test]
fn a_mute_card_holds_cardctl_until_it_is_pulled() {
    for mode in [HostileMode::Mute, HostileMode::Empty] {
        let (lease, mut slot) = hostile_slot(mode);
        // The ATR comes from vpcd's control channel: a mute card still has one.
        let ran = cardctl(&["atr", "--reader", &lease.reader]);
        assert_eq!(ran.code, Some(0), "{mode}: {}", ran.stderr);
        assert!(ran.stdout.contains("protocols offered"), "{}", ran.stdout);

        let mut child = start(&["read", "--reader", &lease.reader]);
        // vpcd waits for the card's answer without a timeout (docs/reliability.md).
        assert_eq!(
            wait(&mut child, Duration::from_secs(2)),
            None,
            "{mode}: cardctl gave up before its 15 s limit"
        );
        assert_eq!(slot.apdus(), 1, "{mode}: the SELECT reached the card");
        let pulled = Instant::now();
        slot.remove();
        let status = wait(&mut child, LIMIT);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let status = status.unwrap_or_else(|| panic!("{mode}: still running after the pull"));
        assert_eq!(status.code(), Some(1), "{mode}: {stderr}");
        let line = stderr.trim();
        assert!(
            line == "cardctl: the card was removed" || line == "cardctl: the card does not respond",
            "{mode}: {line:?} after {:?}",
            pulled.elapsed()
        );
        wait_present(&lease.reader, false);
    }
}

#[test]
fn cardctl_gives_up_on_a_mute_card_by_itself() {
    for mode in [HostileMode::Mute, HostileMode::Empty] {
        let (lease, slot) = hostile_slot(mode);
        let started = Instant::now();
        let mut child = start(&["read", "--reader", &lease.reader, "--command-timeout", "2"]);
        let status = wait(&mut child, Duration::from_secs(2) + LIMIT);
        if status.is_none() {
            child.kill().unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let took = started.elapsed();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{mode}: {stderr}");
        assert_eq!(
            stderr.trim(),
            "cardctl: the card does not respond",
            "{mode}"
        );
        // It waited for the card's answer the time it was given, not less.
        assert!(
            took >= Duration::from_secs(2),
            "{mode}: gave up after {took:?}"
        );
        // Nothing was sent after the command the card never answered.
        assert_eq!(slot.apdus(), 1, "{mode}");
    }
}

#[test]
fn a_command_timeout_that_is_not_a_duration_is_refused() {
    for bad in ["0", "-1", "soon", "7200"] {
        let ran = cardctl(&["read", &format!("--command-timeout={bad}")]);
        assert_eq!(ran.code, Some(2), "{bad}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("is not a number of seconds"),
            "{bad}: {}",
            ran.stderr
        );
    }
}
