//! The notification outbox on SQLite: the dispatcher's groups, notifications, the alerts each
//! carries and its attempts. A dispatcher pass is one transaction on the single writer
//! connection, and each of its parts one statement over a JSON array unpacked with
//! `json_each`, whatever its size; no other connection writes the file, so the ids it hands
//! out are exactly those above the sequence as it stood when the pass began.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Sqlite};
use steward_store::NotificationStore;
use steward_store::StoreError;
use steward_store::codec::{
    decode_notification_state, decode_row_count, encode_json, encode_labels,
};
use steward_store::notifications::{
    Attempt, AttemptEffect, AttemptOutcome, DispatchWrite, GroupRecord, MAX_NOTIFICATION_PAGE,
    NewNotification, NotificationCount, NotificationQuery, Queued, StoredNotification,
    attempt_error,
};
use steward_store::now_ms;
use steward_store::rows::{AttemptRow, GroupRow, NotificationRow};

use crate::SqliteStore;
use crate::db_err;

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn alert_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        groups(&self.reader).await
    }

    async fn write_dispatch(&self, write: &DispatchWrite) -> Result<Vec<Queued>, StoreError> {
        if write.groups.is_empty() && write.finished.is_empty() && write.notifications.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let queued = self::write(&mut tx, write, now_ms()).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(queued)
    }

    async fn due_notifications(
        &self,
        now_ms: i64,
        excluding: &[i64],
        limit: u32,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        due(&self.reader, now_ms, excluding, limit).await
    }

    async fn next_notification_due(&self) -> Result<Option<i64>, StoreError> {
        next_due(&self.reader).await
    }

    async fn link_notifications(&self, up_to: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(db_err)?;
        link_alerts(&mut conn, up_to).await
    }

    async fn record_attempts(
        &self,
        attempts: &[(i64, Attempt, AttemptOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let recorded = record_attempts(&mut tx, attempts).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(recorded)
    }

    async fn notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        list(&self.reader, query).await
    }

    async fn notification_attempts(&self, id: i64) -> Result<Vec<Attempt>, StoreError> {
        attempts(&self.reader, id).await
    }

    async fn notification_counts(&self) -> Result<Vec<NotificationCount>, StoreError> {
        counts(&self.reader).await
    }

    async fn prune_notifications(&self, before_ms: i64) -> Result<u64, StoreError> {
        prune(&self.writer, before_ms).await
    }
}

/// Notifications one pruning statement deletes (their alerts and attempts go with them): each
/// chunk is its own short write transaction, so the dispatcher and the sender get the writer
/// in between instead of waiting for the whole pass.
const PRUNE_CHUNK: i64 = 5_000;

/// Notifications one INSERT statement queues: seven values each, five of them bound, well
/// under SQLite's 32,766 parameters.
const INSERT_CHUNK: usize = 1_000;

/// The columns of a notification, in the order [`notification_from_row`] reads them.
const NOTIFICATION_COLUMNS: &str = "id, notice, state, attempts, created_ms, next_attempt_ms, \
     expires_ms, finished_ms, last_error";

/// Pending notifications that head their group: no older one of the group is still pending.
/// Read from `notifications_pending` (named, because without statistics SQLite would rather
/// walk the whole table in id order, delivered history included), with one probe of it per
/// candidate.
const HEADS: &str = "n.state = 'pending' AND NOT EXISTS (SELECT 1 FROM notifications AS o \
     WHERE o.state = 'pending' AND o.group_key = n.group_key AND o.id < n.id)";

/// The groups the dispatcher keeps, by key.
pub(crate) async fn groups(pool: &SqlitePool) -> Result<Vec<GroupRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT key, receiver, route_path, labels, clock FROM alert_groups ORDER BY key",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(group_from_row).collect()
}

