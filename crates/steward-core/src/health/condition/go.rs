//! Go's number and duration syntax, which Gatus conditions inherit: integers as Go's
//! `strconv.ParseInt(s, 0, 64)` reads them, durations as `time.ParseDuration` reads them, and
//! durations shown the way Gatus shows them.

/// Go's duration limit: `1 << 63` nanoseconds (the magnitude of `i64::MIN`).
const LIMIT: u64 = 1 << 63;

/// Duration units and their length in nanoseconds (`µs` is U+00B5, `μs` U+03BC).
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// An integer in Go's base-0 syntax: an optional sign, then decimal digits, `0x`/`0o`/`0b`
/// and a leading `0` (octal) prefixes, with `_` allowed between digits (`1_000`, `0x_ff`).
/// The range is `i128`, a superset of Go's `int64`, so every `u64` and `i64` reads exactly.
pub(super) fn parse_int(text: &str) -> Option<i128> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let prefixed = |lower: &str, upper: &str| {
        unsigned
            .strip_prefix(lower)
            .or_else(|| unsigned.strip_prefix(upper))
    };
    let (radix, digits, has_prefix) = if let Some(rest) = prefixed("0x", "0X") {
        (16, rest, true)
    } else if let Some(rest) = prefixed("0o", "0O") {
        (8, rest, true)
    } else if let Some(rest) = prefixed("0b", "0B") {
        (2, rest, true)
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        (8, unsigned.get(1..)?, true)
    } else {
        (10, unsigned, false)
    };
    if !underscores_ok(digits, has_prefix) {
        return None;
    }
    let mut value: i128 = 0;
    let mut any_digit = false;
    for c in digits.chars().filter(|c| *c != '_') {
        let digit = c.to_digit(radix)?;
        value = value
            .checked_mul(i128::from(radix))?
            .checked_add(i128::from(digit))?;
        any_digit = true;
    }
    if !any_digit {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Go's rule for `_` in base-0 literals: each `_` follows a digit or the base prefix, and is
/// followed by a digit.
fn underscores_ok(digits: &str, has_prefix: bool) -> bool {
    let mut after_digit = has_prefix;
    let mut after_underscore = false;
    for c in digits.chars() {
        if c == '_' {
            if !after_digit {
                return false;
            }
            after_digit = false;
            after_underscore = true;
        } else {
            after_digit = true;
            after_underscore = false;
        }
    }
    !after_underscore
}

/// A duration as Go's `time.ParseDuration` reads it, in nanoseconds: an optional sign, then one
/// or more decimal numbers (fractions allowed), each with a unit — `ns`, `us` (or `µs`), `ms`,
/// `s`, `m`, `h` — such as `300ms`, `-1.5h` or `2h45m`. A bare `0` is zero; any other number
/// needs a unit. `None` when it does not parse or is beyond ±2^63 ns (about 292 years).
pub(super) fn parse_duration_ns(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes().first().copied()?;
        if !(first == b'.' || first.is_ascii_digit()) {
            return None;
        }
        // The whole part: [0-9]*
        let whole_len = leading_digits(rest);
        let (whole_digits, after) = rest.split_at_checked(whole_len)?;
        let mut whole: u64 = 0;
        for d in whole_digits.bytes() {
            if whole > LIMIT / 10 {
                return None;
            }
            whole = whole * 10 + u64::from(d - b'0');
            if whole > LIMIT {
                return None;
            }
        }
        rest = after;
        // The fraction: (\.[0-9]*)? — digits past what fits are ignored, as in Go.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut has_fraction = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fraction_len = leading_digits(after_dot);
            let (fraction_digits, after) = after_dot.split_at_checked(fraction_len)?;
            has_fraction = fraction_len > 0;
            let mut overflow = false;
            for d in fraction_digits.bytes() {
                if overflow || fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(d - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            rest = after;
        }
        if whole_len == 0 && !has_fraction {
            return None;
        }
        // The unit: everything up to the next number.
        let unit_len = rest
            .bytes()
            .position(|b| b == b'.' || b.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit_text, after) = rest.split_at_checked(unit_len)?;
        let (_, unit) = UNITS.iter().find(|(name, _)| *name == unit_text)?;
        if whole > LIMIT / unit {
            return None;
        }
        let mut value = whole * unit;
        if fraction > 0 {
            value = value.checked_add((fraction as f64 * (*unit as f64 / scale)) as u64)?;
            if value > LIMIT {
                return None;
            }
        }
        total = total.checked_add(value)?;
        if total > LIMIT {
            return None;
        }
        rest = after;
    }
    if negative {
        if total == LIMIT {
            return Some(i64::MIN);
        }
        return i64::try_from(total).ok().map(|t| -t);
    }
    i64::try_from(total).ok()
}

/// The number of ASCII digits `text` starts with.
fn leading_digits(text: &str) -> usize {
    text.bytes().take_while(u8::is_ascii_digit).count()
}

/// Milliseconds shown as Gatus shows certificate and domain expirations: truncated to whole
/// seconds, in hours, minutes and seconds without trailing zero parts — `336h`, `1h30m`,
/// `1h0m15s`, `45s`, `-2h` — and `0s` under a second.
pub(super) fn format_ms(ms: i64) -> String {
    let seconds = ms / 1000;
    if seconds == 0 {
        return "0s".to_owned();
    }
    let magnitude = seconds.unsigned_abs();
    let (hours, minutes, secs) = (magnitude / 3600, magnitude % 3600 / 60, magnitude % 60);
    let mut out = String::new();
    if seconds < 0 {
        out.push('-');
    }
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 || (hours > 0 && secs > 0) {
        out.push_str(&format!("{minutes}m"));
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_as_go_reads_them_with_base_zero() {
        for (text, value) in [
            ("0", 0),
            ("200", 200),
            ("+7", 7),
            ("-42", -42),
            ("0x1", 1),
            ("0xC0ff33", 12_648_243),
            ("0XF", 15),
            ("0o17", 15),
            ("0b0010", 2),
            ("017", 15),
            ("0_7", 7),
            ("1_000", 1000),
            ("0x_ff", 255),
            ("-9223372036854775808", i128::from(i64::MIN)),
            ("18446744073709551615", i128::from(u64::MAX)),
        ] {
            assert_eq!(parse_int(text), Some(value), "{text}");
        }
        for text in [
            "", "-", "+", "08", "0x", "1.5", "1e3", "_1", "1_", "1__0", "0x_", "--1", "+-1", " 1",
            "1 ", "abc", "٣",
        ] {
            assert_eq!(parse_int(text), None, "{text:?}");
        }
    }

    #[test]
    fn durations_read_as_go_reads_them() {
        const MS: i64 = 1_000_000;
        for (text, ns) in [
            ("0", 0),
            ("0s", 0),
            ("500ms", 500 * MS),
            ("30s", 30_000 * MS),
            ("48h", 48 * 3_600_000 * MS),
            ("720h", 720 * 3_600_000 * MS),
            ("1h30m", 90 * 60_000 * MS),
            ("1.5h", 90 * 60_000 * MS),
            ("-2m", -120_000 * MS),
            ("+1s", 1_000 * MS),
            (".5s", 500 * MS),
            ("1.s", 1_000 * MS),
            ("10us", 10_000),
            ("10\u{b5}s", 10_000),
            ("10\u{3bc}s", 10_000),
            ("7ns", 7),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ] {
            assert_eq!(parse_duration_ns(text), Some(ns), "{text}");
        }
        for text in [
            "",
            "-",
            "500",
            "1",
            "h",
            ".s",
            "1 h",
            "1hour",
            "1d",
            "1h 30m",
            "2562047h48m",
            "99999999999999999999h",
            "1.5.5s",
        ] {
            assert_eq!(parse_duration_ns(text), None, "{text:?}");
        }
    }

    #[test]
    fn durations_show_without_trailing_zero_parts() {
        for (ms, shown) in [
            (0, "0s"),
            (999, "0s"),
            (10_000, "10s"),
            (45_000, "45s"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (5_400_000, "1h30m"),
            (3_615_000, "1h0m15s"),
            (86_400_000, "24h"),
            (1_209_600_000, "336h"),
            (-7_200_000, "-2h"),
        ] {
            assert_eq!(format_ms(ms), shown, "{ms}");
        }
        assert!(!format_ms(i64::MIN).is_empty());
        assert!(!format_ms(i64::MAX).is_empty());
    }
}
