-- Task counts kept as tasks change, so that reading them costs the same however many finished
-- tasks are retained (the depth gauges read them every few seconds on every instance).
--
-- Inserts are counted by the enqueue, the one statement that inserts tasks, as one delta per
-- queue; statement triggers append one delta row per (queue, status) an update or a delete
-- changed. Deltas are insert-only, so concurrent claims and completions never wait on a shared
-- counter row. Readers fold the
-- deltas into the totals now and then (one folder at a time, under an advisory lock) and read
-- totals plus the deltas not folded yet.
CREATE TABLE task_count_totals (
    queue  TEXT   NOT NULL,
    status TEXT   NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (queue, status)
);

CREATE TABLE task_count_deltas (
    queue  TEXT   NOT NULL,
    status TEXT   NOT NULL,
    n      BIGINT NOT NULL
);

CREATE FUNCTION task_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_deltas (queue, status, n)
    SELECT queue, status, -count(*) FROM deleted_rows GROUP BY queue, status;
    RETURN NULL;
END $$;

-- Most updates (lease extensions, progress) change no status: their deltas cancel out and
-- nothing is appended.
CREATE FUNCTION task_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_deltas (queue, status, n)
    SELECT queue, status, sum(n) FROM (
        SELECT queue, status, 1 AS n FROM updated_rows
        UNION ALL
        SELECT queue, status, -1 AS n FROM previous_rows
    ) AS changed
    GROUP BY queue, status
    HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_deleted();

CREATE TRIGGER task_counts_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS previous_rows NEW TABLE AS updated_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_updated();

-- The tasks stored before this migration, counted once (under the migration's lock, in its
-- transaction, so no change slips between the count and the triggers).
LOCK TABLE tasks IN SHARE MODE;
INSERT INTO task_count_totals (queue, status, n)
SELECT queue, status, count(*) FROM tasks GROUP BY queue, status;
