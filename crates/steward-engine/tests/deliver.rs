//! Delivering notifications to real receivers on loopback: HTTP servers that record what they
//! are sent and answer as told (webhook, Slack, Telegram), a port nothing listens on, a server
//! that never answers, and a small SMTP server that speaks just enough of the protocol to take
//! a message (or to refuse one).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: failing loudly is the point

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use steward_core::Secret;
use steward_core::alert::group::Reason;
use steward_core::alert::notice::Notice;
use steward_core::alert::spec::{ReceiverKind, ReceiverSpec};
use steward_core::alert::webhook::NotifiedAlert;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::registry::Labels;
use steward_engine::alerting::deliver::{Deliverer, Delivery, Verdict};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const EXTERNAL_URL: &str = "http://steward.test:8710";
const TOKEN: &str = "123456:AAHsecretTOKENhalf";

// ---------------------------------------------------------------------------------------------
// Fixtures

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn alert(service: &str, state: AlertState, starts_at_ms: i64) -> NotifiedAlert {
    let l = labels(&[
        ("alertname", "ApiDown"),
        ("service", service),
        ("severity", "critical"),
    ]);
    NotifiedAlert {
        fingerprint: Fingerprint::of(&l),
        state,
        labels: l.into(),
        annotations: labels(&[("summary", "API is down")]).into(),
        starts_at_ms,
        ends_at_ms: (state == AlertState::Resolved).then_some(starts_at_ms + 60_000),
        generator_url: None,
    }
}

/// Two firing alerts (api, then web) and a resolved one (db).
fn notice() -> Notice {
    Notice {
        receiver: "ops".into(),
        group_key: "/:ops:{alertname=\"ApiDown\"}".into(),
        group_labels: labels(&[("alertname", "ApiDown")]),
        reason: Reason::Changed,
        alerts: vec![
            alert("web", AlertState::Firing, 2_000),
            alert("db", AlertState::Resolved, 0),
            alert("api", AlertState::Firing, 1_000),
        ],
        encodings: Default::default(),
    }
}

fn receiver(kind: ReceiverKind) -> ReceiverSpec {
    ReceiverSpec {
        name: "ops".into(),
        kind,
        send_resolved: true,
        template: None,
    }
}

fn deliverer() -> Deliverer {
    Deliverer::new(EXTERNAL_URL, Duration::from_secs(5)).unwrap()
}

/// Asserts that no part of a secret shows in a delivery's error.
fn assert_no_secret(delivery: &Delivery, secrets: &[&str]) {
    let error = delivery.error.as_deref().unwrap_or_default();
    for secret in secrets {
        assert!(!error.contains(secret), "secret `{secret}` in: {error}");
    }
    assert!(
        error.chars().all(|c| !c.is_control()),
        "not printable: {error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// An HTTP server that records requests

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Answers every request with one status and body, recording the requests; or, when
/// `status` is 0, reads requests and never answers.
struct HttpSink {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpSink {
    async fn start(status: u16, body: &str) -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = HttpSink {
            addr: listener.local_addr().unwrap(),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let requests = Arc::clone(&sink.requests);
        let body = body.to_owned();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (requests, body) = (Arc::clone(&requests), body.clone());
                tokio::spawn(async move { answer(stream, status, &body, &requests).await });
            }
        });
        sink
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn answer(mut stream: TcpStream, status: u16, body: &str, requests: &Mutex<Vec<Request>>) {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
    requests.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body: data[head_end..head_end + length].to_vec(),
    });
    if status == 0 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    let response = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A loopback address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

// ---------------------------------------------------------------------------------------------
// Webhook

#[tokio::test]
async fn a_webhook_gets_alertmanager_json_with_its_headers() {
    let sink = HttpSink::start(200, "{}").await;
    let kind = ReceiverKind::Webhook {
        url: Secret::new(sink.url("/hook?token=s3cret")),
        headers: BTreeMap::from([
            ("Authorization".to_owned(), Secret::new("Bearer hdr-secret")),
            // The body is JSON whatever the config says.
            ("Content-Type".to_owned(), Secret::new("text/plain")),
        ]),
        max_alerts: 2,
    };
    let delivery = deliverer().deliver(&receiver(kind), &notice(), None).await;
    assert_eq!(
        delivery,
        Delivery {
            status: Some(200),
            error: None,
            verdict: Verdict::Delivered
        }
    );
    let requests = sink.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook?token=s3cret");
    assert_eq!(request.header("authorization"), Some("Bearer hdr-secret"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "ops");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["groupKey"], "/:ops:{alertname=\"ApiDown\"}");
    assert_eq!(body["externalURL"], EXTERNAL_URL);
    assert_eq!(body["truncatedAlerts"], 1);
    assert_eq!(
        body["groupLabels"],
        serde_json::json!({"alertname": "ApiDown"})
    );
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        alerts[0]["labels"]["service"], "api",
        "firing first, oldest first"
    );
    assert_eq!(alerts[1]["labels"]["service"], "web");
    assert_eq!(alerts[0]["status"], "firing");
}

