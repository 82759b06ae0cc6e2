//! `[[executors]]`: the kinds of task a config declares, each an HTTP request (`type =
//! "http"`) or a program run without a shell (`type = "shell"`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use steward_core::Service;
use steward_core::queue::{
    BUILTIN_KINDS, ExecutorSpec, HttpSpec, HttpTarget, SYSTEM_KINDS, ShellSpec,
};

use crate::readers::{
    TypedKeys, first_declaration, literal, name_field, read_command, read_env, read_headers,
    read_workdir, warn_unless_runnable,
};
use crate::walk::{Cx, Fields, Span, Spanned, choice_name, did_you_mean, suggestion, url_problem};

/// The keys of an `http` executor besides `name` and `type`.
const HTTP_KEYS: &[&str] = &[
    "method",
    "url",
    "service",
    "path",
    "headers",
    "success_status",
    "outcome_field",
    "max_response_bytes",
];
/// The keys of a `shell` executor besides `name` and `type`.
const SHELL_KEYS: &[&str] = &["command", "args", "params", "env", "workdir"];
/// Every key an executor may have, and which type takes which.
const EXECUTOR_KEYS: TypedKeys<ExecutorType> = TypedKeys {
    common: &["name", "type"],
    types: &[
        (ExecutorType::Http, HTTP_KEYS),
        (ExecutorType::Shell, SHELL_KEYS),
    ],
};
const HTTP_METHODS: [(&str, &str); 5] = [
    ("GET", "GET"),
    ("POST", "POST"),
    ("PUT", "PUT"),
    ("PATCH", "PATCH"),
    ("DELETE", "DELETE"),
];
const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
const MAX_RESPONSE_BYTES: i64 = 16 << 20;

/// The two types of declared executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecutorType {
    Http,
    Shell,
}

impl ExecutorType {
    const CHOICES: [(&'static str, ExecutorType); 2] =
        [("http", ExecutorType::Http), ("shell", ExecutorType::Shell)];
}

impl fmt::Display for ExecutorType {
    /// The name `type` gives it, as [`Self::CHOICES`] spells it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(choice_name(&Self::CHOICES, self))
    }
}

/// Reads `[[executors]]`: the valid ones, and every name declared (also by executors with other
/// problems, so that queues naming them do not report a second, misleading problem).
pub(crate) fn read_executors(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    services: &[Service],
    bad_urls: &HashSet<String>,
) -> (Vec<ExecutorSpec>, BTreeSet<String>) {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut executors = Vec::new();
    let keys = EXECUTOR_KEYS.all();
    for (i, (table, span)) in root.tables(cx, "executors").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("executors[{i}]"), span, &keys);
        let name = name_field(cx, &t, "name").filter(|name| {
            let builtin = BUILTIN_KINDS.contains(&name.value.as_str())
                || SYSTEM_KINDS.contains(&name.value.as_str());
            if builtin {
                cx.error(
                    &name.span,
                    format!(
                        "`{}`: `{}` is a built-in kind; choose another name",
                        t.field("name"),
                        name.value
                    ),
                );
            }
            !builtin
        });
        let kind = if t.item("type").is_none() {
            cx.error(
                &t.span,
                format!(
                    "`{}`: missing required field (\"http\" or \"shell\")",
                    t.field("type")
                ),
            );
            None
        } else {
            t.choice(cx, "type", &ExecutorType::CHOICES)
                .map(|k| k.value)
        };
        let spec = kind.and_then(|kind| {
            EXECUTOR_KEYS.report_foreign(cx, &t, kind, |owners| {
                format!("not a key of `{kind}` executors (it belongs to `type = {owners}`)")
            });
            let executor_name = name.as_ref().map_or("", |n| n.value.as_str());
            match kind {
                ExecutorType::Http => {
                    read_http(cx, &t, executor_name, services, bad_urls).map(ExecutorSpec::Http)
                }
                ExecutorType::Shell => read_shell(cx, &t, executor_name).map(ExecutorSpec::Shell),
            }
        });
        let Some(name) = name else { continue };
        if first_declaration(cx, &mut seen, &t, "executor", name) {
            executors.extend(spec);
        }
    }
    (executors, seen.into_keys().collect())
}

