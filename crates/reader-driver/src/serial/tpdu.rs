//! APDU to T=0 TPDU (ISO/IEC 7816-3:2006 §12.2, ISO/IEC 7816-4 Annex of cases).
//!
//! A reader at TPDU level passes the command TPDU `CLA INS P1 P2 P3 [data]` to a T=0 card as
//! is. The short APDU cases map as: case 1 gets `P3 = 00`; case 2 and case 3 go unchanged; case
//! 4 is sent as case 3 (the `Le` byte dropped) and the card answers `61xx`, which
//! [`card_core::CardSession::send`] follows with GET RESPONSE. Extended-length APDUs have no T=0
//! form without ENVELOPE, so they are refused.

use std::borrow::Cow;

use super::error::SerialError;

/// The T=0 command TPDU for a short command APDU.
pub fn t0_tpdu(apdu: &[u8]) -> Result<Cow<'_, [u8]>, SerialError> {
    match apdu {
        [_, _, _, _] => {
            let mut v = apdu.to_vec();
            v.push(0);
            Ok(Cow::Owned(v))
        }
        [_, _, _, _, _] => Ok(Cow::Borrowed(apdu)),
        [_, _, _, _, lc, rest @ ..] if *lc != 0 => {
            let lc = usize::from(*lc);
            if rest.len() == lc {
                Ok(Cow::Borrowed(apdu))
            } else if rest.len() == lc + 1 {
                Ok(Cow::Borrowed(apdu.get(..5 + lc).unwrap_or(apdu)))
            } else {
                Err(SerialError::Tpdu("command APDU length disagrees with Lc"))
            }
        }
        [_, _, _, _, 0, _, ..] => Err(SerialError::Tpdu(
            "extended-length APDUs cannot be sent with T=0",
        )),
        _ => Err(SerialError::Tpdu("command APDU shorter than its header")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_four_cases() {
        assert_eq!(&*t0_tpdu(&[0, 0x84, 0, 0]).unwrap(), [0, 0x84, 0, 0, 0]);
        assert_eq!(
            &*t0_tpdu(&[0, 0xb2, 1, 0x2c, 0]).unwrap(),
            [0, 0xb2, 1, 0x2c, 0]
        );
        assert_eq!(
            &*t0_tpdu(&[0, 0x20, 0, 0, 1, 9]).unwrap(),
            [0, 0x20, 0, 0, 1, 9]
        );
        assert_eq!(
            &*t0_tpdu(&[0, 0xa4, 4, 0, 2, 0xa0, 0, 0]).unwrap(),
            [0, 0xa4, 4, 0, 2, 0xa0, 0]
        );
        assert!(t0_tpdu(&[0, 0xa4, 4, 0, 0, 1, 0x2c, 0xaa]).is_err());
        assert!(t0_tpdu(&[0, 0xa4, 4, 0, 2, 0xa0]).is_err());
        assert!(t0_tpdu(&[0, 0xa4]).is_err());
    }
}
