//! The app behind ferry: an own HTTP/1.1 client over pooled raw sockets (TCP or unix).
//! hyper's client would hide the socket; owning it is what lets ferry splice request bodies
//! client → app and response bodies app → client without copying them through user space.
//!
//! An [`Upstream`] is one configured app (`[upstream]` or `[upstreams.NAME]`): its servers
//! (`server.rs`: address, pool, requests in flight, passive health), how one is chosen
//! (`balance.rs`) and its connection cap with a queue (`queue.rs`). `Upstream::exchange`
//! takes a slot under the cap, sends one request (head, then its body from a `RequestBody`:
//! the client's connection, or bytes in hand) to a server, on to the next where that is safe,
//! and returns the app's response head with the connection positioned at the body (and
//! `UpConn::server` saying which server answered); `send` relays the body and hands the
//! connection back to the pool. What to do with the answer (offload, cache, relay) is the
//! proxy's.

mod balance;
mod body;
mod buffered;
mod head;
mod pool;
mod queue;
mod resolve;
mod server;
mod stream;

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

pub use head::{ForwardOptions, encode_request, wants_upgrade};
pub use pool::Pool;
pub use resolve::check_resolves;
pub use stream::AppSocket;

use balance::Candidate;
use queue::Cap;
use server::{HealthRule, Lease, Server};

use crate::access::UpstreamVisit;
use crate::config::{self, Balance, UpstreamAddress};
use crate::failure::Failure;
use crate::http::{BadResponse, BodyLength, Framing, Method, RequestHead, ResponseHead, framing};
use crate::metrics::{Metrics, UpstreamOutcome};
use crate::transport::Transport;

/// Where a forwarded request's body comes from.
pub enum RequestBody<'a> {
    /// All of it, already read (empty for none); `req.body` must say `Empty` or `Length`.
    InHand(Bytes),
    /// All of it, in the first `len` bytes of a (spool) file; `req.body` says `Length(len)`.
    File { file: Arc<File>, len: u64 },
    /// The client's HTTP/1.1 connection: the body follows the head there, after what `buf`
    /// already holds, and is forwarded as it arrives (spliced when it can be).
    Client {
        transport: &'a mut Transport,
        buf: &'a mut BytesMut,
        /// A chunked body past this many bytes ends the exchange with 413 (0: no limit).
        limit: u64,
    },
}

/// A body streamed from the client's connection, as `write_streamed` takes it.
struct StreamedBody<'a> {
    transport: &'a mut Transport,
    buf: &'a mut BytesMut,
    limit: u64,
}

/// Why a request could not be written to the app.
enum WriteError {
    /// The app took none of it that counts (the head write failed, or a request held whole
    /// failed to go out): the same request may go on a fresh connection.
    Retryable(String),
    /// Part of a streamed body was sent, or the client's side failed: no second try.
    Final(Failure),
}

/// A request the app did not answer: why, and the server tried last (for the access log,
/// as nginx logs `$upstream_addr` for a failed attempt); `tried` is `None` when no server
/// was tried (the queue for the cap timed out).
#[derive(Debug)]
pub struct Unanswered {
    pub failure: Failure,
    pub tried: Option<UpstreamVisit>,
}

/// The app's answer, with the connection positioned at its body.
#[derive(Debug)]
pub struct Exchange {
    pub head: ResponseHead,
    pub framing: Framing,
    pub conn: UpConn,
    /// Who answered, how soon, and the request body bytes it got: for the access log.
    pub visit: UpstreamVisit,
}

/// A connection to the app carrying (the rest of) one response body.
#[derive(Debug)]
pub struct UpConn {
    pub stream: AppSocket,
    /// Body bytes that arrived together with the head.
    pub leftover: BytesMut,
    /// Whether the connection may be pooled once the body has been read exactly.
    pub reusable: bool,
    /// Longest wait for the app's next bytes.
    pub read_timeout: Duration,
    /// The server it is to (and the upstream's connection slot): held until the connection
    /// is released or dropped.
    lease: Lease,
}

impl UpConn {
    /// The address of the server that answered, as configured (`127.0.0.1:3000`,
    /// `unix:/run/app.sock`, `app:3000`).
    pub fn server(&self) -> &str {
        &self.lease.server.label
    }

