//! The dashboard in a real headless Chromium: signing in and out, pages changing live as a
//! check goes down (and what depends on it turns impacted) without a reload, the vizion graph,
//! scoped keys, and refused forms. `STEWARD_UI_SHOTS=DIR` keeps a screenshot of each page.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::Duration;

use fantoccini::Locator;
use support::Daemon;
use support::receiver::Receiver;

fn config(web: &str, db: &str) -> String {
    format!(
        r#"
[[workspaces]]
key = "front"

[[workspaces]]
key = "back"

[[dependencies]]
from = "front"
to = "back"
type = "reads_db"

[[services]]
name = "web"
workspace = "front"
url = "{web}"

[[services]]
name = "db"
workspace = "back"
url = "{db}"

[[checks]]
service = "web"
interval = "1s"
failures_before_down = 1
successes_before_up = 1

[[checks]]
service = "db"
interval = "1s"
failures_before_down = 1
successes_before_up = 1
"#
    )
}

/// A runtime for the WebDriver client; the daemon's own helpers block, so they run outside it
/// (or in `block_in_place`).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The row of `service` on the services page has `state` (its class and its text).
async fn row_state(chrome: &support::chrome::Chrome, service: &str) -> String {
    chrome
        .eval(&format!(
            "const r = document.querySelector('tr[data-service=\"{service}\"]'); \
             return r ? r.className : '';"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_check_going_down_changes_the_page_live_and_sign_out_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (Receiver::start(), Receiver::start());
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, config(&web.url("/"), &db.url("/"))).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &path, &[]);
    runtime().block_on(live_and_sign_out(&daemon, &db));
}

async fn live_and_sign_out(daemon: &Daemon, db: &Receiver) {
    let Some(chrome) = support::chrome::start(&daemon.url).await else {
        return;
    };
    chrome.sign_in(daemon.key.as_deref().unwrap()).await;
    chrome.shot("overview").await;

    chrome.open("/services").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        chrome.client.refresh().await.unwrap();
        if row_state(&chrome, "db").await.contains("state-up")
            && row_state(&chrome, "web").await.contains("state-up")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the services never came up"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Marks this page load, and notes when each row changes, as the browser sees it.
    chrome
        .eval(
            "window.__sameLoad = true; window.__seen = {}; \
             new MutationObserver(() => { \
               for (const [name, state] of [['db', 'state-down'], ['web', 'state-impacted']]) { \
                 const r = document.querySelector(`tr[data-service=\"${name}\"]`); \
                 if (r && r.classList.contains(state) && !window.__seen[name]) \
                   window.__seen[name] = Date.now(); \
               } \
             }).observe(document.body, { childList: true, subtree: true, attributes: true });",
        )
        .await;
    chrome
        .wait_for(
            Locator::Css("[data-live-state][data-state=live]"),
            "the stream to open",
        )
        .await;

    chrome.eval("window.__types=[]; const es=new EventSource('/live'); ['check_changed','audit','alerts_changed'].forEach(t=>es.addEventListener(t,()=>window.__types.push(t))); es.onerror=()=>window.__types.push('error'); return 1;").await;
    db.answer(503);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let seen = loop {
        let seen = chrome.eval("return window.__seen;").await;
        if seen["db"].is_number() && seen["web"].is_number() {
            break seen;
        }
        if std::time::Instant::now() >= deadline {
            let api = tokio::task::block_in_place(|| daemon.get_json("/api/v1/services"));
            let live = chrome
                .eval("return JSON.stringify(window.stewardLive);")
                .await;
            panic!(
                "the rows did not change: db {:?}, web {:?}; live {live}; api {api}",
                row_state(&chrome, "db").await,
                row_state(&chrome, "web").await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        chrome.eval("return window.__sameLoad === true;").await,
        true,
        "the page was not reloaded"
    );
    let text = chrome.text().await;
    assert!(text.contains("down") && text.contains("impacted"), "{text}");
    chrome.shot("services-live").await;

    // How long from the transition's commit to the row changing in the browser.
    let transitions =
        tokio::task::block_in_place(|| daemon.get_json("/api/v1/services/db/transitions?limit=5"));
    let went_down = transitions["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == "down")
        .expect("a transition to down");
    let delay = seen["db"].as_i64().unwrap() - went_down["at_ms"].as_i64().unwrap();
    println!("dashboard: check transition → browser DOM change: {delay} ms");
    assert!((0..2_000).contains(&delay), "{delay} ms");

    chrome.open("/services/db").await;
    // The last hour's latency is drawn: the probes that passed on a line, the failures marked.
    let chart = chrome
        .eval(
            "return [document.querySelectorAll('.chart path.latency').length, \
                     document.querySelectorAll('.chart path.failure').length];",
        )
        .await;
    assert_eq!(chart[0], 1, "{chart}");
    assert!(chart[1].as_u64().unwrap() >= 1, "{chart}");
    chrome.shot("service").await;
    chrome.open("/graph").await;
    chrome.shot("graph").await;

    // Signing out ends the session: pages send the browser to sign in again.
    chrome.open("/").await;
    chrome
        .client
        .find(Locator::Css("form[action$='/sign-out'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chrome
        .wait_for(Locator::Id("key"), "the sign-in form")
        .await;
    chrome.open("/services").await;
    chrome
        .wait_for(Locator::Id("key"), "the sign-in form again")
        .await;
    assert!(
        chrome
            .client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/sign-in")
    );
}

#[test]
fn the_graph_shows_the_vizion_registry() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &support::vizion_config(), &[]);
    runtime().block_on(vizion_graph(&daemon));
}

async fn vizion_graph(daemon: &Daemon) {
    let Some(chrome) = support::chrome::start(&daemon.url).await else {
        return;
    };
    chrome.sign_in(daemon.key.as_deref().unwrap()).await;
    chrome.open("/graph").await;
    chrome
        .wait_for(Locator::Css("svg .nodes"), "the graph")
        .await;
    let counts = chrome
        .eval(
            "return [document.querySelectorAll('svg a.node').length, \
                     document.querySelectorAll('svg path.edge').length, \
                     document.querySelectorAll('svg text.edge-label').length];",
        )
        .await;
    assert_eq!(counts, serde_json::json!([8, 19, 19]));
    // Every node is drawn inside the picture.
    let inside = chrome
        .eval(
            "const svg = document.querySelector('.graph svg').getBoundingClientRect(); \
             return [...document.querySelectorAll('svg a.node')].every(n => { \
               const b = n.getBoundingClientRect(); \
               return b.left >= svg.left && b.right <= svg.right && b.top >= svg.top \
                 && b.bottom <= svg.bottom; });",
        )
        .await;
    assert_eq!(inside, true);
    chrome.shot("graph-vizion").await;
}

#[test]
fn a_scoped_viewer_cannot_reach_another_workspace_and_forged_forms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (Receiver::start(), Receiver::start());
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, config(&web.url("/"), &db.url("/"))).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &path, &[]);
    let viewer = daemon.create_key("front-viewer", "viewer", Some("front"));
    runtime().block_on(scoped_viewer(&daemon, &viewer));
}

