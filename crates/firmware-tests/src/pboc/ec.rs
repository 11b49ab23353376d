//! Electronic cash inside the debit application (JR/T 0025.13): the numeric formats of its
//! amounts, the test of JR/T 0025.13 §7.4.2 that makes a GPO an EC transaction, and the
//! issuer discretionary data carrying the balance under a MAC (表3, 表4).

use super::cryptogram;
use super::state::PbocState;

/// A number as `n` BCD digits packed into `N` bytes (`n` format, left-padded with zeros).
/// Values too large keep their rightmost digits.
pub fn to_bcd<const N: usize>(mut v: u64) -> [u8; N] {
    let mut out = [0u8; N];
    for b in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *b = (hi << 4) | lo;
    }
    out
}

/// An amount `n12` (6 bytes BCD) as in `9F02`, `9F79`.
pub fn n12(v: u64) -> [u8; 6] {
    to_bcd::<6>(v)
}

/// A code `n3` in two bytes (`0156` for 156).
pub fn n3(v: u16) -> [u8; 2] {
    to_bcd::<2>(u64::from(v))
}

/// The value of packed BCD digits, `None` if a nibble is not 0-9 or the value overflows.
pub fn from_bcd(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, b| {
        let (hi, lo) = (b >> 4, b & 0x0f);
        if hi > 9 || lo > 9 {
            return None;
        }
        acc.checked_mul(100)?
            .checked_add(u64::from(hi) * 10 + u64::from(lo))
    })
}

/// The test of JR/T 0025.13 §7.4.2: the terminal supports EC (`9F7A` = 1), the transaction
/// currency is the application currency, the amount is at most the EC balance and at most
/// the single-transaction limit, the issuer-authentication-failed and script-failed
/// indicators are clear, and the PIN try counter is not 0.
pub(crate) fn is_ec_transaction(
    state: &PbocState,
    ec_indicator: Option<&[u8]>,
    currency: Option<&[u8]>,
    amount: Option<u64>,
) -> bool {
    let Some(ec) = &state.ec else {
        return false;
    };
    let Some(amount) = amount else {
        return false;
    };
    ec_indicator == Some(&[0x01][..])
        && currency == Some(&state.currency_bcd()[..])
        && amount <= ec.balance
        && amount <= ec.single_limit
        && !state.indicators.issuer_auth_failed
        && !state.indicators.script_failed
        && state.pin.tries_left != 0
}

/// The issuer discretionary data with the EC balance (JR/T 0025.13 §7.4.5 表3, JR/T
/// 0025.12 附录 D.1 option `01`): `0A ‖ 01 ‖ balance (the rightmost 5 bytes of 9F79) ‖ MAC`,
/// the MAC over `ATC ‖ balance (5) ‖ 00` (表4, 附录 D.5) with the MAC session key of the ATC.
/// `None` when the card has no electronic cash.
pub(crate) fn balance_idd(state: &PbocState) -> Option<Vec<u8>> {
    let ec = state.ec.as_ref()?;
    let balance = n12(ec.balance);
    let low5 = balance.get(1..).unwrap_or_default();
    let mut data = state.atc.to_be_bytes().to_vec();
    data.extend_from_slice(low5);
    data.push(0x00);
    let mac = cryptogram::mac(state, state.atc, &data);
    let mut idd = vec![0x0a, 0x01];
    idd.extend_from_slice(low5);
    idd.extend_from_slice(&mac);
    Some(idd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_round_trips() {
        assert_eq!(n12(12_345), [0, 0, 0, 0x01, 0x23, 0x45]);
        assert_eq!(n3(156), [0x01, 0x56]);
        assert_eq!(from_bcd(&n12(999_999_999_999)), Some(999_999_999_999));
        assert_eq!(from_bcd(&[0x1a]), None);
        assert_eq!(from_bcd(&[]), Some(0));
    }
}
