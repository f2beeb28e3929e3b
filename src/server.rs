//! Start-up and shutdown of a serving process: open the locations, bind every listener (all
//! before serving anything, so a bad address fails fast), run the accept loops and the admin
//! server, and on SIGTERM/SIGINT drain: /readyz turns 503, listeners close, idle keep-alive
//! connections close, in-flight responses get up to `shutdown_grace` to finish.
//!
//! Client connections are served by one single-threaded runtime per core ("connection
//! workers"), each accepting on its own SO_REUSEPORT socket of every client address, so a
//! connection lives on the thread that accepted it, as in nginx's worker processes (why, in
//! figures: bench/RESULTS.md, "2026-12-05 — 4 KiB small-file gap"). The admin server,
//! signals and the cache's own tasks stay on the main runtime.

use std::net::SocketAddr;
use std::num::NonZero;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, Admin};
use crate::cache::Cache;
use crate::config::{Config, RedirectHttps};
use crate::frontend::{self, Limit, Shared};
use crate::metrics::Metrics;
use crate::proxy::{Buffering, Proxy};
use crate::route::Router;
use crate::spool::Spool;
use crate::tls::Tls;
use crate::upstream::Upstream;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}", .0.join("\n"))]
    Locations(Vec<String>),
    #[error("{key} {addr}: bind: {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Cache(#[from] crate::cache::CacheError),
    #[error("spool.dir {dir}: cannot create a spool file: {source}")]
    Spool {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("connection worker: {0}")]
    Worker(std::io::Error),
}

/// The addresses actually bound (port 0 resolved).
#[derive(Debug, Clone)]
pub struct Bound {
    pub http: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
    pub admin: SocketAddr,
}

/// Runs ferry until a shutdown signal has been handled. `on_ready` is called once every
/// listener is bound.
pub async fn run(config: Config, on_ready: impl FnOnce(&Bound)) -> Result<(), StartError> {
    let router = Router::new(&config).map_err(StartError::Locations)?;
    match crate::sys::raise_nofile_limit() {
        // Every connection needs at least its socket and the file it is sending.
        Ok(Some(limit)) if limit < config.server.max_connections.get() as u64 * 2 => {
            tracing::warn!(
                limit,
                max_connections = config.server.max_connections.get(),
                "open file limit is low for server.max_connections; raise it (ulimit -n)"
            )
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "could not raise the open file limit"),
    }
    let tls = match &config.tls {
        Some(tls) => Some(Arc::new(Tls::new(tls).await?)),
        None => None,
    };
    let workers = std::thread::available_parallelism().map_or(1, NonZero::get);
    // One socket per connection worker for each client address; the first one resolves
    // port 0, the others join it through SO_REUSEPORT.
    // (sockets, TLS, PROXY protocol) per client address.
    let mut listeners: Vec<(Vec<std::net::TcpListener>, Option<Arc<Tls>>, bool)> = Vec::new();
    let proxy_protocol = config.server.proxy_protocol;
    for &addr in &config.server.listen {
        let sockets = bind_workers("server.listen", addr, workers)?;
        listeners.push((sockets, None, proxy_protocol));
    }
    if let (Some(tls_config), Some(tls)) = (&config.tls, &tls) {
        for &addr in &tls_config.listen {
            let sockets = bind_workers("tls.listen", addr, workers)?;
            listeners.push((sockets, Some(Arc::clone(tls)), tls_config.proxy_protocol));
        }
    }
    let admin_addr = config.admin.listen;
    let admin_listener = bind("admin.listen", admin_addr)?;
    let addresses = |tls: bool| {
        listeners
            .iter()
            .filter(|(_, t, _)| t.is_some() == tls)
            .filter_map(|(l, _, _)| l[0].local_addr().ok())
            .collect()
    };
    let bound = Bound {
        http: addresses(false),
        https: addresses(true),
        admin: admin_listener.local_addr().unwrap_or(admin_addr),
    };
    let mut sigterm = signal(SignalKind::terminate()).map_err(StartError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(StartError::Signal)?;

    let metrics = Metrics::new();
    let grace = config.server.shutdown_grace;
    // A client sending a request body gets as long between reads as for its head.
    let client_timeout = config.server.header_timeout.max(config.server.send_timeout);
    let cache = match &config.cache {
        Some(cache) => Some(Arc::new(Cache::open(cache, metrics.cache.clone())?)),
        None => None,
    };
    let admin = Arc::new(Admin {
        metrics: metrics.clone(),
        draining: AtomicBool::new(false),
        cache: cache.clone(),
        token: config.admin.token.clone(),
    });
    let spool = Spool::new(&config.spool, metrics.spool.clone());
    let proxied = config.upstream.is_some() || !config.upstreams.is_empty();
    if proxied {
        spool.check().map_err(|source| StartError::Spool {
            dir: config.spool.dir.clone(),
            source,
        })?;
    }
    let proxy = proxied.then(|| {
        let build =
            |name: &str, up| Upstream::new(name, up, &config.offload, client_timeout, &metrics);
        let default = config
            .upstream
            .as_ref()
            .map(|up| build(crate::config::DEFAULT_UPSTREAM, up));
        let named = config.upstreams.iter().map(|(name, up)| build(name, up));
        let offload = config.offload.clone();
        let buffering = Buffering {
            spool: spool.clone(),
            responses: config.spool.response_buffering,
            requests: config.spool.request_buffering,
            request_memory: config.spool.request_memory,
            max_body_size: config.server.max_body_size,
            client_timeout,
        };
        Proxy::new(
            default,
            named.collect(),
            cache.clone(),
            offload,
            metrics.clone(),
            buffering,
        )
    });
    let shared = Arc::new(Shared {
        router,
        proxy,
        metrics,
        server: config.server.clone(),
        io: config.io.clone(),
        redirect_https: match config.server.redirect_https {
            None => None,
            Some(RedirectHttps::Port(port)) => Some(port.get()),
            // Checked by the config: `true` comes with [tls], so with a TLS listener.
            Some(RedirectHttps::TlsListener) => bound.https.first().map(SocketAddr::port),
        },
    });
    let shutdown = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let limit = Limit::new(
        config.server.max_connections.get(),
        workers,
        shared.metrics.connections_reclaimed.clone(),
    );

    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        Arc::clone(&admin),
        admin_stop.clone(),
    ));
    // Worker i takes socket i of every client address.
    let mut per_worker: Vec<Vec<WorkerSocket>> = (0..workers).map(|_| Vec::new()).collect();
    for (sockets, tls, proxy_protocol) in listeners {
        for (worker, socket) in per_worker.iter_mut().zip(sockets) {
            worker.push((socket, tls.clone(), proxy_protocol));
        }
    }
    let stop = CancellationToken::new();
    let mut accepting = Vec::new();
    let mut threads = Vec::new();
    for (i, sockets) in per_worker.into_iter().enumerate() {
        let (done, accepted_all) = tokio::sync::oneshot::channel::<()>();
        accepting.push(accepted_all);
        let worker = ConnectionWorker {
            sockets,
            shared: Arc::clone(&shared),
            limit: limit.for_worker(i),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            stop: stop.clone(),
        };
        threads.push(worker.start(i, done)?);
    }
    on_ready(&bound);

    let signal_name = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    tracing::info!(signal = signal_name, grace = ?grace, "shutting down");
    admin.draining.store(true, Ordering::Relaxed);
    shutdown.cancel();
    for accepted_all in accepting {
        // The loops return as soon as they see the cancellation, dropping their listeners.
        let _ = accepted_all.await;
    }
    tracker.close();
    let open = tracker.len();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            connections = tracker.len(),
            "shutdown grace ran out; closing remaining connections"
        );
    } else {
        tracing::info!(connections = open, "all connections finished");
    }
    // Whatever is left on the connection workers ends with their runtimes.
    stop.cancel();
    let _ = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    })
    .await;
    admin_stop.cancel();
    let _ = admin_task.await;
    Ok(())
}