/// Applies a dispatcher pass inside the caller's transaction; answers the new notifications
/// in order.
pub(crate) async fn write(
    conn: &mut SqliteConnection,
    write: &DispatchWrite,
    now_ms: i64,
) -> Result<Vec<Queued>, StoreError> {
    if let Some(lease) = &write.lease {
        crate::schedules::check_lease(conn, lease).await?;
    }
    upsert_groups(conn, &write.groups, now_ms).await?;
    if !write.finished.is_empty() {
        sqlx::query("DELETE FROM alert_groups WHERE key IN (SELECT value FROM json_each(?))")
            .bind(encode_json(&write.finished)?)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let ids = insert_notifications(conn, &write.notifications).await?;
    heads(conn, &ids).await
}

/// Inserts or replaces groups by key; a key listed twice ends with its last record (the rows
/// are applied in order).
async fn upsert_groups(
    conn: &mut SqliteConnection,
    groups: &[GroupRecord],
    now_ms: i64,
) -> Result<(), StoreError> {
    if groups.is_empty() {
        return Ok(());
    }
    let rows = groups
        .iter()
        .map(|g| {
            Ok((
                g.key.as_str(),
                g.receiver.as_str(),
                // Nested as strings, so `->>` hands the columns exactly this text.
                encode_json(&g.route_path)?,
                encode_labels(&g.labels),
                encode_json(&g.clock)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not a join.
    sqlx::query(
        "INSERT INTO alert_groups (key, receiver, route_path, labels, clock, updated_ms) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ?1 \
         FROM json_each(?2) WHERE true ORDER BY json_each.key \
         ON CONFLICT (key) DO UPDATE SET receiver = excluded.receiver, \
         route_path = excluded.route_path, labels = excluded.labels, clock = excluded.clock, \
         updated_ms = excluded.updated_ms",
    )
    .bind(now_ms)
    .bind(encode_json(&rows)?)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Queues notifications as pending, due at their creation, in order; answers their ids.
async fn insert_notifications(
    conn: &mut SqliteConnection,
    notifications: &[NewNotification],
) -> Result<Vec<i64>, StoreError> {
    if notifications.is_empty() {
        return Ok(Vec::new());
    }
    // AUTOINCREMENT ids only grow and this transaction is the only writer, so the new rows
    // are exactly those above the sequence as it stands now.
    let before: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'notifications'), 0)",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    // Notices are bound as they are, not nested in a JSON array for `json_each`: a notice of
    // a large group runs to megabytes, which nesting would escape and SQLite parse again.
    for chunk in notifications.chunks(INSERT_CHUNK) {
        let notices = chunk
            .iter()
            .map(|n| encode_json(&n.notice))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO notifications (group_key, receiver, notice, state, created_ms, \
             next_attempt_ms, expires_ms) ",
        );
        insert.push_values(chunk.iter().zip(notices), |mut row, (n, notice)| {
            row.push_bind(n.notice.group_key.as_str())
                .push_bind(n.notice.receiver.as_str())
                .push_bind(notice)
                .push("'pending'")
                .push_bind(n.created_ms)
                .push_bind(n.created_ms)
                .push_bind(n.expires_ms);
        });
        // Its text varies with the chunk's length: not worth a place in the statement cache.
        insert
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    // One JSON row rather than a row per id: the driver hands each result row across threads,
    // which for thousands of ids costs more than the insert.
    let ids: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(id) FROM (SELECT id FROM notifications WHERE id > ? ORDER BY id)",
    )
    .bind(before)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let ids: Vec<i64> = serde_json::from_str(ids.as_deref().unwrap_or("[]"))
        .map_err(|e| StoreError::Corrupt(format!("inserted notification ids: {e}")))?;
    if ids.len() != notifications.len() {
        return Err(StoreError::Corrupt(format!(
            "{} notifications inserted, {} found above id {before}",
            notifications.len(),
            ids.len()
        )));
    }
    Ok(ids)
}

/// Which of the notifications just inserted (`ids`, ascending) head their groups: those no
/// older pending notification of the same group precedes.
async fn heads(conn: &mut SqliteConnection, ids: &[i64]) -> Result<Vec<Queued>, StoreError> {
    let Some(&first) = ids.first() else {
        return Ok(Vec::new());
    };
    let behind: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(n.id) FROM notifications AS n WHERE n.id >= ? \
         AND EXISTS (SELECT 1 FROM notifications AS o INDEXED BY notifications_pending \
         WHERE o.state = 'pending' AND o.group_key = n.group_key AND o.id < n.id)",
    )
    .bind(first)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let behind: HashSet<i64> = serde_json::from_str(behind.as_deref().unwrap_or("[]"))
        .map_err(|e| StoreError::Corrupt(format!("notifications behind their group: {e}")))?;
    Ok(Queued::all(ids, &behind))
}

/// Records which alerts the notifications above the highest one linked carry, from their
/// notices; answers how many links it wrote. One statement: links only ever appear in id order,
/// so those above the highest are exactly the unlinked ones (a link already there, after
/// pruning lowered the highest, is left as it is).
pub(crate) async fn link_alerts(
    conn: &mut SqliteConnection,
    up_to: i64,
) -> Result<u64, StoreError> {
    let linked = sqlx::query(
        "INSERT INTO notification_alerts (fingerprint, notification_id) \
         SELECT DISTINCT a.value->>'fingerprint', n.id \
         FROM notifications AS n, json_each(n.notice, '$.alerts') AS a \
         WHERE n.id > (SELECT coalesce(max(notification_id), 0) FROM notification_alerts) \
         AND n.id <= ?1 \
         ON CONFLICT DO NOTHING",
    )
    .bind(up_to)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(linked)
}

/// Up to `limit` due notifications heading their groups, by id.
pub(crate) async fn due(
    pool: &SqlitePool,
    now_ms: i64,
    excluding: &[i64],
    limit: u32,
) -> Result<Vec<StoredNotification>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications AS n \
         INDEXED BY notifications_pending \
         WHERE n.next_attempt_ms <= ?1 \
         AND n.id NOT IN (SELECT value FROM json_each(?3)) AND {HEADS} \
         ORDER BY n.id LIMIT ?2"
    ))
    .bind(now_ms)
    .bind(i64::from(limit))
    .bind(encode_json(&excluding)?)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(notification_from_row).collect()
}

