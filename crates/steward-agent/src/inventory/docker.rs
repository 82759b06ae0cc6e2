//! Containers from the node's Docker Engine, asked over its Unix socket.
//!
//! One round is one `GET /containers/json?all=true`. The list has everything the inventory needs
//! but the restart count, which only an inspect gives; inspecting every container every round
//! would cost a node with 50 containers 50 requests every 10 s, so restart counts are cached per
//! container id and a container is inspected again only when its list entry says something
//! happened to it: it is new, its state or creation time changed, or it has been up for less
//! time than has passed since it was last inspected (it started again in between). A few cached
//! counts are also refreshed each round, oldest first, so anything the list cannot show (a
//! restart policy changed with `docker update`, say) still converges.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerSummary, ContainerSummaryHealthStatusEnum, PortSummary};
use bollard::query_parameters::ListContainersOptions;
use steward_wire::nodes::Container;
use tokio::sync::Mutex;

/// Where the Docker Engine listens on a standard install.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long one request to the Engine may take by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one whole round (version, list, inspects) may take by default: less than the
/// agent's 10 s interval, so a slow daemon cannot make rounds pile up.
pub const DEFAULT_ROUND_TIMEOUT: Duration = Duration::from_secs(8);

/// A cached restart count older than this is refreshed even if nothing in the list changed.
const REFRESH_AFTER: Duration = Duration::from_secs(300);

/// At most this many refreshes of unchanged containers per round, so that the counts cached
/// together on the first round do not all come due on the same later round.
const REFRESHES_PER_ROUND: usize = 5;

/// Why the containers could not be listed although the socket is there.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Whether the socket exists could not be told (a permission on its folder, say).
    #[error("cannot tell whether {} exists: {source}", socket.display())]
    Socket {
        /// The socket's path.
        socket: PathBuf,
        /// What the filesystem answered.
        #[source]
        source: std::io::Error,
    },
    /// The Engine refused or failed a request, or could not be reached on its socket.
    #[error("docker engine at {}: {source}", socket.display())]
    Engine {
        /// The socket's path.
        socket: PathBuf,
        /// What the client or the Engine reported.
        #[source]
        source: BollardError,
    },
    /// The Engine did not answer in time.
    #[error("docker engine at {} did not answer {what} within {timeout:?}", socket.display())]
    Timeout {
        /// The socket's path.
        socket: PathBuf,
        /// What was asked (`version`, `list`, `inspect`, `round`).
        what: &'static str,
        /// The bound that passed.
        timeout: Duration,
    },
}

/// Lists a node's containers from its Docker Engine, remembering restart counts between rounds.
///
/// Rounds are serialised: a second call waits for the first, so the cache is never raced.
#[derive(Debug)]
pub struct DockerInventory {
    socket: PathBuf,
    request_timeout: Duration,
    round_timeout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The client, once its API version has been agreed with the daemon. Dropped on any
    /// failure, so that a restarted or upgraded daemon is negotiated with afresh.
    client: Option<Docker>,
    /// Restart counts by container id.
    restarts: HashMap<String, Inspected>,
}

/// What an inspect of one container found, and what its list entry said at the time.
#[derive(Debug, Clone)]
struct Inspected {
    state: String,
    created: i64,
    restart_count: i64,
    at: Instant,
}

