//! Date arithmetic for the validity checks: days between calendar dates, and the month a
//! certificate is valid through.

use card_core::crypto::rsa::YearMonth;
use card_core::ssse::Date;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days(d: Date) -> i64 {
    let y = i64::from(d.year) - i64::from(d.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(d.month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `later - earlier` in days.
pub(crate) fn days_between(earlier: Date, later: Date) -> i64 {
    days(later) - days(earlier)
}

/// The month of `d`.
pub(crate) const fn month(d: Date) -> YearMonth {
    YearMonth {
        year: d.year,
        month: d.month,
    }
}

/// The last day of a month a certificate is valid through.
pub(crate) fn last_day(m: YearMonth) -> Option<Date> {
    (28..=31)
        .rev()
        .find_map(|day| Date::new(m.year, m.month, day).ok())
}

/// A PBOC `YYMMDD` date as a calendar date.
pub(crate) fn from_pboc(d: card_core::pboc::Date) -> Option<Date> {
    Date::new(d.year(), d.month(), d.day()).ok()
}

/// How a validity end compares with today and the warning window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validity {
    /// Valid beyond the warning window.
    Valid,
    /// Valid, ending within the warning window: the days left (0 = ends today).
    EndsSoon(i64),
    /// Ended that many days ago.
    Ended(i64),
}

/// Where `end` (the last valid day) stands against `today` with a warning window of `window`
/// days.
pub(crate) fn validity(end: Date, today: Date, window: u32) -> Validity {
    let left = days_between(today, end);
    if left < 0 {
        Validity::Ended(-left)
    } else if left <= i64::from(window) {
        Validity::EndsSoon(left)
    } else {
        Validity::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: u16, m: u8, day: u8) -> Date {
        Date::new(y, m, day).unwrap()
    }

    #[test]
    fn day_counts() {
        assert_eq!(days(d(1970, 1, 1)), 0);
        assert_eq!(days(d(2000, 2, 29)), 11_016);
        assert_eq!(days(d(2026, 11, 28)), 20_785);
        assert_eq!(days_between(d(2024, 2, 28), d(2024, 3, 1)), 2);
    }

    #[test]
    fn last_days_of_months() {
        let m = |year, month| YearMonth { year, month };
        assert_eq!(last_day(m(2024, 2)), Some(d(2024, 2, 29)));
        assert_eq!(last_day(m(2025, 2)), Some(d(2025, 2, 28)));
        assert_eq!(last_day(m(2025, 4)), Some(d(2025, 4, 30)));
        assert_eq!(last_day(m(2025, 12)), Some(d(2025, 12, 31)));
        assert_eq!(last_day(m(2025, 13)), None);
    }

    #[test]
    fn validity_windows() {
        let today = d(2026, 3, 1);
        assert_eq!(validity(d(2026, 6, 1), today, 30), Validity::Valid);
        assert_eq!(validity(d(2026, 3, 31), today, 30), Validity::EndsSoon(30));
        assert_eq!(validity(today, today, 30), Validity::EndsSoon(0));
        assert_eq!(validity(d(2026, 2, 28), today, 30), Validity::Ended(1));
    }
}
