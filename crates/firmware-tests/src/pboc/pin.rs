//! Offline plaintext PIN (JR/T 0025.5 §11.4.2, 附录 B.15).
//!
//! VERIFY `00 20 00 80 08 <PIN block>`, the block `2N PP PP .. FF`: control field `2`, the
//! number of digits `N` (4 to 12), the digits, `F` padding to 8 bytes. The try counter is
//! decremented and committed before the PIN is compared, so pulling the card during VERIFY
//! never gives a free try; a right PIN sets it back to the limit.
//!
//! Answers (§11.3): `9000` right; `63Cx` wrong with `x` tries left (`63C0` when it just ran
//! out); `6983` when the limit was exceeded in this transaction, or on any VERIFY after the
//! first; `6984` on the first VERIFY of a transaction when the limit was exceeded before.

use card_core::apdu::Command;
use card_core::status::StatusWord as Sw;
use zeroize::Zeroize;

use super::applet::Ctx;
use super::session::cvr;

/// The digits of a plaintext PIN block, or `None` if it is not one.
fn pin_digits(block: &[u8]) -> Option<Vec<u8>> {
    let nibbles: Vec<u8> = block.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect();
    let (&control, rest) = nibbles.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n);
    if control != 0x2 || !(4..=12).contains(&n) || block.len() != 8 {
        return None;
    }
    let (digits, padding) = rest.split_at_checked(n)?;
    (digits.iter().all(|d| *d <= 9) && padding.iter().all(|p| *p == 0x0f)).then(|| digits.to_vec())
}

/// VERIFY with a plaintext offline PIN.
pub(crate) fn verify(ctx: &mut Ctx<'_>, cmd: &Command) -> Result<(), Sw> {
    if cmd.p1 != 0 {
        return Err(Sw::IncorrectP1P2);
    }
    if cmd.p2 != 0x80 {
        // 附录 B.15 表B.34: only the plaintext PIN (80) is used by this application.
        return Err(Sw::ReferencedDataNotFound);
    }
    if cmd.ne().is_some() || cmd.data().len() != 8 {
        return Err(Sw::WrongLength);
    }
    let Some(mut candidate) = pin_digits(cmd.data()) else {
        return Err(Sw::IncorrectData);
    };
    ctx.session.verify_count += 1;
    ctx.session.set_cvr(cvr::PIN_PERFORMED);
    let result = check(ctx, &candidate);
    candidate.zeroize();
    result
}

fn check(ctx: &mut Ctx<'_>, candidate: &[u8]) -> Result<(), Sw> {
    if ctx.state()?.pin.tries_left == 0 {
        ctx.session.set_cvr(cvr::PIN_LIMIT_EXCEEDED);
        ctx.session.set_cvr(cvr::PIN_FAILED);
        return Err(
            if ctx.session.verify_count == 1 && !ctx.session.pin_exceeded_now {
                Sw::ReferenceDataInvalidated
            } else {
                Sw::AuthenticationBlocked
            },
        );
    }
    ctx.state_mut()?.pin.tries_left -= 1;
    ctx.commit()?;
    let state = ctx.state()?;
    if state.pin.matches(candidate) {
        let max = state.pin.max_tries;
        ctx.state_mut()?.pin.tries_left = max;
        ctx.commit()?;
        if let Some(t) = ctx.session.txn.as_mut() {
            t.clear(cvr::PIN_FAILED);
        }
        return Ok(());
    }
    ctx.session.set_cvr(cvr::PIN_FAILED);
    let tries_left = ctx.state()?.pin.tries_left;
    if tries_left == 0 {
        ctx.session.pin_exceeded_now = true;
        ctx.session.set_cvr(cvr::PIN_LIMIT_EXCEEDED);
        // ADA byte 2 bit 8: block the application when the limit is exceeded now.
        if ctx.state()?.risk.ada[1] & 0x80 != 0 {
            ctx.state_mut()?.blocked = true;
            ctx.session.set_cvr(cvr::BLOCKED_BY_PIN);
            ctx.commit()?;
        }
    }
    Err(Sw::WrongPin { tries_left })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_blocks() {
        assert_eq!(
            pin_digits(&[0x26, 0x12, 0x34, 0x56, 0xff, 0xff, 0xff, 0xff]),
            Some(vec![1, 2, 3, 4, 5, 6])
        );
        assert_eq!(
            pin_digits(&[0x24, 0x12, 0x34, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Some(vec![1, 2, 3, 4])
        );
        // Wrong control field, too short, digit where padding belongs, A as a digit.
        assert_eq!(
            pin_digits(&[0x16, 0x12, 0x34, 0x56, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(
            pin_digits(&[0x23, 0x12, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(
            pin_digits(&[0x24, 0x12, 0x34, 0x5f, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(
            pin_digits(&[0x24, 0x1a, 0x34, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(
            pin_digits(&[0x2c, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0xff]),
            Some(vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2])
        );
    }
}
