//! The log pipeline's clock reads and its timestamp format.
//!
//! ARCHITECTURE.md invariant 1 keeps clock reads in runtime code. The logger
//! is runtime code with two needs: a wall-clock timestamp on every JSON line
//! and throttle summary ([`wall_now`]), and a monotonic millisecond counter for
//! the throttle's windows ([`monotonic_ms`]). Those two functions are the
//! module's only reads; the text format's timestamps come from
//! `tracing_subscriber`'s own timer, as they did before this module existed.
//! Everything else takes times as arguments ([`rfc3339`], the throttle core).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of monotonic milliseconds for the throttle. Only differences
/// matter; tests pass a counter they advance by hand.
pub type MillisClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Wall-clock now, for log timestamps only.
// The logger's single wall-clock read (see module docs); never used for logic.
#[allow(clippy::disallowed_methods)]
pub fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// A [`MillisClock`] counting from the moment it is created.
// The logger's single monotonic-clock read (see module docs): the throttle
// needs elapsed time to roll its per-callsite windows.
#[allow(clippy::disallowed_methods)]
pub fn monotonic_ms() -> MillisClock {
    let origin = std::time::Instant::now();
    Arc::new(move || u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// `t` as RFC 3339 in UTC with microseconds, e.g. `2023-11-14T22:13:20.000000Z`
/// (the same shape as the text format's timestamps). Times before 1970 print
/// as the epoch: a log line's clock is never that wrong on a running node, and
/// the line must still be written.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3_600,
        (rem % 3_600) / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Proleptic Gregorian (year, month, day) of `days` since 1970-01-01.
///
/// Shifts the calendar to start on 1 March (so the leap day ends a year),
/// splits the day count into 400-year eras of 146 097 days, then derives the
/// year of the era, the day of that year and from it month and day.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // 719 468 days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March .. 11 = February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both fit: day is 1..=31 and month 1..=12 by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros.into()))
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(951_868_799, 999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(at(1_700_000_000, 42), "2023-11-14T22:13:20.000042Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(1_709_164_800, 0), "2024-02-29T00:00:00.000000Z");
        assert_eq!(at(1_735_689_599, 0), "2024-12-31T23:59:59.000000Z");
    }

    #[test]
    fn before_the_epoch_prints_the_epoch() {
        let t = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339(t), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walks 1970..2200 and checks the date advances by exactly one day,
        // months have the right lengths and leap years are Gregorian.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for d in 1..84_000 {
            let cur = civil_from_days(d);
            let (y, m, day) = prev;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if day < len {
                (y, m, day + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(cur, expected, "day {d}");
            prev = cur;
        }
    }
}
