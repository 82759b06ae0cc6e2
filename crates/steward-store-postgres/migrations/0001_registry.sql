-- The declared registry: workspaces, typed dependency edges between them, services.
CREATE TABLE workspaces (
    key         TEXT PRIMARY KEY,
    description TEXT,
    owner       TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'paused', 'retired')),
    labels      JSONB NOT NULL DEFAULT '{}',
    repo        JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE dependencies (
    from_workspace TEXT NOT NULL REFERENCES workspaces (key),
    to_workspace   TEXT NOT NULL REFERENCES workspaces (key),
    type           TEXT NOT NULL,
    note           TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (from_workspace, to_workspace, type)
);
CREATE INDEX dependencies_to ON dependencies (to_workspace);

CREATE TABLE services (
    name       TEXT PRIMARY KEY,
    workspace  TEXT REFERENCES workspaces (key),
    url        TEXT,
    node       TEXT,
    labels     JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX services_workspace ON services (workspace);
