//! Range header parsing and multipart/byteranges framing.

use crate::http::range::*;

fn r(start: u64, end: u64) -> ByteRange {
    ByteRange { start, end }
}

fn parse(v: &str, len: u64) -> RangeRequest {
    parse_range(v.as_bytes(), len)
}

fn partial(ranges: &[(u64, u64)]) -> RangeRequest {
    RangeRequest::Partial(ranges.iter().map(|&(a, b)| r(a, b)).collect())
}

#[test]
fn single_ranges() {
    assert_eq!(parse("bytes=0-0", 10_000), partial(&[(0, 0)]));
    assert_eq!(parse("bytes=0-499", 10_000), partial(&[(0, 499)]));
    assert_eq!(parse("bytes=-500", 10_000), partial(&[(9500, 9999)]));
    assert_eq!(parse("bytes=9500-", 10_000), partial(&[(9500, 9999)]));
    assert_eq!(parse("Bytes=5-5", 10), partial(&[(5, 5)]));
    assert_eq!(parse("  bytes = 1-2  ", 10), partial(&[(1, 2)]));
}

#[test]
fn clamping() {
    assert_eq!(parse("bytes=5-100", 10), partial(&[(5, 9)]));
    assert_eq!(parse("bytes=-100", 10), partial(&[(0, 9)]));
    assert_eq!(
        parse("bytes=0-99999999999999999999999", 10),
        partial(&[(0, 9)])
    );
    assert_eq!(
        parse("bytes=-99999999999999999999999", 10),
        partial(&[(0, 9)])
    );
}

#[test]
fn multiple_ranges_with_whitespace() {
    assert_eq!(
        parse("bytes=0-499,1000-", 1234),
        partial(&[(0, 499), (1000, 1233)])
    );
    assert_eq!(parse("bytes= 0-1 , 4-5", 10), partial(&[(0, 1), (4, 5)]));
    assert_eq!(parse("bytes=0-1,,\t4-5,", 10), partial(&[(0, 1), (4, 5)]));
}

#[test]
fn coalescing_sorts_and_merges_overlapping_and_adjacent() {
    assert_eq!(parse("bytes=4-5,0-1", 10), partial(&[(0, 1), (4, 5)]));
    assert_eq!(parse("bytes=0-4,3-6", 10), partial(&[(0, 6)]));
    assert_eq!(parse("bytes=0-1,2-3", 10), partial(&[(0, 3)]));
    assert_eq!(parse("bytes=0-0,0-0,0-0", 10), partial(&[(0, 0)]));
    assert_eq!(parse("bytes=-3,0-", 10), partial(&[(0, 9)]));
    assert_eq!(parse("bytes=8-20,-1", 10), partial(&[(8, 9)]));
}

#[test]
fn unsatisfiable() {
    assert_eq!(parse("bytes=10-", 10), RangeRequest::Unsatisfiable);
    assert_eq!(parse("bytes=10-20,30-40", 10), RangeRequest::Unsatisfiable);
    assert_eq!(parse("bytes=-0", 10), RangeRequest::Unsatisfiable);
    assert_eq!(parse("bytes=0-0", 0), RangeRequest::Unsatisfiable);
    assert_eq!(
        parse("bytes=99999999999999999999999-", 10),
        RangeRequest::Unsatisfiable
    );
    // Unsatisfiable specs are dropped when others remain.
    assert_eq!(parse("bytes=20-30,2-3", 10), partial(&[(2, 3)]));
}

#[test]
fn suffix_on_empty_representation_is_full() {
    assert_eq!(parse("bytes=-5", 0), RangeRequest::Full);
    assert_eq!(parse("bytes=0-1,-5", 0), RangeRequest::Full);
    assert_eq!(parse("bytes=-0", 0), RangeRequest::Unsatisfiable);
}

#[test]
fn invalid_headers_are_ignored() {
    for v in [
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "bytes 0-1",
        "items=0-1",
        "bytes=a-b",
        "bytes=1",
        "bytes=-",
        "bytes=5-4",
        "bytes=+1-2",
        "bytes=1 -2",
        "bytes=0-1;x",
        "bytes=0x1-2",
        "bytes0-1",
        "bytesx=0-1",
    ] {
        assert_eq!(parse(v, 100), RangeRequest::Full, "{v:?}");
    }
}

#[test]
fn too_many_ranges() {
    let spread = |n: u64| {
        (0..n)
            .map(|i| format!("{}-{}", i * 10, i * 10))
            .collect::<Vec<_>>()
            .join(",")
    };
    let at_limit = parse(&format!("bytes={}", spread(MAX_RANGES as u64)), 1000);
    assert!(matches!(at_limit, RangeRequest::Partial(ref v) if v.len() == MAX_RANGES));
    assert_eq!(
        parse(&format!("bytes={}", spread(MAX_RANGES as u64 + 1)), 1000),
        RangeRequest::Full
    );
    // Many specs that coalesce into few are fine.
    let adjacent = (0..100)
        .map(|i| format!("{i}-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        parse(&format!("bytes={adjacent}"), 1000),
        partial(&[(0, 99)])
    );
    // An abusive number of specs is ignored outright.
    let many = vec!["0-0"; 300].join(",");
    assert_eq!(parse(&format!("bytes={many}"), 1000), RangeRequest::Full);
}

#[test]
fn range_lengths_and_header_values() {
    assert_eq!(r(0, 0).len(), 1);
    assert_eq!(r(0, 499).len(), 500);
    assert!(!r(3, 3).is_empty());
    assert_eq!(content_range(r(0, 499), 1234), "bytes 0-499/1234");
    assert_eq!(unsatisfied_range(1234), "bytes */1234");
}

#[test]
fn boundaries() {
    let b = multipart_boundary(42);
    assert_eq!(b.len(), "ferry-".len() + 20);
    assert!(b.starts_with("ferry-"));
    assert!(
        b[6..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(b, multipart_boundary(42));
    assert_ne!(b, multipart_boundary(43));
    assert_ne!(multipart_boundary(0), multipart_boundary(1));
}

#[test]
fn multipart_pieces() {
    let head = multipart_part_head("B", "text/plain; charset=utf-8", r(0, 4), 10);
    assert_eq!(
        head,
        b"\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-4/10\r\n\r\n"
    );
    assert_eq!(
        multipart_part_head("B", "", r(5, 9), 10),
        b"\r\n--B\r\nContent-Range: bytes 5-9/10\r\n\r\n"
    );
    assert_eq!(
        multipart_part_head("B", "a\r\nX: y", r(5, 9), 10),
        b"\r\n--B\r\nContent-Type: a  X: y\r\nContent-Range: bytes 5-9/10\r\n\r\n"
    );
    assert_eq!(multipart_end("B"), b"\r\n--B--\r\n");
}

#[test]
fn multipart_len_matches_assembled_body() {
    let data: Vec<u8> = (0..200u8).collect();
    let ranges = [r(0, 9), r(50, 50), r(190, 199)];
    let boundary = multipart_boundary(7);
    let mut body = Vec::new();
    for &rg in &ranges {
        body.extend(multipart_part_head(
            &boundary,
            "application/octet-stream",
            rg,
            200,
        ));
        body.extend_from_slice(&data[rg.start as usize..=rg.end as usize]);
    }
    body.extend(multipart_end(&boundary));
    assert_eq!(
        multipart_len(&boundary, "application/octet-stream", &ranges, 200),
        body.len() as u64
    );
}
