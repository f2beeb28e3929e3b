//! Start-up and shutdown of a serving process: open the locations, bind every listener (all
//! before serving anything, so a bad address fails fast), run the accept loops and the admin
//! server, and on SIGTERM/SIGINT drain: /readyz turns 503, listeners close, idle keep-alive
//! connections close, in-flight responses get up to `shutdown_grace` to finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, Admin};
use crate::cache::Cache;
use crate::config::Config;
use crate::frontend::{self, Shared};
use crate::metrics::Metrics;
use crate::route::Router;
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
    let mut listeners = Vec::new();
    for &addr in &config.server.listen {
        listeners.push((bind("server.listen", addr)?, None));
    }
    if let (Some(tls_config), Some(tls)) = (&config.tls, &tls) {
        for &addr in &tls_config.listen {
            listeners.push((bind("tls.listen", addr)?, Some(Arc::clone(tls))));
        }
    }
    let admin_addr = config.admin.listen;
    let admin_listener = bind("admin.listen", admin_addr)?;
    let addresses = |tls: bool| {
        listeners
            .iter()
            .filter(|(_, t)| t.is_some() == tls)
            .filter_map(|(l, _)| l.local_addr().ok())
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
    // The cache's own app client serves its background refreshes.
    let cache = match &config.cache {
        Some(cache) => {
            let refresher = config
                .upstream
                .as_ref()
                .map(|up| Upstream::new(up, &config.offload, client_timeout));
            Some(Arc::new(Cache::open(
                cache,
                metrics.cache.clone(),
                refresher,
            )?))
        }
        None => None,
    };
    let admin = Arc::new(Admin {
        metrics: metrics.clone(),
        draining: AtomicBool::new(false),
        cache: cache.clone(),
    });
    let upstream = config
        .upstream
        .as_ref()
        .map(|up| Upstream::new(up, &config.offload, client_timeout));
    let shared = Arc::new(Shared {
        router,
        upstream,
        offload: config.offload.clone(),
        metrics,
        server: config.server.clone(),
        io: config.io.clone(),
        cache,
    });
    let shutdown = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(config.server.max_connections.get()));

    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        Arc::clone(&admin),
        admin_stop.clone(),
    ));
    let mut accept_tasks = Vec::new();
    for (listener, tls) in listeners {
        accept_tasks.push(tokio::spawn(frontend::accept_loop(
            listener,
            tls,
            Arc::clone(&shared),
            Arc::clone(&limit),
            shutdown.clone(),
            tracker.clone(),
        )));
    }
    on_ready(&bound);

    let signal_name = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    tracing::info!(signal = signal_name, grace = ?grace, "shutting down");
    admin.draining.store(true, Ordering::Relaxed);
    shutdown.cancel();
    for task in accept_tasks {
        // The loops return as soon as they see the cancellation, dropping their listeners.
        let _ = task.await;
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
    admin_stop.cancel();
    let _ = admin_task.await;
    Ok(())
}

/// Binds one listener; a failure names the key it came from.
fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    frontend::bind(addr)
        .and_then(TcpListener::from_std)
        .map_err(|source| StartError::Bind { key, addr, source })
}