/// The earliest next attempt among the notifications heading their groups.
pub(crate) async fn next_due(pool: &SqlitePool) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(&format!(
        "SELECT min(n.next_attempt_ms) FROM notifications AS n \
         INDEXED BY notifications_pending WHERE {HEADS}"
    ))
    .fetch_one(pool)
    .await
    .map_err(db_err)
}

/// Records attempts on pending notifications inside the caller's transaction, in three
/// statements whatever their number (the sender's completions come in bursts of hundreds);
/// answers, per attempt, whether it was recorded: not when its notification is not pending.
/// A notification appears once in a batch (the sender attempts it once at a time).
pub(crate) async fn record_attempts(
    conn: &mut SqliteConnection,
    attempts: &[(i64, Attempt, AttemptOutcome)],
) -> Result<Vec<bool>, StoreError> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = attempts.iter().map(|(id, _, _)| *id).collect();
    let pending: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(id) FROM notifications \
         WHERE state = 'pending' AND id IN (SELECT value FROM json_each(?))",
    )
    .bind(encode_json(&ids)?)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let pending: HashSet<i64> = serde_json::from_str(pending.as_deref().unwrap_or("[]"))
        .map_err(|e| StoreError::Corrupt(format!("pending notifications: {e}")))?;
    let recorded: Vec<bool> = ids.iter().map(|id| pending.contains(id)).collect();
    let taken = attempts.iter().zip(&recorded).filter(|(_, r)| **r);
    let mut effects = Vec::new();
    let mut rows = Vec::new();
    for ((id, attempt, outcome), _) in taken {
        let effect = AttemptEffect::of(attempt, *outcome);
        effects.push((
            *id,
            effect.state.as_str(),
            effect.next_attempt_ms,
            effect.finished_ms,
            effect.last_error,
        ));
        rows.push((
            *id,
            attempt.at_ms,
            attempt.latency_ms,
            attempt.status,
            attempt.error.as_deref().map(attempt_error),
        ));
    }
    if rows.is_empty() {
        return Ok(recorded);
    }
    sqlx::query(
        "UPDATE notifications SET state = e.state, attempts = attempts + 1, \
         next_attempt_ms = coalesce(e.next_attempt_ms, notifications.next_attempt_ms), \
         finished_ms = e.finished_ms, last_error = e.last_error \
         FROM (SELECT value->>0 AS id, value->>1 AS state, value->>2 AS next_attempt_ms, \
               value->>3 AS finished_ms, value->>4 AS last_error FROM json_each(?)) AS e \
         WHERE notifications.id = e.id",
    )
    .bind(encode_json(&effects)?)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO notification_attempts (notification_id, at_ms, latency_ms, status, error) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4 FROM json_each(?) \
         ORDER BY key",
    )
    .bind(encode_json(&rows)?)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(recorded)
}

