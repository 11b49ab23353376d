//! The applet: which commands the payment application answers while it is selected, and
//! what SELECT of the PSE, PPSE or ADF answers.
//!
//! | command | APDU | module |
//! |---|---|---|
//! | GET PROCESSING OPTIONS | `80 A8 00 00` | [`super::gpo`] |
//! | GENERATE AC | `80 AE P1 00` | [`super::generate_ac`] |
//! | EXTERNAL AUTHENTICATE | `00 82 00 00` | [`super::generate_ac`] |
//! | INTERNAL AUTHENTICATE (DDA) | `00 88 00 00` | here |
//! | READ RECORD | `00 B2 P1 P2` | here (records, logs, `P1=00` on the load log) |
//! | GET DATA | `80 CA P1 P2` | here |
//! | VERIFY (offline plaintext PIN) | `00 20 00 80` | [`super::pin`] |
//! | PUT DATA, APPLICATION BLOCK/UNBLOCK, PIN CHANGE/UNBLOCK | `04 DA`, `84 1E`, `84 18`, `84 24` | [`super::script`] |
//!
//! Everything else goes to the card OS. Status words follow JR/T 0025.5 附录 B and ISO/IEC
//! 7816-4: `6700` wrong length, `6A86` wrong P1-P2, `6985` conditions of use, `6A88` unknown
//! data object, `6A83` no record, `6982` security status.

use card_core::apdu::Command;
use card_core::status::StatusWord as Sw;

use super::dol::{self, DolData};
use super::files::{self, PPSE_NAME, PSE_NAME};
use super::session::Session;
use super::state::PbocState;
use super::{ec, generate_ac, gpo, log, pin, script, tear};
use crate::fs::{self, NodeId, NodeKind};
use crate::image::CardImage;
use crate::storage::Storage;

/// What the applet needs from the card OS for one command.
pub(crate) struct Ctx<'a> {
    /// The card image (RAM copy of the committed state, changed in place).
    pub image: &'a mut CardImage,
    /// Where commits go.
    pub storage: &'a mut dyn Storage,
    /// Commits attempted so far (for tests that tear each one).
    pub commits: &'a mut u64,
    /// The application's RAM.
    pub session: &'a mut Session,
    /// The ADF.
    pub adf: NodeId,
}

impl Ctx<'_> {
    /// The application state (present whenever a context exists).
    pub fn state(&self) -> Result<&PbocState, Sw> {
        self.image.pboc.as_ref().ok_or(Sw::ConditionsNotSatisfied)
    }

    /// The application state, mutably.
    pub fn state_mut(&mut self) -> Result<&mut PbocState, Sw> {
        self.image.pboc.as_mut().ok_or(Sw::ConditionsNotSatisfied)
    }

    /// Make the image in RAM the committed state, in one atomic write. If the write fails (a
    /// tear), RAM goes back to what is committed and the answer is `6581`.
    pub fn commit(&mut self) -> Result<(), Sw> {
        crate::os::commit_image(self.image, self.storage, self.commits)
    }
}

/// The ADF of the payment application, if the card has one.
pub(crate) fn adf_node(image: &CardImage) -> Option<NodeId> {
    let aid = &image.pboc.as_ref()?.aid;
    image.fs.dfs_by_name(aid).into_iter().find(|&id| {
        matches!(image.fs.node(id).map(|n| &n.kind), Some(NodeKind::Df { aid: Some(a), .. }) if a == aid)
    })
}

/// Which PBOC file a DF is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selected {
    /// The PSE.
    Pse,
    /// The PPSE.
    Ppse,
    /// The ADF.
    Adf,
}

/// Whether `df` is the PSE, the PPSE or the ADF.
pub(crate) fn which(image: &CardImage, df: NodeId) -> Option<Selected> {
    let state = image.pboc.as_ref()?;
    let Some(NodeKind::Df {
        aid: Some(name), ..
    }) = image.fs.node(df).map(|n| &n.kind)
    else {
        return None;
    };
    if name.as_slice() == PSE_NAME {
        Some(Selected::Pse)
    } else if name.as_slice() == PPSE_NAME {
        Some(Selected::Ppse)
    } else if *name == state.aid {
        Some(Selected::Adf)
    } else {
        None
    }
}

