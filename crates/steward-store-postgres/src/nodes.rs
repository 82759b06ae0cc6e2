//! The fleet on PostgreSQL: nodes, join tokens, heartbeats, statuses and reported inventory.
//! Instances sharing the database sync the declared nodes one at a time (an advisory lock) and
//! reconcile one node's kind at a time (its row is locked first).

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::postgres::PgConnection;
use sqlx::types::Json;
use steward_core::Role;
use steward_core::audit::Actor;
use steward_core::node::NodeSpec;
use steward_store::nodes::{
    DEFAULT_NODE_INTERVAL_MS, join_token_created, node_added, node_registered, node_removed,
    nodes_synced, plan_reconcile,
};
use steward_store::rows::{NodeItemRow, NodeRow};
use steward_store::sql;
use steward_store::{
    ApiKey, KindChanges, KindReport, NewJoinToken, NodeBeat, NodeItem, NodeRecord, NodeSource,
    NodeStore, NodesSynced, Redeemed, Registration, StatusChange, StoreError, now_ms,
};

use crate::audit::append_audit;
use crate::keys::insert_keys;
use crate::{PostgresStore, db_err, settle};

/// The advisory lock key that serialises syncs of the declared nodes ("stewnod" in ASCII).
const SYNC_LOCK: i64 = 0x0073_7465_776e_6f64;

#[async_trait]
impl NodeStore for PostgresStore {
    async fn sync_declared_nodes(
        &self,
        declared: &[NodeSpec],
        actor: &Actor,
    ) -> Result<NodesSynced, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = sync_declared(&mut tx, declared, actor).await;
        settle(result, tx).await
    }

    async fn add_node(&self, spec: &NodeSpec, actor: &Actor) -> Result<NodeRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = add(&mut tx, spec, actor).await;
        settle(result, tx).await
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        read_nodes(&mut conn).await
    }

    async fn node(&self, id: &str) -> Result<Option<NodeRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        read_node(&mut conn, id).await
    }

    async fn remove_node(&self, id: &str, actor: &Actor) -> Result<NodeRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = remove(&mut tx, id, actor).await;
        settle(result, tx).await
    }

    async fn create_join_token(
        &self,
        token: &NewJoinToken,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = create_token(&mut tx, token, actor).await;
        settle(result, tx).await
    }

    async fn redeem_join_token(
        &self,
        registration: &Registration,
        actor: &Actor,
    ) -> Result<Redeemed, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = redeem(&mut tx, registration, actor).await;
        settle(result, tx).await
    }

    async fn record_node_beats(&self, beats: &[NodeBeat]) -> Result<Vec<String>, StoreError> {
        if beats.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = beats.iter().map(|b| b.node.as_str()).collect();
        let at: Vec<i64> = beats.iter().map(|b| b.at_ms).collect();
        let intervals: Vec<i64> = beats.iter().map(|b| b.interval_ms).collect();
        let usage: Vec<Json<&serde_json::Value>> = beats.iter().map(|b| Json(&b.usage)).collect();
        // Sorted by id, so that two instances' batches lock rows in the same order.
        let updated: Vec<String> = sqlx::query_scalar(
            "UPDATE nodes SET last_seen_ms = GREATEST(coalesce(nodes.last_seen_ms, 0), b.at), \
             interval_ms = b.interval, usage = b.usage \
             FROM (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::jsonb[]) \
                   AS u(id, at, interval, usage) ORDER BY id) AS b \
             WHERE nodes.id = b.id RETURNING nodes.id",
        )
        .bind(&ids)
        .bind(&at)
        .bind(&intervals)
        .bind(&usage)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let updated: HashSet<String> = updated.into_iter().collect();
        Ok(beats
            .iter()
            .filter(|b| !updated.contains(&b.node))
            .map(|b| b.node.clone())
            .collect())
    }

    async fn node_digests(&self, node: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(sql::NODE_DIGESTS)
            .bind(node)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().collect())
    }

    async fn reconcile_node_kind(&self, report: &KindReport) -> Result<KindChanges, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = reconcile(&mut tx, report).await;
        settle(result, tx).await
    }

    async fn node_items(&self, node: &str) -> Result<Vec<NodeItem>, StoreError> {
        sqlx::query(sql::NODE_ITEMS)
            .bind(node)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|row| {
                NodeItemRow::from_row(row)
                    .map(NodeItem::from)
                    .map_err(db_err)
            })
            .collect()
    }

    async fn set_node_statuses(
        &self,
        changes: &[StatusChange],
    ) -> Result<Vec<StatusChange>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = set_statuses(&mut tx, changes).await;
        settle(result, tx).await
    }
}

