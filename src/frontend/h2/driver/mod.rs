//! The driver of one HTTP/2 connection: one task, one struct (`Driver`), no task per stream.
//! Each turn it reads what the socket has into a pooled buffer and hands it to the protocol
//! core (`crate::http2::Connection`, which does no I/O), acts on the events that come back (a
//! request starts its stream's handler; body bytes go to that handler; a reset drops it),
//! polls the handlers it keeps in one set, pumps the responses' bodies into the core's frames
//! round robin while flow control allows, and writes the core's output in large writes (up
//! to 64 KiB under rustls: full TLS records, then one flush). A handler, a body producer or a
//! request-body reader wakes this one task; nothing crosses threads per request.
//!
//! Timers, one sleep re-armed to the nearest: `header_timeout` before the first request and
//! `keepalive_timeout` after the last (GOAWAY, then closed once the client has had
//! `header_timeout` to take it), `send_timeout` for a stream with bytes ready and no
//! flow-control room or output the socket does not take (the connection is closed, as a
//! stalled HTTP/1.1 client's is). Shutdown (or a reload) sends GOAWAY: the streams in flight
//! finish, no new ones open, then the connection closes.
//!
//! Memory: an idle connection holds the core's state and this struct, no read buffer (taken
//! from the worker's pool when bytes arrive, given back when parsed) and no body buffers;
//! after `IDLE_SHRINK` without a stream, no output buffer or stream table either.
//!
//! Here: the loop, the socket, the timers and the close; `streams`: the stream table, its
//! handlers, answers and bodies.

mod streams;

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use self::streams::{HIGH_WATER, Streams};
use super::stream::ConnState;
use crate::http::ParseError;
use crate::http2::{ConnError, Connection, Event, Settings};
use crate::send::pool;
use crate::transport::Transport;

/// Streams one client may have open at once.
const MAX_STREAMS: u32 = 128;
/// Output not yet taken by the socket past which the driver stops reading: a client that
/// sends and does not read gets no more answers queued.
const OUTPUT_LIMIT: usize = 1024 * 1024;
/// Reads and pump-and-write rounds per turn before the driver yields to the other
/// connections of its worker.
const READS_PER_TURN: usize = 16;
const ROUNDS_PER_TURN: usize = 16;
/// How long a connection has no stream before it gives back the buffers sized by its busiest
/// moment: long enough that a client sending request after request does not make it
/// allocate them again for each.
const IDLE_SHRINK: std::time::Duration = std::time::Duration::from_millis(100);
/// The most a closing connection waits for its last bytes to go out.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The receive windows ferry announces: a stream's request body may be this far ahead of
/// its handler (it is read whole, so a handler takes it as fast as it comes).
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// What ferry announces and enforces.
pub(super) fn settings() -> Settings {
    Settings {
        max_concurrent_streams: MAX_STREAMS,
        initial_window_size: STREAM_WINDOW,
        connection_window: CONNECTION_WINDOW,
        max_frame_size: 16 * 1024,
        max_header_list_size: crate::http::MAX_HEAD as u32,
        header_table_size: 4096,
    }
}

/// Why the connection ends.
enum Close {
    /// Draining is done (shutdown, idle, the client's GOAWAY): every stream has finished.
    Done,
    /// The client broke the protocol: the GOAWAY the core queued goes out first.
    Protocol(ConnError),
    /// A stream or the socket took nothing for `send_timeout`.
    Stalled,
    Io(io::Error),
}

/// One HTTP/2 connection and what it owns while it lives.
pub(super) struct Driver {
    transport: Transport,
    core: Connection,
    /// Bytes read and not yet parsed (a partial frame); pooled, and given back when empty.
    input: BytesMut,
    events: Vec<Event>,
    streams: Streams,
    conn: Arc<ConnState>,
    /// GOAWAY sent or received: no new streams; close once those in flight are done.
    draining: bool,
    /// After an idle GOAWAY: when to close whatever the client does.
    close_by: Option<Instant>,
    /// Since when output has waited for the socket.
    write_waiting: Option<Instant>,
    /// Bytes handed to the transport and not yet flushed.
    unflushed: bool,
    /// ferry's GOAWAY is queued.
    said_goodbye: bool,
    /// The client closed its side: answer what is in flight, read no more.
    read_closed: bool,
    /// The buffers were given back since the last stream (see `shrink_idle`).
    shrunk: bool,
}

/// What the driver waits on besides its sockets and streams.
struct Waits<'a> {
    shutdown: Pin<&'a mut WaitForCancellationFutureOwned>,
    /// A body producer's `ConnState::abort`.
    abort: Pin<&'a mut WaitForCancellationFutureOwned>,
    sleep: Pin<&'a mut Sleep>,
    /// The deadline `sleep` is armed for.
    armed: Option<Instant>,
    shutdown_seen: bool,
}

