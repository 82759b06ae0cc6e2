//! Times on the wire: RFC 3339 in UTC, with milliseconds.

use chrono::{DateTime, SecondsFormat, Utc};

/// `ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC with milliseconds
/// (`2026-12-06T21:48:32.123Z`). A value outside chrono's range (more than 262,000 years away)
/// is written as the epoch, which no real timestamp is.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// [`rfc3339`] of a time that may be absent.
pub fn rfc3339_opt(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

/// Parses an RFC 3339 time into milliseconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds_and_read_back() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_593_712_123), "2026-12-06T21:48:32.123Z");
        assert_eq!(
            parse_rfc3339("2026-12-06T22:48:32.123+01:00"),
            Some(1_796_593_712_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
