//! Health-check conditions in [Gatus](https://github.com/TwiN/gatus)'s language, so conditions
//! written for Gatus can be pasted unchanged.
//!
//! A condition is parsed once with [`Condition::parse`] (which reports the column of any
//! mistake) and evaluated against each probe's [`ProbeContext`]; [`evaluate_all`] evaluates a
//! check's whole list, reading the body as JSON at most once. Each evaluation gives an
//! [`Outcome`]: whether the condition held, and the condition with its placeholders resolved,
//! as Gatus shows it — `[STATUS] (503) == 200`.
//!
//! # Syntax
//!
//! `LEFT OP RIGHT`, where `OP` is one of `==`, `!=`, `<`, `<=`, `>`, `>=`. The operator is the
//! first one found outside `[…]` and `(…)` (and outside a left side that is quoted, `"…"` or
//! `'…'`); two-character operators win over one-character ones. Spaces around it are optional,
//! and each side is trimmed. Conditions are at most 1,024 characters.
//!
//! Each side is a placeholder, a function, or literal text.
//!
//! | Placeholder | Resolves to |
//! |:--|:--|
//! | `[STATUS]` | the HTTP status code, e.g. `200` |
//! | `[RESPONSE_TIME]` | the response time in milliseconds, e.g. `142` |
//! | `[BODY]` | the response body, trimmed |
//! | `[BODY].path` | the JSON value at `path`: `[BODY].status`, `[BODY].data.name`, `[BODY].data[0].id`, `[BODY][0]` |
//! | `[CONNECTED]` | `true` or `false` |
//! | `[CERTIFICATE_EXPIRATION]` | the time left until the TLS certificate expires, in milliseconds |
//! | `[DOMAIN_EXPIRATION]` | the time left until the domain registration expires, in milliseconds |
//! | `[IP]` | the IP address the probe reached, e.g. `127.0.0.1` |
//! | `[DNS_RCODE]` | the DNS response code, e.g. `NOERROR`, `NXDOMAIN` |
//!
//! Placeholder names are case-insensitive (`[body].status` works). Any other `[NAME]` made of
//! letters and `_` is an error (a typo like `[STATU]` would otherwise never match); to compare
//! with such text itself, use `pat([NAME])`.
//!
//! A JSON path is a series of `.key` and `[index]` steps, at most 32 of them. Keys are taken
//! literally up to the next `.` or `[` (there is no quoting, wildcards or filters). The selected
//! value reads as its scalar text: a string without its quotes (`UP`), a number as written (a
//! float with no fractional part loses its `.0`: `1.0` reads `1`), `true`/`false`, and an array
//! or object as minified JSON. A JSON `null`, like an absent key, counts as missing. (A body
//! nested more than 128 levels deep counts as not JSON.)
//!
//! | Function | Meaning |
//! |:--|:--|
//! | `len(X)` | the length of `X`: of an array at a `[BODY]` path, its number of elements; of anything else, the number of characters of its text (an object: of its minified JSON). `len([BODY])` is the number of elements when the body is a JSON array, else the characters of the body. |
//! | `has(X)` | `true` if the `[BODY]` path `X` leads to a non-null value, else `false`; for other placeholders, whether they have a non-empty value. Compare it with `== true` or `== false`. |
//! | `pat(GLOB)` | matches when the other side matches `GLOB`, where `*` is any run of characters (including none) and `?` exactly one; everything else is literal. |
//! | `any(A, B, …)` | matches when the other side equals any of the comma-separated values (each trimmed). |
//!
//! `pat()` and `any()` work only with `==` and `!=` (`!=` means "does not match"), on either side
//! but not both. `len()` and `has()` take a single placeholder.
//!
//! # Comparison rules
//!
//! * **`==` and `!=`**: if both sides read as integers, they compare as numbers (`0x10 == 16`);
//!   otherwise as exact, case-sensitive text. Integers use Go's syntax, as Gatus does: an optional
//!   sign, decimal digits, `0x`/`0o`/`0b` prefixes, a leading `0` for octal, `_` between digits.
//!   `any()` uses the same equality for each value.
//! * **`<`, `<=`, `>`, `>=`** compare numbers. Each side reads as a number in this order: an
//!   integer; a Go duration with a unit (`48h`, `1h30m`, `30s`, `500ms`, `720h`), as whole
//!   milliseconds; a decimal number (`99.5`, `1e3`). Two integers (or durations) compare
//!   exactly; if either side is a decimal, both compare as floating-point. So
//!   `[CERTIFICATE_EXPIRATION] > 48h` compares milliseconds with milliseconds, and
//!   `[RESPONSE_TIME] < 500` or `[RESPONSE_TIME] < 1s` compare milliseconds.
//! * **A side that is not a number makes `<`, `<=`, `>`, `>=` fail**, and the outcome says so:
//!   `[BODY].state (DOWN: not a number) < 5`. There is no ordering of text.
//! * **A missing value makes the condition fail, whatever the operator** (`!=` included): a
//!   placeholder the probe did not produce (no status for a TCP probe, no certificate, no IP),
//!   a body that is absent or not JSON under a `[BODY]` path, or a path that leads nowhere. The
//!   outcome says why: `[BODY].status (missing: body is not JSON) == UP`.
//!
//! # Where this differs from Gatus
//!
//! Gatus's documented semantics are kept; its accidents are not. Every difference makes a
//! condition fail (or be refused) where Gatus would quietly pass, or shows more:
//!
//! * Gatus reads a missing value as `0` (or its placeholder text), and a non-number in `<`/`>`
//!   as `0`: `[BODY].count < 10` passes for `{}` or an HTML error page, and
//!   `[CERTIFICATE_EXPIRATION] == 0` passes for a plain-HTTP probe. Here both fail.
//! * Gatus truncates decimals to integers before ordering them (`20.5 > 20` fails there);
//!   here they compare exactly.
//! * `has([BODY].path)` fails when the body is absent or not JSON (Gatus answers `false`, so
//!   `has([BODY].errors) == false` passed for any non-JSON error page).
//! * Gatus renders JSON numbers through `float64` (`1000000` reads `1e+06`) and arrays in Go's
//!   syntax (`[a b]`); here integers read exactly and arrays as JSON (`["a","b"]`).
//! * `len()` counts characters, not UTF-8 bytes.
//! * `pat()` knows `*` and `?` only; `[…]` classes and `\` escapes are literal, and `/` is an
//!   ordinary character (Gatus goes through `filepath.Match`).
//! * `any()` compares integers as numbers, like `==` (Gatus compares its values as text).
//! * Stricter parsing: unknown `[NAME]` placeholders, `pat()`/`any()` with `<`/`>` or on both
//!   sides, `len()`/`has()` of anything but one placeholder, and malformed JSON paths are
//!   errors (Gatus treats them as text that never matches). Suite `[CONTEXT]` placeholders
//!   are not supported. Operators need no surrounding spaces (Gatus requires them).
//! * Outcomes are always resolved; Gatus resolves only failed conditions by default.

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

