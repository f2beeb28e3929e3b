//! The families of named upstreams and their servers: requests and failures per server,
//! whether passive health has it in use, requests in flight on it, and each upstream's
//! queue (its length, and how each wait ended).
//!
//! Labels: `upstream` is a configured name (`default` for `[upstream]`) and `server` an
//! address as written in the configuration. Both come from the config file, never from a
//! request, so the sets are closed; their series are created when the upstreams are built.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// How a wait in an upstream's queue ended (`outcome` of `ferry_upstream_queue_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOutcome {
    /// A connection slot came free and the request went on.
    Served,
    /// No slot came free within `queue_timeout`: 503.
    Timeout,
    /// The queue was full already: 503 at once.
    Full,
}

impl QueueOutcome {
    pub const ALL: [QueueOutcome; 3] = [Self::Served, Self::Timeout, Self::Full];

    pub fn label(self) -> &'static str {
        match self {
            Self::Served => "served",
            Self::Timeout => "timeout",
            Self::Full => "full",
        }
    }
}

/// The families; handles per server and per queue are looked up once, when an upstream is
/// built.
#[derive(Clone)]
pub struct UpstreamMetrics {
    server_requests: IntCounterVec,
    server_failures: IntCounterVec,
    server_up: IntGaugeVec,
    server_active: IntGaugeVec,
    queue_length: IntGaugeVec,
    queue: IntCounterVec,
}

/// One server's series.
#[derive(Debug, Clone)]
pub struct ServerMetrics {
    /// Attempts sent to this server (a retried request counts on each server it tried).
    pub requests: IntCounter,
    /// Attempts that failed in a way passive health counts.
    pub failures: IntCounter,
    /// 1 while the server takes requests, 0 while passive health skips it.
    pub up: IntGauge,
    /// Requests holding a connection to this server (connecting or in use).
    pub active: IntGauge,
}

/// One upstream's queue series.
#[derive(Debug, Clone)]
pub struct QueueMetrics {
    pub length: IntGauge,
    outcomes: [IntCounter; 3],
}

impl QueueMetrics {
    pub fn ended(&self, outcome: QueueOutcome) {
        self.outcomes[outcome as usize].inc();
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl UpstreamMetrics {
    pub(super) fn new(registry: &Registry) -> UpstreamMetrics {
        let both = ["upstream", "server"];
        let metrics = UpstreamMetrics {
            server_requests: counter(
                "ferry_upstream_server_requests_total",
                "Attempts sent to each server of each upstream (a retry counts again).",
                &both,
            ),
            server_failures: counter(
                "ferry_upstream_server_failures_total",
                "Attempts that failed before a response head (connect error or timeout, \
                 reset or close), counted by passive health.",
                &both,
            ),
            server_up: gauge(
                "ferry_upstream_server_up",
                "1 while a server takes requests, 0 while passive health skips it.",
                &both,
            ),
            server_active: gauge(
                "ferry_upstream_server_active",
                "Requests holding a connection to a server (connecting or in use).",
                &both,
            ),
            queue_length: gauge(
                "ferry_upstream_queue_length",
                "Requests waiting for a connection slot under an upstream's max_conns.",
                &["upstream"],
            ),
            queue: counter(
                "ferry_upstream_queue_total",
                "Waits in an upstream's queue, by how they ended (served, timeout, full).",
                &["upstream", "outcome"],
            ),
        };
        for collector in [
            Box::new(metrics.server_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.server_failures.clone()),
            Box::new(metrics.server_up.clone()),
            Box::new(metrics.server_active.clone()),
            Box::new(metrics.queue_length.clone()),
            Box::new(metrics.queue.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        metrics
    }

    /// The series of `server` (as configured) of the upstream `upstream`; it starts up.
    pub fn server(&self, upstream: &str, server: &str) -> ServerMetrics {
        let labels = [upstream, server];
        let metrics = ServerMetrics {
            requests: self.server_requests.with_label_values(&labels),
            failures: self.server_failures.with_label_values(&labels),
            up: self.server_up.with_label_values(&labels),
            active: self.server_active.with_label_values(&labels),
        };
        metrics.up.set(1);
        metrics
    }

    /// Drops the series of every server not in `servers` ((upstream, server) pairs) and the
    /// queue series of every upstream not in `queues`: after a reload, a server or upstream
    /// taken out of the configuration stops being exported instead of showing its last
    /// values forever. (A request still in flight on it counts into a detached series.)
    pub fn retain(&self, servers: &[(String, String)], queues: &[String]) {
        let mut gone: Vec<(String, String)> = [
            present(&self.server_requests),
            present(&self.server_failures),
            present(&self.server_up),
            present(&self.server_active),
        ]
        .into_iter()
        .flatten()
        .filter_map(|labels| Some((label(&labels, "upstream")?, label(&labels, "server")?)))
        .filter(|pair| !servers.contains(pair))
        .collect();
        gone.sort();
        gone.dedup();
        for (upstream, server) in &gone {
            let values = [upstream.as_str(), server.as_str()];
            // A family may lack the series (never touched): nothing to remove there.
            let _ = self.server_requests.remove_label_values(&values);
            let _ = self.server_failures.remove_label_values(&values);
            let _ = self.server_up.remove_label_values(&values);
            let _ = self.server_active.remove_label_values(&values);
        }
        let queued = present(&self.queue_length).into_iter();
        for upstream in queued.filter_map(|labels| label(&labels, "upstream")) {
            if queues.contains(&upstream) {
                continue;
            }
            let _ = self.queue_length.remove_label_values(&[upstream.as_str()]);
            for outcome in QueueOutcome::ALL {
                let values = [upstream.as_str(), outcome.label()];
                let _ = self.queue.remove_label_values(&values);
            }
        }
    }

    /// The queue series of the upstream `upstream`.
    pub fn queue(&self, upstream: &str) -> QueueMetrics {
        QueueMetrics {
            length: self.queue_length.with_label_values(&[upstream]),
            outcomes: QueueOutcome::ALL
                .map(|o| self.queue.with_label_values(&[upstream, o.label()])),
        }
    }
}

/// The labels (name, value) of every series `family` has.
fn present(family: &impl prometheus::core::Collector) -> Vec<Vec<(String, String)>> {
    family
        .collect()
        .iter()
        .flat_map(|mf| mf.get_metric())
        .map(|m| {
            let pairs = m.get_label().iter();
            pairs
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect()
        })
        .collect()
}

/// The value of label `name` in `labels`.
fn label(labels: &[(String, String)], name: &str) -> Option<String> {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}
