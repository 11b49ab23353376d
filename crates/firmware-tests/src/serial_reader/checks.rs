//! Checks any card path must pass, written once over any [`CardSession`] so that pcscd with
//! libccidtwin (through reader-driver's `PcscCard`) and reader-driver's own serial backend run
//! exactly the same code:
//!
//! 1. the status word of wrong requests (a subset of `tests/softcard.rs`, the ones every
//!    transport carries unchanged: no malformed APDUs, which T=0 cannot express);
//! 2. the conformance suite ([`crate::conformance`]): no check may fail (ISO/IEC 7816-4
//!    behaviour with `6Cxx` and `61xx` as the transport delivers them, the applications);
//! 3. the SSSE identity read with both strategies, compared with the fixture's profile;
//! 4. PIN: wrong twice, right, then wrong until blocked, and the right PIN refused once blocked.
//!
//! The PIN check blocks the card: insert a fresh one before running the checks again.

use card_core::CardSession;
use card_core::apdu::Command;
use card_core::channel::CardChannel;
use card_core::secret::Pin;
use card_core::ssse::{self, ReadStrategy, SsseError};

use crate::Profile;

/// What a fixture card holds.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Fixture name.
    pub fixture: String,
    /// Holder's name.
    pub name: String,
    /// Social security number.
    pub ssn: String,
    /// Card number.
    pub card_number: String,
    /// The PIN.
    pub pin: String,
}

impl Expected {
    /// The values of embedded fixture `name`.
    pub fn fixture(name: &str) -> Option<Self> {
        let p = Profile::embedded(name)?;
        Some(Self {
            fixture: name.to_string(),
            name: p.holder.name,
            ssn: p.holder.ssn,
            card_number: p.card.card_number,
            pin: p.pin.value,
        })
    }
}

/// A check that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("check {check} failed: {detail}")]
pub struct CheckFailure {
    /// Which check.
    pub check: &'static str,
    /// What happened.
    pub detail: String,
}

/// What ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Checks passed, in order.
    pub passed: Vec<&'static str>,
    /// APDUs exchanged on the wire.
    pub exchanges: u64,
}

fn fail(check: &'static str, detail: impl std::fmt::Display) -> CheckFailure {
    CheckFailure {
        check,
        detail: detail.to_string(),
    }
}

/// The wrong requests and the status word each must draw (after GET RESPONSE and re-sends).
const WRONG_REQUESTS: &[(&str, u16)] = &[
    ("00CA000000", 0x6D00),
    ("80A4040000", 0x6E00),
    ("01A4040000", 0x6881),
    ("00A4040005A000000000", 0x6A82),
    ("00A4070000", 0x6A86),
    ("00A40000033F0000", 0x6700),
    ("00B2010400", 0x6986),
    ("SELECT", 0x9000),
    ("00B2013C00", 0x6A82),
    ("00B2632C00", 0x6A83),
    ("00B2002C00", 0x6A86),
    ("00B0850000", 0x6981),
    ("00DC012C03010100", 0x6982),
    ("00A4040006D15600000503", 0x9000),
    ("00B2012D00", 0x6982),
    ("0084010008", 0x6A86),
    ("0084000005", 0x6700),
    ("00C0000010", 0x6985),
    ("0020000103123456", 0x6A88),
    ("002000000112", 0x6700),
];

fn send_hex<C: CardChannel>(
    s: &mut CardSession<C>,
    apdu: &str,
) -> Result<card_core::apdu::Response, CheckFailure> {
    let bytes = if apdu == "SELECT" {
        let mut v = vec![0x00, 0xa4, 0x04, 0x00, 0x0f];
        v.extend_from_slice(&ssse::AID);
        v
    } else {
        hex::decode(apdu).map_err(|e| fail("status words", e))?
    };
    let cmd = Command::parse(&bytes).map_err(|e| fail("status words", e))?;
    let cmd = if cmd.ne().is_none() && (bytes.get(1) == Some(&0xa4)) {
        cmd.expect_data()
    } else {
        cmd
    };
    s.send(&cmd)
        .map_err(|e| fail("status words", format!("{apdu}: {e}")))
}

