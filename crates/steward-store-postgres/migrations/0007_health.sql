-- Health checks' runtime data; the checks themselves are declared in steward.toml.

-- Raw probe results, kept for the recent past (pruned by `at_ms`).
CREATE TABLE check_results (
    id                BIGSERIAL PRIMARY KEY,
    check_name        TEXT NOT NULL,
    at_ms             BIGINT NOT NULL,
    verdict           TEXT NOT NULL CHECK (verdict IN ('pass', 'slow', 'fail')),
    latency_ms        BIGINT NOT NULL,
    status            INTEGER,
    cause             TEXT,
    error             TEXT,
    -- JSON array of [held, resolved condition] pairs.
    conditions        TEXT NOT NULL,
    cert_not_after_ms BIGINT
);
-- A check's history, newest first (the id breaks ties in insertion order).
CREATE INDEX check_results_by_check ON check_results (check_name, at_ms, id);
-- What pruning reads.
CREATE INDEX check_results_at ON check_results (at_ms);

-- Per check and minute: counts and the latency histogram (a JSON array of counters in the
-- layout of steward_core::health::rollup).
CREATE TABLE check_rollups (
    check_name TEXT NOT NULL,
    minute_ms  BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    failures   BIGINT NOT NULL,
    buckets    TEXT NOT NULL,
    PRIMARY KEY (check_name, minute_ms)
);
CREATE INDEX check_rollups_minute ON check_rollups (minute_ms);

-- Each check's latest state, from which its tracker resumes after a restart.
CREATE TABLE check_state (
    check_name            TEXT PRIMARY KEY,
    service               TEXT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('unknown', 'up', 'degraded', 'down')),
    consecutive_failures  BIGINT NOT NULL,
    consecutive_successes BIGINT NOT NULL,
    since_ms              BIGINT NOT NULL,
    last_probe_ms         BIGINT
);

-- Changes of a check's state.
CREATE TABLE check_transitions (
    id         BIGSERIAL PRIMARY KEY,
    check_name TEXT NOT NULL,
    service    TEXT NOT NULL,
    from_state TEXT NOT NULL CHECK (from_state IN ('unknown', 'up', 'degraded', 'down')),
    to_state   TEXT NOT NULL CHECK (to_state IN ('unknown', 'up', 'degraded', 'down')),
    at_ms      BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX check_transitions_by_check ON check_transitions (check_name, id);
CREATE INDEX check_transitions_by_service ON check_transitions (service, id);
CREATE INDEX check_transitions_at ON check_transitions (at_ms);
