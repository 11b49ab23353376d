//! The terminal's wall clock in China Standard Time (UTC+8, no daylight saving), as the plain
//! values the card flows and the ledger take: the kernel reads no clock itself, so every date
//! and time a transaction carries comes from here (or from a test's fixed value).

use std::time::{SystemTime, UNIX_EPOCH};

/// A local date and time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime {
    /// Year, e.g. 2026.
    pub year: u16,
    /// Month 1-12.
    pub month: u8,
    /// Day 1-31.
    pub day: u8,
    /// Hour 0-23.
    pub hour: u8,
    /// Minute 0-59.
    pub minute: u8,
    /// Second 0-59.
    pub second: u8,
}

/// China Standard Time's offset from UTC, in seconds.
pub const CST_OFFSET_SECS: i64 = 8 * 3600;

impl LocalTime {
    /// The local time `unix` seconds after the epoch, `offset` seconds east of UTC.
    pub fn from_unix(unix: i64, offset: i64) -> Option<Self> {
        let t = unix.checked_add(offset)?;
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let date = crate::cardctl::civil_from_days(days)?;
        Some(Self {
            year: date.year,
            month: date.month,
            day: date.day,
            hour: u8::try_from(secs / 3600).ok()?,
            minute: u8::try_from(secs % 3600 / 60).ok()?,
            second: u8::try_from(secs % 60).ok()?,
        })
    }

    /// Now, in China Standard Time.
    pub fn now_cst() -> Option<Self> {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        Self::from_unix(i64::try_from(unix).ok()?, CST_OFFSET_SECS)
    }

    /// The date as the social-security application's type.
    pub fn ssse_date(self) -> card_core::ssse::Date {
        card_core::ssse::Date {
            year: self.year,
            month: self.month,
            day: self.day,
        }
    }

    /// The date as PBOC's `9A`.
    pub fn pboc_date(self) -> Option<card_core::pboc::Date> {
        card_core::pboc::Date::new(self.year, self.month, self.day)
    }

    /// The time as PBOC's `9F21`.
    pub fn pboc_time(self) -> Option<card_core::pboc::Time> {
        card_core::pboc::Time::new(self.hour, self.minute, self.second)
    }

    /// `YYYYMMDDhhmmss`, the ledger's transaction time.
    pub fn compact(self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYY-MM-DD HH:MM:SS`, for people.
    pub fn display(self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Where a session gets the time.
pub type Clock = Box<dyn Fn() -> LocalTime + Send>;

/// The system clock in China Standard Time (falls back to 2026-01-01 00:00:00 if the system
/// clock is before 1970, which only a broken machine shows).
pub fn system_clock() -> Clock {
    Box::new(|| {
        LocalTime::now_cst().unwrap_or(LocalTime {
            year: 2026,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_to_china_standard_time() {
        // 2026-11-28 16:30:05 UTC is 2026-11-29 00:30:05 in Beijing.
        let t = LocalTime::from_unix(1_795_883_405, CST_OFFSET_SECS).unwrap_or_else(|| {
            unreachable!("valid time");
        });
        assert_eq!(t.display(), "2026-11-29 00:30:05");
        assert_eq!(t.compact(), "20261129003005");
        let epoch = LocalTime::from_unix(0, 0).unwrap_or_else(|| unreachable!("epoch"));
        assert_eq!(epoch.display(), "1970-01-01 00:00:00");
    }
}
