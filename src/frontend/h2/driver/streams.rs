//! The driver's stream table (`Streams`): the events that open, feed and reset streams,
//! their handlers (kept in one set the driver polls) and their answers, and the round robin
//! that frames their response bodies into the core's output.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::{AbortHandle, Abortable};
use tokio::time::Instant;

use futures_util::stream::FuturesUnordered;

use crate::frontend::h2::handler::{Answer, Handler, handler};
use crate::frontend::h2::request::{BodyTx, body_channel};
use crate::frontend::h2::response::{self, Outgoing, Pumped};
use crate::frontend::h2::stream::ConnState;
use crate::http::ParseError;
use crate::http2::{Connection, Head};

/// RST_STREAM codes (RFC 9113 §7).
const NO_ERROR: u32 = 0x0;
const INTERNAL_ERROR: u32 = 0x2;
const CANCEL: u32 = 0x8;

/// Output bytes framed before they are written: streams stop adding frames past it. Under
/// rustls one write of it is four full records.
pub(super) const HIGH_WATER: usize = 64 * 1024;
/// Most request-body bytes read and dropped after answering without them; past it the
/// stream is reset.
const MAX_DISCARDED_BODY: u64 = 64 * 1024 * 1024;

/// The streams the driver knows of, with a handler, a response or a request body still in
/// flight, in the order they opened.
pub(super) struct Streams {
    list: Vec<Stream>,
    handlers: FuturesUnordered<Abortable<Handler>>,
    conn: Arc<ConnState>,
    /// Where the next round robin over `list` starts.
    turn: usize,
    /// When a stream last started or ended (at first: when the connection started), and
    /// whether any has.
    pub(super) last_active: Instant,
    pub(super) served: bool,
}

/// One stream.
struct Stream {
    id: u32,
    /// Its handler, while it runs.
    handler: Option<AbortHandle>,
    /// The request body on its way to the handler, while the handler may read it.
    body: Option<BodyTx>,
    /// The client ended the request body (or sent none).
    body_done: bool,
    /// Body bytes dropped since the handler ended without them.
    discarded: u64,
    /// The response body still to frame.
    out: Option<Outgoing>,
    /// Since when it has had bytes ready and no flow-control room.
    blocked: Option<Instant>,
}

impl Stream {
    /// Whether its request or its response is still being worked on.
    fn in_flight(&self) -> bool {
        self.handler.is_some() || self.out.is_some()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(handler) = self.handler.take() {
            handler.abort();
        }
    }
}

impl Streams {
    pub(super) fn new(conn: Arc<ConnState>) -> Streams {
        Streams {
            list: Vec::new(),
            handlers: FuturesUnordered::new(),
            conn,
            turn: 0,
            last_active: Instant::now(),
            served: false,
        }
    }

    /// Whether a stream's request or response is still being worked on.
    pub(super) fn in_flight(&self) -> bool {
        self.list.iter().any(Stream::in_flight)
    }

