use super::*;
use crate::load::{LoadError, parse_str};
use proptest::prelude::*;
use serde_json::json;
use steward_core::alert::route::{
    DEFAULT_GROUP_INTERVAL_MS, DEFAULT_GROUP_WAIT_MS, DEFAULT_REPEAT_INTERVAL_MS,
};
use toml_edit::Value;

use crate::test_support::{assert_error, env, errors, parse};

/// A receiver's first lines (1–2) without its type: a case's own lines start on line 3;
/// the route naming it follows.
fn receiver(lines: &str) -> String {
    format!("[[alerting.receivers]]\nname = \"r\"\n{lines}\n[alerting.route]\nreceiver = \"r\"\n")
}

/// A webhook receiver `r` (lines 1–4) and the root route's first lines (5–6): a case's own
/// lines start on line 7, inside `[alerting.route]`.
fn route(lines: &str) -> String {
    format!(
        "[[alerting.receivers]]\nname = \"r\"\ntype = \"webhook\"\nurl = \"http://h/\"\n[alerting.route]\nreceiver = \"r\"\n{lines}\n"
    )
}

fn m(text: &str) -> Matcher {
    Matcher::parse(text).unwrap()
}

const FULL: &str = r##"[[queues]]
name = "platform"
kinds = ["noop", "sleep"]

[alerting]
resolve_timeout = "10m"
notification_ttl = "12h"
retention = "7d"

[[alerting.receivers]]
name = "n8n"
type = "webhook"
send_resolved = false
url = "http://127.0.0.1:5678/webhook/alerts"
headers = { Authorization = "Bearer ${TOKEN}" }
max_alerts = 50

[[alerting.receivers]]
name = "slack"
type = "slack"
template = "{{ alerts | length }} alerts"
webhook_url = "https://hooks.slack.com/services/${TOKEN}"
channel = "#ops"

[[alerting.receivers]]
name = "telegram"
type = "telegram"
bot_token = "${TOKEN}"
chat_id = -100123
api_url = "http://127.0.0.1:8081"

[[alerting.receivers]]
name = "mail"
type = "email"
to = ["ops@example.com", "oncall@example.com"]
from = "steward@example.com"
smarthost = "smtp.example.com:587"
username = "steward"
password = "${TOKEN}"
starttls = false

[alerting.route]
receiver = "n8n"
group_by = ["alertname", "service"]
group_wait = "0s"
group_interval = "1m"
repeat_interval = "2h"
remediate = { queue = "platform", kind = "noop", payload = { alert = "{{ labels.alertname }}" } }

[[alerting.route.routes]]
matchers = ["severity=critical", "service=~\"api|web\""]
receiver = "slack"
continue = true
group_by = ["..."]
group_wait = "5s"

[[alerting.route.routes.routes]]
matchers = ["team=db"]
receiver = "mail"
repeat_interval = "30m"

[[alerting.route.routes.routes.routes]]
matchers = ["env!=staging"]
remediate = { queue = "platform", kind = "sleep", payload = { seconds = 1 } }

[[alerting.route.routes]]
matchers = ["team=ops"]
receiver = "telegram"
group_by = []

[[alerting.inhibit_rules]]
source_matchers = ["severity=critical"]
target_matchers = ["severity=warning"]
equal = ["service", "alertname"]

[[alerting.inhibit_rules]]
source_matchers = ["alertname=NodeDown"]
target_matchers = ["alertname!~\"Node.*\""]
"##;

