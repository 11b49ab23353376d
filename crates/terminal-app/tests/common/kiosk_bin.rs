//! What the tests that run the real `kiosk` binary share: its path, the backend binaries
//! beside it, the headless command on a state directory and persisted demo cards, and a demo
//! card's electronic cash read from its file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use card_core::CardSession;
use card_core::pboc::TerminalConfig;
use firmware_tests::SoftCard;
use firmware_tests::storage::{FileStorage, Storage};
use terminal_app::payment::{CardAccount, read_account};

/// The kiosk binary.
pub const KIOSK: &str = env!("CARGO_BIN_EXE_kiosk");

/// target/debug, with the three backend binaries in it: `cargo test -p terminal-app` does not
/// build other packages' binaries, `cargo test --workspace` and `scripts/test.sh` do.
pub fn backend_bins() -> PathBuf {
    let dir = Path::new(KIOSK).parent().unwrap().to_path_buf();
    for name in ["hsm-sim", "central-server", "sync-agent"] {
        assert!(
            dir.join(name).is_file(),
            "{name} is not in {}: build the backend binaries first with \
             `cargo build -p hsm-sim -p backend-sync --bins` (scripts/test.sh does)",
            dir.display()
        );
    }
    dir
}

/// `kiosk --headless` on `state` with the demo cards kept in `cards`, run through `program`
/// and `pre_args` (e.g. a shell that sets a signal disposition first, or nothing), no display,
/// no step control inherited, output piped.
pub fn headless(state: &Path, cards: &Path, program: &str, pre_args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(pre_args)
        .arg("--headless")
        .arg("--state-dir")
        .arg(state)
        .arg("--demo-cards")
        .arg(cards)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("SSCARD_HALT_AT")
        .env_remove("SSCARD_PAUSE_AT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// The electronic cash account and the ATC of the card whose memory is in `path`
/// (`--demo-cards`), read as a terminal would.
pub fn card_in_file(path: &Path) -> (CardAccount, u64) {
    let image = FileStorage::new(path)
        .load()
        .unwrap()
        .expect("the card's file");
    card_account(SoftCard::in_memory(image))
}

/// The electronic cash account and the ATC of `card`.
pub fn card_account(mut card: SoftCard) -> (CardAccount, u64) {
    card.power_on();
    let mut s = CardSession::new(card);
    let account = read_account(&mut s, &TerminalConfig::kiosk()).unwrap();
    // The ATC (9F36) by GET DATA, after the application is selected by read_account.
    let atc = card_core::pboc::risk::get_data(&mut s, 0x9F36)
        .unwrap()
        .map(|v| v.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
        .expect("the card's ATC");
    (account, atc)
}
