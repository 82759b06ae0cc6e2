//! `[[checks]]` (health checks on declared services) and `[health]` (how long probe results are
//! kept, how many probes run at once, and whether services get a default HTTP check).

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;

use steward_core::Secret;
use steward_core::health::condition::Condition;
use steward_core::health::spec::{
    CheckSpec, CommandProbe, DEFAULT_INTERVAL_MS, DEFAULT_TIMEOUT_MS, HealthSettings, HttpProbe,
    MAX_INTERVAL_MS, MIN_INTERVAL_MS, MIN_TIMEOUT_MS, Probe, ProbeKind, Redirects,
};
use steward_core::health::state::Thresholds;
use steward_core::registry::Labels;

use crate::schema::{
    literal, name_field, read_command, read_env, read_headers, read_workdir, warn_unless_runnable,
};
use crate::walk::{Cx, Fields, Span, Spanned, is_name, shown_ms, suggestion, url_problem};

const HEALTH_KEYS: &[&str] = &[
    "keep_results",
    "keep_rollups",
    "max_concurrent",
    "check_service_urls",
];
/// The keys every check may have, whatever its type.
const COMMON_KEYS: &[&str] = &[
    "service",
    "name",
    "type",
    "interval",
    "timeout",
    "failures_before_down",
    "successes_before_up",
    "labels",
    "conditions",
    "enabled",
];
const HTTP_KEYS: &[&str] = &[
    "url",
    "path",
    "method",
    "headers",
    "body",
    "expect_status",
    "verify_tls",
    "redirects",
];
const TCP_KEYS: &[&str] = &["address"];
const TLS_KEYS: &[&str] = &["address", "server_name", "verify_tls"];
const CERT_FILE_KEYS: &[&str] = &["paths"];
const COMMAND_KEYS: &[&str] = &["command", "args", "env", "workdir"];
/// Every key a check may have: the common ones, then each type's own.
const CHECK_KEYS: &[&str] = &[
    "service",
    "name",
    "type",
    "interval",
    "timeout",
    "failures_before_down",
    "successes_before_up",
    "labels",
    "conditions",
    "enabled",
    "url",
    "path",
    "method",
    "headers",
    "body",
    "expect_status",
    "verify_tls",
    "redirects",
    "address",
    "server_name",
    "paths",
    "command",
    "args",
    "env",
    "workdir",
];
const HTTP_METHODS: [(&str, &str); 7] = [
    ("GET", "GET"),
    ("HEAD", "HEAD"),
    ("POST", "POST"),
    ("PUT", "PUT"),
    ("PATCH", "PATCH"),
    ("DELETE", "DELETE"),
    ("OPTIONS", "OPTIONS"),
];
const REDIRECT_CHOICES: [(&str, Redirects); 2] =
    [("follow", Redirects::Follow), ("none", Redirects::None)];
/// The largest `failures_before_down` and `successes_before_up`.
const MAX_THRESHOLD: i64 = 100;
/// The largest `health.max_concurrent`.
const MAX_CONCURRENT: i64 = 100_000;
/// The shortest `health.keep_results`: one minute.
const MIN_KEEP_RESULTS_MS: u64 = 60_000;
/// The shortest `health.keep_rollups`: one hour.
const MIN_KEEP_ROLLUPS_MS: u64 = 3_600_000;

/// What checks need to know of a declared `[[services]]` entry.
pub(crate) struct ServiceSite {
    /// Its name.
    pub name: String,
    /// Where its name is written.
    pub name_span: Span,
    /// How messages name its `name` field (`services[2].name`).
    pub name_field: String,
    /// Its accepted `url`, with `${VAR}` resolved (the template is kept for messages).
    pub url: Option<Spanned<String>>,
    /// Its `url` was written but refused (and reported where it is written).
    pub url_refused: bool,
}

/// Reads `[health]`: its settings, and whether services get a default HTTP check
/// (`check_service_urls`, true when not given).
pub(crate) fn read_health(cx: &mut Cx<'_>, root: &Fields<'_>) -> (HealthSettings, bool) {
    let mut settings = HealthSettings::default();
    let Some(t) = root
        .item("health")
        .and_then(|item| Fields::open_item(cx, item, "health", HEALTH_KEYS))
    else {
        return (settings, true);
    };
    let results = t.duration_at_least(cx, "keep_results", MIN_KEEP_RESULTS_MS);
    let rollups = t.duration_at_least(cx, "keep_rollups", MIN_KEEP_ROLLUPS_MS);
    // Compare only what was read well: a refused value has been reported already.
    let results_ok = results.is_some() || t.item("keep_results").is_none();
    let rollups_ok = rollups.is_some() || t.item("keep_rollups").is_none();
    if let Some(results) = &results {
        settings.keep_results_ms = results.value;
    }
    if let Some(rollups) = &rollups {
        settings.keep_rollups_ms = rollups.value;
    }
    if results_ok && rollups_ok && settings.keep_rollups_ms < settings.keep_results_ms {
        match (&results, &rollups) {
            (_, Some(rollups)) => cx.error(
                &rollups.span,
                format!(
                    "`{}`: {} is less than `keep_results` ({}); roll-ups must be kept at least as long as the results they summarise",
                    t.field("keep_rollups"),
                    shown_ms(rollups.value),
                    shown_ms(settings.keep_results_ms)
                ),
            ),
            (Some(results), None) => cx.error(
                &results.span,
                format!(
                    "`{}`: {} is more than `keep_rollups` ({}, the default); raise `keep_rollups` too",
                    t.field("keep_results"),
                    shown_ms(results.value),
                    shown_ms(settings.keep_rollups_ms)
                ),
            ),
            (None, None) => {}
        }
    }
    if let Some(n) = t.positive_integer(cx, "max_concurrent", MAX_CONCURRENT) {
        settings.max_concurrent = n.value;
    }
    let check_service_urls = t.boolean(cx, "check_service_urls").unwrap_or(true);
    (settings, check_service_urls)
}

/// How a check got its name, for messages about duplicates.
enum Named {
    /// Written in `name`.
    Written,
    /// `{service}-{type}`, by default.
    ByDefault,
}

/// Reads `[[checks]]`, then adds the default HTTP check of each service in `services` that has
/// an http(s) `url` and no declared check, when `check_service_urls` is true.
pub(crate) fn read_checks(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    services: &[ServiceSite],
    check_service_urls: bool,
) -> Vec<CheckSpec> {
    let kinds = ProbeKind::ALL.map(|k| (k.as_str(), k));
    let mut seen: HashMap<String, (Span, Named)> = HashMap::new();
    let mut checked_services: HashSet<String> = HashSet::new();
    let mut checks = Vec::new();
    for (i, (table, span)) in root.tables(cx, "checks").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("checks[{i}]"), span, CHECK_KEYS);
        let service = t
            .required_string(cx, "service")
            .and_then(|v| literal(cx, &t, "service", v))
            .and_then(|v| {
                checked_services.insert(v.value.clone());
                service_ref(cx, &t, v, services)
            });
        let kind = if t.item("type").is_none() {
            Some(ProbeKind::Http)
        } else {
            t.choice(cx, "type", &kinds).map(|k| k.value)
        };
        let name = if t.item("name").is_some() {
            name_field(cx, &t, "name").map(|n| (n, Named::Written))
        } else {
            default_name(cx, &t, service.as_ref(), kind)
        };
        let (interval_ms, timeout_ms) = read_timing(cx, &t);
        let thresholds = read_thresholds(cx, &t);
        let labels = t.labels(cx, "labels");
        let conditions = read_conditions(cx, &t);
        let enabled = t.boolean(cx, "enabled").unwrap_or(true);
        let probe = kind.and_then(|kind| {
            foreign_keys(cx, &t, kind);
            read_probe(cx, &t, kind, service.as_ref())
        });
        let Some((name, named)) = name else { continue };
        if !first_of_its_name(cx, &mut seen, &t, name.clone(), named, service.as_ref()) {
            continue;
        }
        // A refused field has been reported, and the config is rejected.
        let (Some(service), Some(probe), Some(interval_ms), Some(timeout_ms)) =
            (service, probe, interval_ms, timeout_ms)
        else {
            continue;
        };
        checks.push(CheckSpec {
            name: name.value,
            service: service.site.name.clone(),
            probe,
            interval_ms,
            timeout_ms,
            thresholds,
            labels,
            conditions,
            enabled,
        });
    }
    if check_service_urls {
        for site in services {
            if checked_services.contains(&site.name) {
                continue;
            }
            if let Some(check) = implied_check(cx, site, &seen) {
                checks.push(check);
            }
        }
    }
    checks
}

