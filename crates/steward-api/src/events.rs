//! `GET /api/v1/events`: the live event stream as Server-Sent Events, filtered by type,
//! workspace and the key's scope, replaying what a reconnecting client missed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use steward_core::Role;
use steward_engine::stream::{Frame, Opened, Subscription};
use steward_wire::events::{
    Cursor, EVENT_TYPES, EventData, EventsQuery, LOST, RESET, Reset, StreamEvent,
};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::caller::Caller;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// A comment line sent when nothing else was, so proxies and clients see the stream alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Bytes gathered into one write at most.
const CHUNK_BYTES: usize = 64 * 1024;

/// Which frames one client gets.
struct Filter {
    types: Option<HashSet<String>>,
    workspace: Option<String>,
    caller: Caller,
}

impl Filter {
    fn admits(&self, frame: &Frame) -> bool {
        if frame.kind == LOST {
            // Everyone is told that events went missing; it names nothing.
            return true;
        }
        if self
            .types
            .as_ref()
            .is_some_and(|t| !t.contains(&frame.kind))
        {
            return false;
        }
        if frame.audit && !self.caller.principal.has_role(Role::Admin) {
            return false;
        }
        if self
            .workspace
            .as_ref()
            .is_some_and(|w| frame.workspace.as_ref() != Some(w))
        {
            return false;
        }
        self.caller.principal.sees(frame.workspace.as_deref())
    }
}

pub(crate) async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hub = state.events.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "events_unavailable",
            "this instance does not serve the event stream",
        )
    })?;
    let filter = filter(query, caller)?;
    let cursor = last_event_id(&headers)?;
    let opened = hub.subscribe(cursor).await.map_err(|full| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("{full}; try again later"),
        )
    })?;
    let (first, subscription) = match opened {
        Opened::Follow(subscription) => (None, subscription),
        Opened::Reset(subscription, reason) => {
            let head = subscription.head;
            (Some(reset_frame(head, reason)), subscription)
        }
    };
    let body = Body::from_stream(frames(first, subscription, filter, hub.closing()));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx and others buffer answers unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn filter(query: EventsQuery, caller: Caller) -> Result<Filter, ApiError> {
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message);
    let types = match query.types.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(list) => {
            let mut types = HashSet::new();
            for name in list.split(',').map(str::trim) {
                if !EVENT_TYPES.contains(&name) {
                    let shown: String = name.chars().take(40).collect();
                    return Err(invalid(format!(
                        "`types`: `{}` is not an event type (known: {})",
                        shown.escape_debug(),
                        EVENT_TYPES.join(", ")
                    )));
                }
                types.insert(name.to_string());
            }
            if types.contains("audit") && !caller.principal.has_role(Role::Admin) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "`types`: audit events are shown to admin keys only",
                ));
            }
            Some(types)
        }
    };
    if let Some(workspace) = &query.workspace
        && !caller.principal.sees(Some(workspace))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "`workspace`: this key is scoped to another workspace",
        ));
    }
    Ok(Filter {
        types,
        workspace: query.workspace,
        caller,
    })
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<Cursor>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            "`Last-Event-ID` is not visible ASCII",
        )
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e: steward_wire::events::BadCursor| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                format!("`Last-Event-ID`: {e}"),
            )
        })
}

fn reset_frame(head: Cursor, reason: &str) -> Bytes {
    let data = serde_json::to_string(&Reset {
        kind: RESET.into(),
        reason: reason.into(),
    })
    .unwrap_or_else(|_| "{}".into());
    let mut out = Vec::new();
    write_event(&mut out, Some(head), RESET, &data);
    Bytes::from(out)
}

/// Appends one SSE event to `out`: its id (the stream position after it, when it has one), its
/// type and its JSON data on one line.
fn write_event(out: &mut Vec<u8>, id: Option<Cursor>, kind: &str, data: &str) {
    use std::io::Write as _;
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = write!(out, "event: {kind}\ndata: {data}\n\n");
}

fn encode_into(chunk: &mut Vec<u8>, frame: &Frame) {
    write_event(chunk, Some(frame.cursor), &frame.kind, &frame.data);
}

/// A `lost` event for a client that fell `count` events behind. It has no id: the client's
/// position stays that of the last event it got.
fn lost_frame(count: u64) -> Bytes {
    let now = steward_store::now_ms();
    let lost = EventData::Lost {
        count,
        reason: Some("this client read too slowly".into()),
    };
    let event = StreamEvent::new(now, None, None, &lost);
    let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
    let mut out = Vec::new();
    write_event(&mut out, None, LOST, &data);
    Bytes::from(out)
}

struct Feed {
    pending: std::collections::VecDeque<Bytes>,
    replay: std::vec::IntoIter<Arc<Frame>>,
    subscription: Subscription,
    filter: Filter,
    closing: CancellationToken,
}

/// The body: the reset (if any), then the replay, then live frames with keep-alives, until
/// the client goes or the server stops.
fn frames(
    first: Option<Bytes>,
    mut subscription: Subscription,
    filter: Filter,
    closing: CancellationToken,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let replay = std::mem::take(&mut subscription.replay).into_iter();
    // The first bytes go out at once, so the client knows the stream is open.
    let opening = first.unwrap_or_else(|| Bytes::from_static(b": open\n\n"));
    let feed = Feed {
        pending: std::collections::VecDeque::from([opening]),
        replay,
        subscription,
        filter,
        closing,
    };
    futures_util::stream::unfold(feed, |mut feed| async move {
        let next = next_chunk(&mut feed).await?;
        Some((Ok(next), feed))
    })
}

