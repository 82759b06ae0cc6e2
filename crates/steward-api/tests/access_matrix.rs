//! Every route × role × scope: who gets 401, who gets 403, who gets through. A route added to the
//! table without an expectation here fails [`every_route_has_an_expectation`].

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use support::Fixture;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use steward_api::Access;
use steward_api::routes::table;
use steward_core::Role;
use tower::ServiceExt;

const CONFIG: &str = r#"
[[workspaces]]
key = "trading"
[[workspaces]]
key = "marketing"
[[dependencies]]
from = "marketing"
to = "trading"
type = "read_bias"
[[services]]
name = "nn"
workspace = "trading"
"#;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    NoKey,
    BadKey,
    UnknownKey,
    Key(Role, bool),
}

/// What they should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Unauthenticated,
    Forbidden,
}

/// The expected outcome for each route (by method and template) and caller; `None` marks a
/// route with no expectation.
fn expected(method: &Method, path: &str, caller: Caller) -> Option<Outcome> {
    use Outcome::*;
    // An agent's key acts only as its node: every other route refuses it.
    let keyed = |f: fn(Role, bool) -> Outcome| match caller {
        Caller::NoKey | Caller::BadKey | Caller::UnknownKey => Unauthenticated,
        Caller::Key(Role::Agent, _) => Forbidden,
        Caller::Key(role, scoped) => f(role, scoped),
    };
    // Probed with the agent's own node; another node's is checked below.
    let own_node = || match caller {
        Caller::NoKey | Caller::BadKey | Caller::UnknownKey => Unauthenticated,
        Caller::Key(Role::Agent, _) => Allowed,
        Caller::Key(..) => Forbidden,
    };
    let any_key = |_: Role, _: bool| Allowed;
    let admin_any_scope = |role: Role, _: bool| {
        if role == Role::Admin {
            Allowed
        } else {
            Forbidden
        }
    };
    let operator_any_scope = |role: Role, _: bool| {
        if role >= Role::Operator {
            Allowed
        } else {
            Forbidden
        }
    };
    let unscoped = |_: Role, scoped: bool| if scoped { Forbidden } else { Allowed };
    let admin_unscoped = |role: Role, scoped: bool| {
        if role == Role::Admin && !scoped {
            Allowed
        } else {
            Forbidden
        }
    };
    Some(match (method.as_str(), path) {
        ("GET", "/healthz" | "/readyz" | "/" | "/api/v1/openapi.json")
        | ("POST", "/api/v1/agent/register") => Allowed,
        // Scoped keys see their workspace's nodes only, filtered by the handlers.
        ("GET", "/api/v1/nodes" | "/api/v1/nodes/{id}") => keyed(any_key),
        ("POST", "/api/v1/nodes" | "/api/v1/nodes/{id}/tokens")
        | ("DELETE", "/api/v1/nodes/{id}") => keyed(admin_unscoped),
        (
            "POST",
            "/api/v1/nodes/{id}/heartbeat"
            | "/api/v1/nodes/{id}/audit"
            | "/api/v1/nodes/{id}/tasks/claim"
            | "/api/v1/nodes/{id}/tasks/leases"
            | "/api/v1/nodes/{id}/tasks/complete",
        ) => own_node(),
        (
            "GET",
            "/api/v1/whoami" | "/api/v1/workspaces" | "/api/v1/services" | "/api/v1/graph"
            | "/api/v1/leadership",
        ) => keyed(any_key),
        // Scoped keys get their workspace's events only, filtered by the handler (tested in
        // `tests/events.rs` of the binary).
        ("GET", "/api/v1/events") => keyed(any_key),
        // Metrics name every workspace's checks and queues: not for a scoped key.
        ("GET", "/metrics") => keyed(unscoped),
        // Scoped keys are held to their workspace's services and checks by the handlers
        // (tested in `tests/health.rs` of the binary).
        (
            "GET",
            "/api/v1/services/{name}/checks"
            | "/api/v1/services/{name}/transitions"
            | "/api/v1/checks/{name}"
            | "/api/v1/checks/{name}/results"
            | "/api/v1/checks/{name}/transitions",
        ) => keyed(any_key),
        ("POST", "/api/v1/checks/{name}/run") => keyed(operator_any_scope),
        // Scoped keys are held to their workspace's alerts and silences by the handlers (tested
        // in `tests/alerts.rs` and `tests/amtool.rs` of the binary).
        (
            "GET",
            "/api/v1/alerts"
            | "/api/v1/alerts/{fingerprint}"
            | "/api/v1/silences"
            | "/api/v1/notifications"
            | "/api/v2/alerts"
            | "/api/v2/alerts/groups"
            | "/api/v2/silences"
            | "/api/v2/silence/{silenceID}"
            | "/api/v2/status",
        ) => keyed(any_key),
        (
            "POST",
            "/api/v1/alerts"
            | "/api/v2/alerts"
            | "/api/v1/alerts/{fingerprint}/ack"
            | "/api/v1/silences"
            | "/api/v2/silences",
        )
        | ("DELETE", "/api/v1/silences/{id}" | "/api/v2/silence/{silenceID}") => {
            keyed(operator_any_scope)
        }
        // Probed with the key's own workspace (`trading`); another workspace is checked below.
        ("GET", "/api/v1/workspaces/{key}") => keyed(any_key),
        ("GET", "/api/v1/audit") => keyed(admin_any_scope),
        // Scoped keys are held to their workspace by the handlers (tested in `tests/queue.rs`).
        ("GET", "/api/v1/tasks" | "/api/v1/tasks/{id}") => keyed(any_key),
        ("POST", "/api/v1/tasks" | "/api/v1/tasks/{id}/cancel" | "/api/v1/tasks/{id}/retry") => {
            keyed(operator_any_scope)
        }
        ("GET", "/api/v1/queues") => keyed(unscoped),
        // Scoped keys get badges of their workspace's services only (tested in
        // `tests/dashboard.rs` of the binary), and `ui.public_badges` opens them.
        ("GET", "/badge/service/{file}" | "/badge/service/{name}/uptime.svg") => keyed(any_key),
        // Scoped keys are held to their workspace's schedules and heartbeats by the handlers
        // (tested in `tests/schedules.rs` of the binary).
        (
            "GET",
            "/api/v1/schedules"
            | "/api/v1/schedules/{name}"
            | "/api/v1/schedules/{name}/runs"
            | "/api/v1/heartbeats",
        ) => keyed(any_key),
        (
            "POST",
            "/api/v1/schedules/{name}/pause"
            | "/api/v1/schedules/{name}/resume"
            | "/api/v1/schedules/{name}/trigger"
            | "/api/v1/heartbeats/{name}"
            | "/api/v1/heartbeats/{name}/fail",
        ) => keyed(operator_any_scope),
        // Scoped keys are held to their workspace's pipelines and runs by the handlers
        // (tested in `tests/pipelines.rs` of the binary).
        (
            "GET",
            "/api/v1/pipelines"
            | "/api/v1/pipelines/{name}"
            | "/api/v1/pipeline-runs"
            | "/api/v1/pipeline-runs/{id}",
        ) => keyed(any_key),
        (
            "POST",
            "/api/v1/pipelines/{name}/runs"
            | "/api/v1/pipeline-runs/{id}/cancel"
            | "/api/v1/pipeline-runs/{id}/retry",
        ) => keyed(operator_any_scope),
        ("POST", "/api/v1/config/reload")
        | ("GET", "/api/v1/keys" | "/api/v1/audit/verify")
        | ("POST", "/api/v1/keys")
        | ("DELETE", "/api/v1/keys/{name}") => keyed(admin_unscoped),
        _ => return None,
    })
}

