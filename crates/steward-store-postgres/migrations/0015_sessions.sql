-- Dashboard sessions: the token's digest, never the token; the key's digest, never the key.
CREATE TABLE ui_sessions (
    id_digest          TEXT PRIMARY KEY,
    key_digest         TEXT NOT NULL,
    key_name           TEXT NOT NULL,
    csrf               TEXT NOT NULL,
    created_at_ms      BIGINT NOT NULL,
    idle_expires_at_ms BIGINT NOT NULL,
    expires_at_ms      BIGINT NOT NULL
);
-- What the purge at each sign-in reads.
CREATE INDEX ui_sessions_expiry ON ui_sessions (idle_expires_at_ms);
