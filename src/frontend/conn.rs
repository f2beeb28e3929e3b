//! One HTTP/1.1 client connection (`Connection`: its transport, sender, read buffer, peer,
//! the shared state and its shutdown token, in a `conn` tracing span): read a request head
//! (with header/keep-alive timeouts), route it (or, on a plaintext listener with
//! `server.redirect_https`, answer it with the redirect), frame the reply (Content-Length,
//! Connection, Date, the configured `add_header`), send it, and loop while keep-alive holds.
//! Pipelined requests wait in the read buffer and are answered in order. Broken input
//! gets its status and the connection closed; a failed write just closes.
//!
//! h2c: on a plaintext connection (with `server.h2c`), first bytes that are HTTP/2's
//! connection preface are no request: the connection is handed back (`Prefaced`, with the
//! bytes read) for `h2` to serve. Recognising it costs a comparison of bytes read anyway.
//!
//! A request the event loop can answer at once — routed, its file opened from the kernel's
//! caches, its reply framed and taken by the socket whole — is served by plain calls
//! (`serve_now`), with no future built or moved; what has to wait (an off-loop open, the app,
//! a full socket, lingering) goes on in a boxed `serve_later` from where it stopped.
//!
//! Memory: an idle connection holds no read, head or body buffer. The read buffer comes from
//! the worker's pool (`send::pool`) when bytes arrive and goes back as soon as it is empty
//! (bytes of a pipelined request keep it); the steps that wait are boxed, so the connection's
//! task is only as large as its loop.

use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::Instrument;

use super::idle::Slot;
use super::shared::{Finished, Shared};
use crate::access::{Notes, Proto};
use crate::failure::Failure;
use crate::http::{
    BodyLength, HeadEncoder, MAX_REQUEST_LINE, Method, ParseError, RequestHead, Version, http_date,
    parse_request,
};
use crate::ingress::{Client, identify, is_trusted};
use crate::metrics::{Source, Tally, TransportKind};
use crate::proxy::{ClientBody, Outcome, tunnel};
use crate::route::{Added, Dispatch, Pending, Reply, UpstreamRef, https_redirect};
use crate::send::{Body, Sender, pool};
use crate::transport::Transport;

/// How long ferry keeps reading (and discarding) after answering an error and closing its
/// side, so the client sees the response instead of a reset (nginx's lingering_close).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;

/// The most a closing handshake (TLS close_notify, FIN) may wait for the socket.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// HTTP/2's connection preface (RFC 9113 §3.4), which opens an h2c connection.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A plaintext connection that opened with HTTP/2's preface: for HTTP/2 to serve.
pub struct Prefaced {
    pub transport: Transport,
    /// What was read from `transport` so far: the preface and whatever followed it.
    pub read: BytesMut,
}

/// Why no request head came.
enum NoHead {
    /// The connection opened with HTTP/2's preface (h2c).
    Http2,
    /// Closed, idle too long, or shutting down: close quietly.
    Quiet,
    /// Part of a head arrived but not all of it in time: 408.
    Timeout,
    /// The head is malformed or too large: its status.
    Bad(ParseError),
}

/// One HTTP/1.1 connection and what it owns while it lives.
struct Connection {
    transport: Transport,
    sender: Sender,
    /// Bytes read and not yet taken by a request (a pipelined request's); empty and
    /// unallocated while none are pending (see `read_pooled`).
    buf: BytesMut,
    /// The TCP peer, or the source its PROXY protocol header named.
    peer: SocketAddr,
    /// Whether `peer` is a trusted proxy (`server.trusted_proxies`).
    peer_trusted: bool,
    shared: Arc<Shared>,
    /// This connection's child of the server's shutdown token.
    shutdown: CancellationToken,
    /// On a plaintext listener with `server.redirect_https`: the https port every request
    /// is redirected to.
    redirect_https: Option<u16>,
    /// Whether HTTP/2's preface, as the first bytes, is h2c (`server.h2c`, plaintext).
    h2c: bool,
    /// When the last response was recorded: where the keep-alive wait for the next one
    /// starts.
    answered_at: Option<Instant>,
}