mod glob;
mod go;
#[cfg(test)]
mod tests;

/// The longest condition [`Condition::parse`] accepts, in characters.
pub const MAX_CONDITION_CHARS: usize = 1024;

/// The most steps (`.key` or `[index]`) a `[BODY]` JSON path may have.
pub const MAX_PATH_DEPTH: usize = 32;

/// Resolved values longer than this (in characters) are cut short in [`Outcome::resolved`].
const MAX_SHOWN_CHARS: usize = 200;

/// Values compared with `pat()` are cut shorter, as Gatus does.
const MAX_SHOWN_PATTERN_CHARS: usize = 25;

/// The placeholders, as listed in errors.
const PLACEHOLDERS: &str = "[STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], \
     [CERTIFICATE_EXPIRATION], [IP], [DNS_RCODE], [DOMAIN_EXPIRATION]";

const NO_BODY: &str = "no body";
const NOT_JSON: &str = "body is not JSON";
const NOT_A_NUMBER: &str = "not a number";

/// A parsed health-check condition, such as `[STATUS] == 200` or `len([BODY].items) > 0`.
///
/// See the [module documentation](self) for the syntax and the comparison rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    text: String,
    left: Operand,
    op: Operator,
    right: Operand,
}

/// Why a condition does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ConditionError {
    /// The 1-based column (in characters) within the condition text where the problem is.
    pub column: usize,
    /// What is wrong, e.g. `unknown placeholder [STATU]; expected one of [STATUS], …`.
    pub message: String,
}

