//! ISO/IEC 7816-4 behaviour: the status word a card gives to wrong requests, the transmission
//! rules of `6Cxx` and `61xx` as [`CardSession::send`] meets them, and the PIN try counter asked
//! without a PIN.
//!
//! The wrong requests change nothing on a careful card, and none carries a PIN: a wrong Lc is
//! probed with SELECT, never with VERIFY (a card could count a malformed VERIFY as a wrong
//! PIN).

use card_core::apdu::{Command, Response};
use card_core::channel::{CardChannel, CardSession, SendError};
use card_core::ssse;
use card_core::status::StatusWord;

use super::{Outcome, Runner, fail, pass, skip, warn};

/// Send `cmd` and give back the answer and the number of exchanges it took on the wire.
fn send<C: CardChannel>(
    s: &mut CardSession<C>,
    cmd: &Command,
) -> Result<(Response, u64), SendError> {
    let before = s.exchanges();
    let r = s.send(cmd)?;
    Ok((r, s.exchanges().saturating_sub(before)))
}

/// A check whose expected answers are status words: pass on one of `want`, fail on anything
/// else with what the card said.
fn expect_sw<C: CardChannel>(
    s: &mut CardSession<C>,
    cmd: &Command,
    what: &str,
    want: &[StatusWord],
    expected: &str,
) -> Outcome {
    let r = s.send(cmd)?;
    let sw = r.sw();
    if want.contains(&sw) {
        pass(format!("{what}: {sw}"))
    } else {
        fail(format!("{what}: answered {sw}, expected {expected}"))
    }
}

/// SELECT of the social-security application by AID (case 3 or, with `le`, case 4).
fn select_ssse(cla: u8, le: bool) -> Command {
    let cmd = Command::new(cla, 0xa4, 0x04, 0x00).with_data(ssse::AID);
    if le { cmd.expect_data() } else { cmd }
}

pub(crate) fn run<C: CardChannel>(r: &mut Runner<'_, C>, ssse_present: bool) {
    r.check("iso.wrong_cla", "Class byte not supported: 6E00", |s, _| {
        // CLA '20' is a reserved class (ISO/IEC 7816-4 §5.1.1): no card supports it.
        expect_sw(
            s,
            &select_ssse(0x20, false),
            "SELECT with CLA 20",
            &[StatusWord::ClaNotSupported],
            "6E00 (class not supported)",
        )
    });
    r.check(
        "iso.unknown_ins",
        "Instruction not supported: 6D00",
        |s, _| {
            // INS '02' is assigned to no command of ISO/IEC 7816-4 (§5.1.2) or JR/T 0025.
            expect_sw(
                s,
                &Command::new(0x00, 0x02, 0x00, 0x00),
                "INS 02",
                &[StatusWord::InsNotSupported],
                "6D00 (instruction not supported)",
            )
        },
    );
    r.check("iso.wrong_p1p2", "Wrong P1-P2: 6A86 or 6B00", |s, _| {
        // SELECT P1 = 07 is not a selection method (ISO/IEC 7816-4 §7.1.1 table).
        expect_sw(
            s,
            &Command::new(0x00, 0xa4, 0x07, 0x00).with_data([0x3f, 0x00]),
            "SELECT with P1 07",
            &[StatusWord::IncorrectP1P2, StatusWord::WrongP1P2],
            "6A86 (incorrect P1-P2) or 6B00 (wrong P1-P2)",
        )
    });
    r.check("iso.wrong_length", "Wrong Lc: 6700", |s, _| {
        // SELECT by file identifier takes exactly two bytes.
        expect_sw(
            s,
            &Command::new(0x00, 0xa4, 0x00, 0x00).with_data([0x3f, 0x00, 0x00]),
            "SELECT by file identifier with Lc 03",
            &[StatusWord::WrongLength, StatusWord::Other(0x6a87)],
            "6700 (wrong length) or 6A87 (Lc inconsistent with P1-P2)",
        )
    });
    const LE: &str = "Wrong Le: 6Cxx, then the data";
    const GET_RESPONSE: &str = "Data behind 61xx fetched with GET RESPONSE";
    const PIN: &str = "PIN try counter asked without a PIN: 63Cx";
    if !ssse_present {
        for (id, title) in [
            ("iso.wrong_le", LE),
            ("iso.get_response", GET_RESPONSE),
            ("iso.pin_counter", PIN),
        ] {
            r.skip(id, title, "needs the social-security application");
        }
    } else {
        r.check("iso.wrong_le", LE, |s, _| wrong_le(s));
        r.check("iso.get_response", GET_RESPONSE, |s, _| get_response(s));
        r.check("iso.pin_counter", PIN, |s, _| pin_counter(s));
    }
    r.check(
        "iso.offset_beyond_file",
        "READ BINARY beyond the end of the file: 6B00",
        |s, _| offset_beyond_file(s),
    );
}