/// Serves one connection until it closes, errs or keep-alive ends, inside a `conn` tracing
/// span (at debug level) that names the client; or until it turns out to be h2c: then it is
/// returned for HTTP/2.
pub fn serve<'a>(
    transport: Transport,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    shutdown: &'a CancellationToken,
    slot: &'a Slot,
) -> impl Future<Output = Option<Prefaced>> + 'a {
    let span = tracing::debug_span!("conn", %peer, transport = transport.kind().label());
    serve_connection(transport, peer, Arc::clone(shared), shutdown, slot).instrument(span)
}

async fn serve_connection(
    transport: Transport,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: &CancellationToken,
    slot: &Slot,
) -> Option<Prefaced> {
    // The connection waits on its own child of the server's token: waiting registers with
    // the token per request, and on the shared token every connection of every worker
    // took the same lock for it. Cancelling the server's token cancels every child.
    let shutdown = shutdown.child_token();
    let kind = transport.kind();
    let io = &shared.io;
    let sender = Sender::new(
        io.send_path,
        kind,
        io.chunk.get(),
        shared.server.send_timeout,
    );
    let header_timeout = shared.server.header_timeout;
    let peer_trusted = is_trusted(&shared.server.trusted_proxies, peer.ip());
    let mut conn = Connection {
        transport,
        sender,
        buf: BytesMut::new(),
        peer,
        peer_trusted,
        redirect_https: shared.redirect_https.filter(|_| kind == TransportKind::Tcp),
        h2c: shared.server.h2c && kind == TransportKind::Tcp,
        shared,
        shutdown: shutdown.clone(),
        answered_at: None,
    };
    let mut waits = Waits {
        sleep: pin!(tokio::time::sleep_until(
            tokio::time::Instant::now() + header_timeout
        )),
        shutdown: pin!(shutdown.cancelled()),
        slot,
    };
    let mut first = true;
    loop {
        let head = match conn.read_head(first, &mut waits).await {
            Ok(head) => head,
            Err(NoHead::Http2) => {
                let Connection { transport, buf, .. } = conn;
                return Some(Prefaced {
                    transport,
                    read: buf,
                });
            }
            Err(NoHead::Quiet) => {
                // Idle, timed out, shutting down, closed or broken: say goodbye properly (a
                // TLS close_notify; a FIN for TCP) rather than just dropping the socket.
                let _ = tokio::time::timeout(CLOSE_WAIT, conn.transport.shutdown()).await;
                break;
            }
            Err(NoHead::Timeout) => {
                Box::pin(conn.refuse(Reply::error(408, Source::Internal))).await;
                break;
            }
            Err(NoHead::Bad(err)) => {
                tracing::debug!(%peer, error = %err, "bad request head");
                Box::pin(conn.refuse(Reply::error(err.status(), Source::Internal))).await;
                break;
            }
        };
        if first {
            conn.shared.metrics.http_connection(Proto::Http1, kind);
        }
        first = false;
        // Most requests are answered without waiting (`serve_now`). What has to wait is
        // boxed: its state is needed only while it is served, so a connection waiting for
        // its next request keeps just the small state above.
        let later = match conn.serve_now(&head) {
            Ok(true) => continue,
            Ok(false) => break,
            Err(later) => later,
        };
        if !Box::pin(conn.serve_later(&head, later)).await {
            break;
        }
    }
    if conn.buf.is_empty() {
        pool::put_read(conn.buf);
    }
    None
}

