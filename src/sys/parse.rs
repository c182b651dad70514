//! Pure `$SYS` payload parsing: bytes in, typed value or a reason out. No I/O, no state, so it
//! is unit-tested on captured payloads and cheap to fuzz.
//!
//! Brokers publish numbers as ASCII text. We accept what a broker can mean by a number
//! (`42`, `-3`, `3.40`, `1e3`) and refuse everything that would turn into a misleading sample:
//! empty payloads, words, `NaN`, infinities (`1e309` overflows to one) and oversized payloads.

use std::fmt;

/// Longest payload we try to read as a number. Real ones are under 25 bytes; anything longer
/// is refused before it is scanned, so a 64 KiB payload costs a length check.
pub const MAX_NUMBER_LEN: usize = 64;
/// Longest version string we keep as a label value.
pub const MAX_VERSION_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    TooLong,
    NotUtf8,
    NotANumber,
    NotFinite,
    Negative,
    BadFormat,
    /// A topic mapped to JSON fields carried something other than a JSON object.
    NotJson,
    /// A JSON object lacked a field a profile maps.
    MissingField,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Empty => "empty payload",
            ParseError::TooLong => "payload too long for a number",
            ParseError::NotUtf8 => "payload is not UTF-8",
            ParseError::NotANumber => "payload is not a number",
            ParseError::NotFinite => "number is not finite",
            ParseError::Negative => "negative value for a counter",
            ParseError::BadFormat => "payload does not have the expected format",
            ParseError::NotJson => "payload is not a JSON object",
            ParseError::MissingField => "JSON object lacks a mapped field",
        })
    }
}

fn text(payload: &[u8], max: usize) -> Result<&str, ParseError> {
    if payload.len() > max {
        return Err(ParseError::TooLong);
    }
    let s = std::str::from_utf8(payload).map_err(|_| ParseError::NotUtf8)?;
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(s)
}

/// Parse a decimal number written by a broker (`53`, `3.40`, `-1`, `1.5e3`).
pub fn number(payload: &[u8]) -> Result<f64, ParseError> {
    let s = text(payload, MAX_NUMBER_LEN)?;
    number_str(s)
}

fn number_str(s: &str) -> Result<f64, ParseError> {
    // Rust's f64 parser also takes "NaN", "inf" and "infinity"; a broker statistic is never
    // one of those, so require the shape of a decimal literal.
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(ParseError::NotANumber);
    }
    let v: f64 = s.parse().map_err(|_| ParseError::NotANumber)?;
    if !v.is_finite() {
        return Err(ParseError::NotFinite);
    }
    Ok(v)
}

/// A counter value: a number that is not negative.
pub fn counter(payload: &[u8]) -> Result<f64, ParseError> {
    let v = number(payload)?;
    if v < 0.0 {
        return Err(ParseError::Negative);
    }
    Ok(v)
}

/// A duration in seconds: a number (times `scale`, for brokers that count milliseconds), or
/// text such as Mosquitto's `"1234 seconds"` or EMQX 4's `"2 days, 3 hours, 4 minutes, 5
/// seconds"` (any of the parts, in that order; the scale is not applied to text).
pub fn duration(payload: &[u8], scale: f64) -> Result<f64, ParseError> {
    let s = text(payload, MAX_NUMBER_LEN * 2)?;
    if let Ok(v) = number_str(s) {
        if v < 0.0 {
            return Err(ParseError::Negative);
        }
        return Ok(v * scale);
    }
    let mut total = 0.0;
    let mut last_rank = 0;
    for part in s.split(',') {
        let (n, unit) = part.trim().split_once(' ').ok_or(ParseError::BadFormat)?;
        let (rank, secs) = match unit.trim() {
            "day" | "days" => (1, 86_400.0),
            "hour" | "hours" => (2, 3_600.0),
            "minute" | "minutes" => (3, 60.0),
            "second" | "seconds" => (4, 1.0),
            _ => return Err(ParseError::BadFormat),
        };
        if rank <= last_rank {
            return Err(ParseError::BadFormat);
        }
        last_rank = rank;
        let v = number_str(n)?;
        if v < 0.0 {
            return Err(ParseError::Negative);
        }
        total += v * secs;
    }
    Ok(total)
}

