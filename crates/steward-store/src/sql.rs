//! Statements that are the same on both backends, written once. Parameters are `$1`, `$2`, …
//! in order of first appearance and each used once: PostgreSQL numbers them, and SQLite
//! binds `$N` by first appearance, so one text serves both. What the dialects really differ
//! in (`SKIP LOCKED`, `unnest` against `json_each`, `NOTIFY`, upsert forms) stays in each
//! backend.

/// The migrations applied successfully.
pub const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// Removes one dependency edge.
pub const DELETE_DEPENDENCY: &str =
    "DELETE FROM dependencies WHERE from_workspace = $1 AND to_workspace = $2 AND type = $3";

/// Removes one service.
pub const DELETE_SERVICE: &str = "DELETE FROM services WHERE name = $1";

/// Removes one workspace.
pub const DELETE_WORKSPACE: &str = "DELETE FROM workspaces WHERE key = $1";

/// Every dependency edge.
pub const DEPENDENCIES: &str = "SELECT from_workspace, to_workspace, type, note FROM dependencies";

/// How many keys exist (the first key is made only into none).
pub const COUNT_KEYS: &str = "SELECT count(*) FROM api_keys";

/// Records a key's use.
pub const TOUCH_KEY: &str = "UPDATE api_keys SET last_used_at_ms = $1 WHERE name = $2";

/// Which of a node's sequence numbers in `[$2, $3]` are merged already.
pub const MERGED_ORIGIN_SEQS: &str = "SELECT origin_seq FROM audit_events WHERE origin_node = $1 AND origin_seq BETWEEN $2 AND \
     $3";

/// The audit chain's recorded head.
pub const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

/// Moves the audit chain's recorded head.
pub const WRITE_AUDIT_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

/// The earliest run-at among a queue's waiting tasks.
pub const NEXT_DUE: &str =
    "SELECT min(run_at_ms) FROM tasks WHERE queue = $1 AND status IN ('queued', 'failed')";

/// A task's finished attempts, oldest first.
pub const TASK_RUNS: &str = "SELECT task_id, attempt, worker, started_at_ms, ended_at_ms, status, outcome, error, \
     output_tail FROM task_runs WHERE task_id = $1 ORDER BY id";

/// A role's lease as recorded.
pub const LEASE: &str = "SELECT role, holder, fence, expires_at_ms FROM leases WHERE role = $1";

/// Gives up a holder's lease at once.
pub const RELEASE_LEASE: &str =
    "UPDATE leases SET expires_at_ms = 0 WHERE role = $1 AND holder = $2";

/// A check's roll-ups in `[$2, $3)`, oldest first.
pub const CHECK_ROLLUPS: &str = "SELECT minute_ms, count, failures, buckets FROM check_rollups WHERE check_name = $1 AND \
     minute_ms >= $2 AND minute_ms < $3 ORDER BY minute_ms";

/// Deletes silences that ended before `$1`.
pub const PRUNE_SILENCES: &str = "DELETE FROM silences WHERE ends_at_ms < $1";

/// Stores a silence, answering its id.
pub const INSERT_SILENCE: &str = "INSERT INTO silences (matchers, starts_at_ms, ends_at_ms, created_by, created_at_ms, \
     comment) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

/// Records an acknowledgement on an alert.
pub const ACK_ALERT: &str =
    "UPDATE alerts SET acked_by = $1, acked_at_ms = $2, ack_note = $3 WHERE fingerprint = $4";

/// Moves a silence's end.
pub const END_SILENCE: &str = "UPDATE silences SET ends_at_ms = $1 WHERE id = $2";

/// A notification's attempts, oldest first.
pub const NOTIFICATION_ATTEMPTS: &str = "SELECT at_ms, latency_ms, status, error FROM notification_attempts WHERE notification_id \
     = $1 ORDER BY id";

/// Deletes all but the newest `$1` events.
pub const TRIM_EVENT_LOG: &str =
    "DELETE FROM event_log WHERE id <= (SELECT coalesce(max(id), 0) FROM event_log) - $1";

/// Up to `$2` events above id `$1`, oldest first.
pub const EVENTS_AFTER: &str = "SELECT id, at_ms, kind, workspace, body FROM event_log WHERE id > $1 ORDER BY id LIMIT \
     $2";

/// The columns a schedule run is read with: the run (`r`) and its task's progress (`t`,
/// left-joined).
macro_rules! run_columns {
    () => {
        "r.id, r.schedule, r.slot_ms, r.trigger, r.status, r.reason, r.task_id, r.fired_at_ms, \
         r.overdue, t.status AS task_status, t.outcome, t.started_at_ms, t.finished_at_ms, t.error"
    };
}

/// The columns a schedule run is read with (see [`LAST_RUNS`]).
pub const RUN_COLUMNS: &str = run_columns!();

/// The latest run of each schedule, by name. The schedules are found by skipping through the
/// `(schedule, id)` index one name at a time and each latest run is one seek, so the read costs
/// the number of schedules, not the number of runs retained.
pub const LAST_RUNS: &str = concat!(
    "WITH RECURSIVE names (schedule) AS (SELECT min(schedule) FROM schedule_runs \
     UNION ALL SELECT (SELECT min(schedule) FROM schedule_runs x \
     WHERE x.schedule > names.schedule) FROM names WHERE names.schedule IS NOT NULL) \
     SELECT ",
    run_columns!(),
    " FROM schedule_runs r LEFT JOIN tasks t ON t.id = r.task_id \
     WHERE r.id IN (SELECT (SELECT max(id) FROM schedule_runs x \
     WHERE x.schedule = names.schedule) FROM names WHERE names.schedule IS NOT NULL) \
     ORDER BY r.schedule"
);
