//! Conversations with the connection: a client's frames built as bytes (`frame`, `get`,
//! `data`, ...) fed to `recv` by a `Peer`, and ferry's output parsed back into `Frame`s
//! (header blocks decoded), so each test reads as the exchange it checks.

mod abuse;
mod arbitrary;
mod control;
mod flow;
mod streams;

use bytes::BytesMut;

use super::frame::{FrameHeader, HEADER_LEN, PREFACE, flag, kind};
use super::hpack::Decoder;
use super::{ConnError, Connection, Event, Settings};

/// A frame as ferry sent it; `fields` holds the decoded block of a HEADERS frame (with its
/// CONTINUATION frames, which follow it in the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub id: u32,
    pub payload: Vec<u8>,
    pub fields: Vec<(String, String)>,
}

impl Frame {
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// The error code of RST_STREAM or GOAWAY.
    pub fn code(&self) -> u32 {
        let at = if self.kind == kind::GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }

    /// The first 4 payload bytes as a 31-bit number (window increment, GOAWAY last id).
    pub fn u31(&self) -> u32 {
        u32::from_be_bytes(self.payload[..4].try_into().unwrap()) & 0x7fff_ffff
    }
}

/// A client frame.
pub(super) fn frame(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = FrameHeader {
        len: payload.len() as u32,
        kind,
        flags,
        stream: id,
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(payload);
    out
}

fn put_int(out: &mut Vec<u8>, prefix_bits: u8, mut v: usize) {
    let max = (1 << prefix_bits) - 1;
    if v < max {
        out.push(v as u8);
        return;
    }
    out.push(max as u8);
    v -= max;
    while v >= 128 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A header block of literal fields without indexing, new names, no Huffman (RFC 7541
/// §6.2.2): the simplest HPACK, which any decoder takes.
pub(super) fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.push(0);
        put_int(&mut out, 7, n.len());
        out.extend_from_slice(n.as_bytes());
        put_int(&mut out, 7, v.len());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// A literal field with incremental indexing, new name, no Huffman (RFC 7541 §6.2.1): the
/// client's dynamic table gains it, so ferry's must too.
pub(super) fn indexed_literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x40];
    put_int(&mut out, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    put_int(&mut out, 7, value.len());
    out.extend_from_slice(value.as_bytes());
    out
}

pub(super) const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "example.com"),
    (":path", "/"),
];

/// HEADERS (END_HEADERS) with these fields.
pub(super) fn headers(id: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let es = if end_stream { flag::END_STREAM } else { 0 };
    frame(kind::HEADERS, flag::END_HEADERS | es, id, &block(fields))
}

/// A GET request with END_STREAM.
pub(super) fn get(id: u32) -> Vec<u8> {
    headers(id, &GET, true)
}

/// A POST request whose body follows, with `extra` fields.
pub(super) fn post(id: u32, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut f = vec![
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/up"),
    ];
    f.extend_from_slice(extra);
    headers(id, &f, false)
}

pub(super) fn data(id: u32, body: &[u8], end_stream: bool) -> Vec<u8> {
    let es = if end_stream { flag::END_STREAM } else { 0 };
    frame(kind::DATA, es, id, body)
}

pub(super) fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(kind::SETTINGS, 0, 0, &p)
}

pub(super) fn window_update(id: u32, increment: u32) -> Vec<u8> {
    frame(kind::WINDOW_UPDATE, 0, id, &increment.to_be_bytes())
}

pub(super) fn rst(id: u32, code: u32) -> Vec<u8> {
    frame(kind::RST_STREAM, 0, id, &code.to_be_bytes())
}

pub(super) fn ping(payload: [u8; 8]) -> Vec<u8> {
    frame(kind::PING, 0, 0, &payload)
}

/// The client end of a connection.
pub(super) struct Peer {
    pub conn: Connection,
    pub input: BytesMut,
    pub events: Vec<Event>,
    decoder: Decoder,
    /// A header block being joined across CONTINUATION, and the index of its HEADERS.
    pending: Option<(Vec<u8>, usize)>,
}