async fn scoped_viewer(daemon: &Daemon, viewer: &str) {
    let Some(chrome) = support::chrome::start(&daemon.url).await else {
        return;
    };
    chrome.sign_in(viewer).await;
    chrome.open("/services").await;
    let text = chrome.text().await;
    assert!(text.contains("web"), "{text}");
    assert!(
        !text.contains("db"),
        "another workspace's service shows:\n{text}"
    );
    // Typed by hand, another workspace's page is not found.
    chrome.open("/services/db").await;
    let text = chrome.text().await;
    assert!(text.contains("Not found"), "{text}");
    // No button a viewer may not use.
    chrome.open("/services/web").await;
    assert!(
        chrome
            .client
            .find(Locator::Css("form[action*='/run'] button"))
            .await
            .is_err(),
        "a viewer is offered Run now"
    );
    chrome.shot("viewer-service").await;

    // A form posted without its token is refused: here sign-out, with the token taken out.
    chrome.open("/").await;
    chrome
        .eval(
            "const f = document.querySelector('form[action$=\"/sign-out\"]'); \
             f.querySelector('input[name=csrf]').remove(); f.submit(); return true;",
        )
        .await;
    chrome
        .wait_for(Locator::Css("p.problem"), "the refusal")
        .await;
    let text = chrome.text().await;
    assert!(text.contains("Not allowed"), "{text}");
    // The session was not ended by the forged form.
    chrome.open("/services").await;
    chrome
        .wait_for(Locator::Css("tr[data-service=web]"), "the services page")
        .await;
}

#[test]
fn an_operator_acknowledges_and_silences_an_alert_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (Receiver::start(), Receiver::start());
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, config(&web.url("/"), &db.url("/"))).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &path, &[]);
    let body = serde_json::json!({"alerts": [{
        "labels": {"alertname": "DbDown", "service": "db", "severity": "critical"},
        "annotations": {"summary": "The database answers nothing"},
    }]});
    let posted = daemon.send(reqwest::Method::POST, "/api/v1/alerts", Some(body));
    assert_eq!(posted.status(), 200);
    let operator = daemon.create_key("oncall", "operator", None);
    runtime().block_on(ack_and_silence(&daemon, &operator));
}

