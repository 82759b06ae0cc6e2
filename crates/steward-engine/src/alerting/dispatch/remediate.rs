//! Remediation: the tasks a notified group's firing alerts enqueue when their route carries a
//! remediation, one per alert episode, their payloads checked as an enqueue would check them.

use std::collections::BTreeSet;

use steward_core::alert::Fingerprint;
use steward_core::alert::spec::Remediation;
use steward_core::alert::template::{self, TemplateError};
use steward_core::alert::webhook::NotifiedAlert;
use steward_core::queue::QueueSpec;
use steward_core::task::{NewTask, RetryPolicy, TaskOrigin};
use steward_store::alerts::StoredAlert;

use super::decide::Plan;
use super::{COMPONENT, Dispatcher};
use crate::executors::Executors;

/// Why a remediation payload is not enqueued.
#[derive(Debug)]
enum Refusal {
    /// Its template does not render for the alert.
    Unrendered(TemplateError),
    /// The executor of its kind refuses it.
    Refused(String),
    /// It is larger than its queue takes: it would never be taken.
    TooLarge {
        /// Its size as JSON.
        bytes: usize,
        /// The queue's limit.
        limit: usize,
    },
}

impl Refusal {
    /// Counts and logs the refusal of the remediation of `fp`, of `kind`.
    fn report(&self, fp: Fingerprint, kind: &str) {
        metrics::counter!("steward_remediations_total", "result" => "failed").increment(1);
        match self {
            Self::Unrendered(error) => {
                tracing::warn!(%error, fingerprint = %fp, "remediation payload does not render");
            }
            Self::Refused(reason) => {
                tracing::warn!(fingerprint = %fp, kind = %kind, %reason, "remediation payload refused by its executor");
            }
            Self::TooLarge { bytes, limit } => {
                tracing::warn!(fingerprint = %fp, bytes = *bytes, limit = *limit, "remediation payload too large for its queue");
            }
        }
    }
}

impl Dispatcher {
    /// Remediation tasks for alerts that fire on a route carrying one, once per episode.
    pub(super) fn remediate(
        &self,
        path: &[usize],
        firing: &BTreeSet<Fingerprint>,
        now_ms: i64,
        plan: &mut Plan,
    ) {
        let Some(remediation) = self.config.alerting.remediations.get(path) else {
            return;
        };
        let queue = self
            .config
            .queues
            .iter()
            .find(|q| q.name == remediation.queue);
        for &fp in firing {
            let Some((alert, encoded)) = self.known.with_encoding(&fp) else {
                continue;
            };
            let done = (fp, path.to_vec());
            if self.remediated.get(&done) == Some(&alert.episode) {
                continue; // this episode's task was enqueued already
            }
            let payload = match payload(remediation, queue, &self.executors, encoded.alert()) {
                Ok(payload) => payload,
                Err(refusal) => {
                    refusal.report(fp, &remediation.kind);
                    continue;
                }
            };
            plan.remediated.push((done, alert.episode));
            plan.tasks
                .push(task(remediation, queue, path, alert, payload, now_ms));
        }
    }
}

/// The payload of `remediation` for `alert`, as JSON text, unless the executor of its kind
/// would refuse it (as an enqueue through the API would be refused; a kind with no executor
/// here to ask passes) or its queue would never take it.
fn payload(
    remediation: &Remediation,
    queue: Option<&QueueSpec>,
    executors: &Executors,
    alert: &NotifiedAlert,
) -> Result<String, Refusal> {
    let payload =
        template::render_payload(&remediation.payload, alert).map_err(Refusal::Unrendered)?;
    if let Some(executor) = executors.get(&remediation.kind) {
        executor.validate(&payload).map_err(Refusal::Refused)?;
    }
    let payload = payload.to_string();
    if let Some(limit) = queue.map(|q| q.max_payload_bytes)
        && payload.len() > limit
    {
        // Rendered from the alert's labels: too big for its queue, it is never taken.
        return Err(Refusal::TooLarge {
            bytes: payload.len(),
            limit,
        });
    }
    Ok(payload)
}

