//! The conformance suite (`firmware_tests::conformance`) against the software card in-process:
//! an issued card passes every check; each broken card fails exactly the check its defect
//! breaks, with a reason that names the problem; the ISO/IEC 7816-4 checks one by one, on the
//! software card and on a card that answers wrongly; what the suite changes on the card (one
//! ATC with GET PROCESSING OPTIONS, nothing without); warnings for low PIN tries and close
//! expiries; a card that stops answering; the JSON form. The same suite through pcscd is in
//! reader-driver's tests/conformance_pcscd.rs and terminal-app's tests/cardctl.rs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use card_core::CardSession;
use card_core::channel::{CardChannel, TransportError};
use card_core::pboc::config::TerminalConfig;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::data::{Amount, Date as PbocDate, Time};
use card_core::pboc::online::Offline;
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{CaStore, Hooks, TransactionParams, run_contact};
use card_core::secret::Pin;
use card_core::ssse::Date;
use firmware_tests::SoftCard;
use firmware_tests::conformance::{self, Options, Report, Verdict};
use firmware_tests::testcards::{self, Defect, IssuedCard};

/// Every check, in the order the suite runs them.
const IDS: [&str; 24] = [
    "ssse.select",
    "iso.wrong_cla",
    "iso.unknown_ins",
    "iso.wrong_p1p2",
    "iso.wrong_length",
    "iso.wrong_le",
    "iso.get_response",
    "iso.pin_counter",
    "iso.offset_beyond_file",
    "ssse.files",
    "ssse.card_dates",
    "ssse.pin_tries",
    "pki.certificates",
    "pki.challenge",
    "pboc.select",
    "pboc.pin_tries",
    "pboc.atc",
    "pboc.ec",
    "pboc.log",
    "pboc.records",
    "pboc.dates",
    "pboc.issuer_certificate",
    "pboc.icc_certificate",
    "pboc.dda",
];

fn today() -> Date {
    Date::new(2026, 3, 15).unwrap()
}

fn options(card: &IssuedCard) -> Options {
    Options::new(today()).with_trust(card.trust.clone())
}

fn run_on<C: CardChannel>(card: C, opts: &Options) -> (Report, C) {
    let mut s = CardSession::new(card);
    let report = conformance::run(&mut s, opts);
    (report, s.into_channel())
}

fn run_issued(card: &IssuedCard, opts: &Options) -> (Report, SoftCard) {
    run_on(SoftCard::in_memory(card.image.clone()), opts)
}

fn fixture(name: &str) -> SoftCard {
    SoftCard::in_memory(
        firmware_tests::Profile::embedded(name)
            .unwrap()
            .build()
            .unwrap(),
    )
}

/// The verdict and reason of check `id`.
fn result<'r>(report: &'r Report, id: &str) -> (Verdict, &'r str) {
    let c = report
        .get(id)
        .unwrap_or_else(|| panic!("{id} did not run:\n{report}"));
    (c.verdict, c.reason.as_str())
}

fn failed(report: &Report) -> Vec<&str> {
    report.failures().map(|c| c.id).collect()
}

fn atc(card: &SoftCard) -> u16 {
    card.image().pboc.as_ref().unwrap().atc
}

#[test]
fn an_issued_card_passes_every_check() {
    for name in ["zhangsan", "wangwu-rsa"] {
        let card = testcards::issue(name).unwrap();
        let (report, _) = run_issued(&card, &options(&card));
        let ids: Vec<&str> = report.checks.iter().map(|c| c.id).collect();
        assert_eq!(ids, IDS, "{name}");
        assert_eq!(
            (report.summary.pass, report.summary.fail),
            (IDS.len(), 0),
            "{name}:\n{report}"
        );
        assert!(report.passed());
        assert!(report.apdus > 50, "{name}: {} APDUs", report.apdus);
        // The certificate checks really verified something.
        assert!(
            result(&report, "pki.certificates")
                .1
                .starts_with("the chain verifies"),
            "{report}"
        );
        assert!(
            result(&report, "pboc.icc_certificate")
                .1
                .starts_with("verifies over the static data"),
            "{report}"
        );
        assert_eq!(
            result(&report, "pboc.log").1,
            "3 records, ATC 0003 down to 0001, newest first, none above the card's ATC 0003; \
             dates and amounts valid"
        );
        let algorithm = if name == "wangwu-rsa" { "RSA" } else { "SM2" };
        assert_eq!(
            result(&report, "pboc.dda").1,
            format!(
                "INTERNAL AUTHENTICATE over a fresh unpredictable number verifies with the ICC \
                 key ({algorithm})"
            )
        );
    }
}

