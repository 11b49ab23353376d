//! The payment application's selection and data: PSE and PPSE, the ADF's FCI with its PDOL,
//! GET PROCESSING OPTIONS (contact, EC, non-EC), the records the AFL names, GET DATA for every
//! tag, status words for wrong requests, the SM indicator DF69, the ATC limit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use card_core::tlv::{Tag, Tlv};
use pboc_support::*;

#[test]
fn pse_lists_the_debit_application() {
    let mut c = TestCard::new("zhangsan");
    let fci = c.ok(&hex("00A404000E 315041592E5359532E4444463031 00"));
    assert_eq!(
        fci,
        hex("6F 1C 84 0E 315041592E5359532E4444463031 A5 0A 88 01 01 5F2D 04 7A68656E")
    );
    // The directory: SFI 1 record 1.
    let dir = c.ok(&hex("00B2010C00"));
    assert_eq!(
        dir,
        hex("70 1B 61 19 4F 08 A000000333010101 50 0A 50424F43204445424954 87 01 01")
    );
    assert_eq!(c.sendh("00B2020C00").1, 0x6A83);
}

#[test]
fn ppse_lists_the_debit_application() {
    let mut c = TestCard::new("lisi");
    let fci = c.ok(&hex("00A404000E 325041592E5359532E4444463031 00"));
    let t = Tlv::parse(&fci).unwrap();
    let entry = t.find(Tag::new(0x61)).unwrap();
    assert_eq!(
        entry.child(Tag::new(0x4f)).unwrap().bytes().unwrap(),
        hex("A000000333010101")
    );
    assert_eq!(
        entry.child(Tag::new(0x87)).unwrap().bytes().unwrap(),
        [0x01]
    );
    assert!(t.find(Tag::new(0xbf0c)).is_some());
}

#[test]
fn adf_fci_has_pdol_and_log_entries() {
    let mut c = TestCard::new("zhangsan");
    let fci = c.select_adf();
    assert_eq!(find(&fci, 0x84).unwrap(), hex("A000000333010101"));
    assert_eq!(find(&fci, 0x50).unwrap(), b"PBOC DEBIT");
    assert_eq!(
        find(&fci, 0x9f38).unwrap(),
        hex("9F6604 9F0206 9F0306 9F1A02 9505 5F2A02 9A03 9C01 9F3704 9F7A01 DF6901")
    );
    assert_eq!(find(&fci, 0x9f4d).unwrap(), hex("0B0A"));
    assert_eq!(find(&fci, 0xdf4d).unwrap(), hex("0C0A"));
    assert_eq!(find(&fci, 0x5f2d).unwrap(), b"zhen");
    // Selecting by the RID alone finds it too (partial name).
    assert_eq!(c.sendh("00A4040005A000000333 00").1, 0x9000);
    // P2=0C: no FCI.
    let (data, sw) = c.sendh("00A4040C08A000000333010101");
    assert_eq!((data.len(), sw), (0, 0x9000));
}

#[test]
fn gpo_gives_the_ec_afl_only_to_ec_transactions() {
    let mut c = TestCard::new("zhangsan");
    // EC: 9F7A=01, CNY, within balance and single limit.
    let (aip, afl) = contact_gpo(&mut c, &Terms::contact(1234));
    assert_eq!(aip, [0x3d, 0x00]);
    assert_eq!(afl, hex("08010100 10010202 18010200 20010100"));
    // Not EC: terminal does not support EC.
    let mut t = Terms::contact(1234);
    t.ec_indicator = 0;
    let (_, afl) = contact_gpo(&mut c, &t);
    assert_eq!(afl, hex("08010100 10010202 18010200"));
    // Not EC: other currency.
    let mut t = Terms::contact(1234);
    t.currency = [0x08, 0x40];
    assert_eq!(contact_gpo(&mut c, &t).1.len(), 12);
    // Not EC: over the single-transaction limit (500.00) though within... (balance 500.00).
    assert_eq!(contact_gpo(&mut c, &Terms::contact(50_001)).1.len(), 12);
    assert_eq!(contact_gpo(&mut c, &Terms::contact(50_000)).1.len(), 16);
}