impl DockerInventory {
    /// A collector for the Engine at `socket` (usually [`DEFAULT_SOCKET`]). Nothing is
    /// contacted until the first [`containers`](Self::containers): the Engine may start later
    /// than the agent.
    pub fn connect(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            round_timeout: DEFAULT_ROUND_TIMEOUT,
            state: Mutex::new(State::default()),
        }
    }

    /// The same collector with other bounds for one request and for one whole round.
    pub fn with_timeouts(mut self, request: Duration, round: Duration) -> Self {
        self.request_timeout = request;
        self.round_timeout = round;
        self
    }

    /// The socket it asks.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every container, running or not, sorted by name. `Ok(None)` when there is no Engine
    /// (nothing at the socket's path); an error when there is one and it failed or did not
    /// answer in time.
    pub async fn containers(&self) -> Result<Option<Vec<Container>>, DockerError> {
        let mut state = self.state.lock().await;
        match tokio::fs::try_exists(&self.socket).await {
            Ok(true) => {}
            Ok(false) => {
                // Nothing learnt about a daemon that is gone applies to the next one.
                *state = State::default();
                return Ok(None);
            }
            Err(source) => {
                return Err(DockerError::Socket {
                    socket: self.socket.clone(),
                    source,
                });
            }
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(self.round_timeout, self.round(&mut state)).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out("round", self.round_timeout)),
        };
        match &result {
            Ok(containers) => tracing::debug!(
                socket = %self.socket.display(),
                containers = containers.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "listed docker containers"
            ),
            Err(error) => {
                // Counts inspected before the failure stay cached: the next round goes on
                // from there instead of starting over.
                state.client = None;
                tracing::debug!(socket = %self.socket.display(), %error, "docker round failed");
            }
        }
        result.map(Some)
    }

    async fn round(&self, state: &mut State) -> Result<Vec<Container>, DockerError> {
        let client = match &state.client {
            Some(client) => client.clone(),
            None => {
                let client = self.negotiate().await?;
                state.client = Some(client.clone());
                client
            }
        };
        let options = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let summaries = self
            .bounded("list", client.list_containers(Some(options)))
            .await?;

        let now = Instant::now();
        let present: HashMap<&str, &ContainerSummary> = summaries
            .iter()
            .filter_map(|s| s.id.as_deref().map(|id| (id, s)))
            .collect();
        state
            .restarts
            .retain(|id, _| present.contains_key(id.as_str()));

        let mut due: Vec<&str> = Vec::new();
        let mut stale: Vec<(&str, Instant)> = Vec::new();
        for (id, summary) in &present {
            match state.restarts.get(*id) {
                Some(cached) if !changed(cached, summary, now) => {
                    if now.duration_since(cached.at) >= REFRESH_AFTER {
                        stale.push((id, cached.at));
                    }
                }
                _ => due.push(id),
            }
        }
        stale.sort_by_key(|(_, at)| *at);
        due.extend(stale.iter().take(REFRESHES_PER_ROUND).map(|(id, _)| *id));

        let mut vanished: Vec<&str> = Vec::new();
        for id in &due {
            match self
                .bounded("inspect", client.inspect_container(id, None))
                .await
            {
                Ok(inspect) => {
                    let summary = present[id];
                    state.restarts.insert(
                        (*id).to_owned(),
                        Inspected {
                            state: state_of(summary),
                            created: summary.created.unwrap_or_default(),
                            restart_count: inspect.restart_count.unwrap_or_default(),
                            at: Instant::now(),
                        },
                    );
                }
                // Removed between the list and the inspect: it is no longer there to report.
                Err(DockerError::Engine {
                    source:
                        BollardError::DockerResponseServerError {
                            status_code: 404, ..
                        },
                    ..
                }) => vanished.push(id),
                Err(error) => return Err(error),
            }
        }
        if !due.is_empty() {
            tracing::debug!(
                socket = %self.socket.display(),
                inspected = due.len(),
                vanished = vanished.len(),
                "inspected docker containers for restart counts"
            );
        }

        let mut containers: Vec<Container> = present
            .iter()
            .filter(|(id, _)| !vanished.contains(id))
            .map(|(id, summary)| {
                let restart_count = state
                    .restarts
                    .get(*id)
                    .map(|cached| cached.restart_count)
                    .unwrap_or_default();
                container_of(summary, restart_count)
            })
            .collect();
        containers.sort();
        Ok(containers)
    }

    /// A client speaking the highest API version both sides know: bollard's default is newer
    /// than many daemons accept, and current daemons refuse versions far older than theirs.
    async fn negotiate(&self) -> Result<Docker, DockerError> {
        let socket = self.socket.to_string_lossy();
        let seconds = self.request_timeout.as_secs().max(1);
        let client = Docker::connect_with_unix(&socket, seconds, bollard::API_DEFAULT_VERSION)
            .map_err(|source| self.engine(source))?;
        let client = self.bounded("version", client.negotiate_version()).await?;
        tracing::debug!(
            socket = %self.socket.display(),
            api_version = %client.client_version(),
            "negotiated docker api version"
        );
        Ok(client)
    }

    async fn bounded<T>(
        &self,
        what: &'static str,
        request: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, DockerError> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(BollardError::RequestTimeoutError)) => {
                Err(self.timed_out(what, self.request_timeout))
            }
            Ok(Err(source)) => Err(self.engine(source)),
            Err(_) => Err(self.timed_out(what, self.request_timeout)),
        }
    }

    fn engine(&self, source: BollardError) -> DockerError {
        DockerError::Engine {
            socket: self.socket.clone(),
            source,
        }
    }

    fn timed_out(&self, what: &'static str, timeout: Duration) -> DockerError {
        DockerError::Timeout {
            socket: self.socket.clone(),
            what,
            timeout,
        }
    }
}