#[test]
fn each_broken_card_fails_exactly_the_check_its_defect_breaks() {
    for defect in Defect::ALL {
        let card = testcards::broken("zhangsan", defect).unwrap();
        let (report, _) = run_issued(&card, &options(&card));
        assert_eq!(
            failed(&report),
            [defect.failing_check()],
            "{defect:?}:\n{report}"
        );
        let (_, reason) = result(&report, defect.failing_check());
        match defect {
            Defect::BadCertificate => {
                assert_eq!(
                    reason,
                    "card certificate rejected: format 14: the SM2 signature does not verify"
                );
                // Without a certified key there is nothing to check the challenge with.
                assert_eq!(result(&report, "pki.challenge").0, Verdict::Skipped);
            }
            Defect::PinBlocked => {
                assert_eq!(reason, "the PIN is blocked: no tries left");
                // The counter was asked, never a PIN tried: the query answers 6983 twice.
                assert!(
                    result(&report, "iso.pin_counter").1.contains("6983"),
                    "{report}"
                );
            }
            Defect::InconsistentLog => assert_eq!(
                reason,
                "records 2 and 3 have the same ATC 0002; the newest record's ATC 0004 is above \
                 the card's ATC 0003"
            ),
            Defect::WrongIccKey => {
                assert!(
                    reason.starts_with(
                        "the signature over the challenge does not verify with the ICC key (SM2)"
                    ),
                    "{reason}"
                );
                // The certificate itself is genuine.
                assert_eq!(result(&report, "pboc.icc_certificate").0, Verdict::Pass);
            }
            _ => unreachable!(),
        }
        assert!(!report.passed());
    }
}

#[test]
fn defects_have_names_for_command_lines() {
    for d in Defect::ALL {
        assert_eq!(d.name().parse::<Defect>(), Ok(d));
    }
    assert!("bent".parse::<Defect>().unwrap_err().contains("bad-cert"));
}

#[test]
fn the_iso_checks_see_the_status_words_of_iso_7816_4() {
    let (report, _) = run_on(fixture("zhangsan"), &Options::new(today()));
    let want = [
        (
            "iso.wrong_cla",
            "SELECT with CLA 20: 6E00 (class not supported)",
        ),
        (
            "iso.unknown_ins",
            "INS 02: 6D00 (instruction code not supported)",
        ),
        (
            "iso.wrong_p1p2",
            "SELECT with P1 07: 6A86 (incorrect parameters P1-P2)",
        ),
        (
            "iso.wrong_length",
            "SELECT by file identifier with Lc 03: 6700 (wrong length)",
        ),
        (
            "iso.wrong_le",
            "READ RECORD with Le=01 drew 6Cxx; sent again with Le=0B it answered the whole \
             11-byte record",
        ),
        (
            "iso.get_response",
            "SELECT (case 4) answered the 27-byte FCI at once (no 61xx needed on this protocol)",
        ),
        (
            "iso.pin_counter",
            "VERIFY without data answered 63C3 (wrong PIN, 3 tries left) twice",
        ),
        (
            "iso.offset_beyond_file",
            "READ BINARY at offset 7FFF: 6B00 (offset outside the EF)",
        ),
    ];
    for (id, reason) in want {
        assert_eq!(result(&report, id), (Verdict::Pass, reason), "{id}");
    }
    // A card that speaks T=0 answers a case 4 command with 61xx: the session fetches the rest.
    let (report, _) = run_on(fixture("wangfang-t0"), &Options::new(today()));
    assert_eq!(
        result(&report, "iso.get_response"),
        (
            Verdict::Pass,
            "SELECT (case 4) drew 61xx; GET RESPONSE fetched the 27-byte FCI"
        )
    );
    assert!(report.passed(), "{report}");
}

