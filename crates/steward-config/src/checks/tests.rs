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
                headers: BTreeMap::from([("Authorization".into(), Secret::new("Bearer hunter2"))]),
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
    let config =
        parse("[[services]]\nname = \"nn\"\nurl = \"http://h:1/\"\n[[checks]]\nservice = \"nn\"\n");
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
