//! qPBOC (JR/T 0025.12 §7): offline approval in GET PROCESSING OPTIONS with the EC debit, the
//! TC and fDDA (versions 01 and 00, SM2 and RSA) verified by an independent terminal; online
//! and decline paths; the available offline spending amount.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use card_core::crypto::sm2_cert::{self, FddaTerminalData};
use card_core::tlv::{Tag, Tlv};
use pboc_support::*;

/// The qPBOC GPO answer (format 2) as a list of objects.
fn gpo(card: &mut TestCard, terms: &Terms) -> (Tlv, u16) {
    card.ok(&hex("00A404000E 325041592E5359532E4444463031 00"));
    card.select_adf();
    let (data, sw) = card.send(&terms.gpo_apdu());
    if sw != 0x9000 {
        return (Tlv::primitive(Tag::new(0x77), Vec::new()), sw);
    }
    let t = Tlv::parse(&data).unwrap();
    assert_eq!(t.tag(), Tag::new(0x77), "format 2");
    (t, sw)
}

fn get(t: &Tlv, tag: u32) -> Option<Vec<u8>> {
    t.child(Tag::new(tag))
        .and_then(Tlv::bytes)
        .map(<[u8]>::to_vec)
}

fn offline_purchase(name: &str, amount: u64, fdda_v01: bool) {
    let mut c = TestCard::new(name);
    let (mk_ac, mk_smi) = c.issuer_keys();
    let before = c.section().ec.as_ref().unwrap().balance_fen;
    let mut terms = Terms::qpboc(amount);
    if !fdda_v01 {
        terms.ttq[3] = 0x00;
    }
    let (t, _) = gpo(&mut c, &terms);
    let aip: [u8; 2] = get(&t, 0x82).unwrap().try_into().unwrap();
    let afl = get(&t, 0x94).expect("AFL of an offline approval");
    let atc = u16::from_be_bytes(get(&t, 0x9f36).unwrap().try_into().unwrap());
    assert_eq!(atc, 1);
    let tc: [u8; 8] = get(&t, 0x9f26).unwrap().try_into().unwrap();
    let iad = get(&t, 0x9f10).unwrap();
    assert!(get(&t, 0x57).is_some(), "track 2 in the GPO answer (表12)");
    assert!(
        get(&t, 0x5f34).is_none(),
        "the PSN comes once, in the signed record (§7.5)"
    );
    let sdad = get(&t, 0x9f4b).expect("fDDA signature");
    let ctq = get(&t, 0x9f6c).unwrap();
    // The cryptogram: TC, CVR 03 10 00 00 (JR/T 0025.12 §7.5, §7.7.14).
    let cvr: [u8; 4] = iad[3..7].try_into().unwrap();
    assert_eq!(cvr, [0x03, 0x10, 0x00, 0x00]);
    assert_eq!(
        tc,
        expected_ac(
            &mk_ac,
            atc,
            &ac_data(&terms.ac_terminal_data(), aip, atc, cvr)
        ),
        "TC over the PDOL data (cryptogram version 01)"
    );
    assert_eq!(idd_balance(&iad, &mk_smi, atc), before - amount);
    // Records, the last with 9F69 (version 01), then the card is done.
    let records = read_afl(&mut c, &afl);
    assert_eq!(records.read.last(), Some(&(4, 1)));
    let last = c.ok(&hex("00B2012400"));
    assert!(last.len() <= 34, "last record at most 32 bytes of template");
    let card_auth = records.get(0x9f69);
    assert_eq!(card_auth.is_some(), fdda_v01);
    assert!(
        c.committed().tear.is_none(),
        "the last record ends the tear protection"
    );
    // fDDA.
    let key = icc_key(&c, &records, aip);
    let mut terminal = terms.un.to_vec();
    if fdda_v01 {
        let d = card_auth.clone().unwrap();
        assert_eq!(d.len(), 8);
        assert_eq!(d[0], 0x01, "fDDA version 01");
        assert_eq!(&d[5..7], &ctq[..], "CTQ in 9F69");
        terminal.extend(n12(amount));
        terminal.extend(terms.currency);
        terminal.extend(&d);
    }
    let dynamic = check_dynamic(&key, &sdad, &terminal);
    let mut expected = vec![0x02];
    expected.extend(atc.to_be_bytes());
    assert_eq!(dynamic, expected, "ICC dynamic data = the ATC (表B.2)");
    if let IccKey::Sm2(k) = &key {
        let fdda = FddaTerminalData {
            unpredictable_number: terms.un,
            amount_authorised: n12(amount).try_into().unwrap(),
            transaction_currency_code: terms.currency,
            card_authentication_related_data: card_auth.as_deref(),
        };
        sm2_cert::verify_fdda(k, &sdad, aip, &fdda, fdda_v01).unwrap();
    }
    // Balance, ATC, log.
    assert_eq!(c.balance(), before - amount);
    assert_eq!(c.atc(), 1);
    let log = c.read_log(11);
    assert_eq!(log.len(), 1);
    assert_eq!(bcd(&log[0][6..12]), amount);
    assert_eq!(&log[0][43..45], &atc.to_be_bytes());
    // qPBOC has no GENERATE AC.
    assert_eq!(c.send(&gen_ac(0x40, &terms.cdol1_data())).1, 0x6985);
}

#[test]
fn qpboc_offline_sm2_fdda_01() {
    offline_purchase("zhangsan", 2_500, true);
}

#[test]
fn qpboc_offline_sm2_fdda_00() {
    offline_purchase("zhangsan", 100, false);
}

