//! An HTTP/2 request as ferry's `RequestHead`, so the router and the proxy need not know
//! which protocol the client spoke. The request is written out as the HTTP/1.1 head it
//! stands for (`:authority` as Host when the client sent none, cookie fields joined as RFC
//! 9113 §8.2.3 asks) and parsed with the HTTP/1.1 codec: the same target, Host, size and
//! framing rules apply to both protocols, with no second copy of them to drift apart.
//!
//! Also here: reading a request body whole into the proxy's collector (memory, then a spool
//! file, up to `server.max_body_size`).

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::http::request::Parts;

use crate::http::{BodyLength, ParseError, RequestHead, Scheme, parse_request};
use crate::proxy::{Collector, Held, Refused};

/// Converts the head of an HTTP/2 request; `end_stream` is whether the request has no body
/// (its HEADERS frame ended the stream); `scheme` is the connection's (https over TLS, http
/// on h2c), whatever `:scheme` says, as for HTTP/1.1.
pub fn parse_head(
    parts: &Parts,
    end_stream: bool,
    scheme: Scheme,
) -> Result<RequestHead, ParseError> {
    let head = encode_head(parts)?;
    let Some((mut req, _)) = parse_request(&head)? else {
        return Err(ParseError::Bad("incomplete request head"));
    };
    // Without a Content-Length an HTTP/2 body is delimited by its stream's end: for the
    // router that is a body of unknown length, which is what chunked means to it.
    if req.body == BodyLength::Empty && !end_stream && req.header("content-length").is_none() {
        req.body = BodyLength::Chunked;
    }
    // ferry reads an HTTP/2 body itself before forwarding it; hyper answers the expectation.
    req.expect_continue = false;
    req.scheme = scheme;
    Ok(req)
}

/// The HTTP/1.1 head an HTTP/2 request stands for.
fn encode_head(parts: &Parts) -> Result<Vec<u8>, ParseError> {
    if parts.method == hyper::Method::CONNECT {
        // Only origin-form targets are served (as for HTTP/1.1): no tunnels.
        return Err(ParseError::Bad("connect is not supported"));
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .as_bytes();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { b"/" } else { target });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(hyper::header::HOST)
        && let Some(authority) = parts.uri.authority()
    {
        push(&mut out, b"host", authority.as_str().as_bytes());
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in &parts.headers {
        if name == hyper::header::COOKIE {
            cookies.push(value.as_bytes());
        } else {
            push(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if !cookies.is_empty() {
        push(&mut out, b"cookie", &cookies.join(&b"; "[..]));
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

fn push(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Reads the whole body into `collector` (memory, then a spool file; the limit is the
/// collector's), waiting at most `timeout` for each frame.
pub async fn read_into(
    body: &mut Incoming,
    mut collector: Collector,
    timeout: Duration,
) -> Result<Held, Refused> {
    while !body.is_end_stream() {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => return Err(Refused::Gone(Box::new(err))),
            Ok(None) => break,
            Err(_) => {
                let err = format!("client: request body: no data for {timeout:?}");
                return Err(Refused::Gone(err.into()));
            }
        };
        // Trailers carry nothing the app is sent; they are dropped.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        collector.push(&data)?;
    }
    Ok(collector.finish())
}

/// Reads and drops what is left of a body nobody needs (the answer did not depend on it),
/// at most `limit` bytes, at most `timeout` between frames; then drops the stream's
/// receiving side. Reading it lets the stream end normally: a body left unread makes the
/// stream end in RST_STREAM(NO_ERROR), which RFC 9113 §8.1 allows once the response is
/// complete but which some clients (curl before 8) report as a failed transfer, losing the
/// answer (a 413 or 405) with it.
pub async fn discard_body(mut body: Incoming, limit: u64, timeout: Duration) {
    let mut left = limit;
    while !body.is_end_stream() {
        match tokio::time::timeout(timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                let Some(rest) = left.checked_sub(n) else {
                    return;
                };
                left = rest;
            }
            Ok(None) => return,
            Ok(Some(Err(_))) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn parts(req: hyper::Request<()>) -> Parts {
        req.into_parts().0
    }

    #[test]
    fn authority_becomes_host_and_cookies_are_joined() {
        let p = parts(
            hyper::Request::get("https://example.test:8443/a/b?x=1")
                .header("cookie", "a=1")
                .header("accept", "*/*")
                .header("cookie", "b=2")
                .body(())
                .unwrap(),
        );
        let req = parse_head(&p, true, Scheme::Https).unwrap();
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
        let p = parts(
            hyper::Request::get("https://authority.test/")
                .header("host", "host.test")
                .body(())
                .unwrap(),
        );
        let req = parse_head(&p, true, Scheme::Https).unwrap();
        assert_eq!(req.header("host"), Some(&b"host.test"[..]));
        // h2c: the connection's scheme, whatever `:scheme` claims.
        assert_eq!(
            parse_head(&p, true, Scheme::Http).unwrap().scheme,
            Scheme::Http
        );
    }

    #[test]
    fn body_framing_from_content_length_or_the_stream() {
        let post = |cl: Option<&str>| {
            let mut b = hyper::Request::post("https://a.test/up").header("expect", "100-continue");
            if let Some(cl) = cl {
                b = b.header("content-length", cl);
            }
            parts(b.body(()).unwrap())
        };
        let req = parse_head(&post(Some("12")), false, Scheme::Https).unwrap();
        assert_eq!(req.body, BodyLength::Length(12));
        assert!(!req.expect_continue);
        assert_eq!(
            parse_head(&post(None), false, Scheme::Https).unwrap().body,
            BodyLength::Chunked
        );
        assert_eq!(
            parse_head(&post(None), true, Scheme::Https).unwrap().body,
            BodyLength::Empty
        );
        assert_eq!(
            parse_head(&post(Some("0")), false, Scheme::Https)
                .unwrap()
                .body,
            BodyLength::Empty
        );
    }

    #[test]
    fn the_http11_rules_apply() {
        let bad =
            |req: hyper::Request<()>| parse_head(&parts(req), true, Scheme::Https).unwrap_err();
        let connect = hyper::Request::connect("a.test:443").body(()).unwrap();
        assert_eq!(bad(connect).status(), 400);
        let fragment = hyper::Request::get("https://a.test/%zz").body(()).unwrap();
        assert_eq!(bad(fragment).status(), 400);
        let huge = hyper::Request::get("https://a.test/")
            .header("x-big", "v".repeat(20_000))
            .body(())
            .unwrap();
        assert_eq!(bad(huge).status(), 431);
        let other = parts(
            hyper::Request::builder()
                .method("PURGE")
                .uri("https://a.test/x")
                .body(())
                .unwrap(),
        );
        assert_eq!(
            parse_head(&other, true, Scheme::Https).unwrap().method,
            Method::Other("PURGE".into())
        );
    }
}
