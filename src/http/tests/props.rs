//! Property tests: parse_request on arbitrary bytes, round-trips of generated
//! requests (whole and split), parse_range bounds, chunked round-trips.

use proptest::prelude::*;

use crate::http::chunked::{ChunkedDecoder, encode_chunk, encode_last_chunk};
use crate::http::codec::*;
use crate::http::range::{RangeRequest, parse_range};
use crate::http::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("HEAD".to_owned()),
        Just("POST".to_owned()),
        Just("OPTIONS".to_owned()),
        token(),
    ]
}

/// Origin-form targets without `#` or `%`, shorter and longer than what `ShortText` holds inline.
fn target() -> impl Strategy<Value = String> {
    "/[A-Za-z0-9/._~!$&'()*+,;=:@?-]{0,120}"
}

/// Names that do not affect framing, Host or connection handling.
fn header_name() -> impl Strategy<Value = String> {
    token().prop_filter("reserved", |n| {
        ![
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "expect",
        ]
        .iter()
        .any(|r| n.eq_ignore_ascii_case(r))
    })
}

/// Values without leading/trailing whitespace (httparse trims those).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        "[!-~]([ -~\t]{0,30}[!-~])?".prop_map(String::into_bytes),
    ]
}

#[derive(Debug, Clone)]
struct Generated {
    method: String,
    target: String,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
}

fn request() -> impl Strategy<Value = Generated> {
    (
        method(),
        target(),
        prop_oneof![Just(Version::Http10), Just(Version::Http11)],
        proptest::collection::vec((header_name(), header_value()), 0..20),
    )
        .prop_map(|(method, target, version, mut headers)| {
            headers.insert(0, ("Host".to_owned(), b"example.com".to_vec()));
            Generated {
                method,
                target,
                version,
                headers,
            }
        })
}

fn encode(g: &Generated) -> Vec<u8> {
    let mut out = format!("{} {} {}\r\n", g.method, g.target, g.version.as_str()).into_bytes();
    for (n, v) in &g.headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn check_head(g: &Generated, head: &RequestHead) {
    assert_eq!(head.method.as_str(), g.method);
    assert_eq!(head.target, g.target);
    assert_eq!(head.version, g.version);
    let got: Vec<(String, Vec<u8>)> = head
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    assert_eq!(got, g.headers);
    assert_eq!(head.body, BodyLength::Empty);
    assert_eq!(head.keep_alive, g.version == Version::Http11);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn parse_request_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(Some((_, n))) = parse_request(&buf) {
            prop_assert!(n <= buf.len());
        }
    }

    #[test]
    /// One byte of a valid request replaced by an arbitrary byte.
    fn parse_request_near_valid(
        g in request(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut buf = encode(&g);
        let i = pos.index(buf.len());
        buf[i] = byte;
        if let Ok(Some((_, n))) = parse_request(&buf) {
            prop_assert!(n <= buf.len());
        }
        check_prefix_errors(&buf)?;
    }

    /// Requests glued from protocol fragments, to reach deep error paths.
    #[test]
    fn parse_request_soup(buf in soup()) {
        check_prefix_errors(&buf)?;
    }

    #[test]
    fn generated_requests_round_trip(
        g in request(),
        tail in proptest::collection::vec(any::<u8>(), 0..32),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let bytes = encode(&g);
        let mut buf = bytes.clone();
        buf.extend_from_slice(&tail);
        let (head, n) = parse_request(&buf).unwrap().unwrap();
        prop_assert_eq!(n, bytes.len());
        check_head(&g, &head);

        // Bytes arriving in pieces: every partial buffer needs more, the
        // first complete one gives the same head.
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len())).collect();
        cuts.sort_unstable();
        for c in cuts {
            prop_assert!(matches!(parse_request(&bytes[..c]), Ok(None)));
        }
        let (again, m) = parse_request(&bytes).unwrap().unwrap();
        prop_assert_eq!(m, n);
        check_head(&g, &again);
    }

    #[test]
    fn parse_range_stays_in_bounds(
        value in proptest::collection::vec(any::<u8>(), 0..64),
        len in prop_oneof![Just(0u64), 0u64..100, any::<u64>()],
    ) {
        check_range(&value, len)?;
    }

    #[test]
    fn parse_range_structured(
        specs in proptest::collection::vec((proptest::option::of(0u64..2000), proptest::option::of(0u64..2000)), 1..40),
        len in 0u64..1500,
    ) {
        let list: Vec<String> = specs.iter().map(|(a, b)| format!(
            "{}-{}", a.map(|x| x.to_string()).unwrap_or_default(), b.map(|x| x.to_string()).unwrap_or_default()
        )).collect();
        check_range(format!("bytes={}", list.join(",")).as_bytes(), len)?;
    }

    #[test]
    fn chunked_round_trips(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        sizes in proptest::collection::vec(1usize..300, 1..20),
        splits in proptest::collection::vec(1usize..64, 1..40),
    ) {
        let mut encoded = Vec::new();
        let mut rest = &data[..];
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let take = (*sizes.next().unwrap()).min(rest.len());
            encode_chunk(&rest[..take], &mut encoded);
            rest = &rest[take..];
        }
        encode_last_chunk(&mut encoded);
        let body_len = encoded.len();
        encoded.extend_from_slice(b"NEXT");

        let mut d = ChunkedDecoder::new(32);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut splits = splits.iter().cycle();
        while !d.done() {
            prop_assert!(pos < encoded.len());
            let end = (pos + splits.next().unwrap()).min(encoded.len());
            let used = d.decode(&encoded[pos..end], &mut out).unwrap();
            prop_assert!(used <= end - pos);
            pos += used;
        }
        prop_assert_eq!(pos, body_len);
        prop_assert_eq!(out, data);
    }
}

