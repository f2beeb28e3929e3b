//! The HTTP/2 server connection as a state machine: bytes in (`recv`), events and output
//! frames out. This file holds the connection's state, the receive loop and the
//! connection-level frames (SETTINGS, PING, GOAWAY, WINDOW_UPDATE, RST_STREAM, PRIORITY);
//! `recv_stream` handles the frames that carry a request (HEADERS, CONTINUATION, DATA) and
//! `send` what ferry writes (responses, flow control, resets).
//!
//! Limits against abusive clients live here too: rapid reset (CVE-2023-44487), floods of
//! frames whose answers pile up unwritten, of empty frames, and of CONTINUATION.

use bytes::{Buf, BytesMut};

use super::frame::{self, FrameHeader, code, flag, kind, setting};
use super::head::Head;
use super::hpack::{Decoder, Encoder};
use super::settings::Settings;
use super::stream::{Closed, Streams};

/// What the client's frames meant, for the driver.
#[derive(Debug)]
pub enum Event {
    /// A new stream's request head (HEADERS + any CONTINUATION, complete).
    Request {
        id: u32,
        head: Head,
        end_stream: bool,
    },
    /// A new stream whose request head decoded past `max_header_list_size` (its fields
    /// dropped): answer it, 431 (RFC 9113 §10.5.1). Any body that follows comes as `Data`.
    HeadTooLarge { id: u32, end_stream: bool },
    /// Request body bytes. They count against ferry's receive windows until the driver calls
    /// `release(id, n)`.
    Data {
        id: u32,
        data: bytes::Bytes,
        end_stream: bool,
    },
    /// The request body ended with trailers (they are dropped).
    End { id: u32 },
    /// The client reset the stream, or the core did (a stream error): drop its handler.
    Reset { id: u32, code: u32 },
    /// The client sent GOAWAY: finish streams up to `last_id`, open none.
    GoAway { last_id: u32, code: u32 },
}

/// A connection error: GOAWAY with `code` has been queued in the output; write the output,
/// then close.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[error("http/2 connection error {code}: {reason}")]
pub struct ConnError {
    pub code: u32,
    pub reason: &'static str,
}

pub(super) fn fail(code: u32, reason: &'static str) -> ConnError {
    ConnError { code, reason }
}

/// Answers (ACKs, resets) queued while the output has not drained, past which the client is
/// asking faster than it reads: ENHANCE_YOUR_CALM.
const CONTROL_BACKLOG: u32 = 1024;
/// Frames that carry nothing (empty DATA without END_STREAM, empty CONTINUATION) allowed
/// between two requests.
const EMPTY_FRAMES: u32 = 256;
/// Streams the client may reset before their response ends, beyond those that ended, ×
/// max_concurrent_streams (and at least `MIN_RESET_DEBT`).
const RESET_DEBT_PER_STREAM: u32 = 2;
const MIN_RESET_DEBT: u32 = 100;

/// A header block split across HEADERS and CONTINUATION, being collected.
#[derive(Clone, Copy, Debug)]
pub(super) struct Partial {
    pub(super) id: u32,
    pub(super) end_stream: bool,
    pub(super) self_dependent: bool,
}

/// One HTTP/2 server connection (see the module doc of `http2`).
pub struct Connection {
    pub(super) ours: Settings,
    pub(super) peer_max_frame: u32,
    pub(super) peer_initial_window: i64,
    pub(super) decoder: Decoder,
    pub(super) encoder: Encoder,
    /// The output; `out[out_head..]` is still to be written.
    pub(super) out: Vec<u8>,
    pub(super) out_head: usize,
    pub(super) streams: Streams,
    preface_done: bool,
    settings_seen: bool,
    pub(super) settings_acked: bool,
    /// The highest stream id the client opened.
    pub(super) last_id: u32,
    pub(super) continuation: Option<Partial>,
    /// A header block collected across CONTINUATION frames (empty otherwise).
    pub(super) block: Vec<u8>,
    pub(super) conn_send_window: i64,
    pub(super) conn_recv_window: i64,
    pub(super) conn_recv_unacked: u32,
    /// ferry sent GOAWAY with this last stream id.
    pub(super) going_away: Option<u32>,
    failed: Option<ConnError>,
    pub(super) window_opened: bool,
    pub(super) reset_debt: u32,
    pub(super) control_backlog: u32,
    pub(super) empty_frames: u32,
    /// Buffer sizes for the next request head (bytes, regular fields).
    pub(super) head_hint: (usize, usize),
}