#[tokio::test]
async fn the_configured_external_url_replaces_the_default_at_each_attempt() {
    let sink = HttpSink::start(200, "{}").await;
    let kind = ReceiverKind::Webhook {
        url: Secret::new(sink.url("/hook")),
        headers: BTreeMap::new(),
        max_alerts: 0,
    };
    let deliverer = deliverer();
    for named in [Some("https://steward.example.com"), None] {
        let delivery = deliverer
            .deliver(&receiver(kind.clone()), &notice(), named)
            .await;
        assert_eq!(delivery.verdict, Verdict::Delivered);
    }
    let linked: Vec<serde_json::Value> = sink
        .requests()
        .iter()
        .map(|r| r.json()["externalURL"].clone())
        .collect();
    assert_eq!(linked, ["https://steward.example.com", EXTERNAL_URL]);
}

#[tokio::test]
async fn statuses_decide_retry_or_reject_and_errors_keep_secrets() {
    // The answers echo the secret, as a careless server might.
    let echo = format!(r#"{{"error":"bad token s3cret at /hook?token=s3cret","token":"{TOKEN}"}}"#);
    for (status, verdict) in [
        (500, Verdict::Retry),
        (503, Verdict::Retry),
        (429, Verdict::Retry),
        (400, Verdict::Reject),
        (404, Verdict::Reject),
        (302, Verdict::Reject),
    ] {
        let sink = HttpSink::start(status, &echo).await;
        let kind = ReceiverKind::Webhook {
            url: Secret::new(sink.url("/hook?token=s3cret")),
            headers: BTreeMap::new(),
            max_alerts: 0,
        };
        let delivery = deliverer().deliver(&receiver(kind), &notice(), None).await;
        assert_eq!(delivery.verdict, verdict, "{status}: {delivery:?}");
        assert_eq!(delivery.status, Some(status));
        let error = delivery.error.as_deref().unwrap();
        assert!(
            error.starts_with(&format!("HTTP {status}")),
            "{status}: {error}"
        );
        assert!(error.contains("bad token *** at"), "{error}");
        assert_no_secret(&delivery, &["s3cret"]);
    }
}

#[tokio::test]
async fn a_closed_port_is_retried_without_a_status() {
    let addr = closed_port().await;
    let kind = ReceiverKind::Webhook {
        url: Secret::new(format!("http://{addr}/hook?token=s3cret")),
        headers: BTreeMap::new(),
        max_alerts: 0,
    };
    let delivery = deliverer().deliver(&receiver(kind), &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Retry, "{delivery:?}");
    assert_eq!(delivery.status, None);
    let error = delivery.error.as_deref().unwrap();
    assert!(!error.is_empty());
    assert!(!error.contains("/hook"), "no URL in errors: {error}");
    assert_no_secret(&delivery, &["s3cret"]);

    // Telegram's token is in the path; it never shows either.
    let kind = ReceiverKind::Telegram {
        bot_token: Secret::new(TOKEN),
        chat_id: "42".into(),
        api_url: format!("http://{addr}"),
    };
    let delivery = deliverer().deliver(&receiver(kind), &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Retry);
    assert_eq!(delivery.status, None);
    assert_no_secret(&delivery, &[TOKEN, "AAHsecretTOKENhalf"]);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_is_retried() {
    let sink = HttpSink::start(0, "").await;
    let deliverer = Deliverer::new(EXTERNAL_URL, Duration::from_millis(500)).unwrap();
    let kind = ReceiverKind::Slack {
        webhook_url: Secret::new(sink.url("/services/T000/B000/slacksecret")),
        channel: None,
    };
    let started = Instant::now();
    let delivery = deliverer.deliver(&receiver(kind), &notice(), None).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(delivery.verdict, Verdict::Retry, "{delivery:?}");
    assert_eq!(delivery.status, None);
    assert!(
        delivery.error.as_deref().unwrap().contains("timed out"),
        "{delivery:?}"
    );
    assert_no_secret(&delivery, &["slacksecret"]);
}

// ---------------------------------------------------------------------------------------------
// Slack and Telegram

#[tokio::test]
async fn slack_gets_text_and_channel() {
    let sink = HttpSink::start(200, "ok").await;
    let kind = ReceiverKind::Slack {
        webhook_url: Secret::new(sink.url("/services/T000/B000/XXXX")),
        channel: Some("#ops".into()),
    };
    let delivery = deliverer()
        .deliver(&receiver(kind.clone()), &notice(), None)
        .await;
    assert_eq!(delivery.verdict, Verdict::Delivered, "{delivery:?}");
    let request = &sink.requests()[0];
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["channel"], "#ops");
    let text = body["text"].as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "*[FIRING:2] ApiDown (critical)*", "{text}");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].contains("*ApiDown* `critical` API is down `service=api`"),
        "{text}"
    );

    // A receiver's template replaces the text; no channel, no `channel`.
    let mut custom = receiver(ReceiverKind::Slack {
        webhook_url: Secret::new(sink.url("/hook")),
        channel: None,
    });
    custom.template = Some("{{ firing|length }} firing <{{ external_url }}|steward>".into());
    let delivery = deliverer().deliver(&custom, &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Delivered);
    let body = sink.requests()[1].json();
    assert_eq!(
        body,
        serde_json::json!({"text": format!("2 firing <{EXTERNAL_URL}|steward>")})
    );
}

