-- The event log: the recent state changes streamed to clients, kept for reconnecting ones.
-- AUTOINCREMENT: an id is never handed out twice, even after the newest rows are deleted.
CREATE TABLE event_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    workspace TEXT,
    body TEXT NOT NULL
);
