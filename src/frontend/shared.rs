//! What every connection task shares (the router, the proxy, the metrics, the server's
//! settings), and the two things every connection does with it whatever its protocol:
//! counting itself open ([`Shared::open`]) and recording each finished response, in the
//! metrics and the access log, in one place ([`Shared::record`]).

use std::time::Instant;

use crate::access::{self, Entry, Notes, Proto};
use crate::config::{Io, Server};
use crate::http::RequestHead;
use crate::ingress::Client;
use crate::metrics::{Metrics, Side, Source, Tally, TransportKind};
use crate::proxy::Proxy;
use crate::route::Router;

/// What every connection task shares.
pub struct Shared {
    pub router: Router,
    /// The app (`[upstream]`) and its cache (`[cache]`), if configured.
    pub proxy: Option<Proxy>,
    pub metrics: Metrics,
    pub server: Server,
    pub io: Io,
    /// `server.redirect_https` resolved to a port (the first TLS listener's as bound): the
    /// plaintext listeners answer every request with a redirect there.
    pub redirect_https: Option<u16>,
}

impl Shared {
    /// Counts a new connection of `kind` in `ferry_connections_total`, and in
    /// `ferry_connections_active` for as long as the returned guard lives (a panic included).
    pub fn open(&self, kind: TransportKind) -> Active {
        let label = [kind.label()];
        self.metrics
            .connections_total
            .with_label_values(&label)
            .inc();
        let gauge = self.metrics.connections_active.with_label_values(&label);
        gauge.inc();
        Active(gauge)
    }

    /// Records one finished response (HTTP/1.1, HTTP/2 or a tunnel's end) to `client`: its
    /// metrics and its access log line, with the side at fault when it failed.
    /// Returns when it was recorded (the response's end), for a caller that needs the time.
    pub fn record(&self, client: &Client, done: Finished<'_>) -> Instant {
        let now = Instant::now();
        let duration = now.saturating_duration_since(done.started);
        let (status, source, tally) = (done.status, done.source, done.tally);
        self.metrics
            .response(source, status, tally, duration.as_secs_f64());
        if let Some(side) = done.failed {
            self.metrics.incomplete(side);
        }
        access::log(&Entry {
            client,
            req: done.req,
            proto: done.proto,
            tls: done.tls,
            status,
            tally,
            source,
            failed: done.failed,
            notes: done.notes,
            duration,
        });
        now
    }
}

/// One finished response, as it is recorded.
pub struct Finished<'a> {
    /// `None` when the request head was refused.
    pub req: Option<&'a RequestHead>,
    pub status: u16,
    pub source: Source,
    pub started: Instant,
    /// The body bytes sent, per path.
    pub tally: &'a Tally,
    /// The side at fault when the body did not arrive whole.
    pub failed: Option<Side>,
    pub proto: Proto,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// What the proxy learnt on the way, for the access log.
    pub notes: &'a Notes,
}

/// One count in `ferry_connections_active`, given back when dropped.
pub struct Active(prometheus::IntGauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}