/// What a connection waits on besides its socket while it reads a head, kept for the
/// connection's whole life so that waiting costs no timer registration and no shutdown
/// registration per request: the sleep is moved to an earlier deadline when one is needed,
/// but a later deadline (the next request's keep-alive limit) is only taken up when the
/// sleep fires early, about once per keep-alive period instead of once per request.
struct Waits<'a, 'b> {
    sleep: Pin<&'a mut Sleep>,
    shutdown: Pin<&'a mut WaitForCancellationFuture<'b>>,
    /// Before any byte of a head, the connection is idle: at max_connections an accept
    /// loop may close it through this.
    slot: &'a Slot,
}

/// What is left of a request `serve_now` could not finish without waiting.
enum Later {
    /// Its file lookup has to run off the event loop.
    Route(Pending, Instant),
    /// It goes to the app.
    Upstream(UpstreamRef, Instant),
    /// Its response is framed and partly written: the socket is full, or it is of a kind
    /// only `write_response` sends.
    Send(Box<Outgoing>),
    /// It is answered and the connection closes: linger first.
    Linger,
}

/// A framed response on its way out, and what recording it takes.
struct Outgoing {
    /// The encoded head (a pooled buffer) and how much of it is written.
    head: Vec<u8>,
    head_sent: usize,
    body: Body,
    rate: Option<u64>,
    status: u16,
    source: Source,
    notes: Notes,
    /// Whether the connection can carry another response after this one.
    keep_alive: bool,
    /// The body length the head announced, for the log of a failed response.
    announced: Option<u64>,
    tally: Tally,
    started: Instant,
}

impl Connection {
    /// Serves one request whose head has been read as far as it can without waiting: routes
    /// it and writes a reply the socket takes at once (most static files, errors,
    /// redirects, 304s). `Ok`: the request is done; whether the connection goes on to its
    /// next request. `Err`: what is left to do, for `serve_later`.
    fn serve_now(&mut self, head: &RequestHead) -> Result<bool, Later> {
        let started = Instant::now();
        let shared = &*self.shared;
        let dispatch = match self.redirect_https {
            Some(port) => Dispatch::Reply(https_redirect(head, port)),
            None => match shared.router.handle_now(head) {
                Ok(dispatch) => dispatch,
                Err(pending) => return Err(Later::Route(pending, started)),
            },
        };
        let mut reply = match dispatch {
            Dispatch::Reply(reply) => reply,
            Dispatch::Upstream(to) => return Err(Later::Upstream(to, started)),
        };
        let keep_alive = self.keeps_alive(head, &reply, head.body == BodyLength::Empty);
        let mut out = self.frame(Some(head), &head.client, &mut reply, keep_alive, started);
        let written = self.send_now(&mut out);
        let Some(result) = written else {
            return Err(Later::Send(Box::new(out)));
        };
        match self.finish(Some(head), &head.client, &mut out, result) {
            Some(true) => Ok(true),
            Some(false) => Err(Later::Linger),
            None => Ok(false),
        }
    }

    /// Does what `serve_now` left of a request. Returns whether the connection goes on to
    /// its next request.
    async fn serve_later(&mut self, head: &RequestHead, later: Later) -> bool {
        match later {
            Later::Route(pending, started) => {
                let dispatch = pending.finish(head).await;
                self.answer(head, dispatch, started).await
            }
            Later::Upstream(to, started) => {
                self.answer(head, Dispatch::Upstream(to), started).await
            }
            Later::Send(mut out) => {
                let result = self.send_rest(&mut out).await;
                let responded = self.finish(Some(head), &head.client, &mut out, result);
                self.close_unless(responded).await
            }
            Later::Linger => {
                linger(&mut self.transport).await;
                false
            }
        }
    }