/// Seconds since a point in time the broker announces: either a number of seconds already
/// (times `scale`), or a date-time (`2026-11-30 13:00:00+00:00`, `2026-11-30T13:00:00Z`,
/// fractional seconds allowed; no offset means UTC), from which the age at `now` is computed.
pub fn since(payload: &[u8], scale: f64, now_unix: f64) -> Result<f64, ParseError> {
    let s = text(payload, MAX_NUMBER_LEN)?;
    if let Ok(v) = number_str(s) {
        if v < 0.0 {
            return Err(ParseError::Negative);
        }
        return Ok(v * scale);
    }
    let t = datetime(s).ok_or(ParseError::BadFormat)?;
    Ok((now_unix - t).max(0.0))
}

fn datetime(s: &str) -> Option<f64> {
    use chrono::{DateTime, NaiveDateTime};
    let iso = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&iso) {
        return Some(t.timestamp_micros() as f64 / 1e6);
    }
    let naive = NaiveDateTime::parse_from_str(&iso, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(naive.and_utc().timestamp_micros() as f64 / 1e6)
}

/// A version announcement such as `"mosquitto version 2.0.11"`: returns the implementation
/// (`mosquitto`, lower-cased) and the version (`2.0.11`). A bare version gives an empty
/// implementation. Control characters are refused so the label value is printable.
pub fn version(payload: &[u8]) -> Result<(String, String), ParseError> {
    let s = text(payload, MAX_VERSION_LEN)?;
    if s.chars().any(char::is_control) {
        return Err(ParseError::BadFormat);
    }
    match s.rsplit_once(' ') {
        Some((head, ver)) => {
            let implementation = head
                .strip_suffix(" version")
                .unwrap_or(head)
                .trim()
                .to_ascii_lowercase();
            Ok((implementation, ver.to_owned()))
        }
        None => Ok((String::new(), s.to_owned())),
    }
}

/// Longest JSON payload we parse. rmqtt's `metrics` object, the largest real one, is ~2 KiB.
pub const MAX_JSON_LEN: usize = 64 * 1024;

/// A JSON object payload (rmqtt's `stats`, NanoMQ's client events). Leading NUL bytes are
/// skipped: NanoMQ ≥ 0.24.2 puts one before the JSON of every event about an MQTT 5 client
/// (seen in a real 0.25.3 capture).
pub fn json_object(
    payload: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ParseError> {
    if payload.len() > MAX_JSON_LEN {
        return Err(ParseError::TooLong);
    }
    let start = payload.iter().take_while(|b| **b == 0).count();
    match serde_json::from_slice(&payload[start..]) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(ParseError::NotJson),
    }
}

/// A number held by a JSON field: a JSON number, or a string that is one (NanoMQ writes
/// `"return_code":"0"`).
pub fn json_number(v: &serde_json::Value) -> Result<f64, ParseError> {
    match v {
        serde_json::Value::Number(n) => n.as_f64().ok_or(ParseError::NotANumber),
        serde_json::Value::String(s) => number(s.as_bytes()),
        _ => Err(ParseError::NotANumber),
    }
}

/// The text a `when:` condition compares: a string's content, or the JSON text of a number
/// or boolean; `None` for objects, arrays and null.
pub fn json_text(v: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        serde_json::Value::String(s) => Some(s.as_str().into()),
        serde_json::Value::Number(n) => Some(n.to_string().into()),
        serde_json::Value::Bool(b) => Some(b.to_string().into()),
        _ => None,
    }
}

