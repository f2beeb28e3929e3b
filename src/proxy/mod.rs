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
pub mod request_body;
mod tunnel;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;

pub use request_body::{BodyReadError, Buffering, Collector, Held, Refused};
pub use tunnel::tunnel;

use crate::cache::Cache;
use crate::config::Offload;
use crate::http::{BodyLength, RequestHead};
use crate::metrics::{Metrics, Source};
use crate::route::{Reply, Router, UpstreamRef};
use crate::send::Body;
use crate::transport::Transport;
use crate::upstream::{Exchange, RequestBody, Unanswered, Upstream, wants_upgrade};

/// Reading a whole request body (HTTP/2) into the collector it is given, started only once
/// the cache has had its say: a stored answer needs no body.
pub type BodyRead<'a> = Box<
    dyn FnOnce(Collector) -> Pin<Box<dyn Future<Output = Result<Held, Refused>> + Send + 'a>>
        + Send
        + 'a,
>;

/// Where the request body comes from.
pub enum ClientBody<'a> {
    /// HTTP/1.1: the client's connection, where the body follows the head (after what `buf`
    /// already holds); it is forwarded as it arrives. Only here can a request be upgraded.
    Connection {
        transport: &'a mut Transport,
        buf: &'a mut BytesMut,
    },
    /// HTTP/2: read whole (memory or spool file) when the app is to be asked.
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

/// The apps, the cache in front of them, and what an app may ask ferry to send instead.
pub struct Proxy {
    /// `[upstream]`, if configured.
    default: Option<Arc<Upstream>>,
    /// `[upstreams.NAME]`, in name order (`UpstreamRef::Named` indexes it).
    named: Vec<Arc<Upstream>>,
    cache: Option<Arc<Cache>>,
    offload: Offload,
    metrics: Metrics,
    buffering: Buffering,
}

impl Proxy {
    pub fn new(
        default: Option<Upstream>,
        named: Vec<Upstream>,
        cache: Option<Arc<Cache>>,
        offload: Offload,
        metrics: Metrics,
        buffering: Buffering,
    ) -> Proxy {
        Proxy {
            default: default.map(Arc::new),
            named: named.into_iter().map(Arc::new).collect(),
            cache,
            offload,
            metrics,
            buffering,
        }
    }

    /// The outcome of a request body that was not had: 413 over the limit, 400 for broken
    /// chunked framing (both closing an HTTP/1.1 connection, whose body is left unread), no
    /// answer when the client went away.
    fn refused(&self, req: &RequestHead, peer: SocketAddr, refused: Refused, h1: bool) -> Outcome {
        let reply = match refused {
            Refused::TooLarge(limit) => {
                tracing::debug!(%peer, target = %req.target, limit, "request body refused: too large");
                Reply::error(413, Source::Internal)
            }
            Refused::Bad(err) => {
                tracing::debug!(%peer, target = %req.target, error = %err, "bad chunked request body");
                Reply::error(400, Source::Internal)
            }
            Refused::Gone(err) => {
                tracing::debug!(%peer, error = %err, "client gone while sending its body");
                return Outcome::ClientGone(Some(err));
            }
            Refused::NoSpool => Reply::error(503, Source::Internal),
        };
        if h1 {
            Outcome::Failed(reply)
        } else {
            Outcome::Reply(reply)
        }
    }

