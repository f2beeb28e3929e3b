//! HTTP/2 on TLS connections whose ALPN settled on `h2`, and on plaintext connections that
//! opened with HTTP/2's preface (h2c with prior knowledge, recognised and handed over by
//! `conn` with the bytes it read), served by hyper over the same router as HTTP/1.1: static
//! files, X-Accel-Redirect / X-Sendfile offload and the app. Each stream's request is
//! converted to a `RequestHead` (`request`), routed, and its `Reply` turned into a hyper
//! response (`response`) whose body is read into buffers (`body`): hyper never exposes the
//! socket, so every HTTP/2 body is `tls_buffered` (`buffered` on h2c), and kTLS is not
//! attempted for these connections (`tls` counts that fallback with reason `http2`). Both
//! kinds have the same limits, and are counted in `ferry_http_connections_total{proto="http2"}`
//! by their transport (`tcp` for h2c).
//!
//! Requests for the app go through the same `proxy` as HTTP/1.1 ones, their body read whole
//! first (memory, then a spool file; 413 past `server.max_body_size`) and sent on ferry's own
//! HTTP/1.1 client.
//!
//! The connection closes when idle (`header_timeout` before the first request,
//! `keepalive_timeout` after), when a stream stalls for `send_timeout`, or on shutdown, which
//! sends GOAWAY and lets the streams in flight finish.

mod body;
mod io;
mod request;
mod response;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;

use self::body::H2Body;
use self::io::Gathered;
use self::stream::{ConnState, InFlight};
use super::shared::Shared;
use crate::http::{MAX_HEAD, RequestHead};
use crate::ingress::{Client, identify, is_trusted};
use crate::metrics::{Proto, Source, TransportKind};
use crate::proxy::{BodyRead, BodyReadError, ClientBody, Outcome};
use crate::route::{Dispatch, Reply, UpstreamRef, https_redirect};
use crate::transport::Transport;

/// Most request-body bytes read and dropped after answering without them (see
/// `request::discard_body`); past it the stream is reset.
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
    let state = Arc::new(ConnState::new(kind));
    let from = From {
        peer,
        trusted: is_trusted(&shared.server.trusted_proxies, peer.ip()),
    };
    let service = {
        let shared = Arc::clone(&shared);
        let state = Arc::clone(&state);
        service_fn(move |req| answer(req, from, Arc::clone(&shared), Arc::clone(&state)))
    };
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEAD as u32)
        // Date is set per response, as for HTTP/1.1.
        .auto_date_header(false);
    let io = Gathered::new(transport, read);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let server = &shared.server;
    let mut draining = false;
    // After an idle close: how long the client gets to take the GOAWAY.
    let mut close_by: Option<tokio::time::Instant> = None;
    loop {
        let idle_at = state.idle_deadline(server.header_timeout, server.keepalive_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "http/2 connection ended");
                }
                break;
            }
            () = state.abort.cancelled() => {
                tracing::debug!(%peer, timeout = ?server.send_timeout, "http/2 client took no data; connection closed");
                break;
            }
            () = shutdown.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = tokio::time::sleep_until(idle_at), if !draining => {
                if state.idle(server.header_timeout, server.keepalive_timeout) {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                    close_by = Some(tokio::time::Instant::now() + server.header_timeout);
                }
            }
            () = sleep_until(close_by) => break,
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The connection's peer (the PROXY protocol source where the listener takes one), and
/// whether it is a trusted proxy.
#[derive(Clone, Copy)]
struct From {
    peer: SocketAddr,
    trusted: bool,
}

/// Answers one stream's request.
async fn answer(
    req: Request<Incoming>,
    from: From,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
) -> Result<Response<H2Body>, BodyReadError> {
    let kind = conn.kind;
    let stream = InFlight::start(conn);
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let peer = from.peer;
    let mut head = match request::parse_head(&parts, body.is_end_stream(), kind.scheme()) {
        Ok(head) => head,
        Err(err) => {
            tracing::debug!(%peer, error = %err, "bad http/2 request head");
            let reply = Reply::error(err.status(), Source::Internal);
            let client = Client::peer(peer, from.trusted);
            return Ok(response::respond(
                &shared,
                Err(client),
                reply,
                started,
                stream,
            ));
        }
    };
    identify(
        &mut head,
        peer,
        from.trusted,
        &shared.server.trusted_proxies,
    );
    let mut body = body;
    // h2c on a plaintext listener that redirects to https, as HTTP/1.1 there.
    let redirect = shared.redirect_https.filter(|_| kind == TransportKind::Tcp);
    let dispatch = match redirect {
        Some(port) => Dispatch::Reply(https_redirect(&head, port)),
        None => shared.router.handle(&head).await,
    };
    let reply = match dispatch {
        Dispatch::Reply(reply) => reply,
        // Boxed: the proxy's state is large, and every stream's task (static ones too)
        // would otherwise carry it, copied in at spawn and out at completion.
        Dispatch::Upstream(to) => Box::pin(forward(&head, &mut body, peer, &shared, to)).await?,
    };
    if !body.is_end_stream() {
        // Answered without (all of) the body: read the rest while the answer goes out.
        let timeout = client_timeout(&shared);
        tokio::spawn(request::discard_body(body, MAX_DISCARDED_BODY, timeout));
    }
    Ok(response::respond(&shared, Ok(head), reply, started, stream))
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
    body: &mut Incoming,
    peer: SocketAddr,
    shared: &Shared,
    to: UpstreamRef,
) -> Result<Reply, BodyReadError> {
    let Some(proxy) = &shared.proxy else {
        return Ok(Reply::error(404, Source::Internal));
    };
    let timeout = client_timeout(shared);
    let read: BodyRead = Box::new(move |collector| {
        Box::pin(async move { request::read_into(body, collector, timeout).await })
    });
    match proxy
        .forward(&shared.router, req, ClientBody::Whole(read), peer, to)
        .await
    {
        // No connection to close on HTTP/2: a failed exchange is just its answer.
        Outcome::Reply(reply) | Outcome::Failed(reply) => Ok(reply),
        Outcome::ClientGone(Some(err)) => Err(err),
        // Only an HTTP/1.1 client's connection can be upgraded or read from by the proxy.
        Outcome::Upgrade(_) | Outcome::ClientGone(None) => Ok(Reply::error(502, Source::Upstream)),
    }
}
