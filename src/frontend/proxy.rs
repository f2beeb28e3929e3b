//! The connection loop's side of proxying: forward a request to the app, then turn its
//! answer into a reply — relayed (body spliced or copied), an offloaded file
//! (X-Accel-Redirect / X-Sendfile), an error status, or a tunnel after 101 Switching
//! Protocols, where both sockets are joined with splice(2) in both directions.
//!
//! With a `[cache]`, the cache is asked first (`cache::flow`): a stored object may answer
//! without the app, an expired one is revalidated, and a storable answer is relayed with a
//! fill attached to its body.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::Shared;
use crate::cache::flow::{self, After, Before, Pending};
use crate::http::{BodyLength, Method, RequestHead, encode_response_head};
use crate::metrics::Source;
use crate::route::Reply;
use crate::send::{Body, SendPath, Tally, UpstreamBody};
use crate::transport::{Kind, Transport};
use crate::upstream::{
    AppSocket, Exchange, Framing, RequestBody, ResponseHead, UpConn, wants_upgrade,
};

/// What came of forwarding one request.
pub enum Forwarded {
    /// The request (and its body) went through; answer with this.
    Reply(Reply),
    /// The exchange failed part-way (the request body may be unread): answer and close.
    Failed(Reply),
    /// The app switched protocols: join the two sockets.
    Upgrade(Exchange),
    /// The client went away while its body was being forwarded.
    ClientGone,
}

/// Sends `req` to the app and decides how its answer reaches the client.
pub async fn forward(
    transport: &mut Transport,
    buf: &mut BytesMut,
    req: &RequestHead,
    peer: SocketAddr,
    shared: &Shared,
) -> Forwarded {
    let Some(upstream) = &shared.upstream else {
        return Forwarded::Reply(Reply::error(404, Source::Internal));
    };
    // The cache keys on what the app is asked, not on what the client sent.
    let view = upstream.app_view(req);
    let req = view.as_ref().unwrap_or(req);
    let pending = match lookup(shared, req, peer).await {
        Ok(pending) => pending,
        Err(reply) => return Forwarded::Reply(reply),
    };
    let sent = pending.as_ref().map_or(req, |p| p.request(req));
    let exchange = match upstream
        .exchange(
            sent,
            RequestBody::Client { transport, buf },
            peer,
            &shared.metrics,
        )
        .await
    {
        Ok(exchange) => exchange,
        Err(err) => {
            return match err.status() {
                Some(status) => {
                    tracing::warn!(%peer, target = %req.target, error = %err, "upstream request failed");
                    match failed(pending, req, status).await {
                        // Only bodiless requests reach the cache: the connection stays usable.
                        Ok(stale) => Forwarded::Reply(stale),
                        // Nothing of a bodiless request is left unread: the connection
                        // stays usable for the next request, as after any other answer.
                        Err(reply) if req.body == BodyLength::Empty => Forwarded::Reply(reply),
                        Err(reply) => Forwarded::Failed(reply),
                    }
                }
                None => {
                    tracing::debug!(%peer, error = %err, "client gone while forwarding");
                    Forwarded::ClientGone
                }
            };
        }
    };
    let Exchange {
        head,
        framing,
        conn,
    } = exchange;
    if head.status == 101 {
        if wants_upgrade(req) {
            return Forwarded::Upgrade(Exchange {
                head,
                framing,
                conn,
            });
        }
        tracing::warn!(%peer, target = %req.target, "upstream switched protocols unasked");
        return Forwarded::Failed(Reply::error(502, Source::Upstream));
    }
    Forwarded::Reply(cached_answer(shared, req, pending, head, framing, conn).await)
}

/// Asks the cache about `req`: `Err` is the cache's own answer; `Ok` a request to forward
/// (with the cache's state, when there is a cache).
pub(super) async fn lookup(
    shared: &Shared,
    req: &RequestHead,
    peer: SocketAddr,
) -> Result<Option<Pending>, Reply> {
    let Some(cache) = &shared.cache else {
        return Ok(None);
    };
    match flow::before(cache, req, peer, &shared.metrics).await {
        Before::Reply(reply) => Err(reply),
        Before::Forward(pending) => Ok(Some(pending)),
    }
}

/// The answer when the app could not be asked: a stale object (`Ok`) where stale-if-error
/// allows, else the error `status` (`Err`), tagged with the cache's result.
pub(super) async fn failed(
    pending: Option<Pending>,
    req: &RequestHead,
    status: u16,
) -> Result<Reply, Reply> {
    let error = Reply::error(status, Source::Upstream);
    let Some(pending) = pending else {
        return Err(error);
    };
    let result = pending.result();
    match flow::on_error(pending, req).await {
        Some(stale) => Ok(stale),
        None => Err(error.with_header("X-Cache", result.header().to_string())),
    }
}