#[test]
fn over_the_single_limit_is_not_ec() {
    // 钱七: balance 990.00, single-transaction limit 50.00.
    let mut c = TestCard::new("qianqi-ec");
    assert_eq!(contact_gpo(&mut c, &Terms::contact(5_001)).1.len(), 12);
    let (_, afl) = contact_gpo(&mut c, &Terms::contact(5_000));
    assert_eq!(afl.len(), 16);
}

#[test]
fn records_named_by_the_afl() {
    for name in ["zhangsan", "wangwu-rsa"] {
        let mut c = TestCard::new(name);
        let (aip, afl) = contact_gpo(&mut c, &Terms::contact(100));
        let r = read_afl(&mut c, &afl);
        assert_eq!(r.read, [(1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1)]);
        let pan = c.section().pan.clone();
        assert_eq!(hex::encode_upper(r.get(0x5a).unwrap()), format!("{pan}F"));
        assert!(hex::encode_upper(r.get(0x57).unwrap()).starts_with(&format!("{pan}D")));
        assert_eq!(r.get(0x8c).unwrap().len(), 27, "{name} CDOL1");
        assert_eq!(r.get(0x8d).unwrap(), hex("8A02910A95059F3704"));
        assert_eq!(r.get(0x9f49).unwrap(), hex("9F3704"));
        assert_eq!(r.get(0x9f74).unwrap(), b"ECC001");
        assert_eq!(r.get(0x9f4a).unwrap(), [0x82]);
        // The certificate path checks with the CA key of the profile.
        icc_key(&c, &r, aip);
    }
}

#[test]
fn get_data_of_every_tag() {
    let mut c = TestCard::new("zhangsan");
    c.select_adf();
    assert_eq!(c.get_data(0x9f79), n12(50_000));
    assert_eq!(c.get_data(0x9f77), n12(100_000));
    assert_eq!(c.get_data(0x9f78), n12(50_000));
    assert_eq!(c.get_data(0x9f6d), n12(1_000));
    assert_eq!(c.get_data(0x9f36), [0, 0]);
    assert_eq!(c.get_data(0x9f13), [0, 0]);
    assert_eq!(c.get_data(0x9f17), [3]);
    assert_eq!(
        c.get_data(0x9f4f),
        hex("9A03 9F2103 9F0206 9F0306 9F1A02 5F2A02 9F4E14 9C01 9F3602")
    );
    assert_eq!(c.get_data(0xdf4f), hex("9A03 9F2103 9F1A02 9F4E14 9F3602"));
    // Not available: unknown tags, 9F5D on a card not personalised for it, keys.
    for tag in ["9F5D", "9F52", "9F10", "5A00", "0000"] {
        assert_eq!(c.sendh(&format!("80CA{tag}00")).1, 0x6A88, "{tag}");
    }
    // 9F5D on a card personalised with it.
    let mut c = TestCard::new("lisi");
    c.select_adf();
    assert_eq!(c.get_data(0x9f5d), n12(12_000));
    // GET DATA after GPO shows the new ATC.
    contact_gpo(&mut c, &Terms::contact(1));
    assert_eq!(c.get_data(0x9f36), [0, 1]);
}

