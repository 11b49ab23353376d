//! Electronic-cash load and other issuer scripts with secure messaging (JR/T 0025.5 §17,
//! 附录 C; JR/T 0025.13 §5.8, §8, §10): the MAC, the balance limit, the load log and its
//! MAC-protected reading, script counters and the failure indicator.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use pboc_support::*;

/// An online transaction up to the second GENERATE AC (TC, issuer authenticated); returns the
/// terms, the ATC and the ARQC the script MACs need.
fn online(c: &mut TestCard) -> (Terms, u16, [u8; 8]) {
    let (mk_ac, _) = c.issuer_keys();
    let mut terms = Terms::contact(0);
    terms.ec_indicator = 0;
    terms.txn_type = 0x60; // load
    contact_gpo(c, &terms);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x80, &terms.cdol1_data())));
    assert_eq!(r.cid, 0x80);
    let arqc = r.ac.unwrap();
    let mut auth = arpc(&mk_ac, r.atc, &arqc, b"00").to_vec();
    auth.extend(b"00");
    let r2 = AcResponse::parse(&c.ok(&gen_ac(
        0x40,
        &cdol2_data(b"00", &auth.try_into().unwrap(), [0; 5], [0; 4]),
    )));
    assert_eq!(r2.cid, 0x40);
    (terms, r.atc, arqc)
}

fn put_balance(c: &TestCard, atc: u16, arqc: &[u8; 8], balance: u64) -> Vec<u8> {
    let (_, mk_smi) = c.issuer_keys();
    script(&mk_smi, atc, arqc, [0x04, 0xda, 0x9f, 0x79], &n12(balance))
}

fn load(name: &str) {
    let mut c = TestCard::new(name);
    let (_, mk_smi) = c.issuer_keys();
    let before = c.section().ec.as_ref().unwrap().balance_fen;
    let (terms, atc, arqc) = online(&mut c);
    let apdu = put_balance(&c, atc, &arqc, before + 10_000);
    assert_eq!(&apdu[..5], &hex("04DA9F790A"));
    c.ok(&apdu);
    assert_eq!(c.balance(), before + 10_000);
    let state = c.committed();
    assert_eq!(state.indicators.script_count, 1);
    assert!(!state.indicators.script_failed);
    // The load log record (表10): P1 P2, before, after, then DF4F data.
    let log = c.read_log(12);
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(r.len(), 44);
    assert_eq!(&r[..2], &[0x9f, 0x79]);
    assert_eq!(bcd(&r[2..8]), before);
    assert_eq!(bcd(&r[8..14]), before + 10_000);
    assert_eq!(&r[14..17], &terms.date);
    assert_eq!(&r[17..20], &terms.time);
    assert_eq!(&r[20..22], &terms.country);
    assert_eq!(&r[22..42], &terms.merchant);
    assert_eq!(&r[42..44], &atc.to_be_bytes());
    // READ RECORD P1=00: all of it under a MAC (表12, 表13).
    let all = c.ok(&hex("00B2006400"));
    assert_eq!(&all[..2], &atc.to_be_bytes());
    assert_eq!(all[2], 1);
    assert_eq!(all.len(), 3 + 22 + 4);
    assert_eq!(&all[3..17], &r[..14]);
    assert_eq!(&all[17..23], &r[14..20]);
    assert_eq!(&all[23..25], &r[42..44]);
    let (body, mac) = all.split_at(all.len() - 4);
    assert_eq!(mac, expected_mac(&mk_smi, atc, body), "load log MAC");
    // P1=00 is only for the load log.
    assert_eq!(c.sendh("00B2005C00").1, 0x6A86);
    // The transaction log has the online transaction only.
    assert_eq!(c.read_log(11).len(), 1);
    // The next transaction is EC again and spends the loaded money.
    let (_, afl) = contact_gpo(&mut c, &Terms::contact(100));
    assert_eq!(afl.len(), 16);
}

#[test]
fn load_by_script_sm() {
    load("zhangsan");
}

#[test]
fn load_by_script_international() {
    load("wangwu-rsa");
}

