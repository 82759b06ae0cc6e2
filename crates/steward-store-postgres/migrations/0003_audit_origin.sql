-- Events merged from other nodes keep where they were first recorded; a (node, seq) pair is
-- merged at most once.
ALTER TABLE audit_events ADD COLUMN origin_node TEXT;
ALTER TABLE audit_events ADD COLUMN origin_seq BIGINT;
ALTER TABLE audit_events ADD COLUMN origin_hash TEXT;
CREATE UNIQUE INDEX audit_events_origin ON audit_events (origin_node, origin_seq)
    WHERE origin_node IS NOT NULL;