/// The identity read, both strategies.
pub fn identity<C: CardChannel>(s: &mut CardSession<C>, e: &Expected) -> Result<(), CheckFailure> {
    let mut first = None;
    for strategy in [ReadStrategy::AllRecords, ReadStrategy::ByTag] {
        let id = ssse::read_identity(s, strategy)
            .map_err(|err| fail("identity", format!("{strategy:?}: {err}")))?;
        if id.holder.name.reveal() != e.name
            || id.holder.ssn.reveal() != e.ssn
            || id.card.card_number.reveal() != e.card_number
        {
            return Err(fail(
                "identity",
                format!("{strategy:?}: wrong identity read"),
            ));
        }
        match &first {
            None => first = Some(id),
            Some(f) if *f != id => {
                return Err(fail("identity", "the two strategies disagree"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Wrong requests draw the right status words.
pub fn status_words<C: CardChannel>(s: &mut CardSession<C>) -> Result<(), CheckFailure> {
    for (apdu, want) in WRONG_REQUESTS {
        let r = send_hex(s, apdu)?;
        let got = r.sw().to_u16();
        if got != *want {
            return Err(fail(
                "status words",
                format!("{apdu}: {got:04X}, want {want:04X}"),
            ));
        }
    }
    // GET CHALLENGE gives 8 bytes (a wrong Le is the conformance suite's iso.wrong_le).
    let r = send_hex(s, "0084000008")?;
    if r.data().len() != 8 || !r.is_success() {
        return Err(fail("status words", "GET CHALLENGE"));
    }
    Ok(())
}

/// PIN wrong, right, blocked.
pub fn pin<C: CardChannel>(s: &mut CardSession<C>, e: &Expected) -> Result<(), CheckFailure> {
    let right = Pin::new(&e.pin).map_err(|err| fail("pin", err))?;
    let wrong_digits: String = e
        .pin
        .chars()
        .map(|c| if c == '9' { '8' } else { '9' })
        .collect();
    let wrong = Pin::new(&wrong_digits).map_err(|err| fail("pin", err))?;
    let expect = |got: Result<(), SsseError>, want: Result<(), SsseError>, what: &str| {
        if got == want {
            Ok(())
        } else {
            Err(fail("pin", format!("{what}: {got:?}, want {want:?}")))
        }
    };
    ssse::select(s).map_err(|err| fail("pin", err))?;
    let tries = ssse::pin_tries_left(s).map_err(|err| fail("pin", err))?;
    if tries != Some(3) {
        return Err(fail("pin", format!("fresh card has {tries:?} tries")));
    }
    expect(
        ssse::verify_pin(s, &wrong),
        Err(SsseError::WrongPin { tries_left: 2 }),
        "1st wrong",
    )?;
    expect(
        ssse::verify_pin(s, &wrong),
        Err(SsseError::WrongPin { tries_left: 1 }),
        "2nd wrong",
    )?;
    expect(ssse::verify_pin(s, &right), Ok(()), "right")?;
    ssse::select(s).map_err(|err| fail("pin", err))?;
    for left in [2, 1] {
        expect(
            ssse::verify_pin(s, &wrong),
            Err(SsseError::WrongPin { tries_left: left }),
            "wrong",
        )?;
    }
    expect(
        ssse::verify_pin(s, &wrong),
        Err(SsseError::PinBlocked),
        "third wrong",
    )?;
    expect(
        ssse::verify_pin(s, &right),
        Err(SsseError::PinBlocked),
        "right when blocked",
    )?;
    let tries = ssse::pin_tries_left(s).map_err(|err| fail("pin", err))?;
    if tries != Some(0) {
        return Err(fail("pin", format!("blocked card has {tries:?} tries")));
    }
    Ok(())
}

/// The conformance suite, on the date the fixtures are all valid (2026-03-15) and without trust
/// anchors (the fixtures' PKI application is not personalised): no check may fail.
pub fn conformance<C: CardChannel>(s: &mut CardSession<C>) -> Result<(), CheckFailure> {
    let today = card_core::ssse::Date::new(2026, 3, 15).map_err(|e| fail("conformance", e))?;
    let report = crate::conformance::run(s, &crate::conformance::Options::new(today));
    let failed: Vec<String> = report
        .failures()
        .map(|c| format!("{}: {}", c.id, c.reason))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(fail("conformance", failed.join("; ")))
    }
}

/// All checks on a card of fixture `e` fresh from power-on (the status word checks expect no
/// file selected): status words, the conformance suite, identity, PIN.
pub fn run_all<C: CardChannel>(
    s: &mut CardSession<C>,
    e: &Expected,
) -> Result<Report, CheckFailure> {
    let before = s.exchanges();
    let mut report = Report::default();
    status_words(s)?;
    report.passed.push("status words");
    conformance(s)?;
    report.passed.push("conformance");
    identity(s, e)?;
    report.passed.push("identity");
    pin(s, e)?;
    report.passed.push("pin");
    report.exchanges = s.exchanges() - before;
    Ok(report)
}
