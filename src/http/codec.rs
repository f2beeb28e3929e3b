//! Request-head parsing: the request line and header section of one HTTP/1.x
//! request, from a byte slice, into a validated [`RequestHead`].
//!
//! This is the request-smuggling boundary, so it is strict: bare LF, bare CR,
//! obs-fold, whitespace before a colon, control bytes in values, ambiguous
//! framing and malformed targets are all rejected. It does not read bodies
//! (see `chunked`), touch sockets, or build responses (see `response`).
//! Target, Host and framing rules live in the private `validate` module.

use std::mem::MaybeUninit;

use super::headers::Headers;
use super::message::{BodyLength, Method, ParseError, RequestHead, Scheme, Version};
use super::validate;

/// Largest accepted head (request line + headers + final CRLF), in bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest accepted number of header lines.
pub const MAX_HEADERS: usize = 100;
/// Largest accepted request line (excluding its CRLF), in bytes. Longer → 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// Parses one request head from the start of `buf`.
///
/// `Ok(None)`: need more bytes. `Ok(Some((head, n)))`: the head is `buf[..n]`
/// and body bytes (or the next pipelined request) start at `buf[n..]`.
/// Leading empty lines (CRLF) before the request line are skipped and counted
/// in `n` and in [`MAX_HEAD`]. Errors are reported for the earliest offending
/// byte, so feeding a stream in pieces gives the same answer as feeding it
/// whole.
pub fn parse_request(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, ParseError> {
    match scan_head(buf) {
        Scan::Complete(len) => build(&buf[..len]).map(|head| Some((head, len))),
        Scan::Partial => match httparse_pass(buf) {
            Ok(false) => Ok(None),
            Ok(true) => Err(ParseError::Bad("malformed request head")),
            Err(e) => e.map_or(Ok(None), Err),
        },
        // httparse sees exactly the bytes the scan needed: an error it finds
        // there lies at or before the scan's, and a shorter buffer would have
        // reported it too.
        Scan::Fail(err, seen) => match httparse_pass(&buf[..seen]) {
            Err(Some(earlier)) => Err(earlier),
            _ => Err(err),
        },
    }
}

#[cfg_attr(test, derive(Debug, PartialEq))]
enum Scan {
    /// A complete head of this many bytes (ends with CRLF CRLF).
    Complete(usize),
    Partial,
    /// Framing or size error, decided by looking at this many bytes.
    Fail(ParseError, usize),
}

/// Finds the end of the head without interpreting it, rejecting bare LF/CR
/// and enforcing the size limits as early as the bytes allow.
fn scan_head(buf: &[u8]) -> Scan {
    let limit = buf.len().min(MAX_HEAD);
    let mut start = 0;
    while start + 1 < limit && buf[start] == b'\r' && buf[start + 1] == b'\n' {
        start += 2;
    }
    let mut line_done = false;
    let mut i = start;
    while i < limit {
        // Bytes other than CR and LF only matter to the request line's length limit.
        let next = next_cr_or_lf(buf, i, limit);
        if !line_done {
            let first_too_far = i.max(start + MAX_REQUEST_LINE);
            if first_too_far < next {
                return Scan::Fail(ParseError::UriTooLong, first_too_far + 1);
            }
        }
        i = next;
        if i == limit {
            break;
        }
        if buf[i] == b'\n' {
            if i == start || buf[i - 1] != b'\r' {
                return Scan::Fail(ParseError::Bad("bare lf in request head"), i + 1);
            }
            if !line_done {
                line_done = true;
            } else if buf[i - 3..i] == *b"\r\n\r" {
                return Scan::Complete(i + 1);
            }
        } else if buf.get(i + 1).is_some_and(|&b| b != b'\n') {
            return Scan::Fail(ParseError::Bad("bare cr in request head"), i + 2);
        }
        i += 1;
    }
    if buf.len() < MAX_HEAD {
        Scan::Partial
    } else if line_done {
        Scan::Fail(ParseError::HeadTooLarge, MAX_HEAD)
    } else {
        Scan::Fail(ParseError::UriTooLong, MAX_HEAD)
    }
}

/// The index of the first CR or LF in `buf[from..limit]`, or `limit`; eight bytes at a
/// time, since every request's head passes through here.
fn next_cr_or_lf(buf: &[u8], from: usize, limit: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The lowest byte whose high bit is set in (v - ONES) & !v & HIGH is v's lowest zero
    // byte (bits above it may be set spuriously by the borrow, never bits below it).
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut i = from;
    while i + 8 <= limit {
        let word = u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
        let hits = zero_bytes(word ^ (ONES * u64::from(b'\r')))
            | zero_bytes(word ^ (ONES * u64::from(b'\n')));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    buf[i..limit]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map_or(limit, |at| i + at)
}

/// Runs httparse over a (possibly partial) head only to find syntax errors.
/// `Ok(complete)`; `Err(Some(e))` a definite error; `Err(None)` the bytes may
/// still become valid.
fn httparse_pass(buf: &[u8]) -> Result<bool, Option<ParseError>> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(status) => Ok(status.is_complete()),
        Err(e) => Err(map_httparse_error(e, buf)),
    }
}

fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> Option<ParseError> {
    Some(match e {
        httparse::Error::HeaderName => ParseError::Bad("invalid header name"),
        httparse::Error::HeaderValue => ParseError::Bad("invalid header value"),
        httparse::Error::NewLine => ParseError::Bad("invalid line ending"),
        httparse::Error::Token => ParseError::Bad("invalid method or request target"),
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::Version => return classify_version(buf),
        httparse::Error::Status => ParseError::Bad("malformed request line"),
    })
}

