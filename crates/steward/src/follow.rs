//! Following the live event stream (`GET /api/v1/events`): one connection, and on a lost one
//! a new one that sends `Last-Event-ID`, so nothing is missed that the server still keeps.

use std::time::Duration;

use anyhow::Context;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use steward_wire::events::{RESET, StreamEvent};

use crate::client::Client;

/// Longest wait between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A follower of the stream at `path` (`/api/v1/events?…`): [`Follower::next`] answers its events
/// one by one, reconnecting as needed. A `reset` event is answered too: what the caller shows
/// should be reloaded.
pub struct Follower<'c> {
    client: &'c Client,
    path: String,
    last_id: Option<String>,
    backoff: Duration,
    events: Option<std::pin::Pin<Box<dyn futures_util::Stream<Item = SseResult> + Send>>>,
}

type SseResult =
    Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>;

impl<'c> Follower<'c> {
    /// A follower of the stream at `path` (its query already encoded).
    pub fn new(client: &'c Client, path: &str) -> Self {
        Self {
            client,
            path: path.to_owned(),
            last_id: None,
            backoff: Duration::from_millis(250),
            events: None,
        }
    }

    /// The next event. Fails when the server refuses the request (a bad key, an unknown type)
    /// or sends something that is not an event.
    pub async fn next(&mut self) -> anyhow::Result<StreamEvent> {
        loop {
            if let Some(events) = self.events.as_mut() {
                match events.next().await {
                    Some(Ok(event)) => {
                        if event.data.is_empty() {
                            continue;
                        }
                        if !event.id.is_empty() {
                            self.last_id = Some(event.id.clone());
                        }
                        return serde_json::from_str(&event.data).with_context(|| {
                            format!("the server sent an unreadable `{}` event", event.event)
                        });
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "event stream broken; reconnecting");
                        self.events = None;
                    }
                    None => self.events = None,
                }
                continue;
            }
            match self
                .client
                .stream_request(&self.path, self.last_id.as_deref())
                .await
            {
                Ok(response) => {
                    self.backoff = Duration::from_millis(250);
                    self.events = Some(Box::pin(response.bytes_stream().eventsource()));
                }
                Err(Refused::Permanent(error)) => return Err(error),
                Err(Refused::Passing(error)) => {
                    eprintln!("{error:#}; retrying in {} ms", self.backoff.as_millis());
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Whether a failed request is worth repeating.
pub enum Refused {
    /// The server cannot be reached or is busy: try again.
    Passing(anyhow::Error),
    /// The request itself is refused (4xx): repeating it changes nothing.
    Permanent(anyhow::Error),
}

impl Client {
    /// Opens a stream at `path`, sending `last_id` as `Last-Event-ID`.
    pub async fn stream_request(
        &self,
        path: &str,
        last_id: Option<&str>,
    ) -> Result<reqwest::Response, Refused> {
        let mut request = self.get_stream(path);
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url(path)))
            .map_err(Refused::Passing)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        let error = anyhow::anyhow!("GET {path}: {}", crate::client::refusal(status, &body));
        if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(Refused::Permanent(error))
        } else {
            Err(Refused::Passing(error))
        }
    }
}

/// Whether `event` tells the client to reload.
pub fn is_reset(event: &StreamEvent) -> bool {
    event.kind == RESET
}