async fn next_chunk(feed: &mut Feed) -> Option<Bytes> {
    if let Some(chunk) = feed.pending.pop_front() {
        return Some(chunk);
    }
    let mut chunk = Vec::new();
    for frame in feed.replay.by_ref() {
        if feed.filter.admits(&frame) {
            encode_into(&mut chunk, &frame);
            if chunk.len() >= CHUNK_BYTES {
                return Some(Bytes::from(chunk));
            }
        }
    }
    if !chunk.is_empty() {
        return Some(Bytes::from(chunk));
    }
    loop {
        let received = tokio::select! {
            () = feed.closing.cancelled() => return None,
            received = tokio::time::timeout(KEEP_ALIVE, feed.subscription.live.recv()) => received,
        };
        match received {
            Err(_) => return Some(Bytes::from_static(b": keep-alive\n\n")),
            Ok(Ok(frame)) => {
                if feed.filter.admits(&frame) {
                    encode_into(&mut chunk, &frame);
                }
                // Events read together go out in one write: one wake-up and one syscall per
                // batch the hub hands out, not per event.
                gather_ready(feed, &mut chunk);
                if !chunk.is_empty() {
                    return Some(Bytes::from(chunk));
                }
            }
            Ok(Err(RecvError::Lagged(count))) => {
                metrics::counter!("steward_event_stream_lagged_total").increment(count);
                return Some(lost_frame(count));
            }
            Ok(Err(RecvError::Closed)) => return None,
        }
    }
}

/// Adds the frames already waiting to `chunk`, up to [`CHUNK_BYTES`]; a lag found on the way
/// is reported next.
fn gather_ready(feed: &mut Feed, chunk: &mut Vec<u8>) {
    while chunk.len() < CHUNK_BYTES {
        match feed.subscription.live.try_recv() {
            Ok(frame) => {
                if feed.filter.admits(&frame) {
                    encode_into(chunk, &frame);
                }
            }
            Err(TryRecvError::Lagged(count)) => {
                metrics::counter!("steward_event_stream_lagged_total").increment(count);
                feed.pending.push_back(lost_frame(count));
                return;
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]
    use steward_store::prelude::*;

    use std::net::{IpAddr, Ipv4Addr};

    use steward_core::auth::Principal;
    use steward_engine::stream::{EventHub, HubOptions};
    use steward_store::Store;
    use steward_store::events::NewLoggedEvent;

    use super::*;

    fn admin() -> Caller {
        Caller {
            principal: Principal {
                name: "admin".into(),
                role: Role::Admin,
                workspace: None,
                node: None,
            },
            ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        }
    }

    async fn append(store: &Arc<dyn Store>, n: usize) {
        let events: Vec<NewLoggedEvent> = (0..n)
            .map(|i| NewLoggedEvent {
                at_ms: steward_store::now_ms(),
                kind: "task_changed".into(),
                workspace: None,
                body: format!(r#"{{"type":"task_changed","i":{i}}}"#),
            })
            .collect();
        store.append_events(&events).await.unwrap();
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_told_how_many_events_it_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = steward_store_sqlite::SqliteStore::open(dir.path())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let options = HubOptions {
            lag: 4,
            ..HubOptions::default()
        };
        let hub = EventHub::open(Arc::clone(&store), options).await.unwrap();
        let Opened::Follow(subscription) = hub.subscribe(None).await.unwrap() else {
            panic!("a new client follows");
        };
        let filter = filter(
            EventsQuery {
                types: None,
                workspace: None,
            },
            admin(),
        )
        .unwrap();
        let mut feed = Feed {
            pending: std::collections::VecDeque::new(),
            replay: Vec::new().into_iter(),
            subscription,
            filter,
            closing: hub.closing(),
        };
        // Ten events while the client reads nothing: its buffer holds four.
        append(&store, 10).await;
        hub.catch_up().await.unwrap();
        let first = String::from_utf8(next_chunk(&mut feed).await.unwrap().to_vec()).unwrap();
        assert!(first.starts_with("event: lost\n"), "{first}");
        assert!(first.contains(r#""count":6"#), "{first}");
        let rest = String::from_utf8(next_chunk(&mut feed).await.unwrap().to_vec()).unwrap();
        assert_eq!(
            rest.matches("event: task_changed").count(),
            4,
            "the newest four, in one write: {rest}"
        );
        assert!(rest.contains(r#""i":9"#));
    }

    #[test]
    fn unknown_types_and_audit_for_viewers_are_refused() {
        let query = |types: &str| EventsQuery {
            types: Some(types.into()),
            workspace: None,
        };
        let error = filter(query("task_changed,bogus"), admin()).err().unwrap();
        assert_eq!(error.code(), "invalid_query");
        let mut viewer = admin();
        viewer.principal.role = Role::Viewer;
        let error = filter(query("audit"), viewer).err().unwrap();
        assert_eq!(error.code(), "forbidden");
        assert!(filter(query(" task_changed , check_changed "), admin()).is_ok());
    }
}
