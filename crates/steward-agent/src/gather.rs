//! One beat's inventory: every kind gathered, digested, and ready to be sent in part.
//!
//! Files (vhosts, certificates, `/proc`) are read on the blocking pool while the Docker Engine
//! is asked, so a slow disk never stalls the runtime and the two waits overlap. Nothing is
//! kept between beats but what the logs need to stay quiet (whether the last round had the
//! same problems) and the last containers' digest.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use steward_wire::nodes::{
    Certificate, Container, Domain, Facts, InventoryKind, InventoryParts, Usage,
};

use crate::config::InventoryConfig;
use crate::inventory::docker::DockerInventory;
use crate::inventory::{certs, digest_of, facts, nginx};

/// Why a beat's inventory could not be gathered at all.
#[derive(Debug, thiserror::Error)]
#[error("the file collectors failed: {0}")]
pub struct GatherError(String);

/// What one beat gathered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The digest of each kind gathered.
    pub digests: BTreeMap<InventoryKind, String>,
    /// Every kind gathered, in full. Containers are absent when the Docker Engine failed this
    /// round and never answered before.
    pub kinds: InventoryParts,
    /// What the node is doing now.
    pub usage: Usage,
}

impl Snapshot {
    /// The kinds gathered whose digest differs from the one `acknowledged` (what the hub last
    /// said it holds), in reconciliation order.
    pub fn differing(&self, acknowledged: &BTreeMap<InventoryKind, String>) -> Vec<InventoryKind> {
        InventoryKind::ALL
            .into_iter()
            .filter(|kind| self.has(*kind))
            .filter(|kind| acknowledged.get(kind) != self.digests.get(kind))
            .collect()
    }

    /// True when `kind` was gathered in full this beat.
    pub fn has(&self, kind: InventoryKind) -> bool {
        match kind {
            InventoryKind::Containers => self.kinds.containers.is_some(),
            InventoryKind::Domains => self.kinds.domains.is_some(),
            InventoryKind::Certificates => self.kinds.certificates.is_some(),
            InventoryKind::Facts => self.kinds.facts.is_some(),
        }
    }

    /// The `kinds` in full, for a heartbeat; kinds not gathered are left out.
    pub fn parts(&self, kinds: &[InventoryKind]) -> InventoryParts {
        let mut parts = InventoryParts::default();
        for kind in kinds {
            match kind {
                InventoryKind::Containers => parts.containers.clone_from(&self.kinds.containers),
                InventoryKind::Domains => parts.domains.clone_from(&self.kinds.domains),
                InventoryKind::Certificates => {
                    parts.certificates.clone_from(&self.kinds.certificates);
                }
                InventoryKind::Facts => parts.facts.clone_from(&self.kinds.facts),
            }
        }
        parts
    }
}

/// Gathers the node's inventory each beat.
#[derive(Debug)]
pub struct Gatherer {
    files: Arc<FileSources>,
    docker: Option<DockerInventory>,
    /// The digest of the containers last listed, sent while the Engine fails so the hub keeps
    /// what it holds instead of being told the kind changed.
    containers_digest: Option<String>,
    docker_failing: bool,
    /// A hash of the vhost problems last logged, so a broken file is reported when it breaks
    /// and when it is fixed, not every beat.
    nginx_problems: u64,
}

/// What the blocking part reads.
#[derive(Debug)]
struct FileSources {
    nginx: Vec<String>,
    certificates: Vec<String>,
    mounts: Vec<String>,
    agent_version: String,
}

/// What the blocking part found, digested.
struct FileKinds {
    domains: Vec<Domain>,
    certificates: Vec<Certificate>,
    facts: Facts,
    usage: Usage,
    digests: [(InventoryKind, String); 3],
    problems: Vec<String>,
}

impl Gatherer {
    /// A gatherer reading what `inventory` names, reporting `agent_version` in the facts.
    pub fn new(inventory: &InventoryConfig, agent_version: &str) -> Self {
        Self {
            files: Arc::new(FileSources {
                nginx: inventory.nginx.clone(),
                certificates: inventory.certificates.clone(),
                mounts: inventory.mounts.clone(),
                agent_version: agent_version.to_owned(),
            }),
            docker: inventory
                .docker_socket
                .as_deref()
                .map(DockerInventory::connect),
            containers_digest: None,
            docker_failing: false,
            nginx_problems: hash_of(&[] as &[String]),
        }
    }

