//! Issuer script commands with secure messaging (JR/T 0025.5 §17, 附录 B.2-B.4, B.10, B.11,
//! 附录 C; JR/T 0025.13 §8, §10.4).
//!
//! The MAC is the last 4 bytes of the data field (附录 C.2.1, C.2.2). It is computed with the
//! MAC session key of the ATC (附录 C.4, from MK-SMI) over `CLA INS P1 P2 Lc ‖ ATC ‖ application
//! cryptogram ‖ data without the MAC` (附录 C.2.4 step 2: Lc counts the MAC; the ATC and the
//! cryptogram, normally the ARQC, are those of the current transaction), padded `80 00..`.
//!
//! A script needs a transaction whose first GENERATE AC gave a cryptogram; if issuer
//! authentication was performed and failed, scripts answer `6985` (§17.6.2). A wrong MAC
//! answers `9302` and stops the script: every later script command of the transaction answers
//! `6985` (§17.6.3). After the second GENERATE AC each command counts in the issuer script
//! command counter, and a wrong MAC or a failed command sets the script failure indicator
//! (§17.6.4); both are committed with the command's own changes.
//!
//! The same commands without secure messaging (class `00` or `80`) answer `6982`.
//!
//! Commands:
//! - PUT DATA `04 DA P1 P2` (附录 B.11, JR/T 0025.13 §10.4 表15/表16): `9F79` EC balance (a
//!   load: refused with `6A80` above the balance limit `9F77`; the load log record is written
//!   in the same commit, JR/T 0025.13 §5.8 表10), `9F77`, `9F78`, `9F6D` (n12), `9F58`,
//!   `9F59` (b8); other tags `6A88`.
//! - APPLICATION BLOCK `84 1E 00 00`, APPLICATION UNBLOCK `84 18 00 00` (附录 B.2, B.3).
//! - PIN CHANGE/UNBLOCK `84 24 00 00`: reset of the PIN try counter (附录 B.10, P2 `00`); a PIN
//!   change (P2 `01`/`02`, enciphered PIN block) is not implemented and answers `6A86`.

use card_core::apdu::Command;
use card_core::status::StatusWord as Sw;

use super::applet::Ctx;
use super::session::Path;
use super::{SFI_LOAD_LOG, cryptogram, ec, log};

/// Process one script command.
pub(crate) fn process(ctx: &mut Ctx<'_>, cmd: &Command) -> Result<(), Sw> {
    if cmd.ne().is_some() {
        return Err(Sw::WrongLength);
    }
    let data = cmd.data();
    let Some((body, mac)) = data.split_last_chunk::<4>() else {
        return Err(Sw::WrongLength);
    };
    let Some(txn) = ctx.session.txn.as_ref() else {
        return Err(Sw::ConditionsNotSatisfied);
    };
    let Some(ac) = txn
        .first_ac
        .filter(|_| matches!(txn.path, Path::Contact { .. }))
    else {
        return Err(Sw::ConditionsNotSatisfied);
    };
    if ctx.session.scripts_halted || txn.external_auth == Some(false) {
        return Err(Sw::ConditionsNotSatisfied);
    }
    let after_second = txn.completed;
    let (body, mac) = (body.to_vec(), *mac);
    let state = ctx.state()?;
    let atc = state.atc;
    let lc = u8::try_from(data.len()).map_err(|_| Sw::WrongLength)?;
    let mut macced = vec![cmd.cla, cmd.ins, cmd.p1, cmd.p2, lc];
    macced.extend_from_slice(&atc.to_be_bytes());
    macced.extend_from_slice(&ac.value);
    macced.extend_from_slice(&body);
    let expected = cryptogram::mac(state, atc, &macced);

    let before = state.clone();
    let log_before = log::records(ctx.image, ctx.adf, SFI_LOAD_LOG);
    if after_second {
        let counter = &mut ctx.state_mut()?.indicators.script_count;
        *counter = counter.saturating_add(1).min(15);
    }
    if !cryptogram::mac_eq(&expected, &mac) {
        ctx.session.scripts_halted = true;
        if after_second {
            ctx.state_mut()?.indicators.script_failed = true;
            ctx.commit()?;
        }
        return Err(Sw::MacInvalid);
    }
    match execute(ctx, cmd, &body) {
        Ok(()) => {
            ctx.commit()?;
            Ok(())
        }
        Err(sw) => {
            // Undo whatever the command changed in RAM; keep only the counters.
            let counter = ctx.state()?.indicators.script_count;
            *ctx.state_mut()? = before;
            log::set_records(ctx.image, ctx.adf, SFI_LOAD_LOG, log_before)?;
            if after_second {
                let st = ctx.state_mut()?;
                st.indicators.script_count = counter;
                st.indicators.script_failed = true;
                ctx.commit()?;
            }
            Err(sw)
        }
    }
}

