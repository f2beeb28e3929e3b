//! An HTTP/2 request as ferry's `RequestHead`, so the router and the proxy need not know
//! which protocol the client spoke. The request is written out as the HTTP/1.1 head it
//! stands for (`:authority` as Host when the client sent none, cookie fields joined as RFC
//! 9113 §8.2.3 asks) and parsed with the HTTP/1.1 codec: the same target, Host, size and
//! framing rules apply to both protocols, with no second copy of them to drift apart.
//!
//! Also here: a stream's request body on its way from the connection's driver to the stream's
//! handler (`body_channel`), and reading it whole into the proxy's collector (memory, then a
//! spool file, up to `server.max_body_size`), asking the driver first for the interim 100 a
//! client that sent `Expect: 100-continue` waits for.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use crate::http::response::is_token;
use crate::http::{BodyLength, ParseError, RequestHead, Scheme, parse_request};
use crate::http2::Head;
use crate::proxy::{Collector, Held, Refused};

/// Converts the head of an HTTP/2 request; `end_stream` is whether the request has no body
/// (its HEADERS frame ended the stream); `scheme` is the connection's (https over TLS, http
/// on h2c), whatever `:scheme` says, as for HTTP/1.1.
pub fn parse_head(
    head: &Head,
    end_stream: bool,
    scheme: Scheme,
) -> Result<RequestHead, ParseError> {
    if head.method() == b"CONNECT" || head.protocol().is_some() {
        // Only origin-form targets are served (as for HTTP/1.1): no tunnels.
        return Err(ParseError::Bad("connect is not supported"));
    }
    let parts = Parts {
        method: head.method(),
        path: head.path(),
        authority: head.authority(),
    };
    parse_parts(&parts, || head.fields(), end_stream, scheme)
}

/// The pseudo-fields of a request that make its request line and Host.
struct Parts<'a> {
    method: &'a [u8],
    path: &'a [u8],
    authority: Option<&'a [u8]>,
}

fn parse_parts<'a, I: Iterator<Item = (&'a [u8], &'a [u8])>>(
    parts: &Parts<'_>,
    fields: impl Fn() -> I,
    end_stream: bool,
    scheme: Scheme,
) -> Result<RequestHead, ParseError> {
    let encoded = encode_head(parts, fields)?;
    let Some((mut req, _)) = parse_request(&encoded)? else {
        return Err(ParseError::Bad("incomplete request head"));
    };
    // Without a Content-Length an HTTP/2 body is delimited by its stream's end: for the
    // router that is a body of unknown length, which is what chunked means to it.
    if req.body == BodyLength::Empty && !end_stream && req.header("content-length").is_none() {
        req.body = BodyLength::Chunked;
    }
    // The codec saw no body where the stream delimits it. The interim 100 is sent when the
    // body is wanted (`read_into`), never for a request answered without it.
    req.expect_continue = req.body != BodyLength::Empty && req.asks_continue();
    req.scheme = scheme;
    Ok(req)
}