/// A 0/1 state such as a Mosquitto bridge's `connection/<name>/state`.
pub fn flag(payload: &[u8]) -> Result<bool, ParseError> {
    match text(payload, MAX_NUMBER_LEN)? {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(ParseError::BadFormat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of a real `mosquitto_sub -t '$SYS/#' -v` capture from Debian's 2.0.11.
    const CAPTURE: &str = include_str!("../../tests/fixtures/mosquitto-2.0.11-sys.tsv");

    #[test]
    fn numbers_from_a_real_capture() {
        let mut numbers = 0;
        for line in CAPTURE.lines() {
            let (topic, payload) = line.split_once('\t').unwrap();
            match topic {
                "$SYS/broker/uptime" => assert_eq!(duration(payload.as_bytes(), 1.0), Ok(2.0)),
                "$SYS/broker/version" => assert_eq!(
                    version(payload.as_bytes()),
                    Ok(("mosquitto".into(), "2.0.11".into()))
                ),
                _ => {
                    let v = number(payload.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
                    assert_eq!(v, payload.parse::<f64>().unwrap(), "{line}");
                    numbers += 1;
                }
            }
        }
        assert_eq!(numbers, 51);
    }

    #[test]
    fn accepted_number_forms() {
        for (p, v) in [
            ("0", 0.0),
            ("53", 53.0),
            ("3.40", 3.4),
            ("-1", -1.0),
            ("+7", 7.0),
            (".5", 0.5),
            ("1e3", 1000.0),
            (" 42\n", 42.0),
            ("18446744073709551615", 18446744073709551615.0),
        ] {
            assert_eq!(number(p.as_bytes()), Ok(v), "{p:?}");
        }
    }

    #[test]
    fn refused_payloads() {
        let big = vec![b'1'; 64 * 1024];
        let cases: &[(&[u8], ParseError)] = &[
            (b"", ParseError::Empty),
            (b"   ", ParseError::Empty),
            (b"NaN", ParseError::NotANumber),
            (b"nan", ParseError::NotANumber),
            (b"inf", ParseError::NotANumber),
            (b"-infinity", ParseError::NotANumber),
            (b"1e309", ParseError::NotFinite),
            (b"-1e309", ParseError::NotFinite),
            (b"twelve", ParseError::NotANumber),
            (b"12 apples", ParseError::NotANumber),
            (b"0x10", ParseError::NotANumber),
            (b"\xff\xfe1", ParseError::NotUtf8),
            (&big, ParseError::TooLong),
        ];
        for (p, e) in cases {
            assert_eq!(
                number(p),
                Err(*e),
                "{:?}",
                String::from_utf8_lossy(&p[..p.len().min(16)])
            );
        }
        assert_eq!(counter(b"-5"), Err(ParseError::Negative));
    }

    #[test]
    fn uptime_forms() {
        assert_eq!(duration(b"86400 seconds", 1.0), Ok(86400.0));
        assert_eq!(duration(b"1 second", 1.0), Ok(1.0));
        assert_eq!(duration(b"12", 1.0), Ok(12.0));
        assert_eq!(duration(b"12 minutes", 1.0), Ok(720.0));
        // EMQX 5 counts milliseconds, EMQX 4 writes words
        assert_eq!(duration(b"90500", 0.001), Ok(90.5));
        assert_eq!(
            duration(b"2 days, 3 hours, 4 minutes, 5 seconds", 0.001),
            Ok(2.0 * 86400.0 + 3.0 * 3600.0 + 4.0 * 60.0 + 5.0)
        );
        assert_eq!(duration(b"4 minutes, 25 seconds", 1.0), Ok(265.0));
        assert_eq!(duration(b"12 fortnights", 1.0), Err(ParseError::BadFormat));
        assert_eq!(
            duration(b"5 seconds, 1 day", 1.0),
            Err(ParseError::BadFormat)
        );
        assert_eq!(duration(b"1 day, 1 day", 1.0), Err(ParseError::BadFormat));
        assert_eq!(duration(b"soon seconds", 1.0), Err(ParseError::NotANumber));
        assert_eq!(duration(b"-3 seconds", 1.0), Err(ParseError::Negative));
        assert_eq!(duration(b"-3", 1.0), Err(ParseError::Negative));
    }

    #[test]
    fn start_times_become_ages() {
        let now = 1_764_507_600.0; // 2025-11-30 13:00:00 UTC
        assert_eq!(since(b"2025-11-30 12:59:00+00:00", 1.0, now), Ok(60.0));
        assert_eq!(since(b"2025-11-30 13:59:00+01:00", 1.0, now), Ok(60.0));
        assert_eq!(since(b"2025-11-30T12:58:59.5Z", 1.0, now), Ok(60.5));
        assert_eq!(since(b"2025-11-30 12:00:00", 1.0, now), Ok(3600.0));
        assert_eq!(since(b"42", 1.0, now), Ok(42.0));
        // a clock ahead of ours is an age of zero, not a negative one
        assert_eq!(since(b"2025-11-30 13:00:05+00:00", 1.0, now), Ok(0.0));
        assert_eq!(since(b"yesterday", 1.0, now), Err(ParseError::BadFormat));
        assert_eq!(
            since(b"2025-13-40 99:00:00", 1.0, now),
            Err(ParseError::BadFormat)
        );
    }

    #[test]
    fn versions_and_flags() {
        assert_eq!(
            version(b"mosquitto version 1.6.15"),
            Ok(("mosquitto".into(), "1.6.15".into()))
        );
        assert_eq!(version(b"5.0.3"), Ok((String::new(), "5.0.3".into())));
        assert_eq!(version(b"evil\x1b[31m 1"), Err(ParseError::BadFormat));
        assert_eq!(version(&[b'v'; 200]), Err(ParseError::TooLong));
        assert_eq!(flag(b"1"), Ok(true));
        assert_eq!(flag(b"0\n"), Ok(false));
        assert_eq!(flag(b"2"), Err(ParseError::BadFormat));
    }
}
