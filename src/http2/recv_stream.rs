//! The frames that carry a request: HEADERS (+ CONTINUATION) open a stream or end its body
//! with trailers, DATA carries its body. Stream ids, the concurrency limit, the header
//! block's bound, padding, receive flow control and Content-Length (§8.1.1) are checked
//! here. Every header block is decoded, even one that is refused or ignored: the HPACK
//! dynamic table must stay in step with the client's. A request head over
//! `max_header_list_size` still opens its stream, as `Event::HeadTooLarge` without its
//! fields, for the driver to answer 431 (RFC 9113 §10.5.1).

use bytes::{Buf, BytesMut};

use super::ConnError;
use super::conn::{Connection, Event, Partial, fail};
use super::frame::{self, FrameHeader, code, flag};
use super::head::{HeadBuilder, TrailerCheck};
use super::hpack::HpackError;
use super::stream::{Closed, Stream};

/// Bytes a header block may take beyond `max_header_list_size` (HPACK can encode a field in
/// fewer bytes than it counts for, never in many more).
const BLOCK_SLACK: usize = 16 * 1024;
/// Bytes a header block may take at least, over the list limit or not: an over-large head
/// (a big cookie) this long is still read to its end and answered 431. Past both bounds
/// the client is flooding (CONTINUATION without end).
const MIN_BLOCK_BOUND: usize = 128 * 1024;

impl Connection {
    pub(super) fn on_headers(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if h.stream.is_multiple_of(2) {
            return Err(fail(code::PROTOCOL_ERROR, "HEADERS on an even stream id"));
        }
        let mut p = unpad(h, payload)?;
        let mut self_dependent = false;
        if h.has(flag::PRIORITY) {
            if p.len() < 5 {
                return Err(fail(
                    code::FRAME_SIZE_ERROR,
                    "HEADERS too short for its priority",
                ));
            }
            self_dependent = frame::read_u31(p) == h.stream;
            p = &p[5..];
        }
        let partial = Partial {
            id: h.stream,
            end_stream: h.has(flag::END_STREAM),
            self_dependent,
        };
        if h.has(flag::END_HEADERS) {
            return self.on_block(partial, p, events);
        }
        self.continuation = Some(partial);
        self.block.clear();
        self.extend_block(p)
    }

    pub(super) fn on_continuation(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        let Some(partial) = self.continuation else {
            return Err(fail(code::PROTOCOL_ERROR, "CONTINUATION without HEADERS"));
        };
        if payload.is_empty() && !h.has(flag::END_HEADERS) {
            self.count_empty()?;
        }
        self.extend_block(payload)?;
        if !h.has(flag::END_HEADERS) {
            return Ok(());
        }
        self.continuation = None;
        let block = std::mem::take(&mut self.block);
        let result = self.on_block(partial, &block, events);
        self.block = block;
        self.block.clear();
        if self.block.capacity() > 2 * BLOCK_SLACK {
            self.block = Vec::new();
        }
        result
    }

    fn extend_block(&mut self, fragment: &[u8]) -> Result<(), ConnError> {
        let bound = (self.ours.max_header_list_size as usize + BLOCK_SLACK).max(MIN_BLOCK_BOUND);
        if self.block.len() + fragment.len() > bound {
            return Err(fail(
                code::ENHANCE_YOUR_CALM,
                "header block too large (CONTINUATION flood)",
            ));
        }
        self.block.extend_from_slice(fragment);
        Ok(())
    }

    /// A complete header block on stream `p.id`.
    fn on_block(
        &mut self,
        p: Partial,
        block: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if self.streams.get(p.id).is_some() {
            return self.on_trailers(p, block, events);
        }
        let max_list = self.ours.max_header_list_size as usize;
        if p.id <= self.last_id {
            // A closed stream (§5.1): decoded for the table's sake, then judged.
            compression(self.decoder.decode(block, max_list, |_, _| {}))?;
            return match self.streams.closed_how(p.id) {
                Some(Closed::ByUs) => Ok(()),
                Some(Closed::ByPeer) => {
                    Err(fail(code::STREAM_CLOSED, "HEADERS on a closed stream"))
                }
                None => Err(fail(code::PROTOCOL_ERROR, "stream id not increasing")),
            };
        }
        self.last_id = p.id;
        // Sized like the previous head (requests on a connection look alike), so the head
        // usually costs its two allocations and no reallocation.
        let (bytes, fields) = self.head_hint;
        // Never more than the list limit: the builder keeps no field past it.
        let bytes = bytes.max(2 * block.len()).min(max_list);
        let mut head = HeadBuilder::with_capacity(bytes, fields);
        let too_large = compression(self.decoder.decode(block, max_list, |n, v| head.push(n, v)))?;
        if self.going_away.is_some_and(|last| p.id > last) {
            self.streams.note_closed(p.id, Closed::ByUs);
            return Ok(()); // §6.8: ignored after GOAWAY
        }
        if self.streams.len() >= self.ours.max_concurrent_streams as usize {
            return self.refuse(p.id, code::REFUSED_STREAM);
        }
        if p.self_dependent {
            return self.refuse(p.id, code::PROTOCOL_ERROR);
        }
        if too_large {
            // §10.5.1: answered (431) rather than reset. The fields were not kept, so the
            // Content-Length of a body that may follow is unknown: the body is dropped.
            // A refused head is no progress: the empty-frame count goes on.
            self.open_stream(p, None);
            events.push(Event::HeadTooLarge {
                id: p.id,
                end_stream: p.end_stream,
            });
            return Ok(());
        }
        let Ok(head) = head.finish() else {
            return self.refuse(p.id, code::PROTOCOL_ERROR);
        };
        if p.end_stream && head.content_length().is_some_and(|n| n > 0) {
            return self.refuse(p.id, code::PROTOCOL_ERROR); // §8.1.1
        }
        let (bytes, fields) = head.size();
        self.head_hint = (bytes + bytes / 8 + 16, fields + 2);
        self.open_stream(p, head.content_length());
        self.empty_frames = 0;
        events.push(Event::Request {
            id: p.id,
            head,
            end_stream: p.end_stream,
        });
        Ok(())
    }

