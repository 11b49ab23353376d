//! GENERATE AC (JR/T 0025.5 §14, §16, 附录 B.6), with card risk management, electronic cash
//! (JR/T 0025.13 §7.4.5), CDA (JR/T 0025.17 §5.2.5, JR/T 0025.7 §5.3.6), and issuer
//! authentication by EXTERNAL AUTHENTICATE or by the issuer authentication data `91` of CDOL2
//! (§15.4.3, 附录 B.5, 附录 D.3).
//!
//! Reference control parameter P1 (附录 B.6 表B.7): bits 8-7 `00` AAC, `01` TC, `10` ARQC
//! (`11` and any reserved bit: `6A86`); bit 5 asks for CDA. At most two GENERATE AC per
//! transaction: a third, or a second after a first that was not an ARQC, answers `6985`
//! (附录 B.6.5). The cryptogram (version 01, 附录 E 表E.1) covers amount, other amount,
//! country, TVR, currency, date, type, unpredictable number, AIP, ATC and CVR (see
//! `gpo::cryptogram_data`); for the second GENERATE AC the TVR and unpredictable number come
//! from CDOL2, the terminal's newest values, the rest from CDOL1.

use card_core::apdu::Command;
use card_core::status::StatusWord as Sw;
use card_core::tlv::{Tag, Tlv};

use super::applet::Ctx;
use super::dol::{
    self, DolData, TAG_AMOUNT, TAG_ARC, TAG_CURRENCY, TAG_ISSUER_AUTH, TAG_TVR, TAG_UN,
};
use super::gpo::{cryptogram_data, issuer_application_data};
use super::session::{Ac, Path, cid, cvr};
use super::state::PbocState;
use super::{cryptogram, ec, log, oda};

/// AIP byte 1 bit 3: issuer authentication supported.
const AIP_ISSUER_AUTH: u8 = 0x04;
/// AIP byte 1 bit 1: CDA supported.
const AIP_CDA: u8 = 0x01;

/// The cryptogram type the terminal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    Aac,
    Tc,
    Arqc,
}

/// GENERATE AC, first or second.
pub(crate) fn generate_ac(ctx: &mut Ctx<'_>, cmd: &Command) -> Result<Vec<u8>, Sw> {
    if cmd.p2 != 0 || cmd.p1 & 0x2f != 0 {
        return Err(Sw::IncorrectP1P2);
    }
    let requested = match cmd.p1 & 0xc0 {
        0x00 => Requested::Aac,
        0x40 => Requested::Tc,
        0x80 => Requested::Arqc,
        _ => return Err(Sw::IncorrectP1P2),
    };
    let cda = cmd.p1 & 0x10 != 0;
    let Some(txn) = ctx.session.txn.as_ref() else {
        return Err(Sw::ConditionsNotSatisfied);
    };
    if !matches!(txn.path, Path::Contact { .. }) {
        return Err(Sw::ConditionsNotSatisfied);
    }
    match (txn.gen_ac_count, txn.first_ac) {
        (0, _) => first(ctx, cmd, requested, cda),
        (1, Some(Ac { cid: cid::ARQC, .. })) if !txn.completed => second(ctx, cmd, requested, cda),
        _ => Err(Sw::ConditionsNotSatisfied),
    }
}

/// Set a CVR bit in `cvr_bits`.
fn set(cvr_bits: &mut [u8; 4], (byte, b): (usize, u8)) {
    if let Some(x) = cvr_bits.get_mut(byte) {
        *x |= b;
    }
}

