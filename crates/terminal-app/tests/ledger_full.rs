#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Disk full and I/O errors in the ledger (issue 9, item 3; docs/reliability.md): the real
//! kiosk binary (`kiosk --headless`). The kiosk pauses when the payment is asked for
//! (`SSCARD_PAUSE_AT=pay.requested`, terminal_app::failpoint); the test then makes the next write fail with a real kernel error:
//!
//! - disk full: the state directory on a small tmpfs of its own, and a filler file takes every
//!   free block of it (`ENOSPC`, SQLite's "database or disk is full");
//! - I/O error: the kiosk's soft file size limit (RLIMIT_FSIZE, `prlimit --pid`) lowered to
//!   4 KiB under the open ledger, with SIGXFSZ ignored, so the next write fails with `EFBIG`
//!   (SQLite's "disk I/O error"); lifted again once the refusal is shown.
//!
//! and lets the kiosk go on. The payment must be refused before any card command (the card's
//! balance, ATC and log unchanged, read from its file in `--demo-cards`, kept apart from the
//! kiosk's state),
//! with the kiosk's message; the ledger passes `PRAGMA integrity_check` and holds no entry.
//! With the space back (or the limit lifted) the next payment goes through.
//!
//! Mounting the tmpfs needs CAP_SYS_ADMIN (root in CI and in the project's container); without
//! it the disk-full test prints why and skips. The file-size-limit test needs no privilege.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::kiosk_bin::{KIOSK, card_in_file, headless};
use terminal_app::demo::DemoWorld;

/// The kiosk with SIGXFSZ ignored (inherited through exec): a write over RLIMIT_FSIZE fails
/// with EFBIG instead of killing the process.
fn kiosk_cmd(state: &Path, cards: &Path) -> Command {
    headless(
        state,
        cards,
        "sh",
        &["-c", "trap '' XFSZ; exec \"$0\" \"$@\"", KIOSK],
    )
}
const LIMIT: Duration = Duration::from_secs(180);

/// A tmpfs mounted at a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None` (with the reason printed) when mounting is not permitted here.
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                println!(
                    "SKIPPED: cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("SKIPPED: no mount command: {e}");
                None
            }
        }
    }
}

/// The kiosk process's soft file size limit (RLIMIT_FSIZE; the hard limit stays unlimited, so
/// no privilege is needed to lift it again).
fn limit_file_size(pid: u32, limit: &str) {
    let st = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--fsize={limit}:unlimited"),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "prlimit --fsize={limit}");
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Fill the file system of `dir` until a write fails with ENOSPC; the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0x55u8; 4096];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    let _ = f.sync_all();
    path
}

/// One way to make the ledger's next write fail, and to undo it.
struct Fault<'a> {
    name: &'a str,
    /// At the pause, with the kiosk's process id.
    break_it: &'a dyn Fn(u32),
    /// Once the refusal is shown (the kiosk still running).
    after_refusal: &'a dyn Fn(u32),
    /// After the kiosk ended.
    repair: &'a dyn Fn(),
}

