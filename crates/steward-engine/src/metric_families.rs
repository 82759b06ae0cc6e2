//! The HELP text (and unit) of every metric family the engines record, so that `/metrics`
//! describes each family it shows. A family recorded here without a description is caught by the
//! binary's test of all descriptions, and by `promtool check metrics` in the integration tests.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Describes every metric family the engines record (control plane, event bus, task queue,
/// scheduler, prober, leases and alerting) to the installed recorder. Call it once, right after
/// installing the recorder; a family recorded before or without it has no HELP line.
pub fn describe_metrics() {
    // The control plane and the event bus.
    describe_counter!(
        "steward_config_reloads_total",
        Unit::Count,
        "Config reloads, by result: applied, rejected (the file is invalid) or failed (the store refused the sync)."
    );
    describe_gauge!(
        "steward_registry_entities",
        Unit::Count,
        "Entities in the registry in force, by kind: workspace, dependency, service."
    );
    describe_counter!(
        "steward_events_published_total",
        Unit::Count,
        "Events published on the in-process event bus."
    );

    // Pipelines.
    describe_counter!(
        "steward_pipeline_runs_started_total",
        Unit::Count,
        "Pipeline runs started (created or retried) through this instance, by pipeline."
    );
    describe_counter!(
        "steward_pipeline_runs_total",
        Unit::Count,
        "Pipeline runs that ended through this instance, by pipeline and outcome: succeeded, failed, cancelled."
    );
    describe_counter!(
        "steward_pipeline_steps_total",
        Unit::Count,
        "Pipeline steps that ended through this instance, by pipeline and state: succeeded, failed, skipped, cancelled."
    );
    describe_histogram!(
        "steward_pipeline_step_duration_seconds",
        Unit::Seconds,
        "From a pipeline step's task being enqueued to the step's end, for steps that ran, by pipeline and step."
    );

    // The fleet.
    describe_gauge!(
        "steward_nodes",
        Unit::Count,
        "Nodes of the fleet by status as this instance last judged them: pending, up, late, down."
    );
    describe_counter!(
        "steward_node_status_changes_total",
        Unit::Count,
        "Node status changes this instance applied, by the status moved to."
    );
    describe_counter!(
        "steward_node_inventory_changes_total",
        Unit::Count,
        "Reported items added, changed or removed when a node's inventory was reconciled, by kind."
    );
    describe_counter!(
        "steward_node_audit_gaps_total",
        Unit::Count,
        "Audit batches from agents that started past the event after the last one merged from their node."
    );
    describe_counter!(
        "steward_node_tasks_claimed_total",
        Unit::Count,
        "Tasks pinned to nodes that their agents claimed through this instance."
    );
    describe_histogram!(
        "steward_node_task_claim_latency_seconds",
        Unit::Seconds,
        "Time from a pinned task being due to its agent's claim taking it."
    );
    describe_counter!(
        "steward_node_task_results_total",
        Unit::Count,
        "Attempt results agents reported through this instance, by whether they were accepted (false: the lease had moved on)."
    );

    // The event stream.
    describe_counter!(
        "steward_events_logged_total",
        Unit::Count,
        "Events this instance wrote to the shared event log (after coalescing)."
    );
    describe_counter!(
        "steward_events_lost_total",
        Unit::Count,
        "Events this instance could not write to the event log (its relay fell behind, or the database refused the write); streamed as lost events."
    );
    describe_counter!(
        "steward_events_streamed_total",
        Unit::Count,
        "Events of the log and the audit trail this instance's hub read and handed to its stream clients."
    );
    describe_histogram!(
        "steward_event_stream_delay_seconds",
        Unit::Seconds,
        "Time from an event's commit to this instance's hub handing it to its stream clients."
    );
    describe_gauge!(
        "steward_event_streams",
        Unit::Count,
        "Event streams (GET /api/v1/events) open on this instance."
    );
    describe_counter!(
        "steward_event_stream_lagged_total",
        Unit::Count,
        "Events stream clients missed because they read too slowly (each told with a lost event)."
    );

    // Leases.
    describe_gauge!(
        "steward_leader",
        "1 while this instance holds the role's lease (scheduler, prober, alerting), 0 otherwise."
    );

    // The task queue.
    describe_counter!(
        "steward_tasks_enqueued_total",
        Unit::Count,
        "Tasks stored by enqueue calls, by queue."
    );
    describe_histogram!(
        "steward_task_claim_latency_seconds",
        Unit::Seconds,
        "Time from a task being due to a worker claiming it, by queue."
    );
    describe_histogram!(
        "steward_task_run_duration_seconds",
        Unit::Seconds,
        "Time one run of a task took, by queue and the status it ended in."
    );
    describe_counter!(
        "steward_tasks_finished_total",
        Unit::Count,
        "Task runs finished, by queue and the status they ended in."
    );
    describe_counter!(
        "steward_task_retries_total",
        Unit::Count,
        "Failed task runs queued again for a retry, by queue."
    );
    describe_counter!(
        "steward_tasks_dead_total",
        Unit::Count,
        "Tasks that became dead (out of attempts, or failed for good), by queue."
    );
    describe_counter!(
        "steward_task_leases_expired_total",
        Unit::Count,
        "Running tasks whose worker's lease expired (taken back by the reaper), by queue."
    );
    describe_counter!(
        "steward_tasks_purged_total",
        Unit::Count,
        "Finished tasks deleted by retention, by queue."
    );
    describe_gauge!(
        "steward_tasks",
        Unit::Count,
        "Tasks per queue and status, sampled every 5 s."
    );
    describe_gauge!(
        "steward_task_oldest_queued_age_seconds",
        Unit::Seconds,
        "How long the oldest due task still queued has waited, by queue."
    );

    // The scheduler and heartbeats.
    describe_gauge!(
        "steward_schedules",
        Unit::Count,
        "Schedules in the scheduler leader's timetable."
    );
    describe_histogram!(
        "steward_schedule_wake_lateness_seconds",
        Unit::Seconds,
        "Time from a slot (plus its jitter) to the scheduler acting on it."
    );
    describe_histogram!(
        "steward_schedule_fire_lateness_seconds",
        Unit::Seconds,
        "Time from a slot (plus its jitter) to its task being committed."
    );
    describe_counter!(
        "steward_schedule_fires_total",
        Unit::Count,
        "Schedule fires that queued a task, by trigger: slot, catch_up, manual."
    );
    describe_counter!(
        "steward_schedule_skips_total",
        Unit::Count,
        "Schedule slots skipped by the overlap policy (forbid, replace)."
    );
    describe_counter!(
        "steward_schedule_missed_slots_total",
        Unit::Count,
        "Schedule slots that passed while nothing could fire them and that the missed-run policy dropped."
    );
    describe_counter!(
        "steward_schedule_overdue_total",
        Unit::Count,
        "Scheduled runs whose task did not succeed within the schedule's expect_success_within."
    );
    describe_counter!(
        "steward_heartbeat_transitions_total",
        Unit::Count,
        "Heartbeat state changes, by the state entered: up, late, failed."
    );

    // The prober.
    describe_gauge!(
        "steward_check_up",
        "1 while a check is up or degraded, 0 while it is down; absent until known."
    );
    describe_histogram!(
        "steward_check_duration_seconds",
        Unit::Seconds,
        "Time one probe of a check took."
    );
    describe_gauge!(
        "steward_check_certificate_expiry_timestamp_seconds",
        Unit::Seconds,
        "When the soonest-expiring certificate the check's latest probe saw expires, as Unix time."
    );
    describe_counter!(
        "steward_probe_errors_total",
        Unit::Count,
        "Failed probes, by check and cause."
    );
    describe_counter!(
        "steward_probes_total",
        Unit::Count,
        "Probes run, by verdict: pass, slow, fail."
    );
    describe_gauge!(
        "steward_checks",
        Unit::Count,
        "Checks per state, on the instance that probes."
    );
    describe_histogram!(
        "steward_probe_lateness_seconds",
        Unit::Seconds,
        "Time from a check's slot to its probe starting."
    );
    describe_counter!(
        "steward_probe_slots_skipped_total",
        Unit::Count,
        "Check slots skipped because the check's previous probe was still running."
    );

    // Alerting.
    describe_counter!(
        "steward_alerts_received_total",
        Unit::Count,
        "Alerts received, by source: external (posted to the API) or rule (built-in rules)."
    );
    describe_counter!(
        "steward_alerts_timed_out_total",
        Unit::Count,
        "External alerts resolved because they were not sent again within the resolve timeout."
    );
    describe_gauge!(
        "steward_alerts",
        Unit::Count,
        "Alerts by state (firing, muted: the firing ones held back), on the alerting leader every 5 s."
    );
    describe_gauge!(
        "steward_alert_groups",
        Unit::Count,
        "Alert groups the dispatcher keeps."
    );
    describe_counter!(
        "steward_notifications_total",
        Unit::Count,
        "Notification delivery attempts, by receiver and result: delivered, retried, failed."
    );
    describe_histogram!(
        "steward_notification_attempt_seconds",
        Unit::Seconds,
        "Time one notification delivery attempt took, by receiver."
    );
    describe_histogram!(
        "steward_notification_delay_seconds",
        Unit::Seconds,
        "Time from a notification being decided to its delivery."
    );
    describe_counter!(
        "steward_remediations_total",
        Unit::Count,
        "Remediation tasks an alert asked for, by result: enqueued, failed."
    );
}
