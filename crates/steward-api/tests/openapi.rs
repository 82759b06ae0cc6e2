//! The OpenAPI document against the server it describes: every route of the table is called
//! (with enough data that lists are not empty), each success body must match the schema the
//! document declares for its operation and status, and each refusal must be a status the
//! operation declares, with a body matching `Error`. A route added to the table without a call
//! here fails [`answers_match_the_schemas_the_document_declares`].

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use steward_api::routes::table;
use steward_core::Role;
use support::Fixture;
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
url = "http://127.0.0.1:9/health"
[[queues]]
name = "chores"
kinds = ["noop", "sleep"]
[[schedules]]
name = "nightly"
cron = "0 3 * * *"
queue = "chores"
kind = "noop"
[[heartbeats]]
name = "backup"
period = "1h"
[[pipelines]]
name = "brief"
[[pipelines.steps]]
name = "alba"
queue = "chores"
kind = "noop"
payload = { topic = "{{ input.topic }}" }
[[pipelines.steps]]
name = "albi"
queue = "chores"
kind = "noop"
needs = ["alba"]
"#;

/// `n` events of a node's audit journal, chained from the start, as an agent ships them.
fn node_journal(n: i64) -> Vec<Value> {
    use steward_core::audit::{Actor, AuditEntry, AuditEvent, GENESIS_HASH};
    let mut prev = GENESIS_HASH.to_owned();
    (1..=n)
        .map(|seq| {
            let entry = AuditEntry {
                actor: Actor::system("agent"),
                action: "agent.start".into(),
                target: "vps-02".into(),
                workspace: None,
                details: json!({ "version": "0.0.0" }),
            };
            let event = AuditEvent::chain(entry, seq, 1_700_000_000_000 + seq, &prev);
            prev = event.hash.clone();
            json!({
                "seq": event.seq,
                "at": steward_wire::time::rfc3339(event.at_ms),
                "at_ms": event.at_ms,
                "actor": { "kind": "system", "name": "agent", "source_ip": null },
                "action": event.action,
                "target": event.target,
                "workspace": null,
                "details": event.details,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            })
        })
        .collect()
}

/// Replaces every `{"$ref": "#/components/schemas/X"}` by the schema it names, so that a
/// response's schema stands alone.
fn inline(schema: &Value, components: &Value, depth: usize) -> Value {
    assert!(depth < 32, "references nest too deep: {schema}");
    match schema {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("a reference outside components: {reference}"));
                let target = components
                    .get(name)
                    .unwrap_or_else(|| panic!("no component {name}"));
                let mut resolved = inline(target, components, depth + 1);
                // Keywords beside the reference (a description) apply too.
                for (key, value) in map {
                    if key != "$ref" {
                        resolved[key] = inline(value, components, depth + 1);
                    }
                }
                return resolved;
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), inline(v, components, depth)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| inline(v, components, depth)).collect())
        }
        other => other.clone(),
    }
}

/// Whether a concrete path (no query) is an instance of a path template.
fn instance_of(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

/// What one call should be.
struct Call<'a> {
    method: Method,
    template: &'static str,
    path: String,
    key: Option<&'a str>,
    body: Option<Value>,
}

/// The server, its document, and what was called and found wrong.
struct Checker {
    fx: Fixture,
    document: Value,
    called: BTreeSet<(String, &'static str)>,
    failures: Vec<String>,
}

impl Checker {
    fn key(&self, role: Role, scoped: bool) -> String {
        self.fx
            .keys
            .iter()
            .find(|(k, _)| *k == (role, scoped))
            .unwrap()
            .1
            .clone()
    }

    fn admin(&self) -> String {
        self.key(Role::Admin, false)
    }