impl Driver {
    /// `read`: what was already read from `transport` (on h2c: the preface and what followed).
    pub(super) fn new(transport: Transport, read: BytesMut, conn: Arc<ConnState>) -> Driver {
        Driver {
            transport,
            core: Connection::new(settings()),
            input: read,
            events: Vec::new(),
            streams: Streams::new(Arc::clone(&conn)),
            conn,
            draining: false,
            close_by: None,
            write_waiting: None,
            unflushed: false,
            said_goodbye: false,
            read_closed: false,
            shrunk: false,
        }
    }

    /// Serves the connection until it closes, idles out, stalls, or shutdown has drained it.
    pub(super) async fn run(mut self, shutdown: &CancellationToken) {
        let mut waits = Waits {
            shutdown: pin!(shutdown.clone().cancelled_owned()),
            abort: pin!(self.conn.abort.clone().cancelled_owned()),
            sleep: pin!(tokio::time::sleep_until(Instant::now())),
            armed: None,
            shutdown_seen: false,
        };
        // On h2c the preface came with the HTTP/1.1 reader's bytes, and maybe whole frames
        // after it, for which the socket will not become readable again.
        let why = match self.recv() {
            Ok(()) => std::future::poll_fn(|cx| self.poll(cx, &mut waits)).await,
            Err(why) => why,
        };
        self.close(why).await;
    }

