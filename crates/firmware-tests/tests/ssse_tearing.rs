//! Tearing of the social-security application's writes (issue 9): the cardholder's PIN change
//! and the issuer's cardholder-record update, each cut at every APDU boundary (the card pulled
//! before a command reaches it, or after it ran but before its answer reached the terminal)
//! and at every write inside the card (a commit torn: power lost before it). The terminal is
//! card-core's own flow (`ssse::change_pin`, `ssse::update::update_record`); its verdict is
//! "done", "not done" or "unsure". After each cut the card is power-cycled and checked through
//! its APDUs:
//!
//! - it holds exactly the old or the new value (PIN or record), never a mix or neither;
//! - a "done" verdict means the new value, "not done" the old one; after "unsure",
//!   `record_state` (for a record) tells which, and it agrees with the card;
//! - no cut gives a free PIN try: the counter is never above where it was;
//! - the card still works (the write is done again, or the PIN verifies).
//!
//! The counts of points are asserted, and docs/reliability.md records them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pboc_support;

use card_core::channel::{CardChannel, CardSession, TransportError};
use card_core::crypto::sm4::Sm4Key;
use card_core::secret::Pin;
use card_core::ssse::update::{self, RecordState, SoftwareAuthority, UpdateError};
use card_core::ssse::{self, SFI_EF06, SsseError};
use firmware_tests::SoftCard;
use pboc_support::{TestCard, hex};

/// Where the card is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Not at all.
    None,
    /// Before command `k` (0-based) reaches the card.
    Before(usize),
    /// After command `k` ran on the card, before its answer reached the terminal.
    AnswerLost(usize),
    /// Commit `n` (1-based) inside the card is torn.
    Commit(u64),
}

/// A reader whose card is pulled at a chosen command.
struct Pulling<'a> {
    card: &'a mut SoftCard,
    sent: usize,
    cut: Cut,
    gone: bool,
}

impl CardChannel for Pulling<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.gone {
            return Err(TransportError::NoCard);
        }
        let k = self.sent;
        self.sent += 1;
        if self.cut == Cut::Before(k) {
            self.gone = true;
            return Err(TransportError::CardRemoved);
        }
        let answer = self.card.process(command);
        if self.cut == Cut::AnswerLost(k) {
            self.gone = true;
            return Err(TransportError::CardRemoved);
        }
        Ok(answer)
    }
}

/// What the terminal concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Done,
    NotDone,
    Unsure,
}