/// The first GENERATE AC (§14.4, §14.5; JR/T 0025.13 §7.4.5 for EC).
fn first(ctx: &mut Ctx<'_>, cmd: &Command, requested: Requested, cda: bool) -> Result<Vec<u8>, Sw> {
    let cdol1 = DolData::split(dol::CDOL1, cmd.data()).ok_or(Sw::WrongLength)?;
    let session = &*ctx.session;
    let Some(txn) = session.txn.as_ref() else {
        return Err(Sw::ConditionsNotSatisfied);
    };
    let mut cvr_bits = txn.cvr;
    set(&mut cvr_bits, cvr::SECOND_NOT_REQUESTED);
    let before = ctx.state()?.clone();
    let ind = &before.indicators;
    let risk = &before.risk;
    let is_ec = txn.is_ec();
    let mut decline = before.blocked;
    let mut online = false;
    let mut block = false;
    // Checks done on every path: last transaction's SDA and DDA (§14.4.3.3, §14.4.3.4; JR/T
    // 0025.13 §7.4.5 keeps these for EC).
    if ind.sda_failed {
        set(&mut cvr_bits, cvr::LAST_SDA_FAILED);
    }
    if ind.dda_failed {
        set(&mut cvr_bits, cvr::LAST_DDA_FAILED);
    }
    if !is_ec {
        // §14.4.3.1: online authorisation not completed.
        if ind.online_auth_pending {
            set(&mut cvr_bits, cvr::LAST_ONLINE_NOT_COMPLETED);
            online = true;
        }
        // §14.4.3.2: issuer authentication failed last time.
        if before.aip[0] & AIP_ISSUER_AUTH != 0 && ind.issuer_auth_failed {
            set(&mut cvr_bits, cvr::LAST_ISSUER_AUTH_FAILED);
            online |= risk.ada[0] & 0x80 != 0;
        }
        // §14.4.3.5: scripts of the last online transaction.
        set(&mut cvr_bits, (3, ind.script_count.min(15) << 4));
        if ind.script_failed {
            set(&mut cvr_bits, cvr::LAST_SCRIPT_FAILED);
            online |= risk.ada[1] & 0x08 != 0;
        }
        // §14.4.3.6: lower consecutive offline limit.
        if let Some(lower) = risk.lower_consecutive_offline_limit
            && before.atc.saturating_sub(before.last_online_atc) > u16::from(lower)
        {
            set(&mut cvr_bits, cvr::VELOCITY_EXCEEDED);
            online = true;
        }
        // §14.4.3.11: new card.
        if before.last_online_atc == 0 {
            set(&mut cvr_bits, cvr::NEW_CARD);
            online |= risk.ada[0] & 0x02 != 0;
        }
        // §14.4.3.12: PIN try limit exceeded before, no VERIFY now.
        if session.verify_count == 0 && before.pin.tries_left == 0 {
            set(&mut cvr_bits, cvr::PIN_LIMIT_EXCEEDED);
            decline |= risk.ada[1] & 0x40 != 0;
            online |= risk.ada[1] & 0x20 != 0;
            if risk.ada[1] & 0x04 != 0 {
                decline = true;
                block = true;
            }
        }
    }
    // 表33: the card may lower the terminal's request, never raise it.
    let mut result = match requested {
        Requested::Aac => cid::AAC,
        _ if decline => cid::AAC,
        Requested::Arqc => cid::ARQC,
        Requested::Tc if online => cid::ARQC,
        Requested::Tc => cid::TC,
    };
    // JR/T 0025.13 §7.4.5: an EC offline approval needs the GENERATE AC amount and currency
    // to be those of GPO (and still within the balance), else AAC.
    let mut debit = None;
    if is_ec && result == cid::TC {
        let amount = cdol1.get(TAG_AMOUNT).and_then(ec::from_bcd);
        let same = cdol1.get(TAG_AMOUNT) == txn.pdol.get(TAG_AMOUNT)
            && cdol1.get(TAG_CURRENCY) == txn.pdol.get(TAG_CURRENCY);
        match (amount, &before.ec) {
            (Some(a), Some(e)) if same && a <= e.balance && a <= e.single_limit => debit = Some(a),
            _ => result = cid::AAC,
        }
    }
    set(
        &mut cvr_bits,
        match result {
            cid::TC => cvr::FIRST_TC,
            cid::ARQC => cvr::FIRST_ARQC,
            _ => (1, 0),
        },
    );
    let signing = cda && result != cid::AAC && before.aip[0] & AIP_CDA != 0;
    if signing {
        set(&mut cvr_bits, cvr::DDA_PERFORMED);
    }
    let pdol = txn.pdol.clone();

    // Persistent effects (§14.5.1-§14.5.3) on a copy; the answer is made from it before
    // anything changes, then it is committed in one commit.
    let mut after = before.clone();
    match result {
        cid::AAC => {
            // §14.5.1 step 2: SDA / DDA / CDA failed in the TVR.
            let b1 = cdol1
                .get(TAG_TVR)
                .and_then(|t| t.first().copied())
                .unwrap_or(0);
            after.indicators.sda_failed |= b1 & 0x40 != 0;
            after.indicators.dda_failed |= b1 & 0x0c != 0;
            after.blocked |= block;
        }
        // §14.5.2: the online authorisation indicator.
        cid::ARQC => after.indicators.online_auth_pending = true,
        _ => {
            if let (Some(amount), Some(e)) = (debit, after.ec.as_mut()) {
                e.balance = e.balance.saturating_sub(amount);
            }
        }
    }
    let (response, ac) = respond(
        &after,
        result,
        cvr_bits,
        &[&cdol1, &pdol],
        signing,
        &[pdol.raw(), cdol1.raw()],
        &cdol1,
    )?;
    if result == cid::TC {
        let record = log::transaction_record(&[&cdol1, &pdol], after.atc);
        log::log_transaction(ctx.image, ctx.adf, &record)?;
    }
    if result == cid::TC || after != before {
        *ctx.state_mut()? = after;
        ctx.commit()?;
    }
    if let Some(t) = ctx.session.txn.as_mut() {
        t.cvr = cvr_bits;
        t.gen_ac_count = 1;
        t.first_ac = Some(Ac {
            cid: result,
            value: ac,
        });
        t.cdol1 = Some(cdol1);
    }
    Ok(response)
}