/// The routes outside `/api/v1` that are Steward's own: the index, health, metrics, badges.
const OUTSIDE_API: &[&str] = &[
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/badge/service/{file}",
    "/badge/service/{name}/uptime.svg",
];

/// The routes of Alertmanager's API v2 that Steward serves.
const ALERTMANAGER_ROUTES: &[&str] = &[
    "/api/v2/alerts",
    "/api/v2/alerts/groups",
    "/api/v2/silences",
    "/api/v2/silence/{silenceID}",
    "/api/v2/status",
];

fn callers() -> Vec<Caller> {
    let mut callers = vec![Caller::NoKey, Caller::BadKey, Caller::UnknownKey];
    for role in Role::ALL {
        callers.push(Caller::Key(role, false));
        callers.push(Caller::Key(role, true));
    }
    callers
}

async fn fixture() -> Fixture {
    support::on_sqlite(CONFIG).await
}

fn concrete(method: &Method, path: &str) -> String {
    // Removing the agents' node would lock them out of the routes probed after it.
    if method == Method::DELETE && path == "/api/v1/nodes/{id}" {
        return path.replace("{id}", "nobody");
    }
    path.replace("{key}", "trading")
        .replace("{name}", "nobody")
        .replace("{id}", "1")
        .replace("{silenceID}", "1")
        .replace("{file}", "nobody.svg")
}

