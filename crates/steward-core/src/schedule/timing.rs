//! When a schedule fires: cron expressions read in an IANA time zone, fixed intervals, and
//! one-off instants. Every time here is milliseconds since the Unix epoch (`i64`); a *slot* is
//! one instant at which a schedule fires.
//!
//! # Slots
//!
//! - **Cron** slots are whole seconds: the real instants whose wall-clock time in the zone
//!   matches the expression (with the daylight-saving rule below).
//! - **Interval** slots are the multiples of the interval since the Unix epoch, so every
//!   instance computes the same slots without sharing any state. The zone plays no part.
//! - **Once** has a single slot.
//!
//! # Cron expressions
//!
//! Five fields (`minute hour day-of-month month day-of-week`) or six (a leading `second`),
//! or one of the nicknames `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`. Each field is `*`, or a comma-separated list of values, ranges
//! (`9-17`) and steps (`*/15`, `8-18/2`). Months and weekdays take names (`JAN`, `MON`; any
//! case). Day of month also takes `L` (last day), `LW` (last weekday) and `15W` (the weekday
//! nearest the 15th); day of week takes `5L` / `FRIL` (the last Friday) and `5#3` / `FRI#3`
//! (the third Friday), and `0` and `7` are both Sunday. `?` is the same as `*` in the two day
//! fields.
//!
//! When both day of month and day of week are restricted (neither is `*` or `?`), a day
//! matches when **either** matches, as in Vixie cron: `0 0 1 * MON` fires on the 1st and on
//! every Monday. Prefix day of week with `+` (`0 0 1-7 * +MON`) to require both (the first
//! Monday).
//!
//! # Daylight saving time
//!
//! Which rule applies depends on the **hour field** only:
//!
//! - **Hour field `*` or with a step** (`*`, `*/2`, `8-18/2`: a rhythm, not a time of day):
//!   the expression fires at every real instant whose wall-clock time matches. In a
//!   fall-back overlap, a matching wall-clock time fires twice, once per offset (`0 * * * *`
//!   fires at 02:00+02:00 and again at 02:00+01:00 in Berlin); in a spring-forward gap there
//!   is no such instant and nothing fires there.
//! - **Any other hour field** (a single hour, a list or a range: `2`, `1,13`, `9-17`: times of
//!   day): each matching wall-clock time fires exactly once. A time that happens twice fires
//!   at its first occurrence only (`30 2 * * *` in Berlin on 2026-10-25 fires at
//!   02:30+02:00, not again at 02:30+01:00). A time that does not exist fires at the first
//!   real instant after the gap (`30 2 * * *` in Berlin on 2026-03-29 fires at
//!   03:00+02:00); several missing times collapse into that one slot. This holds whatever
//!   the minute and second fields are: `*/15 2 * * *` fires four times in the 02:00 hour of a
//!   fall-back night (the first pass) and once, at 03:00, on a spring-forward night.
//!
//! `*/1` is `*`, but a range with a step of 1 (`0-23/1`) is a range. A missing time fires
//! at the first instant after its gap even where that instant falls on the next day (a zone
//! that skips midnight, or a whole day).
//!
//! Croner (the cron library) draws the line elsewhere: it applies the once-per-time rule only
//! when the second, minute and hour fields are each a single value, and treats everything
//! else (`*/15 2 * * *`, `0 1,2,3 * * *`) as an interval job: skipped in a gap, fired on both
//! passes of an overlap. So Steward asks croner only for wall-clock matches when the hour
//! field is fixed, and maps them to instants itself; croner's own time-zone search is used
//! when the hour field is `*` or a step, where the two rules agree.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, SecondsFormat, TimeDelta, TimeZone};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

// ---------------------------------------------------------------------------------------------
// Zones
// ---------------------------------------------------------------------------------------------

/// An IANA time zone (`Europe/Berlin`, `UTC`), with its rules bundled in the binary: nothing
/// depends on the host's zone database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Zone {
    tz: Tz,
}

