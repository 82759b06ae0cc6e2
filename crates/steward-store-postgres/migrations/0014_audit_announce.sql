-- Every audit append is announced on the event log's channel when its transaction commits, so
-- the stream of every instance carries it at once: appends happen in many transactions, each
-- one inside the change it records.
CREATE FUNCTION steward_announce_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('steward_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER audit_events_announce
    AFTER INSERT ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION steward_announce_audit();