/// [`answer`], with the cache's say first when there is one: a revalidated or stale object
/// instead of the app's answer, or the app's answer with `X-Cache` and a fill attached.
pub(super) async fn cached_answer(
    shared: &Shared,
    req: &RequestHead,
    pending: Option<Pending>,
    head: ResponseHead,
    framing: Framing,
    conn: UpConn,
) -> Reply {
    let Some(pending) = pending else {
        return answer(shared, req, head, framing, conn).await;
    };
    let result = pending.result();
    let fill = match flow::after(pending, req, &head, framing).await {
        After::Cached(reply) => {
            conn.discard(framing).await;
            return reply;
        }
        After::Relay(fill) => fill,
    };
    let mut reply = answer(shared, req, head, framing, conn).await;
    reply.remove_header("X-Cache");
    reply = reply.with_header("X-Cache", result.header().to_string());
    if reply.source == Source::Upstream
        && let Body::Upstream(up) = &mut reply.body
    {
        up.fill = fill;
    }
    reply
}

/// The reply for the app's (non-101) answer, on HTTP/1.1 and HTTP/2 alike: the file it
/// points at (X-Accel-Redirect, X-Sendfile), or its own response relayed.
pub(super) async fn answer(
    shared: &Shared,
    req: &RequestHead,
    head: ResponseHead,
    framing: Framing,
    conn: UpConn,
) -> Reply {
    if shared.offload.x_accel_redirect
        && let Some(value) = head.header("x-accel-redirect").map(<[u8]>::to_vec)
    {
        conn.discard(framing).await;
        return shared.router.accel_redirect(req, &value, &head).await;
    }
    if !shared.offload.x_sendfile_roots.is_empty()
        && let Some(value) = head.header("x-sendfile").map(<[u8]>::to_vec)
    {
        conn.discard(framing).await;
        return shared.router.x_sendfile(req, &value, &head).await;
    }
    let head_length = if req.method == Method::Head {
        head.header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
    } else {
        None
    };
    let mut reply = Reply::new(
        head.status,
        Source::Upstream,
        Body::Upstream(UpstreamBody {
            conn,
            framing,
            chunked: false,
            fill: None,
        }),
    );
    reply.extra_headers = head
        .client_headers()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    reply.head_length = head_length;
    reply
}

/// After a 101 from the app: sends the 101 to the client, then splices both directions
/// until either side closes. Bytes in both directions are counted on the `splice` path.
pub async fn tunnel(
    transport: &mut Transport,
    buf: &mut BytesMut,
    req: &RequestHead,
    exchange: Exchange,
    peer: SocketAddr,
    shared: &Shared,
    started: Instant,
) {
    let Exchange { head, conn, .. } = exchange;
    let mut stream = conn.stream;
    let mut headers: Vec<(String, String)> = head
        .client_headers()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    if let Some(protocol) = head.header("upgrade") {
        headers.push((
            "Upgrade".into(),
            String::from_utf8_lossy(protocol).into_owned(),
        ));
    }
    headers.push(("Connection".into(), "upgrade".into()));
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::with_capacity(256);
    encode_response_head(101, &pairs, &mut out);
    // Bytes either side sent early (after its head) go first, through user space.
    out.extend_from_slice(&conn.leftover);
    // Plain TCP is joined with splice; TLS has to pass through user space.
    let kind = transport.kind();
    let path = if kind == Kind::Tcp {
        SendPath::Splice
    } else {
        SendPath::copying(kind)
    };
    let mut tally = Tally::default();
    tally.add_copied(path, conn.leftover.len());
    let result = async {
        transport.write_all(&out).await?;
        transport.flush().await?;
        stream.write_all(buf).await?;
        tally.add_copied(path, buf.len());
        buf.clear();
        let (up, down) = match (&mut *transport, &mut stream) {
            (Transport::Plain(client), AppSocket::Tcp(app)) => {
                tokio_splice::zero_copy_bidirectional(client, app).await?
            }
            (Transport::Plain(client), AppSocket::Unix(app)) => {
                tokio_splice::zero_copy_bidirectional(client, app).await?
            }
            // TLS bytes must be decrypted and encrypted in user space.
            (client, app) => {
                let (up, down) = tokio::io::copy_bidirectional(client, app).await?;
                tally.add_copied(path, (up + down) as usize);
                return Ok(());
            }
        };
        tally.add(SendPath::Splice, (up + down) as usize);
        Ok::<_, std::io::Error>(())
    }
    .await;
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "tunnel closed");
    }
    let seconds = started.elapsed().as_secs_f64();
    shared
        .metrics
        .response(Source::Upstream, 101, &tally, seconds);
    crate::access::log(peer, Some(req), 101, &tally, Source::Upstream, seconds);
}
