//! `steward-bench ui`: the dashboard's pages under a large platform. The release `steward`
//! runs as a child process with `--checks` services (one HTTP check each, probing a closed
//! loopback port) and `--tasks` stored tasks (due in a year, so they stay queued); a signed-in
//! session then asks for the overview, services and tasks pages one after another and
//! reports each page's answer time (p50/p99) and weight, with the stylesheet and script.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::daemon::{report_log, steward_binary};

/// What to run.
pub struct UiBench {
    /// `sqlite` or `postgres`, for the report.
    pub backend: &'static str,
    /// The PostgreSQL database, when on PostgreSQL.
    pub database: Option<String>,
    /// Services, one check each.
    pub checks: usize,
    /// Tasks stored before measuring.
    pub tasks: usize,
    /// Requests per page.
    pub requests: usize,
}

/// Workspaces the services are spread over.
const WORKSPACES: usize = 50;

/// The pages measured, by path.
const PAGES: [&str; 3] = ["/", "/services", "/tasks"];

/// Runs the benchmark and prints its figures.
pub async fn run(bench: &UiBench) -> anyhow::Result<()> {
    let exe = steward_binary()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, config_text(bench.checks)).context("writing the config")?;
    let log = dir.path().join("steward.log");
    let mut steward = crate::daemon::start(
        &exe,
        &config,
        &dir.path().join("data"),
        bench.database.as_deref(),
        &log,
    )
    .await?;
    let (url, key) = steward.endpoint()?;
    println!(
        "ui: {} on {}, {} checks, {} stored tasks, {} requests per page",
        exe.display(),
        bench.backend,
        bench.checks,
        bench.tasks,
        bench.requests
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    let started = Instant::now();
    store_tasks(&http, &url, &key, bench.tasks).await?;
    println!(
        "  stored {} tasks in {:.1} s",
        bench.tasks,
        started.elapsed().as_secs_f64()
    );
    let cookie = sign_in(&http, &url, &key).await?;
    let mut assets = 0;
    for page in PAGES {
        let (times, bytes, html) = measure(&http, &url, &cookie, page, bench.requests).await?;
        if assets == 0 {
            assets = asset_bytes(&http, &url, &html).await?;
        }
        println!(
            "  {page:<10} p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  HTML {:>6.1} kB, with CSS and JS {:>6.1} kB",
            crate::percentile(&times, 0.50),
            crate::percentile(&times, 0.99),
            crate::percentile(&times, 1.0),
            bytes as f64 / 1e3,
            (bytes + assets) as f64 / 1e3
        );
    }
    steward.stop()?;
    report_log(&log);
    Ok(())
}

/// A config with `checks` services spread over workspaces, and one queue.
fn config_text(checks: usize) -> String {
    // Every page makes several API calls as the session's key; the bench asks for pages back
    // to back, faster than the per-key rate limits allow a person.
    let mut text = String::from(
        "[api.rate_limits]\nadmin = 1000000\noperator = 1000000\nviewer = 1000000\n\n\
         [[queues]]\nname = \"bench\"\nkinds = [\"noop\"]\n\n",
    );
    for w in 0..WORKSPACES {
        text.push_str(&format!("[[workspaces]]\nkey = \"ws{w:02}\"\n\n"));
    }
    for s in 0..checks {
        text.push_str(&format!(
            "[[services]]\nname = \"svc{s:05}\"\nworkspace = \"ws{:02}\"\nurl = \"http://127.0.0.1:9/s{s}\"\n\n",
            s % WORKSPACES
        ));
    }
    text
}

/// Enqueues `tasks` no-op tasks due in a year, so they stay stored and queued.
async fn store_tasks(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    tasks: usize,
) -> anyhow::Result<()> {
    let due = steward_store::now_ms() + 365 * 86_400_000;
    crate::daemon::enqueue_noops(http, url, key, "bench", tasks, due).await
}

/// Signs in through the form and answers the session cookie (`name=value`).
async fn sign_in(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<String> {
    let form = http
        .get(format!("{url}/sign-in"))
        .send()
        .await
        .context("reading the sign-in form")?;
    let pre = cookie_pair(form.headers(), "steward_sign_in")?;
    let html = form.text().await.context("reading the sign-in form")?;
    let csrf = hidden(&html, "csrf")?;
    let answer = http
        .post(format!("{url}/sign-in"))
        .header("cookie", &pre)
        .form(&[("key", key), ("csrf", csrf.as_str()), ("next", "/")])
        .send()
        .await
        .context("signing in")?;
    anyhow::ensure!(
        answer.status() == 303,
        "signing in answered {}",
        answer.status()
    );
    cookie_pair(answer.headers(), "steward_session")
}

fn cookie_pair(headers: &reqwest::header::HeaderMap, name: &str) -> anyhow::Result<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .map(str::to_owned)
        .with_context(|| format!("no {name} cookie"))
}

fn hidden(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).context("no form token")? + marker.len();
    let end = html[start..].find('"').context("no form token")? + start;
    Ok(html[start..end].to_owned())
}

/// Asks for `page` `requests` times in a row; answers the times (ms), the HTML's size and
/// the HTML itself.
async fn measure(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    page: &str,
    requests: usize,
) -> anyhow::Result<(Vec<f64>, usize, String)> {
    let mut times = Vec::with_capacity(requests);
    let mut last = String::new();
    // One first request warms caches and is not counted.
    for i in 0..=requests {
        let started = Instant::now();
        let response = http
            .get(format!("{url}{page}"))
            .header("accept", "text/html")
            .header("cookie", cookie)
            .send()
            .await
            .with_context(|| format!("asking for {page}"))?;
        anyhow::ensure!(
            response.status() == 200,
            "{page} answered {}",
            response.status()
        );
        last = response.text().await.context("reading a page")?;
        if i > 0 {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let bytes = last.len();
    Ok((times, bytes, last))
}

/// The size of the stylesheet and script a page links.
async fn asset_bytes(http: &reqwest::Client, url: &str, html: &str) -> anyhow::Result<usize> {
    let mut total = 0;
    for link in html
        .split('"')
        .filter(|s| s.contains("/assets/steward.") && (s.ends_with(".css") || s.ends_with(".js")))
    {
        let body = http
            .get(format!("{url}{link}"))
            .send()
            .await
            .context("reading an asset")?
            .bytes()
            .await
            .context("reading an asset")?;
        total += body.len();
    }
    Ok(total)
}