impl Zone {
    /// Coordinated Universal Time.
    pub fn utc() -> Self {
        Self { tz: Tz::UTC }
    }

    /// The zone with this IANA name (case-sensitive, as in the database: `Europe/Berlin`,
    /// `America/New_York`, `UTC`).
    pub fn parse(name: &str) -> Result<Self, ZoneError> {
        match Tz::from_str(name) {
            Ok(tz) => Ok(Self { tz }),
            Err(_) => Err(ZoneError {
                name: name.to_owned(),
                suggestion: suggest_zone(name),
            }),
        }
    }

    /// Its IANA name.
    pub fn name(&self) -> &str {
        self.tz.name()
    }

    /// The zone's rules.
    pub fn tz(&self) -> Tz {
        self.tz
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self::utc()
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Zone {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A time zone name that is not in the IANA database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneError {
    /// The name as given.
    pub name: String,
    /// The closest known name, when one is close enough to be what was meant.
    pub suggestion: Option<String>,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown time zone `{}`", self.name)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " (did you mean `{suggestion}`?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for ZoneError {}

/// The known zone name closest to `name`: the same name in another case, or the nearest by
/// edit distance (against the whole name or, for a bare city, its last part) when that is
/// within a few edits.
fn suggest_zone(name: &str) -> Option<String> {
    let wanted: String = name
        .trim()
        .chars()
        .map(|c| {
            if c == ' ' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let bare_city = !wanted.contains('/');
    let mut best: Option<(usize, &'static str)> = None;
    for tz in chrono_tz::TZ_VARIANTS.iter() {
        let candidate = tz.name();
        let lower = candidate.to_ascii_lowercase();
        if lower == wanted {
            return Some(candidate.to_owned());
        }
        let mut distance = edit_distance(&wanted, &lower);
        if bare_city {
            let city = lower.rsplit('/').next().unwrap_or(&lower);
            distance = distance.min(edit_distance(&wanted, city));
        }
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    let allowed = (wanted.chars().count() / 4).clamp(1, 3);
    best.filter(|(d, _)| *d <= allowed)
        .map(|(_, candidate)| candidate.to_owned())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Instants
// ---------------------------------------------------------------------------------------------

/// The earliest instant the cron search handles (0001-01-01T00:00:00Z).
const CRON_MIN_SECS: i64 = -62_135_596_800;

/// `ms` as RFC 3339 with the zone's offset at that instant, e.g. `2026-03-29T03:00:00+02:00`
/// (milliseconds are shown only when there are some). An instant outside the calendar's range
/// prints as its raw millisecond count.
pub fn format_instant(ms: i64, zone: &Zone) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(utc) => utc
            .with_timezone(&zone.tz)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        None => format!("{ms}ms"),
    }
}

/// An RFC 3339 instant (`2026-12-01T08:00:00+01:00`, `2026-12-01T07:00:00Z`) as milliseconds
/// since the Unix epoch.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|dt| dt.timestamp_millis())
        .map_err(|e| {
            format!(
                "`{text}` is not an RFC 3339 time with an offset, like 2026-12-01T08:00:00+01:00 ({e})"
            )
        })
}

/// The instant `secs` in the zone.
fn zoned(tz: Tz, secs: i64) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp(secs, 0).map(|utc| utc.with_timezone(&tz))
}

fn seconds_to_ms(secs: i64) -> Option<i64> {
    secs.checked_mul(1000)
}

// ---------------------------------------------------------------------------------------------
// Cron expressions
// ---------------------------------------------------------------------------------------------

/// A parsed cron expression (see the [module documentation](self) for the syntax and the
/// daylight-saving rule). Equal when their source text is equal.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    cron: Box<Cron>,
    /// The hour field is `*` or has a step: every matching real instant fires.
    wildcard_hours: bool,
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CronExpr {}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A cron expression that does not parse, or that can never fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// The expression as given.
    pub expression: String,
    /// The field at fault (`"second"`, `"minute"`, `"hour"`, `"day of month"`, `"month"`,
    /// `"day of week"`), or `None` when the fault is the expression as a whole.
    pub field: Option<&'static str>,
    /// That field's text.
    pub value: Option<String>,
    /// What is wrong, e.g. `must be 0-23`.
    pub message: String,
}

impl CronError {
    fn whole(expression: &str, message: impl Into<String>) -> Self {
        Self {
            expression: expression.to_owned(),
            field: None,
            value: None,
            message: message.into(),
        }
    }

    fn in_field(expression: &str, field: &Field, value: &str, message: impl Into<String>) -> Self {
        Self {
            expression: expression.to_owned(),
            field: Some(field.name),
            value: Some(value.to_owned()),
            message: message.into(),
        }
    }
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron expression \"{}\": ", self.expression)?;
        match (self.field, &self.value) {
            (Some(field), Some(value)) => write!(f, "field {field} is `{value}`: ")?,
            (Some(field), None) => write!(f, "field {field}: ")?,
            _ => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for CronError {}

/// What a field accepts.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for values, the first being `min` (months) or 0 (weekdays).
    names: &'static [&'static str],
    kind: FieldKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Plain,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [Field; 6] = [
    Field {
        name: "second",
        min: 0,
        max: 59,
        names: &[],
        kind: FieldKind::Plain,
    },
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        kind: FieldKind::Plain,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        kind: FieldKind::Plain,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        kind: FieldKind::DayOfMonth,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTH_NAMES,
        kind: FieldKind::Month,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: DAY_NAMES,
        kind: FieldKind::DayOfWeek,
    },
];

const HOUR: usize = 2;

/// A fault in one field: the message (the field and its text are added by the caller).
type FieldFault = String;

impl Field {
    fn range_text(&self) -> String {
        match self.kind {
            FieldKind::Month => format!("{}-{} or JAN-DEC", self.min, self.max),
            FieldKind::DayOfWeek => format!("{}-{} or SUN-SAT", self.min, self.max),
            _ => format!("{}-{}", self.min, self.max),
        }
    }

    /// How many values the field has (the largest useful step).
    fn span(&self) -> u32 {
        match self.kind {
            FieldKind::DayOfWeek => 7,
            _ => self.max - self.min + 1,
        }
    }

    /// Checks the field and returns it with names replaced by numbers, for croner.
    fn normalize(&self, text: &str) -> Result<String, FieldFault> {
        let upper = text.to_ascii_uppercase();
        let (prefix, body) = match upper.strip_prefix('+') {
            Some(rest) if self.kind == FieldKind::DayOfWeek => ("+", rest),
            Some(_) => {
                return Err(
                    "`+` (require both day fields) is only allowed before day of week".into(),
                );
            }
            None => ("", upper.as_str()),
        };
        if body == "*" || body == "?" {
            if body == "?" && !matches!(self.kind, FieldKind::DayOfMonth | FieldKind::DayOfWeek) {
                return Err("`?` is only allowed in day of month and day of week".into());
            }
            if !prefix.is_empty() {
                return Err("`+` needs a restricted day of week after it".into());
            }
            return Ok("*".into());
        }
        let mut items = Vec::new();
        for item in body.split(',') {
            if item.is_empty() {
                return Err("has an empty list item".into());
            }
            items.push(self.normalize_item(item, text)?);
        }
        Ok(format!("{prefix}{}", items.join(",")))
    }

    fn normalize_item(&self, item: &str, whole: &str) -> Result<String, FieldFault> {
        if item == "*" || item == "?" {
            return Err(format!("`{item}` cannot be part of a list"));
        }
        if let Some((base, step)) = item.split_once('/') {
            let step_value =
                parse_number(step).ok_or_else(|| format!("step `{step}` is not a whole number"))?;
            if step_value == 0 || step_value > self.span() {
                return Err(format!(
                    "step `{step}` must be 1-{} for the {}",
                    self.span(),
                    self.name
                ));
            }
            let base = if base == "*" {
                "*".to_owned()
            } else if base.is_empty() {
                return Err(format!("a step needs a start: write `*/{step}`"));
            } else if base.contains('-') {
                self.normalize_range(base, whole)?
            } else if let Ok(value) = self.value(base, whole, false) {
                let last = if self.kind == FieldKind::DayOfWeek {
                    6
                } else {
                    self.max
                };
                return Err(format!(
                    "a step needs `*` or a range before it: write `{value}-{last}/{step}`"
                ));
            } else {
                return Err(format!("step start `{base}` is not a value or a range"));
            };
            return Ok(format!("{base}/{step_value}"));
        }
        match self.kind {
            FieldKind::DayOfMonth if item == "L" || item == "LW" => return Ok(item.to_owned()),
            FieldKind::DayOfMonth if item.ends_with('W') => {
                let day = &item[..item.len() - 1];
                let value = parse_number(day)
                    .filter(|d| (self.min..=self.max).contains(d))
                    .ok_or_else(|| {
                        format!("`{item}`: `W` needs a day 1-31 before it, like `15W`")
                    })?;
                return Ok(format!("{value}W"));
            }
            FieldKind::DayOfMonth if item.contains('L') || item.contains('W') => {
                return Err(format!(
                    "`{item}`: use `L` (last day), `LW` (last weekday) or `15W` (weekday nearest the 15th)"
                ));
            }
            FieldKind::DayOfWeek if item == "L" => {
                return Err(
                    "`L` alone is not a day of week: write e.g. `5L` or `FRIL` for the last Friday"
                        .into(),
                );
            }
            FieldKind::DayOfWeek if item.contains('#') => {
                let (day, nth) = item.split_once('#').unwrap_or((item, ""));
                let day = self.value(day, whole, false)?;
                let nth = parse_number(nth)
                    .filter(|n| (1..=5).contains(n))
                    .ok_or_else(|| {
                        format!("`{item}`: the number after `#` must be 1-5 (the nth such weekday)")
                    })?;
                return Ok(format!("{day}#{nth}"));
            }
            FieldKind::DayOfWeek if item.len() > 1 && item.ends_with('L') => {
                let day = self.value(&item[..item.len() - 1], whole, false)?;
                return Ok(format!("{day}L"));
            }
            _ => {}
        }
        if item.contains('-') {
            return self.normalize_range(item, whole);
        }
        Ok(self.value(item, whole, false)?.to_string())
    }

    fn normalize_range(&self, range: &str, whole: &str) -> Result<String, FieldFault> {
        let Some((start, end)) = range.split_once('-') else {
            return Err(format!("`{range}` is not a range"));
        };
        if start.is_empty() || end.is_empty() || end.contains('-') {
            return Err(format!("`{range}` is not a range like `1-5`"));
        }
        let start_value = self.value(start, whole, false)?;
        let end_value = self.value(end, whole, true)?;
        if start_value > end_value {
            return Err(format!("range `{range}` starts after it ends"));
        }
        Ok(format!("{start_value}-{end_value}"))
    }

    /// A number or a name. `range_end` reads `SUN` as 7, so that `FRI-SUN` is a range.
    fn value(&self, token: &str, whole: &str, range_end: bool) -> Result<u32, FieldFault> {
        if token.chars().all(|c| c.is_ascii_digit()) && !token.is_empty() {
            return match parse_number(token) {
                Some(v) if (self.min..=self.max).contains(&v) => Ok(v),
                _ if token == whole => Err(format!("must be {}", self.range_text())),
                _ => Err(format!(
                    "`{token}` is out of range: must be {}",
                    self.range_text()
                )),
            };
        }
        if token.chars().all(|c| c.is_ascii_alphabetic()) && !token.is_empty() {
            if let Some(index) = self.names.iter().position(|n| *n == token) {
                let index = u32::try_from(index).unwrap_or(0);
                return Ok(match self.kind {
                    FieldKind::DayOfWeek if range_end && index == 0 => 7,
                    FieldKind::DayOfWeek => index,
                    _ => self.min + index,
                });
            }
            return Err(match self.kind {
                FieldKind::Month => format!("unknown month `{token}`: use JAN-DEC or 1-12"),
                FieldKind::DayOfWeek => format!("unknown weekday `{token}`: use SUN-SAT or 0-7"),
                _ => format!(
                    "`{token}` is not a number: the {} takes {}",
                    self.name,
                    self.range_text()
                ),
            });
        }
        Err(format!(
            "`{token}` is not a valid value: must be {}",
            self.range_text()
        ))
    }
}

fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The nicknames, as five fields.
fn nickname(text: &str) -> Option<&'static str> {
    Some(match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

fn croner_parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).build()
}

impl CronExpr {
    /// Parses a cron expression: five fields, six with leading seconds, or a nickname. An
    /// error names the field at fault; an expression that can never fire (`0 0 30 2 *`) is
    /// refused too.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let source = expr.trim();
        if source.is_empty() {
            return Err(CronError::whole(
                expr,
                "is empty: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with leading seconds)",
            ));
        }
        let expanded = if source.starts_with('@') {
            nickname(source).ok_or_else(|| {
                CronError::whole(
                    expr,
                    format!(
                        "unknown nickname `{source}`: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
                    ),
                )
            })?
        } else {
            source
        };
        let mut fields: Vec<&str> = expanded.split_whitespace().collect();
        match fields.len() {
            5 => fields.insert(0, "0"),
            6 => {}
            found => {
                return Err(CronError::whole(
                    expr,
                    format!(
                        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with leading seconds), found {found}"
                    ),
                ));
            }
        }

        let parser = croner_parser();
        let mut normalized = Vec::with_capacity(6);
        for (index, (field, text)) in FIELDS.iter().zip(&fields).enumerate() {
            let norm = field
                .normalize(text)
                .map_err(|message| CronError::in_field(expr, field, text, message))?;
            // Croner has the last word on each field, checked alone so that its
            // complaint can be pinned on this field.
            let mut alone = ["*"; 6];
            alone[index] = &norm;
            if let Err(e) = parser.parse(&alone.join(" ")) {
                return Err(CronError::in_field(expr, field, text, croner_message(&e)));
            }
            normalized.push(norm);
        }
        let cron = parser
            .parse(&normalized.join(" "))
            .map_err(|e| CronError::whole(expr, croner_message(&e)))?;

        // A pattern that matches no date (30 February) makes every search fail; find out now.
        let probe = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .ok_or_else(|| CronError::whole(expr, "internal error: bad probe date"))?;
        if cron.find_next_occurrence(&probe, false).is_err() {
            return Err(CronError::whole(
                expr,
                "can never fire: no date matches its day-of-month, month and day-of-week fields",
            ));
        }

        let wildcard_hours = cron.pattern.hours.from_wildcard || cron.pattern.hours.step > 1;
        debug_assert!(
            !wildcard_hours || fields[HOUR].contains('*') || fields[HOUR].contains('/'),
            "a wildcard or stepped hour field is written with `*` or `/`"
        );
        Ok(Self {
            source: source.to_owned(),
            cron: Box::new(cron),
            wildcard_hours,
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the hour field is `*` or has a step, so that every matching real instant fires
    /// (including both passes of a repeated hour); otherwise each matching wall-clock time
    /// fires once (see the module documentation).
    pub fn wildcard_hours(&self) -> bool {
        self.wildcard_hours
    }

    /// The first slot strictly after `after` (whole seconds since the epoch).
    fn next_after_secs(&self, tz: Tz, after: i64) -> Option<i64> {
        let after = after.max(CRON_MIN_SECS - 1);
        if self.wildcard_hours {
            let start = zoned(tz, after)?;
            return self
                .cron
                .find_next_occurrence(&start, false)
                .ok()
                .map(|dt| dt.timestamp());
        }
        let mut wall = wall_boundary(tz, after)?;
        for _ in 0..MAX_RESOLVE_STEPS {
            let next = self.cron.find_next_occurrence(&wall, false).ok()?;
            if let Some(slot) = fire_instant(tz, next).filter(|slot| *slot > after) {
                return Some(slot);
            }
            wall = next;
        }
        None
    }

    /// The last slot at or before `at` (whole seconds since the epoch).
    fn last_at_or_before_secs(&self, tz: Tz, at: i64) -> Option<i64> {
        if at < CRON_MIN_SECS {
            return None;
        }
        if self.wildcard_hours {
            let start = zoned(tz, at)?;
            return self
                .cron
                .find_previous_occurrence(&start, true)
                .ok()
                .map(|dt| dt.timestamp());
        }
        let mut wall = wall_boundary(tz, at)?;
        let mut inclusive = true;
        for _ in 0..MAX_RESOLVE_STEPS {
            let previous = self.cron.find_previous_occurrence(&wall, inclusive).ok()?;
            if let Some(slot) = fire_instant(tz, previous).filter(|slot| *slot <= at) {
                return Some(slot);
            }
            wall = previous;
            inclusive = false;
        }
        None
    }
}

fn croner_message(error: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    match error {
        E::ComponentError(m) | E::InvalidPattern(m) | E::IllegalCharacters(m) => m.clone(),
        other => other.to_string(),
    }
}

/// A bound on the wall-clock matches skipped while resolving one search; the boundary below
/// makes the first match the answer in every real zone, so this only stops a runaway.
const MAX_RESOLVE_STEPS: usize = 10_000;

// How the once-per-time rule maps wall-clock times to instants.
//
// Each matching wall-clock time `w` fires at `fire(w)`: its only instant, or the first of its
// two instants in a fall-back overlap, or, when it falls in a spring-forward gap, the first
// instant after the gap. `fire` never decreases as `w` grows (an overlap's first pass ends
// at the transition; the gap's times all map to the transition itself), so the slots after
// instant `t` are `fire` of the matches after the wall-clock time `boundary(t)`, and the slots
// at or before `t` are `fire` of the matches at or before it. `boundary(t)` is `t`'s wall
// clock, except on the second pass of an overlap: there every repeated wall-clock time has
// already fired (on the first pass), so the boundary is the end of the repeated range.

/// The wall-clock time that splits the matches into those firing at or before `t` and those
/// firing after it.
fn wall_boundary(tz: Tz, t: i64) -> Option<NaiveDateTime> {
    let wall = zoned(tz, t)?.naive_local();
    if let LocalResult::Ambiguous(earlier, later) = tz.from_local_datetime(&wall)
        && later.timestamp() == t
        && earlier.timestamp() != t
        && let Some(end) =
            first_wall_time_where(tz, wall, |r| !matches!(r, LocalResult::Ambiguous(..)))
    {
        return end.checked_sub_signed(TimeDelta::seconds(1));
    }
    Some(wall)
}

/// The instant a matching wall-clock time fires at under the once-per-time rule.
fn fire_instant(tz: Tz, wall: NaiveDateTime) -> Option<i64> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(dt) => Some(dt.timestamp()),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.timestamp()),
        LocalResult::None => {
            let after_gap = first_wall_time_where(tz, wall, |r| !matches!(r, LocalResult::None))?;
            match tz.from_local_datetime(&after_gap) {
                LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) => Some(dt.timestamp()),
                LocalResult::None => None,
            }
        }
    }
}

