//! Readers several sections share: names and references, duplicate declarations, the keys of
//! tables whose `type` picks which they take, and the fields an HTTP request or a program
//! takes (`headers`, `command`, `env`, `workdir`).
//!
//! They sit on [`Fields`] like a section's own readers do; keeping them out of the schema's
//! root lets every section use them without depending on the document that uses the section.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::path::PathBuf;

use steward_core::Secret;

use crate::program::program_problem;
use crate::walk::{Cx, Fields, Span, Spanned, is_name};

/// A checked name (workspace key, service name, type), or `None` after reporting why not.
/// `name`, unless it is `reserved` (reported at its value).
pub(crate) fn unreserved(
    cx: &mut Cx<'_>,
    table: &Fields<'_>,
    name: Option<Spanned<String>>,
    reserved: &str,
    what: &str,
) -> Option<Spanned<String>> {
    name.filter(|name| {
        let taken = name.value == reserved;
        if taken {
            cx.error(
                &name.span,
                format!(
                    "`{}`: `{reserved}` is Steward's own {what}; choose another name",
                    table.field("name")
                ),
            );
        }
        !taken
    })
}

/// A required name field (`name`, `key`, a dependency's `type`): literal, and a valid name.
pub(crate) fn name_field(
    cx: &mut Cx<'_>,
    table: &Fields<'_>,
    key: &str,
) -> Option<Spanned<String>> {
    let value = table.required_string(cx, key)?;
    let value = literal(cx, table, key, value)?;
    if is_name(&value.value) {
        Some(value)
    } else {
        cx.error(
            &value.span,
            format!(
                "`{}`: `{}` is not a valid name (letters, digits, `_`, `-`, `.`; starting with a letter or digit; at most 64 characters)",
                table.field(key),
                value.value
            ),
        );
        None
    }
}

/// Refuses `${VAR}` in fields that identify things (names, references): identities are not
/// secrets, and must read the same in the file, the store and the API.
pub(crate) fn literal(
    cx: &mut Cx<'_>,
    table: &Fields<'_>,
    key: &str,
    value: Spanned<String>,
) -> Option<Spanned<String>> {
    table.without_template(cx, key, value, "names and references cannot use `${VAR}`")
}

/// Remembers where `name` was declared and answers true; a second declaration of the same
/// `what` is reported, pointing at the first, and answered false.
pub(crate) fn first_declaration(
    cx: &mut Cx<'_>,
    seen: &mut HashMap<String, Span>,
    t: &Fields<'_>,
    what: &str,
    name: Spanned<String>,
) -> bool {
    first_declaration_of(cx, seen, t, "name", what, name)
}

/// Like [`first_declaration`], for tables identified by another field than `name` (a node's
/// `id`), written under `key`.
pub(crate) fn first_declaration_of(
    cx: &mut Cx<'_>,
    seen: &mut HashMap<String, Span>,
    t: &Fields<'_>,
    key: &str,
    what: &str,
    name: Spanned<String>,
) -> bool {
    if let Some(first) = seen.get(&name.value) {
        let first = cx.locate(first);
        cx.error(
            &name.span,
            format!(
                "`{}`: duplicate {what} `{}` (first declared at {first})",
                t.field(key),
                name.value
            ),
        );
        return false;
    }
    seen.insert(name.value, name.span);
    true
}

/// `headers`: valid names, no two differing only in case, values that fit in a header. Values
/// may use `${VAR}`; the secret holds the value. `None` when any is refused.
pub(crate) fn read_headers(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<BTreeMap<String, Secret>> {
    let field = t.field("headers");
    let mut ok = true;
    let mut headers = BTreeMap::new();
    let mut seen: HashMap<String, Span> = HashMap::new();
    for (name, value) in t.string_table(cx, "headers", true) {
        if !is_header_name(&name.value) {
            cx.error(
                &name.span,
                format!(
                    "`{field}`: `{}` is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
                    name.value
                ),
            );
            ok = false;
            continue;
        }
        if let Some(first) = seen.get(&name.value.to_ascii_lowercase()) {
            let first = cx.locate(first);
            cx.error(
                &name.span,
                format!(
                    "`{field}.{}`: duplicate header (names ignore case; first declared at {first})",
                    name.value
                ),
            );
            ok = false;
            continue;
        }
        seen.insert(name.value.to_ascii_lowercase(), name.span.clone());
        if !value
            .value
            .chars()
            .all(|c| c == '\t' || (' '..='~').contains(&c))
        {
            // Never quote the value: it may come from the environment.
            cx.error(
                &value.span,
                format!(
                    "`{field}.{}`: a header value may hold only printable ASCII characters",
                    name.value
                ),
            );
            ok = false;
            continue;
        }
        headers.insert(name.value, Secret::new(value.value));
    }
    ok.then_some(headers)
}

/// An HTTP header name: an RFC 9110 token.
fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '!' | '#'
                        | '$'
                        | '%'
                        | '&'
                        | '\''
                        | '*'
                        | '+'
                        | '-'
                        | '.'
                        | '^'
                        | '_'
                        | '`'
                        | '|'
                        | '~'
                )
        })
}

