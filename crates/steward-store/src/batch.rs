//! Group commit for a store's writes: concurrent callers submit requests, one task gathers
//! whatever is queued into a batch, a backend function writes the batch in one transaction, and
//! each caller gets its own answer. A lone request is a batch of one, with no added wait.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// The most requests written in one transaction.
pub const MAX_BATCH: usize = 256;

/// What a batch write function returns.
pub type BatchFuture<Resp> = Pin<Box<dyn Future<Output = Result<Vec<Resp>, StoreError>> + Send>>;

struct Pending<Req, Resp> {
    request: Req,
    reply: oneshot::Sender<Result<Resp, StoreError>>,
}

/// Submits requests to the batch writer task.
pub struct Batcher<Req, Resp> {
    sender: mpsc::Sender<Pending<Req, Resp>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the writer task. `write` receives each batch and must return one answer per
    /// request, in order; an `Err` fails every request of the batch (nothing of it committed).
    pub fn spawn<F>(write: F) -> Self
    where
        F: Fn(Vec<Req>) -> BatchFuture<Resp> + Send + Sync + 'static,
    {
        Self::spawn_with_max(MAX_BATCH, write)
    }

    /// As [`Batcher::spawn`], writing at most `max_batch` requests per transaction (at least
    /// one): a caller that may have thousands of requests in flight at once sizes its batches
    /// to match, so they do not queue behind a smaller limit.
    pub fn spawn_with_max<F>(max_batch: usize, write: F) -> Self
    where
        F: Fn(Vec<Req>) -> BatchFuture<Resp> + Send + Sync + 'static,
    {
        let max_batch = max_batch.max(1);
        let (sender, mut receiver) = mpsc::channel::<Pending<Req, Resp>>(max_batch * 4);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                // Callers answered by the previous batch are re-submitting right now: one yield
                // lets them join this batch instead of each starting a transaction of its own.
                tokio::task::yield_now().await;
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (requests, replies): (Vec<Req>, Vec<_>) =
                    batch.into_iter().map(|p| (p.request, p.reply)).unzip();
                let size = requests.len();
                metrics::histogram!("steward_store_batch_size").record(size as f64);
                // A panic while writing fails this batch only; the writer keeps serving.
                let written = match tokio::spawn(write(requests)).await {
                    Ok(result) => result,
                    // Not damaged data: an internal failure, answered as the store being
                    // unavailable (retrying may work).
                    Err(e) => Err(StoreError::Database(
                        format!("the batch writer failed: {e}").into(),
                    )),
                };
                match written {
                    Ok(answers) if answers.len() == size => {
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Ok(answers) => {
                        let message =
                            format!("batch writer answered {} of {size} requests", answers.len());
                        for reply in replies {
                            let _ = reply.send(Err(StoreError::Database(message.clone().into())));
                        }
                    }
                    Err(e) => {
                        // StoreError is not Clone: one caller keeps the original, the others
                        // get a copy of it.
                        let mut replies = replies.into_iter();
                        let first = replies.next();
                        for reply in replies {
                            let _ = reply.send(Err(e.for_another_caller()));
                        }
                        if let Some(first) = first {
                            let _ = first.send(Err(e));
                        }
                    }
                }
            }
        });
        Self { sender }
    }

    /// Submits a request and waits for its answer.
    pub async fn submit(&self, request: Req) -> Result<Resp, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending { request, reply })
            .await
            .map_err(|_| StoreError::Database("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Database("the batch writer stopped".into()))?
    }
}

/// For each name, whether it is the first request of the batch to use it (later ones conflict).
pub fn first_occurrences<'a>(names: impl Iterator<Item = &'a str>) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    names.map(|name| seen.insert(name)).collect()
}

/// The answers and chained audit events of a batch of key creations, in request order: requests
/// whose key was inserted succeed and get an event after `(seq, hash)`; the others conflict.
pub fn chain_created_keys(
    requests: &[(crate::NewKey, steward_core::audit::Actor)],
    firsts: &[bool],
    inserted: &std::collections::HashSet<String>,
    created_at_ms: i64,
    seq: i64,
    hash: &str,
) -> (
    Vec<Result<crate::ApiKey, StoreError>>,
    Vec<steward_core::audit::AuditEvent>,
) {
    let (mut seq, mut hash) = (seq, hash.to_owned());
    let mut answers = Vec::with_capacity(requests.len());
    let mut events = Vec::new();
    for ((key, actor), first) in requests.iter().zip(firsts) {
        if !(*first && inserted.contains(&key.name)) {
            answers.push(Err(StoreError::Conflict(format!("key `{}`", key.name))));
            continue;
        }
        let stored = crate::ApiKey::created(key, created_at_ms);
        let entry = crate::audit::key_created("key.create", actor, &stored);
        let event = steward_core::audit::AuditEvent::chain(entry, seq + 1, crate::now_ms(), &hash);
        (seq, hash) = (event.seq, event.hash.clone());
        events.push(event);
        answers.push(Ok(stored));
    }
    (answers, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_batches_and_get_their_own_answers() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&batches);
        let batcher = Arc::new(Batcher::spawn(move |requests: Vec<u32>| {
            counter.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(requests.into_iter().map(|r| r * 2).collect())
            })
        }));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let b = Arc::clone(&batcher);
                tokio::spawn(async move { (i, b.submit(i).await) })
            })
            .collect();
        for task in tasks {
            let (i, answer) = task.await.unwrap();
            assert_eq!(answer.unwrap(), i * 2);
        }
        assert!(
            batches.load(Ordering::Relaxed) < 200,
            "requests were grouped"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_requests() {
        let batcher: Batcher<u32, u32> =
            Batcher::spawn(|_| Box::pin(async { Err(StoreError::Corrupt("disk on fire".into())) }));
        let err = batcher.submit(1).await.unwrap_err();
        assert!(err.to_string().contains("disk on fire"));
    }

    #[tokio::test]
    async fn a_panicking_writer_is_an_unavailable_store_not_damaged_data() {
        let batcher: Batcher<u32, u32> = Batcher::spawn(|_| Box::pin(async { panic!("bug") }));
        let err = batcher.submit(1).await.unwrap_err();
        assert_eq!(err.kind(), "database", "{err}");
    }

    #[tokio::test]
    async fn a_damaged_file_fails_every_request_of_its_batch_as_damaged() {
        let batcher: Arc<Batcher<u32, u32>> = Arc::new(Batcher::spawn(|_| {
            Box::pin(async {
                Err(StoreError::Damaged {
                    source: "page 7 is malformed".into(),
                    recovery: "recover the file",
                })
            })
        }));
        let callers: Vec<_> = (0..8)
            .map(|i| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(async move { batcher.submit(i).await })
            })
            .collect();
        for caller in callers {
            match caller.await.unwrap() {
                Err(StoreError::Damaged { source, recovery }) => {
                    assert_eq!(source.to_string(), "page 7 is malformed");
                    assert_eq!(recovery, "recover the file");
                }
                other => panic!("expected a damaged file, got {other:?}"),
            }
        }
    }
}
