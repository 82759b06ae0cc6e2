//! The agent's loop: every interval, gather the inventory, send a heartbeat with every kind's
//! digest and, in full, only the kinds whose digest differs from what the hub last said it
//! holds; when the hub answers that it needs kinds, send them at once.
//!
//! An idle node thus costs the hub one small digest-only beat per interval. The loop survives
//! the hub being away (it logs once per outage and, since nothing was acknowledged meanwhile,
//! the first beat that gets through carries whatever changed), and ends only when asked to or
//! when the hub refuses the node's credential, which no amount of retrying can fix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use steward_core::audit::AuditEvent;
use steward_wire::audit as audit_wire;
use steward_wire::nodes::{AuditBatch, Heartbeat, HeartbeatAnswer, InventoryKind};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::checks::LocalChecks;
use crate::config::InventoryConfig;
use crate::credential::StoredCredential;
use crate::gather::{Gatherer, Snapshot};
use crate::hub::{HubClient, HubError};
use crate::journal::{Journal, JournalError};
use crate::work::Work;

/// The most journal events sent in one batch: well under the hub's limit (1,000), and small
/// enough that a node catching up after a long outage sends a few modest requests.
const AUDIT_BATCH: usize = 500;

/// What the loop needs to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The hub's base URL.
    pub hub: String,
    /// Who the node is.
    pub credential: StoredCredential,
    /// How often to heartbeat.
    pub interval: Duration,
    /// Where the inventory is read from.
    pub inventory: InventoryConfig,
    /// The agent's version, reported in the facts.
    pub agent_version: String,
    /// The node's audit journal, shipped after each beat that gets through; `None` ships
    /// nothing.
    pub journal: Option<Journal>,
    /// The tasks the node runs for the hub and where their results wait; `None`, or a config
    /// declaring no executor, claims none.
    pub work: Option<WorkOptions>,
}

/// What remote work needs besides the hub and the credential.
#[derive(Debug, Clone)]
pub struct WorkOptions {
    /// The node's allowlist and concurrency.
    pub config: crate::config::WorkConfig,
    /// The data directory, where undelivered results wait.
    pub data_dir: std::path::PathBuf,
}

/// Why the loop ended other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP client could not be set up.
    #[error(transparent)]
    Client(HubError),
    /// Remote work could not start (an executor's declaration, the results file).
    #[error(transparent)]
    Work(#[from] crate::work::WorkSetupError),
    /// The hub refused the node's credential: the node was removed or the credential
    /// revoked. Only registering again helps.
    #[error(
        "hub {hub} refused the credential of node {node} ({message}): the node was removed or \
         its credential revoked; register it again with `steward agent register`"
    )]
    Refused {
        /// The hub's base URL.
        hub: String,
        /// The node.
        node: String,
        /// The hub's own words, with the status.
        message: String,
    },
}

/// Runs the loop until `shutdown` is cancelled (`Ok`) or the hub refuses the credential.
pub async fn run(options: RunOptions, shutdown: CancellationToken) -> Result<(), RunError> {
    let client = HubClient::new(&options.hub).map_err(RunError::Client)?;
    let work = match options.work.as_ref().filter(|w| w.config.enabled()) {
        Some(work) => Some(Arc::new(Work::new(
            client.clone(),
            &options.credential.node,
            &options.credential.credential,
            &work.config,
            &work.data_dir,
            options.journal.clone(),
        )?)),
        None => None,
    };
    let worker = work
        .clone()
        .map(|work| tokio::spawn(work.run(shutdown.child_token())));
    let mut agent = Agent::new(client, &options);
    agent.work = work;
    agent.checks = match LocalChecks::new() {
        Ok(checks) => Some(Arc::new(checks)),
        Err(error) => {
            tracing::error!(%error, "cannot set up the probes; this node's checks are not probed");
            None
        }
    };
    let probing = agent
        .checks
        .clone()
        .map(|checks| tokio::spawn(checks.run(shutdown.child_token())));
    let ended = agent.run(shutdown.clone()).await;
    // The heartbeat loop ended: stop claiming, let running attempts finish, keep results.
    shutdown.cancel();
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    if let Some(probing) = probing {
        let _ = probing.await;
    }
    ended
}

/// The loop's state: little more than what the hub last acknowledged.
struct Agent {
    client: HubClient,
    node: String,
    credential: String,
    interval: Duration,
    gatherer: Gatherer,
    /// The digests the hub said it holds in its last answer.
    acknowledged: BTreeMap<InventoryKind, String>,
    outage: Outage,
    journal: Option<Journal>,
    work: Option<Arc<Work>>,
    checks: Option<Arc<LocalChecks>>,
}

