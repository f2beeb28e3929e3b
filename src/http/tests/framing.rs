//! Body framing (RFC 9112 §6) and Expect handling in `parse_request`:
//! Content-Length / Transfer-Encoding combinations, the smuggling vectors.

use super::codec::{err, ok};
use crate::http::{BodyLength, ParseError};

fn req(version: &str, headers: &str) -> Vec<u8> {
    format!("POST /u {version}\r\nHost: h\r\n{headers}\r\n").into_bytes()
}

fn body(headers: &str) -> BodyLength {
    ok(&req("HTTP/1.1", headers)).0.body
}

fn bad(headers: &str, msg: &'static str) {
    assert_eq!(
        err(&req("HTTP/1.1", headers)),
        ParseError::Bad(msg),
        "{headers:?}"
    );
}

#[test]
fn no_framing_headers_means_no_body() {
    assert_eq!(body(""), BodyLength::Empty);
    assert_eq!(body("Content-Length: 0\r\n"), BodyLength::Empty);
}

#[test]
fn content_length_values() {
    assert_eq!(body("Content-Length: 42\r\n"), BodyLength::Length(42));
    assert_eq!(body("content-length:   007 \r\n"), BodyLength::Length(7));
    assert_eq!(
        body("Content-Length: 5\r\nContent-Length: 5\r\n"),
        BodyLength::Length(5)
    );
    assert_eq!(body("Content-Length: 5, 5,5\r\n"), BodyLength::Length(5));
    assert_eq!(
        body("Content-Length: 18446744073709551615\r\n"),
        BodyLength::Length(u64::MAX)
    );
}

#[test]
fn content_length_rejections() {
    let invalid = "invalid content-length";
    bad("Content-Length: 18446744073709551616\r\n", invalid);
    bad("Content-Length: +5\r\n", invalid);
    bad("Content-Length: -5\r\n", invalid);
    bad("Content-Length: 5 5\r\n", invalid);
    bad("Content-Length: 0x5\r\n", invalid);
    bad("Content-Length: 5.0\r\n", invalid);
    bad("Content-Length:\r\n", invalid);
    bad("Content-Length: 5,\r\n", invalid);
    bad(
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "conflicting content-length values",
    );
    bad(
        "Content-Length: 5, 6\r\n",
        "conflicting content-length values",
    );
}

#[test]
fn transfer_encoding_values() {
    assert_eq!(body("Transfer-Encoding: chunked\r\n"), BodyLength::Chunked);
    assert_eq!(
        body("transfer-encoding:  CHUNKED \r\n"),
        BodyLength::Chunked
    );
}

#[test]
fn transfer_encoding_rejections() {
    bad(
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "both transfer-encoding and content-length",
    );
    bad(
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "both transfer-encoding and content-length",
    );
    bad(
        "Transfer-Encoding: gzip\r\n",
        "final transfer coding is not chunked",
    );
    bad(
        "Transfer-Encoding: chunked, gzip\r\n",
        "final transfer coding is not chunked",
    );
    bad(
        "Transfer-Encoding: chunked,\r\n",
        "final transfer coding is not chunked",
    );
    bad(
        "Transfer-Encoding: xchunked\r\n",
        "final transfer coding is not chunked",
    );
    bad(
        "Transfer-Encoding: chunked;q=1\r\n",
        "final transfer coding is not chunked",
    );
    bad(
        "Transfer-Encoding:\r\n",
        "final transfer coding is not chunked",
    );
    bad(
        "Transfer-Encoding: chunked, chunked\r\n",
        "chunked applied more than once",
    );
    bad(
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "chunked applied more than once",
    );
    bad(
        "Transfer-Encoding: gzip, chunked\r\n",
        "unsupported transfer coding",
    );
    bad(
        "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
        "unsupported transfer coding",
    );
    assert_eq!(
        err(&req("HTTP/1.0", "Transfer-Encoding: chunked\r\n")),
        ParseError::Bad("transfer-encoding in http/1.0 request")
    );
}

#[test]
fn expect_continue() {
    let head = |v: &str, h: &str| ok(&req(v, h)).0.expect_continue;
    assert!(head(
        "HTTP/1.1",
        "Expect: 100-continue\r\nContent-Length: 3\r\n"
    ));
    assert!(head(
        "HTTP/1.1",
        "expect: 100-Continue\r\nTransfer-Encoding: chunked\r\n"
    ));
    assert!(!head("HTTP/1.1", "Expect: 100-continue\r\n"));
    assert!(!head(
        "HTTP/1.0",
        "Expect: 100-continue\r\nContent-Length: 3\r\n"
    ));
    assert!(!head("HTTP/1.1", "Expect: 200-ok\r\nContent-Length: 3\r\n"));
    assert!(!head("HTTP/1.1", "Content-Length: 3\r\n"));
}
