//! The control plane's shared state and the single path through which a config becomes the
//! registry in the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use steward_config::{Config, Diagnostic, LoadError, load_file};
use steward_core::audit::Actor;
use steward_core::redact::Redactor;
use steward_core::{Event, Registry, RegistryDiff, Secret};
use steward_store::{Store, StoreError};
use tokio::sync::Mutex;

use crate::bus::EventBus;
use crate::executors::{ExecutorError, Executors};
use crate::queue::{EnqueueError, EnqueueRequest};

/// Reads environment variables for `${VAR}` interpolation.
pub type SystemEnv = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Gives the secrets to mask in force (see [`ControlPlane::redactor`]).
pub use steward_exec::{RedactorSource, no_redaction};

/// Why the engine could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The config file is missing, unreadable or invalid; the running config stays.
    #[error(transparent)]
    Config(#[from] LoadError),
    /// The store failed; the running config stays.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An executor could not be built from its declaration.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
}

/// What a reload changed.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    /// The registry changes written to the store.
    pub diff: RegistryDiff,
    /// Warnings the new config still has.
    pub warnings: Vec<Diagnostic>,
    /// Daemon settings that changed in the file but only take effect after a restart.
    pub restart_required: Vec<&'static str>,
}

/// The control plane: the store, the bus and the config currently in force.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    bus: EventBus,
    config_path: PathBuf,
    env: SystemEnv,
    config: Arc<ArcSwap<Config>>,
    /// The registry of `config`, shared so that workers hand it to executors without copying it.
    registry: ArcSwap<Registry>,
    /// Reloads run one at a time, so each diff is computed against the config it replaces.
    reload_lock: Mutex<()>,
    /// The queues the workers were started with (changing them needs a restart).
    queues: Arc<Vec<steward_core::queue::QueueSpec>>,
    /// The executors the workers were started with.
    executors: Arc<Executors>,
    /// Secrets the daemon holds outside the file (a database URL from its environment).
    daemon_secrets: Vec<Secret>,
    /// The secrets of `config` and `daemon_secrets`, masked in what programs and probes leave.
    redactor: ArcSwap<Redactor>,
}

impl ControlPlane {
    /// Syncs `config`'s registry into the store and returns the running control plane, with the
    /// diff that first sync wrote.
    pub async fn start(
        store: Arc<dyn Store>,
        bus: EventBus,
        config_path: &Path,
        config: Config,
        env: SystemEnv,
    ) -> Result<(Self, RegistryDiff), EngineError> {
        let config = with_builtins(config);
        let queues = Arc::new(config.queues.clone());
        let mut executors = Executors::from_specs(&config.executors)?;
        executors.insert(
            steward_core::queue::PRUNE_KIND,
            Arc::new(crate::executors::Prune::new(
                Arc::clone(&store),
                Arc::clone(&queues),
                config.settings.health,
                config.alerting.settings.retention_ms,
            )),
        );
        // The config in force, shared with the `pipeline` executor, which reads the pipelines
        // a reload puts in force.
        let shared_config = Arc::new(ArcSwap::from_pointee(config));
        let config = shared_config.load_full();
        executors.insert(
            steward_core::queue::PIPELINE_KIND,
            Arc::new(crate::executors::StartPipeline::new(
                Arc::clone(&store),
                Arc::clone(&shared_config),
            )),
        );
        let executors = Arc::new(executors);
        let diff = sync(&store, &bus, &config.registry, &Actor::system("startup")).await?;
        sync_nodes(&store, &bus, &config.nodes, &Actor::system("startup")).await?;
        let control = Self {
            queues,
            executors,
            store,
            bus,
            config_path: config_path.to_path_buf(),
            env,
            registry: ArcSwap::from_pointee(config.registry.clone()),
            redactor: ArcSwap::from_pointee(redactor(&config, &[])),
            config: shared_config,
            reload_lock: Mutex::new(()),
            daemon_secrets: Vec::new(),
        };
        Ok((control, diff))
    }

    /// Adds secrets the daemon holds outside the config file (the database URL it was given
    /// in its environment or on the command line) to those masked; call it before starting
    /// workers or the prober.
    pub fn with_daemon_secrets(mut self, secrets: Vec<Secret>) -> Self {
        self.daemon_secrets = secrets;
        self.redactor.store(Arc::new(redactor(
            &self.config.load(),
            &self.daemon_secrets,
        )));
        self
    }