impl Agent {
    fn new(client: HubClient, options: &RunOptions) -> Self {
        Self {
            client,
            node: options.credential.node.clone(),
            credential: options.credential.credential.clone(),
            interval: options.interval,
            gatherer: Gatherer::new(&options.inventory, &options.agent_version),
            acknowledged: BTreeMap::new(),
            outage: Outage::default(),
            journal: options.journal.clone(),
            work: None,
            checks: None,
        }
    }

    async fn run(mut self, shutdown: CancellationToken) -> Result<(), RunError> {
        let first = Instant::now() + first_tick_delay(self.interval);
        let mut ticks = tokio::time::interval_at(first, self.interval);
        // A beat that overran its interval is followed by a full interval, not a burst.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(
            hub = self.client.hub(),
            node = %self.node,
            interval_s = self.interval.as_secs(),
            "agent started"
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                result = self.tick() => result?,
            }
        }
        tracing::info!(node = %self.node, "agent stopped");
        Ok(())
    }

    /// One beat: gather, send, and sort out what a failure means.
    async fn tick(&mut self) -> Result<(), RunError> {
        let snapshot = match self.gatherer.gather().await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::error!(%error, "cannot gather the inventory; skipping this beat");
                return Ok(());
            }
        };
        if let Some(work) = &self.work {
            work.before_beat().await;
        }
        match self.beat(&snapshot).await {
            Ok(()) => {
                if let Some((lasted, failed_beats)) = self.outage.ended(Instant::now()) {
                    tracing::info!(
                        hub = self.client.hub(),
                        down_s = lasted.as_secs(),
                        failed_beats,
                        "hub reachable again"
                    );
                }
            }
            Err(HubError::Unauthorized {
                hub,
                status,
                message,
            }) => return Err(self.refused(hub, status, message)),
            Err(error) => {
                self.failed(&error);
                return Ok(());
            }
        }
        match self.ship_audit().await {
            Ok(()) => Ok(()),
            Err(HubError::Unauthorized {
                hub,
                status,
                message,
            }) => Err(self.refused(hub, status, message)),
            // The events stay in the journal and go with a later beat; an outage is already
            // told by the beats themselves.
            Err(error) if error.is_retryable() => {
                tracing::debug!(%error, "shipping the audit journal failed; retrying next beat");
                Ok(())
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    "the hub refused this node's audit events; they stay in the journal"
                );
                Ok(())
            }
        }
    }

    fn refused(&self, hub: String, status: reqwest::StatusCode, message: String) -> RunError {
        tracing::error!(
            hub = %hub,
            node = %self.node,
            status = status.as_u16(),
            answer = %message,
            "the hub refused the node's credential: the node was removed or its \
             credential revoked; register it again with `steward agent register`"
        );
        RunError::Refused {
            hub,
            node: self.node.clone(),
            message: format!("{status}: {message}"),
        }
    }

    /// Sends the kinds that differ from what the hub holds, then, if asked, the kinds it needs.
    async fn beat(&mut self, snapshot: &Snapshot) -> Result<(), HubError> {
        let changed = snapshot.differing(&self.acknowledged);
        let answer = self.send(snapshot, &changed).await?;
        let needs: Vec<InventoryKind> = answer
            .needs
            .into_iter()
            .filter(|kind| snapshot.has(*kind))
            .collect();
        self.acknowledged = answer.holds;
        if !needs.is_empty() {
            tracing::debug!(needs = ?needs, "the hub asked for kinds in full");
            let answer = self.send(snapshot, &needs).await?;
            self.acknowledged = answer.holds;
        }
        Ok(())
    }

    /// Sends the journal's events after the shipped marker, a batch at a time, until none is
    /// left; each acknowledged batch moves the marker. A journal that cannot be read is
    /// logged and left for the next beat (its events stay where they are).
    async fn ship_audit(&mut self) -> Result<(), HubError> {
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        loop {
            let pending = match pending_audit(&journal) {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::error!(%error, "cannot read the audit journal; shipping it later");
                    return Ok(());
                }
            };
            let Some(last) = pending.last().map(|e| e.seq) else {
                return Ok(());
            };
            let batch = AuditBatch {
                events: pending.into_iter().map(wire_event).collect(),
            };
            let answer = self
                .client
                .ship_audit(&self.node, &self.credential, &batch)
                .await?;
            // A gap means the hub lost events it had acknowledged (restored from a backup,
            // say): the journal still has them, so they are sent again from there.
            let shipped = match answer.gap {
                Some(gap) => {
                    tracing::warn!(
                        expected = gap.expected,
                        got = gap.got,
                        "the hub lacks earlier audit events of this node; sending them again"
                    );
                    gap.expected.saturating_sub(1).max(0)
                }
                None => last,
            };
            if let Err(error) = journal.mark_shipped(shipped) {
                // The hub skips what it has, so sending them again later is harmless.
                tracing::error!(%error, "cannot record which audit events the hub has");
                return Ok(());
            }
            tracing::debug!(
                sent = batch.events.len(),
                merged = answer.merged,
                shipped,
                "audit events shipped"
            );
            if batch.events.len() < AUDIT_BATCH && answer.gap.is_none() {
                return Ok(());
            }
        }
    }

    async fn send(
        &self,
        snapshot: &Snapshot,
        kinds: &[InventoryKind],
    ) -> Result<HeartbeatAnswer, HubError> {
        let results = self
            .checks
            .as_ref()
            .map(|c| c.pending())
            .unwrap_or_default();
        let sent_results = results.len();
        let beat = Heartbeat {
            digests: snapshot.digests.clone(),
            inventory: snapshot.parts(kinds),
            usage: snapshot.usage.clone(),
            interval_s: self.interval.as_secs(),
            checks_digest: self.checks.as_ref().and_then(|c| c.digest()),
            check_results: results,
        };
        let mut answer = self
            .client
            .heartbeat(&self.node, &self.credential, &beat)
            .await?;
        if let Some(checks) = &self.checks {
            checks.delivered(sent_results);
            checks.assign(
                std::mem::take(&mut answer.checks_digest),
                answer.checks.take(),
            );
        }
        tracing::debug!(
            sent = ?kinds,
            needs = ?answer.needs,
            "heartbeat acknowledged"
        );
        Ok(answer)
    }

    fn failed(&mut self, error: &HubError) {
        if self.outage.failed(Instant::now()) {
            tracing::warn!(
                hub = self.client.hub(),
                %error,
                retryable = error.is_retryable(),
                "heartbeat failed; retrying every interval, quietly until one gets through"
            );
        } else {
            tracing::debug!(%error, "heartbeat failed again");
        }
    }
}

