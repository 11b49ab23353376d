//! `cardctl`'s diagnostic subcommands end to end: the binary against the software card in
//! pcscd (vpcd), each subcommand checked on its output: `atr` naming the card from a
//! smartcard_list.txt, `identify`, `dump`, `apdu --console`, `trace`, `report` (JSON and
//! HTML), and the HTML report opened in headless Chromium and screenshotted.
//!
//! The Chromium test needs Debian's `chromium` (`scripts/gui-env.sh install`, which
//! `scripts/test.sh` runs). With `SSCARD_SCREENSHOTS=DIR` it saves `cardctl-report.png` there
//! (that is how docs/images/cardctl-report.png is made).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{cardctl, env, slot_with, stderr, stdout, wait_present};
use firmware_tests::{VirtualSlot, shared_fixture};

/// Personal data of the fixture 张三 that must never appear unless revealed.
const ZHANGSAN_SECRETS: [&str; 6] = [
    "张三",
    "110105198703153011",
    "A00000011",
    "6230580000000000013",
    "ZHANG/SAN",
    "19870315",
];

fn assert_no_secrets(text: &str) {
    for secret in ZHANGSAN_SECRETS {
        assert!(!text.contains(secret), "{secret:?} in:\n{text}");
    }
}

/// The virtual card's ATR as pcsc-tools writes it, and a list entry for it with wildcards.
fn atr_list_entry() -> (String, String) {
    let atr = firmware_tests::profile::default_atr();
    let text = terminal_app::techtools::atr_names::atr_text(&atr);
    let mut bytes: Vec<String> = text.split(' ').map(str::to_string).collect();
    let n = bytes.len();
    bytes[1] = "..".into();
    bytes[n - 2] = "[0-9A-F].".into();
    (text, bytes.join(" "))
}

