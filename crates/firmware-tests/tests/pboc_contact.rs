//! Contact transactions end to end, driven with raw APDUs and checked from the terminal's and
//! the issuer's side: an EC purchase with DDA and CDA (SM2 and RSA), cryptograms and the
//! balance MAC, the transaction log, online authorisation with issuer authentication,
//! offline PIN, and the limits on GENERATE AC.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use pboc_support::*;

/// A whole EC purchase; `cda` asks for CDA in GENERATE AC.
fn ec_purchase(name: &str, amount: u64, cda: bool) {
    let mut c = TestCard::new(name);
    let (mk_ac, mk_smi) = c.issuer_keys();
    c.select_adf();
    let before = c.balance();
    let atc_before = c.atc();
    let terms = Terms::contact(amount);
    let (aip, afl) = contact_gpo(&mut c, &terms);
    assert_eq!(afl.len(), 16, "EC AFL");
    let records = read_afl(&mut c, &afl);
    assert!(
        records.get(0x9f74).is_some(),
        "EC issuer authorisation code"
    );
    let key = icc_key(&c, &records, aip);
    // DDA (INTERNAL AUTHENTICATE over the DDOL data): format 1, tag 80.
    let un = [0xde, 0xad, 0xbe, 0xef];
    let mut ia = hex("0088000004");
    ia.extend(un);
    ia.push(0);
    let answer = c.ok(&ia);
    let sdad = find(&answer, 0x80).unwrap();
    let dynamic = check_dynamic(&key, &sdad, &un);
    assert_eq!(dynamic[0], 8, "8-byte ICC dynamic number");
    // Offline PIN, then the balance as the terminal reads it for EC.
    c.ok(&verify_apdu(&c.profile.pin.value.clone()));
    assert_eq!(c.balance(), before);
    // GENERATE AC asking for TC (with or without CDA).
    let cdol1 = terms.cdol1_data();
    let answer = c.ok(&gen_ac(if cda { 0x50 } else { 0x40 }, &cdol1));
    let r = AcResponse::parse(&answer);
    assert_eq!(r.cid, 0x40, "TC");
    assert_eq!(r.atc, atc_before + 1);
    let ac = if cda {
        assert!(
            r.ac.is_none() && r.sdad.is_some(),
            "format 2 with the signature"
        );
        let mut parts: Vec<&[u8]> = Vec::new();
        let pdol = terms.pdol_data();
        parts.push(&pdol);
        parts.push(&cdol1);
        parts.extend(r.hashed_tlvs.iter().map(Vec::as_slice));
        check_cda(&key, r.sdad.as_ref().unwrap(), terms.un, r.cid, &parts)
    } else {
        r.ac.unwrap()
    };
    // The issuer recomputes the TC.
    let cvr = r.cvr();
    assert_eq!(cvr[0], 0x03);
    assert_eq!(
        cvr[1],
        0x80 | 0x10 | 0x04,
        "2nd not requested, 1st TC, PIN performed"
    );
    assert_eq!(
        cvr[3] & 0x02,
        0x02,
        "DDA performed (INTERNAL AUTHENTICATE, and CDA)"
    );
    let data = ac_data(&terms.ac_terminal_data(), aip, r.atc, cvr);
    assert_eq!(ac, expected_ac(&mk_ac, r.atc, &data), "TC");
    // IAD: 07 DKI CVN CVR alg, then the IDD with the new balance under the MAC.
    assert_eq!(&r.iad[..3], &[0x07, 0x01, 0x01]);
    let alg = if c.algorithm() == firmware_tests::pboc::Algorithm::Sm {
        0x04
    } else {
        0x01
    };
    assert_eq!(r.iad[7], alg, "algorithm identifier");
    assert_eq!(idd_balance(&r.iad, &mk_smi, r.atc), before - amount);
    // Balance, ATC and log as the terminal reads them afterwards.
    assert_eq!(c.balance(), before - amount);
    assert_eq!(c.atc(), atc_before + 1);
    let log = c.read_log(11);
    assert_eq!(log.len(), 1);
    let rec = &log[0];
    assert_eq!(rec.len(), 45);
    assert_eq!(&rec[0..3], &terms.date);
    assert_eq!(&rec[3..6], &terms.time);
    assert_eq!(bcd(&rec[6..12]), amount);
    assert_eq!(bcd(&rec[12..18]), 0);
    assert_eq!(&rec[18..20], &terms.country);
    assert_eq!(&rec[20..22], &terms.currency);
    assert_eq!(&rec[22..42], &terms.merchant);
    assert_eq!(rec[42], terms.txn_type);
    assert_eq!(u16::from_be_bytes([rec[43], rec[44]]), atc_before + 1);
    // The load log is untouched.
    assert!(c.read_log(12).is_empty());
    // A third... a second GENERATE AC after a TC: the transaction is over.
    assert_eq!(
        c.send(&gen_ac(
            0x40,
            &cdol2_data(b"00", &[0; 10], [0; 5], terms.un)
        ))
        .1,
        0x6985
    );
}