/// The software card, with the answers to some requests replaced as a careless card gives
/// them.
struct Careless {
    card: SoftCard,
    verify_queries: u8,
}

impl CardChannel for Careless {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let answer = match command {
            // The class byte ignored: SELECT done.
            [0x20, 0xa4, ..] => Some(vec![0x90, 0x00]),
            [0x00, 0x02, ..] => Some(vec![0x6f, 0x00]),
            [0x00, 0xa4, 0x07, ..] => Some(vec![0x6a, 0x82]),
            [0x00, 0xa4, 0x00, 0x00, 0x03, ..] => Some(vec![0x6a, 0x82]),
            // Le=01 honoured by cutting the record.
            [0x00, 0xb2, 0x07, 0x28, 0x01] => Some(vec![0x07, 0x90, 0x00]),
            // Each counter query costs a try.
            [0x00, 0x20, 0x00, 0x00] => {
                self.verify_queries += 1;
                Some(vec![0x63, 0xc4 - self.verify_queries])
            }
            [0x00, 0xb0, 0x7f, 0xff, ..] => Some(vec![0x90, 0x00]),
            _ => None,
        };
        Ok(answer.unwrap_or_else(|| self.card.process(command)))
    }
}

#[test]
fn the_iso_checks_catch_a_card_that_answers_wrongly() {
    let careless = Careless {
        card: fixture("zhangsan"),
        verify_queries: 0,
    };
    let (report, _) = run_on(careless, &Options::new(today()));
    let want = [
        (
            "iso.wrong_cla",
            Verdict::Fail,
            "SELECT with CLA 20: answered 9000 (normal processing), expected 6E00 (class not \
             supported)",
        ),
        (
            "iso.unknown_ins",
            Verdict::Fail,
            "INS 02: answered 6F00 (no precise diagnosis), expected 6D00 (instruction not \
             supported)",
        ),
        (
            "iso.wrong_p1p2",
            Verdict::Fail,
            "SELECT with P1 07: answered 6A82 (file or application not found), expected 6A86 \
             (incorrect P1-P2) or 6B00 (wrong P1-P2)",
        ),
        (
            "iso.wrong_length",
            Verdict::Fail,
            "SELECT by file identifier with Lc 03: answered 6A82 (file or application not \
             found), expected 6700 (wrong length) or 6A87 (Lc inconsistent with P1-P2)",
        ),
        (
            "iso.wrong_le",
            Verdict::Warn,
            "READ RECORD with Le=01 answered only the first byte with 9000, where 6Cxx (the \
             exact length) was expected",
        ),
        (
            "iso.pin_counter",
            Verdict::Fail,
            "VERIFY without data answered 63C3 (wrong PIN, 3 tries left), then 63C2 (wrong PIN, \
             2 tries left): asking used a try",
        ),
        (
            "iso.offset_beyond_file",
            Verdict::Fail,
            "READ BINARY at offset 7FFF answered 9000 (normal processing) (0 data bytes), \
             expected 6B00",
        ),
    ];
    for (id, verdict, reason) in want {
        assert_eq!(result(&report, id), (verdict, reason), "{id}:\n{report}");
    }
}

