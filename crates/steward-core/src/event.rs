//! Events: every state change the control plane makes is published as one of these.

/// The most item keys an inventory event names per list (the rest are counted by the store's
/// reads, not carried on the bus).
pub const MAX_NAMED_ITEMS: usize = 50;

/// A state change, as published on the event bus. The stream shows it as the wire's
/// `EventData`, which the relay translates it into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The registry in the store was reconciled with the config.
    RegistrySynced {
        /// Entities created.
        added: usize,
        /// Entities whose fields changed.
        updated: usize,
        /// Entities deleted.
        removed: usize,
    },
    /// A reload was refused; the running config stays.
    ConfigRejected {
        /// How many problems the new config had.
        problems: usize,
    },
    /// Tasks were enqueued by one call.
    TasksEnqueued {
        /// The queue (the first one, for a call spanning several).
        queue: String,
        /// Tasks in the call.
        count: usize,
        /// Of those, new ones (the rest repeated an idempotency key).
        created: usize,
        /// The workspace every task of the call is for; `None` when they differ or name none.
        workspace: Option<String>,
    },
    /// A transaction started, advanced or ended a pipeline run.
    PipelineRunChanged {
        /// The run.
        run_id: i64,
        /// Its pipeline.
        pipeline: String,
        /// Its pipeline's workspace.
        workspace: Option<String>,
        /// Its status now.
        status: crate::pipeline::run::RunStatus,
        /// The run was created or retried.
        started: bool,
        /// The run ended.
        finished: bool,
        /// Its steps that changed, in order: name, state, task.
        steps: Vec<(String, crate::pipeline::StepState, Option<i64>)>,
    },
    /// A task moved to another status.
    TaskChanged {
        /// The task.
        id: i64,
        /// Its queue.
        queue: String,
        /// Its kind.
        kind: String,
        /// The status it moved to.
        status: crate::task::TaskStatus,
        /// The attempt concerned.
        attempt: u32,
        /// The executor's outcome label, if any.
        outcome: Option<String>,
        /// The workspace the task is for, if known.
        workspace: Option<String>,
    },
    /// An instance took or lost a leadership lease.
    LeadershipChanged {
        /// What the lease is for (`scheduler`).
        role: String,
        /// The instance.
        holder: String,
        /// The lease's fencing token.
        fence: i64,
        /// True when taken, false when lost or given up.
        leading: bool,
    },
    /// A schedule fired: its task was enqueued.
    ScheduleFired {
        /// The schedule.
        schedule: String,
        /// The slot (ms since the epoch).
        slot_ms: i64,
        /// `slot`, `catch_up` or `manual`.
        trigger: String,
        /// The task.
        task_id: i64,
        /// Milliseconds between the slot (plus its jitter) and the fire's commit.
        lateness_ms: i64,
    },
    /// A schedule's slot was skipped by its overlap policy.
    ScheduleSkipped {
        /// The schedule.
        schedule: String,
        /// The slot.
        slot_ms: i64,
        /// Why.
        reason: String,
    },
    /// Slots passed while no instance could fire them, and the missed-run policy dropped them.
    SlotsMissed {
        /// The schedule.
        schedule: String,
        /// How many (a lower bound for very long outages).
        count: u64,
        /// The first one.
        first_ms: i64,
        /// The last one.
        last_ms: i64,
    },
    /// Dead-man's switch: a fire's task did not succeed within the schedule's
    /// `expect_success_within`.
    ScheduleOverdue {
        /// The schedule.
        schedule: String,
        /// The slot.
        slot_ms: i64,
        /// The task, if one was enqueued.
        task_id: Option<i64>,
        /// Its status now.
        task_status: Option<crate::task::TaskStatus>,
    },
    /// A heartbeat changed state (a ping failed, one was missed, or pings resumed).
    HeartbeatChanged {
        /// The heartbeat.
        name: String,
        /// The state before.
        from: crate::schedule::HeartbeatState,
        /// The state now.
        to: crate::schedule::HeartbeatState,
    },
    /// A node was added, registered or removed.
    NodeChanged {
        /// The node.
        node: String,
        /// `added`, `registered`, `removed` or `credentials_revoked`.
        change: String,
        /// Its workspace, if it belongs to one.
        workspace: Option<String>,
    },
    /// A node's status changed (judged from its heartbeats).
    NodeStatusChanged {
        /// The node.
        node: String,
        /// The status before.
        from: crate::node::NodeStatus,
        /// The status now.
        to: crate::node::NodeStatus,
        /// Its workspace, if it belongs to one.
        workspace: Option<String>,
    },
    /// One kind of a node's inventory changed when reconciled.
    NodeInventoryChanged {
        /// The node.
        node: String,
        /// `containers`, `domains`, `certificates` or `facts`.
        kind: String,
        /// Items that appeared (by key; at most [`MAX_NAMED_ITEMS`]).
        added: Vec<String>,
        /// Items that changed.
        changed: Vec<String>,
        /// Items no longer reported.
        removed: Vec<String>,
        /// Its workspace, if it belongs to one.
        workspace: Option<String>,
    },
    /// Alerts started firing, fired again, resolved or were acknowledged (so the dispatcher
    /// looks at them at once instead of at its next full read).
    AlertsChanged {
        /// The alerts concerned.
        fingerprints: Vec<crate::alert::Fingerprint>,
    },
    /// A silence was created or expired.
    SilencesChanged,
    /// A health check changed state (after its thresholds, so a single blip is no event).
    CheckChanged {
        /// The check.
        check: String,
        /// The service it watches.
        service: String,
        /// The state before.
        from: crate::health::state::CheckState,
        /// The state now.
        to: crate::health::state::CheckState,
        /// The probe's failure or failed conditions, in one line (empty when it passed).
        reason: String,
    },
}
