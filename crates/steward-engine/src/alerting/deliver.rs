//! One attempt at delivering a notification to its receiver: Alertmanager's webhook JSON, a
//! Slack incoming webhook, Telegram's `sendMessage`, or an email over SMTP. An attempt ends in
//! a [`Verdict`] the sender acts on: delivered, worth retrying (429, 5xx, timeouts, connection
//! failures, SMTP 4xx), or rejected (any other answer, and messages that cannot be rendered or
//! built, which no retry would change).
//!
//! Receivers hold secrets (URLs with tokens, header values, a bot token, a password), so error
//! texts are built without URLs and every secret of the receiver is scrubbed from them before
//! they leave this module: they end up in the store, the API and logs.

use std::error::Error as StdError;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use steward_core::alert::notice::Notice;
use steward_core::alert::spec::{ReceiverKind, ReceiverSpec};
use steward_core::alert::template::{self, Format, Message};
use steward_core::text::one_line;

/// The most bytes of a response body read (enough for any error text or Telegram's answer).
const MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// The longest error text a delivery reports, in characters.
const MAX_ERROR_CHARS: usize = 300;
/// The most characters of a response body quoted in an error.
const MAX_QUOTED_CHARS: usize = 160;

/// Why a [`Deliverer`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The HTTP client could not be built (its TLS set-up failed).
    #[error("cannot build the HTTP client for notifications: {0}")]
    HttpClient(String),
}

/// What the sender should do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver took it.
    Delivered,
    /// It may work later: try again with backoff until the notification expires.
    Retry,
    /// It will not work as configured: give up.
    Reject,
}

impl Verdict {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::Reject => "reject",
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The HTTP status, or the SMTP reply code, when the receiver answered.
    pub status: Option<u16>,
    /// What went wrong: short, printable, free of the receiver's secrets.
    pub error: Option<String>,
    /// What to do next.
    pub verdict: Verdict,
}

impl Delivery {
    fn delivered(status: Option<u16>) -> Self {
        Self {
            status,
            error: None,
            verdict: Verdict::Delivered,
        }
    }

    fn retry(status: Option<u16>, error: impl Into<String>) -> Self {
        Self {
            status,
            error: Some(error.into()),
            verdict: Verdict::Retry,
        }
    }

    fn reject(status: Option<u16>, error: impl Into<String>) -> Self {
        Self {
            status,
            error: Some(error.into()),
            verdict: Verdict::Reject,
        }
    }
}

/// Delivers notifications: one HTTP client shared by every receiver (connections are pooled),
/// a fresh SMTP connection per email.
pub struct Deliverer {
    http: reqwest::Client,
    /// Where messages link to when the config names no `alerting.external_url`.
    default_external_url: String,
    timeout: Duration,
    hello: ClientId,
}

impl Deliverer {
    /// Makes a deliverer whose messages link to `default_external_url` (Steward's URL as
    /// receivers should see it) unless an attempt names another, and whose attempts each take
    /// at most `timeout`.
    pub fn new(
        default_external_url: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, DeliverError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would resend the body (and its secrets) somewhere not configured; a
            // 3xx is an answer to fix in the config instead.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
            .map_err(|e| DeliverError::HttpClient(describe(&e.without_url())))?;
        // SMTP servers may refuse an EHLO of `localhost`; say who we are when we can tell.
        let hello = nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
            .filter(|name| !name.is_empty())
            .map_or_else(ClientId::default, ClientId::Domain);
        Ok(Self {
            http,
            default_external_url: default_external_url.into(),
            timeout,
            hello,
        })
    }