#[test]
fn a_full_example_parses_into_receivers_routes_and_rules() {
    let loaded = parse_str("f.toml", FULL, &env).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let alerting = loaded.config.alerting;
    assert_eq!(
        alerting.settings,
        AlertingSettings {
            resolve_timeout_ms: 600_000,
            notification_ttl_ms: 12 * 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
        }
    );
    assert_eq!(
        alerting.receivers,
        vec![
            ReceiverSpec {
                name: "n8n".into(),
                kind: ReceiverKind::Webhook {
                    url: Secret::new("http://127.0.0.1:5678/webhook/alerts"),
                    headers: BTreeMap::from([(
                        "Authorization".into(),
                        Secret::new("Bearer hunter2")
                    )]),
                    max_alerts: 50,
                },
                send_resolved: false,
                template: None,
            },
            ReceiverSpec {
                name: "slack".into(),
                kind: ReceiverKind::Slack {
                    webhook_url: Secret::new("https://hooks.slack.com/services/hunter2"),
                    channel: Some("#ops".into()),
                },
                send_resolved: true,
                template: Some("{{ alerts | length }} alerts".into()),
            },
            ReceiverSpec {
                name: "telegram".into(),
                kind: ReceiverKind::Telegram {
                    bot_token: Secret::new("hunter2"),
                    chat_id: "-100123".into(),
                    api_url: "http://127.0.0.1:8081".into(),
                },
                send_resolved: true,
                template: None,
            },
            ReceiverSpec {
                name: "mail".into(),
                kind: ReceiverKind::Email {
                    to: vec!["ops@example.com".into(), "oncall@example.com".into()],
                    from: "steward@example.com".into(),
                    smarthost: "smtp.example.com:587".into(),
                    username: Some("steward".into()),
                    password: Some(Secret::new("hunter2")),
                    starttls: false,
                },
                send_resolved: true,
                template: None,
            },
        ]
    );
    let expected = Route {
        receiver: Some("n8n".into()),
        matchers: vec![],
        continue_matching: false,
        group_by: Some(GroupBy::Labels(vec!["alertname".into(), "service".into()])),
        group_wait_ms: Some(0),
        group_interval_ms: Some(60_000),
        repeat_interval_ms: Some(7_200_000),
        routes: vec![
            Route {
                receiver: Some("slack".into()),
                matchers: vec![m("severity=critical"), m("service=~\"api|web\"")],
                continue_matching: true,
                group_by: Some(GroupBy::All),
                group_wait_ms: Some(5_000),
                routes: vec![Route {
                    receiver: Some("mail".into()),
                    matchers: vec![m("team=db")],
                    repeat_interval_ms: Some(1_800_000),
                    routes: vec![Route {
                        matchers: vec![m("env!=staging")],
                        ..Route::default()
                    }],
                    ..Route::default()
                }],
                ..Route::default()
            },
            Route {
                receiver: Some("telegram".into()),
                matchers: vec![m("team=ops")],
                group_by: Some(GroupBy::None),
                ..Route::default()
            },
        ],
    };
    let route = alerting.route.unwrap();
    assert_eq!(route, expected);
    // Inheritance, as the router applies it: the deepest route takes the mail receiver and
    // repeat interval of its parent, the grouping and wait of its grandparent.
    let labels = [
        ("severity", "critical"),
        ("service", "api"),
        ("team", "db"),
        ("env", "prod"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let destinations = route.destinations(&labels);
    assert_eq!(destinations.len(), 1, "{destinations:?}");
    assert_eq!(destinations[0].path, [0, 0, 0]);
    assert_eq!(destinations[0].receiver, "mail");
    assert_eq!(destinations[0].group_by, GroupBy::All);
    assert_eq!(destinations[0].group_wait_ms, 5_000);
    assert_eq!(destinations[0].group_interval_ms, 60_000);
    assert_eq!(destinations[0].repeat_interval_ms, 1_800_000);
    assert_eq!(
        alerting.remediations,
        BTreeMap::from([
            (
                vec![],
                Remediation {
                    queue: "platform".into(),
                    kind: "noop".into(),
                    payload: json!({ "alert": "{{ labels.alertname }}" }),
                }
            ),
            (
                vec![0, 0, 0],
                Remediation {
                    queue: "platform".into(),
                    kind: "sleep".into(),
                    payload: json!({ "seconds": 1 }),
                }
            ),
        ])
    );
    assert_eq!(
        alerting.inhibit_rules,
        vec![
            InhibitRule {
                source: vec![m("severity=critical")],
                target: vec![m("severity=warning")],
                equal: vec!["service".into(), "alertname".into()],
            },
            InhibitRule {
                source: vec![m("alertname=NodeDown")],
                target: vec![m("alertname!~\"Node.*\"")],
                equal: vec![],
            },
        ]
    );
}

#[test]
fn defaults_when_left_out() {
    assert_eq!(parse("[server]\n").alerting, AlertingSpec::default());
    assert_eq!(parse("[alerting]\n").alerting, AlertingSpec::default());
    let config = parse(
        "[[alerting.receivers]]\nname = \"t\"\ntype = \"telegram\"\nbot_token = \"x\"\nchat_id = \"@ops\"\n[[alerting.receivers]]\nname = \"m\"\ntype = \"email\"\nto = [\"a@b\"]\nfrom = \"s@b\"\nsmarthost = \"localhost:25\"\n[alerting.route]\nreceiver = \"t\"\n[[alerting.route.routes]]\nreceiver = \"m\"\n",
    );
    let alerting = config.alerting;
    assert_eq!(alerting.settings, AlertingSettings::default());
    assert_eq!(
        alerting.receivers[0].kind,
        ReceiverKind::Telegram {
            bot_token: Secret::new("x"),
            chat_id: "@ops".into(),
            api_url: DEFAULT_TELEGRAM_API.into(),
        }
    );
    assert!(alerting.receivers[0].send_resolved);
    assert_eq!(alerting.receivers[0].template, None);
    assert_eq!(
        alerting.receivers[1].kind,
        ReceiverKind::Email {
            to: vec!["a@b".into()],
            from: "s@b".into(),
            smarthost: "localhost:25".into(),
            username: None,
            password: None,
            starttls: true,
        }
    );
    assert_eq!(
        alerting.route,
        Some(Route {
            receiver: Some("t".into()),
            routes: vec![Route {
                receiver: Some("m".into()),
                ..Route::default()
            }],
            ..Route::default()
        })
    );
    assert!(alerting.remediations.is_empty());
    assert!(alerting.inhibit_rules.is_empty());
    // The router's defaults fill what the root leaves out.
    let d = &alerting.route.unwrap().destinations(&Default::default())[0];
    assert_eq!(d.group_by, GroupBy::None);
    assert_eq!(d.group_wait_ms, DEFAULT_GROUP_WAIT_MS);
    assert_eq!(d.group_interval_ms, DEFAULT_GROUP_INTERVAL_MS);
    assert_eq!(d.repeat_interval_ms, DEFAULT_REPEAT_INTERVAL_MS);
    let webhook = parse(&route("")).alerting;
    assert_eq!(
        webhook.receivers[0].kind,
        ReceiverKind::Webhook {
            url: Secret::new("http://h/"),
            headers: BTreeMap::new(),
            max_alerts: 0,
        }
    );
}

#[test]
fn secrets_are_resolved_but_never_printed() {
    let all = errors(&receiver(
        "type = \"slack\"\nwebhook_url = \"${TOKEN}\"\nchannel = \"${TOKEN}\"",
    ));
    assert!(!all.contains("hunter2"), "{all}");
    assert!(
        all.contains(
            "f.toml:4:15: error: `alerting.receivers[0].webhook_url`: `${TOKEN}` is not a URL"
        ),
        "{all}"
    );
    assert!(
        all.contains("f.toml:5:11: error: `alerting.receivers[0].channel`: cannot use `${VAR}`"),
        "{all}"
    );
    assert_error(
        &receiver("type = \"webhook\"\nurl = \"http://h/${UNSET}\""),
        4,
        "`alerting.receivers[0].url`: environment variable `UNSET` is not set",
    );
    let shown = format!("{:?}", parse(FULL).alerting);
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn values_shown_in_the_clear_refuse_environment_variables() {
    for (lines, line, field) in [
        (
            "type = \"telegram\"\nbot_token = \"x\"\nchat_id = \"${TOKEN}\"",
            5,
            "chat_id",
        ),
        (
            "type = \"telegram\"\nbot_token = \"x\"\nchat_id = 1\napi_url = \"http://${TOKEN}/\"",
            6,
            "api_url",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"${TOKEN}\"\nsmarthost = \"h:25\"",
            5,
            "from",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"s@b\"\nsmarthost = \"${TOKEN}:25\"",
            6,
            "smarthost",
        ),
        (
            "type = \"email\"\nto = [\"${TOKEN}@b\"]\nfrom = \"s@b\"\nsmarthost = \"h:25\"",
            4,
            "to[0]",
        ),
    ] {
        assert_error(
            &receiver(lines),
            line,
            &format!("`alerting.receivers[0].{field}`: cannot use `${{VAR}}`"),
        );
    }
    assert_error(
        &route("[[alerting.route.routes]]\nmatchers = [\"team=${TOKEN}\"]"),
        8,
        "`alerting.route.routes[0].matchers[0]`: cannot use `${VAR}`",
    );
    assert_error(
        &route("").replace("receiver = \"r\"", "receiver = \"${TOKEN}\""),
        6,
        "`alerting.route.receiver`: names and references cannot use `${VAR}`",
    );
}

#[test]
fn unknown_keys_are_errors() {
    let all = errors(&route("").replace(
        "[alerting.route]",
        "[alerting]\nresolve = \"5m\"\n[alerting.route]",
    ));
    assert!(
        all.starts_with(
            "f.toml:6:1: error: unknown key `alerting.resolve`: expected one of: resolve_timeout"
        ),
        "{all}"
    );
    assert_error(
        &receiver("type = \"webhook\"\nurl = \"http://h/\"\nsend_resolve = true"),
        5,
        "unknown key `alerting.receivers[0].send_resolve`: did you mean `send_resolved`?",
    );
    assert_error(
        &route("continu = true"),
        7,
        "unknown key `alerting.route.continu`: did you mean `continue`?",
    );
    assert_error(
        &route("[[alerting.route.routes]]\nmatcher = [\"a=b\"]"),
        8,
        "unknown key `alerting.route.routes[0].matcher`: did you mean `matchers`?",
    );
    assert_error(
        &route("remediate = { queue = \"q\", kinds = \"noop\" }"),
        7,
        "unknown key `alerting.route.remediate.kinds`: did you mean `kind`?",
    );
    assert_error(
        "[[alerting.inhibit_rules]]\nsource_matchers = [\"a=b\"]\ntarget_matchers = [\"a=c\"]\nequals = [\"x\"]\n",
        4,
        "unknown key `alerting.inhibit_rules[0].equals`: did you mean `equal`?",
    );
    assert_error(
        "[alertng]\n",
        1,
        "unknown key `alertng`: did you mean `alerting`?",
    );
    assert_error(
        "alerting = 1\n",
        1,
        "`alerting`: expected a table, found integer",
    );
}

#[test]
fn routes_must_name_declared_receivers() {
    let all = errors(&route("[[alerting.route.routes]]\nreceiver = \"rr\""));
    assert!(
        all.starts_with(
            "f.toml:8:12: error: `alerting.route.routes[0].receiver`: unknown receiver `rr` (not declared in `[[alerting.receivers]]`); did you mean `r`?"
        ),
        "{all}"
    );
    assert_error(
        "[alerting.route]\nreceiver = \"pager\"\n",
        2,
        "`alerting.route.receiver`: unknown receiver `pager` (not declared in `[[alerting.receivers]]`); no `[[alerting.receivers]]` are declared",
    );
    assert_error(
        &route("[[alerting.route.routes]]\nreceiver = \"zzzzzzzz\""),
        8,
        "unknown receiver `zzzzzzzz` (not declared in `[[alerting.receivers]]`); declared receivers: r",
    );
    assert_error(
        "[[alerting.receivers]]\nname = \"r\"\ntype = \"webhook\"\nurl = \"http://h/\"\n[alerting.route]\ngroup_wait = \"1s\"\n",
        5,
        "`alerting.route.receiver`: missing required field",
    );
    // A receiver with problems of its own is still declared: routes naming it say nothing.
    let all = errors(&receiver("type = \"webhook\""));
    assert_eq!(all.lines().count(), 1, "{all}");
    assert!(
        all.starts_with("f.toml:1:1: error: `alerting.receivers[0].url`: missing required field"),
        "{all}"
    );
}

#[test]
fn escalations_maintenance_windows_and_the_external_url_are_read() {
    let text = format!(
        "{}[alerting]\nexternal_url = \"https://steward.example.com/\"\n[[alerting.maintenance]]\nname = \"sunday\"\nmatchers = [\"env=prod\"]\ncron = \"0 2 * * SUN\"\ntimezone = \"Europe/Berlin\"\nduration = \"2h\"\n",
        route("escalate = { after = \"15m\", receiver = \"r\" }")
    );
    let config = parse(&text);
    let alerting = &config.alerting;
    assert_eq!(
        alerting.escalations.get(&Vec::new()),
        Some(&Escalation {
            after_ms: 900_000,
            receiver: "r".into()
        })
    );
    assert_eq!(
        alerting.external_url.as_deref(),
        Some("https://steward.example.com")
    );
    let window = &alerting.maintenance[0];
    assert_eq!(window.name, "sunday");
    assert_eq!(window.duration_ms, 7_200_000);
    assert_eq!(window.matchers, vec![m("env=prod")]);
    // Sunday 2026-11-29 03:00 in Berlin (02:00 UTC) is inside; 05:00 is not.
    assert!(window.occurrence_at(1_795_917_600_000).is_some());
    assert!(
        window
            .occurrence_at(1_795_917_600_000 + 3 * 3_600_000)
            .is_none()
    );
}

#[test]
fn a_template_that_does_not_compile_is_located() {
    assert_error(
        "[[alerting.receivers]]\nname = \"r\"\ntype = \"slack\"\nwebhook_url = \"https://hooks.slack.com/x\"\ntemplate = \"{{ alerts | nosuchfilter }}\"\n[alerting.route]\nreceiver = \"r\"\n",
        5,
        "`alerting.receivers[0].template`:",
    );
}

#[test]
fn bad_escalations_and_windows_are_located() {
    assert_error(
        &route("escalate = { after = \"15m\", receiver = \"pager\" }"),
        7,
        "`alerting.route.escalate.receiver`: unknown receiver `pager`",
    );
    assert_error(
        &route("escalate = { receiver = \"r\" }"),
        7,
        "`alerting.route.escalate.after`: missing required field",
    );
    assert_error(
        "[[alerting.maintenance]]\nname = \"w\"\ncron = \"0 2 * * *\"\nduration = \"8d\"\n",
        4,
        "`alerting.maintenance[0].duration`: at most 7 days",
    );
    assert_error(
        "[[alerting.maintenance]]\nname = \"w\"\ncron = \"0 2 * *\"\nduration = \"1h\"\n",
        3,
        "`alerting.maintenance[0].cron`",
    );
    assert_error(
        "[[alerting.maintenance]]\nname = \"w\"\nduration = \"1h\"\n",
        1,
        "`alerting.maintenance[0].cron`: missing required field",
    );
    assert_error(
        "[alerting]\nexternal_url = \"nope\"\n",
        2,
        "`alerting.external_url`: `nope` is not a URL",
    );
}

#[test]
fn an_unused_receiver_is_a_warning() {
    let text = format!(
        "{}[[alerting.receivers]]\nname = \"spare\"\ntype = \"webhook\"\nurl = \"http://h/\"\n",
        route("")
    );
    let loaded = parse_str("f.toml", &text, &env).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(
        loaded.warnings[0].to_string(),
        "f.toml:9:8: warning: receiver `spare` is used by no route in `alerting.route`, so it is never notified"
    );
    assert_eq!(loaded.config.alerting.receivers.len(), 2);
}

#[test]
fn receivers_without_a_route_are_an_error() {
    let all =
        errors("[[alerting.receivers]]\nname = \"r\"\ntype = \"webhook\"\nurl = \"http://h/\"\n");
    assert_eq!(
        all,
        "f.toml:2:8: error: `alerting.route`: receivers are declared but `alerting.route` is missing (add `[alerting.route]` with `receiver = \"…\"`)"
    );
}

#[test]
fn duplicate_receivers_point_at_the_first() {
    let text = format!(
        "{}[[alerting.receivers]]\nname = \"r\"\ntype = \"slack\"\nwebhook_url = \"http://h/\"\n",
        route("")
    );
    assert_error(
        &text,
        9,
        "`alerting.receivers[1].name`: duplicate receiver `r` (first declared at f.toml:2:8)",
    );
    assert_error(
        &receiver("type = \"webhook\"\nurl = \"http://h/\"")
            .replace("name = \"r\"", "name = \"a b\""),
        2,
        "`alerting.receivers[0].name`: `a b` is not a valid name",
    );
}

#[test]
fn keys_of_another_type_are_errors() {
    let all = errors(&receiver(
        "type = \"webhook\"\nurl = \"http://h/\"\nchat_id = \"1\"",
    ));
    assert!(
        all.starts_with(
            "f.toml:5:1: error: `alerting.receivers[0].chat_id`: only goes with type = \"telegram\" (this receiver's type is \"webhook\")"
        ),
        "{all}"
    );
    assert_error(
        &receiver("type = \"telegram\"\nbot_token = \"x\"\nchat_id = 1\nstarttls = true"),
        6,
        "`alerting.receivers[0].starttls`: only goes with type = \"email\"",
    );
    assert_error(
        &receiver("type = \"slack\"\nwebhook_url = \"http://h/\"\nurl = \"http://h/\""),
        5,
        "`alerting.receivers[0].url`: only goes with type = \"webhook\"",
    );
    assert_error(
        &receiver("type = \"pagerduty\""),
        3,
        "`alerting.receivers[0].type`: `pagerduty` is not one of: webhook, slack, telegram, email",
    );
    assert_error(
        &receiver("url = \"http://h/\""),
        1,
        "`alerting.receivers[0].type`: missing required field (\"webhook\", \"slack\", \"telegram\" or \"email\")",
    );
}

#[test]
fn required_fields_of_each_type() {
    for (lines, field) in [
        ("type = \"webhook\"", "url"),
        ("type = \"slack\"", "webhook_url"),
        ("type = \"telegram\"\nchat_id = 1", "bot_token"),
        ("type = \"telegram\"\nbot_token = \"x\"", "chat_id"),
        (
            "type = \"email\"\nfrom = \"a@b\"\nsmarthost = \"h:25\"",
            "to",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nsmarthost = \"h:25\"",
            "from",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"a@b\"",
            "smarthost",
        ),
    ] {
        assert_error(
            &receiver(lines),
            1,
            &format!("`alerting.receivers[0].{field}`: missing required field"),
        );
    }
    assert_error(
        &receiver("type = \"telegram\"\nbot_token = \"\"\nchat_id = 1"),
        4,
        "`alerting.receivers[0].bot_token`: must not be empty",
    );
    assert_error(
        &receiver("type = \"email\"\nto = []\nfrom = \"a@b\"\nsmarthost = \"h:25\""),
        4,
        "`alerting.receivers[0].to`: must not be empty",
    );
}

#[test]
fn receiver_values_are_checked() {
    for (lines, line, expected) in [
        (
            "type = \"webhook\"\nurl = \"ftp://h/\"",
            4,
            "`alerting.receivers[0].url`: `ftp://h/` is not an http:// or https:// URL",
        ),
        (
            "type = \"webhook\"\nurl = \"nope\"",
            4,
            "`alerting.receivers[0].url`: `nope` is not a URL",
        ),
        (
            "type = \"slack\"\nwebhook_url = \"http://\"",
            4,
            "`alerting.receivers[0].webhook_url`: `http://` is not a URL",
        ),
        (
            "type = \"telegram\"\nbot_token = \"x\"\nchat_id = 1\napi_url = \"tg://x\"",
            6,
            "`alerting.receivers[0].api_url`: `tg://x` is not an http:// or https:// URL",
        ),
        (
            "type = \"telegram\"\nbot_token = \"x\"\nchat_id = true",
            5,
            "`alerting.receivers[0].chat_id`: expected a string, found boolean",
        ),
        (
            "type = \"webhook\"\nurl = \"http://h/\"\nmax_alerts = 10001",
            5,
            "`alerting.receivers[0].max_alerts`: 10001 is out of range (0 to 10000)",
        ),
        (
            "type = \"webhook\"\nurl = \"http://h/\"\nheaders = { \"a b\" = \"x\" }",
            5,
            "`alerting.receivers[0].headers`: `a b` is not a header name",
        ),
        (
            "type = \"webhook\"\nurl = \"http://h/\"\ntemplate = \"\"",
            5,
            "`alerting.receivers[0].template`: must not be empty",
        ),
        (
            "type = \"webhook\"\nurl = \"http://h/\"\nsend_resolved = \"yes\"",
            5,
            "`alerting.receivers[0].send_resolved`: expected true or false",
        ),
        (
            "type = \"slack\"\nwebhook_url = \"http://h/\"\nchannel = \"\"",
            5,
            "`alerting.receivers[0].channel`: must not be empty",
        ),
        (
            "type = \"email\"\nto = [\"ops\"]\nfrom = \"a@b\"\nsmarthost = \"h:25\"",
            4,
            "`alerting.receivers[0].to[0]`: `ops` is not an email address",
        ),
        (
            "type = \"email\"\nto = [\"a@b\", 1]\nfrom = \"a@b\"\nsmarthost = \"h:25\"",
            4,
            "`alerting.receivers[0].to[1]`: expected a string, found integer",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"a@b@c\"\nsmarthost = \"h:25\"",
            5,
            "`alerting.receivers[0].from`: `a@b@c` is not an email address",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"@b\"\nsmarthost = \"h:25\"",
            5,
            "`alerting.receivers[0].from`: `@b` is not an email address",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"a@b\"\nsmarthost = \"smtp\"",
            6,
            "`alerting.receivers[0].smarthost`: `smtp` is not `host:port`",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"a@b\"\nsmarthost = \"smtp:0\"",
            6,
            "`alerting.receivers[0].smarthost`: `smtp:0`: `0` is not a port",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"a@b\"\nsmarthost = \":25\"",
            6,
            "`alerting.receivers[0].smarthost`: `:25` has no valid host",
        ),
        (
            "type = \"email\"\nto = [\"a@b\"]\nfrom = \"a@b\"\nsmarthost = \"h:25\"\npassword = \"\"",
            7,
            "`alerting.receivers[0].password`: must not be empty",
        ),
    ] {
        assert_error(&receiver(lines), line, expected);
    }
}

#[test]
fn route_rules() {
    assert_error(
        &route("matchers = [\"a=b\"]"),
        7,
        "`alerting.route.matchers`: the root route takes every alert; put matchers on its `routes`",
    );
    assert_error(
        &route("continue = true"),
        7,
        "`alerting.route.continue`: the root route has no siblings to continue to",
    );
    assert_error(
        &route("group_by = [\"service\", \"...\"]"),
        7,
        "`alerting.route.group_by`: `...` (every label, one group per alert) goes alone",
    );
    assert_error(
        &route("group_by = [\"service\", \"a-b\"]"),
        7,
        "`alerting.route.group_by[1]`: `a-b` is not a label name",
    );
    assert_error(
        &route("[[alerting.route.routes]]\ncontinue = 1"),
        8,
        "`alerting.route.routes[0].continue`: expected true or false, found integer",
    );
    // Duplicate group_by labels are merged.
    assert_eq!(
        parse(&route("group_by = [\"a\", \"b\", \"a\"]"))
            .alerting
            .route
            .unwrap()
            .group_by,
        Some(GroupBy::Labels(vec!["a".into(), "b".into()]))
    );
}

#[test]
fn matcher_errors_keep_the_matchers_own_text() {
    let all = errors(&route(
        "[[alerting.route.routes]]\nmatchers = [\"a=b\", \"service=~(\"]",
    ));
    assert!(
        all.starts_with(
            "f.toml:8:20: error: `alerting.route.routes[0].matchers[1]`: `service=~(`: not a regular expression"
        ),
        "{all}"
    );
    assert_error(
        &route("[[alerting.route.routes]]\nmatchers = [\"severity\"]"),
        8,
        "`alerting.route.routes[0].matchers[0]`: `severity`: no operator (=, !=, =~ or !~)",
    );
    assert_error(
        &route("[[alerting.route.routes]]\nmatchers = \"a=b\""),
        8,
        "`alerting.route.routes[0].matchers`: expected an array of strings, found string",
    );
}

#[test]
fn routes_nest_at_most_sixteen_levels() {
    let nested = |levels: usize| {
        let mut text = route("");
        for depth in 1..=levels {
            text.push_str(&format!(
                "[[alerting.route{}]]\nmatchers = [\"level={depth}\"]\n",
                ".routes".repeat(depth)
            ));
        }
        text
    };
    let mut route = parse(&nested(16)).alerting.route.unwrap();
    for _ in 0..16 {
        route = route.routes.remove(0);
    }
    assert!(route.routes.is_empty());
    let all = errors(&nested(17));
    assert_eq!(all.lines().count(), 1, "{all}");
    // Reported at the `routes` key of the 17th level's header (after `route`'s empty line 7).
    let line = 8 + 2 * 16;
    let column = "[[alerting.route".len() + 16 * ".routes".len() + 2;
    assert!(
        all.starts_with(&format!(
            "f.toml:{line}:{column}: error: `alerting.route{}`: routes nest at most 16 levels below `alerting.route`",
            ".routes[0]".repeat(16) + ".routes"
        )),
        "{all}"
    );
}

#[test]
fn remediation_tasks_are_checked_as_schedules_are() {
    let with_queue = |lines: &str| {
        format!(
            "[[queues]]\nname = \"platform\"\nkinds = [\"noop\"]\nmax_payload_bytes = 20\n{}",
            route(lines)
        )
    };
    // The route's lines start on line 11.
    assert_error(
        &with_queue("remediate = { queue = \"platfrom\", kind = \"noop\" }"),
        11,
        "`alerting.route.remediate.queue`: unknown queue `platfrom` (not declared in `[[queues]]`); did you mean `platform`?",
    );
    assert_error(
        &with_queue("remediate = { queue = \"platform\", kind = \"sleep\" }"),
        11,
        "`alerting.route.remediate.kind`: queue `platform` does not run `sleep` tasks (allowed: noop)",
    );
    assert_error(
        &with_queue("remediate = { kind = \"noop\" }"),
        11,
        "`alerting.route.remediate.queue`: missing required field",
    );
    assert_error(
        &with_queue(
            "remediate = { queue = \"platform\", kind = \"noop\", payload = { text = \"more than twenty bytes\" } }",
        ),
        11,
        "`alerting.route.remediate.payload`: 33 bytes of JSON; queue `platform` accepts at most 20",
    );
    assert_error(
        &with_queue("remediate = \"noop\""),
        11,
        "`alerting.route.remediate`: expected a table, found string",
    );
    assert_error(
        &route("[[alerting.route.routes]]\nremediate = { queue = \"q\", kind = \"noop\" }"),
        8,
        "`alerting.route.routes[0].remediate.queue`: unknown queue `q` (not declared in `[[queues]]`); no `[[queues]]` are declared",
    );
    let config = parse(&with_queue(
        "[[alerting.route.routes]]\n[[alerting.route.routes]]\nremediate = { queue = \"platform\", kind = \"noop\" }",
    ));
    assert_eq!(
        config.alerting.remediations,
        BTreeMap::from([(
            vec![1],
            Remediation {
                queue: "platform".into(),
                kind: "noop".into(),
                payload: json!({}),
            }
        )])
    );
}

#[test]
fn inhibit_rules_are_checked() {
    let rule = |lines: &str| format!("[[alerting.inhibit_rules]]\n{lines}\n");
    assert_error(
        &rule("target_matchers = [\"a=b\"]"),
        1,
        "`alerting.inhibit_rules[0].source_matchers`: missing required field",
    );
    assert_error(
        &rule("source_matchers = [\"a=b\"]\ntarget_matchers = []"),
        3,
        "`alerting.inhibit_rules[0].target_matchers`: must not be empty",
    );
    assert_error(
        &rule("source_matchers = [\"a=b\"]\ntarget_matchers = [\"1a=b\"]"),
        3,
        "`alerting.inhibit_rules[0].target_matchers[0]`: `1a=b`: `1a` is not a label name",
    );
    assert_error(
        &rule(
            "source_matchers = [\"a=b\"]\ntarget_matchers = [\"a=c\"]\nequal = [\"ok\", \"not-ok\"]",
        ),
        4,
        "`alerting.inhibit_rules[0].equal[1]`: `not-ok` is not a label name",
    );
    assert_error(
        &rule("source_matchers = [\"a=b\"]\ntarget_matchers = [\"a=c\"]\nequal = [\"...\"]"),
        4,
        "`alerting.inhibit_rules[0].equal`: `...` is not a label name",
    );
    // Rules need no receivers or route.
    assert_eq!(
        parse(&rule(
            "source_matchers = [\"a=b\"]\ntarget_matchers = [\"a=c\"]"
        ))
        .alerting
        .inhibit_rules
        .len(),
        1
    );
}

#[test]
fn durations_name_the_field_and_bounds() {
    let settings = |line: &str| format!("[alerting]\n{line}\n");
    assert_error(
        &settings("resolve_timeout = \"500ms\""),
        2,
        "`alerting.resolve_timeout`: 500ms is less than 1s, the shortest allowed",
    );
    assert_error(
        &settings("notification_ttl = \"30s\""),
        2,
        "`alerting.notification_ttl`: 30s is less than 1m, the shortest allowed",
    );
    assert_error(
        &settings("retention = \"59m\""),
        2,
        "`alerting.retention`: 59m is less than 1h, the shortest allowed",
    );
    assert_error(
        &settings("retention = \"forever\""),
        2,
        "`alerting.retention`: `forever` is not a duration",
    );
    assert_error(
        &settings("retention = \"4000d\""),
        2,
        "`alerting.retention`: `4000d` is too long (at most 3650 days)",
    );
    assert_error(
        &route("group_interval = \"500ms\""),
        7,
        "`alerting.route.group_interval`: 500ms is less than 1s, the shortest allowed",
    );
    assert_error(
        &route("repeat_interval = \"30s\""),
        7,
        "`alerting.route.repeat_interval`: 30s is less than 1m, the shortest allowed",
    );
    assert_error(
        &route("[[alerting.route.routes]]\ngroup_wait = 5"),
        8,
        "`alerting.route.routes[0].group_wait`: expected a duration as a string",
    );
    assert_eq!(
        parse(&route("group_wait = \"0s\""))
            .alerting
            .route
            .unwrap()
            .group_wait_ms,
        Some(0)
    );
}

/// Text that looks like a matcher, often malformed.
fn matcher_like() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "a", "severity", "_x", "1", "=", "!=", "=~", "!~", "!", "~", "\"", "\\", "\\\"", "(", ")",
        "[", "|", ".*", "+", "?", "{", "}", " ", "é", "\n", "${X}", "$", "\u{0}",
    ]);
    prop::collection::vec(token, 0..12).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn arbitrary_matchers_never_panic_and_errors_are_located(
        built in matcher_like(),
        any in "(?s).{0,40}",
    ) {
        for text in [&built, &any] {
            let quoted = Value::from(text.as_str()).to_string();
            let source = route(&format!(
                "[[alerting.route.routes]]\nmatchers = [{quoted}]\n[[alerting.inhibit_rules]]\nsource_matchers = [{quoted}]\ntarget_matchers = [\"a=b\"]"
            ));
            match parse_str("f.toml", &source, &env) {
                Ok(loaded) => {
                    let route = loaded.config.alerting.route.unwrap();
                    prop_assert_eq!(route.routes[0].matchers.len(), 1);
                }
                Err(LoadError::Invalid(d)) => {
                    for diagnostic in d.0 {
                        // A string with new lines may be written over several lines.
                        prop_assert!(diagnostic.line >= 8, "{}", diagnostic);
                        prop_assert!(diagnostic.line <= source.lines().count(), "{}", diagnostic);
                        prop_assert!(diagnostic.message.contains("matchers[0]`"), "{}", diagnostic);
                    }
                }
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }
    }
}
