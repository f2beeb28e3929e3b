//! What ferry writes: the one output buffer of a connection (appended to in place, its
//! capacity dropped when it drains past `RELEASE_ABOVE` so an idle connection holds little),
//! response HEADERS (and interim 1xx ones) encoded straight into it, DATA frames (a file
//! pread straight into the frame by `send_data_with`), resets, GOAWAY and the
//! WINDOW_UPDATEs that reopen the client's receive windows as the driver consumes request
//! bodies.

use super::conn::Connection;
use super::frame::{self, FrameHeader, code, flag, kind};
use super::stream::Closed;

/// An empty output buffer larger than this is freed rather than kept.
const RELEASE_ABOVE: usize = 64 * 1024;
/// Written bytes at the front of the output past which the rest is moved down.
const COMPACT_ABOVE: usize = 32 * 1024;

impl Connection {
    /// Bytes waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_head..]
    }

    /// Drops the first `n` bytes of `output()`.
    pub fn written(&mut self, n: usize) {
        self.out_head = (self.out_head + n).min(self.out.len());
        if self.out_head == self.out.len() {
            self.out_head = 0;
            self.control_backlog = 0;
            if self.out.capacity() > RELEASE_ABOVE {
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
        } else if self.out_head > COMPACT_ABOVE && self.out_head * 2 > self.out.len() {
            self.out.drain(..self.out_head);
            self.out_head = 0;
        }
    }

    /// Frees the buffers an idle connection does not need (the output when it is empty, a
    /// header block's spare room): for the driver to call when no stream is active, so a
    /// quiet connection holds little memory.
    pub fn shrink_idle(&mut self) {
        if self.output().is_empty() {
            self.out = Vec::new();
            self.out_head = 0;
        }
        if self.continuation.is_none() {
            self.block = Vec::new();
        }
    }

    /// Response HEADERS (split into CONTINUATION past the peer's max frame size). `fields`:
    /// lowercase names, no connection-specific ones (the driver filters). Nothing is sent
    /// for a stream that is closed, reset, or already answered.
    pub fn send_headers<'a>(
        &mut self,
        id: u32,
        status: u16,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        end_stream: bool,
    ) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        if s.send_closed || s.headers_sent {
            return;
        }
        s.headers_sent = true;
        let end_flag = if end_stream { flag::END_STREAM } else { 0 };
        self.encode_headers(id, status, fields, end_flag);
        if end_stream {
            self.close_local(id);
        }
    }

    /// An interim response (1xx, e.g. 100 Continue) on stream `id`: HEADERS without
    /// END_STREAM, which `send_headers` follows with the final response (RFC 9113 §8.1).
    /// Nothing is sent for a stream that is closed, reset, or already answered.
    pub fn send_interim(&mut self, id: u32, status: u16) {
        debug_assert!((100..200).contains(&status), "not an interim status");
        let Some(s) = self.streams.get(id) else {
            return;
        };
        if s.send_closed || s.headers_sent {
            return;
        }
        self.encode_headers(id, status, std::iter::empty(), 0);
    }

    /// Encodes a response head into the output as HEADERS (+ CONTINUATION).
    fn encode_headers<'a>(
        &mut self,
        id: u32,
        status: u16,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        end_flag: u8,
    ) {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; frame::HEADER_LEN]);
        self.encoder.encode_status(status, &mut self.out);
        for (name, value) in fields {
            self.encoder.encode(name, value, &mut self.out);
        }
        self.frame_block(start, id, end_flag);
    }

    /// Writes the HEADERS frame header at `start` for the block after it, moving the block's
    /// tail into CONTINUATION frames when it exceeds the peer's max frame size.
    fn frame_block(&mut self, start: usize, id: u32, end_flag: u8) {
        let body = start + frame::HEADER_LEN;
        let block_len = self.out.len() - body;
        let max = self.peer_max_frame as usize;
        let extra = block_len.saturating_sub(1) / max; // CONTINUATION frames needed
        self.out
            .resize(self.out.len() + extra * frame::HEADER_LEN, 0);
        // From the last piece back, each moves right by 9 per frame header before it.
        for i in (1..=extra).rev() {
            let from = body + i * max;
            let len = (block_len - i * max).min(max);
            let to = from + i * frame::HEADER_LEN;
            self.out.copy_within(from..from + len, to);
            let flags = if i == extra { flag::END_HEADERS } else { 0 };
            self.put_header(to - frame::HEADER_LEN, len, kind::CONTINUATION, flags, id);
        }
        let first_flags = end_flag | if extra == 0 { flag::END_HEADERS } else { 0 };
        let first_len = block_len.min(max);
        self.put_header(start, first_len, kind::HEADERS, first_flags, id);
    }

    fn put_header(&mut self, at: usize, len: usize, kind: u8, flags: u8, stream: u32) {
        let h = FrameHeader {
            len: len as u32,
            kind,
            flags,
            stream,
        };
        self.out[at..at + frame::HEADER_LEN].copy_from_slice(&h.to_bytes());
    }

    /// Body bytes stream `id` may send now: the smaller of its send window and the
    /// connection's, 0 for a closed or reset stream.
    pub fn send_capacity(&self, id: u32) -> usize {
        match self.streams.get(id) {
            Some(s) if !s.send_closed => s.send_window.min(self.conn_send_window).max(0) as usize,
            _ => 0,
        }
    }

    /// Appends DATA frames (each at most the peer's max frame size) carrying `data`
    /// (`data.len() <= send_capacity(id)`); END_STREAM on the last when `end_stream`.
    pub fn send_data(&mut self, id: u32, data: &[u8], end_stream: bool) {
        if !self.can_send(id) {
            return;
        }
        debug_assert!(
            data.len() <= self.send_capacity(id),
            "send_data past the window"
        );
        let max = self.peer_max_frame as usize;
        let mut chunks = data.chunks(max).peekable();
        if data.is_empty() && end_stream {
            frame::encode_frame(&mut self.out, kind::DATA, flag::END_STREAM, id, &[]);
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let flags = if last && end_stream {
                flag::END_STREAM
            } else {
                0
            };
            frame::encode_frame(&mut self.out, kind::DATA, flags, id, chunk);
        }
        self.sent(id, data.len(), end_stream);
    }

    /// Like `send_data`, but one DATA frame whose payload `fill` writes in place into the
    /// output buffer: it is given a slice of `max` bytes at most (fewer when the peer's max
    /// frame size is smaller; `max <= send_capacity(id)`) and returns how many it wrote.
    /// END_STREAM when `end_stream` and fill wrote all of `max`. Returns what fill returned;
    /// an error leaves the output as it was. `fill` is not called for a closed stream.
    pub fn send_data_with(
        &mut self,
        id: u32,
        max: usize,
        end_stream: bool,
        fill: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        if !self.can_send(id) {
            return Ok(0);
        }
        debug_assert!(
            max <= self.send_capacity(id),
            "send_data_with past the window"
        );
        let room = max.min(self.peer_max_frame as usize);
        let start = self.out.len();
        let body = start + frame::HEADER_LEN;
        self.out.resize(body + room, 0);
        let n = match fill(&mut self.out[body..]) {
            Ok(n) => n.min(room),
            Err(e) => {
                self.out.truncate(start);
                return Err(e);
            }
        };
        let end = end_stream && n == max;
        if n == 0 && !end {
            self.out.truncate(start);
            return Ok(0);
        }
        self.out.truncate(body + n);
        let flags = if end { flag::END_STREAM } else { 0 };
        self.put_header(start, n, kind::DATA, flags, id);
        self.sent(id, n, end);
        Ok(n)
    }

    /// Ends a stream's response with an empty DATA frame with END_STREAM.
    pub fn end_stream(&mut self, id: u32) {
        self.send_data(id, &[], true);
    }

    fn can_send(&self, id: u32) -> bool {
        self.streams.get(id).is_some_and(|s| !s.send_closed)
    }

    /// `n` body bytes went out on `id`.
    fn sent(&mut self, id: u32, n: usize, end_stream: bool) {
        self.conn_send_window -= n as i64;
        if let Some(s) = self.streams.get_mut(id) {
            s.send_window -= n as i64;
        }
        if end_stream {
            self.close_local(id);
        }
    }

    /// ferry's side of stream `id` ended.
    fn close_local(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(id) {
            s.send_closed = true;
        }
        self.reset_debt = self.reset_debt.saturating_sub(1);
        self.close_if_done(id);
    }

    /// Forgets stream `id` if it is closed both ways.
    pub(super) fn close_if_done(&mut self, id: u32) {
        if self
            .streams
            .get(id)
            .is_some_and(|s| s.send_closed && s.recv_closed)
            && let Some(s) = self.streams.remove(id, Closed::ByPeer)
        {
            self.credit_connection(s.held);
        }
    }

    /// Resets a stream (RST_STREAM); later frames for it are ignored as RFC 9113 asks.
    pub fn reset(&mut self, id: u32, code: u32) {
        if let Some(s) = self.streams.remove(id, Closed::ByUs) {
            self.credit_connection(s.held);
            frame::encode_rst_stream(&mut self.out, id, code);
        }
    }

    /// The driver has consumed `n` request-body bytes of stream `id`: reopen the windows
    /// (WINDOW_UPDATE, batched: once half a window is used).
    pub fn release(&mut self, id: u32, n: usize) {
        let Some(s) = self.streams.get_mut(id) else {
            return; // closed: what it held was given back then
        };
        let n = (n as u64).min(u64::from(s.held)) as u32;
        s.held -= n;
        self.credit_connection(n);
        self.release_stream_window(id, n);
    }

    /// Gives `n` bytes back to the connection's receive window.
    pub(super) fn credit_connection(&mut self, n: u32) {
        self.conn_recv_unacked += n;
        let window = self.ours.connection_window.max(frame::DEFAULT_WINDOW);
        if self.conn_recv_unacked >= window / 2 {
            frame::encode_window_update(&mut self.out, 0, self.conn_recv_unacked);
            self.conn_recv_window += i64::from(self.conn_recv_unacked);
            self.conn_recv_unacked = 0;
        }
    }

    /// Gives `n` bytes back to stream `id`'s receive window (while its body may still come).
    pub(super) fn release_stream_window(&mut self, id: u32, n: u32) {
        let half = self.ours.initial_window_size / 2;
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        if s.recv_closed {
            return;
        }
        s.recv_unacked += n;
        if s.recv_unacked > 0 && s.recv_unacked >= half {
            frame::encode_window_update(&mut self.out, id, s.recv_unacked);
            s.recv_window += i64::from(s.recv_unacked);
            s.recv_unacked = 0;
        }
    }

    /// Graceful shutdown: GOAWAY(NO_ERROR, last stream id seen); new streams refused.
    pub fn go_away(&mut self) {
        if self.going_away.is_none() {
            self.going_away = Some(self.last_id);
            frame::encode_goaway(&mut self.out, self.last_id, code::NO_ERROR);
        }
    }

    /// Whether send windows grew since the last call (WINDOW_UPDATE or a SETTINGS change):
    /// streams blocked on flow control may send again.
    pub fn take_window_opened(&mut self) -> bool {
        std::mem::take(&mut self.window_opened)
    }

    /// Streams not yet closed in both directions.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }
}
