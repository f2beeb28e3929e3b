//! ferry's Prometheus metric families (names and labels are the product's interface: see
//! DESIGN.md). Every label has a closed set of values; all series of those sets are created at
//! start-up, so dashboards see zeros instead of gaps and `rate()` works from the first scrape.
//! No label ever carries a URL, host or client address.

use std::time::Duration;

use per_response::{CODES, DURATION_BUCKETS, PerResponse, code_index};

use prometheus::{
    Encoder, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

mod build;
mod certificates;
mod labels;
mod per_response;
mod spool;
mod upstreams;

pub use certificates::{CertificateMetrics, ReloadResult};
pub use labels::{Fallback, Proto, SendPath, Side, Source, Tally, TransportKind};
pub use spool::{SpoolDirection, SpoolMetrics, SpoolSkip};
pub use upstreams::{QueueMetrics, QueueOutcome, ServerMetrics, UpstreamMetrics};

/// What the disk cache made of one request (`result` label of ferry_cache_requests_total, and
/// the `X-Cache` response header in upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Served from a fresh stored object.
    Hit,
    /// Nothing stored: the app answered (and the answer may have been stored).
    Miss,
    /// A stored object had expired and could not be revalidated: the app's new answer went out.
    Expired,
    /// An expired object served because the app failed (stale-if-error) or while it is
    /// refreshed in the background (stale-while-revalidate).
    Stale,
    /// An expired object the app confirmed with 304 Not Modified, served from the cache.
    Revalidated,
    /// The request could not use the cache (method, Authorization, client no-store, ...).
    Bypass,
}

impl CacheResult {
    pub const ALL: [CacheResult; 6] = [
        CacheResult::Hit,
        CacheResult::Miss,
        CacheResult::Expired,
        CacheResult::Stale,
        CacheResult::Revalidated,
        CacheResult::Bypass,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Expired => "expired",
            CacheResult::Stale => "stale",
            CacheResult::Revalidated => "revalidated",
            CacheResult::Bypass => "bypass",
        }
    }

    /// The `X-Cache` header value.
    pub fn header(self) -> &'static str {
        match self {
            CacheResult::Hit => "HIT",
            CacheResult::Miss => "MISS",
            CacheResult::Expired => "EXPIRED",
            CacheResult::Stale => "STALE",
            CacheResult::Revalidated => "REVALIDATED",
            CacheResult::Bypass => "BYPASS",
        }
    }
}

/// How a cache fill moved the body into the cache file (`path` label of
/// ferry_cache_fill_bytes_total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillPath {
    /// tee(2) duplicated the client's pipe into a second one spliced to the file: no
    /// user-space copy.
    Tee,
    /// Written to the file from the buffer the body was already in (chunked bodies, userspace
    /// TLS, HTTP/2).
    Buffered,
}

impl FillPath {
    pub const ALL: [FillPath; 2] = [FillPath::Tee, FillPath::Buffered];

    pub fn label(self) -> &'static str {
        match self {
            FillPath::Tee => "tee",
            FillPath::Buffered => "buffered",
        }
    }
}

/// The disk cache's series, every label value created at start-up.
#[derive(Clone)]
pub struct CacheMetrics {
    requests: Vec<IntCounter>,
    /// `ferry_cache_bytes`: bytes of the stored objects (metadata and body) on disk.
    pub bytes: IntGauge,
    /// `ferry_cache_objects`: objects stored.
    pub objects: IntGauge,
    /// `ferry_cache_max_bytes`: the configured `cache.max_size` (0 without [cache]).
    pub max_bytes: IntGauge,
    /// `ferry_cache_evictions_total`: objects removed to stay under `cache.max_size`.
    pub evictions: IntCounter,
    fill_bytes: Vec<IntCounter>,
}