/// httparse only knows "HTTP/1.0" and "HTTP/1.1". A well-formed but different
/// `HTTP/d.d` gets 505; anything else is a 400. An unterminated token that can
/// still become `HTTP/d.d` needs more bytes (`None`).
fn classify_version(buf: &[u8]) -> Option<ParseError> {
    let mut rest = buf;
    while let Some(r) = rest.strip_prefix(b"\r\n") {
        rest = r;
    }
    let line_end = rest.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &rest[..line_end.unwrap_or(rest.len())];
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(v)) => v,
        _ => return Some(ParseError::Bad("malformed request line")),
    };
    const PATTERN: &[u8; 8] = b"HTTP/d.d";
    let fits = version.len() <= PATTERN.len()
        && version.iter().zip(PATTERN).all(|(&b, &p)| match p {
            b'd' => b.is_ascii_digit(),
            _ => b == p,
        });
    match (fits, line_end.is_some()) {
        (true, true) if version.len() == PATTERN.len() => Some(ParseError::Version),
        (true, false) => None,
        _ => Some(ParseError::Bad("malformed http version")),
    }
}

/// Parses and validates a complete head (`buf` ends with CRLF CRLF).
fn build(buf: &[u8]) -> Result<RequestHead, ParseError> {
    // Left uninitialised: httparse fills only as many as the head has, and writing all
    // MAX_HEADERS empty ones first cost more than parsing a short head.
    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete(n)) if n == buf.len() => {}
        Ok(_) => return Err(ParseError::Bad("malformed request head")),
        Err(e) => {
            return Err(
                map_httparse_error(e, buf).unwrap_or(ParseError::Bad("malformed http version"))
            );
        }
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseError::Bad("malformed request line"));
    };
    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(ParseError::Version),
    };
    let method = Method::from_token(method);
    let parsed = &*req.headers;
    let bytes = parsed.iter().map(|h| h.name.len() + h.value.len()).sum();
    let mut headers = Headers::with_capacity(parsed.len(), bytes);
    for h in parsed {
        headers.push(h.name, h.value);
    }

    let target = validate::target(&method, target)?;
    validate::host(version, &headers)?;
    if let Some(authority) = &target.authority {
        validate::replace_host(&mut headers, authority);
    }
    let body = validate::framing(version, &headers)?;
    let (close, keep_alive) = validate::connection_tokens(&headers);
    let keep_alive = !close && (version == Version::Http11 || keep_alive);
    let expect_continue =
        version == Version::Http11 && body != BodyLength::Empty && headers.expects_continue();

    Ok(RequestHead {
        method,
        target: target.path,
        version,
        headers,
        keep_alive,
        body,
        expect_continue,
        scheme: Scheme::Http,
        client: Default::default(),
    })
}

#[cfg(test)]
mod scan_tests {
    use super::*;
    use proptest::prelude::*;

    /// `scan_head` as first written, one byte at a time.
    fn scan_reference(buf: &[u8]) -> Scan {
        let limit = buf.len().min(MAX_HEAD);
        let mut start = 0;
        while start + 1 < limit && buf[start] == b'\r' && buf[start + 1] == b'\n' {
            start += 2;
        }
        let mut line_done = false;
        for i in start..limit {
            match buf[i] {
                b'\n' => {
                    if i == start || buf[i - 1] != b'\r' {
                        return Scan::Fail(ParseError::Bad("bare lf in request head"), i + 1);
                    }
                    if !line_done {
                        line_done = true;
                    } else if buf[i - 3..i] == *b"\r\n\r" {
                        return Scan::Complete(i + 1);
                    }
                }
                b'\r' if buf.get(i + 1).is_some_and(|&b| b != b'\n') => {
                    return Scan::Fail(ParseError::Bad("bare cr in request head"), i + 2);
                }
                b'\r' => {}
                _ if !line_done && i - start >= MAX_REQUEST_LINE => {
                    return Scan::Fail(ParseError::UriTooLong, i + 1);
                }
                _ => {}
            }
        }
        if buf.len() < MAX_HEAD {
            Scan::Partial
        } else if line_done {
            Scan::Fail(ParseError::HeadTooLarge, MAX_HEAD)
        } else {
            Scan::Fail(ParseError::UriTooLong, MAX_HEAD)
        }
    }

    /// Heads made of ordinary bytes, CR and LF, with runs long enough to cross the
    /// request-line and head limits.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => proptest::collection::vec(
                proptest::sample::select(vec![b'a', b' ', b'\r', b'\n', b':', 0x80, 0x00]),
                0..12,
            ),
            1 => Just(b"\r\n".to_vec()),
            1 => Just(b"\r\n\r\n".to_vec()),
            1 => (0usize..(MAX_HEAD + 64)).prop_map(|n| vec![b'x'; n]),
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn word_scan_matches_the_byte_scan(buf in bytes()) {
            prop_assert_eq!(scan_head(&buf), scan_reference(&buf));
        }

        #[test]
        fn next_cr_or_lf_matches_position(buf in bytes(), from in 0usize..40) {
            let from = from.min(buf.len());
            let expected = buf[from..]
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .map_or(buf.len(), |at| from + at);
            prop_assert_eq!(next_cr_or_lf(&buf, from, buf.len()), expected);
        }
    }

    #[test]
    fn request_line_limit_edges() {
        for extra in [0, 1, 2] {
            let mut head = b"GET /".to_vec();
            head.resize(MAX_REQUEST_LINE - 1 + extra, b'a');
            head.extend_from_slice(b"\r\nHost: a\r\n\r\n");
            assert_eq!(scan_head(&head), scan_reference(&head), "extra {extra}");
        }
    }
}