/// What a probe observed, for conditions to be evaluated against.
///
/// `None` means the probe did not produce that value (a TCP probe has no status, a plain-HTTP
/// probe no certificate); a condition that needs it fails and says what was missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeContext {
    /// The HTTP status code: `[STATUS]`.
    pub status: Option<u16>,
    /// How long the probe took, in milliseconds: `[RESPONSE_TIME]`.
    pub response_time_ms: Option<u64>,
    /// The response body: `[BODY]`, and read as JSON for `[BODY].path`.
    pub body: Option<String>,
    /// Whether a connection was established: `[CONNECTED]`.
    pub connected: bool,
    /// The time left until the TLS certificate expires, in milliseconds (negative once it
    /// has): `[CERTIFICATE_EXPIRATION]`.
    pub certificate_expiration_ms: Option<i64>,
    /// The IP address the probe reached: `[IP]`.
    pub ip: Option<String>,
    /// The DNS response code, such as `NOERROR`: `[DNS_RCODE]`.
    pub dns_rcode: Option<String>,
    /// The time left until the domain registration expires, in milliseconds:
    /// `[DOMAIN_EXPIRATION]`.
    pub domain_expiration_ms: Option<i64>,
}

/// The result of evaluating one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the condition held.
    pub success: bool,
    /// The condition with each placeholder and function followed by its value in parentheses,
    /// as Gatus shows it: `[STATUS] (503) == 200`, `len([BODY].items) (0) > 0`, or with the
    /// reason a value is missing: `[IP] (missing: no IP address) == 10.0.0.1`. Expirations
    /// compared with `<`, `<=`, `>`, `>=` show as durations, as in Gatus:
    /// `[CERTIFICATE_EXPIRATION] (336h) > 720h`. Long values are cut short.
    pub resolved: String,
}

/// Evaluates each condition against `cx`, in order, reading the body as JSON at most once.
pub fn evaluate_all(conditions: &[Condition], cx: &ProbeContext) -> Vec<Outcome> {
    let resolver = Resolver::new(cx);
    conditions
        .iter()
        .map(|condition| condition.evaluate_with(&resolver))
        .collect()
}

