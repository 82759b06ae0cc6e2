//! The shapes of the notification outbox every backend implements: the groups the dispatcher
//! keeps (their clocks, so a restart resumes their timing), notifications written before they
//! are sent, and each attempt to send one.

use crate::StoreError;
use crate::domain::domain_trait;
use steward_core::alert::Fingerprint;
use steward_core::alert::group::GroupClock;
use steward_core::alert::notice::Notice;
use steward_core::registry::Labels;

/// The most notifications one listing returns.
pub const MAX_NOTIFICATION_PAGE: u32 = 1_000;
/// The longest error text kept for an attempt, in characters.
pub const MAX_ATTEMPT_ERROR_CHARS: usize = 1_000;

/// A group of alerts as the dispatcher keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its key ([`steward_core::alert::notice::group_key`]).
    pub key: String,
    /// Its receiver.
    pub receiver: String,
    /// The route that took its alerts (child indices from the root).
    pub route_path: Vec<usize>,
    /// The labels it is keyed by.
    pub labels: Labels,
    /// Its timing state.
    pub clock: GroupClock,
}

/// A notification to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// What it says (its receiver and group key included).
    pub notice: Notice,
    /// When it was decided; also its first attempt's due time.
    pub created_ms: i64,
    /// When it stops being retried.
    pub expires_ms: i64,
}

/// What the dispatcher decided in one pass, written in one transaction: groups whose clocks
/// moved, groups that finished, and the notifications that follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchWrite {
    /// Groups to insert or update.
    pub groups: Vec<GroupRecord>,
    /// Keys of groups to delete.
    pub finished: Vec<String>,
    /// Notifications to queue, in order (ids ascend in this order).
    pub notifications: Vec<NewNotification>,
    /// The dispatcher's lease: when set, nothing is written
    /// ([`StoreError::LeaseLost`](crate::StoreError::LeaseLost)) unless it is still the current,
    /// unexpired one, so a deposed dispatcher cannot queue what its successor decides too.
    pub lease: Option<crate::Lease>,
}

/// A notification a dispatcher pass queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Its id.
    pub id: i64,
    /// No older notification of its group was pending when it was written: it is due at once,
    /// as `due_notifications` would answer it, so its writer may hand it to the sender
    /// instead of the sender reading it back.
    pub heads_group: bool,
}

impl Queued {
    /// The notifications `ids` as queued, those in `behind` waiting behind an older pending one
    /// of their group.
    pub fn all(ids: &[i64], behind: &std::collections::HashSet<i64>) -> Vec<Self> {
        ids.iter()
            .map(|&id| Self {
                id,
                heads_group: !behind.contains(&id),
            })
            .collect()
    }
}

impl NewNotification {
    /// It as stored once queued as `id`: pending, its first attempt due at its creation.
    pub fn queued(self, id: i64) -> StoredNotification {
        StoredNotification {
            id,
            notice: self.notice,
            state: NotificationState::Pending,
            attempts: 0,
            created_ms: self.created_ms,
            next_attempt_ms: self.created_ms,
            expires_ms: self.expires_ms,
            finished_ms: None,
            last_error: None,
        }
    }
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationState {
    /// Waiting for its (next) attempt.
    Pending,
    /// Its receiver accepted it.
    Delivered,
    /// Given up: expired, rejected for good, or its receiver is no longer configured.
    Failed,
}

impl NotificationState {
    /// The name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses [`Self::as_str`]'s names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A notification as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    /// Its id; ascending in the order notifications were decided.
    pub id: i64,
    /// What it says.
    pub notice: Notice,
    /// Where it stands.
    pub state: NotificationState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was decided.
    pub created_ms: i64,
    /// When its next attempt is due (while pending).
    pub next_attempt_ms: i64,
    /// When it stops being retried.
    pub expires_ms: i64,
    /// When it was delivered or given up.
    pub finished_ms: Option<i64>,
    /// The latest attempt's error, if it failed.
    pub last_error: Option<String>,
}

/// One attempt to send a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When it started.
    pub at_ms: i64,
    /// How long it took.
    pub latency_ms: i64,
    /// The HTTP status (or SMTP reply code) the receiver answered, if it answered.
    pub status: Option<u16>,
    /// What went wrong, when it did (at most [`MAX_ATTEMPT_ERROR_CHARS`]).
    pub error: Option<String>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Delivered: the notification is done.
    Delivered,
    /// Try again at this time.
    RetryAt(i64),
    /// Give up: the notification fails.
    GiveUp,
}