#[tokio::test]
async fn a_template_that_fails_is_rejected_without_a_request() {
    let sink = HttpSink::start(200, "ok").await;
    let mut spec = receiver(ReceiverKind::Slack {
        webhook_url: Secret::new(sink.url("/hook")),
        channel: None,
    });
    spec.template = Some("{{ title|no_such_filter }}".into());
    let delivery = deliverer().deliver(&spec, &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Reject);
    assert_eq!(delivery.status, None);
    assert!(
        delivery
            .error
            .as_deref()
            .unwrap()
            .starts_with("cannot render the message: template error at line 1: unknown filter"),
        "{delivery:?}"
    );
    spec.template = Some("{# nothing #}  ".into());
    let delivery = deliverer().deliver(&spec, &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Reject);
    assert!(sink.requests().is_empty());
}

#[tokio::test]
async fn telegram_gets_send_message_in_html() {
    let sink = HttpSink::start(200, r#"{"ok":true,"result":{"message_id":1}}"#).await;
    let kind = ReceiverKind::Telegram {
        bot_token: Secret::new(TOKEN),
        chat_id: "-100123".into(),
        api_url: format!("{}/", sink.url("")),
    };
    let delivery = deliverer().deliver(&receiver(kind), &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Delivered, "{delivery:?}");
    assert_eq!(delivery.status, Some(200));
    let request = &sink.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/bot{TOKEN}/sendMessage"));
    let body = request.json();
    assert_eq!(body["chat_id"], -100_123);
    assert_eq!(body["parse_mode"], "HTML");
    assert_eq!(body["disable_web_page_preview"], true);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>[FIRING:2] ApiDown (critical)</b>\n\n🔥 <b>ApiDown</b> (critical): API is down\n<code>service=api</code>"),
        "{text}"
    );
    assert!(text.contains("✅ <b>ApiDown</b>"), "{text}");
}

#[tokio::test]
async fn telegrams_refusals_are_failures_even_under_200() {
    let sink = HttpSink::start(
        200,
        r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
    )
    .await;
    let kind = ReceiverKind::Telegram {
        bot_token: Secret::new(TOKEN),
        chat_id: "@channel".into(),
        api_url: sink.url(""),
    };
    let delivery = deliverer()
        .deliver(&receiver(kind.clone()), &notice(), None)
        .await;
    assert_eq!(delivery.verdict, Verdict::Reject, "{delivery:?}");
    assert_eq!(
        delivery.error.as_deref(),
        Some("Telegram refused (400): Bad Request: chat not found")
    );
    assert_eq!(sink.requests()[0].json()["chat_id"], "@channel");

    let sink = HttpSink::start(
        429,
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
    )
    .await;
    let kind = ReceiverKind::Telegram {
        bot_token: Secret::new(TOKEN),
        chat_id: "42".into(),
        api_url: sink.url(""),
    };
    let delivery = deliverer().deliver(&receiver(kind), &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Retry, "{delivery:?}");
    assert_eq!(delivery.status, Some(429));
    assert_no_secret(&delivery, &[TOKEN]);
}