impl Condition {
    /// Parses a condition such as `[BODY].status == UP`.
    ///
    /// Errors carry the column of the problem: no operator, an unclosed bracket or
    /// parenthesis, an unknown placeholder, a malformed JSON path, a function used wrongly, or
    /// a condition longer than [`MAX_CONDITION_CHARS`].
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        if text.chars().nth(MAX_CONDITION_CHARS).is_some() {
            return Err(ConditionError::new(
                MAX_CONDITION_CHARS + 1,
                format!("condition is longer than {MAX_CONDITION_CHARS} characters"),
            ));
        }
        let (at, op) = find_operator(text)?;
        let after = at + op.symbol().len();
        let (left, left_column) = parse_operand(text, 0, at, op, Side::Left)?;
        let (right, right_column) = parse_operand(text, after, text.len(), op, Side::Right)?;
        if op.is_ordering() {
            for (operand, column) in [(&left, left_column), (&right, right_column)] {
                if let Some(name) = operand.matcher_name() {
                    return Err(ConditionError::new(
                        column,
                        format!("{name}() works only with == and !="),
                    ));
                }
            }
        }
        if left.matcher_name().is_some() && right.matcher_name().is_some() {
            return Err(ConditionError::new(
                right_column,
                "pat() and any() can be used on one side only",
            ));
        }
        Ok(Condition {
            text: text.to_owned(),
            left,
            op,
            right,
        })
    }

    /// The condition's text, exactly as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a latency condition — it mentions `[RESPONSE_TIME]` — so that failing
    /// it marks a check `degraded` rather than `down`.
    pub fn is_latency(&self) -> bool {
        [&self.left, &self.right]
            .iter()
            .any(|operand| operand.source() == Some(&Source::ResponseTime))
    }

    /// Evaluates the condition against what a probe observed. Never fails: a value the
    /// condition needs but the probe lacks makes it unsuccessful, and [`Outcome::resolved`]
    /// says why.
    pub fn evaluate(&self, cx: &ProbeContext) -> Outcome {
        self.evaluate_with(&Resolver::new(cx))
    }

    fn evaluate_with(&self, resolver: &Resolver<'_>) -> Outcome {
        let left = self.left.resolve(resolver);
        let right = self.right.resolve(resolver);
        let mut notes: (Option<&str>, Option<&str>) = (None, None);
        let success = if self.op.is_ordering() {
            match (&left, &right) {
                (Term::Text(a), Term::Text(b)) => {
                    let (x, y) = (Number::read(a), Number::read(b));
                    notes = (
                        x.is_none().then_some(NOT_A_NUMBER),
                        y.is_none().then_some(NOT_A_NUMBER),
                    );
                    match (x, y) {
                        (Some(x), Some(y)) => x.compare(y).is_some_and(|o| self.op.accepts(o)),
                        _ => false,
                    }
                }
                _ => false,
            }
        } else {
            let matched = match (&left, &right) {
                (Term::Text(t), Term::Pattern(p)) | (Term::Pattern(p), Term::Text(t)) => {
                    Some(glob::matches(p, t))
                }
                (Term::Text(t), Term::Any(values)) | (Term::Any(values), Term::Text(t)) => {
                    Some(values.iter().any(|value| equal(value, t)))
                }
                (Term::Text(a), Term::Text(b)) => Some(equal(a, b)),
                _ => None,
            };
            matched.is_some_and(|m| m == (self.op == Operator::Eq))
        };
        let limit = |other: &Term<'_>| match other {
            Term::Pattern(_) => MAX_SHOWN_PATTERN_CHARS,
            _ => MAX_SHOWN_CHARS,
        };
        let ordering = self.op.is_ordering();
        let resolved = format!(
            "{} {} {}",
            self.left.show(&left, notes.0, limit(&right), ordering),
            self.op.symbol(),
            self.right.show(&right, notes.1, limit(&left), ordering),
        );
        Outcome { success, resolved }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ConditionError {
    fn new(column: usize, message: impl Into<String>) -> ConditionError {
        ConditionError {
            column,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parsed form.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Operator {
    fn symbol(self) -> &'static str {
        match self {
            Operator::Eq => "==",
            Operator::Ne => "!=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
        }
    }

    fn is_ordering(self) -> bool {
        !matches!(self, Operator::Eq | Operator::Ne)
    }

    /// Whether `left OP right` holds when `left` compares to `right` as `ordering`.
    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            Operator::Eq => ordering == Ordering::Equal,
            Operator::Ne => ordering != Ordering::Equal,
            Operator::Lt => ordering == Ordering::Less,
            Operator::Le => ordering != Ordering::Greater,
            Operator::Gt => ordering == Ordering::Greater,
            Operator::Ge => ordering != Ordering::Less,
        }
    }
}

/// One side of a condition: its text as written (trimmed) and what it means.
#[derive(Debug, Clone, PartialEq)]
struct Operand {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Text compared as it is.
    Literal,
    /// A placeholder's value.
    Value(Source),
    /// `len(placeholder)`.
    Len(Source),
    /// `has(placeholder)`.
    Has(Source),
    /// `pat(glob)`.
    Pattern(String),
    /// `any(a, b, …)`, each value trimmed.
    Any(Vec<String>),
}

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Status,
    ResponseTime,
    Connected,
    CertificateExpiration,
    DomainExpiration,
    Ip,
    DnsRcode,
    /// The body, or with steps, the JSON value at that path in it.
    Body(Vec<Step>),
}

/// One step of a `[BODY]` JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

impl Operand {
    fn source(&self) -> Option<&Source> {
        match &self.kind {
            Kind::Value(source) | Kind::Len(source) | Kind::Has(source) => Some(source),
            Kind::Literal | Kind::Pattern(_) | Kind::Any(_) => None,
        }
    }

