//! A `Reply` as an HTTP/2 response on one stream: the status, ferry's headers and the app's
//! (minus the connection-specific ones HTTP/2 forbids, names lowercased), Date and Server,
//! Content-Length when the body's length is known (also for HEAD, as for HTTP/1.1), then the
//! body (`Outgoing`), which the driver pumps into the connection's frames as flow control
//! allows: bytes in memory as they are; a file read with pread(2) straight into the DATA
//! frame while the page cache holds it (no buffer of its own, no trip off the event loop),
//! its rest from a producer task (`body`) once a read would wait for the disk; every other
//! body from a producer task. Bodies already in memory are recorded at once; a file when
//! its last byte is framed; the others when their producer ends.

use std::io::Write as _;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};

use super::body::{self, Item, Limits, Produced};
use super::stream::{ConnState, Finish};
use crate::failure::Failure;
use crate::http::response::{is_token, push_sanitized};
use crate::http::{Method, RequestHead};
use crate::http2::Connection;
use crate::ingress::Client;
use crate::metrics::{SendPath, Side, Tally};
use crate::route::{Added, Reply};
use crate::send::{Body, FileRange, pool};

/// Header fields that describe an HTTP/1.1 connection, malformed in HTTP/2 (RFC 9113
/// §8.2.2); lowercase.
const CONNECTION_SPECIFIC: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// The most body bytes one stream frames per turn of the round robin: one DATA frame of the
/// default size, so streams share the connection frame by frame.
const QUANTUM: usize = 16 * 1024;

/// Sends the head of `reply` to `req` on stream `id` (`Err`: the request head was refused;
/// who sent it) and returns what is left of the body, if anything.
pub(super) fn start(
    core: &mut Connection,
    id: u32,
    conn: &Arc<ConnState>,
    req: Result<RequestHead, Client>,
    reply: Reply,
    started: Instant,
) -> Option<Outgoing> {
    let Reply {
        status,
        own_headers,
        passed_headers,
        body,
        source,
        head_length,
        rate,
        notes,
    } = reply;
    let shared = &conn.shared;
    let no_body_status = status == 304 || status == 204 || status < 200;
    let (req, refused) = match req {
        Ok(req) => (Some(req), Client::default()),
        Err(client) => (None, client),
    };
    let head_request = req.as_ref().is_some_and(|r| r.method == Method::Head);

    let mut fields = Fields::new();
    crate::frontend::conn::with_date(|date| fields.push("date", date.as_bytes()));
    fields.push("server", b"ferry");
    let client = req.as_ref().map_or(&refused, |req| &req.client);
    fields.push("x-request-id", client.request_id.as_str().as_bytes());
    let named = own_headers.iter().map(|(n, v)| (*n, v.as_str()));
    // The app's (or a stored answer's) own ID never stands for this request's.
    let extra = passed_headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("x-request-id"))
        .map(|(n, v)| (n.as_str(), v.as_str()));
    // add_header: the configured values stand in for any of the same name.
    let added = Added::new(shared.router.added_headers(req.as_ref()), status);
    for (name, val) in named.chain(extra) {
        if !added.replaces(name) {
            fields.push(name, val.as_bytes());
        }
    }
    for header in added.iter() {
        fields.push(&header.name, header.value.as_bytes());
    }
    if !no_body_status {
        // A proxied HEAD has no body to measure: announce what the app announced, if anything.
        let length = if head_request && matches!(body, Body::Upstream(_)) {
            head_length
        } else {
            body.length()
        };
        if let Some(length) = length {
            fields.push_u64("content-length", length);
        }
    }
    let body = if no_body_status || head_request {
        body.into_empty()
    } else {
        body
    };
    let empty = match &body {
        Body::Empty => true,
        Body::Bytes(bytes) => bytes.is_empty(),
        Body::File(range) => range.len == 0,
        _ => false,
    };
    core.send_headers(id, status, fields.iter(), empty);
    fields.give_back();

    let finish = Finish {
        conn: Arc::clone(conn),
        req,
        refused,
        status,
        source,
        started,
        notes,
    };
    let limits = Limits {
        chunk: shared.io.chunk.get().min(crate::send::MAX_BUFFER),
        send_timeout: shared.server.send_timeout,
        rate,
        path: conn.path(),
    };
    let out = match body {
        _ if empty => {
            finish.record(&Tally::default(), None);
            return None;
        }
        Body::Bytes(bytes) => {
            let mut tally = Tally::default();
            tally.add(SendPath::Memory, bytes.len());
            finish.record(&tally, None);
            Out::Bytes(bytes)
        }
        // A rate-limited file is paced by its producer.
        Body::File(range) if rate.is_none() => Out::File {
            range,
            finish: Some(finish),
            tally: Tally::default(),
            limits,
        },
        body => Out::Produced {
            body: body::produce(body, limits, finish, Tally::default()),
            pending: Bytes::new(),
        },
    };
    Some(Outgoing(out))
}

