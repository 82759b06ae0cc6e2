-- The fleet: nodes, their join tokens, and what they report.

-- Agent keys: the role `agent` and the node it acts as. SQLite cannot change a CHECK, so the
-- table is rebuilt (nothing references it).
CREATE TABLE api_keys_new (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'agent')),
    workspace       TEXT,
    digest          TEXT NOT NULL UNIQUE,
    hint            TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER,
    last_used_at_ms INTEGER,
    revoked_at_ms   INTEGER,
    node            TEXT,
    CHECK ((role = 'agent') = (node IS NOT NULL))
) STRICT;
INSERT INTO api_keys_new (name, role, workspace, digest, hint, created_at_ms, expires_at_ms,
                          last_used_at_ms, revoked_at_ms)
SELECT name, role, workspace, digest, hint, created_at_ms, expires_at_ms, last_used_at_ms,
       revoked_at_ms
FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
CREATE INDEX api_keys_node ON api_keys (node) WHERE node IS NOT NULL;

CREATE TABLE nodes (
    id               TEXT PRIMARY KEY,
    hostname         TEXT NOT NULL,
    address          TEXT,
    workspace        TEXT,
    labels           TEXT NOT NULL,
    source           TEXT NOT NULL CHECK (source IN ('config', 'api')),
    interval_ms      INTEGER NOT NULL,
    registered_at_ms INTEGER,
    last_seen_ms     INTEGER,
    agent_version    TEXT NOT NULL DEFAULT '',
    usage            TEXT NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL CHECK (status IN ('pending', 'up', 'late', 'down')),
    status_since_ms  INTEGER NOT NULL,
    created_at_ms    INTEGER NOT NULL
) STRICT;

-- Join tokens, by digest; spent ones stay until their node goes, for the audit's sake.
CREATE TABLE join_tokens (
    digest        TEXT PRIMARY KEY,
    node          TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    hint          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    uses_left     INTEGER NOT NULL
) STRICT;
CREATE INDEX join_tokens_node ON join_tokens (node);

-- The digest of each kind a node reported, compared with every heartbeat's.
CREATE TABLE node_digests (
    node          TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (node, kind)
) STRICT, WITHOUT ROWID;

-- Each reported item (a container, a domain, a certificate, the facts) as JSON.
CREATE TABLE node_items (
    node          TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    key           TEXT NOT NULL,
    doc           TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (node, kind, key)
) STRICT, WITHOUT ROWID;
