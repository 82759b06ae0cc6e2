//! The conformance ("story") suite: behaviour every [`Store`] backend must show, written once
//! and run against each backend by [`conformance_suite!`](crate::conformance_suite).
//!
//! Each story receives a freshly created and migrated store of its own.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a failed expectation is a failed story

use std::sync::Arc;

use steward_core::Role;
use steward_core::audit::{Actor, AuditEvent};
use steward_core::task::{NewTask, TaskOrigin};

use crate::{AuditQuery, MAX_AUDIT_PAGE, NewKey, Store};

mod alerts;
mod audit;
mod events;
mod health;
mod keys;
mod nodes;
mod notifications;
mod pipelines;
mod registry;
mod schedules;
mod sessions;
mod tasks;
pub use alerts::*;
pub use audit::*;
pub use events::*;
pub use health::*;
pub use keys::*;
pub use nodes::*;
pub use notifications::*;
pub use pipelines::*;
pub use registry::*;
pub use schedules::*;
pub use sessions::*;
pub use tasks::*;

fn actor() -> Actor {
    Actor::system("conformance")
}

/// A key to store, with a digest derived from its name.
pub fn new_key(name: &str, role: Role, workspace: Option<&str>) -> NewKey {
    NewKey {
        name: name.into(),
        role,
        workspace: workspace.map(Into::into),
        node: None,
        digest: steward_core::auth::key_digest(&format!("secret-of-{name}")),
        hint: "stw_test…".into(),
        expires_at_ms: None,
    }
}

/// A store made for one story, with whatever keeps its database alive (a temporary directory,
/// a throwaway PostgreSQL database that is dropped with it).
pub struct TestStore {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Dropped after the story, cleaning up.
    pub guard: Box<dyn Send>,
}

