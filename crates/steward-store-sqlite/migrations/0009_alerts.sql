-- The alert manager's data: alerts as received (one row per fingerprint, with its lifecycle)
-- and silences. Routes, receivers and rules are declared in steward.toml.

-- One row per alert identity: its latest labels, annotations and timing, its firing episode
-- and the acknowledgement of that episode.
CREATE TABLE alerts (
    -- Fingerprint of the labels: 16 hex digits.
    fingerprint      TEXT PRIMARY KEY CHECK (length(fingerprint) = 16),
    -- JSON objects of strings.
    labels           TEXT NOT NULL,
    annotations      TEXT NOT NULL,
    severity         TEXT NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    -- `external` or `rule:NAME`.
    source           TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    starts_at_ms     INTEGER NOT NULL,
    ends_at_ms       INTEGER,
    last_received_ms INTEGER NOT NULL,
    generator_url    TEXT,
    episode          INTEGER NOT NULL CHECK (episode >= 1),
    acked_by         TEXT,
    acked_at_ms      INTEGER,
    ack_note         TEXT
) WITHOUT ROWID;
-- Listings, most recently received first (optionally by state).
CREATE INDEX alerts_received ON alerts (last_received_ms);
CREATE INDEX alerts_by_state ON alerts (state, last_received_ms);
-- What stale resolution reads.
CREATE INDEX alerts_stale ON alerts (state, source, last_received_ms);
-- What pruning reads.
CREATE INDEX alerts_ended ON alerts (state, ends_at_ms);

-- Silences. AUTOINCREMENT: ids are never reused after pruning.
CREATE TABLE silences (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- JSON array of matcher texts (`name="value"`, `name=~"regex"`, …).
    matchers      TEXT NOT NULL,
    starts_at_ms  INTEGER NOT NULL,
    ends_at_ms    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    comment       TEXT NOT NULL
);
-- Those not ended yet, and pruning.
CREATE INDEX silences_ends ON silences (ends_at_ms);