    /// Gathers every kind and the usage now.
    pub async fn gather(&mut self) -> Result<Snapshot, GatherError> {
        let files = Arc::clone(&self.files);
        let (found, containers) = tokio::join!(
            tokio::task::spawn_blocking(move || read_files(&files)),
            self.containers()
        );
        let found = found.map_err(|e| GatherError(e.to_string()))?;
        self.log_nginx_problems(&found.problems);
        let mut digests: BTreeMap<InventoryKind, String> = found.digests.into_iter().collect();
        if let Some(digest) = &self.containers_digest {
            digests.insert(InventoryKind::Containers, digest.clone());
        }
        Ok(Snapshot {
            digests,
            kinds: InventoryParts {
                containers,
                domains: Some(found.domains),
                certificates: Some(found.certificates),
                facts: Some(found.facts),
            },
            usage: found.usage,
        })
    }

    /// The containers this round: `Some(None)` without an Engine, `None` when it failed.
    async fn containers(&mut self) -> Option<Option<Vec<Container>>> {
        let Some(docker) = &self.docker else {
            return self.listed(None);
        };
        match docker.containers().await {
            Ok(containers) => {
                if self.docker_failing {
                    tracing::info!(socket = %docker.socket().display(), "docker engine answers again");
                    self.docker_failing = false;
                }
                self.listed(containers)
            }
            Err(error) => {
                if !self.docker_failing {
                    tracing::warn!(
                        socket = %docker.socket().display(),
                        %error,
                        "cannot list containers; reporting the last list until the engine answers"
                    );
                    self.docker_failing = true;
                }
                None
            }
        }
    }

    fn listed(&mut self, containers: Option<Vec<Container>>) -> Option<Option<Vec<Container>>> {
        self.containers_digest = Some(digest_of(&containers));
        Some(containers)
    }

    fn log_nginx_problems(&mut self, problems: &[String]) {
        let hash = hash_of(problems);
        if hash == self.nginx_problems {
            return;
        }
        self.nginx_problems = hash;
        if problems.is_empty() {
            tracing::info!("every vhost file reads again");
        }
        for problem in problems {
            tracing::warn!(problem = %problem, "cannot read a vhost file; its domains are left out");
        }
    }
}

fn read_files(sources: &FileSources) -> FileKinds {
    let scan = nginx::read_domains(&sources.nginx);
    let certificates = certs::read_certificates(&certificate_paths(sources, &scan.domains));
    let facts = facts::gather_facts(&sources.agent_version);
    let usage = facts::gather_usage(&sources.mounts);
    let digests = [
        (InventoryKind::Domains, digest_of(&scan.domains)),
        (InventoryKind::Certificates, digest_of(&certificates)),
        (InventoryKind::Facts, digest_of(&facts)),
    ];
    FileKinds {
        problems: scan.problems.iter().map(ToString::to_string).collect(),
        domains: scan.domains,
        certificates,
        facts,
        usage,
        digests,
    }
}

/// The configured certificate paths and every vhost's `ssl_certificate`, each once.
fn certificate_paths(sources: &FileSources, domains: &[Domain]) -> Vec<String> {
    let mut paths = sources.certificates.clone();
    paths.extend(
        domains
            .iter()
            .filter_map(|d| d.certificate_file.as_deref())
            // A path built from variables (`$ssl_server_name.crt`) names a file per request,
            // none the agent could read.
            .filter(|path| !path.contains('$'))
            .map(str::to_owned),
    );
    paths.sort();
    paths.dedup();
    paths
}

