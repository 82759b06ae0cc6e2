#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus, Uri};
use axum::response::IntoResponse;
use steward_wire::nodes::InventoryKind;

use super::*;

/// What the fake hub saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: serde_json::Value,
}

/// A loopback server answering every request with `status` and `body` after `delay`,
/// recording what it was sent.
async fn fake_hub(
    status: u16,
    body: &'static str,
    delay: Duration,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, sent: Bytes| {
        let record = Arc::clone(&record);
        async move {
            record.lock().unwrap().push(Seen {
                path: uri.path().to_owned(),
                authorization: headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned()),
                body: serde_json::from_slice(&sent).unwrap_or_default(),
            });
            tokio::time::sleep(delay).await;
            (
                AxumStatus::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body,
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn registration() -> Registration {
    Registration {
        token: "stj_abc".into(),
        hostname: "vps-02".into(),
        agent_version: "0.1.0".into(),
    }
}

#[tokio::test]
async fn a_registration_posts_the_token_and_reads_the_credential() {
    let answer =
        r#"{"node":"vps-02","credential":"stw_x","key_name":"node-vps-02","interval_s":10}"#;
    let (hub, seen) = fake_hub(200, answer, Duration::ZERO).await;
    let client = HubClient::new(&format!("{hub}/")).unwrap();
    assert_eq!(client.hub(), hub);
    let registered = client.register(&registration()).await.unwrap();
    assert_eq!(registered.node, "vps-02");
    assert_eq!(registered.credential, "stw_x");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].path, "/api/v1/agent/register");
    assert_eq!(seen[0].authorization, None);
    assert_eq!(seen[0].body["token"], "stj_abc");
    assert_eq!(seen[0].body["hostname"], "vps-02");
}

#[tokio::test]
async fn a_heartbeat_carries_the_credential_under_the_hubs_prefix() {
    let answer = r#"{"needs":["domains"],"holds":{"facts":"ab"}}"#;
    let (hub, seen) = fake_hub(200, answer, Duration::ZERO).await;
    let client = HubClient::new(&format!("{hub}/steward")).unwrap();
    let mut beat = Heartbeat {
        interval_s: 10,
        ..Heartbeat::default()
    };
    beat.digests.insert(InventoryKind::Facts, "ab".into());
    let answer = client
        .heartbeat("vps 02", "stw_secret", &beat)
        .await
        .unwrap();
    assert_eq!(answer.needs, [InventoryKind::Domains]);
    assert_eq!(answer.holds[&InventoryKind::Facts], "ab");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].path, "/steward/api/v1/nodes/vps%2002/heartbeat");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer stw_secret"));
    assert_eq!(seen[0].body["digests"]["facts"], "ab");
    assert_eq!(seen[0].body["interval_s"], 10);
}

#[tokio::test]
async fn a_refusal_is_its_own_error_with_the_hubs_words() {
    let answer = r#"{"error":{"code":"unauthorized","message":"the join token was already used"}}"#;
    let (hub, _) = fake_hub(401, answer, Duration::ZERO).await;
    let error = HubClient::new(&hub)
        .unwrap()
        .register(&registration())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, HubError::Unauthorized { status, message, .. }
            if *status == StatusCode::UNAUTHORIZED && message == "the join token was already used"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "hub {hub} refused the request (401 Unauthorized): the join token was already used"
        )
    );

    let (hub, _) = fake_hub(403, "", Duration::ZERO).await;
    let error = HubClient::new(&hub)
        .unwrap()
        .heartbeat("n", "stw_x", &Heartbeat::default())
        .await
        .unwrap_err();
    assert!(matches!(error, HubError::Unauthorized { .. }), "{error:?}");
    assert!(
        error.to_string().ends_with("(403 Forbidden): Forbidden"),
        "{error}"
    );
}

#[tokio::test]
async fn other_statuses_keep_the_code_and_say_whether_to_retry() {
    let answer = r#"{"error":{"code":"invalid_body","message":"bad heartbeat","details":["digests: unknown kind","interval_s: 0"]}}"#;
    let (hub, _) = fake_hub(422, answer, Duration::ZERO).await;
    let client = HubClient::new(&hub).unwrap();
    let error = client
        .heartbeat("n", "stw_x", &Heartbeat::default())
        .await
        .unwrap_err();
    match &error {
        HubError::Status {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(code.as_deref(), Some("invalid_body"));
            assert_eq!(
                message,
                "bad heartbeat (digests: unknown kind; interval_s: 0)"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.is_retryable());

    let (hub, _) = fake_hub(503, "<html>maintenance</html>", Duration::ZERO).await;
    let error = HubClient::new(&hub)
        .unwrap()
        .heartbeat("n", "stw_x", &Heartbeat::default())
        .await
        .unwrap_err();
    assert!(error.is_retryable());
    assert!(
        error
            .to_string()
            .ends_with("answered 503 Service Unavailable: <html>maintenance</html>"),
        "{error}"
    );
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_reported() {
    let (hub, _) = fake_hub(200, "<html>a login page</html>", Duration::ZERO).await;
    let error = HubClient::new(&hub)
        .unwrap()
        .register(&registration())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            HubError::InvalidAnswer {
                what: "a registration",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_absent_hub_is_unreachable_and_a_slow_one_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hub = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = HubClient::new(&hub)
        .unwrap()
        .heartbeat("n", "stw_x", &Heartbeat::default())
        .await
        .unwrap_err();
    assert!(matches!(error, HubError::Unreachable { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("onnection refused"), "{error}");

    let (hub, _) = fake_hub(200, "{}", Duration::from_secs(5)).await;
    let client =
        HubClient::with_timeouts(&hub, Duration::from_secs(1), Duration::from_millis(300)).unwrap();
    let error = client
        .heartbeat("n", "stw_x", &Heartbeat::default())
        .await
        .unwrap_err();
    assert!(matches!(error, HubError::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());
}