    /// Makes one attempt at delivering `notice` to `receiver`, its message linking to
    /// `external_url` (the config's, as it is now) or else the default. Never fails: what went
    /// wrong is in the [`Delivery`]. Whether resolved notices are wanted (`send_resolved`) is
    /// the caller's decision.
    pub async fn deliver(
        &self,
        receiver: &ReceiverSpec,
        notice: &Notice,
        external_url: Option<&str>,
    ) -> Delivery {
        let external_url = external_url.unwrap_or(&self.default_external_url);
        let attempt = async {
            match &receiver.kind {
                ReceiverKind::Webhook {
                    url,
                    headers,
                    max_alerts,
                } => {
                    let mut map = HeaderMap::new();
                    for (name, value) in headers {
                        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                            return Delivery::reject(
                                None,
                                format!("`{name}` is not a header name"),
                            );
                        };
                        let Ok(mut value) = HeaderValue::from_str(value.expose()) else {
                            return Delivery::reject(
                                None,
                                format!("the value of header `{name}` is not valid in a header"),
                            );
                        };
                        value.set_sensitive(true);
                        map.insert(name, value);
                    }
                    match notice.webhook_json(*max_alerts, external_url) {
                        Ok(json) => {
                            self.post_json(url.expose(), map, json, Answer::Status)
                                .await
                        }
                        Err(e) => Delivery::reject(None, format!("cannot encode the body: {e}")),
                    }
                }
                ReceiverKind::Slack {
                    webhook_url,
                    channel,
                } => {
                    let text = match Self::render(Format::Slack, receiver, notice, external_url) {
                        Ok(message) => message.text,
                        Err(rejected) => return rejected,
                    };
                    let mut body = json!({ "text": text });
                    if let Some(channel) = channel {
                        body["channel"] = json!(channel);
                    }
                    let json = body.to_string().into_bytes();
                    self.post_json(webhook_url.expose(), HeaderMap::new(), json, Answer::Status)
                        .await
                }
                ReceiverKind::Telegram {
                    bot_token,
                    chat_id,
                    api_url,
                } => {
                    let text = match Self::render(Format::Telegram, receiver, notice, external_url)
                    {
                        Ok(message) => message.text,
                        Err(rejected) => return rejected,
                    };
                    // Telegram takes a numeric chat id as a number, a channel as `@name`.
                    let chat = chat_id
                        .trim()
                        .parse::<i64>()
                        .map_or_else(|_| json!(chat_id), |id| json!(id));
                    let body = json!({
                        "chat_id": chat,
                        "text": text,
                        "parse_mode": "HTML",
                        "disable_web_page_preview": true,
                    });
                    let url = format!(
                        "{}/bot{}/sendMessage",
                        api_url.trim_end_matches('/'),
                        bot_token.expose()
                    );
                    self.post_json(
                        &url,
                        HeaderMap::new(),
                        body.to_string().into_bytes(),
                        Answer::Telegram,
                    )
                    .await
                }
                ReceiverKind::Email {
                    to,
                    from,
                    smarthost,
                    username,
                    password,
                    starttls,
                } => {
                    let message = match Self::render(Format::Email, receiver, notice, external_url)
                    {
                        Ok(message) => message,
                        Err(rejected) => return rejected,
                    };
                    let credentials = username.as_ref().map(|user| {
                        Credentials::new(
                            user.clone(),
                            password
                                .as_ref()
                                .map(|p| p.expose().to_owned())
                                .unwrap_or_default(),
                        )
                    });
                    self.email(to, from, smarthost, credentials, *starttls, message)
                        .await
                }
            }
        };
        // Each client has its own timeouts; this one bounds the whole attempt.
        let delivery = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(delivery) => delivery,
            Err(_) => Delivery::retry(
                None,
                format!("timed out after {} ms", self.timeout.as_millis()),
            ),
        };
        let delivery = Delivery {
            error: delivery
                .error
                .map(|e| scrub(&e, &secrets_of(&receiver.kind))),
            ..delivery
        };
        if let Some(error) = &delivery.error {
            tracing::debug!(
                receiver = %receiver.name,
                kind = receiver.kind.as_str(),
                status = ?delivery.status,
                verdict = delivery.verdict.as_str(),
                %error,
                "notification attempt failed"
            );
        }
        delivery
    }

    /// Renders the receiver's text; a template that fails is rejected, since it would fail
    /// the same way on every retry.
    fn render(
        format: Format,
        receiver: &ReceiverSpec,
        notice: &Notice,
        external_url: &str,
    ) -> Result<Message, Delivery> {
        let message = template::render(format, receiver.template.as_deref(), notice, external_url)
            .map_err(|e| Delivery::reject(None, format!("cannot render the message: {e}")))?;
        if message.text.trim().is_empty() {
            return Err(Delivery::reject(
                None,
                "the template rendered an empty message",
            ));
        }
        Ok(message)
    }

    /// POSTs a JSON body and judges the answer.
    async fn post_json(
        &self,
        url: &str,
        mut headers: HeaderMap,
        body: Vec<u8>,
        answer: Answer,
    ) -> Delivery {
        // Whatever the configured headers say, the body is JSON.
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let response = match self.http.post(url).headers(headers).body(body).send().await {
            Ok(response) => response,
            Err(e) => {
                let e = e.without_url();
                // A URL reqwest cannot use is a config problem; anything else on the way
                // (DNS, connect, TLS, timeout, a dropped connection) may pass.
                return if e.is_builder() {
                    Delivery::reject(None, format!("invalid URL: {}", describe(&e)))
                } else {
                    Delivery::retry(None, describe(&e))
                };
            }
        };
        let status = response.status();
        let body = read_body(response).await;
        match answer {
            Answer::Status => judge(status, &body),
            Answer::Telegram => judge_telegram(status, &body),
        }
    }

    /// Sends one email to every recipient over a fresh SMTP connection.
    async fn email(
        &self,
        to: &[String],
        from: &str,
        smarthost: &str,
        credentials: Option<Credentials>,
        starttls: bool,
        message: Message,
    ) -> Delivery {
        let Some((host, port)) = split_host_port(smarthost) else {
            return Delivery::reject(None, format!("smarthost `{smarthost}` is not host:port"));
        };
        let from: Mailbox = match from.parse() {
            Ok(from) => from,
            Err(e) => return Delivery::reject(None, format!("invalid from address: {e}")),
        };
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(message.subject.unwrap_or_default())
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            match address.parse::<Mailbox>() {
                Ok(mailbox) => builder = builder.to(mailbox),
                Err(e) => {
                    return Delivery::reject(None, format!("invalid to address `{address}`: {e}"));
                }
            }
        }
        let email = match builder.body(message.text) {
            Ok(email) => email,
            Err(e) => return Delivery::reject(None, format!("cannot build the email: {e}")),
        };
        let transport = if starttls {
            // STARTTLS is required: without it nothing (credentials included) is sent.
            match AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host) {
                Ok(builder) => builder,
                Err(e) => {
                    return Delivery::reject(None, format!("cannot set up TLS: {}", describe(&e)));
                }
            }
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        };
        let mut transport = transport
            .port(port)
            .timeout(Some(self.timeout))
            .hello_name(self.hello.clone());
        if let Some(credentials) = credentials {
            transport = transport.credentials(credentials);
        }
        match transport.build::<Tokio1Executor>().send(email).await {
            Ok(response) => Delivery::delivered(Some(u16::from(response.code()))),
            Err(e) => {
                let code = e.status().map(u16::from);
                let text = smtp_error(&e, starttls);
                // 5xx replies are the server's final word; everything else (4xx, connection,
                // TLS, a server without STARTTLS, a timeout) may pass or be fixed there.
                if e.is_permanent() {
                    Delivery::reject(code, text)
                } else {
                    Delivery::retry(code, text)
                }
            }
        }
    }
}

