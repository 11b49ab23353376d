//! Random command APDUs against the payment application never panic, never change the EC
//! balance or the logs without a valid flow, and never leave RAM different from what is
//! committed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use firmware_tests::storage::Storage as _;
use pboc_support::*;
use proptest::prelude::*;

/// A command: class and instruction mostly from those the application knows, the rest random.
fn apdu() -> impl Strategy<Value = Vec<u8>> {
    let cla = prop_oneof![
        Just(0x00u8),
        Just(0x80),
        Just(0x84),
        Just(0x04),
        any::<u8>()
    ];
    let ins = prop_oneof![
        Just(0xa4u8),
        Just(0xa8),
        Just(0xae),
        Just(0xca),
        Just(0xb2),
        Just(0x20),
        Just(0x82),
        Just(0x88),
        Just(0xda),
        Just(0x1e),
        Just(0x18),
        Just(0x24),
        Just(0xc0),
        any::<u8>()
    ];
    let structured = (
        cla,
        ins,
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..70),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(cla, ins, p1, p2, data, le)| {
            let mut a = vec![cla, ins, p1, p2];
            if !data.is_empty() {
                a.push(data.len() as u8);
                a.extend(data);
            }
            if let Some(le) = le {
                a.push(le);
            }
            a
        });
    prop_oneof![
        3 => structured,
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn check(c: &mut TestCard, commands: &[Vec<u8>], setup: &[Vec<u8>]) {
    for s in setup {
        c.ok(s);
    }
    let ram = |c: &TestCard| c.card.image().clone();
    let start = ram(c).pboc.unwrap();
    let start_logs = ram(c).fs.clone();
    for cmd in commands {
        let r = c.card.process(cmd);
        assert!(r.len() >= 2, "a status word always comes");
        let image = ram(c);
        let committed = c.storage.0.lock().unwrap().load().unwrap().unwrap();
        assert_eq!(
            image,
            committed,
            "RAM is the committed image after {}",
            hex::encode_upper(cmd)
        );
        let state = image.pboc.unwrap();
        assert_eq!(
            state.ec.as_ref().unwrap().balance,
            start.ec.as_ref().unwrap().balance,
            "balance changed by {}",
            hex::encode_upper(cmd)
        );
    }
    // No log record appeared either.
    let end = ram(c);
    let adf_logs = |fs: &firmware_tests::fs::FileSystem| {
        (0..200)
            .filter_map(|id| fs.node(id))
            .filter(|n| n.name.starts_with("PBOC/LOG") || n.name.starts_with("PBOC/LOADLOG"))
            .map(|n| format!("{:?}", n.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(adf_logs(&end.fs), adf_logs(&start_logs));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_in_the_selected_application(commands in proptest::collection::vec(apdu(), 1..20)) {
        let mut c = TestCard::new("zhangsan");
        check(&mut c, &commands, &[hex("00A4040008A000000333010101 00")]);
    }

    #[test]
    fn random_commands_inside_an_ec_transaction(commands in proptest::collection::vec(apdu(), 1..20)) {
        let mut c = TestCard::new("wangwu-rsa");
        let terms = Terms::contact(1_234);
        check(
            &mut c,
            &commands,
            &[hex("00A4040008A000000333010101 00"), terms.gpo_apdu()],
        );
    }

    #[test]
    fn random_commands_after_an_online_cryptogram(commands in proptest::collection::vec(apdu(), 1..20)) {
        let mut c = TestCard::new("lisi");
        let mut terms = Terms::contact(0);
        terms.ec_indicator = 0;
        check(
            &mut c,
            &commands,
            &[
                hex("00A4040008A000000333010101 00"),
                terms.gpo_apdu(),
                gen_ac(0x80, &terms.cdol1_data()),
            ],
        );
    }
}