#[test]
fn qpboc_offline_rsa_fdda_01() {
    offline_purchase("wangwu-rsa", 2_999, true);
}

#[test]
fn qpboc_online_when_the_amount_is_over_the_limits() {
    // 钱七: single-transaction limit 50.00. Online-capable terminal: TTQ 22 00 00 80.
    let mut c = TestCard::new("qianqi-ec");
    let (mk_ac, _) = c.issuer_keys();
    let mut terms = Terms::qpboc(5_001);
    terms.ttq[0] = 0x22;
    let (t, _) = gpo(&mut c, &terms);
    assert!(get(&t, 0x94).is_none(), "no AFL when going online (§7.4.3)");
    assert_eq!(
        get(&t, 0x5f34).unwrap(),
        [0x01],
        "the PSN for the online message (表11)"
    );
    assert!(get(&t, 0x9f4b).is_none());
    let iad = get(&t, 0x9f10).unwrap();
    let cvr: [u8; 4] = iad[3..7].try_into().unwrap();
    assert_eq!(cvr, [0x03, 0x20, 0x20, 0x00], "ARQC, velocity exceeded");
    let aip: [u8; 2] = get(&t, 0x82).unwrap().try_into().unwrap();
    let arqc: [u8; 8] = get(&t, 0x9f26).unwrap().try_into().unwrap();
    assert_eq!(
        arqc,
        expected_ac(&mk_ac, 1, &ac_data(&terms.ac_terminal_data(), aip, 1, cvr))
    );
    // 9F5D: the EC balance, unchanged.
    assert_eq!(get(&t, 0x9f5d).unwrap(), n12(99_000));
    assert_eq!(c.balance(), 99_000);
    assert!(c.read_log(11).is_empty());
    // The balance minus the reset threshold (10.00) is the room offline with an online
    // terminal: 980.00 of 990.00.
    let mut c = TestCard::new("zhangsan");
    let mut terms = Terms::qpboc(49_001);
    terms.ttq[0] = 0x22;
    let (t, _) = gpo(&mut c, &terms);
    assert!(get(&t, 0x94).is_none());
    let mut terms = Terms::qpboc(49_000);
    terms.ttq[0] = 0x22;
    let (t, _) = gpo(&mut c, &terms);
    assert!(get(&t, 0x94).is_some());
}

#[test]
fn qpboc_declines_offline_only_over_balance() {
    // TTQ byte 1 bit 4 (08): offline-only terminal (表3). The kiosk default 26 of
    // docs/pboc-profile.md has it clear: an online-capable terminal.
    let mut c = TestCard::new("lisi");
    let mut terms = Terms::qpboc(12_001);
    terms.ttq[0] = 0x28;
    let (t, _) = gpo(&mut c, &terms);
    let iad = get(&t, 0x9f10).unwrap();
    assert_eq!(iad[4] & 0x30, 0x00, "AAC");
    assert!(get(&t, 0x94).is_none());
    assert_eq!(
        get(&t, 0x9f5d).unwrap(),
        n12(12_000),
        "available offline amount"
    );
    assert_eq!(c.balance(), 12_000);
    // With the online-capable kiosk TTQ the card goes online instead.
    let (t, _) = gpo(&mut c, &Terms::qpboc(12_001));
    assert_eq!(get(&t, 0x9f10).unwrap()[4], 0x20, "ARQC");
    // Exactly the balance is fine offline-only, and 9F5D shows what is left.
    let mut terms = Terms::qpboc(12_000);
    terms.ttq[0] = 0x28;
    let (t, _) = gpo(&mut c, &terms);
    assert!(get(&t, 0x94).is_some());
    assert_eq!(get(&t, 0x9f5d).unwrap(), n12(0));
}

#[test]
fn qpboc_terminal_asks_for_online() {
    let mut c = TestCard::new("zhangsan");
    let mut terms = Terms::qpboc(100);
    terms.ttq = [0x22, 0x80, 0x00, 0x80];
    let (t, _) = gpo(&mut c, &terms);
    assert_eq!(get(&t, 0x9f10).unwrap()[4], 0x20, "ARQC");
    // CVM required, terminal offers online PIN but the card does not: signature? not either:
    // terminate (§7.7.3, §7.7.16).
    let mut terms = Terms::qpboc(100);
    terms.ttq = [0x24, 0x40, 0x00, 0x80];
    let (_, sw) = gpo(&mut c, &terms);
    assert_eq!(sw, 0x6985);
}

#[test]
fn qpboc_cvm_by_online_pin_and_signature() {
    let mut p = pboc_support::profile("zhangsan");
    let s = p.pboc.as_mut().unwrap();
    s.card_additional_processes = Some("88109000".into()); // online PIN (matching), signature
    s.cvm_limit_fen = Some(1_000);
    let mut c = TestCard::from_profile(p);
    // Over the card CVM limit, terminal with online PIN: online with CTQ "online PIN".
    let mut terms = Terms::qpboc(2_000);
    terms.ttq = [0x24, 0x00, 0x00, 0x80];
    let (t, _) = gpo(&mut c, &terms);
    assert_eq!(get(&t, 0x9f6c).unwrap(), [0x80, 0x00]);
    assert_eq!(get(&t, 0x9f10).unwrap()[4], 0x20, "ARQC");
    // Terminal with signature only: offline with CTQ "signature".
    let mut terms = Terms::qpboc(2_000);
    terms.ttq = [0x2a, 0x00, 0x00, 0x80];
    let (t, _) = gpo(&mut c, &terms);
    assert_eq!(get(&t, 0x9f6c).unwrap(), [0x40, 0x00]);
    assert!(get(&t, 0x94).is_some());
}
