//! Arbitrary input to every route of the route table, from every kind of caller: JSON bodies
//! (shaped like the API's, and not), bytes that are no JSON at all, query strings and path
//! segments of any text. Whatever comes in:
//! - nothing answers 5xx while the store is up, and only `store_unavailable` while it is down;
//! - every error body is the documented JSON (`{"error":{"code","message"}}`);
//! - a refused request stores nothing (every mutation is audited, so the audit head stands
//!   still).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use support::Fixture;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, TestCaseError, TestRunner};
use serde_json::Value;
use steward_api::routes::table;
use steward_core::Role;
use steward_store::Store;
use steward_store_postgres::testing::TestDatabase;
use tower::ServiceExt;

const CONFIG: &str = r#"
[[workspaces]]
key = "trading"
[[workspaces]]
key = "marketing"
[[services]]
name = "nn"
workspace = "trading"
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
"#;

/// Names the API's bodies and query strings use: random input hits them often enough to get
/// past the first check of each route.
const FIELDS: &[&str] = &[
    "queue",
    "kind",
    "payload",
    "priority",
    "run_at_ms",
    "delay_ms",
    "max_attempts",
    "idempotency_key",
    "workspace",
    "tasks",
    "name",
    "role",
    "expires_in_seconds",
    "matchers",
    "starts_at_ms",
    "ends_at_ms",
    "duration",
    "comment",
    "note",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "alerts",
    "severity",
    "ms",
    "limit",
    "after",
    "before",
    "state",
    "status",
    "outcome",
    "window",
    "since",
    "receiver",
    "actor",
    "action",
    "actor_kind",
    "filter",
    "active",
    "silenced",
    "inhibited",
    "unprocessed",
    "id",
    "createdBy",
    "value",
    "isRegex",
    "isEqual",
];

/// Values worth trying besides random ones.
const VALUES: &[&str] = &[
    "chores",
    "noop",
    "sleep",
    "trading",
    "marketing",
    "nightly",
    "backup",
    "nn",
    "viewer",
    "admin",
    "firing",
    "resolved",
    "queued",
    "dead",
    "1h",
    "0",
    "-1",
    "2147483648",
    "-9223372036854775808",
    "99999999999999999999",
    "alertname=X",
    "alertname=~\"X.*\"",
    "true",
    "false",
    "2030-01-01T00:00:00Z",
    "a\u{0}b",
    "",
];

/// One request, before it is put together.
#[derive(Debug, Clone)]
struct Case {
    route: usize,
    /// `None`: no key; `Some(i)` with `i` past the keys: a key nobody holds.
    caller: Option<usize>,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(VALUES).prop_map(str::to_owned),
        2 => "\\PC{0,16}",
        1 => any::<String>(),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            3 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
            1 => text(),
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        4 => json().prop_map(|v| Some(v.to_string().into_bytes())),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Some),
    ]
}

