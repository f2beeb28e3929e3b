//! A `Reply` as an HTTP/2 response: the status, ferry's headers and the app's (minus the
//! connection-specific ones HTTP/2 forbids), Date and Server, Content-Length when the body's
//! length is known (also for HEAD, as for HTTP/1.1), and the body. Bodies that are already in
//! memory are recorded at once; the others when their producer ends (see `body`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use super::body::{self, H2Body, Limits};
use super::stream::{Finish, InFlight};
use crate::frontend::shared::Shared;
use crate::http::{Method, RequestHead, http_date};
use crate::ingress::Client;
use crate::metrics::{SendPath, Tally};
use crate::route::{Added, Reply};
use crate::send::{Body, FileRange};

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

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the response for `reply` to `req` (`Err`: the request head was refused; who sent
/// it).
pub fn respond(
    shared: &Arc<Shared>,
    req: Result<RequestHead, Client>,
    reply: Reply,
    started: Instant,
    stream: InFlight,
) -> Response<H2Body> {
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
    let no_body_status = status == 304 || status == 204 || status < 200;
    let (req, refused) = match req {
        Ok(req) => (Some(req), Client::default()),
        Err(client) => (None, client),
    };
    let head_request = req.as_ref().is_some_and(|r| r.method == Method::Head);

    let mut headers = HeaderMap::with_capacity(own_headers.len() + passed_headers.len() + 3);
    headers.insert(
        hyper::header::DATE,
        value(&http_date(std::time::SystemTime::now())),
    );
    headers.insert(hyper::header::SERVER, HeaderValue::from_static("ferry"));
    let client = req.as_ref().map_or(&refused, |req| &req.client);
    headers.insert(X_REQUEST_ID, value(client.request_id.as_str()));
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
            append(&mut headers, name, val);
        }
    }
    for header in added.iter() {
        append(&mut headers, &header.name, &header.value);
    }
    if !no_body_status {
        // A proxied HEAD has no body to measure: announce what the app announced, if anything.
        let length = if head_request && matches!(body, Body::Upstream(_)) {
            head_length
        } else {
            body.length()
        };
        if let Some(length) = length {
            headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    let body = if no_body_status || head_request {
        body.into_empty()
    } else {
        body
    };

    let finish = Finish {
        shared: Arc::clone(shared),
        req,
        refused,
        status,
        source,
        started,
        notes,
        stream,
    };
    let body = match body {
        Body::Empty => {
            finish.record(&Tally::default(), None);
            H2Body::empty()
        }
        Body::Bytes(bytes) => {
            let mut tally = Tally::default();
            tally.add(SendPath::Memory, bytes.len());
            finish.record(&tally, None);
            H2Body::full(bytes)
        }
        // An empty file is no stream of reads.
        Body::File(range) if range.len == 0 => {
            finish.record(&Tally::default(), None);
            H2Body::empty()
        }
        // A small file the page cache holds whole is read here and sent as one frame: no
        // producer task, no trip to the blocking pool.
        Body::File(range) if range.len <= INLINE_FILE && rate.is_none() => {
            match read_cached(&range) {
                Some(bytes) => {
                    let mut tally = Tally::default();
                    tally.add(finish.conn().path(), bytes.len());
                    finish.record(&tally, None);
                    H2Body::full(bytes)
                }
                None => {
                    let limits = limits(shared, rate, finish.conn().path());
                    body::produce(Body::File(range), limits, finish)
                }
            }
        }
        body => {
            let limits = limits(shared, rate, finish.conn().path());
            body::produce(body, limits, finish)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *response.headers_mut() = headers;
    response
}

/// Files up to this size are read on the event loop when the page cache holds them.
const INLINE_FILE: u64 = 64 * 1024;

/// How a produced body is written.
fn limits(shared: &Shared, rate: Option<u64>, path: SendPath) -> Limits {
    Limits {
        chunk: shared.io.chunk.get().min(crate::send::MAX_BUFFER),
        send_timeout: shared.server.send_timeout,
        rate,
        path,
    }
}

/// The whole of `range` when the page cache holds it (a read that cannot wait on the disk);
/// `None` when it does not, or the file no longer has all of it (the producer then reads it,
/// off the event loop, and reports a file that shrank).
fn read_cached(range: &FileRange) -> Option<Bytes> {
    let mut buf = vec![0u8; usize::try_from(range.len).ok()?];
    match crate::sys::read_cached(&*range.file, range.offset, &mut buf) {
        Ok(n) if n == buf.len() => Some(Bytes::from(buf)),
        _ => None,
    }
}

/// Adds one header, unless HTTP/2 forbids it or it cannot be expressed (the HTTP/1.1
/// encoder drops such names too).
fn append(headers: &mut HeaderMap, name: &str, val: &str) {
    if CONNECTION_SPECIFIC
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
    {
        return;
    }
    let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
        tracing::debug!(name, "response header name dropped for http/2");
        return;
    };
    headers.append(name, value(val));
}

/// A header value with control bytes turned into spaces, as the HTTP/1.1 encoder does.
fn value(text: &str) -> HeaderValue {
    let clean: Vec<u8> = text
        .trim()
        .bytes()
        .map(|b| {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                b' '
            } else {
                b
            }
        })
        .collect();
    HeaderValue::from_bytes(&clean).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_and_invalid_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        append(&mut headers, "Connection", "close");
        append(&mut headers, "Transfer-Encoding", "chunked");
        append(&mut headers, "Keep-Alive", "timeout=5");
        append(&mut headers, "bad name", "x");
        append(&mut headers, "Set-Cookie", "a=1");
        append(&mut headers, "Set-Cookie", "b=2");
        append(&mut headers, "X-Odd", "a\r\nb\0c");
        assert_eq!(headers.len(), 3);
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(headers["x-odd"], "a  b c");
    }
}
