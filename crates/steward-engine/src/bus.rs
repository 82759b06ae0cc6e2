//! The in-process event bus: every state change is published here, feeding logs, metrics and
//! the stream's relay.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use steward_core::Event;
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it starts missing some (it is told
/// how many it missed). Ten thousand schedules firing in the same second publish as many
/// events at once.
const CAPACITY: usize = 16_384;

/// An event with its sequence number (per process) and publication time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Increases by one per event published by this process.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub event: Event,
}

/// A cloneable handle to the bus.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Envelope>,
    seq: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        Self {
            sender,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Publishes an event; having no subscriber is not an error.
    pub fn publish(&self, event: Event) -> Envelope {
        let envelope = Envelope {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            event,
        };
        metrics::counter!("steward_events_published_total").increment(1);
        let _ = self.sender.send(envelope.clone());
        envelope
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_events_in_order_with_increasing_sequence_numbers() {
        let bus = EventBus::new();
        bus.publish(Event::ConfigRejected { problems: 0 }); // nobody listening: fine
        let mut rx = bus.subscribe();
        bus.publish(Event::ConfigRejected { problems: 1 });
        bus.publish(Event::ConfigRejected { problems: 2 });
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!((a.seq, b.seq), (2, 3));
        assert_eq!(b.event, Event::ConfigRejected { problems: 2 });
    }
}