fn case(routes: usize, keys: usize) -> impl Strategy<Value = Case> {
    let pair = (
        prop_oneof![
            3 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
            1 => text(),
        ],
        text(),
    );
    (
        0..routes,
        proptest::option::weighted(0.9, 0..=keys),
        proptest::collection::vec(text(), 2),
        proptest::collection::vec(pair, 0..4),
        body(),
    )
        .prop_map(|(route, caller, segments, query, body)| Case {
            route,
            caller,
            segments,
            query,
            body,
        })
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The request a case stands for, with its method and path template.
fn request(case: &Case, keys: &[((Role, bool), String)]) -> (Method, &'static str, Request<Body>) {
    let routes = table();
    let route = &routes[case.route];
    let mut path = route.path.to_owned();
    for (i, segment) in case.segments.iter().enumerate() {
        for param in ["{key}", "{name}", "{id}", "{fingerprint}", "{silenceID}"] {
            if i == 0 || !path.contains(param) {
                path = path.replacen(param, &encode(segment), 1);
            }
        }
    }
    if !case.query.is_empty() {
        let query: Vec<String> = case
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        path = format!("{path}?{}", query.join("&"));
    }
    let mut builder = Request::builder().method(route.method.clone()).uri(&path);
    match case.caller {
        None => {}
        Some(i) if i < keys.len() => builder = builder.header("x-api-key", keys[i].1.as_str()),
        Some(_) => {
            builder = builder.header(
                "authorization",
                format!("Bearer {}", steward_core::auth::format_key(&[9; 32])),
            );
        }
    }
    let body = match &case.body {
        Some(bytes) => {
            builder = builder.header("content-type", "application/json");
            Body::from(bytes.clone())
        }
        None => Body::empty(),
    };
    (
        route.method.clone(),
        route.path,
        builder.body(body).unwrap(),
    )
}

/// What came back: the status and the body.
async fn send(fx: &Fixture, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = fx.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    if response
        .headers()
        .get("content-type")
        .is_some_and(|t| t == "text/event-stream")
    {
        // An event stream never ends: its first bytes say it opened.
        let first = tokio::time::timeout(Duration::from_secs(5), response.into_body().frame())
            .await
            .expect("an event stream sends its first bytes at once")
            .unwrap()
            .unwrap();
        let bytes = first.into_data().unwrap();
        assert!(
            bytes.starts_with(b": open") || bytes.starts_with(b"id: "),
            "{bytes:?}"
        );
        return (status, bytes.to_vec());
    }
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

/// The error code of an error answer, or why it is not the documented JSON.
fn error_code(body: &[u8]) -> Result<String, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
    let code = value["error"]["code"].as_str();
    let message = value["error"]["message"].as_str();
    match (code, message) {
        (Some(code), Some(_)) => Ok(code.to_owned()),
        _ => Err(format!("not the documented shape: {value}")),
    }
}

async fn audit_head(store: &dyn Store) -> i64 {
    store.audit_head().await.unwrap().map_or(0, |(seq, _)| seq)
}

/// Runs `cases` random requests against `fx`; `store_up` says which 5xx are allowed.
fn run(fx: &Fixture, runtime: &tokio::runtime::Runtime, cases: u32, store_up: bool) {
    let mut runner = TestRunner::new(Cases {
        cases,
        failure_persistence: None,
        ..Cases::default()
    });
    let strategy = case(table().len(), fx.keys.len());
    let result = runner.run(&strategy, |case| {
        runtime.block_on(async {
            let before = if store_up {
                audit_head(fx.store.as_ref()).await
            } else {
                0
            };
            let (method, template, request) = request(&case, &fx.keys);
            let (status, body) = send(fx, request).await;
            let what = format!("{method} {template} -> {status}");
            if status.is_server_error() {
                let code =
                    error_code(&body).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                prop_assert!(
                    !store_up && code == "store_unavailable",
                    "{what}: {code} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            if status.is_client_error() || status.is_server_error() {
                error_code(&body).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                if store_up {
                    prop_assert_eq!(
                        audit_head(fx.store.as_ref()).await,
                        before,
                        "{}: a refused request stored something",
                        what
                    );
                }
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn arbitrary_input_to_every_route_is_answered_without_5xx_as_json_and_stores_nothing_refused() {
    let runtime = runtime();
    let fx = runtime.block_on(support::on_sqlite(CONFIG));
    run(&fx, &runtime, 3_000, true);
}

#[test]
fn on_postgres_too_arbitrary_input_is_never_answered_as_an_outage() {
    let runtime = runtime();
    let Some(db) = runtime.block_on(TestDatabase::create()) else {
        return;
    };
    let fx = runtime.block_on(async {
        let store = db.migrated_store(4).await;
        support::on_store(Arc::new(store), CONFIG, tempfile::tempdir().unwrap()).await
    });
    run(&fx, &runtime, 1_000, true);
    drop(fx);
    drop(db);
}

#[test]
fn while_the_store_is_down_the_only_5xx_is_store_unavailable() {
    let runtime = runtime();
    let Some(db) = runtime.block_on(TestDatabase::create()) else {
        return;
    };
    let fx = runtime.block_on(async {
        let store = db.migrated_store(4).await;
        support::on_store(Arc::new(store), CONFIG, tempfile::tempdir().unwrap()).await
    });
    // DROP DATABASE … WITH (FORCE): every connection dies, none can be made again.
    drop(db);
    run(&fx, &runtime, 300, false);
}
