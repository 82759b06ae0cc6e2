-- The scheduler's runtime state; schedules themselves are declared in steward.toml.

-- Leadership leases: one row per role; `fence` goes up each time the holder changes.
CREATE TABLE leases (
    role           TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    fence          INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    acquired_at_ms INTEGER NOT NULL
);

-- Per schedule: paused or not, and the latest slot handled (the cursor).
CREATE TABLE schedule_state (
    name          TEXT PRIMARY KEY,
    paused        INTEGER NOT NULL DEFAULT 0,
    cursor_ms     INTEGER NOT NULL,
    changed_at_ms INTEGER NOT NULL,
    changed_by    TEXT
);

-- Each fire, skip or run of missed slots.
CREATE TABLE schedule_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule     TEXT NOT NULL,
    slot_ms      INTEGER NOT NULL,
    trigger      TEXT NOT NULL CHECK (trigger IN ('slot', 'catch_up', 'manual')),
    status       TEXT NOT NULL CHECK (status IN ('fired', 'skipped', 'missed')),
    reason       TEXT,
    task_id      INTEGER,
    fired_at_ms  INTEGER NOT NULL,
    -- The dead-man's switch looked at it once its deadline passed; `overdue` is what it found.
    deadline_checked INTEGER NOT NULL DEFAULT 0,
    overdue      INTEGER NOT NULL DEFAULT 0
);
-- A slot fires at most once, whichever instance leads.
CREATE UNIQUE INDEX schedule_runs_slot ON schedule_runs (schedule, slot_ms)
    WHERE status = 'fired' AND trigger <> 'manual';
CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule, id);
-- What the dead-man's switch reads.
CREATE INDEX schedule_runs_pending ON schedule_runs (schedule, slot_ms)
    WHERE status = 'fired' AND deadline_checked = 0;
-- What overlap policies read: a schedule's unfinished tasks.
CREATE INDEX tasks_schedule_open ON tasks (schedule)
    WHERE schedule IS NOT NULL AND status IN ('queued', 'running', 'failed');

-- Heartbeats pinged by external jobs.
CREATE TABLE heartbeats (
    name                TEXT PRIMARY KEY,
    last_ping_ms        INTEGER,
    last_status         TEXT CHECK (last_status IN ('ok', 'fail')),
    pings               INTEGER NOT NULL DEFAULT 0,
    state               TEXT NOT NULL CHECK (state IN ('new', 'up', 'late', 'failed')),
    state_changed_at_ms INTEGER NOT NULL,
    watching_since_ms   INTEGER NOT NULL
);