/// Which notifications to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationQuery {
    /// Only those carrying this alert.
    pub fingerprint: Option<Fingerprint>,
    /// Only for this receiver.
    pub receiver: Option<String>,
    /// Only in this state.
    pub state: Option<NotificationState>,
    /// At most this many (capped at [`MAX_NOTIFICATION_PAGE`]).
    pub limit: u32,
}

/// Notifications per receiver and state (for metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationCount {
    /// The receiver.
    pub receiver: String,
    /// The state.
    pub state: NotificationState,
    /// How many.
    pub count: u64,
}

/// What recording an attempt writes to its notification: decided here once, so that both
/// backends move notifications the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptEffect<'a> {
    /// The state it moves to.
    pub state: NotificationState,
    /// Its next attempt's due time when another follows; `None` leaves the stored one.
    pub next_attempt_ms: Option<i64>,
    /// When it finished, once delivered or given up.
    pub finished_ms: Option<i64>,
    /// The error it keeps (cut to [`MAX_ATTEMPT_ERROR_CHARS`]); none once delivered.
    pub last_error: Option<&'a str>,
}

impl<'a> AttemptEffect<'a> {
    /// The effect of `attempt` leading to `outcome`. A notification finishes when its last
    /// attempt ended rather than when it started, so that pruning keeps it at least as long as
    /// the attempt.
    pub fn of(attempt: &'a Attempt, outcome: AttemptOutcome) -> Self {
        let ended_ms = attempt.at_ms.saturating_add(attempt.latency_ms.max(0));
        let error = attempt.error.as_deref().map(attempt_error);
        match outcome {
            AttemptOutcome::Delivered => Self {
                state: NotificationState::Delivered,
                next_attempt_ms: None,
                finished_ms: Some(ended_ms),
                last_error: None,
            },
            AttemptOutcome::RetryAt(at_ms) => Self {
                state: NotificationState::Pending,
                next_attempt_ms: Some(at_ms),
                finished_ms: None,
                last_error: error,
            },
            AttemptOutcome::GiveUp => Self {
                state: NotificationState::Failed,
                next_attempt_ms: None,
                finished_ms: Some(ended_ms),
                last_error: error,
            },
        }
    }
}

/// `error` cut to at most [`MAX_ATTEMPT_ERROR_CHARS`] characters (on a character boundary), so
/// that a receiver answering with a whole page cannot bloat the outbox.
pub fn attempt_error(error: &str) -> &str {
    match error.char_indices().nth(MAX_ATTEMPT_ERROR_CHARS) {
        Some((end, _)) => &error[..end],
        None => error,
    }
}

