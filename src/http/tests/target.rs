//! Request-target forms (origin, absolute, asterisk) and Host validation in
//! `parse_request`.

use super::codec::{bad, err, ok};
use crate::http::ParseError;

#[test]
fn host_rules() {
    bad(b"GET / HTTP/1.1\r\n\r\n", "missing host header");
    bad(
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        "multiple host headers",
    );
    bad(
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        "multiple host headers",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "invalid host header",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "invalid host header",
    );
    bad(
        b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
        "invalid host header",
    );
    for host in ["h:abc", "h:1:2", "::1", "[::1", "[]", "[::1]x", "h\\x"] {
        let buf = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(
            err(buf.as_bytes()),
            ParseError::Bad("invalid host header"),
            "{host}"
        );
    }
    for host in ["h:", "h:80", "[v1.x]", "a-b.c_d~e%41", "127.0.0.1:8080"] {
        let buf = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(ok(buf.as_bytes()).0.header_str("host"), Some(host));
    }
    assert_eq!(
        ok(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")
            .0
            .header("host"),
        Some(&b"[::1]:8080"[..])
    );
    assert_eq!(
        ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").0.header("host"),
        Some(&b""[..])
    );
}

#[test]
fn request_targets() {
    let (head, _) = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.target, "*");
    bad(
        b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        "asterisk target is only allowed for options",
    );
    bad(
        b"GET index.html HTTP/1.1\r\nHost: h\r\n\r\n",
        "invalid request target",
    );
    bad(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "invalid request target",
    );
    bad(
        b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
        "fragment in request target",
    );
    bad(
        b"GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n",
        "malformed percent-encoding in request target",
    );
    bad(
        b"GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n",
        "malformed percent-encoding in request target",
    );
    bad(
        "GET /caf\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n".as_bytes(),
        "non-ascii request target",
    );
    assert_eq!(
        ok(b"GET /a%2Fb%20c HTTP/1.1\r\nHost: h\r\n\r\n").0.target,
        "/a%2Fb%20c"
    );
}

#[test]
fn absolute_form_is_reduced_and_overrides_host() {
    let (head, _) = ok(b"GET http://Example.com:81/x/y?z=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(head.target, "/x/y?z=1");
    assert_eq!(head.header("host"), Some(&b"Example.com:81"[..]));
    assert_eq!(
        head.headers
            .iter()
            .next()
            .map(|h| h.name)
            .unwrap_or_default(),
        "Host"
    );
    assert_eq!(
        ok(b"GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n").0.target,
        "/"
    );
    assert_eq!(
        ok(b"GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n").0.target,
        "/?q"
    );
    let (old, _) = ok(b"GET http://h10/p HTTP/1.0\r\n\r\n");
    assert_eq!(old.header("host"), Some(&b"h10"[..]));
    assert_eq!(old.target, "/p");
    bad(
        b"GET ftp://h/p HTTP/1.1\r\nHost: h\r\n\r\n",
        "unsupported uri scheme",
    );
    bad(
        b"GET http://u:p@h/p HTTP/1.1\r\nHost: h\r\n\r\n",
        "invalid authority in request target",
    );
    bad(
        b"GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n",
        "invalid authority in request target",
    );
    bad(
        b"GET http://h:x/p HTTP/1.1\r\nHost: h\r\n\r\n",
        "invalid authority in request target",
    );
    bad(b"GET http://h/p HTTP/1.1\r\n\r\n", "missing host header");
}
