//! What the alert commands' arguments accept: the value parsers clap runs on them, so a bad
//! value is refused with exit code 2 before anything is sent.

use steward_core::alert::route::Matcher;
use steward_core::alert::{
    Fingerprint, MAX_LABEL_VALUE_CHARS, MAX_LABELS, Severity, is_label_name,
};
use steward_core::registry::Labels;

/// The longest acknowledgement note the API takes, in characters.
const MAX_NOTE_CHARS: usize = 4_096;

/// An acknowledgement note: at most as long as the API takes.
pub fn parse_note(text: &str) -> Result<String, String> {
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("at most {MAX_NOTE_CHARS} characters"));
    }
    Ok(text.to_owned())
}

/// A silence's comment: it must say something.
pub fn parse_comment(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("say why (it is shown with the silence)".to_owned());
    }
    Ok(text.to_owned())
}

/// A fingerprint as `steward alerts ls` prints it: 16 hex digits.
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    let text = text.trim();
    // `Fingerprint::parse` alone would take a leading `+`, which is no fingerprint anyone saw.
    text.chars()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| Fingerprint::parse(text))
        .flatten()
        .ok_or_else(|| {
            format!(
                "`{text}` is not a fingerprint: 16 hex digits, as `steward alerts ls` prints them"
            )
        })
}

/// A severity: critical, warning or info.
pub fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text).ok_or_else(|| format!("`{text}` is not critical, warning or info"))
}

/// A label matcher: `name=value`, `name!=value`, `name=~regex` or `name!~regex`.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    Matcher::parse(text).map_err(|e| e.to_string())
}

/// One `name=value` filter of `alerts ls`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let (name, value) = label_pair(text)?;
    // The API takes every filter in one parameter, separated by commas.
    if value.contains(',') {
        return Err(format!(
            "`{text}`: a value to filter by cannot contain a comma"
        ));
    }
    Ok((name, value))
}

/// An alert's labels as `name=value` pairs separated by commas; an error names the part at
/// fault.
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    if text.trim().is_empty() {
        return Err("no labels: give name=value pairs separated by commas".to_owned());
    }
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() > MAX_LABELS {
        return Err(format!(
            "{} labels; an alert has at most {MAX_LABELS}",
            parts.len()
        ));
    }
    let mut labels = Labels::new();
    for (i, part) in parts.iter().enumerate() {
        let at = format!("label {} of {}", i + 1, parts.len());
        if part.trim().is_empty() {
            return Err(format!("{at} is empty (a stray comma?)"));
        }
        let (name, value) = label_pair(part).map_err(|e| format!("{at}: {e}"))?;
        if labels.contains_key(&name) {
            return Err(format!("{at}: `{name}` is given twice"));
        }
        labels.insert(name, value);
    }
    Ok(labels)
}

/// `name=value` with a label name, and a value no longer than alerts may have; both trimmed,
/// as the API reads them.
fn label_pair(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("`{text}` is not name=value"));
    };
    let (name, value) = (name.trim(), value.trim());
    if !is_label_name(name) {
        return Err(format!(
            "`{text}`: `{name}` is not a label name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    if value.chars().count() > MAX_LABEL_VALUE_CHARS {
        return Err(format!(
            "`{name}`: the value is longer than {MAX_LABEL_VALUE_CHARS} characters"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// A silence's length: whole numbers with units, e.g. `90s`, `2h`, `1h30m`, `1d` (ms, s, m, h,
/// d, w), in milliseconds; more than zero.
pub fn parse_silence_duration(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration such as 30m, 2h, 1h30m or 1d (units: ms, s, m, h, d, w)"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too long"))?;
    }
    if total == 0 {
        return Err(format!("`{text}`: a silence must last longer than zero"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fingerprints_are_sixteen_hex_digits() {
        assert_eq!(
            parse_fingerprint("00000000000000fF").unwrap().to_string(),
            "00000000000000ff"
        );
        for bad in [
            "",
            "abc",
            "+00000000000000f",
            "0000000000000000a",
            "zzzzzzzzzzzzzzzz",
        ] {
            let e = parse_fingerprint(bad).unwrap_err();
            assert!(e.contains("16 hex digits"), "{bad}: {e}");
        }
    }

    #[test]
    fn label_errors_name_the_part_at_fault() {
        assert_eq!(
            parse_labels("alertname=ApiDown, severity = critical,empty=").unwrap(),
            labels(&[
                ("alertname", "ApiDown"),
                ("severity", "critical"),
                ("empty", "")
            ])
        );
        assert_eq!(
            parse_labels("a=b,oops").unwrap_err(),
            "label 2 of 2: `oops` is not name=value"
        );
        assert_eq!(
            parse_labels("a=b,,c=d").unwrap_err(),
            "label 2 of 3 is empty (a stray comma?)"
        );
        assert!(
            parse_labels("1x=b")
                .unwrap_err()
                .starts_with("label 1 of 1: `1x=b`: `1x` is not a label name"),
        );
        assert_eq!(
            parse_labels("a=b,a=c").unwrap_err(),
            "label 2 of 2: `a` is given twice"
        );
        assert!(parse_labels(" ").unwrap_err().starts_with("no labels"));
        assert!(parse_label("service=a,b").unwrap_err().contains("comma"));
        assert_eq!(
            parse_label("url=http://x/?a=b").unwrap(),
            ("url".to_owned(), "http://x/?a=b".to_owned())
        );
    }

    #[test]
    fn durations_are_whole_units() {
        assert_eq!(parse_silence_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_silence_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_silence_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_silence_duration("500ms"), Ok(500));
        for bad in [
            "",
            "2",
            "h",
            "2x",
            "2 h",
            "-1h",
            "1.5h",
            "0s",
            "99999999999999999999w",
        ] {
            assert!(parse_silence_duration(bad).is_err(), "{bad}");
        }
    }
}
