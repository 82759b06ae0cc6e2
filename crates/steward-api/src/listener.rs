//! A TCP listener that caps open connections: past the cap, new connections wait in the
//! kernel's backlog until one closes, instead of each taking memory and a task. One address
//! may hold only so many of them (further ones from it are closed at once), so a single client
//! cannot take every place; and a connection that neither reads nor writes for the idle time
//! is closed, so silent clients cannot hold places either.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections open per address.
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Accepts at most `max` connections at a time, and `per_address` from one address.
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    per_address: usize,
    open: PerAddress,
    idle: Duration,
}

impl LimitedListener {
    /// Wraps `inner`: at most `max` connections, `per_address` of them from one address, each
    /// closed after `idle` without reading or writing anything.
    pub fn new(inner: TcpListener, max: usize, per_address: usize, idle: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max.max(1))),
            per_address: per_address.max(1),
            open: Arc::default(),
            idle,
        }
    }

    /// Takes a place for a connection from `ip`, unless it holds all of its places already.
    fn admit(&self, ip: IpAddr) -> Option<AddressPlace> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            open: Arc::clone(&self.open),
            ip,
        })
    }
}

/// A connection's place among its address's; given back when the connection is dropped.
struct AddressPlace {
    open: PerAddress,
    ip: IpAddr,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A connection holding its place under the caps until it is dropped or falls idle.
pub struct LimitedIo {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    _place: AddressPlace,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl LimitedIo {
    /// Moves the idle deadline: the connection did something.
    fn active(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// An error once the connection has been idle too long (the server then drops it).
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.deadline
            .as_mut()
            .poll(cx)
            .is_ready()
            .then(|| io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long"))
    }
}

/// The peer's address, as handlers and middleware see it.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, LimitedListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so acquiring only waits.
        let permit = loop {
            if let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await {
                break permit;
            }
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let Some(place) = self.admit(addr.ip()) else {
                        // Dropping the stream closes it; the place under the cap stays ours.
                        metrics::counter!("steward_http_connections_refused_total", "reason" => "per_address")
                            .increment(1);
                        tracing::debug!(peer = %addr.ip(), "too many connections from one address");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let deadline = Box::pin(tokio::time::sleep(self.idle));
                    let io = LimitedIo {
                        stream,
                        _permit: permit,
                        _place: place,
                        idle: self.idle,
                        deadline,
                    };
                    return (io, addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for LimitedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.check_idle(cx) {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
            ready => ready,
        }
    }
}

impl AsyncWrite for LimitedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.active();
                Poll::Ready(Ok(n))
            }
            // A client that stops reading holds the place as surely as one that stops writing.
            Poll::Pending => match this.check_idle(cx) {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.active();
                Poll::Ready(Ok(n))
            }
            Poll::Pending => match this.check_idle(cx) {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    //! Real sockets on loopback against `axum::serve`.

    use super::*;
    use std::io::{Read, Write};

    /// Serves a one-route app on loopback with these limits; answers its address.
    async fn serve(max: usize, per_address: usize, idle: Duration) -> SocketAddr {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = LimitedListener::new(inner, max, per_address, idle);
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    /// Whether the server closed `stream` within `within` (reads end or fail).
    fn closed_within(stream: &mut std::net::TcpStream, within: Duration) -> bool {
        stream.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    fn get(stream: &mut std::net::TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_connection_is_closed_after_the_idle_time_and_a_busy_one_is_not() {
        let addr = serve(16, 16, Duration::from_millis(400)).await;
        tokio::task::spawn_blocking(move || {
            let mut silent = std::net::TcpStream::connect(addr).unwrap();
            let mut busy = std::net::TcpStream::connect(addr).unwrap();
            // The busy one keeps asking, much more often than the idle time.
            for _ in 0..8 {
                assert!(get(&mut busy).starts_with("HTTP/1.1 200"));
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                closed_within(&mut silent, Duration::from_millis(500)),
                "silent for over 800 ms: closed"
            );
            assert!(get(&mut busy).starts_with("HTTP/1.1 200"), "still open");
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_address_holds_at_most_its_share_of_connections() {
        let addr = serve(16, 2, Duration::from_secs(30)).await;
        tokio::task::spawn_blocking(move || {
            let mut first = std::net::TcpStream::connect(addr).unwrap();
            let mut second = std::net::TcpStream::connect(addr).unwrap();
            assert!(get(&mut first).starts_with("HTTP/1.1 200"));
            assert!(get(&mut second).starts_with("HTTP/1.1 200"));
            let mut third = std::net::TcpStream::connect(addr).unwrap();
            assert!(
                closed_within(&mut third, Duration::from_secs(2)),
                "a third from the same address is closed"
            );
            assert!(
                get(&mut first).starts_with("HTTP/1.1 200"),
                "the others stay"
            );
            drop(second);
            // Its place is given back once the server sees it closed.
            let mut again = None;
            for _ in 0..50 {
                let mut next = std::net::TcpStream::connect(addr).unwrap();
                if !closed_within(&mut next, Duration::from_millis(100)) {
                    again = Some(next);
                    break;
                }
            }
            let mut again = again.expect("a place comes free");
            assert!(get(&mut again).starts_with("HTTP/1.1 200"));
        })
        .await
        .unwrap();
    }
}