/// Whether a container's list entry shows something that may have moved its restart count
/// since it was last inspected.
fn changed(cached: &Inspected, summary: &ContainerSummary, now: Instant) -> bool {
    if cached.state != state_of(summary) || cached.created != summary.created.unwrap_or_default() {
        return true;
    }
    // A restart between two rounds leaves the state `running` in both, but the uptime in the
    // status starts over. The status rounds down, so this never misses a start after the
    // inspect; it may inspect once more than needed near a start, which the next inspect ends.
    let since_inspect = now.duration_since(cached.at).as_secs_f64();
    match summary.status.as_deref().and_then(uptime_at_least) {
        Some(up) => (up as f64) < since_inspect,
        None => false,
    }
}

fn state_of(summary: &ContainerSummary) -> String {
    summary
        .state
        .map(|state| state.as_ref().to_owned())
        .unwrap_or_default()
}

/// The inventory's view of one list entry.
fn container_of(summary: &ContainerSummary, restart_count: i64) -> Container {
    let id = summary.id.as_deref().unwrap_or_default();
    Container {
        name: name_of(summary.names.as_deref().unwrap_or_default(), id),
        image: summary.image.clone().unwrap_or_default(),
        state: state_of(summary),
        health: health_of(summary),
        ports: format_ports(summary.ports.as_deref().unwrap_or_default()),
        restart_count,
    }
}

/// The container's own name. Docker lists it with a leading `/`, and with legacy links also
/// the aliases other containers know it by (`/other/alias`), which are not its name.
fn name_of(names: &[String], id: &str) -> String {
    let stripped = |name: &String| name.trim_start_matches('/').to_owned();
    names
        .iter()
        .map(stripped)
        .find(|name| !name.contains('/'))
        .or_else(|| names.first().map(stripped))
        .unwrap_or_else(|| id.chars().take(12).collect())
}

/// The health check's status, when the container has one. Daemons from API 1.52 on put it in
/// the list entry; older ones only in the status text, as `(healthy)`, `(unhealthy)` or
/// `(health: starting)`.
fn health_of(summary: &ContainerSummary) -> Option<String> {
    let listed = summary.health.as_ref().and_then(|health| health.status);
    match listed {
        Some(
            status @ (ContainerSummaryHealthStatusEnum::HEALTHY
            | ContainerSummaryHealthStatusEnum::UNHEALTHY
            | ContainerSummaryHealthStatusEnum::STARTING),
        ) => Some(status.as_ref().to_owned()),
        _ => summary.status.as_deref().and_then(health_in_status),
    }
}

fn health_in_status(status: &str) -> Option<String> {
    let health = if status.ends_with("(healthy)") {
        "healthy"
    } else if status.ends_with("(unhealthy)") {
        "unhealthy"
    } else if status.ends_with("(health: starting)") {
        "starting"
    } else {
        return None;
    };
    Some(health.to_owned())
}

/// Published ports as `IP:PUBLIC->PRIVATE/TYPE` and exposed ones as `PRIVATE/TYPE`, sorted and
/// without repeats (a daemon may list a binding once per address family and more than once).
fn format_ports(ports: &[PortSummary]) -> Vec<String> {
    let mut formatted: Vec<String> = ports.iter().map(format_port).collect();
    formatted.sort();
    formatted.dedup();
    formatted
}

