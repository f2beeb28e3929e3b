//! One HTTP/2 stream's life as its connection sees it: counted in flight from its request to
//! the end of its response body (`InFlight`, which the connection's idle timer reads through
//! `ConnState`), and recorded once when its body is done (`Finish`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::access::{Notes, Proto};
use crate::frontend::shared::{Finished, Shared};
use crate::http::RequestHead;
use crate::ingress::Client;
use crate::metrics::{SendPath, Side, Source, Tally, TransportKind};

/// What one response records when its body is done: metrics and the access log line.
pub(super) struct Finish {
    pub(super) shared: Arc<Shared>,
    /// `None` when the request head was refused.
    pub(super) req: Option<RequestHead>,
    /// Who a refused head came from; a placeholder when there is a request (its own is
    /// `req.client`).
    pub(super) refused: Client,
    pub(super) status: u16,
    pub(super) source: Source,
    pub(super) started: Instant,
    pub(super) notes: Notes,
    pub(super) stream: InFlight,
}

impl Finish {
    /// Records the response: `failed` is the side at fault when its body did not arrive
    /// whole.
    pub(super) fn record(self, tally: &Tally, failed: Option<Side>) {
        let done = Finished {
            req: self.req.as_ref(),
            status: self.status,
            source: self.source,
            started: self.started,
            tally,
            failed,
            proto: Proto::Http2,
            tls: self.conn().kind != TransportKind::Tcp,
            notes: &self.notes,
        };
        self.shared.record(self.client(), done);
    }

    /// Who the response goes to.
    pub(super) fn client(&self) -> &Client {
        self.req.as_ref().map_or(&self.refused, |req| &req.client)
    }

    /// The stream's connection.
    pub(super) fn conn(&self) -> &ConnState {
        &self.stream.0
    }
}

/// What the streams of one connection share with its loop: its transport, how many are in
/// flight, when the last one ended, and the switch that closes the connection at once.
pub(super) struct ConnState {
    /// `tls` for ALPN h2 (never kTLS), `tcp` for h2c.
    pub(super) kind: TransportKind,
    in_flight: AtomicUsize,
    /// When a stream last started or ended (at first: the accept), and whether any has.
    last_active: Mutex<(Instant, bool)>,
    pub(super) abort: CancellationToken,
}

impl ConnState {
    pub(super) fn new(kind: TransportKind) -> ConnState {
        ConnState {
            kind,
            in_flight: AtomicUsize::new(0),
            last_active: Mutex::new((Instant::now(), false)),
            abort: CancellationToken::new(),
        }
    }

    /// The path body bytes read into buffers take: encrypted by rustls, or written as they
    /// are on h2c.
    pub(super) fn path(&self) -> SendPath {
        match self.kind {
            TransportKind::Tcp => SendPath::Buffered,
            TransportKind::Ktls | TransportKind::Tls => SendPath::TlsBuffered,
        }
    }

    fn last_active(&self) -> (Instant, bool) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection will have been idle too long, if nothing starts before.
    pub(super) fn idle_deadline(
        &self,
        first: Duration,
        keepalive: Duration,
    ) -> tokio::time::Instant {
        let (since, served) = self.last_active();
        let timeout = if served { keepalive } else { first };
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return tokio::time::Instant::now() + timeout;
        }
        tokio::time::Instant::from_std(since + timeout)
    }

    pub(super) fn idle(&self, first: Duration, keepalive: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.idle_deadline(first, keepalive) <= tokio::time::Instant::now()
    }
}

/// One stream in flight, from its request to the end of its response body.
pub(super) struct InFlight(Arc<ConnState>);

impl InFlight {
    pub(super) fn start(conn: Arc<ConnState>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        *conn.last_active.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), true);
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last_active.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), true);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
