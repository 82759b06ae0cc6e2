//! `steward-bench alerts`: external alerts into a real `steward up`, end to end.
//!
//! The release `steward` binary runs as a child process with a generated config whose one
//! webhook receiver is served by this process on loopback. Alerts are posted to
//! `/api/v2/alerts` in Alertmanager's shape, in batches on a fixed timetable, at each rate in
//! turn; each step's alerts fall into fresh groups (`group_by = ["alertname"]`), so every group
//! is notified once after `group_wait` (`group_interval` and `repeat_interval` are far longer
//! than a run). For each step it reports the alerts accepted per second, how late each group's
//! notification arrived past its group_wait, duplicates and losses, and the daemon's RSS and
//! CPU time.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::daemon::{cpu_time, memory, report_log, steward_binary};

/// Alertnames of the `few` shape per step.
const FEW_GROUPS: usize = 10;
/// How long a step waits for its notifications past its last response and group_wait.
const NOTIFY_GRACE: Duration = Duration::from_secs(10);

/// How the posted alerts fall into groups.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Ten alertnames per step, every alert unique: a few large groups.
    Few,
    /// One alertname per alert: `--groups` groups of one alert each.
    Many,
}

/// What to run.
pub struct AlertsBench {
    /// `sqlite` or `postgres`, as printed.
    pub backend: &'static str,
    /// A `postgres://` URL for the daemon; `None` runs it on SQLite in a temporary directory.
    pub database: Option<String>,
    /// How alerts fall into groups.
    pub shape: Shape,
    /// Target rates in alerts per second, one step each.
    pub rates: Vec<u64>,
    /// Seconds each `few` step posts for.
    pub seconds: u64,
    /// One-alert groups per `many` step.
    pub groups: usize,
    /// Alerts per request.
    pub batch: usize,
    /// Requests in flight at most.
    pub in_flight: usize,
    /// The route's group_wait.
    pub group_wait: Duration,
    /// Where the daemon's log goes (default: its temporary directory, removed at the end).
    pub steward_log: Option<PathBuf>,
}