impl CacheMetrics {
    fn new(registry: &Registry) -> CacheMetrics {
        let requests = IntCounterVec::new(
            Opts::new(
                "ferry_cache_requests_total",
                "Requests that reached the disk cache, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let bytes = IntGauge::new(
            "ferry_cache_bytes",
            "Bytes of the objects stored in the disk cache.",
        )
        .expect("valid metric");
        let objects = IntGauge::new("ferry_cache_objects", "Objects stored in the disk cache.")
            .expect("valid metric");
        let max_bytes = IntGauge::new(
            "ferry_cache_max_bytes",
            "The configured cache.max_size in bytes (0 without a [cache] section).",
        )
        .expect("valid metric");
        let evictions = IntCounter::new(
            "ferry_cache_evictions_total",
            "Objects removed from the disk cache to stay under cache.max_size.",
        )
        .expect("valid metric");
        let fill_bytes = IntCounterVec::new(
            Opts::new(
                "ferry_cache_fill_bytes_total",
                "Body bytes written into cache files, by how they got there.",
            ),
            &["path"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bytes.clone()),
            Box::new(objects.clone()),
            Box::new(max_bytes.clone()),
            Box::new(evictions.clone()),
            Box::new(fill_bytes.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        CacheMetrics {
            requests: CacheResult::ALL
                .iter()
                .map(|r| requests.with_label_values(&[r.label()]))
                .collect(),
            bytes,
            objects,
            max_bytes,
            evictions,
            fill_bytes: FillPath::ALL
                .iter()
                .map(|p| fill_bytes.with_label_values(&[p.label()]))
                .collect(),
        }
    }

    /// Counts one request the cache answered or passed on.
    pub fn request(&self, result: CacheResult) {
        self.requests[result as usize].inc();
    }

    /// Counts body bytes written into a cache file.
    pub fn fill(&self, path: FillPath, bytes: u64) {
        self.fill_bytes[path as usize].inc_by(bytes);
    }
}

/// How one exchange with the app ended (`outcome` label of ferry_upstream_requests_total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// A response head arrived.
    Ok,
    /// The app refused or could not be reached (502).
    ConnectError,
    /// No connection or no response head in time (504).
    Timeout,
    /// The response head was malformed or its framing ambiguous (502).
    BadResponse,
    /// The app closed or reset the connection before a response head (502).
    Closed,
    /// The client went away while its request body was being forwarded.
    ClientAbort,
    /// Not sent: the upstream's queue was full, or no connection slot came free in time (503).
    Overloaded,
}

impl UpstreamOutcome {
    pub const ALL: [UpstreamOutcome; 7] = [
        UpstreamOutcome::Ok,
        UpstreamOutcome::ConnectError,
        UpstreamOutcome::Timeout,
        UpstreamOutcome::BadResponse,
        UpstreamOutcome::Closed,
        UpstreamOutcome::ClientAbort,
        UpstreamOutcome::Overloaded,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UpstreamOutcome::Ok => "ok",
            UpstreamOutcome::ConnectError => "connect_error",
            UpstreamOutcome::Timeout => "timeout",
            UpstreamOutcome::BadResponse => "bad_response",
            UpstreamOutcome::Closed => "closed",
            UpstreamOutcome::ClientAbort => "client_abort",
            UpstreamOutcome::Overloaded => "overloaded",
        }
    }
}

/// `code` label: the status class.
pub fn code_class(status: u16) -> &'static str {
    CODES[code_index(status)]
}

/// The `(from, to)` send path fallbacks this build can take, and their reasons.
const FALLBACKS: [(&str, &str); 10] = [
    ("sendfile", "splice"),
    ("splice", "buffered"),
    ("ktls_sendfile", "ktls_splice"),
    ("ktls_splice", "buffered"),
    // A filesystem refusing O_DIRECT: the connection's file path (per send_path and transport).
    ("directio", "sendfile"),
    ("directio", "splice"),
    ("directio", "buffered"),
    ("directio", "ktls_sendfile"),
    ("directio", "ktls_splice"),
    ("directio", "tls_buffered"),
];
/// `result` of ferry_proxy_protocol_headers_total: a source address taken (`ok`); the
/// connection's own peer kept (`local`: LOCAL command, UNKNOWN, a non-TCP family); refused
/// for bytes that are no valid header (`invalid`), for none in time (`timeout`), or because
/// the peer closed first (`closed`).
pub const PROXY_PROTOCOL_RESULTS: [&str; 5] = ["ok", "local", "invalid", "timeout", "closed"];

const FALLBACK_REASONS: [&str; 3] = ["einval", "enosys", "error"];