/// The first wall-clock second after `from` for which `found` holds, when it holds within two
/// days and keeps holding once it does (the end of a gap or of an overlap).
fn first_wall_time_where(
    tz: Tz,
    from: NaiveDateTime,
    found: impl Fn(LocalResult<DateTime<Tz>>) -> bool,
) -> Option<NaiveDateTime> {
    let at = |offset: i64| -> Option<(NaiveDateTime, bool)> {
        let wall = from.checked_add_signed(TimeDelta::seconds(offset))?;
        Some((wall, found(tz.from_local_datetime(&wall))))
    };
    // Gallop to a second where it holds, then halve back to the first.
    let mut low = 0_i64; // does not hold here
    let mut high = 1_i64;
    loop {
        let (_, holds) = at(high)?;
        if holds {
            break;
        }
        low = high;
        high *= 2;
        if high > 2 * 86_400 {
            return None;
        }
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if at(mid)?.1 {
            high = mid;
        } else {
            low = mid;
        }
    }
    at(high).map(|(wall, _)| wall)
}

// ---------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Timing {
    /// At each time matching a cron expression, read in the schedule's zone.
    Cron(CronExpr),
    /// At each multiple of the interval since the Unix epoch.
    Every {
        /// The interval, in milliseconds (more than 0).
        interval_ms: u64,
    },
    /// Once, at this instant.
    Once {
        /// The instant, in milliseconds since the Unix epoch.
        at_ms: i64,
    },
}

