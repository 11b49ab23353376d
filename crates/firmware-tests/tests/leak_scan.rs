#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The leak scanner itself (issue 9, part 5): each kind of secret, planted in a file in each
//! form it travels in, is found by the `leak-scan` binary at its offset, reported without the
//! secret; masked and redacted forms and unrelated numbers pass; `--since`, `--skip`,
//! `--secret-file` and executables behave as documented. Then the scanner over card-core's own
//! traces: every flow (identity, card authentication, PIN, contact and qPBOC purchases, logs)
//! traced into a sink holds no secret of the card.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use card_core::CardSession;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{
    Amount, Date, Hooks, TerminalConfig, Time, TransactionParams, ec, run_contact,
};
use card_core::secret::Pin;
use card_core::ssse::{self, ReadStrategy};
use card_core::trace::{TraceEvent, TraceSink};
use firmware_tests::leaks::{Catalogue, Kind};
use firmware_tests::pboc::profile::TerminalCaKey;
use firmware_tests::{Profile, SoftCard};

const SCAN: &str = env!("CARGO_BIN_EXE_leak-scan");

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn scan(args: &[&Path]) -> Ran {
    let out = Command::new(SCAN).args(args).output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// 张三's secrets, in the forms the catalogue looks for, each in its own file with 7 bytes of
/// padding before it: (file, bytes, kind as reported).
fn planted() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let gbk_name = vec![0xd5, 0xc5, 0xc8, 0xfd]; // 张三 in GBK
    let pan_bcd = hex::decode("6230580000000000013F").unwrap();
    let pin_key = &card_core::crypto::sm3::digest(&[0x12, 0x34, 0x56])[..16];
    vec![
        ("pin-token.log", b"PIN is 123456\n".to_vec(), "PIN"),
        ("pin-json.log", b"{\"pin\":\"123456\"}".to_vec(), "PIN"),
        (
            "verify-hex.jsonl",
            b"{\"apdu\":\"0020000003123456\"}".to_vec(),
            "PIN in an APDU",
        ),
        (
            "verify-spaced.log",
            b"> 00 20 00 00 03 12 34 56".to_vec(),
            "PIN in an APDU",
        ),
        (
            "verify-raw.bin",
            vec![0x00, 0x20, 0x00, 0x00, 0x03, 0x12, 0x34, 0x56],
            "PIN in an APDU",
        ),
        (
            "pin-block.log",
            b"block 26123456ffffffff".to_vec(),
            "PIN in an APDU",
        ),
        ("pin-key.bin", pin_key.to_vec(), "PIN in an APDU"),
        ("ssn.txt", b"110105198703153011".to_vec(), "ID number"),
        (
            "ssn-hex.jsonl",
            hex::encode_upper("110105198703153011").into_bytes(),
            "ID number",
        ),
        ("card-number.txt", b"card A00000011".to_vec(), "card number"),
        ("pan.txt", b"PAN 6230580000000000013".to_vec(), "PAN"),
        ("pan-bcd.bin", pan_bcd, "PAN"),
        ("name-utf8.txt", "holder 张三".as_bytes().to_vec(), "name"),
        ("name-gbk.bin", gbk_name, "name"),
        (
            "name-gbk-hex.jsonl",
            b"\"response\":\"D5C5C8FD\"".to_vec(),
            "name",
        ),
        (
            "name-escaped.json",
            b"{\"name\":\"\\u5f20\\u4e09\"}".to_vec(),
            "name",
        ),
        ("payment-name.txt", b"ZHANG/SAN".to_vec(), "name"),
        (
            "imk.txt",
            b"imk 11223344556677889900AABBCCDDEEFF".to_vec(),
            "key",
        ),
        (
            "imk-lower.txt",
            b"11223344556677889900aabbccddeeff".to_vec(),
            "key",
        ),
        ("demo-field-key.txt", b"sscard-demo-key!".to_vec(), "key"),
        ("demo-zmk.bin", vec![0x5a; 16], "key"),
        (
            "oda-seed.txt",
            b"seed: sscard test issuer SM2".to_vec(),
            "key",
        ),
    ]
}

