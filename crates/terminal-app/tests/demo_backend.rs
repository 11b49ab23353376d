//! `kiosk --headless --with-backend`: the real kiosk binary starts the workspace's real
//! `hsm-sim`, `central-server` and `sync-agent` as child processes on loopback, personalises the
//! demo cards through that hsm-sim, and runs the citizen journey; the payment is synced by the
//! agent and verified by the server through the HSM. The server's SQLite database and the
//! terminal's ledger are read afterwards; the process table shows that no child outlived the
//! kiosk.
//!
//! The backend binaries belong to other packages, which `cargo test -p terminal-app` does not
//! build: they are taken from the kiosk's own directory (target/debug), where
//! `cargo test --workspace` and `scripts/test.sh` put them
//! (`cargo build -p hsm-sim -p backend-sync --bins` builds them alone).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::kiosk_bin::{KIOSK, backend_bins};
use std::io::Read;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use terminal_app::demo::{DemoWorld, TERMINAL};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run the kiosk to its end (at most `limit`; killed and failed after that).
fn kiosk(args: &[&str], state: &Path, limit: Duration) -> Run {
    let mut child = Command::new(KIOSK)
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the kiosk");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the kiosk did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                out_t.join().unwrap(),
                err_t.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Processes whose command line names `dir`.
fn processes_naming(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && cmd.windows(needle.len()).any(|w| w == needle)
        {
            found.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    found
}

/// The server's entries: (terminal, seq, idempotency id, status, state, amount, cryptogram).
type ServerEntry = (String, i64, String, String, String, i64, Option<String>);

fn server_entries(state: &Path) -> Vec<ServerEntry> {
    let db = rusqlite::Connection::open(state.join("backend/central.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT terminal_id, seq, idempotency_id, status, state, amount_fen, cryptogram
             FROM entries ORDER BY seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn ledger(state: &Path) -> backend_sync::ledger::Ledger {
    let key = std::fs::read_to_string(state.join("backend/kiosk-field.key")).unwrap();
    DemoWorld::open_ledger(&state.join("backend/kiosk-ledger.db"), key.trim()).unwrap()
}

fn headless_with_backend(state: &Path) -> Run {
    let bins = backend_bins();
    let run = kiosk(
        &[
            "--headless",
            "--with-backend",
            "--backend-bin-dir",
            bins.to_str().unwrap(),
        ],
        state,
        Duration::from_secs(300),
    );
    assert_eq!(
        run.code,
        Some(0),
        "kiosk failed\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    run
}

/// Every payment in the ledger was booked once by the server, verified (status `booked`, not
/// `booked_unverified` nor `rejected`), with the same idempotency id and cryptogram; nothing
/// waits in the ledger.
fn assert_booked_once_and_verified(state: &Path, payments: usize) {
    let server = server_entries(state);
    let ledger = ledger(state);
    let entries = ledger.entries().unwrap();
    assert_eq!(entries.len(), payments, "ledger entries");
    assert_eq!(server.len(), payments, "server entries: {server:?}");
    for (e, s) in entries.iter().zip(&server) {
        assert_eq!(s.0, TERMINAL);
        assert_eq!(u64::try_from(s.1).unwrap(), e.seq);
        assert_eq!(s.2, e.idempotency_id.to_string(), "idempotency id");
        assert_eq!(s.3, "booked", "verified through the HSM: {s:?}");
        assert_eq!(s.4, "approved_offline");
        assert_eq!(e.state.as_str(), "approved_offline");
        assert_eq!(s.5, 2_000);
        let tc = hex::encode(e.card.as_ref().expect("the card's TC").cryptogram.0);
        assert!(
            s.6.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(&tc)),
            "the server holds the card's TC"
        );
    }
    let summary = ledger.sync_summary().unwrap();
    assert_eq!(summary.pending, 0, "nothing waits for upload");
    assert_eq!(summary.unresolved, 0);
    assert_eq!(summary.rejected, 0);
    assert_eq!(summary.booked, u64::try_from(payments).unwrap());
}

fn assert_no_child_left(state: &Path) {
    let left = processes_naming(state);
    assert!(
        left.is_empty(),
        "processes of the backend outlived the kiosk: {left:?}"
    );
}

#[test]
fn headless_journey_with_backend_books_the_payment_once_verified_and_leaves_no_process() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    let run = headless_with_backend(state);
    let out = &run.stdout;

    // The journey: paid, the lost card refused, then the card reported lost at the server
    // refused after the next sync.
    assert!(out.contains("paid 2000 fen"), "{out}");
    assert!(out.contains("-> insert 王芳's card"), "{out}");
    let lisi = out.find("-> insert 李思's card").expect("李思's insert");
    assert!(
        out[lisi..].contains("card rejected: HotListed"),
        "李思's card is refused once reported lost:\n{out}"
    );
    assert!(out.contains("journey complete"), "{out}");
    // The server's own report, printed at the end: one booked, one approved, 20.00.
    let report = out
        .lines()
        .find(|l| l.starts_with(&format!("{TERMINAL}\t")))
        .expect("the server's report line");
    let cols: Vec<&str> = report.split('\t').collect();
    assert_eq!(&cols[1..5], ["1", "0", "1", "2000"], "{report}");
    assert!(out.contains("pending:             0"), "{out}");

    assert_booked_once_and_verified(state, 1);
    // The hot list came from the server: 王芳's card (seeded there), 李思's reported and
    // unblocked again.
    let summary = ledger(state).sync_summary().unwrap();
    assert_eq!(summary.hotlist_version, 3);
    assert!(summary.cardholders_version >= 4, "records from the server");

    assert_no_child_left(state);

    // Files: the backend directory is the owner's only, the terminal key 0600; no secret in
    // a log or in the kiosk's output.
    let backend = state.join("backend");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&backend), 0o700);
    for key in ["terminal.key", "hsm-lmk.hex", "zmk.hex", "server.key"] {
        assert_eq!(mode(&backend.join(key)), 0o600, "{key}");
    }
    let secrets: Vec<String> = ["terminal.key", "hsm-lmk.hex", "zmk.hex", "server.key"]
        .iter()
        .map(|k| {
            std::fs::read_to_string(backend.join(k))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    let mut texts = vec![run.stdout.clone(), run.stderr.clone()];
    for e in std::fs::read_dir(&backend).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            texts.push(std::fs::read_to_string(e.path()).unwrap());
        }
    }
    for s in &secrets {
        assert!(s.len() >= 32);
        for t in &texts {
            assert!(
                !t.to_uppercase().contains(&s.to_uppercase()),
                "a key in the output"
            );
        }
    }
    // Each child's log is there.
    for name in ["hsm-sim", "central-server", "sync-agent"] {
        assert!(backend.join(format!("{name}.log")).is_file(), "{name}.log");
    }
}

#[test]
fn a_second_start_with_the_same_state_dir_reuses_the_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    headless_with_backend(state);
    let key_before = std::fs::read(state.join("backend/terminal.key")).unwrap();
    let run = headless_with_backend(state);
    // The same terminal key, the same server and HSM: the second payment, by a card
    // personalised again from the master keys kept in the HSM, is verified as the first.
    assert_eq!(
        std::fs::read(state.join("backend/terminal.key")).unwrap(),
        key_before
    );
    assert!(run.stdout.contains("paid 2000 fen"), "{}", run.stdout);
    assert_booked_once_and_verified(state, 2);
    assert_no_child_left(state);
}

#[test]
fn a_child_that_fails_to_start_is_named_with_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let bins = tmp.path().join("bin");
    std::fs::create_dir(&bins).unwrap();
    // An hsm-sim whose key ceremony works but whose server cannot start.
    let scripts = [
        (
            "hsm-sim",
            "#!/bin/sh\ncase \" $* \" in\n*\" serve \"*) echo 'hsm-sim: binding 127.0.0.1:0: \
             permission denied' >&2; exit 3 ;;\n*) cat >/dev/null; exit 0 ;;\nesac\n",
        ),
        ("central-server", "#!/bin/sh\nexit 1\n"),
        ("sync-agent", "#!/bin/sh\nexit 1\n"),
    ];
    for (name, text) in scripts {
        let p = bins.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let state = tmp.path().join("state");
    let run = kiosk(
        &[
            "--headless",
            "--with-backend",
            "--backend-bin-dir",
            bins.to_str().unwrap(),
        ],
        &state,
        Duration::from_secs(60),
    );
    assert_ne!(run.code, Some(0));
    let log = std::fs::canonicalize(state.join("backend"))
        .unwrap()
        .join("hsm-sim.log");
    assert!(
        run.stderr.contains("hsm-sim did not start")
            && run.stderr.contains(&log.display().to_string())
            && run.stderr.contains("permission denied"),
        "{}",
        run.stderr
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("permission denied")
    );
    assert_no_child_left(&state);
}

#[test]
fn missing_backend_binaries_are_named_with_how_to_build_them() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("bin");
    std::fs::create_dir(&empty).unwrap();
    let run = kiosk(
        &[
            "--headless",
            "--with-backend",
            "--backend-bin-dir",
            empty.to_str().unwrap(),
        ],
        &tmp.path().join("state"),
        Duration::from_secs(60),
    );
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("hsm-sim not found in")
            && run
                .stderr
                .contains("cargo build --release -p hsm-sim -p backend-sync --bins"),
        "{}",
        run.stderr
    );
}

#[test]
fn without_a_display_the_kiosk_says_so_and_offers_the_headless_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::kiosk_bin::KIOSK)
        .args(["--state-dir", tmp.path().to_str().unwrap()])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no display found"), "{err}");
    assert!(err.contains("kiosk --headless"), "{err}");
    assert!(out.stdout.is_empty());
}
