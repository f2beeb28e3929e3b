//! The app behind ferry: an own HTTP/1.1 client over pooled raw sockets (TCP or unix).
//! hyper's client would hide the socket; owning it is what lets ferry splice request bodies
//! client → app and response bodies app → client without copying them through user space.
//!
//! `Upstream::exchange` sends one request (head, then its body from a `RequestBody`: the
//! client's connection, or bytes in hand) and returns the app's response head with the
//! connection positioned at the body; `send` relays the body and hands the connection back
//! to the pool. What to do with the answer (offload, cache, relay) is the proxy's.

mod body;
mod buffered;
mod head;
mod pool;
mod resolve;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

pub use head::{ForwardOptions, encode_request, wants_upgrade};
pub use pool::Pool;
pub use resolve::check_resolves;
pub use stream::AppSocket;

use crate::access::UpstreamVisit;
use crate::config::{self, UpstreamAddress};
use crate::failure::Failure;
use crate::http::{BadResponse, BodyLength, Framing, Method, RequestHead, ResponseHead, framing};
use crate::metrics::{Metrics, UpstreamOutcome};
use crate::transport::Transport;

/// Where a forwarded request's body comes from.
pub enum RequestBody<'a> {
    /// All of it, already read (empty for none); `req.body` must say `Empty` or `Length`.
    InHand(Bytes),
    /// The client's HTTP/1.1 connection: the body follows the head there, after what `buf`
    /// already holds, and is forwarded as it arrives (spliced when it can be).
    Client {
        transport: &'a mut Transport,
        buf: &'a mut BytesMut,
    },
}

/// Why a request could not be written to the app.
enum WriteError {
    /// The app took none of it that counts (the head write failed, or a request held whole
    /// failed to go out): the same request may go on a fresh connection.
    Retryable(String),
    /// Part of a streamed body was sent, or the client's side failed: no second try.
    Final(Failure),
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
    pool: Arc<Pool>,
}