/// A declared service as a check names it.
struct ServiceRef<'s> {
    site: &'s ServiceSite,
    /// Where the check's `service` is written.
    span: Span,
}

/// Checks that `service` names a declared service, suggesting the closest one if it does not.
fn service_ref<'s>(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    name: Spanned<String>,
    services: &'s [ServiceSite],
) -> Option<ServiceRef<'s>> {
    if let Some(site) = services.iter().find(|s| s.name == name.value) {
        return Some(ServiceRef {
            site,
            span: name.span,
        });
    }
    let known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let hint = if known.is_empty() {
        "; no `[[services]]` are declared".to_owned()
    } else {
        suggestion(&name.value, &known)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_else(|| format!("; declared services: {}", known.join(", ")))
    };
    cx.error(
        &name.span,
        format!(
            "`{}`: unknown service `{}` (not declared in `[[services]]`){hint}",
            t.field("service"),
            name.value
        ),
    );
    None
}

/// `{service}-{type}`, when both are known and that is a valid name.
fn default_name(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    service: Option<&ServiceRef<'_>>,
    kind: Option<ProbeKind>,
) -> Option<(Spanned<String>, Named)> {
    let (service, kind) = (service?, kind?);
    let name = format!("{}-{kind}", service.site.name);
    if !is_name(&name) {
        cx.error(
            &t.span,
            format!(
                "`{}`: the default name `{name}` (service, then type) is longer than 64 characters; give the check a `name`",
                t.field("name")
            ),
        );
        return None;
    }
    Some((
        Spanned {
            value: name,
            span: t.span.clone(),
            template: None,
        },
        Named::ByDefault,
    ))
}

/// Remembers where a check's name was declared and answers true; a second check of the same
/// name is reported, pointing at the first, and answered false.
fn first_of_its_name(
    cx: &mut Cx<'_>,
    seen: &mut HashMap<String, (Span, Named)>,
    t: &Fields<'_>,
    name: Spanned<String>,
    named: Named,
    service: Option<&ServiceRef<'_>>,
) -> bool {
    let Some((first, first_named)) = seen.get(&name.value) else {
        seen.insert(name.value, (name.span, named));
        return true;
    };
    let at = cx.locate(first);
    let first = match first_named {
        Named::Written => format!("first declared at {at}"),
        Named::ByDefault => format!("first declared at {at}, named by default"),
    };
    let message = match (named, service) {
        (Named::ByDefault, Some(service)) => format!(
            "`{}`: duplicate check `{}` ({first}); this one is named by default after service `{}` and its type: give one of them a `name`",
            t.path(),
            name.value,
            service.site.name
        ),
        _ => format!(
            "`{}`: duplicate check `{}` ({first})",
            t.field("name"),
            name.value
        ),
    };
    cx.error(&name.span, message);
    false
}

/// `interval` and `timeout`; `None` where refused.
fn read_timing(cx: &mut Cx<'_>, t: &Fields<'_>) -> (Option<u64>, Option<u64>) {
    let interval_ms = match t.duration_ms(cx, "interval") {
        Some(d) if (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&d.value) => Some(d.value),
        Some(d) => {
            cx.error(
                &d.span,
                format!(
                    "`{}`: {} is out of range ({} to {})",
                    t.field("interval"),
                    shown_ms(d.value),
                    shown_ms(MIN_INTERVAL_MS),
                    shown_ms(MAX_INTERVAL_MS)
                ),
            );
            None
        }
        None if t.item("interval").is_some() => None,
        None => Some(DEFAULT_INTERVAL_MS),
    };
    let timeout_ms = match t.duration_at_least(cx, "timeout", MIN_TIMEOUT_MS) {
        Some(d) => match interval_ms {
            Some(interval) if d.value > interval => {
                let default = if t.item("interval").is_none() {
                    ", the default"
                } else {
                    ""
                };
                cx.error(
                    &d.span,
                    format!(
                        "`{}`: {} is more than the interval ({}{default}); a probe must end before the next one starts",
                        t.field("timeout"),
                        shown_ms(d.value),
                        shown_ms(interval)
                    ),
                );
                None
            }
            _ => Some(d.value),
        },
        None if t.item("timeout").is_some() => None,
        None => interval_ms.map(|interval| DEFAULT_TIMEOUT_MS.min(interval)),
    };
    (interval_ms, timeout_ms)
}

/// `failures_before_down` and `successes_before_up`, from the defaults of [`Thresholds`].
fn read_thresholds(cx: &mut Cx<'_>, t: &Fields<'_>) -> Thresholds {
    let mut thresholds = Thresholds::default();
    if let Some(n) = t.positive_integer(cx, "failures_before_down", MAX_THRESHOLD) {
        thresholds.failures_before_down = n.value;
    }
    if let Some(n) = t.positive_integer(cx, "successes_before_up", MAX_THRESHOLD) {
        thresholds.successes_before_up = n.value;
    }
    thresholds
}

/// `conditions`, each parsed; one that does not parse is reported at its string, with the
/// column of the problem within the condition.
fn read_conditions(cx: &mut Cx<'_>, t: &Fields<'_>) -> Vec<Condition> {
    let mut conditions = Vec::new();
    let written = t
        .indexed_strings(cx, "conditions")
        .map(|(written, _)| written);
    for (path, text) in written.unwrap_or_default() {
        match Condition::parse(&text.value) {
            Ok(condition) => conditions.push(condition),
            // The error reads `column N: what is wrong`.
            Err(e) => cx.error(&text.span, format!("`{path}`: {e}")),
        }
    }
    conditions
}

/// The keys `kind` has (besides the common ones).
fn own_keys(kind: ProbeKind) -> &'static [&'static str] {
    match kind {
        ProbeKind::Http => HTTP_KEYS,
        ProbeKind::Tcp => TCP_KEYS,
        ProbeKind::Tls => TLS_KEYS,
        ProbeKind::CertFile => CERT_FILE_KEYS,
        ProbeKind::Command => COMMAND_KEYS,
    }
}

/// Reports each key written that belongs to other types than `kind`.
fn foreign_keys(cx: &mut Cx<'_>, t: &Fields<'_>, kind: ProbeKind) {
    let own = own_keys(kind);
    for key in CHECK_KEYS
        .iter()
        .filter(|key| !COMMON_KEYS.contains(key) && !own.contains(key))
    {
        let Some(span) = t.key_span(key) else {
            continue;
        };
        let owners: Vec<String> = ProbeKind::ALL
            .into_iter()
            .filter(|k| own_keys(*k).contains(key))
            .map(|k| format!("\"{k}\""))
            .collect();
        let default = if t.item("type").is_none() {
            ", the default"
        } else {
            ""
        };
        cx.error(
            &span,
            format!(
                "`{}`: only goes with type = {} (this check's type is \"{kind}\"{default})",
                t.field(key),
                owners.join(" or ")
            ),
        );
    }
}

