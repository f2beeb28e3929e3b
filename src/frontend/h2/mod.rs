//! HTTP/2 on TLS connections whose ALPN settled on `h2`, and on plaintext connections that
//! opened with HTTP/2's preface (h2c with prior knowledge, recognised and handed over by
//! `conn` with the bytes it read), served by ferry's own HTTP/2 layer over the same router
//! as HTTP/1.1: static files, X-Accel-Redirect / X-Sendfile offload and the app. The
//! protocol (frames, HPACK, flow control, stream states, limits) is `crate::http2`, which
//! does no I/O; here is its driver (`driver`): one task per connection, no task per stream.
//! Each stream's request is converted to a `RequestHead` (`request`), routed by its handler
//! (`answer`), and its `Reply` sent as HEADERS and DATA frames (`response`): bytes in memory
//! as they are, files read with pread(2) straight into the frame while the page cache holds
//! them, other bodies from a producer task (`body`). The frames share the TLS records of the
//! connection, so every HTTP/2 body is `tls_buffered` (`buffered` on h2c), and kTLS is not
//! attempted for these connections (`tls` counts that fallback with reason `http2`). Both
//! kinds have the same limits, and are counted in `ferry_http_connections_total{proto="http2"}`
//! by their transport (`tcp` for h2c).
//!
//! Requests for the app go through the same `proxy` as HTTP/1.1 ones, their body read whole
//! first (memory, then a spool file; 413 past `server.max_body_size`) and sent on ferry's own
//! HTTP/1.1 client. A body the answer did not need is read and dropped (up to
//! `MAX_DISCARDED_BODY`), so the stream ends normally.
//!
//! The connection closes when idle (`header_timeout` before the first request,
//! `keepalive_timeout` after), when a stream stalls for `send_timeout`, or on shutdown, which
//! sends GOAWAY and lets the streams in flight finish.

mod body;
mod driver;
mod request;
mod response;
mod stream;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use self::request::BodyRx;
use self::stream::ConnState;
use super::shared::Shared;
use crate::http::RequestHead;
use crate::http2::Head;
use crate::ingress::{Client, identify, is_trusted};
use crate::metrics::{Proto, Source, TransportKind};
use crate::proxy::{BodyRead, BodyReadError, ClientBody, Outcome};
use crate::route::{Dispatch, Reply, UpstreamRef, https_redirect};
use crate::transport::Transport;

/// Most request-body bytes read and dropped after answering without them; past it the
/// stream is reset.
const MAX_DISCARDED_BODY: u64 = 64 * 1024 * 1024;
/// Streams one client may have open at once.
const MAX_STREAMS: u32 = 128;

/// Whether the TLS handshake settled on HTTP/2.
pub fn negotiated(transport: &Transport) -> bool {
    match transport {
        Transport::Tls(stream) => stream.get_ref().1.alpn_protocol() == Some(b"h2"),
        Transport::Plain(_) | Transport::Ktls(_) => false,
    }
}

/// Serves one HTTP/2 connection until the client closes it, it idles out, or shutdown;
/// `read` is what was already read from `transport` (on h2c: the preface and what followed).
pub async fn serve(
    transport: Transport,
    read: BytesMut,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let kind = transport.kind();
    shared.metrics.http_connection(Proto::Http2, kind);
    let conn = Arc::new(ConnState {
        trusted: is_trusted(&shared.server.trusted_proxies, peer.ip()),
        shared,
        kind,
        peer,
        abort: CancellationToken::new(),
    });
    // As for HTTP/1.1: a debug span per connection that names the client.
    let span = tracing::debug_span!("conn", %peer, transport = kind.label(), proto = "h2");
    driver::Driver::new(transport, read, conn)
        .run(&shutdown)
        .instrument(span)
        .await;
}