/// SELECT of a PBOC DF: its FCI and status word. Selecting the ADF starts a new application
/// session; if a qPBOC debit was left unfinished it is undone first (JR/T 0025.12 §7.4.1). A
/// blocked or locked application answers `6283` with its FCI (JR/T 0025.5 附录 B.2.1).
pub(crate) fn select(ctx: &mut Ctx<'_>, target: Selected) -> Result<(Vec<u8>, Sw), Sw> {
    let fci = |r: Result<Vec<u8>, super::PbocError>| r.map_err(|_| Sw::ExecutionError);
    match target {
        Selected::Pse => Ok((fci(files::pse_fci())?, Sw::Success)),
        Selected::Ppse => Ok((fci(files::ppse_fci(ctx.state()?))?, Sw::Success)),
        Selected::Adf => {
            tear::recover(ctx)?;
            let state = ctx.state()?;
            let sw = if state.blocked || state.locked {
                Sw::SelectedFileInvalidated
            } else {
                Sw::Success
            };
            Ok((fci(files::adf_fci(state))?, sw))
        }
    }
}

/// Process a command for the selected ADF, or `None` if the card OS should.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, cmd: &Command) -> Option<Result<Vec<u8>, Sw>> {
    let out = match (cmd.cla, cmd.ins) {
        (0x80, 0xa8) => gpo::get_processing_options(ctx, cmd),
        (0x80, 0xae) => generate_ac::generate_ac(ctx, cmd),
        (0x00, 0x82) => generate_ac::external_authenticate(ctx, cmd).map(|()| Vec::new()),
        (0x00, 0x88) => internal_authenticate(ctx, cmd),
        (0x00, 0xb2) => read_record(ctx, cmd),
        (0x80, 0xca) => get_data(ctx, cmd),
        (0x00, 0x20) => pin::verify(ctx, cmd).map(|()| Vec::new()),
        (0x04, 0xda) | (0x84, 0x1e | 0x18 | 0x24) => script::process(ctx, cmd).map(|()| Vec::new()),
        (0x00 | 0x80, 0xda | 0x1e | 0x18 | 0x24) => {
            script::missing_secure_messaging(ctx).map(|()| Vec::new())
        }
        // The same instructions with another class.
        (_, 0xa8 | 0xae | 0xca) | (0x80 | 0x84 | 0x04, 0x82 | 0x88 | 0xb2 | 0x20) => {
            Err(Sw::ClaNotSupported)
        }
        _ => return None,
    };
    Some(out)
}

/// INTERNAL AUTHENTICATE: standard DDA (JR/T 0025.5 §9.4.3.1, 附录 B.9; JR/T 0025.7 §5.3.5.1;
/// JR/T 0025.17 §5.2.4.1). The data is the DDOL data (`9F37`, 4 bytes); the ICC dynamic data
/// is an 8-byte ICC dynamic number with its length; the answer is format 1, `80 {signed
/// dynamic application data}` (附录 B.9.4).
fn internal_authenticate(ctx: &mut Ctx<'_>, cmd: &Command) -> Result<Vec<u8>, Sw> {
    if cmd.p1 != 0 || cmd.p2 != 0 {
        return Err(Sw::IncorrectP1P2);
    }
    let terminal = DolData::split(dol::DDOL, cmd.data()).ok_or(Sw::WrongLength)?;
    let state = ctx.state()?;
    if state.aip[0] & 0x20 == 0 {
        return Err(Sw::ConditionsNotSatisfied);
    }
    let key = state.keys.icc.as_ref().ok_or(Sw::ConditionsNotSatisfied)?;
    let mut number = [0u8; 8];
    getrandom::fill(&mut number).map_err(|_| Sw::ExecutionError)?;
    let mut icc_dynamic = vec![8u8];
    icc_dynamic.extend_from_slice(&number);
    let sdad = super::oda::sign_dynamic(key, &icc_dynamic, terminal.raw())
        .map_err(|_| Sw::ExecutionError)?;
    if ctx.session.txn.is_some() {
        ctx.session.set_cvr(super::session::cvr::DDA_PERFORMED);
    }
    tlv(0x80, &sdad)
}

fn tlv(tag: u32, value: &[u8]) -> Result<Vec<u8>, Sw> {
    card_core::tlv::Tlv::primitive(card_core::tlv::Tag::new(tag), value.to_vec())
        .to_bytes()
        .map_err(|_| Sw::ExecutionError)
}