/// How a receiver's answer is judged.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// By the HTTP status alone.
    Status,
    /// By Telegram's `{"ok": …}` too.
    Telegram,
}

/// The verdict an HTTP status calls for: 2xx delivered; 408, 429 and 5xx retry; anything else
/// (other 4xx, and 3xx since redirects are not followed) reject.
fn verdict_for(status: StatusCode) -> Verdict {
    if status.is_success() {
        Verdict::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Verdict::Retry
    } else {
        Verdict::Reject
    }
}

fn judge(status: StatusCode, body: &[u8]) -> Delivery {
    let code = Some(status.as_u16());
    match verdict_for(status) {
        Verdict::Delivered => Delivery::delivered(code),
        verdict => Delivery {
            status: code,
            error: Some(http_error(status, body)),
            verdict,
        },
    }
}

/// Telegram answers `{"ok": true, …}` or `{"ok": false, "error_code": …, "description": …}`;
/// only the former is a delivery, whatever the status.
fn judge_telegram(status: StatusCode, body: &[u8]) -> Delivery {
    #[derive(serde::Deserialize)]
    struct Reply {
        ok: bool,
        error_code: Option<u16>,
        description: Option<String>,
    }
    let code = Some(status.as_u16());
    match serde_json::from_slice::<Reply>(body) {
        Ok(reply) if reply.ok && status.is_success() => Delivery::delivered(code),
        Ok(reply) => {
            let said = reply
                .error_code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(status);
            let verdict = match verdict_for(said) {
                // `ok: false` under a 2xx: a failure all the same, and not a passing one.
                Verdict::Delivered => Verdict::Reject,
                verdict => verdict,
            };
            let description = reply
                .description
                .as_deref()
                .map_or_else(|| "no description".to_owned(), |d| quote(d.as_bytes()));
            Delivery {
                status: code,
                error: Some(format!(
                    "Telegram refused ({}): {description}",
                    said.as_u16()
                )),
                verdict,
            }
        }
        Err(_) if status.is_success() => Delivery::retry(
            code,
            format!("HTTP {}: not a Telegram API answer", status.as_u16()),
        ),
        Err(_) => judge(status, body),
    }
}

