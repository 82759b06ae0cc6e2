-- Remote work: a task may be pinned to a node, whose agent alone claims it. '' is no node, so
-- a claim's node is always an equality the ready index can serve.
ALTER TABLE tasks ADD COLUMN node TEXT NOT NULL DEFAULT '';
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (queue, node, priority DESC, run_at_ms, id)
    WHERE status IN ('queued', 'failed');
-- What the hub reads to wake the claims of nodes whose tasks are due.
CREATE INDEX tasks_pinned_due ON tasks (node, run_at_ms)
    WHERE node <> '' AND status IN ('queued', 'failed');
