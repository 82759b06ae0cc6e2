-- Health checks' runtime data; the checks themselves are declared in steward.toml.

-- Raw probe results, kept for the recent past (pruned by `at_ms`).
CREATE TABLE check_results (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    check_name        TEXT NOT NULL,
    at_ms             INTEGER NOT NULL,
    verdict           TEXT NOT NULL CHECK (verdict IN ('pass', 'slow', 'fail')),
    latency_ms        INTEGER NOT NULL,
    status            INTEGER,
    cause             TEXT,
    error             TEXT,
    -- JSON array of [held, resolved condition] pairs.
    conditions        TEXT NOT NULL,
    cert_not_after_ms INTEGER
);
-- A check's history, newest first (the rowid breaks ties in insertion order).
CREATE INDEX check_results_by_check ON check_results (check_name, at_ms);
-- What pruning reads.
CREATE INDEX check_results_at ON check_results (at_ms);

-- Per check and minute: counts and the latency histogram (a JSON array of counters in the
-- layout of steward_core::health::rollup). Small rows looked up by their key: no rowid.
CREATE TABLE check_rollups (
    check_name TEXT NOT NULL,
    minute_ms  INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    failures   INTEGER NOT NULL,
    buckets    TEXT NOT NULL,
    PRIMARY KEY (check_name, minute_ms)
) WITHOUT ROWID;
CREATE INDEX check_rollups_minute ON check_rollups (minute_ms);

-- Each check's latest state, from which its tracker resumes after a restart.
CREATE TABLE check_state (
    check_name            TEXT PRIMARY KEY,
    service               TEXT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('unknown', 'up', 'degraded', 'down')),
    consecutive_failures  INTEGER NOT NULL,
    consecutive_successes INTEGER NOT NULL,
    since_ms              INTEGER NOT NULL,
    last_probe_ms         INTEGER
) WITHOUT ROWID;

-- Changes of a check's state. AUTOINCREMENT: ids keep growing even after pruning empties the
-- table, so pages by `before_id` stay valid.
CREATE TABLE check_transitions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    check_name TEXT NOT NULL,
    service    TEXT NOT NULL,
    from_state TEXT NOT NULL CHECK (from_state IN ('unknown', 'up', 'degraded', 'down')),
    to_state   TEXT NOT NULL CHECK (to_state IN ('unknown', 'up', 'degraded', 'down')),
    at_ms      INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX check_transitions_by_check ON check_transitions (check_name, id);
CREATE INDEX check_transitions_by_service ON check_transitions (service, id);
CREATE INDEX check_transitions_at ON check_transitions (at_ms);