    /// Sends `req` to the app `to` and decides how its answer reaches the client. `router`
    /// resolves the files the app points at.
    pub async fn forward(
        &self,
        router: &Router,
        req: &RequestHead,
        body: ClientBody<'_>,
        peer: SocketAddr,
        to: UpstreamRef,
    ) -> Outcome {
        let upstream = match to {
            UpstreamRef::Default => self.default.as_ref(),
            UpstreamRef::Named(at) => self.named.get(at),
        };
        // The router and the proxy are built from one configuration: never taken.
        let Some(upstream) = upstream else {
            tracing::error!(?to, "no such upstream");
            return Outcome::Reply(Reply::error(500, Source::Internal));
        };
        // The cache keys on what the app is asked, not on what the client sent.
        let view = upstream.app_view(req);
        let req = view.as_ref().unwrap_or(req);
        let cache = self.cache.as_ref();
        let metrics = &self.metrics;
        let pending = match cached::lookup(cache, upstream, metrics, req, peer).await {
            Ok(pending) => pending,
            Err(reply) => return Outcome::Reply(reply),
        };
        // Only a body streamed from an HTTP/1.1 connection leaves part of a request unread
        // on a failure, and only such a connection can be upgraded.
        let upgradable = matches!(body, ClientBody::Connection { .. });
        let buffering = &self.buffering;
        let held = match body {
            ClientBody::Connection { transport, buf } => {
                if req.body == BodyLength::Empty {
                    Err(RequestBody::Client {
                        transport,
                        buf,
                        limit: buffering.max_body_size,
                    })
                } else if buffering.requests {
                    let (length, expect) = (req.body, req.expect_continue);
                    let timeout = buffering.client_timeout;
                    match request_body::read_h1(buffering, length, expect, transport, buf, timeout)
                        .await
                    {
                        Ok(held) => Ok(held),
                        // The spool is full: the body goes to the app as it comes.
                        Err(Refused::NoSpool) => Err(RequestBody::Client {
                            transport,
                            buf,
                            limit: buffering.max_body_size,
                        }),
                        Err(refused) => return self.refused(req, peer, refused, true),
                    }
                } else if let BodyLength::Length(n) = req.body
                    && buffering.max_body_size > 0
                    && n > buffering.max_body_size
                {
                    let refused = Refused::TooLarge(buffering.max_body_size);
                    return self.refused(req, peer, refused, true);
                } else {
                    Err(RequestBody::Client {
                        transport,
                        buf,
                        limit: buffering.max_body_size,
                    })
                }
            }
            ClientBody::Whole(read) => {
                let expected = match req.body {
                    BodyLength::Length(n) => Some(n),
                    BodyLength::Empty | BodyLength::Chunked => None,
                };
                let read = match Collector::new(buffering, expected) {
                    Ok(collector) => read(collector).await,
                    // No room to hold it: HTTP/2 cannot stream a body to the app.
                    Err(Refused::NoSpool) => {
                        return Outcome::Reply(
                            Reply::error(503, Source::Internal).with_header("Retry-After", "5"),
                        );
                    }
                    Err(refused) => Err(refused),
                };
                match read {
                    Ok(held) => Ok(held),
                    Err(refused) => return self.refused(req, peer, refused, false),
                }
            }
        };
        let with_length;
        let (req, body) = match held {
            Err(streamed) => (req, streamed),
            Ok(held) => {
                let mut head = req.clone();
                head.body = if held.is_empty() {
                    BodyLength::Empty
                } else {
                    BodyLength::Length(held.len())
                };
                // The body is read: the app need not be asked to continue.
                head.expect_continue = false;
                with_length = (head, held);
                let body = match &with_length.1 {
                    Held::Memory(bytes) => RequestBody::InHand(bytes.clone()),
                    Held::Spooled(_) => {
                        let (file, len) = with_length.1.file().expect("a spooled body");
                        RequestBody::File { file, len }
                    }
                };
                (&with_length.0, body)
            }
        };
        let sent = pending.as_ref().map_or(req, |p| p.request(req));
        let exchange = match upstream.exchange(sent, body, peer, metrics).await {
            Ok(exchange) => exchange,
            Err(Unanswered {
                failure: err,
                tried,
            }) => {
                let Some(status) = err.status() else {
                    tracing::debug!(%peer, error = %err, "client gone while forwarding");
                    return Outcome::ClientGone(None);
                };
                tracing::warn!(%peer, target = %req.target, error = %err, "upstream request failed");
                let failed = cached::failed(pending, req, status).await;
                let failed = match err.retry_after() {
                    Some(secs) => {
                        failed.map_err(|r| r.with_header("Retry-After", secs.to_string()))
                    }
                    None => failed,
                };
                // The access log names the server that failed, stale answer or error alike.
                let failed = match failed {
                    Ok(mut stale) => {
                        stale.notes.upstream = tried;
                        Ok(stale)
                    }
                    Err(mut reply) => {
                        reply.notes.upstream = tried;
                        Err(reply)
                    }
                };
                return match failed {
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
        if self.buffering.responses
            && let Body::Upstream(up) = &mut reply.body
            && !up.unbuffered
        {
            up.spool = Some(self.buffering.spool.clone());
        }
        reply.notes.upstream = Some(visit);
        Outcome::Reply(reply)
    }
}
