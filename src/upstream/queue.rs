//! An upstream's connection cap (`max_conns`) and the bounded queue in front of it: a request
//! takes a slot before it takes or opens a connection to any of the upstream's servers, and
//! holds it until that connection is released (back to the pool, or closed). Idle pooled
//! connections hold no slot: they cost the app no worker and no listen-backlog room, and a
//! slot is what a request needs to use one. Past the cap, requests wait in FIFO order (tokio's
//! semaphore is fair) for at most `queue_timeout`; past `queue` waiters, they are turned away
//! at once. Both answers are 503 with Retry-After (see `Failure::Overloaded`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::failure::Failure;
use crate::metrics::{QueueMetrics, QueueOutcome};

/// The cap, its queue bound and wait, and the queue's metrics.
#[derive(Debug)]
pub(super) struct Cap {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    bound: usize,
    timeout: Duration,
    metrics: QueueMetrics,
}

/// A request's slot under the cap, given back when dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit); // held for its Drop

impl Cap {
    pub(super) fn new(max: usize, bound: usize, timeout: Duration, metrics: QueueMetrics) -> Cap {
        Cap {
            slots: Arc::new(Semaphore::new(max)),
            waiting: AtomicUsize::new(0),
            bound,
            timeout,
            metrics,
        }
    }

    /// A slot: at once when one is free, else after waiting in the queue. `upstream` names
    /// the upstream in the error.
    pub(super) async fn acquire(&self, upstream: &str) -> Result<Slot, Failure> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(Slot(permit));
        }
        let refused = |outcome: QueueOutcome, why: &'static str| {
            self.metrics.ended(outcome);
            Failure::Overloaded {
                upstream: upstream.to_string(),
                why,
            }
        };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.bound {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(refused(
                QueueOutcome::Full,
                "max_conns reached and the queue is full",
            ));
        }
        let _waiting = Waiting::enter(self);
        let acquire = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(self.timeout, acquire).await {
            Ok(Ok(permit)) => {
                self.metrics.ended(QueueOutcome::Served);
                Ok(Slot(permit))
            }
            // The semaphore is never closed; were it, the request could not go on either.
            Ok(Err(_)) | Err(_) => Err(refused(
                QueueOutcome::Timeout,
                "no connection slot came free within queue_timeout",
            )),
        }
    }
}

/// One request counted in the queue (its place already taken in `waiting`) and its gauge,
/// for as long as it waits, even if the client leaves meanwhile.
struct Waiting<'a>(&'a Cap);

impl<'a> Waiting<'a> {
    fn enter(cap: &'a Cap) -> Waiting<'a> {
        cap.metrics.length.inc();
        Waiting(cap)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.length.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn cap(max: usize, bound: usize) -> Cap {
        let metrics = Metrics::new().upstreams.queue("t");
        Cap::new(max, bound, Duration::from_secs(3600), metrics)
    }

    /// Past the cap a request waits, past the bound it is refused; a freed slot goes to the
    /// first waiter.
    #[tokio::test]
    async fn waits_in_order_then_refuses_past_the_bound() {
        let cap = cap(1, 1);
        let first = cap.acquire("t").await.expect("a free slot");
        let mut waiter = Box::pin(cap.acquire("t"));
        assert!(futures_poll(&mut waiter).await.is_none(), "no slot yet");
        let refused = cap.acquire("t").await.expect_err("queue full");
        assert_eq!(refused.status(), Some(503));
        drop(first);
        let second = waiter.await.expect("the freed slot");
        drop(second);
        assert_eq!(cap.waiting.load(Ordering::Acquire), 0);
    }

    /// Polls `fut` once.
    async fn futures_poll<F: std::future::Future + Unpin>(fut: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *fut).poll(cx) {
            std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }
}
