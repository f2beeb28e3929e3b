//! The connection workers: one thread with its own single-threaded runtime per core, each
//! accepting on its own socket of every client address (socket `j` of a set goes to worker
//! `j % workers`) and serving the connections it accepted, as nginx's worker processes do.
//! Sockets reach a worker over a channel, at start-up and whenever a reload binds a new
//! address; each accept loop ends on its set's `close` token.

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::StartError;
use super::listeners::ListenerSet;
use crate::frontend::{self, Current, Limit, Listener};

/// Sockets for one worker: a duplicate of the server's socket, and what it is.
type Assigned = Vec<(
    std::net::TcpListener,
    frontend::ListenerKind,
    CancellationToken,
)>;

/// The running workers.
pub struct Workers {
    inboxes: Vec<mpsc::UnboundedSender<Assigned>>,
    accepting: Vec<oneshot::Receiver<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Ends the workers' runtimes, with whatever connections are left on them.
    stop: CancellationToken,
}

impl Workers {
    /// Starts `count` workers; they accept nothing until [`Workers::serve`] gives them sockets,
    /// and stop accepting when `shutdown` is cancelled.
    pub fn start(
        count: usize,
        current: &Current,
        limit: &Limit,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Workers, StartError> {
        let stop = CancellationToken::new();
        let mut workers = Workers {
            inboxes: Vec::new(),
            accepting: Vec::new(),
            threads: Vec::new(),
            stop: stop.clone(),
        };
        for index in 0..count {
            let (inbox, sockets) = mpsc::unbounded_channel();
            let (done, accepted_all) = oneshot::channel();
            let worker = ConnectionWorker {
                sockets,
                current: current.clone(),
                limit: limit.for_worker(index),
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
                stop: stop.clone(),
            };
            workers.threads.push(worker.start(index, done)?);
            workers.inboxes.push(inbox);
            workers.accepting.push(accepted_all);
        }
        Ok(workers)
    }

    /// Has the workers accept on `set`'s sockets (duplicates of them).
    pub fn serve(&self, set: &ListenerSet) {
        let count = self.inboxes.len();
        let mut per_worker: Vec<Assigned> = self.inboxes.iter().map(|_| Vec::new()).collect();
        for (j, socket) in set.sockets.iter().enumerate() {
            match socket.try_clone() {
                Ok(copy) => per_worker[j % count].push((copy, set.kind, set.close.clone())),
                Err(err) => {
                    tracing::error!(listener = %set.bound, error = %err, "listener socket not served")
                }
            }
        }
        for (inbox, sockets) in self.inboxes.iter().zip(per_worker) {
            if !sockets.is_empty() {
                // A worker that has stopped has no use for them.
                let _ = inbox.send(sockets);
            }
        }
    }

    /// Waits until every worker's accept loops have ended (after shutdown).
    pub async fn stopped_accepting(&mut self) {
        for accepted_all in self.accepting.drain(..) {
            let _ = accepted_all.await;
        }
    }

    /// Ends the workers' runtimes and waits for their threads.
    pub async fn join(self) {
        self.stop.cancel();
        drop(self.inboxes);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// A thread with its own single-threaded runtime that accepts on the sockets it is sent and
/// serves the connections it accepted, until `stop`.
struct ConnectionWorker {
    sockets: mpsc::UnboundedReceiver<Assigned>,
    current: Current,
    limit: Limit,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl ConnectionWorker {
    /// Starts the thread; `done` is sent once its accept loops have ended (after `shutdown`).
    fn start(
        self,
        index: usize,
        done: oneshot::Sender<()>,
    ) -> Result<std::thread::JoinHandle<()>, StartError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Worker)?;
        std::thread::Builder::new()
            .name(format!("ferry-conn-{index}"))
            .spawn(move || {
                runtime.block_on(self.run(done));
                // Blocking tasks still running (a cold open, a direct read) are not waited for.
                runtime.shutdown_background();
            })
            .map_err(StartError::Worker)
    }

    async fn run(mut self, done: oneshot::Sender<()>) {
        let mut loops = JoinSet::new();
        loop {
            let sockets = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                sockets = self.sockets.recv() => sockets,
            };
            let Some(sockets) = sockets else { break };
            for (socket, kind, close) in sockets {
                let local = socket.local_addr().ok();
                let socket = match TcpListener::from_std(socket) {
                    Ok(socket) => socket,
                    Err(err) => {
                        tracing::error!(listener = ?local, error = %err, "listener not served");
                        continue;
                    }
                };
                let listener = Listener {
                    socket,
                    kind,
                    close,
                };
                loops.spawn(frontend::accept_loop(
                    listener,
                    self.current.clone(),
                    self.limit.clone(),
                    self.tracker.clone(),
                ));
            }
        }
        while loops.join_next().await.is_some() {}
        let _ = done.send(());
        self.stop.cancelled().await;
    }
}