    /// Returns the connection to the pool (call only after the body was read exactly).
    pub fn release(self) {
        if self.reusable && self.leftover.is_empty() {
            self.lease.server.pool.put(self.stream);
        }
    }

    /// Reads and drops a small body so the connection can be reused; a large or unframed
    /// one closes the connection instead (used after X-Accel-Redirect / X-Sendfile).
    pub async fn discard(mut self, framing: Framing) {
        const DISCARD_MAX: u64 = 64 * 1024;
        let Framing::Length(len) = framing else {
            if framing == Framing::None {
                self.release();
            }
            return;
        };
        if len > DISCARD_MAX {
            return;
        }
        let ok = body::skip(&mut self.stream, &mut self.leftover, len, self.read_timeout).await;
        if ok {
            self.release();
        }
    }
}

/// How one attempt on one server ended, when it did not bring a response head.
struct Failed {
    failure: Failure,
    /// Whether passive health counts it against the server.
    counts: bool,
    /// Whether the request may go to another server.
    retry: bool,
}

/// One configured upstream (`[upstream]` or an `[upstreams.NAME]`): its servers, how they
/// are chosen, its cap and queue, and how requests are written to it.
#[derive(Debug)]
pub struct Upstream {
    /// The configured name (`default` for `[upstream]`).
    name: String,
    servers: Vec<Arc<Server>>,
    balance: Balance,
    /// The rotation position, advanced once per request.
    turn: AtomicUsize,
    cap: Option<Cap>,
    connect_timeout: Duration,
    response_timeout: Duration,
    options: ForwardOptions,
    /// Longest wait for the next request-body bytes from the client.
    client_timeout: Duration,
}

impl Upstream {
    /// The upstream `name` as configured in `upstream`; its metric series are created here.
    pub fn new(
        name: &str,
        upstream: &config::Upstream,
        offload: &config::Offload,
        client_timeout: Duration,
        metrics: &Metrics,
    ) -> Upstream {
        let options = ForwardOptions {
            // As nginx's `$proxy_host`: the (first) address as configured.
            default_host: match &upstream.servers[0] {
                address @ (UpstreamAddress::Tcp(_) | UpstreamAddress::Host { .. }) => {
                    address.to_string()
                }
                // A unix socket has no host name; "localhost" is what apps expect there.
                UpstreamAddress::Unix(_) => "localhost".to_string(),
            },
            forwarded_headers: upstream.forwarded_headers,
            underscores: upstream.underscores_in_headers,
            sendfile_type: offload.advertise.map(|t| t.as_str()),
            accel_mapping: offload
                .accel_mapping
                .as_ref()
                .map(|(fs, uri)| format!("{}={uri}", fs.display())),
        };
        let rule = HealthRule {
            max_fails: upstream.max_fails,
            fail_timeout: upstream.fail_timeout,
        };
        let servers = upstream.servers.iter().map(|address| {
            let server_metrics = metrics.upstreams.server(name, &address.to_string());
            let server = Server::new(address, upstream.idle_connections, rule, server_metrics);
            Arc::new(server)
        });
        let cap = upstream.max_conns.map(|max| {
            let queue_metrics = metrics.upstreams.queue(name);
            Cap::new(
                max.get(),
                upstream.queue,
                upstream.queue_timeout,
                queue_metrics,
            )
        });
        Upstream {
            name: name.to_string(),
            servers: servers.collect(),
            balance: upstream.balance,
            turn: AtomicUsize::new(0),
            cap,
            connect_timeout: upstream.connect_timeout,
            response_timeout: upstream.response_timeout,
            options,
            client_timeout,
        }
    }

    /// `req` as the app will get it, when ferry drops some of its fields (see
    /// [`head::app_view`]); the proxy keys the cache on the same view.
    pub fn app_view(&self, req: &RequestHead) -> Option<RequestHead> {
        head::app_view(req, self.options.underscores)
    }