/// `env`: variable name → value. Values may use `${VAR}`; the secret holds the value. `None`
/// when a name is refused.
pub(crate) fn read_env(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<BTreeMap<String, Secret>> {
    let mut ok = true;
    let mut env = BTreeMap::new();
    for (var, value) in t.string_table(cx, "env", true) {
        if is_env_name(&var.value) {
            env.insert(var.value, Secret::new(value.value));
        } else {
            cx.error(
                &var.span,
                format!(
                    "`{}`: `{}` is not an environment variable name (letters, digits and `_`, not starting with a digit)",
                    t.field("env"),
                    var.value
                ),
            );
            ok = false;
        }
    }
    ok.then_some(env)
}

/// An environment variable name as a shell accepts it: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `workdir`, taken as written: `Some(None)` when not given, `None` when refused.
pub(crate) fn read_workdir(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Option<PathBuf>> {
    if t.item("workdir").is_none() {
        return Some(None);
    }
    let dir = t.literal_string(cx, "workdir")?;
    if dir.value.is_empty() {
        cx.error(
            &dir.span,
            format!("`{}`: must not be empty", t.field("workdir")),
        );
        return None;
    }
    Some(Some(PathBuf::from(dir.value)))
}

/// A shell executor's (or a command check's) `command`: one program, never a command line,
/// taken as written (it is shown in runs, results and the API, and names a program rather
/// than holding a secret).
pub(crate) fn read_command(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Spanned<String>> {
    let field = t.field("command");
    if t.item("command").is_none() {
        cx.error(
            &t.span,
            format!(
                "`{field}`: missing required field (the program to run, e.g. \"/usr/bin/pg_dump\")"
            ),
        );
        return None;
    }
    let command = t.verbatim_string(
        cx,
        "command",
        "cannot use `${VAR}`: the program is taken as written (write `$${` for a literal `${`)",
    )?;
    let problem = if command.value.is_empty() {
        "must not be empty".to_owned()
    } else if command.value.chars().any(char::is_whitespace) {
        format!(
            "`{}` contains white space; no shell runs it: write the program alone and its arguments in `args`",
            command.value
        )
    } else if !command.value.starts_with('/') && command.value.contains('/') {
        format!(
            "`{}` must be an absolute path or a program name looked up in PATH",
            command.value
        )
    } else {
        return Some(command);
    };
    cx.error(&command.span, format!("`{field}`: {problem}"));
    None
}

/// Warns when `command` cannot be run where the config is read, looking a bare name up in the
/// PATH it would run with (its own `env`'s, else the environment's).
pub(crate) fn warn_unless_runnable(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    command: &Spanned<String>,
    env: &BTreeMap<String, Secret>,
) {
    let path_var = match env.get("PATH") {
        Some(path) => Some(path.expose().to_owned()),
        None => cx.env("PATH"),
    };
    if let Some(problem) = program_problem(&command.value, path_var.as_deref()) {
        cx.warning(
            &command.span,
            format!("`{}`: {problem}", t.field("command")),
        );
    }
}

/// The keys of a table whose `type` (a rule's `when`) picks which of them it takes: those
/// every type takes, and each type's own. One list says both what is known and what goes
/// with what, so the two cannot drift apart.
pub(crate) struct TypedKeys<T: 'static> {
    /// The keys every type takes.
    pub common: &'static [&'static str],
    /// Each type with the keys it takes besides the common ones; a key may belong to several.
    pub types: &'static [(T, &'static [&'static str])],
}

impl<T: Copy + PartialEq + Display> TypedKeys<T> {
    /// Every key some type takes, once each: the common ones, then each type's own in order
    /// (the order unknown-key messages list them in).
    pub fn all(&self) -> Vec<&'static str> {
        let mut keys = self.common.to_vec();
        for key in self.types.iter().flat_map(|(_, own)| own.iter()) {
            if !keys.contains(key) {
                keys.push(key);
            }
        }
        keys
    }

    /// The keys `kind` takes besides the common ones.
    pub fn own(&self, kind: T) -> &'static [&'static str] {
        self.types
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(&[], |(_, own)| own)
    }

    /// Reports each key written in `t` that `kind` does not take but other types do, at the
    /// key. `problem` words the report from those types, quoted and joined (`"http" or
    /// "tls"`); each section keeps its own wording.
    pub fn report_foreign(
        &self,
        cx: &mut Cx<'_>,
        t: &Fields<'_>,
        kind: T,
        problem: impl Fn(&str) -> String,
    ) {
        let own = self.own(kind);
        let foreign = self
            .all()
            .into_iter()
            .filter(|key| !self.common.contains(key) && !own.contains(key));
        for key in foreign {
            let Some(span) = t.key_span(key) else {
                continue;
            };
            let owners: Vec<String> = self
                .types
                .iter()
                .filter(|(_, keys)| keys.contains(&key))
                .map(|(k, _)| format!("\"{k}\""))
                .collect();
            cx.error(
                &span,
                format!("`{}`: {}", t.field(key), problem(&owners.join(" or "))),
            );
        }
    }
}