    /// Answers a routed request: proxies it if it goes upstream, sends the reply. Returns
    /// whether the connection goes on to its next request.
    async fn answer(&mut self, head: &RequestHead, dispatch: Dispatch, started: Instant) -> bool {
        let (shared, peer) = (&*self.shared, self.peer);
        // Whether the request's body (if any) has been read, so the next bytes on the
        // connection are the next request.
        let (reply, body_read) = match dispatch {
            Dispatch::Reply(reply) => (reply, head.body == BodyLength::Empty),
            Dispatch::Upstream(to) => match &shared.proxy {
                // The router sends requests to the app only when there is one.
                None => (
                    Reply::error(404, Source::Internal),
                    head.body == BodyLength::Empty,
                ),
                Some(proxy) => {
                    let body = ClientBody::Connection {
                        transport: &mut self.transport,
                        buf: &mut self.buf,
                    };
                    // Boxed apart: a proxied exchange's state is large, and a static
                    // request's box need not make room for it.
                    let forward = proxy.forward(&shared.router, head, body, peer, to);
                    let forwarded = Box::pin(forward).await;
                    match forwarded {
                        Outcome::Reply(reply) => (reply, true),
                        Outcome::Failed(reply) => (reply, false),
                        Outcome::Upgrade(exchange) => {
                            let notes = Notes {
                                upstream: Some(exchange.visit.clone()),
                                cache: None,
                            };
                            let (transport, buf) = (&mut self.transport, &mut self.buf);
                            let tally =
                                Box::pin(tunnel(transport, buf, head, exchange, peer)).await;
                            let done = Finished {
                                req: Some(head),
                                status: 101,
                                source: Source::Upstream,
                                started,
                                tally: &tally,
                                // A tunnel ends when either side closes: no failure.
                                failed: None,
                                proto: Proto::Http1,
                                tls: self.transport.kind() != TransportKind::Tcp,
                                notes: &notes,
                            };
                            shared.record(&head.client, done);
                            return false;
                        }
                        Outcome::ClientGone(_) => return false,
                    }
                }
            },
        };
        let keep_alive = self.keeps_alive(head, &reply, body_read);
        let responded = self
            .respond(Some(head), &head.client, reply, keep_alive, started)
            .await;
        self.close_unless(responded).await
    }

    /// Whether the connection may carry another request after `reply` to `head`.
    fn keeps_alive(&self, head: &RequestHead, reply: &Reply, body_read: bool) -> bool {
        // A client that sent a malformed target is not trusted with more: close after.
        head.keep_alive
            && body_read
            && reply.status != 400
            && !self.shared.server.keepalive_timeout.is_zero()
            && !self.shutdown.is_cancelled()
    }

    /// After a response (see `respond`): true to go on to the next request; else the
    /// connection closes, lingering when the response went out whole.
    async fn close_unless(&mut self, responded: Option<bool>) -> bool {
        match responded {
            Some(true) => true,
            Some(false) => {
                linger(&mut self.transport).await;
                false
            }
            None => false,
        }
    }

