//! The proxy's side of the cache (`cache::flow` decides, this acts): a stored answer made
//! into a reply (`hit`) with its `X-Cache`, a stale object's background refresh run against
//! the app, a stale object standing in for an app that failed, and the app's answer relayed
//! with a fill attached when it is being stored.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use super::{hit, relay};
use crate::cache::Cache;
use crate::cache::fill::Fill;
use crate::cache::flow::{self, Answered, Forwarding, Lookup, Refresh};
use crate::config::Offload;
use crate::http::RequestHead;
use crate::http::{Framing, ResponseHead};
use crate::metrics::{Metrics, Source};
use crate::route::{Reply, Router};
use crate::send::Body;
use crate::upstream::{Exchange, RequestBody, UpConn, Upstream};

/// Asks the cache about `req`: `Err` is the cache's own answer; `Ok` a request to forward
/// (with the cache's state, when there is a cache).
pub(super) async fn lookup(
    cache: Option<&Arc<Cache>>,
    upstream: &Arc<Upstream>,
    metrics: &Metrics,
    req: &RequestHead,
    peer: SocketAddr,
) -> Result<Option<Forwarding>, Reply> {
    let Some(cache) = cache else {
        return Ok(None);
    };
    match flow::lookup(cache, req).await {
        Lookup::Stored { stored, refresh } => {
            if let Some(refresh) = refresh {
                let upstream = Arc::clone(upstream);
                let metrics = metrics.clone();
                tokio::spawn(background_refresh(refresh, upstream, peer, metrics));
            }
            Err(hit::reply(req, stored))
        }
        Lookup::Forward(pending) => Ok(Some(pending)),
    }
}

/// The answer when the app could not be asked: a stale object (`Ok`) where stale-if-error
/// allows, else the error `status` (`Err`), tagged with the cache's result.
pub(super) async fn failed(
    pending: Option<Forwarding>,
    req: &RequestHead,
    status: u16,
) -> Result<Reply, Reply> {
    let error = Reply::error(status, Source::Upstream);
    let Some(pending) = pending else {
        return Err(error);
    };
    let result = pending.result();
    match flow::on_error(pending).await {
        Some(stale) => Ok(hit::reply(req, stale)),
        None => {
            let mut error = error.with_header("X-Cache", result.header());
            error.notes.cache = Some(result);
            Err(error)
        }
    }
}

/// The reply for the app's answer, with the cache's say first when there is one: a
/// revalidated or stale object instead of the app's answer, or the app's answer with
/// `X-Cache` and a fill attached.
pub(super) async fn answer(
    offload: &Offload,
    router: &Router,
    req: &RequestHead,
    pending: Option<Forwarding>,
    head: ResponseHead,
    framing: Framing,
    conn: UpConn,
) -> Reply {
    let Some(pending) = pending else {
        return relay::answer(offload, router, req, head, framing, conn).await;
    };
    let result = pending.result();
    let fill = match flow::answered(pending, req, &head, framing).await {
        Answered::Stored(stored) => {
            conn.discard(framing).await;
            return hit::reply(req, stored);
        }
        Answered::Gone => {
            conn.discard(framing).await;
            let mut reply = Reply::error(502, Source::Cache);
            reply.notes.cache = Some(result);
            return reply;
        }
        Answered::Relay(fill) => fill,
    };
    let mut reply = relay::answer(offload, router, req, head, framing, conn).await;
    reply.remove_header("X-Cache");
    reply = reply.with_header("X-Cache", result.header());
    reply.notes.cache = Some(result);
    if reply.source == Source::Upstream
        && let Body::Upstream(up) = &mut reply.body
    {
        up.fill = fill;
    }
    reply
}

/// stale-while-revalidate: asks the app about the refreshed object once, in the background,
/// and hands its answer to the cache (a 304 refreshes the object; a storable answer with a
/// known length replaces it).
async fn background_refresh(
    refresh: Refresh,
    upstream: Arc<Upstream>,
    peer: SocketAddr,
    metrics: Metrics,
) {
    let request = RequestBody::InHand(Bytes::new());
    let exchange = upstream
        .exchange(refresh.request(), request, peer, &metrics)
        .await;
    let Ok(Exchange {
        head,
        framing,
        mut conn,
        ..
    }) = exchange
    else {
        return;
    };
    match refresh.answered(&head, framing).await {
        Some((mut fill, len)) => {
            if read_into(&mut conn, len, &mut fill).await && fill.alive() {
                fill.finish();
                conn.release();
            }
        }
        None => conn.discard(framing).await,
    }
}

/// Reads a `len`-byte body from the app into `fill`; false when the app failed to send it.
async fn read_into(conn: &mut UpConn, len: u64, fill: &mut Fill) -> bool {
    let early = (conn.leftover.len() as u64).min(len) as usize;
    fill.write(conn.leftover.split_to(early).freeze());
    if !conn.leftover.is_empty() {
        return false;
    }
    let mut left = len - early as u64;
    while left > 0 {
        let mut buf = BytesMut::with_capacity(left.min(256 * 1024) as usize);
        let mut app = (&mut conn.stream).take(left);
        match tokio::time::timeout(conn.read_timeout, app.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                left -= n as u64;
                fill.write(buf.freeze());
            }
            _ => return false,
        }
    }
    true
}