/// What a turn of the driver did with one stream's body.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pumped {
    /// Some bytes were framed.
    Sent,
    /// Bytes are ready but flow control gives the stream no room.
    Blocked,
    /// Nothing ready yet (its producer will wake the driver).
    Waiting,
    /// The last byte is framed (END_STREAM queued).
    Done,
    /// The body cannot be completed: reset the stream (the response is recorded).
    Failed,
}

/// The rest of one response's body.
pub(super) struct Outgoing(Out);

#[expect(
    clippy::large_enum_variant,
    reason = "one per stream in flight, kept in place: boxing a file's would cost an allocation per response"
)]
enum Out {
    /// In memory (already recorded).
    Bytes(Bytes),
    /// What is left of a file; recorded when its last byte is framed, or as failed when it
    /// is dropped before.
    File {
        range: FileRange,
        finish: Option<Finish>,
        tally: Tally,
        limits: Limits,
    },
    /// From a producer task, which records it; `pending`: what it gave that the stream had
    /// no room for yet.
    Produced { body: Produced, pending: Bytes },
}

impl Outgoing {
    /// Frames at most `QUANTUM` more bytes of the body on stream `id`, as much as its flow
    /// control allows.
    pub(super) fn pump(&mut self, core: &mut Connection, id: u32, cx: &mut Context<'_>) -> Pumped {
        let room = core.send_capacity(id).min(QUANTUM);
        match &mut self.0 {
            Out::Bytes(bytes) => {
                if room == 0 {
                    return Pumped::Blocked;
                }
                let n = room.min(bytes.len());
                let last = n == bytes.len();
                core.send_data(id, &bytes[..n], last);
                bytes.advance(n);
                if last { Pumped::Done } else { Pumped::Sent }
            }
            Out::File { .. } if room == 0 => Pumped::Blocked,
            Out::File {
                range,
                finish,
                tally,
                limits,
            } => {
                let max = usize::try_from(range.len).unwrap_or(usize::MAX).min(room);
                let last = max as u64 == range.len;
                let (file, offset) = (&*range.file, range.offset);
                let read = core.send_data_with(id, max, last, |buf| {
                    crate::sys::read_cached(file, offset, buf)
                });
                match read {
                    Ok(0) => self.fail(Failure::Truncated),
                    Ok(n) => {
                        range.offset += n as u64;
                        range.len -= n as u64;
                        tally.add(limits.path, n);
                        if range.len > 0 {
                            return Pumped::Sent;
                        }
                        if let Some(finish) = finish.take() {
                            finish.record(tally, None);
                        }
                        Pumped::Done
                    }
                    // Not in the page cache (EAGAIN), or a file system that cannot say
                    // (EOPNOTSUPP: 9p, some FUSE): the rest is read off the event loop, where a
                    // real read error is reported as the disk's.
                    Err(_) => {
                        let rest = range.clone();
                        let (limits, tally) = (*limits, std::mem::take(tally));
                        let Some(finish) = finish.take() else {
                            return Pumped::Failed;
                        };
                        let body = body::produce(Body::File(rest), limits, finish, tally);
                        self.0 = Out::Produced {
                            body,
                            pending: Bytes::new(),
                        };
                        self.pump(core, id, cx)
                    }
                }
            }
            Out::Produced { body, pending } => {
                if pending.is_empty() {
                    if room == 0 {
                        // Its producer's own send_timeout watches a stream that takes nothing.
                        return Pumped::Waiting;
                    }
                    match body.poll_item(cx) {
                        Poll::Pending => return Pumped::Waiting,
                        Poll::Ready(Item::Data(bytes)) => *pending = bytes,
                        Poll::Ready(Item::End) => {
                            core.end_stream(id);
                            return Pumped::Done;
                        }
                        Poll::Ready(Item::Failed) => return Pumped::Failed,
                    }
                }
                if room == 0 {
                    return Pumped::Blocked;
                }
                let n = room.min(pending.len());
                core.send_data(id, &pending[..n], false);
                pending.advance(n);
                Pumped::Sent
            }
        }
    }