#[test]
fn status_words_for_wrong_requests() {
    let mut c = TestCard::new("zhangsan");
    c.select_adf();
    let gpo = Terms::contact(100).gpo_apdu();
    // GPO: wrong P1P2, wrong template, PDOL data of the wrong length, missing data, class.
    let mut bad = gpo.clone();
    bad[2] = 0x01;
    assert_eq!(c.send(&bad).1, 0x6A86);
    let mut bad = gpo.clone();
    bad[5] = 0x84;
    assert_eq!(c.send(&bad).1, 0x6A80);
    assert_eq!(c.sendh("80A8000004830200 0000").1, 0x6700);
    assert_eq!(c.sendh("80A8000000").1, 0x6700);
    let mut bad = gpo.clone();
    bad[0] = 0x00;
    assert_eq!(c.send(&bad).1, 0x6E00);
    // GENERATE AC before GPO; EXTERNAL AUTHENTICATE before an ARQC; scripts before a
    // transaction.
    assert_eq!(
        c.send(&gen_ac(0x40, &Terms::contact(100).cdol1_data())).1,
        0x6985
    );
    assert_eq!(c.sendh("008200000A 00112233445566773030").1, 0x6985);
    assert_eq!(c.sendh("04DA9F790A 000000001000 01020304").1, 0x6985);
    // GET DATA with data; READ RECORD wrong mode, record 0 on a normal file, no such file.
    assert_eq!(c.sendh("80CA9F7901 00 00").1, 0x6700);
    assert_eq!(c.sendh("00B2011000").1, 0x6A86);
    assert_eq!(c.sendh("00B2001400").1, 0x6A86);
    assert_eq!(c.sendh("00B2017C00").1, 0x6A82);
    assert_eq!(c.sendh("00B2035C00").1, 0x6A83, "empty log");
    // VERIFY: P2 00 (not used by JR/T 0025), bad block, wrong length.
    assert_eq!(c.sendh("0020000008 2612345FFFFFFFFF").1, 0x6A88);
    assert_eq!(c.sendh("0020008008 1612345FFFFFFFFF").1, 0x6A80);
    assert_eq!(c.sendh("0020008004 26123456").1, 0x6700);
    // INTERNAL AUTHENTICATE with other than the DDOL data.
    assert_eq!(c.sendh("0088000002 1122 00").1, 0x6700);
    assert_eq!(c.sendh("0088010004 11223344 00").1, 0x6A86);
    // Unknown instruction in the application.
    assert_eq!(c.sendh("80EE000000").1, 0x6D00);
    // Now a GPO (its answer comes whatever Le says), then a second GPO in the same selection.
    let mut odd_le = gpo.clone();
    *odd_le.last_mut().unwrap() = 0x05;
    let (data, sw) = c.send(&odd_le);
    assert_eq!((data.len(), sw), (20, 0x9000));
    assert_eq!(c.send(&gpo).1, 0x6985);
    // GENERATE AC: reserved P1 bits, 11, P2, wrong CDOL1 length.
    let cdol1 = Terms::contact(100).cdol1_data();
    assert_eq!(c.send(&gen_ac(0xc0, &cdol1)).1, 0x6A86);
    assert_eq!(c.send(&gen_ac(0x41, &cdol1)).1, 0x6A86);
    let mut bad = gen_ac(0x40, &cdol1);
    bad[3] = 1;
    assert_eq!(c.send(&bad).1, 0x6A86);
    assert_eq!(c.send(&gen_ac(0x40, &cdol1[..51])).1, 0x6700);
}

#[test]
fn sm_only_card_refuses_contactless_terminals_without_sm() {
    let mut c = TestCard::new("zhangsan");
    c.select_adf();
    let mut t = Terms::qpboc(100);
    t.sm_indicator = 0;
    assert_eq!(c.send(&t.gpo_apdu()).1, 0x6985);
    assert_eq!(c.atc(), 0, "the ATC does not move");
    // Contact: DF69 = 00 is ignored by an SM-only card (JR/T 0025.17 §10.3.3 a)).
    let mut t = Terms::contact(100);
    t.sm_indicator = 0;
    assert_eq!(c.send(&t.gpo_apdu()).1, 0x9000);
    // The international card ignores DF69 everywhere.
    let mut c = TestCard::new("wangwu-rsa");
    c.select_adf();
    let mut t = Terms::qpboc(100);
    t.sm_indicator = 0;
    assert_eq!(c.send(&t.gpo_apdu()).1, 0x9000);
}