/// What a stream's handler gives the driver.
#[expect(
    clippy::large_enum_variant,
    reason = "handed over once per stream, inside the handler's future, which holds it anyway"
)]
enum Answer {
    /// The response to send (`Err`: the request head was refused; who sent it).
    Respond {
        req: Result<RequestHead, Client>,
        reply: Reply,
        started: Instant,
    },
    /// The client went away or stalled while sending its body: reset the stream.
    Gone,
}

/// One stream's handler, polled by the driver in its set: the stream's id and its answer.
type Handler = Pin<Box<dyn Future<Output = (u32, Answer)> + Send>>;

fn handler(
    conn: Arc<ConnState>,
    id: u32,
    head: Head,
    end_stream: bool,
    body: Option<BodyRx>,
) -> Handler {
    Box::pin(async move { (id, answer(&conn, head, end_stream, body).await) })
}

/// Answers one stream's request; `body`: its request body, unless HEADERS ended the stream.
async fn answer(
    conn: &ConnState,
    head: Head,
    end_stream: bool,
    mut body: Option<BodyRx>,
) -> Answer {
    let started = Instant::now();
    let shared = &conn.shared;
    let peer = conn.peer;
    let parsed = request::parse_head(&head, end_stream, conn.kind.scheme());
    drop(head);
    let mut req = match parsed {
        Ok(req) => req,
        Err(err) => {
            tracing::debug!(%peer, error = %err, "bad http/2 request head");
            return Answer::Respond {
                req: Err(Client::peer(peer, conn.trusted)),
                reply: Reply::error(err.status(), Source::Internal),
                started,
            };
        }
    };
    identify(&mut req, peer, conn.trusted, &shared.server.trusted_proxies);
    // h2c on a plaintext listener that redirects to https, as HTTP/1.1 there.
    let redirect = shared
        .redirect_https
        .filter(|_| conn.kind == TransportKind::Tcp);
    let dispatch = match redirect {
        Some(port) => Dispatch::Reply(https_redirect(&req, port)),
        None => shared.router.handle(&req).await,
    };
    let reply = match dispatch {
        Dispatch::Reply(reply) => reply,
        // Boxed: the proxy's state is large, and every stream's handler (static ones too)
        // would otherwise carry it.
        Dispatch::Upstream(to) => match Box::pin(forward(&req, body.as_mut(), conn, to)).await {
            Ok(reply) => reply,
            Err(err) => {
                tracing::debug!(%peer, error = %err, "http/2 request body not received");
                return Answer::Gone;
            }
        },
    };
    Answer::Respond {
        req: Ok(req),
        reply,
        started,
    }
}

/// How long a client sending a request body gets between frames: as long as for its head.
fn client_timeout(shared: &Shared) -> Duration {
    shared.server.header_timeout.max(shared.server.send_timeout)
}

/// Sends `req` to the app through the proxy, its body read whole (413 past
/// `server.max_body_size`) once the cache has had its say. An error means the client went away (or
/// stalled) while sending its body: the stream is reset, nothing is answered.
async fn forward(
    req: &RequestHead,
    body: Option<&mut BodyRx>,
    conn: &ConnState,
    to: UpstreamRef,
) -> Result<Reply, BodyReadError> {
    let shared = &conn.shared;
    let Some(proxy) = &shared.proxy else {
        return Ok(Reply::error(404, Source::Internal));
    };
    let timeout = client_timeout(shared);
    let read: BodyRead = Box::new(move |collector| {
        Box::pin(async move { request::read_into(body, collector, timeout).await })
    });
    match proxy
        .forward(&shared.router, req, ClientBody::Whole(read), conn.peer, to)
        .await
    {
        // No connection to close on HTTP/2: a failed exchange is just its answer.
        Outcome::Reply(reply) | Outcome::Failed(reply) => Ok(reply),
        Outcome::ClientGone(Some(err)) => Err(err),
        // Only an HTTP/1.1 client's connection can be upgraded or read from by the proxy.
        Outcome::Upgrade(_) | Outcome::ClientGone(None) => Ok(Reply::error(502, Source::Upstream)),
    }
}