async fn sync_declared(
    tx: &mut PgConnection,
    declared: &[NodeSpec],
    actor: &Actor,
) -> Result<NodesSynced, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SYNC_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    let stored = read_nodes(tx).await?;
    let now = now_ms();
    let mut synced = NodesSynced::default();
    let declared_ids: HashSet<&str> = declared.iter().map(|s| s.id.as_str()).collect();
    for spec in declared {
        match stored.iter().find(|n| n.spec.id == spec.id) {
            None => {
                if insert_node(tx, spec, NodeSource::Config, now)
                    .await?
                    .is_some()
                {
                    synced.added.push(spec.id.clone());
                }
            }
            Some(node) if node.spec != *spec || node.source != NodeSource::Config => {
                update_declared(tx, spec).await?;
                synced.updated.push(spec.id.clone());
            }
            Some(_) => {}
        }
    }
    for node in &stored {
        if node.source == NodeSource::Config && !declared_ids.contains(node.spec.id.as_str()) {
            delete_node(tx, node, actor, now).await?;
            synced.removed.push(node.spec.id.clone());
        }
    }
    if !synced.is_empty() {
        append_audit(tx, nodes_synced(actor, &synced)).await?;
    }
    Ok(synced)
}

async fn add(
    tx: &mut PgConnection,
    spec: &NodeSpec,
    actor: &Actor,
) -> Result<NodeRecord, StoreError> {
    let node = insert_node(tx, spec, NodeSource::Api, now_ms())
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("node `{}`", spec.id)))?;
    append_audit(tx, node_added(actor, spec)).await?;
    Ok(node)
}

async fn remove(tx: &mut PgConnection, id: &str, actor: &Actor) -> Result<NodeRecord, StoreError> {
    let node = lock_node(tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("node `{id}`")))?;
    delete_node(tx, &node, actor, now_ms()).await?;
    Ok(node)
}

