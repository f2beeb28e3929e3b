//! One server of an upstream: where new connections go (TCP, a host name, a unix socket),
//! its idle connections, how many requests hold a connection to it now (what `least_conn`
//! compares), and its passive health (nginx `max_fails` / `fail_timeout`): `max_fails`
//! failures within `fail_timeout` of the first one take it out of rotation for
//! `fail_timeout`; a success forgets its failures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pool::Pool;
use super::queue::Slot;
use super::resolve;
use super::stream::AppSocket;
use crate::config::UpstreamAddress;
use crate::failure::Failure;
use crate::metrics::ServerMetrics;

/// Where new connections to a server go.
#[derive(Debug)]
enum Target {
    Tcp(SocketAddr),
    /// A host name, resolved for new connections (its answer kept briefly).
    Host(resolve::Resolver),
    Unix(PathBuf),
}

/// Passive health: the failures counted since `since`, and until when the server is skipped.
#[derive(Debug, Default)]
struct Health {
    fails: u32,
    since: Option<Instant>,
    down_until: Option<Instant>,
}

/// When passive health takes a server out of rotation.
#[derive(Debug, Clone, Copy)]
pub(super) struct HealthRule {
    /// 0: never.
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

/// One server of an upstream.
#[derive(Debug)]
pub(super) struct Server {
    target: Target,
    /// The address as configured: in errors, logs and the `server` metric label.
    pub label: Arc<str>,
    pub pool: Pool,
    busy: AtomicUsize,
    health: Mutex<Health>,
    rule: HealthRule,
    pub metrics: ServerMetrics,
}

/// A request's hold on a server (and on its upstream's cap): counted in the server's
/// requests in flight until dropped.
#[derive(Debug)]
pub(super) struct Lease {
    pub server: Arc<Server>,
    _slot: Option<Arc<Slot>>,
}

impl Lease {
    /// Counts a request on `server`, holding `slot` as long as it holds the server.
    pub fn new(server: Arc<Server>, slot: Option<Arc<Slot>>) -> Lease {
        server.busy.fetch_add(1, Ordering::AcqRel);
        server.metrics.active.inc();
        Lease {
            server,
            _slot: slot,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.server.busy.fetch_sub(1, Ordering::AcqRel);
        self.server.metrics.active.dec();
    }
}

impl Server {
    pub fn new(
        address: &UpstreamAddress,
        idle: usize,
        rule: HealthRule,
        metrics: ServerMetrics,
    ) -> Server {
        Server {
            target: match address {
                UpstreamAddress::Tcp(addr) => Target::Tcp(*addr),
                UpstreamAddress::Host { name, port } => {
                    Target::Host(resolve::Resolver::new(name.clone(), *port))
                }
                UpstreamAddress::Unix(path) => Target::Unix(path.clone()),
            },
            label: address.to_string().into(),
            pool: Pool::new(idle),
            busy: AtomicUsize::new(0),
            health: Mutex::new(Health::default()),
            rule,
            metrics,
        }
    }

    /// Requests holding a connection to this server now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Whether passive health lets requests through at `now` (a skipped server whose
    /// `fail_timeout` has passed is back, and counted up again).
    pub fn up(&self, now: Instant) -> bool {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        match health.down_until {
            Some(until) if now < until => false,
            Some(_) => {
                health.down_until = None;
                self.metrics.up.set(1);
                true
            }
            None => true,
        }
    }

    /// Counts a failure; the one that reaches `max_fails` takes the server out for
    /// `fail_timeout`.
    pub fn failed(&self, now: Instant) {
        self.metrics.failures.inc();
        let HealthRule {
            max_fails,
            fail_timeout,
        } = self.rule;
        if max_fails == 0 {
            return;
        }
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if health
            .since
            .is_none_or(|since| now.duration_since(since) >= fail_timeout)
        {
            health.fails = 0;
            health.since = Some(now);
        }
        health.fails += 1;
        if health.fails >= max_fails {
            health.fails = 0;
            health.since = None;
            health.down_until = Some(now + fail_timeout);
            self.metrics.up.set(0);
            tracing::warn!(server = %self.label, ?fail_timeout, "upstream server failed {max_fails} time(s): skipped for fail_timeout");
        }
    }

    /// A response head came: earlier failures are forgotten.
    pub fn succeeded(&self) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.fails = 0;
        health.since = None;
    }

    /// A new connection within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<AppSocket, Failure> {
        let connected = match &self.target {
            Target::Tcp(addr) => AppSocket::connect_tcp(*addr, timeout).await,
            Target::Host(resolver) => resolver.connect(timeout).await,
            Target::Unix(path) => AppSocket::connect_unix(path, timeout).await,
        };
        connected.map_err(|source| Failure::Connect {
            addr: self.label.to_string(),
            source,
        })
    }
}