impl Connection {
    /// Queues ferry's SETTINGS (and the connection WINDOW_UPDATE) as the first output.
    /// Values outside what RFC 9113 allows are clamped into range.
    pub fn new(mut settings: Settings) -> Connection {
        settings.max_frame_size = settings
            .max_frame_size
            .clamp(frame::MIN_MAX_FRAME_SIZE, frame::MAX_MAX_FRAME_SIZE);
        settings.initial_window_size = settings.initial_window_size.min(frame::MAX_WINDOW);
        let mut out = Vec::with_capacity(64);
        frame::encode_settings(
            &mut out,
            &[
                (setting::ENABLE_PUSH, 0),
                (
                    setting::MAX_CONCURRENT_STREAMS,
                    settings.max_concurrent_streams,
                ),
                (setting::INITIAL_WINDOW_SIZE, settings.initial_window_size),
                (setting::MAX_FRAME_SIZE, settings.max_frame_size),
                (setting::MAX_HEADER_LIST_SIZE, settings.max_header_list_size),
                (setting::HEADER_TABLE_SIZE, settings.header_table_size),
            ],
        );
        let default = i64::from(frame::DEFAULT_WINDOW);
        let conn_window = i64::from(settings.connection_window.min(frame::MAX_WINDOW));
        if conn_window > default {
            frame::encode_window_update(&mut out, 0, (conn_window - default) as u32);
        }
        Connection {
            ours: settings,
            peer_max_frame: frame::MIN_MAX_FRAME_SIZE,
            peer_initial_window: default,
            decoder: Decoder::new(settings.header_table_size as usize),
            encoder: Encoder::new(),
            out,
            out_head: 0,
            streams: Streams::default(),
            preface_done: false,
            settings_seen: false,
            settings_acked: false,
            last_id: 0,
            continuation: None,
            block: Vec::new(),
            conn_send_window: default,
            conn_recv_window: conn_window.max(default),
            conn_recv_unacked: 0,
            going_away: None,
            failed: None,
            window_opened: false,
            reset_debt: 0,
            control_backlog: 0,
            empty_frames: 0,
            head_hint: (256, 16),
        }
    }

