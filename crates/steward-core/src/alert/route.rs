//! Routing alerts to receivers as Alertmanager defines it: label matchers (`=`, `!=`, `=~`,
//! `!~`, with a missing label read as the empty string and regular expressions anchored), and a
//! tree of routes walked depth first, where the first matching child wins unless it says
//! `continue`, a node no child matches takes the alert itself, and children inherit their
//! parent's receiver, grouping and timing.

use std::fmt;

use regex::Regex;

use crate::registry::Labels;

/// How long a new group waits for more alerts before its first notification (Alertmanager's
/// default).
pub const DEFAULT_GROUP_WAIT_MS: u64 = 30_000;
/// How long a group waits before notifying about alerts added to it (Alertmanager's default).
pub const DEFAULT_GROUP_INTERVAL_MS: u64 = 5 * 60_000;
/// How long before an unchanged, unacknowledged group is notified again (Alertmanager's
/// default).
pub const DEFAULT_REPEAT_INTERVAL_MS: u64 = 4 * 3_600_000;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: the value is exactly this.
    Equal,
    /// `!=`: the value is not this.
    NotEqual,
    /// `=~`: the whole value matches the expression.
    Regex,
    /// `!~`: the whole value does not match the expression.
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Regex => "=~",
            Self::NotRegex => "!~",
        }
    }
}

/// One label matcher, such as `severity="critical"` or `service=~"api|web"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or expression, as written.
    pub value: String,
    /// The expression, anchored, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

/// Why a matcher does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {problem}")]
pub struct MatcherError {
    /// The matcher as written.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Matcher {
    /// A matcher from its parts; the expression of `=~` and `!~` must compile.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let text = format!("{name}{}\"{}\"", op.as_str(), quote(value));
        let error = |problem: String| MatcherError {
            text: text.clone(),
            problem,
        };
        if !super::is_label_name(name) {
            return Err(error(format!(
                "`{name}` is not a label name (letters, digits and `_`, not starting with a digit)"
            )));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| error(format!("not a regular expression: {e}")))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Parses `name=value`, `name!=value`, `name=~regex` or `name!~regex`; the value may be
    /// double-quoted (with `\"` and `\\` escapes), as in Alertmanager's matchers.
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let error = |problem: &str| MatcherError {
            text: text.to_owned(),
            problem: problem.to_owned(),
        };
        let trimmed = text.trim();
        let at = trimmed
            .find(['=', '!'])
            .ok_or_else(|| error("no operator (=, !=, =~ or !~)"))?;
        let name = trimmed[..at].trim();
        let rest = &trimmed[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(error("no operator (=, !=, =~ or !~)"));
        };
        let value = unquote(value.trim()).map_err(|p| error(&p))?;
        Self::new(name, op, &value).map_err(|e| MatcherError {
            text: text.to_owned(),
            problem: e.problem,
        })
    }

    /// Whether `labels` satisfy it; a missing label counts as the empty string.
    pub fn matches(&self, labels: &Labels) -> bool {
        let actual = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => actual == self.value,
            (MatchOp::NotEqual, _) => actual != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(actual),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(actual),
            // `new` always compiles the expression of these two.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    /// As [`Matcher::parse`] reads it back: the value quoted, with `"`, `\` and new lines
    /// escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}\"{}\"",
            self.name,
            self.op.as_str(),
            quote(&self.value)
        )
    }
}

/// Escapes what [`unquote`] unescapes.
fn quote(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A value as written: bare, or double-quoted with `\"`, `\\` and `\n` escapes.
fn unquote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        if value.contains('"') {
            return Err("a quote inside an unquoted value".into());
        }
        return Ok(value.to_owned());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err("unclosed quote".into());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some(other) => return Err(format!("unknown escape `\\{other}`")),
                None => return Err("a `\\` at the end".into()),
            },
            '"' => return Err("an unescaped quote inside the value".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The labels alerts are grouped by on a route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// These labels (none: all the route's alerts in one group).
    #[default]
    None,
    /// These labels.
    Labels(Vec<String>),
    /// Every label: each alert its own group (`group_by = ["..."]`).
    All,
}

