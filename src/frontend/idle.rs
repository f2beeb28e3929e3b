//! The connection limit (`server.max_connections`) and the idle connections it may close to
//! make room, as nginx reuses idle keep-alive connections: when an accept loop has a new
//! client and no permit is free, it closes the connection that has been idle longest (across
//! every connection worker) and takes the permit that frees.
//!
//! "Idle" is an HTTP/1.1 connection waiting for a request head of which no byte has arrived:
//! after a response, and a new connection that has sent nothing yet (nginx counts both). A
//! connection reading a head, a body, waiting on the app or sending is never in the list;
//! neither is a TLS handshake or an HTTP/2 connection.
//!
//! Each worker has its own list (a lock only its own connections take on the hot path; an
//! accept loop at the limit takes every worker's). A connection's `state` decides races
//! without the lock: the connection flips IDLE → BUSY before every attempt to read and back
//! to IDLE if nothing came, the accept loop flips IDLE → CLOSING, and whichever flip wins
//! holds. A connection that finds CLOSING closes without reading, so one picked to close has
//! never taken a byte of a request; one picked while it reads is passed over.
//!
//! What happens next: the accept loop spawns the connection (`conn::serve`), which watches
//! its reads through `Slot::watch`.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use prometheus::IntCounter;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Serving something, or about to read (the connection's own flip).
const BUSY: u8 = 0;
/// Waiting for a request with nothing of it read: may be closed.
const IDLE: u8 = 1;
/// Picked to close by an accept loop: the connection closes without reading.
const CLOSING: u8 = 2;

/// How often one reclaim looks again after the connection it picked started reading.
const ATTEMPTS: usize = 8;

/// One accept loop's handle on the connection limit shared by every loop.
#[derive(Clone)]
pub struct Limit {
    shared: Arc<LimitState>,
    /// The connection worker this loop runs on: its connections go in that worker's list.
    worker: usize,
}

struct LimitState {
    permits: Arc<Semaphore>,
    /// One list per connection worker.
    lists: Box<[Mutex<List>]>,
    /// Accept loops waiting for a permit.
    waiting: AtomicUsize,
    /// Connections picked to close that have not released their permit yet.
    closing: AtomicUsize,
    /// Woken when a connection becomes idle while a loop waits.
    idle: Notify,
    reclaimed: IntCounter,
}

impl Limit {
    /// A limit of `max` connections over `workers` connection workers; this handle is
    /// worker 0's (`for_worker` gives the others). `reclaimed` counts the idle connections
    /// closed to make room.
    pub fn new(max: usize, workers: usize, reclaimed: IntCounter) -> Limit {
        let lists = (0..workers.max(1))
            .map(|_| Mutex::new(List::new()))
            .collect();
        Limit {
            shared: Arc::new(LimitState {
                permits: Arc::new(Semaphore::new(max)),
                lists,
                waiting: AtomicUsize::new(0),
                closing: AtomicUsize::new(0),
                idle: Notify::new(),
                reclaimed,
            }),
            worker: 0,
        }
    }

    /// The handle for the accept loops of connection worker `worker`.
    pub fn for_worker(&self, worker: usize) -> Limit {
        Limit {
            shared: Arc::clone(&self.shared),
            worker: worker % self.shared.lists.len(),
        }
    }

    /// A permit for one connection: at once if one is free; otherwise after closing an idle
    /// connection (the one idle longest), or when one frees. `None` on shutdown.
    pub async fn acquire(&self, shutdown: &CancellationToken) -> Option<Slot> {
        let permit = match Arc::clone(&self.shared.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self.acquire_at_limit(shutdown).await?,
        };
        Some(Slot {
            limit: self.clone(),
            state: Arc::new(AtomicU8::new(BUSY)),
            permit: Some(permit),
        })
    }

    async fn acquire_at_limit(&self, shutdown: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        let shared = &*self.shared;
        // Queued first: the semaphore hands a released permit to the loops queued for one,
        // so the permit of a connection closed for this loop is not taken by a later accept.
        let mut acquire = pin!(Arc::clone(&shared.permits).acquire_owned());
        let _waiting = Waiting::new(&shared.waiting);
        loop {
            let mut idle = pin!(shared.idle.notified());
            idle.as_mut().enable();
            // Looked at before every reclaim: a closed connection hands its permit to the
            // queue before it leaves the closing count (`Slot::drop`), so a loop that sees
            // the count drop finds the permit here instead of closing one more connection.
            if let Poll::Ready(permit) = poll_fn(|cx| Poll::Ready(acquire.as_mut().poll(cx))).await
            {
                return permit.ok();
            }
            shared.reclaim();
            tokio::select! {
                permit = acquire.as_mut() => return permit.ok(),
                () = idle => {}
                () = shutdown.cancelled() => return None,
            }
        }
    }
}