/// Notifications matching `query`, newest first.
pub(crate) async fn list(
    pool: &SqlitePool,
    query: &NotificationQuery,
) -> Result<Vec<StoredNotification>, StoreError> {
    // Only the filters given are written into the statement, so that SQLite can pick the
    // matching index.
    let mut select = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE true"
    ));
    if let Some(fingerprint) = query.fingerprint {
        select
            .push(
                " AND id IN (SELECT notification_id FROM notification_alerts WHERE fingerprint = ",
            )
            .push_bind(fingerprint.to_string())
            .push(")");
    }
    if let Some(receiver) = &query.receiver {
        select.push(" AND receiver = ").push_bind(receiver.as_str());
    }
    if let Some(state) = query.state {
        select.push(" AND state = ").push_bind(state.as_str());
    }
    select
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(query.limit.min(MAX_NOTIFICATION_PAGE)));
    let rows = select.build().fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(notification_from_row).collect()
}

/// A notification's attempts, oldest first.
pub(crate) async fn attempts(pool: &SqlitePool, id: i64) -> Result<Vec<Attempt>, StoreError> {
    let rows = sqlx::query(steward_store::sql::NOTIFICATION_ATTEMPTS)
        .bind(id)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|row| AttemptRow::from_row(row).map_err(db_err)?.into_attempt(id))
        .collect()
}

/// Notifications per receiver and state.
pub(crate) async fn counts(pool: &SqlitePool) -> Result<Vec<NotificationCount>, StoreError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT receiver, state, count(*) FROM notifications GROUP BY receiver, state \
         ORDER BY receiver, state",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.into_iter()
        .map(|(receiver, state, count)| {
            Ok(NotificationCount {
                state: decode_notification_state(&state)?,
                count: decode_row_count(count, &format!("notifications of `{receiver}`"))?,
                receiver,
            })
        })
        .collect()
}

/// Deletes delivered and failed notifications (their alerts and attempts by cascade) that
/// finished before `before_ms`, a chunk per statement until a chunk comes back short.
pub(crate) async fn prune(pool: &SqlitePool, before_ms: i64) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications \
             WHERE finished_ms < ?1 AND state IN ('delivered', 'failed') LIMIT ?2)",
        )
        .bind(before_ms)
        .bind(PRUNE_CHUNK)
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        total = total.saturating_add(deleted);
        if deleted < PRUNE_CHUNK.unsigned_abs() {
            return Ok(total);
        }
    }
}

fn group_from_row(row: &SqliteRow) -> Result<GroupRecord, StoreError> {
    GroupRow::from_row(row).map_err(db_err)?.try_into()
}

