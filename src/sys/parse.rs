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

/// Mosquitto's uptime: `"1234 seconds"` (a bare number is accepted too).
pub fn seconds(payload: &[u8]) -> Result<f64, ParseError> {
    let s = text(payload, MAX_NUMBER_LEN)?;
    let n = match s.split_once(' ') {
        Some((n, unit)) if unit.trim() == "seconds" || unit.trim() == "second" => n,
        Some(_) => return Err(ParseError::BadFormat),
        None => s,
    };
    let v = number_str(n)?;
    if v < 0.0 {
        return Err(ParseError::Negative);
    }
    Ok(v)
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
                "$SYS/broker/uptime" => assert_eq!(seconds(payload.as_bytes()), Ok(2.0)),
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
        assert_eq!(seconds(b"86400 seconds"), Ok(86400.0));
        assert_eq!(seconds(b"1 second"), Ok(1.0));
        assert_eq!(seconds(b"12"), Ok(12.0));
        assert_eq!(seconds(b"12 minutes"), Err(ParseError::BadFormat));
        assert_eq!(seconds(b"soon seconds"), Err(ParseError::NotANumber));
        assert_eq!(seconds(b"-3 seconds"), Err(ParseError::Negative));
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
