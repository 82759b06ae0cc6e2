//! The dashboard's alert, audit and key pages over HTTP, against the real binary: alerts listed
//! by what they need (an inhibited one with what inhibits it), acknowledged with a note,
//! silenced and the silence expired, all through the forms; the audit trail filtered; what a
//! viewer and a scoped admin are shown and refused; keys created (the secret shown once) and
//! revoked.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::browser::{Browser, hidden, location};
use support::receiver::Receiver;
use support::{Daemon, eventually};

/// A daemon whose alerts go to `receiver`, where a firing `ApiDown` inhibits the warnings of
/// its service.
fn start(dir: &Path, receiver: &Receiver) -> Daemon {
    let config = format!(
        r#"
[[workspaces]]
key = "ops"

[[alerting.receivers]]
name = "hook"
type = "webhook"
url = "{hook}"

[alerting.route]
receiver = "hook"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"

[[alerting.inhibit_rules]]
source_matchers = ["alertname=ApiDown"]
target_matchers = ["severity=warning"]
equal = ["service"]
"#,
        hook = receiver.url("/hook"),
    );
    let path = dir.join("steward.toml");
    std::fs::write(&path, config).unwrap();
    Daemon::start_on_sqlite(dir, &path, &[])
}

/// Posts `ApiDown` (critical) and `ApiSlow` (a warning of the same service, so inhibited) with
/// the daemon's admin key; answers `ApiDown`'s fingerprint.
fn post_alerts(daemon: &Daemon) -> String {
    let body = json!({"alerts": [
        {"labels": {"alertname": "ApiDown", "service": "api", "severity": "critical"},
         "annotations": {"summary": "The API answers nothing"}},
        {"labels": {"alertname": "ApiSlow", "service": "api", "severity": "warning"}},
    ]});
    let response = daemon.send(Method::POST, "/api/v1/alerts", Some(body));
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
    fingerprint(daemon, "ApiDown")
}

/// The fingerprint of the firing alert named `name`.
fn fingerprint(daemon: &Daemon, name: &str) -> String {
    let alerts = daemon.get_json("/api/v1/alerts?state=firing");
    alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .unwrap_or_else(|| panic!("no firing {name}: {alerts}"))["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The part of `html` from the element with `id` to the end of its section.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no section {id} in:\n{html}"));
    let end = html[start..]
        .find("</section>")
        .map_or(html.len(), |e| start + e);
    &html[start..end]
}

