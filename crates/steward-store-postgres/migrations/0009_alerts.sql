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
    starts_at_ms     BIGINT NOT NULL,
    ends_at_ms       BIGINT,
    last_received_ms BIGINT NOT NULL,
    generator_url    TEXT,
    episode          BIGINT NOT NULL CHECK (episode >= 1),
    acked_by         TEXT,
    acked_at_ms      BIGINT,
    ack_note         TEXT
);
-- Listings, most recently received first (optionally by state).
CREATE INDEX alerts_received ON alerts (last_received_ms DESC);
CREATE INDEX alerts_by_state ON alerts (state, last_received_ms DESC);
-- What stale resolution reads.
CREATE INDEX alerts_stale ON alerts (state, source, last_received_ms);
-- What pruning reads.
CREATE INDEX alerts_ended ON alerts (state, ends_at_ms);

-- Silences.
CREATE TABLE silences (
    id            BIGSERIAL PRIMARY KEY,
    -- JSON array of matcher texts (`name="value"`, `name=~"regex"`, …).
    matchers      TEXT NOT NULL,
    starts_at_ms  BIGINT NOT NULL,
    ends_at_ms    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    comment       TEXT NOT NULL
);
-- Those not ended yet, and pruning.
CREATE INDEX silences_ends ON silences (ends_at_ms);
