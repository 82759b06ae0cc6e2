-- API keys (stored as SHA-256 digests) and the hash-chained audit trail.
CREATE TABLE api_keys (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    workspace       TEXT,
    digest          TEXT NOT NULL UNIQUE,
    hint            TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER,
    last_used_at_ms INTEGER,
    revoked_at_ms   INTEGER
) STRICT;

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    actor_kind TEXT NOT NULL,
    actor      TEXT NOT NULL,
    source_ip  TEXT,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    workspace  TEXT,
    -- The details exactly as hashed; JSON text, not re-encoded.
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_workspace ON audit_events (workspace, seq);

-- The chain's recorded head: the last event's seq and hash. Appending updates it in the same
-- transaction, so deleting events at the end of the chain is detectable.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