#[test]
fn every_kind_of_secret_is_found_at_its_offset_without_being_shown() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, _) in planted() {
        let mut padded = b"padding".to_vec();
        padded.extend_from_slice(&bytes);
        write(dir.path(), name, &padded);
    }
    let ran = scan(&[dir.path()]);
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    for (name, _, kind) in planted() {
        let line = ran
            .stdout
            .lines()
            .find(|l| l.contains(&format!("/{name}:")) && l.contains(&format!(": {kind} (")))
            .unwrap_or_else(|| panic!("{name}: no {kind} finding in\n{}", ran.stdout));
        // The offset is where the secret starts (after "padding" and the file's own prefix).
        let offset: usize = line
            .split(&format!("/{name}:"))
            .nth(1)
            .and_then(|r| r.split(':').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(offset >= 7, "{line}");
    }
    for secret in [
        "123456",
        "110105198703153011",
        "A00000011",
        "6230580000000000013",
        "张三",
        "ZHANG/SAN",
        "11223344556677889900",
        "sscard-demo-key",
    ] {
        assert!(
            !ran.stdout.contains(secret),
            "{secret} shown:\n{}",
            ran.stdout
        );
        assert!(
            !ran.stderr.contains(secret),
            "{secret} shown:\n{}",
            ran.stderr
        );
    }
    assert!(ran.stderr.contains("22 files"), "{}", ran.stderr);
}

#[test]
fn masked_redacted_and_unrelated_text_passes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "masked.log",
        "name:            张*\nsocial sec. no.: 110***********3011\ncard number:     A*******1\n\
         PAN 623058*********0013\n"
            .as_bytes(),
    );
    write(
        dir.path(),
        "trace.jsonl",
        b"{\"kind\":\"command\",\"apdu\":\"0020000003\",\"redacted\":3,\"response\":\"\",\"sw\":\"9000\"}\n\
          {\"kind\":\"command\",\"apdu\":\"00B2012D00\",\"response\":\"\",\"response_redacted\":74,\"sw\":\"9000\"}\n",
    );
    write(
        dir.path(),
        "numbers.log",
        b"amount 123456 fen, serial 0000000123456, pin_tries 3, PIN 1234567 (not a fixture PIN)\n",
    );
    let ran = scan(&[dir.path()]);
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    assert!(ran.stderr.contains("3 files"), "{}", ran.stderr);
    assert!(ran.stderr.contains("0 findings"), "{}", ran.stderr);
}

#[test]
fn since_skip_secret_files_and_executables() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.log", b"PIN 123456");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let marker = write(dir.path(), "marker", b"");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let new = write(dir.path(), "new.log", b"clean");
    // Older than the marker: not read.
    let ran = Command::new(SCAN)
        .arg("--since")
        .arg(&marker)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    // Skipped on request.
    let ran = Command::new(SCAN)
        .arg("--skip")
        .arg(&old)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    // A key file's content is looked for elsewhere; the key file itself is no finding.
    let key = write(
        dir.path(),
        "terminal.key",
        b"C01FA8E8DE9D43C9A3F7BF2F0B90BA53\n",
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&new).unwrap();
    f.write_all(b" c01fa8e8de9d43c9a3f7bf2f0b90ba53").unwrap();
    let ran = Command::new(SCAN)
        .args(["--skip".as_ref(), old.as_os_str()])
        .arg("--secret-file")
        .arg(&key)
        .arg(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&ran.stdout);
    assert_eq!(ran.status.code(), Some(1), "{ran:?}");
    assert!(
        out.contains("new.log:6: key (secret file terminal.key, hex)"),
        "{out}"
    );
    assert!(!out.contains("terminal.key:"), "{out}");
    assert!(!out.to_ascii_lowercase().contains("c01fa8e8"), "{out}");
    // Programs carry the fixtures compiled in: skipped, and said so.
    let ran = scan(&[Path::new(SCAN)]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(ran.stderr.contains("executable"), "{}", ran.stderr);
    // Nothing to scan is not a failure; a missing path is named.
    let ran = scan(&[&dir.path().join("absent")]);
    assert_eq!(ran.code, Some(0));
    assert!(ran.stderr.contains("absent"), "{}", ran.stderr);
}