fn notification_from_row(row: &SqliteRow) -> Result<StoredNotification, StoreError> {
    NotificationRow::from_row(row).map_err(db_err)?.try_into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use sqlx::Connection;
    use steward_core::alert::group::{GroupClock, Reason};
    use steward_core::alert::notice::Notice;
    use steward_store::prelude::*;

    use super::*;
    use crate::SqliteStore;
    use steward_store::conformance::assert_corrupt;

    /// A store holding one group and one notification with one attempt, and a raw connection
    /// to its file.
    async fn store_with_one_of_each() -> (tempfile::TempDir, SqliteStore, sqlx::SqliteConnection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).await.expect("open");
        store.migrate().await.expect("migrate");
        let notice = Notice {
            receiver: "ops".into(),
            group_key: "/:ops:{}".into(),
            group_labels: Default::default(),
            reason: Reason::First,
            alerts: Vec::new(),
            encodings: Default::default(),
        };
        let ids = store
            .write_dispatch(&DispatchWrite {
                groups: vec![GroupRecord {
                    key: "/:ops:{}".into(),
                    receiver: "ops".into(),
                    route_path: vec![0],
                    labels: Default::default(),
                    clock: GroupClock::new(1_000),
                }],
                finished: Vec::new(),
                notifications: vec![NewNotification {
                    notice,
                    created_ms: 1_000,
                    expires_ms: 2_000,
                }],
                lease: None,
            })
            .await
            .expect("write");
        let attempt = Attempt {
            at_ms: 1_000,
            latency_ms: 5,
            status: Some(503),
            error: None,
        };
        assert!(
            store
                .record_attempt(ids[0].id, &attempt, AttemptOutcome::RetryAt(1_500))
                .await
                .expect("attempt")
        );
        let url = format!("sqlite://{}", store.path().display());
        let raw = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("raw connection");
        (dir, store, raw)
    }

    async fn tamper(raw: &mut sqlx::SqliteConnection, sql: &str) {
        sqlx::raw_sql(sql).execute(&mut *raw).await.expect(sql);
    }

    fn everything() -> NotificationQuery {
        NotificationQuery {
            limit: MAX_NOTIFICATION_PAGE,
            ..NotificationQuery::default()
        }
    }

    #[tokio::test]
    async fn damaged_rows_are_reported_as_corrupt() {
        let (_dir, store, mut raw) = store_with_one_of_each().await;
        assert_eq!(
            store
                .notifications(&everything())
                .await
                .expect("intact")
                .len(),
            1
        );

        tamper(
            &mut raw,
            "UPDATE notifications SET notice = '{\"receiver\":'",
        )
        .await;
        assert_corrupt("notice", store.notifications(&everything()).await);
        assert_corrupt(
            "notice of a due one",
            store.due_notifications(i64::MAX, &[], 10).await,
        );
        tamper(&mut raw, "UPDATE notifications SET notice = '{}'").await;
        assert_corrupt("notice shape", store.notifications(&everything()).await);
        tamper(
            &mut raw,
            "UPDATE notifications SET notice = '{\"receiver\":\"ops\",\"group_key\":\"/:ops:{}\",\
             \"group_labels\":{},\"reason\":\"first\",\"alerts\":[]}', attempts = -1",
        )
        .await;
        assert_corrupt("attempts", store.notifications(&everything()).await);
        // The state's CHECK is lifted for this connection only, to write what it forbids.
        tamper(
            &mut raw,
            "PRAGMA ignore_check_constraints = ON; \
             UPDATE notifications SET attempts = 1, state = 'sent'",
        )
        .await;
        assert_corrupt("state", store.notifications(&everything()).await);
        assert_corrupt("state counted", store.notification_counts().await);
        tamper(&mut raw, "UPDATE notification_attempts SET status = 70000").await;
        assert_corrupt("status", store.notification_attempts(1).await);

        assert_eq!(store.alert_groups().await.expect("intact").len(), 1);
        tamper(&mut raw, "UPDATE alert_groups SET clock = 'tick'").await;
        assert_corrupt("clock", store.alert_groups().await);
        tamper(
            &mut raw,
            "UPDATE alert_groups SET clock = '{\"created_ms\":1}'",
        )
        .await;
        assert_corrupt("clock shape", store.alert_groups().await);
        let clock = serde_json::to_string(&GroupClock::new(1_000)).expect("clock");
        tamper(
            &mut raw,
            &format!("UPDATE alert_groups SET clock = '{clock}', route_path = '[-1]'"),
        )
        .await;
        assert_corrupt("route path", store.alert_groups().await);
        tamper(
            &mut raw,
            "UPDATE alert_groups SET route_path = '[0]', labels = '[]'",
        )
        .await;
        assert_corrupt("labels", store.alert_groups().await);
        tamper(&mut raw, "UPDATE alert_groups SET labels = '{}'").await;
        assert_eq!(store.alert_groups().await.expect("repaired").len(), 1);
        raw.close().await.expect("close raw");
        store.close().await;
    }
}
