//! The notification outbox on PostgreSQL: the dispatcher's groups, notifications, the alerts
//! each carries and its attempts. A dispatcher pass is one transaction of a fixed number of
//! statements whatever its size, each over arrays unpacked with `unnest`. The new
//! notifications' ids are drawn from their sequence first and handed out in ascending order, so
//! that they ascend in the pass's order even while another instance draws from the sequence
//! too. Groups are upserted in key order, so concurrent passes lock them in the same order and
//! do not deadlock on each other.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};
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

use crate::db_err;
use crate::{PostgresStore, settle};

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn alert_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        groups(&self.pool).await
    }

    async fn write_dispatch(&self, write: &DispatchWrite) -> Result<Vec<Queued>, StoreError> {
        if write.groups.is_empty() && write.finished.is_empty() && write.notifications.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = self::write(&mut tx, write, now_ms()).await;
        settle(result, tx).await
    }

    async fn due_notifications(
        &self,
        now_ms: i64,
        excluding: &[i64],
        limit: u32,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        due(&self.pool, now_ms, excluding, limit).await
    }

    async fn next_notification_due(&self) -> Result<Option<i64>, StoreError> {
        next_due(&self.pool).await
    }

    async fn link_notifications(&self, up_to: i64) -> Result<u64, StoreError> {
        link_alerts(&self.pool, up_to).await
    }

    async fn record_attempts(
        &self,
        attempts: &[(i64, Attempt, AttemptOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = record_attempts(&mut tx, attempts).await;
        settle(result, tx).await
    }

    async fn notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        list(&self.pool, query).await
    }

    async fn notification_attempts(&self, id: i64) -> Result<Vec<Attempt>, StoreError> {
        attempts(&self.pool, id).await
    }

    async fn notification_counts(&self) -> Result<Vec<NotificationCount>, StoreError> {
        counts(&self.pool).await
    }

    async fn prune_notifications(&self, before_ms: i64) -> Result<u64, StoreError> {
        prune(&self.pool, before_ms).await
    }
}

/// Notifications one pruning statement deletes (their alerts and attempts go with them): each
/// chunk is its own short transaction, so no pass holds locks on (or bloats one transaction
/// with) weeks of notifications.
const PRUNE_CHUNK: i64 = 5_000;

/// The columns of a notification, in the order [`notification_from_row`] reads them.
const NOTIFICATION_COLUMNS: &str = "id, notice, state, attempts, created_ms, next_attempt_ms, \
     expires_ms, finished_ms, last_error";

/// Pending notifications that head their group: no older one of the group is still pending.
/// Probes `notifications_pending` once per candidate.
const HEADS: &str = "n.state = 'pending' AND NOT EXISTS (SELECT 1 FROM notifications AS o \
     WHERE o.state = 'pending' AND o.group_key = n.group_key AND o.id < n.id)";

/// The groups the dispatcher keeps, by key (in byte order, as SQLite sorts them).
pub(crate) async fn groups(pool: &PgPool) -> Result<Vec<GroupRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT key, receiver, route_path, labels, clock FROM alert_groups \
         ORDER BY key COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(group_from_row).collect()
}

