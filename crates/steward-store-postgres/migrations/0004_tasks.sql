-- The durable task queue: tasks and their finished attempts.
CREATE TABLE tasks (
    id                  BIGSERIAL PRIMARY KEY,
    queue               TEXT NOT NULL,
    kind                TEXT NOT NULL,
    payload             JSONB NOT NULL,
    priority            INTEGER NOT NULL,
    status              TEXT NOT NULL CHECK (status IN
                            ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    run_at_ms           BIGINT NOT NULL,
    outcome             TEXT,
    result              JSONB,
    error               TEXT,
    lease_owner         TEXT,
    lease_expires_at_ms BIGINT,
    fence               BIGINT NOT NULL DEFAULT 0,
    cancel_requested    BOOLEAN NOT NULL DEFAULT FALSE,
    idempotency_key     TEXT UNIQUE,
    workspace           TEXT,
    schedule            TEXT,
    alert               TEXT,
    caller              TEXT,
    created_at_ms       BIGINT NOT NULL,
    started_at_ms       BIGINT,
    finished_at_ms      BIGINT
);
-- What claims read: due tasks of a queue in the order they are worked.
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, run_at_ms, id)
    WHERE status IN ('queued', 'failed');
-- What the reaper reads.
CREATE INDEX tasks_leases ON tasks (lease_expires_at_ms) WHERE status = 'running';
-- What retention reads.
CREATE INDEX tasks_finished ON tasks (queue, finished_at_ms) WHERE finished_at_ms IS NOT NULL;
CREATE INDEX tasks_queue_status ON tasks (queue, status);

CREATE TABLE task_runs (
    id            BIGSERIAL PRIMARY KEY,
    task_id       BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    worker        TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    ended_at_ms   BIGINT NOT NULL,
    status        TEXT NOT NULL,
    outcome       TEXT,
    error         TEXT,
    output_tail   TEXT
);
CREATE INDEX task_runs_task ON task_runs (task_id, id);
