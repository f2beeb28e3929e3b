//! A proxied request's whole trip, the same for HTTP/1.1 and HTTP/2: the request as the app
//! will see it (`upstream::app_view`), the cache's say first (`cached`: a stored answer, or a
//! conditional request to revalidate one), the request and its body sent to the app
//! (`upstream::Upstream::exchange`), then the app's answer turned into a reply: the file it
//! points at (X-Accel-Redirect / X-Sendfile, resolved by `route`), its own response relayed
//! (with a cache fill attached when it is stored), an error status, or — on HTTP/1.1 — a
//! tunnel after 101 Switching Protocols (`tunnel`).
//!
//! The frontend gives the request head and where its body comes from (`ClientBody`), and gets
//! back an [`Outcome`] to send; nothing here calls back into the frontend. Sending the reply
//! (the relay of the app's body) is `send`'s.

mod cached;
mod hit;
mod relay;
mod tunnel;

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

pub use tunnel::tunnel;

use crate::cache::Cache;
use crate::config::Offload;
use crate::http::{BodyLength, RequestHead};
use crate::metrics::{Metrics, Source};
use crate::route::{Reply, Router};
use crate::transport::Transport;
use crate::upstream::{Exchange, RequestBody, Upstream, wants_upgrade};

/// An error a client's body read ends with, passed through to the frontend.
pub type BodyReadError = Box<dyn Error + Send + Sync>;

/// Reading a whole request body (HTTP/2), started only once the cache has had its say: a
/// stored answer needs no body.
pub type BodyRead<'a> = Pin<Box<dyn Future<Output = Result<Bytes, BodyRefused>> + Send + 'a>>;

/// Why a request body read as a whole was not had.
#[derive(Debug)]
pub enum BodyRefused {
    /// Over the limit (`limit` bytes): answered 413.
    TooLarge(usize),
    /// The client went away or stalled: nothing is answered.
    Gone(BodyReadError),
}

/// Where the request body comes from.
pub enum ClientBody<'a> {
    /// HTTP/1.1: the client's connection, where the body follows the head (after what `buf`
    /// already holds); it is forwarded as it arrives. Only here can a request be upgraded.
    Connection {
        transport: &'a mut Transport,
        buf: &'a mut BytesMut,
    },
    /// HTTP/2: read whole, into memory, when the app is to be asked.
    Whole(BodyRead<'a>),
}

/// What came of a proxied request.
pub enum Outcome {
    /// Answer with this; the request (and its body) was taken in full.
    Reply(Reply),
    /// The exchange failed part-way (the request body may be unread): answer and close.
    Failed(Reply),
    /// The app switched protocols (HTTP/1.1 only): join the two sockets (`tunnel`).
    Upgrade(Exchange),
    /// The client went away (or stalled) while its body was read: no answer. The error, for
    /// a body read whole.
    ClientGone(Option<BodyReadError>),
}

/// The app, the cache in front of it, and what the app may ask ferry to send instead.
pub struct Proxy {
    upstream: Arc<Upstream>,
    cache: Option<Arc<Cache>>,
    offload: Offload,
    metrics: Metrics,
}

impl Proxy {
    pub fn new(
        upstream: Upstream,
        cache: Option<Arc<Cache>>,
        offload: Offload,
        metrics: Metrics,
    ) -> Proxy {
        Proxy {
            upstream: Arc::new(upstream),
            cache,
            offload,
            metrics,
        }
    }

    /// Sends `req` to the app and decides how its answer reaches the client. `router`
    /// resolves the files the app points at.
    pub async fn forward(
        &self,
        router: &Router,
        req: &RequestHead,
        body: ClientBody<'_>,
        peer: SocketAddr,
    ) -> Outcome {
        // The cache keys on what the app is asked, not on what the client sent.
        let view = self.upstream.app_view(req);
        let req = view.as_ref().unwrap_or(req);
        let cache = self.cache.as_ref();
        let (upstream, metrics) = (&self.upstream, &self.metrics);
        let pending = match cached::lookup(cache, upstream, metrics, req, peer).await {
            Ok(pending) => pending,
            Err(reply) => return Outcome::Reply(reply),
        };
        // Only a body streamed from an HTTP/1.1 connection leaves part of a request unread
        // on a failure, and only such a connection can be upgraded.
        let upgradable = matches!(body, ClientBody::Connection { .. });
        let read;
        let (req, body) = match body {
            ClientBody::Connection { transport, buf } => {
                (req, RequestBody::Client { transport, buf })
            }
            ClientBody::Whole(body) => {
                let bytes = match body.await {
                    Ok(bytes) => bytes,
                    Err(BodyRefused::TooLarge(limit)) => {
                        tracing::debug!(%peer, target = %req.target, limit, "request body refused: too large");
                        return Outcome::Reply(Reply::error(413, Source::Internal));
                    }
                    Err(BodyRefused::Gone(err)) => {
                        tracing::debug!(%peer, error = %err, "client gone while sending its body");
                        return Outcome::ClientGone(Some(err));
                    }
                };
                let mut with_length = req.clone();
                with_length.body = if bytes.is_empty() {
                    BodyLength::Empty
                } else {
                    BodyLength::Length(bytes.len() as u64)
                };
                read = with_length;
                (&read, RequestBody::InHand(bytes))
            }
        };
        let sent = pending.as_ref().map_or(req, |p| p.request(req));
        let exchange = match self
            .upstream
            .exchange(sent, body, peer, &self.metrics)
            .await
        {
            Ok(exchange) => exchange,
            Err(err) => {
                let Some(status) = err.status() else {
                    tracing::debug!(%peer, error = %err, "client gone while forwarding");
                    return Outcome::ClientGone(None);
                };
                tracing::warn!(%peer, target = %req.target, error = %err, "upstream request failed");
                return match cached::failed(pending, req, status).await {
                    // Only bodiless requests reach the cache: the connection stays usable.
                    Ok(stale) => Outcome::Reply(stale),
                    // Nothing of a bodiless request (or of one read whole) is left unread:
                    // the connection stays usable, as after any other answer.
                    Err(reply) if req.body == BodyLength::Empty || !upgradable => {
                        Outcome::Reply(reply)
                    }
                    Err(reply) => Outcome::Failed(reply),
                };
            }
        };
        if exchange.head.status == 101 {
            if upgradable && wants_upgrade(req) {
                return Outcome::Upgrade(exchange);
            }
            tracing::warn!(%peer, target = %req.target, "upstream switched protocols unasked");
            return Outcome::Failed(Reply::error(502, Source::Upstream));
        }
        let Exchange {
            head,
            framing,
            conn,
            visit,
        } = exchange;
        let offload = &self.offload;
        let answer = cached::answer(offload, router, req, pending, head, framing, conn);
        let mut reply = answer.await;
        reply.notes.upstream = Some(visit);
        Outcome::Reply(reply)
    }
}
