-- The event log: the recent state changes streamed to clients of every instance, kept for
-- reconnecting ones. Appends take an advisory lock, so ids are handed out in commit order.
CREATE TABLE event_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    workspace TEXT,
    body TEXT NOT NULL
);