    /// The schema (references inlined) of what `template` answers with `status`, and its
    /// media type; `None` when the operation does not declare the status.
    fn declared(
        &self,
        method: &Method,
        template: &str,
        status: StatusCode,
    ) -> Option<(Option<String>, Option<Value>)> {
        let operation =
            &self.document["paths"][template][method.as_str().to_ascii_lowercase().as_str()];
        assert!(
            operation.is_object(),
            "{method} {template} is no operation of the document"
        );
        let response = operation["responses"].get(status.as_str())?;
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return Some((None, None));
        };
        assert_eq!(
            content.len(),
            1,
            "{method} {template} {status}: one media type"
        );
        let (media, content) = content.iter().next().unwrap();
        let schema = content
            .get("schema")
            .map(|s| inline(s, &self.document["components"]["schemas"], 0));
        Some((Some(media.clone()), schema))
    }

    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Sends a call, checks its answer against the document, and returns the status and the
    /// JSON body (`null` when it is none).
    async fn call(&mut self, call: Call<'_>) -> (StatusCode, Value) {
        let bare = call.path.split('?').next().unwrap();
        assert!(
            instance_of(call.template, bare),
            "{} is not an instance of {}",
            call.path,
            call.template
        );
        self.called.insert((call.method.to_string(), call.template));
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(&call.path);
        if let Some(key) = call.key {
            request = request.header("x-api-key", key);
        }
        let request = match &call.body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => request.body(Body::empty()).unwrap(),
        };
        let response = self.fx.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let media = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap();
        let what = format!("{} {} -> {status}", call.method, call.path);
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else if media
            .as_deref()
            .is_some_and(|m| m.starts_with("application/json"))
        {
            match serde_json::from_slice(&bytes) {
                Ok(body) => body,
                Err(e) => {
                    self.fail(format!("{what}: not JSON: {e}"));
                    return (status, Value::Null);
                }
            }
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        let Some((declared_media, schema)) = self.declared(&call.method, call.template, status)
        else {
            self.fail(format!("{what}: the document declares no {status}: {body}"));
            return (status, body);
        };
        match (&declared_media, &media) {
            (None, _) if bytes.is_empty() => {}
            (None, _) => self.fail(format!("{what}: a body where none is declared: {body}")),
            (Some(declared), Some(got)) if got.starts_with(declared.as_str()) => {}
            (Some(declared), got) => {
                self.fail(format!("{what}: answered {got:?}, declared {declared}"));
            }
        }
        if let Some(schema) = schema
            && declared_media.as_deref() == Some("application/json")
        {
            let validator = jsonschema::draft202012::new(&schema)
                .unwrap_or_else(|e| panic!("{what}: the declared schema does not compile: {e}"));
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            if !errors.is_empty() {
                self.fail(format!("{what}: {}\n  body: {body}", errors.join("; ")));
            }
        }
        if !status.is_success() {
            let error = inline(
                &json!({"$ref": "#/components/schemas/Error"}),
                &self.document["components"]["schemas"],
                0,
            );
            if !jsonschema::draft202012::is_valid(&error, &body) {
                self.fail(format!("{what}: not an Error: {body}"));
            }
        }
        (status, body)
    }

    /// A call as the unscoped admin.
    async fn admin_call(
        &mut self,
        method: Method,
        template: &'static str,
        path: impl Into<String>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let admin = self.admin();
        self.call(Call {
            method,
            template,
            path: path.into(),
            key: Some(&admin),
            body,
        })
        .await
    }

    async fn get(&mut self, template: &'static str, path: impl Into<String>) -> Value {
        let path = path.into();
        let (status, body) = self.admin_call(Method::GET, template, &path, None).await;
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    async fn post(
        &mut self,
        template: &'static str,
        path: impl Into<String>,
        body: Option<Value>,
    ) -> Value {
        let path = path.into();
        let (status, answer) = self.admin_call(Method::POST, template, &path, body).await;
        assert!(status.is_success(), "POST {path}: {status} {answer}");
        answer
    }

    async fn delete(&mut self, template: &'static str, path: impl Into<String>) -> Value {
        let path = path.into();
        let (status, body) = self.admin_call(Method::DELETE, template, &path, None).await;
        assert!(status.is_success(), "DELETE {path}: {status} {body}");
        body
    }

    /// Expects a refusal with `status`.
    async fn refused(&mut self, call: Call<'_>, status: StatusCode) {
        let what = format!("{} {}", call.method, call.path);
        let (got, body) = self.call(call).await;
        assert_eq!(got, status, "{what}: {body}");
    }
}

async fn checker() -> Checker {
    let fx = support::on_sqlite(CONFIG).await;
    let response = fx
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "served without a key");
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    Checker {
        fx,
        document: serde_json::from_slice(&bytes).unwrap(),
        called: BTreeSet::new(),
        failures: Vec::new(),
    }
}