/// The cryptogram and the response: format 1 `80{CID ‖ ATC ‖ AC ‖ IAD}`, or with CDA format 2
/// `77{9F27, 9F36, 9F4B, 9F10}` (附录 B.6.4; JR/T 0025.17 §5.2.5.1 表14, JR/T 0025.7 表18).
/// `state` is the state after the transaction's effects (the IDD carries the new balance).
fn respond(
    state: &PbocState,
    result: u8,
    cvr_bits: [u8; 4],
    sources: &[&DolData],
    signing: bool,
    hashed_terminal_data: &[&[u8]],
    un_source: &DolData,
) -> Result<(Vec<u8>, [u8; 8]), Sw> {
    let atc = state.atc;
    let ac =
        cryptogram::application_cryptogram(state, atc, &cryptogram_data(state, sources, cvr_bits));
    let iad = issuer_application_data(state, cvr_bits);
    let key = state.keys.icc.as_ref().filter(|_| signing);
    let out = match key {
        None => {
            let mut value = vec![result];
            value.extend_from_slice(&atc.to_be_bytes());
            value.extend_from_slice(&ac);
            value.extend_from_slice(&iad);
            Tlv::primitive(Tag::new(0x80), value).to_bytes()
        }
        Some(key) => {
            let cid_tlv = Tlv::primitive(Tag::new(0x9f27), vec![result]);
            let atc_tlv = Tlv::primitive(Tag::new(0x9f36), atc.to_be_bytes().to_vec());
            let iad_tlv = Tlv::primitive(Tag::new(0x9f10), iad);
            let encoded: Vec<Vec<u8>> = [&cid_tlv, &atc_tlv, &iad_tlv]
                .iter()
                .map(|t| t.to_bytes())
                .collect::<Result<_, _>>()
                .map_err(|_| Sw::ExecutionError)?;
            let mut parts: Vec<&[u8]> = hashed_terminal_data.to_vec();
            parts.extend(encoded.iter().map(Vec::as_slice));
            let mut number = [0u8; 8];
            getrandom::fill(&mut number).map_err(|_| Sw::ExecutionError)?;
            let un = un_source.get(TAG_UN).unwrap_or_default();
            let sdad = oda::sign_cda(key, &number, result, ac, &parts, un)
                .map_err(|_| Sw::ExecutionError)?;
            Tlv::constructed(
                Tag::new(0x77),
                vec![
                    cid_tlv,
                    atc_tlv,
                    Tlv::primitive(Tag::new(0x9f4b), sdad),
                    iad_tlv,
                ],
            )
            .to_bytes()
        }
    };
    Ok((out.map_err(|_| Sw::ExecutionError)?, ac))
}

/// The approval codes of the authorisation response code: `00`, `10`, `11` approved, `01`,
/// `02` referral (treated as approved, §16.6).
fn arc_approves(arc: &[u8]) -> bool {
    matches!(arc, b"00" | b"10" | b"11" | b"01" | b"02")
}