/// The HTTP/1.1 head an HTTP/2 request stands for. Bytes that would change the meaning of
/// that head (line breaks, NUL; spaces in the method or target; a name that is no token) are
/// refused rather than written out.
fn encode_head<'a, I: Iterator<Item = (&'a [u8], &'a [u8])>>(
    parts: &Parts<'_>,
    fields: impl Fn() -> I,
) -> Result<Vec<u8>, ParseError> {
    let target = if parts.path.is_empty() {
        &b"/"[..]
    } else {
        parts.path
    };
    let word = |b: &[u8]| !b.is_empty() && b.iter().all(|&c| c > b' ' && c != 0x7f);
    if !word(parts.method) || !word(target) {
        return Err(ParseError::Bad("bad request line"));
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(parts.method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let has_host = fields().any(|(name, _)| name == b"host");
    if !has_host && let Some(authority) = parts.authority {
        push(&mut out, b"host", authority)?;
    }
    let mut cookies: Option<Vec<u8>> = None;
    for (name, value) in fields() {
        if name == b"cookie" {
            let joined = cookies.get_or_insert_with(Vec::new);
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(value);
        } else {
            push(&mut out, name, value)?;
        }
    }
    if let Some(joined) = cookies {
        push(&mut out, b"cookie", &joined)?;
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

fn push(out: &mut Vec<u8>, name: &[u8], value: &[u8]) -> Result<(), ParseError> {
    let name_ok = std::str::from_utf8(name).is_ok_and(is_token);
    if !name_ok || value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(ParseError::Bad("bad header field"));
    }
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// One stream's request body between the driver (which gets its DATA frames) and the
/// stream's handler (which reads it): both run on the connection's task, so this is a queue
/// and a waker, not a channel between threads.
#[derive(Default)]
struct Queue {
    data: VecDeque<Bytes>,
    /// The client ended the body.
    ended: bool,
    /// The stream is gone (reset, connection closed) before the body ended.
    gone: bool,
    /// The reader wants the body the client is holding back for `Expect: 100-continue`:
    /// the driver sends the interim 100.
    continue_asked: bool,
    /// Bytes the reader has taken, not yet counted back by the driver.
    taken: usize,
    reader: Option<Waker>,
}

/// A new stream's request body: the driver's end and the handler's.
pub fn body_channel() -> (BodyTx, BodyRx) {
    let queue = Arc::new(Mutex::new(Queue::default()));
    let tx = BodyTx {
        queue: Arc::clone(&queue),
        untaken: 0,
    };
    (tx, BodyRx { queue })
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// The driver's end of a request body.
pub struct BodyTx {
    queue: Arc<Mutex<Queue>>,
    /// Bytes given to the queue and not yet taken back with `take_consumed`.
    untaken: usize,
}

impl BodyTx {
    /// Queues body bytes for the reader; `end`: they are the last.
    pub fn push(&mut self, data: Bytes, end: bool) {
        self.untaken += data.len();
        let mut q = lock(&self.queue);
        if !data.is_empty() {
            q.data.push_back(data);
        }
        q.ended |= end;
        if let Some(waker) = q.reader.take() {
            waker.wake();
        }
    }

    /// The bytes the reader took since the last call: they may be released to the client's
    /// flow-control windows.
    pub fn take_consumed(&mut self) -> usize {
        let n = std::mem::take(&mut lock(&self.queue).taken);
        self.untaken -= n;
        n
    }

    /// Whether the reader asked for the body with an interim 100 since the last call.
    pub fn take_continue(&mut self) -> bool {
        std::mem::take(&mut lock(&self.queue).continue_asked)
    }

    /// Drops the body: the bytes still queued (and those taken but not yet counted) are
    /// returned, to be released.
    pub fn close(self) -> usize {
        self.untaken
    }
}

impl Drop for BodyTx {
    fn drop(&mut self) {
        let mut q = lock(&self.queue);
        q.gone = !q.ended;
        q.data.clear();
        if let Some(waker) = q.reader.take() {
            waker.wake();
        }
    }
}

/// Why a body stopped before its end.
#[derive(Debug, thiserror::Error)]
#[error("client: request body: stream reset or connection closed")]
pub struct BodyGone;

/// The handler's end of a request body.
pub struct BodyRx {
    queue: Arc<Mutex<Queue>>,
}

impl BodyRx {
    /// The next bytes of the body; `None` at its end.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyGone>>> {
        let mut q = lock(&self.queue);
        if let Some(data) = q.data.pop_front() {
            q.taken += data.len();
            return Poll::Ready(Some(Ok(data)));
        }
        if q.gone {
            return Poll::Ready(Some(Err(BodyGone)));
        }
        if q.ended {
            return Poll::Ready(None);
        }
        q.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    pub async fn next(&mut self) -> Option<Result<Bytes, BodyGone>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Asks the driver for an interim 100 (Continue), unless the body already came whole.
    /// The driver sees it after polling the handler that asked, before it next writes.
    pub fn ask_continue(&mut self) {
        let mut q = lock(&self.queue);
        q.continue_asked = !q.ended && !q.gone;
    }
}

/// Reads the whole body into `collector` (memory, then a spool file; the limit is the
/// collector's), waiting at most `timeout` for each frame; `None`: the request has none.
/// `expect_continue`: the client waits for an interim 100 before it sends the body (RFC
/// 9110 §10.1.1), asked for first.
pub async fn read_into(
    body: Option<&mut BodyRx>,
    mut collector: Collector,
    expect_continue: bool,
    timeout: Duration,
) -> Result<Held, Refused> {
    let Some(body) = body else {
        return Ok(collector.finish());
    };
    if expect_continue {
        body.ask_continue();
    }
    loop {
        match tokio::time::timeout(timeout, body.next()).await {
            Ok(Some(Ok(data))) => collector.push(&data)?,
            Ok(Some(Err(err))) => return Err(Refused::Gone(Box::new(err))),
            Ok(None) => break,
            Err(_) => {
                let err = format!("client: request body: no data for {timeout:?}");
                return Err(Refused::Gone(err.into()));
            }
        }
    }
    Ok(collector.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::Method;

    fn parse(
        method: &str,
        path: &str,
        authority: Option<&str>,
        fields: &[(&str, &str)],
        end_stream: bool,
        scheme: Scheme,
    ) -> Result<RequestHead, ParseError> {
        let parts = Parts {
            method: method.as_bytes(),
            path: path.as_bytes(),
            authority: authority.map(str::as_bytes),
        };
        let fields = || fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        parse_parts(&parts, fields, end_stream, scheme)
    }

    #[test]
    fn authority_becomes_host_and_cookies_are_joined() {
        let fields = [("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")];
        let authority = Some("example.test:8443");
        let req = parse("GET", "/a/b?x=1", authority, &fields, true, Scheme::Https).unwrap();
        assert_eq!(req.scheme, Scheme::Https);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.target, "/a/b?x=1");
        assert_eq!(req.header("host"), Some(&b"example.test:8443"[..]));
        assert_eq!(req.header("cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(req.header("accept"), Some(&b"*/*"[..]));
        assert_eq!(req.body, BodyLength::Empty);
        assert!(req.keep_alive);
        assert!(!req.expect_continue);
    }

    #[test]
    fn a_host_header_wins_over_the_authority() {
        let fields = [("host", "host.test")];
        let authority = Some("authority.test");
        let req = parse("GET", "/", authority, &fields, true, Scheme::Https).unwrap();
        assert_eq!(req.header("host"), Some(&b"host.test"[..]));
        // h2c: the connection's scheme, whatever `:scheme` claims.
        let req = parse("GET", "/", authority, &fields, true, Scheme::Http).unwrap();
        assert_eq!(req.scheme, Scheme::Http);
    }

    #[test]
    fn body_framing_from_content_length_or_the_stream() {
        let post = |cl: Option<&str>, end_stream: bool| {
            let mut fields = vec![("expect", "100-continue")];
            if let Some(cl) = cl {
                fields.push(("content-length", cl));
            }
            parse(
                "POST",
                "/up",
                Some("a.test"),
                &fields,
                end_stream,
                Scheme::Https,
            )
            .unwrap()
        };
        let req = post(Some("12"), false);
        assert_eq!(req.body, BodyLength::Length(12));
        assert!(req.expect_continue);
        let req = post(None, false);
        assert_eq!(req.body, BodyLength::Chunked);
        assert!(req.expect_continue, "a body the stream delimits");
        for req in [post(None, true), post(Some("0"), false)] {
            assert_eq!(req.body, BodyLength::Empty);
            assert!(!req.expect_continue, "no body to wait for");
        }
    }

    #[test]
    fn the_http11_rules_apply() {
        let bad = |path: &str, fields: &[(&str, &str)]| {
            parse("GET", path, Some("a.test"), fields, true, Scheme::Https).unwrap_err()
        };
        assert_eq!(bad("/%zz", &[]).status(), 400);
        let big = "v".repeat(20_000);
        assert_eq!(bad("/", &[("x-big", &big)]).status(), 431);
        let other = parse("PURGE", "/x", Some("a.test"), &[], true, Scheme::Https).unwrap();
        assert_eq!(other.method, Method::Other("PURGE".into()));
    }

    #[test]
    fn bytes_that_would_change_the_head_are_refused() {
        let bad = |method: &str, path: &str, fields: &[(&str, &str)]| {
            parse(method, path, Some("a.test"), fields, true, Scheme::Https).is_err()
        };
        assert!(bad("GET", "/a b", &[]));
        assert!(bad("GET", "/a\r\nx: y", &[]));
        assert!(bad("G T", "/", &[]));
        assert!(bad("GET", "/", &[("x-a", "1\r\nx-b: 2")]));
        assert!(bad("GET", "/", &[("x a", "1")]));
        assert!(bad("GET", "/", &[("x:a", "1")]));
        assert!(!bad("GET", "/", &[("x-a", "1")]));
    }

    #[test]
    fn the_body_channel_counts_what_the_reader_took() {
        let (mut tx, mut rx) = body_channel();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(rx.poll_next(&mut cx).is_pending());
        tx.push(Bytes::from_static(b"abc"), false);
        tx.push(Bytes::from_static(b"defg"), true);
        assert!(matches!(rx.poll_next(&mut cx), Poll::Ready(Some(Ok(b))) if b == "abc"));
        assert_eq!(tx.take_consumed(), 3);
        assert_eq!(tx.take_consumed(), 0);
        assert_eq!(tx.close(), 4, "queued, never taken: released at the close");
        assert!(
            matches!(rx.poll_next(&mut cx), Poll::Ready(None)),
            "ended before the close"
        );
    }

    #[test]
    fn a_body_dropped_before_its_end_is_gone_for_the_reader() {
        let (mut tx, mut rx) = body_channel();
        let mut cx = Context::from_waker(Waker::noop());
        tx.push(Bytes::from_static(b"abc"), false);
        drop(tx);
        assert!(matches!(
            rx.poll_next(&mut cx),
            Poll::Ready(Some(Err(BodyGone)))
        ));
    }
}
