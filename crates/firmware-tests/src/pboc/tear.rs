//! Tear protection (防拔, JR/T 0025.12 §7.4.1, §7.7.19).
//!
//! Every debit and every load is one commit of the card image: balance, ATC, log record and
//! indicators are written together or not at all (the storage writes the whole image
//! atomically), so a tear before the commit leaves the card as it was and a tear after it
//! leaves the change complete.
//!
//! A qPBOC offline approval also keeps a [`TearGuard`] in that same commit: what the balance
//! and the transaction log were before. Reading the last record of the AFL ends the
//! transaction and drops the guard (one more commit). If the card is selected again with the
//! guard still there, the terminal never received the records it needs to complete the
//! transaction, and the debit is undone: balance and log go back, in one commit. The ATC is
//! never decremented.
//!
//! [`TearGuard`]: super::state::TearGuard

use card_core::status::StatusWord as Sw;

use super::SFI_LOG;
use super::applet::Ctx;
use super::log;
use super::session::Path;

/// At selection: undo a qPBOC debit whose last record was never read.
pub(crate) fn recover(ctx: &mut Ctx<'_>) -> Result<(), Sw> {
    let Some(guard) = ctx.state_mut()?.tear.take() else {
        return Ok(());
    };
    if let Some(ec) = ctx.state_mut()?.ec.as_mut() {
        ec.balance = guard.balance_before;
    }
    log::set_records(ctx.image, ctx.adf, SFI_LOG, guard.log_before.clone())?;
    ctx.commit()
}

/// The last record of a qPBOC offline approval was read: the transaction is complete.
pub(crate) fn finish(ctx: &mut Ctx<'_>) -> Result<(), Sw> {
    if ctx.state()?.tear.is_none() {
        return Ok(());
    }
    ctx.state_mut()?.tear = None;
    ctx.commit()?;
    if let Some(t) = ctx.session.txn.as_mut()
        && let Path::Qpboc(q) = &mut t.path
    {
        q.offline = false;
    }
    Ok(())
}
