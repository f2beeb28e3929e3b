//! HTTP/2 on TLS connections whose ALPN settled on `h2`, and on plaintext connections that
//! opened with HTTP/2's preface (h2c with prior knowledge, recognised and handed over by
//! `conn` with the bytes it read), served by ferry's own HTTP/2 layer over the same router
//! as HTTP/1.1: static files, X-Accel-Redirect / X-Sendfile offload and the app. The
//! protocol (frames, HPACK, flow control, stream states, limits) is `crate::http2`, which
//! does no I/O; here is its driver (`driver`): one task per connection, no task per stream.
//! Each stream's request is converted to a `RequestHead` (`request`), routed by its handler
//! (`handler`), and its `Reply` sent as HEADERS and DATA frames (`response`): bytes in memory
//! as they are, files read with pread(2) straight into the frame while the page cache holds
//! them, other bodies from a producer task (`body`). The frames share the TLS records of the
//! connection, so every HTTP/2 body is `tls_buffered` (`buffered` on h2c), and kTLS is not
//! attempted for these connections (`tls` counts that fallback with reason `http2`). Both
//! kinds have the same limits, and are counted in `ferry_http_connections_total{proto="http2"}`
//! by their transport (`tcp` for h2c).
//!
//! Requests for the app go through the same `proxy` as HTTP/1.1 ones, their body read whole
//! first (memory, then a spool file; 413 past `server.max_body_size`) and sent on ferry's own
//! HTTP/1.1 client (`handler`). A client that sent `Expect: 100-continue` gets an interim 100
//! HEADERS when its body is about to be read, none when the answer comes without it. A body
//! the answer did not need is read and dropped (up to 64 MiB), so the stream ends normally.
//! A request head over the header list limit is answered 431 (RFC 9113 §10.5.1), like every
//! other refused head, and the connection goes on.
//!
//! The connection closes when idle (`header_timeout` before the first request,
//! `keepalive_timeout` after), when a stream stalls for `send_timeout`, or on shutdown, which
//! sends GOAWAY and lets the streams in flight finish.

mod body;
mod driver;
mod handler;
mod request;
mod response;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use self::stream::ConnState;
use super::shared::Shared;
use crate::ingress::is_trusted;
use crate::metrics::Proto;
use crate::transport::Transport;

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