    /// `pat` or `any` for the functions that match rather than resolve.
    fn matcher_name(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Pattern(_) => Some("pat"),
            Kind::Any(_) => Some("any"),
            _ => None,
        }
    }

    fn resolve<'c>(&'c self, resolver: &Resolver<'_>) -> Term<'c> {
        let resolved = match &self.kind {
            Kind::Literal => return Term::Text(self.text.clone()),
            Kind::Pattern(pattern) => return Term::Pattern(pattern),
            Kind::Any(values) => return Term::Any(values),
            Kind::Value(source) => resolver.value(source),
            Kind::Len(source) => resolver.len(source),
            Kind::Has(source) => resolver.has(source),
        };
        match resolved {
            Ok(text) => Term::Text(text),
            Err(reason) => Term::Missing(reason),
        }
    }

    /// This side as shown in [`Outcome::resolved`]. In an ordering comparison, expirations
    /// show as durations (`336h`), as in Gatus; elsewhere as the milliseconds compared.
    fn show(&self, term: &Term<'_>, note: Option<&str>, limit: usize, ordering: bool) -> String {
        match (&self.kind, term) {
            (Kind::Literal, _) => match note {
                Some(note) => format!("{} ({note})", self.text),
                None => self.text.clone(),
            },
            (Kind::Pattern(_) | Kind::Any(_), _) => self.text.clone(),
            (_, Term::Missing(reason)) => format!("{} (missing: {reason})", self.text),
            (kind, Term::Text(value)) => {
                let shown = match kind {
                    Kind::Value(Source::CertificateExpiration | Source::DomainExpiration)
                        if ordering =>
                    {
                        value
                            .parse::<i64>()
                            .map_or_else(|_| value.clone(), go::format_ms)
                    }
                    _ => truncate(value, limit),
                };
                match note {
                    Some(note) => format!("{} ({shown}: {note})", self.text),
                    None => format!("{} ({shown})", self.text),
                }
            }
            _ => self.text.clone(),
        }
    }
}