/// No panic, `n` in bounds, and an error seen on a prefix is the error for
/// the whole input (errors are reported for the earliest offending byte).
fn check_prefix_errors(buf: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(Some((_, n))) = parse_request(buf) {
        prop_assert!(n <= buf.len());
    }
    for c in 0..buf.len() {
        if let Err(e) = parse_request(&buf[..c]) {
            prop_assert_eq!(parse_request(buf).err(), Some(e), "cut {}", c);
            break;
        }
    }
    Ok(())
}

/// A request head assembled from mostly-valid pieces with hostile variants
/// mixed in, to reach the deep validation paths.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    /// Mostly one of `good`, sometimes one of `evil`.
    fn pick(
        good: &[&'static [u8]],
        evil: &[&'static [u8]],
    ) -> impl Strategy<Value = Vec<u8>> + Clone + use<> {
        prop_oneof![
            12 => proptest::sample::select(good.to_vec()).prop_map(<[u8]>::to_vec),
            1 => proptest::sample::select(evil.to_vec()).prop_map(<[u8]>::to_vec),
        ]
    }
    let method = pick(&[b"GET", b"HEAD", b"OPTIONS", b"POST"], &[b"G@T", b""]);
    let sp = pick(&[b" "], &[b"  ", b"\t", b""]);
    let target = pick(
        &[b"/", b"/a?b=c", b"*", b"http://h:1/p", b"HTTP://h"],
        &[
            b"ftp://h/",
            b"/%zz",
            b"/#f",
            b"h:443",
            b"/\xc3\xa9",
            b"/a b",
            b"http://a@h/",
        ],
    );
    let version = pick(
        &[b"HTTP/1.1", b"HTTP/1.0"],
        &[
            b"HTTP/2.0",
            b"HTTP/1.2",
            b"HTTP/1.",
            b"http/1.1",
            b"HTTP/1.1x",
        ],
    );
    let eol = pick(&[b"\r\n"], &[b"\n", b"\r", b"\r\r\n", b"\r\n "]);
    let name = pick(
        &[
            b"Host",
            b"X-A",
            b"Content-Length",
            b"content-length",
            b"Transfer-Encoding",
            b"Connection",
            b"Expect",
        ],
        &[b"Host ", b" X", b"", b"X\0", b"X\xff"],
    );
    let sep = pick(&[b": ", b":"], &[b":\t", b" : ", b""]);
    let value = pick(
        &[
            b"h",
            b"5",
            b"05",
            b"5, 5",
            b"6",
            b"0",
            b"chunked",
            b"close",
            b"keep-alive",
            b"100-continue",
            b"",
            b"\xff",
        ],
        &[
            b"-1",
            b"99999999999999999999",
            b"gzip, chunked",
            b"chunked, chunked",
            b"a\0b",
            b"a/b",
            b"5 5",
        ],
    );
    let line = (name, sep, value, eol.clone()).prop_map(|(n, s, v, e)| [n, s, v, e].concat());
    (
        method,
        sp.clone(),
        target,
        sp,
        version,
        eol.clone(),
        proptest::collection::vec(line, 0..6),
        eol,
        proptest::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(m, s1, t, s2, v, e1, lines, e2, tail)| {
            [m, s1, t, s2, v, e1, lines.concat(), e2, tail].concat()
        })
}

fn check_range(value: &[u8], len: u64) -> Result<(), TestCaseError> {
    if let RangeRequest::Partial(ranges) = parse_range(value, len) {
        prop_assert!(!ranges.is_empty());
        prop_assert!(ranges.len() <= crate::http::range::MAX_RANGES);
        for w in ranges.windows(2) {
            prop_assert!(
                w[0].end + 1 < w[1].start,
                "not sorted/coalesced: {:?}",
                ranges
            );
        }
        for r in &ranges {
            prop_assert!(r.start <= r.end && r.end < len, "{:?} out of 0..{}", r, len);
        }
    }
    Ok(())
}