    /// The secrets in force, to mask in anything stored from a program or a probe: those of
    /// the config (see [`Config::secrets`]) and the daemon's own. A reload replaces them.
    pub fn redactor(&self) -> Arc<Redactor> {
        self.redactor.load_full()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The event bus.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The registry in force (the config's, without copying it).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// The queues in force.
    pub fn queues(&self) -> &Arc<Vec<steward_core::queue::QueueSpec>> {
        &self.queues
    }

    /// The executors in force.
    pub fn executors(&self) -> &Arc<Executors> {
        &self.executors
    }

    /// Checks and stores tasks (see [`crate::queue::enqueue`]).
    pub async fn enqueue(
        &self,
        requests: Vec<EnqueueRequest>,
        actor: &Actor,
    ) -> Result<Vec<steward_store::Enqueued>, EnqueueError> {
        crate::queue::enqueue(
            self.store.as_ref(),
            &self.bus,
            &self.queues,
            &self.executors,
            &self.registry(),
            requests,
            actor,
        )
        .await
    }

    /// The config file this control plane reloads.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Re-reads the config file and, if it is valid, syncs its registry into the store and puts
    /// it in force. An invalid file or a store failure leaves the running config untouched.
    pub async fn reload(&self, actor: &Actor) -> Result<ReloadOutcome, EngineError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let env = Arc::clone(&self.env);
        let mut loaded = match load_file(&self.config_path, &move |name| env(name)) {
            Ok(loaded) => loaded,
            Err(e) => {
                let problems = e.diagnostics().map_or(1, |d| d.errors().count());
                metrics::counter!("steward_config_reloads_total", "result" => "rejected")
                    .increment(1);
                tracing::warn!(path = %self.config_path.display(), problems, "config reload rejected; the running config stays");
                self.bus.publish(Event::ConfigRejected { problems });
                return Err(e.into());
            }
        };
        loaded.config = with_builtins(loaded.config);
        let diff = match sync(&self.store, &self.bus, &loaded.config.registry, actor).await {
            Ok(diff) => diff,
            Err(e) => {
                metrics::counter!("steward_config_reloads_total", "result" => "failed")
                    .increment(1);
                return Err(e.into());
            }
        };
        if let Err(e) = sync_nodes(&self.store, &self.bus, &loaded.config.nodes, actor).await {
            metrics::counter!("steward_config_reloads_total", "result" => "failed").increment(1);
            return Err(e.into());
        }
        let mut restart_required =
            restart_required(&self.config.load().settings, &loaded.config.settings);
        if *self.queues != loaded.config.queues {
            restart_required.push("queues");
        }
        if self.config.load().executors != loaded.config.executors {
            restart_required.push("executors");
        }
        for setting in &restart_required {
            tracing::warn!(
                setting,
                "setting changed in the config file; it takes effect after a restart"
            );
        }
        self.registry
            .store(Arc::new(loaded.config.registry.clone()));
        self.redactor
            .store(Arc::new(redactor(&loaded.config, &self.daemon_secrets)));
        self.config.store(Arc::new(loaded.config));
        metrics::counter!("steward_config_reloads_total", "result" => "applied").increment(1);
        // The parse and the sync were a burst; give its memory back.
        crate::memory::release_freed_memory();
        Ok(ReloadOutcome {
            diff,
            warnings: loaded.warnings,
            restart_required,
        })
    }
}

/// Makes the stored config nodes those `[[nodes]]` declares, announcing each added and removed.
async fn sync_nodes(
    store: &Arc<dyn Store>,
    bus: &EventBus,
    declared: &[steward_core::node::NodeSpec],
    actor: &Actor,
) -> Result<(), StoreError> {
    let synced = store.sync_declared_nodes(declared, actor).await?;
    let workspace_of = |id: &str| {
        declared
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.workspace.clone())
    };
    for (ids, change) in [
        (&synced.added, "added"),
        (&synced.updated, "updated"),
        (&synced.removed, "removed"),
    ] {
        for id in ids {
            tracing::info!(node = %id, change, "declared node synced");
            bus.publish(Event::NodeChanged {
                node: id.clone(),
                change: change.to_owned(),
                workspace: workspace_of(id),
            });
        }
    }
    Ok(())
}

async fn sync(
    store: &Arc<dyn Store>,
    bus: &EventBus,
    registry: &Registry,
    actor: &Actor,
) -> Result<RegistryDiff, StoreError> {
    let diff = store.sync_registry(registry, actor).await?;
    let counts = diff.counts();
    for line in diff.summary_lines() {
        tracing::info!(change = %line, "registry changed");
    }
    tracing::info!(
        workspaces = registry.workspaces.len(),
        dependencies = registry.dependencies.len(),
        services = registry.services.len(),
        added = counts.added,
        updated = counts.updated,
        removed = counts.removed,
        "registry synced"
    );
    metrics::gauge!("steward_registry_entities", "kind" => "workspace")
        .set(registry.workspaces.len() as f64);
    metrics::gauge!("steward_registry_entities", "kind" => "dependency")
        .set(registry.dependencies.len() as f64);
    metrics::gauge!("steward_registry_entities", "kind" => "service")
        .set(registry.services.len() as f64);
    if !diff.is_empty() {
        bus.publish(Event::RegistrySynced {
            added: counts.added,
            updated: counts.updated,
            removed: counts.removed,
        });
    }
    Ok(diff)
}

