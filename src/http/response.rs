//! Response heads: reason phrases and encoding of the status line plus
//! header section into a buffer.
//!
//! Only the head is produced; which headers to send (Date, Content-Length,
//! Connection, ...) and writing the body are the caller's business. Whatever
//! the caller passes, the encoded head stays well-formed: header names that
//! are not tokens are dropped and control bytes in values become spaces.

/// Reason phrase for a status code; `""` for codes without a registered one
/// (the status line then ends in `"{status} \r\n"`, which RFC 9112 allows).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Appends `"HTTP/1.1 {status} {reason}\r\n"`, one `"name: value\r\n"` per
/// header, and the final `"\r\n"` to `out`. Always HTTP/1.1 (RFC 9110 §6.2),
/// even when answering an HTTP/1.0 request.
///
/// A status outside 100..=999 cannot be written as three digits and is sent
/// as 500. Header names that are not RFC 9110 tokens are skipped. In values,
/// CR, LF, NUL and every other control byte except HTAB are replaced by a
/// space, then leading/trailing whitespace is trimmed, so no value can start
/// a new line.
pub fn encode_response_head(status: u16, headers: &[(&str, &str)], out: &mut Vec<u8>) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.reserve(
        64 + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>(),
    );
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if !is_token(name) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        push_sanitized(value.as_bytes(), out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Appends `value` with control bytes (except HTAB) turned into spaces and
/// surrounding whitespace removed.
pub(super) fn push_sanitized(value: &[u8], out: &mut Vec<u8>) {
    let clean = |b: u8| {
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            b' '
        } else {
            b
        }
    };
    let blank = |b: &u8| matches!(clean(*b), b' ' | b'\t');
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |e| e + 1);
    out.extend(value[start..end].iter().map(|&b| clean(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&str, &str)]) -> String {
        let mut out = Vec::new();
        encode_response_head(status, headers, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_status_line_and_headers() {
        assert_eq!(
            head(200, &[("Content-Length", "5"), ("Server", "ferry")]),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: ferry\r\n\r\n"
        );
        assert_eq!(head(404, &[]), "HTTP/1.1 404 Not Found\r\n\r\n");
        assert_eq!(head(299, &[]), "HTTP/1.1 299 \r\n\r\n");
    }

    #[test]
    fn appends_to_existing_buffer() {
        let mut out = b"xx".to_vec();
        encode_response_head(204, &[], &mut out);
        assert_eq!(out, b"xxHTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn out_of_range_status_becomes_500() {
        assert_eq!(head(42, &[]), "HTTP/1.1 500 Internal Server Error\r\n\r\n");
        assert_eq!(
            head(1000, &[]),
            "HTTP/1.1 500 Internal Server Error\r\n\r\n"
        );
    }

    #[test]
    fn values_cannot_inject_lines() {
        assert_eq!(
            head(200, &[("X-A", "a\r\nSet-Cookie: evil=1")]),
            "HTTP/1.1 200 OK\r\nX-A: a  Set-Cookie: evil=1\r\n\r\n"
        );
        assert_eq!(
            head(200, &[("X-B", "\r\nb\0c\x7f\n")]),
            "HTTP/1.1 200 OK\r\nX-B: b c\r\n\r\n"
        );
        assert_eq!(
            head(200, &[("X-C", "a\tb")]),
            "HTTP/1.1 200 OK\r\nX-C: a\tb\r\n\r\n"
        );
    }

    #[test]
    fn invalid_header_names_are_dropped() {
        assert_eq!(
            head(
                200,
                &[("Bad Name", "1"), ("", "2"), ("X\r\nY", "3"), ("Ok", "4")]
            ),
            "HTTP/1.1 200 OK\r\nOk: 4\r\n\r\n"
        );
    }

    #[test]
    fn reasons_for_common_codes() {
        for (code, text) in [
            (100, "Continue"),
            (101, "Switching Protocols"),
            (200, "OK"),
            (204, "No Content"),
            (206, "Partial Content"),
            (301, "Moved Permanently"),
            (302, "Found"),
            (304, "Not Modified"),
            (400, "Bad Request"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (411, "Length Required"),
            (412, "Precondition Failed"),
            (413, "Content Too Large"),
            (414, "URI Too Long"),
            (416, "Range Not Satisfiable"),
            (417, "Expectation Failed"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (504, "Gateway Timeout"),
            (505, "HTTP Version Not Supported"),
        ] {
            assert_eq!(reason(code), text, "status {code}");
        }
        assert_eq!(reason(599), "");
    }
}