domain_trait! {
    /// The dispatcher's groups and the notifications it queues, with their delivery attempts.
    pub trait NotificationStore {
        /// The groups the dispatcher keeps, by key.
        async fn alert_groups(&self) -> Result<Vec<GroupRecord>, StoreError>;

        /// Applies one dispatcher pass in one transaction: upserts `groups` (by key), deletes the
        /// `finished` ones, and queues `notifications` as pending with their first attempt due at
        /// their creation; answers the new notifications' ids, ascending, in order, each with
        /// whether it heads its group (no older notification of the group is pending). Which
        /// alerts they carry is recorded later, by [`NotificationStore::link_notifications`].
        async fn write_dispatch(
            &self,
            write: &DispatchWrite,
        ) -> Result<Vec<Queued>, StoreError>;

        /// Up to `limit` notifications to attempt at `now_ms`, by id: pending ones whose attempt is
        /// due and that are the oldest pending notification of their group (so each group's
        /// notifications go out in order: a later one waits until the earlier is delivered or
        /// fails). Those in `excluding` (the ones the caller is attempting already) are left out.
        async fn due_notifications(
            &self,
            now_ms: i64,
            excluding: &[i64],
            limit: u32,
        ) -> Result<Vec<StoredNotification>, StoreError>;

        /// The earliest next attempt among the pending notifications heading their groups, so the
        /// sender can sleep until then.
        async fn next_notification_due(&self) -> Result<Option<i64>, StoreError>;

        /// Records which alerts the notifications written since the last call carry (those above
        /// the highest notification linked so far, up to id `up_to`), read from their notices, so
        /// that [`NotificationQuery::fingerprint`](NotificationQuery) finds them;
        /// answers how many links it wrote. Kept out of [`NotificationStore::write_dispatch`] so a pass's
        /// notifications go out without waiting for thousands of links; whatever a crash left
        /// unlinked is linked by the next call. The caller names in `up_to` an id below which no
        /// write is under way: passes written at once may commit out of id order, and a
        /// notification committed below one linked already would never be linked.
        async fn link_notifications(&self, up_to: i64) -> Result<u64, StoreError>;

        /// Records attempts on pending notifications and what follows from each, in one
        /// transaction (the sender's completions arrive in bursts); answers, per attempt, whether it
        /// was recorded: false (nothing written for it) when its notification is not pending.
        async fn record_attempts(
            &self,
            attempts: &[(i64, Attempt, AttemptOutcome)],
        ) -> Result<Vec<bool>, StoreError>;

        /// Notifications matching `query`, newest first.
        async fn notifications(
            &self,
            query: &NotificationQuery,
        ) -> Result<Vec<StoredNotification>, StoreError>;

        /// A notification's attempts, oldest first.
        async fn notification_attempts(
            &self,
            id: i64,
        ) -> Result<Vec<Attempt>, StoreError>;

        /// Notifications per receiver and state.
        async fn notification_counts(
            &self,
        ) -> Result<Vec<NotificationCount>, StoreError>;

        /// Deletes delivered and failed notifications (with their attempts) that finished before
        /// `before_ms`; answers how many.
        async fn prune_notifications(&self, before_ms: i64) -> Result<u64, StoreError>;
    }
}

/// One attempt at a time, for callers that have a single one (the sender batches; tests and
/// tools often do not).
#[async_trait::async_trait]
pub trait RecordAttempt: NotificationStore {
    /// Records one attempt, as [`NotificationStore::record_attempts`] does.
    async fn record_attempt(
        &self,
        id: i64,
        attempt: &Attempt,
        outcome: AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let recorded = self
            .record_attempts(&[(id, attempt.clone(), outcome)])
            .await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }
}

impl<S: NotificationStore + ?Sized> RecordAttempt for S {}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(error: Option<&str>) -> Attempt {
        Attempt {
            at_ms: 1_000,
            latency_ms: 250,
            status: Some(500),
            error: error.map(Into::into),
        }
    }

    #[test]
    fn outcomes_move_the_notification() {
        let failed = attempt(Some("boom"));
        assert_eq!(
            AttemptEffect::of(&failed, AttemptOutcome::RetryAt(9_000)),
            AttemptEffect {
                state: NotificationState::Pending,
                next_attempt_ms: Some(9_000),
                finished_ms: None,
                last_error: Some("boom"),
            }
        );
        assert_eq!(
            AttemptEffect::of(&failed, AttemptOutcome::GiveUp),
            AttemptEffect {
                state: NotificationState::Failed,
                next_attempt_ms: None,
                finished_ms: Some(1_250),
                last_error: Some("boom"),
            }
        );
        assert_eq!(
            AttemptEffect::of(&failed, AttemptOutcome::Delivered),
            AttemptEffect {
                state: NotificationState::Delivered,
                next_attempt_ms: None,
                finished_ms: Some(1_250),
                last_error: None,
            }
        );
    }

    #[test]
    fn errors_are_cut_on_character_boundaries() {
        assert_eq!(attempt_error("short"), "short");
        let long = "é".repeat(MAX_ATTEMPT_ERROR_CHARS + 5);
        let cut = attempt_error(&long);
        assert_eq!(cut.chars().count(), MAX_ATTEMPT_ERROR_CHARS);
        assert!(long.starts_with(cut));
        let exact = "x".repeat(MAX_ATTEMPT_ERROR_CHARS);
        assert_eq!(attempt_error(&exact), exact);
    }

    #[test]
    fn state_names_round_trip() {
        for state in [
            NotificationState::Pending,
            NotificationState::Delivered,
            NotificationState::Failed,
        ] {
            assert_eq!(NotificationState::parse(state.as_str()), Some(state));
        }
        assert_eq!(NotificationState::parse("sent"), None);
    }
}
