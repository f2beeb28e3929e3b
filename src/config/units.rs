//! Parsers for the two unit-carrying value kinds of the config file: durations (`"10s"`,
//! `"1h30m"`) and byte sizes (`"2MiB"`, `"10GB"`, `"4096"`).
//!
//! Both are pure string functions with no knowledge of keys; `schema.rs` calls them and puts the
//! key in front of the message. Each error message is complete on its own and starts with
//! `invalid duration "…"` / `invalid size "…"`, so it can be shown to an operator as is.

use std::time::Duration;

/// Duration units: suffix and milliseconds per unit. Case-sensitive, like nginx
/// (where `M` would be months); the fractional-free integer form keeps arithmetic exact.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Size units, matched case-insensitively. `KB`/`MB`/… are 1000-based, `KiB`/`MiB`/… 1024-based.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses a duration such as `"10s"`, `"500ms"`, `"1m"`, `"2h"`, `"1d"` or `"1h30m"`.
///
/// A duration is one or more `<integer><unit>` pairs, summed; units are `ms`, `s`, `m`, `h` and
/// `d` (lowercase). Whitespace around and between the parts is allowed (`"1h 30m"`, `"10 s"`).
/// Rejected, each with its own message: an empty string, a bare number (`"10"`: add a unit),
/// a sign (`"-5s"`), a fraction (`"1.5s"`: use a smaller unit), an unknown unit, and a total
/// that does not fit in `u64` milliseconds. `"0s"` is accepted; whether zero makes sense is the
/// caller's decision.
///
/// The error is a complete message: `invalid duration "10 parsecs": unknown unit "parsecs" …`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    duration_millis(s.trim())
        .map(Duration::from_millis)
        .map_err(|why| format!("invalid duration {s:?}: {why}"))
}

fn duration_millis(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("empty value; expected e.g. \"10s\"".into());
    }
    if s.starts_with('-') {
        return Err("must not be negative".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("add a unit, e.g. \"10s\"".into());
    }
    let mut rest = s;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (number, after) = leading_number(rest, "\"1500ms\"")?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("add a unit after {number}, e.g. \"{number}s\""));
        }
        let Some(&(_, per_unit)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("unknown unit {unit:?} (expected ms, s, m, h or d)"));
        };
        total = number
            .checked_mul(per_unit)
            .and_then(|millis| total.checked_add(millis))
            .ok_or("too large")?;
        rest = after.trim_start();
    }
    Ok(total)
}

/// Parses a byte size such as `"2MiB"`, `"512KiB"`, `"1GiB"`, `"10GB"` or `"4096"`.
///
/// A size is an integer with an optional unit, matched case-insensitively (`"2mib"` works):
/// `B`; `KB`, `MB`, `GB`, `TB` (1000-based); `KiB`, `MiB`, `GiB`, `TiB` (1024-based). No unit
/// means bytes. Whitespace between number and unit is allowed (`"2 MiB"`).
///
/// Rejected, each with its own message: an empty string, a sign, a fraction (`"1.5MiB"`: write
/// `"1536KiB"`, so a size is always a whole number of bytes), an unknown unit, a total that
/// does not fit in `u64`, and the bare letters `k`, `m`, `g`, `t`: in nginx `2m` means 2 MiB,
/// elsewhere 2 MB, so ferry asks which one is meant instead of guessing.
///
/// The error is a complete message: `invalid size "2 parsecs": unknown unit "parsecs" …`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    size_bytes(s.trim()).map_err(|why| format!("invalid size {s:?}: {why}"))
}

fn size_bytes(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("empty value; expected e.g. \"2MiB\"".into());
    }
    if s.starts_with('-') {
        return Err("must not be negative".into());
    }
    let (number, unit) = leading_number(s, "\"1536KiB\"")?;
    let unit = unit.trim_start();
    let lower = unit.to_ascii_lowercase();
    if lower.is_empty() {
        return Ok(number);
    }
    if matches!(lower.as_str(), "k" | "m" | "g" | "t") {
        let upper = lower.to_ascii_uppercase();
        return Err(format!(
            "ambiguous unit {unit:?}: write \"{upper}iB\" (1024-based, what nginx means by \
             \"{lower}\") or \"{upper}B\" (1000-based)"
        ));
    }
    let Some(&(_, per_unit)) = SIZE_UNITS.iter().find(|(name, _)| *name == lower) else {
        return Err(format!(
            "unknown unit {unit:?} (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
        ));
    };
    number
        .checked_mul(per_unit)
        .ok_or_else(|| "too large".into())
}

