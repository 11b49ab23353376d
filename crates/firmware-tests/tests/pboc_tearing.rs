//! Tearing (JR/T 0025.12 §7.4.1; JR/T 0025.5 §18.1; JR/T 0025.13 §5.8): each flow is run once
//! to count its commits, then once per commit with that commit torn; after the tear the card
//! is power-cycled and must be consistent: the debit (or load) happened completely (balance,
//! log record with its ATC) or not at all, never a mix; the ATC never goes back and moves by
//! one per GPO that reached its commit. The card then still works.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use pboc_support::*;

/// Run `flow` on a fresh card, tearing commit `tear` (0: none); stop at the first error.
/// Returns the card and the number of commits the flow made.
fn run(
    name: &str,
    tear: u64,
    flow: &dyn Fn(&mut TestCard) -> Result<(), u16>,
) -> (TestCard, u64, Result<(), u16>) {
    let mut c = TestCard::new(name);
    if tear > 0 {
        c.tear_at(tear);
    }
    let start = c.commits();
    let result = flow(&mut c);
    let commits = c.commits() - start;
    (c, commits, result)
}

fn step(c: &mut TestCard, apdu: &[u8]) -> Result<Vec<u8>, u16> {
    let (data, sw) = c.send(apdu);
    if sw == 0x9000 { Ok(data) } else { Err(sw) }
}

/// What the terminal sees after re-inserting the card.
struct Seen {
    balance: u64,
    atc: u16,
    log: Vec<Vec<u8>>,
    load_log: Vec<Vec<u8>>,
}

fn look(c: &mut TestCard) -> Seen {
    c.power_cycle();
    let (_, sw) = c.sendh("00A4040008A000000333010101 00");
    assert_eq!(sw, 0x9000, "selection after the tear");
    Seen {
        balance: c.balance(),
        atc: c.atc(),
        log: c.read_log(11),
        load_log: c.read_log(12),
    }
}

/// Debit consistency: all of (balance, log record with amount and ATC) or none of it.
fn assert_debit_consistent(seen: &Seen, before: u64, amount: u64, tear: u64) -> bool {
    assert!(seen.atc <= 1, "tear {tear}: one GPO at most");
    let debited = seen.balance == before - amount;
    if debited {
        assert_eq!(
            seen.log.len(),
            1,
            "tear {tear}: debit without its log record"
        );
        let rec = &seen.log[0];
        assert_eq!(bcd(&rec[6..12]), amount, "tear {tear}: log amount");
        assert_eq!(
            u16::from_be_bytes([rec[43], rec[44]]),
            seen.atc,
            "tear {tear}: log ATC is the card's"
        );
        assert_eq!(seen.atc, 1, "tear {tear}: a debit has its GPO");
    } else {
        assert_eq!(
            seen.balance, before,
            "tear {tear}: balance neither old nor new"
        );
        assert!(
            seen.log.is_empty(),
            "tear {tear}: log record without the debit"
        );
    }
    debited
}

fn contact_purchase(amount: u64) -> impl Fn(&mut TestCard) -> Result<(), u16> {
    move |c: &mut TestCard| {
        let terms = Terms::contact(amount);
        step(c, &hex("00A4040008A000000333010101 00"))?;
        step(c, &terms.gpo_apdu())?;
        let pin = c.profile.pin.value.clone();
        step(c, &verify_apdu(&pin))?;
        let r = AcResponse::parse(&step(c, &gen_ac(0x50, &terms.cdol1_data()))?);
        assert_eq!(r.cid, 0x40);
        Ok(())
    }
}

#[test]
fn contact_purchase_torn_at_every_commit() {
    for name in ["zhangsan", "wangwu-rsa"] {
        let before = TestCard::new(name)
            .section()
            .ec
            .as_ref()
            .unwrap()
            .balance_fen;
        let flow = contact_purchase(1_500);
        let (mut c, commits, result) = run(name, 0, &flow);
        result.unwrap();
        // GPO (ATC), VERIFY (counter down, back up), GENERATE AC (balance, log): one commit
        // per debit.
        assert_eq!(commits, 4, "{name}");
        assert!(assert_debit_consistent(&look(&mut c), before, 1_500, 0));
        let mut outcomes = Vec::new();
        for tear in 1..=commits {
            let (mut c, _, result) = run(name, tear, &flow);
            assert_eq!(
                result,
                Err(0x6581),
                "{name} tear {tear}: memory failure answered"
            );
            let seen = look(&mut c);
            outcomes.push(assert_debit_consistent(&seen, before, 1_500, tear));
            // The card still works: buy again.
            let atc = seen.atc;
            flow(&mut c).unwrap();
            let again = look(&mut c);
            assert_eq!(again.atc, atc + 1);
            assert_eq!(again.balance, seen.balance - 1_500);
            assert_eq!(again.log.len(), seen.log.len() + 1);
        }
        assert_eq!(
            outcomes,
            [false, false, false, false],
            "{name}: a tear at the debit commit loses the debit"
        );
    }
}

fn qpboc_purchase(amount: u64) -> impl Fn(&mut TestCard) -> Result<(), u16> {
    move |c: &mut TestCard| {
        let terms = Terms::qpboc(amount);
        step(c, &hex("00A4040008A000000333010101 00"))?;
        let data = step(c, &terms.gpo_apdu())?;
        let afl = find(&data, 0x94).unwrap();
        for entry in afl.chunks(4) {
            for n in entry[1]..=entry[2] {
                step(c, &[0x00, 0xb2, n, entry[0] | 4, 0x00])?;
            }
        }
        Ok(())
    }
}

