//! The dashboard over HTTP, against the real binary: signing in and out, the session cookie's
//! flags, form tokens, scoped keys, the base path, and `[ui] enabled = false`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::Daemon;
use support::browser::{Browser, hidden, location};

const CONFIG: &str = r#"
[[workspaces]]
key = "ops"

[[workspaces]]
key = "lab"

[[services]]
name = "ops-api"
workspace = "ops"
url = "http://127.0.0.1:9/health"

[[services]]
name = "lab-model"
workspace = "lab"
url = "http://127.0.0.1:9/model"
"#;

fn start(dir: &Path, extra_config: &str) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("steward.toml");
    std::fs::write(&config, format!("{extra_config}\n{CONFIG}")).unwrap();
    Daemon::start_on_sqlite(dir, &config, &[])
}

#[test]
fn signing_in_starts_a_session_whose_cookie_is_locked_down_and_signing_out_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), "");
    let admin = daemon.key.clone().unwrap();
    let mut browser = Browser::new(&daemon.url);

    // A browser without a session is sent to sign in, and back afterwards.
    let first = browser.get("/services?state=down");
    assert_eq!(first.status(), 303);
    assert_eq!(location(&first), "/sign-in?next=%2Fservices%3Fstate%3Ddown");

    // A wrong key is refused on the form, with the reason, and no session starts.
    let form = browser.get("/sign-in").text().unwrap();
    let csrf = hidden(&form, "csrf");
    let wrong = browser.post(
        "/sign-in",
        &[("key", "stw_not-a-key"), ("csrf", &csrf), ("next", "/")],
    );
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().unwrap().contains("That key is not valid"));
    assert!(!browser.cookies.contains_key("steward_session"));

    // A form posted without its token is refused, even with a good key.
    let forged = browser.post("/sign-in", &[("key", &admin), ("next", "/")]);
    assert_eq!(forged.status(), 403, "a form without its token is refused");
    let forged = browser.post(
        "/sign-in",
        &[("key", &admin), ("csrf", "0000"), ("next", "/")],
    );
    assert_eq!(forged.status(), 403);
    assert!(!browser.cookies.contains_key("steward_session"));

    let signed_in = browser.sign_in(&admin);
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in), "/");
    let session_cookie = browser
        .last_set_cookies
        .iter()
        .find(|c| c.starts_with("steward_session="))
        .expect("a session cookie")
        .clone();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(session_cookie.contains(flag), "{flag} in {session_cookie}");
    }
    assert!(
        !session_cookie.contains("Secure"),
        "plain HTTP: {session_cookie}"
    );
    // The token is not the key, and the key is in no cookie.
    assert!(!browser.cookie_header().contains(&admin));

    let overview = browser.get("/");
    assert_eq!(overview.status(), 200);
    let headers = overview.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = overview.text().unwrap();
    assert!(
        html.contains("ops-api") && html.contains("lab-model"),
        "{html}"
    );
    assert!(
        html.contains("Who leads") && html.contains(">scheduler<"),
        "{html}"
    );

    // Over HTTPS (as a proxy says), the cookie is also `Secure`.
    let mut proxied = Browser::new(&daemon.url);
    let form = proxied
        .get_with("/sign-in", &[("x-forwarded-proto", "https")])
        .text()
        .unwrap();
    let csrf = hidden(&form, "csrf");
    assert!(proxied.last_set_cookies[0].contains("Secure"));
    proxied.post_with(
        "/sign-in",
        &[("key", &admin), ("csrf", &csrf), ("next", "/")],
        &[("x-forwarded-proto", "https")],
    );
    assert!(
        proxied
            .last_set_cookies
            .iter()
            .any(|c| c.starts_with("steward_session=") && c.contains("; Secure")),
        "{:?}",
        proxied.last_set_cookies
    );

    // Signing out needs the session's form token, then ends the session for good.
    let stale = browser.cookies.clone();
    assert_eq!(browser.post("/sign-out", &[("csrf", "nope")]).status(), 403);
    let csrf = hidden(&html, "csrf");
    let out = browser.post("/sign-out", &[("csrf", &csrf)]);
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out), "/sign-in");
    assert!(!browser.cookies.contains_key("steward_session"));
    // The old token is worth nothing now, even if someone kept it.
    browser.cookies = stale;
    assert_eq!(browser.get("/").status(), 303);

    let audit = daemon.get_json("/api/v1/audit?limit=1000");
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| a.starts_with("session."))
        .collect();
    assert_eq!(actions, ["session.start", "session.start", "session.end"]);
}

#[test]
fn a_scoped_viewer_sees_its_workspace_only_and_no_buttons() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), "");
    let viewer = daemon.create_key("ops-viewer", "viewer", Some("ops"));
    let mut browser = Browser::new(&daemon.url);
    assert_eq!(browser.sign_in(&viewer).status(), 303);

    let services = browser.page("/services");
    assert!(services.contains("ops-api"), "{services}");
    assert!(
        !services.contains("lab-model"),
        "another workspace's service shows:\n{services}"
    );
    assert!(
        !services.contains("\"lab\""),
        "another workspace's name shows"
    );
    let overview = browser.page("/");
    assert!(!overview.contains("lab-model") && !overview.contains(">lab<"));

    // Typing another workspace's URL finds nothing, as the API answers.
    assert_eq!(browser.get("/services/lab-model").status(), 404);
    let own = browser.page("/services/ops-api");
    assert!(
        !own.contains("Run now"),
        "a viewer is offered no button it may not use"
    );

    // A forged action is refused by the API's own check, with a valid form token.
    let csrf = hidden(&own, "csrf");
    let forced = browser.post(
        "/checks/ops-api-http/run",
        &[("csrf", &csrf), ("service", "ops-api")],
    );
    assert_eq!(forced.status(), 403);

    // Revoking the key ends what its session may do at once.
    daemon.send(reqwest::Method::DELETE, "/api/v1/keys/ops-viewer", None);
    let after = browser.get("/services");
    assert_eq!(after.status(), 303);
    assert!(location(&after).starts_with("/sign-in"));
}

