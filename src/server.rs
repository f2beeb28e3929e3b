//! A serving process's life: start-up, reload, upgrade and shutdown.
//!
//! Start-up builds everything the configuration needs (`reload::build`: locations opened,
//! TLS loaded, cache indexed, spool checked), then binds every listener (`listeners`; an
//! address another process already listens on is refused, naming its key), all before
//! serving anything. Client connections are served by one single-threaded runtime per core
//! (`workers`), each accepting on its own SO_REUSEPORT socket of every client address, so a
//! connection lives on the thread that accepted it, as in nginx's worker processes (why, in
//! figures: bench/RESULTS.md, "2026-12-05 — 4 KiB small-file gap"). The admin server,
//! signals and the cache's own tasks stay on the main runtime.
//!
//! - SIGHUP reloads: the configuration is read again from where it came (file and
//!   environment), checked as at start-up, and either put in force for new connections as a
//!   new [`Generation`] (listeners opened and closed as it says) or, with every error logged,
//!   dropped with nothing changed. The old generation is retired as nginx retires its old
//!   workers: its idle keep-alive connections close, its requests in flight finish on the
//!   old configuration. Counted in `ferry_config_reloads_total{result}`.
//! - A take-over request on `server.upgrade_socket` (`upgrade`): the listening sockets go to
//!   the new process; once it serves, this one drains as on SIGTERM, its sockets kept open
//!   by the new one.
//! - SIGTERM/SIGINT drain: /readyz turns 503, listeners close, idle keep-alive connections
//!   close, in-flight responses get up to `shutdown_grace` to finish.

pub mod pid_file;

mod error;
mod listeners;
mod reload;
mod upgrade;
mod workers;

use std::net::SocketAddr;
use std::num::NonZero;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, Admin};
use crate::config::{Config, ConfigErrors};
use crate::frontend::{Generation, Limit, ListenerKind};
use crate::metrics::Metrics;
use listeners::Listeners;
use reload::Resources;
use upgrade::{ControlSocket, Inherited};
use workers::Workers;

pub use error::StartError;

/// The addresses actually bound (port 0 resolved).
#[derive(Debug, Clone)]
pub struct Bound {
    pub http: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
    pub admin: SocketAddr,
}

/// Where the configuration came from, so that SIGHUP can read it again the same way.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `--config FILE`, with the `FERRY__*` environment over it.
    File(PathBuf),
    /// The embedded default, with the environment over it.
    Embedded,
}

impl ConfigSource {
    /// Loads and validates the configuration, as at start-up.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            Self::File(path) => Config::load(path),
            Self::Embedded => Config::embedded_default(),
        }
    }
}

/// How `ferry serve` was started, beyond the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: ConfigSource,
    /// `--upgrade-from PATH`: take the listeners of the ferry whose upgrade socket is PATH.
    pub upgrade_from: Option<PathBuf>,
}