/// The rest of an `http` executor: its target, method, headers and how its answer is read.
fn read_http(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    name: &str,
    services: &[Service],
    bad_urls: &HashSet<String>,
) -> Option<HttpSpec> {
    let method = t
        .choice(cx, "method", &HTTP_METHODS)
        .map_or("POST", |m| m.value);
    let target = read_http_target(cx, t, services, bad_urls);
    let headers = read_headers(cx, t);
    let success_status = t
        .integers(cx, "success_status", 100..=599)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| u16::try_from(s.value).ok())
        .collect();
    let outcome_field = t.literal_string(cx, "outcome_field").and_then(|f| {
        if f.value.is_empty() {
            cx.error(
                &f.span,
                format!("`{}`: must not be empty", t.field("outcome_field")),
            );
            return None;
        }
        Some(f.value)
    });
    let max_response_bytes = t
        .positive_integer(cx, "max_response_bytes", MAX_RESPONSE_BYTES)
        .map_or(DEFAULT_MAX_RESPONSE_BYTES, |n| n.value as usize);
    Some(HttpSpec {
        name: name.to_owned(),
        method: method.to_owned(),
        target: target?,
        headers: headers?,
        success_status,
        outcome_field,
        max_response_bytes,
    })
}

/// Exactly one of `url` or `service` (with an optional `path`).
fn read_http_target(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    services: &[Service],
    bad_urls: &HashSet<String>,
) -> Option<HttpTarget> {
    let has_url = t.item("url").is_some();
    let has_service = t.item("service").is_some();
    if has_url && has_service {
        cx.error(
            &t.key_span("service").flatten(),
            format!(
                "`{}`: an http executor takes `url` or `service`, not both",
                t.field("service")
            ),
        );
    } else if !has_url && !has_service {
        cx.error(
            &t.span,
            format!(
                "`{}`: an http executor needs `url` (a fixed URL) or `service` (a `[[services]]` name)",
                t.field("url")
            ),
        );
    }
    let path = t.literal_string(cx, "path").and_then(|path| {
        if !path.value.starts_with('/') {
            cx.error(
                &path.span,
                format!(
                    "`{}`: `{}` must start with `/`",
                    t.field("path"),
                    path.value
                ),
            );
            return None;
        }
        if path.value.chars().any(char::is_whitespace) {
            cx.error(
                &path.span,
                format!("`{}`: must not contain white space", t.field("path")),
            );
            return None;
        }
        Some(path)
    });
    let path_ok = path.is_some() || t.item("path").is_none();
    if has_url && let Some(span) = t.key_span("path") {
        cx.error(
            &span,
            format!(
                "`{}`: only goes with `service`; write the whole URL in `url`",
                t.field("path")
            ),
        );
    }
    let url = t.string(cx, "url").and_then(|raw| executor_url(cx, t, raw));
    let service = t
        .string(cx, "service")
        .and_then(|raw| literal(cx, t, "service", raw))
        .and_then(|raw| service_ref(cx, t, raw, services, bad_urls));
    match (url, service) {
        (Some(url), None) if !has_service => Some(HttpTarget::Url(url)),
        (None, Some(name)) if !has_url && path_ok => Some(HttpTarget::Service {
            name,
            path: path.map(|p| p.value).unwrap_or_default(),
        }),
        _ => None,
    }
}

/// An executor's fixed URL: literal (it appears in task errors), http or https, with a host.
fn executor_url(cx: &mut Cx<'_>, t: &Fields<'_>, raw: Spanned<String>) -> Option<String> {
    let field = t.field("url");
    if raw.template.is_some() {
        cx.error(
            &raw.span,
            format!(
                "`{field}`: an executor's url cannot use `${{VAR}}` (it appears in task errors); pass secrets in `headers`"
            ),
        );
        return None;
    }
    if let Some(problem) = url_problem(&raw.value, raw.shown()) {
        cx.error(&raw.span, format!("`{field}`: {problem}"));
        return None;
    }
    if !(raw.value.starts_with("http://") || raw.value.starts_with("https://")) {
        cx.error(
            &raw.span,
            format!(
                "`{field}`: `{}` is not an http:// or https:// URL",
                raw.value
            ),
        );
        return None;
    }
    Some(raw.value)
}

/// Checks that `service` names a declared service with a literal URL.
fn service_ref(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    raw: Spanned<String>,
    services: &[Service],
    bad_urls: &HashSet<String>,
) -> Option<String> {
    let field = t.field("service");
    let Some(service) = services.iter().find(|s| s.name == raw.value) else {
        let known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        let hint = did_you_mean(&raw.value, &known).unwrap_or_default();
        cx.error(
            &raw.span,
            format!("`{field}`: unknown service `{}`{hint}", raw.value),
        );
        return None;
    };
    match service.url.as_deref() {
        // Its own problem has been reported where it is written.
        None if bad_urls.contains(&raw.value) => None,
        None => {
            cx.error(
                &raw.span,
                format!(
                    "`{field}`: service `{}` has no `url` to send requests to",
                    raw.value
                ),
            );
            None
        }
        Some(url) if url.contains("${") => {
            cx.error(
                &raw.span,
                format!(
                    "`{field}`: the url of service `{}` uses `${{VAR}}`; an executor needs a literal url (pass secrets in `headers`)",
                    raw.value
                ),
            );
            None
        }
        Some(_) => Some(raw.value),
    }
}

