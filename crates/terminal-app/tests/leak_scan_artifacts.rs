#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! What the applications leave on disk holds no secret in clear (issue 9, part 5): the real
//! binaries run with their logging and tracing on, into `$SSCARD_ARTIFACTS` (scripts/test.sh
//! sets it and scans the whole directory again after the test suite) or a temporary directory,
//! and `firmware_tests::leaks` looks for every fixture's PINs, ID number, card number, PAN,
//! names and keys, the demo's keys, and the keys the run generated itself:
//!
//! - `cardctl --trace` of `read` (both ways), `verify-pin` (wrong, then right), `pin-status`,
//!   a raw VERIFY through `apdu`, `atr` and `identify`, against 张三's card in a vpcd slot of
//!   pcscd; and what cardctl printed without `--reveal`; `cardctl dump --trace` on its own
//!   (`cardctl_dump_trace_holds_no_identity`: its identity reads are marked sensitive);
//! - `kiosk --headless` (ledger, receipt) and `kiosk --headless --with-backend` (ledger,
//!   hsm-sim's key store and log, central-server's database and log, sync-agent's log, setup
//!   log, admin script; the key files it generated are secrets to look for, not findings).
//!
//! The headless kiosk's narration on standard output names the demo cards it inserts ("insert
//! 张三's card"); it is the demo's script, not a log, and is not kept.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cardctl, slot_with};
use firmware_tests::leaks::{self, Catalogue, ScanOptions};

/// The directory this test writes into: `$SSCARD_ARTIFACTS/<name>` (emptied first), or a
/// temporary one.
fn artifacts(name: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match leaks::artifacts_dir() {
        Some(root) => {
            let dir = root.join(name);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            (None, dir)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let dir = t.path().to_path_buf();
            (Some(t), dir)
        }
    }
}

/// Scan `dir` with the fixtures' secrets and `secret_files`; fail with the findings (which
/// name file, offset, kind and fixture, never the secret).
fn assert_clean(dir: &Path, secret_files: &[PathBuf]) -> leaks::Report {
    let mut catalogue = Catalogue::fixtures();
    for f in secret_files {
        let text = std::fs::read_to_string(f).unwrap();
        catalogue.add_secret_text(&format!("{}", f.display()), &text);
    }
    catalogue.compile();
    let report = leaks::scan(
        &catalogue,
        &[dir.to_path_buf()],
        &ScanOptions {
            skip: secret_files.to_vec(),
            ..ScanOptions::default()
        },
    );
    let lines: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert!(lines.is_empty(), "secrets in clear:\n{}", lines.join("\n"));
    report
}

/// One cardctl run: name, arguments, standard input, expected exit code.
type Run<'a> = (&'a str, &'a [&'a str], Option<&'a str>, Option<i32>);

