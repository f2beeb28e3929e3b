//! Building what a configuration serves with — the router (every root opened), the TLS
//! side, the disk cache, the spool, the proxy — at start-up and again on SIGHUP, with the
//! same checks both times. On a reload the parts whose settings did not change are kept, not
//! rebuilt: the same `Tls` (its session cache and ticket keys survive) when `[tls]` is
//! unchanged, the same `Cache` (its index and objects) when `cache.dir` is, with the new
//! limits, and the same `Spool` (its space accounting) when `spool.dir` is. Nothing running
//! is touched until every check has passed ([`Built::limits_into_force`] is the one step
//! that changes kept parts, taken at commit).
//!
//! What a reload cannot change is listed in [`NOT_RELOADED`]: those keys are logged and keep
//! their value until the next start.

use std::sync::Arc;

use super::error::StartError;
use crate::cache::Cache;
use crate::config::{Config, RedirectHttps};
use crate::frontend::{Generation, Shared};
use crate::metrics::Metrics;
use crate::proxy::{Buffering, Proxy};
use crate::route::Router;
use crate::spool::Spool;
use crate::tls::Tls;
use crate::upstream::Upstream;

/// The long-lived parts a configuration serves with, which a reload may keep.
#[derive(Clone)]
pub struct Resources {
    pub tls: Option<Arc<Tls>>,
    pub cache: Option<Arc<Cache>>,
    pub spool: Spool,
}

/// A configuration's parts, checked and ready to serve.
pub struct Built {
    pub router: Router,
    pub resources: Resources,
    /// Whether the TLS side, cache and spool were kept from the running configuration.
    pub kept: Kept,
}

/// What a reload kept rather than rebuilt.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kept {
    pub tls: bool,
    pub cache: bool,
    pub spool: bool,
}

/// Keys a reload leaves as they were (with why), each logged when a reload changes it.
pub const NOT_RELOADED: [(&str, &str); 4] = [
    (
        "server.max_connections",
        "the connection limit is shared by the workers as started",
    ),
    ("server.access_log", "the log format is set once"),
    ("server.pid_file", "the pid file is written at start-up"),
    (
        "server.upgrade_socket",
        "the upgrade socket is opened at start-up",
    ),
];