/// Runs every step against one daemon and prints a row per step.
pub async fn run(bench: &AlertsBench) -> anyhow::Result<()> {
    let exe = steward_binary()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let inbox = Arc::new(Inbox::default());
    let hook = serve_receiver(Arc::clone(&inbox)).await?;
    let config = write_config(dir.path(), bench, &hook)?;
    let log = bench
        .steward_log
        .clone()
        .unwrap_or_else(|| dir.path().join("steward.log"));
    let mut steward = crate::daemon::start(
        &exe,
        &config,
        &dir.path().join("data"),
        bench.database.as_deref(),
        &log,
    )
    .await?;
    let pid = steward.pid()?;
    let (url, key) = steward.endpoint()?;
    println!(
        "alerts: {} on {}, shape {}, batches of {}, up to {} requests in flight, group_wait {} ms; steward pid {pid}, log {}",
        exe.display(),
        bench.backend,
        match bench.shape {
            Shape::Few => format!(
                "few ({FEW_GROUPS} groups per step, {} s per step)",
                bench.seconds
            ),
            Shape::Many => format!("many ({} one-alert groups per step)", bench.groups),
        },
        bench.batch,
        bench.in_flight,
        bench.group_wait.as_millis(),
        log.display()
    );
    let (rss, _) = memory(pid)?;
    println!("  steward RSS at start: {:.1} MB", rss as f64 / 1e6);
    print_header(bench.shape);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.in_flight)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let endpoint = format!("{url}/api/v2/alerts");
    let mut steps = Vec::new();
    for (index, &rate) in bench.rates.iter().enumerate() {
        let plan = StepPlan::new(bench, index, rate);
        let (cpu_before, own_before) = (cpu_time(pid)?, crate::cpu_time()?);
        let (stall_before, step_start) = (cpu_stall(), Instant::now());
        let metrics_before = scrape(&client, &url, &key).await;
        let posted = post(&client, &endpoint, &key, &plan, bench, rate).await;
        let outcome = wait_for_notifications(&inbox, &plan, &posted, bench).await;
        let cpu = cpu_time(pid)? - cpu_before;
        let own = crate::cpu_time()? - own_before;
        let stall = stall_share(stall_before, cpu_stall(), step_start.elapsed());
        let (rss, peak) = memory(pid)?;
        print_row(
            bench.shape,
            rate,
            &posted,
            &outcome,
            (rss, peak),
            (cpu, own),
            stall,
        );
        if let Some(error) = &posted.first_error {
            println!("    first error: {error}");
        }
        let metrics_after = scrape(&client, &url, &key).await;
        print_store_time(&metrics_before, &metrics_after);
        steps.push((plan, posted, outcome));
    }
    // Anything arriving late (a second notification of a group) is a duplicate all the same.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (plan, posted, outcome) in &steps {
        let again = tally(
            &inbox,
            plan,
            posted,
            bench.group_wait,
            bench.shape == Shape::Many,
        );
        if again.duplicates != outcome.duplicates
            || again.duplicate_alerts != outcome.duplicate_alerts
        {
            println!(
                "  step {} ({} alerts/s): {} duplicate notifications and {} duplicate alerts by the end of the run",
                plan.index + 1,
                plan.rate,
                again.duplicates,
                again.duplicate_alerts
            );
        }
    }
    let malformed = inbox.lock().malformed;
    if malformed > 0 {
        println!("  {malformed} notifications could not be read as Alertmanager's webhook JSON");
    }
    println!(
        "  store: the daemon's time in store calls during the step (steward_store_operation_duration_seconds, waits for the connection included), the top 4; outbox: a notification's decision to its delivery (steward_notification_delay_seconds)"
    );
    println!(
        "  latency: a group's first notification's arrival minus (its first alert's send + group_wait; negative: notified early); dup: notifications beyond the first per group{}; lost: groups never notified{}; RSS, peak and CPU s: steward's; own s: the bench's CPU; stall %: the share of the step some task on this host waited for a CPU (/proc/pressure/cpu): a contended host lengthens every latency",
        if bench.shape == Shape::Many {
            " / alerts repeated within a group"
        } else {
            ""
        },
        if bench.shape == Shape::Many {
            " / alerts in no notification"
        } else {
            ""
        },
    );
    steward.stop()?;
    report_log(&log);
    Ok(())
}

/// The daemon's config: one webhook receiver (this process), grouping by alertname, no
/// throttling of the API.
fn write_config(dir: &Path, bench: &AlertsBench, hook: &str) -> anyhow::Result<PathBuf> {
    let text = format!(
        r#"[api]
max_body_bytes = 67108864

[api.rate_limits]
admin = 1000000
operator = 1000000

[alerting]
resolve_timeout = "1h"

[[alerting.receivers]]
name = "bench"
type = "webhook"
url = "{hook}"

[alerting.route]
receiver = "bench"
group_by = ["alertname"]
group_wait = "{}ms"
group_interval = "5m"
repeat_interval = "4h"
"#,
        bench.group_wait.as_millis()
    );
    let path = dir.join("steward.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// The receiver

/// What the receiver was sent.
#[derive(Default)]
struct Inbox(Mutex<Received>);

#[derive(Default)]
struct Received {
    notifications: Vec<Notification>,
    malformed: u64,
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One notification as it arrived.
struct Notification {
    at: Instant,
    group_key: String,
    /// The group's alertname.
    group: String,
    /// Its alerts' fingerprints and `instance` labels.
    alerts: Vec<(String, String)>,
}

/// The parts of Alertmanager's webhook JSON (version 4) looked at: only those, so that parsing
/// a large group's body takes the receiver little CPU, which it shares with the daemon under
/// test (a real receiver runs elsewhere).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody {
    group_key: String,
    #[serde(default)]
    group_labels: GroupLabels,
    #[serde(default)]
    alerts: Vec<WebhookAlert>,
}

/// The grouping label looked at.
#[derive(Default, Deserialize)]
struct GroupLabels {
    #[serde(default)]
    alertname: String,
}

#[derive(Deserialize)]
struct WebhookAlert {
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    labels: AlertLabels,
}

/// The alert label looked at.
#[derive(Default, Deserialize)]
struct AlertLabels {
    #[serde(default)]
    instance: String,
}

/// Serves the webhook receiver on loopback; answers its URL.
async fn serve_receiver(inbox: Arc<Inbox>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the receiver")?;
    let addr = listener.local_addr().context("the receiver's address")?;
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(inbox);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the receiver stopped: {error}");
        }
    });
    Ok(format!("http://{addr}/hook"))
}