/// Applies a dispatcher pass inside the caller's transaction; answers the new notifications
/// in order.
pub(crate) async fn write(
    conn: &mut PgConnection,
    write: &DispatchWrite,
    now_ms: i64,
) -> Result<Vec<Queued>, StoreError> {
    if let Some(lease) = &write.lease {
        crate::schedules::check_lease(conn, lease).await?;
    }
    upsert_groups(conn, &write.groups, now_ms).await?;
    if !write.finished.is_empty() {
        sqlx::query("DELETE FROM alert_groups WHERE key = ANY($1)")
            .bind(&write.finished)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let ids = insert_notifications(conn, &write.notifications).await?;
    heads(conn, &ids).await
}

/// Which of the notifications just inserted (`ids`, ascending) head their groups: those no
/// older pending notification of the same group precedes.
async fn heads(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<Queued>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let behind: Vec<i64> = sqlx::query_scalar(
        "SELECT n.id FROM notifications AS n WHERE n.id = ANY($1) \
         AND EXISTS (SELECT 1 FROM notifications AS o WHERE o.state = 'pending' \
         AND o.group_key = n.group_key AND o.id < n.id)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let behind: HashSet<i64> = behind.into_iter().collect();
    Ok(Queued::all(ids, &behind))
}

/// Inserts or replaces groups by key; a key listed twice ends with its last record.
async fn upsert_groups(
    conn: &mut PgConnection,
    groups: &[GroupRecord],
    now_ms: i64,
) -> Result<(), StoreError> {
    // One row per key (an upsert may not touch a row twice), in key order (the lock order).
    let latest: BTreeMap<&str, &GroupRecord> = groups.iter().map(|g| (g.key.as_str(), g)).collect();
    if latest.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = latest.keys().copied().collect();
    let receivers: Vec<&str> = latest.values().map(|g| g.receiver.as_str()).collect();
    let paths = latest
        .values()
        .map(|g| encode_json(&g.route_path))
        .collect::<Result<Vec<_>, _>>()?;
    let labels: Vec<String> = latest.values().map(|g| encode_labels(&g.labels)).collect();
    let clocks = latest
        .values()
        .map(|g| encode_json(&g.clock))
        .collect::<Result<Vec<_>, _>>()?;
    sqlx::query(
        "INSERT INTO alert_groups (key, receiver, route_path, labels, clock, updated_ms) \
         SELECT k, r, p, l, c, $6 \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
         AS u(k, r, p, l, c) \
         ON CONFLICT (key) DO UPDATE SET receiver = excluded.receiver, \
         route_path = excluded.route_path, labels = excluded.labels, clock = excluded.clock, \
         updated_ms = excluded.updated_ms",
    )
    .bind(&keys)
    .bind(&receivers)
    .bind(&paths)
    .bind(&labels)
    .bind(&clocks)
    .bind(now_ms)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// From this size on a notice is inserted as a parameter of its own (see
/// [`insert_notifications`]).
const LARGE_NOTICE_BYTES: usize = 64 * 1024;

/// Queues notifications as pending, due at their creation, in order; answers their ids.
async fn insert_notifications(
    conn: &mut PgConnection,
    notifications: &[NewNotification],
) -> Result<Vec<i64>, StoreError> {
    if notifications.is_empty() {
        return Ok(Vec::new());
    }
    let count = i64::try_from(notifications.len()).unwrap_or(i64::MAX);
    let drawn: Option<Vec<i64>> = sqlx::query_scalar(
        "SELECT array_agg(nextval(pg_get_serial_sequence('notifications', 'id'))) \
         FROM generate_series(1, $1)",
    )
    .bind(count)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut ids = drawn.unwrap_or_default();
    // A sequence hands out ascending values, but the aggregate need not keep their order.
    ids.sort_unstable();
    if ids.len() != notifications.len() {
        return Err(StoreError::Corrupt(format!(
            "{} notification ids drawn for {} notifications",
            ids.len(),
            notifications.len()
        )));
    }
    let notices = notifications
        .iter()
        .map(|n| encode_json(&n.notice))
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<(&NewNotification, i64, String)> = notifications
        .iter()
        .zip(ids.iter().copied())
        .zip(notices)
        .map(|((n, id), notice)| (n, id, notice))
        .collect();
    // Small notices go as arrays in one prepared statement. A large one goes as a parameter of
    // its own: the server takes a megabyte parameter several times faster than the same text
    // as an element of an array, while a statement with a row per notification is parsed anew.
    let (large, small): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|(_, _, notice)| notice.len() >= LARGE_NOTICE_BYTES);
    insert_small(conn, small).await?;
    for row in large {
        insert_large(conn, row).await?;
    }
    Ok(ids)
}

/// Inserts notifications whose notices are small, in one statement.
async fn insert_small(
    conn: &mut PgConnection,
    rows: Vec<(&NewNotification, i64, String)>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = rows.iter().map(|(_, id, _)| *id).collect();
    let group_keys: Vec<&str> = rows
        .iter()
        .map(|(n, _, _)| n.notice.group_key.as_str())
        .collect();
    let receivers: Vec<&str> = rows
        .iter()
        .map(|(n, _, _)| n.notice.receiver.as_str())
        .collect();
    let created: Vec<i64> = rows.iter().map(|(n, _, _)| n.created_ms).collect();
    let expires: Vec<i64> = rows.iter().map(|(n, _, _)| n.expires_ms).collect();
    let notices: Vec<String> = rows.into_iter().map(|(_, _, notice)| notice).collect();
    sqlx::query(
        "INSERT INTO notifications (id, group_key, receiver, notice, state, created_ms, \
         next_attempt_ms, expires_ms) \
         SELECT i, g, r, n, 'pending', c, c, e \
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
         $6::bigint[]) AS u(i, g, r, n, c, e)",
    )
    .bind(&ids)
    .bind(&group_keys)
    .bind(&receivers)
    .bind(&notices)
    .bind(&created)
    .bind(&expires)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Inserts one notification whose notice is large.
async fn insert_large(
    conn: &mut PgConnection,
    (n, id, notice): (&NewNotification, i64, String),
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notifications (id, group_key, receiver, notice, state, created_ms, \
         next_attempt_ms, expires_ms) VALUES ($1, $2, $3, $4, 'pending', $5, $5, $6)",
    )
    .bind(id)
    .bind(n.notice.group_key.as_str())
    .bind(n.notice.receiver.as_str())
    .bind(notice)
    .bind(n.created_ms)
    .bind(n.expires_ms)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Records which alerts the notifications above the highest one linked carry, from their
/// notices; answers how many links it wrote. Links only ever appear in id order, so those above
/// the highest are exactly the unlinked ones (a link already there, after pruning lowered the
/// highest, is left as it is).
pub(crate) async fn link_alerts(pool: &PgPool, up_to: i64) -> Result<u64, StoreError> {
    let linked = sqlx::query(
        "INSERT INTO notification_alerts (fingerprint, notification_id) \
         SELECT DISTINCT a->>'fingerprint', n.id \
         FROM notifications AS n, jsonb_array_elements(n.notice::jsonb -> 'alerts') AS a \
         WHERE n.id > (SELECT coalesce(max(notification_id), 0) FROM notification_alerts) \
         AND n.id <= $1 \
         ON CONFLICT DO NOTHING",
    )
    .bind(up_to)
    .execute(pool)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(linked)
}

/// Up to `limit` due notifications heading their groups, by id.
pub(crate) async fn due(
    pool: &PgPool,
    now_ms: i64,
    excluding: &[i64],
    limit: u32,
) -> Result<Vec<StoredNotification>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications AS n \
         WHERE n.next_attempt_ms <= $1 AND NOT (n.id = ANY($3)) AND {HEADS} \
         ORDER BY n.id LIMIT $2"
    ))
    .bind(now_ms)
    .bind(i64::from(limit))
    .bind(excluding)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(notification_from_row).collect()
}