fn http_error(status: StatusCode, body: &[u8]) -> String {
    let quoted = quote(body);
    let reason = status.canonical_reason().unwrap_or("");
    let mut text = format!("HTTP {} {reason}", status.as_u16())
        .trim_end()
        .to_owned();
    if !quoted.is_empty() {
        text.push_str(": ");
        text.push_str(&quoted);
    }
    text
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of a body; a body that breaks off is kept as far as
/// it came, since the status already says what happened.
async fn read_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// The start of a response body as one printable line.
fn quote(body: &[u8]) -> String {
    // The quote keeps MAX_QUOTED_CHARS characters before its ellipsis.
    one_line(&String::from_utf8_lossy(body), MAX_QUOTED_CHARS + 1)
}

/// An error with its causes, each once (libraries often repeat their source's text).
fn describe(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn smtp_error(error: &lettre::transport::smtp::Error, starttls: bool) -> String {
    let text = describe(error);
    if starttls && text.contains("STARTTLS") {
        format!("SMTP server does not offer STARTTLS, which this receiver requires ({text})")
    } else if error.is_timeout() {
        format!("SMTP timed out: {text}")
    } else {
        format!("SMTP: {text}")
    }
}

/// `host:port`, with IPv6 hosts in brackets (`[::1]:25`).
fn split_host_port(smarthost: &str) -> Option<(&str, u16)> {
    let (host, port) = smarthost.trim().rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// Every secret a receiver holds, longest first (so a URL is scrubbed before a token in it).
fn secrets_of(kind: &ReceiverKind) -> Vec<String> {
    let mut secrets: Vec<String> = match kind {
        ReceiverKind::Webhook { url, headers, .. } => {
            let mut secrets = url_parts(url.expose());
            secrets.extend(headers.values().map(|s| s.expose().to_owned()));
            secrets
        }
        ReceiverKind::Slack { webhook_url, .. } => url_parts(webhook_url.expose()),
        ReceiverKind::Telegram { bot_token, .. } => {
            let token = bot_token.expose();
            // A bot token is `id:secret`; the secret half alone must not show either.
            let mut secrets = vec![token.to_owned()];
            if let Some((_, half)) = token.split_once(':') {
                secrets.push(half.to_owned());
            }
            secrets
        }
        ReceiverKind::Email { password, .. } => {
            password.iter().map(|p| p.expose().to_owned()).collect()
        }
    };
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// A secret URL and the parts of it a server might echo on their own: its path and query,
/// query values, a password, and long path segments (Slack's and most hooks' tokens).
fn url_parts(url: &str) -> Vec<String> {
    let mut parts = vec![url.to_owned()];
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return parts;
    };
    let path = parsed.path();
    parts.push(match parsed.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    });
    parts.extend(parsed.query().map(str::to_owned));
    parts.extend(parsed.password().map(str::to_owned));
    parts.extend(
        parsed
            .query_pairs()
            .map(|(_, value)| value.into_owned())
            .filter(|value| value.len() >= 4),
    );
    parts.extend(
        path.split('/')
            .filter(|segment| segment.len() >= 16)
            .map(str::to_owned),
    );
    // The bare "/" of a URL without a path is no secret.
    parts.retain(|p| p.len() > 1);
    parts
}

/// Replaces every secret with `***` and keeps the text short and on one line.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        text = text.replace(secret.as_str(), "***");
    }
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > MAX_ERROR_CHARS {
        let mut cut: String = flat.chars().take(MAX_ERROR_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use steward_core::Secret;

    #[test]
    fn statuses_map_to_verdicts() {
        for (code, verdict) in [
            (200, Verdict::Delivered),
            (204, Verdict::Delivered),
            (301, Verdict::Reject),
            (400, Verdict::Reject),
            (401, Verdict::Reject),
            (404, Verdict::Reject),
            (408, Verdict::Retry),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (503, Verdict::Retry),
        ] {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
            assert_eq!(verdict_for(status), verdict, "{code}");
        }
    }

    #[test]
    fn telegram_answers_are_read() {
        let ok = judge_telegram(StatusCode::OK, br#"{"ok":true,"result":{}}"#);
        assert_eq!(ok.verdict, Verdict::Delivered);
        let refused = judge_telegram(
            StatusCode::OK,
            br#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        );
        assert_eq!(refused.verdict, Verdict::Reject);
        assert_eq!(
            refused.error.as_deref(),
            Some("Telegram refused (400): Bad Request: chat not found")
        );
        let limited = judge_telegram(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5"}"#,
        );
        assert_eq!(limited.verdict, Verdict::Retry);
        assert_eq!(limited.status, Some(429));
        let garbled = judge_telegram(StatusCode::OK, b"<html>proxy</html>");
        assert_eq!(garbled.verdict, Verdict::Retry);
        let gateway = judge_telegram(StatusCode::BAD_GATEWAY, b"<html>proxy</html>");
        assert_eq!(gateway.verdict, Verdict::Retry);
        assert_eq!(
            gateway.error.as_deref(),
            Some("HTTP 502 Bad Gateway: <html>proxy</html>")
        );
    }

    #[test]
    fn smarthosts_split() {
        assert_eq!(
            split_host_port("smtp.example.com:587"),
            Some(("smtp.example.com", 587))
        );
        assert_eq!(split_host_port("[::1]:25"), Some(("::1", 25)));
        assert_eq!(split_host_port("smtp.example.com"), None);
        assert_eq!(split_host_port(":25"), None);
        assert_eq!(split_host_port("host:99999"), None);
    }

    #[test]
    fn secrets_are_scrubbed_longest_first() {
        let kind = ReceiverKind::Telegram {
            bot_token: Secret::new("123456:AAH-secret-half"),
            chat_id: "1".into(),
            api_url: "http://x".into(),
        };
        let secrets = secrets_of(&kind);
        assert_eq!(
            scrub(
                "url http://x/bot123456:AAH-secret-half/sendMessage, half AAH-secret-half\n",
                &secrets
            ),
            "url http://x/bot***/sendMessage, half *** "
        );
        let kind = ReceiverKind::Webhook {
            url: Secret::new("http://h/hook?token=t0k"),
            headers: BTreeMap::from([("Authorization".to_owned(), Secret::new("Bearer xyz"))]),
            max_alerts: 0,
        };
        assert_eq!(
            scrub(
                "to http://h/hook?token=t0k with Bearer xyz",
                &secrets_of(&kind)
            ),
            "to *** with ***"
        );
        let kind = ReceiverKind::Slack {
            webhook_url: Secret::new(
                "https://user:pa55word@hooks.test/services/T0/B0/abcdefghijklmnopqrstuvwx?k=v1234",
            ),
            channel: None,
        };
        assert_eq!(
            scrub(
                "path /services/T0/B0/abcdefghijklmnopqrstuvwx?k=v1234, segment abcdefghijklmnopqrstuvwx, \
                 value v1234, password pa55word, host hooks.test",
                &secrets_of(&kind)
            ),
            "path ***, segment ***, value ***, password ***, host hooks.test"
        );
        assert_eq!(
            scrub(&"x".repeat(1000), &[]).chars().count(),
            MAX_ERROR_CHARS
        );
    }
}
