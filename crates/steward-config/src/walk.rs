//! A small toolkit for walking a parsed TOML document against a schema while collecting every
//! problem: tables that report keys they do not know, typed field readers, and spans.

use std::ops::{Range, RangeInclusive};

use steward_core::registry::Labels;
use toml_edit::{Item, TableLike, Value};

use crate::diagnostic::{Diagnostic, Diagnostics, Severity};
use crate::interpolate::{InterpolationError, interpolate};
use crate::source::Source;

/// A byte range in the source, when the parser knows one.
pub(crate) type Span = Option<Range<usize>>;

/// How `retention`-like durations say "keep for ever".
const FOREVER: &str = "forever";
const DAY_MS: u64 = 24 * 3600 * 1000;
/// The longest duration a config may write: ten years (of 365 days), far from any overflow.
const MAX_DURATION_MS: u64 = 3650 * DAY_MS;

/// A value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Spanned<T> {
    /// The value as read (after `${VAR}` interpolation).
    pub value: T,
    /// Where the value is written, for diagnostics.
    pub span: Span,
    /// For strings that used `${VAR}`: the text as written, before interpolation.
    pub template: Option<String>,
}

impl Spanned<String> {
    /// What the registry keeps: the `${VAR}` template when the value came from the environment
    /// (values from the environment are secrets: they never reach the store, the API or logs),
    /// else the value.
    pub fn kept(self) -> String {
        self.template.unwrap_or(self.value)
    }

    /// How messages quote this value: the template when it came from the environment, so that
    /// an error never prints a secret.
    pub fn shown(&self) -> &str {
        self.template.as_deref().unwrap_or(&self.value)
    }
}

/// The walk's state: the source (for positions), the environment (for `${VAR}`), the values
/// taken from it and the problems found so far.
pub(crate) struct Cx<'s> {
    source: &'s Source,
    env: &'s dyn Fn(&str) -> Option<String>,
    /// Every value a `${VAR}` was replaced with: each is a secret.
    resolved: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

impl<'s> Cx<'s> {
    /// A walk over `source` that resolves `${VAR}` with `env`.
    pub fn new(source: &'s Source, env: &'s dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            source,
            env,
            resolved: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// The values `${VAR}` references were replaced with so far, leaving none behind.
    pub fn take_resolved(&mut self) -> Vec<String> {
        std::mem::take(&mut self.resolved)
    }

    /// Records an error at `span`: the config is refused.
    pub fn error(&mut self, span: &Span, message: impl Into<String>) {
        self.push(Severity::Error, span, message.into());
    }

    /// Records a warning at `span`: the config is still accepted.
    pub fn warning(&mut self, span: &Span, message: impl Into<String>) {
        self.push(Severity::Warning, span, message.into());
    }

    /// The environment variable `name`, as the walk sees the environment.
    pub fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// `FILE:LINE:COL` of a span, for messages that point at another place.
    pub fn locate(&self, span: &Span) -> String {
        let (line, column) = self.source.position(span.as_ref().map_or(0, |s| s.start));
        format!("{}:{line}:{column}", self.source.name)
    }

    fn push(&mut self, severity: Severity, span: &Span, message: String) {
        let (line, column) = self.source.position(span.as_ref().map_or(0, |s| s.start));
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.source.name.clone(),
            line,
            column,
            message,
        });
    }

    /// Every problem recorded, in file order.
    pub fn finish(self) -> Diagnostics {
        let mut diagnostics = Diagnostics(self.diagnostics);
        diagnostics.sort();
        diagnostics
    }
}

/// A table being read against a fixed list of known keys; unknown keys are reported when it is
/// opened, so every reader below only deals with known ones.
pub(crate) struct Fields<'a> {
    table: &'a dyn TableLike,
    /// The table's path in the document (`workspaces[2]`), empty for the root.
    path: String,
    /// Where to point when a required field is missing.
    pub span: Span,
}

