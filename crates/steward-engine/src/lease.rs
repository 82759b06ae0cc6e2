//! Leadership: one instance at a time holds a role's lease (the scheduler's, the prober's, the
//! alert manager's) and does that role's work. The holder renews it every third of its length;
//! the others try to take it as often as a fifth of its length (at most every second), so a dead
//! leader is replaced within about one lease length. The scheduler's fire transactions check the
//! lease themselves, so a leader that lost it without noticing still cannot fire.

use std::sync::Arc;
use std::time::Duration;

use steward_core::Event;
use steward_store::{Lease, Store, now_ms};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;

/// A role leadership is held for. `steward_leader{role}`, labelled with its lease's name, is 1
/// on the instance holding the lease and 0 on every other instance seeking it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Role {
    /// The lease's name in the store, and the `role` label of `steward_leader`.
    pub name: &'static str,
}

/// The scheduler's role.
pub(crate) const SCHEDULER: Role = Role {
    name: steward_store::schedules::SCHEDULER_ROLE,
};

/// The prober's role.
pub(crate) const PROBER: Role = Role {
    name: steward_store::health::PROBER_ROLE,
};

/// The alert manager's role (dispatching and sending notifications).
pub(crate) const ALERTING: Role = Role {
    name: steward_store::alerts::ALERTING_ROLE,
};

/// Holds or seeks `role`'s lease until `shutdown`, publishing the lease held (if any) on
/// `held`. On shutdown the lease is given up so another instance need not wait for it.
pub(crate) async fn lead(
    role: Role,
    store: Arc<dyn Store>,
    bus: EventBus,
    instance: String,
    lease_ms: u64,
    held: watch::Sender<Option<Lease>>,
    shutdown: CancellationToken,
) {
    // Not leading until the lease is taken: the series exists on every instance seeking it.
    leader_gauge(role).set(0.0);
    let mut current: Option<Lease> = None;
    loop {
        current = renew(role, store.as_ref(), &bus, &instance, lease_ms, current).await;
        held.send_if_modified(|published| {
            let changed = published.as_ref().map(|l| l.fence) != current.as_ref().map(|l| l.fence);
            *published = current.clone();
            changed
        });
        let wait = if current.is_some() {
            lease_ms / 3
        } else {
            (lease_ms / 5).min(1_000)
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(wait.max(50))) => {}
            () = shutdown.cancelled() => break,
        }
    }
    if let Some(lease) = current {
        held.send_replace(None);
        if let Err(error) = store.release_lease(role.name, &lease.holder).await {
            tracing::warn!(%error, role = role.name, "giving up the lease failed; it will expire");
        }
        announce(&bus, role, &lease, false);
    }
}

/// One attempt to take or keep the lease; returns the lease held afterwards.
async fn renew(
    role: Role,
    store: &dyn Store,
    bus: &EventBus,
    instance: &str,
    lease_ms: u64,
    current: Option<Lease>,
) -> Option<Lease> {
    match store.acquire_lease(role.name, instance, lease_ms).await {
        Ok(Some(lease)) => {
            if current.as_ref().map(|l| l.fence) != Some(lease.fence) {
                tracing::info!(
                    instance,
                    role = role.name,
                    fence = lease.fence,
                    "this instance now holds the lease"
                );
                announce(bus, role, &lease, true);
            }
            Some(lease)
        }
        Ok(None) => {
            if let Some(lost) = &current {
                tracing::warn!(
                    instance,
                    role = role.name,
                    fence = lost.fence,
                    "the lease was taken over"
                );
                announce(bus, role, lost, false);
            }
            None
        }
        Err(error) => {
            // Keep leading while the lease cannot have expired; the store refuses stale fires
            // anyway.
            tracing::warn!(%error, role = role.name, "renewing the lease failed");
            match current {
                Some(lease) if lease.expires_at_ms > now_ms() => Some(lease),
                Some(lease) => {
                    announce(bus, role, &lease, false);
                    None
                }
                None => None,
            }
        }
    }
}

/// `steward_leader{role}`: 1 while this instance holds `role`'s lease, 0 otherwise.
fn leader_gauge(role: Role) -> metrics::Gauge {
    metrics::gauge!("steward_leader", "role" => role.name)
}

fn announce(bus: &EventBus, role: Role, lease: &Lease, leading: bool) {
    leader_gauge(role).set(if leading { 1.0 } else { 0.0 });
    bus.publish(Event::LeadershipChanged {
        role: lease.role.clone(),
        holder: lease.holder.clone(),
        fence: lease.fence,
        leading,
    });
}