#[test]
fn gpo_counts_one_transaction_and_without_it_the_card_is_left_as_it_was() {
    let card = testcards::issue("zhangsan").unwrap();
    // With GET PROCESSING OPTIONS (the default): the ATC moves by one, nothing else.
    let (report, after) = run_issued(&card, &options(&card));
    assert!(report.passed(), "{report}");
    assert_eq!(atc(&after), 4);
    assert_eq!(after.image().pin.tries_left, 3);
    // Without: no commit at all, and the ICC certificate is not verified.
    let opts = Options {
        gpo: false,
        ..options(&card)
    };
    let (report, after) = run_issued(&card, &opts);
    assert_eq!(after.commits(), 0, "the suite wrote to the card");
    assert_eq!(atc(&after), 3);
    let (verdict, reason) = result(&report, "pboc.icc_certificate");
    assert_eq!(verdict, Verdict::Skipped);
    assert!(reason.contains("needs GET PROCESSING OPTIONS"), "{reason}");
    assert_eq!(result(&report, "pboc.dda").0, Verdict::Skipped);
    assert!(
        result(&report, "pboc.records")
            .1
            .contains("without GET PROCESSING OPTIONS"),
        "{report}"
    );
    assert_eq!(result(&report, "pboc.issuer_certificate").0, Verdict::Pass);
    assert!(report.passed(), "{report}");
    // Without trust anchors: no certificate is checked and no GPO sent.
    let (report, after) = run_issued(&card, &Options::new(today()));
    assert_eq!(after.commits(), 0);
    for id in [
        "pki.certificates",
        "pki.challenge",
        "pboc.issuer_certificate",
        "pboc.icc_certificate",
        "pboc.dda",
    ] {
        let (verdict, reason) = result(&report, id);
        assert_eq!(verdict, Verdict::Skipped, "{id}");
        assert!(reason.starts_with("no trust anchor"), "{id}: {reason}");
    }
    assert!(report.passed(), "{report}");
}

#[test]
fn an_unknown_ca_fails_the_chain() {
    // Trust anchors under both RIDs and the right indexes, but other keys.
    let card = testcards::issue("zhangsan").unwrap();
    let mut trust = CaStore::new();
    for k in card.trust.sm2().keys() {
        let mut k = k.clone();
        k.public_key = *card_core::crypto::sm2::Sm2PrivateKey::generate_os()
            .unwrap()
            .public_key();
        trust.add_sm2(k);
    }
    let (report, _) = run_issued(&card, &Options::new(today()).with_trust(trust));
    assert_eq!(
        failed(&report),
        ["pki.certificates", "pboc.issuer_certificate"],
        "{report}"
    );
    assert_eq!(
        result(&report, "pki.certificates").1,
        "issuer certificate rejected: format 12: the SM2 signature does not verify"
    );
}

#[test]
fn low_pin_tries_and_close_expiries_warn_expired_cards_fail() {
    let card = testcards::issue("zhangsan").unwrap();
    let mut image = card.image.clone();
    image.pin.tries_left = 2;
    // zhangsan expires 2034-01-14.
    let opts = Options {
        today: Date::new(2034, 1, 1).unwrap(),
        ..options(&card)
    };
    let (report, _) = run_on(SoftCard::in_memory(image), &opts);
    assert_eq!(
        result(&report, "ssse.pin_tries"),
        (Verdict::Warn, "only 2 PIN tries left")
    );
    assert_eq!(
        result(&report, "ssse.card_dates"),
        (Verdict::Warn, "expires 2034-01-14, in 13 days")
    );
    assert_eq!(
        result(&report, "pboc.dates"),
        (
            Verdict::Warn,
            "effective 2024-01-15, expires 2034-01-14, in 13 days"
        )
    );
    assert!(report.passed(), "{report}");

    let opts = Options {
        today: Date::new(2034, 2, 1).unwrap(),
        ..options(&card)
    };
    let (report, _) = run_issued(&card, &opts);
    assert_eq!(
        result(&report, "ssse.card_dates"),
        (Verdict::Fail, "expired 2034-01-14, 18 days ago")
    );
    assert_eq!(
        result(&report, "pboc.dates"),
        (Verdict::Fail, "expired 2034-01-14 (5F24), 18 days ago")
    );
    // The PBOC certificates end with the application (01/2034).
    assert_eq!(
        result(&report, "pboc.issuer_certificate"),
        (
            Verdict::Fail,
            "issuer certificate rejected: format 12 certificate expired at the end of 01/2034"
        )
    );
}

