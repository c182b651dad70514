//! The date functions of PromQL 2.42 (Prometheus' `functions.go`: `dateWrapper` and
//! `funcMinute`, `funcHour`, `funcDayOfWeek`, `funcDayOfMonth`, `funcDaysInMonth`,
//! `funcMonth`, `funcYear`): the sample value read as Unix seconds, in UTC.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The calendar field `name` extracts from a point in time, or `None` when `name` is not
/// a date function. Values as Prometheus gives them: `minute` 0–59, `hour` 0–23,
/// `day_of_week` 0–6 from Sunday, `day_of_month` 1–31, `days_in_month` 28–31, `month`
/// 1–12, `year` (Gregorian, proleptic).
pub(super) fn date_function(name: &str) -> Option<fn(&DateTime<Utc>) -> f64> {
    Some(match name {
        "minute" => |t| f64::from(t.minute()),
        "hour" => |t| f64::from(t.hour()),
        "day_of_week" => |t| f64::from(t.weekday().num_days_from_sunday()),
        "day_of_month" => |t| f64::from(t.day()),
        "days_in_month" => |t| f64::from(days_in_month(t.year(), t.month())),
        "month" => |t| f64::from(t.month()),
        "year" => |t| f64::from(t.year()),
        _ => return None,
    })
}

/// `field` of the instant `seconds` (Unix time) as Go's `time.Unix(int64(v), 0).UTC()`
/// sees it: the fraction is truncated toward zero. NaN for an instant outside the years
/// chrono represents (±262 000), which no rule meets.
pub(super) fn at_seconds(field: fn(&DateTime<Utc>) -> f64, seconds: f64) -> f64 {
    match DateTime::from_timestamp(seconds as i64, 0) {
        Some(t) if seconds.is_finite() => field(&t),
        _ => f64::NAN,
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, seconds: f64) -> f64 {
        at_seconds(date_function(name).expect(name), seconds)
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
        // The fraction is truncated, not rounded: still 23:59.
        assert_eq!(field("minute", t + 0.999), 59.0);
        // Before the epoch: 1969-12-31T23:59:59Z, a Wednesday; -0.5 truncates to 0.
        assert_eq!(field("day_of_week", -1.0), 3.0);
        assert_eq!(field("year", -0.5), 1970.0);
        assert_eq!(field("days_in_month", 0.0), 31.0);
        // 1900 and 2100 are not leap years, 2000 is.
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert!(field("hour", f64::INFINITY).is_nan());
        assert!(date_function("weekday").is_none());
    }
}