#[test]
fn qpboc_purchase_torn_at_every_commit() {
    let before = 50_000;
    let flow = qpboc_purchase(2_000);
    let (mut c, commits, result) = run("zhangsan", 0, &flow);
    result.unwrap();
    // GPO (ATC, balance, log, tear guard in one commit), last READ RECORD (guard off).
    assert_eq!(commits, 2);
    assert!(assert_debit_consistent(&look(&mut c), before, 2_000, 0));
    // Torn at GPO: nothing happened, not even the ATC.
    let (mut c, _, result) = run("zhangsan", 1, &flow);
    assert_eq!(result, Err(0x6581));
    let seen = look(&mut c);
    assert!(!assert_debit_consistent(&seen, before, 2_000, 1));
    assert_eq!(seen.atc, 0);
    // Torn when the last record is read: at the next selection the card undoes the debit
    // (the terminal never got the last record), in one commit; the ATC stays.
    let (mut c, _, result) = run("zhangsan", 2, &flow);
    assert_eq!(result, Err(0x6581));
    assert!(c.committed().tear.is_some(), "debit committed, guarded");
    let seen = look(&mut c);
    assert!(!assert_debit_consistent(&seen, before, 2_000, 2));
    assert_eq!(seen.atc, 1);
    assert!(c.committed().tear.is_none());
    // And it works again.
    flow(&mut c).unwrap();
    let again = look(&mut c);
    assert_eq!(
        (again.balance, again.atc, again.log.len()),
        (before - 2_000, 2, 1)
    );
}

#[test]
fn qpboc_card_pulled_before_the_last_record() {
    let mut c = TestCard::new("lisi");
    let terms = Terms::qpboc(1_000);
    c.select_adf();
    let data = c.ok(&terms.gpo_apdu());
    assert!(find(&data, 0x94).is_some());
    c.ok(&hex("00B2011400"));
    // Pulled. The debit is committed but guarded; selecting undoes it. Tear that undo too.
    let start = c.commits();
    c.tear_at(1);
    c.power_cycle();
    let (_, sw) = c.sendh("00A4040008A000000333010101 00");
    assert_eq!(sw, 0x6581, "the undo was torn");
    assert_eq!(c.commits() - start, 1);
    let seen = look(&mut c);
    assert!(!assert_debit_consistent(&seen, 12_000, 1_000, 3));
    assert_eq!(seen.atc, 1);
    // Reading the last record again does not resurrect anything.
    assert_eq!(c.read_log(11).len(), 0);
}

fn load_flow(topup: u64) -> impl Fn(&mut TestCard) -> Result<(), u16> {
    move |c: &mut TestCard| {
        let (mk_ac, mk_smi) = c.issuer_keys();
        let mut terms = Terms::contact(0);
        terms.ec_indicator = 0;
        terms.txn_type = 0x60;
        step(c, &hex("00A4040008A000000333010101 00"))?;
        step(c, &terms.gpo_apdu())?;
        let r = AcResponse::parse(&step(c, &gen_ac(0x80, &terms.cdol1_data()))?);
        let arqc = r.ac.unwrap();
        let mut auth = arpc(&mk_ac, r.atc, &arqc, b"00").to_vec();
        auth.extend(b"00");
        step(
            c,
            &gen_ac(
                0x40,
                &cdol2_data(b"00", &auth.try_into().unwrap(), [0; 5], [0; 4]),
            ),
        )?;
        let before = c.committed().ec.unwrap().balance;
        let apdu = script(
            &mk_smi,
            r.atc,
            &arqc,
            [0x04, 0xda, 0x9f, 0x79],
            &n12(before + topup),
        );
        step(c, &apdu)?;
        Ok(())
    }
}

#[test]
fn load_torn_at_every_commit() {
    let before = 99_000;
    let flow = load_flow(500);
    let (mut c, commits, result) = run("qianqi-ec", 0, &flow);
    result.unwrap();
    // GPO, first GENERATE AC (online indicator), second GENERATE AC (indicators, last online
    // ATC, transaction log), PUT DATA (balance, load log, script counter).
    assert_eq!(commits, 4);
    let seen = look(&mut c);
    assert_eq!((seen.balance, seen.load_log.len()), (before + 500, 1));
    for tear in 1..=commits {
        let (mut c, _, result) = run("qianqi-ec", tear, &flow);
        assert_eq!(result, Err(0x6581), "tear {tear}");
        let seen = look(&mut c);
        let loaded = seen.balance == before + 500;
        if loaded {
            assert_eq!(seen.load_log.len(), 1, "tear {tear}");
            assert_eq!(bcd(&seen.load_log[0][8..14]), seen.balance);
        } else {
            assert_eq!(seen.balance, before, "tear {tear}");
            assert!(
                seen.load_log.is_empty(),
                "tear {tear}: load log without the load"
            );
        }
        assert!(!loaded, "tear {tear}: the last commit is the load");
        // The transaction log: the online TC is logged with the second GENERATE AC, together
        // with its indicators.
        let state = c.committed();
        assert_eq!(
            seen.log.len() == 1,
            state.last_online_atc == 1,
            "tear {tear}"
        );
        // And a load works afterwards.
        flow(&mut c).unwrap();
        let again = look(&mut c);
        assert_eq!(again.balance, before + 500);
        assert_eq!(again.load_log.len(), 1);
    }
}