#[test]
fn wrong_mac_changes_nothing() {
    let mut c = TestCard::new("zhangsan");
    let (_, atc, arqc) = online(&mut c);
    let mut apdu = put_balance(&c, atc, &arqc, 60_000);
    let last = apdu.len() - 1;
    apdu[last] ^= 0x01;
    assert_eq!(c.send(&apdu).1, 0x9302);
    assert_eq!(c.balance(), 50_000);
    assert!(c.read_log(12).is_empty());
    let state = c.committed();
    assert!(state.indicators.script_failed, "script failure indicator");
    assert_eq!(state.indicators.script_count, 1);
    // Without secure messaging: 6982.
    assert_eq!(c.sendh("00DA9F7906 000000060000").1, 0x6982);
    assert_eq!(c.sendh("80DA9F7906 000000060000").1, 0x6982);
    // The script stops: a right MAC now answers 6985 (§17.6.3).
    let good = put_balance(&c, atc, &arqc, 60_000);
    assert_eq!(c.send(&good).1, 0x6985);
    assert_eq!(c.balance(), 50_000);
    // A MAC over other data (header changed) is wrong too.
    let mut c = TestCard::new("zhangsan");
    let (_, atc, arqc) = online(&mut c);
    let mut apdu = put_balance(&c, atc, &arqc, 60_000);
    apdu[3] = 0x78;
    assert_eq!(c.send(&apdu).1, 0x9302);
    assert_eq!(c.get_data(0x9f78), n12(50_000));
    // Next transaction: not EC, and the CVR reports the failed script (§14.4.3.5).
    let terms = Terms::contact(100);
    let (_, afl) = contact_gpo(&mut c, &terms);
    assert_eq!(afl.len(), 12);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x40, &terms.cdol1_data())));
    assert_eq!(r.cvr()[3] & 0xf8, 0x10 | 0x08, "one script command, failed");
}

#[test]
fn load_over_the_balance_limit_is_refused() {
    // 钱七: 990.00 of 1000.00.
    let mut c = TestCard::new("qianqi-ec");
    let (_, atc, arqc) = online(&mut c);
    assert_eq!(c.send(&put_balance(&c, atc, &arqc, 100_001)).1, 0x6A80);
    assert_eq!(c.balance(), 99_000);
    assert!(c.read_log(12).is_empty());
    assert!(c.committed().indicators.script_failed);
    // Up to the limit is fine (in a new transaction: the failed command stopped nothing,
    // but it did set the failure indicator, so the issuer sends the next script later).
    let mut c = TestCard::new("qianqi-ec");
    let (_, atc, arqc) = online(&mut c);
    c.ok(&put_balance(&c, atc, &arqc, 100_000));
    assert_eq!(c.balance(), 100_000);
    // A malformed balance (not BCD, wrong length).
    let (_, mk_smi) = c.issuer_keys();
    assert_eq!(
        c.send(&script(
            &mk_smi,
            atc,
            &arqc,
            [0x04, 0xda, 0x9f, 0x79],
            &hex("00000000001A")
        ))
        .1,
        0x6A80
    );
    assert_eq!(
        c.send(&script(
            &mk_smi,
            atc,
            &arqc,
            [0x04, 0xda, 0x9f, 0x79],
            &hex("0000001000")
        ))
        .1,
        0x6700
    );
}