async fn call(fx: &Fixture, method: &Method, path: &str, caller: Caller) -> StatusCode {
    let mut request = Request::builder().method(method.clone()).uri(path);
    match caller {
        Caller::NoKey => {}
        Caller::BadKey => request = request.header("authorization", "Bearer not-a-key"),
        Caller::UnknownKey => {
            request = request.header(
                "authorization",
                format!("Bearer {}", steward_core::auth::format_key(&[1; 32])),
            );
        }
        Caller::Key(role, scoped) => {
            let secret = &fx
                .keys
                .iter()
                .find(|(k, _)| *k == (role, scoped))
                .unwrap()
                .1;
            request = request.header("x-api-key", secret.as_str());
        }
    }
    let response = fx
        .app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

fn outcome_of(status: StatusCode) -> Outcome {
    match status {
        StatusCode::UNAUTHORIZED => Outcome::Unauthenticated,
        StatusCode::FORBIDDEN => Outcome::Forbidden,
        _ => Outcome::Allowed,
    }
}

#[test]
fn every_route_has_an_expectation() {
    for route in table() {
        for caller in callers() {
            assert!(
                expected(&route.method, route.path, caller).is_some(),
                "{} {} has no expectation in the access matrix",
                route.method,
                route.path
            );
        }
        // `/api/v2` is Alertmanager's API, for its clients; it is the one exception.
        assert!(
            route.path.starts_with("/api/v1/")
                || OUTSIDE_API.contains(&route.path)
                || ALERTMANAGER_ROUTES.contains(&route.path),
            "{} {}: only the index, health routes, /metrics, badges and Alertmanager's API v2 \
             live outside /api/v1",
            route.method,
            route.path
        );
        // What lives beside `/api/v1` for anyone (the index, health) stays open to anyone;
        // metrics and badges are opened by settings.
        if OUTSIDE_API.contains(&route.path) && route.opened_by.is_none() {
            assert_eq!(route.access, Access::Public, "{}", route.path);
        }
    }
}

#[tokio::test]
async fn every_route_role_and_scope_gets_the_expected_answer() {
    let fx = fixture().await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in table() {
        for caller in callers() {
            let want = expected(&route.method, route.path, caller).unwrap();
            let status = call(
                &fx,
                &route.method,
                &concrete(&route.method, route.path),
                caller,
            )
            .await;
            checked += 1;
            if outcome_of(status) != want {
                failures.push(format!(
                    "{} {} as {caller:?}: got {status}, want {want:?}",
                    route.method, route.path
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, table().len() * 11);
}

#[tokio::test]
async fn scoped_keys_see_only_their_workspace() {
    let fx = fixture().await;
    let get = |path: &'static str, caller| {
        let fx = &fx;
        async move {
            let secret = &fx.keys.iter().find(|(k, _)| *k == caller).unwrap().1;
            let request = Request::get(path)
                .header("x-api-key", secret.as_str())
                .body(Body::empty())
                .unwrap();
            let response = fx.app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
            )
        }
    };
    let scoped = (Role::Admin, true);
    assert_eq!(
        get("/api/v1/workspaces/marketing", scoped).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, body) = get("/api/v1/workspaces", scoped).await;
    assert_eq!(body["workspaces"].as_array().unwrap().len(), 1);
    let (_, graph) = get("/api/v1/graph", scoped).await;
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(
        graph["edges"].as_array().unwrap().len(),
        1,
        "edges touching its workspace stay visible"
    );
    let (_, all) = get("/api/v1/workspaces", (Role::Viewer, false)).await;
    assert_eq!(all["workspaces"].as_array().unwrap().len(), 2);
    let (_, audit) = get("/api/v1/audit", scoped).await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["workspace"] == "trading")
    );
}

#[tokio::test]
async fn head_requests_get_the_get_rule() {
    let fx = fixture().await;
    assert_eq!(
        call(&fx, &Method::HEAD, "/healthz", Caller::NoKey).await,
        StatusCode::OK
    );
    assert_eq!(
        call(&fx, &Method::HEAD, "/api/v1/graph", Caller::NoKey).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(
            &fx,
            &Method::HEAD,
            "/api/v1/graph",
            Caller::Key(Role::Viewer, false)
        )
        .await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_oversized_key_is_refused_without_being_decoded() {
    let fx = fixture().await;
    let huge = format!("Bearer stw_{}", "z".repeat(300_000));
    let request = Request::get("/api/v1/graph")
        .header("authorization", huge)
        .body(Body::empty())
        .unwrap();
    let started = std::time::Instant::now();
    let response = fx.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn an_agent_key_acts_only_as_its_own_node() {
    let fx = fixture().await;
    fx.store
        .add_node(
            &steward_core::node::NodeSpec {
                id: "other".into(),
                ..Default::default()
            },
            &steward_core::audit::Actor::system("test"),
        )
        .await
        .unwrap();
    for (scoped, route) in [false, true].into_iter().flat_map(|s| {
        [
            (s, "heartbeat"),
            (s, "audit"),
            (s, "tasks/claim"),
            (s, "tasks/leases"),
            (s, "tasks/complete"),
        ]
    }) {
        let own = format!("/api/v1/nodes/{}/{route}", support::AGENT_NODE);
        let own = call(&fx, &Method::POST, &own, Caller::Key(Role::Agent, scoped)).await;
        assert_eq!(
            own,
            StatusCode::BAD_REQUEST,
            "its own node's {route}: past the check"
        );
        let other = call(
            &fx,
            &Method::POST,
            &format!("/api/v1/nodes/other/{route}"),
            Caller::Key(Role::Agent, scoped),
        )
        .await;
        assert_eq!(other, StatusCode::FORBIDDEN, "another node's {route}");
        for path in ["/api/v1/nodes", "/api/v1/whoami", "/api/v1/tasks"] {
            let status = call(&fx, &Method::GET, path, Caller::Key(Role::Agent, scoped)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        }
    }
}