impl GroupBy {
    /// The part of `labels` that names the group an alert falls in.
    pub fn key(&self, labels: &Labels) -> Labels {
        match self {
            Self::None => Labels::new(),
            Self::All => labels.clone(),
            Self::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

/// One node of the route tree; what it leaves out it inherits from its parent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    /// The receiver its alerts go to.
    pub receiver: Option<String>,
    /// All must match for an alert to enter this route (none: every alert).
    pub matchers: Vec<Matcher>,
    /// After matching, go on to the next sibling instead of stopping.
    pub continue_matching: bool,
    /// How its alerts are grouped.
    pub group_by: Option<GroupBy>,
    /// Before a new group's first notification.
    pub group_wait_ms: Option<u64>,
    /// Before notifying about alerts added to a group.
    pub group_interval_ms: Option<u64>,
    /// Before repeating an unchanged group's notification.
    pub repeat_interval_ms: Option<u64>,
    /// Its children, tried in order.
    pub routes: Vec<Route>,
}

/// Where an alert ends up: the route that took it, with what it inherited filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The route's place in the tree: child indices from the root (`[]` is the root).
    pub path: Vec<usize>,
    /// The receiver.
    pub receiver: String,
    /// How alerts are grouped there.
    pub group_by: GroupBy,
    /// Before a new group's first notification.
    pub group_wait_ms: u64,
    /// Before notifying about alerts added to a group.
    pub group_interval_ms: u64,
    /// Before repeating an unchanged group's notification.
    pub repeat_interval_ms: u64,
}

impl Route {
    /// Every destination `labels` reach from this route as the root (which takes every alert),
    /// in tree order. The root must name a receiver; one that does not yields no destinations.
    pub fn destinations(&self, labels: &Labels) -> Vec<Destination> {
        let Some(receiver) = &self.receiver else {
            return Vec::new();
        };
        let root = Destination {
            path: Vec::new(),
            receiver: receiver.clone(),
            group_by: self.group_by.clone().unwrap_or_default(),
            group_wait_ms: self.group_wait_ms.unwrap_or(DEFAULT_GROUP_WAIT_MS),
            group_interval_ms: self.group_interval_ms.unwrap_or(DEFAULT_GROUP_INTERVAL_MS),
            repeat_interval_ms: self
                .repeat_interval_ms
                .unwrap_or(DEFAULT_REPEAT_INTERVAL_MS),
        };
        let mut found = Vec::new();
        self.walk(labels, root, &mut found);
        found
    }

