//! GET PROCESSING OPTIONS (JR/T 0025.5 §7, 附录 B.8) and the qPBOC card risk management done
//! inside it (JR/T 0025.12 §7.4-§7.7).
//!
//! The card takes the terminal transaction qualifiers (`9F66`) byte 1 bit 6 (qPBOC supported)
//! as a contactless qPBOC transaction, and every other GPO as contact debit/credit
//! (docs/pboc-profile.md "interface": the software card has one physical interface).

use card_core::apdu::Command;
use card_core::status::StatusWord as Sw;
use card_core::tlv::{Tag, Tlv};

use super::applet::Ctx;
use super::dol::{
    self, DolData, TAG_AMOUNT, TAG_CURRENCY, TAG_EC_INDICATOR, TAG_SM_INDICATOR, TAG_TTQ, TAG_UN,
};
use super::files::{self, AFL_CONTACT, AFL_CONTACT_EC, AFL_QPBOC};
use super::session::{Ac, Path, Qpboc, Txn, cid, cvr};
use super::state::{Algorithm, TearGuard};
use super::{SFI_LOG, cryptogram, ec, log, oda};

/// The PDOL data of a GPO command: the value of template `83` (JR/T 0025.5 附录 B.8.3),
/// exactly as long as the PDOL asks.
fn pdol_data(cmd: &Command) -> Result<DolData, Sw> {
    let data = cmd.data();
    if data.is_empty() {
        return Err(Sw::WrongLength);
    }
    let t = Tlv::parse(data).map_err(|_| Sw::WrongLength)?;
    if t.tag() != Tag::new(0x83) {
        return Err(Sw::IncorrectData);
    }
    DolData::split(dol::PDOL, t.bytes().unwrap_or_default()).ok_or(Sw::WrongLength)
}

/// GET PROCESSING OPTIONS: check the PDOL data, count the transaction (ATC + 1; at 65535 the
/// application locks for good and GPO answers `6985`, JR/T 0025.5 §7.4 step 3 a) and 图5,
/// JR/T 0025.12 §7.4.2), start the CVR from zero, and answer with AIP and AFL (contact), or
/// with the whole qPBOC answer. One GPO per selection of the application (`6985` after).
pub(crate) fn get_processing_options(ctx: &mut Ctx<'_>, cmd: &Command) -> Result<Vec<u8>, Sw> {
    if cmd.p1 != 0 || cmd.p2 != 0 {
        return Err(Sw::IncorrectP1P2);
    }
    let pdol = pdol_data(cmd)?;
    if ctx.session.txn.is_some() {
        return Err(Sw::ConditionsNotSatisfied);
    }
    let ttq = pdol.get(TAG_TTQ).unwrap_or_default();
    let qpboc = ttq.first().is_some_and(|b| b & 0x20 != 0);
    let state = ctx.state()?;
    // JR/T 0025.12 §7.5 and JR/T 0025.17 §10.2 表20: an SM-only card cannot serve a contactless
    // terminal that does not support SM (DF69 = 00). A contact GPO ignores DF69 (§10.3.3 a)).
    if qpboc && state.algorithm == Algorithm::Sm && pdol.get(TAG_SM_INDICATOR) == Some(&[0x00]) {
        return Err(Sw::ConditionsNotSatisfied);
    }
    if state.locked || state.atc == u16::MAX {
        if !state.locked {
            ctx.state_mut()?.locked = true;
            ctx.commit()?;
        }
        return Err(Sw::ConditionsNotSatisfied);
    }
    let atc = state.atc + 1;
    ctx.state_mut()?.atc = atc;
    if atc == u16::MAX {
        ctx.state_mut()?.locked = true;
        ctx.commit()?;
        return Err(Sw::ConditionsNotSatisfied);
    }
    if qpboc {
        return qpboc_gpo(ctx, pdol);
    }
    let state = ctx.state()?;
    let is_ec = ec::is_ec_transaction(
        state,
        pdol.get(TAG_EC_INDICATOR),
        pdol.get(TAG_CURRENCY),
        pdol.get(TAG_AMOUNT).and_then(ec::from_bcd),
    );
    let mut response = state.aip.to_vec();
    response.extend_from_slice(if is_ec {
        &AFL_CONTACT_EC[..]
    } else {
        &AFL_CONTACT[..]
    });
    ctx.commit()?;
    ctx.session.txn = Some(Txn::new(Path::Contact { ec: is_ec }, pdol));
    tlv(0x80, response)
}