fn read_probe(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    kind: ProbeKind,
    service: Option<&ServiceRef<'_>>,
) -> Option<Probe> {
    match kind {
        ProbeKind::Http => read_http(cx, t, service).map(Probe::Http),
        ProbeKind::Tcp => {
            let (address, _) = read_address(cx, t, service)?;
            Some(Probe::Tcp { address })
        }
        ProbeKind::Tls => {
            let target = read_address(cx, t, service);
            let server_name = read_server_name(cx, t);
            let verify = t.boolean(cx, "verify_tls").unwrap_or(true);
            let (address, host) = target?;
            let server_name = server_name?.unwrap_or(host);
            Some(Probe::Tls {
                address,
                server_name,
                verify,
            })
        }
        ProbeKind::CertFile => read_cert_paths(cx, t).map(|paths| Probe::CertFile { paths }),
        ProbeKind::Command => {
            let command = read_command(cx, t);
            let args = t.strings(cx, "args").unwrap_or_default();
            let env = read_env(cx, t);
            let workdir = read_workdir(cx, t);
            if let (Some(command), Some(env)) = (&command, &env) {
                warn_unless_runnable(cx, t, command, env);
            }
            Some(Probe::Command(CommandProbe {
                command: command?.value,
                args: args.into_iter().map(|a| a.value).collect(),
                env: env?,
                workdir: workdir?,
            }))
        }
    }
}

fn read_http(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    service: Option<&ServiceRef<'_>>,
) -> Option<HttpProbe> {
    let method = t
        .choice(cx, "method", &HTTP_METHODS)
        .map_or("GET", |m| m.value);
    let url = read_http_url(cx, t, service);
    let headers = read_headers(cx, t);
    let body = match t.string(cx, "body") {
        Some(body) => Some(Some(
            t.without_template(
                cx,
                "body",
                body,
                "cannot use `${VAR}`: it is not kept secret; pass secrets in `headers`",
            )?
            .value,
        )),
        None if t.item("body").is_some() => None,
        None => Some(None),
    };
    let expect_status: Vec<u16> = t
        .integers(cx, "expect_status", 100..=599)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| u16::try_from(s.value).ok())
        .collect();
    let has_conditions = t
        .item("conditions")
        .and_then(|item| item.as_array())
        .is_some_and(|a| !a.is_empty());
    if has_conditions && let Some(span) = t.key_span("expect_status") {
        cx.warning(
            &span,
            format!(
                "`{}`: ignored, because the check has `conditions`, which alone decide whether a probe passes (add e.g. \"[STATUS] == any(200, 204)\" to them instead)",
                t.field("expect_status")
            ),
        );
    }
    let verify_tls = t.boolean(cx, "verify_tls").unwrap_or(true);
    let redirects = t
        .choice(cx, "redirects", &REDIRECT_CHOICES)
        .map_or(Redirects::Follow, |r| r.value);
    Some(HttpProbe {
        method: method.to_owned(),
        url: url?,
        headers: headers?,
        body: body?,
        expect_status,
        verify_tls,
        redirects,
    })
}

/// Whether `url` is an http:// or https:// URL.
fn is_http(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// The URL an http check requests: its `url`, or its service's `url` (with `path` joined).
fn read_http_url(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    service: Option<&ServiceRef<'_>>,
) -> Option<Secret> {
    let path = t.literal_string(cx, "path").and_then(|path| {
        let problem = if !path.value.starts_with('/') {
            format!("`{}` must start with `/`", path.value)
        } else if path.value.chars().any(char::is_whitespace) {
            "must not contain white space".to_owned()
        } else {
            return Some(path);
        };
        cx.error(&path.span, format!("`{}`: {problem}", t.field("path")));
        None
    });
    if t.item("url").is_some() {
        if let Some(span) = t.key_span("path") {
            cx.error(
                &span,
                format!(
                    "`{}`: is joined to the service's url, so it does not go with `url`; write the whole URL in `url`",
                    t.field("path")
                ),
            );
        }
        let raw = t.string(cx, "url")?;
        let problem = match url_problem(&raw.value, raw.shown()) {
            Some(problem) => problem,
            None if is_http(&raw.value) => return Some(Secret::new(raw.value)),
            None => format!("`{}` is not an http:// or https:// URL", raw.shown()),
        };
        cx.error(&raw.span, format!("`{}`: {problem}", t.field("url")));
        return None;
    }
    let path_ok = path.is_some() || t.item("path").is_none();
    let service = service?;
    let site = service.site;
    // Point at `path` when there is one: it is what needs the service's url.
    let (span, field) = match &path {
        Some(path) => (path.span.clone(), t.field("path")),
        None => (service.span.clone(), t.field("service")),
    };
    let Some(base) = &site.url else {
        if !site.url_refused {
            cx.error(
                &span,
                format!(
                    "`{field}`: service `{}` has no `url` to probe; give the check a whole `url`",
                    site.name
                ),
            );
        }
        return None;
    };
    if !is_http(&base.value) {
        cx.error(
            &span,
            format!(
                "`{field}`: the url of service `{}` (`{}`) is not an http:// or https:// URL; give the check a whole `url`, or a type that fits (such as \"tcp\")",
                site.name,
                base.shown()
            ),
        );
        return None;
    }
    if !path_ok {
        return None;
    }
    let Some(path) = path else {
        return Some(Secret::new(base.value.clone()));
    };
    // As the http executor joins a service's url and a path.
    let joined = format!("{}{}", base.value.trim_end_matches('/'), path.value);
    let shown = format!("{}{}", base.shown().trim_end_matches('/'), path.value);
    if let Some(problem) = url_problem(&joined, &shown) {
        cx.error(&path.span, format!("`{}`: {problem}", t.field("path")));
        return None;
    }
    Some(Secret::new(joined))
}

/// A tcp or tls check's `host:port` and the host in it (without brackets), from `address` or
/// else from its service's `url`.
fn read_address(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    service: Option<&ServiceRef<'_>>,
) -> Option<(String, String)> {
    if t.item("address").is_some() {
        let raw = t.string(cx, "address")?;
        let raw = t.without_template(
            cx,
            "address",
            raw,
            "cannot use `${VAR}`: it is shown in results and the API",
        )?;
        return match address_host(&raw.value) {
            Ok(host) => Some((raw.value, host)),
            Err(problem) => {
                cx.error(
                    &raw.span,
                    format!("`{}`: `{}` {problem}", t.field("address"), raw.value),
                );
                None
            }
        };
    }
    let site = service?.site;
    let field = t.field("address");
    let Some(base) = &site.url else {
        if !site.url_refused {
            cx.error(
                &t.span,
                format!(
                    "`{field}`: missing, and service `{}` has no `url` to take the host and port from (give address = \"host:port\")",
                    site.name
                ),
            );
        }
        return None;
    };
    let parsed = url::Url::parse(&base.value).ok();
    let host = parsed.as_ref().and_then(|u| u.host());
    let port = parsed.as_ref().and_then(url::Url::port_or_known_default);
    let (Some(host), Some(port)) = (host, port) else {
        cx.error(
            &t.span,
            format!(
                "`{field}`: missing, and the url of service `{}` (`{}`) names no port (give address = \"host:port\")",
                site.name,
                base.shown()
            ),
        );
        return None;
    };
    Some(match host {
        url::Host::Domain(domain) => (format!("{domain}:{port}"), domain.to_owned()),
        url::Host::Ipv4(ip) => (format!("{ip}:{port}"), ip.to_string()),
        url::Host::Ipv6(ip) => (format!("[{ip}]:{port}"), ip.to_string()),
    })
}

/// The host of a `host:port` address (an IPv6 address without its brackets), or what is wrong
/// with it (to follow the address in a message).
fn address_host(address: &str) -> Result<String, String> {
    const FORM: &str = "(write host:port, e.g. db.internal:5432 or [::1]:443)";
    if address.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("is not host:port {FORM}"));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("has no port {FORM}"));
    };
    if !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return Err(format!("has no valid port (`{port}`: 1 to 65535)"));
    }
    if host.is_empty() {
        return Err(format!("has no host {FORM}"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']') {
            Some(ip) if ip.parse::<Ipv6Addr>().is_ok() => Ok(ip.to_owned()),
            _ => Err(format!("has no valid IPv6 address in brackets {FORM}")),
        };
    }
    if host.contains([':', '[', ']']) {
        return Err(format!(
            "is not host:port (an IPv6 address goes in brackets) {FORM}"
        ));
    }
    Ok(host.to_owned())
}