/// The keys of [`NOT_RELOADED`] whose value differs between `old` and `new`.
pub fn not_reloaded(old: &Config, new: &Config) -> Vec<(&'static str, &'static str)> {
    let (a, b) = (&old.server, &new.server);
    let changed = [
        a.max_connections != b.max_connections,
        a.access_log != b.access_log,
        a.pid_file != b.pid_file,
        a.upgrade_socket != b.upgrade_socket,
    ];
    NOT_RELOADED
        .into_iter()
        .zip(changed)
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

/// Opens, loads and checks everything `config` needs except its sockets; `running` is the
/// configuration in force and its parts, on a reload. Every problem is returned, in the
/// order start-up meets them (locations, TLS, cache, spool).
pub async fn build(
    config: &Config,
    running: Option<(&Config, &Resources)>,
    metrics: &Metrics,
) -> Result<Built, Vec<StartError>> {
    let mut errors = Vec::new();
    let mut kept = Kept::default();
    let router = Router::new(config).map_err(StartError::Locations);
    let router = router.map_err(|err| errors.push(err)).ok();

    let tls = match (&config.tls, running) {
        (None, _) => None,
        (Some(tls), Some((old, parts))) if old.tls.as_ref() == Some(tls) => {
            kept.tls = true;
            parts.tls.clone()
        }
        (Some(tls), _) => match Tls::new(tls, metrics).await {
            Ok(tls) => Some(Arc::new(tls)),
            Err(err) => {
                errors.push(StartError::Tls(err));
                None
            }
        },
    };

    let cache = match (&config.cache, running) {
        (None, _) => None,
        (Some(new), Some((_, parts)))
            if parts.cache.as_ref().is_some_and(|c| c.dir() == new.dir) =>
        {
            kept.cache = true;
            parts.cache.clone()
        }
        (Some(new), _) => {
            let (new, cache_metrics) = (new.clone(), metrics.cache.clone());
            let opened =
                tokio::task::spawn_blocking(move || Cache::open(&new, cache_metrics)).await;
            match opened {
                Ok(Ok(cache)) => Some(Arc::new(cache)),
                Ok(Err(err)) => {
                    errors.push(StartError::Cache(err));
                    None
                }
                Err(err) => {
                    errors.push(StartError::Worker(std::io::Error::other(err)));
                    None
                }
            }
        }
    };

    let spool = match running {
        Some((_, parts)) if parts.spool.dir_is(&config.spool) => {
            kept.spool = true;
            parts.spool.clone()
        }
        _ => Spool::new(&config.spool, metrics.spool.clone()),
    };
    if proxied(config)
        && let Err(source) = spool.check()
    {
        errors.push(StartError::Spool {
            dir: config.spool.dir.clone(),
            source,
        });
    }

    match router {
        Some(router) if errors.is_empty() => Ok(Built {
            router,
            resources: Resources { tls, cache, spool },
            kept,
        }),
        _ => Err(errors),
    }
}

impl Built {
    /// Gives the kept cache and spool the new configuration's limits (a new cache or spool
    /// has them already). Called once the reload is certain to go ahead.
    pub fn limits_into_force(&self, config: &Config) {
        if let (true, Some(cache), Some(settings)) =
            (self.kept.cache, &self.resources.cache, &config.cache)
        {
            cache.set_limits(settings);
        }
        if self.kept.spool {
            self.resources.spool.set_limits(&config.spool);
        }
    }
}

fn proxied(config: &Config) -> bool {
    config.upstream.is_some() || !config.upstreams.is_empty()
}

/// Stops exporting the series of upstream servers (and queues) `config` no longer has.
fn forget_removed_upstreams(config: &Config, metrics: &Metrics) {
    let default = config
        .upstream
        .as_ref()
        .map(|up| (crate::config::DEFAULT_UPSTREAM, up));
    let all = default.into_iter().chain(
        config
            .upstreams
            .iter()
            .map(|(name, up)| (name.as_str(), up)),
    );
    let mut servers = Vec::new();
    let mut queues = Vec::new();
    for (name, up) in all {
        servers.extend(up.servers.iter().map(|a| (name.to_string(), a.to_string())));
        if up.max_conns.is_some() {
            queues.push(name.to_string());
        }
    }
    metrics.upstreams.retain(&servers, &queues);
}

/// The generation `config` serves new connections with; `https_port` is the first TLS
/// listener's bound port (for `server.redirect_https = true`).
pub fn generation(
    config: &Config,
    router: Router,
    resources: &Resources,
    metrics: &Metrics,
    https_port: Option<u16>,
    retire: tokio_util::sync::CancellationToken,
) -> Generation {
    // A client sending a request body gets as long between reads as for its head.
    let client_timeout = config.server.header_timeout.max(config.server.send_timeout);
    forget_removed_upstreams(config, metrics);
    let proxy = proxied(config).then(|| {
        let build =
            |name: &str, up| Upstream::new(name, up, &config.offload, client_timeout, metrics);
        let default = config
            .upstream
            .as_ref()
            .map(|up| build(crate::config::DEFAULT_UPSTREAM, up));
        let named = config.upstreams.iter().map(|(name, up)| build(name, up));
        let buffering = Buffering {
            spool: resources.spool.clone(),
            responses: config.spool.response_buffering,
            requests: config.spool.request_buffering,
            request_memory: config.spool.request_memory,
            max_body_size: config.server.max_body_size,
            client_timeout,
        };
        Proxy::new(
            default,
            named.collect(),
            resources.cache.clone(),
            config.offload.clone(),
            metrics.clone(),
            buffering,
        )
    });
    let shared = Shared {
        router,
        proxy,
        metrics: metrics.clone(),
        server: config.server.clone(),
        io: config.io.clone(),
        redirect_https: match config.server.redirect_https {
            None => None,
            Some(RedirectHttps::Port(port)) => Some(port.get()),
            // Checked by the config: `true` comes with [tls], so with a TLS listener.
            Some(RedirectHttps::TlsListener) => https_port,
        },
    };
    Generation {
        shared: Arc::new(shared),
        tls: resources.tls.clone(),
        proxy_protocol: config.server.proxy_protocol,
        tls_proxy_protocol: config.tls.as_ref().is_some_and(|tls| tls.proxy_protocol),
        retire,
    }
}