#[test]
fn the_ec_check_fails_a_balance_above_its_limit_without_showing_it() {
    let card = testcards::issue("zhangsan").unwrap();
    let mut image = card.image.clone();
    image.pboc.as_mut().unwrap().ec.as_mut().unwrap().balance = 123_456;
    let (report, _) = run_on(SoftCard::in_memory(image.clone()), &options(&card));
    assert_eq!(failed(&report), ["pboc.ec"], "{report}");
    assert_eq!(
        result(&report, "pboc.ec").1,
        "the balance is above the balance limit 1000.00"
    );
    assert!(!report.to_string().contains("1234.56"), "{report}");
    let opts = Options {
        reveal: true,
        ..options(&card)
    };
    let (report, _) = run_on(SoftCard::in_memory(image), &opts);
    assert_eq!(
        result(&report, "pboc.ec").1,
        "the balance 1234.56 is above the balance limit 1000.00"
    );
    // A card without electronic cash skips the check.
    let mut image = card.image.clone();
    image.pboc.as_mut().unwrap().ec = None;
    let (report, _) = run_on(SoftCard::in_memory(image), &options(&card));
    assert_eq!(
        result(&report, "pboc.ec"),
        (
            Verdict::Skipped,
            "no electronic cash: GET DATA 9F79 answered 6A88"
        )
    );
}

struct Pad(&'static str);

impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        PinEntry::Pin(Pin::new(self.0).unwrap())
    }
}

#[test]
fn the_log_the_card_writes_in_real_purchases_is_consistent() {
    let card = testcards::issue("zhangsan").unwrap();
    let mut s = CardSession::new(SoftCard::in_memory(card.image.clone()));
    for (amount, day) in [(300, 10), (450, 12)] {
        let rec = run_contact(
            &mut s,
            &TerminalConfig::kiosk(),
            &card.trust,
            TransactionParams::purchase(
                Amount::new(amount).unwrap(),
                PbocDate::new(2026, 3, day).unwrap(),
                Time::new(10, 0, 0).unwrap(),
                [1, 2, 3, 4],
            ),
            &mut Hooks {
                pin_pad: &mut Pad("123456"),
                hot_list: &NoHotList,
                online: &mut Offline,
                journal: &mut MemoryJournal::default(),
            },
        );
        assert!(rec.outcome.is_approved(), "{:?}", rec.outcome);
    }
    let report = conformance::run(&mut s, &options(&card));
    assert_eq!(
        result(&report, "pboc.log"),
        (
            Verdict::Pass,
            "5 records, ATC 0005 down to 0001, newest first, none above the card's ATC 0005; \
             dates and amounts valid"
        )
    );
    assert!(report.passed(), "{report}");
}

/// The software card until `left` commands have gone, then pulled.
struct Pulled {
    card: SoftCard,
    left: usize,
    after: usize,
}

impl CardChannel for Pulled {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.left == 0 {
            self.after += 1;
            return Err(TransportError::CardRemoved);
        }
        self.left -= 1;
        Ok(self.card.process(command))
    }
}

#[test]
fn a_card_pulled_during_the_suite_fails_one_check_and_skips_the_rest() {
    let pulled = Pulled {
        card: fixture("zhangsan"),
        left: 4,
        after: 0,
    };
    let (report, channel) = run_on(pulled, &Options::new(today()));
    assert_eq!(channel.after, 1, "nothing is sent after the card is gone");
    assert_eq!(failed(&report), ["iso.wrong_length"], "{report}");
    assert_eq!(
        result(&report, "iso.wrong_length").1,
        "the exchange failed: the card was removed"
    );
    assert_eq!(report.summary.skipped, IDS.len() - 5, "{report}");
    assert_eq!(
        result(&report, "pboc.log"),
        (
            Verdict::Skipped,
            "not run: an earlier exchange failed (the card was removed)"
        )
    );
}