/// Notes when a notification arrived and answers 200 at once; the body is parsed off the
/// runtime, so that parsing one large body never holds back the arrival time of the next.
async fn receive(State(inbox): State<Arc<Inbox>>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    tokio::task::spawn_blocking(move || record(&inbox, at, &body));
    StatusCode::OK
}

/// Records a notification that arrived `at`.
fn record(inbox: &Inbox, at: Instant, body: &[u8]) {
    match serde_json::from_slice::<WebhookBody>(body) {
        Ok(body) => {
            let notification = Notification {
                at,
                group: body.group_labels.alertname,
                group_key: body.group_key,
                alerts: body
                    .alerts
                    .into_iter()
                    .map(|a| (a.fingerprint, a.labels.instance))
                    .collect(),
            };
            inbox.lock().notifications.push(notification);
        }
        Err(_) => inbox.lock().malformed += 1,
    }
}

// ---------------------------------------------------------------------------------------------
// A step

/// One step's alerts, ready to post.
struct StepPlan {
    index: usize,
    rate: u64,
    /// Alertnames, by group index.
    groups: Vec<String>,
    /// Group index by alertname.
    group_of: HashMap<String, usize>,
    batches: Vec<Batch>,
}

/// One request's alerts.
struct Batch {
    body: Bytes,
    /// Groups of its alerts (distinct).
    groups: Vec<usize>,
    /// `instance` labels of its alerts.
    instances: Vec<String>,
}

impl StepPlan {
    /// Fresh alertnames for step `index` (so no group of an earlier step is joined), every
    /// alert unique by its `instance` label.
    fn new(bench: &AlertsBench, index: usize, rate: u64) -> Self {
        let (alerts, group_count) = match bench.shape {
            Shape::Few => (
                usize::try_from(rate.saturating_mul(bench.seconds)).unwrap_or(usize::MAX),
                FEW_GROUPS,
            ),
            Shape::Many => (bench.groups, bench.groups),
        };
        let groups: Vec<String> = (0..group_count)
            .map(|g| format!("BenchS{}R{rate}G{g}", index + 1))
            .collect();
        let group_of = groups
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        let mut batches = Vec::with_capacity(alerts.div_ceil(bench.batch));
        let mut start = 0;
        while start < alerts {
            let end = (start + bench.batch).min(alerts);
            let mut body = String::with_capacity((end - start) * 160);
            body.push('[');
            let mut in_batch = Vec::new();
            let mut instances = Vec::with_capacity(end - start);
            for i in start..end {
                let group = i % group_count;
                if !in_batch.contains(&group) {
                    in_batch.push(group);
                }
                let instance = format!("s{}-{i}", index + 1);
                if i > start {
                    body.push(',');
                }
                let _ = write!(
                    body,
                    r#"{{"labels":{{"alertname":"{}","instance":"{instance}","severity":"warning","job":"bench"}},"annotations":{{"summary":"steward-bench alert {i}"}}}}"#,
                    groups[group]
                );
                instances.push(instance);
            }
            body.push(']');
            batches.push(Batch {
                body: Bytes::from(body),
                groups: in_batch,
                instances,
            });
            start = end;
        }
        Self {
            index,
            rate,
            groups,
            group_of,
            batches,
        }
    }
}

/// What posting a step came to.
struct Posted {
    /// When each batch was sent, and whether it was accepted.
    sent: Vec<(Instant, bool)>,
    accepted_alerts: usize,
    errors: usize,
    first_error: Option<String>,
    /// From the start of the step (one batch interval before the first send) to the last
    /// response.
    elapsed: Duration,
    last_response: Instant,
}