    /// Parses the complete frames at the front of `input` (the client preface first),
    /// removing them from it, appending what they mean to `events` and queueing what they
    /// call for (SETTINGS ACK, PING ACK, RST_STREAM, WINDOW_UPDATE for padding and closed
    /// streams). A partial frame stays in `input`. After an error every call returns it
    /// again.
    pub fn recv(&mut self, input: &mut BytesMut, events: &mut Vec<Event>) -> Result<(), ConnError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.recv_frames(input, events);
        if let Err(e) = result {
            // The connection is over: its streams are gone (so every send call is a no-op)
            // and GOAWAY is the last frame queued.
            self.failed = Some(e);
            self.streams = Streams::default();
            self.going_away = Some(self.last_id);
            frame::encode_goaway(&mut self.out, self.last_id, e.code);
        }
        result
    }

    fn recv_frames(
        &mut self,
        input: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if !self.preface_done {
            let n = input.len().min(frame::PREFACE.len());
            if input[..n] != frame::PREFACE[..n] {
                return Err(fail(code::PROTOCOL_ERROR, "bad connection preface"));
            }
            if n < frame::PREFACE.len() {
                return Ok(());
            }
            input.advance(n);
            self.preface_done = true;
        }
        while let Some(h) = FrameHeader::parse(input) {
            if h.len > self.ours.max_frame_size {
                return Err(fail(
                    code::FRAME_SIZE_ERROR,
                    "frame larger than max_frame_size",
                ));
            }
            let total = frame::HEADER_LEN + h.len as usize;
            if input.len() < total {
                break;
            }
            self.check_order(h)?;
            if h.kind == kind::DATA {
                let mut payload = input.split_to(total);
                payload.advance(frame::HEADER_LEN);
                self.on_data(h, payload, events)?;
            } else {
                self.on_frame(h, &input[frame::HEADER_LEN..total], events)?;
                input.advance(total);
            }
        }
        Ok(())
    }

    /// SETTINGS first (§3.4); nothing but CONTINUATION on the same stream inside a header
    /// block (§6.10).
    fn check_order(&mut self, h: FrameHeader) -> Result<(), ConnError> {
        if !self.settings_seen {
            if h.kind != kind::SETTINGS || h.has(flag::ACK) {
                return Err(fail(code::PROTOCOL_ERROR, "first frame is not SETTINGS"));
            }
            self.settings_seen = true;
        }
        match self.continuation {
            Some(p) if h.kind != kind::CONTINUATION || h.stream != p.id => Err(fail(
                code::PROTOCOL_ERROR,
                "header block interrupted before END_HEADERS",
            )),
            None if h.kind == kind::CONTINUATION => {
                Err(fail(code::PROTOCOL_ERROR, "CONTINUATION without HEADERS"))
            }
            _ => Ok(()),
        }
    }

    fn on_frame(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        match h.kind {
            kind::HEADERS => self.on_headers(h, payload, events),
            kind::CONTINUATION => self.on_continuation(h, payload, events),
            kind::SETTINGS => self.on_settings(h, payload),
            kind::PING => self.on_ping(h, payload),
            kind::WINDOW_UPDATE => self.on_window_update(h, payload, events),
            kind::RST_STREAM => self.on_rst_stream(h, payload, events),
            kind::PRIORITY => self.on_priority(h, payload, events),
            kind::GOAWAY => self.on_goaway(h, payload, events),
            kind::PUSH_PROMISE => Err(fail(code::PROTOCOL_ERROR, "PUSH_PROMISE from a client")),
            // §5.5: unknown frame types are ignored.
            _ => Ok(()),
        }
    }

    /// Whether `id` is idle: never opened by the client (even ids never are).
    pub(super) fn is_idle(&self, id: u32) -> bool {
        id.is_multiple_of(2) || id > self.last_id
    }

    fn on_settings(&mut self, h: FrameHeader, payload: &[u8]) -> Result<(), ConnError> {
        if h.stream != 0 {
            return Err(fail(code::PROTOCOL_ERROR, "SETTINGS on a stream"));
        }
        if h.has(flag::ACK) {
            if !payload.is_empty() {
                return Err(fail(code::FRAME_SIZE_ERROR, "SETTINGS ACK with a payload"));
            }
            self.settings_acked = true;
            return Ok(());
        }
        if !payload.len().is_multiple_of(6) {
            return Err(fail(
                code::FRAME_SIZE_ERROR,
                "SETTINGS length not a multiple of 6",
            ));
        }
        let before = self.peer_initial_window;
        for p in payload.chunks_exact(6) {
            let value = frame::read_u32(&p[2..]);
            self.apply_setting(u16::from_be_bytes([p[0], p[1]]), value)?;
        }
        // The streams' windows move once per frame, however many times it repeats the
        // setting (the net change is the same).
        let delta = self.peer_initial_window - before;
        if delta != 0 {
            for s in self.streams.iter_mut() {
                s.send_window += delta;
                if s.send_window > i64::from(frame::MAX_WINDOW) {
                    return Err(fail(code::FLOW_CONTROL_ERROR, "stream window over 2^31-1"));
                }
            }
            self.window_opened |= delta > 0;
        }
        frame::encode_frame(&mut self.out, kind::SETTINGS, flag::ACK, 0, &[]);
        self.count_control()
    }

    fn apply_setting(&mut self, id: u16, value: u32) -> Result<(), ConnError> {
        match id {
            setting::HEADER_TABLE_SIZE => self.encoder.set_max_table_size(value as usize),
            setting::ENABLE_PUSH if value > 1 => {
                return Err(fail(code::PROTOCOL_ERROR, "ENABLE_PUSH not 0 or 1"));
            }
            setting::INITIAL_WINDOW_SIZE => {
                if value > frame::MAX_WINDOW {
                    return Err(fail(
                        code::FLOW_CONTROL_ERROR,
                        "INITIAL_WINDOW_SIZE over 2^31-1",
                    ));
                }
                self.peer_initial_window = i64::from(value); // applied by on_settings
            }
            setting::MAX_FRAME_SIZE => {
                if !(frame::MIN_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&value) {
                    return Err(fail(code::PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range"));
                }
                self.peer_max_frame = value;
            }
            // MAX_CONCURRENT_STREAMS limits pushes, which ferry never makes;
            // MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored (§6.5.2).
            _ => {}
        }
        Ok(())
    }

    fn on_ping(&mut self, h: FrameHeader, payload: &[u8]) -> Result<(), ConnError> {
        if payload.len() != 8 {
            return Err(fail(code::FRAME_SIZE_ERROR, "PING length not 8"));
        }
        if h.stream != 0 {
            return Err(fail(code::PROTOCOL_ERROR, "PING on a stream"));
        }
        if h.has(flag::ACK) {
            return Ok(());
        }
        frame::encode_frame(&mut self.out, kind::PING, flag::ACK, 0, payload);
        self.count_control()
    }

    fn on_goaway(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if payload.len() < 8 {
            return Err(fail(code::FRAME_SIZE_ERROR, "GOAWAY shorter than 8"));
        }
        if h.stream != 0 {
            return Err(fail(code::PROTOCOL_ERROR, "GOAWAY on a stream"));
        }
        events.push(Event::GoAway {
            last_id: frame::read_u31(payload),
            code: frame::read_u32(&payload[4..]),
        });
        Ok(())
    }

    fn on_window_update(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if payload.len() != 4 {
            return Err(fail(code::FRAME_SIZE_ERROR, "WINDOW_UPDATE length not 4"));
        }
        let increment = i64::from(frame::read_u31(payload));
        let max = i64::from(frame::MAX_WINDOW);
        if h.stream == 0 {
            if increment == 0 {
                return Err(fail(code::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
            }
            self.conn_send_window += increment;
            if self.conn_send_window > max {
                return Err(fail(
                    code::FLOW_CONTROL_ERROR,
                    "connection window over 2^31-1",
                ));
            }
            self.window_opened = true;
            return Ok(());
        }
        if self.is_idle(h.stream) {
            return Err(fail(
                code::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(s) = self.streams.get_mut(h.stream) else {
            return Ok(()); // closed: it was in flight (§6.9)
        };
        if increment == 0 {
            return self.stream_error(h.stream, code::PROTOCOL_ERROR, events);
        }
        s.send_window += increment;
        if s.send_window > max {
            return self.stream_error(h.stream, code::FLOW_CONTROL_ERROR, events);
        }
        self.window_opened = true;
        Ok(())
    }

    fn on_rst_stream(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if payload.len() != 4 {
            return Err(fail(code::FRAME_SIZE_ERROR, "RST_STREAM length not 4"));
        }
        if h.stream == 0 || self.is_idle(h.stream) {
            return Err(fail(code::PROTOCOL_ERROR, "RST_STREAM on an idle stream"));
        }
        let Some(s) = self.streams.remove(h.stream, Closed::ByPeer) else {
            return Ok(());
        };
        self.credit_connection(s.held);
        events.push(Event::Reset {
            id: h.stream,
            code: frame::read_u32(payload),
        });
        if !s.send_closed {
            // CVE-2023-44487: streams opened and cancelled before ferry could answer cost
            // ferry work and the client nothing. Streams that end pay the debt back.
            self.reset_debt += 1;
            let limit = (self
                .ours
                .max_concurrent_streams
                .saturating_mul(RESET_DEBT_PER_STREAM))
            .max(MIN_RESET_DEBT);
            if self.reset_debt > limit {
                return Err(fail(
                    code::ENHANCE_YOUR_CALM,
                    "too many streams reset early",
                ));
            }
        }
        Ok(())
    }

    fn on_priority(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if h.stream == 0 {
            return Err(fail(code::PROTOCOL_ERROR, "PRIORITY on stream 0"));
        }
        if payload.len() != 5 {
            return self.stream_error(h.stream, code::FRAME_SIZE_ERROR, events);
        }
        if frame::read_u31(payload) == h.stream {
            return self.stream_error(h.stream, code::PROTOCOL_ERROR, events);
        }
        Ok(()) // RFC 9113 §5.3.2: priority signals may be ignored, and are.
    }

    /// A stream error (§5.4.2): RST_STREAM queued, the stream forgotten (its driver told
    /// with `Event::Reset` if it had been given the request), late frames ignored.
    pub(super) fn stream_error(
        &mut self,
        id: u32,
        code: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if let Some(s) = self.streams.remove(id, Closed::ByUs) {
            self.credit_connection(s.held);
            events.push(Event::Reset { id, code });
        }
        frame::encode_rst_stream(&mut self.out, id, code);
        self.count_control()
    }

    /// One more answer queued because the client asked for it.
    pub(super) fn count_control(&mut self) -> Result<(), ConnError> {
        self.control_backlog += 1;
        if self.control_backlog > CONTROL_BACKLOG {
            return Err(fail(
                code::ENHANCE_YOUR_CALM,
                "control frames answered faster than the output drains",
            ));
        }
        Ok(())
    }

    /// One more frame that carried nothing.
    pub(super) fn count_empty(&mut self) -> Result<(), ConnError> {
        self.empty_frames += 1;
        if self.empty_frames > EMPTY_FRAMES {
            return Err(fail(code::ENHANCE_YOUR_CALM, "too many empty frames"));
        }
        Ok(())
    }
}
