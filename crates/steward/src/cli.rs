//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use steward_core::alert::route::Matcher;
use steward_core::alert::{Fingerprint, Severity};
use steward_core::registry::Labels;
use steward_core::schedule::timing::parse_instant;
use steward_core::schedule::{CronExpr, Zone};
use steward_store::alerts::MAX_ALERT_PAGE;

use crate::alert_args::{
    parse_comment, parse_fingerprint, parse_label, parse_labels, parse_matcher, parse_note,
    parse_severity, parse_silence_duration,
};

/// Steward: scheduling, durable tasks, health, alerts, audit and the fleet for self-hosted
/// AI-agent platforms, in one binary.
#[derive(Debug, Parser)]
#[command(name = "steward", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: migrate the database, sync the registry from the config, serve
    /// HTTP. Reloads the config on SIGHUP; stops gracefully on SIGINT/SIGTERM.
    Up(UpArgs),
    /// Run the fleet agent on a node: register it with a hub once, then heartbeat its
    /// inventory (containers, NGINX domains, certificates, facts) every interval.
    #[command(subcommand)]
    Agent(crate::agent_args::AgentCommand),
    /// Try Steward: run it on a throwaway database with a bundled config and demo services of
    /// its own (healthy, flapping, slow, a certificate about to expire, a schedule every
    /// minute, a queue with work arriving, alerts to a webhook). Prints the dashboard's
    /// address and a key; Ctrl-C stops it and removes its files.
    Demo(DemoArgs),
    /// Validate a config file and print every problem as FILE:LINE:COL (exit 0 valid, 2 not).
    Check(CheckArgs),
    /// Convert registries kept in other formats into a steward.toml.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Apply the database migrations this binary carries, then exit.
    Migrate(MigrateArgs),
    /// Manage API keys through a running Steward (needs an admin key in STEWARD_API_KEY).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the fleet's nodes through a running Steward: list and show them, add and
    /// remove them, and make the join tokens their agents register with (needs an admin key
    /// in STEWARD_API_KEY to change anything).
    #[command(subcommand)]
    Nodes(crate::node_args::NodesCommand),
    /// Read and verify the audit trail through a running Steward (needs an admin key in
    /// STEWARD_API_KEY).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Follow the live event stream of a running Steward (every instance sharing its
    /// database): tasks, schedules, heartbeats, checks, alerts, leadership and, for admin
    /// keys, the audit trail. Reconnects by itself without missing what the server keeps.
    ///
    /// Example: steward events --types check_changed,alerts_changed --workspace payments
    Events(EventsArgs),
    /// Enqueue, inspect, cancel and retry tasks through the API.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Inspect, pause, resume and trigger schedules through the API; preview cron expressions
    /// offline.
    #[command(subcommand, visible_alias = "schedules")]
    Schedule(ScheduleCommand),
    /// List pipelines, start runs, follow their steps, cancel and retry them, through the API.
    ///
    /// Example: steward pipelines run brief --input '{"topic": "rust"}'
    #[command(subcommand, visible_alias = "pipeline")]
    Pipelines(PipelinesCommand),
    /// List heartbeats and ping them from external jobs through the API.
    #[command(subcommand, visible_alias = "heartbeat")]
    Heartbeats(HeartbeatsCommand),
    /// Print every service's health at a glance: its state (up, degraded, down, impacted,
    /// unknown), its checks and what impacts it.
    ///
    /// Example: steward status; steward status --output json
    Status(StatusArgs),
    /// Inspect health checks, read their history and run one now, through the API.
    #[command(subcommand)]
    Checks(ChecksCommand),
    /// List, show and acknowledge alerts and manage silences through the API; preview where
    /// the config's route tree sends an alert, offline.
    #[command(subcommand, visible_alias = "alert")]
    Alerts(AlertsCommand),
}