/// One of a worker's sockets, with its TLS acceptor (on `tls.listen` sockets) and whether
/// its connections start with a PROXY protocol header.
type WorkerSocket = (std::net::TcpListener, Option<Arc<Tls>>, bool);

/// A thread with its own single-threaded runtime that accepts on its sockets and serves the
/// connections it accepted, until `stop`.
struct ConnectionWorker {
    sockets: Vec<WorkerSocket>,
    shared: Arc<Shared>,
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
        done: tokio::sync::oneshot::Sender<()>,
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

    async fn run(self, done: tokio::sync::oneshot::Sender<()>) {
        let mut loops = Vec::new();
        for (socket, tls, proxy_protocol) in self.sockets {
            let local = socket.local_addr().ok();
            let listener = match TcpListener::from_std(socket) {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::error!(listener = ?local, error = %err, "listener not served");
                    continue;
                }
            };
            let listener = frontend::Listener {
                socket: listener,
                tls,
                proxy_protocol,
            };
            loops.push(tokio::spawn(frontend::accept_loop(
                listener,
                Arc::clone(&self.shared),
                self.limit.clone(),
                self.shutdown.clone(),
                self.tracker.clone(),
            )));
        }
        for accept in loops {
            let _ = accept.await;
        }
        let _ = done.send(());
        self.stop.cancelled().await;
    }
}

/// Binds `count` sockets on `addr` (SO_REUSEPORT), the first resolving port 0.
fn bind_workers(
    key: &'static str,
    addr: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, StartError> {
    let bind = |addr| frontend::bind(addr).map_err(|source| StartError::Bind { key, addr, source });
    let first = bind(addr)?;
    let resolved = first.local_addr().unwrap_or(addr);
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind(resolved)?);
    }
    Ok(sockets)
}

/// Binds one listener; a failure names the key it came from.
fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    frontend::bind(addr)
        .and_then(TcpListener::from_std)
        .map_err(|source| StartError::Bind { key, addr, source })
}
