//! The settings ferry announces to every HTTP/2 client and holds it to.

use super::frame;

/// What ferry announces and enforces.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Streams a client may have open at once (more are refused with REFUSED_STREAM).
    pub max_concurrent_streams: u32,
    /// Per-stream receive window for request bodies.
    pub initial_window_size: u32,
    /// Connection receive window (WINDOW_UPDATE on stream 0 at start).
    pub connection_window: u32,
    /// The largest frame payload ferry accepts.
    pub max_frame_size: u32,
    /// The largest request head (RFC 9113 §6.5.2 size: name + value + 32 per field).
    pub max_header_list_size: u32,
    /// The HPACK dynamic table the client may use for request heads.
    pub header_table_size: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_concurrent_streams: 128,
            initial_window_size: frame::DEFAULT_WINDOW,
            connection_window: 1 << 20,
            max_frame_size: frame::MIN_MAX_FRAME_SIZE,
            max_header_list_size: crate::http::MAX_HEAD as u32,
            header_table_size: 4096,
        }
    }
}
