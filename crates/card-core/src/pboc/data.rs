//! The value types of the debit/credit application: amounts (n12), dates (n6 `YYMMDD`), times
//! (n6 `HHMMSS`) and the application PAN (cn, tag `5A`), with the data formats of JR/T 0025.6
//! §8.1 and JR/T 0025.5 附录 A.1.
//!
//! A [`Pan`] is personal data: it is zeroized on drop and shows only its first six and last four
//! digits in `Display` and `Debug` ([`Pan::reveal`] gives all of it, for the ledger and the
//! issuer message).

use core::fmt;

use zeroize::Zeroizing;

use crate::crypto::rsa::YearMonth;

/// Largest value of an n12 amount: twelve nines.
pub const AMOUNT_MAX: u64 = 999_999_999_999;

/// The value of `bcd` (format n, JR/T 0025.6 §8.1: BCD, right-aligned) as a number, or `None`
/// if a nibble is not a digit or the value does not fit 64 bits.
pub fn bcd_to_u64(bcd: &[u8]) -> Option<u64> {
    bcd.iter()
        .flat_map(|b| [b >> 4, b & 0x0f])
        .try_fold(0u64, |acc, d| {
            (d <= 9)
                .then_some(acc)
                .and_then(|a| a.checked_mul(10))
                .and_then(|a| a.checked_add(u64::from(d)))
        })
}

/// `value` as `N` bytes of BCD (format n), left-padded with zeros; the leftmost digits are lost
/// if it does not fit.
pub fn u64_to_bcd<const N: usize>(mut value: u64) -> [u8; N] {
    let mut out = [0u8; N];
    for byte in out.iter_mut().rev() {
        let lo = (value % 10) as u8;
        value /= 10;
        let hi = (value % 10) as u8;
        value /= 10;
        *byte = (hi << 4) | lo;
    }
    out
}

/// An amount in minor units of its currency (n12, tags `9F02`, `9F03`, `9F79`, `9F7B`; at most
/// twelve digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(u64);

impl Amount {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// An amount of `minor_units` (fen for CNY); `None` beyond twelve digits.
    pub const fn new(minor_units: u64) -> Option<Self> {
        if minor_units <= AMOUNT_MAX {
            Some(Self(minor_units))
        } else {
            None
        }
    }

    /// The amount in minor units.
    pub const fn minor_units(self) -> u64 {
        self.0
    }

    /// From BCD of any length up to 6 bytes (format n12; also the 5-byte balance of the issuer
    /// discretionary data, JR/T 0025.13 表3).
    pub fn from_bcd(bcd: &[u8]) -> Option<Self> {
        if bcd.len() > 6 {
            return None;
        }
        bcd_to_u64(bcd).and_then(Self::new)
    }

    /// The six bytes of format n12.
    pub fn to_bcd(self) -> [u8; 6] {
        u64_to_bcd(self.0)
    }

    /// `self - other`, or `None` if it would be negative.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// `self + other`, or `None` beyond twelve digits.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).and_then(Self::new)
    }
}