    /// Reads until `buf` holds a complete head, then removes it from `buf`.
    async fn read_head(
        &mut self,
        first: bool,
        waits: &mut Waits<'_, '_>,
    ) -> Result<RequestHead, NoHead> {
        let (transport, buf, shared) = (&mut self.transport, &mut self.buf, &*self.shared);
        let (peer, peer_trusted) = (self.peer, self.peer_trusted);
        let h2c = first && self.h2c;
        let header_timeout = shared.server.header_timeout;
        // The last response's end, read when it was recorded, else now: a clock read less
        // per request.
        let entered = self
            .answered_at
            .take()
            .map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std);
        // Between requests the keep-alive timer applies; the head timer runs from accept for a
        // new connection, and from the first byte of each later request.
        let idle_deadline = entered + shared.server.keepalive_timeout;
        let mut head_deadline = (first || !buf.is_empty()).then(|| entered + header_timeout);
        // A head can only complete (or turn out bad) once a line ends or the size limit is hit,
        // so a client trickling bytes does not make ferry rescan the whole head per byte.
        let mut may_parse = !buf.is_empty();
        let mut first_bytes = false;
        loop {
            if h2c && !buf.is_empty() {
                match preface(buf) {
                    Preface::Whole => return Err(NoHead::Http2),
                    // Not a request line either: wait for the rest (or the header timeout).
                    Preface::Partial => may_parse = false,
                    Preface::No => {}
                }
            }
            if may_parse {
                match parse_request(buf) {
                    Ok(Some((mut head, used))) => {
                        buf.advance(used);
                        head.scheme = transport.kind().scheme();
                        let trusted = &shared.server.trusted_proxies;
                        identify(&mut head, peer, peer_trusted, trusted);
                        return Ok(head);
                    }
                    Ok(None) => {}
                    Err(err) => return Err(NoHead::Bad(err)),
                }
            }
            if std::mem::take(&mut first_bytes) {
                // Set only now, so a head that arrives whole costs no clock read for it.
                head_deadline = Some(tokio::time::Instant::now() + header_timeout);
            }
            let deadline = head_deadline.unwrap_or(idle_deadline);
            if waits.sleep.deadline() > deadline {
                waits.sleep.as_mut().reset(deadline);
            }
            // Part of a head is waited for until it is complete or too late (408), shutdown or
            // not; before any byte, the timers end the connection quietly, and so does shutdown
            // (or a reload retiring this connection's configuration) between two requests. A
            // new connection's first request is waited for even then: a client that connected
            // just before the listener closed (or was handed to a new process) has its request
            // on the way, and closing now would fail it.
            let partial = !buf.is_empty();
            let read = tokio::select! {
                biased;
                read = waits.slot.watch(!partial, entered, read_pooled(transport, buf)) => match read {
                    Ok(read) => read,
                    // Closed to make room for a new client: quietly, as when idle too long.
                    Err(_) => return Err(NoHead::Quiet),
                },
                () = waits.sleep.as_mut() => {
                    if tokio::time::Instant::now() < deadline {
                        // Armed for an earlier request's deadline: wait on for this one.
                        waits.sleep.as_mut().reset(deadline);
                        continue;
                    }
                    return Err(if partial { NoHead::Timeout } else { NoHead::Quiet });
                }
                () = waits.shutdown.as_mut(), if !partial && !first => return Err(NoHead::Quiet),
            };
            match read {
                Ok(0) | Err(_) => return Err(NoHead::Quiet),
                Ok(n) => {
                    may_parse =
                        buf[buf.len() - n..].contains(&b'\n') || buf.len() >= MAX_REQUEST_LINE;
                    first_bytes |= head_deadline.is_none();
                }
            }
        }
    }

    /// Frames and sends one reply to `client`; records it. Returns whether the connection
    /// can carry another response (`None`: the response failed, close now).
    async fn respond(
        &mut self,
        req: Option<&RequestHead>,
        client: &Client,
        mut reply: Reply,
        keep_alive: bool,
        started: Instant,
    ) -> Option<bool> {
        let mut out = self.frame(req, client, &mut reply, keep_alive, started);
        let written = self.send_now(&mut out);
        let result = match written {
            Some(result) => result,
            None => self.send_rest(&mut out).await,
        };
        self.finish(req, client, &mut out, result)
    }

    /// Encodes the head of `reply` into a pooled buffer: Date, Server, X-Request-Id, the
    /// reply's own and passed headers, `add_header`, the body's framing and Connection.
    fn frame(
        &mut self,
        req: Option<&RequestHead>,
        client: &Client,
        reply: &mut Reply,
        mut keep_alive: bool,
        started: Instant,
    ) -> Outgoing {
        let shared = &*self.shared;
        // By reference: a `Reply` is a few hundred bytes, and a move copies them all.
        let Reply {
            status,
            ref own_headers,
            ref passed_headers,
            source,
            head_length,
            rate,
            ..
        } = *reply;
        let mut body = std::mem::take(&mut reply.body);
        let notes = std::mem::take(&mut reply.notes);
        let no_body_status = status == 304 || status == 204 || status < 200;
        let head_request = req.is_some_and(|r| r.method == Method::Head);
        let http10 = req.is_none_or(|r| r.version == Version::Http10);
        // The head is encoded straight from where each value lives, into the connection's
        // reused buffer: no list of copied pairs per response.
        let mut head = self.sender.take_head_buffer();
        let mut encoder = HeadEncoder::new(status, &mut head);
        with_date(|date| encoder.header("Date", date.as_bytes()));
        encoder.header("Server", b"ferry");
        encoder.header("X-Request-Id", client.request_id.as_str().as_bytes());
        // add_header: the configured values stand in for any of the same name.
        let added = Added::new(shared.router.added_headers(req), status);
        for (name, value) in own_headers {
            if !added.replaces(name) {
                encoder.header(name, value.as_bytes());
            }
        }
        for (name, value) in passed_headers {
            // The app's (or a stored answer's) own ID never stands for this request's.
            if !added.replaces(name) && !name.eq_ignore_ascii_case("x-request-id") {
                encoder.header(name, value.as_bytes());
            }
        }
        for header in added.iter() {
            encoder.header(&header.name, header.value.as_bytes());
        }
        if !no_body_status {
            // A proxied HEAD has no body to measure: announce what the app announced, if anything.
            let length = if head_request && matches!(body, Body::Upstream(_)) {
                head_length
            } else {
                body.length()
            };
            match length {
                Some(length) => encoder.header_u64("Content-Length", length),
                None if head_request => {}
                // A body of unknown length: chunked for HTTP/1.1, delimited by the close for 1.0.
                None if !http10 => {
                    encoder.header("Transfer-Encoding", b"chunked");
                    if let Body::Upstream(up) = &mut body {
                        up.chunked = true;
                    }
                }
                None => keep_alive = false,
            }
        }
        match (keep_alive, http10) {
            (true, true) => encoder.header("Connection", b"keep-alive"),
            (false, _) => encoder.header("Connection", b"close"),
            (true, false) => {}
        }
        encoder.finish();

        let announced = body.length();
        let body = if no_body_status || head_request {
            body.into_empty()
        } else {
            body
        };
        Outgoing {
            head,
            head_sent: 0,
            body,
            rate,
            status,
            source,
            notes,
            keep_alive,
            announced,
            tally: Tally::default(),
            started,
        }
    }

    /// Writes what the socket takes of `out` now (`Sender::write_now`): `None` leaves the
    /// rest to `send_rest`.
    fn send_now(&mut self, out: &mut Outgoing) -> Option<Result<(), Failure>> {
        self.sender.write_now(
            &mut self.transport,
            &out.head,
            &mut out.head_sent,
            &mut out.body,
            out.rate,
            &mut out.tally,
        )
    }

    /// Writes what `send_now` left of `out`.
    async fn send_rest(&mut self, out: &mut Outgoing) -> Result<(), Failure> {
        let (transport, sender, shared) = (&mut self.transport, &mut self.sender, &*self.shared);
        let head = &out.head[out.head_sent..];
        let body = std::mem::take(&mut out.body);
        sender
            .write_response(
                transport,
                head,
                body,
                out.rate,
                &shared.metrics,
                &mut out.tally,
            )
            .await
    }

    /// Records a response that has been written (or failed) and gives its head buffer back.
    /// Returns whether the connection can carry another response (`None`: it failed).
    fn finish(
        &mut self,
        req: Option<&RequestHead>,
        client: &Client,
        out: &mut Outgoing,
        result: Result<(), Failure>,
    ) -> Option<bool> {
        // By reference: an `Outgoing` is a few hundred bytes, and a move copies them all.
        let &mut Outgoing {
            ref mut head,
            status,
            source,
            ref notes,
            keep_alive,
            announced,
            ref tally,
            started,
            ..
        } = out;
        self.sender.put_head_buffer(std::mem::take(head));
        if let Err(err) = &result {
            let peer = self.peer;
            tracing::debug!(%peer, error = %err, sent = tally.total(), of = ?announced, "response not completed");
        }
        let failed = result.as_ref().err().map(Failure::side);
        let done = Finished {
            req,
            status,
            source,
            started,
            tally,
            failed,
            proto: Proto::Http1,
            tls: self.transport.kind() != TransportKind::Tcp,
            notes,
        };
        self.answered_at = Some(self.shared.record(client, done));
        result.ok().map(|()| keep_alive)
    }

    /// Answers a request whose head could not be read, then closes gracefully.
    async fn refuse(&mut self, reply: Reply) {
        let client = Client::peer(self.peer, self.peer_trusted);
        if self
            .respond(None, &client, reply, false, Instant::now())
            .await
            .is_some()
        {
            linger(&mut self.transport).await;
        }
    }
}