/// Opens the event stream as an admin, checks its first frame, makes an audited change, and
/// checks that the first event it then carries matches what the document declares for an
/// event's data.
async fn check_events(c: &mut Checker) {
    let template = "/api/v1/events";
    c.called.insert(("GET".to_owned(), template));
    // The hub follows the audit trail once it runs.
    let following = tokio::spawn(std::sync::Arc::clone(&c.fx.events).run());
    let request = Request::get("/api/v1/events?types=audit")
        .header("x-api-key", c.admin())
        .body(Body::empty())
        .unwrap();
    let response = c.fx.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (media, schema) = c
        .declared(&Method::GET, template, StatusCode::OK)
        .expect("the stream's 200 is declared");
    assert_eq!(media.as_deref(), Some("text/event-stream"));
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(schema.unwrap()["type"], "string");
    let data_schema = inline(
        &c.document["paths"][template]["get"]["responses"]["200"]["content"]["text/event-stream"]["x-steward-event-data"],
        &c.document["components"]["schemas"],
        0,
    );
    let mut body = response.into_body();
    let mut next_frame = async || {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .unwrap();
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    };
    // An endless stream: its first bytes say it opened.
    assert_eq!(next_frame().await, ": open\n\n");
    // An audited change, then its event.
    c.post(
        "/api/v1/heartbeats/{name}",
        "/api/v1/heartbeats/backup",
        None,
    )
    .await;
    let frame = loop {
        let frame = next_frame().await;
        if !frame.starts_with(':') {
            break frame;
        }
    };
    let data = frame
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data in {frame:?}"));
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["type"], "audit", "{data}");
    let validator = jsonschema::draft202012::new(&data_schema).unwrap();
    if let Err(e) = validator.validate(&data) {
        c.fail(format!("an event's data: {e}: {data}"));
    }
    following.abort();
}