    /// Collects the destinations under this (matching) route, whose settings are `here`.
    fn walk(&self, labels: &Labels, here: Destination, found: &mut Vec<Destination>) {
        let before = found.len();
        for (i, child) in self.routes.iter().enumerate() {
            if !child.matchers.iter().all(|m| m.matches(labels)) {
                continue;
            }
            let mut path = here.path.clone();
            path.push(i);
            let inherited = Destination {
                path,
                receiver: child
                    .receiver
                    .clone()
                    .unwrap_or_else(|| here.receiver.clone()),
                group_by: child
                    .group_by
                    .clone()
                    .unwrap_or_else(|| here.group_by.clone()),
                group_wait_ms: child.group_wait_ms.unwrap_or(here.group_wait_ms),
                group_interval_ms: child.group_interval_ms.unwrap_or(here.group_interval_ms),
                repeat_interval_ms: child.repeat_interval_ms.unwrap_or(here.repeat_interval_ms),
            };
            child.walk(labels, inherited, found);
            if !child.continue_matching {
                break;
            }
        }
        if found.len() == before {
            found.push(here);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn m(text: &str) -> Matcher {
        Matcher::parse(text).unwrap()
    }

    #[test]
    fn matchers_follow_alertmanager() {
        let l = labels(&[("severity", "critical"), ("service", "api-eu")]);
        assert!(m("severity=critical").matches(&l));
        assert!(m(r#"severity="critical""#).matches(&l));
        assert!(!m("severity!=critical").matches(&l));
        assert!(m("service=~api-.*").matches(&l));
        assert!(!m("service=~api").matches(&l), "expressions are anchored");
        assert!(m(r#"service!~"web|db""#).matches(&l));
        // A missing label is the empty string.
        assert!(m(r#"team="""#).matches(&l));
        assert!(m("team!=ops").matches(&l));
        assert!(m("team=~|ops").matches(&l));
        assert!(!m("team=~.+").matches(&l));
    }

    #[test]
    fn matcher_errors_say_what_is_wrong() {
        for (text, problem) in [
            ("severity", "no operator"),
            ("1x=y", "not a label name"),
            ("a=~(", "not a regular expression"),
            (r#"a="open"#, "unclosed quote"),
            (r#"a="x\q""#, "unknown escape"),
            (r#"a=b"c"#, "a quote inside an unquoted value"),
        ] {
            let err = Matcher::parse(text).unwrap_err();
            assert!(err.problem.contains(problem), "{text}: {err}");
            assert_eq!(err.text, text);
        }
        assert_eq!(
            m(r#"a = "x \"y\"""#).to_string(),
            r#"a="x \"y\"""#,
            "spaces around the operator are allowed; escapes round-trip"
        );
    }

    fn tree() -> Route {
        Route {
            receiver: Some("default".into()),
            group_by: Some(GroupBy::Labels(vec!["alertname".into()])),
            routes: vec![
                Route {
                    matchers: vec![m("severity=critical")],
                    receiver: Some("pager".into()),
                    continue_matching: true,
                    group_wait_ms: Some(5_000),
                    routes: vec![Route {
                        matchers: vec![m("service=~db.*")],
                        receiver: Some("dba".into()),
                        ..Route::default()
                    }],
                    ..Route::default()
                },
                Route {
                    matchers: vec![m("team=ops")],
                    receiver: Some("ops-slack".into()),
                    group_by: Some(GroupBy::All),
                    ..Route::default()
                },
                Route {
                    matchers: vec![m("team=ops")],
                    receiver: Some("never".into()),
                    ..Route::default()
                },
            ],
            ..Route::default()
        }
    }

    fn receivers(route: &Route, pairs: &[(&str, &str)]) -> Vec<String> {
        route
            .destinations(&labels(pairs))
            .into_iter()
            .map(|d| d.receiver)
            .collect()
    }

    #[test]
    fn the_tree_is_walked_as_alertmanager_walks_it() {
        let t = tree();
        assert_eq!(receivers(&t, &[("alertname", "x")]), ["default"]);
        assert_eq!(receivers(&t, &[("severity", "critical")]), ["pager"]);
        assert_eq!(
            receivers(&t, &[("severity", "critical"), ("service", "db-1")]),
            ["dba"],
            "the deepest matching route takes it"
        );
        assert_eq!(
            receivers(&t, &[("severity", "critical"), ("team", "ops")]),
            ["pager", "ops-slack"],
            "continue goes on to the next sibling; the first match without continue stops"
        );
        let dba = &t.destinations(&labels(&[("severity", "critical"), ("service", "db")]))[0];
        assert_eq!(dba.path, [0, 0]);
        assert_eq!(
            dba.group_wait_ms, 5_000,
            "inherited from the critical route"
        );
        assert_eq!(dba.group_interval_ms, DEFAULT_GROUP_INTERVAL_MS);
        assert_eq!(dba.group_by, GroupBy::Labels(vec!["alertname".into()]));
        let ops = &t.destinations(&labels(&[("team", "ops")]))[0];
        assert_eq!(ops.group_by, GroupBy::All);
        assert!(Route::default().destinations(&Labels::new()).is_empty());
    }

    #[test]
    fn group_keys_take_the_grouping_labels() {
        let l = labels(&[("alertname", "A"), ("service", "api"), ("env", "prod")]);
        assert_eq!(GroupBy::None.key(&l), Labels::new());
        assert_eq!(GroupBy::All.key(&l), l);
        assert_eq!(
            GroupBy::Labels(vec!["service".into(), "missing".into()]).key(&l),
            labels(&[("service", "api")])
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,40}") {
            let _ = Matcher::parse(&text);
        }

        #[test]
        fn every_alert_reaches_at_least_one_destination(
            severity in "(critical|warning|info)",
            team in "(ops|dev|)",
            service in "[a-z]{0,5}",
        ) {
            let l = labels(&[("severity", &severity), ("team", &team), ("service", &service)]);
            prop_assert!(!tree().destinations(&l).is_empty());
        }

        #[test]
        fn quoted_values_round_trip(value in "[ -~\n\t\u{e9}]{0,12}") {
            let matcher = Matcher::new("a", MatchOp::Equal, &value).unwrap();
            prop_assert_eq!(Matcher::parse(&matcher.to_string()).unwrap(), matcher);
        }
    }
}