/// Run the journey, pausing at the payment request to break the ledger's storage; the output.
fn run_with_fault(state: &Path, cards: &Path, fault: &Fault<'_>) -> String {
    let mut child = kiosk_cmd(state, cards)
        .env("SSCARD_PAUSE_AT", "pay.requested")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let started = Instant::now();
    let mut stdin = child.stdin.take();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let paused = line == "  .. paused at pay.requested";
                if line.contains("payment failed") {
                    (fault.after_refusal)(child.id());
                }
                seen.push(line);
                if paused {
                    (fault.break_it)(child.id());
                    let mut s = stdin.take().unwrap();
                    s.write_all(b"\n").unwrap();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if started.elapsed() > LIMIT {
                    let _ = child.kill();
                    panic!("kiosk still running:\n{}", seen.join("\n"));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().unwrap();
    let out = seen.join("\n");
    assert!(status.success(), "kiosk failed:\n{out}");
    out
}

fn ledger_check(state: &Path) -> usize {
    let path = state.join("kiosk-ledger.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(db);
    let ledger = DemoWorld::open_ledger(&path, &hex::encode_upper(b"sscard-demo-key!")).unwrap();
    let entries = ledger.entries().unwrap();
    for e in &entries {
        assert!(e.state.is_final(), "entry {} left {:?}", e.seq, e.state);
    }
    entries.len()
}

/// One fault: refused before the card, nothing written, then the next payment works. The
/// kiosk's state in `state`, the cards beside `tmp`.
fn refused_then_recovered(tmp: &Path, state: &Path, fault: &Fault<'_>) {
    let name = fault.name;
    let cards = tmp.join("cards");
    std::fs::create_dir_all(state).unwrap();
    let state = state.to_path_buf();
    // The cards as the kiosk will find them.
    drop(DemoWorld::build_keeping_cards(&state, Some(&cards)).unwrap());
    let card = cards.join("zhangsan.json");
    let (before, atc_before) = card_in_file(&card);

    let out = run_with_fault(&state, &cards, fault);
    let failed = out
        .lines()
        .find(|l| l.contains("payment failed"))
        .unwrap_or_else(|| panic!("{name}: no refusal:\n{out}"));
    assert!(
        failed.contains("The terminal cannot record payments now; nothing was taken"),
        "{failed}"
    );
    // Refused at the ledger check, before the first card command of the payment.
    assert!(!out.contains(".. step pay.balance-read"), "{out}");
    assert!(!out.contains("the card asks for its PIN"), "{out}");
    let (after, atc_after) = card_in_file(&card);
    assert_eq!(after, before, "{name}: the card's purse and log unchanged");
    assert_eq!(atc_after, atc_before, "{name}: the card's ATC unchanged");
    (fault.repair)();
    assert_eq!(ledger_check(&state), 0, "{name}: no entry written");
    println!("{name}: {}", failed.trim());

    // Space back: the next payment goes through, once.
    let ok = kiosk_cmd(&state, &cards)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let ok_out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok_out}");
    assert!(ok_out.contains("paid 2000 fen"), "{ok_out}");
    assert_eq!(ledger_check(&state), 1);
    let (paid, atc_paid) = card_in_file(&card);
    assert_eq!(paid.balance_fen, before.balance_fen - 2_000);
    assert!(atc_paid > atc_before);
    println!("{name}: after the repair: paid 2000 fen, 1 entry, integrity ok");
}

#[test]
fn a_full_disk_refuses_the_payment_before_the_card_and_the_next_one_works() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("state"), "4m") else {
        return;
    };
    let filler = std::sync::Mutex::new(None);
    refused_then_recovered(
        tmp.path(),
        &fs.dir.join("kiosk"),
        &Fault {
            name: "disk full (ENOSPC on a full tmpfs)",
            break_it: &|_| *filler.lock().unwrap() = Some(fill(&fs.dir)),
            after_refusal: &|_| {},
            repair: &|| {
                if let Some(f) = filler.lock().unwrap().take() {
                    std::fs::remove_file(f).unwrap();
                }
            },
        },
    );
}

/// Needs no privilege: the kiosk's own file size limit (RLIMIT_FSIZE) is lowered under the
/// open ledger, whose next write then fails with EFBIG (an I/O error to SQLite); the limit is
/// lifted once the refusal is shown.
#[test]
fn a_write_error_refuses_the_payment_before_the_card_and_the_next_one_works() {
    let tmp = tempfile::tempdir().unwrap();
    refused_then_recovered(
        tmp.path(),
        &tmp.path().join("state"),
        &Fault {
            name: "I/O error (EFBIG over RLIMIT_FSIZE)",
            break_it: &|pid| limit_file_size(pid, "4096"),
            after_refusal: &|pid| limit_file_size(pid, "unlimited"),
            repair: &|| {},
        },
    );
}
