-- The fleet: nodes, their join tokens, and what they report.

-- Agent keys: the role `agent` and the node it acts as.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD COLUMN node TEXT;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('viewer', 'operator', 'admin', 'agent'));
ALTER TABLE api_keys ADD CONSTRAINT api_keys_agent_node
    CHECK ((role = 'agent') = (node IS NOT NULL));
CREATE INDEX api_keys_node ON api_keys (node) WHERE node IS NOT NULL;

CREATE TABLE nodes (
    id               TEXT PRIMARY KEY,
    hostname         TEXT NOT NULL,
    address          TEXT,
    workspace        TEXT,
    labels           JSONB NOT NULL,
    source           TEXT NOT NULL CHECK (source IN ('config', 'api')),
    interval_ms      BIGINT NOT NULL,
    registered_at_ms BIGINT,
    last_seen_ms     BIGINT,
    agent_version    TEXT NOT NULL DEFAULT '',
    usage            JSONB NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL CHECK (status IN ('pending', 'up', 'late', 'down')),
    status_since_ms  BIGINT NOT NULL,
    created_at_ms    BIGINT NOT NULL
);

-- Join tokens, by digest; spent ones stay until their node goes, for the audit's sake.
CREATE TABLE join_tokens (
    digest        TEXT PRIMARY KEY,
    node          TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    hint          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    uses_left     INTEGER NOT NULL
);
CREATE INDEX join_tokens_node ON join_tokens (node);

-- The digest of each kind a node reported, compared with every heartbeat's.
CREATE TABLE node_digests (
    node          TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (node, kind)
);

-- Each reported item (a container, a domain, a certificate, the facts) as JSON text, compared
-- byte for byte with what is reported.
CREATE TABLE node_items (
    node          TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    key           TEXT NOT NULL,
    doc           TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (node, kind, key)
);