fn write_list(dir: &Path) -> PathBuf {
    let (_, pattern) = atr_list_entry();
    let path = dir.join("smartcard_list.txt");
    std::fs::write(
        &path,
        format!(
            "# test list\n\n3B 02 14 50\n\tSchlumberger Multiflex 3k\n\n{pattern}\n\
             \tSSCard software social-security card (test list)\n\tsecond description line\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn atr_names_the_card_from_a_list() {
    let (lease, _slot) = slot_with("zhangsan");
    let dir = tempfile::tempdir().unwrap();
    let list = write_list(dir.path());
    let (text_atr, pattern) = atr_list_entry();
    let o = cardctl(
        &[
            "atr",
            "--reader",
            &lease.reader,
            "--list",
            list.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("protocols offered: T=0, T=1"), "{text}");
    assert!(
        text.contains(&format!("name (from {}):\n", list.display())),
        "{text}"
    );
    // The pattern is shown because it is not the ATR itself, then its descriptions.
    assert!(
        text.contains(&format!(
            "  {pattern}\n    SSCard software social-security card (test list)\n    second description line\n"
        )),
        "{text}"
    );
    assert!(!text.contains("Multiflex"), "{text}");
    assert_ne!(pattern, text_atr);

    // A list without it.
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "3B 02 14 50\n\tSchlumberger Multiflex 3k\n").unwrap();
    let o = cardctl(
        &[
            "atr",
            "--reader",
            &lease.reader,
            "--list",
            other.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "name:   not in smartcard_list.txt ({})\n",
            other.display()
        )),
        "{}",
        stdout(&o)
    );
    // A list that does not exist is an error that names it.
    let o = cardctl(
        &[
            "atr",
            "--reader",
            &lease.reader,
            "--list",
            "/nonexistent/list.txt",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("reading /nonexistent/list.txt"),
        "{}",
        stderr(&o)
    );
    // pcsc-tools' own list, when installed: the software card is not in it.
    if Path::new("/usr/share/pcsc/smartcard_list.txt").is_file() {
        let o = cardctl(&["atr", "--reader", &lease.reader], None);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("name:   not in smartcard_list.txt ("),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn identify_lists_ssse_pki_and_pboc_with_versions_and_ec() {
    let (lease, _slot) = slot_with("zhangsan");
    let o = cardctl(&["identify", "--reader", &lease.reader], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains(
            "SSSE  social-security application (社会保障应用)  AID 7378312E73682EC9E7BBE1B1A3D5CF  version 3.00\n"
        ),
        "{text}"
    );
    assert!(text.contains("      card number: A*******1\n"), "{text}");
    assert!(text.contains("      PIN tries left: 3\n"), "{text}");
    assert!(text.contains("PKI   PKI application"), "{text}");
    assert!(
        text.contains("      certificates (EF0018): not personalised\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "PBOC  UnionPay debit  AID A000000333010101  version 0030 (PBOC 3.0)\n      version from: record 1 of SFI 2\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("      application label: PBOC DEBIT\n"),
        "{text}"
    );
    assert!(text.contains("      PAN: 623058*********0013\n"), "{text}");
    assert!(
        text.contains("      electronic cash: yes, balance hidden (--reveal shows it)\n"),
        "{text}"
    );
    assert!(text.contains("        balance limit: 1000.00\n"), "{text}");
    assert!(
        text.contains("DIR   1PAY.SYS.DDF01\n      A000000333010101  PBOC DEBIT\n"),
        "{text}"
    );
    assert!(text.contains("DIR   2PAY.SYS.DDF01\n"), "{text}");
    assert_no_secrets(&text);

    let o = cardctl(
        &["identify", "--reader", &lease.reader, "--json", "--reveal"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let apps = v["identification"]["applications"].as_array().unwrap();
    let kinds: Vec<&str> = apps.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ssse", "pki", "pboc"]);
    assert_eq!(apps[2]["ec"]["balance"], "500.00");
    assert_eq!(apps[0]["version"], "3.00");

    // A card without a payment application.
    let (lease, _slot) = slot_with("expired");
    let o = cardctl(&["identify", "--reader", &lease.reader], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("SSSE  social-security"), "{text}");
    assert!(!text.contains("PBOC  "), "{text}");
    assert!(text.contains("      expiry date: 2020-02-29\n"), "{text}");
}

#[test]
fn dump_shows_named_tags_and_masks_personal_data() {
    let (lease, _slot) = slot_with("zhangsan");
    let o = cardctl(&["dump", "--reader", &lease.reader], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "== SSSE: SELECT 社会保障应用\n",
        "   6F FCI Template (文件控制信息模板) [25]\n",
        "      84 Dedicated File Name (专用文件名称) [15]: 7378312E73682EC9E7BBE1B1A3D5CF\n",
        "   03 Specification Version (规范版本) [4]: \"3.00\"\n",
        "   07 Card Number (卡号) [9]: A*******1  (masked)\n",
        "   08 Social Security Number (社会保障号码) [18]: 110***********3011  (masked)\n",
        "   09 Name (姓名) [30]: 张*  (masked)\n",
        "   0D Birth Date (出生日期) [4]: 1987-**-**  (masked)\n",
        "== UnionPay debit A000000333010101: GET PROCESSING OPTIONS\n",
        "(AFL)\n",
        "9F08 Application Version Number (card) (应用版本号（卡片）) [2]: 0030\n",
        "5A Application PAN (应用主账号) [10]: 623058*********0013  (masked)\n",
        "5F20 Cardholder Name (持卡人姓名) [9]: Z*******N  (masked)\n",
        "9F38 PDOL",
        "9F79 EC Balance (电子现金余额) [6]: [6 bytes masked]  (masked)\n",
        "(personal data masked; --reveal shows it)\n",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert_no_secrets(&text);

    let o = cardctl(&["dump", "--reader", &lease.reader, "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = stdout(&o);
    assert_no_secrets(&json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let sections = v["dump"]["sections"].as_array().unwrap();
    let ef06 = sections
        .iter()
        .find(|s| s["title"] == "SSSE: EF06 cardholder, all records")
        .unwrap();
    let name = ef06["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["tag"] == "09")
        .unwrap();
    assert_eq!(name["name"], "Name");
    assert_eq!(name["value"], "张*");
    assert_eq!(name["masked"], true);
    assert_eq!(v["dump"]["revealed"], false);

    let o = cardctl(
        &["dump", "--reader", &lease.reader, "--reveal", "--no-gpo"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("   09 Name (姓名) [30]: \"张三\"\n"),
        "{text}"
    );
    assert!(!text.contains("GET PROCESSING OPTIONS"), "{text}");
    assert!(text.contains(": record 1 of SFI 2\n"), "{text}");
}

#[test]
fn apdu_console_with_history_recall_and_redacted_pin() {
    let (lease, _slot) = slot_with("zhangsan");
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let history = dir.path().join("history");
    let script = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n\
                  00 20 00 00 03 12 34 56\n\
                  00B2072800\n\
                  !!\n\
                  !1\n\
                  history\n\
                  !2\n\
                  quit\n";
    let o = cardctl(
        &[
            "apdu",
            "--console",
            "--reader",
            &lease.reader,
            "--trace",
            trace.to_str().unwrap(),
            "--history",
            history.to_str().unwrap(),
        ],
        Some(script),
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
            "< 6F19840F7378312E73682EC9E7BBE1B1A3D5CFA506500453535345 9000 (normal processing)",
            "> 0020000003 [3 bytes redacted]",
            "< 9000 (normal processing)",
            "> 00B2072800",
            "< 0709413030303030303131 9000 (normal processing)",
        ],
        "{text}"
    );
    // !! sent the READ RECORD again, !1 the SELECT.
    assert_eq!(lines[6], "> 00B2072800", "{text}");
    assert_eq!(
        lines[8], "> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
        "{text}"
    );
    assert_eq!(
        lines[10..14],
        [
            "   1  00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
            "   2  0020000003 [3 bytes redacted]",
            "   3  00B2072800",
            "   4  00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
        ],
        "{text}"
    );
    // !2 repeats the VERIFY from memory: the card accepts it again, the echo stays redacted.
    assert_eq!(lines[14], "> 0020000003 [3 bytes redacted]", "{text}");
    assert_eq!(lines[15], "< 9000 (normal processing)", "{text}");
    assert!(!text.contains("123456"), "{text}");
    let trace_text = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(trace_text.lines().count(), 6, "{trace_text}");
    for line in trace_text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(!v["apdu"].as_str().unwrap().contains("123456"), "{line}");
    }
    assert_eq!(
        trace_text
            .matches("\"apdu\":\"0020000003\",\"redacted\":3")
            .count(),
        2,
        "{trace_text}"
    );
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(!saved.contains("0020"), "{saved}");
    assert_eq!(saved.lines().count(), 3, "{saved}");

    // The history file brings the commands back in the next console.
    let o = cardctl(
        &[
            "apdu",
            "--console",
            "--reader",
            &lease.reader,
            "--history",
            history.to_str().unwrap(),
        ],
        Some("history\n!3\n!2\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("   1  00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n   2  00B2072800\n"),
        "{text}"
    );
    assert!(
        text.contains("> 00B2072800\n< 0709413030303030303131 9000 (normal processing)\n"),
        "{text}"
    );

    // A line that is not understood is reported and the exit code says so.
    let o = cardctl(
        &["apdu", "--console", "--reader", &lease.reader],
        Some("00A4zz\n!7\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("error: not hex and not a console command"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("error: no history entry \"!7\""),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("2 console line(s) failed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn one_shot_apdu_redacts_a_pin() {
    let (lease, _slot) = slot_with("zhangsan");
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let o = cardctl(
        &[
            "apdu",
            "--reader",
            &lease.reader,
            "--trace",
            trace.to_str().unwrap(),
            "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
            "0020000003123456",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("> 0020000003 [3 bytes redacted]\n< 9000 (normal processing)\n"),
        "{}",
        stdout(&o)
    );
    let trace_text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace_text.contains("\"apdu\":\"0020000003\",\"redacted\":3"),
        "{trace_text}"
    );
    for line in trace_text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(!v["apdu"].as_str().unwrap().contains("123456"), "{line}");
    }
}

#[test]
fn trace_subcommand_records_redacted_json_lines() {
    let (lease, _slot) = slot_with("zhangsan");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.jsonl");
    // To a file: the PIN verification, then a read.
    let o = cardctl(
        &[
            "trace",
            "--out",
            file.to_str().unwrap(),
            "--",
            "verify-pin",
            "--reader",
            &lease.reader,
            "--pin-stdin",
        ],
        Some("123456\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "PIN verified\n");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        lines[0]["apdu"],
        "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00"
    );
    assert_eq!(lines[0]["reader"], lease.reader.as_str());
    assert_eq!(lines[1]["apdu"], "0020000003");
    assert_eq!(lines[1]["redacted"], 3);
    assert_eq!(lines[1]["sw"], "9000");
    for l in &lines {
        assert!(!l["apdu"].as_str().unwrap().contains("123456"), "{l}");
    }

    // To standard output: the trace there, the subcommand's own output on standard error.
    let o = cardctl(
        &["trace", "--", "identify", "--reader", &lease.reader],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("SSSE  social-security application"),
        "{}",
        stderr(&o)
    );
    let out = stdout(&o);
    let mut seqs = Vec::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{e}: {line:?} is not a JSON line"));
        seqs.push(v["seq"].as_u64().unwrap());
        assert!(v["sw"].is_string(), "{line}");
    }
    assert!(seqs.len() > 10, "{out}");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(out.contains("\"apdu\":\"80CA9F7900\""), "{out}");

    // Usage errors.
    let o = cardctl(&["trace", "--", "trace", "--", "readers"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = cardctl(&["trace", "--", "no-such-command"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Open and close tags balance (void elements aside), and the page is one html element.
fn assert_well_formed(html: &str) {
    const VOID: [&str; 6] = ["meta", "br", "hr", "img", "link", "input"];
    assert!(html.starts_with("<!DOCTYPE html>\n<html"), "{html}");
    assert!(html.trim_end().ends_with("</html>"), "{html}");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after
            .find('>')
            .unwrap_or_else(|| panic!("unclosed tag in {after}"));
        let inside = &after[..end];
        rest = &after[end + 1..];
        if inside.starts_with('!') {
            continue;
        }
        if let Some(name) = inside.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> without opening"));
            assert_eq!(open, name, "</{name}> closes <{open}>");
        } else {
            let name: String = inside
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(!name.is_empty(), "bad tag <{inside}>");
            if !VOID.contains(&name.as_str()) {
                stack.push(name);
            }
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

fn make_report(card: &str, dir: &Path) -> (serde_json::Value, String, PathBuf) {
    make_report_of(card, shared_fixture(card).unwrap(), None, dir)
}

/// `cardctl report` of `card` in a fresh slot, with the trust anchors `trust` if given.
fn make_report_of(
    name: &str,
    card: firmware_tests::SharedCard,
    trust: Option<&str>,
    dir: &Path,
) -> (serde_json::Value, String, PathBuf) {
    let lease = env().lease().unwrap();
    wait_present(&lease.reader, false);
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(card).unwrap();
    wait_present(&lease.reader, true);
    let list = write_list(dir);
    let json = dir.join(format!("{name}.json"));
    let html = dir.join(format!("{name}.html"));
    let mut args = vec![
        "report".to_string(),
        "--reader".into(),
        lease.reader.clone(),
        "--json".into(),
        json.display().to_string(),
        "--html".into(),
        html.display().to_string(),
        "--list".into(),
        list.display().to_string(),
    ];
    if let Some(text) = trust {
        let file = dir.join(format!("{name}-trust.txt"));
        std::fs::write(&file, text).unwrap();
        args.extend(["--trust".to_string(), file.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = cardctl(&args, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("JSON report: {}\n", json.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("HTML report: {}\n", html.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("reader {}, ATR ", lease.reader)),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (v, std::fs::read_to_string(&html).unwrap(), html)
}

#[test]
fn report_json_and_html_have_every_section_and_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let (v, html, _) = make_report("zhangsan", dir.path());
    assert_eq!(v["tool"], "cardctl");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["generated"].as_str().unwrap().ends_with(" UTC"), "{v}");
    assert!(
        v["reader"].as_str().unwrap().starts_with("SSCard Virtual"),
        "{v}"
    );
    let (atr_text, _) = atr_list_entry();
    assert_eq!(v["atr"]["hex"], atr_text.as_str());
    assert!(v["atr"]["decoded"].as_array().unwrap().len() > 3, "{v}");
    assert_eq!(
        v["atr"]["names"][0]["descriptions"][0],
        "SSCard software social-security card (test list)"
    );
    let apps = v["identification"]["applications"].as_array().unwrap();
    let kinds: Vec<&str> = apps.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ssse", "pki", "pboc"]);
    assert_eq!(apps[2]["ec"]["balance"], serde_json::Value::Null);
    let checks = v["checks"].as_array().unwrap();
    let outcome = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id} in {checks:?}"))["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The report's own ATR checks, then the conformance suite of `cardctl check`.
    assert_eq!(checks[0]["id"], "atr.valid");
    assert_eq!(outcome("atr.valid"), "pass");
    assert_eq!(outcome("atr.known"), "pass");
    assert_eq!(outcome("ssse.select"), "pass");
    assert_eq!(outcome("ssse.card_dates"), "pass");
    assert_eq!(outcome("ssse.pin_tries"), "pass");
    assert_eq!(outcome("iso.wrong_cla"), "pass");
    assert_eq!(outcome("pboc.select"), "pass");
    assert_eq!(outcome("pboc.ec"), "pass");
    // No trust anchors given: no certificate verified, no GET PROCESSING OPTIONS.
    assert_eq!(outcome("pki.certificates"), "skip");
    assert_eq!(outcome("pboc.icc_certificate"), "skip");
    assert!(
        v["checks_note"]
            .as_str()
            .unwrap()
            .contains("without trust anchors"),
        "{v}"
    );
    assert_no_secrets(&v.to_string());

    assert_well_formed(&html);
    assert_no_secrets(&html);
    for want in [
        "<title>Card diagnostics report",
        "SSCard software social-security card (test list)",
        "<code>A000000333010101</code>",
        "0030 (PBOC 3.0)",
        "card number: A*******1",
        "PAN: 623058*********0013",
        "<tr class=\"pass\"><td><code>ssse.card_dates</code>",
        "<tr class=\"skip\"><td><code>pki.certificates</code>",
        "Personal data is masked.",
    ] {
        assert!(html.contains(want), "{want:?} not in the HTML");
    }
    // Self-contained: no script, no external resource.
    for banned in ["<script", "http://", "https://", "src=", "<link", "url("] {
        assert!(!html.contains(banned), "{banned:?} in the HTML");
    }

    // An expired card fails its expiry check, in red.
    let (v, html, _) = make_report("expired", dir.path());
    let checks = v["checks"].as_array().unwrap();
    let dates = checks
        .iter()
        .find(|c| c["id"] == "ssse.card_dates")
        .unwrap();
    assert_eq!(dates["outcome"], "fail");
    assert!(
        dates["detail"]
            .as_str()
            .unwrap()
            .starts_with("expired 2020-02-29"),
        "{dates}"
    );
    assert!(html.contains("<tr class=\"fail\"><td><code>ssse.card_dates</code>"));
    assert_well_formed(&html);

    // An issued card with the trust anchors: its certificates verify; a card whose
    // certificate was tampered with fails that check, in red.
    let issued = firmware_tests::testcards::issue("zhangsan").unwrap();
    let (v, _, _) = make_report_of(
        "issued",
        issued.shared(),
        Some(&issued.trust_text),
        dir.path(),
    );
    let checks = v["checks"].as_array().unwrap();
    let verdict = |id: &str| checks.iter().find(|c| c["id"] == id).unwrap()["outcome"].clone();
    assert_eq!(verdict("pki.certificates"), "pass", "{v}");
    assert_eq!(verdict("pki.challenge"), "pass", "{v}");
    assert_eq!(verdict("pboc.icc_certificate"), "pass", "{v}");
    assert!(
        v["checks_note"]
            .as_str()
            .unwrap()
            .contains("with the trust anchors given")
    );
    let broken = firmware_tests::testcards::broken(
        "zhangsan",
        firmware_tests::testcards::Defect::BadCertificate,
    )
    .unwrap();
    let (v, html, _) = make_report_of(
        "broken",
        broken.shared(),
        Some(&broken.trust_text),
        dir.path(),
    );
    let checks = v["checks"].as_array().unwrap();
    let certs = checks
        .iter()
        .find(|c| c["id"] == "pki.certificates")
        .unwrap();
    assert_eq!(certs["outcome"], "fail", "{v}");
    assert!(html.contains("<tr class=\"fail\"><td><code>pki.certificates</code>"));
    assert_no_secrets(&html);

    // Without files: the JSON on standard output.
    let (lease, _slot) = slot_with("lisi");
    let o = cardctl(&["report", "--reader", &lease.reader], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["identification"]["applications"][0]["kind"], "ssse");
}

#[test]
fn report_html_renders_in_headless_chromium() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("chromium").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "chromium is not installed: run scripts/gui-env.sh install (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (_, _, html) = make_report("zhangsan", dir.path());
    let png = dir.path().join("report.png");
    let profile = dir.path().join("chromium-profile");
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,1600",
            &format!("file://{}", html.display()),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success() && png.is_file(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (1200, 1600));
    // Not blank: text and coloured table rows. Count dark (text) pixels and the check colours.
    let total = u64::from(img.width()) * u64::from(img.height());
    let dark = img
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c < 100))
        .count() as u64;
    let green = img.pixels().filter(|p| p.0 == [0xdf, 0xf3, 0xe4]).count();
    let amber = img.pixels().filter(|p| p.0 == [0xff, 0xf4, 0xd6]).count();
    let mean: f64 = img
        .pixels()
        .map(|p| f64::from(p.0[0]) + f64::from(p.0[1]) + f64::from(p.0[2]))
        .sum::<f64>()
        / (3.0 * total as f64);
    let variance: f64 = img
        .pixels()
        .map(|p| {
            let v = (f64::from(p.0[0]) + f64::from(p.0[1]) + f64::from(p.0[2])) / 3.0 - mean;
            v * v
        })
        .sum::<f64>()
        / total as f64;
    assert!(
        dark * 200 > total,
        "almost no text: {dark} dark pixels of {total}"
    );
    assert!(variance > 100.0, "a flat image: variance {variance}");
    assert!(green > 1000, "no pass rows: {green} green pixels");
    assert!(amber > 100, "no warn rows: {amber} amber pixels");
    if let Some(shots) = std::env::var_os("SSCARD_SCREENSHOTS") {
        let shots = PathBuf::from(shots);
        std::fs::create_dir_all(&shots).unwrap();
        std::fs::copy(&png, shots.join("cardctl-report.png")).unwrap();
    }
}