/// What a connection's first bytes say about HTTP/2's preface.
#[derive(Debug, PartialEq, Eq)]
enum Preface {
    /// They begin with the whole preface.
    Whole,
    /// They are the preface's beginning, and no more.
    Partial,
    /// They are not the preface.
    No,
}

fn preface(first: &[u8]) -> Preface {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Preface::No
    } else if n == PREFACE.len() {
        Preface::Whole
    } else {
        Preface::Partial
    }
}

/// Reads what `transport` has into `buf`, which holds memory from the worker's pool only
/// while it holds bytes: an empty `buf` takes a pooled buffer for each attempt and gives it
/// back when nothing came, so a connection waiting for its next request holds none.
async fn read_pooled(transport: &mut Transport, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        if buf.capacity() == 0 {
            *buf = pool::take_read();
        } else {
            buf.reserve(pool::READ_SIZE);
        }
        // A read future holds only its two references: a fresh one per poll loses nothing.
        let polled = pin!(transport.read_buf(&mut *buf)).poll(cx);
        if buf.is_empty() {
            pool::put_read(std::mem::take(buf));
        }
        polled
    })
    .await
}

/// Closes our side, then discards what the client still sends for a moment, so our last
/// response is not destroyed by a reset caused by unread input.
async fn linger(stream: &mut Transport) {
    if !matches!(
        tokio::time::timeout(CLOSE_WAIT, stream.shutdown()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let mut scratch = BytesMut::new();
    let mut discarded = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while discarded < LINGER_BYTES {
            match read_pooled(stream, &mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    discarded += n;
                    scratch.clear();
                }
            }
        }
    })
    .await;
    if scratch.is_empty() {
        pool::put_read(scratch);
    }
}

/// Runs `f` with the Date header value, formatted at most once a second per worker thread.
/// The second comes from the kernel's coarse clock (its last tick, a few milliseconds at
/// most behind; no clock source read), which is all a Date needs.
pub(super) fn with_date<R>(f: impl FnOnce(&str) -> R) -> R {
    use std::cell::RefCell;
    use std::time::UNIX_EPOCH;
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let second = u64::try_from(now.tv_sec).unwrap_or(0);
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, http_date(UNIX_EPOCH + Duration::from_secs(second)));
        }
        f(&cached.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_is_recognised_whole_or_in_part_and_only_it() {
        assert_eq!(preface(PREFACE), Preface::Whole);
        let more = [&PREFACE[..], b"\0\0\x12\x04\0\0\0\0\0"].concat();
        assert_eq!(preface(&more), Preface::Whole);
        assert_eq!(preface(b"P"), Preface::Partial);
        assert_eq!(preface(b"PRI * HTTP/2.0\r\n"), Preface::Partial);
        assert_eq!(preface(b"POST / HTTP/1.1\r\n"), Preface::No);
        assert_eq!(preface(b"PRI * HTTP/2.0\r\n\r\nXX"), Preface::No);
        assert_eq!(preface(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Preface::No);
    }
}