/// JSON lines of every exchange, as reader-driver's trace writes them.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl TraceSink for Lines {
    fn record(&mut self, e: &TraceEvent<'_>) {
        self.0.lock().unwrap().push(e.to_json_line());
    }
}

struct Pad;

impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        PinEntry::Pin(Pin::new("123456").unwrap())
    }
}

struct Offline;

impl OnlineAuthoriser for Offline {
    fn authorise(&mut self, _r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        Err(OnlineUnavailable("offline".into()))
    }
}

#[test]
fn card_core_traces_of_every_flow_hold_no_secret_of_the_card() {
    let profile = Profile::embedded("zhangsan").unwrap();
    let mut ca = CaStore::new();
    match profile.pboc.as_ref().unwrap().ca_key().unwrap() {
        TerminalCaKey::Sm2(k) => ca.add_sm2(k),
        TerminalCaKey::Rsa(k) => ca.add_rsa(k),
    }
    let lines = Lines::default();
    let card = SoftCard::in_memory(profile.build().unwrap());
    let mut s = CardSession::new(card).with_trace(Box::new(lines.clone()));
    let id = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    assert_eq!(id.holder.ssn.reveal(), "110105198703153011");
    ssse::read_identity(&mut s, ReadStrategy::ByTag).unwrap();
    ssse::verify_pin(&mut s, &Pin::new("654321").unwrap()).unwrap_err();
    ssse::verify_pin(&mut s, &Pin::new("123456").unwrap()).unwrap();
    let params = || {
        TransactionParams::purchase(
            Amount::new(100).unwrap(),
            Date::new(2026, 3, 15).unwrap(),
            Time::new(10, 20, 30).unwrap(),
            [1, 2, 3, 4],
        )
    };
    let kiosk = TerminalConfig::kiosk();
    let contact = run_contact(
        &mut s,
        &kiosk,
        &ca,
        params(),
        &mut Hooks {
            pin_pad: &mut Pad,
            hot_list: &NoHotList,
            online: &mut Offline,
            journal: &mut MemoryJournal::default(),
        },
    );
    assert!(contact.outcome.is_approved(), "{:?}", contact.outcome);
    let qpboc = run_qpboc(
        &mut s,
        &kiosk,
        &ca,
        params(),
        &mut QpbocHooks {
            hot_list: &NoHotList,
            online: &mut Offline,
            journal: &mut MemoryJournal::default(),
        },
    );
    assert!(qpboc.outcome.is_approved(), "{:?}", qpboc.outcome);
    let (app, _) = ec::balance_inquiry(&mut s, &kiosk).unwrap();
    let log = ec::read_transaction_log(&mut s, app.fci.log_entry.unwrap()).unwrap();
    assert_eq!(log.len(), 2);

    let text = lines.0.lock().unwrap().join("\n");
    assert!(text.lines().count() > 40, "{text}");
    let findings = Catalogue::fixtures().scan_bytes(text.as_bytes());
    let shown: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert!(shown.is_empty(), "{}", shown.join("\n"));
    // Not clean for want of content: the records were read and are there by length.
    assert!(text.contains("\"apdu\":\"00B2012D00\""), "{text}");
    assert!(text.contains("response_redacted"), "{text}");
    // And the scanner does see the identity in an unredacted trace.
    let ssn_hex = hex::encode_upper("110105198703153011");
    let leaked = format!("{{\"response\":\"{ssn_hex}\"}}");
    let found = Catalogue::fixtures().scan_bytes(leaked.as_bytes());
    assert!(found.iter().any(|f| f.kind == Kind::IdNumber), "{found:?}");
}