/// The task remediating `alert` on the route at `path`: idempotent per alert episode and
/// route, so a pass written again cannot enqueue it twice.
fn task(
    remediation: &Remediation,
    queue: Option<&QueueSpec>,
    path: &[usize],
    alert: &StoredAlert,
    payload: String,
    now_ms: i64,
) -> NewTask {
    let route = path
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let fp = alert.fingerprint;
    NewTask {
        timeout_ms: None,
        queue: remediation.queue.clone(),
        kind: remediation.kind.clone(),
        payload,
        priority: 0,
        run_at_ms: now_ms,
        max_attempts: queue.map_or(RetryPolicy::default().max_attempts, |q| {
            q.retry.max_attempts
        }),
        idempotency_key: Some(format!("alert:{fp}:{}:route{route}", alert.episode)),
        origin: TaskOrigin {
            pipeline_run: None,
            workspace: alert.labels.get("workspace").cloned(),
            schedule: None,
            alert: Some(fp.to_string()),
            caller: Some(COMPONENT.to_owned()),
        },
        node: None,
    }
}

#[cfg(test)]
mod tests {
    use steward_core::registry::Labels;

    use super::*;
    use crate::alerting::dispatch::test_alert;
    use crate::alerting::known::Known;

    fn remediation(payload: serde_json::Value) -> Remediation {
        Remediation {
            queue: "platform".into(),
            kind: "noop".into(),
            payload,
        }
    }

    fn alert(instance: &str) -> StoredAlert {
        let labels: Labels = [
            ("instance".to_owned(), instance.to_owned()),
            ("workspace".to_owned(), "db".to_owned()),
        ]
        .into();
        StoredAlert {
            episode: 3,
            ..test_alert(labels)
        }
    }

    /// `alert` as a notification carries it, encoded as the dispatcher keeps it.
    fn notified(alert: &StoredAlert) -> NotifiedAlert {
        let mut known = Known::default();
        known.insert(alert.clone());
        let (_, encoded) = known.with_encoding(&alert.fingerprint).unwrap();
        encoded.alert().clone()
    }

    #[test]
    fn a_payload_is_rendered_from_the_alert_and_kept_within_its_queue() {
        let restart = remediation(serde_json::json!({ "restart": "{{ labels.instance }}" }));
        let executors = Executors::builtins();
        let db1 = notified(&alert("db1"));
        let mut queue = QueueSpec::new("platform", &["noop"]);
        let rendered = payload(&restart, Some(&queue), &executors, &db1);
        assert_eq!(rendered.ok().as_deref(), Some(r#"{"restart":"db1"}"#));
        queue.max_payload_bytes = 8;
        let refused = payload(&restart, Some(&queue), &executors, &db1);
        assert!(
            matches!(
                refused,
                Err(Refusal::TooLarge {
                    bytes: 17,
                    limit: 8
                })
            ),
            "{refused:?}"
        );
        let broken = remediation(serde_json::json!({ "restart": "{{ labels.instance" }));
        let unrendered = payload(&broken, None, &executors, &db1);
        assert!(
            matches!(unrendered, Err(Refusal::Unrendered(_))),
            "{unrendered:?}"
        );
    }

    #[test]
    fn a_task_is_keyed_by_alert_episode_and_route_and_retried_as_its_queue_says() {
        let db1 = alert("db1");
        let restart = remediation(serde_json::json!({}));
        let mut queue = QueueSpec::new("platform", &["noop"]);
        queue.retry.max_attempts = 7;
        let task = task(&restart, Some(&queue), &[0, 2], &db1, "{}".into(), 5);
        assert_eq!(
            task.idempotency_key,
            Some(format!("alert:{}:3:route0.2", db1.fingerprint))
        );
        assert_eq!((task.max_attempts, task.run_at_ms), (7, 5));
        assert_eq!(task.origin.workspace.as_deref(), Some("db"));
        assert_eq!(task.origin.caller.as_deref(), Some(COMPONENT));
    }
}