#[tokio::test]
async fn answers_match_the_schemas_the_document_declares() {
    let mut c = checker().await;
    let now_ms = steward_store::now_ms();

    // What is served beside the API.
    for (template, key) in [
        ("/", None),
        ("/api/v1/openapi.json", None),
        ("/healthz", None),
        ("/readyz", None),
        ("/metrics", Some(c.admin())),
    ] {
        let (status, _) = c
            .call(Call {
                method: Method::GET,
                template,
                path: template.to_owned(),
                key: key.as_deref(),
                body: None,
            })
            .await;
        assert_eq!(status, StatusCode::OK, "{template}");
    }

    // The registry, services and checks.
    c.get("/api/v1/whoami", "/api/v1/whoami").await;
    let leadership = c.get("/api/v1/leadership", "/api/v1/leadership").await;
    assert_eq!(
        leadership["leases"].as_array().unwrap().len(),
        3,
        "{leadership}"
    );
    let workspaces = c.get("/api/v1/workspaces", "/api/v1/workspaces").await;
    assert_eq!(workspaces["workspaces"].as_array().unwrap().len(), 2);
    c.get("/api/v1/workspaces/{key}", "/api/v1/workspaces/trading")
        .await;
    c.get("/api/v1/graph", "/api/v1/graph").await;
    let services = c.get("/api/v1/services", "/api/v1/services").await;
    let check = services["services"][0]["checks"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    c.get(
        "/api/v1/services/{name}/checks",
        "/api/v1/services/nn/checks?window=1h",
    )
    .await;
    c.get(
        "/api/v1/services/{name}/transitions",
        "/api/v1/services/nn/transitions?limit=10",
    )
    .await;
    let badge = c
        .get("/badge/service/{file}", "/badge/service/nn.svg")
        .await;
    assert!(badge.as_str().unwrap().starts_with("<svg"), "{badge}");
    c.get(
        "/badge/service/{name}/uptime.svg",
        "/badge/service/nn/uptime.svg?window=1h",
    )
    .await;
    c.get("/api/v1/checks/{name}", format!("/api/v1/checks/{check}"))
        .await;
    c.get(
        "/api/v1/checks/{name}/results",
        format!("/api/v1/checks/{check}/results?since=0"),
    )
    .await;
    c.get(
        "/api/v1/checks/{name}/transitions",
        format!("/api/v1/checks/{check}/transitions"),
    )
    .await;
    // This server has no prober: it refuses to probe, as the document says it may.
    let admin = c.admin();
    c.refused(
        Call {
            method: Method::POST,
            template: "/api/v1/checks/{name}/run",
            path: format!("/api/v1/checks/{check}/run"),
            key: Some(&admin),
            body: None,
        },
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;

    // Config, keys and the audit trail.
    c.post("/api/v1/config/reload", "/api/v1/config/reload", None)
        .await;
    c.post(
        "/api/v1/keys",
        "/api/v1/keys",
        Some(json!({"name": "extra", "role": "viewer", "expires_in_seconds": 3600})),
    )
    .await;
    let keys = c.get("/api/v1/keys", "/api/v1/keys").await;
    assert!(keys["keys"].as_array().unwrap().len() > 6);
    c.delete("/api/v1/keys/{name}", "/api/v1/keys/extra").await;

    // The fleet: a node added, a token made and exchanged, a heartbeat, the node shown and
    // removed.
    c.post(
        "/api/v1/nodes",
        "/api/v1/nodes",
        Some(json!({"id": "vps-02", "hostname": "vps-02", "labels": {"region": "eu"}})),
    )
    .await;
    let token = c
        .post(
            "/api/v1/nodes/{id}/tokens",
            "/api/v1/nodes/vps-02/tokens",
            Some(json!({"ttl_s": 600})),
        )
        .await;
    let (status, registered) = c
        .call(Call {
            method: Method::POST,
            template: "/api/v1/agent/register",
            path: "/api/v1/agent/register".to_owned(),
            key: None,
            body: Some(json!({"token": token["token"], "hostname": "vps-02"})),
        })
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let credential = registered["credential"].as_str().unwrap().to_owned();
    let (status, answer) = c
        .call(Call {
            method: Method::POST,
            template: "/api/v1/nodes/{id}/heartbeat",
            path: "/api/v1/nodes/vps-02/heartbeat".to_owned(),
            key: Some(&credential),
            body: Some(json!({
                "interval_s": 10,
                "digests": {"domains": "d1", "containers": "c1"},
                "inventory": {
                    "domains": [{"name": "shop.example.com", "listen": ["443 ssl"], "locations": [{"path": "/", "upstream": "http://127.0.0.1:8080"}], "file": "/etc/nginx/sites-enabled/shop"}],
                },
                "usage": {"load": [0.1, 0.2, 0.3], "memory_available_bytes": 1024, "uptime_s": 5, "disks": [{"mount": "/", "total_bytes": 10, "used_bytes": 5}]},
            })),
        })
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["needs"], json!(["containers"]));
    // The node's audit journal, shipped twice (the second time nothing is new), then listed.
    let journal = node_journal(2);
    for merged in [2, 0] {
        let (status, answer) = c
            .call(Call {
                method: Method::POST,
                template: "/api/v1/nodes/{id}/audit",
                path: "/api/v1/nodes/vps-02/audit".to_owned(),
                key: Some(&credential),
                body: Some(json!({ "events": journal })),
            })
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["merged"], merged, "{answer}");
        assert_eq!(answer["last_seq"], 2, "{answer}");
    }
    let mut edited = journal.clone();
    edited[1]["target"] = json!("someone-else");
    c.refused(
        Call {
            method: Method::POST,
            template: "/api/v1/nodes/{id}/audit",
            path: "/api/v1/nodes/vps-02/audit".to_owned(),
            key: Some(&credential),
            body: Some(json!({ "events": edited })),
        },
        StatusCode::BAD_REQUEST,
    )
    .await;
    let shipped = c
        .get("/api/v1/audit", "/api/v1/audit?node=vps-02&limit=10")
        .await;
    let origins: Vec<_> = shipped["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["origin"]["node"].clone(), e["origin"]["seq"].clone()))
        .collect();
    assert_eq!(
        origins,
        [(json!("vps-02"), json!(1)), (json!("vps-02"), json!(2))]
    );
    // Remote work: a task pinned to the node, claimed by its agent, renewed and completed.
    let pinned = c
        .post(
            "/api/v1/tasks",
            "/api/v1/tasks",
            Some(json!({"queue": "chores", "kind": "noop", "node": "vps-02"})),
        )
        .await;
    assert_eq!(pinned["task"]["node"], "vps-02", "{pinned}");
    let as_node = |template: &'static str, suffix: &str, body: serde_json::Value| Call {
        method: Method::POST,
        template,
        path: format!("/api/v1/nodes/vps-02/tasks/{suffix}"),
        key: Some(&credential),
        body: Some(body),
    };
    let (status, claimed) = c
        .call(as_node(
            "/api/v1/nodes/{id}/tasks/claim",
            "claim",
            json!({"worker": "agent", "limit": 4, "wait_ms": 0}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let task = &claimed["tasks"][0];
    assert_eq!(task["id"], pinned["task"]["id"], "{claimed}");
    let lease = json!({"id": task["id"], "fence": task["fence"]});
    let (status, renewed) = c
        .call(as_node(
            "/api/v1/nodes/{id}/tasks/leases",
            "leases",
            json!({"worker": "agent", "leases": [lease]}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["leases"][0]["held"], true, "{renewed}");
    let result = json!({
        "id": task["id"], "fence": task["fence"], "attempt": task["attempt"],
        "started_at_ms": 1, "ended_at_ms": 2, "end": "succeeded", "result": {"ok": true},
    });
    let (status, taken) = c
        .call(as_node(
            "/api/v1/nodes/{id}/tasks/complete",
            "complete",
            json!({"worker": "agent", "results": [result.clone()]}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    assert_eq!(taken["accepted"], json!([true]));
    let (_, again) = c
        .call(as_node(
            "/api/v1/nodes/{id}/tasks/complete",
            "complete",
            json!({"worker": "agent", "results": [result]}),
        ))
        .await;
    assert_eq!(again["accepted"], json!([false]), "a result is taken once");
    c.get("/api/v1/nodes", "/api/v1/nodes").await;
    c.get("/api/v1/nodes/{id}", "/api/v1/nodes/vps-02").await;
    c.delete("/api/v1/nodes/{id}", "/api/v1/nodes/vps-02").await;

    // Tasks.
    let one = c
        .post(
            "/api/v1/tasks",
            "/api/v1/tasks",
            Some(json!({"queue": "chores", "kind": "noop", "workspace": "trading"})),
        )
        .await;
    let id = one["task"]["id"].as_i64().unwrap();
    c.post(
        "/api/v1/tasks",
        "/api/v1/tasks",
        Some(json!({"tasks": [{"queue": "chores", "kind": "noop"}, {"queue": "chores", "kind": "sleep"}]})),
    )
    .await;
    let tasks = c
        .get("/api/v1/tasks", "/api/v1/tasks?queue=chores&limit=2")
        .await;
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 2);
    c.get("/api/v1/tasks/{id}", format!("/api/v1/tasks/{id}"))
        .await;
    c.post(
        "/api/v1/tasks/{id}/cancel",
        format!("/api/v1/tasks/{id}/cancel"),
        None,
    )
    .await;
    c.refused(
        Call {
            method: Method::POST,
            template: "/api/v1/tasks/{id}/cancel",
            path: format!("/api/v1/tasks/{id}/cancel"),
            key: Some(&admin),
            body: None,
        },
        StatusCode::CONFLICT,
    )
    .await;
    c.post(
        "/api/v1/tasks/{id}/retry",
        format!("/api/v1/tasks/{id}/retry"),
        None,
    )
    .await;
    c.get("/api/v1/queues", "/api/v1/queues").await;
    let settings = c.get("/api/v1/queues", "/api/v1/queues?counts=false").await;
    assert_eq!(settings["queues"][0]["counts"], json!({}), "{settings}");

    // Pipelines.
    let started = c
        .post(
            "/api/v1/pipelines/{name}/runs",
            "/api/v1/pipelines/brief/runs",
            Some(json!({"input": {"topic": "rust"}, "idempotency_key": "brief-1"})),
        )
        .await;
    assert_eq!(started["created"], json!(true), "{started}");
    assert_eq!(started["steps"][0]["state"], "running", "{started}");
    assert_eq!(started["steps"][1]["needs"], json!(["alba"]), "{started}");
    let run = started["run"]["id"].as_i64().unwrap();
    let again = c
        .post(
            "/api/v1/pipelines/{name}/runs",
            "/api/v1/pipelines/brief/runs",
            Some(json!({"idempotency_key": "brief-1"})),
        )
        .await;
    assert_eq!(again["run"]["id"], json!(run), "{again}");
    assert_eq!(again["created"], json!(false), "{again}");
    let pipelines = c.get("/api/v1/pipelines", "/api/v1/pipelines").await;
    assert_eq!(
        pipelines["pipelines"][0]["last_run"]["id"],
        json!(run),
        "{pipelines}"
    );
    c.get("/api/v1/pipelines/{name}", "/api/v1/pipelines/brief")
        .await;
    let runs = c
        .get(
            "/api/v1/pipeline-runs",
            "/api/v1/pipeline-runs?pipeline=brief&status=running&limit=5",
        )
        .await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    c.get(
        "/api/v1/pipeline-runs/{id}",
        format!("/api/v1/pipeline-runs/{run}"),
    )
    .await;
    let cancelled = c
        .post(
            "/api/v1/pipeline-runs/{id}/cancel",
            format!("/api/v1/pipeline-runs/{run}/cancel"),
            None,
        )
        .await;
    assert_eq!(cancelled["run"]["status"], "cancelled", "{cancelled}");
    c.refused(
        Call {
            method: Method::POST,
            template: "/api/v1/pipeline-runs/{id}/cancel",
            path: format!("/api/v1/pipeline-runs/{run}/cancel"),
            key: Some(&admin),
            body: None,
        },
        StatusCode::CONFLICT,
    )
    .await;
    let retried = c
        .post(
            "/api/v1/pipeline-runs/{id}/retry",
            format!("/api/v1/pipeline-runs/{run}/retry"),
            None,
        )
        .await;
    assert_eq!(retried["run"]["attempt"], json!(2), "{retried}");

    // Schedules and heartbeats.
    c.post(
        "/api/v1/schedules/{name}/trigger",
        "/api/v1/schedules/nightly/trigger",
        None,
    )
    .await;
    c.post(
        "/api/v1/schedules/{name}/pause",
        "/api/v1/schedules/nightly/pause",
        None,
    )
    .await;
    c.post(
        "/api/v1/schedules/{name}/resume",
        "/api/v1/schedules/nightly/resume",
        None,
    )
    .await;
    let schedules = c.get("/api/v1/schedules", "/api/v1/schedules").await;
    assert!(
        schedules["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "nightly")
    );
    c.get("/api/v1/schedules/{name}", "/api/v1/schedules/nightly")
        .await;
    let runs = c
        .get(
            "/api/v1/schedules/{name}/runs",
            "/api/v1/schedules/nightly/runs?limit=5",
        )
        .await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    c.post(
        "/api/v1/heartbeats/{name}/fail",
        "/api/v1/heartbeats/backup/fail",
        None,
    )
    .await;
    c.get("/api/v1/heartbeats", "/api/v1/heartbeats").await;

    // Alerts and silences, Steward's and Alertmanager's.
    c.post(
        "/api/v1/alerts",
        "/api/v1/alerts",
        Some(json!({"alerts": [{
            "labels": {"alertname": "DiskFull", "workspace": "trading"},
            "annotations": {"summary": "the disk is full"},
            "severity": "warning",
        }]})),
    )
    .await;
    c.post(
        "/api/v2/alerts",
        "/api/v2/alerts",
        Some(json!([{
            "labels": {"alertname": "Slow", "instance": "web-1"},
            "generatorURL": "http://prometheus.invalid/graph",
        }])),
    )
    .await;
    let alerts = c.get("/api/v1/alerts", "/api/v1/alerts?state=firing").await;
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 2);
    let fingerprint = alerts["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    c.post(
        "/api/v1/alerts/{fingerprint}/ack",
        format!("/api/v1/alerts/{fingerprint}/ack"),
        Some(json!({"note": "looking"})),
    )
    .await;
    c.get(
        "/api/v1/alerts/{fingerprint}",
        format!("/api/v1/alerts/{fingerprint}"),
    )
    .await;
    c.get("/api/v1/notifications", "/api/v1/notifications?limit=5")
        .await;
    let silence = c
        .post(
            "/api/v1/silences",
            "/api/v1/silences",
            Some(json!({"matchers": ["alertname=DiskFull"], "duration": "1h", "comment": "disk swap"})),
        )
        .await;
    let silences = c.get("/api/v1/silences", "/api/v1/silences").await;
    assert_eq!(silences["silences"].as_array().unwrap().len(), 1);
    let v2_alerts = c.get("/api/v2/alerts", "/api/v2/alerts?active=true").await;
    assert_eq!(v2_alerts.as_array().unwrap().len(), 2);
    let groups = c
        .get("/api/v2/alerts/groups", "/api/v2/alerts/groups")
        .await;
    assert!(!groups.as_array().unwrap().is_empty());
    c.delete(
        "/api/v1/silences/{id}",
        format!("/api/v1/silences/{}", silence["id"]),
    )
    .await;
    let posted = c
        .post(
            "/api/v2/silences",
            "/api/v2/silences",
            Some(json!({
                "matchers": [{"name": "alertname", "value": "Slow", "isRegex": false}],
                "startsAt": steward_wire::time::rfc3339(now_ms),
                "endsAt": steward_wire::time::rfc3339(now_ms + 3_600_000),
                "createdBy": "ops",
                "comment": "known",
            })),
        )
        .await;
    let silence_id = posted["silenceID"].as_str().unwrap().to_owned();
    let v2_silences = c.get("/api/v2/silences", "/api/v2/silences").await;
    assert_eq!(v2_silences.as_array().unwrap().len(), 2);
    c.get(
        "/api/v2/silence/{silenceID}",
        format!("/api/v2/silence/{silence_id}"),
    )
    .await;
    let expired = c
        .delete(
            "/api/v2/silence/{silenceID}",
            format!("/api/v2/silence/{silence_id}"),
        )
        .await;
    assert_eq!(expired, Value::Null, "no body, as Alertmanager answers");
    c.get("/api/v2/status", "/api/v2/status").await;

    // The audit trail, now that there is one.
    let audit = c.get("/api/v1/audit", "/api/v1/audit?limit=5").await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 5);
    c.get("/api/v1/audit/verify", "/api/v1/audit/verify").await;

    // The event stream.
    check_events(&mut c).await;

    // Refusals: each must be a status the document declares, with an `Error` body.
    let viewer = c.key(Role::Viewer, false);
    let scoped = c.key(Role::Viewer, true);
    // (method, template, path, key, body, status): refused calls whose answers must match `Error`.
    let refusals = [
        (
            Method::GET,
            "/api/v1/whoami",
            "/api/v1/whoami".to_owned(),
            None,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/metrics",
            "/metrics".to_owned(),
            Some(scoped.as_str()),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/tasks/{id}",
            "/api/v1/tasks/999999".to_owned(),
            Some(viewer.as_str()),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/tasks/{id}",
            "/api/v1/tasks/abc".to_owned(),
            Some(viewer.as_str()),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/tasks",
            "/api/v1/tasks?limit=many".to_owned(),
            Some(viewer.as_str()),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/events",
            "/api/v1/events?types=nothing".to_owned(),
            Some(viewer.as_str()),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v2/silence/{silenceID}",
            "/api/v2/silence/424242".to_owned(),
            Some(viewer.as_str()),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            "/api/v1/tasks".to_owned(),
            Some(viewer.as_str()),
            Some(json!({"queue": "chores", "kind": "noop"})),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            "/api/v1/tasks".to_owned(),
            Some(admin.as_str()),
            Some(json!({"queue": "nowhere", "kind": "noop"})),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/keys",
            "/api/v1/keys".to_owned(),
            Some(admin.as_str()),
            Some(json!({"name": "x", "role": "emperor"})),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, template, path, key, body, status) in refusals {
        c.refused(
            Call {
                method,
                template,
                path,
                key,
                body,
            },
            status,
        )
        .await;
    }

    let every: BTreeSet<(String, &'static str)> = table()
        .iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    let missed: Vec<_> = every.difference(&c.called).collect();
    assert!(missed.is_empty(), "routes never called here: {missed:?}");
    assert!(
        c.failures.is_empty(),
        "{} answers do not match the document:\n{}",
        c.failures.len(),
        c.failures.join("\n")
    );
}

#[tokio::test]
async fn the_index_and_the_document_answer_without_a_key() {
    let fx = support::on_sqlite(CONFIG).await;
    let get = |path: &'static str| {
        let app = fx.app.clone();
        async move {
            let response = app
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let media = response.headers()[header::CONTENT_TYPE].clone();
            let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
                .await
                .unwrap();
            (
                status,
                media,
                serde_json::from_slice::<Value>(&bytes).unwrap(),
            )
        }
    };
    let (status, media, index) = get("/").await;
    assert_eq!(
        (status, media.to_str().unwrap()),
        (StatusCode::OK, "application/json")
    );
    assert_eq!(index["name"], "steward");
    assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(index["openapi"], "/api/v1/openapi.json");
    assert_eq!(index["docs"], "README.md#http-api");
    let (status, media, document) = get("/api/v1/openapi.json").await;
    assert_eq!(
        (status, media.to_str().unwrap()),
        (StatusCode::OK, "application/json")
    );
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    // Anything else that is no route is still the documented 404.
    let (status, _, body) = get("/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