async fn create_token(
    tx: &mut PgConnection,
    token: &NewJoinToken,
    actor: &Actor,
) -> Result<(), StoreError> {
    if lock_node(tx, &token.node).await?.is_none() {
        return Err(StoreError::NotFound(format!("node `{}`", token.node)));
    }
    sqlx::query(sql::INSERT_JOIN_TOKEN)
        .bind(&token.digest)
        .bind(&token.node)
        .bind(&token.hint)
        .bind(now_ms())
        .bind(token.expires_at_ms)
        .bind(i32::try_from(token.uses).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    append_audit(tx, join_token_created(actor, token)).await?;
    Ok(())
}

async fn redeem(
    tx: &mut PgConnection,
    registration: &Registration,
    actor: &Actor,
) -> Result<Redeemed, StoreError> {
    let spent: Option<String> = sqlx::query_scalar(sql::SPEND_JOIN_TOKEN)
        .bind(&registration.token_digest)
        .bind(registration.at_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
    let Some(node_id) = spent else {
        let state: Option<(i64, i32)> = sqlx::query_as(sql::JOIN_TOKEN_STATE)
            .bind(&registration.token_digest)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        return Ok(match state {
            None => Redeemed::Unknown,
            Some((expires, _)) if expires <= registration.at_ms => Redeemed::Expired,
            Some(_) => Redeemed::Spent,
        });
    };
    let key = registration_key(registration, &node_id);
    if !insert_keys(tx, &[&key], registration.at_ms)
        .await?
        .contains(&key.name)
    {
        return Err(StoreError::Conflict(format!("key `{}`", key.name)));
    }
    sqlx::query(sql::MARK_NODE_REGISTERED)
        .bind(registration.at_ms)
        .bind(&registration.hostname)
        .bind(&registration.agent_version)
        .bind(&node_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    let node = read_node(tx, &node_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("node `{node_id}`")))?;
    let stored = ApiKey::created(&key, registration.at_ms);
    append_audit(tx, node_registered(actor, &node, &stored, registration)).await?;
    Ok(Redeemed::Joined {
        node: Box::new(node),
        key: stored,
    })
}

async fn reconcile(tx: &mut PgConnection, report: &KindReport) -> Result<KindChanges, StoreError> {
    if lock_node(tx, &report.node).await?.is_none() {
        return Err(StoreError::NotFound(format!("node `{}`", report.node)));
    }
    let stored: Vec<NodeItem> = sqlx::query(sql::NODE_KIND_ITEMS)
        .bind(&report.node)
        .bind(&report.kind)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| {
            NodeItemRow::from_row(row)
                .map(NodeItem::from)
                .map_err(db_err)
        })
        .collect::<Result<_, _>>()?;
    let (changes, writes) = plan_reconcile(&stored, report);
    if report.replace_whole {
        sqlx::query(sql::DELETE_NODE_KIND)
            .bind(&report.node)
            .bind(&report.kind)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    } else {
        for key in &changes.removed {
            sqlx::query(sql::DELETE_NODE_ITEM)
                .bind(&report.node)
                .bind(&report.kind)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
    }
    for item in &writes {
        sqlx::query(sql::UPSERT_NODE_ITEM)
            .bind(&report.node)
            .bind(&report.kind)
            .bind(&item.key)
            .bind(&item.doc)
            .bind(report.at_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    sqlx::query(sql::UPSERT_NODE_DIGEST)
        .bind(&report.node)
        .bind(&report.kind)
        .bind(&report.digest)
        .bind(report.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    Ok(changes)
}

async fn set_statuses(
    tx: &mut PgConnection,
    changes: &[StatusChange],
) -> Result<Vec<StatusChange>, StoreError> {
    let mut applied = Vec::new();
    for change in changes {
        let done = sqlx::query(sql::SET_NODE_STATUS)
            .bind(change.to.as_str())
            .bind(change.at_ms)
            .bind(&change.node)
            .bind(change.from.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 1 {
            applied.push(change.clone());
        }
    }
    Ok(applied)
}

/// The node with this id, its row locked until the transaction ends.
async fn lock_node(tx: &mut PgConnection, id: &str) -> Result<Option<NodeRecord>, StoreError> {
    sqlx::query(&format!("{} FOR UPDATE", sql::NODE))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .map(|row| NodeRow::from_row(&row).map_err(db_err)?.try_into())
        .transpose()
}

/// The key a registration creates: an `agent` key of the token's node, named for it.
fn registration_key(registration: &Registration, node: &str) -> steward_store::NewKey {
    steward_store::NewKey {
        name: steward_core::node::agent_key_name(node, registration.at_ms),
        role: Role::Agent,
        node: Some(node.to_owned()),
        workspace: None,
        ..registration.key.clone()
    }
}

async fn read_nodes(conn: &mut PgConnection) -> Result<Vec<NodeRecord>, StoreError> {
    sqlx::query(sql::NODES)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| NodeRow::from_row(row).map_err(db_err)?.try_into())
        .collect()
}

async fn read_node(conn: &mut PgConnection, id: &str) -> Result<Option<NodeRecord>, StoreError> {
    sqlx::query(sql::NODE)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .map(|row| NodeRow::from_row(&row).map_err(db_err)?.try_into())
        .transpose()
}

async fn insert_node(
    conn: &mut PgConnection,
    spec: &NodeSpec,
    source: NodeSource,
    now: i64,
) -> Result<Option<NodeRecord>, StoreError> {
    sqlx::query(sql::INSERT_NODE)
        .bind(&spec.id)
        .bind(&spec.hostname)
        .bind(&spec.address)
        .bind(&spec.workspace)
        .bind(Json(&spec.labels))
        .bind(source.as_str())
        .bind(DEFAULT_NODE_INTERVAL_MS)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .map(|row| NodeRow::from_row(&row).map_err(db_err)?.try_into())
        .transpose()
}

async fn update_declared(conn: &mut PgConnection, spec: &NodeSpec) -> Result<(), StoreError> {
    sqlx::query(sql::UPDATE_DECLARED_NODE)
        .bind(&spec.hostname)
        .bind(&spec.address)
        .bind(&spec.workspace)
        .bind(Json(&spec.labels))
        .bind(&spec.id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Deletes a node (its reports cascade), revokes its keys, and audits it.
async fn delete_node(
    conn: &mut PgConnection,
    node: &NodeRecord,
    actor: &Actor,
    now: i64,
) -> Result<(), StoreError> {
    let revoked: Vec<String> = sqlx::query_scalar(sql::REVOKE_NODE_KEYS)
        .bind(now)
        .bind(&node.spec.id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query(sql::DELETE_NODE)
        .bind(&node.spec.id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    append_audit(conn, node_removed(actor, node, &revoked)).await?;
    Ok(())
}