#[test]
fn ec_purchase_sm_with_cda() {
    ec_purchase("zhangsan", 1_234, true);
}

#[test]
fn ec_purchase_sm_without_cda() {
    ec_purchase("lisi", 11_999, false);
}

#[test]
fn ec_purchase_international_with_cda() {
    ec_purchase("wangwu-rsa", 25_000, true);
}

#[test]
fn ec_purchase_international_without_cda() {
    ec_purchase("wangwu-rsa", 1, false);
}

#[test]
fn ec_needs_the_same_amount_and_currency_as_gpo() {
    let mut c = TestCard::new("zhangsan");
    let terms = Terms::contact(1_000);
    contact_gpo(&mut c, &terms);
    let mut other = terms.clone();
    other.amount = 999;
    let r = AcResponse::parse(&c.ok(&gen_ac(0x40, &other.cdol1_data())));
    assert_eq!(r.cid, 0x00, "AAC");
    assert_eq!(c.balance(), 50_000);
    assert!(c.read_log(11).is_empty());
}

#[test]
fn terminal_declines_and_dda_failure_is_remembered() {
    let mut c = TestCard::new("zhangsan");
    let mut terms = Terms::contact(100);
    terms.tvr = [0x08, 0, 0, 0, 0]; // DDA failed
    contact_gpo(&mut c, &terms);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x00, &terms.cdol1_data())));
    assert_eq!(r.cid, 0x00);
    assert!(c.committed().indicators.dda_failed);
    // The next transaction reports it in the CVR (JR/T 0025.5 §14.4.3.4).
    let terms = Terms::contact(100);
    contact_gpo(&mut c, &terms);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x40, &terms.cdol1_data())));
    assert_eq!(r.cvr()[3] & 0x04, 0x04, "last DDA failed");
}