/// The earliest next attempt among the notifications heading their groups.
pub(crate) async fn next_due(pool: &PgPool) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(&format!(
        "SELECT min(n.next_attempt_ms) FROM notifications AS n WHERE {HEADS}"
    ))
    .fetch_one(pool)
    .await
    .map_err(db_err)
}

/// Records several attempts inside the caller's transaction with two statements whatever
/// their number; answers, per attempt, whether its notification was pending (only those are
/// written).
pub(crate) async fn record_attempts(
    conn: &mut PgConnection,
    attempts: &[(i64, Attempt, AttemptOutcome)],
) -> Result<Vec<bool>, StoreError> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(attempts.len());
    let mut states = Vec::with_capacity(attempts.len());
    let mut next = Vec::with_capacity(attempts.len());
    let mut finished = Vec::with_capacity(attempts.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(attempts.len());
    let mut at = Vec::with_capacity(attempts.len());
    let mut latency = Vec::with_capacity(attempts.len());
    let mut statuses: Vec<Option<i32>> = Vec::with_capacity(attempts.len());
    let mut attempt_errors: Vec<Option<String>> = Vec::with_capacity(attempts.len());
    for (id, attempt, outcome) in attempts {
        let effect = AttemptEffect::of(attempt, *outcome);
        ids.push(*id);
        states.push(effect.state.as_str());
        next.push(effect.next_attempt_ms);
        finished.push(effect.finished_ms);
        errors.push(effect.last_error.map(str::to_owned));
        at.push(attempt.at_ms);
        latency.push(attempt.latency_ms);
        statuses.push(attempt.status.map(i32::from));
        attempt_errors.push(
            attempt
                .error
                .as_deref()
                .map(|e| attempt_error(e).to_owned()),
        );
    }
    // One notification appears once in a batch (the sender attempts it once at a time).
    let updated: Vec<i64> = sqlx::query_scalar(
        "UPDATE notifications AS n SET state = i.state, attempts = n.attempts + 1, \
         next_attempt_ms = coalesce(i.next_attempt_ms, n.next_attempt_ms), \
         finished_ms = i.finished_ms, last_error = i.last_error \
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[]) \
              AS i(id, state, next_attempt_ms, finished_ms, last_error) \
         WHERE n.id = i.id AND n.state = 'pending' RETURNING n.id",
    )
    .bind(&ids)
    .bind(&states)
    .bind(&next)
    .bind(&finished)
    .bind(&errors)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let updated: std::collections::HashSet<i64> = updated.into_iter().collect();
    let recorded: Vec<bool> = ids.iter().map(|id| updated.contains(id)).collect();
    sqlx::query(
        "INSERT INTO notification_attempts (notification_id, at_ms, latency_ms, status, error) \
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::text[])",
    )
    .bind(only_recorded(&ids, &recorded))
    .bind(only_recorded(&at, &recorded))
    .bind(only_recorded(&latency, &recorded))
    .bind(only_recorded(&statuses, &recorded))
    .bind(only_recorded(&attempt_errors, &recorded))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(recorded)
}