/// Issuer authentication (§15.4.3 steps 2-4, 附录 D.3): the ARPC in the first 8 bytes of the
/// issuer authentication data against the ARQC and the ARC in the next 2. Records the result
/// in the transaction and the issuer-authentication-failed indicator (in RAM).
fn issuer_authenticate(ctx: &mut Ctx<'_>, data: &[u8]) -> Result<bool, Sw> {
    let (arpc, rest) = data.split_at_checked(8).ok_or(Sw::WrongLength)?;
    let arc: [u8; 2] = rest
        .get(..2)
        .and_then(|a| a.try_into().ok())
        .ok_or(Sw::WrongLength)?;
    let arqc = ctx
        .session
        .txn
        .as_ref()
        .and_then(|t| t.first_ac)
        .ok_or(Sw::ConditionsNotSatisfied)?;
    let state = ctx.state()?;
    let ok = cryptogram::arpc_matches(state, state.atc, &arqc.value, &arc, arpc);
    ctx.state_mut()?.indicators.issuer_auth_failed = !ok;
    if let Some(t) = ctx.session.txn.as_mut() {
        t.external_auth = Some(ok);
        if ok {
            t.issuer_arc = Some(arc);
        } else {
            t.set(cvr::ISSUER_AUTH_FAILED);
        }
    }
    Ok(ok)
}

/// EXTERNAL AUTHENTICATE (附录 B.5, §15.3, §15.4.3): once per transaction, after an ARQC;
/// `9000` when the ARPC matches, `6300` when not, `6985` for a second one (which also sets the
/// issuer-authentication-failed indicator).
pub(crate) fn external_authenticate(ctx: &mut Ctx<'_>, cmd: &Command) -> Result<(), Sw> {
    if cmd.p1 != 0 || cmd.p2 != 0 {
        return Err(Sw::IncorrectP1P2);
    }
    if !(10..=16).contains(&cmd.data().len()) || cmd.ne().is_some() {
        return Err(Sw::WrongLength);
    }
    let Some(txn) = ctx.session.txn.as_ref() else {
        return Err(Sw::ConditionsNotSatisfied);
    };
    let arqc_given = matches!(txn.first_ac, Some(Ac { cid: cid::ARQC, .. }));
    if !arqc_given || txn.completed || !matches!(txn.path, Path::Contact { .. }) {
        return Err(Sw::ConditionsNotSatisfied);
    }
    if txn.external_auth.is_some() {
        ctx.state_mut()?.indicators.issuer_auth_failed = true;
        ctx.commit()?;
        return Err(Sw::ConditionsNotSatisfied);
    }
    let before = ctx.state()?.indicators.issuer_auth_failed;
    let ok = issuer_authenticate(ctx, cmd.data())?;
    if ctx.state()?.indicators.issuer_auth_failed != before {
        ctx.commit()?;
    }
    if ok {
        Ok(())
    } else {
        Err(Sw::AuthenticationFailed)
    }
}