impl<'a> Fields<'a> {
    /// Opens `table`, reporting every key not in `known`.
    pub fn open(
        cx: &mut Cx<'_>,
        table: &'a dyn TableLike,
        path: impl Into<String>,
        span: Span,
        known: &[&str],
    ) -> Self {
        let fields = Self {
            table,
            path: path.into(),
            span,
        };
        for (key, _) in table.iter() {
            if !known.contains(&key) {
                let span = table.key(key).and_then(|k| k.span());
                let hint = suggestion(key, known)
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("expected one of: {}", known.join(", ")));
                let message = format!("unknown key `{}`: {hint}", fields.field(key));
                cx.error(&span, message);
            }
        }
        fields
    }

    /// Opens the table under `item`, or reports that `item` is not a table.
    pub fn open_item(
        cx: &mut Cx<'_>,
        item: &'a Item,
        path: impl Into<String>,
        known: &[&str],
    ) -> Option<Self> {
        let path = path.into();
        match item.as_table_like() {
            Some(table) => Some(Self::open(cx, table, path, item.span(), known)),
            None => {
                cx.error(
                    &item.span(),
                    format!("`{path}`: expected a table, found {}", item.type_name()),
                );
                None
            }
        }
    }

    /// The table's path in the document (`schedules[2]`), empty for the root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The dotted path of a field of this table, as messages name it.
    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The item written under `key`, if any.
    pub fn item(&self, key: &str) -> Option<&'a Item> {
        self.table.get(key).filter(|item| !item.is_none())
    }

    /// An optional string field as written, with its span: a non-string or a NUL character is
    /// reported.
    fn raw_string(&self, cx: &mut Cx<'_>, key: &str) -> Option<(&'a str, Span)> {
        let item = self.item(key)?;
        let span = item.span();
        let Some(raw) = item.as_str() else {
            cx.error(
                &span,
                format!(
                    "`{}`: expected a string, found {}",
                    self.field(key),
                    item.type_name()
                ),
            );
            return None;
        };
        if raw.contains('\0') {
            // No database stores NUL in text; refuse it here rather than fail at sync.
            cx.error(
                &span,
                format!("`{}`: must not contain a NUL character", self.field(key)),
            );
            return None;
        }
        Some((raw, span))
    }

    /// An optional string field; `${VAR}` references are replaced from the environment.
    pub fn string(&self, cx: &mut Cx<'_>, key: &str) -> Option<Spanned<String>> {
        let (raw, span) = self.raw_string(cx, key)?;
        let used_env = std::cell::Cell::new(false);
        let resolved = std::cell::RefCell::new(Vec::new());
        let env = |name: &str| {
            used_env.set(true);
            let value = (cx.env)(name);
            resolved.borrow_mut().extend(value.clone());
            value
        };
        let interpolated = interpolate(raw, &env);
        cx.resolved.extend(resolved.into_inner());
        match interpolated {
            Ok(value) => Some(Spanned {
                value,
                span,
                template: used_env.get().then(|| raw.to_owned()),
            }),
            Err(InterpolationError::Unset(var)) => {
                cx.error(
                    &span,
                    format!(
                        "`{}`: environment variable `{var}` is not set",
                        self.field(key)
                    ),
                );
                None
            }
            Err(InterpolationError::Malformed(reference)) => {
                self.malformed_reference(cx, key, &span, &reference);
                None
            }
        }
    }

    /// An optional string that must not use `${VAR}`: a reference is refused with `problem`
    /// whether its variable is set or not, so the value never depends on the environment it was
    /// read in. `$${` stands for a literal `${`, as everywhere.
    pub fn verbatim_string(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        problem: &str,
    ) -> Option<Spanned<String>> {
        let (raw, span) = self.raw_string(cx, key)?;
        let referenced = std::cell::Cell::new(false);
        let any = |_: &str| {
            referenced.set(true);
            Some(String::new())
        };
        match interpolate(raw, &any) {
            Ok(value) if !referenced.get() => Some(Spanned {
                value,
                span,
                template: None,
            }),
            Ok(_) | Err(InterpolationError::Unset(_)) => {
                cx.error(&span, format!("`{}`: {problem}", self.field(key)));
                None
            }
            Err(InterpolationError::Malformed(reference)) => {
                self.malformed_reference(cx, key, &span, &reference);
                None
            }
        }
    }

    fn malformed_reference(&self, cx: &mut Cx<'_>, key: &str, span: &Span, reference: &str) {
        cx.error(
            span,
            format!(
                "`{}`: malformed variable reference `{reference}` (write `${{NAME}}`, or `$${{` for a literal `${{`)",
                self.field(key)
            ),
        );
    }

    /// The item at `key`, reporting it missing (with `hint`, e.g. an example value) when it
    /// is not written.
    pub fn required_item(&self, cx: &mut Cx<'_>, key: &str, hint: &str) -> Option<&'a Item> {
        let item = self.item(key);
        if item.is_none() {
            cx.error(
                &self.span,
                format!("`{}`: missing required field ({hint})", self.field(key)),
            );
        }
        item
    }

    /// A string field that must be present and non-empty.
    pub fn required_string(&self, cx: &mut Cx<'_>, key: &str) -> Option<Spanned<String>> {
        if self.item(key).is_none() {
            cx.error(
                &self.span,
                format!("`{}`: missing required field", self.field(key)),
            );
            return None;
        }
        let value = self.string(cx, key)?;
        if value.value.is_empty() {
            cx.error(
                &value.span,
                format!("`{}`: must not be empty", self.field(key)),
            );
            return None;
        }
        Some(value)
    }

    /// An optional string that must be one of `choices`.
    pub fn choice<T: Copy>(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<Spanned<T>> {
        let raw = self.string(cx, key)?;
        match choices.iter().find(|(name, _)| *name == raw.value) {
            Some((_, value)) => Some(Spanned {
                value: *value,
                span: raw.span,
                template: None,
            }),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                cx.error(
                    &raw.span,
                    format!(
                        "`{}`: `{}` is not one of: {}",
                        self.field(key),
                        raw.shown(),
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// An optional positive integer, at most `max`.
    pub fn positive_integer(&self, cx: &mut Cx<'_>, key: &str, max: i64) -> Option<Spanned<u32>> {
        let n = self.integer(cx, key, 1..=max)?;
        u32::try_from(n.value).ok().map(|value| Spanned {
            value,
            span: n.span,
            template: None,
        })
    }

    /// An optional integer within `range`.
    pub fn integer(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        range: RangeInclusive<i64>,
    ) -> Option<Spanned<i64>> {
        let item = self.item(key)?;
        let span = item.span();
        match item.as_integer() {
            Some(n) if range.contains(&n) => Some(Spanned {
                value: n,
                span,
                template: None,
            }),
            Some(n) => {
                cx.error(
                    &span,
                    format!(
                        "`{}`: {n} is out of range ({} to {})",
                        self.field(key),
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            None => {
                cx.error(
                    &span,
                    format!(
                        "`{}`: expected an integer, found {}",
                        self.field(key),
                        item.type_name()
                    ),
                );
                None
            }
        }
    }

    /// An optional array of integers, each within `range`.
    pub fn integers(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        range: RangeInclusive<i64>,
    ) -> Option<Vec<Spanned<i64>>> {
        let item = self.item(key)?;
        let Some(array) = item.as_array() else {
            cx.error(
                &item.span(),
                format!(
                    "`{}`: expected an array of integers, found {}",
                    self.field(key),
                    item.type_name()
                ),
            );
            return None;
        };
        let mut values = Vec::new();
        for (i, value) in array.iter().enumerate() {
            match value.as_integer() {
                Some(n) if range.contains(&n) => values.push(Spanned {
                    value: n,
                    span: value.span(),
                    template: None,
                }),
                Some(n) => cx.error(
                    &value.span(),
                    format!(
                        "`{}[{i}]`: {n} is out of range ({} to {})",
                        self.field(key),
                        range.start(),
                        range.end()
                    ),
                ),
                None => cx.error(
                    &value.span(),
                    format!(
                        "`{}[{i}]`: expected an integer, found {}",
                        self.field(key),
                        value.type_name()
                    ),
                ),
            }
        }
        Some(values)
    }

    /// An optional duration written as text (`"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"7d"`), in
    /// milliseconds: more than zero, whole milliseconds at least, at most [`MAX_DURATION_MS`].
    /// `${VAR}` is not interpolated (a duration is not a secret).
    pub fn duration_ms(&self, cx: &mut Cx<'_>, key: &str) -> Option<Spanned<u64>> {
        self.read_duration(cx, key, false, false).and_then(|d| {
            d.value.map(|value| Spanned {
                value,
                span: d.span,
                template: None,
            })
        })
    }

    /// Like [`Fields::duration_ms`], but also accepts `"forever"`, read as `None`.
    pub fn duration_ms_or_forever(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
    ) -> Option<Spanned<Option<u64>>> {
        self.read_duration(cx, key, true, false)
    }

    /// An optional duration of at least `min` milliseconds (zero accepted when `min` is zero);
    /// a shorter one is reported, naming the shortest allowed.
    pub fn duration_at_least(&self, cx: &mut Cx<'_>, key: &str, min: u64) -> Option<Spanned<u64>> {
        let d = if min == 0 {
            self.duration_ms_or_zero(cx, key)?
        } else {
            self.duration_ms(cx, key)?
        };
        if d.value < min {
            cx.error(
                &d.span,
                format!(
                    "`{}`: {} is less than {}, the shortest allowed",
                    self.field(key),
                    shown_ms(d.value),
                    shown_ms(min)
                ),
            );
            return None;
        }
        Some(d)
    }

    /// `value` if it was written without `${VAR}`; otherwise `problem` is reported at it
    /// (for values that are shown in the clear, or identify things).
    pub fn without_template(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        value: Spanned<String>,
        problem: &str,
    ) -> Option<Spanned<String>> {
        if value.template.is_some() {
            cx.error(&value.span, format!("`{}`: {problem}", self.field(key)));
            return None;
        }
        Some(value)
    }

    /// Like [`Fields::duration_ms`], but zero (`"0s"`) is accepted.
    pub fn duration_ms_or_zero(&self, cx: &mut Cx<'_>, key: &str) -> Option<Spanned<u64>> {
        self.read_duration(cx, key, false, true).and_then(|d| {
            d.value.map(|value| Spanned {
                value,
                span: d.span,
                template: None,
            })
        })
    }

    fn read_duration(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        forever: bool,
        zero: bool,
    ) -> Option<Spanned<Option<u64>>> {
        const EXAMPLES: &str = r#"e.g. "500ms", "30s", "5m", "2h" or "7d""#;
        let or_forever = if forever { r#", or "forever""# } else { "" };
        let item = self.item(key)?;
        let span = item.span();
        let spanned = |value| Spanned {
            value,
            span: span.clone(),
            template: None,
        };
        let Some(raw) = item.as_str() else {
            cx.error(
                &span,
                format!(
                    "`{}`: expected a duration as a string ({EXAMPLES}{or_forever}), found {}",
                    self.field(key),
                    item.type_name()
                ),
            );
            return None;
        };
        if forever && raw == FOREVER {
            return Some(spanned(None));
        }
        let problem = match humantime::parse_duration(raw) {
            Err(e) => {
                let why = match e {
                    humantime::DurationError::UnknownUnit { unit, .. } if unit.is_empty() => {
                        " (a unit is needed)".to_owned()
                    }
                    humantime::DurationError::UnknownUnit { unit, .. } => {
                        format!(" (unknown unit `{unit}`)")
                    }
                    humantime::DurationError::NumberOverflow => " (too large)".to_owned(),
                    _ => String::new(),
                };
                format!("`{raw}` is not a duration{why}; {EXAMPLES}{or_forever}")
            }
            Ok(d) if d.is_zero() && zero => return Some(spanned(Some(0))),
            Ok(d) if d.is_zero() => format!("must be more than zero ({EXAMPLES}{or_forever})"),
            Ok(d) if d.as_millis() == 0 => format!("`{raw}` is less than 1ms ({EXAMPLES})"),
            Ok(d) => match u64::try_from(d.as_millis()) {
                Ok(ms) if ms <= MAX_DURATION_MS => return Some(spanned(Some(ms))),
                _ => format!(
                    "`{raw}` is too long (at most {} days{or_forever})",
                    MAX_DURATION_MS / DAY_MS
                ),
            },
        };
        cx.error(&span, format!("`{}`: {problem}", self.field(key)));
        None
    }

    /// Where `key` is written, when this table has it.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.item(key)?;
        Some(self.table.key(key).and_then(|k| k.span()))
    }

    /// The table of strings under `key` (inline or a section), opened to read its entries by
    /// name: `None` when absent, or after reporting that it is not a table.
    fn strings_under(&self, cx: &mut Cx<'_>, key: &str) -> Option<Fields<'a>> {
        let item = self.item(key)?;
        let path = self.field(key);
        let Some(table) = item.as_table_like() else {
            cx.error(
                &item.span(),
                format!(
                    "`{path}`: expected a table of strings, found {}",
                    item.type_name()
                ),
            );
            return None;
        };
        Some(Fields {
            table,
            path,
            span: item.span(),
        })
    }

    /// A table of strings (`headers = { Accept = "text/plain" }` or a `[….headers]` section),
    /// as (name, value) pairs in file order. With `interpolate`, values may use `${VAR}`;
    /// names are never interpolated.
    pub fn string_table(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        interpolate: bool,
    ) -> Vec<(Spanned<String>, Spanned<String>)> {
        let mut entries = Vec::new();
        let Some(inner) = self.strings_under(cx, key) else {
            return entries;
        };
        let table = inner.table;
        for (name, value) in table.iter() {
            if value.is_none() {
                continue;
            }
            let name = Spanned {
                value: name.to_owned(),
                span: table.key(name).and_then(|k| k.span()),
                template: None,
            };
            let value = if interpolate {
                inner.string(cx, &name.value)
            } else {
                inner.literal_string(cx, &name.value)
            };
            if let Some(value) = value {
                entries.push((name, value));
            }
        }
        entries
    }

    /// An optional string taken as written: no `${VAR}` interpolation.
    pub fn literal_string(&self, cx: &mut Cx<'_>, key: &str) -> Option<Spanned<String>> {
        let (raw, span) = self.raw_string(cx, key)?;
        Some(Spanned {
            value: raw.to_owned(),
            span,
            template: None,
        })
    }

    /// An optional boolean.
    pub fn boolean(&self, cx: &mut Cx<'_>, key: &str) -> Option<bool> {
        let item = self.item(key)?;
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                cx.error(
                    &item.span(),
                    format!(
                        "`{}`: expected true or false, found {}",
                        self.field(key),
                        item.type_name()
                    ),
                );
                None
            }
        }
    }

    /// An optional array of strings (no `${VAR}`: these are not secrets).
    pub fn strings(&self, cx: &mut Cx<'_>, key: &str) -> Option<Vec<Spanned<String>>> {
        let item = self.item(key)?;
        let Some(array) = item.as_array() else {
            cx.error(
                &item.span(),
                format!(
                    "`{}`: expected an array of strings, found {}",
                    self.field(key),
                    item.type_name()
                ),
            );
            return None;
        };
        let mut values = Vec::new();
        for (i, value) in array.iter().enumerate() {
            match value.as_str() {
                Some(s) => values.push(Spanned {
                    value: s.to_owned(),
                    span: value.span(),
                    template: None,
                }),
                None => cx.error(
                    &value.span(),
                    format!(
                        "`{}[{i}]`: expected a string, found {}",
                        self.field(key),
                        value.type_name()
                    ),
                ),
            }
        }
        Some(values)
    }

    /// An optional array of strings taken as written (no `${VAR}` interpolation), each with its
    /// field name (`…paths[1]`); elements that are not strings, or hold a NUL character, are
    /// reported and left out. `None` when absent; the flag is false when anything was refused,
    /// the array itself included.
    pub fn indexed_strings(&self, cx: &mut Cx<'_>, key: &str) -> Option<(Vec<Element>, bool)> {
        let item = self.item(key)?;
        let Some(array) = item.as_array() else {
            cx.error(
                &item.span(),
                format!(
                    "`{}`: expected an array of strings, found {}",
                    self.field(key),
                    item.type_name()
                ),
            );
            return Some((Vec::new(), false));
        };
        let mut ok = true;
        let mut values = Vec::new();
        for (i, value) in array.iter().enumerate() {
            let field = format!("{}[{i}]", self.field(key));
            let problem = match value.as_str() {
                None => format!("expected a string, found {}", value.type_name()),
                Some(s) if s.contains('\0') => "must not contain a NUL character".to_owned(),
                Some(s) => {
                    values.push((
                        field,
                        Spanned {
                            value: s.to_owned(),
                            span: value.span(),
                            template: None,
                        },
                    ));
                    continue;
                }
            };
            cx.error(&value.span(), format!("`{field}`: {problem}"));
            ok = false;
        }
        Some((values, ok))
    }

    /// A table of string labels: `labels = { team = "ops" }` or a `[….labels]` section.
    pub fn labels(&self, cx: &mut Cx<'_>, key: &str) -> Labels {
        let mut labels = Labels::new();
        let Some(inner) = self.strings_under(cx, key) else {
            return labels;
        };
        let (table, path) = (inner.table, &inner.path);
        for (name, _) in table.iter() {
            let name_span = table.key(name).and_then(|k| k.span());
            if !is_label_name(name) {
                cx.error(
                    &name_span,
                    format!(
                        "`{path}`: label name `{name}` must start with a letter or `_` and contain only letters, digits, `_`, `.`, `-` and `/`"
                    ),
                );
                continue;
            }
            if let Some(value) = inner.string(cx, name).map(Spanned::kept) {
                labels.insert(name.to_owned(), value);
            }
        }
        labels
    }

    /// The elements of an array of tables (`[[key]]` or `key = [{…}, …]`).
    pub fn tables(&self, cx: &mut Cx<'_>, key: &str) -> Vec<(&'a dyn TableLike, Span)> {
        let Some(item) = self.item(key) else {
            return Vec::new();
        };
        match item {
            Item::ArrayOfTables(array) => array
                .iter()
                .map(|t| (t as &dyn TableLike, t.span()))
                .collect(),
            Item::Value(Value::Array(array)) => {
                let mut tables = Vec::new();
                for (i, value) in array.iter().enumerate() {
                    match value.as_inline_table() {
                        Some(t) => tables.push((t as &dyn TableLike, value.span())),
                        None => cx.error(
                            &value.span(),
                            format!(
                                "`{}[{i}]`: expected a table, found {}",
                                self.field(key),
                                value.type_name()
                            ),
                        ),
                    }
                }
                tables
            }
            other => {
                cx.error(
                    &other.span(),
                    format!(
                        "`{}`: expected an array of tables (`[[{key}]]`), found {}",
                        self.field(key),
                        other.type_name()
                    ),
                );
                Vec::new()
            }
        }
    }
}

/// An element of an array: its field name (`…matchers[1]`) and value.
pub(crate) type Element = (String, Spanned<String>);

/// A duration as messages show it, in the units a config writes (`1m 30s`, `31d`).
pub(crate) fn shown_ms(ms: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = ms;
    let mut parts = Vec::new();
    for (unit, size) in UNITS {
        if rest >= size {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// A name for workspaces, services, dependency types (see [`steward_core::registry::is_valid_name`]).
pub(crate) fn is_name(s: &str) -> bool {
    steward_core::registry::is_valid_name(s)
}

fn is_label_name(s: &str) -> bool {
    s.len() <= 128
        && s.chars()
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

/// Why `raw` is not a usable service URL, if it is not (the one rule for config and import).
/// `shown` is how the message quotes the value (its `${VAR}` template when it has one).
pub(crate) fn url_problem(raw: &str, shown: &str) -> Option<String> {
    match url::Url::parse(raw) {
        Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) => None,
        Ok(_) => Some(format!("`{shown}` has no host")),
        Err(e) => Some(format!("`{shown}` is not a URL ({e})")),
    }
}

/// The name `choices` gives `value` as the file writes it, the inverse of [`Fields::choice`]
/// (empty for a value the list lacks).
pub(crate) fn choice_name<T: PartialEq>(choices: &[(&'static str, T)], value: &T) -> &'static str {
    choices
        .iter()
        .find(|(_, choice)| choice == value)
        .map_or("", |(name, _)| name)
}

/// The tail of an "unknown …" message naming the known name closest to `input`
/// ("; did you mean `x`?"), if any is close.
pub(crate) fn did_you_mean(input: &str, known: &[&str]) -> Option<String> {
    suggestion(input, known).map(|s| format!("; did you mean `{s}`?"))
}

/// The known name closest to a misspelt one, if any is close.
pub(crate) fn suggestion<'k>(input: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(input, k), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_shown_as_a_config_writes_them() {
        assert_eq!(shown_ms(0), "0s");
        assert_eq!(shown_ms(500), "500ms");
        assert_eq!(shown_ms(90_000), "1m 30s");
        assert_eq!(shown_ms(86_400_000), "1d");
        assert_eq!(shown_ms(31 * 86_400_000 + 1), "31d 1ms");
    }

    #[test]
    fn names() {
        assert!(is_name("alert_reporting"));
        assert!(is_name("vizion-nn.v2"));
        assert!(!is_name("_x"));
        assert!(!is_name(""));
        assert!(!is_name("a b"));
        assert!(!is_name(&"a".repeat(65)));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggestion("ownr", &["owner", "key"]), Some("owner"));
        assert_eq!(suggestion("zzzzzz", &["owner", "key"]), None);
    }
}
