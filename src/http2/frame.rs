//! HTTP/2 frames at the byte level (RFC 9113 §4 and §6): the 9-byte frame header, parsed and
//! encoded, and the numbers the protocol names — frame types, flags, SETTINGS identifiers and
//! error codes. No state lives here; `conn` decides what a frame means.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 9;

/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may announce, and the default (§6.5.2).
pub const MIN_MAX_FRAME_SIZE: u32 = 1 << 14;
/// The largest frame payload the length field can carry (§6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window (§6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The initial window of every stream and of the connection until SETTINGS say otherwise.
pub const DEFAULT_WINDOW: u32 = 65_535;

/// Frame types (§6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (§6); each applies to the types named.
pub mod flag {
    /// DATA, HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING.
    pub const ACK: u8 = 0x1;
    /// HEADERS, CONTINUATION.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS.
    pub const PADDED: u8 = 0x8;
    /// HEADERS.
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameter identifiers (§6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes of RST_STREAM and GOAWAY (§7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const INTERNAL_ERROR: u32 = 0x2;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const SETTINGS_TIMEOUT: u32 = 0x4;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const CONNECT_ERROR: u32 = 0xa;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
    pub const INADEQUATE_SECURITY: u32 = 0xc;
    pub const HTTP_1_1_REQUIRED: u32 = 0xd;
}

/// A frame header (§4.1): payload length, type, flags and stream identifier (the reserved
/// bit dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    /// Reads the header at the front of `buf`; `None` when fewer than 9 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: read_u31(&b[5..9]),
        })
    }

    /// The header's 9 bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        debug_assert!(self.len <= MAX_MAX_FRAME_SIZE);
        let l = self.len.to_be_bytes();
        let s = (self.stream & MAX_WINDOW).to_be_bytes();
        [
            l[1], l[2], l[3], self.kind, self.flags, s[0], s[1], s[2], s[3],
        ]
    }

    /// Appends the header to `out`.
    pub fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// Whether `flag` is set.
    pub fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A 31-bit value (stream id, window increment) from 4 bytes, the reserved high bit dropped.
pub fn read_u31(b: &[u8]) -> u32 {
    read_u32(b) & MAX_WINDOW
}

/// A big-endian u32 from the first 4 bytes of `b` (which has at least 4).
pub fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Appends a whole frame: header, then `payload`.
pub fn encode_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("frame payload fits the length field");
    FrameHeader {
        len,
        kind,
        flags,
        stream,
    }
    .encode(out);
    out.extend_from_slice(payload);
}

/// Appends RST_STREAM (§6.4).
pub fn encode_rst_stream(out: &mut Vec<u8>, stream: u32, code: u32) {
    encode_frame(out, kind::RST_STREAM, 0, stream, &code.to_be_bytes());
}

/// Appends WINDOW_UPDATE (§6.9); `increment` is 1..=2^31-1.
pub fn encode_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    debug_assert!(increment > 0 && increment <= MAX_WINDOW);
    encode_frame(
        out,
        kind::WINDOW_UPDATE,
        0,
        stream,
        &increment.to_be_bytes(),
    );
}

/// Appends GOAWAY (§6.8) without debug data.
pub fn encode_goaway(out: &mut Vec<u8>, last_stream: u32, code: u32) {
    let mut p = [0; 8];
    p[..4].copy_from_slice(&last_stream.to_be_bytes());
    p[4..].copy_from_slice(&code.to_be_bytes());
    encode_frame(out, kind::GOAWAY, 0, 0, &p);
}

/// Appends a SETTINGS frame carrying `params` (identifier, value) pairs.
pub fn encode_settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    let len = u32::try_from(params.len() * 6).expect("a few settings");
    FrameHeader {
        len,
        kind: kind::SETTINGS,
        flags: 0,
        stream: 0,
    }
    .encode(out);
    for &(id, value) in params {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_drops_the_reserved_bit() {
        let h = FrameHeader {
            len: 0x01_02_03,
            kind: kind::HEADERS,
            flags: flag::END_HEADERS | flag::END_STREAM,
            stream: 7,
        };
        let b = h.to_bytes();
        assert_eq!(b, [1, 2, 3, 1, 5, 0, 0, 0, 7]);
        assert_eq!(FrameHeader::parse(&b), Some(h));
        let reserved = [0, 0, 0, 0, 0, 0x80, 0, 0, 3];
        assert_eq!(FrameHeader::parse(&reserved).unwrap().stream, 3);
        assert_eq!(FrameHeader::parse(&b[..8]), None);
    }

    #[test]
    fn control_frames_encode_as_the_rfc_lays_them_out() {
        let mut out = Vec::new();
        encode_rst_stream(&mut out, 3, code::CANCEL);
        assert_eq!(out, [0, 0, 4, 3, 0, 0, 0, 0, 3, 0, 0, 0, 8]);
        out.clear();
        encode_goaway(&mut out, 5, code::ENHANCE_YOUR_CALM);
        assert_eq!(out, [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0xb]);
        out.clear();
        encode_settings(&mut out, &[(setting::MAX_CONCURRENT_STREAMS, 128)]);
        assert_eq!(out, [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 128]);
    }
}