impl Timing {
    /// The first slot strictly after `after_ms`, or `None` when there is none (a past `Once`,
    /// an interval of 0, or a time beyond the year 5000).
    pub fn next_after(&self, zone: &Zone, after_ms: i64) -> Option<i64> {
        match self {
            Self::Cron(expr) => expr
                .next_after_secs(zone.tz, after_ms.div_euclid(1000))
                .and_then(seconds_to_ms),
            Self::Every { interval_ms } => {
                let interval = i64::try_from(*interval_ms).ok().filter(|i| *i > 0)?;
                after_ms
                    .div_euclid(interval)
                    .checked_add(1)?
                    .checked_mul(interval)
            }
            Self::Once { at_ms } => (*at_ms > after_ms).then_some(*at_ms),
        }
    }

    /// The last slot at or before `at_ms`, or `None` when there is none.
    pub fn last_at_or_before(&self, zone: &Zone, at_ms: i64) -> Option<i64> {
        match self {
            Self::Cron(expr) => expr
                .last_at_or_before_secs(zone.tz, at_ms.div_euclid(1000))
                .and_then(seconds_to_ms),
            Self::Every { interval_ms } => {
                let interval = i64::try_from(*interval_ms).ok().filter(|i| *i > 0)?;
                at_ms.div_euclid(interval).checked_mul(interval)
            }
            Self::Once { at_ms: at } => (*at <= at_ms).then_some(*at),
        }
    }

