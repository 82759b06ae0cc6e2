-- The declared registry: workspaces, typed dependency edges between them, services.
CREATE TABLE workspaces (
    key         TEXT PRIMARY KEY,
    description TEXT,
    owner       TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'paused', 'retired')),
    labels      TEXT NOT NULL DEFAULT '{}',
    repo        TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE dependencies (
    from_workspace TEXT NOT NULL REFERENCES workspaces (key),
    to_workspace   TEXT NOT NULL REFERENCES workspaces (key),
    type           TEXT NOT NULL,
    note           TEXT,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (from_workspace, to_workspace, type)
) STRICT;
CREATE INDEX dependencies_to ON dependencies (to_workspace);

CREATE TABLE services (
    name       TEXT PRIMARY KEY,
    workspace  TEXT REFERENCES workspaces (key),
    url        TEXT,
    node       TEXT,
    labels     TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX services_workspace ON services (workspace);