// ---------------------------------------------------------------------------------------------
// Email

/// A message an SMTP server took.
#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// How the SMTP server behaves.
#[derive(Debug, Clone, Copy, Default)]
struct SmtpMode {
    /// Answers RCPT with 550.
    reject_recipients: bool,
}

/// A small SMTP server on 127.0.0.1: EHLO (offering AUTH PLAIN, never STARTTLS), AUTH, MAIL,
/// RCPT, DATA, RSET, NOOP, QUIT. Records every command and every message taken.
struct SmtpSink {
    addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    commands: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    async fn start(mode: SmtpMode) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = SmtpSink {
            addr: listener.local_addr().unwrap(),
            mails: Arc::new(Mutex::new(Vec::new())),
            commands: Arc::new(Mutex::new(Vec::new())),
        };
        let (mails, commands) = (Arc::clone(&sink.mails), Arc::clone(&sink.commands));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (mails, commands) = (Arc::clone(&mails), Arc::clone(&commands));
                tokio::spawn(async move {
                    let _ = smtp_session(stream, mode, &mails, &commands).await;
                });
            }
        });
        sink
    }

    fn smarthost(&self) -> String {
        self.addr.to_string()
    }
}

async fn smtp_session(
    stream: TcpStream,
    mode: SmtpMode,
    mails: &Mutex<Vec<Mail>>,
    commands: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        commands.lock().unwrap().push(command.clone());
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test greets you\r\n250-8BITMIME\r\n250-AUTH PLAIN\r\n250 SIZE 1000000\r\n",
            "HELO" | "RSET" | "NOOP" => b"250 OK\r\n",
            "AUTH" => b"235 2.7.0 Authentication successful\r\n",
            "MAIL" => {
                mail = Mail {
                    from: address_in(&command),
                    ..Mail::default()
                };
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" if mode.reject_recipients => b"550 5.1.1 No such user here\r\n",
            "RCPT" => {
                mail.to.push(address_in(&command));
                b"250 2.1.5 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(&line);
                }
                mail.data = data;
                mails.lock().unwrap().push(std::mem::take(&mut mail));
                b"250 2.0.0 Queued as 1\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognized\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address between `<` and `>` of a MAIL or RCPT command.
fn address_in(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

fn email(smarthost: String, starttls: bool) -> ReceiverKind {
    ReceiverKind::Email {
        to: vec![
            "oncall@example.com".into(),
            "Team Lead <lead@example.com>".into(),
        ],
        from: "Steward <steward@example.com>".into(),
        smarthost,
        username: None,
        password: None,
        starttls,
    }
}

#[tokio::test]
async fn an_email_reaches_every_recipient_in_one_message() {
    let sink = SmtpSink::start(SmtpMode::default()).await;
    let delivery = deliverer()
        .deliver(&receiver(email(sink.smarthost(), false)), &notice(), None)
        .await;
    assert_eq!(
        delivery,
        Delivery {
            status: Some(250),
            error: None,
            verdict: Verdict::Delivered
        }
    );
    let mails = sink.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "one message for all recipients");
    let mail = &mails[0];
    assert_eq!(mail.from, "steward@example.com");
    assert_eq!(mail.to, ["oncall@example.com", "lead@example.com"]);
    let (head, body) = mail.data.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("\r\nSubject: [FIRING:2] ApiDown (critical)\r\n"),
        "{head}"
    );
    assert!(
        head.contains("From: Steward <steward@example.com>"),
        "{head}"
    );
    assert!(
        head.contains("To: oncall@example.com, \"Team Lead\" <lead@example.com>")
            || head.contains("To: oncall@example.com, Team Lead <lead@example.com>"),
        "{head}"
    );
    assert!(
        head.contains("Content-Type: text/plain; charset=utf-8"),
        "{head}"
    );
    let body = body.replace("\r\n", "\n");
    assert!(
        body.starts_with(
            "[FIRING:2] ApiDown (critical)\n\nFiring (2):\n- ApiDown [critical]: API is down\n"
        ),
        "{body}"
    );
    assert!(body.contains("\nResolved (1):\n- ApiDown"), "{body}");
    assert!(
        body.contains(&format!("Sent by Steward: {EXTERNAL_URL}")),
        "{body}"
    );
    let commands = sink.commands.lock().unwrap().clone();
    assert!(commands[0].starts_with("EHLO "), "{commands:?}");
    assert!(
        !commands.iter().any(|c| c.starts_with("AUTH")),
        "no credentials, no AUTH"
    );
    assert_eq!(commands.last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn an_email_logs_in_when_a_username_is_set_and_takes_the_templates_subject() {
    let sink = SmtpSink::start(SmtpMode::default()).await;
    let mut spec = receiver(ReceiverKind::Email {
        to: vec!["oncall@example.com".into()],
        from: "steward@example.com".into(),
        smarthost: sink.smarthost(),
        username: Some("mailer".into()),
        password: Some(Secret::new("pw-secret")),
        starttls: false,
    });
    spec.template = Some(
        "{% set subject = receiver ~ ': ' ~ firing|length ~ ' firing' %}Custom body for {{ receiver }}"
            .into(),
    );
    let delivery = deliverer().deliver(&spec, &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Delivered, "{delivery:?}");
    let commands = sink.commands.lock().unwrap().clone();
    // AUTH PLAIN carries base64("\0mailer\0pw-secret").
    assert!(
        commands.contains(&"AUTH PLAIN AG1haWxlcgBwdy1zZWNyZXQ=".to_owned()),
        "{commands:?}"
    );
    let mail = sink.mails.lock().unwrap()[0].clone();
    assert!(
        mail.data.contains("\r\nSubject: ops: 2 firing\r\n"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.ends_with("\r\n\r\nCustom body for ops\r\n"),
        "{:?}",
        mail.data
    );
}

#[tokio::test]
async fn starttls_is_required_when_asked_for() {
    let sink = SmtpSink::start(SmtpMode::default()).await;
    let mut kind = email(sink.smarthost(), true);
    if let ReceiverKind::Email {
        username, password, ..
    } = &mut kind
    {
        *username = Some("mailer".into());
        *password = Some(Secret::new("pw-secret"));
    }
    let delivery = deliverer().deliver(&receiver(kind), &notice(), None).await;
    assert_eq!(delivery.verdict, Verdict::Retry, "{delivery:?}");
    assert_eq!(delivery.status, None);
    let error = delivery.error.as_deref().unwrap();
    assert!(
        error.starts_with("SMTP server does not offer STARTTLS, which this receiver requires"),
        "{error}"
    );
    assert_no_secret(&delivery, &["pw-secret"]);
    let commands = sink.commands.lock().unwrap().clone();
    assert!(
        !commands
            .iter()
            .any(|c| c.starts_with("AUTH") || c.starts_with("MAIL")),
        "nothing sent in plain text: {commands:?}"
    );
    assert!(sink.mails.lock().unwrap().is_empty());
}

#[tokio::test]
async fn smtp_refusals_and_unreachable_servers() {
    let sink = SmtpSink::start(SmtpMode {
        reject_recipients: true,
    })
    .await;
    let delivery = deliverer()
        .deliver(&receiver(email(sink.smarthost(), false)), &notice(), None)
        .await;
    assert_eq!(delivery.verdict, Verdict::Reject, "{delivery:?}");
    assert_eq!(delivery.status, Some(550));
    assert!(
        delivery
            .error
            .as_deref()
            .unwrap()
            .contains("No such user here"),
        "{delivery:?}"
    );

    let addr = closed_port().await;
    let delivery = deliverer()
        .deliver(&receiver(email(addr.to_string(), false)), &notice(), None)
        .await;
    assert_eq!(delivery.verdict, Verdict::Retry, "{delivery:?}");
    assert_eq!(delivery.status, None);

    let delivery = deliverer()
        .deliver(&receiver(email("no-port".into(), false)), &notice(), None)
        .await;
    assert_eq!(delivery.verdict, Verdict::Reject, "{delivery:?}");
    assert_eq!(
        delivery.error.as_deref(),
        Some("smarthost `no-port` is not host:port")
    );
}