/// Runs ferry until a shutdown signal has been handled, or another process has taken over.
/// `on_ready` is called once every listener is bound.
pub async fn run(
    config: Config,
    options: Options,
    on_ready: impl FnOnce(&Bound),
) -> Result<(), StartError> {
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
    let metrics = Metrics::new();
    let built = reload::build(&config, None, &metrics)
        .await
        .map_err(|errors| errors.into_iter().next().expect("errors are never empty"))?;

    let shutdown = CancellationToken::new();
    let mut inherited = match &options.upgrade_from {
        Some(path) => {
            let (path, token) = (path.clone(), shutdown.clone());
            let received = tokio::task::spawn_blocking(move || {
                upgrade::receive(&path, || token.child_token())
            })
            .await
            .map_err(|err| StartError::Worker(std::io::Error::other(err)))??;
            tracing::info!(
                listeners = received.sets.len(),
                "received the running process's listeners"
            );
            Some(received)
        }
        None => None,
    };
    let workers_count = std::thread::available_parallelism().map_or(1, NonZero::get);
    let inherited_sets = inherited
        .as_mut()
        .map(|i| std::mem::take(&mut i.sets))
        .unwrap_or_default();
    let mut listeners = Listeners::new(inherited_sets, workers_count, shutdown.clone());
    let prepared = listeners
        .prepare(&config)
        .map_err(|errors| errors.into_iter().next().expect("errors are never empty"))?;
    let committed = listeners.commit(prepared);
    for set in &committed.removed {
        tracing::info!(listener = %set.bound, "inherited listener not in the configuration: closed");
    }
    drop(committed);
    let admin_socket = open_admin(&config, inherited.as_mut())?;
    let control = match &config.server.upgrade_socket {
        Some(path) => Some(ControlSocket::open(
            path,
            inherited.as_mut().and_then(|i| i.control.take()),
        )?),
        None => None,
    };

    let mut sigterm = signal(SignalKind::terminate()).map_err(StartError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(StartError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(StartError::Signal)?;
    let pid_file = match &config.server.pid_file {
        Some(path) => {
            Some(
                pid_file::PidFile::write(path).map_err(|source| StartError::PidFile {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };

    let bound = Bound {
        http: listeners.bound(ListenerKind::Http),
        https: listeners.bound(ListenerKind::Https),
        admin: admin_socket.bound,
    };
    let generation = reload::generation(
        &config,
        built.router,
        &built.resources,
        &metrics,
        bound.https.first().map(SocketAddr::port),
        shutdown.child_token(),
    );
    let (publish, current) = watch::channel(Arc::new(generation));
    let tracker = TaskTracker::new();
    let limit = Limit::new(
        config.server.max_connections.get(),
        workers_count,
        metrics.connections_reclaimed.clone(),
    );
    let admin = Arc::new(Admin {
        metrics: metrics.clone(),
        draining: AtomicBool::new(false),
        cache: std::sync::RwLock::new(built.resources.cache.clone()),
        token: std::sync::RwLock::new(config.admin.token.clone()),
    });
    let admin_server = AdminServer::start(admin_socket, &admin)?;
    let mut workers = Workers::start(workers_count, &current, &limit, &shutdown, &tracker)?;
    for set in &listeners.sets {
        workers.serve(set);
    }
    let (requests, mut takeovers) = mpsc::channel(1);
    let control_stop = CancellationToken::new();
    if let Some(control) = &control {
        control
            .serve(requests, control_stop.clone())
            .map_err(|err| StartError::UpgradeSocket {
                path: control.path.clone(),
                message: err.to_string(),
            })?;
    }
    on_ready(&bound);
    if let Some(inherited) = inherited {
        // The old process stops accepting once it reads this.
        match tokio::task::spawn_blocking(move || inherited.ready()).await {
            Ok(Ok(())) => tracing::info!("took over from the running process; it drains now"),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "the old process did not acknowledge the take-over")
            }
            Err(err) => tracing::warn!(error = %err, "take-over acknowledgement"),
        }
    }

    let mut serving = Serving {
        source: options.source,
        config,
        resources: built.resources,
        listeners,
        publish,
        metrics,
        admin: Arc::clone(&admin),
        admin_server,
        workers: &workers,
        shutdown: shutdown.clone(),
    };
    let mut handover: Option<tokio::task::JoinHandle<std::io::Result<u32>>> = None;
    let reason = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => {
                if handover.is_some() {
                    tracing::warn!("reload refused: a take-over by a new process is under way");
                    serving.metrics.config_reload(false);
                    continue;
                }
                serving.reload().await;
            }
            Some(stream) = takeovers.recv(), if handover.is_none() => {
                match serving.offer(control.as_ref()) {
                    Ok(offer) => {
                        tracing::info!("a new process asks to take over; handing the listeners over");
                        handover = Some(tokio::spawn(upgrade::hand_over(stream, offer)));
                    }
                    Err(err) => tracing::error!(error = %err, "take-over: cannot duplicate the listeners"),
                }
            }
            done = async { handover.as_mut().expect("checked").await }, if handover.is_some() => {
                handover = None;
                match done {
                    Ok(Ok(pid)) => {
                        tracing::info!(pid, "the new process serves; draining");
                        break "take-over";
                    }
                    Ok(Err(err)) => tracing::warn!(error = %err, "take-over did not complete; still serving"),
                    Err(err) => tracing::warn!(error = %err, "take-over did not complete; still serving"),
                }
            }
        }
    };
    let handed_over = reason == "take-over";
    if let Some(task) = handover {
        task.abort();
    }
    let Serving {
        config,
        mut listeners,
        mut admin_server,
        ..
    } = serving;
    let grace = config.server.shutdown_grace;
    tracing::info!(reason, grace = ?grace, "shutting down");
    admin.draining.store(true, Ordering::Relaxed);
    control_stop.cancel();
    if handed_over {
        // The new process answers on the admin address now.
        admin_server.stop().await;
    }
    shutdown.cancel();
    // The accept loops return as soon as they see the cancellation, dropping their sockets;
    // the server's own handles go too, so new clients are refused at once (or, after a
    // take-over, served by the new process, which holds the same sockets).
    listeners.close_all();
    workers.stopped_accepting().await;
    tracing::info!("stopped accepting; connections finishing");
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
    workers.join().await;
    admin_server.stop().await;
    if let (Some(control), false) = (&control, handed_over) {
        control.remove();
    }
    drop(pid_file);
    Ok(())
}

/// The admin listener socket: the server's handle and where it is bound.
struct AdminSocket {
    configured: SocketAddr,
    bound: SocketAddr,
    socket: std::net::TcpListener,
}

/// Binds `admin.listen` (or takes the inherited admin socket when it is the same address).
fn open_admin(
    config: &Config,
    inherited: Option<&mut Inherited>,
) -> Result<AdminSocket, StartError> {
    let configured = config.admin.listen;
    if let Some((bound, socket)) = inherited.and_then(|i| i.take_admin(configured)) {
        return Ok(AdminSocket {
            configured,
            bound,
            socket,
        });
    }
    bind_admin(configured)
}

fn bind_admin(addr: SocketAddr) -> Result<AdminSocket, StartError> {
    let key = "admin.listen";
    listeners::probe(key, addr)?;
    let socket =
        crate::frontend::bind(addr).map_err(|source| StartError::Bind { key, addr, source })?;
    Ok(AdminSocket {
        configured: addr,
        bound: socket.local_addr().unwrap_or(addr),
        socket,
    })
}

/// The admin server on its socket.
struct AdminServer {
    socket: Option<AdminSocket>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AdminServer {
    fn start(socket: AdminSocket, admin: &Arc<Admin>) -> Result<AdminServer, StartError> {
        let listener = socket
            .socket
            .try_clone()
            .and_then(TcpListener::from_std)
            .map_err(|source| StartError::Bind {
                key: "admin.listen",
                addr: socket.bound,
                source,
            })?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(admin::serve(listener, Arc::clone(admin), stop.clone()));
        Ok(AdminServer {
            socket: Some(socket),
            stop,
            task: Some(task),
        })
    }

    /// The socket being served (until stopped).
    fn socket(&self) -> Option<&AdminSocket> {
        self.socket.as_ref()
    }

    async fn stop(&mut self) {
        self.stop.cancel();
        self.socket = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// What a serving process holds between reloads.
struct Serving<'w> {
    source: ConfigSource,
    config: Config,
    resources: Resources,
    listeners: Listeners,
    publish: watch::Sender<Arc<Generation>>,
    metrics: Metrics,
    admin: Arc<Admin>,
    admin_server: AdminServer,
    workers: &'w Workers,
    /// The server's shutdown token: every generation's `retire` token is a child of it.
    shutdown: CancellationToken,
}

impl Serving<'_> {
    /// SIGHUP: reads the configuration again and puts it in force, or logs every problem and
    /// changes nothing.
    async fn reload(&mut self) {
        tracing::info!("SIGHUP: reloading the configuration");
        match self.try_reload().await {
            Ok(()) => self.metrics.config_reload(true),
            Err(errors) => {
                for error in &errors {
                    for line in error.lines() {
                        tracing::error!(error = line, "reload: configuration error");
                    }
                }
                tracing::error!(
                    errors = errors.len(),
                    "reload failed; the running configuration stays in force"
                );
                self.metrics.config_reload(false);
            }
        }
    }

    async fn try_reload(&mut self) -> Result<(), Vec<String>> {
        let strings = |errors: Vec<StartError>| -> Vec<String> {
            errors.iter().map(ToString::to_string).collect()
        };
        let config = self
            .source
            .load()
            .map_err(|errors| errors.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        // Every check runs, and every problem is reported, before anything changes.
        let built = reload::build(
            &config,
            Some((&self.config, &self.resources)),
            &self.metrics,
        )
        .await;
        let prepared = self.listeners.prepare(&config);
        // A new admin address is bound before anything changes, like a new client address.
        let admin_moved = self.admin_server.socket().is_some_and(|socket| {
            let addr = config.admin.listen;
            socket.configured != addr && (addr.port() == 0 || socket.bound != addr)
        });
        let new_admin = admin_moved.then(|| bind_admin(config.admin.listen));
        let (built, prepared, new_admin) = match (built, prepared, new_admin.transpose()) {
            (Ok(built), Ok(prepared), Ok(new_admin)) => (built, prepared, new_admin),
            (built, prepared, new_admin) => {
                let mut errors = built.err().unwrap_or_default();
                errors.extend(prepared.err().unwrap_or_default());
                errors.extend(new_admin.err());
                return Err(strings(errors));
            }
        };

        // Everything checked: from here on the new configuration goes into force.
        for (key, why) in reload::not_reloaded(&self.config, &config) {
            tracing::warn!(
                key,
                "reload: {key} changed, but {why}: it takes effect at the next start"
            );
        }
        built.limits_into_force(&config);
        let added: Vec<String> = prepared
            .added()
            .map(|set| format!("{} {}", set.kind.label(), set.bound))
            .collect();
        let committed = self.listeners.commit(prepared);
        for &i in &committed.added {
            self.workers.serve(&self.listeners.sets[i]);
        }
        let removed: Vec<String> = committed
            .removed
            .iter()
            .map(|set| format!("{} {}", set.kind.label(), set.bound))
            .collect();
        drop(committed);
        let https = self.listeners.bound(ListenerKind::Https);
        let generation = reload::generation(
            &config,
            built.router,
            &built.resources,
            &self.metrics,
            https.first().map(SocketAddr::port),
            self.shutdown.child_token(),
        );
        // The old generation is retired once it is no longer current: its idle keep-alive
        // connections close, its requests in flight finish.
        let old = self.publish.send_replace(Arc::new(generation));
        old.retire.cancel();
        if let Ok(mut cache) = self.admin.cache.write() {
            cache.clone_from(&built.resources.cache);
        }
        if let Ok(mut token) = self.admin.token.write() {
            token.clone_from(&config.admin.token);
        }
        let admin_addr = match new_admin {
            Some(socket) => {
                let addr = socket.bound;
                self.admin_server.stop().await;
                match AdminServer::start(socket, &self.admin) {
                    Ok(server) => self.admin_server = server,
                    Err(err) => tracing::error!(error = %err, "admin listener not served"),
                }
                Some(addr.to_string())
            }
            None => None,
        };
        self.resources = built.resources;
        self.config = config;
        let kept = built.kept;
        tracing::info!(
            listeners_added = ?added,
            listeners_removed = ?removed,
            admin_moved_to = ?admin_addr,
            tls_kept = kept.tls,
            cache_kept = kept.cache,
            "configuration reloaded; new connections use it, requests in flight finish on the old one"
        );
        Ok(())
    }

    /// Duplicates of every listening socket, for a new process taking over.
    fn offer(&self, control: Option<&ControlSocket>) -> std::io::Result<upgrade::Offer> {
        let mut listeners = Vec::new();
        for set in &self.listeners.sets {
            for socket in &set.sockets {
                listeners.push((
                    set.kind,
                    set.configured,
                    set.bound,
                    socket.try_clone()?.into(),
                ));
            }
        }
        let admin = self
            .admin_server
            .socket()
            .ok_or_else(|| std::io::Error::other("the admin listener is closed"))?;
        let control = control
            .ok_or_else(|| std::io::Error::other("no upgrade socket"))?
            .duplicate()?;
        Ok(upgrade::Offer {
            listeners,
            admin: (
                admin.configured,
                admin.bound,
                admin.socket.try_clone()?.into(),
            ),
            control,
        })
    }
}