#[test]
fn other_ec_parameters_and_limits() {
    let mut c = TestCard::new("zhangsan");
    let (_, mk_smi) = c.issuer_keys();
    let (_, atc, arqc) = online(&mut c);
    let put = |tag: u16, value: &[u8]| {
        let [p1, p2] = tag.to_be_bytes();
        script(&mk_smi, atc, &arqc, [0x04, 0xda, p1, p2], value)
    };
    c.ok(&put(0x9f77, &n12(200_000)));
    c.ok(&put(0x9f78, &n12(10_000)));
    c.ok(&put(0x9f6d, &n12(2_000)));
    c.ok(&put(0x9f58, &[5]));
    assert_eq!(c.get_data(0x9f77), n12(200_000));
    assert_eq!(c.get_data(0x9f78), n12(10_000));
    assert_eq!(c.get_data(0x9f6d), n12(2_000));
    assert_eq!(c.committed().risk.lower_consecutive_offline_limit, Some(5));
    assert_eq!(c.committed().indicators.script_count, 4);
    // A balance limit under the balance is refused; unknown tags are not data of this card.
    assert_eq!(c.send(&put(0x9f77, &n12(49_999))).1, 0x6A80);
    let mut c = TestCard::new("zhangsan");
    let (_, atc, arqc) = online(&mut c);
    assert_eq!(
        c.send(&script(
            &mk_smi,
            atc,
            &arqc,
            [0x04, 0xda, 0x9f, 0x36],
            &[0, 0]
        ))
        .1,
        0x6A88
    );
    // A script command without secure messaging after the second GENERATE AC: 6982, and it
    // counts as a failed script (JR/T 0025.5 §17.6.4).
    let mut c = TestCard::new("zhangsan");
    online(&mut c);
    assert_eq!(c.sendh("841E000000").1, 0x6700, "no MAC at all");
    assert!(!c.committed().indicators.script_failed);
    assert_eq!(c.sendh("801E0000").1, 0x6982);
    assert!(c.committed().indicators.script_failed);
    // The single-transaction limit now decides what is EC.
    let mut c = TestCard::new("zhangsan");
    let (_, atc, arqc) = online(&mut c);
    c.ok(&script(
        &mk_smi,
        atc,
        &arqc,
        [0x04, 0xda, 0x9f, 0x78],
        &n12(100),
    ));
    assert_eq!(contact_gpo(&mut c, &Terms::contact(101)).1.len(), 12);
    assert_eq!(contact_gpo(&mut c, &Terms::contact(100)).1.len(), 16);
}

#[test]
fn load_log_keeps_the_newest_ten() {
    let mut c = TestCard::new("lisi");
    let (_, mk_smi) = c.issuer_keys();
    for i in 1..=11u64 {
        let (_, atc, arqc) = online(&mut c);
        c.ok(&put_balance(&c, atc, &arqc, 12_000 + i));
        let _ = &mk_smi;
    }
    let log = c.read_log(12);
    assert_eq!(log.len(), 10);
    assert_eq!(bcd(&log[0][8..14]), 12_011, "newest first");
    assert_eq!(bcd(&log[9][8..14]), 12_002);
    let all = c.ok(&hex("00B2006400"));
    assert_eq!(all[2], 10);
    assert_eq!(all.len(), 3 + 10 * 22 + 4);
    // The transaction log is apart: eleven online transactions, ten kept.
    assert_eq!(c.read_log(11).len(), 10);
}

#[test]
fn application_block_and_unblock() {
    let mut c = TestCard::new("zhangsan");
    let (_, mk_smi) = c.issuer_keys();
    let (_, atc, arqc) = online(&mut c);
    c.ok(&script(&mk_smi, atc, &arqc, [0x84, 0x1e, 0x00, 0x00], &[]));
    let (fci, sw) = c.sendh("00A4040008A000000333010101 00");
    assert_eq!(sw, 0x6283);
    assert!(!fci.is_empty(), "the FCI still comes");
    // A blocked application declines everything.
    let terms = Terms::contact(100);
    let data = c.ok(&terms.gpo_apdu());
    assert!(!data.is_empty());
    let r = AcResponse::parse(&c.ok(&gen_ac(0x40, &terms.cdol1_data())));
    assert_eq!(r.cid, 0x00);
    // And contactless too: AAC, no AFL.
    c.sendh("00A4040008A000000333010101 00");
    let data = c.ok(&Terms::qpboc(100).gpo_apdu());
    assert!(find(&data, 0x94).is_none());
    assert_eq!(find(&data, 0x9f10).unwrap()[4] & 0x30, 0x00, "AAC");
    assert_eq!(c.balance(), 50_000);
    // Unblock in an online transaction on the issuer's device.
    let mut terms = Terms::contact(0);
    terms.ec_indicator = 0;
    c.sendh("00A4040008A000000333010101 00");
    c.ok(&terms.gpo_apdu());
    let r = AcResponse::parse(&c.ok(&gen_ac(0x80, &terms.cdol1_data())));
    assert_eq!(r.cid, 0x00, "blocked: AAC even for an ARQC request");
    c.ok(&script(
        &mk_smi,
        r.atc,
        &r.ac.unwrap(),
        [0x84, 0x18, 0x00, 0x00],
        &[],
    ));
    assert_eq!(c.sendh("00A4040008A000000333010101 00").1, 0x9000);
}