/// The silences in force, as the API lists them.
fn silences(daemon: &Daemon) -> Vec<Value> {
    daemon.get_json("/api/v1/silences")["silences"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn an_operator_acknowledges_silences_and_expires_through_the_alert_pages() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let daemon = start(dir.path(), &receiver);
    let api_down = post_alerts(&daemon);
    let api_slow = fingerprint(&daemon, "ApiSlow");
    let mut browser = Browser::new(&daemon.url);
    assert_eq!(
        browser.sign_in(daemon.key.as_deref().unwrap()).status(),
        303
    );

    // Firing and not acknowledged; the warning is inhibited, and says by what.
    let list = browser.page("/alerts");
    let firing = section(&list, "firing");
    assert!(
        firing.contains(&format!("data-alert=\"{api_down}\"")),
        "{firing}"
    );
    assert!(firing.contains("The API answers nothing"));
    assert!(
        firing.contains("▲</span> critical"),
        "severity by shape too"
    );
    assert!(!firing.contains("ApiSlow"));
    let muted = section(&list, "muted");
    assert!(
        muted.contains(&format!("data-alert=\"{api_slow}\"")),
        "{muted}"
    );
    assert!(
        muted.contains(&format!(
            "inhibited by <a href=\"/alerts/{api_down}\">ApiDown</a>"
        )),
        "{muted}"
    );
    assert!(list.contains("<time datetime=\""));

    // The notification about it is on its page, with its attempts.
    eventually(Duration::from_secs(30), "a delivered notification", || {
        let page = browser.page(&format!("/alerts/{api_down}"));
        page.contains("data-notification=") && page.contains("delivered")
    });
    let detail = browser.page(&format!("/alerts/{api_down}"));
    assert!(detail.contains("Attempts of notification"), "{detail}");
    assert!(detail.contains("<th scope=\"row\">service</th><td><code>api</code>"));
    assert!(detail.contains("no: notified as usual"), "{detail}");

    // Acknowledged from the list with a note.
    let csrf = hidden(&list, "csrf");
    let acked = browser.post(
        &format!("/alerts/{api_down}/ack"),
        &[
            ("csrf", &csrf),
            ("note", "restarting the API"),
            ("back", "list"),
        ],
    );
    assert_eq!(acked.status(), 303);
    assert_eq!(location(&acked), "/alerts");
    let list = browser.page("/alerts");
    assert!(!section(&list, "firing").contains(&api_down));
    let acknowledged = section(&list, "acknowledged");
    assert!(acknowledged.contains(&api_down), "{acknowledged}");
    assert!(acknowledged.contains("<q data-ack-note>restarting the API</q>"));
    let detail = browser.page(&format!("/alerts/{api_down}"));
    assert!(detail.contains("<q data-ack-note>restarting the API</q>"));

    // Silenced from its page: a duration not offered is refused, then an hour.
    let odd = browser.post(
        &format!("/alerts/{api_down}/silence"),
        &[("csrf", &csrf), ("duration", "99y"), ("comment", "x")],
    );
    assert_eq!(odd.status(), 400);
    let silenced = browser.post(
        &format!("/alerts/{api_down}/silence"),
        &[
            ("csrf", &csrf),
            ("duration", "1h"),
            ("comment", "deploying a fix"),
        ],
    );
    assert_eq!(silenced.status(), 303);
    assert_eq!(location(&silenced), format!("/alerts/{api_down}"));
    let listed = silences(&daemon);
    assert_eq!(listed.len(), 1);
    let id = listed[0]["id"].as_i64().unwrap();
    let matchers: Vec<&str> = listed[0]["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        matchers,
        [
            "alertname=\"ApiDown\"",
            "service=\"api\"",
            "severity=\"critical\""
        ]
    );
    let detail = browser.page(&format!("/alerts/{api_down}"));
    assert!(
        detail.contains(&format!("silenced by silence {id}: deploying a fix")),
        "{detail}"
    );
    let list = browser.page("/alerts");
    assert!(section(&list, "muted").contains(&format!("href=\"#silence-{id}\"")));
    let listed_silences = section(&list, "silences");
    assert!(listed_silences.contains(&format!("data-silence=\"{id}\"")));
    assert!(listed_silences.contains("deploying a fix"));
    assert!(
        listed_silences.contains("1 firing alert<"),
        "{listed_silences}"
    );

    // Expired from the list: back to acknowledged, no silence left.
    let expired = browser.post(&format!("/silences/{id}/expire"), &[("csrf", &csrf)]);
    assert_eq!(expired.status(), 303);
    assert_eq!(location(&expired), "/alerts#silences");
    assert!(silences(&daemon).is_empty());
    let list = browser.page("/alerts");
    assert!(section(&list, "acknowledged").contains(&api_down));
    assert!(section(&list, "silences").contains("No silence is in force"));

    // The trail lists the acknowledgement with its note, and filters by action.
    let audit = browser.page("/audit");
    assert!(audit.contains("data-verification=\"ok\""), "{audit}");
    for action in ["alert.ack", "silence.create", "silence.expire"] {
        assert!(
            audit.contains(&format!("data-action=\"{action}\"")),
            "{action}"
        );
    }
    let acks = browser.page("/audit?action=alert.ack");
    assert!(acks.contains("data-action=\"alert.ack\""));
    assert!(acks.contains("restarting the API"), "{acks}");
    assert!(!acks.contains("data-action=\"silence.create\""));
    assert!(
        acks.contains("value=\"alert.ack\""),
        "the filter stays filled in"
    );
    assert_eq!(browser.get("/audit?after=soon").status(), 400);
}

#[test]
fn a_viewer_is_offered_no_action_and_forged_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let daemon = start(dir.path(), &receiver);
    let api_down = post_alerts(&daemon);
    let created = daemon.send(
        Method::POST,
        "/api/v1/silences",
        Some(json!({"matchers": ["alertname=ApiSlow"], "duration": "1h", "comment": "known"})),
    );
    assert_eq!(created.status(), 201);
    let id = silences(&daemon)[0]["id"].as_i64().unwrap();
    let viewer = daemon.create_key("watcher", "viewer", None);
    let mut browser = Browser::new(&daemon.url);
    assert_eq!(browser.sign_in(&viewer).status(), 303);

    let list = browser.page("/alerts");
    assert!(section(&list, "firing").contains(&api_down), "{list}");
    assert!(section(&list, "silences").contains(&format!("data-silence=\"{id}\"")));
    let detail = browser.page(&format!("/alerts/{api_down}"));
    for page in [&list, &detail] {
        for action in ["/ack\"", "/silence\"", "/expire\"", ">Acknowledge<"] {
            assert!(!page.contains(action), "a viewer is offered {action}");
        }
    }

    // Forged with the session's own form token: the API's own checks refuse.
    let csrf = hidden(&detail, "csrf");
    let forged = [
        (
            format!("/alerts/{api_down}/ack"),
            vec![("csrf", csrf.as_str()), ("note", "x")],
        ),
        (
            format!("/alerts/{api_down}/silence"),
            vec![
                ("csrf", csrf.as_str()),
                ("duration", "1h"),
                ("comment", "x"),
            ],
        ),
        (
            format!("/silences/{id}/expire"),
            vec![("csrf", csrf.as_str())],
        ),
        (
            "/keys".to_owned(),
            vec![("csrf", csrf.as_str()), ("name", "mine"), ("role", "admin")],
        ),
        (
            "/keys/watcher/revoke".to_owned(),
            vec![("csrf", csrf.as_str())],
        ),
    ];
    for (path, form) in &forged {
        assert_eq!(browser.post(path, form).status(), 403, "POST {path}");
    }
    // Without the token, refused before the API is asked.
    let tokenless = browser.post(
        &format!("/alerts/{api_down}/ack"),
        &[("csrf", "0000"), ("note", "x")],
    );
    assert_eq!(tokenless.status(), 403);
    assert!(daemon.get_json(&format!("/api/v1/alerts/{api_down}"))["ack"].is_null());
    assert_eq!(silences(&daemon).len(), 1);

    // The audit trail and the keys are not a viewer's.
    let audit = browser.get("/audit");
    assert_eq!(audit.status(), 403);
    assert!(
        audit
            .text()
            .unwrap()
            .contains("Only admin keys may read the audit trail")
    );
    assert_eq!(browser.get("/keys").status(), 403);

    // An admin limited to a workspace reads its part of the trail, but may not verify the
    // chain or manage keys.
    let scoped = daemon.create_key("ops-admin", "admin", Some("ops"));
    let mut scoped_browser = Browser::new(&daemon.url);
    assert_eq!(scoped_browser.sign_in(&scoped).status(), 303);
    let audit = scoped_browser.page("/audit");
    assert!(audit.contains("data-verification=\"unknown\""), "{audit}");
    assert!(audit.contains("not limited to a workspace"));
    assert_eq!(scoped_browser.get("/keys").status(), 403);
}

