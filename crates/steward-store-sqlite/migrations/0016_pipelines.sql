-- Pipelines: runs, their steps, and the task columns a step's task needs.
-- A step's own timeout (NULL: its queue's), and the run a step's task belongs to.
ALTER TABLE tasks ADD COLUMN timeout_ms INTEGER;
ALTER TABLE tasks ADD COLUMN pipeline_run INTEGER;

CREATE TABLE pipeline_runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline        TEXT NOT NULL,
    workspace       TEXT,
    status          TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    -- The pipeline as it was declared when the run started, as JSON.
    spec            TEXT NOT NULL,
    input           TEXT NOT NULL,
    -- 1, raised by each retry; part of each step task's idempotency key.
    attempt         INTEGER NOT NULL DEFAULT 1,
    idempotency_key TEXT UNIQUE,
    schedule        TEXT,
    alert           TEXT,
    caller          TEXT,
    created_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER
);
CREATE INDEX pipeline_runs_by_pipeline ON pipeline_runs (pipeline, id);
CREATE INDEX pipeline_runs_by_status ON pipeline_runs (status, id);
CREATE INDEX pipeline_runs_finished ON pipeline_runs (finished_at_ms)
    WHERE finished_at_ms IS NOT NULL;

CREATE TABLE pipeline_steps (
    run_id         INTEGER NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN
                       ('waiting', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    task_id        INTEGER,
    result         TEXT,
    error          TEXT,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER,
    PRIMARY KEY (run_id, position)
);
-- What ending a task reads: the step it runs.
CREATE INDEX pipeline_steps_by_task ON pipeline_steps (task_id) WHERE task_id IS NOT NULL;