fn tlv(tag: u32, value: Vec<u8>) -> Result<Vec<u8>, Sw> {
    Tlv::primitive(Tag::new(tag), value)
        .to_bytes()
        .map_err(|_| Sw::ExecutionError)
}

/// The card's decision in qPBOC (JR/T 0025.12 §7.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// §7.7.14: approve offline (TC).
    Offline,
    /// §7.7.15: go online (ARQC).
    Online,
    /// §7.7.17: decline (AAC).
    Decline,
}

/// The issuer application data: `07 ‖ DKI ‖ CVN ‖ CVR ‖ algorithm id` (JR/T 0025.5 附录 A
/// `9F10`, JR/T 0025.17 §5.2.5.1 表16) and, on a card with electronic cash, the IDD with the
/// balance under a MAC (JR/T 0025.13 表3; JR/T 0025.12 附录 D.2: the IDD is personalised and
/// returned with every cryptogram).
pub(crate) fn issuer_application_data(state: &super::state::PbocState, cvr: [u8; 4]) -> Vec<u8> {
    let mut iad = vec![0x07, state.dki, state.cvn];
    iad.extend_from_slice(&cvr);
    iad.push(state.algorithm.iad_id());
    if let Some(idd) = ec::balance_idd(state) {
        iad.extend(idd);
    }
    iad
}

/// The data an application cryptogram covers, cryptogram version 01 (JR/T 0025.5 附录 E
/// 表E.1, 附录 D.1 表D.1): the terminal elements (taken from `sources`, first wins), then AIP,
/// ATC and the 4-byte CVR (JR/T 0025.7 §6.1.1 表22/表23).
pub(crate) fn cryptogram_data(
    state: &super::state::PbocState,
    sources: &[&DolData],
    cvr: [u8; 4],
) -> Vec<u8> {
    let mut data = dol::collect(dol::CRYPTOGRAM_TERMINAL_DATA, sources);
    data.extend_from_slice(&state.aip);
    data.extend_from_slice(&state.atc.to_be_bytes());
    data.extend_from_slice(&cvr);
    data
}