/// An online purchase (not EC): ARQC, issuer authentication, TC.
fn online(name: &str, by_external_authenticate: bool) {
    let mut c = TestCard::new(name);
    let (mk_ac, _) = c.issuer_keys();
    let mut terms = Terms::contact(200_000);
    terms.ec_indicator = 0;
    let (aip, afl) = contact_gpo(&mut c, &terms);
    assert_eq!(afl.len(), 12, "not EC");
    let r = AcResponse::parse(&c.ok(&gen_ac(0x80, &terms.cdol1_data())));
    assert_eq!(r.cid, 0x80, "ARQC");
    let arqc = r.ac.unwrap();
    let cvr = r.cvr();
    assert_eq!(cvr[1], 0x80 | 0x20);
    assert_eq!(cvr[2] & 0x10, 0x10, "new card");
    assert_eq!(
        arqc,
        expected_ac(
            &mk_ac,
            r.atc,
            &ac_data(&terms.ac_terminal_data(), aip, r.atc, cvr)
        )
    );
    assert!(c.committed().indicators.online_auth_pending);
    // The issuer approves.
    let arc = *b"00";
    let arpc = arpc(&mk_ac, r.atc, &arqc, &arc);
    let mut auth = [0u8; 10];
    auth[..8].copy_from_slice(&arpc);
    auth[8..].copy_from_slice(&arc);
    let cdol2 = if by_external_authenticate {
        let mut ea = hex("008200000A");
        ea.extend(auth);
        c.ok(&ea);
        assert_eq!(
            c.send(&ea).1,
            0x6985,
            "one EXTERNAL AUTHENTICATE per transaction"
        );
        // That second one counts as a failure of issuer authentication (§15.4.3 step 1)...
        assert!(c.committed().indicators.issuer_auth_failed);
        cdol2_data(&arc, &[0; 10], [0; 5], [9, 9, 9, 9])
    } else {
        cdol2_data(&arc, &auth, [0; 5], [9, 9, 9, 9])
    };
    let r2 = AcResponse::parse(&c.ok(&gen_ac(0x40, &cdol2)));
    assert_eq!(r2.cid, 0x40, "TC");
    assert_eq!(r2.atc, r.atc);
    let cvr2 = r2.cvr();
    assert_eq!(cvr2[1] & 0xf0, 0x40 | 0x20, "2nd TC, 1st ARQC");
    // The TC covers CDOL2's TVR and unpredictable number.
    let mut terminal = terms.ac_terminal_data();
    terminal[25..29].copy_from_slice(&[9, 9, 9, 9]);
    assert_eq!(
        r2.ac.unwrap(),
        expected_ac(&mk_ac, r2.atc, &ac_data(&terminal, aip, r2.atc, cvr2))
    );
    let state = c.committed();
    assert!(!state.indicators.online_auth_pending);
    // Issuer authentication of this transaction succeeded: counters reset, last online ATC
    // (§16.6.2.1 step 3 b)); the indicator keeps the second EXTERNAL AUTHENTICATE's failure.
    assert_eq!(
        state.indicators.issuer_auth_failed,
        by_external_authenticate
    );
    assert_eq!(state.last_online_atc, r.atc);
    assert_eq!(c.get_data(0x9f13), r.atc.to_be_bytes());
    let ec = c.section().ec.as_ref().unwrap().balance_fen;
    assert_eq!(c.balance(), ec, "online transactions leave EC alone");
    assert_eq!(
        c.read_log(11).len(),
        1,
        "the approved online transaction is logged"
    );
    assert_eq!(
        c.send(&gen_ac(0x40, &cdol2)).1,
        0x6985,
        "no third GENERATE AC"
    );
}

#[test]
fn online_with_issuer_authentication_data_in_cdol2() {
    online("zhangsan", false);
    online("wangwu-rsa", false);
}

#[test]
fn online_with_external_authenticate() {
    online("zhangsan", true);
}

#[test]
fn wrong_arpc_fails_issuer_authentication() {
    let mut c = TestCard::new("zhangsan");
    let mut terms = Terms::contact(100);
    terms.ec_indicator = 0;
    contact_gpo(&mut c, &terms);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x80, &terms.cdol1_data())));
    assert_eq!(r.cid, 0x80);
    assert_eq!(c.sendh("008200000A 0102030405060708 3030").1, 0x6300);
    assert!(c.committed().indicators.issuer_auth_failed);
    let r2 = AcResponse::parse(&c.ok(&gen_ac(0x40, &cdol2_data(b"00", &[0; 10], [0; 5], [0; 4]))));
    assert_eq!(r2.cvr()[1] & 0x08, 0x08, "issuer authentication failed");
    // Scripts are refused after a failed issuer authentication.
    assert_eq!(c.sendh("04DA9F790A 000000001000 01020304").1, 0x6985);
    // The next transaction is not EC (JR/T 0025.13 §7.4.2) and reports the failure.
    let terms = Terms::contact(100);
    let (_, afl) = contact_gpo(&mut c, &terms);
    assert_eq!(afl.len(), 12);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x40, &terms.cdol1_data())));
    assert_eq!(
        r.cvr()[2] & 0x08,
        0x08,
        "last online issuer authentication failed"
    );
}

#[test]
fn unable_to_go_online() {
    let mut c = TestCard::new("lisi");
    let mut terms = Terms::contact(100);
    terms.ec_indicator = 0;
    contact_gpo(&mut c, &terms);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x80, &terms.cdol1_data())));
    assert_eq!(r.cid, 0x80);
    let r2 = AcResponse::parse(&c.ok(&gen_ac(0x40, &cdol2_data(b"Y3", &[0; 10], [0; 5], [0; 4]))));
    assert_eq!(r2.cid, 0x40);
    assert_eq!(r2.cvr()[1] & 0x01, 0x01, "unable to go online");
    // The online authorisation stays pending: the next transaction goes online.
    assert!(c.committed().indicators.online_auth_pending);
    let terms = Terms::contact(100);
    let mut t2 = terms.clone();
    t2.ec_indicator = 0;
    contact_gpo(&mut c, &t2);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x40, &t2.cdol1_data())));
    assert_eq!(r.cid, 0x80, "the card asks to go online");
    assert_eq!(
        r.cvr()[2] & 0x80,
        0x80,
        "last online transaction not completed"
    );
    // Z3: the terminal declines, so does the card.
    let r2 = AcResponse::parse(&c.ok(&gen_ac(0x40, &cdol2_data(b"Z3", &[0; 10], [0; 5], [0; 4]))));
    assert_eq!(
        r2.cid, 0x40,
        "Z3 with TC asked: the card's own checks decide"
    );
}