impl LimitState {
    /// Closes the connection idle longest if fewer connections are closing than loops wait.
    fn reclaim(&self) {
        // Every list at once (in order; a connection only ever holds its own), so that a
        // connection picked here is still in the idle period it was listed for.
        let lists: Vec<MutexGuard<'_, List>> = self.lists.iter().map(lock).collect();
        if self.closing.load(SeqCst) >= self.waiting.load(SeqCst) {
            return;
        }
        for _ in 0..ATTEMPTS {
            let Some(node) = lists
                .iter()
                .filter_map(|list| list.oldest_idle())
                .min_by_key(|node| node.since)
            else {
                return;
            };
            let Some((state, waker)) = &node.conn else {
                return;
            };
            // Counted before the flip: the connection releases it once it sees CLOSING.
            self.closing.fetch_add(1, SeqCst);
            if state
                .compare_exchange(IDLE, CLOSING, SeqCst, SeqCst)
                .is_ok()
            {
                waker.wake_by_ref();
                self.reclaimed.inc();
                tracing::debug!(
                    idle_for = ?node.since.elapsed(),
                    "at max_connections: closing the connection idle longest"
                );
                return;
            }
            // It started reading just now: it is BUSY and passed over on the next look.
            self.closing.fetch_sub(1, SeqCst);
        }
    }

    /// A connection became idle: a loop waiting for a permit may close it.
    fn became_idle(&self) {
        if self.waiting.load(SeqCst) > 0 {
            self.idle.notify_waiters();
        }
    }
}

fn lock(list: &Mutex<List>) -> MutexGuard<'_, List> {
    list.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts one accept loop in `waiting` while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// One connection's permit and its place in its worker's idle list; dropping it frees the
/// permit.
pub struct Slot {
    limit: Limit,
    state: Arc<AtomicU8>,
    /// `Some` until the slot is dropped.
    permit: Option<OwnedSemaphorePermit>,
}

/// The connection was picked to close while idle; it has read nothing of a request.
#[derive(Debug)]
pub struct Reclaimed;

impl Slot {
    /// Awaits `read`, the read of a request's first bytes when `idle` (nothing of the head
    /// has arrived, the connection has been waiting since `since`), during which the
    /// connection may be picked to close: then `Err(Reclaimed)`, and `read` was not polled
    /// after the pick. When not `idle`, just awaits `read`. `read` must not be ready without
    /// having taken bytes or seen the end of the stream (a socket read is such).
    pub async fn watch<F: Future>(
        &self,
        idle: bool,
        since: Instant,
        read: F,
    ) -> Result<F::Output, Reclaimed> {
        if !idle {
            return Ok(read.await);
        }
        let mut read = pin!(read);
        let mut listed = Listed {
            slot: self,
            node: None,
        };
        let shared = &*self.limit.shared;
        poll_fn(|cx| {
            if listed.node.is_none() {
                // This task's waker is the one to wake: the future is awaited in one task.
                let mut list = lock(&shared.lists[self.limit.worker]);
                // CLOSING stays: picked during an earlier wait that ended on a timer.
                if self
                    .state
                    .compare_exchange(BUSY, IDLE, SeqCst, SeqCst)
                    .is_err()
                {
                    return Poll::Ready(Err(Reclaimed));
                }
                listed.node = Some(list.push(since, Arc::clone(&self.state), cx.waker().clone()));
            }
            if self
                .state
                .compare_exchange(IDLE, BUSY, SeqCst, SeqCst)
                .is_err()
            {
                return Poll::Ready(Err(Reclaimed));
            }
            match read.as_mut().poll(cx) {
                Poll::Ready(out) => Poll::Ready(Ok(out)),
                Poll::Pending => {
                    self.state.store(IDLE, SeqCst);
                    shared.became_idle();
                    Poll::Pending
                }
            }
        })
        .await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let closing = self.state.load(SeqCst) == CLOSING;
        // The permit goes to the loops queued for one first, the count after: a loop that
        // sees the count drop finds the permit already handed to the queue.
        drop(self.permit.take());
        if closing {
            self.limit.shared.closing.fetch_sub(1, SeqCst);
        }
    }
}

/// A connection's node in its worker's list while it waits; removed on drop.
struct Listed<'a> {
    slot: &'a Slot,
    node: Option<usize>,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        let Some(node) = self.node else { return };
        let limit = &self.slot.limit;
        lock(&limit.shared.lists[limit.worker]).remove(node);
        // Not closeable any more (a pick needs the node, so none can come after this).
        let _ = self.slot.state.compare_exchange(IDLE, BUSY, SeqCst, SeqCst);
    }
}

const NIL: usize = usize::MAX;

/// The idle connections of one worker, oldest first: a doubly linked list over a vector of
/// nodes reused through a free list, so entering and leaving idle allocates nothing once the
/// vector has grown to the most connections ever idle at once.
struct List {
    nodes: Vec<Node>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
}

struct Node {
    /// Since when the connection has been waiting.
    since: Instant,
    /// Its state and its task's waker; `None` while the node is free.
    conn: Option<(Arc<AtomicU8>, Waker)>,
    prev: usize,
    next: usize,
}

