//! Time limits on what a client sends: a request body must keep up a minimum rate, so a
//! client trickling bytes cannot hold a connection (and its place under the cap) for the whole
//! request timeout.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How a body's pace is judged: after `grace`, it must have delivered `bytes_per_second` for
/// every second since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Time a body may take before the rate applies (a slow start, a pause for a large frame).
    pub grace: Duration,
    /// The average rate a body must keep up after the grace.
    pub bytes_per_second: u64,
}

impl MinRate {
    /// When the body must have delivered more than `received` bytes, counted from `started`.
    fn deadline(&self, started: Instant, received: u64) -> Instant {
        let earned_ms = received
            .saturating_mul(1000)
            .checked_div(self.bytes_per_second)
            .unwrap_or(u64::MAX);
        // Far beyond any request timeout: saturate instead of overflowing `Instant`.
        let earned = Duration::from_millis(earned_ms.min(u64::from(u32::MAX)));
        started + self.grace + earned
    }
}

/// A body refused for arriving under its minimum rate.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived under {bytes_per_second} bytes per second")]
pub struct BodyTooSlow {
    /// The rate it had to keep.
    pub bytes_per_second: u64,
}

/// A request body that fails with [`BodyTooSlow`] when it falls behind its [`MinRate`].
pub struct MinRateBody<B> {
    inner: B,
    rate: MinRate,
    started: Instant,
    received: u64,
    /// Set the first time the body is not ready: most bodies (and every empty one) never
    /// wait, and so never cost a timer.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> MinRateBody<B> {
    /// Wraps `inner`, starting its clock now.
    pub fn new(inner: B, rate: MinRate) -> Self {
        Self {
            inner,
            rate,
            started: Instant::now(),
            received: 0,
            deadline: None,
        }
    }

    /// The timer for the bytes received so far, set or moved.
    fn deadline(&mut self) -> Pin<&mut Sleep> {
        let at = self.rate.deadline(self.started, self.received);
        let sleep = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        sleep.as_mut()
    }
}

impl<B> Body for MinRateBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                    bytes_per_second: this.rate.bytes_per_second,
                })))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn rate() -> MinRate {
        MinRate {
            grace: Duration::from_millis(200),
            bytes_per_second: 1000,
        }
    }

    #[test]
    fn the_deadline_grows_with_what_arrived_and_never_overflows() {
        let start = Instant::now();
        let rate = rate();
        assert_eq!(rate.deadline(start, 0), start + Duration::from_millis(200));
        assert_eq!(
            rate.deadline(start, 500),
            start + Duration::from_millis(700)
        );
        let far = rate.deadline(start, u64::MAX);
        assert!(far > start + Duration::from_secs(86_400));
        let stopped = MinRate {
            bytes_per_second: 0,
            ..rate
        };
        assert!(stopped.deadline(start, 1) > start + Duration::from_secs(86_400));
    }

    /// A body of `chunks`, each sent after `pause`.
    fn paced(
        chunks: usize,
        pause: Duration,
    ) -> MinRateBody<impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin> {
        let stream = futures_util::stream::unfold(0, move |sent| async move {
            if sent == chunks {
                return None;
            }
            tokio::time::sleep(pause).await;
            let frame: Result<Frame<Bytes>, std::convert::Infallible> =
                Ok(Frame::data(Bytes::from(vec![b'x'; 100])));
            Some((frame, sent + 1))
        });
        MinRateBody::new(StreamBody::new(Box::pin(stream)), rate())
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_keeping_up_arrives_whole() {
        // 100 bytes every 50 ms is 2,000 bytes per second.
        let body = paced(20, Duration::from_millis(50))
            .collect()
            .await
            .unwrap();
        assert_eq!(body.to_bytes().len(), 2000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_is_cut_once_it_falls_behind() {
        // 100 bytes every 300 ms is 333 bytes per second.
        let error = paced(20, Duration::from_millis(300))
            .collect()
            .await
            .err()
            .unwrap();
        assert!(error.is::<BodyTooSlow>(), "{error}");
    }
}
