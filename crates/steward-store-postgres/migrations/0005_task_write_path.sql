-- Fewer index and trigger writes per task transition: every claim and completion writes a new
-- row version, and each index that version lands in costs as much as the change itself.
--
-- Counting by status scans the queue either way; this index only slowed every transition.
DROP INDEX tasks_queue_status;
-- Most tasks carry no idempotency key: index only the ones that do.
ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency_key_key;
CREATE UNIQUE INDEX tasks_idempotency ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Runs are written only by the statements that change their task and deleted with it by
-- retention; the per-row foreign-key check cost a third of every completion batch.
ALTER TABLE task_runs DROP CONSTRAINT task_runs_task_id_fkey;
-- Dead tasks are what operators list and retry; find them without scanning the queue.
CREATE INDEX tasks_dead ON tasks (queue, id) WHERE status = 'dead';
