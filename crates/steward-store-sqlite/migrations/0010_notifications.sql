-- The notification outbox: the groups the dispatcher keeps (so a restart resumes their timing),
-- notifications written before they are sent, the alerts each one carries, and every attempt
-- to send one.

-- One row per group of alerts the dispatcher tracks; deleted when the group finishes.
CREATE TABLE alert_groups (
    -- `/0/2:receiver:{name="value",…}`: route, receiver and grouping labels.
    key        TEXT PRIMARY KEY,
    receiver   TEXT NOT NULL,
    -- JSON array of child indices from the root route.
    route_path TEXT NOT NULL,
    -- JSON object of strings.
    labels     TEXT NOT NULL,
    -- JSON of the group's timing state (`GroupClock`).
    clock      TEXT NOT NULL,
    -- When the dispatcher last wrote it (ms since the Unix epoch), for operators.
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID, STRICT;

-- Notifications, pending until delivered or given up. AUTOINCREMENT: ids are never reused
-- after pruning, and they order each group's notifications.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Copied from the notice, so that heads of groups and listings need not parse it.
    group_key       TEXT NOT NULL,
    receiver        TEXT NOT NULL,
    -- JSON of what it says (`Notice`), rendered for the receiver only when sent.
    notice          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    finished_ms     INTEGER,
    last_error      TEXT
) STRICT;
-- The pending notifications of each group in order: a group's head is its first entry, and
-- whether an older one is still pending is one probe.
CREATE INDEX notifications_pending ON notifications (group_key, id) WHERE state = 'pending';
-- What pruning reads.
CREATE INDEX notifications_finished ON notifications (finished_ms)
    WHERE finished_ms IS NOT NULL;
-- Counts per receiver and state (a covering index: the table is not read), and listings by
-- receiver.
CREATE INDEX notifications_receiver ON notifications (receiver, state);

-- The alerts each notification carries, so that an alert's notifications can be found.
CREATE TABLE notification_alerts (
    -- 16 hex digits.
    fingerprint     TEXT NOT NULL CHECK (length(fingerprint) = 16),
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    PRIMARY KEY (fingerprint, notification_id)
) WITHOUT ROWID, STRICT;
-- What the cascade from a pruned notification reads.
CREATE INDEX notification_alerts_notification ON notification_alerts (notification_id);

-- Every attempt to send a notification, in order.
CREATE TABLE notification_attempts (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    at_ms           INTEGER NOT NULL,
    latency_ms      INTEGER NOT NULL,
    -- The HTTP status (or SMTP reply code), when the receiver answered.
    status          INTEGER,
    -- At most 1,000 characters.
    error           TEXT
) STRICT;
CREATE INDEX notification_attempts_notification ON notification_attempts (notification_id, id);
