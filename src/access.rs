//! The access log: one event per response on the `access` tracing target, which `main` routes
//! to stdout as text or JSON (or nowhere) apart from the diagnostic log on stderr.
//!
//! What a line says is one [`Entry`], built in one place (`frontend::shared::Shared::record`)
//! for HTTP/1.1 and HTTP/2 alike; what the proxy learnt on the way (the app server that
//! answered, the cache's verdict) travels with the reply as [`Notes`]. A new field is one
//! field of `Entry` and one line of [`log`]. Durations are whole microseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::http::Client;
use crate::http::RequestHead;
use crate::metrics::{CacheResult, Side, Source, Tally};

/// The tracing target of access log events.
pub const TARGET: &str = "access";

/// False once `main` has routed the access log nowhere (`access_log = "off"`). Asking
/// tracing instead costs a dispatcher lookup and a filter walk per response, because the
/// per-layer filters leave every callsite's interest at "sometimes".
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether access log events are produced at all (on unless turned off).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether access log events are produced at all.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The protocol a request came by (`proto` field, nginx `$server_protocol`).
pub use crate::metrics::Proto;

/// One exchange with the app, as the access log tells it.
#[derive(Debug, Clone)]
pub struct UpstreamVisit {
    /// The app server that answered, as configured (`127.0.0.1:3000`, `app:3000`,
    /// `unix:/run/app.sock`).
    pub addr: Arc<str>,
    /// From asking the app (a pooled socket taken or a connection opened, the request and
    /// its body written) to its response head read (nginx `$upstream_header_time`).
    pub time: Duration,
    /// Request body bytes ferry read from the client and sent to the app.
    pub request_bytes: u64,
}

/// What a reply learnt on its way that only the access log wants: set by the proxy, empty
/// for the rest.
#[derive(Debug, Clone, Default)]
pub struct Notes {
    /// The app server that answered, or the one tried last when none did (then `time` is
    /// until the failure); `None`: the app was not asked.
    pub upstream: Option<UpstreamVisit>,
    /// The cache's verdict (its `X-Cache` value); `None` without a cache.
    pub cache: Option<CacheResult>,
}

/// One access log line.
pub struct Entry<'a> {
    /// Who asked: the client's address, the connection's peer, and the request's ID.
    pub client: &'a Client,
    /// `None` when the request head was refused.
    pub req: Option<&'a RequestHead>,
    pub proto: Proto,
    /// Whether the connection is TLS (kTLS or userspace).
    pub tls: bool,
    pub status: u16,
    /// The body bytes sent, per path.
    pub tally: &'a Tally,
    pub source: Source,
    /// The side at fault when the body did not arrive whole.
    pub failed: Option<Side>,
    pub notes: &'a Notes,
    /// From the request head read to the response's last byte written.
    pub duration: Duration,
}

/// Logs one response (see the field list in config/ferry.toml, `server.access_log`).
/// Header values ferry did not check are logged as `-` when they hold control bytes or
/// are not UTF-8; the text format quotes them (and only them). `upstream_us` is absent when
/// the app gave no response head.
pub fn log(entry: &Entry<'_>) {
    if !enabled() {
        return;
    }
    let req = entry.req;
    let (method, target) = req.map_or(("-", "-"), |r| (r.method.as_str(), r.target.as_str()));
    let header = |name: &str| req.and_then(|r| r.header_str(name)).unwrap_or("-");
    let proto = match (entry.proto, req) {
        (Proto::Http2, _) => "HTTP/2",
        (Proto::Http1, Some(req)) => req.version.as_str(),
        (Proto::Http1, None) => "-",
    };
    let upstream = entry.notes.upstream.as_ref();
    let upstream_addr = upstream.map_or("-", |u| &*u.addr);
    let upstream_us = upstream.map(|u| micros(u.time));
    let request_bytes = upstream.map_or(0, |u| u.request_bytes);
    let cache = entry.notes.cache.map_or("-", CacheResult::header);
    tracing::info!(
        target: "access",
        client = %entry.client.addr,
        peer = %entry.client.peer,
        request_id = %entry.client.request_id,
        host = header("host"),
        proto = %proto,
        tls = entry.tls,
        method = %method,
        "target" = %target,
        status = entry.status,
        bytes = entry.tally.total(),
        request_bytes,
        path = %entry.tally.path().label(),
        source = %entry.source.label(),
        cache = %cache,
        upstream = %upstream_addr,
        upstream_us,
        failed = %entry.failed.map_or("-", Side::label),
        user_agent = header("user-agent"),
        referer = header("referer"),
        duration_us = micros(entry.duration),
    );
}

/// Whole microseconds, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
