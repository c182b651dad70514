//! The date functions of PromQL 2.42 (Prometheus' `functions.go`: `dateWrapper` and
//! `funcMinute`, `funcHour`, `funcDayOfWeek`, `funcDayOfMonth`, `funcDaysInMonth`,
//! `funcMonth`, `funcYear`): the sample value read as Unix seconds, in UTC, as Go's
//! `time.Unix(int64(v), 0).UTC()` reads it.
//!
//! Written here rather than with `chrono` because Go's calendar covers every `int64`
//! second (chrono stops at ±262 000 years) and wraps around beyond: `hour(vector(NaN))` is
//! 15 in Prometheus (NaN converts to the smallest `int64`, which lands in the year
//! 292 277 026 596), and `rules test` must answer as promtool does.

/// Seconds from Go's absolute zero (1 January of the year −292 277 022 399, a year that
/// starts a 400-year Gregorian cycle) to the Unix epoch.
const UNIX_TO_ABSOLUTE: u64 = 9_223_372_028_715_321_600;
const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
const DAY: u64 = 86_400;
const DAYS_PER_400_YEARS: u64 = 365 * 400 + 97;
const DAYS_PER_100_YEARS: u64 = 365 * 100 + 24;
const DAYS_PER_4_YEARS: u64 = 365 * 4 + 1;
/// Days before each month's first day in a common year, and the year's length.
const DAYS_BEFORE: [u64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

/// A point in time broken into the fields the date functions return.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Civil {
    year: i64,
    /// 1–12.
    month: u64,
    /// 1–31.
    day: u64,
    /// 0 (Sunday) – 6.
    weekday: u64,
    hour: u64,
    minute: u64,
}

impl Civil {
    /// The instant `seconds` (Unix time, truncated toward zero as Go's `int64(v)`; NaN and
    /// values out of `int64`'s range become its minimum, as on amd64), in UTC.
    pub(super) fn at(seconds: f64) -> Civil {
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        let sec = if seconds.is_nan() || !(-TWO_63..TWO_63).contains(&seconds) {
            i64::MIN
        } else {
            seconds as i64
        };
        let abs = (sec as u64).wrapping_add(UNIX_TO_ABSOLUTE);
        let mut d = abs / DAY;
        let mut n = d / DAYS_PER_400_YEARS;
        let mut y = 400 * n;
        d -= DAYS_PER_400_YEARS * n;
        // The last day of a 400-year cycle would count as a fifth century (and of a
        // 4-year cycle as a fifth year): cut back to the fourth.
        n = d / DAYS_PER_100_YEARS;
        n -= n >> 2;
        y += 100 * n;
        d -= DAYS_PER_100_YEARS * n;
        n = d / DAYS_PER_4_YEARS;
        y += 4 * n;
        d -= DAYS_PER_4_YEARS * n;
        n = d / 365;
        n -= n >> 2;
        y += n;
        d -= 365 * n;
        let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
        let leap = is_leap(year);
        // Day of the year as if in a common year; 29 February handled apart.
        let (month, day) = if leap && d == 59 {
            (2, 29)
        } else {
            let d = if leap && d > 59 { d - 1 } else { d };
            let m = DAYS_BEFORE.iter().rposition(|&b| b <= d).unwrap_or(0) as u64;
            (m + 1, d - DAYS_BEFORE[m as usize] + 1)
        };
        Civil {
            year,
            month,
            day,
            // Go's absolute zero is a Monday.
            weekday: (abs.wrapping_add(DAY) % (7 * DAY)) / DAY,
            hour: abs % DAY / 3600,
            minute: abs % 3600 / 60,
        }
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The calendar field `name` extracts, or `None` when `name` is not a date function.
/// Values as Prometheus gives them: `minute` 0–59, `hour` 0–23, `day_of_week` 0–6 from
/// Sunday, `day_of_month` 1–31, `day_of_year` 1–365 (366 in leap years), `days_in_month`
/// 28–31, `month` 1–12, `year` (proleptic Gregorian).
pub(super) fn date_function(name: &str) -> Option<fn(Civil) -> f64> {
    Some(match name {
        "minute" => |t| t.minute as f64,
        "hour" => |t| t.hour as f64,
        "day_of_week" => |t| t.weekday as f64,
        "day_of_month" => |t| t.day as f64,
        "days_in_month" => |t| match t.month {
            2 if is_leap(t.year) => 29.0,
            2 => 28.0,
            4 | 6 | 9 | 11 => 30.0,
            _ => 31.0,
        },
        "day_of_year" => |t| {
            // Days before each month in a common year.
            const BEFORE: [u64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
            let leap_day = u64::from(t.month > 2 && is_leap(t.year));
            (BEFORE[(t.month.clamp(1, 12) - 1) as usize] + t.day + leap_day) as f64
        },
        "month" => |t| t.month as f64,
        "year" => |t| t.year as f64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, seconds: f64) -> f64 {
        date_function(name).expect(name)(Civil::at(seconds))
    }

    #[test]
    fn fields_of_known_instants() {
        // 2024-02-29T23:59:59Z, a Thursday.
        let t = 1_709_251_199.0;
        assert_eq!(field("year", t), 2024.0);
        assert_eq!(field("month", t), 2.0);
        assert_eq!(field("day_of_month", t), 29.0);
        assert_eq!(field("days_in_month", t), 29.0);
        assert_eq!(field("day_of_week", t), 4.0);
        assert_eq!(field("hour", t), 23.0);
        assert_eq!(field("minute", t), 59.0);
        // The fraction is truncated, not rounded: still 23:59; one second on, 1 March.
        assert_eq!(field("minute", t + 0.999), 59.0);
        assert_eq!(field("month", t + 1.0), 3.0);
        assert_eq!(field("day_of_month", t + 1.0), 1.0);
        // 2023-12-31T12:00:00Z and 2023-03-01T00:00:00Z (a common year).
        assert_eq!(field("day_of_month", 1_704_024_000.0), 31.0);
        // functions.test: 2006-01-02, 2016-12-31 (leap), 2022-12-31
        assert_eq!(field("day_of_year", 1_136_239_445.0), 2.0);
        assert_eq!(field("day_of_year", 1_483_191_420.0), 366.0);
        assert_eq!(field("day_of_year", 1_672_493_820.0), 365.0);
        assert_eq!(field("month", 1_704_024_000.0), 12.0);
        assert_eq!(field("month", 1_677_628_800.0), 3.0);
        assert_eq!(field("days_in_month", 1_677_628_799.0), 28.0);
        // Before the epoch: 1969-12-31T23:59:59Z, a Wednesday; -0.5 truncates to 0.
        assert_eq!(field("day_of_week", -1.0), 3.0);
        assert_eq!(field("year", -1.0), 1969.0);
        assert_eq!(field("year", -0.5), 1970.0);
        assert_eq!(field("days_in_month", 0.0), 31.0);
        assert!(date_function("weekday").is_none());
    }

    /// What promtool 2.42 answers for NaN (Go converts it to the smallest int64).
    #[test]
    fn nan_lands_where_go_puts_it() {
        assert_eq!(field("year", f64::NAN), 292_277_026_596.0);
        assert_eq!(field("hour", f64::NAN), 15.0);
        assert_eq!(field("year", f64::INFINITY), 292_277_026_596.0);
    }
}