/// Run `flow` on `c` with `cut`; returns the verdict and how many commands reached the wire.
fn run<T>(
    c: &mut TestCard,
    cut: Cut,
    flow: impl FnOnce(&mut CardSession<Pulling<'_>>) -> T,
) -> (T, usize) {
    if let Cut::Commit(n) = cut {
        c.tear_at(n);
    }
    c.power_cycle();
    let mut s = CardSession::new(Pulling {
        card: &mut c.card,
        sent: 0,
        cut,
        gone: false,
    });
    let out = flow(&mut s);
    let sent = s.into_channel().sent;
    (out, sent)
}

/// Every cut of a flow that sends `commands` APDUs and makes `commits` commits.
fn cuts(commands: usize, commits: u64) -> Vec<Cut> {
    let mut all = vec![Cut::None];
    all.extend((0..commands).map(Cut::Before));
    all.extend((0..commands).map(Cut::AnswerLost));
    all.extend((1..=commits).map(Cut::Commit));
    all
}

// ---- PIN change ------------------------------------------------------------------------

/// The kiosk's PIN change (terminal-app `session.rs`): select, CHANGE PIN; a failed select is
/// "not done", a failed CHANGE PIN is "unsure" when the card may have run it.
fn change_pin(s: &mut CardSession<Pulling<'_>>, old: &Pin, new: &Pin) -> Verdict {
    if ssse::select(s).is_err() {
        return Verdict::NotDone;
    }
    match ssse::change_pin(s, old, new) {
        Ok(()) => Verdict::Done,
        Err(e) if e.card_may_have_changed() => Verdict::Unsure,
        Err(_) => Verdict::NotDone,
    }
}

/// Tries left, asked without spending one.
fn tries_left(c: &mut TestCard) -> u8 {
    c.power_cycle();
    let mut s = CardSession::new(&mut c.card);
    ssse::select(&mut s).unwrap();
    ssse::pin_tries_left(&mut s).unwrap().unwrap()
}

/// Which PIN the card holds: tries the new one first (a wrong try costs one, which the right
/// PIN then restores). Panics if neither verifies.
fn pin_held(c: &mut TestCard, old: &Pin, new: &Pin) -> bool {
    c.power_cycle();
    let mut s = CardSession::new(&mut c.card);
    ssse::select(&mut s).unwrap();
    match ssse::verify_pin(&mut s, new) {
        Ok(()) => return true,
        Err(SsseError::WrongPin { .. }) => {}
        Err(e) => panic!("VERIFY new: {e}"),
    }
    ssse::verify_pin(&mut s, old).expect("the card holds neither the old nor the new PIN");
    false
}

#[test]
fn pin_change_cut_at_every_apdu_and_every_commit() {
    let old = Pin::new("123456").unwrap();
    let new = Pin::new("246810").unwrap();
    // A clean run: two commands, three commits (count the try, restore it, the new PIN).
    let mut c = TestCard::new("zhangsan");
    let start = c.commits();
    let (verdict, sent) = run(&mut c, Cut::None, |s| change_pin(s, &old, &new));
    assert_eq!(verdict, Verdict::Done);
    assert_eq!((sent, c.commits() - start), (2, 3));
    let max = tries_left(&mut c);

    let mut points = 0;
    let mut seen = std::collections::BTreeMap::new();
    for cut in cuts(2, 3) {
        let mut c = TestCard::new("zhangsan");
        let (verdict, _) = run(&mut c, cut, |s| change_pin(s, &old, &new));
        let tries = tries_left(&mut c);
        assert!(
            tries == max || tries == max - 1,
            "{cut:?}: {tries} tries left of {max}"
        );
        let holds_new = pin_held(&mut c, &old, &new);
        match verdict {
            Verdict::Done => assert!(holds_new, "{cut:?}: done but the card has the old PIN"),
            Verdict::NotDone => assert!(!holds_new, "{cut:?}: not done but the PIN changed"),
            Verdict::Unsure => {}
        }
        // The right PIN restored the counter.
        assert_eq!(tries_left(&mut c), max, "{cut:?}");
        *seen.entry((verdict, holds_new)).or_insert(0) += 1;
        points += 1;
    }
    // 1 clean run, 2 pulls before a command, 2 lost answers, 3 torn commits.
    assert_eq!(points, 8);
    let count = |v, n| seen.get(&(v, n)).copied().unwrap_or(0);
    // Done: the clean run. Not done: the card pulled before the SELECT or with its answer.
    assert_eq!(count(Verdict::Done, true), 1, "{seen:?}");
    assert_eq!(count(Verdict::NotDone, false), 2, "{seen:?}");
    // CHANGE PIN's answer lost after it ran: the new PIN, and the terminal says it may be.
    assert_eq!(count(Verdict::Unsure, true), 1, "{seen:?}");
    // The card pulled as CHANGE PIN went out (the terminal cannot tell before from after),
    // and the three torn commits (answered 6581, "memory changed" to ISO/IEC 7816-4): the
    // old PIN, the terminal unsure.
    assert_eq!(count(Verdict::Unsure, false), 4, "{seen:?}");
}

#[test]
fn a_torn_wrong_pin_try_is_still_counted_or_not_compared() {
    // CHANGE PIN with a wrong old PIN: its only commit counts the try before comparing. Torn
    // there, the card answers 6581 having compared nothing; otherwise the try is counted.
    let wrong = Pin::new("000000").unwrap();
    let new = Pin::new("246810").unwrap();
    for cut in cuts(2, 1) {
        let mut c = TestCard::new("zhangsan");
        let max = tries_left(&mut c);
        let (verdict, _) = run(&mut c, cut, |s| change_pin(s, &wrong, &new));
        let tries = tries_left(&mut c);
        let reached = matches!(cut, Cut::None | Cut::AnswerLost(1));
        assert_eq!(
            tries,
            if reached { max - 1 } else { max },
            "{cut:?} ({verdict:?})"
        );
        assert!(!pin_held(&mut c, &Pin::new("123456").unwrap(), &new));
    }
}

// ---- cardholder record update ----------------------------------------------------------

fn authority(c: &TestCard) -> SoftwareAuthority {
    let master = c.profile.maintenance_master.as_ref().unwrap();
    SoftwareAuthority::new(Sm4Key::from_slice(&hex(master)).unwrap())
}

/// 张三 → 张叁, in GBK, in the 30-byte name field padded with `00`.
fn names() -> (Vec<u8>, Vec<u8>) {
    let pad = |mut v: Vec<u8>| {
        v.resize(30, 0);
        v
    };
    (pad(hex("D5C5C8FD")), pad(hex("D5C5C8FE")))
}

fn update(s: &mut CardSession<Pulling<'_>>, a: &mut SoftwareAuthority, value: &[u8]) -> Verdict {
    match update::update_record(s, a, SFI_EF06, 0x09, value) {
        Ok(_) => Verdict::Done,
        Err(e) if e.is_unsure() => Verdict::Unsure,
        Err(_) => Verdict::NotDone,
    }
}

/// The record as the terminal sees it at the next insert.
fn state(c: &mut TestCard) -> RecordState {
    let (old, new) = names();
    c.power_cycle();
    let mut s = CardSession::new(&mut c.card);
    update::record_state(&mut s, SFI_EF06, 0x09, &old, &new).unwrap()
}

#[test]
fn record_update_cut_at_every_apdu_and_every_commit() {
    let (_, new) = names();
    let mut c = TestCard::new("zhangsan");
    let mut a = authority(&c);
    let start = c.commits();
    let (verdict, sent) = run(&mut c, Cut::None, |s| update(s, &mut a, &new));
    assert_eq!(verdict, Verdict::Done);
    // SELECT, EF05 card id, EF06 records 1-2 (to find the name), GET CHALLENGE, EXTERNAL
    // AUTHENTICATE, UPDATE RECORD, read back: 8 commands, 1 commit.
    assert_eq!((sent, c.commits() - start), (8, 1));
    assert_eq!(state(&mut c), RecordState::New);

    let mut seen = std::collections::BTreeMap::new();
    let all = cuts(8, 1);
    for &cut in &all {
        let mut c = TestCard::new("zhangsan");
        let mut a = authority(&c);
        let (verdict, _) = run(&mut c, cut, |s| update(s, &mut a, &new));
        let now = state(&mut c);
        assert_ne!(now, RecordState::Other, "{cut:?}: neither old nor new");
        match verdict {
            Verdict::Done => assert_eq!(now, RecordState::New, "{cut:?}"),
            Verdict::NotDone => assert_eq!(now, RecordState::Old, "{cut:?}"),
            Verdict::Unsure => {}
        }
        *seen.entry((verdict, now == RecordState::New)).or_insert(0) += 1;
        // The card still works: the update is done (again) and reads back.
        let (again, _) = run(&mut c, Cut::None, |s| update(s, &mut a, &new));
        assert_eq!(again, Verdict::Done, "{cut:?}");
        assert_eq!(state(&mut c), RecordState::New, "{cut:?}");
    }
    assert_eq!(all.len(), 18);
    let count = |v, n| seen.get(&(v, n)).copied().unwrap_or(0);
    assert_eq!(count(Verdict::Done, true), 1, "{seen:?}");
    // Cut before UPDATE RECORD went out (pulls before commands 0-5, lost answers of commands
    // 0-5): the old name, and the terminal knows it.
    assert_eq!(count(Verdict::NotDone, false), 12, "{seen:?}");
    // UPDATE RECORD's answer lost, or the read back cut (pull or lost answer): the new name,
    // the terminal unsure until `record_state` at the next insert.
    assert_eq!(count(Verdict::Unsure, true), 3, "{seen:?}");
    // The card pulled as UPDATE RECORD went out, and the torn commit (6581): the old name,
    // the terminal unsure.
    assert_eq!(count(Verdict::Unsure, false), 2, "{seen:?}");
}

#[test]
fn the_record_is_closed_without_external_authentication_or_with_a_wrong_key() {
    let (_, new) = names();
    let mut c = TestCard::new("zhangsan");
    c.ok(&hex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF 00"));
    // Not even the cardholder's PIN opens EF06 for writing.
    c.ok(&hex("0020000003123456"));
    assert_eq!(c.sendh("00DC023406 0904D5C5C8FE").1, 0x6982);
    // EXTERNAL AUTHENTICATE without a challenge, and a replayed challenge.
    assert_eq!(
        c.send(&[&hex("0082000110")[..], &[0; 16]].concat()).1,
        0x6985
    );
    // A wrong master key: 6300, and the record stays as it was.
    let mut wrong = SoftwareAuthority::new(Sm4Key::new([0x5a; 16]));
    let mut s = CardSession::new(&mut c.card);
    let e = update::update_record(&mut s, &mut wrong, SFI_EF06, 0x09, &new).unwrap_err();
    assert!(matches!(e, UpdateError::NotDone(_)), "{e}");
    assert!(e.to_string().contains("verification failed"), "{e}");
    assert_eq!(state(&mut c), RecordState::Old);
    // A good cryptogram opens EF06 until the next reset only.
    let mut a = authority(&c);
    let mut s = CardSession::new(&mut c.card);
    update::update_record(&mut s, &mut a, SFI_EF06, 0x09, &new).unwrap();
    c.power_cycle();
    c.ok(&hex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF 00"));
    assert_eq!(c.sendh("00DC023406 0904D5C5C8FD").1, 0x6982);
}