/// Run cardctl against 张三's card in a vpcd slot, each run with `--trace` to its own
/// `cardctl-<name>.trace.jsonl` in `dir` and its output kept beside it.
fn cardctl_runs(dir: &Path, runs: &[Run<'_>]) {
    let (lease, mut slot) = slot_with("zhangsan");
    for (name, args, stdin, code) in runs {
        let trace = dir.join(format!("cardctl-{name}.trace.jsonl"));
        let trace_arg = trace.display().to_string();
        let mut full = vec![
            "--reader",
            lease.reader.as_str(),
            "--trace",
            trace_arg.as_str(),
        ];
        full.extend_from_slice(args);
        let out = cardctl(&full, *stdin);
        assert_eq!(
            out.status.code(),
            *code,
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(dir.join(format!("cardctl-{name}.stdout")), &out.stdout).unwrap();
        std::fs::write(dir.join(format!("cardctl-{name}.stderr")), &out.stderr).unwrap();
        // A run that talked to the card has its trace (`atr` only asks pcscd).
        if *name != "atr" {
            let text = std::fs::read_to_string(&trace).unwrap();
            assert!(!text.is_empty(), "{name}: empty trace");
        }
    }
    slot.remove();
}

#[test]
fn cardctl_traces_and_output_hold_no_pin_identity_or_key() {
    let (_keep, dir) = artifacts("cardctl");
    let runs: [Run<'_>; 8] = [
        ("read", &["read"], None, Some(0)),
        (
            "read-by-tag",
            &["read", "--by-tag", "--json"],
            None,
            Some(0),
        ),
        (
            "verify-wrong",
            &["verify-pin", "--pin-stdin"],
            Some("111111\n"),
            Some(3),
        ),
        (
            "verify-right",
            &["verify-pin", "--pin-stdin"],
            Some("123456\n"),
            Some(0),
        ),
        ("pin-status", &["pin-status"], None, Some(0)),
        (
            "apdu-verify",
            &[
                "apdu",
                "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
                "0020000003123456",
            ],
            None,
            Some(0),
        ),
        ("atr", &["atr"], None, Some(0)),
        ("identify", &["identify"], None, Some(0)),
    ];
    cardctl_runs(&dir, &runs);
    let read = std::fs::read_to_string(dir.join("cardctl-read.trace.jsonl")).unwrap();
    // The identity records were read; their answers are in the trace by length only.
    assert!(read.contains("\"apdu\":\"00B2012D00\""), "{read}");
    assert!(read.contains("\"response_redacted\""), "{read}");
    let verify = std::fs::read_to_string(dir.join("cardctl-apdu-verify.trace.jsonl")).unwrap();
    assert!(verify.contains("\"apdu\":\"0020000003\""), "{verify}");
    let report = assert_clean(&dir, &[]);
    assert_eq!(report.files, 3 * runs.len() - 1);
}

#[test]
fn cardctl_dump_trace_holds_no_identity() {
    let (_keep, dir) = artifacts("cardctl-dump");
    cardctl_runs(&dir, &[("dump", &["dump"], None, Some(0))]);
    assert_clean(&dir, &[]);
}

/// Run the kiosk binary headless in `state` with `extra` options, to its end.
fn kiosk(state: &Path, extra: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiosk"))
        .arg("--headless")
        .args(extra)
        .arg("--state-dir")
        .arg(state)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(
                status.success(),
                "kiosk {extra:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(state.join("kiosk.stderr"), &out.stderr).unwrap();
            return;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("kiosk {extra:?} still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_kiosk_journey_leaves_no_secret_in_its_ledger_receipt_or_logs() {
    let (_keep, dir) = artifacts("kiosk");
    kiosk(&dir, &[]);
    let report = assert_clean(&dir, &[]);
    // The ledger (with its WAL) and the receipt were read.
    assert!(report.files >= 2, "{report:?}");
    assert!(dir.join("receipts/receipt-00000001.pdf").is_file());
}

#[test]
fn the_kiosk_with_its_backend_leaves_no_secret_in_databases_or_logs() {
    let bins = Path::new(env!("CARGO_BIN_EXE_kiosk")).parent().unwrap();
    if !bins.join("central-server").is_file() {
        panic!(
            "central-server is not in {}: `cargo build -p hsm-sim -p backend-sync --bins` \
             (scripts/test.sh does)",
            bins.display()
        );
    }
    let (_keep, dir) = artifacts("kiosk-backend");
    kiosk(&dir, &["--with-backend"]);
    let backend = dir.join("backend");
    // The keys it generated (LMK, ZMK, field keys, SM2 keys) are looked for everywhere else.
    let secrets: Vec<PathBuf> = std::fs::read_dir(&backend)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "key" || e == "hex"))
        .collect();
    assert!(secrets.len() >= 5, "{secrets:?}");
    let report = assert_clean(&dir, &secrets);
    for log in [
        "hsm-sim.log",
        "central-server.log",
        "sync-agent.log",
        "setup.log",
        "central.db",
        "hsm-keys.db",
        "kiosk-ledger.db",
    ] {
        assert!(backend.join(log).is_file(), "{log} missing");
    }
    assert!(report.files >= 12, "{report:?}");
}

#[test]
fn the_scanner_knows_the_demo_secrets_in_the_sources() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let demo = std::fs::read_to_string(src.join("demo.rs")).unwrap();
    assert!(demo.contains("*b\"sscard-demo-key!\""));
    assert!(demo.contains("[0x5a; 16]"));
    assert!(demo.contains("Lmk::new(&[0x42; 16])"));
    let kiosk = std::fs::read_to_string(src.join("bin/kiosk.rs")).unwrap();
    assert!(kiosk.contains(&format!(
        "DEMO_TECHNICIAN_PIN: &str = \"{}\"",
        leaks::DEMO_TECHNICIAN_PIN
    )));
    let found = Catalogue::fixtures().scan_bytes(b"field key 7373636172642D64656D6F2D6B657921");
    assert!(
        found.iter().any(|f| f.label == "demo ledger field key"),
        "{found:?}"
    );
}
