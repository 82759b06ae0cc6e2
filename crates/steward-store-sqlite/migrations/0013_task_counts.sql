-- Task counts kept as tasks change, so that reading them costs the same however many finished
-- tasks are retained (the depth gauges read them every few seconds). Only the single writer
-- connection changes tasks, so a plain counter row per (queue, status) never waits.
--
-- Inserts are counted by the enqueue, the one statement that inserts tasks, once per queue;
-- status changes and deletes by the triggers below.
CREATE TABLE task_counts (
    queue  TEXT    NOT NULL,
    status TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (queue, status)
) WITHOUT ROWID;

CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
END;

CREATE TRIGGER task_counts_update AFTER UPDATE OF queue, status ON tasks
WHEN old.queue IS NOT new.queue OR old.status IS NOT new.status
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
    INSERT INTO task_counts (queue, status, n) VALUES (new.queue, new.status, 1)
    ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

INSERT INTO task_counts (queue, status, n)
SELECT queue, status, count(*) FROM tasks WHERE true GROUP BY queue, status;
