//! The alert manager's running side. For now: external alerts whose senders stopped re-sending
//! them resolve after `alerting.resolve_timeout` (as in Alertmanager), checked every few
//! seconds by every instance (resolving is idempotent in the store).

use std::sync::Arc;
use std::time::Duration;

use steward_config::Config;
use steward_store::alerts::EXTERNAL_SOURCE;
use steward_store::{Store, now_ms};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Gives the config in force.
pub type ConfigSource = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;

/// How often stale alerts are looked for.
const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// Starts resolving stale external alerts until `shutdown`.
pub fn spawn_resolver(
    store: Arc<dyn Store>,
    config: ConfigSource,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RESOLVE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let timeout = config().alerting.settings.resolve_timeout_ms;
            let now = now_ms();
            let cutoff = now.saturating_sub(i64::try_from(timeout).unwrap_or(i64::MAX));
            match store
                .resolve_stale_alerts(EXTERNAL_SOURCE, cutoff, now)
                .await
            {
                Ok(resolved) if !resolved.is_empty() => {
                    metrics::counter!("steward_alerts_timed_out_total")
                        .increment(resolved.len() as u64);
                    tracing::info!(count = resolved.len(), "alerts no longer re-sent resolved");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "resolving stale alerts failed"),
            }
        }
    })
}