/// All of ferry's metric families, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    fallbacks: IntCounterVec,
    pub connections_active: IntGaugeVec,
    pub connections_total: IntCounterVec,
    /// Connections by the HTTP version they spoke, counted once it is known.
    http_connections: IntCounterVec,
    /// Idle connections closed to make room at `server.max_connections`.
    pub connections_reclaimed: IntCounter,
    responses_incomplete: IntCounterVec,
    upstream_requests: IntCounterVec,
    upstream_duration: prometheus::Histogram,
    tls_handshakes: IntCounterVec,
    tls_resumed: IntCounterVec,
    proxy_protocol: IntCounterVec,
    /// `ferry_config_reloads_total{result}`: reloads (SIGHUP) put in force or refused.
    config_reloads: [IntCounter; 2],
    /// The disk cache's families (registered whether or not `[cache]` is configured).
    pub cache: CacheMetrics,
    /// The spool's families.
    pub spool: SpoolMetrics,
    /// Per server and per queue of the configured upstreams.
    pub upstreams: UpstreamMetrics,
    /// The serving TLS certificate: reloads and expiry.
    pub certificates: CertificateMetrics,
    /// The series every response touches, counted per thread.
    per_response: PerResponse,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let responses_incomplete = IntCounterVec::new(
            Opts::new(
                "ferry_responses_incomplete_total",
                "Responses whose body did not arrive whole, by the side at fault.",
            ),
            &["side"],
        )
        .expect("valid metric");
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "ferry_fallbacks_total",
                "Send path fallbacks, by path left, path taken and reason.",
            ),
            &["from", "to", "reason"],
        )
        .expect("valid metric");
        let connections_active = IntGaugeVec::new(
            Opts::new(
                "ferry_connections_active",
                "Open client connections, by transport.",
            ),
            &["transport"],
        )
        .expect("valid metric");
        let connections_total = IntCounterVec::new(
            Opts::new(
                "ferry_connections_total",
                "Client connections accepted, by transport.",
            ),
            &["transport"],
        )
        .expect("valid metric");
        let http_connections = IntCounterVec::new(
            Opts::new(
                "ferry_http_connections_total",
                "Client connections by the HTTP version they spoke (counted at their first \
                 request, or HTTP/2 connection preface) and transport; HTTP/2 on tcp is h2c.",
            ),
            &["proto", "transport"],
        )
        .expect("valid metric");
        let connections_reclaimed = IntCounter::new(
            "ferry_connections_reclaimed_total",
            "Idle client connections closed to make room for a new one at server.max_connections.",
        )
        .expect("valid metric");

        let upstream_requests = IntCounterVec::new(
            Opts::new(
                "ferry_upstream_requests_total",
                "Requests forwarded to the app, by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let upstream_duration = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "ferry_upstream_duration_seconds",
                "Time from connecting to (or reusing) an app connection to its response head.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
        )
        .expect("valid metric");

        let tls_handshakes = IntCounterVec::new(
            Opts::new(
                "ferry_tls_handshakes_total",
                "TLS handshakes, by result (ok, error, timeout) and whether kTLS took the connection.",
            ),
            &["result", "ktls"],
        )
        .expect("valid metric");

        let tls_resumed = IntCounterVec::new(
            Opts::new(
                "ferry_tls_resumed_total",
                "TLS handshakes that resumed a session (by ticket or from the session cache), \
                 a part of ferry_tls_handshakes_total{result=\"ok\"}, by whether kTLS took the \
                 connection.",
            ),
            &["ktls"],
        )
        .expect("valid metric");

        let proxy_protocol = IntCounterVec::new(
            Opts::new(
                "ferry_proxy_protocol_headers_total",
                "PROXY protocol headers read on listeners that require one, by result; \
                 connections without a valid one are closed.",
            ),
            &["result"],
        )
        .expect("valid metric");

        let config_reloads = IntCounterVec::new(
            Opts::new(
                "ferry_config_reloads_total",
                "Configuration reloads (SIGHUP), by result: ok (in force for new connections) \
                 or error (refused; the running configuration stays).",
            ),
            &["result"],
        )
        .expect("valid metric");

        let per_response = PerResponse::new();
        for collector in [
            Box::new(per_response.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(config_reloads.clone()),
            Box::new(fallbacks.clone()),
            Box::new(responses_incomplete.clone()),
            Box::new(connections_active.clone()),
            Box::new(connections_total.clone()),
            Box::new(http_connections.clone()),
            Box::new(connections_reclaimed.clone()),
            Box::new(upstream_requests.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(tls_handshakes.clone()),
            Box::new(tls_resumed.clone()),
            Box::new(proxy_protocol.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        build::register(&registry);

        for (from, to) in FALLBACKS {
            for reason in FALLBACK_REASONS {
                fallbacks.with_label_values(&[from, to, reason]);
            }
        }
        for side in Side::ALL {
            responses_incomplete.with_label_values(&[side.label()]);
        }
        for kind in TransportKind::ALL {
            connections_active.with_label_values(&[kind.label()]);
            connections_total.with_label_values(&[kind.label()]);
            for proto in Proto::ALL {
                http_connections.with_label_values(&[proto.label(), kind.label()]);
            }
        }
        for reason in Fallback::ALL {
            fallbacks.with_label_values(&["ktls", "tls_buffered", reason.label()]);
        }
        for (result, ktls) in [
            ("ok", "true"),
            ("ok", "false"),
            ("error", "false"),
            ("timeout", "false"),
        ] {
            tls_handshakes.with_label_values(&[result, ktls]);
        }
        for ktls in ["true", "false"] {
            tls_resumed.with_label_values(&[ktls]);
        }
        for result in PROXY_PROTOCOL_RESULTS {
            proxy_protocol.with_label_values(&[result]);
        }

        for outcome in UpstreamOutcome::ALL {
            upstream_requests.with_label_values(&[outcome.label()]);
        }
        let cache = CacheMetrics::new(&registry);
        let spool = SpoolMetrics::new(&registry);
        let upstreams = UpstreamMetrics::new(&registry);
        let certificates = CertificateMetrics::new(&registry);

        Metrics {
            per_response,
            tls_handshakes,
            tls_resumed,
            proxy_protocol,
            config_reloads: [
                config_reloads.with_label_values(&["ok"]),
                config_reloads.with_label_values(&["error"]),
            ],
            cache,
            spool,
            upstreams,
            certificates,
            upstream_requests,
            upstream_duration,
            registry,
            fallbacks,
            connections_active,
            connections_total,
            http_connections,
            connections_reclaimed,
            responses_incomplete,
        }
    }

    /// Counts a connection that has shown which HTTP version it speaks.
    pub fn http_connection(&self, proto: Proto, kind: TransportKind) {
        self.http_connections
            .with_label_values(&[proto.label(), kind.label()])
            .inc();
    }

    /// Records one finished (or abandoned) response. (Creating every series of the closed
    /// label sets in `PerResponse::new` is also what makes them appear at zero.)
    pub fn response(&self, source: Source, status: u16, tally: &Tally, took: Duration) {
        self.per_response.record(source, status, tally, took);
    }

    /// Counts a response whose body did not arrive whole, against the side at fault.
    pub fn incomplete(&self, side: Side) {
        self.responses_incomplete
            .with_label_values(&[side.label()])
            .inc();
    }

    /// Records one exchange with the app; `seconds` until its response head (or failure).
    pub fn upstream(&self, outcome: UpstreamOutcome, seconds: f64) {
        self.upstream_requests
            .with_label_values(&[outcome.label()])
            .inc();
        if outcome == UpstreamOutcome::Ok {
            self.upstream_duration.observe(seconds);
        }
    }

    /// Counts one TLS handshake.
    pub fn tls_handshake(&self, result: &str, ktls: bool) {
        self.tls_handshakes
            .with_label_values(&[result, if ktls { "true" } else { "false" }])
            .inc();
    }

    /// Counts one handshake that resumed a session (also counted by `tls_handshake`).
    pub fn tls_resumed(&self, ktls: bool) {
        self.tls_resumed
            .with_label_values(&[if ktls { "true" } else { "false" }])
            .inc();
    }

    /// Counts one PROXY protocol header read (or not): one of [`PROXY_PROTOCOL_RESULTS`].
    pub fn proxy_protocol(&self, result: &'static str) {
        debug_assert!(PROXY_PROTOCOL_RESULTS.contains(&result));
        self.proxy_protocol.with_label_values(&[result]).inc();
    }

    /// Counts one configuration reload, put in force (`ok`) or refused.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads[usize::from(!ok)].inc();
    }

    /// Counts one send path fallback.
    pub fn fallback(&self, from: &str, to: &str, reason: &str) {
        self.fallbacks.with_label_values(&[from, to, reason]).inc();
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cache series is exported from the start, at zero, so dashboards see no gaps.
    #[test]
    fn cache_series_exist_at_zero() {
        let metrics = Metrics::new();
        let text = String::from_utf8(metrics.encode()).unwrap_or_default();
        for result in CacheResult::ALL {
            let line = format!(
                "ferry_cache_requests_total{{result=\"{}\"}} 0",
                result.label()
            );
            assert!(text.contains(&line), "{line} missing");
        }
        for path in FillPath::ALL {
            let line = format!(
                "ferry_cache_fill_bytes_total{{path=\"{}\"}} 0",
                path.label()
            );
            assert!(text.contains(&line), "{line} missing");
        }
        for line in [
            "ferry_cache_bytes 0",
            "ferry_cache_objects 0",
            "ferry_cache_max_bytes 0",
            "ferry_cache_evictions_total 0",
        ] {
            assert!(text.contains(line), "{line} missing");
        }
        let line = "ferry_responses_total{code=\"2xx\",path=\"sendfile\",source=\"cache\"} 0";
        assert!(text.contains(line), "{line} missing");
        metrics.cache.request(CacheResult::Revalidated);
        metrics.cache.fill(FillPath::Tee, 7);
        let text = String::from_utf8(metrics.encode()).unwrap_or_default();
        assert!(text.contains("ferry_cache_requests_total{result=\"revalidated\"} 1"));
        assert!(text.contains("ferry_cache_fill_bytes_total{path=\"tee\"} 7"));
    }
}