/// A side, evaluated.
enum Term<'c> {
    Text(String),
    Missing(String),
    Pattern(&'c str),
    Any(&'c [String]),
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...(truncated)", text.get(..cut).unwrap_or(text)),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

/// The 1-based character column of byte offset `at` in `text`.
fn column_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(0, |before| before.chars().count()) + 1
}

/// The first comparison operator outside brackets, parentheses and a quoted left side, as a
/// byte offset.
fn find_operator(text: &str) -> Result<(usize, Operator), ConditionError> {
    let bytes = text.as_bytes();
    // Open brackets and parentheses: the byte that closes each, and where it opened.
    let mut open: Vec<(u8, usize)> = Vec::new();
    let mut lone_equals: Option<usize> = None;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' | b'\'' if open.is_empty() && starts_token(bytes, i) => {
                // A quoted literal: skip to its closing quote, if it has one.
                let close = bytes
                    .get(i + 1..)
                    .and_then(|rest| rest.iter().position(|c| *c == b));
                if let Some(close) = close {
                    i += close + 2;
                    continue;
                }
            }
            b'[' => open.push((b']', i)),
            b'(' => open.push((b')', i)),
            // A closer with no matching opener is ordinary text.
            b']' | b')' if open.last().is_some_and(|(closer, _)| *closer == b) => {
                open.pop();
            }
            _ if open.is_empty() => {
                let next = bytes.get(i + 1).copied();
                let op = match (b, next) {
                    (b'=', Some(b'=')) => Some(Operator::Eq),
                    (b'!', Some(b'=')) => Some(Operator::Ne),
                    (b'<', Some(b'=')) => Some(Operator::Le),
                    (b'>', Some(b'=')) => Some(Operator::Ge),
                    (b'<', _) => Some(Operator::Lt),
                    (b'>', _) => Some(Operator::Gt),
                    (b'=', _) => {
                        lone_equals.get_or_insert(i);
                        None
                    }
                    _ => None,
                };
                if let Some(op) = op {
                    return Ok((i, op));
                }
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(&(closer, at)) = open.first() {
        let what = if closer == b']' {
            "unclosed bracket"
        } else {
            "unclosed parenthesis"
        };
        return Err(ConditionError::new(column_of(text, at), what));
    }
    let message = "no comparison operator (==, !=, <, <=, >, >=)";
    Err(match lone_equals {
        Some(at) => ConditionError::new(
            column_of(text, at),
            format!("{message}; use == to test equality"),
        ),
        None => ConditionError::new(1, message),
    })
}

/// Whether byte `i` starts a token: it is first, or follows whitespace.
fn starts_token(bytes: &[u8], i: usize) -> bool {
    i == 0
        || i.checked_sub(1)
            .and_then(|before| bytes.get(before))
            .is_some_and(u8::is_ascii_whitespace)
}

/// Parses the side in `text[start..end]`, returning it with the column it starts at.
fn parse_operand(
    text: &str,
    start: usize,
    end: usize,
    op: Operator,
    side: Side,
) -> Result<(Operand, usize), ConditionError> {
    let raw = text.get(start..end).unwrap_or_default();
    let unindented = raw.trim_start();
    let at = start + (raw.len() - unindented.len());
    let written = unindented.trim_end();
    let column = column_of(text, at);
    if written.is_empty() {
        return Err(match side {
            Side::Left => {
                ConditionError::new(1, format!("missing left-hand side before {}", op.symbol()))
            }
            Side::Right => ConditionError::new(
                column_of(text, start),
                format!("missing right-hand side after {}", op.symbol()),
            ),
        });
    }
    let kind = match parse_function(text, at, written)? {
        Some(kind) => kind,
        None => match parse_placeholder(text, at, written)? {
            Some(source) => Kind::Value(source),
            None => Kind::Literal,
        },
    };
    let operand = Operand {
        text: written.to_owned(),
        kind,
    };
    Ok((operand, column))
}

/// `len(…)`, `has(…)`, `pat(…)` or `any(…)`; `None` for anything else. Function names are
/// lower-case, as in Gatus.
fn parse_function(text: &str, at: usize, written: &str) -> Result<Option<Kind>, ConditionError> {
    for name in ["len", "has", "pat", "any"] {
        let Some(rest) = written
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('('))
        else {
            continue;
        };
        let paren_at = at + name.len();
        let Some(inner) = rest.strip_suffix(')') else {
            return Err(if rest.contains(')') {
                let close = rest.find(')').map_or(0, |c| c + 1);
                ConditionError::new(
                    column_of(text, paren_at + 1 + close),
                    format!("unexpected text after {name}(…)"),
                )
            } else {
                ConditionError::new(column_of(text, paren_at), "unclosed parenthesis")
            });
        };
        let inner_at = paren_at + 1;
        let kind = match name {
            "pat" => Kind::Pattern(inner.to_owned()),
            "any" => {
                if inner.trim().is_empty() {
                    return Err(ConditionError::new(
                        column_of(text, inner_at),
                        "any() takes at least one value",
                    ));
                }
                Kind::Any(inner.split(',').map(|v| v.trim().to_owned()).collect())
            }
            _ => {
                let argument = inner.trim();
                let argument_at = inner_at + (inner.len() - inner.trim_start().len());
                if argument.is_empty() || argument.contains(',') {
                    return Err(ConditionError::new(
                        column_of(text, inner_at),
                        format!("{name}() takes one argument"),
                    ));
                }
                let Some(source) = parse_placeholder(text, argument_at, argument)? else {
                    return Err(ConditionError::new(
                        column_of(text, argument_at),
                        format!("{name}() takes a placeholder, such as {name}([BODY].data)"),
                    ));
                };
                if name == "len" {
                    Kind::Len(source)
                } else {
                    Kind::Has(source)
                }
            }
        };
        return Ok(Some(kind));
    }
    Ok(None)
}

/// A placeholder (`[STATUS]`, `[BODY].data[0]`, …) at byte `at`; `None` when `written` does
/// not start with `[NAME]`, `NAME` being letters and `_`.
fn parse_placeholder(
    text: &str,
    at: usize,
    written: &str,
) -> Result<Option<Source>, ConditionError> {
    let Some(after_open) = written.strip_prefix('[') else {
        return Ok(None);
    };
    let Some(close) = after_open.find(']') else {
        return Err(ConditionError::new(column_of(text, at), "unclosed bracket"));
    };
    let name = after_open.get(..close).unwrap_or_default();
    if !name.bytes().any(|b| b.is_ascii_alphabetic())
        || !name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    {
        return Ok(None);
    }
    let rest = after_open.get(close + 1..).unwrap_or_default();
    let rest_at = at + close + 2;
    let source = match name.to_ascii_uppercase().as_str() {
        "BODY" => return parse_path(text, rest_at, rest).map(|steps| Some(Source::Body(steps))),
        "STATUS" => Source::Status,
        "RESPONSE_TIME" => Source::ResponseTime,
        "CONNECTED" => Source::Connected,
        "CERTIFICATE_EXPIRATION" => Source::CertificateExpiration,
        "DOMAIN_EXPIRATION" => Source::DomainExpiration,
        "IP" => Source::Ip,
        "DNS_RCODE" => Source::DnsRcode,
        "CONTEXT" => {
            return Err(ConditionError::new(
                column_of(text, at),
                "[CONTEXT] (Gatus suite context) is not supported",
            ));
        }
        _ => {
            return Err(ConditionError::new(
                column_of(text, at),
                format!(
                    "unknown placeholder [{name}]; expected one of {PLACEHOLDERS} \
                     (to compare with the text [{name}] itself, use pat([{name}]))"
                ),
            ));
        }
    };
    if !rest.is_empty() {
        return Err(ConditionError::new(
            column_of(text, rest_at),
            format!("unexpected text after [{name}] (only [BODY] takes a JSON path)"),
        ));
    }
    Ok(Some(source))
}

/// The JSON path after `[BODY]`, at byte `at`: `.key` and `[index]` steps.
fn parse_path(text: &str, at: usize, path: &str) -> Result<Vec<Step>, ConditionError> {
    let bytes = path.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let column = column_of(text, at + i);
        let invalid =
            |what: String| ConditionError::new(column, format!("invalid JSON path: {what}"));
        match b {
            b'.' => {
                let key_start = i + 1;
                let key_len = bytes
                    .get(key_start..)
                    .unwrap_or_default()
                    .iter()
                    .position(|c| matches!(c, b'.' | b'[' | b']'))
                    .unwrap_or(bytes.len().saturating_sub(key_start));
                if key_len == 0 {
                    return Err(invalid("empty key after `.`".to_owned()));
                }
                let key = path.get(key_start..key_start + key_len).unwrap_or_default();
                steps.push(Step::Key(key.to_owned()));
                i = key_start + key_len;
            }
            b'[' => {
                let Some(close) = bytes
                    .get(i + 1..)
                    .and_then(|rest| rest.iter().position(|c| *c == b']'))
                    .map(|c| i + 1 + c)
                else {
                    return Err(ConditionError::new(column, "unclosed bracket"));
                };
                let index = path.get(i + 1..close).unwrap_or_default();
                if index.is_empty() || !index.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(invalid(format!(
                        "[{index}] is not an array index such as [0]"
                    )));
                }
                let Ok(index) = index.parse::<usize>() else {
                    return Err(invalid(format!("index [{index}] is too large")));
                };
                steps.push(Step::Index(index));
                i = close + 1;
            }
            _ => {
                return Err(invalid(
                    "expected `.key` or `[index]` after [BODY]".to_owned(),
                ));
            }
        }
        if steps.len() > MAX_PATH_DEPTH {
            return Err(invalid(format!("more than {MAX_PATH_DEPTH} steps")));
        }
    }
    Ok(steps)
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/// Resolves placeholders against one probe's context, reading the body as JSON at most once.
struct Resolver<'a> {
    cx: &'a ProbeContext,
    json: OnceCell<Result<Value, &'static str>>,
}