async fn ack_and_silence(daemon: &Daemon, operator: &str) {
    let Some(chrome) = support::chrome::start(&daemon.url).await else {
        return;
    };
    chrome.sign_in(operator).await;
    chrome.open("/alerts").await;
    let link = chrome
        .wait_for(Locator::LinkText("DbDown"), "the firing alert")
        .await;
    link.click().await.unwrap();
    chrome
        .wait_for(Locator::Id("ack-note"), "the acknowledge form")
        .await;
    chrome.shot("alert").await;
    chrome
        .type_into(Locator::Id("ack-note"), "restarting the primary")
        .await;
    chrome
        .client
        .find(Locator::Css("form[action$='/ack'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chrome
        .wait_for(
            Locator::XPath("//*[contains(text(), 'restarting the primary')]"),
            "the note",
        )
        .await;
    let text = chrome.text().await;
    assert!(
        text.contains("oncall"),
        "the acknowledgement names who:\n{text}"
    );

    chrome.open("/alerts").await;
    chrome
        .wait_for(Locator::LinkText("DbDown"), "the alert")
        .await
        .click()
        .await
        .unwrap();
    chrome
        .wait_for(Locator::Id("silence-comment"), "the silence form")
        .await;
    chrome
        .type_into(Locator::Id("silence-comment"), "maintenance of the primary")
        .await;
    chrome
        .client
        .find(Locator::Css("form[action$='/silence'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chrome
        .wait_for(
            Locator::XPath("//*[contains(text(), 'maintenance of the primary')]"),
            "the silence",
        )
        .await;
    let silences = tokio::task::block_in_place(|| daemon.get_json("/api/v1/silences"));
    let silence = &silences["silences"][0];
    assert_eq!(silence["created_by"], "oncall", "{silences}");
    assert_eq!(silence["comment"], "maintenance of the primary");
    chrome.open("/alerts").await;
    chrome.shot("alerts").await;
    let text = chrome.text().await;
    assert!(text.to_lowercase().contains("silenced"), "{text}");
}

#[test]
fn a_page_recovers_by_itself_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (Receiver::start(), Receiver::start());
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, config(&web.url("/"), &db.url("/"))).unwrap();
    // The same address both times, so the page's stream finds the new server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--listen", listen.as_str()];
    let mut first = Daemon::start_on_sqlite(dir.path(), &path, &args);
    let key = first.key.clone().unwrap();
    let rt = runtime();
    let chrome = rt.block_on(async {
        let chrome = support::chrome::start(&first.url).await?;
        chrome.sign_in(&key).await;
        chrome.open("/services").await;
        chrome
            .wait_for(
                Locator::Css("[data-live-state][data-state=live]"),
                "the stream",
            )
            .await;
        chrome.eval("window.__sameLoad = true;").await;
        Some(chrome)
    });
    let Some(chrome) = chrome else { return };

    first.signal("TERM");
    first.wait_exit(Duration::from_secs(30));
    rt.block_on(async {
        chrome
            .wait_for(
                Locator::Css("[data-live-state][data-state=down]"),
                "the page to notice the server went away",
            )
            .await;
    });
    // What changes while the server is away is shown once it is back.
    db.answer(503);
    let _second = Daemon::start_on_sqlite(dir.path(), &path, &args);
    rt.block_on(async {
        chrome
            .wait_for(
                Locator::Css("[data-live-state][data-state=live]"),
                "the stream again",
            )
            .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !row_state(&chrome, "db").await.contains("state-down") {
            assert!(
                std::time::Instant::now() < deadline,
                "the row did not change after the restart: {}",
                row_state(&chrome, "db").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            chrome.eval("return window.__sameLoad === true;").await,
            true,
            "the page recovered without a reload, and its session survived the restart"
        );
    });
}

#[test]
fn the_graph_stays_readable_at_200_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::new();
    for i in 0..200 {
        config.push_str(&format!("[[workspaces]]\nkey = \"workspace-{i:03}\"\n\n"));
    }
    for i in 0..200 {
        for step in [1, 7] {
            config.push_str(&format!(
                "[[dependencies]]\nfrom = \"workspace-{i:03}\"\nto = \"workspace-{:03}\"\ntype = \"reads\"\n\n",
                (i + step) % 200
            ));
        }
    }
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &path, &[]);
    runtime().block_on(big_graph(&daemon));
}

async fn big_graph(daemon: &Daemon) {
    let Some(chrome) = support::chrome::start(&daemon.url).await else {
        return;
    };
    chrome.sign_in(daemon.key.as_deref().unwrap()).await;
    chrome.open("/graph").await;
    chrome
        .wait_for(Locator::Css("svg .nodes"), "the graph")
        .await;
    // Every workspace is drawn inside the picture, and no two boxes overlap.
    let found = chrome
        .eval(
            "const svg = document.querySelector('.graph svg').getBoundingClientRect(); \
             const boxes = [...document.querySelectorAll('svg a.node rect')] \
               .map(r => r.getBoundingClientRect()); \
             const inside = boxes.every(b => b.left >= svg.left && b.right <= svg.right \
               && b.top >= svg.top && b.bottom <= svg.bottom); \
             let overlaps = 0; \
             for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) { \
               const a = boxes[i], b = boxes[j]; \
               if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) \
                 overlaps++; } \
             return [boxes.length, document.querySelectorAll('svg path.edge').length, \
                     inside, overlaps];",
        )
        .await;
    assert_eq!(found, serde_json::json!([200, 400, true, 0]));
    chrome.shot("graph-200").await;
}