/// A tls check's `server_name`: `Some(None)` when not given, `None` when refused.
fn read_server_name(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Option<String>> {
    if t.item("server_name").is_none() {
        return Some(None);
    }
    let raw = t.string(cx, "server_name")?;
    let raw = t.without_template(
        cx,
        "server_name",
        raw,
        "cannot use `${VAR}`: it is shown in results and the API",
    )?;
    let problem = if raw.value.is_empty() {
        "must not be empty".to_owned()
    } else if raw
        .value
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '/' | ':'))
    {
        format!(
            "`{}` is not a host name (no port, scheme or path)",
            raw.value
        )
    } else {
        return Some(Some(raw.value));
    };
    cx.error(
        &raw.span,
        format!("`{}`: {problem}", t.field("server_name")),
    );
    None
}

/// A cert_file check's `paths`: required, not empty, each a glob pattern.
fn read_cert_paths(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Vec<String>> {
    let item = t.required_item(
        cx,
        "paths",
        "the certificate files, e.g. paths = [\"/etc/letsencrypt/live/*/fullchain.pem\"]",
    )?;
    let (written, mut ok) = t.indexed_strings(cx, "paths")?;
    if written.is_empty() {
        // Unless its elements (or the array itself) were refused, and said so.
        if !ok {
            return None;
        }
        cx.error(
            &item.span(),
            format!(
                "`{}`: must list at least one pattern (e.g. \"/etc/letsencrypt/live/*/fullchain.pem\")",
                t.field("paths")
            ),
        );
        return None;
    }
    let mut paths = Vec::new();
    for (path, pattern) in written {
        let problem = if pattern.value.is_empty() {
            Some("must not be empty".to_owned())
        } else {
            glob_problem(&pattern.value)
                .map(|why| format!("`{}` is not a glob pattern: {why}", pattern.value))
        };
        match problem {
            Some(problem) => {
                cx.error(&pattern.span, format!("`{path}`: {problem}"));
                ok = false;
            }
            None => paths.push(pattern.value),
        }
    }
    ok.then_some(paths)
}

/// Why `pattern` is not a glob pattern, if it is not: the rules of the `glob` crate's
/// `Pattern::new` (`*`, `**` as a whole path component, `?`, closed `[…]` and `[!…]`).
pub(crate) fn glob_problem(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                let start = i;
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                let count = i - start;
                if count > 2 {
                    return Some(format!(
                        "`{}` at character {} (a wildcard is `*`, or `**` for any depth of directories)",
                        "*".repeat(count),
                        start + 1
                    ));
                }
                let whole_component = (start == 0 || chars[start - 1] == '/')
                    && chars.get(i).is_none_or(|c| *c == '/');
                if count == 2 && !whole_component {
                    return Some(format!(
                        "`**` at character {} must be a whole path component, as in `a/**/b.pem`",
                        start + 1
                    ));
                }
            }
            '[' => {
                // The first member (after `[` or `[!`) may be `]` itself.
                let first = if chars.get(i + 1) == Some(&'!') {
                    i + 2
                } else {
                    i + 1
                };
                match chars
                    .get(first + 1..)
                    .and_then(|rest| rest.iter().position(|c| *c == ']'))
                {
                    Some(j) => i = first + 1 + j + 1,
                    None => {
                        return Some(format!(
                            "`[` at character {} is not closed by `]` (write `[[]` for a literal `[`)",
                            i + 1
                        ));
                    }
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// `text` with the glob metacharacters `?`, `*`, `[` and `]` escaped, so that a pattern made
/// from it matches it literally.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '?' | '*' | '[' | ']') {
            escaped.push('[');
            escaped.push(c);
            escaped.push(']');
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// The default HTTP check of a service with an http(s) `url`: named `{service}-http`, unless
/// that name is taken by a declared check.
fn implied_check(
    cx: &mut Cx<'_>,
    site: &ServiceSite,
    seen: &HashMap<String, (Span, Named)>,
) -> Option<CheckSpec> {
    let url = site.url.as_ref().filter(|u| is_http(&u.value))?;
    let name = format!("{}-{}", site.name, ProbeKind::Http);
    if seen.contains_key(&name) {
        return None;
    }
    if !is_name(&name) {
        cx.warning(
            &site.name_span,
            format!(
                "`{}`: no default HTTP check for service `{}`: its name `{name}` would be longer than 64 characters; declare a `[[checks]]` entry with a shorter `name` (or set `health.check_service_urls = false`)",
                site.name_field, site.name
            ),
        );
        return None;
    }
    Some(CheckSpec {
        name,
        service: site.name.clone(),
        probe: Probe::Http(HttpProbe {
            method: "GET".to_owned(),
            url: Secret::new(url.value.clone()),
            headers: Default::default(),
            body: None,
            expect_status: Vec::new(),
            verify_tls: true,
            redirects: Redirects::Follow,
        }),
        interval_ms: DEFAULT_INTERVAL_MS,
        timeout_ms: DEFAULT_TIMEOUT_MS.min(DEFAULT_INTERVAL_MS),
        thresholds: Thresholds::default(),
        labels: Labels::new(),
        conditions: Vec::new(),
        enabled: true,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::load::{LoadError, load_file, parse_str};
    use proptest::prelude::*;
    use toml_edit::Value;

    use crate::test_support::{assert_error, env, errors, parse};

    /// Two services (lines 1–5) and a check's first lines (6–7): a case's own lines start on
    /// line 8.
    const PREFIX: &str = "[[services]]\nname = \"nn\"\nurl = \"http://127.0.0.1:8000/\"\n[[services]]\nname = \"bare\"\n[[checks]]\nservice = \"nn\"\n";

    fn with(lines: &str) -> String {
        format!("{PREFIX}{lines}\n")
    }

    const FULL: &str = r#"[health]
keep_results = "12h"
keep_rollups = "60d"
max_concurrent = 64
check_service_urls = true

[[services]]
name = "nn"
url = "http://127.0.0.1:8000/"

[[services]]
name = "site"
url = "https://example.org"

[[services]]
name = "db"
url = "postgres://db.internal:5432/app"

[[services]]
name = "certs"

[[services]]
name = "plain"
url = "http://plain.internal:9000/x"

[[checks]]
service = "nn"
name = "nn-health"
type = "http"
interval = "15s"
timeout = "2s"
failures_before_down = 5
successes_before_up = 1
labels = { team = "ml" }
conditions = ["[STATUS] == 200", "[BODY].status == UP", "[RESPONSE_TIME] < 500"]
enabled = false
path = "/health"
method = "POST"
headers = { Authorization = "Bearer ${TOKEN}" }
body = '{"ping": true}'
verify_tls = false
redirects = "none"

[[checks]]
service = "site"
expect_status = [200, 301]

[[checks]]
service = "site"
name = "site-status"
url = "https://status.example.org/api?key=${TOKEN}"
method = "HEAD"

[[checks]]
service = "db"
type = "tcp"

[[checks]]
service = "site"
type = "tls"
server_name = "www.example.org"

[[checks]]
service = "certs"
type = "cert_file"
paths = ["/etc/letsencrypt/live/*/fullchain.pem", "/srv/certs/**/*.crt"]

[[checks]]
service = "db"
type = "command"
command = "pg_isready"
args = ["-h", "127.0.0.1"]
env = { PGPASSWORD = "${TOKEN}" }
workdir = "/srv"
timeout = "30s"

[[checks]]
service = "nn"
type = "tcp"
address = "[::1]:8000"
interval = "5s"

[[checks]]
service = "nn"
type = "tls"
address = "10.0.0.1:8443"
verify_tls = false
"#;

    fn http(url: &str) -> HttpProbe {
        HttpProbe {
            method: "GET".into(),
            url: Secret::new(url),
            headers: BTreeMap::new(),
            body: None,
            expect_status: Vec::new(),
            verify_tls: true,
            redirects: Redirects::Follow,
        }
    }

    /// A check with every default, on `service`.
    fn check(name: &str, service: &str, probe: Probe) -> CheckSpec {
        CheckSpec {
            name: name.into(),
            service: service.into(),
            probe,
            interval_ms: 30_000,
            timeout_ms: 10_000,
            thresholds: Thresholds::default(),
            labels: Labels::new(),
            conditions: Vec::new(),
            enabled: true,
        }
    }

    fn conditions(texts: &[&str]) -> Vec<Condition> {
        texts.iter().map(|t| Condition::parse(t).unwrap()).collect()
    }

    #[test]
    fn a_full_example_parses_into_checks_of_every_type() {
        let config = parse(FULL);
        assert_eq!(
            config.settings.health,
            HealthSettings {
                keep_results_ms: 12 * 3_600_000,
                keep_rollups_ms: 60 * 24 * 3_600_000,
                max_concurrent: 64,
            }
        );
        let nn_health = CheckSpec {
            interval_ms: 15_000,
            timeout_ms: 2_000,
            thresholds: Thresholds {
                failures_before_down: 5,
                successes_before_up: 1,
            },
            labels: Labels::from([("team".into(), "ml".into())]),
            conditions: conditions(&[
                "[STATUS] == 200",
                "[BODY].status == UP",
                "[RESPONSE_TIME] < 500",
            ]),
            enabled: false,
            ..check(
                "nn-health",
                "nn",
                Probe::Http(HttpProbe {
                    method: "POST".into(),
                    url: Secret::new("http://127.0.0.1:8000/health"),
                    headers: BTreeMap::from([(
                        "Authorization".into(),
                        Secret::new("Bearer hunter2"),
                    )]),
                    body: Some(r#"{"ping": true}"#.into()),
                    expect_status: Vec::new(),
                    verify_tls: false,
                    redirects: Redirects::None,
                }),
            )
        };
        let site_http = check(
            "site-http",
            "site",
            Probe::Http(HttpProbe {
                expect_status: vec![200, 301],
                ..http("https://example.org")
            }),
        );
        let site_status = check(
            "site-status",
            "site",
            Probe::Http(HttpProbe {
                method: "HEAD".into(),
                ..http("https://status.example.org/api?key=hunter2")
            }),
        );
        let db_tcp = check(
            "db-tcp",
            "db",
            Probe::Tcp {
                address: "db.internal:5432".into(),
            },
        );
        let site_tls = check(
            "site-tls",
            "site",
            Probe::Tls {
                address: "example.org:443".into(),
                server_name: "www.example.org".into(),
                verify: true,
            },
        );
        let certs = check(
            "certs-cert_file",
            "certs",
            Probe::CertFile {
                paths: vec![
                    "/etc/letsencrypt/live/*/fullchain.pem".into(),
                    "/srv/certs/**/*.crt".into(),
                ],
            },
        );
        let db_command = CheckSpec {
            timeout_ms: 30_000,
            ..check(
                "db-command",
                "db",
                Probe::Command(CommandProbe {
                    command: "pg_isready".into(),
                    args: vec!["-h".into(), "127.0.0.1".into()],
                    env: BTreeMap::from([("PGPASSWORD".into(), Secret::new("hunter2"))]),
                    workdir: Some(PathBuf::from("/srv")),
                }),
            )
        };
        let nn_tcp = CheckSpec {
            interval_ms: 5_000,
            timeout_ms: 5_000,
            ..check(
                "nn-tcp",
                "nn",
                Probe::Tcp {
                    address: "[::1]:8000".into(),
                },
            )
        };
        let nn_tls = check(
            "nn-tls",
            "nn",
            Probe::Tls {
                address: "10.0.0.1:8443".into(),
                server_name: "10.0.0.1".into(),
                verify: false,
            },
        );
        // Declared checks in file order, then the default check of the one service with an
        // http(s) url and no check of its own.
        let plain = check(
            "plain-http",
            "plain",
            Probe::Http(http("http://plain.internal:9000/x")),
        );
        let expected = vec![
            nn_health,
            site_http,
            site_status,
            db_tcp,
            site_tls,
            certs,
            db_command,
            nn_tcp,
            nn_tls,
            plain,
        ];
        assert_eq!(config.checks.len(), expected.len());
        for (got, want) in config.checks.iter().zip(&expected) {
            assert_eq!(got, want);
        }
        let kinds: Vec<ProbeKind> = config.checks.iter().map(|c| c.probe.kind()).collect();
        for kind in ProbeKind::ALL {
            assert!(kinds.contains(&kind), "{kind} is not covered");
        }
    }

    #[test]
    fn secrets_in_checks_are_resolved_but_never_printed() {
        let config = parse(FULL);
        let Probe::Http(probe) = &config.checks[2].probe else {
            panic!("not http: {:?}", config.checks[2]);
        };
        assert_eq!(
            probe.url.expose(),
            "https://status.example.org/api?key=hunter2"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        // A service url from the environment is resolved for its checks too.
        let config = parse(
            "[[services]]\nname = \"s\"\nurl = \"http://u:${TOKEN}@h:1/\"\n[[checks]]\nservice = \"s\"\npath = \"/health\"\n",
        );
        let Probe::Http(probe) = &config.checks[0].probe else {
            panic!("not http: {:?}", config.checks[0]);
        };
        assert_eq!(probe.url.expose(), "http://u:hunter2@h:1/health");
        assert_eq!(
            config.registry.services[0].url.as_deref(),
            Some("http://u:${TOKEN}@h:1/")
        );
    }

    #[test]
    fn defaults_when_left_out() {
        let config = parse(
            "[[services]]\nname = \"nn\"\nurl = \"http://h:1/\"\n[[checks]]\nservice = \"nn\"\n",
        );
        assert_eq!(config.settings.health, HealthSettings::default());
        assert_eq!(config.settings.health.keep_results_ms, 24 * 3_600_000);
        assert_eq!(config.settings.health.keep_rollups_ms, 30 * 24 * 3_600_000);
        assert_eq!(config.settings.health.max_concurrent, 512);
        assert_eq!(
            config.checks,
            vec![check("nn-http", "nn", Probe::Http(http("http://h:1/")))]
        );
        let c = &config.checks[0];
        assert_eq!(c.interval_ms, DEFAULT_INTERVAL_MS);
        assert_eq!(c.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(c.thresholds, Thresholds::default());
        // No conditions: the probe's own (any 2xx).
        assert_eq!(c.effective_conditions(), c.probe.default_conditions());
        // The timeout is at most the interval.
        let short = parse(&with("interval = \"4s\""));
        assert_eq!(short.checks[0].timeout_ms, 4_000);
        // An empty `conditions` is the default too.
        assert!(
            parse(&with("conditions = []")).checks[0]
                .conditions
                .is_empty()
        );
        // The port of a url without one comes from its scheme.
        let tcp = parse(
            "[[services]]\nname = \"a\"\nurl = \"http://a.internal/x\"\n[[services]]\nname = \"b\"\nurl = \"https://[::1]/\"\n[[checks]]\nservice = \"a\"\ntype = \"tcp\"\n[[checks]]\nservice = \"b\"\ntype = \"tls\"\n",
        );
        assert_eq!(
            tcp.checks
                .iter()
                .map(|c| c.probe.clone())
                .collect::<Vec<_>>(),
            vec![
                Probe::Tcp {
                    address: "a.internal:80".into()
                },
                Probe::Tls {
                    address: "[::1]:443".into(),
                    server_name: "::1".into(),
                    verify: true
                },
            ]
        );
        assert!(parse("[server]\n").checks.is_empty());
    }

    #[test]
    fn services_with_an_http_url_and_no_check_get_a_default_one() {
        let services = "[[services]]\nname = \"a\"\nurl = \"https://a.example/\"\n[[services]]\nname = \"b\"\nurl = \"http://b.internal:81/health\"\n[[services]]\nname = \"db\"\nurl = \"postgres://db/x\"\n[[services]]\nname = \"none\"\n";
        let config = parse(services);
        assert_eq!(
            config.checks,
            vec![
                check("a-http", "a", Probe::Http(http("https://a.example/"))),
                check(
                    "b-http",
                    "b",
                    Probe::Http(http("http://b.internal:81/health"))
                ),
            ]
        );
        // A service with any declared check gets none; the declared ones come first.
        let declared = parse(&format!(
            "{services}[[checks]]\nservice = \"b\"\ntype = \"tcp\"\n"
        ));
        let names: Vec<&str> = declared.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b-tcp", "a-http"]);
        // A declared check that took the name: no default check, and no error.
        let taken = parse(&format!(
            "{services}[[checks]]\nservice = \"b\"\nname = \"a-http\"\n"
        ));
        let names: Vec<&str> = taken.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a-http"]);
        assert_eq!(taken.checks[0].service, "b");
        // Turned off.
        let off = parse(&format!("{services}[health]\ncheck_service_urls = false\n"));
        assert!(off.checks.is_empty());
    }

    #[test]
    fn a_default_check_whose_name_would_be_too_long_is_a_warning() {
        let name = "s".repeat(60);
        let loaded = parse_str(
            "f.toml",
            &format!("[[services]]\nname = \"{name}\"\nurl = \"http://h/\"\n"),
            &env,
        )
        .unwrap();
        assert!(loaded.config.checks.is_empty());
        let warning = loaded.warnings[0].to_string();
        assert!(
            warning.starts_with(&format!(
                "f.toml:2:8: warning: `services[0].name`: no default HTTP check for service `{name}`"
            )),
            "{warning}"
        );
        // A declared check on it needs a shorter name than the default.
        assert_error(
            &format!(
                "[[services]]\nname = \"{name}\"\nurl = \"http://h/\"\n[[checks]]\nservice = \"{name}\"\n"
            ),
            4,
            "`checks[0].name`: the default name",
        );
    }

    #[test]
    fn keys_of_another_type_are_errors() {
        let all = errors(&with("paths = [\"/x\"]"));
        assert!(
            all.starts_with(
                "f.toml:8:1: error: `checks[0].paths`: only goes with type = \"cert_file\" (this check's type is \"http\", the default)"
            ),
            "{all}"
        );
        assert_eq!(all.lines().count(), 1, "{all}");
        assert_error(
            &with("type = \"tcp\"\nverify_tls = true"),
            9,
            "`checks[0].verify_tls`: only goes with type = \"http\" or \"tls\" (this check's type is \"tcp\")",
        );
        assert_error(
            &with("type = \"cert_file\"\npaths = [\"/x\"]\ncommand = \"true\""),
            10,
            "`checks[0].command`: only goes with type = \"command\"",
        );
        assert_error(
            &with("type = \"command\"\ncommand = \"true\"\naddress = \"h:1\""),
            10,
            "`checks[0].address`: only goes with type = \"tcp\" or \"tls\"",
        );
        assert_error(
            &with("type = \"tls\"\nurl = \"http://x/\""),
            9,
            "`checks[0].url`: only goes with type = \"http\"",
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert_error(
            &with("intervall = \"1m\""),
            8,
            "unknown key `checks[0].intervall`: did you mean `interval`?",
        );
        assert_error(
            "[health]\nkeep_result = \"1h\"\n",
            2,
            "unknown key `health.keep_result`: did you mean `keep_results`?",
        );
        assert_error(
            "[[check]]\nservice = \"s\"\n",
            1,
            "unknown key `check`: did you mean `checks`?",
        );
        assert_error(
            "health = 1\n",
            1,
            "`health`: expected a table, found integer",
        );
    }

    #[test]
    fn the_service_must_be_declared() {
        assert_error(
            "[[services]]\nname = \"nn\"\n[[checks]]\ntype = \"tcp\"\naddress = \"h:1\"\n",
            3,
            "`checks[0].service`: missing required field",
        );
        let all = errors(&with("").replace("service = \"nn\"", "service = \"n\""));
        assert!(
            all.starts_with(
                "f.toml:7:11: error: `checks[0].service`: unknown service `n` (not declared in `[[services]]`); did you mean `nn`?"
            ),
            "{all}"
        );
        assert_error(
            "[[checks]]\nservice = \"nn\"\n",
            2,
            "`checks[0].service`: unknown service `nn` (not declared in `[[services]]`); no `[[services]]` are declared",
        );
        assert_error(
            &with("").replace("service = \"nn\"", "service = \"${TOKEN}\""),
            7,
            "`checks[0].service`: names and references cannot use `${VAR}`",
        );
        // A service whose url was refused: one error, where the url is written.
        let all = errors(
            "[[services]]\nname = \"s\"\nurl = \"::\"\n[[checks]]\nservice = \"s\"\n[[checks]]\nservice = \"s\"\ntype = \"tcp\"\n",
        );
        assert_eq!(all.lines().count(), 1, "{all}");
        assert!(
            all.starts_with("f.toml:3:7: error: `services[0].url`"),
            "{all}"
        );
    }

    #[test]
    fn names_and_types_are_checked() {
        assert_error(
            &with("type = \"dns\""),
            8,
            "`checks[0].type`: `dns` is not one of: http, tcp, tls, cert_file, command",
        );
        assert_error(
            &with("name = \"a b\""),
            8,
            "`checks[0].name`: `a b` is not a valid name",
        );
        assert_error(
            &with("name = \"\""),
            8,
            "`checks[0].name`: must not be empty",
        );
        assert_error(
            &with("enabled = \"yes\""),
            8,
            "`checks[0].enabled`: expected true or false",
        );
        assert_error(
            &with("labels = { \"1x\" = \"a\" }"),
            8,
            "`checks[0].labels`: label name `1x`",
        );
    }

    #[test]
    fn duplicate_names_point_at_the_first() {
        let all = errors(&with(
            "name = \"x\"\n[[checks]]\nservice = \"nn\"\nname = \"x\"",
        ));
        assert!(
            all.starts_with(
                "f.toml:11:8: error: `checks[1].name`: duplicate check `x` (first declared at f.toml:8:8)"
            ),
            "{all}"
        );
        // Two checks named by default.
        let all = errors(&with("[[checks]]\nservice = \"nn\""));
        assert!(
            all.starts_with(
                "f.toml:8:1: error: `checks[1]`: duplicate check `nn-http` (first declared at f.toml:6:1, named by default); this one is named by default after service `nn` and its type: give one of them a `name`"
            ),
            "{all}"
        );
        // A written name that a default one took first.
        assert_error(
            &with("[[checks]]\nservice = \"nn\"\ntype = \"tcp\"\nname = \"nn-http\""),
            11,
            "`checks[1].name`: duplicate check `nn-http` (first declared at f.toml:6:1, named by default)",
        );
    }

    #[test]
    fn intervals_timeouts_and_thresholds_are_checked() {
        let all = errors(&with("interval = \"500ms\""));
        assert!(
            all.starts_with(
                "f.toml:8:12: error: `checks[0].interval`: 500ms is out of range (1s to 1d)"
            ),
            "{all}"
        );
        assert_error(
            &with("interval = \"25h\""),
            8,
            "`checks[0].interval`: 1d 1h is out of range (1s to 1d)",
        );
        assert_error(
            &with("interval = 30"),
            8,
            "`checks[0].interval`: expected a duration as a string",
        );
        assert_error(
            &with("interval = \"5s\"\ntimeout = \"6s\""),
            9,
            "`checks[0].timeout`: 6s is more than the interval (5s); a probe must end before the next one starts",
        );
        assert_error(
            &with("timeout = \"31s\""),
            8,
            "`checks[0].timeout`: 31s is more than the interval (30s, the default)",
        );
        assert_error(
            &with("timeout = \"5ms\""),
            8,
            "`checks[0].timeout`: 5ms is less than 10ms, the shortest allowed",
        );
        assert_error(
            &with("timeout = \"0s\""),
            8,
            "`checks[0].timeout`: must be more than zero",
        );
        assert_error(
            &with("failures_before_down = 0"),
            8,
            "`checks[0].failures_before_down`: 0 is out of range (1 to 100)",
        );
        assert_error(
            &with("successes_before_up = 101"),
            8,
            "`checks[0].successes_before_up`: 101 is out of range (1 to 100)",
        );
        // A refused interval is reported once, not again by the timeout.
        let all = errors(&with("interval = \"soon\"\ntimeout = \"1h\""));
        assert_eq!(all.lines().count(), 1, "{all}");
    }

    #[test]
    fn a_bad_condition_names_its_column() {
        let all = errors(&with(
            "conditions = [\"[STATUS] == 200\", \"[STATU] == 200\"]",
        ));
        assert!(
            all.starts_with(
                "f.toml:8:34: error: `checks[0].conditions[1]`: column 1: unknown placeholder [STATU]; expected one of [STATUS]"
            ),
            "{all}"
        );
        assert_eq!(all.lines().count(), 1, "{all}");
        let all = errors(&with("conditions = [\"[BODY].x ==\", 7]"));
        assert!(
            all.contains(
                "f.toml:8:15: error: `checks[0].conditions[0]`: column 12: missing right-hand side after =="
            ),
            "{all}"
        );
        assert!(
            all.contains(
                "f.toml:8:30: error: `checks[0].conditions[1]`: expected a string, found integer"
            ),
            "{all}"
        );
        assert_error(
            &with("conditions = \"[STATUS] == 200\""),
            8,
            "`checks[0].conditions`: expected an array of strings, found string",
        );
        assert_error(
            &with("conditions = [\"[STATUS] == \\u0000\"]"),
            8,
            "`checks[0].conditions[0]`: must not contain a NUL character",
        );
    }

    #[test]
    fn expect_status_with_conditions_is_a_warning() {
        let loaded = parse_str(
            "f.toml",
            &with("conditions = [\"[STATUS] == 200\"]\nexpect_status = [200]"),
            &env,
        )
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].to_string().starts_with(
                "f.toml:9:1: warning: `checks[0].expect_status`: ignored, because the check has `conditions`"
            ),
            "{}",
            loaded.warnings[0]
        );
        let Probe::Http(probe) = &loaded.config.checks[0].probe else {
            panic!("not http");
        };
        assert_eq!(probe.expect_status, [200]);
        // Without conditions it decides, and there is nothing to warn about.
        let loaded = parse_str("f.toml", &with("expect_status = [204]"), &env).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_error(
            &with("expect_status = [200, 600]"),
            8,
            "`checks[0].expect_status[1]`: 600 is out of range (100 to 599)",
        );
    }

    #[test]
    fn http_errors_name_the_field_and_line() {
        assert_error(
            &with("url = \"http://x/\"\npath = \"/p\""),
            9,
            "`checks[0].path`: is joined to the service's url, so it does not go with `url`; write the whole URL in `url`",
        );
        assert_error(
            &with("url = \"::\""),
            8,
            "`checks[0].url`: `::` is not a URL",
        );
        assert_error(
            &with("url = \"ftp://x/y\""),
            8,
            "`checks[0].url`: `ftp://x/y` is not an http:// or https:// URL",
        );
        assert_error(
            &with("url = \"http://x/${NOPE}\""),
            8,
            "`checks[0].url`: environment variable `NOPE` is not set",
        );
        assert_error(
            &with("path = \"health\""),
            8,
            "`checks[0].path`: `health` must start with `/`",
        );
        assert_error(
            &with("path = \"/a b\""),
            8,
            "`checks[0].path`: must not contain white space",
        );
        assert_error(
            &with("").replace("service = \"nn\"", "service = \"bare\""),
            7,
            "`checks[0].service`: service `bare` has no `url` to probe; give the check a whole `url`",
        );
        assert_error(
            &with("path = \"/health\"").replace("service = \"nn\"", "service = \"bare\""),
            8,
            "`checks[0].path`: service `bare` has no `url` to probe",
        );
        assert_error(
            "[[services]]\nname = \"db\"\nurl = \"postgres://db:5432/\"\n[[checks]]\nservice = \"db\"\n",
            5,
            "`checks[0].service`: the url of service `db` (`postgres://db:5432/`) is not an http:// or https:// URL; give the check a whole `url`, or a type that fits",
        );
        assert_error(
            &with("method = \"get\""),
            8,
            "`checks[0].method`: `get` is not one of: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        );
        assert_error(
            &with("redirects = \"always\""),
            8,
            "`checks[0].redirects`: `always` is not one of: follow, none",
        );
        assert_error(
            &with("headers = { \"Bad Name\" = \"v\" }"),
            8,
            "`checks[0].headers`: `Bad Name` is not a header name",
        );
        assert_error(
            &with("body = \"token=${TOKEN}\""),
            8,
            "`checks[0].body`: cannot use `${VAR}`: it is not kept secret; pass secrets in `headers`",
        );
        assert_error(
            &with("verify_tls = 1"),
            8,
            "`checks[0].verify_tls`: expected true or false",
        );
    }

    #[test]
    fn tcp_and_tls_errors_name_the_field_and_line() {
        let tcp = |address: &str| with(&format!("type = \"tcp\"\naddress = \"{address}\""));
        assert_error(
            &tcp("db.internal"),
            9,
            "`checks[0].address`: `db.internal` has no port (write host:port",
        );
        assert_error(
            &tcp("db:0"),
            9,
            "`checks[0].address`: `db:0` has no valid port (`0`: 1 to 65535)",
        );
        assert_error(&tcp(":80"), 9, "`checks[0].address`: `:80` has no host");
        assert_error(
            &tcp("::1:80"),
            9,
            "`checks[0].address`: `::1:80` is not host:port (an IPv6 address goes in brackets)",
        );
        assert_error(
            &tcp("[nope]:80"),
            9,
            "`checks[0].address`: `[nope]:80` has no valid IPv6 address in brackets",
        );
        assert_error(
            &tcp("http://db:80"),
            9,
            "`checks[0].address`: `http://db:80` is not host:port",
        );
        assert_error(
            &tcp("${TOKEN}:80"),
            9,
            "`checks[0].address`: cannot use `${VAR}`: it is shown in results and the API",
        );
        assert_error(
            &with("type = \"tcp\"").replace("service = \"nn\"", "service = \"bare\""),
            6,
            "`checks[0].address`: missing, and service `bare` has no `url` to take the host and port from (give address = \"host:port\")",
        );
        assert_error(
            "[[services]]\nname = \"db\"\nurl = \"postgres://db/x\"\n[[checks]]\nservice = \"db\"\ntype = \"tls\"\n",
            4,
            "`checks[0].address`: missing, and the url of service `db` (`postgres://db/x`) names no port",
        );
        assert_error(
            &with("type = \"tls\"\nserver_name = \"h:443\""),
            9,
            "`checks[0].server_name`: `h:443` is not a host name (no port, scheme or path)",
        );
        assert_error(
            &with("type = \"tls\"\nserver_name = \"\""),
            9,
            "`checks[0].server_name`: must not be empty",
        );
    }

    #[test]
    fn cert_file_errors_name_the_field_and_line() {
        let certs = |lines: &str| with(&format!("type = \"cert_file\"\n{lines}"));
        assert_error(
            &certs(""),
            6,
            "`checks[0].paths`: missing required field (the certificate files",
        );
        assert_error(
            &certs("paths = []"),
            9,
            "`checks[0].paths`: must list at least one pattern",
        );
        assert_error(
            &certs("paths = \"/x.pem\""),
            9,
            "`checks[0].paths`: expected an array of strings, found string",
        );
        let all = errors(&certs("paths = [\"/a.pem\", \"\", 3, \"/x/***.pem\"]"));
        for expected in [
            "f.toml:9:20: error: `checks[0].paths[1]`: must not be empty",
            "f.toml:9:24: error: `checks[0].paths[2]`: expected a string, found integer",
            "f.toml:9:27: error: `checks[0].paths[3]`: `/x/***.pem` is not a glob pattern: `***` at character 4",
        ] {
            assert!(all.contains(expected), "{expected}\nnot in\n{all}");
        }
        assert_error(
            &certs("paths = [\"/x/a**/b.pem\"]"),
            9,
            "`checks[0].paths[0]`: `/x/a**/b.pem` is not a glob pattern: `**` at character 5 must be a whole path component",
        );
        assert_error(
            &certs("paths = [\"/x/[ab.pem\"]"),
            9,
            "`checks[0].paths[0]`: `/x/[ab.pem` is not a glob pattern: `[` at character 4 is not closed by `]`",
        );
    }

    #[test]
    fn a_command_check_cannot_use_variables() {
        assert_error(
            &with("type = \"command\"\ncommand = \"${UNSET}\""),
            9,
            "`checks[0].command`: cannot use `${VAR}`: the program is taken as written",
        );
    }

    #[test]
    fn a_command_check_warns_of_a_missing_program() {
        let command = |lines: &str| with(&format!("type = \"command\"\n{lines}"));
        let loaded = parse_str(
            "f.toml",
            &command("command = \"/nonexistent/probe\""),
            &|_| None,
        )
        .unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            ["f.toml:9:11: warning: `checks[0].command`: `/nonexistent/probe` does not exist"]
        );
    }

    #[test]
    fn command_errors_name_the_field_and_line() {
        let command = |lines: &str| with(&format!("type = \"command\"\n{lines}"));
        assert_error(
            &command(""),
            6,
            "`checks[0].command`: missing required field (the program to run",
        );
        assert_error(
            &command("command = \"pg_isready -h db\""),
            9,
            "`checks[0].command`: `pg_isready -h db` contains white space",
        );
        assert_error(
            &command("command = \"bin/check\""),
            9,
            "`checks[0].command`: `bin/check` must be an absolute path or a program name",
        );
        assert_error(
            &command("command = \"true\"\nargs = \"-v\""),
            10,
            "`checks[0].args`: expected an array of strings",
        );
        assert_error(
            &command("command = \"true\"\nenv = { 1X = \"v\" }"),
            10,
            "`checks[0].env`: `1X` is not an environment variable name",
        );
        assert_error(
            &command("command = \"true\"\nworkdir = \"\""),
            10,
            "`checks[0].workdir`: must not be empty",
        );
    }

    #[test]
    fn health_errors_name_the_field_and_line() {
        let all = errors("[health]\nkeep_results = \"30s\"\n");
        assert!(
            all.starts_with(
                "f.toml:2:16: error: `health.keep_results`: 30s is less than 1m, the shortest allowed"
            ),
            "{all}"
        );
        assert_error(
            "[health]\nkeep_rollups = \"30m\"\n",
            2,
            "`health.keep_rollups`: 30m is less than 1h, the shortest allowed",
        );
        assert_error(
            "[health]\nkeep_results = \"2d\"\nkeep_rollups = \"1d\"\n",
            3,
            "`health.keep_rollups`: 1d is less than `keep_results` (2d); roll-ups must be kept at least as long as the results they summarise",
        );
        assert_error(
            "[health]\nkeep_results = \"31d\"\n",
            2,
            "`health.keep_results`: 31d is more than `keep_rollups` (30d, the default); raise `keep_rollups` too",
        );
        assert_error(
            "[health]\nkeep_results = \"soon\"\n",
            2,
            "`health.keep_results`: `soon` is not a duration",
        );
        assert_error(
            "[health]\nmax_concurrent = 0\n",
            2,
            "`health.max_concurrent`: 0 is out of range (1 to 100000)",
        );
        assert_error(
            "[health]\nmax_concurrent = 100001\n",
            2,
            "`health.max_concurrent`: 100001 is out of range (1 to 100000)",
        );
        assert_error(
            "[health]\ncheck_service_urls = \"yes\"\n",
            2,
            "`health.check_service_urls`: expected true or false",
        );
        // Equal retentions are fine.
        let config = parse("[health]\nkeep_results = \"2h\"\nkeep_rollups = \"2h\"\n");
        assert_eq!(config.settings.health.keep_rollups_ms, 7_200_000);
    }

    #[test]
    fn glob_patterns_follow_the_glob_crate() {
        for ok in [
            "/etc/letsencrypt/live/*/fullchain.pem",
            "**/*.pem",
            "/a/**",
            "/a/**/b",
            "[]]",
            "[!]]x",
            "/c/[a-z]?.pem",
            "x[!a]",
            "plain.pem",
        ] {
            assert_eq!(glob_problem(ok), None, "{ok}");
        }
        for bad in [
            "***", "a**", "**a", "/a/**b", "/a/b**/", "[", "[a", "[]", "[!]", "[!a", "a[b",
        ] {
            assert!(glob_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(escape_glob("/srv/a[1]/*?"), "/srv/a[[]1[]]/[*][?]");
    }

    #[test]
    fn relative_certificate_paths_and_workdirs_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        // Glob characters in the directory's name match themselves.
        let base = dir.path().join("conf[1]");
        std::fs::create_dir(&base).unwrap();
        let path = base.join("steward.toml");
        std::fs::write(
            &path,
            "[[services]]\nname = \"s\"\n[[checks]]\nservice = \"s\"\ntype = \"cert_file\"\npaths = [\"certs/*.pem\", \"/etc/ssl/x.pem\"]\n[[checks]]\nservice = \"s\"\ntype = \"command\"\ncommand = \"true\"\nworkdir = \"jobs\"\n",
        )
        .unwrap();
        let no_env = |_: &str| None;
        let loaded = load_file(&path, &no_env).unwrap();
        let escaped = escape_glob(&base.to_string_lossy());
        assert_eq!(
            loaded.config.checks[0].probe,
            Probe::CertFile {
                paths: vec![format!("{escaped}/certs/*.pem"), "/etc/ssl/x.pem".into()]
            }
        );
        let Probe::Command(command) = &loaded.config.checks[1].probe else {
            panic!("not a command: {:?}", loaded.config.checks[1]);
        };
        assert_eq!(command.workdir, Some(base.join("jobs")));
    }

    /// Text that looks like a condition, often malformed.
    fn condition_like() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "[STATUS]",
            "[STATU]",
            "[BODY]",
            "[BODY].a",
            "[BODY].a[0]",
            "[BODY][",
            ".",
            "[RESPONSE_TIME]",
            "[CERTIFICATE_EXPIRATION]",
            "[CONNECTED]",
            "len(",
            "has(",
            "pat(",
            "any(",
            ")",
            "(",
            "]",
            "[",
            ",",
            " == ",
            "==",
            " != ",
            " < ",
            "<=",
            " > ",
            ">=",
            "200",
            "-1",
            "99999999999999999999",
            "48h",
            "true",
            "UP",
            "*",
            "\"",
            "'",
            "\\",
            "\n",
            "\t",
            "é",
            "\u{0}",
            " ",
        ]);
        prop::collection::vec(token, 0..16).prop_map(|tokens| tokens.concat())
    }

    proptest! {
        #[test]
        fn arbitrary_conditions_never_panic_and_errors_are_located(
            like in condition_like(),
            any in "(?s).{0,60}",
        ) {
            for texts in [vec![like.clone()], vec![any.clone()], vec![like.clone(), any.clone()]] {
                let array = Value::from_iter(texts.iter().map(String::as_str));
                let text = with(&format!("conditions = {array}"));
                match parse_str("f.toml", &text, &env) {
                    Ok(loaded) => {
                        prop_assert_eq!(loaded.config.checks.len(), 1);
                        prop_assert_eq!(loaded.config.checks[0].conditions.len(), texts.len());
                    }
                    Err(LoadError::Invalid(d)) => {
                        prop_assert!(d.has_errors());
                        for diagnostic in d.0 {
                            prop_assert!(diagnostic.line >= 8, "{}", diagnostic);
                            prop_assert!(diagnostic.line <= text.lines().count(), "{}", diagnostic);
                            prop_assert!(diagnostic.column >= 1, "{}", diagnostic);
                            prop_assert!(diagnostic.message.contains("`checks[0].conditions["), "{}", diagnostic);
                        }
                    }
                    Err(other) => prop_assert!(false, "unexpected {}", other),
                }
            }
        }
    }
}