    /// Forwards `req` with its body from `body` and waits for the response head, trying the
    /// next server where that is safe (see [`Upstream::try_exchange`]). Records the outcome
    /// in `metrics`.
    pub async fn exchange(
        &self,
        req: &RequestHead,
        body: RequestBody<'_>,
        peer: SocketAddr,
        metrics: &Metrics,
    ) -> Result<Exchange, Unanswered> {
        let started = Instant::now();
        if let RequestBody::InHand(body) = &body {
            debug_assert_eq!(
                req.body,
                if body.is_empty() {
                    BodyLength::Empty
                } else {
                    BodyLength::Length(body.len() as u64)
                }
            );
        }
        let mut tried = None;
        let result = self.try_exchange(req, body, peer, &mut tried).await;
        let outcome = result
            .as_ref()
            .map_or_else(Failure::upstream_outcome, |_| UpstreamOutcome::Ok);
        let elapsed = started.elapsed();
        metrics.upstream(outcome, elapsed.as_secs_f64());
        match result {
            Ok(mut exchange) => {
                exchange.visit.time = elapsed;
                Ok(exchange)
            }
            Err(failure) => Err(Unanswered {
                failure,
                tried: tried.map(|addr| UpstreamVisit {
                    addr,
                    time: elapsed,
                    request_bytes: 0,
                }),
            }),
        }
    }

    /// Takes a slot under the cap, then tries servers one after another, each at most once:
    /// a request goes to the next server when nothing of it can have been acted on (no
    /// connection, or the write of its head or of a request held whole failed), and an
    /// idempotent one whose bytes are all in hand also when the app closed or reset the
    /// connection before a response head. Never after a head, never after part of a body
    /// streamed from the client, never on a head timeout (the app has the request and is
    /// slow: a second server would do the work twice).
    async fn try_exchange(
        &self,
        req: &RequestHead,
        mut body: RequestBody<'_>,
        peer: SocketAddr,
        tried_last: &mut Option<Arc<str>>,
    ) -> Result<Exchange, Failure> {
        let slot = match &self.cap {
            Some(cap) => Some(Arc::new(cap.acquire(&self.name).await?)),
            None => None,
        };
        let mut head = Vec::with_capacity(512);
        encode_request(req, peer, &self.options, &mut head);
        let replayable = match &body {
            // The whole request is in hand: it can be written again.
            RequestBody::InHand(_) | RequestBody::File { .. } => true,
            // Only a bodiless one: all its bytes are in `head`.
            RequestBody::Client { .. } => req.body == BodyLength::Empty,
        };
        let inline = match &body {
            RequestBody::InHand(bytes) => buffered::inline(&mut head, bytes),
            RequestBody::File { .. } | RequestBody::Client { .. } => false,
        };
        let attempt = Attempt {
            req,
            head,
            inline,
            resend_after_close: replayable && is_idempotent(&req.method),
        };
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut tried = vec![false; self.servers.len()];
        let mut last = None;
        loop {
            let now = Instant::now();
            let candidates: Vec<Candidate> = (self.servers.iter().zip(&tried))
                .map(|(server, &tried)| Candidate {
                    tried,
                    up: tried || server.up(now),
                    busy: server.busy(),
                })
                .collect();
            let Some(i) = balance::pick(self.balance, &candidates, turn, last.is_none()) else {
                return Err(last.unwrap_or_else(|| self.none_up()));
            };
            tried[i] = true;
            *tried_last = Some(Arc::clone(&self.servers[i].label));
            let lease = Lease::new(Arc::clone(&self.servers[i]), slot.clone());
            lease.server.metrics.requests.inc();
            match self.attempt(&attempt, &mut body, lease).await {
                Ok(exchange) => {
                    self.servers[i].succeeded();
                    return Ok(exchange);
                }
                Err(failed) => {
                    if failed.counts {
                        self.servers[i].failed(Instant::now());
                    }
                    if !failed.retry {
                        return Err(failed.failure);
                    }
                    tracing::debug!(upstream = %self.name, error = %failed.failure, "trying the next server");
                    last = Some(failed.failure);
                }
            }
        }
    }

    /// Not reached: a pick always finds a server on a request's first try.
    fn none_up(&self) -> Failure {
        Failure::Internal(format!("upstream {}: no server to try", self.name))
    }