/// Posts a step's batches on the timetable of `rate`, with at most `in_flight` requests open.
async fn post(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    plan: &StepPlan,
    bench: &AlertsBench,
    rate: u64,
) -> Posted {
    let slots = Arc::new(Semaphore::new(bench.in_flight));
    let per_batch = bench.batch as f64 / rate as f64;
    let mut requests = JoinSet::new();
    let mut sent = Vec::with_capacity(plan.batches.len());
    let start = Instant::now();
    for (k, batch) in plan.batches.iter().enumerate() {
        // Each batch goes at the end of the interval its alerts accumulated over.
        let due = start + Duration::from_secs_f64(per_batch * (k + 1) as f64);
        tokio::time::sleep_until(due.into()).await;
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        sent.push((Instant::now(), false));
        let request = client
            .post(endpoint)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(batch.body.clone());
        requests.spawn(async move {
            let outcome = match request.send().await {
                Ok(response) if response.status() == reqwest::StatusCode::OK => {
                    // Read to the end so the connection is reused.
                    let _ = response.bytes().await;
                    Ok(())
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    Err(format!(
                        "{status}: {}",
                        text.chars().take(200).collect::<String>()
                    ))
                }
                Err(error) => Err(error.to_string()),
            };
            drop(slot);
            (k, outcome, Instant::now())
        });
    }
    let mut posted = Posted {
        sent,
        accepted_alerts: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        last_response: start,
    };
    while let Some(done) = requests.join_next().await {
        let Ok((k, outcome, at)) = done else {
            posted.errors += 1;
            continue;
        };
        posted.last_response = posted.last_response.max(at);
        match outcome {
            Ok(()) => {
                posted.sent[k].1 = true;
                posted.accepted_alerts += plan.batches[k].instances.len();
            }
            Err(error) => {
                posted.errors += 1;
                posted.first_error.get_or_insert(error);
            }
        }
    }
    posted.elapsed = posted.last_response.saturating_duration_since(start);
    posted
}

/// What the receiver heard of a step.
#[derive(Default)]
struct Outcome {
    /// Groups with an accepted alert.
    expected: usize,
    notified: usize,
    /// Past group_wait, in ms, sorted.
    latencies_ms: Vec<f64>,
    duplicates: usize,
    duplicate_alerts: usize,
    lost: usize,
    lost_alerts: usize,
}