/// READ RECORD in the ADF (JR/T 0025.5 附录 B.12): record P1 of the file SFI (P2 `SFI<<3 |
/// 100`). `P1=00` on the load log reads all of it under a MAC (JR/T 0025.13 表8, 表12). SFI 4
/// record 1 carries this transaction's `9F69` in qPBOC; reading the last record of a qPBOC
/// offline AFL ends the tear protection of the debit (JR/T 0025.12 §7.7.19).
fn read_record(ctx: &mut Ctx<'_>, cmd: &Command) -> Result<Vec<u8>, Sw> {
    if !cmd.data().is_empty() {
        return Err(Sw::WrongLength);
    }
    let sfi = cmd.p2 >> 3;
    if cmd.p2 & 0x07 != 0b100 || sfi == 0 || sfi == 31 {
        return Err(Sw::IncorrectP1P2);
    }
    let ef = ctx
        .image
        .fs
        .child_by_sfi(ctx.adf, sfi)
        .ok_or(Sw::FileNotFound)?;
    if cmd.p1 == 0 {
        if sfi != super::SFI_LOAD_LOG {
            return Err(Sw::IncorrectP1P2);
        }
        return Ok(log::load_log_all(ctx.state()?, ctx.image, ctx.adf));
    }
    let qpboc = ctx.session.txn.as_ref().and_then(|t| match &t.path {
        super::session::Path::Qpboc(q) => Some(q.clone()),
        super::session::Path::Contact { .. } => None,
    });
    let record = if let (4, 1, Some(q)) = (sfi, cmd.p1, &qpboc) {
        let fdda = q.fdda_v01.then_some((q.card_un, q.ctq));
        files::sfi4_record(ctx.state()?, fdda).map_err(|_| Sw::ExecutionError)?
    } else {
        match ctx.image.fs.node(ef).map(|n| &n.kind) {
            Some(NodeKind::Ef { body, .. }) => fs::record(body, usize::from(cmd.p1))?.to_vec(),
            _ => return Err(Sw::IncompatibleFileStructure),
        }
    };
    if let Some(q) = &qpboc
        && q.offline
        && q.last_record == Some((sfi, cmd.p1))
    {
        tear::finish(ctx)?;
    }
    Ok(record)
}

/// GET DATA (JR/T 0025.5 附录 B.7; JR/T 0025.13 §10.1, §10.3): `9F79` EC balance, `9F77` balance
/// limit, `9F78` single-transaction limit, `9F6D` reset threshold, `9F36` ATC, `9F13` last
/// online ATC, `9F17` PIN try counter, `9F4F` log format, `DF4F` load log format, `9F5D`
/// available offline spending amount when personalised; anything else `6A88`. Reading a PIN
/// try counter of 0 sets the CVR bit "PIN try limit exceeded" (JR/T 0025.5 §11.4.2 step 1).
fn get_data(ctx: &mut Ctx<'_>, cmd: &Command) -> Result<Vec<u8>, Sw> {
    if !cmd.data().is_empty() {
        return Err(Sw::WrongLength);
    }
    let tag = u32::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
    let state = ctx.state()?;
    let ec = state.ec.as_ref();
    let value: Vec<u8> = match tag {
        0x9f79 => ec::n12(ec.ok_or(Sw::ReferencedDataNotFound)?.balance).to_vec(),
        0x9f77 => ec::n12(ec.ok_or(Sw::ReferencedDataNotFound)?.balance_limit).to_vec(),
        0x9f78 => ec::n12(ec.ok_or(Sw::ReferencedDataNotFound)?.single_limit).to_vec(),
        0x9f6d => ec::n12(ec.ok_or(Sw::ReferencedDataNotFound)?.reset_threshold).to_vec(),
        0x9f5d if state.risk.available_offline_amount => {
            ec::n12(ec.ok_or(Sw::ReferencedDataNotFound)?.balance).to_vec()
        }
        0x9f36 => state.atc.to_be_bytes().to_vec(),
        0x9f13 => state.last_online_atc.to_be_bytes().to_vec(),
        0x9f17 => {
            let tries = state.pin.tries_left;
            if tries == 0 {
                ctx.session.set_cvr(super::session::cvr::PIN_LIMIT_EXCEEDED);
            }
            vec![tries]
        }
        0x9f4f => files::dol_value(dol::LOG_FORMAT),
        0xdf4f => files::dol_value(dol::LOAD_LOG_FORMAT),
        _ => return Err(Sw::ReferencedDataNotFound),
    };
    tlv(tag, &value)
}