impl List {
    fn new() -> List {
        List {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Appends a connection (the newest idle); returns its node.
    fn push(&mut self, since: Instant, state: Arc<AtomicU8>, waker: Waker) -> usize {
        let node = Node {
            since,
            conn: Some((state, waker)),
            prev: self.tail,
            next: NIL,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.nodes[at] = node;
                at
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        match self.tail {
            NIL => self.head = at,
            tail => self.nodes[tail].next = at,
        }
        self.tail = at;
        at
    }

    fn remove(&mut self, at: usize) {
        let (prev, next) = (self.nodes[at].prev, self.nodes[at].next);
        match prev {
            NIL => self.head = next,
            prev => self.nodes[prev].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.nodes[next].prev = prev,
        }
        self.nodes[at].conn = None;
        self.free.push(at);
    }

    /// The first connection in the list that is idle now (those before it are reading or
    /// closing, and leave the list on their own).
    fn oldest_idle(&self) -> Option<&Node> {
        let mut at = self.head;
        while at != NIL {
            let node = &self.nodes[at];
            if node
                .conn
                .as_ref()
                .is_some_and(|(state, _)| state.load(SeqCst) == IDLE)
            {
                return Some(node);
            }
            at = node.next;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn counter() -> IntCounter {
        IntCounter::new("reclaimed", "test").unwrap()
    }

    fn node(list: &mut List, since: Instant) -> (usize, Arc<AtomicU8>) {
        let state = Arc::new(AtomicU8::new(IDLE));
        let at = list.push(since, Arc::clone(&state), Waker::noop().clone());
        (at, state)
    }

    #[test]
    fn list_keeps_the_oldest_first_and_reuses_nodes() {
        let mut list = List::new();
        let t = Instant::now();
        let (a, _) = node(&mut list, t);
        let (b, b_state) = node(&mut list, t + std::time::Duration::from_secs(1));
        let (c, _) = node(&mut list, t + std::time::Duration::from_secs(2));
        assert_eq!(list.oldest_idle().map(|n| n.since), Some(t));
        list.remove(a);
        assert_eq!(
            list.oldest_idle().map(|n| n.since),
            Some(t + std::time::Duration::from_secs(1))
        );
        // A connection that is reading is passed over.
        b_state.store(BUSY, SeqCst);
        assert_eq!(
            list.oldest_idle().map(|n| n.since),
            Some(t + std::time::Duration::from_secs(2))
        );
        list.remove(c);
        assert!(list.oldest_idle().is_none());
        let (d, _) = node(&mut list, t + std::time::Duration::from_secs(3));
        assert_eq!(d, c, "a freed node is reused");
        list.remove(b);
        list.remove(d);
        assert_eq!((list.head, list.tail, list.nodes.len()), (NIL, NIL, 3));
    }

    /// Stands for a socket read: ready once `bytes` holds something, which it then takes.
    struct Take<'a>(&'a Mutex<(Option<u8>, Option<Waker>)>);

    impl Future for Take<'_> {
        type Output = u8;
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<u8> {
            let mut bytes = self.0.lock().unwrap();
            match bytes.0.take() {
                Some(byte) => Poll::Ready(byte),
                None => {
                    bytes.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    /// A connection picked to close while its request arrives on another thread either took
    /// the request (and was not closed) or was closed without taking it; the loop that asked
    /// gets the permit either way.
    #[test]
    fn a_picked_connection_never_has_taken_its_request() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let shutdown = CancellationToken::new();
            let (mut closed, mut served) = (0, 0);
            for _ in 0..2000 {
                let limit = Limit::new(1, 2, counter());
                let slot = limit.acquire(&shutdown).await.unwrap();
                let bytes = Arc::new(Mutex::new((None, None::<Waker>)));
                let listed = Arc::new(AtomicBool::new(false));
                let conn = tokio::spawn({
                    let bytes = Arc::clone(&bytes);
                    let listed = Arc::clone(&listed);
                    async move {
                        let read = Take(&bytes);
                        let watched = slot.watch(true, Instant::now(), async {
                            listed.store(true, SeqCst);
                            read.await
                        });
                        watched.await
                    }
                });
                while !listed.load(SeqCst) {
                    tokio::task::yield_now().await;
                }
                let client = tokio::spawn({
                    let bytes = Arc::clone(&bytes);
                    async move {
                        let mut b = bytes.lock().unwrap();
                        b.0 = Some(7);
                        if let Some(waker) = b.1.take() {
                            waker.wake();
                        }
                    }
                });
                let other = limit.for_worker(1);
                let permit = other.acquire(&shutdown).await;
                assert!(permit.is_some());
                client.await.unwrap();
                match conn.await.unwrap() {
                    Ok(byte) => {
                        assert_eq!(byte, 7);
                        served += 1;
                    }
                    Err(Reclaimed) => {
                        assert_eq!(
                            bytes.lock().unwrap().0,
                            Some(7),
                            "closed after taking bytes"
                        );
                        closed += 1;
                    }
                }
                assert_eq!(limit.shared.closing.load(SeqCst), 0);
            }
            assert!(closed > 0, "never closed ({served} served)");
        });
    }
}