    /// Stream `p.id` opens (half-closed remote when its HEADERS ended it).
    fn open_stream(&mut self, p: Partial, content_length: Option<u64>) {
        let recv_window = if self.settings_acked {
            i64::from(self.ours.initial_window_size)
        } else {
            // The client may use the default window until it has our SETTINGS.
            i64::from(self.ours.initial_window_size.max(frame::DEFAULT_WINDOW))
        };
        let mut stream = Stream::new(p.id, self.peer_initial_window, recv_window);
        stream.recv_closed = p.end_stream;
        stream.content_length = content_length;
        self.streams.insert(stream);
    }

    /// A stream refused before its request was given to the driver.
    fn refuse(&mut self, id: u32, code: u32) -> Result<(), ConnError> {
        self.streams.note_closed(id, Closed::ByUs);
        frame::encode_rst_stream(&mut self.out, id, code);
        self.count_control()
    }

    /// HEADERS on an open stream: trailers, which must end the stream.
    fn on_trailers(
        &mut self,
        p: Partial,
        block: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        let mut check = TrailerCheck::default();
        let max_list = self.ours.max_header_list_size as usize;
        let too_large = compression(
            self.decoder
                .decode(block, max_list, |n, v| check.push(n, v)),
        )?;
        let Some(s) = self.streams.get_mut(p.id) else {
            return Ok(());
        };
        if s.recv_closed {
            return self.stream_error(p.id, code::STREAM_CLOSED, events);
        }
        let length_ok = s.content_length.is_none_or(|n| n == s.received);
        if !p.end_stream || too_large || p.self_dependent || check.error.is_some() || !length_ok {
            return self.stream_error(p.id, code::PROTOCOL_ERROR, events);
        }
        s.recv_closed = true;
        events.push(Event::End { id: p.id });
        self.close_if_done(p.id);
        Ok(())
    }

    pub(super) fn on_data(
        &mut self,
        h: FrameHeader,
        mut payload: BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        let id = h.stream;
        if id == 0 || self.is_idle(id) {
            return Err(fail(code::PROTOCOL_ERROR, "DATA on an idle stream"));
        }
        let flow = i64::from(h.len);
        if flow > self.conn_recv_window {
            return Err(fail(
                code::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        self.conn_recv_window -= flow;
        let data_len = unpad(h, &payload)?.len();
        let padding = h.len - data_len as u32;
        let end_stream = h.has(flag::END_STREAM);
        let Some(s) = self.streams.get_mut(id) else {
            self.credit_connection(h.len);
            if self.streams.closed_how(id) == Some(Closed::ByUs) {
                return Ok(()); // in flight when ferry reset it
            }
            frame::encode_rst_stream(&mut self.out, id, code::STREAM_CLOSED);
            return self.count_control();
        };
        if s.recv_closed {
            self.credit_connection(h.len);
            return self.stream_error(id, code::STREAM_CLOSED, events);
        }
        if flow > s.recv_window {
            return Err(fail(
                code::FLOW_CONTROL_ERROR,
                "DATA beyond the stream window",
            ));
        }
        s.recv_window -= flow;
        s.received += data_len as u64;
        let length_ok = s
            .content_length
            .is_none_or(|n| s.received <= n && (!end_stream || s.received == n));
        if !length_ok {
            self.credit_connection(h.len);
            return self.stream_error(id, code::PROTOCOL_ERROR, events);
        }
        if data_len == 0 && !end_stream {
            self.credit_connection(padding);
            self.count_empty()?;
            return self.release_padding(id, padding);
        }
        s.held += data_len as u32;
        s.recv_closed = end_stream;
        if h.has(flag::PADDED) {
            payload.advance(1);
        }
        payload.truncate(data_len);
        events.push(Event::Data {
            id,
            data: payload.freeze(),
            end_stream,
        });
        if data_len > 0 {
            self.empty_frames = 0; // a body moves: empty frames before it were harmless
        }
        self.credit_connection(padding);
        self.release_padding(id, padding)?;
        if end_stream {
            self.close_if_done(id);
        }
        Ok(())
    }

    /// Padding counts against the windows but never reaches the driver: given back at once.
    fn release_padding(&mut self, id: u32, padding: u32) -> Result<(), ConnError> {
        if padding > 0 {
            self.release_stream_window(id, padding);
        }
        Ok(())
    }
}

/// A HEADERS or DATA payload without its padding (§6.1, §6.2), priority fields left in.
fn unpad(h: FrameHeader, payload: &[u8]) -> Result<&[u8], ConnError> {
    if !h.has(flag::PADDED) {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(fail(
            code::FRAME_SIZE_ERROR,
            "padded frame without a pad length",
        ));
    };
    let keep = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(fail(code::PROTOCOL_ERROR, "padding longer than the frame"))?;
    Ok(&rest[..keep])
}

/// A decoder result: `Ok(too_large)`, or the connection error every other HPACK error is.
fn compression(r: Result<(), HpackError>) -> Result<bool, ConnError> {
    match r {
        Ok(()) => Ok(false),
        Err(HpackError::ListTooLarge) => Ok(true),
        Err(_) => Err(fail(code::COMPRESSION_ERROR, "hpack decoding failed")),
    }
}