    /// One server's try: a pooled connection if one is idle (and a fresh one if that turns
    /// out to have been closed by the app), else a new one.
    async fn attempt(
        &self,
        attempt: &Attempt<'_>,
        body: &mut RequestBody<'_>,
        lease: Lease,
    ) -> Result<Exchange, Failed> {
        let server = Arc::clone(&lease.server);
        let mut lease = Some(lease);
        let mut fresh_only = false;
        loop {
            let pooled = (!fresh_only).then(|| server.pool.take()).flatten();
            let reused = pooled.is_some();
            let mut stream = match pooled {
                Some(stream) => stream,
                None => server
                    .connect(self.connect_timeout)
                    .await
                    .map_err(|failure| Failed {
                        failure,
                        counts: true,
                        retry: true,
                    })?,
            };
            let written = match body {
                RequestBody::InHand(bytes) => {
                    let rest = (!attempt.inline).then_some(bytes.as_ref());
                    let timeout = self.response_timeout;
                    let written =
                        buffered::write_held(&mut stream, &attempt.head, rest, timeout).await;
                    let len = bytes.len() as u64;
                    written.map(|()| len).map_err(WriteError::Retryable)
                }
                RequestBody::File { file, len } => {
                    let timeout = self.response_timeout;
                    let written =
                        buffered::write_file(&mut stream, &attempt.head, file, *len, timeout).await;
                    let len = *len;
                    written.map(|()| len).map_err(WriteError::Retryable)
                }
                RequestBody::Client {
                    transport,
                    buf,
                    limit,
                } => {
                    let client = StreamedBody {
                        transport,
                        buf,
                        limit: *limit,
                    };
                    self.write_streamed(&server, attempt.req, &mut stream, &attempt.head, client)
                        .await
                }
            };
            let request_bytes = match written {
                Ok(n) => n,
                // An idle connection the app had closed: the same server, afresh.
                Err(WriteError::Retryable(_)) if reused => {
                    fresh_only = true;
                    continue;
                }
                // Nothing of the request was taken: any method may go elsewhere.
                Err(WriteError::Retryable(detail)) => {
                    return Err(Failed {
                        failure: closed(&server, detail),
                        counts: true,
                        retry: true,
                    });
                }
                Err(WriteError::Final(failure)) => {
                    return Err(Failed {
                        failure,
                        counts: false,
                        retry: false,
                    });
                }
            };
            let lease_now = lease.take().expect("one lease per response");
            match self.response(stream, &attempt.req.method, lease_now).await {
                Ok(mut exchange) => {
                    exchange.visit.request_bytes = request_bytes;
                    return Ok(exchange);
                }
                Err((failure @ Failure::Closed { .. }, back)) => {
                    // The app closed an idle connection just as ferry reused it: once more.
                    if reused && attempt.resend_after_close {
                        lease = Some(back);
                        fresh_only = true;
                        continue;
                    }
                    return Err(Failed {
                        failure,
                        counts: !reused,
                        retry: attempt.resend_after_close,
                    });
                }
                Err((failure, _)) => {
                    return Err(Failed {
                        failure,
                        counts: false,
                        retry: false,
                    });
                }
            }
        }
    }