    /// The slots in `(after_ms, until_ms]`, in increasing order.
    pub fn slots(
        &self,
        zone: &Zone,
        after_ms: i64,
        until_ms: i64,
    ) -> impl Iterator<Item = i64> + use<'_> {
        let zone = zone.clone();
        let mut cursor = Some(after_ms);
        std::iter::from_fn(move || {
            let slot = self
                .next_after(&zone, cursor?)
                .filter(|slot| *slot <= until_ms);
            cursor = slot;
            slot
        })
    }

    /// A short description: `cron "0 8 * * *" in Europe/Berlin`, `every 30s`,
    /// `once at 2026-12-01T08:00:00+01:00`.
    pub fn describe(&self, zone: &Zone) -> String {
        match self {
            Self::Cron(expr) => format!("cron \"{}\" in {}", expr.as_str(), zone.name()),
            Self::Every { interval_ms } => format!("every {}", describe_duration(*interval_ms)),
            Self::Once { at_ms } => format!("once at {}", format_instant(*at_ms, zone)),
        }
    }
}

/// `30s`, `5m`, `2h`, `1d`, or `1500ms`: the largest unit that divides the duration.
fn describe_duration(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    if ms > 0 {
        for (size, unit) in UNITS {
            if ms.is_multiple_of(size) {
                return format!("{}{unit}", ms / size);
            }
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests;