/// Splits `s` into its leading decimal integer and the rest. `smaller` is the example shown
/// when the number has a fractional part.
fn leading_number<'a>(s: &'a str, smaller: &str) -> Result<(u64, &'a str), String> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    if digits.is_empty() {
        return Err(format!("expected a number at {rest:?}"));
    }
    if rest.starts_with('.') {
        return Err(format!(
            "fractions are not supported; use a smaller unit, e.g. {smaller}"
        ));
    }
    let number = digits.parse::<u64>().map_err(|_| "number too large")?;
    Ok((number, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("10s"), Ok(secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(secs(60)));
        assert_eq!(parse_duration("2h"), Ok(secs(7_200)));
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(secs(0)));
    }

    #[test]
    fn durations_combine_and_allow_spaces() {
        assert_eq!(parse_duration("1h30m"), Ok(secs(5_400)));
        assert_eq!(parse_duration("1h 30m 15s"), Ok(secs(5_415)));
        assert_eq!(parse_duration(" 10 s "), Ok(secs(10)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1_500)));
    }

    #[test]
    fn duration_errors_say_what_is_wrong() {
        let cases = [
            (
                "",
                "invalid duration \"\": empty value; expected e.g. \"10s\"",
            ),
            (
                "   ",
                "invalid duration \"   \": empty value; expected e.g. \"10s\"",
            ),
            ("10", "invalid duration \"10\": add a unit, e.g. \"10s\""),
            ("0", "invalid duration \"0\": add a unit, e.g. \"10s\""),
            ("-5s", "invalid duration \"-5s\": must not be negative"),
            (
                "1h30",
                "invalid duration \"1h30\": add a unit after 30, e.g. \"30s\"",
            ),
            ("s", "invalid duration \"s\": expected a number at \"s\""),
            (
                "+5s",
                "invalid duration \"+5s\": expected a number at \"+5s\"",
            ),
            (
                "5s!",
                "invalid duration \"5s!\": expected a number at \"!\"",
            ),
            (
                "1.5s",
                "invalid duration \"1.5s\": fractions are not supported; use a smaller unit, \
                 e.g. \"1500ms\"",
            ),
            (
                "10 parsecs",
                "invalid duration \"10 parsecs\": unknown unit \"parsecs\" \
                 (expected ms, s, m, h or d)",
            ),
            (
                "10S",
                "invalid duration \"10S\": unknown unit \"S\" (expected ms, s, m, h or d)",
            ),
            (
                "5µs",
                "invalid duration \"5µs\": unknown unit \"µs\" (expected ms, s, m, h or d)",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_duration(input),
                Err(expected.to_string()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn duration_overflow_is_an_error_not_a_wrap() {
        let max_millis = format!("{}ms", u64::MAX);
        assert_eq!(
            parse_duration(&max_millis),
            Ok(Duration::from_millis(u64::MAX))
        );
        let over = format!("{}ms1ms", u64::MAX);
        assert_eq!(
            parse_duration(&over),
            Err(format!("invalid duration {over:?}: too large"))
        );
        assert_eq!(
            parse_duration("213503982335d"),
            Err("invalid duration \"213503982335d\": too large".to_string())
        );
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err("invalid duration \"99999999999999999999s\": number too large".to_string())
        );
    }

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("4096"), Ok(4_096));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1_024));
        assert_eq!(parse_size("2MiB"), Ok(2 * 1_048_576));
        assert_eq!(parse_size("1GiB"), Ok(1_073_741_824));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("3KB"), Ok(3_000));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("2TB"), Ok(2_000_000_000_000));
    }

    #[test]
    fn size_units_ignore_case_and_spaces() {
        assert_eq!(parse_size("2mib"), Ok(2 * 1_048_576));
        assert_eq!(parse_size("2MIB"), Ok(2 * 1_048_576));
        assert_eq!(parse_size("10gb"), Ok(10_000_000_000));
        assert_eq!(parse_size(" 2 MiB "), Ok(2 * 1_048_576));
        assert_eq!(parse_size("5b"), Ok(5));
    }

    #[test]
    fn size_errors_say_what_is_wrong() {
        let cases = [
            ("", "invalid size \"\": empty value; expected e.g. \"2MiB\""),
            ("-1MiB", "invalid size \"-1MiB\": must not be negative"),
            ("MiB", "invalid size \"MiB\": expected a number at \"MiB\""),
            (
                "1.5MiB",
                "invalid size \"1.5MiB\": fractions are not supported; use a smaller unit, \
                 e.g. \"1536KiB\"",
            ),
            (
                "2m",
                "invalid size \"2m\": ambiguous unit \"m\": write \"MiB\" (1024-based, what \
                 nginx means by \"m\") or \"MB\" (1000-based)",
            ),
            (
                "8K",
                "invalid size \"8K\": ambiguous unit \"K\": write \"KiB\" (1024-based, what \
                 nginx means by \"k\") or \"KB\" (1000-based)",
            ),
            (
                "2 parsecs",
                "invalid size \"2 parsecs\": unknown unit \"parsecs\" \
                 (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
            ),
            (
                "2MiB x",
                "invalid size \"2MiB x\": unknown unit \"MiB x\" \
                 (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_size(input), Err(expected.to_string()), "{input:?}");
        }
    }

    #[test]
    fn size_overflow_is_an_error_not_a_wrap() {
        assert_eq!(parse_size(&u64::MAX.to_string()), Ok(u64::MAX));
        assert_eq!(
            parse_size("18446744073709551616"),
            Err("invalid size \"18446744073709551616\": number too large".to_string())
        );
        assert_eq!(
            parse_size("16777216TiB"),
            Err("invalid size \"16777216TiB\": too large".to_string())
        );
        assert_eq!(parse_size("16777215TiB"), Ok(16_777_215 << 40));
    }
}
