//! The driver's streams: the events that open, feed and reset them, their handlers'
//! answers, and the round robin that frames their response bodies.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::{AbortHandle, Abortable};
use tokio::time::Instant;

use super::super::request::{BodyTx, body_channel};
use super::super::response::{self, Outgoing, Pumped};
use super::super::{Answer, MAX_DISCARDED_BODY, handler};
use super::{CANCEL, Driver, HIGH_WATER, INTERNAL_ERROR, NO_ERROR};
use crate::http2::Head;

/// One stream the driver knows of.
pub(super) struct Stream {
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
    pub(super) blocked: Option<Instant>,
}

impl Stream {
    /// Whether its request or its response is still being worked on.
    pub(super) fn in_flight(&self) -> bool {
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

impl Driver {
    /// A new stream: its handler starts.
    pub(super) fn open(&mut self, id: u32, head: Head, end_stream: bool) {
        let (tx, rx) = if end_stream {
            (None, None)
        } else {
            let (tx, rx) = body_channel();
            (Some(tx), Some(rx))
        };
        let (abort, registration) = AbortHandle::new_pair();
        let handler = handler(Arc::clone(&self.conn), id, head, end_stream, rx);
        self.handlers.push(Abortable::new(handler, registration));
        self.streams.push(Stream {
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
        self.shrunk = false;
    }

    /// Request body bytes for stream `id`: to its handler while it runs, else dropped (and
    /// their window reopened at once) up to `MAX_DISCARDED_BODY`, past which the stream is
    /// reset.
    pub(super) fn data(&mut self, id: u32, data: Bytes, end: bool) {
        let n = data.len();
        let Some(i) = self.index(id) else {
            self.core.release(id, n);
            return;
        };
        let stream = &mut self.streams[i];
        stream.body_done |= end;
        if let Some(body) = &mut stream.body {
            body.push(data, end);
            return;
        }
        self.core.release(id, n);
        stream.discarded += n as u64;
        if stream.discarded > MAX_DISCARDED_BODY {
            self.core.reset(id, NO_ERROR);
            self.remove(i);
        } else if stream.body_done && !stream.in_flight() {
            self.remove(i);
        }
    }

    pub(super) fn index(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// Forgets a stream: its handler is dropped, its response recorded as it stands, and
    /// the body bytes its handler never took count back in the connection's window.
    pub(super) fn remove(&mut self, i: usize) {
        let mut stream = self.streams.remove(i);
        if let Some(body) = stream.body.take() {
            self.core.release(stream.id, body.close());
        }
        if stream.in_flight() {
            self.last_active = Instant::now();
        }
    }

    /// Polls the handlers; a finished one sends its response head.
    pub(super) fn poll_handlers(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(done)) = self.handlers.poll_next_unpin(cx) {
            // Aborted: its stream was reset and is gone.
            if let Ok((id, answer)) = done {
                self.answered(id, answer);
            }
        }
        // What the handlers read of their request bodies reopens the client's windows.
        for stream in &mut self.streams {
            if let Some(body) = &mut stream.body {
                let n = body.take_consumed();
                if n > 0 {
                    self.core.release(stream.id, n);
                }
            }
        }
    }

    fn answered(&mut self, id: u32, answer: Answer) {
        let Some(i) = self.index(id) else {
            return;
        };
        let stream = &mut self.streams[i];
        stream.handler = None;
        // Whatever the handler left of the request body is not wanted: release it now and
        // discard the rest as it comes.
        if let Some(body) = stream.body.take() {
            self.core.release(id, body.close());
        }
        match answer {
            Answer::Gone => {
                self.core.reset(id, CANCEL);
                self.remove(i);
            }
            Answer::Respond {
                req,
                reply,
                started,
            } => {
                stream.out = response::start(&mut self.core, id, &self.conn, req, reply, started);
                if stream.out.is_none() {
                    self.ended(i);
                }
            }
        }
    }

    /// Stream `i`'s response is complete: it is forgotten unless the client is still
    /// sending its request body.
    fn ended(&mut self, i: usize) {
        self.last_active = Instant::now();
        if self.streams[i].body_done {
            self.remove(i);
        }
    }

    /// Frames response bodies round robin, a frame per stream at a time, until flow control
    /// or the output's high-water mark stops them; true when it was the high-water mark.
    pub(super) fn pump(&mut self, cx: &mut Context<'_>) -> bool {
        let mut full = false;
        let mut ended = false;
        let now = Instant::now();
        loop {
            let mut sent = false;
            let count = self.streams.len();
            for k in 0..count {
                if self.core.output().len() >= HIGH_WATER {
                    full = true;
                    break;
                }
                let stream = &mut self.streams[(self.turn + k) % count];
                let Some(out) = &mut stream.out else {
                    continue;
                };
                match out.pump(&mut self.core, stream.id, cx) {
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
                        self.core.reset(stream.id, INTERNAL_ERROR);
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
        self.turn = (self.turn + 1) % self.streams.len().max(1);
        if ended {
            self.last_active = now;
            self.streams.retain(|s| s.in_flight() || !s.body_done);
        }
        full
    }
}
