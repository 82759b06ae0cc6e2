//! What mutes an alert besides inhibition: silences (matchers over a time span, created by
//! someone with a comment) and maintenance windows (recurring, in a time zone: each start given
//! by a cron expression or interval, lasting a fixed time).

use super::route::Matcher;
use crate::registry::Labels;
use crate::schedule::{Timing, Zone};

/// The longest a maintenance window may last.
pub const MAX_WINDOW_MS: u64 = 7 * 24 * 3_600_000;
/// The longest a silence may last: what must stay muted longer belongs in the config (a route,
/// an inhibition rule or a maintenance window), where it is reviewed.
pub const MAX_SILENCE_MS: i64 = 365 * 24 * 3_600_000;

/// A silence: alerts its matchers all match are muted from `starts_at_ms` until `ends_at_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// Its id (assigned by the store).
    pub id: i64,
    /// All must match (never empty: a silence of everything is refused).
    pub matchers: Vec<Matcher>,
    /// From when.
    pub starts_at_ms: i64,
    /// Until when (exclusive).
    pub ends_at_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// Why a silence cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// No matchers: it would silence everything.
    #[error("a silence needs at least one matcher (it would silence every alert)")]
    NoMatchers,
    /// Its end is not after its start.
    #[error("a silence must end after it starts")]
    EndsBeforeStart,
    /// No comment saying why.
    #[error("a silence needs a comment saying why")]
    NoComment,
    /// It would last longer than [`MAX_SILENCE_MS`].
    #[error(
        "a silence lasts at most 365 days; mute for longer in the config (a route, an inhibition rule or a maintenance window)"
    )]
    TooLong,
}

impl Silence {
    /// Checks what a new silence must satisfy.
    pub fn validate(&self) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if self.ends_at_ms <= self.starts_at_ms {
            return Err(SilenceError::EndsBeforeStart);
        }
        // Subtracted without overflow: both ends come from outside.
        if self
            .ends_at_ms
            .checked_sub(self.starts_at_ms)
            .is_none_or(|length| length > MAX_SILENCE_MS)
        {
            return Err(SilenceError::TooLong);
        }
        if self.comment.trim().is_empty() {
            return Err(SilenceError::NoComment);
        }
        Ok(())
    }

    /// Whether it is in force at `now_ms`.
    pub fn active_at(&self, now_ms: i64) -> bool {
        (self.starts_at_ms..self.ends_at_ms).contains(&now_ms)
    }

    /// Whether it mutes an alert with `labels` at `now_ms`.
    pub fn mutes(&self, labels: &Labels, now_ms: i64) -> bool {
        self.active_at(now_ms) && self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// A recurring maintenance window, such as every Sunday 02:00–04:00 Europe/Berlin.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Its name.
    pub name: String,
    /// The alerts it mutes (empty: all).
    pub matchers: Vec<Matcher>,
    /// When each occurrence starts.
    pub starts: Timing,
    /// The zone `starts` is read in.
    pub zone: Zone,
    /// How long each occurrence lasts (at most [`MAX_WINDOW_MS`]).
    pub duration_ms: u64,
}

impl MaintenanceWindow {
    /// The occurrence in force at `now_ms`, as `(start, end)`, if any.
    pub fn occurrence_at(&self, now_ms: i64) -> Option<(i64, i64)> {
        let start = self.starts.last_at_or_before(&self.zone, now_ms)?;
        let end = start.saturating_add(i64::try_from(self.duration_ms).unwrap_or(i64::MAX));
        (now_ms < end).then_some((start, end))
    }

    /// Whether it mutes an alert with `labels` at `now_ms`.
    pub fn mutes(&self, labels: &Labels, now_ms: i64) -> bool {
        self.occurrence_at(now_ms).is_some() && self.matchers.iter().all(|m| m.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::CronExpr;
    use crate::schedule::timing::parse_instant;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn at(text: &str) -> i64 {
        parse_instant(text).unwrap()
    }

    #[test]
    fn silences_mute_matching_alerts_while_active() {
        let silence = Silence {
            id: 1,
            matchers: vec![Matcher::parse("service=api").unwrap()],
            starts_at_ms: 1_000,
            ends_at_ms: 2_000,
            created_by: "ada".into(),
            comment: "deploy".into(),
        };
        assert!(silence.validate().is_ok());
        let api = labels(&[("service", "api")]);
        assert!(!silence.mutes(&api, 999));
        assert!(silence.mutes(&api, 1_000));
        assert!(!silence.mutes(&api, 2_000), "the end is exclusive");
        assert!(!silence.mutes(&labels(&[("service", "db")]), 1_500));
        let everything = Silence {
            matchers: Vec::new(),
            ..silence.clone()
        };
        assert_eq!(everything.validate(), Err(SilenceError::NoMatchers));
        let backwards = Silence {
            ends_at_ms: 1_000,
            ..silence.clone()
        };
        assert_eq!(backwards.validate(), Err(SilenceError::EndsBeforeStart));
        let silent = Silence {
            comment: "  ".into(),
            ..silence.clone()
        };
        assert_eq!(silent.validate(), Err(SilenceError::NoComment));
        let year = Silence {
            ends_at_ms: 1_000 + MAX_SILENCE_MS,
            ..silence.clone()
        };
        assert!(year.validate().is_ok());
        for (starts_at_ms, ends_at_ms) in [
            (1_000, 1_001 + MAX_SILENCE_MS),
            (1_000, 1_000 + 100_000 * 86_400_000),
            (i64::MIN, i64::MAX),
            (-1, i64::MAX),
        ] {
            let long = Silence {
                starts_at_ms,
                ends_at_ms,
                ..silence.clone()
            };
            assert_eq!(
                long.validate(),
                Err(SilenceError::TooLong),
                "{starts_at_ms}..{ends_at_ms}"
            );
        }
    }

    #[test]
    fn maintenance_windows_recur_in_their_zone() {
        // Sundays 02:00–04:00 in Berlin: 01:00–03:00 UTC in winter, 00:00–02:00 in summer.
        let window = MaintenanceWindow {
            name: "sunday-maintenance".into(),
            matchers: vec![Matcher::parse("workspace=trading").unwrap()],
            starts: Timing::Cron(CronExpr::parse("0 2 * * 0").unwrap()),
            zone: Zone::parse("Europe/Berlin").unwrap(),
            duration_ms: 2 * 3_600_000,
        };
        let trading = labels(&[("workspace", "trading")]);
        assert!(window.mutes(&trading, at("2026-12-06T01:30:00Z")), "winter");
        assert!(!window.mutes(&trading, at("2026-12-06T03:00:00Z")), "over");
        assert!(window.mutes(&trading, at("2026-07-05T00:30:00Z")), "summer");
        assert!(!window.mutes(&trading, at("2026-07-05T02:00:00Z")));
        assert!(
            !window.mutes(&trading, at("2026-12-07T01:30:00Z")),
            "a Monday"
        );
        assert!(!window.mutes(
            &labels(&[("workspace", "shop")]),
            at("2026-12-06T01:30:00Z")
        ));
        assert_eq!(
            window.occurrence_at(at("2026-12-06T01:30:00Z")),
            Some((at("2026-12-06T01:00:00Z"), at("2026-12-06T03:00:00Z")))
        );
    }
}