/// The second GENERATE AC: transaction completion (§16), after online processing (§16.6) or
/// when the terminal could not go online (ARC `Y3`/`Z3`, §16.7).
fn second(
    ctx: &mut Ctx<'_>,
    cmd: &Command,
    requested: Requested,
    cda: bool,
) -> Result<Vec<u8>, Sw> {
    let cdol2 = DolData::split(dol::CDOL2, cmd.data()).ok_or(Sw::WrongLength)?;
    if requested == Requested::Arqc {
        return Err(Sw::ConditionsNotSatisfied);
    }
    let committed = ctx.state()?.clone();
    let arc = cdol2.get(TAG_ARC).unwrap_or_default().to_vec();
    let auth_data = cdol2.get(TAG_ISSUER_AUTH).unwrap_or_default().to_vec();
    let supported = committed.aip[0] & AIP_ISSUER_AUTH != 0;
    let unable_online = matches!(arc.as_slice(), b"Y3" | b"Z3");
    let already = ctx.session.txn.as_ref().and_then(|t| t.external_auth);
    if supported && !unable_online && already.is_none() && auth_data.iter().any(|b| *b != 0) {
        issuer_authenticate(ctx, &auth_data)?;
    }
    let Some(txn) = ctx.session.txn.as_ref() else {
        return Err(Sw::ConditionsNotSatisfied);
    };
    let performed = txn.external_auth.is_some();
    let success = txn.external_auth == Some(true);
    let effective_arc = txn.issuer_arc.map_or_else(|| arc.clone(), |a| a.to_vec());
    let verify_count = ctx.session.verify_count;
    let mut cvr_bits = txn.cvr;
    let mut after = ctx.state()?.clone();
    let risk = after.risk.clone();
    let mandatory = risk.issuer_auth_mandatory;
    let mut reset = false;
    let mut mark_failed = false;
    let approve;
    if unable_online {
        // §16.7.1 card risk management, §16.7.2 the answer.
        set(&mut cvr_bits, cvr::UNABLE_ONLINE);
        let mut decline = requested == Requested::Aac;
        if let Some(upper) = risk.upper_consecutive_offline_limit
            && after.atc.saturating_sub(after.last_online_atc) > u16::from(upper)
        {
            set(&mut cvr_bits, cvr::VELOCITY_EXCEEDED);
            decline = true;
        }
        if after.last_online_atc == 0 {
            set(&mut cvr_bits, cvr::NEW_CARD);
            decline |= risk.ada[0] & 0x01 != 0;
        }
        if verify_count == 0 && after.pin.tries_left == 0 && risk.ada[1] & 0x10 != 0 {
            set(&mut cvr_bits, cvr::PIN_LIMIT_EXCEEDED);
            decline = true;
        }
        approve = !decline && !after.blocked;
    } else if requested == Requested::Aac || !arc_approves(&effective_arc) || after.blocked {
        // §16.6.1.
        if supported && !performed {
            set(&mut cvr_bits, cvr::ISSUER_AUTH_NOT_PERFORMED);
        }
        mark_failed = mandatory && !performed;
        reset = !supported || (!mandatory && !performed) || success;
        approve = false;
    } else {
        // §16.6.2.
        if supported && !performed {
            set(&mut cvr_bits, cvr::ISSUER_AUTH_NOT_PERFORMED);
        }
        let auth_failed = performed && !success;
        let auth_missing = mandatory && !performed;
        let decline =
            (auth_failed && risk.ada[0] & 0x40 != 0) || (auth_missing && risk.ada[0] & 0x20 != 0);
        mark_failed = auth_missing;
        // §16.6.2.1 step 3 b): counters reset only after a good (or optional, skipped) issuer
        // authentication.
        reset = !decline && !auth_failed && !auth_missing;
        approve = !decline;
    }
    if let Some(b2) = cvr_bits.get_mut(1) {
        *b2 &= !cvr::SECOND_MASK.1;
        if approve {
            *b2 |= cvr::SECOND_TC.1;
        }
    }
    let result = if approve { cid::TC } else { cid::AAC };
    let signing = cda && approve && after.aip[0] & AIP_CDA != 0;
    if signing {
        set(&mut cvr_bits, cvr::DDA_PERFORMED);
    }
    let pdol = txn.pdol.clone();
    let cdol1 = txn.cdol1.clone().unwrap_or_default();

    // Persistent effects (§16.6.1, §16.6.2.1 step 3, §16.6.2.2), one commit.
    if mark_failed {
        after.indicators.issuer_auth_failed = true;
    }
    if reset {
        let i = &mut after.indicators;
        i.online_auth_pending = false;
        i.sda_failed = false;
        i.dda_failed = false;
        i.script_count = 0;
        i.script_failed = false;
        if approve {
            after.last_online_atc = after.atc;
        }
    }
    let (response, _) = respond(
        &after,
        result,
        cvr_bits,
        &[&cdol2, &cdol1, &pdol],
        signing,
        &[pdol.raw(), cdol1.raw(), cdol2.raw()],
        &cdol2,
    )?;
    if approve {
        let record = log::transaction_record(&[&cdol1, &pdol], after.atc);
        log::log_transaction(ctx.image, ctx.adf, &record)?;
    }
    if approve || after != committed {
        *ctx.state_mut()? = after;
        ctx.commit()?;
    }
    if let Some(t) = ctx.session.txn.as_mut() {
        t.cvr = cvr_bits;
        t.gen_ac_count = 2;
        t.completed = true;
        t.cdol2 = Some(cdol2);
    }
    Ok(response)
}