/// `steward pipelines …`
#[derive(Debug, Subcommand)]
pub enum PipelinesCommand {
    /// List declared pipelines with their steps and latest run.
    Ls {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a pipeline (its steps and what each needs), or, given a run's id, that run's
    /// timeline: each step's state, attempts, duration, result and error.
    ///
    /// Example: steward pipelines show brief; steward pipelines show 42
    Show {
        /// A pipeline's name, or a run's id.
        target: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List runs, newest first.
    Runs {
        /// Only runs of this pipeline.
        pipeline: Option<String>,
        /// Only runs in this status.
        #[arg(long, value_parser = ["running", "succeeded", "failed", "cancelled"])]
        status: Option<String>,
        /// Only runs with a lower id (the `more:` hint of the last page).
        #[arg(long)]
        before: Option<i64>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a run of a pipeline; with --wait, follow it until it ends (exit 0 when it
    /// succeeded, 1 otherwise).
    Run {
        /// The pipeline.
        pipeline: String,
        /// The run's input: a JSON object, or @FILE to read it from a file.
        #[arg(long)]
        input: Option<String>,
        /// Starting with the same key again answers with the existing run.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Wait for the run to end, printing each step as it changes.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a run: waiting steps are cancelled, running ones asked to stop.
    Cancel {
        /// The run's id.
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Retry a failed or cancelled run from the steps that did not succeed, keeping the
    /// results of those that did.
    Retry {
        /// The run's id.
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `steward alerts …`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts, most recently received first.
    ///
    /// ACK names who acknowledged the alert's current episode (`-`: nobody). LABELS are the
    /// labels other than `alertname`, which has its own column. `--output json` prints the
    /// API's answer.
    ///
    /// Example: steward alerts ls --state firing --severity critical --label service=api
    Ls {
        /// Only firing or only resolved alerts.
        #[arg(long, value_parser = ["firing", "resolved"])]
        state: Option<String>,
        /// Only alerts of this severity: critical, warning or info.
        #[arg(long, value_parser = parse_severity)]
        severity: Option<Severity>,
        /// Only alerts with this label and value (`name=value`); repeat it to require several.
        #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// At most this many alerts.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_ALERT_PAGE)))]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one alert: its state and episode, severity, times, labels, annotations, its
    /// acknowledgement, and the notifications sent about it (when the server reports them).
    ///
    /// Example: steward alerts show 8a3f0c2e91b4d7f5
    Show {
        /// The alert's fingerprint: 16 hex digits, as `steward alerts ls` prints it.
        #[arg(value_parser = parse_fingerprint)]
        fingerprint: Fingerprint,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Acknowledge an alert's current episode: its group is not notified again about it until
    /// it changes (the acknowledgement is cleared when the alert fires again).
    ///
    /// Example: steward alerts ack 8a3f0c2e91b4d7f5 --note 'restarting the API'
    Ack {
        /// The alert's fingerprint: 16 hex digits.
        #[arg(value_parser = parse_fingerprint)]
        fingerprint: Fingerprint,
        /// Why, or what is being done about it (at most 4096 characters).
        #[arg(long, value_name = "TEXT", value_parser = parse_note)]
        note: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Silence the alerts every matcher matches, from now for a duration or until a time, and
    /// print the new silence's id.
    ///
    /// Matchers are Alertmanager's: `name=value`, `name!=value`, `name=~regex`,
    /// `name!~regex` (expressions anchored; a value may be double-quoted). A missing label
    /// reads as the empty string. With `--output json`, prints the whole silence.
    ///
    /// Example: steward alerts silence --matcher alertname=ApiDown --matcher
    /// 'service=~"api|web"' --duration 2h --comment 'deploying'
    Silence {
        /// A label matcher; repeat it for several (all must match).
        #[arg(long = "matcher", value_name = "MATCHER", required = true, value_parser = parse_matcher)]
        matchers: Vec<Matcher>,
        /// How long from now, e.g. 30m, 2h, 1d, 1h30m (units: ms, s, m, h, d, w).
        #[arg(
            long,
            value_name = "DURATION",
            required_unless_present = "until",
            conflicts_with = "until",
            value_parser = parse_silence_duration
        )]
        duration: Option<u64>,
        /// Until this time (RFC 3339 with an offset, e.g. 2026-12-01T08:00:00+01:00).
        #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
        until: Option<i64>,
        /// Why: shown with the silence, next to the name of the key that created it.
        #[arg(
            long,
            value_name = "TEXT",
            default_value = "no comment given (created with steward alerts silence)",
            value_parser = parse_comment
        )]
        comment: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the silences in force or to come.
    ///
    /// Example: steward alerts silences
    Silences {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// End a silence now.
    ///
    /// Example: steward alerts unsilence 12
    Unsilence {
        /// The silence's id, as `steward alerts silence` or `silences` printed it.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print where the config's `[alerting.route]` tree sends an alert with these labels
    /// (offline: no server needed).
    ///
    /// One line per destination, in tree order: the route's place (`/` is the root, `/0/1`
    /// the second child of the first child), its matchers, the receiver, the grouping labels,
    /// the group wait, interval and repeat interval it inherits, and the key of the group the
    /// alert falls in. Silences, inhibition and acknowledgements are not considered. Exits with
    /// code 1 when the config has no `[alerting.route]`, 2 when the config or labels are not
    /// valid.
    ///
    /// Example: steward alerts test-route --labels alertname=ApiDown,severity=critical,service=api
    TestRoute {
        /// The alert's labels: `name=value` pairs separated by commas.
        #[arg(long, value_name = "NAME=VALUE,…", value_parser = parse_labels)]
        labels: Labels,
        /// The config file.
        #[arg(long, short, env = "STEWARD_CONFIG", default_value = "steward.toml")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
}

/// `steward status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `steward checks …`
#[derive(Debug, Subcommand)]
pub enum ChecksCommand {
    /// List checks with their service, type, state and last probe.
    ///
    /// Example: steward checks ls
    Ls {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one check: state, last result with each condition, latency percentiles and failure
    /// ratio over a window, certificate.
    ///
    /// Example: steward checks show nn-http --window 24h
    Show {
        /// The check's name.
        name: String,
        /// The window for percentiles, e.g. 15m, 1h, 7d (1m to 30d).
        #[arg(long, default_value = "1h")]
        window: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Probe a check now and print the judged result.
    ///
    /// Example: steward checks run nn-http
    Run {
        /// The check's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a check's state changes, newest first.
    ///
    /// Example: steward checks history nn-http --limit 20
    History {
        /// The check's name.
        name: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only those with an id below this (the previous page's last).
        #[arg(long)]
        before: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Where a running Steward answers, and the key to call it with.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The Steward to talk to.
    #[arg(long, env = "STEWARD_URL", default_value = "http://127.0.0.1:8710")]
    pub url: String,
    /// Print JSON instead of a table.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once: it cannot be shown again.
    Create {
        /// A unique name; it is the actor in audit events.
        name: String,
        /// What the key may do.
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
        /// Limit the key to one workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// Make the key stop working after this many days.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List keys (never their secrets).
    Ls {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a key by name; it stops working at once.
    Revoke {
        /// The key's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `steward events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only these event types, comma-separated (task_changed, tasks_changed, tasks_enqueued,
    /// pipeline_run_changed, check_changed, alerts_changed, silences_changed, schedule_fired, schedule_skipped,
    /// slots_missed, schedule_overdue, heartbeat_changed, leadership_changed, registry_synced,
    /// config_rejected, node_changed, node_status_changed, node_inventory_changed, audit,
    /// lost).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only events of this workspace.
    #[arg(long)]
    pub workspace: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Filters for audit listings.
#[derive(Debug, Args)]
pub struct AuditFilter {
    /// Only events by this actor (a key name or a component).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action, e.g. `key.create`, `registry.sync`.
    #[arg(long)]
    pub action: Option<String>,
    /// Only events concerning this workspace.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Only events by this kind of actor.
    #[arg(long, value_parser = ["key", "cli", "system"])]
    pub actor_kind: Option<String>,
    /// Only events merged from this node's agent (`vps-02`).
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, oldest first.
    Ls {
        /// Start after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many events.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
        #[command(flatten)]
        filter: AuditFilter,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Check the whole hash chain; names the first edited, deleted or reordered event. Exit 0
    /// intact, 3 broken, 1 when it could not be checked.
    Verify {
        /// A head recorded earlier (`SEQ:HASH`, as a previous verify printed it): the chain must
        /// still contain that event with that hash, which catches a history rewritten with
        /// database access.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Write every matching event as JSON Lines to standard output.
    Export {
        /// The output format.
        #[arg(long, value_parser = ["jsonl"], default_value = "jsonl")]
        format: String,
        #[command(flatten)]
        filter: AuditFilter,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print new events as JSON Lines as they are recorded, until interrupted.
    Tail {
        /// Ignored: the tail follows the live event stream (kept so that old scripts run).
        #[arg(long, hide = true)]
        interval: Option<u64>,
        #[command(flatten)]
        filter: AuditFilter,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Logging flags, shared by every command that runs for long.
/// Which tasks to list.
#[derive(Debug, Args)]
pub struct TaskFilter {
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only this status.
    #[arg(long, value_parser = ["queued", "running", "succeeded", "failed", "dead", "cancelled"])]
    pub status: Option<String>,
    /// Only this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this outcome label.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only this workspace.
    #[arg(long)]
    pub workspace: Option<String>,
}

/// `steward tasks …`
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Enqueue one task, or every task of a JSON Lines file (10,000 per call).
    Enqueue {
        /// The queue (not with --file).
        #[arg(required_unless_present = "file")]
        queue: Option<String>,
        /// The executor (not with --file).
        #[arg(required_unless_present = "file")]
        kind: Option<String>,
        /// The payload: JSON text, or @FILE to read it from a file.
        #[arg(long)]
        payload: Option<String>,
        /// Higher runs first (-1000 to 1000).
        #[arg(long, allow_hyphen_values = true)]
        priority: Option<i64>,
        /// Run no sooner than this many milliseconds from now.
        #[arg(long)]
        delay_ms: Option<i64>,
        /// Attempts before the task is dead (default: the queue's).
        #[arg(long)]
        max_attempts: Option<i64>,
        /// Enqueueing the same key again returns the existing task.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// The workspace the work is for.
        #[arg(long)]
        workspace: Option<String>,
        /// The node whose agent must run it (default: the queue's, if it is pinned).
        #[arg(long)]
        node: Option<String>,
        /// A JSON Lines file, one task object per line (`{"queue": …, "kind": …, …}`).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["queue", "kind", "payload"])]
        file: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a task and its attempts.
    Get {
        /// The task id.
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tasks, oldest first.
    Ls {
        /// Only tasks with a greater id (keyset pagination).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[command(flatten)]
        filter: TaskFilter,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a task: at once when queued, cooperatively when running.
    Cancel {
        /// The task id.
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Queue a dead or cancelled task again with fresh attempts.
    Retry {
        /// The task id.
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Tasks per queue and status.
    Counts {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `steward schedule …`
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of a cron expression (offline: no server needed).
    ///
    /// Prints one RFC 3339 time per line, with the zone's offset at that time, like
    /// `systemd-analyze calendar`; with `--output json`, a JSON array of those strings. The
    /// times follow Steward's own daylight-saving rules, so they are the slots a schedule with
    /// this expression and zone fires at. An expression or zone that is not valid exits with
    /// code 2, naming the field at fault.
    ///
    /// Example: steward schedule next '30 8 * * MON-FRI' --tz Europe/Berlin --count 3
    Next {
        /// A cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with a
        /// leading second, or a nickname (@hourly, @daily, @weekly, @monthly, @yearly). Quote
        /// it.
        #[arg(value_name = "EXPR")]
        expr: CronExpr,
        /// The IANA time zone the expression is read in, e.g. `Europe/Berlin`.
        #[arg(long, value_name = "ZONE", default_value = "UTC")]
        tz: Zone,
        /// Start from this instant (RFC 3339 with an offset, e.g. 2026-12-01T08:00:00+01:00)
        /// instead of now; the first time printed is strictly after it.
        #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
        from: Option<i64>,
        /// How many fire times to print (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
        /// Print a JSON array instead of one time per line.
        #[arg(long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// List schedules with their timing, next fire and last run.
    ///
    /// NEXT is the next fire time, or `paused` or `disabled`; LAST is the latest run's status
    /// and its task's status and outcome. `--output json` prints the API's answer.
    ///
    /// Example: steward schedule ls --output json
    Ls {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one schedule: its timing, task, policies, state, next fire and last run.
    ///
    /// Example: steward schedule show nightly-backup
    Show {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a schedule's runs (fired, skipped and missed slots), newest first.
    ///
    /// When there are older runs, a line on standard error gives the `--before` that shows
    /// the next page.
    ///
    /// Example: steward schedule runs nightly-backup --limit 20
    Runs {
        /// The schedule's name.
        name: String,
        /// At most this many runs (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Only runs with a smaller id (the page after the one that printed this id).
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Pause a schedule: it fires no more until resumed (it is still listed and can be
    /// triggered by hand).
    ///
    /// Example: steward schedule pause nightly-backup
    Pause {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Resume a paused schedule: it fires again from its next slot (slots that passed while
    /// it was paused are not made up).
    ///
    /// Example: steward schedule resume nightly-backup
    Resume {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Fire a schedule now and print the task it enqueued.
    ///
    /// The schedule's overlap policy still applies: when it skips the fire (an earlier task
    /// is still running under `overlap = "forbid"`), the command prints the reason and exits
    /// with code 1.
    ///
    /// Example: steward schedule trigger nightly-backup
    Trigger {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `steward heartbeats …`
#[derive(Debug, Subcommand)]
pub enum HeartbeatsCommand {
    /// List heartbeats with their state, last ping and deadline.
    ///
    /// STATE is `new` (never pinged), `up`, `late` (the deadline passed) or `failed` (the last
    /// ping reported a failure).
    ///
    /// Example: steward heartbeats ls
    Ls {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Record a ping: the job ran fine, or with `--fail`, it ran and failed.
    ///
    /// Example: backup.sh && steward heartbeats ping nightly-backup || steward heartbeats ping
    /// nightly-backup --fail
    Ping {
        /// The heartbeat's name.
        name: String,
        /// Report that the job failed.
        #[arg(long)]
        fail: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format [env: STEWARD_LOG_FORMAT] [default: pretty, or `log.format` in the config].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Log filter, e.g. `info` or `steward=debug,sqlx=warn` [env: STEWARD_LOG] [default: info].
    #[arg(long, global = true)]
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where the database is; each flag wins over `STEWARD_…` variables and the config file.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The embedded database's directory [env: STEWARD_DATA_DIR] [default: `storage.data_dir`,
    /// else ./steward-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A postgres:// URL to share one database between instances, or `sqlite` for the embedded
    /// default [env: STEWARD_DATABASE].
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The address the demo's Steward serves on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8710")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The config file.
    #[arg(long, short, env = "STEWARD_CONFIG", default_value = "steward.toml")]
    pub config: PathBuf,
    /// The HTTP address [env: STEWARD_LISTEN] [default: `server.listen`, else 127.0.0.1:8710].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file.
    #[arg(long, short, env = "STEWARD_CONFIG", default_value = "steward.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Convert workspaces.csv / workspace_dependencies.csv registries (and optionally a
    /// services CSV) into steward.toml. Duplicate edges are merged with a warning.
    Csv(ImportCsvArgs),
}

#[derive(Debug, Args)]
pub struct ImportCsvArgs {
    /// Workspaces CSV: workspace_key, status, description, owner, repo_name, repo_path,
    /// repo_remote; other columns become labels.
    #[arg(long, value_name = "FILE")]
    pub workspaces: PathBuf,
    /// Dependencies CSV: from_workspace, to_workspace, dependency_type, notes.
    #[arg(long, value_name = "FILE")]
    pub dependencies: PathBuf,
    /// Services CSV: name, workspace, url, node; other columns become labels.
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite --output if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// A config file to read `[storage]` from (optional).
    #[arg(long, short, env = "STEWARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}