/// Masks the secrets of `config` and `daemon`.
fn redactor(config: &Config, daemon: &[Secret]) -> Redactor {
    let secrets = config.secrets();
    Redactor::new(secrets.iter().chain(daemon).map(Secret::expose))
}

/// `config` with Steward's own scheduled work added: the system queue and the retention
/// schedule (their names are reserved, so nothing in the file collides with them).
fn with_builtins(mut config: Config) -> Config {
    config.queues.push(steward_core::queue::system_queue());
    config
        .schedules
        .push(steward_core::schedule::retention_schedule());
    config
}

fn restart_required(
    old: &steward_config::FileSettings,
    new: &steward_config::FileSettings,
) -> Vec<&'static str> {
    [
        ("server.listen", old.listen != new.listen),
        ("storage.data_dir", old.data_dir != new.data_dir),
        ("storage.database", old.database != new.database),
        (
            "storage.max_connections",
            old.max_connections != new.max_connections,
        ),
        ("log.format", old.log_format != new.log_format),
        ("log.level", old.log_level != new.log_level),
        ("api", old.api != new.api),
        ("audit.mirror", old.audit_mirror != new.audit_mirror),
        ("scheduler", old.scheduler != new.scheduler),
        // Retention and the probe cap are read when the prober and the pruner start.
        ("health", old.health != new.health),
    ]
    .into_iter()
    .filter_map(|(setting, changed)| changed.then_some(setting))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_store::prelude::*;
    use steward_store_sqlite::SqliteStore;

    const GOOD: &str = "[[workspaces]]\nkey = \"a\"\n[[workspaces]]\nkey = \"b\"\n";

    async fn control(dir: &Path, text: &str) -> ControlPlane {
        let path = dir.join("steward.toml");
        std::fs::write(&path, text).unwrap();
        let store = SqliteStore::open(&dir.join("data")).await.unwrap();
        store.migrate().await.unwrap();
        let env: SystemEnv = Arc::new(|_| None);
        let loaded = load_file(&path, &|_| None).unwrap();
        ControlPlane::start(Arc::new(store), EventBus::new(), &path, loaded.config, env)
            .await
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn a_valid_reload_syncs_and_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let control = control(dir.path(), GOOD).await;
        let mut events = control.bus().subscribe();
        std::fs::write(
            control.config_path(),
            "[server]\nlisten = \"127.0.0.1:1\"\n[[workspaces]]\nkey = \"a\"\n",
        )
        .unwrap();
        let outcome = control.reload(&Actor::system("test")).await.unwrap();
        assert_eq!(outcome.diff.summary_lines(), vec!["- workspace b"]);
        assert_eq!(outcome.restart_required, vec!["server.listen"]);
        assert_eq!(
            events.recv().await.unwrap().event,
            Event::RegistrySynced {
                added: 0,
                updated: 0,
                removed: 1
            }
        );
        assert_eq!(
            control.store().registry().await.unwrap().workspaces.len(),
            1
        );
    }

    #[tokio::test]
    async fn an_invalid_reload_keeps_the_running_config() {
        let dir = tempfile::tempdir().unwrap();
        let control = control(dir.path(), GOOD).await;
        std::fs::write(
            control.config_path(),
            "[[workspaces]]\nkey = \"a\"\nbogus = 1\n",
        )
        .unwrap();
        let err = control.reload(&Actor::system("test")).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown key `workspaces[0].bogus`"),
            "{err}"
        );
        assert_eq!(control.config().registry.workspaces.len(), 2);
        assert_eq!(
            control.store().registry().await.unwrap().workspaces.len(),
            2
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_config_path_that_became_a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let control = Arc::new(control(dir.path(), GOOD).await);
        let path = control.config_path().to_path_buf();
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let reload = tokio::spawn({
            let control = Arc::clone(&control);
            async move { control.reload(&Actor::system("test")).await }
        });
        let Ok(outcome) = tokio::time::timeout(std::time::Duration::from_secs(5), reload).await
        else {
            // A writer lets the blocked read end, so that the runtime can shut down.
            drop(std::fs::OpenOptions::new().write(true).open(&path));
            panic!("the reload blocked on the FIFO");
        };
        let err = outcome.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: not a regular file (a FIFO)", path.display())
        );
        assert_eq!(control.config().registry.workspaces.len(), 2);
    }
}
