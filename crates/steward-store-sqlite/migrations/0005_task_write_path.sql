-- Fewer index writes per task transition (each claim and completion rewrites the row's index
-- entries). Counting by status scans the queue either way.
DROP INDEX tasks_queue_status;
-- Dead tasks are what operators list and retry; find them without scanning the queue.
CREATE INDEX tasks_dead ON tasks (queue, id) WHERE status = 'dead';