    /// Records a file body that cannot be completed.
    fn fail(&mut self, err: Failure) -> Pumped {
        if let Out::File { finish, tally, .. } = &mut self.0
            && let Some(finish) = finish.take()
        {
            tracing::debug!(peer = %finish.client().peer, error = %err, sent = tally.total(), "response not completed");
            finish.record(tally, Some(err.side()));
        }
        Pumped::Failed
    }
}

impl Drop for Outgoing {
    /// A file body dropped before its end (the stream was reset, the connection closed or
    /// stalled) is recorded with what was sent, the client at fault. Produced bodies are
    /// recorded by their producer, which sees its channel close.
    fn drop(&mut self) {
        if let Out::File { finish, tally, .. } = &mut self.0
            && let Some(finish) = finish.take()
        {
            tracing::debug!(peer = %finish.client().peer, sent = tally.total(), "response not completed: client gone");
            finish.record(tally, Some(Side::Client));
        }
    }
}

/// A response's header fields, lowercase, in one pooled buffer.
struct Fields {
    buf: Vec<u8>,
    /// Where each field's name starts, where its value starts, where it ends.
    at: Vec<(usize, usize, usize)>,
}

impl Fields {
    fn new() -> Fields {
        Fields {
            buf: pool::take_head(),
            at: Vec::with_capacity(16),
        }
    }

    /// Adds one field, unless HTTP/2 forbids it or it cannot be expressed (the HTTP/1.1
    /// encoder drops such names too); control bytes in the value become spaces, as there.
    fn push(&mut self, name: &str, value: &[u8]) {
        if !is_token(name)
            || CONNECTION_SPECIFIC
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
        {
            tracing::debug!(name, "response header dropped for http/2");
            return;
        }
        let start = self.buf.len();
        self.buf
            .extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        let mid = self.buf.len();
        push_sanitized(value, &mut self.buf);
        self.at.push((start, mid, self.buf.len()));
    }

    fn push_u64(&mut self, name: &str, n: u64) {
        let start = self.buf.len();
        self.buf.extend_from_slice(name.as_bytes());
        let mid = self.buf.len();
        let _ = write!(self.buf, "{n}");
        self.at.push((start, mid, self.buf.len()));
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.at
            .iter()
            .map(|&(start, mid, end)| (&self.buf[start..mid], &self.buf[mid..end]))
    }

    fn give_back(self) {
        pool::put_head(self.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_and_invalid_headers_are_dropped_names_lowercased() {
        let mut fields = Fields::new();
        fields.push("Connection", b"close");
        fields.push("Transfer-Encoding", b"chunked");
        fields.push("Keep-Alive", b"timeout=5");
        fields.push("bad name", b"x");
        fields.push("Set-Cookie", b"a=1");
        fields.push("Set-Cookie", b"b=2");
        fields.push("X-Odd", b"a\r\nb\0c");
        fields.push_u64("content-length", 1234);
        let got: Vec<(&[u8], &[u8])> = fields.iter().collect();
        assert_eq!(
            got,
            [
                (&b"set-cookie"[..], &b"a=1"[..]),
                (b"set-cookie", b"b=2"),
                (b"x-odd", b"a  b c"),
                (b"content-length", b"1234"),
            ]
        );
        fields.give_back();
    }
}