    /// Since when a stream has had bytes ready and no flow-control room, the longest.
    pub(super) fn blocked_since(&self) -> Option<Instant> {
        self.list.iter().filter_map(|s| s.blocked).min()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Gives back the table's memory (its size followed the busiest moment).
    pub(super) fn shrink(&mut self) {
        if self.list.is_empty() {
            self.list = Vec::new();
        }
    }

    /// Drops every stream (the connection is closing): each response is recorded as it
    /// stands.
    pub(super) fn clear(&mut self) {
        self.list.clear();
        self.handlers.clear();
    }

    /// A stream the client reset, or the core did: forgotten.
    pub(super) fn reset(&mut self, core: &mut Connection, id: u32) {
        if let Some(i) = self.index(id) {
            self.remove(core, i);
        }
    }

    /// A new stream: its handler starts. A head the core refused (`Err`) is answered with
    /// its error status; its body, if any, is dropped as it comes.
    pub(super) fn open(&mut self, id: u32, head: Result<Head, ParseError>, end_stream: bool) {
        let (tx, rx) = if end_stream || head.is_err() {
            (None, None)
        } else {
            let (tx, rx) = body_channel();
            (Some(tx), Some(rx))
        };
        let (abort, registration) = AbortHandle::new_pair();
        let handler = handler(Arc::clone(&self.conn), id, head, end_stream, rx);
        self.handlers.push(Abortable::new(handler, registration));
        self.list.push(Stream {
            id,
            handler: Some(abort),
            body: tx,
            body_done: end_stream,
            discarded: 0,
            out: None,
            blocked: None,
        });
        self.last_active = Instant::now();
        self.served = true;
    }

    /// Request body bytes for stream `id`: to its handler while it runs, else dropped (and
    /// their window reopened at once) up to `MAX_DISCARDED_BODY`, past which the stream is
    /// reset.
    pub(super) fn data(&mut self, core: &mut Connection, id: u32, data: Bytes, end: bool) {
        let n = data.len();
        let Some(i) = self.index(id) else {
            core.release(id, n);
            return;
        };
        let stream = &mut self.list[i];
        stream.body_done |= end;
        if let Some(body) = &mut stream.body {
            body.push(data, end);
            return;
        }
        core.release(id, n);
        stream.discarded += n as u64;
        if stream.discarded > MAX_DISCARDED_BODY {
            core.reset(id, NO_ERROR);
            self.remove(core, i);
        } else if stream.body_done && !stream.in_flight() {
            self.remove(core, i);
        }
    }

    fn index(&self, id: u32) -> Option<usize> {
        self.list.iter().position(|s| s.id == id)
    }

    /// Forgets a stream: its handler is dropped, its response recorded as it stands, and
    /// the body bytes its handler never took count back in the connection's window.
    fn remove(&mut self, core: &mut Connection, i: usize) {
        let mut stream = self.list.remove(i);
        if let Some(body) = stream.body.take() {
            core.release(stream.id, body.close());
        }
        if stream.in_flight() {
            self.last_active = Instant::now();
        }
    }

    /// Polls the handlers; a finished one sends its response head.
    pub(super) fn poll_handlers(&mut self, core: &mut Connection, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(done)) = self.handlers.poll_next_unpin(cx) {
            // Aborted: its stream was reset and is gone.
            if let Ok((id, answer)) = done {
                self.answered(core, id, answer);
            }
        }
        // What the handlers read of their request bodies reopens the client's windows; a
        // handler that wants a body held back for `Expect: 100-continue` gets its 100.
        for stream in &mut self.list {
            if let Some(body) = &mut stream.body {
                if body.take_continue() {
                    core.send_interim(stream.id, 100);
                }
                let n = body.take_consumed();
                if n > 0 {
                    core.release(stream.id, n);
                }
            }
        }
    }

    fn answered(&mut self, core: &mut Connection, id: u32, answer: Answer) {
        let Some(i) = self.index(id) else {
            return;
        };
        let stream = &mut self.list[i];
        stream.handler = None;
        // Whatever the handler left of the request body is not wanted: release it now and
        // discard the rest as it comes.
        if let Some(body) = stream.body.take() {
            core.release(id, body.close());
        }
        match answer {
            Answer::Gone => {
                core.reset(id, CANCEL);
                self.remove(core, i);
            }
            Answer::Respond {
                req,
                reply,
                started,
            } => {
                stream.out = response::start(core, id, &self.conn, req, reply, started);
                if stream.out.is_none() {
                    self.ended(core, i);
                }
            }
        }
    }

    /// Stream `i`'s response is complete: it is forgotten unless the client is still
    /// sending its request body.
    fn ended(&mut self, core: &mut Connection, i: usize) {
        self.last_active = Instant::now();
        if self.list[i].body_done {
            self.remove(core, i);
        }
    }

    /// Frames response bodies round robin, a frame per stream at a time, until flow control
    /// or the output's high-water mark stops them; true when it was the high-water mark.
    pub(super) fn pump(&mut self, core: &mut Connection, cx: &mut Context<'_>) -> bool {
        let mut full = false;
        let mut ended = false;
        let now = Instant::now();
        loop {
            let mut sent = false;
            let count = self.list.len();
            for k in 0..count {
                if core.output().len() >= HIGH_WATER {
                    full = true;
                    break;
                }
                let stream = &mut self.list[(self.turn + k) % count];
                let Some(out) = &mut stream.out else {
                    continue;
                };
                match out.pump(core, stream.id, cx) {
                    Pumped::Sent => {
                        stream.blocked = None;
                        sent = true;
                    }
                    Pumped::Blocked => {
                        stream.blocked.get_or_insert(now);
                    }
                    Pumped::Waiting => stream.blocked = None,
                    Pumped::Done => {
                        stream.out = None;
                        stream.blocked = None;
                        ended = true;
                    }
                    Pumped::Failed => {
                        core.reset(stream.id, INTERNAL_ERROR);
                        stream.out = None;
                        stream.blocked = None;
                        // Reset: nothing more of its request body will come.
                        stream.body_done = true;
                        ended = true;
                    }
                }
            }
            if full || !sent {
                break;
            }
        }
        self.turn = (self.turn + 1) % self.list.len().max(1);
        if ended {
            self.last_active = now;
            self.list.retain(|s| s.in_flight() || !s.body_done);
        }
        full
    }
}