#[test]
fn atc_at_its_limit_locks_the_application() {
    let mut p = pboc_support::profile("zhangsan");
    p.pboc.as_mut().unwrap().atc = 65_534;
    let mut c = TestCard::from_profile(p);
    c.select_adf();
    // The GPO that would reach 65535 locks the application for good.
    assert_eq!(c.send(&Terms::contact(100).gpo_apdu()).1, 0x6985);
    assert_eq!(c.atc(), 65_535);
    assert!(c.committed().locked);
    c.power_cycle();
    let (_, sw) = c.sendh("00A4040008A000000333010101 00");
    assert_eq!(sw, 0x6283, "selected application invalidated");
    assert_eq!(c.send(&Terms::contact(100).gpo_apdu()).1, 0x6985);
    assert_eq!(c.send(&Terms::qpboc(100).gpo_apdu()).1, 0x6985);
    assert_eq!(c.atc(), 65_535);

    let mut p = pboc_support::profile("zhangsan");
    p.pboc.as_mut().unwrap().atc = 65_535;
    let mut c = TestCard::from_profile(p);
    c.sendh("00A4040008A000000333010101 00");
    assert_eq!(c.send(&Terms::contact(100).gpo_apdu()).1, 0x6985);
}

#[test]
fn the_other_applications_still_work() {
    let mut c = TestCard::new("zhangsan");
    c.select_adf();
    // Back to the social-security application: its VERIFY and records.
    assert_eq!(
        c.sendh("00A404000F 7378312E73682EC9E7BBE1B1A3D5CF 00").1,
        0x9000
    );
    assert_eq!(c.sendh("0020000003123456").1, 0x9000);
    assert_eq!(c.sendh("00B2012C00").1, 0x9000);
    // GET DATA is not an SSSE command.
    assert_eq!(c.sendh("80CA9F7900").1, 0x6D00);
}

#[test]
fn debug_output_hides_keys_and_the_pin() {
    let c = TestCard::new("wangwu-rsa");
    let text = format!("{:?}", c.card.image());
    let [ac, smi, smc] = c.section().card_keys().unwrap();
    for key in [ac, smi, smc] {
        let bytes = key.expose_bytes();
        let as_debug = format!("{:?}", bytes.as_slice());
        assert!(!text.contains(&as_debug), "a card key in Debug");
    }
    let p = &c.section().oda.icc_rsa.as_ref().unwrap().p;
    let first = u8::from_str_radix(&p[..2], 16).unwrap();
    let second = u8::from_str_radix(&p[2..4], 16).unwrap();
    assert!(
        !text.contains(&format!("p: [{first}, {second}")),
        "an RSA prime in Debug"
    );
    assert!(text.contains("PbocKeys"));
    assert!(!text.contains("digits"), "the offline PIN in Debug");
}

#[test]
fn t0_card_hands_answers_through_get_response() {
    let mut p = pboc_support::profile("lisi");
    p.behaviour.t0_get_response = true;
    let mut c = TestCard::from_profile(p);
    let (_, sw) = c.sendh("00A4040008A000000333010101 00");
    assert_eq!(sw >> 8, 0x61, "FCI waits for GET RESPONSE");
    c.ok(&hex(&format!("00C00000{:02X}", sw & 0xff)));
    // GPO without Le (T=0 case 4): 61xx, then the data.
    let mut gpo = Terms::contact(100).gpo_apdu();
    gpo.pop();
    let (_, sw) = c.send(&gpo);
    assert_eq!(sw, 0x6114);
    let data = c.ok(&hex("00C0000014"));
    assert_eq!(&data[..2], &[0x80, 0x12]);
    // GET DATA with Le=00: 6C with the length, then the exact Le.
    assert_eq!(c.sendh("80CA9F7900").1, 0x6C09);
    assert_eq!(c.sendh("80CA9F7909").0, hex("9F7906 000000012000"));
}
