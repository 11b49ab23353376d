//! The `virtual-card` binary in a pcscd vpcd slot, checked with an independent client
//! (OpenSC's `opensc-tool`): insert, remove, several cards, and a PIN counter that survives a
//! restart of the binary when `--state-dir` is given.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use firmware_tests::testenv::{PcscEnv, SlotLease};

struct VirtualCard {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl VirtualCard {
    fn start(port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_virtual-card"))
            .arg("--port")
            .arg(port.to_string())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        assert!(ready.starts_with("ready port="), "{ready}");
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).unwrap();
        reply.trim_end().to_string()
    }

    fn quit(mut self) {
        writeln!(self.stdin, "quit").unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success());
    }
}

/// `opensc-tool` against the reader: the ATR, or None if no card.
fn atr(reader: &str) -> Option<String> {
    let o = Command::new("opensc-tool")
        .args(["-r", reader, "-c", "default", "-a"])
        .output()
        .expect("opensc-tool is installed by scripts/pcsc-env.sh install");
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_uppercase())
}

fn wait_atr(reader: &str, want: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = atr(reader);
        if got.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ATR in {reader} is {got:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn apdus(reader: &str, apdus: &[&str]) -> String {
    let mut args = vec!["-r", reader, "-c", "default"];
    for a in apdus {
        args.push("-s");
        args.push(a);
    }
    let o = Command::new("opensc-tool").args(&args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).to_uppercase()
}

fn lease() -> SlotLease {
    let lease = PcscEnv::load()
        .unwrap_or_else(|e| panic!("{e}"))
        .lease()
        .unwrap();
    wait_atr(&lease.reader, None);
    lease
}

const SELECT: &str = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00";

#[test]
fn inserts_removes_and_switches_cards() {
    let lease = lease();
    let mut vc = VirtualCard::start(lease.port, &[]);
    assert!(vc.cmd("list").contains("zhangsan: 张三"));
    assert_eq!(vc.cmd("status"), "ok inserted=none apdus=0");
    assert_eq!(vc.cmd("insert zhangsan"), "ok inserted zhangsan");
    wait_atr(
        &lease.reader,
        Some("3B:86:80:31:FE:45:53:53:43:41:52:44:98"),
    );
    let out = apdus(&lease.reader, &[SELECT, "00B2083000"]);
    assert!(
        out.contains("08 12 31 31 30 31 30 35 31 39 38 37 30 33 31 35"),
        "{out}"
    );
    assert!(vc.cmd("status").starts_with("ok inserted=zhangsan apdus="));
    // Another card replaces it.
    assert_eq!(vc.cmd("insert wangfang-t0"), "ok inserted wangfang-t0");
    wait_atr(&lease.reader, Some("3B:02:14:50"));
    assert_eq!(vc.cmd("remove"), "ok removed wangfang-t0");
    wait_atr(&lease.reader, None);
    assert!(
        vc.cmd("insert nobody")
            .starts_with("error no card named nobody")
    );
    assert!(vc.cmd("dance").starts_with("error unknown command"));
    assert!(vc.cmd("pull-after 0").starts_with("error"));
    vc.quit();
}

#[test]
fn card_memory_persists_across_runs() {
    let lease = lease();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let vc = VirtualCard::start(lease.port, &["--state-dir", state, "--insert", "lisi"]);
    wait_atr(
        &lease.reader,
        Some("3B:86:80:31:FE:45:53:53:43:41:52:44:98"),
    );
    let out = apdus(&lease.reader, &[SELECT, "0020000003111111"]);
    assert!(out.contains("SW1=0X63, SW2=0XC2"), "{out}");
    vc.quit();
    wait_atr(&lease.reader, None);
    assert!(dir.path().join("lisi.json").exists());

    let vc = VirtualCard::start(lease.port, &["--state-dir", state, "--insert", "lisi"]);
    wait_atr(
        &lease.reader,
        Some("3B:86:80:31:FE:45:53:53:43:41:52:44:98"),
    );
    let out = apdus(&lease.reader, &[SELECT, "00200000"]);
    assert!(
        out.contains("SW1=0X63, SW2=0XC2"),
        "the counter survived: {out}"
    );
    vc.quit();
}

#[test]
fn a_profile_file_adds_a_card() {
    let lease = lease();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    let text = firmware_tests::profile::EMBEDDED
        .iter()
        .find(|(n, _)| *n == "zhangsan")
        .unwrap()
        .1
        .replace("name = \"张三\"", "name = \"张三丰\"");
    std::fs::write(&path, text).unwrap();
    let spec = format!("mine={}", path.display());
    let mut vc = VirtualCard::start(lease.port, &["--card", &spec]);
    assert_eq!(vc.cmd("insert mine"), "ok inserted mine");
    wait_atr(
        &lease.reader,
        Some("3B:86:80:31:FE:45:53:53:43:41:52:44:98"),
    );
    let out = apdus(&lease.reader, &[SELECT, "00B2093000"]);
    // 张三丰 in GBK.
    assert!(out.contains("09 1E D5 C5 C8 FD B7 E1"), "{out}");
    vc.quit();

    // A broken profile is refused with a message naming the field.
    std::fs::write(&path, "label = 1").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_virtual-card"))
        .args(["--port", &lease.port.to_string(), "--card", &spec])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not valid TOML"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn issued_and_broken_cards_come_with_their_trust_store() {
    let lease = lease();
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.txt");
    let trust_arg = trust.to_str().unwrap();
    let mut vc = VirtualCard::start(
        lease.port,
        &["--broken", "pin-blocked", "--trust-out", trust_arg],
    );
    assert_eq!(vc.cmd("insert zhangsan"), "ok inserted zhangsan");
    wait_atr(
        &lease.reader,
        Some("3B:86:80:31:FE:45:53:53:43:41:52:44:98"),
    );
    // The counter query answers 6983: blocked.
    let out = apdus(&lease.reader, &[SELECT, "00200000"]);
    assert!(out.contains("SW1=0X69, SW2=0X83"), "{out}");
    assert!(
        vc.cmd("status").ends_with("pin_tries_left=0"),
        "the status line names the blocked PIN"
    );
    // The trust store names the social-security CA and the PBOC CA, one key per line.
    let text = std::fs::read_to_string(&trust).unwrap();
    let rids: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rids, ["D156000005", "A000000333"], "{text}");
    assert!(card_core::ssse::auth::parse_trust_store(&text).is_ok());
    // Only embedded fixtures can be issued.
    assert!(
        vc.cmd("insert nobody")
            .starts_with("error issuing card nobody")
    );
    vc.quit();
    wait_atr(&lease.reader, None);

    // Issued without a defect: the PKI application answers with its certificates.
    let vc = VirtualCard::start(lease.port, &["--issued", "--insert", "lisi"]);
    wait_atr(
        &lease.reader,
        Some("3B:86:80:31:FE:45:53:53:43:41:52:44:98"),
    );
    let out = apdus(
        &lease.reader,
        &["00A404000C53532E434552542E4144463100", "00B0980001"],
    );
    // EF 0018 is personalised (an unpersonalised one is empty: 6B00) and starts with the CA
    // index 8F.
    let (_, read) = out.rsplit_once("RECEIVED").unwrap();
    assert!(read.starts_with(" (SW1=0X90, SW2=0X00):\n8F"), "{out}");
    vc.quit();
    let o = Command::new(env!("CARGO_BIN_EXE_virtual-card"))
        .args(["--port", &lease.port.to_string(), "--broken", "bent"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("is not one of bad-cert, pin-blocked, bad-log, bad-icc-key"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
