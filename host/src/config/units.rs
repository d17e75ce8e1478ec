//! The human units of the config file: durations (`"250ms"`, `"5s"`,
//! `"1h30m"`, `"30d"`) and sizes (`"32MiB"`, `"10MB"`, or a plain byte count).

use std::time::Duration;

const DURATION_HINT: &str =
    r#"write a whole number followed by ms, s, m, h or d, e.g. "250ms", "5s", "1h30m", "30d""#;
const SIZE_HINT: &str = r#"write a whole number of bytes, or a whole number followed by B, KiB, MiB, GiB, TiB, kB, MB, GB or TB, e.g. "32MiB""#;

/// The smallest plugin memory cap: one Wasm page, or nothing instantiates.
pub const MIN_PLUGIN_MEMORY: u64 = 64 << 10;

/// A timeout or other wait that must not be zero.
pub fn non_zero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(d)
}

/// A plugin memory cap of at least [`MIN_PLUGIN_MEMORY`].
pub fn plugin_memory(bytes: u64) -> Result<u64, String> {
    if bytes < MIN_PLUGIN_MEMORY {
        return Err(format!(
            "must be at least 64KiB (one Wasm page), found {bytes} bytes"
        ));
    }
    Ok(bytes)
}

/// Parses a duration: one or more `<whole number><unit>` parts with units
/// `ms`, `s`, `m`, `h` or `d`, largest unit first, each unit at most once
/// (`"250ms"`, `"5s"`, `"2h"`, `"1h30m"`, `"30d"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err(format!("empty duration; {DURATION_HINT}"));
    }
    if s.starts_with('-') {
        return Err(format!("{s:?}: a duration cannot be negative"));
    }
    let mut rest = s;
    let mut total = Duration::ZERO;
    let mut previous_rank = u8::MAX;
    while !rest.is_empty() {
        let (number, unit, next) = split_number(rest);
        if number.is_empty() {
            return Err(format!("{s:?} is not a duration; {DURATION_HINT}"));
        }
        let (rank, millis_per_unit) = match unit {
            "d" => (4, 86_400_000),
            "h" => (3, 3_600_000),
            "m" => (2, 60_000),
            "s" => (1, 1_000),
            "ms" => (0, 1),
            "" => return Err(format!("{s:?} has no unit; {DURATION_HINT}")),
            _ => {
                return Err(bad_unit(
                    s,
                    unit,
                    &["d", "h", "m", "s", "ms"],
                    DURATION_HINT,
                ));
            }
        };
        if rank >= previous_rank {
            return Err(format!(
                "{s:?}: units must go from the largest to the smallest, each at most once, e.g. \"1h30m\""
            ));
        }
        let too_large = || format!("{s:?} is too large a duration");
        let millis = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(millis_per_unit))
            .ok_or_else(too_large)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(too_large)?;
        previous_rank = rank;
        rest = next;
    }
    Ok(total)
}

/// Parses a size in bytes: a plain whole number is bytes; otherwise a whole
/// number and a binary (`KiB`, `MiB`, `GiB`, `TiB`) or decimal (`kB`, `MB`,
/// `GB`, `TB`) unit, or `B`. A space before the unit is allowed.
pub fn parse_size(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err(format!("empty size; {SIZE_HINT}"));
    }
    if s.starts_with('-') {
        return Err(format!("{s:?}: a size cannot be negative"));
    }
    let (number, unit, rest) = split_number(s);
    if number.is_empty() {
        return Err(format!("{s:?} is not a size; {SIZE_HINT}"));
    }
    let unit = format!("{}{rest}", unit.trim_start());
    let multiplier: u64 = match unit.as_str() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(bad_unit(s, &unit, &[], SIZE_HINT)),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("{s:?} is too large a size"))
}

/// Writes a duration the way [`parse_duration`] reads it, largest unit
/// first (`"100ms"`, `"1h30m"`); sub-millisecond parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut millis = d.as_millis();
    if millis == 0 {
        return "0ms".to_owned();
    }
    let mut out = String::new();
    for (unit, per_unit) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if millis >= per_unit {
            out.push_str(&format!("{}{unit}", millis / per_unit));
            millis %= per_unit;
        }
    }
    out
}

/// Writes a size the way [`parse_size`] reads it: in the largest binary
/// unit that divides it (`"32MiB"`), else in bytes.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Splits `s` into its leading digits, the non-digits after them, and the rest.
fn split_number(s: &str) -> (&str, &str, &str) {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, after) = s.split_at(digits);
    let unit_len = after
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(after.len());
    let (unit, rest) = after.split_at(unit_len);
    (number, unit, rest)
}

/// Explains an unknown unit, with a pointed message for the usual slips.
fn bad_unit(s: &str, unit: &str, spaced_units: &[&str], hint: &str) -> String {
    if unit.starts_with('.') {
        format!("{s:?}: fractions are not supported, use a smaller unit instead; {hint}")
    } else if spaced_units.contains(&unit.trim()) {
        format!("{s:?}: write the unit right after the number, without spaces")
    } else {
        format!("unknown unit {:?} in {s:?}; {hint}", unit.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
    }

    #[test]
    fn bad_durations_say_why() {
        let err = |s| parse_duration(s).unwrap_err();
        assert!(err("").contains("empty duration"), "{}", err(""));
        assert!(err("5").contains("has no unit"), "{}", err("5"));
        assert!(err("-1s").contains("cannot be negative"), "{}", err("-1s"));
        assert!(
            err("5 parsecs").contains(r#"unknown unit "parsecs""#),
            "{}",
            err("5 parsecs")
        );
        assert!(err("1w").contains(r#"unknown unit "w""#), "{}", err("1w"));
        assert!(err("5 s").contains("without spaces"), "{}", err("5 s"));
        assert!(err("1.5s").contains("fractions"), "{}", err("1.5s"));
        assert!(err("s").contains("is not a duration"), "{}", err("s"));
        assert!(err("30m1h").contains("largest"), "{}", err("30m1h"));
        assert!(err("1s1s").contains("at most once"), "{}", err("1s1s"));
        assert!(
            err("99999999999999999999h").contains("too large"),
            "{}",
            err("99999999999999999999h")
        );
        assert!(
            err("9999999999999999h").contains("too large"),
            "{}",
            err("9999999999999999h")
        );
    }

    #[test]
    fn sizes_in_binary_and_decimal_units() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("3kB"), Ok(3_000));
        assert_eq!(parse_size("1 GB"), Ok(1_000_000_000));
    }

    #[test]
    fn formatted_durations_and_sizes_read_back() {
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
        assert_eq!(format_size(32 << 20), "32MiB");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(0), "0");
        for d in [1, 999, 1_000, 61_001, 5_400_000, 90_061_001] {
            let d = Duration::from_millis(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        for bytes in [0, 1, 1000, 1 << 10, 3 << 20, (1 << 40) + 1, 5 << 40] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        let err = |s| parse_size(s).unwrap_err();
        assert!(err("").contains("empty size"), "{}", err(""));
        assert!(
            err("-1MiB").contains("cannot be negative"),
            "{}",
            err("-1MiB")
        );
        assert!(err("MiB").contains("is not a size"), "{}", err("MiB"));
        assert!(
            err("32mib").contains(r#"unknown unit "mib""#),
            "{}",
            err("32mib")
        );
        assert!(err("1.5GiB").contains("fractions"), "{}", err("1.5GiB"));
        assert!(
            err("1MiB2").contains(r#"unknown unit "MiB2""#),
            "{}",
            err("1MiB2")
        );
        assert!(
            err("99999999TiB").contains("too large"),
            "{}",
            err("99999999TiB")
        );
    }
}