impl<'a> Resolver<'a> {
    fn new(cx: &'a ProbeContext) -> Resolver<'a> {
        Resolver {
            cx,
            json: OnceCell::new(),
        }
    }

    /// The body as JSON, parsed on first use.
    fn json(&self) -> Result<&Value, &'static str> {
        self.json
            .get_or_init(|| match self.cx.body.as_deref() {
                None => Err(NO_BODY),
                Some(body) => serde_json::from_str(body).map_err(|_| NOT_JSON),
            })
            .as_ref()
            .map_err(|reason| *reason)
    }

    /// The placeholder's text, or why it is missing.
    fn value(&self, source: &Source) -> Result<String, String> {
        let cx = self.cx;
        let missing = |reason: &str| reason.to_owned();
        match source {
            Source::Status => cx
                .status
                .map(|s| s.to_string())
                .ok_or_else(|| missing("no HTTP status")),
            Source::ResponseTime => cx
                .response_time_ms
                .map(|ms| ms.to_string())
                .ok_or_else(|| missing("no response time")),
            Source::Connected => Ok(cx.connected.to_string()),
            Source::CertificateExpiration => cx
                .certificate_expiration_ms
                .map(|ms| ms.to_string())
                .ok_or_else(|| missing("no certificate")),
            Source::DomainExpiration => cx
                .domain_expiration_ms
                .map(|ms| ms.to_string())
                .ok_or_else(|| missing("no domain expiration")),
            Source::Ip => cx.ip.clone().ok_or_else(|| missing("no IP address")),
            Source::DnsRcode => cx
                .dns_rcode
                .clone()
                .ok_or_else(|| missing("no DNS response code")),
            Source::Body(path) if path.is_empty() => cx
                .body
                .as_deref()
                .map(|body| body.trim().to_owned())
                .ok_or_else(|| missing(NO_BODY)),
            Source::Body(path) => self.select(path).map(scalar_text),
        }
    }