#[test]
fn the_report_serialises_with_stable_ids_and_lowercase_verdicts() {
    let card = testcards::broken("zhangsan", Defect::PinBlocked).unwrap();
    let (report, _) = run_issued(&card, &options(&card));
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["summary"]["fail"], 1);
    assert_eq!(v["summary"]["pass"], IDS.len() - 1);
    assert_eq!(v["checks"].as_array().unwrap().len(), IDS.len());
    let pin = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "ssse.pin_tries")
        .unwrap();
    assert_eq!(pin["verdict"], "fail");
    assert_eq!(pin["title"], "Cardholder PIN tries left");
    assert_eq!(pin["reason"], "the PIN is blocked: no tries left");
    // The text form: one line per check, then the counts.
    let text = report.to_string();
    assert!(
        text.contains("\nFAIL  ssse.pin_tries           the PIN is blocked: no tries left\n"),
        "{text}"
    );
    assert!(
        text.ends_with("23 passed, 0 warnings, 1 failed, 0 skipped"),
        "{text}"
    );
    // No personal data in clear anywhere.
    for secret in [
        "张三",
        "110105198703153011",
        "A00000011",
        "6230580000000000013",
    ] {
        assert!(
            !text.contains(secret) && !v.to_string().contains(secret),
            "{secret}"
        );
    }
}

#[test]
fn every_hostile_card_ends_the_suite_with_a_failure_named_and_no_panic() {
    use firmware_tests::hostile::{HostileCard, HostileMode};
    for mode in HostileMode::ALL {
        let card = testcards::issue("zhangsan").unwrap();
        let hostile = HostileCard::new(SoftCard::in_memory(card.image.clone()), mode);
        let (report, _) = run_on(hostile, &options(&card));
        assert_eq!(report.checks.len(), IDS.len(), "{mode:?}:\n{report}");
        assert!(
            report.apdus < 400,
            "{mode:?}: {} APDUs:\n{report}",
            report.apdus
        );
        let failures: Vec<_> = report.failures().collect();
        assert!(
            !failures.is_empty(),
            "{mode:?}: the suite found nothing wrong:\n{report}"
        );
        assert!(
            failures.iter().all(|c| !c.reason.is_empty()),
            "{mode:?}:\n{report}"
        );
    }
}

#[test]
fn a_long_broken_log_is_summed_up_not_listed() {
    use firmware_tests::hostile::{HostileCard, HostileMode};
    // A log of 255 records whose ATCs wrap around: one reason, the first problems and a count.
    let card = testcards::issue("zhangsan").unwrap();
    let hostile = HostileCard::new(SoftCard::in_memory(card.image.clone()), HostileMode::Log255);
    let (report, _) = run_on(hostile, &options(&card));
    let (verdict, reason) = result(&report, "pboc.log");
    assert_eq!(verdict, Verdict::Fail);
    assert!(reason.len() < 400, "{reason}");
    assert!(
        reason.starts_with("record 3 (ATC 0001) is older than record 4"),
        "{reason}"
    );
}

#[test]
fn a_card_that_breaks_the_transmission_rules_three_times_is_not_asked_more() {
    use firmware_tests::hostile::{HostileCard, HostileMode};
    let hostile = HostileCard::new(fixture("zhangsan"), HostileMode::Endless61);
    let (report, _) = run_on(hostile, &Options::new(today()));
    assert_eq!(conformance::MAX_BROKEN_EXCHANGES, 3);
    assert_eq!(
        failed(&report),
        ["ssse.select", "iso.wrong_cla", "iso.unknown_ins"],
        "{report}"
    );
    assert_eq!(
        result(&report, "iso.wrong_cla").1,
        "the card's answer broke the exchange: card kept announcing more data after 64 GET \
         RESPONSE commands"
    );
    assert_eq!(
        result(&report, "pboc.select"),
        (
            Verdict::Skipped,
            "not run: 3 exchanges broke the transmission rules (the last: card kept announcing \
             more data after 64 GET RESPONSE commands)"
        )
    );
    // Three commands of one APDU and 64 GET RESPONSEs each.
    assert_eq!(report.apdus, 3 * 65);
}
