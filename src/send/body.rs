//! What a response carries after its head. A `Body` is built by the router and consumed by
//! `send::write_response`; it holds an open file descriptor, never the file's bytes.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;

use crate::http::Framing;
use crate::upstream::UpConn;

/// A byte range of an open file, sent as is.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
    /// Read with O_DIRECT, bypassing the page cache (path `directio`): the file is at or
    /// above its location's `directio_threshold`. HTTP/2 ignores it.
    pub direct: bool,
}

impl FileRange {
    /// What a spool file holds: its first `written()` bytes, read through the page cache.
    pub fn spooled(file: &crate::spool::SpoolFile) -> FileRange {
        FileRange {
            file: Arc::clone(file.file()),
            offset: 0,
            len: file.written(),
            direct: false,
        }
    }
}

/// One piece of a multi-part body.
#[derive(Debug, Clone)]
pub enum Part {
    Bytes(Bytes),
    File(FileRange),
}

impl Part {
    /// Bytes this part puts on the wire.
    pub fn wire_len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::File(f) => f.len,
        }
    }
}

/// The app's response body, still in its socket (and in `conn.leftover`).
#[derive(Debug)]
pub struct UpstreamBody {
    pub conn: UpConn,
    pub framing: Framing,
    /// Re-frame as chunked toward the client (an HTTP/1.1 client and no known length).
    pub chunked: bool,
    /// A cache fill the body is also written to, if the response is being stored.
    pub fill: Option<crate::cache::fill::Fill>,
    /// Where the rest of the body goes when the client is slower than the app (`None`:
    /// relayed at the client's pace, `spool.response_buffering = false`).
    pub spool: Option<crate::spool::Spool>,
    /// The app asked for no buffering (`X-Accel-Buffering: no`, as nginx honours it: a
    /// stream of events): never spooled.
    pub unbuffered: bool,
}

/// A response body.
#[derive(Debug, Default)]
pub enum Body {
    /// No body (HEAD, 304, 204), or a body the head announced but is not to be sent.
    #[default]
    Empty,
    /// A small generated body (errors, redirects).
    Bytes(Bytes),
    /// A range of a file.
    File(FileRange),
    /// Generated pieces and file ranges in order (multipart/byteranges).
    Parts(Vec<Part>),
    /// Relayed from the app.
    Upstream(UpstreamBody),
}

impl Body {
    /// The body's length when known before sending (the Content-Length to announce).
    pub fn length(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::File(f) => Some(f.len),
            Body::Parts(parts) => Some(parts.iter().map(Part::wire_len).sum()),
            Body::Upstream(up) => match up.framing {
                Framing::None => Some(0),
                Framing::Length(n) => Some(n),
                Framing::Chunked | Framing::Close => None,
            },
        }
    }

    /// The empty body of a response that carries none (HEAD, 304, 204); an app connection
    /// (which sent no body for these) goes back to the pool.
    pub fn into_empty(self) -> Body {
        if let Body::Upstream(up) = self {
            up.conn.release();
        }
        Body::Empty
    }

    /// Whether any of the body comes from a file (and so takes a file send path).
    pub fn has_file(&self) -> bool {
        match self {
            Body::File(_) => true,
            Body::Parts(parts) => parts.iter().any(|p| matches!(p, Part::File(_))),
            Body::Empty | Body::Bytes(_) | Body::Upstream(_) => false,
        }
    }
}
