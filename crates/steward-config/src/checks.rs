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

use crate::readers::{
    TypedKeys, literal, name_field, read_command, read_env, read_headers, read_workdir,
    warn_unless_runnable,
};
use crate::walk::{Cx, Fields, Span, Spanned, did_you_mean, is_name, shown_ms, url_problem};

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
/// Every key a check may have, and which types take which.
const KEYS: TypedKeys<ProbeKind> = TypedKeys {
    common: COMMON_KEYS,
    types: &[
        (ProbeKind::Http, HTTP_KEYS),
        (ProbeKind::Tcp, TCP_KEYS),
        (ProbeKind::Tls, TLS_KEYS),
        (ProbeKind::CertFile, CERT_FILE_KEYS),
        (ProbeKind::Command, COMMAND_KEYS),
    ],
};
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

/// What checks and the fleet need to know of a declared `[[services]]` entry.
pub(crate) struct ServiceSite {
    /// Its name.
    pub name: String,
    /// Where its name is written.
    pub name_span: Span,
    /// How messages name its `name` field (`services[2].name`).
    pub name_field: String,
    /// Its `node`, if it names one.
    pub node: Option<Spanned<String>>,
    /// How messages name its `node` field (`services[2].node`).
    pub node_field: String,
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
    let keys = KEYS.all();
    let mut seen: HashMap<String, (Span, Named)> = HashMap::new();
    let mut checked_services: HashSet<String> = HashSet::new();
    let mut checks = Vec::new();
    for (i, (table, span)) in root.tables(cx, "checks").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("checks[{i}]"), span, &keys);
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
        did_you_mean(&name.value, &known)
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

/// Reports each key written that belongs to other types than `kind`.
fn foreign_keys(cx: &mut Cx<'_>, t: &Fields<'_>, kind: ProbeKind) {
    let default = if t.item("type").is_none() {
        ", the default"
    } else {
        ""
    };
    KEYS.report_foreign(cx, t, kind, |owners| {
        format!("only goes with type = {owners} (this check's type is \"{kind}\"{default})")
    });
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
mod tests;