/// Generates one `#[tokio::test]` per story. `$factory` is an `async fn() -> Option<TestStore>`;
/// `None` means the backend is unreachable and the story is skipped (factories must panic
/// instead when `CI=true`).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@stories $factory;
            migrate_is_idempotent,
            a_sound_database_passes_its_integrity_check,
            sync_into_an_empty_store_adds_everything,
            a_second_sync_of_the_same_registry_changes_nothing,
            sync_applies_updates_and_removals,
            removing_a_workspace_takes_its_edges_and_services,
            concurrent_syncs_report_each_change_once,
            text_round_trips_exactly,
            a_large_registry_round_trips,
            keys_are_created_found_listed_and_revoked,
            only_one_first_key_is_created_however_many_race,
            every_mutation_is_audited_in_a_verifiable_chain,
            concurrent_audited_writes_keep_the_chain_gapless,
            racing_creations_of_one_name_create_it_once,
            verify_during_writes_never_reports_a_break,
            remote_events_merge_once_by_node_and_sequence,
            audit_queries_filter_and_paginate,
            enqueue_get_and_list_tasks,
            idempotency_keys_return_the_existing_task,
            a_batch_of_ten_thousand_is_one_call,
            claims_take_due_tasks_by_priority_and_never_twice,
            completions_are_fenced,
            lease_extensions_and_completions_of_the_same_tasks_never_deadlock,
            completions_holding_nul_are_stored_with_it_made_visible,
            failed_attempts_retry_then_die,
            expired_leases_are_reaped,
            pinned_tasks_are_claimed_by_their_node_and_kept_while_it_is_silent,
            cancellation,
            purge_removes_only_old_finished_tasks,
            task_counts_follow_every_change,
            wakeups_announce_enqueues,
            next_due_names_the_earliest_waiting_task,
            leases_have_one_holder_and_fence_takeovers,
            slots_fire_once_and_deposed_leaders_cannot_fire,
            overlap_policies_act_on_unfinished_tasks,
            pause_resume_and_manual_triggers,
            missed_slots_are_recorded,
            overdue_fires_are_flagged_once,
            heartbeats_record_pings_and_transitions_once,
            schedule_runs_go_with_their_tasks,
            the_latest_run_of_each_schedule_is_found,
            probe_batches_round_trip,
            rollup_increments_add_up,
            check_states_are_replaced,
            probe_results_page_newest_first,
            check_transitions_filter_and_page,
            prune_removes_only_older_health_rows,
            an_empty_probe_batch_is_a_no_op,
            a_batch_of_five_thousand_results_is_one_call,
            an_alert_fires_resolves_and_refires,
            an_alert_may_arrive_resolved,
            receipts_of_one_alert_in_a_call_apply_in_order,
            a_batch_of_ten_thousand_alerts_is_one_call,
            each_receive_call_is_audited_once,
            alerts_raised_by_rules_are_changed_only_by_rules,
            stale_alerts_resolve_by_source_and_age,
            alert_listings_filter_and_limit,
            acks_need_a_firing_alert,
            silences_are_created_listed_and_expired,
            prune_removes_only_old_resolved_alerts_and_ended_silences,
            concurrent_receipts_lose_no_update,
            alert_groups_are_upserted_updated_and_deleted,
            dispatched_notifications_are_queued_in_order,
            each_group_sends_its_notifications_in_order,
            future_attempts_wait_and_the_next_due_is_reported,
            attempts_are_recorded_and_finish_notifications,
            racing_deliveries_record_one_attempt,
            attempts_recorded_together_are_each_judged,
            alerts_are_read_by_fingerprint_and_firing_ones_page_by_page,
            alerts_received_since_a_time_page_by_receipt,
            notification_listings_filter_newest_first,
            notifications_are_counted_per_receiver_and_state,
            prune_removes_only_old_finished_notifications,
            notifications_are_linked_to_their_alerts_apart,
            large_and_small_notices_are_queued_in_order,
            many_large_notices_are_queued_in_order,
            a_dispatch_of_five_thousand_is_one_call,
            a_deposed_dispatchers_pass_writes_nothing,
            the_event_log_appends_in_order_pages_and_trims,
            a_reader_following_the_log_misses_nothing_of_concurrent_appends,
            appends_wake_event_log_readers,
            audited_changes_wake_event_log_readers,
            sessions_start_expire_and_end_audited,
            declared_nodes_sync_and_added_nodes_stay,
            join_tokens_register_once_and_removal_cascades,
            heartbeats_and_statuses_are_recorded,
            inventory_kinds_reconcile_apart,
            a_pipeline_step_is_ready_when_its_need_succeeds,
            a_fan_out_joins_once_every_branch_has_succeeded,
            a_false_condition_skips_a_step,
            a_failed_run_retries_from_its_failed_steps,
            cancelling_a_run_stops_its_steps,
            runs_start_once_per_key_and_list_newest_first,
            a_step_whose_lease_expires_for_good_fails,
        );
    };
    (@stories $factory:path; $($story:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::$story(&test_store.store).await;
                test_store.store.close().await;
                drop(test_store);
            }
        )*
    };
}

/// How far the store's clock and this process's may disagree when a story checks a time the
/// store computed.
const CLOCK_SLACK_MS: i64 = 2_000;

/// A lease long enough never to expire during a story.
const LONG_LEASE_MS: u64 = 60_000;

/// A task to enqueue on `queue`: due now, an empty object as payload, priority 0, three
/// attempts, no idempotency key, no origin.
pub fn new_task(queue: &str, kind: &str) -> NewTask {
    NewTask {
        timeout_ms: None,
        queue: queue.into(),
        kind: kind.into(),
        payload: "{}".into(),
        priority: 0,
        run_at_ms: crate::now_ms(),
        max_attempts: 3,
        idempotency_key: None,
        origin: TaskOrigin::default(),
        node: None,
    }
}

async fn audited(store: &Arc<dyn Store>, action: &str) -> Vec<AuditEvent> {
    store
        .audit_events(&AuditQuery {
            limit: MAX_AUDIT_PAGE,
            action: Some(action.into()),
            ..AuditQuery::default()
        })
        .await
        .expect("audit events")
}

/// Asserts that a read of damaged rows failed as [`StoreError::Corrupt`](crate::StoreError)
/// (each backend's unit tests damage rows behind the store's back and read them).
#[track_caller]
pub fn assert_corrupt<T: std::fmt::Debug>(what: &str, got: Result<T, crate::StoreError>) {
    match got {
        Err(crate::StoreError::Corrupt(_)) => {}
        other => panic!("{what}: expected a corrupt-data error, got {other:?}"),
    }
}