fn hash_of(problems: &[String]) -> u64 {
    let mut hasher = DefaultHasher::new();
    problems.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use super::*;

    fn inventory_of(dir: &Path) -> InventoryConfig {
        InventoryConfig {
            nginx: vec![format!("{}/*.conf", dir.display())],
            certificates: Vec::new(),
            docker_socket: None,
            mounts: vec!["/".into()],
        }
    }

    fn acknowledged_all(snapshot: &Snapshot) -> BTreeMap<InventoryKind, String> {
        snapshot.digests.clone()
    }

    #[tokio::test]
    async fn every_kind_is_gathered_and_digested() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.conf"),
            "server { listen 443 ssl; server_name app.example.com; \
             ssl_certificate /nonexistent/app.pem; location / { proxy_pass http://127.0.0.1:3000; } }",
        )
        .unwrap();
        let mut gatherer = Gatherer::new(&inventory_of(dir.path()), "9.9.9");
        let snapshot = gatherer.gather().await.unwrap();
        assert_eq!(snapshot.digests.len(), 4, "{:?}", snapshot.digests);
        let domains = snapshot.kinds.domains.as_ref().unwrap();
        assert_eq!(domains[0].name, "app.example.com");
        assert_eq!(
            snapshot.digests[&InventoryKind::Domains],
            digest_of(domains)
        );
        // Docker is off: the node reports having no Engine, not an unknown list.
        assert_eq!(snapshot.kinds.containers, Some(None));
        assert_eq!(
            snapshot.digests[&InventoryKind::Containers],
            digest_of(&None::<Vec<Container>>)
        );
        // The vhost's certificate is read (and reported unreadable) with the configured ones.
        let certificates = snapshot.kinds.certificates.as_ref().unwrap();
        assert_eq!(certificates[0].path, "/nonexistent/app.pem");
        assert!(certificates[0].error.is_some());
        assert_eq!(
            snapshot.kinds.facts.as_ref().unwrap().agent_version,
            "9.9.9"
        );
        assert_eq!(snapshot.usage.disks[0].mount, "/");
    }

    #[tokio::test]
    async fn an_unchanged_node_differs_in_nothing_and_a_changed_file_in_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let vhost = dir.path().join("app.conf");
        std::fs::write(&vhost, "server { server_name a.example.com; }").unwrap();
        let mut gatherer = Gatherer::new(&inventory_of(dir.path()), "1");
        let first = gatherer.gather().await.unwrap();
        assert_eq!(first.differing(&BTreeMap::new()), InventoryKind::ALL);
        let held = acknowledged_all(&first);
        let second = gatherer.gather().await.unwrap();
        assert!(second.differing(&held).is_empty());
        std::fs::write(&vhost, "server { server_name b.example.com; }").unwrap();
        let third = gatherer.gather().await.unwrap();
        assert_eq!(third.differing(&held), [InventoryKind::Domains]);
    }

    #[test]
    fn parts_carry_only_the_kinds_asked_for() {
        let snapshot = Snapshot {
            digests: BTreeMap::from([
                (InventoryKind::Domains, "d".to_owned()),
                (InventoryKind::Certificates, "c".to_owned()),
                (InventoryKind::Facts, "f".to_owned()),
            ]),
            kinds: InventoryParts {
                containers: None,
                domains: Some(Vec::new()),
                certificates: Some(Vec::new()),
                facts: Some(Facts::default()),
            },
            usage: Usage::default(),
        };
        let parts = snapshot.parts(&[InventoryKind::Domains, InventoryKind::Containers]);
        assert_eq!(parts.kinds(), [InventoryKind::Domains]);
        assert!(!snapshot.has(InventoryKind::Containers));
        // A kind not gathered this beat is never "different": there is nothing to send.
        assert_eq!(
            snapshot.differing(&BTreeMap::new()),
            [
                InventoryKind::Domains,
                InventoryKind::Certificates,
                InventoryKind::Facts
            ]
        );
    }

    #[test]
    fn variable_certificate_paths_are_skipped_and_duplicates_read_once() {
        let sources = FileSources {
            nginx: Vec::new(),
            certificates: vec!["/etc/ssl/b.pem".into(), "/etc/ssl/a.pem".into()],
            mounts: Vec::new(),
            agent_version: String::new(),
        };
        let domain = |cert: &str| Domain {
            name: "x".into(),
            listen: Vec::new(),
            locations: Vec::new(),
            file: "f".into(),
            certificate_file: Some(cert.into()),
        };
        let domains = [
            domain("/etc/ssl/a.pem"),
            domain("/etc/ssl/$ssl_server_name.pem"),
        ];
        assert_eq!(
            certificate_paths(&sources, &domains),
            ["/etc/ssl/a.pem", "/etc/ssl/b.pem"]
        );
    }

    #[tokio::test]
    async fn a_failing_engine_keeps_the_last_digest_and_sends_no_list() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the socket should be: the Engine "exists" but cannot answer.
        let socket = dir.path().join("docker.sock");
        std::fs::write(&socket, "").unwrap();
        let mut inventory = inventory_of(dir.path());
        inventory.docker_socket = Some(socket);
        let mut gatherer = Gatherer::new(&inventory, "1");
        let snapshot = gatherer.gather().await.unwrap();
        assert_eq!(snapshot.kinds.containers, None);
        assert!(!snapshot.digests.contains_key(&InventoryKind::Containers));

        gatherer.containers_digest = Some("last".into());
        let snapshot = gatherer.gather().await.unwrap();
        assert_eq!(snapshot.digests[&InventoryKind::Containers], "last");
        assert!(
            !snapshot
                .differing(&BTreeMap::new())
                .contains(&InventoryKind::Containers)
        );
    }
}