    /// `len()` of the placeholder, as text.
    fn len(&self, source: &Source) -> Result<String, String> {
        let length = match source {
            Source::Body(path) if path.is_empty() => {
                let body = self.cx.body.as_deref().ok_or(NO_BODY)?.trim();
                match body.starts_with('[').then(|| self.json()) {
                    Some(Ok(Value::Array(items))) => items.len(),
                    _ => body.chars().count(),
                }
            }
            Source::Body(path) => match self.select(path)? {
                Value::Array(items) => items.len(),
                other => scalar_text(other).chars().count(),
            },
            other => self.value(other)?.chars().count(),
        };
        Ok(length.to_string())
    }

    /// `has()` of the placeholder, as text.
    fn has(&self, source: &Source) -> Result<String, String> {
        let found = match source {
            Source::Body(path) if !path.is_empty() => {
                self.json()?;
                self.select(path).is_ok()
            }
            other => self.value(other).is_ok_and(|text| !text.is_empty()),
        };
        Ok(found.to_string())
    }

    /// The non-null JSON value at `path` in the body, or why there is none.
    fn select(&self, path: &[Step]) -> Result<&Value, String> {
        let mut current = self.json()?;
        for step in path {
            current = match (step, current) {
                (Step::Key(key), Value::Object(map)) => {
                    map.get(key).ok_or_else(|| format!("no key `{key}`"))?
                }
                (Step::Index(index), Value::Array(items)) => {
                    items.get(*index).ok_or_else(|| {
                        format!("index {index} is out of range (length {})", items.len())
                    })?
                }
                (Step::Key(key), other) => {
                    return Err(format!("cannot read key `{key}` of {}", kind_of(other)));
                }
                (Step::Index(index), other) => {
                    return Err(format!("cannot read [{index}] of {}", kind_of(other)));
                }
            };
        }
        if current.is_null() {
            return Err("value is null".to_owned());
        }
        Ok(current)
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value as conditions read it: strings without quotes, numbers as written (an
/// integral float without its `.0`), booleans as `true`/`false`, arrays and objects as
/// minified JSON.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => match number.as_f64() {
            Some(f) if number.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                format!("{}", f as i64)
            }
            _ => number.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// `==` between two texts: numerically when both are integers, else exactly.
fn equal(a: &str, b: &str) -> bool {
    match (go::parse_int(a), go::parse_int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A side of `<`, `<=`, `>`, `>=`, read as a number.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    /// An integer, else a duration in whole milliseconds, else a finite decimal.
    fn read(text: &str) -> Option<Number> {
        if let Some(int) = go::parse_int(text) {
            return Some(Number::Int(int));
        }
        if let Some(ns) = go::parse_duration_ns(text) {
            return Some(Number::Int(i128::from(ns / 1_000_000)));
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Number::Float)
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(int) => int as f64,
            Number::Float(f) => f,
        }
    }

    fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
            _ => self.as_f64().partial_cmp(&other.as_f64()),
        }
    }
}