#[test]
fn at_most_two_generate_ac() {
    let mut c = TestCard::new("zhangsan");
    let mut terms = Terms::contact(100);
    terms.ec_indicator = 0;
    contact_gpo(&mut c, &terms);
    c.ok(&gen_ac(0x80, &terms.cdol1_data()));
    let cdol2 = cdol2_data(b"Z1", &[0; 10], [0; 5], [0; 4]);
    let r2 = AcResponse::parse(&c.ok(&gen_ac(0x00, &cdol2)));
    assert_eq!(r2.cid, 0x00);
    assert_eq!(c.send(&gen_ac(0x00, &cdol2)).1, 0x6985);
    assert_eq!(c.send(&gen_ac(0x40, &terms.cdol1_data())).1, 0x6985);
    // Second GENERATE AC asking for an ARQC, and with a wrong CDOL2 length.
    contact_gpo(&mut c, &terms);
    c.ok(&gen_ac(0x80, &terms.cdol1_data()));
    assert_eq!(c.send(&gen_ac(0x80, &cdol2)).1, 0x6985);
    assert_eq!(c.send(&gen_ac(0x40, &cdol2[..20])).1, 0x6700);
    // A new selection ends the transaction.
    c.select_adf();
    assert_eq!(c.send(&gen_ac(0x40, &cdol2)).1, 0x6985);
}

#[test]
fn offline_pin_wrong_right_blocked() {
    let mut c = TestCard::new("zhangsan");
    let terms = Terms::contact(100);
    contact_gpo(&mut c, &terms);
    assert_eq!(c.send(&verify_apdu("000000")).1, 0x63C2);
    assert_eq!(c.get_data(0x9f17), [2]);
    assert_eq!(c.send(&verify_apdu("1234")).1, 0x63C1);
    assert_eq!(c.send(&verify_apdu("123456")).1, 0x9000);
    assert_eq!(c.get_data(0x9f17), [3], "a right PIN resets the counter");
    // The counter survives power loss.
    assert_eq!(c.send(&verify_apdu("111111")).1, 0x63C2);
    c.power_cycle();
    c.select_adf();
    assert_eq!(c.get_data(0x9f17), [2]);
    assert_eq!(c.send(&verify_apdu("111111")).1, 0x63C1);
    assert_eq!(c.send(&verify_apdu("111111")).1, 0x63C0);
    // Blocked in this transaction: 6983, right PIN or not.
    assert_eq!(c.send(&verify_apdu("123456")).1, 0x6983);
    assert_eq!(c.get_data(0x9f17), [0]);
    // Next transaction: the first VERIFY says 6984, later ones 6983.
    c.power_cycle();
    contact_gpo(&mut c, &terms);
    assert_eq!(c.send(&verify_apdu("123456")).1, 0x6984);
    assert_eq!(c.send(&verify_apdu("123456")).1, 0x6983);
    // A blocked PIN takes electronic cash away (JR/T 0025.13 §7.4.2).
    let (_, afl) = contact_gpo(&mut c, &terms);
    assert_eq!(afl.len(), 12);
}

#[test]
fn pin_change_unblock_script_resets_the_counter() {
    let mut p = pboc_support::profile("zhangsan");
    p.pboc.as_mut().unwrap().pin_tries_left = Some(0);
    let mut c = TestCard::from_profile(p);
    let (mk_ac, mk_smi) = c.issuer_keys();
    let mut terms = Terms::contact(0);
    terms.ec_indicator = 0;
    let (_, _) = contact_gpo(&mut c, &terms);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x80, &terms.cdol1_data())));
    assert_eq!(r.cvr()[2] & 0x40, 0x40, "PIN try limit exceeded");
    let arqc = r.ac.unwrap();
    let mut auth = arpc(&mk_ac, r.atc, &arqc, b"00").to_vec();
    auth.extend(b"00");
    c.ok(&gen_ac(
        0x40,
        &cdol2_data(b"00", &auth.try_into().unwrap(), [0; 5], [0; 4]),
    ));
    c.ok(&script(
        &mk_smi,
        r.atc,
        &arqc,
        [0x84, 0x24, 0x00, 0x00],
        &[],
    ));
    assert_eq!(c.get_data(0x9f17), [3]);
    assert_eq!(c.committed().indicators.script_count, 1);
}