impl fmt::Display for Amount {
    /// With two decimals (CNY, transaction currency exponent 2).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

fn bcd_pair(b: u8) -> Option<u8> {
    let (hi, lo) = (b >> 4, b & 0x0f);
    (hi <= 9 && lo <= 9).then_some(hi * 10 + lo)
}

fn to_bcd_pair(v: u8) -> u8 {
    ((v / 10 % 10) << 4) | (v % 10)
}

/// A date `YYMMDD` (format n6: transaction date `9A`, application expiration and effective dates
/// `5F24`/`5F25`). `YY` 00-49 is 20YY and 50-99 is 19YY, as for certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// A date; `None` unless it is a day of the calendar between 1950 and 2049.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let leap =
            year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        ((1950..=2049).contains(&year) && (1..=days).contains(&day)).then_some(Self {
            year,
            month,
            day,
        })
    }

    /// From the three BCD bytes `YY MM DD`.
    pub fn from_bcd(bcd: &[u8]) -> Option<Self> {
        let &[yy, mm, dd] = bcd else {
            return None;
        };
        let yy = u16::from(bcd_pair(yy)?);
        let year = if yy < 50 { 2000 + yy } else { 1900 + yy };
        Self::new(year, bcd_pair(mm)?, bcd_pair(dd)?)
    }

    /// `YY MM DD` in BCD.
    pub fn to_bcd(self) -> [u8; 3] {
        [
            to_bcd_pair((self.year % 100) as u8),
            to_bcd_pair(self.month),
            to_bcd_pair(self.day),
        ]
    }

    /// The year (1950-2049).
    pub const fn year(self) -> u16 {
        self.year
    }

    /// The month (1-12).
    pub const fn month(self) -> u8 {
        self.month
    }

    /// The day of the month.
    pub const fn day(self) -> u8 {
        self.day
    }

    /// The month of this date, for certificate expiry checks.
    pub const fn year_month(self) -> YearMonth {
        YearMonth {
            year: self.year,
            month: self.month,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A time of day `HHMMSS` (format n6, transaction time `9F21`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    hour: u8,
    minute: u8,
    second: u8,
}

impl Time {
    /// A time; `None` unless hour < 24, minute < 60, second < 60.
    pub fn new(hour: u8, minute: u8, second: u8) -> Option<Self> {
        (hour < 24 && minute < 60 && second < 60).then_some(Self {
            hour,
            minute,
            second,
        })
    }

    /// From the three BCD bytes `HH MM SS`.
    pub fn from_bcd(bcd: &[u8]) -> Option<Self> {
        let &[h, m, s] = bcd else {
            return None;
        };
        Self::new(bcd_pair(h)?, bcd_pair(m)?, bcd_pair(s)?)
    }

    /// `HH MM SS` in BCD.
    pub fn to_bcd(self) -> [u8; 3] {
        [
            to_bcd_pair(self.hour),
            to_bcd_pair(self.minute),
            to_bcd_pair(self.second),
        ]
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

/// The application PAN (tag `5A`, format cn up to 19 digits, `F`-padded), kept zeroizing.
/// `Display` and `Debug` mask all but the first six and last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Pan {
    digits: Zeroizing<String>,
    bcd: Zeroizing<Vec<u8>>,
}

impl Pan {
    /// From tag `5A` (format cn): digits, then `F` padding to the end. `None` for any other
    /// nibble, digits after the padding, or fewer than 8 or more than 19 digits.
    pub fn from_bcd(bcd: &[u8]) -> Option<Self> {
        let mut digits = Zeroizing::new(String::with_capacity(bcd.len() * 2));
        let mut padding = false;
        for nibble in bcd.iter().flat_map(|b| [b >> 4, b & 0x0f]) {
            match nibble {
                0..=9 if !padding => digits.push(char::from(b'0' + nibble)),
                0x0f => padding = true,
                _ => return None,
            }
        }
        (8..=19).contains(&digits.len()).then(|| Self {
            digits,
            bcd: Zeroizing::new(bcd.to_vec()),
        })
    }

    /// From a string of 8 to 19 decimal digits.
    pub fn from_digits(text: &str) -> Option<Self> {
        if !(8..=19).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut bcd = Zeroizing::new(Vec::with_capacity(text.len().div_ceil(2)));
        for pair in text.as_bytes().chunks(2) {
            let hi = pair.first().map_or(0x0f, |c| c - b'0');
            let lo = pair.get(1).map_or(0x0f, |c| c - b'0');
            bcd.push((hi << 4) | lo);
        }
        Some(Self {
            digits: Zeroizing::new(text.to_owned()),
            bcd,
        })
    }

    /// The PAN in the track 2 equivalent data (tag `57`): the digits before the separator `D`.
    pub fn from_track2(track2: &[u8]) -> Option<Self> {
        let mut digits = Zeroizing::new(String::with_capacity(19));
        for nibble in track2.iter().flat_map(|b| [b >> 4, b & 0x0f]) {
            match nibble {
                0..=9 => digits.push(char::from(b'0' + nibble)),
                0x0d => return Self::from_digits(&digits),
                _ => return None,
            }
        }
        None
    }

    /// All digits. Personal data: for the ledger and the issuer message only.
    pub fn reveal(&self) -> &str {
        &self.digits
    }

    /// The value of tag `5A` this PAN came from (or was encoded to).
    pub fn bcd(&self) -> &[u8] {
        &self.bcd
    }

    /// The first six and last four digits, the rest as `*`.
    pub fn masked(&self) -> String {
        crate::mask::mask_middle(&self.digits, 6, 4)
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        let a = Amount::from_bcd(&[0x00, 0x00, 0x00, 0x01, 0x23, 0x45]).unwrap();
        assert_eq!(a.minor_units(), 12345);
        assert_eq!(a.to_string(), "123.45");
        assert_eq!(a.to_bcd(), [0, 0, 0, 1, 0x23, 0x45]);
        assert_eq!(Amount::from_bcd(&[0x1a]), None);
        assert_eq!(Amount::new(AMOUNT_MAX + 1), None);
        assert_eq!(
            Amount::from_bcd(&[0x00, 0x00, 0x05, 0x00, 0x00]),
            Amount::new(50000)
        );
    }

    #[test]
    fn dates_and_times() {
        let d = Date::from_bcd(&[0x26, 0x11, 0x28]).unwrap();
        assert_eq!(d.to_string(), "2026-11-28");
        assert_eq!(d.to_bcd(), [0x26, 0x11, 0x28]);
        assert_eq!(Date::from_bcd(&[0x99, 0x12, 0x31]).unwrap().year(), 1999);
        assert!(Date::from_bcd(&[0x26, 0x02, 0x29]).is_none());
        assert!(Date::from_bcd(&[0x24, 0x02, 0x29]).is_some());
        assert!(Date::from_bcd(&[0x26, 0x13, 0x01]).is_none());
        assert!(Date::from_bcd(&[0x26, 0x11]).is_none());
        let t = Time::from_bcd(&[0x23, 0x59, 0x01]).unwrap();
        assert_eq!(t.to_string(), "23:59:01");
        assert!(Time::from_bcd(&[0x24, 0, 0]).is_none());
    }

    #[test]
    fn pans_are_masked() {
        let p = Pan::from_bcd(&[0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x90, 0x1f]).unwrap();
        assert_eq!(p.reveal(), "62284804025648901");
        assert_eq!(p.to_string(), "622848*******8901");
        assert_eq!(format!("{p:?}"), "Pan(622848*******8901)");
        assert_eq!(Pan::from_digits("62284804025648901").unwrap(), p);
        assert!(Pan::from_bcd(&[0x62, 0xf2]).is_none());
        let t2 = [
            0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x90, 0x1d, 0x30, 0x12,
        ];
        assert_eq!(Pan::from_track2(&t2).unwrap(), p);
        assert!(Pan::from_track2(&[0x62, 0x28]).is_none());
    }

    #[test]
    fn bcd_helpers() {
        assert_eq!(u64_to_bcd::<2>(156), [0x01, 0x56]);
        assert_eq!(bcd_to_u64(&[0x01, 0x56]), Some(156));
        assert_eq!(u64_to_bcd::<1>(1234), [0x34]);
    }
}