fn format_port(port: &PortSummary) -> String {
    // Docker's own default protocol, for an entry that does not say.
    let protocol = match port.typ.map(|typ| typ.as_ref().to_owned()) {
        Some(typ) if !typ.is_empty() => typ,
        _ => "tcp".to_owned(),
    };
    let private = port.private_port;
    match port.public_port.filter(|public| *public != 0) {
        None => format!("{private}/{protocol}"),
        Some(public) => match port.ip.as_deref().filter(|ip| !ip.is_empty()) {
            // Brackets keep an IPv6 address apart from the port that follows it.
            Some(ip) if ip.contains(':') => format!("[{ip}]:{public}->{private}/{protocol}"),
            Some(ip) => format!("{ip}:{public}->{private}/{protocol}"),
            None => format!("{public}->{private}/{protocol}"),
        },
    }
}

/// The least time a running container can have been up, read from its status (`Up 5 seconds`,
/// `Up About a minute (healthy)`, `Up 3 hours (Paused)`), as seconds. `None` when the status is
/// not an uptime. Docker writes whole seconds and minutes rounded down and hours rounded to the
/// nearest, hence the half hour taken off from hours on.
fn uptime_at_least(status: &str) -> Option<u64> {
    let rest = status.strip_prefix("Up ")?;
    let phrase = rest.split(" (").next().unwrap_or(rest).trim();
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    match phrase {
        "Less than a second" => return Some(0),
        "About a minute" => return Some(MINUTE),
        "About an hour" => return Some(HOUR),
        _ => {}
    }
    let (count, unit) = phrase.split_once(' ')?;
    let count: u64 = count.parse().ok()?;
    let seconds = match unit {
        "second" | "seconds" => count,
        "minute" | "minutes" => count * MINUTE,
        "hour" | "hours" => count * HOUR,
        "day" | "days" => count * DAY,
        "week" | "weeks" => count * 7 * DAY,
        "month" | "months" => count * 30 * DAY,
        "year" | "years" => return Some(count * 365 * DAY),
        _ => return None,
    };
    Some(if seconds >= HOUR {
        seconds - HOUR / 2
    } else {
        seconds
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerSummaryHealth, ContainerSummaryStateEnum, PortSummaryTypeEnum};

    use super::*;

    fn port(ip: Option<&str>, public: Option<u16>, private: u16, typ: &str) -> PortSummary {
        PortSummary {
            ip: ip.map(str::to_owned),
            private_port: private,
            public_port: public,
            typ: typ.parse::<PortSummaryTypeEnum>().ok(),
        }
    }

    fn summary(state: ContainerSummaryStateEnum, status: &str) -> ContainerSummary {
        ContainerSummary {
            id: Some("0123456789abcdef".to_owned()),
            names: Some(vec!["/web".to_owned()]),
            image: Some("nginx:1.27".to_owned()),
            created: Some(1_700_000_000),
            state: Some(state),
            status: Some(status.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn ports_are_formatted_sorted_and_without_repeats() {
        let ports = [
            port(Some("0.0.0.0"), Some(8080), 80, "tcp"),
            port(Some("::"), Some(8080), 80, "tcp"),
            port(None, None, 443, "tcp"),
            port(Some("127.0.0.1"), Some(5353), 53, "udp"),
            port(Some("0.0.0.0"), Some(8080), 80, "tcp"),
            port(None, None, 9000, ""),
            port(None, Some(7000), 7000, "sctp"),
        ];
        assert_eq!(
            format_ports(&ports),
            vec![
                "0.0.0.0:8080->80/tcp",
                "127.0.0.1:5353->53/udp",
                "443/tcp",
                "7000->7000/sctp",
                "9000/tcp",
                "[::]:8080->80/tcp",
            ]
        );
    }

    #[test]
    fn an_unpublished_port_shows_only_its_private_side() {
        assert_eq!(
            format_port(&port(Some("0.0.0.0"), Some(0), 80, "tcp")),
            "80/tcp"
        );
        assert_eq!(format_port(&port(None, None, 6379, "tcp")), "6379/tcp");
    }

    #[test]
    fn the_name_is_the_one_that_is_not_a_link_alias() {
        let names = vec!["/app/db".to_owned(), "/db".to_owned()];
        assert_eq!(name_of(&names, "abc"), "db");
        assert_eq!(name_of(&["/web".to_owned()], "abc"), "web");
        assert_eq!(name_of(&["/a/b".to_owned()], "abc"), "a/b");
        assert_eq!(name_of(&[], "0123456789abcdef"), "0123456789ab");
    }

    #[test]
    fn health_comes_from_the_list_entry_or_else_its_status() {
        let mut newer = summary(ContainerSummaryStateEnum::RUNNING, "Up 2 minutes (healthy)");
        newer.health = Some(ContainerSummaryHealth {
            status: Some(ContainerSummaryHealthStatusEnum::UNHEALTHY),
            failing_streak: Some(3),
        });
        assert_eq!(health_of(&newer).as_deref(), Some("unhealthy"));

        let cases = [
            ("Up 2 minutes (healthy)", Some("healthy")),
            ("Up 5 seconds (health: starting)", Some("starting")),
            ("Up About an hour (unhealthy)", Some("unhealthy")),
            ("Up 3 hours (Paused)", None),
            ("Exited (0) 4 seconds ago", None),
        ];
        for (status, expected) in cases {
            let older = summary(ContainerSummaryStateEnum::RUNNING, status);
            assert_eq!(health_of(&older).as_deref(), expected, "{status}");
        }

        let mut none = summary(ContainerSummaryStateEnum::RUNNING, "Up 2 minutes");
        none.health = Some(ContainerSummaryHealth {
            status: Some(ContainerSummaryHealthStatusEnum::NONE),
            failing_streak: None,
        });
        assert_eq!(health_of(&none), None);
    }

    #[test]
    fn a_list_entry_becomes_a_container() {
        let mut entry = summary(
            ContainerSummaryStateEnum::EXITED,
            "Exited (1) 3 seconds ago",
        );
        entry.ports = Some(vec![port(None, None, 80, "tcp")]);
        assert_eq!(
            container_of(&entry, 4),
            Container {
                name: "web".to_owned(),
                image: "nginx:1.27".to_owned(),
                state: "exited".to_owned(),
                health: None,
                ports: vec!["80/tcp".to_owned()],
                restart_count: 4,
            }
        );
    }

    #[test]
    fn uptimes_are_read_as_lower_bounds() {
        let cases = [
            ("Up Less than a second", Some(0)),
            ("Up 1 second", Some(1)),
            ("Up 42 seconds (health: starting)", Some(42)),
            ("Up About a minute", Some(60)),
            ("Up 5 minutes (Paused)", Some(300)),
            ("Up About an hour", Some(3600)),
            ("Up 2 hours", Some(2 * 3600 - 1800)),
            ("Up 3 days", Some(3 * 86400 - 1800)),
            ("Up 2 weeks", Some(14 * 86400 - 1800)),
            ("Up 3 months", Some(90 * 86400 - 1800)),
            ("Up 2 years", Some(730 * 86400)),
            ("Exited (0) 5 seconds ago", None),
            ("Restarting (1) 2 seconds ago", None),
            ("Created", None),
            ("Up forever", None),
        ];
        for (status, expected) in cases {
            assert_eq!(uptime_at_least(status), expected, "{status}");
        }
    }

    #[test]
    fn an_inspect_is_due_when_the_entry_shows_a_change_or_a_new_start() {
        let now = Instant::now();
        let at = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
        let cached = Inspected {
            state: "running".to_owned(),
            created: 1_700_000_000,
            restart_count: 0,
            at,
        };
        let steady = summary(ContainerSummaryStateEnum::RUNNING, "Up 5 minutes");
        assert!(!changed(&cached, &steady, now));
        let restarted = summary(ContainerSummaryStateEnum::RUNNING, "Up 3 seconds");
        assert!(changed(&cached, &restarted, now));
        let stopped = summary(
            ContainerSummaryStateEnum::EXITED,
            "Exited (1) 2 seconds ago",
        );
        assert!(changed(&cached, &stopped, now));
        let mut recreated = steady.clone();
        recreated.created = Some(1_700_000_500);
        assert!(changed(&cached, &recreated, now));
    }
}