    /// Writes the head, then the body as it arrives from the client (answering its
    /// `Expect: 100-continue` first); returns the body bytes sent. Only a failed head write
    /// may be retried elsewhere.
    async fn write_streamed(
        &self,
        server: &Server,
        req: &RequestHead,
        stream: &mut AppSocket,
        head: &[u8],
        body: StreamedBody<'_>,
    ) -> Result<u64, WriteError> {
        let StreamedBody {
            transport: client,
            buf,
            limit,
        } = body;
        if let Err(err) = stream.write_all(head).await {
            return Err(WriteError::Retryable(format!(
                "writing request head: {err}"
            )));
        }
        if req.body == BodyLength::Empty {
            return Ok(0);
        }
        if req.expect_continue {
            // ferry takes the body itself, so it answers the client's expectation.
            client
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|err| WriteError::Final(Failure::ClientGone(err)))?;
        }
        body::forward_request_body(req.body, client, buf, stream, self.client_timeout, limit)
            .await
            .map_err(|err| {
                WriteError::Final(match err {
                    body::BodyError::Client(err) => Failure::ClientGone(err),
                    body::BodyError::BadChunked(err) => Failure::ClientBody(err),
                    body::BodyError::TooLarge(limit) => Failure::BodyTooLarge(limit),
                    body::BodyError::Upstream(err) => {
                        closed(server, format!("writing request body: {err}"))
                    }
                })
            })
    }

    /// Waits for the response head (within `response_timeout`) and positions the
    /// connection at the body. On failure the lease comes back, for a retry.
    async fn response(
        &self,
        mut stream: AppSocket,
        method: &Method,
        lease: Lease,
    ) -> Result<Exchange, (Failure, Lease)> {
        let deadline = tokio::time::Instant::now() + self.response_timeout;
        let server = &lease.server;
        let read = self.read_head(server, &mut stream, deadline).await;
        let (head, leftover) = match read {
            Ok(read) => read,
            Err(failure) => return Err((failure, lease)),
        };
        let framing = match framing(&head, method) {
            Ok(framing) => framing,
            Err(source) => return Err((bad(server, source), lease)),
        };
        let reusable = head.keep_alive() && framing != Framing::Close && head.status != 101;
        let addr = Arc::clone(&lease.server.label);
        let conn = UpConn {
            stream,
            leftover,
            reusable,
            read_timeout: self.response_timeout,
            lease,
        };
        Ok(Exchange {
            head,
            framing,
            conn,
            visit: UpstreamVisit {
                addr,
                time: Duration::ZERO,
                request_bytes: 0,
            },
        })
    }

    /// Reads the response head, skipping interim 1xx responses other than 101.
    async fn read_head(
        &self,
        server: &Server,
        stream: &mut AppSocket,
        deadline: tokio::time::Instant,
    ) -> Result<(ResponseHead, BytesMut), Failure> {
        let mut buf = BytesMut::new();
        loop {
            let read =
                tokio::time::timeout_at(deadline, body::read_head_bytes(stream, &mut buf)).await;
            let head = match read {
                Err(_) => {
                    return Err(Failure::HeadTimeout {
                        addr: server.label.to_string(),
                        timeout: self.response_timeout,
                    });
                }
                Ok(Err(body::HeadError::Io(err))) => return Err(closed(server, err.to_string())),
                Ok(Err(body::HeadError::Bad(err))) => return Err(bad(server, err)),
                Ok(Ok(None)) if buf.is_empty() => {
                    return Err(closed(server, "no response".into()));
                }
                Ok(Ok(None)) => {
                    return Err(bad(
                        server,
                        BadResponse::Syntax("connection closed inside the response head".into()),
                    ));
                }
                Ok(Ok(Some(head))) => head,
            };
            if (100..200).contains(&head.status) && head.status != 101 {
                tracing::debug!(
                    status = head.status,
                    "interim response from the app skipped"
                );
                continue;
            }
            return Ok((head, buf));
        }
    }
}

/// What every try of one request shares.
struct Attempt<'a> {
    req: &'a RequestHead,
    /// The encoded head (with a small held body appended when `inline`).
    head: Vec<u8>,
    inline: bool,
    /// Whether the request may be sent again after the app closed the connection on it
    /// before a head: idempotent, and all its bytes in hand.
    resend_after_close: bool,
}

fn closed(server: &Server, detail: String) -> Failure {
    Failure::Closed {
        addr: server.label.to_string(),
        detail,
    }
}

fn bad(server: &Server, source: BadResponse) -> Failure {
    Failure::Bad {
        addr: server.label.to_string(),
        source,
    }
}

/// Every configured server address with the key it was given under, for `ferry check`.
pub fn server_keys(config: &config::Config) -> Vec<(String, &UpstreamAddress)> {
    let sections = config
        .upstream
        .iter()
        .map(|upstream| ("upstream".to_string(), upstream))
        .chain(
            (config.upstreams.iter())
                .map(|(name, upstream)| (format!("upstreams.{name}"), upstream)),
        );
    let mut keys = Vec::new();
    for (section, upstream) in sections {
        for (i, address) in upstream.servers.iter().enumerate() {
            let key = if upstream.servers.len() == 1 {
                format!("{section}.address")
            } else {
                format!("{section}.servers[{i}]")
            };
            keys.push((key, address));
        }
    }
    keys
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options
    )
}
