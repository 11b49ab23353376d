//! Secrets held by the terminal: PINs.
//!
//! A [`Pin`] never shows its digits in `Debug` or `Display`, and its memory is zeroized when
//! it is dropped. It leaves this type only as the encoded block a command needs, itself in a
//! zeroizing buffer.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Errors building a PIN.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Not between the minimum and maximum length.
    #[error("a PIN has {min} to {max} digits, this one has {len}")]
    Length {
        /// Digits given.
        len: usize,
        /// Minimum.
        min: usize,
        /// Maximum.
        max: usize,
    },
    /// Something other than 0-9.
    #[error("a PIN has only the digits 0-9")]
    NotDigits,
}

/// A PIN of 4 to 12 decimal digits.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Pin {
    digits: Vec<u8>,
}

impl Pin {
    /// Shortest PIN accepted.
    pub const MIN_LEN: usize = 4;
    /// Longest PIN accepted.
    pub const MAX_LEN: usize = 12;

    /// Parse digits. The input is not kept beyond this call.
    pub fn new(text: &str) -> Result<Self, PinError> {
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinError::NotDigits);
        }
        let len = text.len();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(PinError::Length {
                len,
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
            });
        }
        Ok(Self {
            digits: text.bytes().map(|b| b - b'0').collect(),
        })
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.digits.len()
    }

    /// Always false: a PIN has at least 4 digits.
    pub fn is_empty(&self) -> bool {
        self.digits.is_empty()
    }

    /// Packed BCD, two digits per byte, an odd last digit padded with `F`
    /// (`123456` -> `12 34 56`). This is the VERIFY data of the SSSE application.
    pub fn to_bcd(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.digits.len().div_ceil(2)));
        for pair in self.digits.chunks(2) {
            let hi = pair.first().copied().unwrap_or(0x0f);
            let lo = pair.get(1).copied().unwrap_or(0x0f);
            out.push((hi << 4) | lo);
        }
        out
    }

    /// The digits as ASCII (for key derivation that hashes the text form).
    pub fn to_ascii(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.digits.iter().map(|d| d + b'0').collect())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin(<{} digits>)", self.digits.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_packing() {
        assert_eq!(&*Pin::new("123456").unwrap().to_bcd(), &[0x12, 0x34, 0x56]);
        assert_eq!(&*Pin::new("12345").unwrap().to_bcd(), &[0x12, 0x34, 0x5f]);
        assert_eq!(&*Pin::new("0000").unwrap().to_ascii(), b"0000");
    }

    #[test]
    fn rejects_bad_pins() {
        assert!(matches!(
            Pin::new("123"),
            Err(PinError::Length { len: 3, .. })
        ));
        assert!(matches!(
            Pin::new("1234567890123"),
            Err(PinError::Length { .. })
        ));
        assert_eq!(Pin::new("12a456"), Err(PinError::NotDigits));
        assert_eq!(Pin::new("１２３４"), Err(PinError::NotDigits));
    }

    #[test]
    fn debug_hides_digits() {
        let shown = format!("{:?}", Pin::new("987654").unwrap());
        assert_eq!(shown, "Pin(<6 digits>)");
    }
}