/// A script command sent without secure messaging (class `00`/`80` instead of `04`/`84`):
/// `6982`. After the second GENERATE AC it sets the script failure indicator: secure
/// messaging was required and not provided (§17.6.4).
pub(crate) fn missing_secure_messaging(ctx: &mut Ctx<'_>) -> Result<(), Sw> {
    let after_second = ctx
        .session
        .txn
        .as_ref()
        .is_some_and(|t| t.completed && matches!(t.path, Path::Contact { .. }));
    if after_second && !ctx.state()?.indicators.script_failed {
        ctx.state_mut()?.indicators.script_failed = true;
        ctx.commit()?;
    }
    Err(Sw::SecurityStatusNotSatisfied)
}

fn execute(ctx: &mut Ctx<'_>, cmd: &Command, body: &[u8]) -> Result<(), Sw> {
    match (cmd.cla, cmd.ins) {
        (0x04, 0xda) => put_data(ctx, cmd, body),
        (0x84, 0x1e | 0x18) => {
            if cmd.p1 != 0 || cmd.p2 != 0 {
                return Err(Sw::IncorrectP1P2);
            }
            if !body.is_empty() {
                return Err(Sw::WrongLength);
            }
            ctx.state_mut()?.blocked = cmd.ins == 0x1e;
            Ok(())
        }
        (0x84, 0x24) => {
            if cmd.p1 != 0 || cmd.p2 != 0 {
                return Err(Sw::IncorrectP1P2);
            }
            if !body.is_empty() {
                return Err(Sw::WrongLength);
            }
            let pin = &mut ctx.state_mut()?.pin;
            pin.tries_left = pin.max_tries;
            Ok(())
        }
        _ => Err(Sw::InsNotSupported),
    }
}

/// PUT DATA of an EC parameter or a limit.
fn put_data(ctx: &mut Ctx<'_>, cmd: &Command, value: &[u8]) -> Result<(), Sw> {
    let tag = u16::from_be_bytes([cmd.p1, cmd.p2]);
    let amount = || -> Result<u64, Sw> {
        if value.len() != 6 {
            return Err(Sw::WrongLength);
        }
        ec::from_bcd(value).ok_or(Sw::IncorrectData)
    };
    let byte = || -> Result<u8, Sw> {
        match value {
            [b] => Ok(*b),
            _ => Err(Sw::WrongLength),
        }
    };
    match tag {
        0x9f79 => {
            let new = amount()?;
            let state = ctx.state()?;
            let e = state.ec.as_ref().ok_or(Sw::ReferencedDataNotFound)?;
            // JR/T 0025.13 §8: a balance above the balance limit is refused.
            if new > e.balance_limit {
                return Err(Sw::IncorrectData);
            }
            let old = e.balance;
            let txn = ctx.session.txn.as_ref().ok_or(Sw::ConditionsNotSatisfied)?;
            let empty = super::dol::DolData::default();
            let sources = [txn.cdol1.as_ref().unwrap_or(&empty), &txn.pdol];
            let record = log::load_record(
                cmd.p1,
                cmd.p2,
                ec::n12(old),
                ec::n12(new),
                &sources,
                state.atc,
            );
            log::append(ctx.image, ctx.adf, SFI_LOAD_LOG, &record)?;
            if let Some(e) = ctx.state_mut()?.ec.as_mut() {
                e.balance = new;
            }
            Ok(())
        }
        0x9f77 | 0x9f78 | 0x9f6d => {
            let new = amount()?;
            let st = ctx.state_mut()?;
            let e = st.ec.as_mut().ok_or(Sw::ReferencedDataNotFound)?;
            match tag {
                0x9f77 if new < e.balance => return Err(Sw::IncorrectData),
                0x9f77 => e.balance_limit = new,
                0x9f78 => e.single_limit = new,
                _ => e.reset_threshold = new,
            }
            Ok(())
        }
        0x9f58 => {
            let b = byte()?;
            ctx.state_mut()?.risk.lower_consecutive_offline_limit = Some(b);
            Ok(())
        }
        0x9f59 => {
            let b = byte()?;
            ctx.state_mut()?.risk.upper_consecutive_offline_limit = Some(b);
            Ok(())
        }
        _ => Err(Sw::ReferencedDataNotFound),
    }
}