/// CDA on both GENERATE AC of an online transaction: ARQC, then TC (JR/T 0025.17 §5.2.5.1,
/// JR/T 0025.7 §5.3.6.1: the second hash also covers the CDOL2 data).
fn cda_online(name: &str) {
    let mut c = TestCard::new(name);
    let (mk_ac, _) = c.issuer_keys();
    let mut terms = Terms::contact(300);
    terms.ec_indicator = 0;
    let (aip, afl) = contact_gpo(&mut c, &terms);
    let records = read_afl(&mut c, &afl);
    let key = icc_key(&c, &records, aip);
    let pdol = terms.pdol_data();
    let cdol1 = terms.cdol1_data();
    let r = AcResponse::parse(&c.ok(&gen_ac(0x90, &cdol1)));
    assert_eq!(r.cid, 0x80);
    let mut parts: Vec<&[u8]> = vec![&pdol, &cdol1];
    parts.extend(r.hashed_tlvs.iter().map(Vec::as_slice));
    let arqc = check_cda(&key, r.sdad.as_ref().unwrap(), terms.un, r.cid, &parts);
    let cvr = r.cvr();
    assert_eq!(cvr[3] & 0x02, 0x02, "DDA performed");
    assert_eq!(
        arqc,
        expected_ac(
            &mk_ac,
            r.atc,
            &ac_data(&terms.ac_terminal_data(), aip, r.atc, cvr)
        )
    );
    let mut auth = arpc(&mk_ac, r.atc, &arqc, b"00").to_vec();
    auth.extend(b"00");
    let un2 = [7, 7, 7, 7];
    let cdol2 = cdol2_data(b"00", &auth.try_into().unwrap(), [0; 5], un2);
    let r2 = AcResponse::parse(&c.ok(&gen_ac(0x50, &cdol2)));
    assert_eq!(r2.cid, 0x40);
    let mut parts: Vec<&[u8]> = vec![&pdol, &cdol1, &cdol2];
    parts.extend(r2.hashed_tlvs.iter().map(Vec::as_slice));
    let tc = check_cda(&key, r2.sdad.as_ref().unwrap(), un2, r2.cid, &parts);
    let mut terminal = terms.ac_terminal_data();
    terminal[25..29].copy_from_slice(&un2);
    assert_eq!(
        tc,
        expected_ac(&mk_ac, r2.atc, &ac_data(&terminal, aip, r2.atc, r2.cvr()))
    );
    // An AAC never carries a signature.
    let mut c = TestCard::new(name);
    contact_gpo(&mut c, &terms);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x10, &cdol1)));
    assert_eq!(r.cid, 0x00);
    assert!(r.sdad.is_none() && r.ac.is_some(), "format 1");
}

#[test]
fn cda_on_both_generate_ac_sm() {
    cda_online("lisi");
}

#[test]
fn cda_on_both_generate_ac_international() {
    cda_online("wangwu-rsa");
}

#[test]
fn over_the_single_limit_the_card_does_plain_debit_credit() {
    // 钱七: single-transaction limit 50.00. Not EC: a TC is an ordinary offline approval
    // (JR/T 0025.5 §14.5.3): logged, EC balance untouched.
    let mut c = TestCard::new("qianqi-ec");
    let (_, mk_smi) = c.issuer_keys();
    let terms = Terms::contact(6_000);
    let (_, afl) = contact_gpo(&mut c, &terms);
    assert_eq!(afl.len(), 12);
    let r = AcResponse::parse(&c.ok(&gen_ac(0x40, &terms.cdol1_data())));
    assert_eq!(r.cid, 0x40);
    assert_eq!(idd_balance(&r.iad, &mk_smi, r.atc), 99_000);
    assert_eq!(c.balance(), 99_000);
    assert_eq!(c.read_log(11).len(), 1);
}