#[test]
fn an_admin_creates_a_key_whose_secret_shows_once_and_revokes_it() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let daemon = start(dir.path(), &receiver);
    let mut browser = Browser::new(&daemon.url);
    assert_eq!(
        browser.sign_in(daemon.key.as_deref().unwrap()).status(),
        303
    );
    let keys = browser.page("/keys");
    assert!(keys.contains("(this session)"), "{keys}");
    let csrf = hidden(&keys, "csrf");

    let created = browser.post(
        "/keys",
        &[
            ("csrf", &csrf),
            ("name", "ci-bot"),
            ("role", "operator"),
            ("workspace", "ops"),
            ("expires", "86400"),
        ],
    );
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let page = created.text().unwrap();
    assert!(page.contains("Shown once: copy the secret now."), "{page}");
    let secret = hidden(&page, "secret");
    assert!(secret.starts_with("stw_"), "{secret}");
    let whoami = |secret: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/whoami", daemon.url))
            .bearer_auth(secret)
            .send()
            .unwrap()
    };
    let who = whoami(&secret);
    assert_eq!(who.status(), 200);
    let who: Value = who.json().unwrap();
    assert_eq!(who["principal"]["name"], "ci-bot");
    assert_eq!(who["principal"]["role"], "operator");
    assert_eq!(who["principal"]["workspace"], "ops");

    // Never again: the list shows the key, not its secret.
    let keys = browser.page("/keys");
    assert!(keys.contains("data-key=\"ci-bot\""));
    assert!(!keys.contains(&secret));
    assert!(!keys.contains("Shown once"));

    // A name taken, or not a name, is refused beside the form, which keeps what was typed.
    let taken = browser.post(
        "/keys",
        &[("csrf", &csrf), ("name", "ci-bot"), ("role", "viewer")],
    );
    assert_eq!(taken.status(), 409);
    let taken = taken.text().unwrap();
    assert!(taken.contains("The key was not created"), "{taken}");
    assert!(taken.contains("value=\"ci-bot\""));
    let invalid = browser.post(
        "/keys",
        &[("csrf", &csrf), ("name", "not a name"), ("role", "viewer")],
    );
    assert_eq!(invalid.status(), 400);

    // Revoked: it stops working at once, and shows so.
    assert_eq!(
        browser
            .post("/keys/ci-bot/revoke", &[("csrf", "0000")])
            .status(),
        403
    );
    let revoked = browser.post("/keys/ci-bot/revoke", &[("csrf", &csrf)]);
    assert_eq!(revoked.status(), 303);
    assert_eq!(location(&revoked), "/keys");
    assert_eq!(whoami(&secret).status(), 401);
    let keys = browser.page("/keys");
    let row = &keys[keys.find("data-key=\"ci-bot\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("▲</span> revoked"), "{row}");
    assert!(!row.contains("/revoke\""), "a revoked key offers no revoke");

    let audit = browser.page("/audit?action=key.create");
    assert!(audit.contains("ci-bot"), "{audit}");
}
