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
    out.reserve(
        64 + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>(),
    );
    let mut head = HeadEncoder::new(status, out);
    for (name, value) in headers {
        head.header(name, value.as_bytes());
    }
    head.finish();
}

/// [`encode_response_head`] one header at a time, for callers whose headers live in
/// several places (no list of pairs to build first). The same rules apply: the status
/// line on creation, names that are not tokens skipped, values sanitized, and the final
/// CRLF on [`HeadEncoder::finish`].
pub struct HeadEncoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> HeadEncoder<'a> {
    /// Appends the status line to `out`.
    pub fn new(status: u16, out: &'a mut Vec<u8>) -> HeadEncoder<'a> {
        let status = if (100..=999).contains(&status) {
            status
        } else {
            500
        };
        let digits = [
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ];
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(&digits);
        out.push(b' ');
        out.extend_from_slice(reason(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        HeadEncoder { out }
    }

    /// Appends `name: value`, or nothing when `name` is not a token.
    pub fn header(&mut self, name: &str, value: &[u8]) {
        if !is_token(name) {
            return;
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        push_sanitized(value, self.out);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Appends `name: n` in decimal (Content-Length).
    pub fn header_u64(&mut self, name: &str, n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.header(name, &digits[at..]);
    }

    /// Ends the header section.
    pub fn finish(self) {
        self.out.extend_from_slice(b"\r\n");
    }
}

/// RFC 9110 `tchar`, by byte.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// Whether `s` is a header field name (RFC 9110 §5.1: a token).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| TCHAR[usize::from(b)])
}

/// A byte that `push_sanitized` turns into a space.
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Whether `value` has a byte below 0x20 (HTAB included) or DEL, eight bytes at a time:
/// header values are checked on every response, and byte by byte this was most of the
/// cost of encoding a head.
fn has_control_or_tab(value: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // "Some byte of x is below n" (n <= 0x80) is (x - n*ONES) & !x & HIGH != 0: a byte's
    // high bit survives only where the subtraction borrowed from a byte that had it clear.
    let below = |x: u64, n: u64| x.wrapping_sub(n * ONES) & !x & HIGH != 0;
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        if below(x, 0x20) || below(x ^ (0x7f * ONES), 1) {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// Appends `value` with control bytes (except HTAB) turned into spaces and
/// surrounding whitespace removed.
pub fn push_sanitized(value: &[u8], out: &mut Vec<u8>) {
    // The usual value has nothing to clean or trim: copy it as it is.
    let untrimmed = value.first() == Some(&b' ') || value.last() == Some(&b' ');
    if !untrimmed && !has_control_or_tab(value) {
        out.extend_from_slice(value);
        return;
    }
    let clean = |b: u8| if is_control(b) { b' ' } else { b };
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
    fn encoder_writes_numbers_and_byte_values() {
        let mut out = Vec::new();
        let mut head = HeadEncoder::new(206, &mut out);
        head.header_u64("Content-Length", 0);
        head.header_u64("X-Max", u64::MAX);
        head.header_u64("X-N", 4096);
        head.header("X-V", b" a\rb ");
        head.header("Bad Name", b"1");
        head.finish();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 206 Partial Content\r\nContent-Length: 0\r\n\
             X-Max: 18446744073709551615\r\nX-N: 4096\r\nX-V: a b\r\n\r\n"
        );
    }

    /// The rules as first written, one byte at a time: the fast path must agree.
    fn sanitized_reference(value: &[u8]) -> Vec<u8> {
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
        value[start..end].iter().map(|&b| clean(b)).collect()
    }

    proptest::proptest! {
        #[test]
        fn sanitizing_matches_the_reference(value in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::any::<u8>(),
                proptest::sample::select(vec![b' ', b'\t', b'\r', b'\n', 0, 0x7f, b'a']),
            ],
            0..24,
        )) {
            let mut out = b"x".to_vec();
            push_sanitized(&value, &mut out);
            proptest::prop_assert_eq!(&out[1..], &sanitized_reference(&value)[..]);
        }

        #[test]
        fn word_check_finds_what_the_byte_check_finds(value in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::any::<u8>(),
                0x20u8..0x7f,
                proptest::sample::select(vec![0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff, b'\t']),
            ],
            0..40,
        )) {
            let bytewise = value.iter().any(|&b| b < 0x20 || b == 0x7f);
            proptest::prop_assert_eq!(has_control_or_tab(&value), bytewise);
        }

        #[test]
        fn token_table_matches_rfc_tchar(b in proptest::prelude::any::<u8>()) {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            proptest::prop_assert_eq!(TCHAR[usize::from(b)], tchar);
        }
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
