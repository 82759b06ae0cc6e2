//! What `steward demo` serves in its own process for the daemon to watch: a healthy site, a
//! planner that flaps, a model that answers too slowly, a warehouse, a certificate about to
//! run out, and a webhook that receives the alerts. Nothing here leaves the loopback address.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

/// The demo's configuration, with `@LISTEN@`, `@PORT@` and `@CERT@` to fill in.
const CONFIG_TEMPLATE: &str = include_str!("steward.toml");

/// How long the planner stays up, then down.
const FLAP_PERIOD_SECS: u64 = 30;
/// How long the model takes to answer: more than its check's condition allows.
const MODEL_DELAY: Duration = Duration::from_millis(1_200);
/// Days the gateway's certificate has left when the demo starts.
pub const CERT_DAYS_LEFT: u64 = 6;

/// The demo's services, running.
pub struct Services {
    /// The loopback port they answer on.
    pub port: u16,
}

/// Starts the demo's services on a free loopback port.
pub async fn serve() -> anyhow::Result<Services> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot listen for the demo's services")?;
    let port = listener
        .local_addr()
        .context("cannot read the demo services' address")?
        .port();
    let received = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/site", get(|| async { r#"{"status":"ok"}"# }))
        .route("/planner", get(planner))
        .route("/model", get(model))
        .route("/warehouse", get(|| async { "ok" }))
        .route(
            "/webhook",
            post(move |body: axum::body::Bytes| webhook(Arc::clone(&received), body)),
        );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the demo's services stopped");
        }
    });
    Ok(Services { port })
}

/// Up for half a minute, then down for half a minute.
async fn planner() -> (StatusCode, &'static str) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if (secs / FLAP_PERIOD_SECS).is_multiple_of(2) {
        (StatusCode::OK, "planning")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    }
}

/// Answers, slowly.
async fn model() -> &'static str {
    tokio::time::sleep(MODEL_DELAY).await;
    "ready"
}

/// Receives Alertmanager's webhook JSON and says so on standard output.
async fn webhook(received: Arc<AtomicU64>, body: axum::body::Bytes) -> StatusCode {
    let n = received.fetch_add(1, Ordering::Relaxed) + 1;
    let summary = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .map(|v| {
            format!(
                "{} {} alert(s) of {}",
                v["status"].as_str().unwrap_or("?"),
                v["alerts"].as_array().map_or(0, Vec::len),
                v["groupLabels"]["alertname"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "a body that is not JSON".to_owned());
    println!("demo webhook: notification {n}: {summary}");
    StatusCode::OK
}

/// Writes a self-signed certificate for the gateway that runs out in `days_left` days.
pub fn write_certificate(path: &Path, days_left: u64) -> anyhow::Result<()> {
    let mut params = rcgen::CertificateParams::new(vec!["gateway.demo.invalid".to_owned()])
        .context("cannot describe the demo certificate")?;
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - Duration::from_secs(30 * 86_400);
    params.not_after = now + Duration::from_secs(days_left * 86_400);
    let key = rcgen::KeyPair::generate().context("cannot make the demo certificate's key")?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the demo certificate")?;
    std::fs::write(path, cert.pem()).with_context(|| format!("cannot write {}", path.display()))
}

/// The demo's configuration for a daemon on `listen`, services on `port` and the gateway's
/// certificate at `cert`.
pub fn config(listen: SocketAddr, port: u16, cert: &Path) -> String {
    CONFIG_TEMPLATE
        .replace("@LISTEN@", &listen.to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@CERT@", &cert.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("gateway.pem");
        write_certificate(&cert, CERT_DAYS_LEFT).unwrap();
        let text = config("127.0.0.1:8710".parse().unwrap(), 4321, &cert);
        assert!(!text.contains('@'), "every placeholder is filled");
        let path = dir.path().join("steward.toml");
        std::fs::write(&path, &text).unwrap();
        let loaded = steward_config::load_file(&path, &|_| None)
            .unwrap_or_else(|e| panic!("the demo config is refused:\n{e}"));
        assert_eq!(loaded.config.registry.services.len(), 5);
        assert_eq!(loaded.config.schedules.len(), 1);
    }
}
