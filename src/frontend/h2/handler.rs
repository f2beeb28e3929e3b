//! One stream's handler: its request head converted and checked (`request`; a head the core
//! found over the list limit is answered 431 as it stands), routed (or redirected to https on
//! an h2c listener that redirects), and for the app forwarded through the proxy with its body
//! read whole. The driver keeps every handler of its connection in one set and polls them; a
//! handler is a future, never a task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request::{self, BodyRx};
use super::stream::ConnState;
use crate::frontend::shared::Shared;
use crate::http::{ParseError, RequestHead};
use crate::http2::Head;
use crate::ingress::{Client, identify};
use crate::metrics::{Source, TransportKind};
use crate::proxy::{BodyRead, BodyReadError, ClientBody, Outcome};
use crate::route::{Dispatch, Reply, UpstreamRef, https_redirect};

/// What a stream's handler gives the driver.
#[expect(
    clippy::large_enum_variant,
    reason = "handed over once per stream, inside the handler's future, which holds it anyway"
)]
pub(super) enum Answer {
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
pub(super) type Handler = Pin<Box<dyn Future<Output = (u32, Answer)> + Send>>;

/// `head`: the request head, or why the core refused it (answered with its status).
pub(super) fn handler(
    conn: Arc<ConnState>,
    id: u32,
    head: Result<Head, ParseError>,
    end_stream: bool,
    body: Option<BodyRx>,
) -> Handler {
    Box::pin(async move { (id, answer(&conn, head, end_stream, body).await) })
}

/// Answers one stream's request; `body`: its request body, unless HEADERS ended the stream.
async fn answer(
    conn: &ConnState,
    head: Result<Head, ParseError>,
    end_stream: bool,
    mut body: Option<BodyRx>,
) -> Answer {
    let started = Instant::now();
    let shared = &conn.shared;
    let peer = conn.peer;
    let parsed = head.and_then(|head| request::parse_head(&head, end_stream, conn.kind.scheme()));
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
    // Called only when the body is wanted: a cached or refused answer goes out without the
    // interim 100, as on HTTP/1.1.
    let expect = req.expect_continue;
    let read: BodyRead = Box::new(move |collector| {
        Box::pin(async move { request::read_into(body, collector, expect, timeout).await })
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
