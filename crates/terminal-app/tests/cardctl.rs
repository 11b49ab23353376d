//! `cardctl` end to end: the binary against the software card in pcscd (vpcd), each
//! subcommand checked on its output. Also the independent client: `opensc-tool` reads the same
//! bytes from the virtual card.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{cardctl, env, slot_with, stderr, stdout, wait_present};
use firmware_tests::testenv::SlotLease;
use firmware_tests::{VirtualSlot, shared_fixture};
use reader_driver::PcscContext;

#[test]
fn readers_lists_the_card_and_its_atr() {
    let (lease, _slot) = slot_with("zhangsan");
    let o = cardctl(&["readers"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with(&lease.reader))
        .unwrap_or_else(|| panic!("{text}"));
    let atr = card_core::apdu::HexFmt(&firmware_tests::profile::default_atr()).to_string();
    assert!(
        line.contains("card present") && line.contains(&atr),
        "{line}"
    );
}

#[test]
fn atr_is_decoded() {
    let (lease, _slot) = slot_with("wangfang-t0");
    let o = cardctl(&["atr", "--reader", &lease.reader], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("ATR:    3B021450"), "{text}");
    assert!(text.contains("protocols offered: T=0"), "{text}");
    assert!(text.contains("historical bytes: 1450"), "{text}");
}

#[test]
fn read_masks_unless_revealed() {
    let (lease, _slot) = slot_with("zhangsan");
    let o = cardctl(&["read", "--reader", &lease.reader], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("name:            张*\n"), "{text}");
    assert!(text.contains("110***********3011"), "{text}");
    assert!(text.contains("A*******1"), "{text}");
    assert!(
        !text.contains("张三")
            && !text.contains("110105198703153011")
            && !text.contains("A00000011"),
        "{text}"
    );
    assert!(text.contains("expiry date:     2034-01-14\n"), "{text}");

    let o = cardctl(
        &[
            "read",
            "--reader",
            &lease.reader,
            "--reveal",
            "--json",
            "--by-tag",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["holder"]["name"], "张三");
    assert_eq!(v["holder"]["ssn"], "110105198703153011");
    assert_eq!(v["holder"]["birth_date"], "1987-03-15");
    assert_eq!(v["card"]["card_number"], "A00000011");
    assert_eq!(v["card"]["expired"], false);
    assert_eq!(v["apdus"], 1 + 7 + 6 + 1);
}

#[test]
fn expired_card_is_flagged() {
    let (lease, _slot) = slot_with("expired");
    let o = cardctl(&["read", "--reader", &lease.reader], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("expiry date:     2020-02-29  EXPIRED"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn verify_pin_wrong_twice_then_right_then_blocked() {
    let (lease, _slot) = slot_with("lisi");
    let r = lease.reader.as_str();
    for left in [2, 1] {
        let o = cardctl(
            &["verify-pin", "--reader", r, "--pin-stdin"],
            Some("000000\n"),
        );
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("wrong PIN, {left} tries left")),
            "{}",
            stderr(&o)
        );
    }
    let o = cardctl(
        &["verify-pin", "--reader", r, "--pin-stdin"],
        Some("654321\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "PIN verified\n");
    // cardctl leaves the card as it is (no reset on disconnect), so the verification holds
    // for the next command, as it would for another application using the card.
    let o = cardctl(&["pin-status", "--reader", r], None);
    assert_eq!(stdout(&o), "PIN already verified\n");
    for _ in 0..3 {
        cardctl(
            &["verify-pin", "--reader", r, "--pin-stdin"],
            Some("000000\n"),
        );
    }
    let o = cardctl(
        &["verify-pin", "--reader", r, "--pin-stdin"],
        Some("654321\n"),
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("the PIN is blocked"), "{}", stderr(&o));
    assert_eq!(
        stdout(&cardctl(&["pin-status", "--reader", r], None)),
        "PIN blocked\n"
    );
    // A PIN that is not a PIN never reaches the card.
    let o = cardctl(
        &["verify-pin", "--reader", r, "--pin-stdin"],
        Some("12ab\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("only the digits"), "{}", stderr(&o));
}

#[test]
fn apdu_and_trace() {
    let (lease, _slot) = slot_with("zhangsan");
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let t = trace.to_str().unwrap();
    let o = cardctl(
        &[
            "apdu",
            "--reader",
            &lease.reader,
            "--trace",
            t,
            "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
            "00 B2 07 28 00",
            "00B2012F00",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        "< 6F19840F7378312E73682EC9E7BBE1B1A3D5CFA506500453535345 9000 (normal processing)"
    );
    assert_eq!(
        lines[3],
        "< 0709413030303030303131 9000 (normal processing)"
    );
    assert_eq!(lines[5], "< 6A86 (incorrect parameters P1-P2)");
    // The PIN never reaches the trace.
    let o = cardctl(
        &[
            "verify-pin",
            "--reader",
            &lease.reader,
            "--trace",
            t,
            "--pin-stdin",
        ],
        Some("123456\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let trace_text = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(trace_text.lines().count(), 5, "{trace_text}");
    assert!(!trace_text.contains("123456"), "{trace_text}");
    assert!(
        trace_text.contains("\"apdu\":\"0020000003\",\"redacted\":3"),
        "{trace_text}"
    );
    // Bad input is a clear error.
    let o = cardctl(&["apdu", "--reader", &lease.reader, "00A4zz"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not hex"), "{}", stderr(&o));
    let o = cardctl(&["apdu", "--reader", &lease.reader, "00A4"], None);
    assert!(
        stderr(&o).contains("is not a command APDU"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn raw_apdu_shows_61xx() {
    let (lease, _slot) = slot_with("wangfang-t0");
    let o = cardctl(
        &[
            "apdu",
            "--raw",
            "--reader",
            &lease.reader,
            "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("< 611B (response bytes still available: 27)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn watch_reports_insert_and_remove() {
    let lease = env().lease().unwrap();
    wait_present(&lease.reader, false);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardctl"))
        .args(["watch", "--timeout", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(shared_fixture("lisi").unwrap()).unwrap();
    wait_present(&lease.reader, true);
    slot.remove();
    wait_present(&lease.reader, false);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let added = text
        .find(&format!("reader added    {}", lease.reader))
        .unwrap_or_else(|| panic!("{text}"));
    let inserted = text
        .find(&format!("card inserted   {}", lease.reader))
        .unwrap_or_else(|| panic!("{text}"));
    let removed = text
        .find(&format!("card removed    {}", lease.reader))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(added < inserted && inserted < removed, "{text}");
}

#[test]
fn opensc_tool_reads_the_virtual_card() {
    // An independent PC/SC client: OpenSC's opensc-tool sends raw APDUs through pcscd.
    let (lease, _slot) = slot_with("zhangsan");
    let o = Command::new("opensc-tool")
        .args([
            "-r",
            &lease.reader,
            "-c",
            "default",
            "-s",
            "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
            "-s",
            "00B2093000",
            "-s",
            "00B2072800",
        ])
        .output()
        .expect("opensc-tool is installed by scripts/pcsc-env.sh install");
    let text = String::from_utf8_lossy(&o.stdout).to_uppercase();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // SELECT answers the FCI with the AID; READ RECORD by tag 09 in SFI 6 answers the name
    // record (张三 in GBK, padded to 30 bytes); tag 07 in SFI 5 the card number.
    assert!(text.contains("RECEIVED (SW1=0X90, SW2=0X00)"), "{text}");
    // (opensc-tool prints 16 bytes per line.)
    assert!(
        text.contains("6F 19 84 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1"),
        "{text}"
    );
    assert!(text.contains("A3 D5 CF A5 06 50 04 53 53 53 45"), "{text}");
    assert!(text.contains("09 1E D5 C5 C8 FD 00 00"), "{text}");
    assert!(text.contains("07 09 41 30 30 30 30 30 30 31 31"), "{text}");
}

#[test]
fn no_pcscd_says_how_to_start_it() {
    let env = env();
    let lease = env.exclusive().unwrap();
    lease.stop().unwrap();
    let o = cardctl(&["readers"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("pcscd) is not running") && err.contains("pcsc-env.sh start"),
        "{err}"
    );
    let o = cardctl(&["read"], None);
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
    lease.start().unwrap();
    assert!(PcscContext::new().is_ok());
}

/// A card personalised with an in-memory hsm-sim, and the trust-store text for its CA.
fn personalised(name: &str, genuine: bool) -> (firmware_tests::SharedCard, String) {
    use card_core::crypto::rsa::YearMonth;
    use firmware_tests::personalize::{self, CardInput};
    use hsm_sim::keys::{BlockKey, Secret};
    use hsm_sim::{Hsm, KeyType, Lmk, Scheme};
    let zmk_bytes = [0x5au8; 16];
    let hsm = std::sync::Arc::new(Hsm::in_memory(Lmk::new(&[1u8; 16]), 4).unwrap());
    hsm.form_key_from_components("ZMKPERSO", KeyType::Zmk, Scheme::Sm4, &[&zmk_bytes])
        .unwrap();
    let mut c = hsm_sim::HsmClient::new(hsm_sim::InProcess::new(hsm));
    let issuer = personalize::setup_issuer(
        &mut c,
        "CAROOT01",
        1,
        "ISSUER01",
        "62170000",
        YearMonth {
            year: 2035,
            month: 12,
        },
    )
    .unwrap();
    let mut image = firmware_tests::Profile::embedded(name)
        .unwrap()
        .build()
        .unwrap();
    let id = {
        let mut s = card_core::CardSession::new(firmware_tests::SoftCard::in_memory(image.clone()));
        card_core::ssse::read_identity(&mut s, card_core::ssse::ReadStrategy::AllRecords).unwrap()
    };
    let statics = card_core::ssse::auth::static_data(&id);
    let zmk = BlockKey::new(Scheme::Sm4, &Secret::new(zmk_bytes.to_vec())).unwrap();
    personalize::personalize_pki(
        &mut c,
        &mut image,
        &issuer,
        "ZMKPERSO",
        &zmk,
        &CardInput {
            label: "ICC00001",
            pan: "6217000010001234567",
            static_data: &statics,
            expiry: YearMonth {
                year: 2034,
                month: 12,
            },
            serial: [0, 0, 1],
        },
    )
    .unwrap();
    if !genuine {
        // A clone: the right certificates, another private key.
        image.keys.set_sm2_private(
            &card_core::crypto::sm2::Sm2PrivateKey::generate_os()
                .unwrap()
                .expose_bytes()[..],
        );
    }
    let card = std::sync::Arc::new(std::sync::Mutex::new(firmware_tests::SoftCard::in_memory(
        image,
    )));
    (card, format!("{}\n", personalize::trust_line(&issuer.ca)))
}

#[test]
fn authenticate_a_genuine_card_and_a_clone_through_pcscd() {
    let dir = tempfile::tempdir().unwrap();
    for (genuine, code) in [(true, 0), (false, 5)] {
        let lease = env().lease().unwrap();
        wait_present(&lease.reader, false);
        let (card, trust) = personalised("zhangsan", genuine);
        let trust_file = dir.path().join("trust.txt");
        std::fs::write(&trust_file, trust).unwrap();
        let mut slot = VirtualSlot::new(lease.port);
        slot.insert(card).unwrap();
        wait_present(&lease.reader, true);
        let o = cardctl(
            &[
                "authenticate",
                "--reader",
                &lease.reader,
                "--trust",
                trust_file.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(code), "{}{}", stdout(&o), stderr(&o));
        if genuine {
            let text = stdout(&o);
            assert!(text.starts_with("card genuine\n"), "{text}");
            assert!(text.contains("CA key:       D156000005/01"), "{text}");
            assert!(text.contains("张*") && !text.contains("张三"), "{text}");
        } else {
            assert!(
                stderr(&o).contains(
                    "card NOT genuine: the card's signature over the challenge is not valid"
                ),
                "{}",
                stderr(&o)
            );
        }
    }
    // A trust store without the CA: not genuine either.
    let lease = env().lease().unwrap();
    wait_present(&lease.reader, false);
    let (card, _) = personalised("lisi", true);
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(card).unwrap();
    wait_present(&lease.reader, true);
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# no keys\n").unwrap();
    let o = cardctl(
        &[
            "authenticate",
            "--reader",
            &lease.reader,
            "--trust",
            empty.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(5));
    assert!(
        stderr(&o).contains("certificate rejected"),
        "{}",
        stderr(&o)
    );
}

/// A leased slot with `card` inserted and seen by pcscd.
fn slot_with_card(card: firmware_tests::SharedCard) -> (SlotLease, VirtualSlot) {
    let lease = env().lease().unwrap();
    wait_present(&lease.reader, false);
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(card).unwrap();
    wait_present(&lease.reader, true);
    (lease, slot)
}

/// `cardctl check` on an issued card (firmware_tests::testcards) with its trust store.
fn check_card(card: &firmware_tests::testcards::IssuedCard, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.txt");
    std::fs::write(&trust, &card.trust_text).unwrap();
    let (lease, _slot) = slot_with_card(card.shared());
    let mut args = vec![
        "check",
        "--reader",
        &lease.reader,
        "--trust",
        trust.to_str().unwrap(),
        "--date",
        "2026-03-15",
    ];
    args.extend_from_slice(extra);
    cardctl(&args, None)
}

#[test]
fn check_passes_an_issued_card_one_line_per_check() {
    let card = firmware_tests::testcards::issue("zhangsan").unwrap();
    let o = check_card(&card, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("reader: SSCard Virtual"), "{text}");
    assert_eq!(lines[1], "date:   2026-03-15");
    let checks = &lines[2..lines.len() - 1];
    assert_eq!(checks.len(), 24, "{text}");
    for line in checks {
        assert!(line.starts_with("PASS  "), "{line}");
    }
    for line in [
        "PASS  iso.wrong_cla            SELECT with CLA 20: 6E00 (class not supported)",
        "PASS  ssse.pin_tries           3 PIN tries left",
        "PASS  pboc.log                 3 records, ATC 0003 down to 0001, newest first, none above \
         the card's ATC 0003; dates and amounts valid",
    ] {
        assert!(checks.contains(&line), "{line}\n{text}");
    }
    assert!(
        checks
            .iter()
            .any(|l| l.starts_with("PASS  pki.certificates         the chain verifies")),
        "{text}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &"24 passed, 0 warnings, 0 failed, 0 skipped"
    );
    // Personal data stays masked; the balance is shown only with --reveal.
    for secret in [
        "张三",
        "110105198703153011",
        "A00000011",
        "6230580000000000013",
        "459.50",
    ] {
        assert!(!text.contains(secret), "{secret}: {text}");
    }

    // JSON, with the balance revealed and without GET PROCESSING OPTIONS.
    let o = check_card(&card, &["--json", "--reveal", "--no-gpo"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["date"], "2026-03-15");
    assert_eq!(v["summary"]["fail"], 0);
    assert_eq!(v["summary"]["skipped"], 2);
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 24);
    let by_id = |id: &str| checks.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(by_id("pboc.icc_certificate")["verdict"], "skip");
    assert_eq!(by_id("pboc.dda")["verdict"], "skip");
    assert!(
        by_id("pboc.ec")["reason"]
            .as_str()
            .unwrap()
            .starts_with("the balance 459.50 is within the balance limit 1000.00"),
        "{v}"
    );
}

#[test]
fn check_verifies_an_rsa_card_from_the_rsa_line_of_the_trust_file() {
    // 王五's payment application is RSA (the international profile): its CA key is an RSA
    // line in the trust file, and the certificates and DDA verify with it.
    let card = firmware_tests::testcards::issue("wangwu-rsa").unwrap();
    assert!(
        card.trust_text
            .lines()
            .any(|l| l.starts_with("A000000333 ") && l.contains(" RSA ")),
        "{}",
        card.trust_text
    );
    let o = check_card(&card, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    for id in ["pboc.issuer_certificate", "pboc.icc_certificate"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS  ") && l.contains(id)),
            "{id}\n{text}"
        );
    }
    assert!(
        text.contains(
            "PASS  pboc.dda                 INTERNAL AUTHENTICATE over a fresh unpredictable \
             number verifies with the ICC key (RSA)"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("24 passed, 0 warnings, 0 failed, 0 skipped\n"),
        "{text}"
    );
    // A broken RSA line is named by its line number.
    let mut bad = card.clone();
    bad.trust_text = card.trust_text.replace(" RSA 010001 ", " RSA 05 ");
    let o = check_card(&bad, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(": line 2: not an RSA CA key"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_fails_each_broken_card_with_its_reason() {
    use firmware_tests::testcards::Defect;
    for defect in Defect::ALL {
        let card = firmware_tests::testcards::broken("zhangsan", defect).unwrap();
        let o = check_card(&card, &[]);
        assert_eq!(o.status.code(), Some(1), "{defect:?}: {}", stdout(&o));
        let text = stdout(&o);
        let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
        let want = match defect {
            Defect::BadCertificate => {
                "FAIL  pki.certificates         card certificate rejected: format 14: the SM2 \
                 signature does not verify"
            }
            Defect::PinBlocked => {
                "FAIL  ssse.pin_tries           the PIN is blocked: no tries left"
            }
            Defect::InconsistentLog => {
                "FAIL  pboc.log                 records 2 and 3 have the same ATC 0002; the newest \
                 record's ATC 0004 is above the card's ATC 0003"
            }
            Defect::WrongIccKey => {
                "FAIL  pboc.dda                 the signature over the challenge does not verify \
                 with the ICC key (SM2): format 15: the SM2 signature does not verify"
            }
            _ => unreachable!(),
        };
        assert_eq!(fails, [want], "{defect:?}:\n{text}");
        // Without a certified card key the challenge is not checked.
        let summary = if defect == Defect::BadCertificate {
            "22 passed, 0 warnings, 1 failed, 1 skipped"
        } else {
            "23 passed, 0 warnings, 1 failed, 0 skipped"
        };
        assert_eq!(text.lines().last(), Some(summary), "{text}");
        assert_eq!(
            stderr(&o),
            format!(
                "cardctl: 1 of 24 checks failed: {}\n",
                defect.failing_check()
            )
        );
    }
}

#[test]
fn check_without_a_trust_store_skips_the_certificates_and_refuses_a_bad_date() {
    let card = firmware_tests::testcards::issue("zhangsan").unwrap();
    let (lease, _slot) = slot_with_card(card.shared());
    let o = cardctl(
        &["check", "--reader", &lease.reader, "--date", "2026-03-15"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let skipped: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("SKIP"))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        skipped,
        [
            "pki.certificates",
            "pki.challenge",
            "pboc.issuer_certificate",
            "pboc.icc_certificate",
            "pboc.dda"
        ],
        "{text}"
    );
    assert!(
        text.contains("no trust anchor for the social-security CA (RID D156000005) was given"),
        "{text}"
    );
    let o = cardctl(
        &["check", "--reader", &lease.reader, "--date", "2026-02-30"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("\"2026-02-30\" is not a date YYYY-MM-DD"),
        "{}",
        stderr(&o)
    );
}

/// hsm-sim on loopback holding `master` as the maintenance master `MNTMK001`, and another
/// master `MNTOTHER` the cards were not made from.
fn maintenance_hsm(master: &str) -> hsm_sim::server::BackgroundServer {
    use hsm_sim::{Hsm, KeyType, Lmk, Scheme};
    let hsm = Hsm::in_memory(
        Lmk::from_hex("0F1E2D3C4B5A69788796A5B4C3D2E1F0").unwrap(),
        4,
    )
    .unwrap();
    hsm.form_key_from_components(
        "MNTMK001",
        KeyType::MkMnt,
        Scheme::Sm4,
        &[&hex::decode(master).unwrap()],
    )
    .unwrap();
    hsm.form_key_from_components("MNTOTHER", KeyType::MkMnt, Scheme::Sm4, &[&[0x5a; 16]])
        .unwrap();
    hsm_sim::server::BackgroundServer::start(std::sync::Arc::new(hsm), "127.0.0.1:0", 1).unwrap()
}

#[test]
fn update_record_writes_the_name_with_the_hsms_key_and_only_with_it() {
    let (lease, _slot) = slot_with("zhangsan");
    let profile = firmware_tests::Profile::embedded("zhangsan").unwrap();
    let server = maintenance_hsm(profile.maintenance_master.as_deref().unwrap());
    let addr = server.addr().to_string();
    let r = lease.reader.as_str();
    let read_name = || {
        let o = cardctl(&["read", "--reader", r, "--reveal", "--json"], None);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["holder"]["name"].as_str().unwrap().to_string()
    };
    let update = |key: &str, name: &str| {
        let args = ["--reader", r, "--hsm", &addr, "--key", key, "--tag", "09"];
        let mut all = vec!["update-record"];
        all.extend(args);
        all.extend(["--gbk", name]);
        cardctl(&all, None)
    };
    assert_eq!(read_name(), "张三");

    // The wrong master: the card refuses the cryptogram, nothing is written.
    let o = update("MNTOTHER", "张叁");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("not changed") && err.contains("EXTERNAL AUTHENTICATE"),
        "{err}"
    );
    // A key the HSM does not have: the HSM says so.
    let o = update("NOSUCHKY", "张叁");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("maintenance key holder failed"), "{err}");
    assert_eq!(read_name(), "张三");

    // The right one (the default label): written, read back, and the name (padded to its 30
    // bytes) reads 张叁.
    let o = update("MNTMK001", "张叁");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(text, "EF06 record 09 written (30 bytes) and read back\n");
    assert_eq!(read_name(), "张叁");

    // No HSM listening: a clear error before the card is touched.
    drop(server);
    let o = update("MNTMK001", "张三");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("connecting to hsm-sim"), "{err}");
    assert_eq!(read_name(), "张叁");
}