impl Peer {
    /// A connection past the preface and both SETTINGS exchanges, its output drained.
    pub fn new() -> Peer {
        Peer::with(Settings::default())
    }

    pub fn with(settings: Settings) -> Peer {
        let mut p = Peer::raw(settings);
        let mut hello = PREFACE.to_vec();
        hello.extend(settings_frame_empty());
        hello.extend(frame(kind::SETTINGS, flag::ACK, 0, &[]));
        p.send(&hello).unwrap();
        let out = p.frames();
        assert_eq!(out[0].kind, kind::SETTINGS);
        assert!(
            out.iter()
                .any(|f| f.kind == kind::SETTINGS && f.has(flag::ACK))
        );
        p
    }

    /// A connection before the preface.
    pub fn raw(settings: Settings) -> Peer {
        Peer {
            conn: Connection::new(settings),
            input: BytesMut::new(),
            events: Vec::new(),
            decoder: Decoder::new(4096),
            pending: None,
        }
    }

    /// Feeds `bytes` to `recv`.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.input.extend_from_slice(bytes);
        self.conn.recv(&mut self.input, &mut self.events)
    }

    /// The events so far, taken.
    pub fn events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// ferry's output so far, parsed (and written).
    pub fn frames(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        let bytes = self.conn.output().to_vec();
        self.conn.written(bytes.len());
        let mut rest = &bytes[..];
        while let Some(h) = FrameHeader::parse(rest) {
            let end = HEADER_LEN + h.len as usize;
            let payload = rest[HEADER_LEN..end].to_vec();
            rest = &rest[end..];
            let idx = out.len();
            out.push(Frame {
                kind: h.kind,
                flags: h.flags,
                id: h.stream,
                payload,
                fields: Vec::new(),
            });
            if h.kind == kind::HEADERS {
                self.pending = Some((Vec::new(), idx));
            }
            if !matches!(h.kind, kind::HEADERS | kind::CONTINUATION) {
                continue;
            }
            let (block, at) = self.pending.as_mut().expect("CONTINUATION after HEADERS");
            block.extend_from_slice(&out[idx].payload);
            if h.has(flag::END_HEADERS) {
                let (block, at) = (std::mem::take(block), *at);
                self.pending = None;
                let mut fields = Vec::new();
                let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                self.decoder
                    .decode(&block, usize::MAX, |n, v| fields.push((s(n), s(v))))
                    .expect("ferry's header block decodes");
                out[at].fields = fields;
            }
        }
        assert!(rest.is_empty(), "output ends inside a frame");
        out
    }

    /// The output's only frame.
    pub fn one_frame(&mut self) -> Frame {
        let mut f = self.frames();
        assert_eq!(f.len(), 1, "{f:?}");
        f.pop().unwrap()
    }

    /// The frames after a connection error: exactly one GOAWAY, with `code`.
    pub fn expect_goaway(&mut self, r: Result<(), ConnError>, code: u32) {
        let e = r.expect_err("a connection error");
        assert_eq!(e.code, code, "{e}");
        let f = self.frames();
        let last = f.last().expect("GOAWAY queued");
        assert_eq!((last.kind, last.code()), (kind::GOAWAY, code), "{f:?}");
        assert_eq!(self.send(&[]).unwrap_err(), e, "the error sticks");
    }

    /// Opens stream `id` with a GET and checks the Request event.
    pub fn open(&mut self, id: u32, end_stream: bool) {
        self.send(&headers(id, &GET, end_stream)).unwrap();
        match self.events().as_slice() {
            [Event::Request { id: got, .. }] => assert_eq!(*got, id),
            e => panic!("expected a request, got {e:?}"),
        }
    }
}

fn settings_frame_empty() -> Vec<u8> {
    settings(&[])
}
