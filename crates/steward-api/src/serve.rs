//! The accept loop and each connection's HTTP/1.1 session: admission under the caps
//! ([`crate::listener`]), a deadline for a request's headers, a minimum rate for its body
//! ([`crate::limits`]), and a graceful shutdown that lets requests in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::limits::{MinRate, MinRateBody};
use crate::listener::{Admission, Connection, IdleIo, PeerAddr, Place, Refusal};

/// How each connection is served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// Longest wait for a request's headers, counted from when the connection is ready for
    /// one (also how long an idle keep-alive connection stays open).
    pub header_timeout: Duration,
    /// A connection neither reading nor writing this long is closed.
    pub idle: Duration,
    /// The pace a request body must keep.
    pub body_rate: MinRate,
}

/// Accepts connections on `listener` and serves `app` on each until `shutdown` completes, then
/// waits for the requests in flight.
pub(crate) async fn run(
    listener: TcpListener,
    admission: Arc<Admission>,
    app: Router,
    session: Session,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &admission) => accepted,
        };
        let place = tokio::select! {
            () = &mut shutdown => break,
            admitted = admit(&admission, peer) => match admitted {
                Ok(place) => place,
                Err(refusal) => {
                    // Dropping the stream closes it.
                    metrics::counter!("steward_http_connections_refused_total", "reason" => refusal.as_str())
                        .increment(1);
                    tracing::debug!(peer = %peer.ip(), reason = refusal.as_str(), "connection refused");
                    continue;
                }
            },
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            place,
            app.clone(),
            session,
            stop.clone(),
        ));
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// The next connection, once there is room for one.
async fn accept(listener: &TcpListener, admission: &Admission) -> (TcpStream, SocketAddr) {
    loop {
        admission.room().await;
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A place for a connection from `peer`. While every place is held by a proven connection, it
/// waits for one to close, as connections not yet accepted do.
async fn admit(admission: &Arc<Admission>, peer: SocketAddr) -> Result<Place, Refusal> {
    loop {
        match admission.admit(peer.ip()) {
            Err(Refusal::Busy) => admission.room().await,
            admitted => return admitted,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    place: Place,
    app: Router,
    session: Session,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let place = Arc::new(place);
    let evicted = place.evicted();
    let connection = Connection(Arc::clone(&place));
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(|body| MinRateBody::new(body, session.body_rate));
        request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
        request.extensions_mut().insert(connection.clone());
        app.clone().oneshot(request)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(session.header_timeout);
    let io = TokioIo::new(IdleIo::new(stream, session.idle));
    let served = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                tracing::trace!(%error, peer = %peer.ip(), "connection ended");
            }
        }
        () = evicted => {
            tracing::debug!(peer = %peer.ip(), "connection evicted for a newcomer");
        }
        () = stop.cancelled() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

#[cfg(test)]
mod tests;
