//! Unit tests for `codec::parse_request`: accepted shapes, incremental input,
//! keep-alive, limits and syntax rejections with their exact variants.
//! Framing rules are in `framing.rs`, target and Host rules in `target.rs`.

use crate::http::codec::*;
use crate::http::*;

pub(super) fn ok(buf: &[u8]) -> (RequestHead, usize) {
    match parse_request(buf) {
        Ok(Some(r)) => r,
        other => panic!(
            "expected a head for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

pub(super) fn err(buf: &[u8]) -> ParseError {
    match parse_request(buf) {
        Err(e) => e,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

pub(super) fn bad(buf: &[u8], msg: &'static str) {
    assert_eq!(
        err(buf),
        ParseError::Bad(msg),
        "{:?}",
        String::from_utf8_lossy(buf)
    );
}

#[test]
fn parses_simple_get() {
    let buf = b"GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nX-Trace: Ab C\r\n\r\n";
    let (head, n) = ok(buf);
    assert_eq!(n, buf.len());
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.target, "/index.html?a=1");
    assert_eq!(head.version, Version::Http11);
    let fields: Vec<(&str, &[u8])> = head.headers.iter().map(|h| (h.name, h.value)).collect();
    assert_eq!(
        fields,
        [("Host", &b"example.com"[..]), ("X-Trace", b"Ab C")]
    );
    assert!(head.keep_alive);
    assert_eq!(head.body, BodyLength::Empty);
    assert!(!head.expect_continue);
    assert_eq!(head.header("HOST"), Some(&b"example.com"[..]));
    assert_eq!(head.header_str("x-trace"), Some("Ab C"));
    assert_eq!(head.header("missing"), None);
}

#[test]
fn methods_are_case_sensitive_tokens() {
    for (m, want) in [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("PATCH", Method::Patch),
        ("get", Method::Other("get".into())),
        ("PROPFIND", Method::Other("PROPFIND".into())),
    ] {
        let buf = format!("{m} / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (head, _) = ok(buf.as_bytes());
        assert_eq!(head.method, want);
        assert_eq!(head.method.as_str(), m);
    }
    assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
    assert_eq!(Version::Http11.as_str(), "HTTP/1.1");
}

#[test]
fn header_accessors() {
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: x\r\naccept: y\r\nX-Bin: \xff\xfe\r\n\r\n";
    let (head, _) = ok(buf);
    let all: Vec<&[u8]> = head.headers_all("ACCEPT").collect();
    assert_eq!(all, vec![&b"x"[..], &b"y"[..]]);
    assert_eq!(head.header("accept"), Some(&b"x"[..]));
    assert_eq!(head.header("x-bin"), Some(&b"\xff\xfe"[..]));
    assert_eq!(head.header_str("x-bin"), None);
    let names: Vec<&str> = head.headers.iter().map(|h| h.name).collect();
    assert_eq!(names[1..3], ["Accept", "accept"]);
}

#[test]
fn pipelined_requests() {
    let first = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    let second = b"HEAD /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let buf = [&first[..], &second[..]].concat();
    let (a, n) = ok(&buf);
    assert_eq!(n, first.len());
    assert_eq!((a.method, a.target.as_str()), (Method::Get, "/a"));
    let (b, m) = ok(&buf[n..]);
    assert_eq!(m, second.len());
    assert_eq!(
        (b.method, b.target.as_str(), b.keep_alive),
        (Method::Head, "/b", false)
    );
}

#[test]
fn body_bytes_follow_the_head() {
    let buf = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET";
    let (head, n) = ok(buf);
    assert_eq!(head.body, BodyLength::Length(5));
    assert_eq!(&buf[n..n + 5], b"hello");
}

#[test]
fn leading_empty_lines_are_skipped_and_counted() {
    let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let (head, n) = ok(buf);
    assert_eq!(n, buf.len());
    assert_eq!(head.target, "/");
    bad(
        b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "bare lf in request head",
    );
}

#[test]
fn every_prefix_needs_more() {
    let requests: [&[u8]; 4] = [
        b"GET /x HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
        b"POST /p?q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        b"\r\nOPTIONS * HTTP/1.0\r\n\r\n",
        b"PUT http://h:8080/a HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 3\r\n\r\n",
    ];
    for req in requests {
        for k in 0..req.len() {
            let got = parse_request(&req[..k]);
            assert!(matches!(got, Ok(None)), "prefix {k}: {got:?}");
        }
        assert_eq!(ok(req).1, req.len());
    }
}

#[test]
fn keep_alive_rules() {
    let cases: [(&[u8], bool); 9] = [
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n",
            true,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: foo ,Keep-Alive\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
    ];
    for (buf, want) in cases {
        assert_eq!(
            ok(buf).0.keep_alive,
            want,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn http10_needs_no_host() {
    let (head, _) = ok(b"HEAD /x HTTP/1.0\r\n\r\n");
    assert_eq!(head.version, Version::Http10);
    assert_eq!(head.method, Method::Head);
    assert!(head.headers.is_empty());
}

#[test]
fn versions() {
    for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
        let buf = format!("GET / {v}\r\nHost: h\r\n\r\n");
        assert_eq!(err(buf.as_bytes()), ParseError::Version, "{v}");
        assert_eq!(err(buf.as_bytes()).status(), 505);
    }
    for v in [
        "HTTP/1.1x",
        "http/1.1",
        "HTTP/11",
        "HTTP/1",
        "FOO",
        "HTTP/1.1 extra",
    ] {
        let buf = format!("GET / {v}\r\nHost: h\r\n\r\n");
        assert_eq!(err(buf.as_bytes()).status(), 400, "{v}");
    }
    bad(b"GET / HTTP/2.0x\r\n", "malformed http version");
    // Could still become a well-formed (if unsupported) version: wait.
    assert!(matches!(parse_request(b"GET / HTTP/2"), Ok(None)));
    assert!(matches!(parse_request(b"GET / HTTP/2.0"), Ok(None)));
    assert_eq!(err(b"GET / HTTP/2.0\r"), ParseError::Version);
    bad(b"GET / HTTQ", "malformed http version");
}

#[test]
fn line_ending_and_header_syntax_rejections() {
    bad(b"GET / HTTP/1.1\nHost: h\n\n", "bare lf in request head");
    bad(
        b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
        "bare lf in request head",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: h\r\n\n",
        "bare lf in request head",
    );
    // A bare CR is caught by httparse first (same 400); the scan's own check
    // is a backstop.
    bad(
        b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
        "invalid header value",
    );
    bad(b"GET / HTTP/1.1\rX", "invalid line ending");
    bad(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n",
        "invalid header name",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tfolded\r\n\r\n",
        "invalid header name",
    );
    bad(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", "invalid header name");
    bad(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", "invalid header name");
    bad(
        b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",
        "invalid header name",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n",
        "invalid header name",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
        "invalid header name",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
        "invalid header value",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
        "invalid header value",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n",
        "invalid header value",
    );
    bad(
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        "invalid method or request target",
    );
    bad(
        b"G@T / HTTP/1.1\r\nHost: h\r\n\r\n",
        "invalid method or request target",
    );
    bad(
        b"GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
        "invalid method or request target",
    );
    let (head, _) = ok(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\tb \t\r\n\r\n");
    assert_eq!(head.header("x"), Some(&b"a\tb"[..]));
}

#[test]
fn request_line_limit() {
    let path = "a".repeat(MAX_REQUEST_LINE - "GET / HTTP/1.1".len());
    let line = format!("GET /{path} HTTP/1.1");
    assert_eq!(line.len(), MAX_REQUEST_LINE);
    let fits = format!("{line}\r\nHost: h\r\n\r\n");
    assert_eq!(ok(fits.as_bytes()).1, fits.len());
    let long = format!("GET /a{path} HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(err(long.as_bytes()), ParseError::UriTooLong);
    assert_eq!(err(long.as_bytes()).status(), 414);
    // Unterminated: rejected as soon as the line is known to be too long.
    let open = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE));
    assert_eq!(err(open.as_bytes()), ParseError::UriTooLong);
    assert!(matches!(
        parse_request(&open.as_bytes()[..MAX_REQUEST_LINE]),
        Ok(None)
    ));
    // An earlier syntax error wins over the size error.
    let early = format!("G@T /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
    assert_eq!(
        err(early.as_bytes()),
        ParseError::Bad("invalid method or request target")
    );
}

#[test]
fn head_size_limit() {
    let base = "GET / HTTP/1.1\r\nHost: h\r\n";
    let filler = |n: usize| format!("X-Fill: {}\r\n", "v".repeat(n));
    // Exactly MAX_HEAD bytes is accepted.
    let used = base.len() + "X-Fill: \r\n".len() + 2;
    let exact = format!("{base}{}\r\n", filler(MAX_HEAD - used));
    assert_eq!(exact.len(), MAX_HEAD);
    assert_eq!(ok(exact.as_bytes()).1, MAX_HEAD);
    // One more byte: too large, whether or not the head is complete.
    let over = format!("{base}{}\r\n", filler(MAX_HEAD - used + 1));
    assert_eq!(err(over.as_bytes()), ParseError::HeadTooLarge);
    assert_eq!(err(over.as_bytes()).status(), 431);
    assert_eq!(err(&over.as_bytes()[..MAX_HEAD]), ParseError::HeadTooLarge);
    assert!(matches!(
        parse_request(&over.as_bytes()[..MAX_HEAD - 1]),
        Ok(None)
    ));
    // Many small headers also hit the byte limit before the count limit.
    let huge = format!("{base}{}", filler(20_000));
    assert_eq!(err(huge.as_bytes()), ParseError::HeadTooLarge);
}

#[test]
fn header_count_limit() {
    let mut buf = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 1..MAX_HEADERS {
        buf.push_str(&format!("X-{i}: v\r\n"));
    }
    let (head, _) = ok(format!("{buf}\r\n").as_bytes());
    assert_eq!(head.headers.len(), MAX_HEADERS);
    buf.push_str("X-Last: v\r\n");
    assert_eq!(
        err(format!("{buf}\r\n").as_bytes()),
        ParseError::TooManyHeaders
    );
    // Detected without waiting for the end of the head.
    assert_eq!(err(buf.as_bytes()), ParseError::TooManyHeaders);
    assert_eq!(ParseError::TooManyHeaders.status(), 431);
}

#[test]
fn error_statuses_and_messages() {
    let cases = [
        (ParseError::UriTooLong, 414, "request line too long"),
        (ParseError::HeadTooLarge, 431, "request head too large"),
        (ParseError::TooManyHeaders, 431, "too many headers"),
        (ParseError::Version, 505, "unsupported http version"),
        (ParseError::Bad("x y"), 400, "bad request: x y"),
    ];
    for (e, status, msg) in cases {
        assert_eq!(e.status(), status);
        assert_eq!(e.to_string(), msg);
    }
}