/// Waits until every group with an accepted alert was notified (and, for one-alert groups,
/// every accepted alert was in a notification), or `group_wait` + 10 s past the last response.
async fn wait_for_notifications(
    inbox: &Inbox,
    plan: &StepPlan,
    posted: &Posted,
    bench: &AlertsBench,
) -> Outcome {
    let deadline = posted.last_response + bench.group_wait + NOTIFY_GRACE;
    loop {
        let outcome = tally(
            inbox,
            plan,
            posted,
            bench.group_wait,
            bench.shape == Shape::Many,
        );
        let complete = outcome.lost == 0 && outcome.lost_alerts == 0;
        if complete || Instant::now() >= deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts what the receiver heard of a step so far.
/// Alerts are checked one by one only for one-alert groups (`per_alert`): a `few` group's later
/// alerts are due only after group_interval, past the end of the run.
fn tally(
    inbox: &Inbox,
    plan: &StepPlan,
    posted: &Posted,
    group_wait: Duration,
    per_alert: bool,
) -> Outcome {
    // Each group's clock starts with its first accepted alert.
    let mut first_sent: Vec<Option<Instant>> = vec![None; plan.groups.len()];
    let mut expected_alerts: HashSet<&str> = HashSet::new();
    for (batch, &(at, accepted)) in plan.batches.iter().zip(&posted.sent) {
        if !accepted {
            continue;
        }
        for &g in &batch.groups {
            let first = first_sent[g].get_or_insert(at);
            *first = (*first).min(at);
        }
        if per_alert {
            expected_alerts.extend(batch.instances.iter().map(String::as_str));
        }
    }
    let mut outcome = Outcome {
        expected: first_sent.iter().filter(|f| f.is_some()).count(),
        ..Outcome::default()
    };
    let received = inbox.lock();
    let mut first_arrival: Vec<Option<Instant>> = vec![None; plan.groups.len()];
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    let mut fingerprints: HashMap<(&str, &str), usize> = HashMap::new();
    let mut told: HashSet<&str> = HashSet::new();
    for n in &received.notifications {
        let Some(&g) = plan.group_of.get(&n.group) else {
            continue;
        };
        let first = first_arrival[g].get_or_insert(n.at);
        *first = (*first).min(n.at);
        *per_key.entry(n.group_key.as_str()).or_default() += 1;
        if !per_alert {
            continue;
        }
        for (fingerprint, instance) in &n.alerts {
            *fingerprints
                .entry((n.group_key.as_str(), fingerprint.as_str()))
                .or_default() += 1;
            told.insert(instance.as_str());
        }
    }
    outcome.duplicates = per_key.values().map(|n| n - 1).sum();
    outcome.duplicate_alerts = fingerprints.values().map(|n| n - 1).sum();
    for (sent, arrived) in first_sent.iter().zip(&first_arrival) {
        match (sent, arrived) {
            (Some(sent), Some(arrived)) => {
                outcome.notified += 1;
                let since_send = arrived.saturating_duration_since(*sent).as_secs_f64();
                outcome
                    .latencies_ms
                    .push((since_send - group_wait.as_secs_f64()) * 1_000.0);
            }
            (Some(_), None) => outcome.lost += 1,
            (None, _) => {}
        }
    }
    outcome.latencies_ms.sort_by(f64::total_cmp);
    outcome.lost_alerts = expected_alerts.difference(&told).count();
    outcome
}

/// The nearest-rank percentile `p` (0–1) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn shown(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| format!("{ms:.1}"))
}

fn print_header(shape: Shape) {
    let (dup, lost) = match shape {
        Shape::Few => ("dup", "lost"),
        Shape::Many => ("dup n/a", "lost g/a"),
    };
    println!(
        "  {:>7} {:>7} {:>10} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8} {:>6} {:>6} {:>7}",
        "rate/s",
        "alerts",
        "accepted/s",
        "errors",
        "groups",
        "notified",
        "p50 ms",
        "p99 ms",
        "max ms",
        dup,
        lost,
        "RSS MB",
        "peak MB",
        "CPU s",
        "own s",
        "stall %"
    );
}

/// One step's row: `memory` is the daemon's (RSS, peak), `cpu` its CPU time and the bench's,
/// `stall` the host's CPU stall share.
fn print_row(
    shape: Shape,
    rate: u64,
    posted: &Posted,
    outcome: &Outcome,
    memory: (u64, u64),
    cpu: (Duration, Duration),
    stall: Option<f64>,
) {
    let (dup, lost) = match shape {
        Shape::Few => (outcome.duplicates.to_string(), outcome.lost.to_string()),
        Shape::Many => (
            format!("{}/{}", outcome.duplicates, outcome.duplicate_alerts),
            format!("{}/{}", outcome.lost, outcome.lost_alerts),
        ),
    };
    let secs = posted.elapsed.as_secs_f64();
    let accepted = if secs > 0.0 {
        posted.accepted_alerts as f64 / secs
    } else {
        0.0
    };
    println!(
        "  {:>7} {:>7} {:>10.0} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7.1} {:>8.1} {:>6.2} {:>6.2} {:>7}",
        rate,
        posted.accepted_alerts,
        accepted,
        posted.errors,
        outcome.expected,
        outcome.notified,
        shown(percentile(&outcome.latencies_ms, 0.50)),
        shown(percentile(&outcome.latencies_ms, 0.99)),
        shown(outcome.latencies_ms.last().copied()),
        dup,
        lost,
        memory.0 as f64 / 1e6,
        memory.1 as f64 / 1e6,
        cpu.0.as_secs_f64(),
        cpu.1.as_secs_f64(),
        stall.map_or_else(|| "-".to_owned(), |share| format!("{:.1}", share * 100.0))
    );
}

/// The host's CPU stall so far: microseconds in which some runnable task waited for a CPU
/// (Linux's pressure stall information; `None` where the kernel does not report it).
fn cpu_stall() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    text.lines()
        .find(|line| line.starts_with("some "))?
        .split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?
        .parse()
        .ok()
}