/// The values whose attempt was recorded.
fn only_recorded<T: Clone>(values: &[T], recorded: &[bool]) -> Vec<T> {
    values
        .iter()
        .zip(recorded)
        .filter(|(_, r)| **r)
        .map(|(v, _)| v.clone())
        .collect()
}

/// Notifications matching `query`, newest first.
pub(crate) async fn list(
    pool: &PgPool,
    query: &NotificationQuery,
) -> Result<Vec<StoredNotification>, StoreError> {
    // Only the filters given are written into the statement, so that the planner can pick the
    // matching index.
    let mut select = QueryBuilder::<Postgres>::new(format!(
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
pub(crate) async fn attempts(pool: &PgPool, id: i64) -> Result<Vec<Attempt>, StoreError> {
    let rows = sqlx::query(steward_store::sql::NOTIFICATION_ATTEMPTS)
        .bind(id)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|row| AttemptRow::from_row(row).map_err(db_err)?.into_attempt(id))
        .collect()
}

/// Notifications per receiver and state (in byte order, as SQLite sorts them).
pub(crate) async fn counts(pool: &PgPool) -> Result<Vec<NotificationCount>, StoreError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT receiver, state, count(*) FROM notifications GROUP BY receiver, state \
         ORDER BY receiver COLLATE \"C\", state COLLATE \"C\"",
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
pub(crate) async fn prune(pool: &PgPool, before_ms: i64) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM notifications WHERE id = ANY(ARRAY(SELECT id FROM notifications \
             WHERE finished_ms < $1 AND state IN ('delivered', 'failed') LIMIT $2))",
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

fn group_from_row(row: &PgRow) -> Result<GroupRecord, StoreError> {
    GroupRow::from_row(row).map_err(db_err)?.try_into()
}

fn notification_from_row(row: &PgRow) -> Result<StoredNotification, StoreError> {
    NotificationRow::from_row(row).map_err(db_err)?.try_into()
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]
    use steward_store::prelude::*;

    use sqlx::Connection;
    use steward_core::alert::group::{GroupClock, Reason};
    use steward_core::alert::notice::Notice;

    use super::*;
    use crate::testing::TestDatabase;
    use steward_store::conformance::assert_corrupt;

    async fn tamper(raw: &mut sqlx::PgConnection, sql: &str) {
        sqlx::raw_sql(sql).execute(&mut *raw).await.expect(sql);
    }

    fn everything() -> NotificationQuery {
        NotificationQuery {
            limit: MAX_NOTIFICATION_PAGE,
            ..NotificationQuery::default()
        }
    }

    #[tokio::test]
    async fn notices_and_group_clocks_are_compressed_with_lz4_where_the_server_has_it() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let _store = db.migrated_store(2).await;
        let mut raw = sqlx::PgConnection::connect(&db.url)
            .await
            .expect("raw connection");
        let has_lz4: Option<bool> = sqlx::query_scalar(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings \
             WHERE name = 'default_toast_compression'",
        )
        .fetch_optional(&mut raw)
        .await
        .expect("settings");
        for (table, column) in [("notifications", "notice"), ("alert_groups", "clock")] {
            let method: Option<String> = sqlx::query_scalar(
                "SELECT nullif(attcompression::text, '') FROM pg_attribute \
                 WHERE attrelid = $1::regclass AND attname = $2",
            )
            .bind(table)
            .bind(column)
            .fetch_one(&mut raw)
            .await
            .expect("column");
            assert_eq!(
                method.as_deref(),
                has_lz4.unwrap_or(false).then_some("l"),
                "{table}.{column}"
            );
        }
    }

    #[tokio::test]
    async fn damaged_rows_are_reported_as_corrupt() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let store = db.migrated_store(4).await;
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
        let mut raw = sqlx::PgConnection::connect(&db.url)
            .await
            .expect("raw connection");
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
        // The state's CHECK is dropped, to write what it forbids.
        tamper(
            &mut raw,
            "ALTER TABLE notifications DROP CONSTRAINT notifications_state_check; \
             UPDATE notifications SET attempts = 1, state = 'sent'",
        )
        .await;
        assert_corrupt("state", store.notifications(&everything()).await);
        assert_corrupt("state counted", store.notification_counts().await);
        tamper(&mut raw, "UPDATE notification_attempts SET status = 70000").await;
        assert_corrupt("status", store.notification_attempts(ids[0].id).await);

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