/// qPBOC inside GPO (JR/T 0025.12 §7.4, §7.7): card risk management, then the cryptogram
/// (version 01: the PDOL data of 表10 as 表D.1, AIP, ATC, CVR; §7.3.3), and for an offline
/// approval the EC debit, the fDDA signature (附录 B) and the tear guard, all committed with
/// the ATC in one commit.
///
/// Implemented checks of §7.7 (card additional processes `9F68`): currency match (§7.7.1,
/// byte 2 bit 7), offline-only terminal with new-card and PIN-exceeded checks and the CVM
/// requirement (§7.7.2), CVM by online PIN or signature (§7.7.3, card CVM limit `9F6B`),
/// online requests (§7.7.4: terminal, currency, new card, PIN try counter), the small-amount
/// check on the EC balance (§7.7.10, byte 1 bit 8). The CTTA variants (§7.7.11, §7.7.12),
/// prepaid (§7.7.15) and the international counter of §7.7.13 are not implemented: a card
/// personalised with them behaves as if no offline option applied (§7.7.9).
fn qpboc_gpo(ctx: &mut Ctx<'_>, pdol: DolData) -> Result<Vec<u8>, Sw> {
    let state = ctx.state()?;
    let ttq: [u8; 4] = pdol
        .get(TAG_TTQ)
        .and_then(|t| t.try_into().ok())
        .unwrap_or_default();
    let amount = pdol
        .get(TAG_AMOUNT)
        .and_then(ec::from_bcd)
        .unwrap_or(u64::MAX);
    let currency_match = pdol.get(TAG_CURRENCY) == Some(&state.currency_bcd()[..]);
    let offline_only = ttq[0] & 0x08 != 0;
    let cap = state.risk.card_additional_processes;
    let mut ctq = state.risk.ctq;
    let mut cvr_bits = cvr::INITIAL;
    let mut set = |(byte, bit): (usize, u8)| {
        if let Some(b) = cvr_bits.get_mut(byte) {
            *b |= bit;
        }
    };
    let cvm_required = ttq[1] & 0x40 != 0
        || (currency_match && state.risk.cvm_limit.is_some_and(|l| amount > l))
        || (!currency_match && cap[2] & 0x20 != 0);
    let signature = ttq[0] & 0x02 != 0 && cap[2] & 0x10 != 0;
    let online_pin = ttq[0] & 0x04 != 0
        && if currency_match {
            cap[2] & 0x80 != 0
        } else {
            cap[2] & 0x40 != 0
        };
    let new_card = state.last_online_atc == 0;
    let pin_exceeded = state.pin.tries_left == 0;

    // §7.7.1 - §7.7.4: decisions before the offline checks. A blocked application declines
    // (JR/T 0025.5 §17.5).
    let early = if state.blocked || (!currency_match && cap[1] & 0x40 != 0) {
        Some(Decision::Decline)
    } else if offline_only {
        if new_card && cap[1] & 0x20 != 0 {
            Some(Decision::Decline)
        } else if cap[0] & 0x08 != 0 && pin_exceeded {
            set(cvr::PIN_LIMIT_EXCEEDED);
            Some(Decision::Decline)
        } else if cvm_required && !signature {
            // §7.7.2: no common CVM, terminate (§7.7.16).
            return Err(Sw::ConditionsNotSatisfied);
        } else {
            if cvm_required {
                ctq[0] |= 0x40;
            }
            None
        }
    } else if cvm_required && online_pin {
        ctq[0] |= 0x80;
        Some(Decision::Online)
    } else if cvm_required && !signature {
        return Err(Sw::ConditionsNotSatisfied);
    } else {
        if cvm_required {
            ctq[0] |= 0x40;
        }
        if ttq[1] & 0x80 != 0 || (cap[0] & 0x04 == 0 && !currency_match) {
            Some(Decision::Online)
        } else if cap[0] & 0x10 != 0 && new_card {
            set(cvr::NEW_CARD);
            Some(Decision::Online)
        } else if cap[0] & 0x08 != 0 && pin_exceeded {
            set(cvr::PIN_LIMIT_EXCEEDED);
            Some(Decision::Online)
        } else {
            None
        }
    };
    let refuse = if offline_only {
        Decision::Decline
    } else {
        Decision::Online
    };
    // §7.7.5 - §7.7.10: the offline checks.
    let decision = match early {
        Some(d) => d,
        None if !currency_match => {
            set(cvr::VELOCITY_EXCEEDED);
            refuse
        }
        None => match (&state.ec, cap[0] & 0x80 != 0) {
            (Some(ec), true) => {
                let room = if offline_only {
                    ec.balance
                } else {
                    ec.balance.saturating_sub(ec.reset_threshold)
                };
                if amount > ec.single_limit || amount > room || amount > ec.balance {
                    set(cvr::VELOCITY_EXCEEDED);
                    refuse
                } else {
                    Decision::Offline
                }
            }
            _ => refuse,
        },
    };
    let (cid, first) = match decision {
        Decision::Offline => (cid::TC, cvr::FIRST_TC),
        Decision::Online => (cid::ARQC, cvr::FIRST_ARQC),
        Decision::Decline => (cid::AAC, (1, 0)),
    };
    set(first);

    // The debit and its log record (§7.7.10 "交易被允许脱机完成", §7.7.19), guarded.
    let atc = state.atc;
    let logged = cap[1] & 0x10 != 0;
    if decision == Decision::Offline {
        let adf = ctx.adf;
        let log_before = log::records(ctx.image, adf, SFI_LOG);
        let state = ctx.state_mut()?;
        let Some(ec) = state.ec.as_mut() else {
            return Err(Sw::ExecutionError);
        };
        let balance_before = ec.balance;
        ec.balance = balance_before.saturating_sub(amount);
        state.tear = Some(TearGuard {
            atc,
            balance_before,
            log_before,
        });
        if logged {
            log::log_transaction(ctx.image, adf, &log::transaction_record(&[&pdol], atc))?;
        }
    }
    let state = ctx.state()?;
    let ac =
        cryptogram::application_cryptogram(state, atc, &cryptogram_data(state, &[&pdol], cvr_bits));
    let mut card_un = [0u8; 4];
    let fdda_v01 = ttq[3] & 0x80 != 0;
    let mut objects = vec![Tlv::primitive(Tag::new(0x82), state.aip.to_vec())];
    if decision == Decision::Offline {
        objects.push(Tlv::primitive(Tag::new(0x94), AFL_QPBOC.to_vec()));
    }
    objects.extend([
        Tlv::primitive(Tag::new(0x9f36), atc.to_be_bytes().to_vec()),
        Tlv::primitive(Tag::new(0x9f26), ac.to_vec()),
        Tlv::primitive(Tag::new(0x9f10), issuer_application_data(state, cvr_bits)),
        Tlv::primitive(Tag::new(0x57), state.track2.clone()),
    ]);
    // 表11/表12: the PSN when the card has one; an offline approval leaves it to the signed
    // record that holds it, since a data element comes only once per transaction (§7.5).
    if let Some(psn) = state.psn.filter(|_| decision != Decision::Offline) {
        objects.push(Tlv::primitive(
            Tag::new(0x5f34),
            ec::to_bcd::<1>(u64::from(psn)).to_vec(),
        ));
    }
    if decision == Decision::Offline
        && state.aip[0] & 0x20 != 0
        && let Some(key) = &state.keys.icc
    {
        // 附录 B.1: ICC dynamic data = the ATC as ICC dynamic number (表B.2); terminal
        // dynamic data = 9F37 (version 00) or 9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69 (version 01, 表B.1).
        getrandom::fill(&mut card_un).map_err(|_| Sw::ExecutionError)?;
        let mut icc_dynamic = vec![0x02];
        icc_dynamic.extend_from_slice(&atc.to_be_bytes());
        let mut terminal = pdol.get(TAG_UN).unwrap_or_default().to_vec();
        if fdda_v01 {
            terminal.extend_from_slice(pdol.get(TAG_AMOUNT).unwrap_or_default());
            terminal.extend_from_slice(pdol.get(TAG_CURRENCY).unwrap_or_default());
            terminal.extend_from_slice(&files::card_auth_data(card_un, ctq));
        }
        let sdad =
            oda::sign_dynamic(key, &icc_dynamic, &terminal).map_err(|_| Sw::ExecutionError)?;
        objects.push(Tlv::primitive(Tag::new(0x9f4b), sdad));
    }
    objects.push(Tlv::primitive(Tag::new(0x9f6c), ctq.to_vec()));
    if state.risk.available_offline_amount
        && currency_match
        && let Some(ec) = &state.ec
    {
        objects.push(Tlv::primitive(
            Tag::new(0x9f5d),
            ec::n12(ec.balance).to_vec(),
        ));
    }
    let response = Tlv::constructed(Tag::new(0x77), objects)
        .to_bytes()
        .map_err(|_| Sw::ExecutionError)?;
    ctx.commit()?;
    let mut txn = Txn::new(
        Path::Qpboc(Qpboc {
            offline: decision == Decision::Offline,
            fdda_v01,
            card_un,
            ctq,
            last_record: (decision == Decision::Offline).then_some((4, 1)),
        }),
        pdol,
    );
    txn.cvr = cvr_bits;
    txn.first_ac = Some(Ac { cid, value: ac });
    ctx.session.txn = Some(txn);
    Ok(response)
}