/// The share of `elapsed` some task on the host waited for a CPU, from two readings of
/// [`cpu_stall`]: a contended host makes every latency longer.
fn stall_share(before: Option<u64>, after: Option<u64>, elapsed: Duration) -> Option<f64> {
    let stalled_us = after?.checked_sub(before?)?;
    let elapsed_us = elapsed.as_micros();
    (elapsed_us > 0).then(|| stalled_us as f64 / elapsed_us as f64)
}

/// The daemon's store-call and notification-delay totals from `/metrics`, by series (empty when
/// it cannot be read).
async fn scrape(client: &reqwest::Client, url: &str, key: &str) -> HashMap<String, f64> {
    let text = match client
        .get(format!("{url}/metrics"))
        .bearer_auth(key)
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => response.text().await.unwrap_or_default(),
        _ => String::new(),
    };
    text.lines()
        .filter(|l| {
            l.starts_with("steward_store_operation_duration_seconds_")
                || l.starts_with("steward_notification_delay_seconds_")
                || l.starts_with("steward_notification_attempt_seconds_")
        })
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse::<f64>().ok()?))
        })
        .collect()
}

/// Prints where the daemon's store time went between two scrapes, and the outbox delay.
fn print_store_time(before: &HashMap<String, f64>, after: &HashMap<String, f64>) {
    let delta = |series: &str| {
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    let mut operations: Vec<(String, f64, f64)> = after
        .keys()
        .filter_map(|series| {
            let labels = series.strip_prefix("steward_store_operation_duration_seconds_sum")?;
            let operation = labels
                .split("operation=\"")
                .nth(1)?
                .split('"')
                .next()?
                .to_owned();
            let count = delta(&format!(
                "steward_store_operation_duration_seconds_count{labels}"
            ));
            Some((operation, delta(series), count))
        })
        .filter(|(_, _, count)| *count > 0.0)
        .collect();
    if operations.is_empty() {
        return;
    }
    operations.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut line = String::from("    store:");
    for (operation, secs, count) in operations.iter().take(4) {
        let _ = write!(
            line,
            " {operation} {count:.0}x {secs:.2} s ({:.1} ms);",
            secs * 1_000.0 / count
        );
    }
    let delivered = delta("steward_notification_delay_seconds_count");
    if delivered > 0.0 {
        let _ = write!(
            line,
            " outbox: {delivered:.0} delivered {:.0} ms after their decision on average",
            delta("steward_notification_delay_seconds_sum") * 1_000.0 / delivered
        );
    }
    let attempts: (f64, f64) = after
        .keys()
        .filter(|series| series.starts_with("steward_notification_attempt_seconds_count"))
        .map(|count| {
            let sum = count.replacen("_count", "_sum", 1);
            (delta(count), delta(&sum))
        })
        .fold((0.0, 0.0), |(n, t), (dn, dt)| (n + dn, t + dt));
    if attempts.0 > 0.0 {
        let _ = write!(
            line,
            ", each attempt taking {:.0} ms",
            attempts.1 * 1_000.0 / attempts.0
        );
    }
    println!("{}", line.trim_end_matches(';'));
}

/// Reads a duration such as `2s`, `500ms`, `1m` or `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 2s or 500ms"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1_000.0,
        "s" | "" => number,
        "m" => number * 60.0,
        _ => return Err(format!("`{text}`: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_share_is_the_stalled_part_of_the_step() {
        let second = Duration::from_secs(1);
        assert_eq!(stall_share(Some(100), Some(250_100), second), Some(0.25));
        assert_eq!(stall_share(None, Some(1), second), None, "not reported");
        assert_eq!(
            stall_share(Some(5), Some(1), second),
            None,
            "a reset counter"
        );
        assert_eq!(stall_share(Some(1), Some(2), Duration::ZERO), None);
    }
}
