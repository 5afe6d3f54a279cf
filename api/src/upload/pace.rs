//! A floor under the rate at which a chunk body arrives, as Apache's `mod_reqtimeout`
//! sets one (`body=20,MinRate=500`): the body must be complete within a grace period
//! plus one second per `min_bytes_per_sec` bytes received. A stalled body and a body
//! trickled a byte at a time both fall behind and are cut off, so a client cannot
//! hold an intake slot (and its staging file) by sending slowly; an honest slow link
//! is far above the floor. See docs/SECURITY.md.
//!
//! tower-http's `RequestBodyTimeoutLayer` only bounds the gap between two frames,
//! which a trickle of one byte every few seconds never exceeds; hence this adapter.
//!
//! Every body the API reads goes under the floor: chunk bodies as they stream
//! (`super::intake`), small ones (login, the completing POST, the admin forms and JSON)
//! read whole by [`read_whole`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

/// The floor: `grace`, then at least `min_bytes_per_sec` on average.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    pub grace: Duration,
    pub min_bytes_per_sec: u64,
}

impl BodyPace {
    /// The configured floor: `api.body_read_timeout_secs`, then
    /// `api.body_min_rate_bytes_per_sec`.
    pub fn of(api: &ferry_shared::config::ApiConfig) -> BodyPace {
        BodyPace {
            grace: Duration::from_secs(api.body_read_timeout_secs),
            min_bytes_per_sec: api.body_min_rate_bytes_per_sec,
        }
    }

    /// The 408 `body_too_slow` for a body that fell behind this floor (the connection
    /// is then closed, `ApiError::RequestTimeout`).
    pub fn too_slow(&self) -> ApiError {
        ApiError::RequestTimeout {
            code: "body_too_slow",
            detail: format!(
                "The request body arrived too slowly: it must be complete within {} s plus 1 s per {} bytes.",
                self.grace.as_secs(),
                self.min_bytes_per_sec
            ),
        }
    }

    /// When `received` bytes must have arrived, for a body that began at `started`.
    fn deadline(&self, started: Instant, received: u64) -> Instant {
        let earned = Duration::from_secs_f64(received as f64 / self.min_bytes_per_sec.max(1) as f64);
        started + self.grace + earned
    }
}

/// Why a paced body stopped.
#[derive(Debug, thiserror::Error)]
pub enum PacedError {
    #[error("the body arrived more slowly than the server's floor")]
    TooSlow,
    #[error("{0}")]
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// Reads a small body whole: at most `limit` bytes, at no less than `pace`.
///
/// # Errors
/// 413 `too_large` past `limit` (at once when `Content-Length` says so), 408
/// `body_too_slow` ([`BodyPace::too_slow`]) for a body that stalls or trickles, 400
/// `incomplete_body` for one that ends before its declared length or cannot be read.
pub async fn read_whole(body: Body, limit: usize, pace: BodyPace) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge {
        detail: format!("This request body is limited to {limit} bytes."),
        limit: limit as u64,
    };
    if usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).map_or(true, |declared| declared > limit) {
        return Err(too_large());
    }
    let mut stream = Paced::new(body.into_data_stream(), pace);
    let mut whole = BytesMut::new();
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(frame) if whole.len() + frame.len() > limit => return Err(too_large()),
            Ok(frame) => whole.extend_from_slice(&frame),
            Err(PacedError::TooSlow) => return Err(pace.too_slow()),
            Err(PacedError::Read(_)) => {
                return Err(ApiError::bad_request(
                    "incomplete_body",
                    "The request body ended before its declared length, or could not be read.",
                ))
            }
        }
    }
    Ok(whole.freeze())
}

/// `inner` under a [`BodyPace`]; once it falls behind, the stream yields
/// [`PacedError::TooSlow`] and sets the flag [`Paced::tripped`] returned.
pub struct Paced<S> {
    inner: S,
    pace: BodyPace,
    started: Instant,
    received: u64,
    sleep: Pin<Box<Sleep>>,
    tripped: Arc<AtomicBool>,
}

impl<S> Paced<S> {
    /// Starts the clock now.
    pub fn new(inner: S, pace: BodyPace) -> Self {
        let started = Instant::now();
        Paced {
            inner,
            pace,
            started,
            received: 0,
            sleep: Box::pin(tokio::time::sleep_until(pace.deadline(started, 0))),
            tripped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Set once the body fell behind: the request failed for its pace, whatever error
    /// the parser above made of it.
    pub fn tripped(&self) -> Arc<AtomicBool> {
        self.tripped.clone()
    }
}

impl<S, E> Stream for Paced<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, PacedError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.tripped.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(PacedError::TooSlow)));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.received += frame.len() as u64;
                let deadline = this.pace.deadline(this.started, this.received);
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(PacedError::Read(error.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.tripped.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(PacedError::TooSlow)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    const PACE: BodyPace = BodyPace { grace: Duration::from_secs(20), min_bytes_per_sec: 500 };

    /// One byte every two seconds (the attack): cut off once the grace and the
    /// few bytes' allowance are spent.
    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_is_cut_off_after_the_grace() {
        let trickle = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
        });
        let mut paced = Paced::new(Box::pin(trickle), PACE);
        let started = Instant::now();
        let mut frames = 0;
        while let Some(item) = paced.next().await {
            match item {
                Ok(_) => frames += 1,
                Err(e) => {
                    assert!(matches!(e, PacedError::TooSlow), "{e}");
                    break;
                }
            }
        }
        assert!(paced.tripped().load(Ordering::Relaxed));
        assert!(started.elapsed() >= Duration::from_secs(20) && started.elapsed() < Duration::from_secs(22));
        assert_eq!(frames, 10);
    }

    /// A steady body above the floor runs to its end however long it takes.
    #[tokio::test(start_paused = true)]
    async fn a_body_above_the_floor_is_never_cut_off() {
        let steady = futures::stream::iter(0..100).then(|_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 600]))
        });
        let paced = Paced::new(Box::pin(steady), PACE);
        let received: Vec<_> = paced.collect().await;
        assert_eq!(received.len(), 100);
        assert!(received.iter().all(Result::is_ok));
    }
}
