//! Who gets a connection: a cap on open connections, a share per address, and room kept for
//! newcomers when the cap is reached.
//!
//! Addresses are counted as the caller's IPv4 address or IPv6 /64 (one host usually holds a
//! whole /64). A connection is *proven* once it carried a request with a valid key; until then
//! it may be evicted. When every place is taken, a connection from an address holding fewer
//! places than the address holding the most unproven ones takes the oldest of those: a few
//! addresses trickling headers (slowloris) can fill the cap, but never keep out a caller from
//! elsewhere — a health check, an operator with a key. A newcomer from the address holding the
//! most is refused at once instead. Only when every place is held by proven connections do new
//! ones wait in the kernel's backlog.
//!
//! A connection that neither reads nor writes for the idle time is closed as well, so a client
//! that stops reading its answer cannot hold a place either.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// What places are counted against: an IPv4 address, or an IPv6 /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds `max_connections_per_address` already.
    PerAddress,
    /// Every place is taken and its address holds as many as any other: it would take more
    /// than its share.
    FairShare,
    /// Every place is held by a proven connection: nothing can make room but one closing.
    Busy,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per_address",
            Refusal::FairShare => "fair_share",
            Refusal::Busy => "busy",
        }
    }
}

/// One open connection, as the places know it.
struct Held {
    proven: bool,
    evict: Arc<Notify>,
}

/// The connections of one address, oldest first.
#[derive(Default)]
struct Holder {
    connections: BTreeMap<u64, Held>,
    unproven: usize,
}

#[derive(Default)]
struct Places {
    next_id: u64,
    open: usize,
    by_address: HashMap<IpAddr, Holder>,
}

impl Places {
    /// The address with the most unproven connections, and how many.
    fn largest_unproven(&self) -> Option<(IpAddr, usize)> {
        self.by_address
            .iter()
            .filter(|(_, holder)| holder.unproven > 0)
            .map(|(key, holder)| (*key, holder.unproven))
            .max_by_key(|(_, unproven)| *unproven)
    }

    /// Closes the oldest unproven connection of `key`.
    fn evict_oldest_of(&mut self, key: IpAddr) {
        let oldest = self.by_address.get(&key).and_then(|holder| {
            holder
                .connections
                .iter()
                .find(|(_, held)| !held.proven)
                .map(|(id, _)| *id)
        });
        if let Some(held) = oldest.and_then(|id| self.remove(key, id)) {
            held.evict.notify_one();
        }
    }

    /// Gives a connection's place back. An evicted connection was counted out when it was
    /// evicted, so its own release finds nothing.
    fn release(&mut self, key: IpAddr, id: u64) {
        self.remove(key, id);
    }

    /// Counts a connection out of its address's and the total.
    fn remove(&mut self, key: IpAddr, id: u64) -> Option<Held> {
        let holder = self.by_address.get_mut(&key)?;
        let held = holder.connections.remove(&id)?;
        if !held.proven {
            holder.unproven -= 1;
        }
        self.open -= 1;
        if holder.connections.is_empty() {
            self.by_address.remove(&key);
        }
        Some(held)
    }

    fn prove(&mut self, key: IpAddr, id: u64) {
        if let Some(holder) = self.by_address.get_mut(&key)
            && let Some(held) = holder.connections.get_mut(&id)
            && !held.proven
        {
            held.proven = true;
            holder.unproven -= 1;
        }
    }
}

/// The places under the connection caps, shared by the accept loop and the connections.
pub struct Admission {
    max: usize,
    per_address: usize,
    places: Mutex<Places>,
    freed: Notify,
}

impl Admission {
    /// At most `max` connections, `per_address` of them from one address.
    pub fn new(max: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            per_address: per_address.max(1),
            places: Mutex::default(),
            freed: Notify::new(),
        })
    }

    fn places(&self) -> MutexGuard<'_, Places> {
        self.places.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until a new connection could be admitted: a place is free, or some connection
    /// could be evicted for it. While every place is held by proven connections, new ones wait
    /// in the kernel's backlog.
    pub async fn room(&self) {
        loop {
            let freed = self.freed.notified();
            {
                let places = self.places();
                if places.open < self.max || places.largest_unproven().is_some() {
                    return;
                }
            }
            freed.await;
        }
    }

    /// Takes a place for a connection from `ip`, evicting another address's oldest unproven
    /// connection when every place is taken.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Place, Refusal> {
        let key = address_key(ip);
        let mut places = self.places();
        let held = places
            .by_address
            .get(&key)
            .map_or(0, |h| h.connections.len());
        if held >= self.per_address {
            return Err(Refusal::PerAddress);
        }
        if places.open >= self.max {
            match places.largest_unproven() {
                Some((victim, unproven)) if victim != key && unproven > held => {
                    places.evict_oldest_of(victim);
                    metrics::counter!("steward_http_connections_evicted_total").increment(1);
                }
                Some(_) => return Err(Refusal::FairShare),
                None => return Err(Refusal::Busy),
            }
        }
        let id = places.next_id;
        places.next_id += 1;
        places.open += 1;
        let evict = Arc::new(Notify::new());
        let holder = places.by_address.entry(key).or_default();
        holder.connections.insert(
            id,
            Held {
                proven: false,
                evict: Arc::clone(&evict),
            },
        );
        holder.unproven += 1;
        metrics::gauge!("steward_http_connections").set(places.open as f64);
        Ok(Place {
            admission: Arc::clone(self),
            key,
            id,
            evict,
            proven: AtomicBool::new(false),
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.places().open
    }
}

/// A connection's place; given back when dropped.
pub struct Place {
    admission: Arc<Admission>,
    key: IpAddr,
    id: u64,
    evict: Arc<Notify>,
    /// Proven already: the places' lock is taken once per connection, not once per request.
    proven: AtomicBool,
}

impl Place {
    /// The connection carried a request with a valid key: it is not evicted for newcomers.
    pub fn prove(&self) {
        if !self.proven.swap(true, Ordering::Relaxed) {
            self.admission.places().prove(self.key, self.id);
        }
    }

    /// Completes when the connection was evicted to make room for a newcomer.
    pub fn evicted(&self) -> impl Future<Output = ()> + Send + 'static {
        let evict = Arc::clone(&self.evict);
        async move { evict.notified().await }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let open = {
            let mut places = self.admission.places();
            places.release(self.key, self.id);
            places.open
        };
        metrics::gauge!("steward_http_connections").set(open as f64);
        self.admission.freed.notify_waiters();
    }
}

/// The peer's address, as handlers and middleware see it.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The connection a request came on, as the authorisation middleware sees it.
#[derive(Clone)]
pub struct Connection(pub Arc<Place>);

/// A connection that is closed after `idle` without reading or writing anything.
pub struct IdleIo {
    stream: TcpStream,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl IdleIo {
    /// Wraps `stream`, closing it after `idle` without traffic.
    pub fn new(stream: TcpStream, idle: Duration) -> Self {
        Self {
            stream,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

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

impl AsyncRead for IdleIo {
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

impl AsyncWrite for IdleIo {
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
mod tests;