#[test]
fn root_answers_clients_with_the_api_index_and_live_needs_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), "");
    let index = daemon.get_anonymous("/");
    assert_eq!(index.status(), 200);
    let index: serde_json::Value = index.json().unwrap();
    assert_eq!(index["openapi"], "/api/v1/openapi.json");
    // An unknown path is still the API's JSON 404.
    let missing = daemon.get_anonymous("/nope");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<serde_json::Value>().unwrap()["error"]["code"],
        "not_found"
    );

    let mut browser = Browser::new(&daemon.url);
    assert_eq!(browser.get("/live").status(), 401);
    browser.sign_in(daemon.key.as_deref().unwrap());
    let live = browser.get("/live");
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");

    // Assets are served under hashed names, cached for good.
    let overview = browser.page("/");
    let css = overview
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|p| p.ends_with(".css")))
        .unwrap()
        .to_owned();
    let asset = browser.get(&css);
    assert_eq!(asset.status(), 200);
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(browser.get("/assets/steward.css").status(), 404);
}

#[test]
fn a_base_path_prefixes_links_redirects_and_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), "[ui]\nbase_path = \"/steward\"\n");
    let mut browser = Browser::new(&daemon.url);
    let first = browser.get("/");
    assert_eq!(location(&first), "/steward/sign-in?next=%2F");
    let form = browser.get("/sign-in").text().unwrap();
    assert!(form.contains("action=\"/steward/sign-in\""));
    assert!(form.contains("href=\"/steward/assets/steward."));
    assert!(browser.last_set_cookies[0].contains("Path=/steward;"));
    let signed = browser.sign_in(daemon.key.as_deref().unwrap());
    assert_eq!(location(&signed), "/steward/");
    let overview = browser.page("/");
    assert!(overview.contains("href=\"/steward/services\""));
}

#[test]
fn a_disabled_dashboard_leaves_the_api_alone() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), "[ui]\nenabled = false\n");
    let mut browser = Browser::new(&daemon.url);
    let root = browser.get("/");
    assert_eq!(root.status(), 200);
    assert!(
        root.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(browser.get("/sign-in").status(), 404);
}

#[test]
fn badges_need_a_key_unless_made_public() {
    let dir = tempfile::tempdir().unwrap();
    let closed = start(&dir.path().join("closed"), "");
    assert_eq!(
        closed.get_anonymous("/badge/service/ops-api.svg").status(),
        401
    );
    let keyed = closed.get("/badge/service/ops-api.svg");
    assert_eq!(keyed.status(), 200);
    assert_eq!(keyed.headers()["content-type"], "image/svg+xml");
    let lab = closed.create_key("lab-viewer", "viewer", Some("lab"));
    let as_lab = |path: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", closed.url))
            .bearer_auth(&lab)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(as_lab("/badge/service/lab-model.svg"), 200);
    assert_eq!(
        as_lab("/badge/service/ops-api.svg"),
        404,
        "another workspace's service is not found"
    );

    let open = start(&dir.path().join("open"), "[ui]\npublic_badges = true\n");
    let state = open.get_anonymous("/badge/service/ops-api.svg");
    assert_eq!(state.status(), 200);
    let svg = state.text().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("ops-api"), "{svg}");
    let uptime = open.get_anonymous("/badge/service/ops-api/uptime.svg?window=7d");
    assert_eq!(uptime.status(), 200);
    assert!(uptime.text().unwrap().contains("uptime 7d"));
    assert_eq!(
        open.get_anonymous("/badge/service/nobody.svg").status(),
        404
    );
    assert_eq!(open.get_anonymous("/badge/service/ops-api").status(), 404);
}

#[test]
fn long_service_lists_are_paged_and_the_overview_stays_short() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from("[[workspaces]]\nkey = \"big\"\n\n");
    for i in 0..130 {
        config.push_str(&format!(
            "[[services]]\nname = \"svc{i:03}\"\nworkspace = \"big\"\nurl = \"http://127.0.0.1:9/{i}\"\n\n"
        ));
    }
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &path, &[]);
    let mut browser = Browser::new(&daemon.url);
    browser.sign_in(daemon.key.as_deref().unwrap());
    let rows = |html: &str| html.matches("<tr data-service=").count();
    let first = browser.page("/services");
    assert_eq!(rows(&first), 100);
    assert!(first.contains("Page 1 of 2 (130 services)"), "{first}");
    let second = browser.page("/services?page=2");
    assert_eq!(rows(&second), 30);
    assert!(second.contains("svc129"));
    // A page past the end shows the last one.
    assert_eq!(rows(&browser.page("/services?page=9")), 30);
    let overview = browser.page("/");
    assert_eq!(rows(&overview), 25);
    assert!(
        overview.contains("All 130 services that are not up"),
        "{overview}"
    );
}