/// The rest of a `shell` executor: its program, the arguments with their `{field}`
/// placeholders and the patterns those must match, its environment and directory.
fn read_shell(cx: &mut Cx<'_>, t: &Fields<'_>, name: &str) -> Option<ShellSpec> {
    let command = read_command(cx, t);
    let args = t.strings(cx, "args").unwrap_or_default();
    let mut ok = true;
    let mut placeholders: Vec<(String, Spanned<String>, usize)> = Vec::new();
    for (j, arg) in args.iter().enumerate() {
        match arg_placeholders(&arg.value) {
            Ok(names) => {
                placeholders.extend(names.into_iter().map(|n| (n, arg.clone(), j)));
            }
            Err(problem) => {
                cx.error(&arg.span, format!("`{}[{j}]`: {problem}", t.field("args")));
                ok = false;
            }
        }
    }
    let (params, declared) = read_params(cx, t);
    for (placeholder, arg, j) in &placeholders {
        if !declared.iter().any(|(d, _)| d == placeholder) {
            let known: Vec<&str> = declared.iter().map(|(d, _)| d.as_str()).collect();
            let hint = suggestion(placeholder, &known)
                .map(|s| format!("; did you mean `{{{s}}}`?"))
                .unwrap_or_default();
            cx.error(
                &arg.span,
                format!(
                    "`{}[{j}]`: placeholder `{{{placeholder}}}` is not declared in `params` (add `{placeholder} = \"<pattern>\"`){hint}",
                    t.field("args")
                ),
            );
            ok = false;
        }
    }
    // With a malformed argument, which parameters it meant to use is not known.
    let args_ok = ok;
    for (param, span) in declared.iter().filter(|_| args_ok) {
        if !placeholders.iter().any(|(p, _, _)| p == param) {
            cx.warning(
                span,
                format!(
                    "`{}.{param}`: no argument uses `{{{param}}}`",
                    t.field("params")
                ),
            );
        }
    }
    let env = read_env(cx, t);
    let workdir = read_workdir(cx, t);
    if let (Some(command), Some(env)) = (&command, &env) {
        warn_unless_runnable(cx, t, command, env);
    }
    let spec = ShellSpec {
        name: name.to_owned(),
        command: command?.value,
        args: args.into_iter().map(|a| a.value).collect(),
        params: params?,
        env: env?,
        workdir: workdir?,
    };
    ok.then_some(spec)
}

/// The `{field}` placeholders of one argument (see [`ShellSpec::placeholders`]), or why the
/// argument is malformed.
fn arg_placeholders(arg: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let name = match after.find('}') {
            Some(close) => &after[..close],
            None => return Err(format!("unclosed `{{` in `{arg}`")),
        };
        if name.contains('{') {
            return Err(format!("unclosed `{{` in `{arg}`"));
        }
        if name.is_empty() {
            return Err(format!("empty placeholder `{{}}` in `{arg}`"));
        }
        names.push(name.to_owned());
        rest = &after[name.len() + 1..];
    }
    Ok(names)
}

/// Names declared in a table, each with where it is written.
type Declared = Vec<(String, Span)>;

/// `params`: field name → pattern. Returns the patterns (`None` when any is refused) and every
/// usable name declared, with where it is written.
fn read_params(cx: &mut Cx<'_>, t: &Fields<'_>) -> (Option<BTreeMap<String, String>>, Declared) {
    let field = t.field("params");
    let mut params = Some(BTreeMap::new());
    let mut declared = Vec::new();
    for (name, pattern) in t.string_table(cx, "params", false) {
        if name.value.is_empty() || name.value.contains(['{', '}']) {
            cx.error(
                &name.span,
                format!(
                    "`{field}`: `{}` cannot be a parameter name (it must be non-empty, without `{{` or `}}`)",
                    name.value
                ),
            );
            params = None;
            continue;
        }
        declared.push((name.value.clone(), name.span.clone()));
        let problem = if pattern.value.is_empty() {
            Some(
                "must not be empty (write a pattern the value must match, e.g. \"[a-z0-9_]+\")"
                    .to_owned(),
            )
        } else {
            // The pattern must stand alone, so that anchoring it cannot be escaped (`a)|(.*`).
            regex::Regex::new(&pattern.value)
                .and_then(|_| regex::Regex::new(&format!("^(?:{})$", pattern.value)))
                .err()
                .map(|e| format!("invalid pattern: {}", regex_problem(&e)))
        };
        match problem {
            Some(problem) => {
                cx.error(
                    &pattern.span,
                    format!("`{field}.{}`: {problem}", name.value),
                );
                params = None;
            }
            None => {
                if let Some(params) = params.as_mut() {
                    params.insert(name.value, pattern.value);
                }
            }
        }
    }
    (params, declared)
}

/// A regex error on one line (the library draws a multi-line picture).
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

#[cfg(test)]
mod tests;
