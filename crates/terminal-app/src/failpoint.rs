//! Named steps of a payment and of its recovery, for crash tests (docs/reliability.md,
//! "Crashes: kill -9 of the kiosk").
//!
//! The payment flow ([`crate::payment::pay`], the session's `pay`) and the recovery at the next
//! insert ([`crate::payment::recover`]) call [`step`] at each point where a crash leaves a
//! different state behind: before the first card command, after the intent is on disk, around
//! the GENERATE AC that can debit the card ([`StepChannel`]), after the outcome, after the
//! receipt. A step's name is all it says: no amount, card number or name.
//!
//! Test-only controls, from the environment (a kiosk in service has no reason to set them):
//!
//! - `SSCARD_HALT_AT=<step>`: at that step the process prints `  .. halted at <step>` and stops
//!   there for ever (every thread that reaches a step after it stops too), so that the test
//!   can kill it with SIGKILL in a known state;
//! - `SSCARD_PAUSE_AT=<step>`: at that step the process prints `  .. paused at <step>` and waits
//!   for a line on its standard input (e.g. while a test fills the disk), then goes on.
//!
//! [`narrate`] (the headless kiosk turns it on) prints each step as `  .. step <name>`.

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use card_core::{CardChannel, TransportError};

/// The steps of a payment, in the order a successful payment passes them.
pub const PAYMENT_STEPS: [&str; 11] = [
    "pay.requested",
    "pay.ledger-checked",
    "pay.balance-read",
    "pay.pin-entered",
    "pay.intent-written",
    "card.generate-ac.sending",
    "card.generate-ac.answered",
    "pay.card-done",
    "pay.outcome-written",
    "pay.receipt-written",
    "pay.reported",
];

/// The steps of settling a payment left in doubt, at the card's next insert.
pub const RECOVERY_STEPS: [&str; 3] = [
    "recover.pending-found",
    "recover.card-checked",
    "recover.settled",
];

static NARRATE: AtomicBool = AtomicBool::new(false);
static HALTED: AtomicBool = AtomicBool::new(false);

struct Controls {
    halt_at: Option<String>,
    pause_at: Option<String>,
}

fn controls() -> &'static Controls {
    static C: OnceLock<Controls> = OnceLock::new();
    C.get_or_init(|| Controls {
        halt_at: std::env::var("SSCARD_HALT_AT").ok(),
        pause_at: std::env::var("SSCARD_PAUSE_AT").ok(),
    })
}

/// Print each step reached on standard output (the headless kiosk).
pub fn narrate(on: bool) {
    NARRATE.store(on, Ordering::SeqCst);
}

/// Whether a step halted the process (`SSCARD_HALT_AT`): the caller waits to be killed too.
pub fn halted() -> bool {
    HALTED.load(Ordering::SeqCst)
}

/// Stop this thread for ever (the process waits for its SIGKILL).
pub fn wait_for_the_kill() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The flow reached `name` (one of [`PAYMENT_STEPS`] or [`RECOVERY_STEPS`]).
pub fn step(name: &'static str) {
    if halted() {
        wait_for_the_kill();
    }
    let c = controls();
    let halt = c.halt_at.as_deref() == Some(name);
    let pause = c.pause_at.as_deref() == Some(name);
    if NARRATE.load(Ordering::SeqCst) {
        say(&format!("  .. step {name}"));
    }
    if halt {
        HALTED.store(true, Ordering::SeqCst);
        say(&format!("  .. halted at {name}"));
        wait_for_the_kill();
    }
    if pause {
        say(&format!("  .. paused at {name}"));
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}

/// Whether `command` is a GENERATE AC (`80 AE`), the command that can debit the card.
pub fn is_generate_ac(command: &[u8]) -> bool {
    matches!(command, [cla, 0xAE, ..] if cla & 0xF0 == 0x80)
}

/// A card channel that reports the GENERATE AC steps: `card.generate-ac.sending` before the
/// command goes to the card, `card.generate-ac.answered` once the card has answered (a debit
/// is done on the card, the terminal has not used the answer yet).
pub struct StepChannel<C> {
    inner: C,
}

impl<C> StepChannel<C> {
    /// Wrap `inner`.
    pub const fn new(inner: C) -> Self {
        Self { inner }
    }
}

impl<C: CardChannel> CardChannel for StepChannel<C> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if !is_generate_ac(command) {
            return self.inner.transmit(command);
        }
        step("card.generate-ac.sending");
        let answer = self.inner.transmit(command);
        if answer.is_ok() {
            step("card.generate-ac.answered");
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_ac_is_recognised_and_nothing_else() {
        assert!(is_generate_ac(&[0x80, 0xAE, 0x40, 0x00, 0x05]));
        assert!(!is_generate_ac(&[0x80, 0xA8, 0x00, 0x00, 0x02]));
        assert!(!is_generate_ac(&[0x00, 0xAE, 0x00, 0x00]));
        assert!(!is_generate_ac(&[0x80]));
    }
}
