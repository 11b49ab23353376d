//! The key store on disk: keys survive a restart, nothing secret is in the file in clear, and
//! tampering with key records or the audit log is detected when the HSM starts. Also the
//! `hsm-sim` binary: key ceremony, serving, audit listing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use hsm_sim::client::{BlockingClient, HsmClient, InProcess};
use hsm_sim::hsm::HsmError;
use hsm_sim::store::StoreError;
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

const LMK: &str = "A1B2C3D4E5F60718293A4B5C6D7E8F90";
const IMK: &str = "0123456789ABCDEFFEDCBA9876543210";

fn open(path: &Path) -> Result<Hsm, HsmError> {
    Hsm::open(path, Lmk::from_hex(LMK).unwrap(), 4)
}

/// A store with a few keys and audit records.
fn populated(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("keys.db");
    let hsm = Arc::new(open(&path).unwrap());
    hsm.form_key_from_components(
        "IMKAC001",
        KeyType::MkAc,
        Scheme::Tdes,
        &[&hex::decode(IMK).unwrap()],
    )
    .unwrap();
    let mut c = HsmClient::new(InProcess::new(Arc::clone(&hsm)));
    c.generate_key(KeyType::Zmk, Scheme::Sm4, "ZMK00001")
        .unwrap();
    c.generate_key(KeyType::Sm2Ca, Scheme::Sm2, "CAROOT01")
        .unwrap();
    c.generate_key(KeyType::Zak, Scheme::Tdes, "ZAK00001")
        .unwrap();
    path
}

fn sql(path: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[test]
fn keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = populated(dir.path());
    let hsm = Arc::new(open(&path).unwrap());
    let mut c = HsmClient::new(InProcess::new(Arc::clone(&hsm)));
    let mac = c.generate_mac("ZAK00001", b"data").unwrap();
    assert!(c.verify_mac("ZAK00001", b"data", mac).unwrap());
    let (kind, _) = c.public_key("CAROOT01").unwrap();
    assert_eq!(kind, KeyType::Sm2Ca);
    let events: Vec<String> = hsm
        .audit_records()
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(
        events,
        [
            "START",
            "CONSOLE form key",
            "A0 generate key",
            "A0 generate key",
            "A0 generate key",
            "START"
        ]
    );
}

#[test]
fn no_clear_secret_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = populated(dir.path());
    // Let SQLite fold the WAL into the main file, then scan every file of the store.
    sql(&path, "PRAGMA wal_checkpoint(TRUNCATE);");
    let imk = hex::decode(IMK).unwrap();
    let lmk = hex::decode(LMK).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for (name, secret) in [("IMK", &imk), ("LMK", &lmk)] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                "{name} in clear"
            );
            let text = hex::encode_upper(secret);
            assert!(
                !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
                "{name} as hex"
            );
        }
    }
}

#[test]
fn a_tampered_key_record_stops_the_hsm() {
    for (what, statement) in [
        (
            "type changed",
            "UPDATE keys SET key_type = '008' WHERE label = 'IMKAC001';",
        ),
        (
            "cryptogram swapped",
            "UPDATE keys SET cryptogram = (SELECT cryptogram FROM keys WHERE label = 'ZAK00001') WHERE label = 'IMKAC001';",
        ),
        (
            "label changed",
            "UPDATE keys SET label = 'IMKAC002' WHERE label = 'IMKAC001';",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = populated(dir.path());
        sql(&path, statement);
        match open(&path) {
            Err(HsmError::Store(StoreError::KeyTampered { .. })) => {}
            other => panic!("{what}: expected KeyTampered, got {other:?}"),
        }
    }
}

#[test]
fn a_tampered_audit_log_stops_the_hsm() {
    for (what, statement, reason) in [
        (
            "record deleted",
            "DELETE FROM audit WHERE seq = 2;",
            "record missing",
        ),
        (
            "record edited",
            "UPDATE audit SET outcome = '00' WHERE seq = 3; UPDATE audit SET label = 'X' WHERE seq = 3;",
            "record altered or chain broken",
        ),
        (
            "tail cut",
            "DELETE FROM audit WHERE seq >= 4;",
            "records after the last one are missing",
        ),
        (
            "head forged",
            "UPDATE meta SET value = '3' WHERE name = 'audit_head_seq';",
            "head altered",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = populated(dir.path());
        sql(&path, statement);
        match open(&path) {
            Err(HsmError::Store(StoreError::AuditTampered { reason: r, .. })) => {
                assert_eq!(r, reason, "{what}")
            }
            other => panic!("{what}: expected AuditTampered, got {other:?}"),
        }
    }
}

#[test]
fn another_lmk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = populated(dir.path());
    match Hsm::open(
        &path,
        Lmk::from_hex("FFEEDDCCBBAA99887766554433221100").unwrap(),
        4,
    ) {
        Err(HsmError::Store(StoreError::WrongLmk { .. })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_binary_forms_keys_serves_and_lists_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.db");
    let lmk_file = dir.path().join("lmk");
    std::fs::write(&lmk_file, LMK).unwrap();
    let bin = env!("CARGO_BIN_EXE_hsm-sim");
    let base = |cmd: &str| {
        let mut c = Command::new(bin);
        c.args([
            "--store",
            store.to_str().unwrap(),
            "--lmk-file",
            lmk_file.to_str().unwrap(),
            cmd,
        ]);
        c
    };
    // Key ceremony: two components on standard input.
    let mut form = base("form-key")
        .args(["--type", "109", "--scheme", "U", "--label", "IMKAC001"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    form.stdin
        .take()
        .unwrap()
        .write_all(b"0123456789ABCDEF0123456789ABCDEF\n0000000000000000FFFFFFFFFFFFFFFF\n")
        .unwrap();
    let out = form.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("IMKAC001 109 U KCV 08D7"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Serve on a free port; the address is printed on standard error.
    let mut server = base("serve")
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("hsm-sim listening on ")
        .unwrap()
        .to_string();
    let mut c = HsmClient::new(BlockingClient::connect(addr.as_str(), 4).unwrap());
    assert_eq!(
        c.diagnostics().unwrap().lmk_check,
        Lmk::from_hex(LMK).unwrap().check_value()
    );
    c.generate_key(KeyType::Zak, Scheme::Sm4, "ZAK00001")
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();

    let out = base("audit").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("CONSOLE form key")
            && text.contains("A0 generate key")
            && text.contains("ZAK00001"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("audit log intact: 5 records"),
        "{text}"
    );

    // No LMK: a clear message.
    let out = Command::new(bin)
        .args(["--store", store.to_str().unwrap(), "audit"])
        .env_remove("HSM_LMK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no LMK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
