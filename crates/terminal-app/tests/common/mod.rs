//! What the tests that run a binary against a card in a vpcd slot of pcscd share: the pcscd
//! environment of `scripts/pcsc-env.sh`, waiting for a card to come or go, a leased slot with a
//! fixture card in it, and running `cardctl`. Each test file uses part of it.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use firmware_tests::testenv::{PcscEnv, SlotLease};
use firmware_tests::{VirtualSlot, shared_fixture};
use reader_driver::EventWatcher;

/// The pcscd + vpcd environment (`scripts/pcsc-env.sh start`); panics saying how to start it.
pub fn env() -> PcscEnv {
    PcscEnv::load().unwrap_or_else(|e| panic!("{e}"))
}

/// Wait up to 5 s until pcscd sees a card in `reader` (`want`) or none.
pub fn wait_present(reader: &str, want: bool) {
    let mut w = EventWatcher::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        w.next_events(Duration::from_millis(200));
        if w.card_present(reader) == want {
            return;
        }
    }
    panic!("card in {reader} never became present={want}");
}

/// A leased vpcd slot holding the fixture `card` (its state shared with other users of the
/// same fixture in this process), present in pcscd.
pub fn slot_with(card: &str) -> (SlotLease, VirtualSlot) {
    let lease = env().lease().unwrap();
    wait_present(&lease.reader, false);
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(shared_fixture(card).unwrap()).unwrap();
    wait_present(&lease.reader, true);
    (lease, slot)
}

/// Run `cardctl args`, with `stdin` written to its standard input (closed after), to its end.
pub fn cardctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub mod kiosk_bin;
pub mod ui;