/// The journal's events the hub has not acknowledged, at most one batch.
fn pending_audit(journal: &Journal) -> Result<Vec<AuditEvent>, JournalError> {
    let shipped = journal.shipped()?;
    journal.events_after(shipped, AUDIT_BATCH)
}

/// A journal event as the hub's API carries it.
fn wire_event(event: AuditEvent) -> audit_wire::AuditEvent {
    audit_wire::AuditEvent {
        seq: event.seq,
        at: steward_wire::time::rfc3339(event.at_ms),
        at_ms: event.at_ms,
        actor: audit_wire::Actor {
            kind: event.actor.kind.as_str().to_owned(),
            name: event.actor.name,
            source_ip: event.actor.source_ip,
        },
        action: event.action,
        target: event.target,
        workspace: event.workspace,
        details: event.details,
        prev_hash: event.prev_hash,
        hash: event.hash,
        origin: None,
    }
}

/// Whether heartbeats are failing, since when and how many: logged when it starts and when
/// it ends, not for every beat in between.
#[derive(Debug, Default)]
struct Outage {
    since: Option<Instant>,
    failed_beats: u64,
}

impl Outage {
    /// Records a failed beat; true when it starts an outage.
    fn failed(&mut self, now: Instant) -> bool {
        self.failed_beats += 1;
        if self.since.is_some() {
            return false;
        }
        self.since = Some(now);
        true
    }

    /// Records a beat that got through; how long the outage it ends lasted and how many
    /// beats failed in it, if one was going on.
    fn ended(&mut self, now: Instant) -> Option<(Duration, u64)> {
        let since = self.since.take()?;
        let failed = std::mem::take(&mut self.failed_beats);
        Some((now.saturating_duration_since(since), failed))
    }
}

/// How long to wait before the first beat: a random part of the interval, so that agents
/// started together (a fleet-wide upgrade, a data centre's power coming back) spread their
/// beats over the interval instead of all hitting the hub at once, for ever after.
fn first_tick_delay(interval: Duration) -> Duration {
    let spread = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let random = getrandom::u64().unwrap_or_default();
    Duration::from_millis(random % spread)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn an_outage_is_reported_once_and_its_end_with_its_length() {
        let mut outage = Outage::default();
        let start = Instant::now();
        assert_eq!(outage.ended(start), None);
        assert!(outage.failed(start));
        assert!(!outage.failed(start + Duration::from_secs(10)));
        assert!(!outage.failed(start + Duration::from_secs(20)));
        assert_eq!(
            outage.ended(start + Duration::from_secs(30)),
            Some((Duration::from_secs(30), 3))
        );
        assert_eq!(outage.ended(start + Duration::from_secs(40)), None);
        assert!(outage.failed(start + Duration::from_secs(50)));
    }

    #[test]
    fn the_first_beat_waits_a_random_part_of_one_interval() {
        let interval = Duration::from_secs(10);
        let delays: Vec<Duration> = (0..50).map(|_| first_tick_delay(interval)).collect();
        assert!(delays.iter().all(|d| *d < interval));
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
        assert_eq!(first_tick_delay(Duration::from_millis(1)), Duration::ZERO);
    }
}