    fn poll(&mut self, cx: &mut Context<'_>, w: &mut Waits<'_>) -> Poll<Close> {
        if w.abort.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Close::Stalled);
        }
        if !w.shutdown_seen && w.shutdown.as_mut().poll(cx).is_ready() {
            w.shutdown_seen = true;
            self.drain();
        }
        loop {
            let more_input = match self.read(cx) {
                Ok(more) => more,
                Err(why) => return Poll::Ready(why),
            };
            let mut rounds = 0;
            loop {
                self.streams.poll_handlers(&mut self.core, cx);
                let more_output = self.streams.pump(&mut self.core, cx);
                match self.write(cx) {
                    Poll::Ready(Err(err)) => return Poll::Ready(Close::Io(err)),
                    Poll::Ready(Ok(())) if more_output => {}
                    Poll::Ready(Ok(())) | Poll::Pending => break,
                }
                rounds += 1;
                if rounds == ROUNDS_PER_TURN {
                    // More to send: let the worker's other connections have a turn first.
                    cx.waker().wake_by_ref();
                    break;
                }
            }
            if more_input {
                cx.waker().wake_by_ref();
            }
            if self.draining
                && !self.streams.in_flight()
                && self.core.output().is_empty()
                && !self.unflushed
            {
                return Poll::Ready(Close::Done);
            }
            // The timers: one sleep, armed for the nearest deadline.
            let now = Instant::now();
            match self.timers(now) {
                Timer::Stalled => return Poll::Ready(Close::Stalled),
                Timer::CloseBy => return Poll::Ready(Close::Done),
                Timer::Idle => {
                    // Said goodbye: write the GOAWAY out in another round.
                    self.drain();
                    self.close_by = Some(now + self.conn.shared.server.header_timeout);
                    continue;
                }
                Timer::Shrink => {
                    self.shrink_idle();
                    continue;
                }
                Timer::None => return Poll::Pending,
                Timer::At(at) => {
                    // Re-armed only for an earlier deadline: the idle deadline moves with
                    // every request, and a sleep that fires early is just looked at again.
                    if w.armed.is_none_or(|armed| at < armed) {
                        w.sleep.as_mut().reset(at);
                        w.armed = Some(at);
                    }
                    if w.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    w.armed = None;
                }
            }
        }
    }

    /// Reads what the socket has and hands it to the core; true when there may be more (the
    /// turn's reads are used up).
    fn read(&mut self, cx: &mut Context<'_>) -> Result<bool, Close> {
        if self.read_closed || self.core.output().len() >= OUTPUT_LIMIT {
            return Ok(false);
        }
        for _ in 0..READS_PER_TURN {
            if self.input.capacity() == 0 {
                self.input = pool::take_read();
            } else {
                self.input.reserve(pool::READ_SIZE);
            }
            // A read future holds only its two references: a fresh one per poll loses nothing.
            let polled = pin!(self.transport.read_buf(&mut self.input)).poll(cx);
            let result = match polled {
                Poll::Pending => Ok(false),
                Poll::Ready(Ok(0)) => {
                    // Half-closed by the client: what is in flight is still answered.
                    self.read_closed = true;
                    self.draining = true;
                    Ok(false)
                }
                Poll::Ready(Ok(_)) => self.recv().map(|()| true),
                Poll::Ready(Err(err)) => Err(Close::Io(err)),
            };
            if self.input.is_empty() {
                pool::put_read(std::mem::take(&mut self.input));
            }
            if !result? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Parses the complete frames read and acts on what they mean; the read buffer goes
    /// back to the pool once they are all parsed.
    fn recv(&mut self) -> Result<(), Close> {
        let parsed = self.core.recv(&mut self.input, &mut self.events);
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            match event {
                Event::Request {
                    id,
                    head,
                    end_stream,
                } => {
                    self.streams.open(id, Ok(head), end_stream);
                    self.shrunk = false;
                }
                Event::HeadTooLarge { id, end_stream } => {
                    self.streams
                        .open(id, Err(ParseError::HeadTooLarge), end_stream);
                    self.shrunk = false;
                }
                Event::Data {
                    id,
                    data,
                    end_stream,
                } => self.streams.data(&mut self.core, id, data, end_stream),
                Event::End { id } => self.streams.data(&mut self.core, id, Bytes::new(), true),
                Event::Reset { id, .. } => self.streams.reset(&mut self.core, id),
                Event::GoAway { .. } => self.draining = true,
            }
        }
        self.events = events;
        if self.input.is_empty() {
            pool::put_read(std::mem::take(&mut self.input));
        }
        parsed.map_err(Close::Protocol)
    }

    /// Writes the core's output and flushes it; ready when all of it is out.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Under rustls a write becomes TLS records: this much at once makes full ones.
        let most = match self.transport {
            Transport::Tls(_) => HIGH_WATER,
            Transport::Plain(_) | Transport::Ktls(_) => usize::MAX,
        };
        loop {
            let output = self.core.output();
            if output.is_empty() {
                break;
            }
            let len = output.len().min(most);
            match Pin::new(&mut self.transport).poll_write(cx, &output[..len]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.core.written(n);
                    self.unflushed = true;
                    self.write_waiting = None;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    self.write_waiting.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
            }
        }
        if self.unflushed {
            match Pin::new(&mut self.transport).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    self.write_waiting.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
            }
        }
        self.write_waiting = None;
        Poll::Ready(Ok(()))
    }

    /// Sends GOAWAY (once): the streams in flight finish, no new one opens.
    fn drain(&mut self) {
        if !self.said_goodbye {
            self.core.go_away();
            self.said_goodbye = true;
        }
        self.draining = true;
    }

    /// A connection without streams for `IDLE_SHRINK` gives back the memory whose size
    /// followed its busiest moment: the stream table, the event list, the core's output and
    /// header-block buffers.
    fn shrink_idle(&mut self) {
        self.streams.shrink();
        self.events = Vec::new();
        self.core.shrink_idle();
        self.shrunk = true;
    }

    /// Which deadline has passed, or the nearest to come.
    fn timers(&self, now: Instant) -> Timer {
        let server = &self.conn.shared.server;
        let stall = [self.streams.blocked_since(), self.write_waiting]
            .into_iter()
            .flatten()
            .min()
            .map(|since| since + server.send_timeout);
        let idle = (!self.draining && !self.streams.in_flight()).then(|| {
            let timeout = if self.streams.served {
                server.keepalive_timeout
            } else {
                server.header_timeout
            };
            self.streams.last_active + timeout
        });
        if stall.is_some_and(|at| at <= now) {
            return Timer::Stalled;
        }
        if self.close_by.is_some_and(|at| at <= now) {
            return Timer::CloseBy;
        }
        if idle.is_some_and(|at| at <= now) {
            return Timer::Idle;
        }
        let shrink = (!self.shrunk && self.streams.is_empty())
            .then(|| self.streams.last_active + IDLE_SHRINK);
        if shrink.is_some_and(|at| at <= now) {
            return Timer::Shrink;
        }
        [stall, self.close_by, idle, shrink]
            .into_iter()
            .flatten()
            .min()
            .map_or(Timer::None, Timer::At)
    }

    /// Ends the connection: what is queued goes out when the close is orderly, then TLS
    /// close_notify and FIN. The streams still open are dropped, each response recorded as
    /// it stands.
    async fn close(mut self, why: Close) {
        let peer = self.conn.peer;
        let orderly = match why {
            Close::Done => true,
            Close::Protocol(err) => {
                tracing::debug!(%peer, error = %err, "http/2 connection error");
                true
            }
            Close::Stalled => {
                let timeout = self.conn.shared.server.send_timeout;
                tracing::debug!(%peer, ?timeout, "http/2 client took no data; connection closed");
                false
            }
            Close::Io(err) => {
                tracing::debug!(%peer, error = %err, "http/2 connection ended");
                false
            }
        };
        self.streams.clear();
        if orderly {
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                std::future::poll_fn(|cx| self.write(cx)).await?;
                self.transport.shutdown().await
            })
            .await;
        }
    }
}

/// What the connection's timers say.
enum Timer {
    Stalled,
    CloseBy,
    Idle,
    /// No stream for `IDLE_SHRINK`: free the buffers.
    Shrink,
    /// The nearest deadline.
    At(Instant),
    None,
}
