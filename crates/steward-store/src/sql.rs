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

/// The highest origin sequence number merged from a node (`NULL` when none was); the
/// `(origin_node, origin_seq)` index answers it.
pub const LAST_MERGED_ORIGIN_SEQ: &str =
    "SELECT MAX(origin_seq) FROM audit_events WHERE origin_node = $1";

/// The audit chain's recorded head.
pub const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

/// Moves the audit chain's recorded head.
pub const WRITE_AUDIT_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

/// The earliest run-at among a queue's waiting tasks.
pub const NEXT_DUE: &str =
    "SELECT min(run_at_ms) FROM tasks WHERE queue = $1 AND status IN ('queued', 'failed')";

/// The nodes some of whose pinned tasks are due (waiting, run-at passed).
pub const NODES_WITH_DUE_TASKS: &str = "SELECT DISTINCT node FROM tasks WHERE node <> '' \
     AND status IN ('queued', 'failed') AND run_at_ms <= $1 ORDER BY node";

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

/// The columns of a node, as [`crate::rows::NodeRow`] reads them.
macro_rules! node_columns {
    () => {
        "id, hostname, address, workspace, labels, source, interval_ms, registered_at_ms, \
         last_seen_ms, agent_version, usage, status, status_since_ms, created_at_ms"
    };
}

/// Every node, by id.
pub const NODES: &str = concat!("SELECT ", node_columns!(), " FROM nodes ORDER BY id");

/// The node with id `$1`.
pub const NODE: &str = concat!("SELECT ", node_columns!(), " FROM nodes WHERE id = $1");

/// Adds a node (`$1` id, `$2` hostname, `$3` address, `$4` workspace, `$5` labels, `$6` source,
/// `$7` interval, `$8` created, `$9` status since), unless the id is taken; answers the row.
pub const INSERT_NODE: &str = concat!(
    "INSERT INTO nodes (id, hostname, address, workspace, labels, source, interval_ms, \
     created_at_ms, status, status_since_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9) \
     ON CONFLICT (id) DO NOTHING RETURNING ",
    node_columns!()
);

/// Updates a declared node's fields (`$1` hostname, `$2` address, `$3` workspace, `$4` labels,
/// `$5` id) and makes it a config node.
pub const UPDATE_DECLARED_NODE: &str = "UPDATE nodes SET hostname = $1, address = $2, workspace = $3, labels = $4, \
     source = 'config' WHERE id = $5";

/// Deletes node `$1`; its tokens, digests and items go with it (foreign keys cascade).
pub const DELETE_NODE: &str = "DELETE FROM nodes WHERE id = $1";

/// Revokes at `$1` the keys of node `$2` not revoked yet; answers their names.
pub const REVOKE_NODE_KEYS: &str = "UPDATE api_keys SET revoked_at_ms = $1 WHERE node = $2 AND revoked_at_ms IS NULL \
     RETURNING name";

/// Stores a join token (`$1` digest, `$2` node, `$3` hint, `$4` created, `$5` expires, `$6`
/// uses).
pub const INSERT_JOIN_TOKEN: &str = "INSERT INTO join_tokens (digest, node, hint, created_at_ms, expires_at_ms, uses_left) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Spends one use of token `$1` if it is still valid at `$2`; answers its node.
pub const SPEND_JOIN_TOKEN: &str = "UPDATE join_tokens SET uses_left = uses_left - 1 \
     WHERE digest = $1 AND uses_left > 0 AND expires_at_ms > $2 RETURNING node";

/// Token `$1`'s expiry and uses left (to say why it could not be spent).
pub const JOIN_TOKEN_STATE: &str =
    "SELECT expires_at_ms, uses_left FROM join_tokens WHERE digest = $1";

/// Marks node `$4` registered at `$1` by an agent on host `$2` (kept when empty) at version
/// `$3`.
pub const MARK_NODE_REGISTERED: &str = "UPDATE nodes SET registered_at_ms = $1, hostname = COALESCE(NULLIF($2, ''), hostname), \
     agent_version = $3 WHERE id = $4";

/// The digest of each kind node `$1` reported.
pub const NODE_DIGESTS: &str = "SELECT kind, digest FROM node_digests WHERE node = $1";

/// Stores the digest (`$3`) of a kind (`$2`) node `$1` reported, at `$4`.
pub const UPSERT_NODE_DIGEST: &str = "INSERT INTO node_digests (node, kind, digest, updated_at_ms) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (node, kind) DO UPDATE SET digest = excluded.digest, \
     updated_at_ms = excluded.updated_at_ms";

/// The items of kind `$2` node `$1` reported, by key.
pub const NODE_KIND_ITEMS: &str =
    "SELECT kind, key, doc FROM node_items WHERE node = $1 AND kind = $2 ORDER BY key";

/// Every item node `$1` reported, by kind and key.
pub const NODE_ITEMS: &str =
    "SELECT kind, key, doc FROM node_items WHERE node = $1 ORDER BY kind, key";

/// Deletes item `$3` of kind `$2` of node `$1`.
pub const DELETE_NODE_ITEM: &str =
    "DELETE FROM node_items WHERE node = $1 AND kind = $2 AND key = $3";

/// Deletes every item of kind `$2` of node `$1`.
pub const DELETE_NODE_KIND: &str = "DELETE FROM node_items WHERE node = $1 AND kind = $2";

/// Stores item `$3` of kind `$2` of node `$1` with document `$4` at `$5`.
pub const UPSERT_NODE_ITEM: &str = "INSERT INTO node_items (node, kind, key, doc, updated_at_ms) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (node, kind, key) DO UPDATE SET doc = excluded.doc, \
     updated_at_ms = excluded.updated_at_ms";

/// Moves node `$3` to status `$1` since `$2` if it still has status `$4`.
pub const SET_NODE_STATUS: &str =
    "UPDATE nodes SET status = $1, status_since_ms = $2 WHERE id = $3 AND status = $4";
