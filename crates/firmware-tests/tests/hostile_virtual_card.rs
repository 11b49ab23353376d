#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `virtual-card --hostile MODE` in a vpcd slot of pcscd, seen by an independent client
//! (OpenSC's `opensc-tool`): the card inserted misbehaves as the mode says; `status` names the
//! mode; an unknown mode is refused with the list of modes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use firmware_tests::testenv::PcscEnv;

fn atr(reader: &str) -> Option<String> {
    let o = Command::new("opensc-tool")
        .args(["-r", reader, "-c", "default", "-a"])
        .output()
        .expect("opensc-tool is installed by scripts/pcsc-env.sh install");
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_uppercase())
}

fn wait_card(reader: &str, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while atr(reader).is_some() != present {
        assert!(
            Instant::now() < deadline,
            "card in {reader} never present={present}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_hostile_virtual_card_answers_wrong_status_words_through_pcscd() {
    let lease = PcscEnv::load()
        .unwrap_or_else(|e| panic!("{e}"))
        .lease()
        .unwrap();
    wait_card(&lease.reader, false);
    let mut child = Command::new(env!("CARGO_BIN_EXE_virtual-card"))
        .args(["--port", &lease.port.to_string()])
        .args(["--hostile", "wrong-success-sw", "--insert", "zhangsan"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready port="), "{line}");
    wait_card(&lease.reader, true);

    // The genuine card answers SELECT with 9000; this one turns it into 6283.
    let o = Command::new("opensc-tool")
        .args(["-r", &lease.reader, "-c", "default", "-s"])
        .arg("00A404000F7378312E73682EC9E7BBE1B1A3D5CF00")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_uppercase();
    assert!(out.contains("SW1=0X62, SW2=0X83"), "{out}");

    writeln!(stdin, "status").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("ok inserted=zhangsan hostile=wrong-success-sw apdus="),
        "{line}"
    );
    writeln!(stdin, "quit").unwrap();
    assert!(child.wait().unwrap().success());
    wait_card(&lease.reader, false);
}

#[test]
fn an_unknown_hostile_mode_is_refused_with_the_list() {
    let o = Command::new(env!("CARGO_BIN_EXE_virtual-card"))
        .args(["--hostile", "polite"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown hostile mode \"polite\""), "{err}");
    assert!(err.contains("endless-61xx"), "{err}");
}
