//! What one HTTP/2 connection's streams share (`ConnState`: the server's state, the peer,
//! the transport's kind, the switch that closes the connection at once), and the record of
//! one response, made once when its body is done however it ends (`Finish`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::access::{Notes, Proto};
use crate::frontend::shared::{Finished, Shared};
use crate::http::RequestHead;
use crate::ingress::Client;
use crate::metrics::{SendPath, Side, Source, Tally, TransportKind};

/// What the stream handlers and body producers of one connection share with its driver.
pub(super) struct ConnState {
    pub(super) shared: Arc<Shared>,
    /// `tls` for ALPN h2 (never kTLS), `tcp` for h2c.
    pub(super) kind: TransportKind,
    /// The connection's peer (the PROXY protocol source where the listener takes one).
    pub(super) peer: SocketAddr,
    /// Whether `peer` is a trusted proxy.
    pub(super) trusted: bool,
    /// Cancelled by a body producer whose stream took nothing for `send_timeout`: the
    /// driver closes the connection.
    pub(super) abort: CancellationToken,
}

impl ConnState {
    /// The path body bytes read into buffers take: encrypted by rustls, or written as they
    /// are on h2c.
    pub(super) fn path(&self) -> SendPath {
        match self.kind {
            TransportKind::Tcp => SendPath::Buffered,
            TransportKind::Ktls | TransportKind::Tls => SendPath::TlsBuffered,
        }
    }
}

/// What one response records when its body is done: metrics and the access log line.
pub(super) struct Finish {
    pub(super) conn: Arc<ConnState>,
    /// `None` when the request head was refused.
    pub(super) req: Option<RequestHead>,
    /// Who a refused head came from; a placeholder when there is a request (its own is
    /// `req.client`).
    pub(super) refused: Client,
    pub(super) status: u16,
    pub(super) source: Source,
    pub(super) started: Instant,
    pub(super) notes: Notes,
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
            tls: self.conn.kind != TransportKind::Tcp,
            notes: &self.notes,
        };
        self.conn.shared.record(self.client(), done);
    }

    /// Who the response goes to.
    pub(super) fn client(&self) -> &Client {
        self.req.as_ref().map_or(&self.refused, |req| &req.client)
    }

    /// The stream's connection.
    pub(super) fn conn(&self) -> &ConnState {
        &self.conn
    }
}