impl UpConn {
    /// Returns the connection to the pool (call only after the body was read exactly).
    pub fn release(self) {
        if self.reusable && self.leftover.is_empty() {
            self.pool.put(self.stream);
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

/// Where new connections to the app go.
#[derive(Debug)]
enum Target {
    Tcp(SocketAddr),
    /// A host name, resolved for new connections (its answer kept briefly).
    Host(resolve::Resolver),
    Unix(PathBuf),
}

/// The configured app and its connection pool.
#[derive(Debug)]
pub struct Upstream {
    target: Target,
    label: String,
    /// `label`, shared with every exchange's access log entry.
    addr: Arc<str>,
    connect_timeout: Duration,
    response_timeout: Duration,
    options: ForwardOptions,
    pool: Arc<Pool>,
    /// Longest wait for the next request-body bytes from the client.
    client_timeout: Duration,
}

impl Upstream {
    pub fn new(
        upstream: &config::Upstream,
        offload: &config::Offload,
        client_timeout: Duration,
    ) -> Upstream {
        let options = ForwardOptions {
            // As nginx's `$proxy_host`: the address as configured.
            default_host: match &upstream.address {
                UpstreamAddress::Tcp(_) | UpstreamAddress::Host { .. } => {
                    upstream.address.to_string()
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
        let label = upstream.address.to_string();
        Upstream {
            addr: Arc::from(label.as_str()),
            label,
            target: match &upstream.address {
                UpstreamAddress::Tcp(addr) => Target::Tcp(*addr),
                UpstreamAddress::Host { name, port } => {
                    Target::Host(resolve::Resolver::new(name.clone(), *port))
                }
                UpstreamAddress::Unix(path) => Target::Unix(path.clone()),
            },
            connect_timeout: upstream.connect_timeout,
            response_timeout: upstream.response_timeout,
            options,
            pool: Arc::new(Pool::new(upstream.idle_connections)),
            client_timeout,
        }
    }

    /// `req` as the app will get it, when ferry drops some of its fields (see
    /// [`head::app_view`]); the proxy keys the cache on the same view.
    pub fn app_view(&self, req: &RequestHead) -> Option<RequestHead> {
        head::app_view(req, self.options.underscores)
    }

    /// Forwards `req` with its body from `body` and waits for the response head. Records the
    /// outcome in `metrics`.
    pub async fn exchange(
        &self,
        req: &RequestHead,
        body: RequestBody<'_>,
        peer: SocketAddr,
        metrics: &Metrics,
    ) -> Result<Exchange, Failure> {
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
        let mut result = self.try_exchange(req, body, peer).await;
        let outcome = result
            .as_ref()
            .map_or_else(Failure::upstream_outcome, |_| UpstreamOutcome::Ok);
        let elapsed = started.elapsed();
        metrics.upstream(outcome, elapsed.as_secs_f64());
        if let Ok(exchange) = &mut result {
            exchange.visit.time = elapsed;
        }
        result
    }

    async fn try_exchange(
        &self,
        req: &RequestHead,
        mut body: RequestBody<'_>,
        peer: SocketAddr,
    ) -> Result<Exchange, Failure> {
        let mut head = Vec::with_capacity(512);
        encode_request(req, peer, &self.options, &mut head);
        let replayable = is_idempotent(&req.method)
            && match &body {
                // The whole request is in hand: it can be written again.
                RequestBody::InHand(_) => true,
                // Only a bodiless one: all its bytes are in `head`.
                RequestBody::Client { .. } => req.body == BodyLength::Empty,
            };
        let inline = match &body {
            RequestBody::InHand(bytes) => buffered::inline(&mut head, bytes),
            RequestBody::Client { .. } => false,
        };
        let mut fresh_only = false;
        loop {
            let (mut stream, reused) = match (!fresh_only).then(|| self.pool.take()).flatten() {
                Some(stream) => (stream, true),
                None => (self.connect().await?, false),
            };
            let retry = reused && replayable;
            let written = match &mut body {
                RequestBody::InHand(bytes) => {
                    let rest = (!inline).then_some(bytes.as_ref());
                    let timeout = self.response_timeout;
                    let written = buffered::write_held(&mut stream, &head, rest, timeout).await;
                    let len = bytes.len() as u64;
                    written.map(|()| len).map_err(WriteError::Retryable)
                }
                RequestBody::Client { transport, buf } => {
                    self.write_streamed(req, &mut stream, &head, transport, buf)
                        .await
                }
            };
            let request_bytes = match written {
                Ok(n) => n,
                Err(WriteError::Retryable(_)) if retry => {
                    fresh_only = true;
                    continue;
                }
                Err(WriteError::Retryable(detail)) => return Err(self.closed(detail)),
                Err(WriteError::Final(err)) => return Err(err),
            };
            match self.response(stream, &req.method).await {
                Ok(mut exchange) => {
                    exchange.visit.request_bytes = request_bytes;
                    return Ok(exchange);
                }
                // The app closed an idle connection just as ferry reused it: try once more.
                Err(Failure::Closed { .. }) if retry => fresh_only = true,
                Err(err) => return Err(err),
            }
        }
    }

    /// Writes the head, then the body as it arrives from the client (answering its
    /// `Expect: 100-continue` first); returns the body bytes sent. Only a failed head write
    /// may be retried elsewhere.
    async fn write_streamed(
        &self,
        req: &RequestHead,
        stream: &mut AppSocket,
        head: &[u8],
        client: &mut Transport,
        buf: &mut BytesMut,
    ) -> Result<u64, WriteError> {
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
        body::forward_request_body(req.body, client, buf, stream, self.client_timeout)
            .await
            .map_err(|err| {
                WriteError::Final(match err {
                    body::BodyError::Client(err) => Failure::ClientGone(err),
                    body::BodyError::BadChunked(err) => Failure::ClientBody(err),
                    body::BodyError::Upstream(err) => {
                        self.closed(format!("writing request body: {err}"))
                    }
                })
            })
    }

    async fn connect(&self) -> Result<AppSocket, Failure> {
        let timeout = self.connect_timeout;
        let connected = match &self.target {
            Target::Tcp(addr) => AppSocket::connect_tcp(*addr, timeout).await,
            Target::Host(resolver) => resolver.connect(timeout).await,
            Target::Unix(path) => AppSocket::connect_unix(path, timeout).await,
        };
        connected.map_err(|source| Failure::Connect {
            addr: self.label.clone(),
            source,
        })
    }

    fn closed(&self, detail: String) -> Failure {
        Failure::Closed {
            addr: self.label.clone(),
            detail,
        }
    }

    fn bad(&self, source: BadResponse) -> Failure {
        Failure::Bad {
            addr: self.label.clone(),
            source,
        }
    }

    /// Waits for the response head (within `response_timeout`) and positions the
    /// connection at the body.
    async fn response(&self, mut stream: AppSocket, method: &Method) -> Result<Exchange, Failure> {
        let deadline = tokio::time::Instant::now() + self.response_timeout;
        let (head, leftover) = self.read_head(&mut stream, deadline).await?;
        let framing = framing(&head, method).map_err(|source| self.bad(source))?;
        let reusable = head.keep_alive() && framing != Framing::Close && head.status != 101;
        let conn = UpConn {
            stream,
            leftover,
            reusable,
            read_timeout: self.response_timeout,
            pool: Arc::clone(&self.pool),
        };
        Ok(Exchange {
            head,
            framing,
            conn,
            visit: UpstreamVisit {
                addr: Arc::clone(&self.addr),
                time: Duration::ZERO,
                request_bytes: 0,
            },
        })
    }

    /// Reads the response head, skipping interim 1xx responses other than 101.
    async fn read_head(
        &self,
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
                        addr: self.label.clone(),
                        timeout: self.response_timeout,
                    });
                }
                Ok(Err(body::HeadError::Io(err))) => return Err(self.closed(err.to_string())),
                Ok(Err(body::HeadError::Bad(err))) => return Err(self.bad(err)),
                Ok(Ok(None)) if buf.is_empty() => return Err(self.closed("no response".into())),
                Ok(Ok(None)) => {
                    return Err(self.bad(BadResponse::Syntax(
                        "connection closed inside the response head".into(),
                    )));
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

fn is_idempotent(method: &Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options
    )
}