/// READ RECORD of EF05 tag 07 (the card number, 9 bytes) with `Le = 01`: a careful card answers
/// `6C0B`, and [`CardSession::send`] sends the command again with `Le = 0B` (JR/T 0025.3
/// §9.3.1.2; ISO/IEC 7816-4 §5.1.3).
fn wrong_le<C: CardChannel>(s: &mut CardSession<C>) -> Outcome {
    let r = s.send(&select_ssse(0x00, true))?;
    if !r.is_success() {
        return fail(format!("SELECT of the application answered {}", r.sw()));
    }
    // P2 b3-b1 = 000: the first record whose identifier is P1.
    let cmd = Command::new(0x00, 0xb2, 0x07, ssse::SFI_EF05 << 3).with_ne(1);
    let (r, exchanges) = send(s, &cmd)?;
    let data = r.data();
    let whole = matches!(data, [0x07, len, ..] if usize::from(*len) + 2 == data.len());
    match (r.sw(), exchanges) {
        (StatusWord::Success, 2..) if whole => pass(format!(
            "READ RECORD with Le=01 drew 6Cxx; sent again with Le={:02X} it answered the whole \
             {}-byte record",
            data.len(),
            data.len()
        )),
        (StatusWord::Success, 1) if whole && data.len() > 1 => warn(format!(
            "READ RECORD with Le=01 answered {} bytes at once: more than Le asked, where 6Cxx \
             was expected",
            data.len()
        )),
        (StatusWord::Success, _) if data.len() == 1 => warn(
            "READ RECORD with Le=01 answered only the first byte with 9000, where 6Cxx (the \
             exact length) was expected",
        ),
        (StatusWord::Success, _) => fail(format!(
            "READ RECORD with a wrong Le answered 9000 with {} bytes that are not the record",
            data.len()
        )),
        (StatusWord::WrongLe(n), _) => fail(format!(
            "the card kept answering 6C{n:02X}: the session does not re-send (automatic GET \
             RESPONSE is off)"
        )),
        (sw, _) => fail(format!(
            "READ RECORD with a wrong Le answered {sw}, expected 6Cxx and then the record"
        )),
    }
}

/// SELECT by AID with `Le = 00` (case 4): over T=0 the card answers `61xx` and the FCI comes
/// with GET RESPONSE (JR/T 0025.3 §9.3.1.2); over T=1 it comes at once. Either way the session
/// must end with `9000` and the whole FCI.
fn get_response<C: CardChannel>(s: &mut CardSession<C>) -> Outcome {
    let (r, exchanges) = send(s, &select_ssse(0x00, true))?;
    let fci = matches!(r.data(), [0x6f, len, ..] if usize::from(*len) + 2 == r.data().len());
    match r.sw() {
        StatusWord::Success if fci && exchanges > 1 => pass(format!(
            "SELECT (case 4) drew 61xx; GET RESPONSE fetched the {}-byte FCI",
            r.data().len()
        )),
        StatusWord::Success if fci => pass(format!(
            "SELECT (case 4) answered the {}-byte FCI at once (no 61xx needed on this protocol)",
            r.data().len()
        )),
        StatusWord::Success => fail(format!(
            "SELECT (case 4) answered 9000 without a whole FCI (6F): {} bytes",
            r.data().len()
        )),
        StatusWord::BytesAvailable(n) => fail(format!(
            "the card kept answering 61{n:02X}: the session does not fetch it (automatic GET \
             RESPONSE is off)"
        )),
        sw => fail(format!("SELECT (case 4) answered {sw}")),
    }
}

/// VERIFY without data, twice (ISO/IEC 7816-4 §7.5.6): `63Cx` with the tries left (or `9000`
/// when already verified, `6983`/`6984` when blocked), the same both times: asking uses no try.
fn pin_counter<C: CardChannel>(s: &mut CardSession<C>) -> Outcome {
    let r = s.send(&select_ssse(0x00, true))?;
    if !r.is_success() {
        return fail(format!("SELECT of the application answered {}", r.sw()));
    }
    let query = Command::new(0x00, 0x20, 0x00, 0x00);
    let first = s.send(&query)?.sw();
    let second = s.send(&query)?.sw();
    let meaningful = matches!(
        first,
        StatusWord::WrongPin { .. }
            | StatusWord::Success
            | StatusWord::AuthenticationBlocked
            | StatusWord::ReferenceDataInvalidated
    );
    if !meaningful {
        return fail(format!(
            "VERIFY without data answered {first}, expected 63Cx (tries left), 9000 or 6983"
        ));
    }
    if first != second {
        return fail(format!(
            "VERIFY without data answered {first}, then {second}: asking used a try"
        ));
    }
    pass(format!("VERIFY without data answered {first} twice"))
}

/// READ BINARY at offset 7FFF of a transparent EF (the PKI application's EF 0018, made current
/// by a read with its SFI): `6B00`, offset outside the EF (ISO/IEC 7816-4 §7.2.3).
fn offset_beyond_file<C: CardChannel>(s: &mut CardSession<C>) -> Outcome {
    let r = s.send(
        &Command::new(0x00, 0xa4, 0x04, 0x00)
            .with_data(ssse::PKI_ADF_AID)
            .expect_data(),
    )?;
    if !r.is_success() {
        return skip(format!(
            "no transparent file to probe: SELECT of SS.CERT.ADF1 answered {}",
            r.sw()
        ));
    }
    let first = Command::new(0x00, 0xb0, 0x80 | ssse::SFI_PKI_AUTH_DATA, 0x00).with_ne(1);
    let sw = s.send(&first)?.sw();
    if !matches!(sw, StatusWord::Success | StatusWord::WrongP1P2) {
        return skip(format!(
            "no transparent file to probe: READ BINARY of SFI {:02X} answered {sw}",
            ssse::SFI_PKI_AUTH_DATA
        ));
    }
    let beyond = Command::new(0x00, 0xb0, 0x7f, 0xff).with_ne(1);
    let r = s.send(&beyond)?;
    match r.sw() {
        StatusWord::WrongP1P2 => pass("READ BINARY at offset 7FFF: 6B00 (offset outside the EF)"),
        StatusWord::IncorrectP1P2 | StatusWord::EndOfFile => warn(format!(
            "READ BINARY at offset 7FFF answered {}, where 6B00 names an offset outside the EF",
            r.sw()
        )),
        sw => fail(format!(
            "READ BINARY at offset 7FFF answered {sw} ({} data bytes), expected 6B00",
            r.data().len()
        )),
    }
}
